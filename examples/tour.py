"""An offline tour of actions_scaleset: no network, no credentials, about ten seconds.

GitHub is played by `FakeGitHub` in-process, so everything below is the SDK doing
what it does against github.com: the registration exchange, a scale set, a
listener that waits out a stale session and rides out a burst of 503s, and runners
that speak the real runner protocol to take each job.
"""

from __future__ import annotations

import logging
import random

import anyio

import actions_scaleset as asc
from actions_scaleset.runner import Conclusion, Job
from actions_scaleset.testing import FakeGitHub, RunnerFleet

JOBS = 12


class Narrator(asc.NoopMetrics):
    """A MetricsRecorder that prints what the listener sees."""

    def __init__(self) -> None:
        self.last_desired = -1

    def record_job_started(self, job: asc.JobStarted) -> None:
        repository = f"{job.owner_name}/{job.repository_name}"
        print(f"   started   {job.runner_name:10} {repository}: {job.job_display_name}")

    def record_job_completed(self, job: asc.JobCompleted) -> None:
        print(f"   completed {job.runner_name:10} {job.result}")

    def record_desired_runners(self, count: int) -> None:
        if count != self.last_desired:
            print(f"   desired runners: {count}")
            self.last_desired = count


async def run_job(job: Job) -> Conclusion:
    await anyio.sleep(random.uniform(0.05, 0.3))  # a pretend build
    return "succeeded"


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="   (log) %(message)s")
    print("1. Config URLs decide the scope and the REST API base")
    for url in [
        "https://github.com/acme",
        "https://github.com/acme/app",
        "https://ghes.example.com/enterprises/big",
    ]:
        config = asc.GitHubConfig.parse(url, env={})
        print(f"   {url:45} -> {config.scope.value:12} {config.api_url}")

    fake = FakeGitHub(poll_hold=0.1, session_timeout=1.0)
    async with (
        fake.http_client() as http,
        asc.ScaleSetClient(fake.config_url("acme"), fake.pat(), http_client=http) as client,
    ):
        print("\n2. A scale set (the registration exchange happens on the first call)")
        scale_set = await client.ensure_scale_set("linux-x64", labels=["linux"])
        print(f"   {scale_set!r}")

        print(f"\n3. {JOBS} jobs, a listener that finds a stale session, and 503s on the queue")
        stale = client.session(scale_set.id, owner="crashed-listener")
        await stale.open()  # a listener that died without deleting its session
        fake.faults.add(route="message", status=503, times=3)
        for index in range(JOBS):
            fake.enqueue_job(labels=["linux"], repository="acme/app", display_name=f"build #{index + 1}")

        async with anyio.create_task_group() as tg:
            fleet = RunnerFleet(
                client,
                tg,
                scale_set_id=scale_set.id,
                run_job=run_job,
                runner_options={"session_retry_interval": 0.1},
            )
            listener = asc.Listener(
                client,
                scale_set.id,
                fleet,
                min_runners=0,
                max_runners=5,
                metrics=Narrator(),
                session_options={"conflict_backoff": asc.RetryPolicy(initial_delay=0.25, max_delay=0.5)},
            )
            tg.start_soon(listener.run)
            with anyio.fail_after(60):
                while len(fleet.completed) < JOBS or fleet.live:  # noqa: ASYNC110 - a demo's progress loop
                    await anyio.sleep(0.1)
            tg.cancel_scope.cancel()

        conflicts = sum(1 for r in fake.requests_to("session.create") if r.status == 409)
        retried = sum(1 for r in fake.requests_to("message") if r.status == 503)
        print(
            f"   waited out {conflicts} session conflicts, retried {retried} 503s, "
            f"{len(fleet.completed)} jobs done, {len(fake.snapshot().runners)} runners left registered"
        )

        print("\n4. Errors are typed and name the request; secrets never print")
        try:
            await client.get_scale_set_by_id(999)
        except asc.ScaleSetNotFoundError as exc:
            print(f"   {type(exc).__name__}: {str(exc).splitlines()[0]}")
        print(f"   {fake.pat()!r}  {asc.Secret('hunter2')!r}")


if __name__ == "__main__":
    anyio.run(main)
