"""`python -m benchmarks.many_listeners`: one listening process of the many-scale-sets benchmark.

It reads one JSON line on stdin (`impl`: `sdk` or `raw`, `config_url`, `pat`, `sets`, `pool`),
listens on every set in one task group, then answers commands, one a line:

* `cpu SECONDS`: the process's CPU time over that wall time, as a fraction of one core;
* `rss`: the peak resident set size so far, in MB;
* `stop`: cancels the listeners (each deletes its session) and exits.

`sdk` runs one `asc.Listener` per set, all sharing one `ScaleSetClient` (with the SDK's own
httpx client unless `pool` > 0 sizes one). `raw` is the baseline: a minimal listener written
with httpx and dicts, speaking the same protocol (registration exchange, create session,
long-poll loop, acquire, delete message, delete session), one coroutine per set, its pool
sized for its polls.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

import anyio
import anyio.to_thread
import httpx

API = {"api-version": "6.0-preview"}
NIL_UUID = "00000000-0000-0000-0000-000000000000"
MAX_RUNNERS = 10
DESIRED: dict[str, int] = {}
"""The baseline's scaler: the runner count each set wants, by set URL."""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def sized_client(size: int) -> httpx.AsyncClient:
    """An httpx client whose pool holds `size` connections: one per poll plus headroom."""
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0, connect=10.0))


# --------------------------------------------------------------------------- the SDK


class NullScaler:
    """Counts what it is told; starts nothing."""

    def __init__(self) -> None:
        self.desired = 0
        self.started = 0

    async def handle_desired_runner_count(self, count: int) -> int:
        self.desired = count
        return count

    async def handle_job_started(self, job: object) -> None:
        self.started += 1

    async def handle_job_completed(self, job: object) -> None:
        pass


async def listen_sdk(config: dict[str, Any], ready: anyio.Event, stop: anyio.Event) -> None:
    import actions_scaleset as asc

    ready.set()
    pool = int(config.get("pool") or 0)
    http = sized_client(pool) if pool else None
    auth = asc.PersonalAccessToken(config["pat"])
    async with asc.ScaleSetClient(config["config_url"], auth, http_client=http) as client:
        group: asc.ListenerGroup[int] = asc.ListenerGroup()
        for scale_set_id in config["sets"]:
            group.add(
                scale_set_id, asc.Listener(client, scale_set_id, NullScaler(), 0, MAX_RUNNERS, owner="bench")
            )
        async with anyio.create_task_group() as tg:
            tg.start_soon(group.run)
            await stop.wait()
            tg.cancel_scope.cancel()
    if http is not None:
        await http.aclose()


# --------------------------------------------------------------------------- the baseline


async def listen_raw(config: dict[str, Any], ready: anyio.Event, stop: anyio.Event) -> None:
    ready.set()
    sets: list[int] = config["sets"]
    async with sized_client(len(sets) + 20) as http:
        base, _, org = config["config_url"].rstrip("/").rpartition("/")
        response = await http.post(
            f"{base}/api/v3/orgs/{org}/actions/runners/registration-token",
            headers={"Authorization": f"Bearer {config['pat']}"},
        )
        response.raise_for_status()
        response = await http.post(
            f"{base}/api/v3/actions/runner-registration",
            headers={"Authorization": f"RemoteAuth {response.json()['token']}"},
            json={"url": config["config_url"], "runner_event": "register"},
        )
        response.raise_for_status()
        admin_url, admin_token = response.json()["url"], response.json()["token"]
        admin_headers = {"Authorization": f"Bearer {admin_token}"}
        async with anyio.create_task_group() as tg:
            for set_id in sets:
                set_url = f"{admin_url}_apis/runtime/runnerscalesets/{set_id}"
                tg.start_soon(raw_listener, http, set_url, admin_headers)
            await stop.wait()
            tg.cancel_scope.cancel()


async def raw_listener(http: httpx.AsyncClient, set_url: str, admin_headers: dict[str, str]) -> None:
    """Listen on one set; on any HTTP or network error, wait a second and start again."""
    while True:
        try:
            await raw_session(http, set_url, admin_headers)
        except httpx.HTTPError:
            await anyio.sleep(1.0)


async def raw_session(http: httpx.AsyncClient, set_url: str, admin_headers: dict[str, str]) -> None:
    response = await http.post(
        f"{set_url}/sessions",
        params=API,
        headers=admin_headers,
        json={"sessionId": NIL_UUID, "ownerName": "bench"},
    )
    response.raise_for_status()
    session = response.json()
    queue_url = session["messageQueueUrl"]
    queue_headers = {
        "Authorization": f"Bearer {session['messageQueueAccessToken']}",
        "Accept": "application/json; api-version=6.0-preview",
        "X-ScaleSetMaxCapacity": str(MAX_RUNNERS),
    }
    last = 0
    try:
        while True:
            params = {"lastMessageId": str(last)} if last else {}
            response = await http.get(queue_url, params=params, headers=queue_headers, timeout=70.0)
            if response.status_code == 202:
                continue
            response.raise_for_status()
            message = response.json()
            events = json.loads(message["body"])
            available = [e["runnerRequestId"] for e in events if e["messageType"] == "JobAvailable"]
            if available:
                acquired = await http.post(
                    f"{set_url}/acquirejobs", params=API, headers=queue_headers, json=available
                )
                acquired.raise_for_status()
            DESIRED[set_url] = min(MAX_RUNNERS, message["statistics"]["totalAssignedJobs"])
            deleted = await http.delete(f"{queue_url}/{message['messageId']}", headers=queue_headers)
            deleted.raise_for_status()
            last = message["messageId"]
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(30):
            await http.delete(f"{set_url}/sessions/{session['sessionId']}", params=API, headers=admin_headers)


# --------------------------------------------------------------------------- the process


async def commands(ready: anyio.Event, stop: anyio.Event) -> None:
    await ready.wait()
    print("started", flush=True)
    while True:
        line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        words = line.split()
        if not words or words[0] == "stop":
            stop.set()
            return
        if words[0] == "cpu":
            cpu, wall = time.process_time(), time.perf_counter()
            await anyio.sleep(float(words[1]))
            share = (time.process_time() - cpu) / (time.perf_counter() - wall)
            print(f"cpu {share:.6f}", flush=True)
        elif words[0] == "rss":
            print(f"rss {peak_rss_mb():.1f}", flush=True)


async def main() -> None:
    config = json.loads(sys.stdin.readline())
    ready, stop = anyio.Event(), anyio.Event()
    listen = listen_sdk if config["impl"] == "sdk" else listen_raw
    async with anyio.create_task_group() as tg:
        tg.start_soon(commands, ready, stop)
        await listen(config, ready, stop)
    print("stopped", flush=True)


if __name__ == "__main__":
    anyio.run(main)
