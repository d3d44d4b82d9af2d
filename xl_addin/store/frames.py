"""History rows as pandas DataFrames: a tidy long form and a wide pivot.

Kept apart from the store so that ``import xl_addin.store`` (and Excel's UDF server)
never loads pandas; pandas is imported when one of these is called.

* :func:`long_frame` — one row per (code, data date): columns ``code``, ``date``
  (datetime64), then one column per field (``Int64`` for share counts, ``float64``
  for amounts and ratios; a missing value is ``<NA>`` / ``NaN``).
* :func:`wide_frame` — dates down (a ``DatetimeIndex`` named ``date``), codes across,
  one field's values: ready to chart. With several fields the columns are a
  ``(field, code)`` MultiIndex. A day with no snapshot for a code is missing, not 0.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from ..fields import Field
from .base import INTEGER_KINDS, value_fields


def _column(values: Sequence, f: Field):
    """A pandas array for one field's values: Int64 for share counts, float64 otherwise (None -> missing)."""
    import numpy as np
    import pandas as pd

    if f.kind not in INTEGER_KINDS:
        return np.array(values, dtype=np.float64)  # None becomes NaN
    mask = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    data = np.array([0 if v is None else v for v in values] if mask.any() else values, dtype=np.int64)
    return pd.arrays.IntegerArray(data, mask)


def _dates(dates: Sequence):
    """(row positions, DatetimeIndex of the distinct dates): each date converted once."""
    import pandas as pd

    positions, uniques = pd.factorize(pd.Index(dates, dtype=object), sort=False)
    return positions, pd.DatetimeIndex(pd.to_datetime(list(uniques)), dtype="datetime64[ns]")


def long_frame(rows: Sequence[tuple], fields: Iterable[str | Field]):
    """Rows from ``HistoryStore.series(codes, fields, ...)`` -> the tidy long DataFrame."""
    import pandas as pd

    fields = value_fields(fields)
    columns = list(zip(*rows)) if rows else [()] * (2 + len(fields))
    positions, stamps = _dates(columns[1])
    data = {"code": pd.Series(columns[0], dtype=object), "date": stamps.take(positions)}
    for f, values in zip(fields, columns[2:]):
        data[f.key] = _column(values, f)
    return pd.DataFrame(data)


def wide_frame(rows: Sequence[tuple], fields: Iterable[str | Field]):
    """Rows from ``HistoryStore.series`` -> dates down (sorted), codes across (first-seen order)."""
    import numpy as np
    import pandas as pd

    fields = value_fields(fields)
    columns = list(zip(*rows)) if rows else [()] * (2 + len(fields))
    code_pos, codes = pd.factorize(pd.Index(columns[0], dtype=object), sort=False)
    date_pos, stamps = _dates(columns[1])
    order = np.argsort(stamps.values, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    shape = (len(stamps), len(codes))
    index = pd.DatetimeIndex(stamps.values[order], name="date")
    labels = pd.Index(list(codes), name="code", dtype=object)
    rows_at, cols_at = rank[date_pos], code_pos
    parts = []
    for f, values in zip(fields, columns[2:]):
        flat = _column(values, f)
        if isinstance(flat, pd.arrays.IntegerArray):
            grid, mask = np.zeros(shape, dtype=np.int64), np.ones(shape, dtype=bool)
            grid[rows_at, cols_at] = flat.to_numpy(dtype=np.int64, na_value=0)
            mask[rows_at, cols_at] = flat.isna()
            part = pd.DataFrame({j: pd.arrays.IntegerArray(grid[:, j], mask[:, j]) for j in range(shape[1])}, index=index)
            part.columns = labels
        else:
            grid = np.full(shape, np.nan)
            grid[rows_at, cols_at] = flat
            part = pd.DataFrame(grid, index=index, columns=labels)
        parts.append(part)
    if len(parts) == 1:
        return parts[0]
    frame = pd.concat(parts, axis=1, keys=[f.key for f in fields], names=[None, "code"])
    return frame
