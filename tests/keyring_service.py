"""A real Secret Service for the keyring tests: gnome-keyring on a D-Bus session bus.

In CI, `.ci/run` starts the bus with `dbus-run-session` and unlocks gnome-keyring in it;
when no bus is there (a developer's `make test`), a private one is started here.
Either way, the keyring's files live in a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

BACKEND = "keyring.backends.SecretService.Keyring"


def _works(env: dict) -> bool:
    probe = (
        "import keyring.backends.SecretService as s, sys;"
        "k = s.Keyring(); k.set_password('xl-addin-probe', 'p', 'v');"
        "ok = k.get_password('xl-addin-probe', 'p') == 'v'; k.delete_password('xl-addin-probe', 'p');"
        "sys.exit(0 if ok else 1)"
    )
    import sys

    try:
        r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0


class SecretService:
    """Context manager: yields the environment variables a process needs to use it."""

    def __init__(self):
        self._procs: list[subprocess.Popen] = []
        self._tmp = None
        self.env: dict[str, str] = {}
        self.why_not = ""

    def __enter__(self) -> "SecretService":
        base = dict(os.environ)
        if base.get("DBUS_SESSION_BUS_ADDRESS") and _works(base):
            self.env = {"DBUS_SESSION_BUS_ADDRESS": base["DBUS_SESSION_BUS_ADDRESS"]}
            return self
        missing = [b for b in ("dbus-daemon", "gnome-keyring-daemon") if not shutil.which(b)]
        if missing:
            self.why_not = f"not installed: {', '.join(missing)} (CI installs them: .ci/run)"
            return self
        self._tmp = tempfile.mkdtemp(prefix="lx-keyring-")
        bus = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self._procs.append(bus)
        address = bus.stdout.readline().strip()
        env = dict(base, DBUS_SESSION_BUS_ADDRESS=address, XDG_DATA_HOME=self._tmp, XDG_RUNTIME_DIR=self._tmp)
        keyring = subprocess.Popen(
            ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        keyring.stdin.write(b"lx-test-keyring-password")
        keyring.stdin.close()
        self._procs.append(keyring)
        for _ in range(50):
            if _works(env):
                self.env = {"DBUS_SESSION_BUS_ADDRESS": address}
                return self
            time.sleep(0.2)
        self.why_not = "gnome-keyring did not come up on a private D-Bus session"
        return self

    def __exit__(self, *exc) -> None:
        for p in reversed(self._procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
