"""Forecasts made in a second process ahead of the decisions give the inline run, to the last digit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from controller.settings import ControllerSettings, WorkloadSettings
from controller.sim import ahead, engine
from controller.sim.cluster import SimActuator, SimClock, SimCluster, SimMetrics, SimPods
from controller.policies import PolicyPorts, predictive_options
from controller.sim.scenario import TICK_SECONDS, Scenario

pytestmark = pytest.mark.skipif(not ahead.available(), reason="this platform cannot fork")

DAY_TICKS = 5760


def diurnal(days: float = 1.5, seed: int = 3) -> Scenario:
    """A day-long cycle with bursts and noise: the forecaster refits, widens and moves the count."""
    n = int(days * DAY_TICKS)
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    demand = 20 + 10 * np.sin(2 * np.pi * t / DAY_TICKS) + rng.normal(0, 1.0, n)
    demand[(t % 700) < 12] += 8  # a short burst every few hours
    return Scenario(name="diurnal", times=TICK_SECONDS * t, demand=np.maximum(demand, 0.5))


@pytest.fixture
def feeds(monkeypatch):
    """Every feed a run starts (the real one, recorded)."""
    started = []
    real = ahead.ForecastFeed.start.__func__

    def start(cls, policy, **kwargs):
        feed = real(cls, policy, **kwargs)
        started.append((feed, kwargs["horizon_startup_seconds"]))
        return feed

    monkeypatch.setattr(ahead.ForecastFeed, "start", classmethod(start))
    return started


def outcome(result):
    band = {k: v.tobytes() for k, v in result.forecast.items()}
    score = result.score.to_json()
    score.pop("wall_seconds")
    return score, result.ready.tobytes(), result.starting.tobytes(), result.decisions, band


@pytest.mark.parametrize(("startup", "distribution"), [(300.0, "fixed"), (120.0, "lognormal")])
def test_a_run_with_forecasts_made_ahead_is_the_inline_run(feeds, startup, distribution):
    sc = diurnal()
    config = engine.SimConfig(startup_seconds=startup, startup_distribution=distribution)
    fed = engine.run(sc, "scaleahead", config)
    assert len(feeds) == 1  # the run did use the second process
    feed, bound = feeds[0]
    assert feed._tick == sc.n_ticks  # and took a forecast at every tick
    # The settings' prior is 120 s, so at 300 s the forecasts the policy asks for grow once its pods
    # have shown their startup: the child predicts for the longest (and the parent cuts).
    assert bound == (300.0 if distribution == "fixed" else 120.0 * ahead.LOGNORMAL_HORIZON_FACTOR)
    inline = engine.run(sc, "scaleahead", dataclasses.replace(config, forecast_process=False))
    assert len(feeds) == 1
    assert inline.score.scale_actions > 10  # a run that decides things, not a flat line
    assert outcome(fed) == outcome(inline)


def test_a_startup_estimate_past_the_childs_horizon_goes_on_inline_with_the_same_results(feeds, monkeypatch):
    # The child predicts for the prior startup (120 s) only; the pods start in 300 s.
    monkeypatch.setattr(ahead, "horizon_startup_seconds", lambda policy, **_: policy.startup.prior_seconds)
    sc = diurnal(days=1.0)
    demand = sc.demand.copy()
    demand[:2400] = demand[2400]  # flat for ten hours: no pod starts before the first fit (tick 1440)
    sc = Scenario(name="late", times=sc.times, demand=demand)
    config = engine.SimConfig(startup_seconds=300.0)
    fed = engine.run(sc, "scaleahead", config)
    feed, bound = feeds[0]
    assert bound == 120.0
    # The first pods to start showed 300 s, past the child's horizon: the feed was left midway.
    assert 2400 < feed.tick < sc.n_ticks
    inline = engine.run(sc, "scaleahead", dataclasses.replace(config, forecast_process=False))
    assert outcome(fed) == outcome(inline)


def test_short_runs_and_other_policies_forecast_inline(feeds):
    short = diurnal(days=0.5)
    engine.run(short, "scaleahead", engine.SimConfig())
    engine.run(diurnal(), "hpa", engine.SimConfig())
    assert feeds == []


def make_policy(scenario: Scenario, *, factory=None) -> tuple[ahead.FedPolicy, SimClock]:
    clock = SimClock(float(scenario.times[0]))
    cluster = SimCluster(startup_seconds=120.0)
    ports = PolicyPorts(
        clock=clock,
        metrics=SimMetrics(clock=clock, t0=0.0, observed=scenario.observed()),
        pods=SimPods(cluster, t0=0.0),
        actuator=SimActuator(cluster),
    )
    options = predictive_options(ControllerSettings(), WorkloadSettings(namespace="sim", name="w"), tick_seconds=TICK_SECONDS)
    kwargs = dict(options.kwargs)
    if factory is not None:
        kwargs["forecaster_factory"] = factory
    return ahead.FedPolicy(ports, options.params, **kwargs), clock


def test_a_failing_forecast_process_is_reported_with_its_traceback():
    class Broken:
        def fit(self, y, *, step_seconds, start_seconds=0.0):
            raise ZeroDivisionError("the model could not fit")

    sc = diurnal(days=0.5)
    policy, _ = make_policy(sc, factory=Broken)
    feed = ahead.ForecastFeed.start(policy, times=sc.times, observed=sc.observed(), horizon_startup_seconds=120.0)
    try:
        with pytest.raises(ahead.FeedError, match=r"(?s)forecast process failed.*ZeroDivisionError: the model could not fit"):
            for t in sc.times:
                feed.take(float(t), 20)
    finally:
        feed.close()


def test_the_feed_refuses_a_tick_out_of_order_and_says_when_its_forecasts_are_too_short():
    sc = diurnal(days=0.5)
    policy, _ = make_policy(sc)
    feed = ahead.ForecastFeed.start(policy, times=sc.times, observed=sc.observed(), horizon_startup_seconds=120.0)
    try:
        with pytest.raises(ahead.FeedError, match="forecast of time 15.0, the feed is at tick 0"):
            feed.take(15.0, 20)
        first = next(i for i, t in enumerate(sc.times) if feed.take(float(t), 12) is not None)
        assert first > 0  # nothing before the first fit
        with pytest.raises(ahead.TooShort, match=r"asked for a forecast of 400 steps, the forecast process made \d+"):
            feed.take(float(sc.times[first + 1]), 400)
    finally:
        feed.close()


def test_a_feed_starts_only_from_a_policy_that_has_not_run():
    sc = diurnal(days=0.5)
    policy, _ = make_policy(sc)
    policy._forecast = object()
    with pytest.raises(ValueError, match="has not run a tick"):
        ahead.ForecastFeed.start(policy, times=sc.times, observed=sc.observed(), horizon_startup_seconds=120.0)


def test_each_forecast_is_the_one_the_policy_makes_inline_cut_to_its_steps():
    sc = diurnal(days=0.5)
    fed, _ = make_policy(sc)
    inline, _ = make_policy(sc)  # prior startup 120 s: shorter forecasts than the child makes
    feed = ahead.ForecastFeed.start(fed, times=sc.times, observed=sc.observed(), horizon_startup_seconds=300.0)
    compared = 0
    try:
        observed = sc.observed()
        for t, load in zip(sc.times, observed, strict=True):
            inline._observe_load(float(t), float(load))
            made = feed.take(float(t), inline._forecast_steps())
            if made is None:
                continue
            expected = inline._forecast
            assert made.horizon_steps == expected.horizon_steps < 25  # cut from the child's 25
            assert made.mean.tobytes() == expected.mean.tobytes()
            assert made._levels == expected._levels and made._table.tobytes() == expected._table.tobytes()
            assert (made.start, made.model, made.fallback_reason) == (expected.start, expected.model, expected.fallback_reason)
            compared += 1
    finally:
        feed.close()
    assert compared > 1000
