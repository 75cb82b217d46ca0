"""Run each runner as a Kubernetes Pod, through the API server with `lightkube` (see docs/kubernetes.md).

Per runner, in the listener's namespace:

- a Secret holding the JIT config (key `jitconfig`), created first;
- a Pod (`restartPolicy: Never`) running the runner image, with `ACTIONS_RUNNER_INPUT_JITCONFIG`
  taken from that Secret by `secretKeyRef`: never a plain value in the pod's spec;
- then the Secret gets an owner reference to the Pod, so Kubernetes deletes it with the Pod.
  (The Secret comes first so that the pod never starts without it: the kubelet would retry
  only after its back-off. A listener killed between the two calls leaves a Secret without
  an owner; the Role does not let the listener list secrets, so it is not found again.)

Both carry labels for the scale set, the runner name and id (sanitised to what Kubernetes
allows; the real names are in annotations). A watch on this scale set's pods keeps what
`running()` answers; a pod whose runner exited (its job done, or the pod failed) is deleted
with its Secret. At start, `adopt()` lists the pods left from an earlier run by label.

API calls (namespaced, all under `/api/v1/namespaces/{ns}`): `POST secrets`, `POST pods`,
`PATCH secrets/{name}`, `DELETE pods/{name}`, `DELETE secrets/{name}`, `GET pods?labelSelector=...`
and its `watch=true`; `examples/deploy/role.yaml` grants exactly these. Runs on asyncio and
trio (lightkube's httpx is anyio-based; only its exec credential plugins need asyncio).
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import logging
import re
import shlex
from collections.abc import Awaitable, Mapping, Sequence
from contextlib import AsyncExitStack, aclosing
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import anyio
import attrs
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.config import client_adapter
from lightkube.config.kubeconfig import SingleConfig
from lightkube.core.exceptions import ConfigError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Pod, Secret
from lightkube.types import PatchType

import actions_scaleset as asc

from .provisioner import JITCONFIG_ENV, RUNNER_NAME_ENV, NewRunner, ProvisionerError, RunnerHandle
from .settings import DEFAULT_DOCKER_COMMAND, DEFAULT_DOCKER_IMAGE, ProvisionerSettings

__all__ = ["KubernetesProvisioner", "label_value", "load_pod_template", "pod_manifest", "resource_name"]

logger = logging.getLogger("listener.kubernetes")

T = TypeVar("T")

SCALE_SET_LABEL: Final = "actions-scaleset/scale-set"
RUNNER_NAME_LABEL: Final = "actions-scaleset/runner-name"
RUNNER_ID_LABEL: Final = "actions-scaleset/runner-id"
"""Labels: the names as Kubernetes allows them. Annotations of the same keys hold the names as they are."""
JIT_KEY: Final = "jitconfig"
CONTAINER: Final = "runner"
"""The runner's container, as ARC names it; the pod template's container of that name is merged with it."""
TIMEOUT: Final = 30.0
WATCH_RETRY: Final = 1.0
WATCH_RETRY_MAX: Final = 30.0
SERVER_TIMEOUT: Final = 300
"""The API server closes each watch after this many seconds; lightkube opens the next one."""
WATCH_RENEW: Final = 900.0
"""How long one watch (lightkube's reopened requests) lasts before the pods are listed again."""
SERVICE_ACCOUNT_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
yaml: Any = importlib.import_module("yaml")  # lightkube's dependency; no type stubs here
_HTTP_ERROR: Final[type[Exception]] = vars(client_adapter)["httpx"].HTTPError
"""The HTTP errors of the httpx lightkube uses (`httpx` in lightkube 0.x, `httpx2` in 1.x)."""


# ---------------------------------------------------------------------- names and manifests


def _hashed(text: str, safe: str, limit: int) -> str:
    """`safe`, or when it differs from `text` or is too long, cut and made unique by a hash of `text`."""
    if safe == text and len(safe) <= limit:
        return safe
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    head = safe[: limit - len(digest) - 1].strip("-_.")
    return f"{head}-{digest}" if head else digest


def resource_name(runner_name: str) -> str:
    """The runner's name as a pod or secret name: a DNS-1123 label (`[a-z0-9-]`, up to 63)."""
    safe = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", runner_name.lower())).strip("-")
    return _hashed(runner_name, safe, 63)


def label_value(text: str) -> str:
    """`text` as a label value: up to 63 of `[A-Za-z0-9_.-]`, starting and ending alphanumeric."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", text).strip("-_.")
    return _hashed(text, safe, 63)


def load_pod_template(path: Path) -> dict[str, Any]:
    """A Pod manifest (or just its `spec` and `metadata`) from a YAML file; raises ProvisionerError."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProvisionerError(f"pod template {path}: cannot read it ({exc.strerror or exc})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ProvisionerError(f"pod template {path}: not valid YAML{line}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict) or not all(
        isinstance(loaded.get(key, {}), dict) for key in ("metadata", "spec")
    ):
        raise ProvisionerError(
            f"pod template {path}: must be a Pod manifest, a mapping with metadata: and spec:"
        )
    kind = loaded.get("kind", "Pod")
    if kind != "Pod":
        raise ProvisionerError(f"pod template {path}: its kind is {kind!r}; give a Pod (kind: Pod)")
    probe = NewRunner("probe-0", 0, "probe", asc.Secret("probe"))
    try:  # as it will be sent: the runner container merged in
        Pod.from_dict(pod_manifest(probe, ProvisionerSettings(), loaded, "default"))
    except Exception as exc:  # noqa: BLE001 - whatever the models refuse, said in one line
        reason = " ".join(str(exc).split())[:200]
        raise ProvisionerError(f"pod template {path}: not a valid Pod ({reason})") from None
    return loaded


def _runner_command(
    settings: ProvisionerSettings, image: str, template: Mapping[str, Any]
) -> list[str] | None:
    if settings.runner_command is not None:
        return shlex.split(settings.runner_command)
    if "command" in template:
        return None  # the template's own
    return [DEFAULT_DOCKER_COMMAND] if image == DEFAULT_DOCKER_IMAGE else None


def pod_manifest(
    runner: NewRunner, settings: ProvisionerSettings, template: Mapping[str, Any], namespace: str
) -> dict[str, Any]:
    """The runner's Pod: the template, merged with the runner container, labels and annotations.

    The template's container named `runner` (added when it has none) gets the image (the template's,
    else `--docker-image`), the command and the environment; its other containers are kept.
    The JIT config is a `secretKeyRef` to the runner's Secret, never a value.
    """
    pod = copy.deepcopy(dict(template))
    name = resource_name(runner.name)
    metadata = pod.setdefault("metadata", {})
    metadata.update(name=name, namespace=namespace)
    metadata.pop("generateName", None)
    metadata["labels"] = {**(metadata.get("labels") or {}), **_labels(runner)}
    metadata["annotations"] = {**(metadata.get("annotations") or {}), **_annotations(runner)}
    spec = pod.setdefault("spec", {})
    spec["restartPolicy"] = "Never"  # a runner's JIT config is used once: never run it again
    spec.setdefault("automountServiceAccountToken", False)  # workflows get no API token unless asked
    containers = spec.setdefault("containers", [])
    container = next((c for c in containers if c.get("name") == CONTAINER), None)
    if container is None:
        container = {"name": CONTAINER}
        containers.insert(0, container)
    image = container.setdefault("image", settings.docker_image)
    command = _runner_command(settings, image, container)
    if command is not None:
        container["command"] = command
        container.pop("args", None)
    ours = {JITCONFIG_ENV, RUNNER_NAME_ENV}
    container["env"] = [
        *(e for e in container.get("env") or [] if e.get("name") not in ours),
        {"name": JITCONFIG_ENV, "valueFrom": {"secretKeyRef": {"name": name, "key": JIT_KEY}}},
        {"name": RUNNER_NAME_ENV, "value": runner.name},
    ]
    pod.update(apiVersion="v1", kind="Pod")
    return pod


def _labels(runner: NewRunner) -> dict[str, str]:
    return {
        SCALE_SET_LABEL: label_value(runner.scale_set),
        RUNNER_NAME_LABEL: label_value(runner.name),
        RUNNER_ID_LABEL: str(runner.id),
    }


def _annotations(runner: NewRunner) -> dict[str, str]:
    return {SCALE_SET_LABEL: runner.scale_set, RUNNER_NAME_LABEL: runner.name}


def _secret_manifest(runner: NewRunner, namespace: str) -> Secret:
    return Secret(
        metadata=ObjectMeta(
            name=resource_name(runner.name),
            namespace=namespace,
            labels=_labels(runner),
            annotations=_annotations(runner),
        ),
        type="Opaque",
        stringData={JIT_KEY: runner.jit_config.get_secret_value()},
    )


# ---------------------------------------------------------------------- what the API says


@attrs.frozen
class _Seen:
    """One of this scale set's pods, as the last list or watch event showed it."""

    handle: RunnerHandle | None
    """None when its labels are not a runner's."""
    done: bool
    """Its runner exited (the pod succeeded or failed, or the runner container terminated)."""
    deleting: bool


def _seen(pod: Pod) -> _Seen:
    metadata = pod.metadata
    name = metadata.name if metadata is not None and metadata.name else ""
    labels = (metadata.labels if metadata is not None else None) or {}
    annotations = (metadata.annotations if metadata is not None else None) or {}
    runner_name = annotations.get(RUNNER_NAME_LABEL)
    runner_id = labels.get(RUNNER_ID_LABEL)
    handle = None
    if runner_name and runner_id and re.fullmatch(r"[0-9]+", runner_id):
        handle = RunnerHandle(runner_name, int(runner_id), ref=name)
    status = pod.status
    done = status is not None and status.phase in ("Succeeded", "Failed")
    for container in (status.containerStatuses if status is not None else None) or []:
        if container.name == CONTAINER and container.state is not None and container.state.terminated:
            done = True  # sidecars may keep the pod running after the runner exited
    deleting = metadata is not None and metadata.deletionTimestamp is not None
    return _Seen(handle, done, deleting)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ApiError):
        status = exc.status
        message = " ".join((status.message or "").split())[:300]
        reason = f"{status.reason}, " if status.reason else ""
        return f"{message} ({reason}HTTP {status.code})" if message else f"HTTP {status.code}"
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _status(exc: BaseException) -> int | None:
    return exc.status.code if isinstance(exc, ApiError) else None


# ---------------------------------------------------------------------- the provisioner


class KubernetesProvisioner:
    """A `Provisioner` that runs each runner in its own pod. Used as `async with`.

    `client` (a lightkube `AsyncClient`) and `namespace` are for tests and embedding; without
    them the kubeconfig from `settings.kubeconfig` is used, or else the in-cluster service
    account (then `KUBECONFIG`, then `~/.kube/config`).
    """

    def __init__(
        self,
        settings: ProvisionerSettings,
        scale_set: str,
        *,
        client: AsyncClient | None = None,
        namespace: str | None = None,
        watch_retry: float = WATCH_RETRY,
    ) -> None:
        self._settings, self._scale_set = settings, scale_set
        self._template = load_pod_template(settings.pod_template) if settings.pod_template else {}
        self._given = client
        self._config: SingleConfig | None = None
        if client is None:
            self._config = _kube_config(settings.kubeconfig)
        chosen = namespace or settings.namespace
        if chosen is None and client is not None:
            chosen = client.namespace
        if chosen is None and self._config is not None:
            chosen = _default_namespace(self._config)
        self.namespace: str = chosen or "default"
        self._selector: dict[str, Any] = {SCALE_SET_LABEL: label_value(scale_set)}
        self._watch_retry = watch_retry
        self._client: AsyncClient | None = None
        self._stack: AsyncExitStack | None = None
        self._pods: dict[str, _Seen] = {}
        self._synced = False
        self._cleaning: set[str] = set()
        self._fresh: dict[str, tuple[RunnerHandle, int]] = {}
        """Pods this provisioner created that no list or watch event has shown yet, and when (`_created`)."""
        self._created = 0
        self.watches = 0
        """Watches opened: 1, plus one each time a watch dropped and was opened again."""

    def __repr__(self) -> str:
        return f"KubernetesProvisioner({self._scale_set!r}, namespace={self.namespace!r})"

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            if self._given is not None:
                self._client = self._given
            else:
                self._client = AsyncClient(
                    self._config, namespace=self.namespace, field_manager="actions-scaleset"
                )
                stack.push_async_callback(self._client.close)
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)  # runs first: the watch ends, then the client closes
            tg.start_soon(self._watch)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        self._client = None

    # ------------------------------------------------------------------ Provisioner

    async def start(self, runner: NewRunner) -> RunnerHandle:
        try:
            return await self._start(runner)
        except ProvisionerError as exc:  # the API may echo what it was sent: never the JIT config
            raise exc.without(runner.jit_config) from None

    async def _start(self, runner: NewRunner) -> RunnerHandle:
        client, name = self._http(), resource_name(runner.name)
        pod_body = Pod.from_dict(pod_manifest(runner, self._settings, self._template, self.namespace))
        await self._call(f"create secret {name}", client.create(_secret_manifest(runner, self.namespace)))
        try:
            pod = await self._call(f"create pod {name}", client.create(pod_body))
            uid = _uid(pod, name)
            owner = {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid, "blockOwnerDeletion": False}
            patch = {"metadata": {"ownerReferences": [owner]}}
            await self._call(
                f"give secret {name} to its pod",
                client.patch(Secret, name, patch, namespace=self.namespace, patch_type=PatchType.MERGE),
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._delete(name, quiet=True)
            raise
        handle = RunnerHandle(runner.name, runner.id, ref=name)
        self._created += 1
        self._fresh[name] = (handle, self._created)  # running, until a list or the watch says otherwise
        return handle

    async def stop(self, handle: RunnerHandle) -> None:
        self._fresh.pop(handle.ref, None)
        await self._delete(handle.ref)

    async def running(self) -> Sequence[RunnerHandle]:
        if not self._synced:  # the watch has not listed yet: ask once
            await self._list()
        alive = [seen.handle for seen in self._pods.values() if seen.handle is not None and _alive(seen)]
        return alive + [handle for name, (handle, _) in self._fresh.items() if name not in self._pods]

    async def adopt(self) -> Sequence[RunnerHandle]:
        await self._list()
        adopted = []
        for name, seen in list(self._pods.items()):
            if _alive(seen) and seen.handle is not None:
                adopted.append(seen.handle)
            elif seen.done and not seen.deleting:
                logger.info("deleting leftover pod %s (its runner exited)", name)
                await self._delete(name, quiet=True)
        return adopted

    # ------------------------------------------------------------------ the watch

    async def _list(self) -> str | None:
        """List this scale set's pods into the cache; the list's resourceVersion, to watch from."""
        client = self._http()
        what = f"list the pods of scale set {self._scale_set} in namespace {self.namespace}"

        async def listed() -> tuple[dict[str, _Seen], str | None]:
            pods = client.list(Pod, namespace=self.namespace, labels=self._selector)
            found = {
                pod.metadata.name: _seen(pod) async for pod in pods if pod.metadata and pod.metadata.name
            }
            try:
                return found, pods.resourceVersion
            except Exception:  # noqa: BLE001 - none sent (NotReadyError): watch from now
                return found, None

        created_before = self._created
        found, version = await self._call(what, listed())
        self._pods = found
        # a pod created before this list began is in it, or gone; one created since may not be yet
        self._fresh = {name: fresh for name, fresh in self._fresh.items() if fresh[1] > created_before}
        self._synced = True
        return version

    async def _watch(self) -> None:
        """Keep `_pods` current for ever: list, watch from there; when the watch drops, again after a wait."""
        delay = self._watch_retry
        while True:
            try:
                version = await self._list()
                await self._clean_done()
                self.watches += 1
                events = self._http().watch(
                    Pod,
                    namespace=self.namespace,
                    labels=self._selector,
                    resource_version=version,
                    server_timeout=SERVER_TIMEOUT,
                )
                # lightkube reopens a watch the server ended; a connection that died unnoticed
                # (no read timeout on a watch) is given up after WATCH_RENEW, and listed again
                with anyio.move_on_after(WATCH_RENEW):
                    async with aclosing(events):  # type: ignore[type-var]
                        async for kind, pod in events:
                            delay = self._watch_retry
                            self._event(kind, pod)
                            await self._clean_done()
                continue
            except Exception as exc:  # noqa: BLE001 - the watch goes on whatever happens; running() relists
                logger.warning(
                    "the watch on pods of %s dropped (%s); again in %.0f s",
                    self._scale_set,
                    _reason(exc),
                    delay,
                )
            await anyio.sleep(delay)
            delay = min(delay * 2, WATCH_RETRY_MAX)

    def _event(self, kind: str, pod: Pod) -> None:
        name = pod.metadata.name if pod.metadata is not None else None
        if not name:
            return
        self._fresh.pop(name, None)
        if kind == "DELETED":
            self._pods.pop(name, None)
            self._cleaning.discard(name)
        elif kind in ("ADDED", "MODIFIED"):
            self._pods[name] = _seen(pod)

    async def _clean_done(self) -> None:
        """Delete the pods whose runner exited, and their secrets."""
        for name, seen in list(self._pods.items()):
            if seen.done and not seen.deleting and name not in self._cleaning:
                self._cleaning.add(name)
                logger.info("runner pod %s exited; deleting it and its secret", name)
                if not await self._delete(name, quiet=True):
                    self._cleaning.discard(name)  # tried again on the next event or list

    # ------------------------------------------------------------------ calls

    async def _delete(self, name: str, *, quiet: bool = False) -> bool:
        """Delete a runner's pod and its secret; gone already (404) is fine. False: quiet, and it failed."""
        client = self._http()
        try:
            for kind, what in ((Pod, "pod"), (Secret, "secret")):
                try:
                    await self._call(
                        f"delete {what} {name}", client.delete(kind, name, namespace=self.namespace)
                    )
                except ProvisionerError as exc:
                    if _status(exc.__cause__ or exc) != 404:
                        raise
        except ProvisionerError as exc:
            if not quiet:
                raise
            logger.warning("%s", exc)
            return False
        return True

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        """One API call, bounded in time; a refusal or a transport error is a one-line ProvisionerError."""
        try:
            with anyio.fail_after(TIMEOUT):
                return await call
        except ApiError as exc:
            raise ProvisionerError(f"{what}: {_explain(exc, self.namespace)}") from exc
        except _HTTP_ERROR as exc:
            raise ProvisionerError(f"{what}: cannot reach the Kubernetes API server: {_reason(exc)}") from exc
        except TimeoutError:
            raise ProvisionerError(
                f"{what}: the Kubernetes API server did not answer within {TIMEOUT:.0f} s"
            ) from None

    def _http(self) -> AsyncClient:
        if self._client is None:
            raise RuntimeError(
                "use KubernetesProvisioner as `async with KubernetesProvisioner(...) as provisioner:`"
            )
        return self._client


def _uid(pod: Pod, name: str) -> str:
    uid = pod.metadata.uid if pod.metadata is not None else None
    if not uid:
        raise ProvisionerError(f"create pod {name}: the API server's answer has no uid")
    return uid


def _alive(seen: _Seen) -> bool:
    return seen.handle is not None and not seen.done and not seen.deleting


def _explain(exc: ApiError, namespace: str) -> str:
    code = _status(exc)
    if code == 403:
        return (
            f"forbidden: {_reason(exc)}; the listener's service account needs the Role in "
            f"examples/deploy/role.yaml, bound in namespace {namespace}"
        )
    if code == 409:
        return f"it already exists: {_reason(exc)}; another listener may serve this scale set"
    if code == 401:
        return f"the API server refused the credentials: {_reason(exc)}; check --kubeconfig"
    return _reason(exc)


def _kube_config(path: Path | None) -> SingleConfig:
    """The kubeconfig file's current context, or else the in-cluster service account (then KUBECONFIG,
    ~/.kube/config)."""
    try:
        config = (KubeConfig.from_file(path) if path is not None else KubeConfig.from_env()).get()
    except ConfigError as exc:
        where = (
            f"--kubeconfig {path}" if path is not None else "no in-cluster service account and no kubeconfig"
        )
        raise ProvisionerError(
            f"{where}: {_reason(exc)}; give --kubeconfig FILE, or run inside the cluster"
        ) from None
    except Exception as exc:  # noqa: BLE001 - unreadable, not YAML, or not a kubeconfig's shape
        raise ProvisionerError(f"--kubeconfig {path}: not a usable kubeconfig ({_reason(exc)})") from None
    if config is None:
        raise ProvisionerError(f"--kubeconfig {path}: it has no current context; set current-context")
    return config


def _default_namespace(config: SingleConfig) -> str:
    """The in-cluster namespace file, else the kubeconfig context's namespace (itself `default` if unset)."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or config.namespace
    except OSError:
        return config.namespace
