"""Is Excel running? Asked before the install or uninstall changes anything.

Excel holds ``XLSTART\\xl_addin.xlam``, the xlwings DLL and ``pythonw.exe`` of our environment
open while it runs: replacing or removing them then fails half-way. So both commands ask first
and stop with one line when it is. Only this account's Excel counts: on a terminal server
(Citrix, RDS) or a Mac with fast user switching, a colleague's Excel holds their files, not
ours, and must not block the install forever. Windows asks ``tasklist /V`` (CSV, no header: the
columns are in the same place in every display language) first for our own process's row, to
learn how it spells this account's name, then for EXCEL.EXE rows with that user name (another
account's process shows "N/A" to a user who is not an administrator, and so does our own Excel
"run as administrator", which is told apart by running in our session); macOS asks
``pgrep -x -U <uid>`` for the process "Microsoft Excel". Linux has no Excel. Standard library
only: the installers run this with the system Python before the environment exists. The process
runner is a parameter so that tests hand over a ``tasklist`` stand-in.
"""

from __future__ import annotations

import csv
import os
import subprocess

from .exceptions import ExcelRunningError, InstallError
from .install_paths import target_os

WINDOWS_IMAGE = "EXCEL.EXE"
MAC_PROCESS = "Microsoft Excel"
TASKLIST = ["tasklist", "/FI", f"IMAGENAME eq {WINDOWS_IMAGE}", "/FO", "CSV", "/NH", "/V"]
SESSION_COLUMN, USER_COLUMN = 3, 6  # tasklist /V /FO CSV: image, PID, session name, session#, memory, status, user
PGREP = ["pgrep", "-x", "-U", str(os.getuid()) if hasattr(os, "getuid") else "0", MAC_PROCESS]


def _run(run, argv):
    try:
        return run(argv, capture_output=True, text=True, errors="replace", timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise InstallError(f"could not tell whether Excel is running ({argv[0]}: {exc}): "
                           "close Excel and run this again") from None


def _tasklist(run, argv) -> list[list[str]]:
    r = _run(run, argv)
    if r.returncode != 0:
        raise InstallError("could not tell whether Excel is running (tasklist failed): close Excel and run this again")
    return [row for row in csv.reader(line for line in r.stdout.splitlines() if line.strip()) if row]


def _user(row: list[str]) -> str | None:
    """DOMAIN\\user, lower-case; None for "N/A" (localised: "Nicht zutreffend", ...), which has no backslash."""
    user = row[USER_COLUMN].strip().lower()
    return user if "\\" in user else None


def _this_process(run) -> tuple[str | None, str | None]:
    """This account as tasklist spells it (DOMAIN\\user) and our session number; None when unknown."""
    rows = _tasklist(run, ["tasklist", "/FI", f"PID eq {os.getpid()}", "/FO", "CSV", "/NH", "/V"])
    for row in rows:
        if len(row) > USER_COLUMN and row[1].strip() == str(os.getpid()):
            return _user(row), row[SESSION_COLUMN].strip()
    return None, None


def _ours(row: list[str], me: str | None, session: str | None) -> bool:
    if me is None or len(row) <= USER_COLUMN:
        return True  # cannot tell: count it
    user = _user(row)
    # N/A: a process whose owner we may not read, i.e. another account's, or our own Excel
    # "run as administrator"; the latter runs in our session
    return user == me or (user is None and row[SESSION_COLUMN].strip() == session)


def excel_running(os_name: str | None = None, run=subprocess.run) -> bool:
    os_name = os_name or target_os()
    if os_name == "windows":
        me, session = _this_process(run)
        return any(row[0].strip().upper() == WINDOWS_IMAGE and _ours(row, me, session)
                   for row in _tasklist(run, TASKLIST))
    if os_name == "macos":
        r = _run(run, PGREP)
        if r.returncode in (0, 1):  # 0: found, 1: none
            return r.returncode == 0
        raise InstallError("could not tell whether Excel is running (pgrep failed): close Excel and run this again")
    return False


def ensure_excel_closed(os_name: str | None = None, run=subprocess.run) -> None:
    if excel_running(os_name, run):
        raise ExcelRunningError()
