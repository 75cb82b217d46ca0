"""Figure 5, import time: the wall time of a fresh `python -c STATEMENT` process.

SDK: `import actions_scaleset as a; a.Listener` (what a listener needs), and plain
`import actions_scaleset`; baseline: `import httpx, attrs, cattrs, anyio`, the libraries it
stands on. Every run is a new interpreter (bytecode caches warm, nothing imported), so the
interpreter's own start-up is in both sides. A round runs each statement `runs` times,
interleaved, and keeps the median of each. Target: the SDK's listener import costs no more
than its dependencies' (at most 1.0x).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from benchmarks._harness import Row, note

LISTENER = "import actions_scaleset as a; a.Listener"
PLAIN = "import actions_scaleset"
BASELINE = "import httpx, attrs, cattrs, anyio"
TARGET = 1.0


def wall_ms(statement: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return (time.perf_counter() - started) * 1e3


def run(rounds: int, runs: int) -> list[Row]:
    statements = (LISTENER, PLAIN, BASELINE)
    for statement in statements:  # bytecode compiled, files in the page cache
        wall_ms(statement)
    note(f"imports: {rounds} rounds of {runs} runs of each of {len(statements)} statements")
    per_round: dict[str, list[float]] = {s: [] for s in statements}
    for index in range(rounds):
        times: dict[str, list[float]] = {s: [] for s in statements}
        for run_index in range(runs):
            ordered = statements if (index + run_index) % 2 == 0 else statements[::-1]
            for statement in ordered:
                times[statement].append(wall_ms(statement))
        for statement in statements:
            per_round[statement].append(statistics.median(times[statement]))
    baseline = tuple(per_round[BASELINE])
    return [
        Row("5 import time", f"`{LISTENER}` (ms)", tuple(per_round[LISTENER]), baseline, target=TARGET),
        Row("5 import time", f"`{PLAIN}` (ms)", tuple(per_round[PLAIN]), baseline),
    ]
