"""What the install changed outside its own folder, so that the uninstall restores exactly that.

A small JSON file in our folder (``install-record.json``): the AccessVBOM values that were there
before we turned it on, and the files we created that another program could also own (the
AppleScript RunPython needs on macOS). A value is recorded before it is changed, and a reinstall
never replaces a recorded value with the current one (which would be ours).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .exceptions import InstallError


def load(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InstallError(f"cannot read {path} ({exc}); move it away and run this again") from None
    return data if isinstance(data, dict) else {}


def save(path: Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def remember(data: dict, section: str, values: dict) -> dict:
    """Add values not yet recorded; keep what an earlier install recorded."""
    known = data.setdefault(section, {})
    for k, v in values.items():
        known.setdefault(k, v)
    return data
