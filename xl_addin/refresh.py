"""The refresh: one core shared by Excel (RunPython) and the headless CLI.

read the codes -> one batched fetch -> plan the table -> one bulk write per block
-> the status block. The workbook is reached through a small adapter
(:class:`xl_addin.xlsx.XlsxBook` headless, :class:`xl_addin.excel_book.ExcelBook` in
Excel), so the layout logic is the same on both paths.

A refresh asks for the latest. When the service cannot give it, the refresh fails and
writes nothing, even if the cache holds older values: old data must never look new.
Only when the caller allows it (``allow_stale``) are cached values written, and then
each is named as stale in the status block and in the summary.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .exceptions import LixingerError, WorkbookError
from .layout import Layout, Plan, is_uncalculated, plan_refresh, stale_cause
from .problems import CAUSE_UNCALCULATED, grouped, hard_errors


class Book(Protocol):
    def defined_names(self) -> dict[str, str]: ...
    def read(self, sheet: str, top: int, left: int, bottom: int, right: int) -> list[list]: ...
    def write(self, sheet: str, top: int, left: int, matrix: list[list]) -> None: ...
    def set_number_formats(self, sheet: str, top: int, bottom: int, formats: dict[int, str]) -> None: ...
    def progress(self, text: str) -> None: ...


@dataclass
class Summary:
    codes: int
    with_data: int
    fields: int
    requests: int
    seconds: float
    data_date: dt.date | None
    problems: list[str]  # one line per cause, with a count
    problem_rows: int = 0  # rows with a problem (invalid code, no data)
    stale: list[str] = field(default_factory=list)  # codes written with cached values (allow_stale)
    stale_lines: list[str] = field(default_factory=list)  # the stale codes, one line per cause
    trend: str = ""  # what the trend view (xl_addin.trend) was filled with, if the book has one

    def line(self) -> str:
        date = f", data date {self.data_date}" if self.data_date else ""
        probs = f", {self.problem_rows} problem row(s)" if self.problem_rows else ""
        stale = f", {len(self.stale)} STALE (cached; the service failed)" if self.stale else ""
        trend = f"; {self.trend}" if self.trend else ""
        return (f"{self.with_data} of {self.codes} codes with data x {self.fields} fields, "
                f"{self.requests} request(s), {self.seconds:.2f} s{date}{probs}{stale}{trend}")


#: what a refused stale refresh tells the user to do: the CLI's flag, or Excel's button
CLI_STALE_ADVICE = "`lx-addin refresh --allow-stale` writes them, marked stale"
EXCEL_STALE_ADVICE = "they were not written, so that old values never look new. Click Refresh again when the service is back"


def prepare(book: Book, service, max_age: float = 0.0, allow_stale: bool = False,
            stale_advice: str = CLI_STALE_ADVICE) -> tuple[Layout, Plan, object]:
    """Everything up to (not including) writing: raises and writes nothing on any failure,
    including a service failure that only cached values could cover, unless *allow_stale*
    (the error then ends with *stale_advice*: what the user can do about it)."""
    layout = Layout.from_names(book.defined_names())
    c, f = layout.codes, layout.fields
    code_cells = [row[0] if row else None for row in book.read(c.sheet, c.top, c.left, c.bottom, c.left)]
    header = book.read(f.sheet, f.top, f.left, f.top, f.right)[0]
    plan = plan_refresh(layout, code_cells, header, None, dt.datetime.now())  # validates fields, codes
    if not plan.codes:
        if any(is_uncalculated(cell) for cell in code_cells):
            raise WorkbookError(f"the codes in {layout.codes.a1()} are {CAUSE_UNCALCULATED}")
        raise WorkbookError(f"no codes to refresh: type HK codes into {layout.codes.a1()}")
    book.progress(f"Lixinger: fetching {len(plan.codes)} codes…")
    with _readying(book, plan):  # the book indexes what it will write while the request is in flight
        result = service.fetch(plan.codes, max_age=max_age)  # a refresh asks for the latest by default
    hard = hard_errors(result.errors)
    if hard:  # a refresh is all or nothing: never a half-new table
        raise next(iter(hard.values()))
    if result.stale and not allow_stale:
        raise _stale_refused(result, stale_advice)
    plan = plan_refresh(layout, code_cells, header, result, dt.datetime.now())
    return layout, plan, result


#: seconds the workbook waits before it indexes during the fetch, so that the requests go out first
READY_AFTER = 0.02


@contextlib.contextmanager
def _readying(book: Book, plan: Plan):
    """Run the book's optional ``ready(sheet, top, left, bottom, right, written)`` for each block of
    *plan* in a thread while the body (the fetch) runs; its failure is only a lost head start.
    *written* flags the rows that will hold something: a row with a code (or a bad one) gets its
    values or its problem, a blank row stays blank, whatever the service answers."""
    ready = getattr(book, "ready", None)
    if ready is None or not plan.blocks:
        yield
        return

    def work():
        # the requests first: started now, this thread would hold up each of the fetch's thread starts
        # by up to the interpreter's switch interval (~3 ms each, 25 ms in all); the round trip
        # leaves it the time it needs (about 15 ms) after they are on the wire
        time.sleep(READY_AFTER)
        try:
            for top, left, matrix in plan.blocks:
                written = [any(v is not None for v in row) for row in matrix]
                ready(plan.sheet, top, left, top + len(matrix) - 1, left + len(matrix[0]) - 1, written)
        except Exception:
            pass  # write() indexes again, and says what is wrong

    thread = threading.Thread(target=work, name="xl-addin-ready", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def apply(book: Book, layout: Layout, plan: Plan) -> None:
    book.set_number_formats(plan.sheet, layout.codes.top, layout.codes.bottom, plan.number_formats)
    for top, left, matrix in plan.blocks:
        book.write(plan.sheet, top, left, matrix)
    if plan.status is not None:
        s = layout.status
        book.write(s.sheet, s.top, s.left + 1, plan.status)


def _stale_refused(result, advice: str = CLI_STALE_ADVICE) -> LixingerError:
    """The service's error, saying that cached values exist and were not written."""
    stale = [c for c in result.codes if c in result.stale]
    error = result.stale_because.get(stale[0]) or LixingerError("the service failed")
    oldest = min((result.fetched_at[c] for c in stale if c in result.fetched_at), default=None)
    when = f" (the oldest fetched {dt.datetime.fromtimestamp(oldest):%Y-%m-%d %H:%M})" if oldest else ""
    note = (f"; the workbook was left as it was. Cached values exist for {len(stale)} code(s){when}: {advice}")
    try:
        return type(error)(f"{error}{note}")
    except TypeError:
        return LixingerError(f"{error}{note}")


def refresh_book(book: Book, service, max_age: float = 0.0, allow_stale: bool = False,
                 stale_advice: str = CLI_STALE_ADVICE) -> Summary:
    """Refresh a workbook through its adapter; nothing is written unless the fetch succeeded.

    *max_age* 0 (the default) asks the service for every code: an analyst who clicks
    Refresh wants the latest snapshot, not the cache's. When the service fails, cached
    values are written only with *allow_stale*, and are then marked stale.
    """
    from . import trend

    started = time.perf_counter()
    trend_layout = trend.layout_of(book)  # a malformed trend block: one line, before any request
    layout, plan, result = prepare(book, service, max_age, allow_stale, stale_advice)
    trend_plan = trend.prepare_trend(book, service, trend_layout, plan.codes)  # the store only: no request
    book.progress(f"Lixinger: writing {len(plan.codes)} codes…")
    apply(book, layout, plan)
    trend.apply_trend(book, trend_plan)
    summary = Summary(
        codes=len(plan.codes),
        with_data=sum(1 for c in plan.codes if c in result.records),
        fields=len(plan.fields),
        requests=result.requests,
        seconds=time.perf_counter() - started,
        data_date=result.newest_data_date,
        problems=plan.problems,
        problem_rows=len(plan.problem_rows),
        stale=list(plan.stale),
        stale_lines=grouped([(c, stale_cause(result, c)) for c in plan.stale]),
        trend=trend_plan.line() if trend_plan else "",
    )
    book.progress(f"Lixinger: {summary.line()}")
    return summary


# --- entry points ----------------------------------------------------------------------------
def refresh_file(path, out=None, service=None, max_age: float = 0.0, allow_stale: bool = False) -> Summary:
    """Headless: refresh an .xlsx file (in place unless *out*); atomic, byte-identical on failure.

    What cannot be written (a read-only file, a missing folder, *out* with another
    extension than the book's) is refused before the service is asked.
    """
    from .xlsx import XlsxBook, writable_target

    if service is None:
        from .service import DataService

        service = DataService()
    book = XlsxBook(path)
    try:
        if out is not None and Path(out).suffix.lower() != book.path.suffix.lower():
            wanted = book.path.suffix.lower()
            raise WorkbookError(f"{out}: the refreshed copy of {book.path.name} is an Excel {wanted} workbook "
                                f"and must be named so, e.g. {Path(out).with_suffix(wanted).name}")
        real = writable_target(Path(out) if out is not None else book.path)
        if out is not None and real.suffix.lower() != book.path.suffix.lower():
            # a link named .xlsx to another kind of file: the name check above saw only the link
            raise WorkbookError(f"{out} is a link to {real}, which is not an {book.path.suffix.lower()} workbook: "
                                "nothing was written")
        summary = refresh_book(book, service, max_age, allow_stale)
        book.save(out or path)
    finally:
        book.close()
    return summary


def main(book=None) -> None:
    """RunPython entry point (the ribbon's Refresh): refresh the workbook that called, or the
    active one. A template's table is refilled; this workbook's LX_MMAH formulas are
    recalculated with the latest data, in whichever process runs them (see
    :meth:`xl_addin.service.DataService.expire_all`).

    Nothing escapes to Excel as a traceback: every failure (no workbook, a bad setting, no
    token, the service) ends in the status bar and a message box, and the status bar is
    handed back to Excel at the end."""
    excel = None
    try:
        from .excel_book import ExcelBook, calling_book

        if book is None:
            book = calling_book()
        excel = ExcelBook(book)
        excel.progress("Lixinger: refreshing…")
        from .service import for_formulas, shared

        svc = shared(for_formulas)  # the UDF server's own, when RunPython runs there
        clicked = time.time()
        svc.expire_all()  # the button means "the latest": formulas ask the service again too
        if excel.is_template():
            refresh_book(excel, svc, stale_advice=EXCEL_STALE_ADVICE)  # no CLI flag in Excel's words
        excel.recalculate()  # returns once Excel has run the formulas (in whichever process)
        failed = svc.failure_since(clicked)
        if failed is not None:
            excel.warn(formulas_not_refreshed(*failed))
    except LixingerError as exc:
        _fail(excel, str(exc))
    except Exception as exc:  # never a VBA traceback box for an analyst
        _fail(excel, _unexpected(exc))
    finally:
        if excel is not None:
            excel.done()


def formulas_not_refreshed(when: float, why: str) -> str:
    """What the button says when the service failed the formulas' fetches after the click."""
    reason = f" ({why})" if why else ""
    return (f"Lixinger did not answer at {dt.datetime.fromtimestamp(when):%H:%M}{reason}: the formulas show the "
            "values kept from an earlier fetch (or #N/A where none was kept), not the latest. "
            "=LX_MMAH_INFO() shows when they are from; click Refresh again later.")


def _unexpected(exc: Exception) -> str:
    """One line for an error that is not ours: Excel's own words when Excel refused a call (a COM
    error's ``excepinfo[2]``, e.g. a protected sheet), else the exception's type and text."""
    info = getattr(exc, "excepinfo", None)
    if isinstance(info, tuple) and len(info) > 2 and isinstance(info[2], str) and info[2].strip():
        return f"Excel refused: {' '.join(info[2].split())}"
    return " ".join(f"unexpected error: {type(exc).__name__}: {exc}".split())


def _fail(excel, message: str) -> None:
    if excel is not None:
        excel.fail(message)
        return
    try:  # no workbook to report in: the message box of the running Excel, if any
        import xlwings as xw

        xw.apps.active.alert(f"Lixinger refresh failed: {message}", title="Lixinger refresh", mode="critical")
    except Exception:
        from .last_resort import refresh_failed

        refresh_failed(message)  # RunPython shows it only on a non-zero exit
