"""`python -m examples.listener --simulate [--chaos]`: the offline demo, end to end, and its helpers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from examples.listener.demo import plan
from examples.listener.view import Summary, percentile, sparkline, summary_text

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120


@pytest.fixture(scope="module")
def runs() -> Iterator[Mapping[str, subprocess.CompletedProcess[str]]]:
    """The plain and the chaos demo, run side by side (each takes about 20 s)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "LISTENER_"))}
    flags = {"plain": ["--simulate", "--jobs", "12"], "chaos": ["--simulate", "--chaos", "--jobs", "12"]}
    started = {
        name: subprocess.Popen(
            [sys.executable, "-m", "examples.listener", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in flags.items()
    }
    done = {}
    try:
        for name, process in started.items():
            stdout, stderr = process.communicate(timeout=TIMEOUT)
            done[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        yield done
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
                process.communicate()


def _number(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    assert found is not None, f"{pattern!r} not in:\n{text}"
    return int(found.group(1))


@pytest.mark.parametrize("name", ["plain", "chaos"])
def test_the_demo_completes_every_job_and_leaks_no_runner(
    runs: Mapping[str, subprocess.CompletedProcess[str]], name: str
) -> None:
    run = runs[name]
    assert run.returncode == 0, run.stdout + run.stderr[-4000:]
    assert "12 of 12 jobs completed" in run.stdout
    assert _number(r"runners leaked\s+(\d+)", run.stdout) == 0
    assert _number(r"API calls\s+(\d+)", run.stdout) > 0
    assert re.search(r"pickup latency\s+p50 \d+\.\d s, p95 \d+\.\d s", run.stdout)
    assert re.search(r"completed \d+/12", run.stdout), "no plain progress lines"
    assert "\x1b[" not in run.stdout, "a live view on a pipe"
    assert "Traceback" not in run.stderr


def test_the_plain_demo_injects_no_fault(runs: Mapping[str, subprocess.CompletedProcess[str]]) -> None:
    assert _number(r"faults survived\s+(\d+)", runs["plain"].stdout) == 0


def test_the_chaos_demo_survives_its_faults(runs: Mapping[str, subprocess.CompletedProcess[str]]) -> None:
    stdout = runs["chaos"].stdout
    assert _number(r"faults survived\s+(\d+)", stdout) >= 5
    for fault in ("409", "503", "dropped", "tokens expired", "scale set deleted"):
        assert fault in stdout.split("faults survived", 1)[1].splitlines()[0]


def test_the_plan_is_seeded_two_waves_well_under_a_minute() -> None:
    jobs = plan(40)
    assert jobs == plan(40)
    assert jobs != plan(40, seed=8)
    assert len(jobs) == 40
    assert [job.offset for job in jobs] == sorted(job.offset for job in jobs)
    assert all(0.5 <= job.offset <= 20 and 1.5 <= job.duration <= 4 for job in jobs)
    assert not any(6 < job.offset < 14 for job in jobs), "the lull between the waves"
    assert len(plan(1)) == 1


def test_sparkline() -> None:
    assert sparkline([]) == ""
    assert sparkline([0, 0, 0]) == "▁▁▁"
    assert sparkline(range(8)) == "▁▂▃▄▅▆▇█"
    assert sparkline([3, 3]) == "██"
    assert sparkline([0, 8, 0, 0], width=2) == "█▁", "each column is the largest of its share"
    assert len(sparkline(range(1000), width=40)) == 40


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([4.0], 95) == 4.0
    values = [float(n) for n in range(10, 0, -1)]  # order does not matter
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 5.5
    assert percentile(values, 95) == pytest.approx(9.55)
    assert percentile(values, 100) == 10.0


def _summary(**changes: object) -> Summary:
    values: dict[str, object] = {
        "total": 12,
        "completed": 12,
        "seconds": 20.0,
        "latencies": [0.2, 0.4, 1.0],
        "peak_runners": 5,
        "api_calls": 400,
        "start_failures": 0,
        "faults": [("503s on the message poll", 3), ("the scale set deleted", 1)],
        "leaked": 0,
        "depth": [0, 2, 1],
        "chaos": True,
    }
    return Summary(**{**values, **changes})  # type: ignore[arg-type]


def test_the_summary_says_what_happened() -> None:
    text = summary_text(_summary())
    assert "12 of 12 jobs completed in 20.0 s" in text
    assert "p50 0.4 s, p95 0.9 s" in text
    assert "faults survived  4: 503s on the message poll x3, the scale set deleted x1" in text
    assert "runners leaked   0" in text
    assert "FAILED" not in text
    assert "(no --chaos)" in summary_text(_summary(faults=[], chaos=False))


@pytest.mark.parametrize(("completed", "leaked"), [(11, 0), (12, 1)])
def test_the_summary_fails_on_a_job_not_done_or_a_runner_leaked(completed: int, leaked: int) -> None:
    summary = _summary(completed=completed, leaked=leaked)
    assert not summary.ok
    assert "FAILED" in summary_text(summary)
