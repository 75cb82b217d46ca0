"""The pipelines (v1) session for GHES: encrypted messages, job-request PATCHes (docs/protocol.md,
"Broker (v2) and pipelines (v1)").

The session's `encryptionKey` is unwrapped with the runner's RSA key (OAEP,
SHA-256 then SHA-1); each message body is AES-CBC with its own IV. A
`BrokerMigration` from the pool queue makes the same poll ask the broker, with
the pool session's id and the broker token; the next poll asks the pool again
(actions/runner `MessageListener.GetNextMessageAsync`). Every request carries
the VSS correlation headers, and a job-request renewal the job's orchestration id.
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import httpx

from .._http import NO_RETRY, HTTPCore, RetryPolicy, combine_url, decode_json, invalid_response, resolve_url
from .._secret import Secret
from ..errors import InvalidResponseError
from ..models import format_timestamp, parse_timestamp
from ._broker import (
    ACK_TIMEOUT,
    POLL_RETRY,
    SESSION_RETRY,
    RunnerIdentity,
    message_from_response,
    poll_params,
    read_session_id,
    session_request_body,
)
from ._crypto import decrypt_message_body, unwrap_session_key
from ._messages import BrokerMigration, RunnerJobRequest, RunnerMessage
from ._oauth import RunnerTokens

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

__all__ = ["PipelinesConnection", "orchestration_id", "pipelines_headers", "session_key_from_response"]

logger = logging.getLogger("actions_scaleset.runner")

SESSION_API: Final = "5.1-preview.1"
MESSAGE_API: Final = "6.0-preview.1"
JOB_REQUEST_API: Final = "5.1-preview.1"
LOCK_TOKEN: Final = "00000000-0000-0000-0000-000000000000"  # noqa: S105 - the nil lock GUID
V1_TIMEOUT: Final = 60.0
"""The v1 message and job-request connections time out after 60 s (docs/protocol.md,
"Retries and timeouts")."""
JOB_REQUEST_RETRY: Final = RetryPolicy(max_attempts=5, initial_delay=5.0, max_delay=15.0)


def pipelines_headers(api_version: str, *, body: bool = False) -> dict[str, str]:
    """VSS headers: api-version in `Accept` (and `Content-Type` for bodies), no sign-in redirects
    (docs/protocol.md, "Broker (v2) and pipelines (v1)")."""
    headers = {"Accept": f"application/json; api-version={api_version}", "X-TFS-FedAuthRedirect": "Suppress"}
    if body:
        headers["Content-Type"] = f"application/json; charset=utf-8; api-version={api_version}"
    return headers


def orchestration_id(job_token: Secret) -> str | None:
    """The `orch_id` (else `orchid`) claim of a job token, as `JobDispatcher.Run` reads it; None if absent."""
    import jwt

    try:
        claims = jwt.decode(job_token.get_secret_value(), options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    if not isinstance(claims, Mapping):
        return None
    by_name = {str(name).lower(): value for name, value in claims.items()}
    for name in ("orch_id", "orchid"):
        value = by_name.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def session_key_from_response(payload: Mapping[str, Any], private_key: RSAPrivateKey) -> bytes | None:
    """The AES key of a v1 session, or None when the session has no `encryptionKey` (plain messages).

    Raises `ValueError`/`InvalidResponseError` saying what is wrong.
    """
    encryption_key = payload.get("encryptionKey")
    if not encryption_key:
        return None
    if not isinstance(encryption_key, Mapping):
        raise ValueError("the session's `encryptionKey` is not an object")  # noqa: TRY004
    value = encryption_key.get("value")
    if not value:
        return None
    if not isinstance(value, str):
        raise ValueError("the session's `encryptionKey.value` is not a base64 string")  # noqa: TRY004
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the session's `encryptionKey.value` is not valid base64") from None
    if encryption_key.get("encrypted") is False:
        return raw
    # The code picks the OAEP hash from the response's useFipsEncryption; github.com uses
    # SHA-256 whatever it says (docs/protocol.md, "Broker (v2) and pipelines (v1)"). Both are tried; the
    # flag only orders them.
    prefer = "sha256" if payload.get("useFipsEncryption") is not False else "sha1"
    key, used = unwrap_session_key(private_key, raw, prefer=prefer)  # type: ignore[arg-type]
    logger.debug("unwrapped the session key with RSA-OAEP/%s", used.upper())
    return key


class PipelinesConnection:
    """One runner's pipelines session (GHES, or github.com before a `BrokerMigration`)."""

    flow: Final = "v1"

    def __init__(
        self,
        http: HTTPCore,
        tokens: RunnerTokens,
        server_url: str,
        pool_id: int,
        identity: RunnerIdentity,
        *,
        private_key: RSAPrivateKey | None,
        poll_retry: RetryPolicy = POLL_RETRY,
    ) -> None:
        self.http = http
        self.tokens = tokens
        self.server_url = server_url
        self.pool_id = pool_id
        self.identity = identity
        self.poll_retry = poll_retry
        self.session_id: str | None = None
        self.broker_url: str | None = None
        """The broker of the last `BrokerMigration`; acknowledgements go there."""
        self.last_message_id: int | None = None
        self.tfs_session = str(uuid.uuid4())
        """`X-TFS-Session` of every request: one id for this connection, as VSS settings keep one."""
        self._private_key = private_key
        self._session_key: bytes | None = None
        self._broker_message: RunnerMessage | None = None

    def __repr__(self) -> str:
        session = self.session_id
        return f"PipelinesConnection({self.server_url!r}, pool_id={self.pool_id}, session_id={session!r})"

    def _pool_url(self, path: str) -> str:
        return combine_url(self.server_url, f"_apis/distributedtask/pools/{self.pool_id}/{path}")

    def _headers(self, api_version: str, *, body: bool = False, **extra: str) -> dict[str, str]:
        """VSS headers plus `X-TFS-Session` and a new `X-VSS-E2EID` (kept across this request's retries)."""
        return {
            **pipelines_headers(api_version, body=body),
            "X-TFS-Session": self.tfs_session,
            "X-VSS-E2EID": str(uuid.uuid4()),
            **extra,
        }

    async def create_session(self) -> str:
        url = self._pool_url("sessions")
        response = await self.http.request(
            "POST",
            url,
            policy=SESSION_RETRY,
            auth=self.tokens.auth_for(url),
            headers=self._headers(SESSION_API, body=True),
            json=session_request_body(self.identity),
            expect=(200, 201),
        )
        payload = decode_json(response, "a pipelines session")
        try:
            session_id = read_session_id(payload)
            if self._private_key is None:
                session_key = None
            else:
                session_key = session_key_from_response(payload, self._private_key)
        except ValueError as exc:
            raise invalid_response(response, str(exc)) from None
        except InvalidResponseError as exc:
            raise invalid_response(response, exc.reason) from None
        self.session_id, self._session_key = session_id, session_key
        self.last_message_id = None
        logger.info("opened pipelines session %s for runner %r", session_id, self.identity.agent_name)
        return session_id

    async def delete_session(self) -> None:
        if self.session_id is None:
            return
        url = self._pool_url(f"sessions/{self.session_id}")
        await self.http.request(
            "DELETE",
            url,
            policy=NO_RETRY,
            auth=self.tokens.auth_for(url),
            headers=self._headers(SESSION_API),
            expect=(200, 204),
        )
        logger.info("deleted pipelines session %s", self.session_id)
        self.session_id = None

    def _decrypt(self, iv: str, body: str) -> str:
        if self._session_key is None:
            return body
        try:
            iv_bytes = base64.b64decode(iv, validate=True)
            ciphertext = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidResponseError("an encrypted message has an IV or body that is not base64") from None
        return decrypt_message_body(self._session_key, iv_bytes, ciphertext)

    async def get_message(self, status: str) -> RunnerMessage | None:
        """Poll the pool queue; after a `BrokerMigration` there, the broker in the same call.

        Each call asks the pool first, so both are polled for as long as the pool
        answers `BrokerMigration`, and the pool's own messages still arrive
        (actions/runner `MessageListener.GetNextMessageAsync`). The migration
        message is neither deleted nor remembered as `lastMessageId`; neither is a
        broker message's id, which names nothing in the pool queue.
        """
        self._broker_message = None
        url = self._pool_url("messages")
        response = await self.http.request(
            "GET",
            url,
            policy=self.poll_retry,
            auth=self.tokens.auth_for(url),
            headers=self._headers(MESSAGE_API),
            params=poll_params(
                self.identity,
                session_id=self.session_id or "",
                status=status,
                last_message_id=self.last_message_id,
            ),
            timeout=_timeout(V1_TIMEOUT),
            expect=(200, 202, 204),
        )
        message = message_from_response(response, decrypt=self._decrypt)
        if isinstance(message, BrokerMigration):
            self.migrate(message.broker_base_url)
            self._broker_message = await self._get_broker_message(status)
            return self._broker_message
        if message is not None and message.message_id is not None:
            self.last_message_id = message.message_id
        return message

    async def _get_broker_message(self, status: str) -> RunnerMessage | None:
        assert self.broker_url is not None
        url = resolve_url(self.broker_url, "message")
        response = await self.http.request(
            "GET",
            url,
            policy=self.poll_retry,
            auth=self.tokens.auth_for(url, v2=True),
            headers={"Accept": "application/json"},
            params=poll_params(self.identity, session_id=self.session_id or "", status=status),
            timeout=_timeout(100.0),
            expect=(200, 202, 204),
        )
        return message_from_response(response)

    async def delete_message(self, message: RunnerMessage) -> None:
        """`DELETE .../messages/{id}?sessionId=` after handling (docs/protocol.md,
        "Polling and runner messages").

        A message the broker gave is not deleted on the pool: the broker has no
        delete, and its id names nothing in the pool queue.
        """
        if message.message_id is None or self.session_id is None or message is self._broker_message:
            return
        url = self._pool_url(f"messages/{message.message_id}")
        await self.http.request(
            "DELETE",
            url,
            policy=NO_RETRY,
            auth=self.tokens.auth_for(url),
            headers=self._headers(SESSION_API),
            params={"sessionId": self.session_id},
            timeout=_timeout(30.0),
            expect=(200, 204),
        )

    async def acknowledge(self, request: RunnerJobRequest, status: str) -> None:
        """`RunnerJobRequest`s come from the broker after a migration and are acknowledged there."""
        if self.broker_url is None:
            return
        url = resolve_url(self.broker_url, "acknowledge")
        await self.http.request(
            "POST",
            url,
            policy=NO_RETRY,
            auth=self.tokens.auth_for(url, v2=True),
            headers={"Accept": "application/json"},
            params=poll_params(
                self.identity, session_id=self.session_id or "", status=status, with_disable_update=False
            ),
            json={"runnerRequestId": request.runner_request_id},
            timeout=ACK_TIMEOUT,
            expect=(200, 202, 204),
        )

    def migrate(self, broker_base_url: str) -> None:
        """Remember the broker a `BrokerMigration` names (polled with this pool session's id)."""
        broker_url = broker_base_url
        if broker_url != self.broker_url:
            logger.info("following BrokerMigration: polling %s with session %s", broker_url, self.session_id)
        self.broker_url = broker_url

    async def renew_job_request(
        self, request_id: int, orchestration_id: str | None = None
    ) -> datetime | None:
        """`PATCH .../jobrequests/{id}?lockToken=…` with `{"requestId"}`; returns `lockedUntil`
        (docs/protocol.md, "Broker (v2) and pipelines (v1)").

        `orchestration_id` goes in `X-VSS-OrchestrationId` (`TaskAgentHttpClient.RenewAgentRequestAsync`).
        """
        url = self._pool_url(f"jobrequests/{request_id}")
        extra = {"X-VSS-OrchestrationId": orchestration_id} if orchestration_id else {}
        response = await self.http.request(
            "PATCH",
            url,
            policy=NO_RETRY,
            auth=self.tokens.auth_for(url),
            headers=self._headers(JOB_REQUEST_API, body=True, **extra),
            params={"lockToken": LOCK_TOKEN},
            json={"requestId": request_id},
            timeout=_timeout(V1_TIMEOUT),
        )
        payload = decode_json(response, "a job request")
        raw = payload.get("lockedUntil") if isinstance(payload, Mapping) else None
        try:
            return parse_timestamp(raw) if isinstance(raw, str) else None
        except ValueError:
            raise invalid_response(response, "the job request's `lockedUntil` is not a timestamp") from None

    async def finish_job_request(self, request_id: int, result: str, finish_time: datetime) -> None:
        """`PATCH .../jobrequests/{id}` with `{"requestId", "finishTime", "result"}` (docs/protocol.md,
        "Broker (v2) and pipelines (v1)")."""
        url = self._pool_url(f"jobrequests/{request_id}")
        await self.http.request(
            "PATCH",
            url,
            policy=JOB_REQUEST_RETRY,
            auth=self.tokens.auth_for(url),
            headers=self._headers(JOB_REQUEST_API, body=True),
            params={"lockToken": LOCK_TOKEN},
            json={"requestId": request_id, "finishTime": format_timestamp(finish_time), "result": result},
            timeout=_timeout(V1_TIMEOUT),
        )


def _timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(10.0, seconds))
