"""Read-through to a desk's shared history (``store = "postgresql://..."``), for the data service.

Why a layer of its own: the service asks its memory and the local cache file first; when
they have nothing fresh, a desk store may have today's snapshot already (a colleague's
fetch, the morning's scheduled ``lx-addin snapshot``), so it is asked next, before
Lixinger. What it gives is kept in the local file too (the offline copy), and what the
service fetches from Lixinger is written to the desk for everyone.

The desk is a network database and may fail in many ways (down at start, gone mid-refresh,
a wrong password, a read-only login asked to write, a schema from a newer xl_addin, no
psycopg). None of them stops a formula: each is caught here, kept as one line
(:attr:`DeskLayer.problem`, shown by ``=LX_MMAH_INFO()``, the CLI and ``store status``),
and the desk is then left alone for :data:`DESK_PAUSE` seconds, so that a sheet of
formulas waits at most one short connect timeout, not one per cell. Everything goes on
from the local copy; rows fetched meanwhile are kept locally at once and written to the
desk when it answers again (in this process).

History queries go through :class:`DeskHistory`: the desk when it answers, else the
local copy; moving files in and out (``history import/export``) always means the desk
and fails with its one line when it cannot be reached.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Iterable, Iterator

from .exceptions import LixingerError, StoreError
from .store.base import HistoryStore, PutResult, Snapshot, StoreInfo

#: seconds the desk is left alone after it failed (the service's outage pause, for the database)
DESK_PAUSE = 30.0
#: seconds a connection attempt may take (libpq's smallest useful value is 2)
DESK_CONNECT_TIMEOUT = 2
#: seconds one use of the desk's open connection may wait for an answer (a server hung mid-session
#: would hold a formula for ever); a write waits for another writer a little less, so it says "busy"
DESK_ANSWER_TIMEOUT = 10.0
DESK_LOCK_TIMEOUT = 8.0
#: fetched rows kept for the desk while it is away (beyond this the oldest go: the local copy has them)
MAX_PENDING = 50_000
LOCAL_COPY = "the local copy"
#: what happens instead, said after the fault's own line
READING = f"working from {LOCAL_COPY}"
HISTORY = f"read from {LOCAL_COPY}"
WRITING = f"kept in {LOCAL_COPY} only for now"


def open_desk(settings) -> "DeskLayer | None":
    """The desk layer when the ``store`` setting names a desk database, else None."""
    from .store.location import is_desk_url

    location = getattr(settings, "store", None)
    return DeskLayer(location, settings.base_url) if is_desk_url(location) else None


class DeskLayer:
    """One desk database, as the data service uses it: read, write, and remember what went wrong."""

    def __init__(self, location: str, source: str, pause: float = DESK_PAUSE,
                 connect_timeout: float = DESK_CONNECT_TIMEOUT, answer_timeout: float = DESK_ANSWER_TIMEOUT):
        from .store.location import parse_desk_url

        self.url = parse_desk_url(location)
        self.source = source
        self.pause = pause
        self._connect_timeout = connect_timeout
        self._answer_timeout = answer_timeout
        self._store = None
        self._lock = threading.RLock()
        self._paused_until = 0.0  # time.monotonic() until which the desk is not asked
        self.problem: StoreError | None = None  # the last fault, as one line; None once the desk answers again
        self.read_only: StoreError | None = None  # this login may only read: nothing is written to the desk
        self.notes: list[str] = []  # each distinct fault line of this session, in order (the CLI prints them)
        self._pending: dict[tuple, Snapshot] = {}
        self._pending_absent: dict[str, float] = {}
        self.served = 0  # codes answered from the desk
        self.written = 0  # snapshots written to the desk
        self.attempts = 0  # connections tried
        self._jobs: queue.Queue | None = None  # the local copy's writes of desk rows, off the formula's path

    def __repr__(self) -> str:
        return f"DeskLayer({self.url.display!r})"

    # -- the connection and its faults -------------------------------------------------------
    def store(self):
        """The desk's :class:`~xl_addin.store.postgres.PostgresStore` (no connection made yet)."""
        with self._lock:
            if self._store is None:
                from .store.postgres import PostgresStore

                self._store = PostgresStore(self.url, connect_timeout=self._connect_timeout,
                                            answer_timeout=self._answer_timeout,
                                            lock_timeout=min(DESK_LOCK_TIMEOUT, self._answer_timeout * 0.8))
            return self._store

    @property
    def connect_timeout(self) -> float:
        """Seconds a connection attempt may take."""
        return self._connect_timeout

    def available(self) -> bool:
        """False during the pause after a fault: the desk is not asked then."""
        return time.monotonic() >= self._paused_until

    def call(self, what: str, fn, *args, **kwargs):
        """``fn(store, ...)``; a fault is remembered (with *what* happens instead) and raised as one line.
        A kept connection found dead (the server restarted while Excel was idle) is retried once, at once."""
        with self._lock:
            store = self.store()
            for retry in (True, False):
                was_open = store.connected
                if not was_open:
                    self.attempts += 1
                try:
                    result = fn(store, *args, **kwargs)
                    break
                except LixingerError as exc:
                    if retry and was_open and getattr(exc, "kind", None) == "unreachable":
                        store.close()
                        continue
                    raise self._fault(exc, what) from None
            if self.problem is not None and getattr(self.problem, "kind", "") != "read-only":
                self.problem = None  # it answers again
            return result

    def _fault(self, exc: LixingerError, what: str) -> StoreError:
        kind = getattr(exc, "kind", None) or ("read-only" if "may only read" in str(exc) else "other")
        error = StoreError(f"{exc}; {what}")
        error.kind = kind
        if kind == "read-only":
            self.read_only = error
        else:
            self._paused_until = time.monotonic() + self.pause
            if self._store is not None:
                self._store.close()
        self.problem = error
        if str(error) not in self.notes:
            self.notes.append(str(error))
        return error

    # -- reading through ------------------------------------------------------------------------
    def read(self, codes: list[str]) -> dict[str, tuple[object, float]]:
        """The desk's newest entry per code: ``(record or ABSENT, fetched_at)``, as the cache
        gives them; {} while the desk cannot be asked. Never raises: a fault is kept in ``problem``."""
        if not codes or not self.available():
            return {}
        try:
            snaps, absent = self.call(READING, _latest_and_absent, codes, self.source)
        except StoreError:
            return {}
        self._flush()
        return entries(snaps, absent)

    # -- writing for everyone -----------------------------------------------------------------
    def write(self, snapshots: Iterable[Snapshot], absent: Iterable[str] = (), fetched_at: float = 0.0) -> StoreError | None:
        """Write what was fetched from the service (and the codes it had no data for) to the desk;
        while the desk is away they wait here. Returns the fault (one line), or None."""
        if self.read_only is not None:
            return None  # said once already: this login cannot write
        with self._lock:
            for s in snapshots:
                self._pending[(s.source, s.code, s.data_date)] = s
            for code in absent:
                self._pending_absent[code] = max(fetched_at, self._pending_absent.get(code, 0.0))
            while len(self._pending) > MAX_PENDING:
                self._pending.pop(next(iter(self._pending)))
        if not self.available():  # the fault that started the pause, said for this write
            error = StoreError(f"{_first(self.problem)}; {WRITING}")
            error.kind = getattr(self.problem, "kind", "other")
            return error
        return self._flush()

    def _flush(self) -> StoreError | None:
        with self._lock:
            if self.read_only is not None or not (self._pending or self._pending_absent):
                return None
            rows, absent = list(self._pending.values()), dict(self._pending_absent)
            what = WRITING
            try:
                if rows:
                    self.call(what, lambda store: store.put(rows))
                for when in sorted(set(absent.values())):
                    codes = [c for c, t in absent.items() if t == when]
                    self.call(what, lambda store: store.mark_absent(codes, when, source=self.source))
            except StoreError as exc:
                if self.read_only is not None:
                    self._pending.clear()
                    self._pending_absent.clear()
                    self.read_only = exc = StoreError(f"{_first(exc)}; what is fetched here is kept in {LOCAL_COPY} only")
                    exc.kind = "read-only"
                    self.problem = exc
                    self.notes = [n for n in self.notes if "may only read" not in n] + [str(exc)]
                return exc
            self.written += len(rows)
            self._pending.clear()
            self._pending_absent.clear()
            return None

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- what it says about itself ------------------------------------------------------------
    def probe(self) -> None:
        """Connect (when never asked yet) and ask whether this login may write: a
        status shows a desk that is down, or read-only, before any formula needed it."""
        if self.attempts or not self.available():
            return  # asked already: the state says what happened then
        try:
            writer = self.call(READING, lambda store: store.can_write())
        except StoreError:
            return
        if not writer and self.read_only is None:
            self.read_only = StoreError(f"the desk store {self.url.display}: role {self.url.user!r} may only read "
                                        f"snapshots here; what is fetched here is kept in {LOCAL_COPY} only")
            self.read_only.kind = "read-only"

    def state(self) -> str:
        """One line: how the desk is doing (``=LX_MMAH_INFO()``'s "desk store state")."""
        self.probe()
        if self.problem is not None and getattr(self.problem, "kind", "") != "read-only":
            waiting = f"; {self.pending:,} snapshot(s) waiting for it" if self.pending else ""
            return f"NOT IN USE: {self.problem}{waiting}"
        used = f"{self.served:,} code(s) served from it, {self.written:,} snapshot(s) written to it"
        if self.read_only is not None:
            return f"reading only (this login may only read; fetched data is kept in {LOCAL_COPY} only); {used}"
        return f"in use; {used}"

    def rows(self) -> list[tuple[str, str]]:
        return [("desk store", self.url.display), ("desk store state", self.state())]

    def history(self, local_path) -> "DeskHistory":
        return DeskHistory(self, local_path)

    # -- the local copy's writes, in order, on one thread of their own --------------------------
    def later(self, fn, *args) -> None:
        """Run ``fn(*args)`` on the layer's writer thread (started on first use), after what is queued."""
        with self._lock:
            if self._jobs is None:
                self._jobs = queue.Queue()
                threading.Thread(target=self._work, args=(self._jobs,), name="xl_addin-desk-local-copy",
                                 daemon=True).start()
            self._jobs.put((fn, args))

    @staticmethod
    def _work(jobs: queue.Queue) -> None:
        while True:
            fn, args = jobs.get()
            try:
                if fn is not None:
                    fn(*args)
            except Exception:  # the job records its own faults (the service's last_error); never kill the thread
                pass
            finally:
                jobs.task_done()
            if fn is None:
                return

    def flush(self) -> None:
        """Wait until every queued write of the local copy is done."""
        jobs = self._jobs
        if jobs is not None:
            jobs.join()

    def close(self) -> None:
        """Finish the local copy's writes, then close the connection (the layer can be used again)."""
        with self._lock:
            jobs, self._jobs = self._jobs, None
        if jobs is not None:
            jobs.put((None, ()))
            jobs.join()
        with self._lock:
            if self._store is not None:
                self._store.close()


def _first(exc: Exception) -> str:
    """A fault's own line without what the layer added after it."""
    text = str(exc)
    for what in (READING, HISTORY, WRITING):
        text = text.removesuffix(f"; {what}")
    return text


def _latest_and_absent(store, codes, source):
    return store.latest(codes, source=source), store.absent(codes, source=source)


def entries(snaps: dict[str, Snapshot], absent: dict[str, float]) -> dict[str, tuple[object, float]]:
    """Cache-shaped entries ``{code: (record or ABSENT, fetched_at)}`` from the desk's answers:
    a code answered without data after its newest snapshot was fetched is ABSENT."""
    from .cache import ABSENT

    out: dict[str, tuple[object, float]] = {c: (s.record(), s.fetched_at) for c, s in snaps.items()}
    for code, when in absent.items():
        if code not in out or out[code][1] < when:
            out[code] = (ABSENT, when)
    return out


def as_fetches(found: dict[str, tuple[object, float]]):
    """Desk entries as the client's ``FetchResult`` s, one per fetch time, so the service keeps
    them in its local copy exactly as it keeps what it fetched itself: ``[(result, fetched_at)]``."""
    from .cache import ABSENT
    from .client import FetchResult
    from .records import record_to_json

    groups: dict[float, FetchResult] = {}
    for code, (value, when) in found.items():
        result = groups.setdefault(when, FetchResult())
        if value is ABSENT or value == ABSENT:
            result.absent.append(code)
        else:
            result.records[code] = value
            result.raw[code] = record_to_json(value)
    return [(groups[when], when) for when in sorted(groups)]


def snapshots_of(source: str, records: dict[str, dict], fetched_at: float) -> list[Snapshot]:
    """The service's records (the client checked them) as snapshots for the desk: not checked again."""
    return [Snapshot.from_record(source, r, fetched_at, checked=True) for r in records.values() if r.get("last_data_date")]


class DeskHistory(HistoryStore):
    """The history the service's queries read: the desk when it answers, else the local copy
    (a fault is kept in the layer, as for a fetch). Writes (``history import``) go to the desk only."""

    backend = "postgresql"

    def __init__(self, layer: DeskLayer, local):
        self.layer = layer
        self._owned = not isinstance(local, HistoryStore)  # a path: opened here; a store: the cache's, not ours to close
        self.local_path = local if self._owned else getattr(local, "path", local)
        self._local = None if self._owned else local
        self.last_from: str = ""  # "desk" or "local": where the last read came from
        self._bulk = None  # the desk without an answer timeout, for import and export

    def __repr__(self) -> str:
        return f"DeskHistory({self.layer.url.display!r}, local copy {str(self.local_path)!r})"

    def local(self):
        if self._local is None:
            from .store.sqlite import SQLiteStore

            self._local = SQLiteStore(self.local_path)
        return self._local

    def _read(self, name: str, *args, **kwargs):
        if self.layer.available():
            try:
                result = self.layer.call(HISTORY, lambda store: getattr(store, name)(*args, **kwargs))
                self.last_from = "desk"
                return result
            except StoreError:
                pass
        self.last_from = "local"
        return getattr(self.local(), name)(*args, **kwargs)

    def latest(self, codes, *, source):
        return self._read("latest", codes, source=source)

    def absent(self, codes, *, source):
        return self._read("absent", codes, source=source)

    def series(self, codes, fields, start=None, end=None, *, source):
        return self._read("series", codes, fields, start, end, source=source)

    def codes_seen(self, since, *, source):
        return self._read("codes_seen", since, source=source)

    def info(self, source=None) -> StoreInfo:
        return self._read("info", source)

    # moving files in and out means the desk itself: its fault is the command's one line. A whole
    # file may take longer than a formula's answer timeout: these go through a store without one
    def bulk(self):
        if self._bulk is None:
            from .store.postgres import PostgresStore

            self._bulk = PostgresStore(self.layer.url, connect_timeout=self.layer.connect_timeout)
        return self._bulk

    def put(self, snapshots) -> PutResult:
        return self.bulk().put(snapshots)

    def mark_absent(self, codes, fetched_at, *, source) -> None:
        self.bulk().mark_absent(codes, fetched_at, source=source)

    def export_rows(self, source=None) -> Iterator[Snapshot]:
        return self.bulk().export_rows(source)

    def close(self) -> None:
        if self._bulk is not None:
            self._bulk.close()
        if self._owned and self._local is not None:
            self._local.close()


def status_rows(settings) -> tuple[list[tuple[str, str]], StoreError | None]:
    """What `lx-addin store status` prints for the configured store: the desk's rows, or, when it
    cannot be used, its fault and the local copy's rows (the caller says the fault and exits 1)."""
    from .store.desk import status_rows as rows_of

    try:
        return rows_of(settings.store_location), None
    except StoreError as exc:
        if open_desk(settings) is None:
            raise
        error = StoreError(f"{exc}; formulas, refresh and fetch use {LOCAL_COPY}")
        local = [(f"local copy {label}" if label in ("backend", "location") else label, value)
                 for label, value in rows_of(settings.cache_path)]
        return [("desk store", parse_url_display(settings.store)), ("desk store state", "NOT IN USE (see below)")] + local, error


def parse_url_display(location: str) -> str:
    from .store.location import parse_desk_url

    return parse_desk_url(location).display
