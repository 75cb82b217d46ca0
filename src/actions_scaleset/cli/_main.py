"""`main()` for the console script and `python -m actions_scaleset`; `run()` for tests.

`run` parses, checks what the output needs, runs one command and turns any failure into
one line on stderr and an exit code: never a traceback. `main` owns the process besides:
it configures logging (silent unless `--verbose`) and turns SIGINT and SIGTERM into a
cancellation, so `watch` deletes its session and `fake` stops its server, then exit 0.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import IO, Final

import anyio
import httpx

from .._http import RetryPolicy
from ._args import Invocation, parse
from ._commands import (
    jit,
    jobs,
    runners_list,
    runners_remove,
    scale_sets_create,
    scale_sets_delete,
    scale_sets_list,
    scale_sets_show,
    stats,
)
from ._context import Context
from ._doctor import doctor
from ._errors import EXIT_INTERRUPTED, EXIT_OK, CliError, failure
from ._fake import fake
from ._output import Output, require_rich
from ._watch import watch

__all__ = ["main", "run"]

Command = Callable[[Context], Awaitable[int]]

COMMANDS: Final[Mapping[str, Command]] = {
    "scale-sets list": scale_sets_list,
    "scale-sets show": scale_sets_show,
    "scale-sets create": scale_sets_create,
    "scale-sets delete": scale_sets_delete,
    "stats": stats,
    "jobs": jobs,
    "runners list": runners_list,
    "runners remove": runners_remove,
    "jit": jit,
    "watch": watch,
    "fake": fake,
    "doctor": doctor,
}
TABLES: Final = frozenset(
    {"scale-sets list", "scale-sets show", "scale-sets create", "stats", "jobs", "runners list", "jit"}
)
"""Commands whose readable output is a table (rich); the others print lines."""
UNTIL_INTERRUPTED: Final = frozenset({"watch", "fake"})
"""Commands a Ctrl-C ends normally (exit 0)."""


def _needs_rich(invocation: Invocation, out: Output) -> bool:
    if invocation.json:
        return False
    if invocation.command == "watch":
        return out.is_terminal  # the live table; elsewhere one line per message
    return invocation.command in TABLES


async def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    http_client: httpx.AsyncClient | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    retry: RetryPolicy | None = None,
    standalone: bool = False,
) -> int:
    """Run one command line in this event loop; return its exit code.

    `env` replaces `os.environ`, `http_client` carries every request (a
    `FakeGitHub.http_client()` in tests), `retry` replaces every retry policy.
    `standalone` (what `main` passes) also ends the command on SIGINT or SIGTERM.
    """
    out_stream = stdout if stdout is not None else sys.stdout
    err_stream = stderr if stderr is not None else sys.stderr
    ctx: Context | None = None
    try:
        invocation = parse(argv, stdout=out_stream)
        out = Output(out_stream, json_mode=invocation.json)
        if _needs_rich(invocation, out):
            require_rich()
        ctx = Context(invocation, out, os.environ if env is None else env, http_client, retry)
        command = COMMANDS[invocation.command]
        if standalone:
            return await _until_signal(command, ctx)
        return await command(ctx)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except BrokenPipeError:
        if not standalone:
            raise
        _silence_stdout()  # `... | head`: stop quietly, and let the exit not complain either
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line and an exit code
        scope = ctx.config.scope if ctx is not None and ctx.config is not None else None
        app = ctx.login.is_app if ctx is not None and ctx.login is not None else None
        problem = failure(exc, scope=scope, app=app)
        err_stream.write(problem.line() + "\n")
        err_stream.flush()
        return problem.code


class _Interrupted(CliError):
    code = EXIT_INTERRUPTED


async def _until_signal(command: Command, ctx: Context) -> int:
    """Run `command`; SIGINT or SIGTERM cancels it (cleanly: sessions are deleted on the way out)."""
    code: int | None = None
    async with anyio.create_task_group() as group:

        async def cancel_on_signal() -> None:
            try:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        group.cancel_scope.cancel()
                        return
            except (NotImplementedError, ValueError, RuntimeError):
                return  # no signal handling here (Windows, not the main thread): Ctrl-C raises

        group.start_soon(cancel_on_signal)
        code = await command(ctx)
        group.cancel_scope.cancel()
    if code is not None:
        return code
    if ctx.invocation.command in UNTIL_INTERRUPTED:
        return EXIT_OK
    raise _Interrupted("interrupted")


def _configure_logging(argv: Sequence[str]) -> None:
    if "-v" in argv or "--verbose" in argv:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
        )
    else:  # errors are told in one line; the library's log is for --verbose
        package = logging.getLogger(__name__.partition(".")[0])
        if not any(isinstance(handler, logging.NullHandler) for handler in package.handlers):
            package.addHandler(logging.NullHandler())


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    http_client: httpx.AsyncClient | None = None,
) -> int:
    """The `actions-scaleset` command; returns the exit code (the console script exits with it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    _configure_logging(args)
    try:
        return anyio.run(lambda: run(args, env=env, http_client=http_client, standalone=True))
    except KeyboardInterrupt:  # before the signal handlers were in place, or where there are none
        sys.stderr.write(failure(_Interrupted("interrupted")).line() + "\n")
        return EXIT_INTERRUPTED


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
