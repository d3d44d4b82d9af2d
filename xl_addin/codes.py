"""Hong Kong stock code normalisation: however an analyst typed it, five digits.

``700``, ``700.0``, ``"700"``, ``"00700"``, ``"0700.HK"``, ``"700 HK"``,
``"700 HK Equity"`` (Bloomberg) and ``" 00700 "`` all become ``"00700"``.
"""

from __future__ import annotations

import math
import re

from .exceptions import InvalidCodeError

_PATTERN = re.compile(
    r"""^(?:HK[.:\s-]?)?          # HK prefix: HK00700, HK.00700, HK:700
        (?P<digits>\d{1,6})        # the number (leading zeros allowed)
        (?:\.0+)?                  # 700.0 typed or pasted as text
        (?:[.\s]?HK)?              # .HK / space HK suffix: 0700.HK, 700 HK
        (?:\s+EQUITY)?$            # Bloomberg: 700 HK Equity
    """,
    re.VERBOSE,
)

MAX_CODE = 99999


def normalize_code(value: object) -> str:
    """The five-digit code for *value*, or :class:`InvalidCodeError` naming it."""
    if isinstance(value, bool) or value is None:
        raise InvalidCodeError(value)
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise InvalidCodeError(value, "not a whole number")
        number = int(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value.strip().upper())
        if not match:
            raise InvalidCodeError(value)
        number = int(match.group("digits"))
    else:
        raise InvalidCodeError(value)
    if not 1 <= number <= MAX_CODE:
        raise InvalidCodeError(value, "out of range 1 to 99999")
    return f"{number:05d}"


def is_blank(value: object) -> bool:
    """An empty cell: None, or text of nothing but spaces."""
    return value is None or (isinstance(value, str) and not value.strip())


def parse_code(value: object) -> tuple[str | None, InvalidCodeError | None]:
    """A typed cell or argument read as a code: ``(code, None)`` when good, ``(None, error)``
    when not a code, ``(None, None)`` when blank. The one reading every front end uses."""
    if is_blank(value):
        return None, None
    try:
        return normalize_code(value), None
    except InvalidCodeError as exc:
        return None, exc


def unique(codes) -> list[str]:
    """Codes without repeats, first occurrence first."""
    return list(dict.fromkeys(codes))


def parse_inputs(values) -> list[tuple[object, str | None, InvalidCodeError | None]]:
    """``[(as typed, code or None, error or None)]`` for codes typed as arguments: one entry per
    distinct code (and per distinct bad value), in the order given. A blank is not a code."""
    seen = set()
    out = []
    for raw in values:
        code, error = parse_code(raw)
        if code is None and error is None:
            error = InvalidCodeError(raw)
        key = code or raw
        if key not in seen:
            seen.add(key)
            out.append((raw, code, error))
    return out
