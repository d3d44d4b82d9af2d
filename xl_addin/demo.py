"""`make demo`: the main job, offline: build some history, then refresh the templates against the embedded sandbox.

Everything lives in a temporary cache folder and talks to an in-process sandbox with
its own token, so the demo never reads or writes the user's real cache, settings or
keyring. First the sandbox walks through :data:`HISTORY_DAYS` trading days (``as_of``)
and each day's snapshot of the dashboard's watchlist is kept, as ``lx-addin snapshot``
would keep it every evening; then both templates are refreshed, and the dashboard's
trend sheet is filled from that history (see :mod:`xl_addin.trend`).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from .config import Settings
from .refresh import refresh_file
from .sandbox import Sandbox
from .sandbox.data import trading_days
from .service import MMAH

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
HISTORY_DAYS = 60  # about a quarter: the dashboard's trend view shows the last 60 weekdays


def history_days(last, n: int = HISTORY_DAYS) -> list:
    """The sandbox's *n* trading days up to and including *last*."""
    import datetime as dt

    return trading_days(last - dt.timedelta(days=2 * n + 14), last)[-n:]


def build_history(sb: Sandbox, svc, codes: list[str], days: list) -> int:
    """Walk the sandbox through *days*, keeping each day's snapshot of *codes*; the snapshots kept."""
    from .snapshot import take

    kept = 0
    for day in days:
        sb.as_of = day
        kept += take(svc, codes).kept
    return kept


def run_demo(out_dir: str | Path = "out", templates: Path = TEMPLATES) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with Sandbox() as sb, tempfile.TemporaryDirectory() as tmp:
        print(f"sandbox on {sb.url} ({len(sb.dataset.codes)} codes, synthetic data, no token needed)")
        svc = MMAH(Settings(base_url=sb.url, cache_dir=Path(tmp)), token=sb.token)
        sources = {}
        for name in ("mm_ah.xlsx", "southbound_dashboard.xlsx"):
            source = templates / name
            if not source.exists():
                from .templates import render

                source = Path(tmp) / name
                source.write_bytes(render(name))
            sources[name] = source
        from .snapshot import book_codes

        today = sb.as_of
        days = history_days(today)
        t0 = time.perf_counter()
        watchlist = book_codes(sources["southbound_dashboard.xlsx"])
        kept = build_history(sb, svc, watchlist, days)
        sb.as_of = today
        print(f"history: {kept} snapshots of {len(watchlist)} codes on {len(days)} trading days "
              f"{days[0]}..{days[-1]} kept in a temporary store ({time.perf_counter() - t0:.2f} s)")
        for name, source in sources.items():
            target = out / name.replace(".xlsx", "_demo.xlsx")
            shutil.copyfile(source, target)
            summary = refresh_file(target, service=svc)
            print(f"  {target}: {summary.line()}")
            if summary.trend:
                print(trend_text(target))
        svc.close()
    print(f"done in {time.perf_counter() - started:.2f} s; open the files under {out}/ "
          "(the dashboard recalculates when opened; its Trend sheet has the charts)")
    return 0


def trend_text(path: Path) -> str:
    """What the refresh put in the trend blocks of *path*, read back from the file."""
    from .layout import col_letter
    from .trend import layout_of
    from .xlsx import XlsxBook

    book = XlsxBook(path)
    try:
        layout = layout_of(book)
        lines = []
        for name, ref in layout.blocks.items():
            grid = book.read(ref.sheet, ref.top, ref.left, ref.bottom, ref.right)
            names = [h for h in grid[0][1:] if h]
            filled = sum(1 for row in grid[1:] for v in row[1:] if v is not None)
            dated = [row[0] for row in grid[1:] if row[0] is not None]
            lines.append(f"    {name} = '{ref.sheet}'!{col_letter(ref.left)}{ref.top}:{col_letter(ref.right)}{ref.bottom}: "
                         f"{len(dated)} days x {len(names)} names, {filled} values; {', '.join(names)}")
        return "\n".join(lines)
    finally:
        book.close()
