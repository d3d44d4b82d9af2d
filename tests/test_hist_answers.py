"""LX_MMAH_HIST keeps its answers (xl_addin.answer_cache) and hands COM the very cells it did before.

Through xlwings' own Windows UDF machinery (``tests/excel_harness.py``): what ``call_udf`` returns is
what pywin32 turns into the Variant array Excel gets, so each cell is compared with its type
(a COM date is not a plain datetime, 1 is not 1.0) against LX_MMAH_HIST as it was before its
answers were kept — ``hist_matrix`` under xlwings' default ``@ret(ndim=2)`` conversion — on a
store with blank days, blank values and every kind of ``#N/A`` answer. A snapshot written after
a warm call, by another process, by the service (the same store and connection) or through it, shows
at the next call.
"""

import datetime as dt
import subprocess
import sys
import textwrap
import time

import pytest

import excel_harness as xh
from conftest import ROOT

from xl_addin.answer_cache import AnswerCache, key_of
from xl_addin.formula import explain
from xl_addin.formula_hist import hist_matrix
from xl_addin.records import parse_record
from xl_addin.sandbox.data import make_record, trading_days
from xl_addin.store import Snapshot

DAYS = trading_days(dt.date(2026, 3, 9), dt.date(2026, 3, 17))  # 7 trading days
REF = -2146826265  # a #REF! cell, as COM hands it over


@pytest.fixture
def udfs(formula_service):
    module = xh.load()
    yield module
    module.reset()


@pytest.fixture
def before(udfs):
    """LX_MMAH_HIST as it was before this change: the same arguments, the answer converted by xlwings."""
    func, arg, ret = udfs.func, udfs.arg, udfs.ret

    @func(category="Lixinger", call_in_wizard=False)
    @arg("codes", udfs.UsedValues, ndim=2, err_to_str=True)
    @arg("field")
    @arg("start")
    @arg("end")
    @arg("headers")
    @ret(ndim=2)
    def HIST_BEFORE(codes, field, start=None, end=None, headers=False):
        try:
            svc = udfs.service()
            store = svc.history_store()
            source = svc.settings.base_url
            return hist_matrix(codes, field, start, end, udfs._truthy(headers),
                               lambda cs, f, a, b: store.series(cs, f, a, b, source=source),
                               udfs._today(), lambda: store.info(source).snapshots == 0)
        except Exception as exc:
            return [[explain(exc)]]

    globals()["HIST_BEFORE"] = HIST_BEFORE  # call_udf finds a function by module and name
    ours = [a["options"] for a in udfs.LX_MMAH_HIST.__xlfunc__["args"]]
    assert ours == [a["options"] for a in HIST_BEFORE.__xlfunc__["args"]]  # arguments read the same way
    yield HIST_BEFORE
    del globals()["HIST_BEFORE"]


def typed(value):
    """Each cell with its type's name: what pywin32 makes of it depends on both."""
    if isinstance(value, list):
        return [typed(v) for v in value]
    return type(value).__name__, value


def snapshot(svc, code, day, fetched_at=None, **values):
    record = parse_record(make_record(code, day))
    record.update(values)
    return Snapshot.from_record(svc.settings.base_url, record, fetched_at or time.time())


def fill(svc):
    """00700 every day; 00005 every other day (blank days); 00939 with no mm_sh on one day (a blank value)."""
    svc.history_store().put(
        [snapshot(svc, "00700", d) for d in DAYS]
        + [snapshot(svc, "00005", d) for d in DAYS[::2]]
        + [snapshot(svc, "00939", d, **({"mm_sh": None} if d == DAYS[1] else {})) for d in DAYS[:3]]
    )


CASES = {
    "one code": ("700", "mm_sh"),
    "one code, a range, headers": (700.0, "mm_sh", dt.datetime(2026, 3, 10), "2026-03-16", True),
    "one code, 中文 label, headers as 1.0": (700.0, "港股通持仓", None, None, 1.0),
    "one code, ratios (floats)": ("00700", "mm_sh_cap_r", 46090.0, None, "TRUE"),
    "one code, a blank value": ("939", "mm_sh", None, None, True),
    "several codes, blank days": ((("00700", "00005", "00939"),), "mm_sh"),
    "several codes, headers": ((("00700", "00005", "00939"),), "mm_sh_nbv_d1", None, "2026-03-16", True),
    "a column: bad code, error cell, a code never kept": (((700.0,), ("5",), ("ABC",), (REF,), ("1",)), "mm_sh",
                                                          None, None, True),
    "TRUE as a code": (True, "mm_sh"),
    "1 as a code": (1.0, "mm_sh"),
    "invalid field": ("700", "last_data_date"),
    "no field": ("700", None),
    "a start that is no date": ("700", "mm_sh", "soon"),
    "end before start": ("700", "mm_sh", "2026-03-16", "2026-03-10"),
    "the future": ("700", "mm_sh", None, "2099-01-01"),
    "nothing kept in the range": ("700", "mm_sh", "2026-03-01", "2026-03-06"),
    "a code never kept": ("00001", "mm_sh"),
    "a text over 255 characters in a one-cell answer": ("700", "x" * 300),
}


def test_the_cells_handed_to_com_are_the_same_as_before_cold_and_warm(udfs, before, formula_service):
    fill(formula_service)
    for name, args in CASES.items():
        then = typed(xh.call(before, *args))
        assert typed(xh.call(udfs.LX_MMAH_HIST, *args)) == then, name  # cold: the store is read
        assert typed(xh.call(udfs.LX_MMAH_HIST, *args)) == then, name  # warm: the answer kept
        assert typed(xh.call_via_com(udfs.LX_MMAH_HIST, *args)) == typed(xh.call_via_com(before, *args)), name
    assert len(udfs._hist_answers) > 0  # (the cases above did go through kept answers)
    # what each looked like, so that the comparison above compared something
    one = xh.call(udfs.LX_MMAH_HIST, *CASES["one code, a range, headers"])
    assert one[0] == ["date", "mm_sh"] and [r[0] for r in one[1:]] == [dt.datetime(d.year, d.month, d.day)
                                                                       for d in DAYS[1:6]]
    assert all(type(r[0]) is sys.modules["pywintypes"].TimeType for r in one[1:])  # COM dates
    several = xh.call(udfs.LX_MMAH_HIST, *CASES["several codes, blank days"])
    assert [r[2] == "" for r in several] == [i % 2 == 1 for i in range(len(DAYS))]  # 00005's blank days
    assert several[1][3] == ""  # 00939 kept that day without mm_sh
    column = xh.call(udfs.LX_MMAH_HIST, *CASES["a column: bad code, error cell, a code never kept"])
    assert column[0] == ["date", "00700", "00005", "ABC", "#REF!", "00001"]  # a problem column: headed by its cell
    assert column[1][3:] == ["#N/A Invalid Code", "#N/A Input Error #REF!", "#N/A No Data"]
    assert xh.call_via_com(udfs.LX_MMAH_HIST, "700", "mm_sh", "soon").startswith("#N/A Input Error: start")


def test_as_sent_is_what_xlwings_conversion_writes_cell_for_cell(udfs):
    from xlwings import conversion

    day = dt.datetime(2026, 3, 9)
    cells = [day, dt.date(2026, 3, 10), dt.datetime(2026, 3, 9, 15, 30), day.replace(tzinfo=dt.timezone.utc),
             "", None, "#N/A No Data", "港股通", 0, -0.0, 0.0, float("nan"), 1.5, 2 ** 40, True, False, 1]
    matrix = [cells, list(reversed(cells))]
    for _ in range(2):  # the second time from what the first one met
        assert typed(udfs.as_sent(matrix)) == typed(conversion.write(matrix, None, {"ndim": 2}))
    assert typed(udfs.as_sent([["one"]])) == typed(conversion.write([["one"]], None, {"ndim": 2}))


def test_a_warm_call_reads_no_table(udfs, formula_service):
    fill(formula_service)
    args = ("700", "mm_sh", None, None, True)
    cold = xh.call(udfs.LX_MMAH_HIST, *args)
    statements = []
    formula_service.history_store()._conn.set_trace_callback(statements.append)
    try:
        warm = xh.call(udfs.LX_MMAH_HIST, *args)
        assert warm == cold
        assert statements == ["PRAGMA data_version"]  # the store's version only: no query, no COUNT
        statements.clear()
        xh.call(udfs.LX_MMAH_HIST, "5", "mm_sh")  # other arguments: read from the store
        assert any(s.startswith("SELECT") for s in statements)
    finally:
        formula_service.history_store()._conn.set_trace_callback(None)


WRITER = textwrap.dedent("""
    import datetime as dt, sys, time
    from xl_addin.records import parse_record
    from xl_addin.sandbox.data import make_record
    from xl_addin.store import Snapshot, SQLiteStore

    path, source, day, replaced = sys.argv[1:]
    store = SQLiteStore(path)
    new = parse_record(make_record("00700", dt.date.fromisoformat(day)))
    again = parse_record(make_record("00700", dt.date.fromisoformat(replaced)))
    again["mm_sh"] = 123
    print(store.put([Snapshot.from_record(source, new, time.time()), Snapshot.from_record(source, again, time.time())]))
    store.close()
""")


def test_a_snapshot_written_by_another_process_shows_at_the_next_call(udfs, before, formula_service):
    svc = formula_service
    svc.history_store().put(snapshot(svc, "00700", d, fetched_at=1.0) for d in DAYS[:-1])
    args = ("700", "mm_sh", None, None, True)
    xh.call(udfs.LX_MMAH_HIST, *args)
    warm = xh.call(udfs.LX_MMAH_HIST, *args)
    assert len(warm) == 1 + len(DAYS) - 1

    out = subprocess.run([sys.executable, "-c", WRITER, str(svc.history_store().path), svc.settings.base_url,
                          DAYS[-1].isoformat(), DAYS[2].isoformat()], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "inserted=1, replaced=1" in out.stdout

    now = xh.call(udfs.LX_MMAH_HIST, *args)
    assert [r[0] for r in now[1:]] == [dt.datetime(d.year, d.month, d.day) for d in DAYS]  # the new day
    assert now[3][1] == 123  # and the newer fetch of an older day
    assert typed(now) == typed(xh.call(before, *args))


def test_a_snapshot_the_service_keeps_or_put_through_the_same_store_shows_at_the_next_call(udfs, formula_service,
                                                                                        sandbox):
    svc = formula_service
    args = ((("00700", "00005"),), "mm_sh")
    assert xh.call(udfs.LX_MMAH_HIST, *args)[0][0].startswith("#N/A No Data: the history store is empty")
    assert xh.call(udfs.LX_MMAH_HIST, *args)[0][0].startswith("#N/A No Data: the history store is empty")

    sandbox.dataset.as_of = DAYS[0]
    svc.fetch(["00700", "00005"], use_cache=False)  # kept by the service, through the same store (its own writes)
    first = xh.call(udfs.LX_MMAH_HIST, *args)
    assert [r[0] for r in first] == [dt.datetime(2026, 3, 9)]

    svc.history_store().put([snapshot(svc, "00005", DAYS[1])])  # through the very store the formula reads
    second = xh.call(udfs.LX_MMAH_HIST, *args)
    assert [r[0] for r in second] == [dt.datetime(2026, 3, 9), dt.datetime(2026, 3, 10)]
    assert second[1][1] == ""  # 00700 has no snapshot that day: blank
    assert xh.call(udfs.LX_MMAH_HIST, *args) == second


def test_days_back_move_with_the_calendar(udfs, before, formula_service, monkeypatch):
    fill(formula_service)
    args = ("700", "mm_sh", -3.0)  # the last three calendar days
    monkeypatch.setattr(udfs, "_today", lambda: dt.date(2026, 3, 12))
    thu = xh.call(udfs.LX_MMAH_HIST, *args)
    assert [r[0].day for r in thu] == [9, 10, 11, 12]
    monkeypatch.setattr(udfs, "_today", lambda: dt.date(2026, 3, 13))
    fri = xh.call(udfs.LX_MMAH_HIST, *args)
    assert [r[0].day for r in fri] == [10, 11, 12, 13]
    assert typed(fri) == typed(xh.call(before, *args))


def test_a_store_with_no_version_keeps_nothing(udfs, formula_service, monkeypatch):
    fill(formula_service)
    store = formula_service.history_store()
    monkeypatch.setattr(store, "data_version", lambda: None)  # as a store without a cheap version
    first = xh.call(udfs.LX_MMAH_HIST, "700", "mm_sh")
    store.put([snapshot(formula_service, "00700", dt.date(2026, 3, 18))])
    assert len(xh.call(udfs.LX_MMAH_HIST, "700", "mm_sh")) == len(first) + 1
    assert len(udfs._hist_answers) == 0


def test_the_call_stays_not_volatile_and_registered_as_before(udfs):
    info = udfs.LX_MMAH_HIST.__xlfunc__
    assert not info["volatile"] and info["category"] == "Lixinger" and info["call_in_wizard"] is False
    assert info["ret"]["options"] == {"convert": "raw"}  # converted once, by xlwings' own conversion.write


# -- the cache on its own --------------------------------------------------------------------------------
def test_keys_tell_apart_what_python_calls_equal():
    assert len({key_of(True), key_of(1), key_of(1.0)}) == 3
    assert key_of(((700.0,),), "mm_sh") == key_of([[700.0]], "mm_sh")  # a tuple or a list: the same cells
    assert key_of(dt.datetime(2026, 3, 9)) != key_of(dt.date(2026, 3, 9))
    assert key_of({"a": 1}) is None  # not a key: nothing kept


def test_an_answer_is_served_only_for_its_store_and_version_and_the_cache_is_bounded():
    cache, store, other = AnswerCache(max_cells=16), object(), object()
    cache.put(store, 1, ("a",), [[1, 2], [3, 4]])
    assert cache.get(store, 1, ("a",)) == [[1, 2], [3, 4]]
    assert cache.get(store, 2, ("a",)) is None and cache.get(other, 1, ("a",)) is None
    cache.put(store, None, ("b",), [[1]])
    assert cache.get(store, None, ("b",)) is None  # no version: nothing kept
    cache.put(store, 1, ("b",), [[1] * 4] * 2)
    cache.get(store, 1, ("a",))  # a used most recently
    cache.put(store, 1, ("c",), [[1] * 3] * 2)  # 4 + 8 + 6 > 16: b (least recently used) goes
    assert cache.get(store, 1, ("b",)) is None and cache.get(store, 1, ("a",)) and cache.get(store, 1, ("c",))
    cache.put(store, 1, ("d",), [[1] * 17])  # larger than the whole cache: not kept
    assert cache.get(store, 1, ("d",)) is None
    cache.put(store, 2, ("e",), [[5]])  # a new version: what was kept under the old one goes
    assert len(cache) == 1 and cache.get(store, 2, ("e",)) == [[5]]
