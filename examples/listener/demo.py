"""`python -m examples.listener --simulate [--chaos] [--jobs N]`: the listener, offline.

`FakeGitHub` plays GitHub on a loopback port; a seeded plan queues the jobs in two waves
over about 18 seconds; `app.serve` runs the real listener against it, with simulated
runners (the real runner protocol, no work done). This module watches until every job is
completed, stops the listener, and prints a summary. `--chaos` injects faults along the
way: a 409 on the first session, 5xx bursts, dropped connections, expired tokens, and the
scale set deleted between the waves. Exit code 0 when every job completed and no runner
is left registered, 1 otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import anyio
import attrs

from actions_scaleset.runner import Job
from actions_scaleset.testing import FakeGitHub, Fault, JobState, PlannedJob, Snapshot

from . import app, view
from .provisioner import Provisioner
from .settings import ScaleSetSettings, Settings
from .simulate import SimulatedProvisioner

__all__ = ["plan", "run_demo"]

logger = logging.getLogger("listener.demo")

SEED: Final = 7
REPOSITORY: Final = "acme/app"
WAVES: Final = ((0.5, 6.0), (14.0, 20.0))
"""When the two waves of jobs arrive, in seconds from the start."""
TIME_LIMIT: Final = 90.0
SAMPLE_EVERY: Final = 0.1
LINE_EVERY: Final = 2.0
WAITING: Final = frozenset({JobState.QUEUED, JobState.AVAILABLE, JobState.ACQUIRED})
OPEN: Final = WAITING | {JobState.ASSIGNED}


def plan(jobs: int, seed: int = SEED) -> list[PlannedJob]:
    """Two waves, arriving over 0.5-6 s and 14-20 s, each job taking 1.5-4 s: the same seed,
    the same plan. `--chaos` deletes the scale set as the second wave comes."""
    rng = random.Random(seed)
    first = max(1, round(jobs * 0.45))
    offsets = sorted(rng.uniform(*WAVES[0]) for _ in range(first))
    offsets += sorted(rng.uniform(*WAVES[1]) for _ in range(jobs - first))
    return [PlannedJob(offset, round(rng.uniform(1.5, 4.0), 1)) for offset in offsets]


async def run_demo(settings: Settings) -> int:
    """Serve the fake, queue the plan, run the listener until every job is done; the exit code."""
    planned = {f"job-{number}": job for number, job in enumerate(plan(settings.jobs), 1)}
    fake = FakeGitHub(seed=SEED)
    taken: dict[str, float] = {}
    """When a runner took each job (by name), on the fake's clock."""

    def job_seconds(job: Job) -> float:  # called as the runner takes the job
        name = job.message.job_display_name
        taken[name] = fake.clock()
        return planned[name].duration if name in planned else 2.0

    def provisioner(wanted: ScaleSetSettings, _: Settings) -> Provisioner:
        return SimulatedProvisioner(job_seconds=job_seconds)

    wanted = settings.scale_sets[0]
    with tempfile.TemporaryDirectory(prefix="listener-demo-") as state_dir:
        async with fake.serve():
            serving = attrs.evolve(
                settings,
                url=fake.config_url("acme"),
                credentials=fake.pat(),
                simulate=False,
                state_dir=Path(state_dir),
            )
            watch = _Watch(fake, _queue(fake, planned, wanted), taken, plain=not sys.stdout.isatty())
            if settings.chaos:
                first_wave = sum(job.offset <= WAVES[0][1] for job in planned.values())
                watch.chaos = _Chaos(fake, wanted.name, first_wave=first_wave, say=watch.say)
            stop = anyio.Event()
            with watch.display():
                async with anyio.create_task_group() as tg:
                    tg.start_soon(watch.run, stop)
                    code = await app.serve(
                        serving, stop=stop, ready=watch.attach, provisioner_factory=provisioner
                    )
                    tg.cancel_scope.cancel()
            if code != 0:
                return code
            summary = watch.summary(leaked=len(fake.snapshot().runners), chaos=settings.chaos)
    print(view.summary_text(summary), flush=True)
    if not watch.stopped:  # a signal stopped the listener
        return app.EXIT_INTERRUPTED
    return 0 if summary.ok else app.EXIT_FAILED


def _queue(fake: FakeGitHub, planned: Mapping[str, PlannedJob], wanted: ScaleSetSettings) -> dict[str, float]:
    """Schedule the plan's jobs for the scale set; when each (by name) arrives, on the fake's clock."""
    now, labels = fake.clock(), list(wanted.labels) or [wanted.name]
    for name, job in planned.items():
        at = now + job.offset
        fake.enqueue_job(
            labels=labels, repository=REPOSITORY, display_name=name, duration=job.duration, at=at
        )
    return {name: now + job.offset for name, job in planned.items()}


class _Watch:
    """Samples the fake ten times a second: the view's `Progress`, when each job was taken,
    and when it is all done."""

    def __init__(
        self, fake: FakeGitHub, arrivals: Mapping[str, float], taken: Mapping[str, float], *, plain: bool
    ) -> None:
        self.fake = fake
        self.arrivals = arrivals
        """When each job (by name) was queued, on the fake's clock."""
        self.taken = taken
        self.plain = plain
        self.progress = view.Progress(total=len(arrivals))
        self.running: app.Running | None = None
        self.chaos: _Chaos | None = None
        self.stopped = False
        """It stopped the listener: every job done, or the time limit."""
        self._began = fake.clock()

    def attach(self, running: app.Running) -> None:
        self.running = running

    def say(self, line: str) -> None:
        self.progress.chaos.append(line)
        logger.warning("chaos: %s", line)
        if self.plain:
            print(f"{self.progress.elapsed:5.1f}s  chaos: {line}", flush=True)

    def display(self) -> contextlib.AbstractContextManager[None]:
        if self.plain:
            return contextlib.nullcontext()
        return view.live(lambda: view.table(self.progress))

    async def run(self, stop: anyio.Event) -> None:
        """Sample until cancelled; set `stop` once every job is done, or at the time limit."""
        if self.chaos is not None:
            self.chaos.begin()
        next_line = 0.0
        while True:
            snapshot = self.sample()
            if self.chaos is not None:
                self.chaos.step(self.progress, snapshot)
            if not stop.is_set() and (self._done(snapshot) or self._too_long()):
                self.stopped = True
                stop.set()
            if self.plain and self.progress.elapsed >= next_line:
                print(view.progress_line(self.progress), flush=True)
                next_line += LINE_EVERY
            await anyio.sleep(SAMPLE_EVERY)

    def sample(self) -> Snapshot:
        snapshot, now = self.fake.snapshot(), self.fake.clock()
        jobs = snapshot.jobs
        progress = self.progress
        progress.elapsed = now - self._began
        progress.queued = sum(job.state in WAITING for job in jobs)
        progress.assigned = sum(job.state is JobState.ASSIGNED for job in jobs)
        progress.running = sum(job.state is JobState.RUNNING for job in jobs)
        progress.completed = sum(job.result == "succeeded" for job in jobs)
        progress.registered = len(snapshot.runners)
        progress.starting = sum(unit.scaler.count("starting") for unit in self._units())
        progress.api_calls = len(self.fake.requests)
        progress.depth.append(progress.queued + progress.assigned)
        return snapshot

    def _too_long(self) -> bool:
        if self.progress.elapsed <= TIME_LIMIT:
            return False
        logger.warning("demo: not done after %.0f s; giving up", TIME_LIMIT)
        return True

    def _done(self, snapshot: Snapshot) -> bool:
        finished = all(job.state is JobState.COMPLETED for job in snapshot.jobs)
        return finished and not any(runner.busy for runner in snapshot.runners)

    def _units(self) -> list[app.Unit]:
        return list(self.running.units) if self.running is not None else []

    def summary(self, *, leaked: int, chaos: bool) -> view.Summary:
        self.sample()
        return view.Summary(
            total=self.progress.total,
            completed=self.progress.completed,
            seconds=self.progress.elapsed,
            latencies=[at - self.arrivals[name] for name, at in self.taken.items() if name in self.arrivals],
            peak_runners=sum(unit.scaler.peak for unit in self._units()),
            api_calls=self.progress.api_calls,
            start_failures=sum(unit.scaler.start_failures for unit in self._units()),
            faults=self.chaos.survived() if self.chaos is not None else [],
            leaked=leaked,
            depth=self.progress.depth,
            chaos=chaos,
        )


Check = Callable[[view.Progress], bool]


class _Chaos:
    """`--chaos`: a fault at each moment of the run, one moment after another."""

    def __init__(
        self, fake: FakeGitHub, scale_set: str, *, first_wave: int, say: Callable[[str], None]
    ) -> None:
        self.fake = fake
        self.scale_set = scale_set
        self.say = say
        self.faults: list[tuple[str, Fault]] = []
        self.events: list[str] = []
        """What happened once: tokens expired, the scale set deleted."""
        self._steps: list[tuple[Check, Callable[[Snapshot], None]]] = [
            (lambda p: p.running > 0, self._bursts),
            (lambda p: p.completed >= 1, self._drops),
            (lambda p: p.completed >= max(1, first_wave // 2), self._expiry),
            (
                lambda p: p.completed >= first_wave and p.running == 0 and p.queued + p.assigned > 0,
                self._delete,
            ),
        ]

    def begin(self) -> None:
        self._fault("a 409 on the first session", route="session.create", status=409)

    def step(self, progress: view.Progress, snapshot: Snapshot) -> None:
        while self._steps and progress.completed < progress.total and self._steps[0][0](progress):
            self._steps.pop(0)[1](snapshot)

    def survived(self) -> list[tuple[str, int]]:
        fired = [(what, fault.hits) for what, fault in self.faults if fault.hits]
        return fired + [(what, 1) for what in self.events]

    def _fault(self, what: str, route: str, **options: Any) -> None:
        self.faults.append((what, self.fake.faults.add(route, **options)))
        self.say(what)

    def _bursts(self, _: Snapshot) -> None:
        self._fault("503s on the message poll", route="message", status=503, times=3)
        self._fault("503s on JIT configs", route="jit_config", status=503, times=2)

    def _drops(self, _: Snapshot) -> None:
        self._fault("a dropped message poll", route="message", drop=True)
        self._fault("a dropped runner poll", route="broker.message", drop=True)

    def _expiry(self, _: Snapshot) -> None:
        for kind in ("message_queue", "admin", "runner"):
            self.fake.expire_tokens(kind)
            self.events.append(f"{kind} tokens expired")
            self.say(self.events[-1])

    def _delete(self, snapshot: Snapshot) -> None:
        scale_set = next((s for s in snapshot.scale_sets if s.name == self.scale_set), None)
        if scale_set is None:  # being re-created already
            return
        waiting = sum(job.scale_set_id == scale_set.id and job.state in OPEN for job in snapshot.jobs)
        self.fake.delete_scale_set(scale_set.id)  # nothing runs: its waiting jobs go back to the queue
        self.events.append("the scale set deleted")
        self.say(f"scale set {scale_set.id} deleted, {waiting} jobs re-queued")
        self._fault("a JIT config's answer lost", route="jit_config", status=502, after_processing=True)
