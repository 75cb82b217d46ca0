"""A fresh clone stands on its own: no project file reaches outside the repository."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import tests
from tests import support

ROOT = Path(__file__).resolve().parents[1]
PROJECT_DIRS = ("src", "tests", "benchmarks", "examples", "docs", ".ci")
PROJECT_FILES = ("README.md", "noxfile.py", "mkdocs.yml", "pyproject.toml")
SKIPPED_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".hypothesis"}
# Built in pieces so that this file does not match itself.
OUTSIDE = "sha" + "red"
NEEDLES = ("../" + OUTSIDE, OUTSIDE + "/fixtures", OUTSIDE + "/spec")


def project_files() -> Iterator[Path]:
    for name in PROJECT_FILES:
        yield ROOT / name
    for folder in PROJECT_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and not SKIPPED_DIRS.intersection(path.relative_to(ROOT).parts):
                yield path


def inside_root(path: Path) -> bool:
    return path.resolve().is_relative_to(ROOT)


def test_no_project_file_points_at_a_folder_beside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {needle}"
        for path in project_files()
        for needle in NEEDLES
        if needle.encode() in path.read_bytes()
    ]
    assert offenders == []


def test_no_project_file_cites_the_spec_users_cannot_open() -> None:
    # users have docs/protocol.md and the peers' sources, not the spec the code was written from
    needle = ("spec " + "\u00a7").encode()
    offenders = [str(path.relative_to(ROOT)) for path in project_files() if needle in path.read_bytes()]
    assert offenders == []


def test_the_fixture_folders_are_inside_the_repository_and_hold_files() -> None:
    for folder in (support.FIXTURES, support.SCALESET_FIXTURES, support.RUNNER_FIXTURES):
        assert inside_root(folder), folder
        assert any(folder.iterdir()), folder


def test_every_path_a_test_module_defines_is_inside_the_repository() -> None:
    outside = []
    for module_info in pkgutil.walk_packages(tests.__path__, prefix="tests."):
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            values = value if isinstance(value, tuple | list) else (value,)
            outside += [
                f"{module_info.name}.{name} = {path}"
                for path in values
                if isinstance(path, Path) and not inside_root(path)
            ]
    assert outside == []
