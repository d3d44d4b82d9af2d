"""Find the codes that the other LX_MMAH formulas on a sheet ask for.

Excel calls a sheet of single-cell formulas (``=LX_MMAH($A2, B$1)``) one at a time,
so each would send its own request on a cold cache. The first one that misses
reads the sheet's formulas and values once (two calls), collects every code the
sheet's LX_MMAH formulas point at, and fetches them all in one batched call; the
rest are then served from memory.
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


def _cell(ref: str) -> tuple[int, int]:
    m = _COL_ROW.match(ref)
    return int(m.group(2)), col_number(m.group(1))


def _grid(value) -> list[list]:
    if not isinstance(value, (list, tuple)):
        return [[value]]
    if value and not isinstance(value[0], (list, tuple)):
        return [list(value)]
    return [list(r) for r in value]


def codes_on_sheet(formulas, values, top: int = 1, left: int = 1) -> list[str]:
    """Codes referenced by LX_MMAH formulas in a block of *formulas* whose values are *values*.

    *top*/*left* are the 1-based row and column of the block's first cell. References
    outside the block, to other sheets, or to whole columns are left alone.
    """
    formulas, values = _grid(formulas), _grid(values)
    found: list[str] = []
    for row in formulas:
        for text in row:
            if not isinstance(text, str) or "LX_MMAH" not in text.upper():
                continue
            for m in _CALL.finditer(text):
                if _preceded_by_sheet(text, m.start()):
                    continue
                if m.group("text") is not None or m.group("number") is not None:
                    candidates = [m.group("text") if m.group("text") is not None else m.group("number")]
                else:
                    candidates = _values_at(m.group("ref"), values, top, left)
                for c in candidates:
                    code, _ = parse_code_cell(c)
                    if code:
                        found.append(code)
                if len(found) > MAX_CODES * 4:
                    break
    return list(dict.fromkeys(found))[:MAX_CODES]


def _preceded_by_sheet(text: str, start: int) -> bool:
    inner = text.find("(", start) + 1
    return "!" in text[inner: inner + 40].split(",")[0]


def _values_at(ref: str, values: list[list], top: int, left: int) -> list:
    first, _, last = ref.partition(":")
    r1, c1 = _cell(first)
    r2, c2 = _cell(last) if last else (r1, c1)
    out = []
    for r in range(min(r1, r2), max(r1, r2) + 1):
        i = r - top
        if not 0 <= i < len(values):
            continue
        for c in range(min(c1, c2), max(c1, c2) + 1):
            j = c - left
            if 0 <= j < len(values[i]):
                out.append(values[i][j])
    return out
