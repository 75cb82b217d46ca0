"""Models draw a small HTML table in a notebook (`_repr_html_`): escaped, short, never a secret."""

from __future__ import annotations

import ast
import base64
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import pytest

import actions_scaleset
from actions_scaleset import Secret
from actions_scaleset._html import DASH, html_table, short_list
from actions_scaleset.models import (
    AcquirableJob,
    GitHubRunner,
    GitHubRunnerLabel,
    JitRunnerConfig,
    JobAssigned,
    JobAvailable,
    JobCompleted,
    JobStarted,
    Label,
    RunnerReference,
    RunnerScaleSet,
    RunnerScaleSetMessage,
    RunnerScaleSetStatistic,
    RunnerSetting,
    UnknownJobEvent,
    structure,
)
from actions_scaleset.runner import JitConfig
from tests.keys import rsa_key
from tests.runner.conftest import make_config
from tests.support import RUNNER_FIXTURES, fixture_bytes, load_fixture

HOSTILE = "<script>alert('x')</script>&"
ESCAPED = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;"
MASK = "**********"


def fixture_message() -> RunnerScaleSetMessage:
    return structure(load_fixture("message_job_messages.json"), RunnerScaleSetMessage)


def fixture_jit_config() -> JitConfig:
    return JitConfig.decode(fixture_bytes("jit_config_encoded.txt", RUNNER_FIXTURES).decode())


def response_jit_config() -> JitRunnerConfig:
    return structure(load_fixture("jit_config_response.json"), JitRunnerConfig)


def is_table(rendered: str, caption: str) -> bool:
    return rendered.startswith(f"<table><caption>{caption}</caption>") and rendered.endswith("</table>")


# --------------------------------------------------------------------------- every type renders


def test_a_scale_set_shows_its_fields_labels_settings_and_statistics() -> None:
    scale_set = structure(load_fixture("runner_scale_set.json"), RunnerScaleSet)

    rendered = scale_set._repr_html_()

    assert is_table(rendered, "RunnerScaleSet")
    for text in (
        ">117<",
        ">arc-runner-set<",
        ">Default<",
        ">2026-04-10T12:31:24.863000+00:00<",
        "/runnerscalesets/117/generatejitconfig",
        "available=0, acquired=0",
        ">is_elastic</th><td",
    ):
        assert text in rendered


def test_statistics_show_one_row_per_count() -> None:
    rendered = structure(load_fixture("statistics.json"), RunnerScaleSetStatistic)._repr_html_()

    assert is_table(rendered, "RunnerScaleSetStatistic")
    assert rendered.count("<tr>") == 7
    assert '>total_assigned_jobs</th><td style="text-align:left">3<' in rendered


def test_a_message_shows_id_statistics_and_one_short_row_per_event() -> None:
    rendered = fixture_message()._repr_html_()

    assert is_table(rendered, "RunnerScaleSetMessage")
    assert ">100028209<" in rendered
    assert "available=1, acquired=1, assigned=3, running=2, registered=3, busy=2, idle=1" in rendered
    assert "1 available, 1 assigned, 1 started, 2 completed" in rendered
    for kind in ("JobAvailable", "JobAssigned", "JobStarted", "JobCompleted"):
        assert f">{kind}</th>" in rendered
    assert "runner_request_id=7288" in rendered
    assert "acquirejobs" not in rendered  # events are summaries, not every field


def test_a_long_message_lists_the_first_events_and_counts_the_rest() -> None:
    events = tuple(JobAssigned(runner_request_id=n) for n in range(25))
    message = RunnerScaleSetMessage(message_id=1, message_type="RunnerScaleSetJobMessages", events=events)

    rendered = message._repr_html_()

    assert rendered.count(">JobAssigned</th>") == 10
    assert "15 more" in rendered
    assert "runner_request_id=9," in rendered
    assert "runner_request_id=10," not in rendered


def test_an_empty_message_shows_dashes() -> None:
    rendered = RunnerScaleSetMessage(message_id=3, message_type="Other")._repr_html_()

    assert ">Other<" in rendered
    assert rendered.count(f">{DASH}<") == 2  # no statistics, no events


@pytest.mark.parametrize(
    ("event", "texts"),
    [
        (
            JobAvailable(
                runner_request_id=7302,
                owner_name="octo-org",
                repository_name="widgets",
                job_display_name="test (ubuntu)",
                request_labels=("arc-runner-set",),
                acquire_job_url="https://broker.example/acquirejobs",
                queue_time=datetime(2026, 5, 4, 10, 7, 18, tzinfo=UTC),
            ),
            [">7302<", ">octo-org/widgets<", ">test (ubuntu)<", ">arc-runner-set<", "/acquirejobs<"],
        ),
        (
            JobAssigned(runner_request_id=7301, job_display_name="build"),
            [">7301<", ">build<"],
        ),
        (
            JobStarted(runner_request_id=7301, runner_id=6858, runner_name="r-1"),
            [">7301<", ">6858<", ">r-1<"],
        ),
        (
            JobCompleted(runner_request_id=7288, result="succeeded", runner_name="r-2"),
            [">7288<", ">succeeded<", ">r-2<"],
        ),
    ],
)
def test_a_job_event_shows_request_repository_job_and_its_own_fields(event: Any, texts: list[str]) -> None:
    rendered = event._repr_html_()

    assert is_table(rendered, type(event).__name__)
    for text in texts:
        assert text in rendered


def test_a_job_event_shows_times_in_iso_and_unset_times_as_a_dash() -> None:
    rendered = JobAvailable(
        runner_request_id=1, queue_time=datetime(2026, 5, 4, 10, 7, 18, tzinfo=UTC)
    )._repr_html_()

    assert ">2026-05-04T10:07:18+00:00<" in rendered
    assert f'>finish_time</th><td style="text-align:left">{DASH}<' in rendered


def test_an_acquirable_job_shows_its_request_repository_and_labels() -> None:
    job = structure(load_fixture("acquirable_jobs.json")["value"][0], AcquirableJob)

    rendered = job._repr_html_()

    assert is_table(rendered, "AcquirableJob")
    assert f">{job.runner_request_id}<" in rendered
    assert f">{job.owner_name}/{job.repository_name}<" in rendered
    assert job.request_labels[0] in rendered


def test_runners_show_their_ids_names_and_labels() -> None:
    reference = structure(load_fixture("runner_reference.json"), RunnerReference)
    github = GitHubRunner(
        id=23,
        name="runner-a",
        os="linux",
        status="online",
        busy=True,
        labels=(GitHubRunnerLabel("self-hosted"), GitHubRunnerLabel("x64")),
    )

    assert is_table(reference._repr_html_(), "RunnerReference")
    assert f">{reference.name}<" in reference._repr_html_()
    assert f">{reference.runner_scale_set_id}<" in reference._repr_html_()
    rendered = github._repr_html_()
    assert is_table(rendered, "GitHubRunner")
    for text in (">23<", ">runner-a<", ">linux<", ">online<", ">True<", ">self-hosted, x64<"):
        assert text in rendered


def test_an_unknown_event_shows_its_type_but_not_its_raw_object() -> None:
    rendered = UnknownJobEvent(
        "JobQueued", {"messageType": "JobQueued", "token": "do-not-print"}
    )._repr_html_()

    assert ">JobQueued<" in rendered
    assert "do-not-print" not in rendered


# --------------------------------------------------------------------------- escaping


def test_hostile_field_values_render_as_text() -> None:
    rendered = [
        RunnerScaleSet(id=1, name=HOSTILE, runner_group_name=HOSTILE, labels=(Label(HOSTILE),))._repr_html_(),
        JobAvailable(
            runner_request_id=1, owner_name=HOSTILE, job_display_name=HOSTILE, request_labels=(HOSTILE,)
        )._repr_html_(),
        RunnerScaleSetMessage(
            message_id=1,
            message_type=HOSTILE,
            events=(JobCompleted(runner_request_id=2, result=HOSTILE), UnknownJobEvent(HOSTILE)),
        )._repr_html_(),
        GitHubRunner(id=1, name=HOSTILE, labels=(GitHubRunnerLabel(HOSTILE),))._repr_html_(),
        RunnerReference(id=1, name=HOSTILE)._repr_html_(),
    ]

    for table in rendered:
        assert "<script>" not in table
        assert "&lt;script&gt;" in table


def test_the_table_escapes_caption_names_and_values() -> None:
    rendered = html_table(HOSTILE, [(HOSTILE, HOSTILE)])

    assert "<script>" not in rendered
    assert rendered.count(ESCAPED) == 3


def test_lists_are_short_and_none_is_a_dash() -> None:
    assert short_list(range(7)) == "0, 1, 2, 3, 4, \u2026 (+2 more)"
    assert short_list([None, "a"]) == f"{DASH}, a"
    assert short_list(()) == DASH
    assert DASH in html_table("T", [("x", None)])


def test_the_html_module_imports_nothing_from_the_package() -> None:
    path = Path(actions_scaleset.__file__).parent / "_html.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))

    relative = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
    assert relative == []


# --------------------------------------------------------------------------- secrets


@pytest.fixture
def no_secret_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendering must not even ask a `Secret` for its value."""

    def refuse(self: Secret) -> NoReturn:
        raise AssertionError("get_secret_value() called while rendering")

    monkeypatch.setattr(Secret, "get_secret_value", refuse)


def test_a_secret_renders_as_its_mask(no_secret_values: None) -> None:
    assert html_table("T", [("token", Secret("ghs_" + "a" * 36))]) == (
        f'<table><caption>T</caption><tr><th style="text-align:left">token</th>'
        f'<td style="text-align:left">{MASK}</td></tr></table>'
    )


def test_a_jit_runner_config_hides_its_blob(no_secret_values: None) -> None:
    config = response_jit_config()
    blob = load_fixture("jit_config_response.json")["encodedJITConfig"]

    rendered = config._repr_html_()

    assert is_table(rendered, "JitRunnerConfig")
    assert ">arc-runner-set-897p8-runner-xwp5k<" in rendered
    assert ">117<" in rendered
    assert f">{MASK}<" in rendered
    for text in (rendered, repr(config), str(config)):
        assert blob not in text
        assert blob[:24] not in text
        assert blob[-24:] not in text


def secrets_of(config: JitConfig) -> list[str]:
    """Pieces of a decoded config that must never be shown: the blob, the key file, the key numbers."""
    blob = config.encode().get_secret_value()
    key_file = base64.b64encode(config.files[".credentials_rsaparams"]).decode()
    assert config.rsa_parameters is not None
    params = config.rsa_parameters.to_json()
    return [
        blob[:24],
        blob[-24:],
        key_file[:24],
        config.files[".credentials_rsaparams"].decode()[:24],
        *(params[name][:24] for name in ("d", "p", "q", "dp", "dq", "inverseQ")),
        *(str(getattr(config.rsa_parameters, name))[:24] for name in ("d", "p", "q")),
    ]


def generated_jit_config() -> JitConfig:
    return make_config(rsa_key())


@pytest.mark.parametrize("make", [fixture_jit_config, generated_jit_config], ids=["fixture", "generated-key"])
def test_a_decoded_jit_config_shows_its_settings_but_never_its_blob_or_key(
    make: Callable[[], JitConfig],
) -> None:
    config = make()

    rendered = config._repr_html_()

    assert is_table(rendered, "JitConfig")
    for text in (
        ">scaleset-runner-x7k2p<",
        ">6858<",
        '>pool_id</th><td style="text-align:left">5<',
        ">https://pipelinesghubeus22.actions.githubusercontent.com/SYNTHETICTENANT/<",
        ">https://broker.actions.githubusercontent.com/<",
        ">_work<",
        '>RSA key</th><td style="text-align:left">hidden<',
        '>encoded config</th><td style="text-align:left">hidden<',
    ):
        assert text in rendered
    for secret in secrets_of(config):
        assert secret not in rendered
        assert secret not in repr(config)


def test_a_config_without_a_key_says_so() -> None:
    config = generated_jit_config()
    keyless = JitConfig(runner=config.runner, credentials=config.credentials)

    assert f'>RSA key</th><td style="text-align:left">{DASH}<' in keyless._repr_html_()


# --------------------------------------------------------------------------- text reprs stay as they were


def test_the_text_reprs_are_unchanged() -> None:
    message = fixture_message()
    scale_set = RunnerScaleSet(
        id=7, name="linux", runner_group_name="Default", labels=(Label("linux"), Label("x64"))
    )

    assert repr(scale_set) == "RunnerScaleSet(id=7, name='linux', group='Default', labels=['linux', 'x64'])"
    assert repr(message) == (
        "RunnerScaleSetMessage(id=100028209, events=[1 available, 1 assigned, 1 started, 2 completed], "
        "statistics=RunnerScaleSetStatistic(available=1, acquired=1, assigned=3, running=2, registered=3, "
        "busy=2, idle=1))"
    )
    assert repr(message.jobs_completed[0]) == (
        "JobCompleted(runner_request_id=7288, repo='octo-org/widgets', job='lint', result='succeeded', "
        "runner='arc-runner-set-897p8-runner-q8m2d')"
    )
    assert repr(RunnerReference(id=1, name="r")) == "RunnerReference(id=1, name='r', runner_scale_set_id=0)"
    assert repr(GitHubRunner(id=1, name="r")) == (
        "GitHubRunner(id=1, name='r', os=None, status=None, busy=False, ephemeral=None, "
        "runner_group_id=None, labels=())"
    )
    assert repr(response_jit_config()) == (
        "JitRunnerConfig(runner=RunnerReference(id=6858, name='arc-runner-set-897p8-runner-xwp5k', "
        "runner_scale_set_id=117), encoded_jit_config=Secret('**********'))"
    )
    assert repr(fixture_jit_config()) == (
        "JitConfig(agent_id=6858, agent_name='scaleset-runner-x7k2p', flow=v2, ephemeral=True)"
    )
    assert repr(RunnerSetting(ephemeral=True)) == (
        "RunnerSetting(ephemeral=True, is_elastic=None, disable_update=None)"
    )
