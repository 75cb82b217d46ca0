"""Auth migration: whether broker and run-service calls use the `authorizationUrlV2` issuer.

The official runner turns migration on at start when `.credentials` has the
`enableAuthMigrationByDefault` key (actions/runner `Runner.cs` `ExecuteCommand`).
While it is on, broker and run-service connections get their token from
`authorizationUrlV2`; pipelines (v1) connections always use `authorizationUrl`
(`OAuthCredential.GetVssCredentials`). A failed session create, poll or job
acquisition turns it off for 60 minutes, after which it comes back on by itself
(`HostContext.DeferAuthMigration`, `AuthMigrationAuthReenableAsync`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

__all__ = ["MIGRATION_DEFERRAL", "AuthMigration"]

logger = logging.getLogger("actions_scaleset.runner")

MIGRATION_DEFERRAL: Final = 3600.0
"""A failure under migration turns it off for this long (`DeferAuthMigration(60 min)`)."""


class AuthMigration:
    """On from the start when `enabled`; `defer()` turns it off until `deferral` seconds have passed."""

    def __init__(self, enabled: bool, clock: Callable[[], float]) -> None:
        self.enabled = enabled
        self._clock = clock
        self._deferred_until: float | None = None

    def __repr__(self) -> str:
        return f"AuthMigration(enabled={self.enabled}, allowed={self.allowed})"

    @property
    def allowed(self) -> bool:
        """True while broker and run-service calls should use `authorizationUrlV2`."""
        if not self.enabled:
            return False
        return self._deferred_until is None or self._clock() >= self._deferred_until

    def defer(self, reason: str, seconds: float = MIGRATION_DEFERRAL) -> None:
        """Turn migration off for `seconds` (no-op when it is already off)."""
        if not self.allowed:
            return
        self._deferred_until = self._clock() + seconds
        logger.warning(
            "auth migration off for %.0f min (%s); broker calls use authorizationUrl meanwhile",
            seconds / 60,
            reason,
        )
