"""A worksheet part kept as its own text, row by row: a refresh re-renders only the rows it fills.

Parsing a whole sheet into a tree, editing 23,000 cells through it and serialising all of it
again cost the refresh of the 1.3 MB template ~0.15 s, nearly all of it after the fetch, on the
path between the service's answer and the saved file, and most of it for bytes the refresh
never changes. Here the part stays the text it was: its rows are found by their offsets (no
tree), the cells of the rows a write fills are indexed into small templates while the fetch
is in flight (:meth:`RawSheet.index`), and a write renders only those rows from their
templates and splices them between the untouched text. A row the refresh does not change
(nothing to write, nothing to clear) is not touched at all.

Only the plain layout every spreadsheet program writes is handled so: UTF-8, the main
namespace as the default one, rows as ``<row r="N"`` in increasing order, cells as
``<c r="A1"`` with double-quoted attributes, and no comment, CDATA, DTD, namespace
declaration or ``extLst`` inside sheetData (nor a processing instruction where a row or a
cell should be). Anything else raises :class:`NotRaw`, and :class:`xl_addin.xlsx.XlsxBook`
works on an lxml tree of the sheet instead, which handles any sheet (and is what this
module's output is tested against).
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import re

from lxml import etree

from .dates import as_excel_datetime
from .layout import col_letter, col_number

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"

_ATTRS = r'((?:\s+[\w:.-]+\s*=\s*(?:"[^"]*"|\'[^\']*\'))*)'
_DECL = re.compile(r'<\?xml\s[^?]*\?>')
_ENCODING = re.compile(r'encoding\s*=\s*["\']([^"\']*)["\']')
_ROOT = re.compile(r'<worksheet' + _ATTRS + r'\s*>')
_ATTR = re.compile(r'\s+([\w:.-]+)\s*=\s*("[^"]*"|\'[^\']*\')')
_SHEET_DATA = re.compile(r'<sheetData\s*(/?)>')
_ROW = re.compile(r'<row r="(\d+)"' + _ATTRS + r'\s*(/?)>')
_ROW_NUMBER = re.compile(r'<row r="(\d+)"')
_SPANS = re.compile(r'\s+spans\s*=\s*(?:"[^"]*"|\'[^\']*\')')
#: one cell, ``r`` first: (letters, digits, attributes before ``t``, t, attributes after it, content)
_CELL = re.compile(r'<c r="([A-Z]{1,3})(\d+)"((?:\s+(?!t\s*=)[\w:.-]+\s*=\s*"[^"]*")*)(?:\s+t\s*=\s*"([^"]*)")?'
                   r'((?:\s+[\w:.-]+\s*=\s*"[^"]*")*)\s*(?:/>|>(.*?)</c>)', re.S)
_CELL_LETTERS = re.compile(r'<c r="([A-Z]{1,3})\d')
_T = re.compile(r'\s+t="[^"<]*"')
#: a cell's value and cell metadata (a rich value, a dynamic array): dropped from the cells a write renders
_METADATA = re.compile(r'\s+[cv]m="[^"]*"')
_HOLDS = re.compile(r'<(?:v|is|f)[\s/>]')  # a row whose cells hold something
_FORMULA = re.compile(r'<f[\s/>]')
_STYLE = re.compile(r'\ss="([^"]*)"')
_DIMENSION = re.compile(r'<dimension' + _ATTRS + r'\s*(/?)>')
_A1 = re.compile(r'^([A-Z]{1,3})(\d+)$')
#: what XML 1.0 cannot hold: lxml refuses these (and so the tree path); the raw path asks lxml to say so
_NOT_XML = re.compile('[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')


#: :meth:`RawSheet.index`'s template for an empty row that the write leaves empty
KEEP = ("keep",)


class NotRaw(Exception):
    """This sheet (or this row of it) is not in the plain layout: use the tree."""


_COLUMNS: dict[str, int] = {}


def _col(letters: str) -> int:
    col = _COLUMNS.get(letters)
    if col is None:
        col = _COLUMNS[letters] = col_number(letters)
    return col


def grown_ref(ref: str, bottom: int, right: int) -> str:
    """A ``<dimension ref>`` grown to include row *bottom* and column *right* (unchanged if it is
    not an A1 range: the dimension is a hint that Excel recomputes)."""
    a, _, b = ref.partition(":")
    m1, m2 = _A1.match(a), _A1.match(b or a)
    if m1 is None or m2 is None:
        return ref
    r1, c1 = int(m1.group(2)), col_number(m1.group(1))
    r2, c2 = int(m2.group(2)), col_number(m2.group(1))
    return f"{col_letter(c1)}{r1}:{col_letter(max(c2, right))}{max(r2, bottom)}"


def _escape(text: str) -> str:
    """Text as lxml serialises it (``\\r`` kept as a reference, so that it survives a parser)."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    return text


#: what a date's tail starts with when the book can give it a date style (see :func:`dated`): a
#: character no XML holds, so it cannot come from a value (:data:`_NOT_XML` refuses it)
DATE_MARK, DATETIME_MARK = "\x00", "\x01"


def dated(row: str, restyle) -> str:
    """*row* with each date cell's style given by ``restyle(style or None, is_datetime) -> style``
    (each mark found from the end of its cell's opening: no scan of the rest of the row)."""
    out, pos = [], 0
    while True:
        d, t = row.find(DATE_MARK, pos), row.find(DATETIME_MARK, pos)
        mark = min(d, t) if d >= 0 and t >= 0 else max(d, t)
        if mark < 0:
            out.append(row[pos:])
            return "".join(out)
        cell = row.rfind("<c ", pos, mark)
        head = row[cell:mark] if cell >= 0 and ">" not in row[cell:mark] else None
        if head is None:  # not a cell's opening as this module writes it: the value, unstyled
            out.append(row[pos:mark])
        else:
            old = _STYLE.search(head)
            new = restyle(old.group(1) if old else None, row[mark] == DATETIME_MARK)
            if old is not None:
                head = f'{head[:old.start()]} s="{new}"{head[old.end():]}' if new else head
            elif new:
                head = f'{head} s="{new}"'
            out.append(row[pos:cell])
            out.append(head)
        pos = mark + 1


def cell_tail(epoch: dt.datetime, mark_dates: bool = False):
    """``tail(value)``: what follows ``<c r=".." s=".."`` for *value*, as the tree path's
    ``XlsxBook._set`` writes it (numbers, booleans, dates as serials from *epoch*, text inline).
    *mark_dates*: a date's tail starts with :data:`DATE_MARK` (:data:`DATETIME_MARK` with a time of
    day), for :func:`dated` to give its cell a date style."""
    isfinite = math.isfinite

    def tail(value) -> str:
        if type(value) is float:
            return f"><v>{value!r}</v></c>" if isfinite(value) else "/>"
        if value is None:
            return "/>"
        if isinstance(value, bool):
            return ' t="b"><v>1</v></c>' if value else ' t="b"><v>0</v></c>'
        if isinstance(value, (dt.date, dt.datetime)):
            value = as_excel_datetime(value)
            serial = (value - epoch).total_seconds() / 86400
            mark = (DATETIME_MARK if serial % 1 else DATE_MARK) if mark_dates else ""
            return f"{mark}><v>{repr(round(serial, 8)) if serial % 1 else str(int(serial))}</v></c>"
        if isinstance(value, (int, float)):
            if isinstance(value, float):
                return f"><v>{value!r}</v></c>" if isfinite(value) else "/>"
            return f"><v>{value}</v></c>"
        text = str(value)
        if _NOT_XML.search(text):
            etree.Element("t").text = text  # raises lxml's own error, as the tree path does
        space = ' xml:space="preserve"' if text != text.strip() else ""
        return f' t="inlineStr"><is><t{space}>{_escape(text)}</t></is></c>'

    return tail


class RawSheet:
    """One worksheet part as text: its rows by offset, and the rows re-rendered by writes."""

    def __init__(self, data: bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise NotRaw("not UTF-8") from None
        pos = 1 if text.startswith("\ufeff") else 0
        if "<!" in text:
            raise NotRaw("a comment, CDATA or DTD")
        m = _DECL.match(text, pos)
        if m is not None:
            enc = _ENCODING.search(m.group(0))
            if enc is not None and enc.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
                raise NotRaw("not UTF-8")
            pos = m.end()
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        root = _ROOT.match(text, pos)
        if root is None or _unquote(dict(_ATTR.findall(root.group(1))).get("xmlns")) != NS:
            raise NotRaw("not a worksheet in the main namespace as the default one")
        start = text.find("<sheetData", root.end())
        sd = _SHEET_DATA.match(text, start) if start >= 0 else None
        if sd is None:
            raise NotRaw("no plain <sheetData>")
        if sd.group(1):  # <sheetData/>: no rows yet
            lo = hi = sd.start()
            before, after = text[:lo] + "<sheetData>", "</sheetData>" + text[sd.end():]
        else:
            lo = sd.end()
            hi = text.find("</sheetData>", lo)
            if hi < 0:
                raise NotRaw("sheetData is not closed")
            before, after = text[:lo], text[hi:]
        for odd in ("xmlns", "<extLst"):
            if text.find(odd, lo, hi) >= 0:
                raise NotRaw(f"{odd} inside sheetData")
        nums, starts = [], []
        for m in _ROW_NUMBER.finditer(text, lo, hi):  # each row's whole start tag is read when it is used
            nums.append(int(m.group(1)))
            starts.append(m.start())
        if text.count("<row", lo, hi) != len(nums) or (text[lo:starts[0] if starts else hi].strip()):
            raise NotRaw("a row that is not <row r=\"N\"")
        if any(a >= b for a, b in zip(nums, nums[1:])):
            raise NotRaw("rows out of order")
        self.root_tag = root.group(0)
        self._text, self._lo, self._hi = text, lo, hi
        self._before, self._after = before, after
        self._nums, self._starts = nums, starts
        self._at = {n: i for i, n in enumerate(nums)}
        self._edits: dict[int, tuple[int, int, str]] = {}  # row -> (start, stop, text): a row replaced or added
        self._grow: tuple[int, int] | None = None
        self._skeleton = None

    # -- rows -----------------------------------------------------------------------------
    def _original(self, r: int) -> tuple[int, str] | None:
        i = self._at.get(r)
        if i is None:
            return None
        start = self._starts[i]
        end = self._starts[i + 1] if i + 1 < len(self._starts) else self._hi
        return start, self._text[start:end].rstrip()

    def row(self, r: int) -> str | None:
        """Row *r*'s element as it stands now (None: there is none)."""
        edit = self._edits.get(r)
        if edit is not None:
            return edit[2]
        orig = self._original(r)
        return None if orig is None else orig[1]

    def rows_between(self, top: int, bottom: int) -> list[int]:
        i, j = bisect.bisect_left(self._nums, top), bisect.bisect_right(self._nums, bottom)
        rows = set(self._nums[i:j])
        rows.update(r for r in self._edits if top <= r <= bottom)
        return sorted(rows)

    @staticmethod
    def _split_row(text: str):
        """(start tag match, the row's inside) of one row's element."""
        m = _ROW.match(text)
        if m is None:
            raise NotRaw("a row")
        if m.group(3):
            if m.end() != len(text):
                raise NotRaw("a row")
            return m, ""
        if not text.endswith("</row>"):
            raise NotRaw("a row that is not closed where the next begins")
        return m, text[m.end():-6]

    @staticmethod
    def _columns(inside: str) -> tuple[list[str], list[int]]:
        """The column letters and numbers of a row's cells, in order (checked: every cell is
        ``<c r="..N"`` of this row, in increasing columns)."""
        letters = _CELL_LETTERS.findall(inside)
        if len(letters) != inside.count("<c") - inside.count("<co") - inside.count("<ch"):
            raise NotRaw("a cell that is not <c r=\"A1\"")  # <color>, <condense>, <charset>: rich text
        cols = list(map(_COLUMNS.get, letters))
        if None in cols:
            cols = [_col(x) for x in letters]
        if cols != sorted(cols) or len(set(cols)) != len(cols):
            raise NotRaw("cells out of order")
        return letters, cols

    def cells(self, top: int, left: int, bottom: int, right: int) -> list[tuple[int, int, str]]:
        """(row, column, the cell's element) of every cell in the area."""
        out = []
        for r in self.rows_between(top, bottom):
            _, inside = self._split_row(self.row(r))
            pos, end = 0, len(inside)
            while True:  # cell by cell from the row's start, until past the area
                while pos < end and inside[pos] in " \t\r\n":
                    pos += 1
                if pos == end:
                    break
                m = _CELL.match(inside, pos)
                if m is None:
                    raise NotRaw("a cell")
                col = _col(m.group(1))
                if col > right:
                    break
                if col >= left:
                    out.append((r, col, m.group(0)))
                pos = m.end()
        return out

    def skeleton(self):
        """The sheet without its rows, as a tree: protection, merged cells, columns, dimension."""
        if self._skeleton is None:
            self._skeleton = etree.fromstring((self._before + self._after).encode("utf-8"),
                                              etree.XMLParser(resolve_entities=False, huge_tree=True))
        return self._skeleton

    # -- writing --------------------------------------------------------------------------
    def index(self, top: int, left: int, bottom: int, right: int, col_style, written=None) -> list:
        """A template per row of the area, for :meth:`write`: for a row that exists,
        ``(head, prefixes, exists, tail, empty, formula)`` (the cells' opening without ``t`` and
        content; *exists* None when every cell of the area is there, else one flag per column;
        *empty*: no cell of the area holds anything; *formula*: the first cell of the area
        holding one), ``(None, styles)`` for a row to create, or :data:`KEEP` for an empty row
        that *written* (a flag per row: will the write put anything in it) says stays empty.
        New cells take the style a tree write gives them: the row's (customFormat), else the
        nearest cell's above in the area, else the column's."""
        width = right - left + 1
        above: dict[int, str] = {}  # col -> the opening of the nearest cell above, in the area
        kept: list = []  # rows left out (KEEP) since a row with every cell of the area
        new_styles = None  # the styles of a created row's cells, while nothing above changes
        out = []

        def style(c: int, row_style=None) -> str | None:
            nonlocal new_styles
            if kept:  # the rows left out have cells above too: read them now (once), in order
                for args in kept:
                    above.update(self._template(*args)[1])
                kept.clear()
                new_styles = None
            return row_style or _style_of(above.get(c)) or col_style(c)

        for i, r in enumerate(range(top, bottom + 1)):
            text = self.row(r)
            if text is None:
                if new_styles is None or kept:
                    new_styles = tuple(_style_attr(style(c)) for c in range(left, right + 1))
                out.append((None, new_styles))
                continue
            m, inside = self._split_row(text)
            if written is not None and not written[i] and not _HOLDS.search(inside):
                out.append(KEEP)
                kept.append((r, m, inside, left, right, None))
                continue
            tpl, cells = self._template(r, m, inside, left, right, style)  # styles from above, then:
            if len(cells) == width:
                kept.clear()  # every column's nearest cell above is now this row's
            if cells:
                above.update(cells)
                new_styles = None
            out.append(tpl)
        return out

    def _template(self, r: int, m, inside: str, left: int, right: int, style):
        """(one existing row's template (see :meth:`index`), [(column, opening)] of its cells in
        the area); without *style*, only the cells."""
        letters, cols = self._columns(inside)
        i0, i1 = bisect.bisect_left(cols, left), bisect.bisect_right(cols, right)
        n, end = len(cols), len(inside.rstrip())
        p0 = inside.find(f'<c r="{letters[i0]}{r}"') if i0 < n else end
        p1 = inside.find(f'<c r="{letters[i1]}{r}"', p0) if i1 < n else end
        if p0 < 0 or p1 < 0:
            raise NotRaw("a cell whose row is not its row's")
        region = inside[p0:p1]
        count = i1 - i0
        prefixes = None
        if "<v" not in region and "<is" not in region and "<f" not in region:
            # cells with nothing in them, the common case of a template: no cell by cell parsing
            plain = region.replace("></c>", "/>")
            if ' t="' in plain:  # t="n" (openpyxl's empty cells) without a regex
                plain = plain.replace(' t="n"', "")
                if ' t="' in plain:
                    plain = _T.sub("", plain)
            pieces = plain.split("/>")
            last = pieces.pop()
            if len(pieces) == count and not last.strip() and ">" not in plain.replace("/>", "") \
                    and "".join(pieces).count("<") == count:
                prefixes, contents = pieces, ()  # (whitespace between cells kept before each)
        if prefixes is None:
            pieces = _CELL.split(region)
            if (len(pieces) - 1) // 7 != count or "".join(pieces[0::7]).strip():
                raise NotRaw("a cell")
            prefixes = [f'<c r="{a}{b}"{c}{d}' for a, b, c, d in
                        zip(pieces[1::7], pieces[2::7], pieces[3::7], pieces[5::7])]
            contents = pieces[6::7]
        if 'm="' in region:
            prefixes = [_METADATA.sub("", p) for p in prefixes]
        cells = list(zip(cols[i0:i1], prefixes))
        if style is None:
            return None, cells
        content = "".join(c for c in contents if c)
        formula = None
        if content and _FORMULA.search(content):
            for k, c in enumerate(contents):
                if c and _FORMULA.search(c):
                    formula = f"{letters[i0 + k]}{r}"
                    break
        attrs = m.group(2)
        head = f'<row r="{m.group(1)}"{_SPANS.sub("", attrs) if "spans" in attrs else attrs}>' + inside[:p0]
        exists = None
        if count != right - left + 1:  # cells to create: the row's style, else the nearest above, else the column's
            row_style = _attr(attrs, "s") if _attr(attrs, "customFormat") in ("1", "true") else None
            have = dict(cells)
            prefixes, exists = [], []
            for c in range(left, right + 1):
                p = have.get(c)
                if p is None:
                    p = f'<c r="{col_letter(c)}{r}"{_style_attr(style(c, row_style))}'
                exists.append(c in have)
                prefixes.append(p)
        return (head, prefixes, exists, inside[p1:] + "</row>", not content.strip(), formula), cells

    @staticmethod
    def formula(index: list) -> str | None:
        """The first cell of an indexed area that holds a formula."""
        for tpl in index:
            if tpl is not KEEP and tpl[0] is not None and tpl[5] is not None:
                return tpl[5]
        return None

    def write(self, index: list, top: int, left: int, matrix: list[list], tail, restyle=None) -> bool:
        """Render the rows of *matrix* from *index* (:meth:`index` of the same area, since the
        last write) and put them in place of the rows they replace. False (nothing written):
        a row the index left out (:data:`KEEP`) is to hold something after all."""
        for tpl, values in zip(index, matrix):
            if tpl is KEEP and values.count(None) != len(values):
                return False  # a row left out of the index is written after all: index it again
        letters = [col_letter(left + j) for j in range(len(matrix[0]))] if matrix else []
        isfinite = math.isfinite
        for i, values in enumerate(matrix):
            r = top + i
            tpl = index[i]
            if tpl is KEEP:
                continue
            nothing = values.count(None) == len(values)
            if tpl[0] is None:  # a row to create
                if nothing:
                    continue
                styles = tpl[1]
                body = "".join([f'<c r="{letters[j]}{r}"{styles[j]}{tail(v)}'
                                for j, v in enumerate(values) if v is not None])
                self._put(r, _dates(f'<row r="{r}">{body}</row>', restyle))
                continue
            head, prefixes, exists, end, empty, _ = tpl
            if nothing and empty:
                continue  # nothing to write, nothing to clear: the row stays as it was
            if exists is None:
                body = "".join([p + ("/>" if v is None else f"><v>{v!r}</v></c>"
                                     if (kind := type(v)) is float and isfinite(v) else f"><v>{v}</v></c>"
                                     if kind is int else tail(v))
                                for p, v in zip(prefixes, values)])  # numbers inline: most of the cells
            else:
                body = "".join([p + tail(v) for p, e, v in zip(prefixes, exists, values) if e or v is not None])
            self._put(r, _dates(head + body + end, restyle))
        return True

    def _put(self, r: int, text: str) -> None:
        edit = self._edits.get(r)
        if edit is not None:
            self._edits[r] = (edit[0], edit[1], text)
            return
        orig = self._original(r)
        if orig is not None:
            start, old = orig
            self._edits[r] = (start, start + len(old), text)
            return
        i = bisect.bisect_left(self._nums, r)
        at = self._starts[i] if i < len(self._starts) else self._hi
        self._edits[r] = (at, at, text)

    def grow(self, bottom: int, right: int) -> None:
        """Grow the dimension (when the part is rendered) to include *bottom* and *right*."""
        if self._grow is not None:
            bottom, right = max(bottom, self._grow[0]), max(right, self._grow[1])
        self._grow = (bottom, right)

    def to_bytes(self) -> bytes:
        """The part: the original text with the written rows in place, and its dimension grown."""
        before = self._before
        if self._grow is not None:
            m = _DIMENSION.search(before)
            if m is not None:
                attrs = m.group(1)
                ref = _attr(attrs, "ref")
                if ref is not None:
                    new = grown_ref(ref, *self._grow)
                    attrs = _ATTR.sub(lambda a: f' ref="{new}"' if a.group(1) == "ref" else a.group(0), attrs)
                    before = f"{before[:m.start()]}<dimension{attrs}{m.group(2)}>{before[m.end():]}"
        text = self._text
        parts = [before]
        cursor = self._lo
        for start, stop, _, row in sorted((s, e, r, t) for r, (s, e, t) in self._edits.items()):
            parts.append(text[cursor:start])
            parts.append(row)
            cursor = stop
        parts.append(text[cursor:self._hi])
        parts.append(self._after)
        return "".join(parts).encode("utf-8")


def _dates(row: str, restyle) -> str:
    if restyle is not None and (DATE_MARK in row or DATETIME_MARK in row):
        return dated(row, restyle)
    return row


def _unquote(value: str | None) -> str | None:
    return value[1:-1] if value else value


def _attr(attrs: str, name: str) -> str | None:
    for n, v in _ATTR.findall(attrs):
        if n == name:
            return v[1:-1]
    return None


def _style_of(prefix: str | None) -> str | None:
    if prefix is None:
        return None
    m = _STYLE.search(prefix)
    return m.group(1) if m else None


def _style_attr(style: str | None) -> str:
    return f' s="{style}"' if style else ""
