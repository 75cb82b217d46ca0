"""Every Python block in README.md and docs/*.md runs, against FakeGitHub where it needs GitHub.

Each block is found by a line only it has (`Example.needle`) and run as written:

* a block calling `anyio.run(main, ...)` runs `main` here, on asyncio and on trio;
* a block with top-level `await` runs as a notebook cell would;
* a block of `>>>` lines runs as a doctest, so the reprs it shows are checked;
* the names a block uses without defining them (`client`, `scale_set`, `fake` ...) come
  from `Example.setup`, and `asc.ScaleSetClient` is pointed at the fake, with the fake's
  credentials, when the block talks to GitHub;
* a block that runs for ever (`Listener.run()`) is cancelled once `Example.until` holds,
  and `Example.check` asserts what it did.

A block that only shows a shape has `<!-- shape-only -->` on the line before it;
`SHAPE_ONLY` lists them. A block that is neither run here nor marked fails the suite.
"""

from __future__ import annotations

import ast
import doctest
import functools
import inspect
import re
import ssl
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import actions_scaleset as asc
import actions_scaleset.runner
from actions_scaleset.models import JitRunnerConfig, Label, RunnerReference, RunnerScaleSet
from actions_scaleset.testing import FakeGitHub, JobState
from tests.keys import pem

ROOT = Path(__file__).resolve().parents[2]
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
SHAPE_ONLY_MARK = "<!-- shape-only -->"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.S | re.M)
TIMEOUT = 30.0

SHAPE_ONLY: tuple[tuple[str, str], ...] = ()
"""(page, needle) of every block marked shape-only: they are the exception, so they are listed."""


# --------------------------------------------------------------------------- the blocks


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    code: str
    shape_only: bool

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def python_blocks() -> list[Block]:
    found = []
    for path in PAGES:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            before = text[: match.start()].rstrip().rsplit("\n", 1)[-1].strip()
            found.append(
                Block(
                    page=path.relative_to(ROOT).as_posix(),
                    line=text.count("\n", 0, match.start()) + 1,
                    code=textwrap.dedent(match.group("code")),
                    shape_only=before == SHAPE_ONLY_MARK,
                )
            )
    return found


def the_block(page: str, needle: str) -> Block:
    matches = [b for b in python_blocks() if b.page == page and needle in b.code]
    assert len(matches) == 1, f"{len(matches)} Python blocks in {page} contain {needle!r}"
    return matches[0]


# --------------------------------------------------------------------------- running them


@dataclass
class Run:
    """One block's run: the fake it talks to, the names it sees, what it printed."""

    fake: FakeGitHub
    http: httpx.AsyncClient
    mp: pytest.MonkeyPatch
    tmp_path: Path
    ns: dict[str, Any] = field(default_factory=dict)
    printed: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def print(self, *args: object, sep: str = " ", end: str = "\n", **_: object) -> None:
        self.printed.append(sep.join(map(str, args)))

    def client(self, scope: str = "acme") -> asc.ScaleSetClient:
        """A real ScaleSetClient on the fake, for setting things up."""
        return asc.ScaleSetClient(self.fake.config_url(scope), self.fake.pat(), http_client=self.http)

    def point_scale_set_client_at_the_fake(self) -> None:
        """`asc.ScaleSetClient(<any config URL>, <any credentials>)` talks to the fake, as the fake's PAT."""
        fake, http = self.fake, self.http

        class ScaleSetClientOnTheFake(asc.ScaleSetClient):
            def __init__(self, config_url: str | asc.GitHubConfig, auth: Any = None, **_: Any) -> None:
                config = (
                    config_url
                    if isinstance(config_url, asc.GitHubConfig)
                    else asc.GitHubConfig.parse(config_url)
                )
                super().__init__(fake.config_url(_scope(config)), fake.pat(), http_client=http)

        self.mp.setattr(asc, "ScaleSetClient", ScaleSetClientOnTheFake)

    def scale_sets(self) -> dict[str, int]:
        return {s.name: s.id for s in self.fake.snapshot().scale_sets}


def _scope(config: asc.GitHubConfig) -> str:
    if config.enterprise:
        return f"enterprises/{config.enterprise}"
    if config.repository:
        return f"{config.organization}/{config.repository}"
    return str(config.organization)


Setup = Callable[[Run], Awaitable[None]]
Until = Callable[[Run], bool]
Check = Callable[[Run], Awaitable[None]]


async def _nothing(run: Run) -> None:
    pass


@dataclass(frozen=True)
class Example:
    page: str
    needle: str
    setup: Setup = _nothing
    until: Until | None = None
    """For a block that never ends: cancel it once this holds."""
    check: Check = _nothing
    github: bool = False
    """Point `asc.ScaleSetClient` at the fake."""
    fake_options: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.needle[:40]}"


async def execute(block: Block, run: Run, example: Example) -> None:
    """Run `block` as written; its `anyio.run(...)` entry points run here, on this backend."""
    if block.code.lstrip().startswith(">>>"):
        _doctest(block, run.ns)
        return
    entry_points: list[tuple[Callable[..., Awaitable[object]], tuple[object, ...]]] = []

    def captured_run(func: Callable[..., Awaitable[object]], *args: object, **_: object) -> None:
        entry_points.append((func, args))

    run.mp.setattr(anyio, "run", captured_run)
    run.ns.setdefault("__name__", "docs_example")
    run.ns.setdefault("print", run.print)
    code = compile(block.code, block.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    with anyio.fail_after(TIMEOUT):
        result = eval(code, run.ns)
        awaitables: list[Awaitable[object]] = [result] if inspect.isawaitable(result) else []
        awaitables += [func(*args) for func, args in entry_points]
        for awaitable in awaitables:
            await _run_until(awaitable, run, example.until)
        if example.until is not None:
            assert example.until(run), f"{block.name} stopped before doing its work"


async def _run_until(awaitable: Awaitable[object], run: Run, until: Until | None) -> None:
    if until is None:
        await awaitable
        return
    async with anyio.create_task_group() as tg:

        async def body() -> None:
            await awaitable
            tg.cancel_scope.cancel()

        tg.start_soon(body)
        while not until(run):  # noqa: ASYNC110 - polling state the fake does not signal
            await anyio.sleep(0.02)
        tg.cancel_scope.cancel()


def _doctest(block: Block, globs: dict[str, Any]) -> None:
    test = doctest.DocTestParser().get_doctest(block.code, globs, block.name, block.page, block.line)
    output: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=output.append)
    assert runner.failures == 0, "".join(output)


# --------------------------------------------------------------------------- setups and checks


async def _scale_set(run: Run, name: str = "linux", labels: tuple[str, ...] = ("linux",)) -> None:
    """`client` and `scale_set` on the fake, as the page's earlier blocks left them."""
    client = run.client()
    await client.__aenter__()
    run.state["close"] = client
    run.ns.update(
        asc=asc,
        anyio=anyio,
        client=client,
        fake=run.fake,
        scale_set=await client.ensure_scale_set(name, labels=list(labels)),
    )
    run.ns["scale_set_id"] = run.ns["scale_set"].id


def _polled(times: int = 1) -> Until:
    return lambda run: len(run.fake.requests_to("message")) >= times


def _routes(run: Run) -> list[str]:
    return [str(r.route) for r in run.fake.requests]


async def check_quick_start(run: Run) -> None:
    assert run.scale_sets().keys() == {"linux"}
    routes = _routes(run)
    assert {"jit_config", "agents.delete"} <= set(routes)  # a JIT runner made, then removed
    assert run.fake.snapshot().runners == ()
    assert {"session.create", "message"} <= set(routes)  # then the listener listened
    assert "session.delete" in routes  # and left no stale session behind


async def check_home_page(run: Run) -> None:
    assert run.scale_sets().keys() == {"linux"}
    assert {"session.create", "message", "session.delete"} <= set(_routes(run))


async def check_config_url(run: Run) -> None:
    config = run.ns["config"]
    assert config.scope is asc.Scope.ORGANIZATION
    assert config.api_url == "https://api.github.com"
    assert config.is_hosted is True
    assert config.registration_token_path == "/orgs/my-org/actions/runners/registration-token"


async def setup_ssl(run: Run) -> None:
    """The CA bundle of the page does not exist here: record the request for it instead."""
    real = ssl.create_default_context
    asked: list[str | None] = []

    def create_default_context(
        purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH, *, cafile: str | None = None, **kwargs: Any
    ) -> ssl.SSLContext:
        asked.append(cafile)
        if cafile == "/etc/ssl/ghes-ca.pem":
            return real(purpose)
        return real(purpose, cafile=cafile, **kwargs)

    run.mp.setattr(ssl, "create_default_context", create_default_context)
    run.state["cafiles"] = asked
    run.ns.update(asc=asc, auth=asc.PersonalAccessToken("ghp_example"))


async def check_ssl(run: Run) -> None:
    assert run.state["cafiles"] == ["/etc/ssl/ghes-ca.pem"]
    assert isinstance(run.ns["tls"], ssl.SSLContext)
    assert run.ns["github"].config.api_url == "https://ghes.example.com/api/v3"
    await run.ns["client"].aclose()


async def setup_asc(run: Run) -> None:
    run.ns["asc"] = asc


async def check_pat(run: Run) -> None:
    assert "ghp_" not in repr(run.ns["auth"])


async def setup_app_pem(run: Run) -> None:
    run.mp.chdir(run.tmp_path)
    (run.tmp_path / "app.pem").write_text(pem(), encoding="utf-8")
    run.ns["asc"] = asc


async def check_app(run: Run) -> None:
    auth = run.ns["auth"]
    assert isinstance(auth, asc.GitHubApp)
    assert "PRIVATE KEY" not in repr(auth)


async def setup_listening(run: Run) -> None:
    run.state["job"] = None


def listening_until(run: Run) -> bool:
    """Once the listener made its scale set, queue a job for it; done when the job was taken."""
    if run.state["job"] is None:
        if "linux-x64" not in run.scale_sets():
            return False
        run.state["job"] = run.fake.enqueue_job(labels=["linux"], repository="my-org/app").job_id
    return bool(run.fake.job(run.state["job"]).state is not JobState.AVAILABLE)


async def check_listening(run: Run) -> None:
    assert "linux-x64" in run.scale_sets()  # made by ensure=EnsureScaleSet(...)
    assert "acquire_jobs" in _routes(run)


async def setup_session(run: Run) -> None:
    await _scale_set(run)
    run.state["job"] = run.fake.enqueue_job(labels=["linux"], repository="acme/app").job_id


async def check_session(run: Run) -> None:
    routes = _routes(run)
    assert {"acquire_jobs", "message.delete"} <= set(routes)
    assert run.fake.job(run.state["job"]).state is not JobState.AVAILABLE
    assert any("RunnerScaleSetStatistic(" in line for line in run.printed)


class _Scaler:
    async def handle_desired_runner_count(self, count: int) -> int:
        return count

    async def handle_job_started(self, job: asc.JobStarted) -> None:
        pass

    async def handle_job_completed(self, job: asc.JobCompleted) -> None:
        pass


async def setup_metrics(run: Run) -> None:
    import prometheus_client

    await _scale_set(run)
    run.ns["scaler"] = _Scaler()
    served: list[tuple[int, Any]] = []
    run.state["served"] = served
    run.mp.setattr(
        prometheus_client,
        "start_http_server",
        lambda port, registry=None, **_: served.append((port, registry)),
    )


async def check_metrics(run: Run) -> None:
    metrics = run.ns["metrics"]
    assert run.state["served"] == [(8080, metrics.registry)]
    names = {sample.name for family in metrics.registry.collect() for sample in family.samples}
    assert {"gha_desired_runners", "gha_max_runners", "gha_assigned_jobs"} <= names


async def setup_payload(run: Run) -> None:
    from actions_scaleset.models import format_job_events

    run.ns["payload"] = {
        "messageId": 1,
        "messageType": "RunnerScaleSetJobMessages",
        "body": format_job_events(
            [asc.JobAvailable(runner_request_id=7, repository_name="app", owner_name="acme")]
        ),
        "statistics": {"totalAvailableJobs": 1, "totalAssignedJobs": 0},
    }


async def check_payload(run: Run) -> None:
    message = run.ns["message"]
    assert [job.runner_request_id for job in message.jobs_available] == [7]
    assert message.statistics.total_available_jobs == 1


async def setup_retries(run: Run) -> None:
    run.ns.update(asc=asc, url="https://github.com/my-org", auth=asc.PersonalAccessToken("ghp_example"))


async def check_retries(run: Run) -> None:
    assert run.ns["policy"].decide(1, 503, {}) == 5.0
    assert run.ns["policy"].decide(1, 500, {}) is None
    await run.ns["github"].aclose()


async def _jit_blob(run: Run) -> str:
    await _scale_set(run)
    client: asc.ScaleSetClient = run.ns["client"]
    jit = await client.generate_jit_config(run.ns["scale_set_id"], name="runner-1")
    return jit.encoded_jit_config.get_secret_value()


async def setup_runner(run: Run) -> None:
    blob = await _jit_blob(run)
    run.ns.clear()
    run.ns["blob"] = blob
    run.state["job"] = run.fake.enqueue_job(labels=["linux"], repository="acme/app").job_id
    run.mp.setattr(
        actions_scaleset.runner,
        "RunnerClient",
        functools.partial(actions_scaleset.runner.RunnerClient, http_client=run.http),
    )


def runner_until(run: Run) -> bool:
    return run.fake.job(run.state["job"]).state is JobState.COMPLETED


async def check_runner(run: Run) -> None:
    assert run.fake.job(run.state["job"]).state is JobState.COMPLETED
    assert any(b"hello from Python" in blob for blob in run.fake.blobs.values())


async def setup_jit_config(run: Run) -> None:
    blob = await _jit_blob(run)
    run.mp.chdir(run.tmp_path)
    run.ns["config"] = actions_scaleset.runner.JitConfig.decode(blob)


async def check_jit_config(run: Run) -> None:
    assert {p.name for p in (run.tmp_path / "runner").iterdir()} == {
        ".runner",
        ".credentials",
        ".credentials_rsaparams",
    }
    assert "*" in str(run.ns["config"].encode())


async def setup_http_core(run: Run) -> None:
    blob = await _jit_blob(run)
    run.ns.update(
        config=actions_scaleset.runner.JitConfig.decode(blob),
        RunnerClient=actions_scaleset.runner.RunnerClient,
    )


async def check_http_core(run: Run) -> None:
    runner = run.ns["runner"]
    assert runner.http is run.ns["http"]
    assert runner.http.clock() == 1_777_889_641.0
    await run.ns["http"].client.aclose()


async def check_scale_sets(run: Run) -> None:
    assert run.printed[0].startswith("RunnerScaleSet(id=")
    assert "linux-x64" in run.printed[0]
    assert int(run.printed[1]) > 0  # the runner's id
    assert run.fake.snapshot().runners == ()  # and it was removed


async def setup_reprs(run: Run) -> None:
    run.ns.update(
        scale_set=RunnerScaleSet(
            id=7, name="linux-x64", runner_group_name="Default", labels=(Label("linux"), Label("x64"))
        ),
        jit=JitRunnerConfig(
            runner=RunnerReference(id=12, name="runner-1", runner_scale_set_id=7),
            encoded_jit_config=asc.Secret("a JIT config"),
        ),
    )


async def check_testing_module(run: Run) -> None:
    tests = [value for name, value in run.ns.items() if name.startswith("test_")]
    assert tests
    for test in tests:
        await test()


async def setup_fake(run: Run) -> None:
    run.ns.update(asc=asc, fake=run.fake)


async def check_served(run: Run) -> None:
    assert run.ns["base_url"].startswith("http://127.0.0.1:")
    assert run.fake.base_url == "http://fake-github.local"  # no longer served


async def check_fleet(run: Run) -> None:
    fleet = run.ns["fleet"]
    assert [job.result for job in fleet.completed] == ["succeeded"]
    assert fleet.failures == []


async def check_my_cloud(run: Run) -> None:
    from examples.listener.provisioner import NewRunner

    async with run.ns["MyCloud"]() as cloud:
        handle = await cloud.start(NewRunner("linux-1", 7, "linux", asc.Secret("jit")))
        assert await cloud.running() == [handle]
        await cloud.stop(handle)
        await cloud.stop(handle)  # gone already
        assert await cloud.running() == []


async def check_jobs(run: Run) -> None:
    assert run.fake.job(run.ns["job"].job_id).state is JobState.COMPLETED  # cancelled before it ran
    assert all(s.name != "linux" for s in run.fake.snapshot().scale_sets)


async def check_workload(run: Run) -> None:
    assert len(run.fake.snapshot().jobs) == 50


async def setup_clock(run: Run) -> None:
    run.ns["FakeGitHub"] = FakeGitHub


async def check_clock(run: Run) -> None:
    clock = run.ns["clock"]
    assert clock.now == 1_777_889_641.0 + 3600
    assert run.ns["fake"].clock is clock


async def check_faults(run: Run) -> None:
    assert len(run.fake.faults.pending) == 7


async def check_looking(run: Run) -> None:
    assert run.fake.requests_to("scale_sets.create")  # the setup's requests, there to be looked at


async def _close(run: Run) -> None:
    client = run.state.pop("close", None)
    if client is not None:
        await client.__aexit__(None, None, None)


# --------------------------------------------------------------------------- the registry

EXAMPLES: tuple[Example, ...] = (
    Example(
        "README.md",
        "jit = await client.generate_jit_config",
        until=_polled(),
        check=check_quick_start,
        github=True,
    ),
    Example("docs/index.md", "class MyScaler:", until=_polled(), check=check_home_page, github=True),
    Example("docs/configuration.md", "asc.GitHubConfig.parse(", check=check_config_url),
    Example("docs/configuration.md", "ssl.create_default_context(", setup=setup_ssl, check=check_ssl),
    Example("docs/authentication.md", 'asc.PersonalAccessToken("ghp_...")', setup=setup_asc, check=check_pat),
    Example("docs/authentication.md", "asc.GitHubApp(", setup=setup_app_pem, check=check_app),
    Example(
        "docs/listening.md",
        "class MyScaler:",
        setup=setup_listening,
        until=listening_until,
        check=check_listening,
        github=True,
    ),
    Example(
        "docs/listening.md",
        "async with client.session(",
        setup=setup_session,
        until=_polled(3),
        check=check_session,
    ),
    Example(
        "docs/listening.md",
        "start_http_server(8080",
        setup=setup_metrics,
        until=_polled(),
        check=check_metrics,
    ),
    Example(
        "docs/many-scale-sets.md",
        "asc.ListenerGroup()",
        until=lambda run: (
            {"linux-x64", "linux-arm64", "gpu"} <= run.scale_sets().keys()
            and len({r.path for r in run.fake.requests_to("session.create")}) == 3
            and len(run.fake.requests_to("message")) >= 3
        ),
        github=True,
    ),
    Example(
        "docs/models.md",
        "structure(payload, RunnerScaleSetMessage)",
        setup=setup_payload,
        check=check_payload,
    ),
    Example("docs/reference-listener.md", "class MyCloud:", check=check_my_cloud),
    Example("docs/retries.md", "asc.RetryPolicy(", setup=setup_retries, check=check_retries),
    Example(
        "docs/runner.md",
        "async with RunnerClient(config) as runner:",
        setup=setup_runner,
        until=runner_until,
        check=check_runner,
        fake_options={"require_acquire": False},
    ),
    Example("docs/runner.md", 'config.write("runner/")', setup=setup_jit_config, check=check_jit_config),
    Example("docs/runner.md", "HTTPCore(", setup=setup_http_core, check=check_http_core),
    Example("docs/scale-sets.md", "print(scale_set)", check=check_scale_sets, github=True),
    Example("docs/scale-sets.md", ">>> scale_set", setup=setup_reprs),
    Example("docs/testing.md", "async def test_", check=check_testing_module),
    Example("docs/testing.md", "async with fake.serve() as base_url", setup=setup_fake, check=check_served),
    Example("docs/testing.md", "RunnerFleet(client, tg", setup=_scale_set, check=check_fleet),
    Example("docs/testing.md", "fake.cancel_job(", setup=_scale_set, check=check_jobs),
    Example("docs/testing.md", "fake.add_workload(", setup=setup_fake, check=check_workload),
    Example("docs/testing.md", "class Clock:", setup=setup_clock, check=check_clock),
    Example("docs/testing.md", "fake.faults.add(", setup=setup_fake, check=check_faults),
    Example("docs/testing.md", "fake.requests_to(", setup=_scale_set, check=check_looking),
)


def _examples() -> list[Any]:
    return [pytest.param(example, id=example.id) for example in EXAMPLES]


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("example", _examples())
def test_the_documented_example_runs(
    example: Example, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = the_block(example.page, example.needle)
    assert not block.shape_only, f"{block.name} is marked shape-only but also run here"
    real_run = anyio.run
    fake = FakeGitHub(poll_hold=0.05, **example.fake_options)

    async def main() -> None:
        async with fake.http_client() as http:
            run = Run(fake=fake, http=http, mp=monkeypatch, tmp_path=tmp_path)
            if example.github:
                run.point_scale_set_client_at_the_fake()
            try:
                with anyio.fail_after(TIMEOUT):
                    await example.setup(run)
                await execute(block, run, example)
                await example.check(run)
            finally:
                await _close(run)

    real_run(main, backend=backend)


def test_every_python_block_is_run_or_marked_as_a_shape() -> None:
    run = {the_block(e.page, e.needle) for e in EXAMPLES}
    marked = {b for b in python_blocks() if b.shape_only}
    neither = [b.name for b in python_blocks() if b not in run and b not in marked]
    assert neither == [], "add these blocks to EXAMPLES, or mark them <!-- shape-only -->"


def test_the_shape_only_blocks_are_the_listed_exceptions() -> None:
    marked = sorted(b.name for b in python_blocks() if b.shape_only)
    listed = sorted(the_block(page, needle).name for page, needle in SHAPE_ONLY)
    assert marked == listed, f"{len(marked)} blocks are marked shape-only, SHAPE_ONLY lists {len(listed)}"
