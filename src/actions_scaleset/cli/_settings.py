"""Where to connect and as whom: flags first, then their environment variables.

Each function raises `UsageError` (one line, exit 2) for what cannot be used: no URL or a
bad one, no credentials or two kinds at once, an unreadable key or CA file. An empty
variable counts as unset. No secret is ever put in a message.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import attrs

from ..auth import Credentials, GitHubApp, PersonalAccessToken
from ..config import GitHubConfig
from ..errors import ConfigurationError, InvalidConfigURLError, InvalidPrivateKeyError
from ._args import Invocation
from ._errors import URL_EXAMPLES, UsageError, first_line

__all__ = ["ENV", "Login", "config_from", "login_from", "ssl_context_from"]

ENV: Final = {
    "url": "GITHUB_CONFIG_URL",
    "token": "GITHUB_TOKEN",
    "app_client_id": "GITHUB_APP_CLIENT_ID",
    "app_id": "GITHUB_APP_ID",
    "app_installation_id": "GITHUB_APP_INSTALLATION_ID",
    "app_private_key_file": "GITHUB_APP_PRIVATE_KEY_FILE",
}
PRIVATE_KEY_ENV: Final = "GITHUB_APP_PRIVATE_KEY"
_APP_KEYS: Final = ("app_client_id", "app_id", "app_installation_id", "app_private_key_file")


@attrs.frozen
class _Given:
    """One setting and where it came from: a flag (`--token`) or a variable (`GITHUB_TOKEN`)."""

    value: str = attrs.field(repr=False)
    where: str
    from_flag: bool


@attrs.frozen
class Login:
    """The credentials, and how to describe them without showing them."""

    credentials: Credentials
    description: str

    @property
    def is_app(self) -> bool:
        return isinstance(self.credentials, GitHubApp)


def _given(invocation: Invocation, env: Mapping[str, str], key: str) -> _Given | None:
    flag = getattr(invocation, key)
    if flag is not None:
        return _Given(str(flag), "--" + key.replace("_", "-"), True)
    value = env.get(ENV[key], "")
    return _Given(value, ENV[key], False) if value.strip() else None


def config_from(invocation: Invocation, env: Mapping[str, str]) -> GitHubConfig:
    """The config URL from `--url` or `GITHUB_CONFIG_URL`."""
    given = _given(invocation, env, "url")
    if given is None:
        raise UsageError("no GitHub URL: set --url or GITHUB_CONFIG_URL", URL_EXAMPLES)
    try:
        return GitHubConfig.parse(given.value, env=env)
    except InvalidConfigURLError as exc:  # its message shows the URL with any secret removed
        what = first_line(exc).split("; a valid config URL", 1)[0]
        raise UsageError(f"{given.where}: {what}", URL_EXAMPLES) from None


def login_from(invocation: Invocation, env: Mapping[str, str]) -> Login:
    """A personal access token, or a GitHub App; a flag wins over any variable."""
    token = _given(invocation, env, "token")
    app = {key: given for key in _APP_KEYS if (given := _given(invocation, env, key)) is not None}
    pem = env.get(PRIVATE_KEY_ENV, "")
    app_parts = [given.where for given in app.values()] + ([PRIVATE_KEY_ENV] if pem.strip() else [])
    if token is not None and app_parts:
        app_by_flag = any(given.from_flag for given in app.values())
        if token.from_flag == app_by_flag:
            raise UsageError(
                f"both a token ({token.where}) and a GitHub App ({app_parts[0]}) are given",
                "keep one of them",
            )
        if app_by_flag:
            token = None
    if token is not None:
        try:
            return Login(PersonalAccessToken(token.value.strip()), f"a personal access token ({token.where})")
        except ConfigurationError:
            raise UsageError(f"{token.where} is empty", "give a personal access token") from None
    if not app_parts:
        raise UsageError(
            "no GitHub credentials",
            "set GITHUB_TOKEN, or for a GitHub App GITHUB_APP_CLIENT_ID (or GITHUB_APP_ID) and "
            f"GITHUB_APP_PRIVATE_KEY_FILE (or {PRIVATE_KEY_ENV})",
        )
    return _app(app, pem)


def _app(app: Mapping[str, _Given], pem: str) -> Login:
    client_id, app_id = app.get("app_client_id"), app.get("app_id")
    if client_id is not None and app_id is not None:
        raise UsageError(f"both {client_id.where} and {app_id.where} are given", "keep one of them")
    if client_id is None and app_id is None:
        raise UsageError("the GitHub App needs its ID", "set GITHUB_APP_CLIENT_ID or GITHUB_APP_ID")
    installation = app.get("app_installation_id")
    installation_id = _number(installation) if installation is not None else None
    key, key_where = _private_key(app.get("app_private_key_file"), pem)
    try:
        credentials = GitHubApp(
            client_id=client_id.value.strip() if client_id is not None else None,
            app_id=_number(app_id) if app_id is not None else None,
            installation_id=installation_id,
            private_key=key,
        )
    except InvalidPrivateKeyError as exc:  # its message never shows the key
        raise UsageError(f"{key_where}: {first_line(exc)}", "give the App's PEM private key") from None
    except ConfigurationError as exc:
        raise UsageError(first_line(exc)) from None
    who = client_id.value.strip() if client_id is not None else f"App ID {credentials.issuer}"
    where = "looked up" if installation_id is None else str(installation_id)
    return Login(credentials, f"the GitHub App {who} (installation {where}, key from {key_where})")


def _number(given: _Given) -> int:
    text = given.value.strip()
    if not text.isdigit() or int(text) < 1:
        hint = None
        if given.where in ("--app-id", ENV["app_id"]):
            hint = "a client ID such as Iv1.0123 goes in --app-client-id or GITHUB_APP_CLIENT_ID"
        raise UsageError(f"{given.where} must be a positive whole number", hint)
    return int(text)


def _private_key(file: _Given | None, pem: str) -> tuple[bytes | str, str]:
    """The key's PEM and where it came from: `--app-private-key-file`, then the PEM variable, then
    `GITHUB_APP_PRIVATE_KEY_FILE`."""
    if file is not None and (file.from_flag or not pem.strip()):
        path = Path(file.value.strip()).expanduser()
        try:
            return path.read_bytes(), file.where
        except OSError as exc:
            raise UsageError(
                f"{file.where}: cannot read the App's private key {str(path)!r} ({exc.strerror or exc})",
                "give the path of the App's .pem file",
            ) from None
    if not pem.strip():
        raise UsageError(
            "the GitHub App needs its private key",
            f"set GITHUB_APP_PRIVATE_KEY_FILE or {PRIVATE_KEY_ENV}",
        )
    if file is not None:
        raise UsageError(f"both {file.where} and {PRIVATE_KEY_ENV} are set", "keep one of them")
    return pem, PRIVATE_KEY_ENV


def ssl_context_from(invocation: Invocation) -> ssl.SSLContext | None:
    """A context trusting the CAs in `--ca-file` (instead of the system's); None without it."""
    if invocation.ca_file is None:
        return None
    path = Path(invocation.ca_file).expanduser()
    try:
        return ssl.create_default_context(cafile=str(path))
    except ssl.SSLError:
        raise UsageError(
            f"--ca-file {str(path)!r} holds no PEM CA certificate", "give a PEM bundle (BEGIN CERTIFICATE)"
        ) from None
    except OSError as exc:
        raise UsageError(f"--ca-file: cannot read {str(path)!r} ({exc.strerror or exc})") from None
