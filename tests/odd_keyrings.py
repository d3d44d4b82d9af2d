"""Keyring backends that fail the ways real ones do, for the failure-mode tests.

Loaded by name through keyring's own PYTHON_KEYRING_BACKEND mechanism.
"""

from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked, PasswordSetError


class LockedKeyring(KeyringBackend):
    priority = 1

    def get_password(self, service, username):
        raise KeyringLocked("Failed to unlock the collection!")

    def set_password(self, service, username, password):
        raise KeyringLocked("Failed to unlock the collection!")

    def delete_password(self, service, username):
        raise KeyringLocked("Failed to unlock the collection!")


class SizeLimitedKeyring(KeyringBackend):
    """Windows Credential Manager refuses blobs over 2,560 bytes (error 1783)."""

    priority = 1

    def get_password(self, service, username):
        return None

    def set_password(self, service, username, password):
        raise PasswordSetError("(1783, 'CredWrite', 'The stub received bad data.')")

    def delete_password(self, service, username):
        raise PasswordSetError("nothing")


class BrokenBusKeyring(KeyringBackend):
    """A Secret Service whose D-Bus connection drops: errors that are not keyring's own."""

    priority = 1

    def get_password(self, service, username):
        raise RuntimeError("org.freedesktop.DBus.Error.NoReply")

    def set_password(self, service, username, password):
        raise RuntimeError("org.freedesktop.DBus.Error.NoReply")

    def delete_password(self, service, username):
        raise RuntimeError("org.freedesktop.DBus.Error.NoReply")
