"""Issue 9, risky point: importing the functions when Excel denies access to the VBA project.

The App stand-in has the shape of ``xlwings.App`` on Windows (``books.open`` returning a Book
whose ``.api`` is the COM Workbook; ``quit`` and ``kill``) and records what happened to it. COM
errors carry the HRESULT and the excepinfo that pywin32 gives for "Programmatic access to Visual
Basic Project is not trusted".
"""

import pytest

from xl_addin.exceptions import InstallError
from xl_addin.udf_import import import_udfs_into_addin

NOT_TRUSTED = (-2147352567, "Exception occurred.",
               (0, "Microsoft Excel", "Programmatic access to Visual Basic Project is not trusted\n",
                "xlmain11.chm", 0, -2146827284), None)


class ComError(Exception):
    """pywintypes.com_error's shape: (hresult, text, excepinfo, argerror)."""


class Components:
    def __init__(self, book):
        self.book, self.modules = book, {}

    @property
    def Count(self):
        if not self.book.trusted:
            raise ComError(*NOT_TRUSTED)
        return len(self.modules)

    def __call__(self, name):
        if name not in self.modules:
            raise ComError(-2147352565, "Invalid index.", None, None)
        return self.modules[name]


class Project:
    def __init__(self, book):
        self.book = book
        self._components = Components(book)

    @property
    def VBComponents(self):
        if not self.book.trusted:
            raise ComError(*NOT_TRUSTED)
        return self._components


class WorkbookApi:
    def __init__(self, book):
        self.book = book
        self.Name = book.name

    @property
    def VBProject(self):
        if not self.book.trusted:
            raise ComError(*NOT_TRUSTED)
        return self.book.project


class Book:
    def __init__(self, app, path, trusted):
        self.app, self.name, self.trusted = app, path.rsplit("/", 1)[-1], trusted
        self.project = Project(self)
        self.api = WorkbookApi(self)

    def save(self):
        self.app.events.append("save")

    def close(self):
        self.app.events.append("close")


class Books:
    def __init__(self, app):
        self.app = app

    def open(self, path):
        self.app.events.append("open")
        if self.app.open_fails:
            raise ComError(-2147352567, "Exception occurred.", (0, "Microsoft Excel",
                           f"Excel cannot open the file '{path}' because the file format is not valid.",
                           None, 0, -2146827284), None)
        self.app.book = Book(self.app, path, self.app.trusted)
        return self.app.book


class App:
    def __init__(self, trusted=True, open_fails=False, quit_fails=False):
        self.trusted, self.open_fails, self.quit_fails = trusted, open_fails, quit_fails
        self.events, self.book = [], None
        self.books = Books(self)

    def quit(self):
        self.events.append("quit")
        if self.quit_fails:
            raise ComError(-2147417848, "The object invoked has disconnected from its clients.", None, None)

    def kill(self):
        self.events.append("kill")


def _xlwings_like_importer(calls):
    """What xlwings' import_udfs does with the workbook: Import, else the ActiveWorkbook fallback."""
    def importer(modules, xl_workbook):
        calls.append(modules)
        xl_workbook.VBProject.VBComponents.modules["xlwings_udfs"] = object()
    return importer


def test_denied_access_is_one_clear_line_and_no_hidden_excel_is_left(tmp_path):
    app, calls = App(trusted=False), []
    with pytest.raises(InstallError) as e:
        import_udfs_into_addin(tmp_path / "xl_addin.xlam", lambda: app, _xlwings_like_importer(calls))
    message = str(e.value)
    assert "\n" not in message and "Trust access to the VBA project object model" in message
    assert "--no-udfs" in message and not calls
    assert app.events == ["open", "close", "quit"]  # closed unsaved, then Excel quit


def test_excel_quits_even_when_the_add_in_does_not_open(tmp_path):
    app = App(open_fails=True)
    with pytest.raises(InstallError, match="could not open xl_addin.xlam") as e:
        import_udfs_into_addin(tmp_path / "xl_addin.xlam", lambda: app, _xlwings_like_importer([]))
    assert "\n" not in str(e.value)
    assert app.events == ["open", "quit"]


def test_excel_is_killed_when_it_will_not_quit(tmp_path):
    app = App(trusted=False, quit_fails=True)
    with pytest.raises(InstallError):
        import_udfs_into_addin(tmp_path / "xl_addin.xlam", lambda: app, _xlwings_like_importer([]))
    assert app.events[-2:] == ["quit", "kill"]


def test_the_functions_must_land_in_our_add_in_not_the_active_workbook(tmp_path):
    app = App()

    def fallback_elsewhere(modules, xl_workbook):  # xlwings' fallback imports into ActiveWorkbook
        pass

    with pytest.raises(InstallError, match="did not land"):
        import_udfs_into_addin(tmp_path / "xl_addin.xlam", lambda: app, fallback_elsewhere)
    assert "save" not in app.events and app.events[-1] == "quit"


def test_success_saves_the_add_in_and_quits(tmp_path):
    app, calls = App(), []
    import_udfs_into_addin(tmp_path / "xl_addin.xlam", lambda: app, _xlwings_like_importer(calls))
    assert calls == ["xl_addin.udfs"]
    assert app.events == ["open", "save", "close", "quit"]


def test_an_excel_that_cannot_start_is_one_line(tmp_path):
    def no_excel():
        raise ComError(-2147221005, "Invalid class string", None, None)

    with pytest.raises(InstallError, match="could not start Excel") as e:
        import_udfs_into_addin(tmp_path / "xl_addin.xlam", no_excel, _xlwings_like_importer([]))
    assert "\n" not in str(e.value)


def test_excel_failing_to_save_the_add_in_is_one_line_and_excel_quits(tmp_path):
    """Book.save() is a COM call like any other: a disk-full or locked-file error must not escape as a traceback."""
    app, calls = App(), []

    def save_fails():
        app.events.append("save")
        raise ComError(-2147352567, "Exception occurred.", (0, "Microsoft Excel", "Document not saved.", None, 0,
                                                             -2146827284), None)

    importer = _xlwings_like_importer(calls)

    def import_then_break_save(modules, xl_workbook):
        importer(modules, xl_workbook)
        app.book.save = save_fails

    with pytest.raises(InstallError, match="could not save") as e:
        import_udfs_into_addin(tmp_path / "xl_addin.xlam", lambda: app, import_then_break_save)
    assert "\n" not in str(e.value) and "Document not saved" in str(e.value)
    assert app.events == ["open", "save", "close", "quit"]
