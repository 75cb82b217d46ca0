"""GitHub REST payloads (snake_case on the wire) that the SDK reads."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import attrs

from .._html import html_table
from .._secret import Secret

__all__ = [
    "ActionsPermissions",
    "GitHubJitConfig",
    "GitHubRunner",
    "GitHubRunnerGroup",
    "GitHubRunnerLabel",
    "GitHubUser",
    "Installation",
    "InstallationToken",
    "Organization",
    "RegistrationToken",
]


@attrs.frozen
class RegistrationToken:
    """A runner registration (or remove) token; `expires_at` is about an hour out."""

    token: Secret
    expires_at: datetime | None = None


@attrs.frozen
class InstallationToken:
    token: Secret
    expires_at: datetime | None = None


@attrs.frozen
class Installation:
    id: int
    app_id: int | None = None
    app_slug: str | None = None
    target_type: str | None = None
    permissions: Mapping[str, str] = attrs.field(factory=dict)
    """What the installation was granted: `{"organization_self_hosted_runners": "write", ...}`."""


@attrs.frozen
class GitHubRunnerLabel:
    name: str
    id: int | None = None
    type: str | None = None


@attrs.frozen
class GitHubRunner:
    """A self-hosted runner as the REST API lists it."""

    id: int
    name: str
    os: str | None = None
    status: str | None = None
    busy: bool = False
    ephemeral: bool | None = None
    runner_group_id: int | None = None
    labels: tuple[GitHubRunnerLabel, ...] = ()

    def _repr_html_(self) -> str:
        return html_table(
            type(self).__name__,
            [
                ("id", self.id),
                ("name", self.name),
                ("os", self.os),
                ("status", self.status),
                ("busy", self.busy),
                ("ephemeral", self.ephemeral),
                ("runner_group_id", self.runner_group_id),
                ("labels", [label.name for label in self.labels]),
            ],
        )


@attrs.frozen
class GitHubRunnerGroup:
    id: int
    name: str
    visibility: str | None = None
    default: bool = False
    inherited: bool = False
    allows_public_repositories: bool = False
    restricted_to_workflows: bool = False


@attrs.frozen
class GitHubJitConfig:
    """`POST …/actions/runners/generate-jitconfig`: the runner and its single-use config."""

    runner: GitHubRunner
    encoded_jit_config: Secret


@attrs.frozen
class GitHubUser:
    login: str
    id: int
    type: str | None = None


@attrs.frozen
class Organization:
    login: str
    id: int
    name: str | None = None


@attrs.frozen
class ActionsPermissions:
    """`GET …/actions/permissions`: whether Actions may run, and which actions."""

    enabled_repositories: str | None = None
    enabled: bool | None = None
    allowed_actions: str | None = None
