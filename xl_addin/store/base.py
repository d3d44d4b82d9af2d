"""What every history backend promises: the snapshot, the store interface, its answers.

The service, the CLI, the formulas and pandas talk to a :class:`HistoryStore`, never
to SQL, so that a shared database for a desk (PostgreSQL) can stand in for the local
SQLite file without any of them changing. A snapshot is one service's record for
one code on one data date, with the time it was fetched; the store keeps one per
(source, code, data date) — the newest fetch — and counts how often a newer fetch
replaced an older one. Everything here is plain Python: no SQL, no pandas.
"""

from __future__ import annotations

import datetime as dt
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

from ..exceptions import InputError, MalformedRecordError, StoreError, UnknownFieldError
from ..fields import FIELDS, Field, lookup

#: the fields a snapshot holds as values (everything but the key's code and date)
VALUE_FIELDS: tuple[Field, ...] = tuple(f for f in FIELDS if f.kind not in ("code", "date"))
VALUE_KEYS: tuple[str, ...] = tuple(f.key for f in VALUE_FIELDS)
INTEGER_KINDS = frozenset({"shares"})  # share counts are whole numbers; amounts and ratios are not

Number = int | float


@dataclass(frozen=True)
class Snapshot:
    """One (source, code, data date) record and when it was fetched.

    ``values`` maps each of :data:`VALUE_KEYS` to a number or ``None`` (the record
    lacked it); :meth:`from_record` and :meth:`record` convert from and to the
    typed records of :mod:`xl_addin.records`.
    """

    source: str
    code: str
    data_date: dt.date
    fetched_at: float
    values: Mapping[str, Number | None] = field(default_factory=dict)
    #: made from a record ``records.parse_record`` checked already: ``put`` does not check it again
    checked: bool = field(default=False, compare=False, repr=False)

    @classmethod
    def from_record(cls, source: str, record: Mapping, fetched_at: float, *, checked: bool = False) -> "Snapshot":
        """A typed record (``records.parse_record``) fetched at *fetched_at* (epoch seconds).
        ``checked=True`` only for a record parse_record made of a code that was asked for (the
        service's own fetches): its values are not checked again when it is kept."""
        date = record.get("last_data_date")
        if not isinstance(date, dt.date):
            raise MalformedRecordError(f"{record.get('stockCode')}: a record without a data date cannot be kept")
        return cls(source, record["stockCode"], date, float(fetched_at), {k: record.get(k) for k in VALUE_KEYS},
                   checked and bool(source))

    def record(self) -> dict:
        """The typed record, shaped like ``records.parse_record``'s."""
        out: dict = {"stockCode": self.code, "last_data_date": self.data_date}
        for key in VALUE_KEYS:
            out[key] = self.values.get(key)
        return out


@dataclass(frozen=True)
class PutResult:
    """What a write did: new (source, code, date) rows, newer fetches that replaced
    an older one, and rows that changed nothing (an older or the same fetch)."""

    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0

    def __add__(self, other: "PutResult") -> "PutResult":
        return PutResult(self.inserted + other.inserted, self.replaced + other.replaced, self.unchanged + other.unchanged)


@dataclass(frozen=True)
class StoreInfo:
    """What ``info()`` says about a store (the CLI and ``LX_MMAH_INFO`` show it)."""

    backend: str  # "sqlite", later "postgresql"
    location: str  # a path, or a URL without its password
    schema_version: int
    snapshots: int  # (source, code, data date) rows
    codes: int
    sources: tuple[str, ...]
    first_data_date: dt.date | None
    last_data_date: dt.date | None
    last_fetch: float | None  # epoch seconds
    replacements: int  # times a newer fetch of the same data date replaced the kept one
    size_bytes: int | None = None

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        for key in ("first_data_date", "last_data_date"):
            out[key] = out[key].isoformat() if out[key] else None
        out["sources"] = list(self.sources)
        return out


class HistoryStore(ABC):
    """Every snapshot kept; the contract each backend passes (``tests/test_store.py``).

    Reads never touch the network; ``source`` (the service's base URL) keeps sandbox
    data apart from real data and is required on every query.
    """

    backend: str = "?"

    # -- writes ----------------------------------------------------------------------
    @abstractmethod
    def put(self, snapshots: Iterable[Snapshot]) -> PutResult:
        """Keep each snapshot, in one transaction: a new key is inserted; a newer fetch
        of a kept key replaces it (and is counted); an older or equal fetch changes nothing."""

    @abstractmethod
    def mark_absent(self, codes: Iterable[str], fetched_at: float, *, source: str) -> None:
        """Remember that the service answered these codes without a record."""

    # -- reads -----------------------------------------------------------------------
    @abstractmethod
    def latest(self, codes: str | Iterable[str], *, source: str) -> dict[str, Snapshot]:
        """The snapshot of the newest data date per code (codes never seen are left out)."""

    @abstractmethod
    def absent(self, codes: str | Iterable[str], *, source: str) -> dict[str, float]:
        """When each code was last answered without a record (and not since with one)."""

    @abstractmethod
    def series(self, codes: str | Iterable[str], fields: str | Field | Iterable[str | Field], start: dt.date | None = None,
               end: dt.date | None = None, *, source: str) -> list[tuple]:
        """Rows ``(code, data_date, value, ...)`` (one value per field, in order) for data
        dates in [start, end] (either open), ordered by code as given, then date.
        A date with no snapshot for a code has no row; a missing value is ``None``."""

    @abstractmethod
    def codes_seen(self, since: float, *, source: str) -> list[str]:
        """Codes fetched (with a record) at or after *since* (epoch seconds), sorted."""

    @abstractmethod
    def info(self, source: str | None = None) -> StoreInfo:
        """Counts, dates, replacements and size (of one source's snapshots, or all)."""

    # -- moving history in and out -------------------------------------------------------
    @abstractmethod
    def export_rows(self, source: str | None = None) -> Iterator[Snapshot]:
        """Every kept snapshot (of one source, or all), ordered by source, code, date."""

    def keep(self, records: Iterable[Mapping], absent: Iterable[str], fetched_at: float, *, source: str) -> None:
        """What one fetch answered: typed records (``records.parse_record``'s, checked already)
        kept as snapshots, and the codes answered without a record marked. A backend does it in
        one transaction where it can (SQLite does); this default is ``put`` then ``mark_absent``."""
        self.put(Snapshot.from_record(source, r, fetched_at, checked=True) for r in records if r.get("last_data_date"))
        absent = as_codes(absent)
        if absent:
            self.mark_absent(absent, fetched_at, source=source)

    def import_rows(self, snapshots: Iterable[Snapshot]) -> PutResult:
        """Merge snapshots from elsewhere; the same rules as :meth:`put`, so importing
        the same file twice changes nothing the second time."""
        return self.put(snapshots)

    def close(self) -> None:
        """Release connections; the store can be used again afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- shared checks, used by every backend and by the file import ------------------------
def as_codes(codes: str | Iterable[str]) -> list[str]:
    """Codes, each once, in order; one code may be given on its own."""
    return [codes] if isinstance(codes, str) else list(dict.fromkeys(codes))


def value_fields(fields: str | Field | Iterable[str | Field]) -> list[Field]:
    """Catalog fields that a series can return (not the code or the date); one may be given on its own."""
    if isinstance(fields, (str, Field)):
        fields = [fields]
    out = []
    for name in fields:
        f = lookup(name)
        if f.kind in ("code", "date"):
            raise InputError(f"{f.key} is the key of a snapshot, not a value over time; ask for a field like mm_sh")
        out.append(f)
    if not out:
        raise InputError("no field asked for; name at least one, like mm_sh")
    return out


def check_value(key: str, value: object) -> Number | None:
    """A stored value: a finite int/float (whole for share counts) or None; raises ValueError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} is {value!r}, not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{key} is {value!r}, not a finite number")
    return value


def check_snapshot(s: Snapshot) -> Snapshot:
    """Raise ValueError when a snapshot cannot be stored as it is."""
    if not isinstance(s.source, str) or not s.source:
        raise ValueError("source is empty")
    if not isinstance(s.code, str) or len(s.code) != 5 or not s.code.isdigit():
        raise ValueError(f"code {s.code!r} is not a five-digit code")
    if not isinstance(s.data_date, dt.date) or isinstance(s.data_date, dt.datetime):
        raise ValueError(f"data date {s.data_date!r} is not a date")
    if isinstance(s.fetched_at, bool) or not isinstance(s.fetched_at, (int, float)) or not math.isfinite(s.fetched_at):
        raise ValueError(f"fetched_at {s.fetched_at!r} is not a time")
    unknown = set(s.values) - set(VALUE_KEYS)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
    for key in VALUE_KEYS:
        check_value(key, s.values.get(key))
    return s


_VALUE_KEY_SET = frozenset(VALUE_KEYS)


def plainly_good(s: Snapshot) -> bool:
    """The common case, checked fast: plain ints and finite floats under known keys. False does
    not mean bad: :func:`check_snapshot` then decides (and says why)."""
    code, when, values = s.code, s.fetched_at, s.values
    if (type(code) is not str or len(code) != 5 or not code.isdigit() or type(s.data_date) is not dt.date
            or type(when) is not float or when - when != 0.0 or type(s.source) is not str or not s.source
            or not _VALUE_KEY_SET.issuperset(values)):
        return False
    for v in values.values():
        t = type(v)
        if not (v is None or t is int or (t is float and v - v == 0.0)):
            return False
    return True


def newest_of(snapshots: Iterable[Snapshot], key) -> tuple[dict[tuple, Snapshot], int]:
    """The checked snapshots of one ``put``, the newest fetch per ``key(s)`` (what every backend
    keeps), and how many were dropped as older or equal repeats; a StoreError for a bad one."""
    newest: dict[tuple, Snapshot] = {}
    unchanged = 0
    for s in snapshots:
        try:
            if not (s.checked or plainly_good(s)):
                check_snapshot(s)
        except ValueError as exc:
            raise StoreError(f"cannot keep the snapshot of {s.code!r} on {s.data_date!r}: {exc}") from None
        k = key(s)
        kept = newest.get(k)
        if kept is not None:
            unchanged += 1
            if kept.fetched_at >= s.fetched_at:
                continue
        newest[k] = s
    return newest, unchanged
