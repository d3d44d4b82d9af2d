"""Headless refresh of an .xlsx file that loses nothing.

General-purpose writers (openpyxl) re-create every part of a workbook from what they
understand, and drop what they do not (shapes, form controls, extensions, pivot
caches). This writer changes only what the refresh owns: the cells of one
worksheet part, edited in place (only the rows written are rendered again, see
:mod:`xl_addin.xlsx_rows`; a sheet not laid out plainly is edited as an lxml tree, namespace
prefixes, unknown elements and attributes kept), plus ``fullCalcOnLoad`` in workbook.xml so that formulas
depending on the new values are recalculated when the file is opened. Every other
part of the zip is copied as it was. Writes are atomic (a temporary file, then a
rename); any doubt means nothing is written and the reason is given.

Files are treated as a careful user would: a read-only workbook is refused, a
symlinked workbook is refreshed at its target (the link stays a link), a new file
gets the mode the umask gives, no folder is created, and temporary files left by a
killed refresh (``.~book.XXXXXXXX.xlsx``, ours only, unlocked and old) are removed by
the next save. Every part is read against a size limit (``XL_ADDIN_MAX_PART_BYTES``),
checked on the declared size and again while inflating, so a small zip that inflates
to gigabytes is refused before it fills memory.
"""

from __future__ import annotations

import bisect
import copy
import datetime as dt
import math
import os
import posixpath
import re
import stat
import struct
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

from lxml import etree

from .dates import as_excel_datetime
from .config import DEFAULT_MAX_PART_BYTES, MAX_PART_ENV, max_part_bytes  # noqa: F401
from .exceptions import WorkbookError
from .layout import col_letter, col_number
from .xlsx_rows import NotRaw, RawSheet, cell_tail, grown_ref

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
Q = f"{{{NS}}}"
_V = f"{Q}v"
_ADDR = re.compile(r"^([A-Z]{1,3})(\d+)$")
_PARSER = etree.XMLParser(remove_blank_text=False, resolve_entities=False, huge_tree=True)
#: a cell's pointers to value metadata (a rich value: a linked data type, a picture in the cell) and
#: cell metadata (a dynamic array): they describe the value a write replaces, so the write drops them
_METADATA = frozenset(("vm", "cm"))

#: A temporary file of ours (``.~{stem}.{mkstemp's 8 characters}{suffix}``) older than this,
#: and not locked by a running save, was left by a killed refresh.
STALE_TEMP_SECONDS = 60.0
_TEMP_CHARS = "[a-z0-9_]{8}"


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


_COLUMNS: dict[str, int] = {}


def _col(ref: str) -> int:
    """The column of a cell's A1 reference (the row is its ``<row>``'s)."""
    letters = ref.rstrip("0123456789")
    col = _COLUMNS.get(letters)
    if col is None:
        if not letters or len(letters) > 3 or not letters.isalpha() or not letters.isupper():
            raise WorkbookError(f"a cell reference {ref!r} is not an A1 reference")
        col = _COLUMNS[letters] = col_number(letters)
    return col


def _addr(ref: str) -> tuple[int, int]:
    """(row, column) of an A1 reference; column letters are memoised (at most 16,384 of them), not
    whole references (a cache of every cell's address cost megabytes on a large sheet)."""
    m = _ADDR.match(ref)
    letters = m.group(1)
    col = _COLUMNS.get(letters)
    if col is None:
        col = _COLUMNS[letters] = col_number(letters)
    return int(m.group(2)), col


class Uncalculated(str):
    """A formula cell with no calculated value, as its formula text (``=Watchlist!A2``): saved by a
    program that does not calculate. Never a code; the refresh says what to do about it."""

    uncalculated = True


class XlsxBook:
    """The refresh's Book adapter over an .xlsx file on disk."""

    def __init__(self, path):
        self.path = Path(path)
        if self.path.suffix.lower() in (".xls", ".xlsb"):
            raise WorkbookError(f"{self.path.name}: {self.path.suffix} files cannot be refreshed; save it as .xlsx")
        if self.path.is_dir():
            raise WorkbookError(f"{self.path} is a folder, not a workbook: name an .xlsx file")
        try:  # a pipe or a device (a link to /dev/zero) would hang the read: never opened
            special = self.path.exists() and not stat.S_ISREG(self.path.stat().st_mode)
        except OSError:
            special = False  # said below, when it is opened
        if special:
            raise WorkbookError(f"{self.path} is not a regular file, so not a workbook: name an .xlsx file")
        self._limit = max_part_bytes()
        try:
            self._zip = zipfile.ZipFile(self.path)
        except FileNotFoundError:
            raise WorkbookError(f"no such file: {self.path}") from None
        except PermissionError:
            raise WorkbookError(f"{self.path}: permission denied (cannot read it)") from None
        except (zipfile.BadZipFile, OSError):
            raise WorkbookError(f"{self.path.name} is not an Excel .xlsx workbook") from None
        try:
            self._parts = {i.filename: i for i in self._zip.infolist()}
            self._workbook = etree.fromstring(self._part("xl/workbook.xml"), _PARSER)
        except (KeyError, etree.XMLSyntaxError):
            self._zip.close()
            raise WorkbookError(f"{self.path.name} is not an Excel .xlsx workbook") from None
        except BaseException:
            self._zip.close()
            raise
        self._sheet_parts = self._map_sheets()
        self._shared = self._read_shared_strings()
        pr = self._workbook.find(f"{Q}workbookPr")
        self._epoch = dt.datetime(1904, 1, 1) if pr is not None and pr.get("date1904") in ("1", "true") \
            else dt.datetime(1899, 12, 30)
        self._sheets: dict[str, RawSheet | etree._Element] = {}  # raw text when it can be, else a tree
        self._restyle = self._date_restyle()
        self._tail = cell_tail(self._epoch, mark_dates=self._restyle is not None)
        self._col_styles: dict[str, tuple[list, dict]] = {}
        self._dirty: set[str] = set()
        self._ready: dict[tuple, tuple] = {}  # area -> (edits when indexed, its index): see ready()
        self._edits = 0
        self._messages: list[str] = []

    def __repr__(self) -> str:
        return f"XlsxBook({str(self.path)!r})"

    # -- reading ----------------------------------------------------------------------
    def _part(self, name: str) -> bytes:
        """One part, uncompressed, within the size limit (declared size first, then as it inflates)."""
        info = self._parts[name]
        limit = self._limit
        if info.file_size > limit:
            raise WorkbookError(
                f"{self.path.name}: part {name} declares {_mib(info.file_size)} uncompressed, over the "
                f"{MAX_PART_ENV} limit of {_mib(limit)}; refused (raise the limit if the workbook is genuine)"
            )
        out = bytearray()
        try:
            with self._zip.open(info) as fh:
                while True:
                    chunk = fh.read(1 << 20)
                    if not chunk:
                        break
                    out += chunk
                    if len(out) > limit:
                        raise WorkbookError(
                            f"{self.path.name}: part {name} inflates to more than the {MAX_PART_ENV} limit "
                            f"of {_mib(limit)}; refused"
                        )
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
            raise WorkbookError(f"{self.path.name} is damaged: part {name} cannot be read ({exc})") from None
        return bytes(out)

    def _map_sheets(self) -> dict[str, str]:
        rels = etree.fromstring(self._part("xl/_rels/workbook.xml.rels"), _PARSER)
        targets = {}
        self._related = {}  # the workbook's parts by relationship type's last word: sharedStrings, styles
        for rel in rels.iter(f"{{{PKG_REL}}}Relationship"):
            target = rel.get("Target")
            part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
            targets[rel.get("Id")] = part
            self._related.setdefault((rel.get("Type") or "").rsplit("/", 1)[-1], part)
        out = {}
        for sheet in self._workbook.iter(f"{Q}sheet"):
            out[sheet.get("name")] = targets.get(sheet.get(f"{{{R_NS}}}id"))
        return out

    def _read_shared_strings(self) -> list[str]:
        part = self._related.get("sharedStrings", "xl/sharedStrings.xml")  # where the relationship says
        if part not in self._parts:
            return []
        root = etree.fromstring(self._part(part), _PARSER)
        return [_text(si) for si in root.iter(f"{Q}si")]

    def _date_restyle(self):
        """``restyle(style, with_time) -> style`` for a date written into a cell: a cell whose number
        format is General gets the book's own date style (the one with the same font, fill and border
        if there is one; with a time of day, one that shows it), as Excel formats a date written into
        such a cell; any other format is the analyst's and kept. None: the book has no date style
        (adding one would rewrite styles.xml), and dates are written as they were."""
        part = self._related.get("styles", "xl/styles.xml")
        if part not in self._parts:
            return None
        try:
            root = etree.fromstring(self._part(part), _PARSER)
        except etree.XMLSyntaxError:
            return None
        codes = {n.get("numFmtId"): n.get("formatCode") or "" for n in root.iter(f"{Q}numFmt")}
        xfs = root.find(f"{Q}cellXfs")
        looks, general, dates = [], set(), []
        for i, xf in enumerate(xfs.iterchildren(f"{Q}xf") if xfs is not None else ()):
            fmt = xf.get("numFmtId", "0")
            looks.append((xf.get("fontId"), xf.get("fillId"), xf.get("borderId")))
            if fmt == "0":
                general.add(str(i))
            kind = _date_kind(fmt, codes.get(fmt))
            if kind is not None:
                dates.append((str(i), kind))
        if not dates:
            return None
        memo: dict = {}

        def restyle(style, with_time: bool):
            style = style or "0"
            if style not in general:
                return style
            key = (style, with_time)
            if key not in memo:
                look = looks[int(style)]
                memo[key] = min(dates, key=lambda d: (d[1] != with_time, looks[int(d[0])] != look))[0]
            return memo[key]

        return restyle

    def sheet_names(self) -> list[str]:
        """The workbook's sheets, in its order (hidden ones included)."""
        return list(self._sheet_parts)

    def defined_names(self) -> dict[str, str]:
        names = {}
        sheets = [s.get("name") for s in self._workbook.iter(f"{Q}sheet")]
        for dn in self._workbook.iter(f"{Q}definedName"):
            name = dn.get("name")
            if dn.get("localSheetId") is not None:
                name = f"{sheets[int(dn.get('localSheetId'))]}!{name}"
            names[name] = (dn.text or "").strip()
        return names

    def _load(self, name: str) -> RawSheet | etree._Element:
        """The sheet as raw rows (:mod:`xl_addin.xlsx_rows`) when it is laid out plainly, else as a tree."""
        if name not in self._sheets:
            part = self._sheet_parts.get(name)
            if part is None:
                raise WorkbookError(f"{self.path.name} has no sheet named {name!r}")
            if part not in self._parts or "/worksheets/" not in part:
                raise WorkbookError(f"{name!r} is not a worksheet (a chart sheet?)")
            data = self._part(part)
            try:
                self._sheets[name] = RawSheet(data)
            except NotRaw:
                self._sheets[name] = _tree(data)
        return self._sheets[name]

    def _sheet(self, name: str) -> etree._Element:
        """The sheet as a tree (a raw sheet is parsed, with what was written to it so far)."""
        sheet = self._load(name)
        if isinstance(sheet, RawSheet):
            sheet = self._sheets[name] = _tree(sheet.to_bytes())
            self._ready = {k: v for k, v in self._ready.items() if k[0] != name}
        return sheet

    def _value(self, c: etree._Element):
        t = c.get("t", "n")
        if t == "inlineStr":
            return _text(c.find(f"{Q}is"))
        v = c.find(f"{Q}v")
        if v is None or v.text is None:
            f = c.find(f"{Q}f")
            if f is not None:  # a formula no program calculated (openpyxl and other writers save none)
                return Uncalculated(f"={f.text or ''}")
            return None
        if t == "s":
            try:
                return self._shared[int(v.text)]
            except (ValueError, IndexError):
                raise WorkbookError(f"{self.path.name} is damaged: cell {c.get('r')} refers to shared string "
                                    f"{v.text.strip()!r}, which the workbook does not hold") from None
        if t in ("str", "e"):
            return v.text
        if t == "b":
            return v.text == "1"
        if t == "d":  # an ISO 8601 date (strict-mode writers), read as the date it is
            try:
                return dt.datetime.fromisoformat(v.text.strip().replace("Z", "+00:00"))
            except ValueError:
                return v.text
        try:
            return float(v.text)
        except ValueError:
            return v.text  # not a number after all: the text, which the caller judges

    def read(self, sheet: str, top: int, left: int, bottom: int, right: int) -> list[list]:
        grid = [[None] * (right - left + 1) for _ in range(bottom - top + 1)]
        raw = self._load(sheet)
        if isinstance(raw, RawSheet):
            try:
                cells = raw.cells(top, left, bottom, right)
            except NotRaw:
                pass  # the tree reads it
            else:  # the area's cells, parsed together (in the sheet's namespaces), valued as below
                doc = f"{raw.root_tag}<sheetData><row>{''.join(c for _, _, c in cells)}</row></sheetData></worksheet>"
                parsed = etree.fromstring(doc.encode("utf-8"), _PARSER)[0][0]
                for (r, col, _), c in zip(cells, parsed):
                    grid[r - top][col - left] = self._value(c)
                return grid
        data = self._sheet(sheet).find(f"{Q}sheetData")
        for row in data.iter(f"{Q}row"):
            r = int(row.get("r"))
            if not top <= r <= bottom:
                continue
            for c in row.iterchildren(f"{Q}c"):
                cc = _col(c.get("r"))
                if cc > right:
                    break  # cells are in column order
                if cc >= left:
                    grid[r - top][cc - left] = self._value(c)
        return grid

    def progress(self, text: str) -> None:
        self._messages.append(text)

    def set_number_formats(self, sheet, top, bottom, formats) -> None:
        """Formats come from the template's cell styles (adding styles would rewrite styles.xml)."""

    # -- writing ------------------------------------------------------------------------
    def _check(self, sheet: str, root, top: int, left: int, bottom: int, right: int) -> None:
        for prot in root.iter(f"{Q}sheetProtection"):
            if prot.get("sheet") in ("1", "true"):
                raise WorkbookError(f"sheet {sheet!r} is protected: unprotect it to refresh")
        for mc in root.iter(f"{Q}mergeCell"):
            a, _, b = mc.get("ref").partition(":")
            r1, c1 = _addr(a)
            r2, c2 = _addr(b or a)
            if r1 <= bottom and r2 >= top and c1 <= right and c2 >= left:
                raise WorkbookError(f"merged cells {mc.get('ref')} on {sheet!r} overlap the area the refresh fills")

    def check_area(self, sheet: str, top: int, left: int, bottom: int, right: int) -> None:
        """Raise what :meth:`write` would refuse about the area whatever it writes (not a worksheet, a
        protected sheet, merged cells across it, a formula in it), so that a caller can refuse before
        asking the service. Only reads."""
        loaded = self._load(sheet)
        self._check(sheet, loaded.skeleton() if isinstance(loaded, RawSheet) else loaded, top, left, bottom, right)
        formula = None
        if isinstance(loaded, RawSheet):
            try:
                formula = loaded.formula(loaded.index(top, left, bottom, right,
                                                      self._column_styles(sheet, loaded.skeleton())))
                loaded = None
            except NotRaw:
                loaded = self._sheet(sheet)
        if loaded is not None:
            _, targets = self._index(sheet, top, left, bottom, right)
            formula = next((c.get("r") for inside in targets.values() for c in inside.values()
                            if len(c) and c.find(f"{Q}f") is not None), None)
        if formula is not None:
            raise WorkbookError(f"cell {formula} on {sheet!r} holds a formula inside the area the refresh fills; "
                                "move it out of that area")

    def _index(self, sheet: str, top: int, left: int, bottom: int, right: int):
        """The sheet's rows by number, and the cells of each row of the area inside it, by column."""
        data = self._sheet(sheet).find(f"{Q}sheetData")
        rows = {int(r.get("r")): r for r in data.iterchildren(f"{Q}row")}
        C = f"{Q}c"
        targets: dict[int, dict] = {}
        for r in range(top, bottom + 1):
            row = rows.get(r)
            if row is None:
                continue
            inside = {}
            for c in row.iterchildren(C):
                cc = _col(c.get("r"))
                if cc > right:
                    break  # cells are in column order
                if cc >= left:
                    inside[cc] = c
            targets[r] = inside
        return rows, targets

    def ready(self, sheet: str, top: int, left: int, bottom: int, right: int, written=None) -> None:
        """Index the area a coming :meth:`write` fills (the refresh calls it while the fetch is in
        flight). Only reads the sheet; a write in between makes it stale, and it is then redone.
        *written*, a flag per row of the area: will the write put anything in it (an empty row
        that stays empty is then not indexed; a wrong guess costs only the head start)."""
        edits = self._edits
        raw = self._load(sheet)
        if isinstance(raw, RawSheet):
            try:
                index = raw.index(top, left, bottom, right, self._column_styles(sheet, raw.skeleton()), written)
            except NotRaw:
                raw = self._sheet(sheet)  # a tree from here on
        if not isinstance(raw, RawSheet):
            index = self._index(sheet, top, left, bottom, right)
        self._ready[(sheet, top, left, bottom, right)] = (edits, index)

    def write(self, sheet: str, top: int, left: int, matrix: list[list]) -> None:
        if not matrix:
            return
        if isinstance(self._load(sheet), RawSheet):
            try:
                self._write_raw(sheet, top, left, matrix)
                return
            except NotRaw:
                pass  # nothing was written: the tree writes it
        root = self._sheet(sheet)
        bottom, right = top + len(matrix) - 1, left + len(matrix[0]) - 1
        self._check(sheet, root, top, left, bottom, right)
        data = root.find(f"{Q}sheetData")
        key = (sheet, top, left, bottom, right)
        ready = self._ready.pop(key, None)
        if ready is not None and ready[0] == self._edits and not isinstance(ready[1], list):
            rows, targets = ready[1]
        else:
            rows, targets = self._index(sheet, top, left, bottom, right)
        self._ready.clear()
        self._edits += 1
        F = f"{Q}f"
        # refuse before changing anything: formulas in the target cells are someone's work
        for inside in targets.values():
            for c in inside.values():
                if len(c) and c.find(F) is not None:
                    raise WorkbookError(
                        f"cell {c.get('r')} on {sheet!r} holds a formula inside the area the refresh fills; "
                        "move it out of the table"
                    )
        col_style = self._column_styles(sheet, root)
        above: dict[int, str | None] = {}  # the nearest style above, per column, within the table
        ordered_rows = _Ordered(data, rows)
        set_value, sub = self._set, etree.SubElement
        for i, values in enumerate(matrix):
            r = top + i
            row = rows.get(r)
            if row is None:
                if all(v is None for v in values):
                    continue
                row = ordered_rows.insert(r, etree.Element(f"{Q}row", r=str(r)))
            row.attrib.pop("spans", None)
            inside = targets.get(r)
            if inside is None:
                inside = targets[r] = {}
            cells = None  # the row's cells by column, built only when a cell must be created
            row_style = row.get("s") if row.get("customFormat") in ("1", "true") else None
            for j, value in enumerate(values):
                col = left + j
                cell = inside.get(col)
                if cell is None:
                    if value is None:
                        continue
                    if cells is None:
                        cells = _Ordered(row, {_col(c.get("r")): c for c in row.iterchildren(f"{Q}c")})
                    cell = etree.Element(f"{Q}c", r=f"{col_letter(col)}{r}")
                    style = row_style or above.get(col) or col_style(col)
                    if style:
                        cell.set("s", style)
                    cells.insert(col, cell)
                    inside[col] = cell
                else:
                    above[col] = cell.get("s")
                    attrib = cell.attrib
                    if not len(cell) and "t" not in attrib and "vm" not in attrib and "cm" not in attrib:
                        # an empty cell: the common cases inline
                        if value is None:
                            continue
                        if type(value) is float and math.isfinite(value):
                            sub(cell, _V).text = repr(value)
                            continue
                set_value(cell, value)
        self._grow_dimension(root, bottom, right)
        self._dirty.add(sheet)

    def _write_raw(self, sheet: str, top: int, left: int, matrix: list[list]) -> None:
        """:meth:`write` on raw rows: the same checks and cells, only the rows written are rendered."""
        raw = self._load(sheet)
        bottom, right = top + len(matrix) - 1, left + len(matrix[0]) - 1
        skeleton = raw.skeleton()
        self._check(sheet, skeleton, top, left, bottom, right)
        ready = self._ready.pop((sheet, top, left, bottom, right), None)
        if ready is not None and ready[0] == self._edits and isinstance(ready[1], list):
            index = ready[1]
        else:
            index = raw.index(top, left, bottom, right, self._column_styles(sheet, skeleton))
        formula = raw.formula(index)  # refuse before changing anything: formulas are someone's work
        if formula is not None:
            raise WorkbookError(f"cell {formula} on {sheet!r} holds a formula inside the area the refresh fills; "
                                "move it out of the table")
        self._ready.clear()
        self._edits += 1
        if not raw.write(index, top, left, matrix, self._tail, self._restyle):
            raw.write(raw.index(top, left, bottom, right, self._column_styles(sheet, skeleton)), top, left,
                      matrix, self._tail, self._restyle)
        raw.grow(bottom, right)
        self._dirty.add(sheet)

    def _column_styles(self, sheet: str, root):
        """col -> the style of its ``<col>`` entry; ``<cols>`` is read once per sheet, not per cell."""
        if sheet not in self._col_styles:
            cols = root.find(f"{Q}cols")
            spans = [(int(c.get("min")), int(c.get("max")), c.get("style"))
                     for c in (cols.findall(f"{Q}col") if cols is not None else ()) if c.get("style")]
            self._col_styles[sheet] = (spans, {})
        spans, memo = self._col_styles[sheet]

        def style(col: int) -> str | None:
            if col not in memo:
                memo[col] = next((s for lo, hi, s in spans if lo <= col <= hi), None)
            return memo[col]

        return style

    def _set(self, cell, value) -> None:
        if len(cell):
            for child in list(cell):
                cell.remove(child)
        attrib = cell.attrib
        if "t" in attrib:
            del attrib["t"]
        for meta in _METADATA:  # the old value's rich value / array: not the new value's
            if meta in attrib:
                del attrib[meta]
        if value is None:
            return
        if type(value) is float:  # the common case first
            if math.isfinite(value):
                etree.SubElement(cell, _V).text = repr(value)
            return
        if isinstance(value, bool):
            cell.set("t", "b")
            etree.SubElement(cell, f"{Q}v").text = "1" if value else "0"
        elif isinstance(value, (dt.date, dt.datetime)):
            value = as_excel_datetime(value)
            serial = (value - self._epoch).total_seconds() / 86400
            if self._restyle is not None:
                style = self._restyle(cell.get("s"), bool(serial % 1))
                if style and style != (cell.get("s") or "0"):
                    cell.set("s", style)
            etree.SubElement(cell, f"{Q}v").text = repr(round(serial, 8)) if serial % 1 else str(int(serial))
        elif isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                return
            etree.SubElement(cell, f"{Q}v").text = repr(value) if isinstance(value, float) else str(value)
        else:
            cell.set("t", "inlineStr")
            is_ = etree.SubElement(cell, f"{Q}is")
            t = etree.SubElement(is_, f"{Q}t")
            text = str(value)
            if text != text.strip():
                t.set("{http://www.w3.org/XML/1998/namespace}space", "preserve")
            t.text = text

    @staticmethod
    def _grow_dimension(root, bottom: int, right: int) -> None:
        dim = root.find(f"{Q}dimension")
        if dim is None:
            return
        dim.set("ref", grown_ref(dim.get("ref"), bottom, right))

    def save(self, out=None) -> Path:
        """Write atomically to *out* (default: in place); the book is closed afterwards.

        A symlink is followed (its target is replaced, the link stays); a read-only file, a
        missing folder or a folder given as the file is refused before anything is written.
        """
        target = Path(out) if out is not None else self.path
        real = writable_target(target)
        replaced = {self._sheet_parts[name]: sheet.to_bytes() if isinstance(sheet, RawSheet)
                    else etree.tostring(sheet, xml_declaration=True, encoding="UTF-8", standalone=True)
                    for name, sheet in ((n, self._sheets[n]) for n in self._dirty)}
        calc = self._workbook.find(f"{Q}calcPr")
        if self._dirty and (calc is None or calc.get("fullCalcOnLoad") not in ("1", "true")):
            if calc is None:
                calc = etree.SubElement(self._workbook, f"{Q}calcPr")
                _move_before_ext(self._workbook, calc)
            calc.set("fullCalcOnLoad", "1")
            replaced["xl/workbook.xml"] = etree.tostring(self._workbook, xml_declaration=True,
                                                         encoding="UTF-8", standalone=True)
        clean_stale_temps(real)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".~{real.stem}.", suffix=real.suffix, dir=real.parent)
        except OSError as exc:
            raise WorkbookError(f"cannot write in the folder {real.parent}: {exc.strerror}") from None
        _hold_lock(fd)  # a running save: the next run's clean-up leaves this file alone
        try:
            with zipfile.ZipFile(tmp, "w") as zout:
                for info in self._zip.infolist():
                    data = replaced.get(info.filename)
                    if data is None and _copy_raw(self._zip, zout, info):
                        continue  # unchanged: its compressed bytes as they were, not inflated and deflated again
                    if data is not None:  # the parts we changed: deflated fast (a sheet of 1.5 MB in ~3 ms)
                        zout.writestr(info, data, compresslevel=1)
                    else:
                        zout.writestr(info, self._part(info.filename))
            _verify(tmp, replaced)
            _verify_copies(tmp, replaced, self._zip)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            if real.exists():
                st = real.stat()
                os.chmod(tmp, st.st_mode & 0o777)
                if hasattr(os, "chown") and st.st_uid != os.stat(tmp).st_uid:
                    try:  # root refreshing someone's file leaves it theirs
                        os.chown(tmp, st.st_uid, st.st_gid)
                    except OSError:
                        pass
            else:
                os.chmod(tmp, 0o666 & ~_umask())  # as any program would create it (mkstemp gives 0600)
            os.close(fd)
            fd = -1
            self._zip.close()  # Windows cannot replace a file that is still open
            os.replace(tmp, real)
        except BaseException as exc:
            if os.path.exists(tmp):
                os.unlink(tmp)
            if isinstance(exc, OSError):  # a full disk, a quota, a folder gone: said for a user
                why = exc.strerror or str(exc)
                raise WorkbookError(f"cannot write {target}: {why} (nothing was changed)") from None
            raise
        finally:
            if fd >= 0:
                os.close(fd)
            self._zip.close()
        return target

    def close(self) -> None:
        self._zip.close()


#: built-in number formats that show a date or a time (ECMA-376 18.8.30, with the East Asian ones)
_BUILTIN_DATES = {**{str(i): False for i in (14, 15, 16, 17, 27, 28, 29, 30, 31, 34, 35, 36, 50, 51, 52, 53, 54, 57, 58)},
                  **{str(i): True for i in (18, 19, 20, 21, 22, 32, 33, 45, 46, 47, 55, 56)}}
_QUOTED = re.compile(r'"[^"]*"|\[[^\]]*\]|\\.|_.|\*.')


def _date_kind(fmt_id: str, code: str | None):
    """None: not a date format; else whether it shows a time of day."""
    if code is None:
        return _BUILTIN_DATES.get(fmt_id)
    bare = _QUOTED.sub("", code).lower()
    if "general" in bare or not re.search(r"[ymdhs]", bare):
        return None
    return bool(re.search(r"[hs]", bare))


def _text(el) -> str:
    """The text of a string item (``<si>``, ``<is>``): its runs, without phonetic guides (``rPh``)."""
    if el is None:
        return ""
    return "".join(t.text or "" for t in el.iter(f"{Q}t") if t.getparent().tag != f"{Q}rPh")


def _tree(data: bytes):
    """A sheet part as a tree, every row and cell with its ``r``: OOXML lets a writer leave it out (a
    row is then the one after the row before it, a cell the column after the cell before it)."""
    root = etree.fromstring(data, _PARSER)
    data = root.find(f"{Q}sheetData")
    if data is None:
        return root
    r = 0
    for row in data.iterchildren(f"{Q}row"):
        number = row.get("r")
        r = int(number) if number is not None else r + 1
        if number is None:
            row.set("r", str(r))
        col = 0
        for c in row.iterchildren(f"{Q}c"):
            ref = c.get("r")
            if ref is None:
                col += 1
                c.set("r", f"{col_letter(col)}{r}")
            else:
                col = _col(ref)
    return root


class _Ordered:
    """*parent*'s children by number (rows by row number, cells by column), kept in order.

    Inserting is a binary search, and appending after the last (the common case: a table
    that grows downwards) is O(1), so creating n rows or cells costs O(n log n), not O(n^2).
    """

    def __init__(self, parent, index: dict):
        self.parent = parent
        self.index = index
        self.keys = sorted(index)

    def get(self, key: int):
        return self.index.get(key)

    def insert(self, key: int, element):
        i = bisect.bisect_right(self.keys, key)
        if i < len(self.keys):
            self.index[self.keys[i]].addprevious(element)
        else:
            last = self.parent[-1] if len(self.parent) else None
            if last is not None and last.tag == f"{Q}extLst":
                last.addprevious(element)
            else:
                self.parent.append(element)
        self.keys.insert(i, key)
        self.index[key] = element
        return element


def writable_target(target: Path) -> Path:
    """The file that writing to *target* replaces (a symlink's target), or why it must not be written."""
    target = Path(target)
    real = Path(os.path.realpath(target))
    if real.is_dir():
        raise WorkbookError(f"{target} is a folder: name the workbook file to write")
    if not real.parent.is_dir():
        raise WorkbookError(f"the folder {target.parent} does not exist: create it first (nothing was written)")
    if real.exists():
        mode = real.stat().st_mode
        if not stat.S_ISREG(mode):
            raise WorkbookError(f"{target} is not a regular file")
        if not mode & 0o222 or not os.access(real, os.W_OK):
            raise WorkbookError(f"{target} is read-only: nothing was written "
                                "(make it writable, or write a copy with another name)")
    return real


def temp_pattern(target: Path) -> re.Pattern:
    """Our temporary files for *target*: ``.~{stem}.{8 characters}{suffix}`` (mkstemp's names)."""
    return re.compile(rf"^\.~{re.escape(target.stem)}\.{_TEMP_CHARS}{re.escape(target.suffix)}$")


def clean_stale_temps(target: Path, now: float | None = None) -> list[Path]:
    """Remove what a killed save of *target* left: our temp names only, unlocked, older than a minute."""
    pattern = temp_pattern(target)
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.match(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if now - entry.stat(follow_symlinks=False).st_mtime < STALE_TEMP_SECONDS or _in_use(entry.path):
                continue
            os.unlink(entry.path)  # on Windows, a file still open elsewhere cannot be removed: skipped
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _hold_lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: an open file cannot be deleted, which protects it as well
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pass


def _in_use(path: str) -> bool:
    try:
        import fcntl
    except ImportError:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would, briefly, for every thread)
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _move_before_ext(workbook, calc) -> None:
    """calcPr goes before the elements that follow it in the schema's sequence."""
    for tag in ("oleSize", "customWorkbookViews", "pivotCaches", "smartTagPr", "smartTagTypes",
                "webPublishing", "fileRecoveryPr", "webPublishObjects", "extLst"):
        el = workbook.find(f"{Q}{tag}")
        if el is not None:
            el.addprevious(calc)
            return


def _copy_raw(zin: zipfile.ZipFile, zout: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    """Copy one member's compressed bytes from *zin* to *zout* as they are (False: not possible,
    copy it the slow way). zipfile has no public call for this; the local header is rebuilt from
    the central directory's entry (CRC and sizes in it, no data descriptor)."""
    if info.flag_bits & 0x1 or info.file_size > zipfile.ZIP64_LIMIT or info.compress_size > zipfile.ZIP64_LIMIT:
        return False  # encrypted, or zip64: the ordinary path
    fp = zin.fp
    if fp is None:
        return False
    fp.seek(info.header_offset)
    header = fp.read(zipfile.sizeFileHeader)
    if len(header) != zipfile.sizeFileHeader:
        return False
    fields = struct.unpack(zipfile.structFileHeader, header)
    if fields[zipfile._FH_SIGNATURE] != zipfile.stringFileHeader:
        return False
    fp.seek(info.header_offset + zipfile.sizeFileHeader + fields[zipfile._FH_FILENAME_LENGTH]
            + fields[zipfile._FH_EXTRA_FIELD_LENGTH])
    raw = fp.read(info.compress_size)
    if len(raw) != info.compress_size:
        return False
    out = copy.copy(info)
    out.flag_bits &= ~0x08  # sizes and CRC go in the local header
    out.extra = b""
    out.header_offset = zout.fp.tell()
    zout.fp.write(out.FileHeader(zip64=False))
    zout.fp.write(raw)
    zout.start_dir = zout.fp.tell()
    zout.filelist.append(out)
    zout.NameToInfo[out.filename] = out
    zout._didModify = True
    return True


class _WellFormed:
    """A parser target that keeps nothing: libxml2 checks the whole part, no tree is built."""

    def close(self):
        return None


def _verify(path: str, replaced: dict) -> None:
    """What we wrote must read back, or the original is not replaced: the zip's directory opens,
    every part we changed inflates (CRC checked) to exactly the bytes we meant, and parses as
    XML (libxml2 reads all of it; no tree is kept)."""
    try:
        with zipfile.ZipFile(path) as z:
            for part, data in replaced.items():
                if z.read(part) != data:
                    raise ValueError(f"{part} does not hold what was written")
                etree.fromstring(data, etree.XMLParser(target=_WellFormed(), resolve_entities=False, huge_tree=True))
    except Exception as exc:
        raise WorkbookError(f"the refreshed workbook did not read back ({type(exc).__name__}: {exc}); "
                            "the original was left as it was") from None


def _verify_copies(path: str, replaced: dict, source: zipfile.ZipFile) -> None:
    """Every part we did not change is, compressed, byte for byte the original's, in the same order."""
    try:
        with zipfile.ZipFile(path) as z:
            if [i.filename for i in z.infolist()] != [i.filename for i in source.infolist()]:
                raise ValueError("the parts are not the original's")
            for info in z.infolist():
                if info.filename in replaced:
                    continue
                orig = source.getinfo(info.filename)
                if (info.CRC, info.file_size) != (orig.CRC, orig.file_size):
                    raise ValueError(f"{info.filename} is not the original's")
                if info.compress_size == orig.compress_size and info.compress_type == orig.compress_type:
                    if _raw(z, info) != _raw(source, orig):
                        raise ValueError(f"{info.filename} is not the original's")
                else:  # copied the slow way (inflated, deflated again): its CRC is checked as it inflates
                    with z.open(info) as fh:
                        while fh.read(1 << 20):
                            pass
    except Exception as exc:
        raise WorkbookError(f"the refreshed workbook did not read back ({type(exc).__name__}: {exc}); "
                            "the original was left as it was") from None


def _raw(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's compressed bytes."""
    z.fp.seek(info.header_offset)
    fields = struct.unpack(zipfile.structFileHeader, z.fp.read(zipfile.sizeFileHeader))
    z.fp.seek(info.header_offset + zipfile.sizeFileHeader + fields[zipfile._FH_FILENAME_LENGTH]
              + fields[zipfile._FH_EXTRA_FIELD_LENGTH])
    return z.fp.read(info.compress_size)
