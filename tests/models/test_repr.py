"""Reprs are short enough for a notebook and never show a secret."""

from __future__ import annotations

from actions_scaleset import Secret
from actions_scaleset.models import (
    ActionsServiceAdminConnection,
    JitRunnerConfig,
    JobAvailable,
    JobCompleted,
    Label,
    RunnerScaleSet,
    RunnerScaleSetMessage,
    RunnerScaleSetSession,
    RunnerScaleSetStatistic,
    UnknownJobEvent,
    structure,
)
from tests.support import load_fixture

MASK = "Secret('**********')"


def test_a_scale_set_shows_id_name_group_and_labels() -> None:
    scale_set = RunnerScaleSet(
        id=7, name="linux", runner_group_name="Default", labels=(Label("linux"), Label("x64"))
    )

    assert repr(scale_set) == "RunnerScaleSet(id=7, name='linux', group='Default', labels=['linux', 'x64'])"


def test_a_scale_set_without_a_group_name_shows_the_group_id() -> None:
    assert (
        repr(RunnerScaleSet(id=1, name="ScaleSet"))
        == "RunnerScaleSet(id=1, name='ScaleSet', group_id=0, labels=[])"
    )


def test_statistics_use_short_names() -> None:
    statistics = structure(load_fixture("statistics.json"), RunnerScaleSetStatistic)

    assert repr(statistics) == (
        "RunnerScaleSetStatistic(available=1, acquired=1, assigned=3, running=2, "
        "registered=3, busy=2, idle=1)"
    )


def test_a_message_counts_its_events_by_type() -> None:
    message = structure(load_fixture("message_job_messages.json"), RunnerScaleSetMessage)

    assert repr(message) == (
        "RunnerScaleSetMessage(id=100028209, events=[1 available, 1 assigned, 1 started, 2 completed], "
        "statistics=RunnerScaleSetStatistic(available=1, acquired=1, assigned=3, running=2, registered=3, "
        "busy=2, idle=1))"
    )


def test_a_message_shows_unknown_events_and_an_unusual_type() -> None:
    message = RunnerScaleSetMessage(
        message_id=3,
        message_type="Other",
        events=(UnknownJobEvent("JobQueued", {"messageType": "JobQueued"}),),
    )

    assert repr(message) == "RunnerScaleSetMessage(id=3, type='Other', events=[1 unknown], statistics=None)"


def test_job_events_show_request_repository_job_and_runner() -> None:
    available = JobAvailable(
        runner_request_id=7302,
        owner_name="octo-org",
        repository_name="widgets",
        job_display_name="test (ubuntu)",
        request_labels=("arc-runner-set",),
    )
    completed = JobCompleted(
        runner_request_id=7288,
        repository_name="widgets",
        job_display_name="lint",
        result="succeeded",
        runner_name="r-1",
    )

    assert repr(available) == (
        "JobAvailable(runner_request_id=7302, repo='octo-org/widgets', job='test (ubuntu)', "
        "labels=['arc-runner-set'])"
    )
    assert repr(completed) == (
        "JobCompleted(runner_request_id=7288, repo='widgets', job='lint', result='succeeded', runner='r-1')"
    )


def test_an_unknown_event_does_not_print_its_raw_object() -> None:
    event = UnknownJobEvent("JobQueued", {"messageType": "JobQueued", "token": "do-not-print"})

    assert repr(event) == "UnknownJobEvent(message_type='JobQueued', fields=2)"


def test_a_session_hides_its_token() -> None:
    session = structure(load_fixture("session_create_response.json"), RunnerScaleSetSession)
    token = session.message_queue_access_token.get_secret_value()

    assert token not in repr(session)
    assert repr(session).startswith(
        "RunnerScaleSetSession(session_id='3f6c1b9e-7a2d-4c58-9e0f-5b8a1d2c4e67', "
        "owner='arc-runner-set-754b578d-listener', scale_set=117, statistics=RunnerScaleSetStatistic("
    )


def test_a_jit_config_and_an_admin_connection_mask_their_secrets() -> None:
    config = structure(load_fixture("jit_config_response.json"), JitRunnerConfig)
    connection = ActionsServiceAdminConnection(url="https://x/", token=Secret("eyJ.secret.jwt"))

    assert config.encoded_jit_config.get_secret_value() not in repr(config)
    assert MASK in repr(config)
    assert "eyJ.secret.jwt" not in repr(connection)
    assert MASK in repr(connection)
    assert "eyJ" not in str(config)
