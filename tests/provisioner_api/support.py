"""Running the provisioning API in-process against FakeGitHub, and driving its streams."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import httpx
from anyio.streams.memory import MemoryObjectReceiveStream
from examples.listener.provisioner import Provisioner
from examples.listener.settings import ProvisionerSettings
from examples.listener.simulate import SimulatedProvisioner
from examples.provisioner_api.app import build_app, running_service
from examples.provisioner_api.service import Service
from examples.provisioner_api.settings import ApiToken, Settings

import actions_scaleset as asc
from actions_scaleset.testing import FakeGitHub

TOKEN = "ci-token-0123456789abcdef"
OTHER_TOKEN = "ops-token-fedcba9876543210"
LABELS = ["self-hosted", "linux", "x64"]


def free_port() -> int:
    """A loopback port nothing listens on (for a server started in another process)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_settings(fake: FakeGitHub, tmp_path: Path, **changes: Any) -> Settings:
    settings = Settings(
        url=fake.config_url("acme"),
        credentials=fake.pat(),
        tokens=(ApiToken("ci", asc.Secret(TOKEN)), ApiToken("ops", asc.Secret(OTHER_TOKEN))),
        state=tmp_path / "state.sqlite3",
        provisioner=ProvisionerSettings(kind="simulate"),
        start_timeout=10.0,
    )
    return attrs.evolve(settings, **changes)


@attrs.define
class Harness:
    fake: FakeGitHub
    settings: Settings
    service: Service
    app: Any
    client: httpx.AsyncClient

    async def create(self, name: str, **body: Any) -> httpx.Response:
        return await self.client.post("/api/v1/runners", json={"name": name, **body})

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        with anyio.fail_after(timeout):
            while not condition():  # noqa: ASYNC110 - the condition is the service's state
                await anyio.sleep(0.02)


@contextlib.asynccontextmanager
async def running_api(
    fake: FakeGitHub,
    settings: Settings,
    *,
    provisioner: Callable[[httpx.AsyncClient], Provisioner] | None = None,
    job_seconds: float = 0.2,
    **options: Any,
) -> AsyncIterator[Harness]:
    """The API with a simulated provisioner, in-process, and a client that sends the `ci` token."""
    async with fake.http_client() as http:
        chosen = (
            provisioner(http)
            if provisioner is not None
            else SimulatedProvisioner(http, job_seconds=lambda job: job_seconds)
        )
        options = {"online_poll": 0.02, "check_interval": 0.05, **options}
        async with running_service(settings, provisioner=chosen, http_client=http, **options) as service:
            app = build_app(settings, service=service)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://api.test",
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as client:
                yield Harness(fake, settings, service, app, client)


# ---------------------------------------------------------------------- raw ASGI, for streams


def _scope(kind: str, path: str, query: str, token: str | None) -> dict[str, Any]:
    headers = [(b"host", b"api.test")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return {
        "type": kind, "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http" if kind == "http" else "ws", "path": path, "raw_path": path.encode(),
        "query_string": query.encode(), "headers": headers, "client": ("127.0.0.1", 50000),
        "server": ("api.test", 80), "root_path": "", "subprotocols": [],
    }  # fmt: skip


@attrs.define
class Stream:
    status: int
    headers: dict[str, str]
    chunks: MemoryObjectReceiveStream[bytes]
    buffer: bytes = b""

    async def read_until(self, marker: bytes, timeout: float = 10.0) -> bytes:
        """Everything up to and including `marker`."""
        with anyio.fail_after(timeout):
            while marker not in self.buffer:
                self.buffer += await self.chunks.receive()
        head, _, self.buffer = self.buffer.partition(marker)
        return head + marker

    async def events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The next `count` SSE events (comments skipped), as {"event", "id", "data"}."""
        found: list[dict[str, Any]] = []
        while len(found) < count:
            frame = (await self.read_until(b"\n\n", timeout)).decode()
            fields = dict(
                line.split(": ", 1) for line in frame.strip().splitlines() if not line.startswith(":")
            )
            if fields:
                found.append(
                    {"event": fields["event"], "id": int(fields["id"]), "data": json.loads(fields["data"])}
                )
        return found


@contextlib.asynccontextmanager
async def open_stream(
    app: Any, path: str, query: str = "", token: str | None = TOKEN
) -> AsyncIterator[Stream]:
    """A streaming GET, read as it comes (httpx's ASGI transport waits for the whole body)."""
    send_chunks, chunks = anyio.create_memory_object_stream[bytes](1000)
    started = anyio.Event()
    disconnect = anyio.Event()
    response: dict[str, Any] = {}
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response["status"] = message["status"]
            response["headers"] = {k.decode(): v.decode() for k, v in message.get("headers", [])}
            started.set()
        elif message["type"] == "http.response.body" and message.get("body"):
            await send_chunks.send(message["body"])

    async with send_chunks, chunks, anyio.create_task_group() as tg:
        tg.start_soon(app, _scope("http", path, query, token), receive, send)
        with anyio.fail_after(10):
            await started.wait()
        try:
            yield Stream(response["status"], response["headers"], chunks)
        finally:
            disconnect.set()
            with anyio.move_on_after(2) as waited:
                await anyio.lowlevel.checkpoint()
            if waited.cancelled_caught:
                tg.cancel_scope.cancel()
            tg.cancel_scope.cancel()


@attrs.define
class Socket:
    to_app: Any
    from_app: MemoryObjectReceiveStream[dict[str, Any]]
    pending: list[dict[str, Any]] = attrs.Factory(list)

    async def send(self, message: Any) -> None:
        await self.to_app.send({"type": "websocket.receive", "text": json.dumps(message)})

    async def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        if self.pending:
            message = self.pending.pop(0)
        else:
            with anyio.fail_after(timeout):
                message = await self.from_app.receive()
        if message["type"] == "websocket.close":
            return {"closed": message.get("code", 1000)}
        assert message["type"] == "websocket.send", message
        result: dict[str, Any] = json.loads(message["text"])
        return result

    async def receive_type(self, types: Sequence[str], timeout: float = 10.0) -> dict[str, Any]:
        """The next message of one of `types`, skipping others."""
        with anyio.fail_after(timeout):
            while True:
                message = await self.receive()
                if message.get("type") in types:
                    return message


@contextlib.asynccontextmanager
async def open_socket(app: Any, path: str = "/api/v1/ws", token: str | None = TOKEN) -> AsyncIterator[Socket]:
    """A WebSocket to the app in-process; yields after the app accepted (or closed) it."""
    to_app, app_inbox = anyio.create_memory_object_stream[dict[str, Any]](100)
    app_outbox, from_app = anyio.create_memory_object_stream[dict[str, Any]](1000)
    await to_app.send({"type": "websocket.connect"})
    async with to_app, app_inbox, app_outbox, from_app, anyio.create_task_group() as tg:
        tg.start_soon(app, _scope("websocket", path, "", token), app_inbox.receive, app_outbox.send)
        first = await from_app.receive()
        socket = Socket(to_app, from_app)
        if first["type"] != "websocket.accept":
            socket.pending.append(first)
        try:
            yield socket
        finally:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await to_app.send({"type": "websocket.disconnect", "code": 1000})
            with anyio.move_on_after(2):
                await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
