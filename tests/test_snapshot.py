"""`lx-addin snapshot` against the sandbox moving through several days: every day's snapshot is kept."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from conftest import run_cli
from xl_addin.config import Settings
from xl_addin.sandbox import Sandbox
from xl_addin.sandbox.data import trading_days
from xl_addin.sandbox import universe
from xl_addin.store import open_store

DAYS = trading_days(dt.date(2026, 3, 2), dt.date(2026, 3, 6))
CODES = ["00700", "00005", "09988"]


@pytest.fixture
def sb():
    with Sandbox(as_of=DAYS[0]) as sb:
        yield sb


def env_for(sb, tmp_path, token=True):
    env = {"LIXINGER_BASE_URL": sb.url, "XDG_STATE_HOME": str(tmp_path / "state")}
    if token:
        env["LIXINGER_TOKEN"] = sb.token
    return env


def log_lines(tmp_path):
    return (tmp_path / "state" / "xl_addin" / "log" / "snapshot.log").read_text("utf-8").splitlines()


def stored(sb, fields, codes=CODES):
    settings = Settings.load(base_url=sb.url)
    with open_store(settings.cache_path) as store:
        return store.series(codes, fields, source=sb.url)


def test_a_snapshot_each_day_is_kept_and_the_days_hang_together(sb, tmp_path):
    env = env_for(sb, tmp_path)
    first = run_cli("snapshot", "--codes", "700", "5", "9988", env=env)
    assert first.returncode == 0, first.stderr
    for day in DAYS[1:]:
        sb.as_of = day
        r = run_cli("snapshot", env=env)  # no --codes: the codes fetched in the last 90 days
        assert r.returncode == 0, r.stderr
        assert f"data date {day.isoformat()}" in r.stdout
    rows = stored(sb, ["mm_sh", "mm_sh_nbv_d1"])
    for code in CODES:
        mine = [(d, sh, d1) for c, d, sh, d1 in rows if c == code]
        assert [d for d, _, _ in mine] == DAYS
        for (_, sh0, _), (_, sh1, d1) in zip(mine, mine[1:]):
            assert math.isclose(sh1 - sh0, d1, abs_tol=0.5), (code, sh0, sh1, d1)
    assert len(log_lines(tmp_path)) == len(DAYS)


def test_twice_a_day_is_harmless(sb, tmp_path):
    env = env_for(sb, tmp_path)
    for _ in range(2):
        assert run_cli("snapshot", "--codes", "700", env=env).returncode == 0
    rows = stored(sb, ["mm_sh"], ["00700"])
    assert [d for _, d, _ in rows] == [DAYS[0]]
    settings = Settings.load(base_url=sb.url)
    with open_store(settings.cache_path) as store:
        assert store.info(sb.url).replacements == 1  # the newer fetch is the one kept, and said so


def test_250_codes_take_three_requests(sb, tmp_path):
    codes = universe()[:250]
    before = len(sb.seen)
    r = run_cli("snapshot", "--codes", *codes, env=env_for(sb, tmp_path))
    assert r.returncode == 0, r.stderr
    assert len(sb.seen) - before == 3
    assert "3 request(s)" in r.stdout


def test_no_token_is_one_line_nonzero_and_logged(sb, tmp_path):
    r = run_cli("snapshot", "--codes", "700", env=env_for(sb, tmp_path, token=False), input="")
    assert r.returncode == 1
    assert r.stdout == "" and len(r.stderr.splitlines()) == 1 and "token" in r.stderr.lower()
    assert len(sb.seen) == 0
    assert "FAILED" in log_lines(tmp_path)[0]


def test_a_service_failure_is_one_line_logged_and_no_token_anywhere(sb, tmp_path):
    env = env_for(sb, tmp_path)
    assert run_cli("snapshot", "--codes", "700", env=env).returncode == 0
    sb.inject("500", times=None)
    r = run_cli("snapshot", "--codes", "700", env=env)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    lines = log_lines(tmp_path)
    assert len(lines) == 2 and "FAILED" in lines[1]
    settings = Settings.load(base_url=sb.url)
    files = [tmp_path / "state" / "xl_addin" / "log" / "snapshot.log", *settings.cache_path.parent.glob("*")]
    for f in files:
        if f.is_file():
            assert sb.token.encode() not in f.read_bytes(), f
    assert sb.token not in r.stderr + r.stdout


def test_no_codes_at_all_is_one_line(sb, tmp_path):
    r = run_cli("snapshot", env=env_for(sb, tmp_path))
    assert r.returncode == 1 and "no codes to snapshot" in r.stderr and len(r.stderr.splitlines()) == 1
