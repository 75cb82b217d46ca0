"""`nox -s tour` runs examples/tour.py, the offline tour of the SDK: it must keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOUR = Path(__file__).resolve().parents[2] / "examples" / "tour.py"


def test_the_offline_demo_runs_every_job_and_leaves_nothing_behind() -> None:
    result = subprocess.run(
        [sys.executable, str(TOUR)], capture_output=True, text=True, timeout=120, check=True
    )
    assert "12 jobs done, 0 runners left registered" in result.stdout
    assert "ScaleSetNotFoundError" in result.stdout
    assert "ghp_" not in result.stdout + result.stderr
