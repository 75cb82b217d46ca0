"""`ApiError`: every error the API answers with, as `{"error": {"code", "message"}}`.

Messages are one line and never carry a secret (a token, a JIT config); GitHub's errors
are cut to their first line, which the SDK keeps free of credentials.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ApiError", "body"]


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = " ".join(message.split())
        self.headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.code!r}, {self.message!r})"


def body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": " ".join(message.split())}}
