"""How a range argument reaches LX_MMAH: only the used part of it is read through COM.

For ``=LX_MMAH(A:A, ...)`` Excel hands xlwings a Range object of 1,048,576 cells, and
xlwings' default conversion reads ``.Value`` of all of them across processes before our
code sees one. :class:`UsedValues` is an xlwings converter (``@arg("codes", UsedValues)``)
that first cuts the range at the bottom and right edges of its sheet's used range
(``Worksheet.UsedRange``: nothing beyond it holds a value), then converts it exactly as
xlwings would (``ndim``, ``err_to_str`` and so on). The top-left corner stays where it is, so
row *i* of the argument is still row *i* of the result. A literal (``=LX_MMAH(700, ...)``)
or an array from another formula is not a range and is converted as before.

Windows only (the xlwings UDF path). Cutting costs a handful of COM property reads, so a
range of at most :data:`SMALL` cells (``$A2``, ``A2:A51``) is read as it is.
"""

from __future__ import annotations

from xlwings.conversion import Accessor, ValueAccessor

SMALL = 4096  # cells: read as they are


def used_part(rng):
    """*rng* (an xlwings Range) cut at its sheet's used range; never empty, same top-left."""
    rows, cols = rng.shape  # xlwings reads the shape anyway (its chunking check)
    if rows * cols <= SMALL:
        return rng
    top, left = rng.row, rng.column
    used = rng.sheet.used_range
    used_rows, used_cols = used.shape
    bottom = max(top, min(top + rows - 1, used.row + used_rows - 1))
    right = max(left, min(left + cols - 1, used.column + used_cols - 1))
    if (bottom - top + 1, right - left + 1) == (rows, cols):
        return rng
    return rng.sheet.range((top, left), (bottom, right))


class _CutToUsedPart:
    def __call__(self, ctx):
        if ctx.range is not None:
            try:
                ctx.range = used_part(ctx.range)
            except Exception:  # read it whole, as xlwings would
                pass


class UsedValues(Accessor):
    """xlwings' value conversion of the used part of a range argument."""

    @classmethod
    def reader(cls, options):
        return ValueAccessor.reader(options).prepend_stage(_CutToUsedPart())


__all__ = ["UsedValues", "used_part"]
