"""Read-through to a desk store (issue 14): formulas, fetch, refresh and the history ask the local
copy, then the desk's PostgreSQL, then Lixinger; what Lixinger gave goes to the desk for everyone.
A real PostgreSQL (tests/pg_server.py), the real sandbox over HTTP (its requests counted), the
formulas through xlwings' own UDF machinery; every fault of the desk leaves the local copy serving."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import threading

import pytest

import excel_harness as xh
from conftest import run_cli
from pg_server import PostgresServer, free_port
from xl_addin.service import FORMULA_BUDGET, OUTAGE_PAUSE, DataService, set_shared
from xl_addin.store import open_store

READER_PW, WRITER_PW = "rt-reader-Pw-81q", "rt-writer-Pw-9kq"
CODES = ["00700", "00005", "09988", "00939", "01299"]


@pytest.fixture(scope="module")
def desk(pg_server):
    """A desk database for this module: a writer login (dave) and a reader login (carol)."""
    from xl_addin.store.desk import init_store

    pg_server.psql("CREATE DATABASE rt")
    owner = pg_server.url_for("postgres", "rt")
    init_store(owner, password=pg_server.password, reader="rt_reader", writer="rt_writer")
    pg_server.psql(f"CREATE ROLE carol LOGIN PASSWORD '{READER_PW}' IN ROLE rt_reader; "
                   f"CREATE ROLE dave LOGIN PASSWORD '{WRITER_PW}' IN ROLE rt_writer")
    return {"owner": owner, "writer": pg_server.url_for("dave", "rt"), "reader": pg_server.url_for("carol", "rt")}


@pytest.fixture
def empty_desk(pg_server, desk):
    pg_server.psql("TRUNCATE xl_addin.history, xl_addin.absent", db="rt")
    return desk


@pytest.fixture
def as_writer(monkeypatch):
    """libpq's own PGPASSWORD (the keyring here is a failing one): the writer's password."""
    monkeypatch.setenv("PGPASSWORD", WRITER_PW)


def service_for(settings, sandbox, tmp_path, name: str, store: str | None, formulas: bool = False) -> DataService:
    """A service with its own cache folder (one analyst's machine) and the desk as its store."""
    s = dataclasses.replace(settings, cache_dir=tmp_path / name, store=store,
                            budget=FORMULA_BUDGET if formulas else settings.budget)
    return DataService(s, token=sandbox.token, outage_pause=OUTAGE_PAUSE if formulas else 0.0)


def local_copy(svc: DataService) -> dict:
    """What the analyst's own SQLite file holds (its history table), read back."""
    if svc.desk is not None:
        svc.desk.flush()  # the desk rows' local writes run on the desk layer's thread
    with open_store(svc.settings.cache_path) as local:
        return local.latest(CODES, source=svc.settings.base_url)


def desk_rows(pg_server, source: str) -> list[str]:
    return pg_server.psql(f"SELECT code, data_date, fetched_at FROM xl_addin.history WHERE source = '{source}' "
                          "ORDER BY code", db="rt").splitlines()


def info(udfs) -> dict:
    return {row[0]: row[1] for row in xh.call(udfs.LX_MMAH_INFO)}


@pytest.fixture
def udfs():
    module = xh.load()
    yield module
    module.reset()


# -- reading through, writing for everyone ------------------------------------------------------------
def test_a_fetch_writes_the_desk_and_another_machines_formula_reads_it_without_a_request(
        empty_desk, as_writer, settings, sandbox, tmp_path, pg_server, udfs):
    first = service_for(settings, sandbox, tmp_path, "ann", empty_desk["writer"])
    fetched = first.fetch(CODES)
    assert fetched.requests == 1 and len(fetched.records) == 5
    rows = desk_rows(pg_server, sandbox.url)  # the writes land in the desk
    assert [r.split("|")[0] for r in rows] == sorted(CODES)
    assert all(r.split("|")[1] == sandbox.as_of.isoformat() for r in rows)
    first.close()

    other = service_for(settings, sandbox, tmp_path, "ben", empty_desk["writer"], formulas=True)
    set_shared(other)
    before = sandbox.request_count
    out = xh.call(udfs.LX_MMAH, tuple((float(int(c)),) for c in CODES), "mm_sh")
    assert out == [[fetched.records[c]["mm_sh"]] for c in CODES]
    assert sandbox.request_count == before  # the desk answered: no request to the service
    assert other.desk.served == 5 and "5 code(s) served from it" in info(udfs)["desk store state"]
    # and the offline copy: the other machine's own file now holds them, with the first fetch's time
    kept = local_copy(other)
    assert sorted(kept) == sorted(CODES) and {s.fetched_at for s in kept.values()} == {fetched.fetched_at["00700"]}


def test_a_desk_row_counts_when_fetched_after_the_refresh_stamp_and_within_max_age(
        empty_desk, as_writer, settings, sandbox, tmp_path, pg_server):
    ann = service_for(settings, sandbox, tmp_path, "ann", empty_desk["writer"])
    ben = service_for(settings, sandbox, tmp_path, "ben", empty_desk["writer"])
    ann.fetch(CODES)
    ben.expire_all()  # Ben clicked Refresh after Ann's fetch: her rows are older than his stamp
    before = sandbox.request_count
    assert ben.fetch(CODES).requests == 1 and sandbox.request_count == before + 1
    with open_store(empty_desk["owner"], password=pg_server.password) as desk:
        assert desk.info().replacements == 5  # Ben's newer fetch replaced Ann's in the desk (`store status`)
        assert {s.fetched_at for s in desk.latest(CODES, source=sandbox.url).values()} == {ben.fetch(CODES).fetched_at["00700"]}
    carl = service_for(settings, sandbox, tmp_path, "carl", empty_desk["writer"])
    carl.expire_all()
    ann.expire_all()
    ann.fetch(CODES)  # fetched after Carl's stamp, by someone else: fresh for Carl
    before = sandbox.request_count
    assert carl.fetch(CODES).requests == 0 and sandbox.request_count == before
    # older than max_age: not fresh, whoever fetched it
    dan = service_for(settings, sandbox, tmp_path, "dan", empty_desk["writer"])
    assert dan.fetch(CODES, max_age=0).requests == 1
    for svc in (ann, ben, carl, dan):
        svc.close()


# -- faults: the local copy keeps serving, one line says why ----------------------------------------
def test_the_desk_down_at_start_serves_the_local_copy_and_says_so(
        empty_desk, as_writer, settings, sandbox, tmp_path, udfs):
    ann = service_for(settings, sandbox, tmp_path, "ann", empty_desk["writer"])
    ann.fetch(CODES)
    ann.close()
    dead = f"postgresql://dave@127.0.0.1:{free_port()}/rt"
    ben = service_for(settings, sandbox, tmp_path, "ann", dead, formulas=True)  # Ann's machine, the desk gone
    set_shared(ben)
    before = sandbox.request_count
    out = xh.call(udfs.LX_MMAH, tuple((float(int(c)),) for c in CODES), "mm_sh")
    assert all(isinstance(r[0], (int, float)) for r in out) and sandbox.request_count == before
    assert ben.desk.attempts == 0  # all fresh in the local copy: the desk was not needed
    state = info(udfs)["desk store state"]  # the status looks, once
    assert state.startswith("NOT IN USE: cannot reach the desk store") and "is the server up" in state
    # a code that is not local: asked from the service, kept locally, waiting for the desk
    out = xh.call(udfs.LX_MMAH, 2318.0, "mm_sh")
    assert isinstance(out[0][0], (int, float)) and sandbox.request_count == before + 1
    with open_store(ben.settings.cache_path) as local:
        assert "02318" in local.latest(["02318"], source=sandbox.url)
    assert "1 snapshot(s) waiting for it" in info(udfs)["desk store state"]


def test_a_silent_desk_costs_one_connect_timeout_then_a_pause_not_one_per_formula(
        empty_desk, as_writer, settings, sandbox, tmp_path, udfs):
    """A host that accepts and never answers (a hung server, a firewall): the first formula waits
    out the short connect timeout once; the next formulas do not try it again during the pause."""
    accepted = []
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)

    def accept():
        while True:
            try:
                conn, _ = silent.accept()
            except OSError:
                return
            accepted.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    try:
        ben = service_for(settings, sandbox, tmp_path, "ben", f"postgresql://dave@127.0.0.1:{silent.getsockname()[1]}/rt",
                          formulas=True)
        set_shared(ben)
        for code in CODES:
            out = xh.call(udfs.LX_MMAH, float(int(code)), "mm_sh")
            assert isinstance(out[0][0], (int, float)), out
        assert len(accepted) == 1 and ben.desk.attempts == 1
        assert "timeout" in info(udfs)["desk store state"]
    finally:
        silent.close()
        for conn in accepted:
            conn.close()


def test_the_desk_going_down_mid_refresh_loses_nothing_and_catches_up(as_writer, settings, sandbox, tmp_path):
    with PostgresServer() as server:
        if server.why_not:
            pytest.fail(server.why_not)
        from xl_addin.store.desk import init_store

        init_store(server.url, password=server.password)
        os.environ["PGPASSWORD"] = server.password  # monkeypatched by as_writer: restored after the test
        ann = service_for(settings, sandbox, tmp_path, "ann", server.url)
        ann.fetch(CODES[:2])
        ann.desk.pause = 0.0  # so that the test need not wait out the pause
        server.stop("fast")
        ann.expire_all()  # the Refresh: asks the service again
        answer = ann.fetch(CODES)
        assert answer.requests == 1 and len(answer.records) == 5 and not answer.stale
        assert "lost the connection to the desk store" in str(ann.last_error) or "cannot reach" in str(ann.last_error)
        assert ann.desk.pending == 5 and "kept in the local copy only" in str(ann.desk.problem), ann.desk.notes
        assert sorted(local_copy(ann)) == sorted(CODES)  # nothing written locally is lost
        server.start()
        ann.expire_all()
        ann.fetch(["01299"], max_age=3600)  # the desk answers again: what waited is written to it
        assert ann.desk.pending == 0 and ann.desk.state().startswith("in use")
        assert server.psql("SELECT count(*) FROM xl_addin.history") == "5"
        ann.close()


def test_a_wrong_password_is_one_line_and_the_service_still_answers(empty_desk, settings, sandbox, tmp_path,
                                                                    monkeypatch, udfs):
    monkeypatch.setenv("PGPASSWORD", "not-" + WRITER_PW)
    ben = service_for(settings, sandbox, tmp_path, "ben", empty_desk["writer"], formulas=True)
    set_shared(ben)
    out = xh.call(udfs.LX_MMAH, tuple((float(int(c)),) for c in CODES), "mm_sh")
    assert all(isinstance(r[0], (int, float)) for r in out)
    state = info(udfs)["desk store state"]
    assert "password authentication failed" in state and "store login" in state and WRITER_PW not in state
    assert sorted(local_copy(ben)) == sorted(CODES)


def test_a_read_only_login_reads_the_desk_and_keeps_its_own_fetches_locally(
        empty_desk, as_writer, settings, sandbox, tmp_path, monkeypatch, pg_server):
    ann = service_for(settings, sandbox, tmp_path, "ann", empty_desk["writer"])
    ann.fetch(CODES[:3])
    monkeypatch.setenv("PGPASSWORD", READER_PW)
    carol = service_for(settings, sandbox, tmp_path, "carol", empty_desk["reader"])
    answer = carol.fetch(CODES)
    assert answer.requests == 1  # three from the desk, two from the service
    assert "may only read" in str(carol.last_error) and "kept in the local copy only" in str(carol.last_error)
    assert carol.desk.state().startswith("reading only")
    assert len(desk_rows(pg_server, sandbox.url)) == 3 and sorted(local_copy(carol)) == sorted(CODES)
    carol.expire_all()
    attempts = carol.desk.attempts
    carol.fetch(CODES)  # asked to write again: not tried again, said once
    assert carol.desk.attempts == attempts and len(carol.desk.notes) == 1
    # the same login running the daily snapshot: one line, exit 1
    env = {"XL_ADDIN_STORE": empty_desk["reader"], "PGPASSWORD": READER_PW, "LIXINGER_BASE_URL": sandbox.url,
           "LIXINGER_TOKEN": sandbox.token, "XL_ADDIN_CACHE_DIR": str(tmp_path / "carol")}
    r = run_cli("snapshot", "--codes", "700", env=env)
    assert r.returncode == 1 and "may only read" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    ann.close()
    carol.close()


def test_a_schema_from_a_newer_xl_addin_leaves_the_local_copy_serving(pg_server, as_writer, settings, sandbox,
                                                                       tmp_path):
    from xl_addin.store.desk import init_store

    pg_server.psql("CREATE DATABASE rt_future")
    url = pg_server.url_for("postgres", "rt_future")
    init_store(url, password=pg_server.password)
    pg_server.psql("INSERT INTO xl_addin.schema_version VALUES (99, 0)", db="rt_future")
    os.environ["PGPASSWORD"] = pg_server.password
    ben = service_for(settings, sandbox, tmp_path, "ben", url)
    assert len(ben.fetch(CODES).records) == 5
    assert "schema 99, made by a newer xl_addin" in ben.desk.state() and "upgrade xl_addin" in ben.desk.state()
    assert sorted(local_copy(ben)) == sorted(CODES)
    ben.close()


# -- the command line: one line per fault, the history from the desk or the local copy ----------------
def cli_env(sandbox, tmp_path, name, store, password=WRITER_PW) -> dict:
    return {"XL_ADDIN_STORE": store, "PGPASSWORD": password, "LIXINGER_BASE_URL": sandbox.url,
            "LIXINGER_TOKEN": sandbox.token, "XL_ADDIN_CACHE_DIR": str(tmp_path / name)}


def test_two_machines_share_history_through_the_desk(empty_desk, sandbox, tmp_path):
    """One runs the daily snapshot on two days; the other, with its own cache, reads the history and
    fetches today's codes with no request to the service."""
    days = [sandbox.as_of - dt.timedelta(days=1), sandbox.as_of]
    one = cli_env(sandbox, tmp_path, "one", empty_desk["writer"])
    for day in days:
        sandbox.as_of = day
        r = run_cli("snapshot", "--codes", *CODES, env=one)
        assert r.returncode == 0 and "5 of 5 codes kept" in r.stdout, r.stderr
    two = cli_env(sandbox, tmp_path, "two", empty_desk["writer"])
    before = sandbox.request_count
    r = run_cli("history", "700", "5", "--field", "mm_sh", "--from", days[0].isoformat(), "--to", days[1].isoformat(),
                "--format", "csv", env=two)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert [tuple(line.split(",")[:2]) for line in r.stdout.splitlines()[1:]] == [
        (c, d.isoformat()) for c in ("00700", "00005") for d in days]
    r = run_cli("fetch", *CODES, "--fields", "mm_sh", "--format", "csv", env=two)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert len(r.stdout.strip().splitlines()) == 6
    assert sandbox.request_count == before  # neither the history nor today's fetch asked the service


def test_the_cli_with_the_desk_down_serves_the_local_copy_and_says_so_in_one_line(empty_desk, sandbox, tmp_path):
    mine = cli_env(sandbox, tmp_path, "mine", empty_desk["writer"])
    assert run_cli("fetch", *CODES, env=mine).returncode == 0
    down = dict(mine, XL_ADDIN_STORE=f"postgresql://dave@127.0.0.1:{free_port()}/rt")
    before = sandbox.request_count
    r = run_cli("fetch", *CODES, "--fields", "mm_sh", env=down)
    assert r.returncode == 0 and sandbox.request_count == before and r.stderr == ""  # all fresh locally
    r = run_cli("fetch", *CODES, "2318", "--fields", "mm_sh", env=down)  # one the local copy lacks
    assert r.returncode == 0 and sandbox.request_count == before + 1 and len(r.stdout.splitlines()) >= 6
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the desk store" in lines[0] and "working from the local copy" in lines[0]
    r = run_cli("history", "700", "--field", "mm_sh", env=down)
    assert r.returncode == 0 and "mm_sh" in r.stdout
    assert len(r.stderr.strip().splitlines()) == 1 and "read from the local copy" in r.stderr
    r = run_cli("store", "status", env=down)
    assert r.returncode == 1 and "local copy location" in r.stdout and "snapshots:" in r.stdout
    assert len(r.stderr.strip().splitlines()) == 1 and "cannot reach the desk store" in r.stderr
    assert "formulas, refresh and fetch use the local copy" in r.stderr
    with open_store(tmp_path / "mine" / "mm_ah.sqlite3") as local:
        before = local.info(sandbox.url).last_fetch
    r = run_cli("snapshot", "--codes", *CODES, env=down)  # the desk did not get the day's snapshot: exit 1
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cannot reach the desk store" in r.stderr and "kept in the local copy only" in r.stderr
    with open_store(tmp_path / "mine" / "mm_ah.sqlite3") as local:  # the local file did
        assert local.info(sandbox.url).last_fetch > before
        assert {s.fetched_at for s in local.latest(CODES, source=sandbox.url).values()} == {
            local.info(sandbox.url).last_fetch}
    r = run_cli("store", "status", env=mine)
    assert r.returncode == 0 and "backend:      postgresql" in r.stdout


def test_lx_mmah_hist_reads_the_desk_and_the_local_copy_when_the_desk_is_down(
        empty_desk, as_writer, settings, sandbox, tmp_path, udfs):
    days = [sandbox.as_of - dt.timedelta(days=1), sandbox.as_of]
    ann = service_for(settings, sandbox, tmp_path, "ann", empty_desk["writer"])
    for day in days:
        sandbox.as_of = day
        ann.fetch(["00700"], use_cache=False)
    ann.close()
    ben = service_for(settings, sandbox, tmp_path, "ben", empty_desk["writer"], formulas=True)  # nothing local
    set_shared(ben)
    out = xh.call(udfs.LX_MMAH_HIST, 700.0, "mm_sh", days[0].isoformat(), days[1].isoformat())
    assert [row[0].date() for row in out] == days and all(isinstance(row[1], (int, float)) for row in out)
    assert ben.history_store().last_from == "desk"
    down = service_for(settings, sandbox, tmp_path, "ann", f"postgresql://dave@127.0.0.1:{free_port()}/rt",
                       formulas=True)  # Ann's machine, the desk gone: her local copy has both days
    set_shared(down)
    assert xh.call(udfs.LX_MMAH_HIST, 700.0, "mm_sh", days[0].isoformat(), days[1].isoformat()) == out
    assert down.history_store().last_from == "local"
    assert "cannot reach the desk store" in info(udfs)["desk store state"]


def test_the_desks_snapshot_follows_the_codes_anyone_on_the_desk_fetched(empty_desk, sandbox, tmp_path, pg_server):
    two = cli_env(sandbox, tmp_path, "two", empty_desk["writer"])
    assert run_cli("fetch", "2318", "939", env=two).returncode == 0  # Ben's codes, in the desk
    one = cli_env(sandbox, tmp_path, "one", empty_desk["writer"])
    r = run_cli("snapshot", "--codes", "700", env=one)  # the snapshot machine never fetched 02318 itself
    assert r.returncode == 0 and "3 of 3 codes kept" in r.stdout, r.stdout + r.stderr
    assert pg_server.psql("SELECT count(*) FROM xl_addin.history WHERE replaced = 1", db="rt") == "2"


def test_a_desk_that_stops_answering_mid_session_holds_a_formula_only_its_answer_timeout(
        as_writer, settings, sandbox, tmp_path, udfs):
    """The desk answered, then its server froze (a hung host, a VM paused): TCP is still
    acknowledged, so the kept connection's next query waited for ever and the formula with it
    (the connect timeout covers only a new connection). Now the socket is cut at the answer
    timeout, a new connection is tried once (the connect timeout), and the formula is answered."""
    import signal
    import time

    with PostgresServer() as server:
        if server.why_not:
            pytest.fail(server.why_not)
        from xl_addin.store.desk import init_store

        init_store(server.url, password=server.password)
        os.environ["PGPASSWORD"] = server.password  # monkeypatched by as_writer: restored after the test
        ben = service_for(settings, sandbox, tmp_path, "ben", server.url, formulas=True)
        ben.desk._answer_timeout = 2.0
        set_shared(ben)
        assert isinstance(xh.call(udfs.LX_MMAH, 700.0, "mm_sh")[0][0], (int, float))
        frozen = [int((server.tmp / "data" / "postmaster.pid").read_text().split()[0]),
                  ben.desk.store()._conn.info.backend_pid]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            done = []
            started = time.monotonic()
            worker = threading.Thread(target=lambda: done.append(xh.call(udfs.LX_MMAH, 5.0, "mm_sh")), daemon=True)
            worker.start()
            worker.join(20)
            waited = time.monotonic() - started
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        assert done, "the formula still waits for the frozen desk"
        assert isinstance(done[0][0][0], (int, float)) and waited < 10, (done, waited)
        assert "did not answer within 2 s" in str(ben.desk.problem) or "cannot reach" in str(ben.desk.problem)
        ben.close()


def test_an_import_into_the_desk_is_not_cut_at_a_formulas_answer_timeout(empty_desk, as_writer, sandbox, tmp_path,
                                                                           pg_server):
    """`history import` of a large file into the desk goes through the desk layer's history: it must
    not be held to the answer timeout that bounds a formula's wait (here all but zero)."""
    from xl_addin.desk_layer import DeskHistory, DeskLayer
    from xl_addin.records import parse_record
    from xl_addin.store.base import Snapshot

    layer = DeskLayer(empty_desk["writer"], sandbox.url, answer_timeout=1e-6)
    history = DeskHistory(layer, tmp_path / "local.sqlite3")
    rows = [Snapshot.from_record(sandbox.url, parse_record(sandbox.dataset.record(c)), 1000.0) for c in CODES]
    assert history.put(rows).inserted == len(CODES)
    assert len(list(history.export_rows(sandbox.url))) == len(CODES)
    history.close()
    assert len(desk_rows(pg_server, sandbox.url)) == len(CODES)
