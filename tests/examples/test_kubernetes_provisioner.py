"""The reference listener's Kubernetes provisioner, against the API server's request and response shapes.

lightkube 1.x speaks through `httpx2`, which respx does not patch; `RespxTransport` below hands
each of its requests to a respx router, so the routes read as they would for httpx. Every test
runs on asyncio and trio (lightkube's own asyncio use is in exec credential plugins only).
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
import respx
from examples.listener import app, config, kubernetes
from examples.listener.kubernetes import KubernetesProvisioner, label_value, resource_name
from examples.listener.provisioner import NewRunner, Provisioner, ProvisionerError, RunnerHandle
from examples.listener.scaler import Ledger, ProvisioningScaler
from examples.listener.settings import (
    DEFAULT_DOCKER_IMAGE,
    ProvisionerSettings,
    ScaleSetSettings,
    Settings,
    UsageError,
)
from lightkube import AsyncClient, KubeConfig
from lightkube.config.models import Cluster, User

import actions_scaleset as asc
from actions_scaleset.testing import FakeGitHub

pytestmark = pytest.mark.anyio

yaml: Any = importlib.import_module("yaml")  # lightkube's dependency; no type stubs here

SERVER = "https://k8s.test"
NS = "runners"
SCALE_SET = "linux-x64"
JIT = "eyJqaXQiOiAic2VjcmV0LWppdC1jb25maWcifQ=="
RUNNER = "linux-x64-0a1b2c3d"
PODS = f"/api/v1/namespaces/{NS}/pods"
SECRETS = f"/api/v1/namespaces/{NS}/secrets"
SELECTOR = "actions-scaleset/scale-set=linux-x64"


class _Stream(httpx2.AsyncByteStream):
    """A respx response's body for httpx2; a transport error mid-stream becomes httpx2's own."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.stream:  # type: ignore[union-attr]
                yield chunk
        except httpx.TransportError as exc:
            raise getattr(httpx2, type(exc).__name__)(str(exc)) from None

    async def aclose(self) -> None:
        await self._response.aclose()


class RespxTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport that answers from a respx router."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.router = router

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        content = await request.aread()
        mirrored = httpx.Request(
            request.method, str(request.url), headers=list(request.headers.multi_items()), content=content
        )
        try:
            response = await self.router.async_handler(mirrored)
        except httpx.TransportError as exc:
            raise getattr(httpx2, type(exc).__name__)(str(exc)) from None
        return httpx2.Response(
            response.status_code, headers=list(response.headers.multi_items()), stream=_Stream(response)
        )


def settings(**changes: Any) -> ProvisionerSettings:
    return ProvisionerSettings(kind="kubernetes", **changes)


def new_runner(name: str = RUNNER, runner_id: int = 7, scale_set: str = SCALE_SET) -> NewRunner:
    return NewRunner(name=name, id=runner_id, scale_set=scale_set, jit_config=asc.Secret(JIT))


def pod(
    name: str,
    phase: str = "Running",
    runner: str | None = None,
    runner_id: str | None = "42",
    *,
    deleting: bool = False,
    version: str = "100",
) -> dict[str, Any]:
    """A Pod as the API server sends it (the fields the provisioner reads, and a few more)."""
    labels = {"actions-scaleset/scale-set": SCALE_SET}
    annotations = {}
    if runner_id is not None:
        labels["actions-scaleset/runner-id"] = runner_id
        annotations["actions-scaleset/runner-name"] = runner or name
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": NS,
        "uid": f"uid-{name}",
        "resourceVersion": version,
        "labels": labels,
        "annotations": annotations,
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-30T01:00:00Z"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "runner", "image": DEFAULT_DOCKER_IMAGE}]},
        "status": {"phase": phase},
    }


def pod_list(*pods: dict[str, Any], version: str = "100") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": {"resourceVersion": version},
        "items": list(pods),
    }


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    """A `Status`, the body of every refusal."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def event(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


class WatchStream(httpx.AsyncByteStream):
    """A watch's body: events, then (`drop`) a dropped connection, or else held open until the test ends."""

    def __init__(self, *events: bytes, drop: bool = False) -> None:
        self.events, self.drop = events, drop

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for line in self.events:
            yield line
        if self.drop:
            raise httpx.ReadError("connection reset by peer")
        await anyio.sleep_forever()


def body(call: Any) -> Any:
    return json.loads(call.request.content)


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=SERVER, assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def make(api: respx.MockRouter) -> Callable[..., KubernetesProvisioner]:
    def make(**changes: Any) -> KubernetesProvisioner:
        config = KubeConfig.from_one(
            cluster=Cluster(server=SERVER), user=User(token="kube-token"), namespace=NS
        )
        client = AsyncClient(config, transport=RespxTransport(api), trust_env=False)
        return KubernetesProvisioner(settings(**changes), SCALE_SET, client=client, watch_retry=0.001)

    return make


def quiet_watch(api: respx.MockRouter, *pods: dict[str, Any]) -> respx.Route:
    """The list and a watch that sends nothing: the provisioner's background view of its pods."""
    api.get(PODS, params={"watch": "true"}).mock(
        side_effect=lambda request: httpx.Response(200, stream=WatchStream())
    )
    return api.get(PODS).respond(200, json=pod_list(*pods))


def mock_start(api: respx.MockRouter, name: str = RUNNER) -> tuple[respx.Route, respx.Route, respx.Route]:
    secret = api.post(SECRETS).mock(side_effect=lambda request: httpx.Response(201, json=body_of(request)))
    created = api.post(PODS).mock(
        side_effect=lambda request: httpx.Response(
            201, json={**body_of(request), "metadata": {**body_of(request)["metadata"], "uid": "pod-uid-1"}}
        )
    )
    patch = api.patch(f"{SECRETS}/{name}").respond(
        200, json={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}}
    )
    return secret, created, patch


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


async def eventually(check: Callable[[], bool]) -> None:
    for _ in range(5000):  # up to about 5 s
        if check():
            return
        await anyio.sleep(0.001)
    raise AssertionError("not within 5 s")


# ---------------------------------------------------------------------- starting a runner


async def test_it_is_a_provisioner(make: Callable[..., KubernetesProvisioner]) -> None:
    assert isinstance(make(), Provisioner)


async def test_start_creates_the_secret_then_the_pod_then_gives_the_secret_to_the_pod(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner]
) -> None:
    quiet_watch(api)
    secret, created, patch = mock_start(api)
    async with make() as provisioner:
        await eventually(lambda: provisioner.watches == 1)
        handle = await provisioner.start(new_runner())
        assert await provisioner.running() == [handle]  # before the watch shows it
    assert handle == RunnerHandle(RUNNER, 7, ref=RUNNER)
    sent_secret = body(secret.calls.last)
    assert sent_secret["stringData"] == {"jitconfig": JIT}
    assert sent_secret["metadata"]["name"] == RUNNER
    sent_pod = body(created.calls.last)
    labels = {
        "actions-scaleset/scale-set": SCALE_SET,
        "actions-scaleset/runner-name": RUNNER,
        "actions-scaleset/runner-id": "7",
    }
    for sent in (sent_secret, sent_pod):
        assert sent["metadata"]["labels"] == labels
        assert sent["metadata"]["annotations"] == {
            "actions-scaleset/scale-set": SCALE_SET,
            "actions-scaleset/runner-name": RUNNER,
        }
    assert sent_pod["metadata"]["name"] == RUNNER
    assert sent_pod["spec"]["restartPolicy"] == "Never"
    assert sent_pod["spec"]["automountServiceAccountToken"] is False
    (container,) = sent_pod["spec"]["containers"]
    assert container["name"] == "runner"
    assert container["image"] == DEFAULT_DOCKER_IMAGE
    assert container["command"] == ["/home/runner/run.sh"]
    assert container["env"] == [
        {
            "name": "ACTIONS_RUNNER_INPUT_JITCONFIG",
            "valueFrom": {"secretKeyRef": {"name": RUNNER, "key": "jitconfig"}},
        },
        {"name": "RUNNER_NAME", "value": RUNNER},
    ]
    assert body(patch.calls.last) == {
        "metadata": {
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": RUNNER,
                    "uid": "pod-uid-1",
                    "blockOwnerDeletion": False,
                }
            ]
        }
    }
    assert patch.calls.last.request.headers["content-type"] == "application/merge-patch+json"
    order = [(c.request.method, c.request.url.path) for c in api.calls if c.request.method != "GET"]
    assert order == [("POST", SECRETS), ("POST", PODS), ("PATCH", f"{SECRETS}/{RUNNER}")]


async def test_the_jit_config_appears_in_no_pod_spec_label_or_annotation(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner], tmp_path: Path
) -> None:
    template = tmp_path / "pod.yaml"
    template.write_text(
        "spec:\n  containers:\n  - name: runner\n    env:\n    - name: ACTIONS_RUNNER_INPUT_JITCONFIG\n"
        "      value: stale\n"
    )
    quiet_watch(api)
    secret, created, _ = mock_start(api)
    async with make(pod_template=template) as provisioner:
        await provisioner.start(new_runner())
    assert JIT not in created.calls.last.request.content.decode()
    values = [e.get("value") for e in body(created.calls.last)["spec"]["containers"][0]["env"]]
    assert values == [None, RUNNER]  # the template's plain value is replaced by the secretKeyRef
    sent_secret = body(secret.calls.last)
    assert JIT not in json.dumps(sent_secret["metadata"])


async def test_the_pod_template_is_merged_with_the_runner_container(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner], tmp_path: Path
) -> None:
    template = tmp_path / "pod.yaml"
    template.write_text(
        """
apiVersion: v1
kind: Pod
metadata:
  labels: {team: ci, "actions-scaleset/scale-set": wrong}
spec:
  restartPolicy: Always
  nodeSelector: {kubernetes.io/arch: amd64}
  serviceAccountName: runner
  automountServiceAccountToken: true
  containers:
  - name: dind
    image: docker:dind
  - name: runner
    image: my-runner:2
    resources: {limits: {cpu: "2"}}
    env: [{name: DOCKER_HOST, value: "tcp://localhost:2375"}]
"""
    )
    quiet_watch(api)
    _, created, _ = mock_start(api)
    async with make(pod_template=template, runner_command="/start.sh --once") as provisioner:
        await provisioner.start(new_runner())
    sent = body(created.calls.last)
    assert sent["metadata"]["labels"]["team"] == "ci"
    assert sent["metadata"]["labels"]["actions-scaleset/scale-set"] == SCALE_SET
    assert sent["spec"]["restartPolicy"] == "Never"
    assert sent["spec"]["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    assert sent["spec"]["serviceAccountName"] == "runner"
    assert sent["spec"]["automountServiceAccountToken"] is True
    dind, runner = sent["spec"]["containers"]
    assert dind == {"name": "dind", "image": "docker:dind"}
    assert runner["image"] == "my-runner:2"
    assert runner["command"] == ["/start.sh", "--once"]
    assert runner["resources"] == {"limits": {"cpu": "2"}}
    assert [e["name"] for e in runner["env"]] == [
        "DOCKER_HOST",
        "ACTIONS_RUNNER_INPUT_JITCONFIG",
        "RUNNER_NAME",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("spec: [1, 2]", "must be a Pod manifest"),
        ("kind: Deployment\nspec: {}", "give a Pod"),
        ("spec:\n  containers: [{name: x, image: 3, ports: nope}]", "not a valid Pod"),
        ("spec: {containers: [", "not valid YAML"),
    ],
)
def test_a_bad_pod_template_is_one_line_that_names_it(tmp_path: Path, text: str, problem: str) -> None:
    template = tmp_path / "pod.yaml"
    template.write_text(text)
    with pytest.raises(ProvisionerError, match=problem) as caught:
        KubernetesProvisioner(settings(pod_template=template), SCALE_SET, client=object())  # type: ignore[arg-type]
    assert str(template) in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("runner_name", "expected"),
    [
        (RUNNER, RUNNER),
        ("Linux_X64-0a1b2c3d", "linux-x64-0a1b2c3d-"),
        ("gpu.a100 (eu)-0a1b2c3d", "gpu-a100-eu-0a1b2c3d-"),
        ("x" * 70 + "-0a1b2c3d", "x" * 52 + "-"),
    ],
)
def test_pod_names_are_dns_labels_unique_for_each_runner(runner_name: str, expected: str) -> None:
    name = resource_name(runner_name)
    assert name.startswith(expected)
    assert len(name) <= 63
    assert name.replace("-", "").isalnum()
    assert name == name.lower()


@pytest.mark.parametrize("text", ["linux-x64", "GPU runners/ä", "-x-", "a" * 80])
def test_label_values_are_what_kubernetes_allows(text: str) -> None:
    value = label_value(text)
    assert len(value) <= 63
    assert value[0].isalnum()
    assert value[-1].isalnum()
    assert all(c.isascii() and (c.isalnum() or c in "-_.") for c in value)
    assert (value == text) == (text == "linux-x64")


async def test_a_scale_set_name_kubernetes_refuses_is_sanitised_and_kept_in_annotations(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner]
) -> None:
    quiet_watch(api)
    name = "GPU runners/ä-0a1b2c3d"
    _, created, _ = mock_start(api, resource_name(name))
    async with make() as provisioner:
        handle = await provisioner.start(new_runner(name, scale_set="GPU runners/ä"))
    sent = body(created.calls.last)["metadata"]
    assert handle == RunnerHandle(name, 7, ref=resource_name(name))
    assert sent["labels"]["actions-scaleset/scale-set"] == label_value("GPU runners/ä")
    assert sent["annotations"] == {
        "actions-scaleset/scale-set": "GPU runners/ä",
        "actions-scaleset/runner-name": name,
    }


# ---------------------------------------------------------------------- refusals


async def test_a_409_on_create_is_a_provisioner_error_and_the_secret_is_taken_back(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner]
) -> None:
    quiet_watch(api)
    api.post(SECRETS).respond(201, json={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": RUNNER}})
    api.post(PODS).respond(409, json=status(409, "AlreadyExists", f'pods "{RUNNER}" already exists'))
    deleted_secret = api.delete(f"{SECRETS}/{RUNNER}").respond(200, json=status(200, "", ""))
    deleted_pod = api.delete(f"{PODS}/{RUNNER}").respond(404, json=status(404, "NotFound", "not found"))
    async with make() as provisioner:
        with pytest.raises(ProvisionerError, match=f"create pod {RUNNER}: it already exists") as caught:
            await provisioner.start(new_runner())
        assert await provisioner.running() == []
    assert "AlreadyExists, HTTP 409" in str(caught.value)
    assert deleted_secret.call_count == 1
    assert deleted_pod.call_count == 1


async def test_a_409_on_the_secret_touches_nothing_it_did_not_make(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner]
) -> None:
    quiet_watch(api)
    api.post(SECRETS).respond(409, json=status(409, "AlreadyExists", f'secrets "{RUNNER}" already exists'))
    async with make() as provisioner:
        with pytest.raises(ProvisionerError, match=f"create secret {RUNNER}: it already exists"):
            await provisioner.start(new_runner())
    assert {c.request.method for c in api.calls} == {"GET", "POST"}


async def test_a_403_says_which_role_the_service_account_needs(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner]
) -> None:
    quiet_watch(api)
    message = (
        'secrets is forbidden: User "system:serviceaccount:runners:listener" cannot create resource '
        '"secrets" in API group "" in the namespace "runners"'
    )
    api.post(SECRETS).respond(403, json=status(403, "Forbidden", message))
    async with make() as provisioner:
        with pytest.raises(ProvisionerError) as caught:
            await provisioner.start(new_runner())
    text = str(caught.value)
    assert text.startswith(f"create secret {RUNNER}: forbidden: secrets is forbidden")
    assert "examples/deploy/role.yaml" in text
    assert "namespace runners" in text
    assert "\n" not in text


async def test_an_api_error_that_echoes_the_jit_config_never_shows_it(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    quiet_watch(api)
    api.post(SECRETS).respond(422, json=status(422, "Invalid", f"Secret is invalid: data.jitconfig {JIT}"))
    async with make() as provisioner:
        with pytest.raises(ProvisionerError) as caught:
            await provisioner.start(new_runner())
    assert JIT not in str(caught.value)
    assert "<jit config>" in str(caught.value)
    assert JIT not in caplog.text
    assert JIT not in repr(new_runner())


async def test_an_unreachable_api_server_is_a_provisioner_error(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner]
) -> None:
    quiet_watch(api)
    api.post(SECRETS).mock(side_effect=httpx.ConnectError("connection refused"))
    async with make() as provisioner:
        with pytest.raises(
            ProvisionerError, match="cannot reach the Kubernetes API server: connection refused"
        ):
            await provisioner.start(new_runner())


# ---------------------------------------------------------------------- stopping, adopting, watching


async def test_stop_deletes_the_pod_and_its_secret_and_gone_already_is_fine(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner]
) -> None:
    quiet_watch(api)
    deleted_pod = api.delete(f"{PODS}/{RUNNER}").respond(200, json=pod(RUNNER, deleting=True))
    deleted_secret = api.delete(f"{SECRETS}/{RUNNER}").respond(404, json=status(404, "NotFound", "gone"))
    async with make() as provisioner:
        await provisioner.stop(RunnerHandle(RUNNER, 7, ref=RUNNER))
    assert deleted_pod.call_count == 1
    assert deleted_secret.call_count == 1


async def test_stop_says_why_it_could_not(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner]
) -> None:
    quiet_watch(api)
    api.delete(f"{PODS}/{RUNNER}").respond(403, json=status(403, "Forbidden", "pods is forbidden"))
    async with make() as provisioner:
        with pytest.raises(ProvisionerError, match=f"delete pod {RUNNER}: forbidden"):
            await provisioner.stop(RunnerHandle(RUNNER, 7, ref=RUNNER))


async def test_adopt_keeps_running_pods_by_label_and_deletes_finished_ones(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner]
) -> None:
    listed = quiet_watch(
        api,
        pod("linux-x64-aa", runner="linux-x64-aa", runner_id="1"),
        pod("linux-x64-bb", "Pending", runner_id="2"),
        pod("linux-x64-cc", "Succeeded", runner_id="3"),
        pod("linux-x64-dd", "Failed", runner_id="4", deleting=True),
        pod("stranger", runner_id=None),
    )
    deleted = api.delete(url__regex=rf"{PODS}/.*").respond(200, json=status(200, "", ""))
    api.delete(url__regex=rf"{SECRETS}/.*").respond(200, json=status(200, "", ""))
    async with make() as provisioner:
        adopted = await provisioner.adopt()
    assert sorted(adopted, key=lambda h: h.runner_id) == [
        RunnerHandle("linux-x64-aa", 1, ref="linux-x64-aa"),
        RunnerHandle("linux-x64-bb", 2, ref="linux-x64-bb"),
    ]
    assert listed.calls.last.request.url.params["labelSelector"] == SELECTOR
    assert {c.request.url.path for c in deleted.calls} == {f"{PODS}/linux-x64-cc"}


async def test_a_pod_created_before_a_list_that_lacks_it_is_gone(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner]
) -> None:
    quiet_watch(api)
    mock_start(api)
    async with make() as provisioner:
        await eventually(lambda: provisioner.watches == 1)
        await provisioner.start(new_runner())
        await provisioner._list()
        assert await provisioner.running() == []


async def test_running_lists_before_the_watch_has(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner]
) -> None:
    api.get(PODS, params={"watch": "true"}).mock(
        side_effect=lambda request: httpx.Response(200, stream=WatchStream())
    )
    listed = api.get(PODS).respond(200, json=pod_list(pod("linux-x64-aa", runner_id="1")))
    provisioner = make()
    async with provisioner:
        assert await provisioner.running() == [RunnerHandle("linux-x64-aa", 1, ref="linux-x64-aa")]
    assert listed.call_count >= 1


async def test_a_pod_whose_runner_exited_is_deleted_with_its_secret(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner]
) -> None:
    name = "linux-x64-aa"
    running, done = pod(name, runner_id="1"), pod(name, "Succeeded", runner_id="1", version="101")
    watch = api.get(PODS, params={"watch": "true"}).mock(
        side_effect=lambda request: httpx.Response(200, stream=WatchStream(event("MODIFIED", done)))
    )
    api.get(PODS).respond(200, json=pod_list(running))
    deleted_pod = api.delete(f"{PODS}/{name}").respond(200, json=status(200, "", ""))
    deleted_secret = api.delete(f"{SECRETS}/{name}").respond(200, json=status(200, "", ""))
    async with make() as provisioner:
        await eventually(lambda: deleted_secret.called)
        assert await provisioner.running() == []
    params = watch.calls.last.request.url.params
    assert (params["labelSelector"], params["resourceVersion"]) == (SELECTOR, "100")
    assert deleted_pod.call_count == 1


async def test_a_runner_container_that_exited_beside_a_sidecar_counts_as_done(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner]
) -> None:
    name = "linux-x64-aa"
    finished = pod(name, runner_id="1")
    finished["status"]["containerStatuses"] = [
        {
            "name": "runner",
            "ready": False,
            "restartCount": 0,
            "image": "x",
            "imageID": "",
            "state": {"terminated": {"exitCode": 0}},
        },
        {
            "name": "dind",
            "ready": True,
            "restartCount": 0,
            "image": "x",
            "imageID": "",
            "state": {"running": {}},
        },
    ]
    quiet_watch(api, finished)
    deleted = api.delete(f"{PODS}/{name}").respond(200, json=status(200, "", ""))
    api.delete(f"{SECRETS}/{name}").respond(200, json=status(200, "", ""))
    async with make() as provisioner:
        assert await provisioner.running() == []
        await eventually(lambda: deleted.called)


async def test_a_watch_that_drops_mid_stream_lists_again_and_watches_from_there(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner], caplog: pytest.LogCaptureFixture
) -> None:
    first, second = pod("linux-x64-aa", runner_id="1"), pod("linux-x64-bb", runner_id="2", version="205")
    watches = iter([WatchStream(event("ADDED", first), drop=True), WatchStream(event("DELETED", first))])
    watch = api.get(PODS, params={"watch": "true"}).mock(
        side_effect=lambda request: httpx.Response(200, stream=next(watches))
    )
    api.get(PODS).mock(
        side_effect=[
            httpx.Response(200, json=pod_list(first, version="100")),
            httpx.Response(200, json=pod_list(first, second, version="205")),
        ]
    )
    async with make() as provisioner:
        await eventually(lambda: provisioner.watches == 2 and len(provisioner._pods) == 1)
        assert await provisioner.running() == [RunnerHandle("linux-x64-bb", 2, ref="linux-x64-bb")]
    versions = [call.request.url.params["resourceVersion"] for call in watch.calls]
    assert versions == ["100", "205"]
    assert "the watch on pods of linux-x64 dropped (connection reset by peer)" in caplog.text


async def test_a_watch_that_stays_silent_is_renewed_with_a_fresh_list(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kubernetes, "WATCH_RENEW", 0.01)  # a connection that died without a word
    listed = quiet_watch(api)
    async with make() as provisioner:
        await eventually(lambda: provisioner.watches >= 3)
    assert listed.call_count >= 3


async def test_a_refused_watch_is_retried_and_never_stops_the_listener(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner], caplog: pytest.LogCaptureFixture
) -> None:
    api.get(PODS, params={"watch": "true"}).mock(
        side_effect=lambda request: httpx.Response(200, stream=WatchStream())
    )
    listed = api.get(PODS).mock(
        side_effect=[
            httpx.Response(403, json=status(403, "Forbidden", "pods is forbidden")),
            httpx.Response(200, json=pod_list()),
        ]
    )
    async with make() as provisioner:
        await eventually(lambda: provisioner.watches == 1)
    assert listed.call_count == 2
    assert "examples/deploy/role.yaml" in caplog.text


# ---------------------------------------------------------------------- configuration


def test_a_missing_kubeconfig_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ProvisionerError, match=r"--kubeconfig .*missing.yaml: .*not found") as caught:
        KubernetesProvisioner(settings(kubeconfig=tmp_path / "missing.yaml"), SCALE_SET)
    assert "\n" not in str(caught.value)


def test_a_kubeconfig_that_is_not_one_is_one_line(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("clusters: 3\n")
    with pytest.raises(ProvisionerError, match=r"--kubeconfig .*config: not a usable kubeconfig") as caught:
        KubernetesProvisioner(settings(kubeconfig=kubeconfig), SCALE_SET)
    assert "\n" not in str(caught.value)


def test_the_namespace_is_the_flag_else_the_kubeconfig_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kubernetes, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "no-such-file")
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "ci",
                "clusters": [{"name": "c", "cluster": {"server": SERVER}}],
                "users": [{"name": "u", "user": {"token": "kube-token"}}],
                "contexts": [
                    {"name": "ci", "context": {"cluster": "c", "user": "u", "namespace": "ci-runners"}}
                ],
            }
        )
    )
    assert KubernetesProvisioner(settings(kubeconfig=kubeconfig), SCALE_SET).namespace == "ci-runners"
    chosen = KubernetesProvisioner(settings(kubeconfig=kubeconfig, namespace="mine"), SCALE_SET)
    assert chosen.namespace == "mine"
    assert "kube-token" not in repr(chosen)


def test_inside_a_cluster_the_service_accounts_namespace_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "namespace").write_text("arc-runners")
    (tmp_path / "token").write_text("sa-token")
    monkeypatch.setattr(kubernetes, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "namespace")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    in_cluster = KubeConfig.from_service_account(tmp_path)
    monkeypatch.setattr(KubeConfig, "from_env", staticmethod(lambda: in_cluster))
    assert KubernetesProvisioner(settings(), SCALE_SET).namespace == "arc-runners"


def test_the_listener_builds_it_for_the_kubernetes_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kubernetes, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "no-such-file")
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        json.dumps(
            {
                "current-context": "ci",
                "clusters": [{"name": "c", "cluster": {"server": SERVER}}],
                "contexts": [{"name": "ci", "context": {"cluster": "c"}}],
            }
        )
    )
    wanted = ScaleSetSettings(name=SCALE_SET, provisioner=settings(kubeconfig=kubeconfig, namespace=NS))
    built = app._provisioner(wanted, Settings(url=None, credentials=None, scale_sets=(wanted,)))
    assert isinstance(built, KubernetesProvisioner)
    assert built.namespace == NS


def test_the_listener_says_in_one_line_when_it_cannot_build_it(tmp_path: Path) -> None:
    wanted = ScaleSetSettings(name=SCALE_SET, provisioner=settings(kubeconfig=tmp_path / "gone"))
    with pytest.raises(UsageError, match=r"scale set 'linux-x64': --kubeconfig .*gone: .*not found"):
        app._provisioner(wanted, Settings(url=None, credentials=None, scale_sets=(wanted,)))


# ---------------------------------------------------------------------- examples/deploy


DEPLOY = Path(__file__).resolve().parents[2] / "examples" / "deploy"


def verb(request: httpx.Request) -> tuple[str, str]:
    """The RBAC (resource, verb) a request needs."""
    parts = request.url.path.split("/")  # /api/v1/namespaces/{ns}/{resource}[/{name}]
    resource, named = parts[5], len(parts) > 6
    if request.method == "GET":
        return resource, "watch" if request.url.params.get("watch") == "true" else (
            "get" if named else "list"
        )
    return resource, {"POST": "create", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}[request.method]


async def test_the_role_grants_what_a_runners_life_uses_and_nothing_more(
    api: respx.MockRouter, make: Callable[..., KubernetesProvisioner]
) -> None:
    name = "linux-x64-aa"
    api.get(PODS, params={"watch": "true"}).mock(
        side_effect=lambda request: httpx.Response(
            200, stream=WatchStream(event("MODIFIED", pod(name, "Succeeded", runner_id="1")))
        )
    )
    api.get(PODS).respond(200, json=pod_list(pod(name, runner_id="1")))
    mock_start(api)
    api.delete(url__regex=rf"{PODS}/.*").respond(200, json=status(200, "", ""))
    api.delete(url__regex=rf"{SECRETS}/.*").respond(200, json=status(200, "", ""))
    async with make() as provisioner:
        await provisioner.adopt()
        handle = await provisioner.start(new_runner())
        await provisioner.stop(handle)
        await eventually(lambda: any(c.request.url.path == f"{SECRETS}/{name}" for c in api.calls))
    used: dict[str, set[str]] = {}
    for call in api.calls:
        resource, action = verb(call.request)
        used.setdefault(resource, set()).add(action)
    role = next(
        doc for doc in yaml.safe_load_all((DEPLOY / "role.yaml").read_text()) if doc["kind"] == "Role"
    )
    granted = {resource: set(rule["verbs"]) for rule in role["rules"] for resource in rule["resources"]}
    assert all(rule["apiGroups"] == [""] for rule in role["rules"])
    assert (
        used
        == granted
        == {"pods": {"create", "list", "watch", "delete"}, "secrets": {"create", "patch", "delete"}}
    )


def test_the_listener_deployment_uses_known_settings_and_the_role() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "listener.yaml").read_text()))
    deployment = next(doc for doc in docs if doc["kind"] == "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    known = {option.env for option in config._OPTIONS}
    assert {e["name"] for e in container["env"]} <= known
    assert spec["serviceAccountName"] == "scaleset-listener"
    assert deployment["spec"]["replicas"] == 1
    assert spec["terminationGracePeriodSeconds"] > 30  # the default --shutdown-timeout, and then some
    template = next(doc for doc in docs if doc["kind"] == "ConfigMap")["data"]["pod.yaml"]
    assert "runner" in yaml.safe_load(template)["spec"]["containers"][0]["name"]


# ---------------------------------------------------------------------- with the scaler


class FakeCluster:
    """Pods in a namespace, as far as the scaler's runners need them: create, list, watch, delete."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.pods: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []
        self.version = 100
        self.send, self.events = anyio.create_memory_object_stream[bytes](100)
        router.get(PODS, params={"watch": "true"}).mock(side_effect=self.watch)
        router.get(PODS).mock(
            side_effect=lambda request: httpx.Response(200, json=pod_list(*self.pods.values()))
        )
        router.post(SECRETS).mock(side_effect=lambda request: httpx.Response(201, json=body_of(request)))
        router.patch(url__regex=rf"{SECRETS}/.*").respond(200, json={"apiVersion": "v1", "kind": "Secret"})
        router.post(PODS).mock(side_effect=self.create)
        router.delete(url__regex=rf"{PODS}/.*").mock(side_effect=self.delete)
        router.delete(url__regex=rf"{SECRETS}/.*").respond(200, json=status(200, "", ""))

    def create(self, request: httpx.Request) -> httpx.Response:
        sent = body_of(request)
        name = sent["metadata"]["name"]
        self.version += 1
        sent["metadata"].update(uid=f"uid-{name}", resourceVersion=str(self.version))
        sent["status"] = {"phase": "Pending"}
        self.pods[name] = sent
        self.created.append(name)
        self.send.send_nowait(event("ADDED", sent))
        return httpx.Response(201, json=sent)

    def delete(self, request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[-1]
        gone = self.pods.pop(name, None)
        if gone is None:
            return httpx.Response(404, json=status(404, "NotFound", f'pods "{name}" not found'))
        self.send.send_nowait(event("DELETED", gone))
        return httpx.Response(200, json=gone)

    def finish(self, name: str) -> None:
        """The runner in pod `name` ran its job and exited."""
        self.pods[name]["status"] = {"phase": "Succeeded"}
        self.send.send_nowait(event("MODIFIED", self.pods[name]))

    def watch(self, request: httpx.Request) -> httpx.Response:
        events = self.events

        class Stream(httpx.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                async for line in events:
                    yield line

        return httpx.Response(200, stream=Stream())


async def test_with_the_scaler_each_need_gets_one_pod_and_a_finished_runner_is_cleaned_up(
    tmp_path: Path,
) -> None:
    router = respx.MockRouter(base_url=SERVER, assert_all_called=False, assert_all_mocked=True)
    cluster = FakeCluster(router)
    config = KubeConfig.from_one(cluster=Cluster(server=SERVER), user=User(token="kube-token"), namespace=NS)
    client = AsyncClient(config, transport=RespxTransport(router), trust_env=False)
    provisioner = KubernetesProvisioner(settings(), SCALE_SET, client=client, watch_retry=0.001)
    fake = FakeGitHub()
    with cluster.send, cluster.events:
        await serve_three_then_one_finishes(fake, cluster, provisioner, tmp_path)
    assert all(JIT not in json.dumps(p) for p in cluster.pods.values())


async def serve_three_then_one_finishes(
    fake: FakeGitHub, cluster: FakeCluster, provisioner: KubernetesProvisioner, tmp_path: Path
) -> None:
    async with (
        fake.http_client() as http,
        asc.ScaleSetClient(fake.config_url("acme"), fake.pat(), http_client=http) as github,
        provisioner,
    ):
        scale_set = await github.ensure_scale_set(SCALE_SET)
        scaler = ProvisioningScaler(
            github,
            ScaleSetSettings(SCALE_SET, max_runners=3),
            provisioner,
            lambda: scale_set.id,
            Ledger(tmp_path / "ledger.json"),
        )
        await scaler.prepare()
        await scaler.handle_desired_runner_count(3)
        for _ in range(3):
            await scaler.reconcile()
        assert len(cluster.created) == 3  # one pod per need, however often it reconciles
        assert {
            p["metadata"]["annotations"]["actions-scaleset/runner-name"] for p in cluster.pods.values()
        } == {r.name for r in fake.snapshot().runners}
        finished = cluster.created[0]
        await scaler.handle_desired_runner_count(2)
        cluster.finish(finished)
        await eventually(lambda: finished not in cluster.pods)
        await scaler.reconcile()
        assert len(cluster.pods) == 2
        assert len(scaler.runners) == 2
