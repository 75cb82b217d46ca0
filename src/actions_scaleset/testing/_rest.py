"""GitHub REST, GHES style under `/api/v3` (docs/protocol.md, "Credentials and where they go"; GitHub's
REST docs).

App installation lookup and installation tokens (App JWT), registration and
remove tokens, the `actions/runner-registration` exchange (`RemoteAuth`), REST
JIT configs, runners (paginated with `Link`) and runner groups.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

from ..config import GitHubConfig, Scope
from ..errors import InvalidConfigURLError
from ._context import Ctx, Route, route
from ._http import Response, Surface, json_response
from ._jit import JwtRejected, verify_app_jwt
from ._model import Runner, ScopeKey, Tenant
from ._state import StateError
from ._tokens import TokenKind

__all__ = ["ROUTES"]

_API: Final = "/api/v3"
_SCOPE: Final = r"(?P<scope>orgs/[^/]+|repos/[^/]+/[^/]+|enterprises/[^/]+)"
_REST_TOKENS: Final = (TokenKind.PAT, TokenKind.INSTALLATION)
_DEFAULT_LABELS: Final = frozenset({"self-hosted", "linux", "x64", "windows", "macos", "arm64", "arm"})


def _github_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _scope_key(scope: str) -> ScopeKey:
    kind, _, rest = scope.partition("/")
    if kind == "orgs":
        return ("org", rest.lower())
    if kind == "repos":
        return ("repo", rest.lower())
    return ("enterprise", rest.lower())


def _tenant(ctx: Ctx, scope: str | None = None) -> Tenant:
    tenant = ctx.core.state.tenant(_scope_key(scope or ctx.params["scope"]))
    if tenant is None:
        ctx.fail(404, "Not Found")
    return tenant


def _covers(account: ScopeKey, key: ScopeKey) -> bool:
    """An installation on `account` may manage runners of `key`."""
    if account == key:
        return True
    return account[0] == "org" and key[0] == "repo" and key[1].partition("/")[0] == account[1]


def _rest_auth(ctx: Ctx, tenant: Tenant) -> None:
    """A PAT (sent as `Bearer` or `token`), or an installation token of an installation covering it."""
    info = ctx.require(_REST_TOKENS, schemes=("Bearer", "token"))
    if info.kind is TokenKind.INSTALLATION:
        account = info.claims["account"]
        if not _covers((account[0], account[1]), tenant.key):
            ctx.fail(403, "Resource not accessible by integration")


def _app_auth(ctx: Ctx) -> None:
    creds = ctx.credentials()
    if creds is None or creds[0].lower() != "bearer":
        ctx.fail(401, "A JSON web token could not be decoded")
    app = ctx.core.app
    try:
        verify_app_jwt(
            creds[1], app.key.public_key(), issuers={app.client_id, str(app.app_id)}, now=ctx.core.clock()
        )
    except JwtRejected as exc:
        ctx.fail(401, str(exc))


# ---------------------------------------------------------------------- GitHub App


def _installation_json(ctx: Ctx, key: ScopeKey) -> dict[str, Any]:
    app = ctx.core.app
    installation_id = app.installation(key)
    owner = key[1].partition("/")[0] if key[0] == "repo" else key[1]
    target = "Enterprise" if key[0] == "enterprise" else "Organization"
    return {
        "id": installation_id,
        "account": {"login": owner, "type": target},
        "app_id": app.app_id,
        "app_slug": app.slug,
        "client_id": app.client_id,
        "target_type": target,
        "repository_selection": "all",
        "access_tokens_url": f"{ctx.urls.rest}/app/installations/{installation_id}/access_tokens",
        "permissions": {
            "administration": "write",
            "metadata": "read",
            "organization_self_hosted_runners": "write",
        },
    }


PAT_SCOPES = "admin:org, manage_runners:enterprise, repo, workflow"
"""The scopes the fake's classic PAT has (`X-OAuth-Scopes` on `GET /user`): every one a runner admin needs."""


@route("installation", "GET", rf"{_API}/{_SCOPE}/installation", Surface.REST)
async def get_installation(ctx: Ctx) -> Response:
    _app_auth(ctx)
    tenant = _tenant(ctx)
    return json_response(200, _installation_json(ctx, tenant.key))


@route("access_token", "POST", rf"{_API}/app/installations/(?P<installation>\d+)/access_tokens", Surface.REST)
async def create_access_token(ctx: Ctx) -> Response:
    _app_auth(ctx)
    account = ctx.core.app.account_of(int(ctx.params["installation"]))
    if account is None:
        ctx.fail(404, "Not Found")
    token, expires = ctx.core.tokens.mint_opaque(
        TokenKind.INSTALLATION,
        origin=ctx.request.origin,
        data={"account": list(account), "installation_id": int(ctx.params["installation"])},
    )
    return json_response(
        201,
        {
            "token": token,
            "expires_at": _github_time(expires or 0).replace(".000Z", "Z"),
            "permissions": {"administration": "write", "metadata": "read"},
            "repository_selection": "all",
        },
    )


# ---------------------------------------------------------------------- registration


def _scope_token(ctx: Ctx, kind: TokenKind) -> Response:
    tenant = _tenant(ctx)
    _rest_auth(ctx, tenant)
    token, expires = ctx.core.tokens.mint_opaque(
        kind, origin=ctx.request.origin, data={"scope": list(tenant.key)}
    )
    return json_response(201, {"token": token, "expires_at": _github_time(expires or 0)})


@route("registration_token", "POST", rf"{_API}/{_SCOPE}/actions/runners/registration-token", Surface.REST)
async def registration_token(ctx: Ctx) -> Response:
    return _scope_token(ctx, TokenKind.REGISTRATION)


@route("remove_token", "POST", rf"{_API}/{_SCOPE}/actions/runners/remove-token", Surface.REST)
async def remove_token(ctx: Ctx) -> Response:
    return _scope_token(ctx, TokenKind.REMOVE)


def _config_scope(config: GitHubConfig) -> ScopeKey:
    if config.scope is Scope.ENTERPRISE:
        return ("enterprise", str(config.enterprise).lower())
    if config.scope is Scope.REPOSITORY:
        return ("repo", f"{config.organization}/{config.repository}".lower())
    return ("org", str(config.organization).lower())


@route("runner_registration", "POST", rf"{_API}/actions/runner-registration", Surface.REST)
async def runner_registration(ctx: Ctx) -> Response:
    """`RemoteAuth <registration token>` + `{url, runner_event}` → the admin connection (docs/protocol.md,
    "From your credentials to the admin token")."""
    info = ctx.require((TokenKind.REGISTRATION,), schemes=("RemoteAuth",))
    body = ctx.json_object()
    url = ctx.field(body, "url", str)
    if ctx.field(body, "runner_event", str) != "register":
        ctx.fail(400, "runner_event must be 'register'")
    try:
        config = GitHubConfig.parse(url, env={})
    except InvalidConfigURLError:
        ctx.fail(404, "Not Found")
    host = ctx.request.host.lower()
    scope = info.claims["scope"]
    if config.host not in (host, host.removeprefix("api.")) or _config_scope(config) != (scope[0], scope[1]):
        ctx.fail(404, "Not Found")
    tenant = _tenant(ctx, _scope_path(_config_scope(config)))
    admin, _ = ctx.core.tokens.mint_jwt(
        TokenKind.ADMIN, origin=ctx.request.origin, claims={"tenant": tenant.id, "scope": list(tenant.key)}
    )
    return json_response(200, {"url": ctx.urls.admin(tenant.id), "token": admin})


def _scope_path(key: ScopeKey) -> str:
    return {"org": "orgs", "repo": "repos", "enterprise": "enterprises"}[key[0]] + "/" + key[1]


# ---------------------------------------------------------------------- runners


def _runner_json(ctx: Ctx, runner: Runner) -> dict[str, Any]:
    state = ctx.core.state
    busy = runner.job_id is not None and state.jobs[runner.job_id].state == "running"
    return {
        "id": runner.id,
        "name": runner.name,
        "os": runner.os,
        "status": "online" if runner.session is not None or runner.simulated else "offline",
        "busy": busy,
        "ephemeral": True,
        "runner_group_id": runner.group_id,
        "labels": [
            {
                "id": i + 1,
                "name": label,
                "type": "read-only" if label.lower() in _DEFAULT_LABELS else "custom",
            }
            for i, label in enumerate(runner.labels)
        ],
    }


@route("rest.jit_config", "POST", rf"{_API}/{_SCOPE}/actions/runners/generate-jitconfig", Surface.REST)
async def generate_jit_config(ctx: Ctx) -> Response:
    tenant = _tenant(ctx)
    _rest_auth(ctx, tenant)
    body = ctx.json_object()
    name = ctx.field(body, "name", str)
    group_id = ctx.field(body, "runner_group_id", int)
    labels = ctx.field(body, "labels", list)
    work_folder = ctx.field(body, "work_folder", str, required=False) or "_work"
    if (
        not name.strip()
        or not labels
        or len(labels) > 100
        or not all(isinstance(x, str) and x for x in labels)
    ):
        ctx.fail(422, "Invalid request: name must be non-empty and labels 1 to 100 non-empty strings")
    runner, encoded = ctx.create_jit_runner(
        tenant, name=name, group_id=group_id, scale_set_id=None, labels=labels, work_folder=work_folder
    )
    return json_response(201, {"runner": _runner_json(ctx, runner), "encoded_jit_config": encoded})


def _page(ctx: Ctx, key: str, items: list[dict[str, Any]]) -> Response:
    """One page of `items` as `{total_count, <key>}` with GitHub's `Link` header."""
    per_page = ctx.int_param("per_page", ctx.request.query) or 30
    page = ctx.int_param("page", ctx.request.query) or 1
    per_page = min(max(per_page, 1), 100)
    last = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    links = []
    for rel, number in (("prev", page - 1), ("next", page + 1), ("last", last), ("first", 1)):
        if (rel in ("prev", "first") and page > 1) or (rel in ("next", "last") and page < last):
            query = urlencode({**ctx.request.query, "per_page": per_page, "page": number})
            links.append(f'<{ctx.request.origin}{ctx.request.path}?{query}>; rel="{rel}"')
    headers = [("link", ", ".join(links))] if links else []
    return json_response(200, {"total_count": len(items), key: chunk}, headers)


@route("rest.runners.list", "GET", rf"{_API}/{_SCOPE}/actions/runners", Surface.REST)
async def list_runners(ctx: Ctx) -> Response:
    tenant = _tenant(ctx)
    _rest_auth(ctx, tenant)
    name = ctx.request.query.get("name")
    runners = [r for r in ctx.core.state.live_runners(tenant) if name is None or r.name == name]
    return _page(ctx, "runners", [_runner_json(ctx, r) for r in runners])


def _runner(ctx: Ctx, tenant: Tenant) -> Runner:
    try:
        return ctx.core.state.runner(tenant, int(ctx.params["runner"]))
    except StateError:
        ctx.fail(404, "Not Found")


@route("rest.runners.get", "GET", rf"{_API}/{_SCOPE}/actions/runners/(?P<runner>\d+)", Surface.REST)
async def get_runner(ctx: Ctx) -> Response:
    tenant = _tenant(ctx)
    _rest_auth(ctx, tenant)
    return json_response(200, _runner_json(ctx, _runner(ctx, tenant)))


@route("rest.runners.delete", "DELETE", rf"{_API}/{_SCOPE}/actions/runners/(?P<runner>\d+)", Surface.REST)
async def delete_runner(ctx: Ctx) -> Response:
    tenant = _tenant(ctx)
    _rest_auth(ctx, tenant)
    runner = _runner(ctx, tenant)
    try:
        ctx.core.state.delete_runner(runner)
    except StateError:
        ctx.fail(422, f'Bad request - Runner "{runner.name}" is still running a job"')
    return Response(204)


_GROUP_SCOPE: Final = r"(?P<scope>orgs/[^/]+|enterprises/[^/]+)"


@route("rest.runner_groups", "GET", rf"{_API}/{_GROUP_SCOPE}/actions/runner-groups", Surface.REST)
async def list_runner_groups(ctx: Ctx) -> Response:
    tenant = _tenant(ctx)
    _rest_auth(ctx, tenant)
    base = f"{ctx.urls.rest}/{ctx.params['scope']}/actions/runner-groups"
    groups = [
        {
            "id": g.id,
            "name": g.name,
            "visibility": "all",
            "default": g.is_default,
            "runners_url": f"{base}/{g.id}/runners",
            "inherited": False,
            "allows_public_repositories": False,
            "restricted_to_workflows": False,
            "selected_workflows": [],
            "workflow_restrictions_read_only": False,
        }
        for g in tenant.groups.values()
    ]
    return _page(ctx, "runner_groups", groups)


# ---------------------------------------------------------------------- checks


@route("rest.user", "GET", rf"{_API}/user", Surface.REST)
async def get_user(ctx: Ctx) -> Response:
    info = ctx.require(_REST_TOKENS, schemes=("Bearer", "token"))
    if info.kind is TokenKind.INSTALLATION:
        ctx.fail(403, "Resource not accessible by integration")
    # the fake's PAT is a classic token: GitHub lists a classic token's scopes
    scopes = [("X-OAuth-Scopes", PAT_SCOPES)] if info.kind is TokenKind.PAT else []
    return json_response(200, {"login": "fake-admin", "id": 1, "type": "User"}, scopes)


@route("rest.org", "GET", rf"{_API}/orgs/(?P<org>[^/]+)", Surface.REST)
async def get_org(ctx: Ctx) -> Response:
    tenant = _tenant(ctx, f"orgs/{ctx.params['org']}")
    _rest_auth(ctx, tenant)
    number = sorted(ctx.core.state.org_enterprise).index(tenant.name) + 1
    return json_response(200, {"login": tenant.name, "id": 9000 + number, "name": tenant.name})


@route("rest.permissions", "GET", rf"{_API}/{_SCOPE}/actions/permissions", Surface.REST)
async def actions_permissions(ctx: Ctx) -> Response:
    tenant = _tenant(ctx)
    _rest_auth(ctx, tenant)
    if tenant.kind == "repo":
        return json_response(200, {"enabled": True, "allowed_actions": "all"})
    return json_response(200, {"enabled_repositories": "all", "allowed_actions": "all"})


ROUTES: Final[list[Route]] = [
    get_installation,
    create_access_token,
    registration_token,
    remove_token,
    runner_registration,
    generate_jit_config,
    list_runners,
    get_runner,
    delete_runner,
    list_runner_groups,
    get_user,
    get_org,
    actions_permissions,
]
