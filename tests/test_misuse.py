"""Misuse gets a clear error instead of silent damage (issue 10, point 7).

A `str` where labels are expected, a float or a bool where an id is expected, a bad
GitHub App id and an empty token are refused before anything is sent, with an error
that names the argument. A plain `str` as `auth` is a personal access token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import actions_scaleset as asc
from actions_scaleset.testing import FakeGitHub
from tests.keys import pem

pytestmark = pytest.mark.anyio


@pytest.fixture
def fake() -> FakeGitHub:
    return FakeGitHub(poll_hold=0.02)


@pytest.fixture
async def client(fake: FakeGitHub) -> AsyncIterator[asc.ScaleSetClient]:
    async with (
        fake.http_client() as http,
        asc.ScaleSetClient(fake.config_url("acme"), auth=fake.pat(), http_client=http) as client,
    ):
        yield client


# ---------------------------------------------------------------- labels


async def test_a_str_as_labels_is_a_type_error_that_leaves_a_live_scale_set_alone(
    fake: FakeGitHub, client: asc.ScaleSetClient
) -> None:
    created = await client.ensure_scale_set("linux", labels=["linux"])
    fake.requests.clear()
    with pytest.raises(TypeError, match=r"labels must be a list .* not a str: write labels=\['linux'\]"):
        await client.ensure_scale_set("linux", labels="linux")
    assert fake.requests == []  # nothing was sent, so nothing was rewritten
    assert [label.name for label in (await client.get_scale_set_by_id(created.id)).labels] == ["linux"]


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.create_scale_set("linux", labels="linux"),
        lambda c: c.update_scale_set(1, labels="linux"),
        lambda c: c.create_scale_set("linux", labels=asc.Label(name="linux")),
        lambda c: c.create_scale_set("linux", labels=7),
    ],
    ids=["create-str", "update-str", "create-one-Label", "create-int"],
)
async def test_labels_that_are_not_a_collection_are_refused_before_any_request(
    fake: FakeGitHub, client: asc.ScaleSetClient, call: Callable[[asc.ScaleSetClient], Awaitable[Any]]
) -> None:
    with pytest.raises(TypeError, match="labels must be a list of labels"):
        await call(client)
    assert fake.requests == []


async def test_a_str_as_expected_statuses_is_a_type_error(client: asc.ScaleSetClient) -> None:
    with pytest.raises(TypeError, match="expect is a sequence of status codes, not a str"):
        await client.actions_request("GET", "_apis/runtime/runnerscalesets", expect="200")  # type: ignore[arg-type]


# ---------------------------------------------------------------- the runner group


async def test_runner_group_none_means_the_default_group(client: asc.ScaleSetClient) -> None:
    scale_set = await client.ensure_scale_set("linux", runner_group=None, labels=["linux"])
    assert scale_set.runner_group_id == 1
    assert (await client.ensure_scale_set("linux", runner_group=None)).id == scale_set.id


async def test_a_runner_group_that_is_not_a_name_is_a_type_error(client: asc.ScaleSetClient) -> None:
    with pytest.raises(TypeError, match="runner_group is a group name"):
        await client.ensure_scale_set("linux", runner_group=1)  # type: ignore[arg-type]


# ---------------------------------------------------------------- ids


@pytest.mark.parametrize(
    ("argument", "call"),
    [
        ("scale_set_id", lambda c: c.get_scale_set_by_id(1.9)),
        ("scale_set_id", lambda c: c.update_scale_set(1.9, name="x")),
        ("scale_set_id", lambda c: c.delete_scale_set(True)),
        ("scale_set_id", lambda c: c.generate_jit_config(1.9, name="r")),
        ("scale_set_id", lambda c: c.get_acquirable_jobs(1.0)),
        ("runner_id", lambda c: c.get_runner(1.9)),
        ("runner_id", lambda c: c.remove_runner(1.9)),
        ("runner_group_id", lambda c: c.get_scale_set("linux", runner_group_id=1.9)),
        ("runner_group_id", lambda c: c.list_scale_sets(runner_group_id=1.9)),
        ("runner_group_id", lambda c: c.create_scale_set("linux", runner_group_id=True)),
        ("runner_group_id", lambda c: c.update_scale_set(1, runner_group_id=1.9)),
    ],
    ids=[
        "get_scale_set_by_id",
        "update_scale_set",
        "delete_scale_set",
        "generate_jit_config",
        "get_acquirable_jobs",
        "get_runner",
        "remove_runner",
        "get_scale_set-group",
        "list_scale_sets-group",
        "create_scale_set-group",
        "update_scale_set-group",
    ],
)
async def test_a_float_or_a_bool_is_not_an_id(
    fake: FakeGitHub,
    client: asc.ScaleSetClient,
    argument: str,
    call: Callable[[asc.ScaleSetClient], Awaitable[Any]],
) -> None:
    with pytest.raises(TypeError, match=f"^{argument} must be an int, not "):
        await call(client)
    assert fake.requests == []  # refused before the exchange, so no scale set 1 was touched


async def test_a_session_on_a_float_scale_set_id_is_a_type_error(client: asc.ScaleSetClient) -> None:
    with pytest.raises(TypeError, match=r"scale_set_id must be an int, not float 1\.9"):
        client.session(1.9)  # type: ignore[arg-type]


# ---------------------------------------------------------------- GitHub App ids


@pytest.mark.parametrize(
    ("kwargs", "error", "says"),
    [
        ({"app_id": 1, "installation_id": True}, TypeError, "installation_id must be .* not bool"),
        ({"app_id": 1, "installation_id": 0}, asc.ConfigurationError, "installation_id must be a positive"),
        ({"app_id": 1, "installation_id": 9.5}, TypeError, "installation_id must be .* not float"),
        ({"app_id": -5}, asc.ConfigurationError, "app_id must be a positive integer, not -5"),
        ({"app_id": True}, TypeError, "app_id must be a positive int, not bool"),
        ({"app_id": 1.5}, TypeError, "app_id must be a positive int, not float"),
        ({"app_id": "Iv1.abc"}, asc.ConfigurationError, "app_id must be a positive integer; a client ID"),
        ({"client_id": ""}, asc.ConfigurationError, "client_id is empty"),
        ({"client_id": 123}, TypeError, "client_id must be a str"),
    ],
    ids=[
        "installation-bool",
        "installation-zero",
        "installation-float",
        "app-negative",
        "app-bool",
        "app-float",
        "app-client-id",
        "client-empty",
        "client-int",
    ],
)
def test_a_github_app_with_a_bad_id_is_refused_naming_the_argument(
    kwargs: dict[str, Any], error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says):
        asc.GitHubApp(private_key=pem(), **kwargs)


def test_a_github_app_id_may_be_a_str_of_digits_as_read_from_the_environment() -> None:
    assert asc.GitHubApp(app_id=" 123 ", installation_id=9, private_key=pem()).issuer == "123"


# ---------------------------------------------------------------- auth


async def test_a_plain_str_as_auth_is_a_personal_access_token(fake: FakeGitHub) -> None:
    token = fake.pat().token.get_secret_value()
    async with (
        fake.http_client() as http,
        asc.ScaleSetClient(fake.config_url("acme"), token, http_client=http) as client,
    ):
        assert isinstance(client.github.credentials, asc.PersonalAccessToken)
        await client.ensure_scale_set("linux")
    assert token not in repr(client)
    assert fake.requests_to("registration_token")[0].token == "pat"


@pytest.mark.parametrize("auth", [None, b"ghp_bytes", 12345], ids=["None", "bytes", "int"])
def test_auth_that_is_no_credential_is_a_type_error_listing_what_is_accepted(auth: Any) -> None:
    with pytest.raises(TypeError, match="a PersonalAccessToken, a GitHubApp, or a token as a str") as info:
        asc.ScaleSetClient("https://github.com/acme", auth)
    assert "ghp_bytes" not in str(info.value)


def test_as_credentials_passes_credentials_through_and_wraps_a_secret() -> None:
    from actions_scaleset.auth import as_credentials

    pat = asc.PersonalAccessToken("ghp_x")
    assert as_credentials(pat) is pat
    wrapped = as_credentials(asc.Secret("ghp_y"))
    assert isinstance(wrapped, asc.PersonalAccessToken)
    assert wrapped.token.get_secret_value() == "ghp_y"


@pytest.mark.parametrize("token", [None, "", "  \n"], ids=["None", "empty", "blank"])
def test_an_empty_personal_access_token_asks_whether_github_token_is_set(token: Any) -> None:
    with pytest.raises(asc.ConfigurationError, match=r"token is empty: .* is GITHUB_TOKEN set\?"):
        asc.PersonalAccessToken(token)


def test_a_personal_access_token_of_another_type_is_a_type_error_that_does_not_echo_it() -> None:
    with pytest.raises(TypeError, match="a str or a Secret, not bytes") as info:
        asc.PersonalAccessToken(b"ghp_secret_value")  # type: ignore[arg-type]
    assert "ghp_secret_value" not in str(info.value)


# ---------------------------------------------------------------- GitHubClient


def test_a_plain_str_as_auth_of_the_rest_client_is_a_personal_access_token() -> None:
    github = asc.GitHubClient("https://github.com/acme", "ghp_plain")
    assert isinstance(github.credentials, asc.PersonalAccessToken)
    assert "ghp_plain" not in repr(github)


async def test_a_str_as_rest_jit_labels_is_a_type_error_before_any_request(fake: FakeGitHub) -> None:
    async with (
        fake.http_client() as http,
        asc.GitHubClient(fake.config_url("acme"), fake.pat(), http_client=http) as github,
    ):
        with pytest.raises(TypeError, match=r"labels=\['linux'\]"):
            await github.generate_jit_config("runner-1", labels="linux")
    assert fake.requests == []


@pytest.mark.parametrize("runner_id", [1.9, True], ids=["float", "bool"])
async def test_the_rest_client_takes_no_float_or_bool_as_a_runner_id(
    fake: FakeGitHub, runner_id: Any
) -> None:
    async with (
        fake.http_client() as http,
        asc.GitHubClient(fake.config_url("acme"), fake.pat(), http_client=http) as github,
    ):
        with pytest.raises(TypeError, match="runner_id must be an int"):
            await github.delete_runner(runner_id)
        with pytest.raises(TypeError, match="runner_id must be an int"):
            await github.get_runner(runner_id)
    assert fake.requests == []


async def test_a_session_takes_no_float_scale_set_id_and_no_str_of_job_ids(
    client: asc.ScaleSetClient,
) -> None:
    with pytest.raises(TypeError, match="scale_set_id must be an int"):
        asc.MessageSession(client, 1.9, owner="me")  # type: ignore[arg-type]
    session = asc.MessageSession(client, 1, owner="me")
    with pytest.raises(TypeError, match="runner_request_ids must be a list"):
        await session.acquire_jobs("123")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a runner request id must be an int"):
        await session.acquire_jobs([1.5])  # type: ignore[list-item]
