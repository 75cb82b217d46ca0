"""The reference listener's EC2 provisioner, against moto's EC2 and SSM server on loopback.

No real AWS: fake credentials, and every client points at the moto server. Capacity errors
and instance states moto does not produce are injected with botocore event hooks on the
session the provisioner is given.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aioboto3
import anyio
import attrs
import boto3
import pytest
from aiobotocore.session import AioSession
from botocore.loaders import create_loader
from examples.listener import ec2 as ec2_module
from examples.listener.ec2 import Ec2Options, Ec2Provisioner, parameter_name, user_data
from examples.listener.provisioner import NewRunner, Provisioner, ProvisionerError, RunnerHandle
from examples.listener.scaler import Ledger, ProvisioningScaler
from examples.listener.settings import ScaleSetSettings
from moto.server import ThreadedMotoServer

import actions_scaleset as asc
from actions_scaleset.testing import FakeGitHub

pytestmark = pytest.mark.anyio

SCALE_SET = "linux-x64"
JIT = "eyJqaXQiOiAic2VjcmV0LWppdC1jb25maWcifQ=="
REGION = "eu-west-1"
AMI = "ami-12c6146b"  # one of moto's built-in images


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aioboto3 runs on asyncio only


@attrs.frozen
class Aws:
    """A fresh moto account: a VPC with two subnets and a launch template."""

    url: str
    subnets: tuple[str, str]
    template_id: str
    template_name: str
    ec2: Any
    ssm: Any

    def options(self, **changes: Any) -> Ec2Options:
        return Ec2Options(
            **{
                "launch_template": self.template_id,
                "subnets": self.subnets,
                "endpoint_url": self.url,
                **changes,
            }
        )

    def instances(self) -> dict[str, dict[str, Any]]:
        """Every instance, by id, with its tags as a dict."""
        answer = self.ec2.describe_instances()
        found = {}
        for reservation in answer["Reservations"]:
            for instance in reservation["Instances"]:
                instance["Tags"] = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                found[instance["InstanceId"]] = instance
        return found

    def state(self, instance_id: str) -> str:
        return str(self.instances()[instance_id]["State"]["Name"])

    def user_data(self, instance_id: str) -> str:
        answer = self.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        return base64.b64decode(answer["UserData"]["Value"]).decode()

    def parameters(self) -> list[str]:
        return [p["Name"] for p in self.ssm.describe_parameters()["Parameters"]]


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Aws:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    with urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")):
        pass
    ec2 = boto3.client("ec2", endpoint_url=moto_url)
    ssm = boto3.client("ssm", endpoint_url=moto_url)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = tuple(
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=f"{REGION}{zone}")[
            "Subnet"
        ]["SubnetId"]
        for n, zone in ((1, "a"), (2, "b"))
    )
    template = ec2.create_launch_template(
        LaunchTemplateName="runners",
        LaunchTemplateData={
            "ImageId": AMI,
            "InstanceType": "t3.micro",
            "InstanceInitiatedShutdownBehavior": "terminate",
        },
    )["LaunchTemplate"]
    return Aws(moto_url, (subnets[0], subnets[1]), template["LaunchTemplateId"], "runners", ec2, ssm)


@functools.cache
def shared_loader() -> Any:
    return create_loader()


def new_session() -> Any:
    """An aioboto3 session that reads botocore's service models once for the module (they are large)."""
    core = AioSession()
    core.register_component("data_loader", shared_loader())
    return aioboto3.Session(botocore_session=core)


def new_runner(name: str = "linux-x64-k3x9q", runner_id: int = 7) -> NewRunner:
    return NewRunner(name=name, id=runner_id, scale_set=SCALE_SET, jit_config=asc.Secret(JIT))


class FakeHttp:
    """What a `before-call` hook answers in place of AWS: only the status is read."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}


def refuse_launches(
    session: Any, refused: Callable[[str | None], bool], code: str = "InsufficientInstanceCapacity"
) -> list[str | None]:
    """Make RunInstances fail with `code` in the subnets `refused` says; returns the subnets tried."""
    tried: list[str | None] = []

    def handler(params: dict[str, Any], **_: Any) -> Any:
        subnet = params["body"].get("SubnetId")
        tried.append(subnet)
        if not refused(subnet):
            return None
        message = f"We currently do not have sufficient capacity in the Availability Zone of {subnet}."
        error = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"RequestId": "req-42"}}
        return FakeHttp(400), error

    session.events.register("before-call.ec2.RunInstances", handler)
    return tried


def show_as(session: Any, state: str) -> None:
    """Make DescribeInstances report every instance in `state` (moto's are running at once)."""

    def handler(parsed: dict[str, Any], **_: Any) -> None:
        for reservation in parsed.get("Reservations", []):
            for instance in reservation["Instances"]:
                instance["State"] = {"Code": 0, "Name": state}

    session.events.register("after-call.ec2.DescribeInstances", handler)


def count_calls(session: Any, operation: str) -> list[str]:
    calls: list[str] = []
    session.events.register(f"before-call.ec2.{operation}", lambda **_: calls.append(operation))
    return calls


def provisioner(aws: Aws, session: Any = None, scale_set: str = SCALE_SET, **changes: Any) -> Ec2Provisioner:
    extra = {key: changes.pop(key) for key in ("clock",) if key in changes}
    return Ec2Provisioner(
        aws.options(**changes), scale_set, session=session or new_session(), refresh_interval=0, **extra
    )


# --------------------------------------------------------------------------- pure parts


def test_the_user_data_exports_the_jit_config_runs_the_runner_and_powers_off() -> None:
    script = user_data(new_runner())
    assert script.startswith("#!/bin/bash\n")
    assert "export RUNNER_NAME=linux-x64-k3x9q\n" in script
    assert f"export ACTIONS_RUNNER_INPUT_JITCONFIG={JIT}\n" in script
    assert 'cd /opt/actions-runner && runuser -u "$(stat -c %U .)" -- ./run.sh\n' in script
    assert script.endswith("shutdown -h now\n")


def test_with_a_parameter_the_user_data_reads_it_and_holds_no_jit_config() -> None:
    script = user_data(new_runner(), parameter="/gha-runners/linux-x64/linux-x64-k3x9q", region=REGION)
    assert JIT not in script
    assert "export JIT_PARAMETER=/gha-runners/linux-x64/linux-x64-k3x9q\n" in script
    assert (
        'ACTIONS_RUNNER_INPUT_JITCONFIG="$(aws ssm get-parameter --region eu-west-1 --name "$JIT_PARAMETER"'
        ' --with-decryption --query Parameter.Value --output text)" && export ACTIONS_RUNNER_INPUT_JITCONFIG'
        " && cd /opt/actions-runner"
    ) in script


def test_names_are_quoted_for_the_shell() -> None:
    script = user_data(new_runner("it's; rm -rf /"))
    assert "export RUNNER_NAME='it'\"'\"'s; rm -rf /'\n" in script


@pytest.mark.parametrize(
    ("scale_set", "runner", "expected"),
    [
        ("linux-x64", "linux-x64-k3x9q", "/gha-runners/linux-x64/linux-x64-k3x9q"),
        ("my set/ä", "my set/ä-1", "/gha-runners/my-set--/my-set---1"),
    ],
)
def test_parameter_names_are_what_ssm_allows(scale_set: str, runner: str, expected: str) -> None:
    assert parameter_name(scale_set, runner) == expected


# --------------------------------------------------------------------------- launch and tags


async def test_it_is_a_provisioner(aws: Aws) -> None:
    assert isinstance(provisioner(aws), Provisioner)


@pytest.mark.parametrize("by", ["id", "name"])
async def test_start_launches_one_tagged_instance_from_the_template_in_the_first_subnet(
    aws: Aws, by: str
) -> None:
    template = aws.template_id if by == "id" else aws.template_name
    async with provisioner(aws, launch_template=template) as ec2:
        handle = await ec2.start(new_runner())
        assert await ec2.running() == [handle]
    (instance,) = aws.instances().values()
    assert handle == RunnerHandle("linux-x64-k3x9q", 7, ref=instance["InstanceId"])
    assert instance["SubnetId"] == aws.subnets[0]
    assert instance["Tags"]["aws:ec2launchtemplate:id"] == aws.template_id
    assert instance["Tags"]["actions-scaleset:scale-set"] == SCALE_SET
    assert instance["Tags"]["actions-scaleset:runner-name"] == "linux-x64-k3x9q"
    assert instance["Tags"]["actions-scaleset:runner-id"] == "7"
    assert instance["Tags"]["Name"] == "linux-x64-k3x9q"
    assert instance.get("InstanceLifecycle") is None  # on demand
    assert f"export ACTIONS_RUNNER_INPUT_JITCONFIG={JIT}\n" in aws.user_data(instance["InstanceId"])


@pytest.mark.parametrize("via_ssm", [False, True])
async def test_no_tag_holds_the_jit_config(aws: Aws, via_ssm: bool) -> None:
    async with provisioner(aws, jit_via_ssm=via_ssm) as ec2:
        await ec2.start(new_runner())
    (instance,) = aws.instances().values()
    assert all(JIT not in key and JIT not in value for key, value in instance["Tags"].items())


async def test_spot_asks_for_a_one_time_spot_instance(aws: Aws) -> None:
    async with provisioner(aws, spot=True) as ec2:
        await ec2.start(new_runner())
    (instance,) = aws.instances().values()
    assert instance["InstanceLifecycle"] == "spot"


async def test_without_subnets_the_template_decides_where(aws: Aws) -> None:
    session = new_session()
    tried = refuse_launches(session, lambda subnet: False)
    async with provisioner(aws, session, subnets=()) as ec2:
        await ec2.start(new_runner())
    assert tried == [None]
    assert len(aws.instances()) == 1


async def test_with_jit_via_ssm_the_config_is_a_secure_string_named_in_a_tag_and_not_in_user_data(
    aws: Aws,
) -> None:
    async with provisioner(aws, jit_via_ssm=True) as ec2:
        handle = await ec2.start(new_runner())
    name = "/gha-runners/linux-x64/linux-x64-k3x9q"
    parameter = aws.ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert (parameter["Type"], parameter["Value"]) == ("SecureString", JIT)
    assert aws.instances()[handle.ref]["Tags"]["actions-scaleset:jit-parameter"] == name
    script = aws.user_data(handle.ref)
    assert JIT not in script
    assert f"export JIT_PARAMETER={name}\n" in script
    assert "--region eu-west-1" in script


# --------------------------------------------------------------------------- stop, adopt


@pytest.mark.parametrize("via_ssm", [False, True])
async def test_stop_terminates_the_instance_and_deletes_its_parameter(aws: Aws, via_ssm: bool) -> None:
    async with provisioner(aws, jit_via_ssm=via_ssm) as ec2:
        handle = await ec2.start(new_runner())
        await ec2.stop(handle)
        assert await ec2.running() == []
        await ec2.stop(handle)  # gone already: not an error
    assert aws.state(handle.ref) in ("shutting-down", "terminated")
    assert aws.parameters() == []


async def test_stop_of_an_instance_that_never_was_is_not_an_error(aws: Aws) -> None:
    async with provisioner(aws) as ec2:
        await ec2.stop(RunnerHandle("linux-x64-gone", 9, ref="i-0123456789abcdef0"))


async def test_leaving_keeps_the_instances_and_a_new_listener_adopts_them(aws: Aws) -> None:
    async with provisioner(aws, jit_via_ssm=True) as ec2:
        kept = await ec2.start(new_runner("linux-x64-a", 1))
        stopped = await ec2.start(new_runner("linux-x64-b", 2))
    async with provisioner(aws, scale_set="other") as other:
        theirs = await other.start(NewRunner("other-c", 3, "other", asc.Secret(JIT)))
    aws.ec2.stop_instances(InstanceIds=[stopped.ref])
    assert aws.state(kept.ref) == "running"

    async with provisioner(aws, jit_via_ssm=True) as ec2:
        assert await ec2.adopt() == [kept]
        assert await ec2.running() == [kept]
        await ec2.stop(kept)
    assert aws.state(stopped.ref) in ("shutting-down", "terminated")  # a leftover: terminated
    assert aws.state(theirs.ref) == "running"  # another scale set's: untouched
    assert aws.parameters() == []


async def test_adopt_leaves_an_instance_without_runner_tags_alone(aws: Aws) -> None:
    (stranger,) = aws.ec2.run_instances(
        ImageId=AMI,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "actions-scaleset:scale-set", "Value": SCALE_SET}]}
        ],
    )["Instances"]
    async with provisioner(aws) as ec2:
        assert await ec2.adopt() == []
        assert await ec2.running() == []
    assert aws.state(stranger["InstanceId"]) == "running"


# --------------------------------------------------------------------------- capacity


async def test_no_capacity_in_a_subnet_launches_in_the_next_one(
    aws: Aws, caplog: pytest.LogCaptureFixture
) -> None:
    session = new_session()
    tried = refuse_launches(session, lambda subnet: subnet == aws.subnets[0])
    caplog.set_level(logging.INFO, logger="listener.ec2")
    async with provisioner(aws, session) as ec2:
        handle = await ec2.start(new_runner())
    assert tried == list(aws.subnets)
    (instance,) = aws.instances().values()  # one machine for one need
    assert (instance["InstanceId"], instance["SubnetId"]) == (handle.ref, aws.subnets[1])
    assert f"no capacity in subnet {aws.subnets[0]}" in caplog.text


@pytest.mark.parametrize("via_ssm", [False, True])
async def test_no_capacity_anywhere_is_a_one_line_error_and_leaves_nothing_behind(
    aws: Aws, via_ssm: bool
) -> None:
    session = new_session()
    tried = refuse_launches(session, lambda subnet: True)
    async with provisioner(aws, session, jit_via_ssm=via_ssm) as ec2:
        with pytest.raises(ProvisionerError) as raised:
            await ec2.start(new_runner())
        assert await ec2.running() == []
    a, b = aws.subnets
    assert str(raised.value) == (
        f"no capacity for runner linux-x64-k3x9q in any subnet ({a}: InsufficientInstanceCapacity; "
        f"{b}: InsufficientInstanceCapacity); add subnets in other availability zones, "
        "or instance types to the launch template"
    )
    assert tried == [a, b]
    assert aws.instances() == {}
    assert aws.parameters() == []


async def test_other_launch_errors_are_not_retried_in_another_subnet(aws: Aws) -> None:
    session = new_session()
    tried = refuse_launches(session, lambda subnet: True, code="UnauthorizedOperation")
    async with provisioner(aws, session) as ec2:
        with pytest.raises(
            ProvisionerError, match=r"^launch an instance for runner linux-x64-k3x9q in subnet"
        ):
            await ec2.start(new_runner())
    assert tried == [aws.subnets[0]]


async def test_an_error_that_echoes_the_jit_config_is_scrubbed(aws: Aws) -> None:
    session = new_session()

    def handler(**_: Any) -> Any:
        error = {"Error": {"Code": "InvalidParameterValue", "Message": f"bad user data: {JIT}"}}
        return FakeHttp(400), error

    session.events.register("before-call.ec2.RunInstances", handler)
    async with provisioner(aws, session) as ec2:
        with pytest.raises(ProvisionerError) as raised:
            await ec2.start(new_runner())
    assert JIT not in str(raised.value)
    assert "bad user data: <jit config>" in str(raised.value)


async def test_a_start_cancelled_after_its_launch_terminates_the_instance(aws: Aws) -> None:
    session = new_session()
    launched = anyio.Event()

    async def hang(**_: Any) -> None:
        launched.set()  # the instance is launched; its answer never arrives
        await anyio.sleep_forever()

    session.events.register("after-call.ec2.RunInstances", hang)
    async with provisioner(aws, session, jit_via_ssm=True) as ec2:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ec2.start, new_runner())
                await launched.wait()
                tg.cancel_scope.cancel()
        assert await ec2.running() == []
    (instance,) = aws.instances().values()
    assert instance["State"]["Name"] in ("shutting-down", "terminated")
    assert aws.parameters() == []


# --------------------------------------------------------------------------- watching


async def test_an_instance_not_running_within_the_boot_timeout_is_terminated_and_dropped(aws: Aws) -> None:
    session = new_session()
    show_as(session, "pending")
    later = [0.0]
    async with provisioner(aws, session, jit_via_ssm=True, clock=lambda: time.time() + later[0]) as ec2:
        handle = await ec2.start(new_runner())
        assert await ec2.running() == [handle]  # pending, within the timeout
        later[0] = 301.0
        assert await ec2.running() == []
    assert aws.state(handle.ref) in ("shutting-down", "terminated")
    assert aws.parameters() == []


@pytest.mark.parametrize("how", ["stop", "terminate"])
async def test_an_instance_whose_runner_exited_is_dropped_and_terminated(aws: Aws, how: str) -> None:
    async with provisioner(aws, jit_via_ssm=True) as ec2:
        handle = await ec2.start(new_runner())
        other = await ec2.start(new_runner("linux-x64-other", 8))
        # the runner powered its instance off: stopped, or terminated by its shutdown behaviour
        getattr(aws.ec2, f"{how}_instances")(InstanceIds=[handle.ref])
        assert await ec2.running() == [other]
    assert aws.state(handle.ref) in ("shutting-down", "terminated")
    assert aws.parameters() == ["/gha-runners/linux-x64/linux-x64-other"]


async def test_a_new_instance_ec2_does_not_list_yet_is_still_running(aws: Aws) -> None:
    session = new_session()

    def hide(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Reservations"] = []  # DescribeInstances is eventually consistent

    session.events.register("after-call.ec2.DescribeInstances", hide)
    async with provisioner(aws, session) as ec2:
        handle = await ec2.start(new_runner())
        assert await ec2.running() == [handle]


async def test_an_instance_left_by_a_start_taken_back_is_terminated(aws: Aws) -> None:
    async with provisioner(aws) as ec2:
        await ec2.adopt()
        (orphan,) = aws.ec2.run_instances(
            ImageId=AMI,
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [
                        {"Key": "actions-scaleset:scale-set", "Value": SCALE_SET},
                        {"Key": "actions-scaleset:runner-name", "Value": "linux-x64-lost"},
                        {"Key": "actions-scaleset:runner-id", "Value": "11"},
                    ],
                }
            ],
        )["Instances"]
        assert await ec2.running() == []
    assert aws.state(orphan["InstanceId"]) in ("shutting-down", "terminated")


async def test_running_answers_from_what_it_saw_between_refreshes(aws: Aws) -> None:
    session = new_session()
    described = count_calls(session, "DescribeInstances")
    options = aws.options()
    async with Ec2Provisioner(options, SCALE_SET, session=session, refresh_interval=3600) as ec2:
        await ec2.adopt()
        handle = await ec2.start(new_runner())
        for _ in range(5):
            assert await ec2.running() == [handle]
        await ec2.stop(handle)
        assert await ec2.running() == []
    assert len(described) == 1  # adopt's


async def test_a_failed_check_is_one_line_and_waits_for_the_next_refresh(aws: Aws) -> None:
    session = new_session()
    throttled = [False]

    def throttle(**_: Any) -> Any:
        if not throttled[0]:
            return None
        error = {"Error": {"Code": "RequestLimitExceeded", "Message": "Request limit\nexceeded."}}
        return FakeHttp(503), error

    session.events.register("before-call.ec2.DescribeInstances", throttle)
    async with Ec2Provisioner(aws.options(), SCALE_SET, session=session, refresh_interval=3600) as ec2:
        handle = await ec2.start(new_runner())
        throttled[0] = True
        with pytest.raises(ProvisionerError) as raised:
            await ec2.running()
        assert await ec2.running() == [handle]  # what it saw last, until the next refresh
    assert str(raised.value) == (
        f"list the instances of scale set {SCALE_SET}: RequestLimitExceeded: Request limit exceeded."
    )


async def test_without_credentials_a_start_fails_with_one_line(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    async with provisioner(aws) as ec2:
        with pytest.raises(
            ProvisionerError, match=r"^launch an instance for runner .*: Unable to locate credentials$"
        ):
            await ec2.start(new_runner())


def test_without_a_region_anywhere_it_says_how_to_set_one(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ProvisionerError) as raised:
        provisioner(aws)
    assert str(raised.value) == (
        "no AWS region: set --aws-region (AWS_REGION), AWS_DEFAULT_REGION, or a profile's region"
    )
    monkeypatch.setenv("AWS_REGION", "us-east-2")
    assert provisioner(aws).region == "us-east-2"
    assert provisioner(aws, region=REGION).region == REGION


async def test_the_region_is_where_instances_start_and_where_the_script_reads_its_parameter(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    east = boto3.client("ec2", endpoint_url=aws.url, region_name="us-east-2")
    east.create_launch_template(LaunchTemplateName="runners", LaunchTemplateData={"ImageId": AMI})
    options: dict[str, Any] = {
        "region": "us-east-2",
        "launch_template": "runners",
        "subnets": (),
        "jit_via_ssm": True,
    }
    async with provisioner(aws, **options) as ec2:
        handle = await ec2.start(new_runner())
    (reservation,) = east.describe_instances(InstanceIds=[handle.ref])["Reservations"]
    assert reservation["Instances"][0]["Placement"]["AvailabilityZone"].startswith("us-east-2")
    assert (
        "--region us-east-2 "
        in base64.b64decode(
            east.describe_instance_attribute(InstanceId=handle.ref, Attribute="userData")["UserData"]["Value"]
        ).decode()
    )


# --------------------------------------------------------------------------- secrets, trio


async def test_no_log_line_holds_the_jit_config(aws: Aws, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    session = new_session()
    refuse_launches(session, lambda subnet: subnet == aws.subnets[0])
    for via_ssm in (False, True):
        async with provisioner(aws, session, jit_via_ssm=via_ssm) as ec2:
            await ec2.adopt()
            handle = await ec2.start(new_runner(f"linux-x64-{via_ssm}"))
            await ec2.running()
            await ec2.stop(handle)
    assert caplog.records
    assert all(JIT not in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_under_trio_it_says_it_needs_asyncio(aws: Aws) -> None:
    with pytest.raises(ProvisionerError, match=r"^the ec2 provisioner runs on asyncio only"):
        async with provisioner(aws):
            pass


# --------------------------------------------------------------------------- docs/ec2.md

PAGE = Path(__file__).resolve().parents[2] / "docs" / "ec2.md"


def test_the_pages_user_data_is_what_the_provisioner_sends() -> None:
    plain, via_ssm = re.findall(r"```text\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    runner = NewRunner("linux-1a2b3c4d", 1, "linux", asc.Secret("eyJqaXQiOiAiLi4uIn0="))
    assert plain == user_data(runner)
    assert via_ssm == user_data(runner, parameter=parameter_name("linux", runner.name), region=REGION)


def test_the_pages_iam_policy_allows_every_call_the_provisioner_makes() -> None:
    (block,) = re.findall(r"```json\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    allowed = set()
    for statement in json.loads(block)["Statement"]:
        actions = statement["Action"]
        allowed |= {actions} if isinstance(actions, str) else set(actions)
    source = Path(ec2_module.__file__).read_text(encoding="utf-8")
    called = {
        f"{service}:{''.join(word.title() for word in method.split('_'))}"
        for service, method in re.findall(r'self\._client\("(ec2|ssm)"\)\.([a-z]+_[a-z_]+)', source)
    }
    assert called == {
        "ec2:RunInstances",
        "ec2:DescribeInstances",
        "ec2:TerminateInstances",
        "ssm:PutParameter",
        "ssm:DeleteParameter",
    }
    assert allowed == called | {"ec2:CreateTags", "iam:PassRole"}


# --------------------------------------------------------------------------- with the scaler


class Starts:
    def __init__(self) -> None:
        self.outcomes: list[bool] = []
        self.stops: list[str] = []

    def record_start(self, ok: bool, seconds: float) -> None:
        self.outcomes.append(ok)

    def record_stop(self, reason: str) -> None:
        self.stops.append(reason)


@pytest.fixture
async def github() -> AsyncIterator[tuple[FakeGitHub, asc.ScaleSetClient]]:
    fake = FakeGitHub()
    async with (
        fake.http_client() as http,
        asc.ScaleSetClient(fake.config_url("acme"), fake.pat(), http_client=http) as client,
    ):
        yield fake, client


async def scaler_for(
    client: asc.ScaleSetClient, ec2: Ec2Provisioner, state: Path, starts: Starts
) -> ProvisioningScaler:
    scale_set = await client.ensure_scale_set(SCALE_SET)
    return ProvisioningScaler(
        client,
        ScaleSetSettings(SCALE_SET, max_runners=10),
        ec2,
        lambda: scale_set.id,
        Ledger(state / "ledger.json"),
        recorder=starts,
        start_backoff=asc.RetryPolicy(max_attempts=1_000_000, initial_delay=0.0, max_delay=0.0, jitter=0.0),
    )


def registered(fake: FakeGitHub) -> set[str]:
    return {runner.name for runner in fake.snapshot().runners}


def live_runners(aws: Aws) -> set[str]:
    return {
        instance["Tags"]["actions-scaleset:runner-name"]
        for instance in aws.instances().values()
        if instance["State"]["Name"] in ("pending", "running")
    }


async def test_with_the_scaler_a_need_gets_one_instance_and_idle_ones_are_terminated(
    aws: Aws, github: tuple[FakeGitHub, asc.ScaleSetClient], tmp_path: Path
) -> None:
    fake, client = github
    starts = Starts()
    async with provisioner(aws, jit_via_ssm=True) as ec2:
        scaler = await scaler_for(client, ec2, tmp_path, starts)
        await scaler.prepare()
        await scaler.handle_desired_runner_count(3)
        await scaler.reconcile()
        await scaler.reconcile()  # the same need again: nothing more
        assert len(aws.instances()) == 3
        assert live_runners(aws) == registered(fake) == set(scaler.runners)
        assert starts.outcomes == [True, True, True]
        await scaler.handle_desired_runner_count(0)
        await scaler.reconcile()
        assert starts.stops == ["scaled_down"] * 3
    assert live_runners(aws) == registered(fake) == set()
    assert aws.parameters() == []


async def test_with_the_scaler_an_instance_that_never_boots_is_replaced_and_unregistered(
    aws: Aws, github: tuple[FakeGitHub, asc.ScaleSetClient], tmp_path: Path
) -> None:
    fake, client = github
    session = new_session()
    show_as(session, "pending")
    later = [0.0]
    starts = Starts()
    async with provisioner(aws, session, clock=lambda: time.time() + later[0]) as ec2:
        scaler = await scaler_for(client, ec2, tmp_path, starts)
        await scaler.handle_desired_runner_count(1)
        await scaler.reconcile()
        (stuck,) = live_runners(aws)
        later[0] = 301.0
        await scaler.reconcile()  # its compute is gone: registration removed, another started
        (replacement,) = live_runners(aws)
        assert replacement != stuck
        assert registered(fake) == {replacement}
        assert starts.stops == ["exited"]


async def test_with_the_scaler_no_capacity_anywhere_is_a_failed_start_taken_back(
    aws: Aws, github: tuple[FakeGitHub, asc.ScaleSetClient], tmp_path: Path
) -> None:
    fake, client = github
    session = new_session()
    refuse_launches(session, lambda subnet: True)
    starts = Starts()
    async with provisioner(aws, session) as ec2:
        scaler = await scaler_for(client, ec2, tmp_path, starts)
        await scaler.handle_desired_runner_count(1)
        await scaler.reconcile()
    assert starts.outcomes == [False]
    assert aws.instances() == {}
    assert registered(fake) == set()


def test_the_listener_says_in_one_usage_error_that_no_aws_region_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from examples.listener.app import _provisioner
    from examples.listener.settings import ProvisionerSettings, ScaleSetSettings, Settings, UsageError

    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    wanted = ScaleSetSettings("linux", provisioner=ProvisionerSettings(kind="ec2", launch_template="lt-1"))
    settings = Settings(url=None, credentials=None, scale_sets=(wanted,))
    with pytest.raises(UsageError, match="no AWS region"):
        _provisioner(wanted, settings)
