"""`nox -s bench`: SDK vs raw httpx on the same in-process transport, import time, and many
scale sets in one process (`--sets N`, default 1,000; `--sets 0` skips it; env `BENCH_SETS`)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import anyio
import httpx

import actions_scaleset as asc
from benchmarks import many_sets
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


def _message_body() -> bytes:
    events = [
        {
            "messageType": "JobAvailable",
            "runnerRequestId": 7000 + i,
            "repositoryName": "widgets",
            "ownerName": "octo-org",
            "jobDisplayName": f"test ({i})",
            "requestLabels": ["linux"],
            "queueTime": "2026-05-04T10:07:01.1234567Z",
            "acquireJobUrl": "https://x.example/acquirejobs",
        }
        for i in range(50)
    ]
    message = {
        "messageId": 100028209,
        "messageType": "RunnerScaleSetJobMessages",
        "body": json.dumps(events),
        "statistics": {"totalAvailableJobs": 50, "totalAssignedJobs": 50},
    }
    return json.dumps(message).encode()


async def bench_message_poll() -> Comparison:
    """One long-poll answer carrying 50 JobAvailable events (the spec's per-message cap), decoded."""
    import jwt

    token = jwt.encode({"exp": 4_000_000_000}, "benchmark-key-not-verified-0123456789", algorithm="HS256")
    message = _message_body()
    session = {
        "sessionId": "3f6c1b9e-7a2d-4c58-9e0f-5b8a1d2c4e67",
        "ownerName": "bench",
        "messageQueueUrl": "https://broker.example/message",
        "messageQueueAccessToken": token,
        "statistics": {},
    }

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/registration-token"):
            return httpx.Response(201, json={"token": "REG"})
        if path.endswith("/runner-registration"):
            return httpx.Response(200, json={"url": "https://pipelines.example/t/", "token": token})
        if path.endswith("/sessions"):
            return httpx.Response(200, json=session)
        if request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(200, content=message)

    mock = httpx.MockTransport(handle)
    async with httpx.AsyncClient(transport=mock) as raw, httpx.AsyncClient(transport=mock) as sdk_http:
        client = asc.ScaleSetClient(
            "https://github.com/acme", asc.PersonalAccessToken("ghp_x"), http_client=sdk_http
        )
        async with client.session(1, owner="bench") as mq:

            async def sdk() -> object:
                got = await mq.get_message(7, max_capacity=10)
                assert got is not None
                return [job.runner_request_id for job in got.jobs_available]

            async def baseline() -> object:
                response = await raw.get(
                    "https://broker.example/message",
                    params={"lastMessageId": "7"},
                    headers={"Authorization": f"Bearer {token}", "X-ScaleSetMaxCapacity": "10"},
                )
                response.raise_for_status()
                payload = response.json()
                return [
                    e["runnerRequestId"]
                    for e in json.loads(payload["body"])
                    if e["messageType"] == "JobAvailable"
                ]

            return await compare("message poll (50 events, typed)", sdk, baseline, per_round=100)


def import_time(statement: str, runs: int = 9) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def bench_import(statement: str, name: str) -> Comparison:
    sdk_runs, base_runs = [], []
    for _ in range(3):  # interleave so background load hits both sides alike
        sdk_runs.append(import_time(statement, runs=3))
        base_runs.append(import_time("import httpx, attrs, cattrs, anyio", runs=3))
    return Comparison(name, statistics.median(sdk_runs), statistics.median(base_runs))


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", parents=[many_sets.parser()])
    parser.set_defaults(sets=int(os.environ.get("BENCH_SETS", "1000")))
    args = parser.parse_args()
    results = [
        await bench_registration_token(),
        await bench_message_poll(),
        await bench_list_runners(),
        bench_import("import actions_scaleset", "import (vs httpx+attrs+cattrs+anyio; goal <= 1.25x)"),
        bench_import(
            "import actions_scaleset as a; a.ScaleSetClient; a.Listener; a.GitHubApp",
            "import + load every client layer",
        ),
    ]
    print("actions_scaleset benchmarks (median of interleaved rounds; ratios are what count)")
    for result in results:
        print(" ", result.line())
    if args.sets > 0:
        settings = many_sets.settings_from(args)
        print()
        for line in many_sets.table(await many_sets.run(settings), settings):
            print(line)


if __name__ == "__main__":
    anyio.run(main)
