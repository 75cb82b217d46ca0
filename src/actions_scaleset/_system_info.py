"""`SystemInfo`: who is calling the Actions service, sent as a JSON `User-Agent`.

GitHub tells scale-set implementations apart by this header. `actions/scaleset`
builds it from its `SystemInfo` plus `build_version`, `build_commit_sha` and
`kind: "scaleset"` (its `setUserAgent`); this SDK sends the same shape on every
Actions-service and message-queue call (docs/protocol.md, "User-Agent").
"""

from __future__ import annotations

import json

import attrs

from ._version import __version__

__all__ = ["SystemInfo"]


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"SystemInfo fields are strings, not {type(value).__name__}")
    return value


@attrs.frozen
class SystemInfo:
    """Names the program that uses the SDK, as GitHub asks scale-set clients to.

    `system` is your implementation's name (`"my-autoscaler"`), `version` and
    `commit_sha` its release, and `subsystem` the part that calls (`"listener"`,
    `"controller"`). The scale-set id is added per call once it is known.
    """

    system: str = attrs.field(default="actions-scaleset-python", converter=_text)
    version: str = attrs.field(default=__version__, converter=_text)
    commit_sha: str = attrs.field(default="", converter=_text)
    subsystem: str = attrs.field(default="client", converter=_text)

    def user_agent(self, scale_set_id: int = 0) -> str:
        """The compact JSON `User-Agent` for a call about `scale_set_id` (0 when none)."""
        return json.dumps(
            {
                "system": self.system,
                "version": self.version,
                "commit_sha": self.commit_sha,
                "scale_set_id": scale_set_id,
                "subsystem": self.subsystem,
                "build_version": __version__,
                "build_commit_sha": "",
                "kind": "scaleset",
            },
            separators=(",", ":"),
            ensure_ascii=True,
        )
