"""Issue 12's promises, attacked again after its fixes: combinations of faults and paths a
hostile server or an unlucky user would bring, each through `lx-addin` as a user runs it
against the real sandbox on 127.0.0.1.

Every test here failed on the code before the fix it came with.
"""

import hashlib
import os
import re
import shutil

import pytest

from conftest import run_cli
from test_refresh import TEMPLATES


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def env(sandbox):
    return {"LIXINGER_BASE_URL": sandbox.url, "LIXINGER_TOKEN": sandbox.token, "LIXINGER_BUDGET": "5"}


@pytest.fixture
def book(tmp_path):
    d = tmp_path / "books"
    d.mkdir()
    shutil.copyfile(TEMPLATES / "mm_ah.xlsx", d / "book.xlsx")
    return d / "book.xlsx"


def one_line(r):
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_an_output_link_named_xlsx_to_another_kind_of_file_is_refused(book, tmp_path, sandbox, env):
    """`-o report.xlsx` where report.xlsx is a link to someone's notes: the .xlsx-name check
    saw the link's name only, and the notes were replaced by a workbook."""
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    link = tmp_path / "report.xlsx"
    link.symlink_to(notes)
    r = run_cli("refresh", str(book), "-o", str(link), env=env)
    assert r.returncode == 1
    assert "notes.txt" in one_line(r) and "nothing was written" in one_line(r)
    assert notes.read_text() == "my notes\n" and link.is_symlink()
    assert sandbox.request_count == 0, "refused before asking the service"


@pytest.mark.parametrize("fmt", ["csv", "table"])
def test_stale_values_from_fetch_say_why_the_service_failed(sandbox, env, fmt):
    """A cached value stands in when the service redirects: the user must learn that it
    redirected (and what to do), not only that "the service failed"."""
    from xl_addin.sandbox import Sandbox

    assert run_cli("fetch", "700", "--format", "csv", env=env).returncode == 0  # the cache now has 00700
    with Sandbox() as elsewhere:
        sandbox.inject("redirect", times=None, url=elsewhere.url)
        r = run_cli("fetch", "700", "--no-cache", "--format", fmt, "--fields", "mm_sh_nbp_d1", env=env)
        assert elsewhere.request_count == 0
    assert r.returncode == 3, r.stderr
    assert "HTTP 307" in r.stderr and "LIXINGER_BASE_URL" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_a_full_disk_is_said_for_a_user_and_changes_nothing(book, sandbox, env):
    """No space for the refreshed copy (here a file-size limit, which fails the write as a
    full disk or a quota does): one line in words, not "OSError: [Errno 28]", the book
    byte-identical and no temporary file left behind."""
    import resource
    import subprocess
    import sys

    from conftest import ROOT

    before = digest(book)
    limit = book.stat().st_size + 4096  # the cache fits; the refreshed book does not

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = subprocess.run([sys.executable, "-m", "xl_addin", "refresh", str(book)], capture_output=True, text=True,
                       env={**os.environ, **env}, cwd=ROOT, timeout=120, preexec_fn=small_files)
    assert r.returncode == 1
    line = one_line(r)
    assert "cannot write" in line and "OSError" not in line and "Errno" not in line, line
    assert digest(book) == before and sorted(os.listdir(book.parent)) == ["book.xlsx"]


def test_the_refresh_button_during_an_outage_does_not_stamp_old_data_as_new(sandbox, monkeypatch, tmp_path):
    """The ribbon's Refresh (RunPython -> xl_addin.main -> refresh.main) once fine, then with the service
    down: the table keeps the last refresh's values, so "Refreshed at" and the data date
    must keep saying when that was. The failed run stamped "Refreshed at <now>" over the
    old table (and blanked its data date)."""
    import time

    from test_excel_refresh import Book
    import xl_addin.udfs as udfs
    from xl_addin.refresh import main  # what xl_addin.main() runs for the calling book

    monkeypatch.setenv("LIXINGER_BASE_URL", sandbox.url)
    monkeypatch.setenv("LIXINGER_TOKEN", sandbox.token)
    monkeypatch.setenv("LIXINGER_BUDGET", "3")
    udfs.reset()
    path = tmp_path / "mm.xlsx"
    shutil.copyfile(TEMPLATES / "mm_ah.xlsx", path)
    book = Book(path)
    main(book)
    cells = book.sheets["MM_AH"].cells
    refreshed_at, data_date, codes = cells[(1, 10)], cells[(2, 10)], cells[(3, 10)]
    table = {k: v for k, v in cells.items() if k[0] >= 7}
    assert data_date is not None and "30 of 30" in codes
    time.sleep(1.1)  # a new stamp would differ
    sandbox.inject("503", times=None)
    try:
        main(book)
    finally:
        udfs.reset()
    assert "HTTP 503" in book.app.alerts[-1][1]
    assert "refresh failed" in cells[(4, 10)] and "HTTP 503" in cells[(4, 10)]
    assert {k: v for k, v in cells.items() if k[0] >= 7} == table, "the table is the last refresh's"
    assert (cells[(1, 10)], cells[(2, 10)], cells[(3, 10)]) == (refreshed_at, data_date, codes)


def test_two_different_records_for_one_code_are_a_bad_answer_not_a_guess(sandbox, env, tmp_path):
    """An answer with two records for 00700 that disagree: whichever came last was shown
    (exit 0) and cached. It is a bad answer: retried, then an error, nothing kept."""
    env = {**env, "LIXINGER_BUDGET": "0.6"}  # room for a retry or two
    record = sandbox.dataset.record("00700")
    sandbox.inject("bad-record", times=None, data=[record, dict(record, mm_sh=1)])
    r = run_cli("fetch", "700", "--format", "csv", "--fields", "mm_sh", env=env)
    assert r.returncode == 1 and "two records for 00700" in one_line(r)
    assert r.stdout == "" and sandbox.request_count > 1, "retried, then failed"
    sandbox.clear_faults()
    sandbox.inject("503", times=None, retry_after=0)  # Retry-After: 0: the CLI retries at once
    r = run_cli("fetch", "700", "--format", "csv", "--fields", "mm_sh", env=env)
    assert r.returncode == 1 and "HTTP 503" in one_line(r), "nothing of the bad answer was cached"


@pytest.mark.parametrize("value", ["nan", "-1", "inf"])
def test_a_max_age_that_is_not_a_number_of_seconds_is_refused(book, sandbox, env, value):
    """`--max-age nan` and `--max-age -1` were read as 0 without a word, `inf` as "any age
    at all", though the max_age setting refuses all three: the flag follows the setting."""
    before = digest(book)
    r = run_cli("refresh", str(book), "--max-age", value, env=env)
    assert r.returncode == 2 and f"--max-age: {value!r}" in r.stderr.splitlines()[-1], r.stderr
    assert digest(book) == before and sandbox.request_count == 0


def test_one_outage_over_many_batches_is_one_line(sandbox, env):
    """2,000 codes are 20 requests sharing one time budget: when the service is down each
    gives up after however many attempts the budget left it. That is one cause, said once
    with a count, not a line per number of attempts."""
    sandbox.inject("503", times=None)
    codes = [str(n) for n in range(1, 2001)]
    r = run_cli("fetch", *codes, "--format", "csv", "--fields", "mm_sh", env={**env, "LIXINGER_BUDGET": "1"})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if "HTTP 503" in line]
    assert len(lines) == 1, r.stderr
    assert "gave up after" in lines[0] and "codes (00001, 00002, 00003, …)" in lines[0]


def test_the_budget_bounds_headers_trickled_a_byte_at_a_time(sandbox, env):
    """The budget covered the body only: a server sending its status line and headers one
    byte every 50 ms (each read well inside the 30 s read timeout) held a fetch with a
    3 s budget for as long as it went on (2,000 bytes: 100 s)."""
    import time

    sandbox.inject("header-trickle", times=None)
    started = time.monotonic()
    r = run_cli("fetch", "700", "--no-cache", env={**env, "LIXINGER_BUDGET": "1"}, timeout=150)
    took = time.monotonic() - started
    assert r.returncode == 1 and "time budget of 1 s" in one_line(r), r.stderr
    assert took < 20, f"a 1 s budget held for {took:.0f} s"


@pytest.mark.parametrize("kind", ["pipe", "link to /dev/zero"])
def test_a_pipe_or_device_named_xlsx_is_refused_not_read_forever(tmp_path, sandbox, env, kind):
    """`lx-addin refresh` of a named pipe (or a link to /dev/zero) called book.xlsx waited
    for ever: opening a pipe blocks until someone writes to it."""
    import subprocess

    path = tmp_path / "book.xlsx"
    if kind == "pipe":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    try:
        r = run_cli("refresh", str(path), env=env, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"refresh of a {kind} still waiting after 20 s")
    assert r.returncode == 1 and "not a regular file" in one_line(r)
    assert sandbox.request_count == 0


def test_a_base_url_that_holds_the_token_is_refused_before_anything_is_sent(sandbox, env):
    """Some APIs take the token in the path; a user who put it in LIXINGER_BASE_URL had it
    sent in the request line and printed in every --debug log line that names the URL."""
    r = run_cli("--debug", "fetch", "700", "--no-cache",
                env={**env, "LIXINGER_BASE_URL": f"{sandbox.url}/{sandbox.token}"})
    assert r.returncode == 1 and "holds your token" in r.stderr, r.stderr
    assert sandbox.token[4:12] not in r.stdout + r.stderr
    assert sandbox.request_count == 0


@pytest.mark.parametrize("date", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"])
def test_a_data_date_past_the_calendars_end_is_a_bad_record_not_a_crash(sandbox, env, date):
    """A last_data_date that falls outside year 1-9999 once moved to Beijing time ended the
    whole fetch with "unexpected error: OverflowError"; it is a bad record of its own code."""
    record = dict(sandbox.dataset.record("00700"), last_data_date=date)
    sandbox.inject("bad-record", times=None, data=[record], only_code="00700")
    r = run_cli("fetch", "700", "5", "--format", "csv", "--fields", "mm_sh", env=env)
    assert "OverflowError" not in r.stderr and "Traceback" not in r.stderr
    assert r.returncode == 1 and f"00700: last_data_date {date!r} is out of range" in r.stderr, r.stderr
    assert "00005," in r.stdout, "the other code is still shown"


def test_a_whole_number_no_spreadsheet_can_hold_is_empty_like_infinity(book, sandbox, env):
    """JSON allows 10**400; Python reads it exactly and the refresh wrote all 401 digits into
    the cell, which LibreOffice shows as INF (an infinite float was already left empty)."""
    import re
    import zipfile

    record = dict(sandbox.dataset.record("00700"), mm_sh=10**400)
    sandbox.inject("bad-record", times=None, data=[record], only_code="00700")
    r = run_cli("refresh", str(book), env=env)
    assert r.returncode == 0, r.stderr
    with zipfile.ZipFile(book) as z:
        sheets = "".join(z.read(n).decode() for n in z.namelist() if n.startswith("xl/worksheets/sheet"))
    assert not re.search(r"<v>-?\d{310,}</v>", sheets)


@pytest.mark.parametrize("code", [True, "1"])
def test_a_result_code_that_only_looks_like_1_is_not_success(service, sandbox, code):
    from xl_addin.exceptions import BadResponseError

    sandbox.inject("api_error", times=None, code=code, message="success")
    result = service.fetch(["00700"])
    assert "00700" not in result.records
    err = result.errors["00700"]
    assert isinstance(err, BadResponseError) and "result code that is not a number" in str(err)
    assert service.cache.latest(["00700"]) == {}


# -- the history store is the cache (adv-store) -------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_a_value_prints_the_same_from_the_cache_file_as_cold(sandbox, env, fmt):
    """The API sends a whole amount as an integer (mm_sha 596881053450); the cache file's typed
    REAL column gave it back as 596881053450.0, so the same record printed differently when it
    came from the file: an analyst diffing two exports saw every amount change."""
    record = dict(sandbox.dataset.record("00700"), mm_sha=596881053450, mm_sh_nba_d1=-635456020,
                  mm_sh=1085238279.0, spc=0)
    sandbox.inject("bad-record", times=None, data=[record], only_code="00700")
    cold = run_cli("fetch", "700", "--format", fmt, "--no-cache", env=env)
    warm = run_cli("fetch", "700", "--format", fmt, env=env)
    assert cold.returncode == warm.returncode == 0, cold.stderr + warm.stderr
    assert sandbox.request_count == 1, "the second came from the file"
    if fmt == "csv":  # the last columns: stale, fetched_at
        def strip(text):
            return [line.rsplit(",", 2)[0] for line in text.splitlines()]
    else:  # numbers as printed (596881053450 and 596881053450.0 are equal in Python)
        def strip(text):
            import json

            rows = json.loads(text, parse_int=lambda s: s, parse_float=lambda s: s)
            return [{k: v for k, v in r.items() if k != "fetched_at"} for r in rows]
    assert strip(cold.stdout) == strip(warm.stdout)


def test_a_fetch_the_cache_file_could_not_keep_says_so(sandbox, env, monkeypatch, capsys, tmp_path):
    """Another process (a scheduled snapshot, a stuck `history import`) holds the file's write
    lock past the busy timeout: the fetch showed its values and exited 0 without a word, and the
    history (the cache file is the history now) silently lacked that fetch."""
    import sqlite3

    from xl_addin.cli import main
    from xl_addin.store import sqlite as store_sqlite

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["fetch", "5", "--fields", "mm_sh"]) == 0  # the file made, with 00005
    capsys.readouterr()
    monkeypatch.setattr(store_sqlite, "BUSY_TIMEOUT_MS", 300)
    path = tmp_path / "cache" / "mm_ah.sqlite3"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        assert main(["fetch", "700", "--fields", "mm_sh"]) == 0
    finally:
        other.execute("ROLLBACK")
        other.close()
    out, err = capsys.readouterr()
    assert f"{sandbox.dataset.record('00700')['mm_sh']:,}" in out  # the value is shown
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "locked" in lines[0] and "not kept" in lines[0], err
    assert sandbox.token not in err


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody may write (root: the immutable attribute, which root obeys; else mode 555)."""
    import subprocess

    folder = tmp_path / "shared"
    folder.mkdir()

    def lock():
        if os.geteuid() == 0:
            r = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
            assert r.returncode == 0, f"cannot make a read-only folder as root: {r.stderr}"
        else:
            folder.chmod(0o555)
    yield folder, lock
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    folder.chmod(0o755)


def test_a_cache_file_in_a_read_only_folder_is_read_and_says_it_keeps_nothing(sandbox, read_only_folder):
    """A cache file on a read-only share (or a colleague's copy in a folder one may not write):
    SQLite cannot make the WAL index beside it, and every read failed with "attempt to write a
    readonly database" (`cache info`, `store status`, the formulas' cached values); now it is read
    as it is, and a write says the file is read-only."""
    from xl_addin.cache import Cache
    from xl_addin.exceptions import StoreError
    from xl_addin.records import parse_record

    folder, lock = read_only_folder
    cache = Cache(folder / "mm_ah.sqlite3", sandbox.url)
    record = parse_record(sandbox.dataset.record("00700"))
    cache.store_fetch({"00700": record}, ["12345"], 1000.0)
    cache.close()
    lock()
    cache = Cache(folder / "mm_ah.sqlite3", sandbox.url)
    found = cache.latest(["00700", "12345"])
    assert found["00700"] == (record, 1000.0) and found["12345"][1] == 1000.0
    assert cache.info()["snapshots"] == 1
    with pytest.raises(StoreError, match="is read-only"):
        cache.store_fetch({"00700": record}, [], 2000.0)
    cache.close()
    assert sorted(os.listdir(folder)) == ["mm_ah.sqlite3"]


@pytest.mark.parametrize("url, secret", [
    ("postgresql://dave:S3cret@db.desk.local:6543/rt?sslmode=require", "S3cret"),
    ("postgresql://dave@db.desk.local:6543/rt?password=S3cret&sslmode=require", "S3cret"),
])
def test_a_desk_url_with_a_password_suggests_the_same_url_without_it(url, secret):
    """The line said "postgresql://dave@db.desk.local/rt without it is the URL to use": the port
    and the sslmode were gone, so the URL it offered named another server (port 5432)."""
    import re

    from xl_addin.store.location import StoreURLError, parse_desk_url

    with pytest.raises(StoreURLError) as caught:
        parse_desk_url(url, "XL_ADDIN_STORE")
    line = str(caught.value)
    assert secret not in line and "\n" not in line
    offered = re.search(r"\((\S+) without it is the URL to use\)", line).group(1)
    assert offered == "postgresql://dave@db.desk.local:6543/rt?sslmode=require"
    assert parse_desk_url(offered).port == 6543


def test_the_cache_file_is_let_go_idle_seconds_after_its_last_use(tmp_path, sandbox):
    """Windows cannot move or delete a file another process holds open, so Excel's UDF server
    lets the cache file go after WATCH_IDLE seconds without use: it held it up to twice that
    (the watcher slept a whole period again after a use it found too recent)."""
    import time

    from xl_addin.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "mm_ah.sqlite3", as_cache=True, idle=1.0)
    store.open()
    time.sleep(0.2)
    store.stamp("not_before", source=sandbox.url)  # the last use
    last = time.monotonic()
    time.sleep(1.6)
    assert not store.is_open, f"still open {time.monotonic() - last:.1f} s after its last use (idle 1 s)"

def test_an_iso_date_cell_in_the_codes_is_a_problem_row_not_a_crash(tmp_path, sandbox, env):
    """``t="d"`` (an ISO 8601 date cell, as strict-mode writers save dates) in LX_CODES ended in
    "unexpected error: ValueError"; it is a code that is not one, like any other."""
    from test_refresh_rows import rewrite_sheet

    book = tmp_path / "book.xlsx"
    date = b'<c r="A8" s="17" t="d"><v>2024-12-31T00:00:00</v></c>'
    rewrite_sheet(TEMPLATES / "mm_ah.xlsx", book, lambda d: re.sub(rb'<c r="A8".*?</c>', date, d, count=1))
    r = run_cli("refresh", str(book), env=env)
    assert r.returncode == 0, r.stderr
    assert "1 problem row" in r.stdout


def test_a_code_that_points_past_the_shared_strings_is_a_damaged_book_in_one_line(tmp_path, sandbox, env):
    """A cell ``t="s"`` whose index the shared strings do not hold (a damaged or hand-edited file)
    ended in "unexpected error: IndexError"."""
    from test_refresh_rows import rewrite_sheet

    book = tmp_path / "book.xlsx"
    rewrite_sheet(TEMPLATES / "mm_ah.xlsx", book, lambda d: re.sub(
        rb'<c r="A8".*?</c>', b'<c r="A8" s="17" t="s"><v>7</v></c>', d, count=1))
    before = digest(book)
    r = run_cli("refresh", str(book), env=env)
    assert r.returncode == 1 and "damaged" in one_line(r) and "A8" in one_line(r)
    assert digest(book) == before and sandbox.request_count == 0


def _codes_as_formulas(path, formulas: dict) -> None:
    """The mm_ah template with its codes cleared and *formulas* in LX_CODES cells, saved by openpyxl
    (which writes a formula with no calculated value, as any program that does not calculate)."""
    import openpyxl

    wb = openpyxl.load_workbook(TEMPLATES / "mm_ah.xlsx")
    ws = wb["MM_AH"]
    for r in range(7, 1007):
        ws.cell(row=r, column=1).value = None
    for address, value in formulas.items():
        ws[address] = value
    wb.save(path)


def test_codes_that_are_formulas_no_program_calculated_are_said_so(tmp_path, sandbox, env):
    """Codes as formulas (``=Watchlist!A2``) in a book saved by openpyxl or another writer that does
    not calculate read as blank: the rows were skipped without a word, and with every code so the
    refresh said "no codes to refresh: type HK codes into …" to cells that hold formulas."""
    import openpyxl

    book = tmp_path / "formulas.xlsx"
    _codes_as_formulas(book, {"A7": "=Watchlist!A2", "A8": "=Watchlist!A3"})
    before = digest(book)
    r = run_cli("refresh", str(book), env=env)
    assert r.returncode == 1 and "formula never calculated" in one_line(r), r.stdout + r.stderr
    assert "open and save it in Excel or LibreOffice first" in one_line(r)
    assert digest(book) == before and sandbox.request_count == 0

    _codes_as_formulas(book, {"A7": "=Watchlist!A2", "A8": "700"})
    r = run_cli("refresh", str(book), env=env)
    assert r.returncode == 0 and "1 problem row" in r.stdout, r.stdout + r.stderr
    row7 = [c.value for c in openpyxl.load_workbook(book)["MM_AH"][7]]
    assert "#N/A Formula Not Calculated" in row7, row7
    problems = [c.value for row in openpyxl.load_workbook(book)["MM_AH"].iter_rows() for c in row
                if isinstance(c.value, str) and "formula never calculated" in c.value]
    assert problems, "the status block names the cause"
