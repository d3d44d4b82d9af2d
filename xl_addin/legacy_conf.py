"""Clean up what versions before 0.2 wrote into ``~/.xlwings/xlwings.conf``.

That file belongs to xlwings' own add-in (``xlwings.xlam``) and to every xlwings user on the PC;
ours reads its own config sheet first (see :mod:`xl_addin.addin_build`), so we no longer write it.
Earlier versions put ``INTERPRETER_WIN``/``INTERPRETER_MAC`` (our environment's Python) and
``UDF MODULES`` (``xl_addin.udfs``) there. Install and uninstall remove exactly those keys, and
only while they still hold our values; every other line stays byte for byte. The file is read
the way xlwings reads it: the first two quoted strings of a line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PureWindowsPath

UDF_MODULES = "xl_addin.udfs"
INTERPRETER_KEYS = ("INTERPRETER_WIN", "INTERPRETER_MAC")


def conf_path(home: Path) -> Path:
    return Path(home) / ".xlwings" / "xlwings.conf"


def _pair(line: str):
    values = re.findall(r'"[^"]*"', line)
    return (values[0].strip('"'), values[1].strip('"')) if len(values) >= 2 else None


def _under(value: str, folders) -> bool:
    for folder in folders:
        f = str(folder)
        if "\\" in value or "\\" in f:
            v, f2 = str(PureWindowsPath(value)).lower(), str(PureWindowsPath(f)).lower()
            if v.startswith(f2.rstrip("\\") + "\\"):
                return True
        elif value.startswith(f.rstrip("/") + "/"):
            return True
    return False


def ours(key: str, value: str, interpreters, env_dirs) -> bool:
    key = key.upper()
    if key == "UDF MODULES":
        return value == UDF_MODULES
    if key in INTERPRETER_KEYS:
        return value in interpreters or _under(value, env_dirs)
    return False


def remove_our_keys(path: Path, interpreters, env_dirs) -> list[str]:
    """Drop our keys (still holding our values) from the file; returns the keys removed."""
    path = Path(path)
    if not path.exists():
        return []
    kept, removed = [], []
    for line in path.read_bytes().splitlines(keepends=True):
        pair = _pair(line.decode("utf-8", errors="replace"))
        if pair and ours(pair[0], pair[1], set(interpreters), env_dirs):
            removed.append(pair[0])
        else:
            kept.append(line)
    if not removed:
        return []
    if not b"".join(kept).strip():
        path.unlink()
        return removed
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(b"".join(kept))
    os.replace(tmp, path)
    return removed
