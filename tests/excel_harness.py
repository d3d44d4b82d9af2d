"""Drive our UDFs through xlwings' own Windows UDF machinery, without Excel.

`pythoncom`, `pywintypes` and `win32com.client` are stubbed so that `xlwings.udfs`
imports; `xl_addin.udfs` then gets the real `xlfunc`/`xlarg`/`xlret` decorators.
A stand-in "excel" engine provides the two hooks of xlwings' Windows engine
(`clean_value_data`, `prepare_xl_data_element`) with the same semantics, and
:func:`call` does what `xlwings.udfs.call_udf` does with the raw values COM hands
over: tuples of tuples, floats for numbers, None for blanks, negative ints for
error cells.
"""

from __future__ import annotations

import datetime as dt
import importlib
import sys
import types

#: COM's error values, as in xlwings._xlwindows.cell_errors
CELL_ERRORS = {
    -2146826281: "#DIV/0!",
    -2146826246: "#N/A",
    -2146826259: "#NAME?",
    -2146826288: "#NULL!",
    -2146826252: "#NUM!",
    -2146826265: "#REF!",
    -2146826273: "#VALUE!",
}
MISSING = -2147352572  # what COM passes for an omitted optional argument


class _TimeType(dt.datetime):
    """Stands in for pywintypes.TimeType (a datetime subclass in pywin32)."""


def install_com_stubs() -> None:
    if "pythoncom" not in sys.modules:
        pythoncom = types.ModuleType("pythoncom")
        pythoncom.CoInitialize = lambda: None
        sys.modules["pythoncom"] = pythoncom
    if "pywintypes" not in sys.modules:
        pywintypes = types.ModuleType("pywintypes")
        pywintypes.TimeType = _TimeType
        pywintypes.IID = lambda s: s
        pywintypes.com_error = type("com_error", (Exception,), {})
        sys.modules["pywintypes"] = pywintypes
    if "win32com" not in sys.modules:
        win32com = types.ModuleType("win32com")
        client = types.ModuleType("win32com.client")
        client.Dispatch = lambda *a, **k: None
        win32com.client = client
        sys.modules["win32com"] = win32com
        sys.modules["win32com.client"] = client


class WindowsEngineStandIn:
    """The two conversion hooks of xlwings._xlwindows.Engine, same semantics."""

    name = "excel"
    type = "desktop"

    @staticmethod
    def _clean(value, datetime_builder, empty_as, number_builder, err_to_str):
        if value in ("", None):
            return empty_as
        if isinstance(value, (dt.date, dt.datetime)):
            return datetime_builder(year=value.year, month=value.month, day=value.day, hour=getattr(value, "hour", 0),
                                    minute=getattr(value, "minute", 0), second=getattr(value, "second", 0),
                                    microsecond=getattr(value, "microsecond", 0), tzinfo=None) \
                if datetime_builder is dt.datetime else datetime_builder(year=value.year, month=value.month, day=value.day)
        if number_builder is not None and isinstance(value, float):
            return number_builder(value)
        if isinstance(value, int) and value in CELL_ERRORS:
            return CELL_ERRORS[value] if err_to_str else None
        return value

    def clean_value_data(self, data, datetime_builder, empty_as, number_builder, err_to_str):
        return [[self._clean(c, datetime_builder, empty_as, number_builder, err_to_str) for c in row] for row in data]

    @staticmethod
    def prepare_xl_data_element(x, date_format):
        import math

        if isinstance(x, (dt.date, dt.datetime)):
            if not isinstance(x, dt.datetime):
                x = dt.datetime(x.year, x.month, x.day)
            return _TimeType(x.year, x.month, x.day, x.hour, x.minute, x.second)  # COM time
        if x is None:
            return ""
        if isinstance(x, float) and math.isnan(x):
            return ""
        return x


def load():
    """xl_addin.udfs with xlwings' real Windows decorators; returns the module."""
    install_com_stubs()
    import xlwings

    importlib.import_module("xlwings.udfs")
    if "excel" not in [e.name for e in xlwings.engines]:
        xlwings.engines.add(xlwings.Engine(impl=WindowsEngineStandIn()))
    module = importlib.import_module("xl_addin.udfs")
    if not hasattr(module.LX_MMAH, "__xlfunc__"):  # imported earlier without the stubs
        module = importlib.reload(module)
    return module


def call(func, *raw_args, caller=None):
    """Call a UDF the way xlwings.udfs.call_udf does, with raw COM values; returns what Excel gets."""
    from xlwings import conversion

    info = func.__xlfunc__
    args_info = info["args"]
    visible = [a for a in args_info if a["name"] != "caller"]
    args = list(raw_args) + [MISSING] * (len(visible) - len(raw_args))
    converted = []
    for i, raw in enumerate(args):
        a = visible[i]
        if isinstance(raw, int) and raw == MISSING:
            converted.append(a.get("optional", None))
        else:
            converted.append(conversion.read(None, raw, a["options"]))
    if any(a["name"] == "caller" for a in args_info):
        converted.append(conversion.read(None, caller, {}) if caller is not None else None)
    result = func(*converted)
    return conversion.write(result, None, info["ret"]["options"])


# --- a recording stand-in for the calling cell (xlwings Range over COM) -------------------
class FakeRange:
    def __init__(self, sheet, row, column, formulas, values):
        self.sheet, self.row, self.column = sheet, row, column
        self._formulas, self._values = formulas, values

    @property
    def formula(self):
        self.sheet.calls.append("formula")
        return self._formulas

    @property
    def raw_value(self):
        self.sheet.calls.append("raw_value")
        return self._values


class FakeSheet:
    """A sheet given as {A1 address: formula or value}, as COM would report its used range."""

    def __init__(self, cells: dict, name="Sheet1", book="Book1.xlsx"):
        from xl_addin.neighbours import _cell

        self.name = name
        self.book = types.SimpleNamespace(name=book)
        self.calls = []
        coords = {_cell(a): v for a, v in cells.items()}
        top = min(r for r, _ in coords)
        left = min(c for _, c in coords)
        bottom = max(r for r, _ in coords)
        right = max(c for _, c in coords)
        formulas, values = [], []
        for r in range(top, bottom + 1):
            frow, vrow = [], []
            for c in range(left, right + 1):
                v = coords.get((r, c))
                if isinstance(v, str) and v.startswith("="):
                    frow.append(v)
                    vrow.append(None)
                else:
                    frow.append("" if v is None else (v if isinstance(v, str) else repr(v)))
                    vrow.append(v)
            formulas.append(tuple(frow))
            values.append(tuple(vrow))
        self.used_range = FakeRange(self, top, left, tuple(formulas), tuple(values))

    def cell(self, address):
        return types.SimpleNamespace(sheet=self, address=address)
