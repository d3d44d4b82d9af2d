"""`lx-addin`: a thin command line over the library. Every command's help has an example."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import sys
import tempfile

from . import __version__
from .codes import normalize_code
from .exceptions import InvalidCodeError, LixingerError, NoDataError, UnknownFieldError
from .fields import FIELDS, resolve

# --- exit codes (documented in `fetch --help`, `refresh --help` and the README) --------------
EXIT_FAILED = 1  # nothing done (refresh: the file is as it was)
EXIT_STALE = 3  # done, but some values are cached ones served because the service failed
EXIT_PROBLEMS = 4  # refresh --strict: done, with problem rows (invalid codes, no data)

EXIT_CODES_HELP = """exit codes:
  0  done (a refresh may have problem rows: invalid codes, no data; see --strict)
  1  failed: nothing written (refresh), or an invalid code or error (fetch)
  3  done with STALE values: the service failed and cached values were used, marked stale
  4  refresh --strict: done, with problem rows"""


EPILOGS = {
    "fetch": """examples:
  lx-addin fetch 700 0005.HK 9988
  lx-addin fetch 700 5 --fields mm_sh_nba_d5,mm_sh_nba_d20 --format csv > flows.csv
  lx-addin fetch 700 --format json --no-cache
  lx-addin fetch 700 --sandbox            (offline, synthetic data, no token)
  lx-addin fetch 700 5 --transpose        (swap rows and columns: codes down, fields across)
Codes the service could not confirm (it failed, cached values were shown) are marked:
`*` in the table, "stale": true and "fetched_at" in JSON, the stale and fetched_at
columns in CSV.

""" + EXIT_CODES_HELP,
    "refresh": """examples:
  lx-addin refresh watchlist.xlsx
  lx-addin refresh templates/mm_ah.xlsx -o today.xlsx
  lx-addin refresh templates/southbound_dashboard.xlsx -o out/dash.xlsx --sandbox
  lx-addin refresh watchlist.xlsx --strict      (cron: exit 4 when a row has a problem)
  lx-addin refresh watchlist.xlsx --allow-stale (service down: write cached values, marked stale)
A failed refresh (service down, bad token, no codes, read-only file) exits 1 and
leaves the file as it was; cached values are written only with --allow-stale.

""" + EXIT_CODES_HELP,
    "install": """examples:
  lx-addin install                      (then restart Excel: the Lixinger tab is on the ribbon)
  lx-addin install --no-token
  lx-addin install --trust-vba          (Windows: allow the =LX_MMAH import without asking)
  lx-addin install --home /tmp/stage --no-token   (build everything under /tmp/stage)""",
    "uninstall": """examples:
  lx-addin uninstall
  lx-addin uninstall --keep-token""",
    "demo": """examples:
  lx-addin demo
  lx-addin demo --out /tmp/lx-demo""",
    "fields": """examples:
  lx-addin fields
  lx-addin fields --format json""",
    "sandbox": """examples:
  lx-addin sandbox --port 8765
  lx-addin sandbox --latency 100 --fault 500:2   (the next 2 requests fail with HTTP 500)
  lx-addin sandbox --rate-limit 600/min          (HTTP 429 past 600 requests in any minute)
then, in another shell, use the URL and token it prints:
  LIXINGER_BASE_URL=http://127.0.0.1:8765/api LIXINGER_TOKEN=<token> lx-addin fetch 700""",
    "cache": """examples:
  lx-addin cache info
  lx-addin cache clear        (deletes every snapshot, then compacts the file)""",
    "config": """examples:
  lx-addin config show                   (each setting, its value and where it comes from)
  lx-addin config set timeout 20
  lx-addin config set base_url https://open.lixinger.com/api
  lx-addin config unset timeout
  lx-addin config path
The environment (LIXINGER_TIMEOUT, ...) overrides the file; Excel reads the file too.""",
    "freeze": """examples:
  lx-addin freeze watchlist.xlsx                 (writes watchlist-frozen.xlsx)
  lx-addin freeze watchlist.xlsx -o to-pm.xlsx --refresh
  lx-addin freeze watchlist.xlsx --in-place
Every =LX_MMAH... formula becomes the value stored in the file; other formulas stay live.""",
    "token": """examples:
  lx-addin token set                      (prompts, without echo)
  lx-addin token set --allow-plaintext    (no system keyring: keep it in a plain file)
  echo "$MY_TOKEN" | lx-addin token set   (from a script)
  lx-addin token status
  lx-addin token test
  lx-addin --profile team token set       (a second token, e.g. a team account)
  lx-addin token delete""",
    "store": """examples:
  lx-addin config set store postgresql://analyst@db.desk.local/lixinger   (once per analyst)
  lx-addin store login                   (prompts for the database password, keeps it in the keyring)
  lx-addin store status
  lx-addin store init --url postgresql://owner@db.desk.local/lixinger     (once, by the database's owner)
  lx-addin store logout
No password in a URL: it lives in the system keyring. Hosts other than this machine need TLS.""",
}


def _table(headers: list[str], rows: list[list[str]], left: int = 1) -> str:
    from .output import render_table

    return "\n".join(render_table(headers, rows, left))


def _terminal_width() -> int | None:
    """The width to cut tables to: the terminal's, or COLUMNS; None (no cut) for a pipe."""
    import shutil

    if os.environ.get("COLUMNS", "").strip().isdigit() or sys.stdout.isatty():
        return max(40, shutil.get_terminal_size((120, 24)).columns)
    return None


@contextlib.contextmanager
def _service(args, **kwargs):
    """The data service, against the real API or an in-process sandbox (--sandbox)."""
    from .config import Settings
    from .service import MMAH

    if getattr(args, "sandbox", False):
        from .sandbox import Sandbox

        with Sandbox() as sb, tempfile.TemporaryDirectory(prefix="lx-sandbox-cache-") as tmp:
            from pathlib import Path

            settings = Settings.load(base_url=sb.url, cache_dir=Path(tmp), profile=args.profile)
            svc = MMAH(settings, token=sb.token, **kwargs)
            yield svc
            svc.close()
        return
    settings = Settings.load(profile=args.profile)
    svc = MMAH(settings, **kwargs)
    try:
        yield svc
    finally:
        svc.close()


def _parse_inputs(raw_codes: list[str]):
    """[(input, code or None, error or None)] with one entry per distinct code, input order."""
    seen = set()
    out = []
    for raw in raw_codes:
        try:
            code = normalize_code(raw)
        except InvalidCodeError as exc:
            if raw not in seen:
                seen.add(raw)
                out.append((raw, None, exc))
            continue
        if code not in seen:
            seen.add(code)
            out.append((raw, code, None))
    return out


def _max_age(text: str) -> float:
    """--max-age as the max_age setting allows it: nan, -1 and inf are refused, not read as 0 or "forever"."""
    from .config import SPEC, validate
    from .exceptions import ConfigError

    try:
        return validate(SPEC["max_age"], text, "--max-age")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--max-age: ")) from None


# --- commands ---------------------------------------------------------------------------
def cmd_fetch(args) -> int:
    from .output import Entry, table, to_csv, to_json
    from .problems import by_cause, cause_of, grouped

    fields = resolve([f for f in (args.fields or "").split(",") if f.strip()])
    if fields and fields[0].key != "stockCode":
        fields = [FIELDS[0]] + [f for f in fields if f.key != "stockCode"]
    inputs = _parse_inputs(args.codes)
    codes = [code for _, code, _ in inputs if code]
    with _service(args) as svc:
        result = svc.fetch(codes, use_cache=not args.no_cache) if codes else None
    errors = {code: result.errors[code] for code in codes if code in result.errors} if result else {}
    hard = {c: e for c, e in errors.items() if not isinstance(e, NoDataError)}
    if codes and len(hard) == len(codes) and len({str(e) for e in hard.values()}) == 1:
        raise next(iter(hard.values()))  # one failure for all: one line, not a table of it
    entries = []
    for raw, code, error in inputs:
        if code is None:
            entries.append(Entry(raw, None, error))
        else:
            entries.append(Entry(code, result.records.get(code), errors.get(code),
                                 code in result.stale, result.fetched_at.get(code)))
    problems = [(e.label, cause_of(e.error, hint=True)) for e in entries if e.error is not None]
    bad = [e for e in entries if e.error is not None and not isinstance(e.error, NoDataError)]
    stale = [e for e in entries if e.stale]
    keys = [f.key for f in fields]
    if args.format == "json":
        sys.stdout.write(to_json(entries, keys))
    elif args.format == "csv":
        sys.stdout.write(to_csv(entries, keys))
    elif any(e.record is not None for e in entries):  # no table of nothing but error cells
        text, notes = table(entries, fields, _terminal_width(), transpose=args.transpose)
        print(text)
        for note in notes:
            print(f"lx-addin: note: {note}", file=sys.stderr)
    for line in grouped(problems):
        print(f"lx-addin: {line}", file=sys.stderr)
    # what the service did (a redirect, a bad answer, an outage), once per cause
    why_stale = by_cause((e.label, str(result.stale_because.get(e.label) or "no reason known")) for e in stale)
    for why, count in ((why, len(labels)) for why, labels in why_stale.items()):
        if args.format != "table":
            print(f"lx-addin: warning: the service failed ({why}); {count} code(s) are cached values, marked stale",
                  file=sys.stderr)
        else:
            print(f"lx-addin: note: the service failed: {why}", file=sys.stderr)
    if bad:
        return EXIT_FAILED
    return EXIT_STALE if stale else 0


def cmd_fields(args) -> int:
    if args.format == "json":
        json.dump(
            [{"key": f.key, "zh": f.zh, "en": f.en, "kind": f.kind, "window": f.window} for f in FIELDS],
            sys.stdout, ensure_ascii=False, indent=2,
        )
        sys.stdout.write("\n")
    else:
        print(_table(["key", "中文", "English", "kind", "window"],
                     [[f.key, f.zh, f.en, f.kind, str(f.window or "")] for f in FIELDS], left=4))
    return 0


def cmd_sandbox(args) -> int:
    from .sandbox import Sandbox

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
    import socket
    import threading

    probe = socket.socket()
    try:
        probe.bind(("127.0.0.1", args.port))
    except OSError as exc:
        raise LixingerError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from None
    finally:
        probe.close()
    print(f"Lixinger sandbox ({len(sb.dataset.codes)} codes, data date {sb.dataset.as_of})")
    server = sb
    server.start()
    print(f"  LIXINGER_BASE_URL={server.url}")
    print(f"  LIXINGER_TOKEN={server.token}")
    print("Press Ctrl+C to stop.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def cmd_cache(args) -> int:
    from .cache import Cache
    from .config import Settings

    settings = Settings.load(profile=args.profile)
    cache = Cache(settings.cache_path, settings.base_url)
    if args.action == "clear":
        before = cache.size_bytes()
        n = cache.clear()
        cache.compact()
        print(f"Cleared {n} snapshot(s) from {cache.path}; the file went from "
              f"{_kib(before)} to {_kib(cache.size_bytes())}")
        return 0
    info = cache.info()
    info["services"] = cache.by_source()
    if args.format == "json":
        json.dump(info, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"cache file:  {info['path']}{'' if info['exists'] else ' (not created yet)'}")
    print(f"size:        {_kib(info['size_bytes'])}")
    print(f"in use:      {info['source']}")
    rows = [[r["source"] + (" (in use)" if r["source"] == info["source"] else ""), f"{r['codes']:,}",
             f"{r['snapshots']:,}", r["newest_data_date"] or "-",
             f"{dt.datetime.fromtimestamp(r['last_fetch']):%Y-%m-%d %H:%M}" if r["last_fetch"] else "-"]
            for r in info["services"]]
    if rows:
        print()
        print(_table(["service", "codes", "snapshots", "newest data", "last fetch"], rows))
    else:
        print("no data cached yet")
    return 0


def _kib(n: int) -> str:
    return f"{n / 1024:,.0f} KiB"


def cmd_token(args) -> int:
    from . import credentials as cr

    if args.action == "set":
        if sys.stdin.isatty():
            import getpass

            value = getpass.getpass("Lixinger token (input hidden): ")
        else:
            value = sys.stdin.readline()
        value = value.strip()
        if not value:
            raise LixingerError("no token given: nothing was stored")
        backend = cr.store_token(value, _profile(args), allow_plaintext=args.allow_plaintext)
        print(f"Stored the token for profile {_profile(args)!r} in the system keyring ({backend}).")
        if cr.is_plaintext(cr._backend(args.allow_plaintext)):
            print(
                "lx-addin: warning: this keyring backend keeps the token in a plain file on disk. "
                f"To avoid that, remove keyrings.alt and set the {cr.ENV_VAR} environment variable instead.",
                file=sys.stderr,
            )
        return 0
    if args.action == "delete":
        if cr.delete_token(_profile(args)):
            print(f"Deleted the token for profile {_profile(args)!r} from the system keyring.")
        else:
            print(f"No token stored for profile {_profile(args)!r}; nothing to delete.")
        return 0
    if args.action == "status":
        try:
            token = cr.resolve_token(_profile(args))
        except LixingerError as exc:
            print(str(exc), file=sys.stderr)  # one sentence: what is missing and how to set it
            return 1
        print(f"token:   {token.masked()}")
        print(f"source:  {token.source}")
        if os.environ.get(cr.ENV_VAR, "").strip():
            print(f"note:    {cr.ENV_VAR} overrides the keyring entry while it is set")
        return 0
    if args.action == "test":
        with _service(args, use_cache=False) as svc:
            token = svc.token()
            result = svc.fetch(["00700"], use_cache=False)
        error = result.errors.get("00700")
        if error is not None and not isinstance(error, NoDataError):
            print(f"FAILED: {error}", file=sys.stderr)
            return 1
        date = result.newest_data_date
        print(f"OK: {svc.settings.base_url} accepted the token ({token.masked()}, from {token.source})"
              + (f"; data date {date}" if date else ""))
        return 0
    raise AssertionError(args.action)


def cmd_refresh(args) -> int:
    from .refresh import refresh_file

    with _service(args) as svc:
        summary = refresh_file(args.book, args.output, service=svc, max_age=args.max_age,
                               allow_stale=args.allow_stale)
    target = args.output or args.book
    print(f"Refreshed {target}: {summary.line()}")
    lines = summary.stale_lines + summary.problems  # one line per cause, with a count
    for line in lines[:20]:
        print(f"lx-addin: {line}", file=sys.stderr)
    if len(lines) > 20:
        print(f"lx-addin: … and {len(lines) - 20} more causes (the workbook's status block lists them all)",
              file=sys.stderr)
    if summary.stale:
        return EXIT_STALE
    if args.strict and summary.problem_rows:
        return EXIT_PROBLEMS
    return 0


def _profile(args) -> str:
    return args.profile


def _default_profile() -> str:
    """The profile setting (environment, then settings file); a bad settings file is
    reported by the command that needs the settings, not here."""
    from .config import ConfigError, Settings

    try:
        return Settings.load().profile
    except ConfigError:
        return os.environ.get("XL_ADDIN_PROFILE", "").strip() or "default"


def cmd_config(args) -> int:
    from . import config

    if args.action == "path":
        path = config.config_path()
        print(f"{path}{'' if path.exists() else '  (not created yet: lx-addin config set KEY VALUE creates it)'}")
        return 0
    if args.action in ("set", "unset"):
        if not args.key or (args.action == "set" and args.value is None):
            raise LixingerError(f"usage: lx-addin config {args.action} KEY{' VALUE' if args.action == 'set' else ''}"
                                f"; the settings are: {', '.join(config.SPEC)}")
        path, value = config.write_setting(args.key, args.value if args.action == "set" else None)
        spec = config.spec_for(args.key)
        print(f"{spec.key} = {value}" if args.action == "set" else f"{spec.key} removed (default restored)",
              f"in {path}")
        if os.environ.get(spec.env, "").strip():
            print(f"lx-addin: note: {spec.env} is set in this environment and overrides the file", file=sys.stderr)
        return 0
    rows = config.resolve()
    if args.format == "json":
        json.dump([{"key": k, "value": None if v is None else v if isinstance(v, (int, float)) else str(v),
                    "source": src} for k, v, src in rows], sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    print(_table(["setting", "value", "source"],
                 [[k, "(platform default)" if v is None else str(v), src] for k, v, src in rows], left=3))
    print(f"settings file: {config.config_path()}")
    return 0


def cmd_store(args) -> int:
    """`lx-addin store init|status|login|logout`: the history store, local or a desk's database."""
    from .store import desk

    if args.action == "status":
        from .config import Settings

        location = desk.desk_url(args.url).display if args.url else Settings.load().store_location
        for label, value in desk.status_rows(location):
            print(f"{label + ':':<14}{value}")
        return 0
    url = desk.desk_url(args.url)
    if args.action == "init":
        print(desk.init_store(url, reader=args.reader_role, writer=args.writer_role).line())
    elif args.action == "login":
        import getpass

        value = getpass.getpass(f"Password for {url.key} (input hidden): ") if sys.stdin.isatty() else sys.stdin.readline()
        print(desk.login(url, value.rstrip("\r\n"), check=not args.no_check))
    else:
        from .store.password import delete_password

        gone = delete_password(url)
        print(f"Deleted the password for {url.key} from the system keyring." if gone
              else f"No password stored for {url.key}; nothing to delete.")
    return 0


def _add_store_parser(add) -> None:
    p = add("store", "The history store: set up a desk's PostgreSQL database, log in to it, see its state.")
    p.add_argument("action", choices=("init", "status", "login", "logout"))
    p.add_argument("--url", metavar="postgresql://USER@HOST/DB", help="the desk database (default: the store setting)")
    p.add_argument("--reader-role", default="xl_addin_reader", help="init: the read-only role (default: %(default)s)")
    p.add_argument("--writer-role", default="xl_addin_writer", help="init: the role that may write (default: %(default)s)")
    p.add_argument("--no-check", action="store_true", help="login: keep the password without trying it on the server")
    p.set_defaults(func=cmd_store)


def cmd_freeze(args) -> int:
    from .freeze import freeze_file

    service = _service(args) if args.refresh else contextlib.nullcontext()
    with service as svc:
        result = freeze_file(args.book, args.output, in_place=args.in_place, service=svc)
    print(result.line())
    return 0


def cmd_install(args) -> int:
    from .install import main_install

    return main_install(args)


def cmd_uninstall(args) -> int:
    from .install import main_uninstall

    return main_uninstall(args)


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(out_dir=args.out)


# --- parser -------------------------------------------------------------------------------
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

    def add(name, help_):
        return sub.add_parser(name, help=help_, description=help_, epilog=EPILOGS.get(name),
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = add("fetch", "Fetch the mm_ah record for each code.")
    p.add_argument("codes", nargs="+", metavar="CODE", help="HK codes as you would type them: 700, 00700, 0700.HK")
    p.add_argument("--fields", metavar="F,...", help="comma-separated field keys or 中文 labels (default: all 42)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--no-cache", action="store_true", help="ask the service even if the cache is fresh")
    p.add_argument("--sandbox", action="store_true", help="use an in-process sandbox: offline, synthetic data")
    p.add_argument("--transpose", action="store_true",
                   help="table: swap rows and columns (codes down or across)")
    p.set_defaults(func=cmd_fetch)

    p = add("refresh", "Refresh a template workbook (.xlsx) in place or into a new file.")
    p.add_argument("book", metavar="BOOK.xlsx", help="a workbook with the LX_CODES and LX_FIELDS defined names")
    p.add_argument("-o", "--output", metavar="OUT.xlsx", help="write here instead of in place")
    p.add_argument("--sandbox", action="store_true", help="use an in-process sandbox: offline, synthetic data")
    p.add_argument("--max-age", type=_max_age, default=0.0, metavar="SECONDS",
                   help="use cached records younger than this (default 0: ask the service for the latest)")
    p.add_argument("--allow-stale", action="store_true",
                   help="if the service fails, write cached values anyway, marked stale (exit code 3)")
    p.add_argument("--strict", action="store_true",
                   help="exit 4 when a row has a problem (invalid code, no data); the file is still written")
    p.set_defaults(func=cmd_refresh)

    p = add("install", "Set up Excel for this Python (Windows, macOS): the Lixinger ribbon add-in, your token.")
    p.add_argument("--home", metavar="DIR", help="use DIR instead of your home folder (for tests and staging)")
    p.add_argument("--no-token", action="store_true", help="do not prompt for the token")
    p.add_argument("--no-udfs", action="store_true",
                   help="Windows: do not import the LX_MMAH functions (the Refresh button still works)")
    p.add_argument("--trust-vba", action="store_true",
                   help="Windows: turn on 'Trust access to the VBA project object model' without asking")
    p.set_defaults(func=cmd_install)

    p = add("uninstall", "Remove what `install` set up (your workbooks are not touched).")
    p.add_argument("--home", metavar="DIR", help="use DIR instead of your home folder")
    p.add_argument("--keep-token", action="store_true", help="leave the token in the keyring")
    p.add_argument("--keep-cache", action="store_true", help="leave the local cache")
    p.set_defaults(func=cmd_uninstall)

    p = add("demo", "Run the main job offline against the embedded sandbox (no token needed).")
    p.add_argument("--out", default="out", help="where to leave the results (default: %(default)s)")
    p.set_defaults(func=cmd_demo)

    p = add("fields", "List the 42 fields: key, 中文, English, kind.")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_fields)

    p = add("sandbox", "Run the local sandbox server (same protocol, synthetic data).")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", help="the token to accept (default: a new random one, printed)")
    p.add_argument("--latency", type=float, default=0.0, metavar="MS", help="delay every answer")
    from .sandbox.server import FAULT_KINDS

    p.add_argument("--fault", action="append", metavar="KIND[:N]",
                   help="misbehave on the next N requests (all, without N): " + " ".join(sorted(FAULT_KINDS))
                   + "; redirect[:STATUS]:URL answers with a redirect to URL")
    p.add_argument("--rate-limit", metavar="N/min", help="answer 429 past N requests a minute, as Lixinger does "
                   "(sliding window; also N/s, N/10s), e.g. --rate-limit 600/min")
    p.add_argument("--verbose", action="store_true", help="log each request")
    p.set_defaults(func=cmd_sandbox)

    p = add("config", "Show or change the settings (a file Excel reads too; the environment overrides it).")
    p.add_argument("action", choices=("show", "set", "unset", "path"))
    p.add_argument("key", nargs="?", help="a setting: base_url timeout budget max_age cache_dir profile")
    p.add_argument("value", nargs="?")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_config)

    p = add("freeze", "Replace every LX_MMAH formula with its value, for someone without the add-in.")
    p.add_argument("book", metavar="BOOK.xlsx")
    p.add_argument("-o", "--output", metavar="OUT.xlsx", help="where to write (default: BOOK-frozen.xlsx)")
    p.add_argument("--in-place", action="store_true", help="overwrite BOOK itself")
    p.add_argument("--refresh", action="store_true", help="refresh BOOK's table first (asks the service)")
    p.add_argument("--sandbox", action="store_true", help="with --refresh: offline, synthetic data")
    p.set_defaults(func=cmd_freeze)

    p = add("cache", "Show or clear the local cache.")
    p.add_argument("action", choices=("info", "clear"))
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_cache)

    p = add("token", "Keep the Lixinger token in the system keyring.")
    p.add_argument("action", choices=("set", "status", "test", "delete"))
    p.add_argument("--allow-plaintext", action="store_true",
                   help="set: allow a keyring backend that keeps the token in a plain file")
    p.set_defaults(func=cmd_token, sandbox=False)

    _add_store_parser(add)
    return parser


def _redact(text: str) -> str:
    from .credentials import ENV_VAR, redact

    return redact(text, os.environ.get(ENV_VAR, "").strip() or None)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.profile is None:
        args.profile = _default_profile()
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (LixingerError, UnknownFieldError) as exc:
        if args.debug:
            raise
        print(f"lx-addin: {_redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # never a traceback for an analyst, unless asked
        if args.debug:
            raise
        print(f"lx-addin: unexpected error: {type(exc).__name__}: {_redact(str(exc))} (run with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
