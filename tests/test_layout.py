"""The package shows the system: few loose modules, sub-packages that say what they hold and what
they may import, no import circle, no module too long to read.

Imports are read with `ast` from every module, at any depth (a function-level or TYPE_CHECKING
import counts: it is a dependency all the same), so the tests hold without importing anything.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hamieks"
MAX_TOP_LEVEL_MODULES = 10
MAX_MODULE_LINES = 500
TOP_LEVEL = "top level"
# A top-level module imports only other top-level modules, except these (hamieks/__init__.py
# says why): cost prices the settings; cli loads the commands (by name, at run time).
TOP_LEVEL_MAY_ALSO_IMPORT = {"cost": {"config"}, "cli": {"commands"}}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
SUBPACKAGES = sorted(path.parent for path in PACKAGE.glob("*/__init__.py"))


def imported_modules(path: Path) -> Iterator[str]:
    """Every hamieks module `path` imports, wherever the import statement stands."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("hamieks"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in MODULES else node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("hamieks"))


GRAPH = {name: set(imported_modules(path)) - {name} for name, path in MODULES.items()}


def layer(module: str) -> str:
    """The sub-package a module belongs to, or TOP_LEVEL."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and MODULES[module].name == "__init__.py") else TOP_LEVEL


def may_import(package: Path) -> set[str]:
    docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8"))) or ""
    found = re.search(r"^May import: (.+?)\.?$", docstring, re.M)
    assert found, f"{package.name}/__init__.py: its docstring needs a 'May import: ...' line"
    return {item.strip() for item in found.group(1).split(",")}


def test_few_modules_loose_at_the_top():
    loose = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(loose) <= MAX_TOP_LEVEL_MODULES, loose


@pytest.mark.parametrize("package", SUBPACKAGES, ids=lambda p: p.name)
def test_every_subpackage_says_what_it_holds_and_may_import(package):
    docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8")))
    assert docstring and len(docstring.split()) >= 8, f"{package.name}/__init__.py needs a docstring saying what it holds"
    allowed = may_import(package)
    known = {TOP_LEVEL} | {p.name for p in SUBPACKAGES}
    assert allowed <= known, f"{package.name}: 'May import' names no such layer: {sorted(allowed - known)}"


def test_imports_follow_the_declared_layers():
    allowed = {package.name: may_import(package) | {package.name} for package in SUBPACKAGES}
    breaches = []
    for module, targets in GRAPH.items():
        source = layer(module)
        for target in targets:
            wanted = layer(target)
            if source == TOP_LEVEL:
                ok = wanted == TOP_LEVEL or wanted in TOP_LEVEL_MAY_ALSO_IMPORT.get(module.split(".")[-1], set())
            else:
                ok = wanted in allowed[source]
            if not ok:
                breaches.append(f"{module} imports {target} ({source} may not import {wanted})")
    assert not breaches, "\n".join(breaches)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_circle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_circle_finder_finds_a_circle(tmp_path):
    # The check above must be able to fail, and a function-level import counts.
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from hamieks.config import settings\n    import hamieks.cost\n")
    assert set(imported_modules(lazy)) == {"hamieks.config.settings", "hamieks.cost"}


def test_no_module_too_long_to_read():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, long
