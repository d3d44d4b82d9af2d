"""The CLI as a user runs it: subprocesses, against `lx-addin sandbox` in another process."""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run_cli


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def cli_sandbox():
    """`lx-addin sandbox --port N` as a separate process; yields (env for clients)."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "xl_addin", "sandbox", "--port", str(port), "--token", "cli-test-token-0123456789"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    lines = []
    deadline = time.time() + 30
    while time.time() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "Ctrl+C" in line:
            break
    text = "".join(lines)
    assert "LIXINGER_BASE_URL=" in text and "LIXINGER_TOKEN=cli-test-token" in text, text + proc.stderr.read()
    env = {"LIXINGER_BASE_URL": f"http://127.0.0.1:{port}/api", "LIXINGER_TOKEN": "cli-test-token-0123456789"}
    yield env
    proc.terminate()
    proc.wait(10)


def test_fetch_json_against_the_sandbox_process(cli_sandbox, documented):
    r = run_cli("fetch", "700", "5", "0700.HK", "--format", "json", env=cli_sandbox)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["stockCode"] for row in rows] == ["00700", "00005"]  # distinct codes, input order
    expected = dict(documented["data"][0], last_data_date="2026-03-17")
    fields = {k: v for k, v in rows[0].items() if k not in ("stale", "fetched_at")}
    assert fields == {k: expected[k] for k in fields} and len(fields) == 42
    assert rows[0]["stale"] is False and rows[0]["fetched_at"].startswith(time.strftime("%Y-%m-%d"))
    assert "cli-test-token" not in r.stdout + r.stderr


def test_fetch_json_marks_invalid_and_no_data_codes(cli_sandbox):
    r = run_cli("fetch", "700", "ABC", "99999", "--format", "json", "--fields", "mm_sh,港股通持仓金额", env=cli_sandbox)
    rows = json.loads(r.stdout)
    assert {k: rows[0][k] for k in ("stockCode", "mm_sh", "mm_sha", "stale")} == {
        "stockCode": "00700", "mm_sh": 1085238279, "mm_sha": 596881053450, "stale": False}
    assert rows[1]["stockCode"] == "ABC" and "not a Hong Kong stock code" in rows[1]["error"]
    assert rows[2]["stockCode"] == "99999" and "no Stock Connect data" in rows[2]["error"]
    assert r.returncode == 1  # an invalid input is a failure for scripts
    assert "lx-addin: ABC: invalid code" in r.stderr and "lx-addin: 99999: no data" in r.stderr


def test_fetch_csv_and_table(cli_sandbox):
    r = run_cli("fetch", "700", "5", "--fields", "mm_sh_nba_d20", "--format", "csv", env=cli_sandbox)
    assert r.stdout.splitlines()[0] == "stockCode,mm_sh_nba_d20,stale,fetched_at,error"
    assert r.stdout.splitlines()[1].startswith("00700,18171578592.486744,false,")
    r = run_cli("fetch", "700", env=cli_sandbox)
    assert r.returncode == 0 and "Net buy amount, 20D" in r.stdout and "18,171,578,592" in r.stdout


def test_fields_json():
    r = run_cli("fields", "--format", "json")
    rows = json.loads(r.stdout)
    assert len(rows) == 42 and rows[2] == {"key": "mm_sh", "zh": "港股通持仓", "en": rows[2]["en"], "kind": "shares", "window": None}


@pytest.mark.parametrize(
    "args,env,needle",
    [
        (["fetch", "700"], {}, "lx-addin token set"),
        (["fetch", "700", "--fields", "mm_sh_nba_d21", "--sandbox"], {}, "did you mean"),
        (["fetch", "700"], {"LIXINGER_BASE_URL": "http://example.com/api", "LIXINGER_TOKEN": "x" * 20}, "plain http"),
        (["fetch", "700"], {"LIXINGER_TIMEOUT": "soon", "LIXINGER_TOKEN": "x" * 20}, "LIXINGER_TIMEOUT"),
    ],
)
def test_errors_are_one_line_no_traceback(args, env, needle):
    r = run_cli(*args, env=env)
    assert r.returncode != 0
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_service_down_is_one_line(cli_sandbox):
    env = dict(cli_sandbox, LIXINGER_BASE_URL=f"http://127.0.0.1:{_free_port()}/api", LIXINGER_BUDGET="1")
    r = run_cli("fetch", "700", "5", env=env)
    assert r.returncode == 1 and "cannot reach" in r.stderr and "Traceback" not in r.stderr


def test_bad_token_says_how_to_fix(cli_sandbox):
    r = run_cli("fetch", "700", env=dict(cli_sandbox, LIXINGER_TOKEN="wrong-token-000000"))
    assert r.returncode == 1 and "rejected the token" in r.stderr and "wrong-token" not in r.stderr


def test_cache_info_and_clear(cli_sandbox):
    run_cli("fetch", "700", "5", env=cli_sandbox)
    r = run_cli("cache", "info", "--format", "json", env=cli_sandbox)
    info = json.loads(r.stdout)
    assert info["codes"] == 2 and info["newest_data_date"] == "2026-03-17"
    r = run_cli("cache", "clear", "--history", env=cli_sandbox)
    assert r.returncode == 0 and "Cleared 2 snapshot(s)" in r.stdout and "history included" in r.stdout
    assert json.loads(run_cli("cache", "info", "--format", "json", env=cli_sandbox).stdout)["codes"] == 0


def test_cache_clear_keeps_the_history_and_makes_every_code_ask_again(sandbox, tmp_path):
    """The cache is the history's file: `cache clear` (what a user runs to get fresh data) must not
    throw away months of snapshots the API cannot give back; the next fetch asks the service."""
    env = {"LIXINGER_BASE_URL": sandbox.url, "LIXINGER_TOKEN": sandbox.token, "XL_ADDIN_CACHE_DIR": str(tmp_path)}
    assert run_cli("fetch", "700", "5", env=env).returncode == 0
    assert run_cli("fetch", "700", "5", env=env).returncode == 0
    assert sandbox.request_count == 1  # the second one from the cache
    r = run_cli("cache", "clear", env=env)
    assert r.returncode == 0 and "The history (2 snapshot(s)) is kept" in r.stdout, r.stdout + r.stderr
    assert run_cli("fetch", "700", "5", env=env).returncode == 0
    assert sandbox.request_count == 2  # nothing counted as fresh: asked again
    r = run_cli("history", "700", "--field", "mm_sh", "--format", "csv", env=env)
    assert r.returncode == 0 and "00700" in r.stdout
    r = run_cli("cache", "info", "--history", env=env)
    assert r.returncode != 0 and "--history goes with `cache clear` only" in r.stderr


def test_every_command_help_has_an_example():
    from xl_addin.cli import COMMANDS, build_parser

    assert {"fetch", "refresh", "install", "uninstall", "token", "config"} <= set(COMMANDS)
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for cmd in COMMANDS:  # a command added later is held to the same rule
        text = sub.choices[cmd].format_help()
        assert "examples:" in text and "\n  lx-addin " in text and f"lx-addin {cmd}" in text.split("examples:")[1], cmd
    r = run_cli("token", "--help")  # and through the real entry point
    assert r.returncode == 0 and "examples:" in r.stdout and "lx-addin token set" in r.stdout


def test_shared_options_are_declared_once():
    """--sandbox, --format and --home are written once in the CLI and mean the same in every command."""
    import inspect

    from xl_addin import cli

    source = inspect.getsource(cli)
    for option in ("--sandbox", "--format", "--home"):
        assert source.count(f'"{option}"') == 1, option
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    with_sandbox = [c for c, p in sub.choices.items() if "--sandbox" in p.format_help()]
    assert {"fetch", "refresh", "freeze"} <= set(with_sandbox)


def test_debug_shows_the_traceback():
    r = run_cli("--debug", "fetch", "700")
    assert "Traceback" in r.stderr and "NoTokenError" in r.stderr


# --- output that reads well ------------------------------------------------------------------------
def test_fetch_with_no_data_at_all_prints_only_the_reason(cli_sandbox):
    r = run_cli("fetch", "banana", env=cli_sandbox)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "lx-addin: banana: invalid code (expected 1 to 5 digits, like 700, 00700 or 0700.HK)"]
    r = run_cli("fetch", "99999", "banana", env=cli_sandbox)
    assert r.returncode == 1 and r.stdout == ""
    assert [line.split(": ")[1] for line in r.stderr.strip().splitlines()] == ["99999", "banana"]


def _codes(n):
    from xl_addin.sandbox.data import universe

    return list(universe())[:n]


def test_many_codes_go_down_and_wide_tables_are_cut_with_a_note(cli_sandbox):
    codes = _codes(150)
    r = run_cli("fetch", *codes, env=dict(cli_sandbox, COLUMNS="120"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 120
    assert lines[0].split()[0] == "stockCode" and len(lines) == 2 + 150  # codes down, fields across
    assert [line.split()[0] for line in lines[2:]] == codes
    note = r.stderr.strip().splitlines()
    assert len(note) == 1 and "of 42 fields" in note[0] and "--format csv" in note[0]
    r = run_cli("fetch", *codes[:3], env=dict(cli_sandbox, COLUMNS="120"))
    lines = r.stdout.splitlines()
    assert lines[0].split()[1:] == codes[:3] and len(lines) == 2 + 41  # few codes: across, all fields
    assert r.stderr == ""


def test_transpose_swaps_the_table(cli_sandbox):
    codes = _codes(3)
    r = run_cli("fetch", *codes, "--transpose", env=dict(cli_sandbox, COLUMNS="200"))
    lines = r.stdout.splitlines()
    assert lines[0].split()[0] == "stockCode" and [line.split()[0] for line in lines[2:]] == codes
    r = run_cli("fetch", *codes, "--fields", "mm_sh,spc", "--transpose", env=cli_sandbox)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["field", *codes] and len(lines) == 4


def test_tiny_negatives_round_before_the_sign(cli_sandbox):
    from xl_addin.sandbox.data import Dataset

    value = Dataset().record("00700")["mm_sh_cap_rc_d5"]
    assert -0.00005 < value < 0  # -0.0039 %: shown to two decimals it is zero
    r = run_cli("fetch", "700", "--fields", "mm_sh_cap_rc_d5,spc", env=cli_sandbox)
    row = r.stdout.splitlines()[2].split()
    assert row[1] == "0.00%" and "-0.00%" not in r.stdout and row[2] == "-1.52%"


def test_a_failed_batch_is_one_line_with_a_count(sandbox):
    codes = _codes(150)
    sandbox.inject("503", times=None, retry_after=0, only_code=codes[120])  # the second request (codes 101-150) fails
    env = {"LIXINGER_BASE_URL": sandbox.url, "LIXINGER_TOKEN": sandbox.token, "LIXINGER_BUDGET": "2"}
    r = run_cli("fetch", *codes, "--format", "csv", "--fields", "mm_sh", env=env)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"lx-addin: 50 codes ({', '.join(codes[100:103])}, …): ") and "HTTP 503" in lines[0]
    assert len(r.stdout.splitlines()) == 151


def test_help_documents_the_exit_codes():
    for cmd in ("fetch", "refresh"):
        out = run_cli(cmd, "--help").stdout
        assert "exit codes:" in out and "3  done with STALE values" in out
    assert "--strict" in run_cli("refresh", "--help").stdout


def test_readme_promises_match_the_code():
    from xl_addin.client import MAX_CODES_PER_REQUEST, MAX_PARALLEL

    readme = (ROOT / "README.md").read_text("utf-8")
    assert f"sent {MAX_CODES_PER_REQUEST} a request, up to {MAX_PARALLEL} requests at once" in readme
    for promise in ("--allow-stale", "exit code 3", "XL_ADDIN_MAX_PART_BYTES", "read-only", "symlink", "umask"):
        assert promise in readme, promise


def test_an_unknown_field_is_refused_before_the_service_is_asked(sandbox):
    env = {"LIXINGER_BASE_URL": sandbox.url, "LIXINGER_TOKEN": sandbox.token}
    r = run_cli("fetch", "700", "--fields", "mm_sh,no_such_field", env=env)
    assert r.returncode == 1 and "no_such_field" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert sandbox.request_count == 0
