"""The in-process httpx transport: the fake's ASGI app behind real httpx errors.

`httpx.ASGITransport` ignores timeouts and re-raises the app's exceptions; this
wrapper applies the request's read timeout (`httpx.ReadTimeout`) and turns a
dropped-connection fault into `httpx.RemoteProtocolError`, as a socket would.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx

from ._http import ConnectionDropped

__all__ = ["InProcessTransport"]


class InProcessTransport(httpx.AsyncBaseTransport):
    def __init__(self, app: Any) -> None:
        self._asgi = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout") or {}
        read_timeout = timeouts.get("read") if isinstance(timeouts, dict) else None
        try:
            with anyio.fail_after(read_timeout):
                return await self._asgi.handle_async_request(request)
        except TimeoutError:
            raise httpx.ReadTimeout("the fake did not answer in time", request=request) from None
        except ConnectionDropped:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None

    async def aclose(self) -> None:
        await self._asgi.aclose()
