"""The counterfactuals of ``controller.decide.baseline``: shadow pods, the reference HPA, and the rung choice."""

from __future__ import annotations

import numpy as np
import pytest

from controller.decide import baseline, hpa
from controller.decide.baseline import ReferenceParams, ShadowHpa, ShadowPods, Tally, choose_rung, step_hpa
from controller.sim import engine
from controller.sim.scenario import Scenario


def test_new_pods_become_ready_a_startup_later_and_not_before():
    pods = ShadowPods(2).scale(5, 100.0, startup_seconds=60.0)
    assert (pods.ready, len(pods.starting), pods.replicas) == (2, 3, 5)
    assert pods.advance(159.0) == pods
    assert pods.advance(160.0) == ShadowPods(5)


def test_a_scale_in_removes_the_newest_starting_pods_first_then_ready_ones():
    pods = ShadowPods(3, (50.0, 80.0))
    assert pods.scale(4, 0.0, startup_seconds=60.0) == ShadowPods(3, (50.0,))
    assert pods.scale(2, 0.0, startup_seconds=60.0) == ShadowPods(2, ())
    assert pods.scale(5, 0.0, startup_seconds=60.0) is pods


def test_the_reference_hpa_is_the_simulators_hpa_tick_for_tick():
    rng = np.random.default_rng(3)
    minutes = np.arange(24 * 60 + 1)
    per_minute = np.clip(20 + 12 * np.sin(2 * np.pi * minutes / 720) + rng.normal(0, 3, minutes.size), 1, None)
    per_minute[600:640] *= 1.8  # a burst
    demand = np.interp(np.arange(len(minutes) * 4 - 3) / 4.0, minutes, per_minute)
    sc = Scenario(name="synthetic", times=15.0 * np.arange(len(demand)), demand=demand)
    run = engine.run(sc, "hpa", engine.SimConfig(startup_seconds=120))

    shadow = ShadowHpa(ShadowPods(sc.initial_pods(min_replicas=1)))
    replicas = []
    params = hpa.HpaParams()
    for t, load in zip(sc.times, sc.observed()):
        shadow = step_hpa(shadow, float(load), float(t), startup_seconds=120.0, params=params)
        replicas.append(shadow.pods.replicas)

    assert np.array_equal(np.asarray(replicas), run.ready + run.starting)
    assert max(replicas) > 2 * min(replicas)  # it did scale both ways


def tally(pods: float, uncovered: float) -> Tally:
    return Tally(pod_seconds=pods, uncovered=uncovered)


UP = (0.85, 0.9, 0.975)  # the configured quantile, then higher ones


def test_when_the_configured_quantile_serves_worse_the_lowest_higher_rung_no_worse_is_chosen():
    day = (tally(100, 10), [tally(80, 30), tally(90, 8), tally(95, 0)], 1e6)
    assert choose_rung([day], UP) == 1
    # the order of the ladder does not matter, the quantiles do
    assert choose_rung([(tally(100, 10), [tally(80, 30), tally(95, 0), tally(90, 8)], 1e6)], (0.85, 0.975, 0.9)) == 2
    # the configured quantile first: when it is no worse, it is kept
    assert choose_rung([(tally(100, 10), [tally(80, 5), tally(90, 1), tally(99, 0)], 1e6)], UP) == 0


def test_when_the_configured_quantile_serves_as_well_but_costs_more_the_highest_lower_rung_no_worse_is_chosen():
    ladder = (0.85, 0.975, 0.7, 0.6)
    day = (tally(100, 10), [tally(110, 2), tally(130, 0), tally(98, 6), tally(90, 9)], 1e6)
    assert choose_rung([day], ladder) == 2  # 0.7: the nearest below that is no worse
    # a lower rung that serves worse than the HPA is not taken
    day = (tally(100, 10), [tally(110, 2), tally(130, 0), tally(98, 12), tally(90, 20)], 1e6)
    assert choose_rung([day], ladder, slack=0.0) == 0
    # it never goes up for cost, nor down for service
    day = (tally(100, 10), [tally(110, 20), tally(99, 5), tally(90, 1)], 1e6)
    assert choose_rung([day], (0.85, 0.975, 0.6), slack=0.0) == 1
    day = (tally(100, 10), [tally(110, 2), tally(99, 5), tally(120, 1)], 1e6)
    assert choose_rung([day], (0.85, 0.975, 0.6), slack=0.0) == 0


def test_when_no_rung_is_no_worse_the_configured_quantile_is_kept():
    day = (tally(100, 10), [tally(80, 30), tally(110, 5), tally(120, 0)], 1e6)
    assert choose_rung([day], UP) == 0
    assert choose_rung([], UP) == 0


def test_with_the_hpa_rung_a_workload_no_quantile_serves_as_well_as_the_hpa_is_scaled_as_the_hpa():
    worse_service = (tally(100, 10), [tally(80, 30), tally(110, 5), tally(120, 0)], 1e6)
    worse_cost = (tally(100, 10), [tally(120, 5), tally(130, 0), tally(101, 10)], 1e6)
    for day in (worse_service, worse_cost):
        assert choose_rung([day], UP, slack=0.0, hpa_rung=True) == len(UP)
    # a rung that qualifies, or the configured one, still comes first
    assert choose_rung([(tally(100, 10), [tally(80, 30), tally(95, 0), tally(90, 8)], 1e6)], UP, hpa_rung=True) == 1
    assert choose_rung([(tally(100, 10), [tally(90, 10), tally(110, 0), tally(120, 0)], 1e6)], UP, hpa_rung=True) == 0
    assert choose_rung([], UP, hpa_rung=True) == 0


def test_a_memory_on_the_hpa_rung_continues_only_where_the_hpa_rung_is_on():
    memory = baseline.ReferenceMemory(UP, len(UP), (), 86400.0)
    assert memory.fits(UP, hpa_rung=True) is None
    assert "fallback_to_hpa is now false" in memory.fits(UP)
    assert "not on a ladder" in baseline.ReferenceMemory(UP, len(UP) + 1, (), 86400.0).fits(UP, hpa_rung=True)


def test_the_choice_is_on_the_totals_of_the_days_not_on_each_day():
    bad_day = (tally(100, 10), [tally(95, 20), tally(99, 12)], 1e6)
    good_day = (tally(100, 10), [tally(95, 12), tally(99, 0)], 1e6)
    assert choose_rung([bad_day], UP[:2], slack=0.0) == 0  # no rung qualifies on this day alone
    # over both days rung 1 has 198 pod-s and 12 uncovered against the HPA's 200 and 20; rung 0 has 32
    assert choose_rung([bad_day, good_day], UP[:2], slack=0.0) == 1


def test_while_the_real_pods_owe_uncovered_load_only_a_rung_that_served_better_at_no_more_pods_is_taken():
    # Over the window rung 0 matched the HPA (0 uncovered at fewer pods) and 0.975 served better.
    day = (tally(100, 4), [tally(90, 4), tally(99, 1), tally(120, 0)], 1e6)
    assert choose_rung([day], UP, hpa_rung=True) == 0  # nothing owed: the configured quantile
    assert choose_rung([day], UP, hpa_rung=True, balance=tally(-50, 0)) == 0
    assert choose_rung([day], UP, hpa_rung=True, balance=tally(-50, -3)) == 0  # a surplus is not spent
    # owing 3: rung 0 would not make it up; 0.9 would (1 + 3 <= 4); 0.975 served better still but held more pods than the HPA
    assert choose_rung([day], UP, hpa_rung=True, balance=tally(0, 3)) == 1
    # owing 5: none makes it all up; the one that served best of those at no more pods makes up 3, more than half
    assert choose_rung([day], UP, hpa_rung=True, balance=tally(0, 5)) == 1
    # with 30 pod-seconds saved against the HPA, 0.975's 20 more are affordable: it serves best
    assert choose_rung([day], UP, hpa_rung=True, balance=tally(-30, 5)) == 2
    assert choose_rung([day], UP, hpa_rung=True, balance=tally(-19, 5)) == 1
    assert choose_rung([day], UP, hpa_rung=True, balance=tally(-30, 3)) == 1  # both make it all up: the cheaper
    cheap = (tally(100, 4), [tally(90, 2), tally(95, 1), tally(99, 0.5)], 1e6)
    assert choose_rung([cheap], UP, hpa_rung=True, balance=tally(0, 2)) == 0  # 2 + 2 <= 4: the cheapest that makes it all up
    assert choose_rung([cheap], UP, hpa_rung=True, balance=tally(0, 3)) == 1  # 1 + 3 <= 4
    # none makes it all up: the best served, if it made up at least half of what is owed (3.5 of 7)
    assert choose_rung([cheap], UP, hpa_rung=True, balance=tally(0, 7)) == 2
    # 3.5 of 9 is less than half: the HPA rung (or, without it, rung 0), not a rung that beat the HPA by a sliver
    assert choose_rung([cheap], UP, hpa_rung=True, balance=tally(0, 9)) == len(UP)
    assert choose_rung([cheap], UP, balance=tally(0, 9)) == 0
    # where the HPA left nothing uncovered nothing can make up for it: the HPA rung (or, without it, rung 0)
    none = (tally(100, 0), [tally(90, 0), tally(95, 0), tally(99, 0)], 1e6)
    assert choose_rung([none], UP, hpa_rung=True, balance=tally(0, 1e-9)) == len(UP)
    assert choose_rung([none], UP, balance=tally(0, 1e-9)) == 0
    assert choose_rung([none], UP, hpa_rung=True, balance=tally(0, 0)) == 0


def test_while_owing_a_rung_that_left_more_than_the_hpa_on_any_day_of_the_window_is_not_taken():
    # A burst day on which every rung beat the HPA by far, then a calm day on which rung 0 left a
    # little uncovered and the HPA nothing.
    burst = (tally(100, 50), [tally(90, 10), tally(95, 8), tally(120, 0)], 1e6)
    calm = (tally(100, 0), [tally(90, 2), tally(95, 0), tally(99, 0)], 1e6)
    # over the two days rung 0 made up all of the 10 owed (12 + 10 <= 50) and is the cheapest,
    # but it served worse than the HPA on the calm day: 0.9, no worse on each, makes it all up
    assert choose_rung([burst, calm], UP, hpa_rung=True, balance=tally(0, 10)) == 1
    assert choose_rung([burst], UP, hpa_rung=True, balance=tally(0, 10)) == 0  # the burst day alone
    # nothing owed: the days decide as before, and rung 0 was no worse over them
    assert choose_rung([burst, calm], UP, hpa_rung=True) == 0
    # no rung left no more than the HPA on both days at the pods allowed: the HPA rung
    worse = (tally(100, 0), [tally(90, 2), tally(95, 1), tally(99, 0)], 1e6)
    assert choose_rung([burst, worse], UP, hpa_rung=True, balance=tally(0, 10)) == len(UP)


def test_where_the_hpa_leaves_load_unserved_the_savings_buy_the_highest_higher_rung_that_served_as_well():
    # The HPA left 40 of 1e5 (0.04%) uncovered; rung 0 did better at fewer pods, 0.9 and 0.975 better still at more.
    day = (tally(100, 40), [tally(80, 30), tally(105, 10), tally(115, 0)], 1e5)
    assert choose_rung([day], UP, balance=tally(-50, 0)) == 0  # without spend: the cheapest no worse
    assert choose_rung([day], UP, spend=True) == 0  # no balance, nothing saved: neither is affordable
    assert choose_rung([day], UP, spend=True, balance=tally(-4, 0)) == 0  # 105 > 100 + 4
    assert choose_rung([day], UP, spend=True, balance=tally(-5, 0)) == 1  # 105 <= 100 + 5: all the savings, no reserve
    assert choose_rung([day], UP, spend=True, balance=tally(-15, -5)) == 2  # 115 <= 100 + 15: the highest affordable
    assert choose_rung([day], UP, spend=True, balance=tally(20, 0)) == 0  # spent more than the HPA so far: no spare
    # the reserve, 2% of the HPA's pod-seconds so far, is never spent: 100 + 15 - 0.02 * 500 = 105
    assert choose_rung([day], UP, spend=True, balance=tally(-15, 0), hpa_pod_seconds=500) == 1
    assert choose_rung([day], UP, spend=True, balance=tally(-15, 0), hpa_pod_seconds=501) == 0
    assert choose_rung([day], UP, spend=True, balance=tally(-5, 0), hpa_pod_seconds=5000) == 0  # all in reserve
    # a higher rung no dearer than the HPA over the days needs no savings
    assert choose_rung([(tally(100, 40), [tally(80, 30), tally(95, 10), tally(99, 0)], 1e5)], UP, spend=True) == 2
    # where the HPA left nothing unserved (at most 0.01% of the load) the cheapest no worse, as without it
    calm = (tally(100, 10), [tally(80, 5), tally(105, 0), tally(115, 0)], 1e5)
    assert choose_rung([calm], UP, spend=True, balance=tally(-50, 0)) == 0
    # a higher rung that left more uncovered than rung 0, or than the HPA, is not bought
    assert choose_rung([(tally(100, 40), [tally(80, 30), tally(105, 35), tally(115, 41)], 1e5)], UP, spend=True, balance=tally(-50, 0)) == 0
    # nor a lower one, however well it served
    assert choose_rung([(tally(100, 40), [tally(80, 30), tally(70, 0)], 1e5)], (0.85, 0.7), spend=True, balance=tally(-50, 0)) == 0
    # while the real pods owe load the make-up decides: 0.85 makes up all 5 owed and is the cheapest
    assert choose_rung([day], UP, spend=True, balance=tally(-30, 5)) == 0
    # rung 0 serving worse than the HPA: the highest affordable higher rung, not merely the lowest that qualifies
    worse = (tally(100, 40), [tally(80, 50), tally(95, 10), tally(99, 0)], 1e5)
    assert (choose_rung([worse], UP), choose_rung([worse], UP, spend=True)) == (1, 2)


def test_each_choice_comes_with_what_decided_it():
    why = baseline.choose_rung_why
    h = 3600.0  # tallies in hours, so that the messages read in round numbers

    kept = (tally(100, 10), [tally(80, 5), tally(105, 0), tally(115, 0)], 1e5)
    assert why([kept], UP) == (0, "0.85 was no worse than the HPA on both pods and load uncovered over the last day")
    worse = (tally(100, 40), [tally(80, 50), tally(95, 10), tally(99, 0)], 1e5)
    assert why([worse, worse], UP) == (1, "0.85 left more load uncovered than the HPA over the last 2 days, and 0.9 was no worse on both")
    dear = (tally(100, 0), [tally(110, 0), tally(90, 0)], 1e5)
    assert why([dear], (0.85, 0.7)) == (1, "0.85 held more pods than the HPA over the last day, and 0.7 was no worse on both")
    # nothing qualifies: the HPA rung, or with the fallback off the configured quantile, said as such
    stuck = (tally(100, 0), [tally(90, 2), tally(105, 0), tally(110, 0)], 1e5)
    assert why([stuck], UP, hpa_rung=True) == (3, "0.85 left more load uncovered than the HPA over the last day, and no higher quantile was no worse on both")
    assert why([stuck], UP) == (0, why([stuck], UP, hpa_rung=True)[1] + "; forecast.fallback_to_hpa is off, so the configured quantile")

    # savings spent on service: the excess over the HPA, the savings and the reserve (2% of the HPA's pod-hours)
    unserved = (tally(100 * h, 40), [tally(80 * h, 30), tally(105 * h, 10), tally(115 * h, 0)], 1e5)
    assert why([unserved], UP, spend=True, balance=tally(-15 * h, 0)) == (
        2,
        "the HPA left load unserved over the last day, and 0.975 left no more uncovered than it and 0.85, at 15 pod-hours"
        " more than the HPA, paid from those saved against it (15 saved, 0 kept in reserve)",
    )
    assert why([unserved], UP, spend=True, balance=tally(-15 * h, 0), hpa_pod_seconds=500 * h)[0] == 1  # 10 in reserve: 5 to spend
    assert why([unserved], UP, spend=True, balance=tally(-h, 0)) == (
        0,
        "0.85 was no worse than the HPA on both pods and load uncovered over the last day; no higher quantile that served"
        " better was within the savings beyond the reserve (1 pod-hours)",
    )
    cheap = (tally(100, 40), [tally(80, 30), tally(95, 10), tally(99, 0)], 1e5)
    assert why([cheap], UP, spend=True)[1].endswith("0.975 left no more uncovered than it and 0.85, at no more pods than the HPA")

    # load owed: made all up, made up in part, or not at all
    owing = (tally(100 * h, 40_000), [tally(80 * h, 30_000), tally(105 * h, 10_000), tally(115 * h, 0)], 1e8)
    assert why([owing], UP, balance=tally(-30 * h, 2 * h)) == (
        0,
        "the pods owe 2 load-hours against the HPA; 0.85 would have made all of it up over the last day, no worse on any day,"
        " at no more pods than the HPA",
    )
    assert why([owing], UP, balance=tally(-20 * h, 5 * h)) == (
        1,
        "the pods owe 5 load-hours against the HPA; 0.9 would have made all of it up over the last day, no worse on any day,"
        " at 5 pod-hours more than the HPA, paid from those saved against it (20 saved)",
    )
    assert why([owing], UP, balance=tally(0, 5 * h)) == (
        0,
        "the pods owe 5 load-hours against the HPA; 0.85 would have made up 56% of it over the last day, no worse on any day,"
        " at no more pods than the HPA",
    )
    assert why([owing], UP, hpa_rung=True, balance=tally(0, 20 * h)) == (
        3,
        "the pods owe 20 load-hours against the HPA, and no quantile would have made up at least half of it over the last day"
        " while no worse than the HPA on any day, at no more pods than the HPA's plus those saved",
    )
    # every choice is choose_rung's
    for days, kwargs in (([kept], {}), ([worse], {}), ([unserved], {"spend": True, "balance": tally(-15 * h, 0)}), ([owing], {"balance": tally(0, 5 * h)})):
        assert why(days, UP, **kwargs)[0] == choose_rung(days, UP, **kwargs)


def test_an_uncovered_amount_within_the_slack_counts_as_no_worse():
    day = (tally(100, 0), [tally(90, 5), tally(95, 20)], 1e6)
    assert choose_rung([day], UP[:2], slack=1e-5) == 0  # 5 <= 0 + 1e-5 * 1e6 = 10
    assert choose_rung([day], UP[:2], slack=0.0) == 0  # no rung qualifies: the configured one is kept
    assert choose_rung([(tally(100, 0), [tally(90, 15), tally(95, 5)], 1e6)], UP[:2], slack=1e-5) == 1


def test_tally_counts_pods_and_the_observed_load_the_ready_pods_leave_uncovered():
    t = Tally().add(ready=3, replicas=5, load=4.5, capacity_per_pod=1.0, seconds=15.0)
    t = t.add(ready=5, replicas=5, load=4.0, capacity_per_pod=1.0, seconds=15.0)
    assert t == Tally(pod_seconds=150.0, uncovered=22.5)


@pytest.mark.parametrize("quantiles", [(), (0.85, 1.0), (0.85, 0.85), (0.85, 0.0)])
def test_the_ladder_must_be_distinct_quantiles(quantiles):
    with pytest.raises(ValueError, match="distinct and in"):
        ReferenceParams(quantiles=quantiles)


@pytest.mark.parametrize("quantiles", [(0.85,), (0.85, 0.5, 0.6), (0.85, 0.9)])
def test_a_lean_rung_must_be_the_last_and_lowest(quantiles):
    with pytest.raises(ValueError, match="lean rung must be the last and lowest"):
        ReferenceParams(quantiles=quantiles, lean=True)
    assert ReferenceParams(quantiles=(0.85, 0.975, 0.6, 0.5), lean=True).lean


def test_finite_is_false_for_missing_and_nan_load():
    assert not baseline.finite(None) and not baseline.finite(float("nan")) and baseline.finite(0.0)


def test_shadow_pods_from_an_observation_count_its_starting_pods_as_ready_later():
    from controller.domain import Observation

    pods = ShadowPods.observed(Observation(100.0, 5.0, 3, 2, 5), ready_at=220.0)
    assert pods == ShadowPods(3, (220.0, 220.0))
    assert pods.advance(220.0) == ShadowPods(5)


def test_shadow_pods_and_the_simulated_cluster_scale_in_the_same_pods():
    from controller.sim.cluster import SimCluster

    for ready, starting, desired in [(5, 3, 6), (5, 3, 2), (5, 0, 1), (0, 4, 1), (3, 2, 0), (2, 3, 4)]:
        cluster = SimCluster(startup_seconds=60.0)
        cluster.set_replicas(ready)
        pods = ShadowPods(0).scale(ready, 0.0, startup_seconds=60.0)
        # then one more pod per tick, so that the starting pods differ in age
        for tick in range(4, 4 + starting):
            cluster.advance(tick)
            cluster.set_replicas(cluster.replicas + 1)
            pods = pods.advance(15.0 * tick).scale(pods.replicas + 1, 15.0 * tick, startup_seconds=60.0)
        cluster.set_replicas(desired)
        pods = pods.scale(desired, 15.0 * (3 + starting), startup_seconds=60.0)
        assert (cluster.ready, [15.0 * t for t in cluster.starting]) == (pods.ready, list(pods.starting)), (ready, starting, desired)
