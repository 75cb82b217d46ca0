"""Run each runner on its own EC2 instance, launched from a launch template through aioboto3.

One instance per runner, tagged with the scale set, the runner's name and its id, so a
restarted listener adopts its instances again. The launch template holds everything about
the machine (AMI, type, security groups, instance profile); this module adds the subnet,
the spot request, the tags and the user-data. See docs/ec2.md for the setup.

The user-data contract. Each instance gets a shell script as its user-data, which
cloud-init runs as root at first boot. It exports `RUNNER_NAME` and
`ACTIONS_RUNNER_INPUT_JITCONFIG`, runs `/opt/actions-runner/run.sh` as the user who owns
that folder (GitHub's runner refuses to run as root), and powers the instance off when the
runner exits: with the launch template's shutdown behaviour `terminate`, the instance is
gone when its job is done. The JIT config is in the script itself, unless `jit_via_ssm` is
set: user-data is readable by any process on the instance (and by anyone allowed
`ec2:DescribeInstanceAttribute`), so then the JIT config is a SecureString SSM parameter,
`/gha-runners/<scale-set>/<runner>`, whose name is in the script and in the instance's
`actions-scaleset:jit-parameter` tag; the script reads it with the AWS CLI, and the
listener deletes it when the instance stops. Another AMI layout: override
`Ec2Provisioner.user_data`.

The IAM actions the listener needs (docs/ec2.md has the policy):

- `ec2:RunInstances`, and `ec2:CreateTags` for the tags given at launch;
- `ec2:DescribeInstances`, to adopt and to watch the instances;
- `ec2:TerminateInstances`;
- `iam:PassRole` for the launch template's instance profile, if it has one;
- with `jit_via_ssm`: `ssm:PutParameter` and `ssm:DeleteParameter` on
  `parameter/gha-runners/*`. The instance's own role then needs `ssm:GetParameter` on it.

An instance is dropped from `running()`, and terminated, when it stopped (its runner
exited), when it is shutting down or terminated, and when it is not `running` within
`boot_timeout` of its launch. The scaler then removes the runner's registration if it
never took a job. aioboto3 runs on asyncio only: under trio, entering the provisioner
raises `ProvisionerError`. Without aioboto3 (the `ec2` extra), importing this module
raises ImportError.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Self

import aioboto3
import anyio
import attrs
import sniffio
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .provisioner import JITCONFIG_ENV, RUNNER_NAME_ENV, NewRunner, ProvisionerError, RunnerHandle

__all__ = ["Ec2Options", "Ec2Provisioner", "parameter_name", "user_data"]

logger = logging.getLogger("listener.ec2")

SCALE_SET_TAG: Final = "actions-scaleset:scale-set"
RUNNER_NAME_TAG: Final = "actions-scaleset:runner-name"
RUNNER_ID_TAG: Final = "actions-scaleset:runner-id"
JIT_PARAMETER_TAG: Final = "actions-scaleset:jit-parameter"
PARAMETER_PREFIX: Final = "/gha-runners"
RUNNER_DIR: Final = "/opt/actions-runner"
CAPACITY_ERRORS: Final = frozenset({"InsufficientInstanceCapacity", "InsufficientFreeAddressesInSubnet"})
"""RunInstances errors that another subnet (another availability zone) may not have."""
TIMEOUT: Final = 60.0
"""The bound on one AWS call, botocore's own retries included."""
CLEANUP_TIMEOUT: Final = 15.0
REFRESH_INTERVAL: Final = 5.0
"""How long `running()` answers from what it last saw: the scaler asks about once a second."""
LIVE: Final = frozenset({"pending", "running"})
STOPPED: Final = frozenset({"stopping", "stopped"})
GONE: Final = frozenset({"shutting-down", "terminated"})
QUIET_LOGGERS: Final = ("botocore", "aiobotocore", "boto3", "aioboto3")
"""Their debug lines print request bodies: the user-data and the SSM parameter's value."""


@attrs.frozen
class Ec2Options:
    """Where and how the runners' instances are launched."""

    launch_template: str
    """The launch template: its id (`lt-...`) or its name. Its default version is used."""
    subnets: tuple[str, ...] = ()
    """Tried in order; the next one when a subnet has no capacity. None: the template's own."""
    spot: bool = False
    jit_via_ssm: bool = False
    """Pass the JIT config as a SecureString SSM parameter rather than in the user-data."""
    boot_timeout: float = 300.0
    """An instance not `running` this many seconds after its launch is terminated."""
    region: str | None = None
    """None: `AWS_REGION`, else botocore's chain (`AWS_DEFAULT_REGION`, the profile's region)."""
    endpoint_url: str | None = None
    """None: AWS's endpoints, or `AWS_ENDPOINT_URL` as boto reads it."""


@attrs.define
class _Instance:
    handle: RunnerHandle
    launched: float
    """Its LaunchTime, in seconds since the epoch."""
    parameter: str | None
    state: str = "pending"


@attrs.frozen
class _Seen:
    """One instance in DescribeInstances' answer."""

    id: str
    state: str
    launched: float
    tags: dict[str, str]

    def handle(self) -> RunnerHandle | None:
        name, runner_id = self.tags.get(RUNNER_NAME_TAG), self.tags.get(RUNNER_ID_TAG)
        if name and runner_id and re.fullmatch(r"[0-9]+", runner_id):
            return RunnerHandle(name, int(runner_id), ref=self.id)
        return None


class _AwsError(ProvisionerError):
    """An AWS call failed; `code` is AWS's error code (`InsufficientInstanceCapacity`), or ''."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


def parameter_name(scale_set: str, runner_name: str) -> str:
    """The SSM parameter holding a runner's JIT config: `/gha-runners/<scale-set>/<runner>`.

    Characters SSM does not allow in a name become `-`.
    """
    safe = [re.sub(r"[^a-zA-Z0-9_.-]", "-", part) for part in (scale_set, runner_name)]
    return "/".join((PARAMETER_PREFIX, *safe))


def user_data(runner: NewRunner, *, parameter: str | None = None, region: str | None = None) -> str:
    """The script an instance runs at first boot (the contract is in this module's docstring).

    With `parameter`, the JIT config is read from that SSM parameter and is not in the script.
    """
    lines = ["#!/bin/bash", "# actions_scaleset listener, ec2 provisioner: the contract is in docs/ec2.md"]
    lines.append(f"export {RUNNER_NAME_ENV}={shlex.quote(runner.name)}")
    if parameter is None:
        lines.append(f"export {JITCONFIG_ENV}={shlex.quote(runner.jit_config.get_secret_value())}")
        fetch = ""
    else:
        where = f" --region {shlex.quote(region)}" if region else ""
        lines.append(f"export JIT_PARAMETER={shlex.quote(parameter)}")
        fetch = (
            f'{JITCONFIG_ENV}="$(aws ssm get-parameter{where} --name "$JIT_PARAMETER" --with-decryption'
            f' --query Parameter.Value --output text)" && export {JITCONFIG_ENV} && '
        )
    lines.append(f'{fetch}cd {RUNNER_DIR} && runuser -u "$(stat -c %U .)" -- ./run.sh')
    lines.append("shutdown -h now")
    return "\n".join(lines) + "\n"


def _launch_template(template: str) -> dict[str, str]:
    key = "LaunchTemplateId" if re.fullmatch(r"lt-[0-9a-f]+", template) else "LaunchTemplateName"
    return {key: template}


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def _seconds(when: object, default: float) -> float:
    return when.timestamp() if isinstance(when, datetime) else default


class Ec2Provisioner:
    """A `Provisioner` that runs each runner on its own EC2 instance. Used as `async with`.

    `session` (an `aioboto3.Session`), `clock` (seconds since the epoch) and
    `refresh_interval` are for tests. Without a region anywhere, it raises `ProvisionerError`.
    """

    def __init__(
        self,
        options: Ec2Options,
        scale_set: str,
        *,
        session: Any = None,
        clock: Callable[[], float] = time.time,
        refresh_interval: float = REFRESH_INTERVAL,
    ) -> None:
        self.options, self.scale_set = options, scale_set
        self._session = session if session is not None else aioboto3.Session()
        self._clock, self._refresh_interval = clock, refresh_interval
        region = options.region or os.environ.get("AWS_REGION") or self._session.region_name
        if not region:
            raise ProvisionerError(
                "no AWS region: set --aws-region (AWS_REGION), AWS_DEFAULT_REGION, or a profile's region"
            )
        self.region: str = region
        self._stack: contextlib.AsyncExitStack | None = None
        self._ec2: Any = None
        self._ssm: Any = None
        self._instances: dict[str, _Instance] = {}
        """Instance id → what this listener launched or adopted, and has not seen go."""
        self._launching: set[str] = set()
        """Runner names whose RunInstances is under way: their instances are not orphans."""
        self._stopping: set[str] = set()
        """Instance ids `stop()` is terminating: not orphans either."""
        self._adopted = False
        self._refreshed_at = float("-inf")

    async def __aenter__(self) -> Self:
        if sniffio.current_async_library() != "asyncio":
            raise ProvisionerError("the ec2 provisioner runs on asyncio only (aioboto3 does); not on trio")
        for name in QUIET_LOGGERS:  # never a request body in the log, whatever the level
            quiet = logging.getLogger(name)
            if quiet.getEffectiveLevel() < logging.INFO:
                quiet.setLevel(logging.INFO)
        session = self._session
        config = Config(
            connect_timeout=10, read_timeout=30, retries={"mode": "standard", "total_max_attempts": 3}
        )
        kwargs: dict[str, Any] = {"config": config, "region_name": self.region}
        if self.options.endpoint_url is not None:
            kwargs["endpoint_url"] = self.options.endpoint_url
        stack = contextlib.AsyncExitStack()
        try:
            self._ec2 = await stack.enter_async_context(session.client("ec2", **kwargs))
            self._ssm = await stack.enter_async_context(session.client("ssm", **kwargs))
        except BotoCoreError as exc:  # an invalid region or endpoint
            await stack.aclose()
            raise ProvisionerError(f"cannot open the AWS clients: {_one_line(str(exc))}") from None
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # The instances keep running: a listener started again adopts them.
        stack, self._stack, self._ec2, self._ssm = self._stack, None, None, None
        if stack is not None:
            await stack.aclose()

    # ------------------------------------------------------------------ the protocol

    async def adopt(self) -> Sequence[RunnerHandle]:
        """This scale set's pending and running instances; stopped ones are terminated."""
        adopted = []
        for seen in await self._describe():
            handle = seen.handle()
            if seen.state in LIVE and handle is not None:
                self._instances[seen.id] = _Instance(
                    handle, seen.launched, seen.tags.get(JIT_PARAMETER_TAG), seen.state
                )
                adopted.append(handle)
            elif seen.state in STOPPED:
                logger.info("terminating leftover instance %s (%s)", seen.id, seen.state)
                await self._dispose(seen.id, seen.tags.get(JIT_PARAMETER_TAG), terminate=True)
            elif seen.state in LIVE:
                logger.warning(
                    "instance %s of scale set %s has no runner tags; left alone", seen.id, self.scale_set
                )
        self._adopted = True
        self._refreshed_at = time.monotonic()
        return adopted

    async def start(self, runner: NewRunner) -> RunnerHandle:
        try:
            return await self._start(runner)
        except ProvisionerError as exc:  # AWS may echo what it was sent: never the JIT config
            raise exc.without(runner.jit_config) from None

    async def stop(self, handle: RunnerHandle) -> None:
        known = self._instances.pop(handle.ref, None)
        parameter = known.parameter if known is not None else None
        if known is None and self.options.jit_via_ssm:
            parameter = parameter_name(self.scale_set, handle.runner_name)
        self._stopping.add(handle.ref)
        try:
            await self._dispose(handle.ref, parameter, terminate=True, quiet=False)
        finally:
            self._stopping.discard(handle.ref)

    async def running(self) -> Sequence[RunnerHandle]:
        if time.monotonic() - self._refreshed_at >= self._refresh_interval:
            await self._refresh()
        return [instance.handle for instance in self._instances.values()]

    def user_data(self, runner: NewRunner, parameter: str | None) -> str:
        """The instance's user-data; override it for another AMI layout (the JIT config: `parameter`)."""
        return user_data(runner, parameter=parameter, region=self.region)

    # ------------------------------------------------------------------ the work

    async def _start(self, runner: NewRunner) -> RunnerHandle:
        parameter = parameter_name(self.scale_set, runner.name) if self.options.jit_via_ssm else None
        tags = {
            "Name": runner.name,
            SCALE_SET_TAG: self.scale_set,
            RUNNER_NAME_TAG: runner.name,
            RUNNER_ID_TAG: str(runner.id),
        }
        if parameter is not None:
            tags[JIT_PARAMETER_TAG] = parameter
        script = self.user_data(runner, parameter)
        self._launching.add(runner.name)
        try:
            if parameter is not None:
                await self._call(
                    f"store the JIT config of runner {runner.name} in SSM parameter {parameter}",
                    self._client("ssm").put_parameter,
                    Name=parameter,
                    Value=runner.jit_config.get_secret_value(),
                    Type="SecureString",
                    Overwrite=True,
                    Description=f"JIT config of GitHub Actions runner {runner.name}",
                )
            instance = await self._launch(runner, script, tags)
        except BaseException:
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
                await self._take_back(runner.name, parameter)
            raise
        finally:
            self._launching.discard(runner.name)
        self._instances[instance.handle.ref] = instance
        logger.info("launched instance %s for runner %s", instance.handle.ref, runner.name)
        return instance.handle

    async def _launch(self, runner: NewRunner, script: str, tags: dict[str, str]) -> _Instance:
        """One RunInstances per subnet, in order, until one has capacity."""
        request: dict[str, Any] = {
            "MinCount": 1,
            "MaxCount": 1,
            "LaunchTemplate": _launch_template(self.options.launch_template),
            "UserData": script,  # botocore base64-encodes it
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
            ],
        }
        if self.options.spot:
            request["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
            }
        refused: list[str] = []
        subnets: Iterable[str | None] = self.options.subnets or (None,)
        for subnet in subnets:
            where = f" in subnet {subnet}" if subnet else ""
            # Idempotent under botocore's retries; a new token for each subnet.
            token = hashlib.sha256(
                f"{self.scale_set}/{runner.name}/{runner.id}/{subnet}".encode()
            ).hexdigest()
            attempt = {**request, "ClientToken": token[:64]}
            if subnet is not None:
                attempt["SubnetId"] = subnet
            try:
                answer = await self._call(
                    f"launch an instance for runner {runner.name}{where}",
                    self._client("ec2").run_instances,
                    **attempt,
                )
            except _AwsError as exc:
                if exc.code not in CAPACITY_ERRORS:
                    raise
                refused.append(f"{subnet or 'the template'}: {exc.code}")
                logger.info("no capacity%s for runner %s (%s)", where, runner.name, exc.code)
                continue
            launched = answer.get("Instances") if isinstance(answer, dict) else None
            first = launched[0] if isinstance(launched, list) and launched else None
            if not isinstance(first, dict) or not isinstance(first.get("InstanceId"), str):
                raise ProvisionerError(f"launch an instance for runner {runner.name}: AWS's answer has none")
            state = first.get("State")
            return _Instance(
                RunnerHandle(runner.name, runner.id, ref=first["InstanceId"]),
                _seconds(first.get("LaunchTime"), self._clock()),
                tags.get(JIT_PARAMETER_TAG),
                state.get("Name", "pending") if isinstance(state, dict) else "pending",
            )
        raise ProvisionerError(
            f"no capacity for runner {runner.name} in any subnet ({'; '.join(refused)}); "
            "add subnets in other availability zones, or instance types to the launch template"
        )

    async def _take_back(self, runner_name: str, parameter: str | None) -> None:
        """A start failed, maybe after its instance was launched: terminate it, delete its parameter."""
        try:
            found = await self._describe({RUNNER_NAME_TAG: runner_name})
        except ProvisionerError as exc:
            logger.warning("could not look for the instance of runner %s: %s", runner_name, exc)
            found = []
        for seen in found:
            if seen.state not in GONE:
                await self._dispose(seen.id, None, terminate=True)
        if parameter is not None:
            await self._dispose(None, parameter, terminate=False)

    async def _refresh(self) -> None:
        """Learn the instances' states; drop and terminate those that stopped, went, or never booted."""
        self._refreshed_at = time.monotonic()  # failed or not: the next try waits as long
        seen = {instance.id: instance for instance in await self._describe()}
        now = self._clock()
        for instance_id, known in list(self._instances.items()):
            if instance_id in seen:
                known.state = seen[instance_id].state
            elif now - known.launched < self.options.boot_timeout:
                continue  # DescribeInstances is eventually consistent: a new instance may not show yet
            else:
                known.state = "missing"
            dropped = self._why_dropped(known, now)
            if dropped is not None and self._instances.pop(instance_id, None) is not None:
                level, why = dropped
                logger.log(level, "instance %s of runner %s %s", instance_id, known.handle.runner_name, why)
                await self._dispose(instance_id, known.parameter, terminate=known.state not in GONE)
        if not self._adopted:
            return
        for orphan in seen.values():  # a start taken back half way, or a terminate that failed
            name = orphan.tags.get(RUNNER_NAME_TAG)
            if (
                name
                and name not in self._launching
                and orphan.id not in self._instances
                and orphan.id not in self._stopping
                and orphan.state not in GONE
            ):
                logger.warning("terminating instance %s: no runner of this listener runs on it", orphan.id)
                await self._dispose(orphan.id, orphan.tags.get(JIT_PARAMETER_TAG), terminate=True)

    def _why_dropped(self, instance: _Instance, now: float) -> tuple[int, str] | None:
        """Whether an instance is done with, and why: (a log level, the reason); None while it runs."""
        timeout = self.options.boot_timeout
        if instance.state in STOPPED:
            return logging.INFO, f"is {instance.state}: its runner exited; terminating it"
        if instance.state in GONE:
            return logging.INFO, f"is {instance.state}"
        if instance.state == "missing":
            return logging.WARNING, f"is not listed by EC2 {timeout:.0f} s after its launch"
        if instance.state != "running" and now - instance.launched >= timeout:
            return logging.WARNING, f"is not running {timeout:.0f} s after its launch; terminating it"
        return None

    async def _dispose(
        self, instance_id: str | None, parameter: str | None, *, terminate: bool, quiet: bool = True
    ) -> None:
        """Terminate an instance and delete its SSM parameter; gone already is fine."""
        calls: list[tuple[str, Callable[..., Any], dict[str, Any], str]] = []
        if terminate and instance_id is not None:
            what = f"terminate instance {instance_id}"
            calls.append(
                (what, self._client("ec2").terminate_instances, {"InstanceIds": [instance_id]}, "NotFound")
            )
        if parameter is not None:
            what = f"delete SSM parameter {parameter}"
            calls.append(
                (what, self._client("ssm").delete_parameter, {"Name": parameter}, "ParameterNotFound")
            )
        failed: _AwsError | None = None
        for what, method, kwargs, gone in calls:
            try:
                await self._call(what, method, **kwargs)
            except _AwsError as exc:
                if exc.code.endswith(gone):  # InvalidInstanceID.NotFound, ParameterNotFound
                    continue
                if quiet:
                    logger.warning("%s", exc)
                failed = failed or exc
        if failed is not None and not quiet:
            raise failed

    async def _describe(self, tags: dict[str, str] | None = None) -> list[_Seen]:
        """This scale set's instances (with `tags` too), in every state."""
        wanted = {SCALE_SET_TAG: self.scale_set, **(tags or {})}
        filters = [{"Name": f"tag:{key}", "Values": [value]} for key, value in wanted.items()]
        what = f"list the instances of scale set {self.scale_set}"
        found: list[_Seen] = []
        token: str | None = None
        while True:
            page = await self._call(
                what,
                self._client("ec2").describe_instances,
                Filters=filters,
                **({"NextToken": token} if token else {}),
            )
            for reservation in page.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    state = instance.get("State", {}).get("Name")
                    if not isinstance(instance.get("InstanceId"), str) or not isinstance(state, str):
                        raise ProvisionerError(f"{what}: AWS's answer is not a list of instances")
                    tags_ = {
                        t["Key"]: t["Value"] for t in instance.get("Tags", []) if "Key" in t and "Value" in t
                    }
                    launched = _seconds(instance.get("LaunchTime"), self._clock())
                    found.append(_Seen(instance["InstanceId"], state, launched, tags_))
            token = page.get("NextToken")
            if not token:
                return found

    async def _call(self, what: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        """One AWS call, bounded in time; any failure is a one-line ProvisionerError."""
        try:
            with anyio.fail_after(TIMEOUT):
                return await method(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = str(error.get("Code", "")), _one_line(str(error.get("Message", "")))
            request_id = exc.response.get("ResponseMetadata", {}).get("RequestId")
            suffix = f" (request {request_id})" if request_id else ""
            raise _AwsError(f"{what}: {code}: {message}{suffix}", code) from None
        except BotoCoreError as exc:  # no credentials, no network
            raise _AwsError(f"{what}: {_one_line(str(exc))}") from None
        except TimeoutError:
            raise _AwsError(f"{what}: AWS did not answer within {TIMEOUT:.0f} s") from None

    def _client(self, service: str) -> Any:
        client = self._ec2 if service == "ec2" else self._ssm
        if client is None:
            raise RuntimeError("use Ec2Provisioner as `async with Ec2Provisioner(...) as provisioner:`")
        return client
