"""Shared fixtures: a real sandbox server on 127.0.0.1, an isolated cache and environment.

In CI (CI=true) a skipped test is a failure: every test here must run there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No real token, no real cache, no real keyring unless a test asks for one."""
    monkeypatch.delenv("LIXINGER_TOKEN", raising=False)
    monkeypatch.delenv("LIXINGER_BASE_URL", raising=False)
    monkeypatch.delenv("XL_ADDIN_PROFILE", raising=False)
    monkeypatch.setenv("XL_ADDIN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XL_ADDIN_CONFIG", str(tmp_path / "settings.toml"))  # never the user's own file
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    import keyring

    keyring.set_keyring(keyring.backends.fail.Keyring())
    yield


@pytest.fixture(autouse=True)
def retries_skip_waits(request):
    """In-process clients retry on a SkippingClock: the same attempts and the same budget,
    without waiting out the backoff in real time. A test marked ``real_time_retries``
    keeps the real clock (a few do, against the sandbox)."""
    from xl_addin import client
    from xl_addin.pacer import RetryPolicy

    if request.node.get_closest_marker("real_time_retries"):
        yield
        return
    previous = client.set_default_retry(RetryPolicy.skipping())
    yield
    client.set_default_retry(previous)


@pytest.fixture
def sandbox():
    from xl_addin.sandbox import Sandbox

    with Sandbox() as sb:
        yield sb


@pytest.fixture
def settings(sandbox, tmp_path):
    from xl_addin.config import Settings

    return Settings(base_url=sandbox.url, cache_dir=tmp_path / "cache", budget=20.0, timeout=10.0)


@pytest.fixture
def formula_service(settings, sandbox):
    """The process-wide service, given to it as Excel's formulas would make theirs (the formula budget,
    the outage pause), against the sandbox: no variables to set, nothing to reset."""
    import dataclasses

    import xl_addin.udfs as udfs
    from xl_addin.service import FORMULA_BUDGET, OUTAGE_PAUSE, DataService, set_shared

    udfs.reset()  # and the neighbour scans' clock
    svc = DataService(dataclasses.replace(settings, budget=FORMULA_BUDGET), token=sandbox.token,
                      outage_pause=OUTAGE_PAUSE)
    set_shared(svc)
    yield svc
    set_shared(None)


@pytest.fixture
def service(settings, sandbox):
    from xl_addin.service import MMAH

    svc = MMAH(settings, token=sandbox.token)
    yield svc
    svc.close()


@pytest.fixture
def documented():
    """The documented answer for 00700, as the test suite's own copy of the API docs."""
    return json.loads((DATA / "documented_answer.json").read_text("utf-8"))


def run_cli(*args, env=None, input=None, timeout=120):
    """Run `python -m xl_addin ARGS` as a user would; returns CompletedProcess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "xl_addin", *args],
        capture_output=True, text=True, env=full_env, input=input, timeout=timeout, cwd=ROOT,
    )


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CI", "").lower() != "true":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(f"CI: {len(skipped)} test(s) were skipped; every test must run in CI", red=True)
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say which system packages the skipped tests need, and how to install them."""
    if not terminalreporter.stats.get("skipped"):
        return
    from sysdeps import report

    for line in report():
        terminalreporter.write_line(line, yellow=True)


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL cluster on 127.0.0.1 for the whole run (tests/pg_server.py);
    in CI a server that cannot start fails the tests that need it."""
    from pg_server import PostgresServer

    with PostgresServer() as server:
        if server.why_not:
            (pytest.fail if os.environ.get("CI", "").lower() == "true" else pytest.skip)(server.why_not)
        yield server
