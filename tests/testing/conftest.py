"""A fake on a hand-moved clock, and an in-process client to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from actions_scaleset.testing import FakeGitHub
from tests.support import FakeClock


@pytest.fixture
def fake(clock: FakeClock) -> FakeGitHub:
    return FakeGitHub(clock=clock, seed=7, poll_hold=0.02)


@pytest.fixture
async def http(fake: FakeGitHub) -> AsyncIterator[httpx.AsyncClient]:
    async with fake.http_client() as client:
        yield client
