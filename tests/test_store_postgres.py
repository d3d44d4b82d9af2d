"""The desk store against a real PostgreSQL server (tests/pg_server.py): `store init` and
its roles, the schema's version, credentials, TLS, faults, concurrent writers, files in
and out. The shared contract runs on it too, in tests/test_store.py."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest

from conftest import ROOT, run_cli
from keyring_service import BACKEND, SecretService
from pg_server import PostgresServer
from test_store import DAYS, SRC, snap
from xl_addin.exceptions import ConfigError, LixingerError, StoreError
from xl_addin.store import Snapshot, open_store, schema, transfer
from xl_addin.store.desk import init_store
from xl_addin.store.location import parse_desk_url
from xl_addin.store.postgres import DESK_VERSION

READER_PW, WRITER_PW = "reader-Pw-5fz81q", "writer-Pw-0x9kq2"
READER_ROLE, WRITER_ROLE = "desk_reader", "desk_writer"  # roles are the cluster's: not the defaults other tests make
SEEN: list[str] = []  # every message and repr these tests saw: scanned for passwords at the end


@pytest.fixture(scope="module", autouse=True)
def no_password_anywhere(pg_server):
    """After the module: no password in any message, repr or CLI output the tests collected."""
    yield
    for secret in (READER_PW, WRITER_PW, pg_server.password, "s3cret-pw"):
        assert all(secret not in text for text in SEEN), secret


def one_line(exc_or_text) -> str:
    text = str(exc_or_text.value if hasattr(exc_or_text, "value") else exc_or_text)
    SEEN.append(text)
    assert "\n" not in text.strip() and text.strip(), text
    return text


@pytest.fixture(scope="module")
def desk(pg_server):
    """A desk database, initialised, with a reader login (alice) and a writer login (bob)."""
    pg_server.psql("CREATE DATABASE desk")
    owner = pg_server.url_for("postgres", "desk")
    first = init_store(owner, password=pg_server.password, reader=READER_ROLE, writer=WRITER_ROLE)
    pg_server.psql(f"CREATE ROLE alice LOGIN PASSWORD '{READER_PW}' IN ROLE {READER_ROLE}; "
                   f"CREATE ROLE bob LOGIN PASSWORD '{WRITER_PW}' IN ROLE {WRITER_ROLE}")
    return {"owner": owner, "reader": pg_server.url_for("alice", "desk"), "writer": pg_server.url_for("bob", "desk"),
            "first": first}


# -- store init ---------------------------------------------------------------------------------------
def test_init_creates_the_version_table_and_two_roles(pg_server, desk):
    first = desk["first"]
    assert (first.version_before, first.version) == (0, DESK_VERSION)
    assert set(first.roles_created) == {READER_ROLE, WRITER_ROLE}
    assert pg_server.psql("SELECT version FROM xl_addin.schema_version ORDER BY version", db="desk").split() == ["2", "3"]
    roles = pg_server.psql(f"SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN "
                           f"('{READER_ROLE}', '{WRITER_ROLE}') ORDER BY 1")
    assert roles.splitlines() == [f"{READER_ROLE}|f", f"{WRITER_ROLE}|f"]
    grants = pg_server.psql("SELECT grantee, privilege_type FROM information_schema.role_table_grants "
                            "WHERE table_schema = 'xl_addin' AND table_name = 'history' ORDER BY 1, 2", db="desk")
    assert f"{READER_ROLE}|SELECT" in grants and f"{WRITER_ROLE}|INSERT" in grants
    assert f"{READER_ROLE}|INSERT" not in grants and f"{READER_ROLE}|UPDATE" not in grants


def test_init_again_changes_nothing_and_keeps_the_history(pg_server, desk):
    writer = open_store(desk["writer"], password=WRITER_PW)
    writer.put([snap("00700", DAYS[0])])
    again = init_store(desk["owner"], password=pg_server.password, reader=READER_ROLE, writer=WRITER_ROLE)
    assert (again.version_before, again.version, again.roles_created) == (DESK_VERSION, DESK_VERSION, ())
    assert "already in place" in one_line(again.line())
    assert pg_server.psql("SELECT count(*) FROM xl_addin.schema_version", db="desk") == "2"
    assert "00700" in open_store(desk["reader"], password=READER_PW).latest(["00700"], source=SRC)
    writer.close()


def test_the_reader_reads_and_asking_it_to_write_is_one_line(desk):
    open_store(desk["writer"], password=WRITER_PW).put([snap("00005", DAYS[1])])
    reader = open_store(desk["reader"], password=READER_PW)
    assert reader.latest(["00005"], source=SRC)["00005"].data_date == DAYS[1]
    assert reader.can_write() is False and open_store(desk["writer"], password=WRITER_PW).can_write() is True
    before = reader.info().snapshots
    with pytest.raises(StoreError, match="may only read snapshots") as caught:
        reader.put([snap("00939", DAYS[1])])
    assert "alice" in one_line(caught) and "writer role" in str(caught.value)
    with pytest.raises(StoreError, match="may only read"):
        reader.mark_absent(["12345"], 1.0, source=SRC)
    assert reader.info().snapshots == before  # and the connection still serves reads


def test_a_reader_cannot_run_init(desk):
    with pytest.raises(StoreError) as caught:
        init_store(desk["reader"], password=READER_PW)
    assert "owner" in one_line(caught)


def test_a_store_before_init_says_who_runs_it(pg_server):
    pg_server.psql("CREATE DATABASE bare")
    with pytest.raises(StoreError, match="store init") as caught:
        open_store(pg_server.url_for("postgres", "bare"), password=pg_server.password).info()
    one_line(caught)


def test_a_schema_from_a_newer_version_is_refused_by_stores_and_by_init(pg_server):
    pg_server.psql("CREATE DATABASE future")
    url = pg_server.url_for("postgres", "future")
    init_store(url, password=pg_server.password)
    pg_server.psql("INSERT INTO xl_addin.schema_version VALUES (99, 0)", db="future")
    with pytest.raises(StoreError, match=r"schema 99, made by a newer xl_addin") as caught:
        open_store(url, password=pg_server.password).latest(["00700"], source=SRC)
    one_line(caught)
    with pytest.raises(StoreError, match="newer xl_addin"):
        init_store(url, password=pg_server.password)
    assert pg_server.psql("SELECT max(version) FROM xl_addin.schema_version", db="future") == "99"


# -- credentials and TLS -------------------------------------------------------------------------
def test_a_wrong_password_is_one_line_without_it(desk):
    with pytest.raises(StoreError) as caught:
        open_store(desk["reader"], password="not-" + READER_PW).info()
    text = one_line(caught)
    assert "password authentication failed" in text and "store login" in text
    assert READER_PW not in text


def test_no_password_at_all_says_to_log_in(desk):
    with pytest.raises(StoreError, match="store login") as caught:  # the keyring here is empty
        open_store(desk["reader"]).info()
    one_line(caught)


@pytest.mark.parametrize("url", [
    "postgresql://alice:s3cret-pw@db.desk.local/lixinger",
    "postgresql://alice:s3cret-pw@127.0.0.1:5432/lixinger",
    "postgres://alice@db.desk.local/lixinger?password=s3cret-pw",
])
def test_a_url_with_a_password_is_refused_and_says_where_it_goes(url, tmp_path, monkeypatch):
    for attempt in (lambda: parse_desk_url(url), lambda: open_store(url)):
        with pytest.raises(ConfigError, match="keyring: run `lx-addin store login`") as caught:
            attempt()
        assert "s3cret-pw" not in one_line(caught)
    monkeypatch.setenv("XL_ADDIN_STORE", url)
    from xl_addin.config import Settings

    with pytest.raises(ConfigError, match="XL_ADDIN_STORE has a password in it") as caught:
        Settings.load()
    assert "s3cret-pw" not in one_line(caught)
    monkeypatch.delenv("XL_ADDIN_STORE")
    r = run_cli("config", "set", "store", url)
    assert r.returncode == 1 and "s3cret-pw" not in r.stdout + r.stderr and "store login" in r.stderr
    assert not (tmp_path / "settings.toml").exists()  # nothing written
    SEEN.extend([r.stdout, r.stderr])


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer"])
def test_another_host_without_tls_is_refused_before_connecting(mode):
    # db.desk.invalid cannot resolve: had a connection been tried, the error would say so
    with pytest.raises(ConfigError, match=f"refusing sslmode={mode} to db.desk.invalid") as caught:
        open_store(f"postgresql://alice@db.desk.invalid/lixinger?sslmode={mode}")
    assert "unencrypted" in one_line(caught)


def test_tls_defaults_to_verify_full_off_this_machine_and_plain_is_allowed_on_it():
    assert parse_desk_url("postgresql://alice@db.desk.local/lixinger").sslmode == "verify-full"
    assert parse_desk_url("postgresql://alice@db.desk.local/lixinger?sslmode=require").sslmode == "require"
    assert parse_desk_url("postgresql://alice@127.0.0.1/lixinger").sslmode == "prefer"
    assert parse_desk_url("postgresql://alice@localhost/lixinger?sslmode=disable").sslmode == "disable"
    url = parse_desk_url("postgresql://alice@db.desk.local/lixinger")
    assert url.key == "alice@db.desk.local:5432/lixinger" and url.display == "postgresql://alice@db.desk.local:5432/lixinger"


def test_the_store_setting_default_file_and_url(monkeypatch, tmp_path):
    from xl_addin.config import Settings, info_rows

    settings = Settings.load()
    assert settings.store is None and settings.store_location == settings.cache_path
    (tmp_path / "settings.toml").write_text('store = "postgresql://alice@db.desk.local/lixinger"\n')
    assert Settings.load().store_location == "postgresql://alice@db.desk.local:5432/lixinger"
    assert any(row[0] == f"store (file {tmp_path / 'settings.toml'})" for row in info_rows())
    monkeypatch.setenv("XL_ADDIN_STORE", str(tmp_path / "elsewhere.sqlite3"))
    assert Settings.load().store_location == tmp_path / "elsewhere.sqlite3"


def test_importing_xl_addin_does_not_load_psycopg(tmp_path, desk, pg_server):
    code = ("import sys, xl_addin, xl_addin.store, xl_addin.config, xl_addin.cli; "
            "from xl_addin.store import open_store; s = open_store(sys.argv[1]); s.info(); "
            "print('psycopg' in sys.modules, end=' '); "
            "open_store(sys.argv[2], password=sys.stdin.read()).info(); print('psycopg' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "h.sqlite3"), desk["reader"]], input=READER_PW,
                       capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.strip() == "False True", r.stderr


# -- faults ------------------------------------------------------------------------------------------
def test_the_database_going_down_mid_use_is_one_line_and_it_comes_back():
    with PostgresServer() as server:
        if server.why_not:
            pytest.fail(server.why_not)
        init_store(server.url, password=server.password)
        store = open_store(server.url, password=server.password)
        store.put([snap("00700", DAYS[0])])
        server.stop("fast")
        with pytest.raises(StoreError, match="lost the connection to the desk store") as caught:
            store.put([snap("00700", DAYS[1])])
        one_line(caught)
        with pytest.raises(StoreError, match="cannot reach the desk store") as caught:
            store.latest(["00700"], source=SRC)
        assert "is the server up" in one_line(caught)
        server.start()
        assert store.latest(["00700"], source=SRC)["00700"].data_date == DAYS[0]  # reconnects by itself
        store.close()


def test_a_server_that_is_not_there_is_one_line(pg_server):
    from pg_server import free_port

    url = f"postgresql://alice@127.0.0.1:{free_port()}/desk"
    with pytest.raises(StoreError, match="cannot reach the desk store") as caught:
        open_store(url, password=READER_PW).info()
    one_line(caught)


# -- many writers at once ------------------------------------------------------------------------
WRITE = """
import sys
from test_store import DAYS, snap
from xl_addin.store import open_store
store = open_store(sys.argv[1], password=sys.stdin.read())
codes = sys.argv[2].split(",")
total = None
for day in DAYS[:5]:  # each process writes the same snapshots, the same fetch time
    r = store.put(snap(c, day) for c in codes)
    total = r if total is None else total + r
print(total.inserted, total.replaced, total.unchanged)
"""


def test_concurrent_writers_of_the_same_snapshots_never_duplicate_or_fail(pg_server, desk):
    pg_server.psql("TRUNCATE xl_addin.history, xl_addin.absent", db="desk")
    from xl_addin.sandbox.data import universe

    codes = ",".join(universe()[:120])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    procs = [subprocess.Popen([sys.executable, "-c", WRITE, desk["writer"], codes], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(6)]
    outs = [p.communicate(WRITER_PW, timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [e for _, e in outs]
    counts = [tuple(map(int, o.split())) for o, _ in outs]
    assert sum(c[0] for c in counts) == 120 * 5  # each snapshot inserted by exactly one writer
    assert all(c[1] == 0 for c in counts) and all(c[0] + c[2] == 600 for c in counts)
    assert pg_server.psql("SELECT count(*), count(DISTINCT (source, code, data_date)), sum(replaced) "
                          "FROM xl_addin.history", db="desk") == "600|600|0"


def test_a_newer_fetch_from_another_writer_replaces_and_is_counted(pg_server, desk):
    pg_server.psql("TRUNCATE xl_addin.history, xl_addin.absent", db="desk")
    a, b = open_store(desk["writer"], password=WRITER_PW), open_store(desk["writer"], password=WRITER_PW)
    assert a.put([snap("00700", DAYS[2], fetched_at=100.0)]).inserted == 1
    assert b.put([snap("00700", DAYS[2], fetched_at=200.0)]).replaced == 1
    assert a.put([snap("00700", DAYS[2], fetched_at=150.0)]).unchanged == 1
    assert a.latest("00700", source=SRC)["00700"].fetched_at == 200.0 and a.info().replacements == 1


def _xmins(pg_server, day) -> set[str]:
    """The row versions of one day's rows: a row rewritten gets a new one."""
    return set(pg_server.psql(f"SELECT xmin FROM xl_addin.history WHERE data_date = '{day}'", db="desk").split())


def test_a_colleagues_later_fetch_of_the_same_snapshot_moves_its_time_without_rewriting_a_row(pg_server, desk):
    pg_server.psql("TRUNCATE xl_addin.history, xl_addin.absent, xl_addin.fetches", db="desk")
    ann, ben = open_store(desk["writer"], password=WRITER_PW), open_store(desk["writer"], password=WRITER_PW)
    codes = ["00700", "00005", "09988"]
    assert ann.put(snap(c, DAYS[3], fetched_at=100.0) for c in codes).inserted == 3
    written = _xmins(pg_server, DAYS[3])
    later = ben.put(snap(c, DAYS[3], fetched_at=200.0) for c in codes)
    assert (later.inserted, later.replaced, later.unchanged) == (0, 3, 0)  # counted as SQLite counts it
    assert _xmins(pg_server, DAYS[3]) == written  # no wide row written again
    assert {s.fetched_at for s in ann.latest(codes, source=SRC).values()} == {200.0}  # but the fetch time is Ben's
    assert ann.info().replacements == 3 and ann.info().last_fetch == 200.0
    assert ann.codes_seen(150.0, source=SRC) == sorted(codes)
    assert ben.put(snap(c, DAYS[3], fetched_at=150.0) for c in codes).unchanged == 3  # an older one changes nothing
    exported = list(ann.export_rows(SRC))
    assert {s.fetched_at for s in exported} == {200.0} and len(exported) == 3
    # two fetches' rows (two formulas' fetches), fetched again together later: both move forward
    assert ann.put(snap(c, DAYS[6], fetched_at=100.0) for c in codes[:2]).inserted == 2
    assert ann.put([snap(codes[2], DAYS[6], fetched_at=110.0)]).inserted == 1
    written = _xmins(pg_server, DAYS[6])
    assert ben.put(snap(c, DAYS[6], fetched_at=300.0) for c in codes).replaced == 3
    assert _xmins(pg_server, DAYS[6]) == written
    assert [ben.latest([c], source=SRC)[c].fetched_at for c in codes] == [300.0] * 3
    assert ben.put(snap(c, DAYS[6], fetched_at=400.0) for c in codes).replaced == 3  # now one fetch's rows
    assert _xmins(pg_server, DAYS[6]) == written and ann.info().replacements == 9


def test_part_of_a_fetch_or_other_values_are_written_and_only_those_rows_move(pg_server, desk):
    pg_server.psql("TRUNCATE xl_addin.history, xl_addin.absent, xl_addin.fetches", db="desk")
    store = open_store(desk["writer"], password=WRITER_PW)
    codes = ["00700", "00005", "09988"]
    store.put(snap(c, DAYS[4], fetched_at=100.0) for c in codes)
    # a formula's fetch of one of the three, later: that one moves, the others keep their time
    assert store.put([snap("00005", DAYS[4], fetched_at=200.0)]).replaced == 1
    times = {c: s.fetched_at for c, s in store.latest(codes, source=SRC).items()}
    assert times == {"00700": 100.0, "00005": 200.0, "09988": 100.0}
    # the service's values changed, then changed back: each later fetch wins with its own values
    first = snap("00700", DAYS[4], fetched_at=300.0)
    changed = Snapshot(SRC, "00700", DAYS[4], 400.0, {**first.values, "mm_sh": 1.0})
    assert store.put([changed]).replaced == 1 and store.latest("00700", source=SRC)["00700"].values["mm_sh"] == 1
    back = store.put([snap("00700", DAYS[4], fetched_at=500.0)])
    assert back.replaced == 1
    kept = store.latest("00700", source=SRC)["00700"]
    assert (kept.fetched_at, kept.values) == (500.0, first.values)


def test_history_emptied_by_hand_is_written_again(pg_server, desk):
    pg_server.psql("TRUNCATE xl_addin.history, xl_addin.absent, xl_addin.fetches", db="desk")
    store = open_store(desk["writer"], password=WRITER_PW)
    batch = [snap(c, DAYS[5], fetched_at=100.0) for c in ("00700", "00005")]
    assert store.put(batch).inserted == 2
    pg_server.psql("TRUNCATE xl_addin.history", db="desk")  # the fetches left behind say nothing now
    assert store.put(batch).inserted == 2 and store.info().snapshots == 2
    pg_server.psql("DELETE FROM xl_addin.history WHERE code = '00005'", db="desk")  # one of a fetch's rows
    assert store.put(batch).inserted == 1 and store.info().snapshots == 2


def test_a_version_2_desk_is_brought_to_3_by_init_keeping_every_row_and_its_fetch_time(pg_server):
    from xl_addin.store import postgres

    pg_server.psql("CREATE DATABASE old_desk")
    url = pg_server.url_for("postgres", "old_desk")
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=pg_server.port, user="postgres", password=pg_server.password,
                         dbname="old_desk", autocommit=True) as conn:  # the layout the previous release made
        conn.execute(f"CREATE SCHEMA {postgres.SCHEMA}")
        conn.execute(schema.VERSION_DDL.replace("schema_version", postgres.T_VERSION, 1))
        postgres._to_v2(conn)
        conn.execute(f"INSERT INTO {postgres.T_VERSION} VALUES (2, 0)")
        for code, day, at in (("00700", DAYS[0], 100.0), ("00005", DAYS[0], 100.0), ("00700", DAYS[1], 250.0)):
            values = snap(code, day).values
            conn.execute(f"INSERT INTO {postgres.T_HISTORY} (source, code, data_date, fetched_at, replaced, "
                         f"{', '.join(values)}) VALUES (%s, %s, %s, %s, 1, {', '.join(['%s'] * len(values))})",
                         (SRC, code, day, at, *values.values()))
    with pytest.raises(StoreError, match="runs `lx-addin store init` to bring it to 3") as caught:
        open_store(url, password=pg_server.password).info()
    one_line(caught)
    result = init_store(url, password=pg_server.password)
    assert (result.version_before, result.version) == (2, DESK_VERSION)
    store = open_store(url, password=pg_server.password)
    info = store.info()
    assert (info.snapshots, info.replacements, info.last_fetch, info.schema_version) == (3, 3, 250.0, DESK_VERSION)
    assert [(s.code, s.data_date, s.fetched_at) for s in store.export_rows(SRC)] == [
        ("00005", DAYS[0], 100.0), ("00700", DAYS[0], 100.0), ("00700", DAYS[1], 250.0)]
    assert store.latest("00700", source=SRC)["00700"].values == snap("00700", DAYS[1]).values
    # the rows kept before have no digest: a newer fetch of them writes them once, then moves forward
    assert store.put([snap("00700", DAYS[1], fetched_at=300.0)]).replaced == 1
    assert store.put([snap("00700", DAYS[1], fetched_at=400.0)]).replaced == 1
    assert store.latest("00700", source=SRC)["00700"].fetched_at == 400.0
    assert store.codes_seen(260.0, source=SRC) == ["00700"]
    again = init_store(url, password=pg_server.password)
    assert (again.version_before, again.version) == (DESK_VERSION, DESK_VERSION)
    store.close()


# -- files in and out ------------------------------------------------------------------------------
def test_export_from_sqlite_import_into_postgres_export_again_is_byte_identical(pg_server, desk, tmp_path):
    from test_store import OTHER, TRICKY
    from xl_addin.store import Snapshot

    pg_server.psql("TRUNCATE xl_addin.history, xl_addin.absent", db="desk")
    local = open_store(tmp_path / "mine.sqlite3")
    local.put(snap(c, d) for c in ("00700", "00005", "09988") for d in DAYS)
    local.put([Snapshot(OTHER, "00001", DAYS[0], 1_773_000_000.123456789, TRICKY)])
    transfer.export_file(local, tmp_path / "a.csv")
    shared = open_store(desk["writer"], password=WRITER_PW)
    result = transfer.import_file(shared, tmp_path / "a.csv")
    assert result.inserted == local.info().snapshots
    assert transfer.import_file(shared, tmp_path / "a.csv").unchanged == result.inserted  # idempotent
    transfer.export_file(open_store(desk["reader"], password=READER_PW), tmp_path / "b.csv")
    assert (tmp_path / "b.csv").read_bytes() == (tmp_path / "a.csv").read_bytes()


# -- the CLI and the keyring (a real Secret Service) -----------------------------------------------
@pytest.fixture(scope="module")
def secret_service():
    with SecretService() as ss:
        if not ss.env:
            (pytest.fail if os.environ.get("CI", "").lower() == "true" else pytest.skip)(f"no Secret Service: {ss.why_not}")
        yield ss


@pytest.mark.keyring
def test_login_status_init_logout_through_the_cli(secret_service, pg_server, desk, tmp_path):
    env = dict(secret_service.env, PYTHON_KEYRING_BACKEND=BACKEND)
    outputs = []

    def cli(*args, input=None, extra=None):
        r = run_cli(*args, env=dict(env, **(extra or {})), input=input)
        outputs.extend([r.stdout, r.stderr])
        return r

    r = cli("store", "status")  # the default: the local file
    assert r.returncode == 0 and "backend:      sqlite" in r.stdout
    r = cli("config", "set", "store", desk["reader"])
    assert r.returncode == 0
    r = cli("store", "login", input="Wr0ng-Zq81xv\n")
    assert r.returncode == 1 and "password authentication failed" in r.stderr and "nothing was stored" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = cli("store", "status")
    assert r.returncode == 1 and "store login" in r.stderr
    r = cli("store", "login", input=READER_PW + "\n")
    assert r.returncode == 0 and "alice@127.0.0.1" in r.stdout, r.stderr
    r = cli("store", "status")
    assert r.returncode == 0 and "backend:      postgresql" in r.stdout and "may only read" in r.stdout, r.stderr
    # the password is under its own service, keyed by the login; the token's entry is untouched
    probe = ("import keyring, sys; print(keyring.get_password('xl_addin-desk-store', sys.argv[1]) == sys.argv[2], "
             "keyring.get_password('lixinger', 'default'))")
    check = subprocess.run([sys.executable, "-c", probe, f"alice@127.0.0.1:{pg_server.port}/desk", READER_PW],
                           capture_output=True, text=True, env=dict(os.environ, **env))
    assert check.stdout.split() == ["True", "None"], check.stderr
    # the owner: init through the CLI, with the owner's password from the keyring
    owner = ("--url", desk["owner"])
    assert cli("store", "login", *owner, input=pg_server.password + "\n").returncode == 0
    r = cli("store", "init", *owner, "--reader-role", READER_ROLE, "--writer-role", WRITER_ROLE)
    assert r.returncode == 0 and "already in place" in r.stdout, r.stderr
    assert cli("store", "logout", *owner).returncode == 0
    r = cli("store", "logout")
    assert r.returncode == 0 and "Deleted the password" in r.stdout
    r = cli("store", "status")
    assert r.returncode == 1 and "store login" in r.stderr
    settings = (tmp_path / "settings.toml").read_text()
    for secret in (READER_PW, pg_server.password):
        assert secret not in settings and all(secret not in text for text in outputs)
    SEEN.extend(outputs)


def test_no_password_in_anything_these_tests_saw(pg_server, desk):
    """Reprs now, and every message collected so far (the module's teardown scans them all again)."""
    store = open_store(desk["reader"], password=READER_PW)
    SEEN.extend([repr(store), str(store.info()), repr(store._password), repr(store.url)])
    for secret in (READER_PW, WRITER_PW, pg_server.password, "s3cret-pw"):
        assert all(secret not in text for text in SEEN), secret


def test_init_needs_a_desk_url_not_the_local_file():
    r = run_cli("store", "init")
    assert r.returncode == 1 and "no desk database to use" in r.stderr and len(r.stderr.splitlines()) == 1


def test_two_inits_at_once_both_succeed_and_migrate_once(pg_server):
    import threading

    pg_server.psql("CREATE DATABASE twice")
    url = pg_server.url_for("postgres", "twice")
    results, errors = [], []

    def init():
        try:
            results.append(init_store(url, password=pg_server.password, reader="twice_reader", writer="twice_writer"))
        except Exception as exc:  # reported below
            errors.append(str(exc))

    threads = [threading.Thread(target=init) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 4
    befores = sorted(r.version_before for r in results)  # one made it; the others found some or all of it done
    assert befores[0] == 0 and 0 not in befores[1:] and {r.version for r in results} == {DESK_VERSION}
    assert sorted(role for r in results for role in r.roles_created) == ["twice_reader", "twice_writer"]
    assert pg_server.psql("SELECT count(*) FROM xl_addin.schema_version", db="twice") == "2"


def test_a_writer_stuck_mid_write_holds_others_only_for_the_lock_timeout(pg_server, desk):
    import psycopg

    from xl_addin.store.postgres import PostgresStore

    stuck = psycopg.connect(host="127.0.0.1", port=pg_server.port, user="bob", password=WRITER_PW, dbname="desk")
    try:  # another writer, mid-write on the same snapshot, that never commits
        stuck.execute("INSERT INTO xl_addin.history (source, code, data_date, fetched_at, fetch_id) "
                      "VALUES (%s, %s, %s, 1.0, 0)",
                      (SRC, "02318", DAYS[4]))
        other = PostgresStore(desk["writer"], password=WRITER_PW, lock_timeout=0.5)
        before = other.info().snapshots
        with pytest.raises(StoreError, match="is busy: another writer held it for more than 0.5 s") as caught:
            other.put([snap("02318", DAYS[4], fetched_at=9e9)])
        assert "nothing was written" in one_line(caught)
        stuck.rollback()
        assert other.put([snap("02318", DAYS[4], fetched_at=9e9)]).inserted == 1 and other.info().snapshots == before + 1
    finally:
        stuck.close()
