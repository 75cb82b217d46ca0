"""The runner's OAuth token: client assertion, token request, cache (docs/protocol.md,
"The OAuth client assertion").

The assertion and the form are pure functions; `RunnerTokens` does the one POST,
caches the token with `TokenCache` (single flight), refreshes it on 401 and
shortly before it expires, and hands out an `httpx.Auth` bound to each host
the token may be sent to (broker, pipelines, run service).

There are two issuers when `.credentials` has `authorizationUrlV2`: broker and
run-service calls (`auth_for(url, v2=True)`) use it while auth migration is on,
and `authorizationUrl` otherwise; pipelines calls always use `authorizationUrl`
(actions/runner `OAuthCredential.GetVssCredentials`, see `_migration`).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import httpx

from .._http import HTTPCore, RetryPolicy, decode_json, invalid_response
from .._jwt import token_expiry
from .._secret import Secret
from ..auth import BearerAuth, TokenCache, host_of
from ..errors import HTTPStatusError, InvalidJitConfigError, OAuthError
from ._jitconfig import ACCESS_TOKEN_SCHEME, RunnerCredentials
from ._migration import AuthMigration

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

__all__ = [
    "ASSERTION_LIFETIME",
    "TOKEN_RETRY",
    "RunnerTokens",
    "build_client_assertion",
    "parse_token_response",
    "token_request_form",
]

logger = logging.getLogger("actions_scaleset.runner")

ASSERTION_LIFETIME: Final = 300
"""`exp - nbf`: the server's maximum is exactly 5:00, and `exp` is computed from `nbf` (docs/protocol.md,
"The OAuth client assertion")."""
TOKEN_REFRESH_MARGIN: Final = 60.0
"""The access token is replaced this long before it expires."""
CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLOCK_SKEW_MARKER: Final = "Current server time is"

TOKEN_RETRY: Final = RetryPolicy(
    max_attempts=6,
    initial_delay=10.0,
    max_delay=160.0,
    retry_statuses=frozenset({429, 500, 502, 503, 504}),
)
"""The token endpoint: 429 and 5xx retried 5 times, exponential from 10 s (docs/protocol.md,
"The OAuth client assertion")."""


def build_client_assertion(
    *,
    client_id: str,
    audience: str,
    private_key: RSAPrivateKey,
    now: float,
    fips: bool,
    jti: str | None = None,
) -> Secret:
    """The client-assertion JWT (docs/protocol.md, "The OAuth client assertion").

    PS256 (RSA-PSS/SHA-256, 32-byte salt) when `fips`, else RS256. Claims in the
    runner's order: `sub`, `jti`, `iss`, `aud`, `nbf`, `exp = nbf + 300`; no `iat`,
    no `kid`.
    """
    import jwt

    nbf = int(now)
    claims = {
        "sub": client_id,
        "jti": jti or str(uuid.uuid4()),
        "iss": client_id,
        "aud": audience,
        "nbf": nbf,
        "exp": nbf + ASSERTION_LIFETIME,
    }
    algorithm = "PS256" if fips else "RS256"
    return Secret(jwt.encode(claims, private_key, algorithm=algorithm, headers={"typ": "JWT"}))


def token_request_form(assertion: Secret) -> dict[str, str]:
    """The form body of the token request (docs/protocol.md, "The OAuth client assertion"). The URN is the
    assertion *type*."""
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion.get_secret_value(),
    }


def parse_token_response(payload: Any, *, now: float) -> tuple[Secret, float | None]:
    """The access token and when it expires (UNIX time; None when unknown).

    The earlier of `expires_in` and the token's own JWT `exp` wins. Raises
    `ValueError` saying what is missing (the caller adds the request ids).
    """
    if not isinstance(payload, Mapping):
        raise ValueError("the OAuth reply is not a JSON object")  # noqa: TRY004 - the caller maps ValueError
    token = payload.get("access_token")
    if not isinstance(token, str) or not token:
        raise ValueError("the OAuth reply has no `access_token`")
    expiries: list[float] = []
    expires_in = payload.get("expires_in")
    if isinstance(expires_in, str):
        try:
            expires_in = float(expires_in)
        except ValueError:
            expires_in = None
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and 0 < expires_in < math.inf:
        expiries.append(now + float(expires_in))
    exp = token_expiry(token)
    if exp is not None:
        expiries.append(exp)
    return Secret(token), min(expiries) if expiries else None


class RunnerTokens:
    """The runner's OAuth access tokens, fetched single-flight and cached, one per issuer.

    `auth_for(url)` is an `httpx.Auth` that sends the `authorizationUrl` token to
    that URL's host only and refreshes it once on a 401; `auth_for(url, v2=True)`
    sends the `authorizationUrlV2` token instead while `migration.allowed`.
    """

    def __init__(
        self,
        http: HTTPCore,
        credentials: RunnerCredentials,
        private_key: RSAPrivateKey | None,
        *,
        refresh_margin: float = TOKEN_REFRESH_MARGIN,
        retry: RetryPolicy = TOKEN_RETRY,
        migration: AuthMigration | None = None,
    ) -> None:
        if credentials.scheme != ACCESS_TOKEN_SCHEME and private_key is None:
            raise InvalidJitConfigError("the OAuth credential scheme needs the runner's private key")
        self.http = http
        self.credentials = credentials
        self.retry = retry
        oauth = credentials.scheme != ACCESS_TOKEN_SCHEME
        self.migration = migration or AuthMigration(
            oauth and credentials.enable_auth_migration_by_default, http.clock
        )
        self._key = private_key
        self._auths: dict[tuple[str, bool], BearerAuth] = {}
        self.cache: TokenCache[Secret] = TokenCache(
            self._fetch, clock=http.clock, refresh_margin=refresh_margin
        )
        self.cache_v2: TokenCache[Secret] | None = None
        if oauth and credentials.authorization_url_v2:
            self.cache_v2 = TokenCache(self._fetch_v2, clock=http.clock, refresh_margin=refresh_margin)

    def __repr__(self) -> str:
        return f"RunnerTokens(client_id={self.credentials.client_id!r}, migration={self.migration!r})"

    async def get(self) -> Secret:
        return await self.cache.get()

    async def refresh(self, stale: Secret | None = None) -> Secret:
        return await self.cache.refresh(stale)

    def invalidate(self) -> None:
        """Forget the tokens (on `ForceTokenRefresh`); the next requests fetch new ones."""
        self.cache.invalidate()
        if self.cache_v2 is not None:
            self.cache_v2.invalidate()

    def _broker_cache(self) -> TokenCache[Secret]:
        if self.cache_v2 is not None and self.migration.allowed:
            return self.cache_v2
        return self.cache

    async def _get_broker(self) -> Secret:
        return await self._broker_cache().get()

    async def _refresh_broker(self, stale: Secret) -> Secret:
        return await self._broker_cache().refresh(stale)

    def auth_for(self, url: str | httpx.URL, *, v2: bool = False) -> BearerAuth:
        """The token for `url`'s host; `v2` for broker and run-service calls (the migrating issuer)."""
        host = host_of(url)
        auth = self._auths.get((host, v2))
        if auth is None:
            if v2:
                auth = BearerAuth(
                    host, self._get_broker, refresh=self._refresh_broker, kind="runner OAuth token"
                )
            else:
                auth = BearerAuth(host, self.cache.get, refresh=self.cache.refresh, kind="runner OAuth token")
            self._auths[host, v2] = auth
        return auth

    async def _fetch(self) -> tuple[Secret, float | None]:
        credentials = self.credentials
        if credentials.scheme == ACCESS_TOKEN_SCHEME:
            assert credentials.access_token is not None  # checked when the config was decoded
            return credentials.access_token, None
        return await self._exchange(credentials.authorization_url, credentials.token_url)

    async def _fetch_v2(self) -> tuple[Secret, float | None]:
        credentials = self.credentials
        assert credentials.authorization_url_v2 is not None
        assert credentials.token_url_v2 is not None
        return await self._exchange(credentials.authorization_url_v2, credentials.token_url_v2)

    async def _exchange(self, audience: str, token_url: str) -> tuple[Secret, float | None]:
        """Sign an assertion for `audience` and POST it to `token_url` (docs/protocol.md,
        "The OAuth client assertion")."""
        credentials = self.credentials
        assert self._key is not None
        assertion = build_client_assertion(
            client_id=credentials.client_id,
            audience=audience,
            private_key=self._key,
            now=self.http.clock(),
            fips=credentials.require_fips_cryptography,
        )
        try:
            response = await self.http.request(
                "POST",
                token_url,
                policy=self.retry,
                headers={"Accept": "application/json"},
                data=token_request_form(assertion),
            )
        except OAuthError:
            raise
        except HTTPStatusError as exc:
            if exc.status_code >= 500:
                raise
            raise exc.as_error(
                OAuthError, f"the OAuth endpoint refused the runner's client assertion: {exc.message}"
            ) from None
        payload = decode_json(response, "an OAuth access-token reply")
        if (
            isinstance(payload, Mapping)
            and isinstance(payload.get("error"), str)
            and "access_token" not in payload
        ):
            description = payload.get("error_description")
            raise OAuthError(
                f"{description if isinstance(description, str) else payload['error']} "
                f"(OAuth {payload['error']})",
                error=payload["error"],
                error_description=description if isinstance(description, str) else None,
                method="POST",
                url=token_url,
                status_code=response.status_code,
                body=dict(payload),
            )
        try:
            token, expires_at = parse_token_response(payload, now=self.http.clock())
        except ValueError as exc:
            raise invalid_response(response, str(exc)) from None
        if expires_at is not None:
            logger.debug("got a runner OAuth token valid for %.0f s", expires_at - self.http.clock())
        else:
            logger.debug("got a runner OAuth token without a known expiry")
        return token, expires_at
