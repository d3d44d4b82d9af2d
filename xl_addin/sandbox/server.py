"""The sandbox: a real HTTP server on loopback that speaks the mm_ah protocol.

    with Sandbox() as sb:                      # port 0: any free port
        sb.inject("429", times=1, retry_after=1)
        MMAH(Settings(base_url=sb.url), token=sb.token).fetch(["00700"])

It validates like the real service (a token; 1 to 100 string codes) and can be
told to misbehave: latency, 5xx, 429 with Retry-After, a garbage body, a dropped
connection, an API error, a malformed record, a slow answer.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .data import Dataset

PATHS = ("/api/hk/company/hot/mm_ah", "/hk/company/hot/mm_ah")
FAULT_KINDS = ("500", "502", "503", "429", "garbage", "drop", "api_error", "malformed", "slow", "401")
_CODE = re.compile(r"^\d{5}$")


@dataclass
class Fault:
    kind: str
    times: int | None = 1  # None: every request until cleared
    params: dict = field(default_factory=dict)


@dataclass
class Seen:
    """One request the sandbox received (never the token)."""

    codes: list
    status: int
    fault: str | None
    at: float


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox: "Sandbox"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

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

    def do_GET(self):
        self._send(405, {"code": 0, "message": "use POST"})

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
        if sb.latency:
            time.sleep(sb.latency)
        fault = sb._take_fault(shown)
        if fault is not None:
            return self._fault(sb, fault, shown)
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
        sb._log(Seen(list(codes), status, fault, time.time()))
        self._send(status, payload, headers, raw)

    def _fault(self, sb: "Sandbox", fault: Fault, codes):
        kind = fault.kind
        if kind in ("500", "502", "503"):
            return self._answer(sb, int(kind), {"code": 0, "message": "internal error"}, codes, kind)
        if kind == "401":
            return self._answer(sb, 401, {"code": 0, "message": "Illegal token"}, codes, kind)
        if kind == "429":
            wait = fault.params.get("retry_after", 1)
            return self._answer(
                sb, 429, {"code": 0, "message": "too many requests"}, codes, kind, {"Retry-After": str(wait)}
            )
        if kind == "garbage":
            return self._answer(sb, 200, None, codes, kind, raw=b"<html><body>502 Bad Gateway</body></html>")
        if kind == "api_error":
            message = fault.params.get("message", "service is under maintenance")
            return self._answer(sb, 200, {"code": 0, "message": message}, codes, kind)
        if kind == "drop":
            sb._log(Seen(list(codes), 0, kind, time.time()))
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
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
                 latency: float = 0.0, dataset: Dataset | None = None, quiet: bool = True, as_of=None):
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
        return f"http://{self.host}:{self.port}/api"

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> "Sandbox":
        self._server = _Server((self.host, self.port), _Handler)
        self._server.sandbox = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="lx-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def serve_forever(self) -> None:
        self._server = _Server((self.host, self.port), _Handler)
        self._server.sandbox = self
        self.port = self._server.server_address[1]
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
