"""Benchmark the cold fetch: 550 codes against the sandbox, each number a ratio to a
baseline measured in the same run.

- cold fetch (fresh service, empty cache: 6 requests of at most 100 codes, MAX_PARALLEL
  in parallel) against six plain ``requests.post`` calls in parallel that only
  ``json.loads`` the answers: the network floor. At 0 ms and at --latency-ms.
- local work per cold fetch of 550 records, timed on its own: the cache lookup that
  misses, decoding and typing the records as the client does, keeping them (one
  transaction of typed rows: the cache and the history are one table). With the
  store's connection kept (as in Excel's UDF server) and opened for the occasion (a
  fresh process).
- the warm fetch (the same codes again, from memory).
- one request per code, the way spreadsheet wrappers of the API are used (--per-code).
- --pacer: 3,000 single-code fetches from 6 threads through the pacer at 600/min against
  a sandbox that enforces 600/min: 429s (must be 0) and wall time against the limit's
  floor ((3,000 - 600) / 600 minutes = 240 s). Takes about 4 minutes.

    python bench/fetch.py [--codes 550] [--latency-ms 100] [--repeat 7] [--per-code] [--pacer]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from xl_addin import client as client_mod
from xl_addin.cache import Cache
from xl_addin.config import Settings
from xl_addin.records import check_answer, index_records
from xl_addin.sandbox import Sandbox, universe
from xl_addin.service import MMAH

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import ServerProcess  # noqa: E402

PARALLEL = client_mod.MAX_PARALLEL


def plain_parallel(sb: Sandbox, codes: list[str]) -> float:
    """Six plain requests.post calls in parallel, json.loads of each answer: the floor."""
    url = sb.url + "/hk/company/hot/mm_ah"
    batches = [codes[i : i + 100] for i in range(0, len(codes), 100)]

    def post(batch):
        r = requests.post(url, json={"token": sb.token, "stockCodes": batch}, timeout=30)
        return len(json.loads(r.content)["data"])

    started = time.perf_counter()
    with ThreadPoolExecutor(len(batches)) as pool:
        got = sum(pool.map(post, batches))
    took = time.perf_counter() - started
    assert got == len(codes), got
    return took


def cold(sb: Sandbox, codes: list[str]) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        svc = MMAH(Settings(base_url=sb.url, cache_dir=Path(tmp)), token=sb.token)
        started = time.perf_counter()
        result = svc.fetch(codes)
        took = time.perf_counter() - started
        t = time.perf_counter()
        warm = svc.fetch(codes)
        warm_took = time.perf_counter() - t
        assert len(result.records) == len(codes) == len(warm.records)
        svc.close()
    return took, result.requests, warm_took


def local_work(sb, codes: list[str], repeat: int) -> tuple[float, float]:
    """What the client and the cache do with 550 records once the bytes are here, no network:
    the cache lookup that misses, decoding each answer, checking it, typing the records, one
    transaction into the store (the cache and the history)."""
    url = sb.url + "/hk/company/hot/mm_ah"
    batches = [codes[i : i + 100] for i in range(0, len(codes), 100)]
    bodies = [requests.post(url, json={"token": sb.token, "stockCodes": b}, timeout=30).content for b in batches]
    secret = sb.token.encode()

    def once(cache: Cache) -> float:
        started = time.perf_counter()
        cache.latest(codes)
        records = {}
        for batch, body in zip(batches, bodies):
            data = check_answer(json.loads(body), batch)
            assert b"\\" not in body and secret not in body  # nothing to strip: the client's fast path
            records.update(index_records(data, batch)[1])
        cache.store_fetch(records, [])
        return time.perf_counter() - started

    kept, fresh = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            cache = Cache(Path(tmp) / f"fresh{i}.sqlite3", sb.url)
            fresh.append(once(cache))  # opens the file, makes the schema (a fresh process)
            cache.close()
            cache = Cache(Path(tmp) / f"kept{i}.sqlite3", sb.url)
            cache.store.open()  # the file made and open already (a long-lived process)
            kept.append(once(cache))
            cache.close()
    return statistics.median(kept), statistics.median(fresh)


def at_latency(latency_ms: float, codes: list[str], repeat: int, server=ServerProcess) -> None:
    with server(latency=latency_ms / 1000) as sb:
        plain_parallel(sb, codes)
        cold(sb, codes)  # warm up Python's imports and the sandbox
        base = [plain_parallel(sb, codes) for _ in range(repeat)]
        runs = [cold(sb, codes) for _ in range(repeat)]
    b = statistics.median(base)
    ours = statistics.median(r[0] for r in runs)
    warm = statistics.median(r[2] for r in runs)
    print(f"latency {latency_ms:4.0f} ms: six plain requests.post in parallel {b * 1000:7.1f} ms;"
          f" xl_addin cold fetch {ours * 1000:7.1f} ms ({runs[0][1]} requests) = {ours / b:4.2f}x the floor;"
          f" warm {warm * 1000:6.2f} ms   (median of {repeat})")


def per_code(latency_ms: float, codes: list[str]) -> None:
    with Sandbox(latency=latency_ms / 1000) as sb:
        started = time.perf_counter()
        for code in codes:
            requests.post(sb.url + "/hk/company/hot/mm_ah", json={"token": sb.token, "stockCodes": [code]}, timeout=30)
        took = time.perf_counter() - started
        ours = cold(sb, codes)[0]
    print(f"latency {latency_ms:4.0f} ms: one request per code {took:6.2f} s = {took / ours:5.1f}x our cold fetch")


def pacer_run(n: int = 3000, rate: int = 600) -> None:
    from xl_addin.credentials import Token

    floor = max(0, n - rate) / rate * 60.0
    with Sandbox(rate_limit=f"{rate}/min") as sb, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(base_url=sb.url, cache_dir=Path(tmp), rate=rate, budget=600.0)
        client = client_mod.MMAHClient(Token(sb.token), settings)
        codes = [list(universe())[i % 500] for i in range(n)]
        started = time.perf_counter()
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda c: client.fetch([c]), codes))
        took = time.perf_counter() - started
        client.close()
    failed = sum(1 for r in results if r.errors)
    print(f"pacer: {n} single-code fetches at {rate}/min against a sandbox enforcing {rate}/min: "
          f"{sb.refused_for_rate} answered 429, {failed} failed; wall {took:6.1f} s against the floor "
          f"{floor:.0f} s = {took / floor:5.3f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codes", type=int, default=550)
    ap.add_argument("--latency-ms", type=float, default=100)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--per-code", action="store_true", help="also the one-request-per-code baseline (slow)")
    ap.add_argument("--pacer", action="store_true", help="only the 3,000-code pacer run (about 4 minutes)")
    ap.add_argument("--in-process", action="store_true",
                    help="the sandbox in this process (its answering then competes with our work for the GIL)")
    args = ap.parse_args()
    if args.pacer:
        pacer_run()
        return
    codes = list(universe(max(args.codes, 600)))[: args.codes]
    print(f"{args.codes} codes, {PARALLEL} requests in parallel at most")
    server = Sandbox if args.in_process else ServerProcess
    print(f"sandbox {'in this process' if args.in_process else 'in its own process, as the service is'}")
    at_latency(0, codes, args.repeat, server)
    at_latency(args.latency_ms, codes, args.repeat, server)
    with server() as sb:
        kept, fresh = local_work(sb, codes, args.repeat)
    print(f"local work per cold fetch of {args.codes} records (cache lookup, decoding, typing, store): "
          f"{kept * 1000:5.1f} ms with the connection kept, {fresh * 1000:5.1f} ms opening the file")
    if args.per_code:
        per_code(args.latency_ms, codes)


if __name__ == "__main__":
    main()
