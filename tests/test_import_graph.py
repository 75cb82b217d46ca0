"""The package's modules import each other one way only: no circles, at import time or later."""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from pathlib import Path

import actions_scaleset

SRC = Path(actions_scaleset.__file__).parent
PACKAGE = "actions_scaleset"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)]
        target = ".".join([*base, node.module]) if node.module else ".".join(base)
    else:
        target = node.module or ""
    if not target.startswith(PACKAGE):
        return []
    # `from . import x` and `from .pkg import mod` may name submodules
    return [target, *(f"{target}.{alias.name}" for alias in node.names)]


class Imports(ast.NodeVisitor):
    """Every import that runs, at module level or inside a function; `if TYPE_CHECKING:` excluded."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.update(resolve(self.module, self.is_package, node))


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        visitor = Imports(name, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
        graph[name] = {target for target in visitor.found if target in paths and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], dict.fromkeys(graph, 0), []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state[nxt] == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif state[nxt] == 0:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if state[node] == 0:
            visit(node)
    return found


def without_packages(cycle: list[str]) -> bool:
    """A cycle through a package's `__init__` re-exporting its own submodules is how packages work."""
    return not any(a.startswith(b + ".") or b.startswith(a + ".") for a, b in itertools.pairwise(cycle))


def test_no_two_modules_import_each_other() -> None:
    assert [c for c in cycles(import_graph()) if without_packages(c)] == []


def test_the_session_layer_does_not_import_the_scale_set_client_at_run_time() -> None:
    assert "actions_scaleset.actions" not in import_graph()["actions_scaleset.session"]


def test_importing_the_listener_does_not_load_cattrs() -> None:
    # Issue 16: the converter is built on first use; the usual job messages never need it.
    statement = "import sys, actions_scaleset as a; a.Listener; print(sorted({'cattrs'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", statement], check=True, capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]"
