"""The desk's history store: one PostgreSQL database shared by a team.

The same :class:`~.base.HistoryStore` contract as the local SQLite file (the same test
suite runs on both), so the service, the CLI and pandas never know which one they
read. psycopg 3 is an optional extra (``pip install 'xl-addin[postgres]'``) and is
imported only when a ``postgresql://`` location is opened.

Writes: writers of the same (source, data date) take turns (an advisory lock per date,
taken in order; other dates go on in parallel; an import of many dates takes its source's
lock alone). Every row points at the fetch that wrote it (``fetches``: one row per
(source, data date, fetch time) of a put), and a row's fetch time is its fetch's. In its
turn a writer first counts whether the store has its batch whole already, as new or newer
(the writer before it fetched the same): then nothing more is sent. A newer fetch of the
same values (a colleague's fetch of the same snapshot, minutes later), known by a digest
of each row's values, moves the fetch that wrote them forward, one small row, instead of
rewriting every wide row. Otherwise the rows go by binary COPY (values dumped in C) into
the session's temporary table, and from there in one statement, ``INSERT ... ON CONFLICT
DO UPDATE ... WHERE newer``, rows already kept as new or newer left out, in key order:
concurrent writers of the same snapshot never duplicate it and never fail on it (a newer
fetch replaces and is counted), and two writers never deadlock on each other.
The schema (in its own ``xl_addin`` schema, versioned like SQLite's) is created and
migrated only by ``lx-addin store init`` (:mod:`.desk`), run by whoever owns the
database; analysts' roles may write snapshots or only read them, and this module
only checks that the version is one it knows.

psycopg's errors can quote the connection string; every one is translated here into
a :class:`StoreError` whose one line is built from safe parts and redacted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
import threading
import time
from contextlib import contextmanager
from typing import Iterable, Iterator

from ..credentials import redact
from ..exceptions import StoreError
from ..fields import Field
from . import schema
from .base import (INTEGER_KINDS, VALUE_FIELDS, VALUE_KEYS, HistoryStore, PutResult, Snapshot, StoreInfo, as_codes,
                   newest_of, value_fields)
from .location import DeskURL, parse_desk_url
from .password import Password, stored_password

SCHEMA = "xl_addin"
T_HISTORY, T_ABSENT, T_VERSION = f"{SCHEMA}.history", f"{SCHEMA}.absent", f"{SCHEMA}.schema_version"
T_FETCHES = f"{SCHEMA}.fetches"
#: the desk database's schema version (the SQLite file's is schema.SQLITE_VERSION): 2 is the typed
#: history of schema.CURRENT_VERSION, 3 adds ``fetches`` and each row's fetch and values' digest
DESK_VERSION = 3
CONNECT_TIMEOUT = 5  # seconds; a desk database that does not answer falls back quickly
LOCK_TIMEOUT = 30.0  # seconds a write waits for another writer before it gives up with one line
_LOW, _HIGH = dt.date(1, 1, 1), dt.date(9999, 12, 31)
_COLUMNS = ", ".join(VALUE_KEYS)
_INT_KEYS = frozenset(f.key for f in VALUE_FIELDS if f.kind in INTEGER_KINDS)
#: a row's fetch time is its fetch's, moved forward by newer fetches of the same values (never earlier
#: than the row's own: a fetch is made with its rows' time and only moves forward)
_FETCHED = "GREATEST(h.fetched_at, f.fetched_at)"
_SELECT = (f"SELECT h.source, h.code, h.data_date, {_FETCHED} AS fetched_at, "
           f"{', '.join('h.' + k for k in VALUE_KEYS)} FROM {T_HISTORY} h LEFT JOIN {T_FETCHES} f USING (fetch_id)")
#: each put's rows go first into this session's own temporary table, by COPY (binary, the values
#: dumped in C), then into ``history`` in one statement: no per-value array building in Python
T_INCOMING = "xl_addin_incoming"
_INCOMING_DDL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {T_INCOMING} (source TEXT COLLATE \"C\", code TEXT COLLATE \"C\", "
    "data_date DATE, fetched_at DOUBLE PRECISION, digest BIGINT, "
    + ", ".join(f"{k} {'BIGINT' if k in _INT_KEYS else 'DOUBLE PRECISION'}" for k in VALUE_KEYS)
    + ") ON COMMIT DELETE ROWS"
)
_COPY = f"COPY {T_INCOMING} (source, code, data_date, fetched_at, digest, {_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = ["text", "text", "date", "float8", "int8"] + ["int8" if k in _INT_KEYS else "float8" for k in VALUE_KEYS]
#: in one statement: each row of the put beside the fetch time the store has for it (one primary-key
#: lookup a row: OFFSET 0 keeps it from becoming a join over all of history; the few fetches that wrote
#: them looked up once); rows the store has as new or newer are left out; a fetch row is made for each
#: (source, date, fetch time) with rows to write; these are written in key order (so that two writers
#: lock rows in the same order and never deadlock), the newest fetch winning, -0.0 kept as 0.0 (as
#: SQLite keeps it); a code that now has a record is no longer "absent"
_TODO = f"""
WITH kept AS (
    SELECT t.*, h.fetch_id AS old_id, h.fetched_at AS old_at
    FROM {T_INCOMING} t
    LEFT JOIN LATERAL (SELECT fetch_id, fetched_at FROM {T_HISTORY} h WHERE h.source = t.source AND h.code = t.code
                       AND h.data_date = t.data_date OFFSET 0) h ON true
), theirs AS (
    SELECT fetch_id, fetched_at FROM {T_FETCHES} WHERE fetch_id IN (SELECT old_id FROM kept)
), todo AS (
    SELECT k.* FROM kept k LEFT JOIN theirs r ON r.fetch_id = k.old_id
    WHERE k.old_at IS NULL OR GREATEST(k.old_at, r.fetched_at) < k.fetched_at
)"""
#: writing ``todo``: a fetch row for each (source, date, fetch time) with rows to write, the rows, the absent
_WRITE = f"""
, made AS (
    INSERT INTO {T_FETCHES} (source, data_date, fetched_at, codes, batch)
    SELECT source, data_date, fetched_at, md5(string_agg(code, ',' ORDER BY code)), %(batch)s FROM {T_INCOMING} i
    WHERE EXISTS (SELECT 1 FROM todo t WHERE t.source = i.source AND t.data_date = i.data_date
                  AND t.fetched_at = i.fetched_at)
    GROUP BY 1, 2, 3
    RETURNING fetch_id, source, data_date, fetched_at
), written AS (
    INSERT INTO {T_HISTORY} AS h (source, code, data_date, fetched_at, fetch_id, digest, {_COLUMNS})
    SELECT t.source, t.code, t.data_date, t.fetched_at, made.fetch_id, t.digest,
           {', '.join(k if k in _INT_KEYS else f'{k} + 0.0' for k in VALUE_KEYS)}
    FROM todo t JOIN made USING (source, data_date, fetched_at)
    ORDER BY t.source, t.code, t.data_date
    ON CONFLICT (source, code, data_date) DO UPDATE SET
        fetched_at = excluded.fetched_at, fetch_id = excluded.fetch_id, digest = excluded.digest,
        replaced = h.replaced + 1, {', '.join(f'{k} = excluded.{k}' for k in VALUE_KEYS)}
    WHERE excluded.fetched_at > h.fetched_at  -- newer than its fetch: found in todo, in this writer's turn
    RETURNING (xmax = 0) AS inserted
), cleared AS (
    DELETE FROM {T_ABSENT} a USING {T_INCOMING} t
    WHERE a.source = t.source AND a.code = t.code AND a.fetched_at <= t.fetched_at
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written
"""
_PUT = _TODO + _WRITE
#: the same for a fetch's batch the store has none of (counted in this writer's turn): no row looked up
_PUT_NEW = f"WITH todo AS (SELECT * FROM {T_INCOMING})" + _WRITE
#: a fetch's batch known from the fetches alone: a fetch of the same (source, date) and the same codes at
#: this time or later means the store has it whole, as new or newer (each fetch keeps the digest of its
#: batch's codes, every one of which has a fetch time at least the fetch's from then on: fetch times only
#: move forward, and a fetch moved forward takes the codes of the batch that moved it). An older one that
#: still has a row for each of the codes and the same digest of their values is moved forward.
_SEEN = f"""
SELECT f.fetch_id, f.fetched_at >= %s, f.batch, (SELECT count(*) FROM {T_HISTORY} x WHERE x.fetch_id = f.fetch_id)
FROM {T_FETCHES} f WHERE f.source = %s AND f.data_date = %s AND f.codes = %s
ORDER BY f.fetched_at DESC LIMIT 4
"""
#: otherwise, each row of the batch beside the store's (one primary-key lookup a code, whatever the
#: statistics say), by the fetch that wrote it: how many rows, how many of them hold other values (by each
#: row's digest), whether they are as new as the batch or newer, and how many rows that fetch has in all.
#: A fetch the batch has every row of, older and with the same values (a colleague's fetch of the same
#: snapshot, minutes before), moves forward to the batch's time: one small row, no history row written.
_KEPT = f"""
WITH mine AS (SELECT * FROM unnest(string_to_array(%s, ','), string_to_array(%s, ',')::int8[]) AS m(code, digest)),
kept AS (
    SELECT h.fetch_id, h.fetched_at, count(*) AS n, count(*) FILTER (WHERE h.digest IS DISTINCT FROM m.digest) AS differ
    FROM mine m CROSS JOIN LATERAL (SELECT fetch_id, fetched_at, digest FROM {T_HISTORY} h
                                    WHERE h.source = %s AND h.code = m.code AND h.data_date = %s OFFSET 0) h
    GROUP BY 1, 2
)
SELECT k.fetch_id, sum(k.n)::bigint, sum(k.differ)::bigint,
       bool_and(GREATEST(k.fetched_at, f.fetched_at) >= %s), bool_or(GREATEST(k.fetched_at, f.fetched_at) >= %s),
       (SELECT count(*) FROM {T_HISTORY} x WHERE x.fetch_id = k.fetch_id), bool_and(f.fetch_id IS NOT NULL)
FROM kept k LEFT JOIN {T_FETCHES} f USING (fetch_id) GROUP BY k.fetch_id
"""
_CONFIRM = f"""
WITH moved AS (
    UPDATE {T_FETCHES} f SET fetched_at = %(at)s, replaced = f.replaced + m.n, codes = %(set)s, batch = %(batch)s
    FROM unnest(%(ids)s::bigint[], %(ns)s::bigint[]) AS m(id, n)
    WHERE f.fetch_id = m.id AND f.fetched_at < %(at)s
), cleared AS (
    DELETE FROM {T_ABSENT} a WHERE a.source = %(source)s AND a.code = ANY(string_to_array(%(codes)s, ','))
                               AND a.fetched_at <= %(at)s
)
SELECT 1
"""
#: writers of the same (source, data date) take turns: one waiting for its turn then finds the other's rows
#: kept (one count) instead of sending its own to queue on their row locks; other dates go on in parallel.
#: Locks are taken in order (no deadlock). A put of many dates (an import) takes its source's lock alone,
#: which the others hold shared: it waits for them, they wait for it.
_TURN = "pg_advisory_xact_lock(hashtext(%s), %s)"
_SHARED_TURN = "pg_advisory_xact_lock_shared(hashtext(%s), 0)"
_TURN_DATES = 16
_RETRY_STATES = frozenset({"40P01", "40001"})  # deadlock, serialization failure: run the batch again


def load_psycopg():
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            "a PostgreSQL store needs psycopg: pip install 'xl-addin[postgres]' (or set store back to a local file)"
        ) from None
    return psycopg


class PostgresStore(HistoryStore):
    """History in a desk's PostgreSQL database (its schema made by ``lx-addin store init``)."""

    backend = "postgresql"

    def __init__(self, location: str | DeskURL, *, password: Password | str | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT, lock_timeout: float = LOCK_TIMEOUT,
                 answer_timeout: float | None = None):
        self.url = location if isinstance(location, DeskURL) else parse_desk_url(location)
        self._password = Password(password) if isinstance(password, str) else password
        self._timeout = connect_timeout
        self._lock_timeout = lock_timeout
        #: seconds one use of an open connection may wait for the server (None: no limit). A server
        #: that stops answering mid-session (hung, its host frozen) still acknowledges TCP, so neither
        #: the connect timeout nor keepalives end the wait: the connection's socket is shut down at
        #: the deadline (the HTTP client's watchdog, :mod:`xl_addin.deadline`) and the use fails.
        self._answer_timeout = answer_timeout
        self._conn = None
        self._lock = threading.RLock()
        self.version: int | None = None
        self._writer: bool | None = None  # may this login write? asked once
        self._incoming_on = None  # the connection whose session has the temporary table for writes

    def __repr__(self) -> str:
        return f"PostgresStore({self.url.display!r})"

    # -- connection, errors, the schema's version ----------------------------------------------
    def connect(self, *, check_version: bool = True):
        """A new psycopg connection (autocommit; writes open their own transactions)."""
        psycopg = load_psycopg()
        password = self._password or stored_password(self.url)
        self._password = password
        extra = {"password": password.reveal()} if password else {}
        params = self.url.conninfo(application_name="xl_addin", **extra)
        params.setdefault("connect_timeout", max(1, int(self._timeout)))
        # a writer that stalls (a laptop shut mid-write) must not hold everyone else for ever; set with
        # the connection's startup packet, so that connecting costs no extra round trip for them
        ms = max(1, int(self._lock_timeout * 1000))
        # series() relies on its plan's order (no parallel plan); no JIT: every query here is short, and a
        # cost estimate over its threshold made a 7 ms write spend 70 ms compiling
        params["options"] = (f"-c lock_timeout={ms} -c idle_in_transaction_session_timeout={max(ms * 2, 60000)} "
                             "-c max_parallel_workers_per_gather=0 -c jit=off")
        try:
            # prepare_threshold=None: a prepared generic plan of these array queries is 10x slower
            conn = psycopg.connect(autocommit=True, prepare_threshold=None, **params)
        except psycopg.Error as exc:
            raise self.translate_error(exc, connecting=True) from None
        if check_version:
            try:
                self.version = check_schema(conn, self.url)
            except BaseException as exc:
                conn.close()
                if isinstance(exc, psycopg.Error):
                    raise self.translate_error(exc) from None
                raise
        return conn

    @contextmanager
    def _session(self, write: bool = False):
        psycopg = load_psycopg()
        with self._lock:
            if self._conn is not None and (self._conn.closed or self._conn.broken):
                self._conn = None
            if self._conn is None:
                self._conn = self.connect()
            conn = self._conn
            watch = self._watch(conn)
            try:
                if write:
                    with conn.transaction():
                        yield conn
                else:
                    yield conn
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    self._conn = None
                    conn.close()
                if watch is not None and time.monotonic() >= watch[0]:
                    error = StoreError(f"the desk store {self.url.display} did not answer within "
                                       f"{self._answer_timeout:g} s; is the server up and reachable from here?")
                    error.sqlstate, error.kind = None, "unreachable"
                    raise error from None
                raise self.translate_error(exc) from None
            finally:
                if watch is not None:
                    from ..deadline import unwatch

                    unwatch(watch[1])
                    watch[2].close()

    def _watch(self, conn):
        """``(deadline, key, socket)`` of this use's watch, or None without an answer timeout."""
        if not self._answer_timeout:
            return None
        import socket

        from ..deadline import watch_socket

        sock = socket.fromfd(conn.fileno(), socket.AF_INET, socket.SOCK_STREAM)  # a dup: closed after the use
        when = time.monotonic() + self._answer_timeout
        return when, watch_socket(when, sock), sock

    @property
    def connected(self) -> bool:
        """Whether a connection is open (the next call need not connect first)."""
        return self._conn is not None and not self._conn.closed

    def translate_error(self, exc, connecting: bool = False) -> StoreError:
        """One safe line for a psycopg error: no connection string, never the password."""
        where = f"the desk store {self.url.display}"
        state = getattr(exc, "sqlstate", None)
        diag = getattr(exc, "diag", None)
        primary = (getattr(diag, "message_primary", None) or "").strip()
        text = str(exc)
        kind = "other"
        if state in ("28P01", "28000") or "password authentication failed" in text:
            kind = "auth"
            why = primary or "password authentication failed"
            line = (f"{where}: {why}; check the password and run `lx-addin store login` to keep the right one "
                    "in the system keyring")
        elif "no password supplied" in text:
            kind = "auth"
            line = f"{where} asks for a password and none is kept for {self.url.key}: run `lx-addin store login`"
        elif state == "42501":
            kind = "read-only"
            line = (f"{where}: role {self.url.user!r} may only read snapshots here ({primary or 'permission denied'}); "
                    "ask the database owner to grant it the writer role")
        elif state == "55P03":
            kind = "busy"
            line = (f"{where} is busy: another writer held it for more than {self._lock_timeout:g} s; "
                    "nothing was written, try again")
        elif state in ("3D000",):
            line = f"{where}: {primary or 'no such database'}"
        elif state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03"):
            detail = primary or text.strip().splitlines()[0] if text.strip() else type(exc).__name__
            if "failed:" in detail:
                detail = detail.rsplit("failed:", 1)[1].strip()
            verb = "cannot reach" if connecting else "lost the connection to"
            kind = "unreachable"
            line = f"{verb} {where} ({detail}); is the server up and reachable from here?"
        else:
            line = f"{where}: {primary or type(exc).__name__}"
        line = " ".join(line.split())
        error = StoreError(redact(line, self._password.reveal() if self._password else None))
        error.sqlstate, error.kind = state, kind  # for callers that decide (retry, login), never shown
        return error

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- writes ----------------------------------------------------------------------------------
    def put(self, snapshots: Iterable[Snapshot]) -> PutResult:
        newest, unchanged = newest_of(snapshots, lambda s: (s.source, s.code, s.data_date))
        if not newest:
            return PutResult(unchanged=unchanged)
        kinds = {(s.source, s.data_date, s.fetched_at) for s in newest.values()}
        one_fetch = kinds.pop() if len(kinds) == 1 else None  # one fetch's batch: the usual put
        ordered = sorted(newest.values(), key=_by_code)  # the batch digest's order
        codes = [s.code for s in ordered]
        dates = sorted({(s.source, s.data_date) for s in newest.values()})
        sources = sorted({src for src, _ in dates})
        if len(dates) <= _TURN_DATES:
            turns = [(_SHARED_TURN, (src,)) for src in sources] + [(_TURN, (src, day.toordinal())) for src, day in dates]
        else:
            turns = [(_TURN, (src, 0)) for src in sources]
        take_turns = "SELECT " + ", ".join(sql for sql, _ in turns)
        turn_args = [a for _, args in turns for a in args]
        joined = ",".join(codes)  # five-digit codes: one text, split by the server (a list is dumped in Python)
        rows = digests = mine = None
        for attempt in range(5):
            try:
                with self._session(write=True) as conn:
                    self._check_writer(conn)
                    conn.execute(take_turns, turn_args)
                    new = False
                    if one_fetch is not None:
                        source, day, at = one_fetch
                        code_set = _code_set(codes)
                        for fetch_id, newer, batch, rows_now in conn.execute(_SEEN, (at, source, day, code_set)):
                            if newer and rows_now == len(codes):  # the writer before us fetched it (its rows all there)
                                return PutResult(unchanged=unchanged + len(codes))
                            if rows_now == len(codes) and batch is not None:  # older: the same values?
                                if digests is None:
                                    digests, mine = _digests(ordered)
                                if batch == mine:
                                    conn.execute(_CONFIRM, {"at": at, "ids": [fetch_id], "ns": [len(codes)],
                                                            "source": source, "codes": joined, "set": code_set,
                                                            "batch": batch})
                                    return PutResult(replaced=len(codes), unchanged=unchanged)
                        if digests is None:
                            digests, mine = _digests(ordered)
                        kept = conn.execute(_KEPT, (joined, ",".join(map(str, digests)), source, day, at, at)).fetchall()
                        decided = _decide(kept, len(codes))
                        if decided is not None:
                            newer, older = decided
                            if older:  # the same values, fetched later: their fetches move forward
                                conn.execute(_CONFIRM, {"at": at, "ids": [i for i, _ in older], "ns": [n for _, n in older],
                                                        "source": source, "codes": joined, "set": code_set,
                                                        "batch": mine if len(older) == 1 and not newer else None})
                            return PutResult(replaced=len(codes) - newer, unchanged=unchanged + newer)
                        new = not kept
                    if digests is None:
                        digests, mine = _digests(ordered)
                    rows = rows or list(map(_row, ordered, digests))
                    if self._incoming_on is not conn:  # once per connection (emptied at each commit)
                        conn.execute(_INCOMING_DDL)
                    with conn.cursor() as cur:
                        with cur.copy(_COPY) as copy:
                            copy.set_types(_COPY_TYPES)
                            for row in rows:
                                copy.write_row(row)
                    batch = mine if one_fetch is not None else None  # a one-fetch put's, for the next one's check
                    inserted, replaced = conn.execute(_PUT_NEW if new else _PUT, {"batch": batch}).fetchone()
                self._incoming_on = conn  # committed: the table stays for the session
                break
            except StoreError as exc:
                if attempt < 4 and getattr(exc, "sqlstate", None) in _RETRY_STATES:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise
        return PutResult(inserted, replaced, unchanged + len(rows) - inserted - replaced)

    def _check_writer(self, conn) -> None:
        """A read-only login asked to write: one line, even when there would be nothing to write."""
        if self._writer is None:
            self._writer = bool(conn.execute("SELECT has_table_privilege(%s, 'INSERT')", (T_HISTORY,)).fetchone()[0])
        if not self._writer:
            raise StoreError(f"the desk store {self.url.display}: role {self.url.user!r} may only read snapshots here; "
                             "ask the database owner to grant it the writer role")

    def mark_absent(self, codes: Iterable[str], fetched_at: float, *, source: str) -> None:
        codes = sorted(as_codes(codes))
        if not codes:
            return
        with self._session(write=True) as conn:
            self._check_writer(conn)
            conn.execute(
                f"INSERT INTO {T_ABSENT} AS a (source, code, fetched_at) "
                "SELECT %s, c, %s FROM unnest(%s::text[]) AS c "
                "ON CONFLICT (source, code) DO UPDATE SET fetched_at = GREATEST(a.fetched_at, excluded.fetched_at)",
                (source, float(fetched_at), codes),
            )

    # -- reads -----------------------------------------------------------------------------------
    @staticmethod
    def _snapshot(row) -> Snapshot:
        return Snapshot(row[0], row[1], row[2], row[3], dict(zip(VALUE_KEYS, row[4:])))

    def _rows(self, query: str, args=()) -> list[tuple]:
        with self._session() as conn:
            with conn.cursor(binary=True) as cur:
                cur.execute(query, args)
                return cur.fetchall()

    def latest(self, codes: str | Iterable[str], *, source: str) -> dict[str, Snapshot]:
        codes = as_codes(codes)
        if not codes:
            return {}
        rows = self._rows(
            f"SELECT h.* FROM unnest(%s::text[]) AS c(code) CROSS JOIN LATERAL "
            f"({_SELECT} WHERE h.source = %s AND h.code = c.code ORDER BY h.data_date DESC LIMIT 1) h",
            (codes, source),
        )
        return {row[1]: self._snapshot(row) for row in rows}

    def absent(self, codes: str | Iterable[str], *, source: str) -> dict[str, float]:
        codes = as_codes(codes)
        if not codes:
            return {}
        return dict(self._rows(f"SELECT code, fetched_at FROM {T_ABSENT} WHERE source = %s AND code = ANY(%s::text[])",
                               (source, codes)))

    def series(self, codes: str | Iterable[str], fields: str | Field | Iterable[str | Field], start: dt.date | None = None,
               end: dt.date | None = None, *, source: str) -> list[tuple]:
        keys = [f.key for f in value_fields(fields)]
        codes = as_codes(codes)
        if not codes:
            return []
        return self._rows(
            # one primary-key range scan per code, in the codes' order, whatever the planner's statistics
            # say: OFFSET 0 keeps the LATERAL subquery from being flattened into a hash join (which then
            # sorts 150,000 rows for a year of 600 codes: twice the time), so the plan can only be a
            # nested loop over the codes as given, each code's rows in key (date) order; no parallel
            # plan (max_parallel_workers_per_gather=0 at connect) reorders it
            f"SELECT c.code, h.* FROM unnest(%s::text[]) AS c(code) CROSS JOIN LATERAL "
            f"(SELECT data_date, {', '.join(keys)} FROM {T_HISTORY} WHERE source = %s AND code = c.code "
            "AND data_date BETWEEN %s AND %s ORDER BY data_date OFFSET 0) h",
            (codes, source, start or _LOW, end or _HIGH),
        )

    def codes_seen(self, since: float, *, source: str) -> list[str]:
        rows = self._rows(f"SELECT DISTINCT h.code FROM {T_FETCHES} f JOIN {T_HISTORY} h ON h.fetch_id = f.fetch_id "
                          "WHERE f.source = %s AND f.fetched_at >= %s ORDER BY h.code", (source, float(since)))
        return [r[0] for r in rows]

    def info(self, source: str | None = None) -> StoreInfo:
        where, args = ("WHERE source = %s", [source]) if source is not None else ("", [])
        with self._session() as conn:
            version = conn.execute(f"SELECT MAX(version) FROM {T_VERSION}").fetchone()[0]
            n, codes, first, last, replaced = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT code), MIN(data_date), MAX(data_date), "
                f"COALESCE(SUM(replaced), 0) FROM {T_HISTORY} {where}", args
            ).fetchone()
            # a row's fetch time is its fetch's; a fetch whose rows all went to newer ones is older than them
            fetch, confirmed = conn.execute(f"SELECT MAX(fetched_at), COALESCE(SUM(replaced), 0) FROM {T_FETCHES} "
                                            f"{where}", args).fetchone() if n else (None, 0)
            replaced += confirmed
            sources = tuple(r[0] for r in conn.execute(
                f"SELECT DISTINCT source FROM {T_HISTORY} {where} ORDER BY source", args))
            size = conn.execute(
                f"SELECT pg_total_relation_size('{T_HISTORY}') + pg_total_relation_size('{T_ABSENT}') "
                f"+ pg_total_relation_size('{T_FETCHES}')").fetchone()[0]
        return StoreInfo(
            backend=self.backend, location=self.url.display, schema_version=version, snapshots=n, codes=codes,
            sources=sources, first_data_date=first, last_data_date=last, last_fetch=fetch, replacements=int(replaced),
            size_bytes=int(size),
        )

    def can_write(self) -> bool:
        """Whether this login may write snapshots (the writer role), or only read them."""
        with self._session() as conn:
            return bool(conn.execute("SELECT has_table_privilege(%s, 'INSERT')", (T_HISTORY,)).fetchone()[0])

    def export_rows(self, source: str | None = None) -> Iterator[Snapshot]:
        where, args = ("WHERE h.source = %s", [source]) if source is not None else ("", [])
        rows = self._rows(f"{_SELECT} {where} ORDER BY h.source, h.code, h.data_date", args)
        for row in rows:
            yield self._snapshot(row)


_FIRST_VALUE = 5
_KINDS = tuple((_FIRST_VALUE + i, k, k in _INT_KEYS) for i, k in enumerate(VALUE_KEYS))
#: a row's values as bytes for their digest: share counts as 8-byte integers, the rest as doubles, and a
#: mask of the missing ones; the same bytes for the same values on every machine and Python
_PACK = struct.Struct("<Q" + "".join("q" if k in _INT_KEYS else "d" for k in VALUE_KEYS))
assert len(VALUE_KEYS) <= 64


def _packed(values: tuple) -> bytes:
    """A row's values as bytes for their digest (share counts as 8-byte integers, the rest as doubles, a
    mask of the missing ones): the same bytes for the same values on every machine and Python. (-0.0 and
    0.0 differ here: a fetch of one after the other is written, not moved forward.)"""
    missing = 0
    if None in values:
        values = list(values)
        for i, v in enumerate(values):
            if v is None:
                missing |= 1 << i
                values[i] = 0
    try:
        return _PACK.pack(missing, *values)
    except struct.error:  # a share count given as a float (2.0): as its column keeps it
        return _PACK.pack(missing, *(_value(k, v) for k, v in zip(VALUE_KEYS, values)))


def _digests(snapshots: list[Snapshot]) -> tuple[list[int], int]:
    """Each row's digest (64 bits of BLAKE2b over its values) and the batch's (over each row's code and
    values, in the order given: code order), in one pass."""
    batch = hashlib.blake2b(digest_size=8)
    out = []
    for s in snapshots:
        packed = _packed(tuple(map(s.values.get, VALUE_KEYS)))
        batch.update(s.code.encode())
        batch.update(packed)
        out.append(int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(), "little", signed=True))
    return out, int.from_bytes(batch.digest(), "little", signed=True)


def _by_code(s: Snapshot) -> str:
    return s.code


def _decide(kept: list[tuple], n: int) -> tuple[int, list[tuple[int, int]]] | None:
    """From :data:`_KEPT`'s rows: (rows kept as new or newer, [(fetch, rows)] to move forward) when the batch
    changes nothing but fetch times; None when it must be written (new rows, other values, part of a fetch)."""
    if sum(row[1] for row in kept) != n:
        return None
    newer, older = 0, []
    for fetch_id, rows, differ, all_newer, any_newer, total, known in kept:
        if all_newer:
            newer += rows
        elif any_newer or differ or rows != total or not known:
            return None
        else:
            older.append((fetch_id, rows))
    return newer, older


def _code_set(codes: list[str]) -> str:
    """The digest of a batch's codes, as the server makes it: md5 of them sorted (bytewise), comma-joined."""
    return hashlib.md5(",".join(sorted(codes)).encode(), usedforsecurity=False).hexdigest()


def _row(s: Snapshot, digest: int) -> list:
    """One COPY row: the key, the fetch time, the values' digest, the values in column order (share
    counts whole, the rest floats with -0.0 as 0.0)."""
    row = [s.source, s.code, s.data_date, float(s.fetched_at), digest, *map(s.values.get, VALUE_KEYS)]
    for i, key, integer in _KINDS:
        value = row[i]
        if value is not None and ((type(value) is not int) if integer else (type(value) is not float or value == 0.0)):
            row[i] = _value(key, value)
    return row


def _value(key: str, value):
    """A value as its column's type: share counts as whole numbers, the rest as floats
    (-0.0 as 0.0, as SQLite keeps it, so both backends give the same numbers back)."""
    if value is None:
        return None
    if key in _INT_KEYS:
        if isinstance(value, float):
            if not value.is_integer():
                raise StoreError(f"{key} is {value!r}, not a whole number of shares")
            return int(value)
        return value
    return float(value) + 0.0


# -- the schema: checked by every store, made and migrated by `store init` ---------------------------
def table_ddl() -> str:
    """``history`` for PostgreSQL: the shared layout, byte-ordered text keys (as SQLite sorts them)."""
    ddl = schema.table_ddl(date_type="DATE", real="DOUBLE PRECISION", integer="BIGINT", suffix="")
    ddl = ddl.replace("CREATE TABLE IF NOT EXISTS history", f"CREATE TABLE IF NOT EXISTS {T_HISTORY}")
    return ddl.replace("TEXT NOT NULL", 'TEXT COLLATE "C" NOT NULL')


def _to_v2(conn) -> None:
    """The typed ``history`` table and ``absent`` (a desk database never had the cache's JSON blobs,
    so it starts at the layout SQLite files reach with their version 2)."""
    conn.execute(table_ddl())
    conn.execute(f"CREATE INDEX IF NOT EXISTS history_fetched ON {T_HISTORY} (source, fetched_at)")
    conn.execute(f"""CREATE TABLE IF NOT EXISTS {T_ABSENT} (
        source     TEXT COLLATE "C" NOT NULL,
        code       TEXT COLLATE "C" NOT NULL,
        fetched_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (source, code))""")


def _to_v3(conn) -> None:
    """``fetches``: each row points at the fetch that wrote it, and a row's fetch time is its fetch's,
    so that a newer fetch of the same values (a colleague's, of the same snapshot) moves one small
    row forward instead of rewriting every wide one; each row's values' digest finds them. Rows kept
    before get a fetch per (source, data date, fetch time) and no digest (the next newer fetch of
    them writes them once, with one)."""
    conn.execute(f"""CREATE TABLE IF NOT EXISTS {T_FETCHES} (
        fetch_id   BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        source     TEXT COLLATE "C" NOT NULL,
        data_date  DATE NOT NULL,
        fetched_at DOUBLE PRECISION NOT NULL,
        codes      TEXT,  -- md5 of its batch's codes, sorted, comma-joined
        batch      BIGINT,  -- the digest of its batch's values (one fetch's put), see postgres._digests
        replaced   BIGINT NOT NULL DEFAULT 0)""")
    conn.execute(f"ALTER TABLE {T_FETCHES} ADD COLUMN IF NOT EXISTS codes TEXT, ADD COLUMN IF NOT EXISTS batch BIGINT")
    conn.execute(f"CREATE INDEX IF NOT EXISTS fetches_fetched ON {T_FETCHES} (source, fetched_at)")
    conn.execute(f"CREATE INDEX IF NOT EXISTS fetches_date ON {T_FETCHES} (source, data_date, codes)")
    conn.execute(f"ALTER TABLE {T_HISTORY} ADD COLUMN IF NOT EXISTS fetch_id BIGINT, "
                 "ADD COLUMN IF NOT EXISTS digest BIGINT")
    conn.execute(f"INSERT INTO {T_FETCHES} (source, data_date, fetched_at, codes) "
                 "SELECT source, data_date, fetched_at, md5(string_agg(code, ',' ORDER BY code)) "
                 f"FROM {T_HISTORY} WHERE fetch_id IS NULL GROUP BY 1, 2, 3")
    conn.execute(f"UPDATE {T_HISTORY} h SET fetch_id = f.fetch_id FROM {T_FETCHES} f WHERE h.fetch_id IS NULL "
                 "AND f.source = h.source AND f.data_date = h.data_date AND f.fetched_at = h.fetched_at")
    conn.execute(f"ALTER TABLE {T_HISTORY} ALTER COLUMN fetch_id SET NOT NULL")
    conn.execute(f"CREATE INDEX IF NOT EXISTS history_fetch ON {T_HISTORY} (fetch_id)")
    conn.execute(f"DROP INDEX IF EXISTS {SCHEMA}.history_fetched")  # fetches_fetched answers it now


MIGRATIONS = {2: _to_v2, 3: _to_v3}
assert max(MIGRATIONS) == DESK_VERSION
LOCK_KEY = 0x786C5F6164  # pg_advisory_xact_lock: one `store init` migrates at a time


def _newer(version: int, url: DeskURL) -> StoreError:
    return StoreError(
        f"the desk store {url.display} has schema {version}, made by a newer xl_addin (this one knows "
        f"{DESK_VERSION}); upgrade xl_addin to use it"
    )


def schema_version(conn) -> int:
    """The database's schema version; 0 when `store init` never ran."""
    if conn.execute("SELECT to_regclass(%s)", (T_VERSION,)).fetchone()[0] is None:
        return 0
    return conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {T_VERSION}").fetchone()[0]


def check_schema(conn, url: DeskURL) -> int:
    version = schema_version(conn)
    if version > DESK_VERSION:
        raise _newer(version, url)
    if version == 0:
        raise StoreError(f"the desk store {url.display} has no history yet: whoever owns the database runs "
                         "`lx-addin store init` once")
    if version < DESK_VERSION:
        raise StoreError(f"the desk store {url.display} has schema {version}; whoever owns the database runs "
                         f"`lx-addin store init` to bring it to {DESK_VERSION}")
    return version


def migrate(conn, url: DeskURL) -> tuple[int, int]:
    """Bring the schema to :data:`DESK_VERSION`, forward only, each step in its own
    transaction, one migrator at a time. Returns (version before, version after)."""
    before = None
    while True:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            conn.execute(schema.VERSION_DDL.replace("schema_version", T_VERSION, 1))
            version = schema_version(conn)
            before = version if before is None else before
            if version > DESK_VERSION:
                raise _newer(version, url)
            if version == DESK_VERSION:
                return before, version
            step = min(v for v in MIGRATIONS if v > version)
            MIGRATIONS[step](conn)
            conn.execute(f"INSERT INTO {T_VERSION} (version, applied_at) VALUES (%s, %s)", (step, time.time()))
