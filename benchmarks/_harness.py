"""What every figure shares: interleaved rounds, median [min-max], cost ratios, the Markdown table.

Each figure runs the SDK and the baseline in alternating rounds (SDK, baseline, baseline,
SDK, …), so machine noise hits both sides alike. A `Row` keeps every round's value of each
side; it shows the median and the range, and the SDK ÷ baseline ratio of each pair of
rounds run back to back, as a cost (time, CPU): above 1 the SDK is slower.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import attrs

DASH = "\u2013"
"""The en dash of `median [min–max]`."""  # noqa: RUF001
TIMES = "\u00d7"


@attrs.frozen
class Spread:
    """One side's value in each round."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def show(self, digits: int) -> str:
        if not self.values:
            return "n/a"
        low, high = min(self.values), max(self.values)
        return f"{self.median:,.{digits}f} [{low:,.{digits}f}{DASH}{high:,.{digits}f}]"


@attrs.frozen
class Row:
    """One figure: the SDK and the baseline, round by round, and the issue's target."""

    figure: str
    measure: str
    sdk: tuple[float, ...]
    baseline: tuple[float, ...]
    digits: int = 1
    higher_is_better: bool = False
    """A rate (events per second): the cost ratio is then baseline ÷ SDK."""
    target: float | None = None
    """The most the cost ratio may be; None when the issue sets no target for this row."""
    note: str = ""

    @property
    def ratios(self) -> tuple[float, ...]:
        """Cost ratio of each pair of rounds (SDK ÷ baseline as time; baseline ÷ SDK as rate)."""
        pairs = zip(self.sdk, self.baseline, strict=False)
        if self.higher_is_better:
            return tuple(b / s if s else float("inf") for s, b in pairs)
        return tuple(s / b if b else float("inf") for s, b in pairs)

    @property
    def ratio(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None

    @property
    def met(self) -> str:
        if self.target is None or self.ratio is None:
            return ""
        return "yes" if self.ratio <= self.target else "**no**"

    def cells(self) -> list[str]:
        ratio = Spread(self.ratios).show(2) if self.ratios else "n/a"
        target = f"\u2264 {self.target:g}{TIMES}" if self.target is not None else DASH
        return [
            self.figure,
            self.measure,
            Spread(self.sdk).show(self.digits),
            Spread(self.baseline).show(self.digits),
            ratio,
            target,
            self.met,
        ]


HEADER = ["figure", "measure", "SDK", "baseline", "SDK \u00f7 baseline (cost)", "target", "met"]


def markdown_table(rows: list[Row]) -> list[str]:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines.extend("| " + " | ".join(row.cells()) + " |" for row in rows)
    return lines


def note(text: str) -> None:
    """Progress, on stderr: the table goes to stdout and RESULTS.md."""
    print(f"[bench] {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- interleaving


def order(round_index: int) -> tuple[int, int]:
    """Which side goes first in a round: SDK, baseline, baseline, SDK, SDK, baseline, …"""
    return (0, 1) if round_index % 2 == 0 else (1, 0)


def interleave(
    rounds: int, sdk: Callable[[], float], baseline: Callable[[], float]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Each side's value per round; each callable runs one round and returns its value."""
    sides = (sdk, baseline)
    got: tuple[list[float], list[float]] = ([], [])
    for index in range(rounds):
        for side in order(index):
            got[side].append(sides[side]())
    return tuple(got[0]), tuple(got[1])


async def interleave_async(
    rounds: int, sdk: Callable[[], Awaitable[float]], baseline: Callable[[], Awaitable[float]]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    sides = (sdk, baseline)
    got: tuple[list[float], list[float]] = ([], [])
    for index in range(rounds):
        for side in order(index):
            got[side].append(await sides[side]())
    return tuple(got[0]), tuple(got[1])


def calibrate(
    func: Callable[[], object], seconds: float, *, clock: Callable[[], float] = time.perf_counter
) -> int:
    """How many calls of `func` take about `seconds` (at least 1); warms it up on the way."""
    calls = 1
    while True:
        started = clock()
        for _ in range(calls):
            func()
        took = clock() - started
        if took >= seconds / 4 or calls >= 1 << 24:
            return max(1, round(calls * seconds / took)) if took > 0 else calls
        calls *= 4


def rate(func: Callable[[], object], calls: int, per_call: float = 1.0) -> Callable[[], float]:
    """A round that runs `func` `calls` times: items per CPU-second (`time.process_time`)."""

    def one_round() -> float:
        started = time.process_time()
        for _ in range(calls):
            func()
        took = time.process_time() - started
        return calls * per_call / took if took > 0 else float("inf")

    return one_round
