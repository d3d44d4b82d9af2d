"""Excel's "Trust access to the VBA project object model" (AccessVBOM), through ``winreg``.

Importing the ``=LX_MMAH`` wrappers into the add-in needs this one value,
``HKCU\\Software\\Microsoft\\Office\\<version>\\Excel\\Security\\AccessVBOM`` = 1. The key also holds
the user's macro security level, Protected View and Trusted Locations, so it is opened (or
created if missing) with ``CreateKeyEx``, which never deletes or empties an existing key, and
only this value is written, only after the user agreed. The value it had before is handed back
so that the uninstall can put it back. A Group Policy value under ``Software\\Policies`` wins
over the user's; it is read, never written.

``reg`` is the ``winreg`` module, or a stand-in with the same API in tests.
"""

from __future__ import annotations

import re

OFFICE = r"Software\Microsoft\Office"
POLICY = r"Software\Policies\Microsoft\Office"
VALUE = "AccessVBOM"
_VERSION = re.compile(r"^\d+\.\d+$")


def security_key(version: str, root: str = OFFICE) -> str:
    return rf"{root}\{version}\Excel\Security"


def _subkeys(reg, path: str) -> list[str]:
    try:
        key = reg.OpenKey(reg.HKEY_CURRENT_USER, path, 0, reg.KEY_READ)
    except OSError:
        return []
    names, i = [], 0
    with key:
        while True:
            try:
                names.append(reg.EnumKey(key, i))
            except OSError:  # ERROR_NO_MORE_ITEMS
                return names
            i += 1


def excel_versions(reg) -> list[str]:
    """Office versions ("16.0") under which Excel has kept settings for this user."""
    return sorted(v for v in _subkeys(reg, OFFICE) if _VERSION.match(v) and "Excel" in _subkeys(reg, rf"{OFFICE}\{v}"))


def read_value(reg, path: str, name: str = VALUE):
    """The value, or None when the key or the value does not exist."""
    try:
        with reg.OpenKey(reg.HKEY_CURRENT_USER, path, 0, reg.KEY_READ) as key:
            return reg.QueryValueEx(key, name)[0]
    except FileNotFoundError:
        return None


def current(reg, versions) -> dict[str, int | None]:
    return {v: read_value(reg, security_key(v)) for v in versions}


def trusted(reg, versions) -> bool:
    return bool(versions) and all(value == 1 for value in current(reg, versions).values())


def blocked_by_policy(reg, versions) -> bool:
    """IT turned it off by Group Policy: the user's own value is ignored."""
    return any(read_value(reg, security_key(v, POLICY)) == 0 for v in versions)


def _set(reg, version: str, value: int) -> None:
    with reg.CreateKeyEx(reg.HKEY_CURRENT_USER, security_key(version), 0,
                         reg.KEY_QUERY_VALUE | reg.KEY_SET_VALUE) as key:
        reg.SetValueEx(key, VALUE, 0, reg.REG_DWORD, value)


def turn_on(reg, versions) -> None:
    """AccessVBOM = 1 for each version; every other value under Security stays as it was."""
    for v in versions:
        _set(reg, v, 1)


def restore(reg, prior: dict[str, int | None]) -> list[str]:
    """Put back what was there before we turned it on, unless the user has changed it since."""
    restored = []
    for version, old in prior.items():
        path = security_key(version)
        if read_value(reg, path) != 1 or old == 1:
            continue
        if old is None:
            with reg.OpenKey(reg.HKEY_CURRENT_USER, path, 0, reg.KEY_SET_VALUE) as key:
                reg.DeleteValue(key, VALUE)
        else:
            _set(reg, version, old)
        restored.append(version)
    return restored
