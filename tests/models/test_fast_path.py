"""The generated structure functions (`models._fast`, issue 16) read exactly what the converter reads.

Every decode is run twice: as the package runs it (generated functions first) and with
the cattrs converter alone. Both must give equal values, or both the same
`InvalidResponseError`, on generated input: odd key casing, nulls, wrong types, unknown
keys, missing fields, times in every shape.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from unittest import mock

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actions_scaleset import models
from actions_scaleset.errors import InvalidResponseError
from actions_scaleset.models import (
    JOB_MESSAGES_TYPE,
    MAX_JSON_DEPTH,
    GitHubRunnerGroup,
    JobAssigned,
    JobAvailable,
    JobCompleted,
    JobMessageBase,
    JobStarted,
    Label,
    RunnerGroup,
    RunnerReference,
    RunnerScaleSetMessage,
    RunnerScaleSetStatistic,
    RunnerSetting,
    _converter,
    load_json,
    parse_job_events,
    structure,
)

EVENT_TYPES: tuple[type[JobMessageBase], ...] = (JobAvailable, JobAssigned, JobStarted, JobCompleted)
PLAIN_TYPES = (RunnerScaleSetStatistic, RunnerSetting, RunnerReference, RunnerGroup, Label, GitHubRunnerGroup)
TIMES = [
    "2026-05-04T10:07:01.1234567Z",
    "2026-05-04T10:07:18.4410000Z",
    "2026-05-04T10:07:01Z",
    "2026-05-04T10:07:01.5Z",
    "2026-05-04T12:07:01.123+02:00",
    "2026-05-04 10:07:01.1234567z",
    "2026-05-04T10:07:01,25Z",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00.0000000Z",
    "9999-12-31T23:00:00-02:00",
    "2026-13-45T99:99:99.1234567Z",
    "2026-05-04T10:07:01.Z",
    "\uff12026-05-04T10:07:01.1234567Z",  # a full-width digit
    "not a time",
    "",
]
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def good_value(field_type: Any) -> st.SearchStrategy[Any]:
    if field_type in (int, int | None):
        return st.integers(-(2**63), 2**63)
    if field_type in (str, str | None):
        return st.text(max_size=8)
    if field_type in (bool, bool | None):
        return st.booleans()
    if field_type == tuple[str, ...]:
        return st.lists(st.text(max_size=5), max_size=3)
    if field_type == datetime | None:
        return st.sampled_from(TIMES)
    return ANY_JSON


def spellings(wire: str) -> st.SearchStrategy[str]:
    """The wire name, mostly as sent, sometimes in another case (Go matches keys in any case)."""
    return st.sampled_from([wire] * 12 + [wire.lower(), wire.upper(), wire.swapcase()])


@st.composite
def wire_objects(draw: st.DrawFn, cls: type, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """An object for `cls`: each field present, absent or null, maybe one of any JSON type instead,
    maybe an unknown key."""
    names = _converter._wire_names(cls)
    attrs.resolve_types(cls)
    wire: dict[str, Any] = dict(extra or {})
    fields = attrs.fields(cls)
    odd = draw(st.none() | st.sampled_from(fields))  # the one field holding anything at all
    for field in fields:
        choice = draw(st.sampled_from(["good", "good", "good", "good", "absent", "null"]))
        if choice == "absent" and field is not odd:
            continue
        key = draw(spellings(names[field.name]))
        if field is odd:
            wire[key] = draw(ANY_JSON)
        elif choice == "null":
            wire[key] = None
        else:
            wire[key] = draw(good_value(field.type))
    if draw(st.integers(0, 3)) == 0:
        wire[draw(st.sampled_from(["unknownField", "x", "MESSAGETYPE"]))] = draw(ANY_JSON)
    return wire


@st.composite
def job_events(draw: st.DrawFn) -> dict[str, Any]:
    cls = draw(st.sampled_from(EVENT_TYPES))
    message_type = draw(
        st.sampled_from([cls.message_type, cls.message_type, "JobNew", cls.message_type.lower()])
    )
    return draw(wire_objects(cls, {"messageType": message_type}))


@contextlib.contextmanager
def converter_only() -> Iterator[None]:
    """Decode with the cattrs converter alone: no generated function anywhere."""
    fresh = _converter.cattrs_converter.__wrapped__()
    with (
        mock.patch.object(_converter, "_fast_structurer", return_value=None),
        mock.patch.object(_converter, "_job_event_structurers", return_value={}),
        mock.patch.object(_converter, "cattrs_converter", return_value=fresh),
    ):
        yield


def outcome(decode: Callable[[], Any]) -> tuple[str, Any]:
    try:
        value = decode()
    except InvalidResponseError as exc:
        return "error", str(exc)
    return "value", value


def assert_same_outcome(decode: Callable[[], Any]) -> None:
    fast = outcome(decode)
    with converter_only():
        slow = outcome(decode)
    assert fast == slow
    if fast[0] == "value":
        assert repr(fast[1]) == repr(slow[1])
        assert hash(fast[1]) == hash(slow[1])
        assert [type(item) for item in as_items(fast[1])] == [type(item) for item in as_items(slow[1])]


def as_items(value: Any) -> list[Any]:
    if isinstance(value, RunnerScaleSetMessage):
        return [value, value.statistics, *value.events]
    if isinstance(value, tuple):
        return list(value)
    return [value]


@settings(max_examples=200)
@given(st.lists(job_events(), max_size=4))
def test_job_events_decode_alike_with_and_without_the_generated_functions(events: list[Any]) -> None:
    assert_same_outcome(lambda: parse_job_events(json.dumps(events)))


@settings(max_examples=150)
@given(
    wire_objects(RunnerScaleSetMessage).filter(lambda wire: "events" not in wire),
    st.lists(job_events(), max_size=3),
    st.booleans(),
)
def test_messages_decode_alike_with_and_without_the_generated_functions(
    wire: dict[str, Any], events: list[Any], with_events: bool
) -> None:
    if with_events:
        wire = {**wire, "messageType": JOB_MESSAGES_TYPE, "body": json.dumps(events)}
    assert_same_outcome(lambda: structure(wire, RunnerScaleSetMessage))


@settings(max_examples=200)
@given(
    st.sampled_from(PLAIN_TYPES).flatmap(lambda cls: st.tuples(st.just(cls), wire_objects(cls) | ANY_JSON))
)
def test_plain_models_decode_alike_with_and_without_the_generated_functions(case: tuple[type, Any]) -> None:
    cls, wire = case
    assert_same_outcome(lambda: structure(wire, cls))


@pytest.mark.parametrize("cls", [*EVENT_TYPES, *PLAIN_TYPES, RunnerScaleSetMessage])
def test_each_model_the_hot_path_reads_has_a_generated_function(cls: type) -> None:
    assert _converter._fast_structurer(cls) is not None


def test_a_usual_message_is_decoded_without_the_converter() -> None:
    events = [
        {"messageType": "JobAvailable", "runnerRequestId": 7, "queueTime": "2026-05-04T10:07:01.1234567Z"},
        {"messageType": "JobCompleted", "runnerRequestId": 8, "result": "succeeded", "finishTime": None},
    ]
    wire = {"messageId": 1, "messageType": JOB_MESSAGES_TYPE, "body": json.dumps(events), "statistics": {}}

    with mock.patch.object(_converter, "cattrs_converter", side_effect=AssertionError("converter used")):
        message = structure(wire, RunnerScaleSetMessage)

    assert [event.runner_request_id for event in message.events] == [7, 8]  # type: ignore[union-attr]


def test_a_generated_instance_is_the_instance_attrs_builds() -> None:
    wire = {"messageType": "JobStarted", "runnerRequestId": 7, "requestLabels": ["linux"], "runnerName": "r"}
    built = JobStarted(runner_request_id=7, request_labels=("linux",), runner_name="r")

    (event,) = parse_job_events(json.dumps([wire]))

    assert event == built
    assert hash(event) == hash(built)
    assert attrs.asdict(event) == attrs.asdict(built)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.runner_name = "other"  # type: ignore[misc]


def test_the_converter_is_built_once_on_first_use() -> None:
    assert models.converter is models.converter is _converter.cattrs_converter()


@pytest.mark.parametrize("position", [0, 3])
def test_a_body_holding_a_value_nested_too_deep_under_an_unknown_key_is_still_refused(position: int) -> None:
    deep: Any = 1
    for _ in range(MAX_JSON_DEPTH + 1):
        deep = [deep]
    events: list[Any] = [{"messageType": "JobAvailable", "runnerRequestId": index} for index in range(4)]
    events[position]["unknownField"] = deep

    with pytest.raises(InvalidResponseError, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        parse_job_events(json.dumps(events))


def test_a_message_body_nested_to_the_bound_under_an_unknown_key_decodes() -> None:
    deep: Any = 1
    for _ in range(MAX_JSON_DEPTH - 2):  # the list of events and the event are two levels
        deep = [deep]
    (event,) = parse_job_events(
        json.dumps([{"messageType": "JobAvailable", "runnerRequestId": 1, "x": deep}])
    )

    assert event == JobAvailable(runner_request_id=1)


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    return 0


NESTED = st.recursive(
    st.integers() | st.text(alphabet="[]{}", max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=2), inner, max_size=4),
    max_leaves=60,
)


@settings(max_examples=200)
@given(NESTED, st.integers(0, MAX_JSON_DEPTH + 3))
def test_load_json_refuses_exactly_what_nests_deeper_than_the_bound(value: Any, extra_levels: int) -> None:
    for _ in range(extra_levels):
        value = [value] if extra_levels % 2 else {"k": value}
    document = json.dumps(value)

    if depth(value) > MAX_JSON_DEPTH:
        with pytest.raises(ValueError, match="nested deeper"):
            load_json(document)
    else:
        assert load_json(document) == value
        assert load_json(document.encode()) == value
