"""The trend view: a template's blocks of days x names, filled by the refresh from the history store.

The API only gives today's snapshot; a trend exists only because the history store keeps
every day's (``lx-addin snapshot``, run daily by ``lx-addin schedule on``). A refresh that
finds a trend block in the workbook fills it from that store, never from a request, so
the trend costs the service nothing and reads the same offline.

A block (``LX_TREND_RATIO``, ``LX_TREND_NETBUY``; see :mod:`xl_addin.layout`) is a header
row over one row per day: its first column the dates (real dates, oldest first), then
one column per name. The refresh owns the whole block and nothing outside it:

- **days**: the block's day rows are the last weekdays (Monday to Friday) up to the
  newest data date kept for the watchlist; a weekday with no snapshot for a name (a
  holiday, a day the snapshot did not run) is blank, never 0;
- **names**: the watchlist's (``LX_CODES``) top names, meaning the codes with the
  largest Southbound holding value (``mm_sha``) on their newest kept day in the
  window, as many as the block has name columns; the header shows ``Name (code)``
  from the sheet's name column when it has one;
- ``LX_TREND_RATIO``: the holding, % of H shares (``mm_sh_cap_r``) each day;
- ``LX_TREND_NETBUY``: cumulative net buying in HKD since the first day shown: the
  running sum of each kept day's ``mm_sh_nba_d1``. A day with no snapshot is blank and
  its flow, unknown, is not in the sum after it.

Pure planning (:func:`plan_trend` from rows) around one reading step (:func:`read_history`)
and one writing step (:func:`apply_trend`), through the same Book adapter as the table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .exceptions import LixingerError, WorkbookError
from .layout import Ref

RATIO, NETBUY = "LX_TREND_RATIO", "LX_TREND_NETBUY"
NAMES = (RATIO, NETBUY)
RANK_FIELD = "mm_sha"  # "top" names: the largest Southbound holding value
MEASURES = {RATIO: "mm_sh_cap_r", NETBUY: "mm_sh_nba_d1"}
DATE_HEADER = "Date 日期"


@dataclass(frozen=True)
class TrendLayout:
    """The workbook's trend blocks, by defined name (one or both), all of one shape."""

    blocks: dict  # name -> Ref
    table: object = None  # the book's Layout (LX_CODES, LX_FIELDS), for the names beside the codes

    @property
    def days(self) -> int:
        return next(iter(self.blocks.values())).height - 1

    @property
    def names(self) -> int:
        return next(iter(self.blocks.values())).width - 1

    @classmethod
    def from_names(cls, names: dict[str, str], table: Ref | None = None, fields: Ref | None = None,
                   status: Ref | None = None) -> "TrendLayout | None":
        """The trend blocks of a workbook's defined names (None: it has none); a malformed block
        is a one-line WorkbookError that names it, raised before anything is fetched or written."""
        upper = {k.split("!")[-1].upper(): v for k, v in names.items()}
        blocks = {}
        for name in NAMES:
            if name not in upper:
                continue
            try:
                ref = Ref.parse(upper[name])
            except WorkbookError as exc:
                raise WorkbookError(f"{name}: {exc}") from None
            if ref.width < 2 or ref.height < 3:
                raise WorkbookError(
                    f"{name} must be a header row over at least two day rows, a date column and at least one "
                    f"name column, not {ref.a1()}")
            if table is not None and fields is not None and _overlap(ref, _table_area(table, fields)):
                raise WorkbookError(f"{name} ({ref.a1()}) must not overlap the LX_CODES/LX_FIELDS table")
            if status is not None and _overlap(ref, status):
                raise WorkbookError(f"{name} ({ref.a1()}) must not overlap LX_STATUS")
            blocks[name] = ref
        if not blocks:
            return None
        if len({(r.height, r.width) for r in blocks.values()}) > 1:
            raise WorkbookError(f"{RATIO} and {NETBUY} must be the same size (the same days and names), not "
                                + " and ".join(r.a1() for r in blocks.values()))
        if len(blocks) == 2 and _overlap(*blocks.values()):
            raise WorkbookError(f"{RATIO} and {NETBUY} must not overlap")
        return cls(blocks)


def layout_of(book) -> TrendLayout | None:
    """The trend blocks of *book* (None: it has none), checked against its table layout."""
    names = book.defined_names()
    if not any(k.split("!")[-1].upper() in NAMES for k in names):
        return None
    from .layout import Layout

    table = Layout.from_names(names)
    found = TrendLayout.from_names(names, table.codes, table.fields, table.status)
    _check_writable(book, found.blocks)
    return TrendLayout(found.blocks, table)


def _check_writable(book, blocks: dict) -> None:
    """A block on a sheet the book lacks, or that the book would refuse to write (a protected sheet,
    merged cells), is refused now, naming the block: before the request, not after it."""
    sheets = getattr(book, "sheet_names", None)
    check = getattr(book, "check_area", None)
    known = sheets() if sheets is not None else None
    for name, ref in blocks.items():
        if known is not None and ref.sheet not in known:
            raise WorkbookError(f"{name} ({ref.a1()}) is on a sheet this workbook does not have")
        if check is not None:
            try:
                check(ref.sheet, ref.top, ref.left, ref.bottom, ref.right)
            except WorkbookError as exc:
                raise WorkbookError(f"{name} ({ref.a1()}): {exc}") from None


def _table_area(codes: Ref, fields: Ref) -> Ref:
    """The table the refresh fills, with its field-key row: from LX_FIELDS' row down to the last code."""
    return Ref(codes.sheet, min(codes.top, fields.top), min(codes.left, fields.left), codes.bottom,
               max(codes.right, fields.right))


def _overlap(a: Ref, b: Ref) -> bool:
    return (a.sheet == b.sheet and a.top <= b.bottom and b.top <= a.bottom
            and a.left <= b.right and b.left <= a.right)


def weekdays_until(end: dt.date, n: int) -> list[dt.date]:
    """The *n* weekdays up to and including *end* (a weekend *end* counts back from Friday), oldest first."""
    out: list[dt.date] = []
    day = end
    while len(out) < n:
        if day.weekday() < 5:
            out.append(day)
        day -= dt.timedelta(days=1)
    return out[::-1]


@dataclass
class TrendPlan:
    """What the refresh writes into each trend block, and one line saying so."""

    layout: TrendLayout
    days: list[dt.date] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)  # the top names, in column order
    blocks: dict = field(default_factory=dict)  # name -> matrix (header row first), the block's full size
    note: str = ""

    def line(self) -> str:
        return self.note


def top_codes(latest: dict, watchlist: list[str], n: int, since: dt.date) -> list[str]:
    """The *n* watchlist codes with the largest holding value on their newest kept day (from
    *since* on); a code without a value ranks after those with one; ties keep the watchlist's order."""
    candidates = [c for c in watchlist if c in latest and latest[c][0] >= since]
    order = {c: i for i, c in enumerate(watchlist)}

    def key(code):
        value = latest[code][1]
        return (value is None, -(value or 0), order[code])

    return sorted(candidates, key=key)[:n]


def plan_trend(layout: TrendLayout, watchlist: list[str], latest: dict, rows: dict,
               labels: dict[str, str] | None = None) -> TrendPlan:
    """The blocks' contents from what the store holds (pure).

    *latest*: code -> (newest kept data date, its ``mm_sha``); *rows*: code -> {date: (ratio,
    net buy d1)} for the chosen codes; *labels*: code -> the analyst's name for it."""
    labels = labels or {}
    seen = [latest[c][0] for c in watchlist if c in latest]
    plan = TrendPlan(layout)
    n_days, n_names = layout.days, layout.names
    if not seen:
        plan.note = "trend: no history kept yet for these codes (`lx-addin snapshot` keeps one a day)"
        plan.blocks = {name: _empty(n_days, n_names) for name in layout.blocks}
        return plan
    days = weekdays_until(max(seen), n_days)
    codes = top_codes(latest, watchlist, n_names, days[0])
    plan.days, plan.codes = days, codes
    header = [DATE_HEADER] + [(f"{labels[c]} ({c})" if labels.get(c) else c) for c in codes]
    header += [None] * (n_names - len(codes))
    for name in layout.blocks:
        matrix = [list(header)]
        running = {c: 0.0 for c in codes}
        for day in days:
            row: list = [day]
            for c in codes:
                kept = rows.get(c, {}).get(day)
                if kept is None:
                    row.append(None)  # no snapshot that day: blank, not 0
                    continue
                ratio, flow = kept
                if name == RATIO:
                    row.append(ratio)
                elif flow is None:
                    row.append(None)
                else:
                    running[c] += flow
                    row.append(running[c])
            row += [None] * (n_names - len(codes))
            matrix.append(row)
        plan.blocks[name] = matrix
    kept_days = sum(1 for d in days if any(d in rows.get(c, {}) for c in codes))
    plan.note = (f"trend: {len(codes)} top name(s) by holding value x {len(days)} weekdays "
                 f"{days[0]}..{days[-1]}, {kept_days} with a snapshot")
    return plan


def _empty(n_days: int, n_names: int) -> list[list]:
    return [[DATE_HEADER] + [None] * n_names] + [[None] * (n_names + 1) for _ in range(n_days)]


def read_history(service, layout: TrendLayout, watchlist: list[str]) -> tuple[dict, dict]:
    """(latest, rows) for :func:`plan_trend`, from the service's history store; never a request."""
    store = service.history_store()
    source = service.settings.base_url
    try:
        newest = store.latest(watchlist, source=source)
        latest = {c: (s.data_date, s.values.get(RANK_FIELD)) for c, s in newest.items()}
        if not latest:
            return latest, {}
        days = weekdays_until(max(d for d, _ in latest.values()), layout.days)
        codes = top_codes(latest, watchlist, layout.names, days[0])
        rows: dict = {}
        for code, date, ratio, flow in service.history_rows(codes, [MEASURES[RATIO], MEASURES[NETBUY]],
                                                             days[0], days[-1]):
            rows.setdefault(code, {})[date] = (ratio, flow)
        return latest, rows
    finally:
        store.close()  # reopened on the next use: an idle Excel holds no handle on the file


def prepare_trend(book, service, layout: TrendLayout | None, watchlist: list[str]) -> TrendPlan | None:
    """The trend plan for *book*, or None when it has no trend block. A history store that
    cannot be read leaves the blocks as they are (the table is still refreshed) and says why."""
    if layout is None:
        return None
    labels = name_labels(book, layout.table) if layout.table is not None else {}
    try:
        latest, rows = read_history(service, layout, watchlist)
    except LixingerError as exc:
        return TrendPlan(layout, note=f"trend: not filled, the history store could not be read ({exc})")
    except Exception as exc:  # sqlite3 errors and the like: the table's refresh goes on
        return TrendPlan(layout, note=f"trend: not filled, the history store could not be read "
                                      f"({type(exc).__name__}: {exc})")
    return plan_trend(layout, watchlist, latest, rows, labels)


def apply_trend(book, plan: TrendPlan | None) -> None:
    """Write each block, whole (cells past the names and days kept are cleared)."""
    if plan is None:
        return
    for name, matrix in plan.blocks.items():
        ref = plan.layout.blocks[name]
        book.write(ref.sheet, ref.top, ref.left, matrix)


def name_labels(book, table) -> dict[str, str]:
    """code -> the analyst's name beside it: the text in the column right of LX_CODES, when
    that column is not one of the table's (the templates' "Name (yours)" column)."""
    from .codes import parse_code

    c, f = table.codes, table.fields
    col = c.left + 1
    if f.left <= col <= f.right:
        return {}
    cells = book.read(c.sheet, c.top, c.left, c.bottom, col)
    out: dict[str, str] = {}
    for row in cells:
        raw, label = (row + [None, None])[:2]
        code, error = parse_code(raw)
        if code and error is None and isinstance(label, str) and label.strip() and not label.startswith("="):
            out.setdefault(code, label.strip())
    return out

