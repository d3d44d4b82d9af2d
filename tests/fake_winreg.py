"""An in-memory ``winreg`` with the real module's API shape, for the registry tests on Linux.

Same functions and argument order as CPython's ``winreg`` (OpenKey, CreateKeyEx, QueryValueEx,
SetValueEx, DeleteValue, DeleteKey, EnumKey, EnumValue, CloseKey), the same constants, and the
same behaviour where it matters for safety: key names are case-insensitive; a missing key or value
raises FileNotFoundError (WinError 2); a handle only does what its access mask allows
(PermissionError, WinError 5); ``EnumKey`` past the end raises OSError (WinError 259);
``CreateKeyEx`` opens an existing key as it is; ``DeleteKey`` refuses a key that has subkeys.
Every key is a node object, so a test can tell a key that survived from one that was recreated.
"""

from __future__ import annotations

HKEY_CLASSES_ROOT = 0x80000000
HKEY_CURRENT_USER = 0x80000001
HKEY_LOCAL_MACHINE = 0x80000002
KEY_QUERY_VALUE = 0x0001
KEY_SET_VALUE = 0x0002
KEY_CREATE_SUB_KEY = 0x0004
KEY_ENUMERATE_SUB_KEYS = 0x0008
KEY_NOTIFY = 0x0010
KEY_READ = 0x20019
KEY_WRITE = 0x20006
KEY_ALL_ACCESS = 0xF003F
REG_SZ = 1
REG_EXPAND_SZ = 2
REG_BINARY = 3
REG_DWORD = 4
REG_QWORD = 11


class Node:
    def __init__(self, name: str):
        self.name = name
        self.values: dict[str, tuple[str, object, int]] = {}  # lower name -> (name, value, type)
        self.subkeys: dict[str, Node] = {}  # lower name -> node

    def snapshot(self):
        return ({k: v for k, v in self.values.items()},
                {k: (n.name, n.snapshot()) for k, n in self.subkeys.items()})


class PyHKEY:
    def __init__(self, node: Node, access: int):
        self.node, self.access, self.closed = node, access, False

    def _need(self, right: int):
        if self.closed:
            raise OSError(6, "The handle is invalid")
        if not self.access & right:
            raise PermissionError(5, "Access is denied")

    def Close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.Close()
        return False


class FakeWinreg:
    """Use an instance where code expects the ``winreg`` module."""

    HKEY_CLASSES_ROOT, HKEY_CURRENT_USER, HKEY_LOCAL_MACHINE = HKEY_CLASSES_ROOT, HKEY_CURRENT_USER, HKEY_LOCAL_MACHINE
    KEY_QUERY_VALUE, KEY_SET_VALUE, KEY_CREATE_SUB_KEY = KEY_QUERY_VALUE, KEY_SET_VALUE, KEY_CREATE_SUB_KEY
    KEY_ENUMERATE_SUB_KEYS, KEY_NOTIFY, KEY_READ, KEY_WRITE, KEY_ALL_ACCESS = (
        KEY_ENUMERATE_SUB_KEYS, KEY_NOTIFY, KEY_READ, KEY_WRITE, KEY_ALL_ACCESS)
    REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD, REG_QWORD = REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD, REG_QWORD
    PyHKEYType = PyHKEY
    error = OSError

    def __init__(self):
        self.roots = {h: Node(str(h)) for h in (HKEY_CLASSES_ROOT, HKEY_CURRENT_USER, HKEY_LOCAL_MACHINE)}
        self.calls: list[tuple] = []

    # --- helpers for tests ---------------------------------------------------------
    def node(self, path: str, root=HKEY_CURRENT_USER) -> Node | None:
        n = self.roots[root]
        for part in filter(None, path.split("\\")):
            n = n.subkeys.get(part.lower())
            if n is None:
                return None
        return n

    def put(self, path: str, name: str, value, typ=REG_DWORD, root=HKEY_CURRENT_USER) -> Node:
        n = self.roots[root]
        for part in filter(None, path.split("\\")):
            n = n.subkeys.setdefault(part.lower(), Node(part))
        n.values[name.lower()] = (name, value, typ)
        return n

    # --- the winreg API ------------------------------------------------------------------
    def _base(self, key) -> Node:
        if isinstance(key, PyHKEY):
            if key.closed:
                raise OSError(6, "The handle is invalid")
            return key.node
        if key in self.roots:
            return self.roots[key]
        raise OSError(6, "The handle is invalid")

    def _walk(self, key, sub_key: str, create: bool) -> Node:
        n = self._base(key)
        for part in filter(None, (sub_key or "").split("\\")):
            nxt = n.subkeys.get(part.lower())
            if nxt is None:
                if not create:
                    raise FileNotFoundError(2, "The system cannot find the file specified")
                nxt = n.subkeys[part.lower()] = Node(part)
            n = nxt
        return n

    def OpenKey(self, key, sub_key, reserved=0, access=KEY_READ):
        self.calls.append(("OpenKey", sub_key, access))
        return PyHKEY(self._walk(key, sub_key, create=False), access)

    OpenKeyEx = OpenKey

    def CreateKeyEx(self, key, sub_key, reserved=0, access=KEY_WRITE):
        self.calls.append(("CreateKeyEx", sub_key, access))
        if isinstance(key, PyHKEY):
            key._need(KEY_CREATE_SUB_KEY)
        return PyHKEY(self._walk(key, sub_key, create=True), access)

    def CreateKey(self, key, sub_key):
        return self.CreateKeyEx(key, sub_key, 0, KEY_ALL_ACCESS)

    def CloseKey(self, hkey):
        hkey.Close()

    def QueryValueEx(self, key, value_name):
        key._need(KEY_QUERY_VALUE)
        try:
            _, value, typ = key.node.values[(value_name or "").lower()]
        except KeyError:
            raise FileNotFoundError(2, "The system cannot find the file specified") from None
        return value, typ

    def SetValueEx(self, key, value_name, reserved, type, value):
        key._need(KEY_SET_VALUE)
        if type == REG_DWORD and not (isinstance(value, int) and 0 <= value < 2**32):
            raise ValueError("Could not convert the data to the specified type.")
        self.calls.append(("SetValueEx", key.node.name, value_name, value))
        key.node.values[(value_name or "").lower()] = (value_name, value, type)

    def DeleteValue(self, key, value):
        key._need(KEY_SET_VALUE)
        self.calls.append(("DeleteValue", key.node.name, value))
        if key.node.values.pop((value or "").lower(), None) is None:
            raise FileNotFoundError(2, "The system cannot find the file specified")

    def DeleteKey(self, key, sub_key):
        parent_path, _, leaf = sub_key.rpartition("\\")
        parent = self._walk(key, parent_path, create=False)
        node = parent.subkeys.get(leaf.lower())
        if node is None:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        if node.subkeys:
            raise PermissionError(5, "Access is denied")
        self.calls.append(("DeleteKey", sub_key))
        del parent.subkeys[leaf.lower()]

    def EnumKey(self, key, index):
        key._need(KEY_ENUMERATE_SUB_KEYS)
        names = [n.name for n in key.node.subkeys.values()]
        if index >= len(names):
            raise OSError(259, "No more data is available")
        return names[index]

    def EnumValue(self, key, index):
        key._need(KEY_QUERY_VALUE)
        values = list(key.node.values.values())
        if index >= len(values):
            raise OSError(259, "No more data is available")
        return values[index]
