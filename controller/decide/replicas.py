"""The HorizontalPodAutoscaler's replica calculation, as a pure function.

A faithful reading of ``GetResourceReplicas`` in kubernetes
``pkg/controller/podautoscaler/replica_calculator.go`` for a Resource metric
with a target utilisation, where every ready pod reports a metric and pods that
are still starting report none (they are the HPA's "unready" pods):

1. Utilisation is an integer percentage of the requests of the ready pods,
   truncated as ``GetResourceUtilizationRatio`` does
   (``int32(metricsTotal * 100 / requestsTotal)``), and the usage ratio is that
   percentage over the target percentage (the API field is an int32 percent, so
   a fractional target is rounded to the nearest percent).
2. Without starting pods, or when the ratio is at most 1: within tolerance keep
   the current count, else ``ceil(ratio * ready)``.
3. When the ratio is above 1 and some pods are starting, the starting pods count
   as using 0 and the ratio is recomputed over all pods ("on a scale-up, treat
   unready pods as using 0% of the resource request"). Within tolerance, or when
   the new ratio crosses 1, keep the current count; a proposal that moves against
   the new ratio's direction also keeps it.

Load is in pod units: one pod at 100% of its request serves ``capacity_per_pod``.
"""

from __future__ import annotations

import math

from controller.domain import Reason


def utilization_percent(*, load: float, pods: int, capacity_per_pod: float = 1.0) -> int:
    """Average utilisation of ``pods`` serving ``load``, as the HPA's truncated integer percent.

    The HPA sums pod metrics and requests as integer milli-units and divides
    (``metricsTotal * 100 / requestsTotal``, integer division); we do the same, so a
    load of 0.29 on one pod is 29%, not the 28% a float truncation would give.
    """
    # In pod units (a pod's request is 1000 milli-pods), so that the units the metric happens
    # to be in change nothing, and a tiny capacity per pod cannot round to a zero request.
    metrics_total = round(load / capacity_per_pod * 1000.0)
    requests_total = pods * 1000
    return metrics_total * 100 // requests_total


def target_percent(target_utilization_ratio: float) -> int:
    """The int32 percentage that ``target.averageUtilization`` would hold for a ratio in (0, 1]."""
    return max(1, round(target_utilization_ratio * 100.0))


def calculate_replicas(
    *,
    current_replicas: int,
    ready: int,
    starting: int,
    load: float | None,
    target_utilization_ratio: float,
    tolerance: float = 0.1,
    capacity_per_pod: float = 1.0,
) -> tuple[int, Reason]:
    """Propose a replica count from observed load, as one HPA sync would.

    Args:
        current_replicas: ``spec.replicas`` of the target.
        ready: pods that are ready and report a metric.
        starting: pods that exist but are not ready yet (no metric).
        load: observed load in pod units, or ``None`` when metrics are unavailable.
        target_utilization_ratio: the target average utilisation, in (0, 1].
        tolerance: the HPA's ``--horizontal-pod-autoscaler-tolerance`` (0.1 by default).
        capacity_per_pod: load one pod serves at 100% utilisation.

    Returns:
        ``(replicas, reason)``. When the metric is missing or no pod is ready, the HPA
        cannot compute a ratio and keeps ``current_replicas`` (``MetricsUnavailable``
        or ``NoReadyPods``): missing data never scales in.
    """
    if load is None or not math.isfinite(load):
        return current_replicas, Reason.MetricsUnavailable
    if ready <= 0:
        # No pod reports a metric: the HPA gets "did not receive metrics for targeted pods".
        return current_replicas, Reason.NoReadyPods
    target = target_percent(target_utilization_ratio)
    usage_ratio = utilization_percent(load=load, pods=ready, capacity_per_pod=capacity_per_pod) / target

    scale_up_with_unready = starting > 0 and usage_ratio > 1.0
    if not scale_up_with_unready:
        if abs(1.0 - usage_ratio) <= tolerance:
            return current_replicas, Reason.WithinTolerance
        proposal = math.ceil(usage_ratio * ready)
        reason = Reason.UtilizationAboveTarget if usage_ratio > 1.0 else Reason.UtilizationBelowTarget
        return proposal, reason

    # On a scale-up, starting pods count as using 0% of their request, so that
    # pods which will soon serve are not ordered twice.
    total = ready + starting
    new_usage_ratio = utilization_percent(load=load, pods=total, capacity_per_pod=capacity_per_pod) / target
    if abs(1.0 - new_usage_ratio) <= tolerance or new_usage_ratio < 1.0:
        # Within tolerance, or the direction flipped (usage_ratio > 1 here).
        return current_replicas, Reason.StartingPodsCountedAsZero
    proposal = math.ceil(new_usage_ratio * total)
    if proposal < current_replicas:
        # A scale-down proposal while the ratio says up: keep the current count.
        return current_replicas, Reason.DirectionReversed
    return proposal, Reason.StartingPodsCountedAsZero
