"""The automatic model picks the obviously right model, and keeps naive when nothing beats it."""

from __future__ import annotations

import numpy as np

import models

STEP = 3600.0


def test_auto_picks_a_seasonal_model_on_a_strongly_seasonal_series() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(24 * 30)
    y = 100.0 + 40.0 * np.sin(2 * np.pi * t / 24) + rng.normal(0.0, 1.0, t.size)
    model = models.create("auto", max_horizon_steps=6, candidates=("naive", "seasonal_naive", "ets"))

    forecast = model.fit(y, step_seconds=STEP).predict(6)

    assert "naive" not in model.choice_  # ets or seasonal_naive at every horizon, never plain naive
    assert forecast.fallback_reason is None
    assert forecast.model.startswith("auto[")
    truth = 100.0 + 40.0 * np.sin(2 * np.pi * np.arange(t.size, t.size + 6) / 24)
    assert np.max(np.abs(forecast.mean - truth)) < 5.0


def test_auto_falls_back_to_naive_on_a_random_walk() -> None:
    y = 100.0 + np.cumsum(np.random.default_rng(1).normal(0.0, 1.0, 24 * 30))
    model = models.create("auto", max_horizon_steps=3, candidates=("naive", "seasonal_naive", "ets", "stl"))

    forecast = model.fit(y, step_seconds=STEP).predict(3)

    assert model.choice_ == ["naive", "naive", "naive"]
    assert forecast.fallback_reason is not None and "naive" in forecast.fallback_reason
    np.testing.assert_array_equal(forecast.mean, np.full(3, y[-1]))


def test_auto_refits_on_its_schedule() -> None:
    rng = np.random.default_rng(2)
    y = 10.0 + np.sin(2 * np.pi * np.arange(400) / 24) + rng.normal(0.0, 0.1, 400)
    model = models.create("auto", max_horizon_steps=2, candidates=("naive", "ets"), refit_interval_steps=10)
    model.fit(y[:300], step_seconds=STEP)
    first_models = dict(model.models_)

    model.update(y[300:309])
    assert model.models_ == first_models  # 9 points: not yet
    model.update(y[309:310])
    assert all(model.models_[name] is not first_models[name] for name in first_models)  # the 10th refits
    assert model.predict(2).start == 310 * STEP


def test_auto_never_refits_by_itself_when_the_interval_is_zero() -> None:
    y = 10.0 + np.sin(2 * np.pi * np.arange(400) / 24)
    model = models.create("auto", max_horizon_steps=2, candidates=("naive", "ets"), refit_interval_steps=0)
    model.fit(y[:300], step_seconds=STEP)
    first_models = dict(model.models_)

    model.update(y[300:])

    assert model.models_ == first_models
