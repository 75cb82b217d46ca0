"""A start that fails answers with a typed error, and leaves nothing registered or running."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
import pytest
from examples.listener.provisioner import NewRunner, ProvisionerError, RunnerHandle

from actions_scaleset.testing import FakeGitHub

from .support import make_settings, running_api

pytestmark = pytest.mark.anyio


class Broken:
    """A provisioner whose compute fails in the way `mode` says."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.started: dict[str, RunnerHandle] = {}
        self.stopped: list[str] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass

    async def adopt(self) -> Sequence[RunnerHandle]:
        return []

    async def start(self, runner: NewRunner) -> RunnerHandle:
        if self.mode == "refuse":
            raise ProvisionerError("no capacity in zone b")
        handle = RunnerHandle(runner.name, runner.id, f"vm-{runner.name}")
        if self.mode == "hang":  # "runs", but its runner never connects
            self.started[runner.name] = handle
        return handle

    async def stop(self, handle: RunnerHandle) -> None:
        self.stopped.append(handle.runner_name)
        self.started.pop(handle.runner_name, None)

    async def running(self) -> Sequence[RunnerHandle]:
        return list(self.started.values())


@pytest.mark.parametrize(
    ("mode", "status", "code"),
    [("refuse", 502, "provisioner_failed"), ("exit", 502, "runner_exited"), ("hang", 504, "start_timeout")],
)
async def test_a_failed_start_is_taken_back(tmp_path: Path, mode: str, status: int, code: str) -> None:
    fake = FakeGitHub()
    broken = Broken(mode)

    def provisioner(http: httpx.AsyncClient) -> Broken:
        return broken

    async with running_api(
        fake, make_settings(fake, tmp_path, start_timeout=1.0), provisioner=provisioner
    ) as api:
        response = await api.create("doomed", repo="acme/app")
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
        assert fake.snapshot().runners == ()  # no orphan registration
        assert broken.started == {}
        status_now = (await api.client.get("/api/v1/runners/doomed/status")).json()
        assert status_now["status"] == "not_installed"
        assert "ACTIONS_RUNNER_INPUT_JITCONFIG" not in response.text
        # the name is free again
        assert (await api.create("doomed", repo="acme/app")).status_code == status


async def test_a_name_github_already_has_is_a_conflict(tmp_path: Path) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path)) as api:
        import actions_scaleset as asc

        async with (
            fake.http_client() as http,
            asc.ScaleSetClient(fake.config_url("acme/app"), auth=fake.pat(), http_client=http) as client,
        ):
            scale_set = await client.ensure_scale_set(
                "provisioner-api", labels=["self-hosted", "linux", "x64"]
            )
            await client.generate_jit_config(scale_set.id, name="taken")
        response = await api.create("taken", repo="acme/app")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "runner_exists"
        assert [runner.name for runner in fake.snapshot().runners] == ["taken"]  # someone else's: left alone


async def test_a_repository_not_allowed_is_refused(tmp_path: Path) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path, allowed_repos=("acme/*",))) as api:
        refused = await api.create("r1", repo="evil/app")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "repository_not_allowed"
        assert (await api.create("r2", repo="acme/app")).status_code == 201
