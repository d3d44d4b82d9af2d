"""The data service every front end uses (CLI, formulas, refresh).

Like xbbg's cached bdp: ask the cache what is missing and query only that.
Two cache layers: an in-process memory (so a warm formula costs microseconds) in
front of the SQLite file (shared between processes, keeps history). When the
service fails, the newest cached value is served and marked stale.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .cache import NO_DATA, Cache
from .codes import unique
from .config import Settings
from .credentials import Token
from .exceptions import CacheError, LixingerError, NoDataError, ServiceUnavailableError, TokenError


@dataclass
class Result:
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


class MMAH:
    """Records for HK codes, from memory, the cache file or the service, in that order.

    ``cooldown`` (seconds): after the service failed outright, answer from the cache
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
        cooldown: float = 0.0,
    ):
        self.settings = settings or Settings.from_env()
        if token is not None and not isinstance(token, Token):
            token = Token(token)
        self._token = token
        self._token_provider = token_provider
        self.use_cache = use_cache
        self._session = session
        self._client = None
        self._memory: dict[str, tuple[object, float]] = {}
        self._lock = threading.RLock()
        self.cache = Cache(self.settings.cache_path, self.settings.base_url) if use_cache else None
        self.requests_sent = 0
        self.cooldown = cooldown
        self._down_until = 0.0
        self._not_before = 0.0
        self._down_error: LixingerError | None = None
        self.last_error: LixingerError | None = None
        self.last_stale = False

    def __repr__(self) -> str:
        return f"MMAH(base_url={self.settings.base_url!r}, cache={self.cache!r})"

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

        if self._client is None or self._client._token != token:
            self._client = MMAHClient(token, self.settings, session=self._session)
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
        for code, record in fetched.records.items():
            self._memory[code] = (record, now)
        for code in fetched.absent:
            self._memory[code] = (NO_DATA, now)
        if self.cache is not None:
            try:
                self.cache.store(fetched.raw, fetched.records, fetched.absent, now)
            except CacheError as exc:
                self.last_error = exc

    # -- public ---------------------------------------------------------------------------
    def peek(self, codes: list[str], max_age: float | None = None) -> Result:
        """What the caches hold that is fresh, with no request at all."""
        max_age = self.settings.max_age if max_age is None else max_age
        result = Result(unique(codes))
        now = time.time()
        with self._lock:
            self._sync_not_before()
            known = self._cached(result.codes) if self.use_cache else {}
        for code, (value, fetched_at) in known.items():
            if self._fresh(fetched_at, now, max_age):
                self._serve(result, code, value, fetched_at)
                result.from_cache.add(code)
        return result

    def fetch(self, codes: list[str], max_age: float | None = None, use_cache: bool | None = None) -> Result:
        """Records for five-digit *codes*; per-code errors in ``Result.errors``."""
        use_cache = self.use_cache if use_cache is None else use_cache
        max_age = self.settings.max_age if max_age is None else max_age
        result = Result(unique(codes))
        with self._lock:
            self._sync_not_before()
            now = time.time()
            known = self._cached(result.codes) if self.use_cache else {}
            missing = []
            for code in result.codes:
                entry = known.get(code)
                if use_cache and entry is not None and self._fresh(entry[1], now, max_age):
                    self._serve(result, code, entry[0], entry[1])
                    result.from_cache.add(code)
                else:
                    missing.append(code)
            if not missing:
                return result
            if time.monotonic() < self._down_until:
                # the service just failed: answer at once from the cache (or with that error)
                for code in missing:
                    self._fail(result, code, self._down_error, known.get(code))
                self.last_stale = bool(result.stale)
                return result
            try:
                client = self._client_for(self.token())
                fetched = client.fetch(missing)
            except TokenError as exc:
                # no stale fallback here: a token problem must be seen and fixed, not papered over
                self.last_error = exc
                for code in missing:
                    result.errors[code] = exc
                return result
            result.requests = fetched.requests
            self.requests_sent += fetched.requests
            now = time.time()
            self._remember(fetched, now)
            for code, record in fetched.records.items():
                result.records[code] = record
                result.fetched_at[code] = now
            for code in fetched.absent:
                result.errors[code] = NoDataError(code)
                result.fetched_at[code] = now
            for code, exc in fetched.errors.items():
                self.last_error = exc
                self._fail(result, code, exc, known.get(code))
            if self.cooldown and not fetched.records and not fetched.absent and any(
                isinstance(e, ServiceUnavailableError) for e in fetched.errors.values()
            ):
                self._down_until = time.monotonic() + self.cooldown
                self._down_error = next(e for e in fetched.errors.values() if isinstance(e, ServiceUnavailableError))
            self.last_stale = bool(result.stale)
        return result

    @staticmethod
    def _serve(result: Result, code: str, value, fetched_at: float) -> None:
        result.fetched_at[code] = fetched_at
        if value is NO_DATA or value == NO_DATA:
            result.errors[code] = NoDataError(code)
        else:
            result.records[code] = value

    def _fail(self, result: Result, code: str, exc: LixingerError, entry) -> None:
        if entry is not None and entry[0] != NO_DATA:
            result.records[code] = entry[0]
            result.stale.add(code)
            result.fetched_at[code] = entry[1]
            result.stale_because[code] = exc
        else:
            result.errors[code] = exc

    def forget(self) -> None:
        """Nothing fetched before now counts as fresh any more, in this process and in every
        other one that shares the cache file (the Refresh button runs in its own process, the
        formulas in Excel's UDF server): the next fetch of each code asks the service (older
        values stay available as the fallback when it is down)."""
        with self._lock:
            now = time.time()
            if self.cache is not None:
                try:
                    self.cache.set_not_before(now)
                except CacheError as exc:
                    self.last_error = exc
            self._advance_not_before(now)

    @property
    def not_before(self) -> float:
        """The newest Refresh stamp honoured here (``time.time()``; 0.0: none), as of the last fetch or peek."""
        return self._not_before

    def _sync_not_before(self) -> None:
        """Honour a Refresh made by another process (a cheap look at the cache file)."""
        if self.cache is not None:
            stamp = self.cache.not_before()
            if stamp > self._not_before:
                self._advance_not_before(stamp)

    def _advance_not_before(self, stamp: float) -> None:
        self._not_before = max(self._not_before, stamp)
        self._down_until = 0.0  # a Refresh means "try now", even during an outage pause
        if self.cache is not None:  # the file keeps the fallback, and may hold newer entries
            self._memory = {c: e for c, e in self._memory.items() if e[1] >= self._not_before}

    def _fresh(self, fetched_at: float, now: float, max_age: float) -> bool:
        return now - fetched_at <= max_age and fetched_at >= self._not_before

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self.cache is not None:
            self.cache.close()
