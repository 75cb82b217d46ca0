"""Bearer tokens: which named token a request presents, compared in constant time.

Every configured token is compared, whichever matches, so the time taken does not say
which one (or how much of one) was right. Tokens are `Secret`s: they never appear in a
repr, a log line or an error.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from .settings import ApiToken

__all__ = ["TokenChecker"]


class TokenChecker:
    """Finds the name of the token an `Authorization: Bearer ...` header carries."""

    def __init__(self, tokens: Sequence[ApiToken]) -> None:
        if not tokens:
            raise ValueError("the API needs at least one token")
        self._tokens = [(t.name, t.token.get_secret_value().encode()) for t in tokens]

    def __repr__(self) -> str:
        return f"TokenChecker({len(self._tokens)} tokens)"

    def check(self, authorization: str | None) -> str | None:
        """The token's name; None when the header is missing, not `Bearer`, or the token is unknown."""
        if not authorization:
            return None
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        given = presented.strip().encode("utf-8", "surrogateescape")
        found = None
        for name, token in self._tokens:
            if hmac.compare_digest(given, token) and found is None:
                found = name
        return found
