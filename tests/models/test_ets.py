"""Holt-Winters (``models.ets``): the smoothing level never falls to zero on a flat history."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from statsmodels.tsa.holtwinters import ExponentialSmoothing

from models.ets import MIN_SMOOTHING_LEVEL, HoltWinters


def flat_after_noise(rng: np.random.Generator) -> np.ndarray:
    # A little noise, then hours of a flat load: the likelihood of the fit window is best at alpha = 0.
    return np.r_[10.0 + rng.normal(0.0, 0.5, 1000), np.full(2000, 10.0)]


def test_a_flat_history_still_gives_a_level_that_follows_the_load():
    y = flat_after_noise(np.random.default_rng(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        unbounded = ExponentialSmoothing(y[-2016:], trend="add", damped_trend=True, initialization_method="estimated").fit(use_brute=False)
    assert unbounded.params["smoothing_level"] < 1e-6  # the degenerate fit this guards against

    model = HoltWinters(period_steps=0).fit(y, step_seconds=15.0)
    assert model.fallback_reason_ is None  # Holt-Winters itself, not the fallback
    assert model.alpha_ == pytest.approx(MIN_SMOOTHING_LEVEL)
    model.update(np.full(240, 20.0))  # the load doubles and stays there for an hour of 15 s steps
    assert model.predict(4).mean[0] >= 19.0  # at least 90% of the way (it stayed at 10 before)


def test_a_history_with_something_to_learn_keeps_its_fitted_level():
    rng = np.random.default_rng(1)
    y = 50.0 + np.cumsum(rng.normal(0.0, 1.0, 3000))  # a random walk: alpha near 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = ExponentialSmoothing(y[-2016:], trend="add", damped_trend=True, initialization_method="estimated").fit(use_brute=False)
    model = HoltWinters(period_steps=0).fit(y, step_seconds=15.0)
    assert direct.params["smoothing_level"] > MIN_SMOOTHING_LEVEL
    assert math.isclose(model.alpha_, float(direct.params["smoothing_level"]), rel_tol=1e-9)
