"""One rooted exception hierarchy: everything xl_addin raises is a LixingerError.

Lower-level errors (requests, sqlite3, keyring, openpyxl) are translated at the
boundary where they happen, so callers catch one family and every message is fit
to show an analyst: one sentence that says what went wrong and what to do.
Messages never contain the token (see :func:`xl_addin.credentials.redact`), nor a
Python class name; text from the service is shown through :func:`xl_addin.messages.shown`.
"""

from __future__ import annotations

HOW_TO_SET_TOKEN = (
    "run `lx-addin token set` to keep your Lixinger token in the system keyring, "
    "or set the LIXINGER_TOKEN environment variable"
)


class LixingerError(Exception):
    """Root of every error raised by xl_addin."""


# --- configuration and input -------------------------------------------------
class ConfigError(LixingerError):
    """A setting (environment variable, option) has a value we cannot use."""


class InsecureURLError(ConfigError):
    """Plain http:// to a host that is not this machine."""


class InputError(LixingerError, ValueError):
    """Something the user typed is not valid."""


class InvalidCodeError(InputError):
    """Not a Hong Kong stock code."""

    def __init__(self, value: object, reason: str = ""):
        self.value = value
        shown = repr(value) if not isinstance(value, str) else repr(value)
        detail = f" ({reason})" if reason else ""
        super().__init__(
            f"{shown} is not a Hong Kong stock code{detail}; "
            "expected 1 to 5 digits, like 700, 00700 or 0700.HK"
        )


class UnknownFieldError(InputError, KeyError):
    """A field name that is not in the catalog."""

    def __init__(self, name: object, suggestions: list[str] | tuple[str, ...] = ()):
        self.name = name
        self.suggestions = list(suggestions)
        hint = (
            "; did you mean " + ", ".join(self.suggestions) + "?"
            if self.suggestions
            else "; run `lx-addin fields` for the list"
        )
        super().__init__(f"unknown field {name!r}{hint}")

    def __str__(self) -> str:  # KeyError would quote the message again
        return self.args[0]


# --- credentials ----------------------------------------------------------------
class TokenError(LixingerError):
    """No usable token."""


class NoTokenError(TokenError):
    def __init__(self, detail: str = ""):
        prefix = f"{detail}; " if detail else "No Lixinger token found: "
        super().__init__(prefix + HOW_TO_SET_TOKEN)


class TokenRejectedError(TokenError):
    """The service refused the token (401, or an error that names the token)."""

    def __init__(self, message: str = ""):
        said = f" ({message})" if message else ""
        super().__init__(
            f"Lixinger rejected the token{said}: check it on lixinger.com, then "
            + HOW_TO_SET_TOKEN
        )


class KeyringError(TokenError):
    """The system keyring could not be used (none, locked, dismissed)."""


# --- the service ------------------------------------------------------------------
class ServiceError(LixingerError):
    """The Lixinger service could not give an answer."""


class ServiceUnavailableError(ServiceError):
    """Connection refused/reset, or 5xx after the retries ran out."""


class RequestTimeoutError(ServiceUnavailableError):
    """No answer within the configured timeout / time budget."""


class RateLimitedError(ServiceUnavailableError):
    """HTTP 429 after the retries ran out."""


class BadResponseError(ServiceError):
    """An answer we cannot read: not JSON, or not shaped like the API's answers."""


class AnswerTooLargeError(BadResponseError):
    """The answer grew past LIXINGER_MAX_ANSWER_BYTES while it was read (a gzip bomb, say)."""


class RedirectError(ServiceError):
    """The service answered with a redirect; it is not followed, so the token stays here."""


class ApiError(ServiceError):
    """The API answered with a `code` other than 1; its message says why."""

    def __init__(self, message: str, code: object = None, status: int | None = None):
        self.api_code = code
        self.status = status
        super().__init__(message)


class NoDataError(LixingerError):
    """The service has no Stock Connect data for this code."""

    def __init__(self, code: str):
        self.code = code
        super().__init__(f"no Stock Connect data for {code}")


class MalformedRecordError(BadResponseError):
    """One record in an otherwise good answer is not shaped like the API's records."""


# --- local state --------------------------------------------------------------------
class CacheError(LixingerError):
    """The local cache could not be used."""


class CacheUnusableError(CacheError):
    """The cache's path cannot hold a cache (a file where its folder should be, no permission):
    fetches go on without it."""


class WorkbookError(LixingerError):
    """A workbook could not be read, refreshed or written safely."""


# --- installing ---------------------------------------------------------------------
class InstallError(LixingerError):
    """Setting up or removing the Excel add-in cannot be done safely; nothing was changed."""


class ExcelRunningError(InstallError):
    """Excel holds the add-in and the environment open: installing now would fail half-way."""

    def __init__(self):
        super().__init__("Excel is running: close Excel and run this again (nothing was changed)")


# --- the history store ---------------------------------------------------------------
class StoreError(CacheError):
    """The history store could not be used (unreadable, locked, made by a newer xl_addin)."""


class StoreUnusableError(StoreError, CacheUnusableError):
    """The local store's path cannot hold a file at all, when it is the cache: said once, then
    every fetch goes on without it."""


class ImportFileError(InputError):
    """A history file to import has bad rows; nothing of it was imported.

    ``problems`` holds ``(line number, message)`` pairs, line 1 being the header.
    """

    def __init__(self, path: object, problems: list[tuple[int, str]], limit: int = 5):
        self.path = path
        self.problems = list(problems)
        shown = "; ".join(f"line {line}: {msg}" for line, msg in self.problems[:limit])
        more = f" (and {len(self.problems) - limit} more)" if len(self.problems) > limit else ""
        super().__init__(f"{path}: {len(self.problems)} bad row(s), nothing imported: {shown}{more}")
