"""What every command gets: the invocation, its output, the environment, and a client.

`Context.client()` builds the `ScaleSetClient` from the flags and the environment (usage
errors first), and remembers the config and credentials so an error can be explained for
the URL's scope. `find_scale_set` turns a name into a scale set, or a one-line error.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import attrs
import httpx

from .._http import RetryPolicy
from .._version import __version__
from ..actions import ScaleSetClient
from ..config import GitHubConfig
from ..models import RunnerScaleSet
from ._args import Invocation
from ._errors import PROG, CliError, UsageError
from ._output import Output
from ._settings import Login, config_from, login_from, ssl_context_from

__all__ = ["DEFAULT_GROUP_ID", "Context", "ScaleSetMissingError"]

DEFAULT_GROUP_ID: Final = 1
"""GitHub's default runner group is always id 1 (as `ScaleSetClient.ensure_scale_set` assumes)."""


class ScaleSetMissingError(CliError):
    """No scale set has the name given."""


@attrs.define
class Context:
    invocation: Invocation
    out: Output
    env: Mapping[str, str]
    http_client: httpx.AsyncClient | None = None
    """Given by tests (`FakeGitHub.http_client()`); otherwise the client makes its own."""
    retry: RetryPolicy | None = None
    """Given by tests: one retry policy for every call (`NO_RETRY` keeps failure tests fast)."""
    config: GitHubConfig | None = None
    login: Login | None = None

    @property
    def where(self) -> str:
        """`acme`, `acme/app` or `enterprises/big`, for messages."""
        return self.config.name if self.config is not None else "GitHub"

    def settings(self) -> tuple[GitHubConfig, Login]:
        """The config URL and credentials; `UsageError` when either cannot be used."""
        if self.config is None:
            self.config = config_from(self.invocation, self.env)
        if self.login is None:
            self.login = login_from(self.invocation, self.env)
        return self.config, self.login

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[ScaleSetClient]:
        config, login = self.settings()
        tls = ssl_context_from(self.invocation)
        http, owned = self.http_client, None
        if http is None and tls is not None:  # proxies still come from the environment
            http = owned = httpx.AsyncClient(
                verify=tls, trust_env=True, limits=httpx.Limits(max_connections=None)
            )
        policies: dict[str, Any] = {}
        if self.retry is not None:
            policies = {"retry": self.retry, "rest_retry": self.retry, "registration_retry": self.retry}
        try:
            async with ScaleSetClient(
                config,
                login.credentials,
                http_client=http,
                user_agent=f"{PROG}/{__version__}",
                **policies,
            ) as client:
                yield client
        finally:
            if owned is not None:
                await owned.aclose()

    async def runner_group_id(self, client: ScaleSetClient, group: str) -> int:
        if group.strip().casefold() in ("", "default"):
            return DEFAULT_GROUP_ID
        return (await client.get_runner_group(group.strip())).id

    async def find_scale_set(self, client: ScaleSetClient, name: str) -> RunnerScaleSet:
        """The scale set called `name`: in `--runner-group` when given, else in any group."""
        group = self.invocation.runner_group
        if group is not None:
            found = await client.get_scale_set(name, await self.runner_group_id(client, group))
            if found is None:
                raise ScaleSetMissingError(
                    f"no scale set named {name!r} in runner group {group!r} of {self.where}",
                    f"list them: {PROG} scale-sets list --runner-group {shlex.quote(group)}",
                )
            return found
        every = await client.list_scale_sets()
        matches = [s for s in every if s.name == name] or [
            s for s in every if s.name.casefold() == name.casefold()
        ]
        if not matches:
            raise ScaleSetMissingError(
                f"no scale set named {name!r} in {self.where}", f"list them: {PROG} scale-sets list"
            )
        if len(matches) > 1:
            groups = ", ".join(repr(s.runner_group_name or str(s.runner_group_id)) for s in matches)
            raise UsageError(
                f"{len(matches)} scale sets are named {name!r} in {self.where} (runner groups {groups})",
                "choose one with --runner-group GROUP",
            )
        return matches[0]
