"""One sync of the HorizontalPodAutoscaler for one target, as a pure planner.

Composes ``replicas.calculate_replicas`` and ``stabilize`` in the order of
``reconcileAutoscaler`` in kubernetes ``pkg/controller/podautoscaler/horizontal.go``:

0. A new HPA's history starts with the current count.
1. Guards on the current count: a target scaled to 0 (with ``min_replicas > 0``) is
   left alone; a count above max or below min is brought back into range at once,
   without stabilisation.
2. ``raw_replicas``: the replica calculation on observed load. When it fails (no
   metric, no ready pod) the sync ends here and records nothing, as the HPA does.
3. ``stabilized_replicas``: the legacy downscale window, or the behaviour band.
4. ``desired_replicas``: the legacy scale-up cap or the behaviour rate policies, then min/max.
5. A change is remembered as a scale event (only the behaviour path reads them).

This is both the ``hpa`` baseline of the benchmark and the reactive floor that the
predictive planner composes with.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.decide import replicas, stabilize
from controller.domain import Behavior, ControllerState, Decision, Observation, Plan, Reason, Recommendation

#: ``maxReplicas`` is an int32 in the API; the benchmark's HPA has no upper bound.
UNBOUNDED_REPLICAS = 2**31 - 1


@dataclass(frozen=True, slots=True)
class HpaParams:
    """An HPA object's spec and the controller-manager flags that shape its syncs.

    ``behavior=None`` selects the legacy path (autoscaling/v2 with no ``behavior`` field,
    as kube-controller-manager runs it by default).
    """

    target_utilization_ratio: float = 0.7
    tolerance: float = 0.1
    min_replicas: int = 1
    max_replicas: int = UNBOUNDED_REPLICAS
    behavior: Behavior | None = None
    downscale_stabilization_seconds: float = 300.0
    capacity_per_pod: float = 1.0


def plan(obs: Observation, params: HpaParams, state: ControllerState, now: float, *, target: str = "") -> Plan:
    """Run one HPA sync.

    Args:
        obs: what the controller observes this tick (load in pod units, pod counts,
            ``current_replicas`` = ``spec.replicas``).
        params: the HPA's spec and flags.
        state: recommendation and scale-event history from the previous syncs.
        now: the sync time in seconds.
        target: the target's name, for the decision.

    Returns:
        A ``Plan`` with one decision (``scale`` or ``no-op``) whose ``stages`` list the
        named intermediate counts, and the new history.
    """
    current = obs.current_replicas

    # A new HPA starts its history with the current count (recordInitialRecommendation),
    # so its first syncs cannot scale in below what the target already runs.
    state = stabilize.seed_history(state, current_replicas=current, now=now)

    # 1. Guards, in the order of reconcileAutoscaler; none of them records a recommendation.
    if current == 0 and params.min_replicas != 0:
        return _plan(target, current, current, Reason.ScalingDisabled, "scaling is disabled since the replica count of the target is zero", (), state)
    if current > params.max_replicas:
        return _finish(target, current, params.max_replicas, Reason.AboveMaxReplicas,
                       "current number of replicas above max replicas", (), state, params, now)
    if current < params.min_replicas:
        return _finish(target, current, params.min_replicas, Reason.BelowMinReplicas,
                       "current number of replicas below min replicas", (), state, params, now)

    # 2. The replica calculation; a failed one ends the sync without touching history.
    raw, raw_reason = replicas.calculate_replicas(
        current_replicas=current,
        ready=obs.ready,
        starting=obs.starting,
        load=obs.load,
        target_utilization_ratio=params.target_utilization_ratio,
        tolerance=params.tolerance,
        capacity_per_pod=params.capacity_per_pod,
    )
    if raw_reason in (Reason.MetricsUnavailable, Reason.NoReadyPods):
        return _plan(target, current, current, raw_reason, "cannot compute a utilisation: holding the current count",
                     (("raw_replicas", current, raw_reason),), state)
    raw = max(raw, 0)

    # 3-4. Stabilise, then limit the rate and bound.
    if params.behavior is None:
        stabilized, stab_reason, recs = stabilize.stabilize_legacy(
            recommendations=state.recommendations,
            desired_replicas=raw,
            now=now,
            window_seconds=params.downscale_stabilization_seconds,
        )
        desired, bound_reason = stabilize.bound_legacy(
            current_replicas=current,
            desired_replicas=stabilized,
            min_replicas=params.min_replicas,
            max_replicas=params.max_replicas,
        )
    else:
        stabilized, stab_reason, recs = stabilize.stabilize_with_behavior(
            recommendations=state.recommendations,
            desired_replicas=raw,
            current_replicas=current,
            now=now,
            behavior=params.behavior,
        )
        desired, bound_reason = stabilize.bound_with_behavior(
            current_replicas=current,
            desired_replicas=stabilized,
            min_replicas=params.min_replicas,
            max_replicas=params.max_replicas,
            behavior=params.behavior,
            scale_up_events=state.scale_up_events,
            scale_down_events=state.scale_down_events,
            now=now,
        )
    stages = (
        ("raw_replicas", raw, raw_reason),
        ("stabilized_replicas", stabilized, stab_reason),
        ("desired_replicas", desired, bound_reason),
    )
    # The decision's reason is the last stage that changed the value.
    if desired != stabilized:
        reason = bound_reason
    elif stabilized != raw:
        reason = stab_reason
    else:
        reason = raw_reason
    return _finish(target, current, desired, reason, _MESSAGES.get(reason, str(reason)), stages, state, params, now, recs)


_MESSAGES = {
    Reason.WithinTolerance: "utilisation is within tolerance of the target",
    Reason.UtilizationAboveTarget: "utilisation above target",
    Reason.UtilizationBelowTarget: "utilisation below target",
    Reason.StartingPodsCountedAsZero: "scale-up with starting pods counted as using 0%",
    Reason.DirectionReversed: "proposal moved against the utilisation's direction",
    Reason.ScaleDownStabilized: "recent recommendations were higher than current one, applying the highest recent recommendation",
    Reason.ScaleUpStabilized: "recent recommendations were lower than current one, applying the lowest recent recommendation",
    Reason.ScaleUpLimit: "the desired replica count is increasing faster than the maximum scale rate",
    Reason.ScaleDownLimit: "the desired replica count is decreasing faster than the maximum scale rate",
    Reason.TooManyReplicas: "the desired replica count is more than the maximum replica count",
    Reason.TooFewReplicas: "the desired replica count is less than the minimum replica count",
    Reason.DesiredWithinRange: "the desired count is within the acceptable range",
}


def _finish(
    target: str,
    current: int,
    desired: int,
    reason: Reason,
    message: str,
    stages: tuple[tuple[str, int, Reason], ...],
    state: ControllerState,
    params: HpaParams,
    now: float,
    recommendations: tuple[Recommendation, ...] | None = None,
) -> Plan:
    """Record a change as a scale event and build the plan (with ``recommendations`` as the new
    history when given: the state is built once, not replaced field by field)."""
    ups, downs = stabilize.record_scale_event(
        scale_up_events=state.scale_up_events,
        scale_down_events=state.scale_down_events,
        behavior=params.behavior,
        previous_replicas=current,
        new_replicas=desired,
        now=now,
    )
    recs = state.recommendations if recommendations is None else recommendations
    new_state = ControllerState(
        recommendations=recs,
        scale_up_events=ups,
        scale_down_events=downs,
        pending_checks=state.pending_checks,
        interval_outcomes=state.interval_outcomes,
    )
    return _plan(target, current, desired, reason, message, stages, new_state)


def _plan(
    target: str,
    current: int,
    desired: int,
    reason: Reason,
    message: str,
    stages: tuple[tuple[str, int, Reason], ...],
    state: ControllerState,
) -> Plan:
    kind = "scale" if desired != current else "no-op"
    return Plan((Decision(kind, target, current, desired, reason, message, stages),), state)
