"""The raw baseline: a scale-set listener written with httpx and dicts, nothing else.

No models, no retries, no logging, no backoff: the least a correct listener can do, as
GitHub's clients speak the protocol (docs/protocol.md, "Scale-set endpoints", "The long
poll", "Acknowledging and acquiring"):

1. the registration exchange: `POST …/actions/runners/registration-token` with the PAT,
   then `POST /actions/runner-registration` (`RemoteAuth`) for the Actions service URL and
   the admin token (`admin_connection`);
2. `POST _apis/runtime/runnerscalesets/{id}/sessions` for the queue URL and its token;
3. long-poll `GET {messageQueueUrl}` with `lastMessageId` merged into the URL's own query
   (a queue URL may carry `?sessionId=…`, which must be kept), and `X-ScaleSetMaxCapacity`;
4. per message: `POST _apis/runtime/runnerscalesets/{id}/acquirejobs` (queue token, on the
   admin URL) with every `JobAvailable` id, then `DELETE {messageQueueUrl}/{messageId}` (the
   id appended to the path, the query kept);
5. a 401 from the queue or from `acquirejobs` refreshes the session (`PATCH …/sessions/{id}`)
   and sends the call once more;
6. the session is deleted at the end, even when cancelled.

The scaler is instant: it acquires everything offered and starts no runner.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import anyio
import attrs
import httpx

A = TypeVar("A")
T = TypeVar("T")

API: Final = {"api-version": "6.0-preview"}
NIL_UUID: Final = "00000000-0000-0000-0000-000000000000"
POLL_TIMEOUT: Final = httpx.Timeout(70.0, connect=10.0)
"""GitHub holds a poll ~50 s: the read timeout must outlast it."""


@attrs.frozen
class Admin:
    """The Actions service URL (ends with `/`) and the admin token."""

    url: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}


async def admin_connection(http: httpx.AsyncClient, config_url: str, pat: str) -> Admin:
    """The registration exchange for an organization's config URL (`{base}/{org}`, GHES style)."""
    base, _, org = config_url.rstrip("/").rpartition("/")
    response = await http.post(
        f"{base}/api/v3/orgs/{org}/actions/runners/registration-token",
        headers={"Authorization": f"Bearer {pat}", "Content-Type": "application/vnd.github.v3+json"},
    )
    response.raise_for_status()
    response = await http.post(
        f"{base}/api/v3/actions/runner-registration",
        headers={"Authorization": f"RemoteAuth {response.json()['token']}"},
        json={"url": config_url, "runner_event": "register"},
    )
    response.raise_for_status()
    answer = response.json()
    url = answer["url"]
    return Admin(url if url.endswith("/") else url + "/", answer["token"])


class QueueTokenExpired(Exception):
    """The queue or `acquirejobs` answered 401: refresh the session."""


class RawListener:
    """One scale set's listener. `run()` until cancelled; `on_acquired(ids)` after each acquire."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        admin: Admin,
        scale_set_id: int,
        *,
        max_runners: int = 10,
        owner: str = "bench",
        on_acquired: Callable[[list[int]], None] | None = None,
        open_limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        self.http = http
        self.admin = admin
        self.set_url = f"{admin.url}_apis/runtime/runnerscalesets/{scale_set_id}"
        self.max_runners = max_runners
        self.owner = owner
        self.on_acquired = on_acquired
        self.open_limiter = open_limiter
        """Caps session creations in flight, shared by many listeners (as `asc.ListenerGroup` does)."""
        self.session: dict[str, Any] = {}
        self.desired = 0

    async def run(self) -> None:
        await self.create_session()
        try:
            await self.poll()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                await self.delete_session()

    # ------------------------------------------------------------------ the session

    async def create_session(self) -> None:
        if self.open_limiter is None:
            await self._post_session()
            return
        async with self.open_limiter:
            await self._post_session()

    async def _post_session(self) -> None:
        response = await self.http.post(
            f"{self.set_url}/sessions",
            params=API,
            headers=self.admin.headers,
            json={"sessionId": NIL_UUID, "ownerName": self.owner},
        )
        response.raise_for_status()
        self.session = response.json()

    async def refresh_session(self) -> None:
        response = await self.http.patch(
            f"{self.set_url}/sessions/{self.session['sessionId']}", params=API, headers=self.admin.headers
        )
        response.raise_for_status()
        self.session = {**self.session, **response.json()}

    async def delete_session(self) -> None:
        if self.session:
            await self.http.delete(
                f"{self.set_url}/sessions/{self.session['sessionId']}", params=API, headers=self.admin.headers
            )
            self.session = {}

    def queue_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.session['messageQueueAccessToken']}"}

    async def once_more_on_401(self, call: Callable[[A], Awaitable[T]], arg: A) -> T:
        try:
            return await call(arg)
        except QueueTokenExpired:
            await self.refresh_session()
            return await call(arg)

    # ------------------------------------------------------------------ the queue

    async def poll(self) -> None:
        last = 0
        while True:
            message = await self.once_more_on_401(self.get_message, last)
            if message is None:
                continue
            events = json.loads(message["body"]) if message.get("body") else []
            available = [e["runnerRequestId"] for e in events if e["messageType"] == "JobAvailable"]
            if available:
                acquired = await self.once_more_on_401(self.acquire, available)
                if self.on_acquired is not None:
                    self.on_acquired(acquired)
            statistics = message.get("statistics") or {}
            self.desired = min(self.max_runners, statistics.get("totalAssignedJobs", 0))
            message_id = message["messageId"]
            await self.once_more_on_401(self.delete_message, message_id)
            last = message_id

    async def get_message(self, last: int) -> dict[str, Any] | None:
        url = httpx.URL(self.session["messageQueueUrl"])
        if last > 0:
            url = url.copy_merge_params({"lastMessageId": str(last)})  # keeps `?sessionId=…`
        response = await self.http.get(
            url,
            headers={
                **self.queue_headers(),
                "Accept": "application/json; api-version=6.0-preview",
                "X-ScaleSetMaxCapacity": str(self.max_runners),
            },
            timeout=POLL_TIMEOUT,
        )
        if response.status_code == 401:
            raise QueueTokenExpired
        if response.status_code == 202:
            return None
        response.raise_for_status()
        message: dict[str, Any] = response.json()
        return message

    async def acquire(self, ids: list[int]) -> list[int]:
        response = await self.http.post(
            f"{self.set_url}/acquirejobs", params=API, headers=self.queue_headers(), json=ids
        )
        if response.status_code == 401:
            raise QueueTokenExpired
        response.raise_for_status()
        acquired: list[int] = response.json()["value"]
        return acquired

    async def delete_message(self, message_id: int) -> None:
        url = httpx.URL(self.session["messageQueueUrl"])
        url = url.copy_with(path=f"{url.path.rstrip('/')}/{message_id}")  # the query is kept
        response = await self.http.delete(
            url, headers={**self.queue_headers(), "Content-Type": "application/json"}
        )
        if response.status_code == 401:
            raise QueueTokenExpired
        response.raise_for_status()
