"""The token in the OS keyring: a real Secret Service (gnome-keyring on D-Bus), CLI subprocesses."""

import json
import os
import pty
import select
import subprocess
import sys

import pytest

from conftest import ROOT, run_cli
from keyring_service import BACKEND, SecretService

TESTS = os.path.dirname(__file__)


@pytest.fixture(scope="module")
def secret_service():
    with SecretService() as ss:
        if not ss.env:
            pytest.skip(f"no Secret Service: {ss.why_not}")
        yield ss


@pytest.fixture
def env(secret_service, sandbox, tmp_path):
    e = dict(secret_service.env)
    e.update(
        PYTHON_KEYRING_BACKEND=BACKEND,
        LIXINGER_BASE_URL=sandbox.url,
        XL_ADDIN_CACHE_DIR=str(tmp_path / "cache"),
        XL_ADDIN_PROFILE="",
    )
    os.environ.pop("LIXINGER_TOKEN", None)
    yield e
    run_cli("token", "delete", env=e)
    run_cli("--profile", "team", "token", "delete", env=e)


def _scan(token, outputs, folders):
    for text in outputs:
        assert token not in text
    for folder in folders:
        for root, _, files in os.walk(folder):
            for name in files:
                with open(os.path.join(root, name), "rb") as fh:
                    assert token.encode() not in fh.read(), os.path.join(root, name)


def test_set_status_fetch_override_delete(env, sandbox, tmp_path):
    token = sandbox.token
    outputs = []

    def cli(*args, **kw):
        r = run_cli(*args, env=kw.pop("extra", None) and dict(env, **kw["e"]) or env, input=kw.get("input"))
        outputs.extend([r.stdout, r.stderr])
        return r

    r = cli("token", "set", input=f"  {token}  \n")
    assert r.returncode == 0 and "SecretService" in r.stdout

    r = cli("token", "status")
    assert r.returncode == 0
    assert f"{token[:4]}…{token[-4:]}" in r.stdout and "keyring" in r.stdout

    r = cli("fetch", "700", "--format", "json")  # no LIXINGER_TOKEN anywhere
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["mm_sh"] == 1085238279

    r = cli("token", "test")
    assert r.returncode == 0 and r.stdout.startswith("OK")

    override = dict(env, LIXINGER_TOKEN="an-overriding-token-123")
    r = run_cli("fetch", "700", "--no-cache", env=override)
    outputs.extend([r.stdout, r.stderr])
    assert r.returncode == 1 and "rejected the token" in r.stderr  # the variable won over the keyring
    r = run_cli("token", "status", env=override)
    assert "environment" in r.stdout and "overrides" in r.stdout

    r = cli("token", "delete")
    assert r.returncode == 0 and "Deleted" in r.stdout
    r = cli("token", "status")
    assert r.returncode == 1
    r = cli("fetch", "700", "--no-cache")
    assert r.returncode == 1
    assert "lx-addin token set" in r.stderr and "LIXINGER_TOKEN" in r.stderr
    _scan(token, outputs, [tmp_path])


def test_profiles_keep_separate_tokens(env, sandbox):
    assert run_cli("--profile", "team", "token", "set", env=env, input=sandbox.token + "\n").returncode == 0
    assert run_cli("token", "status", env=env).returncode == 1  # default profile still empty
    r = run_cli("fetch", "700", env=dict(env, XL_ADDIN_PROFILE="team"))
    assert r.returncode == 0, r.stderr


def test_prompt_does_not_echo(env, sandbox):
    master, slave = pty.openpty()

    def make_tty():
        os.setsid()
        import fcntl
        import termios

        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "xl_addin", "token", "set"], stdin=slave, stdout=slave, stderr=slave,
        env=dict(os.environ, **env), preexec_fn=make_tty, cwd=ROOT,
    )
    os.close(slave)
    seen = b""

    def read_until(needle, timeout=20):
        nonlocal seen
        while needle not in seen:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                break
            try:
                chunk = os.read(master, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk

    read_until(b"input hidden")
    os.write(master, sandbox.token.encode() + b"\n")
    read_until(b"Stored")
    proc.wait(20)
    os.close(master)
    assert b"Stored the token" in seen, seen
    assert sandbox.token.encode() not in seen
    assert run_cli("token", "status", env=env).returncode == 0


def test_empty_token_is_rejected(env):
    r = run_cli("token", "set", env=env, input="   \n")
    assert r.returncode == 1 and "nothing was stored" in r.stderr


def test_no_keyring_backend_at_all(tmp_path):
    e = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    r = run_cli("token", "set", env=e, input="abcdefgh12345678\n")
    assert r.returncode == 1 and "no system keyring" in r.stderr and "LIXINGER_TOKEN" in r.stderr
    r = run_cli("fetch", "700", env=e)
    assert "lx-addin token set" in r.stderr and "LIXINGER_TOKEN" in r.stderr and "Traceback" not in r.stderr


def test_locked_keyring(tmp_path):
    e = {"PYTHON_KEYRING_BACKEND": "odd_keyrings.LockedKeyring", "PYTHONPATH": TESTS}
    r = run_cli("fetch", "700", env=e)
    assert r.returncode == 1 and "locked" in r.stderr and "LIXINGER_TOKEN" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run_cli("token", "set", env=e, input="abcdefgh12345678\n")
    assert r.returncode == 1 and "locked" in r.stderr and "Traceback" not in r.stderr


def test_size_limit_is_a_clear_error():
    e = {"PYTHON_KEYRING_BACKEND": "odd_keyrings.SizeLimitedKeyring", "PYTHONPATH": TESTS}
    r = run_cli("token", "set", env=e, input="abcdefgh12345678\n")
    assert r.returncode == 1 and "too long for Windows Credential Manager" in r.stderr


def test_plaintext_backend_warns(tmp_path, sandbox):
    e = {"PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring", "XDG_DATA_HOME": str(tmp_path)}
    r = run_cli("token", "set", env=e, input=sandbox.token + "\n")
    assert r.returncode == 0
    assert "file on disk" in r.stderr and "LIXINGER_TOKEN" in r.stderr


def test_a_keyring_failing_in_its_own_way_is_one_line_for_read_store_and_delete():
    """Every keyring call goes through one translation: a dropped D-Bus connection reads, stores and
    deletes with the same kind of line (delete used to let it escape as an 'unexpected error')."""
    e = {"PYTHON_KEYRING_BACKEND": "odd_keyrings.BrokenBusKeyring", "PYTHONPATH": TESTS}
    said = {}
    for action, args, kw in (("read", ("token", "status"), {}), ("store", ("token", "set"), {"input": "abcdefgh12345678\n"}),
                             ("delete", ("token", "delete"), {})):
        r = run_cli(*args, env=e, **kw)
        assert r.returncode == 1 and "Traceback" not in r.stderr and "unexpected" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        said[action] = r.stderr
    assert "could not read the token from the system keyring (RuntimeError)" in said["read"]
    assert "could not store the token in the system keyring (RuntimeError)" in said["store"]
    assert "could not delete the token from the system keyring (RuntimeError)" in said["delete"]


def test_the_desk_password_and_the_token_fail_in_the_keyring_with_the_same_words():
    """The desk store's password goes through the token's keyring translation: a locked keyring says
    so and what to do, for both (it used to be a class name for the password)."""
    e = {"PYTHON_KEYRING_BACKEND": "odd_keyrings.LockedKeyring", "PYTHONPATH": TESTS}
    r = run_cli("store", "logout", "--url", "postgresql://analyst@127.0.0.1/lixinger", env=e)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "could not delete the desk store password in the system keyring: the keyring is locked; unlock it" in r.stderr
    r = run_cli("token", "delete", env=e)
    assert r.returncode == 1 and "could not delete the token in the system keyring: the keyring is locked" in r.stderr
