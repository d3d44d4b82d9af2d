"""What `=LX_MMAH(codes, fields, headers)` computes, without Excel: pure over a fetch function.

Cells follow Bloomberg's convention: every problem is text starting with ``#N/A``,
so ``LEFT(x,4)="#N/A"`` finds them all; nothing ever raises into Excel.
"""

from __future__ import annotations

from typing import Callable

from .codes import is_blank, parse_code
from .dates import as_excel_datetime
from .exceptions import (
    ConfigError,
    InvalidCodeError,
    LixingerError,
    NoDataError,
    ServiceUnavailableError,
    TokenError,
    TokenRejectedError,
    UnknownFieldError,
)
from .fields import Field, lookup
from .problems import one_error_for_all

BLANK = ""
NO_DATA_CELL = "#N/A No Data"
INVALID_CODE_CELL = "#N/A Invalid Code"
UNCALCULATED_CELL = "#N/A Formula Not Calculated"
INVALID_FIELD_CELL = "#N/A Invalid Field"
#: what Excel hands over for error cells when err_to_str is on
EXCEL_ERRORS = frozenset({"#DIV/0!", "#N/A", "#NAME?", "#NULL!", "#NUM!", "#REF!", "#VALUE!",
                          "#GETTING_DATA", "#SPILL!", "#CALC!", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!"})


#: Excel shows #VALUE! for a string longer than this inside an array a UDF returns
ARRAY_TEXT_LIMIT = 255


def fit_for_excel(matrix: list[list]) -> list[list]:
    """*matrix* with every string cell cut to 255 characters when it is an array (more than one
    cell): Excel would show #VALUE! for a longer one. A single cell may keep a longer text."""
    if sum(len(r) for r in matrix) <= 1:
        return matrix
    return [[_cut(v) for v in row] for row in matrix]


def _cut(value):
    if isinstance(value, str) and len(value) > ARRAY_TEXT_LIMIT:
        return value[: ARRAY_TEXT_LIMIT - 1] + "…"
    return value


def error_cell(exc: Exception) -> str:
    """The short #N/A text for an error, as it shows in one cell."""
    if isinstance(exc, NoDataError):
        return NO_DATA_CELL
    if isinstance(exc, InvalidCodeError):
        return INVALID_CODE_CELL
    if isinstance(exc, TokenRejectedError):
        return "#N/A Token Rejected"
    if isinstance(exc, TokenError):
        return "#N/A No Token"
    if isinstance(exc, ServiceUnavailableError):
        return "#N/A Service Unavailable"
    if isinstance(exc, ConfigError):
        return "#N/A Setup Error"
    return "#N/A Service Error"


def explain(exc: Exception) -> str:
    """The one-cell message when a problem hit every code: what happened and what to do."""
    return f"{error_cell(exc)}: {exc}"[:1000]


def _flatten(value) -> tuple[list, tuple[int, int]]:
    """Cells row by row, and the (rows, cols) shape they came in."""
    if not isinstance(value, (list, tuple)):
        return [value], (1, 1)
    if value and isinstance(value[0], (list, tuple)):
        rows = len(value)
        cols = max((len(r) for r in value), default=0)
        return [c for r in value for c in r], (rows, cols)
    return list(value), (1, len(value))


def resolve_fields(fields) -> list[tuple[str, Field | None]]:
    """[(label shown, field or None when unknown)] for a cell, a row or a column of names."""
    names, _ = _flatten(fields)
    out = []
    for name in names:
        if is_blank(name):
            continue
        try:
            f = lookup(name)
        except UnknownFieldError:
            out.append((str(name).strip() if isinstance(name, str) else repr(name), None))
            continue
        shown = f.zh if isinstance(name, str) and name.strip() == f.zh else f.key
        out.append((shown, f))
    return out


def parse_code_cell(value) -> tuple[str | None, str | None]:
    """(code, None) for a good cell; (None, cell text) for a blank, invalid or error cell."""
    if isinstance(value, str) and value.strip().upper() in EXCEL_ERRORS:
        return None, f"#N/A Input Error {value.strip().upper()}"
    code, error = parse_code(value)
    if code is not None:
        return code, None
    return None, INVALID_CODE_CELL if error is not None else BLANK


def cell_value(field: Field, record: dict):
    value = record.get(field.key)
    if value is None:
        return BLANK
    return as_excel_datetime(value)  # naive: the Beijing date as Excel shows it


def mmah_matrix(codes, fields, headers: bool, fetch: Callable) -> list[list]:
    """The 2-D array LX_MMAH returns.

    One row per code cell (read row by row), one column per field; a single field
    keeps the shape the codes came in (a row of codes gives a row).
    """
    resolved = resolve_fields(fields)
    if not resolved:
        return [[f"{INVALID_FIELD_CELL}: no field given"]]
    cells, shape = _flatten(codes)
    if shape[1] == 1 and len(cells) > 1:  # a column: trailing blank cells are not spilled (A:A works)
        last = max((i for i, c in enumerate(cells) if not is_blank(c)), default=0)
        cells = cells[: last + 1]
        shape = (len(cells), 1)
    parsed = [parse_code_cell(c) for c in cells]
    wanted = list(dict.fromkeys(code for code, _ in parsed if code))
    result = fetch(wanted) if wanted else None
    errors = result.errors if result else {}
    records = result.records if result else {}

    common = one_error_for_all(wanted, errors)
    if common is not None:
        return [[explain(common)]]  # one problem for all: say it once, with the fix

    rows = []
    for code, text in parsed:
        if code is None:
            row = [text] * len(resolved)
        elif code in records:
            record = records[code]
            row = [cell_value(f, record) if f else f"{INVALID_FIELD_CELL}: {label}" for label, f in resolved]
        else:
            problem = error_cell(errors.get(code, LixingerError()))
            row = [problem if f else f"{INVALID_FIELD_CELL}: {label}" for label, f in resolved]
        rows.append(row)

    labels = [label for label, _ in resolved]
    if len(resolved) == 1 and shape[0] == 1 and shape[1] > 1:  # a row of codes, one field: a row
        out = [[r[0] for r in rows]]
        return [[labels[0]] + out[0]] if headers else out
    if len(resolved) == 1 and shape[1] > 1:  # a block of codes, one field: the same block
        out = [[rows[i * shape[1] + j][0] for j in range(shape[1])] for i in range(shape[0])]
        return ([[labels[0]] + [BLANK] * (shape[1] - 1)] + out) if headers else out
    return ([labels] + rows) if headers else rows
