"""Properties: models survive a trip through JSON; bad input only ever raises InvalidResponseError."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from actions_scaleset import Secret
from actions_scaleset.errors import InvalidResponseError
from actions_scaleset.models import (
    JOB_MESSAGES_TYPE,
    AcquirableJob,
    AcquirableJobList,
    ActionsServiceAdminConnection,
    Int64List,
    JitRunnerConfig,
    JobAssigned,
    JobAvailable,
    JobCompleted,
    JobEvent,
    JobStarted,
    Label,
    RunnerGroup,
    RunnerGroupList,
    RunnerReference,
    RunnerScaleSet,
    RunnerScaleSetList,
    RunnerScaleSetMessage,
    RunnerScaleSetSession,
    RunnerScaleSetStatistic,
    RunnerSetting,
    UnknownJobEvent,
    format_job_events,
    parse_job_events,
    structure,
    unstructure,
)

KNOWN_EVENT_TYPES = {"JobAvailable", "JobAssigned", "JobStarted", "JobCompleted"}

text = st.text(max_size=20)
int64 = st.integers(-(2**63), 2**63 - 1)
ids = st.integers(
    1, 2**53
)  # a response always carries a positive id; a zero id is omitempty (docs/protocol.md, "Wire format")
times = st.none() | st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(9998, 12, 31),
    timezones=st.just(UTC) | st.builds(timezone, st.timedeltas(timedelta(hours=-12), timedelta(hours=14))),
)
secrets = st.builds(Secret, text)
labels = st.lists(st.builds(Label, text, text), max_size=3).map(tuple)
strings = st.lists(text, max_size=3).map(tuple)
# Go's omitempty never sends false (docs/protocol.md, "Wire format"), so false and unset are one value on
# the wire.
maybe_true = st.sampled_from([None, True])
settings = st.builds(RunnerSetting, ephemeral=maybe_true, is_elastic=maybe_true, disable_update=maybe_true)
statistics = st.builds(
    RunnerScaleSetStatistic,
    total_available_jobs=int64,
    total_acquired_jobs=int64,
    total_assigned_jobs=int64,
    total_running_jobs=int64,
    total_registered_runners=int64,
    total_busy_runners=int64,
    total_idle_runners=int64,
)
scale_sets = st.builds(
    RunnerScaleSet,
    id=ids,
    name=text,
    runner_group_id=int64,
    runner_group_name=text,
    labels=labels,
    runner_setting=settings,
    created_on=times,
    runner_jit_config_url=text,
    statistics=st.none() | statistics,
)
sessions = st.builds(
    RunnerScaleSetSession,
    session_id=st.none() | st.uuids(version=4).map(str),
    owner_name=text,
    runner_scale_set=st.none() | scale_sets,
    message_queue_url=text,
    message_queue_access_token=secrets,
    statistics=st.none() | statistics,
)
base = {
    "runner_request_id": int64,
    "repository_name": text,
    "owner_name": text,
    "job_id": text,
    "job_workflow_ref": text,
    "job_display_name": text,
    "workflow_run_id": int64,
    "event_name": text,
    "request_labels": strings,
    "queue_time": times,
    "scale_set_assign_time": times,
    "runner_assign_time": times,
    "finish_time": times,
}
json_scalars = st.none() | st.booleans() | int64 | text
unknown_events = st.builds(
    lambda message_type, extra: UnknownJobEvent(
        message_type=message_type, raw={**extra, "messageType": message_type}
    ),
    text.filter(lambda name: name not in KNOWN_EVENT_TYPES),
    st.dictionaries(text.filter(lambda key: key.lower() != "messagetype"), json_scalars, max_size=3),
)
events: st.SearchStrategy[JobEvent] = st.one_of(
    st.builds(JobAvailable, acquire_job_url=text, **base),
    st.builds(JobAssigned, **base),
    st.builds(JobStarted, runner_id=int64, runner_name=text, **base),
    st.builds(JobCompleted, result=text, runner_id=int64, runner_name=text, **base),
    unknown_events,
)


@st.composite
def messages(draw: st.DrawFn) -> RunnerScaleSetMessage:
    message_events = tuple(draw(st.lists(events, max_size=5)))
    return RunnerScaleSetMessage(
        message_id=draw(int64),
        message_type=JOB_MESSAGES_TYPE,
        body=format_job_events(message_events),
        statistics=draw(st.none() | statistics),
        events=message_events,
    )


other_messages = st.builds(
    RunnerScaleSetMessage,
    message_id=int64,
    message_type=text.filter(lambda name: name != JOB_MESSAGES_TYPE),
    body=text,
    statistics=st.none() | statistics,
)
models = st.one_of(
    scale_sets,
    sessions,
    messages(),
    other_messages,
    settings,
    statistics,
    st.builds(
        AcquirableJob,
        acquire_job_url=text,
        message_type=text,
        runner_request_id=int64,
        repository_name=text,
        owner_name=text,
        job_workflow_ref=text,
        event_name=text,
        request_labels=strings,
    ),
    st.builds(RunnerReference, int64, text, int64),
    st.builds(RunnerGroup, int64, text, int64, st.booleans()),
    st.builds(JitRunnerConfig, st.builds(RunnerReference, int64, text, int64), secrets),
    st.builds(ActionsServiceAdminConnection, text, secrets),
)


def through_json(value: Any) -> Any:
    return json.loads(json.dumps(unstructure(value)))


@given(models)
def test_a_model_survives_a_trip_through_json(model: Any) -> None:
    assert structure(through_json(model), type(model)) == model


@given(st.lists(scale_sets, max_size=3).map(tuple))
def test_a_list_of_scale_sets_survives_a_trip_through_json(value: tuple[RunnerScaleSet, ...]) -> None:
    listed = RunnerScaleSetList(count=len(value), value=value)

    assert structure(through_json(listed), RunnerScaleSetList) == listed


@given(st.lists(int64, max_size=5).map(tuple))
def test_a_list_of_ids_survives_a_trip_through_json(value: tuple[int, ...]) -> None:
    assert structure(through_json(Int64List(len(value), value)), Int64List) == Int64List(len(value), value)


@given(st.lists(events, max_size=5).map(tuple))
def test_parse_job_events_reads_what_format_job_events_writes(value: tuple[JobEvent, ...]) -> None:
    assert parse_job_events(format_job_events(value)) == value


@given(models)
def test_nothing_marshals_to_null(model: Any) -> None:
    # Go's clients never send null for these types (docs/protocol.md, "Wire format"): None is left out or a
    # zero value
    def has_null(value: Any) -> bool:
        if isinstance(value, dict):
            return any(has_null(item) for item in value.values())
        if isinstance(value, list):
            return any(has_null(item) for item in value)
        return value is None

    assert not has_null(unstructure(model))


json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)
TARGETS = [
    RunnerScaleSet,
    RunnerScaleSetSession,
    RunnerScaleSetMessage,
    RunnerScaleSetStatistic,
    JitRunnerConfig,
    RunnerGroupList,
    AcquirableJobList,
    Int64List,
    ActionsServiceAdminConnection,
]


@given(json_values, st.sampled_from(TARGETS))
def test_any_json_decodes_or_raises_invalid_response(value: Any, cls: Any) -> None:
    with contextlib.suppress(InvalidResponseError):
        structure(value, cls)


@given(st.one_of(text, st.builds(json.dumps, json_values)))
def test_any_body_parses_or_raises_invalid_response(body: str) -> None:
    with contextlib.suppress(InvalidResponseError):
        parse_job_events(body)


message_keys = st.fixed_dictionaries(
    {"messageId": int64, "messageType": st.just(JOB_MESSAGES_TYPE)},
    optional={
        "body": st.builds(
            json.dumps,
            st.lists(
                st.dictionaries(
                    st.sampled_from(
                        ["messageType", "runnerRequestId", "requestLabels", "queueTime", "runnerName"]
                    ),
                    json_values | st.sampled_from(sorted(KNOWN_EVENT_TYPES)),
                ),
                max_size=3,
            ),
        )
    },
)


@given(message_keys)
def test_any_job_message_body_decodes_or_raises_invalid_response(wire: dict[str, Any]) -> None:
    with contextlib.suppress(InvalidResponseError):
        structure(wire, RunnerScaleSetMessage)
