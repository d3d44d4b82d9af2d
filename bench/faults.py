"""Benchmark: what a hostile server costs, our client against plain requests in the same run.

Two faults of the sandbox (issue 12):

- ``trickle``: the answer arrives one byte every 20 ms. Plain ``requests.post`` with the
  same connect/read timeouts (each read is quick, so no timeout fires) against our client
  with ``LIXINGER_BUDGET`` 5 s: wall time.
- ``gzip-bomb``: 260 KB of gzip that inflates to 256 MB. Plain ``requests.post(...).json()``
  against our client with the default ``LIXINGER_MAX_ANSWER_BYTES``: peak memory of a fresh
  process for each (VmHWM, Linux).

    python bench/faults.py [--trickle-ms 20] [--budget 5] [--bomb-mb 256]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from xl_addin.client import MMAHClient, PATH
from xl_addin.config import DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, Settings
from xl_addin.credentials import Token
from xl_addin.sandbox import Sandbox

PEAK = """
import os, sys
kind, url, token = sys.argv[1:4]
if kind == "requests":
    import requests
    try:
        requests.post(url + "{path}", json={{"token": token, "stockCodes": ["00700"]}}, timeout=(5, 30)).json()
    except Exception:
        pass
else:
    from xl_addin.client import MMAHClient
    from xl_addin.config import Settings
    MMAHClient(token, Settings(base_url=url, budget=60)).fetch(["00700"])
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM")))
""".format(path=PATH)


def peak_mb(kind: str, sb: Sandbox) -> float:
    out = subprocess.run([sys.executable, "-c", PEAK, kind, sb.url, sb.token], capture_output=True, text=True,
                         check=True, env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)))
    return int(out.stdout.split()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trickle-ms", type=float, default=20)
    ap.add_argument("--budget", type=float, default=5)
    ap.add_argument("--bomb-mb", type=int, default=256)
    args = ap.parse_args()
    with Sandbox() as sb, tempfile.TemporaryDirectory() as tmp:
        sb.inject("trickle", times=None, bytes=1, interval=args.trickle_ms / 1000)
        started = time.perf_counter()
        requests.post(sb.url + PATH, json={"token": sb.token, "stockCodes": ["00700"]},
                      timeout=(DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT)).json()
        plain = time.perf_counter() - started
        started = time.perf_counter()
        settings = Settings(base_url=sb.url, cache_dir=Path(tmp), budget=args.budget)
        err = MMAHClient(Token(sb.token), settings).fetch(["00700"]).errors.get("00700")
        ours = time.perf_counter() - started
        assert err is not None and "timed out" in str(err), err
        sb.clear_faults()
        print(f"trickle, 1 byte every {args.trickle_ms:.0f} ms, LIXINGER_BUDGET {args.budget:g} s")
        print(f"  {'plain requests (timeouts %g/%g s)' % (DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT):36}{plain:7.1f} s")
        print(f"  {'xl_addin client':36}{ours:7.1f} s   ({plain / ours:.1f}x sooner; budget held)")

        sb.inject("gzip-bomb", times=None, size=args.bomb_mb << 20)
        plain_mb, ours_mb = peak_mb("requests", sb), peak_mb("ours", sb)
        limit = Settings().max_answer_bytes
        print(f"gzip bomb inflating to {args.bomb_mb} MB, LIXINGER_MAX_ANSWER_BYTES {limit:,}")
        print(f"  {'plain requests, peak memory':36}{plain_mb:7.0f} MB")
        print(f"  {'xl_addin client, peak memory':36}{ours_mb:7.0f} MB   ({plain_mb / ours_mb:.1f}x less)")


if __name__ == "__main__":
    main()
