"""The package's layers: each folder's ``__init__`` states what it may import, and every import obeys it.

The rule is read from the line ``Layer rule: imports only a, b.`` (or ``imports nothing of lmhead.``) in
each layer's docstring, so the tree documents itself and this test holds the code to the words. Every
import counts: at module level, inside functions, and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "lmhead_cli"
# Bottom up. A layer's rule may name only layers below it, so no two layers can import each other.
ORDER = ["core", "formats", "quant", "checkpoint", "model", "inputs", "logits", "analyses", "render"]
TOP = {"cli", "__init__", "__main__"}  # the CLI and the public API sit above every layer
RULE = re.compile(r"^Layer rule: imports (?:only (?P<names>[a-z, ]+)|nothing of lmhead)\.$", re.MULTILINE)


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every lmhead module ``path`` imports, as a dotted name below the package ('' is the package itself)."""
    here = _module(path).split(".") if path.name == "__init__.py" else _module(path).split(".")[:-1]
    here = [p for p in here if p]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.removeprefix("lmhead_cli").lstrip(".") for a in node.names if a.name.split(".")[0] == "lmhead_cli"}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.split(".")[0] == "lmhead_cli":
                    found.add(node.module.removeprefix("lmhead_cli").lstrip("."))
                continue
            base = here[: len(here) - (node.level - 1)]
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            if node.module is None:  # `from . import x`: x may be a module
                for alias in node.names:
                    sub = ".".join([*base, alias.name])
                    is_module = (PACKAGE / f"{sub.replace('.', '/')}.py").exists() or (PACKAGE / sub.replace(".", "/")).is_dir()
                    found.add(sub if is_module else target)
            else:
                found.add(target)
    return found


def _layer(module: str) -> str:
    return module.split(".")[0]


def _rules() -> dict[str, set[str]]:
    rules = {}
    for layer in ORDER:
        doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text())) or ""
        match = RULE.search(doc)
        assert match, f"lmhead_cli/{layer}/__init__.py states no 'Layer rule: imports only ...' line"
        rules[layer] = {n.strip() for n in match["names"].split(",")} if match["names"] else set()
    return rules


def test_every_folder_is_a_layer_with_a_rule():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(ORDER)
    tops = {p.stem for p in PACKAGE.glob("*.py")}
    assert tops == TOP, "modules outside a layer: " + ", ".join(sorted(tops - TOP))
    for layer, allowed in _rules().items():
        below = set(ORDER[: ORDER.index(layer)])
        assert allowed <= below, f"{layer} may import {sorted(allowed - below)}, which are not below it"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_obey_the_layer_rules(path):
    module = _module(path)
    layer = _layer(module) if module else "__init__"
    if layer in TOP:
        return
    allowed = _rules()[layer] | {layer}
    for target in sorted(_imports(path)):
        assert _layer(target) in allowed, f"{module} imports {target or 'lmhead_cli'}: {layer} may import only {sorted(allowed)}"


def test_no_module_imports_another_that_imports_it_back():
    """No circle of imports between modules, also through imports inside functions."""
    graph = {_module(p): {t for t in _imports(p) if t != _module(p)} for p in PACKAGE.rglob("*.py")}

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    circles = [m for m in sorted(graph) if m in reach(m)]
    assert not circles, "modules on a circle of imports: " + ", ".join(circles)


def test_the_layer_init_files_import_nothing_eagerly():
    """A layer's __init__ is documentation (and lazy exports): importing a layer costs nothing. render's
    __init__ is the exception by design: it is the module that owns the console every renderer uses."""
    for layer in ORDER:
        if layer == "render":
            continue
        tree = ast.parse((PACKAGE / layer / "__init__.py").read_text())
        eager = [n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.level and n.module != "core.lazy"]
        assert not eager, f"lmhead_cli/{layer}/__init__.py imports {eager} eagerly"
