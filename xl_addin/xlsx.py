"""Headless refresh of an .xlsx file that loses nothing.

General-purpose writers (openpyxl) re-create every part of a workbook from what they
understand, and drop what they do not (shapes, form controls, extensions, pivot
caches). This writer changes only what the refresh owns: the cells of one
worksheet part, edited in place with lxml (namespace prefixes, unknown elements and
attributes kept), plus ``fullCalcOnLoad`` in workbook.xml so that formulas
depending on the new values are recalculated when the file is opened. Every other
part of the zip is copied as it was. Writes are atomic (a temporary file, then a
rename); any doubt means nothing is written and the reason is given.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import posixpath
import re
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

from lxml import etree

from .exceptions import WorkbookError
from .layout import col_letter, col_number

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
Q = f"{{{NS}}}"
_ADDR = re.compile(r"^([A-Z]{1,3})(\d+)$")
_PARSER = etree.XMLParser(remove_blank_text=False, resolve_entities=False, huge_tree=True)


@lru_cache(maxsize=65536)
def _addr(ref: str) -> tuple[int, int]:
    m = _ADDR.match(ref)
    return int(m.group(2)), col_number(m.group(1))


class XlsxBook:
    """The refresh's Book adapter over an .xlsx file on disk."""

    def __init__(self, path):
        self.path = Path(path)
        if self.path.suffix.lower() in (".xls", ".xlsb"):
            raise WorkbookError(f"{self.path.name}: {self.path.suffix} files cannot be refreshed; save it as .xlsx")
        try:
            self._zip = zipfile.ZipFile(self.path)
            self._parts = {i.filename: i for i in self._zip.infolist()}
            self._workbook = etree.fromstring(self._zip.read("xl/workbook.xml"), _PARSER)
        except FileNotFoundError:
            raise WorkbookError(f"no such file: {self.path}") from None
        except (zipfile.BadZipFile, KeyError, etree.XMLSyntaxError):
            raise WorkbookError(f"{self.path.name} is not an Excel .xlsx workbook") from None
        self._sheet_parts = self._map_sheets()
        self._shared = self._read_shared_strings()
        pr = self._workbook.find(f"{Q}workbookPr")
        self._epoch = dt.datetime(1904, 1, 1) if pr is not None and pr.get("date1904") in ("1", "true") \
            else dt.datetime(1899, 12, 30)
        self._sheets: dict[str, etree._Element] = {}
        self._dirty: set[str] = set()
        self._messages: list[str] = []

    def __repr__(self) -> str:
        return f"XlsxBook({str(self.path)!r})"

    # -- reading ----------------------------------------------------------------------
    def _map_sheets(self) -> dict[str, str]:
        rels = etree.fromstring(self._zip.read("xl/_rels/workbook.xml.rels"), _PARSER)
        targets = {}
        for rel in rels.iter(f"{{{PKG_REL}}}Relationship"):
            target = rel.get("Target")
            part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
            targets[rel.get("Id")] = part
        out = {}
        for sheet in self._workbook.iter(f"{Q}sheet"):
            out[sheet.get("name")] = targets.get(sheet.get(f"{{{R_NS}}}id"))
        return out

    def _read_shared_strings(self) -> list[str]:
        if "xl/sharedStrings.xml" not in self._parts:
            return []
        root = etree.fromstring(self._zip.read("xl/sharedStrings.xml"), _PARSER)
        return ["".join(t.text or "" for t in si.iter(f"{Q}t")) for si in root.iter(f"{Q}si")]

    def defined_names(self) -> dict[str, str]:
        names = {}
        sheets = [s.get("name") for s in self._workbook.iter(f"{Q}sheet")]
        for dn in self._workbook.iter(f"{Q}definedName"):
            name = dn.get("name")
            if dn.get("localSheetId") is not None:
                name = f"{sheets[int(dn.get('localSheetId'))]}!{name}"
            names[name] = (dn.text or "").strip()
        return names

    def _sheet(self, name: str) -> etree._Element:
        if name not in self._sheets:
            part = self._sheet_parts.get(name)
            if part is None:
                raise WorkbookError(f"{self.path.name} has no sheet named {name!r}")
            if part not in self._parts or "/worksheets/" not in part:
                raise WorkbookError(f"{name!r} is not a worksheet (a chart sheet?)")
            self._sheets[name] = etree.fromstring(self._zip.read(part), _PARSER)
        return self._sheets[name]

    def _value(self, c: etree._Element):
        t = c.get("t", "n")
        if t == "inlineStr":
            return "".join(x.text or "" for x in c.iter(f"{Q}t"))
        v = c.find(f"{Q}v")
        if v is None or v.text is None:
            return None
        if t == "s":
            return self._shared[int(v.text)]
        if t in ("str", "e"):
            return v.text
        if t == "b":
            return v.text == "1"
        number = float(v.text)
        return number

    def read(self, sheet: str, top: int, left: int, bottom: int, right: int) -> list[list]:
        data = self._sheet(sheet).find(f"{Q}sheetData")
        grid = [[None] * (right - left + 1) for _ in range(bottom - top + 1)]
        for row in data.iter(f"{Q}row"):
            r = int(row.get("r"))
            if not top <= r <= bottom:
                continue
            for c in row.iter(f"{Q}c"):
                rr, cc = _addr(c.get("r"))
                if left <= cc <= right:
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

    def write(self, sheet: str, top: int, left: int, matrix: list[list]) -> None:
        if not matrix:
            return
        root = self._sheet(sheet)
        bottom, right = top + len(matrix) - 1, left + len(matrix[0]) - 1
        self._check(sheet, root, top, left, bottom, right)
        data = root.find(f"{Q}sheetData")
        rows = {int(r.get("r")): r for r in data.findall(f"{Q}row")}
        # refuse before changing anything: formulas in the target cells are someone's work
        for i in range(len(matrix)):
            row = rows.get(top + i)
            if row is None:
                continue
            for c in row.findall(f"{Q}c"):
                rr, cc = _addr(c.get("r"))
                if left <= cc <= right and c.find(f"{Q}f") is not None:
                    raise WorkbookError(
                        f"cell {c.get('r')} on {sheet!r} holds a formula inside the area the refresh fills; "
                        "move it out of the table"
                    )
        for i, values in enumerate(matrix):
            r = top + i
            row = rows.get(r)
            if row is None:
                if all(v is None for v in values):
                    continue
                row = self._new_row(data, rows, r)
            row.attrib.pop("spans", None)
            cells = {_addr(c.get("r"))[1]: c for c in row.findall(f"{Q}c")}
            for j, value in enumerate(values):
                col = left + j
                cell = cells.get(col)
                if cell is None:
                    if value is None:
                        continue
                    cell = self._new_cell(row, cells, r, col, root)
                self._set(cell, value)
        self._grow_dimension(root, bottom, right)
        self._dirty.add(sheet)

    @staticmethod
    def _new_row(data, rows: dict, r: int):
        return _insert_sorted(data, rows, r, etree.Element(f"{Q}row", r=str(r)))

    def _new_cell(self, row, cells: dict, r: int, col: int, root):
        cell = etree.Element(f"{Q}c", r=f"{col_letter(col)}{r}")
        style = row.get("s") if row.get("customFormat") in ("1", "true") else self._column_style(root, col)
        if style:
            cell.set("s", style)
        return _insert_sorted(row, cells, col, cell)

    @staticmethod
    def _column_style(root, col: int) -> str | None:
        for c in root.iter(f"{Q}col"):
            if int(c.get("min")) <= col <= int(c.get("max")) and c.get("style"):
                return c.get("style")
        return None

    def _set(self, cell, value) -> None:
        for child in list(cell):
            cell.remove(child)
        cell.attrib.pop("t", None)
        if value is None:
            return
        if isinstance(value, bool):
            cell.set("t", "b")
            etree.SubElement(cell, f"{Q}v").text = "1" if value else "0"
        elif isinstance(value, (dt.date, dt.datetime)):
            if not isinstance(value, dt.datetime):
                value = dt.datetime(value.year, value.month, value.day)
            serial = (value - self._epoch).total_seconds() / 86400
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
        a, _, b = dim.get("ref").partition(":")
        r1, c1 = _addr(a)
        r2, c2 = _addr(b or a)
        dim.set("ref", f"{col_letter(c1)}{r1}:{col_letter(max(c2, right))}{max(r2, bottom)}")

    def save(self, out=None) -> Path:
        """Write atomically to *out* (default: in place); the book is closed afterwards."""
        target = Path(out) if out is not None else self.path
        replaced = {self._sheet_parts[name]: etree.tostring(self._sheets[name], xml_declaration=True,
                                                            encoding="UTF-8", standalone=True)
                    for name in self._dirty}
        calc = self._workbook.find(f"{Q}calcPr")
        if self._dirty and (calc is None or calc.get("fullCalcOnLoad") not in ("1", "true")):
            if calc is None:
                calc = etree.SubElement(self._workbook, f"{Q}calcPr")
                _move_before_ext(self._workbook, calc)
            calc.set("fullCalcOnLoad", "1")
            replaced["xl/workbook.xml"] = etree.tostring(self._workbook, xml_declaration=True,
                                                         encoding="UTF-8", standalone=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".~{target.stem}.", suffix=target.suffix, dir=target.parent)
        os.close(fd)
        try:
            with zipfile.ZipFile(tmp, "w") as zout:
                for info in self._zip.infolist():
                    data = replaced.get(info.filename)
                    zout.writestr(info, data if data is not None else self._zip.read(info.filename))
            _verify(tmp, replaced)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            if target.exists():
                os.chmod(tmp, target.stat().st_mode & 0o777)
            self._zip.close()  # Windows cannot replace a file that is still open
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        finally:
            self._zip.close()
        return target

    def close(self) -> None:
        self._zip.close()


def _insert_sorted(parent, index: dict, key: int, element):
    """Put *element* among *parent*'s children in key order (rows by number, cells by column)."""
    later = [k for k in index if k > key]
    if later:
        index[min(later)].addprevious(element)
    else:
        parent.append(element)
    index[key] = element
    return element


def _move_before_ext(workbook, calc) -> None:
    """calcPr goes before the elements that follow it in the schema's sequence."""
    for tag in ("oleSize", "customWorkbookViews", "pivotCaches", "smartTagPr", "smartTagTypes",
                "webPublishing", "fileRecoveryPr", "webPublishObjects", "extLst"):
        el = workbook.find(f"{Q}{tag}")
        if el is not None:
            el.addprevious(calc)
            return


def _verify(path: str, replaced: dict) -> None:
    """What we wrote must parse, and a second reader (openpyxl) must open a workbook
    it knows, or the original is not replaced."""
    import warnings

    import openpyxl

    try:
        with zipfile.ZipFile(path) as z:
            for part in replaced:
                etree.fromstring(z.read(part), _PARSER)
        if Path(path).suffix.lower() in (".xlsx", ".xlsm", ".xltx", ".xltm"):
            with warnings.catch_warnings(), open(path, "rb") as fh:
                warnings.simplefilter("ignore")
                wb = openpyxl.load_workbook(fh, read_only=True)
                for ws in wb.worksheets:
                    for _ in ws.iter_rows(max_row=5):
                        pass
                wb.close()
    except Exception as exc:
        raise WorkbookError(f"the refreshed workbook did not read back ({type(exc).__name__}: {exc}); "
                            "the original was left as it was") from None
