"""Promises under faults (issue 12, the network half): a hostile or broken server, through
the library and through `lx-addin` as a user runs it (exit code, one line on stderr, the
cache's rows and bytes afterwards). Every server here is the sandbox on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from xl_addin.client import MMAHClient
from xl_addin.config import Settings
from xl_addin.credentials import Token, redact
from xl_addin.exceptions import (
    AnswerTooLargeError,
    ApiError,
    BadResponseError,
    NoDataError,
    RedirectError,
    RequestTimeoutError,
    ServiceUnavailableError,
    TokenRejectedError,
)
from xl_addin.messages import shown
from xl_addin.sandbox import Sandbox, parse_fault
from xl_addin.service import MMAH

CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z0-9]*(Error|Exception|Warning)\b|urllib3|requests\.")


def cli_env(sandbox, **extra) -> dict:
    return {"LIXINGER_BASE_URL": sandbox.url, "LIXINGER_TOKEN": sandbox.token, **extra}


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and not CLASS_NAME.search(stderr), stderr
    return lines[0]


def cache_dir() -> Path:
    return Path(os.environ["XL_ADDIN_CACHE_DIR"])  # set per test by conftest.isolated_env


def cache_rows() -> tuple[list, list]:
    """(snapshot codes, absent codes) in the cache file the CLI and the service use."""
    path = cache_dir() / "mm_ah.sqlite3"
    if not path.exists():
        return [], []
    with sqlite3.connect(path) as conn:
        snaps = sorted(r[0] for r in conn.execute("SELECT code FROM history"))
        absent = sorted(r[0] for r in conn.execute("SELECT code FROM absent"))
    return snaps, absent


def cache_bytes() -> bytes:
    folder = cache_dir()
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()) if folder.exists() else b""


def fragments(token: str, run: int = 8) -> set[str]:
    return {token[i : i + run] for i in range(len(token) - run + 1)}


def leaks(text: str | bytes, token: str) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return [f for f in fragments(token) if f in text]


@pytest.fixture
def quick(settings):
    """The fixture's settings with a short budget: persistent faults give up in about 1.5 s."""
    return dataclasses.replace(settings, budget=1.5)


# --- 2a: a redirect never takes the token anywhere -------------------------------------------
@pytest.mark.parametrize("status", [302, 307, 308])
def test_redirect_is_an_error_naming_the_target_and_sends_nothing_there(sandbox, settings, status):
    with Sandbox() as elsewhere:  # "another host": records every request that reaches it
        sandbox.inject("redirect", times=None, url=elsewhere.url, status=status)
        svc = MMAH(settings, token=sandbox.token)
        result = svc.fetch(["00700"])
        svc.close()
        err = result.errors["00700"]
        assert isinstance(err, RedirectError)
        assert f"HTTP {status}" in str(err) and f"127.0.0.1:{elsewhere.port}" in str(err)
        assert sandbox.request_count == 1  # not retried either
        r = run_cli("fetch", "700", env=cli_env(sandbox))
        assert r.returncode == 1
        line = one_line(r.stderr)
        assert f"redirecting to http://127.0.0.1:{elsewhere.port}/" in line and "not followed" in line
        assert elsewhere.seen == []  # not a request, so certainly not the token
        assert not any(s.with_token for s in elsewhere.seen)
    assert cache_rows() == ([], [])


def test_fault_spec_for_the_command_line():
    assert parse_fault("redirect:http://127.0.0.1:9/api") == ("redirect", None, {"url": "http://127.0.0.1:9/api", "status": 307})
    assert parse_fault("redirect:308:https://elsewhere.example/api")[2] == {"url": "https://elsewhere.example/api", "status": 308}
    assert parse_fault("drop-mid-body:2") == ("drop-mid-body", 2, {})
    assert parse_fault("trickle") == ("trickle", None, {})
    with pytest.raises(ValueError, match="unknown fault"):
        parse_fault("teapot")


# --- 4: the budget bounds a slow trickle ------------------------------------------------------
def test_budget_bounds_a_trickling_answer(sandbox, tmp_path):
    sandbox.inject("trickle", times=None, bytes=1, interval=0.02)  # ~1.5 KB at 50 bytes/s: 30 s
    settings = Settings(base_url=sandbox.url, cache_dir=tmp_path, budget=1.0, timeout=10.0)
    started = time.monotonic()
    err = MMAHClient(Token(sandbox.token), settings).fetch(["00700"]).errors["00700"]
    elapsed = time.monotonic() - started
    assert isinstance(err, RequestTimeoutError)
    assert "timed out" in str(err) and "LIXINGER_BUDGET" in str(err)
    assert elapsed < 2 * settings.budget  # generous: the point is that 30 s became about 2

    started = time.monotonic()
    r = run_cli("fetch", "700", env=cli_env(sandbox, LIXINGER_BUDGET="1"))
    elapsed = time.monotonic() - started
    assert r.returncode == 1 and "timed out" in one_line(r.stderr)
    assert elapsed < 2 * 1 + 3  # the budget twice over, plus starting Python
    assert cache_rows() == ([], [])


# --- 5: a connection cut in the middle of the body --------------------------------------------
@pytest.mark.real_time_retries  # one of the few that wait out the real backoff
@pytest.mark.parametrize("chunked", [False, True])
def test_connection_cut_mid_body_is_retried(sandbox, settings, chunked):
    sandbox.inject("drop-mid-body", times=2, chunked=chunked)
    result = MMAHClient(Token(sandbox.token), settings).fetch(["00700", "00005"])
    assert set(result.records) == {"00700", "00005"}
    assert result.requests == 3


@pytest.mark.parametrize("chunked", [False, True])
def test_connection_cut_every_time_is_one_line_for_a_user(sandbox, quick, chunked):
    sandbox.inject("drop-mid-body", times=None, chunked=chunked)
    err = MMAHClient(Token(sandbox.token), quick).fetch(["00700"]).errors["00700"]
    assert isinstance(err, ServiceUnavailableError) and "cut in the middle of the answer" in str(err)
    assert not CLASS_NAME.search(str(err)) and sandbox.request_count >= 2
    r = run_cli("fetch", "700", env=cli_env(sandbox, LIXINGER_BUDGET="0.6"))
    assert r.returncode == 1 and "cut in the middle" in one_line(r.stderr)


# --- 6: malformed answers are bad answers, never "no data", never stored -----------------------
BAD_ANSWERS = [
    pytest.param("bad-record", {}, "not an object", id="data-1-x-null"),
    pytest.param("numeric-code", {}, "stockCode 700", id="stockCode-as-number"),
    pytest.param("bad-record", {"data": [{"stockCode": "00001", "mm_sh": 1}]}, "not asked for", id="code-not-asked"),
    pytest.param("bad-record", {"data": [{"mm_sh": 1}]}, "no stockCode", id="no-code"),
]


@pytest.mark.parametrize("kind,params,needle", BAD_ANSWERS)
def test_malformed_answer_is_retried_then_an_error_and_never_cached(sandbox, quick, kind, params, needle):
    svc = MMAH(quick, token=sandbox.token)
    sandbox.inject(kind, times=None, **params)
    result = svc.fetch(["00700", "00005"])
    for code in ("00700", "00005"):
        err = result.errors[code]
        assert isinstance(err, BadResponseError) and not isinstance(err, NoDataError)
        assert needle in str(err) and "bad answer" in str(err)
    assert not result.records and sandbox.request_count >= 2  # retried
    assert cache_rows() == ([], [])
    r = run_cli("fetch", "700", "5", "--format", "json", env=cli_env(sandbox, LIXINGER_BUDGET="0.6"))
    assert r.returncode == 1 and needle in one_line(r.stderr)
    assert cache_rows() == ([], [])
    svc.close()


def test_one_malformed_answer_then_a_good_one(sandbox, settings):
    svc = MMAH(settings, token=sandbox.token)
    sandbox.inject("numeric-code", times=1)
    result = svc.fetch(["00700", "00005"])
    assert set(result.records) == {"00700", "00005"} and not result.errors
    assert sandbox.request_count == 2
    assert cache_rows() == (["00005", "00700"], [])
    svc.close()


# --- 8: no part of the token is shown or kept ------------------------------------------------
def test_token_echoed_in_a_record_is_not_kept(sandbox, settings):
    svc = MMAH(settings, token=sandbox.token)
    sandbox.inject("echo-token")
    assert "00700" in svc.fetch(["00700"]).records
    svc.close()
    stored = cache_bytes()
    assert b"00700" in stored and cache_rows() == (["00700"], [])  # the record is there, as typed fields
    assert b"requested with token" not in stored  # a text the catalog has no field for is not kept at all
    assert leaks(stored, sandbox.token) == []

    sandbox.inject("echo-token")
    r = run_cli("fetch", "5", "--format", "json", "--no-cache", env=cli_env(sandbox))
    assert r.returncode == 0, r.stderr
    assert leaks(r.stdout + r.stderr, sandbox.token) == []
    assert cache_rows() == (["00005", "00700"], [])
    assert leaks(cache_bytes(), sandbox.token) == []


@pytest.mark.parametrize("kind", ["api_error", "503", "401"])
def test_token_across_the_cut_of_a_long_message_is_not_shown(sandbox, settings, kind):
    token = sandbox.token
    client = MMAHClient(Token(token), dataclasses.replace(settings, budget=0.5))
    for pad in (150, 190, 195, 290, 295):  # wherever the cut falls, no piece of the token survives it
        sandbox.inject(kind, times=None, message="x" * pad + token + " trailing")
        try:
            err = client.fetch(["00700"]).errors["00700"]
        except TokenRejectedError as exc:
            err = exc
        sandbox.clear_faults()
        assert leaks(str(err), token) == [], (pad, str(err))
        assert pad > 150 or "<redacted>" in str(err)  # it was there, and was taken out
    sandbox.inject(kind, times=None, message="y" * 290 + token)
    r = run_cli("fetch", "700", env=cli_env(sandbox, LIXINGER_BUDGET="0.5"))
    assert r.returncode == 1 and leaks(r.stdout + r.stderr, token) == []


def test_redact_removes_any_run_of_eight_and_comes_before_the_cut():
    token = "sbx-0123456789abcdef0123"
    assert redact(f"a {token[:12]} b", token) == "a <redacted> b"
    assert redact(f"a{token[5:13]}b", token) == "a<redacted>b"  # any 8 in a row
    assert redact(f"a{token[5:12]}b", token) == f"a{token[5:12]}b"  # 7 are not the token
    assert leaks(shown("z" * 195 + token, token), token) == []
    assert leaks(shown("\x1b[0m".join(token[i : i + 4] for i in range(0, len(token), 4)), token), token) == []


# --- 9: the answer's size is limited while it is read -------------------------------------------
def test_gzip_bomb_stops_at_the_answer_limit(sandbox, settings):
    small = dataclasses.replace(settings, max_answer_bytes=1_000_000)
    sandbox.inject("gzip-bomb", times=None, size=64 << 20)
    err = MMAHClient(Token(sandbox.token), small).fetch(["00700"]).errors["00700"]
    assert isinstance(err, AnswerTooLargeError)
    assert "1,000,000 bytes" in str(err) and "LIXINGER_MAX_ANSWER_BYTES" in str(err)
    assert sandbox.request_count == 1  # a bomb is not asked for twice
    assert Settings.from_env({"LIXINGER_MAX_ANSWER_BYTES": "2000000"}).max_answer_bytes == 2_000_000


PEAK_OF_CLI = """
import atexit, os, runpy, sys

def peak():  # VmHWM: this process's peak resident memory since exec, in kB
    with open("/proc/self/status") as status:
        kb = next(line.split()[1] for line in status if line.startswith("VmHWM"))
    with open(os.environ["PEAK_FILE"], "w") as out:
        out.write(kb)

atexit.register(peak)
sys.argv = ["lx-addin", *sys.argv[1:]]
runpy.run_module("xl_addin", run_name="__main__")
"""


def test_gzip_bomb_through_the_cli_keeps_memory_small(sandbox, tmp_path):
    """256 MB inflated from 260 KB: the CLI stops at 1 MB and its peak memory shows it."""
    sandbox.inject("gzip-bomb", times=None, size=256 << 20)
    peak_file = tmp_path / "peak"
    env = dict(os.environ, PEAK_FILE=str(peak_file), **cli_env(sandbox, LIXINGER_MAX_ANSWER_BYTES="1000000"))
    r = subprocess.run([sys.executable, "-c", PEAK_OF_CLI, "fetch", "700"], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    line = one_line(r.stderr)
    assert r.returncode == 1 and "1,000,000 bytes" in line and "LIXINGER_MAX_ANSWER_BYTES" in line
    peak_mb = int(peak_file.read_text()) / 1024
    assert peak_mb < 150, f"peak {peak_mb:.0f} MB for a 256 MB bomb"  # reading it all takes over 500 MB
    assert cache_rows() == ([], [])


def test_answer_limit_setting_is_checked():
    r = run_cli("fetch", "700", env={"LIXINGER_TOKEN": "x" * 20, "LIXINGER_MAX_ANSWER_BYTES": "lots"})
    assert r.returncode == 1 and "LIXINGER_MAX_ANSWER_BYTES" in one_line(r.stderr)


# --- 10: what a user reads ----------------------------------------------------------------------
def test_stall_after_the_headers_is_timed_out_not_connection_failed(sandbox, tmp_path):
    sandbox.inject("stall", times=None, seconds=3)
    settings = Settings(base_url=sandbox.url, cache_dir=tmp_path, timeout=0.3, budget=0.7)
    err = MMAHClient(Token(sandbox.token), settings).fetch(["00700"]).errors["00700"]
    assert isinstance(err, RequestTimeoutError)
    assert "timed out" in str(err) and "connection failed" not in str(err)
    r = run_cli("fetch", "700", env=cli_env(sandbox, LIXINGER_TIMEOUT="0.3", LIXINGER_BUDGET="0.7"))
    line = one_line(r.stderr)
    assert r.returncode == 1 and "timed out" in line and "connection failed" not in line


def test_403_reports_the_service_message_and_does_not_blame_the_token(sandbox, settings):
    sandbox.inject("403", message="this API is not included in your plan")
    err = MMAHClient(Token(sandbox.token), settings).fetch(["00700"]).errors["00700"]
    assert isinstance(err, ApiError) and not isinstance(err, TokenRejectedError)
    assert "not included in your plan" in str(err) and "403" in str(err)
    sandbox.inject("403", message="this API is not included in your plan")
    r = run_cli("fetch", "700", env=cli_env(sandbox))
    line = one_line(r.stderr)
    assert r.returncode == 1 and "not included in your plan" in line and "rejected the token" not in line
    sandbox.inject("403", message="token expired")  # when the service says it is the token, it is
    with pytest.raises(TokenRejectedError, match="token expired"):
        MMAHClient(Token(sandbox.token), settings).fetch(["00700"])


def test_reason_in_an_error_field_is_shown(sandbox, settings):
    sandbox.inject("error-field", message="stockCodes: at most 100 codes")
    err = MMAHClient(Token(sandbox.token), settings).fetch(["00700"]).errors["00700"]
    assert isinstance(err, ApiError) and "stockCodes: at most 100 codes" in str(err)
    assert "no reason given" not in str(err)
    sandbox.inject("error-field", message="stockCodes: at most 100 codes")
    r = run_cli("fetch", "700", env=cli_env(sandbox))
    assert r.returncode == 1 and "stockCodes: at most 100 codes" in one_line(r.stderr)


def test_long_multiline_escaped_message_is_one_short_clean_line(sandbox, settings):
    message = "\x1b[2J\x1b[31mALERT\x1b[0m line one\nline two\r\n\x1b]0;pwned\x07\u202e" + "z" * 5000
    sandbox.inject("api_error", message=message)
    err = str(MMAHClient(Token(sandbox.token), settings).fetch(["00700"]).errors["00700"])
    assert "ALERT line one line two" in err and len(err) < 300
    assert not any(not ch.isprintable() for ch in err) and "\x1b" not in err and "pwned" not in err
    sandbox.inject("api_error", message=message)
    r = run_cli("fetch", "700", env=cli_env(sandbox))
    line = one_line(r.stderr)
    assert r.returncode == 1 and "ALERT line one line two" in line and len(line) < 320
    assert "\x1b" not in r.stderr and "\r" not in r.stderr


def test_unusable_cache_path_warns_once_and_the_fetch_goes_on(sandbox, settings, tmp_path, caplog, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("XL_ADDIN_CACHE_DIR", str(blocker))
    svc = MMAH(dataclasses.replace(settings, cache_dir=blocker), token=sandbox.token)
    caplog.set_level(logging.WARNING)
    assert "00700" in svc.fetch(["00700"]).records
    assert "00005" in svc.fetch(["00005"]).records
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(blocker) in warnings[0].getMessage()
    svc.close()
    r = run_cli("fetch", "700", "5", "--format", "csv", "--fields", "mm_sh", env=cli_env(sandbox))
    assert r.returncode == 0 and r.stdout.splitlines()[1].startswith("00700,1085238279")
    line = one_line(r.stderr)
    assert "cannot be used" in line and str(blocker) in line and "going on without the cache" in line
    assert blocker.read_text() == "a file where the cache folder should be"


def test_a_bad_field_value_is_quoted_short_and_inert():
    from xl_addin.exceptions import MalformedRecordError
    from xl_addin.records import parse_record

    with pytest.raises(MalformedRecordError) as err:
        parse_record({"stockCode": "00700", "mm_sh": "\x1b[31m" + "z" * 5000})
    text = str(err.value)
    assert "mm_sh" in text and len(text) < 100 and "\x1b" not in text


@pytest.fixture(scope="module")
def untrusted_cert(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: what a man in the middle would present."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(folder / "cert.pem"), str(folder / "key.pem")


def test_untrusted_certificate_is_one_line_in_openssls_words(untrusted_cert, tmp_path):
    with Sandbox(tls=untrusted_cert) as tls:
        assert tls.url.startswith("https://127.0.0.1:")
        settings = Settings(base_url=tls.url, cache_dir=tmp_path, budget=5)
        err = MMAHClient(Token(tls.token), settings).fetch(["00700"]).errors["00700"]
        assert isinstance(err, ServiceUnavailableError)
        assert "could not be verified (self-signed certificate)" in str(err) and not CLASS_NAME.search(str(err))
        r = run_cli("fetch", "700", env=cli_env(tls, LIXINGER_BUDGET="5"))
        assert r.returncode == 1 and "self-signed certificate" in one_line(r.stderr)
        assert tls.seen == []  # no request got through: the token never left


@pytest.mark.parametrize("kind", ["api_error", "401"])
def test_a_token_echoed_in_another_case_is_not_shown(sandbox, settings, kind):
    """A server (or a proxy in front of it) that upper-cases the token in its message: no
    spelling of it reaches the error, the CLI's line or stderr."""
    token = sandbox.token
    assert token.upper() != token  # the sandbox's tokens have letters
    client = MMAHClient(Token(token), dataclasses.replace(settings, budget=0.5))
    for echoed in (token.upper(), token.upper()[:20], token.title()):
        sandbox.inject(kind, times=None, message=f"bad token {echoed} rejected")
        try:
            err = client.fetch(["00700"]).errors["00700"]
        except TokenRejectedError as exc:
            err = exc
        sandbox.clear_faults()
        assert "bad token <redacted> rejected" in str(err), str(err)
        assert leaks(str(err).lower(), token.lower()) == []
    sandbox.inject(kind, times=None, message=f"bad token {token.upper()}")
    r = run_cli("fetch", "700", env=cli_env(sandbox, LIXINGER_BUDGET="0.5"))
    assert r.returncode == 1 and leaks((r.stdout + r.stderr).lower(), token.lower()) == []


@pytest.mark.parametrize("retry_after, said", [(90, "try again in 90 s"), (600, "try again in 10 min"), (None, "try again in a minute")])
def test_a_rate_limit_says_when_the_server_said_to_come_back(sandbox, settings, retry_after, said):
    """HTTP 429: the message gives the server's own Retry-After, not a fixed "in a minute"
    that is wrong for a limit that lifts in ten."""
    client = MMAHClient(Token(sandbox.token), dataclasses.replace(settings, budget=0.5))
    sandbox.inject("429", times=None, retry_after=retry_after)
    err = client.fetch(["00700"]).errors["00700"]
    assert "HTTP 429" in str(err) and said in str(err), str(err)
