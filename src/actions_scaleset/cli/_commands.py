"""The one-shot commands: scale sets, statistics, jobs, runners, JIT configs. Thin I/O.

Each takes the `Context`, talks to GitHub through the public client, and prints one
table (or line) or one JSON object built by `_render`. Failures are raised, never printed
here: `_main` turns them into the one-line error and the exit code.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Final

import anyio

from ..actions import ScaleSetClient
from ..errors import InvalidJitConfigError, NotFoundError, RunnerNotFoundError, ScaleSetNotFoundError
from ..models import GitHubRunner, RunnerScaleSet
from ._context import DEFAULT_GROUP_ID, Context
from ._errors import EXIT_OK, PROG, CliError
from ._render import (
    jit_json,
    jit_table,
    job_json,
    jobs_table,
    runner_json,
    runners_table,
    scale_set_json,
    scale_set_ref,
    scale_set_table,
    scale_sets_table,
    statistics_json,
    stats_table,
)

__all__ = [
    "jit",
    "jobs",
    "runners_list",
    "runners_remove",
    "scale_sets_create",
    "scale_sets_delete",
    "scale_sets_list",
    "scale_sets_show",
    "stats",
]

RUNNER_CHECKS_AT_ONCE: Final = 8
"""`runners list SCALE_SET` asks the Actions service about this many runners at a time."""


def _name(value: str | None) -> str:
    assert value is not None, "argparse requires it"
    return value


# --------------------------------------------------------------------------- scale sets


async def scale_sets_list(ctx: Context) -> int:
    group = ctx.invocation.runner_group
    async with ctx.client() as client:
        group_id = await ctx.runner_group_id(client, group) if group is not None else None
        found = await client.list_scale_sets(group_id)
    found.sort(key=lambda s: (s.name.casefold(), s.id))
    if ctx.out.json_mode:
        ctx.out.json({"scale_sets": [scale_set_json(s) for s in found]})
        return EXIT_OK
    where = f"runner group {group!r} of {ctx.where}" if group is not None else ctx.where
    ctx.out.table(scale_sets_table(found, where))
    if not found:
        ctx.out.line(f"Create one: {PROG} scale-sets create NAME")
    return EXIT_OK


async def scale_sets_show(ctx: Context) -> int:
    async with ctx.client() as client:
        scale_set = await ctx.find_scale_set(client, _name(ctx.invocation.scale_set))
    if ctx.out.json_mode:
        ctx.out.json({"scale_set": scale_set_json(scale_set)})
    else:
        ctx.out.table(scale_set_table(scale_set))
    return EXIT_OK


async def scale_sets_create(ctx: Context) -> int:
    name = _name(ctx.invocation.scale_set)
    labels = ctx.invocation.labels
    async with ctx.client() as client:
        group = ctx.invocation.runner_group
        group_id = await ctx.runner_group_id(client, group) if group is not None else DEFAULT_GROUP_ID
        existing = await client.get_scale_set(name, group_id)
        if existing is not None:
            raise CliError(
                f"a scale set named {name!r} already exists in {ctx.where} (id {existing.id})",
                f"see it: {PROG} scale-sets show {shlex.quote(name)}",
            )
        created = await client.create_scale_set(
            name, runner_group_id=group_id, labels=list(labels) if labels else None
        )
    if ctx.out.json_mode:
        ctx.out.json({"scale_set": scale_set_json(created)})
        return EXIT_OK
    ctx.out.line(f"Created scale set {created.name!r} (id {created.id}) in {ctx.where}.")
    ctx.out.table(scale_set_table(created))
    return EXIT_OK


async def scale_sets_delete(ctx: Context) -> int:
    async with ctx.client() as client:
        scale_set = await ctx.find_scale_set(client, _name(ctx.invocation.scale_set))
        await client.delete_scale_set(scale_set.id)
    if ctx.out.json_mode:
        ctx.out.json({"deleted": scale_set_ref(scale_set)})
    else:
        ctx.out.line(f"Deleted scale set {scale_set.name!r} (id {scale_set.id}) from {ctx.where}.")
    return EXIT_OK


# --------------------------------------------------------------------------- statistics and jobs


async def stats(ctx: Context) -> int:
    """The session-free view: the statistics the scale set carries, and its acquirable jobs."""
    async with ctx.client() as client:
        scale_set = await ctx.find_scale_set(client, _name(ctx.invocation.scale_set))
        acquirable: int | None
        try:
            acquirable = len(await client.get_acquirable_jobs(scale_set.id))
        except ScaleSetNotFoundError:
            raise
        except NotFoundError:  # a tenant may not serve acquirablejobs
            acquirable = None
    if ctx.out.json_mode:
        ctx.out.json(
            {
                "scale_set": scale_set_ref(scale_set),
                "statistics": statistics_json(scale_set.statistics),
                "acquirable_jobs": acquirable,
            }
        )
    else:
        ctx.out.table(stats_table(scale_set, acquirable))
    return EXIT_OK


async def jobs(ctx: Context) -> int:
    name = _name(ctx.invocation.scale_set)
    async with ctx.client() as client:
        scale_set = await ctx.find_scale_set(client, name)
        try:
            waiting = await client.get_acquirable_jobs(scale_set.id)
        except ScaleSetNotFoundError:
            raise
        except NotFoundError:
            raise CliError(
                "this service does not list acquirable jobs (acquirablejobs answered 404)",
                f"see them as they come: {PROG} watch {shlex.quote(name)}",
            ) from None
    if ctx.out.json_mode:
        ctx.out.json({"scale_set": scale_set_ref(scale_set), "jobs": [job_json(job) for job in waiting]})
    else:
        ctx.out.table(jobs_table(scale_set, waiting))
    return EXIT_OK


# --------------------------------------------------------------------------- runners


async def runners_list(ctx: Context) -> int:
    """REST's runners of the scope; with a scale set, those the Actions service says are its own."""
    name = ctx.invocation.scale_set
    async with ctx.client() as client:
        scale_set = await ctx.find_scale_set(client, name) if name is not None else None
        runners = await client.github.list_runners()
        if scale_set is not None:
            runners = await _runners_of(client, scale_set, runners)
    if ctx.out.json_mode:
        ctx.out.json(
            {
                "scale_set": scale_set_ref(scale_set) if scale_set is not None else None,
                "runners": [runner_json(r) for r in runners],
            }
        )
        return EXIT_OK
    of = f"scale set {scale_set.name!r}" if scale_set is not None else ctx.where
    ctx.out.table(runners_table(runners, f"{len(runners)} runner{'' if len(runners) == 1 else 's'} of {of}"))
    return EXIT_OK


def _may_belong(runner: GitHubRunner, scale_set: RunnerScaleSet) -> bool:
    """In the scale set's group, and carrying its labels (when REST shows any)."""
    if runner.runner_group_id is not None and runner.runner_group_id != scale_set.runner_group_id:
        return False
    have = {label.name.casefold() for label in runner.labels}
    return not have or {label.name.casefold() for label in scale_set.labels} <= have


async def _runners_of(
    client: ScaleSetClient, scale_set: RunnerScaleSet, runners: Sequence[GitHubRunner]
) -> list[GitHubRunner]:
    """The runners the Actions service places in `scale_set` (REST does not say), in REST's order."""
    candidates = [r for r in runners if _may_belong(r, scale_set)]
    owned: set[int] = set()
    limiter = anyio.CapacityLimiter(RUNNER_CHECKS_AT_ONCE)

    async def check(runner: GitHubRunner) -> None:
        async with limiter:
            try:
                reference = await client.get_runner(runner.id)
            except RunnerNotFoundError:
                return  # removed meanwhile
        if reference.runner_scale_set_id == scale_set.id:
            owned.add(runner.id)

    async with anyio.create_task_group() as group:
        for runner in candidates:
            group.start_soon(check, runner)
    return [r for r in candidates if r.id in owned]


async def runners_remove(ctx: Context) -> int:
    target = _name(ctx.invocation.runner).strip()
    async with ctx.client() as client:
        runner = await _find_runner(ctx, client, target)
        await client.github.delete_runner(runner.id)
    if ctx.out.json_mode:
        ctx.out.json({"removed": {"id": runner.id, "name": runner.name}})
    else:
        ctx.out.line(f"Removed runner {runner.name!r} (id {runner.id}) from {ctx.where}.")
    return EXIT_OK


async def _find_runner(ctx: Context, client: ScaleSetClient, target: str) -> GitHubRunner:
    hint = f"list them: {PROG} runners list"
    if target.isdigit():
        try:
            return await client.github.get_runner(int(target))
        except NotFoundError:
            raise CliError(f"no runner with id {target} in {ctx.where}", hint) from None
    found = await client.github.list_runners(name=target)
    matches = [r for r in found if r.name == target] or [
        r for r in found if r.name.casefold() == target.casefold()
    ]
    if not matches:
        raise CliError(f"no runner named {target!r} in {ctx.where}", hint)
    return matches[0]


# --------------------------------------------------------------------------- JIT configs


async def jit(ctx: Context) -> int:
    """Register a JIT runner; show its decoded settings, and the secret config only with `--reveal`."""
    from ..runner import JitConfig

    invocation = ctx.invocation
    runner_name = _name(invocation.runner)
    async with ctx.client() as client:
        scale_set = await ctx.find_scale_set(client, _name(invocation.scale_set))
        made = await client.generate_jit_config(
            scale_set.id, name=runner_name, work_folder=invocation.work_folder
        )
    remove = f"{PROG} runners remove {made.runner.id}"
    try:
        config = JitConfig.decode(made.encoded_jit_config)
    except InvalidJitConfigError as exc:
        raise CliError(
            f"runner {made.runner.name!r} (id {made.runner.id}) is registered, but its JIT config "
            f"cannot be decoded: {exc}",
            f"remove it: {remove}",
        ) from None
    encoded = made.encoded_jit_config.get_secret_value() if invocation.reveal else None
    if ctx.out.json_mode:
        ctx.out.json(jit_json(scale_set, made.runner.id, made.runner.name, config, encoded))
        return EXIT_OK
    out = ctx.out
    out.line(
        f"Registered JIT runner {made.runner.name!r} (id {made.runner.id}) "
        f"in scale set {scale_set.name!r} (id {scale_set.id})."
    )
    out.table(jit_table(config, revealed=encoded is not None))
    if encoded is not None:
        out.line("Encoded JIT config (a secret: whoever holds it can take jobs as this runner):")
        out.line(encoded)
    out.line(
        "The runner is now registered with GitHub, offline until a runner starts with this config "
        f"(run.sh --jitconfig ...). To remove it: {remove}"
    )
    return EXIT_OK
