"""History read back: DataFrames from the service, LX_MMAH_HIST (pure and through xlwings' Windows
machinery), against snapshots fetched from the sandbox on several days and kept in the store."""

import datetime as dt
import subprocess
import sys
import time

import pytest

import excel_harness as xh
from conftest import ROOT

from xl_addin.formula_hist import date_range, hist_matrix, parse_date
from xl_addin.sandbox.data import trading_days
from xl_addin.store import Snapshot

DAYS = trading_days(dt.date(2026, 3, 9), dt.date(2026, 3, 17))  # 7 trading days
CODES = ["00700", "00005"]
TODAY = dt.date(2026, 3, 20)


def keep_days(svc, sandbox, codes=CODES, days=DAYS):
    """Fetch *codes* from the sandbox on each of *days* and keep every snapshot: {(code, day): record}."""
    kept = {}
    for day in days:
        sandbox.dataset.as_of = day
        answer = svc.fetch(codes, use_cache=False)
        svc.history_store().put(Snapshot.from_record(svc.settings.base_url, r, time.time())
                                for r in answer.records.values())
        for code, record in answer.records.items():
            kept[(code, record["last_data_date"])] = record
    return kept


@pytest.fixture
def kept(service, sandbox):
    return keep_days(service, sandbox)


# -- pandas ---------------------------------------------------------------------------------------
def test_fetch_to_frame_has_codes_down_fields_across_with_proper_dtypes(service):
    answer = service.fetch(["00700", "00005", "99999"])
    frame = answer.to_frame()
    assert list(frame.index) == ["00700", "00005"] and frame.index.name == "code"  # no record: no row
    assert str(frame["last_data_date"].dtype) == "datetime64[ns]"
    assert str(frame["mm_sh"].dtype) == "Int64" and str(frame["mm_sh_cap_r"].dtype) == "float64"
    assert frame.loc["00700", "mm_sh"] == answer.records["00700"]["mm_sh"]
    assert frame.loc["00005", "last_data_date"].date() == answer.records["00005"]["last_data_date"]


def test_history_long_and_wide_come_back_with_the_right_days_and_no_request(service, sandbox, kept):
    before = sandbox.request_count
    long = service.history(["700", "0005.HK"], ["mm_sh", "mm_sh_nbv_d1"], start=DAYS[1], end=DAYS[-1].isoformat())
    wide = service.history(CODES, "mm_sh", wide=True)
    assert sandbox.request_count == before  # a history query never asks the service
    assert list(long.columns) == ["code", "date", "mm_sh", "mm_sh_nbv_d1"]
    assert str(long["date"].dtype) == "datetime64[ns]"
    mine = long[long.code == "00700"]
    assert [d.date() for d in mine["date"]] == DAYS[1:]
    for day, value in zip(DAYS[1:], mine["mm_sh"]):
        assert value == kept[("00700", day)]["mm_sh"]
    # each day's net buying in shares is that day's change in holdings
    assert list(mine["mm_sh_nbv_d1"][1:]) == list(mine["mm_sh"].diff()[1:].astype("int64"))
    assert list(wide.columns) == CODES and [d.date() for d in wide.index] == DAYS
    assert wide.loc[str(DAYS[2]), "00005"] == kept[("00005", DAYS[2])]["mm_sh"]


def test_importing_xl_addin_does_not_load_pandas_until_a_frame_is_asked_for(tmp_path):
    code = ("import sys, xl_addin, xl_addin.service, xl_addin.formula_hist, xl_addin.store;"
            "print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- LX_MMAH_HIST, pure -------------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    (None, None), ("", None),
    (dt.datetime(2026, 3, 10, 0, 0), dt.date(2026, 3, 10)),  # a date cell, as xlwings hands it
    (46091.0, dt.date(2026, 3, 10)),  # an Excel serial
    ("2026-03-10", dt.date(2026, 3, 10)),
    (-60.0, TODAY - dt.timedelta(days=60)), ("-60", TODAY - dt.timedelta(days=60)), (0, TODAY),
])
def test_start_and_end_are_read_as_a_sheet_holds_them(value, expected):
    assert parse_date(value, TODAY, "start") == expected


@pytest.mark.parametrize("start, end, needle", [
    ("yesterday", None, "'yesterday', not a date"),
    ("2026-13-01", None, "not a date"),
    (1.5, None, "whole number"),
    ("2026-03-12", "2026-03-10", "end 2026-03-10 is before start 2026-03-12"),
    ("2026-03-25", None, "start 2026-03-25 is in the future"),
    (None, 46110.0, "is in the future"),
    (True, None, "not a date"),
])
def test_a_bad_start_or_end_is_one_input_error_cell(start, end, needle):
    out = hist_matrix("00700", "mm_sh", start, end, False, lambda *a: pytest.fail("no query"), TODAY)
    assert len(out) == 1 and len(out[0]) == 1
    assert out[0][0].startswith("#N/A Input Error: ") and needle in out[0][0]


def test_dates_default_to_all_history_up_to_today():
    assert date_range(None, None, TODAY) == (None, TODAY)


def fake_series(rows):
    def series(codes, field, start, end):
        return [r for r in rows if r[0] in codes and (start is None or r[1] >= start) and r[1] <= end]
    return series


ROWS = [("00700", DAYS[0], 10), ("00700", DAYS[1], 11), ("00700", DAYS[2], None),
        ("00005", DAYS[0], 20), ("00005", DAYS[2], 22)]


def test_one_code_gives_a_date_column_and_a_value_column_with_real_dates():
    out = hist_matrix(700.0, "港股通持仓", None, None, True, fake_series(ROWS), TODAY)
    assert out[0] == ["date", "港股通持仓"]
    assert out[1:] == [[dt.datetime(2026, 3, 9), 10], [dt.datetime(2026, 3, 10), 11], [dt.datetime(2026, 3, 11), ""]]


def test_several_codes_give_dates_down_codes_across_and_a_missing_day_is_blank_not_zero():
    out = hist_matrix(((700.0,), ("5",), ("ABC",)), "mm_sh", None, None, True, fake_series(ROWS), TODAY)
    assert out[0] == ["date", "00700", "00005", "ABC"]
    assert out[2] == [dt.datetime(2026, 3, 10), 11, "", "#N/A Invalid Code"]  # 00005 has no snapshot that day
    assert [r[0] for r in out[1:]] == [dt.datetime(2026, 3, 9), dt.datetime(2026, 3, 10), dt.datetime(2026, 3, 11)]


@pytest.mark.parametrize("codes, field, rows, empty, needle", [
    ("00700", "mm_shx", ROWS, False, "#N/A Invalid Field: mm_shx"),
    ("00700", "last_data_date", ROWS, False, "#N/A Invalid Field: last_data_date"),
    ("ABC", "mm_sh", ROWS, False, "#N/A Invalid Code"),
    ("00939", "mm_sh", ROWS, False, "#N/A No Data: no snapshot of 00939 kept from the first to 2026-03-20"),
    ("00700", "mm_sh", [], True, "#N/A No Data: the history store is empty"),
])
def test_bad_input_is_one_clear_na_cell(codes, field, rows, empty, needle):
    out = hist_matrix(codes, field, None, None, False, fake_series(rows), TODAY, lambda: empty)
    assert len(out) == 1 and out[0][0].startswith(needle)


# -- LX_MMAH_HIST through xlwings' Windows UDF machinery, on the kept history ---------------------
@pytest.fixture
def udfs(formula_service):
    module = xh.load()
    yield module
    module.reset()


def test_lx_mmah_hist_is_registered_like_the_other_formulas(udfs):
    info = udfs.LX_MMAH_HIST.__xlfunc__
    assert info["category"] == "Lixinger" and info["call_in_wizard"] is False and not info["volatile"]
    assert udfs.LX_MMAH_HIST.__doc__
    assert all(a.get("doc") for a in info["args"] if a["name"] != "caller")
    import io
    import types

    from xlwings.udfs import generate_vba_wrapper

    f = io.StringIO()
    generate_vba_wrapper("xl_addin.udfs", udfs, f, types.SimpleNamespace(Name="xl_addin.xlam"))
    body = f.getvalue().split("Function LX_MMAH_HIST(")[1].split("End Function")[0]
    assert "Application.Volatile" not in body
    guard = 'If (Not Application.CommandBars("Standard").Controls(1).Enabled) Then Exit Function'
    assert [line.strip() for line in body.splitlines()[1:] if line.strip()][0] == guard  # the Function Wizard


def test_lx_mmah_hist_gives_back_each_days_snapshot_without_a_request(udfs, formula_service, sandbox):
    kept = keep_days(formula_service, sandbox)
    before = sandbox.request_count
    one = xh.call(udfs.LX_MMAH_HIST, "700", "mm_sh", dt.datetime(2026, 3, 10), "2026-03-17", True)
    several = xh.call(udfs.LX_MMAH_HIST, (("00700", "00005"),), "mm_sh_nbv_d1", 46090.0)
    assert sandbox.request_count == before
    assert one[0] == ["date", "mm_sh"]
    assert one[1:] == [[dt.datetime(d.year, d.month, d.day), kept[("00700", d)]["mm_sh"]] for d in DAYS[1:]]
    assert [r[0] for r in several] == [dt.datetime(d.year, d.month, d.day) for d in DAYS]
    assert [r[1:] for r in several] == [[kept[(c, d)]["mm_sh_nbv_d1"] for c in CODES] for d in DAYS]


def test_lx_mmah_hist_on_an_empty_store_and_with_bad_dates_says_so(udfs, formula_service, sandbox):
    assert xh.call(udfs.LX_MMAH_HIST, "00700", "mm_sh")[0][0].startswith("#N/A No Data: the history store is empty")
    assert xh.call(udfs.LX_MMAH_HIST, "00700", "mm_sh", "soon")[0][0].startswith("#N/A Input Error: start")
    assert sandbox.request_count == 0


# -- lx-addin history ---------------------------------------------------------------------------------
from conftest import run_cli  # noqa: E402


@pytest.fixture
def cli_env(sandbox):
    return {"LIXINGER_BASE_URL": sandbox.url}


def test_cli_history_shows_each_days_values_as_csv_and_json_without_a_request(service, sandbox, kept, cli_env):
    before = sandbox.request_count
    out = run_cli("history", "700", "0005.HK", "--field", "mm_sh", "--fields", "mm_sh_nbv_d1",
                  "--from", "2026-03-10", "--to", "2026-03-17", "--format", "csv", env=cli_env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "code,date,mm_sh,mm_sh_nbv_d1"
    assert lines[1:] == [f"{c},{d.isoformat()},{kept[(c, d)]['mm_sh']},{kept[(c, d)]['mm_sh_nbv_d1']}"
                         for c in CODES for d in DAYS[1:]]
    js = run_cli("history", "700", "--field", "港股通持仓", "--format", "json", env=cli_env)
    import json

    assert [(r["date"], r["mm_sh"]) for r in json.loads(js.stdout)] == [
        (d.isoformat(), kept[("00700", d)]["mm_sh"]) for d in DAYS]
    table = run_cli("history", "700", "--field", "mm_sh", env=cli_env)
    assert table.returncode == 0 and f"{kept[('00700', DAYS[0])]['mm_sh']:,d}" in table.stdout
    assert sandbox.request_count == before


@pytest.mark.parametrize("args, needle", [
    (("700", "--field", "mm_shx"), "mm_shx"),
    (("700",), "name a field"),
    (("ABC", "--field", "mm_sh"), "ABC"),
    (("00939", "--field", "mm_sh"), "no snapshot of 00939 kept"),
    (("700", "--field", "mm_sh", "--from", "2026-03-12", "--to", "2026-03-10"), "--to 2026-03-10 is before --from"),
    (("700", "--field", "mm_sh", "--from", "soon"), "--from is 'soon', not a date"),
    (("700", "--field", "mm_sh", "--to", "2999-01-01"), "--to 2999-01-01 is in the future"),
])
def test_cli_history_bad_input_is_one_line_and_a_failure(service, sandbox, kept, cli_env, args, needle):
    out = run_cli("history", *args, env=cli_env)
    assert out.returncode == 1 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and needle in out.stderr, out.stderr


def test_cli_history_export_then_import_into_an_empty_store_round_trips_and_twice_changes_nothing(
        service, sandbox, kept, cli_env, tmp_path):
    path = tmp_path / "h.csv"
    out = run_cli("history", "export", str(path), env=cli_env)
    assert out.returncode == 0 and f"Exported {len(kept)} snapshot(s)" in out.stdout
    other = {**cli_env, "XL_ADDIN_CACHE_DIR": str(tmp_path / "other")}
    first = run_cli("history", "import", str(path), env=other)
    again = run_cli("history", "import", str(path), env=other)
    assert first.returncode == 0 and f"{len(kept)} new" in first.stdout
    assert again.returncode == 0 and "0 new, 0 newer" in again.stdout and f"{len(kept)} already kept" in again.stdout
    back = run_cli("history", "700", "5", "--field", "mm_sh", "--format", "csv", env=other)
    mine = run_cli("history", "700", "5", "--field", "mm_sh", "--format", "csv", env=cli_env)
    assert back.stdout == mine.stdout and back.stdout.count("\n") == len(kept) + 1


def test_cli_history_import_of_a_file_with_bad_rows_names_their_lines_and_imports_nothing(
        service, sandbox, kept, cli_env, tmp_path):
    path = tmp_path / "h.csv"
    assert run_cli("history", "export", str(path), env=cli_env).returncode == 0
    lines = path.read_text("utf-8").splitlines()
    parts = lines[2].split(",")
    lines[2] = ",".join(parts[:1] + ["7OO"] + parts[2:])
    lines[4] = lines[4].replace("2026-03-", "2026-13-", 1)
    path.write_text("\n".join(lines) + "\n", "utf-8")
    other = {**cli_env, "XL_ADDIN_CACHE_DIR": str(tmp_path / "other")}
    out = run_cli("history", "import", str(path), env=other)
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1
    assert "2 bad row(s), nothing imported" in out.stderr and "line 3:" in out.stderr and "line 5:" in out.stderr
    empty = run_cli("history", "700", "--field", "mm_sh", env=other)
    assert empty.returncode == 1 and "holds nothing from" in empty.stderr  # nothing half-imported


def test_cli_history_help_has_examples():
    out = run_cli("history", "--help")
    assert out.returncode == 0 and "lx-addin history 700 --field mm_sh --from -90" in out.stdout
