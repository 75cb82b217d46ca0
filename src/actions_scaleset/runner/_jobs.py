"""An acquired job: lock renewal, step reporting, logs, completion (docs/protocol.md,
"Acquire, renew, complete").

Request bodies, enum mappings and renewal delays are pure functions; `Job`
and its two backends (run service for v2, pipelines job requests for v1) are
the I/O. The job token is sent only to the run service and the results
service, and the signed log URL gets no token at all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, Protocol, TypeAlias

import anyio
import attrs
import httpx

from .._http import HTTPCore, RetryPolicy, decode_json, invalid_response, resolve_url
from .._secret import Secret
from ..auth import BearerAuth
from ..errors import (
    HTTPStatusError,
    InvalidResponseError,
    NotFoundError,
    RequestError,
    RunServiceError,
    error_from_response,
)
from ..models import format_timestamp, parse_timestamp
from ._jobmessage import JobMessage, JobStepInfo, JobVariable, MaskHint
from ._messages import JobCancellation, PipelineJobRequest, RunnerJobRequest
from ._pipelines import PipelinesConnection, orchestration_id

__all__ = [
    "Annotation",
    "Conclusion",
    "Job",
    "JobRequest",
    "Step",
    "StepStatus",
    "complete_job_body",
    "keep_lock",
    "renewal_delay",
    "step_result_payload",
    "step_update_payload",
]

logger = logging.getLogger("actions_scaleset.runner")

JobRequest: TypeAlias = RunnerJobRequest | PipelineJobRequest
StepStatus: TypeAlias = Literal["pending", "inProgress", "completed"]
Conclusion: TypeAlias = Literal[
    "succeeded", "succeededWithIssues", "failed", "canceled", "skipped", "abandoned"
]
AnnotationLevel: TypeAlias = Literal["notice", "warning", "failure"]

CONCLUSIONS: Final = frozenset(
    {"succeeded", "succeededWithIssues", "failed", "canceled", "skipped", "abandoned"}
)
# Results-service enums (docs/protocol.md, "Results service and logs"): status 0 unknown / 3 in progress /
# 5 pending / 6 completed;
# conclusion 0 unknown / 2 success / 3 failure / 4 cancelled / 7 skipped. As actions/runner
# `ResultsHttpClient.ConvertStateToStatus` / `ConvertResultToConclusion` map them: anything else,
# `abandoned` included, is 0.
RESULTS_STATUS: Final[Mapping[str, int]] = {"pending": 5, "inProgress": 3, "completed": 6}
RESULTS_CONCLUSION: Final[Mapping[str, int]] = {
    "succeeded": 2,
    "succeededWithIssues": 2,
    "failed": 3,
    "canceled": 4,
    "skipped": 7,
}
AZURE_BLOB_STORAGE: Final = "BLOB_STORAGE_TYPE_AZURE"
"""The one `blob_storage_type` whose uploads carry `x-ms-blob-type` (`ResultsHttpClient`)."""
RENEW_INTERVAL: Final = 60.0
FIRST_RENEWAL_ATTEMPTS: Final = 5
LOCK_GRACE: Final = timedelta(minutes=5)
"""Renewal keeps trying until `lockedUntil + 5 min` (docs/protocol.md, "Acquire, renew, complete")."""
ASSUMED_LOCK: Final = timedelta(minutes=10)
RUN_SERVICE_RETRY: Final = RetryPolicy(
    max_attempts=5,
    initial_delay=5.0,
    max_delay=15.0,
    multiplier=1.75,
    retry_statuses=frozenset({403, 429, 500, 502, 503, 504}),
)
"""acquire/complete: up to 5 tries 5-15 s apart; 401, 404, 409, 422 are not retried (docs/protocol.md,
"Acquire, renew, complete")."""
RESULTS_RETRY: Final = RetryPolicy(max_attempts=4, initial_delay=1.0, max_delay=10.0)
STEP_UPDATE_PATH: Final = "twirp/github.actions.results.api.v1.WorkflowStepUpdateService/WorkflowStepsUpdate"
STEP_LOG_URL_PATH: Final = "twirp/results.services.receiver.Receiver/GetStepLogsSignedBlobURL"
STEP_LOG_METADATA_PATH: Final = "twirp/results.services.receiver.Receiver/CreateStepLogsMetadata"
_MASK: Final = "***"


# --------------------------------------------------------------------------- steps and annotations


@attrs.frozen
class Annotation:
    """A check annotation, on the job or on a step (camelCase on the wire, docs/protocol.md,
    "Acquire, renew, complete")."""

    message: str
    level: AnnotationLevel = "failure"
    title: str | None = None
    raw_details: str | None = None
    path: str | None = None
    is_infrastructure_issue: bool = False
    start_line: int | None = None
    end_line: int | None = None
    start_column: int | None = None
    end_column: int | None = None
    step_number: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"level": self.level, "message": self.message}
        optional = {
            "title": self.title,
            "rawDetails": self.raw_details,
            "path": self.path,
            "isInfrastructureIssue": self.is_infrastructure_issue or None,
            "startLine": self.start_line,
            "endLine": self.end_line,
            "startColumn": self.start_column,
            "endColumn": self.end_column,
            "stepNumber": self.step_number,
        }
        out.update({key: value for key, value in optional.items() if value is not None})
        return out


@attrs.frozen
class Step:
    """One step as the results service and `completejob` see it.

    `external_id` is the step's GUID (`JobStepInfo.id` for a step of the job).
    """

    external_id: str
    number: int
    name: str
    status: StepStatus = "pending"
    conclusion: Conclusion | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    action_name: str | None = None
    type: str | None = None
    ref: str | None = None
    annotations: tuple[Annotation, ...] = ()
    completed_log_url: str | None = None
    completed_log_lines: int | None = None

    @classmethod
    def of(cls, info: JobStepInfo, number: int, **changes: Any) -> Step:
        return cls(external_id=info.id, number=number, name=info.name, **changes)

    def start(self, now: datetime) -> Step:
        return attrs.evolve(self, status="inProgress", started_at=now)

    def finish(self, conclusion: Conclusion, now: datetime, **changes: Any) -> Step:
        return attrs.evolve(
            self,
            status="completed",
            conclusion=conclusion,
            started_at=self.started_at or now,
            completed_at=now,
            **changes,
        )


def _ms_timestamp(value: datetime | None) -> str | None:
    """`yyyy-MM-ddTHH:mm:ss.fffZ`, as the results service takes (docs/protocol.md,
    "Results service and logs")."""
    if value is None:
        return None
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def step_update_payload(step: Step) -> dict[str, Any]:
    """A step in `WorkflowStepsUpdate`: numeric enums, millisecond timestamps.

    A timestamp that is not set is sent as `null`, as the runner's contract
    (`Contracts.Step`, no `EmitDefaultValue = false`) serialises it.
    """
    return {
        "external_id": step.external_id,
        "number": step.number,
        "name": step.name,
        "status": RESULTS_STATUS.get(step.status, 0),
        "started_at": _ms_timestamp(step.started_at),
        "completed_at": _ms_timestamp(step.completed_at),
        "conclusion": RESULTS_CONCLUSION.get(step.conclusion, 0) if step.conclusion else 0,
    }


def step_result_payload(step: Step) -> dict[str, Any]:
    """A step in `completejob.stepResults`: snake_case, string enums (docs/protocol.md,
    "Acquire, renew, complete")."""
    out: dict[str, Any] = {
        "external_id": step.external_id,
        "number": step.number,
        "name": step.name,
        "status": step.status,
    }
    optional: dict[str, Any] = {
        "action_name": step.action_name,
        "ref": step.ref,
        "type": step.type,
        "conclusion": step.conclusion,
        "started_at": format_timestamp(step.started_at) if step.started_at else None,
        "completed_at": format_timestamp(step.completed_at) if step.completed_at else None,
        "completed_log_url": step.completed_log_url,
        "completed_log_lines": step.completed_log_lines,
    }
    out.update({key: value for key, value in optional.items() if value is not None})
    out["annotations"] = [annotation.to_json() for annotation in step.annotations]
    return out


def complete_job_body(
    message: JobMessage,
    conclusion: Conclusion,
    *,
    outputs: Mapping[str, str | Secret] | None = None,
    step_results: Sequence[Step] = (),
    annotations: Sequence[Annotation] = (),
    telemetry: Sequence[Mapping[str, str]] = (),
    environment_url: str | None = None,
) -> dict[str, Any]:
    """The `completejob` body (docs/protocol.md, "Acquire, renew, complete"; fixture
    `run_completejob_request.json`)."""
    if conclusion not in CONCLUSIONS:
        raise ValueError(f"conclusion must be one of {', '.join(sorted(CONCLUSIONS))}, not {conclusion!r}")
    body: dict[str, Any] = {
        "planId": message.plan_id,
        "jobId": message.job_id,
        "conclusion": conclusion,
        "outputs": {
            name: (
                {"value": value.get_secret_value(), "isSecret": True}
                if isinstance(value, Secret)
                else {"value": value, "isSecret": False}
            )
            for name, value in (outputs or {}).items()
        },
        "stepResults": [step_result_payload(step) for step in step_results],
        "annotations": [annotation.to_json() for annotation in annotations],
        "telemetry": [dict(item) for item in telemetry],
    }
    if environment_url:
        body["environmentUrl"] = environment_url
    if message.billing_owner_id:
        body["billingOwnerId"] = message.billing_owner_id
    return body


def mask_line(line: str, secrets: Sequence[str]) -> str:
    """Replace every secret value (longest first) in a log line with `***`."""
    for secret in secrets:
        if secret:
            line = line.replace(secret, _MASK)
    return line


# --------------------------------------------------------------------------- lock renewal


def renewal_delay(consecutive_failures: int, random: float) -> float:
    """Wait after a failed renewal: 5-15 s for the first 5 failures in a row, 15-30 s after
    (docs/protocol.md, "Acquire, renew, complete")."""
    if consecutive_failures <= 5:
        return 5.0 + 10.0 * random
    return 15.0 + 15.0 * random


def _renewal_stops(exc: BaseException) -> bool:
    """A renewal error that means the job is gone: run service 404, v1 job not found / job token expired."""
    if isinstance(exc, HTTPStatusError) and isinstance(exc.body, Mapping):
        kind = str(exc.body.get("typeKey") or exc.body.get("typeName") or "")
        if "TaskAgentJobNotFoundException" in kind or "TaskAgentJobTokenExpiredException" in kind:
            return True
    return isinstance(exc, RunServiceError | NotFoundError) and exc.status_code == 404


async def first_renewal(
    renew: Callable[[], Awaitable[datetime | None]],
    *,
    sleep: Callable[[float], Awaitable[None]],
    random: Callable[[], float],
    attempts: int = FIRST_RENEWAL_ATTEMPTS,
) -> datetime | None:
    """The first renewal must succeed: up to 5 tries, 1-10 s apart; then the last error is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return await renew()
        except (HTTPStatusError, RequestError) as exc:
            if attempt == attempts or _renewal_stops(exc):
                raise
            wait = 1.0 + 9.0 * random()
            logger.warning("first lock renewal failed (%s); trying again in %.0f s", type(exc).__name__, wait)
            await sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


async def keep_lock(
    renew: Callable[[], Awaitable[datetime | None]],
    locked_until: datetime | None,
    *,
    sleep: Callable[[float], Awaitable[None]],
    clock: Callable[[], float],
    random: Callable[[], float],
    interval: float = RENEW_INTERVAL,
) -> str:
    """Renew every `interval` s until cancelled; return why the lock was lost.

    A 404 (job gone) ends it at once. Other errors are retried (`renewal_delay`)
    until `lockedUntil + 5 min` has passed.
    """
    expiry = _deadline(locked_until, clock)
    failures = 0
    await sleep(interval)
    while True:
        try:
            locked_until = await renew()
        except (HTTPStatusError, RequestError) as exc:
            if _renewal_stops(exc):
                logger.warning("the job is gone on the server (%s); lock renewal stops", type(exc).__name__)
                return "the job no longer exists on the server"
            failures += 1
            if clock() >= expiry:
                logger.error("lock renewal failed %d times in a row; the lock has expired", failures)
                return f"the job lock expired after {failures} failed renewals"
            wait = renewal_delay(failures, random())
            logger.warning(
                "lock renewal failed (%s, %d in a row); trying again in %.0f s",
                type(exc).__name__,
                failures,
                wait,
            )
            await sleep(wait)
            continue
        failures = 0
        expiry = _deadline(locked_until, clock)
        await sleep(interval)


def _deadline(locked_until: datetime | None, clock: Callable[[], float]) -> float:
    if locked_until is None:
        return clock() + (ASSUMED_LOCK + LOCK_GRACE).total_seconds()
    return (locked_until + LOCK_GRACE).timestamp()


# --------------------------------------------------------------------------- backends


class _Backend(Protocol):
    async def renew(self) -> datetime | None: ...

    async def complete(self, body: dict[str, Any], conclusion: Conclusion, finish_time: datetime) -> None: ...


def _static_auth(url: str, token: Secret, kind: str) -> BearerAuth:
    return BearerAuth.fixed(url, token, kind=kind)


class _RunServiceBackend:
    """v2: `renewjob` / `completejob` on the run service with the job token (docs/protocol.md,
    "Acquire, renew, complete")."""

    def __init__(self, http: HTTPCore, message: JobMessage) -> None:
        self.http = http
        self.message = message
        self.url = message.run_service_url
        self.auth = _static_auth(self.url, message.job_token, "job token")

    async def renew(self) -> datetime | None:
        url = resolve_url(self.url, "renewjob")
        response = await self.http.request(
            "POST",
            url,
            policy=RetryPolicy(max_attempts=1),
            auth=self.auth,
            headers={"Accept": "application/json"},
            json={"planId": self.message.plan_id, "jobId": self.message.job_id},
        )
        payload = decode_json(response, "a renewjob response")
        raw = payload.get("lockedUntil") if isinstance(payload, Mapping) else None
        if not isinstance(raw, str):
            raise invalid_response(response, "the renewjob response has no `lockedUntil`")
        try:
            return parse_timestamp(raw)
        except ValueError:
            raise invalid_response(
                response, "the renewjob response's `lockedUntil` is not a timestamp"
            ) from None

    async def complete(self, body: dict[str, Any], conclusion: Conclusion, finish_time: datetime) -> None:
        await self.http.request(
            "POST",
            resolve_url(self.url, "completejob"),
            policy=RUN_SERVICE_RETRY,
            auth=self.auth,
            headers={"Accept": "application/json"},
            json=body,
            expect=(200, 204),
        )


class _PipelinesBackend:
    """v1: renew and finish through `PATCH .../jobrequests/{requestId}` with the runner token
    (docs/protocol.md, "Broker (v2) and pipelines (v1)")."""

    def __init__(self, connection: PipelinesConnection, message: JobMessage) -> None:
        self.connection = connection
        self.request_id = message.request_id
        self.orchestration_id = orchestration_id(message.job_token)

    async def renew(self) -> datetime | None:
        return await self.connection.renew_job_request(self.request_id, self.orchestration_id)

    async def complete(self, body: dict[str, Any], conclusion: Conclusion, finish_time: datetime) -> None:
        await self.connection.finish_job_request(self.request_id, conclusion, finish_time)


# --------------------------------------------------------------------------- the job


class Job:
    """A job this runner holds. Its lock is renewed in the background until `complete()`.

    `cancelled` is set on a `JobCancellation` for this job, or when the lock is
    lost (`cancel_reason` says which). `token` is the job-scoped token; this
    package sends it only to the run service and the results service.
    """

    def __init__(
        self,
        http: HTTPCore,
        request: JobRequest,
        message: JobMessage,
        backend: _Backend,
        *,
        on_release: Callable[[Job], None] = lambda job: None,
    ) -> None:
        self.http = http
        self.request = request
        self.message = message
        self.cancelled = anyio.Event()
        self.lock_lost = anyio.Event()
        self.cancel_reason: str | None = None
        self.cancel_timeout: timedelta | None = None
        self.locked_until: datetime | None = message.locked_until
        self.completed = False
        self._backend = backend
        self._on_release = on_release
        self._renewal = anyio.CancelScope()
        self._change_order = 0
        results = message.results_url
        self._results_auth = _static_auth(results, message.job_token, "job token") if results else None

    def __repr__(self) -> str:
        return f"Job(job_id={self.job_id!r}, plan_id={self.plan_id!r}, display_name={self.display_name!r})"

    # the job's identity -------------------------------------------------------------------

    @property
    def plan_id(self) -> str:
        return self.message.plan_id

    @property
    def job_id(self) -> str:
        return self.message.job_id

    @property
    def display_name(self) -> str:
        return self.message.job_display_name

    @property
    def token(self) -> Secret:
        return self.message.job_token

    @property
    def run_service_url(self) -> str:
        return self.message.run_service_url

    @property
    def results_url(self) -> str | None:
        return self.message.results_url

    @property
    def steps(self) -> tuple[JobStepInfo, ...]:
        return self.message.steps

    @property
    def variables(self) -> Mapping[str, JobVariable]:
        return self.message.variables

    @property
    def mask(self) -> tuple[MaskHint, ...]:
        return self.message.mask

    @property
    def secret_values(self) -> tuple[str, ...]:
        return self.message.secret_values

    def mask_line(self, line: str) -> str:
        """`line` with the job's secret values (value masks, secret variables, the job token) as `***`."""
        return mask_line(line, self.secret_values)

    def matches(self, cancellation: JobCancellation) -> bool:
        wanted = cancellation.job_id.lower()
        return wanted in (self.job_id.lower(), self.request.runner_request_id.lower())

    # lock ---------------------------------------------------------------------------------

    async def _first_renewal(self) -> None:
        self.locked_until = await first_renewal(self._renew, sleep=self.http.sleep, random=self.http.random)

    async def _renew(self) -> datetime | None:
        locked_until = await self._backend.renew()
        self.locked_until = locked_until
        return locked_until

    async def _keep_lock(self, interval: float) -> None:
        with self._renewal:
            reason = await keep_lock(
                self._renew,
                self.locked_until,
                sleep=self.http.sleep,
                clock=self.http.clock,
                random=self.http.random,
                interval=interval,
            )
            self.lock_lost.set()
            self._cancel(f"lock lost: {reason}")

    def _cancel(self, reason: str, timeout: timedelta | None = None) -> None:
        if not self.cancelled.is_set():
            self.cancel_reason = reason
            self.cancel_timeout = timeout
            logger.warning("job %s cancelled: %s", self.job_id, reason)
            self.cancelled.set()

    def _release(self) -> None:
        self._renewal.cancel()
        self._on_release(self)

    # reporting ----------------------------------------------------------------------------

    def _results(self, path: str) -> tuple[str, BearerAuth]:
        if self.results_url is None or self._results_auth is None:
            raise InvalidResponseError(
                "the job has no results service URL (`system.github.results_endpoint`); "
                "v1 timeline reporting is not supported"
            )
        return resolve_url(self.results_url, path), self._results_auth

    async def _twirp(self, path: str, body: dict[str, Any], what: str) -> Any:
        url, auth = self._results(path)
        response = await self.http.request(
            "POST", url, policy=RESULTS_RETRY, auth=auth, headers={"Accept": "application/json"}, json=body
        )
        return decode_json(response, what)

    def _ids(self) -> dict[str, str]:
        return {"workflow_run_backend_id": self.plan_id, "workflow_job_run_backend_id": self.job_id}

    async def update_steps(self, steps: Sequence[Step]) -> None:
        """Report step states to the results service (`WorkflowStepsUpdate`, docs/protocol.md,
        "Results service and logs")."""
        self._change_order += 1
        body = {
            **self._ids(),
            "change_order": self._change_order,
            "steps": [step_update_payload(s) for s in steps],
        }
        await self._twirp(STEP_UPDATE_PATH, body, "a WorkflowStepsUpdate response")

    async def upload_step_log(self, step: Step | str, lines: Iterable[str]) -> int:
        """Upload a step's whole log (signed URL, one `PUT`, metadata); return the line count.

        Lines are masked with `mask_line` first. The signed URL gets no token.
        """
        step_id = step.external_id if isinstance(step, Step) else step
        masked = [self.mask_line(line.rstrip("\r\n")) for line in lines]
        content = "".join(line + "\n" for line in masked).encode("utf-8")
        signed = await self._twirp(
            STEP_LOG_URL_PATH, {**self._ids(), "step_backend_id": step_id}, "a signed log URL response"
        )
        logs_url = signed.get("logs_url") if isinstance(signed, Mapping) else None
        if not isinstance(logs_url, str) or not logs_url.startswith(("https://", "http://")):
            raise InvalidResponseError("the results service returned no usable `logs_url`")
        storage = signed.get("blob_storage_type") if isinstance(signed, Mapping) else None
        await self._put_blob(logs_url, content, azure=storage == AZURE_BLOB_STORAGE)
        await self._twirp(
            STEP_LOG_METADATA_PATH,
            {
                **self._ids(),
                "step_backend_id": step_id,
                "uploaded_at": _ms_timestamp(datetime.fromtimestamp(self.http.clock(), UTC)),
                "line_count": len(masked),
            },
            "a CreateStepLogsMetadata response",
        )
        return len(masked)

    async def _put_blob(self, url: str, content: bytes, *, azure: bool) -> None:
        """One `PUT` of the whole log; `x-ms-blob-type: BlockBlob` only for Azure blob storage."""
        # The URL's SAS signature is a credential: HTTPCore redacts it from logs and errors.
        # An error keeps only Azure's error code, never a body that might echo the URL.
        headers = {"Content-Type": "text/plain"}
        if azure:
            headers["x-ms-blob-type"] = "BlockBlob"
        try:
            await self.http.request(
                "PUT", url, policy=RESULTS_RETRY, content=content, headers=headers, expect=(200, 201)
            )
        except HTTPStatusError as exc:
            code = exc.headers.get("x-ms-error-code")
            summary = {"message": "blob storage refused the step log" + (f" ({code})" if code else "")}
            raise error_from_response(
                method="PUT",
                url=url,
                status_code=exc.status_code,
                headers=httpx.Headers({"content-type": "application/json"}),
                body=json.dumps(summary).encode(),
                now=self.http.clock(),
            ) from None

    # completion ---------------------------------------------------------------------------

    async def complete(
        self,
        conclusion: Conclusion = "succeeded",
        *,
        outputs: Mapping[str, str | Secret] | None = None,
        step_results: Sequence[Step] = (),
        annotations: Sequence[Annotation] = (),
        telemetry: Sequence[Mapping[str, str]] = (),
        environment_url: str | None = None,
    ) -> None:
        """Report the job's result and release it: lock renewal stops, the runner is idle again.

        v2: `POST completejob` (retried up to 5 times; 401/404 are not). v1: the job
        request is finished with `result` (outputs and steps are not sent).
        """
        if self.completed:
            raise RuntimeError(f"job {self.job_id} is already completed")
        body = complete_job_body(
            self.message,
            conclusion,
            outputs=outputs,
            step_results=step_results,
            annotations=annotations,
            telemetry=telemetry,
            environment_url=environment_url,
        )
        self.completed = True
        try:
            await self._backend.complete(body, conclusion, datetime.fromtimestamp(self.http.clock(), UTC))
            logger.info("completed job %s: %s", self.job_id, conclusion)
        finally:
            self._release()


def acquire_body(request: RunnerJobRequest, runner_os: str) -> dict[str, Any]:
    """The `acquirejob` body (docs/protocol.md, "Acquire, renew, complete"; fixture
    `run_acquirejob_request.json`)."""
    body: dict[str, Any] = {"jobMessageId": request.runner_request_id, "runnerOS": runner_os}
    if request.billing_owner_id:
        body["billingOwnerId"] = request.billing_owner_id
    return body


def as_run_service_error(exc: HTTPStatusError) -> RunServiceError:
    """A 404/409/422 from `acquirejob` as a `RunServiceError`, whatever its body was."""
    if isinstance(exc, RunServiceError):
        return exc
    what = {
        404: "the job was not found",
        409: "another runner already acquired the job",
        422: "unprocessable",
    }
    return exc.as_error(RunServiceError, f"{what.get(exc.status_code, 'refused')}: {exc.message}")
