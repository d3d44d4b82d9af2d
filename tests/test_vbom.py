"""Issue 9, point 1: turning on AccessVBOM keeps every other Trust Center setting, and the uninstall puts it back.

The registry is an in-memory stand-in with winreg's API (tests/fake_winreg.py). The user's
Security key holds what a real one does: macro security level, Protected View, a Trusted Location.
"""

import re
import zipfile

import pytest

from fake_winreg import REG_DWORD, REG_SZ, FakeWinreg
from xl_addin import vbom
from xl_addin.exceptions import InstallError
from xl_addin.install import install, uninstall
from xl_addin.install_paths import record_path
from xl_addin.xlsx import XlsxBook

SEC = r"Software\Microsoft\Office\16.0\Excel\Security"
WIN_PY = r"C:\Users\me\AppData\Local\xl_addin\venv\Scripts\pythonw.exe"


@pytest.fixture
def reg():
    r = FakeWinreg()
    r.put(SEC, "VBAWarnings", 2)  # "Disable all macros with notification"
    r.put(SEC, "AccessVBOM", 0)
    r.put(SEC + r"\ProtectedView", "DisableInternetFilesInPV", 0)
    r.put(SEC + r"\Trusted Locations\Location0", "Path", r"C:\Models\\", REG_SZ)
    r.put(r"Software\Microsoft\Office\16.0\Excel\Options", "Font", "Calibri,11", REG_SZ)
    r.put(r"Software\Microsoft\Office\16.0\Word", "x", 1)  # Office, but not Excel
    r.put(r"Software\Microsoft\Office\Common", "x", 1)  # not a version
    return r


def _others(r):
    node = r.node(SEC)
    values = {k: v for k, v in node.values.items() if k != "accessvbom"}
    return node, values, node.snapshot()[1]


def test_versions_are_those_where_excel_kept_settings(reg):
    reg.put(r"Software\Microsoft\Office\15.0\Word", "x", 1)
    assert vbom.excel_versions(reg) == ["16.0"]


def test_turn_on_sets_one_value_and_keeps_the_key_and_everything_under_it(reg):
    node, values, subkeys = _others(reg)
    vbom.turn_on(reg, ["16.0"])
    assert reg.node(SEC) is node  # the same key: not deleted and recreated
    assert reg.node(SEC).values["accessvbom"] == ("AccessVBOM", 1, REG_DWORD)
    after = {k: v for k, v in reg.node(SEC).values.items() if k != "accessvbom"}
    assert after == values and reg.node(SEC).snapshot()[1] == subkeys
    assert not [c for c in reg.calls if c[0] in ("DeleteKey", "DeleteValue")]


def test_turn_on_creates_a_missing_security_key_without_touching_its_parent():
    r = FakeWinreg()
    excel = r.put(r"Software\Microsoft\Office\16.0\Excel\Options", "Font", "Calibri,11", REG_SZ)
    vbom.turn_on(r, ["16.0"])
    assert r.node(SEC).values["accessvbom"][1] == 1
    assert r.node(r"Software\Microsoft\Office\16.0\Excel\Options") is excel and excel.values


def test_restore_puts_back_the_old_value_or_removes_ours_and_respects_a_later_change(reg):
    vbom.turn_on(reg, ["16.0"])
    assert vbom.restore(reg, {"16.0": 0}) == ["16.0"]
    assert reg.node(SEC).values["accessvbom"][1] == 0
    reg.node(SEC).values.pop("accessvbom")
    vbom.turn_on(reg, ["16.0"])
    vbom.restore(reg, {"16.0": None})
    assert "accessvbom" not in reg.node(SEC).values and reg.node(SEC).values["vbawarnings"][1] == 2
    reg.put(SEC, "AccessVBOM", 0)  # the user turned it off again themselves
    assert vbom.restore(reg, {"16.0": None}) == [] and reg.node(SEC).values["accessvbom"][1] == 0


def _importer(calls):
    def import_udfs(addin):
        with zipfile.ZipFile(addin) as z:  # the staged add-in, complete
            assert "xl/vbaProject.bin" in z.namelist()
        calls.append(addin)
    return import_udfs


def test_install_asks_first_and_changes_nothing_when_the_answer_is_no(reg, tmp_path):
    before, asked, calls = reg.roots[reg.HKEY_CURRENT_USER].snapshot(), [], []
    report = install(tmp_path, "windows", WIN_PY, registry=reg, excel_running=lambda: False,
                     ask=lambda q: asked.append(q) or False, import_udfs=_importer(calls))
    assert asked and "VBA project" in asked[0]
    assert reg.roots[reg.HKEY_CURRENT_USER].snapshot() == before and not calls
    assert not report.formulas and report.addin.exists()  # the Refresh button still installs
    assert any("skipped" in n for n in report.notes)


def test_install_after_yes_imports_then_uninstall_restores_exactly(reg, tmp_path):
    node, values, subkeys = _others(reg)
    before = reg.roots[reg.HKEY_CURRENT_USER].snapshot()
    calls = []
    report = install(tmp_path, "windows", WIN_PY, registry=reg, excel_running=lambda: False,
                     ask=lambda q: True, import_udfs=_importer(calls))
    assert report.formulas and len(calls) == 1
    assert reg.node(SEC) is node and reg.node(SEC).values["accessvbom"][1] == 1
    settings = {r[0]: r[1] for r in XlsxBook(report.addin).read("myaddin.conf", 1, 1, 9, 2)}
    assert settings["Interpreter_Win"] == WIN_PY
    # a reinstall finds it on and must not record our 1 as "what was there before"
    install(tmp_path, "windows", WIN_PY, registry=reg, excel_running=lambda: False, ask=lambda q: False,
            import_udfs=_importer(calls))
    assert len(calls) == 2
    uninstall(tmp_path, "windows", registry=reg, excel_running=lambda: False)
    assert reg.roots[reg.HKEY_CURRENT_USER].snapshot() == before
    assert not report.addin.exists() and not record_path(tmp_path, "windows").exists()


def test_a_failed_import_puts_the_value_back_and_installs_nothing(reg, tmp_path):
    before = reg.roots[reg.HKEY_CURRENT_USER].snapshot()

    def refused(addin):
        raise InstallError("Excel refused access to the add-in's VBA project")

    with pytest.raises(InstallError):
        install(tmp_path, "windows", WIN_PY, registry=reg, excel_running=lambda: False, trust_vba=True,
                import_udfs=refused)
    assert reg.roots[reg.HKEY_CURRENT_USER].snapshot() == before
    assert [p for p in tmp_path.rglob("*") if p.is_file() or p.name == "xl_addin"] == []  # no add-in, no record


def test_group_policy_is_read_never_written(reg, tmp_path):
    reg.put(r"Software\Policies\Microsoft\Office\16.0\Excel\Security", "AccessVBOM", 0)
    before = reg.roots[reg.HKEY_CURRENT_USER].snapshot()
    report = install(tmp_path, "windows", WIN_PY, registry=reg, excel_running=lambda: False, trust_vba=True,
                     import_udfs=_importer([]))
    assert reg.roots[reg.HKEY_CURRENT_USER].snapshot() == before
    assert any("Group Policy" in n for n in report.notes) and report.addin.exists()


@pytest.mark.parametrize("failure", [RuntimeError("(-2147352567, 'Exception occurred.', None, None)"),
                                     KeyboardInterrupt()], ids=["com_error", "ctrl_c"])
def test_any_failure_of_the_import_puts_the_value_back(reg, tmp_path, failure):
    """A COM error that is not ours (Excel failing to save the add-in) or Ctrl+C during the slow import:
    the value we turned on must go back, or the record that would restore it is gone with the failure."""
    before = reg.roots[reg.HKEY_CURRENT_USER].snapshot()

    def fails(addin):
        raise failure

    with pytest.raises(type(failure)):
        install(tmp_path, "windows", WIN_PY, registry=reg, excel_running=lambda: False, trust_vba=True,
                import_udfs=fails)
    assert reg.roots[reg.HKEY_CURRENT_USER].snapshot() == before
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_an_add_in_folder_we_cannot_write_puts_the_value_back(reg, tmp_path):
    """XLSTART unusable (here: a file where the folder should be, as a locked-down profile can have):
    the error is not ours, the value we turned on goes back all the same, and the message is one line."""
    from xl_addin.install_paths import addin_dir

    xlstart = addin_dir(tmp_path, "windows")
    xlstart.parent.mkdir(parents=True)
    xlstart.write_text("not a folder")
    before = reg.roots[reg.HKEY_CURRENT_USER].snapshot()
    with pytest.raises(InstallError) as e:
        install(tmp_path, "windows", WIN_PY, registry=reg, excel_running=lambda: False, trust_vba=True,
                import_udfs=_importer([]))
    assert "\n" not in str(e.value) and str(xlstart) in str(e.value)
    assert reg.roots[reg.HKEY_CURRENT_USER].snapshot() == before
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == [xlstart]


def test_a_user_folder_the_ansi_code_page_cannot_spell_skips_the_formulas_and_says_why(reg, tmp_path):
    """The formulas' VBA hands the interpreter's path to Windows as ANSI text: LoadLibrary is declared with
    Alias "LoadLibraryA" and XLPyDLLActivateAuto takes `ByVal Config As String` (VBA converts such strings to
    the ANSI code page). A user folder named 陳大文 on a PC whose code page is 1252 turns into ???: the DLL
    never loads and every =LX_MMAH cell fails. The Refresh button (WScript.Run, Unicode) still works."""
    from test_addin_config import vba_modules

    from xl_addin.addin_build import xlwings_ribbon_addin

    code = "\n".join(vba_modules(xlwings_ribbon_addin()).values())
    assert 'Alias "LoadLibraryA" (ByVal lpLibFileName As String)' in code
    assert re.search(r"XLPyDLLActivateAuto Lib \"[^\"]+\" \(ByRef Result As Variant, Optional ByVal Config As String",
                     code)
    chinese = r"C:\Users\陳大文\AppData\Local\xl_addin\venv\Scripts\pythonw.exe"
    before, calls = reg.roots[reg.HKEY_CURRENT_USER].snapshot(), []
    report = install(tmp_path, "windows", chinese, registry=reg, excel_running=lambda: False, trust_vba=True,
                     import_udfs=_importer(calls), ansi_codepage="cp1252")
    assert not report.formulas and not calls and report.addin.exists()
    assert reg.roots[reg.HKEY_CURRENT_USER].snapshot() == before  # AccessVBOM not turned on for nothing
    assert any("陳大文" in n and "Refresh button works" in n for n in report.notes)
    report = install(tmp_path, "windows", chinese, registry=reg, excel_running=lambda: False, trust_vba=True,
                     import_udfs=_importer(calls), ansi_codepage="cp950")  # Traditional Chinese code page
    assert report.formulas and len(calls) == 1


def test_a_failing_cleanup_of_0_1_s_settings_does_not_lose_the_record_of_what_we_turned_on(reg, tmp_path):
    """The old xlwings.conf is tidied after the add-in is in place. If that cannot be read (here: a folder
    where the file should be), the install has still happened: it must keep the record of AccessVBOM's old
    value, or the uninstall can never put it back."""
    before = reg.roots[reg.HKEY_CURRENT_USER].snapshot()
    (tmp_path / ".xlwings" / "xlwings.conf").mkdir(parents=True)
    report = install(tmp_path, "windows", WIN_PY, registry=reg, excel_running=lambda: False, trust_vba=True,
                     import_udfs=_importer([]))
    assert report.formulas and any("xlwings.conf" in n for n in report.notes)
    uninstall(tmp_path, "windows", registry=reg, excel_running=lambda: False)
    assert reg.roots[reg.HKEY_CURRENT_USER].snapshot() == before
