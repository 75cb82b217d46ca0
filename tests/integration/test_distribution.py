"""`python -m build` makes a wheel and an sdist a user can install, and the wheel works on its own.

The build runs without isolation (hatchling comes with the `test` extra), and the wheel goes
into a fresh venv with `--no-deps`: its dependencies are borrowed from this interpreter's
site-packages through a `.pth` file, so the test needs no network. Directories listed in a
`.pth` file are added to `sys.path` as they are; the `.pth` files inside them (such as the
editable install of this checkout) are not processed, so only the wheel provides the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOUR = ROOT / "examples" / "tour.py"
PRINT_PURELIB = "import sysconfig; print(sysconfig.get_path('purelib'))"
PRINT_LOCATION = "import actions_scaleset; print(actions_scaleset.__file__)"


def run(*args: str | Path, cwd: Path, timeout: float = 120) -> str:
    # no PYTHONPATH or PYTHONHOME from the caller: the child sees only its own interpreter's paths
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    command = [str(arg) for arg in args]
    result = subprocess.run(
        command, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT, cwd=out)
    return out


@pytest.fixture(scope="module")
def wheel_names(dist: Path) -> list[str]:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


@pytest.fixture(scope="module")
def sdist_names(dist: Path) -> list[str]:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        # drop the "actions_scaleset-<version>/" folder every member sits in
        return [name.partition("/")[2] for name in archive.getnames()]


@pytest.fixture(scope="module")
def venv_python(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed, and this interpreter's packages for its dependencies."""
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", "--clear", venv, cwd=venv)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    (wheel,) = dist.glob("*.whl")
    pip = (sys.executable, "-m", "pip", "--python", python)
    run(*pip, "install", "--no-deps", "--no-index", wheel, cwd=venv)
    site_packages = Path(run(python, "-c", PRINT_PURELIB, cwd=venv).strip())
    borrowed = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    (site_packages / "_borrowed_dependencies.pth").write_text("\n".join(borrowed) + "\n", encoding="utf-8")
    return python


def test_the_wheel_holds_the_typing_marker(wheel_names: list[str]) -> None:
    assert "actions_scaleset/py.typed" in wheel_names


def test_the_wheel_holds_no_tests(wheel_names: list[str]) -> None:
    assert [name for name in wheel_names if name.startswith(("tests/", "benchmarks/"))] == []


def test_the_sdist_holds_the_typing_marker(sdist_names: list[str]) -> None:
    assert "src/actions_scaleset/py.typed" in sdist_names


def test_the_sdist_holds_no_tests_benchmarks_or_ci_scripts(sdist_names: list[str]) -> None:
    assert [name for name in sdist_names if name.startswith(("tests/", "benchmarks/", ".ci/"))] == []


def test_the_installed_wheel_is_imported_from_the_fresh_venv(venv_python: Path, tmp_path: Path) -> None:
    location = run(venv_python, "-c", PRINT_LOCATION, cwd=tmp_path)
    venv = venv_python.parents[1]
    assert Path(location.strip()).resolve().is_relative_to(venv.resolve())


def test_the_offline_tour_runs_on_the_installed_wheel(venv_python: Path, tmp_path: Path) -> None:
    shutil.copy(TOUR, tmp_path / "tour.py")
    output = run(venv_python, tmp_path / "tour.py", cwd=tmp_path)
    assert "12 jobs done, 0 runners left registered" in output
