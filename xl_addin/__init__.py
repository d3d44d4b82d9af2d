"""xl_addin: Lixinger's Hong Kong Stock Connect holdings (hk/company/hot/mm_ah) in Excel.

The library under the formulas, the one-click refresh and the CLI::

    from xl_addin import MMAH, normalize_code
    result = MMAH().fetch([normalize_code(c) for c in ("700", "0005.HK")])

Heavy modules (requests, sqlite) load on first use, so that Excel's first
formula does not wait for them.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .codes import normalize_code
from .exceptions import (
    ApiError,
    BadResponseError,
    CacheError,
    ConfigError,
    InputError,
    InsecureURLError,
    InvalidCodeError,
    KeyringError,
    LixingerError,
    MalformedRecordError,
    NoDataError,
    NoTokenError,
    RateLimitedError,
    RequestTimeoutError,
    ServiceError,
    ServiceUnavailableError,
    TokenError,
    TokenRejectedError,
    UnknownFieldError,
    WorkbookError,
)
from .fields import FIELDS, Field, lookup as lookup_field

_LAZY = {
    "MMAH": ("service", "MMAH"),
    "Result": ("service", "Result"),
    "MMAHClient": ("client", "MMAHClient"),
    "Cache": ("cache", "Cache"),
    "Settings": ("config", "Settings"),
    "Token": ("credentials", "Token"),
    "resolve_token": ("credentials", "resolve_token"),
    "Sandbox": ("sandbox", "Sandbox"),
}

__all__ = [
    "__version__",
    "main",
    "normalize_code",
    "FIELDS",
    "Field",
    "lookup_field",
    *_LAZY,
    "LixingerError",
    "ConfigError",
    "InsecureURLError",
    "InputError",
    "InvalidCodeError",
    "UnknownFieldError",
    "TokenError",
    "NoTokenError",
    "TokenRejectedError",
    "KeyringError",
    "ServiceError",
    "ServiceUnavailableError",
    "RequestTimeoutError",
    "RateLimitedError",
    "BadResponseError",
    "MalformedRecordError",
    "ApiError",
    "NoDataError",
    "CacheError",
    "WorkbookError",
]


def main() -> None:
    """Refresh the active workbook: what the ribbon add-in's Refresh button runs
    (``RunPython "import xl_addin;xl_addin.main()"``). Never raises: every problem ends in
    Excel's status bar and a message box (see :func:`xl_addin.refresh.main`)."""
    try:
        from .refresh import main as refresh_main
    except Exception as exc:  # a broken install: still a message, not a VBA traceback
        message = f"xl_addin cannot load ({type(exc).__name__}: {exc}); run the installer again"
        try:
            import xlwings as xw

            xw.apps.active.alert(f"Lixinger refresh failed: {message}", title="Lixinger refresh", mode="critical")
        except Exception:
            _last_resort(message)
        return
    refresh_main()


def _last_resort(message: str) -> None:
    """No message box can be reached: one line on stderr. Under RunPython (a fresh process,
    ``--from_xl=1`` on its command line) xlwings shows that log only when Python exits
    non-zero (``If ExitCode <> 0 Then Call ShowError(LOG_FILE)``), so exit 1: one line, not silence."""
    import sys

    print(f"Lixinger refresh failed: {' '.join(str(message).split())}", file=sys.stderr)
    if "--from_xl=1" in sys.argv[1:]:
        raise SystemExit(1)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xl_addin' has no attribute {name!r}")
