"""Config URL parsing (docs/protocol.md, "Credentials and where they go")."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actions_scaleset import GitHubConfig, InvalidConfigURLError, Scope

NO_ENV: dict[str, str] = {}


@pytest.mark.parametrize(
    ("url", "scope", "names", "api"),
    [
        ("https://github.com/org", Scope.ORGANIZATION, ("org", None, None), "https://api.github.com"),
        ("https://github.com/org/repo", Scope.REPOSITORY, ("org", "repo", None), "https://api.github.com"),
        (
            "https://github.com/enterprises/ent",
            Scope.ENTERPRISE,
            (None, None, "ent"),
            "https://api.github.com",
        ),
        ("https://www.github.com/org", Scope.ORGANIZATION, ("org", None, None), "https://api.github.com"),
        (
            "https://github.ghe.com/org/repo",
            Scope.REPOSITORY,
            ("org", "repo", None),
            "https://api.github.ghe.com",
        ),
        (
            "http://github.localhost/org/repo",
            Scope.REPOSITORY,
            ("org", "repo", None),
            "http://api.github.localhost",
        ),
        (
            "https://my-instance.com/org",
            Scope.ORGANIZATION,
            ("org", None, None),
            "https://my-instance.com/api/v3",
        ),
        ("http://localhost/org/repo", Scope.REPOSITORY, ("org", "repo", None), "http://localhost/api/v3"),
        (
            "http://127.0.0.1:8080/acme",
            Scope.ORGANIZATION,
            ("acme", None, None),
            "http://127.0.0.1:8080/api/v3",
        ),
        (
            "https://ghes.example.com/Enterprises/big",
            Scope.ENTERPRISE,
            (None, None, "big"),
            "https://ghes.example.com/api/v3",
        ),
    ],
)
def test_parse_derives_scope_names_and_api_url(
    url: str, scope: Scope, names: tuple[str | None, str | None, str | None], api: str
) -> None:
    config = GitHubConfig.parse(url, env=NO_ENV)
    assert config.scope is scope
    assert (config.organization, config.repository, config.enterprise) == names
    assert config.api_url == api


def test_leading_and_trailing_slashes_are_trimmed_and_kept_as_config_url() -> None:
    config = GitHubConfig.parse("  https://github.com/org/repo/  ", env=NO_ENV)
    assert config.config_url == "https://github.com/org/repo"


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/org/repo?token=ghp_pastedhere0123456789",
        "https://github.com/org#ghp_pastedhere0123456789",
        "https://github.com/org/?ghp_pastedhere0123456789",
        "https://github.com/org?",
    ],
)
def test_a_query_or_fragment_is_refused_without_echoing_it(url: str) -> None:
    # A token pasted into the query or fragment must not reach a message, a repr or a log.
    with pytest.raises(InvalidConfigURLError) as info:
        GitHubConfig.parse(url, env=NO_ENV)
    assert "query or a fragment" in str(info.value)
    assert "pastedhere" not in str(info.value)
    assert "pastedhere" not in repr(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


def test_an_org_page_url_reads_as_that_organization() -> None:
    config = GitHubConfig.parse("https://github.com/orgs/acme/", env=NO_ENV)
    assert (config.scope, config.organization, config.repository) == (Scope.ORGANIZATION, "acme", None)
    assert config.config_url == "https://github.com/acme"  # what actions/runner-registration expects
    assert config == GitHubConfig.parse("https://github.com/acme", env=NO_ENV)


def test_an_org_page_url_on_ghes_reads_as_that_organization() -> None:
    config = GitHubConfig.parse("https://ghes.example.com/Orgs/acme", env=NO_ENV)
    assert (config.scope, config.organization) == (Scope.ORGANIZATION, "acme")
    assert config.registration_token_path == "/orgs/acme/actions/runners/registration-token"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://☃.com/acme", "host is not a valid (IDNA) host name"),
        ("https://xn--n3h.com/acme", "host is not a valid (IDNA) host name"),
        ("https://gh.example/ac\x00me", "control character"),
        ("http://10.0.0.999/acme", "not a valid IPv4 address"),
    ],
)
def test_a_url_no_request_could_be_sent_to_is_refused_when_parsed(url: str, problem: str) -> None:
    with pytest.raises(InvalidConfigURLError, match=re.escape(problem)):
        GitHubConfig.parse(url, env=NO_ENV)


def test_port_makes_github_com_a_ghes_host() -> None:
    # docs/protocol.md, "Credentials and where they go":
    # "The port is part of the host: github.com:443 is not hosted."
    config = GitHubConfig.parse("https://github.com:443/org", env=NO_ENV)
    assert not config.is_hosted
    assert config.api_url == "https://github.com:443/api/v3"


def test_force_ghes_env_applies_even_when_empty() -> None:
    config = GitHubConfig.parse("https://github.com/org", env={"GITHUB_ACTIONS_FORCE_GHES": ""})
    assert not config.is_hosted
    assert config.api_url == "https://github.com/api/v3"


def test_force_ghes_is_read_from_the_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS_FORCE_GHES", "1")
    assert not GitHubConfig.parse("https://github.com/org").is_hosted
    monkeypatch.delenv("GITHUB_ACTIONS_FORCE_GHES")
    assert GitHubConfig.parse("https://github.com/org").is_hosted


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("https://github.com/org", "/orgs/org/actions/runners/registration-token"),
        ("https://github.com/enterprises/ent", "/enterprises/ent/actions/runners/registration-token"),
        ("https://github.com/owner/repo", "/repos/owner/repo/actions/runners/registration-token"),
    ],
)
def test_registration_token_path_by_scope(url: str, path: str) -> None:
    assert GitHubConfig.parse(url, env=NO_ENV).registration_token_path == path


def test_installation_path_by_scope() -> None:
    assert (
        GitHubConfig.parse("https://github.com/o/r", env=NO_ENV).installation_path
        == "/repos/o/r/installation"
    )
    assert GitHubConfig.parse("https://github.com/o", env=NO_ENV).installation_path == "/orgs/o/installation"


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com",
        "https://github.com/",
        "https://github.com/some/random/path",
        "github.com/org",
        "ftp://github.com/org",
        "https:///org",
        "",
        "https://github.com/org//repo",
        "https://github.com:notaport/org",
    ],
)
def test_invalid_urls_raise_with_a_message_that_shows_a_valid_one(url: str) -> None:
    with pytest.raises(InvalidConfigURLError) as info:
        GitHubConfig.parse(url, env=NO_ENV)
    assert "https://github.com/my-org" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_credentials_in_the_url_are_refused_and_never_echoed() -> None:
    with pytest.raises(InvalidConfigURLError) as info:
        GitHubConfig.parse("https://x-access-token:ghp_supersecretvalue123@github.com/org", env=NO_ENV)
    assert "supersecret" not in str(info.value)
    assert "x-access-token" not in str(info.value)


def test_a_non_string_url_is_a_typed_error() -> None:
    with pytest.raises(InvalidConfigURLError):
        GitHubConfig.parse(None, env=NO_ENV)  # type: ignore[arg-type]


NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True).filter(
    lambda s: s.lower() not in ("enterprises", "orgs") and s not in (".", "..")
)
HOSTED = st.sampled_from(["github.com", "www.github.com", "GitHub.com", "acme.ghe.com", "github.localhost"])
GHES = st.from_regex(r"[a-z][a-z0-9-]{0,15}\.(example|corp|internal)(:[1-9][0-9]{1,3})?", fullmatch=True)


@given(host=HOSTED, owner=NAME, repo=NAME, scheme=st.sampled_from(["http", "https"]))
def test_hosted_api_is_api_dot_host(host: str, owner: str, repo: str, scheme: str) -> None:
    config = GitHubConfig.parse(f"{scheme}://{host}/{owner}/{repo}", env=NO_ENV)
    expected_host = "github.com" if host.lower() == "www.github.com" else host.lower()
    assert config.is_hosted
    assert config.api_url == f"{scheme}://api.{expected_host}"
    assert config.api("/x") == f"{scheme}://api.{expected_host}/x"
    assert (config.organization, config.repository, config.scope) == (owner, repo, Scope.REPOSITORY)


@given(host=GHES, owner=NAME, scheme=st.sampled_from(["http", "https"]))
def test_ghes_api_is_host_api_v3(host: str, owner: str, scheme: str) -> None:
    config = GitHubConfig.parse(f"{scheme}://{host}/{owner}/", env=NO_ENV)
    assert not config.is_hosted
    assert config.api_url == f"{scheme}://{host}/api/v3"
    assert config.scope is Scope.ORGANIZATION
    assert config.registration_token_path.startswith("/orgs/")


@given(url=st.text(max_size=60))
def test_any_text_parses_or_raises_the_typed_error(url: str) -> None:
    with contextlib.suppress(InvalidConfigURLError):
        GitHubConfig.parse(url, env=NO_ENV)


@given(owner=NAME, repo=NAME)
def test_parse_is_idempotent_through_config_url(owner: str, repo: str) -> None:
    first = GitHubConfig.parse(f"https://github.com/{owner}/{repo}/", env=NO_ENV)
    assert GitHubConfig.parse(first.config_url, env=NO_ENV) == first
