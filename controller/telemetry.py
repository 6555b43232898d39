"""Every metric the controller exports, declared in one place (as karpenter's ``disruption/metrics.go``).

All names carry the ``scaleahead_`` prefix, use base units (seconds, ratios 0-1, load units)
and counters end in ``_total``. The rest of the controller never touches ``prometheus_client``:
it calls one helper per outcome (``record_decision``, ``record_tick``, ``record_prometheus``,
``record_kube``, ...), so no five-label ``.labels(...)`` call is repeated at every return.

Design choices a reader might question:

* **A registry per instance.** ``Telemetry(registry)`` registers into the registry it is given,
  never into the global default one, so each test builds its own ``CollectorRegistry`` and two
  instances never clash.
* **Pre-created label values.** Label values that are known up front (Prometheus endpoints,
  Kubernetes operations, config reload outcomes, workload modes, and a registered workload's
  gauges) are created at zero, so ``rate()`` and ``increase()`` see the first event and alerts on
  ``absent()`` are not needed. ``decisions_total`` is *not* pre-created for every (kind, reason):
  that would be 2 x ``len(Reason)`` series per workload (about 11,000 at 200 workloads) for the
  benefit of one decision per combination that ``rate()`` would miss; the dashboard sums it by
  reason, where that loss does not show. ``kube_errors_total`` is not pre-created either: its
  ``status`` values are only known when an error happens.
* **``forget_workload``.** A workload that is no longer managed must disappear from ``/metrics``
  rather than export its last value forever; every per-workload series created here is tracked so
  it can be removed, independently of the ``prometheus_client`` version.
* **``METRIC_NAMES``** is computed from a throwaway instance, so it cannot drift from what is
  declared. It lists the sample names as Prometheus scrapes them (``_total``, ``_bucket``,
  ``_sum``, ``_count``). It leaves out the ``_created`` samples that ``prometheus_client`` adds
  to counters and histograms unless disabled process-wide: they hold start times, not data, and
  dashboards must not use them.
* **The controller phase is an ``Enum``** (``controller_phase``: starting, follower, leader,
  stopping), as STYLE.md asks; ``leader`` (0/1) is exported too because ``max(scaleahead_leader)``
  is the simplest "is anyone leading" alert.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, ProcessCollector

from controller.domain import Decision

__all__ = [
    "CONFIG_RELOAD_OUTCOMES",
    "CONTROLLER_PHASES",
    "KUBE_OPERATIONS",
    "METRIC_NAMES",
    "MODES",
    "NAMESPACE",
    "PROMETHEUS_ENDPOINTS",
    "ApiCallLike",
    "QueryEventLike",
    "Telemetry",
    "format_quantile",
]

NAMESPACE = "scaleahead"

#: Endpoints of the Prometheus HTTP API the adapter calls (``controller.adapters.prometheus.Endpoint``).
PROMETHEUS_ENDPOINTS = ("query", "query_range")
#: Operation names the Kubernetes adapter reports in ``ApiCall.operation`` (plus the Lease calls of leader election).
KUBE_OPERATIONS = (
    "read_scale",
    "patch_scale",
    "read_object",
    "patch_state",
    "list_pods",
    "create_event",
    "list_hpas",
    "list_scaledobjects",
    "list_workloads",
    "read_lease",
    "create_lease",
    "update_lease",
)
#: ``config_reloads_total{outcome}``: the new settings were taken, or rejected (the last good ones stay).
CONFIG_RELOAD_OUTCOMES = ("applied", "rejected")
#: ``workloads_managed{mode}`` (``controller.settings.Mode``).
MODES = ("recommend", "active")
#: States of the ``controller_phase`` Enum.
CONTROLLER_PHASES = ("starting", "follower", "leader", "stopping")

# Bucket bounds in seconds. A tick does I/O for many workloads concurrently: from a few
# milliseconds (nothing to do) up to its interval (15 s by default) and beyond when late.
_TICK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0)
# One HTTP request; the adapters time out at a few seconds, so the tail above 10 s means timeouts.
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A model fit on days of history: milliseconds for naive models, minutes for a large GBM.
_REFIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# Stage names of a Decision read by record_decision (controller.decide.planner).
_FORECAST_STAGE = "forecast_replicas"
_CONFIDENCE_STAGE = "confidence"  # percent of recent outcomes inside the interval


class QueryEventLike(Protocol):
    """What ``record_prometheus`` reads: the fields of ``controller.adapters.prometheus.QueryEvent``."""

    @property
    def endpoint(self) -> str: ...
    @property
    def duration_seconds(self) -> float: ...
    @property
    def error(self) -> str | None: ...


class ApiCallLike(Protocol):
    """What ``record_kube`` reads: the fields of ``controller.adapters.kube.ApiCall``."""

    @property
    def operation(self) -> str: ...
    @property
    def status(self) -> int | None: ...
    @property
    def duration_seconds(self) -> float: ...


def format_quantile(q: float) -> str:
    """The ``quantile`` label value of a forecast quantile: shortest form, ``0.9`` -> ``"0.9"``."""
    return f"{float(q):g}"


class Telemetry:
    """The controller's metrics, registered into ``registry``, and one helper per outcome.

    Args:
        registry: Where the metrics are registered; tests pass a fresh ``CollectorRegistry``.

    All helpers are cheap, synchronous and never raise for a well-formed input; call them from
    the event loop (``record_model_refit`` may also be called from a worker thread).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        ns = NAMESPACE
        r = registry

        # -- per decision (one series per workload) --------------------------------------------
        self.decisions = Counter(
            "decisions_total",
            "Decisions made, by workload, kind (scale, no-op) and deciding reason.",
            ["workload", "kind", "reason"], namespace=ns, registry=r,
        )
        self.desired_replicas = Gauge(
            "desired_replicas", "Replica count the last decision settled on.", ["workload"], namespace=ns, registry=r
        )
        self.current_replicas = Gauge(
            "current_replicas", "The target's spec.replicas when the last decision was made.",
            ["workload"], namespace=ns, registry=r,
        )
        self.forecast_replicas = Gauge(
            "forecast_replicas",
            "Replicas the forecast asks for at now + lead time (0 when the forecast was not used).",
            ["workload"], namespace=ns, registry=r,
        )
        self.forecast_load = Gauge(
            "forecast_load",
            "Forecast load at now + lead time, per forecast quantile, in load units.",
            ["workload", "quantile"], namespace=ns, registry=r,
        )
        self.observed_load = Gauge(
            "observed_load", "Load observed at the last tick, in load units.", ["workload"], namespace=ns, registry=r
        )
        self.lead_time = Gauge(
            "lead_time_seconds",
            "How far ahead the last decision looked: startup estimate + metrics lag + one tick.",
            ["workload"], namespace=ns, registry=r,
        )
        self.startup_estimate = Gauge(
            "startup_estimate_seconds", "Current estimate of a new pod's time from creation to Ready.",
            ["workload"], namespace=ns, registry=r,
        )
        self.provisioning_quantile = Gauge(
            "provisioning_quantile",
            "Forecast quantile the planner provisions for: forecast.quantile, or one of "
            "forecast.raise_quantile_to / lower_quantile_to / lean_quantile chosen against the HPA's calculation run beside it "
            "(the day's choice: at a tick the confidence gate may widen a rung at or above forecast.quantile to at least 0.975, "
            "never a lower one, or set the forecast aside and scale on the observed load alone).",
            ["workload"], namespace=ns, registry=r,
        )
        self.hpa_balance_pod_hours = Gauge(
            "hpa_balance_pod_hours",
            "Pod-hours the pods held minus those the HPA's calculation, run beside the controller on the same load, "
            "would have held, since the end of the controller's first day (negative: saved against the HPA). "
            "Changes once a day; absent without forecast.make_up_shortfall and until the first day is counted.",
            ["workload"], namespace=ns, registry=r,
        )
        self.hpa_balance_uncovered_load_hours = Gauge(
            "hpa_balance_uncovered_load_hours",
            "Load-hours (load units x hours) the pods left uncovered minus those the HPA's calculation would have, "
            "over the same days (above 0: owed, and only a quantile that served better than the HPA is taken). "
            "Changes once a day; absent without forecast.make_up_shortfall and until the first day is counted.",
            ["workload"], namespace=ns, registry=r,
        )
        self.hpa_reference_pod_hours = Gauge(
            "hpa_reference_pod_hours",
            "Pod-hours the HPA's calculation would have held over the same days (the base of the 2% reserve never "
            "spent on service). Changes once a day; absent without forecast.make_up_shortfall and until the "
            "first day is counted.",
            ["workload"], namespace=ns, registry=r,
        )
        self.interval_coverage = Gauge(
            "forecast_interval_coverage_ratio",
            "Share of recent outcomes that fell inside the forecast's central interval (0-1).",
            ["workload"], namespace=ns, registry=r,
        )
        self.interval_above = Gauge(
            "forecast_interval_above_ratio",
            "Share of recent outcomes that came above the forecast's central interval (0-1); the planner "
            "widens its provisioning quantile to 0.975 while it is above 0.25.",
            ["workload"], namespace=ns, registry=r,
        )
        self.forecast_error = Gauge(
            "forecast_error_ratio",
            "Absolute error of the median forecast made one lead time ago, relative to the larger of that "
            "forecast and the load observed now (0: exact, 1: off by the whole load).",
            ["workload"], namespace=ns, registry=r,
        )
        self.conflicts = Gauge(
            "conflicts", "1 when an HPA or KEDA ScaledObject already scales the workload (it is then not driven).",
            ["workload"], namespace=ns, registry=r,
        )
        self.workloads_managed = Gauge(
            "workloads_managed", "Workloads the controller manages, by mode.", ["mode"], namespace=ns, registry=r
        )

        # -- the loop ------------------------------------------------------------------------------
        self.tick_duration = Histogram(
            "tick_duration_seconds", "Wall time of one tick over all workloads.", namespace=ns, registry=r,
            buckets=_TICK_BUCKETS,
        )
        self.tick_lag = Gauge(
            "tick_lag_seconds", "How late the last tick started compared with its schedule.", namespace=ns, registry=r
        )
        self.model_refit_duration = Histogram(
            "model_refit_duration_seconds", "Wall time of one forecasting model fit.", namespace=ns, registry=r,
            buckets=_REFIT_BUCKETS,
        )

        # -- dependencies ------------------------------------------------------------------------
        self.prometheus_request_duration = Histogram(
            "prometheus_request_duration_seconds", "Latency of one HTTP request to Prometheus (each retry counts).",
            ["api"], namespace=ns, registry=r, buckets=_REQUEST_BUCKETS,
        )
        self.prometheus_errors = Counter(
            "prometheus_errors_total", "Failed HTTP requests to Prometheus (each retry counts).",
            ["api"], namespace=ns, registry=r,
        )
        self.kube_request_duration = Histogram(
            "kube_request_duration_seconds", "Latency of one request to the Kubernetes API server.",
            ["operation"], namespace=ns, registry=r, buckets=_REQUEST_BUCKETS,
        )
        self.kube_errors = Counter(
            "kube_errors_total", "Failed requests to the Kubernetes API server, by HTTP status (0: transport error).",
            ["operation", "status"], namespace=ns, registry=r,
        )

        # -- configuration and leadership --------------------------------------------------------
        self.config_valid = Gauge(
            "config_valid", "1 when the last settings read were valid, 0 while the last good ones are kept.",
            namespace=ns, registry=r,
        )
        self.config_reloads = Counter(
            "config_reloads_total", "Settings reloads, by outcome (applied, rejected).", ["outcome"],
            namespace=ns, registry=r,
        )
        self.leader = Gauge("leader", "1 while this replica holds the leader Lease.", namespace=ns, registry=r)
        self.phase = Enum(
            "controller_phase", "Phase of this replica.", namespace=ns, registry=r, states=list(CONTROLLER_PHASES)
        )
        # The process's own memory, CPU and file descriptors (Linux), under the project's prefix:
        # memory grows with the managed workloads (docs/running.md, Overhead).
        ProcessCollector(namespace=ns, registry=r)

        # Pre-create the label values known up front, so the first event is seen by rate().
        for endpoint in PROMETHEUS_ENDPOINTS:
            self.prometheus_request_duration.labels(endpoint)
            self.prometheus_errors.labels(endpoint)
        for operation in KUBE_OPERATIONS:
            self.kube_request_duration.labels(operation)
        for outcome in CONFIG_RELOAD_OUTCOMES:
            self.config_reloads.labels(outcome)
        for mode in MODES:
            self.workloads_managed.labels(mode).set(0)

        # Every per-workload label set created, so forget_workload can remove exactly those.
        self._series: dict[str, set[tuple[object, tuple[str, ...]]]] = {}
        self._modes: dict[str, str] = {}

    # -- workloads ---------------------------------------------------------------------------------

    def register_workload(self, workload: str, *, mode: str) -> None:
        """Start managing ``workload`` in ``mode``; count it (its gauges appear with its first decision).

        Calling it again with another mode moves the workload to that mode.

        Args:
            workload: The workload's name as used in every per-workload label (``Kind/namespace/name``).
            mode: ``recommend`` or ``active``.
        """
        self._ensure_workload(workload)
        self._modes[workload] = mode
        self._update_managed()

    def forget_workload(self, workload: str) -> None:
        """Remove every series of ``workload`` (it is no longer managed); unknown names are ignored."""
        for metric, labels in self._series.pop(workload, ()):
            try:
                metric.remove(*labels)  # type: ignore[attr-defined]
            except KeyError:
                pass  # already gone
        if self._modes.pop(workload, None) is not None:
            self._update_managed()

    def set_conflict(self, workload: str, conflicting: bool) -> None:
        """Report whether an HPA or KEDA ScaledObject already scales ``workload``."""
        self._ensure_workload(workload)
        self.conflicts.labels(workload).set(1 if conflicting else 0)

    # -- per outcome -------------------------------------------------------------------------------

    def record_decision(
        self,
        workload: str,
        decision: Decision,
        *,
        forecast: Mapping[float, float] | None = None,
        lead_seconds: float | None = None,
        startup_seconds: float | None = None,
        coverage: float | None = None,
        load: float | None = None,
        forecast_error: float | None = None,
        provisioning_quantile: float | None = None,
        interval_above: float | None = None,
    ) -> None:
        """Count one decision and set every per-decision gauge of ``workload`` from it.

        Args:
            workload: The workload label.
            decision: The planner's decision; its ``from_value``/``to_value`` give the current and
                desired replicas, its ``forecast_replicas`` stage (when present) the forecast replicas.
            forecast: Forecast load at now + lead, by quantile (load units). ``None`` means there
                was no forecast this tick: the workload's ``forecast_load`` series are removed
                rather than left at a stale value.
            lead_seconds: The lead time used; unchanged when ``None``.
            startup_seconds: The current startup estimate; unchanged when ``None``.
            coverage: Share (0-1) of recent outcomes inside the forecast interval; when ``None``,
                the decision's ``confidence`` stage (percent) is used if present.
            load: The load observed at this tick (load units); unchanged when ``None``.
            forecast_error: The relative error of the median forecast that came due this tick
                (``forecast_error_ratio``); unchanged when ``None``.
            provisioning_quantile: The forecast quantile the planner provisions for; unchanged when ``None``.
            interval_above: Share (0-1) of recent outcomes above the forecast interval (the
                confidence gate's, which widens the quantile); unchanged when ``None``.
        """
        self._ensure_workload(workload)
        self._labels(workload, self.decisions, workload, decision.kind, str(decision.reason)).inc()
        self.desired_replicas.labels(workload).set(decision.to_value)
        self.current_replicas.labels(workload).set(decision.from_value)

        stages = {name: value for name, value, _reason in decision.stages}
        if _FORECAST_STAGE in stages:
            self.forecast_replicas.labels(workload).set(stages[_FORECAST_STAGE])
        if coverage is None and _CONFIDENCE_STAGE in stages:
            coverage = stages[_CONFIDENCE_STAGE] / 100
        if coverage is not None:
            self.interval_coverage.labels(workload).set(coverage)
        if interval_above is not None:
            self.interval_above.labels(workload).set(interval_above)
        if forecast_error is not None:
            self.forecast_error.labels(workload).set(forecast_error)

        # Replace the quantile series as a whole: a quantile no longer forecast must not linger.
        quantile_series = {
            (metric, labels)
            for metric, labels in self._series[workload]
            if metric is self.forecast_load
        }
        wanted = {format_quantile(q): float(v) for q, v in (forecast or {}).items()}
        for metric, labels in quantile_series:
            if labels[1] not in wanted:
                self.forecast_load.remove(*labels)
                self._series[workload].discard((metric, labels))
        for quantile, value in wanted.items():
            self._labels(workload, self.forecast_load, workload, quantile).set(value)

        if lead_seconds is not None:
            self.lead_time.labels(workload).set(lead_seconds)
        if startup_seconds is not None:
            self.startup_estimate.labels(workload).set(startup_seconds)
        if provisioning_quantile is not None:
            self._labels(workload, self.provisioning_quantile, workload).set(provisioning_quantile)
        if load is not None and math.isfinite(load):
            self.observed_load.labels(workload).set(load)

    def record_against_hpa(self, workload: str, against: tuple[float, float, float] | None) -> None:
        """Set the balance against the HPA's calculation of ``workload``, or remove it.

        Args:
            workload: The workload label.
            against: Pod-seconds held minus the HPA's, load-seconds left uncovered minus the HPA's,
                and the HPA's pod-seconds, over the days counted (shown in hours); ``None`` when the
                workload keeps no balance (no ladder, or ``forecast.make_up_shortfall`` off): its
                series are removed rather than left at a stale value.
        """
        self._ensure_workload(workload)
        gauges = (self.hpa_balance_pod_hours, self.hpa_balance_uncovered_load_hours, self.hpa_reference_pod_hours)
        if against is None:
            for gauge in gauges:
                if (gauge, (workload,)) in self._series[workload]:
                    gauge.remove(workload)
                    self._series[workload].discard((gauge, (workload,)))
            return
        for gauge, seconds in zip(gauges, against, strict=True):
            self._labels(workload, gauge, workload).set(seconds / 3600)

    def record_tick(self, duration: float, lag: float) -> None:
        """Record one tick.

        Args:
            duration: Wall time of the tick, in seconds.
            lag: How late the tick started compared with its schedule, in seconds (>= 0).
        """
        self.tick_duration.observe(duration)
        self.tick_lag.set(max(0.0, lag))

    def record_prometheus(self, event: QueryEventLike) -> None:
        """Record one HTTP request to Prometheus; fits the adapter's ``on_request`` hook.

        Args:
            event: A ``controller.adapters.prometheus.QueryEvent``: ``error`` is ``None`` on success.
        """
        self.prometheus_request_duration.labels(event.endpoint).observe(event.duration_seconds)
        if event.error is not None:
            self.prometheus_errors.labels(event.endpoint).inc()

    def record_kube(self, call: ApiCallLike) -> None:
        """Record one request to the Kubernetes API server; fits the adapter's ``on_call`` hook.

        Args:
            call: A ``controller.adapters.kube.ApiCall``: ``status`` is ``None`` on success, the
                HTTP status of an error, or 0 for a transport error.
        """
        self.kube_request_duration.labels(call.operation).observe(call.duration_seconds)
        if call.status is not None:
            self.kube_errors.labels(call.operation, str(call.status)).inc()

    def record_model_refit(self, duration: float) -> None:
        """Record one model fit that took ``duration`` seconds (wall time)."""
        self.model_refit_duration.observe(duration)

    def record_config_reload(self, *, valid: bool) -> None:
        """Record a reload of the settings: applied when ``valid``, else rejected (last good kept).

        Also sets ``config_valid``.
        """
        self.config_reloads.labels("applied" if valid else "rejected").inc()
        self.set_config_valid(valid)

    def set_config_valid(self, valid: bool) -> None:
        """Set ``config_valid``: 1 when the settings last read are in use, 0 when they were rejected."""
        self.config_valid.set(1 if valid else 0)

    def set_leader(self, leader: bool) -> None:
        """Set ``leader`` and move ``controller_phase`` to ``leader`` or ``follower``."""
        self.leader.set(1 if leader else 0)
        self.phase.state("leader" if leader else "follower")

    def set_phase(self, phase: str) -> None:
        """Set ``controller_phase`` (one of ``CONTROLLER_PHASES``); ``leader`` follows it.

        Raises:
            ValueError: ``phase`` is not one of ``CONTROLLER_PHASES``.
        """
        if phase not in CONTROLLER_PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(CONTROLLER_PHASES)}")
        self.phase.state(phase)
        self.leader.set(1 if phase == "leader" else 0)

    # -- internals ----------------------------------------------------------------------------------

    def _ensure_workload(self, workload: str) -> None:
        if workload in self._series:
            return
        # The per-decision gauges appear with the first decision (a 0 before it would read as a
        # real value: a coverage of 0 fires the documented alert for a workload that has not run);
        # they are listed here so that forgetting the workload removes them. Conflicts start at 0.
        self._series[workload] = {
            (gauge, (workload,))
            for gauge in (
                self.desired_replicas,
                self.current_replicas,
                self.forecast_replicas,
                self.observed_load,
                self.lead_time,
                self.startup_estimate,
                self.interval_coverage,
                self.interval_above,
                self.forecast_error,
            )
        }
        self._labels(workload, self.conflicts, workload).set(0)

    def _labels(self, workload: str, metric, *labels: str):  # noqa: ANN001, ANN202 - any labelled metric
        self._series[workload].add((metric, labels))
        return metric.labels(*labels)

    def _update_managed(self) -> None:
        counts = dict.fromkeys(MODES, 0)
        for mode in self._modes.values():
            counts[mode] = counts.get(mode, 0) + 1
        for mode, count in counts.items():
            self.workloads_managed.labels(mode).set(count)


def _sample_names(families: Iterable) -> tuple[str, ...]:  # noqa: ANN001 - prometheus_client Metric
    """The sample names Prometheus scrapes for each metric family (text format 0.0.4)."""
    names: list[str] = []
    for family in families:
        if family.type == "counter":
            names.append(f"{family.name}_total")
        elif family.type == "histogram":
            names.extend(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:  # gauge, stateset (Enum)
            names.append(family.name)
    return tuple(names)


def _metric_names() -> tuple[str, ...]:
    registry = CollectorRegistry()
    Telemetry(registry)
    return _sample_names(registry.collect())


#: Every sample name the controller exports, as Prometheus scrapes it (``_created`` excluded).
METRIC_NAMES: tuple[str, ...] = _metric_names()
