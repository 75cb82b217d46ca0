"""PrometheusMetrics: ARC's gha_* metric set (docs/protocol.md, "Listener semantics")."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import actions_scaleset as asc
from actions_scaleset.metrics import DEFAULT_BUCKETS, PrometheusMetrics, seconds_between
from actions_scaleset.models import structure
from tests.support import load_fixture

SCALE_SET = {
    "enterprise": "",
    "organization": "octo-org",
    "repository": "",
    "name": "arc-runner-set",
    "namespace": "ns",
}


def metrics() -> PrometheusMetrics:
    config = asc.GitHubConfig.parse("https://github.com/octo-org", env={})
    return PrometheusMetrics(
        config, "arc-runner-set", min_runners=1, max_runners=10, namespace="ns", registry=CollectorRegistry()
    )


def sample(m: PrometheusMetrics, name: str, labels: dict[str, str]) -> float | None:
    return m.registry.get_sample_value(name, labels)


def fixture_message() -> asc.RunnerScaleSetMessage:
    return structure(load_fixture("message_job_messages.json"), asc.RunnerScaleSetMessage)


def test_statistics_and_static_gauges_carry_the_scale_set_labels() -> None:
    m = metrics()
    message = fixture_message()
    assert message.statistics is not None
    m.record_statistics(message.statistics)
    m.record_desired_runners(4)
    assert sample(m, "gha_assigned_jobs", SCALE_SET) == message.statistics.total_assigned_jobs
    assert sample(m, "gha_idle_runners", SCALE_SET) == message.statistics.total_idle_runners
    assert sample(m, "gha_min_runners", SCALE_SET) == 1
    assert sample(m, "gha_max_runners", SCALE_SET) == 10
    assert sample(m, "gha_desired_runners", SCALE_SET) == 4


def job_labels(job: Any, **extra: str) -> dict[str, str]:
    return {
        "enterprise": "",
        "organization": job.owner_name,
        "repository": job.repository_name,
        "job_name": job.job_display_name,
        "event_name": job.event_name,
        **extra,
    }


def test_job_started_counts_and_observes_startup_time() -> None:
    m = metrics()
    (started,) = fixture_message().jobs_started
    m.record_job_started(started)
    labels = job_labels(started)
    assert sample(m, "gha_started_jobs_total", labels) == 1
    startup = seconds_between(started.scale_set_assign_time, started.runner_assign_time)
    assert startup is not None
    assert sample(m, "gha_job_startup_duration_seconds_sum", labels) == startup


def test_completed_jobs_are_counted_by_result_but_never_assigned_ones_are_skipped() -> None:
    # fixture README: one JobCompleted succeeded, one canceled before any runner took it
    m = metrics()
    succeeded, canceled = fixture_message().jobs_completed
    assert canceled.runner_assign_time is None
    m.record_job_completed(succeeded)
    m.record_job_completed(canceled)
    assert sample(m, "gha_completed_jobs_total", job_labels(succeeded, job_result=succeeded.result)) == 1
    assert sample(m, "gha_completed_jobs_total", job_labels(canceled, job_result=canceled.result)) is None
    execution = seconds_between(succeeded.runner_assign_time, succeeded.finish_time)
    labels = job_labels(succeeded, job_result=succeeded.result)
    assert sample(m, "gha_job_execution_duration_seconds_sum", labels) == execution


def test_default_buckets_are_arcs() -> None:
    assert DEFAULT_BUCKETS[:4] == (0.01, 0.05, 0.1, 0.5)
    assert DEFAULT_BUCKETS[-6:] == (900, 1200, 1800, 2400, 3000, 3600)
    assert list(DEFAULT_BUCKETS) == sorted(DEFAULT_BUCKETS)


@pytest.mark.parametrize(("start", "end", "seconds"), [(None, None, None), (0, 90.9, 90), (10, 5, 0)])
def test_seconds_between_is_whole_seconds(
    start: float | None, end: float | None, seconds: int | None
) -> None:
    from datetime import UTC, datetime

    def at(t: float | None) -> datetime | None:
        return None if t is None else datetime.fromtimestamp(t, UTC)

    assert seconds_between(at(start), at(end)) == seconds


def test_repr_names_the_scale_set_and_shows_nothing_private() -> None:
    assert (
        repr(metrics()) == "PrometheusMetrics(organization='octo-org', name='arc-runner-set', namespace='ns')"
    )


def test_buckets_given_as_a_str_are_a_type_error() -> None:
    config = asc.GitHubConfig.parse("https://github.com/octo-org", env={})
    with pytest.raises(TypeError, match="buckets is a sequence of upper bounds"):
        PrometheusMetrics(config, "arc-runner-set", buckets="125", registry=CollectorRegistry())  # type: ignore[arg-type]


def test_many_scale_sets_share_one_registry_told_apart_by_name() -> None:
    registry = CollectorRegistry()
    config = asc.GitHubConfig.parse("https://github.com/octo-org", env={})
    linux = PrometheusMetrics(config, "linux", max_runners=10, registry=registry)
    arm = PrometheusMetrics(config, "arm", max_runners=4, registry=registry)
    linux.record_desired_runners(3)
    arm.record_desired_runners(1)
    labels = {"enterprise": "", "organization": "octo-org", "repository": "", "namespace": ""}
    assert registry.get_sample_value("gha_desired_runners", {**labels, "name": "linux"}) == 3
    assert registry.get_sample_value("gha_desired_runners", {**labels, "name": "arm"}) == 1
    assert registry.get_sample_value("gha_max_runners", {**labels, "name": "arm"}) == 4
    (started,) = fixture_message().jobs_started
    linux.record_job_started(started)
    arm.record_job_started(started)
    assert registry.get_sample_value("gha_started_jobs_total", job_labels(started)) == 2  # ARC's job labels
    arm.remove()
    assert registry.get_sample_value("gha_desired_runners", {**labels, "name": "arm"}) is None
    assert registry.get_sample_value("gha_desired_runners", {**labels, "name": "linux"}) == 3
    arm.remove()  # twice is harmless
    with pytest.raises(ValueError, match="same buckets"):
        PrometheusMetrics(config, "other", registry=registry, buckets=(1.0, 2.0))


def test_available_and_acquired_jobs_are_exported() -> None:
    m = metrics()
    m.record_statistics(asc.RunnerScaleSetStatistic(total_available_jobs=3, total_acquired_jobs=2))
    assert sample(m, "gha_available_jobs", SCALE_SET) == 3
    assert sample(m, "gha_acquired_jobs", SCALE_SET) == 2


def test_extra_labels_keep_each_scale_sets_job_metrics_apart_in_a_shared_registry() -> None:
    registry = CollectorRegistry()
    config = asc.GitHubConfig.parse("https://github.com/acme", env={})
    linux = PrometheusMetrics(config, "linux", registry=registry, extra_labels={"scale_set": "linux"})
    arm = PrometheusMetrics(config, "arm", registry=registry, extra_labels={"scale_set": "arm"})
    (started,) = fixture_message().jobs_started
    linux.record_job_started(started)
    linux.record_job_started(started)
    arm.record_job_started(started)
    assert (
        registry.get_sample_value("gha_started_jobs_total", {**job_labels(started), "scale_set": "linux"})
        == 2
    )
    assert (
        registry.get_sample_value("gha_started_jobs_total", {**job_labels(started), "scale_set": "arm"}) == 1
    )
    arm.record_desired_runners(4)
    gauge_labels = {"enterprise": "", "organization": "acme", "repository": "", "namespace": ""}
    assert (
        registry.get_sample_value("gha_desired_runners", {**gauge_labels, "name": "arm", "scale_set": "arm"})
        == 4
    )
    assert "scale_set='arm'" in repr(arm)
    with pytest.raises(ValueError, match="same extra_labels"):
        PrometheusMetrics(config, "x", registry=registry)
    with pytest.raises(ValueError, match="redefine"):
        PrometheusMetrics(config, "x", extra_labels={"name": "y"})
