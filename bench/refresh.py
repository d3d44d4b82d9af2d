"""Benchmark the refresh: 550 codes x 42 fields, sandbox latency 200 ms.

Wall time of a headless refresh of templates/mm_ah.xlsx against, measured in the same
run: the floor (one round trip of one request), and one request per code (what a
sheet of per-code API calls costs). Peak memory from tracemalloc and ru_maxrss.

    python bench/refresh.py [--codes 550] [--latency-ms 200] [--skip-baseline]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

import openpyxl
import requests

from xl_addin.config import Settings
from xl_addin.refresh import refresh_file
from xl_addin.sandbox import Sandbox
from xl_addin.service import MMAH

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--codes", type=int, default=550)
    ap.add_argument("--latency-ms", type=float, default=200)
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    book = tmp / "bench.xlsx"
    shutil.copyfile(ROOT / "templates" / "mm_ah.xlsx", book)
    with Sandbox(latency=args.latency_ms / 1000) as sb:
        codes = list(sb.dataset.codes[: args.codes])
        wb = openpyxl.load_workbook(book)
        for i, c in enumerate(codes):
            wb["MM_AH"].cell(row=7 + i, column=1).value = c
        wb.save(book)

        session = requests.Session()
        url = sb.url + "/hk/company/hot/mm_ah"
        t = time.perf_counter()
        session.post(url, json={"token": sb.token, "stockCodes": ["00700"]}, timeout=30)
        floor = time.perf_counter() - t

        pristine = book.read_bytes()
        svc = MMAH(Settings(base_url=sb.url, cache_dir=tmp / "cache"), token=sb.token)
        t = time.perf_counter()
        summary = refresh_file(book, service=svc)  # cold cache: every code fetched
        ours = time.perf_counter() - t
        book.write_bytes(pristine)
        svc = MMAH(Settings(base_url=sb.url, cache_dir=tmp / "cache2"), token=sb.token)
        tracemalloc.start()  # a second cold run, traced (tracemalloc slows Python down)
        refresh_file(book, service=svc)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        baseline = None
        if not args.skip_baseline:
            t = time.perf_counter()
            for c in codes:
                requests.post(url, json={"token": sb.token, "stockCodes": [c]}, timeout=30)
            baseline = time.perf_counter() - t

    print(f"refresh of {summary.codes} codes x {summary.fields} fields, sandbox latency {args.latency_ms:.0f} ms")
    print(f"  floor: one round trip         {floor:7.2f} s")
    print(f"  xl_addin refresh              {ours:7.2f} s   ({summary.requests} requests; {ours / floor:.1f}x the floor)")
    if baseline is not None:
        print(f"  one request per code          {baseline:7.2f} s   ({len(codes)} requests; {baseline / ours:.0f}x slower than ours)")
    print(f"  peak Python memory (tracemalloc) {peak / 2**20:6.1f} MiB; process max RSS {maxrss_mb:6.1f} MiB")


if __name__ == "__main__":
    main()
