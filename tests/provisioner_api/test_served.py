"""`python -m examples.provisioner_api` served by uvicorn on loopback: runnerctl's documented
curl calls work unchanged, and mistakes on the command line are one line and exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from actions_scaleset.testing import FakeGitHub

from .support import free_port

ROOT = Path(__file__).resolve().parents[2]
API_TOKEN = "runnerctl-token-0123456789abcdef"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the server is a subprocess; one backend is enough for it


def _environment(**extra: str) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("GITHUB_", "PROVISIONER_API_"))
    }
    env.update(PYTHONPATH=str(ROOT), **extra)
    return env


async def _curl(script: str, env: dict[str, str]) -> str:
    result = await anyio.run_process(["bash", "-c", script], env=env, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


@pytest.mark.anyio
@pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("bash") is None, reason="needs curl and bash"
)
async def test_runnerctls_documented_curl_calls_work_unchanged(tmp_path: Path) -> None:
    fake = FakeGitHub()
    port = free_port()
    async with fake.serve():
        env = _environment(
            GITHUB_TOKEN=fake.pat().token.get_secret_value(),
            GITHUB_WFA_RUNNER_SERVER__API_TOKEN=API_TOKEN,  # runnerctl's variables, as deployed
            GITHUB_WFA_RUNNER_SERVER__BIND=f"127.0.0.1:{port}",
        )
        argv = [sys.executable, "-m", "examples.provisioner_api", "--url", fake.config_url("myorg"),
                "--provisioner", "simulate", "--state", str(tmp_path / "state.sqlite3")]  # fmt: skip
        with subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE) as server:  # noqa: ASYNC220
            try:
                base = f"http://127.0.0.1:{port}"
                with anyio.fail_after(30):
                    while True:
                        probe = await anyio.run_process(["curl", "-s", f"{base}/health"], check=False)
                        if probe.returncode == 0:
                            break
                        assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
                        await anyio.sleep(0.2)
                curl_env = {**_environment(), "API_TOKEN": API_TOKEN}
                assert '"status":"ok"' in await _curl(f"curl http://127.0.0.1:{port}/health", curl_env)
                created = await _curl(
                    """curl -X POST \\
  -H "Authorization: Bearer $API_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "repo": "myorg/product",
    "name": "ci-runner-1",
    "labels": "self-hosted,linux,x64,ci",
    "ephemeral": true,
    "daemonize": true
  }' \\
  http://127.0.0.1:PORT/api/v1/runners""".replace("PORT", str(port)),
                    curl_env,
                )
                assert '"status":"running"' in created
                assert [runner.name for runner in fake.snapshot().runners] == ["ci-runner-1"]
                status = await _curl(
                    """curl -H "Authorization: Bearer $API_TOKEN" \\
  http://127.0.0.1:PORT/api/v1/runners/ci-runner-1/status""".replace("PORT", str(port)),
                    curl_env,
                )
                assert '"status":"running"' in status
                removed = await _curl(
                    """curl -X DELETE \\
  -H "Authorization: Bearer $API_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{"repo": "myorg/product"}' \\
  http://127.0.0.1:PORT/api/v1/runners/ci-runner-1""".replace("PORT", str(port)),
                    curl_env,
                )
                assert '"status":"removed"' in removed
                assert fake.snapshot().runners == ()
                docs = await _curl(f"curl -s http://127.0.0.1:{port}/openapi.json", curl_env)
                assert '"/api/v1/runners"' in docs
            finally:
                server.terminate()
                with anyio.fail_after(20):
                    while server.poll() is None:  # noqa: ASYNC110 - Popen has no async wait
                        await anyio.sleep(0.05)
            stderr = server.stderr.read().decode() if server.stderr else ""
            assert server.returncode == 0, stderr  # a stop asked for by SIGTERM is a clean exit
            assert "Application shutdown complete" in stderr
            assert API_TOKEN not in stderr
            assert fake.pat().token.get_secret_value() not in stderr
            assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("argv", "env", "says"),
    [
        ([], {}, "no GitHub URL"),
        (["--url", "https://github.com/acme"], {}, "no GitHub credentials"),
        (["--url", "https://github.com/acme"], {"GITHUB_TOKEN": "ghp_x"}, "no API tokens"),
        (["--url", "https://github.com/acme", "--runner-command", "x"],
         {"GITHUB_TOKEN": "ghp_x", "PROVISIONER_API_TOKENS": "ci=short"}, "too short"),
        (["--url", "https://github.com/acme", "--provisioner", "simulate", "--bind", "nowhere"],
         {"GITHUB_TOKEN": "ghp_x", "PROVISIONER_API_TOKENS": f"ci={API_TOKEN}"}, "HOST:PORT"),
        (["--url", "https://github.com/acme"],
         {"GITHUB_TOKEN": "ghp_x", "PROVISIONER_API_TOKENS": f"ci={API_TOKEN}"}, "needs --runner-command"),
        (["--url", "https://github.com/acme", "--provisioner", "simulate", "--max-runners", "0"],
         {"GITHUB_TOKEN": "ghp_x", "PROVISIONER_API_TOKENS": f"ci={API_TOKEN}"}, "whole number"),
        (["--nope"], {}, "unrecognized arguments"),
    ],
)  # fmt: skip
def test_a_mistake_is_one_line_and_exit_2(
    argv: list[str], env: dict[str, str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from examples.provisioner_api.cli import main

    assert main(argv, env) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("provisioner-api: error: ")
    assert says in err
    assert API_TOKEN not in err


def test_a_state_file_that_cannot_be_used_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from examples.provisioner_api.cli import main

    bad = tmp_path / "state.sqlite3"
    bad.write_text("junk" * 1000)
    env = {"GITHUB_TOKEN": "ghp_x", "PROVISIONER_API_TOKENS": f"ci={API_TOKEN}"}
    argv = ["--url", "https://github.com/acme", "--provisioner", "simulate", "--state", str(bad)]
    assert main(argv, env) == 2
    assert "give another --state" in capsys.readouterr().err


def test_tokens_come_from_a_file_with_names(tmp_path: Path) -> None:
    from examples.provisioner_api.config import parse

    tokens = tmp_path / "tokens"
    tokens.write_text(f"# name token\nci {API_TOKEN}\nops={API_TOKEN[::-1]}\n")
    settings = parse(
        ["--url", "https://github.com/acme", "--provisioner", "simulate", "--tokens-file", str(tokens)],
        {"GITHUB_TOKEN": "ghp_x"},
    )
    assert [token.name for token in settings.tokens] == ["ci", "ops"]
    assert API_TOKEN not in repr(settings)
