"""`serve()`: the fake on a loopback port with hypercorn, under asyncio or trio.

hypercorn is the `testing` extra and is imported only here. The socket is bound
before the server starts (port 0 picks a free one), so the URL is known at once.
A dropped-connection fault becomes a response cut off after its headers: the
client sees the connection close mid-response (`httpx.RemoteProtocolError`).

The server is only ever stopped through its shutdown trigger, never cancelled: a
cancelled hypercorn (on asyncio) raises `InvalidStateError` and logs its cancelled
connection tasks. Requests still being answered then are cut off like a dropped
connection, so no connection outlives hypercorn's graceful timeout. An exception from the
`async with` body is re-raised as itself, after the server stopped, not in an exception group.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, MutableMapping
from typing import Any, Final, cast

import anyio
import anyio.abc

from ._app import AsgiApp, Receive, Scope, Send
from ._http import ConnectionDropped

__all__ = ["serve_app"]

logger = logging.getLogger("actions_scaleset.testing")

_STOP_MARGIN: Final = 5.0
"""Seconds past hypercorn's graceful timeout before a server that did not stop is cancelled."""


class _TcpAdapter:
    """Cuts the response off when the app drops the connection, or when the server stops.

    `stop()` ends every request still being answered (a held long poll, a delay fault)
    the same way, so hypercorn's connections close within its graceful timeout and are
    never cancelled.
    """

    def __init__(self, app: AsgiApp) -> None:
        self.app = app
        self._answering: set[anyio.CancelScope] = set()
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        for scope in list(self._answering):
            scope.cancel()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        answering = anyio.CancelScope()

        async def tracked_send(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                self._answering.discard(answering)  # answered: hypercorn finishes the exchange
            await send(message)

        with answering:
            if self._stopping:
                answering.cancel()
            self._answering.add(answering)
            try:
                await self.app(scope, receive, tracked_send)
            except ConnectionDropped:
                await _cut_off(send, started)
            finally:
                self._answering.discard(answering)
        if answering.cancelled_caught:
            await _cut_off(send, started)


async def _cut_off(send: Send, started: bool) -> None:
    """Promise a body, then end it at once: h11 refuses to finish the message and
    hypercorn closes the connection, which is what the client must see."""
    if not started:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]})
    with contextlib.suppress(Exception):
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _running_trio() -> bool:
    try:
        import sniffio
    except ImportError:
        return False  # trio depends on sniffio: without it, this is asyncio
    return sniffio.current_async_library() == "trio"


@contextlib.asynccontextmanager
async def serve_app(app: AsgiApp, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve `app` on `host:port` until the block exits; yields `http://host:port`."""
    try:
        from hypercorn.config import Config
        from hypercorn.utils import wrap_app
    except ImportError as exc:
        raise ModuleNotFoundError(
            'FakeGitHub.serve() needs hypercorn: pip install "actions-scaleset[testing]" '
            '(from a checkout: pip install "./[testing]")',
            name=exc.name,
        ) from exc

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.graceful_timeout = 0.5
    config.errorlog = logger
    sockets = config.create_sockets()
    for sock in sockets.insecure_sockets:
        sock.listen(config.backlog)
    bound = sockets.insecure_sockets[0].getsockname()
    worker_serve: Any
    if _running_trio():
        from hypercorn.trio.run import worker_serve
    else:
        from hypercorn.asyncio.run import worker_serve
    shutdown = anyio.Event()
    adapter = _TcpAdapter(app)
    wrapped = wrap_app(cast(Any, adapter), config.wsgi_max_body_size, "asgi")
    # Shielded from the block's cancellation; stopped by `shutdown`, or cancelled after a deadline.
    server_scope = anyio.CancelScope(shield=True)

    async def run_server(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with server_scope:
            task_status.started()
            await worker_serve(wrapped, config, sockets=sockets, shutdown_trigger=shutdown.wait)

    error: Exception | None = None
    try:
        async with anyio.create_task_group() as group:
            await group.start(run_server)
            try:
                yield f"http://{bound[0]}:{bound[1]}"
            except Exception as exc:  # noqa: BLE001 - re-raised below, once the server stopped
                error = exc
            finally:
                adapter.stop()
                shutdown.set()
                server_scope.deadline = anyio.current_time() + config.graceful_timeout + _STOP_MARGIN
    except Exception:
        if error is None:
            raise
        logger.warning("the fake's server failed while the block raised", exc_info=True)
    finally:
        for sock in sockets.insecure_sockets:
            sock.close()
    if error is not None:
        raise error
