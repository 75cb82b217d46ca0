"""What the listener was asked to do: plain frozen values, checked once, built by `config.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

import attrs

import actions_scaleset as asc

__all__ = [
    "DEFAULT_DOCKER_COMMAND",
    "DEFAULT_DOCKER_IMAGE",
    "EXIT_CREDENTIALS",
    "EXIT_USAGE",
    "LogFormat",
    "ProvisionerKind",
    "ProvisionerSettings",
    "ScaleSetSettings",
    "Settings",
    "UsageError",
]

EXIT_USAGE: Final = 2
"""A user mistake: a bad flag, URL, credential, config file or missing extra."""
EXIT_CREDENTIALS: Final = 3
"""GitHub refused the credentials at start (401/403)."""

DEFAULT_DOCKER_IMAGE: Final = "ghcr.io/actions/actions-runner:latest"
DEFAULT_DOCKER_COMMAND: Final = "/home/runner/run.sh"
"""What ARC runs in GitHub's runner image; `run.sh` reads ACTIONS_RUNNER_INPUT_JITCONFIG."""

ProvisionerKind = Literal["command", "docker", "kubernetes", "ec2", "simulate"]
LogFormat = Literal["text", "json"]


class UsageError(Exception):
    """A mistake the user can fix; its message is one line that says how. Exit code 2."""


@attrs.frozen
class ProvisionerSettings:
    """How one scale set's runners get compute."""

    kind: ProvisionerKind = "command"
    runner_command: str | None = None
    """`command`: the program run once per runner (required). `docker`: the container's command."""
    docker_image: str = DEFAULT_DOCKER_IMAGE
    docker_host: str = "unix:///var/run/docker.sock"
    """Where the Docker Engine API listens (`DOCKER_HOST`); only `unix://` sockets."""
    work_folder: str = "_work"
    """The runner's work folder, sent with each JIT config request (`workFolder`)."""
    namespace: str | None = None
    """`kubernetes`: where runner pods go; None: the in-cluster namespace, else the kubeconfig's."""
    pod_template: Path | None = None
    """`kubernetes`: a Pod manifest (YAML) merged with each runner's pod."""
    kubeconfig: Path | None = None
    """`kubernetes`: the kubeconfig file (`KUBECONFIG`); None inside a cluster: its service account."""
    launch_template: str | None = None
    """`ec2`: the launch template (name or `lt-...` id) each instance starts from (required)."""
    subnets: tuple[str, ...] = ()
    """`ec2`: subnets to spread instances over; empty: the launch template's."""
    spot: bool = False
    """`ec2`: ask for spot instances."""
    jit_via_ssm: bool = False
    """`ec2`: hand the JIT config over through SSM, not in the user data."""
    boot_timeout: float = 300.0
    """`ec2`: how long an instance may take to come up."""
    aws_region: str | None = None
    aws_endpoint_url: str | None = None
    """`ec2`: another endpoint for the AWS APIs (a local stack, for tests)."""


@attrs.frozen
class ScaleSetSettings:
    """One scale set served by this process."""

    name: str
    runner_group: str = "default"
    labels: tuple[str, ...] = ()
    """Empty: the scale set's name is its only label."""
    min_runners: int = 0
    max_runners: int = 10
    provisioner: ProvisionerSettings = ProvisionerSettings()


@attrs.frozen
class Settings:
    """Everything the listener needs. `url` and `credentials` are None only with `--simulate`."""

    url: str | None
    credentials: asc.Credentials | None
    scale_sets: tuple[ScaleSetSettings, ...]
    ca_file: Path | None = None
    metrics_addr: tuple[str, int] | None = None
    log_level: str = "info"
    """debug, info, warning or error."""
    log_format: LogFormat = "text"
    shutdown_timeout: float = 30.0
    state_dir: Path = Path(".listener-state")
    """Where each scale set's ledger of registered runners is kept, to remove orphans at start."""
    simulate: bool = False
    """The offline demo: FakeGitHub on loopback, a seeded workload, simulated runners."""
    chaos: bool = False
    """With `simulate`: inject faults (5xx bursts, dropped connections, a 409, token expiry, deletion)."""
    jobs: int = 40
    """With `simulate`: how many jobs the seeded workload queues."""
