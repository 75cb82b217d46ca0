"""The many-scale-sets benchmark (`python -m benchmarks`, issue 13) still runs: 5 sets, briefly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("hypercorn")


def test_many_sets_benchmark_runs_at_a_tiny_size() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.many_sets", "--sets", "5", "--idle", "0.5", "--samples", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    assert "peak RSS (MB)" in table
    assert "polls parked" in table
    assert table.count("5 of 5") == 2  # the SDK and the baseline parked every poll
    assert "pickup p50, 1 set alone (ms)" in table
    assert "> " not in table  # no pickup timed out
