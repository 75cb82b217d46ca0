"""RESULTS.md: the command, the versions, the machine, the table, and what each figure means."""

from __future__ import annotations

import datetime
import os
import platform
from importlib import metadata
from pathlib import Path

from benchmarks._harness import Row, markdown_table

PACKAGES = ("actions-scaleset", "httpx", "anyio", "attrs", "cattrs", "pyjwt", "cryptography", "hypercorn")


def versions() -> list[str]:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    cores = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cores
    return (
        f"{cores} cores ({usable} usable by this process), {cpu_model()}; "
        f"{platform.system()} {platform.release()} {platform.machine()}"
    )


def environment(command: str, seconds: float) -> list[str]:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return [
        f"- **Date:** {now}",
        f"- **Command:** `{command}` ({seconds:.0f} s in all; `nox -s bench` runs `python -m benchmarks`)",
        f"- **Python:** {python}",
        f"- **Packages:** {', '.join(versions())}",
        f"- **Machine:** {machine()}",
    ]


NOTES = """\
## How to read it

Every figure runs the SDK and the raw baseline in alternating rounds (SDK first in one
round, baseline first in the next), so background load hits both sides alike. Each cell
is the **median [min–max]** over the rounds; the ratio column is the SDK ÷ baseline
*cost* (time or CPU; for a rate, baseline ÷ SDK) of each pair of rounds run back to back,
median [min–max]. Above 1 the SDK is slower. "met" compares the median ratio with the
issue's target. Absolute numbers depend on the machine and its load; the ratios are what
the targets are about.

1. **decode**: one message of 50 `JobAvailable` events (the queue's cap) from bytes.
   SDK: `models.structure(models.load_json(raw), models.RunnerScaleSetMessage)` then
   `msg.events`; baseline: `json.loads` of the message and of its `body`, and the
   `runnerRequestId` of each `JobAvailable`. Events per CPU-second (`time.process_time`).
2. **listener burst**: FakeGitHub in a process of its own on loopback TCP, its queue URL
   carrying `?sessionId=…`; each listener in a process of its own, on a scale set of its
   own, with an instant scaler (acquires everything, starts no runner). The fake queues
   the jobs at once and times until the `acquirejobs` taking the last of them is
   answered; the listening process reports its own CPU (`getrusage`) from just before the
   burst until its poll is parked again. SDK: `asc.Listener` + `asc.ScaleSetClient`;
   baseline: `benchmarks/raw_listener.py` (httpx and dicts: no models, retries or logging).
3. **pickup latency**: the same rig. With the listener's poll parked (the queue idle), the
   fake queues one job and times until that set's `acquirejobs` arrives, both ends on the
   fake's clock. Pickups alternate between the two listeners, one at a time.
4. **many sessions**: `benchmarks/many_sets.py`, below: one process listening on N scale
   sets (peak RSS, idle CPU, time until every poll is parked, pickup latency of one set
   among N). It runs each side once (parking N polls is slow), so it has no rounds.
5. **import time**: wall time of a new `python -c …` process, interpreter start-up
   included on both sides (bytecode cached). The baseline is `import httpx, attrs, cattrs,
   anyio`, the libraries the SDK stands on.
6. **runner protocol**: the runner's OAuth client assertion (RS256, 2048-bit key) as the
   SDK builds it vs `jwt.encode(…, algorithm="RS256")` with the same claims; a v1 pool
   message body (AES-256-CBC, PKCS#7) through the SDK's `decrypt_message_body` vs
   `cryptography`'s decryptor, unpadder and a UTF-8 decode. Per CPU-second.
"""  # noqa: RUF001 - the en dash of the table cells


def render(
    *,
    command: str,
    seconds: float,
    rows: list[Row],
    extra: list[str],
    sizes: list[str],
    many_sets: list[str] | None,
) -> str:
    lines = ["# Benchmark results", "", "Written by `python -m benchmarks`; do not edit by hand.", ""]
    lines += environment(command, seconds)
    lines += ["", "## Figures", ""]
    lines += markdown_table(rows) if rows else ["(no figure selected)"]
    if sizes or extra:
        lines.append("")
        lines += [f"- {line}" for line in [*sizes, *extra]]
    if many_sets is not None:
        lines += ["", "## Many scale sets in one process", "", "```text", *many_sets, "```"]
    lines += ["", NOTES]
    return "\n".join(lines)
