"""The runner's front door: OAuth token endpoint and broker (docs/protocol.md,
"The OAuth client assertion", "Polling and runner messages").

The token endpoint verifies the client assertion against the runner's registered
public key, audience and five-minute lifetime cap; `{authorizationUrl}/v2` is the
runner's second issuer (`authorizationUrlV2`, auth migration), whose tokens name
it in an `authorization_url` claim. The broker keeps one session
per runner, long-polls `RunnerJobRequest` / `JobCancellation` messages and takes
acknowledgements.
"""

from __future__ import annotations

import json
from typing import Any, Final

from ._context import Ctx, Route, long_poll, route
from ._http import Response, Surface, json_response, oauth_error
from ._jit import JwtRejected, authorization_url_v2, verify_client_assertion
from ._model import Job, Runner
from ._state import StateError
from ._tokens import TokenKind

__all__ = ["ROUTES"]

_JWT_BEARER: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_STATUSES: Final = frozenset({"online", "busy", "offline"})
_NIL_UUID: Final = "00000000-0000-0000-0000-000000000000"


def _assertion_issuer(assertion: str) -> str | None:
    import jwt

    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer if isinstance(issuer, str) else None


@route(
    "oauth.token",
    "POST",
    r"/_services/token/_apis/oauth2/token/(?P<tenant>[^/]+)(?P<v2>/v2)?",
    Surface.OAUTH,
)
async def oauth_token(ctx: Ctx) -> Response:
    """Client credentials with a JWT-bearer client assertion → a runner access token.

    The assertion's audience must be the issuer asked: `authorizationUrl`, or
    `authorizationUrlV2` on the `/v2` path.
    """
    if "application/x-www-form-urlencoded" not in (ctx.request.header("content-type") or ""):
        return oauth_error("invalid_request", "the token request must be application/x-www-form-urlencoded")
    form = ctx.request.form()
    if form.get("grant_type") != "client_credentials":
        return oauth_error("unsupported_grant_type", "grant_type must be client_credentials")
    if form.get("client_assertion_type") != _JWT_BEARER or not form.get("client_assertion"):
        return oauth_error(
            "invalid_request", f"client_assertion_type must be {_JWT_BEARER} with a client_assertion"
        )
    assertion = form["client_assertion"]
    issuer = _assertion_issuer(assertion)
    runner = next(
        (
            r
            for r in ctx.core.state.live_runners()
            if r.client_id == issuer and r.tenant.id == ctx.params["tenant"]
        ),
        None,
    )
    if runner is None:
        return oauth_error(
            "invalid_client", "The runner registration was not found (it may have been deleted)."
        )
    audience = runner.authorization_url
    if ctx.params.get("v2"):
        audience = authorization_url_v2(audience)
    try:
        verify_client_assertion(
            assertion,
            runner.public_key,
            client_id=runner.client_id,
            audience=audience,
            now=ctx.core.clock(),
        )
    except JwtRejected as exc:
        return oauth_error("invalid_client", str(exc))
    token, expires = ctx.core.tokens.mint_jwt(
        TokenKind.RUNNER,
        origin=ctx.request.origin,
        claims={
            "owner_id": runner.tenant.id,
            "runner_id": runner.id,
            "runner_name": runner.name,
            "runner_group_id": runner.group_id,
            "scale_set_id": runner.scale_set_id or 0,
            "is_ephemeral": True,
            "labels": list(runner.labels),
            "authorization_url": audience,
        },
    )
    return json_response(
        200, {"access_token": token, "token_type": "bearer", "expires_in": int(expires - ctx.core.clock())}
    )


def runner_of(ctx: Ctx, *, allow_deleted: bool = False) -> Runner:
    """The runner whose OAuth token came with the request; `RunnerNotFound` once it is gone."""
    info = ctx.require((TokenKind.RUNNER,))
    runner = ctx.core.state.runners.get(int(info.claims.get("runner_id", 0)))
    if runner is None or (runner.deleted and not allow_deleted):
        ctx.fail(404, "The runner registration was not found.", "RunnerNotFound")
    return runner


@route("broker.session.create", "POST", r"/_services/broker/session", Surface.BROKER)
async def create_session(ctx: Ctx) -> Response:
    runner = runner_of(ctx)
    body = ctx.json_object()
    owner = ctx.field(body, "ownerName", str)
    agent = ctx.field(body, "agent", dict)
    session_id = ctx.field(body, "sessionId", str, required=False)
    if agent.get("id") != runner.id or not isinstance(agent.get("name"), str):
        ctx.fail(400, "agent.id and agent.name must be the runner's", "InvalidRequest")
    if session_id not in (None, _NIL_UUID):
        ctx.fail(400, "sessionId must be the nil UUID on create", "InvalidRequest")
    try:
        session = ctx.core.state.create_broker_session(runner, owner)
    except StateError as exc:
        ctx.refuse(exc)
    body = {
        "assignmentQueued": False,
        "orchestrationId": "",
        "ownerName": session.owner,
        "sessionId": session.id,
    }
    return json_response(201, body)


@route("broker.session.delete", "DELETE", r"/_services/broker/session", Surface.BROKER)
async def delete_session(ctx: Ctx) -> Response:
    runner = runner_of(ctx, allow_deleted=True)
    if runner.session is None:
        ctx.fail(404, "The runner has no session.", "RunnerSessionInvalid")
    ctx.core.state.end_runner_session(runner)
    return Response(204)


def _check_session(ctx: Ctx, runner: Runner) -> None:
    wanted = ctx.request.query.get("sessionId")
    if runner.session is None or not wanted or wanted.lower() != runner.session.id.lower():
        ctx.fail(400, "The runner session is not valid; create a new one.", "RunnerSessionInvalid")
    status = ctx.request.query.get("status")
    if status is not None and status.lower() not in _STATUSES:
        ctx.fail(400, f"status {status!r} is not a runner status", "InvalidRequest")


def _broker_message(ctx: Ctx, kind: str, job: Job) -> dict[str, Any]:
    message_id = ctx.core.state.rng.randint(-(2**31), 2**31 - 1)
    if kind == "JobCancellation":
        body = json.dumps({"jobId": job.id, "timeout": "00:05:00"}, separators=(",", ":"))
        return {"messageId": message_id, "messageType": kind, "body": body}
    body = json.dumps(
        {
            "runner_request_id": job.id,
            "run_service_url": ctx.urls.run_service,
            "billing_owner_id": job.billing_owner_id,
            "should_acknowledge": True,
        },
        separators=(",", ":"),
    )
    return {"messageId": message_id, "messageType": kind, "iv": None, "body": body}


@route("broker.message", "GET", r"/_services/broker/message", Surface.BROKER)
async def get_message(ctx: Ctx) -> Response:
    runner = runner_of(ctx)
    _check_session(ctx, runner)
    state = ctx.core.state
    found = await long_poll(ctx.core, ctx.core.settings.poll_hold, lambda: state.runner_poll(runner))
    if found is None:
        return Response(202)
    kind, job = found
    return json_response(200, _broker_message(ctx, kind, job))


@route("broker.acknowledge", "POST", r"/_services/broker/acknowledge", Surface.BROKER)
async def acknowledge(ctx: Ctx) -> Response:
    runner = runner_of(ctx)
    _check_session(ctx, runner)
    request_id = ctx.field(ctx.json_object(), "runnerRequestId", str)
    if not ctx.core.state.acknowledge(runner, request_id):
        ctx.fail(404, "Assigned job no longer exists", "AcknowledgeJobNotFound")
    return json_response(200, {})


@route("broker.health", "GET", r"/_services/broker/health", Surface.BROKER)
async def health(ctx: Ctx) -> Response:
    return Response(200, b"OK", [("content-type", "text/plain")])


ROUTES: Final[list[Route]] = [oauth_token, create_session, delete_session, get_message, acknowledge, health]
