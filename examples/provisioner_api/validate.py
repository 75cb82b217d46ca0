"""What a request may name: runners, repositories, scale sets and labels, checked before anything uses them.

Each check is a pure function that returns the value or raises `Invalid` with a one-line
reason. The rules are GitHub's, narrowed where GitHub allows more than is safe to put in
a file name or a container argument: nothing that passes contains a path separator, a
leading dot or dash, whitespace or a shell metacharacter.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import Final

__all__ = [
    "MAX_LABELS",
    "Invalid",
    "labels",
    "repo_allowed",
    "repository",
    "runner_name",
    "scale_set_name",
]

MAX_LABELS: Final = 20
_RUNNER_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""GitHub takes up to 64 characters; a leading dot or dash, `/`, `\\` and spaces are refused here."""
_OWNER: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
"""A GitHub user or organization: 1-39 letters, digits and single inner hyphens."""
_REPO: Final = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_SCALE_SET: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_LABEL: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


class Invalid(ValueError):
    """A value a request gave that is not allowed; the message says what is allowed instead."""


def runner_name(value: str) -> str:
    if not isinstance(value, str) or not _RUNNER_NAME.fullmatch(value):
        raise Invalid(
            "a runner name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def repository(value: str) -> str:
    """`owner/name`, as GitHub allows them; `.`, `..` and a `.git` suffix are refused."""
    owner, _, name = value.partition("/") if isinstance(value, str) else ("", "", "")
    if (
        not _OWNER.fullmatch(owner)
        or not _REPO.fullmatch(name)
        or name in (".", "..")
        or name.lower().endswith(".git")
    ):
        raise Invalid("a repository is 'owner/name': letters, digits and '-' for the owner; '.', '_' too")
    return f"{owner}/{name}"


def scale_set_name(value: str) -> str:
    if not isinstance(value, str) or not _SCALE_SET.fullmatch(value):
        raise Invalid(
            "a scale set name is 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def labels(value: str | Sequence[str] | None, default: Sequence[str]) -> tuple[str, ...]:
    """runnerctl's comma-separated string, or a list; spaces around each label are dropped.

    The result is sorted and without duplicates (case-insensitive, as GitHub matches them).
    """
    if value is None:
        items: Sequence[str] = default
    elif isinstance(value, str):
        items = value.split(",")
    else:
        items = value
    found: dict[str, str] = {}
    for item in items:
        if not isinstance(item, str):
            raise Invalid("labels are strings")
        label = item.strip()
        if not label:
            continue
        if not _LABEL.fullmatch(label):
            raise Invalid(
                "a label is 1 to 100 letters, digits, '.', '_', '+' or '-', starting with a letter or digit"
            )
        found.setdefault(label.lower(), label)
    if not found:
        raise Invalid("give at least one label")
    if len(found) > MAX_LABELS:
        raise Invalid(f"at most {MAX_LABELS} labels")
    return tuple(sorted(found.values(), key=str.lower))


def repo_allowed(repo: str, patterns: Sequence[str]) -> bool:
    """Whether `repo` matches one of `patterns` (`owner/name`, `owner/*`); every repo when there are none."""
    if not patterns:
        return True
    return any(fnmatch.fnmatchcase(repo.lower(), pattern.lower()) for pattern in patterns)
