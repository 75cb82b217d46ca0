"""Figure 1, decode: one 50-event message (the queue's per-message cap), events per CPU-second.

SDK: `models.structure(models.load_json(raw), models.RunnerScaleSetMessage)`, then
`msg.events`. Baseline: `json.loads` twice (the message, then its `body`) and the
`runnerRequestId` of each `JobAvailable`. Both start from the same bytes; CPU time
(`time.process_time`) per round. Target: the SDK costs at most 2x the baseline.
"""

from __future__ import annotations

import json
from typing import Any

from actions_scaleset import models
from benchmarks._harness import Row, calibrate, interleave, note, rate

EVENTS = 50
TARGET = 2.0


def message_bytes() -> bytes:
    events = [
        {
            "messageType": "JobAvailable",
            "runnerRequestId": 7000 + i,
            "repositoryName": "widgets",
            "ownerName": "octo-org",
            "jobDisplayName": f"test ({i})",
            "requestLabels": ["linux"],
            "queueTime": "2026-05-04T10:07:01.1234567Z",
            "acquireJobUrl": "https://x.example/acquirejobs",
        }
        for i in range(EVENTS)
    ]
    message = {
        "messageId": 100028209,
        "messageType": "RunnerScaleSetJobMessages",
        "body": json.dumps(events),
        "statistics": {"totalAvailableJobs": EVENTS, "totalAssignedJobs": EVENTS},
    }
    return json.dumps(message).encode()


def sdk_decode(raw: bytes) -> Any:
    msg = models.structure(models.load_json(raw), models.RunnerScaleSetMessage)
    return msg.events


def raw_decode(raw: bytes) -> Any:
    d = json.loads(raw)
    events = json.loads(d["body"])
    return [e["runnerRequestId"] for e in events if e["messageType"] == "JobAvailable"]


def run(rounds: int, round_seconds: float) -> list[Row]:
    raw = message_bytes()
    assert len(sdk_decode(raw)) == EVENTS
    assert len(raw_decode(raw)) == EVENTS

    def sdk() -> object:
        return sdk_decode(raw)

    def baseline() -> object:
        return raw_decode(raw)

    sdk_calls = calibrate(sdk, round_seconds)
    base_calls = calibrate(baseline, round_seconds)
    note(f"decode: {rounds} rounds of {sdk_calls} (SDK) and {base_calls} (baseline) messages")
    sdk_rates, base_rates = interleave(
        rounds, rate(sdk, sdk_calls, EVENTS), rate(baseline, base_calls, EVENTS)
    )
    return [
        Row(
            "1 decode",
            "50-event message, events per CPU-second",
            sdk_rates,
            base_rates,
            digits=0,
            higher_is_better=True,
            target=TARGET,
        )
    ]
