"""Runner credentials: real JIT config blobs, and the checks on signed JWTs.

A JIT blob is `base64(JSON {file name: base64(file bytes)})` holding `.runner`,
`.credentials` and `.credentials_rsaparams` (a fresh RSA key as .NET
`RSAParameters`: unsigned big-endian standard base64), as in docs/protocol.md, "JIT configs".
The OAuth client assertion rules are docs/protocol.md, "The OAuth client assertion"; the App JWT rules
are docs/protocol.md, "The GitHub App token" and GitHub's ten-minute limit.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

    from ._model import Runner

__all__ = [
    "ASSERTION_MAX_LIFETIME",
    "JwtRejected",
    "authorization_url_v2",
    "build_jit_config",
    "credentials_file",
    "encode_jit_config",
    "new_rsa_key",
    "rsa_parameters",
    "runner_file",
    "verify_app_jwt",
    "verify_client_assertion",
]

ASSERTION_MAX_LIFETIME: Final = 300
"""The token endpoint caps `exp - nbf` at exactly five minutes (docs/protocol.md,
"The OAuth client assertion")."""
APP_JWT_MAX_LIFETIME: Final = 600
CLOCK_SKEW: Final = 60

JitStyle = Literal["native", "string"]


class JwtRejected(Exception):
    """A signed JWT failed a check; the message says which, in the service's words."""


def new_rsa_key(key_size: int = 2048) -> RSAPrivateKey:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


def _b64(number: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (number.bit_length() + 7) // 8)
    return base64.b64encode(number.to_bytes(size, "big")).decode()


def rsa_parameters(key: RSAPrivateKey) -> dict[str, str]:
    """.NET `RSAParameters` as the runner serialises them (fixed-width, like .NET exports)."""
    numbers = key.private_numbers()
    full = (key.key_size + 7) // 8
    half = (full + 1) // 2
    return {
        "d": _b64(numbers.d, full),
        "dp": _b64(numbers.dmp1, half),
        "dq": _b64(numbers.dmq1, half),
        "exponent": _b64(numbers.public_numbers.e),
        "inverseQ": _b64(numbers.iqmp, half),
        "modulus": _b64(numbers.public_numbers.n, full),
        "p": _b64(numbers.p, half),
        "q": _b64(numbers.q, half),
    }


def _style(value: object, style: JitStyle) -> object:
    if style == "native" or value is None:
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def runner_file(
    *,
    agent_id: int,
    agent_name: str,
    pool_id: int,
    server_url: str,
    server_url_v2: str,
    github_url: str,
    work_folder: str,
    style: JitStyle,
) -> dict[str, Any]:
    """`.runner`: PascalCase; natives, or the string-typed values some server configs carry."""
    fields: dict[str, object] = {
        "AgentId": agent_id,
        "AgentName": agent_name,
        "PoolId": pool_id,
        "DisableUpdate": True,
        "Ephemeral": True,
        "ServerUrl": server_url,
        "WorkFolder": work_folder,
        "UseV2Flow": True,
        "ServerUrlV2": server_url_v2,
    }
    if style == "string":
        fields["PoolName"] = None
        fields["GitHubUrl"] = github_url
    return {key: _style(value, style) for key, value in fields.items()}


def credentials_file(*, client_id: str, authorization_url: str, style: JitStyle) -> dict[str, Any]:
    """`.credentials`: `Data` keys camelCase (native) or PascalCase (string style); both occur."""
    if style == "native":
        data = {
            "clientId": client_id,
            "authorizationUrl": authorization_url,
            "requireFipsCryptography": "False",
        }
    else:
        data = {
            "ClientId": client_id,
            "AuthorizationUrl": authorization_url,
            "RequireFipsCryptography": "False",
        }
    return {"Scheme": "OAuth", "Data": data}


def authorization_url_v2(authorization_url: str) -> str:
    """The runner's second token issuer (`authorizationUrlV2`) on the fake: `{authorizationUrl}/v2`.

    A test adds it to a runner's `.credentials` with `enableAuthMigrationByDefault`;
    the token endpoint then takes assertions for it too (docs/protocol.md, "Auth migration").
    """
    return authorization_url.rstrip("/") + "/v2"


def encode_jit_config(files: Mapping[str, Any]) -> str:
    """`base64(JSON {name: base64(JSON file)})`, standard base64 with padding at both levels."""
    outer = {
        name: base64.b64encode(json.dumps(content, separators=(",", ":")).encode()).decode()
        for name, content in files.items()
    }
    return base64.b64encode(json.dumps(outer, separators=(",", ":")).encode()).decode()


def build_jit_config(
    runner: Runner,
    key: RSAPrivateKey,
    *,
    server_url: str,
    server_url_v2: str,
    github_url: str,
    style: JitStyle,
) -> str:
    """The encoded JIT config of `runner`, whose private key is `key`."""
    files = {
        ".runner": runner_file(
            agent_id=runner.id,
            agent_name=runner.name,
            pool_id=runner.group_id,
            server_url=server_url,
            server_url_v2=server_url_v2,
            github_url=github_url,
            work_folder=runner.work_folder,
            style=style,
        ),
        ".credentials": credentials_file(
            client_id=runner.client_id, authorization_url=runner.authorization_url, style=style
        ),
        ".credentials_rsaparams": rsa_parameters(key),
    }
    return encode_jit_config(files)


def _decode_signed(
    token: str, key: RSAPublicKey, algorithms: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    import jwt

    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_sub": False,
                "verify_jti": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise JwtRejected(f"the JWT could not be verified: {exc}") from None
    return header, claims


def _int_claim(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise JwtRejected(f"the JWT has no integer '{name}' claim")
    return value


def _span(seconds: int) -> str:
    hours, rest = divmod(max(0, seconds), 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def verify_client_assertion(
    token: str, key: RSAPublicKey, *, client_id: str, audience: str, now: float
) -> dict[str, Any]:
    """The runner's client assertion: RS256 or PS256, `sub` = `iss` = client id, `aud` exact,
    `exp - nbf` at most 300 s, valid now."""
    _, claims = _decode_signed(token, key, ["RS256", "PS256"])
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise JwtRejected("the client assertion 'iss' and 'sub' must be the runner's client id")
    if claims.get("aud") != audience:
        raise JwtRejected(f"the client assertion audience must be {audience!r}")
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        raise JwtRejected("the client assertion has no 'jti'")
    nbf, exp = _int_claim(claims, "nbf"), _int_claim(claims, "exp")
    if exp - nbf > ASSERTION_MAX_LIFETIME:
        raise JwtRejected(
            f"Bearer token lifetime {_span(exp - nbf)} is greater than the allowed maximum lifetime "
            f"{_span(ASSERTION_MAX_LIFETIME)}"
        )
    if nbf > now + CLOCK_SKEW or exp <= now:
        raise JwtRejected(f"the client assertion is not valid now. Current server time is {int(now)}.")
    return claims


def verify_app_jwt(token: str, key: RSAPublicKey, *, issuers: set[str], now: float) -> dict[str, Any]:
    """A GitHub App JWT: RS256, `iss` = client id or app id, `iat`/`exp` within ten minutes."""
    header, claims = _decode_signed(token, key, ["RS256"])
    if header.get("alg") != "RS256":
        raise JwtRejected("'alg' must be RS256")
    if str(claims.get("iss")) not in issuers:
        raise JwtRejected("'Issuer' claim ('iss') must be the App's client ID or app ID")
    iat, exp = _int_claim(claims, "iat"), _int_claim(claims, "exp")
    if iat > now + CLOCK_SKEW:
        raise JwtRejected("'Issued at' claim ('iat') must be an Integer representing a time in the past")
    if exp - iat > APP_JWT_MAX_LIFETIME or exp > now + APP_JWT_MAX_LIFETIME:
        raise JwtRejected("'Expiration time' claim ('exp') is too far in the future")
    if exp <= now:
        raise JwtRejected(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time"
        )
    return claims
