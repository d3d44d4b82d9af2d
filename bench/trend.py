"""Benchmark: what the trend view adds to a refresh of the dashboard, and what building the demo's history costs.

The dashboard (90 codes x 42 fields, its Trend sheet's two 60 x 6 blocks) is refreshed
headless against the sandbox with 60 trading days kept in the store; the baseline, in
the same run, is the same refresh of the same workbook with the trend names removed
(the table and status only). Both go through the same sandbox (no latency) and the same
service; best of interleaved rounds. Then `make demo`'s history step: 60 days x 90 codes
walked through the sandbox and kept (one request a day), against one day's refresh.

    python bench/trend.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xl_addin.config import Settings  # noqa: E402
from xl_addin.demo import build_history, history_days  # noqa: E402
from xl_addin.refresh import refresh_file  # noqa: E402
from xl_addin.sandbox import Sandbox  # noqa: E402
from xl_addin.service import MMAH  # noqa: E402
from xl_addin.snapshot import book_codes  # noqa: E402
from xl_addin.trend import NAMES  # noqa: E402

TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "southbound_dashboard.xlsx"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    with Sandbox() as sb, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        svc = MMAH(Settings(base_url=sb.url, cache_dir=tmp / "cache"), token=sb.token)
        codes = book_codes(TEMPLATE)
        today = sb.as_of
        days = history_days(today)
        started = time.perf_counter()
        build_history(sb, svc, codes, days)
        history_s = time.perf_counter() - started
        sb.as_of = today

        plain = tmp / "plain.xlsx"  # the same parts, byte for byte, but workbook.xml without the trend names
        with zipfile.ZipFile(TEMPLATE) as zin, zipfile.ZipFile(plain, "w", zipfile.ZIP_DEFLATED) as zout:
            for info in zin.infolist():
                data = zin.read(info.filename)
                if info.filename == "xl/workbook.xml":
                    for name in NAMES:
                        data, n = re.subn(rf'<definedName name="{name}"[^>]*>[^<]*</definedName>'.encode(), b"", data)
                        assert n == 1, name
                zout.writestr(info, data)

        def once(source: Path) -> float:
            target = tmp / f"run-{source.name}"
            shutil.copyfile(source, target)
            t = time.perf_counter()
            summary = refresh_file(target, service=svc)
            elapsed = time.perf_counter() - t
            assert ("trend:" in summary.line()) == (source == TEMPLATE)
            return elapsed

        with_trend, without = [], []
        for _ in range(args.rounds):
            with_trend.append(once(TEMPLATE))
            without.append(once(plain))
        svc.close()
    best, base = min(with_trend), min(without)
    print(f"dashboard refresh with the trend (2 blocks of 60 days x 6 names from the store): {best * 1000:.1f} ms")
    print(f"baseline, the same refresh without the trend names:                             {base * 1000:.1f} ms")
    print(f"ratio: {best / base:.2f}x  (the trend's share: {(best - base) * 1000:.1f} ms)")
    print(f"demo history: {len(days)} days x {len(codes)} codes kept in {history_s:.2f} s "
          f"({history_s / len(days) * 1000:.1f} ms a day; {history_s / base:.1f}x one refresh without the trend)")


if __name__ == "__main__":
    main()
