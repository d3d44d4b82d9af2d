"""What `=LX_MMAH_HIST(codes, field, [start], [end], [headers])` computes, without Excel.

Like Bloomberg's BDH and Wind's WSD: one code gives a date column and a value column;
several codes give dates down and codes across (ready to chart). The answer comes only
from the history store (a query never asks the service); a day with no snapshot for a
code is blank, never 0. Every problem is one ``#N/A ...`` text, as in :mod:`.formula`.

``start``/``end`` are read the way a sheet holds them: a date cell (a datetime from
xlwings), an Excel serial number, ISO text (``2026-01-31``), or a day count back from
today (``-60`` or ``"-60"``: 60 calendar days ago; ``0``: today).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Callable

from .codes import is_blank
from .dates import as_excel_datetime
from .exceptions import InputError, LixingerError, UnknownFieldError
from .fields import Field, lookup
from .formula import ARRAY_TEXT_LIMIT, BLANK, INVALID_CODE_CELL, INVALID_FIELD_CELL, NO_DATA_CELL, explain, parse_code_cell

INPUT_ERROR_CELL = "#N/A Input Error"
EXCEL_EPOCH = dt.date(1899, 12, 30)  # serial 0 (Excel's 1900 system, past its 1900 leap-year bug)
MAX_SERIAL = 2958465  # 9999-12-31


class DateArgError(InputError):
    """A start or end that is no date."""


def parse_date(value, today: dt.date, name: str) -> dt.date | None:
    """One start/end argument -> a date, or None when it is left out; raises :class:`DateArgError`."""
    if is_blank(value):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, bool):
        raise DateArgError(f"{name} is {value!r}, not a date")
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                return dt.date.fromisoformat(text[:10]) if len(text) in (10, 19) or "T" in text else _bad(name, value)
            except ValueError:
                _bad(name, value)
        if number > 0:
            _bad(name, value)  # text "45000" is more likely a typo than a serial: say so
        value = number
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value != int(value):
            raise DateArgError(f"{name} is {value!r}: a day count or a date serial is a whole number")
        n = int(value)
        if n <= 0:
            return today + dt.timedelta(days=n)  # -60: sixty calendar days back
        if n > MAX_SERIAL:
            raise DateArgError(f"{name} is {value!r}, past the last date Excel holds")
        return EXCEL_EPOCH + dt.timedelta(days=n)
    raise DateArgError(f"{name} is {value!r}, not a date")


def _bad(name, value):
    raise DateArgError(f"{name} is {value!r}, not a date: give a date, ISO text like 2026-01-31, or -60 for 60 days back")


def date_range(start, end, today: dt.date, names=("start", "end")) -> tuple[dt.date | None, dt.date]:
    """(start or None for all history, end or today), checked: none in the future, end not before start.
    *names* are what the messages call the two (the CLI's --from and --to)."""
    first = parse_date(start, today, names[0])
    last = parse_date(end, today, names[1])
    for name, day in zip(names, (first, last)):
        if day is not None and day > today:
            raise DateArgError(f"{name} {day.isoformat()} is in the future (today is {today.isoformat()})")
    last = last or today
    if first is not None and last < first:
        raise DateArgError(f"{names[1]} {last.isoformat()} is before {names[0]} {first.isoformat()}")
    return first, last


def cells_of(value) -> list:
    """A cell, a row or a block (read row by row) as a flat list of cells."""
    if not isinstance(value, (list, tuple)):
        return [value]
    return [c for r in value for c in (r if isinstance(r, (list, tuple)) else [r])]


def _one_field(field) -> tuple[str, Field | None]:
    names = [n for n in cells_of(field) if not is_blank(n)]
    if len(names) != 1:
        return ("", None) if not names else ("several fields (give one)", None)
    name = names[0]
    label = name.strip() if isinstance(name, str) else repr(name)
    try:
        f = lookup(name)
    except UnknownFieldError:
        return label, None
    if f.kind in ("code", "date"):
        return label, None  # the key of a snapshot, not a value over time
    return (f.zh if label == f.zh else f.key), f


def hist_matrix(codes, field, start, end, headers: bool, series: Callable, today: dt.date,
                is_empty: Callable[[], bool] = lambda: False) -> list[list]:
    """The 2-D array LX_MMAH_HIST returns (no text in an array over Excel's 255 characters, so
    it needs no ``fit_for_excel`` pass; a one-cell problem may say more).

    *series(codes, field, start, end)* gives the store's rows ``(code, date, value)``;
    *is_empty()* says whether the store holds nothing at all (asked only when no row came back).
    """
    label, f = _one_field(field)
    if f is None:
        return [[f"{INVALID_FIELD_CELL}: {label or 'no field given'}"]]
    try:
        first, last = date_range(start, end, today)
    except DateArgError as exc:
        return [[f"{INPUT_ERROR_CELL}: {exc}"]]
    cells = [c for c in cells_of(codes) if not is_blank(c)]
    if not cells:
        return [[f"{INVALID_CODE_CELL}: no code given"]]
    parsed = [parse_code_cell(c) for c in cells]
    columns = list(dict.fromkeys(code or text for code, text in parsed))  # a code, or its problem
    wanted = [code for code, _ in parsed if code]
    rows = series(list(dict.fromkeys(wanted)), f, first, last) if wanted else []

    if not rows:
        span = f"{first.isoformat() if first else 'the first'} to {last.isoformat()}"
        if not wanted:
            return [[columns[0]]]  # no good code: its problem, e.g. #N/A Invalid Code
        if is_empty():
            return [[f"{NO_DATA_CELL}: the history store is empty; snapshots are kept as data is fetched"]]
        return [[f"{NO_DATA_CELL}: no snapshot of {', '.join(wanted)} kept from {span}"[:255]]]
    if len(columns) == 1:  # one code: the common case, kept lean (the store gives its rows by date)
        out = [[dt.datetime(d.year, d.month, d.day), BLANK if v is None else v] for _, d, v in rows]
        return ([["date", label]] + out) if headers else out

    by_code: dict[str, dict[dt.date, object]] = {}
    for code, day, value in rows:
        by_code.setdefault(code, {})[day] = value
    days = sorted({d for per in by_code.values() for d in per})
    out = []
    for day in days:
        row = [as_excel_datetime(day)]
        for col in columns:
            if col in by_code:
                value = by_code[col].get(day)
                row.append(BLANK if value is None else value)
            elif col in wanted:
                row.append(NO_DATA_CELL)  # a good code with nothing kept in the range
            else:
                row.append(col)  # its problem, e.g. #N/A Invalid Code
        out.append(row)
    if headers:
        shown = [label] if len(columns) == 1 else [x if isinstance(x, str) else str(cells[x])
                                                   for x in _first_cells(parsed, columns)]
        out.insert(0, ["date"] + [text[:ARRAY_TEXT_LIMIT] for text in shown])
    return out


def _first_cells(parsed, columns):
    """For each column: its code, or (for a problem column) the index of the first cell it came from."""
    out = []
    for col in columns:
        for i, (code, text) in enumerate(parsed):
            if (code or text) == col:
                out.append(code if code else i)
                break
    return out


def safe_hist_matrix(*args, **kwargs) -> list[list]:
    try:
        return hist_matrix(*args, **kwargs)
    except LixingerError as exc:
        return [[explain(exc)]]
