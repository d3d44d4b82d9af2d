"""The sandbox: a real HTTP server on loopback that speaks the mm_ah protocol.

    with Sandbox() as sb:                      # port 0: any free port
        sb.inject("429", times=1, retry_after=1)
        MMAH(Settings(base_url=sb.url), token=sb.token).fetch(["00700"])

It validates like the real service (a token; 1 to 100 string codes) and can be
told to misbehave: latency, 5xx, 429 with Retry-After, a garbage body, a dropped
connection, an API error, a malformed record, a slow answer; and, as an adversary
would: a redirect elsewhere, an answer trickled a byte at a time, a connection cut
in the middle of the body, a stall after the headers, headers trickled a byte at a time, records that are not records,
a code sent as a number, the token echoed back, a gzip bomb, a 403, an error in an
``error`` field. :func:`parse_fault` reads the ``--fault`` spelling of each.

Like Lixinger, it can hold a rate limit: ``Sandbox(rate_limit="600/min")`` (``--rate-limit``)
answers 429 with ``Retry-After`` to any request past N in the sliding window (counted when
it arrives; a refused request does not count). Its clock is injectable, so a test can run
a minute of requests at 120/min on a :class:`~xl_addin.pacer.ManualClock` in no time.
"""

from __future__ import annotations

import json
import math
import re
import zlib
import secrets
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .data import Dataset

PATHS = ("/api/hk/company/hot/mm_ah", "/hk/company/hot/mm_ah")
FAULT_KINDS = (
    "500", "502", "503", "429", "garbage", "drop", "api_error", "malformed", "slow", "401",
    "403", "error-field", "redirect", "trickle", "drop-mid-body", "stall", "bad-record",
    "numeric-code", "echo-token", "gzip-bomb", "header-trickle",
)
_CODE = re.compile(r"^\d{5}$")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*(min|m|s|sec|h)?\s*$", re.I)


def parse_rate(spec: str) -> tuple[int, float]:
    """``N/min`` (or ``N/s``, ``N/10s``, ``N/2min``) -> (N, window in seconds)."""
    m = _RATE.match(spec or "")
    if not m or (not m.group(2) and not m.group(3)):
        raise ValueError(f"rate limit {spec!r}: expected N/min, e.g. 600/min (or N/s, N/10s)")
    count, amount, unit = int(m.group(1)), float(m.group(2) or 1), (m.group(3) or "s").lower()
    window = amount * {"min": 60, "m": 60, "s": 1, "sec": 1, "h": 3600}[unit]
    if count < 1 or window <= 0:
        raise ValueError(f"rate limit {spec!r}: needs at least 1 request in a window above 0")
    return count, window


@dataclass
class Fault:
    kind: str
    times: int | None = 1  # None: every request until cleared
    params: dict = field(default_factory=dict)


def parse_fault(spec: str) -> tuple[str, int | None, dict]:
    """``KIND[:N]`` (the next N requests; every request without N) -> (kind, times, params).

    ``redirect[:STATUS]:URL`` answers every request with a redirect (302, 307 or 308;
    307 unless told) to URL: ``redirect:http://127.0.0.1:9999/api``, ``redirect:308:https://elsewhere/``.
    """
    kind, _, rest = spec.strip().partition(":")
    if kind == "redirect":
        status, _, url = rest.partition(":")
        if not (status.isdigit() and len(status) == 3):
            status, url = "307", rest
        if not url:
            raise ValueError("redirect needs a target: redirect[:STATUS]:URL")
        return kind, None, {"url": url, "status": int(status)}
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
    if rest and not rest.isdigit():
        raise ValueError(f"fault {spec!r}: the count after ':' must be a whole number")
    return kind, int(rest) if rest else None, {}


_BOMBS: dict[int, bytes] = {}


def _gzip_bomb(size: int) -> bytes:
    """A gzip body that inflates to *size* bytes: a JSON answer padded with spaces (built once per size)."""
    if size not in _BOMBS:
        head, tail = b'{"code": 1, "message": "success", "data": [', b"]}"
        pad = max(0, size - len(head) - len(tail))
        z = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip container
        parts = [z.compress(head)]
        block = b" " * (1 << 20)
        while pad > 0:
            n = min(pad, len(block))
            parts.append(z.compress(block[:n]))
            pad -= n
        parts.append(z.compress(tail))
        parts.append(z.flush())
        _BOMBS[size] = b"".join(parts)
    return _BOMBS[size]


@dataclass
class Seen:
    """One request the sandbox received (never the token itself: only whether one came)."""

    codes: list
    status: int
    fault: str | None
    at: float
    method: str = "POST"
    with_token: bool = False  # the body carried a "token" (any token)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox: "Sandbox"

    def handle_error(self, request, client_address):
        # a client that hangs up on a fault (as it should on a gzip bomb) is no news
        if self.sandbox.quiet and isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # the headers and the body go out in two writes: with Nagle's algorithm on, the body waits for the
    # client's delayed ACK of the headers (40 ms on Linux) on every request after a connection's first,
    # which a real web server (one write, or TCP_NODELAY) does not do
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # quiet unless asked; never logs bodies
        if not self.server.sandbox.quiet:
            super().log_message(fmt, *args)

    def _send(self, status: int, payload, headers: dict | None = None, raw: bytes | None = None):
        body = raw if raw is not None else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8" if raw is None else "text/html")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    _with_token = False

    def do_GET(self):
        self._answer(self.server.sandbox, 405, {"code": 0, "message": "use POST"}, [])

    def do_POST(self):
        sb = self.server.sandbox
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?")[0].rstrip("/") not in PATHS:
            return self._answer(sb, 404, {"code": 0, "message": f"no such API: {self.path}"}, [])
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return self._answer(sb, 400, {"code": 0, "message": "body is not JSON"}, [])
        codes = body.get("stockCodes") if isinstance(body, dict) else None
        shown = codes if isinstance(codes, list) else []
        self._with_token = isinstance(body, dict) and bool(body.get("token"))
        over = sb._over_rate()
        if over is not None:
            return self._answer(sb, 429, {"code": 0, "message": "too many requests: rate limit exceeded"}, shown,
                                "rate-limit", {"Retry-After": str(max(1, math.ceil(over)))})
        if sb.latency:
            time.sleep(sb.latency)
        fault = sb._take_fault(shown)
        if fault is not None:
            return self._fault(sb, fault, shown, body)
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            return self._answer(sb, 400, {"code": 0, "message": '"token" is required'}, shown)
        if not secrets.compare_digest(token.encode(), sb.token.encode()):
            return self._answer(sb, 401, {"code": 0, "message": "Illegal token: the token is invalid or expired"}, shown)
        problem = _validate_codes(codes)
        if problem:
            return self._answer(sb, 400, {"code": 0, "message": problem}, shown)
        data = [r for r in (sb.dataset.record(c) for c in dict.fromkeys(codes)) if r is not None]
        self._answer(sb, 200, {"code": 1, "message": "success", "data": data}, shown)

    def _answer(self, sb, status, payload, codes, fault=None, headers=None, raw=None):
        self._seen(sb, codes, status, fault)
        self._send(status, payload, headers, raw)

    def _seen(self, sb, codes, status, fault):
        sb._log(Seen(list(codes), status, fault, time.time(), self.command, self._with_token))

    def _records(self, sb, codes) -> list:
        return [r for r in (sb.dataset.record(c) for c in codes if isinstance(c, str)) if r]

    def _headers_then(self, sb, codes, kind, body: bytes, extra: dict | None = None):
        """Status line and headers (Content-Length of the whole *body*) for the faults that
        misbehave while sending the body."""
        self._seen(sb, codes, 200, kind)
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.flush()

    def _hang_up(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _fault(self, sb: "Sandbox", fault: Fault, codes, body=None):
        kind = fault.kind
        success = {"code": 1, "message": "success"}
        if kind == "redirect":
            target = fault.params.get("url", "http://127.0.0.1:9/api")
            status = int(fault.params.get("status", 307))
            if fault.params.get("append_path", True):
                target = target.rstrip("/") + "/hk/company/hot/mm_ah"
            return self._answer(sb, status, {"code": 0, "message": "moved"}, codes, kind, {"Location": target})
        if kind == "403":
            message = fault.params.get("message", "this API is not included in your plan")
            return self._answer(sb, 403, {"code": 0, "message": message}, codes, kind)
        if kind == "error-field":
            message = fault.params.get("message", "stockCodes: too many codes")
            return self._answer(sb, 200, {"code": 0, "error": {"message": message}}, codes, kind)
        if kind == "bad-record":
            data = fault.params.get("data", [1, "x", None])
            return self._answer(sb, 200, {**success, "data": data}, codes, kind)
        if kind == "numeric-code":
            data = self._records(sb, codes)
            for r in data:
                r["stockCode"] = int(r["stockCode"])
            return self._answer(sb, 200, {**success, "data": data}, codes, kind)
        if kind == "echo-token":
            token = body.get("token") if isinstance(body, dict) else None
            data = self._records(sb, codes)
            for r in data:
                r["remark"] = f"requested with token {token}"
            return self._answer(sb, 200, {**success, "data": data, "token": token}, codes, kind)
        if kind == "drop-mid-body" and fault.params.get("chunked"):  # the same, in chunked encoding
            raw = json.dumps({**success, "data": self._records(sb, codes)}).encode("utf-8")
            self._seen(sb, codes, 200, kind)
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            half = raw[: len(raw) // 2]
            try:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(half), half))
                self.wfile.flush()
            except OSError:
                pass
            self._hang_up()
            return None
        if kind == "header-trickle":  # the status line and headers a byte at a time, never ending them
            self._seen(sb, codes, 200, kind)
            interval = float(fault.params.get("interval", 0.05))
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: "
            try:
                for i in range(len(head) + int(fault.params.get("bytes", 2000))):
                    self.wfile.write(head[i : i + 1] or b"a")
                    self.wfile.flush()
                    time.sleep(interval)
            except OSError:  # the client gave up: as it should
                pass
            self.close_connection = True
            return None
        if kind in ("trickle", "drop-mid-body", "stall"):
            raw = json.dumps({**success, "data": self._records(sb, codes)}).encode("utf-8")
            self._headers_then(sb, codes, kind, raw)
            try:
                if kind == "trickle":  # all of it, a few bytes at a time
                    step = max(1, int(fault.params.get("bytes", 1)))
                    interval = float(fault.params.get("interval", 0.02))
                    for i in range(0, len(raw), step):
                        self.wfile.write(raw[i : i + step])
                        self.wfile.flush()
                        time.sleep(interval)
                elif kind == "stall":  # headers, then nothing for a while, then the body
                    time.sleep(float(fault.params.get("seconds", 5)))
                    self.wfile.write(raw)
                else:  # half the body, then hang up
                    self.wfile.write(raw[: len(raw) // 2])
                    self.wfile.flush()
                    self._hang_up()
            except OSError:  # the client gave up: fine
                self.close_connection = True
            return None
        if kind == "gzip-bomb":
            size = int(fault.params.get("size", 1 << 30))
            raw = _gzip_bomb(size)
            self._headers_then(sb, codes, kind, raw, {"Content-Encoding": "gzip"})
            try:
                self.wfile.write(raw)
            except OSError:
                self.close_connection = True
            return None
        if kind in ("500", "502", "503"):
            message = fault.params.get("message", "internal error")
            after = fault.params.get("retry_after")  # as an overloaded service may say when to come back
            headers = {"Retry-After": str(after)} if after is not None else None
            return self._answer(sb, int(kind), {"code": 0, "message": message}, codes, kind, headers)
        if kind == "401":
            message = fault.params.get("message", "Illegal token")
            return self._answer(sb, 401, {"code": 0, "message": message}, codes, kind)
        if kind == "429":
            wait = fault.params.get("retry_after", 1)  # None: no Retry-After header at all
            headers = {"Retry-After": str(wait)} if wait is not None else None
            return self._answer(sb, 429, {"code": 0, "message": "too many requests"}, codes, kind, headers)
        if kind == "garbage":
            return self._answer(sb, 200, None, codes, kind, raw=b"<html><body>502 Bad Gateway</body></html>")
        if kind == "api_error":
            message = fault.params.get("message", "service is under maintenance")
            return self._answer(sb, 200, {"code": fault.params.get("code", 0), "message": message}, codes, kind)
        if kind == "drop":
            self._seen(sb, codes, 0, kind)
            self._hang_up()
            return None
        if kind == "slow":
            time.sleep(fault.params.get("seconds", 5))
            data = [r for r in (sb.dataset.record(c) for c in codes if isinstance(c, str)) if r]
            return self._answer(sb, 200, {"code": 1, "message": "success", "data": data}, codes, kind)
        if kind == "malformed":
            data = [r for r in (sb.dataset.record(c) for c in codes if isinstance(c, str)) if r]
            bad = fault.params.get("code") or (data[0]["stockCode"] if data else None)
            for r in data:
                if r["stockCode"] == bad:
                    r["mm_sh"] = "n/a"
            return self._answer(sb, 200, {"code": 1, "message": "success", "data": data}, codes, kind)
        raise ValueError(kind)


def _validate_codes(codes) -> str | None:
    if not isinstance(codes, list):
        return '"stockCodes" must be an array'
    if not 1 <= len(codes) <= 100:
        return f'"stockCodes" must contain 1 to 100 items, got {len(codes)}'
    for c in codes:
        if not isinstance(c, str):
            return f'"stockCodes" items must be strings, got {c!r}'
        if not _CODE.match(c):
            return f'"stockCodes" item {c!r} is not a five-digit code'
    return None


class Sandbox:
    """A running sandbox server; a context manager. ``url`` is the base URL to use."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", token: str | None = None,
                 latency: float = 0.0, dataset: Dataset | None = None, quiet: bool = True, as_of=None,
                 tls: tuple[str, str] | None = None, rate_limit: str | tuple[int, float] | None = None,
                 clock=time.monotonic):
        self.tls = tls  # (certificate file, key file): serve https, e.g. with a certificate nobody trusts
        self.host = host
        self.port = port
        self.token = token or "sbx-" + secrets.token_hex(16)
        self.latency = latency
        self.dataset = dataset or Dataset()
        if as_of is not None:
            self.dataset.as_of = as_of
        self.quiet = quiet
        self.seen: list[Seen] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.rate_limit = parse_rate(rate_limit) if isinstance(rate_limit, str) else rate_limit
        self.clock = clock
        self._arrivals: deque[float] = deque()  # accepted requests in the rate window

    def __repr__(self) -> str:
        return f"Sandbox(url={self.url!r}, token=<redacted>)"

    @property
    def as_of(self):
        """The date the sandbox answers for; set it to move the running sandbox in time."""
        return self.dataset.as_of

    @as_of.setter
    def as_of(self, day) -> None:
        self.dataset.as_of = day

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/api"

    def _make_server(self) -> _Server:
        server = _Server((self.host, self.port), _Handler)
        server.sandbox = self
        if self.tls:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        return server

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> "Sandbox":
        self._server = self._make_server()
        self._thread = threading.Thread(target=self._server.serve_forever, name="lx-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def serve_forever(self) -> None:
        self._server = self._make_server()
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- fault injection -----------------------------------------------------------------
    def inject(self, kind: str, times: int | None = 1, **params) -> None:
        """Misbehave on the next *times* requests (None: until :meth:`clear_faults`).

        ``only_code="00700"`` limits the fault to requests that ask for that code.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._faults.append(Fault(kind, times, params))

    def inject_spec(self, spec: str) -> None:
        """A fault as ``lx-addin sandbox --fault`` spells it (see :func:`parse_fault`)."""
        kind, times, params = parse_fault(spec)
        self.inject(kind, times=times, **params)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, codes) -> Fault | None:
        """The first pending fault that applies to a request for *codes*."""
        with self._lock:
            for fault in self._faults:
                only = fault.params.get("only_code")
                if only is not None and only not in codes:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
            return None

    def _over_rate(self) -> float | None:
        """None when this request is within the rate limit (and counts it); else the seconds
        until the window has room again."""
        if not self.rate_limit:
            return None
        count, window = self.rate_limit
        with self._lock:
            now = self.clock()
            while self._arrivals and self._arrivals[0] <= now - window:
                self._arrivals.popleft()
            if len(self._arrivals) >= count:
                return self._arrivals[0] + window - now
            self._arrivals.append(now)
            return None

    @property
    def refused_for_rate(self) -> int:
        return sum(1 for s in self.seen if s.fault == "rate-limit")

    def _log(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    @property
    def request_count(self) -> int:
        return len(self.seen)

    def reset(self) -> None:
        with self._lock:
            self.seen.clear()
            self._faults.clear()


def why_port_unusable(port: int, host: str = "127.0.0.1") -> str | None:
    """Why the sandbox could not listen on *port* (not a port number, taken, not allowed), or None."""
    import socket

    if not 0 < port < 65536:
        return f"{port} is not a port number; use 1 to 65535, e.g. 8765"
    probe = socket.socket()
    try:
        probe.bind((host, port))
    except OSError as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror}"
    finally:
        probe.close()
    return None
