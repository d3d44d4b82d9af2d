"""Benchmark: the history store, 600 codes x 250 trading days (150,000 snapshots).

Ours: the typed ``history`` table (a column per field, primary key (source, code,
data date), WITHOUT ROWID). Baselines measured in the same run: the floor (one row
by primary key from the same table), and the cache's layout before version 3 — JSON
blobs in ``snapshot``, read the way its ``Cache.history`` did (parse every record) or with
SQLite's ``json_extract``. Targets (issue 10): one code x one field over a year
<= 5 ms warm; 600 codes x one field as a DataFrame <= 250 ms; the file <= 120 MB.

Then the formula: a warm ``=LX_MMAH_HIST(code, field, start, end)`` over one code and a
year of kept snapshots against the warm single-cell ``=LX_MMAH(code, field)``, both
through xlwings' own ``call_udf`` (``tests/excel_harness.py``, as ``bench/udfs.py``
measures), best of interleaved rounds. Target: <= 3x. Beside it: the first call after the
store changed (the kept answer is dropped: a query and one conversion), and what handing the
same 250 x 2 array through xlwings' per-cell conversion costs on every call.

    python bench/history.py [--codes 600] [--days 250] [--repeat 30] [--formula-only]
"""

from __future__ import annotations

import argparse
import gc
import datetime as dt
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xl_addin.records import parse_record  # noqa: E402
from xl_addin.sandbox.data import DEFAULT_AS_OF, make_record, trading_days, universe  # noqa: E402
from xl_addin.store import Snapshot, SQLiteStore  # noqa: E402
from xl_addin.store import frames  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import per_call, timed  # noqa: E402

SOURCE = "https://open.lixinger.com/api"


class BlobCache:
    """The cache's layout before version 3 (one JSON text per snapshot in ``snapshot``), as it
    wrote and read it: the baseline. Made with plain SQL, since xl_addin no longer writes it."""

    def __init__(self, path: Path, source: str):
        import json

        self.source, self._encode, self._decode = source, json.JSONEncoder(ensure_ascii=False).encode, json.loads
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS snapshot (source TEXT NOT NULL, code TEXT NOT NULL, data_date TEXT NOT NULL,"
            " fetched_at REAL NOT NULL, record TEXT NOT NULL, PRIMARY KEY (source, code, data_date));"
            "CREATE TABLE IF NOT EXISTS absent (source TEXT NOT NULL, code TEXT NOT NULL, fetched_at REAL NOT NULL,"
            " PRIMARY KEY (source, code));"
            "CREATE INDEX IF NOT EXISTS snapshot_latest ON snapshot (source, code, fetched_at);")

    def store(self, raw, typed, absent, fetched_at):
        rows = [(self.source, c, typed[c]["last_data_date"].isoformat(), fetched_at, self._encode(r))
                for c, r in raw.items()]
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany("INSERT OR REPLACE INTO snapshot VALUES (?, ?, ?, ?, ?)", rows)
        self.db.execute("COMMIT")

    def history(self, code):
        rows = self.db.execute("SELECT record FROM snapshot WHERE source = ? AND code = ? ORDER BY data_date",
                               (self.source, code)).fetchall()
        return [parse_record(self._decode(r[0])) for r in rows]

    def close(self):
        self.db.close()
FIELD = "mm_sh_cap_r"


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codes", type=int, default=600)
    ap.add_argument("--days", type=int, default=250)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--formula-only", action="store_true", help="only LX_MMAH_HIST against LX_MMAH")
    args = ap.parse_args()
    if args.formula_only:
        formula_bench(args.days)
        return
    codes = list(universe(max(args.codes, 600)))[: args.codes]
    days = trading_days(DEFAULT_AS_OF, DEFAULT_AS_OF + dt.timedelta(days=2 * args.days))[: args.days]
    start, end = days[0], days[-1]

    with tempfile.TemporaryDirectory() as tmp:
        ours_path, blob_path = Path(tmp) / "history.sqlite3", Path(tmp) / "cache.sqlite3"
        store = SQLiteStore(ours_path)
        cache = BlobCache(blob_path, SOURCE)
        n, generate, write_ours, write_blob = 0, 0.0, 0.0, 0.0
        for i, day in enumerate(days):  # a day at a time, as a daily snapshot would
            started = time.perf_counter()
            raw = {c: r for c in codes if (r := make_record(c, day)) is not None}
            typed = {c: parse_record(r) for c, r in raw.items()}
            n += len(raw)
            fetched_at = 1_735_700_000.0 + i * 86_400
            generate += time.perf_counter() - started
            started = time.perf_counter()
            store.put(Snapshot.from_record(SOURCE, r, fetched_at) for r in typed.values())
            write_ours += time.perf_counter() - started
            started = time.perf_counter()
            cache.store(raw, typed, [], fetched_at=fetched_at)
            write_blob += time.perf_counter() - started
        del raw, typed
        gc.collect()
        print(f"{len(codes)} codes x {len(days)} trading days ({start} .. {end}): {n:,} snapshots "
              f"(generated in {generate:.1f} s)")
        for p in (ours_path, blob_path):
            with sqlite3.connect(p) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        # -- one code x one field over a year ----------------------------------------------------------
        code = codes[len(codes) // 2]
        t_ours, rows = timed(lambda: store.series([code], [FIELD], start, end, source=SOURCE), args.repeat)
        assert len(rows) == len(days), len(rows)
        conn = sqlite3.connect(ours_path)
        t_floor, _ = timed(lambda: conn.execute(
            f"SELECT {FIELD} FROM history WHERE source = ? AND code = ? AND data_date = ?",
            (SOURCE, code, end.isoformat())).fetchone(), args.repeat)
        t_cache_history, old = timed(lambda: [(r["last_data_date"], r[FIELD]) for r in cache.history(code)], args.repeat)
        assert [(d, v) for _, d, v in rows] == old
        blob = sqlite3.connect(blob_path)
        extract = (f"SELECT code, data_date, json_extract(record, '$.{FIELD}') FROM snapshot "
                   "WHERE source = ? AND code IN ({}) AND data_date BETWEEN ? AND ? ORDER BY code, data_date")
        t_extract, _ = timed(lambda: blob.execute(extract.format("?"), (SOURCE, code, start.isoformat(),
                                                                        end.isoformat())).fetchall(), args.repeat)

        # -- all codes x one field as a DataFrame --------------------------------------------------------
        def ours_frame():
            return frames.wide_frame(store.series(codes, [FIELD], start, end, source=SOURCE), [FIELD])

        def blob_frame():
            import pandas as pd

            got = []
            for i in range(0, len(codes), 500):
                chunk = codes[i : i + 500]
                got += blob.execute(extract.format(",".join("?" * len(chunk))),
                                    (SOURCE, *chunk, start.isoformat(), end.isoformat())).fetchall()
            frame = pd.DataFrame(got, columns=["code", "date", FIELD])
            frame["date"] = pd.to_datetime(frame["date"])
            return frame.pivot(index="date", columns="code", values=FIELD)

        reps = max(3, args.repeat // 5)
        t_frame, wide = timed(ours_frame, reps)
        t_blob_frame, wide_blob = timed(blob_frame, reps)
        assert wide.shape == (len(days), len(codes)) and wide_blob.shape == wide.shape, (wide.shape, wide_blob.shape)

        # -- size, and migrating today's cache file ---------------------------------------------------------
        size_ours, size_blob = size_of(ours_path), size_of(blob_path)
        info = store.info()
        store.close()
        conn.close()
        blob.close()
        cache.close()
        started = time.perf_counter()
        migrated = SQLiteStore(blob_path).info()
        t_migrate = time.perf_counter() - started
        assert migrated.snapshots == n

    ms = 1000
    print(f"{'':54}{'ours':>10}{'baseline':>10}{'ratio':>8}")
    print(f"{'one code x one field, a year, warm (ms)':54}{t_ours * ms:>10.3f}{t_floor * ms:>10.3f}"
          f"{t_ours / t_floor:>7.1f}x   baseline: one row by primary key (the floor)")
    print(f"{'  against the old cache.history (JSON, parse all) (ms)':54}{t_ours * ms:>10.3f}{t_cache_history * ms:>10.3f}"
          f"{t_cache_history / t_ours:>7.1f}x faster")
    print(f"{'  against json_extract on the JSON blobs (ms)':54}{t_ours * ms:>10.3f}{t_extract * ms:>10.3f}"
          f"{t_extract / t_ours:>7.1f}x faster")
    print(f"{f'{len(codes)} codes x one field as a wide DataFrame (ms)':54}{t_frame * ms:>10.1f}{t_blob_frame * ms:>10.1f}"
          f"{t_blob_frame / t_frame:>7.1f}x faster   baseline: json_extract + pandas pivot")
    print(f"{'file size (MB)':54}{size_ours / 1e6:>10.1f}{size_blob / 1e6:>10.1f}"
          f"{size_blob / size_ours:>7.1f}x smaller   baseline: today's JSON-blob cache file")
    print(f"{'writing all snapshots, a day at a time (s)':54}{write_ours:>10.2f}{write_blob:>10.2f}"
          f"{write_blob / write_ours:>7.1f}x   baseline: the old Cache.store (JSON)")
    print(f"migrating that {size_blob / 1e6:.0f} MB cache file into the history table: {t_migrate:.1f} s (once)")
    targets = [("one code x one field <= 5 ms", t_ours * ms <= 5), ("600 codes DataFrame <= 250 ms", t_frame * ms <= 250),
               ("file <= 120 MB", size_ours / 1e6 <= 120)]
    print("targets: " + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in targets)
          + f"  ({info.snapshots:,} snapshots, {info.codes} codes)")
    formula_bench(args.days)


def formula_bench(n_days: int) -> None:
    """Warm LX_MMAH_HIST over one code and *n_days* trading days against the warm single-cell LX_MMAH."""
    import os

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import excel_harness as xh
    from xl_addin.sandbox import Sandbox

    code, field = "00700", "mm_sh"
    days = trading_days(DEFAULT_AS_OF - dt.timedelta(days=2 * n_days), DEFAULT_AS_OF)[-n_days:]
    with tempfile.TemporaryDirectory() as tmp, Sandbox() as sb:
        os.environ["XL_ADDIN_CACHE_DIR"] = tmp
        os.environ["LIXINGER_BASE_URL"], os.environ["LIXINGER_TOKEN"] = sb.url, sb.token
        udfs = xh.load()
        udfs.reset()
        svc = udfs.service()
        svc.history_store().put(Snapshot.from_record(sb.url, parse_record(make_record(code, day)), 1_735_700_000.0 + i)
                                for i, day in enumerate(days))
        sheet = xh.ComSheet({"A2": 700.0, "B1": field, "B2": "=LX_MMAH($A2,B$1)"})
        caller = sheet.cell("B2")
        xh.call(udfs.LX_MMAH, 700.0, field, caller=caller)  # warm: the record is in memory
        start, end = dt.datetime.combine(days[0], dt.time()), days[-1].isoformat()
        out = xh.call(udfs.LX_MMAH_HIST, 700.0, field, start, end, caller=caller)
        assert len(out) == len(days) and all(isinstance(r[1], int) for r in out), out[:3]
        requests = sb.request_count
        func, arg, ret = udfs.func, udfs.arg, udfs.ret

        @func(category="Bench")
        @ret(ndim=2)
        def SAME_ARRAY(codes, field, start=None, end=None, headers=False):
            return out  # the same 250 x 2 answer, computed once: what handing it to Excel costs

        globals()["SAME_ARRAY"] = SAME_ARRAY  # call_udf finds a function by module and name

        def recalculated():  # the store changed since the last call (a new snapshot): query and convert
            udfs._hist_answers.clear()
            return xh.call(udfs.LX_MMAH_HIST, 700.0, field, start, end, caller=caller)

        t_one, t_hist, t_new, t_floor = per_call(
            lambda: xh.call(udfs.LX_MMAH, 700.0, field, caller=caller),
            lambda: xh.call(udfs.LX_MMAH_HIST, 700.0, field, start, end, caller=caller),
            recalculated,
            lambda: xh.call(SAME_ARRAY, 700.0, field, start, end, caller=caller),
            n=300, warm=20,
        )
        assert sb.request_count == requests  # neither asked the service
        udfs.reset()
    print(f"LX_MMAH_HIST over one code x {len(days)} trading days, through xlwings' call_udf "
          f"(best of 9 interleaved rounds)")
    print(f"  LX_MMAH single cell (warm, baseline) {t_one * 1e6:9.1f} us")
    print(f"  LX_MMAH_HIST one code, a year (warm) {t_hist * 1e6:9.1f} us   ratio {t_hist / t_one:.2f}x "
          f"(target <= 3x: {'met' if t_hist <= 3 * t_one else 'MISSED'})")
    print(f"  LX_MMAH_HIST after the store changed {t_new * 1e6:9.1f} us   ratio {t_new / t_one:.2f}x "
          f"(the query, and each cell converted once)")
    print(f"  the same array, converted by xlwings' @ret(ndim=2) {t_floor * 1e6:9.1f} us   "
          f"ratio {t_floor / t_one:.2f}x (what {len(days) * 2} cells cost per call before answers were kept)")


if __name__ == "__main__":
    main()
