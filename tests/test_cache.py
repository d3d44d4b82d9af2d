"""The cache and the service in front of it, against the sandbox over HTTP."""

import datetime as dt
import multiprocessing
import sqlite3

from xl_addin.cache import Cache
from xl_addin.config import Settings
from xl_addin.exceptions import NoDataError, ServiceUnavailableError
from xl_addin.sandbox import Dataset
from xl_addin.service import MMAH


def test_fresh_codes_are_served_without_a_request(service, sandbox):
    first = service.fetch(["00700", "00005", "99999"])
    assert first.requests == 1
    second = service.fetch(["00700", "00005", "99999"])
    assert second.requests == 0 and sandbox.request_count == 1
    assert second.records == first.records
    assert isinstance(second.errors["99999"], NoDataError)  # "no data" is remembered too


def test_only_the_missing_codes_are_asked_for(service, sandbox):
    service.fetch(["00700", "00005"])
    service.fetch(["00700", "00005", "00939"])
    assert sandbox.seen[-1].codes == ["00939"]


def test_the_cache_file_serves_a_new_process(settings, sandbox):
    MMAH(settings, token=sandbox.token).fetch(["00700"])
    fresh = MMAH(settings, token=sandbox.token)  # new memory, same file
    assert fresh.fetch(["00700"]).requests == 0


def test_no_cache_and_max_age_zero_ask_again(service, sandbox):
    service.fetch(["00700"])
    assert service.fetch(["00700"], use_cache=False).requests == 1
    assert service.fetch(["00700"], max_age=0).requests == 1


def test_every_distinct_snapshot_is_kept(settings, sandbox):
    svc = MMAH(settings, token=sandbox.token)
    svc.fetch(["00005"])
    sandbox.dataset = Dataset(as_of=dt.date(2026, 3, 18))
    svc.fetch(["00005"], use_cache=False)
    svc.fetch(["00005"], use_cache=False)  # same date again: still two snapshots
    history = svc.cache.history("00005")
    assert [r["last_data_date"] for r in history] == [dt.date(2026, 3, 17), dt.date(2026, 3, 18)]
    assert history[0]["mm_sh"] != history[1]["mm_sh"]
    assert svc.fetch(["00005"]).records["00005"]["last_data_date"] == dt.date(2026, 3, 18)


def test_service_down_serves_the_cached_values_marked_stale(settings, sandbox):
    svc = MMAH(settings, token=sandbox.token)
    before = svc.fetch(["00700"]).records["00700"]
    sandbox.inject("503", times=None)
    result = svc.fetch(["00700", "00939"], max_age=0)
    assert result.records["00700"] == before and result.stale == {"00700"}
    assert isinstance(result.errors["00939"], ServiceUnavailableError)


def test_sandbox_and_real_service_rows_never_mix(settings, sandbox, tmp_path):
    MMAH(settings, token=sandbox.token).fetch(["00700"])
    other = Cache(settings.cache_path, "https://open.lixinger.com/api")
    assert other.latest(["00700"]) == {}


def test_corrupt_cache_file_is_rebuilt(settings, sandbox):
    path = settings.cache_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a database" * 100)
    svc = MMAH(settings, token=sandbox.token)
    result = svc.fetch(["00700"])
    assert "00700" in result.records
    assert MMAH(settings, token=sandbox.token).fetch(["00700"]).requests == 0
    assert list(path.parent.glob("*.corrupt-*")), "the bad file is kept aside, not deleted"


def test_cache_is_wal_and_holds_no_token(service, sandbox, settings):
    service.fetch(["00700", "00005"])
    conn = sqlite3.connect(settings.cache_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    for f in settings.cache_path.parent.iterdir():
        assert sandbox.token.encode() not in f.read_bytes()


def _worker(args):
    base_url, cache_dir, token, codes, rounds = args
    settings = Settings(base_url=base_url, cache_dir=cache_dir)
    ok = 0
    for _ in range(rounds):
        svc = MMAH(settings, token=token)
        result = svc.fetch(codes, max_age=0)
        ok += len(result.records)
        svc.cache.latest(codes)
    return ok


def test_two_processes_at_once_do_not_fail(settings, sandbox):
    from xl_addin.sandbox import universe

    codes = list(universe())[:60]
    jobs = [(sandbox.url, settings.cache_dir, sandbox.token, codes[i::2], 15) for i in range(2)]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        counts = pool.map(_worker, jobs)
    assert counts == [15 * 30, 15 * 30]
    assert Cache(settings.cache_path, sandbox.url).info()["codes"] == 60


def test_a_token_problem_is_not_papered_over_with_cached_values(settings, sandbox):
    from xl_addin.exceptions import TokenRejectedError

    MMAH(settings, token=sandbox.token).fetch(["00700"])
    result = MMAH(settings, token="a-wrong-token-0000").fetch(["00700"], max_age=0)
    assert "00700" not in result.records and isinstance(result.errors["00700"], TokenRejectedError)
