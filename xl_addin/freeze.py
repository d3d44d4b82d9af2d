"""Freeze a workbook for someone without the add-in: every LX_MMAH formula becomes its value.

Excel recalculates on open, and a recipient without xl_addin sees ``#NAME?`` in every
cell that calls ``LX_MMAH``. Freezing replaces each formula that calls an ``LX_MMAH*``
function with the value the file already stores for it (the last result Excel or a
refresh computed); every other formula stays live. A visible sheet ("Frozen 已冻结")
and the document's custom properties record when the values were frozen and the data
date, so the recipient knows how old the numbers are.

Like the headless refresh, this edits the zip's XML parts in place with lxml and copies
every other part as it was (charts, shapes, VBA). It never changes the original unless
asked (``in_place``); the output is written to a temporary file and renamed.
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from .exceptions import WorkbookError

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
CT_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
CUSTOM_NS = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
VT_NS = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"
REL_SHEET = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"
REL_CUSTOM = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties"
REL_CALCCHAIN = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/calcChain"
FMTID = "{D5CDD505-2E9C-101B-9397-08002B2CF9AE}"
Q = f"{{{NS}}}"
STAMP_SHEET = "Frozen 已冻结"
OURS = re.compile(r"LX_MMAH", re.IGNORECASE)
_PARSER = etree.XMLParser(remove_blank_text=False, resolve_entities=False, huge_tree=True)


@dataclass
class FreezeResult:
    path: Path
    frozen: int  # formulas replaced by their values
    without_value: int  # of those, how many had no stored value (left empty)
    data_date: str | None
    frozen_at: dt.datetime

    def line(self) -> str:
        note = (f"; {self.without_value} had no stored value (never calculated) and are now empty"
                if self.without_value else "")
        date = self.data_date or "unknown (no LX_STATUS data date in the workbook)"
        return (f"Froze {self.frozen} LX_MMAH formula(s) into values in {self.path} "
                f"(data date {date}, frozen {self.frozen_at:%Y-%m-%d %H:%M}){note}")


def is_ours(formula: str | None) -> bool:
    return bool(formula) and bool(OURS.search(formula))


def freeze_sheet(root: etree._Element) -> tuple[int, int]:
    """Replace every LX_MMAH formula of one worksheet's XML by its stored value.
    Returns (formulas frozen, of which had no value)."""
    cells = list(root.iter(f"{Q}c"))
    shared = {f.get("si") for c in cells for f in [c.find(f"{Q}f")]
              if f is not None and f.get("t") == "shared" and f.get("ref") and is_ours(f.text)}
    frozen = empty = 0
    for c in cells:
        f = c.find(f"{Q}f")
        if f is not None and (is_ours(f.text) or (f.get("t") == "shared" and f.get("si") in shared)):
            c.remove(f)
            c.attrib.pop("cm", None)  # dynamic-array metadata belongs to the formula
            frozen += 1
            if c.find(f"{Q}v") is None:
                empty += 1
                c.attrib.pop("t", None)
        if f is None or c.find(f"{Q}f") is None:
            _plain_string(c)
    return frozen, empty


def _plain_string(c: etree._Element) -> None:
    """A formula-string cell (t="str") without a formula becomes an inline string."""
    if c.get("t") != "str" or c.find(f"{Q}f") is not None:
        return
    v = c.find(f"{Q}v")
    text = v.text if v is not None else ""
    if v is not None:
        c.remove(v)
    c.set("t", "inlineStr")
    is_ = etree.SubElement(c, f"{Q}is")
    t = etree.SubElement(is_, f"{Q}t")
    t.text = text or ""
    if text != text.strip():
        t.set("{http://www.w3.org/XML/1998/namespace}space", "preserve")


def _stamp_sheet(rows: list[tuple[str, str]]) -> bytes:
    root = etree.Element(f"{Q}worksheet", nsmap={None: NS})
    cols = etree.SubElement(root, f"{Q}cols")
    etree.SubElement(cols, f"{Q}col", min="1", max="1", width="30", customWidth="1")
    etree.SubElement(cols, f"{Q}col", min="2", max="2", width="60", customWidth="1")
    data = etree.SubElement(root, f"{Q}sheetData")
    for i, (label, value) in enumerate(rows, start=1):
        row = etree.SubElement(data, f"{Q}row", r=str(i))
        for col, text in (("A", label), ("B", value)):
            c = etree.SubElement(row, f"{Q}c", r=f"{col}{i}", t="inlineStr")
            etree.SubElement(etree.SubElement(c, f"{Q}is"), f"{Q}t").text = text
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def _custom_props(existing: bytes | None, props: dict[str, str]) -> bytes:
    if existing:
        root = etree.fromstring(existing, _PARSER)
    else:
        root = etree.Element(f"{{{CUSTOM_NS}}}Properties", nsmap={None: CUSTOM_NS, "vt": VT_NS})
    current = {p.get("name"): p for p in root.findall(f"{{{CUSTOM_NS}}}property")}
    pid = max([int(p.get("pid", "1")) for p in current.values()] + [1])
    for name, value in props.items():
        p = current.get(name)
        if p is None:
            pid += 1
            p = etree.SubElement(root, f"{{{CUSTOM_NS}}}property", fmtid=FMTID, pid=str(pid), name=name)
        for child in list(p):
            p.remove(child)
        etree.SubElement(p, f"{{{VT_NS}}}lpwstr").text = value
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def _data_date(path: Path) -> str | None:
    """The data date the refresh wrote into LX_STATUS (second row, value column), if any."""
    from .layout import STATUS, Ref
    from .xlsx import XlsxBook

    try:
        book = XlsxBook(path)
    except WorkbookError:
        return None
    try:
        names = {k.split("!")[-1].upper(): v for k, v in book.defined_names().items()}
        if STATUS not in names:
            return None
        ref = Ref.parse(names[STATUS])
        value = book.read(ref.sheet, ref.top + 1, ref.right, ref.top + 1, ref.right)[0][0]
    except Exception:  # a stamp is information: never fail the freeze over it
        return None
    finally:
        book.close()
    if isinstance(value, (int, float)) and value > 0:
        return (dt.datetime(1899, 12, 30) + dt.timedelta(days=value)).date().isoformat()
    return str(value).strip() or None if value is not None else None


def freeze_file(path, out=None, in_place: bool = False, service=None, now: dt.datetime | None = None) -> FreezeResult:
    """Freeze *path* into *out* (default ``BOOK-frozen.xlsx`` beside it; *in_place* to
    overwrite). With *service*, the book's table is refreshed first (headless refresh:
    the LX_MMAH formulas keep the values Excel last stored)."""
    src = Path(path)
    if not src.is_file():
        raise WorkbookError(f"no such workbook: {src}" if not src.exists() else f"{src} is not a file")
    if in_place and out:
        raise WorkbookError("give either -o OUT or --in-place, not both")
    target = src if in_place else Path(out) if out else src.with_name(f"{src.stem}-frozen{src.suffix}")
    if not in_place and target.resolve() == src.resolve():
        raise WorkbookError(f"{target} is the original: use --in-place to overwrite it")
    if not target.parent.is_dir():
        raise WorkbookError(f"no such folder: {target.parent}")
    if in_place and not os.access(src, os.W_OK):
        raise WorkbookError(f"{src} is read-only: nothing was changed")
    now = now or dt.datetime.now().replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="lx-freeze-") as tmp:
        work = src
        if service is not None:
            from .refresh import refresh_file

            work = Path(tmp) / src.name
            refresh_file(src, work, service=service)
        data_date = _data_date(work)
        fd, tmp_out = tempfile.mkstemp(prefix=f".~{target.stem}.", suffix=target.suffix, dir=target.parent)
        os.close(fd)
        try:
            frozen, empty = _rewrite(work, Path(tmp_out), data_date, now, src.name)
            os.chmod(tmp_out, src.stat().st_mode & 0o777)  # the copy is as readable as the original
            os.replace(tmp_out, target)
        except BaseException:
            Path(tmp_out).unlink(missing_ok=True)
            raise
    return FreezeResult(target, frozen, empty, data_date, now)


def _rewrite(src: Path, dest: Path, data_date: str | None, now: dt.datetime, original: str) -> tuple[int, int]:
    try:
        zin = zipfile.ZipFile(src)
        workbook = etree.fromstring(zin.read("xl/workbook.xml"), _PARSER)
        wb_rels = etree.fromstring(zin.read("xl/_rels/workbook.xml.rels"), _PARSER)
        types = etree.fromstring(zin.read("[Content_Types].xml"), _PARSER)
        root_rels = etree.fromstring(zin.read("_rels/.rels"), _PARSER)
    except (zipfile.BadZipFile, KeyError, etree.XMLSyntaxError):
        raise WorkbookError(f"{src.name} is not an Excel workbook (.xlsx/.xlsm)") from None
    with zin:
        names = set(zin.namelist())
        changed: dict[str, bytes] = {}
        frozen = empty = 0
        sheet_parts = []
        for rel in wb_rels.iter(f"{{{PKG_REL}}}Relationship"):
            if rel.get("Type") == REL_SHEET:
                target = rel.get("Target")
                sheet_parts.append(target.lstrip("/") if target.startswith("/")
                                   else posixpath.normpath(posixpath.join("xl", target)))
        for part in sheet_parts:
            if part not in names:
                continue
            root = etree.fromstring(zin.read(part), _PARSER)
            n, e = freeze_sheet(root)
            if n:
                frozen += n
                empty += e
                changed[part] = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
        # the calculation chain lists formula cells; Excel rebuilds it, a stale one is "corrupt"
        dropped = {"xl/calcChain.xml"}
        for rel in list(wb_rels.iter(f"{{{PKG_REL}}}Relationship")):
            if rel.get("Type") == REL_CALCCHAIN:
                wb_rels.remove(rel)
        for o in list(types):
            if o.get("PartName") == "/xl/calcChain.xml":
                types.remove(o)

        stamp = [("Frozen values 已冻结数值", ""),
                 ("Frozen at 冻结时间", f"{now:%Y-%m-%d %H:%M}"),
                 ("Data date 数据日期", data_date or "unknown"),
                 ("From 来源", original),
                 ("Formulas frozen 已冻结公式", str(frozen)),
                 ("Note", "Values only: this copy no longer updates. Refresh the original with xl_addin.")]
        sheets = workbook.find(f"{Q}sheets")
        existing = {s.get("name") for s in sheets}
        stamp_part = None
        if STAMP_SHEET in existing:  # frozen before: update its stamp
            for s in sheets:
                if s.get("name") == STAMP_SHEET:
                    rid = s.get(f"{{{R_NS}}}id")
                    for rel in wb_rels.iter(f"{{{PKG_REL}}}Relationship"):
                        if rel.get("Id") == rid:
                            stamp_part = posixpath.normpath(posixpath.join("xl", rel.get("Target")))
        if stamp_part is None:
            n = 1
            while f"xl/worksheets/sheet{n}.xml" in names:
                n += 1
            stamp_part = f"xl/worksheets/sheet{n}.xml"
            rids = {r.get("Id") for r in wb_rels}
            rid = next(f"rId{i}" for i in range(1, 10_000) if f"rId{i}" not in rids)
            etree.SubElement(wb_rels, f"{{{PKG_REL}}}Relationship", Id=rid, Type=REL_SHEET,
                             Target=f"worksheets/sheet{n}.xml")
            sheet_id = max([int(s.get("sheetId", "0")) for s in sheets] + [0]) + 1
            etree.SubElement(sheets, f"{Q}sheet", {"name": STAMP_SHEET, "sheetId": str(sheet_id),
                                                   f"{{{R_NS}}}id": rid})
            etree.SubElement(types, f"{{{CT_NS}}}Override", PartName=f"/{stamp_part}",
                             ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml")
        changed[stamp_part] = _stamp_sheet(stamp)

        props = {"LX frozen at": now.isoformat(timespec="seconds"), "LX data date": data_date or "unknown",
                 "LX frozen from": original}
        changed["docProps/custom.xml"] = _custom_props(
            zin.read("docProps/custom.xml") if "docProps/custom.xml" in names else None, props)
        if "docProps/custom.xml" not in names:
            ids = {r.get("Id") for r in root_rels}
            rid = next(f"rId{i}" for i in range(1, 10_000) if f"rId{i}" not in ids)
            etree.SubElement(root_rels, f"{{{PKG_REL}}}Relationship", Id=rid, Type=REL_CUSTOM,
                             Target="docProps/custom.xml")
            etree.SubElement(types, f"{{{CT_NS}}}Override", PartName="/docProps/custom.xml",
                             ContentType="application/vnd.openxmlformats-officedocument.custom-properties+xml")
        # recalculate the live formulas on open: their inputs are now values
        calc = workbook.find(f"{Q}calcPr")
        if calc is not None:
            calc.set("fullCalcOnLoad", "1")
        for name, root in (("xl/workbook.xml", workbook), ("xl/_rels/workbook.xml.rels", wb_rels),
                           ("[Content_Types].xml", types), ("_rels/.rels", root_rels)):
            changed[name] = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)

        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
            written = set()
            for info in zin.infolist():
                if info.filename in dropped:
                    continue
                data = changed.get(info.filename)
                zout.writestr(info, data if data is not None else zin.read(info.filename))
                written.add(info.filename)
            for name, data in changed.items():
                if name not in written:
                    zout.writestr(name, data)
    return frozen, empty
