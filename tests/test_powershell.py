"""Issue 9, points 1 and 7: every .ps1 parses with a real PowerShell grammar, stays thin, and cannot
delete or recreate a registry key.

The grammar is tree-sitter-powershell (PyPI). A registry path reaches a command either literally
(``HKCU:\\...``, ``Registry::``), through a variable assigned from one (followed through
assignments and ``foreach``), through ``.PSPath``, or down a pipeline; the commands that can delete
or recreate a key are listed below, with the .NET calls that do the same.
"""

import re

import pytest
import tree_sitter_powershell
from tree_sitter import Language, Parser

from conftest import ROOT

INSTALL = ROOT / "install"
PARSER = Parser(Language(tree_sitter_powershell.language()))
REGISTRY = re.compile(r"(?i)\b(HKCU|HKLM|HKCR|HKU|HKCC)\s*:|Registry::|HKEY_[A-Z_]+|Microsoft\.Win32\.Registry|"
                      r"\bPS(Parent)?Path\b")
ALWAYS = {"remove-item", "ri", "rm", "del", "erase", "rd", "rmdir", "move-item", "mi", "mv", "move",
          "rename-item", "rni", "ren", "clear-item", "cli"}
WITH_FORCE = {"new-item", "ni", "copy-item", "cpi", "cp", "copy", "set-item", "si"}
DOTNET = {"deletesubkey", "deletesubkeytree", "deletevalue"}
REG_EXE_SAFE = {"query", "export", "compare"}


def parse(source: bytes):
    return PARSER.parse(source)


def _walk(node):
    yield node
    for child in node.children:
        yield from _walk(child)


def _var(node) -> str | None:
    for n in _walk(node):
        if n.type == "variable":
            return n.text.decode().lower()
    return None


def _tainted_variables(root) -> set[str]:
    """Variables that may hold a registry path or key (fixpoint over assignments and foreach)."""
    edges = []
    for n in _walk(root):
        if n.type == "assignment_expression":
            left = n.child_by_field_name("left") or n.children[0]
            edges.append((_var(left), n.children[-1].text.decode()))
        elif n.type == "foreach_statement":
            loop = next((c for c in n.children if c.type == "variable"), None)
            coll = next((c for c in n.children if c.type == "pipeline"), None)
            if loop is not None and coll is not None:
                edges.append((loop.text.decode().lower(), coll.text.decode()))
    tainted: set[str] = set()
    changed = True
    while changed:
        changed = False
        for var, rhs in edges:
            if var and var not in tainted and _registryish(rhs, tainted):
                tainted.add(var)
                changed = True
    return tainted


def _registryish(text: str, tainted: set[str]) -> bool:
    if REGISTRY.search(text):
        return True
    return any(re.search(re.escape(v) + r"(?![\w:])", text, re.I) for v in tainted)


def registry_hazards(source: bytes) -> list[str]:
    """Commands in *source* that can delete or recreate an existing registry key."""
    tree = parse(source)
    tainted = _tainted_variables(tree.root_node)
    found = []
    for n in _walk(tree.root_node):
        if n.type == "command":
            name_node = n.child_by_field_name("command_name") or next(
                (c for c in n.children if c.type in ("command_name", "command_name_expr")), None)
            if name_node is None:
                continue
            name = name_node.text.decode().strip("'\"").lower()
            name = name[:-4] if name.endswith(".exe") else name
            args = "".join(c.text.decode() for c in n.children if c.type == "command_elements")
            line = n.start_point[0] + 1
            if name == "reg":
                verb = args.split()[0].lower() if args.split() else ""
                if verb not in REG_EXE_SAFE:
                    found.append(f"line {line}: reg {verb}")
                continue
            force = re.search(r"(?i)(^|\s)-Force\b", args) is not None
            if name in ALWAYS or (name in WITH_FORCE and force):
                upstream = ""
                if n.parent is not None and n.parent.type == "pipeline_chain":
                    upstream = "".join(c.text.decode() for c in n.parent.children if c.end_byte <= n.start_byte)
                if _registryish(args, tainted) or _registryish(upstream, tainted):
                    found.append(f"line {line}: {n.text.decode().strip()}")
        elif n.type == "member_name" and n.text.decode().lower() in DOTNET:
            found.append(f"line {n.start_point[0] + 1}: .{n.text.decode()}()")
    return found


# --- the detector itself -------------------------------------------------------------------
OLD_INSTALLER = rb"""
$officeKeys = Get-ChildItem 'HKCU:\Software\Microsoft\Office' -ErrorAction SilentlyContinue |
    Where-Object { $_.PSChildName -match '^\d+\.\d+$' -and (Test-Path (Join-Path $_.PSPath 'Excel')) }
foreach ($k in $officeKeys) {
    $sec = Join-Path $k.PSPath 'Excel\Security'
    New-Item -Path $sec -Force | Out-Null
    Set-ItemProperty -Path $sec -Name AccessVBOM -Value 1 -Type DWord
}
"""
HAZARDS = [
    OLD_INSTALLER,
    rb"New-Item -Path 'HKCU:\Software\Microsoft\Office\16.0\Excel\Security' -Force",
    rb"$p = 'HKCU:\Software\X'; $q = Join-Path $p 'Y'; ni $q -Force",
    rb"Remove-Item -Recurse HKCU:\Software\Microsoft\Office\16.0\Excel\Security",
    rb"Get-ChildItem HKLM:\SOFTWARE\Vendor | Remove-Item -Recurse",
    rb"Rename-Item -Path 'Registry::HKEY_CURRENT_USER\Software\X' -NewName Y",
    rb"Clear-Item -Path HKCU:\Software\X",
    rb"[Microsoft.Win32.Registry]::CurrentUser.DeleteSubKeyTree('Software\X')",
    rb"reg.exe delete HKCU\Software\X /f",
    rb"& reg add HKCU\Software\X /v AccessVBOM /t REG_DWORD /d 1 /f",
]
SAFE = [
    rb"New-Item -ItemType Directory -Force -Path (Join-Path $env:LOCALAPPDATA 'xl_addin') | Out-Null",
    rb"$Venv = Join-Path $env:LOCALAPPDATA 'xl_addin\venv'; Remove-Item -Recurse -Force -Path $Venv",
    rb"Get-ItemProperty -Path 'HKCU:\Software\X' -Name AccessVBOM -ErrorAction SilentlyContinue",
    rb"reg query HKCU\Software\X",
]


@pytest.mark.parametrize("snippet", HAZARDS)
def test_detector_flags_commands_that_delete_or_recreate_a_key(snippet):
    assert not parse(snippet).root_node.has_error, snippet
    assert registry_hazards(snippet), snippet


@pytest.mark.parametrize("snippet", SAFE)
def test_detector_leaves_files_and_reads_alone(snippet):
    assert not parse(snippet).root_node.has_error, snippet
    assert registry_hazards(snippet) == []


def test_a_syntax_error_is_seen():
    assert parse(b"if ($x -eq 1) { Write-Host 'a' ").root_node.has_error
    assert parse(b"$a = @(1, 2").root_node.has_error


# --- the shipped scripts -----------------------------------------------------------------------
SCRIPTS = sorted(INSTALL.glob("*.ps1"))


def test_there_are_scripts_to_check():
    assert {p.name for p in SCRIPTS} >= {"install.ps1", "uninstall.ps1"}


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_script_parses_and_cannot_delete_or_recreate_a_registry_key(path):
    tree = parse(path.read_bytes())
    errors = [n for n in _walk(tree.root_node) if n.type == "ERROR" or n.is_missing]
    assert not tree.root_node.has_error, [f"line {n.start_point[0] + 1}: {n.text.decode()[:60]}" for n in errors]
    assert registry_hazards(path.read_bytes()) == []


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_script_is_thin_no_registry_no_excel_settings(path):
    """The registry and every Excel setting belong to `lx-addin install` (Python, winreg)."""
    code = re.sub(rb"<#.*?#>", b"", path.read_bytes(), flags=re.S)
    code = b"\n".join(line for line in code.splitlines() if not line.lstrip().startswith(b"#"))
    assert not REGISTRY.search(code.decode()), "registry access belongs in xl_addin.vbom"
    for word in (b"ItemProperty", b"AccessVBOM", b"xlwings.exe", b"XLSTART"):
        assert word not in code, word


def test_installer_asks_python_first_and_then_calls_lx_addin_install_with_its_flags():
    src = (INSTALL / "install.ps1").read_text()
    preflight, venv, lx = (src.index("xl_addin.preflight install"), src.index("'-m', 'venv'"),
                           src.index("Invoke-Checked $LxAddin"))
    assert preflight < venv < lx  # Excel closed and the folder decided before anything is created
    for switch, flag in (("$TrustVBA", "--trust-vba"), ("$NoFormulas", "--no-udfs"), ("$NoToken", "--no-token")):
        assert re.search(re.escape(f"if ({switch}) {{ $installArgs += '{flag}' }}"), src), flag


def test_uninstaller_removes_the_environment_only_after_lx_addin_uninstall_succeeded():
    src = (INSTALL / "uninstall.ps1").read_text()
    run, check, remove = (src.index("& $LxAddin @uninstallArgs"), src.index("if ($LASTEXITCODE -ne 0) { exit 1 }"),
                          src.index("Remove-Item -Recurse"))
    assert run < check < remove
    assert "'xl_addin'" in src and "'venv'" in src and "$env:LOCALAPPDATA" in src


def test_uninstaller_looks_where_python_puts_the_environment():
    """uninstall.ps1 must find the environment without Python's help: the same folder as env_dir."""
    from pathlib import Path

    from xl_addin.install_paths import env_dir

    src = (INSTALL / "uninstall.ps1").read_text()
    app = re.search(r"\$AppDir = Join-Path \$env:LOCALAPPDATA '([^']+)'", src).group(1)
    venv = re.search(r"\$Venv = Join-Path \$AppDir '([^']+)'", src).group(1)
    local = "/c/Users/me/AppData/Local"
    assert env_dir(Path.home(), "windows", {"LOCALAPPDATA": local}) == Path(local) / app / venv


PATH_COMMANDS = {"test-path", "remove-item", "get-childitem", "get-item", "copy-item", "move-item", "new-item",
                 "set-content", "get-content", "add-content", "out-file", "rename-item", "resolve-path"}


def _commands(tree):
    for n in _walk(tree.root_node):
        if n.type == "command":
            name_node = n.child_by_field_name("command_name") or next(
                (c for c in n.children if c.type in ("command_name", "command_name_expr")), None)
            if name_node is not None:
                yield n, name_node.text.decode().lower()


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_paths_from_variables_are_literal(path):
    """-Path (and a bare first argument) treats [ ] * ? as wildcards: a user folder named "J[ane]" would make
    Test-Path say the environment is not there and the uninstall could never run. Paths that come from
    variables (user folders) must go through -LiteralPath."""
    tree = parse(path.read_bytes())
    bad = []
    for n, name in _commands(tree):
        if name not in PATH_COMMANDS:
            continue
        args = "".join(c.text.decode() for c in n.children if c.type == "command_elements")
        if "$" in args and not re.search(r"(?i)-LiteralPath\b", args):
            bad.append(f"line {n.start_point[0] + 1}: {n.text.decode().strip()}")
    assert not bad, bad


def test_the_literal_path_check_sees_a_wildcard_path():
    tree = parse(b"if (-not (Test-Path $LxAddin)) { exit 1 }\nRemove-Item -Recurse -Force -LiteralPath $Venv\n")
    found = [name for n, name in _commands(tree)]
    assert found == ["test-path", "remove-item"]
