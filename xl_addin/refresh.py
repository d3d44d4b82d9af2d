"""The refresh: one core shared by Excel (RunPython) and the headless CLI.

read the codes -> one batched fetch -> plan the table -> one bulk write per block
-> the status block. The workbook is reached through a small adapter
(:class:`xl_addin.xlsx.XlsxBook` headless, :class:`xl_addin.excel_book.ExcelBook` in
Excel), so the layout logic is the same on both paths.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Protocol

from .exceptions import LixingerError, NoDataError, WorkbookError
from .layout import Layout, Plan, plan_refresh


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
    problems: list[str]

    def line(self) -> str:
        date = f", data date {self.data_date}" if self.data_date else ""
        probs = f", {len(self.problems)} problem(s)" if self.problems else ""
        return (f"{self.with_data} of {self.codes} codes with data x {self.fields} fields, "
                f"{self.requests} request(s), {self.seconds:.2f} s{date}{probs}")


def prepare(book: Book, service, max_age: float = 0.0) -> tuple[Layout, Plan, object]:
    """Everything up to (not including) writing: raises and writes nothing on any failure."""
    layout = Layout.from_names(book.defined_names())
    c, f = layout.codes, layout.fields
    code_cells = [row[0] if row else None for row in book.read(c.sheet, c.top, c.left, c.bottom, c.left)]
    header = book.read(f.sheet, f.top, f.left, f.top, f.right)[0]
    plan = plan_refresh(layout, code_cells, header, None, dt.datetime.now())  # validates fields, codes
    if not plan.codes:
        raise WorkbookError(f"no codes to refresh: type HK codes into {layout.codes.a1()}")
    book.progress(f"Lixinger: fetching {len(plan.codes)} codes…")
    result = service.fetch(plan.codes, max_age=max_age)  # a refresh asks for the latest by default
    hard = {code: e for code, e in result.errors.items() if not isinstance(e, NoDataError)}
    if hard:  # a refresh is all or nothing: never a half-new table
        raise next(iter(hard.values()))
    plan = plan_refresh(layout, code_cells, header, result, dt.datetime.now())
    return layout, plan, result


def apply(book: Book, layout: Layout, plan: Plan) -> None:
    book.set_number_formats(plan.sheet, layout.codes.top, layout.codes.bottom, plan.number_formats)
    for top, left, matrix in plan.blocks:
        book.write(plan.sheet, top, left, matrix)
    if plan.status is not None:
        s = layout.status
        book.write(s.sheet, s.top, s.left + 1, plan.status)


def refresh_book(book: Book, service, max_age: float = 0.0) -> Summary:
    """Refresh a workbook through its adapter; nothing is written unless the fetch succeeded.

    *max_age* 0 (the default) asks the service for every code: an analyst who clicks
    Refresh wants the latest snapshot, not the cache's.
    """
    started = time.perf_counter()
    layout, plan, result = prepare(book, service, max_age)
    book.progress(f"Lixinger: writing {len(plan.codes)} codes…")
    apply(book, layout, plan)
    summary = Summary(
        codes=len(plan.codes),
        with_data=sum(1 for c in plan.codes if c in result.records),
        fields=len(plan.fields),
        requests=result.requests,
        seconds=time.perf_counter() - started,
        data_date=result.newest_data_date,
        problems=plan.problems,
    )
    book.progress(f"Lixinger: {summary.line()}")
    return summary


# --- entry points ----------------------------------------------------------------------------
def refresh_file(path, out=None, service=None, max_age: float = 0.0) -> Summary:
    """Headless: refresh an .xlsx file (in place unless *out*); atomic, byte-identical on failure."""
    from .xlsx import XlsxBook

    if service is None:
        from .service import MMAH

        service = MMAH()
    book = XlsxBook(path)
    try:
        summary = refresh_book(book, service, max_age)
        book.save(out or path)
    finally:
        book.close()
    return summary


def main(book=None) -> None:
    """RunPython entry point (the ribbon's Refresh): refresh the workbook that called, or the
    active one. A template's table is refilled; this workbook's LX_MMAH formulas are
    recalculated with the latest data, in whichever process runs them (see
    :meth:`xl_addin.service.MMAH.forget`).

    Nothing escapes to Excel as a traceback: every failure (no workbook, a bad setting, no
    token, the service) ends in the status bar and a message box, and the status bar is
    handed back to Excel at the end."""
    excel = None
    try:
        import xlwings as xw

        from .excel_book import ExcelBook

        if book is None:
            try:
                book = xw.Book.caller()
            except Exception:  # called from the add-in's ribbon: the active workbook
                book = xw.books.active
        excel = ExcelBook(book)
        excel.progress("Lixinger: refreshing…")
        from .udfs import service

        svc = service()
        svc.forget()  # the button means "the latest": formulas ask the service again too
        if excel.is_template():
            refresh_book(excel, svc)
        excel.recalculate()
    except LixingerError as exc:
        _fail(excel, str(exc))
    except Exception as exc:  # never a VBA traceback box for an analyst
        _fail(excel, f"unexpected error: {type(exc).__name__}: {exc}")
    finally:
        if excel is not None:
            excel.done()


def _fail(excel, message: str) -> None:
    if excel is not None:
        excel.fail(message)
        return
    try:  # no workbook to report in: the message box of the running Excel, if any
        import xlwings as xw

        xw.apps.active.alert(f"Lixinger refresh failed: {message}", title="Lixinger refresh", mode="critical")
    except Exception:
        import sys

        print(f"Lixinger refresh failed: {message}", file=sys.stderr)
