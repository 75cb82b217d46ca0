"""GitHub config URLs: scope, names and the REST API base (docs/protocol.md,
"Credentials and where they go"). Pure."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote, unquote, urlsplit

import attrs

from ._redact import redact_url
from .errors import InvalidConfigURLError

__all__ = ["GitHubConfig", "Scope"]

FORCE_GHES_ENV: Final = "GITHUB_ACTIONS_FORCE_GHES"
_HOSTED_NAMES: Final = frozenset({"github.com", "www.github.com", "github.localhost"})
_HOSTED_SUFFIX: Final = ".ghe.com"
_EXAMPLES: Final = (
    "a valid config URL points to an organization (https://github.com/my-org), "
    "a repository (https://github.com/my-org/my-repo) "
    "or an enterprise (https://github.com/enterprises/my-enterprise); "
    "on GitHub Enterprise Server use your server's host instead of github.com"
)


class Scope(enum.StrEnum):
    ENTERPRISE = "enterprise"
    ORGANIZATION = "organization"
    REPOSITORY = "repository"


@attrs.frozen
class GitHubConfig:
    """Where runners register: an enterprise, an organization or a repository.

    Build it with `GitHubConfig.parse(url)`.
    """

    config_url: str
    """The URL as given, trimmed of `/` (an org page, `/orgs/NAME`, becomes `/NAME`): sent as
    `url` to `actions/runner-registration`."""
    scheme: str
    host: str
    """Host with its port, if any (`github.com:443` is not treated as github.com)."""
    scope: Scope
    enterprise: str | None = None
    organization: str | None = None
    repository: str | None = None
    is_hosted: bool = True

    @classmethod
    def parse(cls, url: str, *, env: Mapping[str, str] | None = None) -> GitHubConfig:
        """Parse a config URL such as `https://github.com/my-org`.

        An org page URL, `https://github.com/orgs/my-org`, is that organization. `env`
        defaults to `os.environ`; `GITHUB_ACTIONS_FORCE_GHES` set to any value (even
        empty) treats the host as GitHub Enterprise Server.
        Raises `InvalidConfigURLError` for anything else, a query or a fragment included:
        the message never shows them, nor user info, as a token pasted there must not leak.
        """
        if not isinstance(url, str):
            raise InvalidConfigURLError(f"config URL must be a str, not {type(url).__name__}; {_EXAMPLES}")
        shown = redact_url(_before_query(url.strip()))
        trimmed = url.strip().strip("/")
        try:
            parts = urlsplit(trimmed)
            hostname = parts.hostname
            _ = parts.port  # validates the port
        except ValueError as exc:
            raise InvalidConfigURLError(f"invalid config URL {shown!r} ({exc}); {_EXAMPLES}") from None
        if parts.scheme.lower() not in ("http", "https") or not hostname:
            raise InvalidConfigURLError(
                f"invalid config URL {shown!r}: it needs an http:// or https:// scheme "
                f"and a host; {_EXAMPLES}"
            )
        if parts.username is not None or parts.password is not None:
            raise InvalidConfigURLError(
                f"invalid config URL {shown!r}: credentials in the URL are not allowed, "
                f"pass them as auth=...; {_EXAMPLES}"
            )
        if _before_query(trimmed) != trimmed:
            raise InvalidConfigURLError(
                f"invalid config URL {shown!r}: it has a query or a fragment (not shown), which a config "
                f"URL never has; {_EXAMPLES}"
            )
        problem = _url_problem(trimmed)
        if problem is not None:
            raise InvalidConfigURLError(f"invalid config URL {shown!r}: {problem}; {_EXAMPLES}")
        host = parts.netloc.lower()
        segments = [unquote(s) for s in parts.path.strip("/").split("/")] if parts.path.strip("/") else []
        if any(not s for s in segments):
            segments = []  # an empty segment ("org//repo") is never a valid path
        environ = os.environ if env is None else env
        hosted = FORCE_GHES_ENV not in environ and is_hosted_host(host)
        enterprise = organization = repository = None
        if len(segments) == 2 and segments[0].lower() == "orgs":  # the org page, github.com/orgs/NAME
            segments = segments[1:]
            trimmed = f"{parts.scheme}://{parts.netloc}/{parts.path.strip('/').split('/')[1]}"
        if len(segments) == 1:
            scope, organization = Scope.ORGANIZATION, segments[0]
        elif len(segments) == 2 and segments[0].lower() == "enterprises":
            scope, enterprise = Scope.ENTERPRISE, segments[1]
        elif len(segments) == 2:
            scope, organization, repository = Scope.REPOSITORY, segments[0], segments[1]
        else:
            raise InvalidConfigURLError(
                f"invalid config URL {shown!r}: should point to an enterprise, org, "
                f"or repository; {_EXAMPLES}"
            )
        return cls(
            config_url=trimmed,
            scheme=parts.scheme.lower(),
            host=host,
            scope=scope,
            enterprise=enterprise,
            organization=organization,
            repository=repository,
            is_hosted=hosted,
        )

    @property
    def api_url(self) -> str:
        """The REST API base, without a trailing slash."""
        if self.is_hosted:
            host = self.host
            if host == "www.github.com":
                host = "github.com"
            return f"{self.scheme}://api.{host}"
        return f"{self.scheme}://{self.host}/api/v3"

    def api(self, path: str) -> str:
        """The absolute REST URL for `path` (which starts with `/`)."""
        return self.api_url + ("" if path.startswith("/") else "/") + path

    @property
    def scope_path(self) -> str:
        """`/orgs/{org}`, `/repos/{owner}/{repo}` or `/enterprises/{enterprise}`, escaped."""
        if self.scope is Scope.ENTERPRISE:
            return f"/enterprises/{_seg(self.enterprise)}"
        if self.scope is Scope.REPOSITORY:
            return f"/repos/{_seg(self.organization)}/{_seg(self.repository)}"
        return f"/orgs/{_seg(self.organization)}"

    @property
    def registration_token_path(self) -> str:
        return f"{self.scope_path}/actions/runners/registration-token"

    @property
    def remove_token_path(self) -> str:
        return f"{self.scope_path}/actions/runners/remove-token"

    @property
    def installation_path(self) -> str:
        """Where a GitHub App finds its installation for this scope."""
        return f"{self.scope_path}/installation"

    @property
    def name(self) -> str:
        """`my-org`, `my-org/my-repo` or `enterprises/my-enterprise`: for logs and metrics."""
        if self.scope is Scope.ENTERPRISE:
            return f"enterprises/{self.enterprise}"
        if self.scope is Scope.REPOSITORY:
            return f"{self.organization}/{self.repository}"
        return str(self.organization)


def is_hosted_host(host: str) -> bool:
    """github.com, www.github.com, github.localhost and `*.ghe.com` (any case; port counts)."""
    host = host.lower()
    return host in _HOSTED_NAMES or (host.endswith(_HOSTED_SUFFIX) and len(host) > len(_HOSTED_SUFFIX))


def _before_query(url: str) -> str:
    """`url` without its query and fragment, which are never shown: a token may be pasted there."""
    return url.split("?", 1)[0].split("#", 1)[0]


def _url_problem(url: str) -> str | None:
    # The check every request's URL meets; imported here, as importing the package must not
    # load the client layers.
    from ._http import url_problem

    return url_problem(url)


def _seg(value: str | None) -> str:
    return quote(value or "", safe="")
