"""Build ``xl_addin.xlam`` for the machine it will run on.

It is xlwings' own (BSD) custom add-in ``quickstart_addin_ribbon.xlam`` with our Lixinger tab
and its config sheet filled in. That add-in's VBA (``PROJECT_NAME = "myaddin"``) looks a
setting up in this order: a ``myaddin.conf`` sheet in the active workbook, the ``myaddin.conf``
sheet of the add-in itself, ``myaddin.conf`` beside the active workbook, then the user file
(``%USERPROFILE%\\.myaddin\\myaddin.conf``; on macOS ``myaddin.conf`` in Excel's container).
So our settings go on the add-in's own sheet, read before any file: nothing outside our add-in
is written, and the user file, which every add-in built from the same quickstart shares, is
left alone. (``tests/test_addin_config.py`` derives this order from the VBA text.)

``ADD_WORKBOOK_TO_PYTHONPATH`` is FALSE (a row added below the quickstart's; the VBA reads the
sheet from A1 down to the first blank). Otherwise RunPython and the UDF server put the folder
of the active workbook in front of site-packages (xlwings' ``prepare_sys_path``): a module
there with the name of one of ours or of a library we import would replace it, and a workbook
on a network share would make every import of a fresh RunPython process look there first.
``import xl_addin`` needs nothing from the workbook's folder.

The interpreter is the one of the machine that builds it: ``Interpreter_Win`` (a Windows path)
on Windows, ``Interpreter_Mac`` on macOS, never both, so that an add-in built elsewhere cannot
pass for a Windows one.

The **Freeze values** button needs a ribbon callback of its own: the quickstart's only one,
``RibbonMyAddin.RunMain``, runs the Refresh, and a second add-in built from the same file would
hold a second ``RibbonMyAddin.RunMain`` that Excel can confuse with ours (xlwings#973). So the
Windows install, in the same Excel session that imports the formulas
(:mod:`xl_addin.udf_import`), adds a standard module :data:`FREEZE_MODULE` whose one Sub calls
xlwings' ``RunPython`` (a ``Public Function`` of the project's ``xlwings`` module). The
``vbaProject.bin`` cannot be written without Excel, so the button is in the ribbon only when
that module was added (:func:`set_ribbon` after the import); otherwise it would be a button
whose click ends in "cannot run the macro".
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from .exceptions import InstallError
from .install_paths import check_mac_interpreter, is_windows_path

UDF_MODULES = "xl_addin.udfs"
#: settings the quickstart's sheet has no row for: added below its last row
EXTRA_SETTINGS = {"ADD_WORKBOOK_TO_PYTHONPATH": False}
CONF_SHEET_DISABLED, CONF_SHEET = "_myaddin.conf", "myaddin.conf"  # PROJECT_NAME in the add-in's VBA

#: the Freeze values button's VBA: a module name no xlwings add-in uses, a Sub the ribbon calls
FREEZE_MODULE, FREEZE_MACRO = "LixingerFreeze", "FreezeValues"
FREEZE_COMMAND = "import xl_addin.freeze_button as f; f.main()"
#: the package relationship to the ribbon part (xlwings' file uses the 2007 one)
UI_RELS = ("http://schemas.microsoft.com/office/2006/relationships/ui/extensibility",
           "http://schemas.microsoft.com/office/2007/relationships/ui/extensibility")

_FREEZE_GROUP = f"""
                <group id="lixingerShare" label="Share">
                    <button id="lixingerFreezeButton" label="Freeze values" size="large" imageMso="PasteValues"
                        screentip="Save a copy with values only"
                        supertip="Writes BOOK-frozen.xlsx beside this workbook: every LX_MMAH formula becomes its current value, for someone without the add-in. This workbook is not changed."
                        onAction="{FREEZE_MODULE}.{FREEZE_MACRO}" />
                </group>"""


def freeze_vba() -> str:
    """The module's code, for ``CodeModule.AddFromString`` (no ``Attribute`` lines: the name is
    the component's ``Name``). It only starts Python; :mod:`xl_addin.freeze_button` decides.
    ``ActiveWorkbook`` is checked first because xlwings' ``RunPython`` reads its sheets and
    would stop with VBA's "Object variable not set" when no workbook is open."""
    return (
        "Option Explicit\n"
        "\n"
        "' xl_addin: the Lixinger tab's Freeze values button. Python decides everything\n"
        "' (xl_addin.freeze_button); this only starts it through xlwings' RunPython.\n"
        f"Sub {FREEZE_MACRO}(control As IRibbonControl)\n"
        "    If ActiveWorkbook Is Nothing Then\n"
        '        MsgBox "Open the workbook to freeze first.", vbInformation, "Lixinger freeze"\n'
        "        Exit Sub\n"
        "    End If\n"
        f'    RunPython "{FREEZE_COMMAND}"\n'
        "End Sub\n"
    )


def ribbon_xml(freeze_button: bool = False) -> str:
    """The Lixinger tab; with *freeze_button* only when :data:`FREEZE_MODULE` is in the add-in."""
    return f"""<customUI xmlns="http://schemas.microsoft.com/office/2006/01/customui">
    <ribbon>
        <tabs>
            <tab id="lixingerTab" label="Lixinger">
                <group id="lixingerRefresh" label="港股通 Stock Connect">
                    <button id="lixingerRefreshButton" label="Refresh" size="large" imageMso="RefreshAll"
                        screentip="Refresh this workbook"
                        supertip="Fills the table of a Lixinger template (LX_CODES, LX_FIELDS) with the latest mm_ah data for every code. Touches nothing else."
                        onAction="RibbonMyAddin.RunMain" />
                </group>
                <group id="lixingerFormulas" label="Formulas">
                    <control idMso="CalculateNow" size="large" label="Recalculate" screentip="Recalculate LX_MMAH formulas" />
                    <control idMso="NameManager" size="large" label="Template names" screentip="LX_CODES, LX_FIELDS, LX_STATUS" />
                </group>{_FREEZE_GROUP if freeze_button else ""}
            </tab>
        </tabs>
    </ribbon>
</customUI>
"""


RIBBON = ribbon_xml(False)


def xlwings_ribbon_addin() -> Path:
    import xlwings

    src = Path(xlwings.__file__).with_name("quickstart_addin_ribbon.xlam")
    if not src.exists():
        raise InstallError(f"xlwings {xlwings.__version__} has no quickstart_addin_ribbon.xlam; upgrade xlwings")
    return src


def sheet_settings(os_name: str, interpreter: str) -> dict[str, str]:
    """The config sheet's values for an add-in that runs on *os_name* (keys as in the sheet)."""
    if os_name == "windows":
        if not is_windows_path(interpreter):
            raise InstallError(f"{interpreter!r} is not a Windows path: build the add-in on the Windows PC that runs it")
        return {"Interpreter_Win": interpreter, "UDF Modules": UDF_MODULES}
    return {"Interpreter_Mac": check_mac_interpreter(interpreter), "UDF Modules": UDF_MODULES}


def build_addin(target: Path, os_name: str, interpreter: str, source: Path | None = None,
                freeze_button: bool = False) -> Path:
    """Our ribbon add-in for *os_name*, written atomically to *target* (the Freeze values
    button only with *freeze_button*: its VBA module must be added too)."""
    from lxml import etree

    from .xlsx import NS, XlsxBook

    values = sheet_settings(os_name, interpreter)
    source = source or xlwings_ribbon_addin()
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".~{target.stem}.xlam")
    book = XlsxBook(source)
    try:
        if CONF_SHEET_DISABLED not in book.sheet_names():
            raise InstallError(f"{source.name} has no {CONF_SHEET_DISABLED} sheet: unexpected xlwings add-in")
        keys = [row[0] for row in book.read(CONF_SHEET_DISABLED, 1, 1, 40, 1)]
        keys = keys[:keys.index(None)] if None in keys else keys  # the VBA stops at the first blank
        missing = set(values) - set(keys)
        if missing:
            raise InstallError(f"{source.name}'s config sheet has no {sorted(missing)} row: unexpected xlwings add-in")
        for i, key in enumerate(keys, start=1):
            if key in values:
                book.write(CONF_SHEET_DISABLED, i, 2, [[values[key]]])
        upper = {str(k).upper() for k in keys}
        extra = [[k, v] for k, v in EXTRA_SETTINGS.items() if k.upper() not in upper]
        if extra:
            book.write(CONF_SHEET_DISABLED, len(keys) + 1, 1, extra)
        book.save(staged)
    finally:
        book.close()
    # enable the config sheet (the VBA looks for "myaddin.conf") and put our ribbon in
    with zipfile.ZipFile(staged) as z:
        parts = [(i, z.read(i.filename)) for i in z.infolist()]
    out = []
    for info, data in parts:
        if info.filename == "xl/workbook.xml":
            root = etree.fromstring(data)
            for sheet in root.iter(f"{{{NS}}}sheet"):
                if sheet.get("name") == CONF_SHEET_DISABLED:
                    sheet.set("name", CONF_SHEET)
            data = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
        elif info.filename == "customUI/customUI.xml":
            data = ribbon_xml(freeze_button).encode("utf-8")
        out.append((info, data))
    tmp = target.with_name(f".~{target.stem}.tmp.xlam")
    with zipfile.ZipFile(tmp, "w") as z:
        for info, data in out:
            z.writestr(info, data)
    staged.unlink()
    os.replace(tmp, target)
    return target


def _ui_part(names: set[str], root_rels: bytes) -> str:
    from lxml import etree

    for rel in etree.fromstring(root_rels):
        if rel.get("Type") in UI_RELS:
            part = rel.get("Target", "").lstrip("/")
            if part in names:
                return part
    raise InstallError("the add-in has no ribbon (customUI) part: unexpected xlwings add-in")


def set_ribbon(addin: Path, freeze_button: bool) -> Path:
    """Rewrite the ribbon of an add-in (one Excel may have saved since) with or without the Freeze
    values button; every other part is copied as it is, the file replaced in one step."""
    addin = Path(addin)
    with zipfile.ZipFile(addin) as z:
        parts = [(i, z.read(i.filename)) for i in z.infolist()]
    names = {i.filename for i, _ in parts}
    ui = _ui_part(names, dict((i.filename, d) for i, d in parts).get("_rels/.rels", b"<x/>"))
    tmp = addin.with_name(f".~{addin.stem}.ribbon.xlam")
    try:
        with zipfile.ZipFile(tmp, "w") as z:
            for info, data in parts:
                z.writestr(info, ribbon_xml(freeze_button).encode("utf-8") if info.filename == ui else data)
        os.replace(tmp, addin)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return addin
