"""Freeze: a workbook for someone without the add-in. LX_MMAH formulas become their stored
values, other formulas stay live, and LibreOffice opens the result with no LX_MMAH left."""

import re
import shutil
import subprocess
import zipfile

import openpyxl
import pytest
from openpyxl.worksheet.formula import ArrayFormula

from conftest import ROOT, run_cli
from xl_addin.exceptions import WorkbookError
from xl_addin.freeze import freeze_file


def _excel_saved_book(path):
    """A workbook as Excel saves one after calculating: formulas with their cached values
    (<v>), a spilled LX_MMAH array, a string result, an LX_MMAH nested in another formula,
    an add-in reference ([1]!LX_MMAH_INFO) and a live SUM."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Watch"
    for i, code in enumerate(["00700", "00005", "09988"], start=1):
        ws.cell(row=i, column=1, value=code)
    ws["B1"] = ArrayFormula("B1:B3", '=LX_MMAH(A1:A3,"mm_sh")')
    ws["C1"] = '=LX_MMAH(A1,"mm_sh_cap_r")'
    ws["C2"] = '=IFERROR(LX_MMAH(A2,"spc"),0)*100'
    ws["D1"] = "=SUM(B1:B3)"
    ws["E1"] = "=[1]!LX_MMAH_INFO()"
    wb.save(path)
    values = {"B1": "<v>100</v>", "C1": "<v>#N/A No Data</v>", "C2": "<v>1.5</v>", "D1": "<v>600</v>",
              "E1": "<v>version</v>"}
    types = {"C1": "str", "E1": "str"}
    with zipfile.ZipFile(path) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    xml = parts["xl/worksheets/sheet1.xml"].decode()
    for ref, v in values.items():
        xml = re.sub(rf'(<c r="{ref}")([^>]*)>(<f[^>]*>.*?</f>)',
                     lambda m: m.group(1) + (f' t="{types[ref]}"' if ref in types else "")
                     + re.sub(r'\s*t="[a-z]+"', "", m.group(2)) + ">" + m.group(3) + v, xml)
    xml = xml.replace('<c r="B1"', '<c r="B1" cm="1"')
    # the spilled cells hold plain values
    xml = re.sub(r'(<c r="A2"[^>]*>.*?</c>)', r'\1<c r="B2"><v>200</v></c>', xml)
    xml = re.sub(r'(<c r="A3"[^>]*>.*?</c>)', r'\1<c r="B3"><v>300</v></c>', xml)
    parts["xl/worksheets/sheet1.xml"] = xml.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in parts.items():
            z.writestr(n, data)
    return path


def test_freeze_replaces_only_lx_formulas_and_keeps_original(tmp_path):
    book = _excel_saved_book(tmp_path / "watch.xlsx")
    before = book.read_bytes()
    result = freeze_file(book)
    assert book.read_bytes() == before, "the original must not change"
    assert result.path == tmp_path / "watch-frozen.xlsx" and result.frozen == 4 and result.without_value == 0
    with zipfile.ZipFile(result.path) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
        custom = z.read("docProps/custom.xml").decode()
        assert not any(b"LX_MMAH" in z.read(n) for n in z.namelist() if n.startswith("xl/worksheets/"))
    assert "SUM(B1:B3)" in sheet and 'cm="1"' not in sheet
    assert "LX frozen at" in custom and "LX data date" in custom
    wb = openpyxl.load_workbook(result.path)
    ws = wb["Watch"]
    assert [ws[f"B{i}"].value for i in (1, 2, 3)] == [100, 200, 300]
    assert ws["C1"].value == "#N/A No Data" and ws["C2"].value == 1.5 and ws["D1"].value == "=SUM(B1:B3)"
    stamp = {r[0]: r[1] for r in wb["Frozen 已冻结"].iter_rows(values_only=True)}
    assert stamp["Frozen at 冻结时间"].startswith(str(result.frozen_at.date()))
    assert stamp["From 来源"] == "watch.xlsx" and stamp["Formulas frozen 已冻结公式"] == "4"


def test_freeze_opens_in_libreoffice_with_values(tmp_path):
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if not soffice:
        pytest.skip("LibreOffice is not installed (CI installs it: .ci/run)")
    book = _excel_saved_book(tmp_path / "watch.xlsx")
    frozen = freeze_file(book, tmp_path / "to-pm.xlsx").path
    r = subprocess.run([soffice, f"-env:UserInstallation=file://{tmp_path / 'lo'}", "--headless",
                        "--convert-to", "xlsx", "--outdir", str(tmp_path / "lo-out"), str(frozen)],
                       capture_output=True, text=True, timeout=300)
    resaved = tmp_path / "lo-out" / "to-pm.xlsx"
    assert resaved.exists(), r.stdout + r.stderr
    with zipfile.ZipFile(resaved) as z:
        assert not any(b"LX_MMAH" in z.read(n) for n in z.namelist()), "LibreOffice still sees an LX_MMAH formula"
    values = openpyxl.load_workbook(resaved, data_only=True)["Watch"]
    assert [values[f"B{i}"].value for i in (1, 2, 3)] == [100, 200, 300]
    assert values["C1"].value == "#N/A No Data" and values["C2"].value == 1.5
    assert values["D1"].value == 600  # the live SUM, computed by LibreOffice
    assert openpyxl.load_workbook(resaved)["Watch"]["D1"].value == "=SUM(B1:B3)"


def test_freeze_cli_in_place_and_errors(tmp_path):
    book = _excel_saved_book(tmp_path / "watch.xlsx")
    r = run_cli("freeze", str(book), "-o", str(tmp_path / "nowhere" / "x.xlsx"))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no such folder" in r.stderr
    assert not (tmp_path / "nowhere").exists()
    r = run_cli("freeze", str(tmp_path / "missing.xlsx"))
    assert r.returncode == 1 and "no such workbook" in r.stderr
    r = run_cli("freeze", str(book), "--in-place")
    assert r.returncode == 0 and "Froze 4 LX_MMAH formula(s)" in r.stdout, r.stderr
    with zipfile.ZipFile(book) as z:
        assert b"LX_MMAH" not in z.read("xl/worksheets/sheet1.xml")
    with pytest.raises(WorkbookError):
        freeze_file(book, book)


def test_freeze_stamps_the_template_data_date(tmp_path, service):
    from xl_addin.refresh import refresh_file

    book = tmp_path / "mm.xlsx"
    shutil.copyfile(ROOT / "templates" / "mm_ah.xlsx", book)
    refresh_file(book, service=service)
    result = freeze_file(book)
    assert result.data_date and re.fullmatch(r"\d{4}-\d\d-\d\d", result.data_date)
    with zipfile.ZipFile(result.path) as z:
        assert result.data_date in z.read("docProps/custom.xml").decode()
