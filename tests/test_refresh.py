"""The refresh: templates, headless refresh, what it must never touch, and failure modes."""

import datetime as dt
import hashlib
import shutil
import zipfile
from pathlib import Path

import openpyxl
import pytest

from conftest import ROOT, run_cli
from xl_addin.config import Settings
from xl_addin.exceptions import ServiceUnavailableError, TokenRejectedError, WorkbookError
from xl_addin.fields import FIELDS
from xl_addin.refresh import refresh_file
from xl_addin.service import MMAH
from xl_addin.templates import BUILDERS, render

TEMPLATES = ROOT / "templates"


def parts(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i.filename) for i in z.infolist()}


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def book(tmp_path):
    def copy(name="mm_ah.xlsx", as_=None):
        target = tmp_path / (as_ or name)
        shutil.copyfile(TEMPLATES / name, target)
        return target

    return copy


def set_codes(path, codes, sheet="MM_AH"):
    """Edit the codes column the way an analyst would (saved by a spreadsheet program)."""
    wb = openpyxl.load_workbook(path)
    ws = wb[sheet]
    for r in range(7, 1007):
        ws.cell(row=r, column=1).value = None
    for i, c in enumerate(codes):
        ws.cell(row=7 + i, column=1).value = c
    wb.save(path)


def table(path, sheet="MM_AH"):
    wb = openpyxl.load_workbook(path)
    ws = wb[sheet]
    keys = [ws.cell(row=5, column=c).value for c in range(3, 45)]  # A code, B the analyst's name, C: fields
    rows = []
    for r in range(7, 1007):
        rows.append([ws.cell(row=r, column=c).value for c in (1, *range(3, 45))])
    return keys, rows, ws


def test_committed_templates_match_the_script():
    for name in BUILDERS:
        assert (TEMPLATES / name).read_bytes() == render(name), f"run `make templates`: {name} is out of date"


def test_template_layout_names_and_formats():
    wb = openpyxl.load_workbook(TEMPLATES / "mm_ah.xlsx")
    names = {n: wb.defined_names[n].attr_text for n in ("LX_CODES", "LX_FIELDS", "LX_STATUS")}
    assert names["LX_CODES"] == "'MM_AH'!$A$7:$A$1006"
    ws = wb["MM_AH"]
    assert names["LX_FIELDS"] == "'MM_AH'!$C$5:$AR$5"
    assert [ws.cell(row=5, column=c).value for c in range(3, 45)] == [f.key for f in FIELDS]
    for c, f in enumerate(FIELDS, start=3):
        assert f.zh in ws.cell(row=6, column=c).value and f.en in ws.cell(row=6, column=c).value
        assert ws.cell(row=7, column=c).number_format == f.number_format
    assert ws.freeze_panes == "C7" and ws.auto_filter.ref  # code and name stay in view
    assert "00700" in [ws.cell(row=r, column=1).value for r in range(7, 40)]
    assert "How to use" in wb.sheetnames


def test_refresh_fills_every_field_for_every_code(book, service, sandbox):
    path = book()
    summary = refresh_file(path, service=service)
    keys, rows, ws = table(path)
    codes = [r[0] for r in rows if r[0]]
    assert summary.codes == len(codes) == summary.with_data and summary.requests == 1
    for row in rows[: len(codes)]:
        expected = sandbox.dataset.record(row[0])
        for key, value in zip(keys, row[1:]):
            if key == "last_data_date":
                assert value == dt.datetime(2026, 3, 17)
            else:
                assert value == expected.get(key), (row[0], key)
    assert ws["J1"].value.date() == dt.date.today() and ws["J2"].value == dt.datetime(2026, 3, 17)
    assert ws["J3"].value == f"{len(codes)} of {len(codes)} with data" and ws["J4"].value == "none"
    assert ws["E7"].number_format == "#,##0" and ws["G7"].number_format == "0.00%"


def test_bad_codes_and_no_data_are_said_in_the_row(book, service):
    path = book()
    set_codes(path, ["700", "ABC", 99999, "0005.HK"])
    refresh_file(path, service=service)
    _, rows, ws = table(path)
    assert rows[0][1] == "00700" and rows[3][1] == "00005"
    assert rows[1][1].startswith("#N/A Invalid Code") and rows[1][2] is None
    assert rows[2][1] == "#N/A No Data" and rows[2][3] is None
    assert "ABC" in ws["J4"].value and "99999: no data" in ws["J4"].value


def test_refresh_twice_with_fewer_codes_leaves_no_stale_rows(book, service):
    path = book()
    refresh_file(path, service=service)
    set_codes(path, ["939", "700"])
    refresh_file(path, service=service)
    _, rows, _ = table(path)
    assert [r[1] for r in rows[:2]] == ["00939", "00700"]
    assert all(all(v is None for v in r[1:]) for r in rows[2:]), "rows of removed codes were cleared"


def test_everything_outside_the_table_is_left_alone(book, service, tmp_path):
    path = book()
    wb = openpyxl.load_workbook(path)
    ws = wb["MM_AH"]
    ws["AS7"] = "my note on Tencent"
    ws["AT7"] = "=D7*2"
    from openpyxl.comments import Comment

    ws["A7"].comment = Comment("core holding", "analyst")
    mine = wb.create_sheet("My model")
    mine["A1"] = "=SUM(MM_AH!D7:D36)"
    mine["B2"] = 42
    wb.save(path)
    before = parts(path)
    refresh_file(path, service=service)
    after = parts(path)
    sheet_part = "xl/worksheets/sheet1.xml"
    assert set(before) == set(after)
    changed = {p for p in before if before[p] != after[p]}
    assert changed == {sheet_part}, changed  # every other part byte-identical
    wb2 = openpyxl.load_workbook(path)
    ws2 = wb2["MM_AH"]
    assert ws2["AS7"].value == "my note on Tencent" and ws2["AT7"].value == "=D7*2"
    assert ws2["A7"].comment.text == "core holding"
    assert wb2["My model"]["A1"].value == "=SUM(MM_AH!D7:D36)" and wb2["My model"]["B2"].value == 42


def test_parts_a_general_writer_would_drop_survive(book, service):
    """Shapes, form controls, extensions: kept as they are (openpyxl would drop them)."""
    path = book()
    ext = (b'<extLst><ext uri="{78C0D931-6437-407d-A8EE-F0AAD7539E65}" '
           b'xmlns:x14="http://schemas.microsoft.com/office/spreadsheetml/2009/9/main">'
           b'<x14:conditionalFormattings/></ext></extLst>')
    src = parts(path)
    sheet = src["xl/worksheets/sheet1.xml"].replace(b"</worksheet>", ext + b"</worksheet>")
    extra = {
        "xl/drawings/vmlDrawing9.vml": b"<xml><v:shape id='Button 1' xmlns:v='urn:schemas-microsoft-com:vml'/></xml>",
        "xl/ctrlProps/ctrlProp1.xml": b'<formControlPr objectType="Button" lockText="1"/>',
        "customXml/item1.xml": b"<analyst>my metadata</analyst>",
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in src.items():
            z.writestr(name, sheet if name == "xl/worksheets/sheet1.xml" else data)
        for name, data in extra.items():
            z.writestr(name, data)
    refresh_file(path, service=service)
    after = parts(path)
    for name, data in extra.items():
        assert after[name] == data
    assert b"{78C0D931-6437-407d-A8EE-F0AAD7539E65}" in after["xl/worksheets/sheet1.xml"]
    assert b"x14:conditionalFormattings" in after["xl/worksheets/sheet1.xml"]


def test_output_option_leaves_the_original(book, service, tmp_path):
    path = book()
    before = digest(path)
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "today.xlsx"
    refresh_file(path, out, service=service)
    assert digest(path) == before and out.exists()
    assert table(out)[1][0][1] == "00700"


@pytest.mark.parametrize("fault", ["503", "drop"])
def test_service_dying_mid_refresh_leaves_the_file_unchanged(book, settings, sandbox, fault):
    path = book("southbound_dashboard.xlsx")
    set_codes(path, list(sandbox.dataset.codes[:150]), sheet="Data")
    before = digest(path)
    sandbox.inject(fault, times=None, only_code=sandbox.dataset.codes[120])  # the second batch fails
    svc = MMAH(Settings(base_url=sandbox.url, cache_dir=settings.cache_dir, budget=3), token=sandbox.token)
    with pytest.raises(ServiceUnavailableError):
        refresh_file(path, service=svc)
    assert digest(path) == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".~")], "no temporary file left"


def test_bad_token_leaves_the_file_unchanged(book, settings):
    path = book()
    before = digest(path)
    with pytest.raises(TokenRejectedError):
        refresh_file(path, service=MMAH(settings, token="not-the-token-1234"))
    assert digest(path) == before


def test_a_formula_inside_the_table_is_refused_not_overwritten(book, service):
    path = book()
    wb = openpyxl.load_workbook(path)
    wb["MM_AH"]["E9"] = "=1+1"
    wb.save(path)
    before = digest(path)
    with pytest.raises(WorkbookError, match="E9.*formula"):
        refresh_file(path, service=service)
    assert digest(path) == before


def test_cli_refresh_failures_are_one_line_and_change_nothing(book, sandbox, tmp_path):
    path = book()
    before = digest(path)
    env = {"LIXINGER_BASE_URL": sandbox.url, "LIXINGER_TOKEN": sandbox.token}
    sandbox.inject("503", times=None, retry_after=0)  # Retry-After: 0: the CLI retries at once
    r = run_cli("refresh", str(path), env=dict(env, LIXINGER_BUDGET="2"))
    assert r.returncode == 1 and "HTTP 503" in r.stderr and "Traceback" not in r.stderr
    sandbox.clear_faults()
    r = run_cli("refresh", str(path), env=dict(env, LIXINGER_TOKEN="wrong-token-000000"))
    assert r.returncode == 1 and "rejected the token" in r.stderr
    empty = book(as_="empty.xlsx")
    set_codes(empty, [])
    before_empty = digest(empty)
    r = run_cli("refresh", str(empty), env=env)
    assert r.returncode == 1 and "no codes to refresh" in r.stderr and digest(empty) == before_empty
    plain = tmp_path / "plain.xlsx"
    openpyxl.Workbook().save(plain)
    r = run_cli("refresh", str(plain), env=env)
    assert r.returncode == 1 and "LX_CODES" in r.stderr
    r = run_cli("refresh", str(tmp_path / "missing.xlsx"), env=env)
    assert r.returncode == 1 and "no such file" in r.stderr
    assert digest(path) == before
    r = run_cli("refresh", str(path), env=env)
    assert r.returncode == 0 and "30 of 30 codes with data x 42 fields" in r.stdout


def test_cli_sandbox_refresh_and_demo(book, tmp_path):
    path = book("southbound_dashboard.xlsx")
    r = run_cli("refresh", str(path), "--sandbox")
    assert r.returncode == 0, r.stderr
    r = run_cli("demo", "--out", str(tmp_path / "demo"))
    assert r.returncode == 0, r.stderr
    assert "requests" in r.stdout or "request(s)" in r.stdout
    for name in ("mm_ah_demo.xlsx", "southbound_dashboard_demo.xlsx"):
        assert table(tmp_path / "demo" / name, "MM_AH" if name.startswith("mm") else "Data")[1][0][1] == "00700"


def test_the_token_is_never_written_into_the_workbook(book, service, sandbox):
    path = book()
    refresh_file(path, service=service)
    for name, data in parts(path).items():
        assert sandbox.token.encode() not in data, name


def test_cli_refresh_asks_for_the_latest_unless_told_otherwise(book, sandbox):
    path = book()
    env = {"LIXINGER_BASE_URL": sandbox.url, "LIXINGER_TOKEN": sandbox.token}
    assert run_cli("refresh", str(path), env=env).returncode == 0
    assert run_cli("refresh", str(path), env=env).returncode == 0
    assert sandbox.request_count == 2  # the second refresh asked again (cache 1 s old)
    assert run_cli("refresh", str(path), "--max-age", "3600", env=env).returncode == 0
    assert sandbox.request_count == 2


# --- growing tables: new cells get the table's styles (and creating them is linear: bench/refresh.py) ---
def extend_codes(path, codes, sheet="MM_AH"):
    """LX_CODES made as long as *codes*: rows past the template's 1,000 have no field cells yet."""
    wb = openpyxl.load_workbook(path)
    ws = wb[sheet]
    for r in range(7, 1007):
        ws.cell(row=r, column=1).value = None
    for i, c in enumerate(codes):
        ws.cell(row=7 + i, column=1).value = c
    wb.defined_names["LX_CODES"].attr_text = f"'{sheet}'!$A$7:$A${6 + len(codes)}"
    wb.save(path)


def test_new_cells_below_the_template_continue_its_formats(book, tmp_path):
    from xl_addin.sandbox import Sandbox
    from xl_addin.sandbox.data import Dataset

    path = book()
    with Sandbox(dataset=Dataset(size=1300)) as sb:
        codes = list(sb.dataset.codes)
        extend_codes(path, codes)
        svc = MMAH(Settings(base_url=sb.url, cache_dir=tmp_path / "c"), token=sb.token)
        summary = refresh_file(path, service=svc)
        expected = {c: sb.dataset.record(c) for c in (codes[0], codes[1100], codes[-1])}
        has = {r: sb.dataset.record(codes[r - 7]) for r in (7, 1006, 1007, 1106, 1306)}
    assert summary.with_data == 1300
    wb = openpyxl.load_workbook(path)
    ws = wb["MM_AH"]
    for r in (7, 1006, 1007, 1106, 1306):  # inside the template's rows, and past them
        for c, f in enumerate(FIELDS, start=3):
            if has[r].get(f.key) is None and r > 1006:
                continue  # a young listing has no long windows: no cell is made past the template
            assert ws.cell(row=r, column=c).number_format == f.number_format, (r, f.key)
    for r, code in ((7, codes[0]), (1107, codes[1100]), (1306, codes[-1])):
        assert ws.cell(row=r, column=3).value == code
        assert ws.cell(row=r, column=5).value == expected[code]["mm_sh"]
    assert ws.cell(row=1307, column=3).value is None


def test_new_cells_take_the_column_style_of_a_sheet_without_cells(tmp_path, service, sandbox):
    from openpyxl.workbook.defined_name import DefinedName

    path = tmp_path / "cols.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "W"
    for col, key, fmt in (("B", "mm_sh", "#,##0"), ("C", "mm_sh_cap_r", "0.00%"), ("D", "last_data_date", "yyyy-mm-dd")):
        ws[f"{col}1"] = key
        ws.column_dimensions[col].number_format = fmt
    codes = list(sandbox.dataset.codes[:250])
    for i, code in enumerate(codes, start=2):
        ws.cell(row=i, column=1).value = code
    wb.defined_names["LX_CODES"] = DefinedName("LX_CODES", attr_text=f"'W'!$A$2:$A${len(codes) + 1}")
    wb.defined_names["LX_FIELDS"] = DefinedName("LX_FIELDS", attr_text="'W'!$B$1:$D$1")
    wb.save(path)
    refresh_file(path, service=service)
    ws = openpyxl.load_workbook(path)["W"]
    for r in (2, 100, len(codes) + 1):
        assert [ws.cell(row=r, column=c).number_format for c in (2, 3, 4)] == ["#,##0", "0.00%", "yyyy-mm-dd"]
        assert ws.cell(row=r, column=2).value == sandbox.dataset.record(codes[r - 2])["mm_sh"]


# --- problems: worded the same way, one line per cause, --strict -------------------------------------
def test_problem_rows_are_worded_per_code_and_grouped_by_cause(book, sandbox):
    path = book()
    set_codes(path, ["700", "banana", "ABC", 99999, 99998, "5"])
    env = {"LIXINGER_BASE_URL": sandbox.url, "LIXINGER_TOKEN": sandbox.token}
    before_rc = run_cli("refresh", str(path), env=env)
    assert before_rc.returncode == 0, before_rc.stderr  # done, with problem rows
    assert "4 problem row(s)" in before_rc.stdout
    assert before_rc.stderr.strip().splitlines() == [
        "lx-addin: 2 codes (banana, ABC): invalid code",
        "lx-addin: 2 codes (99999, 99998): no data",
    ]
    _, rows, ws = table(path)
    assert rows[1][1] == "#N/A Invalid Code banana" and rows[3][1] == "#N/A No Data"
    assert ws["J4"].value == "2 codes (banana, ABC): invalid code; 2 codes (99999, 99998): no data"
    r = run_cli("refresh", str(path), "--strict", env=env)
    assert r.returncode == 4 and "4 problem row(s)" in r.stdout
    set_codes(path, ["700", "5"])
    assert run_cli("refresh", str(path), "--strict", env=env).returncode == 0


def test_one_code_one_problem_reads_code_colon_cause(book, sandbox):
    path = book()
    set_codes(path, ["700", "banana", 99999])
    env = {"LIXINGER_BASE_URL": sandbox.url, "LIXINGER_TOKEN": sandbox.token}
    r = run_cli("refresh", str(path), env=env)
    assert r.stderr.strip().splitlines() == ["lx-addin: banana: invalid code", "lx-addin: 99999: no data"]
    assert table(path)[2]["J4"].value == "banana: invalid code; 99999: no data"
