"""No plaintext token by accident: the test extra installs keyrings.alt, whose file backend
keyring picks by itself on a Linux box without a Secret Service. `token set` must refuse it
unless the user opts in (--allow-plaintext, or chooses that backend in keyring's settings)."""

import base64
import os
import subprocess
import sys

import pytest

from conftest import ROOT

TOKEN = "plain-text-would-be-bad-0123456789"


@pytest.fixture
def no_secret_service(tmp_path):
    pytest.importorskip("keyrings.alt", reason="keyrings.alt comes with the test extra")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHON_KEYRING_BACKEND", "DBUS_SESSION_BUS_ADDRESS", "LIXINGER_TOKEN")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_DATA_HOME=str(tmp_path / "data"),
               HOME=str(tmp_path / "home"), XL_ADDIN_PROFILE="")
    return env


def cli(env, *args, input=None):
    return subprocess.run([sys.executable, "-m", "xl_addin", *args], capture_output=True, text=True,
                          env=env, input=input, timeout=60, cwd=ROOT)


def files_under(path):
    return [os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs]


def test_keyring_would_pick_plaintext_here(no_secret_service):
    """The premise: with no Secret Service and no choice made, keyring's own pick is the file."""
    r = subprocess.run(
        [sys.executable, "-c", "import keyring; print(type(keyring.get_keyring()).__name__)"],
        capture_output=True, text=True, env=no_secret_service, timeout=60)
    assert "Plaintext" in r.stdout or "Chainer" in r.stdout, r.stdout + r.stderr


def test_token_set_refuses_plaintext_unless_allowed(no_secret_service, tmp_path):
    env = no_secret_service
    r = cli(env, "token", "set", input=TOKEN + "\n")
    assert r.returncode == 1 and r.stdout == ""
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "plain file" in line
    assert "--allow-plaintext" in line and "LIXINGER_TOKEN" in line and TOKEN not in line
    assert files_under(tmp_path / "data") == [], "nothing may be written"

    r = cli(env, "token", "set", "--allow-plaintext", input=TOKEN + "\n")
    assert r.returncode == 0, r.stderr
    assert "plain file on disk" in r.stderr
    stored = files_under(tmp_path / "data")
    encoded = base64.encodebytes(TOKEN.encode()).decode().strip()  # keyrings.alt's "plaintext" is base64
    assert stored and any(encoded in open(p, encoding="utf-8").read() for p in stored)
    r = cli(env, "token", "status")  # a token the user chose to keep there is found
    assert r.returncode == 0 and "Plaintext" in r.stdout and TOKEN not in r.stdout


def test_backend_chosen_in_keyringrc_is_respected(no_secret_service, tmp_path):
    rc = tmp_path / "config" / "python_keyring" / "keyringrc.cfg"
    rc.parent.mkdir(parents=True)
    rc.write_text("[backend]\ndefault-keyring=keyrings.alt.file.PlaintextKeyring\n")
    r = cli(no_secret_service, "token", "set", input=TOKEN + "\n")
    assert r.returncode == 0 and "plain file on disk" in r.stderr, r.stderr
