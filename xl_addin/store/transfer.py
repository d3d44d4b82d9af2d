"""History in and out of a store as files: CSV always, Parquet when pyarrow is installed.

So that a colleague's history can be merged in and a desk database seeded from one
analyst's file. Export writes every snapshot (floats as ``repr``, so they come back
bit for bit) to a temporary file and renames it into place. Import reads and checks
the whole file first — every bad row is reported with its line number — and only
then writes, in one transaction: a file with one bad row imports nothing, and
importing the same file twice changes nothing the second time.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
import tempfile
from pathlib import Path
from typing import Iterable

from ..exceptions import ImportFileError, InputError
from .base import INTEGER_KINDS, VALUE_FIELDS, VALUE_KEYS, HistoryStore, PutResult, Snapshot, check_snapshot

KEY_HEADER = ("source", "code", "data_date", "fetched_at")
HEADER = KEY_HEADER + VALUE_KEYS
_INTEGER_KEYS = frozenset(f.key for f in VALUE_FIELDS if f.kind in INTEGER_KINDS)
MAX_PROBLEMS = 1000  # stop collecting after this many; the file is rejected either way


def file_format(path: Path | str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise InputError(f"{path}: history files are .csv or .parquet")


# -- one value as text, and back --------------------------------------------------------------
def _text(value) -> str:
    if value is None:
        return ""
    return repr(value)  # repr of a float is the shortest text that reads back to the same float


def _number(key: str, text: str):
    text = text.strip()
    if text == "":
        return None
    if key in _INTEGER_KEYS or key == "fetched_at":
        try:
            return int(text)
        except ValueError:
            pass
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{key} is {text!r}, not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{key} is {text!r}, not a finite number")
    return value


def parse_row(row: dict) -> Snapshot:
    """One file row (text or typed values) -> a checked Snapshot; raises ValueError."""
    source = row.get("source")
    code = row.get("code")
    if not isinstance(source, str) or not source.strip():
        raise ValueError("source is empty")
    if not isinstance(code, str):
        raise ValueError(f"code {code!r} is not a five-digit code")
    date = row.get("data_date")
    if isinstance(date, dt.datetime):
        date = date.date()
    if not isinstance(date, dt.date):
        text = str(date or "").strip()
        try:
            if len(text) != 10:
                raise ValueError
            date = dt.date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"data_date {text!r} is not a date (YYYY-MM-DD)") from None
    fetched = row.get("fetched_at")
    fetched = _number("fetched_at", fetched) if isinstance(fetched, str) else fetched
    if fetched is None:
        raise ValueError("fetched_at is empty")
    values = {}
    for key in VALUE_KEYS:
        value = row.get(key)
        value = _number(key, value) if isinstance(value, str) else value
        if key in _INTEGER_KEYS and isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"{key} is {value!r}, not a whole number of shares")
        values[key] = value
    return check_snapshot(Snapshot(source, code, date, float(fetched), values))


def _validate(rows: Iterable[tuple[int, dict]], path) -> list[Snapshot]:
    good, problems = [], []
    for line, row in rows:
        try:
            good.append(parse_row(row))
        except ValueError as exc:
            problems.append((line, str(exc)))
            if len(problems) >= MAX_PROBLEMS:
                break
    if problems:
        raise ImportFileError(path, problems)
    return good


def _check_header(names, path) -> None:
    if names is None:
        raise ImportFileError(path, [(1, "the file is empty; expected a header row")])
    names = list(names)
    unknown = [n for n in names if n not in HEADER]
    missing = [n for n in KEY_HEADER if n not in names]
    problems = []
    if unknown:
        problems.append((1, f"unknown column(s) {', '.join(map(repr, unknown))}"))
    if missing:
        problems.append((1, f"missing column(s) {', '.join(missing)}"))
    if len(set(names)) != len(names):
        problems.append((1, "a column appears twice"))
    if problems:
        raise ImportFileError(path, problems)


# -- CSV ---------------------------------------------------------------------------------------------
def export_csv(store: HistoryStore, path: Path | str, source: str | None = None) -> int:
    """Write every snapshot (of *source*, or all) to *path*; returns the number of rows."""

    def write(handle) -> int:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        n = 0
        for s in store.export_rows(source):
            writer.writerow([s.source, s.code, s.data_date.isoformat(), _text(s.fetched_at),
                             *[_text(s.values.get(k)) for k in VALUE_KEYS]])
            n += 1
        return n

    return _atomic_write(Path(path), write, newline="")


def read_csv(path: Path | str) -> list[Snapshot]:
    """Every row of a history CSV, checked; raises ImportFileError listing the bad lines."""
    path = Path(path)
    try:
        handle = path.open("r", encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    rows: list[tuple[int, dict]] = []
    with handle:
        reader = csv.DictReader(handle)
        try:
            _check_header(reader.fieldnames, path)
            for row in reader:
                if None in row:
                    row = _Shape("more values than columns")
                elif any(v is None for v in row.values()):
                    row = _Shape("fewer values than columns")
                rows.append((reader.line_num, row))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ImportFileError(path, [(reader.line_num or 1, f"not readable as CSV ({exc})")]) from None
    return _validate(rows, path)


class _Shape(dict):
    """A row whose shape is wrong: reading any value raises its message."""

    def __init__(self, message: str):
        super().__init__()
        self.message = message

    def get(self, key, default=None):
        raise ValueError(self.message)


# -- Parquet (optional) --------------------------------------------------------------------------
def _pyarrow():
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("Parquet files need pyarrow: pip install 'xl-addin[parquet]', or use a .csv file") from None
    return pyarrow, pq


def export_parquet(store: HistoryStore, path: Path | str, source: str | None = None) -> int:
    pa, pq = _pyarrow()
    rows = list(store.export_rows(source))
    columns = {
        "source": pa.array([s.source for s in rows], pa.string()),
        "code": pa.array([s.code for s in rows], pa.string()),
        "data_date": pa.array([s.data_date for s in rows], pa.date32()),
        "fetched_at": pa.array([s.fetched_at for s in rows], pa.float64()),
    }
    for f in VALUE_FIELDS:
        kind = pa.int64() if f.kind in INTEGER_KINDS else pa.float64()
        columns[f.key] = pa.array([s.values.get(f.key) for s in rows], kind)
    table = pa.table(columns)
    return _atomic_write(Path(path), lambda handle: (pq.write_table(table, handle), len(rows))[1], binary=True)


def read_parquet(path: Path | str) -> list[Snapshot]:
    _, pq = _pyarrow()
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise ImportFileError(path, [(1, f"not readable as Parquet ({exc})")]) from None
    _check_header(table.column_names, path)
    # row n of the table is "line" n + 1, as if the column names were line 1
    return _validate(((i + 2, row) for i, row in enumerate(table.to_pylist())), path)


# -- either ---------------------------------------------------------------------------------------
def export_file(store: HistoryStore, path: Path | str, source: str | None = None) -> int:
    """Write the store's history to a .csv or .parquet file; returns the number of snapshots."""
    return (export_csv if file_format(path) == "csv" else export_parquet)(store, path, source)


def read_file(path: Path | str) -> list[Snapshot]:
    return (read_csv if file_format(path) == "csv" else read_parquet)(path)


def import_file(store: HistoryStore, path: Path | str) -> PutResult:
    """Check every row of *path*, then merge them all in one transaction (or none)."""
    return store.import_rows(read_file(path))


def _atomic_write(path: Path, write, newline: str | None = None, binary: bool = False) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        mode = "wb" if binary else "w"
        with os.fdopen(fd, mode, **({} if binary else {"encoding": "utf-8", "newline": newline})) as handle:
            n = write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n
