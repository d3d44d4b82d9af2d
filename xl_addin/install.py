"""`lx-addin install` / `uninstall`: the cross-platform part of setting up Excel.

1. ``~/.xlwings/xlwings.conf`` (read by xlwings' VBA and Python): the interpreter and
   ``UDF MODULES``, merged into what is already there.
2. The ribbon add-in ``xl_addin.xlam``, built from xlwings' own (BSD) custom add-in
   ``quickstart_addin_ribbon.xlam``: our Lixinger tab, and its config sheet filled in
   and enabled. Its Refresh button runs ``RunPython "import xl_addin; xl_addin.main()"``
   (the add-in's VBA derives the module from the file name).
3. The add-in goes where Excel loads add-ins at start (XLSTART on Windows, the
   Startup folder on macOS); on Linux, where to copy it is printed.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .exceptions import LixingerError

ADDIN_NAME = "xl_addin.xlam"
UDF_MODULES = "xl_addin.udfs"
CONF_SHEET_DISABLED, CONF_SHEET = "_myaddin.conf", "myaddin.conf"  # PROJECT_NAME in the add-in's VBA
MAC_STARTUP = "Library/Group Containers/UBF8T346G9.Office/User Content.localized/Startup.localized/Excel"

RIBBON = """<customUI xmlns="http://schemas.microsoft.com/office/2006/01/customui">
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
                </group>
            </tab>
        </tabs>
    </ribbon>
</customUI>
"""


@dataclass
class InstallReport:
    conf: Path
    addin: Path
    interpreter: str
    addin_dir: Path | None
    notes: list[str] = field(default_factory=list)


def target_os(platform: str | None = None) -> str:
    p = platform or sys.platform
    if p.startswith("win"):
        return "windows"
    if p == "darwin":
        return "macos"
    return "linux"


def addin_dir(home: Path, os_name: str, environ=None) -> Path | None:
    """Where Excel loads add-ins at start for this user; None on Linux (no Excel)."""
    env = os.environ if environ is None else environ
    if os_name == "windows":
        appdata = env.get("APPDATA")
        base = Path(appdata) if appdata and home == Path.home() else home / "AppData" / "Roaming"
        return base / "Microsoft" / "Excel" / "XLSTART"
    if os_name == "macos":
        return home / MAC_STARTUP
    return None


# --- xlwings.conf -------------------------------------------------------------------------
def read_conf(path: Path) -> list[tuple[str, str]]:
    """(key, value) pairs as xlwings reads them: the first two quoted strings of a line."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        values = re.findall(r'"[^"]*"', line)
        if len(values) >= 2:
            out.append((values[0].strip('"'), values[1].strip('"')))
    return out


def write_conf(path: Path, updates: dict[str, str | None]) -> None:
    """Merge *updates* (None removes a key) into the conf file, keeping every other line."""
    pairs = read_conf(path)
    wanted = {k.upper(): (k, v) for k, v in updates.items()}
    out, done = [], set()
    for key, value in pairs:
        if key.upper() in wanted:
            k, v = wanted[key.upper()]
            done.add(key.upper())
            if v is not None:
                out.append((key, v))
        else:
            out.append((key, value))
    for upper, (k, v) in wanted.items():
        if upper not in done and v is not None:
            out.append((k, v))
    if not out:
        if path.exists():
            path.unlink()
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".conf.tmp")
    tmp.write_text("".join(f'"{k}","{v}"\n' for k, v in out), encoding="utf-8")
    os.replace(tmp, path)


def interpreter_key(os_name: str) -> str:
    return "INTERPRETER_WIN" if os_name == "windows" else "INTERPRETER_MAC"


# --- the add-in ---------------------------------------------------------------------------
def xlwings_ribbon_addin() -> Path:
    import xlwings

    src = Path(xlwings.__file__).with_name("quickstart_addin_ribbon.xlam")
    if not src.exists():
        raise LixingerError(f"xlwings {xlwings.__version__} has no quickstart_addin_ribbon.xlam; upgrade xlwings")
    return src


def build_addin(target: Path, interpreter: str, source: Path | None = None) -> Path:
    """Our ribbon add-in: xlwings' custom add-in with our tab and its config sheet filled in."""
    from lxml import etree

    from .xlsx import NS, XlsxBook

    source = source or xlwings_ribbon_addin()
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".~{target.stem}.xlam")
    book = XlsxBook(source)
    if CONF_SHEET_DISABLED not in book._sheet_parts:
        raise LixingerError(f"{source.name} has no {CONF_SHEET_DISABLED} sheet: unexpected xlwings add-in")
    keys = [row[0] for row in book.read(CONF_SHEET_DISABLED, 1, 1, 12, 1)]
    values = {"Interpreter_Win": interpreter, "Interpreter_Mac": interpreter, "UDF Modules": UDF_MODULES}
    for i, key in enumerate(keys, start=1):
        if key in values:
            book.write(CONF_SHEET_DISABLED, i, 2, [[values[key]]])
    book.save(staged)
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
            data = RIBBON.encode("utf-8")
        out.append((info, data))
    tmp = target.with_name(f".~{target.stem}.tmp.xlam")
    with zipfile.ZipFile(tmp, "w") as z:
        for info, data in out:
            z.writestr(info, data)
    staged.unlink()
    os.replace(tmp, target)
    return target


def windows_interpreter(executable: str) -> str:
    """pythonw.exe beside python.exe when there is one (no console window flashing up)."""
    exe = Path(executable)
    if exe.name.lower() == "python.exe" and (exe.parent / "pythonw.exe").exists():
        return str(exe.parent / "pythonw.exe")
    return executable


def import_udfs_into_addin(addin: Path) -> None:
    """Windows: write the VBA wrappers of xl_addin.udfs into the add-in (xlwings' Import Functions),
    so =LX_MMAH works in every workbook. Needs "Trust access to the VBA project object model"."""
    import xlwings as xw
    from xlwings.udfs import import_udfs

    app = xw.App(visible=False, add_book=False)
    try:
        book = app.books.open(str(addin))
        try:
            import_udfs(UDF_MODULES, book.api)
        except Exception as exc:
            if "not trusted" in str(exc).lower() or "-2146827284" in str(exc):
                raise LixingerError(
                    "Excel refused to import the functions: turn on File > Options > Trust Center > "
                    "Trust Center Settings > Macro Settings > 'Trust access to the VBA project object model', "
                    "then run the installer again"
                ) from None
            raise
        book.save()
        book.close()
    finally:
        app.quit()


# --- the commands -----------------------------------------------------------------------------
def install(home: Path | None = None, os_name: str | None = None, interpreter: str | None = None,
            build_dir: Path | None = None) -> InstallReport:
    home = Path(home) if home else Path.home()
    os_name = os_name or target_os()
    interpreter = interpreter or sys.executable
    if os_name == "windows":
        interpreter = windows_interpreter(interpreter)
    conf = home / ".xlwings" / "xlwings.conf"
    write_conf(conf, {interpreter_key(os_name): interpreter, "UDF MODULES": UDF_MODULES})
    where = addin_dir(home, os_name)
    built_in = where or (build_dir or home / ".xl_addin")
    addin = build_addin(built_in / ADDIN_NAME, interpreter)
    report = InstallReport(conf=conf, addin=addin, interpreter=interpreter, addin_dir=where)
    if where is None:
        report.notes.append(
            f"Excel does not run on Linux: copy {addin} to a Windows PC's "
            r"%APPDATA%\Microsoft\Excel\XLSTART, or to a Mac's ~/" + MAC_STARTUP
        )
    if os_name == "macos":
        report.notes.append("macOS Excel has no xlwings UDFs: use the Refresh button (=LX_MMAH is Windows only)")
    return report


def uninstall(home: Path | None = None, os_name: str | None = None) -> list[str]:
    home = Path(home) if home else Path.home()
    os_name = os_name or target_os()
    removed = []
    conf = home / ".xlwings" / "xlwings.conf"
    if conf.exists():
        mine = {interpreter_key(os_name): None, "UDF MODULES": None}
        pairs = dict((k.upper(), v) for k, v in read_conf(conf))
        if pairs.get("UDF MODULES") != UDF_MODULES:
            mine.pop("UDF MODULES")  # someone else's setting now
        write_conf(conf, mine)
        removed.append(str(conf))
    for folder in filter(None, (addin_dir(home, os_name), home / ".xl_addin")):
        path = folder / ADDIN_NAME
        if path.exists():
            path.unlink()
            removed.append(str(path))
    return removed


def main_install(args) -> int:
    args.profile = getattr(args, "profile", "default")
    report = install(Path(args.home) if args.home else None)
    print(f"Python for Excel:  {report.interpreter}")
    print(f"xlwings config:    {report.conf}")
    print(f"ribbon add-in:     {report.addin}")
    for note in report.notes:
        print(f"note: {note}")
    if getattr(args, "import_udfs", False):
        import_udfs_into_addin(report.addin)
        print("imported the LX_MMAH functions into the add-in: they work in every workbook")
    if args.no_token:
        return 0
    if not sys.stdin.isatty():
        print("Not a terminal: skipping the token prompt. Run `lx-addin token set` to store your token.")
        return 0
    from .cli import main as cli_main

    rc = cli_main(["--profile", args.profile, "token", "set"])
    if rc == 0:
        rc = cli_main(["--profile", args.profile, "token", "test"])
    return rc


def main_uninstall(args) -> int:
    removed = uninstall(Path(args.home) if args.home else None)
    for r in removed:
        print(f"removed {r}")
    if not args.keep_token:
        from .credentials import delete_token

        try:
            if delete_token(args.profile):
                print(f"removed the token for profile {args.profile!r} from the system keyring")
        except LixingerError as exc:
            print(f"lx-addin: could not remove the token: {exc}", file=sys.stderr)
    if not args.keep_cache and not args.home:
        from .config import Settings

        cache_dir = Settings.from_env().cache_path.parent
        if cache_dir.exists():
            shutil.rmtree(cache_dir, ignore_errors=True)
            print(f"removed {cache_dir}")
    print("xl_addin is uninstalled; your workbooks were not touched.")
    return 0
