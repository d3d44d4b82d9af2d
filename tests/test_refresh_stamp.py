"""The Refresh button's "not before" stamp, shared through the cache file.

Two services on one cache file stand for two processes (the button's and Excel's UDF
server); tests/test_process_model.py runs them as real processes.
"""

from xl_addin.service import MMAH


def two_services(settings, sandbox):
    return MMAH(settings, token=sandbox.token), MMAH(settings, token=sandbox.token)


def test_a_refresh_elsewhere_makes_fresh_memory_stale_here(settings, sandbox):
    server, button = two_services(settings, sandbox)
    server.fetch(["00700", "00005"])
    assert sandbox.request_count == 1
    assert set(server.peek(["00700", "00005"]).records) == {"00700", "00005"}  # fresh in memory

    button.expire_all()  # the Refresh button, in its own process
    assert server.peek(["00700", "00005"]).records == {}  # no longer fresh for the server either
    server.fetch(["00700", "00005"])
    assert sandbox.request_count == 2
    server.fetch(["00700", "00005"])
    assert sandbox.request_count == 2  # fetched after the stamp: fresh again
    server.close(), button.close()


def test_what_the_button_fetched_after_its_stamp_serves_the_formulas(settings, sandbox):
    server, button = two_services(settings, sandbox)
    server.fetch(["00700"])
    button.expire_all()
    button.fetch(["00700"])  # a template refresh in the button's process
    assert sandbox.request_count == 2
    assert "00700" in server.peek(["00700"]).records  # newer than the stamp, from the shared file
    server.fetch(["00700"])
    assert sandbox.request_count == 2
    server.close(), button.close()


def test_after_a_refresh_an_outage_still_shows_the_last_values(settings, sandbox):
    server, button = two_services(settings, sandbox)
    before = server.fetch(["00700"]).records["00700"]
    button.expire_all()
    sandbox.inject("503", times=None)
    after = server.fetch(["00700"])
    assert after.records["00700"] == before and after.stale == {"00700"}
    server.close(), button.close()


def test_an_unreadable_cache_file_never_breaks_the_check(settings, sandbox, tmp_path):
    server = MMAH(settings, token=sandbox.token)
    server.fetch(["00700"])
    settings.cache_path.write_bytes(b"not a database at all" * 100)
    assert server.cache.not_before() >= 0.0  # no exception
    server.close()


def _holds_open(path) -> bool:
    """Does this process hold *path* (or its -wal/-shm) open? Windows would then refuse to move or
    delete it (SQLite opens files without FILE_SHARE_DELETE): no `cache` rebuild elsewhere, no uninstall."""
    import os

    names = {str(path) + s for s in ("", "-wal", "-shm")}
    fds = os.listdir("/proc/self/fd")
    return any(os.path.realpath(f"/proc/self/fd/{fd}") in names for fd in fds if os.path.exists(f"/proc/self/fd/{fd}"))


def test_an_idle_server_holds_no_handle_on_the_cache_file(settings, sandbox, monkeypatch):
    import time

    import xl_addin.cache as cache

    monkeypatch.setattr(cache, "WATCH_IDLE", 0.2, raising=False)
    server, button = two_services(settings, sandbox)
    server.fetch(["00700"])
    server.peek(["00700"])  # a calculation burst: the stamp is checked on each formula
    deadline = time.monotonic() + 5
    while _holds_open(server.cache.path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _holds_open(server.cache.path)  # Excel idle: the file can be moved or deleted

    button.expire_all()  # a Refresh elsewhere is still seen after the handle was let go
    assert server.peek(["00700"]).records == {}
    server.fetch(["00700"])
    assert sandbox.request_count == 2
    server.close(), button.close()
