"""`fake.serve()` behaves like a library's context manager (issue 10, point 8), on asyncio and trio.

What the block raises comes out as itself, a cancelled block is absorbed by its cancel
scope, and the server's shutdown logs nothing, even with a request still being answered.
"""

from __future__ import annotations

import contextlib
import gc
import logging

import anyio
import httpx
import pytest

from actions_scaleset.testing import FakeGitHub

pytestmark = pytest.mark.anyio


class Boom(Exception):
    """What the code under test raises inside the block."""


def _noise(caplog: pytest.LogCaptureFixture) -> list[str]:
    gc.collect()  # "exception was never retrieved" is logged when the future is collected
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]


async def _raise_inside_serve(fake: FakeGitHub) -> None:
    async with fake.serve() as base_url, httpx.AsyncClient() as tcp:
        assert (await tcp.get(f"{base_url}/api/v3/nothing")).status_code == 404  # a live connection
        raise Boom("from the test")


async def test_an_exception_raised_in_the_block_comes_out_as_itself(fake: FakeGitHub) -> None:
    with anyio.fail_after(10), pytest.raises(Boom) as info:
        await _raise_inside_serve(fake)
    assert type(info.value) is Boom
    assert str(info.value) == "from the test"


async def test_leaving_the_block_by_an_exception_logs_no_shutdown_noise(
    fake: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with anyio.fail_after(10), contextlib.suppress(Boom, BaseExceptionGroup):
        await _raise_inside_serve(fake)
    assert _noise(caplog) == []


async def test_a_cancelled_block_is_absorbed_by_its_cancel_scope(fake: FakeGitHub) -> None:
    with anyio.fail_after(10), anyio.CancelScope() as scope:
        async with fake.serve() as base_url, httpx.AsyncClient() as tcp:
            await tcp.get(f"{base_url}/api/v3/nothing")
            scope.cancel()
            await anyio.sleep(5)
    assert scope.cancelled_caught
    assert fake.base_url == "http://fake-github.local"  # no longer served


async def test_a_request_still_answered_when_the_block_ends_is_cut_off_without_noise(
    fake: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    held = fake.faults.add(route="rest.user", delay=30, times=None)
    outcome: list[type[BaseException]] = []

    async def held_request(tcp: httpx.AsyncClient, base_url: str) -> None:
        try:
            await tcp.get(f"{base_url}/api/v3/user")
        except httpx.HTTPError as exc:
            outcome.append(type(exc))

    with anyio.fail_after(10):
        async with httpx.AsyncClient() as tcp, anyio.create_task_group() as group, fake.serve() as base_url:
            group.start_soon(held_request, tcp, base_url)
            while not held.hits:  # noqa: ASYNC110 - the request is in the server, being held
                await anyio.sleep(0.01)
            started = anyio.current_time()
    assert anyio.current_time() - started < 5
    assert outcome == [httpx.RemoteProtocolError]
    assert _noise(caplog) == []
