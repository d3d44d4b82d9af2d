"""What `lx-addin fetch` prints: a table that fits the terminal, CSV or JSON.

Pure functions from (code, record, error, stale, fetched_at) entries to text. The table
puts fields down and codes across while the codes fit the terminal, and codes down,
fields across when there are more codes than fit (``--transpose`` flips it); columns
that still do not fit are cut, and a note says so. Numbers are rounded to what is shown
before the sign is chosen, so a tiny negative prints ``0.00%``, never ``-0.00%``.
Stale values (served from the cache because the service failed) are marked: ``*`` in
the table, ``stale`` and ``fetched_at`` in CSV and JSON.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass

from .exceptions import NoDataError

STALE_MARK = "*"
DEFAULT_WIDTH = 120  # when the width is unknown (output to a pipe or a file)


@dataclass
class Entry:
    label: str  # the code, or the input as typed when it is not a code
    record: dict | None
    error: Exception | None
    stale: bool = False
    fetched_at: float | None = None


def fetched_text(ts: float | None) -> str | None:
    """Local time with its offset, to the second: 2026-03-17T09:30:00+08:00."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def cell_text(field, value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    if field.kind == "ratio" and isinstance(value, (int, float)):
        return f"{round(value * 100, 2) + 0.0:,.2f}%"  # + 0.0 turns -0.0 into 0.0
    if field.kind in ("amount", "shares") and isinstance(value, (int, float)):
        return f"{round(value) + 0:,d}"
    return str(value)


def _missing(entry: Entry) -> str:
    return "no data" if isinstance(entry.error, NoDataError) else "error"


# --- table -------------------------------------------------------------------------------
def display_width(text: str) -> int:
    """Terminal columns *text* takes: wide (中文) characters take two."""
    import unicodedata

    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def _pad(text: str, width: int, right: bool = False) -> str:
    gap = " " * max(0, width - display_width(text))
    return gap + text if right else text + gap


def _widths(headers: list[str], rows: list[list[str]]) -> list[int]:
    return [max([display_width(h)] + [display_width(r[i]) for r in rows]) for i, h in enumerate(headers)]


def render_table(headers: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Columns padded by display width; the first *left* columns are left-aligned (text), the
    rest right-aligned (numbers). Headers follow their column."""
    widths = _widths(headers, rows)
    lines = ["  ".join(_pad(h, w, right=i >= left) for i, (h, w) in enumerate(zip(headers, widths))).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(_pad(c, w, right=i >= left) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return lines


def _fit(headers: list[str], rows: list[list[str]], width: int | None) -> tuple[list[str], list[list[str]], int]:
    """Keep the first column and as many others as fit in *width*; returns how many were cut."""
    if width is None:
        return headers, rows, 0
    used, keep = 0, 0
    for i, w in enumerate(_widths(headers, rows)):
        if i and used + 2 + w > width:
            break
        used += w + (2 if i else 0)
        keep = i + 1
    keep = max(keep, 2) if len(headers) > 1 else keep
    return headers[:keep], [r[:keep] for r in rows], len(headers) - keep


def codes_across(entries: list[Entry], fields) -> tuple[list[str], list[list[str]]]:
    headers = ["field"] + [e.label + (STALE_MARK if e.stale else "") for e in entries]
    rows = []
    for f in fields[1:]:
        rows.append([f"{f.key}  {f.en}"] + [
            cell_text(f, e.record.get(f.key)) if e.record is not None else _missing(e) for e in entries
        ])
    return headers, rows


def codes_down(entries: list[Entry], fields) -> tuple[list[str], list[list[str]]]:
    headers = [f.key for f in fields]
    rows = []
    for e in entries:
        label = e.label + (STALE_MARK if e.stale else "")
        if e.record is not None:
            rows.append([label] + [cell_text(f, e.record.get(f.key)) for f in fields[1:]])
        else:
            rows.append([label] + ([_missing(e)] + [""] * (len(fields) - 2) if len(fields) > 1 else []))
    return headers, rows


def table(entries: list[Entry], fields, width: int | None, transpose: bool = False) -> tuple[str, list[str]]:
    """The table's text and the notes to print with it (what was cut, what is stale)."""
    judge = width or DEFAULT_WIDTH
    if len(fields) <= 8:
        across = False  # a few fields: the classic table, one code a row
    else:
        across = max(display_width(line) for line in render_table(*codes_across(entries, fields))) <= judge
    if transpose:
        across = not across
    headers, rows = codes_across(entries, fields) if across else codes_down(entries, fields)
    headers, rows, cut = _fit(headers, rows, width)
    notes = []
    if cut:
        what = "codes" if across else "fields"
        total = len(entries) if across else len(fields)
        notes.append(f"showing {total - cut} of {total} {what} to fit {width} columns; "
                     "use --fields, --transpose, a wider window or --format csv for the rest")
    stale = [e for e in entries if e.stale]
    if stale:
        oldest = min((e.fetched_at for e in stale if e.fetched_at), default=None)
        when = f", fetched {dt.datetime.fromtimestamp(oldest):%Y-%m-%d %H:%M}" if oldest else ""
        notes.append(f"{STALE_MARK} stale: {len(stale)} code(s) shown from the cache{when} "
                     "because the service failed")
    return "\n".join(render_table(headers, rows)), notes


# --- CSV and JSON ----------------------------------------------------------------------------
def to_json(entries: list[Entry], keys: list[str]) -> str:
    from .records import record_to_json

    out = []
    for e in entries:
        obj = record_to_json(e.record, keys) if e.record is not None else {"stockCode": e.label, "error": str(e.error)}
        obj["stale"] = e.stale
        obj["fetched_at"] = fetched_text(e.fetched_at)
        out.append(obj)
    return json.dumps(out, ensure_ascii=False, indent=2) + "\n"


def to_csv(entries: list[Entry], keys: list[str]) -> str:
    from .records import record_to_json

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(keys + ["stale", "fetched_at", "error"])
    for e in entries:
        meta = ["true" if e.stale else "false", fetched_text(e.fetched_at) or ""]
        if e.record is not None:
            j = record_to_json(e.record, keys)
            writer.writerow(["" if j[k] is None else j[k] for k in keys] + meta + [""])
        else:
            writer.writerow([e.label] + [""] * (len(keys) - 1) + meta + [str(e.error)])
    return buf.getvalue()


# --- the other commands' output: tables or JSON ----------------------------------------------
def _json(value, ensure_ascii: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=2) + "\n"


def entries_for(inputs, answer) -> list[Entry]:
    """One :class:`Entry` per input (``codes.parse_inputs``), from the service's *answer* (None: nothing asked)."""
    out = []
    for raw, code, error in inputs:
        if code is None or answer is None:
            out.append(Entry(raw, None, error))
        else:
            out.append(Entry(code, answer.records.get(code), answer.errors.get(code),
                             code in answer.stale, answer.fetched_at.get(code)))
    return out


def fetch_text(entries: list[Entry], fields, fmt: str, width: int | None,
               transpose: bool = False) -> tuple[str, list[str]]:
    """What `lx-addin fetch` prints (stdout) and its notes (stderr): a table, CSV or JSON."""
    keys = [f.key for f in fields]
    if fmt == "json":
        return to_json(entries, keys), []
    if fmt == "csv":
        return to_csv(entries, keys), []
    if not any(e.record is not None for e in entries):  # no table of nothing but error cells
        return "", []
    text, notes = table(entries, fields, width, transpose=transpose)
    return text + "\n", notes


def fetch_notes(entries: list[Entry], notes: list[str], fmt: str, stale_because=None) -> list[str]:
    """The lines `lx-addin fetch` says on stderr: the table's notes, one line per problem's cause,
    and why the service failed for the stale values, once per cause (outside the table, which
    marks them itself, with how many values are stale)."""
    from .problems import by_cause, cause_of, grouped

    lines = [f"note: {n}" for n in notes]
    lines += grouped((e.label, cause_of(e.error, hint=True)) for e in entries if e.error is not None)
    stale_because = stale_because or {}
    why_stale = by_cause((e.label, str(stale_because.get(e.label) or "no reason known")) for e in entries if e.stale)
    for why, labels in why_stale.items():
        if fmt != "table":
            lines.append(f"warning: the service failed ({why}); {len(labels)} code(s) are cached values, marked stale")
        else:
            lines.append(f"note: the service failed: {why}")
    return lines


def fields_text(fields, fmt: str) -> str:
    """The field catalog, as a table or JSON."""
    if fmt == "json":
        return _json([{"key": f.key, "zh": f.zh, "en": f.en, "kind": f.kind, "window": f.window} for f in fields])
    rows = [[f.key, f.zh, f.en, f.kind, str(f.window or "")] for f in fields]
    return "\n".join(render_table(["key", "中文", "English", "kind", "window"], rows, left=4)) + "\n"


def settings_text(rows: list[tuple[str, object, str]], path, fmt: str) -> str:
    """Each setting's (key, value, source), as a table (with the settings file) or JSON."""
    if fmt == "json":
        return _json([{"key": k, "value": None if v is None else v if isinstance(v, (int, float)) else str(v),
                       "source": src} for k, v, src in rows])
    table_rows = [[k, "(platform default)" if v is None else str(v), src] for k, v, src in rows]
    return "\n".join(render_table(["setting", "value", "source"], table_rows, left=3)) + f"\nsettings file: {path}\n"


def kib(n: int) -> str:
    return f"{n / 1024:,.0f} KiB"


def cache_text(info: dict, fmt: str) -> str:
    """`lx-addin cache info`: the file, its size, and one row per service it holds data of."""
    if fmt == "json":
        return _json(info, ensure_ascii=True)
    lines = [f"cache file:  {info['path']}{'' if info['exists'] else ' (not created yet)'}",
             f"size:        {kib(info['size_bytes'])}",
             f"in use:      {info['source']}"]
    rows = [[r["source"] + (" (in use)" if r["source"] == info["source"] else ""), f"{r['codes']:,}",
             f"{r['snapshots']:,}", r["newest_data_date"] or "-",
             f"{dt.datetime.fromtimestamp(r['last_fetch']):%Y-%m-%d %H:%M}" if r["last_fetch"] else "-"]
            for r in info["services"]]
    if rows:
        lines += [""] + render_table(["service", "codes", "snapshots", "newest data", "last fetch"], rows)
    else:
        lines.append("no data cached yet")
    return "\n".join(lines) + "\n"


def install_text(report) -> str:
    """What `lx-addin install` did (an :class:`xl_addin.install.InstallReport`), one line each."""
    lines = [f"Python for Excel:  {report.interpreter}", f"ribbon add-in:     {report.addin}"]
    if report.formulas:
        lines.append("imported the LX_MMAH functions into the add-in: they work in every workbook")
    if report.freeze_button:
        lines.append("added the Freeze values button to the Lixinger tab")
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)


def labelled_text(rows) -> str:
    """``label:  value`` lines, the values lined up (`lx-addin store status`)."""
    return "".join(f"{label + ':':<14}{value}\n" for label, value in rows)


def history_text(rows, fields, fmt: str) -> str:
    """`lx-addin history`: rows ``(code, date, value, ...)`` from the store, one line per
    (code, data date), as a table (values as `fetch` shows them), CSV or JSON (raw numbers)."""
    keys = [f.key for f in fields]
    if fmt == "json":
        return _json([{"code": r[0], "date": r[1].isoformat(), **dict(zip(keys, r[2:]))} for r in rows]) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["code", "date", *keys])
        writer.writerows([r[0], r[1].isoformat(), *("" if v is None else repr(v) for v in r[2:])] for r in rows)
        return out.getvalue()
    table_rows = [[r[0], r[1].isoformat(), *(cell_text(f, v) for f, v in zip(fields, r[2:]))] for r in rows]
    return "\n".join(render_table(["code", "date", *keys], table_rows, left=2)) + "\n"
