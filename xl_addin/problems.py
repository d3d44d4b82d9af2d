"""Per-code problems, said once per cause: ``00700: no data``, ``banana: invalid code``.

A batch that fails hits each of its codes with the same error; a line per code would
bury the one thing to know under a thousand copies of it. The CLI and the refresh's
status block both group by cause, with a count: ``1,000 codes (00001, 00002, 00003, …):
cannot reach …``.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

from .exceptions import InvalidCodeError, NoDataError

CAUSE_INVALID = "invalid code"
CAUSE_NO_DATA = "no data"
CAUSE_UNCALCULATED = ("a formula never calculated (the workbook was saved by a program that does not calculate: "
                      "open and save it in Excel or LibreOffice first)")
INVALID_HINT = "expected 1 to 5 digits, like 700, 00700 or 0700.HK"


def cause_of(error, hint: bool = False) -> str:
    """What went wrong for one code, worded the same everywhere."""
    if isinstance(error, InvalidCodeError):
        return f"{CAUSE_INVALID} ({INVALID_HINT})" if hint else CAUSE_INVALID
    if isinstance(error, NoDataError):
        return CAUSE_NO_DATA
    return str(error)


def hard_errors(errors: Mapping[str, Exception]) -> dict[str, Exception]:
    """The errors that are failures (a code without data is an answer, not a failure)."""
    return {code: e for code, e in errors.items() if not isinstance(e, NoDataError)}


def one_error_for_all(codes: list[str], errors: Mapping[str, Exception]) -> Exception | None:
    """The error, when every one of *codes* failed with the same one (say it once, not per code); else None."""
    hard = hard_errors({c: errors[c] for c in codes if c in errors})
    if codes and len(hard) == len(codes) and len({str(e) for e in hard.values()}) == 1:
        return next(iter(hard.values()))
    return None


_GAVE_UP = re.compile(r" \(gave up after (\d+) attempts?\)$")


def by_cause(problems: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """The labels of each cause, first seen first. Batches that failed alike but gave up
    after different numbers of attempts (they share one time budget) are one cause:
    ``… (gave up after 1–4 attempts)``, not a line for each count."""
    merged: dict[str, tuple[list[str], set[int]]] = {}
    for label, cause in problems:
        m = _GAVE_UP.search(cause)
        labels, tries = merged.setdefault(cause[: m.start()] if m else cause, ([], set()))
        labels.append(label)
        if m:
            tries.add(int(m.group(1)))
    out: dict[str, list[str]] = {}
    for cause, (labels, tries) in merged.items():
        if tries:
            lo, hi = min(tries), max(tries)
            cause += f" (gave up after {lo if lo == hi else f'{lo}–{hi}'} attempt{'s' * (hi > 1)})"
        out[cause] = labels
    return out


def grouped(problems: Iterable[tuple[str, str]], shown: int | None = 3) -> list[str]:
    """One line per cause, first seen first; *shown* codes named per line (None: all of them)."""
    lines = []
    for cause, labels in by_cause(problems).items():
        if len(labels) == 1:
            lines.append(f"{labels[0]}: {cause}")
            continue
        listed = labels if shown is None or len(labels) <= shown else labels[:shown] + ["…"]
        lines.append(f"{len(labels):,} codes ({', '.join(listed)}): {cause}")
    return lines
