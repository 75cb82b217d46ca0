"""What the provisioning API was asked to do: plain frozen values, checked once, built by `config.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import attrs

import actions_scaleset as asc

from ..listener.settings import ProvisionerSettings

__all__ = ["DEFAULT_LABELS", "EXIT_FAILED", "EXIT_USAGE", "ApiToken", "Settings", "UsageError"]

EXIT_USAGE: Final = 2
"""A mistake the user can fix: a flag, a variable, a token file, the state file."""
EXIT_FAILED: Final = 1

DEFAULT_LABELS: Final = ("self-hosted", "linux", "x64")
"""runnerctl's default labels."""


class UsageError(Exception):
    """A mistake the user can fix; its message is one line that says how. Exit code 2."""


@attrs.frozen
class ApiToken:
    """One Bearer token the API accepts; `name` is what logs and metrics show, never the token."""

    name: str
    token: asc.Secret = attrs.field(repr=False)


@attrs.frozen
class Settings:
    """Everything the API needs."""

    url: str
    """The organization, enterprise or repository whose scale sets serve requests without a `repo`."""
    credentials: asc.Credentials
    tokens: tuple[ApiToken, ...] = attrs.field(repr=False)
    state: Path = Path("provisioner-api.sqlite3")
    bind: tuple[str, int] = ("127.0.0.1", 8080)
    scale_set: str = "provisioner-api"
    """The default scale set's name, and the prefix of the names of scale sets made for other labels."""
    runner_group: str = "default"
    labels: tuple[str, ...] = DEFAULT_LABELS
    provisioner: ProvisionerSettings = ProvisionerSettings(kind="simulate")  # noqa: RUF009 - frozen
    max_runners: int = 10
    """Per scale set: the most jobs its listener acquires at once."""
    start_timeout: float = 120.0
    """How long `POST /api/v1/runners` waits for the runner to come online."""
    rate_limit: int = 120
    """Requests per minute per token (a bucket of as many, refilled evenly)."""
    max_body: int = 64 * 1024
    cors_origins: tuple[str, ...] = ()
    allowed_repos: tuple[str, ...] = ()
    """`owner/name` or `owner/*` patterns a `repo` must match; empty: any the credentials reach."""
    ca_file: Path | None = None
    log_level: str = "info"

    @property
    def logs_dir(self) -> Path:
        """Where each runner's output (and the API's lines about it) is kept: `<state>.logs/`."""
        return self.state.with_name(self.state.name + ".logs")
