"""The installers offer the daily snapshot: `lx-addin schedule offer` decides (already registered? a
terminal to ask in? the installer's flag), install.sh and install.ps1 only pass their flag on.

Nothing is ever registered: the Python side runs against a recording runner (the plans are
schedule.py's own, for each OS); install.sh runs for real with a stand-in Python whose environment's
`lx-addin` records how it is called; install.ps1 is read with tree-sitter-powershell."""

import plistlib
import stat
import subprocess
import sys

import pytest
import tree_sitter_powershell
from tree_sitter import Language, Parser

from conftest import ROOT, run_cli
from xl_addin import schedule
from xl_addin.schedule import LABEL, ScheduleError, build, offer

INSTALL = ROOT / "install"
COMMAND = ["/opt/xl/venv/bin/lx-addin", "snapshot"]


class Runner:
    """Records every command; answers the status query as *registered* says, the rest with *rc*."""

    def __init__(self, registered=False, rc=0, stderr=""):
        self.calls, self.registered, self.rc, self.stderr = [], registered, rc, stderr

    def __call__(self, args, input=None):
        self.calls.append(list(args))
        if args[:2] == ["systemctl", "--user"] and args[2] == "show-environment":
            return subprocess.CompletedProcess(args, 0, "", "")
        query = args[:3] in (["schtasks", "/Query", "/TN"], ["launchctl", "print", args[2] if len(args) > 2 else ""],
                             ["systemctl", "--user", "is-enabled"])
        if query:
            return subprocess.CompletedProcess(args, 0 if self.registered else 1, "", "")
        if args == ["crontab", "-l"]:
            return subprocess.CompletedProcess(args, 0, f"1 2 * * * x {schedule.CRON_MARK}\n" if self.registered else "", "")
        return subprocess.CompletedProcess(args, self.rc, "", self.stderr)


def registering(calls):
    return [c for c in calls if c[:2] in (["schtasks", "/Create"], ["launchctl", "bootstrap"])
            or c[:3] == ["systemctl", "--user", "enable"] or c == ["crontab", "-"]]


@pytest.mark.parametrize("platform", ["win32", "darwin", "linux"])
def test_yes_registers_the_os_scheduler_entry_without_asking(platform, tmp_path):
    runner = Runner()
    plan = build("18:30", platform=platform, home=tmp_path, command=COMMAND, runner=runner)
    asked = []
    line = offer(plan, True, ask=asked.append, runner=runner)
    assert not asked and line.startswith("The snapshot runs every day at 18:30")
    assert registering(runner.calls), runner.calls
    if platform == "win32":
        assert ["schtasks", "/Create", "/SC", "DAILY", "/ST", "18:30", "/TN", schedule.NAME,
                "/TR", " ".join(COMMAND), "/F"] in runner.calls
    if platform == "darwin":
        plist = plistlib.loads((tmp_path / "Library" / "LaunchAgents" / f"{LABEL}.plist").read_bytes())
        assert plist["ProgramArguments"] == COMMAND and plist["StartCalendarInterval"] == {"Hour": 18, "Minute": 30}


def test_no_registers_nothing_and_asks_nothing(tmp_path):
    runner = Runner()
    plan = build("18:30", platform="win32", command=COMMAND, runner=runner)
    line = offer(plan, False, ask=lambda q: pytest.fail("asked"), runner=runner)
    assert runner.calls == [] and "`lx-addin schedule on` registers it later" in line


@pytest.mark.parametrize("answer", [True, False])
def test_without_a_flag_it_asks_once_and_does_what_the_answer_says(answer, tmp_path):
    runner = Runner()
    plan = build("19:05", platform="darwin", home=tmp_path, command=COMMAND, runner=runner)
    questions = []

    def ask(question):
        questions.append(question)
        return answer

    offer(plan, None, ask=ask, runner=runner)
    assert len(questions) == 1 and "every day at 19:05" in questions[0] and "lx-addin schedule on" in questions[0]
    assert bool(registering(runner.calls)) is answer
    assert (tmp_path / "Library" / "LaunchAgents" / f"{LABEL}.plist").exists() is answer


def test_not_a_terminal_registers_nothing_and_says_how(tmp_path):
    runner = Runner()
    plan = build("18:30", platform="win32", command=COMMAND, runner=runner)
    line = offer(plan, None, ask=None, runner=runner)
    assert not registering(runner.calls) and line.startswith("Not a terminal") and "lx-addin schedule on" in line


@pytest.mark.parametrize("choice", [None, True])
def test_an_existing_registration_is_left_as_it_is_and_nobody_is_asked(choice, tmp_path):
    runner = Runner(registered=True)
    plan = build("18:30", platform="linux", home=tmp_path, command=COMMAND, runner=runner)  # systemd here
    for path, data in plan.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    line = offer(plan, choice, ask=lambda q: pytest.fail("asked"), runner=runner)
    assert "already registered" in line and not registering(runner.calls)


def test_a_scheduler_that_refuses_is_one_line():
    runner = Runner(rc=1, stderr="ERROR: Access is denied.\n")
    plan = build("18:30", platform="win32", command=COMMAND, runner=runner)
    with pytest.raises(ScheduleError) as err:
        offer(plan, True, runner=runner)
    assert str(err.value) == "schtasks /Create failed (ERROR: Access is denied.)"


def test_cli_offer_flags_and_their_one_line_refusals():
    r = run_cli("schedule", "offer", "--no")
    assert r.returncode == 0 and "was not registered" in r.stdout
    r = run_cli("schedule", "on", "--yes")
    assert r.returncode == 1 and r.stderr.strip() == "lx-addin: --yes and --no are for `schedule offer`, not `schedule on`"
    r = run_cli("schedule", "offer", "--yes", "--no")
    assert r.returncode == 1 and "not both" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "lx-addin schedule offer --yes" in run_cli("schedule", "--help").stdout


def test_cli_offer_asks_with_yes_as_the_default(monkeypatch, capsys):
    """The question as a user sees it (a terminal): [Y/n]; here answered "n", so nothing is registered."""
    from xl_addin import cli

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    prompts = []
    monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or "n")
    monkeypatch.setattr(schedule, "_registered", lambda plan, runner=None: (False, ""))
    assert cli.main(["schedule", "offer"]) == 0
    assert len(prompts) == 1 and prompts[0].endswith("[Y/n] ")
    assert "was not registered" in capsys.readouterr().out
    assert cli._ask_yes.__doc__ and "default (Return) is yes" in cli._ask_yes.__doc__
    monkeypatch.setattr("builtins.input", lambda prompt: "")
    assert cli._ask_yes("?") is True  # Return: yes
    monkeypatch.setattr("builtins.input", lambda prompt: (_ for _ in ()).throw(EOFError()))
    assert cli._ask_yes("?") is False  # end of input: no


# -- install.sh, run with a stand-in Python --------------------------------------------------------
FAKE_PYTHON = """#!/bin/bash
# a stand-in python3.13: the real one for the version check and the preflight; a stand-in environment for -m venv
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  printf '#!/bin/bash\\nexit 0\\n' > "$3/bin/python"
  printf '#!/bin/bash\\necho "$*" >> "%s"\\nif [ "$1" = schedule ]; then exit "${FAKE_SCHEDULE_RC:-0}"; fi\\n' "$LX_LOG" > "$3/bin/lx-addin"
  chmod +x "$3/bin/python" "$3/bin/lx-addin"
  exit 0
fi
exec "%(real)s" "$@"
"""


def run_install_sh(tmp_path, *args, env=None):
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "python3.13"
    fake.write_text(FAKE_PYTHON.replace("%(real)s", sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "lx-addin.log"
    log.unlink(missing_ok=True)
    full = {"HOME": str(tmp_path / "home"), "PATH": f"{bin_dir}:/usr/bin:/bin", "LX_LOG": str(log),
            "XDG_DATA_HOME": "", **(env or {})}
    (tmp_path / "home").mkdir(exist_ok=True)
    r = subprocess.run(["bash", str(INSTALL / "install.sh"), *args], capture_output=True, text=True, env=full,
                       stdin=subprocess.DEVNULL, timeout=120)
    return r, (log.read_text().splitlines() if log.exists() else [])


@pytest.mark.parametrize("args, offered", [
    ((), "schedule offer"),
    (("--schedule",), "schedule offer --yes"),
    (("--no-token", "--no-schedule"), "schedule offer --no"),
])
def test_install_sh_offers_the_schedule_after_the_install_passing_its_flag(tmp_path, args, offered):
    r, calls = run_install_sh(tmp_path, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert calls == [("install --no-token" if "--no-token" in args else "install"), offered]


def test_install_sh_is_done_even_when_the_scheduler_refuses(tmp_path):
    r, calls = run_install_sh(tmp_path, "--schedule", env={"FAKE_SCHEDULE_RC": "1"})
    assert r.returncode == 0 and calls[-1] == "schedule offer --yes"
    assert "The install is done; to take a snapshot every day later:" in r.stderr and "schedule on" in r.stderr


def test_install_sh_help_names_the_schedule_flags(tmp_path):
    r, _ = run_install_sh(tmp_path, "--help")
    assert r.returncode == 0 and "--schedule | --no-schedule" in r.stdout and "schedule offer" in r.stdout
    r, calls = run_install_sh(tmp_path, "--schedul")
    assert r.returncode == 2 and calls == []


# -- install.ps1, read with a PowerShell grammar ------------------------------------------------------
def _walk(node):
    yield node
    for child in node.children:
        yield from _walk(child)


def test_install_ps1_offers_the_schedule_after_the_install_with_its_switches():
    src = (INSTALL / "install.ps1").read_bytes()
    tree = Parser(Language(tree_sitter_powershell.language())).parse(src)
    assert not any(n.type == "ERROR" or n.is_missing for n in _walk(tree.root_node))
    params = {n.text.decode().lower() for n in _walk(tree.root_node) if n.type == "parameter_list"
              for n in _walk(n) if n.type == "variable"}
    assert {"$schedule", "$noschedule"} <= params
    commands = [n for n in _walk(tree.root_node) if n.type == "command"]
    texts = [n.text.decode() for n in commands]
    install = next(i for i, t in enumerate(texts) if t.startswith("Invoke-Checked $LxAddin $installArgs"))
    offer_call = next(i for i, t in enumerate(texts) if t.strip() == "& $LxAddin @scheduleArgs")
    assert install < offer_call  # after the install (and so after the token)
    code = src.decode()
    assert "$scheduleArgs = @('schedule', 'offer')" in code
    assert "if ($Schedule) { $scheduleArgs += '--yes' }" in code and "if ($NoSchedule) { $scheduleArgs += '--no' }" in code
    # the install is done either way: the offer's failure is said, not thrown (no Invoke-Checked)
    assert not any(t.startswith("Invoke-Checked") and "scheduleArgs" in t for t in texts)
    assert ".PARAMETER Schedule" in code and ".PARAMETER NoSchedule" in code


def test_install_cmd_passes_its_arguments_to_install_ps1():
    assert b'install.ps1" %*' in (INSTALL / "install.cmd").read_bytes()
