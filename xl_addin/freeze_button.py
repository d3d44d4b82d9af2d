"""The ribbon's **Freeze values** button (Windows): a copy of the open workbook with values only.

The button's VBA (``LixingerFreeze.FreezeValues``, see :mod:`xl_addin.addin_build`) runs
``RunPython "import xl_addin.freeze_button as f; f.main()"``. Freezing needs the workbook as
the analyst sees it, unsaved edits included, without touching it: Excel's ``SaveCopyAs``
writes exactly that into a temporary folder (the open workbook keeps its name, path and
"unsaved" state), then :func:`xl_addin.freeze.freeze_file` writes ``BOOK-frozen.xlsx`` beside
the workbook, under a free name (``BOOK-frozen (2).xlsx``…): an earlier copy, maybe already
mailed, is never overwritten.

Nothing escapes to Excel as a traceback: xlwings' VBA shows any Python error in a box of
stderr text. Every outcome, refusals included, is one line in a message box (and the status
bar while it works); nothing is written into the workbook, whose "status block" belongs to
the Refresh.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .exceptions import LixingerError, WorkbookError

TITLE = "Lixinger freeze"
FORMATS = (".xlsx", ".xlsm")  # what SaveCopyAs writes as an OOXML package freeze_file can read


def free_name(folder: Path, stem: str, suffix: str) -> Path:
    """``STEM-frozen.xlsx`` in *folder*, or the first ``STEM-frozen (n).xlsx`` not taken."""
    candidate = folder / f"{stem}-frozen{suffix}"
    n = 2
    while candidate.exists():
        candidate = folder / f"{stem}-frozen ({n}){suffix}"
        n += 1
    return candidate


def source_path(book) -> Path:
    """Where the open workbook lives, or a one-line WorkbookError saying why it cannot be frozen."""
    try:
        full = str(book.fullname)  # xlwings maps a OneDrive/SharePoint address to the local copy
    except Exception:
        try:  # xlwings could not map it (no local OneDrive folder found): say so, not its traceback
            raw = str(book.api.FullName)
        except Exception:
            raw = ""
        if "://" not in raw:
            raise
        full = raw
    if "://" in full:
        raise WorkbookError("this workbook is on OneDrive or SharePoint and its folder on this PC was not found: "
                            "save a copy to a folder on this PC and freeze that")
    if not full or not os.path.isabs(full):
        raise WorkbookError("save this workbook first: the frozen copy goes beside it (nothing was written)")
    path = Path(full)
    if path.suffix.lower() not in FORMATS:
        raise WorkbookError(f"Freeze values works on .xlsx and .xlsm workbooks, this one is "
                            f"{path.suffix or 'unnamed'}: "
                            "save it as .xlsx first, or use `lx-addin freeze` (nothing was written)")
    return path


def freeze_open_book(book, now=None):
    """Freeze the open *book* (xlwings Book) into a free ``-frozen`` name beside it; the FreezeResult."""
    from .freeze import freeze_file

    path = source_path(book)
    if not path.parent.is_dir():
        raise WorkbookError(f"the workbook's folder {path.parent} is not reachable (nothing was written)")
    tmp = Path(tempfile.mkdtemp(prefix="lx-freeze-"))
    try:
        copy = tmp / path.name  # the original's name: the stamp says where the values came from
        try:
            book.api.SaveCopyAs(str(copy))
        except Exception as exc:
            raise WorkbookError(f"Excel could not save a copy to freeze: {_one_line(exc)} "
                                "(nothing was written)") from None
        if not copy.is_file():
            raise WorkbookError("Excel saved no copy to freeze (nothing was written)")
        target = path.with_name(f"{path.stem}-frozen{path.suffix}")
        try:
            target = free_name(path.parent, path.stem, path.suffix)
            return freeze_file(copy, out=target, now=now)
        except OSError as exc:
            raise WorkbookError(f"cannot write {target.name} beside the workbook ({exc.strerror or exc}): "
                                "nothing was written") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _one_line(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    # pywintypes.com_error: (hresult, text, (wcode, source, description, ...), argerr)
    if len(args) >= 3 and isinstance(args[2], tuple) and len(args[2]) > 2 and args[2][2]:
        text = str(args[2][2])
    else:
        text = str(exc)
    text = " ".join(text.split()) or type(exc).__name__
    return text[:200] + "..." if len(text) > 200 else text


def _status(book, text) -> None:
    try:
        book.app.status_bar = text
    except Exception:
        pass


def _alert(book, message: str, critical: bool) -> None:
    try:
        app = book.app if book is not None else __import__("xlwings").apps.active
        app.alert(message, title=TITLE, mode="critical" if critical else "info")
    except Exception:
        import sys

        print(f"{TITLE}: {message}", file=sys.stderr)


def main(book=None) -> None:
    """RunPython entry point of the Freeze values button. Never raises."""
    try:
        if book is None:
            from .excel_book import calling_book

            book = calling_book()
        _status(book, "Lixinger: freezing a copy…")
        result = freeze_open_book(book)
    except LixingerError as exc:
        message, critical = f"Nothing frozen: {exc}", True
    except Exception as exc:  # never a VBA traceback box for an analyst
        message, critical = f"Nothing frozen: unexpected error: {type(exc).__name__}: {_one_line(exc)}", True
    else:
        message, critical = f"{result.line()}. This workbook was not changed.", False
    _status(book, False)
    _alert(book, message, critical)
