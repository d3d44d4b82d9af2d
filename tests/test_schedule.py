"""The daily snapshot's scheduler artefacts for Windows, macOS and Linux, checked as the OS would read them."""

from __future__ import annotations

import configparser
import plistlib
import subprocess
from pathlib import Path

import pytest

from conftest import run_cli
from xl_addin import schedule
from xl_addin.exceptions import InputError

CMD = ["/home/ana/.venvs/lx addin/bin/lx-addin", "snapshot"]


class Recorder:
    """A runner that records each command and answers like the scheduler would (no machine touched)."""

    def __init__(self, answers=None):
        self.calls: list[tuple[list, str | None]] = []
        self.answers = answers or {}
        self.crontab = ""

    def __call__(self, args, input=None):
        self.calls.append((list(args), input))
        if args[:2] == ["crontab", "-l"]:
            return subprocess.CompletedProcess(args, 0, self.crontab, "")
        if args[:2] == ["crontab", "-"]:
            self.crontab = input
            return subprocess.CompletedProcess(args, 0, "", "")
        rc = self.answers.get(tuple(args[:3]), 0)
        return subprocess.CompletedProcess(args, rc, "", "boom" if rc else "")


def test_windows_task_scheduler_arguments(tmp_path):
    plan = schedule.build("18:30", platform="win32", home=tmp_path, command=[r"C:\Users\Ana Li\venv\Scripts\lx-addin.exe", "snapshot"])
    runner = Recorder()
    schedule.turn_on(plan, runner)
    assert runner.calls == [(["schtasks", "/Create", "/SC", "DAILY", "/ST", "18:30", "/TN", "xl_addin snapshot",
                              "/TR", r'"C:\Users\Ana Li\venv\Scripts\lx-addin.exe" snapshot', "/F"], None)]
    runner = Recorder()
    schedule.turn_off(plan, runner)
    assert runner.calls == [(["schtasks", "/Delete", "/TN", "xl_addin snapshot", "/F"], None)]
    assert "not registered" in schedule.status(plan, Recorder({("schtasks", "/Query", "/TN"): 1}))
    assert "is registered" in schedule.status(plan, Recorder())


def test_macos_launch_agent_plist(tmp_path):
    runner = Recorder()
    plan = schedule.macos_plan((7, 5), CMD, tmp_path, tmp_path / "Library/Logs/xl_addin", 501)
    print(schedule.turn_on(plan, runner))
    path = tmp_path / "Library/LaunchAgents/com.lixinger.xl_addin.snapshot.plist"
    agent = plistlib.loads(path.read_bytes())
    assert agent["Label"] == "com.lixinger.xl_addin.snapshot"
    assert agent["ProgramArguments"] == CMD
    assert agent["StartCalendarInterval"] == {"Hour": 7, "Minute": 5}
    assert agent["StandardErrorPath"].startswith(str(tmp_path / "Library/Logs/xl_addin"))
    assert runner.calls == [(["launchctl", "bootstrap", "gui/501", str(path)], None)]
    assert "is registered" in schedule.status(plan, Recorder())
    runner = Recorder()
    schedule.turn_on(plan, runner)  # again: the loaded agent is booted out first
    assert [c[0][1] for c in runner.calls] == ["bootout", "bootstrap"]
    schedule.turn_off(plan, Recorder())
    assert not path.exists()
    assert "not registered" in schedule.status(plan, Recorder())


def test_linux_systemd_user_timer_and_service(tmp_path):
    runner = Recorder()
    plan = schedule.build("18:30", platform="linux", home=tmp_path, command=CMD, runner=runner)
    assert plan.system == "systemd"
    schedule.turn_on(plan, runner)
    folder = tmp_path / ".config/systemd/user"
    units = {}
    for name in ("xl-addin-snapshot.service", "xl-addin-snapshot.timer"):
        p = configparser.ConfigParser(interpolation=None)
        p.optionxform = str
        p.read(folder / name)
        units[name] = p
    import shlex

    assert shlex.split(units["xl-addin-snapshot.service"]["Service"]["ExecStart"]) == CMD
    assert units["xl-addin-snapshot.service"]["Service"]["Type"] == "oneshot"
    timer = units["xl-addin-snapshot.timer"]
    assert timer["Timer"]["OnCalendar"] == "*-*-* 18:30:00" and timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert [c[0] for c in runner.calls[1:]] == [["systemctl", "--user", "daemon-reload"],
                                                 ["systemctl", "--user", "enable", "--now", "xl-addin-snapshot.timer"]]
    runner = Recorder()
    schedule.turn_off(plan, runner)
    assert runner.calls[0][0] == ["systemctl", "--user", "disable", "--now", "xl-addin-snapshot.timer"]
    assert not list(folder.iterdir())


def test_linux_crontab_when_there_is_no_systemd_user(tmp_path):
    runner = Recorder({("systemctl", "--user", "show-environment"): 1})
    runner.crontab = "0 7 * * * backup.sh\n"
    plan = schedule.build("18:30", platform="linux", home=tmp_path, command=CMD, runner=runner)
    assert plan.system == "cron"
    schedule.turn_on(plan, runner)
    schedule.turn_on(schedule.build("19:00", platform="linux", home=tmp_path, command=CMD, runner=runner), runner)
    lines = runner.crontab.splitlines()
    assert lines[0] == "0 7 * * * backup.sh" and len(lines) == 2  # registering again replaces, others untouched
    import shlex

    fields = shlex.split(lines[1], comments=True)
    assert fields[:5] == ["0", "19", "*", "*", "*"] and fields[5:] == CMD
    assert "is registered" in schedule.status(plan, runner)
    schedule.turn_off(plan, runner)
    assert runner.crontab == "0 7 * * * backup.sh\n"
    assert "not registered" in schedule.status(plan, runner)


def test_a_failed_registration_is_one_line(tmp_path):
    plan = schedule.build("18:30", platform="win32", command=CMD)
    with pytest.raises(schedule.ScheduleError, match="schtasks /Create failed .boom."):
        schedule.turn_on(plan, Recorder({("schtasks", "/Create", "/SC"): 1}))


@pytest.mark.parametrize("bad", ["25:00", "6pm", "18:7", ""])
def test_a_bad_time_is_refused(bad):
    with pytest.raises(InputError, match="18:30"):
        schedule.parse_at(bad)
    r = run_cli("schedule", "on", "--at", bad)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1


def test_the_command_is_this_environments_lx_addin(tmp_path):
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    assert schedule.snapshot_command(str(python), windows=False) == [str(python), "-m", "xl_addin", "snapshot"]
    (tmp_path / "bin" / "lx-addin").touch()
    assert schedule.snapshot_command(str(python), windows=False) == [str(tmp_path / "bin" / "lx-addin"), "snapshot"]
