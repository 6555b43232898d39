"""The median ensemble combines fitted members and calibrates itself on their replays."""

from __future__ import annotations

import numpy as np
import pytest

import models
from models import ensemble

STEP = 300.0
HORIZON = 3


def series(n: int = 700, *, seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 40.0 + 15.0 * np.sin(2 * np.pi * t / 24) + np.cumsum(rng.normal(0.0, 0.5, n)) + rng.normal(0.0, 2.0, n)


def member(name: str, y: np.ndarray, **kwargs: object) -> models.Forecaster:
    model = models.create(name, max_horizon_steps=HORIZON, calibration="adaptive", keep_replay=True, **kwargs)
    return model.fit(y, step_seconds=STEP, start_seconds=0.0)


def test_keep_replay_holds_the_calibration_replay_and_is_off_by_default() -> None:
    y = series()
    kept = member("ets", y)
    targets, paths, scales = kept.replay_

    assert targets.size == 233  # a day (288 steps), but at most a third of the 700 points
    assert paths.shape == (234, HORIZON)  # one path per origin, the last one is the current state
    assert scales.shape == (234,)
    np.testing.assert_array_equal(targets, y[-233:])
    np.testing.assert_array_equal(paths[-1], kept.path_)
    assert models.create("ets", max_horizon_steps=HORIZON).fit(y, step_seconds=STEP).replay_ is None


def test_an_ensemble_of_one_model_twice_is_that_model() -> None:
    y = series()
    first, second = member("ets", y), member("ets", y)
    combined = ensemble.MedianEnsemble([first, second])

    # Same paths, same replay: the combination's calibration must line up with the member's own.
    np.testing.assert_allclose(combined.recent_scores(), first.recent_scores())
    np.testing.assert_allclose(combined.recent_abs_errors(), first.recent_abs_errors())
    expected, got = first.predict(HORIZON), combined.predict(HORIZON)
    np.testing.assert_allclose(got.mean, expected.mean)
    for level in expected.quantiles:
        np.testing.assert_allclose(got.quantiles[level], expected.quantiles[level])
    assert got.start == expected.start


def test_the_path_is_the_median_of_the_members_after_fit_and_updates() -> None:
    y = series(760)
    members = [member(name, y[:700]) for name in ("seasonal_naive", "ets", "stl")]
    combined = ensemble.MedianEnsemble(members)
    np.testing.assert_allclose(combined.predict(HORIZON).mean, np.median([m.path_ for m in members], axis=0))

    for value in y[700:]:
        for model in members:
            model.update(value)
        combined.update(value)

    paths = np.array([m.predict(HORIZON).mean for m in members])
    forecast = combined.predict(HORIZON)
    np.testing.assert_allclose(forecast.mean, np.median(paths, axis=0))
    assert forecast.start == members[0].predict(HORIZON).start == 760 * STEP
    table = np.vstack([forecast.quantiles[q] for q in sorted(forecast.quantiles)])
    assert np.all(np.diff(table, axis=0) >= 0)
    assert forecast.model == "median[seasonal_naive,ets,stl]"


def test_a_longer_horizon_takes_the_median_of_the_members_forecasts() -> None:
    y = series()
    members = [member(name, y) for name in ("seasonal_naive", "ets", "stl")]
    combined = ensemble.MedianEnsemble(members)

    forecast = combined.predict(4 * HORIZON)

    expected = np.median([m.predict(4 * HORIZON).mean for m in members], axis=0)
    np.testing.assert_allclose(forecast.mean, expected)


def test_an_ensemble_refuses_unusable_members() -> None:
    y = series()
    with pytest.raises(ValueError, match="at least two"):
        ensemble.MedianEnsemble([member("ets", y)])
    plain = models.create("stl", max_horizon_steps=HORIZON).fit(y, step_seconds=STEP)
    with pytest.raises(ValueError, match="keep_replay"):
        ensemble.MedianEnsemble([member("ets", y), plain])
    fallen = member("ets", np.full(400, 3.0))  # constant: runs on its fallback
    with pytest.raises(ValueError, match="fallback"):
        ensemble.MedianEnsemble([member("ets", y), fallen])
    shorter = member("stl", y[:-1])  # one point behind: forecasts other points
    with pytest.raises(ValueError, match="same points"):
        ensemble.MedianEnsemble([member("ets", y), shorter])


def test_an_ensemble_updates_one_point_at_a_time() -> None:
    y = series()
    combined = ensemble.MedianEnsemble([member("ets", y), member("stl", y)])

    with pytest.raises(ValueError, match="one point at a time"):
        combined.update(np.array([1.0, 2.0]))


def test_auto_adds_the_ensemble_only_when_asked_and_frees_the_replays() -> None:
    y = series()
    with_median = models.create("auto", max_horizon_steps=HORIZON, candidates=("seasonal_naive", "ets", "median"))
    without = models.create("auto", max_horizon_steps=HORIZON, candidates=("seasonal_naive", "ets"))

    with_median.fit(y, step_seconds=STEP)
    without.fit(y, step_seconds=STEP)

    assert isinstance(with_median.models_["median"], ensemble.MedianEnsemble)
    assert [m.name for m in with_median.models_["median"].members] == ["seasonal_naive", "ets"]
    assert all(getattr(m, "replay_", None) is None for m in with_median.models_.values())
    assert "median" not in without.models_
    assert "median" in models.auto.CANDIDATES  # the registry default combines


def test_auto_updates_the_ensemble_point_by_point_even_in_a_batch() -> None:
    y = series(760)

    def run(batch: bool) -> models.Forecast:
        model = models.create("auto", max_horizon_steps=HORIZON, candidates=("seasonal_naive", "ets", "median"))
        model.fit(y[:700], step_seconds=STEP)
        if batch:
            model.update(y[700:])
        else:
            for value in y[700:]:
                model.update(value)
        return model.models_["median"].predict(HORIZON)

    batched, single = run(True), run(False)

    np.testing.assert_array_equal(batched.mean, single.mean)
    for level in single.quantiles:
        np.testing.assert_array_equal(batched.quantiles[level], single.quantiles[level])
    assert batched.start == 760 * STEP
