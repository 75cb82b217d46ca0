"""`python -m benchmarks` (`nox -s bench`): the issue-16 figures, SDK beside a raw baseline.

Figures (`--only` picks some, comma-separated):

* `decode`: a 50-event message decoded, events per CPU-second (`benchmarks/decode.py`);
* `burst`: `--jobs` jobs queued at once, until all acquired (`benchmarks/burst.py`);
* `pickup`: one job on an idle queue until acquired, p50/p95/p99 (`benchmarks/pickup.py`);
* `sets`: `--sets` scale sets in one process (`benchmarks/many_sets.py`; env `BENCH_SETS`;
  `--sets 0` skips it);
* `imports`: cold-process import time (`benchmarks/imports.py`);
* `runner`: OAuth assertions signed and v1 messages decrypted (`benchmarks/runner_protocol.py`).

Every figure but `sets` runs `--rounds` interleaved rounds per side. The table goes to
stdout and, with the versions and the machine, to `--results` (default
`benchmarks/RESULTS.md`; `--results -` writes no file).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import anyio

from benchmarks import burst, decode, imports, many_sets, pickup, runner_protocol
from benchmarks._harness import Row, markdown_table, note
from benchmarks._loopback import loopback
from benchmarks._report import render

FIGURES = ("decode", "burst", "pickup", "sets", "imports", "runner")
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="python -m benchmarks",
        parents=[many_sets.parser()],
        description="The SDK beside a raw-httpx baseline, in interleaved rounds; writes RESULTS.md.",
    )
    parse.set_defaults(sets=int(os.environ.get("BENCH_SETS", "1000")))
    parse.add_argument("--only", default=",".join(FIGURES), help=f"figures to run, of {','.join(FIGURES)}")
    parse.add_argument("--rounds", type=int, default=5, help="interleaved rounds per side (the issue: >= 5)")
    parse.add_argument("--jobs", type=int, default=5000, help="jobs per burst round")
    parse.add_argument("--pickups", type=int, default=500, help="pickups per side, over all rounds")
    parse.add_argument(
        "--round-time", type=float, default=0.3, help="CPU seconds per round of decode and runner figures"
    )
    parse.add_argument("--import-runs", type=int, default=3, help="processes per statement per import round")
    parse.add_argument("--results", default=str(RESULTS), help="where to write RESULTS.md; '-' to write none")
    return parse


def chosen(only: str) -> list[str]:
    picked = [name.strip() for name in only.split(",") if name.strip()]
    unknown = sorted(set(picked) - set(FIGURES))
    if unknown:
        raise SystemExit(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(FIGURES)}")
    return picked


def main(argv: list[str] | None = None) -> str:
    """Run the chosen figures; returns the RESULTS.md text (written unless `--results -`)."""
    args = parser().parse_args(argv)
    figures = chosen(args.only)
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)])
    text = anyio.run(measure, args, figures, command)
    if args.results != "-":
        Path(args.results).write_text(text + "\n", encoding="utf-8")
        note(f"wrote {args.results}")
    return text


async def measure(args: argparse.Namespace, figures: list[str], command: str) -> str:
    started = time.perf_counter()
    rows: list[Row] = []
    extra: list[str] = []
    sizes: list[str] = [f"{args.rounds} interleaved rounds per side."]
    many: list[str] | None = None
    if "decode" in figures:
        rows += decode.run(args.rounds, args.round_time)
    if "burst" in figures or "pickup" in figures:
        async with loopback() as rig:
            if "burst" in figures:
                rows += await burst.run(rig, args.rounds, args.jobs)
                sizes.append(f"Burst: {args.jobs:,} jobs per round, one set per listener.")
            if "pickup" in figures:
                pickup_rows, pooled = await pickup.run(rig, args.rounds, args.pickups)
                rows += pickup_rows
                extra += pooled
    if "imports" in figures:
        rows += imports.run(args.rounds, args.import_runs)
        sizes.append(f"Import time: each round is the median of {args.import_runs} processes per statement.")
    if "runner" in figures:
        rows += runner_protocol.run(args.rounds, args.round_time)
    if "sets" in figures and args.sets > 0:
        settings = many_sets.settings_from(args)
        note(f"many sets: {settings.sets} sets per side")
        many = many_sets.table(await many_sets.run(settings), settings)
        sizes.append(f"Figure 4 (many sessions, {settings.sets:,} scale sets): its own table, below.")
    rows.sort(key=lambda row: row.figure)
    seconds = time.perf_counter() - started
    text = render(command=command, seconds=seconds, rows=rows, extra=extra, sizes=sizes, many_sets=many)
    print("\n".join(markdown_table(rows)))
    for line in extra:
        print(line)
    if many is not None:
        print()
        print("\n".join(many))
    print(f"\n{seconds:.0f} s in all")
    return text


if __name__ == "__main__":
    main()
