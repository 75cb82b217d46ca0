"""Reading a JWT's `exp` without verifying it: when to renew a token (docs/protocol.md, "The admin token").

The admin, message-queue and runner OAuth tokens are JWTs whose signature only their
issuer can check; the client needs nothing but their expiry. Pure, and below every
layer that caches a token, so none of them imports another for it.
"""

from __future__ import annotations

import base64
import binascii
import math

from ._json import load_json

__all__ = ["token_expiry"]


def token_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT as a UNIX time, read without verifying it; None when unreadable.

    Only the payload segment is decoded: the signature is never checked, so a token
    whose signature is not even valid base64 still yields its expiry.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = load_json(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):  # malformed, not UTF-8, or nested too deeply
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        return None
    return float(exp)
