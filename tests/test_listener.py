"""Listener: start-up, per-message order, redelivery, reconnects, cancellation (docs/protocol.md,
"Listener semantics", "Quirks and why the SDK handles them")."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from unittest.mock import AsyncMock

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import actions_scaleset as asc
from actions_scaleset.models import structure
from tests.support import load_fixture

pytestmark = pytest.mark.anyio


class Drained(Exception):
    """Raised by the fake queue when every scripted message was acknowledged."""


def stats(assigned: int = 0, available: int = 0) -> asc.RunnerScaleSetStatistic:
    return asc.RunnerScaleSetStatistic(total_assigned_jobs=assigned, total_available_jobs=available)


def message(
    message_id: int, events: Sequence[dict[str, Any]], assigned: int = 0
) -> asc.RunnerScaleSetMessage:
    return structure(
        {
            "messageId": message_id,
            "messageType": "RunnerScaleSetJobMessages",
            "body": json.dumps(list(events)),
            "statistics": {"totalAssignedJobs": assigned},
        },
        asc.RunnerScaleSetMessage,
    )


def available(request_id: int) -> dict[str, Any]:
    return {"messageType": "JobAvailable", "runnerRequestId": request_id}


def started(request_id: int) -> dict[str, Any]:
    return {"messageType": "JobStarted", "runnerRequestId": request_id, "runnerId": 1, "runnerName": "r"}


def completed(request_id: int) -> dict[str, Any]:
    return {"messageType": "JobCompleted", "runnerRequestId": request_id, "result": "succeeded"}


class FakeQueue:
    """The server side: redelivers what is not acknowledged, as the real queue does (docs/protocol.md,
    "The long poll")."""

    def __init__(self, messages: Sequence[asc.RunnerScaleSetMessage | Exception | None]) -> None:
        self.script = list(messages)
        self.deleted: list[int] = []
        self.log: list[tuple[str, Any]] = []
        self.acquired: list[int] = []

    def pending(self, last_id: int) -> asc.RunnerScaleSetMessage | None:
        for item in self.script:
            if (
                isinstance(item, asc.RunnerScaleSetMessage)
                and item.message_id > last_id
                and item.message_id not in self.deleted
            ):
                return item
        return None


class FakeSession:
    def __init__(
        self, queue: FakeQueue, statistics: asc.RunnerScaleSetStatistic, fail_acquire: list[bool]
    ) -> None:
        self.queue = queue
        self.statistics = statistics
        self.fail_acquire = fail_acquire
        self.closed = 0

    async def __aenter__(self) -> FakeSession:
        self.queue.log.append(("open", None))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.closed += 1
        self.queue.log.append(("close", None))

    async def get_message(
        self, last_message_id: int | None = None, *, max_capacity: int
    ) -> asc.RunnerScaleSetMessage | None:
        await anyio.lowlevel.checkpoint()
        if self.queue.script and not isinstance(self.queue.script[0], asc.RunnerScaleSetMessage):
            item = self.queue.script.pop(0)
            if isinstance(item, Exception):
                raise item
            return None
        found = self.queue.pending(last_message_id or 0)
        if found is None:
            raise Drained
        if found.statistics is not None:
            self.statistics = found.statistics
        return found

    async def acquire_jobs(self, ids: Sequence[int]) -> list[int]:
        if self.fail_acquire and self.fail_acquire.pop(0):
            raise asc.ServerError("acquire failed", status_code=503)
        self.queue.log.append(("acquire", list(ids)))
        self.queue.acquired.extend(ids)
        return list(ids)

    async def delete_message(self, message_id: int) -> None:
        self.queue.log.append(("ack", message_id))
        self.queue.deleted.append(message_id)


class FakeHTTP:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def random(self) -> float:
        return 0.0


class FakeClient:
    """Just what the Listener uses of a ScaleSetClient."""

    def __init__(
        self,
        queue: FakeQueue,
        *,
        statistics: asc.RunnerScaleSetStatistic | None = None,
        session_errors: Sequence[Exception] = (),
        fail_acquire: Sequence[bool] = (),
        waiting: Sequence[int] = (),
    ) -> None:
        self.queue = queue
        self.http = FakeHTTP()
        self.statistics = statistics or stats()
        self.session_errors = list(session_errors)
        self.fail_acquire = list(fail_acquire)
        self.waiting = list(waiting)
        self.sessions: list[FakeSession] = []
        self.ensured: list[str] = []

    def session(self, scale_set_id: int, *, owner: str, **options: Any) -> FakeSession:
        if self.session_errors:
            raise self.session_errors.pop(0)
        self.sessions.append(FakeSession(self.queue, self.statistics, self.fail_acquire))
        return self.sessions[-1]

    async def get_acquirable_jobs(self, scale_set_id: int) -> list[asc.AcquirableJob]:
        return [structure({"runnerRequestId": i}, asc.AcquirableJob) for i in self.waiting]

    async def ensure_scale_set(self, name: str, **kwargs: Any) -> asc.RunnerScaleSet:
        self.ensured.append(name)
        return asc.RunnerScaleSet(id=200 + len(self.ensured), name=name)


class RecordingScaler:
    def __init__(self, queue: FakeQueue, failures: Sequence[bool] = ()) -> None:
        self.queue = queue
        self.failures = list(failures)
        self.desired: list[int] = []

    def _maybe_fail(self) -> None:
        if self.failures and self.failures.pop(0):
            raise RuntimeError("scaler exploded")

    async def handle_desired_runner_count(self, count: int) -> int:
        self._maybe_fail()
        self.queue.log.append(("desired", count))
        self.desired.append(count)
        return count

    async def handle_job_started(self, job: asc.JobStarted) -> None:
        self.queue.log.append(("started", job.runner_request_id))

    async def handle_job_completed(self, job: asc.JobCompleted) -> None:
        self.queue.log.append(("completed", job.runner_request_id))


def listener(client: FakeClient, scaler: RecordingScaler, **kwargs: Any) -> asc.Listener:
    return asc.Listener(
        client,  # type: ignore[arg-type]
        scale_set_id=kwargs.pop("scale_set_id", 7),
        scaler=scaler,
        min_runners=kwargs.pop("min_runners", 1),
        max_runners=kwargs.pop("max_runners", 10),
        **kwargs,
    )


# ---------------------------------------------------------------- the pure policy


@given(assigned=st.integers(-5, 10_000), minimum=st.integers(0, 100), extra=st.integers(0, 1000))
def test_desired_runners_is_min_plus_assigned_capped_at_max(assigned: int, minimum: int, extra: int) -> None:
    maximum = minimum + extra
    result = asc.desired_runners(stats(assigned), minimum=minimum, maximum=maximum)
    assert minimum <= result <= maximum
    assert result == min(maximum, minimum + max(0, assigned))


@given(a=st.integers(0, 500), b=st.integers(0, 500))
def test_desired_runners_never_shrinks_when_more_jobs_are_assigned(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert asc.desired_runners(stats(low), minimum=2, maximum=50) <= asc.desired_runners(
        stats(high), minimum=2, maximum=50
    )


def test_listener_arguments_are_validated() -> None:
    queue = FakeQueue([])
    with pytest.raises(ValueError, match="min_runners"):
        listener(FakeClient(queue), RecordingScaler(queue), min_runners=5, max_runners=2)
    with pytest.raises(TypeError, match="scale_set_id"):
        asc.Listener(FakeClient(queue), scaler=RecordingScaler(queue))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "method", ["handle_desired_runner_count", "handle_job_started", "handle_job_completed"]
)
def test_a_scaler_with_a_method_that_is_not_async_is_refused_naming_the_method(method: str) -> None:
    queue = FakeQueue([])
    scaler = RecordingScaler(queue)
    setattr(scaler, method, lambda *args: None)  # a plain function: awaiting its result would fail later
    with pytest.raises(TypeError, match=rf"RecordingScaler\.{method} must be a coroutine function"):
        listener(FakeClient(queue), scaler)


def test_a_scaler_without_one_of_the_methods_is_refused_naming_it() -> None:
    class Partial:
        async def handle_desired_runner_count(self, count: int) -> int:
            return count

        async def handle_job_started(self, job: asc.JobStarted) -> None:
            pass

    queue = FakeQueue([])
    with pytest.raises(TypeError, match="handle_job_completed"):
        listener(FakeClient(queue), Partial())  # type: ignore[arg-type]


def test_a_scaler_of_async_mocks_or_async_callables_is_accepted() -> None:
    class AsyncCallable:
        async def __call__(self, job: asc.JobStarted) -> None:
            pass

    queue = FakeQueue([])
    listener(FakeClient(queue), AsyncMock(spec=asc.Scaler))
    scaler = RecordingScaler(queue)
    scaler.handle_job_started = AsyncCallable()  # type: ignore[method-assign]
    listener(FakeClient(queue), scaler)


# ---------------------------------------------------------------- behaviour


async def test_start_publishes_statistics_scales_and_acquires_waiting_jobs() -> None:
    # ARC #4027: pending work after a restart is acquired at start
    queue = FakeQueue([])
    client = FakeClient(queue, statistics=stats(assigned=3, available=2), waiting=[11, 12])
    metrics: list[Any] = []

    class Metrics(asc.NoopMetrics):
        def record_statistics(self, statistics: asc.RunnerScaleSetStatistic) -> None:
            metrics.append(statistics.total_assigned_jobs)

    with pytest.raises(Drained):
        await listener(client, RecordingScaler(queue), metrics=Metrics()).run()
    assert queue.log[:3] == [("open", None), ("desired", 4), ("acquire", [11, 12])]
    assert metrics[0] == 3


async def test_each_message_is_acquired_handled_scaled_then_acknowledged() -> None:
    queue = FakeQueue([message(5, [available(1), available(2), started(3), completed(4)], assigned=2)])
    with pytest.raises(Drained):
        await listener(FakeClient(queue), RecordingScaler(queue)).run()
    assert queue.log[2:7] == [
        ("acquire", [1, 2]),
        ("started", 3),
        ("completed", 4),
        ("desired", 3),
        ("ack", 5),
    ]


async def test_idle_polls_reapply_the_last_statistics() -> None:
    queue = FakeQueue([None, None])
    client = FakeClient(queue, statistics=stats(assigned=4))
    scaler = RecordingScaler(queue)
    with pytest.raises(Drained):
        await listener(client, scaler, min_runners=0).run()
    assert scaler.desired == [4, 4, 4]


async def test_a_failing_scaler_leaves_the_message_unacked_so_it_comes_back() -> None:
    queue = FakeQueue([message(5, [available(1)], assigned=1)])
    scaler = RecordingScaler(queue, failures=[False, True])  # start ok, first handling fails
    client = FakeClient(queue)
    with pytest.raises(Drained):
        await listener(client, scaler).run()
    assert [entry for entry in queue.log if entry[0] == "ack"] == [("ack", 5)]
    assert queue.log.count(("acquire", [1])) == 2
    assert client.http.slept  # it paused before taking the message again


async def test_a_failure_count_is_reset_by_a_good_poll_not_by_an_open_session() -> None:
    # A session that opens but whose every poll fails must not reconnect at the first backoff forever.
    queue = FakeQueue([asc.ServerError("boom", status_code=503)] * 3 + [None, asc.NetworkError("reset")])
    client = FakeClient(queue)
    with pytest.raises(Drained):
        await listener(client, RecordingScaler(queue)).run()
    assert client.http.slept == [1.0, 2.0, 4.0, 1.0]


async def test_a_scale_set_gone_again_right_after_being_recreated_is_recreated_with_backoff() -> None:
    queue = FakeQueue([message(5, [available(1)])])
    gone = [asc.ScaleSetNotFoundError("gone", status_code=404) for _ in range(3)]
    client = FakeClient(queue, session_errors=gone)
    lsn = listener(client, RecordingScaler(queue), ensure=asc.EnsureScaleSet("linux", labels=["linux"]))
    with pytest.raises(Drained):
        await lsn.run()
    assert client.ensured == ["linux"] * 3
    assert client.http.slept == [2.0, 4.0]  # the first re-creation at once, then backing off


async def test_a_scale_set_deleted_after_an_unrelated_outage_is_recreated_at_once() -> None:
    queue = FakeQueue([message(5, [available(1)])])
    errors = [asc.ServerError("boom", status_code=503), asc.ScaleSetNotFoundError("gone", status_code=404)]
    client = FakeClient(queue, session_errors=errors)
    lsn = listener(client, RecordingScaler(queue), ensure=asc.EnsureScaleSet("linux", labels=["linux"]))
    with pytest.raises(Drained):
        await lsn.run()
    assert client.ensured == ["linux"]
    assert client.http.slept == [1.0]  # the 503's backoff only: the deletion is not a repeat


async def test_transient_failures_reconnect_with_backoff() -> None:
    queue = FakeQueue(
        [asc.ServerError("boom", status_code=503), asc.NetworkError("reset"), message(5, [available(1)])]
    )
    client = FakeClient(queue, session_errors=[asc.SessionConflictError("still there", status_code=409)])
    with pytest.raises(Drained):
        await listener(client, RecordingScaler(queue)).run()
    assert len(client.sessions) == 3
    assert all(session.closed == 1 for session in client.sessions)
    assert len(client.http.slept) == 3
    assert ("ack", 5) in queue.log


async def test_a_deleted_scale_set_is_raised_without_ensure() -> None:
    queue = FakeQueue([])
    client = FakeClient(queue, session_errors=[asc.ScaleSetNotFoundError("gone", status_code=404)])
    with pytest.raises(asc.ScaleSetNotFoundError):
        await listener(client, RecordingScaler(queue)).run()


async def test_a_deleted_scale_set_is_recreated_with_ensure() -> None:
    queue = FakeQueue([message(5, [available(1)])])
    client = FakeClient(queue, session_errors=[asc.ScaleSetNotFoundError("gone", status_code=404)])
    lsn = listener(client, RecordingScaler(queue), ensure=asc.EnsureScaleSet("linux", labels=["linux"]))
    with pytest.raises(Drained):
        await lsn.run()
    assert client.ensured == ["linux"]
    assert lsn.scale_set_id == 201


async def test_refused_credentials_are_not_retried() -> None:
    queue = FakeQueue([])
    client = FakeClient(queue, session_errors=[asc.AuthenticationError("bad token", status_code=401)])
    with pytest.raises(asc.AuthenticationError):
        await listener(client, RecordingScaler(queue)).run()


async def test_cancellation_while_scaling_at_start_lets_the_scaler_finish() -> None:
    # A runner the scaler was starting must not be orphaned: the call is shielded, as handling is.
    queue = FakeQueue([])
    entered = anyio.Event()
    finished: list[int] = []

    class SlowScaler(RecordingScaler):
        async def handle_desired_runner_count(self, count: int) -> int:
            entered.set()
            await anyio.sleep(0.005)  # starting a VM, say
            finished.append(count)
            return count

    client = FakeClient(queue, statistics=stats(assigned=2))
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener(client, SlowScaler(queue)).run)
        await entered.wait()
        tg.cancel_scope.cancel()
    assert finished == [3]
    assert client.sessions[0].closed == 1


async def test_cancellation_while_scaling_after_an_empty_poll_lets_the_scaler_finish() -> None:
    queue = FakeQueue([None, None])
    calls = 0
    finished: list[int] = []
    entered = anyio.Event()

    class SlowScaler(RecordingScaler):
        async def handle_desired_runner_count(self, count: int) -> int:
            nonlocal calls
            calls += 1
            if calls == 2:  # the one after the first empty poll
                entered.set()
                await anyio.sleep(0.005)
                finished.append(count)
            return count

    client = FakeClient(queue)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener(client, SlowScaler(queue)).run)
        await entered.wait()
        tg.cancel_scope.cancel()
    assert finished == [1]


async def test_cancellation_mid_message_finishes_the_message_acks_once_and_closes() -> None:
    queue = FakeQueue([message(5, [started(1)])])
    entered = anyio.Event()

    class SlowScaler(RecordingScaler):
        async def handle_job_started(self, job: asc.JobStarted) -> None:
            entered.set()
            await anyio.sleep(0.05)
            await super().handle_job_started(job)

    client = FakeClient(queue)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener(client, SlowScaler(queue)).run)
        await entered.wait()
        tg.cancel_scope.cancel()
    assert queue.log.count(("ack", 5)) == 1
    assert queue.log.index(("started", 1)) < queue.log.index(("ack", 5))
    assert client.sessions[0].closed == 1


# ---------------------------------------------------------------- property: nothing is lost


EVENTS = st.lists(
    st.one_of(
        st.builds(available, st.integers(1, 40)),
        st.builds(started, st.integers(1, 40)),
        st.builds(completed, st.integers(1, 40)),
    ),
    max_size=5,
)
FAULT = st.sampled_from(["poll-503", "poll-reset", "idle"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    script=st.lists(st.one_of(EVENTS, FAULT), max_size=12),
    scaler_failures=st.lists(st.booleans(), max_size=20),
    acquire_failures=st.lists(st.booleans(), max_size=8),
)
def test_no_job_is_left_unacquired_and_no_message_is_acked_before_it_was_handled(
    anyio_backend: str, script: list[Any], scaler_failures: list[bool], acquire_failures: list[bool]
) -> None:
    items: list[asc.RunnerScaleSetMessage | Exception | None] = []
    next_id = 100
    for entry in script:
        if entry == "poll-503":
            items.append(asc.ServerError("busy", status_code=503))
        elif entry == "poll-reset":
            items.append(asc.NetworkError("reset"))
        elif entry == "idle":
            items.append(None)
        else:
            next_id += 1
            items.append(message(next_id, entry, assigned=len(entry)))
    queue = FakeQueue(items)
    scaler = RecordingScaler(queue, failures=scaler_failures)
    client = FakeClient(queue, fail_acquire=acquire_failures)

    async def main() -> None:
        with pytest.raises(Drained):
            await listener(client, scaler).run()

    anyio.run(main, backend=anyio_backend)

    messages = [m for m in items if isinstance(m, asc.RunnerScaleSetMessage)]
    wanted = {job.runner_request_id for m in messages for job in m.jobs_available}
    assert wanted <= set(queue.acquired)
    assert sorted(queue.deleted) == sorted({m.message_id for m in messages})
    for m in messages:
        ack = queue.log.index(("ack", m.message_id))
        handled_before = queue.log[:ack]
        for job in m.jobs_started:
            assert ("started", job.runner_request_id) in handled_before
        for done in m.jobs_completed:
            assert ("completed", done.runner_request_id) in handled_before
        assert any(kind == "desired" for kind, _ in handled_before)


def test_the_fixture_message_drives_the_listener_policy() -> None:
    msg = structure(load_fixture("message_job_messages.json"), asc.RunnerScaleSetMessage)
    assert msg.statistics is not None
    assert (
        asc.desired_runners(msg.statistics, minimum=1, maximum=100) == 1 + msg.statistics.total_assigned_jobs
    )
