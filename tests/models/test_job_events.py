"""The message `body`: a JSON list in a string, parsed once into typed job events (docs/protocol.md,
"Wire format")."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest

from actions_scaleset.errors import InvalidResponseError
from actions_scaleset.models import (
    JOB_MESSAGES_TYPE,
    JobAssigned,
    JobAvailable,
    JobCompleted,
    JobEvent,
    JobStarted,
    RunnerScaleSetMessage,
    UnknownJobEvent,
    format_job_events,
    parse_job_events,
    parse_timestamp,
    structure,
    to_camel,
)
from tests.support import load_fixture

DECODED = load_fixture("message_job_messages_body_decoded.json")
TIMES = {"queueTime", "scaleSetAssignTime", "runnerAssignTime", "finishTime"}


def message(body: str, message_type: str = JOB_MESSAGES_TYPE) -> dict[str, Any]:
    return {"messageId": 7, "messageType": message_type, "body": body}


def fixture_message() -> RunnerScaleSetMessage:
    return structure(load_fixture("message_job_messages.json"), RunnerScaleSetMessage)


def test_the_body_of_the_fixture_is_the_decoded_fixture() -> None:
    assert json.loads(load_fixture("message_job_messages.json")["body"]) == DECODED


@pytest.mark.parametrize("index", range(len(DECODED)))
def test_each_event_carries_every_field_of_its_wire_object(index: int) -> None:
    event = fixture_message().events[index]
    wire = DECODED[index]

    assert event.message_type == wire["messageType"]
    snake_fields = {to_camel(field.name): field.name for field in attrs.fields(type(event))}
    for key, expected in wire.items():
        if key == "messageType":
            continue
        actual = getattr(event, snake_fields[key])
        if key in TIMES:
            assert actual == parse_timestamp(expected), key
        elif key == "requestLabels":
            assert actual == tuple(expected)
        else:
            assert actual == expected, key


def test_the_five_events_decode_in_order_to_their_types() -> None:
    available, assigned, started, succeeded, canceled = fixture_message().events

    assert isinstance(available, JobAvailable)
    assert available.runner_request_id == 7302
    assert available.acquire_job_url.endswith("/runnerscalesets/117/acquirejobs")
    assert available.queue_time == datetime(2026, 5, 4, 10, 7, 18, 441000, tzinfo=UTC)
    assert available.runner_assign_time is None  # the zero time: not assigned yet

    assert isinstance(assigned, JobAssigned)
    assert assigned.runner_request_id == 7301
    assert assigned.job_display_name == "build (ubuntu)"

    assert isinstance(started, JobStarted)
    assert started.runner_request_id == 7301
    assert started.runner_id == 6858
    assert started.runner_name == "arc-runner-set-897p8-runner-xwp5k"
    assert started.runner_assign_time == datetime(2026, 5, 4, 10, 7, 19, 271000, tzinfo=UTC)
    assert started.finish_time is None

    assert isinstance(succeeded, JobCompleted)
    assert (succeeded.result, succeeded.runner_id, succeeded.runner_name) == (
        "succeeded",
        6851,
        "arc-runner-set-897p8-runner-q8m2d",
    )
    assert succeeded.finish_time == datetime(2026, 5, 4, 10, 7, 20, 50000, tzinfo=UTC)

    # docs/protocol.md, "Wire format": canceled before it reached a runner, so no runner and a zero
    # runnerAssignTime
    assert isinstance(canceled, JobCompleted)
    assert (canceled.result, canceled.runner_id, canceled.runner_name) == ("canceled", 0, "")
    assert canceled.runner_assign_time is None
    assert canceled.workflow_run_id == 14812345678


def test_the_typed_views_split_the_events_by_type() -> None:
    decoded = fixture_message()

    assert [job.runner_request_id for job in decoded.jobs_available] == [7302]
    assert [job.runner_request_id for job in decoded.jobs_assigned] == [7301]
    assert [job.runner_name for job in decoded.jobs_started] == ["arc-runner-set-897p8-runner-xwp5k"]
    assert [job.result for job in decoded.jobs_completed] == ["succeeded", "canceled"]
    assert decoded.unknown_events == ()


def test_events_are_parsed_when_the_message_is_decoded() -> None:
    decoded = fixture_message()

    assert decoded.events == parse_job_events(decoded.body)
    assert decoded.events is decoded.events  # an attribute, not re-parsed on each access


@pytest.mark.parametrize("body", ["", "   ", "[]", "\ufeff", "\ufeff[]"])
def test_an_empty_body_has_no_events(body: str) -> None:
    assert parse_job_events(body) == ()
    assert structure(message(body), RunnerScaleSetMessage).events == ()


def test_a_message_without_a_body_has_no_events() -> None:
    assert structure({"messageId": 1, "messageType": JOB_MESSAGES_TYPE}, RunnerScaleSetMessage).events == ()


def test_a_null_body_reads_as_empty_as_go_does() -> None:
    # docs/protocol.md, "Wire format": Go's encoding/json leaves a string unchanged on `null`.
    decoded = structure({**message(""), "body": None}, RunnerScaleSetMessage)

    assert (decoded.body, decoded.events) == ("", ())


def test_a_bom_before_the_body_is_tolerated() -> None:
    # docs/protocol.md, "Byte order marks": clients strip a UTF-8 BOM
    body = load_fixture("message_job_messages.json")["body"]

    assert parse_job_events("\ufeff" + body) == parse_job_events(body)
    assert len(structure(message("\ufeff" + body), RunnerScaleSetMessage).events) == 5


def test_an_unknown_event_type_is_kept_with_its_wire_object() -> None:
    wire = {"messageType": "JobQueued", "runnerRequestId": 9, "somethingNew": {"a": [1, 2]}}

    (event,) = parse_job_events(json.dumps([DECODED[0], wire]))[1:]

    assert event == UnknownJobEvent(message_type="JobQueued", raw=wire)
    assert structure(message(json.dumps([wire])), RunnerScaleSetMessage).unknown_events == (event,)


def test_an_event_without_a_message_type_is_kept_as_unknown() -> None:
    (event,) = parse_job_events('[{"runnerRequestId": 9}]')

    assert event == UnknownJobEvent(message_type="", raw={"runnerRequestId": 9})


def test_event_keys_match_case_insensitively_as_in_go() -> None:
    # docs/protocol.md, "Byte order marks": "field names match case-insensitively"
    (event,) = parse_job_events('[{"MessageType": "JobStarted", "RUNNERREQUESTID": 3, "runnername": "r-1"}]')

    assert event == JobStarted(runner_request_id=3, runner_name="r-1")


def test_unknown_fields_in_an_event_are_ignored() -> None:
    (event,) = parse_job_events('[{"messageType": "JobAssigned", "runnerRequestId": 3, "newField": true}]')

    assert event == JobAssigned(runner_request_id=3)


def test_absent_event_fields_take_go_zero_values() -> None:
    (event,) = parse_job_events('[{"messageType": "JobCompleted", "runnerRequestId": 3}]')

    assert event == JobCompleted(runner_request_id=3)
    assert (event.result, event.runner_id, event.request_labels, event.finish_time) == ("", 0, (), None)


def test_a_message_of_another_type_keeps_its_body_unparsed() -> None:
    # docs/protocol.md, "Wire format": only RunnerScaleSetJobMessages carries job messages; what to do with
    # another type is the session's decision, so decoding does not fail on it.
    decoded = structure(message("not json", message_type="SomethingElse"), RunnerScaleSetMessage)

    assert (decoded.message_type, decoded.body, decoded.events) == ("SomethingElse", "not json", ())


def test_events_only_ever_come_from_the_body() -> None:
    for message_type in (JOB_MESSAGES_TYPE, "SomethingElse"):
        wire = {**message("", message_type), "events": [{"messageType": "JobAssigned", "runnerRequestId": 1}]}

        assert structure(wire, RunnerScaleSetMessage).events == ()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("null", "not null"),
        ("{}", "not an object"),
        ('"[]"', "not a string"),
        ("7", "not a number"),
        ("[", "not JSON"),
        ("[1]", "job message 0"),
        ("[[]]", "job message 0"),
        ('[{"messageType": "JobStarted"}]', "runner_request_id"),
        ('[{"messageType": "JobStarted", "runnerRequestId": "7"}]', "runner_request_id"),
        ('[{"messageType": "JobStarted", "runnerRequestId": 7, "requestLabels": "x"}]', "request_labels"),
        ('[{"messageType": "JobStarted", "runnerRequestId": 7, "queueTime": "yesterday"}]', "queue_time"),
        ('[{"messageType": 5}]', "messageType"),
        ('[{"messageType": "JobAvailable", "runnerRequestId": 1}, 2]', "job message 1"),
    ],
)
def test_a_body_that_is_not_a_list_of_job_messages_is_an_invalid_response(body: str, reason: str) -> None:
    with pytest.raises(InvalidResponseError) as raised:
        parse_job_events(body)
    assert reason in str(raised.value)

    with pytest.raises(InvalidResponseError):
        structure(message(body), RunnerScaleSetMessage)


@pytest.mark.parametrize("body", [[], {}, 5, True])
def test_a_body_that_is_not_a_string_is_an_invalid_response(body: object) -> None:
    # docs/protocol.md, "Wire format": the body is double-encoded, a JSON string holding the list
    with pytest.raises(InvalidResponseError, match="body"):
        structure({**message(""), "body": body}, RunnerScaleSetMessage)


def test_format_job_events_is_the_inverse_of_parse_job_events() -> None:
    unknown = UnknownJobEvent(message_type="JobQueued", raw={"messageType": "JobQueued", "x": 1})
    events: tuple[JobEvent, ...] = (*fixture_message().events, unknown)

    assert parse_job_events(format_job_events(events)) == events


def test_formatted_events_carry_their_message_type_and_zero_times() -> None:
    (wire,) = json.loads(format_job_events([JobAssigned(runner_request_id=7301)]))

    assert wire["messageType"] == "JobAssigned"
    assert wire["runnerRequestId"] == 7301
    assert wire["finishTime"] == "0001-01-01T00:00:00Z"  # as in the fixture
    assert set(wire) == set(DECODED[1])
