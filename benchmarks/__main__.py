"""`nox -s bench`: SDK vs raw httpx on the same in-process transport, and import time."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import anyio
import httpx

import actions_scaleset as asc
from benchmarks._harness import Comparison, compare

API = "https://api.github.com"
RUNNERS = {
    "total_count": 50,
    "runners": [
        {
            "id": i,
            "name": f"runner-{i}",
            "os": "linux",
            "status": "online",
            "busy": i % 2 == 0,
            "labels": [
                {"id": 1, "name": "self-hosted", "type": "read-only"},
                {"id": 2, "name": "linux", "type": "custom"},
            ],
        }
        for i in range(50)
    ],
}
BODY = json.dumps(RUNNERS).encode()


def transport() -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200, content=BODY))


async def bench_list_runners() -> Comparison:
    async with (
        httpx.AsyncClient(transport=transport()) as raw,
        httpx.AsyncClient(transport=transport()) as sdk_http,
    ):
        github = asc.GitHubClient(
            "https://github.com/acme", asc.PersonalAccessToken("ghp_x"), http_client=sdk_http
        )
        headers = {"Authorization": "Bearer ghp_x", "Accept": "application/vnd.github+json"}

        async def sdk() -> object:
            return await github.list_runners()

        async def baseline() -> object:
            response = await raw.get(
                f"{API}/orgs/acme/actions/runners", params={"per_page": "100"}, headers=headers
            )
            response.raise_for_status()
            return [(r["id"], r["name"], r["busy"]) for r in response.json()["runners"]]

        return await compare("list_runners (50 runners, typed models)", sdk, baseline, per_round=100)


async def bench_registration_token() -> Comparison:
    body = json.dumps(
        {"token": "AABF3JGZDX3P5PMEXLND6TS6FCWO6", "expires_at": "2026-05-04T11:07:21Z"}
    ).encode()
    mock = httpx.MockTransport(lambda request: httpx.Response(201, content=body))
    async with httpx.AsyncClient(transport=mock) as raw, httpx.AsyncClient(transport=mock) as sdk_http:
        github = asc.GitHubClient(
            "https://github.com/acme", asc.PersonalAccessToken("ghp_x"), http_client=sdk_http
        )

        async def sdk() -> object:
            return await github.create_registration_token()

        async def baseline() -> object:
            response = await raw.post(
                f"{API}/orgs/acme/actions/runners/registration-token",
                headers={"Authorization": "Bearer ghp_x"},
            )
            response.raise_for_status()
            return response.json()["token"]

        return await compare("create_registration_token (one request)", sdk, baseline)


def import_time(statement: str, runs: int = 9) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def bench_import() -> Comparison:
    sdk = baseline = 0.0
    sdk_runs, base_runs = [], []
    for _ in range(3):  # interleave so background load hits both sides alike
        sdk_runs.append(import_time("import actions_scaleset", runs=3))
        base_runs.append(import_time("import httpx, attrs, cattrs, anyio", runs=3))
    sdk, baseline = statistics.median(sdk_runs), statistics.median(base_runs)
    return Comparison("import (vs httpx+attrs+cattrs+anyio; goal <= 1.25x)", sdk, baseline)


async def main() -> None:
    results = [await bench_registration_token(), await bench_list_runners(), bench_import()]
    print("actions_scaleset benchmarks (median of interleaved rounds; ratios are what count)")
    for result in results:
        print(" ", result.line())


if __name__ == "__main__":
    anyio.run(main)
