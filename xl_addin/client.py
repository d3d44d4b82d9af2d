"""The HTTP client for ``POST {base}/hk/company/hot/mm_ah``.

Shaped like an OpenBB fetcher: :func:`build_batches` is the pure query transform,
:meth:`MMAHClient._post` is the one function that does I/O, and
:mod:`xl_addin.records` holds the pure data transform. The token is passed in,
never looked up here. requests' exceptions are translated at this boundary.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from . import __version__
from .config import Settings, is_loopback_host
from .credentials import Token, redact
from .exceptions import (
    ApiError,
    BadResponseError,
    LixingerError,
    RateLimitedError,
    RequestTimeoutError,
    ServiceUnavailableError,
    TokenRejectedError,
)
from .records import index_records, split_answer

log = logging.getLogger(__name__)

PATH = "/hk/company/hot/mm_ah"
MAX_CODES_PER_REQUEST = 100
MAX_ATTEMPTS = 5
BACKOFF_BASE = 0.25
BACKOFF_CAP = 8.0
MAX_PARALLEL = 6  # 600 codes in one round trip; far below the ~1,000 requests/minute limit


def build_batches(codes: list[str], size: int = MAX_CODES_PER_REQUEST) -> list[list[str]]:
    """Deduplicated codes, in order, cut into requests of at most *size*."""
    unique = list(dict.fromkeys(codes))
    return [unique[i : i + size] for i in range(0, len(unique), size)]


@dataclass
class FetchResult:
    """What one fetch brought back, code by code."""

    records: dict[str, dict] = field(default_factory=dict)  # typed records
    raw: dict[str, dict] = field(default_factory=dict)  # as received, for the cache
    absent: list[str] = field(default_factory=list)  # asked for, not in data: "no data"
    errors: dict[str, LixingerError] = field(default_factory=dict)
    requests: int = 0  # HTTP requests sent, retries included


class _Retry(Exception):
    def __init__(self, error: LixingerError, wait: float | None = None):
        self.error = error
        self.wait = wait


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _message_of(response: requests.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(payload, dict):
        return str(payload.get("message") or payload.get("error") or "")[:300]
    return ""


def _looks_like_token_problem(message: str) -> bool:
    return "token" in message.lower()


class MMAHClient:
    """Fetches mm_ah records for five-digit codes. Thread-safe for concurrent batches."""

    def __init__(self, token: Token, settings: Settings | None = None, session=None):
        if not isinstance(token, Token):
            token = Token(token)
        self._token = token
        self.settings = settings or Settings()
        self.url = self.settings.base_url + PATH
        self.host = urlsplit(self.url).hostname
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", f"xl_addin/{__version__}")
        if is_loopback_host(self.host):
            # this machine (the sandbox): never through a proxy from the environment
            self.session.trust_env = False
        self._lock = threading.Lock()
        self.requests_sent = 0

    def __repr__(self) -> str:
        return f"MMAHClient(url={self.url!r}, token=<redacted>)"

    # -- the one function that does I/O -------------------------------------------------
    def _post_once(self, codes: list[str], deadline: float) -> dict:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimeoutError(f"no answer from {self.host} within the time budget")
        timeout = (
            min(self.settings.connect_timeout, remaining),
            min(self.settings.timeout, remaining),
        )
        body = {"token": self._token.reveal(), "stockCodes": codes}
        started = time.monotonic()
        with self._lock:
            self.requests_sent += 1
        try:
            response = self.session.post(self.url, json=body, timeout=timeout)
        except requests.exceptions.Timeout:
            raise _Retry(RequestTimeoutError(f"{self.host} did not answer within {timeout[1]:.0f} s"))
        except requests.exceptions.SSLError as exc:
            raise ServiceUnavailableError(
                f"TLS verification failed for {self.host}: {redact(str(exc), self._token)[:200]}"
            ) from None
        except requests.exceptions.ConnectionError:
            raise _Retry(ServiceUnavailableError(f"cannot reach {self.host} (connection failed)"))
        except requests.exceptions.RequestException as exc:
            raise ServiceUnavailableError(
                f"request to {self.host} failed: {type(exc).__name__}"
            ) from None
        elapsed = time.monotonic() - started
        log.info("POST %s codes=%d -> %s in %.3fs", self.url, len(codes), response.status_code, elapsed)
        return self._read(response)

    def _read(self, response: requests.Response) -> dict:
        status = response.status_code
        if status in (401, 403):
            raise TokenRejectedError(redact(_message_of(response), self._token))
        if status == 429:
            raise _Retry(
                RateLimitedError(f"{self.host} says too many requests (HTTP 429); try again in a minute"),
                _retry_after(response.headers.get("Retry-After")),
            )
        if status >= 500:
            said = redact(_message_of(response), self._token)
            raise _Retry(
                ServiceUnavailableError(f"{self.host} failed (HTTP {status}{': ' + said if said else ''})"),
                _retry_after(response.headers.get("Retry-After")),
            )
        try:
            payload = response.json()
        except ValueError:
            raise BadResponseError(
                f"{self.host} answered HTTP {status} with something that is not JSON "
                f"({response.headers.get('Content-Type', 'no content type')})"
            ) from None
        message = ""
        api_code = None
        if isinstance(payload, dict):
            api_code = payload.get("code")
            message = redact(str(payload.get("message") or ""), self._token)
        if status != 200 or api_code != 1:
            if not isinstance(payload, dict) or "code" not in payload:
                raise BadResponseError(f"{self.host} answered HTTP {status} without a result code")
            if _looks_like_token_problem(message):
                raise TokenRejectedError(message)
            raise ApiError(
                f"Lixinger refused the request: {message or 'no reason given'}"
                + (f" (HTTP {status})" if status != 200 else ""),
                code=api_code,
                status=status,
            )
        return payload

    def _post(self, codes: list[str], deadline: float) -> dict:
        """POST with retries on connection errors, timeouts, 5xx and 429, within the budget."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._post_once(codes, deadline)
            except _Retry as retry:
                remaining = deadline - time.monotonic()
                if retry.wait is not None:
                    wait = retry.wait
                else:
                    wait = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)) * (0.5 + random.random())
                if attempt >= MAX_ATTEMPTS or wait >= remaining:
                    error = retry.error
                    raise type(error)(f"{error} (gave up after {attempt} attempt{'s' * (attempt > 1)})") from None
                log.info("retrying %s in %.2fs after: %s", self.host, wait, retry.error)
                time.sleep(wait)

    # -- public -----------------------------------------------------------------------------
    def fetch(self, codes: list[str]) -> FetchResult:
        """Records for five-digit *codes*; one batch failing does not fail the others.

        Token errors are raised (no point going on); anything else is recorded per code.
        """
        batches = build_batches(codes)
        result = FetchResult()
        if not batches:
            return result
        before = self.requests_sent
        deadline = time.monotonic() + self.settings.budget

        def run(batch):
            try:
                return batch, self._post(batch, deadline), None
            except TokenRejectedError:
                raise
            except LixingerError as exc:
                return batch, None, exc

        if len(batches) == 1:
            outcomes = [run(batches[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(batches))) as pool:
                outcomes = list(pool.map(run, batches))
        for batch, payload, error in outcomes:
            if error is not None:
                for code in batch:
                    result.errors[code] = error
                continue
            try:
                raw_records = split_answer(payload)
            except BadResponseError as exc:
                for code in batch:
                    result.errors[code] = exc
                continue
            raw, records, errors = index_records(raw_records, batch)
            result.raw.update(raw)
            result.records.update(records)
            result.errors.update(errors)
            result.absent.extend(c for c in batch if c not in records and c not in errors)
        result.requests = self.requests_sent - before
        return result

    def close(self) -> None:
        self.session.close()
