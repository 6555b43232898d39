"""The predictive planner: named stages, and its invariants for any input (hypothesis)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.decide import planner, replicas, stabilize
from controller.decide.leadtime import StartupEstimate, lead_seconds
from controller.domain import (
    ControllerState,
    Observation,
    Outcome,
    PolicyType,
    Reason,
    Recommendation,
    ScaleEvent,
    ScalingPolicy,
    ScalingRules,
    SelectPolicy,
)
from models.base import Forecast

NOW = 10_000.0
BELOW, INSIDE, ABOVE = Outcome.BELOW, Outcome.INSIDE, Outcome.ABOVE
TIMING = planner.Timing(lead_seconds=150.0, startup_seconds=120.0)


def make_forecast(levels_values: dict[float, list[float]], *, start=NOW - 30.0, step=60.0) -> Forecast:
    n = len(next(iter(levels_values.values())))
    mean = np.asarray(levels_values.get(0.5, next(iter(levels_values.values()))), dtype=float)
    return Forecast(start=start, step_seconds=step, mean=mean, quantiles={q: np.asarray(v, float) for q, v in levels_values.items()})


def flat_forecast(value: float, *, spread: float = 0.1, n: int = 6) -> Forecast:
    return make_forecast({
        0.1: [value * (1 - spread)] * n,
        0.5: [value] * n,
        0.9: [value * (1 + spread)] * n,
        0.975: [value * (1 + 2 * spread)] * n,
    })


def observe(*, load, ready, starting=0, current=None) -> Observation:
    return Observation(NOW, load, ready, starting, ready + starting if current is None else current)


#: The defaults, but provisioning the 0.9 quantile at full utilisation and without the hysteresis
#: band, so the arithmetic below stays plain (the band has its own tests).
FULL = planner.PlannerParams(
    target_utilization_ratio=1.0, quantile=0.9, scale_up_headroom=0.0, scale_in_band=0.0, scale_down_headroom=0.0
)
#: ``FULL`` with the default hysteresis band.
BANDED = planner.PlannerParams(target_utilization_ratio=1.0, quantile=0.9)


def plan(obs, forecast, state=ControllerState(), params=FULL, timing=TIMING):
    return planner.plan(obs, forecast, params, state, NOW, timing=timing, target="w")


def stages(p):
    return {name: (value, reason) for name, value, reason in p.decisions[0].stages}


# --- stages -------------------------------------------------------------------------------


def test_scales_up_ahead_of_a_forecast_rise_to_the_quantile_over_the_lead_interval():
    # forecast points at now-30, +30, +90, +150, +210 s; a pod ordered now serves from now+120 (index 3)
    # to the end of the lead interval now+150 (index 3)
    f = make_forecast({0.1: [9, 9, 14, 19, 30], 0.5: [10, 10, 15, 20, 40], 0.9: [11, 11, 16.5, 22.2, 50], 0.975: [12] * 5})
    p = plan(observe(load=10.0, ready=11), f)
    s = stages(p)
    assert s["forecast_replicas"][0] == 23  # ceil(22.2 / 1.0)
    assert s["floor_replicas"][0] == 11  # 10/11 = 90% utilisation at target 100%: within tolerance, keep
    assert s["raw_replicas"] == (23, Reason.ForecastAboveFloor)
    assert p.desired_replicas == 22  # the scale-up rate allows max(11 + 4, 11 * 2) = 22 this tick
    assert p.decisions[0].reason is Reason.ScaleUpLimit


def test_a_surprise_above_the_forecast_is_met_by_the_reactive_floor():
    p = plan(observe(load=30.0, ready=10), flat_forecast(10.0))
    s = stages(p)
    assert s["forecast_replicas"][0] == 11  # ceil(10 * 1.1)
    assert s["floor_replicas"][0] == 30  # the HPA calculation: 300% / 100% * 10
    assert p.desired_replicas == 20  # the scale-up rate: max(10 + 4, 10 * 2)
    nxt = planner.plan(Observation(NOW + 15, 30.0, 10, 10, 20), flat_forecast(10.0), FULL, p.state, NOW + 15, timing=TIMING)
    # 15 s later the period has passed: starting pods count as 0, 30 / 20 pods = 150% -> 30
    assert nxt.desired_replicas == 30


def test_without_a_forecast_the_floor_is_the_hpa_at_0_7():
    p = plan(observe(load=14.0, ready=10), None)
    s = stages(p)
    assert s["forecast_replicas"] == (0, Reason.NoForecast)
    assert s["floor_replicas"][0] == 20  # 140% / 70% * 10
    assert p.desired_replicas == 20


def test_a_scale_up_orders_headroom_above_the_need():
    p = plan(observe(load=10.0, ready=8), flat_forecast(10.0), params=BANDED)
    s = stages(p)
    assert s["raw_replicas"][0] == 11  # ceil(11 / 1.0): the 0.9 quantile
    assert s["banded_replicas"] == (13, Reason.ScaleUpHeadroom)  # ceil(11 * 1.1)
    assert p.desired_replicas == 13 and p.decisions[0].reason is Reason.ScaleUpHeadroom


def test_no_scale_in_while_the_count_is_within_the_band_above_the_need():
    old = ControllerState(recommendations=(Recommendation(20, NOW - 400),))
    # need 11; 13 <= ceil(11 * 1.2) = 14: hold
    p = plan(observe(load=10.0, ready=13), flat_forecast(10.0), state=old, params=BANDED)
    assert p.desired_replicas == 13 and p.decisions[0].reason is Reason.ScaleInWithinBand
    # 20 > 14: scale in, but only to ceil(11 * 1.1) = 13, not to the need itself
    p = plan(observe(load=10.0, ready=20), flat_forecast(10.0), state=old, params=BANDED)
    assert p.desired_replicas == 13 and p.decisions[0].reason is Reason.ScaleDownHeadroom
    # without the band the same tick scales in to the need
    assert plan(observe(load=10.0, ready=20), flat_forecast(10.0), state=old).desired_replicas == 11


def test_without_a_trusted_forecast_there_is_no_band_the_planner_is_the_hpa():
    p = plan(observe(load=14.0, ready=10), None, params=BANDED)
    assert p.desired_replicas == 20  # 140% / 70% * 10, no headroom on top


def test_the_scale_down_window_can_be_the_lead_time():
    history = ControllerState(recommendations=(Recommendation(20, NOW - 200),))
    # 200 s ago is inside the behaviour's 300 s window, outside a lead of 150 s
    assert plan(observe(load=5.0, ready=20), flat_forecast(5.0), state=history).desired_replicas == 20
    params = dataclasses.replace(FULL, scale_down_window_from_lead=True)
    assert plan(observe(load=5.0, ready=20), flat_forecast(5.0), state=history, params=params).desired_replicas == 10
    # a short lead (30 s startup: 60 s) still keeps the 150 s floor: 100 s ago is inside it
    recent = ControllerState(recommendations=(Recommendation(20, NOW - 100),))
    short = planner.Timing(lead_seconds=60.0, startup_seconds=30.0)
    assert plan(observe(load=5.0, ready=20), flat_forecast(5.0), state=recent, params=params, timing=short).desired_replicas == 20
    floorless = dataclasses.replace(params, min_lead_window_seconds=0)
    assert plan(observe(load=5.0, ready=20), flat_forecast(5.0), state=recent, params=floorless, timing=short).desired_replicas == 10


def test_missing_metrics_never_scale_in():
    p = plan(observe(load=None, ready=10), flat_forecast(2.0))
    assert p.desired_replicas == 10


def test_scale_in_waits_for_the_stabilization_window():
    history = ControllerState(recommendations=(Recommendation(20, NOW - 200), Recommendation(20, NOW - 100)))
    p = plan(observe(load=5.0, ready=20), flat_forecast(5.0), state=history)
    assert p.desired_replicas == 20  # the 300 s window still holds recommendations of 20
    old = ControllerState(recommendations=(Recommendation(20, NOW - 400),))
    p = plan(observe(load=5.0, ready=20), flat_forecast(5.0), state=old)
    assert p.desired_replicas == 10  # the window has passed; -50% per 60 s limits 20 -> 10


def test_a_scale_in_that_the_rate_budget_cuts_to_a_sliver_waits_for_a_whole_step():
    # -50% per 60 s: 20 -> 11 forty seconds ago leaves 1 pod of budget (5%, within the 10% tolerance)
    state = ControllerState(
        recommendations=(Recommendation(20, NOW - 400),), scale_down_events=(ScaleEvent(9, NOW - 40),)
    )
    p = plan(observe(load=5.0, ready=11), flat_forecast(5.0), state=state)
    assert p.desired_replicas == 11 and stages(p)["rate_limited_replicas"][1] == Reason.ScaleInWithinTolerance
    later = dataclasses.replace(state, scale_down_events=(ScaleEvent(9, NOW - 70),))
    assert plan(observe(load=5.0, ready=11), flat_forecast(5.0), state=later).desired_replicas == 6  # a whole step


@pytest.mark.parametrize(
    ("policy", "start", "expected"),
    [
        pytest.param(ScalingPolicy(PolicyType.Pods, 1, 60), 30, 3, id="one-pod-a-minute"),
        pytest.param(ScalingPolicy(PolicyType.Percent, 5, 60), 30, 3, id="five-percent-a-minute"),
    ],
)
def test_a_rate_policy_slower_than_the_tolerance_still_scales_in(policy, start, expected):
    # Every step it allows is within the 10% tolerance: the small steps are the only way in.
    behavior = dataclasses.replace(
        FULL.behavior, scale_down=ScalingRules(300, SelectPolicy.Max, (policy,))
    )
    params = dataclasses.replace(FULL, behavior=behavior)
    state, now, current = ControllerState(), NOW, start
    for _ in range(4 * 60 * 3):  # three hours of ticks at load 2.5 pods' worth
        obs = Observation(now, 2.5, current, 0, current)
        p = planner.plan(obs, flat_forecast(2.5, spread=0.0), params, state, now, timing=TIMING, target="w")
        state, current = p.state, p.desired_replicas
        now += 15.0
    assert current == expected


def test_a_target_scaled_to_zero_is_left_there_as_the_hpa_leaves_it():
    p = plan(observe(load=30.0, ready=0, current=0), flat_forecast(30.0))
    assert p.desired_replicas == 0 and p.decisions[0].kind == "no-op"
    assert p.decisions[0].reason == Reason.ScalingDisabled
    assert plan(observe(load=30.0, ready=1), flat_forecast(30.0)).desired_replicas > 1  # scaled up again: planned


def test_the_scale_in_guard_keeps_what_the_forecast_needs_before_a_replacement_could_start():
    # now low, but the forecast peaks inside the lead interval: no scale-in below that peak
    f = make_forecast({0.1: [4, 4, 4, 14, 4], 0.5: [5, 5, 5, 15, 5], 0.9: [6, 6, 6, 16, 6], 0.975: [7] * 5})
    state = ControllerState(recommendations=(Recommendation(40, NOW - 400),))
    p = plan(observe(load=5.0, ready=40), f, state=state)
    assert p.desired_replicas >= 16


def test_the_confidence_gate_widens_on_loads_above_the_intervals_then_distrusts_a_forecast_that_keeps_missing():
    f = flat_forecast(10.0)
    above = ControllerState(interval_outcomes=(ABOVE,) * 60 + (INSIDE,) * 180)  # 25% above, not more: trusted
    s = stages(plan(observe(load=10.0, ready=11), f, state=above))
    assert s["confidence"] == (75, Reason.ForecastTrusted) and s["forecast_replicas"][0] == 11  # ceil(10 * 1.1)
    above = ControllerState(interval_outcomes=(ABOVE,) * 65 + (INSIDE,) * 175)  # 27% above: widened to 0.975
    s = stages(plan(observe(load=10.0, ready=11), f, state=above))
    assert s["confidence"] == (73, Reason.QuantileWidened) and s["forecast_replicas"][0] == 12  # ceil(10 * 1.2)
    # Misses below cost pods, not service: a forecast that runs high is not widened, however often.
    below = ControllerState(interval_outcomes=(BELOW,) * 150 + (INSIDE,) * 90)  # 37% inside, none above
    s = stages(plan(observe(load=10.0, ready=11), f, state=below))
    assert s["confidence"] == (38, Reason.ForecastTrusted) and s["forecast_replicas"][0] == 11
    # Either side counts against trust: 12% inside is reactive at 0.7.
    for miss in (ABOVE, BELOW):
        misses = ControllerState(interval_outcomes=(miss,) * 210 + (INSIDE,) * 30)
        s = stages(plan(observe(load=10.0, ready=11), f, state=misses))
        assert s["confidence"][1] is Reason.ForecastDistrusted
        assert s["floor_replicas"][0] == 15  # 90% / 70% * 11 = 14.14 -> 15


def test_the_gate_counts_the_outcomes_above_only_once_half_its_window_has_come_due():
    f = flat_forecast(10.0)
    early = ControllerState(interval_outcomes=(INSIDE,) * 89 + (ABOVE,) * 30)  # under half an hour of them
    p = plan(observe(load=10.0, ready=11), f, state=early)
    assert stages(p)["confidence"] == (100, Reason.ForecastTrusted)
    assert "coverage 100%, above 0%" in p.decisions[0].message
    half = ControllerState(interval_outcomes=(INSIDE,) * 90 + (ABOVE,) * 30)  # half an hour: 25% above is scored
    p = plan(observe(load=10.0, ready=11), f, state=half)
    assert stages(p)["confidence"] == (75, Reason.ForecastTrusted) and "coverage 75%, above 25%" in p.decisions[0].message
    p = plan(observe(load=10.0, ready=11), f, state=ControllerState(interval_outcomes=(INSIDE,) * 89 + (ABOVE,) * 31))
    assert stages(p)["confidence"] == (74, Reason.QuantileWidened)
    p = plan(observe(load=10.0, ready=11), f, state=ControllerState(interval_outcomes=(ABOVE,) * 65 + (INSIDE,) * 175))
    assert p.decisions[0].message.startswith("widened mode, q=0.975") and "coverage 73%, above 27%" in p.decisions[0].message


def test_the_gate_judges_an_hour_of_outcomes_so_one_missed_ramp_does_not_distrust_the_forecast():
    f = flat_forecast(10.0)
    # Ten minutes of misses (one ramp the intervals did not cover) after fifty minutes of hits.
    ramp = ControllerState(interval_outcomes=(INSIDE,) * 200 + (ABOVE,) * 40)
    s = stages(plan(observe(load=10.0, ready=11), f, state=ramp))
    assert s["confidence"] == (83, Reason.ForecastTrusted)
    assert s["floor_replicas"][0] == 11  # the planner's own utilisation; the HPA's 0.7 would ask 15
    # Only the newest gate_window outcomes count: an hour of misses distrusts it.
    long_miss = ControllerState(interval_outcomes=(INSIDE,) * 200 + (ABOVE,) * 240)
    s = stages(plan(observe(load=10.0, ready=11), f, state=long_miss))
    assert s["confidence"] == (0, Reason.ForecastDistrusted)
    assert s["floor_replicas"][0] == 15


def test_forecast_checks_are_scored_when_they_come_due():
    due = ((8.0, 12.0), (11.0, 13.0), (4.0, 9.5), (10.0, 10.0), (math.nan, math.nan))
    state = ControllerState(pending_checks=(*((NOW - 1, lo, hi) for lo, hi in due), (NOW + 60, 0.0, 1.0)))
    p = plan(observe(load=10.0, ready=11), flat_forecast(10.0), state=state)
    # the bounds are inside; an interval that is not a number is a miss, not above
    assert p.state.interval_outcomes == (INSIDE, BELOW, ABOVE, INSIDE, BELOW)
    assert (NOW + 60, 0.0, 1.0) in p.state.pending_checks
    # and this tick's own interval at now + lead is queued
    assert (NOW + 150.0, 9.0, 11.0) in p.state.pending_checks


@pytest.mark.parametrize("load", [None, math.nan, math.inf])
def test_checks_that_come_due_without_a_load_are_dropped_not_scored_later(load):
    state = ControllerState(
        pending_checks=((NOW - 1, 8.0, 12.0), (NOW + 60, 0.0, 1.0)), interval_outcomes=(INSIDE,) * 10
    )
    p = plan(observe(load=load, ready=11), flat_forecast(10.0), state=state)
    assert p.state.interval_outcomes == (INSIDE,) * 10  # nothing scored
    assert (NOW - 1, 8.0, 12.0) not in p.state.pending_checks  # and the due one is gone
    assert (NOW + 60, 0.0, 1.0) in p.state.pending_checks

    # through a two-hour outage the list stays one lead time long, and the first load scores only what is due then
    params = dataclasses.replace(FULL)
    state, now = ControllerState(interval_outcomes=(INSIDE,) * 240), NOW
    for _ in range(480):
        state = planner.plan(Observation(now, load, 11, 0, 11), flat_forecast(10.0), params, state, now, timing=TIMING).state
        now += 15.0
    assert len(state.pending_checks) <= TIMING.lead_seconds / 15.0 + 1
    after = planner.plan(Observation(now, 30.0, 11, 0, 11), flat_forecast(10.0), params, state, now, timing=TIMING)
    assert after.state.interval_outcomes.count(ABOVE) <= 1 and BELOW not in after.state.interval_outcomes


@pytest.mark.parametrize("load", [None, math.nan])
def test_without_a_load_the_gate_still_judges_only_the_newest_window(load):
    # A restored annotation may hold more outcomes than the window (256 against 240): the older
    # hits must not dilute the newest misses when the load is missing at that tick.
    state = ControllerState(interval_outcomes=(INSIDE,) * 70 + (ABOVE,) * 186)
    p = plan(observe(load=load, ready=11), flat_forecast(10.0), state=state)
    assert len(p.state.interval_outcomes) == FULL.gate_window
    assert stages(p)["confidence"] == (round(100 * 54 / 240), Reason.ForecastDistrusted)  # 70 / 256 would only widen


# --- lead time ---------------------------------------------------------------------------------


def test_lead_is_startup_plus_lag_plus_one_tick():
    assert lead_seconds(startup_seconds=120, lag_seconds=15, tick_seconds=15) == 150


def test_the_startup_estimate_is_a_decayed_median_by_default():
    est = StartupEstimate(prior_seconds=120.0)
    assert est.seconds == 120.0
    est = est.observe([30.0] * 11 + [100.0] * 9)
    assert est.seconds == 100.0  # the 9 newest weigh more than the 11 oldest: 8.0 of 15.2 decayed weight
    est = est.observe([30.0] * 3)
    assert est.seconds == 30.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 600), max_size=70),
    st.lists(st.floats(0, 600), max_size=200),
    st.sampled_from([1, 3, 64]),
)
def test_a_batch_of_startups_is_observed_as_one_at_a_time(before, batch, keep):
    est = StartupEstimate(max_samples=keep).observe(before)
    one_by_one = est
    for seconds in batch:
        one_by_one = one_by_one.observe([seconds])
    assert est.observe(batch).samples == one_by_one.samples  # to the last bit


def test_the_startup_estimate_as_a_decayed_p90_follows_change():
    est = StartupEstimate(prior_seconds=120.0, quantile=0.9)
    assert est.seconds == 120.0
    est = est.observe([30.0] * 20)
    assert est.seconds == 30.0
    est = est.observe([30.0] * 17 + [100.0] * 3)
    assert est.seconds == 100.0  # the 3 newest pods were slow: 2.9 of ~22 decayed weight is above 10%
    est = est.observe([300.0] * 64)
    assert est.seconds == 300.0  # old samples age out
    assert est.observe([math.nan, -1.0]).seconds == 300.0


# --- invariants (hypothesis) ---------------------------------------------------------------------


@st.composite
def scenarios(draw):
    min_r = draw(st.integers(0, 5))
    max_r = draw(st.integers(max(min_r, 1), 60))
    ready = draw(st.integers(0, 70))
    starting = draw(st.integers(0, 10))
    load = draw(st.one_of(st.none(), st.floats(0, 100, allow_nan=False)))
    base = draw(st.floats(0, 80, allow_nan=False))
    path = [draw(st.floats(0, 80, allow_nan=False)) for _ in range(6)]
    spread = draw(st.floats(0, 1))
    f = None if draw(st.booleans()) and False else make_forecast({
        0.1: [p * (1 - spread / 2) for p in path],
        0.5: path,
        0.9: [p * (1 + spread) for p in path],
        0.975: [p * (1 + 2 * spread) + base * 0 for p in path],
    })
    if draw(st.integers(0, 9)) == 0:
        f = None
    recs = tuple(Recommendation(draw(st.integers(0, 70)), NOW - draw(st.integers(1, 600))) for _ in range(draw(st.integers(0, 6))))
    ups = tuple(ScaleEvent(draw(st.integers(1, 20)), NOW - draw(st.integers(1, 120))) for _ in range(draw(st.integers(0, 3))))
    downs = tuple(ScaleEvent(draw(st.integers(1, 20)), NOW - draw(st.integers(1, 120))) for _ in range(draw(st.integers(0, 3))))
    # up to the gate's whole window, so the gate widens and distrusts in some cases
    outcomes = tuple(draw(st.lists(st.sampled_from(Outcome), max_size=240)))
    params = planner.PlannerParams(
        min_replicas=min_r,
        max_replicas=max_r,
        scale_up_headroom=draw(st.sampled_from([0.0, 0.1, 0.5])),
        scale_in_band=draw(st.sampled_from([0.0, 0.2, 0.6])),
        scale_down_headroom=draw(st.sampled_from([0.0, 0.1, 0.3])),
        scale_down_window_from_lead=draw(st.booleans()),
    )
    state = ControllerState(recommendations=recs, scale_up_events=ups, scale_down_events=downs, interval_outcomes=outcomes)
    obs = Observation(NOW, load, ready, starting, ready + starting)
    return obs, f, params, state


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_invariants_of_plan(case):
    obs, f, params, state = case
    p = planner.plan(obs, f, params, state, NOW, timing=TIMING, target="w")
    desired, current = p.desired_replicas, obs.current_replicas
    s = {name: value for name, value, _ in p.decisions[0].stages}

    # always within [min, max], except a target scaled to zero by hand, which is left there as the HPA leaves it
    if current == 0 and params.min_replicas > 0:
        assert desired == 0 and p.decisions[0].kind == "no-op"
        return
    assert params.min_replicas <= desired <= params.max_replicas

    behavior = params.behavior
    up_limit = max(current, stabilize.scale_up_limit_with_rules(
        current_replicas=current, scale_up_events=state.scale_up_events, scale_down_events=state.scale_down_events,
        rules=behavior.scale_up, now=NOW))
    down_limit = min(current, stabilize.scale_down_limit_with_rules(
        current_replicas=current, scale_up_events=state.scale_up_events, scale_down_events=state.scale_down_events,
        rules=behavior.scale_down, now=NOW))
    inside_bounds = params.min_replicas <= current <= params.max_replicas

    if inside_bounds:
        # never past a rate policy
        assert down_limit <= desired <= max(up_limit, params.min_replicas)
        # never a scale-in inside the stabilisation window (or the cooldown it implements)
        if desired < current:
            window = behavior.scale_down.stabilization_window_seconds
            if params.scale_down_window_from_lead:
                window = max(params.min_lead_window_seconds, math.ceil(TIMING.lead_seconds))
            recent = [r.replicas for r in state.recommendations if r.at > NOW - window]
            assert desired >= min(current, max(recent, default=0))
        # missing data never scales in
        if obs.load is None:
            assert desired >= current

    # never below the reactive floor (unless the rate policy or max forbids reaching it)
    floor_target = params.fallback_utilization_ratio if s["forecast_replicas"] == 0 and f is None else None
    floor = s["floor_replicas"]
    assert desired >= min(floor, up_limit, params.max_replicas)
    if f is None:
        expected_floor, _ = replicas.calculate_replicas(
            current_replicas=current, ready=obs.ready, starting=obs.starting, load=obs.load,
            target_utilization_ratio=params.fallback_utilization_ratio, tolerance=params.tolerance)
        if obs.load is None:
            expected_floor = max(expected_floor, current)
        assert floor == expected_floor
    del floor_target

    # never below the forecast need: a scale-in keeps the peak from now to the end of the
    # lead interval; any decision covers the peak from when a new pod could serve to then
    # the gate, from the outcomes (no pending checks come due here)
    outcomes = state.interval_outcomes[-params.gate_window :]
    coverage, above = 1.0, 0.0
    if len(outcomes) >= params.gate_window // 2:
        coverage, above = outcomes.count(INSIDE) / len(outcomes), outcomes.count(ABOVE) / len(outcomes)
    assert s["confidence"] == round(100 * coverage)
    if f is not None and coverage >= params.reactive_below_coverage:
        q = params.widened_quantile if above > params.widen_above_share else params.quantile

        def need(start):
            k0 = max(0, math.ceil((start - f.start) / f.step_seconds - 1e-9))
            k1 = min(f.horizon_steps - 1, math.ceil((NOW + TIMING.lead_seconds - f.start) / f.step_seconds - 1e-9))
            peak = float(np.max(f.quantile(q)[min(k0, k1) : k1 + 1]))
            return math.ceil(peak / (params.capacity_per_pod * params.target_utilization_ratio) - 1e-9) if peak > 0 else 0

        assert desired >= min(need(NOW + TIMING.startup_seconds), up_limit, params.max_replicas)
        if desired < current and inside_bounds:
            assert desired >= min(need(NOW), current)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.lists(st.tuples(st.integers(-60, 60), st.floats(0, 50), st.floats(0, 50)), max_size=4))
def test_a_plan_given_its_gate_is_the_plan_that_scores_its_own(case, checks):
    # The policy scores the gate once per tick and hands it to every rung's plan; the plan must be
    # the one it makes when it scores the gate itself.
    obs, f, params, state = case
    state = dataclasses.replace(state, pending_checks=tuple((NOW + dt, lo, lo + hi) for dt, lo, hi in checks))
    gate = planner.score_gate(obs, f, params, state, NOW, timing=TIMING)
    assert planner.plan(obs, f, params, state, NOW, timing=TIMING, gate=gate) == planner.plan(obs, f, params, state, NOW, timing=TIMING)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_plan_replicas_has_the_count_and_state_of_the_full_plan(case):
    # The counterfactual rungs skip the decision and its description; what they read must not change.
    obs, f, params, state = case
    full = planner.plan(obs, f, params, state, NOW, timing=TIMING)
    assert planner.plan_replicas(obs, f, params, state, NOW, timing=TIMING) == (full.desired_replicas, full.state)
