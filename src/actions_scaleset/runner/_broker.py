"""The broker (v2) session, long poll and acknowledgement (docs/protocol.md, "Sessions",
"Polling and runner messages").

URL, query and body building are pure functions shared with the pipelines (v1)
connection; `BrokerConnection` is the thin I/O around them.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
from collections.abc import Mapping
from typing import Any, Final

import attrs
import httpx

from .._http import NO_RETRY, HTTPCore, RetryPolicy, decode_json, invalid_response, resolve_url
from ..errors import InvalidResponseError
from ._messages import RunnerJobRequest, RunnerMessage, parse_message
from ._oauth import RunnerTokens

__all__ = [
    "DEFAULT_RUNNER_VERSION",
    "BrokerConnection",
    "RunnerIdentity",
    "poll_params",
    "runner_architecture",
    "runner_os",
    "session_request_body",
]

logger = logging.getLogger("actions_scaleset.runner")

DEFAULT_RUNNER_VERSION: Final = "2.336.0"
"""The official runner version the spec was read from; sent as `runnerVersion` and `agent.version`."""
NIL_GUID: Final = "00000000-0000-0000-0000-000000000000"

SESSION_RETRY: Final = RetryPolicy(max_attempts=4, initial_delay=5.0, max_delay=30.0)
"""Session create/delete: transport errors, 429 and 5xx (docs/protocol.md, "Polling and runner messages":
retried, 30 s apart at the listener)."""
POLL_RETRY: Final = RetryPolicy(max_attempts=5, initial_delay=5.0, max_delay=15.0, multiplier=1.75)
"""The message poll: up to 5 tries, 5-15 s apart (docs/protocol.md, "Polling and runner messages", broker
row)."""
POLL_TIMEOUT: Final = httpx.Timeout(100.0, connect=10.0)
"""Broker calls time out after 100 s; the broker holds a poll for under a minute (docs/protocol.md,
"Polling and runner messages")."""
ACK_TIMEOUT: Final = httpx.Timeout(5.0)
SESSION_DELETE_TIMEOUT: Final = 30.0


@attrs.frozen
class RunnerIdentity:
    """What the runner tells the server about itself on session create and every poll."""

    agent_id: int
    agent_name: str
    version: str = DEFAULT_RUNNER_VERSION
    os: str = "Linux"
    architecture: str = "X64"
    os_description: str = ""
    owner_name: str = ""
    disable_update: bool = False


def runner_os(system: str | None = None) -> str:
    """`Linux` / `macOS` / `Windows` from `platform.system()` (docs/protocol.md,
    "Polling and runner messages"; not validated by github.com)."""
    name = (system if system is not None else platform.system()).lower()
    return {"darwin": "macOS", "windows": "Windows"}.get(
        name, "Linux" if name == "linux" else name.capitalize()
    )


def runner_architecture(machine: str | None = None) -> str:
    """`X86` / `X64` / `ARM` / `ARM64` from `platform.machine()`."""
    name = (machine if machine is not None else platform.machine()).lower()
    if name in ("x86_64", "amd64", "x64"):
        return "X64"
    if name in ("aarch64", "arm64", "armv8l", "armv8b"):
        return "ARM64"
    if name.startswith("arm"):
        return "ARM"
    if name in ("i386", "i486", "i586", "i686", "x86"):
        return "X86"
    return name.upper() or "X64"


def default_owner_name() -> str:
    """`<MachineName> (PID: <pid>)`, as the official runner names its session owner."""
    return f"{socket.gethostname()} (PID: {os.getpid()})"


def default_os_description() -> str:
    return " ".join(part for part in (platform.system(), platform.release(), platform.version()) if part)


def session_request_body(identity: RunnerIdentity) -> dict[str, Any]:
    """`TaskAgentSession` for session create, both flows (docs/protocol.md, "Sessions").
    `useFipsEncryption` is always false."""
    return {
        "sessionId": NIL_GUID,
        "ownerName": identity.owner_name,
        "agent": {
            "id": identity.agent_id,
            "name": identity.agent_name,
            "version": identity.version,
            "osDescription": identity.os_description,
            "ephemeral": None,
            "status": 0,
            "provisioningState": None,
        },
        "useFipsEncryption": False,
    }


def poll_params(
    identity: RunnerIdentity,
    *,
    session_id: str,
    status: str,
    last_message_id: int | None = None,
    with_disable_update: bool = True,
) -> dict[str, str]:
    """Query of a message poll (`disableUpdate` lowercase) or an acknowledgement (without it)."""
    params = {"sessionId": session_id}
    if last_message_id is not None:
        params["lastMessageId"] = str(last_message_id)
    params.update(
        status=status,
        runnerVersion=identity.version,
        os=identity.os,
        architecture=identity.architecture,
    )
    if with_disable_update:
        params["disableUpdate"] = "true" if identity.disable_update else "false"
    return params


def read_session_id(payload: Any) -> str:
    if not isinstance(payload, Mapping):
        raise ValueError("the session is not a JSON object")  # noqa: TRY004 - the caller maps ValueError
    session_id = payload.get("sessionId")
    if not isinstance(session_id, str) or not session_id or session_id == NIL_GUID:
        raise ValueError("the session has no `sessionId`")
    return session_id


def message_from_response(response: httpx.Response, *, decrypt: Any = None) -> RunnerMessage | None:
    """A polled message, or None for "no message" (202, 204, or a 2xx without a usable JSON body).

    An empty or broken body is logged and treated as no message, never fatal (docs/protocol.md,
    "Polling and runner messages").
    """
    if response.status_code != 200 or not response.content.strip():
        return None
    try:
        payload = decode_json(response, "a runner message")
        return parse_message(payload, decrypt=decrypt)
    except InvalidResponseError as exc:
        logger.warning("ignoring a message the runner cannot use: %s", exc.reason)
        return None


class BrokerConnection:
    """One runner's broker session: create, poll, acknowledge, delete.

    Every call carries the broker token: `authorizationUrlV2`'s while auth migration is on.
    """

    flow: Final = "v2"

    def __init__(
        self,
        http: HTTPCore,
        tokens: RunnerTokens,
        base_url: str,
        identity: RunnerIdentity,
        *,
        poll_retry: RetryPolicy = POLL_RETRY,
    ) -> None:
        self.http = http
        self.tokens = tokens
        self.base_url = base_url
        self.identity = identity
        self.poll_retry = poll_retry
        self.session_id: str | None = None

    def __repr__(self) -> str:
        return f"BrokerConnection({self.base_url!r}, session_id={self.session_id!r})"

    async def create_session(self) -> str:
        url = resolve_url(self.base_url, "session")
        response = await self.http.request(
            "POST",
            url,
            policy=SESSION_RETRY,
            auth=self.tokens.auth_for(url, v2=True),
            # The broker rejects the api-version media-type parameter (docs/protocol.md, "Sessions").
            headers={"Accept": "application/json"},
            json=session_request_body(self.identity),
            expect=(200, 201),
        )
        try:
            self.session_id = read_session_id(decode_json(response, "a broker session"))
        except ValueError as exc:
            raise invalid_response(response, str(exc)) from None
        logger.info("opened broker session %s for runner %r", self.session_id, self.identity.agent_name)
        return self.session_id

    async def delete_session(self) -> None:
        """`DELETE {broker}session`: no body, no query; the token names the session (docs/protocol.md,
        "Sessions")."""
        url = resolve_url(self.base_url, "session")
        await self.http.request(
            "DELETE", url, policy=NO_RETRY, auth=self.tokens.auth_for(url, v2=True), expect=(200, 202, 204)
        )
        logger.info("deleted broker session %s", self.session_id)
        self.session_id = None

    async def get_message(self, status: str) -> RunnerMessage | None:
        url = resolve_url(self.base_url, "message")
        response = await self.http.request(
            "GET",
            url,
            policy=self.poll_retry,
            auth=self.tokens.auth_for(url, v2=True),
            headers={"Accept": "application/json"},
            params=poll_params(self.identity, session_id=self.session_id or NIL_GUID, status=status),
            timeout=POLL_TIMEOUT,
            expect=(200, 202, 204),
        )
        return message_from_response(response)

    async def acknowledge(self, request: RunnerJobRequest, status: str) -> None:
        """Best effort, 5 s, no retries (docs/protocol.md, "Polling and runner messages")."""
        url = resolve_url(self.base_url, "acknowledge")
        await self.http.request(
            "POST",
            url,
            policy=NO_RETRY,
            auth=self.tokens.auth_for(url, v2=True),
            headers={"Accept": "application/json"},
            params=poll_params(
                self.identity,
                session_id=self.session_id or NIL_GUID,
                status=status,
                with_disable_update=False,
            ),
            json={"runnerRequestId": request.runner_request_id},
            timeout=ACK_TIMEOUT,
            expect=(200, 202, 204),
        )

    async def delete_message(self, message: RunnerMessage) -> None:
        """The broker has no message delete (`DeleteMessageAsync` is a no-op, docs/protocol.md,
        "Polling and runner messages")."""

    def migrate(self, broker_base_url: str) -> None:
        """Follow a `BrokerMigration` to another broker, keeping the session id."""
        self.base_url = broker_base_url
