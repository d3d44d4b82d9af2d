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


def _dtype(f: Field) -> str:
    return "Int64" if f.kind in INTEGER_KINDS else "float64"


def long_frame(rows: Sequence[tuple], fields: Iterable[str | Field]):
    """Rows from ``HistoryStore.series(codes, fields, ...)`` -> the tidy long DataFrame."""
    import pandas as pd

    fields = value_fields(fields)
    columns = list(zip(*rows)) if rows else [()] * (2 + len(fields))
    codes, dates = columns[0], columns[1]
    index, uniques = pd.factorize(pd.Index(dates, dtype=object), sort=False)
    stamps = pd.to_datetime(list(uniques)).astype("datetime64[ns]") if len(uniques) else pd.DatetimeIndex([], dtype="datetime64[ns]")
    data = {
        "code": pd.array(codes, dtype="object"),
        "date": stamps.take(index) if len(index) else stamps,
    }
    for f, values in zip(fields, columns[2:]):
        data[f.key] = pd.array([v for v in values], dtype=_dtype(f))
    frame = pd.DataFrame(data)
    frame["date"] = frame["date"].astype("datetime64[ns]")
    return frame


def wide_frame(rows: Sequence[tuple], fields: Iterable[str | Field]):
    """Rows from ``HistoryStore.series`` -> dates down, codes across (first-seen order)."""
    fields = value_fields(fields)
    frame = long_frame(rows, fields)
    order = list(dict.fromkeys(frame["code"]))
    keys = [f.key for f in fields]
    wide = frame.pivot(index="date", columns="code", values=keys if len(keys) > 1 else keys[0])
    if len(keys) > 1:
        import pandas as pd

        wide = wide.reindex(columns=pd.MultiIndex.from_product([keys, order], names=[None, "code"]))
    else:
        wide = wide.reindex(columns=order)
        wide.columns.name = "code"
    wide.index.name = "date"
    return wide.sort_index()
