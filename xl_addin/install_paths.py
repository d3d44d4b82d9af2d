"""Where the install puts things, per operating system, decided in one place.

Standard library only: the installers run this (through :mod:`xl_addin.preflight`) with the
system Python, before the private environment exists, so that the environment's folder is
decided here and not in PowerShell or sh.

macOS: xlwings' AppleScript (``xlwings-<version>.applescript``) builds
``<Interpreter_Mac> -B -u -W ignore -c "..."`` without quoting the interpreter, so its path
must be one shell word. ``~/Library/Application Support`` has a space; the environment lives in
``~/.xl_addin/venv`` instead. A home folder that is not one shell word (macOS does not allow a
space in an account's short name, so only a renamed or moved home has one) is refused with a
clear message rather than worked around: a space-free place outside the home folder
(``/Users/Shared``, ``/tmp``) is writable by other accounts, who could then replace the Python
that Excel runs. ``XL_ADDIN_ENV_DIR`` names another folder for such a Mac.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path, PureWindowsPath

from .exceptions import InstallError

APP = "xl_addin"
ADDIN_NAME = "xl_addin.xlam"
RECORD_NAME = "install-record.json"
MAC_STARTUP = "Library/Group Containers/UBF8T346G9.Office/User Content.localized/Startup.localized/Excel"
MAC_SCRIPTS = "Library/Application Scripts/com.microsoft.Excel"
#: one word for /bin/sh, with nothing it would expand
_SHELL_WORD = re.compile(r"[A-Za-z0-9_./+@%:,=-]+")
_WINDOWS_ABS = re.compile(r"^(?:[A-Za-z]:\\|\\\\[^\\]+\\[^\\]+)")


def target_os(platform: str | None = None) -> str:
    p = platform or sys.platform
    if p.startswith("win"):
        return "windows"
    if p == "darwin":
        return "macos"
    return "linux"


def _env(environ):
    return os.environ if environ is None else environ


def _real_home(home: Path) -> bool:
    try:
        return Path(home) == Path.home()
    except RuntimeError:
        return False


def app_dir(home: Path, os_name: str, environ=None) -> Path:
    """Our own folder: the environment, the install record. Never shared with another program."""
    env = _env(environ)
    home = Path(home)
    if os_name == "windows":
        local = env.get("LOCALAPPDATA")
        base = Path(local) if local and _real_home(home) else home / "AppData" / "Local"
        return base / APP
    if os_name == "macos":
        return home / f".{APP}"
    data = env.get("XDG_DATA_HOME", "").strip() if _real_home(home) else ""
    return (Path(data) if data else home / ".local" / "share") / APP


def env_dir(home: Path, os_name: str, environ=None) -> Path:
    """The private Python environment the installers create."""
    custom = _env(environ).get("XL_ADDIN_ENV_DIR", "").strip()
    if os_name == "macos" and custom:
        return Path(custom).expanduser()
    return app_dir(home, os_name, environ) / "venv"


def legacy_env_dirs(home: Path, os_name: str, environ=None) -> list[Path]:
    """Where earlier versions put the environment (their settings are ours to clean up)."""
    home = Path(home)
    return [env_dir(home, os_name, environ), home / "Library" / "Application Support" / APP / "venv",
            home / ".local" / "share" / APP / "venv"]


def addin_dir(home: Path, os_name: str, environ=None) -> Path | None:
    """Where Excel opens add-ins at start for this user; None on Linux (no Excel)."""
    env = _env(environ)
    home = Path(home)
    if os_name == "windows":
        appdata = env.get("APPDATA")
        base = Path(appdata) if appdata and _real_home(home) else home / "AppData" / "Roaming"
        return base / "Microsoft" / "Excel" / "XLSTART"
    if os_name == "macos":
        return home / MAC_STARTUP
    return None


def addin_path(home: Path, os_name: str, environ=None) -> Path:
    """The built add-in: in Excel's start-up folder, or (Linux: staging only) in our folder."""
    where = addin_dir(home, os_name, environ)
    return (where or app_dir(home, os_name, environ)) / ADDIN_NAME


def record_path(home: Path, os_name: str, environ=None) -> Path:
    return app_dir(home, os_name, environ) / RECORD_NAME


def mac_scripts_dir(home: Path) -> Path:
    """Where sandboxed macOS Excel finds the AppleScript that RunPython calls (AppleScriptTask)."""
    return Path(home) / MAC_SCRIPTS


def is_windows_path(text: str) -> bool:
    """An absolute Windows path: C:\\... or \\\\server\\share\\..."""
    return bool(text) and bool(_WINDOWS_ABS.match(text)) and PureWindowsPath(text).is_absolute()


def check_mac_interpreter(path: str | os.PathLike) -> str:
    """The path as xlwings' AppleScript will run it, or a one-line refusal."""
    text = str(path)
    if not text.startswith("/") or not _SHELL_WORD.fullmatch(text):
        raise InstallError(
            f"{text!r} contains a space or a character the shell would split on: macOS Excel's Refresh button "
            "(xlwings' AppleScript) cannot run a Python there; set XL_ADDIN_ENV_DIR to a new folder without spaces "
            "that only you can write to, and run this again"
        )
    return text
