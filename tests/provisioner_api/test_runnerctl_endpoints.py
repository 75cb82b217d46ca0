"""runnerctl's four routes, as its users call them, in-process against FakeGitHub."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from actions_scaleset.testing import FakeGitHub

from .support import LABELS, make_settings, running_api

pytestmark = pytest.mark.anyio


async def test_health_needs_no_token(tmp_path: Path) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path)) as api:
        response = await api.client.get("/health", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_a_runnerctl_create_answers_once_the_runner_is_online(tmp_path: Path) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path)) as api:
        response = await api.create(
            "ci-runner-1",
            repo="acme/product",
            labels="self-hosted,linux,x64,ci",
            ephemeral=True,
            daemonize=True,
        )
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["status"] == "running"
        assert created["name"] == "ci-runner-1"
        assert isinstance(created["id"], int)
        assert created["repository"] == "acme/product"
        assert sorted(created["labels"]) == sorted([*LABELS, "ci"])
        [runner] = fake.snapshot().runners
        assert (runner.name, runner.online, runner.scope) == ("ci-runner-1", True, "acme/product")

        status = (await api.client.get("/api/v1/runners/ci-runner-1/status")).json()
        assert status["status"] == "running"
        assert status["busy"] is False
        assert status["job"] is None
        assert status["ref"] == "task:ci-runner-1"


async def test_a_runnerctl_delete_removes_registration_and_compute(tmp_path: Path) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path)) as api:
        assert (await api.create("ci-runner-1", repo="acme/product")).status_code == 201
        response = await api.client.request(
            "DELETE", "/api/v1/runners/ci-runner-1", json={"repo": "acme/product"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "removed"
        assert fake.snapshot().runners == ()
        assert await api.service.provisioner.running() == []
        status = (await api.client.get("/api/v1/runners/ci-runner-1/status")).json()
        assert status == {"status": "not_installed", "name": "ci-runner-1"}


async def test_labels_may_be_a_list_and_scale_set_replaces_repo(tmp_path: Path) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path)) as api:
        response = await api.create("gpu-1", scale_set="gpu", labels=["gpu", "linux"])
        assert response.status_code == 201, response.text
        assert response.json()["scale_set"] == "gpu"
        assert response.json()["repository"] is None
        [runner] = fake.snapshot().runners
        assert runner.scope == "acme"
        assert sorted(runner.labels) == ["gpu", "linux"]
        assert (await api.client.delete("/api/v1/runners/gpu-1")).status_code == 200


async def test_the_default_scale_set_serves_a_request_without_repo(tmp_path: Path) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path)) as api:
        response = await api.create("plain-1")
        assert response.status_code == 201, response.text
        assert response.json()["scale_set"] == "provisioner-api"
        [scale_set] = fake.snapshot().scale_sets
        assert scale_set.name == "provisioner-api"


async def test_a_runner_that_took_a_job_is_busy_and_deleting_it_needs_force(tmp_path: Path) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path), job_seconds=30) as api:
        assert (await api.create("busy-1", repo="acme/app")).status_code == 201
        fake.enqueue_job(labels=LABELS, repository="acme/app", duration=30)
        await api.wait_for(lambda: api.service.status("busy-1")["busy"])
        status = (await api.client.get("/api/v1/runners/busy-1/status")).json()
        assert status["status"] == "running"
        assert isinstance(status["job"], int)

        refused = await api.client.delete("/api/v1/runners/busy-1")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "runner_busy"
        forced = await api.client.delete("/api/v1/runners/busy-1", params={"force": "true"})
        assert forced.status_code == 200, forced.text
        assert forced.json()["forced"] is True
        assert await api.service.provisioner.running() == []


async def test_concurrent_creates_of_one_name_start_one_runner(tmp_path: Path) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path)) as api:
        codes: list[int] = []

        async def create() -> None:
            codes.append((await api.create("twin", repo="acme/app")).status_code)

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(create)
        assert sorted(codes) == [201, 409, 409, 409, 409]
        assert [runner.name for runner in fake.snapshot().runners] == ["twin"]


async def test_a_second_create_of_a_live_name_is_a_conflict(tmp_path: Path) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path)) as api:
        assert (await api.create("one")).status_code == 201
        again = await api.create("one")
        assert again.status_code == 409
        assert again.json() == {
            "error": {"code": "runner_exists", "message": again.json()["error"]["message"]}
        }


async def test_deleting_an_unknown_runner_or_another_repos_is_404(tmp_path: Path) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path)) as api:
        assert (await api.create("mine", repo="acme/app")).status_code == 201
        unknown = await api.client.delete("/api/v1/runners/nobody")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "runner_not_found"
        other = await api.client.request("DELETE", "/api/v1/runners/mine", json={"repo": "acme/other"})
        assert other.status_code == 404
        assert [runner.name for runner in fake.snapshot().runners] == ["mine"]
