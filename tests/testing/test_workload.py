"""Workloads and simulated runners: an autoscaler's whole loop against the fake, offline."""

from __future__ import annotations

import itertools

import attrs
import httpx
import pytest

from actions_scaleset.testing import FakeGitHub, JobState, Statistics, Workload
from tests.support import FakeClock
from tests.testing.wire import (
    acquire,
    bootstrap,
    create_scale_set,
    create_session,
    events,
    generate_jit,
    poll,
)

pytestmark = pytest.mark.anyio


def test_a_workload_plan_is_seeded() -> None:
    plan = Workload(
        labels=["linux"], repository="acme/app", jobs=5, rate=0.5, mean_duration=20, seed=3
    ).plan()
    again = Workload(labels="linux", repository="acme/app", jobs=5, rate=0.5, mean_duration=20, seed=3).plan()
    assert plan == again
    assert [p.offset for p in plan] == sorted(p.offset for p in plan)
    assert plan != Workload(labels=["linux"], repository="acme/app", jobs=5, rate=0.5, seed=4).plan()


def test_a_workload_refuses_a_zero_rate() -> None:
    with pytest.raises(ValueError, match="rate"):
        Workload(labels=["linux"], repository="acme/app", rate=0)


def assert_consistent(stats: Statistics) -> None:
    assert stats.total_assigned_jobs >= stats.total_running_jobs
    assert stats.total_busy_runners == stats.total_running_jobs
    assert stats.total_idle_runners == stats.total_registered_runners - stats.total_busy_runners
    assert min(attrs.astuple(stats)) >= 0


async def test_an_autoscaler_loop_runs_a_whole_workload(clock: FakeClock) -> None:
    fake = FakeGitHub(clock=clock, auto_start_runners=True, poll_hold=0.0, seed=1)
    jobs = fake.add_workload(
        Workload(labels=["linux"], repository="acme/app", jobs=8, rate=0.5, mean_duration=20, seed=9)
    )
    assert all(j.state is JobState.SCHEDULED for j in jobs)
    async with fake.http_client() as http:
        admin = await bootstrap(http, fake)
        await create_scale_set(http, admin, "linux")
        session = (await create_session(http, admin, 1)).json()
        last, started, names = 0, 0, (f"runner-{i}" for i in itertools.count())
        for _ in range(200):
            message = await poll(http, session, last=last, capacity=4)
            if message.status_code == 200:
                last = message.json()["messageId"]
                batch = events(message)
                available = [e["runnerRequestId"] for e in batch if e["messageType"] == "JobAvailable"]
                if available:
                    await acquire(http, admin, session, 1, available)
                stats = Statistics(**{_snake(k): v for k, v in message.json()["statistics"].items()})
                assert_consistent(stats)
                # a minimal scaler: one runner per assigned job without one
                for _ in range(stats.total_assigned_jobs - stats.total_registered_runners):
                    assert (await generate_jit(http, admin, 1, next(names))).status_code == 200
                    started += 1
            if all(fake.job(j.job_id).state is JobState.COMPLETED for j in jobs):
                break
            clock.now += 5
    assert {fake.job(j.job_id).result for j in jobs} == {"succeeded"}
    assert fake.statistics(1) == Statistics()
    assert started == 8


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


async def test_start_runner_brings_a_jit_runner_online(
    fake: FakeGitHub, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    admin = await bootstrap(http, fake)
    await create_scale_set(http, admin, "linux")
    session = (await create_session(http, admin, 1)).json()
    job = fake.enqueue_job(labels=["linux"], repository="acme/app", duration=30, conclusion="failed")
    await acquire(http, admin, session, 1, [job.runner_request_id])
    jit = (await generate_jit(http, admin, 1, "runner-1")).json()
    info = fake.start_runner(jit["encodedJITConfig"])
    assert (info.online, info.busy, info.job_id) == (True, True, job.job_id)
    assert fake.job(job.job_id).state is JobState.RUNNING
    clock.now += 30
    assert fake.job(job.job_id).result == "failed"
    assert fake.snapshot().runners == ()


async def test_the_snapshot_shows_jobs_runners_and_scale_sets(
    fake: FakeGitHub, http: httpx.AsyncClient
) -> None:
    admin = await bootstrap(http, fake)
    await create_scale_set(http, admin, "linux")
    await generate_jit(http, admin, 1, "runner-1")
    job = fake.enqueue_job(labels=["linux"], repository="acme/app")
    snapshot = fake.snapshot()
    assert snapshot.job(job.job_id).events == ("JobAvailable",)
    assert snapshot.jobs_in(JobState.AVAILABLE) == (snapshot.job(job.job_id),)
    assert [(r.name, r.scope, r.online) for r in snapshot.runners] == [("runner-1", "acme", False)]
    [scale_set] = snapshot.scale_sets
    assert (scale_set.name, scale_set.statistics.total_available_jobs) == ("linux", 1)


async def test_a_job_without_a_scale_set_waits_for_one(fake: FakeGitHub, http: httpx.AsyncClient) -> None:
    job = fake.enqueue_job(labels=["gpu"], repository="acme/app")
    assert fake.job(job.job_id).state is JobState.QUEUED
    admin = await bootstrap(http, fake)
    await create_scale_set(http, admin, "gpu")
    assert fake.job(job.job_id).state is JobState.AVAILABLE


async def test_a_repository_scale_set_wins_over_the_organizations(
    fake: FakeGitHub, http: httpx.AsyncClient
) -> None:
    org = await bootstrap(http, fake, "acme")
    await create_scale_set(http, org, "linux")
    repo = await bootstrap(http, fake, "acme/app")
    repo_set = await create_scale_set(http, repo, "linux")
    job = fake.enqueue_job(labels=["linux"], repository="acme/app")
    assert fake.job(job.job_id).scale_set_id == repo_set["id"]
