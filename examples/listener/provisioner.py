"""The provisioner protocol: how the listener gets compute for a runner, and takes it back.

A provisioner knows nothing about GitHub. The scaler (`scaler.py`) mints each runner's
JIT config and hands it over as a `NewRunner`; the provisioner starts compute that runs
GitHub's runner with it, and reports what is still running. Write your own (VMs, pods,
instances) by implementing these five methods; `command.py`, `docker.py` and
`simulate.py` are three examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Final, Protocol, Self, runtime_checkable

import attrs

import actions_scaleset as asc

__all__ = ["JITCONFIG_ENV", "RUNNER_NAME_ENV", "NewRunner", "Provisioner", "ProvisionerError", "RunnerHandle"]

JITCONFIG_ENV: Final = "ACTIONS_RUNNER_INPUT_JITCONFIG"
"""The environment variable GitHub's `run.sh` reads its JIT config from."""
RUNNER_NAME_ENV: Final = "RUNNER_NAME"


class ProvisionerError(Exception):
    """Compute could not be started or stopped. Its message is one line; the scaler retries with backoff."""

    def without(self, secret: asc.Secret) -> ProvisionerError:
        """This error, or a copy whose message no longer holds `secret` (an API may echo the JIT
        config it was sent back in its error)."""
        value = secret.get_secret_value()
        if value and value in str(self):
            return ProvisionerError(str(self).replace(value, "<jit config>"))
        return self


@attrs.frozen
class NewRunner:
    """A runner registered with GitHub that needs compute: what `Provisioner.start` is given."""

    name: str
    id: int
    scale_set: str
    """The scale set's name (for labels and tags on the compute)."""
    jit_config: asc.Secret
    """The encoded JIT config; pass it as ACTIONS_RUNNER_INPUT_JITCONFIG. `Secret` never prints."""

    def environment(self) -> dict[str, str]:
        """The variables a runner process needs: its JIT config and its name."""
        return {JITCONFIG_ENV: self.jit_config.get_secret_value(), RUNNER_NAME_ENV: self.name}


@attrs.frozen
class RunnerHandle:
    """Compute that runs one runner, as its provisioner names it."""

    runner_name: str
    runner_id: int
    ref: str
    """The provisioner's own id for the compute: a pid, a container id, a pod or instance name."""


@runtime_checkable
class Provisioner(Protocol):
    """Starts and stops the compute runners run on. Used as `async with provisioner:`.

    - `adopt()` is called once at start: the compute of this scale set still running from
      an earlier run of the listener (labelled containers, tagged instances). Runners the
      listener registered that no adopted compute runs are then removed from GitHub.
    - `start(runner)` starts compute for a registered runner and returns its handle; it
      raises `ProvisionerError` when it cannot. Keep it bounded: time out your own calls.
    - `stop(handle)` stops the compute; it is not an error if it is gone already.
    - `running()` lists the compute that is still running. A runner whose compute is gone
      before it took a job is removed from GitHub by the scaler.
    - Leaving `async with` releases the provisioner's own resources; it never stops
      compute that runs a job.
    """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def adopt(self) -> Sequence[RunnerHandle]: ...

    async def start(self, runner: NewRunner) -> RunnerHandle: ...

    async def stop(self, handle: RunnerHandle) -> None: ...

    async def running(self) -> Sequence[RunnerHandle]: ...
