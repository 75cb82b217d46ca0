"""examples/listener.py: the reference listener runs real runner processes, offline with --fake."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

LISTENER = Path(__file__).resolve().parents[2] / "examples" / "listener.py"


def test_the_reference_listener_runs_each_job_in_a_runner_process_and_cleans_up() -> None:
    result = subprocess.run(
        [sys.executable, str(LISTENER), "--fake", "--jobs", "3", "--max", "2", "--log-level", "WARNING"],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    assert "3 jobs completed, 0 runners left registered" in result.stdout
    assert "hello from a runner" in result.stdout + result.stderr
    assert "sig=REDACTED" in result.stderr or "sig=" not in result.stderr


def test_the_reference_listener_needs_a_url_or_fake() -> None:
    result = subprocess.run(
        [sys.executable, str(LISTENER)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "--url is required" in result.stderr


@pytest.mark.parametrize("env", [{}, {"GITHUB_APP_ID": "1"}])
def test_missing_credentials_say_which_variables_to_set(env: dict[str, str]) -> None:
    spec = importlib.util.spec_from_file_location("reference_listener", LISTENER)
    assert spec is not None
    assert spec.loader is not None
    listener = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(listener)
    with pytest.raises(SystemExit, match="GITHUB_TOKEN"):
        listener.credentials(env)
