"""The HTTP client for ``POST {base}/hk/company/hot/mm_ah``.

Shaped like an OpenBB fetcher: :func:`build_batches` is the pure query transform,
:meth:`MMAHClient._post_once` is the one function that does I/O, and
:mod:`xl_addin.records` holds the pure data transform. The token is passed in,
never looked up here. requests' and urllib3's exceptions are translated at this
boundary into messages for a user.

The promises kept here, each against a hostile or broken server:

- the token goes to the configured host only: redirects are never followed (a 307
  would re-post the body, token included, to wherever ``Location`` says);
- ``LIXINGER_BUDGET`` bounds the whole exchange, headers and body included: the
  body is streamed and reading stops at the deadline, however slowly it trickles in,
  and the socket is shut down at the deadline while the headers are awaited
  (:mod:`xl_addin.deadline`);
- an answer is read up to ``LIXINGER_MAX_ANSWER_BYTES`` decoded bytes, checked as
  it is read, so a gzip bomb costs that much memory and no more;
- a connection cut in the middle of the body is retried like any connection error;
- an answer whose records are not records of the codes asked for is a bad answer
  (retried, then an error), never "no data";
- the token is stripped from everything kept (records) and shown (messages), and so
  are the credentials of ``LIXINGER_PROXY``;
- no more than ``LIXINGER_RATE`` requests a minute leave for one token, from every
  thread of the process together (:mod:`xl_addin.pacer`); a 429 is still honoured.

Retries follow a :class:`~xl_addin.pacer.RetryPolicy` (attempts, backoff, and the clock
and sleep it waits with), given to the client as requests is given a urllib3 ``Retry``.
Each batch's answer is parsed in the thread that fetched it, while the other batches
are still on the wire.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urljoin

import requests
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError

from .version import __version__
from .config import Settings
from .credentials import RUN, Token, redact, redact_deep
from .deadline import DeadlineAdapter, deadline as within
from .exceptions import (
    AnswerTooLargeError,
    ApiError,
    BadResponseError,
    ConfigError,
    LixingerError,
    RateLimitedError,
    RedirectError,
    RequestTimeoutError,
    ServiceUnavailableError,
    TokenRejectedError,
)
from .messages import shown
from .pacer import Pacer, RetryPolicy, shared_pacer
from .proxies import ProxyURL, check_proxy, proxies_for, redact_proxy, secrets_of
from .records import check_answer, index_records, reason_of
from .urls import check_base_url, host_of, is_loopback_host

log = logging.getLogger(__name__)

PATH = "/hk/company/hot/mm_ah"
MAX_CODES_PER_REQUEST = 100
MAX_PARALLEL = 6  # 600 codes in one round trip; the pacer keeps any loop under the rate limit
DEFAULT_RETRY = RetryPolicy()  # 5 attempts, 0.25 s doubling to at most 8 s, jittered; real time


def set_default_retry(policy: RetryPolicy) -> RetryPolicy:
    """The policy of every client made from now on without its own (as keyring's set_keyring);
    returns the one it replaces. Tests use it to skip the waits of the service's clients."""
    global DEFAULT_RETRY
    previous, DEFAULT_RETRY = DEFAULT_RETRY, policy
    return previous


READ_CHUNK = 64 * 1024  # decoded bytes per read: also what one read may inflate to


def build_batches(codes: list[str], size: int = MAX_CODES_PER_REQUEST) -> list[list[str]]:
    """Deduplicated codes, in order, cut into requests of at most *size*."""
    unique = list(dict.fromkeys(codes))
    return [unique[i : i + size] for i in range(0, len(unique), size)]


@dataclass
class FetchResult:
    """What one fetch brought back, code by code."""

    records: dict[str, dict] = field(default_factory=dict)  # typed records
    raw: dict[str, dict] = field(default_factory=dict)  # as received (token stripped)
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


def _in(wait: float | None) -> str:
    """When to try again, in the words of the server's Retry-After (a minute when it gave none)."""
    if wait is None:
        return "in a minute"
    seconds = max(1, math.ceil(wait))
    if seconds < 120:
        return f"in {seconds} s"
    if seconds < 2 * 3600:
        return f"in {math.ceil(seconds / 60)} min"
    return f"after {time.strftime('%H:%M', time.localtime(time.time() + seconds))}"


def _tls_reason(exc: BaseException) -> str:
    """OpenSSL's own words for a failed verification ("self-signed certificate",
    "certificate has expired"), dug out of the chain of wrapped exceptions."""
    import ssl

    stack, seen = [exc], set()
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ssl.SSLCertVerificationError):
            return e.verify_message or ""
        stack.extend([getattr(e, "reason", None), e.__cause__, e.__context__])
        stack.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
    return ""


def _looks_like_token_problem(message: str) -> bool:
    return "token" in message.lower()


class MMAHClient:
    """Fetches mm_ah records for five-digit codes. Thread-safe for concurrent batches."""

    def __init__(self, token: Token, settings: Settings | None = None, session=None,
                 retry: RetryPolicy | None = None, pacer: Pacer | None = None):
        if not isinstance(token, Token):
            token = Token(token)
        self._token = token
        self.settings = settings or Settings()
        # checked again here, where the token leaves: Settings may be built by hand
        self.url = check_base_url(self.settings.base_url) + PATH
        if redact(self.url, token) != self.url:  # it would be in every log line and error that names the URL
            raise ConfigError("LIXINGER_BASE_URL holds your token (or part of it); the token goes in the "
                              "keyring (`lx-addin token set`) or LIXINGER_TOKEN, never in the URL")
        self.host = host_of(self.url)
        self.retry = retry or DEFAULT_RETRY
        # one pacer per (service, token) for the whole process, unless one is given
        self.pacer = pacer or shared_pacer(self.url, token.reveal(), getattr(self.settings, "rate", 0))
        proxy = getattr(self.settings, "proxy", None)
        if proxy is not None and not isinstance(proxy, ProxyURL):
            proxy = check_proxy(str(proxy))
        self.proxy = proxy
        self._secrets = (token, *secrets_of(proxy))
        self._token_grams: list[list[bytes]] | None = None  # runs of the token (see _holds_no_secret)
        self._token_blocks: list[bytes] = []
        if session is None:
            session = requests.Session()
            adapter = DeadlineAdapter()  # the budget bounds the wait for the headers too
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self.session = session
        self.session.headers.setdefault("User-Agent", f"xl_addin/{__version__}")
        if is_loopback_host(self.host):
            # this machine (the sandbox): never through a proxy from the environment
            self.session.trust_env = False
        if proxy is not None:
            # named for this service: used on top of (before) the environment's, loopback too
            self.session.proxies.update(proxies_for(proxy))
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.requests_sent = 0

    def __repr__(self) -> str:
        via = f", proxy={str(self.proxy)!r}" if self.proxy is not None else ""
        return f"MMAHClient(url={self.url!r}, token=<redacted>{via})"

    def _shown(self, text) -> str:
        return shown(text, *self._secrets)

    def _proxy_in_use(self) -> str:
        if self.proxy is not None:
            return str(self.proxy)
        found = requests.utils.get_environ_proxies(self.url) if self.session.trust_env else {}
        return redact_proxy(found.get("https") or found.get("http") or found.get("all") or "(unknown)")

    def _budget_spent(self) -> RequestTimeoutError:
        error = RequestTimeoutError(
            f"{self.host} timed out: the answer did not arrive within the time budget of "
            f"{self.settings.budget:g} s (LIXINGER_BUDGET)"
        )
        error.budget_spent = True
        return error

    # -- the one function that does I/O -------------------------------------------------
    def _post_once(self, codes: list[str], deadline: float) -> list[dict]:
        with self.pacer.slot():
            return self._post_paced(codes, deadline)

    def _post_paced(self, codes: list[str], deadline: float) -> list[dict]:
        clock = self.retry.clock
        remaining = deadline - clock()
        if remaining <= 0:
            raise _Retry(self._budget_spent())
        timeout = (
            min(self.settings.connect_timeout, remaining),
            min(self.settings.timeout, remaining),
        )
        body = {"token": self._token.reveal(), "stockCodes": codes}
        started = time.monotonic()
        with self._lock:
            self.requests_sent += 1
        try:
            # the deadline on time.monotonic (the policy's clock may be a test's)
            with within(time.monotonic() + (deadline - clock())):
                response = self.session.post(
                    self.url, json=body, timeout=timeout, stream=True, allow_redirects=False
                )
        except requests.exceptions.ProxyError:
            raise _Retry(ServiceUnavailableError(
                f"cannot reach {self.host} through the proxy {redact_proxy(self._proxy_in_use())} (LIXINGER_PROXY "
                "or the environment's HTTPS_PROXY): the proxy refused or could not be reached"
            )) from None
        except requests.exceptions.Timeout:
            if clock() >= deadline - 0.01:
                raise _Retry(self._budget_spent()) from None
            raise _Retry(RequestTimeoutError(f"{self.host} timed out: no answer within {timeout[1]:g} s")) from None
        except requests.exceptions.SSLError as exc:
            why = self._shown(_tls_reason(exc))
            raise ServiceUnavailableError(
                f"cannot reach {self.host} securely: its TLS certificate could not be verified"
                + (f" ({why})" if why else "")
            ) from None
        except requests.exceptions.ConnectionError:
            if clock() >= deadline - 0.01:  # cut at the deadline while awaiting the headers
                raise _Retry(self._budget_spent()) from None
            raise _Retry(ServiceUnavailableError(f"cannot reach {self.host} (connection failed)")) from None
        except requests.exceptions.InvalidSchema as exc:
            if "socks" in str(exc).lower():
                raise ServiceUnavailableError(
                    "a SOCKS proxy needs PySocks: pip install 'xl-addin[socks]' (or 'requests[socks]')"
                ) from None
            raise ServiceUnavailableError(f"the request to {self.host} could not be sent") from None
        except requests.exceptions.RequestException:
            raise ServiceUnavailableError(f"the request to {self.host} could not be sent") from None
        complete = False
        try:
            status = response.status_code
            if 300 <= status < 400:
                raise self._redirect(response)
            content = self._read_body(response, deadline)
            complete = True
        finally:
            if complete:
                response.raw.release_conn()  # read to the end: the connection can serve the next request
            else:
                response.close()  # cut short: never reuse it
        elapsed = time.monotonic() - started
        log.info("POST %s codes=%d -> %s in %.3fs (%d bytes)", self.url, len(codes), status, elapsed, len(content))
        payload = self._judge(status, response.headers, content)
        try:
            records = check_answer(payload, codes)
        except BadResponseError as exc:
            raise _Retry(BadResponseError(f"{self.host} sent a bad answer: {exc}")) from None
        if self._holds_no_secret(content):
            return records  # nothing to strip: no copy walked
        return redact_deep(records, self._token)

    def _holds_no_secret(self, content: bytes) -> bool:
        """No escape (which could spell the token in other bytes) and no run of the token in *content*.

        Every run of 8 of the token's characters holds one of its aligned 4-character blocks
        whole, so a content with none of those blocks (a few short searches) holds no run."""
        if b"\\" in content:
            return False
        if self._token_grams is None:
            raw = self._token.reveal().encode("utf-8")
            if len(raw) <= RUN:
                self._token_blocks, self._token_grams = [], [[raw]]
            else:  # per aligned block, the runs that hold it whole: only those can be in content with it
                starts = range(0, len(raw) - 3, 4)
                self._token_blocks = [raw[b : b + 4] for b in starts]
                self._token_grams = [[raw[i : i + RUN] for i in range(max(0, b + 4 - RUN), min(b, len(raw) - RUN) + 1)]
                                     for b in starts]
        if not self._token_blocks:
            return not any(g in content for g in self._token_grams[0])
        return not any(g in content for block, grams in zip(self._token_blocks, self._token_grams)
                       if block in content for g in grams)

    def _redirect(self, response: requests.Response) -> RedirectError:
        location = response.headers.get("Location")
        target = self._shown(urljoin(self.url, location)) if location else "nowhere (no Location)"
        return RedirectError(
            f"{self.host} answered HTTP {response.status_code}, redirecting to {target}; "
            "not followed, so the token was not sent there. If the service has moved, "
            "set LIXINGER_BASE_URL to its new address"
        )

    def _read_body(self, response: requests.Response, deadline: float) -> bytes:
        """The decoded body, read as it comes, stopped at the deadline or the size limit."""
        raw = response.raw
        limit = self.settings.max_answer_bytes
        read = getattr(raw, "read1", None) or raw.read
        sock = getattr(getattr(raw, "connection", None), "sock", None)
        parts: list[bytes] = []
        size = 0
        clock = self.retry.clock
        while True:
            remaining = deadline - clock()
            if remaining <= 0:
                raise _Retry(self._budget_spent())
            wait = min(self.settings.timeout, remaining)
            if sock is not None:
                sock.settimeout(wait)  # no single read may outlast the budget
            try:
                chunk = read(READ_CHUNK, decode_content=True)
            except (ReadTimeoutError, TimeoutError):
                if clock() >= deadline - 0.01:
                    raise _Retry(self._budget_spent()) from None
                raise _Retry(RequestTimeoutError(
                    f"{self.host} timed out: the answer stopped arriving for {wait:g} s"
                )) from None
            except DecodeError:
                raise _Retry(BadResponseError(
                    f"{self.host} sent a compressed answer that could not be decompressed"
                )) from None
            except (ProtocolError, OSError, requests.exceptions.RequestException):
                raise _Retry(ServiceUnavailableError(
                    f"the connection to {self.host} was cut in the middle of the answer"
                )) from None
            if not chunk:
                return b"".join(parts)
            size += len(chunk)
            if size > limit:
                raise AnswerTooLargeError(
                    f"{self.host} sent an answer larger than the limit of {limit:,} bytes "
                    "(LIXINGER_MAX_ANSWER_BYTES); stopped reading it"
                )
            parts.append(chunk)

    def _judge(self, status: int, headers, content: bytes) -> dict:
        """The payload of a successful answer; anything else raised as the error it is."""
        try:
            payload = json.loads(content) if content else None
        except ValueError:
            payload = None
        reason = self._shown(reason_of(payload) if payload is not None else content)
        if status == 407:
            raise ServiceUnavailableError(
                f"the proxy {self._proxy_in_use()} refused its credentials (HTTP 407); "
                "check the user and password in LIXINGER_PROXY"
            )
        if status == 401:
            raise TokenRejectedError(reason)
        if status == 403:
            if _looks_like_token_problem(reason):
                raise TokenRejectedError(reason)
            raise ApiError(
                f"Lixinger refused the request (HTTP 403): {reason or 'no reason given'}",
                code=payload.get("code") if isinstance(payload, dict) else None,
                status=status,
            )
        if status == 429:
            wait = _retry_after(headers.get("Retry-After"))
            raise _Retry(
                RateLimitedError(f"{self.host} says too many requests (HTTP 429); try again {_in(wait)}"),
                wait,
            )
        if status >= 500:
            raise _Retry(
                ServiceUnavailableError(f"{self.host} failed (HTTP {status}{': ' + reason if reason else ''})"),
                _retry_after(headers.get("Retry-After")),
            )
        if payload is None:
            kind = self._shown(headers.get("Content-Type") or "no content type")
            raise _Retry(BadResponseError(
                f"{self.host} answered HTTP {status} with something that is not JSON ({kind})"
            ))
        api_code = payload.get("code") if isinstance(payload, dict) else None
        if status != 200 or type(api_code) is not int or api_code != 1:  # JSON true == 1 in Python: not success
            if not isinstance(payload, dict) or "code" not in payload:
                raise _Retry(BadResponseError(f"{self.host} answered HTTP {status} without a result code"))
            if not isinstance(api_code, int) or isinstance(api_code, bool):
                raise _Retry(BadResponseError(
                    f"{self.host} answered HTTP {status} with a result code that is not a number ({self._shown(repr(api_code))})"
                ))
            if _looks_like_token_problem(reason):
                raise TokenRejectedError(reason)
            raise ApiError(
                f"Lixinger refused the request: {reason or 'no reason given'}"
                + (f" (HTTP {status})" if status != 200 else ""),
                code=api_code,
                status=status,
            )
        return payload

    def _post(self, codes: list[str], deadline: float) -> list[dict]:
        """POST with retries on connection errors, timeouts, 5xx, 429 and bad answers, within the budget."""
        policy = self.retry
        attempt = 0
        earlier: LixingerError | None = None  # what went wrong before the budget ran out
        while True:
            attempt += 1
            try:
                return self._post_once(codes, deadline)
            except _Retry as retry:
                remaining = deadline - policy.clock()
                wait = policy.backoff(attempt, retry.wait)
                error = retry.error
                if getattr(error, "budget_spent", False) and earlier is not None:
                    error = earlier  # the cause, not the clock that ran out while retrying it
                elif not getattr(error, "budget_spent", False):
                    earlier = error
                if attempt >= policy.attempts or wait >= remaining:
                    raise type(error)(f"{error} (gave up after {attempt} attempt{'s' * (attempt > 1)})") from None
                log.info("retrying %s in %.2fs after: %s", self.host, wait, retry.error)
                policy.sleep(wait)

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
        deadline = self.retry.clock() + self.settings.budget

        def run(batch):
            # parsed here, in the batch's own thread, while the other batches are on the wire
            try:
                return batch, index_records(self._post(batch, deadline), batch), None
            except TokenRejectedError:
                raise
            except LixingerError as exc:
                return batch, None, exc

        if len(batches) == 1:
            outcomes = [run(batches[0])]
        else:
            outcomes = list(self._executor().map(run, batches))
        for batch, indexed, error in outcomes:
            if error is not None:
                for code in batch:
                    result.errors[code] = error
                continue
            raw, records, errors = indexed
            result.raw.update(raw)
            result.records.update(records)
            result.errors.update(errors)
            result.absent.extend(c for c in batch if c not in records and c not in errors)
        result.requests = self.requests_sent - before
        return result

    def _executor(self) -> ThreadPoolExecutor:
        """The client's threads, made once and kept: a cold formula does not wait for new ones."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=MAX_PARALLEL, thread_name_prefix="lx-fetch")
            return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
        self.session.close()
