"""The simulator follows BENCHMARK.md sections 1 to 5: physics, observation, scoring, oracle, no future."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from controller.domain import Decision, Reason, WorkloadRef
from controller.errors import UserError
from controller.policies import PolicyPorts
from controller.sim import engine
from controller.sim.cluster import FutureReadError, SimCluster
from controller.sim.scenario import Scenario, oracle_alive, scenario_from_trace, startup_ticks
from controller.sim.traces import Trace


def make_scenario(demand, *, name="synthetic", peak_pods=40.0) -> Scenario:
    demand = np.asarray(demand, dtype=float)
    return Scenario(name=name, times=15.0 * np.arange(len(demand)), demand=demand, peak_pods=peak_pods)


def step_demand(n=400, low=5.0, high=20.0, at=200) -> np.ndarray:
    d = np.full(n, low)
    d[at:] = high
    return d


class FixedPolicy:
    """A probe policy: sets the count to ``schedule[tick]`` and records what it observed."""

    name = "probe"

    def __init__(self, ports: PolicyPorts, schedule):
        self.ports = ports
        self.schedule = schedule
        self.seen: list[tuple[float, float | None, int, int]] = []
        self.tick = 0

    async def reconcile(self, target: WorkloadRef) -> Decision:
        now = self.ports.clock.now()
        sample = await self.ports.metrics.instant("q", now)
        ready, starting = await self.ports.pods.pod_counts(target)
        current = await self.ports.actuator.current_replicas(target)
        self.seen.append((now, None if sample is None else sample.value, ready, starting))
        desired = int(self.schedule[self.tick])
        self.tick += 1
        if desired != current:
            await self.ports.actuator.scale(target, desired, Reason.DesiredWithinRange)
        return Decision("scale" if desired != current else "no-op", target.name, current, desired, Reason.DesiredWithinRange, "")


def run_probe(scenario, schedule, **config):
    holder = {}

    def build(ports, sc, cfg):
        holder["p"] = FixedPolicy(ports, schedule)
        return holder["p"]

    result = engine.run(scenario, "hpa", engine.SimConfig(**config), builder=build)
    return result, holder["p"]


# --- section 1: demand, ticks, warm-up ----------------------------------------------------


def test_demand_is_scaled_so_the_99th_percentile_is_peak_pods_and_interpolated_onto_15s_ticks():
    # settings: a 1-minute trace 0, 60, 120 ... with values 0..99
    values = np.arange(100, dtype=float)
    trace = Trace("t", timestamps=60.0 * np.arange(100), values=values)
    sc = scenario_from_trace(trace, peak_pods=40.0)
    q99 = np.quantile(values, 0.99)  # 98.01
    # expected: 99 minutes span -> 99*4 + 1 = 397 ticks
    assert sc.n_ticks == 397
    # tick 1 is 15 s: a quarter of the way from value 0 to value 1
    assert sc.demand[1] == pytest.approx(0.25 * 40.0 / q99)
    assert sc.demand[4] == pytest.approx(1.0 * 40.0 / q99)
    assert np.quantile(np.interp(trace.timestamps, sc.times, sc.demand), 0.99) == pytest.approx(40.0)


def test_previous_interpolation_holds_each_row_until_the_next_and_scales_like_linear():
    # settings: rows at 0, 60, 180 s (one missing at 120 s) with values 0, 10, 30
    trace = Trace("t", timestamps=np.array([0.0, 60.0, 180.0]), values=np.array([0.0, 10.0, 30.0]))
    held = scenario_from_trace(trace, peak_pods=1.0, interpolation="previous")
    linear = scenario_from_trace(trace, peak_pods=1.0)
    scale = 1.0 / np.quantile([0.0, 10.0, 30.0], 0.99)
    # expected: the same grid; 0 up to 45 s, 10 from 60 s through 165 s, 30 at 180 s
    np.testing.assert_array_equal(held.times, linear.times)
    np.testing.assert_allclose(held.demand, scale * np.array([0.0] * 4 + [10.0] * 8 + [30.0]))
    # between rows the linear demand moves towards the next row; the held one does not
    assert linear.demand[2] == pytest.approx(5.0 * scale) and held.demand[2] == 0.0


def test_an_unknown_interpolation_is_a_user_error_naming_the_choices():
    trace = Trace("t", timestamps=np.array([0.0, 60.0]), values=np.array([1.0, 2.0]))
    with pytest.raises(UserError, match="--interpolation must be one of linear, previous, got 'cubic'"):
        scenario_from_trace(trace, interpolation="cubic")


def test_nan_rows_are_dropped_before_interpolation():
    trace = Trace("t", timestamps=np.array([0.0, 60.0, 180.0]), values=np.array([0.0, 10.0, 30.0]))
    sc = scenario_from_trace(trace, peak_pods=1.0)
    # the missing row at 120 s is interpolated between 10 (60 s) and 30 (180 s): 20
    q99 = np.quantile([0.0, 10.0, 30.0], 0.99)
    assert sc.demand[8] == pytest.approx(20.0 / q99)


def test_the_first_quarter_of_the_trace_is_not_scored():
    sc = make_scenario(np.ones(401))  # span 400 ticks; 25% = 100 ticks
    assert sc.scored_from == 100


def test_observation_is_the_mean_of_demand_over_the_minute_ending_one_scrape_ago():
    d = np.arange(20, dtype=float) * 4.0
    sc = make_scenario(d)
    obs = sc.observed()
    # at tick 10: trapezoid over ticks 5..9 = (20/2 + 24 + 28 + 32 + 36/2) / 4 = 28
    assert obs[10] == pytest.approx(28.0)
    # before the trace starts, demand is taken as its first value
    assert obs[0] == pytest.approx(0.0)
    assert obs[2] == pytest.approx((0 + 0 + 0 + 0 + 4.0 / 2) / 4)  # ticks -3..1


# --- section 2: physics -------------------------------------------------------------------


def test_a_pod_created_at_tick_i_is_ready_at_tick_i_plus_startup_and_costs_from_creation():
    sc = make_scenario(np.full(40, 0.5))  # initial pods: ceil(0.5 / 0.7) = 1
    schedule = [1] * 10 + [3] * 30  # two pods created at tick 10
    result, _ = run_probe(sc, schedule, startup_seconds=120)  # 8 ticks
    assert result.ready[9] == 1 and result.starting[9] == 0
    assert result.ready[10] == 1 and result.starting[10] == 2  # they cost from creation
    assert result.ready[17] == 1 and result.starting[17] == 2
    assert result.ready[18] == 3 and result.starting[18] == 0  # ready at 10 + 8


def test_startup_that_is_not_a_multiple_of_the_tick_rounds_up():
    assert startup_ticks(120) == 8
    assert startup_ticks(100) == 7  # 6.67 ticks: not ready before 105 s
    assert startup_ticks(0) == 0


def test_scale_down_removes_starting_pods_youngest_first_then_ready_pods():
    cluster = SimCluster(startup_seconds=120)
    cluster.ready = 3
    cluster.advance(0)
    cluster.set_replicas(4)  # pod A ready at 8
    cluster.advance(2)
    cluster.set_replicas(5)  # pod B ready at 10
    assert cluster.starting == [8, 10]
    cluster.set_replicas(4)
    assert cluster.starting == [8] and cluster.ready == 3  # the youngest (B) went first
    cluster.set_replicas(2)
    assert cluster.starting == [] and cluster.ready == 2  # then A, then one ready pod


def test_the_controller_sees_ready_and_starting_counts_and_lagged_demand_only():
    d = np.arange(40, dtype=float)
    sc = make_scenario(d)
    result, probe = run_probe(sc, [int(math.ceil(0 / 0.7)) or 1] * 40)
    obs = sc.observed()
    for i, (now, load, ready, starting) in enumerate(probe.seen):
        assert now == sc.times[i]
        assert load == pytest.approx(obs[i])
        assert (ready, starting) == (result.ready[i - 1] if i else 1, result.starting[i - 1] if i else 0)


def test_initial_state_is_demand_over_0_7_ready_pods():
    sc = make_scenario([7.1] + [7.1] * 50)
    assert sc.initial_pods() == 11  # ceil(7.1 / 0.7) = ceil(10.14)
    assert make_scenario([0.0] * 5).initial_pods() == 1  # at least min_replicas


def test_lognormal_startups_are_seeded_and_spread_around_the_median():
    draws = []
    for seed in (1, 1, 2):
        cluster = SimCluster(startup_seconds=120, startup_distribution="lognormal", seed=seed)
        cluster.advance(0)
        cluster.set_replicas(400)
        draws.append(list(cluster.starting))
    assert draws[0] == draws[1]
    assert draws[0] != draws[2]
    ticks = np.array(draws[0])
    assert 7 <= np.median(ticks) <= 9  # median 120 s = 8 ticks, rounded up
    assert ticks.min() < 8 < ticks.max()


# --- section 3: scores --------------------------------------------------------------------


def test_scores_follow_the_formulas_of_section_3():
    # settings: 8 ticks warm-up (scored_from = 2 for 9 ticks), constant demand 2.5
    demand = np.full(9, 2.5)
    sc = make_scenario(demand)
    assert sc.scored_from == 2
    # initial ready: ceil(2.5/0.7) = 4; the probe scales to 2 at tick 4 and back to 4 at tick 6
    schedule = [4, 4, 4, 4, 2, 2, 4, 4, 4]
    result, _ = run_probe(sc, schedule, startup_seconds=30)  # 2 ticks
    s = result.score
    # ready over ticks 2..8: 4 4 2 2 2 2 4; starting: 0 0 0 0 2 2 0
    assert list(result.ready[2:]) == [4, 4, 2, 2, 2, 2, 4]
    # unserved: 4 ticks short by 0.5 -> 2.0 of 7 * 2.5 = 17.5 -> 11.428..%
    assert s.unserved_pct == pytest.approx(100 * 2.0 / 17.5)
    assert s.underprovisioned_time_pct == pytest.approx(100 * 4 / 7)
    # pod-hours: (4+4+2+2+4+4+4) * 15 / 3600
    assert s.pod_hours == pytest.approx(24 * 15 / 3600)
    # oracle: need = 3 everywhere -> alive = 3 -> 7 * 3 * 15 / 3600
    assert s.oracle_pod_hours == pytest.approx(21 * 15 / 3600)
    assert s.cost_ratio == pytest.approx(24 / 21)
    assert s.scale_actions == 2  # ticks 4 and 6


def test_oracle_schedule_starts_each_pod_startup_ahead_and_keeps_it_through_short_dips():
    demand = np.array([1, 1, 1, 3, 1, 1, 1, 1, 2, 1], dtype=float)
    alive = oracle_alive(demand, startup_ticks=2)
    # max over i..i+2
    assert list(alive) == [1, 3, 3, 3, 1, 1, 2, 2, 2, 1]
    assert list(oracle_alive(np.array([0.4, 1.0000000001, 2.0]), startup_ticks=0)) == [1, 1, 2]


@pytest.mark.parametrize("distribution", ["fixed", "lognormal"])
def test_the_oracle_policy_never_leaves_demand_unserved_and_costs_exactly_the_formula(distribution):
    rng = np.random.default_rng(7)
    demand = np.clip(20 + 12 * np.sin(np.arange(3000) / 40) + rng.normal(0, 2, 3000), 0, None)
    sc = make_scenario(demand)
    result = engine.run(sc, "oracle", engine.SimConfig(startup_distribution=distribution))
    assert result.score.unserved_pct == 0.0
    assert result.score.pod_hours == pytest.approx(result.score.oracle_pod_hours)
    assert result.score.cost_ratio == pytest.approx(1.0)


# --- section 4: the hpa baseline in the simulator ------------------------------------------


def test_hpa_serves_a_step_late_and_keeps_headroom_afterwards():
    sc = make_scenario(step_demand(n=800, low=7.0, high=21.0, at=400))
    result = engine.run(sc, "hpa", engine.SimConfig(startup_seconds=120))
    # before the step: ceil(7/0.7) = 10 pods, within tolerance
    assert result.ready[399] == 10
    # the step is seen one scrape late and fully only after 5 ticks, and pods take 8 ticks
    assert result.ready[400] < 21 and result.ready[405] < 21
    assert result.ready[420] >= 21
    # steady state: utilisation within tolerance of 0.7: 21 / n / 0.7 <= 1.1 -> n >= 27.3, so 28 .. 30 pods
    assert 28 <= result.ready[-1] <= 30
    assert abs(1 - (21 / result.ready[-1]) / 0.7) <= 0.1
    assert result.score.unserved_pct > 0


# --- no policy can see the future -------------------------------------------------------------


@pytest.mark.parametrize("policy", [p for p in engine.POLICY_NAMES if p != "oracle"])
def test_changing_demand_after_t_leaves_every_decision_before_t_unchanged(policy):
    rng = np.random.default_rng(3)
    base = np.clip(15 + 5 * np.sin(np.arange(2000) / 60) + rng.normal(0, 1, 2000), 0, None)
    changed = base.copy()
    t_index = 1200
    changed[t_index:] *= 3.0  # a surge from T on
    a = engine.run(make_scenario(base), policy, engine.SimConfig())
    b = engine.run(make_scenario(changed), policy, engine.SimConfig())
    # every decision up to and including T is the same (tick T still observes demand before T)
    assert np.array_equal(a.ready[: t_index + 1], b.ready[: t_index + 1])
    assert np.array_equal(a.starting[: t_index + 1], b.starting[: t_index + 1])
    assert [d for d in a.decisions if d.tick <= t_index] == [d for d in b.decisions if d.tick <= t_index]
    # and the change is noticed afterwards, so this test has teeth
    assert not np.array_equal(a.ready, b.ready)


@pytest.mark.parametrize("startup", [engine.SimConfig(startup_seconds=300.0), engine.SimConfig(startup_distribution="lognormal")])
def test_scaleahead_sees_no_future_across_its_fits_refits_and_daily_choices(startup):
    # Two and a half days of noisy load; T after the first fit, the first daily refit and the
    # first daily choice of quantile, so that every part of the policy has run before T.
    rng = np.random.default_rng(5)
    minutes = np.arange(int(2.5 * 1440) + 1)
    per_minute = 20 * np.exp(rng.normal(0, 0.3, minutes.size)) * (1 + 0.3 * np.sin(2 * np.pi * minutes / 1440))
    base = np.interp(np.arange(int(2.5 * 5760) + 1) / 4.0, minutes, per_minute)
    t_index = int(2.2 * 5760)
    changed = base.copy()
    changed[t_index:] *= 3.0
    holders: list = []

    def build(ports, sc, cfg):
        holders.append(engine.BUILDERS["scaleahead"](ports, sc, cfg))
        return holders[-1]

    a = engine.run(make_scenario(base), "scaleahead", startup, builder=build)
    b = engine.run(make_scenario(changed), "scaleahead", startup, builder=build)
    pa, pb = holders
    assert pa.quantile_history and pa.quantile_history[0][0] < 15.0 * t_index  # a daily choice before T
    assert len(pa.quantile_history) >= 2  # and the next day's, with the refit between
    assert np.array_equal(a.ready[: t_index + 1], b.ready[: t_index + 1])
    assert np.array_equal(a.starting[: t_index + 1], b.starting[: t_index + 1])
    assert [d for d in a.decisions if d.tick <= t_index] == [d for d in b.decisions if d.tick <= t_index]
    band_a, band_b = pa.forecast_band, pb.forecast_band
    for key in ("lower", "mean", "upper", "lead_seconds", "quantile"):
        assert np.array_equal(band_a[key][: t_index + 1], band_b[key][: t_index + 1], equal_nan=True), key
    assert not np.array_equal(a.ready, b.ready)  # the surge is noticed after T


def test_the_policy_is_not_told_the_baselines_target():
    built = []

    def build(ports, sc, cfg):
        built.append(engine.BUILDERS["scaleahead"](ports, sc, cfg))
        return built[-1]

    for target in (0.5, 0.7):
        engine.run(make_scenario(np.full(40, 10.0)), "scaleahead", engine.SimConfig(hpa_target=target), builder=build)
    assert [p._reference.hpa for p in built][0] == [p._reference.hpa for p in built][1]
    assert built[0]._reference.hpa.target_utilization_ratio == 0.7  # its own reference, as live


def test_a_policy_that_asks_for_future_metrics_is_refused():
    class Peeker(FixedPolicy):
        async def reconcile(self, target):
            await self.ports.metrics.instant("q", self.ports.clock.now() + 15.0)
            raise AssertionError("the read above must fail")

    sc = make_scenario(np.ones(20))
    with pytest.raises(FutureReadError):
        engine.run(sc, "hpa", engine.SimConfig(), builder=lambda ports, s, c: Peeker(ports, []))


# --- section 5 -----------------------------------------------------------------------------


def test_score_json_has_exactly_the_fields_of_section_5():
    sc = make_scenario(step_demand())
    fields = set(engine.run(sc, "hpa", engine.SimConfig()).score.to_json())
    section3 = {"unserved_pct", "underprovisioned_time_pct", "pod_hours", "oracle_pod_hours", "cost_ratio", "scale_actions"}
    assert fields == section3 | {"trace", "policy", "startup_seconds", "peak_pods", "wall_seconds"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"startup_seconds": math.nan}, "finite", id="startup-nan"),
        pytest.param({"startup_seconds": math.inf}, "finite", id="startup-inf"),
        pytest.param({"startup_seconds": 86400.5}, "at most 86400 (a day)", id="startup-over-a-day"),
        pytest.param({"seed": -1, "startup_distribution": "lognormal"}, "--seed must be a non-negative integer", id="seed"),
    ],
)
def test_sim_config_refuses_values_no_run_can_use(kwargs, message):
    with pytest.raises(UserError, match=re.escape(message)):
        engine.SimConfig(**kwargs)


def test_a_day_of_startup_is_accepted():
    assert engine.SimConfig(startup_seconds=86400.0).startup_seconds == 86400.0


def test_a_negative_seed_is_refused_by_the_cluster_with_its_name():
    with pytest.raises(ValueError, match="seed of the startup draws must be a non-negative integer, got -1"):
        SimCluster(startup_seconds=120, startup_distribution="lognormal", seed=-1)


@pytest.mark.parametrize("peak", [math.nan, math.inf, -1.0, 0.0, 10_000.5])
def test_scenario_refuses_a_peak_pods_that_is_not_finite_positive_or_absurd(peak):
    trace = Trace("t", np.array([0.0, 600.0]), np.array([1.0, 2.0]))
    with pytest.raises(UserError, match="--peak-pods must be"):
        scenario_from_trace(trace, peak_pods=peak)


def test_scenario_refuses_a_trace_longer_than_a_year_before_allocating_its_ticks():
    # 2 rows 317 years apart: 670 million ticks, tens of GiB, were allocated before
    trace = Trace("absurd", np.array([0.0, 9_999_999_999.0]), np.array([1.0, 2.0]), path="absurd.csv")
    with pytest.raises(UserError, match=r"absurd.csv: spans 9999999999 s \(115740.7 days\), more than the simulator takes"):
        scenario_from_trace(trace)
    year = Trace("year", np.array([0.0, 366 * 86400.0]), np.array([1.0, 2.0]))
    assert scenario_from_trace(year).n_ticks == 366 * 86400 // 15 + 1  # the cap itself is accepted


def test_a_startup_longer_than_the_scenario_is_refused():
    sc = make_scenario(np.ones(41))  # 600 s
    engine.check_startup_fits(sc, engine.SimConfig(startup_seconds=600))
    with pytest.raises(UserError, match=r"synthetic: --startup-seconds 615 is longer than the trace \(600 s\)"):
        engine.check_startup_fits(sc, engine.SimConfig(startup_seconds=615))
