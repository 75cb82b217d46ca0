"""A listener runs for months: backoff that never overflows, capped server waits, no hot loop,
and a soak through 10**6 reconnects (docs/protocol.md, "Listener semantics", "Retries and timeouts")."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

import actions_scaleset as asc
from actions_scaleset._http import HTTPCore
from actions_scaleset.testing import FakeGitHub, JobState
from tests.support import FakeClock

pytestmark = pytest.mark.anyio

OUTAGE = 10**6
RECONNECT = asc.RetryPolicy(max_attempts=OUTAGE, initial_delay=1.0, max_delay=60.0, jitter=0.25)


class Stop(BaseException):
    """Ends a test that would otherwise never return (a loop that cannot be cancelled)."""


class SoakClock(FakeClock):
    """A clock moved only by sleeps; it keeps the count and the longest sleep, not every sleep."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps = 0
        self.longest = 0.0
        self.recent: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.longest = max(self.longest, seconds)
        self.recent = [*self.recent[-9:], seconds]
        self.now += seconds


class CountingHandler(logging.Handler):
    """Counts records instead of keeping them: a million warnings would not fit in caplog."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self.last: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.last = [*self.last[-4:], record.getMessage()]


LISTENER_LOG = logging.getLogger("actions_scaleset.listener")


@pytest.fixture
def counted_logs() -> Iterator[CountingHandler]:
    """The package's log, counted rather than kept."""
    handler = CountingHandler()
    package = logging.getLogger("actions_scaleset")
    package.addHandler(handler)
    package.propagate = False
    try:
        yield handler
    finally:
        package.propagate = True
        package.removeHandler(handler)
        LISTENER_LOG.setLevel(logging.NOTSET)


# ---------------------------------------------------------------- the policy


@pytest.mark.parametrize("attempt", [1024, 1025, 10**6, 10**18])
def test_the_backoff_of_any_attempt_is_capped_at_max_delay_without_overflowing(attempt: int) -> None:
    assert RECONNECT.backoff(attempt) == 60.0
    assert asc.RetryPolicy(max_delay=30.0, multiplier=2).backoff(attempt) == 30.0
    assert asc.RetryPolicy(initial_delay=0.0).backoff(attempt) == 0.0


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(None, 60.0), (5.0, 60.0), (90.0, 90.0), (1e9, 120.0), (float("inf"), 120.0), (float("nan"), 60.0)],
)
def test_a_server_wait_is_honoured_up_to_max_retry_after(retry_after: float | None, expected: float) -> None:
    assert RECONNECT.capped_wait(50, retry_after) == expected


@pytest.mark.parametrize("field", ["initial_delay", "max_delay", "max_retry_after", "multiplier"])
def test_a_policy_with_a_nan_or_negative_number_is_refused(field: str) -> None:
    for bad in (float("nan"), -1.0):
        arguments: dict[str, Any] = {field: bad}
        with pytest.raises(ValueError, match=r"negative|positive"):
            asc.RetryPolicy(**arguments)


# ---------------------------------------------------------------- the listener, against a stub


class QuietSession:
    """A session whose queue answers at once with nothing, and never suspends (as in-process)."""

    statistics = asc.RunnerScaleSetStatistic()

    async def __aenter__(self) -> QuietSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def get_message(self, last_message_id: int | None = None, *, max_capacity: int) -> None:
        return None


class StubClient:
    """What the Listener uses of a ScaleSetClient; `session()` raises what `failures` gives."""

    def __init__(self, clock: FakeClock, failures: Callable[[int], BaseException | None]) -> None:
        self.http = HTTPCore(sleep=clock.sleep, clock=clock, random=lambda: 0.0)
        self.failures = failures
        self.attempts = 0

    def session(self, scale_set_id: int, *, owner: str, **options: Any) -> QuietSession:
        self.attempts += 1
        failure = self.failures(self.attempts)
        if failure is not None:
            raise failure
        return QuietSession()


class CountingScaler:
    def __init__(self, stop_after: int | None = None) -> None:
        self.calls = 0
        self.stop_after = stop_after

    async def handle_desired_runner_count(self, count: int) -> int:
        self.calls += 1
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise Stop
        return count

    async def handle_job_started(self, job: asc.JobStarted) -> None:
        pass

    async def handle_job_completed(self, job: asc.JobCompleted) -> None:
        pass


async def test_a_retry_after_of_31_years_waits_max_retry_after_and_says_so(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def rate_limited(attempt: int) -> BaseException | None:
        if attempt == 1:
            return asc.SecondaryRateLimitError("slow down", status_code=429, retry_after=1_000_000_000)
        return None

    client = StubClient(clock, rate_limited)
    listener = asc.Listener(client, 7, CountingScaler(stop_after=2), reconnect_backoff=RECONNECT)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="actions_scaleset.listener"), pytest.raises(Stop):
        await listener.run()
    assert clock.slept == [120.0]
    assert any("1000000000 s" in r.getMessage() and "120 s" in r.getMessage() for r in caplog.records)


async def test_a_queue_that_answers_at_once_can_still_be_cancelled() -> None:
    # In-process nothing suspends: without a checkpoint per turn the loop would never see the cancel,
    # and the scaler's Stop would end the test instead.
    client = StubClient(FakeClock(), lambda attempt: None)
    scaler = CountingScaler(stop_after=10_000)
    async with anyio.create_task_group() as tg:
        tg.start_soon(asc.Listener(client, 7, scaler).run)  # type: ignore[arg-type]
        await anyio.lowlevel.checkpoint()
        tg.cancel_scope.cancel()
    assert scaler.calls < 10_000


async def test_an_outage_that_fails_at_once_can_still_be_cancelled() -> None:
    client = StubClient(
        FakeClock(), lambda attempt: asc.NetworkError("refused") if attempt < 1_000 else Stop()
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(asc.Listener(client, 7, CountingScaler(), reconnect_backoff=RECONNECT).run)  # type: ignore[arg-type]
        await anyio.lowlevel.checkpoint()
        tg.cancel_scope.cancel()
    assert client.attempts < 1_000


# ---------------------------------------------------------------- unusable replies back off


async def test_unusable_replies_in_a_row_back_off_and_a_good_one_resets_the_pause(clock: FakeClock) -> None:
    fake = FakeGitHub(clock=clock, poll_hold=0.0)
    fake.faults.add(route="message", empty=True, times=4)
    fake.faults.add(route="message", malformed=True, times=3)
    async with (
        fake.http_client() as http,
        asc.ScaleSetClient(
            fake.config_url("acme"),
            fake.pat(),
            http=HTTPCore(http, sleep=clock.sleep, clock=clock, random=lambda: 0.0),
        ) as client,
    ):
        scale_set = await client.ensure_scale_set("linux", labels=["linux"])
        async with client.session(scale_set.id, owner="me") as session:
            for _ in range(7):
                assert await session.get_message(max_capacity=1) is None
            assert clock.slept == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
            assert await session.get_message(max_capacity=1) is None  # a real 202
            fake.faults.add(route="message", empty=True)
            assert await session.get_message(max_capacity=1) is None
            assert clock.slept[-1] == 1.0


async def test_a_listener_fed_unusable_replies_polls_a_few_times_a_minute_not_a_thousand_a_second(
    clock: FakeClock,
) -> None:
    fake = FakeGitHub(clock=clock, poll_hold=0.0)
    fake.faults.add(route="message", empty=True, times=None)
    async with (
        fake.http_client() as http,
        asc.ScaleSetClient(
            fake.config_url("acme"),
            fake.pat(),
            http=HTTPCore(http, sleep=clock.sleep, clock=clock, random=lambda: 0.0),
        ) as client,
    ):
        scale_set = await client.ensure_scale_set("linux", labels=["linux"])
        start = clock.now
        async with anyio.create_task_group() as tg:
            tg.start_soon(asc.Listener(client, scale_set.id, CountingScaler(stop_after=1_000)).run)
            while len(fake.requests_to("message")) < 30:  # noqa: ASYNC110 - the fake does not signal polls
                await anyio.sleep(0.001)
            tg.cancel_scope.cancel()
    polls = len(fake.requests_to("message"))
    minutes = (clock.now - start) / 60
    assert polls / minutes < 3
    assert fake.snapshot().scale_sets[0].session_owner is None


# ---------------------------------------------------------------- the soak


FAILURES: tuple[Exception, ...] = (
    asc.NetworkError("connection refused"),
    asc.ServerError("unavailable", status_code=503),
    asc.SecondaryRateLimitError("slow down", status_code=429, retry_after=1_000_000_000),
    asc.SessionConflictError("already has an active session", status_code=409),
    asc.InvalidResponseError("malformed JSON where a message session was expected", status_code=200),
    asc.RequestTimeoutError("request timed out"),
)


class OutageClient(asc.ScaleSetClient):
    """A real client whose every session fails for `outage` attempts (no request is sent), then works.

    The listener's log is silenced but for the last few failures: a million log records cost more
    than the million reconnects.
    """

    def __init__(self, *args: Any, outage: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outage = outage
        self.attempts = 0
        LISTENER_LOG.setLevel(logging.ERROR)

    def session(self, scale_set_id: int, *, owner: str | None = None, **options: Any) -> asc.MessageSession:
        self.attempts += 1
        if self.attempts == self.outage - 2:
            LISTENER_LOG.setLevel(logging.NOTSET)
        if self.attempts <= self.outage:
            # one of a few errors, raised afresh: a traceback that grew with each raise would be a leak
            raise FAILURES[self.attempts % len(FAILURES)].with_traceback(None)
        return super().session(scale_set_id, owner=owner, **options)


class SimulatedRunners:
    """A scaler that boots the fake's simulated runners: they take a job and complete it."""

    def __init__(self, client: asc.ScaleSetClient, fake: FakeGitHub, scale_set_id: int) -> None:
        self.client, self.fake, self.scale_set_id = client, fake, scale_set_id
        self.booted = 0
        self.completed: list[asc.JobCompleted] = []
        self.done = anyio.Event()

    async def handle_desired_runner_count(self, count: int) -> int:
        while self.booted < count:
            self.booted += 1
            jit = await self.client.generate_jit_config(self.scale_set_id, name=f"runner-{self.booted}")
            self.fake.start_runner(jit.encoded_jit_config)
        return count

    async def handle_job_started(self, job: asc.JobStarted) -> None:
        pass

    async def handle_job_completed(self, job: asc.JobCompleted) -> None:
        self.completed.append(job)
        self.done.set()


async def test_a_listener_rides_out_a_million_failed_reconnects_then_runs_the_next_job(
    counted_logs: CountingHandler,
) -> None:
    clock = SoakClock()
    fake = FakeGitHub(clock=clock, poll_hold=0.05, runner_key_size=1024)
    async with fake.http_client() as http:
        core = HTTPCore(http, sleep=clock.sleep, clock=clock, random=lambda: 0.5)
        async with OutageClient(fake.config_url("acme"), fake.pat(), http=core, outage=OUTAGE) as client:
            scale_set = await client.ensure_scale_set("linux", labels=["linux"])
            job = fake.enqueue_job(labels=["linux"], repository="acme/app")
            scaler = SimulatedRunners(client, fake, scale_set.id)
            listener = asc.Listener(client, scale_set.id, scaler, max_runners=2, reconnect_backoff=RECONNECT)
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.run)
                with anyio.fail_after(120):
                    await scaler.done.wait()
                tg.cancel_scope.cancel()
    assert client.attempts == OUTAGE + 1
    assert clock.sleeps >= OUTAGE
    assert clock.longest == 120.0  # the 31-year Retry-After, capped
    assert all(wait in (52.5, 120.0) for wait in clock.recent[-5:]), clock.recent  # max_delay, half jitter
    assert clock.now - FakeClock().now > 500 * 24 * 3600  # over a year and a half of outage
    assert [c.runner_request_id for c in scaler.completed] == [fake.job(job.job_id).runner_request_id]
    assert fake.job(job.job_id).state is JobState.COMPLETED
    assert fake.snapshot().scale_sets[0].session_owner is None
    assert counted_logs.count < 50
    assert any("reconnecting in 52.5 s (attempt 1000000)" in line for line in counted_logs.last)


def test_the_runners_acquire_throttle_never_overflows() -> None:
    from actions_scaleset.runner._client import MAX_ACQUIRE_THROTTLE, acquire_throttle

    assert acquire_throttle(1) == 1.0
    assert acquire_throttle(1025) == acquire_throttle(10**6) == MAX_ACQUIRE_THROTTLE
