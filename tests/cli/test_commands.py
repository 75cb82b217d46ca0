"""Every one-shot command against FakeGitHub in-process: its table, and its one `--json` shape."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import actions_scaleset as asc
from actions_scaleset.runner import JitConfig
from actions_scaleset.testing import FakeGitHub
from tests.cli import shapes
from tests.cli.conftest import Invoke, env_for, invoke_with

pytestmark = pytest.mark.anyio


def cell(table: str, label: str) -> str:
    """The value beside `label` in a two-column table."""
    [line] = [line for line in table.splitlines() if line.strip().startswith(label + "  ")]
    return line.strip()[len(label) :].strip()


def enqueue(fake: FakeGitHub, count: int, labels: tuple[str, ...] = ("demo",)) -> list[int]:
    return [fake.enqueue_job(labels=labels, repository="acme/app").runner_request_id for _ in range(count)]


# --------------------------------------------------------------------------- scale sets


async def test_scale_sets_list_shows_a_table_and_says_how_to_create_one_when_there_is_none(
    invoke: Invoke,
) -> None:
    result = await invoke("scale-sets", "list")
    assert (result.code, result.err) == (0, "")
    assert "0 scale sets in acme" in result.out
    assert "actions-scaleset scale-sets create NAME" in result.out
    assert (await invoke("scale-sets", "list", "--json")).json() == {"scale_sets": []}


async def test_scale_sets_list_shows_each_scale_set(invoke: Invoke, demo: asc.RunnerScaleSet) -> None:
    table = await invoke("scale-sets", "list")
    assert table.code == 0
    assert "1 scale set in acme" in table.out
    row = next(line for line in table.out.splitlines() if " demo " in line)
    assert row.split()[:5] == [str(demo.id), "demo", "Default", "demo,", "linux"]
    listed = (await invoke("--json", "scale-sets", "list")).json()["scale_sets"]
    assert [s["name"] for s in listed] == ["demo"]
    shapes.assert_scale_set(listed[0])
    assert listed[0]["labels"] == ["demo", "linux"]
    assert listed[0]["runner_group_name"] == "Default"


async def test_scale_sets_create_makes_one_with_its_labels_and_group(
    invoke: Invoke, fake: FakeGitHub
) -> None:
    fake.add_runner_group("acme", "gpu")
    created = await invoke(
        "scale-sets", "create", "big", "--labels", "gpu, linux,gpu", "--runner-group", "gpu"
    )
    assert created.code == 0, created.err
    assert "Created scale set 'big'" in created.out
    assert "gpu, linux" in created.out
    shown = (await invoke("scale-sets", "show", "big", "--json")).json()["scale_set"]
    shapes.assert_scale_set(shown)
    assert (shown["labels"], shown["runner_group_name"]) == (["gpu", "linux"], "gpu")

    as_json = (await invoke("scale-sets", "create", "small", "--json")).json()
    assert set(as_json) == {"scale_set"}
    shapes.assert_scale_set(as_json["scale_set"])
    assert as_json["scale_set"]["labels"] == ["small"]  # its name, by default


async def test_scale_sets_create_refuses_a_name_taken_and_an_unknown_group(
    invoke: Invoke, demo: asc.RunnerScaleSet
) -> None:
    taken = await invoke("scale-sets", "create", "demo")
    assert (taken.code, taken.out) == (1, "")
    assert taken.err == (
        f"actions-scaleset: error: a scale set named 'demo' already exists in acme (id {demo.id}) "
        "(see it: actions-scaleset scale-sets show demo)\n"
    )
    unknown = await invoke("scale-sets", "create", "x", "--runner-group", "nope")
    assert unknown.code == 1
    assert "no runner group named 'nope'" in unknown.err
    assert "--runner-group default" in unknown.err


async def test_scale_sets_show_gives_every_field(invoke: Invoke, demo: asc.RunnerScaleSet) -> None:
    table = await invoke("scale-sets", "show", "demo")
    assert table.code == 0
    for field in (
        "runner group",
        "Default (id 1)",
        "labels",
        "demo, linux",
        "available jobs",
        "idle runners",
    ):
        assert field in table.out
    shown = (await invoke("scale-sets", "show", "demo", "--json")).json()
    assert set(shown) == {"scale_set"}
    shapes.assert_scale_set(shown["scale_set"])
    assert shown["scale_set"]["id"] == demo.id


async def test_scale_sets_delete_deletes_it(
    invoke: Invoke, demo: asc.RunnerScaleSet, fake: FakeGitHub
) -> None:
    deleted = await invoke("scale-sets", "delete", "demo")
    assert (deleted.code, deleted.out) == (0, f"Deleted scale set 'demo' (id {demo.id}) from acme.\n")
    assert fake.snapshot().scale_sets == ()
    gone = await invoke("scale-sets", "show", "demo")
    assert (gone.code, gone.out) == (1, "")
    assert gone.err == (
        "actions-scaleset: error: no scale set named 'demo' in acme "
        "(list them: actions-scaleset scale-sets list)\n"
    )


async def test_scale_sets_delete_with_json(invoke: Invoke, demo: asc.RunnerScaleSet) -> None:
    assert (await invoke("scale-sets", "delete", "demo", "--json")).json() == {
        "deleted": {"id": demo.id, "name": "demo"}
    }


async def test_a_name_in_two_groups_needs_runner_group(invoke: Invoke, fake: FakeGitHub) -> None:
    fake.add_runner_group("acme", "gpu")
    assert (await invoke("scale-sets", "create", "twin")).code == 0
    assert (await invoke("scale-sets", "create", "twin", "--runner-group", "gpu")).code == 0
    both = await invoke("scale-sets", "show", "twin")
    assert both.code == 2
    assert "2 scale sets are named 'twin'" in both.err
    assert "--runner-group GROUP" in both.err
    one = (await invoke("scale-sets", "show", "twin", "--runner-group", "gpu", "--json")).json()
    assert one["scale_set"]["runner_group_name"] == "gpu"
    missing = await invoke("stats", "twin", "--runner-group", "default", "--json")
    assert missing.code == 0
    listed = (await invoke("scale-sets", "list", "--runner-group", "gpu", "--json")).json()
    assert [s["runner_group_name"] for s in listed["scale_sets"]] == ["gpu"]


# --------------------------------------------------------------------------- statistics and jobs


async def test_stats_shows_the_statistics_and_the_acquirable_jobs(
    invoke: Invoke, fake: FakeGitHub, demo: asc.RunnerScaleSet
) -> None:
    enqueue(fake, 3)
    table = await invoke("stats", "demo")
    assert table.code == 0
    assert f"scale set 'demo' (id {demo.id})" in table.out
    assert cell(table.out, "available jobs") == "3"
    assert cell(table.out, "acquirable jobs") == "3"
    assert cell(table.out, "busy runners") == "0"
    shown = (await invoke("stats", "demo", "--json")).json()
    assert set(shown) == {"scale_set", "statistics", "acquirable_jobs"}
    assert set(shown["statistics"]) == shapes.STATISTICS
    assert shown["scale_set"] == {"id": demo.id, "name": "demo"}
    assert (shown["statistics"]["total_available_jobs"], shown["acquirable_jobs"]) == (3, 3)


async def test_stats_and_jobs_where_acquirablejobs_is_not_served() -> None:
    fake = FakeGitHub(acquirable_jobs=False)
    async with fake.http_client() as http:
        env = env_for(fake)
        await invoke_with(("scale-sets", "create", "demo"), env, http)
        stats = await invoke_with(("stats", "demo", "--json"), env, http)
        assert stats.json()["acquirable_jobs"] is None
        assert "not served here" in (await invoke_with(("stats", "demo"), env, http)).out
        jobs = await invoke_with(("jobs", "demo"), env, http)
    assert jobs.code == 1
    assert jobs.err == (
        "actions-scaleset: error: this service does not list acquirable jobs (acquirablejobs answered 404) "
        "(see them as they come: actions-scaleset watch demo)\n"
    )


async def test_jobs_lists_the_waiting_jobs(
    invoke: Invoke, fake: FakeGitHub, demo: asc.RunnerScaleSet
) -> None:
    ids = enqueue(fake, 2) + enqueue(fake, 1, ("demo", "linux"))
    table = await invoke("jobs", "demo")
    assert table.code == 0
    assert "3 jobs waiting for scale set 'demo'" in table.out
    assert "acme/app" in table.out
    shown = (await invoke("jobs", "demo", "--json")).json()
    assert set(shown) == {"scale_set", "jobs"}
    assert [job["runner_request_id"] for job in shown["jobs"]] == ids
    for job in shown["jobs"]:
        assert set(job) == shapes.JOB
        assert job["repository"] == "acme/app"
    assert shown["jobs"][2]["labels"] == ["demo", "linux"]


async def test_jobs_with_none_waiting(invoke: Invoke, demo: asc.RunnerScaleSet) -> None:
    assert (await invoke("jobs", "demo", "--json")).json()["jobs"] == []
    assert "0 jobs waiting" in (await invoke("jobs", "demo")).out


# --------------------------------------------------------------------------- runners


async def test_runners_list_shows_every_runner_or_only_a_scale_sets(
    invoke: Invoke, fake: FakeGitHub, http: httpx.AsyncClient, demo: asc.RunnerScaleSet
) -> None:
    async with asc.ScaleSetClient(fake.config_url("acme"), fake.pat(), http_client=http) as client:
        other = await client.create_scale_set("other", labels=["demo", "linux"])  # the same labels
        await client.generate_jit_config(demo.id, name="mine")
        await client.generate_jit_config(other.id, name="theirs")
        await client.github.generate_jit_config("rest-runner", labels=["demo", "linux"])
    table = await invoke("runners", "list")
    assert table.code == 0
    assert "3 runners of acme" in table.out
    for name in ("mine", "theirs", "rest-runner"):
        assert name in table.out
    every = (await invoke("runners", "list", "--json")).json()
    assert every["scale_set"] is None
    assert sorted(r["name"] for r in every["runners"]) == ["mine", "rest-runner", "theirs"]
    for runner in every["runners"]:
        assert set(runner) == shapes.RUNNER
    only = (await invoke("runners", "list", "demo", "--json")).json()
    assert only["scale_set"] == {"id": demo.id, "name": "demo"}
    assert [r["name"] for r in only["runners"]] == ["mine"]
    assert "1 runner of scale set 'demo'" in (await invoke("runners", "list", "demo")).out


async def test_runners_remove_by_name_and_by_id(
    invoke: Invoke, fake: FakeGitHub, http: httpx.AsyncClient
) -> None:
    async with asc.ScaleSetClient(fake.config_url("acme"), fake.pat(), http_client=http) as client:
        first = await client.github.generate_jit_config("first")
        second = await client.github.generate_jit_config("second")
    by_name = await invoke("runners", "remove", "first")
    assert (by_name.code, by_name.out) == (0, f"Removed runner 'first' (id {first.runner.id}) from acme.\n")
    by_id = await invoke("runners", "remove", str(second.runner.id), "--json")
    assert by_id.json() == {"removed": {"id": second.runner.id, "name": "second"}}
    assert fake.snapshot().runners == ()
    missing_name = await invoke("runners", "remove", "first")
    assert missing_name.err == (
        "actions-scaleset: error: no runner named 'first' in acme "
        "(list them: actions-scaleset runners list)\n"
    )
    missing_id = await invoke("runners", "remove", "999")
    assert (missing_id.code, missing_id.err) == (
        1,
        "actions-scaleset: error: no runner with id 999 in acme (list them: actions-scaleset runners list)\n",
    )


# --------------------------------------------------------------------------- JIT configs


async def test_jit_registers_a_runner_and_shows_its_settings_without_secrets(
    invoke: Invoke, fake: FakeGitHub, demo: asc.RunnerScaleSet
) -> None:
    result = await invoke("jit", "demo", "runner-1", "--work-folder", "/w")
    assert result.code == 0, result.err
    [runner] = fake.snapshot().runners
    assert (runner.name, runner.scale_set_id) == ("runner-1", demo.id)
    assert f"Registered JIT runner 'runner-1' (id {runner.id})" in result.out
    assert "now registered with GitHub" in result.out
    assert f"actions-scaleset runners remove {runner.id}" in result.out
    assert cell(result.out, "rsa key") == "(hidden)"
    assert cell(result.out, "encoded JIT config") == "(hidden): add --reveal to print it"
    assert cell(result.out, "work folder") == "/w"
    assert cell(result.out, "agent name") == "runner-1"
    removed = await invoke(*f"runners remove {runner.id}".split())
    assert removed.code == 0
    assert fake.snapshot().runners == ()


async def test_jit_json_gives_the_settings_and_no_config_without_reveal(
    invoke: Invoke, demo: asc.RunnerScaleSet
) -> None:
    shown = (await invoke("jit", "demo", "runner-2", "--json")).json()
    assert set(shown) == shapes.JIT
    assert set(shown["settings"]) == shapes.JIT_SETTINGS
    assert shown["encoded_jit_config"] is None
    assert shown["settings"]["rsa_key"] == "(hidden)"
    assert shown["settings"]["agent_name"] == "runner-2"
    assert shown["scale_set"] == {"id": demo.id, "name": "demo"}
    assert shown["remove_command"] == f"actions-scaleset runners remove {shown['runner']['id']}"


async def test_jit_reveal_prints_the_encoded_config(invoke: Invoke, demo: asc.RunnerScaleSet) -> None:
    revealed = (await invoke("jit", "demo", "runner-3", "--json", "--reveal")).json()["encoded_jit_config"]
    assert JitConfig.decode(revealed).runner.agent_name == "runner-3"
    table = await invoke("jit", "demo", "runner-4", "--reveal")
    [blob] = [line for line in table.out.splitlines() if len(line) > 200]
    assert JitConfig.decode(blob).runner.agent_name == "runner-4"


async def test_jit_with_a_name_taken(invoke: Invoke, demo: asc.RunnerScaleSet) -> None:
    assert (await invoke("jit", "demo", "twice")).code == 0
    again = await invoke("jit", "demo", "twice")
    assert again.code == 1
    assert "actions-scaleset runners remove NAME" in again.err


# --------------------------------------------------------------------------- doctor


async def test_doctor_passes_every_step_with_a_token(
    invoke: Invoke, fake: FakeGitHub, demo: asc.RunnerScaleSet
) -> None:
    result = await invoke("doctor", "demo")
    assert (result.code, result.err) == (0, "")
    lines = result.out.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == [
        "pass",
        "pass",
        "pass",
        "pass",
        "pass",
        "pass",
        "pass",
    ]
    assert lines[3].startswith("pass  token scopes     admin:org among 4 scopes")
    assert lines[-1] == "All checks passed."
    assert "session was opened, and deleted at once" in lines[6]
    assert fake.snapshot().scale_sets[0].session_owner is None  # doctor never holds the session
    assert [r.status for r in fake.requests_to("session.delete")] == [204]


async def test_doctor_json(invoke: Invoke, demo: asc.RunnerScaleSet) -> None:
    shown = (await invoke("doctor", "--json")).json()
    assert set(shown) == shapes.DOCTOR
    assert shown["ok"] is True
    for check in shown["checks"]:
        assert set(check) == shapes.CHECK
    by_name = {check["name"]: check for check in shown["checks"]}
    assert by_name["scale sets"]["detail"] == "1 in acme: 'demo'"
    assert by_name["session"]["status"] == "skip"


async def test_doctor_with_a_github_app(fake: FakeGitHub, http: httpx.AsyncClient, tmp_path: Path) -> None:
    key = tmp_path / "app.pem"
    key.write_text(fake._core.app.private_key_pem())  # no public accessor for the fake App's PEM
    env = {
        "GITHUB_CONFIG_URL": fake.config_url("acme"),
        "GITHUB_APP_CLIENT_ID": fake.app("acme").issuer,
        "GITHUB_APP_PRIVATE_KEY_FILE": str(key),
    }
    result = await invoke_with(("doctor",), env, http)
    assert result.code == 0, result.out
    lines = result.out.splitlines()
    assert lines[1].startswith("pass  credentials      the GitHub App Iv1.")
    assert "installation looked up, key from GITHUB_APP_PRIVATE_KEY_FILE" in lines[1]
    assert lines[2].startswith("pass  App installation ")
    assert lines[2].endswith("of fake-scaleset-app on an Organization")
    assert lines[3].startswith("pass  App permissions  'Self-hosted runners: read and write' is granted")
    assert lines[4].startswith("pass  registration")
    listed = await invoke_with(("scale-sets", "list", "--json"), env, http)
    assert listed.json() == {"scale_sets": []}


async def test_doctor_names_the_scope_a_classic_token_lacks(invoke: Invoke, fake: FakeGitHub) -> None:
    user = {"login": "octocat", "id": 2, "type": "User"}
    fake.faults.add(
        route="rest.user", status=200, body=user, headers={"X-OAuth-Scopes": "read:org, repo"}, times=2
    )
    result = await invoke("doctor")
    assert result.code == 1
    line = next(line for line in result.out.splitlines() if "token scopes" in line)
    assert line.startswith("FAIL  token scopes     the token has read:org, repo, not admin:org")
    assert "make a token with the admin:org scope" in line


async def test_doctor_skips_the_scopes_of_a_fine_grained_token(invoke: Invoke, fake: FakeGitHub) -> None:
    user = {"login": "octocat", "id": 2, "type": "User"}
    fake.faults.add(route="rest.user", status=200, body=user, times=2)  # no X-OAuth-Scopes
    result = await invoke("doctor")
    line = next(line for line in result.out.splitlines() if "token scopes" in line)
    assert line.startswith("skip  token scopes     a fine-grained token")


async def test_doctor_says_a_listener_holds_the_session(
    invoke: Invoke, fake: FakeGitHub, http: httpx.AsyncClient, demo: asc.RunnerScaleSet
) -> None:
    async with (
        asc.ScaleSetClient(fake.config_url("acme"), fake.pat(), http_client=http) as client,
        client.session(demo.id, owner="listener"),
    ):
        result = await invoke("doctor", "demo")
        assert fake.snapshot().scale_sets[0].session_owner == "listener"  # left alone
    assert result.code == 0
    assert "pass  session          a listener holds the session (409 conflict)" in result.out


async def test_doctor_fails_on_refused_credentials_and_skips_what_needs_them(
    invoke: Invoke, fake: FakeGitHub, demo: asc.RunnerScaleSet
) -> None:
    result = await invoke("doctor", "demo", env={**env_for(fake), "GITHUB_TOKEN": "ghp_wrong"})
    assert result.code == 1
    lines = result.out.splitlines()
    assert lines[2].startswith("FAIL  token            GitHub refused the credentials")
    assert lines[4].startswith("FAIL  registration     GitHub refused the credentials: Bad credentials")
    assert "hint: a classic token needs the admin:org scope" in lines[4]
    assert [line.split()[0] for line in lines[5:]] == ["skip", "skip"]
    assert "All checks passed." not in result.out
    assert "ghp_wrong" not in result.all


async def test_doctor_reports_a_bad_url_and_missing_credentials_as_steps(invoke: Invoke) -> None:
    result = await invoke("doctor", "--json", env={"GITHUB_CONFIG_URL": "ftp://example.com/acme"})
    assert result.code == 1
    shown = result.json()
    assert shown["ok"] is False
    by_name = {check["name"]: check for check in shown["checks"]}
    assert by_name["config URL"]["status"] == "fail"
    assert "https://github.com/ORG" in by_name["config URL"]["hint"]
    assert by_name["credentials"]["status"] == "fail"
    assert "GITHUB_TOKEN" in by_name["credentials"]["hint"]
    assert {by_name[name]["status"] for name in ("token or App", "registration", "scale set", "session")} == {
        "skip"
    }


async def test_doctor_with_a_scale_set_that_does_not_exist(invoke: Invoke) -> None:
    result = await invoke("doctor", "ghost")
    assert result.code == 1
    assert (
        "FAIL  scale set        no scale set named 'ghost' in acme; hint: create it: "
        "actions-scaleset scale-sets create ghost"
    ) in result.out
    assert "skip  session          needs the scale set" in result.out
