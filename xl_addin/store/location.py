"""Where a history store lives: a local SQLite path or a desk's PostgreSQL URL, checked
without connecting and without loading psycopg.

A URL is the one thing about the desk database that may sit in the settings file, so
it must never carry a password (that lives in the OS keyring, ``lx-addin store login``)
and it must never let the password travel in clear text: a host that is not this
machine gets ``sslmode=verify-full`` unless the URL lowers it, and lowering it to a mode
that may fall back to plain TCP (disable, allow, prefer) is refused. Everything the
store, the CLI and the settings show of a URL is :attr:`DeskURL.display`, which has no
password in it by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from ..urls import is_loopback_host
from ..exceptions import ConfigError

SCHEMES = ("postgresql", "postgres")
DEFAULT_PORT = 5432
#: libpq parameters a desk URL may carry (no password, no service file, no host list)
ALLOWED_PARAMS = frozenset({
    "sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "connect_timeout", "application_name",
})
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
PLAIN_POSSIBLE = frozenset({"disable", "allow", "prefer"})  # libpq may talk without TLS
WHERE_THE_PASSWORD_GOES = "the password goes in the system keyring: run `lx-addin store login`"


class StoreURLError(ConfigError):
    """A store URL that cannot be used as it is (nothing was connected)."""


def is_desk_url(location: object) -> bool:
    return isinstance(location, str) and location.strip().lower().startswith(tuple(f"{s}://" for s in SCHEMES))


@dataclass(frozen=True)
class DeskURL:
    """A checked PostgreSQL URL: who, where, which database, and the TLS mode."""

    user: str
    host: str
    port: int
    dbname: str
    params: tuple[tuple[str, str], ...]  # the allowed libpq parameters, sslmode included

    @property
    def sslmode(self) -> str:
        return dict(self.params)["sslmode"]

    @property
    def key(self) -> str:
        """The keyring entry's name for this login: ``user@host:port/db``."""
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"

    @property
    def display(self) -> str:
        """The URL as shown everywhere: never a password (there is none to show)."""
        extra = [f"{k}={v}" for k, v in self.params if k != "sslmode" or v != _default_sslmode(self.host)]
        return f"postgresql://{self.key}" + (f"?{'&'.join(extra)}" if extra else "")

    def conninfo(self, **extra) -> dict:
        """Keyword arguments for ``psycopg.connect`` (the password is added by the caller)."""
        return {"user": self.user, "host": self.host, "port": self.port, "dbname": self.dbname,
                **dict(self.params), **extra}

    def with_user(self, user: str) -> "DeskURL":
        return DeskURL(user, self.host, self.port, self.dbname, self.params)

    def __repr__(self) -> str:
        return f"DeskURL({self.display!r})"


def _default_sslmode(host: str) -> str:
    return "prefer" if is_loopback_host(host) else "verify-full"


def parse_desk_url(text: str, origin: str = "the store URL") -> DeskURL:
    """Check *text* (``postgresql://user@host[:port]/db[?sslmode=...]``); a StoreURLError
    with one line (never echoing a password) when it cannot be used."""
    raw = text.strip()
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise StoreURLError(f"{origin} is not a PostgreSQL URL; expected postgresql://user@host:5432/db") from None
    if parts.scheme.lower() not in SCHEMES:
        raise StoreURLError(f"{origin} is not a PostgreSQL URL; expected postgresql://user@host:5432/db")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if parts.password is not None or any(k == "password" for k, _ in query):
        rest = "&".join(f"{k}={v}" for k, v in query if k != "password")  # the URL as given, less the password:
        shown = (f"postgresql://{unquote(parts.username or '')}@{parts.netloc.rpartition('@')[2]}{parts.path}"
                 + (f"?{rest}" if rest else ""))  # its port, its sslmode kept (host:port after the last @)
        raise StoreURLError(
            f"{origin} has a password in it ({shown} without it is the URL to use); "
            f"remove it: {WHERE_THE_PASSWORD_GOES}"
        )
    user = unquote(parts.username or "")
    host = parts.hostname or ""
    dbname = unquote(parts.path.lstrip("/"))
    if not user or not host or not dbname or "/" in dbname:
        raise StoreURLError(f"{origin} needs a user, a host and a database, like postgresql://analyst@db.desk.local/lixinger")
    params: dict[str, str] = {}
    for key, value in query:
        if key not in ALLOWED_PARAMS:
            raise StoreURLError(f"{origin}: parameter {key!r} is not allowed; allowed: {', '.join(sorted(ALLOWED_PARAMS))}")
        params[key] = value
    mode = params.setdefault("sslmode", _default_sslmode(host))
    if mode not in SSLMODES:
        raise StoreURLError(f"{origin}: sslmode={mode!r} is not a mode; use one of {', '.join(SSLMODES)}")
    if mode in PLAIN_POSSIBLE and not is_loopback_host(host):
        raise StoreURLError(
            f"{origin}: refusing sslmode={mode} to {host}: the password and the data could travel unencrypted; "
            "use sslmode=verify-full (the default), or at least require (plain connections only for this machine)"
        )
    return DeskURL(user, host, port or DEFAULT_PORT, dbname, tuple(sorted(params.items())))
