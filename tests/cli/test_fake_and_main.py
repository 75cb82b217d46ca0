"""`fake` (the playground, driven by the other commands over loopback) and `main()` itself."""

from __future__ import annotations

import io
import json

import anyio
import httpx
import pytest

from actions_scaleset.cli import main, run
from actions_scaleset.testing import FakeGitHub
from tests.cli import shapes
from tests.cli.conftest import Screen, env_for, invoke_with


@pytest.mark.anyio
async def test_fake_serves_a_playground_the_other_commands_can_use() -> None:
    out, err = Screen(), io.StringIO()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            argv = ["fake", "--jobs", "2", "--seed", "5", "--json"]
            group.start_soon(lambda: run(argv, stdout=out, stderr=err))
            await out.wait_for("\n")
            shown = json.loads(out.getvalue())
            assert set(shown) == shapes.FAKE
            assert shown["scale_set"] == {"id": 1, "name": "demo"}
            assert shown["env"] == {"GITHUB_CONFIG_URL": shown["config_url"], "GITHUB_TOKEN": shown["token"]}
            assert shown["config_url"].startswith("http://127.0.0.1:")
            async with httpx.AsyncClient(trust_env=False) as tcp:
                listed = await invoke_with(("scale-sets", "list", "--json"), shown["env"], tcp)
                assert [s["name"] for s in listed.json()["scale_sets"]] == ["demo"]
                watched = await invoke_with(("watch", "demo", "--count", "1", "--json"), shown["env"], tcp)
                assert watched.json()["events"][0]["repository"] == "acme/app"
            group.cancel_scope.cancel()  # Ctrl-C
    assert err.getvalue() == ""


@pytest.mark.anyio
async def test_fake_prints_the_variables_to_export_and_says_the_token_is_its_own() -> None:
    out = Screen()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: run(["fake", "--jobs", "0"], stdout=out))
            await out.wait_for("printing it is the point")
            group.cancel_scope.cancel()
    text = out.getvalue()
    assert "A fake GitHub serves http://127.0.0.1:" in text
    exports = [line.strip() for line in text.splitlines() if line.strip().startswith("export ")]
    assert [line.split("=")[0] for line in exports] == ["export GITHUB_CONFIG_URL", "export GITHUB_TOKEN"]
    assert exports[1].split("=", 1)[1].startswith("ghp_")
    assert "actions-scaleset watch demo" in text
    assert "this fake's own throwaway token" in text


@pytest.mark.anyio
async def test_fake_on_a_port_taken_exits_1() -> None:
    async with FakeGitHub().serve() as base_url:
        port = base_url.rsplit(":", 1)[1]
        err = io.StringIO()
        code = await run(["fake", "--port", port], stdout=io.StringIO(), stderr=err)
    assert code == 1
    assert err.getvalue().startswith(f"actions-scaleset: error: cannot serve on 127.0.0.1:{port}: ")
    assert err.getvalue().endswith("(choose another --port, or 0 for any free one)\n")


def test_main_runs_a_command_in_its_own_event_loop(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeGitHub()
    http = fake.http_client()
    try:
        assert main(["scale-sets", "create", "demo", "--json"], env=env_for(fake), http_client=http) == 0
        created = json.loads(capsys.readouterr().out)
        assert created["scale_set"]["name"] == "demo"
        assert main(["--json", "stats", "demo"], env=env_for(fake), http_client=http) == 0
        assert json.loads(capsys.readouterr().out)["acquirable_jobs"] == 0
    finally:
        anyio.run(http.aclose)


def test_main_reports_a_usage_error_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "demo"], env={}) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "actions-scaleset: error: no GitHub URL: set --url or GITHUB_CONFIG_URL (give a URL such as "
        "https://github.com/ORG, https://github.com/ORG/REPO or https://github.com/enterprises/ENT)\n"
    )
