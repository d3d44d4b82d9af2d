"""Excel formulas (Windows Excel, xlwings UDFs): ``UDF MODULES`` = ``xl_addin.udfs``.

    =LX_MMAH(A2:A50, "mm_sh_nba_d20")          one value per code, spilled
    =LX_MMAH(A2:A50, B1:E1, TRUE)              a matrix with a header row
    =LX_MMAH_FIELDS()                          the field catalog
    =LX_MMAH_INFO()                            version, token source, cache, staleness
    =LX_MMAH_HIST(A2, "mm_sh", -365)           a field over time, from the history store

Thin glue over :mod:`xl_addin.formula`; nothing here does I/O at import time, and the
HTTP and cache modules load on the first formula that needs them.

What crosses COM is kept small: a range argument is read only where the sheet is used
(:mod:`xl_addin.range_args`), the sheet scan is bounded (:mod:`xl_addin.neighbours`),
texts inside arrays are cut to 255 characters (Excel shows #VALUE! otherwise), and the
functions do nothing while Excel's Function Wizard is open (``call_in_wizard=False``).
LX_MMAH_HIST converts its answer for COM itself (:func:`as_sent`, the cells xlwings' own
conversion would give) and keeps it until the history store changes
(:mod:`xl_addin.answer_cache`): a warm call neither queries the store nor converts a cell.
"""

from __future__ import annotations

import datetime as dt
import sys
import time

import xlwings as xw

from .version import __version__
from .answer_cache import AnswerCache, key_of
from .fields import FIELDS
from .formula import explain, fit_for_excel, mmah_matrix

if sys.platform.startswith("win") or "pythoncom" in sys.modules:
    # Windows: xlwings' own UDF machinery (what `import xlwings` binds as xw.func there)
    from xlwings.udfs import xlarg as arg, xlfunc as func, xlret as ret

    from .range_args import UsedValues  # a range argument: only its used part is read through COM

    _SENT_OPTIONS = {"ndim": 2}  # what @ret(ndim=2) gave xlwings' conversion
    _MEMO_TYPES = frozenset({str, int, dt.datetime})  # equal values of these convert alike (not so -0.0, NaN)
    _sent_cells: dict = {}  # (type, value) -> what xlwings' conversion made of it

    def as_sent(matrix: list[list]) -> list[list]:
        """What xlwings' own ``@ret(ndim=2)`` hands COM for *matrix* (a list of equal rows): the
        Windows engine's ``prepare_xl_data_element`` of each cell, as ``conversion.write``'s
        ``CleanDataForWriteStage`` calls it (a date becomes a COM date, None an empty cell), so
        that a function declared ``@ret("raw")`` can keep the result and hand the same cells
        over again. Each distinct date, text or whole number is converted once per process."""
        prepare = xw.engines["excel"].impl.prepare_xl_data_element
        memo = _sent_cells
        if len(memo) > 100_000:
            memo.clear()
        out = []
        for row in matrix:
            sent = []
            for x in row:
                kind = x.__class__
                if kind in _MEMO_TYPES:
                    key = (kind, x)
                    value = memo.get(key, memo)
                    if value is memo:
                        value = memo[key] = prepare(x, _SENT_OPTIONS)
                else:
                    value = prepare(x, _SENT_OPTIONS)
                sent.append(value)
            out.append(sent)
        return out
else:  # macOS/Linux: Excel has no xlwings UDFs there; plain functions
    func, arg, ret = xw.func, xw.arg, xw.ret
    UsedValues = None

    def as_sent(matrix: list[list]) -> list[list]:
        return matrix

_scanned: dict[tuple, tuple[float, float]] = {}  # sheet -> (when scanned, the Refresh stamp then)
_hist_answers = AnswerCache()  # LX_MMAH_HIST's answers as sent, while the store's version holds
SCAN_INTERVAL = 10.0  # seconds between neighbour scans of one sheet


def service():
    """The process-wide data service (one memory cache for every formula, and for a Refresh in
    the same process): :func:`xl_addin.service.shared`, made for formulas on first use."""
    from .service import for_formulas, shared

    return shared(for_formulas)


def reset() -> None:
    """Forget the service (settings are read again on the next formula) and the neighbour scans."""
    from .service import set_shared

    set_shared(None)
    _scanned.clear()
    _hist_answers.clear()


def _neighbour_codes(caller, stamp: float = 0.0) -> list[str]:
    """Codes the sheet's other LX_MMAH formulas ask for (a bounded scan, at most every 10 s, and
    once more after each Refresh: *stamp* is the service's "not before")."""
    try:
        cell = caller.api  # the calling cell's COM Range: read what we need straight from it
        sheet = cell.Worksheet
        key = (sheet.Parent.Name, sheet.Name)
        now = time.monotonic()
        last, last_stamp = _scanned.get(key, (-SCAN_INTERVAL, stamp))
        if now - last < SCAN_INTERVAL and last_stamp == stamp:
            return []
        _scanned[key] = (now, stamp)
        from .neighbours import scan

        return scan(sheet, cell.Row)
    except Exception:  # a scan is an optimisation: never let it fail a formula
        return []


def _fetcher(caller):
    def fetch(codes):
        svc = service()
        have = svc.peek(codes)
        if len(have.records) + len(have.errors) == len(codes):
            return have  # warm: memory only, no lock on I/O
        if caller is not None:
            extra = [c for c in _neighbour_codes(caller, svc.fresh_floor) if c not in have.records]
            if extra:
                svc.fetch(list(dict.fromkeys(codes + extra)))  # one batched call for the sheet
        return svc.fetch(codes)

    return fetch


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "y", "是")
    return bool(value)


@func(category="Lixinger", call_in_wizard=False)
@arg("codes", UsedValues, ndim=2, err_to_str=True,
     doc="HK codes: a cell or a range, typed any way (700, 00700, 0700.HK)")
@arg("fields", UsedValues, ndim=2, doc='Field key or 中文 label, or a row of them, e.g. "mm_sh_nba_d20"')
@arg("headers", doc="TRUE adds a header row (default FALSE)")
@ret(ndim=2)
def LX_MMAH(codes, fields, headers=False, caller=None):
    """Lixinger Stock Connect (港股通) holdings: one row per code, one column per field. Errors show as #N/A text."""
    try:
        return fit_for_excel(mmah_matrix(codes, fields, _truthy(headers), _fetcher(caller)))
    except Exception as exc:  # never a traceback in a cell
        return [[explain(exc)]]


@func(category="Lixinger", call_in_wizard=False)
@arg("codes", UsedValues, ndim=2, err_to_str=True,
     doc="HK codes: a cell or a range (one code: date and value columns; several: codes across)")
@arg("field", doc='One field key or 中文 label, e.g. "mm_sh"')
@arg("start", doc="First date: a date, ISO text (2026-01-31) or days back (-60); default: all history")
@arg("end", doc="Last date: a date, ISO text or days back (0 = today); default: today")
@arg("headers", doc="TRUE adds a header row (default FALSE)")
@ret("raw")  # the cells are converted already: as_sent, once per answer
def LX_MMAH_HIST(codes, field, start=None, end=None, headers=False):
    """Lixinger Stock Connect history (like BDH/WSD): dates down, one column per code, from the snapshots kept. Never asks the service."""
    try:
        svc = service()
        store = svc.history_store()
        source = svc.settings.base_url
        today = _today()
        # a warm call: the cells sent last time, while the store is as it was (any new snapshot,
        # from any process, changes its version: see xl_addin.answer_cache)
        version = _store_version(store)
        key = key_of(codes, field, start, end, headers, today, source)
        kept = _hist_answers.get(store, version, key)
        if kept is not None:
            return kept
        from .formula_hist import hist_matrix

        sent = as_sent(hist_matrix(codes, field, start, end, _truthy(headers),  # texts already fit an array
                                   lambda cs, f, a, b: store.series(cs, f, a, b, source=source),
                                   today, lambda: store.info(source).snapshots == 0))
        _hist_answers.put(store, version, key, sent)
        return sent
    except Exception as exc:  # never a traceback in a cell
        return as_sent([[explain(exc)]])


def _today() -> dt.date:
    """Today's date, as the formulas read it (one place, so that a test can move the calendar)."""
    return dt.date.today()


def _store_version(store):
    """The store's version (``SQLiteStore.data_version``), or None when it has no cheap one."""
    version = getattr(store, "data_version", None)
    return version() if version is not None else None


@func(category="Lixinger", call_in_wizard=False)
@ret(ndim=2)
def LX_MMAH_FIELDS():
    """The 42 mm_ah fields: key, 中文 label, English label, kind. For lookups and validation lists."""
    return fit_for_excel([["key", "中文", "English", "kind"]] + [[f.key, f.zh, f.en, f.kind] for f in FIELDS])


@func(category="Lixinger", call_in_wizard=False)
@ret(ndim=2)
def LX_MMAH_INFO():
    """xl_addin status: version, where the token comes from (never the token), cache, data date, requests, staleness."""
    rows = [["version", __version__]]
    try:
        from .config import info_rows

        rows += info_rows()  # each setting with its source (default, file, environment)
        status = service().status()
        rows += [
            ["service", status.base_url],
            ["token source", status.token_source or explain(status.token_error)],
            ["cache file", status.cache_file or "(off)"],
            ["newest data date", status.newest_data_date],
            ["requests this session", status.requests_sent],
            ["stale values shown", "yes: the service failed, cached values shown" if status.last_stale else "no"],
            ["last error", str(status.last_error) if status.last_error else ""],
        ]
        rows += [[label, value] for label, value in status.desk]  # a desk store: where, and how it is doing
    except Exception as exc:
        rows.append(["error", explain(exc)])
    return fit_for_excel(rows)


__all__ = ["LX_MMAH", "LX_MMAH_FIELDS", "LX_MMAH_HIST", "LX_MMAH_INFO"]
