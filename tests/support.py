"""Test helpers: the fixtures folder (`tests/fixtures`) and a clock that tests move by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SCALESET_FIXTURES = FIXTURES / "scaleset"
RUNNER_FIXTURES = FIXTURES / "runner"


def load_fixture(name: str, folder: Path = SCALESET_FIXTURES) -> Any:
    """A JSON fixture from `tests/fixtures` (the scale-set side by default)."""
    return json.loads((folder / name).read_text(encoding="utf-8"))


def fixture_bytes(name: str, folder: Path = SCALESET_FIXTURES) -> bytes:
    return (folder / name).read_bytes()


class FakeClock:
    """A UNIX clock tests move by hand, and a sleep that advances it instead of waiting."""

    def __init__(self, now: float = 1_777_889_641.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
