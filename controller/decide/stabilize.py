"""Stabilisation windows, rate policies and min/max bounds, as pure functions over history.

A faithful reading of the normalisation in kubernetes
``pkg/controller/podautoscaler/horizontal.go``, in both of its paths:

* **legacy** (no ``behavior`` field): ``stabilizeRecommendation`` keeps the highest
  recommendation of the downscale stabilisation window (300 s by default, the
  ``--horizontal-pod-autoscaler-downscale-stabilization`` flag), then
  ``convertDesiredReplicasWithRules`` caps a scale-up at ``max(2 * current, 4)``
  and applies min/max;
* **behavior**: ``stabilizeRecommendationWithBehaviors`` clamps the current count
  into the band [lowest recommendation of the scale-up window, highest of the
  scale-down window], then ``convertDesiredReplicasWithBehaviorRate`` applies the
  Pods/Percent policies of each direction over their periods, chosen with
  ``selectPolicy`` Max/Min/Disabled, and min/max.

Unlike the HPA, which mutates its recommendation and event lists in place, each
function returns the new history; callers thread it through ``ControllerState``.
Window edges follow the source exactly: the legacy window ignores samples strictly
*before* ``now - window``, the behaviour windows and rate periods count samples
strictly *after* ``now - window``.
"""

from __future__ import annotations

import math
from dataclasses import replace

from controller.domain import (
    Behavior,
    ControllerState,
    PolicyType,
    Reason,
    Recommendation,
    ScaleEvent,
    ScalingRules,
    SelectPolicy,
)

#: ``scaleUpLimitFactor`` and ``scaleUpLimitMinimum`` of horizontal.go (issue kubernetes#32304).
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0


def seed_history(state: ControllerState, *, current_replicas: int, now: float) -> ControllerState:
    """``recordInitialRecommendation``: a new history starts with the current count.

    So the first syncs of a new autoscaler never scale in below what the target already runs.
    """
    if state.recommendations:
        return state
    return replace(state, recommendations=(Recommendation(current_replicas, now),))


def stabilize_legacy(
    *,
    recommendations: tuple[Recommendation, ...],
    desired_replicas: int,
    now: float,
    window_seconds: float,
) -> tuple[int, Reason, tuple[Recommendation, ...]]:
    """Downscale stabilisation of the legacy path: the max of the window's recommendations.

    Returns ``(stabilized_replicas, reason, new_recommendations)``; the new history
    holds the in-window samples plus ``desired_replicas`` at ``now``.
    """
    cutoff = now - window_seconds
    kept = []
    stabilized = desired_replicas
    for rec in recommendations:  # one loop, not a filter and a max: the HPA syncs at every tick
        if not rec.at < cutoff:
            kept.append(rec)
            if rec.replicas > stabilized:
                stabilized = rec.replicas
    kept.append(Recommendation(desired_replicas, now))
    reason = Reason.ScaleDownStabilized if stabilized != desired_replicas else Reason.ReadyForNewScale
    return stabilized, reason, tuple(kept)


def scale_up_limit_legacy(current_replicas: int) -> int:
    """``calculateScaleUpLimit``: at most double, and at least 4, per sync."""
    return int(max(SCALE_UP_LIMIT_FACTOR * current_replicas, SCALE_UP_LIMIT_MINIMUM))


def bound_legacy(
    *, current_replicas: int, desired_replicas: int, min_replicas: int, max_replicas: int
) -> tuple[int, Reason]:
    """``convertDesiredReplicasWithRules``: the legacy scale-up cap and the min/max bounds."""
    scale_up_limit = scale_up_limit_legacy(current_replicas)
    if max_replicas > scale_up_limit:
        maximum_allowed, limiting_reason = scale_up_limit, Reason.ScaleUpLimit
    else:
        maximum_allowed, limiting_reason = max_replicas, Reason.TooManyReplicas
    if desired_replicas < min_replicas:
        return min_replicas, Reason.TooFewReplicas
    if desired_replicas > maximum_allowed:
        return maximum_allowed, limiting_reason
    return desired_replicas, Reason.DesiredWithinRange


def stabilize_with_behavior(
    *,
    recommendations: tuple[Recommendation, ...],
    desired_replicas: int,
    current_replicas: int,
    now: float,
    behavior: Behavior,
) -> tuple[int, Reason, tuple[Recommendation, ...]]:
    """``stabilizeRecommendationWithBehaviors``: clamp the current count into the windows' band.

    The band's lower edge is the lowest recommendation of the scale-up window, its
    upper edge the highest of the scale-down window (both including ``desired_replicas``).
    Returns ``(stabilized_replicas, reason, new_recommendations)``.
    """
    up_cutoff = now - behavior.scale_up.stabilization_window_seconds
    down_cutoff = now - behavior.scale_down.stabilization_window_seconds
    up_recommendation = desired_replicas
    down_recommendation = desired_replicas
    # Samples older than both windows can never matter again.
    oldest_useful = min(up_cutoff, down_cutoff)
    kept = []
    for rec in recommendations:
        at = rec.at
        if at > up_cutoff and rec.replicas < up_recommendation:
            up_recommendation = rec.replicas
        if at > down_cutoff and rec.replicas > down_recommendation:
            down_recommendation = rec.replicas
        if not at < oldest_useful:
            kept.append(rec)
    kept.append(Recommendation(desired_replicas, now))
    stabilized = min(max(current_replicas, up_recommendation), down_recommendation)
    if stabilized == desired_replicas:
        reason = Reason.ReadyForNewScale
    elif desired_replicas >= current_replicas:
        reason = Reason.ScaleUpStabilized
    else:
        reason = Reason.ScaleDownStabilized
    return stabilized, reason, tuple(kept)


def replicas_changed_in_period(events: tuple[ScaleEvent, ...], *, period_seconds: float, now: float) -> int:
    """``getReplicasChangePerPeriod``: the sum of event sizes strictly after ``now - period``."""
    cutoff = now - period_seconds
    return sum(e.delta for e in events if e.at > cutoff)


def scale_up_limit_with_rules(
    *,
    current_replicas: int,
    scale_up_events: tuple[ScaleEvent, ...],
    scale_down_events: tuple[ScaleEvent, ...],
    rules: ScalingRules,
    now: float,
) -> int:
    """``calculateScaleUpLimitWithScalingRules``: the highest count the scale-up policies allow now."""
    if rules.select_policy is SelectPolicy.Disabled:
        return current_replicas
    proposals = []
    for policy in rules.policies:
        added = replicas_changed_in_period(scale_up_events, period_seconds=policy.period_seconds, now=now)
        deleted = replicas_changed_in_period(scale_down_events, period_seconds=policy.period_seconds, now=now)
        period_start = current_replicas - added + deleted
        if policy.type is PolicyType.Pods:
            proposals.append(period_start + policy.value)
        else:
            # Rounded up, or a small target could never grow.
            proposals.append(math.ceil(period_start * (1 + policy.value / 100)))
    if not proposals:
        return current_replicas
    # For scaling up, Min selects the smallest change, Max the largest.
    return min(proposals) if rules.select_policy is SelectPolicy.Min else max(proposals)


def scale_down_limit_with_rules(
    *,
    current_replicas: int,
    scale_up_events: tuple[ScaleEvent, ...],
    scale_down_events: tuple[ScaleEvent, ...],
    rules: ScalingRules,
    now: float,
) -> int:
    """``calculateScaleDownLimitWithBehaviors``: the lowest count the scale-down policies allow now."""
    if rules.select_policy is SelectPolicy.Disabled:
        return current_replicas
    proposals = []
    for policy in rules.policies:
        added = replicas_changed_in_period(scale_up_events, period_seconds=policy.period_seconds, now=now)
        deleted = replicas_changed_in_period(scale_down_events, period_seconds=policy.period_seconds, now=now)
        period_start = current_replicas - added + deleted
        if policy.type is PolicyType.Pods:
            proposals.append(period_start - policy.value)
        else:
            # int32(float64(...)) truncates toward zero.
            proposals.append(int(period_start * (1 - policy.value / 100)))
    if not proposals:
        return current_replicas
    # For scaling down, Min selects the smallest change (the highest count), Max the largest.
    return max(proposals) if rules.select_policy is SelectPolicy.Min else min(proposals)


def bound_with_behavior(
    *,
    current_replicas: int,
    desired_replicas: int,
    min_replicas: int,
    max_replicas: int,
    behavior: Behavior,
    scale_up_events: tuple[ScaleEvent, ...],
    scale_down_events: tuple[ScaleEvent, ...],
    now: float,
) -> tuple[int, Reason]:
    """``convertDesiredReplicasWithBehaviorRate``: rate policies per direction, then min/max."""
    if desired_replicas > current_replicas:
        limit = scale_up_limit_with_rules(
            current_replicas=current_replicas,
            scale_up_events=scale_up_events,
            scale_down_events=scale_down_events,
            rules=behavior.scale_up,
            now=now,
        )
        # Never scale down because the up-events have not aged out yet.
        limit = max(limit, current_replicas)
        if max_replicas > limit:
            maximum_allowed, limiting_reason = limit, Reason.ScaleUpLimit
        else:
            maximum_allowed, limiting_reason = max_replicas, Reason.TooManyReplicas
        if desired_replicas > maximum_allowed:
            return maximum_allowed, limiting_reason
    elif desired_replicas < current_replicas:
        limit = scale_down_limit_with_rules(
            current_replicas=current_replicas,
            scale_up_events=scale_up_events,
            scale_down_events=scale_down_events,
            rules=behavior.scale_down,
            now=now,
        )
        limit = min(limit, current_replicas)
        if min_replicas < limit:
            minimum_allowed, limiting_reason = limit, Reason.ScaleDownLimit
        else:
            minimum_allowed, limiting_reason = min_replicas, Reason.TooFewReplicas
        if desired_replicas < minimum_allowed:
            return minimum_allowed, limiting_reason
    return desired_replicas, Reason.DesiredWithinRange


def longest_policy_period(rules: ScalingRules) -> int:
    """``getLongestPolicyPeriod``: how long scale events of this direction can matter."""
    return max((p.period_seconds for p in rules.policies), default=0)


def record_scale_event(
    *,
    scale_up_events: tuple[ScaleEvent, ...],
    scale_down_events: tuple[ScaleEvent, ...],
    behavior: Behavior | None,
    previous_replicas: int,
    new_replicas: int,
    now: float,
) -> tuple[tuple[ScaleEvent, ...], tuple[ScaleEvent, ...]]:
    """``storeScaleEvent``: remember a change, dropping events older than the longest period.

    Events are stored as positive sizes per direction, as the HPA does. Without a
    ``behavior`` nothing is stored: the legacy path never reads them.
    """
    if behavior is None or new_replicas == previous_replicas:
        return scale_up_events, scale_down_events
    if new_replicas > previous_replicas:
        cutoff = now - longest_policy_period(behavior.scale_up)
        kept = tuple(e for e in scale_up_events if e.at > cutoff)
        return (*kept, ScaleEvent(new_replicas - previous_replicas, now)), scale_down_events
    cutoff = now - longest_policy_period(behavior.scale_down)
    kept = tuple(e for e in scale_down_events if e.at > cutoff)
    return scale_up_events, (*kept, ScaleEvent(previous_replicas - new_replicas, now))
