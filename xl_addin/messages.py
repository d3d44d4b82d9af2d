"""Text from outside (the service's messages, its headers, an error page) made fit to
show: one short line, no token, no terminal escapes.

A service message may be 5,000 characters, span lines, carry ANSI escapes that
recolour or rewrite a terminal, or echo the token. Each is shown through
:func:`shown`: the token is removed first (cutting first could leave part of it),
then escapes and control characters go, whitespace collapses to single spaces, and
only then is the text cut to length.
"""

from __future__ import annotations

import re

from .secret import redact

LIMIT = 200  # characters of a service's message in one of our lines
_READ_AT_MOST = 65536  # of a huge text, only this much is looked at
# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), and two-character ESC sequences
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]|\x9b[0-?]*[ -/]*[@-~]")


def one_line(text: str) -> str:
    """*text* without escape sequences or control characters, on one line."""
    text = _ESCAPES.sub("", text)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())


def shown(text: object, *tokens, limit: int = LIMIT) -> str:
    """*text* as we may show it: redacted, on one line, at most *limit* characters."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text[: _READ_AT_MOST * 4].decode("utf-8", "replace")
    text = redact(str(text)[:_READ_AT_MOST], *tokens)
    text = redact(one_line(text), *tokens)  # an escape inside the token hid it from the first pass
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text
