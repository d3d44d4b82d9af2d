"""The system packages the test suite needs, and how to get them (stdlib only).

    python tests/sysdeps.py              print what is missing and the install lines
    python tests/sysdeps.py --debian     print the Debian package names that are missing

`make test` prints the report before running; `make test-deps` installs the Debian
packages; tests/conftest.py repeats the report after a run that skipped tests.
"""

from __future__ import annotations

import shutil
import sys

#: (commands, any of which will do; Debian package; Homebrew install; what needs it)
NEEDS = (
    (("soffice", "libreoffice"), "libreoffice-calc", "brew install --cask libreoffice",
     "LibreOffice: templates, refreshed and frozen workbooks opened by a real spreadsheet"),
    (("gnome-keyring-daemon",), "gnome-keyring", None,
     "gnome-keyring: the keyring tests talk to a real Secret Service (Linux only)"),
    (("dbus-daemon", "dbus-run-session"), "dbus-daemon", None,
     "D-Bus: the session bus the Secret Service runs on (Linux only)"),
    (("shellcheck",), "shellcheck", "brew install shellcheck", "shellcheck: the installer scripts are linted"),
    (("pdftoppm",), "poppler-utils", "brew install poppler", "pdftoppm: render templates to PNG to look at them"),
    (("pg_ctlcluster", "initdb"), "postgresql", "brew install postgresql@15",
     "PostgreSQL: the desk store's tests run a real server (tests/pg_server.py)"),
)


def missing() -> list[tuple]:
    return [n for n in NEEDS if not any(shutil.which(c) for c in n[0])]


def report() -> list[str]:
    gone = missing()
    if not gone:
        return []
    lines = ["Some tests will be skipped: these system packages are missing:"]
    lines += [f"  - {why}" for *_, why in gone]
    debian = " ".join(n[1] for n in gone)
    lines.append(f"  Debian/Ubuntu: sudo apt-get install --no-install-recommends {debian}   (or: make test-deps)")
    brew = [n[2] for n in gone if n[2]]
    if brew:
        lines.append(f"  macOS:         {' && '.join(brew)}")
    if any(n[2] is None for n in gone) and sys.platform == "darwin":
        lines.append("  (the Secret Service tests run on Linux only; on macOS they are skipped)")
    return lines


if __name__ == "__main__":
    if "--debian" in sys.argv[1:]:
        print(" ".join(n[1] for n in missing()))
    else:
        print("\n".join(report()) or "System packages for the tests: all present.")
