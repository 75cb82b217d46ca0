"""The reference listener's Docker provisioner, against the Engine API's real request and response shapes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import respx
from anyio.abc import SocketStream
from examples.listener import docker
from examples.listener.docker import DockerProvisioner, container_name, split_image
from examples.listener.provisioner import NewRunner, Provisioner, ProvisionerError, RunnerHandle
from examples.listener.settings import DEFAULT_DOCKER_IMAGE, ProvisionerSettings

import actions_scaleset as asc

pytestmark = pytest.mark.anyio

SCALE_SET = "linux-x64"
JIT = "eyJqaXQiOiAic2VjcmV0LWppdC1jb25maWcifQ=="
SOCKET = "/nonexistent/docker.sock"
FILTERS = {"label": [f"actions-scaleset.scale-set={SCALE_SET}"]}
LABELS = "actions-scaleset.scale-set", "actions-scaleset.runner-name", "actions-scaleset.runner-id"


def provisioner_settings(**changes: Any) -> ProvisionerSettings:
    return ProvisionerSettings(kind="docker", **{"docker_host": f"unix://{SOCKET}", **changes})


def new_runner(name: str = "linux-x64-k3x9q", runner_id: int = 7) -> NewRunner:
    return NewRunner(name=name, id=runner_id, scale_set=SCALE_SET, jit_config=asc.Secret(JIT))


def listed(container_id: str, state: str = "running", labels: dict[str, str] | None = None) -> dict[str, Any]:
    """One entry of `GET /containers/json`, as the Engine sends it."""
    return {
        "Id": container_id,
        "Names": [f"/{container_id}-name"],
        "Image": DEFAULT_DOCKER_IMAGE,
        "State": state,
        "Status": "Up 2 minutes" if state == "running" else "Exited (0) 1 minute ago",
        "Labels": labels
        if labels is not None
        else dict(zip(LABELS, (SCALE_SET, f"r-{container_id}", "42"), strict=True)),
    }


def body(call: Any) -> Any:
    return json.loads(call.request.content)


@pytest.fixture
def engine() -> Iterator[respx.MockRouter]:
    """The Engine API behind the default uds transport (respx intercepts it; no socket is opened)."""
    with respx.mock(base_url="http://docker", assert_all_called=False) as router:
        yield router


@pytest.fixture
def provisioner() -> DockerProvisioner:
    return DockerProvisioner(provisioner_settings(), SCALE_SET)


def mock_start(engine: respx.MockRouter, container_id: str = "c0ffee") -> tuple[respx.Route, respx.Route]:
    create = engine.post("/containers/create").respond(201, json={"Id": container_id, "Warnings": []})
    start = engine.post(f"/containers/{container_id}/start").respond(204)
    return create, start


async def test_it_is_a_provisioner(provisioner: DockerProvisioner) -> None:
    assert isinstance(provisioner, Provisioner)


async def test_start_creates_a_labelled_auto_removed_container_and_starts_it(
    engine: respx.MockRouter, provisioner: DockerProvisioner
) -> None:
    create, start = mock_start(engine)
    async with provisioner:
        handle = await provisioner.start(new_runner())
    assert handle == RunnerHandle("linux-x64-k3x9q", 7, ref="c0ffee")
    assert create.call_count == 1
    assert start.call_count == 1
    assert create.calls.last.request.url.params["name"] == "linux-x64-k3x9q"
    sent = body(create.calls.last)
    assert sent["Image"] == DEFAULT_DOCKER_IMAGE
    assert sent["Cmd"] == ["/home/runner/run.sh"]
    assert f"ACTIONS_RUNNER_INPUT_JITCONFIG={JIT}" in sent["Env"]
    assert "RUNNER_NAME=linux-x64-k3x9q" in sent["Env"]
    assert sent["Labels"] == {
        "actions-scaleset.scale-set": SCALE_SET,
        "actions-scaleset.runner-name": "linux-x64-k3x9q",
        "actions-scaleset.runner-id": "7",
    }
    assert sent["HostConfig"] == {"AutoRemove": True}


@pytest.mark.parametrize(
    ("image", "command", "cmd"),
    [
        (DEFAULT_DOCKER_IMAGE, "/home/runner/run.sh --once 'a b'", ["/home/runner/run.sh", "--once", "a b"]),
        ("my-runner:1", "./start.sh", ["./start.sh"]),
        ("my-runner:1", None, None),  # the image's own command
    ],
)
async def test_the_command_is_the_setting_the_default_images_or_the_images_own(
    engine: respx.MockRouter, image: str, command: str | None, cmd: list[str] | None
) -> None:
    create, _ = mock_start(engine)
    settings = provisioner_settings(docker_image=image, runner_command=command)
    async with DockerProvisioner(settings, SCALE_SET) as provisioner:
        await provisioner.start(new_runner())
    sent = body(create.calls.last)
    assert sent["Image"] == image
    assert sent.get("Cmd") == cmd


@pytest.mark.parametrize(
    ("runner_name", "expected"),
    [
        ("linux-x64-k3x9q", "linux-x64-k3x9q"),
        ("my runner/ä:1", "my-runner---1"),
        ("-leading", "runner--leading"),
        ("x", "runner-x"),
    ],
)
def test_container_names_are_what_docker_allows(runner_name: str, expected: str) -> None:
    assert container_name(runner_name) == expected


async def test_start_sends_the_sanitised_name(
    engine: respx.MockRouter, provisioner: DockerProvisioner
) -> None:
    create, _ = mock_start(engine)
    async with provisioner:
        handle = await provisioner.start(new_runner("runner #1 (ä)"))
    assert create.calls.last.request.url.params["name"] == "runner--1----"
    assert handle.runner_name == "runner #1 (ä)"
    assert body(create.calls.last)["Labels"]["actions-scaleset.runner-name"] == "runner #1 (ä)"


@pytest.mark.parametrize(
    ("image", "repo", "tag"),
    [
        ("ubuntu", "ubuntu", "latest"),
        ("ubuntu:24.04", "ubuntu", "24.04"),
        (DEFAULT_DOCKER_IMAGE, "ghcr.io/actions/actions-runner", "latest"),
        ("localhost:5000/img", "localhost:5000/img", "latest"),
        ("localhost:5000/team/img:1.2", "localhost:5000/team/img", "1.2"),
        ("img@sha256:abc123", "img", "sha256:abc123"),
        ("localhost:5000/img:1@sha256:abc123", "localhost:5000/img", "sha256:abc123"),
    ],
)
def test_split_image(image: str, repo: str, tag: str) -> None:
    assert split_image(image) == (repo, tag)


async def test_a_missing_image_is_pulled_then_created(engine: respx.MockRouter) -> None:
    image = "localhost:5000/runner:v1"
    create = engine.post("/containers/create").mock(
        side_effect=[
            httpx.Response(404, json={"message": f"No such image: {image}"}),
            httpx.Response(201, json={"Id": "c0ffee", "Warnings": []}),
        ]
    )
    progress = [
        {"status": "Pulling from runner", "id": "v1"},
        {"status": "Downloading", "progressDetail": {"current": 1, "total": 2}, "id": "a1b2"},
        {"status": f"Status: Downloaded newer image for {image}"},
    ]
    pull = engine.post("/images/create").respond(
        200, text="\r\n".join(json.dumps(p) for p in progress) + "\r\n"
    )
    engine.post("/containers/c0ffee/start").respond(204)
    async with DockerProvisioner(provisioner_settings(docker_image=image), SCALE_SET) as provisioner:
        handle = await provisioner.start(new_runner())
    assert handle.ref == "c0ffee"
    assert create.call_count == 2
    assert dict(pull.calls.last.request.url.params) == {"fromImage": "localhost:5000/runner", "tag": "v1"}
    paths = [call.request.url.path for call in engine.calls]
    assert paths == ["/containers/create", "/images/create", "/containers/create", "/containers/c0ffee/start"]


async def test_a_pull_error_in_the_stream_is_a_provisioner_error(
    engine: respx.MockRouter, provisioner: DockerProvisioner
) -> None:
    create = engine.post("/containers/create").respond(404, json={"message": "No such image: x"})
    lines = [
        {"status": "Pulling from actions/actions-runner"},
        {"errorDetail": {"message": "manifest unknown"}, "error": "manifest unknown: manifest unknown"},
    ]
    engine.post("/images/create").respond(200, text="\n".join(json.dumps(line) for line in lines))
    async with provisioner:
        with pytest.raises(ProvisionerError, match=r"pull image .*: manifest unknown") as caught:
            await provisioner.start(new_runner())
    assert create.call_count == 1
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "answer", "expected"),
    [
        (404, {"message": "pull access denied for x, repository does not exist"}, "pull access denied"),
        (500, None, "HTTP 500"),
        (200, "Status: not json", "not JSON"),
    ],
)
async def test_a_failed_pull_is_a_provisioner_error(
    engine: respx.MockRouter, provisioner: DockerProvisioner, status: int, answer: Any, expected: str
) -> None:
    engine.post("/containers/create").respond(404, json={"message": "No such image: x"})
    if isinstance(answer, str):
        engine.post("/images/create").respond(status, text=answer)
    else:
        engine.post("/images/create").respond(status, json=answer)
    async with provisioner:
        with pytest.raises(ProvisionerError, match=expected):
            await provisioner.start(new_runner())


async def test_a_failed_start_deletes_the_created_container(
    engine: respx.MockRouter, provisioner: DockerProvisioner
) -> None:
    engine.post("/containers/create").respond(201, json={"Id": "c0ffee", "Warnings": []})
    engine.post("/containers/c0ffee/start").respond(500, json={"message": "driver failed programming"})
    delete = engine.delete("/containers/c0ffee").respond(204)
    async with provisioner:
        with pytest.raises(ProvisionerError, match=r"start container .*driver failed programming"):
            await provisioner.start(new_runner())
    assert delete.call_count == 1
    assert delete.calls.last.request.url.params["force"] == "true"


async def test_an_already_started_container_is_fine(
    engine: respx.MockRouter, provisioner: DockerProvisioner
) -> None:
    engine.post("/containers/create").respond(201, json={"Id": "c0ffee", "Warnings": []})
    engine.post("/containers/c0ffee/start").respond(304)
    async with provisioner:
        assert (await provisioner.start(new_runner())).ref == "c0ffee"


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (409, {"message": 'Conflict. The container name "/linux-x64-k3x9q" is already in use'}),
        (201, {"Warnings": []}),
        (201, "<html>"),
        (201, ["c0ffee"]),
    ],
)
async def test_a_refused_or_unreadable_create_is_a_provisioner_error(
    engine: respx.MockRouter, provisioner: DockerProvisioner, status: int, answer: Any
) -> None:
    if isinstance(answer, str):
        engine.post("/containers/create").respond(status, text=answer)
    else:
        engine.post("/containers/create").respond(status, json=answer)
    async with provisioner:
        with pytest.raises(ProvisionerError, match="create container linux-x64-k3x9q"):
            await provisioner.start(new_runner())
    assert [call.request.url.path for call in engine.calls] == ["/containers/create"]


@pytest.mark.parametrize("stop_status", [204, 304, 404])
@pytest.mark.parametrize("delete_status", [204, 404, 409])
async def test_stop_tolerates_a_container_that_is_stopped_gone_or_being_removed(
    engine: respx.MockRouter, provisioner: DockerProvisioner, stop_status: int, delete_status: int
) -> None:
    stop = engine.post("/containers/c0ffee/stop").respond(stop_status)
    delete = engine.delete("/containers/c0ffee").respond(
        delete_status, json={"message": "removal of container c0ffee is already in progress"}
    )
    async with provisioner:
        await provisioner.stop(RunnerHandle("r", 7, ref="c0ffee"))
    assert stop.calls.last.request.url.params["t"] == "10"
    assert delete.calls.last.request.url.params["force"] == "true"


async def test_a_refused_stop_is_a_provisioner_error(
    engine: respx.MockRouter, provisioner: DockerProvisioner
) -> None:
    engine.post("/containers/c0ffee/stop").respond(
        500, json={"message": "cannot stop container: permission denied"}
    )
    async with provisioner:
        with pytest.raises(ProvisionerError, match="stop container c0ffee: cannot stop container"):
            await provisioner.stop(RunnerHandle("r", 7, ref="c0ffee"))


MALFORMED = [
    listed("no-labels", labels={}),
    listed("no-id", labels={LABELS[0]: SCALE_SET, LABELS[1]: "r"}),
    listed("bad-id", labels={LABELS[0]: SCALE_SET, LABELS[1]: "r", LABELS[2]: "seven"}),
    listed("negative-id", labels={LABELS[0]: SCALE_SET, LABELS[1]: "r", LABELS[2]: "-7"}),
    listed("empty-name", labels={LABELS[0]: SCALE_SET, LABELS[1]: "", LABELS[2]: "7"}),
    {**listed("null-labels"), "Labels": None},
]


async def test_running_lists_this_scale_sets_containers_and_skips_malformed_labels(
    engine: respx.MockRouter, provisioner: DockerProvisioner, caplog: pytest.LogCaptureFixture
) -> None:
    route = engine.get("/containers/json").respond(200, json=[listed("a1"), *MALFORMED, listed("b2")])
    caplog.set_level(logging.DEBUG, logger="listener.docker")
    async with provisioner:
        handles = await provisioner.running()
    assert handles == [RunnerHandle("r-a1", 42, ref="a1"), RunnerHandle("r-b2", 42, ref="b2")]
    params = route.calls.last.request.url.params
    assert json.loads(params["filters"]) == FILTERS
    assert "all" not in params
    skipped = [
        record.getMessage() for record in caplog.records if "skipping container" in record.getMessage()
    ]
    assert len(skipped) == len(MALFORMED)


@pytest.mark.parametrize(
    "answer",
    ["not json", {"message": "page not found"}, [{"Names": ["/x"], "State": "running"}], [None]],
)
async def test_an_unreadable_list_is_a_provisioner_error(
    engine: respx.MockRouter, provisioner: DockerProvisioner, answer: Any
) -> None:
    if isinstance(answer, str):
        engine.get("/containers/json").respond(200, text=answer)
    else:
        engine.get("/containers/json").respond(200, json=answer)
    async with provisioner:
        with pytest.raises(ProvisionerError, match="list the containers of scale set linux-x64"):
            await provisioner.running()


async def test_adopt_returns_running_containers_and_removes_exited_leftovers(
    engine: respx.MockRouter, provisioner: DockerProvisioner
) -> None:
    containers = [listed("a1"), listed("old", state="exited"), listed("new", state="created"), *MALFORMED]
    route = engine.get("/containers/json").respond(200, json=containers)
    old = engine.delete("/containers/old").respond(204)
    new = engine.delete("/containers/new").respond(404, json={"message": "No such container: new"})
    async with provisioner:
        handles = await provisioner.adopt()
    assert handles == [RunnerHandle("r-a1", 42, ref="a1")]
    params = route.calls.last.request.url.params
    assert params["all"] == "true"
    assert json.loads(params["filters"]) == FILTERS
    assert old.calls.last.request.url.params["force"] == "true"
    assert new.call_count == 1
    deleted = [call.request.url.path for call in engine.calls if call.request.method == "DELETE"]
    assert deleted == ["/containers/old", "/containers/new"]  # running ones are never removed


async def test_adopt_carries_on_when_a_leftover_cannot_be_removed(
    engine: respx.MockRouter, provisioner: DockerProvisioner, caplog: pytest.LogCaptureFixture
) -> None:
    engine.get("/containers/json").respond(200, json=[listed("old", state="exited"), listed("a1")])
    engine.delete("/containers/old").respond(500, json={"message": "device or resource busy"})
    async with provisioner:
        assert await provisioner.adopt() == [RunnerHandle("r-a1", 42, ref="a1")]
    assert any("device or resource busy" in record.getMessage() for record in caplog.records)


async def test_a_missing_socket_is_a_provisioner_error_that_names_docker_host(tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/docker.sock"
    async with DockerProvisioner(provisioner_settings(docker_host=host), SCALE_SET) as provisioner:
        with pytest.raises(ProvisionerError) as caught:
            await provisioner.running()
    message = str(caught.value)
    assert f"cannot reach the Docker Engine at {host}" in message
    assert "DOCKER_HOST" in message
    assert "\n" not in message


async def test_a_transport_error_on_start_is_a_provisioner_error(
    engine: respx.MockRouter, provisioner: DockerProvisioner
) -> None:
    engine.post("/containers/create").mock(
        side_effect=httpx.ConnectError("[Errno 2] No such file or directory")
    )
    async with provisioner:
        with pytest.raises(
            ProvisionerError, match=r"No such file or directory; is Docker running\? set DOCKER_HOST"
        ):
            await provisioner.start(new_runner())


async def test_a_hung_engine_is_a_provisioner_error_after_the_timeout(
    engine: respx.MockRouter, provisioner: DockerProvisioner, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(60)
        raise AssertionError("unreachable")

    monkeypatch.setattr(docker, "TIMEOUT", 0.05)
    engine.get("/containers/json").mock(side_effect=hang)
    async with provisioner:
        with pytest.raises(ProvisionerError, match="did not answer within"):
            await provisioner.running()


def test_only_unix_sockets_are_accepted() -> None:
    with pytest.raises(ProvisionerError, match="unix://"):
        DockerProvisioner(provisioner_settings(docker_host="tcp://127.0.0.1:2375"), SCALE_SET)
    with pytest.raises(ProvisionerError, match="unix://"):
        DockerProvisioner(provisioner_settings(docker_host="unix://"), SCALE_SET)


async def test_the_jit_config_is_in_no_error_message_or_log_record(
    engine: respx.MockRouter, provisioner: DockerProvisioner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors = []
    # the Engine echoes what it was sent
    engine.post("/containers/create").respond(
        400, json={"message": f"invalid environment variable: ACTIONS_RUNNER_INPUT_JITCONFIG={JIT}\n"}
    )
    async with provisioner:
        with pytest.raises(ProvisionerError) as caught:
            await provisioner.start(new_runner())
        errors.append(caught.value)
        engine.post("/containers/create").respond(201, json={"Id": "c0ffee", "Warnings": []})
        engine.post("/containers/c0ffee/start").respond(500, json={"message": f"exec failed: {JIT}"})
        engine.delete("/containers/c0ffee").respond(500, json={"message": "device or resource busy"})
        with pytest.raises(ProvisionerError) as caught:
            await provisioner.start(new_runner())
        errors.append(caught.value)
        engine.post("/containers/create").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(ProvisionerError) as caught:
            await provisioner.start(new_runner())
        errors.append(caught.value)
    assert "invalid environment variable" in str(errors[0])
    assert "exec failed" in str(errors[1])
    for error in errors:
        assert JIT not in str(error)
        assert "\n" not in str(error)
    assert caplog.records
    for record in caplog.records:
        assert JIT not in record.getMessage()


async def test_the_default_transport_talks_to_the_configured_socket_even_with_a_proxy_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for proxy in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")
    path = tmp_path / "docker.sock"
    requests: list[bytes] = []

    async def engine(stream: SocketStream) -> None:
        async with stream:
            received = b""
            while b"\r\n\r\n" not in received:
                received += await stream.receive()
            requests.append(received.split(b"\r\n")[0])
            answer = json.dumps([listed("a1")]).encode()
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(answer)}\r\n\r\n"
            )
            await stream.send(head.encode() + answer)

    listener = await anyio.create_unix_listener(path)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, engine)
        async with DockerProvisioner(
            provisioner_settings(docker_host=f"unix://{path}"), SCALE_SET
        ) as provisioner:
            handles = await provisioner.running()
        tg.cancel_scope.cancel()
    assert handles == [RunnerHandle("r-a1", 42, ref="a1")]
    assert len(requests) == 1
    assert requests[0].startswith(b"GET /containers/json?filters=")
