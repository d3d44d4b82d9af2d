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


def env_for(action: str, home: Path | None = None, os_name: str | None = None, environ=None, run=None) -> Path:
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
