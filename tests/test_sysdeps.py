"""`make test` says which system packages are missing and how to install them."""

import os
import subprocess
import sys

from conftest import ROOT


def test_report_names_what_is_missing_with_debian_and_macos_lines(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "sysdeps.py")], capture_output=True, text=True,
                       env={"PATH": str(tmp_path)}, timeout=60)  # nothing on PATH: everything is missing
    out = r.stdout
    assert r.returncode == 0 and "LibreOffice" in out and "gnome-keyring" in out
    debian = next(line for line in out.splitlines() if "Debian" in line)
    for pkg in ("libreoffice-calc", "gnome-keyring", "dbus-daemon", "shellcheck", "poppler-utils", "postgresql"):
        assert pkg in debian
    assert "make test-deps" in debian
    assert any("macOS" in line and "brew install" in line for line in out.splitlines())
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "sysdeps.py"), "--debian"], capture_output=True,
                       text=True, env={"PATH": str(tmp_path)}, timeout=60)
    assert r.stdout.split() == ["libreoffice-calc", "gnome-keyring", "dbus-daemon", "shellcheck", "poppler-utils",
                                "postgresql"]


def test_make_test_prints_the_report_before_pytest(tmp_path):
    r = subprocess.run(["make", "-n", "test"], capture_output=True, text=True, cwd=ROOT, timeout=60,
                       env=dict(os.environ))
    lines = r.stdout.splitlines()
    report = next(i for i, line in enumerate(lines) if "tests/sysdeps.py" in line)
    pytest_line = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    assert report < pytest_line
