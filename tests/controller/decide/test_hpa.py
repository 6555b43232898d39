"""End-to-end tests of ``controller.decide.hpa.plan``: HPA syncs composed as in ``reconcileAutoscaler``.

Single-sync cases are translated from kubernetes
``pkg/controller/podautoscaler/horizontal_test.go`` (``TestScaleUp``, ``TestScaleUpUnreadyLessScale``,
``TestScaleUpUnreadyNoScale``, ``TestScaleUpIgnoresFailedPods``, ``TestScaleDown``,
``TestScaleDownIncludeUnreadyPods``, ``TestScaleDownRCImmediately``,
``TestScaleDownStabilizeInitialSize``) with the same per-pod conversion as ``test_replicas.py``
(``load`` = usage / per-pod request). Multi-sync sequences thread ``Plan.state`` from one sync
into the next, 15 s apart as ``--horizontal-pod-autoscaler-sync-period`` does by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from controller.decide.hpa import HpaParams, plan
from controller.domain import (
    Behavior,
    ControllerState,
    Decision,
    Observation,
    Plan,
    PolicyType,
    Reason,
    Recommendation,
    ScaleEvent,
    ScalingPolicy,
    ScalingRules,
    SelectPolicy,
    default_behavior,
)

SYNC = 15.0
T0 = 10_000.0


def observe(
    *, current: int, load: float | None, ready: int | None = None, starting: int = 0, at: float = T0
) -> Observation:
    """What a sync sees; by default every pod of ``spec.replicas`` is ready."""
    return Observation(
        at=at,
        load=load,
        ready=current if ready is None else ready,
        starting=starting,
        current_replicas=current,
    )


def only(result: Plan) -> Decision:
    assert len(result.decisions) == 1
    return result.decisions[0]


# ---------------------------------------------------------------------------------------------
# One sync (horizontal_test.go)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncCase:
    # settings
    params: HpaParams
    # history
    state: ControllerState
    # observed world
    obs: Observation
    # expected
    expected: int
    expected_reason: Reason


MIN2_MAX6_CPU30 = HpaParams(target_utilization_ratio=0.30, min_replicas=2, max_replicas=6)
MIN2_MAX6_CPU50 = HpaParams(target_utilization_ratio=0.50, min_replicas=2, max_replicas=6)
# An HPA that has been running: its last recommendation has left the 300 s window.
AGED_HISTORY = ControllerState(recommendations=(Recommendation(5, T0 - 600),))

SYNC_CASES = [
    pytest.param(
        SyncCase(  # TestScaleUp
            # settings
            params=MIN2_MAX6_CPU30,
            # history
            state=ControllerState(),
            # observed world: 300, 500, 700 m of 1000 m
            obs=observe(current=3, load=1.5),
            # expected
            expected=5,  # 50 / 30 * 3 = 5.0; cap max(2 * 3, 4) = 6 and max 6 do not bind
            expected_reason=Reason.UtilizationAboveTarget,
        ),
        id="scale-up",
    ),
    pytest.param(
        SyncCase(  # TestScaleUpUnreadyLessScale
            # settings
            params=MIN2_MAX6_CPU30,
            # history
            state=ControllerState(),
            # observed world: pod 0 unready
            obs=observe(current=3, ready=2, starting=1, load=1.2),
            # expected
            expected=4,  # 40% over 3 pods; ceil(40 / 30 * 3)
            expected_reason=Reason.StartingPodsCountedAsZero,
        ),
        id="scale-up-with-an-unready-pod-is-smaller",
    ),
    pytest.param(
        SyncCase(  # TestScaleUpUnreadyNoScale
            # settings
            params=MIN2_MAX6_CPU30,
            # history
            state=ControllerState(),
            # observed world: pods 1 and 2 unready
            obs=observe(current=3, ready=1, starting=2, load=0.4),
            # expected
            expected=3,  # 13% over 3 pods reverses the direction; AbleToScale stays ReadyForNewScale
            expected_reason=Reason.StartingPodsCountedAsZero,
        ),
        id="unready-pods-prevent-a-scale-up",
    ),
    pytest.param(
        SyncCase(  # TestScaleUpIgnoresFailedPods
            # settings
            params=MIN2_MAX6_CPU30,
            # history
            state=ControllerState(),
            # observed world: two failed pods are not counted
            obs=observe(current=2, load=1.2),
            # expected
            expected=4,  # 60 / 30 * 2; cap max(4, 4)
            expected_reason=Reason.UtilizationAboveTarget,
        ),
        id="scale-up-ignores-failed-pods",
    ),
    pytest.param(
        SyncCase(  # TestScaleDown (recommendations: [] = nothing recent)
            # settings
            params=MIN2_MAX6_CPU50,
            # history
            state=AGED_HISTORY,
            # observed world: 100, 300, 500, 250, 250 m of 1000 m
            obs=observe(current=5, load=1.4),
            # expected
            expected=3,  # 28%; ceil(28 / 50 * 5) = ceil(2.8)
            expected_reason=Reason.UtilizationBelowTarget,
        ),
        id="scale-down-without-recent-recommendations",
    ),
    pytest.param(
        SyncCase(  # TestScaleDownIncludeUnreadyPods
            # settings
            params=MIN2_MAX6_CPU50,
            # history
            state=AGED_HISTORY,
            # observed world: pods 3 and 4 unready
            obs=observe(current=5, ready=3, starting=2, load=0.9),
            # expected
            expected=2,  # 30%; ceil(30 / 50 * 3) = ceil(1.8); min 2 does not bind
            expected_reason=Reason.UtilizationBelowTarget,
        ),
        id="scale-down-over-ready-pods-only",
    ),
    pytest.param(
        SyncCase(  # TestScaleDownRCImmediately
            # settings
            params=HpaParams(target_utilization_ratio=0.50, min_replicas=2, max_replicas=5),
            # history
            state=ControllerState(),
            # observed world: far above target, but the count is above max
            obs=observe(current=6, load=17.5),
            # expected
            expected=5,  # straight to max, without metrics
            expected_reason=Reason.AboveMaxReplicas,
        ),
        id="current-above-max-is-scaled-to-max-immediately",
    ),
    pytest.param(
        SyncCase(  # reconcileAutoscaler: currentReplicas < minReplicas
            # settings
            params=MIN2_MAX6_CPU50,
            # history
            state=ControllerState(),
            # observed world: idle, but the count is below min
            obs=observe(current=1, load=0.0),
            # expected
            expected=2,  # straight to min, without metrics
            expected_reason=Reason.BelowMinReplicas,
        ),
        id="current-below-min-is-scaled-to-min-immediately",
    ),
    pytest.param(
        SyncCase(  # reconcileAutoscaler: scale.Spec.Replicas == 0 && minReplicas != 0
            # settings
            params=MIN2_MAX6_CPU50,
            # history
            state=ControllerState(),
            # observed world
            obs=observe(current=0, load=3.0),
            # expected
            expected=0,  # "scaling is disabled since the replica count of the target is zero"
            expected_reason=Reason.ScalingDisabled,
        ),
        id="target-scaled-to-zero-disables-autoscaling",
    ),
]


@pytest.mark.parametrize("case", SYNC_CASES)
def test_one_sync_matches_the_horizontal_controller(case: SyncCase) -> None:
    decision = only(plan(case.obs, case.params, case.state, T0, target="web"))
    assert (decision.to_value, decision.reason) == (case.expected, case.expected_reason)
    assert decision.from_value == case.obs.current_replicas
    assert decision.kind == ("scale" if case.expected != case.obs.current_replicas else "no-op")
    assert decision.target == "web"


def test_first_sync_of_a_new_hpa_does_not_scale_down() -> None:
    """TestScaleDownStabilizeInitialSize: ``recommendations: nil``, 28% against a 50% target."""
    decision = only(plan(observe(current=5, load=1.4), MIN2_MAX6_CPU50, ControllerState(), T0))
    assert (decision.to_value, decision.reason) == (5, Reason.ScaleDownStabilized)  # max(raw 3, initial 5)


# ---------------------------------------------------------------------------------------------
# Several syncs: the legacy path (no behavior field)
# ---------------------------------------------------------------------------------------------


def test_legacy_scale_down_waits_for_300_seconds_of_lower_recommendations() -> None:
    params = HpaParams(target_utilization_ratio=0.70)
    # t = 0: steady at target, 7.0 / 10 pods = 70%: recommendation 10 recorded.
    first = plan(observe(current=10, load=7.0), params, ControllerState(), T0)
    assert only(first).kind == "no-op"
    assert only(first).reason is Reason.WithinTolerance
    state = first.state
    assert state.recommendations[-1] == Recommendation(10, T0)

    # Load halves: 3.5 / 10 pods = 35%; raw ceil(35 / 70 * 10) = 5, held at 10 while 10 is in the window.
    for t in range(15, 301, 15):  # t = 15 .. 300 s: the sample at T0 is not before T0 + t - 300
        result = plan(observe(current=10, load=3.5), params, state, T0 + t)
        decision = only(result)
        assert (decision.kind, decision.to_value, decision.reason) == ("no-op", 10, Reason.ScaleDownStabilized), t
        assert decision.stages == (
            ("raw_replicas", 5, Reason.UtilizationBelowTarget),
            ("stabilized_replicas", 10, Reason.ScaleDownStabilized),
            ("desired_replicas", 10, Reason.DesiredWithinRange),
        )
        state = result.state

    # t = 315: the sample of 10 at T0 is before the cutoff T0 + 15; all recent ones are 5.
    result = plan(observe(current=10, load=3.5), params, state, T0 + 315)
    decision = only(result)
    assert (decision.kind, decision.from_value, decision.to_value) == ("scale", 10, 5)  # in one step: no rate limit
    assert decision.reason is Reason.UtilizationBelowTarget
    assert decision.stages[1] == ("stabilized_replicas", 5, Reason.ReadyForNewScale)
    # The legacy path keeps no scale events.
    assert (result.state.scale_up_events, result.state.scale_down_events) == ((), ())
    # The window now holds the twenty 5s of t = 15 .. 300 and the new one.
    assert [r.replicas for r in result.state.recommendations] == [5] * 21


def test_legacy_scale_down_stabilization_follows_the_flag() -> None:
    """--horizontal-pod-autoscaler-downscale-stabilization=1m: the same drop goes through after 60 s."""
    params = HpaParams(target_utilization_ratio=0.70, downscale_stabilization_seconds=60)
    state = plan(observe(current=10, load=7.0), params, ControllerState(), T0).state
    for t in (15, 30, 45, 60):
        result = plan(observe(current=10, load=3.5), params, state, T0 + t)
        assert only(result).to_value == 10, t
        state = result.state
    assert only(plan(observe(current=10, load=3.5), params, state, T0 + 75)).to_value == 5


def test_legacy_scale_up_is_capped_at_double_or_four_per_sync() -> None:
    params = HpaParams(target_utilization_ratio=0.70)
    state = ControllerState()

    # t = 0: 1 pod at 1000%: raw ceil(1000 / 70 * 1) = 15, capped at max(2 * 1, 4) = 4.
    result = plan(observe(current=1, load=10.0), params, state, T0)
    decision = only(result)
    assert (decision.kind, decision.from_value, decision.to_value) == ("scale", 1, 4)
    assert decision.reason is Reason.ScaleUpLimit
    assert decision.message == "the desired replica count is increasing faster than the maximum scale rate"
    assert decision.stages == (
        ("raw_replicas", 15, Reason.UtilizationAboveTarget),
        ("stabilized_replicas", 15, Reason.ReadyForNewScale),
        ("desired_replicas", 4, Reason.ScaleUpLimit),
    )

    # t = 15: 4 pods at 250%: raw ceil(250 / 70 * 4) = ceil(14.29) = 15, capped at max(2 * 4, 4) = 8.
    result = plan(observe(current=4, load=10.0), params, result.state, T0 + SYNC)
    assert (only(result).to_value, only(result).reason) == (8, Reason.ScaleUpLimit)

    # t = 30: 8 pods at 125%: raw ceil(125 / 70 * 8) = 15 <= max(2 * 8, 4) = 16.
    result = plan(observe(current=8, load=10.0), params, result.state, T0 + 2 * SYNC)
    assert (only(result).to_value, only(result).reason) == (15, Reason.UtilizationAboveTarget)

    # t = 45: 15 pods at 10000 * 100 / 15000 = 66%: 66 / 70 = 0.94 is within tolerance.
    result = plan(observe(current=15, load=10.0), params, result.state, T0 + 3 * SYNC)
    assert (only(result).kind, only(result).to_value, only(result).reason) == ("no-op", 15, Reason.WithinTolerance)


def test_legacy_scale_up_is_capped_by_max_replicas_before_the_rate() -> None:
    params = HpaParams(target_utilization_ratio=0.70, max_replicas=3)
    decision = only(plan(observe(current=1, load=10.0), params, ControllerState(), T0))
    # raw 15; max 3 <= cap 4, so max is the limiting bound.
    assert (decision.to_value, decision.reason) == (3, Reason.TooManyReplicas)
    assert decision.message == "the desired replica count is more than the maximum replica count"


def test_starting_pods_count_as_zero_on_a_scale_up() -> None:
    params = HpaParams(target_utilization_ratio=0.50)

    # t = 0: 4 pods at 100% against 50%: ceil(2.0 * 4) = 8 <= max(2 * 4, 4).
    result = plan(observe(current=4, load=4.0), params, ControllerState(), T0)
    assert only(result).to_value == 8

    # t = 15: the 4 new pods are still starting; load grew to 4.3.
    # On the 4 ready pods: 4300 * 100 / 4000 = 107% -> a naive count would ask ceil(107 / 50 * 4) = 9.
    # With the starting pods at 0%: 4300 * 100 / 8000 = 53%; 53 / 50 = 1.06 is within tolerance: hold 8.
    result = plan(observe(current=8, ready=4, starting=4, load=4.3), params, result.state, T0 + SYNC)
    decision = only(result)
    assert (decision.kind, decision.to_value, decision.reason) == ("no-op", 8, Reason.StartingPodsCountedAsZero)
    assert decision.stages[0] == ("raw_replicas", 8, Reason.StartingPodsCountedAsZero)

    # t = 30: all 8 ready, same load: 53%, still within tolerance.
    result = plan(observe(current=8, load=4.3), params, result.state, T0 + 2 * SYNC)
    assert (only(result).to_value, only(result).reason) == (8, Reason.WithinTolerance)

    # t = 45: demand jumps while 4 pods are starting again: 2 ready of 8 at 12000 m.
    # Ready: 12000 * 100 / 2000 = 600%; all 8 at 0% for the starting: 12000 * 100 / 8000 = 150%;
    # ceil(150 / 50 * 8) = 24, capped at max(2 * 8, 4) = 16.
    result = plan(observe(current=8, ready=2, starting=6, load=12.0), params, result.state, T0 + 3 * SYNC)
    assert only(result).stages[0] == ("raw_replicas", 24, Reason.StartingPodsCountedAsZero)
    assert (only(result).to_value, only(result).reason) == (16, Reason.ScaleUpLimit)


def test_starting_pods_never_turn_a_hot_reading_into_a_scale_in() -> None:
    params = HpaParams(target_utilization_ratio=0.50)
    # 2 ready pods at 110%; with 6 starting pods at 0%: 2200 * 100 / 8000 = 27% < 50%:
    # the direction flips, so the HPA keeps 8 (it would otherwise have recommended ceil(0.54 * 8) = 5).
    decision = only(plan(observe(current=8, ready=2, starting=6, load=2.2), params, ControllerState(), T0))
    assert (decision.kind, decision.to_value, decision.reason) == ("no-op", 8, Reason.StartingPodsCountedAsZero)


@pytest.mark.parametrize(
    ("obs", "reason"),
    [
        pytest.param(observe(current=5, load=None), Reason.MetricsUnavailable, id="no-metric"),
        pytest.param(observe(current=5, ready=0, starting=5, load=0.0), Reason.NoReadyPods, id="no-ready-pod"),
    ],
)
def test_metrics_unavailable_holds_and_records_nothing(obs: Observation, reason: Reason) -> None:
    params = HpaParams(target_utilization_ratio=0.50, behavior=default_behavior())
    history = ControllerState(
        recommendations=(Recommendation(5, T0 - 30), Recommendation(5, T0 - 15)),
        scale_up_events=(ScaleEvent(1, T0 - 30),),
        scale_down_events=(ScaleEvent(2, T0 - 400),),  # stale, but nothing is trimmed either
    )
    result = plan(obs, params, history, T0)
    decision = only(result)
    assert (decision.kind, decision.from_value, decision.to_value, decision.reason) == ("no-op", 5, 5, reason)
    assert decision.stages == (("raw_replicas", 5, reason),)
    assert result.state == history


def test_missing_metrics_during_a_scale_down_window_do_not_advance_it() -> None:
    """Syncs without metrics record no recommendation, so they neither shorten nor extend the window."""
    params = HpaParams(target_utilization_ratio=0.70)
    state = plan(observe(current=10, load=7.0), params, ControllerState(), T0).state  # recommendation 10 at T0
    for t in range(15, 301, 15):
        result = plan(observe(current=10, load=None), params, state, T0 + t)
        assert only(result).to_value == 10
        assert result.state == state
    # The first sync with metrics after the window sees only the new low recommendation.
    assert only(plan(observe(current=10, load=3.5), params, state, T0 + 315)).to_value == 5


def test_count_out_of_range_is_brought_into_range_without_touching_recommendations() -> None:
    params = HpaParams(target_utilization_ratio=0.50, min_replicas=2, max_replicas=6)
    history = ControllerState(recommendations=(Recommendation(9, T0 - 15),))

    above = plan(observe(current=9, load=0.1), params, history, T0)
    assert (only(above).to_value, only(above).reason) == (6, Reason.AboveMaxReplicas)
    assert only(above).message == "current number of replicas above max replicas"
    assert only(above).stages == ()
    assert above.state == history  # legacy: no events, and no recommendation recorded

    below = plan(observe(current=1, load=50.0), params, history, T0)
    assert (only(below).to_value, only(below).reason) == (2, Reason.BelowMinReplicas)
    assert only(below).message == "current number of replicas below min replicas"
    assert below.state == history


# ---------------------------------------------------------------------------------------------
# Several syncs: the behavior path with the default behavior
# ---------------------------------------------------------------------------------------------


def test_default_behavior_scales_up_by_4_pods_or_100_percent_per_15_seconds() -> None:
    params = HpaParams(target_utilization_ratio=0.50, max_replicas=100, behavior=default_behavior())

    # t = 0: 1 pod at 1000%: raw ceil(1000 / 50 * 1) = 20; limit max(1 + 4, ceil(1 * 2)) = 5.
    result = plan(observe(current=1, load=10.0), params, ControllerState(), T0)
    decision = only(result)
    assert (decision.kind, decision.to_value) == ("scale", 5)
    assert decision.stages == (
        ("raw_replicas", 20, Reason.UtilizationAboveTarget),
        ("stabilized_replicas", 20, Reason.ReadyForNewScale),  # no scale-up window
        ("desired_replicas", 5, Reason.ScaleUpLimit),
    )
    assert decision.reason is Reason.ScaleUpLimit
    assert result.state.scale_up_events == (ScaleEvent(4, T0),)
    assert result.state.scale_down_events == ()

    # t = 15: the event at T0 is not after T0 + 15 - 15; 5 pods at 200%: raw 20;
    # limit max(5 + 4, ceil(5 * 2)) = 10: the Percent policy wins.
    result = plan(observe(current=5, load=10.0), params, result.state, T0 + SYNC)
    assert (only(result).to_value, only(result).reason) == (10, Reason.ScaleUpLimit)
    assert result.state.scale_up_events == (ScaleEvent(5, T0 + SYNC),)  # the event of T0 is past the 15 s period

    # t = 30: 10 pods at 100%: raw 20; limit max(14, 20) = 20.
    result = plan(observe(current=10, load=10.0), params, result.state, T0 + 2 * SYNC)
    assert (only(result).to_value, only(result).reason) == (20, Reason.UtilizationAboveTarget)
    assert only(result).stages[2] == ("desired_replicas", 20, Reason.DesiredWithinRange)

    # t = 45: 20 pods at 50%: on target.
    result = plan(observe(current=20, load=10.0), params, result.state, T0 + 3 * SYNC)
    assert (only(result).kind, only(result).to_value) == ("no-op", 20)


def test_default_behavior_holds_a_second_scale_up_within_the_same_period() -> None:
    params = HpaParams(target_utilization_ratio=0.50, max_replicas=100, behavior=default_behavior())
    state = plan(observe(current=1, load=10.0), params, ControllerState(), T0).state  # 1 -> 5 at T0
    # 10 s later (a sync triggered early): the period started at 5 - 4 = 1 replica,
    # limit max(1 + 4, ceil(1 * 2)) = 5 = current: hold.
    decision = only(plan(observe(current=5, load=10.0), params, state, T0 + 10))
    assert (decision.kind, decision.to_value, decision.reason) == ("no-op", 5, Reason.ScaleUpLimit)


def test_default_behavior_scales_down_after_the_300_second_window_in_one_step() -> None:
    params = HpaParams(target_utilization_ratio=0.50, max_replicas=100, behavior=default_behavior())
    state = ControllerState()
    # Steady at 20 pods and 50% for a while: recommendations of 20 at T0 .. T0 + 45.
    for t in (0, 15, 30, 45):
        result = plan(observe(current=20, load=10.0), params, state, T0 + t)
        assert only(result).to_value == 20
        state = result.state

    # From t = 60 the load drops to 2.0: 10%, raw ceil(10 / 50 * 20) = 4;
    # the band's upper edge is the highest recommendation after now - 300.
    for t in range(60, 331, 15):  # the 20 recorded at T0 + 45 is after T0 + t - 300 until t = 345
        result = plan(observe(current=20, load=2.0), params, state, T0 + t)
        decision = only(result)
        assert (decision.kind, decision.to_value, decision.reason) == ("no-op", 20, Reason.ScaleDownStabilized), t
        state = result.state

    result = plan(observe(current=20, load=2.0), params, state, T0 + 345)
    decision = only(result)
    # Percent 100 per 15 s allows int(20 * 0) = 0, so the whole drop happens at once.
    assert (decision.kind, decision.from_value, decision.to_value) == ("scale", 20, 4)
    assert decision.stages == (
        ("raw_replicas", 4, Reason.UtilizationBelowTarget),
        ("stabilized_replicas", 4, Reason.ReadyForNewScale),
        ("desired_replicas", 4, Reason.DesiredWithinRange),
    )
    assert result.state.scale_down_events == (ScaleEvent(16, T0 + 345),)


def test_behavior_scale_down_rate_limits_each_period() -> None:
    """Documentation: Pods 4 / Percent 10 per 60 s with no window: 80 -> 72, then held for the minute."""
    behavior = Behavior(
        scale_up=default_behavior().scale_up,
        scale_down=ScalingRules(
            stabilization_window_seconds=0,
            select_policy=SelectPolicy.Max,
            policies=(ScalingPolicy(PolicyType.Pods, 4, 60), ScalingPolicy(PolicyType.Percent, 10, 60)),
        ),
    )
    params = HpaParams(target_utilization_ratio=0.50, behavior=behavior)
    # 10.0 pod units over 80 pods: 10000 * 100 / 80000 = 12%; raw ceil(12 / 50 * 80) = ceil(19.2) = 20.
    result = plan(observe(current=80, load=10.0), params, ControllerState(), T0)
    assert (only(result).to_value, only(result).reason) == (72, Reason.ScaleDownLimit)  # min(int(72.0), 76)
    assert result.state.scale_down_events == (ScaleEvent(8, T0),)

    # 15 s later (raw ceil(13 / 50 * 72) = 19): the period started at 72 + 8 = 80, so the limit is still 72.
    result = plan(observe(current=72, load=10.0), params, result.state, T0 + SYNC)
    assert (only(result).kind, only(result).to_value, only(result).reason) == ("no-op", 72, Reason.ScaleDownLimit)

    # 60 s after the first step: int(72 * 0.9) = 64.
    result = plan(observe(current=72, load=10.0), params, result.state, T0 + 60)
    assert (only(result).to_value, only(result).reason) == (64, Reason.ScaleDownLimit)


def test_behavior_guard_to_max_records_a_scale_event() -> None:
    params = HpaParams(target_utilization_ratio=0.50, min_replicas=1, max_replicas=10, behavior=default_behavior())
    history = ControllerState(recommendations=(Recommendation(20, T0 - 15),))
    result = plan(observe(current=20, load=10.0), params, history, T0)
    assert (only(result).to_value, only(result).reason) == (10, Reason.AboveMaxReplicas)
    # storeScaleEvent runs on every rescale, guards included; recommendations are untouched.
    assert result.state == ControllerState(
        recommendations=history.recommendations,
        scale_up_events=(),
        scale_down_events=(ScaleEvent(10, T0),),
    )
