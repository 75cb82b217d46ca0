"""`ProvisioningScaler`: the listener's `asc.Scaler`, keeping runners through a `Provisioner`.

The listener tells it how many runners it wants; a reconciler task makes it so:

- scale up to the count, never above it: runners being started count, so a need is
  provisioned once;
- scale down idle runners only: deregister first (GitHub refuses while a job runs),
  then stop the compute;
- a runner whose compute is gone before it took a job is removed from GitHub (its JIT
  config was minted, its machine never came);
- a failed start is counted, cleaned up and retried with backoff; it never stops the listener.

Every registration is written to a ledger file, so that a listener started again after
a crash removes the runners it registered and no compute runs any more.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, Literal, Protocol

import anyio
import attrs

import actions_scaleset as asc

from .logs import first_line
from .provisioner import NewRunner, Provisioner, RunnerHandle
from .settings import ScaleSetSettings

__all__ = ["START_BACKOFF", "Ledger", "ProvisioningScaler", "StartRecorder", "StopReason"]

logger = logging.getLogger("listener.scaler")

START_BACKOFF: Final = asc.RetryPolicy(max_attempts=1_000_000, initial_delay=1.0, max_delay=60.0, jitter=0.25)
"""The wait after a failed start: 1 s doubling to a minute, for as long as starts fail."""
CHECK_INTERVAL: Final = 1.0
"""How often the compute is checked when nothing else wakes the reconciler."""
FINISHED_GRACE: Final = 60.0
"""How long a runner's compute may outlive its job before it is stopped."""
CLEANUP_TIMEOUT: Final = 15.0
START_CONCURRENCY: Final = 8
ABORT_STOP_WAIT: Final = 1.0
"""In a shutdown cut short, how long a runner's compute gets to stop before it is killed."""

State = Literal["starting", "idle", "busy", "finished", "stopping"]


StopReason = Literal["scaled_down", "job_done", "exited", "failed_start", "shutdown"]
"""Why a runner's compute stopped: fewer runners wanted, its job done, it exited on its own,
its start was taken back, or the listener stopped."""


class StartRecorder(Protocol):
    """Where starts and stops are counted (`metrics.ProvisionerMetrics`)."""

    def record_start(self, ok: bool, seconds: float) -> None: ...

    def record_stop(self, reason: StopReason) -> None: ...


class _NoRecorder:
    def record_start(self, ok: bool, seconds: float) -> None:
        pass

    def record_stop(self, reason: StopReason) -> None:
        pass


@attrs.define
class _Runner:
    name: str
    id: int | None = None
    handle: RunnerHandle | None = None
    state: State = "starting"
    finished_at: float | None = None


class Ledger:
    """The runners this listener registered and has not yet seen removed: `{name: id}` in a JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, int] = {}
        self._lock = anyio.Lock()

    def load(self) -> Mapping[str, int]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raw = {}
        except (OSError, ValueError) as exc:
            aside = self.path.with_suffix(".unreadable")
            logger.warning("ledger %s is unreadable (%s); kept as %s, starting afresh", self.path, exc, aside)
            os.replace(self.path, aside)
            raw = {}
        if not isinstance(raw, dict):
            raw = {}
        self._entries = {str(k): v for k, v in raw.items() if isinstance(v, int) and not isinstance(v, bool)}
        return dict(self._entries)

    async def add(self, name: str, runner_id: int) -> None:
        self._entries[name] = runner_id
        await self._save()

    async def discard(self, name: str) -> None:
        if self._entries.pop(name, None) is not None:
            await self._save()

    async def _save(self) -> None:
        async with self._lock:
            text = json.dumps(self._entries, sort_keys=True)
            await anyio.to_thread.run_sync(self._write, text)

    def _write(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, self.path)


class ProvisioningScaler:
    """An `asc.Scaler` that keeps as many runners as the listener wants, through a provisioner.

    `prepare()` once before listening (adopt compute, remove orphans), `run()` in a task
    until cancelled, then `shutdown()` to stop and deregister idle runners.
    `scale_set_id` is read on every registration: the listener re-creates a deleted scale set.
    """

    def __init__(
        self,
        client: asc.ScaleSetClient,
        settings: ScaleSetSettings,
        provisioner: Provisioner,
        scale_set_id: Callable[[], int | None],
        ledger: Ledger,
        *,
        recorder: StartRecorder | None = None,
        start_backoff: asc.RetryPolicy = START_BACKOFF,
        check_interval: float = CHECK_INTERVAL,
    ) -> None:
        self.client = client
        self.settings = settings
        self.provisioner = provisioner
        self.scale_set_id = scale_set_id
        self.ledger = ledger
        self.recorder: StartRecorder = recorder if recorder is not None else _NoRecorder()
        self.start_backoff = start_backoff
        self.check_interval = check_interval
        self.target = 0
        self.start_failures = 0
        """Failed starts in all; rounds of starts that failed in a row decide the backoff."""
        self.peak = 0
        """The most runners registered at once."""
        self.runners: dict[str, _Runner] = {}
        self._failures_in_a_row = 0
        self._next_start_at = 0.0
        self._wake = anyio.Event()

    def __repr__(self) -> str:
        return (
            f"ProvisioningScaler({self.settings.name!r}, target={self.target}, runners={len(self.runners)})"
        )

    def _log(self, level: int, message: str, *args: object) -> None:
        logger.log(
            level, "%s: " + message, self.settings.name, *args, extra={"scale_set": self.settings.name}
        )

    def count(self, *states: State) -> int:
        return sum(1 for runner in self.runners.values() if runner.state in states)

    # ------------------------------------------------------------------ asc.Scaler

    async def handle_desired_runner_count(self, count: int) -> int:
        if count != self.target:
            self._log(logging.INFO, "%d runners wanted (%d now)", count, len(self.runners))
        self.target = count
        self._wake.set()
        return count

    async def handle_job_started(self, job: asc.JobStarted) -> None:
        runner = self.runners.get(job.runner_name)
        if runner is not None and runner.state in ("starting", "idle", "stopping"):
            runner.state = "busy"
        self._log(logging.INFO, "job %r started on %s", job.job_display_name, job.runner_name)

    async def handle_job_completed(self, job: asc.JobCompleted) -> None:
        runner = self.runners.get(job.runner_name)
        if runner is not None:
            runner.state = "finished"
            runner.finished_at = time.monotonic()
        self._log(
            logging.INFO,
            "job %r %s on %s",
            job.job_display_name,
            job.result,
            job.runner_name or "-",
        )
        self._wake.set()

    # ------------------------------------------------------------------ life cycle

    async def prepare(self) -> None:
        """Adopt compute still running, and remove the registrations nothing runs any more."""
        recorded = self.ledger.load()
        for handle in await self.provisioner.adopt():
            self.runners[handle.runner_name] = _Runner(handle.runner_name, handle.runner_id, handle, "idle")
            await self.ledger.add(handle.runner_name, handle.runner_id)
        if self.runners:
            self._log(logging.INFO, "adopted %d runners still running", len(self.runners))
        for name, runner_id in recorded.items():
            if name in self.runners:
                continue
            if await self._deregister(name, runner_id, why="no compute runs it any more"):
                await self.ledger.discard(name)

    async def run(self) -> None:
        """Reconcile until cancelled: on every change the listener reports, and every `check_interval`."""
        while True:
            self._wake = anyio.Event()
            await self.reconcile()
            with anyio.move_on_after(self.check_interval):
                await self._wake.wait()

    async def reconcile(self) -> None:
        await self._collect_exits()
        # A runner whose job is done is deregistered by GitHub (ephemeral), so it holds no place;
        # its compute is only waiting to exit.
        places = len(self.runners) - self.count("finished")
        missing = self.target - places
        # While the listener re-creates a deleted scale set there is nowhere to register.
        if missing > 0 and time.monotonic() >= self._next_start_at and self.scale_set_id() is not None:
            outcomes: list[bool] = []
            async with anyio.create_task_group() as tg:
                limiter = anyio.CapacityLimiter(START_CONCURRENCY)
                for _ in range(missing):
                    tg.start_soon(self._start, limiter, outcomes)
            if False in outcomes:
                self._back_off_starts(outcomes.count(False))
            elif outcomes:
                self._failures_in_a_row = 0
        excess = places - self.target
        idle = [runner for runner in self.runners.values() if runner.state == "idle"]
        for runner in idle[:excess] if excess > 0 else []:
            await self._retire(runner, "fewer runners wanted", "scaled_down")

    async def shutdown(self) -> None:
        """Stop and deregister every runner that is not running a job; leave busy ones, and say so."""
        async with anyio.create_task_group() as tg:
            for runner in list(self.runners.values()):
                if runner.id is None:
                    continue  # a start still taking itself back
                if runner.state == "busy":
                    where = f" ({runner.handle.ref})" if runner.handle else ""
                    self._log(
                        logging.WARNING,
                        "runner %s is running a job; leaving it to finish%s",
                        runner.name,
                        where,
                    )
                else:
                    tg.start_soon(self._retire, runner, "the listener is stopping", "shutdown")

    async def abort(self) -> None:
        """A shutdown cut short: every idle runner's registration removed and its compute stopped, at once."""

        async def drop(runner: _Runner) -> None:
            assert runner.id is not None
            if await self._deregister(runner.name, runner.id, why="the listener is stopping"):
                await self.ledger.discard(runner.name)
            if runner.handle is not None:
                with anyio.move_on_after(ABORT_STOP_WAIT):  # the provisioner's exit kills what is left
                    await self._stop_compute(runner.handle, "shutdown")

        async with anyio.create_task_group() as tg:
            for runner in list(self.runners.values()):
                if runner.id is not None and runner.state != "busy":
                    tg.start_soon(drop, runner)

    # ------------------------------------------------------------------ the work

    async def _start(self, limiter: anyio.CapacityLimiter, outcomes: list[bool]) -> None:
        name = f"{self.settings.name}-{secrets.token_hex(4)}"
        runner = _Runner(name)
        self.runners[name] = runner
        self.peak = max(self.peak, len(self.runners))
        began = time.monotonic()
        try:
            async with limiter:
                await self._boot(runner)
        except Exception as exc:  # noqa: BLE001 - whatever a provisioner raises, the listener goes on
            outcomes.append(False)
            self._start_failed(runner, exc, time.monotonic() - began)
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
                await self._undo(runner)
            return
        except BaseException:  # cancelled mid-start: take back what was made
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
                await self._undo(runner)
            raise
        outcomes.append(True)
        self.recorder.record_start(True, time.monotonic() - began)
        self._log(logging.INFO, "started runner %s (%s)", name, runner.handle and runner.handle.ref)

    async def _boot(self, runner: _Runner) -> None:
        scale_set_id = self.scale_set_id()
        if scale_set_id is None:
            raise RuntimeError("the scale set is being re-created")
        jit = await self.client.generate_jit_config(
            scale_set_id, name=runner.name, work_folder=self.settings.provisioner.work_folder
        )
        runner.id = jit.runner.id
        await self.ledger.add(runner.name, jit.runner.id)
        new = NewRunner(runner.name, jit.runner.id, self.settings.name, jit.encoded_jit_config)
        runner.handle = await self.provisioner.start(new)
        if runner.state == "starting":  # a JobStarted may have come first
            runner.state = "idle"

    def _start_failed(self, runner: _Runner, exc: Exception, seconds: float) -> None:
        self.start_failures += 1
        self.recorder.record_start(False, seconds)
        self._log(logging.WARNING, "could not start runner %s: %s", runner.name, first_line(exc))

    def _back_off_starts(self, failed: int) -> None:
        """One round of starts failed (however many of them): wait longer before the next round."""
        self._failures_in_a_row += 1
        wait = self.start_backoff.capped_wait(self._failures_in_a_row, None, random=self.client.http.random())
        self._next_start_at = time.monotonic() + wait
        self._log(
            logging.WARNING,
            "%d starts failed; starting again in %.0f s (%d rounds failed in a row)",
            failed,
            wait,
            self._failures_in_a_row,
        )

    async def _undo(self, runner: _Runner) -> None:
        """Take back a start that failed half way: the compute, then the registration."""
        self.runners.pop(runner.name, None)
        if runner.handle is not None:
            await self._stop_compute(runner.handle, "failed_start")
        runner_id = runner.id
        if runner_id is None:  # the registration's answer may have been lost: look it up
            try:
                found = await self.client.get_runner_by_name(runner.name)
            except asc.ActionsScaleSetError:
                found = None
            runner_id = found.id if found is not None else None
        if runner_id is None or await self._deregister(runner.name, runner_id, why="its start failed"):
            await self.ledger.discard(runner.name)

    async def _collect_exits(self) -> None:
        try:
            alive = {handle.runner_name for handle in await self.provisioner.running()}
        except Exception as exc:  # noqa: BLE001 - a provisioner's failure never stops the listener
            self._log(logging.WARNING, "could not list the runners' compute: %s", first_line(exc))
            return
        now = time.monotonic()
        for runner in list(self.runners.values()):
            if runner.handle is None or runner.state == "stopping":
                continue
            if runner.name not in alive:
                await self._gone(runner)
            elif runner.state == "finished" and now - (runner.finished_at or now) > FINISHED_GRACE:
                self._log(logging.WARNING, "runner %s outlived its job; stopping it", runner.name)
                await self._retire(runner, "its job is done", "job_done")

    async def _gone(self, runner: _Runner) -> None:
        """Its compute exited. After a job an ephemeral runner deregisters itself; if it is still
        registered, it never ran one (its machine failed), so the registration is removed."""
        self.runners.pop(runner.name, None)
        self.recorder.record_stop("exited")
        assert runner.id is not None
        try:
            await self.client.remove_runner(runner.id)
        except asc.RunnerNotFoundError:
            pass
        except asc.ActionsScaleSetError as exc:  # a job still running on it, or the API down: next start
            self._log(
                logging.WARNING,
                "runner %s exited, and its registration stays: %s",
                runner.name,
                first_line(exc),
            )
            return
        else:
            self._log(
                logging.WARNING,
                "runner %s exited before it took a job; removed its registration",
                runner.name,
            )
        await self.ledger.discard(runner.name)

    async def _retire(self, runner: _Runner, why: str, reason: StopReason) -> None:
        """Deregister an idle runner, then stop its compute. A runner that took a job is spared."""
        previous = runner.state
        runner.state = "stopping"
        assert runner.id is not None
        try:
            await self.client.remove_runner(runner.id)
        except asc.JobStillRunningError:
            runner.state = "busy"
            return
        except asc.RunnerNotFoundError:
            pass  # gone already: its job ended and it deregistered itself
        except asc.ActionsScaleSetError as exc:
            runner.state = previous
            self._log(logging.WARNING, "could not remove runner %s: %s", runner.name, first_line(exc))
            return
        if runner.handle is not None:
            await self._stop_compute(runner.handle, reason)
        self.runners.pop(runner.name, None)
        await self.ledger.discard(runner.name)
        self._log(logging.INFO, "removed runner %s (%s)", runner.name, why)

    async def _stop_compute(self, handle: RunnerHandle, reason: StopReason) -> None:
        try:
            await self.provisioner.stop(handle)
        except Exception as exc:  # noqa: BLE001 - a provisioner's failure never stops the listener
            self._log(logging.WARNING, "could not stop %s: %s", handle.runner_name, first_line(exc))
        else:
            self.recorder.record_stop(reason)

    async def _deregister(self, name: str, runner_id: int, *, why: str) -> bool:
        """Remove a registration; True when it is gone (or never was)."""
        try:
            await self.client.remove_runner(runner_id)
        except asc.RunnerNotFoundError:
            return True
        except asc.JobStillRunningError:
            self._log(logging.WARNING, "runner %s is running a job, though %s; left registered", name, why)
            return False
        except asc.ActionsScaleSetError as exc:
            self._log(logging.WARNING, "could not remove runner %s: %s", name, first_line(exc))
            return False
        self._log(logging.INFO, "removed runner %s (%s)", name, why)
        return True
