"""The client against the sandbox over real HTTP: every fault, every bad answer."""

import datetime as dt

import pytest

from xl_addin.client import MMAHClient, build_batches
from xl_addin.config import Settings, check_base_url
from xl_addin.credentials import Token
from xl_addin.exceptions import (
    ApiError,
    BadResponseError,
    InsecureURLError,
    MalformedRecordError,
    RateLimitedError,
    RequestTimeoutError,
    ServiceUnavailableError,
    TokenRejectedError,
)
from xl_addin.sandbox import universe
from xl_addin.fields import FIELDS


@pytest.fixture
def client(sandbox, settings):
    c = MMAHClient(Token(sandbox.token), settings)
    yield c
    c.close()


def test_documented_example_comes_through_exactly(client, documented):
    result = client.fetch(["00700"])
    expected = documented["data"][0]
    got = result.records["00700"]
    for key, value in expected.items():
        if key == "last_data_date":
            assert got[key] == dt.date(2026, 3, 17)
        elif key != "stockCode":  # the value exactly; its type the field's (a whole amount sent as 596881053450 is a float,
            # as the history store keeps it: the same record reads the same cold and from the cache)
            kind = next(f.kind for f in FIELDS if f.key == key)
            assert got[key] == value and type(got[key]) is (int if kind == "shares" else float), key
    assert result.raw["00700"] == expected


def test_beijing_date_never_the_day_before():
    from xl_addin.records import parse_data_date

    assert parse_data_date("2026-03-17T00:00:00+08:00") == dt.date(2026, 3, 17)
    assert parse_data_date("2026-03-16T16:00:00Z") == dt.date(2026, 3, 17)
    assert parse_data_date("2026-03-16T16:00:00.000Z") == dt.date(2026, 3, 17)


def test_batches_of_at_most_100_deduplicated(client, sandbox):
    codes = list(universe())[:250]
    result = client.fetch(codes + codes[:50])
    assert [len(s.codes) for s in sandbox.seen] and sorted(len(s.codes) for s in sandbox.seen) == [50, 100, 100]
    assert result.requests == 3
    assert set(result.records) == set(codes)
    assert build_batches(["1", "2", "1"], size=1) == [["1"], ["2"]]


def test_code_absent_from_data_is_no_data_not_a_failure(client):
    result = client.fetch(["00700", "99999"])
    assert "00700" in result.records
    assert result.absent == ["99999"]
    assert not result.errors


def test_fields_missing_from_a_record_are_empty(client, sandbox):
    young = next(c for c in universe() if "mm_sh_nba_d240" not in sandbox.dataset.record(c))
    record = client.fetch([young]).records[young]
    assert record["mm_sh_nba_d240"] is None
    assert record["mm_sh_nba_d1"] is not None


@pytest.mark.parametrize("kind", ["500", "502", "503", "drop"])
def test_transient_failures_are_retried(client, sandbox, kind):
    sandbox.inject(kind, times=2)
    result = client.fetch(["00700", "00005"])
    assert set(result.records) == {"00700", "00005"}
    assert result.requests == 3


@pytest.mark.real_time_retries  # the real clock: a second really passes between the two requests
def test_429_honours_retry_after(client, sandbox):
    sandbox.inject("429", times=1, retry_after=1)
    result = client.fetch(["00700"])
    assert "00700" in result.records
    first, second = sandbox.seen
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 0.95  # waited as told, not the short backoff


def test_retry_after_longer_than_the_budget_fails_fast_and_clearly(sandbox, tmp_path):
    settings = Settings(base_url=sandbox.url, cache_dir=tmp_path, budget=2.0)
    sandbox.inject("429", times=1, retry_after=30)
    result = MMAHClient(Token(sandbox.token), settings).fetch(["00700"])
    err = result.errors["00700"]
    assert isinstance(err, RateLimitedError) and "429" in str(err)
    assert sandbox.request_count == 1


def test_persistent_5xx_gives_up_with_a_clear_message(client, sandbox):
    sandbox.inject("503", times=None)
    result = client.fetch(["00700"])
    err = result.errors["00700"]
    assert isinstance(err, ServiceUnavailableError)
    assert "HTTP 503" in str(err) and "gave up after 5 attempts" in str(err)


def test_backoff_doubles_and_stops_at_the_budget(sandbox, tmp_path):
    """The retry schedule on a ManualClock: waits of 0.25, 0.5, 1, 2 s (jitter at its middle),
    five attempts; with a 1 s budget, the third wait would pass it: three attempts."""
    from xl_addin.pacer import ManualClock, RetryPolicy

    sandbox.inject("503", times=None)
    clock = ManualClock()
    policy = RetryPolicy.manual(clock, jitter=lambda: 0.5)
    client = MMAHClient(Token(sandbox.token), Settings(base_url=sandbox.url, cache_dir=tmp_path, budget=20.0),
                        retry=policy)
    err = client.fetch(["00700"]).errors["00700"]
    assert clock.slept == [0.25, 0.5, 1.0, 2.0] and "gave up after 5 attempts" in str(err)
    assert sandbox.request_count == 5
    sandbox.reset()
    sandbox.inject("503", times=None)
    clock.slept.clear()
    client = MMAHClient(Token(sandbox.token), Settings(base_url=sandbox.url, cache_dir=tmp_path, budget=1.0),
                        retry=policy)
    err = client.fetch(["00700"]).errors["00700"]
    assert clock.slept == [0.25, 0.5] and "gave up after 3 attempts" in str(err)
    assert sandbox.request_count == 3


def test_connection_refused(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    settings = Settings(base_url=f"http://127.0.0.1:{port}/api", cache_dir=tmp_path, budget=1.5)
    err = MMAHClient(Token("t" * 20), settings).fetch(["00700"]).errors["00700"]
    assert isinstance(err, ServiceUnavailableError) and "cannot reach 127.0.0.1" in str(err)


def test_garbage_body_is_retried_then_a_clear_error(sandbox, tmp_path):
    client = MMAHClient(Token(sandbox.token), Settings(base_url=sandbox.url, cache_dir=tmp_path, budget=1.5))
    sandbox.inject("garbage")
    assert "00700" in client.fetch(["00700"]).records  # a proxy's error page, once: the retry gets the answer
    sandbox.inject("garbage", times=None)
    err = client.fetch(["00700"]).errors["00700"]
    assert isinstance(err, BadResponseError) and "not JSON" in str(err) and "gave up after" in str(err)


def test_api_error_code_says_why_and_is_not_retried(client, sandbox):
    sandbox.inject("api_error", message="stockCodes invalid")
    err = client.fetch(["00700"]).errors["00700"]
    assert isinstance(err, ApiError) and "stockCodes invalid" in str(err)
    assert sandbox.request_count == 1


def test_bad_token_is_not_retried_and_says_how_to_set_one(sandbox, settings):
    client = MMAHClient(Token("not-the-right-token"), settings)
    with pytest.raises(TokenRejectedError) as err:
        client.fetch(["00700"])
    assert "lx-addin token set" in str(err.value) and "LIXINGER_TOKEN" in str(err.value)
    assert sandbox.request_count == 1


def test_malformed_record_fails_its_code_only(client, sandbox):
    sandbox.inject("malformed", code="00005")
    result = client.fetch(["00700", "00005", "00939"])
    assert isinstance(result.errors["00005"], MalformedRecordError)
    assert "mm_sh" in str(result.errors["00005"])
    assert set(result.records) == {"00700", "00939"}


def test_one_failed_batch_does_not_lose_the_others(client, sandbox):
    codes = list(universe())[:150]
    sandbox.inject("500", times=None, only_code=codes[120])
    result = client.fetch(codes)
    assert set(result.records) == set(codes[:100])
    assert set(result.errors) == set(codes[100:])


def test_read_timeout_within_the_budget(sandbox, tmp_path):
    settings = Settings(base_url=sandbox.url, cache_dir=tmp_path, timeout=0.3, budget=1.0)
    sandbox.inject("slow", times=None, seconds=2)
    err = MMAHClient(Token(sandbox.token), settings).fetch(["00700"]).errors["00700"]
    assert isinstance(err, RequestTimeoutError)


def test_plain_http_refused_for_remote_hosts_https_and_loopback_allowed():
    with pytest.raises(InsecureURLError, match="plain http"):
        check_base_url("http://open.lixinger.com/api")
    with pytest.raises(InsecureURLError):
        check_base_url("http://10.0.0.5/api")
    assert check_base_url("https://open.lixinger.com/api/") == "https://open.lixinger.com/api"
    for url in ("http://127.0.0.1:8765/api", "http://localhost:1/api", "http://[::1]:9/api"):
        assert check_base_url(url)
    with pytest.raises(InsecureURLError):
        Settings.from_env({"LIXINGER_BASE_URL": "http://example.com/api"})


def test_token_never_shows(sandbox, settings):
    secret = sandbox.token
    client = MMAHClient(Token(secret), settings)
    assert secret not in repr(client) and secret not in repr(Token(secret)) and secret not in str(Token(secret))
    sandbox.inject("api_error", message=f"bad request from {secret}")  # a service that echoes it back
    err = client.fetch(["00700"]).errors["00700"]
    assert secret not in str(err) and "<redacted>" in str(err)


def test_proxy_variables_do_not_divert_loopback(client, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    assert "00700" in client.fetch(["00700"]).records


def test_log_lines_never_hold_the_token(client, sandbox, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    sandbox.inject("503", times=1)
    client.fetch(["00700"])
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "POST" in text and "retrying" in text  # there are log lines, and they are useful
    assert sandbox.token not in text
