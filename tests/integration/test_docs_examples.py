"""The examples in docs/ run as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_testing_page_example_passes(backend: str) -> None:
    block = next(b for b in python_blocks("testing.md") if "async def test_" in b)
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/testing.md", "exec"), namespace)
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    assert tests
    for test in tests:
        anyio.run(test, backend=backend)
