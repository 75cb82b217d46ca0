"""Settings from the command line and the environment: `parse(argv, env)`.

A flag wins over its variable, the variable over the default. runnerctl's variables
(`GITHUB_WFA_RUNNER_SERVER__API_TOKEN`, `GITHUB_WFA_RUNNER_SERVER__BIND`) are read too,
so a runnerctl deployment's environment file works as it is. Every mistake is a
`UsageError` whose message is one line; nothing here prints or exits, except `--help`.
Tokens are never taken from a flag (flags show in `ps`) and never shown in an error.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, NoReturn

import attrs

import actions_scaleset as asc

from ..listener.settings import DEFAULT_DOCKER_IMAGE, ProvisionerSettings
from . import validate
from .settings import ApiToken, Settings, UsageError

__all__ = ["PROG", "parse"]

PROG: Final = "provisioner-api"
RUNNERCTL_TOKEN_ENV: Final = "GITHUB_WFA_RUNNER_SERVER__API_TOKEN"
RUNNERCTL_BIND_ENV: Final = "GITHUB_WFA_RUNNER_SERVER__BIND"
MIN_TOKEN_LENGTH: Final = 16
_TOKEN_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

_TABLE: Final = """
url              GITHUB_CONFIG_URL               URL      the organization, enterprise or repository
token            GITHUB_TOKEN                    TOKEN    a personal access token (the variable is safer)
tokens_file      PROVISIONER_API_TOKENS_FILE     FILE     the API's Bearer tokens, one 'name token' a line
bind             PROVISIONER_API_BIND            ADDR     HOST:PORT to listen on (default: 127.0.0.1:8080)
state            PROVISIONER_API_STATE           FILE     the SQLite state file
scale_set        PROVISIONER_API_SCALE_SET       NAME     the default scale set, prefix of the others
runner_group     PROVISIONER_API_RUNNER_GROUP    GROUP    the scale sets' runner group (default: default)
labels           PROVISIONER_API_LABELS          A,B      labels when a request gives none
provisioner      PROVISIONER_API_PROVISIONER     KIND     command, docker or simulate (default: command)
runner_command   PROVISIONER_API_RUNNER_COMMAND  CMD      run once per runner (docker: in the container)
docker_image     PROVISIONER_API_DOCKER_IMAGE    IMAGE    the runner image; Docker is reached at DOCKER_HOST
work_folder      PROVISIONER_API_WORK_FOLDER     DIR      the runner's work folder (default: _work)
max_runners      PROVISIONER_API_MAX_RUNNERS     N        jobs acquired at once per scale set
start_timeout    PROVISIONER_API_START_TIMEOUT   SECONDS  how long a create waits (default: 120)
rate_limit       PROVISIONER_API_RATE_LIMIT      N        requests a minute per token (default: 120)
max_body         PROVISIONER_API_MAX_BODY        BYTES    the largest request body (default: 65536)
cors_origins     PROVISIONER_API_CORS_ORIGINS    A,B      origins allowed by CORS (default: none, CORS off)
allowed_repos    PROVISIONER_API_ALLOWED_REPOS   A,B      owner/name or owner/* (default: any)
ca_file          PROVISIONER_API_CA_FILE         FILE     PEM CA certificates to trust (for GHES)
log_level        PROVISIONER_API_LOG_LEVEL       LEVEL    debug, info, warning or error (default: info)
"""
_OPTIONS: Final = tuple(tuple(line.split(maxsplit=3)) for line in _TABLE.strip().splitlines())
_APP_ENV: Final = (
    "GITHUB_APP_CLIENT_ID",
    "GITHUB_APP_ID",
    "GITHUB_APP_PRIVATE_KEY_FILE",
    "GITHUB_APP_PRIVATE_KEY",
)
_DEFAULTS: Final = Settings(url="", credentials=asc.PersonalAccessToken("-"), tokens=())


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}; run '{self.prog} --help' to see the flags")


def parse(argv: Sequence[str], env: Mapping[str, str]) -> Settings:
    """The API's settings; `UsageError` (one line) for any mistake; `--help` prints and exits 0."""
    try:
        return _parse(argv, env)
    except UsageError as exc:
        raise UsageError(" ".join(str(exc).split())) from None


def _parse(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    parser = _Parser(
        prog=PROG,
        allow_abbrev=False,
        description="Start, list and remove GitHub Actions JIT runners over HTTP (runnerctl-compatible).",
        epilog="Each flag can be set by the variable in brackets. The API's tokens come from "
        "PROVISIONER_API_TOKENS ('name=token,...'), --tokens-file, or runnerctl's "
        f"{RUNNERCTL_TOKEN_ENV}.",
    )
    for key, env_name, metavar, text in _OPTIONS:
        parser.add_argument(
            "--" + key.replace("_", "-"), dest=key, metavar=metavar, help=f"{text} [{env_name}]"
        )
    flags = vars(parser.parse_args(list(argv)))
    env = {name: value for name, value in environ.items() if value.strip()}

    def get(key: str) -> tuple[str, str] | None:
        """(the value, where it came from) or None."""
        env_name = next(option[1] for option in _OPTIONS if option[0] == key)
        if flags.get(key) is not None:
            return str(flags[key]), "--" + key.replace("_", "-")
        if env_name in env:
            return env[env_name], env_name
        return None

    url = _url(get("url"), environ)  # checked in this order: what is missing first
    credentials = _credentials(get("token"), env)
    tokens = _tokens(get("tokens_file"), env)
    provisioner = _provisioner(get)
    return Settings(
        url=url,
        credentials=credentials,
        tokens=tokens,
        bind=_bind(
            get("bind")
            or ((env[RUNNERCTL_BIND_ENV], RUNNERCTL_BIND_ENV) if RUNNERCTL_BIND_ENV in env else None)
        ),
        state=Path(v[0]).expanduser() if (v := get("state")) else _DEFAULTS.state,
        scale_set=_valid(get("scale_set"), validate.scale_set_name, _DEFAULTS.scale_set),
        runner_group=v[0].strip() if (v := get("runner_group")) else _DEFAULTS.runner_group,
        labels=_labels(get("labels")),
        provisioner=provisioner,
        max_runners=_int(get("max_runners"), 1, 10_000, _DEFAULTS.max_runners),
        start_timeout=float(_int(get("start_timeout"), 1, 3600, int(_DEFAULTS.start_timeout))),
        rate_limit=_int(get("rate_limit"), 1, 1_000_000, _DEFAULTS.rate_limit),
        max_body=_int(get("max_body"), 1024, 16 * 1024 * 1024, _DEFAULTS.max_body),
        cors_origins=_list(get("cors_origins")),
        allowed_repos=_patterns(get("allowed_repos")),
        ca_file=_file(get("ca_file")),
        log_level=_level(get("log_level")),
    )


def _shown(value: tuple[str, str]) -> str:
    text, where = value
    quoted = shlex.quote(text)
    return f"{where} {quoted}" if where.startswith("--") else f"{where}={quoted}"


def _url(value: tuple[str, str] | None, environ: Mapping[str, str]) -> str:
    if value is None:
        raise UsageError("no GitHub URL: set --url (GITHUB_CONFIG_URL), such as https://github.com/ORG")
    try:
        return asc.GitHubConfig.parse(value[0].strip(), env=environ).config_url
    except asc.InvalidConfigURLError as exc:
        why = str(exc).removeprefix("invalid config URL ").split("; a valid config URL", 1)[0]
        raise UsageError(
            f"{value[1]} {why}; give https://github.com/ORG, ORG/REPO or enterprises/ENT"
        ) from None


def _credentials(token: tuple[str, str] | None, env: Mapping[str, str]) -> asc.Credentials:
    app = [name for name in _APP_ENV if name in env]
    if token is not None and app:
        raise UsageError(f"both a token ({token[1]}) and a GitHub App ({app[0]}) are given; keep one of them")
    if token is not None:
        return asc.PersonalAccessToken(token[0].strip())
    if not app:
        raise UsageError(
            "no GitHub credentials: set GITHUB_TOKEN, or GITHUB_APP_CLIENT_ID (or GITHUB_APP_ID) "
            "and GITHUB_APP_PRIVATE_KEY_FILE (or GITHUB_APP_PRIVATE_KEY)"
        )
    if "GITHUB_APP_PRIVATE_KEY_FILE" in env:
        path = Path(env["GITHUB_APP_PRIVATE_KEY_FILE"]).expanduser()
        try:
            key = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"GITHUB_APP_PRIVATE_KEY_FILE={shlex.quote(str(path))}: cannot read it ({exc})"
            ) from None
    elif "GITHUB_APP_PRIVATE_KEY" in env:
        key = env["GITHUB_APP_PRIVATE_KEY"]
    else:
        raise UsageError(
            "a GitHub App needs GITHUB_APP_PRIVATE_KEY_FILE (or the PEM in GITHUB_APP_PRIVATE_KEY)"
        )
    installation = env.get("GITHUB_APP_INSTALLATION_ID")
    try:
        return asc.GitHubApp(
            client_id=env.get("GITHUB_APP_CLIENT_ID"),
            app_id=None if "GITHUB_APP_CLIENT_ID" in env else env.get("GITHUB_APP_ID"),
            installation_id=int(installation) if installation and installation.isdigit() else None,
            private_key=key,
        )
    except asc.ConfigurationError as exc:
        raise UsageError(f"the GitHub App's settings: {exc}") from None


def _tokens(file: tuple[str, str] | None, env: Mapping[str, str]) -> tuple[ApiToken, ...]:  # noqa: PLR0912
    """`name=token` pairs from PROVISIONER_API_TOKENS, `name token` lines from the file, runnerctl's token."""
    pairs: list[tuple[str, str, str]] = []  # name, token, where
    for number, item in enumerate(env.get("PROVISIONER_API_TOKENS", "").split(","), 1):
        if item.strip():
            name, sep, token = item.strip().partition("=")
            if not sep:
                raise UsageError(f"PROVISIONER_API_TOKENS: item {number} is not name=token")
            pairs.append((name.strip(), token.strip(), f"PROVISIONER_API_TOKENS item {number}"))
    if file is not None:
        path = Path(file[0]).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"{_shown(file)}: cannot read it ({getattr(exc, 'strerror', None) or exc})"
            ) from None
        for number, line in enumerate(lines, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = re.split(r"[\s=:]+", text, maxsplit=1)
            if len(parts) != 2:
                raise UsageError(f"{path} line {number}: write 'name token'")
            pairs.append((parts[0], parts[1].strip(), f"{path} line {number}"))
    if RUNNERCTL_TOKEN_ENV in env:
        pairs.append(("runnerctl", env[RUNNERCTL_TOKEN_ENV].strip(), RUNNERCTL_TOKEN_ENV))
    if not pairs:
        raise UsageError(
            "no API tokens: set PROVISIONER_API_TOKENS=name=token (generate one with "
            f"'openssl rand -hex 32'), --tokens-file FILE, or {RUNNERCTL_TOKEN_ENV}"
        )
    tokens: list[ApiToken] = []
    names: set[str] = set()
    values: set[str] = set()
    for name, token, where in pairs:
        if not _TOKEN_NAME.fullmatch(name):
            raise UsageError(f"{where}: a token's name is letters, digits, '.', '_' or '-' (up to 64)")
        if name in names:
            raise UsageError(f"{where}: the token name {name!r} is used twice")
        if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
            raise UsageError(
                f"{where}: token {name!r} is too short or has spaces; use {MIN_TOKEN_LENGTH}+ characters "
                "('openssl rand -hex 32')"
            )
        if token in values:
            raise UsageError(f"{where}: token {name!r} is the same as another token; give each its own")
        names.add(name)
        values.add(token)
        tokens.append(ApiToken(name, asc.Secret(token)))
    return tuple(tokens)


def _bind(value: tuple[str, str] | None) -> tuple[str, int]:
    if value is None:
        return _DEFAULTS.bind
    host, sep, port = value[0].strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{_shown(value)}: give HOST:PORT, such as 127.0.0.1:8080")
    return host.strip("[]") or "0.0.0.0", int(port)


def _valid(value: tuple[str, str] | None, check: object, default: str) -> str:
    if value is None:
        return default
    try:
        return validate.scale_set_name(value[0].strip())
    except validate.Invalid as exc:
        raise UsageError(f"{_shown(value)}: {exc}") from None


def _labels(value: tuple[str, str] | None) -> tuple[str, ...]:
    if value is None:
        return _DEFAULTS.labels
    try:
        return validate.labels(value[0], ())
    except validate.Invalid as exc:
        raise UsageError(f"{_shown(value)}: {exc}") from None


def _provisioner(get: object) -> ProvisionerSettings:
    assert callable(get)
    kind = get("provisioner")
    chosen = kind[0].strip().lower() if kind else "command"
    if chosen not in ("command", "docker", "simulate"):
        raise UsageError(f"{kind[0] if kind else ''!r}: choose command, docker or simulate")
    command = get("runner_command")
    if chosen == "command" and command is None:
        raise UsageError(
            "the command provisioner needs --runner-command (such as /opt/actions-runner/run.sh)"
        )
    if command is not None:
        try:
            parts = shlex.split(command[0])
        except ValueError as exc:
            raise UsageError(f"{_shown(command)}: not a command ({exc})") from None
        if not parts:
            raise UsageError(f"{_shown(command)}: the command is empty")
    image = get("docker_image")
    folder = get("work_folder")
    settings = ProvisionerSettings(
        kind=chosen,  # type: ignore[arg-type]
        runner_command=command[0] if command else None,
        docker_image=image[0].strip() if image else DEFAULT_DOCKER_IMAGE,
        work_folder=folder[0].strip() if folder else "_work",
    )
    return attrs.evolve(settings)


def _int(value: tuple[str, str] | None, low: int, high: int, default: int) -> int:
    if value is None:
        return default
    text = value[0].strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise UsageError(f"{_shown(value)}: give a whole number from {low} to {high}")
    return int(text)


def _list(value: tuple[str, str] | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in value[0].split(",") if item.strip()) if value else ()


def _patterns(value: tuple[str, str] | None) -> tuple[str, ...]:
    patterns = _list(value)
    for pattern in patterns:
        owner, sep, name = pattern.partition("/")
        if not sep or not owner or not name or "/" in name:
            raise UsageError(f"{_shown(value)}: {pattern!r} is not owner/name or owner/*")  # type: ignore[arg-type]
    return patterns


def _file(value: tuple[str, str] | None) -> Path | None:
    if value is None:
        return None
    path = Path(value[0]).expanduser()
    if not path.is_file():
        raise UsageError(f"{_shown(value)}: no such file")
    return path


def _level(value: tuple[str, str] | None) -> str:
    if value is None:
        return "info"
    level = value[0].strip().lower()
    if level not in ("debug", "info", "warning", "error"):
        raise UsageError(f"{_shown(value)}: choose debug, info, warning or error")
    return level
