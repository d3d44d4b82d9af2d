"""Find the codes that the other LX_MMAH formulas on a sheet ask for, reading little.

Excel calls a sheet of single-cell formulas (``=LX_MMAH($A2, B$1)``) one at a time,
so each would send its own request on a cold cache. The first one that misses
scans the sheet once, collects every code the sheet's LX_MMAH formulas point at,
and fetches them all in one batched call; the rest are then served from memory.

The scan runs while Excel waits for the formula, across processes, so what it reads
is bounded, whatever the size of the sheet:

* formulas: only the formula cells (``SpecialCells(xlCellTypeFormulas)`` of the used
  range, in at most :data:`MAX_AREAS` blocks) if there are at most
  :data:`MAX_FORMULA_CELLS` of them; otherwise (or when Excel ignores the filter, as it
  may inside a UDF) a window of at most :data:`MAX_FORMULA_CELLS` cells around the
  calling row;
* values: only the cells those formulas reference, at most :data:`MAX_VALUE_CELLS`.

A sheet of 100,000 rows x 50 columns thus costs at most 40,000 cells, not the 10M a
read of the used range's formulas and values would.
"""

from __future__ import annotations

import re

from .formula import parse_code_cell
from .layout import col_number

_COL_ROW = re.compile(r"^\$?([A-Za-z]{1,3})\$?(\d+)$")
_CALL = re.compile(
    r"""LX_MMAH\(\s*(?:
        (?P<ref>\$?[A-Za-z]{1,3}\$?\d+(?::\$?[A-Za-z]{1,3}\$?\d+)?)(?=\s*[,)])   # A2, $A$2, A2:A50
      | "(?P<text>[^"]*)"                                                        # "700"
      | (?P<number>\d+(?:\.\d+)?)(?=\s*[,)])                                     # 700
    )""",
    re.IGNORECASE | re.VERBOSE,
)
MAX_CODES = 2000
MAX_FORMULA_CELLS = 20_000  # formula texts one scan reads, at most
MAX_VALUE_CELLS = 20_000  # referenced values one scan reads, at most
MAX_AREAS = 200  # separate blocks of formula cells read one by one, at most
XL_CELL_TYPE_FORMULAS = -4123


def _cell(ref: str) -> tuple[int, int]:
    m = _COL_ROW.match(ref)
    return int(m.group(2)), col_number(m.group(1))


def as_grid(value) -> list[list]:
    """A COM ``.Value``/``.Formula`` (a scalar, a row tuple or rows) as a list of rows."""
    if not isinstance(value, (list, tuple)):
        return [[value]]
    if value and not isinstance(value[0], (list, tuple)):
        return [list(value)]
    return [list(r) for r in value]


def lx_references(texts) -> tuple[list, list[tuple[int, int, int, int]]]:
    """(literal codes, cell blocks (top, left, bottom, right)) that LX_MMAH formulas ask for.

    References to other sheets and to whole columns are left alone.
    """
    literals, blocks = [], []
    for text in texts:
        if not isinstance(text, str) or "LX_MMAH" not in text.upper():
            continue
        for m in _CALL.finditer(text):
            if _preceded_by_sheet(text, m.start()):
                continue
            if m.group("text") is not None or m.group("number") is not None:
                literals.append(m.group("text") if m.group("text") is not None else m.group("number"))
            else:
                first, _, last = m.group("ref").partition(":")
                r1, c1 = _cell(first)
                r2, c2 = _cell(last) if last else (r1, c1)
                blocks.append((min(r1, r2), min(c1, c2), max(r1, r2), max(c1, c2)))
    return literals, blocks


def codes_on_sheet(formulas, values, top: int = 1, left: int = 1) -> list[str]:
    """Codes referenced by LX_MMAH formulas in a block of *formulas* whose values are *values*.

    *top*/*left* are the 1-based row and column of the block's first cell. References
    outside the block, to other sheets, or to whole columns are left alone.
    """
    formulas, values = as_grid(formulas), as_grid(values)
    literals, blocks = lx_references(t for row in formulas for t in row)
    found = list(literals)
    for r1, c1, r2, c2 in blocks:
        for r in range(r1, r2 + 1):
            i = r - top
            if not 0 <= i < len(values):
                continue
            for c in range(c1, c2 + 1):
                j = c - left
                if 0 <= j < len(values[i]):
                    found.append(values[i][j])
    return _codes(found)


def _codes(cells) -> list[str]:
    out = []
    for c in cells:
        code, _ = parse_code_cell(c)
        if code:
            out.append(code)
    return list(dict.fromkeys(out))[:MAX_CODES]


def _preceded_by_sheet(text: str, start: int) -> bool:
    inner = text.find("(", start) + 1
    return "!" in text[inner: inner + 40].split(",")[0]


# --- the one I/O function: reads a COM Worksheet, boundedly ----------------------------------
def _box(rng) -> tuple[int, int, int, int]:
    top, left = rng.Row, rng.Column
    return top, left, top + rng.Rows.Count - 1, left + rng.Columns.Count - 1


def _formula_blocks(sheet, used, caller_row: int) -> list:
    """The blocks whose .Formula the scan reads (each a COM Range), within the budgets."""
    top, left, bottom, right = _box(used)
    try:
        found = used.SpecialCells(XL_CELL_TYPE_FORMULAS)
    except Exception as exc:
        if "no cells were found" in str(exc).lower():
            return []
        found = None
    if found is not None:
        areas = found.Areas
        if found.CountLarge <= MAX_FORMULA_CELLS and areas.Count <= MAX_AREAS:
            return [areas.Item(i) for i in range(1, areas.Count + 1)]
    # too many formula cells (or a filter Excel ignored): a window around the calling row
    cols = min(right - left + 1, MAX_FORMULA_CELLS)
    rows = max(1, MAX_FORMULA_CELLS // cols)
    first = max(top, min(caller_row - rows // 2, bottom - rows + 1))
    last = min(bottom, first + rows - 1)
    return [sheet.Range(sheet.Cells(first, left), sheet.Cells(last, left + cols - 1))]


def scan(sheet, caller_row: int = 1) -> list[str]:
    """Codes the LX_MMAH formulas on the COM Worksheet *sheet* ask for (see the module doc)."""
    used = sheet.UsedRange
    u_top, u_left, u_bottom, u_right = _box(used)
    texts = []
    for block in _formula_blocks(sheet, used, caller_row):
        texts.extend(t for row in as_grid(block.Formula) for t in row if isinstance(t, str) and t.startswith("="))
    literals, blocks = lx_references(texts)
    # only what lies inside the used range can hold a code
    clipped = []
    for r1, c1, r2, c2 in dict.fromkeys(blocks):
        r1, c1, r2, c2 = max(r1, u_top), max(c1, u_left), min(r2, u_bottom), min(c2, u_right)
        if r1 <= r2 and c1 <= c2:
            clipped.append((r1, c1, r2, c2))
    found = list(literals)
    if clipped:
        box = (min(b[0] for b in clipped), min(b[1] for b in clipped),
               max(b[2] for b in clipped), max(b[3] for b in clipped))
        size = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
        reads = [box] if size <= MAX_VALUE_CELLS else clipped
        budget = MAX_VALUE_CELLS
        for r1, c1, r2, c2 in reads:
            n = (r2 - r1 + 1) * (c2 - c1 + 1)
            if n > budget:
                continue
            budget -= n
            values = as_grid(sheet.Range(sheet.Cells(r1, c1), sheet.Cells(r2, c2)).Value)
            wanted = [b for b in clipped if r1 <= b[0] and b[2] <= r2 and c1 <= b[1] and b[3] <= c2]
            for b in wanted:
                for r in range(b[0], b[2] + 1):
                    for c in range(b[1], b[3] + 1):
                        found.append(values[r - r1][c - c1])
    return _codes(found)
