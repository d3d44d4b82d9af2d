"""The sheet part kept as raw rows (xl_addin/xlsx_rows.py): only the rows a refresh fills are
written again, and what is written is what the lxml tree writes (the tree still handles any
sheet that is not laid out plainly, e.g. one with a comment in it)."""

import datetime as dt
import re
import shutil
import zipfile

import openpyxl
import pytest
from lxml import etree

from test_refresh import TEMPLATES, extend_codes, set_codes
from xl_addin.refresh import refresh_file
from xl_addin.xlsx import XlsxBook

SHEET = "xl/worksheets/sheet1.xml"
ROW = re.compile(rb'<row r="(\d+)".*?(?:</row>|/>)(?=\s*<row |\s*</sheetData>)', re.S)


def sheet_part(path) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read(SHEET)


def rows_of(part: bytes) -> dict[int, bytes]:
    return {int(m.group(1)): m.group(0) for m in ROW.finditer(part)}


def rewrite_sheet(src, dst, change):
    """*src* with its sheet part passed through *change* (another program's way of writing it)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            zout.writestr(info, change(data) if info.filename == SHEET else data)


def with_comment(data: bytes) -> bytes:
    """A comment inside the sheet: legal XML that only the tree reads."""
    return re.sub(rb"(<sheetData>)", rb"<!-- a comment -->\1", data, count=1)


def instruction(data: bytes) -> bytes:
    """A processing instruction between two rows the refresh fills (the tree takes over there)."""
    return data.replace(b"</row><row r=\"9\"", b"</row><?xl-test between rows?><row r=\"9\"", 1)


def pretty(data: bytes) -> bytes:
    """The sheet indented, one element a line (whitespace between rows and between cells)."""
    return etree.tostring(etree.fromstring(data), pretty_print=True, xml_declaration=True, encoding="UTF-8")


def cells(path, rows=range(1, 1307), cols=range(1, 45)):
    ws = openpyxl.load_workbook(path)["MM_AH"]
    return {(r, c): (ws.cell(row=r, column=c).value, ws.cell(row=r, column=c).data_type,
                     ws.cell(row=r, column=c).number_format)
            for r in rows for c in cols if ws.cell(row=r, column=c).value is not None or r < 1007}


@pytest.fixture
def codes_book(tmp_path, sandbox):
    path = tmp_path / "book.xlsx"
    shutil.copyfile(TEMPLATES / "mm_ah.xlsx", path)
    set_codes(path, [*sandbox.dataset.codes[:5], "bad!", "", "99999"])
    return path


def test_rows_the_refresh_does_not_fill_stay_byte_for_byte(codes_book, service):
    before = sheet_part(codes_book)
    refresh_file(codes_book, service=service)
    after = sheet_part(codes_book)
    old, new = rows_of(before), rows_of(after)
    assert sorted(old) == sorted(new)
    filled = {1, 2, 3, 4, *range(7, 7 + 8)}  # the status block, and the rows with a code (or a bad one)
    for r in sorted(old):
        if r not in filled:
            assert new[r] == old[r], f"row {r} was written again"
    for r in filled - {13}:  # the blank code row between them holds nothing and gets nothing
        assert new[r] != old[r], f"row {r} was not refreshed"
    head, tail = before.split(b"<sheetData>")[0], before.split(b"</sheetData>")[1]
    assert after.split(b"</sheetData>")[1] == tail
    assert re.sub(rb'<dimension ref="[^"]*"/>', b"", after.split(b"<sheetData>")[0]) == \
        re.sub(rb'<dimension ref="[^"]*"/>', b"", head)


@pytest.mark.parametrize("variant", [with_comment, instruction, pretty],
                         ids=["a comment in the sheet", "a processing instruction between rows", "indented"])
def test_a_sheet_written_another_way_is_refreshed_to_the_same_cells(tmp_path, sandbox, service, variant):
    plain = tmp_path / "plain.xlsx"
    shutil.copyfile(TEMPLATES / "mm_ah.xlsx", plain)
    codes = [*sandbox.dataset.codes[:40], "bad!", "", "00001"]
    extend_codes(plain, codes + list(sandbox.dataset.codes[40:300]) * 4)  # rows past the template: created
    other = tmp_path / "other.xlsx"
    rewrite_sheet(plain, other, variant)
    refresh_file(plain, service=service)
    refresh_file(other, service=service)
    a, b = cells(plain), cells(other)
    status = {(r, c) for r in range(1, 5) for c in range(1, 45)}  # "refreshed at" is the time of each
    assert {k: v for k, v in a.items() if k[0] > 4} == {k: v for k, v in b.items() if k[0] > 4}
    assert len([k for k in a if k[0] > 1006]) > 1000, "cells were created past the template"
    assert {k: v for k, v in a.items() if k in status and k != (1, 10)} == \
        {k: v for k, v in b.items() if k in status and k != (1, 10)}
    assert {with_comment: b"a comment", instruction: b"xl-test", pretty: b"\n"}[variant] in sheet_part(other)
    dimension = [re.search(rb'<dimension ref="([^"]*)"', sheet_part(p)).group(1) for p in (plain, other)]
    assert dimension[0] == dimension[1] == f"A1:AR{6 + len(codes) + 260 * 4}".encode()  # grown to the new rows


ODD = [1.5, -0.0, 1e300, float("nan"), float("inf"), 7, 2**70, True, False, dt.date(2024, 2, 29),
       dt.datetime(2024, 2, 29, 13, 30, 15), "  padded ", "a&b<c>d\r\ne\tf", "港股通 · Stock Connect", "", None]


def written_cells(path, width) -> list[bytes]:
    root = etree.fromstring(sheet_part(path))
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    row = root.find("m:sheetData/m:row[@r='7']", ns)
    got = [c for c in row.findall("m:c", ns) if 3 <= openpyxl.utils.column_index_from_string(
        re.match(r"[A-Z]+", c.get("r")).group(0)) < 3 + width]
    return [etree.tostring(c, method="c14n") for c in got]


def test_every_kind_of_value_is_written_as_the_tree_writes_it(tmp_path):
    raw, tree = tmp_path / "raw.xlsx", tmp_path / "tree.xlsx"
    shutil.copyfile(TEMPLATES / "mm_ah.xlsx", raw)
    rewrite_sheet(raw, tree, with_comment)
    for path in (raw, tree):
        b = XlsxBook(path)
        b.write("MM_AH", 7, 3, [ODD])
        b.write("MM_AH", 8, 3, [[None] * len(ODD)])
        b.save()
    assert written_cells(raw, len(ODD)) == written_cells(tree, len(ODD))
    back = XlsxBook(raw).read("MM_AH", 7, 3, 7, 2 + len(ODD))[0]
    assert back[0] == 1.5 and back[7] is True and back[11] == "  padded " and back[12] == "a&b<c>d\r\ne\tf"
    again = [ODD[-2], *ODD[:-2], 2.5]  # over cells that hold values now (a table refreshed before)
    for path in (raw, tree):
        b = XlsxBook(path)
        b.write("MM_AH", 7, 3, [again])
        b.save()
    assert written_cells(raw, len(ODD)) == written_cells(tree, len(ODD))


def test_text_no_spreadsheet_can_hold_is_refused_by_both(tmp_path):
    raw, tree = tmp_path / "raw.xlsx", tmp_path / "tree.xlsx"
    shutil.copyfile(TEMPLATES / "mm_ah.xlsx", raw)
    rewrite_sheet(raw, tree, with_comment)
    errors = []
    for path in (raw, tree):
        b = XlsxBook(path)
        with pytest.raises(ValueError) as exc:
            b.write("MM_AH", 7, 3, [["bell \x07"]])
        errors.append(str(exc.value))
    assert errors[0] == errors[1]


def test_a_head_start_that_guessed_the_rows_wrong_still_writes_every_row(tmp_path):
    path = tmp_path / "book.xlsx"
    shutil.copyfile(TEMPLATES / "mm_ah.xlsx", path)
    b = XlsxBook(path)
    b.ready("MM_AH", 7, 3, 10, 4, [False, True, False, False])  # "only the second row gets values"
    b.write("MM_AH", 7, 3, [[1.0, "a"], [2.0, "b"], [None, None], [4.0, None]])
    b.save()
    assert XlsxBook(path).read("MM_AH", 7, 3, 10, 4) == [[1.0, "a"], [2.0, "b"], [None, None], [4.0, None]]


def test_a_formula_written_by_another_program_in_the_table_is_refused(tmp_path, service):
    path = tmp_path / "book.xlsx"
    shutil.copyfile(TEMPLATES / "mm_ah.xlsx", path)
    rewrite_sheet(path, path.with_name("f.xlsx"), lambda d: d.replace(
        b'<c r="E9" s="19" t="n"></c>', b'<c r="E9" s="19"><f>1+1</f><v>2</v></c>'))
    f = path.with_name("f.xlsx")
    before = f.read_bytes()
    with pytest.raises(Exception, match="cell E9 .* holds a formula"):
        refresh_file(f, service=service)
    assert f.read_bytes() == before


def test_cells_created_below_rows_left_empty_take_the_style_above_them_as_the_tree_gives(tmp_path):
    """Rows the head start skipped (empty, and staying so) still lend their style to cells created below."""
    def gap(data: bytes) -> bytes:
        row9 = re.search(rb'<row r="9".*?</row>', data).group(0)
        data = data.replace(row9, re.sub(rb's="\d+"', b's="1"', row9))  # row 9: another style
        data = re.sub(rb'<row r="10".*?</row>', b"", data)  # row 10: no row at all
        return re.sub(rb'(<row r="11".*?</row>)', lambda m: re.sub(rb'<c r="E11"[^>]*>(</c>)?', b"", m.group(0)), data)

    raw, tree = tmp_path / "raw.xlsx", tmp_path / "tree.xlsx"
    rewrite_sheet(TEMPLATES / "mm_ah.xlsx", raw, gap)
    rewrite_sheet(raw, tree, with_comment)
    for path in (raw, tree):
        b = XlsxBook(path)
        b.ready("MM_AH", 7, 3, 11, 6, [True, False, False, True, True])
        b.write("MM_AH", 7, 3, [[1.0] * 4, [None] * 4, [None] * 4, [2.0] * 4, [3.0] * 4])
        b.save()
    ws_raw, ws_tree = (openpyxl.load_workbook(p)["MM_AH"] for p in (raw, tree))
    formats = [[ws.cell(row=r, column=c).number_format for r in (10, 11) for c in range(3, 7)] for ws in (ws_raw, ws_tree)]
    assert formats[0] == formats[1]
    assert ws_raw.cell(row=10, column=3).number_format == ws_raw.cell(row=9, column=3).number_format != \
        ws_raw.cell(row=8, column=3).number_format
    assert [ws_raw.cell(row=r, column=5).value for r in (10, 11)] == [2.0, 3.0]


def test_a_created_row_below_a_skipped_row_and_a_row_without_cells_takes_the_style_above(tmp_path):
    """Created cells take the nearest existing cell's style above them, also when the rows in
    between were skipped by the head start or hold no cell of the table."""
    path = tmp_path / "w.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    for col in "CD":
        ws.column_dimensions[col].number_format = "#,##0"
        ws[f"{col}3"].number_format = "0.00%"  # an empty cell with a style, on a row that stays empty
    ws["A4"] = "x"  # a row with no cell of the table
    wb.save(path)
    tree = tmp_path / "tree.xlsx"
    rewrite_sheet(path, tree, with_comment)
    for p in (path, tree):
        b = XlsxBook(p)
        b.ready("Sheet", 2, 3, 5, 4, [True, False, True, True])
        b.write("Sheet", 2, 3, [[1.0, 1.0], [None, None], [2.0, 2.0], [3.0, 3.0]])
        b.save()
    got = [[openpyxl.load_workbook(p).active.cell(row=r, column=c).number_format for r in (2, 4, 5) for c in (3, 4)]
           for p in (path, tree)]
    assert got[0] == got[1] == ["#,##0", "#,##0", "0.00%", "0.00%", "0.00%", "0.00%"]


def without_r(data: bytes) -> bytes:
    """Rows and cells without ``r``, as OOXML allows (a row follows the one before it, a cell the
    cell before it): every other table row has none, and in the others every cell after A has none."""
    def row(m):
        r, text = int(m.group(1)), m.group(0)
        if r < 7:
            return text
        if r % 2:
            return text.replace(b'<row r="%d"' % r, b"<row", 1)
        return re.sub(rb'<c r="(?!A\d)[A-Z]+\d+"', b"<c", text)
    return re.sub(rb'<row r="(\d+)".*?</row>', row, data, flags=re.S)


def test_rows_and_cells_without_r_are_read_and_written_where_they_are(tmp_path, sandbox, service):
    """``r`` is optional on rows and cells: the refresh raised TypeError/AttributeError on such a sheet."""
    plain, other = tmp_path / "plain.xlsx", tmp_path / "other.xlsx"
    shutil.copyfile(TEMPLATES / "mm_ah.xlsx", plain)
    set_codes(plain, [*sandbox.dataset.codes[:6], "bad!"])
    rewrite_sheet(plain, other, without_r)
    part = sheet_part(other)
    assert part.count(b"<row r=") < part.count(b"<row") and part.count(b"<c r=") < part.count(b"<c")
    refresh_file(plain, service=service)
    refresh_file(other, service=service)
    a, b = cells(plain, rows=range(5, 20)), cells(other, rows=range(5, 20))
    assert a == b
    assert all(isinstance(b[(r, 9)][0], float) for r in range(7, 13)) and "bad!" in b[(13, 3)][0]


def test_phonetic_guides_are_not_part_of_a_codes_text(tmp_path, sandbox, service):
    """Excel keeps a phonetic reading (``rPh``, Japanese IME) beside typed text; it was read into the code."""
    path = tmp_path / "book.xlsx"
    shutil.copyfile(TEMPLATES / "mm_ah.xlsx", path)
    code = sandbox.dataset.codes[0]
    ruby = f'<c r="A7" s="17" t="inlineStr"><is><t>{code}</t><rPh sb="0" eb="5"><t>ヨミ</t></rPh></is></c>'
    rewrite_sheet(TEMPLATES / "mm_ah.xlsx", path, lambda d: re.sub(rb'<c r="A7".*?</c>', ruby.encode(), d, count=1))
    summary = refresh_file(path, service=service)
    assert summary.with_data >= 1 and summary.problem_rows == 0
    assert openpyxl.load_workbook(path)["MM_AH"]["C7"].value is not None


def test_written_cells_lose_rich_value_and_array_metadata(tmp_path):
    """A cell that held a rich value (``vm``: a linked data type, a picture in the cell) or belonged to
    a dynamic array (``cm``) keeps pointing at it after a number is written over it: Excel shows
    the old rich value, not the number. Raw and tree alike drop both."""
    raw, tree = tmp_path / "raw.xlsx", tmp_path / "tree.xlsx"

    def meta(d):
        d = d.replace(b'<c r="C7" s="17" t="n"></c>', b'<c r="C7" s="17" t="e" vm="1"><v>#VALUE!</v></c>', 1)
        return d.replace(b'<c r="D7" s="18" t="n"></c>', b'<c r="D7" s="18" cm="1"/>', 1)

    rewrite_sheet(TEMPLATES / "mm_ah.xlsx", raw, meta)
    rewrite_sheet(raw, tree, with_comment)
    for path in (raw, tree):
        b = XlsxBook(path)
        b.write("MM_AH", 7, 3, [[1.5, 2.5]])
        b.save()
        row7 = re.search(rb'<row r="7".*?</row>', sheet_part(path)).group(0)
        assert b"vm=" not in row7 and b"cm=" not in row7, row7[:400]
    assert written_cells(raw, 2) == written_cells(tree, 2)


def test_a_date_written_into_a_general_cell_gets_the_books_date_style_raw_and_tree_alike(tmp_path):
    """Excel formats a date written into a General cell as a date; the file writer wrote a bare serial."""
    raw, tree = tmp_path / "raw.xlsx", tmp_path / "tree.xlsx"
    shutil.copyfile(TEMPLATES / "mm_ah.xlsx", raw)
    rewrite_sheet(raw, tree, with_comment)
    values = [dt.date(2025, 12, 31), dt.datetime(2026, 1, 2, 9, 30), 1.5, "text"]
    for path in (raw, tree):
        b = XlsxBook(path)
        b.write("MM_AH", 2000, 3, [values])
        b.save()
    ws = openpyxl.load_workbook(raw)["MM_AH"]
    got = [ws.cell(row=2000, column=c) for c in range(3, 7)]
    assert [c.value for c in got] == [dt.datetime(2025, 12, 31), dt.datetime(2026, 1, 2, 9, 30), 1.5, "text"]
    assert got[0].is_date and got[1].is_date and "h" in got[1].number_format.lower()
    assert got[2].number_format == got[3].number_format == "General"
    other = openpyxl.load_workbook(tree)["MM_AH"]
    assert [(c.value, c.number_format, c.style_id) for c in got] == \
        [(other.cell(row=2000, column=c).value, other.cell(row=2000, column=c).number_format,
          other.cell(row=2000, column=c).style_id) for c in range(3, 7)]


def test_shared_strings_found_through_the_workbooks_relationship_not_by_name(tmp_path, sandbox, service):
    """The shared strings part is wherever the workbook's relationships say (OOXML names no path);
    a book whose part is not xl/sharedStrings.xml had every shared-string code read as nothing
    (IndexError: "unexpected error" on the CLI)."""
    src = tmp_path / "src.xlsx"
    shutil.copyfile(TEMPLATES / "mm_ah.xlsx", src)
    set_codes(src, [sandbox.dataset.codes[0]])
    lo = tmp_path / "shared.xlsx"  # the code as a shared string, as Excel and LibreOffice save it
    sst = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><sst xmlns="http://schemas.openxmlformats.org/'
           f'spreadsheetml/2006/main" count="1" uniqueCount="1"><si><t>{sandbox.dataset.codes[0]}</t></si></sst>')
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(lo, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == SHEET:
                data = re.sub(rb'<c r="A7"[^>]*?(?:/>|>.*?</c>)', b'<c r="A7" t="s"><v>0</v></c>', data, count=1, flags=re.S)
            elif info.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"</Relationships>", b'<Relationship Id="rIdS" Type="http://schemas.openxmlformats.'
                                    b'org/officeDocument/2006/relationships/sharedStrings" Target="strings/sst1.xml"/>'
                                    b"</Relationships>")
            elif info.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", b'<Override PartName="/xl/strings/sst1.xml" ContentType="application/'
                                    b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
            zout.writestr(info, data)
        zout.writestr("xl/strings/sst1.xml", sst)
    summary = refresh_file(lo, service=service)
    assert summary.with_data == 1 and summary.problem_rows == 0
    assert isinstance(openpyxl.load_workbook(lo)["MM_AH"]["I7"].value, float)
