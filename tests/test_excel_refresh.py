"""The RunPython path: xl_addin.refresh.main() against a recording stand-in of xlwings' Book API.

Excel cannot run here; the stand-in records every call the refresh makes (names, range
reads and writes, number formats, the status bar, alerts) over a grid that starts as a
template's content, and the result must match the headless refresh cell for cell.
"""

import shutil
from pathlib import Path

import pytest

from conftest import ROOT
from xl_addin.layout import Ref
from xl_addin.refresh import main, refresh_file
from xl_addin.xlsx import XlsxBook


class Range:
    def __init__(self, sheet, top, left, bottom, right, ndim=None):
        self.sheet, self.top, self.left, self.bottom, self.right, self.ndim = sheet, top, left, bottom, right, ndim

    def options(self, ndim=None, **_):
        return Range(self.sheet, self.top, self.left, self.bottom, self.right, ndim)

    @property
    def value(self):
        self.sheet.book.calls.append(("read", self.sheet.name, self.top, self.left, self.bottom, self.right))
        grid = [[self.sheet.cells.get((r, c)) for c in range(self.left, self.right + 1)]
                for r in range(self.top, self.bottom + 1)]
        assert self.ndim == 2, "the refresh must ask for 2-D values"
        return grid

    @value.setter
    def value(self, matrix):
        if self.sheet.protected:
            raise self.sheet.protected
        assert len(matrix) == self.bottom - self.top + 1 and len(matrix[0]) == self.right - self.left + 1
        self.sheet.book.calls.append(("write", self.sheet.name, self.top, self.left, len(matrix), len(matrix[0])))
        for i, row in enumerate(matrix):
            for j, v in enumerate(row):
                self.sheet.cells[(self.top + i, self.left + j)] = v

    @property
    def number_format(self):
        return self.sheet.formats.get(self.left, "General")  # None: mixed formats, as xlwings reports them

    @number_format.setter
    def number_format(self, fmt):
        if self.sheet.protected:
            raise self.sheet.protected
        self.sheet.book.calls.append(("format", self.left))
        self.sheet.formats[self.left] = fmt


class Sheet:
    def __init__(self, book, name, cells):
        import excel_harness as xh

        self.book, self.name, self.cells, self.formats = book, name, cells, {}
        self.protected = None  # the error Excel raises on a write, when the sheet is protected
        self.api = xh.ComSheet(cells, name=name, book=book.api)  # the same cells over COM

    def range(self, a, b):
        return Range(self, a[0], a[1], b[0], b[1])


class Sheets(dict):
    """xlwings' Sheets: indexed by name, iterated as sheets."""

    def __iter__(self):
        return iter(self.values())


class Name:
    def __init__(self, name, refers_to):
        self.name, self.refers_to = name, "=" + refers_to


class App:
    def __init__(self):
        import excel_harness as xh

        self.status = []
        self.alerts = []
        self.api = xh.ComApp()

    @property
    def status_bar(self):
        return self.status[-1] if self.status else None

    @status_bar.setter
    def status_bar(self, text):
        self.status.append(text)

    def alert(self, prompt, title=None, mode=None):
        self.alerts.append((title, prompt))


class Book:
    """What xw.Book.caller() gives RunPython: names, sheets, app."""

    def __init__(self, xlsx_path):
        src = XlsxBook(xlsx_path)
        import excel_harness as xh

        self.calls = []
        self.app = App()
        self.name = xlsx_path.name
        self.api = xh.ComBook(self.name, app=self.app.api)
        self.names = [Name(n, ref) for n, ref in src.defined_names().items() if "!" not in n]
        sheet = Ref.parse(dict((n.name, n.refers_to[1:]) for n in self.names)["LX_CODES"]).sheet
        cells = {}
        for r, row in enumerate(src.read(sheet, 1, 1, 1006, 45), start=1):
            for c, v in enumerate(row, start=1):
                if v is not None:
                    cells[(r, c)] = v
        self.sheets = Sheets({sheet: Sheet(self, sheet, cells)})


@pytest.fixture
def excel_env(formula_service):
    yield formula_service


def test_runpython_refresh_matches_headless_and_is_one_write_per_block(excel_env, service, tmp_path):
    path = tmp_path / "mm.xlsx"
    shutil.copyfile(ROOT / "templates" / "mm_ah.xlsx", path)
    book = Book(path)
    main(book)
    writes = [c for c in book.calls if c[0] == "write"]
    assert writes == [("write", "MM_AH", 7, 3, 1000, 42), ("write", "MM_AH", 1, 10, 4, 1)]
    reads = [c for c in book.calls if c[0] == "read"]
    assert len(reads) == 2  # the codes once, the field keys once
    assert book.app.status[-2].startswith("Lixinger: 30 of 30 codes with data x 42 fields")
    assert book.app.status[-1] is False  # handed back to Excel
    assert not book.app.alerts

    refresh_file(path, service=service)  # the headless path on the same template
    headless = XlsxBook(path).read("MM_AH", 7, 3, 1006, 44)
    excel = [[book.sheets["MM_AH"].cells.get((r, c)) for c in range(3, 45)] for r in range(7, 1007)]
    for h_row, e_row in zip(headless, excel):
        for h, e in zip(h_row, e_row):
            if hasattr(e, "year"):
                e = (e - __import__("datetime").datetime(1899, 12, 30)).days
            assert h == e or (h is not None and e is not None and float(h) == float(e))


def test_runpython_failure_shows_in_status_bar_block_and_alert(excel_env, sandbox, tmp_path):
    path = tmp_path / "mm.xlsx"
    shutil.copyfile(ROOT / "templates" / "mm_ah.xlsx", path)
    book = Book(path)
    sandbox.inject("503", times=None)
    main(book)
    assert "refresh failed" in book.app.status[-2] and "HTTP 503" in book.app.status[-2]
    assert book.app.status[-1] is False
    assert book.app.alerts and "HTTP 503" in book.app.alerts[0][1]
    assert "refresh failed" in book.sheets["MM_AH"].cells[(4, 10)]
    assert book.sheets["MM_AH"].cells.get((7, 3)) is None  # no table written
    assert sandbox.token not in repr(book.app.status) + repr(book.app.alerts)


def test_refresh_button_recalculates_this_workbooks_formulas_and_they_ask_again(excel_env, sandbox, tmp_path):
    """Button and formulas in one process ("Use UDF Server" TRUE); tests/test_process_model.py
    runs them in two. Only this workbook's LX_MMAH cells are marked dirty, then
    Application.Calculate (dirty cells only): no CalculateFull of every open workbook."""
    import excel_harness as xh

    udfs = xh.load()
    book = xh.formulas_book({"A1": 700.0, "A2": 5.0, "B1": "=LX_MMAH(A1:A2,\"mm_sh\")", "C1": "=SUM(D1:D9)",
                             "B5": "=lx_mmah(A1,\"spc\")", "C5": "=LX_MMAH(A2,\"spc\")", "D5": "=A1*2"})
    sheet = book.api.sheets[0]
    xh.call(udfs.LX_MMAH, sheet.range("A1:A2"), "mm_sh", caller=sheet.cell("B1"))
    assert sandbox.request_count == 1
    xh.call(udfs.LX_MMAH, sheet.range("A1:A2"), "mm_sh", caller=sheet.cell("B1"))
    assert sandbox.request_count == 1  # fresh: served from memory

    main(book)
    assert [c[1] for c in sheet.calls if c[0] == "Dirty"] == ["$B$1", "$B$5:$C$5"]
    assert book.api.Application.calls == ["Calculate"]
    assert book.app.status[-1] is False and not book.app.alerts
    xh.call(udfs.LX_MMAH, sheet.range("A1:A2"), "mm_sh", caller=sheet.cell("B1"))  # what the recalculation runs
    assert sandbox.request_count == 2 and sandbox.seen[-1].codes == ["00700", "00005"]


def test_template_refresh_recalculates_no_other_workbook(excel_env, tmp_path):
    path = tmp_path / "mm.xlsx"
    shutil.copyfile(ROOT / "templates" / "mm_ah.xlsx", path)
    book = Book(path)
    main(book)
    assert book.sheets["MM_AH"].cells[(7, 3)] == "00700"
    assert book.app.api.calls == ["Calculate"]  # dirty cells only (manual mode too), not CalculateFull


def test_mixed_number_formats_are_the_analysts_and_stay(excel_env, tmp_path):
    path = tmp_path / "mm.xlsx"
    shutil.copyfile(ROOT / "templates" / "mm_ah.xlsx", path)
    book = Book(path)
    sheet = book.sheets["MM_AH"]
    sheet.formats[4] = None  # column D: some cells formatted by the analyst, some not
    sheet.formats[5] = "0.0%"  # column E: the analyst's
    main(book)
    formatted = {c[1] for c in book.calls if c[0] == "format"}
    assert 4 not in formatted and 5 not in formatted and sheet.formats[4] is None
    assert formatted  # the General columns did get their kind's format


def test_a_bad_setting_is_a_message_not_a_traceback(excel_env, monkeypatch):
    import excel_harness as xh
    import xl_addin.udfs as udfs

    monkeypatch.setenv("LIXINGER_BASE_URL", "http://example.com/api")  # refused: plain http
    udfs.reset()
    book = xh.formulas_book({"A1": 700.0, "B1": "=LX_MMAH(A1,\"spc\")"})
    main(book)  # no exception reaches RunPython
    assert "refresh failed" in book.app.status[-2] and "plain http" in book.app.status[-2]
    assert book.app.alerts and "plain http" in book.app.alerts[0][1]
    assert book.app.status[-1] is False


def test_no_workbook_at_all_is_not_a_traceback(excel_env, capsys):
    main()  # no Excel here: xw.Book.caller() and xw.books.active both fail
    assert "Lixinger refresh failed" in capsys.readouterr().err


def test_service_down_with_cached_values_says_in_excel_terms_that_nothing_changed(excel_env, sandbox, tmp_path):
    """The button refuses stale values like the CLI, but says it in Excel's terms: what happened,
    that the workbook was not changed, what to do. No CLI flag an Excel user cannot pass."""
    path = tmp_path / "mm.xlsx"
    shutil.copyfile(ROOT / "templates" / "mm_ah.xlsx", path)
    book = Book(path)
    main(book)  # fills the table and the cache
    assert not book.app.alerts
    table = dict(book.sheets["MM_AH"].cells)
    sandbox.inject("503", times=None)
    main(book)
    (title, text), = book.app.alerts
    assert "HTTP 503" in text
    assert "--allow-stale" not in text and "lx-addin" not in text
    assert "workbook was left as it was" in text and "Refresh again" in text
    assert "\n" not in text and "\n" not in book.app.status[-2]
    assert book.app.status[-1] is False
    changed = {k for k, v in book.sheets["MM_AH"].cells.items() if table.get(k) != v}
    assert all(r <= 6 for r, _ in changed)  # the table stayed; only the status block says "refresh failed"


def test_a_multi_line_service_message_is_one_line_in_the_box_and_the_status_bar(excel_env, sandbox, tmp_path):
    path = tmp_path / "mm.xlsx"
    shutil.copyfile(ROOT / "templates" / "mm_ah.xlsx", path)
    book = Book(path)
    sandbox.inject("403", times=None, message="this API is not in your plan.\r\nUpgrade at lixinger.com\n\n")
    main(book)
    (title, text), = book.app.alerts
    assert "not in your plan. Upgrade at lixinger.com" in text
    assert not any(ch in text for ch in "\r\n")
    failed = [s for s in book.app.status if isinstance(s, str) and "failed" in s]
    assert failed and not any(ch in s for s in failed for ch in "\r\n")
    assert book.app.status[-1] is False


@pytest.mark.parametrize("prelude", ["", "import sys; sys.modules['xl_addin.layout'] = None; "],
                         ids=["no Excel", "a broken install too"])
def test_with_no_excel_to_tell_runpython_shows_one_line_not_nothing(tmp_path, prelude):
    """xlwings' RunPython (a fresh process) sends stderr to a log it shows only when Python exits
    non-zero (``If ExitCode <> 0 Then Call ShowError(LOG_FILE)`` in its VBA). When no message box
    can be reached, the button must exit non-zero with one line, or the click shows nothing at all."""
    import subprocess
    import sys

    vba = (Path(__import__("xlwings").__file__).parent / "xlwings_custom_addin.bas").read_text("utf-8", "replace")
    assert "If ExitCode <> 0 Then" in vba and "--from_xl=1" in vba
    env = dict(__import__("os").environ, PYTHONPATH=str(ROOT), XL_ADDIN_CACHE_DIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-B", "-c", prelude + "import xl_addin;xl_addin.main()", "--wb=Book1.xlsx",
                        "--from_xl=1"], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Lixinger refresh failed") and "Traceback" not in r.stderr


def test_a_protected_sheet_is_excels_own_words_in_one_line(excel_env, tmp_path):
    """Excel refuses the write with a COM error whose description (excepinfo[2], two paragraphs)
    says what to do; the box shows that, on one line, not the com_error tuple."""
    import excel_harness as xh

    path = tmp_path / "mm.xlsx"
    shutil.copyfile(ROOT / "templates" / "mm_ah.xlsx", path)
    book = Book(path)
    said = ("The cell or chart you're trying to change is on a protected sheet.\n\n"
            "To make a change, unprotect the sheet. You might be requested to enter a password.")
    book.sheets["MM_AH"].protected = xh.com_error(excepinfo=(0, "Microsoft Excel", said, "xlmain11.chm", 0,
                                                             -2146827284))
    main(book)
    (title, text), = book.app.alerts
    assert "protected sheet. To make a change, unprotect the sheet." in text
    assert "-2147352567" not in text and "xlmain11" not in text and "\\n" not in text and "\n" not in text
    assert book.sheets["MM_AH"].cells.get((7, 3)) is None and book.app.status[-1] is False
