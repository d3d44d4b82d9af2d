"""LIXINGER_BASE_URL is checked as the connection will use it (issue 12, point 2b).

The CLI runs in a child process whose `socket.socket.connect` (patched by a
`sitecustomize` on its PYTHONPATH) refuses, and records, any address that is not
loopback: nothing here can reach another machine, and the record shows whether the
token would have tried.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, run_cli
from xl_addin.client import MMAHClient
from xl_addin.config import Settings, check_base_url, is_loopback_host
from xl_addin.credentials import Token
from xl_addin.exceptions import ConfigError, InsecureURLError

SITECUSTOMIZE = textwrap.dedent(
    '''
    import ipaddress, os, socket

    _connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = str(address[0]).split("%")[0]
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                with open(os.environ["CONNECT_LOG"], "a") as log:
                    log.write(f"{address[0]}:{address[1]}\\n")
                raise ConnectionRefusedError(111, "this test allows loopback only")
        return _connect(self, address)

    socket.socket.connect = connect
    '''
)

TRICKS = [
    "http://10.0.0.1\\@127.0.0.1:{port}/api",  # urllib.parse: 127.0.0.1; urllib3: 10.0.0.1
    "http://10.0.0.1%5C@127.0.0.1:{port}/api",
    "http://user:secret@127.0.0.1:{port}/api",
    "http://127.0.0.1:{port}/api#@10.0.0.1/",
    "http://127.0.0.1:{port}/api?@10.0.0.1/",
    "http://127.0.0.1 :{port}/api",
    "http://127.0.0.1:{port}/a\tpi",
    "http://127.0.0.1:{port}/api\n.evil",
    "http://[::ffff:10.0.0.1]:{port}/api",
    "http://0x7f000001:{port}/api",
]


@pytest.fixture
def guarded(tmp_path):
    """Environment for a child process that may connect to loopback only; (env, log path)."""
    (tmp_path / "guard").mkdir()
    (tmp_path / "guard" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "connects.log"
    env = {
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "guard"), str(ROOT)]),
        "CONNECT_LOG": str(log),
    }
    return env, log


def test_the_guard_itself_refuses_and_records_other_hosts(guarded):
    env, log = guarded
    r = subprocess.run(
        [sys.executable, "-c", "import socket; socket.create_connection(('10.0.0.1', 9), timeout=2)"],
        env=dict(os.environ, **env), capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert r.returncode != 0 and "loopback only" in r.stderr
    assert log.read_text() == "10.0.0.1:9\n"


@pytest.mark.parametrize("trick", TRICKS[:3])
def test_cli_never_connects_elsewhere_and_says_why_in_one_line(sandbox, guarded, trick):
    env, log = guarded
    url = trick.format(port=sandbox.port)
    r = run_cli("fetch", "700", env=dict(env, LIXINGER_BASE_URL=url, LIXINGER_TOKEN=sandbox.token))
    assert not log.exists(), log.read_text()  # no connection attempt anywhere but here
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "LIXINGER_BASE_URL" in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert sandbox.token not in r.stderr and "secret" not in r.stderr


@pytest.mark.parametrize("trick", TRICKS)
def test_odd_urls_are_refused_before_any_request(sandbox, tmp_path, trick):
    url = trick.format(port=sandbox.port)
    with pytest.raises(ConfigError) as err:
        check_base_url(url)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError):
        Settings.from_env({"LIXINGER_BASE_URL": url})
    with pytest.raises(ConfigError):  # Settings built by hand are checked where the token leaves
        MMAHClient(Token(sandbox.token), Settings(base_url=url, cache_dir=tmp_path))
    assert sandbox.request_count == 0


def test_plain_urls_still_work():
    assert check_base_url("https://open.lixinger.com/api/") == "https://open.lixinger.com/api"
    assert check_base_url("  http://127.0.0.1:8765/api  ") == "http://127.0.0.1:8765/api"
    assert check_base_url("http://[::1]:9/api") == "http://[::1]:9/api"
    assert check_base_url("http://localhost:1/api") == "http://localhost:1/api"
    with pytest.raises(InsecureURLError, match="10.0.0.1"):
        check_base_url("http://10.0.0.1/api")
    assert is_loopback_host("[::1]") and is_loopback_host("LOCALHOST") and not is_loopback_host("10.0.0.1")
