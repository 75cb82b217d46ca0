"""Prometheus metrics: ARC's `gha_*` set from `asc.PrometheusMetrics`, plus the provisioner's starts.

`gha_provisioner_starts_total{result="success"|"failure"}` counts starts and
`gha_provisioner_start_seconds` times them, from minting the JIT config to compute
running. With several scale sets every metric carries a `scale_set` label.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import actions_scaleset as asc

from .scaler import StopReason
from .settings import ScaleSetSettings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["Metrics", "ProvisionerMetrics"]

START_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class ProvisionerMetrics:
    """One scale set's provisioner starts (a `scaler.StartRecorder`)."""

    def __init__(self, starts: Any, seconds: Any, stops: Any, labels: tuple[str, ...]) -> None:
        self._success = starts.labels("success", *labels)
        self._failure = starts.labels("failure", *labels)
        self._seconds = seconds.labels(*labels) if labels else seconds
        self._stops = stops
        self._labels = labels

    def record_start(self, ok: bool, seconds: float) -> None:
        (self._success if ok else self._failure).inc()
        if ok:
            self._seconds.observe(seconds)

    def record_stop(self, reason: StopReason) -> None:
        self._stops.labels(reason, *self._labels).inc()


class Metrics:
    """The registry every scale set's metrics share, and the HTTP server that exposes it."""

    def __init__(self, config: asc.GitHubConfig, *, labelled: bool) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.config = config
        self.labelled = labelled
        """Several scale sets: every metric gets a `scale_set` label."""
        self.registry: CollectorRegistry = CollectorRegistry()
        extra = ("scale_set",) if labelled else ()
        self._starts = Counter(
            "gha_provisioner_starts",
            "Runner starts by the provisioner, by result",
            ("result", *extra),
            registry=self.registry,
        )
        self._seconds = Histogram(
            "gha_provisioner_start_seconds",
            "From minting a runner's JIT config to its compute running",
            extra,
            buckets=START_BUCKETS,
            registry=self.registry,
        )
        self._stops = Counter(
            "gha_provisioner_stops",
            "Runner compute stopped, or gone on its own, by reason",
            ("reason", *extra),
            registry=self.registry,
        )
        self._server: Any = None

    def for_scale_set(self, settings: ScaleSetSettings) -> tuple[asc.PrometheusMetrics, ProvisionerMetrics]:
        labels = {"scale_set": settings.name} if self.labelled else {}
        listener = asc.PrometheusMetrics(
            self.config,
            settings.name,
            min_runners=settings.min_runners,
            max_runners=settings.max_runners,
            registry=self.registry,
            extra_labels=labels,
        )
        return listener, ProvisionerMetrics(self._starts, self._seconds, self._stops, tuple(labels.values()))

    def serve(self, host: str, port: int) -> int:
        """Serve `/metrics` on a thread; return the port (useful with port 0). OSError if it is taken."""
        from prometheus_client import start_http_server

        self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
