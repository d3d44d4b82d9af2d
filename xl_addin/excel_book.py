"""The refresh's Book adapter over a live Excel workbook (xlwings: Windows and macOS).

Each method is one or two calls into Excel: the codes and field names are read in
one call each, each block of the table is written in one call.

The recalculation after a Refresh touches this workbook's ``LX_MMAH`` formulas only:
each one is marked dirty (``Range.Dirty``) and ``Application.Calculate`` then computes
dirty cells (those, and what depends on them), not every formula of every open workbook
as ``CalculateFull`` would. ``CalculateFull`` is the fallback when the workbook cannot be
searched (more than :data:`MAX_FORMULA_CELLS` formula cells on a sheet, or an Excel
without these calls).
"""

from __future__ import annotations

import datetime as dt

from .layout import Layout
from .neighbours import as_grid

XL_CELL_TYPE_FORMULAS = -4123
MAX_FORMULA_CELLS = 200_000  # formula texts read per sheet to find the LX_MMAH ones


def calling_book():
    """The workbook a RunPython button acts on: the caller when a workbook's own button ran
    it, else the active workbook (the add-in's ribbon has no caller)."""
    import xlwings as xw

    try:
        return xw.Book.caller()
    except Exception:  # called from the add-in's ribbon: the active workbook
        return xw.books.active


def _is_lx(text) -> bool:
    return isinstance(text, str) and text.startswith("=") and "LX_MMAH" in text.upper()


class ExcelBook:
    def __init__(self, book):
        self.book = book

    def __repr__(self) -> str:
        return f"ExcelBook({getattr(self.book, 'name', '?')!r})"

    def defined_names(self) -> dict[str, str]:
        out = {}
        for name in self.book.names:
            out[name.name] = name.refers_to.lstrip("=")
        return out

    def _range(self, sheet, top, left, bottom, right):
        return self.book.sheets[sheet].range((top, left), (bottom, right))

    def read(self, sheet, top, left, bottom, right) -> list[list]:
        return self._range(sheet, top, left, bottom, right).options(ndim=2).value

    def write(self, sheet, top, left, matrix) -> None:
        if matrix:
            self._range(sheet, top, left, top + len(matrix) - 1, left + len(matrix[0]) - 1).value = matrix

    def set_number_formats(self, sheet, top, bottom, formats: dict) -> None:
        """Give each field column its kind's format, unless the analyst set one (General only)."""
        for col, fmt in formats.items():
            rng = self._range(sheet, top, col, bottom, col)
            if rng.number_format == "General":  # None: mixed formats, the analyst's: left alone
                rng.number_format = fmt

    def is_template(self) -> bool:
        names = {n.split("!")[-1].upper() for n in self.defined_names()}
        return {"LX_CODES", "LX_FIELDS"} <= names

    def recalculate(self) -> str:
        """Recalculate this workbook's LX_MMAH formulas; returns how ("dirty" or "full")."""
        app = self.book.app
        try:
            ranges = [r for sheet in self.book.sheets for r in self._lx_ranges(sheet.api)]
            for rng in ranges:
                rng.Dirty()
            app.api.Calculate()  # dirty cells only: those, and what the refresh's writes touched
            return "dirty"
        except Exception:
            pass
        try:
            app.api.CalculateFull()  # Windows (COM)
        except Exception:
            try:
                app.calculate()
            except Exception:
                pass
        return "full"

    @staticmethod
    def _lx_ranges(ws):
        """The LX_MMAH formula cells of a COM worksheet, as row runs (few COM calls)."""
        try:
            found = ws.UsedRange.SpecialCells(XL_CELL_TYPE_FORMULAS)
        except Exception as exc:
            if "no cells were found" in str(exc).lower():
                return []
            raise
        if found.CountLarge > MAX_FORMULA_CELLS:
            raise OverflowError("too many formulas to search")
        out = []
        areas = found.Areas
        for k in range(1, areas.Count + 1):
            area = areas.Item(k)
            grid = as_grid(area.Formula)
            if all(_is_lx(t) for row in grid for t in row):
                out.append(area)
                continue
            for i, row in enumerate(grid, start=1):
                j = 0
                while j < len(row):
                    if not _is_lx(row[j]):
                        j += 1
                        continue
                    start = j
                    while j < len(row) and _is_lx(row[j]):
                        j += 1
                    out.append(ws.Range(area.Cells(i, start + 1), area.Cells(i, j)))
        return out

    def progress(self, text: str) -> None:
        try:
            self.book.app.status_bar = text
        except Exception:
            pass

    def done(self) -> None:
        """Hand the status bar back to Excel (``StatusBar = False``)."""
        try:
            self.book.app.status_bar = False
        except Exception:
            pass

    def warn(self, message: str) -> None:
        """The refresh ran but did not get the latest (the service failed the formulas'
        fetches): the status bar and a message box, not a silent success."""
        self.progress(f"Lixinger: {message}")
        try:
            self.book.app.alert(message, title="Lixinger refresh", mode="info")
        except Exception:
            pass

    def fail(self, message: str) -> None:
        """Say it in the status bar, the status block and a message box: never silently."""
        self.progress(f"Lixinger refresh failed: {message}")
        try:
            layout = Layout.from_names(self.defined_names())
            if layout.status is not None:
                s = layout.status
                # only the Problems line: "Refreshed at", the data date and the codes still
                # describe the table, which a failed refresh leaves as it was
                when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
                self.write(s.sheet, s.top + 3, s.left + 1, [[f"refresh failed {when}: {message}"[:500]]])
        except Exception:
            pass
        try:
            self.book.app.alert(message, title="Lixinger refresh", mode="critical")
        except Exception:
            pass


__all__ = ["ExcelBook"]
