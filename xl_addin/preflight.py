"""What the installers ask Python before they touch anything: is Excel running, where does the environment go.

``python -m xl_addin.preflight install|uninstall`` runs with the system Python and the source folder
on ``PYTHONPATH``, before the private environment exists (standard library only). It prints the
environment's folder on one line, or says why not on stderr and exits 1. Keeping these decisions here
keeps PowerShell and sh down to "find Python, make the environment, call lx-addin".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .excel_process import ensure_excel_closed
from .exceptions import InstallError, LixingerError
from .install_paths import check_mac_interpreter, env_dir, target_os


def _made_with(venv: Path) -> tuple[int, int] | None:
    """(major, minor) of the Python that made *venv*, from its pyvenv.cfg."""
    try:
        lines = (venv / "pyvenv.cfg").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip().lower() in ("version", "version_info"):
            parts = value.strip().split(".")
            if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                return int(parts[0]), int(parts[1])
    return None


def env_for(action: str, home: Path | None = None, os_name: str | None = None, environ=None, run=None,
            python_version: tuple[int, int] | None = None) -> Path:
    """The environment's folder; raises when Excel runs or the folder cannot be (re)used."""
    os_name = os_name or target_os()
    home = Path(home) if home else Path.home()
    if run is None:
        ensure_excel_closed(os_name)
    else:
        ensure_excel_closed(os_name, run)
    venv = env_dir(home, os_name, environ)
    if action == "install" and os_name == "macos":
        check_mac_interpreter(venv / "bin" / "python")
    if venv.is_dir() and any(venv.iterdir()) and not (venv / "pyvenv.cfg").exists():
        raise InstallError(f"{venv} exists and is not a Python environment: choose a new folder "
                           "(XL_ADDIN_ENV_DIR) and run this again")
    # Windows venvs keep packages in Lib\site-packages, the same folder for every Python version:
    # `python -m venv` over one made by another version keeps its compiled packages, which then fail to import
    made, now = _made_with(venv), tuple(python_version or sys.version_info[:2])
    if action == "install" and os_name == "windows" and made is not None and made != now:
        raise InstallError(
            f"{venv} was made with Python {made[0]}.{made[1]} and this installer found Python {now[0]}.{now[1]}: "
            "run install\\uninstall.cmd -KeepToken first (your token stays), then this again")
    return venv


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m xl_addin.preflight",
        description="Checks Excel is closed and prints where the private environment goes.",
        epilog="example: PYTHONPATH=. python3 -m xl_addin.preflight install",
    )
    parser.add_argument("action", choices=("install", "uninstall"))
    args = parser.parse_args(argv)
    try:
        print(env_for(args.action))
    except LixingerError as exc:
        print(f"lx-addin: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
