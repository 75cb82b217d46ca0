"""Interleaved timing: both sides run in alternating rounds in one process, so machine noise
hits them alike; the result is a ratio of medians, not an absolute time."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable

import attrs


@attrs.frozen
class Comparison:
    name: str
    sdk_us: float
    baseline_us: float

    @property
    def ratio(self) -> float:
        return self.sdk_us / self.baseline_us if self.baseline_us else float("inf")

    def line(self) -> str:
        return (
            f"{self.name:42} sdk {self.sdk_us:9.1f} us   baseline {self.baseline_us:9.1f} us"
            f"   ratio {self.ratio:5.2f}x"
        )


async def compare(
    name: str,
    sdk: Callable[[], Awaitable[object]],
    baseline: Callable[[], Awaitable[object]],
    *,
    rounds: int = 15,
    per_round: int = 200,
) -> Comparison:
    for _ in range(per_round // 4):  # warm up both paths
        await sdk()
        await baseline()
    sdk_times: list[float] = []
    base_times: list[float] = []
    for index in range(rounds):
        order = [(sdk, sdk_times), (baseline, base_times)]
        if index % 2:
            order.reverse()
        for func, sink in order:
            started = time.perf_counter()
            for _ in range(per_round):
                await func()
            sink.append((time.perf_counter() - started) / per_round * 1e6)
    return Comparison(name, statistics.median(sdk_times), statistics.median(base_times))
