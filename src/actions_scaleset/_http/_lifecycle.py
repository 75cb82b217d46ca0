"""`async with` for the top-level clients, which may or may not own their `HTTPCore`."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from ._core import HTTPCore

__all__ = ["HTTPLifecycle"]


class HTTPLifecycle:
    """Use the client with `async with`, or call `aclose()`.

    Closing closes the HTTP core only when this client made it: a core (or an
    `httpx.AsyncClient`) passed in is the caller's to close.
    """

    http: HTTPCore
    _owns_http: bool

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()
