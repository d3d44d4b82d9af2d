"""Build the analyst templates in templates/ (reviewable, reproducible: `make templates`).

    python -m xl_addin.templates [DIR]

Both follow the layout contract in :mod:`xl_addin.layout` (defined names LX_CODES,
LX_FIELDS, LX_STATUS); the dashboard's Trend sheet adds LX_TREND_RATIO and LX_TREND_NETBUY,
each with a line chart whose series are the block's name columns (see :mod:`xl_addin.trend`). The output is byte-for-byte reproducible: fixed document
dates and zip timestamps, so a test can prove the committed files match this script.
"""

from __future__ import annotations

import datetime as dt
import io
import sys
import zipfile
from pathlib import Path

from openpyxl import Workbook
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.formatting.rule import FormulaRule
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation

from .fields import FIELDS
from .layout import col_letter
from .watchlist import WELL_KNOWN as NAMES

FIXED = dt.datetime(2026, 1, 1)
FIRST_ROW, LAST_ROW = 7, 1006  # code rows
KEY_ROW, HEADER_ROW = 5, 6
NAME_COL = 2  # B: the analyst's own name column, next to the code
FIRST_FIELD_COL = 3  # C: the table (LX_FIELDS) starts here
STATUS_COL = 6  # labels in I, values in J (rows 1-4)
#: decimals each kind shows; a value is red only when it is negative *at that precision*,
#: so -0.00003 (shown 0.00%) is not red. Conditional formatting on ROUND keeps the data
#: exact and the number formats plain (the same in Excel and LibreOffice).
SHOWN_DECIMALS = {"ratio": 4, "amount": 0}
COLUMN_WIDTHS = {"code": 10, "date": 12, "shares": 16, "amount": 18, "ratio": 13}

NAVY = "1F3864"
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
KEY_FONT = Font(name="Consolas", size=8, color="7F7F7F")
THIN = Side(style="thin", color="9BC2E6")
GROUP_FILLS = {  # header tint per window, so the families read as bands
    None: "DDEBF7", 1: "E2EFDA", 5: "FFF2CC", 20: "FCE4D6", 60: "EDE7F6", 120: "E0F2F1", 240: "F2F2F2",
}

WATCHLIST = list(NAMES)[:30]
DASHBOARD_WATCHLIST = list(NAMES)[:90]


def _table_sheet(ws, codes: list[str], title: str) -> None:
    ws.sheet_properties.tabColor = NAVY
    ws["A1"] = title
    ws["A1"].font = Font(size=14, bold=True, color=NAVY)
    ws["A2"] = "Type HK codes in column A from row 7 (700, 00700, 0700.HK…), then Lixinger ▸ Refresh."
    ws["A2"].font = Font(italic=True, color="595959")
    ws["A3"] = "在A列第7行起输入港股代码，然后点击 Lixinger ▸ Refresh。"
    ws["A3"].font = Font(italic=True, color="595959")

    from .layout import STATUS_LABELS

    for i, label in enumerate(STATUS_LABELS):
        c = ws.cell(row=1 + i, column=STATUS_COL + 3, value=label)
        c.font = Font(bold=True, color="595959", size=9)
        c.alignment = Alignment(horizontal="right")
        v = ws.cell(row=1 + i, column=STATUS_COL + 4)
        v.font = Font(size=9)
        v.alignment = Alignment(horizontal="left")
    ws.cell(row=1, column=STATUS_COL + 4).number_format = "yyyy-mm-dd hh:mm"
    ws.cell(row=2, column=STATUS_COL + 4).number_format = "yyyy-mm-dd"

    ws.cell(row=KEY_ROW, column=NAME_COL, value="field key →").font = KEY_FONT
    for col, text in ((1, "代码\nCode (yours)"), (NAME_COL, "名称\nName (yours)")):
        head = ws.cell(row=HEADER_ROW, column=col, value=text)
        head.font = Font(bold=True)
        head.fill = PatternFill("solid", fgColor="FFF2CC")
        head.alignment = Alignment(wrap_text=True, vertical="center")
        head.border = Border(bottom=THIN)
    ws.column_dimensions["A"].width = 13
    ws.column_dimensions[col_letter(NAME_COL)].width = 22

    for j, f in enumerate(FIELDS):
        col = FIRST_FIELD_COL + j
        letter = col_letter(col)
        k = ws.cell(row=KEY_ROW, column=col, value=f.key)
        k.font = KEY_FONT
        k.alignment = Alignment(horizontal="center", shrink_to_fit=True)  # long keys never run together
        h = ws.cell(row=HEADER_ROW, column=col, value=f"{f.zh}\n{f.en}")
        h.font = Font(bold=True, size=9)
        h.fill = PatternFill("solid", fgColor=GROUP_FILLS.get(f.window, "DDEBF7"))
        h.alignment = Alignment(wrap_text=True, vertical="center", horizontal="center")
        h.border = Border(bottom=THIN)
        ws.column_dimensions[letter].width = COLUMN_WIDTHS[f.kind]
        for r in range(FIRST_ROW, LAST_ROW + 1):
            ws.cell(row=r, column=col).number_format = f.number_format
        if f.kind in SHOWN_DECIMALS and f.key != "mm_sh_cap_r":
            _red_when_negative(ws, f"{letter}{FIRST_ROW}:{letter}{LAST_ROW}", SHOWN_DECIMALS[f.kind])
    ws.row_dimensions[HEADER_ROW].height = 92  # up to six wrapped lines: 中文 over English

    for r in range(FIRST_ROW, LAST_ROW + 1):
        ws.cell(row=r, column=1).number_format = "@"
    for i, code in enumerate(codes):
        ws.cell(row=FIRST_ROW + i, column=1, value=code)
        ws.cell(row=FIRST_ROW + i, column=NAME_COL, value=NAMES.get(code, ""))

    last = col_letter(FIRST_FIELD_COL + len(FIELDS) - 1)
    ws.freeze_panes = f"{col_letter(FIRST_FIELD_COL)}{FIRST_ROW}"  # code and name stay in view
    _print_setup(ws)
    ws.print_title_rows = f"{KEY_ROW}:{HEADER_ROW}"  # keys and headers on every printed page
    ws.auto_filter.ref = f"A{HEADER_ROW}:{last}{LAST_ROW}"
    sheet = ws.title
    wb = ws.parent
    for name, ref in (
        ("LX_CODES", f"'{sheet}'!$A${FIRST_ROW}:$A${LAST_ROW}"),
        ("LX_FIELDS", f"'{sheet}'!${col_letter(FIRST_FIELD_COL)}${KEY_ROW}:${last}${KEY_ROW}"),
        ("LX_STATUS", f"'{sheet}'!${col_letter(STATUS_COL + 3)}$1:${col_letter(STATUS_COL + 4)}$4"),
    ):
        wb.defined_names[name] = DefinedName(name, attr_text=ref)
    ws.column_dimensions[col_letter(STATUS_COL + 3)].width = max(ws.column_dimensions[col_letter(STATUS_COL + 3)].width or 0, 18)


def _red_when_negative(ws, rng: str, decimals: int) -> None:
    """Red font when the value is negative at the precision shown (not -0.00003 shown as 0.00%)."""
    first = rng.split(":")[0]
    ws.conditional_formatting.add(rng, FormulaRule(formula=[f"ROUND({first},{decimals})<0"],
                                                   font=Font(color="C00000")))


def _print_setup(ws, one_page: bool = False) -> None:
    """Landscape, one page wide (and tall when *one_page*), centred."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 1 if one_page else 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top = ws.page_margins.bottom = 0.5


HELP = [
    ("How to use 使用说明", "title"),
    ("", None),
    ("1. Type or paste Hong Kong codes in column A of the data sheet, from row 7 down (up to 1,000); names in column B are yours.", None),
    ("   Any spelling works: 700, 00700, 0700.HK, 700 HK. Remove a code and its row is cleared on the next refresh.", None),
    ("2. Click Lixinger ▸ Refresh on the ribbon (Windows or macOS Excel).", None),
    ("   Or, on any machine: lx-addin refresh this-file.xlsx   (cron/CI friendly; --sandbox for offline data)", None),
    ("3. The refresh fills every field for every code and the status block (top right): when, data date, codes, problems.", None),
    ("   A row whose code is wrong or has no Stock Connect data says so in its first column (#N/A ...).", None),
    ("", None),
    ("Your own columns, sheets, formulas, charts and notes are never touched: the refresh writes only the table", None),
    ("(the columns under the field keys in row 5, on the rows of column A) and the status block.", None),
    ("", None),
    ("Token: run  lx-addin token set  once; it is kept in Windows Credential Manager / macOS Keychain, never in this file.", None),
    ("", None),
    ("Build your own template 自建模板", "title"),
    ("Any workbook can be refreshed if it has three defined names (Formulas ▸ Name Manager):", None),
    ("  LX_CODES   one column of cells holding codes, e.g. ='MM_AH'!$A$7:$A$1006", None),
    ("  LX_FIELDS  one row of field keys or 中文 labels above the codes, on the same sheet, e.g. ='MM_AH'!$C$5:$AR$5", None),
    ("             the column under each key is filled, on each code's row; delete or reorder keys to choose fields", None),
    ("  LX_STATUS  (optional) two columns by four rows: your labels, then the values the refresh writes", None),
    ("  LX_TREND_RATIO, LX_TREND_NETBUY  (optional) a trend block each: a header row over one row per day, dates in", None),
    ("             its first column, one column per top name (largest holding value); filled from the kept history", None),
    ("             (holding % of H shares; cumulative net buying, HKD). A day with no snapshot is blank.", None),
    ("Formats come from your template: format the table's cells as you like them before refreshing.", None),
    ("", None),
    ("Formulas (Windows Excel) 公式", "title"),
    ('  =LX_MMAH(A7:A36, "mm_sh_nba_d20")     =LX_MMAH($A7, B$5)     =LX_MMAH_FIELDS()     =LX_MMAH_INFO()', None),
    ("", None),
    ("Fields 字段", "title"),
]


def _help_sheet(ws) -> None:
    ws.sheet_properties.tabColor = "A6A6A6"
    ws.column_dimensions["A"].width = 24
    ws.column_dimensions["B"].width = 40
    ws.column_dimensions["C"].width = 40
    ws.column_dimensions["D"].width = 10
    r = 1
    for text, kind in HELP:
        c = ws.cell(row=r, column=1, value=text or None)
        if kind == "title":
            c.font = Font(bold=True, size=13 if r == 1 else 11, color=NAVY)
        r += 1
    for col, label in enumerate(("key", "中文", "English", "kind"), start=1):
        ws.cell(row=r, column=col, value=label).font = Font(bold=True)
    for f in FIELDS:
        r += 1
        for col, value in enumerate((f.key, f.zh, f.en, f.kind), start=1):
            ws.cell(row=r, column=col, value=value)
    _print_setup(ws)


def build_mm_ah() -> Workbook:
    wb = Workbook()
    ws = wb.active
    ws.title = "MM_AH"
    _table_sheet(ws, WATCHLIST, "Lixinger 港股通持仓 · Stock Connect holdings (mm_ah)")
    _help_sheet(wb.create_sheet("How to use"))
    return wb


def _field_col(key: str) -> str:
    return col_letter(FIRST_FIELD_COL + [f.key for f in FIELDS].index(key))


def _top_block(ws, top: int, left: int, title: str, key: str, fn: str, fmt: str, decimals: int, unit: str,
               n: int = 10) -> None:
    """Rank, code, name, value: the n largest (fn=LARGE) or smallest (SMALL) of a Data column."""
    data = f"Data!${_field_col(key)}${FIRST_ROW}:${_field_col(key)}${LAST_ROW}"
    codes = f"Data!${_field_col('stockCode')}${FIRST_ROW}:${_field_col('stockCode')}${LAST_ROW}"
    names = f"Data!${col_letter(NAME_COL)}${FIRST_ROW}:${col_letter(NAME_COL)}${LAST_ROW}"
    t = ws.cell(row=top, column=left, value=title)
    t.font = Font(bold=True, color=NAVY, size=11)
    for j, label in enumerate(("#", "Code", "Name", unit)):
        h = ws.cell(row=top + 1, column=left + j, value=label)
        h.font = Font(bold=True, size=9)
        h.fill = HEADER_FILL
        h.border = Border(bottom=THIN)
    for i in range(1, n + 1):
        r = top + 1 + i
        L = col_letter
        rank = ws.cell(row=r, column=left, value=i)
        rank.font = Font(color="404040", size=10, bold=True)
        rank.alignment = Alignment(horizontal="center")
        vcell = f"{L(left + 3)}{r}"
        ws.cell(row=r, column=left + 3, value=f'=IFERROR({fn}({data},{L(left)}{r}),"")').number_format = fmt
        code = ws.cell(row=r, column=left + 1, value=f'=IF({vcell}="","",INDEX({codes},MATCH({vcell},{data},0)))')
        code.alignment = Alignment(horizontal="left", indent=1)
        ws.cell(row=r, column=left + 2, value=f'=IF({vcell}="","",INDEX({names},MATCH({vcell},{data},0))&"")')
    _red_when_negative(ws, f"{L(left + 3)}{top + 2}:{L(left + 3)}{top + 1 + n}", decimals)
    ws.column_dimensions[col_letter(left)].width = 5
    ws.column_dimensions[col_letter(left + 1)].width = 9
    ws.column_dimensions[col_letter(left + 2)].width = 20
    ws.column_dimensions[col_letter(left + 3)].width = 13


def build_dashboard() -> Workbook:
    wb = Workbook()
    dash = wb.active
    dash.title = "Dashboard"
    data = wb.create_sheet("Data")
    _table_sheet(data, DASHBOARD_WATCHLIST, "Lixinger 港股通 · Southbound data (refreshed)")
    dash.sheet_properties.tabColor = "C00000"
    dash["A1"] = "Southbound morning dashboard 南向资金晨报"
    dash["A1"].font = Font(size=16, bold=True, color=NAVY)
    # labels overflow into the empty cells to their right; the values sit in the value columns
    dash["A2"] = "Data date 数据日期"
    dash["D2"] = f"=Data!{col_letter(STATUS_COL + 4)}2"
    dash["D2"].number_format = "yyyy-mm-dd"
    dash["F2"] = "Refreshed 刷新"
    dash["H2"] = f"=Data!{col_letter(STATUS_COL + 4)}1"
    dash["H2"].number_format = "yyyy-mm-dd hh:mm"
    for c in ("D2", "H2"):
        dash[c].alignment = Alignment(horizontal="left")
        dash[c].font = Font(bold=True, size=10)
    dash["A3"] = "Codes come from the Data sheet: edit the watchlist there, then Lixinger ▸ Refresh. Amounts in HKD millions."
    dash["A3"].font = Font(italic=True, color="595959", size=9)
    for c in ("A2", "F2"):
        dash[c].font = Font(bold=True, color="595959", size=9)
    millions, m_dec = "#,##0.0,,", -5  # HKD millions, one decimal: red from -0.05m down
    pct, p_dec = "0.00%", 4
    _top_block(dash, 5, 1, "Top net buying, 1 day 净买入1日", "mm_sh_nba_d1", "LARGE", millions, m_dec, "HKD m")
    _top_block(dash, 5, 6, "Top net buying, 5 days 净买入5日", "mm_sh_nba_d5", "LARGE", millions, m_dec, "HKD m")
    _top_block(dash, 5, 11, "Top net buying, 20 days 净买入20日", "mm_sh_nba_d20", "LARGE", millions, m_dec, "HKD m")
    _top_block(dash, 19, 1, "Largest holding-ratio rises, 20D 持股比例上升", "mm_sh_cap_rc_d20", "LARGE", pct, p_dec,
               "Δ % of H")
    _top_block(dash, 19, 6, "Largest holding-ratio falls, 20D 持股比例下降", "mm_sh_cap_rc_d20", "SMALL", pct, p_dec,
               "Δ % of H")
    _top_block(dash, 19, 11, "Top net selling, 20 days 净卖出20日", "mm_sh_nba_d20", "SMALL", millions, m_dec,
               "HKD m")
    for col in ("E", "J"):
        dash.column_dimensions[col].width = 3

    chart = BarChart()
    chart.type = "bar"
    chart.style = 10
    chart.title = "Top net buying, 20 days (HKD)"
    chart.y_axis.title = None
    chart.y_axis.numFmt = "#,##0,,\"m\""
    chart.y_axis.majorGridlines = None
    # the axis shows names with the code in brackets, as the tables do: a label column
    # beside the dashboard (outside the print area), fed by the 20-day block (K:N)
    label_col = 16  # P
    dash.cell(row=6, column=label_col, value="Chart labels 图表标签").font = Font(bold=True, size=9, color="7F7F7F")
    for r in range(7, 17):
        dash.cell(row=r, column=label_col, value=f'=IF(L{r}="","",IF(M{r}="",L{r},M{r}&" ("&L{r}&")"))').font = \
            Font(size=9, color="7F7F7F")
    dash.column_dimensions[col_letter(label_col)].width = 28
    values = Reference(dash, min_col=14, min_row=7, max_row=16)
    cats = Reference(dash, min_col=label_col, min_row=7, max_row=16)
    chart.add_data(values, titles_from_data=False)
    chart.set_categories(cats)
    chart.legend = None
    chart.x_axis.scaling.orientation = "maxMin"  # rank 1 on top
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    chart.height, chart.width = 11, 26  # tall enough for all ten names on the axis
    dash.add_chart(chart, "A33")
    _print_setup(dash, one_page=True)  # the morning page: tables and chart on one sheet of paper
    dash.print_area = "A1:N56"  # the tables and the chart (A33, 11 cm ≈ 21 rows), not the labels in P

    _trend_sheet(wb.create_sheet("Trend"))
    _help_sheet(wb.create_sheet("How to use"))
    dash.sheet_view.showGridLines = False
    wb.active = 0
    return wb


TREND_DAYS, TREND_NAMES = 60, 6  # about a quarter of trading days; six lines stay readable
TREND_TOP = 24  # the blocks' header row; the charts sit above them
TREND_BLOCKS = {"LX_TREND_RATIO": 1, "LX_TREND_NETBUY": 3 + TREND_NAMES}  # name -> first column (A, I)
#: one colour per name's line, the same in both charts (and none of them used elsewhere on the sheet)
TREND_COLOURS = ("E41A1C", "377EB8", "4DAF4A", "984EA3", "FF7F00", "A65628")
TREND_TITLES = {
    "LX_TREND_RATIO": ("Holding, % of H shares 港股通持股比例", "0.00%", "0.0%"),
    "LX_TREND_NETBUY": ("Cumulative net buying, HKD m 累计净买入（百万港元）", "#,##0.0,,", "#,##0,,"),
}


def _trend_sheet(ws) -> None:
    """Two trend blocks (LX_TREND_RATIO, LX_TREND_NETBUY) the refresh fills from the kept
    history, each with a line chart whose series are the block's name columns."""
    ws.sheet_properties.tabColor = "548235"
    ws["A1"] = "Southbound trends 南向资金趋势"
    ws["A1"].font = Font(size=16, bold=True, color=NAVY)
    ws["A2"] = (f"Filled by Lixinger ▸ Refresh from the history kept each day (lx-addin snapshot; lx-addin schedule on): "
                f"the {TREND_NAMES} watchlist names with the largest Southbound holding value, last {TREND_DAYS} weekdays. "
                "A day with no snapshot is blank.")
    ws["A3"] = (f"刷新时从历史快照填充：持仓市值最大的{TREND_NAMES}只股票，最近{TREND_DAYS}个交易日；"
                "没有快照的日期留空。")
    for c in ("A2", "A3"):
        ws[c].font = Font(italic=True, color="595959", size=9)
    first, last = TREND_TOP + 1, TREND_TOP + TREND_DAYS
    for name, left in TREND_BLOCKS.items():
        title, fmt, axis_fmt = TREND_TITLES[name]
        t = ws.cell(row=TREND_TOP - 1, column=left, value=title)
        t.font = Font(bold=True, color=NAVY, size=11)
        for j in range(TREND_NAMES + 1):
            h = ws.cell(row=TREND_TOP, column=left + j, value="Date 日期" if j == 0 else f"top {j}")
            h.font = Font(bold=True, size=9)
            h.fill = HEADER_FILL
            h.border = Border(bottom=THIN)
            h.alignment = Alignment(wrap_text=True, vertical="center")
            for r in range(first, last + 1):
                ws.cell(row=r, column=left + j).number_format = "yyyy-mm-dd" if j == 0 else fmt
        ws.column_dimensions[col_letter(left)].width = 11
        for j in range(1, TREND_NAMES + 1):
            ws.column_dimensions[col_letter(left + j)].width = 12
        ref = f"'{ws.title}'!${col_letter(left)}${TREND_TOP}:${col_letter(left + TREND_NAMES)}${last}"
        ws.parent.defined_names[name] = DefinedName(name, attr_text=ref)

        chart = LineChart()
        chart.title = title
        chart.style = 2
        chart.add_data(Reference(ws, min_col=left + 1, max_col=left + TREND_NAMES, min_row=TREND_TOP, max_row=last),
                       titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=left, min_row=first, max_row=last))
        for series, colour in zip(chart.series, TREND_COLOURS):
            series.graphicalProperties.line.solidFill = colour
            series.graphicalProperties.line.width = 22000  # EMU: about 1.75 pt
            series.marker.symbol = "none"
            series.smooth = False
        chart.y_axis.numFmt = axis_fmt
        chart.y_axis.majorGridlines = None
        chart.x_axis.number_format = "mm-dd"
        chart.x_axis.tickLblSkip = 10
        chart.x_axis.tickLblPos = "low"  # dates along the bottom, not across the zero line
        chart.x_axis.delete = False
        chart.y_axis.delete = False
        chart.legend.position = "b"
        chart.height, chart.width = 9.5, 17.5
        ws.add_chart(chart, f"{col_letter(left)}5")
    ws.column_dimensions[col_letter(TREND_BLOCKS["LX_TREND_NETBUY"] - 1)].width = 3
    ws.row_dimensions[TREND_TOP].height = 30  # "Name (code)" on two lines
    _print_setup(ws)
    ws.print_area = f"A1:{col_letter(TREND_BLOCKS['LX_TREND_NETBUY'] + TREND_NAMES)}{last}"
    ws.print_title_rows = f"{TREND_TOP}:{TREND_TOP}"
    ws.sheet_view.showGridLines = False


def _deterministic(wb: Workbook) -> bytes:
    wb.properties.creator = "xl_addin"
    wb.properties.created = FIXED
    wb.properties.modified = FIXED
    wb.properties.lastModifiedBy = "xl_addin"
    raw = io.BytesIO()
    wb.save(raw)
    src = zipfile.ZipFile(io.BytesIO(raw.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl stamps the save time here
                import re

                data = re.sub(rb"<dcterms:modified([^>]*)>[^<]*</dcterms:modified>",
                              rb"<dcterms:modified\1>2026-01-01T00:00:00Z</dcterms:modified>", data)
            zi = zipfile.ZipInfo(info.filename, date_time=(2026, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            z.writestr(zi, data)
    return out.getvalue()


BUILDERS = {"mm_ah.xlsx": build_mm_ah, "southbound_dashboard.xlsx": build_dashboard}


def render(name: str) -> bytes:
    return _deterministic(BUILDERS[name]())


def build_all(directory: str | Path = "templates") -> list[Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name in BUILDERS:
        path = directory / name
        path.write_bytes(render(name))
        out.append(path)
    return out


if __name__ == "__main__":
    for p in build_all(sys.argv[1] if len(sys.argv) > 1 else "templates"):
        print(f"wrote {p}")
