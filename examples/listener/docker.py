"""Run each runner as a Docker container, through the Docker Engine API on its unix socket.

Plain httpx over `DOCKER_HOST` (`unix://` only): no docker CLI, no docker SDK. Every container
carries three labels (`actions-scaleset.scale-set`, `.runner-name`, `.runner-id`), so a restarted
listener finds its runners again, and runs with `AutoRemove`, so Docker deletes it when the
runner exits. The Engine API endpoints used (unversioned paths):

- `POST /containers/create?name=...`, then `POST /containers/{id}/start`: start a runner;
- `POST /images/create?fromImage=...&tag=...`: pull the image when create answers 404;
- `POST /containers/{id}/stop?t=10`, then `DELETE /containers/{id}?force=true`: stop one;
- `GET /containers/json?filters=...`: list this scale set's containers by label.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from collections.abc import Collection, Sequence
from types import TracebackType
from typing import Any, Final, Self

import anyio
import httpx

from .provisioner import NewRunner, ProvisionerError, RunnerHandle
from .settings import DEFAULT_DOCKER_COMMAND, DEFAULT_DOCKER_IMAGE, ProvisionerSettings

__all__ = ["DockerProvisioner", "container_name", "split_image"]

logger = logging.getLogger("listener.docker")

SCALE_SET_LABEL: Final = "actions-scaleset.scale-set"
RUNNER_NAME_LABEL: Final = "actions-scaleset.runner-name"
RUNNER_ID_LABEL: Final = "actions-scaleset.runner-id"
TIMEOUT: Final = 60.0
PULL_TIMEOUT: Final = 600.0


def container_name(runner_name: str) -> str:
    """The runner's name as Docker allows it: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`."""
    safe = re.sub(r"[^a-zA-Z0-9_.-]", "-", runner_name)
    return safe if re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", safe) else f"runner-{safe}"


def split_image(image: str) -> tuple[str, str]:
    """`fromImage` and `tag` for a pull: `localhost:5000/img:1` → (`localhost:5000/img`, `1`).

    A digest (`img@sha256:...`, or `img:1@sha256:...`) is pulled as the tag; no tag is `latest`.
    """
    name, _, digest = image.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    repo, tag = (name[:colon], name[colon + 1 :]) if colon > slash else (name, "latest")
    return repo, digest or tag


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def _engine_message(response: httpx.Response) -> str:
    """The Engine's `{"message": ...}`, or the status when the body has none."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    status = f"HTTP {response.status_code}"
    return f"{_one_line(message)} ({status})" if isinstance(message, str) and message.strip() else status


def _json(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ProvisionerError(f"{what}: the Docker Engine answered with a body that is not JSON") from None


def _pull_error(line: str) -> str | None:
    """The error in one line of the Engine's pull progress (`{"status": ...}` or `{"error": ...}`)."""
    try:
        progress = json.loads(line)
    except ValueError:
        progress = None
    if not isinstance(progress, dict):
        return "the Docker Engine sent a progress line that is not JSON"
    return _one_line(str(progress["error"])) if "error" in progress else None


def _handle(container_id: str, labels: object) -> RunnerHandle | None:
    """The runner a container runs, from its labels; None when they are missing or malformed."""
    name = labels.get(RUNNER_NAME_LABEL) if isinstance(labels, dict) else None
    runner_id = labels.get(RUNNER_ID_LABEL) if isinstance(labels, dict) else None
    if isinstance(name, str) and name and isinstance(runner_id, str) and re.fullmatch(r"[0-9]+", runner_id):
        return RunnerHandle(name, int(runner_id), ref=container_id)
    logger.debug("skipping container %s: its runner labels are missing or malformed", container_id)
    return None


class DockerProvisioner:
    """A `Provisioner` that runs each runner in its own container. Used as `async with`."""

    def __init__(
        self,
        settings: ProvisionerSettings,
        scale_set: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        host = settings.docker_host
        path = host.removeprefix("unix://")
        if not host.startswith("unix://") or not path:
            raise ProvisionerError(f"DOCKER_HOST must be a unix:// socket, not {host!r}")
        self._settings, self._scale_set = settings, scale_set
        self._transport = transport or httpx.AsyncHTTPTransport(uds=path)
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        # trust_env=False: the Engine's socket must never go through an HTTP(S)_PROXY
        self._client = httpx.AsyncClient(
            base_url="http://docker", transport=self._transport, trust_env=False, timeout=TIMEOUT
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def start(self, runner: NewRunner) -> RunnerHandle:
        try:
            return await self._start(runner)
        except ProvisionerError as exc:  # the Engine may echo what it was sent: never the JIT config
            raise exc.without(runner.jit_config) from None

    async def _start(self, runner: NewRunner) -> RunnerHandle:
        image, command = self._settings.docker_image, self._settings.runner_command
        if command is None and image == DEFAULT_DOCKER_IMAGE:
            command = DEFAULT_DOCKER_COMMAND
        name = container_name(runner.name)
        body: dict[str, Any] = {
            "Image": image,
            "Env": [f"{key}={value}" for key, value in runner.environment().items()],
            "Labels": {
                SCALE_SET_LABEL: self._scale_set,
                RUNNER_NAME_LABEL: runner.name,
                RUNNER_ID_LABEL: str(runner.id),
            },
            "HostConfig": {"AutoRemove": True},
        }
        if command is not None:
            body["Cmd"] = shlex.split(command)
        what = f"create container {name}"
        params = {"name": name}
        response = await self._call(
            what, "POST", "/containers/create", ok=(201, 404), params=params, json=body
        )
        if response.status_code == 404:  # no such image
            await self._pull(image)
            response = await self._call(
                what, "POST", "/containers/create", ok=(201,), params=params, json=body
            )
        created = _json(response, what)
        if not isinstance(created, dict) or not isinstance(created.get("Id"), str) or not created["Id"]:
            raise ProvisionerError(f"{what}: the Docker Engine's answer has no container Id")
        container_id: str = created["Id"]
        try:
            await self._call(
                f"start container {name}", "POST", f"/containers/{container_id}/start", ok=(204, 304)
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._remove(container_id, quiet=True)
            raise
        return RunnerHandle(runner.name, runner.id, ref=container_id)

    async def stop(self, handle: RunnerHandle) -> None:
        ref = handle.ref
        await self._call(
            f"stop container {ref}", "POST", f"/containers/{ref}/stop", ok=(204, 304, 404), params={"t": 10}
        )
        await self._remove(ref)

    async def running(self) -> Sequence[RunnerHandle]:
        listed = await self._list(everything=False)
        return [handle for _, state, handle in listed if state == "running" and handle is not None]

    async def adopt(self) -> Sequence[RunnerHandle]:
        adopted = []
        for container_id, state, handle in await self._list(everything=True):
            if state != "running":  # a leftover: never started, or exited before Docker removed it
                logger.info("removing leftover container %s (%s)", container_id, state)
                await self._remove(container_id, quiet=True)
            elif handle is not None:
                adopted.append(handle)
        return adopted

    async def _list(self, *, everything: bool) -> list[tuple[str, str, RunnerHandle | None]]:
        """This scale set's containers: (id, state, handle) each."""
        what = f"list the containers of scale set {self._scale_set}"
        params = {"filters": json.dumps({"label": [f"{SCALE_SET_LABEL}={self._scale_set}"]})}
        if everything:
            params["all"] = "true"
        listed = _json(await self._call(what, "GET", "/containers/json", params=params), what)
        if not isinstance(listed, list) or not all(
            isinstance(c, dict) and isinstance(c.get("Id"), str) and isinstance(c.get("State"), str)
            for c in listed
        ):
            raise ProvisionerError(f"{what}: the Docker Engine's answer is not a list of containers")
        return [(c["Id"], c["State"], _handle(c["Id"], c.get("Labels"))) for c in listed]

    async def _remove(self, container_id: str, *, quiet: bool = False) -> None:
        """Force-delete a container; gone (404) or already being removed (409) is fine."""
        path, params = f"/containers/{container_id}", {"force": "true"}
        try:
            await self._call(
                f"remove container {container_id}", "DELETE", path, ok=(204, 404, 409), params=params
            )
        except ProvisionerError as exc:
            if not quiet:
                raise
            logger.warning("%s", exc)

    async def _pull(self, image: str) -> None:
        repo, tag = split_image(image)
        what = f"pull image {image}"
        logger.info("pulling image %s", image)
        params = {"fromImage": repo, "tag": tag}
        response = await self._call(what, "POST", "/images/create", params=params, seconds=PULL_TIMEOUT)
        for line in response.text.splitlines():  # one JSON object a line; an error ends the stream
            if line.strip() and (error := _pull_error(line)):
                raise ProvisionerError(f"{what}: {error}")

    async def _call(
        self,
        what: str,
        method: str,
        path: str,
        *,
        ok: Collection[int] = (200,),
        seconds: float | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request, bounded in time; a transport error or an unexpected status is a ProvisionerError."""
        host, seconds = self._settings.docker_host, seconds or TIMEOUT
        try:
            with anyio.fail_after(seconds):
                response = await self._http().request(method, path, timeout=seconds, **kwargs)
        except httpx.TransportError as exc:
            reason = _one_line(str(exc)) or type(exc).__name__
            raise ProvisionerError(
                f"cannot reach the Docker Engine at {host}: {reason}; is Docker running? set DOCKER_HOST"
            ) from exc
        except TimeoutError:
            raise ProvisionerError(
                f"{what}: the Docker Engine at {host} did not answer within {seconds:.0f} s"
            ) from None
        if response.status_code not in ok:
            raise ProvisionerError(f"{what}: {_engine_message(response)}")
        return response

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("use DockerProvisioner as `async with DockerProvisioner(...) as provisioner:`")
        return self._client
