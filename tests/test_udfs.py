"""LX_MMAH & co. through xlwings' own Windows UDF machinery, against the sandbox over HTTP."""

import datetime as dt
import io
import os
import subprocess
import sys
import types
from dataclasses import replace

import pytest

import excel_harness as xh
from conftest import ROOT

from xl_addin.service import OUTAGE_PAUSE, DataService, set_shared

REF, DIV0 = -2146826265, -2146826281  # error cells as COM hands them over


@pytest.fixture
def udfs(formula_service):
    module = xh.load()
    yield module
    module.reset()


def value_of(sandbox, code, key):
    return sandbox.dataset.record(code).get(key)


def test_column_of_codes_typed_every_way(udfs, sandbox):
    raw = ((700.0,), ("0005.HK",), (None,), ("ABC",), (REF,), (99999.0,), ("  939 ",))
    out = xh.call(udfs.LX_MMAH, raw, "mm_sh_nba_d20")
    assert out == [
        [value_of(sandbox, "00700", "mm_sh_nba_d20")],
        [value_of(sandbox, "00005", "mm_sh_nba_d20")],
        [""],  # a blank code cell gives a blank row
        ["#N/A Invalid Code"],
        ["#N/A Input Error #REF!"],  # an error cell is not a blank
        ["#N/A No Data"],
        [value_of(sandbox, "00939", "mm_sh_nba_d20")],
    ]
    assert all(isinstance(r[0], str) and r[0].startswith("#N/A") for r in out[3:6])


def test_row_of_codes_with_one_field_gives_a_row(udfs, sandbox):
    out = xh.call(udfs.LX_MMAH, ((700.0, 5.0, "9988"),), "MM_SH")
    assert out == [[value_of(sandbox, c, "mm_sh") for c in ("00700", "00005", "09988")]]


def test_block_of_codes_read_row_by_row_into_a_matrix(udfs, sandbox):
    out = xh.call(udfs.LX_MMAH, ((700.0, 5.0), (939.0, None)), (("mm_sh", "spc"),))
    assert [r[0] for r in out] == [value_of(sandbox, c, "mm_sh") for c in ("00700", "00005", "00939")] + [""]
    assert len(out) == 4 and all(len(r) == 2 for r in out)


def test_fields_by_chinese_label_with_headers_and_an_unknown_field(udfs, sandbox):
    out = xh.call(udfs.LX_MMAH, ((700.0,), (5.0,)), (("港股通持仓金额", "mm_sh_NBA_d5", "mm_sh_nba_d7"),), True)
    assert out[0] == ["港股通持仓金额", "mm_sh_nba_d5", "mm_sh_nba_d7"]
    assert out[1][:2] == [value_of(sandbox, "00700", "mm_sha"), value_of(sandbox, "00700", "mm_sh_nba_d5")]
    assert out[1][2] == out[2][2] == "#N/A Invalid Field: mm_sh_nba_d7"


def test_data_date_is_a_real_naive_date(udfs):
    (cell,), = xh.call(udfs.LX_MMAH, 700.0, "last_data_date")
    assert isinstance(cell, dt.datetime) and cell.tzinfo is None
    assert (cell.year, cell.month, cell.day) == (2026, 3, 17)


def test_a_field_missing_from_a_record_is_blank(udfs, sandbox):
    young = next(c for c in sandbox.dataset.codes if "mm_sh_nba_d240" not in sandbox.dataset.record(c))
    out = xh.call(udfs.LX_MMAH, young, (("mm_sh_nba_d1", "mm_sh_nba_d240"),))
    assert out[0][0] == value_of(sandbox, young, "mm_sh_nba_d1") and out[0][1] == ""


def test_no_token_is_one_message_that_says_how(udfs, settings):
    set_shared(DataService(settings))  # no token given, none in the environment or the keyring
    out = xh.call(udfs.LX_MMAH, ((700.0,), (5.0,), (939.0,)), "mm_sh")
    assert len(out) == 1 and len(out[0]) == 1
    assert out[0][0].startswith("#N/A No Token") and "lx-addin token set" in out[0][0]


def test_service_down_serves_cached_values_and_does_not_wait_per_cell(udfs, sandbox, formula_service):
    set_shared(DataService(replace(formula_service.settings, max_age=0), token=sandbox.token,  # all stale at once
                           outage_pause=OUTAGE_PAUSE))
    before = xh.call(udfs.LX_MMAH, ((700.0,), (5.0,)), "mm_sh")
    sandbox.inject("503", times=None)
    after = xh.call(udfs.LX_MMAH, ((700.0,), (5.0,)), "mm_sh")
    assert after == before
    n = sandbox.request_count
    again = xh.call(udfs.LX_MMAH, ((700.0,), (939.0,)), "mm_sh")  # within the outage pause: no request
    assert sandbox.request_count == n
    assert again[0] == before[0] and again[1][0] == "#N/A Service Unavailable"
    info = dict(map(tuple, xh.call(udfs.LX_MMAH_INFO)))
    assert info["stale values shown"].startswith("yes")


def test_service_down_nothing_cached_is_one_message(udfs, sandbox):
    sandbox.inject("503", times=None)
    (cell,), = xh.call(udfs.LX_MMAH, ((700.0,), (5.0,)), "mm_sh")
    assert cell.startswith("#N/A Service Unavailable: ") and "HTTP 503" in cell


def test_never_a_traceback(udfs, monkeypatch):
    monkeypatch.setenv("LIXINGER_BASE_URL", "http://example.com/api")  # refused: plain http
    udfs.reset()
    (cell,), = xh.call(udfs.LX_MMAH, 700.0, "mm_sh")
    assert cell.startswith("#N/A") and "plain http" in cell and "Traceback" not in cell
    (cell,), = xh.call(udfs.LX_MMAH, 700.0, None)
    assert cell.startswith("#N/A Invalid Field")


def test_one_formula_over_n_codes_sends_ceil_n_over_100(udfs, sandbox):
    codes = tuple((float(c),) for c in sandbox.dataset.codes[:250])
    out = xh.call(udfs.LX_MMAH, codes, "mm_sh")
    assert sandbox.request_count == 3 and len(out) == 250


def test_41_formulas_over_the_same_codes_send_the_first_ones_requests_only(udfs, sandbox):
    from xl_addin.fields import FIELDS

    codes = tuple((float(c),) for c in sandbox.dataset.codes[:150])
    for f in FIELDS[1:]:
        xh.call(udfs.LX_MMAH, codes, f.key)
    assert len(FIELDS[1:]) == 41 and sandbox.request_count == 2


def test_sheet_of_single_cell_formulas_sends_one_request(udfs, sandbox):
    from xl_addin.fields import FIELDS
    from xl_addin.layout import col_number

    codes = sandbox.dataset.codes[:50]
    fields = [f.key for f in FIELDS[2:10]]  # numbers (the date has its own test)
    cells = {"A1": "code"}
    for j, key in enumerate(fields):
        cells[f"{chr(66 + j)}1"] = key
    for i, code in enumerate(codes, start=2):
        cells[f"A{i}"] = float(int(code))
        for j in range(len(fields)):
            col = chr(66 + j)
            cells[f"{col}{i}"] = f"=LX_MMAH($A{i},{col}$1)"
    sheet = xh.ComSheet(cells)
    assert col_number("B") == 2
    for i, code in enumerate(codes, start=2):
        for j, key in enumerate(fields):
            out = xh.call(udfs.LX_MMAH, sheet.cell(f"A{i}"), sheet.cell(f"{chr(66 + j)}1"),
                          caller=sheet.cell(f"{chr(66 + j)}{i}"))
            assert out == [[value_of(sandbox, code, key)]]
    assert sandbox.request_count == 1  # not one per distinct code (50)
    scans = [c for c in sheet.calls if c[0] == "SpecialCells"]
    assert len(scans) == 1  # one scan of the sheet


def test_fields_and_info(udfs, sandbox, settings, monkeypatch):
    monkeypatch.setenv("LIXINGER_TOKEN", sandbox.token)
    set_shared(DataService(settings))  # its token from the environment, as a user's would
    table = xh.call(udfs.LX_MMAH_FIELDS)
    assert table[0] == ["key", "中文", "English", "kind"] and len(table) == 43
    assert table[5][:2] == ["mm_sh_cap_r", "港股通持仓占H股比例"]
    xh.call(udfs.LX_MMAH, 700.0, "mm_sh")
    info = dict(map(tuple, xh.call(udfs.LX_MMAH_INFO)))
    assert info["token source"] == "environment (LIXINGER_TOKEN)"
    assert info["requests this session"] == 1 and info["newest data date"] == "2026-03-17"
    assert info["stale values shown"] == "no"
    assert sandbox.token not in repr(xh.call(udfs.LX_MMAH_INFO))


def test_function_wizard_help_and_registration(udfs):
    from xlwings.udfs import generate_vba_wrapper

    f = io.StringIO()
    generate_vba_wrapper("xl_addin.udfs", udfs, f, types.SimpleNamespace(Name="xl_addin.xlam"))
    vba = f.getvalue()
    assert "Function LX_MMAH(codes, fields, Optional headers)" in vba
    assert "Function LX_MMAH_FIELDS()" in vba and "Function LX_MMAH_INFO()" in vba
    assert "Application.Volatile" not in vba
    for fn in (udfs.LX_MMAH, udfs.LX_MMAH_FIELDS, udfs.LX_MMAH_INFO):
        info = fn.__xlfunc__
        assert info["category"] == "Lixinger" and not info["volatile"]
        assert "expand" not in info["ret"]["options"]
        assert 20 < len(info["ret"]["doc"]) <= 255  # Excel truncates longer descriptions
        for a in info["args"]:
            if a["name"] != "caller":
                assert not a["doc"].startswith("Positional argument"), a["name"]


def test_import_does_no_io_and_loads_no_http_stack(tmp_path):
    code = (
        "import sys, socket\n"
        "def refuse(*a, **k): raise AssertionError('network at import')\n"
        "socket.socket.connect = refuse\n"
        "import xl_addin.udfs\n"
        "assert 'requests' not in sys.modules and 'sqlite3' not in sys.modules, 'heavy modules at import'\n"
    )
    env = dict(os.environ, XL_ADDIN_CACHE_DIR=str(tmp_path / "c"))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "c").exists()


def test_whole_column_reference_does_not_spill_a_million_blanks(udfs, sandbox):
    column = ((700.0,), (None,), (5.0,)) + ((None,),) * 20000  # =LX_MMAH(A:A, ...) on a short list
    out = xh.call(udfs.LX_MMAH, column, "mm_sh")
    assert out == [[value_of(sandbox, "00700", "mm_sh")], [""], [value_of(sandbox, "00005", "mm_sh")]]


# --- what crosses COM: cells read, strings, the Function Wizard, Excel 2016/2019 -------------
def code_sheet(codes, top=2, **kw):
    cells = {"A1": "code", "B1": "mm_sh", "C1": "=LX_MMAH(A:A,B1)"}
    cells.update({f"A{i}": float(int(c)) for i, c in enumerate(codes, start=top)})
    return xh.ComSheet(cells, **kw)


def test_whole_column_argument_reads_only_the_used_part_through_com(udfs, sandbox):
    codes = sandbox.dataset.codes[:50]
    sheet = code_sheet(codes)
    out = xh.call(udfs.LX_MMAH, sheet.range("A:A"), sheet.range("B1"), caller=sheet.cell("C1"))
    assert out[0] == ["#N/A Invalid Code"]  # the header cell "code"
    assert [r[0] for r in out[1:]] == [value_of(sandbox, c, "mm_sh") for c in codes]
    assert sheet.cells_read <= 51 + 1 + 3  # A1:A51, B1 (and at most a few for the scan), not 1,048,576


def test_whole_column_keeps_rows_aligned_when_codes_start_lower(udfs, sandbox):
    sheet = code_sheet(["00700", "00005"], top=4)
    out = xh.call(udfs.LX_MMAH, sheet.range("A2:A1048576"), "mm_sh", caller=sheet.cell("C1"))
    assert out == [[""], [""], [value_of(sandbox, "00700", "mm_sh")], [value_of(sandbox, "00005", "mm_sh")]]


def test_a_range_wholly_outside_the_used_range_is_one_blank_cell(udfs, sandbox):
    sheet = code_sheet(["00700"])
    out = xh.call(udfs.LX_MMAH, sheet.range("F:F"), "mm_sh", caller=sheet.cell("C1"))
    assert out == [[""]] and sheet.cells_read <= 3


def grid_sheet(codes, fields, **kw):
    cells = {f"{xh.col_letters(2 + j)}1": key for j, key in enumerate(fields)}
    for i, code in enumerate(codes, start=2):
        cells[f"A{i}"] = float(int(code))
        for j in range(len(fields)):
            col = xh.col_letters(2 + j)
            cells[f"{col}{i}"] = f"=LX_MMAH($A{i},{col}$1)"
    data = (200, 1, 100000, 50, lambda r, c: float(r + c))  # the rest of a 100,000 x 50 sheet: numbers
    return xh.ComSheet(cells, fill=data, **kw)


@pytest.mark.parametrize("udf_context", [False, True], ids=["SpecialCells filters", "SpecialCells ignored in a UDF"])
def test_neighbour_scan_of_a_100000_by_50_sheet_is_bounded(udfs, sandbox, udf_context):
    from xl_addin.fields import FIELDS
    from xl_addin.neighbours import MAX_FORMULA_CELLS, MAX_VALUE_CELLS

    codes, fields = sandbox.dataset.codes[:50], [f.key for f in FIELDS[2:6]]
    sheet = grid_sheet(codes, fields, udf_context=udf_context)
    used = sheet.UsedRange
    assert used.CountLarge == 100000 * 50
    out = xh.call(udfs.LX_MMAH, sheet.cell("A2"), sheet.cell("B1"), caller=sheet.cell("B2"))
    assert out == [[value_of(sandbox, codes[0], "mm_sh")]]
    scan_reads = sheet.cells_read - 2  # the two argument cells
    limit = 500 if not udf_context else MAX_FORMULA_CELLS + MAX_VALUE_CELLS
    assert scan_reads <= limit  # the used range's formulas and values would be 10,000,000
    for i, code in enumerate(codes, start=2):
        for j, key in enumerate(fields):
            col = xh.col_letters(2 + j)
            out = xh.call(udfs.LX_MMAH, sheet.cell(f"A{i}"), sheet.cell(f"{col}1"), caller=sheet.cell(f"{col}{i}"))
            assert out == [[value_of(sandbox, code, key)]]
    assert sandbox.request_count == 1  # still one batched request for the sheet


def flat(matrix):
    return [v for row in matrix for v in (row if isinstance(row, list) else [row])]


def test_long_texts_in_an_array_never_show_value_error(udfs, sandbox, monkeypatch):
    long_field = "x" * 300  # an unknown field typed by the analyst: echoed in the cells
    out = xh.call(udfs.LX_MMAH, ((700.0,), (5.0,)), ((long_field, "mm_sh"),), True)
    shown = xh.excel_shows(out)
    assert "#VALUE!" not in flat(shown)
    assert shown[1][0].startswith("#N/A Invalid Field: xxx") and len(shown[1][0]) == 255
    assert shown[1][1] == value_of(sandbox, "00700", "mm_sh")

    monkeypatch.setenv("LIXINGER_TIMEOUT", "9" * 400)  # a config error: a long message (it quotes the value)
    udfs.reset()
    info = xh.excel_shows(xh.call(udfs.LX_MMAH_INFO))
    assert "#VALUE!" not in flat(info)
    assert any(isinstance(v, str) and v.startswith("#N/A Setup Error") for v in flat(info))
    (cell,), = xh.call(udfs.LX_MMAH, 700.0, "mm_sh")  # one cell: the whole message stays
    assert len(cell) > 255 and xh.excel_shows([[cell]]) == [[cell]]


def test_the_function_wizard_does_not_fetch(udfs):
    from xlwings.udfs import generate_vba_wrapper

    f = io.StringIO()
    generate_vba_wrapper("xl_addin.udfs", udfs, f, types.SimpleNamespace(Name="xl_addin.xlam"))
    vba = f.getvalue()
    guard = 'If (Not Application.CommandBars("Standard").Controls(1).Enabled) Then Exit Function'
    for name in ("LX_MMAH", "LX_MMAH_FIELDS", "LX_MMAH_INFO"):
        body = vba.split(f"Function {name}(")[1].split("End Function")[0]
        first = [line.strip() for line in body.splitlines()[1:] if line.strip()][0]
        assert first == guard, name  # the wrapper returns before calling Python while the wizard is open
        assert getattr(udfs, name).__xlfunc__["call_in_wizard"] is False


def test_excel_2016_one_cell_and_ctrl_shift_enter_areas(udfs, sandbox):
    """No dynamic arrays: one code and one field is one plain value; a block is a plain array
    (no xlwings resize trick) whose top-left cell is the first code's value."""
    one = xh.call_via_com(udfs.LX_MMAH, 700.0, "mm_sh")
    assert one == value_of(sandbox, "00700", "mm_sh") and not isinstance(one, (list, tuple))
    sheet = code_sheet(sandbox.dataset.codes[:3], top=1)
    block = xh.call_via_com(udfs.LX_MMAH, sheet.range("A1:A3"), (("mm_sh", "spc"),), caller=sheet.cell("D1"))
    assert block == [[value_of(sandbox, c, k) for k in ("mm_sh", "spc")] for c in sandbox.dataset.codes[:3]]
    assert "expand" not in udfs.LX_MMAH.__xlfunc__["ret"]["options"]  # the resize needs dynamic arrays
    row = xh.call_via_com(udfs.LX_MMAH, ((700.0, 5.0),), "mm_sh")  # a row of codes: one row
    assert row == [value_of(sandbox, c, "mm_sh") for c in ("00700", "00005")]


def test_recalculation_right_after_a_refresh_is_still_one_request(udfs, sandbox, settings):
    """The Refresh button (another process: a second service on the same cache file) stamps the
    cache; Excel recalculates the sheet at once. The first formula that misses must scan the sheet
    again, though its last scan was seconds ago: else each code is one request (50, not 1)."""
    from xl_addin.service import MMAH

    codes = sandbox.dataset.codes[:50]
    cells = {"B1": "mm_sh"}
    for i, code in enumerate(codes, start=2):
        cells[f"A{i}"] = float(int(code))
        cells[f"B{i}"] = f"=LX_MMAH($A{i},B$1)"
    sheet = xh.ComSheet(cells)

    def recalc():
        for i, code in enumerate(codes, start=2):
            out = xh.call(udfs.LX_MMAH, sheet.cell(f"A{i}"), sheet.cell("B1"), caller=sheet.cell(f"B{i}"))
            assert out == [[value_of(sandbox, code, "mm_sh")]]

    recalc()
    assert sandbox.request_count == 1
    assert udfs.service().cache.path == settings.cache_path  # the button's process shares this file
    button = MMAH(settings, token=sandbox.token)
    button.expire_all()  # the Refresh button's stamp
    button.close()
    recalc()  # Excel's recalculation, within SCAN_INTERVAL of the first scan
    assert sandbox.request_count == 2  # one batched request again, not one per code
