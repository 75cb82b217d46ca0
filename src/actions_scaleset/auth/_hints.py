"""What credentials need to register runners, by the config URL's scope: the hint for a 401 or 403.

GitHub documents these for self-hosted runners: an organization's need the classic
`admin:org` scope or the fine-grained "Self-hosted runners" permission, a repository's
`repo` or "Administration", an enterprise's `manage_runners:enterprise`, which no GitHub
App can have (docs/protocol.md, "From your credentials to the admin token").
"""

from __future__ import annotations

from typing import Final

from ..config import Scope

__all__ = ["credentials_hint"]

_ENTERPRISE_SCOPE_HINT: Final = "the token needs the manage_runners:enterprise scope"
_HINTS: Final[dict[tuple[Scope, bool | None], str]] = {
    (Scope.ORGANIZATION, False): "a classic token needs the admin:org scope, a fine-grained token "
    "the organization permission 'Self-hosted runners: read and write'",
    (Scope.ORGANIZATION, True): "the GitHub App needs the organization permission 'Self-hosted runners: "
    "read and write' and must be installed on the organization",
    (Scope.ORGANIZATION, None): "the token lacks the admin:org scope, or the App lacks "
    "'Self-hosted runners: write'",
    (Scope.REPOSITORY, False): "a classic token needs the repo scope, a fine-grained token the "
    "repository permission 'Administration: read and write'",
    (Scope.REPOSITORY, True): "the GitHub App needs the repository permission 'Administration: read and "
    "write' and must be installed on the repository",
    (Scope.REPOSITORY, None): "the token lacks the repo scope, or the App lacks 'Administration: read "
    "and write' on the repository",
    (Scope.ENTERPRISE, False): _ENTERPRISE_SCOPE_HINT,
    (Scope.ENTERPRISE, True): "a GitHub App cannot manage enterprise runners: use a classic token with "
    "the manage_runners:enterprise scope",
    (Scope.ENTERPRISE, None): _ENTERPRISE_SCOPE_HINT,
}


def credentials_hint(scope: Scope | None, *, app: bool | None) -> str:
    """What refused credentials need for `scope` (None: an organization). `app`: a GitHub App
    (True), a token (False), or unknown (None)."""
    return _HINTS[(scope or Scope.ORGANIZATION, app)]
