"""State survives a restart: runners the API started are adopted (or cleaned up), jobs kept."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
import pytest
from examples.listener.provisioner import NewRunner, RunnerHandle
from examples.provisioner_api.state import SCHEMA_VERSION, State, StateError

from actions_scaleset.testing import FakeGitHub

from .support import make_settings, running_api

pytestmark = pytest.mark.anyio


class Machines:
    """Compute that outlives the API (VMs, containers): here the fake plays each runner."""

    def __init__(self, fake: FakeGitHub) -> None:
        self.fake = fake
        self.vms: dict[str, RunnerHandle] = {}

    def __call__(self, http: httpx.AsyncClient) -> Machines:
        return self

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass  # the machines keep running

    async def adopt(self) -> Sequence[RunnerHandle]:
        return list(self.vms.values())

    async def start(self, runner: NewRunner) -> RunnerHandle:
        self.fake.start_runner(runner.jit_config)
        handle = RunnerHandle(runner.name, runner.id, f"vm-{runner.name}")
        self.vms[runner.name] = handle
        return handle

    async def stop(self, handle: RunnerHandle) -> None:
        self.vms.pop(handle.runner_name, None)

    async def running(self) -> Sequence[RunnerHandle]:
        return list(self.vms.values())


async def test_runners_are_adopted_after_a_restart_and_then_deleted_cleanly(tmp_path: Path) -> None:
    fake = FakeGitHub()
    machines = Machines(fake)
    settings = make_settings(fake, tmp_path)
    async with running_api(fake, settings, provisioner=machines) as api:
        for name in ("keep-1", "keep-2", "keep-3"):
            assert (await api.create(name, repo="acme/app")).status_code == 201
    # the server is gone; its machines and registrations are not
    assert sorted(runner.name for runner in fake.snapshot().runners) == ["keep-1", "keep-2", "keep-3"]

    async with running_api(fake, settings, provisioner=machines) as api:
        listed = (await api.client.get("/api/v1/runners")).json()["runners"]
        assert sorted(runner["name"] for runner in listed) == ["keep-1", "keep-2", "keep-3"]
        for name in ("keep-1", "keep-2", "keep-3"):
            status = (await api.client.get(f"/api/v1/runners/{name}/status")).json()
            assert status["status"] == "running"
            assert status["ref"] == f"vm-{name}"
            assert "adopted after a restart" in (await api.client.get(f"/api/v1/runners/{name}/logs")).text
        for name in ("keep-1", "keep-2", "keep-3"):
            assert (await api.client.delete(f"/api/v1/runners/{name}")).status_code == 200
    assert fake.snapshot().runners == ()
    assert machines.vms == {}


async def test_runners_whose_compute_died_with_the_server_are_deregistered_at_start(tmp_path: Path) -> None:
    fake = FakeGitHub()
    settings = make_settings(fake, tmp_path)
    async with running_api(fake, settings) as api:  # simulated runners live in the server's process
        for name in ("gone-1", "gone-2", "gone-3"):
            assert (await api.create(name, repo="acme/app")).status_code == 201
        api.service.check_interval = 3600.0  # "killed": nothing notices the runners stop
    assert len(fake.snapshot().runners) == 3  # registered, with nothing running them

    async with running_api(fake, settings) as api:
        assert fake.snapshot().runners == ()  # no orphan registration
        for name in ("gone-1", "gone-2", "gone-3"):
            status = (await api.client.get(f"/api/v1/runners/{name}/status")).json()
            assert (status["status"], status["state"]) == ("installed_not_running", "exited")
            assert (await api.client.delete(f"/api/v1/runners/{name}")).status_code == 200


async def test_jobs_survive_a_restart(tmp_path: Path) -> None:
    fake = FakeGitHub()
    settings = make_settings(fake, tmp_path)
    async with running_api(fake, settings, job_seconds=0.05) as api:
        assert (await api.create("j1", repo="acme/app")).status_code == 201
        fake.enqueue_job(labels=["self-hosted", "linux", "x64"], repository="acme/app", display_name="kept")
        await api.wait_for(lambda: api.service.counts().get("exited", 0) == 1)
    async with running_api(fake, settings) as api:
        jobs = (await api.client.get("/api/v1/jobs")).json()["jobs"]
        assert [(job["display_name"], job["result"]) for job in jobs] == [("kept", "succeeded")]


def test_a_state_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StateError, match="newer than this program"):
        State(path).open()


def test_a_file_that_is_not_sqlite_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_text("not a database" * 100)
    with pytest.raises(StateError) as caught:
        State(path).open()
    assert "\n" not in str(caught.value)
