"""Just-in-time runner configs: decode, encode and write the runner's files (docs/protocol.md, "JIT configs").

`blob = base64(JSON {file name: base64(file bytes)})`. The files are `.runner`
(RunnerSettings), `.credentials` (CredentialData) and `.credentials_rsaparams`
(.NET RSAParameters). Reading is as lenient as the official runner (Newtonsoft):
keys match case-insensitively, numbers and booleans may be strings (`"6858"`,
`"True"`), and a UTF-8 BOM is dropped. The URLs the runner will send requests to must be
absolute http(s) URLs: a bad one is refused here, naming its field, not at the first request.
Everything here is pure except `write`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from .._html import HIDDEN, html_table
from .._http import url_problem
from .._secret import Secret
from ..errors import InvalidJitConfigError
from ..models import json_problem, load_json
from ._crypto import RSAParameters

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

__all__ = ["JitConfig", "RunnerCredentials", "RunnerSettings"]

RUNNER_FILE: Final = ".runner"
CREDENTIALS_FILE: Final = ".credentials"
RSA_PARAMS_FILE: Final = ".credentials_rsaparams"
OAUTH_SCHEME: Final = "OAuth"
ACCESS_TOKEN_SCHEME: Final = "OAuthAccessToken"  # noqa: S105 - a scheme name

_TRUE: Final = frozenset({"true", "1"})
_FALSE: Final = frozenset({"false", "0"})


# --------------------------------------------------------------------------- lenient values


class _Fields:
    """Case-insensitive, type-lenient access to one JSON object of a runner file."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise InvalidJitConfigError(f"{where} is not a JSON object")
        self.where = where
        self.data = {str(key).lower(): (str(key), value) for key, value in data.items()}

    def raw(self, name: str) -> tuple[str, Any]:
        return self.data.get(name.lower(), (name, None))

    def has(self, name: str) -> bool:
        return name.lower() in self.data

    def text(self, name: str) -> str | None:
        key, value = self.raw(name)
        if value is None:
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, bool | int | float):
            return json.dumps(value)
        raise InvalidJitConfigError(f"{self.where} field `{key}` should be a string, not {_kind(value)}")

    def url(self, name: str) -> str | None:
        """A URL the runner will send requests to: absolute http(s), or absent."""
        value = self.text(name)
        if not value:
            return value
        problem = url_problem(value)
        if problem is not None:
            raise InvalidJitConfigError(f"{self.where} field `{self.raw(name)[0]}` cannot be used: {problem}")
        return value

    def integer(self, name: str, default: int = 0) -> int:
        key, value = self.raw(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise InvalidJitConfigError(f"{self.where} field `{key}` should be an integer, not a boolean")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise InvalidJitConfigError(
            f"{self.where} field `{key}` should be an integer (a number or a numeric string), "
            f"not {_kind(value)}"
        )

    def boolean(self, name: str, default: bool | None = False) -> bool | None:
        key, value = self.raw(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
        raise InvalidJitConfigError(
            f'{self.where} field `{key}` should be a boolean (true/false or "True"/"False"), '
            f"not {_kind(value)}"
        )


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "a string that is not one"
    return {dict: "an object", list: "an array", bool: "a boolean", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _b64decode(text: str) -> bytes:
    """Standard base64 with or without padding or whitespace; URL-safe letters are tolerated."""
    cleaned = "".join(text.split()).replace("-", "+").replace("_", "/")
    return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)


def _json_bytes(raw: bytes, where: str) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidJitConfigError(f"{where} is not UTF-8 text") from None
    try:
        return load_json(text)
    except ValueError as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else json_problem(exc)
        raise InvalidJitConfigError(f"{where} is not valid JSON ({detail})") from None


def _dump(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --------------------------------------------------------------------------- the files


@attrs.frozen
class RunnerSettings:
    """`.runner`: who the runner is and where its services are (docs/protocol.md, "JIT configs").

    `server_url` is the pipelines (v1) tenant, `server_url_v2` the broker (v2);
    `use_v2_flow` chooses between them.
    """

    agent_id: int = 0
    agent_name: str = ""
    pool_id: int = 0
    pool_name: str | None = None
    server_url: str = ""
    server_url_v2: str = ""
    use_v2_flow: bool = False
    use_runner_admin_flow: bool = False
    github_url: str | None = None
    work_folder: str = "_work"
    ephemeral: bool = False
    disable_update: bool = False
    skip_session_recover: bool = False
    is_hosted_server: bool | None = None
    monitor_socket_address: str | None = None

    @property
    def uses_broker(self) -> bool:
        """True when the runner polls the broker (v2) rather than the pipelines service (v1)."""
        return self.use_v2_flow and bool(self.server_url_v2)

    @classmethod
    def from_json(cls, data: Any) -> RunnerSettings:
        """Read `.runner` as the official runner does (case-insensitive keys, string values)."""
        f = _Fields(data, f"`{RUNNER_FILE}`")
        return cls(
            agent_id=f.integer("AgentId"),
            agent_name=f.text("AgentName") or "",
            pool_id=f.integer("PoolId"),
            pool_name=f.text("PoolName"),
            server_url=f.url("ServerUrl") or "",
            server_url_v2=f.url("ServerUrlV2") or "",
            use_v2_flow=bool(f.boolean("UseV2Flow")),
            use_runner_admin_flow=bool(f.boolean("UseRunnerAdminFlow")),
            github_url=f.text("GitHubUrl"),
            work_folder=f.text("WorkFolder") or "_work",
            ephemeral=bool(f.boolean("Ephemeral")),
            disable_update=bool(f.boolean("DisableUpdate")),
            skip_session_recover=bool(f.boolean("SkipSessionRecover")),
            is_hosted_server=f.boolean("IsHostedServer", None),
            monitor_socket_address=f.text("MonitorSocketAddress"),
        )

    def to_json(self) -> dict[str, Any]:
        """PascalCase with native types, defaults omitted (`EmitDefaultValue=false`)."""
        out: dict[str, Any] = {
            "AgentId": self.agent_id,
            "AgentName": self.agent_name,
            "PoolId": self.pool_id,
            "PoolName": self.pool_name,
            "ServerUrl": self.server_url,
            "ServerUrlV2": self.server_url_v2,
            "UseV2Flow": self.use_v2_flow,
            "UseRunnerAdminFlow": self.use_runner_admin_flow,
            "GitHubUrl": self.github_url,
            "WorkFolder": self.work_folder,
            "Ephemeral": self.ephemeral,
            "DisableUpdate": self.disable_update,
            "SkipSessionRecover": self.skip_session_recover,
            "IsHostedServer": self.is_hosted_server,
            "MonitorSocketAddress": self.monitor_socket_address,
        }
        return {key: value for key, value in out.items() if value not in (None, False, 0, "")}


@attrs.frozen
class RunnerCredentials:
    """`.credentials`: how the runner gets its OAuth token (docs/protocol.md, "JIT configs").

    Scheme `OAuth` signs a client assertion with the runner's RSA key; scheme
    `OAuthAccessToken` carries a static `access_token` (GitHub-hosted runners).
    """

    scheme: str = OAUTH_SCHEME
    client_id: str = ""
    authorization_url: str = ""
    oauth_endpoint_url: str | None = None
    require_fips_cryptography: bool = False
    authorization_url_v2: str | None = None
    enable_auth_migration_by_default: bool = False
    access_token: Secret | None = attrs.field(default=None, repr=False)

    @property
    def token_url(self) -> str:
        """Where the token request is POSTed; the assertion's audience stays `authorization_url`."""
        return self.oauth_endpoint_url or self.authorization_url

    @property
    def token_url_v2(self) -> str | None:
        """Where the `authorization_url_v2` token request is POSTed (`oauthEndpointUrl` still wins).

        actions/runner `OAuthCredential.GetVssCredentials` swaps the audience for
        `authorizationUrlV2` and falls back to it, not to `authorizationUrl`, as the endpoint.
        """
        if not self.authorization_url_v2:
            return None
        return self.oauth_endpoint_url or self.authorization_url_v2

    @classmethod
    def from_json(cls, data: Any) -> RunnerCredentials:
        """Read `.credentials`; `Data` keys match case-insensitively (a .NET dictionary)."""
        where = f"`{CREDENTIALS_FILE}`"
        outer = _Fields(data, where)
        scheme = outer.text("Scheme")
        if not scheme:
            raise InvalidJitConfigError(f"{where} has no `Scheme`")
        key, raw_data = outer.raw("Data")
        if raw_data is None:
            raw_data = {}
        d = _Fields(raw_data, f"{where} `{key}`")
        if scheme.lower() == ACCESS_TOKEN_SCHEME.lower():
            token = d.text("token")
            if not token:
                raise InvalidJitConfigError(f"{where} uses scheme {ACCESS_TOKEN_SCHEME} but has no `token`")
            return cls(scheme=ACCESS_TOKEN_SCHEME, access_token=Secret(token))
        if scheme.lower() != OAUTH_SCHEME.lower():
            raise InvalidJitConfigError(
                f"{where} uses scheme {scheme[:40]!r}; "
                f"a runner knows {OAUTH_SCHEME} and {ACCESS_TOKEN_SCHEME}"
            )
        client_id = d.text("clientId")
        if not client_id:
            raise InvalidJitConfigError(f"{where} has no `Data.clientId`")
        authorization_url = d.url("authorizationUrl")
        if not authorization_url:
            raise InvalidJitConfigError(f"{where} has no `Data.authorizationUrl`")
        return cls(
            scheme=OAUTH_SCHEME,
            client_id=client_id,
            authorization_url=authorization_url,
            oauth_endpoint_url=d.url("oauthEndpointUrl") or None,
            # Missing means false at runtime (docs/protocol.md, "JIT configs").
            require_fips_cryptography=bool(d.boolean("requireFipsCryptography")),
            authorization_url_v2=d.url("authorizationUrlV2") or None,
            # The runner checks only that the key is there, not its value (`Runner.cs` `ExecuteCommand`).
            enable_auth_migration_by_default=d.has("enableAuthMigrationByDefault"),
        )

    def to_json(self) -> dict[str, Any]:
        if self.scheme == ACCESS_TOKEN_SCHEME:
            token = self.access_token.get_secret_value() if self.access_token else ""
            return {"Scheme": ACCESS_TOKEN_SCHEME, "Data": {"token": token}}
        data: dict[str, str] = {
            "clientId": self.client_id,
            "authorizationUrl": self.authorization_url,
            "requireFipsCryptography": "True" if self.require_fips_cryptography else "False",
        }
        if self.oauth_endpoint_url:
            data["oauthEndpointUrl"] = self.oauth_endpoint_url
        if self.authorization_url_v2:
            data["authorizationUrlV2"] = self.authorization_url_v2
        if self.enable_auth_migration_by_default:
            data["enableAuthMigrationByDefault"] = "true"
        return {"Scheme": self.scheme, "Data": data}


# --------------------------------------------------------------------------- the blob


def _check_file_name(name: str) -> None:
    # The official runner writes <root>/<name> for every entry; a name must not leave the root.
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise InvalidJitConfigError(
            f"the JIT config names a file {name[:40]!r} that is not a plain file name"
        )


@attrs.frozen(repr=False)
class JitConfig:
    """A decoded just-in-time runner config.

    `runner` and `credentials` are the parsed `.runner` and `.credentials`;
    `rsa_parameters` is `.credentials_rsaparams` (None when absent: only the
    `OAuthAccessToken` scheme works without it). `files` keeps every file's bytes
    exactly as decoded, so `encode()` round-trips and `write()` writes what the
    official runner would. The key, the files and the blob never appear in a repr.
    """

    runner: RunnerSettings
    credentials: RunnerCredentials
    rsa_parameters: RSAParameters | None = attrs.field(default=None, eq=False)
    files: Mapping[str, bytes] = attrs.field(factory=dict, eq=False)

    def __repr__(self) -> str:
        return (
            f"JitConfig(agent_id={self.runner.agent_id}, agent_name={self.runner.agent_name!r}, "
            f"flow={'v2' if self.runner.uses_broker else 'v1'}, ephemeral={self.runner.ephemeral})"
        )

    def settings(self, *, hidden: str = HIDDEN) -> dict[str, object]:
        """The settings that are safe to show (a table, `--json`): the RSA key and any access
        token only say whether they are there, as `hidden`."""
        runner, credentials = self.runner, self.credentials
        return {
            "agent_id": runner.agent_id,
            "agent_name": runner.agent_name,
            "pool_id": runner.pool_id,
            "pool_name": runner.pool_name,
            "server_url": runner.server_url or None,
            "server_url_v2": runner.server_url_v2 or None,
            "flow": "v2" if runner.uses_broker else "v1",
            "github_url": runner.github_url,
            "work_folder": runner.work_folder,
            "ephemeral": runner.ephemeral,
            "disable_update": runner.disable_update,
            "auth_scheme": credentials.scheme,
            "client_id": credentials.client_id or None,
            "authorization_url": credentials.authorization_url or None,
            "rsa_key": hidden if self.rsa_parameters is not None else None,
            "access_token": hidden if credentials.access_token is not None else None,
        }

    def _repr_html_(self) -> str:
        """The runner's `settings()`; the blob and the RSA key show as "hidden"."""
        labels = {"rsa_key": "RSA key", "auth_scheme": "auth scheme", "access_token": "access token"}
        rows = [(labels.get(key, key), value) for key, value in self.settings().items()]
        return html_table(type(self).__name__, [*rows, ("encoded config", HIDDEN)])

    @classmethod
    def decode(cls, blob: str | bytes | Secret) -> JitConfig:
        """Decode an `encodedJITConfig` / `encoded_jit_config` blob.

        Raises `InvalidJitConfigError` naming the part that is wrong: the outer
        base64, the outer JSON, which file, which field. It never quotes the blob.
        """
        if isinstance(blob, Secret):
            blob = blob.get_secret_value()
        if isinstance(blob, bytes):
            try:
                blob = blob.decode("ascii")
            except UnicodeDecodeError:
                raise InvalidJitConfigError("the JIT config is not base64 text") from None
        if not isinstance(blob, str):
            raise InvalidJitConfigError(f"the JIT config must be a string, not {type(blob).__name__}")
        blob = blob.strip().removeprefix("\ufeff")
        if not blob:
            raise InvalidJitConfigError("the JIT config is empty")
        try:
            outer_bytes = _b64decode(blob)
        except (binascii.Error, ValueError):
            raise InvalidJitConfigError("the JIT config is not valid base64 (outer layer)") from None
        outer = _json_bytes(outer_bytes, "the JIT config's decoded outer layer")
        if not isinstance(outer, Mapping):
            raise InvalidJitConfigError(
                "the JIT config's decoded outer layer is not a JSON object of file name to base64 contents"
            )
        files: dict[str, bytes] = {}
        for name, encoded in outer.items():
            _check_file_name(name)
            if not isinstance(encoded, str):
                raise InvalidJitConfigError(f"the JIT config entry `{name}` is not a base64 string")
            try:
                files[name] = _b64decode(encoded)
            except (binascii.Error, ValueError):
                raise InvalidJitConfigError(f"the JIT config file `{name}` is not valid base64") from None
        return cls.from_files(files)

    @classmethod
    def from_files(cls, files: Mapping[str, bytes]) -> JitConfig:
        """Parse the runner's files (as in a configured runner's root directory)."""
        by_lower = {name.lower(): name for name in files}
        missing = [name for name in (RUNNER_FILE, CREDENTIALS_FILE) if name not in by_lower]
        if missing:
            raise InvalidJitConfigError(
                f"the JIT config has no {' and no '.join(f'`{name}`' for name in missing)} file"
            )
        runner = RunnerSettings.from_json(_json_bytes(files[by_lower[RUNNER_FILE]], f"`{RUNNER_FILE}`"))
        credentials = RunnerCredentials.from_json(
            _json_bytes(files[by_lower[CREDENTIALS_FILE]], f"`{CREDENTIALS_FILE}`")
        )
        rsa_parameters = None
        if RSA_PARAMS_FILE in by_lower:
            rsa_parameters = RSAParameters.from_json(
                _json_bytes(files[by_lower[RSA_PARAMS_FILE]], f"`{RSA_PARAMS_FILE}`")
            )
        elif credentials.scheme == OAUTH_SCHEME:
            raise InvalidJitConfigError(
                f"the JIT config has no `{RSA_PARAMS_FILE}` file, which the OAuth scheme needs"
            )
        return cls(runner=runner, credentials=credentials, rsa_parameters=rsa_parameters, files=dict(files))

    @classmethod
    def create(
        cls,
        runner: RunnerSettings,
        credentials: RunnerCredentials,
        private_key: RSAPrivateKey | RSAParameters | None = None,
    ) -> JitConfig:
        """Build a config (and its files) from parts, as a server generating a JIT config would."""
        files = {
            RUNNER_FILE: _dump(runner.to_json()),
            CREDENTIALS_FILE: _dump(credentials.to_json()),
        }
        params: RSAParameters | None = None
        if private_key is not None:
            params = (
                private_key
                if isinstance(private_key, RSAParameters)
                else RSAParameters.from_private_key(private_key)
            )
            files[RSA_PARAMS_FILE] = _dump(params.to_json())
        elif credentials.scheme == OAUTH_SCHEME:
            raise InvalidJitConfigError("an OAuth JIT config needs the runner's private key")
        return cls(runner=runner, credentials=credentials, rsa_parameters=params, files=files)

    def encode(self) -> Secret:
        """The blob: `base64(JSON {file: base64(bytes)})`, standard base64 with padding."""
        outer = {name: base64.b64encode(data).decode("ascii") for name, data in self.files.items()}
        return Secret(base64.b64encode(_dump(outer)).decode("ascii"))

    def private_key(self) -> RSAPrivateKey:
        """The runner's RSA key; `InvalidJitConfigError` when absent or not a consistent key."""
        if self.rsa_parameters is None:
            raise InvalidJitConfigError(f"the JIT config has no `{RSA_PARAMS_FILE}` file")
        return self.rsa_parameters.private_key()

    def write(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write every file into `directory` (the runner root) with mode 0600; return their paths.

        This is what `run.sh --jitconfig` does before starting, so the official
        runner can be started from the same directory afterwards.
        """
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        written = []
        for name, data in self.files.items():
            _check_file_name(name)
            path = root / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT
            written.append(path)
        return written
