"""Pure helpers that keep secrets out of URLs, log lines and error text."""

from __future__ import annotations

import functools
import re
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SENSITIVE_QUERY_KEYS: Final = frozenset(
    {
        "access_token",
        "token",
        "sig",
        "signature",
        "code",
        "client_secret",
        "client_assertion",
        "jitconfig",
        "password",
        "se",
        "sv",
        "skoid",
        "sktid",
    }
)
_REDACTED: Final = "REDACTED"


@functools.cache
def _secret_patterns() -> tuple[re.Pattern[str], ...]:
    """Compiled on first use, not at import (issue 16)."""
    return (
        # A JWT (three base64url parts, the first starting with a JSON object), GitHub
        # tokens (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_), and Authorization values.
        re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"),
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{8,}|github_pat_[A-Za-z0-9_]{20,})"),
        re.compile(r"(?i)\b(bearer|remoteauth|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
        # `Authorization: token <value>` (GitHub's older scheme): only a value that looks like one,
        # so prose such as "an OAuth token response" is left alone
        re.compile(r"(?i)\b(token)\s+(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{20,}"),
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
    )


def redact_url(url: str) -> str:
    """Drop user info and the values of query parameters that carry credentials."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{_REDACTED}@{netloc.rpartition('@')[2]}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(k, _REDACTED if k.lower() in _SENSITIVE_QUERY_KEYS else v) for k, v in pairs],
                safe="-",
            )
        return scrub_text(urlunsplit((parts.scheme, netloc, parts.path, query, "")))
    except ValueError:
        return "<unparseable URL>"


def scrub_text(text: str) -> str:
    """Replace anything that looks like a token or a private key with a marker."""
    for pattern in _secret_patterns():
        text = pattern.sub(_mask_match, text)
    return text


def _mask_match(match: re.Match[str]) -> str:
    if match.lastindex:  # "Bearer <token>": keep the scheme, hide the credential
        return f"{match.group(1)} {_REDACTED}"
    return _REDACTED
