"""Running the listener: start-up checks, a `Listener` per scale set in a `ListenerGroup`, and shutdown.

Shutdown, on the first SIGINT or SIGTERM: stop polling (the message in hand is finished
and acknowledged, each session deleted), start nothing new, stop and deregister idle
runners, leave busy ones running and say so, all within `--shutdown-timeout`. A second
signal, or the timeout, cuts it short: registrations of idle runners are still removed
where a quick call can, and their processes are killed.
"""

from __future__ import annotations

import logging
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from functools import partial
from typing import Final

import anyio
import attrs
import httpx

import actions_scaleset as asc
from actions_scaleset.auth import credentials_hint

from .command import CommandProvisioner
from .logs import first_line
from .metrics import Metrics
from .provisioner import Provisioner, ProvisionerError
from .scaler import Ledger, ProvisioningScaler
from .settings import EXIT_CREDENTIALS, EXIT_USAGE, ScaleSetSettings, Settings, UsageError

__all__ = ["EXIT_FAILED", "Running", "Unit", "run", "serve"]

logger = logging.getLogger("listener")

EXIT_FAILED: Final = 1
EXIT_INTERRUPTED: Final = 130
ABORT_TIMEOUT: Final = 5.0
"""What a cut-short shutdown still spends on removing registrations."""


@attrs.define
class Unit:
    """One scale set: its settings, listener, scaler and provisioner."""

    settings: ScaleSetSettings
    scale_set: asc.RunnerScaleSet
    provisioner: Provisioner
    scaler: ProvisioningScaler
    listener: asc.Listener


@attrs.define
class Running:
    """What `serve` hands to `ready` once it listens: for a live view, and tests."""

    client: asc.ScaleSetClient
    units: Sequence[Unit]
    group: asc.ListenerGroup[str]
    metrics_port: int | None


def run(settings: Settings) -> int:
    """Run until a signal; return the exit code."""
    try:
        if settings.simulate:
            from .demo import run_demo

            code: int = anyio.run(run_demo, settings)
            return code
        return anyio.run(serve, settings)
    except KeyboardInterrupt:  # before the signal handlers were in place
        return EXIT_INTERRUPTED


def say(message: str) -> None:
    """One line on stderr, for what ends the program: the same shape as a usage error."""
    print(f"listener: error: {message}", file=sys.stderr)


async def serve(
    settings: Settings,
    *,
    stop: anyio.Event | None = None,
    ready: Callable[[Running], None] | None = None,
    provisioner_factory: Callable[[ScaleSetSettings, Settings], Provisioner] | None = None,
) -> int:
    """Listen on every scale set until a signal (or `stop`), then shut down; return the exit code."""
    assert settings.url is not None
    assert settings.credentials is not None
    http_client = _http_client(settings)
    try:
        async with asc.ScaleSetClient(settings.url, settings.credentials, http_client=http_client) as client:
            return await _serve(client, settings, stop or anyio.Event(), ready, provisioner_factory)
    finally:
        if http_client is not None:
            await http_client.aclose()


def _http_client(settings: Settings) -> httpx.AsyncClient | None:
    """With `--ca-file`, a client trusting it (proxies still come from the environment); else None."""
    if settings.ca_file is None:
        return None
    context = ssl.create_default_context(cafile=str(settings.ca_file))
    return httpx.AsyncClient(verify=context, limits=httpx.Limits(max_connections=None), trust_env=True)


async def _serve(
    client: asc.ScaleSetClient,
    settings: Settings,
    stopping: anyio.Event,
    ready: Callable[[Running], None] | None,
    provisioner_factory: Callable[[ScaleSetSettings, Settings], Provisioner] | None,
) -> int:
    # Provisioners first: a mistake in their settings (no kubeconfig, no AWS region) is said
    # before anything is created on GitHub. They open nothing until they are entered.
    factory = provisioner_factory or _provisioner
    try:
        provisioners = [factory(wanted, settings) for wanted in settings.scale_sets]
    except UsageError as exc:
        say(str(exc))
        return EXIT_USAGE
    try:
        scale_sets = [await _ensure(client, wanted) for wanted in settings.scale_sets]
    except (asc.AuthenticationError, asc.PermissionDeniedError) as exc:
        hint = credentials_hint(client.config.scope, app=isinstance(settings.credentials, asc.GitHubApp))
        say(f"GitHub refused the credentials ({first_line(exc)}): {hint}")
        return EXIT_CREDENTIALS
    except asc.RunnerGroupNotFoundError as exc:
        say(f"{first_line(exc)}: create it, or use --runner-group default")
        return EXIT_USAGE
    except asc.ActionsScaleSetError as exc:
        say(f"cannot start: {first_line(exc)} (check --url, the network and the proxy variables)")
        return EXIT_FAILED

    metrics = None
    if settings.metrics_addr is not None:
        metrics = Metrics(client.config, labelled=len(scale_sets) > 1)
        host, port = settings.metrics_addr
        try:
            port = metrics.serve(host, port)
        except OSError as exc:
            say(f"--metrics-addr {host}:{port}: {exc.strerror or exc}")
            return EXIT_USAGE
        logger.info("metrics on http://%s:%d/metrics", host, port)
    try:
        group: asc.ListenerGroup[str] = asc.ListenerGroup(start_jitter=1.0 if len(scale_sets) > 1 else 0.0)
        chosen = zip(settings.scale_sets, scale_sets, provisioners, strict=True)
        units = [_unit(client, settings, *unit, metrics, group) for unit in chosen]
        running = Running(client, units, group, port if metrics else None)
        return await _listen(settings, running, stopping, ready)
    finally:
        if metrics is not None:
            metrics.close()


async def _ensure(client: asc.ScaleSetClient, wanted: ScaleSetSettings) -> asc.RunnerScaleSet:
    scale_set = await client.ensure_scale_set(
        wanted.name, runner_group=wanted.runner_group, labels=list(wanted.labels) or None
    )
    logger.info(
        "scale set %r (id %d): %d to %d runners, %s provisioner",
        scale_set.name,
        scale_set.id,
        wanted.min_runners,
        wanted.max_runners,
        wanted.provisioner.kind,
    )
    return scale_set


def _provisioner(wanted: ScaleSetSettings, settings: Settings) -> Provisioner:
    """The scale set's provisioner. A missing extra or a bad setting is a one-line UsageError."""
    chosen = wanted.provisioner
    if chosen.kind == "kubernetes":
        try:
            from .kubernetes import KubernetesProvisioner
        except ImportError:
            raise UsageError(
                '--provisioner kubernetes needs lightkube: pip install "actions-scaleset[kubernetes]"'
            ) from None
        try:
            return KubernetesProvisioner(chosen, wanted.name)
        except ProvisionerError as exc:
            raise UsageError(f"scale set {wanted.name!r}: {exc}") from None
    if chosen.kind == "ec2":
        return _ec2_provisioner(wanted)
    if chosen.kind == "docker":
        from .docker import DockerProvisioner

        return DockerProvisioner(chosen, wanted.name)
    if chosen.kind == "simulate":
        from .simulate import SimulatedProvisioner

        return SimulatedProvisioner()
    assert chosen.runner_command is not None  # config.py requires it
    return CommandProvisioner(chosen.runner_command, settings.state_dir / "logs")


def _ec2_provisioner(wanted: ScaleSetSettings) -> Provisioner:
    chosen = wanted.provisioner
    try:
        from .ec2 import Ec2Options, Ec2Provisioner
    except ImportError:
        raise UsageError('--provisioner ec2 needs aioboto3: pip install "actions-scaleset[ec2]"') from None
    assert chosen.launch_template is not None  # config.py requires it
    options = Ec2Options(
        launch_template=chosen.launch_template,
        subnets=chosen.subnets,
        spot=chosen.spot,
        jit_via_ssm=chosen.jit_via_ssm,
        boot_timeout=chosen.boot_timeout,
        region=chosen.aws_region,
        endpoint_url=chosen.aws_endpoint_url,
    )
    try:
        provisioner: Provisioner = Ec2Provisioner(options, wanted.name)
    except ProvisionerError as exc:  # no AWS region anywhere, say
        raise UsageError(str(exc)) from None
    return provisioner


def _unit(  # noqa: PLR0917 - one call site, in order
    client: asc.ScaleSetClient,
    settings: Settings,
    wanted: ScaleSetSettings,
    scale_set: asc.RunnerScaleSet,
    provisioner: Provisioner,
    metrics: Metrics | None,
    group: asc.ListenerGroup[str],
) -> Unit:
    listener_metrics, start_metrics = metrics.for_scale_set(wanted) if metrics else (None, None)
    holder: list[asc.Listener] = []
    scaler = ProvisioningScaler(
        client,
        wanted,
        provisioner,
        lambda: holder[0].scale_set_id,
        Ledger(settings.state_dir / f"{wanted.name}.json"),
        recorder=start_metrics,
    )
    listener = asc.Listener(
        client,
        scale_set.id,
        scaler,
        wanted.min_runners,
        wanted.max_runners,
        listener_metrics,
        ensure=asc.EnsureScaleSet(wanted.name, wanted.runner_group, list(wanted.labels) or None),
        open_limiter=group.open_limiter,
    )
    holder.append(listener)
    group.add(wanted.name, listener)
    return Unit(wanted, scale_set, provisioner, scaler, listener)


async def _listen(
    settings: Settings, running: Running, stopping: anyio.Event, ready: Callable[[Running], None] | None
) -> int:
    hurry = anyio.Event()
    async with AsyncExitStack() as stack:
        for unit in running.units:
            await stack.enter_async_context(unit.provisioner)
        for unit in running.units:
            await unit.scaler.prepare()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, stopping, hurry)
            listening, listened = anyio.CancelScope(), anyio.Event()
            tg.start_soon(_until_cancelled, running.group.run, listening, listened)
            reconciling, reconciled = anyio.CancelScope(), anyio.Event()
            tg.start_soon(_until_cancelled, partial(_reconcile_all, running.units), reconciling, reconciled)
            if ready is not None:
                ready(running)
            await stopping.wait()
            await _shut_down(settings, running, hurry, (listening, listened), (reconciling, reconciled))
            tg.cancel_scope.cancel()
    logger.info("stopped")
    return 0


async def _shut_down(
    settings: Settings,
    running: Running,
    hurry: anyio.Event,
    listening: tuple[anyio.CancelScope, anyio.Event],
    reconciling: tuple[anyio.CancelScope, anyio.Event],
) -> None:
    timeout = settings.shutdown_timeout
    graceful_part = max(timeout - ABORT_TIMEOUT, timeout / 2)
    logger.info("stopping within %.0f s: finishing the message in hand, starting nothing new", timeout)
    with anyio.CancelScope(shield=True):
        with anyio.move_on_after(graceful_part) as graceful:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_cancel_when, hurry, graceful)
                for scope, done in (listening, reconciling):
                    scope.cancel()
                    await done.wait()
                async with anyio.create_task_group() as stops:
                    for unit in running.units:
                        stops.start_soon(unit.scaler.shutdown)
                tg.cancel_scope.cancel()
        if graceful.cancelled_caught:
            logger.warning("shutdown cut short: removing what registrations a quick call can")
            listening[0].cancel()
            reconciling[0].cancel()
            with anyio.move_on_after(timeout - graceful_part):
                async with anyio.create_task_group() as tg:
                    for unit in running.units:
                        tg.start_soon(unit.scaler.abort)


async def _cancel_when(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _watch_signals(stopping: anyio.Event, hurry: anyio.Event) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for received in signals:
            if not stopping.is_set():
                logger.warning("received %s: stopping (a second signal stops at once)", received.name)
                stopping.set()
            else:
                logger.warning("received %s again: stopping at once", received.name)
                hurry.set()


async def _until_cancelled(
    work: Callable[[], Awaitable[None]], scope: anyio.CancelScope, done: anyio.Event
) -> None:
    try:
        with scope:
            await work()
    finally:
        done.set()


async def _reconcile_all(units: Sequence[Unit]) -> None:
    async with anyio.create_task_group() as tg:
        for unit in units:
            tg.start_soon(unit.scaler.run)
