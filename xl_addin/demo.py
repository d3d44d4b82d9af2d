"""`make demo`: the main job, offline, against the embedded sandbox."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from .config import Settings
from .sandbox import NAMES, Sandbox
from .service import MMAH


def run_demo(out_dir: str | Path = "out") -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    watchlist = list(NAMES)[:30]
    with Sandbox() as sb, tempfile.TemporaryDirectory() as tmp:
        svc = MMAH(Settings(base_url=sb.url, cache_dir=Path(tmp)), token=sb.token)
        started = time.perf_counter()
        result = svc.fetch(watchlist)
        elapsed = time.perf_counter() - started
    path = out / "mm_ah_demo.csv"
    from .fields import FIELDS
    from .records import record_to_json
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([f.key for f in FIELDS])
        for code, record, _ in result.rows():
            if record:
                j = record_to_json(record)
                w.writerow(["" if j[f.key] is None else j[f.key] for f in FIELDS])
    print(f"codes {len(watchlist)}, fields {len(FIELDS)}, requests {result.requests}, {elapsed:.2f} s")
    print(f"wrote {path}")
    return 0
