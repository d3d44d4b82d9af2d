"""How the headless refresh writes: what it copies as it was, what it checks before replacing
the original, what a refresh process loads, and the head start it takes during the fetch."""

import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

from conftest import ROOT
from test_refresh import TEMPLATES, digest, table
from xl_addin.exceptions import WorkbookError
from xl_addin.refresh import refresh_file
from xl_addin.xlsx import XlsxBook, _verify, _verify_copies

CHANGED = {"xl/worksheets/sheet1.xml", "xl/workbook.xml"}


def raw_members(path) -> dict[str, bytes]:
    """Each member's compressed bytes, as stored in the file."""
    out = {}
    with zipfile.ZipFile(path) as z, open(path, "rb") as fh:
        for info in z.infolist():
            fh.seek(info.header_offset + 26)
            name_len, extra_len = int.from_bytes(fh.read(2), "little"), int.from_bytes(fh.read(2), "little")
            fh.seek(info.header_offset + 30 + name_len + extra_len)
            out[info.filename] = fh.read(info.compress_size)
    return out


def recompressed(src, dst, level):
    """*src* with every member deflated at *level* (another program's compressor)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info), compress_type=zipfile.ZIP_DEFLATED, compresslevel=level)


def test_unchanged_parts_keep_their_compressed_bytes(tmp_path, service):
    path = tmp_path / "book.xlsx"
    recompressed(TEMPLATES / "mm_ah.xlsx", path, level=1)  # not Python's default level
    before = raw_members(path)
    refresh_file(path, service=service)
    after = raw_members(path)
    assert list(after) == list(before), "the same parts in the same order"
    for name in before:
        if name not in CHANGED:
            assert after[name] == before[name], f"{name} was inflated and deflated again"
    assert table(path)[1][0][1] == "00700"


def test_a_written_part_that_does_not_read_back_is_refused(tmp_path):
    good = b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"/>'
    broken = good[:-3]  # cut short, as a full disk would leave it
    path = tmp_path / "written.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("xl/worksheets/sheet1.xml", broken)
    with pytest.raises(WorkbookError, match="did not read back"):
        _verify(str(path), {"xl/worksheets/sheet1.xml": broken})
    with pytest.raises(WorkbookError, match="did not read back"):  # not what was meant
        _verify(str(path), {"xl/worksheets/sheet1.xml": good})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("xl/worksheets/sheet1.xml", good)
    _verify(str(path), {"xl/worksheets/sheet1.xml": good})


def test_a_copied_part_that_differs_from_the_original_is_refused(tmp_path):
    src, out = tmp_path / "src.xlsx", tmp_path / "out.xlsx"
    shutil.copyfile(TEMPLATES / "mm_ah.xlsx", src)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            zout.writestr(info, data.replace(b"MM_AH", b"MM_AX") if info.filename == "xl/workbook.xml" else data)
    with zipfile.ZipFile(src) as source:
        _verify_copies(str(out), {"xl/workbook.xml": b""}, source)  # a part we changed: not compared
        with pytest.raises(WorkbookError, match="xl/workbook.xml is not the original's"):
            _verify_copies(str(out), {}, source)


def test_a_refresh_process_loads_no_second_workbook_reader(tmp_path, sandbox):
    """openpyxl (and numpy with it) cost a refresh process ~50 MiB of its peak: not loaded."""
    path = tmp_path / "book.xlsx"
    shutil.copyfile(TEMPLATES / "mm_ah.xlsx", path)
    before = digest(path)
    code = textwrap.dedent("""
        import sys
        from xl_addin.config import Settings
        from xl_addin.refresh import refresh_file
        from xl_addin.service import MMAH
        svc = MMAH(Settings(base_url=sys.argv[2], cache_dir=sys.argv[4]), token=sys.argv[3])
        refresh_file(sys.argv[1], service=svc)
        print(sorted(m for m in ("openpyxl", "numpy", "pandas") if m in sys.modules))
    """)
    r = subprocess.run([sys.executable, "-c", code, str(path), sandbox.url, sandbox.token, str(tmp_path / "c")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert digest(path) != before
    assert r.stdout.strip() == "[]"


def test_an_area_indexed_before_another_write_is_indexed_again(book_path):
    """ready() runs while the fetch is in flight; a write in between must not leave it stale."""
    b = XlsxBook(book_path)
    try:
        b.ready("MM_AH", 7, 3, 9, 4)
        b.write("MM_AH", 8, 3, [["between"]])  # e.g. the status block, or another block
        b.write("MM_AH", 7, 3, [[1.5, "x"], [None, None], [2.5, "y"]])
        b.save()
    finally:
        b.close()
    grid = XlsxBook(book_path).read("MM_AH", 7, 3, 9, 4)
    assert grid == [[1.5, "x"], [None, None], [2.5, "y"]]


@pytest.fixture
def book_path(tmp_path):
    p = tmp_path / "book.xlsx"
    shutil.copyfile(TEMPLATES / "mm_ah.xlsx", p)
    return p
