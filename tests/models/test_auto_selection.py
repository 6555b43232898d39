"""The automatic model picks the obviously right model, and keeps naive when nothing beats it."""

from __future__ import annotations

import numpy as np
import pytest

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
    assert model.history_ is None  # the caller refits: no history kept for it
    # and updating without one advances every candidate as with one
    keeping = models.create("auto", max_horizon_steps=2, candidates=("naive", "ets"), refit_interval_steps=10**9)
    keeping.fit(y[:300], step_seconds=STEP).update(y[300:])
    assert keeping.history_ is not None
    a, b = model.predict(2, (0.1, 0.5, 0.9)), keeping.predict(2, (0.1, 0.5, 0.9))
    assert a.start == b.start == 400 * STEP
    np.testing.assert_array_equal(a.mean, b.mean)
    for q in (0.1, 0.5, 0.9):
        np.testing.assert_array_equal(a.quantile(q), b.quantile(q))


def test_an_internal_refit_fits_on_the_same_history_as_a_fresh_fit_on_the_latest_points() -> None:
    rng = np.random.default_rng(3)
    y = 10.0 + np.sin(2 * np.pi * np.arange(500) / 24) + rng.normal(0.0, 0.1, 500)
    # 40 horizons: a candidate fits on at least two horizons' worth (80 steps), more than the 40 asked
    kwargs = {"max_horizon_steps": 40, "candidates": ("naive", "ets"), "history_seconds": 40 * STEP}
    model = models.create("auto", refit_interval_steps=70, **kwargs).fit(y[:300], step_seconds=STEP)
    for start in range(300, 450, 10):  # the buffer compacts just before the refits at 370 and 440
        model.update(y[start : start + 10])
    # the last refit (at 440 points) fitted the latest 80, what its candidates fit on
    fresh = models.create("auto", refit_interval_steps=0, **kwargs).fit(y[360:440], step_seconds=STEP, start_seconds=360 * STEP)
    fresh.update(y[440:450])
    a, b = model.predict(2, (0.1, 0.9)), fresh.predict(2, (0.1, 0.9))
    assert a.start == b.start == 450 * STEP
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.quantile(0.9), b.quantile(0.9))


def _spiky_seasonal(n: int = 24 * 30, *, seed: int = 8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = 50.0 + 20.0 * np.sin(2 * np.pi * t / 24) + rng.normal(0.0, 2.0, n)
    y[rng.random(n) < 0.03] += 60.0  # isolated spikes: absolute and pinball losses rank models differently
    return y


def test_the_point_forecast_comes_from_the_candidate_with_the_lowest_recent_absolute_error() -> None:
    y = _spiky_seasonal()
    model = models.create("auto", max_horizon_steps=4, candidates=("naive", "seasonal_naive", "ets", "stl"))
    model.fit(y, step_seconds=STEP)
    model.update(y[-10:] + 1.0)

    forecast = model.predict(4)

    assert model.point_choice_ != model.choice_  # on this series the two losses disagree
    errors = {name: m.recent_abs_errors() for name, m in model.models_.items()}
    for i, name in enumerate(model.point_choice_):
        best = min(errors, key=lambda n: errors[n][i] * (1.0 - model.margin if n == "naive" else 1.0))
        assert name == best
        assert forecast.mean[i] == model.models_[name].predict(4).mean[i]
    for i, name in enumerate(model.choice_):  # the quantiles still come from the pinball choice
        assert forecast.quantiles[0.9][i] == model.models_[name].predict(4).quantiles[0.9][i]


def test_point_score_pinball_takes_the_mean_of_the_candidate_whose_quantiles_are_chosen() -> None:
    y = _spiky_seasonal()
    model = models.create(
        "auto", max_horizon_steps=4, candidates=("naive", "seasonal_naive", "ets", "stl"), point_score="pinball"
    )

    forecast = model.fit(y, step_seconds=STEP).predict(4)

    assert model.point_choice_ == model.choice_
    for i, name in enumerate(model.choice_):
        assert forecast.mean[i] == model.models_[name].predict(4).mean[i]


def test_point_score_must_be_known() -> None:
    with pytest.raises(ValueError, match="point_score"):
        models.create("auto", point_score="mse")
