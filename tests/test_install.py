"""`lx-addin install` staged into a temporary home, per OS, and the installers' scripts.

Issue 9, point 6: the add-in is built for the machine it runs on (a Windows path in
Interpreter_Win only when built for Windows), Linux says plainly that there is nothing for Excel
to install, and nothing suggests copying a built add-in to another machine.
"""

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from xl_addin.addin_build import xlwings_ribbon_addin
from xl_addin.exceptions import InstallError
from xl_addin.install import install, uninstall
from xl_addin.install_paths import ADDIN_NAME, MAC_STARTUP, addin_path, is_windows_path, mac_scripts_dir
from xl_addin.xlsx import XlsxBook

INSTALL = ROOT / "install"
WIN_PY = r"C:\Users\me\AppData\Local\xl_addin\venv\Scripts\pythonw.exe"


def settings(addin):
    return {row[0]: row[1] for row in XlsxBook(addin).read("myaddin.conf", 1, 1, 9, 2)}


@pytest.fixture
def staged(tmp_path):
    home = tmp_path / "home"
    r = run_cli("install", "--home", str(home), "--no-token")
    assert r.returncode == 0, r.stderr
    return home, r


def test_linux_staging_builds_a_posix_add_in_and_says_excel_is_windows_and_macos(staged):
    home, r = staged
    addin = addin_path(home, "linux")
    assert str(addin) in r.stdout and "Windows and macOS only" in r.stdout
    assert "copy" not in r.stdout.lower()
    s = settings(addin)
    assert s["Interpreter_Win"] is None and s["Interpreter_Mac"] == sys.executable
    r = subprocess.run([s["Interpreter_Mac"], "-c", "import xl_addin.udfs, xl_addin; print(callable(xl_addin.main))"],
                       capture_output=True, text=True, cwd="/")
    assert r.stdout.strip() == "True", r.stderr


def test_linux_without_home_installs_nothing_for_excel(tmp_path):
    r = run_cli("install", "--no-token", env={"HOME": str(tmp_path), "XDG_DATA_HOME": ""})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("Excel add-ins install on Windows and macOS only")
    assert "copy" not in r.stdout.lower() and list(tmp_path.iterdir()) == []


def test_addin_is_a_valid_workbook_with_its_vba_and_our_ribbon(staged):
    home, _ = staged
    addin = addin_path(home, "linux")
    with zipfile.ZipFile(addin) as z, zipfile.ZipFile(xlwings_ribbon_addin()) as orig:
        assert z.testzip() is None
        assert z.read("xl/vbaProject.bin") == orig.read("xl/vbaProject.bin")  # the VBA project, intact
        ribbon = z.read("customUI/customUI.xml").decode()
        types = z.read("[Content_Types].xml").decode()
    assert 'label="Lixinger"' in ribbon and 'onAction="RibbonMyAddin.RunMain"' in ribbon
    assert "addin.macroEnabled" in types
    assert "myaddin.conf" in XlsxBook(addin).sheet_names()  # enabled: the add-in's VBA reads its settings from it


def test_ribbon_runpython_target_imports_and_has_main(staged):
    from oletools.olevba import VBA_Parser

    home, _ = staged
    vba = VBA_Parser(str(addin_path(home, "linux")))
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


def test_windows_build_has_a_windows_interpreter_only(tmp_path):
    win = install(tmp_path / "w", "windows", WIN_PY, excel_running=lambda: False, udfs=False)
    assert win.addin == tmp_path / "w" / "AppData" / "Roaming" / "Microsoft" / "Excel" / "XLSTART" / ADDIN_NAME
    s = settings(win.addin)
    assert s["Interpreter_Win"] == WIN_PY and is_windows_path(s["Interpreter_Win"])
    assert s["Interpreter_Mac"] is None and s["UDF Modules"] == "xl_addin.udfs"


def test_a_posix_python_is_refused_for_windows_and_nothing_is_written(tmp_path):
    with pytest.raises(InstallError, match="not a Windows path") as e:
        install(tmp_path, "windows", sys.executable, excel_running=lambda: False, udfs=False)
    assert "\n" not in str(e.value)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_macos_build_has_a_mac_interpreter_only_and_runpython_s_applescript(tmp_path):
    import xlwings

    mac = install(tmp_path / "m", "macos", sys.executable, excel_running=lambda: False)
    assert mac.addin == tmp_path / "m" / MAC_STARTUP / ADDIN_NAME and mac.addin.exists()
    s = settings(mac.addin)
    assert s["Interpreter_Mac"] == sys.executable and s["Interpreter_Win"] is None
    script = mac_scripts_dir(tmp_path / "m") / f"xlwings-{xlwings.__version__}.applescript"
    assert script.read_bytes() == Path(xlwings.__file__).with_name(script.name).read_bytes()
    assert any("no xlwings UDFs" in n for n in mac.notes)
    uninstall(tmp_path / "m", "macos", excel_running=lambda: False)
    assert not script.exists() and not mac.addin.exists()


def test_an_applescript_that_was_there_before_stays(tmp_path):
    import xlwings

    script = mac_scripts_dir(tmp_path) / f"xlwings-{xlwings.__version__}.applescript"
    script.parent.mkdir(parents=True)
    shutil.copy(Path(xlwings.__file__).with_name(script.name), script)
    install(tmp_path, "macos", sys.executable, excel_running=lambda: False)
    uninstall(tmp_path, "macos", excel_running=lambda: False)
    assert script.exists()


def test_uninstall_removes_what_install_made(staged):
    home, _ = staged
    r = run_cli("uninstall", "--home", str(home), "--keep-token")
    assert r.returncode == 0, r.stderr
    assert not [p for p in home.rglob("*") if p.is_file()]


def test_nothing_suggests_copying_a_built_add_in():
    texts = [ROOT / "README.md", *INSTALL.iterdir(), *(ROOT / "xl_addin").glob("*install*.py"),
             ROOT / "xl_addin" / "addin_build.py"]
    for path in texts:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(?i)copy (it|the add-?in|\S*\.xlam)|copy over", text), path.name


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
    code = re.sub(r"<#.*?#>", "", src, flags=re.S)
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith("#"))
    code = re.sub(r"'[^']*'", "''", code)  # string contents are not syntax
    for pattern in PS7_ONLY:
        assert not re.search(pattern, code), f"{name}: {pattern} needs PowerShell 7"
    assert "Import-Module" not in code and "Install-Module" not in code
    # syntax (balanced braces and all) is checked by a real grammar: tests/test_powershell.py


def test_cmd_launchers_use_crlf_and_call_their_script():
    for name, script in (("install.cmd", "install.ps1"), ("uninstall.cmd", "uninstall.ps1")):
        data = (INSTALL / name).read_bytes()
        assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
        assert script.encode() in data and b"-ExecutionPolicy Bypass" in data


def _fake_env(venv: Path):
    """An environment as install.sh leaves it, whose lx-addin is this checkout's."""
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "bin" / "lx-addin").symlink_to(Path(sys.executable).with_name("lx-addin"))


def test_uninstall_sh_runs_lx_addin_uninstall_then_removes_the_environment(tmp_path):
    home = tmp_path / "home"
    env = {"HOME": str(home), "XDG_DATA_HOME": "", "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    venv = home / ".local" / "share" / "xl_addin" / "venv"
    _fake_env(venv)
    install(home, "linux", sys.executable, excel_running=lambda: False)
    r = subprocess.run(["bash", str(INSTALL / "uninstall.sh"), "--keep-token"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"Removed {venv}" in r.stdout
    assert not (home / ".local" / "share" / "xl_addin").exists()


def test_uninstall_sh_keeps_the_environment_when_lx_addin_uninstall_fails(tmp_path):
    home = tmp_path / "home"
    env = {"HOME": str(home), "XDG_DATA_HOME": "", "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    venv = home / ".local" / "share" / "xl_addin" / "venv"
    _fake_env(venv)
    app = venv.parent
    (app / "install-record.json").write_text("{not json")  # lx-addin uninstall refuses: cannot read it
    r = subprocess.run(["bash", str(INSTALL / "uninstall.sh"), "--keep-token"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode != 0 and "install-record.json" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert (venv / "bin" / "lx-addin").exists()


def test_install_sh_asks_python_before_it_creates_anything():
    src = (INSTALL / "install.sh").read_text()
    assert src.index('VENV="$(preflight install)" || exit 1') < src.index('-m venv "$VENV"') \
        < src.index('"$VENV/bin/lx-addin" install')
    assert "xlwings\" addin" not in src and "runpython install" not in src  # Python does that part now


def test_cmd_launchers_pause_for_a_double_click_and_still_return_the_script_s_exit_code():
    """A double-click user must read the result (pause); a deployment script calling install.cmd must see
    a failure: `pause` resets ERRORLEVEL to 0, so the code is kept before it and returned after."""
    for name in ("install.cmd", "uninstall.cmd"):
        lines = [line.strip() for line in (INSTALL / name).read_text().splitlines() if line.strip()]
        ps = next(i for i, line in enumerate(lines) if line.lower().startswith("powershell.exe"))
        kept = re.fullmatch(r'(?i)set "(\w+)=%ERRORLEVEL%"', lines[ps + 1])
        assert kept, f"{name}: the exit code must be kept right after powershell.exe"
        assert lines[ps + 2].lower() == "pause"
        assert lines[ps + 3].lower() == f"exit /b %{kept.group(1).lower()}%"
        assert '"%~dp0' in lines[ps] and "-File" in lines[ps]  # quoted: a folder with spaces or & works
