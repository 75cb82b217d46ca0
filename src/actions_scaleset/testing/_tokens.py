"""Every credential the fake hands out, and how it checks them.

Opaque tokens (PAT, installation, registration, remove) live in a table; service
tokens (admin, message queue, runner OAuth, job) are HS256 JWTs with `exp`,
`iat`, `nbf`, a `kind`, and `aud` = the origin they were minted on, so a token
sent to another host, of another class, expired by the clock, or revoked by
`expire(kind)` is refused. Times come from the injected clock.
"""

from __future__ import annotations

import enum
import secrets
import string
import uuid
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

import attrs

__all__ = ["OpaqueToken", "TokenInfo", "TokenKind", "TokenProblem", "Tokens"]

_ISSUER: Final = "fake-github"


class TokenKind(enum.StrEnum):
    """The class of a credential, as `fake.requests` records it."""

    PAT = "pat"
    APP_JWT = "app_jwt"
    INSTALLATION = "installation"
    REGISTRATION = "registration"
    REMOVE = "remove"
    ADMIN = "admin"
    MESSAGE_QUEUE = "message_queue"
    RUNNER = "runner"
    JOB = "job"
    CLIENT_ASSERTION = "client_assertion"
    UNKNOWN = "unknown"


_JWT_KINDS: Final = frozenset({TokenKind.ADMIN, TokenKind.MESSAGE_QUEUE, TokenKind.RUNNER, TokenKind.JOB})


@attrs.frozen
class TokenInfo:
    """A token that passed every check."""

    kind: TokenKind
    claims: Mapping[str, Any]


@attrs.frozen
class TokenProblem:
    """Why a token was refused; `kind` is what it turned out to be, if known."""

    reason: str
    kind: TokenKind


@attrs.define
class OpaqueToken:
    kind: TokenKind
    seq: int
    expires_at: float | None
    origin: str | None
    data: dict[str, Any]


class Tokens:
    """Mints and verifies the fake's tokens."""

    def __init__(self, clock: Callable[[], float], lifetimes: Mapping[TokenKind, float]) -> None:
        self._clock = clock
        self._lifetimes = dict(lifetimes)
        self._secret = secrets.token_hex(32)
        self._seq = 0
        self._valid_from: dict[TokenKind, int] = {}
        self._opaque: dict[str, OpaqueToken] = {}

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def lifetime(self, kind: TokenKind) -> float:
        return self._lifetimes.get(kind, 3600.0)

    # ------------------------------------------------------------------ minting

    def mint_opaque(
        self,
        kind: TokenKind,
        *,
        origin: str | None,
        data: Mapping[str, Any] | None = None,
        value: str | None = None,
    ) -> tuple[str, float | None]:
        """A table-backed token; returns it and its expiry (None: never)."""
        expires = None if kind is TokenKind.PAT else self._clock() + self.lifetime(kind)
        token = value or _opaque_value(kind)
        self._opaque[token] = OpaqueToken(kind, self._next_seq(), expires, origin, dict(data or {}))
        return token, expires

    def mint_jwt(self, kind: TokenKind, *, origin: str, claims: Mapping[str, Any]) -> tuple[str, float]:
        """An HS256 JWT for `origin`; returns it and its `exp`."""
        import jwt

        now = int(self._clock())
        exp = now + int(self.lifetime(kind))
        payload = {
            **claims,
            "iss": _ISSUER,
            "aud": origin,
            "kind": str(kind),
            "seq": self._next_seq(),
            "jti": str(uuid.uuid4()),
            "iat": now,
            "nbf": now,
            "exp": exp,
        }
        return jwt.encode(payload, self._secret, algorithm="HS256"), float(exp)

    def expire(self, kind: TokenKind | None = None) -> None:
        """Every token of `kind` minted so far is refused from now on (None: every kind but the PAT)."""
        kinds = [k for k in TokenKind if k is not TokenKind.PAT] if kind is None else [kind]
        for each in kinds:
            self._valid_from[each] = self._seq + 1

    # ------------------------------------------------------------------ checking

    def classify(self, token: str) -> TokenKind:
        """What a presented token is, without judging it (for the request log)."""
        record = self._opaque.get(token)
        if record is not None:
            return record.kind
        claims = _unverified_claims(token)
        if claims is None:
            return TokenKind.UNKNOWN
        kind = claims.get("kind")
        if claims.get("iss") == _ISSUER and isinstance(kind, str) and kind in TokenKind._value2member_map_:
            return TokenKind(kind)
        if "aud" in claims and "sub" in claims:
            return TokenKind.CLIENT_ASSERTION
        return TokenKind.APP_JWT

    def verify(self, token: str, kinds: Collection[TokenKind], origin: str) -> TokenInfo | TokenProblem:
        """Check a presented token against the classes a route accepts and the origin it came to."""
        kind = self.classify(token)
        if kind not in kinds:
            wanted = " or ".join(sorted(str(k) for k in kinds))
            return TokenProblem(f"a {kind} token is not accepted here (expected {wanted})", kind)
        if kind in _JWT_KINDS:
            return self._verify_jwt(token, kind, origin)
        record = self._opaque[token]
        if record.seq < self._valid_from.get(kind, 0):
            return TokenProblem(f"the {kind} token was revoked", kind)
        if record.expires_at is not None and self._clock() >= record.expires_at:
            return TokenProblem(f"the {kind} token has expired", kind)
        if record.origin is not None and record.origin != origin:
            return TokenProblem(f"the {kind} token was issued for another host", kind)
        return TokenInfo(kind, record.data)

    def _verify_jwt(self, token: str, kind: TokenKind, origin: str) -> TokenInfo | TokenProblem:
        import jwt

        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False},
            )
        except jwt.PyJWTError:
            return TokenProblem(f"the {kind} token signature is invalid", kind)
        if int(claims.get("seq", 0)) < self._valid_from.get(kind, 0):
            return TokenProblem(f"the {kind} token was revoked", kind)
        if self._clock() >= float(claims.get("exp", 0)):
            return TokenProblem(f"the {kind} token has expired", kind)
        if claims.get("aud") != origin:
            return TokenProblem(f"the {kind} token was issued for another host", kind)
        return TokenInfo(kind, claims)


def _opaque_value(kind: TokenKind) -> str:
    if kind is TokenKind.PAT:
        return "ghp_" + _random(string.ascii_letters + string.digits, 36)
    if kind is TokenKind.INSTALLATION:
        return "ghs_" + _random(string.ascii_letters + string.digits, 36)
    # registration / remove tokens: 29 upper-case letters and digits, as GitHub's
    return _random(string.ascii_uppercase + string.digits, 29)


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _unverified_claims(token: str) -> dict[str, Any] | None:
    import jwt

    if token.count(".") != 2:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None
