"""Prometheus metrics: ARC's `gha_*` set per scale set (`asc.PrometheusMetrics`), the
provisioner's starts (as the reference listener exports them), and the API's own requests.

- `gha_provisioner_starts_total{result}`, `gha_provisioner_start_seconds`: as in the listener;
- `provisioner_api_requests_total{method, route, status}` and
  `provisioner_api_request_seconds{method, route}`: `route` is the path template
  (`/api/v1/runners/{name}`), never a runner's name;
- `provisioner_api_runners{state}`: the runners the API started, by state;
- `provisioner_api_event_subscribers`: open SSE streams and WebSockets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import actions_scaleset as asc

from ..listener.metrics import START_BUCKETS
from .state import ScaleSetRecord

__all__ = ["ApiMetrics"]

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
STATES = ("starting", "idle", "busy", "finished", "exited", "failed")


class ApiMetrics:
    def __init__(self, max_runners: int) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.max_runners = max_runners
        self.registry: Any = CollectorRegistry()
        self._starts = Counter(
            "gha_provisioner_starts", "Runner starts by the provisioner, by result", ("result",),
            registry=self.registry,
        )  # fmt: skip
        self._start_seconds = Histogram(
            "gha_provisioner_start_seconds",
            "From minting a runner's JIT config to the runner online",
            buckets=START_BUCKETS,
            registry=self.registry,
        )
        self._requests = Counter(
            "provisioner_api_requests", "API requests by route and status", ("method", "route", "status"),
            registry=self.registry,
        )  # fmt: skip
        self._request_seconds = Histogram(
            "provisioner_api_request_seconds", "API request durations", ("method", "route"),
            buckets=REQUEST_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self._runners = Gauge(
            "provisioner_api_runners", "Runners the API started, by state", ("state",), registry=self.registry
        )
        self._subscribers = Gauge(
            "provisioner_api_event_subscribers", "Open SSE streams and WebSockets", registry=self.registry
        )

    def for_scale_set(self, record: ScaleSetRecord) -> asc.PrometheusMetrics:
        return asc.PrometheusMetrics(
            asc.GitHubConfig.parse(record.config_url, env={}),
            record.name,
            max_runners=self.max_runners,
            registry=self.registry,
        )

    def record_start(self, ok: bool, seconds: float) -> None:
        self._starts.labels("success" if ok else "failure").inc()
        if ok:
            self._start_seconds.observe(seconds)

    def record_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.labels(method, route, str(status)).inc()
        self._request_seconds.labels(method, route).observe(seconds)

    def render(self, runners: Mapping[str, int], subscribers: int) -> bytes:
        from prometheus_client import generate_latest

        for state in STATES:
            self._runners.labels(state).set(runners.get(state, 0))
        self._subscribers.set(subscribers)
        return bytes(generate_latest(self.registry))
