"""The token as a value that never shows itself, and the redaction that keeps it out of every text.

Below everything that shows text (:mod:`xl_addin.messages`, the settings, the client), so that
each of them can redact without depending on where the token comes from
(:mod:`xl_addin.credentials`).
"""

from __future__ import annotations


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
    cut in two, or half of one), replaced by ``<redacted>``, whatever their case (a
    server may echo a token upper-cased in its message).

    Redact before cutting a text short: a cut made first can leave a part of the token
    that no longer matches the whole.
    """
    for tok in tokens:
        raw = tok.reveal() if isinstance(tok, Token) else tok
        if raw and len(raw) >= 4:
            folded, secret = _lower(text), _lower(raw)
            if secret in folded:
                text, folded = _cut(text, folded, secret)
            if len(raw) > RUN and len(text) >= RUN:
                text = _redact_runs(text, folded, secret)
    return text


def _lower(s: str) -> str:
    """*s* lower-cased character by character, as long as *s* (positions stay comparable)."""
    low = s.lower()
    if len(low) == len(s):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in s)


def _cut(text: str, folded: str, secret: str) -> tuple[str, str]:
    """Every occurrence of *secret* in *folded* replaced, in *text* and in *folded* alike."""
    out, low, start = [], [], 0
    while (i := folded.find(secret, start)) >= 0:
        out += [text[start:i], REDACTED]
        low += [folded[start:i], REDACTED.lower()]
        start = i + len(secret)
    out.append(text[start:])
    low.append(folded[start:])
    return "".join(out), "".join(low)


def _redact_runs(text: str, folded: str, secret: str) -> str:
    grams = {secret[i : i + RUN] for i in range(len(secret) - RUN + 1)}
    out: list[str] = []
    start = i = 0
    end = len(text) - RUN
    while i <= end:
        if folded[i : i + RUN] in grams:
            j = i + RUN
            while j < len(text) and folded[i : j + 1] in secret:
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
