"""Every response fixture in tests/fixtures/scaleset decodes to the values it holds (docs/protocol.md,
"Wire format", "Sources")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from actions_scaleset import Secret
from actions_scaleset.models import (
    AcquirableJobList,
    ActionsServiceAdminConnection,
    InstallationToken,
    Int64List,
    JitRunnerConfig,
    JobAssigned,
    JobAvailable,
    JobCompleted,
    JobStarted,
    Label,
    RegistrationToken,
    RunnerGroupList,
    RunnerReference,
    RunnerReferenceList,
    RunnerScaleSet,
    RunnerScaleSetList,
    RunnerScaleSetMessage,
    RunnerScaleSetSession,
    RunnerScaleSetStatistic,
    RunnerSetting,
    structure,
)
from tests.support import SCALESET_FIXTURES, load_fixture

# What each fixture is. A new fixture must be added here, so none is silently left untested.
RESPONSES: dict[str, Any] = {
    "acquirable_jobs.json": AcquirableJobList,
    "acquire_jobs_response.json": Int64List,
    "installation_access_token_response.json": InstallationToken,
    "jit_config_response.json": JitRunnerConfig,
    "message_empty_body.json": RunnerScaleSetMessage,
    "message_job_messages.json": RunnerScaleSetMessage,
    "message_minimal_from_tests.json": RunnerScaleSetMessage,
    "registration_token_response.json": RegistrationToken,
    "runner_group_list.json": RunnerGroupList,
    "runner_group_list_from_tests.json": RunnerGroupList,
    "runner_reference.json": RunnerReference,
    "runner_reference_list.json": RunnerReferenceList,
    "runner_reference_list_empty.json": RunnerReferenceList,
    "runner_registration_response.json": ActionsServiceAdminConnection,
    "runner_registration_response_from_tests.json": ActionsServiceAdminConnection,
    "runner_scale_set.json": RunnerScaleSet,
    "runner_scale_set_list.json": RunnerScaleSetList,
    "runner_scale_set_list_from_tests.json": RunnerScaleSetList,
    "session_create_response.json": RunnerScaleSetSession,
    "session_from_tests.json": RunnerScaleSetSession,
    "statistics.json": RunnerScaleSetStatistic,
}
NOT_RESPONSE_MODELS = {
    # request bodies: tests/models/test_request_bodies.py
    "acquire_jobs_request.json",
    "jit_config_request.json",
    "runner_registration_request.json",
    "runner_scale_set_create_request_legacy.json",
    "runner_scale_set_create_request_scaleset.json",
    "runner_scale_set_update_request.json",
    "session_create_request_legacy.json",
    "session_create_request_scaleset.json",
    # the decoded message body, compared in test_job_events.py
    "message_job_messages_body_decoded.json",
    # error bodies (errors.py) and the runner side's JIT layers (runner/)
    "error_actions_agent_exists_from_tests.json",
    "error_actions_from_tests.json",
    "error_actions_job_still_running_from_tests.json",
    "error_actions_session_conflict_409.json",
    "error_github_rest_404.json",
    "jit_config_decoded_example.json",
}

SCALE_SET_CREATED_ON = datetime(2026, 4, 10, 12, 31, 24, 863000, tzinfo=UTC)


def test_every_fixture_is_accounted_for() -> None:
    on_disk = {path.name for path in SCALESET_FIXTURES.glob("*.json")}
    assert on_disk == set(RESPONSES) | NOT_RESPONSE_MODELS


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_every_response_fixture_decodes(name: str) -> None:
    structure(load_fixture(name), RESPONSES[name])


def test_a_scale_set_decodes_with_its_capital_r_runner_setting() -> None:
    scale_set = structure(load_fixture("runner_scale_set.json"), RunnerScaleSet)

    assert scale_set == RunnerScaleSet(
        id=117,
        name="arc-runner-set",
        runner_group_id=1,
        runner_group_name="Default",
        labels=(Label("arc-runner-set", "System"),),
        runner_setting=RunnerSetting(ephemeral=True, is_elastic=True, disable_update=True),
        created_on=SCALE_SET_CREATED_ON,
        runner_jit_config_url=(
            "https://broker.actions.githubusercontent.com/rest/_apis/runtime/runnerscalesets/117/generatejitconfig"
        ),
        statistics=RunnerScaleSetStatistic(),
    )


def test_a_scale_set_list_decodes() -> None:
    listed = structure(load_fixture("runner_scale_set_list.json"), RunnerScaleSetList)

    assert listed.count == 1
    assert listed.value == (structure(load_fixture("runner_scale_set.json"), RunnerScaleSet),)


def test_a_partial_scale_set_from_the_go_tests_decodes_with_defaults() -> None:
    listed = structure(load_fixture("runner_scale_set_list_from_tests.json"), RunnerScaleSetList)

    (scale_set,) = listed.value
    assert (scale_set.id, scale_set.name) == (1, "ScaleSet")
    assert scale_set.labels == ()
    assert scale_set.runner_setting == RunnerSetting()
    assert scale_set.created_on is None
    assert scale_set.statistics is None


def test_statistics_decode() -> None:
    statistics = structure(load_fixture("statistics.json"), RunnerScaleSetStatistic)

    assert statistics == RunnerScaleSetStatistic(
        total_available_jobs=1,
        total_acquired_jobs=1,
        total_assigned_jobs=3,
        total_running_jobs=2,
        total_registered_runners=3,
        total_busy_runners=2,
        total_idle_runners=1,
    )


def test_a_session_decodes_with_its_token_as_a_secret() -> None:
    session = structure(load_fixture("session_create_response.json"), RunnerScaleSetSession)

    assert session.session_id == "3f6c1b9e-7a2d-4c58-9e0f-5b8a1d2c4e67"
    assert session.owner_name == "arc-runner-set-754b578d-listener"
    assert session.message_queue_url == "https://broker.actions.githubusercontent.com/scalesets/message"
    assert isinstance(session.message_queue_access_token, Secret)
    assert session.message_queue_access_token.get_secret_value().startswith("eyJhbGciOiJSUzI1NiIs")
    assert session.runner_scale_set is not None
    assert session.runner_scale_set.id == 117
    assert session.runner_scale_set.statistics is None
    assert session.statistics is not None
    assert session.statistics.total_assigned_jobs == 1
    assert session.statistics.total_idle_runners == 0


def test_a_session_from_the_go_tests_has_no_id_and_no_statistics() -> None:
    session = structure(load_fixture("session_from_tests.json"), RunnerScaleSetSession)

    assert session.session_id is None
    assert session.owner_name == "foo"
    assert session.runner_scale_set == RunnerScaleSet(id=1, name="ScaleSet")
    assert session.message_queue_url == "http://fake.actions.github.com/123"
    assert session.message_queue_access_token == Secret("fake.jwt.here")
    assert session.statistics is None


def test_a_message_with_five_job_events_decodes() -> None:
    message = structure(load_fixture("message_job_messages.json"), RunnerScaleSetMessage)

    assert message.message_id == 100028209
    assert message.message_type == "RunnerScaleSetJobMessages"
    assert [type(event) for event in message.events] == [
        JobAvailable,
        JobAssigned,
        JobStarted,
        JobCompleted,
        JobCompleted,
    ]
    assert message.statistics == structure(load_fixture("statistics.json"), RunnerScaleSetStatistic)


def test_a_message_with_an_empty_body_has_no_events() -> None:
    message = structure(load_fixture("message_empty_body.json"), RunnerScaleSetMessage)

    assert message.message_id == 100028210
    assert message.body == ""
    assert message.events == ()
    assert message.statistics == RunnerScaleSetStatistic()


def test_the_minimal_message_from_the_go_tests_decodes_without_statistics() -> None:
    message = structure(load_fixture("message_minimal_from_tests.json"), RunnerScaleSetMessage)

    assert message == RunnerScaleSetMessage(message_id=1, message_type="RunnerScaleSetJobMessages")
    assert message.statistics is None
    assert message.events == ()


def test_acquirable_jobs_decode() -> None:
    jobs = structure(load_fixture("acquirable_jobs.json"), AcquirableJobList)

    assert jobs.count == 2
    assert [job.runner_request_id for job in jobs.value] == [7302, 7303]
    first, second = jobs.value
    assert first.message_type == "JobAvailable"
    assert first.repository_name == "widgets"
    assert first.owner_name == "octo-org"
    assert first.request_labels == ("arc-runner-set",)
    assert first.acquire_job_url.endswith("/runnerscalesets/117/acquirejobs")
    assert second.event_name == "release"
    assert second.job_workflow_ref == "octo-org/gadgets/.github/workflows/release.yaml@refs/tags/v1.2.3"


def test_the_go_test_servers_acquirable_jobs_without_value_is_an_empty_list() -> None:
    # docs/protocol.md, "Wire format": "The ARC test server returns {"count": 0} with no value".
    assert structure({"count": 0}, AcquirableJobList).value == ()


def test_acquired_job_ids_decode() -> None:
    acquired = structure(load_fixture("acquire_jobs_response.json"), Int64List)

    assert acquired == Int64List(count=2, value=(7302, 7303))


def test_the_go_test_servers_acquired_ids_without_count_decode() -> None:
    # docs/protocol.md, "Scale-set endpoints": "The ARC test server returns just {"value":[1]}".
    assert structure({"value": [1]}, Int64List).value == (1,)


def test_a_jit_config_decodes_from_its_capitalised_encoded_jit_config_key() -> None:
    config = structure(load_fixture("jit_config_response.json"), JitRunnerConfig)

    assert config.runner == RunnerReference(6858, "arc-runner-set-897p8-runner-xwp5k", 117)
    assert config.encoded_jit_config.get_secret_value().startswith("eyIucnVubmVyIjoi")


def test_runner_references_decode() -> None:
    runner = structure(load_fixture("runner_reference.json"), RunnerReference)
    listed = structure(load_fixture("runner_reference_list.json"), RunnerReferenceList)
    empty = structure(load_fixture("runner_reference_list_empty.json"), RunnerReferenceList)

    assert runner == RunnerReference(
        id=6858, name="arc-runner-set-897p8-runner-xwp5k", runner_scale_set_id=117
    )
    assert listed.value == (runner,)
    assert (empty.count, empty.value) == (0, ())


def test_runner_groups_decode() -> None:
    (group,) = structure(load_fixture("runner_group_list.json"), RunnerGroupList).value
    (minimal,) = structure(load_fixture("runner_group_list_from_tests.json"), RunnerGroupList).value

    assert (group.id, group.name, group.size, group.is_default_group) == (3, "arc-linux", 2, False)
    assert (minimal.id, minimal.name, minimal.size, minimal.is_default_group) == (
        1,
        "test-runner-group",
        0,
        False,
    )


def test_the_admin_connection_decodes_with_plain_keys() -> None:
    connection = structure(load_fixture("runner_registration_response.json"), ActionsServiceAdminConnection)

    assert connection.url == "https://broker.actions.githubusercontent.com/rest/"
    assert connection.token.get_secret_value().startswith("eyJhbGciOiJSUzI1NiIs")
