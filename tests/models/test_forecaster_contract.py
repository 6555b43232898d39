"""The contract every registered forecaster honours (statsforecast's ``assert_class`` idea).

Each test runs every model in ``models.names()``; series are short and synthetic so the suite is fast.
"""

from __future__ import annotations

import numpy as np
import pytest

import models
from models import base

STEP = 300.0  # seconds
HORIZON = 4
ALL = models.names()


def seasonal_series(n: int = 600, *, seed: int = 1, period: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 50.0 + 20.0 * np.sin(2 * np.pi * t / period) + rng.normal(0.0, 2.0, n)


def fitted(name: str, y: np.ndarray, **kwargs: object) -> base.Forecaster:
    return models.create(name, max_horizon_steps=HORIZON, seed=7, **kwargs).fit(
        y, step_seconds=STEP, start_seconds=1000.0
    )


@pytest.mark.parametrize("name", ALL)
def test_forecast_has_horizon_points_and_quantiles_monotone_in_the_level(name: str) -> None:
    y = seasonal_series()
    forecast = fitted(name, y).predict(HORIZON, (0.025, 0.1, 0.5, 0.9, 0.975))

    assert isinstance(forecast, base.Forecast)
    assert forecast.mean.shape == (HORIZON,)
    assert sorted(forecast.quantiles) == [0.025, 0.1, 0.5, 0.9, 0.975]
    table = np.vstack([forecast.quantiles[q] for q in sorted(forecast.quantiles)])
    assert table.shape == (5, HORIZON)
    assert np.all(np.isfinite(table)) and np.all(np.isfinite(forecast.mean))
    assert np.all(np.diff(table, axis=0) >= 0)
    assert forecast.fallback_reason is None
    # start is one step after the last observation: 1000 + 600 * 300
    assert forecast.start == 1000.0 + 600 * STEP
    assert forecast.step_seconds == STEP


@pytest.mark.parametrize("name", ALL)
def test_a_longer_horizon_than_configured_still_has_that_many_points(name: str) -> None:
    forecast = fitted(name, seasonal_series()).predict(3 * HORIZON)

    assert forecast.mean.shape == (3 * HORIZON,)
    table = np.vstack([forecast.quantiles[q] for q in sorted(forecast.quantiles)])
    assert np.all(np.diff(table, axis=0) >= 0)


@pytest.mark.parametrize("name", ALL)
def test_update_moves_the_forecast_start_by_one_step_per_point(name: str) -> None:
    y = seasonal_series(640)
    model = fitted(name, y[:600])
    model.update(y[600:610])
    model.update(y[610])

    forecast = model.predict(HORIZON)

    assert forecast.start == 1000.0 + 611 * STEP  # 600 fitted + 10 + 1 updated points
    assert np.all(np.isfinite(forecast.mean))


@pytest.mark.parametrize("name", ALL)
def test_fit_update_and_predict_are_deterministic_under_a_seed(name: str) -> None:
    y = seasonal_series(620)

    def run() -> base.Forecast:
        model = fitted(name, y[:600])
        model.update(y[600:])
        return model.predict(HORIZON)

    first, second = run(), run()

    np.testing.assert_array_equal(first.mean, second.mean)
    for q in first.quantiles:
        np.testing.assert_array_equal(first.quantiles[q], second.quantiles[q])


@pytest.mark.parametrize("name", ALL)
def test_changing_data_after_the_cutoff_leaves_the_forecast_unchanged(name: str) -> None:
    y = seasonal_series(700)
    altered = y.copy()
    altered[620:] = 1e6  # the future: a wild level shift the model must not see

    def forecast_at_cutoff(series: np.ndarray) -> base.Forecast:
        model = fitted(name, series[:600])
        model.update(series[600:620])
        return model.predict(HORIZON)

    original = forecast_at_cutoff(y)
    changed = forecast_at_cutoff(altered)

    np.testing.assert_array_equal(original.mean, changed.mean)
    for q in original.quantiles:
        np.testing.assert_array_equal(original.quantiles[q], changed.quantiles[q])


@pytest.mark.parametrize("name", ALL)
def test_fit_does_not_modify_its_input(name: str) -> None:
    y = seasonal_series()
    y[[10, 200, 599]] = np.nan
    before = y.copy()

    fitted(name, y)

    np.testing.assert_array_equal(y, before)


def _degenerate(kind: str) -> np.ndarray:
    rng = np.random.default_rng(3)
    if kind == "short":
        return np.array([3.0, 5.0, 4.0, 6.0, 5.0])
    if kind == "constant":
        return np.full(400, 7.5)
    if kind == "all-zero":
        return np.zeros(400)
    if kind == "all-nan":
        return np.full(400, np.nan)
    if kind == "empty":
        return np.array([])
    if kind == "mostly-nan":
        y = seasonal_series(400)
        y[rng.random(400) < 0.7] = np.nan
        return y
    raise AssertionError(kind)


# expected words in fallback_reason for every model except naive (naive handles these itself)
DEGENERATE = {
    "short": "too short",
    "constant": "constant",
    "all-zero": "constant",
    "all-nan": "no finite observations",
    "empty": "no finite observations",
    "mostly-nan": "missing",
}


@pytest.mark.parametrize("kind", list(DEGENERATE))
@pytest.mark.parametrize("name", ALL)
def test_degenerate_history_falls_back_with_a_clear_reason(name: str, kind: str) -> None:
    y = _degenerate(kind)

    forecast = fitted(name, y).predict(HORIZON)

    assert forecast.mean.shape == (HORIZON,)
    assert np.all(np.isfinite(forecast.mean))
    table = np.vstack([forecast.quantiles[q] for q in sorted(forecast.quantiles)])
    assert np.all(np.diff(table, axis=0) >= 0)
    reason = forecast.fallback_reason
    if name == "naive" and kind not in ("all-nan", "empty"):
        assert reason is None  # naive is the fallback: it forecasts from any finite history
    else:
        assert reason is not None and DEGENERATE[kind] in reason, reason


@pytest.mark.parametrize("name", ALL)
def test_all_zero_history_forecasts_zero(name: str) -> None:
    forecast = fitted(name, np.zeros(400)).predict(HORIZON)

    np.testing.assert_array_equal(forecast.mean, np.zeros(HORIZON))
    for values in forecast.quantiles.values():
        np.testing.assert_array_equal(values, np.zeros(HORIZON))


@pytest.mark.parametrize("name", ALL)
def test_nan_holed_history_is_forecast_without_nan(name: str) -> None:
    y = seasonal_series()
    y[np.random.default_rng(5).random(y.size) < 0.1] = np.nan
    model = fitted(name, y)
    model.update(np.array([np.nan, 51.0, np.nan]))

    forecast = model.predict(HORIZON)

    assert np.all(np.isfinite(forecast.mean))
    assert all(np.all(np.isfinite(v)) for v in forecast.quantiles.values())
    assert forecast.fallback_reason is None or forecast.fallback_reason.strip()


@pytest.mark.parametrize("name", ALL)
def test_predict_before_fit_is_an_error(name: str) -> None:
    with pytest.raises(RuntimeError, match="fit"):
        models.create(name).predict(HORIZON)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(
    ("horizon", "quantiles"),
    [
        pytest.param(0, (0.5,), id="zero-horizon"),
        pytest.param(2, (0.0, 0.5), id="level-zero"),
        pytest.param(2, (0.5, 1.2), id="level-above-one"),
    ],
)
def test_predict_rejects_bad_arguments(name: str, horizon: int, quantiles: tuple[float, ...]) -> None:
    model = fitted(name, seasonal_series())

    with pytest.raises(ValueError):
        model.predict(horizon, quantiles)


def test_every_model_satisfies_the_protocol() -> None:
    for name in ALL:
        assert isinstance(models.create(name), base.Forecaster), name


def test_unknown_model_names_list_the_known_ones() -> None:
    with pytest.raises(KeyError, match="naive"):
        models.create("prophet")


def test_index_at_picks_the_first_point_at_or_after_a_time_and_clamps_to_the_horizon() -> None:
    f = base.Forecast(start=100.0, step_seconds=15.0, mean=np.arange(4.0), quantiles={0.5: np.arange(4.0)})
    # points at 100, 115, 130, 145
    assert [f.index_at(t) for t in (100.0, 100.5, 115.0, 129.0, 145.0)] == [0, 1, 1, 2, 3]
    assert f.index_at(-1e9) == 0  # before the first point: the first point
    assert f.index_at(1e9) == 3  # past the horizon: the last point
    # a time a rounding error past a point still maps to that point
    assert f.index_at(115.0 + 1e-12) == 1


def test_peak_is_the_largest_value_of_the_quantile_path_over_an_index_range() -> None:
    rng = np.random.default_rng(7)
    levels = (0.1, 0.5, 0.85, 0.975)
    values = rng.normal(size=(len(levels), 12)).cumsum(axis=1)
    f = base.make_forecast(start=0.0, step_seconds=15.0, mean=values[1], levels=levels, values=values)
    for level in (*levels, 0.7, 0.6, 0.99):  # stored levels, interpolated ones, one past the grid
        path = f.quantile(level)
        for first, last in ((0, 11), (3, 7), (5, 5), (9, 11)):
            assert f.peak(level, first, last) == float(path[first : last + 1].max())
    # A forecast built by the constructor answers the same.
    g = base.Forecast(start=0.0, step_seconds=15.0, mean=f.mean, quantiles=dict(f.quantiles))
    assert g.peak(0.85, 2, 9) == f.peak(0.85, 2, 9) == float(np.sort(values, axis=0)[2, 2:10].max())


def test_make_forecast_keeps_its_table_read_only_and_apart_from_the_callers_arrays() -> None:
    mean = np.arange(5.0)
    values = np.vstack([mean - 1.0, mean, mean + 1.0])[::-1].copy()  # rows out of order: it sorts them
    f = base.make_forecast(start=0.0, step_seconds=60.0, mean=mean, levels=(0.1, 0.5, 0.9), values=values)
    mean[:] = -7.0
    values[:] = -7.0
    assert f.mean.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert f.quantile(0.1).tolist() == (np.arange(5.0) - 1.0).tolist()
    assert f.quantile(0.9).tolist() == (np.arange(5.0) + 1.0).tolist()
    for array in (f.mean, *f.quantiles.values()):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1.0
    with pytest.raises(ValueError, match=r"quantile 0.1 has shape \(5,\), mean has \(4,\)"):
        base.make_forecast(start=0.0, step_seconds=60.0, mean=np.arange(4.0), levels=(0.1, 0.5, 0.9), values=values)


def test_check_levels_answers_a_repeated_question_as_the_first_time() -> None:
    # The controller asks for the same levels at every tick, and the answer is kept: a kept answer
    # must still be the sorted, de-duplicated floats, and a bad tuple must fail every time.
    for _ in range(2):
        assert base.check_levels((0.9, 0.1, 0.9, np.float64(0.5))) == (0.1, 0.5, 0.9)
        assert all(type(q) is float for q in base.check_levels((np.float64(0.5), 0.1)))
        with pytest.raises(ValueError, match=r"must be in \(0, 1\), got \[1.5\]"):
            base.check_levels((0.5, 1.5))
        assert base.check_levels([0.7, 0.2]) == (0.2, 0.7)
    # levels make_forecast has not seen checked are still checked and sorted by it
    values = np.vstack([np.zeros(3), np.ones(3)])
    f = base.make_forecast(start=0.0, step_seconds=60.0, mean=np.zeros(3), levels=(0.9, 0.1), values=values)
    assert sorted(f.quantiles) == [0.1, 0.9]
    checked = base.check_levels((0.9, 0.1))
    g = base.make_forecast(start=0.0, step_seconds=60.0, mean=np.zeros(3), levels=checked, values=values)
    assert g.quantile(0.1).tolist() == [0.0] * 3 and g.quantile(0.9).tolist() == [1.0] * 3
