"""The reference listener (`python -m examples.listener`) as a user runs it: a subprocess.

FakeGitHub is served on loopback by the test; the listener's `command` provisioner runs
each runner as `python -m actions_scaleset.runner`, a real runner process that takes its
job and runs a shell command as its only step. Every process the listener starts carries
a marker in its environment, so the test can look for orphans in the process tree.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import Process

from actions_scaleset.testing import FakeGitHub

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
MARKER = "LISTENER_TEST_MARKER"


def runner_command(seconds: float) -> str:
    step = f"sleep {seconds}; echo hello from a runner"
    return shlex.join([sys.executable, "-m", "actions_scaleset.runner", "--exec", step])


def marked_processes(marker: str) -> dict[int, str]:
    """pid -> RUNNER_NAME of every live runner process (and its children) whose environment carries
    `marker` (from /proc). The listener carries it too, without a RUNNER_NAME."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        variables = dict(
            item.decode(errors="replace").partition("=")[::2] for item in environ if b"=" in item
        )
        if variables.get(MARKER) == marker and variables.get("RUNNER_NAME") and state != "Z":
            found[int(entry.name)] = variables.get("RUNNER_NAME", "")
    return found


class Run:
    """A listener subprocess, its log, and the fake it talks to."""

    def __init__(self, fake: FakeGitHub, process: Process, log: Path, marker: str) -> None:
        self.fake = fake
        self.process = process
        self.log = log
        self.marker = marker

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def until(self, condition: Callable[[], bool], timeout: float = 60) -> None:
        with anyio.fail_after(timeout):
            while not condition():
                assert self.process.returncode is None, f"the listener exited early:\n{self.text()}"
                await anyio.sleep(0.05)

    async def metrics_port(self) -> int:
        await self.until(lambda: "metrics on http://" in self.text())
        match = re.search(r"metrics on http://[\d.]+:(\d+)/metrics", self.text())
        assert match is not None
        return int(match.group(1))

    async def terminate(self, timeout: float) -> tuple[int, float]:
        """SIGTERM; the exit code and how long it took."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(timeout):
            code = await self.process.wait()
        return code, time.monotonic() - began

    def completed(self) -> int:
        return sum(1 for job in self.fake.snapshot().jobs if job.state.value == "completed")

    def running(self) -> int:
        return sum(1 for job in self.fake.snapshot().jobs if job.state.value == "running")


@asynccontextmanager
async def listener(
    tmp_path: Path, args: list[str], *, jobs: Mapping[str, int], env: Mapping[str, str] | None = None
) -> AsyncIterator[Run]:
    """Serve a fake with `jobs` queued per label, run the listener against it; kill what is left after."""
    fake = FakeGitHub()
    marker = uuid.uuid4().hex
    async with fake.serve():
        for label, count in jobs.items():
            for index in range(count):
                fake.enqueue_job(labels=[label], repository="acme/app", display_name=f"{label} #{index + 1}")
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "GITHUB_TOKEN": fake.pat().token.get_secret_value(),
            "GITHUB_CONFIG_URL": fake.config_url("acme"),
            MARKER: marker,
            **(env or {}),
        }
        log = tmp_path / "listener.log"
        command = [sys.executable, "-m", "examples.listener", "--state-dir", str(tmp_path / "state"), *args]
        with log.open("wb") as sink:
            process = await anyio.open_process(command, cwd=ROOT, env=environment, stdout=sink, stderr=sink)
        try:
            yield Run(fake, process, log, marker)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            for pid in marked_processes(marker):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


async def scrape(port: int) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{port}/metrics")).text


async def scrape_until(port: int, counted: Callable[[str], bool], timeout: float = 30) -> str:
    """Scrape until `counted` holds: the fake finishes a job before its JobCompleted message
    reaches the listener, so the listener's counters may lag the fake's state a little."""
    with anyio.fail_after(timeout):
        while True:
            metrics = await scrape(port)
            if counted(metrics):
                return metrics
            await anyio.sleep(0.1)


def sample(metrics: str, metric: str, **labels: str) -> float:
    """The sum of `metric`'s samples whose labels include `labels`."""
    total = 0.0
    for line in metrics.splitlines():
        match = re.fullmatch(rf"{metric}(?:\{{(.*)\}})? (\S+)", line)
        if match is None:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(have.get(key) == value for key, value in labels.items()):
            total += float(match.group(2))
    return total


async def test_it_runs_every_job_in_a_runner_process_never_above_max_and_stops_clean(tmp_path: Path) -> None:
    args = ["--scale-set", "it-linux", "--max-runners", "2", "--runner-command", runner_command(0.5)]
    args += ["--metrics-addr", "127.0.0.1:0", "--shutdown-timeout", "10"]
    async with listener(tmp_path, args, jobs={"it-linux": 5}) as run:
        port = await run.metrics_port()
        most = 0

        def done() -> bool:
            nonlocal most
            most = max(most, len(run.fake.snapshot().runners))
            return run.completed() == 5

        await run.until(done, timeout=120)
        await run.until(lambda: not run.fake.snapshot().runners)
        metrics = await scrape_until(
            port,
            lambda m: (
                sample(m, "gha_completed_jobs_total") == 5 and sample(m, "gha_provisioner_stops_total") >= 5
            ),
        )
        code, _ = await run.terminate(timeout=15)
        assert code == 0, run.text()
        log = run.text()
        assert 1 <= most <= 2
        assert sample(metrics, "gha_provisioner_starts_total", result="success") >= 5
        assert sample(metrics, "gha_provisioner_starts_total", result="failure") == 0
        assert sample(metrics, "gha_provisioner_start_seconds_count") >= 5
        assert (
            sample(metrics, "gha_provisioner_stops_total", reason="failed_start") == 0
        )  # each exited after its job
        assert sample(metrics, "gha_completed_jobs_total", job_result="succeeded") == 5
        assert sample(metrics, "gha_max_runners", name="it-linux") == 2
        assert "scale_set=" not in metrics  # one scale set: ARC's labels only
        assert run.fake.snapshot().scale_sets[0].session_owner is None  # the session was deleted
        assert marked_processes(run.marker) == {}
        assert "Traceback" not in log
        assert not any("httpx" in line for line in log.splitlines())  # no per-request lines at info
        logs = sorted((tmp_path / "state" / "logs").glob("*.log"))
        assert len(logs) >= 5
        assert any("hello from a runner" in path.read_text() for path in logs)


async def test_sigterm_mid_burst_leaves_busy_runners_alone_and_removes_the_idle_ones(tmp_path: Path) -> None:
    args = ["--scale-set", "it-burst", "--min-runners", "1", "--max-runners", "4"]
    args += ["--runner-command", runner_command(20), "--shutdown-timeout", "10"]
    async with listener(tmp_path, args, jobs={"it-burst": 3}) as run:
        await run.until(lambda: run.running() == 3 and len(run.fake.snapshot().runners) == 4, timeout=90)
        await run.until(lambda: len(set(marked_processes(run.marker).values())) == 4)
        # The fake marks a runner busy before its JobStarted message reaches the listener; wait
        # until the listener has seen all three, or it would (rightly) try to retire one of them.
        await run.until(lambda: run.text().count("started on it-burst-") == 3)
        code, took = await run.terminate(timeout=20)
        assert code == 0, run.text()
        assert took < 12
        snapshot = run.fake.snapshot()
        busy = {runner.name for runner in snapshot.runners if runner.busy}
        assert len(busy) == 3
        assert {runner.name for runner in snapshot.runners} == busy  # the idle runner was deregistered
        assert snapshot.scale_sets[0].session_owner is None
        assert set(marked_processes(run.marker).values()) == busy  # the idle runner's process is gone
        log = run.text()
        for name in busy:
            assert f"runner {name} is running a job; leaving it to finish" in log
        assert "Traceback" not in log


async def test_a_second_signal_stops_at_once_still_deregistering_and_killing_idle_runners(
    tmp_path: Path,
) -> None:
    stubborn = "trap '' TERM; sleep 120"  # a runner that ignores SIGTERM
    args = [
        "--scale-set",
        "it-stubborn",
        "--min-runners",
        "2",
        "--runner-command",
        f"sh -c {shlex.quote(stubborn)}",
    ]
    async with listener(tmp_path, args, jobs={}) as run:
        await run.until(lambda: len(run.fake.snapshot().runners) == 2)
        await run.until(lambda: len(set(marked_processes(run.marker).values())) == 2)
        run.process.send_signal(signal.SIGTERM)
        await run.until(lambda: "received SIGTERM: stopping" in run.text())
        await anyio.sleep(0.5)  # into the graceful stop: SIGTERM sent, waiting on stubborn runners
        code, took = await run.terminate(timeout=10)  # the second signal
        assert code == 0, run.text()
        assert took < 5
        assert run.fake.snapshot().runners == ()
        assert marked_processes(run.marker) == {}
        assert "stopping at once" in run.text()


async def test_no_network_at_start_is_one_line_and_exit_1(tmp_path: Path) -> None:
    env = {"GITHUB_CONFIG_URL": "http://127.0.0.1:9/acme"}  # nothing listens on the discard port
    async with listener(tmp_path, ["--scale-set", "x", "--runner-command", "true"], jobs={}, env=env) as run:
        with anyio.fail_after(60):
            code = await run.process.wait()
        last = run.text().strip().splitlines()[-1]
        assert code == 1, run.text()
        assert last.startswith("listener: error: cannot start:")
        assert "ConnectError" in last
        assert "Traceback" not in run.text()


async def test_a_config_file_serves_two_scale_sets_with_labelled_metrics(tmp_path: Path) -> None:
    config = tmp_path / "listener.toml"
    config.write_text(
        f"""
runner_command = '''{runner_command(0.2)}'''
metrics_addr = "127.0.0.1:0"
max_runners = 2

[[scale_set]]
name = "it-a"

[[scale_set]]
name = "it-b"
labels = ["it-b", "arm64"]
max_runners = 1
"""
    )
    async with listener(tmp_path, ["--config", str(config)], jobs={"it-a": 2, "it-b": 2}) as run:
        port = await run.metrics_port()
        await run.until(lambda: run.completed() == 4, timeout=120)
        await run.until(lambda: not run.fake.snapshot().runners)
        metrics = await scrape_until(
            port,
            lambda m: all(sample(m, "gha_completed_jobs_total", scale_set=n) == 2 for n in ("it-a", "it-b")),
        )
        code, _ = await run.terminate(timeout=15)
        assert code == 0, run.text()
        for name in ("it-a", "it-b"):
            assert sample(metrics, "gha_provisioner_starts_total", result="success", scale_set=name) >= 2
            assert sample(metrics, "gha_completed_jobs_total", scale_set=name) == 2
        assert sample(metrics, "gha_max_runners", name="it-b", scale_set="it-b") == 1
        assert {s.name for s in run.fake.snapshot().scale_sets} == {"it-a", "it-b"}
        assert all(s.session_owner is None for s in run.fake.snapshot().scale_sets)


async def test_refused_credentials_exit_3_with_the_scope_to_grant(tmp_path: Path) -> None:
    args = ["--scale-set", "it-linux", "--runner-command", "true"]
    env: dict[str, Any] = {"GITHUB_TOKEN": "ghp_not_a_token_the_fake_knows"}
    async with listener(tmp_path, args, jobs={}, env=env) as run:
        with anyio.fail_after(60):
            code = await run.process.wait()
        lines = run.text().strip().splitlines()
        assert code == 3, run.text()
        assert lines[-1].startswith("listener: error: GitHub refused the credentials")
        assert "admin:org" in lines[-1]
        assert "Traceback" not in run.text()
        assert "ghp_not_a_token" not in run.text()
