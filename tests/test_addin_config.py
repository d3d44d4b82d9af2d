"""Issue 9, point 5: our settings go only where our add-in reads them, taken from the add-in's VBA.

Everything about how the add-in finds a setting is read from its VBA (olevba), not from our
constants: PROJECT_NAME, the config sheet's name and how it is read (keys upper-cased from A1
down, values beside them), the order of the places ``GetConfig`` looks in, the user file's path
on Windows and macOS, and the setting names RunPython and the UDFs ask for. A small interpreter
then looks settings up the way ``GetConfig`` does, in the built add-in and a home folder that
already holds other add-ins' settings.
"""

import csv
import re
import sys
from pathlib import Path

import pytest

from xl_addin.install import install, uninstall
from xl_addin.legacy_conf import remove_our_keys
from xl_addin.xlsx import XlsxBook

WIN_PY = r"C:\Users\me\AppData\Local\xl_addin\venv\Scripts\pythonw.exe"
MAC_CONTAINER = "Library/Containers/com.microsoft.Excel/Data"


def vba_modules(path):
    from oletools.olevba import VBA_Parser

    p = VBA_Parser(str(path))
    try:
        return {name: code for _, _, name, code in p.extract_macros()}
    finally:
        p.close()


def function_body(code: str, name: str) -> str:
    m = re.search(rf"^\s*(?:Public |Private )?Function {name}\b.*?^End Function", code, re.S | re.M)
    assert m, f"no Function {name} in the VBA"
    return m.group(0)


def vba_concat(expr: str, names: dict, funcs: dict) -> str:
    """Evaluate a VBA string expression made of literals, constants and calls joined by &."""
    out = []
    for token in re.findall(r'\w+\((?:"(?:[^"]|"")*"|[^()"])*\)|"(?:[^"]|"")*"|\w+', expr):
        token = token.strip()
        if not token:
            continue
        if token.startswith('"'):
            out.append(token[1:-1].replace('""', '"'))
        elif m := re.fullmatch(r"(\w+)\((.*)\)", token):
            args = [a.strip().strip('"') for a in m.group(2).split(",")]
            out.append(funcs[m.group(1)](*args))
        else:
            out.append(names[token])
    return "".join(out)


class AddinVBA:
    """What the add-in's VBA says about its configuration."""

    def __init__(self, addin):
        code = "\n".join(vba_modules(addin).values())
        self.code = code
        self.project = re.search(r'PROJECT_NAME As String = "([^"]+)"', code).group(1)
        sheet_fn = function_body(code, "GetConfigFromSheet")
        expr = re.search(r"Set sht = wb\.Sheets\((.+)\)", sheet_fn).group(1)
        self.sheet = vba_concat(expr, {"PROJECT_NAME": self.project}, {})
        # keys upper-cased, values from the next column, A1 down to the first blank (End(xlDown))
        assert "d.Add UCase(cell.Value), cell.Offset(0, 1).Value" in sheet_fn
        assert 'Set lastCell = sht.Range("A1").End(xlDown)' in sheet_fn
        body = function_body(code, "GetConfig")
        markers = {
            "active workbook sheet": "SheetExists(ActiveWorkbook, PROJECT_NAME & \".conf\")",
            "add-in sheet": "SheetExists(ThisWorkbook, PROJECT_NAME & \".conf\")",
            "directory file": "FileExists(GetDirectoryConfigFilePath())",
            "user file": "FileExists(GetConfigFilePath())",
            "default": "GetConfig = default",
        }
        self.order = sorted(markers, key=lambda k: body.index(markers[k]))
        path_fn = function_body(code, "GetConfigFilePath")
        mac, win = re.search(r"#If Mac Then(.*?)#Else(.*?)#End If", path_fn, re.S).groups()
        self.mac_expr = re.search(r"GetConfigFilePath = (.+)", mac).group(1).strip()
        self.win_expr = re.search(r"GetConfigFilePath = (.+)", win).group(1).strip()
        # GetMacDir("$HOME") is the sandboxed Excel's home, as the VBA's own comment says
        assert f"~/{MAC_CONTAINER}/" in mac
        self.keys = set(re.findall(r'GetConfig\("([A-Z_ ]+)"', code))
        run_python = function_body(code, "RunPython")
        self.interpreter_key = {
            "macos": re.search(r'#If Mac Then\s+interpreter = GetConfig\("(\w+)"', run_python).group(1),
            "windows": re.search(r'#Else\s+interpreter = GetConfig\("(\w+)"', run_python).group(1),
        }

    def user_file(self, os_name: str, home: Path) -> Path:
        if os_name == "windows":
            return Path(vba_concat(self.win_expr.replace("\\", "/"), {"PROJECT_NAME": self.project},
                                   {"Environ": lambda name: str(home) if name == "USERPROFILE" else ""}))
        return Path(vba_concat(self.mac_expr, {"PROJECT_NAME": self.project},
                               {"GetMacDir": lambda name, normalize: str(home / MAC_CONTAINER)}))


def sheet_config(addin, sheet):
    book = XlsxBook(addin)
    if sheet not in book.sheet_names():
        return None
    d = {}
    for key, value in book.read(sheet, 1, 1, 200, 2):
        if key in (None, ""):
            break
        d[str(key).upper()] = value
    return d


def file_config(path: Path):
    """VBA's `Input #f, name, value` over the file; names compared with LCase."""
    if not path.exists():
        return None
    return {row[0].lower(): row[1] for row in csv.reader(path.read_text().splitlines()) if len(row) >= 2}


def get_config(vba: AddinVBA, key, addin, active_sheet_config, user_file, default=""):
    """GetConfig(key) in the order the VBA looks."""
    for place in vba.order:
        if place == "active workbook sheet" and active_sheet_config and key in active_sheet_config:
            return active_sheet_config[key] or ""
        if place == "add-in sheet":
            d = sheet_config(addin, vba.sheet)
            if d is not None and key in d:
                return d[key] if d[key] is not None else ""
        if place == "user file":
            d = file_config(user_file)
            if d is not None and key.lower() in d:
                return d[key.lower()]
        if place == "default":
            return default
    raise AssertionError("GetConfig fell through")


@pytest.fixture(scope="module")
def vba():
    from xl_addin.addin_build import xlwings_ribbon_addin

    return AddinVBA(xlwings_ribbon_addin())


def test_the_vba_reads_the_add_ins_own_sheet_before_any_file(vba):
    assert vba.project == "myaddin" and vba.sheet == "myaddin.conf"
    assert vba.order.index("add-in sheet") < vba.order.index("directory file") < vba.order.index("user file")
    assert {"INTERPRETER_WIN", "INTERPRETER_MAC", "UDF MODULES"} <= vba.keys


def test_xlwings_conf_is_xlwings_own_add_ins_file_not_ours(vba, tmp_path):
    """0.1 wrote ~/.xlwings/xlwings.conf: that is where xlwings.xlam looks, not our add-in."""
    from pathlib import Path

    import xlwings

    theirs = AddinVBA(Path(xlwings.__file__).parent / "addin" / "xlwings.xlam")
    for os_name in ("windows", "macos"):
        assert theirs.user_file(os_name, tmp_path).name == "xlwings.conf"
        assert vba.user_file(os_name, tmp_path) != theirs.user_file(os_name, tmp_path)
    assert theirs.user_file("windows", tmp_path) == tmp_path / ".xlwings" / "xlwings.conf"


@pytest.mark.parametrize("os_name", ["windows", "macos"])
def test_built_add_in_gives_our_values_and_leaves_every_settings_file_alone(tmp_path, vba, os_name):
    home = tmp_path / "home"
    interpreter = WIN_PY if os_name == "windows" else sys.executable
    other_key = vba.interpreter_key["macos" if os_name == "windows" else "windows"]
    user_file = vba.user_file(os_name, home)
    user_file.parent.mkdir(parents=True)
    # another add-in built from the same quickstart keeps its settings in the shared user file
    user_file.write_text(f'"{vba.interpreter_key[os_name]}","/their/python"\n"UDF MODULES","their_udfs"\n'
                         '"PYTHONPATH","/their/models"\n')
    xlwings_conf = home / ".xlwings" / "xlwings.conf"
    xlwings_conf.parent.mkdir()
    xlwings_conf.write_text('"INTERPRETER_WIN","C:\\\\Anaconda\\\\pythonw.exe"\n"UDF MODULES","my_udfs"\n')
    files = {p: p.read_bytes() for p in (user_file, xlwings_conf)}

    report = install(home, os_name, interpreter, excel_running=lambda: False, udfs=False)
    key = vba.interpreter_key[os_name]
    assert get_config(vba, key, report.addin, None, user_file) == interpreter
    assert get_config(vba, "UDF MODULES", report.addin, None, user_file) == "xl_addin.udfs"
    assert get_config(vba, other_key, report.addin, None, user_file) == ""  # built for this machine only
    import importlib

    module = importlib.import_module(get_config(vba, "UDF MODULES", report.addin, None, user_file))
    assert hasattr(module, "LX_MMAH")
    assert {p: p.read_bytes() for p in files} == files
    uninstall(home, os_name, excel_running=lambda: False)
    assert {p: p.read_bytes() for p in files} == files


def xlwings_reads(path):
    import xlwings
    import xlwings.utils

    saved = xlwings.USER_CONFIG_FILE
    xlwings.USER_CONFIG_FILE = str(path)
    try:
        return xlwings.utils.read_user_config()
    finally:
        xlwings.USER_CONFIG_FILE = saved


def test_install_over_0_1_removes_exactly_the_keys_it_wrote(tmp_path):
    home = tmp_path / "home"
    conf = home / ".xlwings" / "xlwings.conf"
    conf.parent.mkdir(parents=True)
    old_python = home / "Library" / "Application Support" / "xl_addin" / "venv" / "bin" / "python"
    conf.write_bytes(b'"PYTHONPATH","/Users/me/models"\r\n'
                     + f'"INTERPRETER_MAC","{old_python}"\r\n'.encode()
                     + b'"UDF MODULES","xl_addin.udfs"\r\n"CONDA ENV","base"\r\n')
    old_python.parent.mkdir(parents=True)
    (old_python.parent.parent / "pyvenv.cfg").write_text("home = /usr/bin\n")
    report = install(home, "macos", sys.executable, excel_running=lambda: False)
    assert any(str(old_python.parent.parent.parent) in n and "delete" in n for n in report.notes)
    assert conf.read_bytes() == b'"PYTHONPATH","/Users/me/models"\r\n"CONDA ENV","base"\r\n'
    assert xlwings_reads(conf) == {"pythonpath": "/Users/me/models", "conda env": "base"}


def test_keys_the_user_has_changed_since_are_theirs(tmp_path):
    conf = tmp_path / "xlwings.conf"
    text = '"INTERPRETER_WIN","C:\\\\Anaconda\\\\pythonw.exe"\n"UDF MODULES","xl_addin.udfs;my_udfs"\n'
    conf.write_text(text)
    envs = [Path(r"C:\Users\me\AppData\Local\xl_addin\venv")]
    assert remove_our_keys(conf, {WIN_PY}, envs) == []
    assert conf.read_text() == text
    conf.write_text('"INTERPRETER_WIN","C:\\Users\\me\\AppData\\Local\\xl_addin\\venv\\Scripts\\pythonw.exe"\n')
    assert remove_our_keys(conf, set(), envs) == ["INTERPRETER_WIN"] and not conf.exists()


@pytest.mark.parametrize("os_name", ["windows", "macos"])
def test_the_workbook_s_folder_cannot_shadow_our_modules(tmp_path, vba, os_name):
    """RunPython and the UDF server hand xlwings' prepare_sys_path a string whose first field says whether
    the workbook's folder goes in FRONT of site-packages. A workbook kept in a folder that holds a module
    of the same name as one of ours (a copy of this project, a colleague's scripts, a network share where
    every import would first be looked up) must not change what the Refresh button runs."""
    import subprocess

    run_python = function_body(vba.code, "RunPython")
    key, default = re.search(r'AddExcelDir = GetConfig\("(\w+)", "(\w+)"\)', run_python).groups()
    assert 'PYTHONPATH = AddExcelDir & ";" & ActiveFullName & ";" & ThisFullName & ";"' in run_python
    assert f'AddExcelDir = GetConfig("{key}", "{default}")' in function_body(vba.code, "XLPyCommand")

    home = tmp_path / "home"
    interpreter = WIN_PY if os_name == "windows" else sys.executable
    report = install(home, os_name, interpreter, excel_running=lambda: False, udfs=False)
    user_file = vba.user_file(os_name, home)
    value = get_config(vba, key.upper(), report.addin, None, user_file, default)
    add_dir = "False" if value is False else "True" if value is True else str(value)  # VBA's CStr
    folder = tmp_path / "Shared Models"
    folder.mkdir()
    (folder / "xl_addin.py").write_text("raise SystemExit('the workbook folder shadowed xl_addin')\n")
    book = folder / "mm_ah.xlsx"
    pythonpath = ";".join([add_dir, str(book), str(report.addin), "", "", "",
                           get_config(vba, "PYTHONPATH", report.addin, None, user_file) or ""])
    command = (f"import xlwings.utils;xlwings.utils.prepare_sys_path({pythonpath!r});"
               "import xl_addin;print(xl_addin.__file__)")
    r = subprocess.run([sys.executable, "-B", "-c", command], capture_output=True, text=True, cwd="/", timeout=60)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).parent.name == "xl_addin"


def test_the_udfs_find_the_xlwings_dll_where_pip_puts_it_in_our_environment(tmp_path, vba):
    """`xlwings addin install` is never run: the formulas' VBA must load xlwings64-<version>.dll on its own.
    XLPyLoadDLL tries the folder of Interpreter_Win, then its parent (the "Virtualenv" case). xlwings'
    Windows wheels carry the DLLs as data files (the wheel's .data/data folder), which pip installs
    into the environment's `data` folder: for a venv its root, the parent of Scripts."""
    import sysconfig
    from pathlib import PureWindowsPath

    import xlwings

    from xl_addin.install_paths import env_dir

    name = re.search(r'#If Win64 Then\s+Const XLPyDLLName As String = "([^"]+)"', vba.code).group(1)
    assert name == f"xlwings64-{xlwings.__version__}.dll"  # the DLL of the xlwings that pip installs with us
    load = re.search(r"Private Sub XLPyLoadDLL\(\).*?End Sub", vba.code, re.S).group(0)
    tried = re.findall(r'LoadLibrary\((.+?) \+ "\\" \+ XLPyDLLName\)', load)
    assert tried == ["ParentFolder(PYTHON_WIN)", "ParentFolder(ParentFolder(PYTHON_WIN))"], tried
    assert 'PYTHON_WIN = GetConfig("INTERPRETER_WIN", "")' in load

    home = tmp_path / "home"
    venv = PureWindowsPath(str(env_dir(Path.home(), "windows", {"LOCALAPPDATA": r"C:\Users\Jane Doe\AppData\Local"})))
    assert venv == PureWindowsPath(r"C:\Users\Jane Doe\AppData\Local\xl_addin\venv")  # where install.ps1 makes it
    paths = {k: PureWindowsPath(sysconfig.get_path(k, "nt_venv", vars={"base": str(venv), "platbase": str(venv)}))
             for k in ("scripts", "data")}
    report = install(home, "windows", str(paths["scripts"] / "python.exe"), excel_running=lambda: False, udfs=False)
    interpreter = PureWindowsPath(get_config(vba, "INTERPRETER_WIN", report.addin, None, vba.user_file("windows", home)))
    folders = [interpreter.parent, interpreter.parent.parent]  # ParentFolder(PYTHON_WIN), ParentFolder(ParentFolder(..))
    assert paths["data"] in folders, (folders, paths["data"])
