"""The local cache: the history store's SQLite file, read as a cache.

The API only has the latest snapshot; every one fetched is kept, one typed row per
(source, code, data date) in the history store (:mod:`xl_addin.store.sqlite`), and the
cache is that same table: within the freshness window a code is served from its newest
row without a request. One file, one kept connection per process, and one transaction
per fetch that writes its rows once. Rows are keyed by the service they came from, so
sandbox data never mixes with real data. No token is ever stored.

What the cache adds to the store: the newest entry per code as the service wants it
(the record, or "no data", and when it was fetched), the Refresh button's "not before"
stamp with its cheap cross-process check, and the file's repairs: a file that is not a
database is moved aside (with the history in it, kept for recovery) and rebuilt; a path
that cannot hold a cache at all (a file where its folder should be, no permission) is
reported once, as a warning, and every fetch goes on without the cache.
A code whose service went back to an older data date is served its newest data date
(the history store's "latest"): not fresh, so the next fetch asks the service again.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from .exceptions import LixingerError
from .store.sqlite import SQLiteStore

log = logging.getLogger(__name__)

ABSENT = "no data"  # marker for a code the service answered without a record (not a cell text)
#: seconds without use (a fetch, a look at the stamp) after which the store's one connection is
#: closed: on Windows an open SQLite file cannot be moved or deleted by another process (no
#: FILE_SHARE_DELETE), so an idle UDF server must not hold it (a rebuild elsewhere, an uninstall).
WATCH_IDLE = 5.0


class Cache:
    def __init__(self, path: Path | str, source: str):
        self.path = Path(path)
        self.source = source
        #: the history store on this file: the one handle for reads and writes (the service's
        #: history queries use it too)
        self.store = SQLiteStore(self.path, as_cache=True, idle=WATCH_IDLE)
        self._watch_version = None  # the store's data_version when the stamp was last read
        self._watch_lock = threading.RLock()
        self._not_before = 0.0
        self._maker: threading.Thread | None = None  # making the file (see _make_file_meanwhile)

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r}, source={self.source!r})"

    # -- reads --------------------------------------------------------------------------
    def latest(self, codes: list[str]) -> dict[str, tuple[object, float]]:
        """For each code, the newest thing we know: ``(record or ABSENT, fetched_at)``."""
        if not codes:
            return {}
        if not self.store.is_open and not self.path.exists():
            self._make_file_meanwhile()
            return {}  # nothing kept yet
        found, marks = self.store.newest(codes, source=self.source)
        for code, fetched_at in marks.items():
            if code not in found or found[code][1] < fetched_at:
                found[code] = (ABSENT, fetched_at)
        return found

    def _make_file_meanwhile(self) -> None:
        """Make the file in a thread of its own while the requests are on the wire (creating a
        SQLite file in WAL mode waits for the disk, tens of milliseconds on some); the fetch's
        write waits for it under the store's lock, and reports any trouble itself."""
        def make():
            try:
                self.store.open()
            except Exception as exc:  # the write that follows says so, once, as a warning
                log.debug("cannot make the cache file yet: %s", exc)

        self._maker = threading.Thread(target=make, name="xl_addin-cache-make", daemon=True)
        self._maker.start()

    def history(self, code: str) -> list[dict]:
        return self.store.records_of(code, source=self.source)

    def info(self) -> dict:
        exists = self.path.exists()
        info = {"path": str(self.path), "source": self.source, "exists": exists}
        if not exists:
            return {**info, "snapshots": 0, "codes": 0, "newest_data_date": None, "size_bytes": 0}
        mine = self.store.info(self.source)
        return {
            **info,
            "snapshots": mine.snapshots,
            "codes": mine.codes,
            "newest_data_date": mine.last_data_date.isoformat() if mine.last_data_date else None,
            "last_fetch": mine.last_fetch,
            "sources": list(self.store.info().sources),
            "size_bytes": self.size_bytes(),
        }

    def by_source(self) -> list[dict]:
        """One row per service the cache holds data from (the real API, a sandbox…)."""
        if not self.path.exists():
            return []
        return [{"source": s, "snapshots": n, "codes": c, "newest_data_date": d, "last_fetch": f}
                for s, n, c, d, f in self.store.by_source()]

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in (Path(str(self.path) + s) for s in ("", "-wal")) if p.exists())

    def compact(self) -> None:
        """Give the free pages back to the file system (VACUUM, then empty the WAL)."""
        if self.path.exists():
            self.store.compact()

    # -- writes -------------------------------------------------------------------------
    def store_fetch(self, records: dict[str, dict], absent: list[str], fetched_at: float | None = None) -> None:
        """Keep what one fetch answered, in one transaction: each typed record (as the client
        parsed it: not checked again) as its (code, data date) snapshot, codes with no data marked."""
        if not records and not absent:
            return
        now = time.time() if fetched_at is None else fetched_at
        self.store.keep(records.values(), absent, now, source=self.source)

    # -- the "not before" stamp: a Refresh in any process -------------------------------
    def set_not_before(self, when: float) -> None:
        """Nothing fetched before *when* is fresh, for every process that uses this file
        (the Refresh button runs in its own process; the formulas live in the UDF server)."""
        self.store.set_not_before(when, source=self.source)
        self._not_before = max(self._not_before, when)

    def mark_failed(self, when: float) -> None:
        """The service failed a fetch at *when* (values were served stale, or an error shown):
        the Refresh button, in another process, reads it after Excel recalculated."""
        self.store.set_stamp("failed", when, source=self.source)

    def failed_at(self) -> float | None:
        """When the service last failed a fetch, in any process using this file (None: never)."""
        return self.store.stamp("failed", source=self.source)

    def not_before(self) -> float:
        """The newest stamp, cheaply: the store's kept connection, open through a burst of
        formulas, asks SQLite whether another connection committed since the last look
        (``PRAGMA data_version``, microseconds); only then is the stamp read again. The
        connection is closed after :data:`WATCH_IDLE` seconds without use. Never raises: on
        trouble, the last value seen."""
        with self._watch_lock:
            try:
                if not self.store.is_open and (self.store.unusable or not self.path.exists()):
                    return self._not_before
                version = self.store.data_version()
                if version != self._watch_version:
                    value = self.store.stamp("not_before", source=self.source)
                    self._watch_version = version
                    if value is not None:
                        self._not_before = max(self._not_before, value)
            except LixingerError as exc:
                log.debug("cannot read the refresh stamp: %s", exc)
                self._watch_version = None
            return self._not_before

    def close(self) -> None:
        maker, self._maker = self._maker, None
        if maker is not None:
            maker.join()  # not a file opened after the close
        self.store.close()

    def clear(self) -> int:
        """Delete every snapshot (the history too: it is the cache) and every "no data" mark, of
        every service; returns the number of snapshots removed."""
        if not self.path.exists():
            return 0
        return self.store.clear()
