"""Setting up a desk's database: `lx-addin store init`, run once by whoever owns it.

Creates (or brings forward) the history schema and two roles: a writer role that may
add and replace snapshots, and a reader role that may only read them. Both are group
roles without a login: the owner gives each analyst a login in one of them (README,
"For a desk"). Running it again changes nothing but what is missing: the migrations
are idempotent and forward only, the roles are created only when absent, the grants
are granted again (harmless), so an upgrade of xl_addin is "run init again".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..exceptions import InputError, StoreError
from .location import DeskURL, parse_desk_url
from .password import Password

READER_ROLE = "xl_addin_reader"
WRITER_ROLE = "xl_addin_writer"
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class InitResult:
    location: str
    version_before: int
    version: int
    roles_created: tuple[str, ...]
    reader: str
    writer: str

    def line(self) -> str:
        schema = (f"schema {self.version} (was {self.version_before or 'none'})"
                  if self.version_before != self.version else f"schema {self.version} already in place")
        roles = (f"created role(s) {', '.join(self.roles_created)}" if self.roles_created
                 else "roles already in place")
        return (f"{self.location}: {schema}; {roles}; {self.writer} may write snapshots, "
                f"{self.reader} may only read them")


def init_store(location: str | DeskURL, *, password: Password | str | None = None,
               reader: str = READER_ROLE, writer: str = WRITER_ROLE) -> InitResult:
    """Create or migrate the schema, create the two roles, grant them; idempotent."""
    from .postgres import (LOCK_KEY, SCHEMA, T_ABSENT, T_FETCHES, T_HISTORY, T_VERSION, PostgresStore, load_psycopg,
                           migrate)

    for role in (reader, writer):
        if not _ROLE_NAME.match(role):
            raise InputError(f"role name {role!r} is not allowed; use lower-case letters, digits and _, e.g. {READER_ROLE}")
    if reader == writer:
        raise InputError("the reader and the writer role must differ")
    url = location if isinstance(location, DeskURL) else parse_desk_url(location)
    store = PostgresStore(url, password=password)
    psycopg = load_psycopg()
    conn = store.connect(check_version=False)
    try:
        before, after = migrate(conn, url)
        created = []
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))  # one init at a time: roles, grants
            for role in (reader, writer):
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
                    conn.execute(f"CREATE ROLE {role} NOLOGIN")
                    created.append(role)
            db = conn.execute("SELECT current_database()").fetchone()[0]
            ident = psycopg.sql.Identifier(db).as_string(conn)
            for statement in (
                f"GRANT CONNECT ON DATABASE {ident} TO {reader}",
                f"GRANT USAGE ON SCHEMA {SCHEMA} TO {reader}",
                f"GRANT SELECT ON {T_HISTORY}, {T_ABSENT}, {T_VERSION}, {T_FETCHES} TO {reader}",
                f"GRANT {reader} TO {writer}",
                f"GRANT INSERT, UPDATE ON {T_HISTORY}, {T_FETCHES} TO {writer}",
                f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {SCHEMA} TO {writer}",  # fetches' identity
                f"GRANT INSERT, UPDATE, DELETE ON {T_ABSENT} TO {writer}",
                f"REVOKE CREATE ON SCHEMA {SCHEMA} FROM PUBLIC",
            ):
                conn.execute(statement)
    except psycopg.Error as exc:
        raise _init_error(store, exc) from None
    finally:
        conn.close()
    return InitResult(url.display, before, after, tuple(created), reader, writer)


def _init_error(store, exc) -> StoreError:
    if getattr(exc, "sqlstate", None) == "42501":
        primary = (getattr(getattr(exc, "diag", None), "message_primary", None) or "permission denied").strip()
        return StoreError(f"the desk store {store.url.display}: {primary}; `lx-addin store init` is run by the "
                          "database's owner (a role that may create schemas and roles)")
    return store.translate_error(exc)


# -- what `lx-addin store ...` does, apart from reading and printing ---------------------------
def desk_url(given: str | None = None, environ=None) -> DeskURL:
    """The desk database to act on: *given*, else the ``store`` setting; one line when neither is a URL."""
    from ..config import Settings

    location = given if given else Settings.load(environ).store
    if location is None or not isinstance(location, str) or "://" not in location:
        where = "the store setting is the local file" if location is None else f"the store setting is the file {location}"
        raise InputError(f"no desk database to use: {where}; give --url postgresql://user@host/db, or "
                         "`lx-addin config set store postgresql://analyst@db.desk.local/lixinger`")
    return parse_desk_url(location, "--url" if given else "the store setting")


def login(url: DeskURL, value: str, *, check: bool = True) -> str:
    """Check the password against the server (when it can be reached), then keep it in the
    keyring. A wrong password is refused and nothing is kept. Returns what happened, in one line."""
    from .password import store_password
    from .postgres import PostgresStore

    if not value:
        raise InputError("no password given: nothing was stored")
    note = ""
    if check:
        try:
            PostgresStore(url, password=value).connect(check_version=False).close()
        except StoreError as exc:
            if getattr(exc, "kind", None) == "auth":
                raise StoreError(f"{exc}; nothing was stored") from None
            note = f" (not checked: {exc})"
    backend = store_password(url, value)
    return f"Stored the password for {url.key} in the system keyring ({backend}){note}."


def status_rows(location) -> list[tuple[str, str]]:
    """(label, value) rows describing the store at *location*: what `store status` prints."""
    from pathlib import Path

    from .. import store as _store

    if isinstance(location, Path) and not location.exists():  # status never creates the file
        return [("backend", "sqlite"), ("location", f"{location} (not created yet)"), ("snapshots", "0")]
    store = _store.open_store(location)
    try:
        info = store.info()
        rows = [("backend", info.backend), ("location", info.location), ("schema", str(info.schema_version)),
                ("snapshots", f"{info.snapshots:,}"), ("codes", f"{info.codes:,}"),
                ("data dates", f"{info.first_data_date or '-'} .. {info.last_data_date or '-'}"),
                ("replacements", f"{info.replacements:,}")]
        if info.backend == "postgresql":
            rows.append(("this login", "may write snapshots" if store.can_write() else "may only read"))
        return rows
    finally:
        store.close()
