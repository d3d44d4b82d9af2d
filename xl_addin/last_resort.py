"""The Refresh button's last word, when no message box can be reached (standard library only, so
that it works even when the rest of xl_addin cannot load)."""

from __future__ import annotations


def refresh_failed(message: str) -> None:
    """No message box can be reached: one line on stderr. Under RunPython (a fresh process,
    ``--from_xl=1`` on its command line) xlwings shows that log only when Python exits
    non-zero (``If ExitCode <> 0 Then Call ShowError(LOG_FILE)``), so exit 1: one line, not silence."""
    import sys

    print(f"Lixinger refresh failed: {' '.join(str(message).split())}", file=sys.stderr)
    if "--from_xl=1" in sys.argv[1:]:
        raise SystemExit(1)
