"""`ScaleSetClient`: the runner-registration exchange, the admin token and the scale-set API.

See docs/protocol.md: "Credentials and where they go", "The admin token",
"From your credentials to the admin token", "Building Actions-service URLs",
"Scale-set endpoints" and "Exception names in error bodies".
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import attrs
import httpx

from ._http import (
    ACTIONS_RETRY,
    REGISTRATION_RETRY,
    REST_RETRY,
    SINGLE_USE_RETRY,
    HTTPCore,
    HTTPLifecycle,
    RetryPolicy,
    decode_model,
    invalid_response,
    path_id,
    url_problem,
)
from ._jwt import token_expiry
from ._secret import Secret
from ._system_info import SystemInfo
from .auth import BearerAuth, Credentials, TokenCache, as_credentials
from .config import GitHubConfig
from .errors import (
    AuthenticationError,
    ConfigurationError,
    RunnerGroupNotFoundError,
)
from .github import GitHubClient
from .models import (
    AcquirableJob,
    AcquirableJobList,
    ActionsServiceAdminConnection,
    JitRunnerConfig,
    Label,
    RunnerGroup,
    RunnerGroupList,
    RunnerReference,
    RunnerReferenceList,
    RunnerScaleSet,
    RunnerScaleSetList,
    RunnerSetting,
    jit_config_request_body,
    scale_set_request_body,
)

if TYPE_CHECKING:
    from .session import MessageSession

__all__ = ["API_VERSION", "ScaleSetClient", "actions_url", "token_expiry"]

logger = logging.getLogger("actions_scaleset.actions")

API_VERSION: Final = "6.0-preview"
ADMIN_TOKEN_MARGIN: Final = 60.0
"""Refresh the admin token when it is within a minute of its `exp` (docs/protocol.md, "The admin token")."""
DEFAULT_RUNNER_GROUP_ID: Final = 1
_SCALE_SETS: Final = "_apis/runtime/runnerscalesets"
_AGENTS: Final = "_apis/distributedtask/pools/0/agents"


def actions_url(base: str, path: str, params: Mapping[str, str | int] | None = None) -> str:
    """An Actions-service URL: `base` joined with `path`, `api-version` added (docs/protocol.md,
    "Building Actions-service URLs").

    Pure. Like Go's `url.JoinPath`, `//` collapses and a trailing slash on `path` is
    kept. Query keys are sorted as Go's `Values.Encode` does, and every value is
    percent-encoded, so names holding `&`, `#`, `+` or `%` survive (GitHub's Go client
    formats them into the path unescaped).
    """
    base_parts = urlsplit(base)
    path_parts = urlsplit(path)
    segments = [s for s in (base_parts.path + "/" + path_parts.path).split("/") if s and s != "."]
    joined = "/" + "/".join(segments)
    if path_parts.path.endswith("/") and joined != "/":
        joined += "/"
    query = dict(parse_qsl(base_parts.query, keep_blank_values=True))
    query.update(parse_qsl(path_parts.query, keep_blank_values=True))
    if params:
        query.update({key: str(value) for key, value in params.items()})
    query.setdefault("api-version", API_VERSION)
    encoded = urlencode(sorted(query.items()), quote_via=quote, safe="")
    return urlunsplit((base_parts.scheme, base_parts.netloc, joined, encoded, ""))


@attrs.frozen(repr=False)
class _AdminConnection:
    """The Actions service base URL, its admin token, and the auth bound to that host."""

    url: str
    token: Secret
    auth: BearerAuth

    def __repr__(self) -> str:
        return f"_AdminConnection(url={self.url!r})"


class ScaleSetClient(HTTPLifecycle):
    """The runner scale-set API for one enterprise, organization or repository.

    Use it as an async context manager. The first Actions-service call does the
    registration exchange (registration token, then `actions/runner-registration`);
    the admin token is refreshed before it is a minute from expiry, once for any
    number of concurrent callers, and again on a 401.

    `auth` is a `PersonalAccessToken`, a `GitHubApp`, or a token as a `str` (taken as a
    personal access token). `http_client` is used as given (proxies, custom CA) and never
    closed here. `sleep` and `clock` are injectable for tests.
    """

    def __init__(
        self,
        config_url: str | GitHubConfig,
        auth: Credentials | str | Secret,
        *,
        http_client: httpx.AsyncClient | None = None,
        retry: RetryPolicy = ACTIONS_RETRY,
        rest_retry: RetryPolicy = REST_RETRY,
        registration_retry: RetryPolicy = REGISTRATION_RETRY,
        user_agent: str | None = None,
        system_info: SystemInfo | None = None,
        http: HTTPCore | None = None,
    ) -> None:
        self.config = config_url if isinstance(config_url, GitHubConfig) else GitHubConfig.parse(config_url)
        self._owns_http = http is None
        self.http = http if http is not None else HTTPCore(http_client, user_agent_suffix=user_agent)
        self.retry = retry
        self.registration_retry = registration_retry
        self._system_info = system_info if system_info is not None else SystemInfo()
        self._user_agents: dict[int, str] = {}
        self.github = GitHubClient(self.config, as_credentials(auth), http=self.http, retry=rest_retry)
        self._admin: TokenCache[_AdminConnection] = TokenCache(
            self._exchange, clock=self.http.clock, refresh_margin=ADMIN_TOKEN_MARGIN
        )

    def __repr__(self) -> str:
        return f"ScaleSetClient({self.config.config_url!r}, auth={self.github.credentials!r})"

    @property
    def system_info(self) -> SystemInfo:
        """Who is calling, sent as the JSON `User-Agent` of Actions-service calls."""
        return self._system_info

    @system_info.setter
    def system_info(self, info: SystemInfo) -> None:
        self._system_info = info
        self._user_agents.clear()

    def user_agent(self, scale_set_id: int = 0) -> str:
        """The JSON `User-Agent` for a call about `scale_set_id` (built once per id)."""
        scale_set_id = _id(scale_set_id)
        agent = self._user_agents.get(scale_set_id)
        if agent is None:
            agent = self._user_agents[scale_set_id] = self._system_info.user_agent(scale_set_id)
        return agent

    # ------------------------------------------------------------------ admin connection

    async def _exchange(self) -> tuple[_AdminConnection, float | None]:
        """Registration token → `actions/runner-registration` → {url, token} (docs/protocol.md,
        "From your credentials to the admin token")."""
        registration = await self.github.create_registration_token()
        url = self.config.api("/actions/runner-registration")

        response = await self.http.request(
            "POST",
            url,
            policy=self.registration_retry,
            auth=BearerAuth.fixed(url, registration.token, scheme="RemoteAuth", kind="registration token"),
            json={"url": self.config.config_url, "runner_event": "register"},
            expect=range(200, 300),
        )
        connection = decode_model(response, ActionsServiceAdminConnection, "an Actions service connection")
        if not connection.token.get_secret_value().strip():
            raise invalid_response(response, "the Actions service connection has an empty token")
        # checked now, so a bad URL is this typed error here and not httpx.InvalidURL at first use
        problem = url_problem(connection.url)
        if problem is not None:
            raise invalid_response(response, f"the Actions service connection's url is unusable: {problem}")
        expires_at = token_expiry(connection.token.get_secret_value())
        logger.info(
            "connected to the Actions service at %s for %s (admin token valid for %s)",
            connection.url,
            self.config.name,
            f"{expires_at - self.http.clock():.0f} s" if expires_at is not None else "an unknown time",
        )
        auth = BearerAuth.fixed(connection.url, connection.token, kind="admin token")
        return _AdminConnection(connection.url, connection.token, auth), expires_at

    async def admin_url(self) -> str:
        """The Actions service base URL (does the registration exchange if needed)."""
        return (await self._admin.get()).url

    async def actions_request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        expect: Sequence[int] = (200,),
        policy: RetryPolicy | None = None,
        auth: httpx.Auth | None = None,
        unauthorized: type[AuthenticationError] = AuthenticationError,
        scale_set_id: int = 0,
    ) -> httpx.Response:
        """Send to the Actions service with the admin token, refreshing it once on a 401.

        `auth` replaces the admin token (acquirejobs is sent with the message-queue
        token to the admin base URL, docs/protocol.md, "Acknowledging and acquiring"); a 401 then raises
        `unauthorized`
        for the caller to handle. `scale_set_id` goes into the `User-Agent`.
        """
        if isinstance(expect, str | bytes):
            raise TypeError(f"expect is a sequence of status codes, not a {type(expect).__name__}")
        headers = {"Content-Type": "application/json", "User-Agent": self.user_agent(scale_set_id)}
        connection = await self._admin.get()
        for attempt in (1, 2):
            kwargs: dict[str, Any] = {} if json is None else {"json": json}
            try:
                return await self.http.request(
                    method,
                    actions_url(connection.url, path, params),
                    policy=policy or self.retry,
                    auth=auth or connection.auth,
                    headers=headers,
                    expect=expect,
                    unauthorized=unauthorized,
                    **kwargs,
                )
            except AuthenticationError:
                if attempt == 2 or auth is not None:
                    raise
                logger.info("admin token refused; doing the registration exchange again")
                connection = await self._admin.refresh(stale=connection)
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ scale sets

    async def get_scale_set(
        self, name: str, runner_group_id: int = DEFAULT_RUNNER_GROUP_ID
    ) -> RunnerScaleSet | None:
        """The scale set called `name` in the group, or None. More than one is an error."""
        runner_group_id = _id(runner_group_id, "runner_group_id")
        response = await self.actions_request(
            "GET", _SCALE_SETS, params={"runnerGroupId": runner_group_id, "name": name}
        )
        found = decode_model(response, RunnerScaleSetList, "a list of scale sets").value
        if len(found) > 1:
            raise invalid_response(
                response, f"{len(found)} scale sets are named {name!r} in group {runner_group_id}"
            )
        return found[0] if found else None

    async def get_scale_set_by_id(self, scale_set_id: int) -> RunnerScaleSet:
        """`ScaleSetNotFoundError` when it does not exist (deleted, or dormant for 7 days)."""
        scale_set_id = _id(scale_set_id)
        response = await self.actions_request(
            "GET", f"{_SCALE_SETS}/{scale_set_id}", scale_set_id=scale_set_id
        )
        return decode_model(response, RunnerScaleSet, "a scale set")

    async def list_scale_sets(self, runner_group_id: int | None = None) -> list[RunnerScaleSet]:
        params = None
        if runner_group_id is not None:
            params = {"runnerGroupId": _id(runner_group_id, "runner_group_id")}
        response = await self.actions_request("GET", _SCALE_SETS, params=params)
        return list(decode_model(response, RunnerScaleSetList, "a list of scale sets").value)

    async def create_scale_set(
        self,
        name: str,
        *,
        runner_group_id: int = DEFAULT_RUNNER_GROUP_ID,
        labels: Sequence[str | Label] | None = None,
        runner_setting: RunnerSetting | None = None,
    ) -> RunnerScaleSet:
        """Create a scale set; its labels default to its name, as GitHub's clients do."""
        runner_group_id = _id(runner_group_id, "runner_group_id")
        body = scale_set_request_body(
            name=name,
            runner_group_id=runner_group_id,
            labels=_labels(labels, name),
            runner_setting=runner_setting
            if runner_setting is not None
            else RunnerSetting(disable_update=True),
        )
        # docs/protocol.md, "Scale-set endpoints": the service answers 200, not 201
        response = await self.actions_request("POST", _SCALE_SETS, json=body, expect=(200, 201))
        created = decode_model(response, RunnerScaleSet, "a scale set")
        logger.info("created scale set %d %r in runner group %d", created.id, created.name, runner_group_id)
        return created

    async def update_scale_set(
        self,
        scale_set_id: int,
        *,
        name: str | None = None,
        runner_group_id: int | None = None,
        labels: Sequence[str | Label] | None = None,
        runner_setting: RunnerSetting | None = None,
    ) -> RunnerScaleSet:
        """Change only what is given (the body is sparse, as ARC sends it)."""
        scale_set_id = _id(scale_set_id)
        body = scale_set_request_body(
            name=name,
            runner_group_id=_id(runner_group_id, "runner_group_id") if runner_group_id is not None else None,
            labels=_labels(labels, name) if labels is not None else None,
            runner_setting=runner_setting,
        )
        response = await self.actions_request(
            "PATCH", f"{_SCALE_SETS}/{scale_set_id}", json=body, scale_set_id=scale_set_id
        )
        return decode_model(response, RunnerScaleSet, "a scale set")

    async def delete_scale_set(self, scale_set_id: int) -> None:
        scale_set_id = _id(scale_set_id)
        await self.actions_request(
            "DELETE", f"{_SCALE_SETS}/{scale_set_id}", expect=(204, 200), scale_set_id=scale_set_id
        )
        logger.info("deleted scale set %d", scale_set_id)

    async def ensure_scale_set(
        self,
        name: str,
        *,
        runner_group: str | None = "default",
        labels: Sequence[str | Label] | None = None,
        runner_setting: RunnerSetting | None = None,
    ) -> RunnerScaleSet:
        """Get the scale set, or create it; the group is resolved by name (None: the default group).

        Existing labels that differ from `labels` are updated. Use this on start-up:
        GitHub deletes a scale set after 7 days without a listener.
        """
        wanted_labels = _labels(labels, name) if labels is not None else None  # misuse fails before any call
        group_id = await self._runner_group_id(runner_group)
        existing = await self.get_scale_set(name, group_id)
        if existing is None:
            return await self.create_scale_set(
                name, runner_group_id=group_id, labels=labels, runner_setting=runner_setting
            )
        if wanted_labels is not None:
            wanted = {label.name for label in wanted_labels}
            if wanted != {label.name for label in existing.labels}:
                logger.info("updating the labels of scale set %d to %s", existing.id, sorted(wanted))
                return await self.update_scale_set(existing.id, labels=wanted_labels)
        return existing

    async def _runner_group_id(self, runner_group: str | None) -> int:
        if runner_group is None:
            return DEFAULT_RUNNER_GROUP_ID
        if not isinstance(runner_group, str):
            raise TypeError(
                f"runner_group is a group name (a str) or None for the default group, "
                f"not {type(runner_group).__name__}"
            )
        if runner_group.strip().lower() in ("", "default"):
            return DEFAULT_RUNNER_GROUP_ID
        return (await self.get_runner_group(runner_group)).id

    # ------------------------------------------------------------------ runner groups

    async def get_runner_group(self, name: str) -> RunnerGroup:
        """The runner group called `name`; `RunnerGroupNotFoundError` when there is none."""
        # docs/protocol.md, "Scale-set endpoints": the trailing slash is part of the path
        response = await self.actions_request(
            "GET", "_apis/runtime/runnergroups/", params={"groupName": name}
        )
        groups = decode_model(response, RunnerGroupList, "a list of runner groups").value
        if not groups:
            raise RunnerGroupNotFoundError(f"no runner group named {name!r} in {self.config.name}")
        if len(groups) > 1:
            raise invalid_response(response, f"{len(groups)} runner groups are named {name!r}")
        return groups[0]

    # ------------------------------------------------------------------ runners

    async def generate_jit_config(
        self, scale_set_id: int, *, name: str, work_folder: str = "_work"
    ) -> JitRunnerConfig:
        """Register a just-in-time runner and get its single-use config.

        Not retried unless the request surely never arrived: a blind retry would
        meet `RunnerExistsError` for the runner the first attempt made.
        """
        scale_set_id = _id(scale_set_id)
        response = await self.actions_request(
            "POST",
            f"{_SCALE_SETS}/{scale_set_id}/generatejitconfig",
            json=jit_config_request_body(name=name, work_folder=work_folder),
            expect=(200, 201),
            policy=SINGLE_USE_RETRY,
            scale_set_id=scale_set_id,
        )
        config = decode_model(response, JitRunnerConfig, "a JIT runner config")
        logger.info(
            "registered JIT runner %d %r in scale set %d", config.runner.id, config.runner.name, scale_set_id
        )
        return config

    async def get_runner(self, runner_id: int) -> RunnerReference:
        """`RunnerNotFoundError` when the runner does not exist."""
        runner_id = _id(runner_id, "runner_id")
        response = await self.actions_request("GET", f"{_AGENTS}/{runner_id}")
        return decode_model(response, RunnerReference, "a runner")

    async def get_runner_by_name(self, name: str) -> RunnerReference | None:
        response = await self.actions_request("GET", _AGENTS, params={"agentName": name})
        runners = decode_model(response, RunnerReferenceList, "a list of runners").value
        if len(runners) > 1:
            raise invalid_response(response, f"{len(runners)} runners are named {name!r}")
        return runners[0] if runners else None

    async def remove_runner(self, runner_id: int) -> None:
        """Remove a runner; `JobStillRunningError` while it runs a job."""
        runner_id = _id(runner_id, "runner_id")
        await self.actions_request("DELETE", f"{_AGENTS}/{runner_id}", expect=(204, 200))

    # ------------------------------------------------------------------ jobs

    async def get_acquirable_jobs(self, scale_set_id: int) -> list[AcquirableJob]:
        """Jobs waiting to be acquired by the scale set (204 means none)."""
        scale_set_id = _id(scale_set_id)
        response = await self.actions_request(
            "GET",
            f"{_SCALE_SETS}/{scale_set_id}/acquirablejobs",
            expect=(200, 204),
            scale_set_id=scale_set_id,
        )
        if response.status_code == 204 or not response.content.strip():
            return []
        return list(decode_model(response, AcquirableJobList, "a list of acquirable jobs").value)

    # ------------------------------------------------------------------ sessions

    def session(self, scale_set_id: int, *, owner: str | None = None, **options: Any) -> MessageSession:
        """A message session on the scale set's queue: use it with `async with`."""
        from .session import MessageSession

        return MessageSession(self, _id(scale_set_id), owner=owner or socket.gethostname(), **options)


def _id(value: int, argument: str = "scale_set_id") -> int:
    return path_id(value, argument)


def _labels(labels: Sequence[str | Label] | None, name: str | None) -> list[Label]:
    if labels is None:
        return [Label(name=name)] if name else []
    if isinstance(labels, str | bytes | Label) or not isinstance(labels, Iterable):
        # a str is a sequence too: "linux" would become the labels l, i, n, u, x
        hint = f": write labels=[{labels!r}]" if isinstance(labels, str) else ""
        raise TypeError(f"labels must be a list of labels, not a {type(labels).__name__}{hint}")
    result = []
    for label in labels:
        if isinstance(label, Label):
            result.append(label)
        elif isinstance(label, str) and label.strip():
            result.append(Label(name=label.strip()))
        else:
            raise ConfigurationError(f"a label must be a non-empty string or a Label, not {label!r}")
    return result
