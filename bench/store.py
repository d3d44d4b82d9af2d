"""Benchmark: the desk store (PostgreSQL on loopback) against its baselines, in one run.

1. Many writers at once. N processes (10) each write the same 600 codes for 5 data
   dates (one batch per date, each process with its own fetch times, as analysts who
   fetched at different moments), all released at the same instant: 3,000 distinct
   rows, no duplicates, no errors. Baseline: one process doing the same alone, into an
   empty database. Target (issue 14): the whole run within 3x the lone process.
2. Reading. One year (250 trading days) of one field for 600 codes as a wide DataFrame
   from PostgreSQL, against the same query on the local SQLite store holding the same
   150,000 snapshots. Target: within 2x SQLite.
3. A cold formula read through the desk. `=LX_MMAH(50 codes, "mm_sh")` through xlwings' own UDF
   path (tests/excel_harness.py, as bench/udfs.py), for 50 codes this process has not seen, when the
   desk already has today's snapshot of them (a colleague's fetch) and the local file does not;
   baseline: the same call when the local SQLite file has them (today's only way). Counted: the
   sandbox's requests (none). Two ways: (a) in a UDF server that has run formulas before (its
   connections open: Excel's case; the target, within 2x), (b) a service made for the call (the
   first formula after Excel starts: the desk's connection, with its SCRAM login, is in the time).

A PostgreSQL cluster is made in a temporary folder for the run (tests/pg_server.py,
durable: fsync on), so nothing else needs to be set up; ``--url`` uses a database of
yours instead (made with `lx-addin store init`; its history is emptied first!).

    python bench/store.py [--writers 10] [--codes 600] [--dates 5] [--days 250] [--repeat 10]
                          [--only writers|frame|formula]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from xl_addin.records import parse_record  # noqa: E402
from xl_addin.sandbox.data import DEFAULT_AS_OF, make_record, trading_days, universe  # noqa: E402
from xl_addin.store import Snapshot, SQLiteStore, frames, open_store  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import timed  # noqa: E402

SOURCE = "https://open.lixinger.com/api"
FIELD = "mm_sh_cap_r"

WRITER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from xl_addin.records import parse_record
from xl_addin.sandbox.data import make_record
from xl_addin.store import Snapshot, open_store
url, index, codes, dates = sys.argv[2], int(sys.argv[3]), sys.argv[4].split(","), sys.argv[5].split(",")
offset = index if sys.argv[6] == "own" else 0
import datetime as dt
batches = []
for j, day in enumerate(dates):
    day = dt.date.fromisoformat(day)
    fetched = 1_735_700_000.0 + j * 86_400 + offset  # "own": each writer fetched at its own moment
    batches.append([Snapshot.from_record("%s", parse_record(r), fetched)
                    for c in codes if (r := make_record(c, day)) is not None])
store = open_store(url, password=sys.stdin.readline().strip())
store.info()  # connected before the start
print("ready", flush=True)
sys.stdin.readline()  # the start signal
started, cpu = time.time(), time.process_time()
totals = [0, 0, 0]
for batch in batches:
    r = store.put(batch)
    totals = [totals[0] + r.inserted, totals[1] + r.replaced, totals[2] + r.unchanged]
print(json.dumps({"start": started, "end": time.time(), "put": totals, "cpu": time.process_time() - cpu}), flush=True)
""" % SOURCE


def run_writers(url: str, password: str, n: int, codes: list[str], dates: list[dt.date], fetch: str) -> dict:
    """Start *n* writer processes, release them at once; the wall time from the first start to the last end."""
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), url, str(i), ",".join(codes),
                               ",".join(d.isoformat() for d in dates), fetch],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(n)]
    for p in procs:
        p.stdin.write(password + "\n")
        p.stdin.flush()
    for p in procs:
        line = p.stdout.readline()
        if line.strip() != "ready":
            raise SystemExit(f"a writer did not start: {p.stderr.read()[-500:]}")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results, errors = [], []
    for p in procs:
        out, err = p.communicate(timeout=600)
        if p.returncode != 0:
            errors.append(err.strip().splitlines()[-1] if err.strip() else f"exit {p.returncode}")
        else:
            results.append(json.loads(out.strip().splitlines()[-1]))
    wall = max(r["end"] for r in results) - min(r["start"] for r in results) if results else float("nan")
    put = [sum(r["put"][i] for r in results) for i in range(3)]
    return {"wall": wall, "errors": errors, "inserted": put[0], "replaced": put[1], "unchanged": put[2],
            "cpu": sum(r["cpu"] for r in results), "each": sorted(round(r["end"] - r["start"], 3) for r in results)}


def cold_formula(url: str, password: str) -> dict:
    """Median ms of a cold 50-code LX_MMAH read from the desk and from the local file (see the docstring)."""
    import dataclasses

    import excel_harness as xh
    import xl_addin.service as service_module
    from xl_addin.config import Settings
    from xl_addin.sandbox import Sandbox
    from xl_addin.service import FORMULA_BUDGET, OUTAGE_PAUSE, DataService

    os.environ["PGPASSWORD"] = password  # libpq's own; the desk's services read it (no keyring here)
    udfs = xh.load()
    out: dict = {"requests": 0}
    with Sandbox() as sb, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = Settings(base_url=sb.url, cache_dir=tmp / "x", budget=FORMULA_BUDGET)

        def service(name: str, store: str | None) -> DataService:
            return DataService(dataclasses.replace(base, cache_dir=tmp / name, store=store), token=sb.token,
                               outage_pause=OUTAGE_PAUSE)

        def prepared(name: str) -> str:  # a local file with its schema, holding none of the codes
            svc = service(name, None)
            svc.cache.latest(["00001"])
            open_store(svc.settings.cache_path).close()
            svc.close()
            return name

        codes = list(sb.dataset.codes)
        sets = [codes[i:i + 50] for i in range(0, len(codes) - 50, 50)]  # the last 50: warm-up
        for name, store in (("colleague", url), ("snapshot", None)):  # the desk's copy; the local file's copy
            svc = service(name, store)
            svc.fetch(codes)
            svc.close()
        # what the local file's copy of the baseline holds, the desk holds too: the same records
        requests_before = sb.request_count

        def call(svc, some):
            service_module._shared = svc  # the UDF server's service (set_shared would close the other one)
            started = time.perf_counter()
            cells = xh.call(udfs.LX_MMAH, tuple((float(int(c)),) for c in some), "mm_sh")
            took = time.perf_counter() - started
            assert all(isinstance(r[0], (int, float)) for r in cells), cells[:2]
            return took, cells

        # (a) long-lived UDF servers: one reads the snapshot's local file, one the desk (its own file empty)
        local, desk = service("snapshot", None), service(prepared("analyst"), url)
        call(local, codes[-50:])
        call(desk, codes[-50:])
        t_local, t_desk = [], []
        for some in sets:
            a, cells_local = call(local, some)
            b, cells_desk = call(desk, some)
            assert cells_desk == cells_local
            t_local.append(a)
            t_desk.append(b)
        served = desk.desk.served
        local.close()
        desk.close()
        # (b) a service made for the call, each time
        n_local, n_desk = [], []
        for i, some in enumerate(sets):
            fresh_local, fresh_desk = service("snapshot", None), service(prepared(f"new{i}"), url)
            n_local.append(call(fresh_local, some)[0])
            n_desk.append(call(fresh_desk, some)[0])
            fresh_local.close()
            fresh_desk.close()
        service_module._shared = None
        out.update(requests=sb.request_count - requests_before, served=served, rounds=len(sets),
                   warm=(statistics.median(t_desk), statistics.median(t_local)),
                   new=(statistics.median(n_desk), statistics.median(n_local)))
    return out


def walls(results: list[dict]) -> str:
    return ", ".join(f"{r['wall']:.2f}" for r in results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writers", type=int, default=10)
    ap.add_argument("--codes", type=int, default=600)
    ap.add_argument("--dates", type=int, default=5)
    ap.add_argument("--days", type=int, default=250)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3, help="writers: runs of (alone, all at once), interleaved; medians")
    ap.add_argument("--only", choices=("writers", "frame", "formula"), help="run one part only")
    ap.add_argument("--url", help="an initialised database to use (its history is emptied); default: a temporary cluster")
    args = ap.parse_args()
    codes = list(universe(max(args.codes, 600)))[: args.codes]
    days = trading_days(DEFAULT_AS_OF, DEFAULT_AS_OF + dt.timedelta(days=2 * args.days))[: args.days]
    parts = [args.only] if args.only else ["writers", "frame", "formula"]
    targets: list[tuple[str, bool]] = []

    server = None
    if args.url:
        url, password = args.url, os.environ.get("PGPASSWORD", "")
    else:
        from pg_server import PostgresServer
        from xl_addin.store.desk import init_store

        server = PostgresServer(durable=True).__enter__()
        if server.why_not:
            raise SystemExit(f"cannot start PostgreSQL: {server.why_not}")
        url, password = server.url, server.password
        init_store(url, password=password)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} cores; load average {load:.1f} at the start; PostgreSQL durable (fsync on)")
    print(f"{'':56}{'ours':>10}{'baseline':>10}{'ratio':>8}")
    try:
        owner = open_store(url, password=password)

        def empty() -> None:
            with owner._session(write=True) as conn:
                conn.execute("TRUNCATE xl_addin.history, xl_addin.absent, xl_addin.fetches")

        # -- 1. writers ---------------------------------------------------------------------------------
        if "writers" in parts:
            dates = days[: args.dates]
            expected = len(codes) * len(dates)
            print(f"writers: {args.writers} processes x {len(codes)} codes x {len(dates)} data dates, released at once")
            for fetch in ("same", "own"):
                alones, manys, ok, errors = [], [], True, []
                for _ in range(args.runs):
                    empty()
                    alones.append(run_writers(url, password, 1, codes, dates, fetch))
                    empty()
                    manys.append(run_writers(url, password, args.writers, codes, dates, fetch))
                    kept = owner.info().snapshots
                    with owner._session() as conn:
                        distinct = conn.execute(
                            "SELECT count(DISTINCT (source, code, data_date)) FROM xl_addin.history").fetchone()[0]
                    errors += manys[-1]["errors"] + alones[-1]["errors"]
                    ok = ok and kept == distinct == expected and not errors
                alone = min(alones, key=lambda r: abs(r["wall"] - statistics.median(a["wall"] for a in alones)))
                many = min(manys, key=lambda r: abs(r["wall"] - statistics.median(m["wall"] for m in manys)))
                ratio = many["wall"] / alone["wall"]
                label = f"{args.writers} writers at once, {'same fetch' if fetch == 'same' else 'own fetch times'} (s)"
                print(f"{label:56}{many['wall']:>10.2f}{alone['wall']:>10.2f}{ratio:>7.2f}x   baseline: one writer alone"
                      f" (medians of {args.runs} runs: {walls(manys)} s vs {walls(alones)} s)")
                print(f"    {kept:,} rows kept, {distinct:,} distinct (expected {expected:,}); errors: {len(errors)}; "
                      f"inserted {many['inserted']:,}, replaced by a newer fetch {many['replaced']:,}, "
                      f"unchanged {many['unchanged']:,}")
                print(f"    client CPU, all writers: {many['cpu']:.2f} s (alone {alone['cpu']:.2f} s); each writer's "
                      f"time: {', '.join(map(str, many['each']))} s")
                for e in errors[:3]:
                    print(f"    error: {e}")
                targets += [(f"{expected:,} distinct rows, no duplicates, no errors ({fetch})", ok),
                            (f"writers <= 3x ({fetch} fetch)", ratio <= 3)]

        # -- 2. one field over a year for every code, as a DataFrame ---------------------------------------
        if "frame" in parts:
            empty()
            with tempfile.TemporaryDirectory() as tmp:
                local = SQLiteStore(Path(tmp) / "history.sqlite3")
                started = time.perf_counter()
                for i, day in enumerate(days):
                    batch = [Snapshot.from_record(SOURCE, parse_record(r), 1_735_700_000.0 + i * 86_400)
                             for c in codes if (r := make_record(c, day)) is not None]
                    local.put(batch)
                    owner.put(batch)
                fill = time.perf_counter() - started
                start, end = days[0], days[-1]

                def frame(store):
                    return lambda: frames.wide_frame(store.series(codes, [FIELD], start, end, source=SOURCE), [FIELD])

                reader = open_store(url, password=password)
                t_sqlite, wide_sqlite = timed(frame(local), args.repeat)
                t_pg, wide_pg = timed(frame(reader), args.repeat)
                assert wide_pg.equals(wide_sqlite) and wide_pg.shape == (len(days), len(codes)), wide_pg.shape
                t_one_sqlite, _ = timed(lambda: local.series([codes[7]], [FIELD], start, end, source=SOURCE),
                                        args.repeat * 5)
                t_one_pg, _ = timed(lambda: reader.series([codes[7]], [FIELD], start, end, source=SOURCE), args.repeat * 5)
                snapshots = local.info().snapshots
                reader.close()
                local.close()
            ratio_r = t_pg / t_sqlite
            print(f"{f'{len(codes)} codes x {FIELD}, a year, wide DataFrame (ms)':56}{t_pg * 1000:>10.1f}"
                  f"{t_sqlite * 1000:>10.1f}{ratio_r:>7.2f}x   baseline: the same on the local SQLite store")
            print(f"{'one code x one field, a year, warm (ms)':56}{t_one_pg * 1000:>10.2f}{t_one_sqlite * 1000:>10.2f}"
                  f"{t_one_pg / t_one_sqlite:>7.2f}x   baseline: SQLite (a loopback round trip)")
            print(f"    ({snapshots:,} snapshots in each store, written in {fill:.1f} s)")
            targets.append(("DataFrame <= 2x SQLite", ratio_r <= 2))

        # -- 3. a cold formula read through the desk ----------------------------------------------------------
        if "formula" in parts:
            empty()
            f = cold_formula(url, password)
            (warm_desk, warm_local), (new_desk, new_local) = f["warm"], f["new"]
            print(f"{'cold =LX_MMAH(50 codes), UDF server running (ms)':56}{warm_desk * 1000:>10.2f}"
                  f"{warm_local * 1000:>10.2f}{warm_desk / warm_local:>7.2f}x   baseline: the local SQLite file has them")
            print(f"{'  the same, a service made for the call (ms)':56}{new_desk * 1000:>10.2f}{new_local * 1000:>10.2f}"
                  f"{new_desk / new_local:>7.2f}x   (the desk's login in the time; informational)")
            print(f"    requests to the service: {f['requests']} ({f['rounds']} rounds x 50 codes; "
                  f"{f['served']:,} codes served from the desk in the running server)")
            targets += [("cold formula from the desk: no request", f["requests"] == 0),
                        ("cold formula from the desk <= 2x the local file", warm_desk / warm_local <= 2)]
        owner.close()
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(load average {load:.1f} at the end)")
    print("targets: " + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in targets))


if __name__ == "__main__":
    main()
