"""Issue 9, point 3: on macOS the Refresh button reaches ``xl_addin.main`` through xlwings' AppleScript.

The command is the AppleScript's own: its ``set ShellCommand to ...`` statement, read from the
``.applescript`` the install put where Excel finds it (a copy of the one shipped in the xlwings
package), evaluated with the values the add-in's VBA hands over (``ExecuteMac``): the
``Interpreter_Mac`` from the built add-in's config sheet, the PYTHONPATH string, the RunPython
command of the ribbon button. ``do shell script`` runs it with ``/bin/sh -c``; so does the test.
The home folder has a space in it, as on a Mac whose home was renamed.

The environment is a real venv at the place the macOS install decides. A ``.pth`` in it installs
a probe that, once ``xl_addin`` is imported by the command, swaps its ``main`` for one that writes
down that it was reached (the real one needs a running Excel).
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from xl_addin.exceptions import InstallError
from xl_addin.install import install
from xl_addin.install_paths import check_mac_interpreter, env_dir, mac_scripts_dir
from xl_addin.preflight import env_for
from xl_addin.xlsx import XlsxBook

PROBE = '''
import builtins, os, sys
_import = builtins.__import__
def _hook(name, *args, **kwargs):
    module = _import(name, *args, **kwargs)
    x = sys.modules.get("xl_addin")
    if x is not None and hasattr(x, "main") and not getattr(x.main, "probe", False):
        def main():
            with open(os.environ["LX_PROBE"], "w") as f:
                f.write(repr({"argv": sys.argv, "file": x.__file__, "executable": sys.executable}))
        main.probe = True
        x.main = main
    return module
builtins.__import__ = _hook
'''


def applescript_shell_command(script: str, values: dict) -> str:
    """Evaluate the AppleScript's `set ShellCommand to ...` with *values* for its variables."""
    text = script.replace("¬\n", " ").replace("¬\r\n", " ")
    expr = re.search(r"^\s*set ShellCommand to (.+)$", text, re.M).group(1)
    out = []
    for token in re.findall(r'"(?:[^"\\]|\\.)*"|[^&"]+', expr):
        token = token.strip()
        if not token:
            continue
        if token.startswith('"'):
            out.append(re.sub(r"\\(.)", r"\1", token[1:-1]))
        else:
            out.append(values[token])
    return "".join(out)


def applescript_parameters(script: str) -> list[str]:
    return [v.strip() for v in re.search(r"set \{([^}]+)\} to SplitString\(ParameterString", script).group(1).split(",")]


def make_env(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    site = next(path.glob("lib/python3*/site-packages"))
    venv_site = next((ROOT / ".venv").glob("lib/python3*/site-packages"), None) or Path(
        next(p for p in sys.path if p.endswith("site-packages")))
    (site / "_lx_probe.py").write_text(PROBE)
    (site / "lx_probe.pth").write_text(f"{ROOT}\n{venv_site}\nimport _lx_probe\n")
    return path / "bin" / "python"


@pytest.fixture
def spaced_home(tmp_path):
    home = tmp_path / "Jane Doe"
    (home / "Library" / "Containers" / "com.microsoft.Excel" / "Data").mkdir(parents=True)
    return home


def execute_mac(addin: Path) -> tuple[list[str], str]:
    """From the add-in's VBA (ExecuteMac): how ParameterString is put together, and which AppleScript it calls."""
    from oletools.olevba import VBA_Parser

    parser = VBA_Parser(str(addin))
    code = "\n".join(c for _, _, _, c in parser.extract_macros())
    parser.close()
    body = re.search(r"Sub ExecuteMac\(.*?End Sub", code, re.S).group(0)
    first = re.search(r"^\s*ParameterString = (\w+) \+ \"(.)\"$", body, re.M)
    parts = [first.group(1) + "+" + first.group(2)]
    parts += re.findall(r'^\s*ParameterString = ParameterString \+ "\|" \+ (.+?)\s*$', body, re.M)
    version = re.search(r'XLWINGS_VERSION As String = "([^"]+)"', code).group(1)
    task = re.search(r'AppleScriptTask\("xlwings-" & XLWINGS_VERSION & "(\.applescript)"', body).group(1)
    assert "PythonInterpreter = ToPosixPath(PYTHON_MAC)" in body
    return parts, f"xlwings-{version}{task}"


def run_like_excel(home: Path, addin: Path, tmp_path: Path, book="mm_ah.xlsx") -> tuple[Path, Path]:
    """What clicking Refresh does on a Mac: VBA's ExecuteMac, then the AppleScript's do shell script."""
    parts, script_name = execute_mac(addin)
    script = mac_scripts_dir(home) / script_name  # where AppleScriptTask looks, as the install put it
    text = script.read_text()
    settings = {r[0]: r[1] for r in XlsxBook(addin).read("myaddin.conf", 1, 1, 40, 2) if r[0]}
    module = addin.stem  # RibbonMyAddin.RunMain: the add-in's file name without extension
    container = home / "Library" / "Containers" / "com.microsoft.Excel" / "Data"
    active = home / "Documents" / book
    # RunPython: AddExcelDir = GetConfig("ADD_WORKBOOK_TO_PYTHONPATH", "true"); the sheet's keys are upper-cased
    add_dir = next((v for k, v in settings.items() if str(k).upper() == "ADD_WORKBOOK_TO_PYTHONPATH"), "true")
    add_dir = {True: "True", False: "False"}.get(add_dir, add_dir)  # VBA's CStr of the sheet's value
    pythonpath = ";".join([add_dir, str(active), str(addin), "", "", "", settings.get("PYTHONPATH") or ""])
    vba_values = {  # the VBA expressions ExecuteMac joins with "|", and what each is on a Mac
        "PYTHONPATH+;": pythonpath.replace("'", "\\'") + ";",
        "PythonInterpreter": settings["Interpreter_Mac"],  # ToPosixPath of a POSIX path is the path
        "PythonCommand": f"import {module};{module}.main()",
        "ActiveWorkbook.Name": book,
        "Left(Application.Path, Len(Application.Path) - 4)": "/Applications/Microsoft Excel.app",
        "LOG_FILE": str(container / "xlwings.log"),
    }
    parameter_string = "|".join(vba_values[p] for p in parts)
    names = applescript_parameters(text)
    values = dict(zip(names, parameter_string.split("|"), strict=True))
    command = applescript_shell_command(text, values)
    marker = tmp_path / "reached"
    env = dict(os.environ, HOME=str(home), LX_PROBE=str(marker))
    env.pop("PYTHONPATH", None)
    subprocess.run(["/bin/sh", "-c", command], env=env, cwd="/", timeout=60)
    return marker, Path(values["LOG_FILE"])


def _wait(path: Path, seconds=30):
    end = time.time() + seconds
    while time.time() < end and not path.exists():
        time.sleep(0.1)
    return path.exists()


def test_refresh_button_reaches_xl_addin_main_through_xlwings_applescript(spaced_home, tmp_path):
    envs = tmp_path / "envs"
    environ = {"XL_ADDIN_ENV_DIR": str(envs / "xl_addin")}
    venv = env_dir(spaced_home, "macos", environ)
    python = make_env(venv)
    report = install(spaced_home, "macos", str(python), excel_running=lambda: False, environ=environ)
    interpreter = {r[0]: r[1] for r in XlsxBook(report.addin).read("myaddin.conf", 1, 1, 9, 2)}["Interpreter_Mac"]
    assert interpreter == str(python) and " " not in interpreter
    assert " " in str(report.addin)  # the add-in itself may live under a path with spaces
    marker, log = run_like_excel(spaced_home, report.addin, tmp_path)
    assert _wait(marker), log.read_text() if log.exists() else "no log"
    reached = eval(marker.read_text())
    assert reached["file"] == str(ROOT / "xl_addin" / "__init__.py")
    assert "--wb=mm_ah.xlsx" in reached["argv"] and "--app=/Applications/Microsoft Excel.app" in reached["argv"]


def test_the_old_place_breaks_the_same_command(spaced_home, tmp_path, monkeypatch):
    """Why the environment moved: under Application Support (0.1's place) the space splits the command."""
    from xl_addin import addin_build

    python = make_env(spaced_home / "Library" / "Application Support" / "xl_addin" / "venv")
    install(spaced_home, "macos", sys.executable, excel_running=lambda: False)  # puts the AppleScript in place
    monkeypatch.setattr(addin_build, "sheet_settings", lambda os_name, interpreter: {"Interpreter_Mac": interpreter})
    addin = addin_build.build_addin(spaced_home / "old" / "xl_addin.xlam", "macos", str(python))
    marker, log = run_like_excel(spaced_home, addin, tmp_path)
    end = time.time() + 20
    while time.time() < end and not (log.exists() and log.read_text()):
        time.sleep(0.1)
    assert not marker.exists()
    assert f"{spaced_home.parent}/Jane: not found" in log.read_text() or "No such file" in log.read_text()


def test_a_home_with_a_space_is_refused_in_one_line_before_anything_is_made(spaced_home):
    with pytest.raises(InstallError) as e:
        env_for("install", spaced_home, "macos", environ={}, run=lambda *a, **k: subprocess.CompletedProcess(a, 1))
    assert "\n" not in str(e.value) and "XL_ADDIN_ENV_DIR" in str(e.value)
    with pytest.raises(InstallError):
        install(spaced_home, "macos", str(spaced_home / ".xl_addin" / "venv" / "bin" / "python"),
                excel_running=lambda: False)
    assert not (spaced_home / ".xl_addin").exists()
    assert not (spaced_home / "Library" / "Group Containers").exists()


def test_the_default_place_is_one_shell_word(tmp_path):
    venv = env_dir(tmp_path / "jane", "macos", {})
    assert venv == tmp_path / "jane" / ".xl_addin" / "venv"
    assert check_mac_interpreter(venv / "bin" / "python") == str(venv / "bin" / "python")
    for bad in ("/Users/Jane Doe/.xl_addin/venv/bin/python", "/Users/o'brien/x", "/Users/$x/y", "rel/python"):
        with pytest.raises(InstallError):
            check_mac_interpreter(bad)
