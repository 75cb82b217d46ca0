"""`Workload`: seeded Poisson job arrivals with exponential durations."""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs

__all__ = ["PlannedJob", "Workload"]


@attrs.frozen
class PlannedJob:
    offset: float
    """Seconds after the workload is added (on the fake's clock)."""
    duration: float
    """How long a simulated runner takes to run it."""


def _labels(value: Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@attrs.frozen
class Workload:
    """`jobs` arrivals at `rate` per second on average, each lasting `mean_duration` on average.

    The same seed gives the same plan. Add it with `fake.add_workload(workload)`.
    """

    labels: tuple[str, ...] = attrs.field(converter=_labels)
    repository: str
    jobs: int = 10
    rate: float = 1.0
    mean_duration: float = 30.0
    seed: int = 0
    conclusion: str = "succeeded"

    def __attrs_post_init__(self) -> None:
        if self.jobs < 0 or self.rate <= 0 or self.mean_duration < 0:
            raise ValueError("a workload needs jobs >= 0, rate > 0 and mean_duration >= 0")

    def plan(self) -> list[PlannedJob]:
        rng = random.Random(self.seed)  # noqa: S311 - simulation, not security
        offset, planned = 0.0, []
        for _ in range(self.jobs):
            offset += rng.expovariate(self.rate)
            duration = rng.expovariate(1 / self.mean_duration) if self.mean_duration > 0 else 0.0
            planned.append(PlannedJob(offset, duration))
        return planned
