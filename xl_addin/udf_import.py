"""Windows: write the VBA wrappers of ``xl_addin.udfs`` into the add-in (xlwings' "Import Functions").

Excel does it: a hidden instance opens the add-in, xlwings' ``import_udfs`` adds the
``xlwings_udfs`` module, the add-in is saved. Three things make this fragile, and each is handled:

* Access to the VBA project may still be denied (the user said no, or Group Policy). That is
  checked on the add-in itself first and ends in one line that says what to do.
* xlwings' fallback, when ``VBComponents.Import`` fails, runs a macro that imports into
  ``ActiveWorkbook``, which is Nothing in a hidden instance (an add-in is never the active
  workbook). We do not trust it: afterwards the module must be in *our* add-in's project.
* A hidden Excel left behind holds the add-in and our environment open. The instance is quit
  in ``finally``, opened or not, and killed if quitting fails.

``app_factory`` and ``importer`` are parameters so that tests hand over an App stand-in.
"""

from __future__ import annotations

from pathlib import Path

from .exceptions import InstallError

UDF_MODULES = "xl_addin.udfs"
VBA_MODULE = "xlwings_udfs"
NOT_TRUSTED = -2146827284  # "Programmatic access to Visual Basic Project is not trusted"
TRUST_HINT = ("Excel refused access to the add-in's VBA project: turn on File > Options > Trust Center > "
              "Trust Center Settings > Macro Settings > 'Trust access to the VBA project object model' "
              "(or ask IT if it is locked), or run this again with --no-udfs for the Refresh button only")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "...") if len(text) > 200 else (text or type(exc).__name__)


def _default_app():
    import xlwings as xw

    return xw.App(visible=False, add_book=False)


def _close_and_quit(app, book, saved: bool) -> None:
    if book is not None and not saved:
        try:
            book.close()  # xlwings: Close(SaveChanges=False)
        except Exception:
            pass
    try:
        app.quit()
    except Exception:
        try:
            app.kill()
        except Exception:
            pass


def import_udfs_into_addin(addin: Path, app_factory=None, importer=None) -> None:
    if importer is None:
        from xlwings.udfs import import_udfs as importer
    try:
        app = (app_factory or _default_app)()
    except Exception as exc:
        raise InstallError(f"could not start Excel to import the functions: {_one_line(exc)}") from None
    book, saved = None, False
    try:
        try:
            book = app.books.open(str(addin))
        except Exception as exc:
            raise InstallError(f"Excel could not open {Path(addin).name}: {_one_line(exc)}") from None
        try:
            book.api.VBProject.VBComponents.Count
        except Exception:
            raise InstallError(TRUST_HINT) from None
        try:
            importer(UDF_MODULES, book.api)
        except Exception as exc:
            if str(NOT_TRUSTED) in str(exc) or "not trusted" in str(exc).lower():
                raise InstallError(TRUST_HINT) from None
            raise InstallError(f"Excel could not import the functions into {Path(addin).name}: {_one_line(exc)}") from None
        try:
            book.api.VBProject.VBComponents(VBA_MODULE)
        except Exception:
            raise InstallError(f"the functions did not land in {Path(addin).name} (xlwings imported them elsewhere); "
                               "nothing was installed, run this again") from None
        try:
            book.save()
        except Exception as exc:
            raise InstallError(f"Excel could not save {Path(addin).name}: {_one_line(exc)}") from None
        saved = True
        try:
            book.close()
        except Exception:
            pass  # saved already; quitting Excel below closes it
    finally:
        _close_and_quit(app, book, saved)
