"""The local store: one SQLite file that is both the cache and the history.

Every snapshot fetched is one typed row of ``history`` (a column per field), keyed by
(source, code, data date); the service's cache reads the newest row per code from the
same table, so a fetch writes its rows once, in one transaction, and nothing is kept
twice. Opening a file made by an older xl_addin migrates it in place (see
:mod:`.schema`; the JSON ``snapshot`` table of the old cache is moved into ``history``
and retired); nothing in it is lost.

One connection per store, opened on first use and kept while it is used (a burst of
cold formulas in Excel's UDF server does not pay for opening the file each time),
shared by every thread under a lock; closed after ``idle`` seconds without use
(Windows cannot move or delete a file another process holds open) and reopened if
the file was replaced or removed underneath it. WAL, a busy timeout and
``BEGIN IMMEDIATE`` writes let Excel, a scheduled snapshot and the CLI use the file
at once; a failed write leaves the file as it was. ``synchronous=NORMAL`` in WAL:
a commit is in the WAL file (the operating system's cache) when it returns, so a
process killed right after a fetch loses nothing it answered; only a power cut could
lose the last commits, and never corrupts the file.

Opened as the cache (``as_cache=True``, what the service does), a file that is not a
database is moved aside, history and all (kept under ``.corrupt-<time>`` for whatever
can be recovered from it), and rebuilt, so formulas go on; and a path that cannot hold
a file at all is reported once, after which every use fails at once (the service goes
on without the cache). Opened as a plain store (the CLI's ``history`` and ``store``
commands), an unreadable file is never moved: it says so and stops.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from ..exceptions import LixingerError, StoreError, StoreUnusableError
from ..fields import KEYS, Field
from ..records import parse_record
from . import schema
from .base import VALUE_KEYS, HistoryStore, PutResult, Snapshot, StoreInfo, as_codes, newest_of, value_fields

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 15000
#: seconds without use after which the kept connection is closed (see the module docstring)
WATCH_IDLE = 5.0
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
#: a fetch's rows: new keys inserted, a newer fetch of a kept key replaces it (and is counted)
_UPSERT = (
    f"{_INSERT} ON CONFLICT (source, code, data_date) DO UPDATE SET fetched_at = excluded.fetched_at, "
    f"replaced = replaced + 1, {', '.join(f'{k} = excluded.{k}' for k in VALUE_KEYS)} "
    "WHERE excluded.fetched_at > history.fetched_at"
)
#: a record's keys in records.parse_record's order: the code, the data date, then the values
_RECORD_KEYS = ("stockCode", "last_data_date", *VALUE_KEYS)
assert set(_RECORD_KEYS) == set(KEYS)


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _is_corruption(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("not a database", "malformed", "corrupt", "file is encrypted"))


class SQLiteStore(HistoryStore):
    """History in a SQLite file (created, or migrated from an older file, on first use)."""

    backend = "sqlite"

    def __init__(self, path: Path | str, *, as_cache: bool = False, idle: float | None = None):
        self.path = Path(path)
        self.as_cache = as_cache  # rebuild a corrupt file; an unusable path is said once
        self.idle = WATCH_IDLE if idle is None else idle
        self._conn: sqlite3.Connection | None = None
        self._conn_id: tuple[int, int] | None = None  # (device, inode) of the file it has open
        self._used = 0.0
        self._opened = 0  # connections opened so far (a change mark must change on each)
        self._lock = threading.RLock()
        self._dates: dict[str, dt.date] = {}
        self._unusable: StoreUnusableError | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- connection and migrations ---------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        """The kept connection; (re)opened when there is none or the file is not the one it has open."""
        self._used = time.monotonic()
        if self._conn is not None:
            if self._conn_id is not None and _file_id(self.path) == self._conn_id:
                return self._conn
            self._drop()  # removed or replaced (moved aside by another process, deleted by hand)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)  # used by every thread, under self._lock
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            migrate(conn)
        except sqlite3.OperationalError as exc:
            conn.close()
            text = str(exc).lower()
            if not ("readonly" in text or "unable to open" in text) or not self.path.is_file():
                raise
            conn = self._read_only(exc)
        except BaseException:
            conn.close()
            raise
        self._conn, self._conn_id = conn, _file_id(self.path)
        self._opened += 1
        if self.idle:
            threading.Thread(target=self._close_when_idle, args=(conn,), name="xl_addin-store-idle",
                             daemon=True).start()
        return conn

    def _read_only(self, exc: Exception) -> sqlite3.Connection:
        """A file that can be read but not written, in a folder where SQLite cannot make its WAL
        index (a read-only share, a colleague's copy): read as it is, as an immutable file (what it
        holds is served; every write fails and says so). One from an older xl_addin cannot be
        migrated: it says so."""
        conn = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro&immutable=1", uri=True,
                               isolation_level=None, check_same_thread=False)
        try:
            version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        except sqlite3.Error:
            conn.close()
            raise exc from None  # not readable either: what SQLite said first
        if version != schema.SQLITE_VERSION:
            conn.close()
            raise sqlite3.OperationalError(f"{exc} (it cannot be written, and it needs migrating to this "
                                           "xl_addin's layout)")
        log.info("history store %s: read-only (neither it nor its folder can be written)", self.path)
        return conn

    def _close_when_idle(self, conn) -> None:
        delay = self.idle
        while True:
            time.sleep(delay)
            with self._lock:
                if self._conn is not conn:
                    return  # closed (or replaced) meanwhile
                delay = self.idle - (time.monotonic() - self._used)  # until idle seconds after the last use
                if delay <= 0:
                    self._drop()
                    return

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
        self._conn, self._conn_id = None, None

    def _give_up(self, why: str) -> StoreError:
        if not self.as_cache:
            return StoreError(f"history store {self.path}: {why}")
        self._unusable = StoreUnusableError(
            f"the cache {self.path} cannot be used ({why}); going on without the cache "
            "(set XL_ADDIN_CACHE_DIR to a folder you can write)"
        )
        log.warning("%s", self._unusable)
        return self._unusable

    def _rebuild(self, exc: Exception) -> None:
        """Move a file that is not a database aside (history and all) and start a new one."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        log.warning("cache %s is unreadable (%s); moved to %s and rebuilt", self.path, exc, aside.name)
        self._drop()  # our own handle first (Windows cannot move an open file)
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(self.path) + suffix)
            if part.exists():
                try:
                    part.replace(Path(str(aside) + suffix))
                except OSError as err:  # e.g. Excel's UDF server holds it open (Windows)
                    raise StoreError(f"the cache {self.path} is unreadable and in use by another program "
                                     f"(Excel?): close it and try again ({err})") from None

    @contextmanager
    def _session(self, write: bool = False):
        """The kept connection, under the lock; with ``write`` one IMMEDIATE transaction."""
        if self._unusable is not None:
            raise self._unusable
        with self._lock:
            for attempt in (1, 2):
                try:
                    conn = self._connection()
                    break
                except (FileExistsError, NotADirectoryError):
                    raise self._give_up("a file is where its folder should be") from None
                except OSError as exc:
                    raise self._give_up(exc.strerror or "cannot create its folder") from None
                except sqlite3.Error as exc:
                    if "unable to open" in str(exc).lower():  # a folder where the file should be, no permission
                        raise self._give_up(str(exc)) from None
                    if attempt == 2 or not self.as_cache or not _is_corruption(exc):
                        raise StoreError(f"history store {self.path}: {exc}") from None
                    self._rebuild(exc)
            try:
                if write:
                    conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                if write:
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self.as_cache and _is_corruption(exc):
                    self._rebuild(exc)
                    raise StoreError(f"the cache {self.path} was corrupt and has been rebuilt") from None
                try:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                except sqlite3.Error:
                    self._drop()
                if "readonly" in str(exc).lower():
                    raise StoreError(f"history store {self.path} is read-only (the file or its folder "
                                     "cannot be written)") from None
                raise StoreError(f"history store {self.path}: {exc}") from None

    def open(self) -> None:
        """Open the file now (created or migrated on the way), as the first use would."""
        with self._session():
            pass

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def stamp(self, name: str, *, source: str) -> float | None:
        with self._session() as conn:
            row = conn.execute("SELECT value FROM stamp WHERE source = ? AND name = ?", (source, name)).fetchone()
        return row[0] if row else None

    @property
    def unusable(self) -> bool:
        """True once the cache's path was found unable to hold a file (said once, in a warning)."""
        return self._unusable is not None

    def close(self) -> None:
        with self._lock:
            self._drop()

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

    def keep(self, records: Iterable[Mapping], absent: Iterable[str], fetched_at: float, *, source: str) -> None:
        """What one fetch answered, in one transaction: a row per record, a mark per code answered
        without one (a code answered with a record loses its mark). *records* are typed records as
        ``records.parse_record`` made them, of codes that were asked for: checked already, so not
        checked again (``put`` checks what it is given). A record without a data date has no row."""
        now = float(fetched_at)
        rows, answered, days = [], [], {}
        for record in records:
            code = record["stockCode"]
            answered.append(code)
            date = record.get("last_data_date")
            if date is None:
                continue
            day = days.get(date)
            if day is None:
                day = days[date] = date.isoformat()
            rows.append((source, code, day, now, *map(record.get, VALUE_KEYS)))
        marks = [(source, code, now) for code in as_codes(absent)]
        if not rows and not marks:
            return
        with self._session(write=True) as conn:
            conn.executemany(_UPSERT, rows)
            if marks:
                conn.executemany(
                    "INSERT INTO absent (source, code, fetched_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (source, code) DO UPDATE SET fetched_at = MAX(fetched_at, excluded.fetched_at)",
                    marks,
                )
            marked = marks or conn.execute("SELECT 1 FROM absent WHERE source = ? LIMIT 1", (source,)).fetchone()
            for i in range(0, len(answered) if marked else 0, _CHUNK):
                chunk = answered[i : i + _CHUNK]
                conn.execute(f"DELETE FROM absent WHERE source = ? AND fetched_at <= ? AND code IN ({','.join('?' * len(chunk))})",
                             [source, now, *chunk])

    def set_not_before(self, when: float, *, source: str) -> None:
        """The Refresh stamp of *source*: nothing fetched before *when* is fresh (it only rises)."""
        self.set_stamp("not_before", when, source=source)

    def set_stamp(self, name: str, when: float, *, source: str) -> None:
        """Stamp *name* of *source* raised to *when* (a stamp only rises): what every process
        using the file sees (the Refresh button's, the service's last failure)."""
        with self._session(write=True) as conn:
            conn.execute(
                """INSERT INTO stamp (source, name, value) VALUES (?, ?, ?)
                   ON CONFLICT (source, name) DO UPDATE SET value = MAX(value, excluded.value)""",
                [source, name, when],
            )

    def clear(self) -> int:
        """Delete every snapshot and mark (of every source); returns the number of snapshots removed."""
        with self._session(write=True) as conn:
            n = conn.execute("SELECT COUNT(*) FROM history").fetchone()[0]
            conn.execute("DELETE FROM history")
            conn.execute("DELETE FROM absent")
        return n

    def compact(self) -> None:
        """Give the free pages back to the file system (VACUUM, then empty the WAL)."""
        with self._session() as conn:
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

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

    def newest(self, codes: Iterable[str], *, source: str) -> tuple[dict[str, tuple[dict, float]], dict[str, float]]:
        """The cache's read, one statement per chunk of codes: ``({code: (record, fetched_at)}, {code:
        fetched_at of its "no data" mark})``, the record (shaped like ``records.parse_record``'s) of
        the code's newest data date. Never the whole history of a code: one primary-key seek each."""
        codes = list(codes)
        found: dict[str, tuple[dict, float]] = {}
        marks: dict[str, float] = {}
        if not codes:
            return found, marks
        keys, date = _RECORD_KEYS, self._date
        with self._session() as conn:
            for i in range(0, len(codes), _CHUNK):
                chunk = codes[i : i + _CHUNK]
                values = ",".join(["(?)"] * len(chunk))
                rows = conn.execute(
                    f"WITH wanted(code) AS (VALUES {values}) "
                    f"SELECT h.code, h.data_date, {', '.join('h.' + k for k in VALUE_KEYS)}, h.fetched_at "
                    "FROM wanted JOIN history h ON h.source = ? AND h.code = wanted.code AND h.data_date = "
                    "(SELECT MAX(t.data_date) FROM history t WHERE t.source = ? AND t.code = wanted.code)",
                    [*chunk, source, source],
                ).fetchall()
                for row in rows:
                    record = dict(zip(keys, row))
                    record["last_data_date"] = date(row[1])
                    found[row[0]] = (record, row[-1])
                marks.update(conn.execute(
                    f"SELECT code, fetched_at FROM absent WHERE source = ? AND code IN ({','.join('?' * len(chunk))})",
                    [source, *chunk],
                ).fetchall())
        return found, marks

    def records_of(self, code: str, *, source: str) -> list[dict]:
        """Every kept record of one code, oldest data date first."""
        with self._session() as conn:
            rows = conn.execute(f"{_SELECT} WHERE source = ? AND code = ? ORDER BY data_date", (source, code)).fetchall()
        return [self._snapshot(row).record() for row in rows]

    def by_source(self) -> list[tuple]:
        """``(source, snapshots, codes, newest data date, last fetch)`` per source, the latest fetched first."""
        with self._session() as conn:
            return conn.execute(
                """SELECT source, COUNT(*), COUNT(DISTINCT code), MAX(data_date), MAX(fetched_at)
                   FROM history GROUP BY source ORDER BY MAX(fetched_at) DESC"""
            ).fetchall()

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
        every call and serve a kept answer only while it is the same (see :mod:`xl_addin.answer_cache`),
        and the cache's Refresh stamp is read again only when it changed. Microseconds: the kept
        connection as it is (opened if there is none), not the file checked on the way."""
        with self._lock:
            conn = self._conn
            if conn is None:
                self.open()
                conn = self._conn
            self._used = time.monotonic()
            try:
                return self._opened, conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes
            except sqlite3.Error as exc:
                self._drop()
                raise StoreError(f"history store {self.path}: {exc}") from None

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


def _to_v3(conn: sqlite3.Connection) -> None:
    """The history table becomes the cache: every JSON snapshot the old cache wrote (since
    version 2 it wrote each fetch twice) is moved into ``history`` — a newer fetch of a kept
    key replaces it, as a fetch would — and the JSON table is retired. A row that cannot be
    typed (no data date, not a record) is kept, in ``snapshot_retired``, and said so."""
    conn.execute(schema.STAMP_DDL)
    conn.execute(schema.LEGACY_ABSENT_DDL)
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'snapshot'").fetchone() is None:
        return
    kept = 0
    # only the rows the history lacks or holds an older fetch of are read: since version 2 the
    # cache wrote each fetch to both tables, so most of a file's rows are there already
    for source, code, data_date, fetched_at, text in conn.execute(
            "SELECT s.source, s.code, s.data_date, s.fetched_at, s.record FROM snapshot s LEFT JOIN history h "
            "ON h.source = s.source AND h.code = s.code AND h.data_date = s.data_date "
            "WHERE h.fetched_at IS NULL OR h.fetched_at < s.fetched_at").fetchall():
        try:
            record = parse_record(json.loads(text))
            dt.date.fromisoformat(data_date)
            if not source or record["stockCode"] != code:
                raise ValueError("not this row's record")
        except (ValueError, TypeError, LixingerError) as exc:
            kept += 1
            log.warning("cache row %s %s %r cannot be typed (%s); kept in the table snapshot_retired",
                        source, code, data_date, exc)
            continue
        conn.execute(_UPSERT, (source, code, data_date, fetched_at, *[record.get(k) for k in VALUE_KEYS]))
    total = conn.execute("SELECT COUNT(*) FROM snapshot").fetchone()[0]
    conn.execute("DELETE FROM snapshot WHERE EXISTS (SELECT 1 FROM history h WHERE h.source = snapshot.source "
                 "AND h.code = snapshot.code AND h.data_date = snapshot.data_date AND h.fetched_at >= snapshot.fetched_at)")
    moved = total - kept
    conn.execute("DROP INDEX IF EXISTS snapshot_latest")
    if kept:
        conn.execute("DROP TABLE IF EXISTS snapshot_retired")
        conn.execute("ALTER TABLE snapshot RENAME TO snapshot_retired")
    else:
        conn.execute("DROP TABLE snapshot")
    log.info("cache: %d JSON snapshot(s) moved into the history table, %d kept aside", moved, kept)


MIGRATIONS = {1: _to_v1, 2: _to_v2, 3: _to_v3}
assert max(MIGRATIONS) == schema.SQLITE_VERSION


def _is_new(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name != 'schema_version'").fetchone()[0] == 0


def _create(conn: sqlite3.Connection) -> None:
    """The schema of :data:`schema.SQLITE_VERSION`, what the migrations make of a new file."""
    conn.execute(schema.table_ddl())
    conn.execute(schema.INDEX_DDL)
    conn.execute(schema.LEGACY_ABSENT_DDL)
    conn.execute(schema.STAMP_DDL)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file to :data:`schema.SQLITE_VERSION`; each step one transaction. Returns the version."""
    try:  # the usual case, without taking the write lock: the file is up to date
        version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        if version == schema.SQLITE_VERSION:
            return version
    except sqlite3.OperationalError:  # no such table: a new file, or one from before versions
        pass
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(schema.VERSION_DDL)
            version = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
            if version > schema.SQLITE_VERSION:
                raise StoreError(
                    f"the history store was written by a newer xl_addin (schema {version}, this one knows "
                    f"{schema.SQLITE_VERSION}); upgrade xl_addin to use it"
                )
            if version == schema.SQLITE_VERSION:
                conn.execute("COMMIT")
                return version
            if version == 0 and _is_new(conn):  # a new file: today's tables at once, no steps to take
                _create(conn)
                conn.executemany("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                                 [(v, time.time()) for v in sorted(MIGRATIONS)])
                conn.execute("COMMIT")
                return schema.SQLITE_VERSION
            MIGRATIONS[version + 1](conn)
            conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version + 1, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
