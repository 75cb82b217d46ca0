"""The package can be vendored: copied into another package under another name, it works on its own.

This holds because the library imports itself only relatively (see `test_package.py`). The
copy runs in a subprocess where `actions_scaleset` is importable too, so a stray absolute
import would quietly load it: the subprocess checks it never did.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import actions_scaleset

ROUND_TRIP = """
import json, sys

import anyio

from hostpkg._vendor import asc_copy as asc
from hostpkg._vendor.asc_copy.runner import JitConfig
from hostpkg._vendor.asc_copy.testing import FakeGitHub


async def main() -> dict[str, object]:
    fake = FakeGitHub(poll_hold=0.05)
    async with (
        fake.http_client() as http,
        asc.ScaleSetClient(fake.config_url("acme"), fake.pat(), http_client=http) as client,
    ):
        scale_set = await client.ensure_scale_set("linux", labels=["linux"])
        jit = await client.generate_jit_config(scale_set.id, name="runner-1")
        config = JitConfig.decode(jit.encoded_jit_config.get_secret_value())
        fake.enqueue_job(labels=["linux"], repository="acme/app")
        async with client.session(scale_set.id, owner="vendored") as session:
            message = await session.get_message(max_capacity=1)
    assert message is not None
    return {
        "scale_set": type(scale_set).__module__,
        "runner": config.runner.agent_name,
        "available": [job.repository_name for job in message.jobs_available],
    }


result = anyio.run(main)
result["leaked"] = sorted(m for m in sys.modules if m.partition(".")[0] == "actions_scaleset")
print(json.dumps(result))
"""


def vendor(host: Path) -> None:
    vendored = host / "hostpkg" / "_vendor"
    shutil.copytree(
        Path(actions_scaleset.__file__).parent,
        vendored / "asc_copy",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (host / "hostpkg" / "__init__.py").write_text("", encoding="utf-8")
    (vendored / "__init__.py").write_text("", encoding="utf-8")


def test_a_vendored_copy_runs_a_fake_github_round_trip_without_the_original(tmp_path: Path) -> None:
    vendor(tmp_path)
    env = os.environ | {"PYTHONPATH": str(tmp_path)}
    completed = subprocess.run(
        [sys.executable, "-c", ROUND_TRIP],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == {
        "scale_set": "hostpkg._vendor.asc_copy.models._scaleset",
        "runner": "runner-1",
        "available": ["app"],
        "leaked": [],
    }
