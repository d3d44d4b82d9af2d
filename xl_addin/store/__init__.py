"""The history store: every snapshot kept, queried as time series.

The API only gives today's snapshot; the store keeps each one fetched, keyed by
(source, code, data date), so that formulas, the CLI and pandas can read a field
over time. A family: the interface (:mod:`.base`), the local SQLite backend
(:mod:`.sqlite`, which migrates the cache file in place), a desk's shared
PostgreSQL database (:mod:`.postgres`, set up by :mod:`.desk`), files in and out
(:mod:`.transfer`), DataFrames (:mod:`.frames`, the only part that loads pandas).

    store = open_store(settings.cache_path)
    store.put([Snapshot.from_record(source, record, fetched_at)])
    rows = store.series(["00700"], ["mm_sh"], start, end, source=source)
    frames.wide_frame(rows, ["mm_sh"])
"""

from __future__ import annotations

from pathlib import Path

from .base import VALUE_KEYS, HistoryStore, PutResult, Snapshot, StoreInfo
from .location import is_desk_url
from .sqlite import SQLiteStore


def open_store(location: Path | str, *, password=None) -> HistoryStore:
    """The store at *location*: a path is a local SQLite file; a ``postgresql://user@host/db``
    URL is a desk's shared database (psycopg is loaded only then; the password comes from
    *password* or the OS keyring, see :mod:`.password`)."""
    if is_desk_url(location):
        from .postgres import PostgresStore

        return PostgresStore(str(location), password=password)
    return SQLiteStore(location)


__all__ = ["HistoryStore", "PutResult", "Snapshot", "StoreInfo", "SQLiteStore", "VALUE_KEYS", "open_store"]
