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

In the same session, the Freeze values button's module (:data:`~xl_addin.addin_build.FREEZE_MODULE`)
is added as a standard module (``VBComponents.Add``, ``CodeModule.AddFromString``) and read
back; Excel can only write VBA here. If that part fails the formulas are kept, the module is
taken out again and the result says so: the install then leaves the button off the ribbon.

``app_factory`` and ``importer`` are parameters so that tests hand over an App stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .addin_build import FREEZE_MODULE, freeze_vba
from .exceptions import InstallError

UDF_MODULES = "xl_addin.udfs"
VBA_MODULE = "xlwings_udfs"
NOT_TRUSTED = -2146827284  # "Programmatic access to Visual Basic Project is not trusted"
TRUST_HINT = ("Excel refused access to the add-in's VBA project: turn on File > Options > Trust Center > "
              "Trust Center Settings > Macro Settings > 'Trust access to the VBA project object model' "
              "(or ask IT if it is locked), or run this again with --no-udfs for the Refresh button only")


VBEXT_CT_STD_MODULE = 1  # vbext_ComponentType.vbext_ct_StdModule


@dataclass
class Imported:
    """What the saved add-in now holds, as read back from its VBA project."""

    modules: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def freeze_button(self) -> bool:
        return FREEZE_MODULE in self.modules


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


def _vba_text(code_module) -> str:
    count = code_module.CountOfLines
    return _vba_text_of(str(code_module.Lines(1, count)) if count else "")


def add_freeze_module(xl_workbook) -> str | None:
    """Add the Freeze values button's module to *xl_workbook* (COM); None when it is there
    and reads back as written, else why not (and nothing of it is left in the project)."""
    components = xl_workbook.VBProject.VBComponents
    component = None
    try:
        try:
            old = components(FREEZE_MODULE)
        except Exception:
            old = None
        if old is not None:  # a module of that name from before: ours, replaced
            components.Remove(old)
        component = components.Add(VBEXT_CT_STD_MODULE)
        component.Name = FREEZE_MODULE
        code = component.CodeModule
        if code.CountOfLines:  # "Require Variable Declaration" put an Option Explicit in: ours has one
            code.DeleteLines(1, code.CountOfLines)
        code.AddFromString(freeze_vba())
        if _vba_text(components(FREEZE_MODULE).CodeModule) != _vba_text_of(freeze_vba()):
            raise InstallError("its code did not read back as written")
        return None
    except Exception as exc:
        if component is not None:
            try:
                components.Remove(component)
            except Exception:
                pass
        return (f"the Freeze values button was left out (Excel did not add its VBA module: {_com_text(exc)}); "
                "the formulas work; freeze a copy with `lx-addin freeze BOOK.xlsx`")


def _com_text(exc: BaseException) -> str:
    """pywintypes.com_error's description (its excepinfo), else the one-line text."""
    args = getattr(exc, "args", ())
    if len(args) >= 3 and isinstance(args[2], tuple) and len(args[2]) > 2 and args[2][2]:
        return " ".join(str(args[2][2]).split())
    return _one_line(exc)


def _vba_text_of(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines()).strip()


def import_udfs_into_addin(addin: Path, app_factory=None, importer=None, freeze_button: bool = True) -> Imported:
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
        imported = Imported(modules=[VBA_MODULE])
        if freeze_button:
            problem = add_freeze_module(book.api)
            if problem is None:
                imported.modules.append(FREEZE_MODULE)
            else:
                imported.notes.append(problem)
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
    return imported
