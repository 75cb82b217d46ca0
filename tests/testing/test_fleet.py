"""RunnerFleet leaks no registration: a JIT config whose answer was lost is found by name and removed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

import actions_scaleset as asc
from actions_scaleset._http import HTTPCore
from actions_scaleset.testing import FakeGitHub, RunnerFleet

pytestmark = [
    pytest.mark.anyio,
    # 1024-bit runner keys keep JIT configs quick; the key size is not under test here
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]


@pytest.fixture
def github() -> FakeGitHub:
    return FakeGitHub(runner_key_size=1024, poll_hold=0.02)


@pytest.fixture
async def client(github: FakeGitHub) -> AsyncIterator[asc.ScaleSetClient]:
    async with (
        github.http_client() as http,
        asc.ScaleSetClient(github.config_url("acme"), github.pat(), http=HTTPCore(http)) as client,
    ):
        yield client


def runner_names(github: FakeGitHub) -> list[str]:
    return sorted(runner.name for runner in github.snapshot().runners)


@pytest.mark.parametrize(
    ("lost", "raised"),
    [
        ({"drop": True}, asc.NetworkError),
        ({"status": 502}, asc.ServerError),
        ({"malformed": True}, asc.InvalidResponseError),
    ],
    ids=["connection-dropped", "bad-gateway", "unreadable"],
)
async def test_a_registration_whose_answer_was_lost_is_removed_and_the_error_goes_on(
    github: FakeGitHub, client: asc.ScaleSetClient, lost: dict[str, Any], raised: type[Exception]
) -> None:
    scale_set = await client.ensure_scale_set("linux", labels=["linux"])
    github.faults.add(route="jit_config", after_processing=True, **lost)
    async with anyio.create_task_group() as tg:
        fleet = RunnerFleet(client, tg, scale_set_id=scale_set.id)
        with pytest.raises(raised):
            await fleet.handle_desired_runner_count(1)
        assert runner_names(github) == []  # runner-1 was registered, then removed
        assert fleet.live == 0
        assert fleet.removed == 1
        assert await fleet.handle_desired_runner_count(1) == 1
        assert runner_names(github) == ["runner-2"]
        await fleet.handle_desired_runner_count(0)
        tg.cancel_scope.cancel()
    assert runner_names(github) == []


async def test_a_refused_registration_leaves_the_runner_of_that_name_alone(
    github: FakeGitHub, client: asc.ScaleSetClient
) -> None:
    # A 409 says the name is taken, maybe by a runner that is not the fleet's: it must not be removed.
    scale_set = await client.ensure_scale_set("linux", labels=["linux"])
    await client.generate_jit_config(scale_set.id, name="runner-1")
    async with anyio.create_task_group() as tg:
        fleet = RunnerFleet(client, tg, scale_set_id=scale_set.id)
        with pytest.raises(asc.RunnerExistsError):
            await fleet.handle_desired_runner_count(1)
        tg.cancel_scope.cancel()
    assert runner_names(github) == ["runner-1"]
    assert fleet.removed == 0
