"""A fake GitHub in-process, and `invoke(...)`: one command line run against it."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import anyio
import attrs
import httpx
import pytest

from actions_scaleset import NO_RETRY, RunnerScaleSet, ScaleSetClient
from actions_scaleset.cli import run
from actions_scaleset.testing import FakeGitHub


class Screen(io.StringIO):
    """A stdout to watch: `await screen.wait_for(text)` returns once `text` was printed."""

    def __init__(self) -> None:
        super().__init__()
        self._waiting: list[tuple[str, anyio.Event]] = []

    def write(self, text: str) -> int:
        written = super().write(text)
        value = self.getvalue()
        for wanted, event in self._waiting:
            if wanted in value:
                event.set()
        return written

    async def wait_for(self, text: str) -> None:
        if text not in self.getvalue():
            event = anyio.Event()
            self._waiting.append((text, event))
            await event.wait()


@attrs.frozen
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        """The one JSON object printed (a command prints exactly one line with --json)."""
        lines = self.out.splitlines()
        assert len(lines) == 1, self.out
        return json.loads(lines[0])

    @property
    def all(self) -> str:
        return self.out + self.err


class Invoke(Protocol):
    async def __call__(
        self, *argv: str, env: Mapping[str, str] | None = None, http: httpx.AsyncClient | None = None
    ) -> Result: ...


def token_of(fake: FakeGitHub) -> str:
    return fake.pat().token.get_secret_value()


def env_for(fake: FakeGitHub, scope: str = "acme") -> dict[str, str]:
    return {"GITHUB_CONFIG_URL": fake.config_url(scope), "GITHUB_TOKEN": token_of(fake)}


async def invoke_with(
    argv: tuple[str, ...], env: Mapping[str, str], http: httpx.AsyncClient | None
) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = await run(list(argv), env=env, http_client=http, stdout=out, stderr=err, retry=NO_RETRY)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def fake() -> FakeGitHub:
    return FakeGitHub(seed=3, poll_hold=0.02)


@pytest.fixture
async def http(fake: FakeGitHub) -> AsyncIterator[httpx.AsyncClient]:
    async with fake.http_client() as client:
        yield client


@pytest.fixture
def env(fake: FakeGitHub) -> dict[str, str]:
    return env_for(fake)


@pytest.fixture
def invoke(http: httpx.AsyncClient, env: dict[str, str]) -> Invoke:
    """Run a command line in-process against the fake, with no retries (failures come at once)."""
    default_env, default_http = env, http

    async def call(
        *argv: str, env: Mapping[str, str] | None = None, http: httpx.AsyncClient | None = None
    ) -> Result:
        return await invoke_with(argv, default_env if env is None else env, http or default_http)

    return call


@pytest.fixture
async def demo(fake: FakeGitHub, http: httpx.AsyncClient) -> RunnerScaleSet:
    """The scale set `demo` (labels `demo`, `linux`) in `acme`, made through the SDK."""
    async with ScaleSetClient(fake.config_url("acme"), fake.pat(), http_client=http) as client:
        return await client.create_scale_set("demo", labels=["demo", "linux"])
