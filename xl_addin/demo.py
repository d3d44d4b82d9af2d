"""`make demo`: the main job, offline: refresh the templates against the embedded sandbox."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from .config import Settings
from .refresh import refresh_file
from .sandbox import Sandbox
from .service import MMAH

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def run_demo(out_dir: str | Path = "out", templates: Path = TEMPLATES) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with Sandbox() as sb, tempfile.TemporaryDirectory() as tmp:
        print(f"sandbox on {sb.url} ({len(sb.dataset.codes)} codes, synthetic data, no token needed)")
        svc = MMAH(Settings(base_url=sb.url, cache_dir=Path(tmp)), token=sb.token)
        for name in ("mm_ah.xlsx", "southbound_dashboard.xlsx"):
            source = templates / name
            if not source.exists():
                from .templates import render

                source = Path(tmp) / name
                source.write_bytes(render(name))
            target = out / name.replace(".xlsx", "_demo.xlsx")
            shutil.copyfile(source, target)
            summary = refresh_file(target, service=svc)
            print(f"  {target}: {summary.line()}")
        svc.close()
    print(f"done in {time.perf_counter() - started:.2f} s; open the files under {out}/ "
          "(the dashboard recalculates when opened)")
    return 0
