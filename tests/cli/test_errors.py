"""Each failure is one line on stderr and its exit code: 2 usage, 3 refused credentials, 1 the rest.
Never a traceback, never a secret."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

import actions_scaleset as asc
from actions_scaleset.auth import credentials_hint
from actions_scaleset.cli import _main
from actions_scaleset.cli._errors import Failure, UsageError, failure
from actions_scaleset.testing import FakeGitHub
from tests import keys
from tests.cli.conftest import Invoke, Result, env_for, invoke_with

pytestmark = pytest.mark.anyio

PREFIX = "actions-scaleset: error: "


def one_error_line(result: Result, code: int) -> str:
    """The single stderr line of a failed command (stdout empty, no traceback); returns it unprefixed."""
    assert result.code == code, result.all
    assert result.out == ""
    assert result.err.endswith("\n")
    assert result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err
    assert result.err.startswith(PREFIX)
    return result.err[len(PREFIX) : -1]


# --------------------------------------------------------------------------- usage: 2


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (
            ("scale-sets", "list", "--bogus"),
            None,
            "unrecognized arguments: --bogus (see: actions-scaleset --help)",
        ),
        (
            ("stats",),
            None,
            "the following arguments are required: SCALE_SET (see: actions-scaleset stats --help)",
        ),
        (("nope",), None, "argument COMMAND: invalid choice: 'nope'"),
        (("watch", "x", "--count", "0"), None, "argument --count: 0 is not a number of 1 or more"),
        (("fake", "--port", "http"), None, "argument --port: 'http' is not a whole number"),
        (
            ("scale-sets", "list"),
            {"GITHUB_TOKEN": "ghp_secret"},
            "no GitHub URL: set --url or GITHUB_CONFIG_URL (give a URL such as https://github.com/ORG,",
        ),
        (
            ("scale-sets", "list", "--url", "ftp://example.com/acme"),
            {"GITHUB_TOKEN": "ghp_secret"},
            "--url: invalid config URL 'ftp://example.com/acme': it needs an http:// or https:// scheme",
        ),
        (
            ("scale-sets", "list"),
            {"GITHUB_CONFIG_URL": "https://github.com/a/b/c", "GITHUB_TOKEN": "ghp_secret"},
            "GITHUB_CONFIG_URL: invalid config URL 'https://github.com/a/b/c': should point to",
        ),
        (
            ("scale-sets", "list", "--url", "https://github.com/acme"),
            {},
            "no GitHub credentials (set GITHUB_TOKEN, or for a GitHub App GITHUB_APP_CLIENT_ID",
        ),
        (
            ("scale-sets", "list", "--url", "https://github.com/acme"),
            {"GITHUB_TOKEN": "ghp_secret", "GITHUB_APP_ID": "12"},
            "both a token (GITHUB_TOKEN) and a GitHub App (GITHUB_APP_ID) are given (keep one of them)",
        ),
        (
            ("scale-sets", "list", "--url", "https://github.com/acme", "--app-id", "Iv1.abc"),
            {"GITHUB_APP_PRIVATE_KEY": "x"},
            "--app-id must be a positive whole number (a client ID such as Iv1.0123 goes in",
        ),
        (
            ("scale-sets", "list", "--url", "https://github.com/acme"),
            {"GITHUB_APP_CLIENT_ID": "Iv1.abc", "GITHUB_APP_PRIVATE_KEY": "SUPERSECRET"},
            "GITHUB_APP_PRIVATE_KEY: ",
        ),
        (
            ("scale-sets", "list", "--url", "https://github.com/acme", "--ca-file", "/nonexistent/ca.pem"),
            {"GITHUB_TOKEN": "ghp_secret"},
            "--ca-file: cannot read '/nonexistent/ca.pem' (No such file or directory)",
        ),
    ],
)
async def test_usage_errors_exit_2_with_one_line(
    invoke: Invoke, argv: tuple[str, ...], env: Mapping[str, str] | None, expected: str
) -> None:
    line = one_error_line(await invoke(*argv, env=env), 2)
    assert line.startswith(expected)
    assert "ghp_secret" not in line
    assert "SUPERSECRET" not in line


async def test_an_unreadable_app_key_is_a_usage_error(invoke: Invoke, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    env = {"GITHUB_CONFIG_URL": "https://github.com/acme", "GITHUB_APP_CLIENT_ID": "Iv1.abc"}
    line = one_error_line(await invoke("stats", "x", "--app-private-key-file", str(missing), env=env), 2)
    assert line == (
        f"--app-private-key-file: cannot read the App's private key {str(missing)!r} "
        "(No such file or directory) (give the path of the App's .pem file)"
    )


async def test_a_key_that_is_not_a_key_is_a_usage_error_that_does_not_show_it(
    invoke: Invoke, tmp_path: Path
) -> None:
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN RSA PRIVATE KEY-----\nSUPERSECRETBYTES\n-----END RSA PRIVATE KEY-----\n")
    env = {
        "GITHUB_CONFIG_URL": "https://github.com/acme",
        "GITHUB_APP_ID": "7",
        "GITHUB_APP_PRIVATE_KEY_FILE": str(key),
    }
    line = one_error_line(await invoke("stats", "x", env=env), 2)
    assert line.startswith("GITHUB_APP_PRIVATE_KEY_FILE: ")
    assert "SUPERSECRET" not in line


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert _main.main(["--help"]) == 0
    assert "usage: actions-scaleset" in capsys.readouterr().out
    assert _main.main(["watch", "--help"]) == 0
    assert "--acquire" in capsys.readouterr().out
    assert _main.main(["--version"]) == 0
    assert capsys.readouterr().out == f"actions-scaleset {asc.__version__}\n"


# --------------------------------------------------------------------------- refused credentials: 3


async def test_a_refused_token_exits_3_with_the_scope_hint(invoke: Invoke, fake: FakeGitHub) -> None:
    line = one_error_line(
        await invoke("scale-sets", "list", env={**env_for(fake), "GITHUB_TOKEN": "ghp_wrong"}), 3
    )
    assert line == (
        "GitHub refused the credentials: Bad credentials (401 Unauthorized) (a classic token needs the "
        "admin:org scope, a fine-grained token the organization permission "
        "'Self-hosted runners: read and write')"
    )


async def test_the_hint_follows_the_scope_of_the_url(invoke: Invoke, fake: FakeGitHub) -> None:
    env = {**env_for(fake, "acme/app"), "GITHUB_TOKEN": "ghp_wrong"}
    line = one_error_line(await invoke("stats", "x", env=env), 3)
    assert line.endswith(
        "(a classic token needs the repo scope, a fine-grained token the repository permission "
        "'Administration: read and write')"
    )
    env = {**env_for(fake, "enterprises/big"), "GITHUB_TOKEN": "ghp_wrong"}
    line = one_error_line(await invoke("jobs", "x", env=env), 3)
    assert line.endswith("(the token needs the manage_runners:enterprise scope)")


async def test_a_refused_github_app_exits_3_with_the_app_hint(
    fake: FakeGitHub, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    key = tmp_path / "app.pem"
    key.write_text(fake._core.app.private_key_pem())  # no public accessor for the fake App's PEM
    env = {
        "GITHUB_CONFIG_URL": fake.config_url("acme"),
        "GITHUB_APP_ID": "424242",
        "GITHUB_APP_PRIVATE_KEY_FILE": str(key),
    }
    fake.faults.add(
        "registration_token", status=403, body={"message": "Resource not accessible by integration"}
    )
    line = one_error_line(await invoke_with(("scale-sets", "list"), env, http), 3)
    assert line == (
        "GitHub refused the credentials: Resource not accessible by integration (403 Forbidden) "
        "(the GitHub App needs the organization permission 'Self-hosted runners: read and write' "
        "and must be installed on the organization)"
    )


def test_credentials_hint_for_each_scope_and_kind() -> None:
    for scope in asc.Scope:
        for app in (True, False, None):
            assert credentials_hint(scope, app=app)
    assert "admin:org" in credentials_hint(None, app=None)
    assert "'Self-hosted runners: write'" in credentials_hint(asc.Scope.ORGANIZATION, app=None)
    assert "cannot manage enterprise runners" in credentials_hint(asc.Scope.ENTERPRISE, app=True)


# --------------------------------------------------------------------------- everything else: 1


async def test_not_found_exits_1(invoke: Invoke) -> None:
    line = one_error_line(await invoke("stats", "x"), 1)
    assert line == "no scale set named 'x' in acme (list them: actions-scaleset scale-sets list)"


async def test_a_server_error_after_the_retries_exits_1(invoke: Invoke, fake: FakeGitHub) -> None:
    fake.faults.add("scale_sets.list", status=503, times=None)
    line = one_error_line(await invoke("scale-sets", "list"), 1)
    assert "(503 Service Unavailable" in line
    assert line.endswith("(GitHub failed, even after retries; try again later)")


async def test_a_network_failure_exits_1(env: dict[str, str]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        line = one_error_line(await invoke_with(("scale-sets", "list", "--json"), env, http), 1)
    assert line.startswith("cannot reach GitHub: ")
    assert "httpx" not in line
    assert line.endswith(
        "(check --url, the network and the proxy variables (HTTPS_PROXY, NO_PROXY); "
        "for a server with a private CA, --ca-file)"
    )


async def test_a_session_held_by_a_listener_exits_1_at_once(
    invoke: Invoke, fake: FakeGitHub, http: httpx.AsyncClient, demo: asc.RunnerScaleSet
) -> None:
    async with (
        asc.ScaleSetClient(fake.config_url("acme"), fake.pat(), http_client=http) as client,
        client.session(demo.id, owner="listener"),
    ):
        result = await invoke("watch", "demo", "--json")
    line = one_error_line(result, 1)
    assert line.endswith(
        "(a listener holds the scale set's session; stop it, or wait a few minutes if it died)"
    )


async def test_an_unexpected_exception_is_one_line_too(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(ctx: object) -> int:
        raise KeyError("boom")

    monkeypatch.setitem(_main.COMMANDS, "stats", broken)
    line = one_error_line(await invoke("stats", "x"), 1)
    assert (
        line
        == "unexpected KeyError: 'boom' (a bug in actions-scaleset: please report it, with --verbose output)"
    )


def test_failure_unwraps_a_task_groups_single_exception() -> None:
    grouped = ExceptionGroup("one", [asc.ScaleSetNotFoundError("gone")])
    assert failure(grouped).code == 1
    assert failure(grouped).what == "gone"
    assert failure(UsageError("bad", "fix")) == Failure(2, "bad", "fix")


# --------------------------------------------------------------------------- optional extras


async def test_tables_without_rich_exit_2_and_json_still_works(
    invoke: Invoke, demo: asc.RunnerScaleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # as if the cli extra were not installed
    result = await invoke("scale-sets", "list")
    assert result.err == (
        'actions-scaleset: error: tables need rich: pip install "actions-scaleset[cli]" (or use --json)\n'
    )
    assert (result.code, result.out) == (2, "")
    assert (await invoke("scale-sets", "list", "--json")).json()["scale_sets"][0]["name"] == "demo"
    doctor = await invoke("doctor", "demo")  # plain lines: no rich needed
    assert doctor.code == 0


async def test_jit_without_rich_registers_nothing(
    invoke: Invoke, fake: FakeGitHub, demo: asc.RunnerScaleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)
    one_error_line(await invoke("jit", "demo", "r"), 2)
    assert fake.snapshot().runners == ()  # refused before any request


async def test_fake_without_hypercorn_says_which_extra(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "hypercorn", None)
    line = one_error_line(await invoke("fake"), 2)
    assert line == 'fake needs hypercorn: pip install "actions-scaleset[testing]"'


# --------------------------------------------------------------------------- secrets


async def test_no_output_ever_shows_the_token_or_a_key(
    invoke: Invoke, fake: FakeGitHub, demo: asc.RunnerScaleSet
) -> None:
    token = env_for(fake)["GITHUB_TOKEN"]
    pem = keys.pem()
    fake.enqueue_job(labels=["demo"], repository="acme/app")
    outputs = []
    for argv in (
        ("scale-sets", "list"),
        ("scale-sets", "show", "demo", "--json"),
        ("stats", "demo"),
        ("jobs", "demo", "--json"),
        ("runners", "list"),
        ("jit", "demo", "r1"),
        ("jit", "demo", "r2", "--json"),
        ("watch", "demo", "--count", "1"),
        ("doctor", "demo"),
        ("doctor", "--json", "--token", token),
        ("stats", "ghost", "--token", token),
        ("stats", "x", "--url", "https://github.com/acme?token=" + token),
    ):
        outputs.append((await invoke(*argv)).all)
    key_env = {
        "GITHUB_CONFIG_URL": "https://github.com/acme",
        "GITHUB_APP_ID": "1",
        "GITHUB_APP_PRIVATE_KEY": pem,
    }
    outputs.append((await invoke("doctor", env=key_env)).all)
    text = "\n".join(outputs)
    assert token not in text
    assert "PRIVATE KEY" not in text
    assert re.search(r"[A-Za-z0-9+/=]{200,}", text) is None  # no encoded JIT config without --reveal
    assert "Traceback" not in text
