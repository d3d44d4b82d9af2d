"""Run ``lx-addin snapshot`` every day from the OS scheduler, so that history builds up without Excel.

History exists only if someone fetches every trading day; this registers that someone:
Windows Task Scheduler (``schtasks``), a macOS launchd LaunchAgent (a plist), on Linux a
systemd user timer and service (a crontab line where systemd's user instance is not
running). Every artefact (argument lists, the plist, the unit files, the crontab line)
is built here as plain data by pure functions; the few commands that touch the
machine's scheduler go through one injectable *runner*, so tests check the exact
arguments and files without registering anything.

    plan = build(at=(18, 30))          # this OS, this Python's lx-addin
    turn_on(plan)                      # writes the files, runs the registering commands
    offer(plan, choice=None, ask=...)  # what the installers run at their end: ask, then turn_on
"""

from __future__ import annotations

import os
import plistlib
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .exceptions import InputError, LixingerError

NAME = "xl_addin snapshot"  # the Windows task's name
LABEL = "com.lixinger.xl_addin.snapshot"  # the launchd label (and the plist's file name)
UNIT = "xl-addin-snapshot"  # the systemd units' name
CRON_MARK = "# xl_addin snapshot"  # ends our crontab line, so that off finds it and nothing else
DEFAULT_AT = "18:30"  # after the close (16:10 HKT) and the day's Connect figures

#: runs a command: (argument list, stdin text or None) -> CompletedProcess (returncode, stdout, stderr)
Runner = Callable[[list, str | None], subprocess.CompletedProcess]


class ScheduleError(LixingerError):
    """The scheduler refused or could not be asked (nothing half-registered is left behind)."""


def run(args: list, input: str | None = None) -> subprocess.CompletedProcess:
    """The real runner: the command's output captured, never a console window's prompt."""
    try:
        return subprocess.run(args, input=input, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return subprocess.CompletedProcess(args, 127, "", f"{args[0]}: not found")


def parse_at(text: str) -> tuple[int, int]:
    """``HH:MM`` (24-hour) -> (hour, minute); anything else is one clear line."""
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", str(text))
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise InputError(f"--at {text!r} is not a time of day like 18:30 (24-hour HH:MM)")
    return int(m.group(1)), int(m.group(2))


def snapshot_command(python: str | None = None, windows: bool | None = None) -> list[str]:
    """The command the scheduler runs: this environment's ``lx-addin snapshot`` (the script next
    to its Python), else ``python -m xl_addin snapshot``. Absolute paths: a scheduler has no PATH of ours."""
    python = python or sys.executable
    windows = os.name == "nt" if windows is None else windows
    script = Path(python).parent / ("lx-addin.exe" if windows else "lx-addin")
    if script.exists():
        return [str(script), "snapshot"]
    return [python, "-m", "xl_addin", "snapshot"]


@dataclass
class Plan:
    """What registering means on one OS: files to write, commands to run on, off, and to ask."""

    system: str  # "windows", "macos", "systemd", "cron"
    at: tuple[int, int]
    command: list[str]
    files: dict[Path, bytes] = field(default_factory=dict)
    on: list[list[str]] = field(default_factory=list)
    off: list[list[str]] = field(default_factory=list)
    query: list[str] | None = None
    cron_line: str | None = None

    @property
    def at_text(self) -> str:
        return f"{self.at[0]:02d}:{self.at[1]:02d}"


# --- the artefacts, one pure function per scheduler ------------------------------------------
def _windows_quote(arg: str) -> str:
    return f'"{arg}"' if (" " in arg or not arg) else arg


def windows_plan(at: tuple[int, int], command: list[str]) -> Plan:
    """Task Scheduler: a daily task for the current user (schtasks, no password asked: /IT-less
    tasks of the logged-on user run when they are logged on)."""
    tr = " ".join(_windows_quote(a) for a in command)
    hhmm = f"{at[0]:02d}:{at[1]:02d}"
    return Plan("windows", at, command,
                on=[["schtasks", "/Create", "/SC", "DAILY", "/ST", hhmm, "/TN", NAME, "/TR", tr, "/F"]],
                off=[["schtasks", "/Delete", "/TN", NAME, "/F"]],
                query=["schtasks", "/Query", "/TN", NAME, "/FO", "LIST"])


def launchd_plist(at: tuple[int, int], command: list[str], log_dir: Path) -> bytes:
    return plistlib.dumps({
        "Label": LABEL,
        "ProgramArguments": list(command),
        "StartCalendarInterval": {"Hour": at[0], "Minute": at[1]},
        "StandardOutPath": str(log_dir / "snapshot.out.log"),
        "StandardErrorPath": str(log_dir / "snapshot.err.log"),
        "RunAtLoad": False,
    })


def macos_plan(at: tuple[int, int], command: list[str], home: Path, log_dir: Path, uid: int) -> Plan:
    """A LaunchAgent in ~/Library/LaunchAgents, loaded into the user's GUI session."""
    path = home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
    domain = f"gui/{uid}"
    return Plan("macos", at, command, files={path: launchd_plist(at, command, log_dir)},
                on=[["launchctl", "bootstrap", domain, str(path)]],
                off=[["launchctl", "bootout", domain, str(path)]],
                query=["launchctl", "print", f"{domain}/{LABEL}"])


def _systemd_quote(arg: str) -> str:
    if re.fullmatch(r"[\w@%+=:,./-]+", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_units(at: tuple[int, int], command: list[str]) -> tuple[str, str]:
    """(the .service, the .timer) as text."""
    service = (
        "[Unit]\n"
        "Description=Lixinger mm_ah daily snapshot (xl_addin)\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"ExecStart={' '.join(_systemd_quote(a) for a in command)}\n"
    )
    timer = (
        "[Unit]\n"
        "Description=Run the xl_addin snapshot every day\n\n"
        "[Timer]\n"
        f"OnCalendar=*-*-* {at[0]:02d}:{at[1]:02d}:00\n"
        "Persistent=true\n\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    return service, timer


def systemd_plan(at: tuple[int, int], command: list[str], home: Path) -> Plan:
    """A user timer (``Persistent=true``: a day missed while the machine was off runs at the next boot)."""
    folder = home / ".config" / "systemd" / "user"
    service, timer = systemd_units(at, command)
    return Plan("systemd", at, command,
                files={folder / f"{UNIT}.service": service.encode(), folder / f"{UNIT}.timer": timer.encode()},
                on=[["systemctl", "--user", "daemon-reload"], ["systemctl", "--user", "enable", "--now", f"{UNIT}.timer"]],
                off=[["systemctl", "--user", "disable", "--now", f"{UNIT}.timer"]],
                query=["systemctl", "--user", "is-enabled", f"{UNIT}.timer"])


def cron_line(at: tuple[int, int], command: list[str]) -> str:
    import shlex

    return f"{at[1]} {at[0]} * * * {shlex.join(command)} {CRON_MARK}"


def cron_plan(at: tuple[int, int], command: list[str]) -> Plan:
    return Plan("cron", at, command, cron_line=cron_line(at, command), query=["crontab", "-l"])


def with_cron_line(crontab: str, line: str | None) -> str:
    """The crontab without our line, plus *line* (None: just without it); other lines untouched."""
    kept = [ln for ln in crontab.splitlines() if not ln.rstrip().endswith(CRON_MARK)]
    if line:
        kept.append(line)
    return "".join(f"{ln}\n" for ln in kept)


# --- this machine ----------------------------------------------------------------------------
def systemd_user_available(runner: Runner = run) -> bool:
    return runner(["systemctl", "--user", "show-environment"], None).returncode == 0


def build(at: str | tuple[int, int] = DEFAULT_AT, *, platform: str | None = None, home: Path | None = None,
          command: list[str] | None = None, runner: Runner = run) -> Plan:
    """The plan for this OS (or *platform*: ``win32``, ``darwin``, ``linux``)."""
    at = parse_at(at) if isinstance(at, str) else at
    platform = platform or sys.platform
    home = home or Path.home()
    if platform.startswith("win"):
        return windows_plan(at, command or snapshot_command(windows=True))
    command = command or snapshot_command(windows=False)
    if platform == "darwin":
        return macos_plan(at, command, home, home / "Library" / "Logs" / "xl_addin", os.getuid())
    if systemd_user_available(runner):
        return systemd_plan(at, command, home)
    return cron_plan(at, command)


def _check(result: subprocess.CompletedProcess, what: str) -> None:
    if result.returncode != 0:
        why = (result.stderr or result.stdout or "").strip().splitlines()
        raise ScheduleError(f"{what} failed ({why[-1] if why else f'exit {result.returncode}'})")


def turn_on(plan: Plan, runner: Runner = run) -> str:
    """Write the files and register; registering again replaces the earlier registration."""
    if plan.system in ("macos",) and any(p.exists() for p in plan.files):
        for args in plan.off:  # launchd refuses to bootstrap a label already loaded
            runner(args, None)
    for path, data in plan.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if plan.system == "cron":
        current = runner(["crontab", "-l"], None)
        _check(runner(["crontab", "-"], with_cron_line(current.stdout if current.returncode == 0 else "",
                                                        plan.cron_line)), "crontab")
    for args in plan.on:
        _check(runner(args, None), " ".join(args[:2]))
    return f"The snapshot runs every day at {plan.at_text} ({_where(plan)}): {' '.join(plan.command)}"


def turn_off(plan: Plan, runner: Runner = run) -> str:
    """Unregister and remove the files; nothing registered is not an error."""
    if plan.system == "cron":
        current = runner(["crontab", "-l"], None)
        if current.returncode == 0 and CRON_MARK in current.stdout:
            _check(runner(["crontab", "-"], with_cron_line(current.stdout, None)), "crontab")
    else:
        for args in plan.off:
            runner(args, None)  # not registered: fine
    for path in plan.files:
        path.unlink(missing_ok=True)
    if plan.system == "systemd":
        runner(["systemctl", "--user", "daemon-reload"], None)
    return f"The daily snapshot is off ({_where(plan)})."


def _registered(plan: Plan, runner: Runner = run) -> tuple[bool, str]:
    """(registered?, the crontab line when it is one)."""
    result = runner(plan.query, None)
    if plan.system == "cron":
        lines = [ln for ln in result.stdout.splitlines() if ln.rstrip().endswith(CRON_MARK)] if result.returncode == 0 else []
        return bool(lines), (lines[0] if lines else "")
    return result.returncode == 0 and all(p.exists() for p in plan.files), ""


def status(plan: Plan, runner: Runner = run) -> str:
    """One line: registered or not, and where."""
    on, detail = _registered(plan, runner)
    if not on:
        return f"The daily snapshot is not registered ({_where(plan)}); `lx-addin schedule on` registers it."
    return f"The daily snapshot is registered ({_where(plan)}){': ' + detail if detail else ''}."


OFFER_QUESTION = ("Take a snapshot every day at {at}, so that history builds up without opening Excel "
                  "(lx-addin schedule on)?")


def offer(plan: Plan, choice: bool | None = None, ask: Callable[[str], bool] | None = None,
          runner: Runner = run) -> str:
    """What an installer runs at its end: turn the daily snapshot on if the user wants it.

    *choice* is the installer's flag (True: register without asking, False: do not); None
    asks with *ask* (a yes/no question, yes the default). Without a way to ask (*ask* None:
    not a terminal) nothing is registered. An existing registration is left as it is and
    nobody is asked. Returns one line saying what happened; a scheduler that refuses is a
    ScheduleError (nothing half-registered)."""
    if choice is not False and _registered(plan, runner)[0]:
        return f"The daily snapshot is already registered ({_where(plan)}); `lx-addin schedule on --at HH:MM` changes the time."
    if choice is None:
        if ask is None:
            return "Not a terminal: the daily snapshot was not registered; `lx-addin schedule on` registers it."
        choice = ask(OFFER_QUESTION.format(at=plan.at_text))
    if not choice:
        return "The daily snapshot was not registered; `lx-addin schedule on` registers it later."
    return turn_on(plan, runner)


def _where(plan: Plan) -> str:
    if plan.system == "windows":
        return f"Task Scheduler, task {NAME!r}"
    if plan.system == "cron":
        return "crontab"
    return ", ".join(str(p) for p in plan.files)
