"""`lx-addin install` on Linux into a temporary home, and the installers' scripts."""

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from xl_addin.install import ADDIN_NAME, MAC_STARTUP, install, uninstall, xlwings_ribbon_addin
from xl_addin.xlsx import XlsxBook

INSTALL = ROOT / "install"


def xlwings_conf(path):
    """The conf as xlwings itself reads it (xlwings.utils.read_user_config)."""
    import xlwings
    import xlwings.utils

    saved = xlwings.USER_CONFIG_FILE
    xlwings.USER_CONFIG_FILE = str(path)
    try:
        return xlwings.utils.read_user_config()
    finally:
        xlwings.USER_CONFIG_FILE = saved


@pytest.fixture
def installed(tmp_path):
    home = tmp_path / "home"
    conf = home / ".xlwings" / "xlwings.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text('"PYTHONPATH","C:\\Users\\me\\models"\n"INTERPRETER_MAC","/old/python"\n', encoding="utf-8")
    r = run_cli("install", "--home", str(home), "--no-token")
    assert r.returncode == 0, r.stderr
    return home, r


def test_conf_reads_back_with_xlwings_parsing_and_keeps_other_settings(installed):
    home, _ = installed
    conf = xlwings_conf(home / ".xlwings" / "xlwings.conf")
    assert conf["udf modules"] == "xl_addin.udfs"
    assert conf["pythonpath"] == "C:\\Users\\me\\models"  # merged, not overwritten
    interpreter = conf["interpreter_mac"]
    assert interpreter != "/old/python" and Path(interpreter).exists()
    r = subprocess.run([interpreter, "-c", "import xl_addin.udfs, xl_addin; print(callable(xl_addin.main))"],
                       capture_output=True, text=True, cwd="/")
    assert r.stdout.strip() == "True", r.stderr


def test_addin_is_a_valid_workbook_with_its_vba_and_our_ribbon(installed):
    home, r = installed
    addin = home / ".xl_addin" / ADDIN_NAME
    assert str(addin) in r.stdout and "Excel does not run on Linux" in r.stdout
    with zipfile.ZipFile(addin) as z, zipfile.ZipFile(xlwings_ribbon_addin()) as orig:
        assert z.testzip() is None
        assert z.read("xl/vbaProject.bin") == orig.read("xl/vbaProject.bin")  # the VBA project, intact
        ribbon = z.read("customUI/customUI.xml").decode()
        types = z.read("[Content_Types].xml").decode()
    assert 'label="Lixinger"' in ribbon and 'onAction="RibbonMyAddin.RunMain"' in ribbon
    assert "addin.macroEnabled" in types
    book = XlsxBook(addin)
    assert "myaddin.conf" in book._sheet_parts  # enabled: the add-in's VBA reads its settings from it
    settings = {row[0]: row[1] for row in book.read("myaddin.conf", 1, 1, 9, 2)}
    conf = xlwings_conf(home / ".xlwings" / "xlwings.conf")
    assert settings["Interpreter_Mac"] == settings["Interpreter_Win"] == conf["interpreter_mac"]
    assert settings["UDF Modules"] == "xl_addin.udfs"


def test_ribbon_runpython_target_imports_and_has_main(installed):
    from oletools.olevba import VBA_Parser

    home, _ = installed
    addin = home / ".xl_addin" / ADDIN_NAME
    vba = VBA_Parser(str(addin))
    modules = {name: code for _, _, name, code in vba.extract_macros()}
    vba.close()
    run_main = modules["RibbonMyAddin.bas"]
    assert "Sub RunMain(control As IRibbonControl)" in run_main
    assert 'RunPython "import " & mymodule & ";" & mymodule & ".main()"' in run_main
    assert "ThisWorkbook.Name" in run_main  # the module is the add-in's file name without extension
    module = Path(ADDIN_NAME).stem
    r = subprocess.run([sys.executable, "-c", f"import {module}; assert callable({module}.main)"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_windows_and_macos_locations(tmp_path):
    win = install(home=tmp_path / "w", os_name="windows", interpreter=sys.executable)
    assert win.addin == tmp_path / "w" / "AppData" / "Roaming" / "Microsoft" / "Excel" / "XLSTART" / ADDIN_NAME
    assert "interpreter_win" in xlwings_conf(win.conf)
    mac = install(home=tmp_path / "m", os_name="macos", interpreter=sys.executable)
    assert mac.addin == tmp_path / "m" / MAC_STARTUP / ADDIN_NAME and mac.addin.exists()
    assert any("no xlwings UDFs" in n for n in mac.notes)


def test_uninstall_leaves_only_what_was_there(installed):
    home, _ = installed
    r = run_cli("uninstall", "--home", str(home), "--keep-token")
    assert r.returncode == 0, r.stderr
    assert not (home / ".xl_addin" / ADDIN_NAME).exists()
    conf = xlwings_conf(home / ".xlwings" / "xlwings.conf")
    assert conf == {"pythonpath": "C:\\Users\\me\\models"}


def test_uninstall_removes_a_conf_that_was_only_ours(tmp_path):
    install(home=tmp_path, os_name="linux", interpreter=sys.executable)
    uninstall(home=tmp_path, os_name="linux")
    assert not (tmp_path / ".xlwings" / "xlwings.conf").exists()


def test_not_interactive_without_a_terminal(tmp_path):
    r = subprocess.run([sys.executable, "-m", "xl_addin", "install", "--home", str(tmp_path)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0 and "skipping the token prompt" in r.stdout


def test_shell_installers_pass_bash_n_and_shellcheck():
    scripts = sorted(INSTALL.glob("*.sh")) + sorted(INSTALL.glob("*.command"))
    assert {p.name for p in scripts} >= {"install.sh", "uninstall.sh", "install.command", "uninstall.command"}
    for p in scripts:
        assert subprocess.run(["bash", "-n", str(p)]).returncode == 0, p
        if p.name != "common.sh":  # sourced, not run
            assert p.stat().st_mode & 0o111, f"{p.name} must be executable"
    shellcheck = shutil.which("shellcheck")
    if not shellcheck:
        pytest.skip("shellcheck is not installed (CI installs it: .ci/run)")
    r = subprocess.run([shellcheck, "-x", *map(str, scripts)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout


PS7_ONLY = [r"\?\?", r"\?\.", r"&&", r"\|\|", r"-Parallel\b", r"\bclean\s*\{", r"ConvertFrom-Json\s+-AsHashtable",
            r"\$PSStyle", r"Get-Error\b", r"-SkipHttpErrorCheck"]


@pytest.mark.parametrize("name", ["install.ps1", "uninstall.ps1"])
def test_powershell_is_written_for_windows_powershell_5_1(name):
    text = (INSTALL / name).read_bytes()
    assert all(b < 128 for b in text), "Windows PowerShell 5.1 reads BOM-less scripts as ANSI: keep them ASCII"
    src = text.decode()
    assert src.startswith("#Requires -Version 5.1")
    code = "\n".join(line for line in src.splitlines() if not line.lstrip().startswith("#"))
    code = re.sub(r"<#.*?#>", "", code, flags=re.S)
    code = re.sub(r"'[^']*'", "''", code)  # string contents are not syntax
    for pattern in PS7_ONLY:
        assert not re.search(pattern, code), f"{name}: {pattern} needs PowerShell 7"
    assert "Import-Module" not in code and "Install-Module" not in code
    for open_, close in ("{}", "()", "[]"):
        assert code.count(open_) == code.count(close), f"{name}: unbalanced {open_}{close}"


def test_cmd_launchers_use_crlf_and_call_their_script():
    for name, script in (("install.cmd", "install.ps1"), ("uninstall.cmd", "uninstall.ps1")):
        data = (INSTALL / name).read_bytes()
        assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
        assert script.encode() in data and b"-ExecutionPolicy Bypass" in data
