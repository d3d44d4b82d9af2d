"""Benchmark the formulas: warm-call cost, cells read through COM, import cost, request counts.

1. A warm single-cell `=LX_MMAH($A2, B$1)` against a function that does nothing, both
   called through xlwings' own call_udf (the Windows UDF path, COM stood in for).
2. Cells read through COM, and the time in the stand-in, for `=LX_MMAH(A:A, ...)` on a
   50-code sheet (baseline: the same argument declared with xlwings' default conversion)
   and for the neighbour scan of a 100,000 x 50 sheet (baseline: reading the used range's
   .Formula and .Value, what the scan did before).
3. `import xl_addin.udfs` against `import xlwings`, each in a fresh interpreter.
4. Requests sent by the batching scenarios, against the sandbox.

    python bench/udfs.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import excel_harness as xh  # noqa: E402

sys.path.insert(0, str(HERE))
from timing import per_call  # noqa: E402


def import_time(stmt: str, env: dict, runs: int = 15) -> float:
    code = f"import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def timed(fn, rounds=3):
    """(best seconds, result) of *rounds* calls."""
    best, out = float("inf"), None
    for _ in range(rounds):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def com_costs(udfs, noop, sb) -> None:
    from xl_addin.fields import FIELDS
    from xl_addin.neighbours import scan

    codes = sb.dataset.codes[:50]
    cells = {"A1": "code", "B1": "mm_sh", "C1": "=LX_MMAH(A:A,B1)"}
    cells.update({f"A{i}": float(int(c)) for i, c in enumerate(codes, start=2)})

    def column(fn):
        sheet = xh.ComSheet(cells)
        xh.call(fn, sheet.range("A:A"), sheet.range("B1"), caller=sheet.cell("C1"))
        return sheet.cells_read

    t_base, n_base = timed(lambda: column(noop))
    t_ours, n_ours = timed(lambda: column(udfs.LX_MMAH))  # warm: the data is in memory after the first
    print("=LX_MMAH(A:A, ...) on a 50-code sheet: cells read through COM, time in the stand-in (best of 3)")
    print(f"  xlwings' default conversion (baseline)  {n_base:>9,} cells  {t_base * 1e3:8.1f} ms")
    print(f"  LX_MMAH (used part of the range)        {n_ours:>9,} cells  {t_ours * 1e3:8.1f} ms"
          f"   ratio {n_ours / n_base:.5f}x cells, {t_ours / t_base:.4f}x time")

    fields = [f.key for f in FIELDS[2:12]]
    grid = {f"{xh.col_letters(2 + j)}1": k for j, k in enumerate(fields)}
    for i, c in enumerate(codes, start=2):
        grid[f"A{i}"] = float(int(c))
        grid.update({f"{xh.col_letters(2 + j)}{i}": f"=LX_MMAH($A{i},{xh.col_letters(2 + j)}$1)"
                     for j in range(len(fields))})
    fill = (60, 1, 100000, 50, lambda r, c: 1.0)

    def used_range_read():  # what the scan did before: .Formula and .Value of the used range
        sheet = xh.ComSheet(grid, fill=fill)
        used = sheet.UsedRange
        for part in range(used.Row, used.Row + used.Rows.Count, 10000):  # in slices, to bound memory here
            block = sheet.Range(sheet.Cells(part, 1), sheet.Cells(min(part + 9999, 100000), 50))
            block.Formula, block.Value
        return sheet.cells_read

    def bounded(udf_context):
        sheet = xh.ComSheet(grid, fill=fill, udf_context=udf_context)
        found = scan(sheet, 2)
        assert len(found) == 50, len(found)
        return sheet.cells_read

    t_base, n_base = timed(used_range_read, rounds=1)
    t_scan, n_scan = timed(lambda: bounded(False))
    t_win, n_win = timed(lambda: bounded(True))
    print("neighbour scan of a 100,000 x 50 sheet (500 LX_MMAH cells over 50 codes): cells read, time in the stand-in")
    print(f"  used range .Formula + .Value (baseline)  {n_base:>10,} cells  {t_base * 1e3:9.1f} ms")
    print(f"  bounded scan, SpecialCells filters       {n_scan:>10,} cells  {t_scan * 1e3:9.1f} ms"
          f"   ratio {n_scan / n_base:.6f}x cells, {t_scan / t_base:.5f}x time")
    print(f"  bounded scan, SpecialCells ignored (UDF) {n_win:>10,} cells  {t_win * 1e3:9.1f} ms"
          f"   ratio {n_win / n_base:.6f}x cells, {t_win / t_base:.5f}x time")


def main() -> None:
    from xl_addin.fields import FIELDS
    from xl_addin.sandbox import Sandbox

    tmp = tempfile.mkdtemp()
    os.environ["XL_ADDIN_CACHE_DIR"] = tmp
    udfs = xh.load()
    func, arg, ret = udfs.func, udfs.arg, udfs.ret

    @func(category="Bench")
    @arg("codes", ndim=2, err_to_str=True)
    @arg("fields", ndim=2)
    @ret(ndim=2)
    def NOOP(codes, fields, headers=False, caller=None):
        return [[0.0]]

    globals()["NOOP"] = NOOP  # call_udf finds a function by module and name

    with Sandbox() as sb:
        os.environ["LIXINGER_BASE_URL"], os.environ["LIXINGER_TOKEN"] = sb.url, sb.token
        udfs.reset()
        codes = sb.dataset.codes[:550]
        sheet = xh.ComSheet({"A2": 700.0, "B1": "mm_sh_nba_d20", "B2": "=LX_MMAH($A2,B$1)"})
        caller = sheet.cell("B2")
        xh.call(udfs.LX_MMAH, 700.0, "mm_sh_nba_d20", caller=caller)  # warm it
        from xlwings.udfs import ComRange
        from xlwings import Range
        import xlwings

        com_caller = ComRange(Range(impl=xlwings._xlwindows.Range(xl=caller)))
        t_noop, t_ours, t_body = per_call(
            lambda: xh.call(NOOP, 700.0, "mm_sh_nba_d20", caller=caller),
            lambda: xh.call(udfs.LX_MMAH, 700.0, "mm_sh_nba_d20", caller=caller),
            lambda: udfs.LX_MMAH([[700.0]], [["mm_sh_nba_d20"]], False, com_caller),
        )
        a2, b1 = sheet.cell("A2"), sheet.cell("B1")
        t_noop_ref, t_ours_ref = per_call(
            lambda: xh.call(NOOP, a2, b1, caller=caller),
            lambda: xh.call(udfs.LX_MMAH, a2, b1, caller=caller),
        )
        print("warm single-cell call, through xlwings' call_udf (best of 9 interleaved rounds)")
        print(f"  no-op function     {t_noop * 1e6:8.1f} us")
        print(f"  LX_MMAH (warm)     {t_ours * 1e6:8.1f} us   (of which our function body {t_body * 1e6:.1f} us)")
        print(f"  ratio              {t_ours / t_noop:8.2f}x   (target <= 2x)")
        print(f"  with cell references as arguments (=LX_MMAH($A2,B$1)), COM stood in for:")
        print(f"  no-op function     {t_noop_ref * 1e6:8.1f} us")
        print(f"  LX_MMAH (warm)     {t_ours_ref * 1e6:8.1f} us   ratio {t_ours_ref / t_noop_ref:.2f}x")

        com_costs(udfs, NOOP, sb)

        def scenario(label, body):
            udfs.reset()
            os.environ["XL_ADDIN_CACHE_DIR"] = tempfile.mkdtemp()
            before = sb.request_count
            body()
            print(f"  {label:<58}{sb.request_count - before:>5}")

        column = tuple((float(int(c)),) for c in codes)
        print("requests sent, cold cache")
        scenario("1 formula over 550 codes", lambda: xh.call(udfs.LX_MMAH, column, "mm_sh"))
        scenario("41 formulas (one per field) over the same 550 codes",
                 lambda: [xh.call(udfs.LX_MMAH, column, f.key) for f in FIELDS[1:]])
        few = codes[:50]
        cells = {f"A{i}": float(int(c)) for i, c in enumerate(few, start=2)}
        cells.update({f"{chr(66 + j)}1": f.key for j, f in enumerate(FIELDS[2:12])})
        cells.update({f"{chr(66 + j)}{i}": f"=LX_MMAH($A{i},{chr(66 + j)}$1)"
                      for i in range(2, 52) for j in range(10)})
        grid = xh.ComSheet(cells)

        def single_cells(with_caller):
            for i, c in enumerate(few, start=2):
                for j, f in enumerate(FIELDS[2:12]):
                    xh.call(udfs.LX_MMAH, float(int(c)), f.key,
                            caller=grid.cell(f"{chr(66 + j)}{i}") if with_caller else None)

        scenario("500 single-cell formulas, 50 codes, no caller (naive)", lambda: single_cells(False))
        scenario("500 single-cell formulas, 50 codes, neighbour scan", lambda: single_cells(True))

    env = dict(os.environ)
    t_xlwings = import_time("import xlwings", env)
    t_ours = import_time("import xl_addin.udfs", env)
    stub = f"import sys; sys.path.insert(0, {str(HERE.parent / 'tests')!r}); import excel_harness; excel_harness.install_com_stubs()"
    t_xlwings_win = import_time(f"{stub}; import xlwings, xlwings.udfs", env)
    t_ours_win = import_time(f"{stub}; import xl_addin.udfs", env)
    print("import in a fresh interpreter (median of 15)")
    print(f"  import xlwings                 {t_xlwings * 1e3:7.1f} ms")
    print(f"  import xl_addin.udfs           {t_ours * 1e3:7.1f} ms   ratio {t_ours / t_xlwings:.2f}x (target <= 1.25x)")
    print(f"  with the Windows UDF modules (COM stubbed), as Excel loads them:")
    print(f"  import xlwings, xlwings.udfs   {t_xlwings_win * 1e3:7.1f} ms")
    print(f"  import xl_addin.udfs           {t_ours_win * 1e3:7.1f} ms   ratio {t_ours_win / t_xlwings_win:.2f}x")


if __name__ == "__main__":
    main()
