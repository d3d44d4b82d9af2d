"""Files are treated as a careful user would: permissions, symlinks, the umask, temp files
left by a killed refresh, size limits on what a workbook inflates to, and bad paths.

Everything through `lx-addin refresh` as a user runs it: the exit code, one stderr line,
the workbook's bytes and mode, and the folder's listing (no surprise files).
"""

import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
import zipfile

import pytest

from conftest import ROOT, run_cli
from test_refresh import TEMPLATES, digest, parts, table


@pytest.fixture
def env(sandbox):
    return {"LIXINGER_BASE_URL": sandbox.url, "LIXINGER_TOKEN": sandbox.token}


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "books"
    d.mkdir()
    shutil.copyfile(TEMPLATES / "mm_ah.xlsx", d / "book.xlsx")
    return d


def one_line(r):
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def listing(d):
    return sorted(p.name for p in d.rglob("*"))


def test_a_read_only_workbook_is_refused_and_not_modified(folder, sandbox, env):
    path = folder / "book.xlsx"
    os.chmod(path, 0o444)
    before = digest(path)
    r = run_cli("refresh", str(path), env=env)
    assert r.returncode == 1 and "read-only" in one_line(r)
    assert digest(path) == before and stat.S_IMODE(os.stat(path).st_mode) == 0o444
    assert sandbox.request_count == 0, "refused before asking the service"
    assert listing(folder) == ["book.xlsx"]


def test_a_symlinked_workbook_is_refreshed_at_its_target(folder, tmp_path, env):
    real = folder / "book.xlsx"
    os.chmod(real, 0o640)
    link_dir = tmp_path / "desktop"
    link_dir.mkdir()
    link = link_dir / "watchlist.xlsx"
    link.symlink_to(real)
    before = digest(real)
    r = run_cli("refresh", str(link), env=env)
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(real), "the link stays a link to the same file"
    assert digest(real) != before and table(real)[1][0][1] == "00700", "the real file was refreshed"
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o640
    assert listing(link_dir) == ["watchlist.xlsx"] and listing(folder) == ["book.xlsx"]


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_a_new_output_file_gets_the_umask_mode(folder, env, umask, mode):
    out = folder / "today.xlsx"
    r = subprocess.run(
        ["sh", "-c", f'umask {umask:03o}; exec "$0" -m xl_addin refresh "$1" -o "$2"', sys.executable,
         str(folder / "book.xlsx"), str(out)],
        capture_output=True, text=True, env=dict(os.environ, **env), cwd=ROOT, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == mode


def test_an_existing_file_keeps_its_mode(folder, env):
    path = folder / "book.xlsx"
    os.chmod(path, 0o600)
    assert run_cli("refresh", str(path), env=env).returncode == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    import xl_addin.xlsx as x
    from xl_addin.config import Settings
    from xl_addin.refresh import refresh_file
    from xl_addin.service import MMAH
    def hang(path, replaced):
        print(path, flush=True)
        time.sleep(600)
    x._verify = hang  # stop inside the save, with the temporary file written
    svc = MMAH(Settings.from_env(base_url=sys.argv[2]), token=sys.argv[3])
    refresh_file(sys.argv[1], service=svc)
""")


def _age(path, seconds=600):
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_temp_files_of_a_killed_refresh_are_cleaned_on_the_next_run(folder, sandbox, env):
    path = folder / "book.xlsx"
    before = digest(path)
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path), sandbox.url, sandbox.token],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)
    leftover = child.stdout.readline().strip()
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert os.path.basename(leftover).startswith(".~book.") and os.path.exists(leftover)
    assert digest(path) == before, "kill -9 during a save leaves the workbook as it was"
    _age(leftover)  # the next run happens later
    r = run_cli("refresh", str(path), env=env)
    assert r.returncode == 0, r.stderr
    assert listing(folder) == ["book.xlsx"], "the killed run's temporary file was removed"


HOLDER = textwrap.dedent("""
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    time.sleep(600)
""")


def test_only_our_old_unlocked_temp_files_are_cleaned(folder, env):
    path = folder / "book.xlsx"
    ours_old = folder / ".~book.k2j4x9q1.xlsx"
    ours_young = folder / ".~book.a8d7f6e5.xlsx"
    ours_in_use = folder / ".~book.zz11yy22.xlsx"
    others = [folder / ".~lock.book.xlsx#", folder / ".~other.k2j4x9q1.xlsx", folder / "~$book.xlsx",
              folder / ".~book.notes.txt", folder / ".~book.xlsx"]
    for p in [ours_old, ours_young, ours_in_use, *others]:
        p.write_bytes(b"PK\x03\x04 partial")
    for p in [ours_old, ours_in_use, *others]:
        _age(p)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(ours_in_use)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"  # a refresh that is still writing
        r = run_cli("refresh", str(path), env=env)
        assert r.returncode == 0, r.stderr
    finally:
        holder.kill()
        holder.wait(10)
    assert not ours_old.exists()
    assert ours_young.exists() and ours_in_use.exists()
    assert all(p.exists() for p in others)


# --- bad paths: one line, no surprise files, the service not asked -----------------------------
def test_a_folder_is_not_a_workbook(folder, sandbox, env):
    r = run_cli("refresh", str(folder), env=env)
    assert r.returncode == 1 and "is a folder" in one_line(r)
    assert listing(folder) == ["book.xlsx"] and sandbox.request_count == 0


def test_output_with_another_extension_is_refused(folder, sandbox, env):
    r = run_cli("refresh", str(folder / "book.xlsx"), "-o", str(folder / "x.csv"), env=env)
    assert r.returncode == 1 and ".xlsx" in one_line(r) and "x.csv" in one_line(r)
    assert listing(folder) == ["book.xlsx"] and sandbox.request_count == 0


def test_output_into_a_missing_folder_is_refused_not_created(folder, sandbox, env):
    r = run_cli("refresh", str(folder / "book.xlsx"), "-o", str(folder / "missing" / "dir" / "x.xlsx"), env=env)
    assert r.returncode == 1 and "does not exist" in one_line(r)
    assert listing(folder) == ["book.xlsx"] and sandbox.request_count == 0


# --- size limits ---------------------------------------------------------------------------------
def _inflated(src, dst, extra_bytes):
    """The template with its sheet padded by whitespace: a small zip that inflates a lot."""
    data = parts(src)
    sheet = data["xl/worksheets/sheet1.xml"]
    padded = sheet.replace(b"<sheetData>", b"<sheetData>" + b" " * extra_bytes, 1)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, blob in data.items():
            z.writestr(name, padded if name == "xl/worksheets/sheet1.xml" else blob)


def test_a_part_over_the_size_limit_is_refused_and_named(folder, sandbox, env):
    path = folder / "bomb.xlsx"
    _inflated(folder / "book.xlsx", path, 40 * 2**20)  # 40 MiB of spaces, ~40 KB zipped
    assert path.stat().st_size < 1 * 2**20
    before = digest(path)
    r = run_cli("refresh", str(path), env=dict(env, XL_ADDIN_MAX_PART_BYTES=str(8 * 2**20)))
    line = one_line(r)
    assert r.returncode == 1 and "xl/worksheets/sheet1.xml" in line and "XL_ADDIN_MAX_PART_BYTES" in line
    assert digest(path) == before and sandbox.request_count == 0


def test_the_limit_allows_a_genuine_workbook_and_is_validated(folder, env):
    path = folder / "book.xlsx"
    r = run_cli("refresh", str(path), env=dict(env, XL_ADDIN_MAX_PART_BYTES=str(4 * 2**20)))
    assert r.returncode == 0, r.stderr  # the template's largest part is ~1.3 MB
    r = run_cli("refresh", str(path), env=dict(env, XL_ADDIN_MAX_PART_BYTES="lots"))
    assert r.returncode == 1 and "XL_ADDIN_MAX_PART_BYTES" in one_line(r)


def test_a_part_that_lies_about_its_size_is_refused(folder, env):
    """The limit is also applied while inflating; a declared size that lies is caught."""
    path = folder / "liar.xlsx"
    _inflated(folder / "book.xlsx", path, 2 * 2**20)
    blob = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("xl/worksheets/sheet1.xml")
    real = info.file_size.to_bytes(4, "little")
    small = (1000).to_bytes(4, "little")
    assert blob.count(real) >= 2
    path.write_bytes(bytes(blob).replace(real, small))  # local header and central directory
    before = digest(path)
    r = run_cli("refresh", str(path), env=env)
    assert r.returncode == 1 and "sheet1.xml" in one_line(r)
    assert digest(path) == before

