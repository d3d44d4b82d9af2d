"""Benchmark the refresh: 550 codes x 42 fields, sandbox latency 200 ms; then growth.

Wall time of a headless refresh of templates/mm_ah.xlsx against, measured in the same
run: the floor (one round trip of one request), and one request per code (what a
sheet of per-code API calls costs); and the split of the refresh's time: inside
service.fetch (HTTP, typing, cache and store) and outside it (the workbook's: reading the
codes, writing the cells, saving the file; the cells are indexed during the fetch). Peak memory from tracemalloc and ru_maxrss; and
peak RSS of a process that only refreshes (`lx-addin refresh`, the sandbox in another
process) against a process that only imports xlwings, pandas and lxml (what any
add-in process holds anyway).

Then the growth series: the template with LX_CODES made 500, 5,000 and 20,000 rows
long (rows past the template's 1,000 have no field cells, so the refresh creates them),
every code with data (a sandbox whose universe is 00001..N), no latency. It prints the
time per code and its ratio to the 500-code run's: about 1 when the refresh is linear
(it was 28 at 1,500 codes when each new cell walked the whole sheet).

    python bench/refresh.py [--codes 550] [--latency-ms 200] [--skip-baseline] [--series 500,5000,20000]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import openpyxl
import requests

from xl_addin.config import Settings
from xl_addin.refresh import refresh_file
from xl_addin.sandbox import Sandbox, universe
from xl_addin.sandbox.data import Dataset
from xl_addin.service import MMAH

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import ServerProcess  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


class Numbered(Dataset):
    """The sandbox's synthetic records for 00001..n: every code has data (the default universe has ~600)."""

    def __init__(self, n: int):
        super().__init__()
        self.codes = tuple(f"{i:05d}" for i in range(1, n + 1))
        self._known = frozenset(self.codes)


def growth_book(path: Path, n: int) -> None:
    """templates/mm_ah.xlsx with LX_CODES A7:A(6+n) holding 00001..n."""
    wb = openpyxl.load_workbook(ROOT / "templates" / "mm_ah.xlsx")
    ws = wb["MM_AH"]
    for r in range(7, 1007):
        ws.cell(row=r, column=1).value = None
    for i in range(n):
        ws.cell(row=7 + i, column=1).value = f"{i + 1:05d}"
    wb.defined_names["LX_CODES"].attr_text = f"'MM_AH'!$A$7:$A${6 + n}"
    wb.save(path)


def growth(sizes: list[int], tmp: Path) -> None:
    print("growth: refresh time per code, template rows extended, no latency")
    base = None
    for n in sizes:
        book = tmp / f"growth-{n}.xlsx"
        growth_book(book, n)
        with Sandbox(dataset=Numbered(n)) as sb:
            svc = MMAH(Settings(base_url=sb.url, cache_dir=tmp / f"cache-{n}"), token=sb.token)
            t = time.perf_counter()
            summary = refresh_file(book, service=svc)
            took = time.perf_counter() - t
            svc.close()
        per_code = took / n
        base = base or per_code
        with zipfile.ZipFile(book) as z:
            sheet = z.getinfo("xl/worksheets/sheet1.xml").file_size
        print(f"  {n:6,d} codes ({summary.with_data:6,d} with data)  {took:7.2f} s  "
              f"{per_code * 1000:6.3f} ms/code  x{per_code / base:4.2f} per code vs {sizes[0]:,}  "
              f"(sheet part {sheet / 2**20:5.1f} MiB)", flush=True)


def timed(svc) -> list[float]:
    """[seconds the refresh spends inside *svc*.fetch], filled in as it runs: the rest is the workbook's."""
    spent = [0.0]
    fetch = svc.fetch

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fetch(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t

    svc.fetch = wrapper
    return spent


RSS_CHILD = """
import sys
if sys.argv[1] == "import-only":
    import xlwings, pandas, lxml.etree  # noqa: F401
elif sys.argv[1] == "fetch-only":
    import xlwings, pandas, lxml.etree  # noqa: F401
    from xl_addin.service import MMAH
    from xl_addin.sandbox.data import Dataset
    MMAH().fetch(list(Dataset().codes[:550]))
else:
    sys.argv = ["lx-addin", "refresh", sys.argv[2]]
    from xl_addin.cli import main
    try:
        main()
    except SystemExit:
        pass
# VmHWM: this process's own peak (ru_maxrss would carry the parent's across fork and exec)
print([l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")][0], file=sys.stderr)
"""


def peak_rss(book: Path, sb, tmp: Path) -> tuple[float, float, float]:
    """Peak RSS (MiB) of a process that refreshes *book*, of one that only imports, and of one
    that imports the same and fetches the 550 codes (the service's share)."""
    env = dict(os.environ, LIXINGER_BASE_URL=sb.url, LIXINGER_TOKEN=sb.token,
               XL_ADDIN_CACHE_DIR=str(tmp / "rss-cache"), XL_ADDIN_CONFIG=str(tmp / "none.toml"))
    out = []
    for what in ("refresh", "import-only", "fetch-only"):
        r = subprocess.run([sys.executable, "-c", RSS_CHILD, what, str(book)], env=env,
                           capture_output=True, text=True, timeout=300)
        out.append(int(r.stderr.strip().splitlines()[-1]) / 1024)
    return out[0], out[1], out[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--codes", type=int, default=550)
    ap.add_argument("--latency-ms", type=float, default=200)
    ap.add_argument("--repeat", type=int, default=5, help="cold refreshes timed (the median is shown)")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--series", default="500,5000,20000", help="growth sizes, comma-separated ('' to skip)")
    ap.add_argument("--in-process", action="store_true",
                    help="the sandbox in this process (its answering then competes with the refresh for the GIL)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    book = tmp / "bench.xlsx"
    shutil.copyfile(ROOT / "templates" / "mm_ah.xlsx", book)
    server = Sandbox if args.in_process else ServerProcess
    print(f"sandbox {'in this process' if args.in_process else 'in its own process, as the service is'}")
    with server(latency=args.latency_ms / 1000) as sb:
        codes = list(universe(max(args.codes, 600)))[: args.codes]
        wb = openpyxl.load_workbook(book)
        for i, c in enumerate(codes):
            wb["MM_AH"].cell(row=7 + i, column=1).value = c
        wb.save(book)

        # the sandbox builds each code's daily path once (~1 ms a code): built before timing (one
        # untimed fetch into a cache thrown away), so that the refresh is timed against the service,
        # not the sandbox's warm-up
        MMAH(Settings(base_url=sb.url, cache_dir=tmp / "warm-up"), token=sb.token).fetch(codes)
        session = requests.Session()
        url = sb.url + "/hk/company/hot/mm_ah"
        floors = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            session.post(url, json={"token": sb.token, "stockCodes": ["00700"]}, timeout=30)
            floors.append(time.perf_counter() - t)
        floor = statistics.median(floors)

        pristine = book.read_bytes()
        runs = []
        for i in range(args.repeat):  # each a cold cache: every code fetched
            book.write_bytes(pristine)
            svc = MMAH(Settings(base_url=sb.url, cache_dir=tmp / f"cache-{i}"), token=sb.token)
            fetching = timed(svc)
            t = time.perf_counter()
            summary = refresh_file(book, service=svc)
            runs.append((time.perf_counter() - t, fetching[0]))
            svc.close()
        ours = statistics.median(r[0] for r in runs)
        fetching = [statistics.median(r[1] for r in runs)]
        book.write_bytes(pristine)
        svc = MMAH(Settings(base_url=sb.url, cache_dir=tmp / "cache-traced"), token=sb.token)
        tracemalloc.start()  # one more cold run, traced (tracemalloc slows Python down)
        refresh_file(book, service=svc)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        book.write_bytes(pristine)
        rss_refresh, rss_import, rss_fetch = peak_rss(book, sb, tmp)

        baseline = None
        if not args.skip_baseline:
            t = time.perf_counter()
            for c in codes:
                requests.post(url, json={"token": sb.token, "stockCodes": [c]}, timeout=30)
            baseline = time.perf_counter() - t

    print(f"refresh of {summary.codes} codes x {summary.fields} fields, sandbox latency {args.latency_ms:.0f} ms")
    print(f"  floor: one round trip         {floor:7.2f} s")
    print(f"  xl_addin refresh              {ours:7.2f} s   ({summary.requests} requests; {ours / floor:.1f}x the floor,"
          f" floor + {ours - floor:.3f} s; median of {len(runs)}: {', '.join(f'{r[0]:.3f}' for r in runs)})")
    print(f"    of which service.fetch      {fetching[0]:7.2f} s   (floor + {fetching[0] - floor:.2f} s: HTTP and the service's"
          f" own work); the workbook's {ours - fetching[0]:.3f} s")
    if baseline is not None:
        print(f"  one request per code          {baseline:7.2f} s   ({len(codes)} requests; {baseline / ours:.0f}x slower than ours)")
    print(f"  peak Python memory (tracemalloc) {peak / 2**20:6.1f} MiB; process max RSS {maxrss_mb:6.1f} MiB")
    print(f"  peak RSS of a refresh process {rss_refresh:6.1f} MiB against {rss_import:6.1f} MiB for a process that only "
          f"imports xlwings, pandas, lxml = {rss_refresh / rss_import:.2f}x")
    print(f"    of which the fetch of {summary.codes} codes (imports + fetch, no workbook) {rss_fetch:6.1f} MiB"
          f" = {rss_fetch / rss_import:.2f}x")
    sizes = [int(x) for x in args.series.split(",") if x.strip()]
    if sizes:
        growth(sizes, tmp)


if __name__ == "__main__":
    main()
