"""Is Excel running? Asked before the install or uninstall changes anything.

Excel holds ``XLSTART\\xl_addin.xlam``, the xlwings DLL and ``pythonw.exe`` of our environment
open while it runs: replacing or removing them then fails half-way. So both commands ask first
and stop with one line when it is. Windows asks ``tasklist`` (its CSV output, whose first
column is the image name, is the same in every display language); macOS asks ``pgrep -x``
for the process "Microsoft Excel". Linux has no Excel. Standard library only: the installers
run this with the system Python before the environment exists. The process runner is a
parameter so that tests hand over a recorded ``tasklist`` answer.
"""

from __future__ import annotations

import csv
import subprocess

from .exceptions import ExcelRunningError, InstallError
from .install_paths import target_os

WINDOWS_IMAGE = "EXCEL.EXE"
MAC_PROCESS = "Microsoft Excel"
TASKLIST = ["tasklist", "/FI", f"IMAGENAME eq {WINDOWS_IMAGE}", "/FO", "CSV", "/NH"]
PGREP = ["pgrep", "-x", MAC_PROCESS]


def _run(run, argv):
    try:
        return run(argv, capture_output=True, text=True, errors="replace", timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise InstallError(f"could not tell whether Excel is running ({argv[0]}: {exc}): "
                           "close Excel and run this again") from None


def excel_running(os_name: str | None = None, run=subprocess.run) -> bool:
    os_name = os_name or target_os()
    if os_name == "windows":
        r = _run(run, TASKLIST)
        if r.returncode != 0:
            raise InstallError("could not tell whether Excel is running (tasklist failed): close Excel and run this again")
        rows = csv.reader(line for line in r.stdout.splitlines() if line.strip())
        return any(row and row[0].strip().upper() == WINDOWS_IMAGE for row in rows)
    if os_name == "macos":
        r = _run(run, PGREP)
        if r.returncode in (0, 1):  # 0: found, 1: none
            return r.returncode == 0
        raise InstallError("could not tell whether Excel is running (pgrep failed): close Excel and run this again")
    return False


def ensure_excel_closed(os_name: str | None = None, run=subprocess.run) -> None:
    if excel_running(os_name, run):
        raise ExcelRunningError()
