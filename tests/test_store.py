"""The history store's contract, run against every backend (PostgreSQL joins as a second
parameter of ``make_store``), then SQLite's migration of a cache file, and files in and out."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys

import pytest

from xl_addin.exceptions import ImportFileError, InputError, LixingerError, StoreError, UnknownFieldError
from xl_addin.records import parse_record
from xl_addin.sandbox.data import make_record, trading_days, universe
from xl_addin.store import Snapshot, SQLiteStore, open_store
from xl_addin.store import frames, transfer
from xl_addin.store.base import VALUE_KEYS

SRC = "http://127.0.0.1:1/api"
OTHER = "https://open.lixinger.com/api"
DAYS = trading_days(dt.date(2026, 3, 2), dt.date(2026, 3, 20))  # 15 trading days


def snap(code, day, fetched_at=None, source=SRC):
    record = parse_record(make_record(code, day))
    return Snapshot.from_record(source, record, fetched_at if fetched_at is not None else 1_770_000_000.0 + day.toordinal())


@pytest.fixture(scope="session")
def pg_contract(pg_server):
    """A desk database made by `store init` once; each test starts it empty."""
    from xl_addin.store.desk import init_store

    pg_server.psql("CREATE DATABASE contract")
    url = pg_server.url_for("postgres", "contract")
    init_store(url, password=pg_server.password)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request, tmp_path):
    """A factory: each call opens the same store location again (a new connection)."""
    opened = []
    if request.param == "postgres":
        server, url = request.getfixturevalue("pg_server"), request.getfixturevalue("pg_contract")
        server.psql("TRUNCATE xl_addin.history, xl_addin.absent", db="contract")

    def make():
        if request.param == "sqlite":
            store = SQLiteStore(tmp_path / "history.sqlite3")
        else:
            store = open_store(url, password=server.password)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store):
    return make_store()


@pytest.fixture
def filled(store):
    store.put(snap(code, day) for code in ("00700", "00005", "09988") for day in DAYS)
    return store


# -- the contract -------------------------------------------------------------------------------
def test_a_snapshot_comes_back_as_the_record_it_was(store):
    record = parse_record(make_record("00700", dt.date(2026, 3, 17)))
    assert store.put([Snapshot.from_record(SRC, record, 1_773_700_000.5)]).inserted == 1
    got = store.latest(["00700"], source=SRC)["00700"]
    assert got.record() == record and got.fetched_at == 1_773_700_000.5
    shares = [k for k in VALUE_KEYS if k == "mm_sh" or k.startswith("mm_sh_nbv")]
    assert all(isinstance(got.values[k], int) for k in shares)  # share counts stay whole numbers
    assert got.values["mm_sh"] == 1085238279


def test_latest_is_the_newest_data_date_and_sources_never_mix(filled):
    latest = filled.latest(["00005", "00700", "99999"], source=SRC)
    assert sorted(latest) == ["00005", "00700"] and latest["00005"].data_date == DAYS[-1]
    assert filled.latest(["00005"], source=OTHER) == {}
    assert filled.series(["00005"], ["mm_sh"], source=OTHER) == []


def test_a_second_fetch_of_the_same_day_keeps_the_newest_and_is_counted(store):
    day = DAYS[3]
    first = snap("00005", day, fetched_at=100.0)
    newer = Snapshot(SRC, "00005", day, 200.0, {**first.values, "mm_sh": first.values["mm_sh"] + 7})
    older = Snapshot(SRC, "00005", day, 50.0, {**first.values, "mm_sh": 1})
    assert store.put([first]).inserted == 1
    assert store.put([newer]).replaced == 1
    assert store.put([older]).unchanged == 1  # an older fetch never overwrites a newer one
    assert store.put([newer]).unchanged == 1  # the same fetch again: nothing to say
    kept = store.latest(["00005"], source=SRC)["00005"]
    assert kept.fetched_at == 200.0 and kept.values["mm_sh"] == first.values["mm_sh"] + 7
    info = store.info()
    assert info.snapshots == 1 and info.replacements == 1


def test_one_field_over_a_range_in_date_order(filled):
    rows = filled.series(["00005"], ["mm_sh", "spc"], DAYS[2], DAYS[9], source=SRC)
    assert [r[1] for r in rows] == DAYS[2:10]  # both ends inclusive
    for code, day, mm_sh, spc in rows:
        record = parse_record(make_record("00005", day))
        assert (code, mm_sh, spc) == ("00005", record["mm_sh"], record["spc"])


def test_series_keeps_the_codes_order_and_has_no_row_for_a_missing_day(filled):
    filled.put([snap("00388", DAYS[0]), snap("00388", DAYS[5])])
    rows = filled.series(["09988", "00388", "00700"], ["mm_sh_nbv_d1"], source=SRC)
    assert list(dict.fromkeys(r[0] for r in rows)) == ["09988", "00388", "00700"]
    assert [r[1] for r in rows if r[0] == "00388"] == [DAYS[0], DAYS[5]]
    assert filled.series(["00700"], ["mm_sh"], DAYS[5], DAYS[4], source=SRC) == []  # end before start: nothing


def test_a_value_the_record_lacked_is_none(store):
    young = next(c for c in universe() if make_record(c, dt.date(2026, 3, 17)) and
                 "mm_sh_nba_d240" not in make_record(c, dt.date(2026, 3, 17)))
    store.put([snap(young, dt.date(2026, 3, 17))])
    [(_, _, d1, d240)] = store.series([young], ["mm_sh_nbv_d1", "mm_sh_nbv_d240"], source=SRC)
    assert d1 is not None and d240 is None


@pytest.mark.parametrize("field,error,needle", [
    ("nope", UnknownFieldError, "unknown field 'nope'"), ("mm_sh_nba_d21", UnknownFieldError, "did you mean"),
    ("stockCode", InputError, "not a value over time"), ("last_data_date", InputError, "not a value over time"),
])
def test_a_field_that_is_no_series_is_refused(filled, field, error, needle):
    with pytest.raises(error, match=needle):
        filled.series(["00700"], [field], source=SRC)
    with pytest.raises(InputError, match="no field"):
        filled.series(["00700"], [], source=SRC)


def test_fields_by_any_name(filled):
    by_key = filled.series(["00700"], ["mm_sh"], source=SRC)
    assert filled.series(["00700"], ["港股通持仓"], source=SRC) == by_key
    assert filled.series(["00700"], ["MM_SH"], source=SRC) == by_key
    assert filled.series("00700", "mm_sh", source=SRC) == by_key  # one code, one field, on their own
    assert list(filled.latest("00700", source=SRC)) == ["00700"]


def test_codes_seen_since(store):
    store.put([snap("00005", DAYS[0], fetched_at=1000.0), snap("00700", DAYS[0], fetched_at=2000.0),
               snap("00939", DAYS[0], fetched_at=3000.0, source=OTHER)])
    assert store.codes_seen(1500.0, source=SRC) == ["00700"]
    assert store.codes_seen(0.0, source=SRC) == ["00005", "00700"]


def test_absent_codes_until_a_record_arrives(store):
    store.mark_absent(["00005", "12345"], 100.0, source=SRC)
    assert store.absent(["00005", "12345", "00700"], source=SRC) == {"00005": 100.0, "12345": 100.0}
    store.put([snap("00005", DAYS[0], fetched_at=200.0)])
    assert store.absent(["00005", "12345"], source=SRC) == {"12345": 100.0}


def test_keep_is_what_one_fetch_answered(store):
    """The service's write: typed records kept as snapshots (a newer fetch replaces the day, an
    older one changes nothing), codes answered without a record marked, a record clears a mark."""
    store.mark_absent(["00005"], 100.0, source=SRC)
    records = [parse_record(make_record(c, DAYS[0])) for c in ("00700", "00005")]
    store.keep(records, ["12345"], 200.0, source=SRC)
    assert {c: s.record() for c, s in store.latest(["00700", "00005"], source=SRC).items()} == {
        r["stockCode"]: r for r in records}
    assert store.absent(["00005", "12345"], source=SRC) == {"12345": 200.0}
    newer = parse_record(make_record("00700", DAYS[0]))
    newer["mm_sh"] += 1
    store.keep([newer], [], 300.0, source=SRC)
    store.keep(records[:1], [], 250.0, source=SRC)  # an older fetch of the same day: nothing changes
    kept = store.latest(["00700"], source=SRC)["00700"]
    assert (kept.fetched_at, kept.record()) == (300.0, newer) and store.info().replacements == 1
    assert store.latest(["00700"], source=OTHER) == {}


def test_a_checked_snapshot_is_not_checked_again_and_an_unchecked_one_is(store, monkeypatch):
    from xl_addin.store import base

    calls = []
    monkeypatch.setattr(base, "check_snapshot", lambda s: calls.append(s.code) or s)
    record = parse_record(make_record("00700", DAYS[0]))
    store.put([Snapshot.from_record(SRC, record, 1.0, checked=True)])
    assert calls == []  # made from a record the client checked: not checked again
    monkeypatch.undo()
    bad = Snapshot.from_record(SRC, {**record, "mm_sh": "12"}, 2.0)  # made without checked=True: checked
    with pytest.raises(StoreError, match="mm_sh"):
        store.put([bad])
    assert store.latest(["00700"], source=SRC)["00700"].fetched_at == 1.0  # nothing of it kept


def test_info_of_an_empty_and_a_filled_store(store):
    empty = store.info()
    assert (empty.snapshots, empty.codes, empty.last_data_date, empty.replacements) == (0, 0, None, 0)
    store.put(snap(c, d) for c in ("00700", "00005") for d in DAYS)
    info = store.info()
    assert (info.snapshots, info.codes, info.sources) == (2 * len(DAYS), 2, (SRC,))
    assert (info.first_data_date, info.last_data_date) == (DAYS[0], DAYS[-1])
    assert info.as_dict()["last_data_date"] == DAYS[-1].isoformat()
    store.put([snap("00939", DAYS[0], source=OTHER)])
    assert store.info(SRC).snapshots == 2 * len(DAYS) and store.info(OTHER).sources == (OTHER,)
    assert store.info().snapshots == 2 * len(DAYS) + 1


def test_a_bad_snapshot_writes_nothing_of_its_batch(store):
    good = snap("00005", DAYS[0])
    bad = Snapshot(SRC, "00700", DAYS[0], 1.0, {"mm_sh": "many"})
    with pytest.raises(StoreError, match="mm_sh"):
        store.put([good, bad])
    assert store.info().snapshots == 0
    with pytest.raises(LixingerError):
        store.put([Snapshot(SRC, "700", DAYS[0], 1.0, {})])


def test_history_survives_reopening(make_store):
    first = make_store()
    first.put(snap("00700", d) for d in DAYS)
    first.close()
    again = make_store()
    assert [r[1] for r in again.series(["00700"], ["mm_sh"], source=SRC)] == DAYS


def test_a_store_is_shared_between_threads(store):
    import threading

    errors = []

    def write(code):
        try:
            store.put(snap(code, d) for d in DAYS)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(c,)) for c in universe()[:8]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and store.info().snapshots == 8 * len(DAYS)


# -- SQLite: the file, its migration from the cache ---------------------------------------------
_OLD_CACHE_DDL = """
CREATE TABLE snapshot (source TEXT NOT NULL, code TEXT NOT NULL, data_date TEXT NOT NULL,
    fetched_at REAL NOT NULL, record TEXT NOT NULL, PRIMARY KEY (source, code, data_date));
CREATE TABLE absent (source TEXT NOT NULL, code TEXT NOT NULL, fetched_at REAL NOT NULL,
    PRIMARY KEY (source, code));
CREATE INDEX snapshot_latest ON snapshot (source, code, fetched_at);
CREATE TABLE stamp (source TEXT NOT NULL, name TEXT NOT NULL, value REAL NOT NULL, PRIMARY KEY (source, name));
"""


def _cache_file(path):
    """A cache file as xl_addin's cache wrote it before versions (JSON records in ``snapshot``, as
    they came: two sources, a replaced day, absent codes, a Refresh stamp), written with plain SQL."""
    with sqlite3.connect(path) as conn:
        conn.executescript(_OLD_CACHE_DDL)
        for source in (SRC, OTHER):
            for i, day in enumerate(DAYS[:5]):
                for code in ("00700", "00005", "02318"):
                    conn.execute("INSERT OR REPLACE INTO snapshot VALUES (?, ?, ?, ?, ?)",
                                 (source, code, day.isoformat(), 1000.0 + i, json.dumps(make_record(code, day))))
                conn.execute("INSERT OR REPLACE INTO absent VALUES (?, '12345', ?)", (source, 1000.0 + i))
            conn.execute("UPDATE snapshot SET fetched_at = 2000.0, record = ? WHERE code = '00005' AND data_date = ?",
                         (json.dumps(make_record("00005", DAYS[4])), DAYS[4].isoformat()))  # the same day again
        conn.execute("INSERT INTO stamp VALUES (?, 'not_before', 1500.0)", (SRC,))
    conn.close()


def _tables(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    return names


def test_opening_a_cache_file_keeps_every_row(tmp_path):
    from xl_addin.cache import Cache

    path = tmp_path / "mm_ah.sqlite3"
    _cache_file(path)
    with sqlite3.connect(path) as conn:
        legacy = conn.execute("SELECT source, code, data_date, fetched_at, record FROM snapshot ORDER BY 1, 2, 3").fetchall()
    store = SQLiteStore(path)
    kept = list(store.export_rows())
    assert len(kept) == len(legacy) == 2 * 3 * 5
    for (source, code, data_date, fetched_at, record), s in zip(legacy, kept):
        assert (s.source, s.code, s.data_date.isoformat(), s.fetched_at) == (source, code, data_date, fetched_at)
        assert s.record() == parse_record(json.loads(record))
    assert store.absent(["12345"], source=SRC) == {"12345": 1004.0}
    info = store.info()
    assert info.schema_version == 3 and info.sources == tuple(sorted((OTHER, SRC)))
    assert "snapshot" not in _tables(path) and "snapshot_retired" not in _tables(path)  # the JSON table is retired
    store.close()
    # idempotent: opening again migrates nothing twice; the cache reads the rows, the stamp is kept
    again = SQLiteStore(path)
    assert len(list(again.export_rows())) == len(legacy)
    again.close()
    cache = Cache(path, SRC)
    assert cache.latest(["00005"])["00005"] == (parse_record(make_record("00005", DAYS[4])), 2000.0)
    assert cache.latest(["12345"])["12345"][1] == 1004.0 and cache.not_before() == 1500.0
    cache.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall() == [(1,), (2,), (3,)]


def test_a_version_2_file_moves_every_json_row_into_the_history(tmp_path, caplog):
    """A file the previous xl_addin wrote (schema 2: each fetch in the JSON table and the typed one):
    the JSON rows newer than the typed ones (a history write that failed) replace them, rows only in
    JSON are added, and a row that cannot be typed is kept aside, never lost."""
    path = tmp_path / "mm_ah.sqlite3"
    _cache_file(path)
    with sqlite3.connect(path) as conn:  # schema 2, as the previous xl_addin left it
        conn.execute(schema_sql("VERSION_DDL"))
        conn.executemany("INSERT INTO schema_version VALUES (?, 0)", [(1,), (2,)])
        conn.execute(schema_sql("table_ddl"))
        conn.execute(schema_sql("INDEX_DDL"))
        old = parse_record(make_record("00700", DAYS[0]))
        conn.execute(f"INSERT INTO history (source, code, data_date, fetched_at, {', '.join(VALUE_KEYS)}) "
                     f"VALUES (?, '00700', ?, 900.0, {', '.join('?' * len(VALUE_KEYS))})",
                     (SRC, DAYS[0].isoformat(), *[None for _ in VALUE_KEYS]))  # an older, emptier fetch
        conn.execute("INSERT INTO snapshot VALUES (?, '00388', '', 3000.0, ?)",
                     (SRC, json.dumps({**make_record("00388", DAYS[0]), "last_data_date": None})))  # no data date
        conn.execute("INSERT INTO snapshot VALUES (?, '00388', ?, 3000.0, 'not json')", (SRC, DAYS[1].isoformat()))
    conn.close()
    store = SQLiteStore(path)
    kept = {(s.source, s.code, s.data_date): s for s in store.export_rows()}
    assert len(kept) == 2 * 3 * 5
    newer = kept[(SRC, "00700", DAYS[0])]
    assert newer.fetched_at == 1000.0 and newer.record() == old  # the JSON row's newer fetch replaced it
    assert store.info().replacements == 1
    assert "snapshot" not in _tables(path)
    with sqlite3.connect(path) as conn:
        aside = conn.execute("SELECT code, data_date, record FROM snapshot_retired ORDER BY data_date").fetchall()
    conn.close()
    assert [(c, d) for c, d, _ in aside] == [("00388", ""), ("00388", DAYS[1].isoformat())]
    assert "00388" in caplog.text and "snapshot_retired" in caplog.text
    store.close()


def test_a_new_file_is_made_as_the_migrations_would_make_it(tmp_path):
    from xl_addin.store.sqlite import MIGRATIONS

    SQLiteStore(tmp_path / "new.sqlite3").info()  # made in one step
    with sqlite3.connect(tmp_path / "stepped.sqlite3") as conn:
        conn.execute(schema_sql("VERSION_DDL"))
        for version in sorted(MIGRATIONS):
            MIGRATIONS[version](conn)
    conn.close()

    def layout(name):
        with sqlite3.connect(tmp_path / name) as conn:
            return sorted(conn.execute("SELECT type, name, sql FROM sqlite_master"))

    assert layout("new.sqlite3") == layout("stepped.sqlite3")
    with sqlite3.connect(tmp_path / "new.sqlite3") as conn:
        assert conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall() == [(1,), (2,), (3,)]


def schema_sql(name: str) -> str:
    from xl_addin.store import schema

    value = getattr(schema, name)
    return value() if callable(value) else value


def test_two_processes_opening_a_cache_file_at_once_copy_it_once(tmp_path):
    path = tmp_path / "mm_ah.sqlite3"
    _cache_file(path)
    script = ("import sys; from xl_addin.store import SQLiteStore; "
              "print(SQLiteStore(sys.argv[1]).info().snapshots)")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0] and outs == ["30"] * 3
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall() == [(1,), (2,), (3,)]


def test_a_record_without_a_data_date_cannot_be_a_snapshot():
    from xl_addin.exceptions import MalformedRecordError

    record = parse_record({**make_record("00005"), "last_data_date": None})
    with pytest.raises(MalformedRecordError, match="00005"):
        Snapshot.from_record(SRC, record, 1.0)


def test_a_file_from_a_newer_version_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "h.sqlite3"
    SQLiteStore(path).put([snap("00700", DAYS[0])])
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 0)")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer xl_addin"):
        SQLiteStore(path).info()
    assert path.read_bytes() == before


def test_an_unreadable_file_says_so_and_is_not_moved(tmp_path):
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"this is not a database, it is a shopping list" * 100)
    with pytest.raises(StoreError, match=str(path.name)):
        SQLiteStore(path).latest(["00700"], source=SRC)
    assert path.read_bytes().startswith(b"this is not a database")


def test_the_layout_is_a_typed_table_read_by_its_primary_key(tmp_path):
    store = SQLiteStore(tmp_path / "history.sqlite3")
    store.put([snap("00700", DAYS[0])])
    with sqlite3.connect(store.path) as conn:
        columns = {r[1]: r[2] for r in conn.execute("PRAGMA table_info(history)")}
        plan = " ".join(r[3] for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT data_date, mm_sh FROM history "
            "WHERE source = ? AND code = ? AND data_date BETWEEN ? AND ?", (SRC, "00700", "2025-01-01", "2026-01-01")))
    assert columns["mm_sh"] == "INTEGER" and columns["mm_sh_cap_r"] == "REAL" and "record" not in columns
    assert "SEARCH history USING PRIMARY KEY (source=? AND code=? AND data_date>? AND data_date<?)" in plan


# -- files in and out ---------------------------------------------------------------------------------
TRICKY = {"mm_sh": 2**53 + 1, "mm_sha": 0.1 + 0.2, "mm_sh_cap_r": 5e-324, "spc": -1e-17,
          "mm_sh_nba_d1": 1.7976931348623157e308, "mm_sh_nbpr_d1": 1 / 3}


def test_export_then_import_into_an_empty_store_round_trips_exactly(filled, tmp_path):
    filled.put([Snapshot(OTHER, "00001", DAYS[0], 1_773_000_000.123456789, TRICKY)])
    path = tmp_path / "out" / "history.csv"
    n = transfer.export_file(filled, path)
    assert n == filled.info().snapshots
    target = open_store(tmp_path / "empty.sqlite3")
    result = transfer.import_file(target, path)
    assert (result.inserted, result.replaced) == (n, 0)
    before, after = list(filled.export_rows()), list(target.export_rows())
    assert after == before

    def bits(snapshots):
        return [(repr(s.fetched_at), [(k, repr(v), type(v)) for k, v in sorted(s.values.items())]) for s in snapshots]

    assert bits(after) == bits(before)
    tricky = target.latest(["00001"], source=OTHER)["00001"].values
    assert tricky["mm_sh"] == 2**53 + 1 and repr(tricky["spc"]) == "-1e-17" and tricky["mm_sh_cap_r"] == 5e-324


def test_importing_the_same_file_twice_changes_nothing(filled, tmp_path):
    path = tmp_path / "h.csv"
    transfer.export_file(filled, path)
    info = filled.info()
    again = transfer.import_file(filled, path)
    assert (again.inserted, again.replaced, again.unchanged) == (0, 0, info.snapshots)
    assert filled.info() == info


def test_import_merges_a_colleagues_newer_fetches(filled, tmp_path):
    colleague = open_store(tmp_path / "colleague.sqlite3")
    newer = snap("00700", DAYS[-1], fetched_at=9e9)
    colleague.put([newer, snap("00700", DAYS[-1] + dt.timedelta(days=3))])
    transfer.export_file(colleague, tmp_path / "c.csv")
    result = transfer.import_file(filled, tmp_path / "c.csv")
    assert (result.inserted, result.replaced) == (1, 1)
    assert filled.info().replacements == 1


def test_bad_rows_are_reported_by_line_and_nothing_is_imported(filled, tmp_path):
    path = tmp_path / "h.csv"
    transfer.export_file(filled, path)
    lines = path.read_text("utf-8").splitlines()
    lines[2] = lines[2].replace(DAYS[1].isoformat(), "2026-02-30")  # line 3
    cells = lines[4].split(",")
    cells[4] = "lots"  # line 5: mm_sh
    lines[4] = ",".join(cells)
    lines[6] = lines[6] + ",1"  # line 7: one value too many
    half = lines[7].split(",")
    half[4] = half[4] + ".5"  # line 8: half a share
    lines[7] = ",".join(half)
    cells = lines[8].split(",")
    cells[1] = "700"  # line 9: not a five-digit code
    lines[8] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", "utf-8")
    target = open_store(tmp_path / "t.sqlite3")
    with pytest.raises(ImportFileError) as caught:
        transfer.import_file(target, path)
    found = [line for line, _ in caught.value.problems]
    assert found == [3, 5, 7, 8, 9]
    text = str(caught.value)
    assert "line 3: data_date '2026-02-30'" in text and "line 5: mm_sh is 'lots'" in text
    assert f"line 8: mm_sh is {float(half[4])!r}, not a whole number of shares" in text
    assert "line 9: code '700' is not a five-digit code" in text
    assert "nothing imported" in text and "\n" not in text
    assert target.info().snapshots == 0


@pytest.mark.parametrize("content,needle", [
    ("", "empty"),
    ("source,code,data_date\n", "missing column(s) fetched_at"),
    ("source,code,data_date,fetched_at,colour\n", "unknown column(s) 'colour'"),
])
def test_a_file_that_is_no_history_is_refused_at_line_1(store, tmp_path, content, needle):
    path = tmp_path / "h.csv"
    path.write_text(content, "utf-8")
    with pytest.raises(ImportFileError, match="line 1") as caught:
        transfer.import_file(store, path)
    assert needle in str(caught.value)


def test_other_file_kinds_and_a_missing_file(store, tmp_path):
    with pytest.raises(InputError, match=r"\.csv or \.parquet"):
        transfer.import_file(store, tmp_path / "h.xlsx")
    with pytest.raises(InputError, match="cannot read"):
        transfer.import_file(store, tmp_path / "missing.csv")


def test_parquet_round_trips_or_names_the_missing_extra(filled, tmp_path):
    path = tmp_path / "h.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="pyarrow"):
            transfer.export_file(filled, path)
        assert not path.exists()
        return
    transfer.export_file(filled, path)
    target = open_store(tmp_path / "t.sqlite3")
    transfer.import_file(target, path)
    assert list(target.export_rows()) == list(filled.export_rows())


# -- pandas ---------------------------------------------------------------------------------------
def test_importing_the_store_does_not_load_pandas(tmp_path):
    code = ("import sys, xl_addin.store, xl_addin.store.transfer; s = xl_addin.store.open_store(sys.argv[1]); "
            "s.series(['00700'], ['mm_sh'], source='x'); print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.sqlite3")], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_long_frame_is_tidy_with_proper_dtypes(filled):
    import pandas as pd

    fields = ["mm_sh", "mm_sh_cap_r", "mm_sh_nbv_d5"]
    rows = filled.series(["00700", "00005"], fields, DAYS[0], DAYS[4], source=SRC)
    frame = frames.long_frame(rows, fields)
    assert list(frame.columns) == ["code", "date", *fields] and len(frame) == 10
    assert str(frame["date"].dtype) == "datetime64[ns]"
    assert str(frame["mm_sh"].dtype) == "Int64" and str(frame["mm_sh_nbv_d5"].dtype) == "Int64"
    assert str(frame["mm_sh_cap_r"].dtype) == "float64"
    first = frame.iloc[0]
    assert first["code"] == "00700" and first["date"] == pd.Timestamp(DAYS[0])
    assert first["mm_sh"] == parse_record(make_record("00700", DAYS[0]))["mm_sh"]


def test_wide_frame_has_dates_down_codes_across_and_gaps_not_zeros(filled):
    import pandas as pd

    filled.put([snap("00388", DAYS[1])])
    rows = filled.series(["00005", "00388"], ["mm_sh"], source=SRC)
    wide = frames.wide_frame(rows, ["mm_sh"])
    assert list(wide.columns) == ["00005", "00388"] and isinstance(wide.index, pd.DatetimeIndex)
    assert list(wide.index) == [pd.Timestamp(d) for d in DAYS] and str(wide["00005"].dtype) == "Int64"
    assert wide["00388"].isna().sum() == len(DAYS) - 1 and not (wide["00388"] == 0).any()
    two = frames.wide_frame(filled.series(["00005"], ["mm_sh", "spc"], source=SRC), ["mm_sh", "spc"])
    assert list(two.columns) == [("mm_sh", "00005"), ("spc", "00005")]


def test_frames_of_an_empty_answer(store):
    frame = frames.long_frame([], ["mm_sh"])
    assert len(frame) == 0 and list(frame.columns) == ["code", "date", "mm_sh"]
    assert str(frame["date"].dtype) == "datetime64[ns]"


def test_a_source_with_odd_characters_comes_back_as_it_was(store):
    odd = 'http://127.0.0.1:9/a"b\\c,{d} e\'f'
    store.put([snap("00700", DAYS[0], source=odd), snap("00005", DAYS[0], source=odd)])
    assert store.info().sources == (odd,)
    assert sorted(store.latest(["00700", "00005"], source=odd)) == ["00005", "00700"]
    assert [s.source for s in store.export_rows()] == [odd, odd]
