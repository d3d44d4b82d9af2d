"""The refresh's Book adapter over a live Excel workbook (xlwings: Windows and macOS).

Each method is one or two calls into Excel: the codes and field names are read in
one call each, each block of the table is written in one call.
"""

from __future__ import annotations

import datetime as dt

from .layout import Layout


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
            if rng.number_format in ("General", None):
                rng.number_format = fmt

    def is_template(self) -> bool:
        names = {n.split("!")[-1].upper() for n in self.defined_names()}
        return {"LX_CODES", "LX_FIELDS"} <= names

    def recalculate(self) -> None:
        """A full recalculation, so that LX_MMAH formulas (not volatile) pick up the new data."""
        app = self.book.app
        try:
            app.api.CalculateFull()  # Windows (COM)
        except Exception:
            try:
                app.calculate()
            except Exception:
                pass

    def progress(self, text: str) -> None:
        try:
            self.book.app.status_bar = text
        except Exception:
            pass

    def fail(self, message: str) -> None:
        """Say it in the status bar, the status block and a message box: never silently."""
        self.progress(f"Lixinger refresh failed: {message}")
        try:
            layout = Layout.from_names(self.defined_names())
            if layout.status is not None:
                s = layout.status
                self.write(s.sheet, s.top, s.left + 1, [[dt.datetime.now().replace(microsecond=0)], [None],
                                                       [None], [f"refresh failed: {message}"[:500]]])
        except Exception:
            pass
        try:
            self.book.app.alert(message, title="Lixinger refresh", mode="critical")
        except Exception:
            pass


__all__ = ["ExcelBook"]
