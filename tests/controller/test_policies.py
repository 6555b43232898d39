"""The scaleahead policy in the simulator: it learns the lead time, looks ahead, and acts through the ports."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from controller.decide.baseline import Tally
from controller.settings import ControllerSettings
from controller.sim import engine
from controller.sim.scenario import Scenario


def make_scenario(demand) -> Scenario:
    demand = np.asarray(demand, dtype=float)
    return Scenario(name="synthetic", times=15.0 * np.arange(len(demand)), demand=demand)


def daily_cycle(days=3, noise=0.5, seed=0) -> np.ndarray:
    """A daily cycle sampled every minute with noise, interpolated onto 15-s ticks as traces are."""
    minutes = np.arange(days * 1440 + 1)
    rng = np.random.default_rng(seed)
    per_minute = np.clip(20 + 15 * np.sin(2 * np.pi * minutes / 1440) + rng.normal(0, noise, minutes.size), 0.5, None)
    ticks = np.arange(days * 5760 + 1) / 4.0
    return np.interp(ticks, minutes, per_minute)


def run_with_policy(scenario, config, prepare=None):
    """Run ``scenario`` under the scaleahead policy; ``prepare(policy)`` runs before its first tick."""
    holder = {}

    def build(ports, sc, cfg):
        policy = holder["policy"] = engine.BUILDERS["scaleahead"](ports, sc, cfg)
        if prepare is not None:
            prepare(policy)
        reconcile, policy.messages, policy.above_shares = policy.reconcile, [], []

        async def recorded(target):
            decision = await reconcile(target)
            policy.messages.append(decision.message)
            policy.above_shares.append(policy.interval_above)
            return decision

        policy.reconcile = recorded
        return policy

    result = engine.run(scenario, "scaleahead", config, builder=build)
    return result, holder["policy"]


def test_the_lognormal_startup_is_learned_from_pod_readiness_not_passed_in():
    sc = make_scenario(daily_cycle(days=1))
    result, policy = run_with_policy(sc, engine.SimConfig(startup_seconds=300, startup_distribution="lognormal", seed=4))
    # the prior is 120 s; pods of this run start in 300 s * exp(0.3 Z): the decayed median is near 300 s
    assert policy.startup.prior_seconds == 120.0
    assert 240 <= policy.startup.seconds <= 390
    assert len(policy.startup.samples) > 10


def test_a_fixed_startup_is_learned_exactly():
    result, policy = run_with_policy(make_scenario(daily_cycle(days=1)), engine.SimConfig(startup_seconds=30))
    assert policy.startup.seconds == 30.0


def test_on_a_predictable_cycle_scaleahead_serves_as_well_as_the_hpa_at_far_less_cost():
    sc = make_scenario(daily_cycle(days=4))
    hpa = engine.run(sc, "hpa", engine.SimConfig())
    ours, _ = run_with_policy(sc, engine.SimConfig())
    # issue #4: where the HPA leaves nothing unserved, cost_ratio <= 1.2 with unserved_pct <= 0.01
    assert hpa.score.unserved_pct <= 0.01 and hpa.score.cost_ratio > 1.3
    assert ours.score.cost_ratio <= 1.2
    assert ours.score.unserved_pct <= 0.01
    assert ours.forecast is not None and np.isfinite(ours.forecast["mean"][-1])


def test_every_decision_goes_through_the_actuator_and_is_recorded():
    sc = make_scenario(daily_cycle(days=1))
    result, _ = run_with_policy(sc, engine.SimConfig())
    replicas = result.ready + result.starting
    changes = int(np.count_nonzero(np.diff(replicas)))
    assert len(result.decisions) >= changes > 0
    assert all(d.reason for d in result.decisions)


def test_the_simulator_and_the_live_loop_build_the_same_policy_from_one_set_of_settings():
    from controller.loop import build_predictive_policy
    from controller.policies import PolicyPorts
    from controller.settings import WorkloadSettings

    settings = ControllerSettings.model_validate({
        "metrics": {"lag_seconds": 30},
        "forecast": {"model": "ets", "quantile": 0.8, "history_days": 3, "refit_interval_seconds": 3600},
        "replicas": {"startup_seconds": 200, "startup_quantile": 0.75, "scale_in_band_ratio": 0.3, "max_replicas": 50},
    })
    ports = PolicyPorts(clock=None, metrics=None, pods=None, actuator=None)
    sim = engine.BUILDERS["scaleahead"](ports, make_scenario([1.0, 1.0]), engine.SimConfig(settings=settings))
    live = build_predictive_policy(settings, WorkloadSettings(namespace=engine.TARGET.namespace, name=engine.TARGET.name), ports)
    assert sim._params == live._params
    assert (sim._params.quantile, sim._params.scale_in_band, sim._params.max_replicas) == (0.8, 0.3, 50)
    for attr in ("_lag", "_tick", "_step", "_history_steps", "_refit_interval"):
        assert getattr(sim, attr) == getattr(live, attr), attr
    assert (sim._lag, sim._history_steps, sim._refit_interval) == (30, 3 * 5760, 3600.0)
    assert sim.startup.prior_seconds == live.startup.prior_seconds == 200
    assert sim.startup.quantile == live.startup.quantile == 0.75
    sim_model, live_model = sim._factory(), live._factory()
    assert type(sim_model) is type(live_model)
    # lead (2 x 200 + 30 + 2 x 15 + 15) / 15 steps, and one more
    assert sim_model.max_horizon_steps == live_model.max_horizon_steps == 33


def sudden_jumps(days=4, seed=1, factor=1.25) -> np.ndarray:
    """A flat, slightly noisy load that jumps by 25% (``factor``) for five minutes, twenty times a day at random times.

    No forecast sees such a jump coming; the HPA's fixed headroom (1/0.7) covers it.
    """
    rng = np.random.default_rng(seed)
    minutes = days * 1440 + 1
    per_minute = 20 + rng.normal(0, 0.4, minutes)
    for start in rng.choice(minutes - 5, size=20 * days, replace=False):
        per_minute[start : start + 5] *= factor
    ticks = np.arange(days * 5760 + 1) / 4.0
    return np.interp(ticks, np.arange(minutes), per_minute)


def test_where_the_hpas_headroom_serves_sudden_jumps_better_the_policy_raises_its_quantile():
    sc = make_scenario(sudden_jumps())
    hpa = engine.run(sc, "hpa", engine.SimConfig())
    off = ControllerSettings(forecast={"raise_quantile_to": [], "lower_quantile_to": [], "lean_quantile": None, "fallback_to_hpa": False})
    fixed, fixed_policy = run_with_policy(sc, engine.SimConfig(settings=off))
    # The raise alone: with forecast.make_up_shortfall the load 0.85 left uncovered on the first day is
    # owed, and only a rung that served better than the HPA (here none) is taken until it is made up
    # (test_after_serving_worse_than_the_hpa_the_policy_stays_on_the_hpa_rung_until_a_quantile_makes_it_up).
    laddered, policy = run_with_policy(sc, engine.SimConfig(settings=ControllerSettings(forecast={"make_up_shortfall": False})))

    assert {q for _, q in fixed_policy.quantile_history} <= {0.85}
    chosen = [q for _, q in policy.quantile_history]
    assert len(chosen) == 4  # one choice at the end of each day (the last one at the last tick)
    # Raised at the first day's end, and never back at 0.85 or below: a higher rung, or the HPA
    # rung (NaN) when even 0.975 left more uncovered than the HPA on a day.
    assert chosen[0] > 0.85 and all(not q <= 0.85 for q in chosen)
    assert laddered.score.unserved_pct < 0.75 * fixed.score.unserved_pct
    assert fixed.score.pod_hours < laddered.score.pod_hours < hpa.score.pod_hours


def test_where_no_quantile_serves_jumps_as_well_as_the_hpa_the_policy_scales_as_the_hpa():
    # Jumps of 40% (not 25%): even 0.975 leaves more uncovered than the HPA's fixed headroom.
    sc = make_scenario(sudden_jumps(factor=1.4))
    hpa = engine.run(sc, "hpa", engine.SimConfig()).score
    off = ControllerSettings(forecast={"fallback_to_hpa": False})
    kept, kept_policy = run_with_policy(sc, engine.SimConfig(settings=off))
    fallen, policy = run_with_policy(sc, engine.SimConfig())

    assert [q for _, q in kept_policy.quantile_history] == [0.85] * 4  # no rung qualified on any day
    assert kept.score.unserved_pct > 10 * hpa.unserved_pct
    # from the first day's end on, the HPA rung: every later tick is the HPA's own sync
    assert all(np.isnan(q) for _, q in policy.quantile_history) and policy.hpa_mode and np.isnan(policy.quantile)
    switched = int(np.searchsorted(sc.times, policy.quantile_history[0][0]))
    assert np.isnan(policy.forecast_band["quantile"][switched:]).all()
    assert fallen.score.unserved_pct <= hpa.unserved_pct and fallen.score.pod_hours <= hpa.pod_hours
    # the rest of the first day was the forecast's: the counts differ before the switch only; from
    # it on, the real pods are the HPA's tick for tick (the HPA rung takes over the reference HPA's
    # history; a new HPA object would hold the forecast's count through its scale-down window)
    alone = engine.run(sc, "hpa", engine.SimConfig())
    assert not np.array_equal(fallen.ready[:switched], alone.ready[:switched])
    assert np.array_equal((fallen.ready + fallen.starting)[switched:], (alone.ready + alone.starting)[switched:])


def test_after_serving_worse_than_the_hpa_the_policy_stays_on_the_hpa_rung_until_a_quantile_makes_it_up():
    # Day 1 has 40% jumps no quantile serves as the HPA does; days 0, 2 and 3 are flat and every side serves them.
    jumps = sudden_jumps(days=1, factor=1.4)[:-1]
    flat = np.full(5760, float(np.median(jumps)))
    sc = make_scenario(np.concatenate([flat, jumps, flat, flat, flat[:1]]))
    one_day = {"reference_days": 1}
    forgets, forgetting = run_with_policy(sc, engine.SimConfig(settings=ControllerSettings(forecast={**one_day, "make_up_shortfall": False})))
    owes, owing = run_with_policy(sc, engine.SimConfig(settings=ControllerSettings(forecast=one_day)))

    # both provision at 0.85 on day 1 and fall back at its end; on the choice of the last day alone the
    # forecast comes back after a flat day, while the load owed keeps the HPA rung
    forgot = [q for _, q in forgetting.quantile_history]
    assert forgot[0] == 0.85 and np.isnan(forgot[1]) and forgot[2] == 0.85
    chosen = [q for _, q in owing.quantile_history]
    assert len(chosen) == 4 and chosen[0] == 0.85 and all(np.isnan(q) for q in chosen[1:])
    assert owing.balance.uncovered > 0 and forgetting.balance == Tally()
    assert owing.reference_memory().balance == owing.balance  # the state annotation keeps it
    assert owing.against_hpa == (owing.balance.pod_seconds, owing.balance.uncovered, owing.hpa_pod_seconds)  # the gauges'
    assert forgetting.against_hpa is None and owing.hpa_pod_seconds > 0
    assert any("left more load uncovered than the HPA would have" in m for m in owing.messages)
    assert np.isnan(owing.rung_change.after) and owing.rung_change.why.startswith("the pods owe ")
    assert owes.score.pod_hours > forgets.score.pod_hours  # it pays for the HPA's headroom on the flat days


def test_where_the_hpa_leaves_load_unserved_the_policy_spends_its_savings_on_a_higher_quantile():
    # A noisy daily cycle at 120 s startup: the HPA leaves load unserved on the noise, 0.85 leaves
    # less at fewer pods, and 0.975 less still at more pods than 0.85, which the savings pay for.
    sc = make_scenario(daily_cycle(days=4, noise=3.0))
    config = engine.SimConfig(startup_seconds=120)
    hpa = engine.run(sc, "hpa", config).score
    spends, spending = run_with_policy(sc, config)
    keeps, keeping = run_with_policy(sc, dataclasses.replace(config, settings=ControllerSettings(forecast={"spend_savings_on_service": False})))

    assert hpa.unserved_pct > 0.01  # the HPA leaves load unserved here
    assert [q for _, q in keeping.quantile_history] == [0.85] * 4  # the cheapest no worse than the HPA
    # bought from the first counted day on, while the savings beyond the reserve last: the day the
    # 0.975 of the last days would eat into the reserve (2% of the HPA's pod-hours) it is 0.85 again
    chosen = [q for _, q in spending.quantile_history][1:]
    assert chosen[0] == 0.975 and chosen.count(0.975) >= 2 and set(chosen) == {0.85, 0.975}
    assert spends.score.unserved_pct < 0.8 * keeps.score.unserved_pct  # 0.975 on the days the savings beyond the reserve paid for
    assert keeps.score.pod_hours < spends.score.pod_hours <= hpa.pod_hours  # spent, never past the HPA's
    assert spending.reference_memory().hpa_pod_seconds == spending.hpa_pod_seconds > 0  # the reserve's base is kept
    # the last change of quantile and why, which the live loop logs and records as an event
    assert keeping.rung_change is None  # never changed
    change = spending.rung_change
    assert (change.before, change.after) == (0.85, 0.975) == tuple(chosen[-2:])
    assert change.message.startswith("provisioning at quantile 0.975 from quantile 0.85: the HPA left load unserved over the last 3 days")
    assert "pod-hours more than the HPA, paid from those saved against it" in change.why
    back = spending.rung_changes[-2]  # the day the savings beyond the reserve no longer paid for it
    assert (back.before, back.after) == (0.975, 0.85) and "within the savings beyond the reserve" in back.why
    assert spends.quantile_changes == tuple((c.at, c.message) for c in spending.rung_changes)  # the report's list
    assert len(spends.quantile_changes) == 3 and keeps.quantile_changes == ()

    # Without the make-up no balance is kept: one restored from a state written with it (savings, or
    # load owed) stands still, and is neither spent every day nor owed for good.
    alone = ControllerSettings(forecast={"make_up_shortfall": False})
    for restored in (Tally(-3_600_000.0, 0.0), Tally(0.0, 10_000.0)):
        _, still = run_with_policy(sc, dataclasses.replace(config, settings=alone), prepare=lambda p, b=restored: setattr(p, "balance", b))
        assert [q for _, q in still.quantile_history] == [0.85] * 4, restored
        assert still.balance == restored and still.against_hpa is None


def test_the_first_days_shortfall_is_not_owed():
    # The same 40% jumps on day 0, when the configured quantile runs on a forecast no day has vetted:
    # it falls back to the HPA rung at its end, and comes back after a flat day (had day 0 been owed,
    # nothing could make it up on flat days, where the HPA leaves nothing uncovered, and it would stay).
    jumps = sudden_jumps(days=1, factor=1.4)[:-1]
    sc = make_scenario(np.concatenate([jumps, np.full(2 * 5760 + 1, float(np.median(jumps)))]))
    _, policy = run_with_policy(sc, engine.SimConfig(settings=ControllerSettings(forecast={"reference_days": 1})))
    chosen = [q for _, q in policy.quantile_history]
    assert np.isnan(chosen[0]) and chosen[1] == 0.85
    assert policy.balance.uncovered == 0 and policy.balance.pod_seconds < 0  # day 2 at 0.85: as served, fewer pods


def test_on_a_predictable_cycle_the_configured_quantile_is_kept():
    sc = make_scenario(daily_cycle(days=4))
    _, policy = run_with_policy(sc, engine.SimConfig())
    assert [q for _, q in policy.quantile_history] == [0.85] * 4


def test_a_restarted_policy_continues_its_choice_of_quantile_from_the_state_annotation():
    from controller import statecodec
    from controller.domain import ControllerState

    load = sudden_jumps()
    half = 2 * 5760
    before = Scenario(name="before", times=15.0 * np.arange(half + 1), demand=load[: half + 1])
    after = Scenario(name="after", times=15.0 * np.arange(half, load.size), demand=load[half:])
    _, first = run_with_policy(before, engine.SimConfig(settings=ControllerSettings()))
    memory = first.reference_memory()
    assert memory is not None and len(memory.days) == 2 and memory.quantiles == (0.85, 0.975, 0.7, 0.6, 0.5) and memory.lean
    # raised after the jumps: to 0.975, or to the HPA rung (NaN) on a day where even 0.975 left more uncovered
    assert memory.rung in (1, len(memory.quantiles)) and not first.quantile <= 0.85
    # through the annotation, as the live loop stores and reads it
    text = statecodec.encode(ControllerState(), now=half * 15.0, keep_seconds=300, event_keep_seconds=60, reference=memory)
    restored = statecodec.decode(text).reference

    def restart(ports, sc, cfg):
        policy = engine.BUILDERS["scaleahead"](ports, sc, cfg)
        assert policy.restore_reference(restored) is None
        holder["policy"] = policy
        return policy

    holder = {}
    resumed = engine.run(after, "scaleahead", engine.SimConfig(settings=ControllerSettings()), builder=restart)
    fresh, fresh_policy = run_with_policy(after, engine.SimConfig(settings=ControllerSettings()))
    # the fresh start provisions at 0.85 until its first day ends; the restarted one goes on at the rung it had
    assert fresh.forecast["quantile"][0] == 0.85 and fresh_policy.quantile_history[0][0] == after.times[0] + 86400
    head = resumed.forecast["quantile"][: 5760 - 1]
    np.testing.assert_array_equal(head, np.full(head.size, first.quantile))  # NaN equals NaN here
    assert holder["policy"].quantile_history[0][0] == memory.period_end  # the stored period runs to its end
    assert resumed.score.unserved_pct < fresh.score.unserved_pct


def test_memory_of_another_ladder_is_not_used():
    from controller.decide.baseline import ReferenceMemory, Tally
    from controller.policies import PolicyPorts

    ports = PolicyPorts(clock=None, metrics=None, pods=None, actuator=None)
    cfg = engine.SimConfig(settings=ControllerSettings(forecast={"raise_quantile_to": [0.95, 0.99]}))
    policy = engine.BUILDERS["scaleahead"](ports, make_scenario([1.0, 1.0]), cfg)
    day = (Tally(10.0, 1.0), (Tally(9.0, 2.0), Tally(10.0, 0.5)), 100.0)
    problem = policy.restore_reference(ReferenceMemory((0.85, 0.975), 1, (day,), 86400.0))
    assert "0.975" in problem and "0.99" in problem
    assert policy.quantile == 0.85 and policy.reference_memory() is None
    ladder = (0.85, 0.95, 0.99, 0.7, 0.6, 0.5)
    assert "rung 7" in policy.restore_reference(ReferenceMemory(ladder, 7, (), 86400.0, lean=True))
    assert "tallies" in policy.restore_reference(ReferenceMemory(ladder, 1, (day,), 86400.0, lean=True))
    # the same quantiles with a plain lowest rung: learnt on other decisions
    assert "plain lowest rung" in policy.restore_reference(ReferenceMemory(ladder, 1, (), 86400.0))
    assert policy.quantile == 0.85
    assert policy.restore_reference(ReferenceMemory(ladder, 5, (), 86400.0, lean=True, balance=Tally(-60.0, 2.5))) is None
    assert policy.quantile == 0.5 and policy.balance == Tally(-60.0, 2.5)
    # rung 6, one past the quantiles, is the HPA rung (forecast.fallback_to_hpa, on by default)
    assert policy.restore_reference(ReferenceMemory(ladder, 6, (), 86400.0, lean=True)) is None
    assert policy.hpa_mode and math.isnan(policy.quantile)


def noisy_flat(days=3, sigma=0.3, seed=2) -> np.ndarray:
    """A flat load of 20 pods with log-normal noise minute to minute (sd 0.3 of its log): nothing to foresee."""
    rng = np.random.default_rng(seed)
    minutes = days * 1440 + 1
    per_minute = 20 * np.exp(rng.normal(0, sigma, minutes))
    ticks = np.arange(days * 5760 + 1) / 4.0
    return np.interp(ticks, np.arange(minutes), per_minute)


def test_where_the_forecast_quantile_holds_more_pods_than_the_hpa_the_policy_lowers_it():
    # At 300 s startup the noise makes the 0.85 quantile of the load five minutes ahead cost more
    # than the HPA's fixed headroom (while serving far better); a lower rung is no worse on both.
    sc = make_scenario(noisy_flat())
    cfg = {"startup_seconds": 300.0}
    hpa = engine.run(sc, "hpa", engine.SimConfig(**cfg)).score
    off = ControllerSettings(forecast={"raise_quantile_to": [], "lower_quantile_to": [], "lean_quantile": None, "fallback_to_hpa": False})
    fixed, fixed_policy = run_with_policy(sc, engine.SimConfig(**cfg, settings=off))
    lowering = ControllerSettings(forecast={"lower_quantile_to": [0.75, 0.7]})
    lowered, policy = run_with_policy(sc, engine.SimConfig(**cfg, settings=lowering))

    assert {q for _, q in fixed_policy.quantile_history} <= {0.85}
    assert fixed.score.pod_hours > hpa.pod_hours and fixed.score.unserved_pct < hpa.unserved_pct
    chosen = [q for _, q in policy.quantile_history]
    assert chosen[0] == 0.75 and policy.quantile == 0.75  # the highest lower rung that was no worse
    # the tick that chose it already provisions at it (the band records each tick's quantile)
    switched_at = policy.quantile_history[0][0]
    tick = int(np.searchsorted(sc.times, switched_at))
    band = policy.forecast_band["quantile"]
    assert sc.times[tick] == switched_at and band[tick - 1] == 0.85 and band[tick] == 0.75
    assert lowered.score.pod_hours < min(fixed.score.pod_hours, hpa.pod_hours)
    assert fixed.score.unserved_pct < lowered.score.unserved_pct <= hpa.unserved_pct


def test_a_lower_rung_provisions_at_its_quantile_where_the_gate_widens_the_configured_one():
    from controller.decide import planner
    from controller.domain import ControllerState, Observation, Outcome
    from controller.policies import rung_params
    from models.base import Forecast

    base = planner.PlannerParams(quantile=0.85, target_utilization_ratio=1.0, scale_up_headroom=0.0)
    configured, higher, lower = rung_params(base, (0.85, 0.99, 0.6))
    assert [(p.quantile, p.widened_quantile) for p in (configured, higher, lower)] == [(0.85, 0.975), (0.99, 0.99), (0.6, 0.6)]

    now = 10_000.0
    levels = {0.1: 8.0, 0.5: 10.0, 0.6: 11.0, 0.85: 12.0, 0.9: 13.0, 0.975: 15.0, 0.99: 16.0}
    forecast = Forecast(start=now - 30, step_seconds=60.0, mean=np.full(6, 10.0), quantiles={q: np.full(6, v) for q, v in levels.items()})
    widening = ControllerState(interval_outcomes=(Outcome.ABOVE,) * 90 + (Outcome.INSIDE,) * 150)  # 37% above: the gate widens
    obs = Observation(now, 10.0, 10, 0, 10)
    timing = planner.Timing(lead_seconds=150.0, startup_seconds=120.0)
    wanted = {}
    for name, params in (("configured", configured), ("higher", higher), ("lower", lower)):
        stages = {s[0]: s[1] for s in planner.plan(obs, forecast, params, widening, now, timing=timing).decisions[0].stages}
        wanted[name] = stages["forecast_replicas"]
    assert wanted == {"configured": 15, "higher": 16, "lower": 11}


def test_the_lean_rung_provisions_its_quantile_at_full_utilisation_without_the_planners_margins():
    from controller.decide import planner
    from controller.domain import ControllerState, Observation
    from controller.policies import rung_params
    from models.base import Forecast

    base = planner.PlannerParams(scale_down_window_from_lead=True)
    configured, plain = rung_params(base, (0.85, 0.5))
    _, lean = rung_params(base, (0.85, 0.5), lean=True)
    assert configured == rung_params(base, (0.85, 0.5), lean=True)[0]
    assert (plain.target_utilization_ratio, plain.scale_up_headroom, plain.scale_down_window_from_lead) == (0.95, 0.1, True)
    assert (lean.quantile, lean.widened_quantile, lean.target_utilization_ratio) == (0.5, 0.5, 1.0)
    assert (lean.scale_up_headroom, lean.scale_in_band, lean.scale_down_headroom) == (0, 0, 0)
    assert lean.scale_in_tolerance == base.scale_in_tolerance == 0.1  # the HPA's, kept
    assert not lean.scale_down_window_from_lead and lean.behavior == base.behavior  # the configured window

    now = 10_000.0
    levels = {0.1: 8.0, 0.5: 10.4, 0.6: 11.0, 0.85: 12.0, 0.9: 13.0, 0.975: 15.0}
    forecast = Forecast(start=now - 30, step_seconds=60.0, mean=np.full(20, 10.4), quantiles={q: np.full(20, v) for q, v in levels.items()})
    timing = planner.Timing(lead_seconds=150.0, startup_seconds=120.0)

    def desired(params, ready, later=0.0):
        obs = Observation(now, 7.0, ready, 0, ready)
        result = planner.plan(obs, forecast, params, ControllerState(), now, timing=timing)
        if later:  # the same again once the scale-down window has passed
            obs = Observation(now + later, 7.0, ready, 0, ready)
            result = planner.plan(obs, forecast, params, result.state, now + later, timing=timing)
        return result.desired_replicas

    # scale-up from 8: both need 11 pods for the median (10.4 at full utilisation, 10.4 / 0.95); the
    # lean rung orders them, the plain rung 10% more
    assert desired(lean, 8) == 11 and desired(plain, 8) == 13
    # 13 pods, after the window: the lean rung releases the two above the median (no band); the plain
    # rung keeps them (13 is within its 20% band over 11)
    assert desired(lean, 13, later=301) == 11 and desired(plain, 13, later=301) == 13
    assert desired(lean, 13, later=200) == 13  # no scale-in inside the configured 300 s window
    assert desired(lean, 12, later=301) == 12  # one pod of 12 is within the 10% scale-in tolerance

    # a target set below the default (headroom for latency) is kept at the lean rung too
    careful = dataclasses.replace(base, target_utilization_ratio=0.6)
    assert rung_params(careful, (0.85, 0.5), lean=True)[1].target_utilization_ratio == 0.6
    # at full utilisation the median's 10.4 needs 11 pods, at 0.95 it would need 11 too; at 0.8 (below the
    # default, so kept) 13
    assert desired(rung_params(dataclasses.replace(base, target_utilization_ratio=0.8), (0.85, 0.5), lean=True)[1], 8) == 13


def test_at_the_lean_rung_the_policy_holds_fewer_pods_than_at_the_same_quantile_with_its_margins():
    from controller.decide.baseline import ReferenceMemory

    # Both policies start at the rung 0.5 (restored memory, so the whole run is at it): the default
    # ladder's lean rung, and a ladder whose lowest rung is a plain 0.5.
    sc = make_scenario(noisy_flat(days=1))
    ends = sc.times[-1] + 86400.0

    def at_half(settings, ladder, lean):
        def build(ports, s, cfg):
            policy = engine.BUILDERS["scaleahead"](ports, s, cfg)
            assert policy.restore_reference(ReferenceMemory(ladder, len(ladder) - 1, (), ends, lean=lean)) is None
            holder["policy"] = policy
            return policy

        holder = {}
        result = engine.run(sc, "scaleahead", engine.SimConfig(startup_seconds=300.0, settings=settings), builder=build)
        assert set(result.forecast["quantile"]) == {0.5} and holder["policy"].quantile_history == []
        return result.score

    lean = at_half(ControllerSettings(), (0.85, 0.975, 0.7, 0.6, 0.5), True)
    plain = at_half(ControllerSettings(forecast={"lower_quantile_to": [0.7, 0.6, 0.5], "lean_quantile": None}), (0.85, 0.975, 0.7, 0.6, 0.5), False)
    assert lean.pod_hours < 0.95 * plain.pod_hours
    assert lean.unserved_pct > plain.unserved_pct  # the margins it does without


def test_a_decision_says_which_quantile_and_utilisation_it_provisioned_at():
    from controller.decide import planner
    from controller.domain import ControllerState, Observation
    from controller.policies import rung_params
    from models.base import Forecast

    now = 10_000.0
    forecast = Forecast(start=now - 30, step_seconds=60.0, mean=np.full(6, 10.0), quantiles={q: np.full(6, 10.0) for q in (0.1, 0.5, 0.85, 0.9)})
    timing = planner.Timing(lead_seconds=150.0, startup_seconds=120.0)
    configured, lean = rung_params(planner.PlannerParams(), (0.85, 0.5), lean=True)
    messages = [
        planner.plan(Observation(now, 10.0, 10, 0, 10), forecast, params, ControllerState(), now, timing=timing).decisions[0].message
        for params in (configured, lean)
    ]
    assert messages[0].startswith("forecast mode, q=0.85 at 95%, lead 150 s")
    assert messages[1].startswith("forecast mode, q=0.5 at 100%, lead 150 s")


class _Ports:
    """Clock, metrics, pods and actuator of one workload, at the policy's ports: pods start in 120 s."""

    def __init__(self, load: float, replicas: int) -> None:
        self.t, self.load, self.ready, self.starting = 0.0, load, replicas, []

    def now(self) -> float:
        return self.t

    async def instant(self, query, at):
        from controller.domain import Sample

        return Sample(self.load, at)

    async def pod_counts(self, target):
        self.ready += sum(1 for t in self.starting if t <= self.t)
        self.starting = [t for t in self.starting if t > self.t]
        return self.ready, len(self.starting)

    async def recent_startups(self, target, *, since):
        return []

    async def current_replicas(self, target):
        return self.ready + len(self.starting)

    async def scale(self, target, replicas, reason):
        current = self.ready + len(self.starting)
        if replicas > current:
            self.starting += [self.t + 120.0] * (replicas - current)
        else:
            self.ready -= current - replicas
        return None


def _live_like_policy(ports, *, period_seconds=3600.0):
    import asyncio

    from controller import policies
    from controller.domain import WorkloadRef
    from controller.settings import WorkloadSettings

    options = policies.predictive_options(ControllerSettings(), WorkloadSettings(namespace="ns", name="w"), tick_seconds=15.0)
    kwargs = dict(options.kwargs, first_fit_seconds=1800.0)
    kwargs["reference"] = dataclasses.replace(kwargs["reference"], period_seconds=period_seconds)
    policy = policies.PredictivePolicy(policies.PolicyPorts(ports, ports, ports, ports), options.params, **kwargs)

    def run(seconds: float) -> None:
        async def go():
            end = ports.t + seconds
            while ports.t < end:
                await policy.reconcile(WorkloadRef("ns", "w"))
                ports.t += 15.0

        asyncio.run(go())

    return policy, run


def test_ticks_missed_after_failures_are_gaps_in_the_history_so_the_model_keeps_the_loops_clock():
    ports = _Ports(20.0, 30)
    policy, run = _live_like_policy(ports)
    run(2 * 3600)
    before, now = len(policy._history), ports.t - 15.0
    assert policy._forecast.start - now == 15.0  # the next step after the last one seen
    ports.t += 35 * 15.0  # 35 ticks without a reconcile (the loop's backoff after failures)
    run(15.0)
    assert len(policy._history) == before + 36  # 35 gaps and the tick's value
    assert np.isnan(policy._history.view()[-36:-1]).all()
    assert policy._forecast.start - (ports.t - 15.0) == 15.0  # the model's clock is the loop's


def test_a_gap_longer_than_a_period_closes_one_day_not_one_per_tick():
    ports = _Ports(20.0, 30)
    policy, run = _live_like_policy(ports)
    run(2 * 3600 + 600)
    assert len(policy.quantile_history) == 2
    ports.t += 4 * 3600  # no reconcile for four hours
    run(4 * 15.0)
    assert len(policy.quantile_history) == 3  # the day the gap cut short, once
    assert policy._period_end > ports.t  # the next boundary is ahead, on the same hourly grid
    assert policy._period_end % 3600.0 == 0.0


def test_after_skipped_ticks_each_observation_is_scored_against_the_last_tick_a_trail_before_it():
    ports = _Ports(20.0, 30)
    policy, run = _live_like_policy(ports)
    run(600)
    last = ports.t - 15.0
    assert [t for t, _ in policy._ready_log] == [last - 45.0, last - 30.0, last - 15.0, last]  # every tick: 45 s back
    ports.t += 2 * 15.0  # two ticks missed: the next reconcile is 45 s after the last one
    run(15.0)
    now = ports.t - 15.0
    assert now == last + 45.0 and [t for t, _ in policy._ready_log] == [last, now]  # the tick 45 s back, not three ticks back
    ports.t += 15.0  # one more missed: 30 s after it, so 45 s back falls between two ticks
    run(15.0)
    assert [t for t, _ in policy._ready_log] == [last, now, now + 30.0]  # the last tick at or before it


class _Frozen(_Ports):
    """Pods that something else holds at a count: the policy only recommends."""

    async def scale(self, target, replicas, reason):
        return None


def test_in_recommend_mode_the_rung_in_use_is_scored_as_a_counterfactual_not_on_pods_it_does_not_drive():
    held = _Frozen(20.0, 40)  # 40 pods held by hand for a load of 20
    policy, run = _live_like_policy(held)
    policy.acting = False
    run(3 * 3600 + 15)
    free = _Ports(20.0, 40)  # the same load, pods that follow the policy
    follower, run_free = _live_like_policy(free)
    run_free(3 * 3600 + 15)

    held_days, free_days = [d[1][0].pod_seconds for d in policy._days], [d[1][0].pod_seconds for d in follower._days]
    assert all(s < 40 * 3600 for s in held_days)  # not the 40 pods something else holds
    assert held_days[1:] == free_days[1:]  # what its own pods would have held, as when they follow it
    assert [q for _, q in policy.quantile_history] == [q for _, q in follower.quantile_history]


def test_the_counterfactuals_score_each_observation_against_the_pods_ready_a_metric_trail_before_it():
    """The observed load is the load of about 45 s ago (``metrics.trail_seconds``): the HPA and
    the rungs are scored on the pods that served it then. On a load that only rises, the pods
    ready a trail earlier are never more than now, so the HPA's scale-ups show later and it
    leaves more uncovered than when scored against the pods of the same tick; the pods held are
    counted the same either way."""

    hours = np.arange(int(1.2 * 5760)) // 480  # a step up every two hours
    sc = make_scenario(10.0 + 10.0 * hours)
    days = {}
    for trail in (0, 45):
        _, policy = run_with_policy(sc, engine.SimConfig(settings=ControllerSettings(metrics={"trail_seconds": trail})))
        assert len(policy._days) == 1
        days[trail] = policy._days[0]
    (hpa_now, _, load_now), (hpa_then, _, load_then) = days[0], days[45]
    assert load_then == load_now
    assert hpa_then.pod_seconds == hpa_now.pod_seconds
    assert hpa_then.uncovered > hpa_now.uncovered > 0


def test_the_policy_keeps_the_gates_share_of_outcomes_above_the_interval_for_its_gauge():
    # a day of the cycle, then a steady climb that the forecast follows late
    cycle = daily_cycle(days=1)
    demand = np.concatenate([cycle, cycle[-1] + 0.02 * np.arange(1, 721)])
    _, policy = run_with_policy(make_scenario(demand), engine.SimConfig(startup_seconds=120))
    seen = list(zip(policy.above_shares, policy.messages, strict=True))
    shares = policy.above_shares
    assert all(share is not None and 0.0 <= share <= 1.0 for share in shares)
    # the share the gauge reads is the one the decision was made with
    assert all(f"above {share:.0%}" in message for share, message in seen)
    widened = [share for share, message in seen if message.startswith("widened mode")]
    assert widened and min(widened) > 0.25
    assert max(share for share, message in seen if message.startswith("forecast mode")) <= 0.25


def idle_noisy_load(hours=10, seed=5) -> np.ndarray:
    """An almost idle load: 0.3 on average, noise of 0.5 clipped at 0 (the lower quantiles of its forecast fall below 0)."""
    rng = np.random.default_rng(seed)
    return np.clip(0.3 + rng.normal(0.0, 0.5, hours * 240 + 1), 0.0, None)


def test_shown_load_is_never_below_zero_and_keeps_nan():
    from controller.policies import shown_load

    assert shown_load(-0.7) == 0.0
    assert math.copysign(1.0, shown_load(-0.0)) == 1.0  # never a gauge of -0
    assert shown_load(np.float64(2.5)) == 2.5
    assert math.isnan(shown_load(math.nan))


def test_the_forecast_band_the_report_shows_is_never_below_zero():
    _, policy = run_with_policy(make_scenario(idle_noisy_load()), engine.SimConfig())
    band = policy.forecast_band
    lower = band["lower"]
    assert np.isnan(lower[0])  # before the first fit: no forecast, not an idle one
    shown = lower[np.isfinite(lower)]
    assert shown.size > 0 and (shown >= 0).all()
    assert (shown == 0).sum() > shown.size // 10  # the model's own lower bound was below 0 on these ticks
    assert (band["upper"][np.isfinite(band["upper"])] > 0).all()


def test_the_live_policy_forecast_the_gauges_show_is_never_below_zero():
    import asyncio

    from controller.loop import build_predictive_policy
    from controller.policies import PolicyPorts
    from controller.settings import WorkloadSettings

    ports = PolicyPorts(clock=None, metrics=None, pods=None, actuator=None)
    live = build_predictive_policy(ControllerSettings(), WorkloadSettings(namespace="default", name="idle"), ports)
    values = idle_noisy_load(hours=8)
    times = 1_700_000_000.0 + 15.0 * np.arange(values.size)
    assert asyncio.run(live.prime(times, values)) > 0
    at = times[-1] + live.lead_seconds
    k = live._forecast.index_at(at)
    raw = {q: float(live._forecast.quantile(q)[k]) for q in live._levels}
    assert raw[0.1] < 0 < raw[0.9]  # the model's own lower quantile is below 0 there
    shown = live.forecast_at(at)
    assert shown == {q: max(v, 0.0) for q, v in raw.items()}  # clipped, and the rest untouched
    assert live.forecast_at(at, shown=False) == raw  # what the forecast error is scored on
