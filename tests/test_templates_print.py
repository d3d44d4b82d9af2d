"""Templates that print and point: read the print settings back from the committed
workbooks, and render the refreshed dashboard through LibreOffice to check page one."""

import re
import shutil
import subprocess

import openpyxl
import pytest

from conftest import ROOT
from xl_addin.fields import FIELDS
from xl_addin.refresh import refresh_file

TEMPLATES = ROOT / "templates"
DATA_SHEETS = {"mm_ah.xlsx": "MM_AH", "southbound_dashboard.xlsx": "Data"}


@pytest.mark.parametrize("name", sorted(DATA_SHEETS))
def test_every_sheet_prints_one_page_wide_and_data_repeats_its_headers(name):
    wb = openpyxl.load_workbook(TEMPLATES / name)
    for ws in wb.worksheets:
        assert ws.sheet_properties.pageSetUpPr.fitToPage, ws.title
        assert ws.page_setup.fitToWidth == 1 and ws.page_setup.orientation == "landscape", ws.title
    data = wb[DATA_SHEETS[name]]
    assert data.page_setup.fitToHeight == 0  # as many pages down as the codes need
    assert data.print_title_rows.replace("$", "") == "5:6"  # field keys and bilingual headers on every page


def test_name_column_is_next_to_the_code():
    ws = openpyxl.load_workbook(TEMPLATES / "mm_ah.xlsx")["MM_AH"]
    assert "Code (yours)" in ws["A6"].value and "Name (yours)" in ws["B6"].value
    assert ws["A7"].value == "00700" and ws["B7"].value == "Tencent"
    assert ws["C5"].value == "stockCode" and ws.cell(row=5, column=2 + len(FIELDS)).value == FIELDS[-1].key


def test_field_keys_fit_their_columns():
    """Keys are 8-pt Consolas: each column is wide enough for its key, or shrinks it to fit."""
    ws = openpyxl.load_workbook(TEMPLATES / "mm_ah.xlsx")["MM_AH"]
    for c in range(3, 3 + len(FIELDS)):
        key = ws.cell(row=5, column=c)
        width = ws.column_dimensions[openpyxl.utils.get_column_letter(c)].width
        assert key.alignment.shrink_to_fit or width >= len(key.value) * 0.75, key.value
        assert width >= 10, key.value


def test_red_only_when_negative_at_the_shown_precision():
    """-0.00003 shows as 0.00%: it must not be red. The rules round to what the format shows."""
    for name, sheet in DATA_SHEETS.items():
        ws = openpyxl.load_workbook(TEMPLATES / name)[sheet]
        rules = {str(rng.sqref): rule for rng, rs in ws.conditional_formatting._cf_rules.items() for rule in rs}
        assert rules
        for rng, rule in rules.items():
            col = rng.split(":")[0].rstrip("0123456789")
            fmt = ws[f"{col}7"].number_format
            decimals = {"0.00%": 4, "#,##0": 0}[fmt]
            assert rule.formula == [f"ROUND({col}7,{decimals})<0"], (rng, rule.formula)
    dash = openpyxl.load_workbook(TEMPLATES / "southbound_dashboard.xlsx")["Dashboard"]
    formats = {dash[f"{c}{r}"].number_format for c in "DIN" for r in (7, 21)}
    assert all("Red" not in f for f in formats), formats  # red comes from the rounded rule only
    formulas = [r.formula[0] for rs in dash.conditional_formatting._cf_rules.values() for r in rs]
    assert len(formulas) == 6 and all(re.fullmatch(r"ROUND\([DIN]\d+,(4|-5)\)<0", f) for f in formulas)


def test_dashboard_is_one_page_and_the_chart_names_its_bars():
    wb = openpyxl.load_workbook(TEMPLATES / "southbound_dashboard.xlsx")
    dash = wb["Dashboard"]
    assert dash.page_setup.fitToHeight == 1 and dash.page_setup.fitToWidth == 1
    (chart,) = dash._charts
    anchor_row = chart.anchor._from.row + 1
    rows_tall = chart.height / 0.53  # cm per default row
    last = int(re.search(r"\$?N\$?(\d+)$", dash.print_area).group(1))
    assert anchor_row + rows_tall <= last, "the chart must be inside the printed page"
    cats = chart.series[0].cat.numRef or chart.series[0].cat.strRef
    ref = cats.f
    col = re.search(r"\$([A-Z]+)\$7", ref).group(1)
    assert dash[f"{col}7"].value.count("&") >= 3 and '" ("' in dash[f"{col}7"].value  # name (code)
    assert "Data date" in dash["A2"].value and dash["B2"].value is None and dash["C2"].value is None


def test_refreshed_dashboard_page_one_holds_tables_and_the_whole_chart(service, sandbox, tmp_path):
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    pdftotext = shutil.which("pdftotext")
    if not soffice or not pdftotext:
        pytest.skip("LibreOffice and poppler-utils are needed (CI installs them: .ci/run)")
    path = tmp_path / "dash.xlsx"
    shutil.copyfile(TEMPLATES / "southbound_dashboard.xlsx", path)
    refresh_file(path, service=service)
    subprocess.run([soffice, f"-env:UserInstallation=file://{tmp_path / 'lo'}", "--headless", "--convert-to", "pdf",
                    "--outdir", str(tmp_path), str(path)], capture_output=True, timeout=300)
    page1 = subprocess.run([pdftotext, "-f", "1", "-l", "1", "-layout", str(tmp_path / "dash.pdf"), "-"],
                           capture_output=True, text=True, timeout=60).stdout
    page2 = subprocess.run([pdftotext, "-f", "2", "-l", "2", str(tmp_path / "dash.pdf"), "-"],
                           capture_output=True, text=True, timeout=60).stdout
    from xl_addin.templates import DASHBOARD_WATCHLIST

    ranked = sorted(DASHBOARD_WATCHLIST, key=lambda c: sandbox.dataset.record(c)["mm_sh_nba_d20"] or 0,
                    reverse=True)[:10]
    for code in ranked:  # every bar's label, "Name (code)", is on page one
        assert f"({code})" in page1.replace("\n", " "), code
    assert "Top net selling" in page1 and "Top net buying, 20 days (HKD)" in page1
    assert "Southbound data" in page2 and "(" + ranked[-1] + ")" not in page2
