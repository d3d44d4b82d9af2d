"""The desk database's password, kept like the token: in the OS keyring, nowhere else.

Under its own keyring service (:data:`SERVICE`, not the token's) and keyed by
``user@host:port/db``, so one machine can log in to several desk databases and the
token's entry is never touched. The password is held in a :class:`Password`, which
never shows itself in a repr, a log line or an exception; :meth:`Password.reveal` is
called in one place, when psycopg connects.
"""

from __future__ import annotations

from ..credentials import backend_name, keyring_backend, keyring_call, keyring_unusable
from ..exceptions import KeyringError
from .location import DeskURL

SERVICE = "xl_addin-desk-store"  # the token's service is "lixinger"


class Password:
    __slots__ = ("_value",)

    def __init__(self, value: str):
        if not value:
            raise ValueError("empty password")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Password(<redacted>)"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("a Password cannot be pickled")


WHAT = "the desk store password"


def stored_password(url: DeskURL) -> Password | None:
    """The password kept for this login, or None (then libpq's own ways apply, e.g. trust)."""
    with keyring_call("read", WHAT):
        backend = keyring_backend()
        if keyring_unusable(backend):
            return None
        value = backend.get_password(SERVICE, url.key)
    return Password(value) if value else None


def store_password(url: DeskURL, value: str) -> str:
    """Keep the password for this login; returns the keyring backend's name. Never a plain file."""
    password = Password(value)
    backend = keyring_backend(allow_plaintext=False)
    why = keyring_unusable(backend)
    if why:
        raise KeyringError(f"could not store {WHAT} in the system keyring ({why})")
    with keyring_call("store", WHAT):
        backend.set_password(SERVICE, url.key, password.reveal())
    return backend_name(backend)


def delete_password(url: DeskURL) -> bool:
    """Forget the password for this login; False when there was none."""
    backend = keyring_backend()
    if keyring_unusable(backend):
        return False
    with keyring_call("delete", WHAT):
        if backend.get_password(SERVICE, url.key) is None:
            return False
        backend.delete_password(SERVICE, url.key)
    return True
