"""salvage_message: keep what can be read of a message that failed to decode."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actions_scaleset.models import JobAvailable, salvage_message
from tests.support import load_fixture

MESSAGE = load_fixture("message_job_messages.json")


@pytest.mark.parametrize(
    "payload", [None, [], "x", {"messageType": "RunnerScaleSetJobMessages"}, {"messageId": "1"}]
)
def test_nothing_is_salvaged_without_an_integer_message_id(payload: Any) -> None:
    message, problems = salvage_message(payload)
    assert message is None
    assert problems


def test_a_body_that_is_not_a_list_keeps_the_id_and_statistics() -> None:
    message, problems = salvage_message({**MESSAGE, "body": '{"not": "a list"}'})
    assert message is not None
    assert message.message_id == MESSAGE["messageId"]
    assert message.events == ()
    assert message.statistics is not None
    assert message.statistics.total_assigned_jobs == MESSAGE["statistics"]["totalAssignedJobs"]
    assert problems == ("the body is not a JSON list",)


def test_each_event_that_decodes_is_kept_in_order() -> None:
    events = json.loads(MESSAGE["body"])
    events.append({"messageType": "JobStarted", "runnerRequestId": 1, "runnerId": "x"})
    message, problems = salvage_message({**MESSAGE, "body": json.dumps(events)})
    assert message is not None
    assert [type(e).__name__ for e in message.events] == [e["messageType"] for e in events[:-1]]
    assert len(problems) == 1
    assert "job message 5" in problems[0]


@given(
    st.dictionaries(
        st.text(max_size=12).filter(lambda k: k.lower() != "messageid"),
        st.none() | st.integers() | st.text(max_size=20),
        max_size=6,
    )
)
def test_salvage_never_raises(payload: dict[str, Any]) -> None:
    message, _ = salvage_message({**payload, "messageId": 7})
    assert message is not None
    assert message.message_id == 7
    assert all(not isinstance(e, JobAvailable) or e.runner_request_id for e in message.events)
