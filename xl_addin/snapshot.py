"""The daily snapshot: fetch the latest for every code the user follows and keep it in the history.

The API only ever gives today's snapshot, so history exists only if someone fetches
every trading day; ``lx-addin snapshot`` is that someone, run by the OS scheduler
(:mod:`xl_addin.schedule`) with no one at the keyboard. So it never prompts (no token is
one line and a non-zero exit), asks the service for everything at once (ceil(N/100)
requests: the client batches), and appends one line per run to a log in the user's log
dir, so that "did last night's snapshot run?" has an answer. With a desk store, the codes
anyone on the desk fetched are followed too: one scheduled snapshot fills it for everyone. Running it twice a day is
harmless: the store keeps one snapshot per (code, data date), the newest fetch.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .codes import parse_code, unique
from .exceptions import InputError, LixingerError, StoreError
from .problems import hard_errors, one_error_for_all

#: a code fetched within this many days is one the user follows
FOLLOW_DAYS = 90
LOG_NAME = "snapshot.log"


@dataclass
class SnapshotRun:
    """What one snapshot did."""

    codes: list[str]
    kept: int = 0  # codes with a record now in the history store
    no_data: list[str] = field(default_factory=list)
    requests: int = 0
    data_date: dt.date | None = None

    def line(self) -> str:
        date = self.data_date.isoformat() if self.data_date else "none"
        extra = f", {len(self.no_data)} without data" if self.no_data else ""
        return (f"snapshot: {self.kept} of {len(self.codes)} codes kept, data date {date}{extra}, "
                f"{self.requests} request(s)")


def book_codes(path: Path | str) -> list[str]:
    """The valid codes in a template workbook's LX_CODES (its invalid cells are skipped)."""
    from .layout import Layout, read_codes
    from .xlsx import XlsxBook

    book = XlsxBook(path)
    c = Layout.from_names(book.defined_names()).codes
    cells = [row[0] if row else None for row in book.read(c.sheet, c.top, c.left, c.bottom, c.left)]
    return [code for code, _ in read_codes(cells) if code]


def given_codes(texts: Iterable[str]) -> list[str]:
    """``--codes`` as typed (any spelling, comma- or space-separated); a bad one is refused."""
    out = []
    for text in texts:
        for part in str(text).replace(",", " ").split():
            code, error = parse_code(part)
            if code is None:
                raise InputError(f"--codes: {part!r} is not an HK code ({error})")
            out.append(code)
    return out


def followed_codes(settings, now: float | None = None, desk=None) -> list[str]:
    """Every code fetched (with a record) from this service in the last :data:`FOLLOW_DAYS` days:
    here, and by anyone on the desk when *desk* (the service's desk history) is given."""
    from .store import open_store

    since = (time.time() if now is None else now) - FOLLOW_DAYS * 86400
    with open_store(settings.cache_path) as store:  # where the service keeps what it fetches
        codes = store.codes_seen(since, source=settings.base_url)
    if desk is not None:  # the desk when it answers (else the local copy again: nothing lost)
        codes = sorted(set(codes) | set(desk.codes_seen(since, source=settings.base_url)))
    return codes


def take(service, extra: Iterable[str] = ()) -> SnapshotRun:
    """Fetch the latest of the followed codes plus *extra* (never from the cache) and keep it.
    Raises a LixingerError (one line) when there is no token, nothing to fetch, or the service
    failed for any code."""
    service.token()  # no token: NoTokenError before anything else, never a prompt
    desk = service.history_store() if getattr(service, "desk", None) is not None else None
    codes = unique([*followed_codes(service.settings, desk=desk), *extra])  # a desk: everyone's codes
    if not codes:
        raise InputError("no codes to snapshot: none fetched in the last 90 days; give --codes or --book")
    answer = service.fetch(codes, use_cache=False)
    common = one_error_for_all(codes, answer.errors)
    if common is not None:
        raise common
    hard = hard_errors(answer.errors)
    if hard:
        code, exc = next(iter(hard.items()))
        raise LixingerError(f"{len(hard)} of {len(codes)} codes failed, e.g. {code}: {exc}")
    if answer.stale:
        raise LixingerError(f"{len(answer.stale)} of {len(codes)} codes not answered by the service; nothing new kept for them")
    if isinstance(service.last_error, StoreError):  # fetched, but not kept
        raise service.last_error
    fresh = [c for c in codes if c in answer.records and c not in answer.from_cache]
    return SnapshotRun(codes, kept=len(fresh), no_data=[c for c in codes if c in answer.errors],
                       requests=answer.requests, data_date=answer.newest_data_date)


def log_path() -> Path:
    """The snapshot's log file, in the user's log dir (platformdirs)."""
    from platformdirs import user_log_path

    return user_log_path("xl_addin", appauthor=False) / LOG_NAME


def append_log(text: str, path: Path | None = None, now: dt.datetime | None = None) -> Path:
    """Append one timestamped line (the caller passes text already without the token)."""
    path = path or log_path()
    stamp = (now or dt.datetime.now().astimezone()).isoformat(timespec="seconds")
    one_line = " ".join(text.split())
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{stamp} {one_line}\n")
    return path
