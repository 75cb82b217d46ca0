"""The reference listener's scaling rules (examples/listener/scaler.py), in-process against FakeGitHub.

The provisioner here is a test double that records what it was asked and lets a test
make compute fail or vanish; the registrations are real ones in the fake.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import anyio
import pytest
from examples.listener.provisioner import NewRunner, ProvisionerError, RunnerHandle
from examples.listener.scaler import Ledger, ProvisioningScaler
from examples.listener.settings import ScaleSetSettings

import actions_scaleset as asc
from actions_scaleset.testing import FakeGitHub

pytestmark = pytest.mark.anyio

QUICK = asc.RetryPolicy(max_attempts=1_000_000, initial_delay=0.01, max_delay=0.02, jitter=0.0)


class Machines:
    """A provisioner double: 'compute' is an entry in `alive`."""

    def __init__(self, *, fail_starts: int = 0, adopt: Sequence[RunnerHandle] = ()) -> None:
        self.fail_starts = fail_starts
        self.to_adopt = list(adopt)
        self.alive: dict[str, RunnerHandle] = {h.runner_name: h for h in adopt}
        self.started: list[NewRunner] = []
        self.stopped: list[str] = []
        self.gate: anyio.Event | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass

    async def adopt(self) -> Sequence[RunnerHandle]:
        return list(self.to_adopt)

    async def start(self, runner: NewRunner) -> RunnerHandle:
        self.started.append(runner)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_starts:
            self.fail_starts -= 1
            raise ProvisionerError("no capacity in the zone")
        handle = RunnerHandle(runner.name, runner.id, f"vm-{next(self._ids)}")
        self.alive[runner.name] = handle
        return handle

    async def stop(self, handle: RunnerHandle) -> None:
        self.alive.pop(handle.runner_name, None)
        self.stopped.append(handle.runner_name)

    async def running(self) -> Sequence[RunnerHandle]:
        return list(self.alive.values())


@pytest.fixture
async def client() -> AsyncIterator[tuple[FakeGitHub, asc.ScaleSetClient]]:
    fake = FakeGitHub()
    async with (
        fake.http_client() as http,
        asc.ScaleSetClient(fake.config_url("acme"), fake.pat(), http_client=http) as client,
    ):
        yield fake, client


async def make_scaler(
    client: asc.ScaleSetClient, machines: Machines, state: Path, name: str = "linux"
) -> ProvisioningScaler:
    scale_set = await client.ensure_scale_set(name)
    return ProvisioningScaler(
        client,
        ScaleSetSettings(name, max_runners=10),
        machines,
        lambda: scale_set.id,
        Ledger(state / f"{name}.json"),
        start_backoff=QUICK,
    )


async def three_runners_one_busy(
    client: asc.ScaleSetClient, machines: Machines, state: Path
) -> tuple[ProvisioningScaler, str]:
    """A scaler with three runners up, the first of them running a job; and that runner's name."""
    scaler = await make_scaler(client, machines, state)
    await scaler.handle_desired_runner_count(3)
    await scaler.reconcile()
    busy = next(iter(machines.alive))
    await scaler.handle_job_started(asc.JobStarted(runner_request_id=1, runner_name=busy, runner_id=1))
    return scaler, busy


async def until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110 - polling state nothing signals
            await anyio.sleep(0.01)


def registered(fake: FakeGitHub) -> set[str]:
    return {runner.name for runner in fake.snapshot().runners}


def ledger(state: Path, name: str = "linux") -> dict[str, int]:
    data: dict[str, int] = json.loads((state / f"{name}.json").read_text())
    return data


async def test_it_provisions_each_need_once_counting_runners_in_flight(
    client: tuple[FakeGitHub, asc.ScaleSetClient], tmp_path: Path
) -> None:
    fake, scale_set_client = client
    machines = Machines()
    machines.gate = anyio.Event()  # every start hangs until released
    scaler = await make_scaler(scale_set_client, machines, tmp_path)
    await scaler.handle_desired_runner_count(3)
    with anyio.fail_after(10):
        await reconcile_twice_while_starting(scaler, machines)
    await scaler.reconcile()
    assert len(machines.started) == 3
    assert len(machines.alive) == 3
    assert registered(fake) == set(machines.alive)
    assert set(ledger(tmp_path)) == set(machines.alive)


async def reconcile_twice_while_starting(scaler: ProvisioningScaler, machines: Machines) -> None:
    assert machines.gate is not None
    async with anyio.create_task_group() as tg:
        tg.start_soon(scaler.reconcile)
        await until(lambda: len(machines.started) == 3)
        await scaler.handle_desired_runner_count(3)  # the same need again, while the starts are in flight
        await scaler.reconcile()
        machines.gate.set()


async def test_it_scales_down_idle_runners_only_deregistering_before_stopping(
    client: tuple[FakeGitHub, asc.ScaleSetClient], tmp_path: Path
) -> None:
    fake, scale_set_client = client
    machines = Machines()
    scaler, busy = await three_runners_one_busy(scale_set_client, machines, tmp_path)
    await scaler.handle_desired_runner_count(0)
    await scaler.reconcile()
    assert set(machines.alive) == {busy}
    assert busy not in machines.stopped
    assert registered(fake) == {busy}
    assert set(ledger(tmp_path)) == {busy}


async def test_compute_that_exits_before_taking_a_job_has_its_registration_removed(
    client: tuple[FakeGitHub, asc.ScaleSetClient], tmp_path: Path
) -> None:
    fake, scale_set_client = client
    machines = Machines()
    scaler = await make_scaler(scale_set_client, machines, tmp_path)
    await scaler.handle_desired_runner_count(1)
    await scaler.reconcile()
    (crashed,) = machines.alive
    del machines.alive[crashed]  # the VM died at boot
    await scaler.reconcile()
    assert crashed not in registered(fake)
    assert crashed not in ledger(tmp_path)
    assert len(machines.alive) == 1  # and a new one took its place
    assert registered(fake) == set(machines.alive)


async def test_failed_starts_are_counted_taken_back_and_retried_with_backoff(
    client: tuple[FakeGitHub, asc.ScaleSetClient], tmp_path: Path
) -> None:
    fake, scale_set_client = client
    machines = Machines(fail_starts=2)
    scaler = await make_scaler(scale_set_client, machines, tmp_path)
    await scaler.handle_desired_runner_count(2)
    with anyio.fail_after(10):
        while len(machines.alive) < 2:
            await scaler.reconcile()
            await anyio.sleep(0.01)
    assert scaler.start_failures == 2
    assert len(machines.started) == 4
    assert registered(fake) == set(machines.alive)  # the failed starts' registrations were removed
    assert set(ledger(tmp_path)) == set(machines.alive)


async def test_a_failed_start_waits_out_its_backoff(
    client: tuple[FakeGitHub, asc.ScaleSetClient], tmp_path: Path
) -> None:
    _, scale_set_client = client
    machines = Machines(fail_starts=1)
    scaler = await make_scaler(scale_set_client, machines, tmp_path)
    scaler.start_backoff = asc.RetryPolicy(max_attempts=10, initial_delay=60.0, max_delay=60.0, jitter=0.0)
    await scaler.handle_desired_runner_count(1)
    await scaler.reconcile()
    await scaler.reconcile()
    assert len(machines.started) == 1  # no hot loop against a failing provisioner


async def test_prepare_adopts_running_compute_and_removes_orphaned_registrations(
    client: tuple[FakeGitHub, asc.ScaleSetClient], tmp_path: Path
) -> None:
    fake, scale_set_client = client
    scale_set = await scale_set_client.ensure_scale_set("linux")
    kept = await scale_set_client.generate_jit_config(scale_set.id, name="linux-kept")
    orphan = await scale_set_client.generate_jit_config(scale_set.id, name="linux-orphan")
    (tmp_path / "linux.json").write_text(
        json.dumps({"linux-kept": kept.runner.id, "linux-orphan": orphan.runner.id})
    )
    machines = Machines(adopt=[RunnerHandle("linux-kept", kept.runner.id, "vm-old")])
    scaler = await make_scaler(scale_set_client, machines, tmp_path)
    await scaler.prepare()
    assert registered(fake) == {"linux-kept"}
    assert ledger(tmp_path) == {"linux-kept": kept.runner.id}
    await scaler.handle_desired_runner_count(1)
    await scaler.reconcile()
    assert machines.started == []  # the adopted runner counts


async def test_shutdown_removes_idle_runners_and_leaves_busy_ones(
    client: tuple[FakeGitHub, asc.ScaleSetClient], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake, scale_set_client = client
    machines = Machines()
    scaler, busy = await three_runners_one_busy(scale_set_client, machines, tmp_path)
    await scaler.shutdown()
    assert set(machines.alive) == {busy}
    assert registered(fake) == {busy}
    assert f"runner {busy} is running a job; leaving it to finish" in caplog.text


async def test_an_unreadable_ledger_is_kept_aside_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "linux.json"
    path.write_text("{not json")
    assert Ledger(path).load() == {}
    assert (tmp_path / "linux.unreadable").read_text() == "{not json"


async def test_many_starts_failing_at_once_are_one_round_of_backoff_not_many(
    client: tuple[FakeGitHub, asc.ScaleSetClient], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, scale_set_client = client
    machines = Machines(fail_starts=5)
    scaler = await make_scaler(scale_set_client, machines, tmp_path)
    scaler.start_backoff = asc.RetryPolicy(max_attempts=100, initial_delay=10.0, max_delay=300.0, jitter=0.0)
    await scaler.handle_desired_runner_count(5)
    await scaler.reconcile()
    assert scaler.start_failures == 5
    assert "5 starts failed; starting again in 10 s (1 rounds failed in a row)" in caplog.text


async def test_nothing_starts_while_the_scale_set_is_being_recreated(
    client: tuple[FakeGitHub, asc.ScaleSetClient], tmp_path: Path
) -> None:
    _, scale_set_client = client
    machines = Machines()
    scaler = await make_scaler(scale_set_client, machines, tmp_path)
    scaler.scale_set_id = lambda: None
    await scaler.handle_desired_runner_count(2)
    await scaler.reconcile()
    assert machines.started == []
    assert scaler.start_failures == 0
