"""Tokens, names, paths, body sizes and floods: refused with one error shape, before anything is used."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from examples.provisioner_api.auth import TokenChecker
from examples.provisioner_api.settings import ApiToken

from actions_scaleset.testing import FakeGitHub

from .support import OTHER_TOKEN, TOKEN, make_settings, running_api

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        (None, 401, "unauthorized"),
        ("Basic Y2k6dG9rZW4=", 403, "forbidden"),
        ("Bearer", 403, "forbidden"),
        ("Bearer wrong-token-0123456789", 403, "forbidden"),
        (f"Bearer {TOKEN}x", 403, "forbidden"),
        (f"Bearer {TOKEN[:-1]}", 403, "forbidden"),
    ],
)
async def test_a_request_without_a_valid_token_is_refused(
    tmp_path: Path, authorization: str | None, status: int, code: str
) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path)) as api:
        headers = {"Authorization": authorization} if authorization is not None else {}
        api.client.headers.pop("Authorization")
        for method, path in [
            ("POST", "/api/v1/runners"),
            ("GET", "/api/v1/runners"),
            ("GET", "/api/v1/runners/x/status"),
            ("DELETE", "/api/v1/runners/x"),
            ("GET", "/api/v1/jobs"),
            ("GET", "/metrics"),
            ("GET", "/api/v1/events"),
        ]:
            response = await api.client.request(method, path, headers=headers, json={"name": "x"})
            assert response.status_code == status, (method, path)
            assert response.json()["error"]["code"] == code
        assert fake.snapshot().runners == ()


async def test_every_configured_token_works_and_is_named_as_the_creator(tmp_path: Path) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path)) as api:
        response = await api.client.post(
            "/api/v1/runners", json={"name": "by-ops"}, headers={"Authorization": f"Bearer {OTHER_TOKEN}"}
        )
        assert response.status_code == 201
        assert response.json()["created_by"] == "ops"
        assert OTHER_TOKEN not in response.text


def test_the_token_checker_never_shows_a_token() -> None:
    from actions_scaleset import Secret

    checker = TokenChecker([ApiToken("ci", Secret(TOKEN))])
    assert TOKEN not in repr(checker)
    assert TOKEN not in repr(ApiToken("ci", Secret(TOKEN)))
    assert checker.check(f"bearer {TOKEN}") == "ci"
    assert checker.check(f"Bearer {TOKEN}\udcff") is None


@pytest.mark.parametrize(
    "name",
    ["../etc", "..", ".hidden", "-rf", "a b", "a/b", "a\\b", "x" * 65, "", "semi;colon", "$(id)", "ünï"],
)
async def test_a_bad_runner_name_is_refused_before_anything_is_registered(tmp_path: Path, name: str) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path)) as api:
        response = await api.create(name, repo="acme/app")
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_name"
        assert fake.snapshot().runners == ()
        assert fake.snapshot().scale_sets == ()
        assert not list(api.settings.logs_dir.glob("*")) if api.settings.logs_dir.exists() else True


@pytest.mark.parametrize(
    "repo",
    ["acme", "acme/../etc", "acme/..", "../acme/app", "acme/app/extra", "-acme/app", "acme/app.git", "a b/c"],
)
async def test_a_bad_repository_is_refused(tmp_path: Path, repo: str) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path)) as api:
        response = await api.create("fine", repo=repo)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_repository"
        assert fake.snapshot().runners == ()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/runners/..%2F..%2Fetc%2Fpasswd/status",
        "/api/v1/runners/%2e%2e/status",
        "/api/v1/runners/..%5C..%5Cwin/logs",
        "/api/v1/runners/%2e%2e/logs",
        "/api/v1/runners/.ssh/logs",
    ],
)
async def test_path_traversal_in_the_url_reaches_no_file(tmp_path: Path, path: str) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path)) as api:
        response = await api.client.get(path)
        assert response.status_code in (400, 404)
        assert set(response.json()) == {"error"}
        assert set(response.json()["error"]) == {"code", "message"}


async def test_labels_that_could_escape_are_refused(tmp_path: Path) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path)) as api:
        for labels in ["linux,$(id)", ["linux", "a b"], ",,,", ["x"] * 0 + [f"l{i}" for i in range(21)]]:
            response = await api.create("fine", labels=labels)
            assert response.status_code == 400, labels
            assert response.json()["error"]["code"] == "invalid_labels"


async def test_an_oversized_body_is_refused_with_413(tmp_path: Path) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path, max_body=1024)) as api:
        response = await api.create("big", labels="a" * 2000)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "body_too_large"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for _ in range(10):
                yield b" " * 500

        streamed = await api.client.post(
            "/api/v1/runners", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413
        assert fake.snapshot().runners == ()


async def test_a_flood_gets_429_with_retry_after_and_rate_limit_headers(tmp_path: Path) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path, rate_limit=5)) as api:
        responses = [await api.client.get("/api/v1/runners") for _ in range(7)]
        assert [r.status_code for r in responses] == [200] * 5 + [429] * 2
        first, limited = responses[0], responses[5]
        assert first.headers["X-RateLimit-Limit"] == "5"
        assert first.headers["X-RateLimit-Remaining"] == "4"
        assert int(first.headers["X-RateLimit-Reset"]) > 0
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["X-RateLimit-Remaining"] == "0"
        # another token has its own bucket; /health has none
        other = await api.client.get("/api/v1/runners", headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
        assert other.status_code == 200
        assert (await api.client.get("/health")).status_code == 200


async def test_a_flood_of_bad_tokens_is_limited_too(tmp_path: Path) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path, rate_limit=3)) as api:
        bad = {"Authorization": "Bearer guessing-0123456789abcdef"}
        codes = [(await api.client.get("/api/v1/runners", headers=bad)).status_code for _ in range(5)]
        assert codes == [403, 403, 403, 429, 429]


async def test_errors_share_one_shape(tmp_path: Path) -> None:
    fake = FakeGitHub()
    async with running_api(fake, make_settings(fake, tmp_path)) as api:
        for response in [
            await api.client.get("/nowhere"),
            await api.client.put("/api/v1/runners"),
            await api.client.post("/api/v1/runners", json={"labels": "x"}),
            await api.client.post(
                "/api/v1/runners", content=b"{not json", headers={"Content-Type": "application/json"}
            ),
            await api.client.get("/api/v1/jobs/not-a-number"),
        ]:
            assert response.status_code in (404, 405, 422, 400), response.text
            payload = response.json()
            assert set(payload) == {"error"}
            assert set(payload["error"]) == {"code", "message"}


async def test_cors_is_off_by_default_and_on_when_asked(tmp_path: Path) -> None:
    fake = FakeGitHub()
    preflight = {"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"}
    async with running_api(fake, make_settings(fake, tmp_path)) as api:
        response = await api.client.options("/api/v1/runners", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    settings = make_settings(fake, tmp_path / "2", cors_origins=("https://ui.example",))
    async with running_api(fake, settings) as api:
        response = await api.client.options("/api/v1/runners", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://ui.example"
