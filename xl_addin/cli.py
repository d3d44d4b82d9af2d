"""`lx-addin`: a thin command line over the library. Every command's help has an example.

One place per command: its handler, registered with :func:`command`, which names the
command, its one-line help and its arguments; the examples in the handler's docstring
become its ``--help`` epilog. Options several commands share (``--sandbox``,
``--format``, ``--home``) are declared once below and reused; ``--profile`` belongs to
``lx-addin`` itself. What is printed is made in :mod:`xl_addin.output`; what is done is
done by the library: a handler reads its arguments, calls it, and prints.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .exceptions import InputError, LixingerError, NoDataError, UnknownFieldError
from .version import __version__

# --- exit codes (documented in `fetch --help`, `refresh --help` and the README) --------------
EXIT_FAILED = 1  # nothing done (refresh: the file is as it was)
EXIT_STALE = 3  # done, but some values are cached ones served because the service failed
EXIT_PROBLEMS = 4  # refresh --strict: done, with problem rows (invalid codes, no data)

EXIT_CODES_HELP = """exit codes:
  0  done (a refresh may have problem rows: invalid codes, no data; see --strict)
  1  failed: nothing written (refresh), or an invalid code or error (fetch)
  3  done with STALE values: the service failed and cached values were used, marked stale
  4  refresh --strict: done, with problem rows"""


# --- commands are registered here ------------------------------------------------------------
class Arg:
    """One argparse argument: ``Arg("--fields", metavar="F,...", help=...)`` (a callable help is
    called when the parser is built, so that what it names loads only then)."""

    def __init__(self, *flags, **options):
        self.flags, self.options = flags, options

    def with_help(self, text: str) -> "Arg":
        """The same option, described for one command."""
        return Arg(*self.flags, **{**self.options, "help": text})


@dataclass
class Command:
    name: str
    help: str
    handler: Callable
    args: tuple


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, *args: Arg):
    """Register the decorated handler as ``lx-addin NAME``; its docstring is the epilog."""
    def register(handler):
        COMMANDS[name] = Command(name, help, handler, args)
        return handler

    return register


def _epilog(handler) -> str | None:
    """The handler's docstring as written (its body's four-space indent taken off), exit codes filled in."""
    if not handler.__doc__:
        return None
    first, *rest = handler.__doc__.splitlines()
    text = "\n".join([first.strip()] + [line[4:] if line.startswith("    ") else line for line in rest])
    return text.rstrip().replace("{exit_codes}", EXIT_CODES_HELP)


# --- options several commands share, declared once ----------------------------------------
SANDBOX = Arg("--sandbox", action="store_true", help="use an in-process sandbox: offline, synthetic data")
HOME = Arg("--home", metavar="DIR", help="use DIR instead of your home folder (for tests and staging)")


def FORMAT(*choices: str) -> Arg:
    """``--format`` with the formats a command offers, the first being the default."""
    return Arg("--format", choices=choices, default=choices[0], help=f"default: {choices[0]}")


# --- what handlers share -------------------------------------------------------------------
@contextlib.contextmanager
def _service(args, **kwargs):
    """The data service, against the real API or an in-process sandbox (--sandbox)."""
    from .config import Settings
    from .service import DataService

    if getattr(args, "sandbox", False):
        from .sandbox import Sandbox

        with Sandbox() as sb, tempfile.TemporaryDirectory(prefix="lx-sandbox-cache-") as tmp:
            settings = Settings.load(base_url=sb.url, cache_dir=Path(tmp), profile=args.profile)
            svc = DataService(settings, token=sb.token, **kwargs)
            yield svc
            svc.close()
        return
    svc = DataService(Settings.load(profile=args.profile), **kwargs)
    try:
        yield svc
    finally:
        svc.close()


def _terminal_width() -> int | None:
    """The width to cut tables to: the terminal's, or COLUMNS; None (no cut) for a pipe."""
    import os
    import shutil

    if os.environ.get("COLUMNS", "").strip().isdigit() or sys.stdout.isatty():
        return max(40, shutil.get_terminal_size((120, 24)).columns)
    return None


def _say(line: str) -> None:
    """A note, warning or problem line: on stderr, after ``lx-addin:``."""
    print(f"lx-addin: {line}", file=sys.stderr)


def _desk_notes(svc) -> None:
    """One line per fault of the desk store met by this command (the local copy served instead), and
    one if what the service answered could not be kept in the local store (a file locked by another
    writer past the busy timeout): the values are shown, but the history has a gap."""
    from .exceptions import StoreUnusableError

    for line in svc.desk.notes if getattr(svc, "desk", None) is not None else ():
        _say(_redact(line))
    not_kept = getattr(svc, "not_kept", None)
    if not_kept is not None and not isinstance(not_kept, StoreUnusableError):  # that one was said already
        _say(_redact(f"{not_kept}; what was fetched is shown but was not kept in the local history"))


# --- the commands ----------------------------------------------------------------------------
@command("fetch", "Fetch the mm_ah record for each code.",
         Arg("codes", nargs="+", metavar="CODE", help="HK codes as you would type them: 700, 00700, 0700.HK"),
         Arg("--fields", metavar="F,...", help="comma-separated field keys or 中文 labels (default: all 42)"),
         FORMAT("table", "csv", "json"),
         Arg("--no-cache", action="store_true", help="ask the service even if the cache is fresh"),
         SANDBOX,
         Arg("--transpose", action="store_true", help="table: swap rows and columns (codes down or across)"))
def cmd_fetch(args) -> int:
    """examples:
      lx-addin fetch 700 0005.HK 9988
      lx-addin fetch 700 5 --fields mm_sh_nba_d5,mm_sh_nba_d20 --format csv > flows.csv
      lx-addin fetch 700 --format json --no-cache
      lx-addin fetch 700 --sandbox            (offline, synthetic data, no token)
      lx-addin fetch 700 5 --transpose        (swap rows and columns: codes down, fields across)
    Codes the service could not confirm (it failed, cached values were shown) are marked:
    `*` in the table, "stale": true and "fetched_at" in JSON, the stale and fetched_at
    columns in CSV.

    {exit_codes}"""
    from .codes import parse_inputs
    from .fields import columns
    from .output import entries_for, fetch_notes, fetch_text
    from .problems import one_error_for_all

    fields = columns(args.fields)  # an unknown field is refused before the service is asked
    inputs = parse_inputs(args.codes)
    codes = [code for _, code, _ in inputs if code]
    with _service(args) as svc:
        answer = svc.fetch(codes, use_cache=not args.no_cache) if codes else None
    _desk_notes(svc)
    common = one_error_for_all(codes, answer.errors if answer else {})
    if common is not None:
        raise common  # one failure for all: one line, not a table of it
    entries = entries_for(inputs, answer)
    text, notes = fetch_text(entries, fields, args.format, _terminal_width(), args.transpose)
    sys.stdout.write(text)
    for line in fetch_notes(entries, notes, args.format, answer.stale_because if answer else {}):
        _say(line)
    if any(e.error is not None and not isinstance(e.error, NoDataError) for e in entries):
        return EXIT_FAILED
    return EXIT_STALE if any(e.stale for e in entries) else 0


def _max_age(text: str) -> float:
    """--max-age as the max_age setting allows it: nan, -1 and inf are refused, not read as 0 or "forever"."""
    from .config import SPEC, validate
    from .exceptions import ConfigError

    try:
        return validate(SPEC["max_age"], text, "--max-age")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--max-age: ")) from None


@command("refresh", "Refresh a template workbook (.xlsx) in place or into a new file.",
         Arg("book", metavar="BOOK.xlsx", help="a workbook with the LX_CODES and LX_FIELDS defined names"),
         Arg("-o", "--output", metavar="OUT.xlsx", help="write here instead of in place"),
         SANDBOX,
         Arg("--max-age", type=_max_age, default=0.0, metavar="SECONDS",
             help="use cached records younger than this (default 0: ask the service for the latest)"),
         Arg("--allow-stale", action="store_true",
             help="if the service fails, write cached values anyway, marked stale (exit code 3)"),
         Arg("--strict", action="store_true",
             help="exit 4 when a row has a problem (invalid code, no data); the file is still written"))
def cmd_refresh(args) -> int:
    """examples:
      lx-addin refresh watchlist.xlsx
      lx-addin refresh templates/mm_ah.xlsx -o today.xlsx
      lx-addin refresh templates/southbound_dashboard.xlsx -o out/dash.xlsx --sandbox
      lx-addin refresh watchlist.xlsx --strict      (cron: exit 4 when a row has a problem)
      lx-addin refresh watchlist.xlsx --allow-stale (service down: write cached values, marked stale)
    A failed refresh (service down, bad token, no codes, read-only file) exits 1 and
    leaves the file as it was; cached values are written only with --allow-stale.

    {exit_codes}"""
    from .refresh import refresh_file

    with _service(args) as svc:
        summary = refresh_file(args.book, args.output, service=svc, max_age=args.max_age,
                               allow_stale=args.allow_stale)
    _desk_notes(svc)
    print(f"Refreshed {args.output or args.book}: {summary.line()}")
    lines = summary.stale_lines + summary.problems  # one line per cause, with a count
    for line in lines[:20]:
        _say(line)
    if len(lines) > 20:
        _say(f"… and {len(lines) - 20} more causes (the workbook's status block lists them all)")
    if summary.stale:
        return EXIT_STALE
    return EXIT_PROBLEMS if args.strict and summary.problem_rows else 0


@command("install", "Set up Excel for this Python (Windows, macOS): the Lixinger ribbon add-in, your token.",
         HOME,
         Arg("--no-token", action="store_true", help="do not prompt for the token"),
         Arg("--no-udfs", action="store_true",
             help="Windows: do not import the LX_MMAH functions (the Refresh button still works)"),
         Arg("--trust-vba", action="store_true",
             help="Windows: turn on 'Trust access to the VBA project object model' without asking"))
def cmd_install(args) -> int:
    """examples:
      lx-addin install                      (then restart Excel: the Lixinger tab is on the ribbon)
      lx-addin install --no-token
      lx-addin install --trust-vba          (Windows: allow the =LX_MMAH import without asking)
      lx-addin install --home /tmp/stage --no-token   (build everything under /tmp/stage)"""
    from .install import LINUX_LINE, install, target_os
    from .output import install_text

    home = Path(args.home) if args.home else None
    if target_os() == "linux" and home is None:
        print(LINUX_LINE)
    else:  # staging under --home never touches this PC's registry or starts Excel
        report = install(home, target_os(), udfs=home is None and not args.no_udfs, trust_vba=args.trust_vba,
                         ask=_ask if sys.stdin.isatty() else None)
        print(install_text(report))
    if args.no_token:
        return 0
    if not sys.stdin.isatty():
        print("Not a terminal: skipping the token prompt. Run `lx-addin token set` to store your token.")
        return 0
    args.action, args.allow_plaintext, args.sandbox = "set", False, False
    rc = cmd_token(args)
    if rc == 0:
        args.action = "test"
        rc = cmd_token(args)
    return rc


def _ask(question: str) -> bool:
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


@command("uninstall", "Remove what `install` set up (your workbooks are not touched).",
         HOME,
         Arg("--keep-token", action="store_true", help="leave the token in the keyring"),
         Arg("--keep-cache", action="store_true", help="leave the local cache"))
def cmd_uninstall(args) -> int:
    """examples:
      lx-addin uninstall
      lx-addin uninstall --keep-token"""
    from .credentials import delete_token
    from .install import remove_cache, uninstall

    for line in uninstall(Path(args.home) if args.home else None):
        print(line)
    removed = None if args.keep_cache or args.home else remove_cache()
    if removed:
        print(f"removed {removed}")
    if not args.keep_token:  # last: everything before it can fail and leave a working install
        try:
            if delete_token(args.profile):
                print(f"removed the token for profile {args.profile!r} from the system keyring")
        except LixingerError as exc:
            _say(f"could not remove the token: {exc}")
            return EXIT_FAILED
    print("xl_addin is uninstalled; your workbooks were not touched.")
    return 0


@command("demo", "Run the main job offline against the embedded sandbox (no token needed).",
         Arg("--out", default="out", help="where to leave the results (default: %(default)s)"))
def cmd_demo(args) -> int:
    """examples:
      lx-addin demo
      lx-addin demo --out /tmp/lx-demo"""
    from .demo import run_demo

    return run_demo(out_dir=args.out)


@command("fields", "List the 42 fields: key, 中文, English, kind.", FORMAT("table", "json"))
def cmd_fields(args) -> int:
    """examples:
      lx-addin fields
      lx-addin fields --format json"""
    from .fields import FIELDS
    from .output import fields_text

    sys.stdout.write(fields_text(FIELDS, args.format))
    return 0


def _fault_help() -> str:
    from .sandbox.server import FAULT_KINDS

    return ("misbehave on the next N requests (all, without N): " + " ".join(sorted(FAULT_KINDS))
            + "; redirect[:STATUS]:URL answers with a redirect to URL")


@command("sandbox", "Run the local sandbox server (same protocol, synthetic data).",
         Arg("--port", type=int, default=8765),
         Arg("--token", help="the token to accept (default: a new random one, printed)"),
         Arg("--latency", type=float, default=0.0, metavar="MS", help="delay every answer"),
         Arg("--fault", action="append", metavar="KIND[:N]", help=_fault_help),
         Arg("--rate-limit", metavar="N/min", help="answer 429 past N requests a minute, as Lixinger does "
             "(sliding window; also N/s, N/10s), e.g. --rate-limit 600/min"),
         Arg("--verbose", action="store_true", help="log each request"))
def cmd_sandbox(args) -> int:
    """examples:
      lx-addin sandbox --port 8765
      lx-addin sandbox --latency 100 --fault 500:2   (the next 2 requests fail with HTTP 500)
      lx-addin sandbox --rate-limit 600/min          (HTTP 429 past 600 requests in any minute)
    then, in another shell, use the URL and token it prints:
      LIXINGER_BASE_URL=http://127.0.0.1:8765/api LIXINGER_TOKEN=<token> lx-addin fetch 700"""
    import threading

    from .sandbox import Sandbox
    from .sandbox.server import why_port_unusable

    if not 0 < args.port < 65536:
        raise LixingerError(f"--port {args.port} is not a port number; use 1 to 65535, e.g. --port 8765")
    try:
        sb = Sandbox(port=args.port, token=args.token, latency=args.latency / 1000.0, quiet=not args.verbose,
                     rate_limit=args.rate_limit)
    except ValueError as exc:
        raise LixingerError(f"--rate-limit: {exc}") from None
    for spec in args.fault or []:
        try:
            sb.inject_spec(spec)
        except ValueError as exc:
            raise LixingerError(f"--fault {spec}: {exc}") from None
    why = why_port_unusable(args.port)
    if why:
        raise LixingerError(why)
    print(f"Lixinger sandbox ({len(sb.dataset.codes)} codes, data date {sb.dataset.as_of})")
    with sb:
        print(f"  LIXINGER_BASE_URL={sb.url}\n  LIXINGER_TOKEN={sb.token}\nPress Ctrl+C to stop.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


@command("config", "Show or change the settings (a file Excel reads too; the environment overrides it).",
         Arg("action", choices=("show", "set", "unset", "path")),
         Arg("key", nargs="?", help="a setting: base_url timeout budget max_age cache_dir profile"),
         Arg("value", nargs="?"),
         FORMAT("table", "json"))
def cmd_config(args) -> int:
    """examples:
      lx-addin config show                   (each setting, its value and where it comes from)
      lx-addin config set timeout 20
      lx-addin config set base_url https://open.lixinger.com/api
      lx-addin config unset timeout
      lx-addin config path
    The environment (LIXINGER_TIMEOUT, ...) overrides the file; Excel reads the file too."""
    from . import config
    from .output import settings_text

    if args.action == "path":
        path = config.config_path()
        print(f"{path}{'' if path.exists() else '  (not created yet: lx-addin config set KEY VALUE creates it)'}")
        return 0
    if args.action == "show":
        sys.stdout.write(settings_text(config.resolve(), config.config_path(), args.format))
        return 0
    if not args.key or (args.action == "set" and args.value is None):
        raise LixingerError(f"usage: lx-addin config {args.action} KEY{' VALUE' if args.action == 'set' else ''}"
                            f"; the settings are: {', '.join(config.SPEC)}")
    path, value = config.write_setting(args.key, args.value if args.action == "set" else None)
    key = config.spec_for(args.key).key
    print(f"{key} = {value}" if args.action == "set" else f"{key} removed (default restored)", f"in {path}")
    overridden = config.env_override(key)
    if overridden:
        _say(f"note: {overridden} is set in this environment and overrides the file")
    return 0


@command("freeze", "Replace every LX_MMAH formula with its value, for someone without the add-in.",
         Arg("book", metavar="BOOK.xlsx"),
         Arg("-o", "--output", metavar="OUT.xlsx", help="where to write (default: BOOK-frozen.xlsx)"),
         Arg("--in-place", action="store_true", help="overwrite BOOK itself"),
         Arg("--refresh", action="store_true", help="refresh BOOK's table first (asks the service)"),
         SANDBOX.with_help("with --refresh: offline, synthetic data"))
def cmd_freeze(args) -> int:
    """examples:
      lx-addin freeze watchlist.xlsx                 (writes watchlist-frozen.xlsx)
      lx-addin freeze watchlist.xlsx -o to-pm.xlsx --refresh
      lx-addin freeze watchlist.xlsx --in-place
    Every =LX_MMAH... formula becomes the value stored in the file; other formulas stay live."""
    from .freeze import freeze_file

    with _service(args) if args.refresh else contextlib.nullcontext() as svc:
        result = freeze_file(args.book, args.output, in_place=args.in_place, service=svc)
    print(result.line())
    return 0


@command("cache", "Show or clear the local cache.",
         Arg("action", choices=("info", "clear")),
         Arg("--history", action="store_true",
             help="clear: delete every kept snapshot too (the history cannot be fetched again)"),
         FORMAT("table", "json"))
def cmd_cache(args) -> int:
    """examples:
      lx-addin cache info
      lx-addin cache clear              (nothing counts as fresh: every code is asked for again; history kept)
      lx-addin cache clear --history    (deletes every snapshot, the history too, then compacts the file)"""
    import time

    from .cache import Cache
    from .config import Settings
    from .output import cache_text, kib

    settings = Settings.load(profile=args.profile)
    cache = Cache(settings.cache_path, settings.base_url)
    if args.action == "clear" and not args.history:
        # the cache is the history's file: clearing it must not throw away what the API cannot give back
        kept = cache.info().get("snapshots", 0) if cache.path.exists() else 0
        if cache.path.exists():
            cache.set_not_before(time.time())  # every process using the file asks the service again
        print(f"Nothing in {cache.path} counts as fresh any more: the next fetch of every code asks the service. "
              f"The history ({kept} snapshot(s)) is kept; `lx-addin cache clear --history` deletes it too")
        return 0
    if args.action == "clear":
        before, cleared = cache.size_bytes(), cache.clear()
        cache.compact()
        print(f"Cleared {cleared} snapshot(s) from {cache.path}, the history included; the file went from "
              f"{kib(before)} to {kib(cache.size_bytes())}")
        return 0
    if args.history:
        raise InputError("--history goes with `cache clear` only")
    sys.stdout.write(cache_text({**cache.info(), "services": cache.by_source()}, args.format))
    return 0


@command("token", "Keep the Lixinger token in the system keyring.",
         Arg("action", choices=("set", "status", "test", "delete")),
         Arg("--allow-plaintext", action="store_true",
             help="set: allow a keyring backend that keeps the token in a plain file"))
def cmd_token(args) -> int:
    """examples:
      lx-addin token set                      (prompts, without echo)
      lx-addin token set --allow-plaintext    (no system keyring: keep it in a plain file)
      echo "$MY_TOKEN" | lx-addin token set   (from a script)
      lx-addin token status
      lx-addin token test
      lx-addin --profile team token set       (a second token, e.g. a team account)
      lx-addin token delete"""
    from . import credentials as cr
    from .config import TOKEN_ENV, env_token

    profile = args.profile
    if args.action == "set":
        backend = cr.store_token(cr.prompt_token(), profile, allow_plaintext=args.allow_plaintext)
        print(f"Stored the token for profile {profile!r} in the system keyring ({backend}).")
        if cr.stores_in_plain_file(args.allow_plaintext):
            _say("warning: this keyring backend keeps the token in a plain file on disk. "
                 f"To avoid that, remove keyrings.alt and set the {TOKEN_ENV} environment variable instead.")
    elif args.action == "delete":
        print(f"Deleted the token for profile {profile!r} from the system keyring." if cr.delete_token(profile)
              else f"No token stored for profile {profile!r}; nothing to delete.")
    elif args.action == "status":
        try:
            token = cr.resolve_token(profile)
        except LixingerError as exc:
            print(str(exc), file=sys.stderr)  # one sentence: what is missing and how to set it
            return EXIT_FAILED
        print(f"token:   {token.masked()}\nsource:  {token.source}")
        if env_token():
            print(f"note:    {TOKEN_ENV} overrides the keyring entry while it is set")
    else:  # test
        with _service(args, use_cache=False) as svc:
            check = svc.check_token()
        if not check.ok:
            print(f"FAILED: {check.error}", file=sys.stderr)
            return EXIT_FAILED
        print(f"OK: {check.base_url} accepted the token ({check.token.masked()}, from {check.token.source})"
              + (f"; data date {check.data_date}" if check.data_date else ""))
    return 0


@command("store", "The history store: set up a desk's PostgreSQL database, log in to it, see its state.",
         Arg("action", choices=("init", "status", "login", "logout")),
         Arg("--url", metavar="postgresql://USER@HOST/DB", help="the desk database (default: the store setting)"),
         Arg("--reader-role", default="xl_addin_reader", help="init: the read-only role (default: %(default)s)"),
         Arg("--writer-role", default="xl_addin_writer", help="init: the role that may write (default: %(default)s)"),
         Arg("--no-check", action="store_true", help="login: keep the password without trying it on the server"))
def cmd_store(args) -> int:
    """examples:
      lx-addin config set store postgresql://analyst@db.desk.local/lixinger   (once per analyst)
      lx-addin store login                   (prompts for the database password, keeps it in the keyring)
      lx-addin store status
      lx-addin store init --url postgresql://owner@db.desk.local/lixinger     (once, by the database's owner)
      lx-addin store logout
    No password in a URL: it lives in the system keyring. Hosts other than this machine need TLS."""
    from .output import labelled_text
    from .store import desk

    if args.action == "status":
        from .config import Settings

        if not args.url:  # the configured store; a desk that cannot be used: its fault, and the local copy
            from .desk_layer import status_rows

            rows, problem = status_rows(Settings.load())
            sys.stdout.write(labelled_text(rows))
            if problem is not None:
                raise problem
            return 0
        sys.stdout.write(labelled_text(desk.status_rows(desk.desk_url(args.url).display)))
        return 0
    url = desk.desk_url(args.url)
    if args.action == "init":
        print(desk.init_store(url, reader=args.reader_role, writer=args.writer_role).line())
    elif args.action == "login":
        from .credentials import read_secret

        print(desk.login(url, read_secret(f"Password for {url.key} (input hidden): "), check=not args.no_check))
    else:
        from .store.password import delete_password

        print(f"Deleted the password for {url.key} from the system keyring." if delete_password(url)
              else f"No password stored for {url.key}; nothing to delete.")
    return 0


@command("snapshot", "Fetch the latest for every code you follow and keep it in the history (for the scheduler).",
         Arg("--codes", nargs="+", default=[], metavar="CODE", help="codes to add to those fetched in the last 90 days"),
         Arg("--book", nargs="+", default=[], metavar="FILE", help="template workbooks whose LX_CODES to add"))
def cmd_snapshot(args) -> int:
    """examples:
      lx-addin snapshot                          (every code fetched in the last 90 days)
      lx-addin snapshot --codes 700 5 9988       (and these)
      lx-addin snapshot --book watchlist.xlsx    (and the book's LX_CODES)
      lx-addin schedule on --at 18:30            (run it every day, see `schedule --help`)
    Never prompts; one line and exit 1 on failure; one line per run appended to the
    snapshot log in your log folder. Twice a day is harmless: one snapshot per data date is kept."""
    from . import snapshot

    try:
        extra = snapshot.given_codes(args.codes)
        for book in args.book:
            extra += snapshot.book_codes(book)
        with _service(args) as svc:
            run = snapshot.take(svc, extra)  # a desk that could not be written: its one line, exit 1
        _desk_notes(svc)
    except (LixingerError, OSError) as exc:
        snapshot.append_log(f"FAILED {_redact(str(exc))}")
        raise
    snapshot.append_log(run.line())
    print(run.line())
    return 0


@command("schedule", "Run `lx-addin snapshot` every day from the OS scheduler (Task Scheduler, launchd, systemd or cron).",
         Arg("action", choices=("on", "off", "status", "offer")),
         Arg("--at", default="18:30", metavar="HH:MM", help="on, offer: the time of day, 24-hour (default: %(default)s)"),
         Arg("--yes", action="store_true", help="offer: register without asking (what the installers' --schedule passes)"),
         Arg("--no", action="store_true", help="offer: do not register, do not ask (the installers' --no-schedule)"))
def cmd_schedule(args) -> int:
    """examples:
      lx-addin schedule on                 (every day at 18:30, after the day's Connect figures)
      lx-addin schedule on --at 19:05      (registering again replaces the time)
      lx-addin schedule status
      lx-addin schedule off
      lx-addin schedule offer              (what the installers run: asks "[Y/n]", then registers)
      lx-addin schedule offer --yes        (no question: register; --no: leave it off)
    Windows: a Task Scheduler task; macOS: a LaunchAgent plist; Linux: a systemd user timer,
    or a crontab line where systemd's user instance is not running. `offer` leaves an existing
    registration as it is, and registers nothing when it cannot ask (not a terminal)."""
    from . import schedule

    if (args.yes or args.no) and args.action != "offer":
        raise InputError(f"--yes and --no are for `schedule offer`, not `schedule {args.action}`")
    if args.yes and args.no:
        raise InputError("`schedule offer` takes --yes or --no, not both")
    plan = schedule.build(args.at)
    if args.action == "offer":
        choice = True if args.yes else False if args.no else None
        print(schedule.offer(plan, choice, _ask_yes if sys.stdin.isatty() else None))
        return 0
    action = {"on": schedule.turn_on, "off": schedule.turn_off, "status": schedule.status}[args.action]
    print(action(plan))
    return 0


def _ask_yes(question: str) -> bool:
    """A yes/no question whose default (Return) is yes; end of input is no."""
    try:
        return input(f"{question} [Y/n] ").strip().lower() not in ("n", "no")
    except EOFError:
        return False

@command("history", "Snapshots kept in the history store, as time series; export or import them (CSV).",
         Arg("what", nargs="+", metavar="CODE|export FILE|import FILE",
             help="HK codes to show, or `export FILE` / `import FILE`"),
         Arg("--field", action="append", default=[], metavar="F", help="a field key or 中文 label (repeatable)"),
         Arg("--fields", metavar="F,...", help="comma-separated field keys or 中文 labels"),
         Arg("--from", dest="start", metavar="DATE", help="first data date: 2026-01-31, or -60 for 60 days back"),
         Arg("--to", dest="end", metavar="DATE", help="last data date (default: today)"),
         FORMAT("table", "csv", "json"))
def cmd_history(args) -> int:
    """examples:
      lx-addin history 700 --field mm_sh --from -90
      lx-addin history 700 5 --fields mm_sh,mm_sh_nbv_d1 --from 2026-01-01 --to 2026-03-31 --format csv
      lx-addin history export desk-history.csv
      lx-addin history import colleague.csv     (checked first; a bad row imports nothing)
    Reads only the store (snapshots are kept as data is fetched); it never asks the service.
    Importing the same file twice changes nothing the second time."""
    import datetime as dt

    from .config import Settings
    from .exceptions import InputError
    from .service import DataService

    head, *rest = args.what
    svc = DataService(Settings.load(profile=args.profile), use_cache=False)
    try:
        if head in ("export", "import"):
            from .store import transfer

            if len(rest) != 1:
                raise InputError(f"history {head} takes one file, e.g. lx-addin history {head} history.csv")
            if head == "export":
                n = transfer.export_file(svc.history_store(), rest[0])
                print(f"Exported {n:,} snapshot(s) to {rest[0]}")
            else:
                done = transfer.import_file(svc.history_store(), rest[0])
                print(f"Imported {rest[0]}: {done.inserted:,} new, {done.replaced:,} newer fetch(es) replaced "
                      f"older ones, {done.unchanged:,} already kept")
            return 0
        from .formula_hist import date_range
        from .output import history_text
        from .store.base import value_fields

        names = list(args.field) + [n for n in (args.fields or "").split(",") if n.strip()]
        if not names:
            raise InputError("name a field: --field mm_sh (or --fields mm_sh,mm_sh_nbv_d1)")
        fields = value_fields([n.strip() for n in names])
        start, end = date_range(args.start, args.end, dt.date.today(), ("--from", "--to"))
        rows = svc.history_rows(args.what, fields, start, end)
        if not rows:
            span = f"{start.isoformat() if start else 'the first'} to {end.isoformat()}"
            if svc.history_store().info(svc.settings.base_url).snapshots == 0:
                raise InputError(f"the history store ({svc.settings.store_location}) holds nothing from "
                                 f"{svc.settings.base_url} yet; snapshots are kept as data is fetched")
            raise InputError(f"no snapshot of {', '.join(args.what)} kept from {span} "
                             "(snapshots are kept as data is fetched)")
        sys.stdout.write(history_text(rows, fields, args.format))
        return 0
    finally:
        _desk_notes(svc)
        svc.close()


# --- the parser, built from the commands ------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lx-addin",
        description="Lixinger Hong Kong Stock Connect holdings (hk/company/hot/mm_ah), from the command line.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `lx-addin COMMAND --help` for examples. Start with: lx-addin fetch 700 --sandbox",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and HTTP logging")
    parser.add_argument("--profile", default=None,
                        help="which stored token to use (default: the profile setting, else 'default')")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help, epilog=_epilog(cmd.handler),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        for arg in cmd.args:
            options = {k: v() if k == "help" and callable(v) else v for k, v in arg.options.items()}
            p.add_argument(*arg.flags, **options)
        p.set_defaults(func=cmd.handler)
    return parser


def _redact(text: str) -> str:
    from .config import env_token
    from .secret import redact

    return redact(text, env_token())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.profile is None:
        from .config import profile_setting

        args.profile = profile_setting()
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (LixingerError, UnknownFieldError) as exc:
        if args.debug:
            raise
        _say(_redact(str(exc)))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # never a traceback for an analyst, unless asked
        if args.debug:
            raise
        _say(f"unexpected error: {type(exc).__name__}: {_redact(str(exc))} (run with --debug for details)")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
