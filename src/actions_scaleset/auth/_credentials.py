"""GitHub credentials: a personal access token or a GitHub App (docs/protocol.md, "The GitHub App token")."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from .._http import REST_RETRY, HTTPCore, decode_model
from .._secret import Secret
from ..config import GitHubConfig
from ..errors import ConfigurationError, InvalidPrivateKeyError
from ..models import Installation, InstallationToken
from ._cache import TokenCache
from ._secret_auth import BearerAuth, host_of

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

__all__ = ["Credentials", "GitHubApp", "PersonalAccessToken", "as_credentials"]

logger = logging.getLogger("actions_scaleset.auth")

APP_JWT_BACKDATE: Final = 60.0
"""`iat` is set this far in the past, for clock skew (docs/protocol.md, "The GitHub App token")."""
APP_JWT_LIFETIME: Final = 540.0
"""`exp = iat + 9 min`: under GitHub's 10-minute maximum."""
INSTALLATION_TOKEN_MARGIN: Final = 300.0
"""Installation tokens are replaced 5 minutes before `expires_at`."""
INSTALLATION_TOKEN_ASSUMED_LIFETIME: Final = 3600.0
GITHUB_JSON: Final = "application/vnd.github+json"


@runtime_checkable
class Credentials(Protocol):
    """What `GitHubClient` needs from a credential: an `httpx.Auth` for one config's REST host."""

    def bind(self, config: GitHubConfig, http: HTTPCore) -> BearerAuth: ...


def as_credentials(auth: Credentials | str | Secret) -> Credentials:
    """`auth` as credentials: a `str` (or `Secret`) is a personal access token, as githubkit takes it.

    `ScaleSetClient` and `GitHubClient` call this on their `auth=`. Anything else that is
    not a credential (None, bytes, a number) is a `TypeError` saying what is accepted.
    """
    if isinstance(auth, str | Secret):
        return PersonalAccessToken(auth)
    if isinstance(auth, Credentials):
        return auth
    raise TypeError(
        f"auth must be a PersonalAccessToken, a GitHubApp, or a token as a str, not {type(auth).__name__}"
    )


class PersonalAccessToken:
    """A classic or fine-grained personal access token, sent as `Bearer` (docs/protocol.md,
    "From your credentials to the admin token")."""

    __slots__ = ("_token",)

    def __init__(self, token: str | Secret) -> None:
        if token is not None and not isinstance(token, str | Secret):
            raise TypeError(f"a personal access token is a str or a Secret, not {type(token).__name__}")
        if token is None or not Secret(token).get_secret_value().strip():
            # never echo what was given: a stray value may still be someone's secret
            raise ConfigurationError(
                "the personal access token is empty: if it comes from the environment, is GITHUB_TOKEN set?"
            )
        self._token = Secret(token)

    def __repr__(self) -> str:
        return "PersonalAccessToken(Secret('**********'))"

    @property
    def token(self) -> Secret:
        return self._token

    def bind(self, config: GitHubConfig, http: HTTPCore) -> BearerAuth:
        return BearerAuth.fixed(config.api_url, self._token, kind="GitHub token")


class GitHubApp:
    """A GitHub App installation.

    `client_id` (or the numeric `app_id`) identifies the App; `installation_id` is
    looked up from the config URL when not given. `private_key` is the App's PEM
    RSA key (PKCS#1 or PKCS#8) and is checked here: a bad key raises
    `InvalidPrivateKeyError` now, not at the first request.
    """

    def __init__(
        self,
        *,
        client_id: str | None = None,
        app_id: int | str | None = None,
        installation_id: int | None = None,
        private_key: str | bytes | Secret,
    ) -> None:
        if (client_id is None) == (app_id is None):
            raise ConfigurationError("give exactly one of client_id= or app_id= for a GitHubApp")
        if client_id is not None:
            if not isinstance(client_id, str):
                raise TypeError(f"client_id must be a str such as 'Iv1.0123', not {type(client_id).__name__}")
            issuer = client_id.strip()
            if not issuer:
                raise ConfigurationError("the GitHub App client_id is empty")
        else:
            issuer = str(_positive_id("app_id", app_id, digits_ok=True))
        self.issuer = issuer
        if installation_id is not None:
            installation_id = _positive_id("installation_id", installation_id)
        self.installation_id = installation_id
        self._key = load_rsa_private_key(private_key)

    def __repr__(self) -> str:
        return f"GitHubApp(issuer={self.issuer!r}, installation_id={self.installation_id!r})"

    def app_jwt(self, *, now: float) -> Secret:
        """An App JWT: RS256, `iat` = now - 60 s, `exp` = iat + 9 min, a random `jti`.

        The `jti` keeps tokens minted in the same second by concurrent workers
        distinct (GitHub rejects byte-identical JWTs as replays).
        """
        import jwt

        iat = int(now - APP_JWT_BACKDATE)
        claims = {
            "iat": iat,
            "exp": iat + int(APP_JWT_LIFETIME),
            "iss": self.issuer,
            "jti": secrets.token_hex(16),
        }
        return Secret(jwt.encode(claims, self._key, algorithm="RS256"))

    def jwt_headers(self, *, now: float) -> dict[str, str]:
        """Headers for the calls made as the App itself (installation lookup and tokens)."""
        token = self.app_jwt(now=now).get_secret_value()
        return {"Authorization": f"Bearer {token}", "Accept": GITHUB_JSON}

    def bind(self, config: GitHubConfig, http: HTTPCore) -> BearerAuth:
        return _InstallationTokens(self, config, http).auth


def _positive_id(argument: str, value: object, *, digits_ok: bool = False) -> int:
    """`value` as a GitHub id: a positive int (or, with `digits_ok`, a str of digits); never a bool."""
    if digits_ok and isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            raise ConfigurationError(
                f"{argument} must be a positive integer; a client ID (such as 'Iv1.0123…') goes in client_id="
            )
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument} must be a positive int, not {type(value).__name__}")
    if value <= 0:
        raise ConfigurationError(f"{argument} must be a positive integer, not {value}")
    return value


class _InstallationTokens:
    """The installation token for one App on one config: looked up, cached, refreshed."""

    def __init__(self, app: GitHubApp, config: GitHubConfig, http: HTTPCore) -> None:
        self.app = app
        self.config = config
        self.http = http
        self.installation_id = app.installation_id
        self.cache: TokenCache[Secret] = TokenCache(
            self._fetch, clock=http.clock, refresh_margin=INSTALLATION_TOKEN_MARGIN
        )
        self.auth = BearerAuth(
            host_of(config.api_url), self.cache.get, refresh=self.cache.refresh, kind="installation token"
        )

    def _jwt_headers(self) -> dict[str, str]:
        return self.app.jwt_headers(now=self.http.clock())

    async def _installation(self) -> int:
        if self.installation_id is None:
            url = self.config.api(self.config.installation_path)
            response = await self.http.request("GET", url, policy=REST_RETRY, headers=self._jwt_headers())
            self.installation_id = decode_model(response, Installation, "an installation").id
            logger.info("found GitHub App installation %d for %s", self.installation_id, self.config.name)
        return self.installation_id

    async def _fetch(self) -> tuple[Secret, float | None]:
        installation = await self._installation()
        url = self.config.api(f"/app/installations/{installation}/access_tokens")
        # `Content-Type` as `actions/scaleset` `fetchAccessToken` sends it (the body is empty)
        headers = {**self._jwt_headers(), "Content-Type": GITHUB_JSON}
        response = await self.http.request("POST", url, policy=REST_RETRY, headers=headers, expect=(201, 200))
        minted = decode_model(response, InstallationToken, "an installation access token")
        if minted.expires_at is not None:
            expires_at = minted.expires_at.timestamp()
        else:
            expires_at = self.http.clock() + INSTALLATION_TOKEN_ASSUMED_LIFETIME
        logger.debug("minted an installation token for installation %d", installation)
        return minted.token, expires_at


def load_rsa_private_key(pem: str | bytes | Secret) -> RSAPrivateKey:
    """Load a PEM RSA private key (PKCS#1 or PKCS#8); `InvalidPrivateKeyError` otherwise."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if isinstance(pem, Secret):
        pem = pem.get_secret_value()
    if isinstance(pem, str):
        pem = pem.strip().replace("\\n", "\n").encode()
    if not isinstance(pem, bytes) or b"-----BEGIN" not in pem:
        raise InvalidPrivateKeyError(
            "the GitHub App private key is not PEM: expected text starting with "
            "'-----BEGIN RSA PRIVATE KEY-----' or '-----BEGIN PRIVATE KEY-----'"
        )
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise InvalidPrivateKeyError(
            "the GitHub App private key could not be loaded: it must be an unencrypted "
            "PEM RSA private key (PKCS#1 or PKCS#8), as downloaded from the App's settings"
        ) from None
    except Exception:  # noqa: BLE001 - cryptography raises backend-specific errors for garbage
        raise InvalidPrivateKeyError("the GitHub App private key could not be loaded") from None
    if not isinstance(key, RSAPrivateKey):
        raise InvalidPrivateKeyError(
            f"the GitHub App private key is a {type(key).__name__.removeprefix('_')}, not an RSA key"
        )
    return key
