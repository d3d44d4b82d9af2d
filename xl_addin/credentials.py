"""Credentials: the token as a value that never shows itself, and where it comes from."""

from __future__ import annotations

import os

from .exceptions import KeyringError, NoTokenError


class Token:
    """A Lixinger token. ``str()``/``repr()`` never reveal it; :meth:`reveal` does,
    and is called in exactly one place: building the request body."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "given"):
        value = (value or "").strip()
        if not value:
            raise ValueError("empty token")
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def masked(self) -> str:
        """First 4 and last 4 characters at most; shorter tokens show less."""
        v = self._value
        if len(v) >= 16:
            return f"{v[:4]}…{v[-4:]}"
        if len(v) >= 8:
            return f"{v[:2]}…{v[-2:]}"
        return "…"

    def __repr__(self) -> str:
        return f"Token(<redacted>, source={self.source!r})"

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        return isinstance(other, Token) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):  # never pickled into a cache or a file
        raise TypeError("a Token cannot be pickled")


REDACTED = "<redacted>"
RUN = 8  # any run of this many characters of the token is the token


def redact(text: str, *tokens: "Token | str | None") -> str:
    """*text* with every token, and every run of 8 or more of its characters (a token
    cut in two, or half of one), replaced by ``<redacted>``.

    Redact before cutting a text short: a cut made first can leave a part of the token
    that no longer matches the whole.
    """
    for tok in tokens:
        raw = tok.reveal() if isinstance(tok, Token) else tok
        if raw and len(raw) >= 4:
            text = text.replace(raw, REDACTED)
            if len(raw) > RUN and len(text) >= RUN:
                text = _redact_runs(text, raw)
    return text


def _redact_runs(text: str, secret: str) -> str:
    grams = {secret[i : i + RUN] for i in range(len(secret) - RUN + 1)}
    out: list[str] = []
    start = i = 0
    end = len(text) - RUN
    while i <= end:
        if text[i : i + RUN] in grams:
            j = i + RUN
            while j < len(text) and text[i : j + 1] in secret:
                j += 1
            out.append(text[start:i])
            out.append(REDACTED)
            start = i = j
        else:
            i += 1
    if not out:
        return text
    out.append(text[start:])
    return "".join(out)


def redact_deep(value, *tokens: "Token | str | None"):
    """A JSON value (dicts, lists, text, numbers) with :func:`redact` applied to every
    text in it, keys included: for what we keep, such as an answer's records."""
    seen: dict[str, str] = {}  # records repeat their keys: each distinct text is looked at once

    def text(s: str) -> str:
        out = seen.get(s)
        if out is None:
            out = seen[s] = redact(s, *tokens)
        return out

    def walk(v):
        if isinstance(v, str):
            return text(v)
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {text(k) if isinstance(k, str) else k: walk(x) for k, x in v.items()}
        return v

    return walk(value)


# --- where the token comes from: an ordered chain --------------------------------------

SERVICE = "lixinger"
ENV_VAR = "LIXINGER_TOKEN"


PLAINTEXT_HOW = "run `lx-addin token set --allow-plaintext` to keep it in a plain file anyway"


def _backend(allow_plaintext: bool = True):
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
    backend = backend or _backend()
    cls = type(backend)
    return f"{cls.__module__}.{cls.__name__}"


def _keyring_unusable(backend) -> str | None:
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


def _translate(exc: Exception, action: str) -> KeyringError:
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
        why = "there is no token in the keyring to delete"
    else:
        why = "the keyring was dismissed or failed"
    return KeyringError(f"could not {action} the token in the system keyring: {why}")


def keyring_token(profile: str = "default") -> Token | None:
    """The token stored for *profile*, None if there is none."""
    import keyring.errors as ke

    try:
        backend = _backend()
        if _keyring_unusable(backend):
            return None
        value = backend.get_password(SERVICE, profile)
    except ke.KeyringError as exc:
        raise _translate(exc, "read") from None
    except Exception as exc:  # D-Bus and platform errors surface as anything
        raise KeyringError(f"could not read the token from the system keyring ({type(exc).__name__})") from None
    if value and value.strip():
        return Token(value, source=f"keyring ({backend_name(backend)}, profile {profile})")
    return None


def resolve_token(profile: str | None = None, environ=None) -> Token:
    """``LIXINGER_TOKEN``, else the keyring entry for *profile*, else a NoTokenError
    that says how to set one."""
    env = os.environ if environ is None else environ
    profile = profile or env.get("XL_ADDIN_PROFILE", "").strip() or "default"
    value = env.get(ENV_VAR, "").strip()
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
    import keyring.errors as ke

    token = Token(value)
    backend = _backend(allow_plaintext)
    why = _keyring_unusable(backend)
    if why and _writes_plaintext(_backend()):
        raise KeyringError(
            f"refusing to store the token in a plain file: {why}; "
            f"set the {ENV_VAR} environment variable instead, or {PLAINTEXT_HOW}"
        )
    if why:
        raise KeyringError(f"cannot store the token: {why}; set the {ENV_VAR} environment variable instead")
    try:
        backend.set_password(SERVICE, profile, token.reveal())
    except ke.KeyringError as exc:
        raise _translate(exc, "store") from None
    except Exception as exc:
        raise KeyringError(f"could not store the token in the system keyring ({type(exc).__name__})") from None
    return backend_name(backend)


def delete_token(profile: str = "default") -> bool:
    """Remove the keyring entry; False when there was none."""
    import keyring.errors as ke

    backend = _backend()
    if _keyring_unusable(backend):
        return False
    try:
        if backend.get_password(SERVICE, profile) is None:
            return False
        backend.delete_password(SERVICE, profile)
    except ke.PasswordDeleteError:
        return False
    except ke.KeyringError as exc:
        raise _translate(exc, "delete") from None
    return True
