"""Dates as Excel holds them: a date is a naive datetime at midnight.

The service's dates are Beijing calendar dates; a cell shows the date as it was given,
so no time zone is applied. One function, used by the formulas, the refresh and the
.xlsx writer alike.
"""

from __future__ import annotations

import datetime as dt


def as_excel_datetime(value):
    """*value* as Excel's cell value: a date becomes midnight of that day (naive); anything else is unchanged."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day)
    return value
