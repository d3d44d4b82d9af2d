"""One data service per process: xl_addin.service.shared() / set_shared(), as keyring's get_keyring / set_keyring."""

from __future__ import annotations

import shutil

from conftest import ROOT

from xl_addin.service import DataService, shared, set_shared


class Recording(DataService):
    closed = 0

    def close(self):
        Recording.closed += 1
        super().close()


def test_shared_is_made_once_and_replaced_with_set_shared(settings, sandbox):
    made = []

    def create():
        made.append(Recording(settings, token=sandbox.token))
        return made[-1]

    set_shared(None)
    try:
        first = shared(create)
        assert shared(create) is first and shared() is first and len(made) == 1
        mine = DataService(settings, token=sandbox.token)
        set_shared(mine)
        assert shared(create) is mine and len(made) == 1
        assert Recording.closed == 1  # the one replaced is closed
    finally:
        set_shared(None)


def test_formulas_and_the_refresh_button_use_the_service_given(formula_service, sandbox, tmp_path):
    """The Refresh button takes the process's service (it used to reach into the formulas' module for it)."""
    import excel_harness as xh

    from test_excel_refresh import Book
    from xl_addin.refresh import main

    udfs = xh.load()
    xh.call(udfs.LX_MMAH, 700.0, "mm_sh")
    assert formula_service.requests_sent == 1
    path = tmp_path / "mm.xlsx"
    shutil.copyfile(ROOT / "templates" / "mm_ah.xlsx", path)
    main(Book(path))
    assert formula_service.requests_sent >= 2 and sandbox.request_count == formula_service.requests_sent


def test_status_says_where_the_token_comes_from_and_never_fails(settings, sandbox, monkeypatch):
    svc = DataService(settings)  # no token anywhere
    status = svc.status()
    assert status.token_source is None and "No Lixinger token" in str(status.token_error)
    monkeypatch.setenv("LIXINGER_TOKEN", sandbox.token)
    svc.fetch(["00700"])
    status = svc.status()
    assert status.token_source == "environment (LIXINGER_TOKEN)" and status.requests_sent == 1
    assert status.newest_data_date == "2026-03-17" and sandbox.token not in repr(status)
    svc.close()
