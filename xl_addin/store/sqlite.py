"""The local history store: one SQLite file, the same file the cache has always used.

Opening a cache file made by ``xl_addin/cache.py`` migrates it in place (see
:mod:`.schema`); nothing in it is lost. One connection per store, shared by threads
under a lock (Excel's UDF server calls from several); WAL and a busy timeout let
Excel, a scheduled snapshot and the CLI use the file at once, and every write is one
``BEGIN IMMEDIATE`` transaction, so a failed write leaves the file as it was.
Unlike the cache, a history file that cannot be read is never moved aside or
rebuilt: it says so and stops.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from ..exceptions import LixingerError, StoreError
from ..fields import Field
from ..records import parse_record
from . import schema
from .base import VALUE_KEYS, HistoryStore, PutResult, Snapshot, StoreInfo, as_codes, newest_of, value_fields

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 15000
_CHUNK = 500  # host parameters per IN (...) list, well under SQLite's limit
_LOW, _HIGH = "0001-01-01", "9999-12-31"
_COLUMNS = ", ".join(VALUE_KEYS)
_SELECT = f"SELECT source, code, data_date, fetched_at, {_COLUMNS} FROM history"
_INSERT = (
    f"INSERT INTO history (source, code, data_date, fetched_at, {_COLUMNS}) "
    f"VALUES (?, ?, ?, ?, {', '.join('?' * len(VALUE_KEYS))})"
)
_REPLACE = (
    f"UPDATE history SET fetched_at = ?, replaced = replaced + 1, "
    f"{', '.join(k + ' = ?' for k in VALUE_KEYS)} WHERE source = ? AND code = ? AND data_date = ?"
)


class SQLiteStore(HistoryStore):
    """History in a SQLite file (created, or migrated from a cache file, on first use)."""

    backend = "sqlite"

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._dates: dict[str, dt.date] = {}
        self._opened = 0  # connections opened so far (part of data_version)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- connection and migrations ---------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode=WAL")
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._opened += 1
        return conn

    @contextmanager
    def _session(self, write: bool = False):
        """The connection, under the lock; with ``write`` one IMMEDIATE transaction."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._open()
                conn = self._conn
                if not write:
                    yield conn
                    return
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"history store {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _date(self, text: str) -> dt.date:
        found = self._dates.get(text)
        if found is None:
            found = self._dates[text] = dt.date.fromisoformat(text)
        return found

    # -- writes ------------------------------------------------------------------------------
    def put(self, snapshots: Iterable[Snapshot]) -> PutResult:
        newest, unchanged = newest_of(snapshots, lambda s: (s.source, s.code, s.data_date.isoformat()))
        if not newest:
            return PutResult(unchanged=unchanged)
        inserts, replaces = [], []
        with self._session(write=True) as conn:
            for key, s in newest.items():
                row = conn.execute(
                    "SELECT fetched_at FROM history WHERE source = ? AND code = ? AND data_date = ?", key
                ).fetchone()
                values = [s.values.get(k) for k in VALUE_KEYS]
                if row is None:
                    inserts.append((*key, s.fetched_at, *values))
                elif s.fetched_at > row[0]:
                    replaces.append((s.fetched_at, *values, *key))
                else:
                    unchanged += 1
            conn.executemany(_INSERT, inserts)
            conn.executemany(_REPLACE, replaces)
            conn.executemany(
                "DELETE FROM absent WHERE source = ? AND code = ? AND fetched_at <= ?",
                [(s.source, s.code, s.fetched_at) for s in newest.values()],
            )
        return PutResult(len(inserts), len(replaces), unchanged)

    def mark_absent(self, codes: Iterable[str], fetched_at: float, *, source: str) -> None:
        rows = [(source, code, float(fetched_at)) for code in as_codes(codes)]
        if not rows:
            return
        with self._session(write=True) as conn:
            conn.executemany(
                "INSERT INTO absent (source, code, fetched_at) VALUES (?, ?, ?) "
                "ON CONFLICT (source, code) DO UPDATE SET fetched_at = MAX(fetched_at, excluded.fetched_at)",
                rows,
            )

    # -- reads -------------------------------------------------------------------------------
    def _snapshot(self, row) -> Snapshot:
        return Snapshot(row[0], row[1], self._date(row[2]), row[3], dict(zip(VALUE_KEYS, row[4:])))

    def latest(self, codes: str | Iterable[str], *, source: str) -> dict[str, Snapshot]:
        out: dict[str, Snapshot] = {}
        query = f"{_SELECT} WHERE source = ? AND code = ? ORDER BY data_date DESC LIMIT 1"
        with self._session() as conn:
            for code in as_codes(codes):
                row = conn.execute(query, (source, code)).fetchone()
                if row is not None:
                    out[code] = self._snapshot(row)
        return out

    def absent(self, codes: str | Iterable[str], *, source: str) -> dict[str, float]:
        codes = as_codes(codes)
        out: dict[str, float] = {}
        with self._session() as conn:
            for i in range(0, len(codes), _CHUNK):
                chunk = codes[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                out.update(conn.execute(
                    f"SELECT code, fetched_at FROM absent WHERE source = ? AND code IN ({marks})", [source, *chunk]
                ).fetchall())
        return out

    def series(self, codes: str | Iterable[str], fields: str | Field | Iterable[str | Field], start: dt.date | None = None,
               end: dt.date | None = None, *, source: str) -> list[tuple]:
        keys = [f.key for f in value_fields(fields)]
        low = start.isoformat() if start else _LOW
        high = end.isoformat() if end else _HIGH
        query = (f"SELECT data_date, {', '.join(keys)} FROM history "
                 "WHERE source = ? AND code = ? AND data_date BETWEEN ? AND ? ORDER BY data_date")
        out: list[tuple] = []
        dates = self._dates
        with self._session() as conn:
            for code in as_codes(codes):
                rows = conn.execute(query, (source, code, low, high)).fetchall()
                for row in rows:
                    if row[0] not in dates:
                        self._date(row[0])
                if len(keys) == 1:
                    out += [(code, dates[d], v) for d, v in rows]
                else:
                    out += [(code, dates[r[0]], *r[1:]) for r in rows]
        return out

    def data_version(self) -> tuple[int, int, int]:
        """A token that changes whenever what the file holds may have changed: a commit by any other
        connection or process (SQLite's ``PRAGMA data_version``), this connection's own writes
        (``total_changes``), a reopened connection. It reads no table, so a formula can ask it on
        every call and serve a kept answer only while it is the same (see :mod:`xl_addin.answer_cache`)."""
        with self._session() as conn:
            return self._opened, conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes

    def codes_seen(self, since: float, *, source: str) -> list[str]:
        with self._session() as conn:
            rows = conn.execute(
                "SELECT DISTINCT code FROM history WHERE source = ? AND fetched_at >= ? ORDER BY code", (source, since)
            ).fetchall()
        return [r[0] for r in rows]

    def info(self, source: str | None = None) -> StoreInfo:
        where, args = ("WHERE source = ?", [source]) if source is not None else ("", [])
        with self._session() as conn:
            version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
            n, codes, first, last, fetch, replaced = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT code), MIN(data_date), MAX(data_date), MAX(fetched_at), "
                f"COALESCE(SUM(replaced), 0) FROM history {where}", args
            ).fetchone()
            sources = tuple(r[0] for r in conn.execute(f"SELECT DISTINCT source FROM history {where} ORDER BY source", args))
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        return StoreInfo(
            backend=self.backend, location=str(self.path), schema_version=version, snapshots=n, codes=codes,
            sources=sources, first_data_date=self._date(first) if first else None,
            last_data_date=self._date(last) if last else None, last_fetch=fetch, replacements=replaced,
            size_bytes=size,
        )

    def export_rows(self, source: str | None = None) -> Iterator[Snapshot]:
        where, args = ("WHERE source = ?", [source]) if source is not None else ("", [])
        with self._session() as conn:
            rows = conn.execute(f"{_SELECT} {where} ORDER BY source, code, data_date", args).fetchall()
        for row in rows:
            yield self._snapshot(row)


# -- migrations ------------------------------------------------------------------------------
def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _to_v1(conn: sqlite3.Connection) -> None:
    """The cache file's own tables (present already in a file the cache made)."""
    for statement in _statements(schema.LEGACY_DDL):
        conn.execute(statement)


def _to_v2(conn: sqlite3.Connection) -> None:
    """The typed ``history`` table, filled from every JSON snapshot of version 1."""
    conn.execute(schema.table_ddl())
    conn.execute(schema.INDEX_DDL)
    copied = skipped = 0
    rows = conn.execute("SELECT source, code, data_date, fetched_at, record FROM snapshot")
    batch = []
    for source, code, data_date, fetched_at, text in rows:
        try:
            record = parse_record(json.loads(text))
            dt.date.fromisoformat(data_date)
        except (ValueError, LixingerError) as exc:
            skipped += 1
            log.warning("history: cache row %s %s %r not copied (%s); it stays in the snapshot table",
                        source, code, data_date, exc)
            continue
        batch.append((source, code, data_date, fetched_at, *[record.get(k) for k in VALUE_KEYS]))
        copied += 1
    conn.executemany(_INSERT, batch)
    log.info("history: %d cache snapshot(s) copied into the history table, %d not", copied, skipped)


MIGRATIONS = {1: _to_v1, 2: _to_v2}
assert max(MIGRATIONS) == schema.CURRENT_VERSION


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file to :data:`schema.CURRENT_VERSION`; each step one transaction. Returns the version."""
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(schema.VERSION_DDL)
            version = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
            if version > schema.CURRENT_VERSION:
                raise StoreError(
                    f"the history store was written by a newer xl_addin (schema {version}, this one knows "
                    f"{schema.CURRENT_VERSION}); upgrade xl_addin to use it"
                )
            if version == schema.CURRENT_VERSION:
                conn.execute("COMMIT")
                return version
            MIGRATIONS[version + 1](conn)
            conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version + 1, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
