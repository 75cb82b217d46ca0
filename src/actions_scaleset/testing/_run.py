"""Run service, results service and signed log uploads (docs/protocol.md, "Acquire, renew, complete").

`acquirejob` takes the runner's OAuth token and returns the job message with a
job-scoped token; `renewjob` and `completejob` accept only that job token (the
runner token gets `401 Not authorized for this job`). The results service is a
minimal Twirp: step updates, signed blob URLs and log metadata.
"""

from __future__ import annotations

import secrets
from typing import Any, Final

from ._broker import runner_of
from ._context import Ctx, Route, route
from ._http import Response, Surface, json_response
from ._model import Job
from ._state import StateError
from ._tokens import TokenInfo, TokenKind
from ._wire import dotnet_time

__all__ = ["ROUTES"]

_RUN: Final = r"/_services/run/(?P<n>\d+)"
_TWIRP: Final = r"/_services/results/twirp"
_CONCLUSIONS: Final = frozenset(
    {"succeeded", "succeededWithIssues", "failed", "canceled", "skipped", "abandoned"}
)


def _job_message(ctx: Ctx, job: Job, job_token: str) -> dict[str, Any]:
    """An `AgentJobRequestMessage` as the run service returns it (fixture run_acquirejob_response…)."""
    urls = ctx.urls
    return {
        "messageType": "RunnerJobRequest",
        "plan": {
            "planType": "actions",
            "version": 0,
            "planId": job.plan_id,
            "artifactUri": "",
            "artifactLocation": "",
        },
        "timeline": {"id": job.plan_id, "changeId": 0, "location": None},
        "jobId": job.id,
        "jobDisplayName": job.display_name,
        "jobName": "__default",
        "requestId": 0,
        "lockedUntil": "0001-01-01T00:00:00",
        "resources": {
            "endpoints": [
                {
                    "name": "SystemVssConnection",
                    "url": urls.run_service,
                    "authorization": {"scheme": "OAuth", "parameters": {"AccessToken": job_token}},
                    "data": {
                        "CacheServerUrl": f"{urls.origin}/_services/cache/",
                        "ResultsServiceUrl": urls.results,
                        "PipelinesServiceUrl": f"{urls.origin}/_services/pipelines/",
                    },
                    "isShared": False,
                    "isReady": True,
                }
            ]
        },
        "variables": {
            "system.github.job": {"value": job.display_name},
            "system.from_run_service": {"value": "true"},
            "system.orchestrationId": {"value": f"{job.plan_id}.{job.display_name}.__default"},
            "system.github.results_endpoint": {"value": urls.results},
            "github_token": {"value": "ghs_fakeJobToken", "isSecret": True},
        },
        "mask": [{"type": "value", "value": "ghs_fakeJobToken"}],
        "steps": [
            {
                "id": "9fb90ead-8a9f-41e3-ba77-aa6cd9982aa8",
                "type": "action",
                "reference": {"type": "script"},
                "displayNameToken": {"type": 0, "lit": "Run the job"},
                "contextName": "__run",
                "condition": "success()",
                "inputs": {
                    "type": 2,
                    "map": [{"Key": {"type": 0, "lit": "script"}, "Value": {"type": 0, "lit": "true\n"}}],
                },
            }
        ],
        "contextData": {
            "github": {
                "t": 2,
                "d": [
                    {"k": "ref", "v": job.workflow_ref.rpartition("@")[2]},
                    {"k": "repository", "v": job.repository},
                    {"k": "run_id", "v": str(job.workflow_run_id)},
                    {"k": "server_url", "v": urls.origin},
                ],
            },
            "runner": None,
        },
        "environmentVariables": [],
        "defaults": [],
        "jobOutputs": None,
        "jobContainer": None,
        "jobServiceContainers": None,
        "fileTable": [job.workflow_ref.partition("@")[0].removeprefix(f"{job.repository}/")],
        "billingOwnerId": job.billing_owner_id,
    }


@route("run.acquire", "POST", rf"{_RUN}/acquirejob", Surface.RUN)
async def acquire_job(ctx: Ctx) -> Response:
    runner = runner_of(ctx)
    body = ctx.json_object()
    job_id = ctx.field(body, "jobMessageId", str)
    ctx.field(body, "runnerOS", str, required=False)
    ctx.field(body, "billingOwnerId", str, required=False)
    try:
        job = ctx.core.state.job_for_runner(runner, job_id)
    except StateError as exc:
        ctx.refuse(exc)
    token, _ = ctx.core.tokens.mint_jwt(
        TokenKind.JOB,
        origin=ctx.request.origin,
        claims={"job_id": job.id, "plan_id": job.plan_id, "runner_id": runner.id, "orch_id": job.plan_id},
    )
    return json_response(200, _job_message(ctx, job, token))


def _job_token(ctx: Ctx) -> TokenInfo:
    creds = ctx.credentials()
    if creds is not None and ctx.core.tokens.classify(creds[1]) is TokenKind.RUNNER:
        ctx.fail(401, "Not authorized for this job")
    return ctx.require((TokenKind.JOB,))


def _running(ctx: Ctx, plan_key: str, job_key: str) -> Job:
    """The running job named by the body, which must be the job token's."""
    info = _job_token(ctx)
    body = ctx.json_object()
    plan_id, job_id = ctx.field(body, plan_key, str), ctx.field(body, job_key, str)
    if job_id != info.claims.get("job_id") or plan_id != info.claims.get("plan_id"):
        ctx.fail(401 if ctx.surface is Surface.RUN else 403, "Not authorized for this job")
    try:
        return ctx.core.state.running_job(job_id)
    except StateError as exc:
        ctx.refuse(exc)


@route("run.renew", "POST", rf"{_RUN}/renewjob", Surface.RUN)
async def renew_job(ctx: Ctx) -> Response:
    job = _running(ctx, "planId", "jobId")
    return json_response(200, {"lockedUntil": dotnet_time(ctx.core.state.renew(job))})


@route("run.complete", "POST", rf"{_RUN}/completejob", Surface.RUN)
async def complete_job(ctx: Ctx) -> Response:
    job = _running(ctx, "planId", "jobId")
    body = ctx.json_object()
    conclusion = ctx.field(body, "conclusion", str)
    if conclusion not in _CONCLUSIONS:
        ctx.fail(400, f"conclusion {conclusion!r} is not a task result")
    ctx.field(body, "outputs", dict, required=False)
    for name in ("stepResults", "annotations", "telemetry"):
        ctx.field(body, name, list, required=False)
    ctx.core.state.complete(job, conclusion)
    return Response(204)


# ---------------------------------------------------------------------- results


def _results_job(ctx: Ctx) -> tuple[Job, dict[str, Any]]:
    job = _running(ctx, "workflow_run_backend_id", "workflow_job_run_backend_id")
    return job, ctx.json_object()


@route(
    "results.steps_update",
    "POST",
    rf"{_TWIRP}/github.actions.results.api.v1.WorkflowStepUpdateService/WorkflowStepsUpdate",
    Surface.RESULTS,
)
async def steps_update(ctx: Ctx) -> Response:
    job, body = _results_job(ctx)
    ctx.field(body, "change_order", int)
    for step in ctx.field(body, "steps", list):
        if not isinstance(step, dict) or not isinstance(step.get("external_id"), str):
            ctx.fail(400, "each step needs an external_id")
        job.steps[step["external_id"]] = step
    return json_response(200, {"ok": True})


def _signed_url(ctx: Ctx, path: str) -> str:
    signature = secrets.token_urlsafe(16)
    ctx.core.signatures[path] = signature
    return ctx.urls.blob(path, signature)


@route(
    "results.step_log_url",
    "POST",
    rf"{_TWIRP}/results.services.receiver.Receiver/GetStepLogsSignedBlobURL",
    Surface.RESULTS,
)
async def step_log_url(ctx: Ctx) -> Response:
    job, body = _results_job(ctx)
    step = ctx.field(body, "step_backend_id", str)
    url = _signed_url(ctx, f"{job.plan_id}/workflow-job-run-{job.id}/logs/steps/step-logs-{step}.txt")
    return json_response(
        200, {"blob_storage_type": "BLOB_STORAGE_TYPE_AZURE", "logs_url": url, "soft_size_limit": "1048576"}
    )


@route(
    "results.job_log_url",
    "POST",
    rf"{_TWIRP}/results.services.receiver.Receiver/GetJobLogsSignedBlobURL",
    Surface.RESULTS,
)
async def job_log_url(ctx: Ctx) -> Response:
    job, _ = _results_job(ctx)
    url = _signed_url(ctx, f"{job.plan_id}/workflow-job-run-{job.id}/logs/job/job-logs.txt")
    return json_response(
        200, {"blob_storage_type": "BLOB_STORAGE_TYPE_AZURE", "logs_url": url, "soft_size_limit": "1048576"}
    )


@route(
    "results.step_log_metadata",
    "POST",
    rf"{_TWIRP}/results.services.receiver.Receiver/CreateStepLogsMetadata",
    Surface.RESULTS,
)
async def step_log_metadata(ctx: Ctx) -> Response:
    _, body = _results_job(ctx)
    ctx.field(body, "step_backend_id", str)
    ctx.field(body, "uploaded_at", str)
    ctx.field(body, "line_count", int)
    return json_response(200, {"ok": True})


@route(
    "results.job_log_metadata",
    "POST",
    rf"{_TWIRP}/results.services.receiver.Receiver/CreateJobLogsMetadata",
    Surface.RESULTS,
)
async def job_log_metadata(ctx: Ctx) -> Response:
    _, body = _results_job(ctx)
    ctx.field(body, "uploaded_at", str)
    ctx.field(body, "line_count", int)
    return json_response(200, {"ok": True})


@route("blob.upload", "PUT", r"/_services/blob/(?P<path>.+)", Surface.BLOB)
async def upload_blob(ctx: Ctx) -> Response:
    """A signed-URL `PUT`: `BlockBlob` replaces, `AppendBlob` creates, `comp=appendblock` appends."""
    path = ctx.params["path"]
    if ctx.request.header("authorization"):
        ctx.fail(400, "signed URLs take no Authorization header")
    if ctx.core.signatures.get(path) != ctx.request.query.get("sig"):
        ctx.fail(403, "AuthenticationFailed: the signature does not match")
    blobs = ctx.core.blobs
    if ctx.request.query.get("comp") == "appendblock":
        if path not in blobs:
            ctx.fail(404, "BlobNotFound")
        blobs[path] += ctx.request.body
    elif ctx.request.header("x-ms-blob-type") in ("BlockBlob", "AppendBlob"):
        blobs[path] = ctx.request.body
    else:
        ctx.fail(400, "MissingRequiredHeader: x-ms-blob-type")
    return Response(201)


ROUTES: Final[list[Route]] = [
    acquire_job,
    renew_job,
    complete_job,
    steps_update,
    step_log_url,
    job_log_url,
    step_log_metadata,
    job_log_metadata,
    upload_blob,
]
