"""The template layout contract, and the pure plan of what a refresh writes.

A workbook is refreshable when it has these defined names (workbook- or sheet-scoped):

- ``LX_CODES``  one column of cells where the analyst types codes (any spelling);
- ``LX_FIELDS`` one row of field keys or 中文 labels, on the same sheet; the column
  under each name is filled for each code, on the code's own row;
- ``LX_STATUS`` (optional) a block of two columns and four rows: labels, then the
  values the refresh writes (refreshed at, data date, codes, errors);
- ``LX_TREND_RATIO``, ``LX_TREND_NETBUY`` (optional, one or both) trend blocks: a header
  row over one row per day (at least two), the dates in the first column, one column
  per top name (at least one); both the same size, on any sheet, overlapping neither
  the table (with its field-key row), LX_STATUS nor each other. The refresh fills them
  from the history store (holding ratio; cumulative net buying, HKD) for the watchlist's
  largest holders, without a request: see :mod:`xl_addin.trend`. A malformed block is a
  one-line error raised before anything is asked or written.

The refresh writes the cells at (code row, field column) for every row of LX_CODES
(clearing rows whose code was removed), the status values and the trend blocks, nothing else. Values the
service could not confirm (cached, served because it failed) are named in the status
block as stale, with when they were fetched.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from dataclasses import field as dc_field

from .codes import is_blank, parse_code
from .dates import as_excel_datetime
from .exceptions import NoDataError, UnknownFieldError, WorkbookError
from .fields import Field, lookup
from .formula import INVALID_CODE_CELL, NO_DATA_CELL, UNCALCULATED_CELL
from .problems import CAUSE_INVALID, CAUSE_UNCALCULATED, cause_of, grouped

CODES, FIELDS_NAME, STATUS = "LX_CODES", "LX_FIELDS", "LX_STATUS"
STATUS_LABELS = ("Refreshed at 刷新时间", "Data date 数据日期", "Codes 代码", "Problems 问题")

_REF = re.compile(r"^=?(?:'(?P<q>(?:[^']|'')+)'|(?P<s>[^'!]+))!\$?(?P<c1>[A-Z]{1,3})\$?(?P<r1>\d+)"
                  r"(?::\$?(?P<c2>[A-Z]{1,3})\$?(?P<r2>\d+))?$", re.IGNORECASE)


def col_letter(n: int) -> str:
    s = ""
    while n:
        n, r = divmod(n - 1, 26)
        s = chr(65 + r) + s
    return s


def col_number(letters: str) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + ord(ch) - 64
    return n


@dataclass(frozen=True)
class Ref:
    sheet: str
    top: int
    left: int
    bottom: int
    right: int

    @classmethod
    def parse(cls, text: str) -> "Ref":
        m = _REF.match(text.strip())
        if not m:
            raise WorkbookError(f"cannot read the range {text!r}: expected like 'Sheet'!$A$7:$A$1006")
        sheet = m.group("q").replace("''", "'") if m.group("q") is not None else m.group("s")
        c1, r1 = col_number(m.group("c1")), int(m.group("r1"))
        c2, r2 = (col_number(m.group("c2")), int(m.group("r2"))) if m.group("c2") else (c1, r1)
        return cls(sheet, min(r1, r2), min(c1, c2), max(r1, r2), max(c1, c2))

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1

    @property
    def width(self) -> int:
        return self.right - self.left + 1

    def a1(self) -> str:
        return f"'{self.sheet}'!${col_letter(self.left)}${self.top}:${col_letter(self.right)}${self.bottom}"


@dataclass(frozen=True)
class Layout:
    codes: Ref
    fields: Ref
    status: Ref | None

    @classmethod
    def from_names(cls, names: dict[str, str]) -> "Layout":
        upper = {k.split("!")[-1].upper(): v for k, v in names.items()}
        missing = [n for n in (CODES, FIELDS_NAME) if n not in upper]
        if missing:
            raise WorkbookError(
                f"this workbook has no {' and no '.join(missing)} defined name: it is not a refresh template "
                "(see the README's 'Build your own template', or start from templates/mm_ah.xlsx)"
            )
        codes, fields = Ref.parse(upper[CODES]), Ref.parse(upper[FIELDS_NAME])
        status = Ref.parse(upper[STATUS]) if STATUS in upper else None
        if codes.width != 1:
            raise WorkbookError(f"{CODES} must be one column, not {codes.a1()}")
        if fields.height != 1:
            raise WorkbookError(f"{FIELDS_NAME} must be one row, not {fields.a1()}")
        if codes.sheet != fields.sheet:
            raise WorkbookError(f"{CODES} and {FIELDS_NAME} must be on the same sheet")
        if fields.left <= codes.left <= fields.right:
            raise WorkbookError(f"{FIELDS_NAME} must not include the codes column")
        if fields.top >= codes.top:
            raise WorkbookError(f"{FIELDS_NAME} must be above the first code row")
        if status is not None and (status.width != 2 or status.height < 4):
            raise WorkbookError(f"{STATUS} must be two columns by four rows, not {status.a1()}")
        if status is not None and status.sheet == codes.sheet and _overlaps_table(status, codes, fields):
            raise WorkbookError(f"{STATUS} must not overlap the table")
        return cls(codes, fields, status)


def _overlaps_table(status: Ref, codes: Ref, fields: Ref) -> bool:
    rows = status.bottom >= codes.top and status.top <= codes.bottom
    cols = status.right >= fields.left and status.left <= fields.right
    return rows and cols


@dataclass
class Plan:
    """What to write: table blocks (top, left, rows) on the sheet, and the status values."""

    sheet: str
    blocks: list  # [(top, left, matrix)]
    number_formats: dict  # column -> Excel number format
    status: list | None  # [[value], ...] for the status value column
    codes: list[str]  # distinct valid codes
    problem_rows: list[tuple[str, str]]  # (code as typed, cause), one per row with a problem
    fields: list[Field]
    stale: list[str] = dc_field(default_factory=list)  # codes whose values are cached ones, served because the service failed

    @property
    def problems(self) -> list[str]:
        """One line per cause, with a count."""
        return grouped(self.problem_rows)


def read_fields(layout: Layout, header_row: list) -> list[tuple[int, Field]]:
    """(column, field) for each named column of LX_FIELDS; an unknown name is an error that names it."""
    out = []
    for offset, name in enumerate(header_row):
        if is_blank(name):
            continue
        col = layout.fields.left + offset
        try:
            out.append((col, lookup(name)))
        except UnknownFieldError as exc:
            raise WorkbookError(f"{FIELDS_NAME} cell {col_letter(col)}{layout.fields.top}: {exc}") from None
    if not out:
        raise WorkbookError(f"{FIELDS_NAME} ({layout.fields.a1()}) names no field")
    return out


def read_codes(code_cells: list) -> list[tuple[str | None, str | None]]:
    """(code, None) per LX_CODES row; (None, the cell as typed) for an invalid code; (None, None) if blank."""
    out = []
    for raw in code_cells:
        code, error = parse_code(raw)
        out.append((code, str(raw)[:50] if error is not None else None))
    return out


def is_uncalculated(cell) -> bool:
    """A code cell that is a formula no program calculated (a book's reader marks it ``uncalculated``)."""
    return getattr(cell, "uncalculated", False) is True


def _contiguous(columns: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for c in sorted(columns):
        if runs and c == runs[-1][-1] + 1:
            runs[-1].append(c)
        else:
            runs.append([c])
    return runs


#: what a record's value can be that is already a cell's value (anything else goes through as_excel_datetime)
_AS_IS = frozenset((float, int, str, bool))


def plan_refresh(layout: Layout, code_cells: list, header_row: list, result, now: dt.datetime) -> Plan:
    """The cells a refresh writes, from what the sheet holds and what the service returned."""
    fields = read_fields(layout, header_row)
    parsed = read_codes(code_cells)
    problem_rows: list[tuple[str, str]] = []
    keys = [f.key for _, f in fields]
    width = len(keys)
    table: list[list] = []  # one row per LX_CODES row, one value per field, in column order
    records = result.records if result else {}
    errors = result.errors if result else {}
    for raw, (code, problem) in zip(code_cells, parsed):
        record = records.get(code) if code else None
        if record is not None:
            table.append([v if v is None or type(v) in _AS_IS else as_excel_datetime(v) for v in map(record.get, keys)])
            continue
        row = [None] * width  # a blank row is cleared
        uncalculated = is_uncalculated(raw)
        if code is not None or problem is not None:  # the first column says why the row is empty
            error = errors.get(code) if code else None
            row[0] = (UNCALCULATED_CELL if uncalculated else f"{INVALID_CODE_CELL} {problem}"[:60] if problem
                      else NO_DATA_CELL if isinstance(error, NoDataError) else f"#N/A {error}")
        if problem:
            problem_rows.append((problem, CAUSE_UNCALCULATED if uncalculated else CAUSE_INVALID))
        elif code:
            problem_rows.append((code, cause_of(errors.get(code))))
        table.append(row)
    blocks = []
    at = 0
    for run in _contiguous([c for c, _ in fields]):  # fields are in column order
        matrix = table if len(run) == width else [row[at:at + len(run)] for row in table]
        blocks.append((layout.codes.top, run[0], matrix))
        at += len(run)
    codes = list(dict.fromkeys(code for code, _ in parsed if code))
    ok = sum(1 for c in codes if result and c in result.records)
    stale = [c for c in codes if result and c in result.stale]
    stale_rows = [(c, stale_cause(result, c)) for c in stale]
    status = None
    if layout.status is not None:
        newest = result.newest_data_date if result else None
        said = grouped(stale_rows + problem_rows, shown=None)  # every stale and failed code is named
        status = [
            [now.replace(microsecond=0)],
            [as_excel_datetime(newest) if newest else None],
            [f"{ok} of {len(codes)} with data" + (f", {len(stale)} of them STALE (see Problems)" if stale else "")],
            ["; ".join(said)[:STATUS_TEXT_MAX] if said else "none"],
        ]
    return Plan(
        sheet=layout.codes.sheet,
        blocks=blocks,
        number_formats={c: f.number_format for c, f in fields},
        status=status,
        codes=codes,
        problem_rows=problem_rows,
        fields=[f for _, f in fields],
        stale=stale,
    )


STATUS_TEXT_MAX = 32000  # Excel holds 32,767 characters in a cell


def stale_cause(result, code: str) -> str:
    """``stale: cached 2026-03-17 09:30, the service failed (…)`` for a code served from the cache."""
    when = result.fetched_at.get(code)
    shown = dt.datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M") if when else "earlier"
    why = result.stale_because.get(code)
    return f"stale: cached {shown}, the service failed ({why})" if why else f"stale: cached {shown}"
