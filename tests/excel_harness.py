"""Drive our UDFs through xlwings' own Windows UDF machinery, without Excel.

What runs is xlwings' real code: `xlwings.udfs.call_udf` and `xlwings.com_server.XLPython.CallUDF`
(what the add-in's VBA wrapper calls), `conversion`, and the Windows engine's `Range`, `Sheet`,
`Book` and `App` classes, whose source is taken from the installed `xlwings/_xlwindows.py` and
executed here. Only what cannot load on Linux is stood in for:

* `pythoncom`, `pywintypes`, `win32*` are stubbed so that the modules import;
* the Windows engine's two conversion hooks (`clean_value_data`, `prepare_xl_data_element`)
  are re-implemented with the same semantics (`WindowsEngineStandIn`);
* Excel's COM object model is a small model (:class:`ComSheet`, :class:`ComRange`): what COM
  hands over is what Excel hands over (tuples of tuples, floats for numbers, None for blanks,
  negative ints for error cells, a scalar for one cell), and every cell read through
  ``.Value`` or ``.Formula`` is counted, so the cost of a whole-column argument or of the
  neighbour scan is a number.

A range argument reaches Python as a COM Range object (the VBA wrapper passes its Variant
through), exactly as ``=LX_MMAH(A:A, ...)`` does in Excel; a literal reaches it as a value.
"""

from __future__ import annotations

import ast
import datetime as dt
import importlib
import sys
import types
from pathlib import Path

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
RANGE_IID = "{00020846-0000-0000-C000-000000000046}"  # Excel's Range interface
XL_CELL_TYPE_FORMULAS = -4123
MAX_ROWS, MAX_COLS = 1048576, 16384


class _TimeType(dt.datetime):
    """Stands in for pywintypes.TimeType (a datetime subclass in pywin32)."""


class com_error(Exception):  # noqa: N801 - pywintypes' name
    def __init__(self, hresult=-2147352567, text="Exception occurred.", excepinfo=None, argerr=None):
        super().__init__(hresult, text, excepinfo, argerr)
        self.hresult, self.excepinfo = hresult, excepinfo


#: stubs only xlwings' own imports need; removed from sys.modules once those ran, so that no other
#: code in the test process takes this machine for Windows
_IMPORT_ONLY_STUBS = ("win32api", "win32event", "win32process", "win32com.server", "win32com.server.dispatcher",
                      "win32com.server.policy", "win32com.server.util", "win32com.server.exception")


def install_com_stubs() -> None:
    def module(name, **attrs):
        if name not in sys.modules:
            m = types.ModuleType(name)
            m.__dict__.update(attrs)
            sys.modules[name] = m
        return sys.modules[name]

    module("pythoncom", CoInitialize=lambda: None, IID_IDispatch="IID_IDispatch",
           TypeIIDs={"IID_IDispatch": type("PyIDispatch", (), {})},
           CoMarshalInterThreadInterfaceInStream=lambda iid, obj: obj,
           CoGetInterfaceAndReleaseStream=lambda stream, iid: stream)
    module("pywintypes", TimeType=_TimeType, IID=lambda s: s, com_error=com_error)
    win32com = module("win32com")
    client = module("win32com.client", Dispatch=lambda obj=None, *a, **k: obj)
    win32com.client = client
    server = module("win32com.server")
    win32com.server = server
    for sub in ("dispatcher", "policy", "util", "exception"):
        setattr(server, sub, module(f"win32com.server.{sub}"))

    def unwrap(obj):
        raise ValueError("not a wrapped Python object")  # what pywin32 does for a COM object

    server.util.unwrap = unwrap
    module("win32api")
    module("win32event")
    module("win32process", GetWindowThreadProcessId=lambda hwnd: (0, 4242))


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


def _windows_engine_module(engine_impl):
    """`xlwings._xlwindows` as far as the UDF path uses it: xlwings' own classes, from its source."""
    import xlwings
    from xlwings import base_classes, constants

    path = Path(xlwings.__file__).with_name("_xlwindows.py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    wanted_classes = {"App", "Book", "Sheet", "Range"}
    wanted_funcs = {"is_range_instance"}
    body = [n for n in tree.body if (isinstance(n, ast.ClassDef) and n.name in wanted_classes)
            or (isinstance(n, ast.FunctionDef) and n.name in wanted_funcs)]
    assert {getattr(n, "name", None) for n in body} == wanted_classes | wanted_funcs, "xlwings changed"
    mod = types.ModuleType("xlwings._xlwindows")
    mod.__file__ = str(path)
    mod.__dict__.update(
        base_classes=base_classes, constants=constants, missing=object(), BOOK_CALLER=None,
        pythoncom=sys.modules["pythoncom"], pywintypes=sys.modules["pywintypes"],
        win32process=sys.modules["win32process"], engine=engine_impl, numbers=__import__("numbers"),
        re=__import__("re"), directions_s2i={}, warn=lambda *a, **k: None,
    )
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), mod.__dict__)
    return mod


def load():
    """xl_addin.udfs with xlwings' real Windows decorators; returns the module."""
    install_com_stubs()
    import xlwings

    if "excel" not in [e.name for e in xlwings.engines]:
        xlwings.engines.add(xlwings.Engine(impl=WindowsEngineStandIn()))
    if not hasattr(xlwings, "_xlwindows") or not hasattr(xlwings._xlwindows, "is_range_instance"):
        xlwings._xlwindows = sys.modules["xlwings._xlwindows"] = _windows_engine_module(
            xlwings.engines["excel"].impl)
    importlib.import_module("xlwings.udfs")
    importlib.import_module("xlwings.com_server")
    for name in _IMPORT_ONLY_STUBS:  # bound in xlwings' modules now: keep them out of everyone else's way
        sys.modules.pop(name, None)
    module = importlib.import_module("xl_addin.udfs")
    if not hasattr(module.LX_MMAH, "__xlfunc__"):  # imported earlier without the stubs
        module = importlib.reload(module)
    return module


_default_sheet = None


def _lone_cell():
    """A calling cell on an otherwise empty sheet, for calls that name no caller."""
    global _default_sheet
    if _default_sheet is None:
        _default_sheet = ComSheet({}, name="Blank", book="Blank.xlsx")
    return _default_sheet.cell("Z1000")


def call(func, *raw_args, caller=None):
    """What `xlwings.udfs.call_udf` returns for a call from a cell (before COM's 1x1 reduction).

    *raw_args* are what COM hands over: a :class:`ComRange` for a reference, a value otherwise.
    The VBA wrapper passes every argument (the missing marker for an omitted optional one) and
    ``Nothing`` for ``caller``.
    """
    from xlwings.udfs import call_udf

    return call_udf(func.__module__, func.__name__, _vba_args(func, raw_args), None, caller or _lone_cell())


def call_via_com(func, *raw_args, caller=None):
    """What the VBA wrapper gets back: `XLPython.CallUDF` (one cell -> a scalar, one row -> 1-D)."""
    from xlwings.com_server import XLPython

    return XLPython().CallUDF(func.__module__, func.__name__, _vba_args(func, raw_args), None,
                              caller or _lone_cell())


def _vba_args(func, raw_args):
    info = func.__xlfunc__["args"]
    visible = [a for a in info if a["name"] != "caller"]
    args = list(raw_args) + [MISSING] * (len(visible) - len(raw_args))
    if any(a["name"] == "caller" for a in info):
        args.append(None)  # "Nothing": call_udf puts the caller there
    return tuple(args)


def excel_shows(result):
    """What a cell range shows for a UDF's array result: a Variant array holding a string longer
    than 255 characters makes the whole formula #VALUE! (every cell of it: xlwings issues #456,
    #869); a scalar may be longer (a 1x1 result reaches VBA as a scalar: ``CallUDF``)."""
    if not isinstance(result, list):
        return result
    rows = [r if isinstance(r, list) else [r] for r in result]
    if sum(len(r) for r in rows) <= 1:  # call_udf's [[x]]: CallUDF hands VBA the scalar x
        return result
    if any(isinstance(v, str) and len(v) > 255 for r in rows for v in r):
        return [["#VALUE!"] * len(r) for r in rows]
    return result


# --- Excel's COM object model, as far as our code and xlwings' classes use it ----------------
def col_letters(n: int) -> str:
    s = ""
    while n:
        n, r = divmod(n - 1, 26)
        s = chr(65 + r) + s
    return s


def parse_a1(ref: str) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of "A1", "$A$1:$B$2", "A:A" or "1:1"."""
    import re

    first, _, last = ref.replace("$", "").upper().partition(":")
    last = last or first

    def one(part, corner):
        m = re.fullmatch(r"([A-Z]{0,3})(\d*)", part)
        letters, digits = m.group(1), m.group(2)
        col = 0
        for ch in letters:
            col = col * 26 + ord(ch) - 64
        row = int(digits) if digits else 0
        if not col:
            col = 1 if corner == 0 else MAX_COLS
        if not row:
            row = 1 if corner == 0 else MAX_ROWS
        return row, col

    (r1, c1), (r2, c2) = one(first, 0), one(last, 1)
    return min(r1, r2), min(c1, c2), max(r1, r2), max(c1, c2)


class _Count:
    def __init__(self, n):
        self.Count = n


class _Areas:
    def __init__(self, areas):
        self._areas = areas
        self.Count = len(areas)

    def Item(self, i):  # noqa: N802 - COM's name
        return self._areas[i - 1]

    def __iter__(self):
        return iter(self._areas)

    def __call__(self, i):
        return self.Item(i)


class _TypeInfo:
    class _Attr:
        iid = RANGE_IID

    def GetTypeInfo(self):  # noqa: N802
        return self

    def GetTypeAttr(self):  # noqa: N802
        return self._Attr()


class ComApp:
    """Excel.Application: Intersect, Calculate/CalculateFull, StatusBar."""

    Version = "16.0"
    Hwnd = 1

    def __init__(self):
        self.calls: list = []
        self.status: list = []
        self.on_calculate = None  # what Excel runs before Calculate returns: the dirty formulas (UDFs)

    def Intersect(self, a, b):  # noqa: N802
        top, left = max(a._top, b._top), max(a._left, b._left)
        bottom, right = min(a._bottom, b._bottom), min(a._right, b._right)
        if top > bottom or left > right:
            return None
        return ComRange(a._sheet, top, left, bottom, right)

    def Calculate(self):  # noqa: N802
        self.calls.append("Calculate")
        if self.on_calculate is not None:  # Excel returns from Calculate once the formulas have run
            self.on_calculate()

    def CalculateFull(self):  # noqa: N802
        self.calls.append("CalculateFull")

    @property
    def StatusBar(self):  # noqa: N802
        return self.status[-1] if self.status else False

    @StatusBar.setter
    def StatusBar(self, value):  # noqa: N802
        self.status.append(value)


class ComBook:
    def __init__(self, name="Book1.xlsx", app=None):
        self.Name = name
        self.Application = app or ComApp()
        self.sheets: list[ComSheet] = []

    @property
    def Worksheets(self):  # noqa: N802
        return list(self.sheets)


class ComSheet:
    """A worksheet given as {address or (row, col): value, or a "=formula" string}.

    *fill* optionally gives a dense block cheaply: ``(top, left, bottom, right, f)`` where
    ``f(row, col)`` is the constant there (a 100,000 x 50 sheet without 5M dict entries).
    *udf_context*: Excel ignores SpecialCells' filter when it is called from inside a UDF and
    answers with the whole range; model that to prove the scan stays bounded anyway.
    """

    def __init__(self, cells: dict, name="Sheet1", book: ComBook | str = "Book1.xlsx", fill=None,
                 udf_context=False):
        self.Name = name
        self.Parent = book if isinstance(book, ComBook) else ComBook(book)
        self.Parent.sheets.append(self)
        self.Application = self.Parent.Application
        self.cells = {}
        for key, v in cells.items():
            if isinstance(key, str):
                r, c, _, _ = parse_a1(key)
                key = (r, c)
            self.cells[key] = v
        self.fill = fill
        self.udf_context = udf_context
        self.cells_read = 0
        self.calls: list = []

    # what each cell holds
    def _raw(self, r, c):
        v = self.cells.get((r, c))
        if v is None and self.fill is not None:
            top, left, bottom, right, f = self.fill
            if top <= r <= bottom and left <= c <= right:
                v = f(r, c)
        return v

    def value_at(self, r, c):
        v = self._raw(r, c)
        if isinstance(v, str) and v.startswith("="):
            return None  # a formula's value: not computed by the stand-in (blank)
        return v

    def formula_at(self, r, c):
        v = self._raw(r, c)
        if v is None:
            return ""
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return v if isinstance(v, str) else str(v)

    def is_formula(self, r, c):
        v = self._raw(r, c)
        return isinstance(v, str) and v.startswith("=")

    # COM
    @property
    def UsedRange(self):  # noqa: N802
        keys = [k for k, v in self.cells.items() if v is not None]
        boxes = [(r, c, r, c) for r, c in keys]
        if self.fill is not None:
            boxes.append(self.fill[:4])
        if not boxes:
            return ComRange(self, 1, 1, 1, 1)
        return ComRange(self, min(b[0] for b in boxes), min(b[1] for b in boxes),
                        max(b[2] for b in boxes), max(b[3] for b in boxes))

    def Cells(self, r, c):  # noqa: N802
        return ComRange(self, r, c, r, c)

    def Range(self, a, b=None):  # noqa: N802
        if isinstance(a, str):
            a = ComRange(self, *parse_a1(a))
        if b is None:
            return a
        if isinstance(b, str):
            b = ComRange(self, *parse_a1(b))
        return ComRange(self, min(a._top, b._top), min(a._left, b._left), max(a._bottom, b._bottom),
                        max(a._right, b._right))

    # test helpers
    def range(self, ref: str) -> "ComRange":
        """The COM Range object Excel hands a UDF for the reference *ref* (e.g. "A:A")."""
        return self.Range(ref)

    def cell(self, address: str) -> "ComRange":
        """The calling cell (Application.Caller)."""
        return self.Range(address)


class ComRange:
    """Excel's Range over COM; counts the cells read through .Value and .Formula."""

    _oleobj_ = _TypeInfo()
    CLSID = RANGE_IID

    def __init__(self, sheet: ComSheet, top, left, bottom, right, areas=None):
        self._sheet, self._top, self._left, self._bottom, self._right = sheet, top, left, bottom, right
        self._areas = areas

    def __repr__(self):
        return f"<ComRange {self._sheet.Name}!{self.Address}>"

    # shape
    Worksheet = property(lambda self: self._sheet)
    Application = property(lambda self: self._sheet.Application)
    Row = property(lambda self: self._top)
    Column = property(lambda self: self._left)
    Rows = property(lambda self: _Count(self._bottom - self._top + 1))
    Columns = property(lambda self: _Count(self._right - self._left + 1))

    @property
    def CountLarge(self):  # noqa: N802
        if self._areas:
            return sum(a.CountLarge for a in self._areas)
        return (self._bottom - self._top + 1) * (self._right - self._left + 1)

    Count = CountLarge

    @property
    def Address(self):  # noqa: N802
        def a1(r, c):
            return f"${col_letters(c)}${r}"

        one = a1(self._top, self._left)
        return one if (self._top, self._left) == (self._bottom, self._right) else f"{one}:{a1(self._bottom, self._right)}"

    @property
    def Areas(self):  # noqa: N802
        return _Areas(self._areas or [self])

    def Cells(self, i, j):  # noqa: N802
        return ComRange(self._sheet, self._top + i - 1, self._left + j - 1, self._top + i - 1, self._left + j - 1)

    def Resize(self, rows, cols):  # noqa: N802
        return ComRange(self._sheet, self._top, self._left, self._top + rows - 1, self._left + cols - 1)

    # contents
    def _read(self, kind, at):
        n = (self._bottom - self._top + 1) * (self._right - self._left + 1)
        self._sheet.cells_read += n
        self._sheet.calls.append((kind, self.Address, n))
        if n == 1:
            return at(self._top, self._left)
        return tuple(tuple(at(r, c) for c in range(self._left, self._right + 1))
                     for r in range(self._top, self._bottom + 1))

    @property
    def Value(self):  # noqa: N802
        return self._read("Value", self._sheet.value_at)

    @property
    def Formula(self):  # noqa: N802
        return self._read("Formula", self._sheet.formula_at)

    def SpecialCells(self, Type, Value=None):  # noqa: N802, N803
        self._sheet.calls.append(("SpecialCells", self.Address, Type))
        if Type != XL_CELL_TYPE_FORMULAS:
            raise NotImplementedError(Type)
        if self._sheet.udf_context:
            return self  # Excel ignores the filter inside a UDF
        rows = {}
        for (r, c), v in self._sheet.cells.items():
            if self._top <= r <= self._bottom and self._left <= c <= self._right and self._sheet.is_formula(r, c):
                rows.setdefault(r, []).append(c)
        areas = []  # runs of formula cells in a row, merged down while identical
        open_runs = {}
        for r in sorted(rows):
            cols = sorted(rows[r])
            runs, start = [], cols[0]
            for a, b in zip(cols, cols[1:] + [None]):
                if b != a + 1:
                    runs.append((start, a))
                    start = b
            nxt = {}
            for run in runs:
                prev = open_runs.get(run)
                if prev is not None and prev._bottom == r - 1:
                    prev._bottom = r
                    nxt[run] = prev
                else:
                    area = ComRange(self._sheet, r, run[0], r, run[1])
                    areas.append(area)
                    nxt[run] = area
            open_runs = nxt
        if not areas:
            raise com_error(excepinfo=(0, "Microsoft Excel", "No cells were found.", None, 0, -2146827284))
        if len(areas) == 1:
            return areas[0]
        first = areas[0]
        return ComRange(self._sheet, first._top, first._left, first._bottom, first._right, areas=areas)

    def Dirty(self):  # noqa: N802
        self._sheet.calls.append(("Dirty", self.Address))

    def Calculate(self):  # noqa: N802
        self._sheet.calls.append(("Calculate", self.Address))


# --- what RunPython's code sees: xlwings' Book API over the COM model ---------------------------
class XwApp:
    """xlwings' App as our refresh uses it: status_bar (Application.StatusBar), alert, api."""

    def __init__(self, api: ComApp):
        self.api = api
        self.alerts: list = []

    @property
    def status_bar(self):
        return self.api.StatusBar

    @status_bar.setter
    def status_bar(self, value):
        self.api.StatusBar = value

    @property
    def status(self):
        return self.api.status

    def alert(self, prompt, title=None, buttons="ok", mode=None, callback=None):
        self.alerts.append((title, prompt))

    def calculate(self):
        self.api.Calculate()


class XwSheet:
    def __init__(self, api: ComSheet):
        self.api, self.name = api, api.Name


class XwBook:
    """xlwings' Book for a workbook of COM sheets with no defined names (formulas only)."""

    def __init__(self, book: ComBook):
        self.api, self.name = book, book.Name
        self.app = XwApp(book.Application)
        self.names: list = []
        self.sheets = [XwSheet(s) for s in book.sheets]


def formulas_book(cells: dict, name="model.xlsx") -> XwBook:
    """A workbook with one sheet of *cells* (A1 address -> value or "=formula")."""
    book = ComBook(name)
    ComSheet(cells, name="Sheet1", book=book)
    return XwBook(book)


def attach_runpython_book() -> None:
    """In a process RunPython started: make `xw.Book.caller()` the workbook described by
    $XL_HARNESS_BOOK (JSON cells), and write what Excel saw to $XL_HARNESS_REPORT at exit."""
    import atexit
    import json
    import os

    import xlwings as xw

    book = formulas_book(json.loads(Path(os.environ["XL_HARNESS_BOOK"]).read_text("utf-8")))
    xw.Book.caller = staticmethod(lambda: book)
    if os.environ.get("XL_HARNESS_CALC"):  # the formulas live in another process (the UDF server)
        book.api.Application.on_calculate = lambda: _calculate_elsewhere(Path(os.environ["XL_HARNESS_CALC"]))

    def report():
        Path(os.environ["XL_HARNESS_REPORT"]).write_text(json.dumps(excel_saw(book)), "utf-8")

    atexit.register(report)


def _calculate_elsewhere(flag: Path, timeout: float = 120.0) -> None:
    """Calculate as Excel does it with the formulas in the UDF server: ask for the recalculation
    (*flag* appears), and return only once it is done (*flag* is gone)."""
    import time

    flag.write_text("calculate", "utf-8")
    ends = time.monotonic() + timeout
    while flag.exists():
        if time.monotonic() > ends:
            raise TimeoutError("nobody recalculated the formulas")
        time.sleep(0.02)


def excel_saw(book: XwBook) -> dict:
    """What a Refresh did to Excel: cells marked dirty, application calls, status bar, alerts."""
    import os

    sheet = book.api.sheets[0]
    return {
        "pid": os.getpid(),
        "dirty": [c[1] for c in sheet.calls if c[0] == "Dirty"],
        "app": list(book.api.Application.calls),
        "status": list(book.api.Application.status),
        "alerts": list(book.app.alerts),
    }
