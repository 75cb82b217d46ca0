"""`python -m actions_scaleset.runner`: a tiny runner that runs one shell command as each job's only step.

The command's output (stdout and stderr, masked) is echoed locally and uploaded
as the step log; the job completes `succeeded` on exit status 0, `failed`
otherwise (with the runner's "Process completed with exit code N." annotation),
or `canceled` after a `JobCancellation`. The process exit code follows the
official runner (docs/protocol.md, "Runner errors"): 0 done, 1 terminated error,
2 retryable, 5 session conflict.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

import anyio
import httpx
from anyio.abc import ByteReceiveStream, Process

from .._http import HTTPCore
from ..errors import (
    ActionsScaleSetError,
    ConfigurationError,
    HTTPStatusError,
    OAuthError,
    RequestError,
    RunnerSessionConflictError,
    ServerError,
    TransportError,
)
from ._client import RunnerClient
from ._jitconfig import JitConfig
from ._jobs import Annotation, Conclusion, Job, Step

__all__ = ["main", "run_command_job", "serve"]

logger = logging.getLogger("actions_scaleset.runner")

JITCONFIG_ENV: Final = "ACTIONS_RUNNER_INPUT_JITCONFIG"
EXIT_OK: Final = 0
EXIT_TERMINATED: Final = 1
EXIT_RETRYABLE: Final = 2
EXIT_SESSION_CONFLICT: Final = 5
EXIT_INTERRUPTED: Final = 130
_POSIX: Final = os.name == "posix"
MIN_CANCEL_GRACE: Final = 60.0
CANCEL_MARGIN: Final = 15.0

Echo = Callable[[str], None]


def exit_code_for(exc: BaseException) -> int:
    """The official runner's exit code for an error that stopped it (docs/protocol.md, "Runner errors",
    "Polling and runner messages")."""
    if isinstance(exc, RunnerSessionConflictError):
        return EXIT_SESSION_CONFLICT
    if isinstance(exc, TransportError | ServerError):
        return EXIT_RETRYABLE
    return EXIT_TERMINATED


def cancel_grace(timeout: timedelta | None) -> float:
    """How long a cancelled command gets before it is killed: `max(timeout, 60 s) - 15 s`
    (docs/protocol.md, "Polling and runner messages")."""
    seconds = timeout.total_seconds() if timeout is not None else 0.0
    return max(seconds, MIN_CANCEL_GRACE) - CANCEL_MARGIN


def conclusion_for(exit_status: int | None, cancelled: bool) -> Conclusion:
    if cancelled:
        return "canceled"
    return "succeeded" if exit_status == 0 else "failed"


async def _stream_lines(stream: ByteReceiveStream, on_line: Callable[[str], None]) -> None:
    pending = b""
    async for chunk in stream:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            on_line(line.decode("utf-8", errors="replace").rstrip("\r"))
    if pending:
        on_line(pending.decode("utf-8", errors="replace").rstrip("\r"))


def _signal_group(process: Process, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if _POSIX:
            os.killpg(process.pid, signum)
        else:  # pragma: no cover - Windows has no process groups to signal
            process.terminate()


async def _run(command: str, job: Job, on_line: Callable[[str], None]) -> int:
    # Its own process group, so that a cancellation reaches the shell's children too.
    process = await anyio.open_process(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=_POSIX,
    )
    async with process, anyio.create_task_group() as tg:

        async def stop_on_cancel() -> None:
            await job.cancelled.wait()
            logger.warning("job %s cancelled (%s); stopping the command", job.job_id, job.cancel_reason)
            _signal_group(process, signal.SIGTERM)
            with anyio.move_on_after(cancel_grace(job.cancel_timeout)):
                await process.wait()
                return
            _signal_group(process, signal.SIGKILL if _POSIX else signal.SIGTERM)

        tg.start_soon(stop_on_cancel)
        assert process.stdout is not None
        await _stream_lines(process.stdout, on_line)
        status = await process.wait()
        tg.cancel_scope.cancel()
    return status


async def run_command_job(job: Job, command: str, *, echo: Echo) -> Conclusion:
    """Run `command` in a shell as the job's single step, report it, and complete the job."""

    def now() -> datetime:
        return datetime.fromtimestamp(job.http.clock(), UTC)

    info = job.steps[0] if job.steps else None
    step = Step(
        external_id=info.id if info is not None and info.id else str(uuid.uuid4()),
        number=1,
        name=info.name if info is not None else f"Run {command}",
        type="run",
        action_name="run",
    ).start(now())
    await _report(job.update_steps([step]), "report the step as started")

    lines: list[str] = []

    def on_line(line: str) -> None:
        masked = job.mask_line(line)
        lines.append(masked)
        echo(masked)

    logger.info("job %s: running %r", job.job_id, command)
    status: int | None
    try:
        status = await _run(command, job, on_line)
    except OSError as exc:
        on_line(f"could not start the command: {exc}")
        status = None

    conclusion = conclusion_for(status, job.cancelled.is_set())
    annotations: tuple[Annotation, ...] = ()
    if conclusion == "failed":
        annotations = (
            Annotation(
                f"Process completed with exit code {status}."
                if status is not None
                else "The command did not start.",
                level="failure",
                step_number=1,
            ),
        )
    log_lines: int | None = None
    try:
        log_lines = await job.upload_step_log(step, lines)
    except ActionsScaleSetError as exc:
        logger.warning("could not upload the step log: %s", exc)
    step = step.finish(conclusion, now(), annotations=annotations, completed_log_lines=log_lines)
    await _report(job.update_steps([step]), "report the step as completed")
    await job.complete(conclusion, step_results=[step])
    logger.info("job %s: %s (exit status %s)", job.job_id, conclusion, status)
    return conclusion


async def _report(call: object, what: str) -> None:
    try:
        await call  # type: ignore[misc]
    except ActionsScaleSetError as exc:
        logger.warning("could not %s: %s", what, exc)


async def serve(
    config: JitConfig,
    command: str,
    *,
    echo: Echo = print,
    http: HTTPCore | None = None,
    http_client: httpx.AsyncClient | None = None,
) -> int:
    """Take jobs and run `command` for each (one job for an ephemeral runner); return the exit code."""
    try:
        async with RunnerClient(config, http=http, http_client=http_client) as runner:
            logger.info(
                "runner %r listening (%s flow, session %s)",
                config.runner.agent_name,
                runner.connection.flow,
                runner.session_id,
            )
            async with contextlib.aclosing(runner.job_requests()) as requests:
                async for request in requests:
                    try:
                        job = await runner.acquire_job(request)
                    except (HTTPStatusError, RequestError) as exc:
                        # 404/409/422 skip the job; other failures drop it after the retries
                        # (docs/protocol.md, "Acquire, renew, complete").
                        logger.warning("could not take job %s: %s", request.runner_request_id, exc.message)
                        continue
                    try:
                        await run_command_job(job, command, echo=echo)
                    except ActionsScaleSetError as exc:
                        logger.error("job %s could not be completed: %s", job.job_id, exc)
    except ActionsScaleSetError as exc:
        return _report_stop(exc)
    return EXIT_OK


def _report_stop(exc: ActionsScaleSetError) -> int:
    if isinstance(exc, OAuthError) and exc.registration_deleted:
        logger.error("the runner registration has been deleted: %s", exc)
    else:
        logger.error("the runner stopped: %s", exc)
    return exit_code_for(exc)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m actions_scaleset.runner",
        description="A tiny self-hosted runner: takes a job and runs one shell command as its only step.",
    )
    parser.add_argument(
        "--jitconfig",
        default=os.environ.get(JITCONFIG_ENV),
        help=f"the encoded JIT config (default: ${JITCONFIG_ENV}, safer: arguments are visible to ps)",
    )
    parser.add_argument(
        "--exec", dest="command", required=True, metavar="CMD", help="shell command to run per job"
    )
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio", help="the async backend")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.jitconfig:
        parser.error(f"give --jitconfig or set {JITCONFIG_ENV}")
    try:
        config = JitConfig.decode(args.jitconfig)
    except ConfigurationError as exc:
        logger.error("%s", exc)
        return EXIT_TERMINATED
    try:
        return anyio.run(_serve_stdout, config, args.command, backend=args.backend)
    except KeyboardInterrupt:
        logger.warning("interrupted")
        return EXIT_INTERRUPTED


async def _serve_stdout(config: JitConfig, command: str) -> int:
    def echo(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    return await serve(config, command, echo=echo)
