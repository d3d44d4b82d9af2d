"""A stand-in for Excel's UDF server: one long-lived Python process, like xlwings' COM server.

Reads JSON lines on stdin, answers one JSON line each on stdout:

* ``{"op": "calc", "cells": {...}, "address": "C1"}``: Excel calculating the LX_MMAH formula
  in *address* of a sheet holding *cells*: its arguments as COM hands them (ranges for
  references), through xlwings' own call_udf;
* ``{"op": "exec", "cells": {...}, "command": "..."}``: ``XLPy.Exec`` (RunPython with
  "Use UDF Server" TRUE): the command runs in this process, on that workbook; its
  ``Application.Calculate`` runs the sheet's LX_MMAH formulas here before it returns;
* ``{"op": "quit"}``.
"""

from __future__ import annotations

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import excel_harness as xh  # noqa: E402

_ARGS = re.compile(r"^=LX_MMAH\((.*)\)$", re.IGNORECASE)


def calc(cells: dict, address: str):
    udfs = xh.load()
    sheet = xh.ComSheet(cells)
    args = []
    for part in _ARGS.match(cells[address]).group(1).split(","):
        part = part.strip()
        if part.startswith('"'):
            args.append(part.strip('"'))
        elif re.fullmatch(r"\d+(\.\d+)?", part):
            args.append(float(part))
        elif part.upper() in ("TRUE", "FALSE"):
            args.append(part.upper() == "TRUE")
        else:
            args.append(sheet.range(part))
    return xh.call(udfs.LX_MMAH, *args, caller=sheet.cell(address))


def run_in_server(cells: dict, command: str) -> dict:
    import xlwings as xw

    book = xh.formulas_book(cells)
    xw.Book.caller = staticmethod(lambda: book)
    recalculated = {}
    formulas = [a for a, v in cells.items() if isinstance(v, str) and _ARGS.match(v)]
    # Calculate returns once Excel has run the formulas: here, in this same process
    book.api.Application.on_calculate = lambda: recalculated.update({a: calc(cells, a) for a in formulas})
    exec(command, {})  # what XLPy.Exec does with RunPython's command
    return {**xh.excel_saw(book), "recalculated": recalculated}


def main() -> None:
    xh.load()
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["op"] == "quit":
            break
        try:
            if msg["op"] == "calc":
                out = {"value": calc(msg["cells"], msg["address"])}
            else:
                out = {"report": run_in_server(msg["cells"], msg["command"])}
        except Exception as exc:  # the test shows it
            out = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    main()
