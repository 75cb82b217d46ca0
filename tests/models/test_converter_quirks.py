"""The converter's wire quirks on the Actions-service models (docs/protocol.md, "Byte order marks",
"Wire format")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from actions_scaleset import Secret
from actions_scaleset.errors import InvalidResponseError
from actions_scaleset.models import (
    ZERO_TIME,
    ActionsServiceAdminConnection,
    JitRunnerConfig,
    JobStarted,
    Label,
    RunnerGroup,
    RunnerReference,
    RunnerReferenceList,
    RunnerScaleSet,
    RunnerScaleSetMessage,
    RunnerScaleSetSession,
    RunnerScaleSetStatistic,
    RunnerSetting,
    format_timestamp,
    parse_timestamp,
    structure,
    unstructure,
)
from tests.support import load_fixture

SESSION = {"messageQueueUrl": "https://broker.example/message", "messageQueueAccessToken": "t0ken"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # .NET writes 7 fraction digits (the fixtures do); Python keeps 6
        ("2026-04-10T12:31:24.8630000Z", datetime(2026, 4, 10, 12, 31, 24, 863000, tzinfo=UTC)),
        ("2026-05-04T10:07:18.4410000Z", datetime(2026, 5, 4, 10, 7, 18, 441000, tzinfo=UTC)),
        ("2026-05-04T10:07:18.1234567Z", datetime(2026, 5, 4, 10, 7, 18, 123456, tzinfo=UTC)),
        ("2026-05-04T10:07:01.12Z", datetime(2026, 5, 4, 10, 7, 1, 120000, tzinfo=UTC)),
        ("2026-05-04T12:07:01+02:00", datetime(2026, 5, 4, 10, 7, 1, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", None),
        ("0001-01-01T00:00:00.0000000Z", None),
    ],
)
def test_times_decode_from_dotnet_text(text: str, expected: datetime | None) -> None:
    body = f'[{{"messageType": "JobStarted", "runnerRequestId": 1, "queueTime": "{text}"}}]'
    wire = {"messageId": 1, "messageType": "RunnerScaleSetJobMessages", "body": body}

    assert parse_timestamp(text) == expected
    (event,) = structure(wire, RunnerScaleSetMessage).events
    assert isinstance(event, JobStarted)
    assert event.queue_time == expected


def test_a_none_time_is_sent_as_the_zero_time() -> None:
    # docs/protocol.md, "Wire format": "a zero time encodes as 0001-01-01T00:00:00Z"
    assert format_timestamp(None) == ZERO_TIME
    assert unstructure(RunnerScaleSet(id=1))["createdOn"] == ZERO_TIME


def test_an_out_of_range_time_is_an_invalid_response_not_an_overflow() -> None:
    with pytest.raises(InvalidResponseError, match="created_on"):
        structure({"id": 1, "createdOn": "9999-12-31T23:00:00-02:00"}, RunnerScaleSet)


def test_times_are_sent_in_utc() -> None:
    created = datetime(2026, 4, 10, 14, 31, 24, 863000, tzinfo=timezone(timedelta(hours=2)))

    assert unstructure(RunnerScaleSet(id=1, created_on=created))["createdOn"] == "2026-04-10T12:31:24.863Z"


def test_keys_match_case_insensitively() -> None:
    # docs/protocol.md, "Byte order marks": Go's encoding/json matches field names case-insensitively
    scale_set = structure(
        {"ID": 3, "runnersetting": {"DisableUpdate": True}, "Labels": [{"NAME": "x"}]}, RunnerScaleSet
    )

    assert scale_set == RunnerScaleSet(
        id=3, runner_setting=RunnerSetting(disable_update=True), labels=(Label("x"),)
    )


def test_the_jit_config_key_matches_in_any_case() -> None:
    wire = {"runner": {"id": 1, "name": "r"}, "encodedJitConfig": "abc"}

    assert structure(wire, JitRunnerConfig).encoded_jit_config.get_secret_value() == "abc"


def test_unknown_fields_are_ignored() -> None:
    wire = {**load_fixture("runner_scale_set.json"), "newThing": {"x": 1}, "enabled": True}

    assert structure(wire, RunnerScaleSet) == structure(load_fixture("runner_scale_set.json"), RunnerScaleSet)


def test_a_json_null_reads_as_an_absent_field_as_in_go() -> None:
    # docs/protocol.md, "Wire format" conventions: Go's encoding/json leaves a field at its zero value on null
    wire = {
        "id": 4,
        "name": None,
        "labels": None,
        "RunnerSetting": None,
        "createdOn": None,
        "statistics": None,
    }

    assert structure(wire, RunnerScaleSet) == RunnerScaleSet(id=4)


def test_a_nil_session_id_reads_as_none() -> None:
    # docs/protocol.md, "A 409 from a stale session": scaleset refuses a session whose id is the nil UUID
    session = structure(
        {**SESSION, "sessionId": "00000000-0000-0000-0000-000000000000"}, RunnerScaleSetSession
    )

    assert session.session_id is None


def test_a_session_without_an_id_marshals_with_the_nil_uuid() -> None:
    # docs/protocol.md, "Wire format": scaleset always sends sessionId, the nil UUID when there is none
    wire = unstructure(structure(SESSION, RunnerScaleSetSession))

    assert wire["sessionId"] == "00000000-0000-0000-0000-000000000000"
    assert wire["messageQueueAccessToken"] == "t0ken"


def test_the_admin_connection_keeps_its_plain_keys() -> None:
    # docs/protocol.md, "Wire format": `{"url": string, "token": string}`, the one model that is not camelCase
    connection = ActionsServiceAdminConnection(url="https://x/", token=Secret("j.w.t"))

    assert unstructure(connection) == {"url": "https://x/", "token": "j.w.t"}
    assert structure({"URL": "https://x/", "Token": "j.w.t"}, ActionsServiceAdminConnection) == connection


def test_a_list_marshals_as_count_and_value() -> None:
    listed = RunnerReferenceList(count=1, value=(RunnerReference(6858, "r", 117),))

    assert unstructure(listed) == {"count": 1, "value": [{"id": 6858, "name": "r", "runnerScaleSetId": 117}]}


@pytest.mark.parametrize(
    ("wire", "cls", "where"),
    [
        ({"messageType": "RunnerScaleSetJobMessages"}, RunnerScaleSetMessage, "message_id"),
        (
            {"messageId": "100028209", "messageType": "RunnerScaleSetJobMessages"},
            RunnerScaleSetMessage,
            "message_id",
        ),
        ({"messageId": 1.5, "messageType": "RunnerScaleSetJobMessages"}, RunnerScaleSetMessage, "message_id"),
        ({"messageId": 1}, RunnerScaleSetMessage, "message_type"),
        ({"messageQueueUrl": "u"}, RunnerScaleSetSession, "message_queue_access_token"),
        ({**SESSION, "messageQueueAccessToken": 5}, RunnerScaleSetSession, "message_queue_access_token"),
        ({**SESSION, "sessionId": 5}, RunnerScaleSetSession, "session_id"),
        ({"name": "no id"}, RunnerScaleSet, "id"),
        ({"id": "117"}, RunnerScaleSet, "id"),
        ({"id": True}, RunnerScaleSet, "id"),
        ({"id": 1, "labels": "linux"}, RunnerScaleSet, "labels"),
        ({"id": 1, "labels": [{"type": "System"}]}, RunnerScaleSet, "name"),
        ({"id": 1, "RunnerSetting": {"ephemeral": "true"}}, RunnerScaleSet, "ephemeral"),
        ({"id": 1, "createdOn": 1712752284}, RunnerScaleSet, "created_on"),
        ({"id": 1, "statistics": {"totalAssignedJobs": "3"}}, RunnerScaleSet, "total_assigned_jobs"),
        ({"id": 3, "name": "g", "isDefaultGroup": "no"}, RunnerGroup, "is_default_group"),
        ({"runner": {"id": 1, "name": "r"}}, JitRunnerConfig, "encoded_jit_config"),
        ({"count": "1"}, RunnerReferenceList, "count"),
        ({"value": {"id": 1}}, RunnerReferenceList, "value"),
        ([], RunnerScaleSetStatistic, "JSON object"),
        ("not an object", RunnerScaleSet, "JSON object"),
        (None, RunnerScaleSetMessage, "JSON object"),
    ],
)
def test_a_wrong_shape_is_an_invalid_response_saying_where(wire: Any, cls: Any, where: str) -> None:
    with pytest.raises(InvalidResponseError) as raised:
        structure(wire, cls)

    assert where in str(raised.value)
