"""An offline tour of actions_scaleset: no network, no credentials.

GitHub is played by an in-process `httpx.MockTransport`, so everything below is what
the SDK really does on the wire: config URLs, typed errors, retries with Retry-After,
rate limits, and secrets that never print.
"""

from __future__ import annotations

import json

import anyio
import httpx

import actions_scaleset as asc

API = "https://api.github.com"


def fake_github() -> httpx.MockTransport:
    attempts = {"registration": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/orgs/acme/actions/runners/registration-token":
            attempts["registration"] += 1
            if attempts["registration"] == 1:  # a passing outage, with Retry-After
                return httpx.Response(503, headers={"Retry-After": "1"})
            return httpx.Response(201, json={"token": "AABF3JGZDX3P5PMEXLND6TS6FCWO6"})
        if path == "/orgs/acme/actions/runners":
            return httpx.Response(
                200,
                json={
                    "total_count": 2,
                    "runners": [
                        {"id": 1, "name": "linux-1", "status": "online", "busy": True},
                        {"id": 2, "name": "linux-2", "status": "offline", "busy": False},
                    ],
                },
            )
        if path == "/orgs/acme/actions/runners/generate-jitconfig":
            return httpx.Response(
                409,
                json={"message": "Already exists - A runner with the name linux-1 exists."},
                headers={"X-GitHub-Request-Id": "DEMO:1"},
            )
        return httpx.Response(404, json={"message": "Not Found"})

    return httpx.MockTransport(handle)


async def main() -> None:
    print("1. Config URLs decide the scope and the REST API base")
    for url in [
        "https://github.com/acme",
        "https://github.com/acme/app",
        "https://ghes.example.com/enterprises/big",
    ]:
        config = asc.GitHubConfig.parse(url, env={})
        print(f"   {url:45} -> {config.scope.value:12} {config.api_url}")
    try:
        asc.GitHubConfig.parse("https://github.com/a/b/c")
    except asc.InvalidConfigURLError as exc:
        print(f"   invalid: {str(exc)[:90]}…")

    print("\n2. Talking to (fake) GitHub, with a retry after a 503")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with httpx.AsyncClient(transport=fake_github()) as http_client:
        auth = asc.PersonalAccessToken("ghp_demo_token_never_printed")
        github = asc.GitHubClient("https://github.com/acme", auth, http_client=http_client)
        github.http.sleep = sleep
        token = await github.create_registration_token()
        print(f"   waited {waits} s (Retry-After), then got {token!r}")
        for runner in await github.list_runners():
            print(f"   runner {runner.name}: {runner.status}, busy={runner.busy}")

        print("\n3. Errors are typed and say which request failed")
        try:
            await github.generate_jit_config("linux-1")
        except asc.ConflictError as exc:
            print(f"   {type(exc).__name__}: {exc}")

    print("\n4. Secrets never print")
    print(f"   {auth!r}, {asc.Secret('hunter2')}, {json.dumps(str(token.token))}")


if __name__ == "__main__":
    anyio.run(main)
