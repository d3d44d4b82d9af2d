"""Issue 13: the ribbon's **Freeze values** button (Windows).

Excel cannot run here, so each part is checked against what Excel would do with it:

* The button's VBA goes into the add-in through the VBA-project object model, in the Excel
  session that imports the formulas. The stand-in below models ``VBComponents`` and
  ``CodeModule`` as the VBE does (``Add`` names a new module ``Module<n>`` and, with "Require
  Variable Declaration", writes ``Option Explicit`` into it; ``AddFromString`` inserts before the
  first procedure; ``Lines`` joins with CRLF; a taken name is refused).
* The ribbon's ``onAction`` must name a ``Sub X(control As IRibbonControl)`` of a module the
  add-in really holds: those xlwings shipped (read with ``olevba``) plus the one the stand-in
  received. ``RunPython`` must be a Public Function of a standard module of the same project.
* The Python the button runs is the command read from that VBA, run as xlwings' VBA runs it
  (a fresh ``python -B -c "...; <command>" --wb=<book> --from_xl=1``), against a workbook
  stand-in whose ``SaveCopyAs`` writes a real workbook, as Excel does, with the formulas and
  the values it holds in memory (unsaved edits included).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest
from lxml import etree

from conftest import ROOT
from test_freeze import _excel_saved_book
from test_process_model import addin_vba, vba_string
from xl_addin.addin_build import build_addin
from xl_addin.install import install
from xl_addin.udf_import import import_udfs_into_addin

TESTS = Path(__file__).resolve().parent
WIN_PY = r"C:\Users\me\AppData\Local\xl_addin\venv\Scripts\pythonw.exe"
CUSTOMUI_NS = "http://schemas.microsoft.com/office/2006/01/customui"
UI_REL = "/relationships/ui/extensibility"


# --- the VBA project as the VBE exposes it through COM -------------------------------------------
class ComError(Exception):
    """pywintypes.com_error's shape: (hresult, text, excepinfo, argerror)."""


def _vbe_error(description):
    return ComError(-2147352567, "Exception occurred.", (0, "VBAProject", description, None, 0, -2146827284), None)


class CodeModule:
    def __init__(self, component):
        self.component, self.lines = component, []
        self.fail_add = False

    @property
    def CountOfLines(self):  # noqa: N802
        return len(self.lines)

    def Lines(self, start, count):  # noqa: N802
        return "\r\n".join(self.lines[start - 1:start - 1 + count])

    def DeleteLines(self, start, count=1):  # noqa: N802
        del self.lines[start - 1:start - 1 + count]

    def AddFromString(self, text):  # noqa: N802
        if self.component.project.fail_add_from_string:
            raise _vbe_error("Out of memory")
        new = text.replace("\r\n", "\n").split("\n")
        if new and new[-1] == "":
            new.pop()
        first_proc = next((i for i, line in enumerate(self.lines)
                           if re.match(r"(Public |Private )?(Sub|Function) ", line)), len(self.lines))
        self.lines[first_proc:first_proc] = new


class Component:
    def __init__(self, project, name, kind, lines=()):
        self.project, self._name, self.Type = project, name, kind
        self.CodeModule = CodeModule(self)
        self.CodeModule.lines = list(lines)

    @property
    def Name(self):  # noqa: N802
        return self._name

    @Name.setter
    def Name(self, value):  # noqa: N802
        if any(c is not self and c.Name.lower() == value.lower() for c in self.project.components):
            raise _vbe_error("Name conflicts with existing module, project, or object library")
        if not re.fullmatch(r"[A-Za-z]\w{0,30}", value):
            raise _vbe_error("Invalid procedure name")
        self._name = value


class Components:
    def __init__(self, project):
        self.project = project

    @property
    def Count(self):  # noqa: N802
        return len(self.project.components)

    def __call__(self, name):
        for c in self.project.components:
            if c.Name.lower() == str(name).lower():
                return c
        raise ComError(-2147352565, "Invalid index.", None, None)

    def Add(self, kind):  # noqa: N802
        n = 1
        while any(c.Name == f"Module{n}" for c in self.project.components):
            n += 1
        lines = ["Option Explicit"] if self.project.require_declaration and kind == 1 else []
        component = Component(self.project, f"Module{n}", kind, lines)
        self.project.components.append(component)
        return component

    def Remove(self, component):  # noqa: N802
        self.project.components.remove(component)


class Project:
    def __init__(self, require_declaration=True, fail_add_from_string=False):
        self.require_declaration, self.fail_add_from_string = require_declaration, fail_add_from_string
        self.components: list[Component] = []
        self.VBComponents = Components(self)


class WorkbookApi:
    def __init__(self, project):
        self.VBProject = project


class Book:
    def __init__(self, app, project):
        self.app, self.api = app, WorkbookApi(project)

    def save(self):
        self.app.events.append("save")
        self.app.saved_modules = {c.Name: c.CodeModule.Lines(1, c.CodeModule.CountOfLines)
                                  for c in self.api.VBProject.components}

    def close(self):
        self.app.events.append("close")


class App:
    def __init__(self, **project):
        self.events, self.saved_modules, self.project = [], None, Project(**project)
        self.books = self

    def open(self, path):
        self.events.append("open")
        return Book(self, self.project)

    def quit(self):
        self.events.append("quit")


def xlwings_like_importer(modules, xl_workbook):
    """xlwings' import_udfs: VBComponents.Import of a generated xlwings_udfs.bas."""
    components = xl_workbook.VBProject.VBComponents
    components.project.components.append(Component(components.project, "xlwings_udfs", 1,
                                                   ["Function LX_MMAH(codes, fields)", "End Function"]))


# --- what the add-in's VBA project holds, and what Excel would call -------------------------------
def shipped_modules(addin) -> dict[str, tuple[str, str]]:
    """Module name -> (kind, code) of the VBA xlwings shipped in the add-in (olevba)."""
    from oletools.olevba import VBA_Parser

    parser = VBA_Parser(str(addin))
    try:
        return {Path(name).stem: (Path(name).suffix, code) for _, _, name, code in parser.extract_macros()}
    finally:
        parser.close()


def ribbon(addin) -> etree._Element:
    with zipfile.ZipFile(addin) as z:
        rels = etree.fromstring(z.read("_rels/.rels"))
        part = next(r.get("Target") for r in rels if r.get("Type", "").endswith(UI_REL))
        return etree.fromstring(z.read(part.lstrip("/")))


def buttons(addin) -> dict[str, str]:
    return {b.get("label"): b.get("onAction") for b in ribbon(addin).iter(f"{{{CUSTOMUI_NS}}}button")}


def ribbon_callback(modules: dict[str, tuple[str, str]], on_action: str) -> str:
    """The body of the Sub a ribbon click runs, as Excel finds it: Module.Sub with one IRibbonControl."""
    module, sub = on_action.split(".")
    kind, code = modules[module]  # KeyError: "Cannot run the macro", the button would error
    assert kind == ".bas", f"{module} is not a standard module"
    m = re.search(rf"^(?:Public )?Sub {sub}\(control As IRibbonControl\)\s*\n(.*?)^End Sub", code, re.S | re.M)
    assert m, f"{module} has no Sub {sub}(control As IRibbonControl)"
    return m.group(1)


def freeze_install(tmp_path, app, trust=True):
    from fake_winreg import FakeWinreg

    reg = FakeWinreg()
    reg.put(r"Software\Microsoft\Office\16.0\Excel\Security", "VBAWarnings", 2)
    reg.put(r"Software\Microsoft\Office\16.0\Excel\Security", "AccessVBOM", 1 if trust else 0)
    return install(tmp_path / "home", "windows", WIN_PY, registry=reg, excel_running=lambda: False,
                   ask=lambda q: False,
                   import_udfs=lambda addin: import_udfs_into_addin(addin, lambda: app, xlwings_like_importer))


def test_the_install_adds_the_module_and_the_button_that_calls_it(tmp_path):
    app = App(require_declaration=True)
    report = freeze_install(tmp_path, app)
    assert report.formulas and report.freeze_button
    assert app.events == ["open", "save", "close", "quit"]
    added = {c.Name: c for c in app.project.components}
    assert set(added) == {"xlwings_udfs", "LixingerFreeze"} and added["LixingerFreeze"].Type == 1
    code = app.saved_modules["LixingerFreeze"]
    assert not re.search(r"^Attribute ", code, re.M)  # AddFromString would compile it as a statement
    assert len(re.findall(r"^Option Explicit", code, re.M)) == 1  # VBE's own line replaced, not doubled

    shipped = shipped_modules(report.addin)
    assert "LixingerFreeze" not in shipped  # a name no module xlwings shipped uses
    modules = {**shipped, **{name: (".bas", text.replace("\r\n", "\n")) for name, text in app.saved_modules.items()}}
    on_action = buttons(report.addin)
    assert set(on_action) == {"Refresh", "Freeze values"}
    for label, action in on_action.items():
        ribbon_callback(modules, action)  # every button lands on a Sub the project has
    body = ribbon_callback(modules, on_action["Freeze values"])
    call = re.search(r"^\s*RunPython (.+)$", body, re.M).group(1)
    # RunPython: a Public Function of a standard module of the same project, one String argument
    assert any(kind == ".bas" and re.search(r"^Public Function RunPython\(PythonCommand As String\)", code, re.M)
               for kind, code in shipped.values())
    command = vba_string(call, {})
    assert command == "import xl_addin.freeze_button as f; f.main()"
    assert vba_string(re.search(r"RunPython (.+)", ribbon_callback(modules, on_action["Refresh"])).group(1),
                      {"mymodule": "xl_addin"}) == "import xl_addin;xl_addin.main()"  # the Refresh is unchanged
    with zipfile.ZipFile(report.addin) as z, zipfile.ZipFile(build_addin(tmp_path / "plain.xlam", "windows",
                                                                          WIN_PY)) as plain:
        for name in plain.namelist():  # only the ribbon differs from the add-in built without the button
            if not name.startswith("customUI/"):
                assert z.read(name) == plain.read(name), name


def test_without_option_explicit_setting_the_module_is_the_same(tmp_path):
    app = App(require_declaration=False)
    freeze_install(tmp_path, app)
    assert len(re.findall(r"^Option Explicit", app.saved_modules["LixingerFreeze"], re.M)) == 1


def test_a_module_that_cannot_be_added_leaves_no_button_and_keeps_the_formulas(tmp_path):
    app = App(fail_add_from_string=True)
    report = freeze_install(tmp_path, app)
    assert report.formulas and not report.freeze_button
    assert [c.Name for c in app.project.components] == ["xlwings_udfs"]  # the half-made module taken out
    assert "Freeze values" not in buttons(report.addin) and "Refresh" in buttons(report.addin)
    notes = [n for n in report.notes if "Freeze values" in n]
    assert len(notes) == 1 and "VBA module: Out of memory)" in notes[0] and "lx-addin freeze" in notes[0] and "\n" not in notes[0]


def test_declined_trust_means_no_import_and_no_button(tmp_path):
    app = App()
    report = freeze_install(tmp_path, app, trust=False)
    assert not report.formulas and not report.freeze_button and app.events == []
    assert set(buttons(report.addin)) == {"Refresh"}
    assert any("lx-addin freeze" in n for n in report.notes)


def test_the_plain_build_and_the_mac_build_have_no_freeze_button(tmp_path):
    assert set(buttons(build_addin(tmp_path / "w.xlam", "windows", WIN_PY))) == {"Refresh"}
    mac = build_addin(tmp_path / "m.xlam", "macos", "/Users/me/.xl_addin/venv/bin/python")
    assert set(buttons(mac)) == {"Refresh"}
    report = install(tmp_path / "home", "macos", "/Users/me/.xl_addin/venv/bin/python", excel_running=lambda: False)
    assert set(buttons(report.addin)) == {"Refresh"}


def test_a_module_left_from_before_is_replaced_not_doubled(tmp_path):
    app = App()
    old = Component(app.project, "LixingerFreeze", 1, ["Sub FreezeValues(control As IRibbonControl)", "End Sub"])
    app.project.components.append(old)
    assert freeze_install(tmp_path, app).freeze_button
    assert [c.Name for c in app.project.components].count("LixingerFreeze") == 1
    assert "RunPython" in app.saved_modules["LixingerFreeze"]


# --- the Python the button runs --------------------------------------------------------------------
class SavingApi:
    """Excel's Workbook as freeze_button uses it: SaveCopyAs writes the workbook as it is in memory."""

    def __init__(self, memory_maker, calls, fail=None):
        self.memory_maker, self.calls, self.fail = memory_maker, calls, fail

    def SaveCopyAs(self, filename):  # noqa: N802
        self.calls.append(("SaveCopyAs", filename))
        if self.fail:
            raise ComError(-2147352567, "Exception occurred.", (0, "Microsoft Excel", self.fail, None, 0, -2146827284),
                           None)
        self.memory_maker(Path(filename))


class XwApp:
    def __init__(self):
        self.alerts, self.status = [], []

    def alert(self, prompt, title=None, buttons="ok", mode=None, callback=None):
        self.alerts.append({"title": title, "prompt": prompt, "mode": mode})

    @property
    def status_bar(self):
        return self.status[-1] if self.status else False

    @status_bar.setter
    def status_bar(self, value):
        self.status.append(value)


class XwBook:
    def __init__(self, fullname, memory_maker=_excel_saved_book, fail=None):
        self.fullname, self.name = str(fullname), Path(str(fullname)).name
        self.calls = []
        self.api = SavingApi(memory_maker, self.calls, fail)
        self.app = XwApp()


def on_disk(path: Path) -> Path:
    """The original as last saved: older values than Excel holds in memory (B1 was 1, now 100)."""
    _excel_saved_book(path)
    with zipfile.ZipFile(path) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    parts["xl/worksheets/sheet1.xml"] = parts["xl/worksheets/sheet1.xml"].replace(b"<v>100</v>", b"<v>1</v>")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in parts.items():
            z.writestr(n, data)
    return path


def frozen_values(path):
    with zipfile.ZipFile(path) as z:
        assert not any(b"LX_MMAH" in z.read(n) for n in z.namelist() if n.startswith("xl/worksheets/"))
    ws = openpyxl.load_workbook(path)["Watch"]
    return [ws[f"B{i}"].value for i in (1, 2, 3)], ws["C2"].value, ws["D1"].value


def test_freeze_writes_a_copy_with_the_values_in_memory_and_leaves_the_original(tmp_path):
    from xl_addin.freeze_button import main

    original = on_disk(tmp_path / "watch.xlsx")
    before = original.read_bytes()
    book = XwBook(original)
    main(book)
    assert original.read_bytes() == before
    frozen = tmp_path / "watch-frozen.xlsx"
    assert frozen_values(frozen) == ([100, 200, 300], 1.5, "=SUM(B1:B3)")  # memory's 100, not the file's 1
    [alert] = book.app.alerts
    assert alert["mode"] == "info" and str(frozen) in alert["prompt"] and "\n" not in alert["prompt"]
    assert book.app.status[-1] is False  # the status bar handed back to Excel
    assert sorted(p.name for p in tmp_path.iterdir()) == ["watch-frozen.xlsx", "watch.xlsx"]  # no temp left here
    saved_to = Path(book.calls[0][1])
    assert saved_to.name == "watch.xlsx" and saved_to.parent != tmp_path and not saved_to.parent.exists()


def test_a_second_click_never_overwrites_the_first_copy(tmp_path):
    from xl_addin.freeze_button import main

    original = on_disk(tmp_path / "watch.xlsx")
    main(XwBook(original))
    first = (tmp_path / "watch-frozen.xlsx").read_bytes()
    book = XwBook(original)
    main(book)
    assert (tmp_path / "watch-frozen.xlsx").read_bytes() == first
    assert frozen_values(tmp_path / "watch-frozen (2).xlsx")[0] == [100, 200, 300]
    assert "watch-frozen (2).xlsx" in book.app.alerts[0]["prompt"]


def test_a_macro_workbook_gives_a_macro_workbook_copy(tmp_path):
    """SaveCopyAs writes the workbook's own format: an .xlsm package stays one, under an .xlsm name."""
    from xl_addin.freeze_button import main

    def xlsm(path):
        _excel_saved_book(path)
        with zipfile.ZipFile(path) as z:
            parts = {n: z.read(n) for n in z.namelist()}
        parts["[Content_Types].xml"] = parts["[Content_Types].xml"].replace(
            b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
            b"application/vnd.ms-excel.sheet.macroEnabled.main+xml")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for n, data in parts.items():
                z.writestr(n, data)

    original = tmp_path / "model.xlsm"
    xlsm(original)
    book = XwBook(original, memory_maker=xlsm)
    main(book)
    frozen = tmp_path / "model-frozen.xlsm"
    with zipfile.ZipFile(frozen) as z:
        assert b"application/vnd.ms-excel.sheet.macroEnabled.main+xml" in z.read("[Content_Types].xml")
    assert frozen_values(frozen)[0] == [100, 200, 300] and str(frozen) in book.app.alerts[0]["prompt"]


@pytest.mark.parametrize("fullname, says", [
    ("Book1", "save this workbook first"),
    ("{tmp}/old.xls", "this one is .xls"),
    ("{tmp}/big.xlsb", "this one is .xlsb"),
    ("https://d.docs.live.net/abc123/watch.xlsx", "OneDrive"),
])
def test_what_cannot_be_frozen_is_one_line_and_writes_nothing(tmp_path, fullname, says):
    from xl_addin.freeze_button import main

    book = XwBook(fullname.format(tmp=tmp_path))
    before = sorted(tmp_path.iterdir())
    main(book)
    assert sorted(tmp_path.iterdir()) == before and book.calls == []
    [alert] = book.app.alerts
    assert says in alert["prompt"] and "\n" not in alert["prompt"] and alert["mode"] == "critical"


def test_excel_failing_to_save_the_copy_is_one_line(tmp_path):
    from xl_addin.freeze_button import main

    original = on_disk(tmp_path / "watch.xlsx")
    book = XwBook(original, fail="The disk is full.")
    main(book)
    [alert] = book.app.alerts
    assert "The disk is full." in alert["prompt"] and "\n" not in alert["prompt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["watch.xlsx"]


def test_a_copy_that_is_not_a_workbook_is_one_line(tmp_path):
    from xl_addin.freeze_button import main

    original = on_disk(tmp_path / "watch.xlsx")
    book = XwBook(original, memory_maker=lambda p: p.write_bytes(b"not a zip"))
    main(book)
    assert "not an Excel workbook" in book.app.alerts[0]["prompt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["watch.xlsx"]


def test_a_copy_the_folder_cannot_take_is_one_line(tmp_path):
    """A real OS refusal: the original's name fits (255 bytes), its "-frozen" copy's does not."""
    from xl_addin.freeze_button import main

    original = on_disk(tmp_path / ("w" * 250 + ".xlsx"))
    book = XwBook(original)
    main(book)
    prompt = book.app.alerts[0]["prompt"]
    assert prompt.startswith("Nothing frozen: cannot write") and "-frozen.xlsx" in prompt and "\n" not in prompt
    assert [p.name for p in tmp_path.iterdir()] == [original.name]


def attach_saving_book() -> None:
    """In a process RunPython started: xw.Book.caller() is a workbook stand-in over $FREEZE_BOOK;
    what Excel was asked to show goes to $FREEZE_REPORT at exit."""
    import atexit

    import xlwings as xw

    book = XwBook(os.environ["FREEZE_BOOK"])
    xw.Book.caller = staticmethod(lambda: book)
    atexit.register(lambda: Path(os.environ["FREEZE_REPORT"]).write_text(
        json.dumps({"alerts": book.app.alerts, "status": book.app.status, "calls": book.calls}), "utf-8"))


def test_the_button_command_from_the_vba_runs_as_xlwings_runs_it(tmp_path):
    """The command read from the module the install added, in a fresh process, with xlwings'
    --wb/--from_xl arguments: exit 0 (anything else is xlwings' error box), a frozen copy."""
    app = App()
    freeze_install(tmp_path, app)
    call = re.search(r"^\s*RunPython (.+)$", app.saved_modules["LixingerFreeze"], re.M).group(1)
    command = vba_string(call, {})
    folder = tmp_path / "books"
    folder.mkdir()
    original = on_disk(folder / "watch.xlsx")
    before = original.read_bytes()
    report = tmp_path / "report.json"
    prelude = "import test_freeze_button as t; t.attach_saving_book()"
    env = dict(os.environ, FREEZE_BOOK=str(original), FREEZE_REPORT=str(report),
               PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS)]))
    r = subprocess.run([sys.executable, "-B", "-c", f"{prelude}; {command}", f"--wb={original.name}", "--from_xl=1"],
                       env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0 and not r.stderr, r.stderr
    saw = json.loads(report.read_text("utf-8"))
    assert [c[0] for c in saw["calls"]] == ["SaveCopyAs"] and saw["status"][-1] is False
    assert len(saw["alerts"]) == 1 and "watch-frozen.xlsx" in saw["alerts"][0]["prompt"]
    assert original.read_bytes() == before
    assert frozen_values(folder / "watch-frozen.xlsx")[0] == [100, 200, 300]


class FailingName(XwBook):
    """Book.fullname raising, as xlwings' does when Excel is gone or a OneDrive address has no local folder."""

    def __init__(self, path, error, raw_fullname):
        super().__init__(path)
        self.error, self.api.FullName = error, raw_fullname

    @property
    def fullname(self):
        raise self.error

    @fullname.setter
    def fullname(self, value):
        pass


def test_an_unexpected_failure_is_still_a_message_not_a_traceback(tmp_path):
    """Whatever goes wrong inside, main() returns: xlwings' VBA shows stderr of a failed process."""
    from xl_addin import freeze_button

    book = FailingName(tmp_path / "x.xlsx", ComError(-2147023174, "The RPC server is unavailable.", None, None),
                       str(tmp_path / "x.xlsx"))
    freeze_button.main(book)
    [alert] = book.app.alerts
    assert "unexpected error" in alert["prompt"] and "RPC server is unavailable" in alert["prompt"]
    assert "\n" not in alert["prompt"] and book.calls == []


def test_a_onedrive_book_xlwings_cannot_map_is_one_line(tmp_path):
    from xlwings import XlwingsError

    from xl_addin import freeze_button

    book = FailingName(tmp_path / "x.xlsx", XlwingsError("Couldn't find your local OneDrive folder."),
                       "https://contoso.sharepoint.com/sites/desk/Shared Documents/watch.xlsx")
    freeze_button.main(book)
    assert "OneDrive or SharePoint" in book.app.alerts[0]["prompt"] and book.calls == []
