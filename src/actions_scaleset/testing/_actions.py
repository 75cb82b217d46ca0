"""The Actions service and the scale-set message queue (docs/protocol.md, "Scale-set endpoints",
"The long poll").

Admin routes live under the tenant's admin URL and need the admin JWT and an
`api-version` query parameter; `acquirejobs` takes the message-queue token on the
admin URL; the queue itself (`GET`/`DELETE {messageQueueUrl}[/{id}]`) long-polls,
answers 202 when empty, and redelivers what was not acknowledged.
"""

from __future__ import annotations

import functools
import json
import uuid
from typing import Any, Final
from urllib.parse import urlencode

from ._context import Ctx, Handler, Route, long_poll, route
from ._http import HTTPFailure, Response, Surface, broker_error, json_response, oauth_error
from ._model import ScaleSet, Tenant
from ._state import StateError
from ._tokens import TokenInfo, TokenKind
from ._wire import acquirable_job, runner_group_json, runner_reference, scale_set_json

__all__ = ["ROUTES"]

_BASE: Final = r"/_services/pipelines/(?P<tenant>[^/]+)/_apis"
_SETS: Final = rf"{_BASE}/runtime/runnerscalesets"
_ONE: Final = rf"{_SETS}/(?P<id>\d+)"
_AGENTS: Final = rf"{_BASE}/distributedtask/pools/(?P<pool>\d+)/agents"
_QUEUE: Final = r"/_services/broker/scalesets/message"
_SETTING_KEYS: Final = ("ephemeral", "isElastic", "disableUpdate")
_NIL_UUID: Final = "00000000-0000-0000-0000-000000000000"


def _tenant_of(ctx: Ctx, info: TokenInfo) -> Tenant:
    scope = info.claims.get("scope") or ["", ""]
    tenant = ctx.core.state.tenant((scope[0], scope[1]))
    if tenant is None or tenant.id != ctx.params["tenant"] or info.claims.get("tenant") != tenant.id:
        ctx.fail(401, "TF400813: the token is not valid for this tenant", "VssUnauthorizedException")
    return tenant


def _admin(ctx: Ctx) -> Tenant:
    return _tenant_of(ctx, ctx.require((TokenKind.ADMIN,)))


def _scale_set(ctx: Ctx, tenant: Tenant) -> ScaleSet:
    try:
        return ctx.core.state.scale_set(tenant, int(ctx.params["id"]))
    except StateError as exc:
        ctx.refuse(exc)


def _set_json(ctx: Ctx, scale_set: ScaleSet, *, embedded: bool = False) -> dict[str, Any]:
    state = ctx.core.state
    group = scale_set.tenant.groups.get(scale_set.group_id)
    if embedded:
        return scale_set_json(scale_set, group, None, None)
    return scale_set_json(scale_set, group, ctx.urls.admin(scale_set.tenant.id), state.statistics(scale_set))


def _labels(ctx: Ctx, body: dict[str, Any], default: str | None) -> list[dict[str, str]] | None:
    raw = ctx.field(body, "labels", list, required=False)
    if not raw:
        return [{"type": "System", "name": default}] if default else None
    labels = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            ctx.fail(400, "each label must be an object with a non-empty 'name'", "ArgumentException")
        kind = item.get("type") or "System"
        if not isinstance(kind, str):
            ctx.fail(400, "a label 'type' must be a string", "ArgumentException")
        labels.append({"type": kind, "name": item["name"]})
    return labels


def _setting(ctx: Ctx, body: dict[str, Any]) -> dict[str, Any]:
    raw = ctx.field(body, "RunnerSetting", dict, required=False) or {}
    for key, value in raw.items():
        if key not in _SETTING_KEYS or not isinstance(value, bool):
            ctx.fail(400, f"RunnerSetting.{key} is not a known boolean setting", "ArgumentException")
    created = ctx.field(body, "createdOn", str, required=False)
    if created is not None and "T" not in created:
        ctx.fail(400, "createdOn must be a timestamp", "ArgumentException")
    return dict(raw)


# ---------------------------------------------------------------------- scale sets


@route("scale_sets.list", "GET", _SETS, Surface.ACTIONS, api_version=True)
async def list_scale_sets(ctx: Ctx) -> Response:
    tenant = _admin(ctx)
    group_id = ctx.int_param("runnerGroupId", ctx.request.query)
    found = ctx.core.state.list_scale_sets(tenant, group_id, ctx.request.query.get("name"))
    return json_response(200, {"count": len(found), "value": [_set_json(ctx, s) for s in found]})


@route("scale_sets.create", "POST", _SETS, Surface.ACTIONS, api_version=True)
async def create_scale_set(ctx: Ctx) -> Response:
    tenant = _admin(ctx)
    body = ctx.json_object()
    name = ctx.field(body, "name", str)
    if not name.strip():
        ctx.fail(400, "the scale set name must not be empty", "ArgumentException")
    group_id = ctx.field(body, "runnerGroupId", int, required=False) or 1
    labels = _labels(ctx, body, name) or []
    try:
        scale_set = ctx.core.state.create_scale_set(
            tenant, name=name, group_id=group_id, labels=labels, setting=_setting(ctx, body)
        )
    except StateError as exc:
        ctx.refuse(exc)
    return json_response(200, _set_json(ctx, scale_set))


@route("scale_sets.get", "GET", _ONE, Surface.ACTIONS, api_version=True)
async def get_scale_set(ctx: Ctx) -> Response:
    return json_response(200, _set_json(ctx, _scale_set(ctx, _admin(ctx))))


@route("scale_sets.update", "PATCH", _ONE, Surface.ACTIONS, api_version=True)
async def update_scale_set(ctx: Ctx) -> Response:
    scale_set = _scale_set(ctx, _admin(ctx))
    body = ctx.json_object()
    name = ctx.field(body, "name", str, required=False)
    group_id = ctx.field(body, "runnerGroupId", int, required=False)
    labels, setting = _labels(ctx, body, None), _setting(ctx, body)
    try:
        ctx.core.state.update_scale_set(
            scale_set, name=name, group_id=group_id, labels=labels, setting=setting
        )
    except StateError as exc:
        ctx.refuse(exc)
    return json_response(200, _set_json(ctx, scale_set))


@route("scale_sets.delete", "DELETE", _ONE, Surface.ACTIONS, api_version=True)
async def delete_scale_set(ctx: Ctx) -> Response:
    scale_set = _scale_set(ctx, _admin(ctx))
    try:
        ctx.core.state.delete_scale_set(scale_set)
    except StateError as exc:
        ctx.refuse(exc)
    return Response(204)


@route("runner_groups", "GET", rf"{_BASE}/runtime/runnergroups", Surface.ACTIONS, api_version=True)
async def runner_groups(ctx: Ctx) -> Response:
    tenant = _admin(ctx)
    wanted = ctx.request.query.get("groupName")
    groups = [g for g in tenant.groups.values() if wanted is None or g.name.casefold() == wanted.casefold()]
    runners = ctx.core.state.live_runners(tenant)
    value = [runner_group_json(g, sum(1 for r in runners if r.group_id == g.id)) for g in groups]
    return json_response(200, {"count": len(value), "value": value})


# ---------------------------------------------------------------------- sessions


def _session_json(
    ctx: Ctx, scale_set: ScaleSet, session_id: str, owner: str, *, statistics: bool = True
) -> dict[str, Any]:
    token, _ = ctx.core.tokens.mint_jwt(
        TokenKind.MESSAGE_QUEUE,
        origin=ctx.request.origin,
        claims={"tenant": scale_set.tenant.id, "scale_set_id": scale_set.id, "session_id": session_id},
    )
    queue_url = ctx.urls.message_queue
    if ctx.core.settings.queue_url_query:
        queue_url += "?" + urlencode({"sessionId": session_id, "api-version": "6.0-preview"})
    session = {
        "sessionId": session_id,
        "ownerName": owner,
        "runnerScaleSet": _set_json(ctx, scale_set, embedded=True),
        "messageQueueUrl": queue_url,
        "messageQueueAccessToken": token,
    }
    if statistics:
        session["statistics"] = ctx.core.state.statistics(scale_set).to_wire()
    return session


@route("session.create", "POST", rf"{_ONE}/sessions", Surface.ACTIONS, api_version=True)
async def create_session(ctx: Ctx) -> Response:
    scale_set = _scale_set(ctx, _admin(ctx))
    body = ctx.json_object()
    owner = ctx.field(body, "ownerName", str)
    session_id = ctx.field(body, "sessionId", str, required=False)
    if not owner.strip():
        ctx.fail(400, "ownerName must not be empty", "ArgumentException")
    if session_id is not None and session_id != _NIL_UUID:
        ctx.fail(400, "sessionId must be the nil UUID on create", "ArgumentException")
    try:
        session = ctx.core.state.create_session(scale_set, owner)
    except StateError as exc:
        ctx.refuse(exc)
    return json_response(200, _session_json(ctx, scale_set, session.id, session.owner))


def _session_id(ctx: Ctx) -> str:
    try:
        return str(uuid.UUID(ctx.params["session"]))
    except ValueError:
        ctx.fail(400, "the session id is not a GUID", "ArgumentException")


@route("session.refresh", "PATCH", rf"{_ONE}/sessions/(?P<session>[^/]+)", Surface.ACTIONS, api_version=True)
async def refresh_session(ctx: Ctx) -> Response:
    scale_set = _scale_set(ctx, _admin(ctx))
    try:
        session = ctx.core.state.session(scale_set, _session_id(ctx))
    except StateError as exc:
        ctx.refuse(exc)
    statistics = ctx.core.settings.refresh_statistics
    return json_response(200, _session_json(ctx, scale_set, session.id, session.owner, statistics=statistics))


@route("session.delete", "DELETE", rf"{_ONE}/sessions/(?P<session>[^/]+)", Surface.ACTIONS, api_version=True)
async def delete_session(ctx: Ctx) -> Response:
    scale_set = _scale_set(ctx, _admin(ctx))
    try:
        ctx.core.state.delete_session(scale_set, _session_id(ctx))
    except StateError as exc:
        ctx.refuse(exc)
    return Response(204)


# ---------------------------------------------------------------------- jobs and runners


@route("acquirable_jobs", "GET", rf"{_ONE}/acquirablejobs", Surface.ACTIONS, api_version=True)
async def acquirable_jobs(ctx: Ctx) -> Response:
    scale_set = _scale_set(ctx, _admin(ctx))
    if not ctx.core.settings.acquirable_jobs:
        ctx.fail(404, "The resource cannot be found.", "VssResourceNotFoundException")
    jobs = ctx.core.state.acquirable(scale_set)
    if not jobs:
        return Response(204)
    url = ctx.urls.acquire_jobs(scale_set.tenant.id, scale_set.id)
    return json_response(200, {"count": len(jobs), "value": [acquirable_job(j, url) for j in jobs]})


def _queue_unauthorized(handler: Handler) -> Handler:
    """Answer the queue's 401s in the shape `queue_unauthorized_style` names."""

    @functools.wraps(handler)
    async def wrapped(ctx: Ctx) -> Response:
        try:
            return await handler(ctx)
        except HTTPFailure as failure:
            style = ctx.core.settings.queue_unauthorized_style
            if failure.response.status != 401 or style == "actions":
                raise
            if style == "broker":
                raise HTTPFailure(broker_error(401, "Unauthorized", "the token is not valid")) from None
            raise HTTPFailure(oauth_error("invalid_token", "the token has expired", 401)) from None

    return wrapped


def _queue_scale_set(ctx: Ctx, info: TokenInfo, *, on_queue_url: bool = True) -> ScaleSet:
    """The scale set of a message-queue token: 404 if deleted, 401 if its session is gone.

    With `queue_url_query`, a call on the queue URL must keep that URL's `sessionId`.
    """
    kept_query = ctx.request.query.get("sessionId") == info.claims.get("session_id")
    if on_queue_url and ctx.core.settings.queue_url_query and not kept_query:
        reason = "TF400813: the sessionId query parameter is missing or wrong"
        ctx.fail(401, reason, "VssUnauthorizedException")
    state = ctx.core.state
    found = state.scale_sets.get(int(info.claims.get("scale_set_id", 0)))
    if found is None or found.deleted:
        ctx.fail(
            404,
            f"No runner scale set found with identifier {info.claims.get('scale_set_id')}.",
            "RunnerScaleSetNotFoundException",
        )
    try:
        state.session(found, str(info.claims.get("session_id")))
    except StateError:
        ctx.fail(401, "TF400813: the message queue token is no longer valid", "VssUnauthorizedException")
    return found


@route("acquire_jobs", "POST", rf"{_ONE}/acquirejobs", Surface.ACTIONS, api_version=True)
@_queue_unauthorized
async def acquire_jobs(ctx: Ctx) -> Response:
    info = ctx.require((TokenKind.MESSAGE_QUEUE,))
    scale_set = _queue_scale_set(ctx, info, on_queue_url=False)
    if scale_set.id != int(ctx.params["id"]) or scale_set.tenant.id != ctx.params["tenant"]:
        ctx.fail(401, "TF400813: the token is not valid for this scale set", "VssUnauthorizedException")
    body = ctx.json()
    if not isinstance(body, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in body):
        ctx.fail(400, "the body must be a JSON array of runner request ids", "ArgumentException")
    acquired = ctx.core.state.acquire(scale_set, body)
    return json_response(200, {"count": len(acquired), "value": acquired})


@route("jit_config", "POST", rf"{_ONE}/generatejitconfig", Surface.ACTIONS, api_version=True)
async def generate_jit_config(ctx: Ctx) -> Response:
    scale_set = _scale_set(ctx, _admin(ctx))
    body = ctx.json_object()
    name = ctx.field(body, "name", str)
    work_folder = ctx.field(body, "workFolder", str, required=False) or "_work"
    if not name.strip():
        ctx.fail(400, "the runner name must not be empty", "ArgumentException")
    runner, encoded = ctx.create_jit_runner(
        scale_set.tenant,
        name=name,
        group_id=scale_set.group_id,
        scale_set_id=scale_set.id,
        labels=[label["name"] for label in scale_set.labels],
        work_folder=work_folder,
    )
    return json_response(200, {"runner": runner_reference(runner), "encodedJITConfig": encoded})


@route("agents.list", "GET", _AGENTS, Surface.ACTIONS, api_version=True)
async def list_agents(ctx: Ctx) -> Response:
    tenant = _admin(ctx)
    name = ctx.request.query.get("agentName")
    runners = [
        r for r in ctx.core.state.live_runners(tenant) if name is None or r.name.casefold() == name.casefold()
    ]
    return json_response(200, {"count": len(runners), "value": [runner_reference(r) for r in runners]})


@route("agents.get", "GET", rf"{_AGENTS}/(?P<runner>\d+)", Surface.ACTIONS, api_version=True)
async def get_agent(ctx: Ctx) -> Response:
    tenant = _admin(ctx)
    try:
        return json_response(200, runner_reference(ctx.core.state.runner(tenant, int(ctx.params["runner"]))))
    except StateError as exc:
        ctx.refuse(exc)


@route("agents.delete", "DELETE", rf"{_AGENTS}/(?P<runner>\d+)", Surface.ACTIONS, api_version=True)
async def delete_agent(ctx: Ctx) -> Response:
    tenant = _admin(ctx)
    try:
        ctx.core.state.delete_runner(ctx.core.state.runner(tenant, int(ctx.params["runner"])))
    except StateError as exc:
        ctx.refuse(exc)
    return Response(204)


# ---------------------------------------------------------------------- the message queue


def _capacity(ctx: Ctx) -> int | None:
    raw = ctx.request.header("x-scalesetmaxcapacity")
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if value < 0:
        ctx.fail(400, "X-ScaleSetMaxCapacity must be a non-negative integer", "ArgumentException")
    return value


@route("message", "GET", _QUEUE, Surface.ACTIONS)
@_queue_unauthorized
async def get_message(ctx: Ctx) -> Response:
    info = ctx.require((TokenKind.MESSAGE_QUEUE,))
    scale_set = _queue_scale_set(ctx, info)
    last = ctx.int_param("lastMessageId", ctx.request.query) or 0
    if last < 0:
        ctx.fail(400, "lastMessageId must not be negative", "ArgumentException")
    state = ctx.core.state
    state.set_capacity(scale_set, _capacity(ctx))
    message = await long_poll(
        ctx.core, ctx.core.settings.poll_hold, lambda: state.next_message(scale_set, last)
    )
    if scale_set.session is not None:
        scale_set.session.last_seen = state.now()
    if message is None:
        return Response(202)
    acquire_url = ctx.urls.acquire_jobs(scale_set.tenant.id, scale_set.id)
    events = [{**e, "acquireJobUrl": acquire_url} if "acquireJobUrl" in e else e for e in message.events]
    return json_response(
        200,
        {
            "messageId": message.id,
            "messageType": "RunnerScaleSetJobMessages",
            "body": json.dumps(events, separators=(",", ":")),
            "statistics": state.statistics(scale_set).to_wire(),
        },
    )


@route("message.delete", "DELETE", rf"{_QUEUE}/(?P<message>\d+)", Surface.ACTIONS)
@_queue_unauthorized
async def delete_message(ctx: Ctx) -> Response:
    info = ctx.require((TokenKind.MESSAGE_QUEUE,))
    scale_set = _queue_scale_set(ctx, info)
    if not ctx.core.state.ack_message(scale_set, int(ctx.params["message"])):
        ctx.fail(404, f"Message {ctx.params['message']} was not found.", "MessageNotFoundException")
    return Response(204)


ROUTES: Final[list[Route]] = [
    list_scale_sets,
    create_scale_set,
    get_scale_set,
    update_scale_set,
    delete_scale_set,
    runner_groups,
    create_session,
    refresh_session,
    delete_session,
    acquirable_jobs,
    acquire_jobs,
    generate_jit_config,
    list_agents,
    get_agent,
    delete_agent,
    get_message,
    delete_message,
]
