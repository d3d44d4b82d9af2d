"""Benchmark: 550 codes against the sandbox with 100 ms latency.

Our client (dedup, 100 codes a request, 4 in parallel, one pooled session) against
the baseline measured in the same run: one request per code, the way spreadsheet
wrappers of the Lixinger API are used (a call per cell, no session).

    python bench/fetch.py [--codes 550] [--latency-ms 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import requests

from xl_addin.config import Settings
from xl_addin.sandbox import Sandbox, universe
from xl_addin.service import MMAH


def baseline(sb: Sandbox, codes: list[str]) -> tuple[int, float, int]:
    started = time.perf_counter()
    got = 0
    for code in codes:
        r = requests.post(sb.url + "/hk/company/hot/mm_ah", json={"token": sb.token, "stockCodes": [code]}, timeout=30)
        got += len(r.json()["data"])
    return len(codes), time.perf_counter() - started, got


def ours(sb: Sandbox, codes: list[str]) -> tuple[int, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        svc = MMAH(Settings(base_url=sb.url, cache_dir=Path(tmp)), token=sb.token)
        started = time.perf_counter()
        result = svc.fetch(codes)
        elapsed = time.perf_counter() - started
        svc.close()
    return result.requests, elapsed, len(result.records)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codes", type=int, default=550)
    ap.add_argument("--latency-ms", type=float, default=100)
    args = ap.parse_args()
    codes = list(universe(max(args.codes, 600)))[: args.codes]
    with Sandbox(latency=args.latency_ms / 1000) as sb:
        o_req, o_time, o_got = ours(sb, codes)
        b_req, b_time, b_got = baseline(sb, codes)
    assert o_got == b_got, (o_got, b_got)
    print(f"{args.codes} codes, sandbox latency {args.latency_ms:.0f} ms, {o_got} records each way")
    print(f"{'':28}{'requests':>10}{'wall s':>10}")
    print(f"{'one request per code':28}{b_req:>10}{b_time:>10.2f}")
    print(f"{'xl_addin client':28}{o_req:>10}{o_time:>10.2f}")
    print(f"ratio (baseline / ours): requests {b_req / o_req:.0f}x fewer, wall time {b_time / o_time:.1f}x faster")


if __name__ == "__main__":
    main()
