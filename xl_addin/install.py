"""`lx-addin install` / `uninstall`: every decision of setting up Excel, in the order that keeps it safe.

The PowerShell and sh installers only find Python, make the environment (where
:mod:`xl_addin.preflight` says) and call these. Install:

1. Excel must be closed (:mod:`xl_addin.excel_process`): it holds the add-in and the environment open.
2. The add-in is built for this machine (:mod:`xl_addin.addin_build`) in a staging folder of ours.
3. Windows, for ``=LX_MMAH`` in every workbook: the VBA-project trust (:mod:`xl_addin.vbom`, only
   after the user agreed; the value before is recorded first), then the functions are imported into
   the staged add-in (:mod:`xl_addin.udf_import`). A failure puts the trust value back and changes
   nothing else. Skipped, with a note, when Windows' ANSI code page cannot spell the interpreter's
   path: the formulas' VBA hands it to LoadLibraryA and the xlwings DLL as ANSI text.
   The same Excel session adds the Freeze values button's VBA module; only when it is there is
   the button put on the ribbon (:func:`xl_addin.addin_build.set_ribbon`).
4. Settings earlier versions left in ``~/.xlwings/xlwings.conf`` are removed (:mod:`xl_addin.legacy_conf`).
5. macOS: xlwings' AppleScript, which RunPython calls, goes where Excel finds it.
6. The add-in replaces the old one in Excel's start-up folder in one step.

Uninstall checks Excel first, takes our files away all or nothing (a file that cannot be
removed stops it with everything as it was), restores what :mod:`xl_addin.install_record` says
was there; only then does ``lx-addin uninstall`` remove the cache and, last, the token.
On Linux there is no Excel: ``install`` says so and sets up the token; ``--home DIR`` stages a
build under DIR (tests).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import install_record, legacy_conf, vbom
from .addin_build import CONF_SHEET, UDF_MODULES, build_addin, set_ribbon, xlwings_ribbon_addin  # noqa: F401
from .excel_process import ensure_excel_closed
from .exceptions import InstallError
from .install_paths import (ADDIN_NAME, MAC_STARTUP, addin_dir, addin_path, app_dir,  # noqa: F401
                            legacy_env_dirs, mac_scripts_dir, record_path, target_os)

LINUX_LINE = ("Excel add-ins install on Windows and macOS only: on Linux, use the command line "
              "(lx-addin refresh BOOK.xlsx, lx-addin fetch CODE)")
TRUST_QUESTION = ("To put =LX_MMAH into every workbook, Excel must allow access to the VBA project object model "
                  "(File > Options > Trust Center > Trust Center Settings > Macro Settings; you can turn it off "
                  "again afterwards). Turn it on now?")


@dataclass
class InstallReport:
    addin: Path
    interpreter: str
    os_name: str
    formulas: bool = False
    freeze_button: bool = False
    notes: list[str] = field(default_factory=list)


def windows_interpreter(executable: str) -> str:
    """pythonw.exe beside python.exe when there is one (no console window flashing up)."""
    exe = Path(executable)
    if exe.name.lower() == "python.exe" and (exe.parent / "pythonw.exe").exists():
        return str(exe.parent / "pythonw.exe")
    return executable


def windows_ansi_codepage() -> str | None:
    """Windows' ANSI code page ("cp1252"), which VBA converts strings to for Declare'd DLL calls; None elsewhere."""
    if sys.platform != "win32":
        return None
    import ctypes

    return f"cp{ctypes.windll.kernel32.GetACP()}"


def _ansi_problem(interpreter: str, codepage: str | None) -> str | None:
    """Why the formulas' VBA could not load the xlwings DLL from *interpreter*'s folder, or None."""
    if not codepage:
        return None
    try:
        interpreter.encode(codepage)
    except UnicodeEncodeError:
        return (f"the formulas were skipped: Excel's VBA passes the path of Python ({interpreter}) to Windows in "
                f"the code page of 'Language for non-Unicode programs' ({codepage}), which cannot spell it, so "
                "=LX_MMAH could not start; the Refresh button works (set that language to match your user "
                "folder's name, restart, and run this again for the formulas)")
    except LookupError:
        return None
    return None


def _winreg(registry):
    if registry is not None:
        return registry
    import winreg

    return winreg


def _check_excel(os_name, excel_running):
    if excel_running is None:
        ensure_excel_closed(os_name if os_name == target_os() else "linux")
    elif excel_running():
        from .exceptions import ExcelRunningError

        raise ExcelRunningError()


def _our_interpreters(interpreter: str) -> set[str]:
    return {interpreter, windows_interpreter(interpreter), sys.executable, windows_interpreter(sys.executable)}


def _place(staged: Path, target: Path) -> None:
    """Copy into the target's folder, then one rename: Excel never sees half a file."""
    tmp = target.with_name(f".~{target.name}.new")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(staged, tmp)
    except OSError as exc:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        raise InstallError(f"cannot write the add-in into {target.parent} ({exc.strerror or exc})") from None
    try:
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InstallError(f"cannot replace {target} ({exc.strerror or exc}): close Excel and run this again") from None


def _formulas(report, reg, staged, record, rec_path, trust_vba, ask, import_udfs) -> dict:
    versions = vbom.excel_versions(reg)
    if not versions:
        report.notes.append("Excel's settings were not found (start Excel once, close it, run this again): "
                            "the formulas were skipped, the Refresh button works")
        return {}
    if vbom.blocked_by_policy(reg, versions):
        report.notes.append("your IT turned off access to the VBA project (Group Policy): the formulas were "
                            "skipped, the Refresh button works")
        return {}
    turned_on = {}
    if not vbom.trusted(reg, versions):
        if not (trust_vba or (ask is not None and ask(TRUST_QUESTION))):
            report.notes.append("the formulas were skipped (access to the VBA project stays off): the Refresh "
                                "button works; run this again and answer y for =LX_MMAH")
            return {}
        turned_on = {v: old for v, old in vbom.current(reg, versions).items() if old != 1}
        install_record.save(rec_path, install_record.remember(record, "access_vbom", turned_on))
        vbom.turn_on(reg, versions)
    try:
        imported = import_udfs(staged)
        if getattr(imported, "freeze_button", False):  # its VBA module is in the saved add-in
            set_ribbon(staged, freeze_button=True)
            report.freeze_button = True
    except BaseException:  # a COM error that is not ours, Ctrl+C: the value goes back all the same
        _undo_trust(reg, turned_on, record, rec_path)
        raise
    report.formulas = True
    report.notes.extend(getattr(imported, "notes", None) or [])
    return turned_on


def _undo_trust(reg, turned_on: dict, record: dict, rec_path: Path) -> None:
    if turned_on:
        vbom.restore(reg, turned_on)
        for v in turned_on:
            record.get("access_vbom", {}).pop(v, None)
        install_record.save(rec_path, record)


def _applescript(home: Path, record: dict) -> Path | None:
    import xlwings

    src = Path(xlwings.__file__).with_name(f"xlwings-{xlwings.__version__}.applescript")
    if not src.exists():
        raise InstallError(f"xlwings {xlwings.__version__} has no {src.name}: reinstall xlwings")
    dest = mac_scripts_dir(home) / src.name
    if dest.exists():
        return None  # xlwings' own file (this version): shared, not ours to own or remove
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    record.setdefault("files", [])
    if str(dest) not in record["files"]:
        record["files"].append(str(dest))
    return dest


def install(home: Path | None = None, os_name: str | None = None, interpreter: str | None = None, *,
            environ=None, registry=None, excel_running=None, udfs: bool = True, trust_vba: bool = False,
            ask=None, import_udfs=None, ansi_codepage: str | None = None) -> InstallReport:
    """Set up Excel for *interpreter*; a failure leaves every file and setting as it was."""
    home = Path(home) if home else Path.home()
    os_name = os_name or target_os()
    interpreter = interpreter or sys.executable
    if os_name == "windows":
        interpreter = windows_interpreter(interpreter)
    _check_excel(os_name, excel_running)
    ours = app_dir(home, os_name, environ)
    rec_path = record_path(home, os_name, environ)
    record = install_record.load(rec_path)
    target = addin_path(home, os_name, environ)
    staging = ours / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    had_folder, record_before = ours.exists(), rec_path.read_bytes() if rec_path.exists() else None
    turned_on, script = {}, None
    try:
        staged = build_addin(staging / ADDIN_NAME, os_name, interpreter)
        report = InstallReport(addin=target, interpreter=interpreter, os_name=os_name)
        ansi = _ansi_problem(interpreter, ansi_codepage or windows_ansi_codepage())
        if os_name == "windows" and udfs and ansi:
            report.notes.append(ansi)
        elif os_name == "windows" and udfs:
            if import_udfs is None:
                from .udf_import import import_udfs_into_addin as import_udfs
            turned_on = _formulas(report, _winreg(registry), staged, record, rec_path, trust_vba, ask, import_udfs)
        if os_name == "windows" and not report.freeze_button and not any("Freeze values" in n for n in report.notes):
            report.notes.append("no Freeze values button (its VBA comes with the formulas' import): "
                                "freeze a copy with `lx-addin freeze BOOK.xlsx`")
        if os_name == "macos":
            script = _applescript(home, record)
        try:
            _place(staged, target)
        except BaseException:
            if script is not None:
                script.unlink(missing_ok=True)
            if turned_on:
                _undo_trust(_winreg(registry), turned_on, record, rec_path)
            raise
        install_record.save(rec_path, record)
    except BaseException:
        if record_before is None:
            rec_path.unlink(missing_ok=True)
        else:
            rec_path.write_bytes(record_before)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not had_folder:
            try:
                ours.rmdir()  # only if empty: nothing of ours was left in it
            except OSError:
                pass
    # after the install is complete (and recorded): a failure here is a note, not a half-undone install
    conf = legacy_conf.conf_path(home)
    try:
        legacy_conf.remove_our_keys(conf, _our_interpreters(interpreter), legacy_env_dirs(home, os_name, environ))
    except OSError as exc:
        report.notes.append(f"could not remove version 0.1's settings from {conf} ({exc.strerror or exc}): "
                            "remove its INTERPRETER_WIN/INTERPRETER_MAC and UDF MODULES lines if they name xl_addin")
    if os_name == "linux":
        report.notes.append(f"staged only: {LINUX_LINE}")
    if os_name == "macos":
        report.notes.append("macOS Excel has no xlwings UDFs: use the Refresh button (=LX_MMAH is Windows only)")
        old_env = home / "Library" / "Application Support" / "xl_addin" / "venv"
        if (old_env / "pyvenv.cfg").exists() and old_env != Path(interpreter).parent.parent:
            report.notes.append(f"version 0.1's environment is still in {old_env.parent}: nothing uses it now, "
                                "you may delete that folder")
    return report


def _remove_all_or_nothing(paths: list[Path]) -> list[Path]:
    """Rename every file aside first; if one cannot be moved, put the others back and stop."""
    moved: list[tuple[Path, Path]] = []
    for p in paths:
        aside = p.with_name(f".~{p.name}.removing")
        try:
            os.replace(p, aside)
        except OSError as exc:
            for original, tmp in reversed(moved):
                os.replace(tmp, original)
            raise InstallError(f"cannot remove {p} ({exc.strerror or exc}): close Excel and run this again "
                               "(nothing was changed)") from None
        moved.append((p, aside))
    for _, aside in moved:
        aside.unlink(missing_ok=True)
    return [p for p, _ in moved]


def uninstall(home: Path | None = None, os_name: str | None = None, *, environ=None, registry=None,
              excel_running=None) -> list[str]:
    """Remove our files and restore what the record says; returns what was done, one line each."""
    home = Path(home) if home else Path.home()
    os_name = os_name or target_os()
    _check_excel(os_name, excel_running)
    rec_path = record_path(home, os_name, environ)
    record = install_record.load(rec_path)
    candidates = [addin_path(home, os_name, environ), home / ".xl_addin" / ADDIN_NAME,  # 0.1 staged it there
                  *map(Path, record.get("files", []))]
    files = [p for p in dict.fromkeys(candidates) if p.exists()]
    done = [f"removed {p}" for p in _remove_all_or_nothing(files)]
    conf = legacy_conf.conf_path(home)
    try:
        keys = legacy_conf.remove_our_keys(conf, _our_interpreters(sys.executable),
                                           legacy_env_dirs(home, os_name, environ))
    except OSError as exc:  # not worth leaving the trust setting on for: say so and go on
        done.append(f"could not read {conf} ({exc.strerror or exc}): left as it is")
        keys = []
    if keys:
        done.append(f"removed {', '.join(keys)} from {conf}")
    if os_name == "windows" and record.get("access_vbom"):
        for v in vbom.restore(_winreg(registry), record["access_vbom"]):
            done.append(f"put back Excel {v}'s 'Trust access to the VBA project object model' as it was")
    rec_path.unlink(missing_ok=True)
    return done


def remove_cache(settings=None) -> Path | None:
    """Delete the local cache's folder; returns it, or None when there was none."""
    from .config import Settings

    cache_dir = (settings or Settings.load()).cache_path.parent
    if not cache_dir.exists():
        return None
    shutil.rmtree(cache_dir, ignore_errors=True)
    return cache_dir
