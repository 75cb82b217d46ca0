"""`PrometheusMetrics`: the listener's `MetricsRecorder` as ARC's `gha_*` metrics (docs/protocol.md,
"Listener semantics").

The names, labels and buckets are ARC's (`cmd/ghalistener/metrics/metrics.go` in
actions/actions-runner-controller). Needs the `metrics` extra
(`pip install "actions-scaleset[metrics]"`); prometheus-client is imported only when a
`PrometheusMetrics` is made, and its absence raises `ModuleNotFoundError` saying so.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from .config import GitHubConfig
from .models import JobCompleted, JobStarted, RunnerScaleSetStatistic

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["DEFAULT_BUCKETS", "INSTALL_HINT", "PrometheusMetrics", "seconds_between"]

INSTALL_HINT: Final = (
    'PrometheusMetrics needs prometheus-client: pip install "actions-scaleset[metrics]" '
    '(from a checkout: pip install "./[metrics]")'
)

DEFAULT_BUCKETS: Final = (
    0.01, 0.05, 0.1, 0.5,
    *range(1, 11), 12, 15, 18, 20, 25,
    *range(30, 121, 10), *range(150, 241, 30), *range(300, 601, 60),
    900, 1200, 1800, 2400, 3000, 3600,
)  # fmt: skip
"""ARC's default histogram buckets, in seconds."""

_SCALE_SET_LABELS: Final = ("enterprise", "organization", "repository", "name", "namespace")
_JOB_LABELS: Final = ("enterprise", "organization", "repository", "job_name", "event_name")
_GAUGES: Final = {
    "available_jobs": ("Jobs waiting for the scale set to acquire them", "total_available_jobs"),
    "acquired_jobs": ("Jobs the scale set acquired, not yet assigned to a runner", "total_acquired_jobs"),
    "assigned_jobs": ("Jobs assigned to the scale set", "total_assigned_jobs"),
    "running_jobs": ("Jobs running on the scale set's runners", "total_running_jobs"),
    "registered_runners": ("Runners registered in the scale set", "total_registered_runners"),
    "busy_runners": ("Registered runners running a job", "total_busy_runners"),
    "idle_runners": ("Registered runners without a job", "total_idle_runners"),
}


def seconds_between(start: datetime | None, end: datetime | None) -> int | None:
    """Whole seconds from `start` to `end`, as ARC measures; None when either is unset."""
    if start is None or end is None:
        return None
    return max(0, int((end - start).total_seconds()))


class PrometheusMetrics:
    """A `MetricsRecorder` exporting ARC's metric set under the same names and labels.

    Scale-set metrics carry `enterprise`, `organization`, `repository` (from the config
    URL), `name` (the scale set) and `namespace`; job metrics carry the job's owner,
    repository, display name and event. Serve `registry` with prometheus-client's
    `start_http_server(port, registry=metrics.registry)`.

    Many scale sets in one process (`ListenerGroup`): give every set's
    `PrometheusMetrics` the same `registry`. They share one family per metric, each
    set's gauges told apart by `name`, as ARC's are (no label is added). Job metrics
    keep ARC's labels, which name no scale set: in a shared registry they add up over
    the sets. `remove()` stops exporting a set's gauges (after `ListenerGroup.remove`).
    The sets sharing a registry must use the same `buckets`.

    `extra_labels` adds constant labels to every metric this set records, job metrics
    included: `extra_labels={"scale_set": "linux"}` keeps each set's job counts apart in
    a shared registry. The sets sharing a registry must use the same label names.
    """

    def __init__(
        self,
        config: GitHubConfig,
        scale_set_name: str,
        *,
        min_runners: int = 0,
        max_runners: int = 0,
        namespace: str = "",
        registry: CollectorRegistry | None = None,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        extra_labels: Mapping[str, str] | None = None,
    ) -> None:
        extra = dict(extra_labels or {})
        clash = sorted(set(extra) & {*_SCALE_SET_LABELS, *_JOB_LABELS, "job_result"})
        if clash:
            raise ValueError(f"extra_labels may not redefine ARC's labels: {', '.join(clash)}")
        if isinstance(buckets, str | bytes):
            raise TypeError(
                f"buckets is a sequence of upper bounds in seconds, not a {type(buckets).__name__}"
            )
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        except ImportError as exc:
            raise ModuleNotFoundError(INSTALL_HINT, name=exc.name) from exc

        self.registry = registry if registry is not None else CollectorRegistry()
        families = _families(self.registry, tuple(buckets), tuple(extra))
        self._enterprise = config.enterprise or ""
        self._extra_values = tuple(extra.values())
        self._scale_set_values = (
            self._enterprise,
            config.organization or "",
            config.repository or "",
            scale_set_name,
            namespace,
            *self._extra_values,
        )

        if families is None:
            families = _Families(
                self.registry, tuple(buckets), tuple(extra), gauge=Gauge, counter=Counter, histogram=Histogram
            )
            _FAMILIES[self.registry] = families
        self._families = families

        def gauge(name: str) -> Any:
            return families.gauges[name].labels(*self._scale_set_values)

        self._gauges = {field: gauge(f"gha_{name}") for name, (_, field) in _GAUGES.items()}
        gauge("gha_min_runners").set(min_runners)
        gauge("gha_max_runners").set(max_runners)
        self._desired = gauge("gha_desired_runners")
        self._started = families.started
        self._completed = families.completed
        self._startup = families.startup
        self._execution = families.execution

    def __repr__(self) -> str:
        """The scale set's labels that are set: `PrometheusMetrics(organization='acme', name='linux')`."""
        labels = zip((*_SCALE_SET_LABELS, *self._families.extra), self._scale_set_values, strict=True)
        return f"PrometheusMetrics({', '.join(f'{name}={value!r}' for name, value in labels if value)})"

    def remove(self) -> None:
        """Stop exporting this scale set's gauges (its job metrics stay: they name no scale set)."""
        for family in self._families.gauges.values():
            with contextlib.suppress(KeyError):  # removed already
                family.remove(*self._scale_set_values)

    def _job_values(self, job: JobStarted | JobCompleted, *more: str) -> tuple[str, ...]:
        return (
            self._enterprise,
            job.owner_name,
            job.repository_name,
            job.job_display_name,
            job.event_name,
            *more,
            *self._extra_values,
        )

    def record_statistics(self, statistics: RunnerScaleSetStatistic) -> None:
        for field, gauge in self._gauges.items():
            gauge.set(getattr(statistics, field))

    def record_job_started(self, job: JobStarted) -> None:
        values = self._job_values(job)
        self._started.labels(*values).inc()
        startup = seconds_between(job.scale_set_assign_time, job.runner_assign_time)
        if startup is not None:
            self._startup.labels(*values).observe(startup)

    def record_job_completed(self, job: JobCompleted) -> None:
        if job.runner_assign_time is None:
            return  # cancelled before a runner took it: ARC skips these (#4472)
        values = self._job_values(job, job.result)
        self._completed.labels(*values).inc()
        execution = seconds_between(job.runner_assign_time, job.finish_time)
        if execution is not None:
            self._execution.labels(*values).observe(execution)

    def record_desired_runners(self, count: int) -> None:
        self._desired.set(count)


_STATIC_GAUGES: Final = {
    "gha_min_runners": "Minimum number of idle runners",
    "gha_max_runners": "Maximum number of runners",
    "gha_desired_runners": "Runners the scaler was asked for",
}


class _Families:
    """ARC's metric families in one registry, shared by every `PrometheusMetrics` using it."""

    def __init__(
        self,
        registry: CollectorRegistry,
        buckets: tuple[float, ...],
        extra: tuple[str, ...],
        *,
        gauge: Any,
        counter: Any,
        histogram: Any,
    ) -> None:
        self.buckets = buckets
        self.extra = extra
        documented = {f"gha_{name}": doc for name, (doc, _) in _GAUGES.items()} | _STATIC_GAUGES
        scale_set_labels = (*_SCALE_SET_LABELS, *extra)
        job_labels = (*_JOB_LABELS, *extra)
        result_labels = (*_JOB_LABELS, "job_result", *extra)
        self.gauges = {
            name: gauge(name, doc, scale_set_labels, registry=registry) for name, doc in documented.items()
        }
        self.started = counter(
            "gha_started_jobs", "Jobs started on the scale set's runners", job_labels, registry=registry
        )
        self.completed = counter("gha_completed_jobs", "Jobs completed", result_labels, registry=registry)
        self.startup = histogram(
            "gha_job_startup_duration_seconds",
            "From assignment to the scale set to a runner taking the job",
            job_labels,
            buckets=buckets,
            registry=registry,
        )
        self.execution = histogram(
            "gha_job_execution_duration_seconds",
            "From a runner taking the job to its end",
            result_labels,
            buckets=buckets,
            registry=registry,
        )


_FAMILIES: Final[weakref.WeakKeyDictionary[CollectorRegistry, _Families]] = weakref.WeakKeyDictionary()


def _families(
    registry: CollectorRegistry, buckets: tuple[float, ...], extra: tuple[str, ...]
) -> _Families | None:
    """The families already made in `registry`, if any; other `buckets` or label names are refused."""
    families = _FAMILIES.get(registry)
    if families is not None and families.extra != extra:
        raise ValueError(
            "every PrometheusMetrics sharing a registry must use the same extra_labels names: this "
            f"registry's metrics have {list(families.extra)}"
        )
    if families is not None and families.buckets != buckets:
        raise ValueError(
            "every PrometheusMetrics sharing a registry must use the same buckets: this registry's "
            f"histograms have {families.buckets}"
        )
    return families
