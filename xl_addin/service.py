"""The data service every front end uses (CLI, formulas, refresh), and the one each process shares.

Like xbbg's cached bdp: ask the cache what is missing and query only that.
Two cache layers: an in-process memory (so a warm formula costs microseconds) in
front of the SQLite file (shared between processes, keeps history). When the
service fails, the newest cached value is served and marked stale.

One process, one service: Excel's formulas and a Refresh run in the same UDF server
share one memory cache and one outage pause. :func:`shared` hands it out (created on
first use) and :func:`set_shared` replaces it, as keyring's ``get_keyring`` /
``set_keyring`` do; tests give it a service of their own.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .cache import ABSENT, Cache
from .codes import unique
from .config import Settings
from .credentials import Token
from .exceptions import CacheError, LixingerError, NoDataError, ServiceUnavailableError, TokenError

log = logging.getLogger(__name__)

#: formulas: seconds one formula may wait for the service, retries included (Excel waits for it)
FORMULA_BUDGET = 15.0
#: formulas: after an outage, answer from the cache this long without asking the service again
OUTAGE_PAUSE = 30.0


@dataclass
class Answer:
    """What the data service answers for a list of codes: a record or an error per code, and where each came from."""

    codes: list[str]
    records: dict[str, dict] = field(default_factory=dict)
    errors: dict[str, LixingerError] = field(default_factory=dict)
    stale: set[str] = field(default_factory=set)  # served from the cache because the service failed
    from_cache: set[str] = field(default_factory=set)
    requests: int = 0
    fetched_at: dict[str, float] = field(default_factory=dict)  # epoch seconds the value came from the service
    stale_because: dict[str, LixingerError] = field(default_factory=dict)  # why each stale code is stale

    def rows(self):
        """(code, record or None, error or None) in request order."""
        for code in self.codes:
            yield code, self.records.get(code), self.errors.get(code)

    @property
    def newest_data_date(self):
        dates = [r["last_data_date"] for r in self.records.values() if r.get("last_data_date")]
        return max(dates) if dates else None

    def to_frame(self):
        """The records as a pandas DataFrame: index ``code`` (request order, codes with a record),
        one column per field — ``last_data_date`` as datetime64, share counts as ``Int64``, amounts
        and ratios as ``float64`` (a missing value is ``<NA>``/``NaN``). Loads pandas."""
        import pandas as pd

        from .fields import FIELDS
        from .store.base import INTEGER_KINDS

        codes = [c for c in self.codes if c in self.records]
        rows = [self.records[c] for c in codes]
        data = {"last_data_date": pd.to_datetime([r.get("last_data_date") for r in rows]).astype("datetime64[ns]")}
        for f in FIELDS:
            if f.kind not in ("code", "date"):
                values = [r.get(f.key) for r in rows]
                data[f.key] = pd.array(values, dtype="Int64" if f.kind in INTEGER_KINDS else "float64")
        return pd.DataFrame(data, index=pd.Index(codes, name="code", dtype=object))


class DataService:
    """Records for HK codes, from memory, the cache file or the service, in that order.

    ``outage_pause`` (seconds): after the service failed outright, answer from the cache
    without asking it again for that long, so that a sheet full of formulas does
    not wait out the retries once per cell.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        token: Token | str | None = None,
        token_provider: Callable[[], Token] | None = None,
        use_cache: bool = True,
        session=None,
        outage_pause: float = 0.0,
    ):
        self.settings = settings or Settings.load()
        if token is not None and not isinstance(token, Token):
            token = Token(token)
        self._token = token
        self._token_provider = token_provider
        self.use_cache = use_cache
        self._session = session
        self._client = None
        self._client_token: Token | None = None  # the token self._client was made with
        self._memory: dict[str, tuple[object, float]] = {}
        self._lock = threading.RLock()
        self.cache = Cache(self.settings.cache_path, self.settings.base_url) if use_cache else None
        self.requests_sent = 0
        self.outage_pause = outage_pause
        self._outage_pause_ends = 0.0  # time.monotonic() until which the service is not asked (an outage)
        self._outage_error: LixingerError | None = None  # the outage's error, for codes with nothing cached
        self._fresh_floor = 0.0  # nothing fetched before this (epoch seconds) counts as fresh
        self.last_error: LixingerError | None = None
        #: why the last fetch that could not be kept in the local store (the cache file, the history) was not
        self.not_kept: CacheError | None = None
        self._failed_at = 0.0  # when the service last failed a fetch of this service (time.time())
        self.last_stale = False
        self._history = None  # the history store (the cache's own when it is the cache file), on the first query
        from .desk_layer import open_desk

        self.desk = open_desk(self.settings)  # a desk's shared store (``store = "postgresql://..."``), or None

    def __repr__(self) -> str:
        return f"DataService(base_url={self.settings.base_url!r}, cache={self.cache!r})"

    # -- token and client ---------------------------------------------------------------
    def token(self) -> Token:
        if self._token is None:
            provider = self._token_provider
            if provider is None:
                from .credentials import resolve_token

                def provider():
                    return resolve_token(self.settings.profile)

            return provider()
        return self._token

    def _client_for(self, token: Token):
        from .client import MMAHClient

        if self._client is None or self._client_token != token:
            if self._client is not None:
                self._client.close()
            self._client = MMAHClient(token, self.settings, session=self._session)
            self._client_token = token
        return self._client

    # -- cache layers ------------------------------------------------------------------
    def _cached(self, codes: list[str]) -> dict[str, tuple[object, float]]:
        """Newest known entry per code: memory first, then the cache file."""
        found = {c: self._memory[c] for c in codes if c in self._memory}
        rest = [c for c in codes if c not in found]
        if rest and self.cache is not None:
            try:
                from_file = self.cache.latest(rest)
            except CacheError as exc:
                self.last_error = exc
                from_file = {}
            self._memory.update(from_file)
            found.update(from_file)
        return found

    def _remember(self, fetched, now: float) -> None:
        """What the service just answered, in memory (a warm formula costs microseconds)."""
        for code, record in fetched.records.items():
            self._memory[code] = (record, now)
        for code in fetched.absent:
            self._memory[code] = (ABSENT, now)

    def _keep_history(self, fetched, now: float) -> None:
        """Keep what the service just answered in the local store, which is both the cache file and
        the history: one transaction (typed rows, "no data" marks), committed before the answer goes
        back, so a process killed right after loses nothing it answered. Records the client parsed
        are not checked again. A store that cannot be written leaves the answer as it is and says so
        in ``last_error``."""
        if self.cache is None:
            return
        try:
            self.cache.store_fetch(fetched.records, fetched.absent, now)
        except CacheError as exc:
            self.last_error = exc
            self.not_kept = exc

    # -- the desk store: read through it, share with it (xl_addin/desk_layer.py) ----------
    def _serve_from_desk(self, answer: Answer, missing: list[str], known: dict, max_age: float) -> list[str]:
        """Serve the codes the desk store has fresh (by the same rules as the cache: max_age and the
        Refresh stamp, whoever fetched them); what it gave that is newer than the local copy is kept
        there too (on the desk layer's thread: the formula does not wait for it), and is the stale
        fallback for the rest. Returns the codes still missing."""
        found = self.desk.read(missing)  # {} while the desk is away (its fault is in desk.problem)
        if self.desk.problem is not None:
            self.last_error = self.desk.problem
        newer = {c: e for c, e in found.items() if c not in known or e[1] > known[c][1]}
        if newer:
            self._memory.update(newer)
            self.desk.later(self._keep_desk_rows, newer)
        known.update(newer)
        now, still = time.time(), []
        for code in missing:
            entry = newer.get(code)
            if entry is not None and self._fresh(entry[1], now, max_age):
                self._serve_cached(answer, code, entry[0], entry[1])
                self.desk.served += 1
            else:
                still.append(code)
        return still

    def _keep_desk_rows(self, rows: dict) -> None:
        """Keep rows read from the desk in the local copy (the offline copy), as fetched ones are kept."""
        from .desk_layer import as_fetches

        with self._lock:
            rows = {c: e for c, e in rows.items() if c not in self._memory or self._memory[c][1] <= e[1]}
            for fetched, fetched_at in as_fetches(rows):
                self._remember(fetched, fetched_at)
                self._keep_history(fetched, fetched_at)

    def _share_with_desk(self, fetched, now: float) -> None:
        """Write what the service just answered to the desk store, for everyone (after the local copy)."""
        if self.desk is None or not self.use_cache:
            return
        from .desk_layer import snapshots_of

        problem = self.desk.write(snapshots_of(self.settings.base_url, fetched.records, now), fetched.absent, now)
        if problem is not None:
            self.last_error = problem

    # -- public ---------------------------------------------------------------------------
    def peek(self, codes: list[str], max_age: float | None = None) -> Answer:
        """What the caches hold that is fresh, with no request at all."""
        max_age = self.settings.max_age if max_age is None else max_age
        answer = Answer(unique(codes))
        now = time.time()
        with self._lock:
            self._sync_fresh_floor()
            known = self._cached(answer.codes) if self.use_cache else {}
        for code, (value, fetched_at) in known.items():
            if self._fresh(fetched_at, now, max_age):
                self._serve_cached(answer, code, value, fetched_at)
        return answer

    def fetch(self, codes: list[str], max_age: float | None = None, use_cache: bool | None = None) -> Answer:
        """Records for five-digit *codes*; per-code errors in ``Answer.errors``."""
        use_cache = self.use_cache if use_cache is None else use_cache
        max_age = self.settings.max_age if max_age is None else max_age
        answer = Answer(unique(codes))
        with self._lock:
            self._sync_fresh_floor()
            known = self._cached(answer.codes) if self.use_cache else {}
            missing = self._serve_fresh(answer, known, max_age) if use_cache else list(answer.codes)
            if missing and use_cache and self.use_cache and self.desk is not None:
                missing = self._serve_from_desk(answer, missing, known, max_age)
            if not missing:
                return answer
            if self._in_outage_pause():
                self._serve_during_outage_pause(answer, missing, known)
            else:
                self._ask_service(answer, missing, known)
            self.last_stale = bool(answer.stale)
        return answer

    # -- the steps of a fetch -----------------------------------------------------------
    def _serve_fresh(self, answer: Answer, known: dict, max_age: float) -> list[str]:
        """Serve each code the caches hold fresh; returns the codes still missing."""
        now = time.time()
        missing = []
        for code in answer.codes:
            entry = known.get(code)
            if entry is not None and self._fresh(entry[1], now, max_age):
                self._serve_cached(answer, code, entry[0], entry[1])
            else:
                missing.append(code)
        return missing

    def _in_outage_pause(self) -> bool:
        return time.monotonic() < self._outage_pause_ends

    def _serve_during_outage_pause(self, answer: Answer, missing: list[str], known: dict) -> None:
        """The service just failed: answer at once from the cache (or with that error)."""
        for code in missing:
            self._serve_stale_or_error(answer, code, self._outage_error, known.get(code))

    def _ask_service(self, answer: Answer, missing: list[str], known: dict) -> None:
        try:
            fetched = self._client_for(self.token()).fetch(missing)
        except TokenError as exc:
            # no stale fallback here: a token problem must be seen and fixed, not papered over
            self.last_error = exc
            for code in missing:
                answer.errors[code] = exc
            return
        answer.requests = fetched.requests
        self.requests_sent += fetched.requests
        now = time.time()
        self._remember(fetched, now)
        self._keep_history(fetched, now)
        self._share_with_desk(fetched, now)
        for code, record in fetched.records.items():
            answer.records[code] = record
            answer.fetched_at[code] = now
        for code in fetched.absent:
            answer.errors[code] = NoDataError(code)
            answer.fetched_at[code] = now
        for code, exc in fetched.errors.items():
            self.last_error = exc
            self._serve_stale_or_error(answer, code, exc, known.get(code))
        if fetched.errors:
            self._mark_failed(now)
        self._start_outage_pause(fetched)

    def _mark_failed(self, now: float) -> None:
        """Say in the cache file that the service failed a fetch now, for a Refresh button
        running in another process (see :meth:`failure_since`)."""
        self._failed_at = now
        if self.cache is not None:
            try:
                self.cache.mark_failed(now)
            except LixingerError as exc:
                log.debug("cannot stamp the failure: %s", exc)

    def failure_since(self, when: float) -> tuple[float, str] | None:
        """(when, why) the service last failed a fetch, if that was at or after *when* (any
        process using the cache file; *why* is empty when it was another process's, which
        ``=LX_MMAH_INFO()`` in that process tells); None when no fetch failed since."""
        if self._failed_at >= when and self.last_error is not None:
            return self._failed_at, str(self.last_error)
        if self.cache is not None:
            try:
                at = self.cache.failed_at()
            except LixingerError:
                return None
            if at is not None and at >= when:
                return at, ""
        return None

    def _start_outage_pause(self, fetched) -> None:
        """Start the outage pause when the service failed outright (nothing came back at all)."""
        if not self.outage_pause or fetched.records or fetched.absent:
            return
        outage = [e for e in fetched.errors.values() if isinstance(e, ServiceUnavailableError)]
        if outage:
            self._outage_pause_ends = time.monotonic() + self.outage_pause
            self._outage_error = outage[0]

    @staticmethod
    def _serve_cached(answer: Answer, code: str, value, fetched_at: float) -> None:
        answer.fetched_at[code] = fetched_at
        answer.from_cache.add(code)
        if value is ABSENT or value == ABSENT:
            answer.errors[code] = NoDataError(code)
        else:
            answer.records[code] = value

    def _serve_stale_or_error(self, answer: Answer, code: str, exc: LixingerError, entry) -> None:
        """The cached record, marked stale because of *exc*; else *exc* itself."""
        if entry is not None and entry[0] != ABSENT:
            answer.records[code] = entry[0]
            answer.stale.add(code)
            answer.fetched_at[code] = entry[1]
            answer.stale_because[code] = exc
        else:
            answer.errors[code] = exc

    # -- freshness ------------------------------------------------------------------------
    def expire_all(self) -> None:
        """Raise the freshness floor to now: nothing fetched before now counts as fresh any
        more, in this process and in every other one that shares the cache file (the Refresh
        button runs in its own process, the formulas in Excel's UDF server). The next fetch
        of each code asks the service (older values stay available as the fallback when it
        is down), and an outage pause ends."""
        with self._lock:
            now = time.time()
            if self.cache is not None:
                try:
                    self.cache.set_not_before(now)
                except CacheError as exc:
                    self.last_error = exc
            self._raise_fresh_floor(now)

    forget = expire_all  # the older name, kept for callers

    @property
    def fresh_floor(self) -> float:
        """The newest Refresh stamp honoured here (``time.time()``; 0.0: none), as of the last fetch
        or peek: nothing fetched before it counts as fresh."""
        return self._fresh_floor

    not_before = fresh_floor  # the cache file's word for it

    def _sync_fresh_floor(self) -> None:
        """Honour a Refresh made by another process (a cheap look at the cache file)."""
        if self.cache is not None:
            stamp = self.cache.not_before()
            if stamp > self._fresh_floor:
                self._raise_fresh_floor(stamp)

    def _raise_fresh_floor(self, stamp: float) -> None:
        self._fresh_floor = max(self._fresh_floor, stamp)
        self._outage_pause_ends = 0.0  # a Refresh means "try now", even during an outage pause
        if self.cache is not None:  # the file keeps the fallback, and may hold newer entries
            self._memory = {c: e for c, e in self._memory.items() if e[1] >= self._fresh_floor}

    def _fresh(self, fetched_at: float, now: float, max_age: float) -> bool:
        return now - fetched_at <= max_age and fetched_at >= self._fresh_floor

    # -- history: every snapshot kept, read back without asking the service --------------
    def history_store(self):
        """The history store (``settings.store_location``): the cache's own store when it is the
        cache file (one handle, one connection), else opened on first use."""
        with self._lock:
            if self._history is None:
                location = self.settings.store_location
                if self.desk is not None:  # the desk when it answers, else the local copy (the cache's store)
                    self._history = self.desk.history(self.cache.store if self.cache is not None
                                                      else self.settings.cache_path)
                elif self.cache is not None and self._is_cache_file(location):
                    self._history = self.cache.store  # one handle (closed with the cache)
                else:
                    from .store import open_store

                    self._history = open_store(location)
            return self._history

    def _is_cache_file(self, location) -> bool:
        from pathlib import Path

        from .store.location import is_desk_url

        return not is_desk_url(location) and Path(location) == self.cache.path

    def history_rows(self, codes, fields, start=None, end=None) -> list[tuple]:
        """``HistoryStore.series`` rows ``(code, date, value, ...)`` of this service's source; never a request."""
        from .codes import parse_code

        parsed = []
        for value in ([codes] if isinstance(codes, (str, int)) else list(codes)):
            code, error = parse_code(value)
            if error is not None:
                raise error
            parsed.append(code)
        wanted = [c for c in dict.fromkeys(parsed) if c]
        return self.history_store().series(wanted, fields, start, end, source=self.settings.base_url)

    def history(self, codes, fields, start=None, end=None, wide: bool = False):
        """The kept snapshots as a pandas DataFrame; never sends a request.

        *codes*/*fields* are one or a list (codes typed any way, fields by key or 中文 label);
        *start*/*end* are dates (or ISO text), either left open. Long form (default): one row
        per (code, data date) with columns ``code``, ``date`` (datetime64), then one per field
        (``Int64`` share counts, ``float64`` otherwise). ``wide=True``: dates down (a
        ``DatetimeIndex``), codes across, one field's values (several fields: ``(field, code)``
        columns); a day with no snapshot for a code is missing, never 0.
        """
        import datetime as dt

        from .store import frames

        start, end = (dt.date.fromisoformat(d) if isinstance(d, str) else d for d in (start, end))
        rows = self.history_rows(codes, fields, start, end)
        return (frames.wide_frame if wide else frames.long_frame)(rows, fields)

    # -- what it knows about itself ------------------------------------------------------
    def status(self) -> "Status":
        """Where the token comes from, the cache, the newest data date, requests and staleness
        (``=LX_MMAH_INFO()``); never the token itself, and never an exception."""
        try:
            source = self.token().source
            token_error = None
        except Exception as exc:  # a status never fails: it says what went wrong
            source, token_error = None, exc
        with self._lock:
            newest = [v[0]["last_data_date"] for v in self._memory.values()
                      if isinstance(v[0], dict) and v[0].get("last_data_date")]
        if newest:
            newest_text = max(newest).isoformat()
        elif self.cache is not None:
            try:
                newest_text = self.cache.info().get("newest_data_date") or ""
            except Exception:
                newest_text = ""
        else:
            newest_text = ""
        return Status(
            base_url=self.settings.base_url,
            token_source=source,
            token_error=token_error,
            cache_file=str(self.cache.path) if self.cache is not None else None,
            newest_data_date=newest_text,
            requests_sent=self.requests_sent,
            last_stale=self.last_stale,
            last_error=self.last_error,
            desk=self.desk.rows() if self.desk is not None else [],
        )

    def check_token(self, probe: str = "00700") -> "TokenCheck":
        """Ask the service for one code, without the cache: does it accept the token?
        A missing token raises (NoTokenError), as it does for a fetch."""
        token = self.token()
        answer = self.fetch([probe], use_cache=False)
        error = answer.errors.get(probe)
        if isinstance(error, NoDataError):
            error = None
        return TokenCheck(token=token, base_url=self.settings.base_url, error=error,
                          data_date=answer.newest_data_date)

    def close(self) -> None:
        if self.desk is not None:
            self.desk.close()  # its local-copy writes first
        if self._client is not None:
            self._client.close()
        if self.cache is not None:
            self.cache.close()
        if self._history is not None and (self.cache is None or self._history is not self.cache.store):
            self._history.close()


@dataclass
class Status:
    base_url: str
    token_source: str | None  # None: no usable token (token_error says why)
    token_error: Exception | None
    cache_file: str | None  # None: the cache is off
    newest_data_date: str
    requests_sent: int
    last_stale: bool
    last_error: LixingerError | None
    desk: list = field(default_factory=list)  # (label, value) rows about a desk store, when there is one


@dataclass
class TokenCheck:
    token: Token
    base_url: str
    error: LixingerError | None  # None: the service accepted the token
    data_date: object = None

    @property
    def ok(self) -> bool:
        return self.error is None


#: the older names, kept for callers (the README's examples use MMAH)
MMAH = DataService
Result = Answer


# --- the process-wide service -------------------------------------------------------------
_shared: DataService | None = None
_shared_lock = threading.Lock()


def shared(create: Callable[[], DataService] | None = None) -> DataService:
    """This process's data service, made by *create* (default: :class:`DataService` from the
    settings) the first time it is asked for. Formulas and a Refresh running in the same
    process get the same one."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = (create or DataService)()
    return _shared


def set_shared(service: DataService | None) -> None:
    """Make *service* this process's data service (None: the next :func:`shared` makes a new one,
    reading the settings again); the one it replaces is closed."""
    global _shared
    with _shared_lock:
        old, _shared = _shared, service
    if old is not None and old is not service:
        old.close()


def for_formulas() -> DataService:
    """The service Excel's formulas and Refresh button share: a shorter budget (Excel waits for a
    formula) and a pause after an outage."""
    settings = Settings.load()
    settings = Settings(**{**settings.__dict__, "budget": min(settings.budget, FORMULA_BUDGET)})
    return DataService(settings, outage_pause=OUTAGE_PAUSE)
