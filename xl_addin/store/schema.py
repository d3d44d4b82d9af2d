"""The history table's layout and its versioned, forward-only migrations.

One narrow typed row per (source, code, data date): a column per catalog field
(share counts INTEGER, amounts and ratios REAL), the key as the table's primary key
and, in SQLite, WITHOUT ROWID, so the rows of one code sit together in key order and
"one field of one code over a year" is a range scan of the primary key — no JSON is
parsed on the way out. The DDL is written in the subset SQLite and PostgreSQL share;
:func:`table_ddl` takes the few type names that differ.

Versions live in ``schema_version``; each migration runs once, in its own
transaction, and a file from a newer xl_addin is refused rather than guessed at.
Version 1 is the cache file as ``xl_addin/cache.py`` has always made it (JSON blobs
in ``snapshot``, plus ``absent``); version 2 adds ``history`` and copies every
snapshot into it; version 3 makes ``history`` the cache: the JSON snapshots written
since are moved into it, the JSON table is retired (a row that cannot be typed is kept
in ``snapshot_retired``), and the Refresh button's ``stamp`` table joins the schema.
"""

from __future__ import annotations

from ..fields import Field
from .base import INTEGER_KINDS, VALUE_FIELDS

#: the history schema both backends share (a desk's PostgreSQL database is at this version)
CURRENT_VERSION = 2
#: the local SQLite file's version: 3 is version 2 with the history table as the cache (the
#: JSON table retired, the stamp table added); nothing of it concerns PostgreSQL
SQLITE_VERSION = 3

#: the cache file's schema before versions existed (copied from cache.py, frozen here)
LEGACY_DDL = """
CREATE TABLE IF NOT EXISTS snapshot (
    source     TEXT NOT NULL,
    code       TEXT NOT NULL,
    data_date  TEXT NOT NULL,
    fetched_at REAL NOT NULL,
    record     TEXT NOT NULL,
    PRIMARY KEY (source, code, data_date)
);
CREATE TABLE IF NOT EXISTS absent (
    source     TEXT NOT NULL,
    code       TEXT NOT NULL,
    fetched_at REAL NOT NULL,
    PRIMARY KEY (source, code)
);
CREATE INDEX IF NOT EXISTS snapshot_latest ON snapshot (source, code, fetched_at);
"""

LEGACY_ABSENT_DDL = """
CREATE TABLE IF NOT EXISTS absent (
    source     TEXT NOT NULL,
    code       TEXT NOT NULL,
    fetched_at REAL NOT NULL,
    PRIMARY KEY (source, code)
)
"""

#: the Refresh button's "not before" stamp, per source (SQLite only: the cache's)
STAMP_DDL = """
CREATE TABLE IF NOT EXISTS stamp (
    source     TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      REAL NOT NULL,
    PRIMARY KEY (source, name)
)
"""

VERSION_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER NOT NULL PRIMARY KEY,
    applied_at DOUBLE PRECISION NOT NULL
)
"""

KEY_COLUMNS = ("source", "code", "data_date", "fetched_at", "replaced")


def column_type(f: Field, integer: str = "INTEGER", real: str = "REAL") -> str:
    return integer if f.kind in INTEGER_KINDS else real


def table_ddl(date_type: str = "TEXT", real: str = "REAL", integer: str = "INTEGER", suffix: str = " WITHOUT ROWID") -> str:
    """``CREATE TABLE history``; SQLite by default (PostgreSQL: DATE, DOUBLE PRECISION, BIGINT, no suffix)."""
    values = ",\n".join(f"    {f.key:<18} {column_type(f, integer, real)}" for f in VALUE_FIELDS)
    return f"""CREATE TABLE IF NOT EXISTS history (
    source     TEXT NOT NULL,
    code       TEXT NOT NULL,
    data_date  {date_type} NOT NULL,
    fetched_at {real} NOT NULL,
    replaced   INTEGER NOT NULL DEFAULT 0,
{values},
    PRIMARY KEY (source, code, data_date)
){suffix}"""


INDEX_DDL = "CREATE INDEX IF NOT EXISTS history_fetched ON history (source, fetched_at)"
