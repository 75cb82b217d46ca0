"""Where a request's runner goes: its scale set, and the client that reaches it.

- `repo: owner/name` puts the runner in a scale set of that repository (config URL
  `https://HOST/owner/name`, the host of `--url`), as runnerctl registered repository runners.
- `scale_set: NAME` puts it in that scale set of `--url` (or of `repo`, when both are given).
- Neither: the default scale set of `--url`.

Without `scale_set`, the name comes from the labels: `--scale-set` (default
`provisioner-api`) for the default labels, `--scale-set` + `-` + a short hash of the labels
for others, so every label set has its own scale set and `runs-on: [labels]` reaches it.
A scale set is created with the request's labels when missing, and used as it is when it
exists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextlib import AsyncExitStack
from urllib.parse import urlsplit, urlunsplit

import anyio
import attrs
import httpx

import actions_scaleset as asc

from .state import ScaleSetRecord

__all__ = ["MAX_CLIENTS", "ScaleSets", "Target", "repo_config_url", "scale_set_for_labels"]

MAX_CLIENTS = 1000
"""Distinct repositories served by one process (one client, one registration exchange each)."""


@attrs.frozen
class Target:
    config_url: str
    repository: str | None
    scale_set: str
    labels: tuple[str, ...]


def repo_config_url(base_url: str, repository: str) -> str:
    """The config URL of `repository` on the host of `base_url` (pure)."""
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{repository}", "", ""))


def scale_set_for_labels(prefix: str, labels: Sequence[str], default: Sequence[str]) -> str:
    """`prefix` for the default labels; `prefix-<8 hex digits>` for any other set (pure)."""
    wanted = sorted({label.lower() for label in labels})
    if wanted == sorted({label.lower() for label in default}):
        return prefix
    return f"{prefix}-{hashlib.sha256(','.join(wanted).encode()).hexdigest()[:8]}"


class ScaleSets:
    """One `ScaleSetClient` per config URL, and the scale sets made or found through them."""

    def __init__(
        self,
        credentials: asc.Credentials,
        runner_group: str,
        *,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.credentials = credentials
        self.runner_group = runner_group
        self.http_client = http_client
        self._clients: dict[str, asc.ScaleSetClient] = {}
        self._scale_sets: dict[tuple[str, str], ScaleSetRecord] = {}
        self._locks: dict[tuple[str, str], anyio.Lock] = {}
        self._stack = AsyncExitStack()

    def __repr__(self) -> str:
        return f"ScaleSets({len(self._clients)} clients, {len(self._scale_sets)} scale sets)"

    async def aclose(self) -> None:
        await self._stack.aclose()
        self._clients.clear()

    async def client(self, config_url: str) -> asc.ScaleSetClient:
        client = self._clients.get(config_url)
        if client is None:
            if len(self._clients) >= MAX_CLIENTS:
                raise asc.ConfigurationError(f"this API already serves {MAX_CLIENTS} scopes")
            client = asc.ScaleSetClient(config_url, auth=self.credentials, http_client=self.http_client)
            self._clients[config_url] = await self._stack.enter_async_context(client)
        return client

    def known(self, record: ScaleSetRecord) -> None:
        """A scale set recorded by an earlier run."""
        self._scale_sets[(record.config_url, record.name)] = record

    def cached(self, config_url: str, name: str) -> ScaleSetRecord | None:
        return self._scale_sets.get((config_url, name))

    async def ensure(self, target: Target) -> tuple[ScaleSetRecord, bool]:
        """The target's scale set, found or created; True when it is new to this process."""
        key = (target.config_url, target.scale_set)
        found = self._scale_sets.get(key)
        if found is not None:
            return found, False
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            found = self._scale_sets.get(key)
            if found is not None:
                return found, False
            client = await self.client(target.config_url)
            group = await client.get_runner_group(self.runner_group)
            scale_set = await client.get_scale_set(target.scale_set, group.id)
            if scale_set is None:
                scale_set = await client.create_scale_set(
                    target.scale_set, runner_group_id=group.id, labels=list(target.labels)
                )
            labels = tuple(label.name for label in scale_set.labels) or target.labels
            record = ScaleSetRecord(
                target.config_url, target.scale_set, scale_set.id, target.repository, labels
            )
            self._scale_sets[key] = record
            return record, True
