"""Issue 9, point 4: with Excel open, install and uninstall say so in one line and change nothing;
an uninstall that cannot remove a file stops before anything irreversible (the token goes last).

macOS's check runs the real ``pgrep -x "Microsoft Excel"`` against a real process of that name
(Linux's pgrep matches the same 15-character name). Windows' ``tasklist`` cannot run here: its CSV
answers are replayed as Windows prints them.
"""

import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from conftest import ROOT
from xl_addin.excel_process import PGREP, TASKLIST, excel_running
from xl_addin.exceptions import ExcelRunningError, InstallError
from xl_addin.cli import cmd_uninstall as main_uninstall
from xl_addin.install import install, uninstall
from xl_addin.install_paths import addin_path, record_path

WIN_PY = r"C:\Users\me\AppData\Local\xl_addin\venv\Scripts\pythonw.exe"


def tasklist(stdout, rc=0):
    def run(argv, **kw):
        if "PID eq" in " ".join(argv):  # the question "who am I": our own row, as /V prints it
            return subprocess.CompletedProcess(argv, 0, f'"python.exe","{os.getpid()}","Console","1","9 K",'
                                               '"Running","PC\\me","0:00:00","N/A"\r\n', "")
        assert argv[:3] == TASKLIST[:3]
        return subprocess.CompletedProcess(argv, rc, stdout, "")
    return run


class Tasklist:
    """Windows' tasklist over a process table: /FI "NAME eq VALUE" filters (ANDed, case-insensitive),
    /FO CSV /NH rows, /V adds Status, User Name, CPU Time, Window Title. A user who is not an
    administrator sees "N/A" as the user of another account's process. That word and the "no tasks"
    line are localised (German by default here)."""

    COLUMNS = {"IMAGENAME": 0, "PID": 1, "SESSION": 3, "USERNAME": 6}

    def __init__(self, me="PC\\me", processes=(), na="Nicht zutreffend"):
        self.me, self.na = me, na
        self.table = [("python.exe", os.getpid(), "Console", 1, me), *processes]
        self.calls = []

    def __call__(self, argv, **kw):
        self.calls.append(argv)
        assert argv[0] == "tasklist" and "/FO" in argv and argv[argv.index("/FO") + 1] == "CSV" and "/NH" in argv
        filters = [argv[i + 1] for i, a in enumerate(argv) if a.upper() == "/FI"]
        rows = []
        for image, pid, session_name, session, user, *elevated in self.table:
            shown_user = user if user == self.me and not any(elevated) else self.na  # an elevated process too
            row = [image, str(pid), session_name, str(session), "100 K"]
            full = row + ["Running", shown_user, "0:00:01", "N/A"]
            ok = True
            for f in filters:
                name, op, value = f.split(" ", 2)
                assert op.lower() == "eq", f
                ok = ok and full[self.COLUMNS[name.upper()]].lower() == value.lower()
            if ok:
                rows.append(full if "/V" in argv else row)
        if not rows:
            return subprocess.CompletedProcess(argv, 0, "INFORMATION: Es werden keine Aufgaben mit den angegebenen "
                                               "Kriterien ausgef\u00fchrt.\r\n", "")
        out = "".join(",".join(f'"{c}"' for c in r) + "\r\n" for r in rows)
        return subprocess.CompletedProcess(argv, 0, out, "")


def test_another_accounts_excel_does_not_block_the_install():
    """A terminal server (Citrix, RDS): a colleague's Excel holds their files, not ours."""
    colleague = ("EXCEL.EXE", 5120, "RDP-Tcp#4", 3, "CORP\\colleague")
    assert excel_running("windows", Tasklist("CORP\\me", [colleague])) is False
    mine = ("EXCEL.EXE", 7777, "RDP-Tcp#9", 5, "CORP\\me")  # ours, even in another session of the same account
    assert excel_running("windows", Tasklist("CORP\\me", [colleague, mine])) is True
    assert excel_running("windows", Tasklist("CORP\\me", [])) is False
    # "Run as administrator": our own Excel, whose user a normal tasklist cannot read, in our session
    elevated = ("EXCEL.EXE", 8888, "Console", 1, "CORP\\me", True)
    assert excel_running("windows", Tasklist("CORP\\me", [colleague, elevated])) is True
    assert excel_running("windows", Tasklist("CORP\\me", [colleague, elevated], na="N/A")) is True
    assert excel_running("windows", Tasklist("CORP\\me", [colleague], na="N/A")) is False


def test_tasklist_answers():
    running = '"EXCEL.EXE","11872","Console","1","412,332 K"\r\n'
    other = '"excel.exe","4","Console","1","1 K"\r\n"notepad.exe","5","Console","1","1 K"\r\n'
    none_en = "INFO: No tasks are running which match the specified criteria.\r\n"
    none_de = "INFORMATION: Es werden keine Aufgaben mit den angegebenen Kriterien ausgeführt.\r\n"
    assert excel_running("windows", tasklist(running)) is True
    assert excel_running("windows", tasklist(other)) is True
    assert excel_running("windows", tasklist(none_en)) is False
    assert excel_running("windows", tasklist(none_de)) is False
    with pytest.raises(InstallError, match="could not tell"):
        excel_running("windows", tasklist("", rc=1))


@pytest.fixture
def fake_excel(tmp_path):
    """A real process whose name is "Microsoft Excel"."""
    exe = tmp_path / "bin" / "Microsoft Excel"
    exe.parent.mkdir()
    shutil.copy(shutil.which("sleep"), exe)
    p = subprocess.Popen([str(exe), "60"])
    time.sleep(0.2)
    yield p
    p.kill()
    p.wait()


def test_pgrep_sees_a_running_excel(fake_excel):
    assert PGREP[:2] == ["pgrep", "-x"] and PGREP[-1] == "Microsoft Excel"
    assert excel_running("macos") is True
    fake_excel.kill()
    fake_excel.wait()
    assert excel_running("macos") is False


def test_another_accounts_excel_on_the_mac_does_not_block_the_install(tmp_path):
    """Fast user switching: a real "Microsoft Excel" process of another account (uid 65534)."""
    import tempfile

    assert os.geteuid() == 0, "CI runs as root (.ci/run): needed to start a process as another account"
    where = Path(tempfile.mkdtemp(prefix="other-excel-"))
    try:
        where.chmod(0o755)
        exe = where / "Microsoft Excel"
        shutil.copy(shutil.which("sleep"), exe)
        exe.chmod(0o755)
        p = subprocess.Popen([str(exe), "60"], user=65534, group=65534)
        try:
            time.sleep(0.2)
            assert subprocess.run(["pgrep", "-x", "Microsoft Excel"], capture_output=True).returncode == 0
            assert excel_running("macos") is False
        finally:
            p.kill()
            p.wait()
    finally:
        shutil.rmtree(where)


def _tree(root: Path):
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def test_install_and_uninstall_change_nothing_while_excel_runs(tmp_path, fake_excel):
    home = tmp_path / "home"
    install(home, "macos", sys.executable, excel_running=lambda: False)
    (home / ".xlwings").mkdir()
    (home / ".xlwings" / "xlwings.conf").write_text(f'"INTERPRETER_MAC","{sys.executable}"\n')
    before = _tree(home)
    check = lambda: excel_running("macos")  # noqa: E731  the real pgrep
    with pytest.raises(ExcelRunningError) as e:
        install(home, "macos", sys.executable, excel_running=check)
    assert str(e.value) == "Excel is running: close Excel and run this again (nothing was changed)"
    with pytest.raises(ExcelRunningError):
        uninstall(home, "macos", excel_running=check)
    assert _tree(home) == before


def test_preflight_stops_the_installer_before_it_creates_anything(tmp_path, fake_excel, monkeypatch):
    from xl_addin import preflight

    home = tmp_path / "home"
    home.mkdir()
    with pytest.raises(ExcelRunningError):
        preflight.env_for("install", home, "macos")
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: home))
    assert preflight.main(["install"]) == 1
    assert list(home.iterdir()) == []


def test_preflight_prints_the_environment_folder(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(tmp_path), XDG_DATA_HOME="")
    r = subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                        "from xl_addin.preflight import main; sys.exit(main(['install']))", str(ROOT)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / ".local" / "share" / "xl_addin" / "venv")
    mods = subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                           "import xl_addin.preflight; print(sorted(m for m in sys.modules if m in "
                           "('requests','pandas','xlwings','lxml','keyring','platformdirs','openpyxl')))", str(ROOT)],
                          capture_output=True, text=True, env=env)
    assert mods.stdout.strip() == "[]", "the system Python has none of these: preflight must not need them"


# --- the uninstall's order ------------------------------------------------------------------------
@pytest.fixture
def file_keyring(tmp_path, monkeypatch):
    """A real keyring backend (keyrings.alt, a file) holding a token."""
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    from xl_addin.credentials import keyring_token, store_token

    kr = PlaintextKeyring()
    kr.file_path = str(tmp_path / "keyring.cfg")
    keyring.set_keyring(kr)
    store_token("t0k3n-for-the-uninstall-test", "default")
    assert keyring_token("default") is not None
    return keyring_token


def test_a_file_excel_still_holds_stops_the_uninstall_before_the_token(tmp_path, monkeypatch, file_keyring):
    from fake_winreg import FakeWinreg

    reg = FakeWinreg()
    reg.put(r"Software\Microsoft\Office\16.0\Excel\Security", "VBAWarnings", 2)
    home = tmp_path / "home"
    install(home, "windows", WIN_PY, registry=reg, excel_running=lambda: False, trust_vba=True,
            import_udfs=lambda addin: None)
    addin = addin_path(home, "windows")
    before_files, before_reg = _tree(home), reg.roots[reg.HKEY_CURRENT_USER].snapshot()
    real_replace = os.replace

    def sharing_violation(src, dst):  # what Windows does to a file another process holds open
        if Path(src) == addin:
            raise PermissionError(13, "The process cannot access the file because it is being used by another process")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", sharing_violation)
    import xl_addin.install as inst

    monkeypatch.setattr(inst, "target_os", lambda: "windows")
    monkeypatch.setattr(inst, "_winreg", lambda registry: reg)
    monkeypatch.setattr(inst, "_check_excel", lambda os_name, check: None)
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: home))
    args = types.SimpleNamespace(home=None, keep_token=False, keep_cache=True, profile="default")
    with pytest.raises(InstallError, match="cannot remove .*nothing was changed"):
        main_uninstall(args)
    assert _tree(home) == before_files and reg.roots[reg.HKEY_CURRENT_USER].snapshot() == before_reg
    assert file_keyring("default") is not None  # the install still works: the token is there

    monkeypatch.setattr(os, "replace", real_replace)
    assert main_uninstall(args) == 0
    assert not addin.exists() and not record_path(home, "windows").exists()
    assert "accessvbom" not in reg.node(r"Software\Microsoft\Office\16.0\Excel\Security").values
    assert file_keyring("default") is None


def test_all_or_nothing_puts_back_files_already_moved(tmp_path, monkeypatch):
    home = tmp_path / "home"
    install(home, "macos", sys.executable, excel_running=lambda: False)
    script = next((home / "Library" / "Application Scripts").rglob("*.applescript"))
    before = _tree(home)
    real_replace = os.replace

    def held(src, dst):
        if Path(src) == script:
            raise PermissionError(13, "in use")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", held)
    with pytest.raises(InstallError):
        uninstall(home, "macos", excel_running=lambda: False)
    assert _tree(home) == before


def test_a_windows_environment_made_by_another_python_is_refused_before_anything_changes(tmp_path):
    """On Windows a venv keeps its packages in Lib\\site-packages with no version in the path: `python -m venv`
    over an environment made by Python 3.11, run with 3.13, keeps 3.11's compiled lxml and pywin32, and pip
    says "already satisfied". The Refresh button would then fail to import. Say so before anything changes."""
    from xl_addin import preflight
    from xl_addin.install_paths import env_dir

    home = tmp_path / "home"
    venv = env_dir(home, "windows", {})
    (venv / "Lib" / "site-packages").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = C:\\Python311\ninclude-system-site-packages = false\nversion = 3.11.9\n")
    before = _tree(home)
    no_excel = tasklist("INFO: No tasks are running which match the specified criteria.\r\n")
    with pytest.raises(InstallError) as e:
        preflight.env_for("install", home, "windows", {}, no_excel, python_version=(3, 13))
    assert "\n" not in str(e.value) and "3.11" in str(e.value) and "3.13" in str(e.value)
    assert "uninstall.cmd -KeepToken" in str(e.value)
    assert _tree(home) == before
    assert preflight.env_for("install", home, "windows", {}, no_excel, python_version=(3, 11)) == venv
    assert preflight.env_for("uninstall", home, "windows", {}, no_excel, python_version=(3, 13)) == venv
