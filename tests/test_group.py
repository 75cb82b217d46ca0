"""ListenerGroup: many listeners, one task group, failures kept apart (ARC #4169).

In-process against FakeGitHub; docs/protocol.md, "Listener semantics" and
"A 409 from a stale session".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest

import actions_scaleset as asc
from actions_scaleset._http import HTTPCore
from actions_scaleset.testing import FakeGitHub

pytestmark = pytest.mark.anyio

QUICK_RESTARTS = asc.RetryPolicy(max_attempts=1_000_000, initial_delay=0.02, max_delay=0.05, jitter=0.25)


class IdleScaler:
    async def handle_desired_runner_count(self, count: int) -> int:
        return count

    async def handle_job_started(self, job: asc.JobStarted) -> None:
        pass

    async def handle_job_completed(self, job: asc.JobCompleted) -> None:
        pass


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts session creations in flight at once; each takes `delay` seconds."""

    def __init__(self, inner: httpx.AsyncBaseTransport, delay: float = 0.05) -> None:
        self.inner = inner
        self.delay = delay
        self.now = self.peak = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        creating = request.method == "POST" and request.url.path.endswith("/sessions")
        if not creating:
            return await self.inner.handle_async_request(request)
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await anyio.sleep(self.delay)
            return await self.inner.handle_async_request(request)
        finally:
            self.now -= 1


@asynccontextmanager
async def connected(
    fake: FakeGitHub, transport: CountingTransport | None = None
) -> AsyncIterator[asc.ScaleSetClient]:
    async with fake.http_client() as http:
        if transport is not None:
            transport.inner = http._transport
            http._transport = transport
        async with asc.ScaleSetClient(fake.config_url("acme"), fake.pat(), http=HTTPCore(http)) as client:
            yield client


async def eventually(condition: Callable[[], bool], *, timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - polling state the fake does not signal
            await anyio.sleep(0.01)


def sessions(fake: FakeGitHub) -> dict[int, str | None]:
    return {s.id: s.session_owner for s in fake.snapshot().scale_sets}


async def scale_sets(client: asc.ScaleSetClient, count: int) -> list[int]:
    return [(await client.create_scale_set(f"set-{i}")).id for i in range(count)]


async def test_add_remove_and_status_at_run_time() -> None:
    fake = FakeGitHub(poll_hold=0.05)
    async with connected(fake) as client:
        a, b, c = await scale_sets(client, 3)
        group: asc.ListenerGroup[str] = asc.ListenerGroup(start_jitter=0)
        group.add("a", asc.Listener(client, a, IdleScaler(), min_runners=1))
        group.add("b", asc.Listener(client, b, IdleScaler()))
        with pytest.raises(KeyError):
            group.add("a", asc.Listener(client, c, IdleScaler()))
        assert group.status()["a"] == asc.ListenerStatus(scale_set_id=a)
        async with anyio.create_task_group() as tg:
            tg.start_soon(group.run)
            await eventually(lambda: all(s.last_poll_at for s in group.status().values()))
            status = group.status()["a"]
            assert status.session_open
            assert status.desired_runners == 1
            assert status.restarts == 0
            assert status.last_error is None
            group.add("c", asc.Listener(client, c, IdleScaler()))
            await eventually(lambda: sessions(fake)[c] is not None)
            removed = await group.remove("b")
            assert removed.scale_set_id == b
            assert sessions(fake)[b] is None  # deleted before remove() returned
            assert sessions(fake)[a] is not None
            assert list(group) == ["a", "c"]
            assert "b" not in group.status()
            with pytest.raises(KeyError):
                await group.remove("b")
            tg.cancel_scope.cancel()
    assert all(owner is None for owner in sessions(fake).values())  # cancelling leaves no session
    assert {r.status for r in fake.requests_to("session.delete")} <= {200, 204}


async def test_a_fatal_error_is_retried_with_backoff_while_the_others_go_on() -> None:
    fake = FakeGitHub(poll_hold=0.05)
    async with connected(fake) as client:
        good, doomed = await scale_sets(client, 2)
        bad_credentials = asc.ScaleSetClient(
            fake.config_url("acme"), "ghp_refused", http=HTTPCore(client.http.client)
        )
        group: asc.ListenerGroup[str] = asc.ListenerGroup(start_jitter=0, restart_backoff=QUICK_RESTARTS)
        group.add("good", asc.Listener(client, good, IdleScaler()))
        group.add("doomed", asc.Listener(client, doomed, IdleScaler()))
        group.add("refused", asc.Listener(bad_credentials, good, IdleScaler()))
        async with anyio.create_task_group() as tg:
            tg.start_soon(group.run)
            await eventually(lambda: group.status()["doomed"].session_open)
            fake.delete_scale_set(doomed)
            await eventually(lambda: group.status()["doomed"].restarts >= 3)
            await eventually(lambda: group.status()["refused"].restarts >= 3)
            polled = group.status()["good"].last_poll_at
            await eventually(lambda: (group.status()["good"].last_poll_at or 0) > (polled or 0))
            tg.cancel_scope.cancel()
    status = group.status()
    assert status["good"].restarts == 0
    assert status["doomed"].last_error is not None
    assert "ScaleSetNotFoundError" in status["doomed"].last_error
    assert status["refused"].last_error is not None
    assert not status["doomed"].session_open


async def test_session_creation_is_capped_across_the_group() -> None:
    fake = FakeGitHub(poll_hold=0.05)
    counting = CountingTransport(httpx.AsyncBaseTransport())
    async with connected(fake, counting) as client:
        ids = await scale_sets(client, 12)
        group: asc.ListenerGroup[int] = asc.ListenerGroup(open_concurrency=3, start_jitter=0.05)
        for scale_set_id in ids:
            group.add(scale_set_id, asc.Listener(client, scale_set_id, IdleScaler()))
        async with anyio.create_task_group() as tg:
            tg.start_soon(group.run)
            await eventually(lambda: all(s.session_open for s in group.status().values()))
            tg.cancel_scope.cancel()
    assert counting.peak == 3
    assert len(fake.requests_to("runner_registration")) == 1


async def test_a_409_wait_does_not_hold_the_cap() -> None:
    fake = FakeGitHub(poll_hold=0.05, session_timeout=60)
    async with connected(fake) as client:
        stale, fresh = await scale_sets(client, 2)
        await client.session(stale, owner="crashed-listener").open()  # never closed
        waiting = asc.RetryPolicy(initial_delay=0.2, max_delay=0.2, jitter=0)
        group: asc.ListenerGroup[str] = asc.ListenerGroup(open_concurrency=1, start_jitter=0)
        group.add(
            "stale", asc.Listener(client, stale, IdleScaler(), session_options={"conflict_backoff": waiting})
        )
        group.add("fresh", asc.Listener(client, fresh, IdleScaler()))
        async with anyio.create_task_group() as tg:
            tg.start_soon(group.run)
            await eventually(lambda: group.status()["fresh"].session_open, timeout=3)
            assert not group.status()["stale"].session_open
            assert any(r.status == 409 for r in fake.requests_to("session.create"))
            tg.cancel_scope.cancel()


def test_group_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="open_concurrency"):
        asc.ListenerGroup(open_concurrency=0)
    with pytest.raises(ValueError, match="start_jitter"):
        asc.ListenerGroup(start_jitter=-1)
    group: asc.ListenerGroup[str] = asc.ListenerGroup()
    with pytest.raises(TypeError, match="Listener"):
        group.add("x", object())  # type: ignore[arg-type]
    assert len(group) == 0
    assert "not running" in repr(group)
