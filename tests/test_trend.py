"""The dashboard's trend view: the refresh (headless and Excel's button) fills LX_TREND_RATIO and
LX_TREND_NETBUY from the history store, kept from the sandbox moving through time; charts point at them."""

import datetime as dt
import hashlib
import re
import shutil
import zipfile

import openpyxl
import pytest
from lxml import etree

from conftest import ROOT
from xl_addin.exceptions import WorkbookError
from xl_addin.layout import Ref
from xl_addin.refresh import main, refresh_file
from xl_addin.sandbox.data import trading_days
from xl_addin.templates import DASHBOARD_WATCHLIST, TREND_DAYS, TREND_NAMES
from xl_addin.trend import NETBUY, RATIO, TrendLayout, weekdays_until
from xl_addin.xlsx import XlsxBook

TEMPLATE = ROOT / "templates" / "southbound_dashboard.xlsx"
TODAY = dt.date(2026, 3, 17)  # the sandbox's default day
DAYS = trading_days(dt.date(2026, 2, 16), TODAY)  # 22 trading days
C = "{http://schemas.openxmlformats.org/drawingml/2006/chart}"


def keep(service, sandbox, days, codes=DASHBOARD_WATCHLIST, skip=None):
    """Fetch *codes* on each of *days* (the fetch keeps each snapshot in the history store);
    *skip*: {day: codes not fetched that day}."""
    skip = skip or {}
    for day in days:
        sandbox.as_of = day
        wanted = [c for c in codes if c not in skip.get(day, ())]
        if wanted:
            service.fetch(wanted, use_cache=False)
    sandbox.as_of = TODAY


def top_by_holding_value(sandbox, day=TODAY, n=TREND_NAMES):
    sandbox.as_of = day
    values = {c: sandbox.dataset.record(c)["mm_sha"] for c in DASHBOARD_WATCHLIST}
    sandbox.as_of = TODAY
    return sorted(values, key=values.get, reverse=True)[:n]


def blocks(path):
    """{name: (Ref, rows of the block as openpyxl reads them)}."""
    wb = openpyxl.load_workbook(path)
    out = {}
    for name in (RATIO, NETBUY):
        ref = Ref.parse(wb.defined_names[name].attr_text)
        ws = wb[ref.sheet]
        out[name] = (ref, [[ws.cell(row=r, column=c).value for c in range(ref.left, ref.right + 1)]
                           for r in range(ref.top, ref.bottom + 1)])
    return out


@pytest.fixture
def dash(tmp_path):
    path = tmp_path / "dash.xlsx"
    shutil.copyfile(TEMPLATE, path)
    return path


# -- the template -------------------------------------------------------------------------------------
def test_template_has_the_trend_blocks_and_each_chart_plots_its_block():
    wb = openpyxl.load_workbook(TEMPLATE)
    assert wb.sheetnames[:3] == ["Dashboard", "Data", "Trend"]
    refs = {name: Ref.parse(wb.defined_names[name].attr_text) for name in (RATIO, NETBUY)}
    for ref in refs.values():
        assert ref.sheet == "Trend" and ref.height == TREND_DAYS + 1 and ref.width == TREND_NAMES + 1
    with zipfile.ZipFile(TEMPLATE) as z:
        charts = [etree.fromstring(z.read(n)) for n in sorted(z.namelist()) if re.match(r"xl/charts/chart\d+\.xml$", n)]
    lines = [c for c in charts if c.find(f".//{C}lineChart") is not None]
    assert len(lines) == 2
    plotted = set()
    for chart in lines:
        series = chart.findall(f".//{C}lineChart/{C}ser")
        assert len(series) == TREND_NAMES
        for ser in series:
            val = Ref.parse(ser.find(f"{C}val/{C}numRef/{C}f").text)
            cat = Ref.parse(ser.find(f"{C}cat/{C}numRef/{C}f").text)
            title = Ref.parse(ser.find(f"{C}tx/{C}strRef/{C}f").text)
            block = next(n for n, r in refs.items() if r.left < val.left <= r.right)
            r = refs[block]
            assert (val.top, val.bottom, val.width) == (r.top + 1, r.bottom, 1)  # one name's column, every day
            assert (cat.left, cat.top, cat.bottom) == (r.left, r.top + 1, r.bottom)  # the block's dates
            assert (title.top, title.left) == (r.top, val.left)  # the legend: the header the refresh writes
            plotted.add((block, val.left))
    assert len(plotted) == 2 * TREND_NAMES  # every name column of both blocks, once
    for chart in lines:  # a blank day is a gap in the line, never a drop to 0
        assert chart.find(f".//{C}dispBlanksAs").get("val") == "gap"


# -- the refresh fills it from the history ---------------------------------------------------------
def test_refresh_fills_the_trend_from_the_history_with_real_dates_and_no_history_request(
        dash, service, sandbox):
    keep(service, sandbox, DAYS)
    before = sandbox.request_count
    summary = refresh_file(dash, service=service)
    assert sandbox.request_count == before + 1  # the table's one request; the trend asks nothing
    top = top_by_holding_value(sandbox)
    days = weekdays_until(TODAY, TREND_DAYS)
    store = {(c, d): (ratio, d1, sh, nbv) for c, d, ratio, d1, sh, nbv in service.history_rows(
        top, ["mm_sh_cap_r", "mm_sh_nba_d1", "mm_sh", "mm_sh_nbv_d1"])}
    got = blocks(dash)
    for name, (ref, rows) in got.items():
        assert rows[0][1:] == [f"{dict(zip(DASHBOARD_WATCHLIST, _names()))[c]} ({c})" for c in top]
        assert [r[0] for r in rows[1:]] == [dt.datetime.combine(d, dt.time()) for d in days]  # real dates
    ratio_rows, netbuy_rows = got[RATIO][1][1:], got[NETBUY][1][1:]
    for j, code in enumerate(top, start=1):
        total = 0.0
        for i, day in enumerate(days):
            if day < DAYS[0]:  # before the first kept day: blank, not 0
                assert ratio_rows[i][j] is None and netbuy_rows[i][j] is None
                continue
            ratio, d1, sh, nbv = store[(code, day)]
            sandbox.as_of = day
            assert ratio == sandbox.dataset.record(code)["mm_sh_cap_r"] == ratio_rows[i][j]
            total += d1
            assert netbuy_rows[i][j] == pytest.approx(total, rel=1e-12)
            if i and days[i - 1] in DAYS:  # each day's net buying is its change: in shares and in the sum
                assert nbv == sh - store[(code, days[i - 1])][2]
                assert netbuy_rows[i][j] - netbuy_rows[i - 1][j] == pytest.approx(d1, rel=1e-9)
        sandbox.as_of = TODAY
    assert "trend: 6 top name(s) by holding value x 60 weekdays" in summary.line()
    assert f"{len(DAYS)} with a snapshot" in summary.line()
    # dates are stored as date serials with the template's date format, not text
    with zipfile.ZipFile(dash) as z:
        sheet = z.read("xl/worksheets/sheet3.xml").decode()
    cell = re.search(r'<c r="A84"[^>]*>.*?</c>', sheet).group(0)
    assert 't="' not in cell and "<v>46098</v>" in cell  # 2026-03-17


def _names():
    from xl_addin.watchlist import WELL_KNOWN

    return [WELL_KNOWN.get(c, "") for c in DASHBOARD_WATCHLIST]


def test_a_day_without_a_snapshot_is_blank_not_zero_and_adds_nothing(dash, service, sandbox):
    top = top_by_holding_value(sandbox)
    gap, everyone_missing = DAYS[5], DAYS[9]
    keep(service, sandbox, DAYS, skip={gap: [top[0]], everyone_missing: DASHBOARD_WATCHLIST})
    refresh_file(dash, service=service)
    got = blocks(dash)
    days = [r[0].date() for r in got[RATIO][1][1:]]
    ratio, netbuy = got[RATIO][1][1:], got[NETBUY][1][1:]
    i = days.index(gap)
    assert ratio[i][1] is None and netbuy[i][1] is None  # that name, that day
    assert ratio[i][2] is not None  # the others were kept that day
    k = days.index(everyone_missing)
    assert all(v is None for v in ratio[k][1:] + netbuy[k][1:]) and ratio[k][0].date() == everyone_missing
    sandbox.as_of = DAYS[6]
    d1 = sandbox.dataset.record(top[0])["mm_sh_nba_d1"]
    sandbox.as_of = TODAY
    assert netbuy[i + 1][1] == pytest.approx(netbuy[i - 1][1] + d1, rel=1e-9)  # the gap's flow is not in the sum


def test_a_first_refresh_with_no_history_before_today_fills_one_day(dash, service, sandbox):
    refresh_file(dash, service=service)  # its own fetch is the only snapshot kept
    ratio = blocks(dash)[RATIO][1]
    assert ratio[-1][0].date() == TODAY and all(v is not None for v in ratio[-1][1:])
    assert all(v is None for row in ratio[1:-1] for v in row[1:])  # blank, never 0
    assert len([r for r in ratio[1:] if r[0] is not None]) == TREND_DAYS  # the dates are all there


def test_refresh_changes_nothing_outside_the_table_the_status_and_the_trend_blocks(dash, service, sandbox):
    keep(service, sandbox, DAYS[-5:])

    def parts(path):
        with zipfile.ZipFile(path) as z:
            return {n: hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist()}

    def cells(path):
        wb = openpyxl.load_workbook(path)
        return {(ws.title, c.coordinate): c.value for ws in wb.worksheets for row in ws.iter_rows() for c in row}

    before_parts, before_cells = parts(dash), cells(dash)
    refresh_file(dash, service=service)
    after_parts, after_cells = parts(dash), cells(dash)
    changed = {n for n in before_parts if before_parts[n] != after_parts[n]}
    assert {"xl/worksheets/sheet2.xml", "xl/worksheets/sheet3.xml"} <= changed  # Data, Trend
    assert changed <= {"xl/workbook.xml", "xl/worksheets/sheet2.xml", "xl/worksheets/sheet3.xml"}  # (fullCalcOnLoad)
    owned = [Ref.parse(r) for r in ("'Data'!$A$7:$AR$1006", "'Data'!$J$1:$J$4",
                                    *(openpyxl.load_workbook(dash).defined_names[n].attr_text for n in (RATIO, NETBUY)))]
    for (sheet, coord), value in before_cells.items():
        col, row = openpyxl.utils.cell.coordinate_from_string(coord)
        c = openpyxl.utils.column_index_from_string(col)
        inside = any(r.sheet == sheet and r.top <= row <= r.bottom and r.left <= c <= r.right for r in owned)
        if not inside:
            assert after_cells.get((sheet, coord)) == value, (sheet, coord)


def test_runpython_refresh_fills_the_trend_as_the_headless_refresh_does(formula_service, service, sandbox, dash):
    from test_excel_refresh import Book, Sheet

    keep(formula_service, sandbox, DAYS[-8:])
    book = Book(dash)
    src = XlsxBook(dash)
    trend = {(r, c): v for r, row in enumerate(src.read("Trend", 1, 1, 90, 20), start=1)
             for c, v in enumerate(row, start=1) if v is not None}
    book.sheets["Trend"] = Sheet(book, "Trend", trend)
    before = sandbox.request_count
    main(book)
    assert not book.app.alerts, book.app.alerts
    assert sandbox.request_count == before + 1
    assert "trend: 6 top name(s)" in book.app.status[-2]
    writes = [c for c in book.calls if c[0] == "write" and c[1] == "Trend"]
    assert writes == [("write", "Trend", 24, 1, 61, 7), ("write", "Trend", 24, 9, 61, 7)]  # one write per block

    keep(service, sandbox, DAYS[-8:])  # the same history in the headless service's store
    refresh_file(dash, service=service)
    for name, (ref, rows) in blocks(dash).items():
        excel = [[book.sheets["Trend"].cells.get((r, c)) for c in range(ref.left, ref.right + 1)]
                 for r in range(ref.top, ref.bottom + 1)]
        for h_row, e_row in zip(rows, excel):
            for h, e in zip(h_row, e_row):
                if isinstance(e, dt.date) and not isinstance(e, dt.datetime):
                    e = dt.datetime.combine(e, dt.time())
                assert h == e or h == pytest.approx(e, rel=1e-12), (name, h, e)


# -- the contract's errors: one line, nothing written, nothing asked -------------------------------------
@pytest.mark.parametrize("names, message", [
    ({RATIO: "'Trend'!$A$24:$A$84"}, "LX_TREND_RATIO must be a header row over at least two day rows"),
    ({RATIO: "'Trend'!$A$24:$G$25"}, "LX_TREND_RATIO must be a header row over at least two day rows"),
    ({NETBUY: "'Trend'!$I$24:$M$84"}, "LX_TREND_RATIO and LX_TREND_NETBUY must be the same size"),
    ({NETBUY: "'Trend'!$D$30:$J$90"}, "LX_TREND_RATIO and LX_TREND_NETBUY must not overlap"),
    ({RATIO: "'Data'!$B$10:$H$70"}, "must not overlap the LX_CODES/LX_FIELDS table"),
    ({RATIO: "'Data'!$I$1:$O$3"}, "must not overlap LX_STATUS"),
    ({RATIO: "'Data'!$X$3:$Z$5"}, "must not overlap the LX_CODES/LX_FIELDS table"),  # the field keys' row
    ({RATIO: "Trend A24"}, "LX_TREND_RATIO: cannot read the range"),
    ({RATIO: "'Trends'!$A$24:$G$84"}, "LX_TREND_RATIO ('Trends'!$A$24:$G$84) is on a sheet this workbook does not have"),
    ({RATIO: "'Dashboard'!$A$1:$G$61"}, "LX_TREND_RATIO ('Dashboard'!$A$1:$G$61): cell D2 on 'Dashboard' holds a formula"),
])
def test_a_malformed_trend_block_is_one_line_changes_nothing_and_asks_nothing(dash, service, sandbox, names, message):
    wb = openpyxl.load_workbook(dash)
    for name, ref in names.items():
        wb.defined_names[name].attr_text = ref
    wb.save(dash)
    before = dash.read_bytes()
    with pytest.raises(WorkbookError) as err:
        refresh_file(dash, service=service)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert dash.read_bytes() == before and sandbox.request_count == 0


def test_cli_refresh_says_what_the_trend_holds_and_a_bad_block_in_one_line(dash, sandbox, tmp_path):
    from conftest import run_cli

    env = {"LIXINGER_BASE_URL": sandbox.url, "LIXINGER_TOKEN": sandbox.token}
    r = run_cli("refresh", str(dash), env=env)
    assert r.returncode == 0 and "trend: 6 top name(s) by holding value x 60 weekdays" in r.stdout, r.stderr
    wb = openpyxl.load_workbook(dash)
    wb.defined_names[NETBUY].attr_text = "'Trend'!$I$24:$I$84"
    wb.save(dash)
    r = run_cli("refresh", str(dash), env=env)
    assert r.returncode == 1 and "LX_TREND_NETBUY must be a header row" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_an_unreadable_history_store_leaves_the_trend_and_refreshes_the_table(dash, settings, sandbox, tmp_path):
    import dataclasses

    from xl_addin.service import MMAH

    (tmp_path / "not-a-store").mkdir()
    svc = MMAH(dataclasses.replace(settings, store=tmp_path / "not-a-store"), token=sandbox.token)
    before = blocks(dash)
    summary = refresh_file(dash, service=svc)
    svc.close()
    assert "trend: not filled, the history store could not be read" in summary.line()
    assert blocks(dash) == before
    assert openpyxl.load_workbook(dash)["Data"]["C7"].value == "00700"


def test_layout_reads_sheet_scoped_names_and_no_names_means_no_trend():
    assert TrendLayout.from_names({"LX_CODES": "'S'!$A$7:$A$20"}) is None
    found = TrendLayout.from_names({"Trend!lx_trend_ratio": "'Trend'!$A$1:$C$10"})
    assert found.days == 9 and found.names == 2


def test_weekdays_count_back_from_a_weekend():
    assert weekdays_until(dt.date(2026, 3, 15), 3) == [dt.date(2026, 3, 11), dt.date(2026, 3, 12), dt.date(2026, 3, 13)]


# -- make demo ----------------------------------------------------------------------------------------
def test_demo_builds_60_trading_days_then_shows_the_filled_trend_and_leaves_the_user_cache_alone(tmp_path):
    from conftest import run_cli

    user_cache = tmp_path / "cache"  # XL_ADDIN_CACHE_DIR, as conftest sets it: the "real" cache here
    r = run_cli("demo", "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert "history: 5400 snapshots of 90 codes on 60 trading days 2025-12-24..2026-03-17" in r.stdout
    out = tmp_path / "out" / "southbound_dashboard_demo.xlsx"
    assert f"{out}: 90 of 90 codes with data" in r.stdout
    for name, (ref, rows) in blocks(out).items():
        assert f"{name} = 'Trend'!{ref.a1().split('!')[1].replace('$', '')}: 60 days x 6 names, 360 values" in r.stdout
        assert all(v is not None for row in rows[1:] for v in row)  # every day kept: nothing blank
        assert rows[-1][0].date() == TODAY
    assert not user_cache.exists() or not any(user_cache.iterdir())  # its own temporary store only


def test_plan_names_columns_by_code_without_a_name_column_and_clears_unused_ones():
    from xl_addin.trend import plan_trend

    layout = TrendLayout.from_names({RATIO: "'T'!$A$1:$D$4", NETBUY: "'T'!$F$1:$I$4"})
    day = dt.date(2026, 3, 17)
    latest = {"00700": (day, 5.0), "00005": (day, 9.0), "00001": (dt.date(2026, 1, 2), 99.0)}  # 00001: too old
    rows = {"00700": {day: (0.1, 10.0), dt.date(2026, 3, 13): (0.09, -4.0)}, "00005": {day: (0.2, None)}}
    plan = plan_trend(layout, ["00700", "00005", "00001"], latest, rows)
    assert plan.codes == ["00005", "00700"]  # the larger holding value first; 00001 is outside the window
    ratio, netbuy = plan.blocks[RATIO], plan.blocks[NETBUY]
    assert ratio[0] == ["Date 日期", "00005", "00700", None]  # no name column: the code; the unused column cleared
    assert [r[0] for r in ratio[1:]] == [dt.date(2026, 3, 13), dt.date(2026, 3, 16), day]
    assert [r[2] for r in netbuy[1:]] == [-4.0, None, 6.0]  # 3-16 not kept: blank, and the sum goes on
    assert [r[1] for r in netbuy[1:]] == [None, None, None]  # 00005's flow is missing that day: blank
    assert [r[3] for r in ratio[1:]] == [None] * 3


def test_a_trend_block_on_a_protected_sheet_is_refused_before_anything_is_asked(dash, service, sandbox, tmp_path):
    """The protection was found only when the block was written, after the request."""
    protected = tmp_path / "protected.xlsx"
    with zipfile.ZipFile(dash) as zin, zipfile.ZipFile(protected, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "xl/worksheets/sheet3.xml":  # Trend
                data = data.replace(b"</sheetData>", b'</sheetData><sheetProtection sheet="1" objects="1"/>', 1)
            zout.writestr(info, data)
    before = protected.read_bytes()
    with pytest.raises(WorkbookError) as err:
        refresh_file(protected, service=service)
    assert "sheet 'Trend' is protected" in str(err.value) and "LX_TREND_RATIO" in str(err.value)
    assert protected.read_bytes() == before and sandbox.request_count == 0


def test_a_block_moved_to_cells_without_formats_still_shows_dates(dash, service, sandbox, tmp_path):
    """Moved to cells that do not exist yet, the date column was written as bare serials (46098 in
    LibreOffice and Excel); Excel's own button formats a date it writes as a date, so must the file."""
    moved = tmp_path / "moved.xlsx"
    with zipfile.ZipFile(dash) as zin, zipfile.ZipFile(moved, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "xl/workbook.xml":
                data = data.replace(b"'Trend'!$A$24:$G$84", b"'Trend'!$Q$100:$Z$110")
                data = data.replace(b"'Trend'!$I$24:$O$84", b"'Trend'!$AB$100:$AK$110")
            zout.writestr(info, data)
    keep(service, sandbox, DAYS[-3:])
    refresh_file(moved, service=service)
    got = blocks(moved)
    for name in (RATIO, NETBUY):
        dates = [row[0] for row in got[name][1][1:]]
        assert all(isinstance(d, dt.datetime) for d in dates), dates[:3]
        assert dates[-1].date() == TODAY
    ws = openpyxl.load_workbook(moved)["Trend"]
    assert ws["Q110"].number_format == "yyyy-mm-dd" and isinstance(ws["R110"].value, float)
    assert ws["R110"].number_format == "General"  # the values keep theirs
