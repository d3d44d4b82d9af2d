"""The pacer against a sandbox that enforces a rate limit, as Lixinger does (about 1,000/min).

A minute of requests runs in no time on a ManualClock shared by the pacer and the
sandbox (the sockets stay real); one short real-time window checks the real clock.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from xl_addin.client import MMAHClient
from xl_addin.config import Settings
from xl_addin.credentials import Token
from xl_addin.pacer import ManualClock, Pacer, RetryPolicy, shared_pacer
from xl_addin.sandbox import Sandbox, universe
from xl_addin.sandbox.server import parse_rate

CODES = list(universe())


def _settings(sb, tmp_path, **kw):
    return Settings(base_url=sb.url, cache_dir=tmp_path / "cache", budget=600.0, timeout=10.0, **kw)


def _one_code_at_a_time(client, codes, threads=6):
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda c: client.fetch([c]), codes))


def test_the_sandbox_enforces_its_rate_limit_with_a_429_and_retry_after():
    clock = ManualClock()
    with Sandbox(rate_limit="5/min", clock=clock) as sb:
        url = sb.url + "/hk/company/hot/mm_ah"
        got = [requests.post(url, json={"token": sb.token, "stockCodes": ["00700"]}, timeout=10) for _ in range(7)]
        assert [r.status_code for r in got] == [200] * 5 + [429, 429]
        assert got[5].headers["Retry-After"] == "60"
        clock.sleep(30)  # half a window later: still full
        assert requests.post(url, json={"token": sb.token, "stockCodes": ["00700"]}, timeout=10).status_code == 429
        clock.sleep(30.001)  # the first five have left the window
        assert requests.post(url, json={"token": sb.token, "stockCodes": ["00700"]}, timeout=10).status_code == 200
    assert parse_rate("600/min") == (600, 60.0) and parse_rate("10/2s") == (10, 2.0)
    with pytest.raises(ValueError, match="N/min"):
        parse_rate("fast")


def test_without_the_pacer_a_loop_of_single_code_fetches_trips_429s(tmp_path):
    clock = ManualClock()
    with Sandbox(rate_limit="30/min", clock=clock) as sb:
        client = MMAHClient(Token(sb.token), _settings(sb, tmp_path), pacer=Pacer(0),
                            retry=RetryPolicy(attempts=1))
        results = _one_code_at_a_time(client, CODES[:35])
        client.close()
    assert sb.refused_for_rate == 5
    assert sum(1 for r in results if r.errors) == 5


def test_the_pacer_holds_30_a_minute_from_six_threads_without_a_429(tmp_path):
    clock = ManualClock()
    with Sandbox(rate_limit="30/min", clock=clock) as sb:
        pacer = Pacer(30, clock=clock, sleep=clock.sleep)
        client = MMAHClient(Token(sb.token), _settings(sb, tmp_path), pacer=pacer)
        started = time.monotonic()
        results = _one_code_at_a_time(client, CODES[:65])
        real = time.monotonic() - started
        client.close()
    assert sb.refused_for_rate == 0 and all(r.records for r in results)
    assert sb.request_count == 65
    # 65 requests at 30 a minute: the 31st waits a minute, the 61st two (on the shared clock)
    assert 120.0 <= clock() - 1000.0 < 121.0, clock.slept
    assert real < 30  # a minute of pacing took no minute


def test_a_429_is_still_honoured_when_it_comes(tmp_path):
    clock = ManualClock()
    with Sandbox(rate_limit="3/min", clock=clock) as sb:
        client = MMAHClient(Token(sb.token), _settings(sb, tmp_path), pacer=Pacer(0),
                            retry=RetryPolicy.manual(clock))
        results = [client.fetch([c]) for c in CODES[:5]]
        client.close()
    assert all(r.records and not r.errors for r in results)
    assert sb.refused_for_rate == 1  # the 4th was refused once, waited Retry-After (60 s), then went through
    assert 60 in clock.slept


def test_the_pacer_holds_a_real_short_window(tmp_path):
    with Sandbox(rate_limit="6/0.5s") as sb:
        client = MMAHClient(Token(sb.token), _settings(sb, tmp_path), pacer=Pacer(6, window=0.5),
                            retry=RetryPolicy(attempts=1))
        started = time.monotonic()
        results = _one_code_at_a_time(client, CODES[:14], threads=4)
        took = time.monotonic() - started
        client.close()
    assert sb.refused_for_rate == 0 and all(r.records for r in results)
    assert took >= 1.0  # 14 requests at 6 a half second: the 7th after 0.5 s, the 13th after 1 s


def test_one_pacer_per_service_and_token_for_the_whole_process(sandbox, settings):
    a = MMAHClient(Token(sandbox.token), settings)
    b = MMAHClient(Token(sandbox.token), settings)
    c = MMAHClient(Token("another-token-0000"), settings)
    assert a.pacer is b.pacer and a.pacer is not c.pacer
    assert a.pacer.rate == 1000 and a.pacer.window == 60.0
    assert sandbox.token not in repr(a.pacer) and shared_pacer(a.url, sandbox.token, 1000) is a.pacer
    off = MMAHClient(Token(sandbox.token), Settings.load({"LIXINGER_RATE": "0", "LIXINGER_BASE_URL": sandbox.url}))
    assert off.pacer.rate == 0 and off.pacer.acquire()  # never waits
    for cl in (a, b, c, off):
        cl.close()


def test_lixinger_rate_setting_is_checked():
    from xl_addin.exceptions import ConfigError

    assert Settings.load({"LIXINGER_RATE": "600"}).rate == 600
    assert Settings.load({}).rate == 1000
    with pytest.raises(ConfigError, match="LIXINGER_RATE.*whole number of requests a minute"):
        Settings.load({"LIXINGER_RATE": "fast"})
    with pytest.raises(ConfigError, match="LIXINGER_RATE"):
        Settings.load({"LIXINGER_RATE": "-1"})


def test_the_readme_figures_match_the_code():
    from pathlib import Path

    from xl_addin.client import MAX_CODES_PER_REQUEST, MAX_PARALLEL
    from xl_addin.pacer import DEFAULT_RATE

    readme = " ".join((Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8").split())
    assert f"sent {MAX_CODES_PER_REQUEST} a request, up to {MAX_PARALLEL} requests at once" in readme
    assert f"({MAX_PARALLEL * MAX_CODES_PER_REQUEST} codes in one round trip)" in readme
    assert f"`LIXINGER_RATE` | `{DEFAULT_RATE}`" in readme and f"({DEFAULT_RATE:,} unless set; 0 turns it off)" in readme


def test_lx_addin_sandbox_rate_limit_is_checked_in_one_line():
    from conftest import run_cli

    r = run_cli("sandbox", "--port", "8765", "--rate-limit", "fast")
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0
    assert "--rate-limit" in r.stderr and "600/min" in r.stderr
