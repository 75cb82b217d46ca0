"""`GitHubClient`: the GitHub REST calls runner management needs (docs/protocol.md,
"From your credentials to the admin token")."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import quote

import httpx

from ._http import (
    REST_RETRY,
    SINGLE_USE_RETRY,
    HTTPCore,
    HTTPLifecycle,
    RetryPolicy,
    decode_json,
    decode_model,
    invalid_response,
    path_id,
    url_problem,
)
from ._secret import Secret
from .auth import Credentials, GitHubApp, as_credentials
from .config import GitHubConfig, Scope
from .errors import ConfigurationError
from .models import (
    ActionsPermissions,
    GitHubJitConfig,
    GitHubRunner,
    GitHubRunnerGroup,
    GitHubUser,
    Installation,
    Organization,
    RegistrationToken,
    structure,
)

__all__ = ["GitHubClient", "parse_oauth_scopes"]

logger = logging.getLogger("actions_scaleset.github")

GITHUB_API_VERSION: Final = "2022-11-28"
_REST_HEADERS: Final = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": GITHUB_API_VERSION}
_TOKEN_HEADERS: Final = {**_REST_HEADERS, "Content-Type": "application/vnd.github.v3+json"}
"""Registration and remove tokens: an empty `POST` with the `Content-Type` that
`actions/scaleset` `getRunnerRegistrationToken` sends."""
_PAGE_SIZE: Final = 100
_MAX_PAGES: Final = 1000


class GitHubClient(HTTPLifecycle):
    """GitHub REST for one enterprise, organization or repository.

    Use it as an async context manager, or call `aclose()`. `http_client` is used
    as given and never closed here; without one, a client is made and owned.
    """

    def __init__(
        self,
        config: GitHubConfig | str,
        auth: Credentials | str | Secret,
        *,
        http_client: httpx.AsyncClient | None = None,
        retry: RetryPolicy = REST_RETRY,
        user_agent: str | None = None,
        http: HTTPCore | None = None,
    ) -> None:
        self.config = config if isinstance(config, GitHubConfig) else GitHubConfig.parse(config)
        auth = as_credentials(auth)
        self.credentials = auth
        self._owns_http = http is None
        self.http = http if http is not None else HTTPCore(http_client, user_agent_suffix=user_agent)
        self.retry = retry
        self._auth = auth.bind(self.config, self.http)

    def __repr__(self) -> str:
        return f"GitHubClient({self.config.config_url!r}, auth={self.credentials!r})"

    # ------------------------------------------------------------------ tokens

    async def create_registration_token(self) -> RegistrationToken:
        """`POST {scope}/actions/runners/registration-token` (201)."""
        response = await self._send(
            "POST", self.config.registration_token_path, expect=(201,), headers=_TOKEN_HEADERS
        )
        return decode_model(response, RegistrationToken, "a registration token")

    async def create_remove_token(self) -> RegistrationToken:
        """`POST {scope}/actions/runners/remove-token` (201)."""
        response = await self._send(
            "POST", self.config.remove_token_path, expect=(201,), headers=_TOKEN_HEADERS
        )
        return decode_model(response, RegistrationToken, "a remove token")

    # ------------------------------------------------------------------ runners

    async def generate_jit_config(
        self,
        name: str,
        *,
        runner_group_id: int = 1,
        labels: Sequence[str] = ("self-hosted",),
        work_folder: str = "_work",
    ) -> GitHubJitConfig:
        """`POST {scope}/actions/runners/generate-jitconfig` (201): a single-use runner config.

        Not retried unless the request surely did not reach GitHub: a retry after a
        lost response would register a second runner of the same name.
        """
        if isinstance(labels, str | bytes):
            hint = f": write labels=[{labels!r}]" if isinstance(labels, str) else ""
            raise TypeError(f"labels must be a list of labels, not a {type(labels).__name__}{hint}")
        if not labels:
            raise ConfigurationError("a JIT runner needs at least one label")
        body = {
            "name": name,
            "runner_group_id": runner_group_id,
            "labels": list(labels),
            "work_folder": work_folder,
        }
        response = await self._send(
            "POST",
            f"{self.config.scope_path}/actions/runners/generate-jitconfig",
            json=body,
            expect=(201,),
            policy=SINGLE_USE_RETRY,
        )
        return decode_model(response, GitHubJitConfig, "a JIT runner config")

    async def list_runners(self, *, name: str | None = None) -> list[GitHubRunner]:
        """Every self-hosted runner of the scope, following the `Link` header across pages."""
        params = {"per_page": str(_PAGE_SIZE)}
        if name is not None:
            params["name"] = name
        items = await self._paginate(f"{self.config.scope_path}/actions/runners", "runners", params)
        return [structure(item, GitHubRunner, "a runner") for item in items]

    async def get_runner(self, runner_id: int) -> GitHubRunner:
        response = await self._send(
            "GET", f"{self.config.scope_path}/actions/runners/{path_id(runner_id, 'runner_id')}"
        )
        return decode_model(response, GitHubRunner, "a runner")

    async def delete_runner(self, runner_id: int) -> None:
        """`DELETE {scope}/actions/runners/{id}` (204)."""
        await self._send(
            "DELETE",
            f"{self.config.scope_path}/actions/runners/{path_id(runner_id, 'runner_id')}",
            expect=(204,),
        )

    # ------------------------------------------------------------------ runner groups

    async def list_runner_groups(self) -> list[GitHubRunnerGroup]:
        """Runner groups of the organization (or enterprise); a repository uses its owner's."""
        items = await self._paginate(
            f"{self._group_scope_path()}/actions/runner-groups",
            "runner_groups",
            {"per_page": str(_PAGE_SIZE)},
        )
        return [structure(item, GitHubRunnerGroup, "a runner group") for item in items]

    async def get_runner_group_by_name(self, name: str) -> GitHubRunnerGroup | None:
        """The group called `name` (case-insensitive, as GitHub compares), or None."""
        wanted = name.casefold()
        for group in await self.list_runner_groups():
            if group.name.casefold() == wanted:
                return group
        return None

    # ------------------------------------------------------------------ checks

    async def get_installation(self) -> Installation:
        """The GitHub App installation for this config (needs `GitHubApp` credentials)."""
        if not isinstance(self.credentials, GitHubApp):
            raise ConfigurationError("get_installation() needs GitHubApp credentials")
        response = await self.http.request(
            "GET",
            self.config.api(self.config.installation_path),
            policy=self.retry,
            headers={**_REST_HEADERS, **self.credentials.jwt_headers(now=self.http.clock())},
        )
        return decode_model(response, Installation, "an installation")

    async def get_authenticated_user(self) -> GitHubUser:
        """`GET /user`: who the token belongs to (GitHub Apps get 403 here)."""
        response = await self._send("GET", "/user")
        return decode_model(response, GitHubUser, "a user")

    async def get_token_scopes(self) -> frozenset[str] | None:
        """`GET /user`: a classic token's OAuth scopes (its `X-OAuth-Scopes` header).

        None when GitHub lists none: a fine-grained token or an App's token, whose
        permissions only a call that needs them can show.
        """
        response = await self._send("GET", "/user")
        return parse_oauth_scopes(response.headers.get("X-OAuth-Scopes"))

    async def get_organization(self, org: str | None = None) -> Organization:
        """`GET /orgs/{org}`: by default the config's organization."""
        login = org or self.config.organization
        if not login:
            raise ConfigurationError("an enterprise config URL has no organization; pass org=")
        response = await self._send("GET", f"/orgs/{_seg(login)}")
        return decode_model(response, Organization, "an organization")

    async def get_actions_permissions(self) -> ActionsPermissions:
        """`GET {scope}/actions/permissions`: whether Actions may run here."""
        response = await self._send("GET", f"{self.config.scope_path}/actions/permissions")
        return decode_model(response, ActionsPermissions, "Actions permissions")

    # ------------------------------------------------------------------ plumbing

    def _group_scope_path(self) -> str:
        if self.config.scope is Scope.REPOSITORY:
            return f"/orgs/{_seg(self.config.organization or '')}"
        return self.config.scope_path

    async def _send(
        self,
        method: str,
        path_or_url: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
        policy: RetryPolicy | None = None,
        headers: dict[str, str] = _REST_HEADERS,
    ) -> httpx.Response:
        absolute = path_or_url.lower().startswith(("http://", "https://"))
        url = path_or_url if absolute else self.config.api(path_or_url)
        kwargs: dict[str, Any] = {} if json is None else {"json": json}
        return await self.http.request(
            method,
            url,
            policy=policy or self.retry,
            auth=self._auth,
            headers=headers,
            params=params,
            expect=expect,
            **kwargs,
        )

    async def _paginate(self, path: str, key: str, params: dict[str, str]) -> list[Any]:
        items: list[Any] = []
        url: str | None = self.config.api(path)
        page_params: dict[str, str] | None = params
        for _ in range(_MAX_PAGES):
            if url is None:
                return items
            response = await self._send("GET", url, params=page_params)
            payload = decode_json(response, f"a page of {key}")
            page = payload.get(key) if isinstance(payload, dict) else None
            if not isinstance(page, list):
                raise invalid_response(response, f"a page of {key} has no {key!r} list")
            items.extend(page)
            url = _next_page(response)
            page_params = None  # the next link carries its own query
        logger.warning("stopped following %s after %d pages", key, _MAX_PAGES)
        return items


def _next_page(response: httpx.Response) -> str | None:
    """The `next` URL of the `Link` header, checked now rather than when it is requested."""
    url = response.links.get("next", {}).get("url")
    if url is None:
        return None
    problem = url_problem(url)
    if problem is not None:
        raise invalid_response(response, f"the next page in the Link header cannot be used: {problem}")
    return url


def _seg(value: str) -> str:
    return quote(value, safe="")


def parse_oauth_scopes(header: str | None) -> frozenset[str] | None:
    """`"admin:org, repo"` -> `{"admin:org", "repo"}`; None for no header (not a classic token)."""
    if header is None:
        return None
    return frozenset(scope.strip() for scope in header.split(",") if scope.strip())
