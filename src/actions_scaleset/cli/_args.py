"""The command line's grammar: `parse(argv)` gives an `Invocation`, or raises `UsageError`.

Global options (`--url`, `--token`, `--json` …) are accepted before or after the command,
as argparse allows: every subparser takes them too, with no default, so a value given
anywhere is kept. Nothing here reads the environment or the network (see `_settings`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, Final, NoReturn

import attrs

from .._version import __version__
from ._errors import PROG, UsageError

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = ["COMMANDS", "Invocation", "parse"]

COMMANDS: Final = (
    "scale-sets list",
    "scale-sets show",
    "scale-sets create",
    "scale-sets delete",
    "stats",
    "jobs",
    "runners list",
    "runners remove",
    "jit",
    "watch",
    "fake",
    "doctor",
)
DEFAULT_MAX_CAPACITY: Final = 10
_CONNECTION: Final = (
    ("--url", "URL", "https://github.com/ORG[/REPO] or …/enterprises/ENT [GITHUB_CONFIG_URL]"),
    (
        "--token",
        "TOKEN",
        "a personal access token (the variable is safer: ps shows arguments) [GITHUB_TOKEN]",
    ),
    ("--app-client-id", "ID", "a GitHub App's client ID [GITHUB_APP_CLIENT_ID]"),
    ("--app-id", "N", "or its numeric App ID [GITHUB_APP_ID]"),
    (
        "--app-installation-id",
        "N",
        "the App's installation (default: looked up) [GITHUB_APP_INSTALLATION_ID]",
    ),
    (
        "--app-private-key-file",
        "FILE",
        "the App's PEM key [GITHUB_APP_PRIVATE_KEY_FILE, or the PEM itself in GITHUB_APP_PRIVATE_KEY]",
    ),
    (
        "--ca-file",
        "FILE",
        "PEM CA certificates to trust instead of the system's (a server with a private CA)",
    ),
)
DEFAULT_FAKE_JOBS: Final = 20
_SET: Final = "the scale set's name"


@attrs.frozen
class Invocation:
    """One command as given on the command line (flags only: the environment comes later)."""

    command: str
    """One of `COMMANDS`, e.g. `"scale-sets list"` or `"watch"`."""
    json: bool = False
    verbose: bool = False
    url: str | None = None
    token: str | None = attrs.field(default=None, repr=False)
    app_client_id: str | None = None
    app_id: str | None = None
    app_installation_id: str | None = None
    app_private_key_file: str | None = None
    ca_file: str | None = None
    runner_group: str | None = None
    scale_set: str | None = None
    """The scale set a command is about (`stats`, `jit`, `scale-sets show` …), if any."""
    runner: str | None = None
    """`jit`: the new runner's name; `runners remove`: a runner's name or id."""
    labels: tuple[str, ...] | None = None
    work_folder: str = "_work"
    reveal: bool = False
    acquire: bool = False
    count: int | None = None
    max_capacity: int = DEFAULT_MAX_CAPACITY
    port: int = 0
    jobs: int = DEFAULT_FAKE_JOBS
    seed: int = 0


class _Parser(argparse.ArgumentParser):
    """Errors are one line (`UsageError`); help goes to the stream given, not `sys.stdout`."""

    stdout: IO[str] | None = None

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, f"see: {self.prog} --help")

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        if message:
            (self.stdout or file or sys.stdout).write(message)


def _int(low: int, high: int | None = None) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"of {low} or more"
            raise argparse.ArgumentTypeError(f"{value} is not a number {bound}")
        return value

    convert.__name__ = "number"  # argparse names the type in its message
    return convert


def _labels(text: str) -> tuple[str, ...]:
    labels = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not labels:
        raise argparse.ArgumentTypeError("give at least one label, such as linux,x64")
    return labels


def _globals() -> _Parser:
    """The options every command takes, before or after its name (no defaults: see `_value`)."""
    common = _Parser(add_help=False, argument_default=argparse.SUPPRESS)
    group = common.add_argument_group("connection (each falls back to its environment variable)")
    for flag, metavar, text in _CONNECTION:
        group.add_argument(flag, metavar=metavar, help=text)
    output = common.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="JSON instead of a table (one shape per command)")
    output.add_argument("-v", "--verbose", action="store_true", help="show the library's log on stderr")
    return common


def _runner_group(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runner-group",
        metavar="GROUP",
        default=argparse.SUPPRESS,
        help="the runner group the scale set is in (default: look in every group)",
    )


def _parser(stdout: IO[str] | None) -> _Parser:
    common = _globals()
    parser = _Parser(
        prog=PROG,
        allow_abbrev=False,
        parents=[common],
        description="Look at and manage GitHub Actions runner scale sets.",
        epilog=f"Exit codes: 0 done, 1 failed, 2 usage, 3 credentials refused. See '{PROG} COMMAND --help'.",
    )
    parser.stdout = stdout
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)

    def add(
        into: argparse._SubParsersAction[_Parser], name: str, text: str, *, in_group: bool = True
    ) -> _Parser:
        """A (sub)command taking the global options; `in_group`: also `--runner-group`."""
        sub = into.add_parser(name, help=text, description=text, parents=[common], allow_abbrev=False)
        sub.stdout = stdout
        if in_group:
            _runner_group(sub)
        return sub

    scale_sets = add(commands, "scale-sets", "list, show, create and delete scale sets", in_group=False)
    scale_set_commands = scale_sets.add_subparsers(dest="action", metavar="ACTION", required=True)
    add(scale_set_commands, "list", "list the scale sets (with --runner-group: of that group)")
    add(scale_set_commands, "show", "show one scale set").add_argument("scale_set", metavar="NAME", help=_SET)
    create = add(scale_set_commands, "create", "create a scale set")
    create.add_argument("scale_set", metavar="NAME", help="the new scale set's name")
    create.add_argument("--labels", type=_labels, metavar="A,B", help="its labels (default: its name)")
    add(scale_set_commands, "delete", "delete a scale set").add_argument(
        "scale_set", metavar="NAME", help=_SET
    )

    add(commands, "stats", "a scale set's statistics and acquirable jobs (no session)").add_argument(
        "scale_set", metavar="SCALE_SET", help=_SET
    )
    add(commands, "jobs", "the jobs waiting to be acquired by a scale set").add_argument(
        "scale_set", metavar="SCALE_SET", help=_SET
    )

    runners = add(commands, "runners", "list and remove self-hosted runners", in_group=False)
    runner_commands = runners.add_subparsers(dest="action", metavar="ACTION", required=True)
    add(runner_commands, "list", "list the runners (with SCALE_SET: only its runners)").add_argument(
        "scale_set", metavar="SCALE_SET", nargs="?", help="only the runners of this scale set"
    )
    remove = add(
        runner_commands, "remove", "remove a runner (an all-digit argument is an id)", in_group=False
    )
    remove.add_argument("runner", metavar="NAME_OR_ID", help="the runner's name, or its id")

    jit = add(commands, "jit", "register a just-in-time runner and show its config")
    jit.add_argument("scale_set", metavar="SCALE_SET", help=_SET)
    jit.add_argument("runner", metavar="NAME", help="the new runner's name")
    jit.add_argument("--work-folder", metavar="DIR", default="_work", help="the runner's work folder")
    jit.add_argument("--reveal", action="store_true", help="also print the encoded JIT config (a secret)")

    watch = add(commands, "watch", "open a session and show each message as it comes")
    watch.add_argument("scale_set", metavar="SCALE_SET", help=_SET)
    watch.add_argument("--acquire", action="store_true", help="acquire the jobs offered (default: only look)")
    watch.add_argument("--count", type=_int(1), metavar="N", help="stop after N messages")
    watch.add_argument(
        "--max-capacity",
        type=_int(0, 2**31 - 1),
        metavar="N",
        default=DEFAULT_MAX_CAPACITY,
        help=f"the capacity announced with each poll (default: {DEFAULT_MAX_CAPACITY})",
    )

    fake = add(
        commands, "fake", "serve a fake GitHub on loopback, with jobs arriving, until Ctrl-C", in_group=False
    )
    fake.add_argument("--port", type=_int(0, 65535), default=0, metavar="P", help="default: any free port")
    fake.add_argument(
        "--jobs", type=_int(0), default=DEFAULT_FAKE_JOBS, metavar="N", help="jobs to queue (default: 20)"
    )
    fake.add_argument("--seed", type=_int(0), default=0, metavar="S", help="the workload's seed (default: 0)")

    add(commands, "doctor", "check a setup end to end, step by step").add_argument(
        "scale_set", metavar="SCALE_SET", nargs="?", help="also check this scale set and its session"
    )
    return parser


def _value(namespace: argparse.Namespace, name: str, default: Any = None) -> Any:
    return getattr(namespace, name, default)


def parse(argv: Sequence[str], *, stdout: IO[str] | None = None) -> Invocation:
    """The invocation `argv` asks for. `UsageError` for bad flags; `--help` raises `SystemExit(0)`."""
    namespace = _parser(stdout).parse_args(list(argv))
    group, action = _value(namespace, "group"), _value(namespace, "action")
    command = f"{group} {action}" if action else str(group)
    count = _value(namespace, "count")
    return Invocation(
        command=command,
        json=bool(_value(namespace, "json", False)),
        verbose=bool(_value(namespace, "verbose", False)),
        url=_value(namespace, "url"),
        token=_value(namespace, "token"),
        app_client_id=_value(namespace, "app_client_id"),
        app_id=_value(namespace, "app_id"),
        app_installation_id=_value(namespace, "app_installation_id"),
        app_private_key_file=_value(namespace, "app_private_key_file"),
        ca_file=_value(namespace, "ca_file"),
        runner_group=_value(namespace, "runner_group"),
        scale_set=_value(namespace, "scale_set"),
        runner=_value(namespace, "runner"),
        labels=_value(namespace, "labels"),
        work_folder=_value(namespace, "work_folder", "_work"),
        reveal=bool(_value(namespace, "reveal", False)),
        acquire=bool(_value(namespace, "acquire", False)),
        count=count,
        max_capacity=_value(namespace, "max_capacity", DEFAULT_MAX_CAPACITY),
        port=_value(namespace, "port", 0),
        jobs=_value(namespace, "jobs", DEFAULT_FAKE_JOBS),
        seed=_value(namespace, "seed", 0),
    )
