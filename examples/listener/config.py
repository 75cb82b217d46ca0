"""Settings from the command line, the environment and a TOML file: `parse(argv, env)`.

Precedence, highest first: a flag, its environment variable, the config file's top level,
the built-in default. In the file, `[[scale_set]]` tables each describe one scale set and
take the top-level values as their defaults. Every mistake is a `UsageError` whose message
is one line saying what to do; nothing here prints or exits, except `--help`.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import json
import math
import os
import re
import shlex
import ssl
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, NoReturn, TypeVar

import attrs

import actions_scaleset as asc

from .cli import PROG
from .settings import (
    LogFormat,
    ProvisionerKind,
    ProvisionerSettings,
    ScaleSetSettings,
    Settings,
    UsageError,
)

__all__ = ["parse"]

T = TypeVar("T")
S = TypeVar("S", bound=str)

MAX_RUNNERS: Final = 2**31 - 1
MAX_JOBS: Final = 10_000
PRIVATE_KEY_ENV: Final = "GITHUB_APP_PRIVATE_KEY"
DOCKER_HOST_ENV: Final = "DOCKER_HOST"
URL_EXAMPLES: Final = (
    "give a URL such as https://github.com/ORG, https://github.com/ORG/REPO "
    "or https://github.com/enterprises/ENT"
)
KINDS: Final[tuple[ProvisionerKind, ...]] = ("command", "docker", "kubernetes", "ec2", "simulate")
LEVELS: Final = ("debug", "info", "warning", "error")
FORMATS: Final[tuple[LogFormat, ...]] = ("text", "json")
_DEFAULTS: Final = Settings(url=None, credentials=None, scale_sets=())
_SET_DEFAULTS: Final = ScaleSetSettings(name="")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


_TABLE: Final = """
config               LISTENER_CONFIG             FILE     a TOML file: these settings, [[scale_set]] tables
url                  GITHUB_CONFIG_URL           URL      https://github.com/ORG[/REPO] or .../enterprises/ENT
token                GITHUB_TOKEN                TOKEN    a personal access token (the variable is safer)
app_client_id        GITHUB_APP_CLIENT_ID        ID       a GitHub App's client ID (or --app-id)
app_id               GITHUB_APP_ID               N        a GitHub App's numeric App ID
app_installation_id  GITHUB_APP_INSTALLATION_ID  N        the App's installation ID (default: looked up)
app_private_key_file GITHUB_APP_PRIVATE_KEY_FILE FILE     the App's key (or the PEM in GITHUB_APP_PRIVATE_KEY)
scale_set            LISTENER_SCALE_SET          NAME     one scale set's name (or [[scale_set]] in --config)
runner_group         LISTENER_RUNNER_GROUP       GROUP    the runner group (default: default)
labels               LISTENER_LABELS             A,B      comma-separated labels (default: the scale set name)
min_runners          LISTENER_MIN_RUNNERS        N        runners kept even when idle (default: 0)
max_runners          LISTENER_MAX_RUNNERS        N        the most runners at once (default: 10)
provisioner          LISTENER_PROVISIONER        KIND     command (default), docker, kubernetes, ec2, simulate
runner_command       LISTENER_RUNNER_COMMAND     CMD      run once per runner (docker: in the container)
docker_image         LISTENER_DOCKER_IMAGE       IMAGE    the runner image; Docker is reached at DOCKER_HOST
work_folder          LISTENER_WORK_FOLDER        DIR      the runner's work folder (default: _work)
namespace            LISTENER_K8S_NAMESPACE      NS       kubernetes: where runner pods go (default: its own)
pod_template         LISTENER_K8S_POD_TEMPLATE   FILE     kubernetes: a Pod (YAML) merged into each runner pod
kubeconfig           KUBECONFIG                  FILE     kubernetes: the kubeconfig (default: in-cluster)
launch_template      LISTENER_EC2_LAUNCH_TEMPLATE TEMPLATE ec2: the launch template's name or id (required)
subnets              LISTENER_EC2_SUBNETS        A,B      ec2: subnet ids to use (default: the template's)
spot                 LISTENER_EC2_SPOT           -        ec2: ask for spot instances
jit_via_ssm          LISTENER_EC2_JIT_VIA_SSM    -        ec2: pass the JIT config through SSM, not user data
boot_timeout         LISTENER_EC2_BOOT_TIMEOUT   SECONDS  ec2: time an instance has to boot (default: 300)
aws_region           AWS_REGION                  REGION   ec2: the AWS region (default: AWS's configuration)
aws_endpoint_url     AWS_ENDPOINT_URL            URL      ec2: another endpoint for the AWS APIs
ca_file              LISTENER_CA_FILE            FILE     PEM CA certificates to trust (for GHES)
metrics_addr         LISTENER_METRICS_ADDR       ADDR     serve Prometheus metrics at HOST:PORT or :PORT
log_level            LISTENER_LOG_LEVEL          LEVEL    debug, info, warning or error (default: info)
log_format           LISTENER_LOG_FORMAT         FORMAT   text or json (default: text)
shutdown_timeout     LISTENER_SHUTDOWN_TIMEOUT   SECONDS  time allowed for a clean stop (default: 30)
state_dir            LISTENER_STATE_DIR          DIR      runners recorded here (default: .listener-state)
simulate             LISTENER_SIMULATE           -        an offline demo: a fake GitHub, jobs and runners
chaos                LISTENER_CHAOS              -        with --simulate: inject faults
jobs                 LISTENER_JOBS               N        with --simulate: jobs to queue (default: 40)
"""
"""Each setting: its key in a config file (the flag is `--` and the key with dashes), its
environment variable, its metavar (`-` for a switch) and its help."""


@attrs.frozen
class _Option:
    key: str
    env: str
    metavar: str
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    @property
    def switch(self) -> bool:
        return self.metavar == "-"


_OPTIONS: Final = tuple(_Option(*line.split(maxsplit=3)) for line in _TABLE.strip().splitlines())
_BY_KEY: Final = {option.key: option for option in _OPTIONS}
_K8S_KEYS: Final = ("namespace", "pod_template", "kubeconfig")
_EC2_KEYS: Final = ("launch_template", "subnets", "spot", "jit_via_ssm", "boot_timeout", "aws_region",
                    "aws_endpoint_url")  # fmt: skip
_SET_KEYS: Final = ("runner_group", "labels", "min_runners", "max_runners", "provisioner",
                    "runner_command", "docker_image", "work_folder", *_K8S_KEYS, *_EC2_KEYS)  # fmt: skip
_TABLE_KEYS: Final = ("name", *_SET_KEYS)
_TOP_KEYS: Final = tuple(option.key for option in _OPTIONS if option.key != "config")
"""`scale_set` at the top level of a file is the `[[scale_set]]` tables, never a name."""
_APP_KEYS: Final = ("app_client_id", "app_id", "app_installation_id", "app_private_key_file")
_SECRET_KEYS: Final = frozenset({"token"})


@attrs.frozen
class _Value:
    """One setting as given, and where: a flag, an environment variable or a config file."""

    raw: object
    key: str
    where: str
    """The flag, the variable, or the file (and table) it came from."""
    source: Literal["flag", "env", "file"]
    base: Path | None = None
    """The config file's directory: relative paths from the file start there."""

    @property
    def name(self) -> str:
        return f"{self.key} in {self.where}" if self.source == "file" else self.where

    @property
    def shown(self) -> str:
        """The setting as it was given; a token is never shown."""
        if self.source == "file":  # as TOML writes it
            value = "(hidden)" if self.key in _SECRET_KEYS else json.dumps(self.raw, default=str)
            return f"{self.key} = {value} in {self.where}"
        value = "(hidden)" if self.key in _SECRET_KEYS else shlex.quote(str(self.raw))  # as a shell takes it
        return f"{self.where}={value}" if self.source == "env" else f"{self.where} {value}"

    def fail(self, problem: str) -> UsageError:
        return UsageError(f"{self.shown}: {problem}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}; run '{self.prog} --help' to see the flags")


def parse(argv: Sequence[str], env: Mapping[str, str]) -> Settings:
    """The listener's settings from `argv` (without the program), `env` and `--config`.

    Raises `UsageError`, one line, for any mistake; `--help` prints help and exits 0.
    """
    try:
        return _parse(argv, env)
    except UsageError as exc:
        raise UsageError(" ".join(str(exc).split())) from None


def _parse(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    flags = vars(_parser().parse_args(list(argv)))
    env = {name: value for name, value in environ.items() if value.strip()}  # empty is unset
    config = _Sources(flags, env).value(_BY_KEY["config"])
    doc, file, base = _read_config(config) if config is not None else ({}, "", None)
    tables = _tables(doc.pop("scale_set", None), file, base)
    _check_keys(doc, _TOP_KEYS, f"the top level of {file}")
    sources = _Sources(flags, env, doc, file, base)
    top = {o.key: v for o in _OPTIONS if o.key != "config" and (v := sources.value(o)) is not None}

    simulate = _get(top, "simulate", _switch, False)
    for key in ("chaos", "jobs"):
        if key in top and not simulate and (key == "jobs" or _switch(top[key])):
            raise UsageError(f"{top[key].name} only works with --simulate; add --simulate or drop it")
    metrics_addr = _get(top, "metrics_addr", _metrics_addr, None)
    settings = Settings(  # checked in this order: the values first, then what is missing
        log_level=_get(top, "log_level", lambda v: _choice(v, LEVELS), _DEFAULTS.log_level),
        log_format=_get(top, "log_format", lambda v: _choice(v, FORMATS), _DEFAULTS.log_format),
        shutdown_timeout=_get(top, "shutdown_timeout", _seconds, _DEFAULTS.shutdown_timeout),
        state_dir=_get(top, "state_dir", _path, _DEFAULTS.state_dir),
        metrics_addr=metrics_addr,
        ca_file=_get(top, "ca_file", _ca_file, None),
        simulate=simulate,
        chaos=_get(top, "chaos", _switch, False),
        jobs=_get(top, "jobs", lambda v: _int(v, 1, MAX_JOBS), _DEFAULTS.jobs),
        url=None if simulate else _url(top.get("url"), environ),
        credentials=None if simulate else _credentials(top, env),
        scale_sets=_scale_sets(top, tables, file, simulate, env.get(DOCKER_HOST_ENV)),
    )
    if simulate:
        _require("hypercorn", "--simulate needs hypercorn", "testing")
    if metrics_addr is not None:
        _require("prometheus_client", "--metrics-addr needs prometheus-client", "listener")
    return settings


def _parser() -> _Parser:
    parser = _Parser(
        prog=PROG,
        allow_abbrev=False,
        description="Serve GitHub Actions runner scale sets: start a runner for each job, remove it after.",
        epilog="Each flag can be set by the variable in brackets, or by its name with underscores at the "
        "top level of --config. A flag wins over its variable, a variable over the file. "
        "[[scale_set]] tables in the file serve several scale sets; the top-level values are their defaults.",
    )
    for option in _OPTIONS:
        text = f"{option.help} [{option.env}]"
        if option.switch:
            parser.add_argument(option.flag, dest=option.key, action="store_true", default=None, help=text)
        else:
            parser.add_argument(option.flag, dest=option.key, metavar=option.metavar, help=text)
    return parser


@attrs.frozen
class _Sources:
    """Where a top-level setting can come from, highest precedence first."""

    flags: Mapping[str, object]
    env: Mapping[str, str]
    file: Mapping[str, object] = {}
    file_name: str = ""
    base: Path | None = None

    def value(self, option: _Option) -> _Value | None:
        if self.flags.get(option.key) is not None:
            return _Value(self.flags[option.key], option.key, option.flag, "flag")
        if option.env in self.env:
            return _Value(self.env[option.env], option.key, option.env, "env")
        if option.key in self.file:
            return _Value(self.file[option.key], option.key, self.file_name, "file", self.base)
        return None


def _read_config(value: _Value) -> tuple[dict[str, Any], str, Path]:
    path = Path(_text(value)).expanduser()
    try:
        with path.open("rb") as file:
            doc = tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise value.fail("not a UTF-8 text file") from None
    except OSError as exc:
        raise value.fail(f"cannot read it ({exc.strerror or exc})") from None
    return doc, str(path), path.absolute().parent


def _tables(raw: object, file: str, base: Path | None) -> list[tuple[str, dict[str, _Value]]]:
    """The `[[scale_set]]` tables: (name, its own settings), names checked present and unique."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(table, dict) for table in raw):
        raise UsageError(f'scale_set in {file} must be [[scale_set]] tables, each with a name = "..."')
    tables: list[tuple[str, dict[str, _Value]]] = []
    seen: dict[str, str] = {}
    for number, table in enumerate(raw, 1):
        where = f"[[scale_set]] #{number} of {file}"
        _check_keys(table, _TABLE_KEYS, where)
        if "name" not in table:
            raise UsageError(f'{where} has no name; add name = "..."')
        values = {key: _Value(item, key, where, "file", base) for key, item in table.items()}
        name = _text(values.pop("name"))
        if name.casefold() in seen:
            raise UsageError(f"{where}: the name {name!r} is taken by {seen[name.casefold()]}; rename one")
        seen[name.casefold()] = f"[[scale_set]] #{number}"
        tables.append((name, values))
    return tables


def _check_keys(table: Mapping[str, object], known: Sequence[str], where: str) -> None:
    for key in table:
        if key in known:
            continue
        if key in _TOP_KEYS and where.startswith("[[scale_set]]"):
            hint = f"; {key} belongs at the top level, before the first [[scale_set]]"
        elif close := difflib.get_close_matches(key, known, n=1):
            hint = f"; did you mean {close[0]!r}?"
        else:
            hint = f"; known keys are {', '.join(known)}"
        raise UsageError(f"unknown key {key!r} in {where}{hint}")


def _get(values: Mapping[str, _Value], key: str, convert: Callable[[_Value], T], default: T) -> T:
    value = values.get(key)
    return default if value is None else convert(value)


def _url(value: _Value | None, environ: Mapping[str, str]) -> str:
    if value is None:
        raise UsageError(f"no GitHub URL: set --url (GITHUB_CONFIG_URL); {URL_EXAMPLES}")
    try:
        return asc.GitHubConfig.parse(_text(value), env=environ).config_url
    except asc.InvalidConfigURLError as exc:  # its message shows the URL with any secret removed
        why = str(exc).removeprefix("invalid config URL ").split("; a valid config URL", 1)[0]
        raise UsageError(f"{value.name} {why}; {URL_EXAMPLES}") from None


def _credentials(top: Mapping[str, _Value], env: Mapping[str, str]) -> asc.Credentials:
    token = top.get("token")
    app = [top[key].name for key in _APP_KEYS if key in top]
    if PRIVATE_KEY_ENV in env:
        app.append(PRIVATE_KEY_ENV)
    if token is not None and app:
        raise UsageError(
            f"both a token ({token.name}) and a GitHub App ({app[0]}) are given; keep one of them"
        )
    if token is not None:
        if not isinstance(token.raw, str):
            raise token.fail("must be a string")
        if not token.raw.strip():
            raise UsageError(f"{token.name} is empty; give a personal access token")
        return asc.PersonalAccessToken(token.raw.strip())
    if not app:
        raise UsageError(
            "no GitHub credentials: set GITHUB_TOKEN, or for a GitHub App GITHUB_APP_CLIENT_ID (or "
            f"GITHUB_APP_ID) and GITHUB_APP_PRIVATE_KEY_FILE (or {PRIVATE_KEY_ENV}); see --help for the flags"
        )
    return _github_app(top, env)


def _github_app(top: Mapping[str, _Value], env: Mapping[str, str]) -> asc.GitHubApp:
    client_id, app_id = top.get("app_client_id"), top.get("app_id")
    if client_id is not None and app_id is not None:
        raise UsageError(f"both {client_id.name} and {app_id.name} are given; keep one of them")
    if client_id is None and app_id is None:
        raise UsageError("the GitHub App needs its ID: set GITHUB_APP_CLIENT_ID or GITHUB_APP_ID")
    client = None if client_id is None else _text(client_id)
    number = None if app_id is None else _app_id(app_id)
    installation = _get(top, "app_installation_id", lambda v: _int(v, 1), None)
    key, key_name = _private_key(top.get("app_private_key_file"), env)
    try:
        return asc.GitHubApp(client_id=client, app_id=number, installation_id=installation, private_key=key)
    except asc.InvalidPrivateKeyError as exc:  # its message never shows the key
        raise UsageError(f"{key_name}: {exc}") from None
    except asc.ConfigurationError as exc:
        raise UsageError(str(exc)) from None


def _app_id(value: _Value) -> int:
    try:
        return _int(value, 1)
    except UsageError:
        raise value.fail(
            "not a numeric App ID; a client ID such as Iv1.0123 goes in GITHUB_APP_CLIENT_ID"
        ) from None


def _private_key(file: _Value | None, env: Mapping[str, str]) -> tuple[bytes | str, str]:
    """The key's PEM, and what to call it in an error. A flag beats the variable, which beats the file."""
    pem = env.get(PRIVATE_KEY_ENV)
    if file is not None and (pem is None or file.source == "flag"):
        try:
            return _path(file).read_bytes(), file.shown
        except OSError as exc:
            raise file.fail(f"cannot read the App's private key ({exc.strerror or exc})") from None
    if pem is None:
        raise UsageError(
            f"the GitHub App needs its private key: set GITHUB_APP_PRIVATE_KEY_FILE or {PRIVATE_KEY_ENV}"
        )
    if file is not None and file.source == "env":
        raise UsageError(f"both {file.name} and {PRIVATE_KEY_ENV} are set; keep one of them")
    return pem, PRIVATE_KEY_ENV


def _scale_sets(
    top: Mapping[str, _Value],
    tables: Sequence[tuple[str, Mapping[str, _Value]]],
    file: str,
    simulate: bool,
    docker_host: str | None,
) -> tuple[ScaleSetSettings, ...]:
    named = top.get("scale_set")
    if named is not None and tables:
        raise UsageError(f"{named.name} and the [[scale_set]] tables in {file} both name scale sets; use one")
    defaults = {key: top[key] for key in _SET_KEYS if key in top}
    if not tables and named is None and not simulate:
        raise UsageError("give --scale-set NAME, or [[scale_set]] tables in --config")
    if not tables:
        tables = [(_text(named) if named is not None else "simulated", {})]
    return tuple(_scale_set(name, {**defaults, **own}, simulate, docker_host) for name, own in tables)


def _scale_set(
    name: str, values: Mapping[str, _Value], simulate: bool, docker_host: str | None
) -> ScaleSetSettings:
    default = _SET_DEFAULTS
    fallback: ProvisionerKind = "simulate" if simulate else default.provisioner.kind
    kind = _get(values, "provisioner", lambda v: _choice(v, KINDS), fallback)
    command = _get(values, "runner_command", _command, None)
    if kind == "command" and command is None:
        raise UsageError(
            f"scale set {name!r} runs runners with a command: give --runner-command CMD "
            "(LISTENER_RUNNER_COMMAND, runner_command in --config), or choose --provisioner docker"
        )
    minimum = _get(values, "min_runners", lambda v: _int(v, 0, MAX_RUNNERS), default.min_runners)
    maximum = _get(values, "max_runners", lambda v: _int(v, 0, MAX_RUNNERS), default.max_runners)
    if minimum > maximum:
        low, high = (_said(values, key, n) for key, n in (("min_runners", minimum), ("max_runners", maximum)))
        raise UsageError(
            f"scale set {name!r}: {low} is above {high}; min_runners must not exceed max_runners"
        )
    provisioner = ProvisionerSettings(
        kind=kind,
        runner_command=command,
        docker_image=_get(values, "docker_image", _text, default.provisioner.docker_image),
        docker_host=_docker_host(docker_host) if kind == "docker" else default.provisioner.docker_host,
        work_folder=_get(values, "work_folder", _text, default.provisioner.work_folder),
    )
    if kind == "kubernetes":
        provisioner = _kubernetes(provisioner, values)
    elif kind == "ec2":
        provisioner = _ec2(name, provisioner, values)
    return ScaleSetSettings(
        name=name,
        runner_group=_get(values, "runner_group", _text, default.runner_group),
        labels=_get(values, "labels", _labels, default.labels),
        min_runners=minimum,
        max_runners=maximum,
        provisioner=provisioner,
    )


def _kubernetes(provisioner: ProvisionerSettings, values: Mapping[str, _Value]) -> ProvisionerSettings:
    """The `kubernetes` settings, checked: the namespace's form, the kubeconfig and the pod template read."""
    _require("lightkube", "--provisioner kubernetes needs lightkube", "kubernetes")
    template = _get(values, "pod_template", _path, None)
    if template is not None:
        from .kubernetes import load_pod_template  # lightkube is there: checked above
        from .provisioner import ProvisionerError

        try:
            load_pod_template(template)
        except ProvisionerError as exc:
            raise values["pod_template"].fail(str(exc).split(": ", 1)[-1]) from None
    return attrs.evolve(
        provisioner,
        namespace=_get(values, "namespace", _namespace, None),
        pod_template=template,
        kubeconfig=_get(values, "kubeconfig", _kubeconfig, None),
    )


def _ec2(name: str, provisioner: ProvisionerSettings, values: Mapping[str, _Value]) -> ProvisionerSettings:
    """The `ec2` settings, checked; a launch template is required."""
    _require("aioboto3", "--provisioner ec2 needs aioboto3", "ec2")
    if "launch_template" not in values:
        raise UsageError(
            f"scale set {name!r} starts EC2 instances from a launch template: give --launch-template "
            "NAME (LISTENER_EC2_LAUNCH_TEMPLATE, launch_template in --config)"
        )
    default = _SET_DEFAULTS.provisioner
    return attrs.evolve(
        provisioner,
        launch_template=_text(values["launch_template"]),
        subnets=_get(values, "subnets", _subnets, default.subnets),
        spot=_get(values, "spot", _switch, default.spot),
        jit_via_ssm=_get(values, "jit_via_ssm", _switch, default.jit_via_ssm),
        boot_timeout=_get(values, "boot_timeout", _seconds, default.boot_timeout),
        aws_region=_get(values, "aws_region", _text, None),
        aws_endpoint_url=_get(values, "aws_endpoint_url", _endpoint_url, None),
    )


def _said(values: Mapping[str, _Value], key: str, number: int) -> str:
    return values[key].shown if key in values else f"the default {key} {number}"


def _require(module: str, what: str, extra: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError:
        raise UsageError(f'{what}: pip install "actions-scaleset[{extra}]"') from None


# Conversions: each takes one value as given and returns it checked, or raises its UsageError.


def _text(value: _Value) -> str:
    if not isinstance(value.raw, str) or not value.raw.strip():
        raise value.fail("must be a non-empty string")
    return value.raw.strip()


def _int(value: _Value, low: int, high: float = math.inf) -> int:
    number = value.raw
    if isinstance(number, str) and value.source != "file" and re.fullmatch(r"\s*-?[0-9]+\s*", number):
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise value.fail(
            f"must be an integer {f'from {low} to {high}' if high < math.inf else f'of {low} or more'}"
        )
    return number


def _seconds(value: _Value) -> float:
    seconds = math.nan
    if isinstance(value.raw, int | float) and not isinstance(value.raw, bool):
        seconds = float(value.raw)
    elif isinstance(value.raw, str) and value.source != "file":
        with contextlib.suppress(ValueError):
            seconds = float(value.raw)
    if not (math.isfinite(seconds) and seconds > 0):
        raise value.fail("must be a number of seconds above 0, such as 30")
    return seconds


def _switch(value: _Value) -> bool:
    if isinstance(value.raw, bool):
        return value.raw
    text = value.raw.strip().lower() if isinstance(value.raw, str) and value.source != "file" else ""
    if text not in _TRUE | _FALSE:
        raise value.fail("must be true or false")
    return text in _TRUE


def _choice(value: _Value, choices: Sequence[S]) -> S:
    text = value.raw.strip().lower() if isinstance(value.raw, str) else None
    for choice in choices:
        if text == choice:
            return choice
    raise value.fail(f"must be one of {', '.join(choices)}")


def _labels(value: _Value) -> tuple[str, ...]:
    items = value.raw.split(",") if isinstance(value.raw, str) else value.raw
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise value.fail('must be a list of strings such as ["linux", "x64"], or "linux,x64"')
    return tuple(dict.fromkeys(item.strip() for item in items if item.strip()))


def _path(value: _Value) -> Path:
    path = Path(_text(value)).expanduser()
    return path if value.base is None else value.base / path  # an absolute path stays as it is


def _command(value: _Value) -> str:
    text = _text(value)
    try:
        shlex.split(text)
    except ValueError as exc:
        raise value.fail(f"cannot be split into words as a shell would ({exc})") from None
    return text


def _ca_file(value: _Value) -> Path:
    path = _path(value)
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError:
        raise value.fail(
            "holds no PEM CA certificate; give a PEM bundle (-----BEGIN CERTIFICATE-----)"
        ) from None
    except OSError as exc:
        raise value.fail(f"cannot read it ({exc.strerror or exc})") from None
    return path


def _metrics_addr(value: _Value) -> tuple[str, int]:
    host, colon, port = _text(value).rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    if not (colon and port.isascii() and port.isdigit() and int(port) <= 65535) or (":" in host) != bracketed:
        raise value.fail(
            "give HOST:PORT with a port up to 65535, such as 127.0.0.1:9100, :9100 or [::1]:9100"
        )
    return host or "0.0.0.0", int(port)


def _namespace(value: _Value) -> str:
    text = _text(value)
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", text):
        raise value.fail("not a Kubernetes namespace: lowercase letters, digits and '-', up to 63")
    return text


def _kubeconfig(value: _Value) -> Path:
    path = _path(value)
    if not path.is_file():
        several = " (one file, not a list)" if os.pathsep in str(value.raw) else ""
        raise value.fail(f"no such file{several}; give the kubeconfig, or leave it unset inside a cluster")
    return path


def _subnets(value: _Value) -> tuple[str, ...]:
    items = value.raw.split(",") if isinstance(value.raw, str) else value.raw
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise value.fail('must be a list of subnet ids such as ["subnet-0a1b"], or "subnet-0a1b,subnet-2c3d"')
    return tuple(dict.fromkeys(item.strip() for item in items if item.strip()))


def _endpoint_url(value: _Value) -> str:
    text = _text(value)
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", text):
        raise value.fail("give an http:// or https:// URL, such as http://localhost:4566")
    return text


def _docker_host(host: str | None) -> str:
    if host is None:
        return _SET_DEFAULTS.provisioner.docker_host
    value = _Value(host, "docker_host", DOCKER_HOST_ENV, "env")
    text = _text(value)
    if not text.startswith("unix://") or text == "unix://":
        raise value.fail("only a unix:// socket is supported, such as unix:///var/run/docker.sock")
    return text
