"""A reference listener: autoscale runner processes for one scale set.

    GITHUB_TOKEN=ghp_... python examples/listener.py --url https://github.com/my-org \\
        --scale-set linux --labels linux,x64 --max 10 \\
        --runner-command 'docker run --rm -e ACTIONS_RUNNER_INPUT_JITCONFIG my-runner-image'

Each runner is one process started with `--runner-command`; its JIT config is in the
environment variable ACTIONS_RUNNER_INPUT_JITCONFIG (as ARC passes it). A process
that exits without having taken a job is deregistered, so no orphan runner is left.
When fewer runners are wanted, idle ones are deregistered first and then stopped.

Credentials come from the environment: GITHUB_TOKEN, or a GitHub App with
GITHUB_APP_CLIENT_ID (or GITHUB_APP_ID), GITHUB_APP_PRIVATE_KEY (or
GITHUB_APP_PRIVATE_KEY_PATH) and optionally GITHUB_APP_INSTALLATION_ID.

    python examples/listener.py --fake --jobs 5

runs everything offline: FakeGitHub on a loopback port, and runners that are
`python -m actions_scaleset.runner` processes.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import attrs
from anyio.abc import Process, TaskGroup

import actions_scaleset as asc

logger = logging.getLogger("listener")
JITCONFIG_ENV = "ACTIONS_RUNNER_INPUT_JITCONFIG"
STOP_GRACE = 10.0


@attrs.define
class RunnerProcess:
    id: int
    name: str
    process: Process | None = None
    busy: bool = False
    retired: bool = False


class ProcessProvisioner:
    """An `asc.Scaler` that runs one process per runner."""

    def __init__(
        self, client: asc.ScaleSetClient, tg: TaskGroup, scale_set_id: int, command: Sequence[str]
    ) -> None:
        self.client = client
        self.tg = tg
        self.scale_set_id = scale_set_id
        self.command = list(command)
        self.runners: dict[str, RunnerProcess] = {}
        self.completed = 0

    async def handle_desired_runner_count(self, count: int) -> int:
        while len(self.runners) < count:
            name = f"{self.scale_set_id}-{uuid.uuid4().hex[:8]}"
            jit = await self.client.generate_jit_config(self.scale_set_id, name=name)
            runner = RunnerProcess(jit.runner.id, jit.runner.name)
            self.runners[name] = runner
            self.tg.start_soon(self._run, runner, jit.encoded_jit_config)
        idle = [runner for runner in self.runners.values() if not runner.busy]
        for runner in idle[: max(0, len(self.runners) - count)]:
            await self._retire(runner)
        return count

    async def handle_job_started(self, job: asc.JobStarted) -> None:
        runner = self.runners.get(job.runner_name)
        if runner is not None:
            runner.busy = True
        logger.info("job %r started on %s", job.job_display_name, job.runner_name)

    async def handle_job_completed(self, job: asc.JobCompleted) -> None:
        self.completed += 1
        logger.info("job %r on %s: %s", job.job_display_name, job.runner_name or "-", job.result)

    async def _run(self, runner: RunnerProcess, jit: asc.Secret) -> None:
        env = {**os.environ, JITCONFIG_ENV: jit.get_secret_value()}
        try:
            async with await anyio.open_process(self.command, env=env, stdout=None, stderr=None) as process:
                runner.process = process
                code = await process.wait()
            logger.info("runner %s exited with %s", runner.name, code)
        finally:
            self.runners.pop(runner.name, None)
            if not runner.busy and not runner.retired:
                # It never took a job: deregister it so it does not linger offline.
                with anyio.CancelScope(shield=True):
                    await self._deregister(runner)

    async def _retire(self, runner: RunnerProcess) -> None:
        runner.retired = True
        try:
            await self.client.remove_runner(runner.id)
        except asc.JobStillRunningError:
            runner.retired = False  # it took a job after all
            return
        except asc.RunnerNotFoundError:
            pass
        self.runners.pop(runner.name, None)
        if runner.process is not None and runner.process.returncode is None:
            runner.process.terminate()
        logger.info("retired idle runner %s", runner.name)

    async def _deregister(self, runner: RunnerProcess) -> None:
        try:
            await self.client.remove_runner(runner.id)
        except asc.RunnerNotFoundError:
            pass
        except asc.ActionsScaleSetError as exc:
            logger.warning("could not deregister runner %s: %s", runner.name, exc)


def credentials(env: Mapping[str, str]) -> asc.Credentials:
    if env.get("GITHUB_TOKEN"):
        return asc.PersonalAccessToken(env["GITHUB_TOKEN"])
    key = env.get("GITHUB_APP_PRIVATE_KEY")
    if not key and env.get("GITHUB_APP_PRIVATE_KEY_PATH"):
        key = Path(env["GITHUB_APP_PRIVATE_KEY_PATH"]).read_text(encoding="utf-8")
    if key and (env.get("GITHUB_APP_CLIENT_ID") or env.get("GITHUB_APP_ID")):
        installation = env.get("GITHUB_APP_INSTALLATION_ID")
        return asc.GitHubApp(
            client_id=env.get("GITHUB_APP_CLIENT_ID") or None,
            app_id=None if env.get("GITHUB_APP_CLIENT_ID") else env.get("GITHUB_APP_ID"),
            installation_id=int(installation) if installation else None,
            private_key=key,
        )
    raise SystemExit(
        "set GITHUB_TOKEN, or GITHUB_APP_CLIENT_ID/GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY[_PATH]"
    )


def prometheus(args: argparse.Namespace, client: asc.ScaleSetClient) -> asc.MetricsRecorder | None:
    """ARC's gha_* metrics on http://ADDR:PORT/metrics, when --metrics-port is given."""
    if args.metrics_port is None:
        return None
    from prometheus_client import start_http_server

    metrics = asc.PrometheusMetrics(client.config, args.scale_set, min_runners=args.min, max_runners=args.max)
    start_http_server(args.metrics_port, addr=args.metrics_addr, registry=metrics.registry)
    logger.info("metrics on http://%s:%d/metrics", args.metrics_addr, args.metrics_port)
    return metrics


async def listen(
    args: argparse.Namespace, client: asc.ScaleSetClient, until_completed: int | None = None
) -> int:
    labels = [label.strip() for label in args.labels.split(",") if label.strip()] or None
    scale_set = await client.ensure_scale_set(args.scale_set, runner_group=args.runner_group, labels=labels)
    logger.info(
        "listening on scale set %d %r (min %d, max %d)", scale_set.id, scale_set.name, args.min, args.max
    )
    metrics = prometheus(args, client)
    async with anyio.create_task_group() as tg:
        provisioner = ProcessProvisioner(client, tg, scale_set.id, shlex.split(args.runner_command))
        listener = asc.Listener(
            client,
            scale_set.id,
            provisioner,
            args.min,
            args.max,
            metrics,
            ensure=asc.EnsureScaleSet(args.scale_set, runner_group=args.runner_group, labels=labels),
        )
        tg.start_soon(listener.run)
        tg.start_soon(_stop_on_signal, tg)
        if until_completed is not None:
            while provisioner.completed < until_completed or provisioner.runners:  # noqa: ASYNC110 - demo mode
                await anyio.sleep(0.2)
            tg.cancel_scope.cancel()
    return provisioner.completed


async def _stop_on_signal(tg: TaskGroup) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for received in signals:
            logger.info("received %s; stopping (the session is deleted on the way out)", received.name)
            tg.cancel_scope.cancel()
            return


async def run_fake(args: argparse.Namespace) -> int:
    from actions_scaleset.testing import FakeGitHub

    fake = FakeGitHub()
    async with fake.serve() as base_url:
        logger.info("FakeGitHub on %s with %d queued jobs", base_url, args.jobs)
        for index in range(args.jobs):
            fake.enqueue_job(labels=[args.scale_set], repository="acme/app", display_name=f"job {index + 1}")
        async with asc.ScaleSetClient(fake.config_url("acme"), fake.pat()) as client:
            done = await listen(args, client, until_completed=args.jobs)
        left = len(fake.snapshot().runners)
    print(f"{done} jobs completed, {left} runners left registered")
    return 0


async def run(args: argparse.Namespace) -> int:
    async with asc.ScaleSetClient(args.url, credentials(os.environ)) as client:
        await listen(args, client)
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--url", help="config URL: https://github.com/ORG, .../ORG/REPO or .../enterprises/ENT"
    )
    parser.add_argument(
        "--scale-set", default="python-runners", help="scale set name (also its default label)"
    )
    parser.add_argument("--labels", default="", help="comma-separated labels (default: the scale set name)")
    parser.add_argument("--runner-group", default="default")
    parser.add_argument("--min", type=int, default=0, help="idle runners to keep")
    parser.add_argument("--max", type=int, default=10, help="most runners at once")
    parser.add_argument(
        "--runner-command",
        default=f"{shlex.quote(sys.executable)} -m actions_scaleset.runner --exec 'echo hello from a runner'",
        help=f"command that runs one runner; its JIT config is in ${JITCONFIG_ENV}",
    )
    parser.add_argument(
        "--metrics-port", type=int, help="serve ARC's gha_* metrics (needs the metrics extra)"
    )
    parser.add_argument("--metrics-addr", default="127.0.0.1", help="address for the metrics server")
    parser.add_argument("--fake", action="store_true", help="run offline against FakeGitHub")
    parser.add_argument("--jobs", type=int, default=3, help="with --fake: how many jobs to queue")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if not args.fake and not args.url:
        parser.error("--url is required (or --fake)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return anyio.run(run_fake if args.fake else run, args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
