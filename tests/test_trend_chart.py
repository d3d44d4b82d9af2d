"""The demo's trend sheet opens in LibreOffice (headless) with filled charts: its lines are drawn
(the series colours, read from the rendered page) and its charts plot the refreshed values (the
data cache LibreOffice writes back when it saves the workbook as .xlsx). An unfilled trend sheet
fails both checks."""

import shutil
import subprocess
import zipfile

import openpyxl
import pytest
from lxml import etree

from conftest import ROOT
from xl_addin.layout import Ref
from xl_addin.templates import TREND_COLOURS, TREND_DAYS, TREND_NAMES
from xl_addin.trend import NAMES

C = "{http://schemas.openxmlformats.org/drawingml/2006/chart}"
A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
ONE_PAGE_PER_SHEET = 'pdf:calc_pdf_Export:{"SinglePageSheets":{"type":"boolean","value":"true"}}'


@pytest.fixture(scope="module")
def tools():
    found = {name: shutil.which(name) for name in ("soffice", "pdftoppm", "pdftotext", "pdfinfo")}
    found["soffice"] = found["soffice"] or shutil.which("libreoffice")
    missing = [n for n, p in found.items() if not p]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (CI installs libreoffice-calc and poppler-utils: .ci/run)")
    return found


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    return tmp_path_factory.mktemp("lo-profile")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`make demo`'s output: 60 trading days of history, then the refreshed dashboard."""
    from xl_addin.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    assert run_demo(out_dir=out) == 0
    return out / "southbound_dashboard_demo.xlsx"


@pytest.fixture
def unfilled(tmp_path):
    path = tmp_path / "unfilled.xlsx"
    shutil.copyfile(ROOT / "templates" / "southbound_dashboard.xlsx", path)
    return path


def soffice(tools, profile, path, convert_to, out):
    r = subprocess.run([tools["soffice"], f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to",
                        convert_to, "--outdir", str(out), str(path)], capture_output=True, text=True, timeout=300)
    made = out / (path.stem + "." + convert_to.split(":")[0])
    assert made.exists(), r.stdout + r.stderr
    return made


def trend_page(tools, profile, path, out):
    """The Trend sheet rendered by LibreOffice (one page per sheet) as (width, height, RGB bytes)."""
    pdf = soffice(tools, profile, path, ONE_PAGE_PER_SHEET, out)
    pages = int(next(line.split()[-1] for line in subprocess.run(
        [tools["pdfinfo"], str(pdf)], capture_output=True, text=True, check=True).stdout.splitlines()
        if line.startswith("Pages:")))
    page = next(p for p in range(1, pages + 1) if "Southbound trends" in subprocess.run(
        [tools["pdftotext"], "-f", str(p), "-l", str(p), str(pdf), "-"], capture_output=True, text=True).stdout)
    subprocess.run([tools["pdftoppm"], "-f", str(page), "-l", str(page), "-r", "50", str(pdf), str(out / "trend")],
                   check=True, timeout=120)
    (ppm,) = out.glob("trend*.ppm")
    magic, width, height, _, pixels = ppm.read_bytes().split(maxsplit=4)
    assert magic == b"P6"
    return int(width), int(height), pixels


def drawn_lines(width: int, pixels: bytes, tolerance: int = 40) -> dict[str, float]:
    """Each series colour -> the share of the page's width it is drawn across. A plotted line runs
    across its chart; a legend key alone (an unfilled chart) is a short dash."""
    targets = {c: tuple(int(c[i:i + 2], 16) for i in (0, 2, 4)) for c in TREND_COLOURS}
    columns: dict[str, set] = {c: set() for c in targets}
    for i in range(0, len(pixels) - 2, 3):
        r, g, b = pixels[i], pixels[i + 1], pixels[i + 2]
        for colour, (tr, tg, tb) in targets.items():
            if abs(r - tr) <= tolerance and abs(g - tg) <= tolerance and abs(b - tb) <= tolerance:
                columns[colour].add((i // 3) % width)
    return {c: len(xs) / width for c, xs in columns.items()}


def plotted(width: int, pixels: bytes) -> set[str]:
    """The series colours drawn as lines (across at least 30% of the page: two charts side by side)."""
    return {c for c, share in drawn_lines(width, pixels).items() if share >= 0.30}


def chart_caches(path) -> list[tuple[str, str, list]]:
    """(series title, values range, the cached values) of every line series in *path*'s charts."""
    out = []
    with zipfile.ZipFile(path) as z:
        for name in sorted(n for n in z.namelist() if n.startswith("xl/charts/chart") and n.endswith(".xml")):
            root = etree.fromstring(z.read(name))
            for ser in root.iterfind(f".//{C}lineChart/{C}ser"):
                title = "".join(ser.find(f"{C}tx/{C}strRef/{C}strCache").itertext())
                ref = ser.find(f"{C}val/{C}numRef/{C}f").text
                points = {int(pt.get("idx")): float(pt.find(f"{C}v").text)
                          for pt in ser.iterfind(f"{C}val/{C}numRef/{C}numCache/{C}pt")}
                out.append((title, ref, points))
    return out


def test_the_demo_trend_sheet_opens_in_libreoffice_with_every_line_drawn(tools, profile, demo, unfilled, tmp_path):
    (tmp_path / "filled").mkdir()
    (tmp_path / "unfilled").mkdir()
    width, _, pixels = trend_page(tools, profile, demo, tmp_path / "filled")
    assert plotted(width, pixels) == set(TREND_COLOURS), drawn_lines(width, pixels)
    width, _, pixels = trend_page(tools, profile, unfilled, tmp_path / "unfilled")
    assert plotted(width, pixels) == set(), drawn_lines(width, pixels)  # legend keys only: the check fails


def test_libreoffice_plots_the_refreshed_values_in_each_trend_chart(tools, profile, demo, unfilled, tmp_path):
    wb = openpyxl.load_workbook(demo)
    blocks = {n: Ref.parse(wb.defined_names[n].attr_text) for n in NAMES}
    saved = soffice(tools, profile, demo, "xlsx", tmp_path / "roundtrip")
    series = chart_caches(saved)
    assert len(series) == 2 * TREND_NAMES
    for title, ref, points in series:
        val = Ref.parse(ref if "!" in ref else f"Trend!{ref}")
        block = next(r for r in blocks.values() if r.left < val.left <= r.right)
        ws = wb[block.sheet]
        assert title == ws.cell(row=block.top, column=val.left).value and title.endswith(")")  # "Name (code)"
        cells = [ws.cell(row=r, column=val.left).value for r in range(block.top + 1, block.bottom + 1)]
        assert len(points) == TREND_DAYS and all(v is not None for v in cells)
        assert [points[i] for i in range(TREND_DAYS)] == pytest.approx(cells, rel=1e-9)
    unfilled_series = chart_caches(soffice(tools, profile, unfilled, "xlsx", tmp_path / "roundtrip-unfilled"))
    assert len(unfilled_series) == 2 * TREND_NAMES and all(not points for _, _, points in unfilled_series)
