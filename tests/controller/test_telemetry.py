"""The telemetry module: one call per outcome sets the right series, read back from a fresh registry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from controller import telemetry
from controller.adapters.kube import ApiCall
from controller.adapters.prometheus import QueryEvent
from controller.domain import Decision, Reason

W = "Deployment/shop/checkout"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def tel(registry) -> telemetry.Telemetry:
    return telemetry.Telemetry(registry)


def make_decision(**overrides) -> Decision:
    """A planner-shaped scale-up decision: 4 -> 7 replicas, the forecast asking for 7."""
    fields = dict(
        kind="scale",
        target=W,
        from_value=4,
        to_value=7,
        reason=Reason.ForecastAboveFloor,
        message="forecast mode, q=0.9 at 95%, lead 75 s, coverage 85%",
        stages=(
            ("confidence", 85, Reason.ForecastTrusted),
            ("forecast_replicas", 7, Reason.ForecastTrusted),
            ("floor_replicas", 5, Reason.UtilizationAboveTarget),
            ("raw_replicas", 7, Reason.ForecastAboveFloor),
            ("stabilized_replicas", 7, Reason.ReadyForNewScale),
            ("rate_limited_replicas", 7, Reason.DesiredWithinRange),
            ("guarded_replicas", 7, Reason.DesiredWithinRange),
            ("desired_replicas", 7, Reason.DesiredWithinRange),
        ),
    )
    fields.update(overrides)
    return Decision(**fields)


def value(registry, name, **labels):
    return registry.get_sample_value(name, labels)


def test_record_decision_sets_every_per_decision_gauge_and_counts_it(tel, registry):
    tel.record_decision(
        W, make_decision(), forecast={0.5: 4.2, 0.9: 6.1}, lead_seconds=75.0, startup_seconds=45.0, coverage=0.8, load=3.9,
        provisioning_quantile=0.975, interval_above=0.3,
    )

    assert value(registry, "scaleahead_decisions_total", workload=W, kind="scale", reason="ForecastAboveFloor") == 1
    assert value(registry, "scaleahead_desired_replicas", workload=W) == 7
    assert value(registry, "scaleahead_current_replicas", workload=W) == 4
    assert value(registry, "scaleahead_forecast_replicas", workload=W) == 7  # from the forecast_replicas stage
    assert value(registry, "scaleahead_forecast_load", workload=W, quantile="0.5") == 4.2
    assert value(registry, "scaleahead_forecast_load", workload=W, quantile="0.9") == 6.1
    assert value(registry, "scaleahead_observed_load", workload=W) == 3.9
    assert value(registry, "scaleahead_lead_time_seconds", workload=W) == 75
    assert value(registry, "scaleahead_startup_estimate_seconds", workload=W) == 45
    assert value(registry, "scaleahead_forecast_interval_coverage_ratio", workload=W) == 0.8
    assert value(registry, "scaleahead_provisioning_quantile", workload=W) == 0.975
    assert value(registry, "scaleahead_forecast_interval_above_ratio", workload=W) == 0.3

    tel.record_decision(W, make_decision(kind="no-op", from_value=7, reason=Reason.DesiredWithinRange))
    tel.record_decision(W, make_decision())
    assert value(registry, "scaleahead_decisions_total", workload=W, kind="scale", reason="ForecastAboveFloor") == 2
    assert value(registry, "scaleahead_decisions_total", workload=W, kind="no-op", reason="DesiredWithinRange") == 1


def test_coverage_falls_back_to_the_confidence_stage(tel, registry):
    tel.record_decision(W, make_decision())  # confidence stage: 85 (percent)
    assert value(registry, "scaleahead_forecast_interval_coverage_ratio", workload=W) == pytest.approx(0.85)


def test_a_tick_without_forecast_removes_the_stale_quantile_series(tel, registry):
    tel.record_decision(W, make_decision(), forecast={0.5: 4.0, 0.9: 6.0})
    tel.record_decision(W, make_decision(), forecast={0.975: 8.0})
    assert value(registry, "scaleahead_forecast_load", workload=W, quantile="0.9") is None
    assert value(registry, "scaleahead_forecast_load", workload=W, quantile="0.975") == 8.0

    tel.record_decision(W, make_decision(), forecast=None)
    assert value(registry, "scaleahead_forecast_load", workload=W, quantile="0.975") is None


def test_the_balance_against_the_hpa_is_shown_in_hours_and_removed_when_no_longer_kept(tel, registry):
    tel.record_against_hpa(W, (-36_000.0, 7_200.0, 691_200.0))  # 10 pod-hours saved, 2 load-hours owed, of the HPA's 192
    tel.record_against_hpa("other", (1_800.0, 0.0, 3_600.0))
    assert value(registry, "scaleahead_hpa_balance_pod_hours", workload=W) == -10
    assert value(registry, "scaleahead_hpa_balance_uncovered_load_hours", workload=W) == 2
    assert value(registry, "scaleahead_hpa_reference_pod_hours", workload=W) == 192

    tel.record_against_hpa(W, None)  # the balance is no longer kept (forecast.make_up_shortfall turned off)
    for name in ("scaleahead_hpa_balance_pod_hours", "scaleahead_hpa_balance_uncovered_load_hours", "scaleahead_hpa_reference_pod_hours"):
        assert value(registry, name, workload=W) is None
    tel.record_against_hpa(W, None)  # twice: no error
    assert value(registry, "scaleahead_hpa_balance_pod_hours", workload="other") == 0.5  # the others' stay

    tel.forget_workload("other")
    assert value(registry, "scaleahead_hpa_reference_pod_hours", workload="other") is None


def test_no_metric_uses_a_label_that_prometheus_or_its_operator_sets_on_the_target(tel, registry):
    # A clash is renamed to exported_<label> at scrape time, and dashboards grouping by it then see
    # one series (the ServiceMonitor adds endpoint, namespace, pod, service, container).
    target_labels = {"endpoint", "namespace", "pod", "service", "container", "job", "instance"}
    tel.record_decision(W, make_decision(), forecast={0.5: 4.0, 0.9: 6.0})
    used = {name for family in registry.collect() for sample in family.samples for name in sample.labels}
    assert "workload" in used and "api" in used  # the registry is populated
    assert used & target_labels == set()


def test_known_label_values_are_pre_created_at_zero(tel, registry):
    for endpoint in ("query", "query_range"):
        assert value(registry, "scaleahead_prometheus_errors_total", api=endpoint) == 0
        assert value(registry, "scaleahead_prometheus_request_duration_seconds_count", api=endpoint) == 0
    for operation in telemetry.KUBE_OPERATIONS:
        assert value(registry, "scaleahead_kube_request_duration_seconds_count", operation=operation) == 0
    for outcome in ("applied", "rejected"):
        assert value(registry, "scaleahead_config_reloads_total", outcome=outcome) == 0
    for mode in ("recommend", "active"):
        assert value(registry, "scaleahead_workloads_managed", mode=mode) == 0
    assert value(registry, "scaleahead_controller_phase", scaleahead_controller_phase="starting") == 1

    tel.register_workload(W, mode="recommend")
    assert value(registry, "scaleahead_conflicts", workload=W) == 0
    assert value(registry, "scaleahead_workloads_managed", mode="recommend") == 1
    # the per-decision gauges wait for a decision: a 0 before it would read as a value
    # (a coverage of 0 fires the documented alert for a workload that has not run yet)
    for name in (
        "scaleahead_desired_replicas",
        "scaleahead_current_replicas",
        "scaleahead_forecast_replicas",
        "scaleahead_lead_time_seconds",
        "scaleahead_startup_estimate_seconds",
        "scaleahead_forecast_interval_coverage_ratio",
        "scaleahead_forecast_interval_above_ratio",
        "scaleahead_forecast_error_ratio",
    ):
        assert value(registry, name, workload=W) is None, name
    tel.record_decision(W, make_decision(), lead_seconds=60.0, startup_seconds=40.0, coverage=0.9)
    assert value(registry, "scaleahead_desired_replicas", workload=W) is not None
    assert value(registry, "scaleahead_forecast_interval_coverage_ratio", workload=W) == 0.9
    tel.record_decision(W, make_decision(), interval_above=0.1)
    tel.forget_workload(W)
    assert value(registry, "scaleahead_desired_replicas", workload=W) is None  # forgotten with the rest
    assert value(registry, "scaleahead_forecast_interval_above_ratio", workload=W) is None


def test_workloads_are_counted_by_mode_and_move_between_modes(tel, registry):
    tel.register_workload("a", mode="recommend")
    tel.register_workload("b", mode="recommend")
    tel.register_workload("b", mode="active")
    assert value(registry, "scaleahead_workloads_managed", mode="recommend") == 1
    assert value(registry, "scaleahead_workloads_managed", mode="active") == 1


def test_forget_workload_removes_its_series_and_leaves_the_others(tel, registry):
    tel.register_workload(W, mode="active")
    tel.register_workload("other", mode="active")
    tel.record_decision(W, make_decision(), forecast={0.9: 6.0}, lead_seconds=60.0)
    tel.record_decision("other", make_decision(target="other"))
    tel.set_conflict(W, True)

    tel.forget_workload(W)

    text = generate_latest(registry).decode()
    assert f'workload="{W}"' not in text
    assert value(registry, "scaleahead_desired_replicas", workload="other") == 7
    assert value(registry, "scaleahead_workloads_managed", mode="active") == 1
    tel.forget_workload(W)  # twice, or never registered: no error
    tel.forget_workload("never-seen")


def test_record_prometheus_counts_errors_and_observes_every_request(tel, registry):
    tel.record_prometheus(QueryEvent("query", "up", 1, 0.02))
    tel.record_prometheus(QueryEvent("query_range", "up", 1, 5.0, "timeout"))
    tel.record_prometheus(QueryEvent("query_range", "up", 2, 0.3, "http", 503))

    assert value(registry, "scaleahead_prometheus_request_duration_seconds_count", api="query") == 1
    assert value(registry, "scaleahead_prometheus_request_duration_seconds_sum", api="query") == pytest.approx(0.02)
    assert value(registry, "scaleahead_prometheus_errors_total", api="query") == 0
    assert value(registry, "scaleahead_prometheus_request_duration_seconds_count", api="query_range") == 2
    assert value(registry, "scaleahead_prometheus_errors_total", api="query_range") == 2


def test_record_kube_counts_errors_by_status_and_observes_every_call(tel, registry):
    tel.record_kube(ApiCall("patch_scale", W, None, 0.01))
    tel.record_kube(ApiCall("patch_scale", W, 409, 0.02))
    tel.record_kube(ApiCall("list_pods", "shop", 0, 1.5))  # transport error

    assert value(registry, "scaleahead_kube_request_duration_seconds_count", operation="patch_scale") == 2
    assert value(registry, "scaleahead_kube_errors_total", operation="patch_scale", status="409") == 1
    assert value(registry, "scaleahead_kube_errors_total", operation="patch_scale", status="None") is None
    assert value(registry, "scaleahead_kube_errors_total", operation="list_pods", status="0") == 1
    # buckets are cumulative: a 1.5 s call is in le=2.5 and not in le=1.0
    assert value(registry, "scaleahead_kube_request_duration_seconds_bucket", operation="list_pods", le="1.0") == 0
    assert value(registry, "scaleahead_kube_request_duration_seconds_bucket", operation="list_pods", le="2.5") == 1


def test_tick_config_and_leadership_helpers(tel, registry):
    tel.record_tick(0.25, 0.5)
    tel.record_tick(0.1, -0.01)  # early by clock jitter: lag is never negative
    assert value(registry, "scaleahead_tick_duration_seconds_count") == 2
    assert value(registry, "scaleahead_tick_duration_seconds_sum") == pytest.approx(0.35)
    assert value(registry, "scaleahead_tick_lag_seconds") == 0

    tel.set_config_valid(True)
    assert value(registry, "scaleahead_config_valid") == 1
    tel.record_config_reload(valid=False)
    assert value(registry, "scaleahead_config_valid") == 0
    assert value(registry, "scaleahead_config_reloads_total", outcome="rejected") == 1

    tel.set_leader(True)
    assert value(registry, "scaleahead_leader") == 1
    assert value(registry, "scaleahead_controller_phase", scaleahead_controller_phase="leader") == 1
    tel.set_phase("stopping")
    assert value(registry, "scaleahead_leader") == 0
    assert value(registry, "scaleahead_controller_phase", scaleahead_controller_phase="leader") == 0
    with pytest.raises(ValueError, match="unknown phase"):
        tel.set_phase("sleeping")


def test_quantile_labels_are_the_shortest_decimal():
    assert [telemetry.format_quantile(q) for q in (0.5, 0.9, 0.975, 0.1)] == ["0.5", "0.9", "0.975", "0.1"]


def record_one_of_everything(tel: telemetry.Telemetry) -> None:
    tel.register_workload(W, mode="active")
    tel.record_decision(W, make_decision(), forecast={0.9: 6.0}, lead_seconds=60.0, startup_seconds=40.0, load=5.0,
                        provisioning_quantile=0.85, forecast_error=0.1, interval_above=0.2)
    tel.record_against_hpa(W, (-3600.0, 0.0, 86400.0))
    tel.set_conflict(W, False)
    tel.record_tick(0.2, 0.01)
    tel.record_model_refit(1.2)
    tel.record_prometheus(QueryEvent("query", "up", 1, 0.02, "http", 500))
    tel.record_kube(ApiCall("patch_scale", W, 429, 0.02))
    tel.record_config_reload(valid=True)
    tel.set_leader(True)


def exposed_sample_names(registry) -> set[str]:
    text = generate_latest(registry).decode()
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.MULTILINE)}


def test_every_name_in_metric_names_is_exported(tel, registry):
    record_one_of_everything(tel)
    missing = set(telemetry.METRIC_NAMES) - exposed_sample_names(registry)
    assert not missing


def test_metric_names_lists_everything_exported_but_created_timestamps(tel, registry):
    record_one_of_everything(tel)
    exported = {name for name in exposed_sample_names(registry) if not name.endswith("_created")}
    assert exported == set(telemetry.METRIC_NAMES)
    assert all(name.startswith("scaleahead_") for name in telemetry.METRIC_NAMES)


@dataclass
class _Counted:
    """A duck-typed event: record_prometheus only needs the QueryEvent fields it reads."""

    endpoint: str = "query"
    duration_seconds: float = 0.1
    error: str | None = None


def test_two_instances_on_separate_registries_do_not_clash():
    first, second = CollectorRegistry(), CollectorRegistry()
    telemetry.Telemetry(first).record_prometheus(_Counted())
    telemetry.Telemetry(second)
    assert first.get_sample_value("scaleahead_prometheus_request_duration_seconds_count", {"api": "query"}) == 1
    assert second.get_sample_value("scaleahead_prometheus_request_duration_seconds_count", {"api": "query"}) == 0


def test_the_observability_doc_describes_every_metric():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "observability.md").read_text(encoding="utf-8")
    histogram_parts = ("_bucket", "_sum", "_count")
    families = {name.removesuffix(s) for name in telemetry.METRIC_NAMES for s in histogram_parts if name.endswith(s)}
    families |= {name for name in telemetry.METRIC_NAMES if not name.endswith(histogram_parts)}
    missing = sorted(name for name in families if f"`{name}`" not in doc)
    assert not missing, f"docs/observability.md does not describe {missing}"


def test_the_forecast_error_of_a_decision_is_exported():
    registry = CollectorRegistry()
    t = telemetry.Telemetry(registry)
    decision = Decision("no-op", "web", 3, 3, Reason.ForecastTrusted, "")
    t.record_decision("shop/web", decision)
    assert registry.get_sample_value("scaleahead_forecast_error_ratio", {"workload": "shop/web"}) is None  # none came due
    t.record_decision("shop/web", decision, forecast_error=0.25)
    assert registry.get_sample_value("scaleahead_forecast_error_ratio", {"workload": "shop/web"}) == 0.25
    t.record_decision("shop/web", decision)  # nothing came due: the last value stays
    assert registry.get_sample_value("scaleahead_forecast_error_ratio", {"workload": "shop/web"}) == 0.25


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the process collector reads /proc (Linux)")
def test_the_controller_exports_its_own_resident_memory_and_cpu(tel, registry):
    resident = registry.get_sample_value("scaleahead_process_resident_memory_bytes")
    assert resident is not None and resident > 10 * 2**20  # this very process: an interpreter with numpy loaded
    assert registry.get_sample_value("scaleahead_process_cpu_seconds_total") > 0
