"""`fake`: a playground. `FakeGitHub` on loopback, a scale set, jobs arriving, until Ctrl-C.

It prints the variables that point every other command (and the SDK) at it, the fake's
personal access token included: a throwaway token of a local fake, so printing it is
the point. Needs the `testing` extra (hypercorn).
"""

from __future__ import annotations

import contextlib
import socket
from typing import Final

import anyio
import httpx

from ..actions import ScaleSetClient
from ._context import Context
from ._errors import EXIT_OK, PROG, CliError, UsageError

__all__ = ["ORGANIZATION", "SCALE_SET", "fake"]

ORGANIZATION: Final = "acme"
SCALE_SET: Final = "demo"
REPOSITORY: Final = f"{ORGANIZATION}/app"
ARRIVAL_RATE: Final = 0.5
"""Jobs per second, on average: one every two seconds."""
MEAN_DURATION: Final = 30.0
POLL_HOLD: Final = 10.0
"""How long the fake holds an empty long poll (it answers at once when something happens)."""


def _require_hypercorn() -> None:
    try:
        import hypercorn  # noqa: F401 - only whether it imports
    except ImportError:
        raise UsageError('fake needs hypercorn: pip install "actions-scaleset[testing]"') from None


def _check_port(port: int) -> None:
    """`OSError` when 127.0.0.1:`port` cannot be bound (as hypercorn binds: address reuse on)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


async def fake(ctx: Context) -> int:
    _require_hypercorn()
    from ..testing import FakeGitHub, Workload

    invocation = ctx.invocation
    github = FakeGitHub(seed=invocation.seed, poll_hold=POLL_HOLD)
    async with contextlib.AsyncExitStack() as stack:
        try:
            _check_port(invocation.port)  # before hypercorn, which leaks its socket when the bind fails
            base_url = await stack.enter_async_context(github.serve(port=invocation.port))
        except OSError as exc:
            raise CliError(
                f"cannot serve on 127.0.0.1:{invocation.port}: {exc.strerror or exc}",
                "choose another --port, or 0 for any free one",
            ) from None
        config_url = github.config_url(ORGANIZATION)
        pat = github.pat()
        # loopback, never through a proxy from the environment
        async with (
            httpx.AsyncClient(trust_env=False) as http,
            ScaleSetClient(config_url, pat, http_client=http) as client,
        ):
            scale_set = await client.create_scale_set(SCALE_SET, labels=[SCALE_SET])
        github.add_workload(
            Workload(
                labels=(SCALE_SET,),
                repository=REPOSITORY,
                jobs=invocation.jobs,
                rate=ARRIVAL_RATE,
                mean_duration=MEAN_DURATION,
                seed=invocation.seed,
            )
        )
        token = pat.token.get_secret_value()  # the fake's own throwaway token: showing it is the point
        if ctx.out.json_mode:
            ctx.out.json(
                {
                    "base_url": base_url,
                    "config_url": config_url,
                    "token": token,
                    "scale_set": {"id": scale_set.id, "name": scale_set.name},
                    "jobs": invocation.jobs,
                    "seed": invocation.seed,
                    "env": {"GITHUB_CONFIG_URL": config_url, "GITHUB_TOKEN": token},
                }
            )
        else:
            _say(ctx, base_url, config_url, token, scale_set.id)
        await anyio.sleep_forever()
    return EXIT_OK  # pragma: no cover - it serves until cancelled


def _say(ctx: Context, base_url: str, config_url: str, token: str, scale_set_id: int) -> None:
    out, invocation = ctx.out, ctx.invocation
    seconds = invocation.jobs / ARRIVAL_RATE
    out.line(f"A fake GitHub serves {base_url} (nothing here reaches github.com). Ctrl-C stops it.")
    out.line(
        f"Scale set {SCALE_SET!r} (id {scale_set_id}) in {ORGANIZATION}: {invocation.jobs} jobs for "
        f"{REPOSITORY} arrive over about {seconds:.0f} s (seed {invocation.seed}); no runner takes them."
    )
    out.line()
    out.line("In another terminal:")
    out.line()
    out.line(f"  export GITHUB_CONFIG_URL={config_url}")
    out.line(f"  export GITHUB_TOKEN={token}")
    out.line(f"  {PROG} scale-sets list")
    out.line(f"  {PROG} stats {SCALE_SET}")
    out.line(f"  {PROG} watch {SCALE_SET}")
    out.line()
    out.line("The token is this fake's own throwaway token, valid only here: printing it is the point.")
