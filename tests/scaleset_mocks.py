"""respx routes for the registration exchange, shared by the scale-set and session tests."""

from __future__ import annotations

import jwt
import respx
from httpx import Response

API = "https://api.github.com"
ADMIN = "https://pipelines.actions.example/tenant-1/"
ADMIN_HOST = "pipelines.actions.example"
MQ = "https://broker.actions.example/scalesets/message"


def admin_jwt(exp: float, tag: str = "a") -> str:
    """A JWT like the admin token: only its unverified `exp` matters to the client (docs/protocol.md,
    "The admin token")."""
    return jwt.encode(
        {"exp": int(exp), "iat": int(exp) - 3600, "tag": tag},
        "not-verified-by-the-client-0123456789",
        algorithm="HS256",
    )


def mock_exchange(
    router: respx.MockRouter, *, exp: float, admin_url: str = ADMIN, org: str = "acme"
) -> tuple[respx.Route, respx.Route]:
    """Registration token and runner-registration routes answering with a fresh admin token each time."""
    tokens = iter(range(1, 1000))
    registration = router.post(f"{API}/orgs/{org}/actions/runners/registration-token").mock(
        side_effect=lambda request: Response(
            201, json={"token": f"REG{next(tokens)}", "expires_at": "2099-01-01T00:00:00Z"}
        )
    )
    admins = iter(range(1, 1000))
    exchange = router.post(f"{API}/actions/runner-registration").mock(
        side_effect=lambda request: Response(
            200, json={"url": admin_url, "token": admin_jwt(exp, f"t{next(admins)}")}
        )
    )
    return registration, exchange
