"""A real spreadsheet application opens the refreshed templates and computes the dashboard."""

import csv
import io
import shutil
import subprocess

import openpyxl
import pytest

from conftest import ROOT
from xl_addin.refresh import refresh_file

ERRORS = ("#VALUE!", "#NAME?", "#REF!", "#DIV/0!", "Err:", "#N/A", "#NUM!")


@pytest.fixture(scope="module")
def soffice():
    exe = shutil.which("soffice") or shutil.which("libreoffice")
    if not exe:
        pytest.skip("LibreOffice is not installed (CI installs it: .ci/run)")
    return exe


def to_csv(soffice, path, tmp_path) -> list[list[str]]:
    profile = tmp_path / "lo-profile"
    r = subprocess.run(
        [soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to",
         "csv:Text - txt - csv (StarCalc):44,34,76", "--outdir", str(tmp_path / "csv"), str(path)],
        capture_output=True, text=True, timeout=300,
    )
    out = tmp_path / "csv" / (path.stem + ".csv")
    assert out.exists(), r.stdout + r.stderr
    return list(csv.reader(io.StringIO(out.read_text("utf-8"))))


def test_dashboard_formulas_compute_in_libreoffice(soffice, service, sandbox, tmp_path):
    path = tmp_path / "dash.xlsx"
    shutil.copyfile(ROOT / "templates" / "southbound_dashboard.xlsx", path)
    refresh_file(path, service=service)
    rows = to_csv(soffice, path, tmp_path)
    text = "\n".join(",".join(r) for r in rows)
    for err in ERRORS:
        assert err not in text, err
    # expected from the data itself: the largest 20-day net buyers among the watchlist
    wb = openpyxl.load_workbook(path)
    ws = wb["Data"]
    watch = [ws.cell(row=r, column=1).value for r in range(7, 1007) if ws.cell(row=r, column=1).value]
    nba20 = {c: sandbox.dataset.record(c)["mm_sh_nba_d20"] for c in watch if sandbox.dataset.record(c)}
    top = sorted(nba20, key=nba20.get, reverse=True)[:10]
    title_row = next(i for i, r in enumerate(rows) if any("Top net buying, 20 days" in c for c in r))
    col = next(j for j, c in enumerate(rows[title_row]) if "Top net buying, 20 days" in c)
    shown = [rows[title_row + 2 + i][col + 1] for i in range(10)]
    assert shown == top
    assert float(rows[title_row + 2][col + 3].replace(",", "")) == pytest.approx(nba20[top[0]] / 1e6, abs=0.06)
    assert "2026-03-17" in text  # the data date, through a formula on the status block


def test_mm_ah_opens_in_libreoffice_with_the_values(soffice, service, sandbox, tmp_path):
    path = tmp_path / "mm.xlsx"
    shutil.copyfile(ROOT / "templates" / "mm_ah.xlsx", path)
    refresh_file(path, service=service)
    rows = to_csv(soffice, path, tmp_path)
    first = next(r for r in rows if r and r[0] == "00700")
    assert first[1] == "Tencent"  # the analyst's name column, next to the code
    assert first[2] == "00700" and first[3] == "2026-03-17"
    assert first[4].replace(",", "") == str(sandbox.dataset.record("00700")["mm_sh"])
    assert first[6] == "11.92%"  # the ratio format reads as a percentage
