"""The local SQLite cache: every distinct (code, data date) snapshot, kept.

The API only has the latest snapshot; the cache keeps each one we ever fetched, so
history builds up. Within the freshness window a code is served without a request.
WAL journal, a busy timeout and ``BEGIN IMMEDIATE`` writes let Excel, a cron job
and the CLI use one file at once. A corrupt file is moved aside and rebuilt.
Rows are keyed by the service they came from, so sandbox data never mixes with
real data. No token is ever stored.
A path that cannot hold a cache at all (a file where its folder should be, no
permission) is reported once, as a warning, and every fetch goes on without the cache.

One connection per cache, opened on first use and kept while it is used (a burst of
cold formulas in Excel's UDF server does not pay for opening the file again each time),
shared by every thread under a lock; closed after ``WATCH_IDLE`` seconds without use
(Windows cannot move or delete a file another process holds open), and reopened if the
file was replaced or removed underneath it. A fetch's rows go in with
one ``executemany`` in one transaction. ``synchronous=NORMAL`` in WAL mode: a commit
is in the WAL file (the operating system's cache) when it returns, so a process killed
right after a fetch loses nothing it answered; only a power cut could lose the last
commits, and never corrupts the file.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from .exceptions import CacheError, CacheUnusableError
from .records import parse_record

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshot (
    source     TEXT NOT NULL,
    code       TEXT NOT NULL,
    data_date  TEXT NOT NULL,
    fetched_at REAL NOT NULL,
    record     TEXT NOT NULL,
    PRIMARY KEY (source, code, data_date)
);
CREATE TABLE IF NOT EXISTS absent (
    source     TEXT NOT NULL,
    code       TEXT NOT NULL,
    fetched_at REAL NOT NULL,
    PRIMARY KEY (source, code)
);
CREATE INDEX IF NOT EXISTS snapshot_latest ON snapshot (source, code, fetched_at);
CREATE TABLE IF NOT EXISTS stamp (
    source     TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      REAL NOT NULL,
    PRIMARY KEY (source, name)
);
"""

ABSENT = "no data"  # marker for a code the service answered without a record (not a cell text)
BUSY_TIMEOUT_MS = 15000
_ENCODE = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode  # plain JSON records
#: seconds without a look at the stamp after which its connection is closed: on Windows an open
#: SQLite file cannot be moved or deleted by another process (no FILE_SHARE_DELETE), so an idle
#: UDF server must not hold it (a rebuild elsewhere, an uninstall). The kept connection for
#: reads and writes is closed after as long without use, for the same reason.
WATCH_IDLE = 5.0


class Cache:
    def __init__(self, path: Path | str, source: str):
        self.path = Path(path)
        self.source = source
        self._ready = False
        self._unusable: CacheUnusableError | None = None
        self._watch: sqlite3.Connection | None = None  # long-lived, for the "not before" stamp only
        self._watch_version = None
        self._watch_lock = threading.RLock()  # the stamp's connection: used by formulas, closed when idle
        self._watch_used = 0.0
        self._not_before = 0.0
        self._db: sqlite3.Connection | None = None  # the kept connection (see the module docstring)
        self._db_id: tuple[int, int] | None = None  # (device, inode) of the file it has open
        self._db_lock = threading.RLock()
        self._db_used = 0.0

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r}, source={self.source!r})"

    # -- connection ---------------------------------------------------------------------
    def _file_id(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _connect(self) -> sqlite3.Connection:
        """The kept connection; (re)opened when there is none or the file is not the one it has open."""
        self._db_used = time.monotonic()
        if self._db is not None:
            if self._db_id is not None and self._file_id() == self._db_id:
                return self._db
            self._close_db()  # removed or replaced (cache clear, moved aside by another process)
            self._ready = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)  # used by every thread, under self._db_lock
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if not self._ready:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode.lower() != "wal":
                    log.debug("cache journal mode is %s", mode)
                conn.executescript(SCHEMA)
                self._ready = True
            conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
        self._db, self._db_id = conn, self._file_id()
        threading.Thread(target=self._close_db_when_idle, args=(conn,), name="xl_addin-cache-idle",
                         daemon=True).start()
        return conn

    def _close_db_when_idle(self, conn) -> None:
        """Close the kept connection after WATCH_IDLE seconds without use (see WATCH_IDLE)."""
        while True:
            time.sleep(WATCH_IDLE)
            with self._db_lock:
                if self._db is not conn:
                    return  # closed (or replaced) meanwhile
                if time.monotonic() - self._db_used >= WATCH_IDLE:
                    self._close_db()
                    return

    def _close_db(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
        self._db, self._db_id = None, None

    def _rebuild(self, exc: Exception) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        log.warning("cache %s is unreadable (%s); moved to %s and rebuilt", self.path, exc, aside.name)
        self._close_db()  # our own long-lived handles first (Windows cannot move an open file)
        self._close_watch()
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(self.path) + suffix)
            if part.exists():
                try:
                    part.replace(Path(str(aside) + suffix))
                except OSError as err:  # e.g. Excel's UDF server holds it open (Windows)
                    raise CacheError(f"the cache {self.path} is unreadable and in use by another program "
                                     f"(Excel?): close it and try again ({err})") from None
        self._ready = False

    def _give_up(self, why: str) -> CacheUnusableError:
        """This path cannot hold a cache: say so once, then every use fails at once."""
        self._unusable = CacheUnusableError(
            f"the cache {self.path} cannot be used ({why}); going on without the cache "
            "(set XL_ADDIN_CACHE_DIR to a folder you can write)"
        )
        log.warning("%s", self._unusable)
        return self._unusable

    @contextmanager
    def _conn(self, write: bool = False):
        if self._unusable is not None:
            raise self._unusable
        with self._db_lock:
            for attempt in (1, 2):
                try:
                    conn = self._connect()
                    break
                except (FileExistsError, NotADirectoryError):
                    raise self._give_up("a file is where its folder should be") from None
                except OSError as exc:
                    raise self._give_up(exc.strerror or "cannot create its folder") from None
                except sqlite3.DatabaseError as exc:
                    if "unable to open" in str(exc).lower():  # a folder where the file should be, no permission
                        raise self._give_up(str(exc)) from None
                    if attempt == 2 or not _is_corruption(exc):
                        raise CacheError(f"cannot open the cache {self.path}: {exc}") from None
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
            except sqlite3.DatabaseError as exc:
                if _is_corruption(exc):
                    self._close_db()
                    self._rebuild(exc)
                    raise CacheError(f"the cache {self.path} was corrupt and has been rebuilt") from None
                try:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                except sqlite3.Error:
                    self._close_db()
                raise CacheError(f"cache {self.path}: {exc}") from None

    # -- reads --------------------------------------------------------------------------
    def latest(self, codes: list[str]) -> dict[str, tuple[object, float]]:
        """For each code, the newest thing we know: ``(record or ABSENT, fetched_at)``."""
        if not codes:
            return {}
        out: dict[str, tuple[object, float]] = {}
        with self._conn() as conn:
            for chunk in _chunks(codes, 500):
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"""SELECT code, record, fetched_at FROM snapshot s
                        WHERE source = ? AND code IN ({marks})
                          AND fetched_at = (SELECT MAX(fetched_at) FROM snapshot t
                                            WHERE t.source = s.source AND t.code = s.code)""",
                    [self.source, *chunk],
                ).fetchall()
                for code, record, fetched_at in rows:
                    try:
                        out[code] = (parse_record(json.loads(record)), fetched_at)
                    except (ValueError, Exception) as exc:  # a bad row is a miss, not a failure
                        log.warning("ignoring unreadable cache row for %s: %s", code, exc)
                rows = conn.execute(
                    f"SELECT code, fetched_at FROM absent WHERE source = ? AND code IN ({marks})",
                    [self.source, *chunk],
                ).fetchall()
                for code, fetched_at in rows:
                    if code not in out or out[code][1] < fetched_at:
                        out[code] = (ABSENT, fetched_at)
        return out

    def history(self, code: str) -> list[dict]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT record FROM snapshot WHERE source = ? AND code = ? ORDER BY data_date",
                [self.source, code],
            ).fetchall()
        return [parse_record(json.loads(r[0])) for r in rows]

    def info(self) -> dict:
        exists = self.path.exists()
        info = {"path": str(self.path), "source": self.source, "exists": exists}
        if not exists:
            return {**info, "snapshots": 0, "codes": 0, "newest_data_date": None, "size_bytes": 0}
        with self._conn() as conn:
            snapshots, codes, newest, last_fetch = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT code), MAX(data_date), MAX(fetched_at) FROM snapshot WHERE source = ?",
                [self.source],
            ).fetchone()
            sources = [r[0] for r in conn.execute("SELECT DISTINCT source FROM snapshot")]
        size = sum(Path(str(self.path) + s).stat().st_size for s in ("", "-wal") if Path(str(self.path) + s).exists())
        return {
            **info,
            "snapshots": snapshots,
            "codes": codes,
            "newest_data_date": newest,
            "last_fetch": last_fetch,
            "sources": sources,
            "size_bytes": size,
        }

    def by_source(self) -> list[dict]:
        """One row per service the cache holds data from (the real API, a sandbox…)."""
        if not self.path.exists():
            return []
        with self._conn() as conn:
            rows = conn.execute(
                """SELECT source, COUNT(*), COUNT(DISTINCT code), MAX(data_date), MAX(fetched_at)
                   FROM snapshot GROUP BY source ORDER BY MAX(fetched_at) DESC"""
            ).fetchall()
        return [{"source": s, "snapshots": n, "codes": c, "newest_data_date": d, "last_fetch": f}
                for s, n, c, d, f in rows]

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in (Path(str(self.path) + s) for s in ("", "-wal")) if p.exists())

    def compact(self) -> None:
        """Give the free pages back to the file system (VACUUM, then empty the WAL)."""
        if not self.path.exists():
            return
        with self._conn() as conn:
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- writes -------------------------------------------------------------------------
    def store(self, raw_records: dict[str, dict], records: dict[str, dict], absent: list[str], fetched_at: float | None = None) -> None:
        """Keep each record as its (code, data date) snapshot; remember codes with no data."""
        if not raw_records and not absent:
            return
        now = time.time() if fetched_at is None else fetched_at
        rows = []
        for code, raw in raw_records.items():
            date = records[code].get("last_data_date")
            text = getattr(raw, "json", None) or _ENCODE(raw)  # a KeptRecord's text was made as it arrived
            rows.append((self.source, code, date.isoformat() if date else "", now, text))
        with self._conn(write=True) as conn:
            conn.executemany(
                """INSERT INTO snapshot (source, code, data_date, fetched_at, record) VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (source, code, data_date) DO UPDATE SET fetched_at = excluded.fetched_at, record = excluded.record""",
                rows,
            )
            conn.executemany(
                "INSERT OR REPLACE INTO absent (source, code, fetched_at) VALUES (?, ?, ?)",
                [(self.source, code, now) for code in absent],
            )
            if raw_records:
                marks = ",".join("?" * len(raw_records))
                conn.execute(f"DELETE FROM absent WHERE source = ? AND code IN ({marks})", [self.source, *raw_records])

    # -- the "not before" stamp: a Refresh in any process -------------------------------
    def set_not_before(self, when: float) -> None:
        """Nothing fetched before *when* is fresh, for every process that uses this file
        (the Refresh button runs in its own process; the formulas live in the UDF server)."""
        with self._conn(write=True) as conn:
            conn.execute(
                """INSERT INTO stamp (source, name, value) VALUES (?, 'not_before', ?)
                   ON CONFLICT (source, name) DO UPDATE SET value = MAX(value, excluded.value)""",
                [self.source, when],
            )
        self._not_before = max(self._not_before, when)

    def not_before(self) -> float:
        """The newest stamp, cheaply: a connection kept open through a burst of formulas asks
        SQLite whether another connection committed since the last look (``PRAGMA data_version``,
        microseconds); only then is the stamp read again. The connection is closed after
        :data:`WATCH_IDLE` seconds without a look. Never raises: on trouble, the last value seen."""
        with self._watch_lock:
            try:
                if self._watch is None:
                    if self._unusable is not None or not self.path.exists():
                        return self._not_before
                    with self._db_lock:
                        self._connect()  # the schema, once (the kept connection)
                    self._watch = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                                  check_same_thread=False)  # closed by the idle timer's thread
                    self._watch_version = None
                    threading.Thread(target=self._close_when_idle, args=(self._watch,), name="xl_addin-cache-idle",
                                     daemon=True).start()
                self._watch_used = time.monotonic()
                version = self._watch.execute("PRAGMA data_version").fetchone()[0]
                if version != self._watch_version:
                    row = self._watch.execute(
                        "SELECT value FROM stamp WHERE source = ? AND name = 'not_before'", [self.source]
                    ).fetchone()
                    self._watch_version = version
                    if row:
                        self._not_before = max(self._not_before, row[0])
            except sqlite3.Error as exc:
                log.debug("cannot read the refresh stamp: %s", exc)
                self._close_watch()
            return self._not_before

    def _close_when_idle(self, watch) -> None:
        while True:
            time.sleep(WATCH_IDLE)
            with self._watch_lock:
                if self._watch is not watch:
                    return  # closed (or replaced) meanwhile
                if time.monotonic() - self._watch_used >= WATCH_IDLE:
                    self._close_watch()
                    return

    def _close_watch(self) -> None:
        with self._watch_lock:
            if self._watch is not None:
                try:
                    self._watch.close()
                except sqlite3.Error:
                    pass
            self._watch, self._watch_version = None, None

    def close(self) -> None:
        with self._db_lock:
            self._close_db()
        self._close_watch()

    def clear(self) -> int:
        """Delete everything; returns the number of snapshots removed."""
        if not self.path.exists():
            return 0
        with self._conn(write=True) as conn:
            n = conn.execute("SELECT COUNT(*) FROM snapshot").fetchone()[0]
            conn.execute("DELETE FROM snapshot")
            conn.execute("DELETE FROM absent")
        return n


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _is_corruption(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("not a database", "malformed", "corrupt", "file is encrypted"))
