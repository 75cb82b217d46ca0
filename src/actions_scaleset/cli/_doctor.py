"""`doctor`: check a setup end to end, one pass/fail line per step, a hint on each failure.

The steps: the URL, the credentials, the token (or the App's installation) and what it
may do, the registration exchange (the admin token), the scale set, and whether a
session can be opened (it is deleted at once: doctor never holds one; a 409 means a
listener holds it, which is a pass). A step that needs a failed one is skipped. Exit 0
when nothing failed, 1 otherwise; usage errors are steps here, not exit 2.
"""

from __future__ import annotations

import shlex
import socket
from collections.abc import Mapping
from typing import Final, Literal
from urllib.parse import urlsplit

import attrs

from ..actions import ScaleSetClient
from ..config import GitHubConfig, Scope
from ..errors import SessionConflictError
from ._context import Context, ScaleSetMissingError
from ._errors import EXIT_FAILED, EXIT_OK, PROG, failure
from ._settings import Login, config_from, login_from, ssl_context_from

__all__ = ["Check", "doctor"]

Status = Literal["pass", "fail", "skip"]
NAME_WIDTH: Final = 16
_REQUIRED_SCOPES: Final[Mapping[Scope, frozenset[str]]] = {
    Scope.ORGANIZATION: frozenset({"admin:org"}),
    Scope.REPOSITORY: frozenset({"repo"}),
    Scope.ENTERPRISE: frozenset({"manage_runners:enterprise", "admin:enterprise"}),
}
"""The classic scope that lets a token register runners there (any one of them)."""
_REQUIRED_APP_PERMISSIONS: Final[Mapping[Scope, tuple[str, str]]] = {
    Scope.ORGANIZATION: ("organization_self_hosted_runners", "Self-hosted runners"),
    Scope.REPOSITORY: ("administration", "Administration"),
}


@attrs.frozen
class Check:
    name: str
    status: Status
    detail: str
    hint: str | None = None

    def line(self) -> str:
        label = "FAIL" if self.status == "fail" else self.status
        hint = f"; hint: {self.hint}" if self.hint else ""
        return f"{label:<4}  {self.name:<{NAME_WIDTH}} {self.detail}{hint}"

    def json(self) -> dict[str, str | None]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "hint": self.hint}


class _Report:
    """The checks so far; each is printed as soon as it is known (JSON: all at the end)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.checks: list[Check] = []

    def add(self, name: str, status: Status, detail: str, hint: str | None = None) -> bool:
        check = Check(name, status, detail, hint)
        self.checks.append(check)
        if not self.ctx.out.json_mode:
            self.ctx.out.line(check.line())
        return status != "fail"

    def failed(self, name: str, exc: BaseException) -> bool:
        login = self.ctx.login
        config = self.ctx.config
        why = failure(exc, scope=config.scope if config else None, app=login.is_app if login else None)
        return self.add(name, "fail", why.what, why.hint)

    def skip(self, names: tuple[str, ...], why: str) -> None:
        for name in names:
            self.add(name, "skip", why)

    @property
    def ok(self) -> bool:
        return all(check.status != "fail" for check in self.checks)


def _describe(config: GitHubConfig) -> str:
    server = "GitHub.com" if config.is_hosted else f"GitHub Enterprise Server (REST at {config.api_url})"
    return f"{config.config_url}: the {config.scope.value} {config.name} on {server}"


async def doctor(ctx: Context) -> int:
    report = _Report(ctx)
    try:
        await _run(ctx, report)
    finally:
        if ctx.out.json_mode:
            ctx.out.json({"ok": report.ok, "checks": [check.json() for check in report.checks]})
        elif report.ok:
            ctx.out.line("All checks passed.")
    return EXIT_OK if report.ok else EXIT_FAILED


async def _run(ctx: Context, report: _Report) -> None:
    later = ("registration", "scale set", "session")
    usable = _settings(ctx, report)
    if not usable:
        report.skip(("token or App", *later), "needs a usable URL and credentials")
        return
    config, login = usable
    async with ctx.client() as client:
        if login.is_app:
            await _installation(client, config, report)
        else:
            await _token(client, report)
        try:
            url = await client.admin_url()
        except Exception as exc:  # noqa: BLE001 - every failure is a step's result
            report.failed("registration", exc)
            report.skip(later[1:], "needs the registration step")
            return
        report.add(
            "registration", "pass", f"the admin token was issued (Actions service at {urlsplit(url).netloc})"
        )
        await _scale_set_and_session(ctx, client, report)


def _settings(ctx: Context, report: _Report) -> tuple[GitHubConfig, Login] | None:
    config = login = None
    try:
        config = ctx.config = config_from(ctx.invocation, ctx.env)
        report.add("config URL", "pass", _describe(config))
    except Exception as exc:  # noqa: BLE001
        report.failed("config URL", exc)
    try:
        login = ctx.login = login_from(ctx.invocation, ctx.env)
        report.add("credentials", "pass", login.description)
    except Exception as exc:  # noqa: BLE001
        report.failed("credentials", exc)
    if ctx.invocation.ca_file is not None:
        try:
            ssl_context_from(ctx.invocation)
            report.add("CA file", "pass", f"{ctx.invocation.ca_file} holds PEM CA certificates")
        except Exception as exc:  # noqa: BLE001
            report.failed("CA file", exc)
            return None
    return (config, login) if config is not None and login is not None else None


async def _token(client: ScaleSetClient, report: _Report) -> None:
    try:
        user = await client.github.get_authenticated_user()
        report.add("token", "pass", f"accepted: it belongs to {user.login}")
    except Exception as exc:  # noqa: BLE001
        report.failed("token", exc)
    try:
        scopes = await client.github.get_token_scopes()
    except Exception as exc:  # noqa: BLE001
        report.failed("token scopes", exc)
        return
    needed = _REQUIRED_SCOPES[client.config.scope]
    if scopes is None:
        report.add(
            "token scopes",
            "skip",
            "a fine-grained token: GitHub lists no scopes for it; the registration step tests it",
        )
    elif needed & scopes:
        report.add("token scopes", "pass", f"{', '.join(sorted(needed & scopes))} among {len(scopes)} scopes")
    else:
        shown = ", ".join(sorted(scopes)) or "none"
        report.add(
            "token scopes",
            "fail",
            f"the token has {shown}, not {' or '.join(sorted(needed))}",
            f"make a token with the {sorted(needed)[0]} scope",
        )


async def _installation(client: ScaleSetClient, config: GitHubConfig, report: _Report) -> None:
    try:
        installation = await client.github.get_installation()
    except Exception as exc:  # noqa: BLE001
        report.failed("App installation", exc)
        report.skip(("App permissions",), "needs the installation")
        return
    app = installation.app_slug or installation.app_id or "the App"
    on = f" on an {installation.target_type}" if installation.target_type else ""
    report.add("App installation", "pass", f"installation {installation.id} of {app}{on}")
    permissions = installation.permissions
    if config.scope is Scope.ENTERPRISE:
        report.add(
            "App permissions",
            "fail",
            "a GitHub App cannot manage enterprise runners",
            "use a classic token with the manage_runners:enterprise scope",
        )
    else:
        key, title = _REQUIRED_APP_PERMISSIONS[config.scope]
        level = permissions.get(key)
        if level == "write":
            report.add("App permissions", "pass", f"'{title}: read and write' is granted")
        else:
            report.add(
                "App permissions",
                "fail",
                f"'{title}' is {level or 'not granted'}",
                f"grant '{title}: read and write' in the App's settings, then accept it in the installation",
            )


async def _scale_set_and_session(ctx: Context, client: ScaleSetClient, report: _Report) -> None:
    name = ctx.invocation.scale_set
    if name is None:
        try:
            found = await client.list_scale_sets()
        except Exception as exc:  # noqa: BLE001
            report.failed("scale sets", exc)
        else:
            names = ", ".join(repr(s.name) for s in found[:10]) + (", …" if len(found) > 10 else "")
            report.add(
                "scale sets",
                "pass",
                f"{len(found)} in {ctx.where}: {names}" if found else f"none yet in {ctx.where}",
            )
        report.skip(("session",), f"name a scale set to check it: {PROG} doctor NAME")
        return
    try:
        scale_set = await ctx.find_scale_set(client, name)
    except ScaleSetMissingError as exc:
        report.add("scale set", "fail", exc.what, f"create it: {PROG} scale-sets create {shlex.quote(name)}")
        report.skip(("session",), "needs the scale set")
        return
    except Exception as exc:  # noqa: BLE001
        report.failed("scale set", exc)
        report.skip(("session",), "needs the scale set")
        return
    report.add("scale set", "pass", f"{scale_set.name!r} (id {scale_set.id}) is there")
    try:
        async with client.session(
            scale_set.id, owner=f"{PROG}-doctor@{socket.gethostname()}", conflict_timeout=0.0
        ):
            pass  # opened, and deleted on the way out
    except SessionConflictError:
        report.add(
            "session",
            "pass",
            "a listener holds the session (409 conflict), so one can be opened; "
            "if no listener runs, a stale session expires within minutes",
        )
    except Exception as exc:  # noqa: BLE001
        report.failed("session", exc)
    else:
        report.add("session", "pass", "a session was opened, and deleted at once")
