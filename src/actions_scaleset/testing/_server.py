"""`serve()`: the fake on a loopback port with hypercorn, under asyncio or trio.

hypercorn is the `testing` extra and is imported only here. The socket is bound
before the server starts (port 0 picks a free one), so the URL is known at once.
A dropped-connection fault becomes a response cut off after its headers: the
client sees the connection close mid-response (`httpx.RemoteProtocolError`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any, cast

import anyio

from ._app import AsgiApp, Receive, Scope, Send
from ._http import ConnectionDropped

__all__ = ["serve_app"]

logger = logging.getLogger("actions_scaleset.testing")


class _TcpAdapter:
    """Cuts the response off when the app drops the connection."""

    def __init__(self, app: AsgiApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except ConnectionDropped:
            # Promise a body, then end it at once: h11 refuses to finish the message and
            # hypercorn closes the connection, which is what the client must see.
            start = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]}
            await send(start)
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
    wrapped = wrap_app(cast(Any, _TcpAdapter(app)), config.wsgi_max_body_size, "asgi")
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(
                partial(worker_serve, wrapped, config, sockets=sockets, shutdown_trigger=shutdown.wait)
            )
            try:
                yield f"http://{bound[0]}:{bound[1]}"
            finally:
                shutdown.set()
    finally:
        for sock in sockets.insecure_sockets:
            sock.close()
