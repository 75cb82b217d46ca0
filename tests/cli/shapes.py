"""The `--json` shapes docs/cli.md promises: the keys of each object, exactly."""

from __future__ import annotations

from typing import Any

STATISTICS = {
    "total_available_jobs",
    "total_acquired_jobs",
    "total_assigned_jobs",
    "total_running_jobs",
    "total_registered_runners",
    "total_busy_runners",
    "total_idle_runners",
}
SCALE_SET = {
    "id",
    "name",
    "runner_group_id",
    "runner_group_name",
    "labels",
    "runner_setting",
    "created_on",
    "statistics",
}
RUNNER_SETTING = {"ephemeral", "is_elastic", "disable_update"}
REF = {"id", "name"}
JOB = {"runner_request_id", "message_type", "repository", "job_workflow_ref", "event_name", "labels"}
RUNNER = {"id", "name", "os", "status", "busy", "ephemeral", "runner_group_id", "labels"}
JIT = {"scale_set", "runner", "settings", "encoded_jit_config", "remove_command"}
JIT_SETTINGS = {
    "agent_id",
    "agent_name",
    "pool_id",
    "pool_name",
    "server_url",
    "server_url_v2",
    "flow",
    "github_url",
    "work_folder",
    "ephemeral",
    "disable_update",
    "auth_scheme",
    "client_id",
    "authorization_url",
    "rsa_key",
    "access_token",
}
MESSAGE = {"message_id", "message_type", "statistics", "events", "acquired"}
EVENT = {
    "type",
    "runner_request_id",
    "job_id",
    "repository",
    "job_display_name",
    "job_workflow_ref",
    "event_name",
    "labels",
    "runner_id",
    "runner_name",
    "result",
}
DOCTOR = {"ok", "checks"}
CHECK = {"name", "status", "detail", "hint"}
FAKE = {"base_url", "config_url", "token", "scale_set", "jobs", "seed", "env"}


def assert_scale_set(value: Any) -> None:
    assert set(value) == SCALE_SET
    assert set(value["runner_setting"]) == RUNNER_SETTING
    assert value["statistics"] is None or set(value["statistics"]) == STATISTICS
    assert all(isinstance(label, str) for label in value["labels"])


def assert_message(value: Any) -> None:
    assert set(value) == MESSAGE
    assert value["statistics"] is None or set(value["statistics"]) == STATISTICS
    for event in value["events"]:
        assert set(event) == EVENT
