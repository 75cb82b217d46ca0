"""What every route shares: the state, the token mint, the GitHub App, blobs, a waker."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import attrs

from ._model import ScopeKey, Settings
from ._state import State
from ._tokens import TokenKind, Tokens

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

__all__ = ["Core", "FakeApp", "Waker"]


class Waker:
    """Wakes long polls when the state changes; each waiter makes its own event."""

    def __init__(self) -> None:
        self._events: set[anyio.Event] = set()

    def wake(self) -> None:
        events, self._events = self._events, set()
        for event in events:
            event.set()

    async def wait(self, timeout: float) -> None:
        event = anyio.Event()
        self._events.add(event)
        try:
            with anyio.move_on_after(max(0.0, timeout)):
                await event.wait()
        finally:
            self._events.discard(event)


@attrs.define
class FakeApp:
    """The one GitHub App the fake knows; installed on every organization and enterprise."""

    app_id: int = 424242
    client_id: str = "Iv1.fakegithubapp00"
    slug: str = "fake-scaleset-app"
    _key: RSAPrivateKey | None = None
    installations: dict[ScopeKey, int] = attrs.field(factory=dict)

    @property
    def key(self) -> RSAPrivateKey:
        if self._key is None:
            from ._jit import new_rsa_key

            self._key = new_rsa_key(2048)
        return self._key

    def private_key_pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()

    def installation(self, key: ScopeKey) -> int:
        """The installation on an organization (repositories share their owner's)."""
        owner: ScopeKey = ("org", key[1].partition("/")[0]) if key[0] == "repo" else key
        if owner not in self.installations:
            self.installations[owner] = 51_000_000 + len(self.installations) + 1
        return self.installations[owner]

    def account_of(self, installation_id: int) -> ScopeKey | None:
        return next((k for k, v in self.installations.items() if v == installation_id), None)


class Core:
    def __init__(self, settings: Settings, clock: Callable[[], float], seed: int | None) -> None:
        self.settings = settings
        self.clock = clock
        self.state = State(settings, clock, seed)
        self.tokens = Tokens(
            clock,
            {
                TokenKind.ADMIN: settings.admin_token_lifetime,
                TokenKind.MESSAGE_QUEUE: settings.message_queue_token_lifetime,
                TokenKind.RUNNER: settings.runner_token_lifetime,
                TokenKind.JOB: settings.job_token_lifetime,
                TokenKind.REGISTRATION: settings.registration_token_lifetime,
                TokenKind.REMOVE: settings.registration_token_lifetime,
                TokenKind.INSTALLATION: settings.installation_token_lifetime,
            },
        )
        self.pat, _ = self.tokens.mint_opaque(TokenKind.PAT, origin=None)
        self.app = FakeApp()
        self.blobs: dict[str, bytes] = {}
        self.signatures: dict[str, str] = {}
        self.waker = Waker()
        self.state.subscribe(self.waker.wake)
