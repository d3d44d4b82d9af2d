"""xl_addin: Lixinger's Hong Kong Stock Connect holdings (hk/company/hot/mm_ah) in Excel.

The library under the formulas, the one-click refresh and the CLI::

    from xl_addin import DataService, normalize_code
    answer = DataService().fetch([normalize_code(c) for c in ("700", "0005.HK")])

(``MMAH`` and ``Result`` are the older names of ``DataService`` and ``Answer``.)

Heavy modules (requests, sqlite) load on first use, so that Excel's first
formula does not wait for them.
"""

from __future__ import annotations

from .version import __version__

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
    "DataService": ("service", "DataService"),
    "Answer": ("service", "Answer"),
    "MMAH": ("service", "DataService"),
    "Result": ("service", "Answer"),
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
            from .last_resort import refresh_failed

            refresh_failed(message)
        return
    refresh_main()


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xl_addin' has no attribute {name!r}")
