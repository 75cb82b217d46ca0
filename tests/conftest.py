"""Every async test runs on asyncio and on trio."""

from __future__ import annotations

import pytest

from tests.support import FakeClock


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
