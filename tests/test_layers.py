"""The package's import structure, read with ``ast`` (nothing is imported): no import runs back
up a layer, no cycle, and no module reaches into another module's private names.

The layers, bottom to top (the README's "For developers" draws the same):

1. vocabulary: exceptions, codes, fields, problems, dates, secret, messages, urls, version, watchlist
2. settings and secrets: config, credentials
3. adapters (I/O): records, cache, client, xlsx, excel_book, store, sandbox, install steps
4. the library: service, formula, layout, neighbours, refresh, freeze, templates, install
5. front ends: udfs, cli, demo, the package's ``main``
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "xl_addin"

#: (importer prefix, imported prefix) pairs that would run back up a layer
FORBIDDEN = [
    ("refresh", "udfs"),
    ("refresh", "cli"),
    ("service", "udfs"),
    ("install", "cli"),  # install, install_paths, install_record: every install module
    ("templates", "sandbox"),
    ("formula", "udfs"),
    ("layout", "refresh"),
    ("config", "credentials"),
    ("secret", "credentials"),
    ("messages", "credentials"),
]
#: modules no library module may import: the front ends
FRONT_ENDS = {"cli", "udfs", "demo", "__main__"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path  # "" is the package itself
    return out


MODULES = _modules()


def _resolve(importer: str, path: Path, node: ast.ImportFrom) -> str | None:
    """The package-relative module an ``from X import`` names, or None when it is not ours."""
    if node.level == 0:
        if not (node.module or "").startswith("xl_addin"):
            return None
        return (node.module or "").removeprefix("xl_addin").lstrip(".")
    package = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
    package = [p for p in package if p]
    base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str) -> dict[str, set[str]]:
    """{module ours it imports: the names it takes from it}, function-level imports included."""
    path = MODULES[name]
    out: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(name, path, node)
            if target is None:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                if sub in MODULES:  # `from . import cli`: the module itself
                    out.setdefault(sub, set())
                else:
                    out.setdefault(target, set()).add(alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("xl_addin"):
                    out.setdefault(alias.name.removeprefix("xl_addin").lstrip("."), set())
    out.pop(name, None)
    return out


GRAPH = {name: imports_of(name) for name in MODULES}


def _top(name: str) -> str:
    return name.split(".")[0]


def _matches(name: str, prefix: str) -> bool:
    return _top(name) == prefix or _top(name).startswith(prefix + "_")


@pytest.mark.parametrize("importer,imported", FORBIDDEN)
def test_no_import_runs_back_up_a_layer(importer, imported):
    bad = [(m, t) for m, targets in GRAPH.items() if _matches(m, importer)
           for t in targets if _matches(t, imported)]
    assert bad == [], f"{importer} must not import {imported}: {bad}"


def test_library_modules_do_not_import_the_front_ends():
    bad = [(m, t) for m, targets in GRAPH.items() if _top(m) not in FRONT_ENDS and m != ""
           for t in targets if _top(t) in FRONT_ENDS]
    assert bad == [], bad


def _cycle() -> list[str] | None:
    """One import cycle among our modules (the package's __init__ counts as the module ""), or None."""
    edges = {m: {t for t in targets if t in MODULES} for m, targets in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(MODULES):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_cycle():
    cycle = _cycle()
    assert cycle is None, " -> ".join(c or "xl_addin" for c in cycle)


def _defined_privates(tree: ast.Module) -> set[str]:
    """Every _name the module defines: functions, classes, variables, attributes it sets, slots."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ = ("_value", ...)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _foreign_module_aliases(tree: ast.Module) -> set[str]:
    """Names bound to modules that are not ours (``from lxml import etree``): their privates are their business."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if not a.name.startswith("xl_addin"):
                    out.add((a.asname or a.name).split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and not (node.module or "").startswith("xl_addin"):
            out.update(a.asname or a.name for a in node.names)
    return out


def private_reaches(name: str) -> list[str]:
    path = MODULES[name]
    tree = ast.parse(path.read_text("utf-8"))
    own = _defined_privates(tree)
    foreign = _foreign_module_aliases(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _resolve(name, path, node) is not None:
            found += [f"line {node.lineno}: from {'.' * node.level}{node.module or ''} import {a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            if isinstance(base, ast.Name) and (base.id in ("self", "cls") or base.id in foreign):
                continue
            if isinstance(base, ast.Name) and node.attr in own:  # another instance of this module's class
                continue
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_touches_another_modules_private_names(name):
    assert private_reaches(name) == []


def test_the_checks_catch_what_they_are_for(tmp_path):
    """The walker sees what it must: a back-up import, a cycle, a reach into a private name."""
    source = ("from .udfs import service\nfrom .service import _shared\nx = svc._memory\n"
              "class C:\n    def f(self):\n        self._client = 1\n        return self._client._token\n")
    tree = ast.parse(source)
    node = tree.body[0]
    assert _resolve("refresh", PACKAGE / "refresh.py", node) == "udfs"
    MODULES["_probe"] = tmp_path / "_probe.py"
    (tmp_path / "_probe.py").write_text(source)
    before = dict(GRAPH)
    try:
        assert private_reaches("_probe") == ["line 2: from .service import _shared", "line 3: svc._memory",
                                             "line 7: self._client._token"]
        GRAPH["_probe"] = imports_of("_probe")
        assert set(GRAPH["_probe"]) == {"udfs", "service"}
        GRAPH["service"] = {**GRAPH["service"], "_probe": set()}
        assert _cycle() is not None
    finally:
        MODULES.pop("_probe")
        GRAPH.clear()
        GRAPH.update(before)
