"""A failed refresh never writes old data as new; cached values are written or shown only
when asked for, and are then marked stale (status block, JSON, CSV, table, exit code 3).

Through the CLI as a user runs it, against the sandbox's real 503 fault, with the cache
filled by an earlier successful run.
"""

import csv
import io
import json
import os
import time

import openpyxl
import pytest

from conftest import run_cli
from test_refresh import book, digest  # noqa: F401  (fixture)


@pytest.fixture
def env(sandbox):
    return {"LIXINGER_BASE_URL": sandbox.url, "LIXINGER_TOKEN": sandbox.token, "LIXINGER_BUDGET": "2"}


def status(path):
    ws = openpyxl.load_workbook(path)["MM_AH"]
    return [ws[f"J{r}"].value for r in range(1, 5)]


def test_refresh_with_the_service_down_fails_and_leaves_the_file(book, sandbox, env):  # noqa: F811
    path = book()
    assert run_cli("refresh", str(path), env=env).returncode == 0  # the cache now holds every code
    before, mode = digest(path), os.stat(path).st_mode
    sandbox.inject("503", times=None, retry_after=0)  # Retry-After: 0: the CLI retries at once
    r = run_cli("refresh", str(path), env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert digest(path) == before and os.stat(path).st_mode == mode
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "HTTP 503" in lines[0] and "--allow-stale" in lines[0], r.stderr
    assert "Problems: none" not in r.stdout + r.stderr and not r.stdout


def test_refresh_allow_stale_writes_cached_values_marked_stale(book, sandbox, env):  # noqa: F811
    path = book()
    assert run_cli("refresh", str(path), env=env).returncode == 0
    fresh_time = status(path)[0]
    sandbox.inject("503", times=None, retry_after=0)  # Retry-After: 0: the CLI retries at once
    r = run_cli("refresh", str(path), "--allow-stale", env=env)
    assert r.returncode == 3, r.stdout + r.stderr  # done, with stale values: documented exit code
    assert "30 STALE" in r.stdout
    refreshed, _, codes, problems = status(path)
    assert refreshed >= fresh_time
    assert codes == "30 of 30 with data, 30 of them STALE (see Problems)"
    ws = openpyxl.load_workbook(path)["MM_AH"]
    listed = [ws.cell(row=r, column=1).value for r in range(7, 37)]
    assert problems.startswith("30 codes (") and "stale: cached" in problems and "HTTP 503" in problems
    assert all(code in problems for code in listed), "every stale value is named in the status block"
    stderr = r.stderr.strip().splitlines()
    assert len(stderr) == 1 and "30 codes" in stderr[0] and "stale" in stderr[0]


def test_refresh_max_age_serves_young_cache_without_asking(book, sandbox, env):  # noqa: F811
    path = book()
    assert run_cli("refresh", str(path), env=env).returncode == 0
    sandbox.inject("503", times=None)
    seen = sandbox.request_count
    r = run_cli("refresh", str(path), "--max-age", "3600", env=env)
    assert r.returncode == 0 and sandbox.request_count == seen  # asked for cached values: not stale
    assert status(path)[3] == "none"


def test_fetch_marks_stale_values_in_json_csv_and_table(sandbox, env):
    first = time.time()
    assert run_cli("fetch", "700", "5", env=env).returncode == 0
    sandbox.inject("503", times=None, retry_after=0)  # Retry-After: 0: the CLI retries at once
    expired = dict(env, XL_ADDIN_MAX_AGE="0")  # the cache is too old to serve as fresh
    r = run_cli("fetch", "700", "5", "--format", "json", env=expired)
    assert r.returncode == 3, r.stderr
    rows = json.loads(r.stdout)
    assert [row["stale"] for row in rows] == [True, True]
    for row in rows:
        fetched = __import__("datetime").datetime.fromisoformat(row["fetched_at"]).timestamp()
        assert first - 1 <= fetched <= time.time()
    r = run_cli("fetch", "700", "5", "--format", "csv", "--fields", "mm_sh", env=expired)
    assert r.returncode == 3
    table = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [t["stale"] for t in table] == ["true", "true"] and all(t["fetched_at"] for t in table)
    r = run_cli("fetch", "700", "5", "--fields", "mm_sh", env=expired)
    assert r.returncode == 3
    assert "00700*" in r.stdout and "00005*" in r.stdout
    assert "stale: 2 code(s) shown from the cache" in r.stderr


def test_fetch_fresh_values_are_not_marked(sandbox, env):
    r = run_cli("fetch", "700", "--format", "csv", "--fields", "mm_sh", env=env)
    assert r.returncode == 0
    row = next(csv.DictReader(io.StringIO(r.stdout)))
    assert row["stale"] == "false" and row["fetched_at"]
