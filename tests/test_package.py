"""The package surface: public names, lazy layers, typing marker, anyio only."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import actions_scaleset as asc

SRC = Path(asc.__file__).parent


@pytest.mark.parametrize("name", asc.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(asc, name) is not None


def test_star_import_gives_every_public_name() -> None:
    namespace: dict[str, object] = {}
    exec("from actions_scaleset import *", namespace)
    assert set(asc.__all__) <= set(namespace)


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = asc.Nope
    assert "ScaleSetClient" in dir(asc)


def test_importing_the_package_leaves_the_client_layers_unloaded() -> None:
    code = (
        "import sys, actions_scaleset as asc; "
        "assert 'actions_scaleset.listener' not in sys.modules; "
        "assert 'actions_scaleset.models' not in sys.modules; "
        "asc.ScaleSetClient; assert 'actions_scaleset.actions' in sys.modules; print('ok')"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        == "ok\n"
    )


def test_py_typed_ships() -> None:
    assert (SRC / "py.typed").exists()


def test_library_code_never_imports_asyncio() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            if any(name == "asyncio" or name.startswith("asyncio.") for name in names):
                offenders.append(str(path.relative_to(SRC)))
    assert offenders == []


def test_library_code_uses_relative_imports_only() -> None:
    # vendorable: the package can be copied under another name
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and (node.module or "").startswith("actions_scaleset")
            ):
                offenders.append(str(path.relative_to(SRC)))
            if isinstance(node, ast.Import) and any(
                a.name.startswith("actions_scaleset") for a in node.names
            ):
                offenders.append(str(path.relative_to(SRC)))
    assert offenders == []
