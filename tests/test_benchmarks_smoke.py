"""The benchmarks (`python -m benchmarks`, issue 16; many scale sets, issue 13) still run, at a
tiny size. Nothing here asserts a time: only that every figure runs and the report has its shape."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from benchmarks._harness import Row, Spread, interleave, markdown_table
from benchmarks.raw_listener import RawListener, admin_connection

import actions_scaleset as asc
from actions_scaleset.testing import FakeGitHub, JobState

ROOT = Path(__file__).resolve().parents[1]
CELL = re.compile(r"^[\d,]+(\.\d+)? \[[\d,]+(\.\d+)?\u2013[\d,]+(\.\d+)?\]$")
"""`median [min–max]`."""  # noqa: RUF001


def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]


def test_harness_rows_show_median_range_and_cost_ratio() -> None:
    assert Spread((3.0, 1.0, 2.0)).show(1) == "2.0 [1.0\u20133.0]"
    rate = Row("1 decode", "events/s", (50.0, 100.0), (100.0, 100.0), higher_is_better=True, target=2.0)
    assert rate.ratios == (2.0, 1.0)  # a rate's cost ratio is baseline ÷ SDK
    assert rate.met == "yes"
    time = Row("5 import time", "ms", (3.0, 3.0, 3.0), (1.0, 1.0, 1.0), target=1.0)
    assert time.ratio == 3.0
    assert time.met == "**no**"
    assert Row("x", "y", (1.0,), (1.0,)).met == ""  # no target, no verdict
    header, rule, *body = markdown_table([rate, time])
    assert header.count("|") == rule.count("|") == body[0].count("|") == 8


def test_interleaved_rounds_alternate_which_side_goes_first() -> None:
    calls: list[str] = []

    def side(name: str) -> float:
        calls.append(name)
        return 1.0

    sdk, baseline = interleave(4, lambda: side("sdk"), lambda: side("raw"))
    assert len(sdk) == len(baseline) == 4
    assert calls == ["sdk", "raw", "raw", "sdk", "sdk", "raw", "raw", "sdk"]


@pytest.mark.anyio
async def test_the_raw_baseline_keeps_the_queue_query_refreshes_on_401_and_deletes_its_session() -> None:
    fake = FakeGitHub(queue_url_query=True, poll_hold=0.05)
    pat = fake.pat()
    async with fake.http_client() as http:
        async with asc.ScaleSetClient(fake.config_url("acme"), pat, http_client=http) as client:
            made = await client.create_scale_set("raw-bench")  # its label is its name
        admin = await admin_connection(http, fake.config_url("acme"), pat.token.get_secret_value())
        acquired: list[int] = []
        listener = RawListener(http, admin, made.id, on_acquired=acquired.extend)

        async def acquired_count(count: int) -> None:
            with anyio.fail_after(10):
                while len(acquired) < count:  # noqa: ASYNC110 - a list the listener fills
                    await anyio.sleep(0.01)

        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.run)
            jobs = [fake.enqueue_job(labels=["raw-bench"], repository="acme/app") for _ in range(60)]
            await acquired_count(60)  # two messages: 50 events, then 10
            fake.expire_tokens("message_queue")
            jobs.append(fake.enqueue_job(labels=["raw-bench"], repository="acme/app"))
            await acquired_count(61)
            tg.cancel_scope.cancel()
    assert sorted(acquired) == sorted(job.runner_request_id for job in jobs)
    assert all(fake.job(job.job_id).state is not JobState.AVAILABLE for job in jobs)
    routes = [r.route for r in fake.requests]
    assert routes.count("session.create") == 1
    assert routes.count("session.refresh") == 1  # the 401 after the tokens expired
    assert routes.count("session.delete") == 1
    assert routes.count("message.delete") >= 3
    # the fake answers 401 to a queue call that dropped the URL's `?sessionId=…`: only the expiry did,
    # once, on whichever queue-token call came first (the poll in flight still had its message)
    refused = [r.route for r in fake.requests if r.status == 401]
    assert len(refused) == 1
    assert refused[0] in {"message", "acquire_jobs", "message.delete"}


@pytest.mark.usefixtures("hypercorn")
def test_every_figure_runs_at_a_tiny_size_and_writes_results(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    done = run(
        "benchmarks",
        "--only",
        "decode,burst,pickup,imports,runner",
        "--rounds",
        "2",
        "--jobs",
        "120",
        "--pickups",
        "4",
        "--round-time",
        "0.01",
        "--import-runs",
        "1",
        "--results",
        str(results),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = results.read_text(encoding="utf-8")
    for needle in (
        "# Benchmark results",
        "**Command:** `python -m benchmarks --only",
        "**Machine:**",
        "cores",
    ):
        assert needle in text
    for package in ("actions-scaleset", "httpx", "anyio", "attrs", "cattrs"):
        assert f"{package} " in text
    rows = table_rows(text)
    assert rows[0] == ["figure", "measure", "SDK", "baseline", "SDK ÷ baseline (cost)", "target", "met"]
    figures = {row[0] for row in rows[1:]}
    assert figures == {
        "1 decode",
        "2 listener burst",
        "3 pickup latency",
        "5 import time",
        "6 runner protocol",
    }
    for row in rows[1:]:
        assert len(row) == 7, row
        for cell in row[2:5]:
            assert CELL.match(cell), (row, cell)
    targets = {row[1]: row[5] for row in rows[1:]}
    assert "\u2264 2\u00d7" in targets["50-event message, events per CPU-second"]
    assert "\u2264 1.15\u00d7" in targets["listener-process CPU seconds per 1,000 jobs"]
    assert "Pooled over all 4 pickups per side" in text
    assert "120 jobs at once" in text
    assert "## Many scale sets" not in text  # not chosen
    assert "| 1 decode |" in done.stdout  # the table is printed too


@pytest.mark.usefixtures("hypercorn")
def test_many_sets_benchmark_runs_at_a_tiny_size() -> None:
    done = run("benchmarks.many_sets", "--sets", "5", "--idle", "0.5", "--samples", "3", timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    assert "peak RSS (MB)" in table
    assert "polls parked" in table
    assert table.count("5 of 5") == 2  # the SDK and the baseline parked every poll
    assert "pickup p50, 1 set alone (ms)" in table
    assert "> " not in table  # no pickup timed out


@pytest.fixture
def hypercorn() -> None:
    pytest.importorskip("hypercorn")
