"""What went wrong, as an exit code and one line: `actions-scaleset: error: <what> (<hint>)`.

Pure: `failure()` maps any exception to a `Failure` and never raises. The exit codes are
2 for usage (flags, URL, credentials as given), 3 for credentials GitHub refused, 1 for
anything else; 130 for an interrupted command that is not meant to run until Ctrl-C.
"""

from __future__ import annotations

from typing import Final

import attrs

from ..auth import credentials_hint
from ..config import Scope
from ..errors import (
    ActionsScaleSetError,
    AuthenticationError,
    ConfigurationError,
    InvalidConfigURLError,
    InvalidResponseError,
    JobStillRunningError,
    MessageQueueTokenExpiredError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestError,
    RunnerExistsError,
    RunnerGroupNotFoundError,
    RunnerNotFoundError,
    ScaleSetNotFoundError,
    ServerError,
    SessionConflictError,
    TransportError,
    UnprocessableEntityError,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "PROG",
    "URL_EXAMPLES",
    "CliError",
    "Failure",
    "UsageError",
    "failure",
    "first_line",
]

PROG: Final = "actions-scaleset"
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_REFUSED: Final = 3
EXIT_INTERRUPTED: Final = 130
URL_EXAMPLES: Final = (
    "give a URL such as https://github.com/ORG, https://github.com/ORG/REPO "
    "or https://github.com/enterprises/ENT"
)
_NETWORK_HINT: Final = (
    "check --url, the network and the proxy variables (HTTPS_PROXY, NO_PROXY); "
    "for a server with a private CA, --ca-file"
)


class CliError(Exception):
    """A failure the command line explains itself: what happened, and what to do."""

    code: int = EXIT_FAILED

    def __init__(self, what: str, hint: str | None = None) -> None:
        self.what = what
        self.hint = hint
        super().__init__(what)


class UsageError(CliError):
    """Bad flags, a bad URL, missing or unreadable credentials: exit 2."""

    code = EXIT_USAGE


@attrs.frozen
class Failure:
    code: int
    what: str
    hint: str | None = None

    def line(self) -> str:
        hint = f" ({self.hint})" if self.hint else ""
        return f"{PROG}: error: {self.what}{hint}"


def first_line(text: object) -> str:
    """The first non-empty line of `text`, whitespace collapsed."""
    for line in str(text).splitlines():
        if line.strip():
            return " ".join(line.split())
    return ""


def _message(exc: BaseException) -> str:
    """The error's own words: without the request line, which `RequestError` adds."""
    text = exc.message if isinstance(exc, RequestError) else str(exc)
    return first_line(text) or type(exc).__name__


def failure(exc: BaseException, *, scope: Scope | None = None, app: bool | None = None) -> Failure:
    """The exit code and the one line for `exc`. `scope` and `app` adapt the credentials hint."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:  # from a task group
        exc = exc.exceptions[0]
    if isinstance(exc, CliError):
        return Failure(exc.code, exc.what, exc.hint)
    if isinstance(exc, ActionsScaleSetError):
        return _library_failure(exc, scope, app)
    if isinstance(exc, OSError):
        return Failure(EXIT_FAILED, exc.strerror or _message(exc))
    return Failure(
        EXIT_FAILED,
        f"unexpected {type(exc).__name__}: {_message(exc)}",
        f"a bug in {PROG}: please report it, with --verbose output",
    )


def _library_failure(exc: ActionsScaleSetError, scope: Scope | None, app: bool | None) -> Failure:
    message = _message(exc)
    if isinstance(exc, InvalidConfigURLError):
        return Failure(EXIT_USAGE, message.split("; a valid config URL", 1)[0], URL_EXAMPLES)
    if isinstance(exc, ConfigurationError):
        return Failure(EXIT_USAGE, message)
    if isinstance(exc, AuthenticationError | PermissionDeniedError) and not isinstance(
        exc, MessageQueueTokenExpiredError
    ):
        what = f"GitHub refused the credentials: {message}"
        return Failure(EXIT_REFUSED, what, credentials_hint(scope, app=app))
    return Failure(EXIT_FAILED, *_explained(exc, message))


def _explained(exc: ActionsScaleSetError, message: str) -> tuple[str, str | None]:
    """(what, hint) for the failures that are neither usage nor refused credentials."""
    hint: str | None = None
    if isinstance(exc, TransportError):
        return f"cannot reach GitHub: {message}", _NETWORK_HINT
    if isinstance(exc, ScaleSetNotFoundError):
        hint = f"deleted, or removed after 7 days without a listener; list them: {PROG} scale-sets list"
    elif isinstance(exc, RunnerGroupNotFoundError):
        hint = "create it in the settings' runner groups, or use --runner-group default"
    elif isinstance(exc, RunnerNotFoundError):
        hint = f"list them: {PROG} runners list"
    elif isinstance(exc, NotFoundError):
        hint = "check --url: does it exist, and may these credentials see it?"
    elif isinstance(exc, SessionConflictError):
        hint = "a listener holds the scale set's session; stop it, or wait a few minutes if it died"
    elif isinstance(exc, RunnerExistsError):
        hint = f"choose another name, or remove the old runner: {PROG} runners remove NAME"
    elif isinstance(exc, JobStillRunningError | UnprocessableEntityError):
        hint = "a runner is running a job; try again once it finished"
    elif isinstance(exc, RateLimitError):
        wait = f" in {exc.retry_after:.0f} s" if exc.retry_after is not None else " later"
        hint = f"GitHub's rate limit; try again{wait}"
    elif isinstance(exc, ServerError):
        hint = "GitHub failed, even after retries; try again later"
    elif isinstance(exc, InvalidResponseError):
        hint = "GitHub answered something unusable; try again, or run with --verbose"
    return message, hint
