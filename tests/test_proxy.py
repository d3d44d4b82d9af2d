"""LIXINGER_PROXY reaches a real proxy on 127.0.0.1 (an HTTP one and a SOCKS5 one, written
here), and the proxy's password shows nowhere."""

from __future__ import annotations

import base64
import http.client
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from xl_addin.client import MMAHClient
from xl_addin.config import Settings, info_rows
from xl_addin.credentials import Token
from xl_addin.exceptions import ConfigError, ServiceUnavailableError

USER, PASSWORD = "analyst", "pr0xy-s3cret-pw"


class _ProxyHandler(BaseHTTPRequestHandler):
    """A forward proxy for plain http: absolute-URI requests, Basic proxy credentials."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        server = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Proxy-Authorization", "")
        server.seen.append((self.path, auth))
        if auth != "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode():
            self.send_response(407)
            self.send_header("Proxy-Authenticate", 'Basic realm="corp"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        target = http.client.urlsplit(self.path)
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        upstream.request("POST", target.path, body=body, headers={"Content-Type": "application/json"})
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.getheader("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()


@pytest.fixture
def http_proxy():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
    server.daemon_threads = True
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


class _Socks5:
    """A SOCKS5 server (no authentication, CONNECT only) that relays bytes both ways."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connects: list[tuple[str, int]] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    @staticmethod
    def _read(conn, n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError
            data += chunk
        return data

    def _one(self, conn):
        try:
            _, n = self._read(conn, 2)
            self._read(conn, n)
            conn.sendall(b"\x05\x00")  # no authentication
            _, cmd, _, atyp = self._read(conn, 4)
            if atyp == 1:
                host = socket.inet_ntoa(self._read(conn, 4))
            else:
                host = self._read(conn, self._read(conn, 1)[0]).decode()
            (port,) = struct.unpack("!H", self._read(conn, 2))
            self.connects.append((host, port))
            upstream = socket.create_connection((host, port), timeout=10)
            conn.sendall(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", 0))
        except (OSError, ConnectionError):
            conn.close()
            return

        def pipe(a, b):
            try:
                while chunk := a.recv(65536):
                    b.sendall(chunk)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()
        pipe(conn, upstream)

    def close(self):
        self.sock.close()


def _proxied(sandbox, tmp_path, proxy):
    settings = Settings.load({"LIXINGER_BASE_URL": sandbox.url, "LIXINGER_PROXY": proxy,
                              "XL_ADDIN_CACHE_DIR": str(tmp_path)}, budget=5.0)
    return settings, MMAHClient(Token(sandbox.token), settings)


def test_an_http_proxy_with_credentials_carries_every_request(sandbox, http_proxy, tmp_path, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the environment's: not used for this machine
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:{http_proxy.server_port}"
    settings, client = _proxied(sandbox, tmp_path, url)
    result = client.fetch(["00700", "00005"])
    assert set(result.records) == {"00700", "00005"}
    assert len(http_proxy.seen) == 1 and http_proxy.seen[0][0] == sandbox.url + "/hk/company/hot/mm_ah"
    shown = repr(settings) + repr(client) + str(info_rows({"LIXINGER_PROXY": url}))
    assert PASSWORD not in shown and f"***@127.0.0.1:{http_proxy.server_port}" in shown
    client.close()


def test_a_proxy_refusing_the_credentials_or_down_is_one_line_without_them(sandbox, http_proxy, tmp_path):
    _, client = _proxied(sandbox, tmp_path, f"http://{USER}:wrong-{PASSWORD}@127.0.0.1:{http_proxy.server_port}")
    err = client.fetch(["00700"]).errors["00700"]
    assert "HTTP 407" in str(err) and "refused its credentials" in str(err) and PASSWORD not in str(err)
    assert sandbox.request_count == 0 and len(http_proxy.seen) == 1  # not retried: a wrong password stays wrong
    client.close()
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    _, client = _proxied(sandbox, tmp_path, f"http://{USER}:{PASSWORD}@127.0.0.1:{port}")
    err = client.fetch(["00700"]).errors["00700"]
    assert isinstance(err, ServiceUnavailableError) and "through the proxy" in str(err)
    assert f"http://***@127.0.0.1:{port}" in str(err) and PASSWORD not in str(err) and USER not in str(err)
    client.close()


def test_a_socks5_proxy_carries_the_requests(sandbox, tmp_path):
    socks = _Socks5()
    try:
        _, client = _proxied(sandbox, tmp_path, f"socks5://127.0.0.1:{socks.port}")
        assert set(client.fetch(["00700", "00005"]).records) == {"00700", "00005"}
        assert socks.connects == [("127.0.0.1", sandbox.port)]
        client.close()
    finally:
        socks.close()


def test_a_bad_proxy_setting_is_one_line_that_hides_the_password():
    with pytest.raises(ConfigError) as caught:
        Settings.load({"LIXINGER_PROXY": f"ftp://{USER}:{PASSWORD}@proxy:21"})
    message = str(caught.value)
    assert "LIXINGER_PROXY" in message and "http://, https://, socks5://" in message
    assert PASSWORD not in message and "\n" not in message
    with pytest.raises(ConfigError, match="names no host"):
        Settings.load({"LIXINGER_PROXY": "http://"})


@pytest.mark.parametrize("kind", ["socks5", "http"])
def test_headers_trickling_through_a_proxy_are_cut_at_the_budget(sandbox, http_proxy, tmp_path, kind):
    """The one deadline holds through a proxy too: a status line and headers that arrive a
    byte at a time (through a SOCKS tunnel, or a forward proxy that waits for them) end the
    fetch at the budget, not minutes later."""
    import time

    socks = _Socks5()
    try:
        proxy = (f"socks5://127.0.0.1:{socks.port}" if kind == "socks5"
                 else f"http://{USER}:{PASSWORD}@127.0.0.1:{http_proxy.server_port}")
        settings = Settings.load({"LIXINGER_BASE_URL": sandbox.url, "LIXINGER_PROXY": proxy,
                                  "XL_ADDIN_CACHE_DIR": str(tmp_path)}, budget=1.5)
        client = MMAHClient(Token(sandbox.token), settings)
        sandbox.inject("header-trickle", times=None, interval=0.05, bytes=600)  # ~33 s of headers
        started = time.monotonic()
        err = client.fetch(["00700"]).errors["00700"]
        took = time.monotonic() - started
        client.close()
        assert isinstance(err, ServiceUnavailableError), err
        assert took < 6, f"the fetch took {took:.1f} s against a 1.5 s budget"
    finally:
        socks.close()
