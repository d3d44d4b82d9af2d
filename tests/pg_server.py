"""A real PostgreSQL server for the desk store's tests: a cluster in a temporary folder.

`initdb` makes it, `pg_ctl` starts it on a free port on 127.0.0.1 (and a socket in
the same folder), with password (SCRAM) authentication over TCP. PostgreSQL refuses
to run as root, so as root (CI) the server runs as the system user ``postgres`` (which
Debian's `postgresql` package creates; `.ci/run` installs it) via `runuser`, the
folder owned by that user. Never a mock: the store suite runs against this.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SUPERUSER = "postgres"
RUN_AS = "postgres"  # the system user that runs the server when we are root


def bindir() -> Path | None:
    """The newest PostgreSQL server binaries installed (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """Context manager: a running cluster; ``why_not`` says why it could not start."""

    def __init__(self, durable: bool = False):
        self.durable = durable  # False (tests): fsync and synchronous commit off, for speed
        self.why_not = ""
        self.password = "pw-" + secrets.token_urlsafe(12)
        self.port = 0
        self.tmp: Path | None = None
        self._prefix: list[str] = []
        self._bin: Path | None = None

    @property
    def url(self) -> str:
        return self.url_for(SUPERUSER, "postgres")

    def url_for(self, user: str, db: str) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*self._prefix, *args], capture_output=True, text=True, timeout=120, check=check)

    def __enter__(self) -> "PostgresServer":
        self._bin = bindir()
        if self._bin is None:
            self.why_not = "PostgreSQL is not installed (Debian: apt-get install postgresql; CI installs it: .ci/run)"
            return self
        self.tmp = Path(tempfile.mkdtemp(prefix="lx-pg-"))
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(RUN_AS)
            except KeyError:
                self.why_not = f"running as root and there is no {RUN_AS!r} user to run PostgreSQL as"
                return self
            os.chown(self.tmp, user.pw_uid, user.pw_gid)
            self._prefix = ["runuser", "-u", RUN_AS, "--"]
        pwfile = self.tmp / "pw"
        pwfile.write_text(self.password + "\n")
        if self._prefix:
            os.chown(pwfile, pwd.getpwnam(RUN_AS).pw_uid, -1)
        data = self.tmp / "data"
        try:
            self._run(str(self._bin / "initdb"), "-D", str(data), "-U", SUPERUSER, "--pwfile", str(pwfile),
                      "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "-N")
        except subprocess.CalledProcessError as exc:
            self.why_not = f"initdb failed: {(exc.stderr or exc.stdout).strip()[-300:]}"
            return self
        pwfile.unlink()
        self.port = free_port()
        return self.start()

    def start(self) -> "PostgresServer":
        opts = f"-p {self.port} -k {self.tmp} -c listen_addresses=127.0.0.1 -c max_connections=60"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        r = self._run(str(self._bin / "pg_ctl"), "-D", str(self.tmp / "data"), "-l", str(self.tmp / "log"),
                      "-o", opts, "-w", "-t", "60", "start", check=False)
        if r.returncode != 0:
            log = (self.tmp / "log").read_text(errors="replace")[-400:] if (self.tmp / "log").exists() else ""
            self.why_not = f"pg_ctl start failed: {(r.stderr or r.stdout).strip()[-300:]} {log}"
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self._bin / "pg_ctl"), "-D", str(self.tmp / "data"), "-m", mode, "-w", "stop", check=False)

    def psql(self, sql: str, db: str = "postgres") -> str:
        """Run SQL as the superuser over the socket (trust): for the tests' own setup."""
        r = self._run(str(self._bin / "psql"), "-h", str(self.tmp), "-p", str(self.port), "-U", SUPERUSER,
                      "-d", db, "-v", "ON_ERROR_STOP=1", "-qAtc", sql)
        return r.stdout.strip()

    def __exit__(self, *exc) -> None:
        if self.tmp is None:
            return
        if self.port and not self.why_not:
            self.stop("immediate")
        shutil.rmtree(self.tmp, ignore_errors=True)
