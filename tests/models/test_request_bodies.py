"""Request bodies are what GitHub's Go clients send (docs/protocol.md, "Scale-set endpoints",
"Wire format"; the *_request*.json fixtures)."""

from __future__ import annotations

import pytest

from actions_scaleset.models import (
    Label,
    RunnerScaleSet,
    RunnerSetting,
    jit_config_request_body,
    scale_set_request_body,
    session_request_body,
    unstructure,
)
from tests.support import load_fixture


def test_the_create_body_is_the_one_scaleset_sends() -> None:
    body = scale_set_request_body(
        name="arc-runner-set",
        runner_group_id=1,
        labels=["arc-runner-set"],
        runner_setting=RunnerSetting(disable_update=True),
    )

    assert body == load_fixture("runner_scale_set_create_request_scaleset.json")


def test_the_create_body_is_the_one_the_legacy_client_sends() -> None:
    body = scale_set_request_body(
        name="arc-runner-set",
        runner_group_id=1,
        labels=[Label("arc-runner-set")],
        runner_setting=RunnerSetting(ephemeral=True, disable_update=True),
    )

    assert body == load_fixture("runner_scale_set_create_request_legacy.json")


def test_a_group_change_sends_only_the_group_with_the_empty_setting_and_zero_time() -> None:
    # docs/protocol.md, "Wire format": update bodies are sparse, but RunnerSetting:{} and the zero
    # createdOn still go
    assert scale_set_request_body(runner_group_id=3) == load_fixture("runner_scale_set_update_request.json")


def test_a_rename_sends_only_the_name() -> None:
    assert scale_set_request_body(name="renamed") == {
        "name": "renamed",
        "RunnerSetting": {},
        "createdOn": "0001-01-01T00:00:00Z",
    }


@pytest.mark.parametrize(
    "labels",
    [["linux"], [Label("linux")], [Label("linux", "")]],
)
def test_a_label_type_defaults_to_system(labels: list[str | Label]) -> None:
    # docs/protocol.md, "Wire format": scaleset defaults an empty label type to "System"
    assert scale_set_request_body(labels=labels)["labels"] == [{"type": "System", "name": "linux"}]


def test_a_custom_label_type_is_kept() -> None:
    assert scale_set_request_body(labels=[Label("gpu", "User")])["labels"] == [
        {"type": "User", "name": "gpu"}
    ]


def test_one_string_is_not_taken_for_a_list_of_labels() -> None:
    with pytest.raises(TypeError, match="labels"):
        scale_set_request_body(labels="linux")


def test_false_runner_settings_are_left_out_as_go_omitempty_does() -> None:
    # docs/protocol.md, "Wire format": each RunnerSetting field is omitempty, and Go's omitempty omits false
    setting = RunnerSetting(ephemeral=False, is_elastic=None, disable_update=True)

    assert scale_set_request_body(runner_setting=setting)["RunnerSetting"] == {"disableUpdate": True}


def test_a_whole_scale_set_marshals_with_go_omitempty() -> None:
    # docs/protocol.md, "Wire format": id, name, group, labels, jit url and statistics are omitempty;
    # RunnerSetting
    # and createdOn are structs, always sent
    assert unstructure(RunnerScaleSet(id=5)) == {
        "id": 5,
        "RunnerSetting": {},
        "createdOn": "0001-01-01T00:00:00Z",
    }


def test_the_session_body_is_the_one_scaleset_sends_with_a_nil_session_id() -> None:
    body = session_request_body(owner_name="arc-runner-set-754b578d-listener")

    assert body == load_fixture("session_create_request_scaleset.json")


def test_the_jit_body_always_sends_the_work_folder() -> None:
    # docs/protocol.md, "Wire format": no omitempty, so workFolder:"" is sent
    body = jit_config_request_body(name="arc-runner-set-897p8-runner-xwp5k")

    assert body == load_fixture("jit_config_request.json")
    assert jit_config_request_body(name="r", work_folder="_work") == {"name": "r", "workFolder": "_work"}
