"""CLI output that reads well: aligned bilingual columns, every service in `cache info`,
a cache that shrinks when cleared, one clean sentence for a missing token or a bad port."""

import os
import re

from conftest import run_cli
from xl_addin.output import display_width
from xl_addin.fields import FIELDS


def test_fields_columns_line_up_by_display_width():
    r = run_cli("fields")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    header, rows = lines[0], lines[2:]
    assert len(rows) == len(FIELDS)

    def column_of(line, text):
        return display_width(line[: line.index(text)])

    zh_col, en_col = column_of(header, "中文"), column_of(header, "English")
    kind_col = column_of(header, "kind")
    for line, f in zip(rows, FIELDS):
        assert line.startswith(f.key + " ")
        assert column_of(line, f.zh) == zh_col, line  # left-aligned under its header
        assert column_of(line, "  " + f.en) + 2 == en_col, line
        assert column_of(line, "  " + f.kind) + 2 == kind_col, line


def test_cache_info_shows_every_service_and_clear_compacts(sandbox, tmp_path):
    cache_dir = tmp_path / "cache"
    env = {"XL_ADDIN_CACHE_DIR": str(cache_dir), "LIXINGER_BASE_URL": sandbox.url, "LIXINGER_TOKEN": sandbox.token}
    codes = sandbox.dataset.codes[:300]
    r = run_cli("fetch", *codes, "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    plain = {"XL_ADDIN_CACHE_DIR": str(cache_dir)}  # the real service is the one in use
    r = run_cli("cache", "info", env=plain)
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if line.startswith(sandbox.url))
    assert re.search(r"\s300\s+300\s+2026-03-17", row), r.stdout
    assert "in use:      https://open.lixinger.com/api" in r.stdout

    db = cache_dir / "mm_ah.sqlite3"
    size = lambda: sum(os.path.getsize(p) for p in (db, f"{db}-wal") if os.path.exists(p))  # noqa: E731
    before = size()
    r = run_cli("cache", "clear", "--history", env=plain)
    assert r.returncode == 0 and "Cleared 300 snapshot(s)" in r.stdout, r.stdout + r.stderr
    after = size()
    assert after < before / 4, (before, after)
    assert f"to {after / 1024:,.0f} KiB" in r.stdout
    r = run_cli("cache", "info", env=plain)
    assert "no data cached yet" in r.stdout


def test_token_status_without_a_token_is_one_clean_sentence():
    r = run_cli("token", "status")
    assert r.returncode == 1 and r.stdout == ""
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("No Lixinger token found")
    assert "No token: No" not in line and "lx-addin token set" in line


def test_sandbox_with_an_impossible_port_is_one_line():
    r = run_cli("sandbox", "--port", "99999")
    assert r.returncode == 1
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "99999" in line and "65535" in line
    assert "unexpected" not in line and "Overflow" not in line


def test_sandbox_takes_every_fault_the_sandbox_has_and_refuses_unknown_ones(tmp_path):
    import socket
    import subprocess
    import sys

    from conftest import ROOT

    bad = run_cli("sandbox", "--port", "18999", "--fault", "bogus")
    assert bad.returncode != 0
    assert "unknown fault 'bogus'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "xl_addin", "sandbox", "--port", str(port),
                             "--fault", "redirect:308:http://127.0.0.1:9/api", "--fault", "trickle:2"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(4)]
        assert any("LIXINGER_BASE_URL=http://127.0.0.1:" in line for line in lines), lines
        import requests

        r = requests.post(f"http://127.0.0.1:{port}/hk/company/hot/mm_ah", json={"token": "x", "stockCodes": ["00700"]},
                          allow_redirects=False, timeout=10)
        assert r.status_code == 308 and r.headers["Location"].startswith("http://127.0.0.1:9/api")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
