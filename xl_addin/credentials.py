"""Credentials: where the token comes from (the environment, else the OS keyring), and how it is kept.

Every keyring call goes through :func:`keyring_call`, so that a keyring's errors (locked,
dismissed, a D-Bus failure that surfaces as anything) become one :class:`KeyringError` that
says what could not be done, worded the same for reading, storing and deleting.
"""

from __future__ import annotations

import contextlib
import os
import sys

from .config import TOKEN_ENV, env_token, profile_setting
from .exceptions import KeyringError, NoTokenError
from .secret import REDACTED, RUN, Token, redact, redact_deep  # noqa: F401  (they lived here)


# --- where the token comes from: an ordered chain --------------------------------------

SERVICE = "lixinger"
ENV_VAR = TOKEN_ENV  # the older name, kept for callers


PLAINTEXT_HOW = "run `lx-addin token set --allow-plaintext` to keep it in a plain file anyway"


def keyring_backend(allow_plaintext: bool = True):
    """keyring's backend; with *allow_plaintext* False, never one that writes the token
    to a plain file unless the user chose that backend (PYTHON_KEYRING_BACKEND or
    keyringrc.cfg). A test-only package such as keyrings.alt must not change where a
    token goes: when keyring picked a plaintext store by itself, take the best other one."""
    import keyring
    import keyring.backend as kb
    from keyring.backends import fail

    backend = keyring.get_keyring()
    if allow_plaintext or not _writes_plaintext(backend) or _user_chose_backend():
        return backend
    safe = [k for k in kb.get_all_keyring()
            if k.priority > 0 and not _writes_plaintext(k) and "chainer" not in backend_name(k)]
    return max(safe, key=kb.by_priority, default=fail.Keyring())


def _writes_plaintext(backend) -> bool:
    """A plaintext store, or a chain that would fall back to one."""
    return is_plaintext(backend) or any(is_plaintext(b) for b in getattr(backend, "backends", ()) or ())


def _user_chose_backend() -> bool:
    if os.environ.get("PYTHON_KEYRING_BACKEND", "").strip():
        return True
    try:
        import keyring.core as kc

        return kc.load_config() is not None
    except Exception:  # an unreadable keyringrc is not a choice
        return False


def backend_name(backend=None) -> str:
    backend = backend or keyring_backend()
    cls = type(backend)
    return f"{cls.__module__}.{cls.__name__}"


def keyring_unusable(backend) -> str | None:
    """Why this backend cannot hold a token, or None when it can."""
    name = backend_name(backend)
    if name.startswith("keyring.backends.fail") or name.startswith("keyring.backends.null"):
        return (
            "no system keyring is available on this machine (on Linux, install and unlock "
            "a Secret Service such as gnome-keyring)"
        )
    return None


def is_plaintext(backend) -> bool:
    name = backend_name(backend)
    return name.startswith("keyrings.alt.file") or "Plaintext" in name


def _translate(exc: Exception, action: str, what: str = "the token") -> KeyringError:
    import keyring.errors as ke

    if isinstance(exc, ke.NoKeyringError):
        why = "no system keyring is available"
    elif isinstance(exc, ke.KeyringLocked):
        why = "the keyring is locked; unlock it and try again"
    elif isinstance(exc, ke.InitError):
        why = "the keyring could not be opened"
    elif isinstance(exc, ke.PasswordSetError):
        why = "the keyring refused to store it"
        if "1783" in str(exc) or "too" in str(exc).lower():
            why += " (too long for Windows Credential Manager)"
    elif isinstance(exc, ke.PasswordDeleteError):
        why = f"there is no {what.removeprefix('the ')} in the keyring to delete"
    else:
        why = "the keyring was dismissed or failed"
    return KeyringError(f"could not {action} {what} in the system keyring: {why}")


def keyring_token(profile: str = "default") -> Token | None:
    """The token stored for *profile*, None if there is none."""
    with keyring_call("read"):
        chosen = keyring_backend()
        if keyring_unusable(chosen):
            return None
        value = chosen.get_password(SERVICE, profile)
    if value and value.strip():
        return Token(value, source=f"keyring ({backend_name(chosen)}, profile {profile})")
    return None


def resolve_token(profile: str | None = None, environ=None) -> Token:
    """``LIXINGER_TOKEN``, else the keyring entry for *profile*, else a NoTokenError
    that says how to set one."""
    profile = profile or profile_setting(environ)
    value = env_token(environ)
    if value:
        return Token(value, source=f"environment ({ENV_VAR})")
    try:
        found = keyring_token(profile)
    except KeyringError as exc:
        raise NoTokenError(f"No Lixinger token ({exc})") from None
    if found is not None:
        return found
    where = f" for profile {profile!r}" if profile != "default" else ""
    raise NoTokenError(f"No Lixinger token found{where}")


def store_token(value: str, profile: str = "default", allow_plaintext: bool = False) -> str:
    """Keep *value* in the keyring; returns the backend's name. A plaintext file store
    is used only when allowed here or chosen by the user in keyring's own settings."""
    token = Token(value)
    chosen = keyring_backend(allow_plaintext)
    why = keyring_unusable(chosen)
    if why and _writes_plaintext(keyring_backend()):
        raise KeyringError(
            f"refusing to store the token in a plain file: {why}; "
            f"set the {ENV_VAR} environment variable instead, or {PLAINTEXT_HOW}"
        )
    if why:
        raise KeyringError(f"cannot store the token: {why}; set the {ENV_VAR} environment variable instead")
    with keyring_call("store"):
        chosen.set_password(SERVICE, profile, token.reveal())
    return backend_name(chosen)


def delete_token(profile: str = "default") -> bool:
    """Remove the keyring entry; False when there was none."""
    import keyring.errors as ke

    chosen = keyring_backend()
    if keyring_unusable(chosen):
        return False
    with keyring_call("delete"):
        if chosen.get_password(SERVICE, profile) is None:
            return False
        try:
            chosen.delete_password(SERVICE, profile)
        except ke.PasswordDeleteError:
            return False
    return True


def stores_in_plain_file(allow_plaintext: bool = False) -> bool:
    """Whether the backend :func:`store_token` uses (with *allow_plaintext*) keeps the token in a plain file."""
    return is_plaintext(keyring_backend(allow_plaintext))


@contextlib.contextmanager
def keyring_call(action: str, what: str = "the token"):
    """Run keyring calls: their errors become one KeyringError saying that *what* could not be
    *action*-ed ("read", "store", "delete"), and why, never with the secret in it. The desk
    store's password (:mod:`xl_addin.store.password`) goes through here too."""
    import keyring.errors as ke

    try:
        yield
    except ke.KeyringError as exc:
        raise _translate(exc, action, what) from None
    except KeyringError:
        raise
    except Exception as exc:  # D-Bus and platform errors surface as anything
        preposition = {"read": "from", "store": "in", "delete": "from"}[action]
        raise KeyringError(f"could not {action} {what} {preposition} the system keyring "
                           f"({type(exc).__name__})") from None





def read_secret(prompt: str, stdin=None) -> str:
    """A secret typed at a terminal (without echo, after *prompt*) or the first line piped in,
    without its line ending."""
    stdin = sys.stdin if stdin is None else stdin
    if stdin.isatty():
        import getpass

        return getpass.getpass(prompt)
    return stdin.readline().rstrip("\r\n")


def prompt_token(stdin=None) -> str:
    """A token typed at a terminal (without echo) or the first line piped in; a LixingerError when empty."""
    from .exceptions import LixingerError

    value = read_secret("Lixinger token (input hidden): ", stdin).strip()
    if not value:
        raise LixingerError("no token given: nothing was stored")
    return value
