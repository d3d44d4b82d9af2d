"""The cold path: what a fetch answered is in the cache file before the fetch returns
(a process killed right after loses none of it), with one kept connection and one
transaction per fetch that writes each record once, as a typed history row."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

from xl_addin.cache import Cache
from xl_addin.store import SQLiteStore
from xl_addin.records import parse_record
from xl_addin.sandbox import universe

CHILD = textwrap.dedent("""
    import os, signal, sys
    from xl_addin.config import Settings
    from xl_addin.service import MMAH
    url, token, cache_dir, *codes = sys.argv[1:]
    svc = MMAH(Settings(base_url=url, cache_dir=cache_dir), token=token)
    result = svc.fetch(codes)
    print(len(result.records), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9, right after the fetch returned: no close, no exit handlers
""")


def test_a_process_killed_right_after_a_fetch_loses_nothing_it_answered(sandbox, tmp_path):
    codes = list(universe())[:250] + ["99999"]
    run = subprocess.run([sys.executable, "-c", CHILD, sandbox.url, sandbox.token, str(tmp_path), *codes],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr
    answered = int(run.stdout)
    assert answered == 250
    with sqlite3.connect(tmp_path / "mm_ah.sqlite3") as db:
        count = db.execute("SELECT COUNT(*) FROM history").fetchone()[0]
        absent = [r[0] for r in db.execute("SELECT code FROM absent")]
    assert count == answered and absent == ["99999"]
    store = SQLiteStore(tmp_path / "mm_ah.sqlite3")
    kept = store.latest(codes[:250], source=sandbox.url)
    store.close()
    for code in codes[:250]:
        assert kept[code].record() == parse_record(sandbox.dataset.record(code))


def _connections_to(path) -> int:
    """How many times this process has *path* open (SQLite opens the file once per connection)."""
    return sum(1 for fd in os.listdir("/proc/self/fd")
               if os.path.realpath(f"/proc/self/fd/{fd}") == os.path.realpath(path))


def test_one_connection_is_kept_and_each_fetch_is_one_transaction(service, sandbox):
    """One handle on the file for the cache and the history; a fetch writes each record once,
    as a typed history row, in one transaction, and reads nothing back."""
    codes = list(universe())[:250]
    store = service.cache.store
    service.fetch(codes[:10])
    kept = store._conn
    statements = []
    kept.set_trace_callback(statements.append)
    service.fetch(codes[10:])  # 240 codes: 3 requests, one store
    kept.set_trace_callback(None)
    assert store._conn is kept  # the same connection, not a new one per call
    assert _connections_to(service.cache.path) == 1  # no second handle for the history
    assert sum(1 for s in statements if s.startswith("BEGIN")) == 1
    assert sum(1 for s in statements if s.startswith("COMMIT")) == 1
    assert sum(1 for s in statements if s.startswith("INSERT INTO history")) == 240  # one executemany
    assert not [s for s in statements if "snapshot" in s]  # no second copy as JSON
    commit = next(i for i, t in enumerate(statements) if t.startswith("COMMIT"))
    assert not [s for s in statements[commit:] if s.startswith("SELECT")]  # nothing read back
    assert service.history_store() is store  # history queries use the same handle
    rows = service.history_rows(codes[10:12], ["mm_sh"])
    assert [r[0] for r in rows] == codes[10:12] and _connections_to(service.cache.path) == 1


def test_the_kept_connection_follows_the_file_when_it_is_replaced(tmp_path, sandbox):
    cache = Cache(tmp_path / "c.sqlite3", sandbox.url)
    record = sandbox.dataset.record("00700")
    cache.store_fetch({"00700": parse_record(record)}, [])
    os.remove(tmp_path / "c.sqlite3")  # e.g. removed by hand while Excel keeps running
    for suffix in ("-wal", "-shm"):
        if (tmp_path / f"c.sqlite3{suffix}").exists():
            os.remove(tmp_path / f"c.sqlite3{suffix}")
    cache.store_fetch({"00700": parse_record(record)}, [])
    assert (tmp_path / "c.sqlite3").exists() and set(cache.latest(["00700"])) == {"00700"}
    cache.close()


def test_records_kept_never_keep_the_token_even_spelled_in_escapes(tmp_path):
    """A record is kept as typed numbers; an answer that repeats the token (spelled in \\u escapes)
    leaves no run of it in the cache file."""
    from xl_addin.config import Settings
    from xl_addin.sandbox import Sandbox
    from xl_addin.service import MMAH

    token = "ab12öcd34öef56ögh78öij90öklmnö"  # every 8 characters of it hold an ö: \u00f6 in JSON
    with Sandbox(token=token) as sb:
        sb.inject("echo-token", times=None)  # the answer repeats the token, as \\u00f6 in JSON
        svc = MMAH(Settings(base_url=sb.url, cache_dir=tmp_path), token=token)
        result = svc.fetch(["00700", "00005"])
        svc.close()
    assert set(result.records) == {"00700", "00005"}
    with sqlite3.connect(tmp_path / "mm_ah.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM history").fetchone()[0] == 2
    db.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    for text in (stored.decode("utf-8", "replace"), stored.decode("utf-16-le", "replace")):
        assert not any(token[i : i + 8] in text for i in range(len(token) - 7))


def test_a_service_closed_right_after_a_cold_fetch_holds_no_handle_on_the_file(settings, sandbox):
    """The file of a first fetch is made while the requests are on the wire; a close right after
    (here: the token is refused at once) waits for it and lets the file go, as Windows needs."""
    from xl_addin.service import MMAH

    for _ in range(5):
        svc = MMAH(settings, token="a-wrong-token-0000")
        svc.fetch(["00700"])
        svc.close()
        assert settings.cache_path.exists() and _connections_to(settings.cache_path) == 0
