"""Every async test runs on asyncio and on trio."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from tests.support import FakeClock

# Timing is not what the property tests assert: a busy CI machine must not fail them.
settings.register_profile("project", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("project")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
