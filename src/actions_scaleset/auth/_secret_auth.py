"""`BearerAuth`: an `httpx.Auth` that sends a token to one host only, refreshing once on 401."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator

import httpx

from .._secret import Secret
from ..errors import RequestError

__all__ = ["BearerAuth", "host_of"]

logger = logging.getLogger("actions_scaleset.auth")


def host_of(url: str | httpx.URL) -> str:
    """`host[:port]` in lower case, as compared for token binding (default ports dropped)."""
    # An httpx.URL (a request's) is parsed already: parsing it again is a cost on every request.
    parsed = url if isinstance(url, httpx.URL) else httpx.URL(str(url))
    return parsed.netloc.decode("ascii").lower().rpartition("@")[2]


class BearerAuth(httpx.Auth):
    """Adds `Authorization: <scheme> <token>` to requests for `host`, and to no other.

    `token` returns the current token; `refresh`, when given, is called with the
    token that got a 401 and returns a new one, and the request is sent once more.
    httpx drops the header itself when a redirect leaves the origin.
    """

    requires_request_body = True

    def __init__(
        self,
        host: str,
        token: Callable[[], Awaitable[Secret]],
        *,
        refresh: Callable[[Secret], Awaitable[Secret]] | None = None,
        scheme: str = "Bearer",
        kind: str = "token",
    ) -> None:
        self.host = host.lower()
        self._token = token
        self._refresh = refresh
        self._scheme = scheme
        self.kind = kind

    @classmethod
    def fixed(cls, url: str | httpx.URL, token: Secret, *, kind: str, scheme: str = "Bearer") -> BearerAuth:
        """A token that never changes, bound to the host of `url`."""

        async def current() -> Secret:
            return token

        return cls(host_of(url), current, scheme=scheme, kind=kind)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(host={self.host!r}, kind={self.kind!r})"

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        host = host_of(request.url)
        if host != self.host:
            raise RequestError(
                f"refusing to send the {self.kind} to {host!r}: it belongs to {self.host!r}",
                method=request.method,
                url=str(request.url),
            )
        token = await self._token()
        request.headers["Authorization"] = f"{self._scheme} {token.get_secret_value()}"
        response = yield request
        if response.status_code == 401 and self._refresh is not None:
            logger.debug("%s refused with 401; refreshing once", self.kind)
            token = await self._refresh(token)
            request.headers["Authorization"] = f"{self._scheme} {token.get_secret_value()}"
            yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("actions_scaleset is async only: use httpx.AsyncClient")
