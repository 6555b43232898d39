"""Metric arithmetic of ``models.evaluate`` on hand-computed examples, and the backtest's no-look-ahead rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

import models
from models import base, evaluate


@pytest.mark.parametrize(
    ("horizon_seconds", "step_seconds", "expected"),
    [
        pytest.param(210, 60, 4, id="one-minute-rounds-up"),  # 3.5 -> 4
        pytest.param(210, 300, 1, id="five-minute"),  # 0.7 -> 1
        pytest.param(900, 300, 3, id="exact-multiple"),  # 3.0 -> 3
        pytest.param(900, 1800, 1, id="thirty-minute"),
        pytest.param(901, 300, 4, id="just-over"),
    ],
)
def test_horizons_are_rounded_up_to_whole_steps(horizon_seconds: float, step_seconds: float, expected: int) -> None:
    assert evaluate.horizon_steps_for(horizon_seconds, step_seconds) == expected


@pytest.mark.parametrize(
    ("y", "q", "level", "expected"),
    [
        pytest.param(10.0, 8.0, 0.9, 1.8, id="under-predicted-high-quantile"),  # 0.9 * (10 - 8)
        pytest.param(10.0, 12.0, 0.9, 0.2, id="over-predicted-high-quantile"),  # 0.1 * (12 - 10)
        pytest.param(10.0, 12.0, 0.1, 1.8, id="over-predicted-low-quantile"),  # 0.9 * (12 - 10)
        pytest.param(10.0, 10.0, 0.5, 0.0, id="exact"),
    ],
)
def test_pinball_loss(y: float, q: float, level: float, expected: float) -> None:
    assert base.pinball_loss(np.array([y]), np.array([q]), level)[0] == pytest.approx(expected)


def test_mean_pinball_averages_levels_then_points() -> None:
    actual = np.array([10.0, 20.0])
    quantiles = {0.1: np.array([8.0, 22.0]), 0.9: np.array([12.0, 18.0])}
    # level 0.1: (0.1*2 + 0.9*2) / 2 = 1.0 ; level 0.9: (0.1*2 + 0.9*2) / 2 = 1.0
    assert evaluate.mean_pinball(actual, quantiles) == pytest.approx(1.0)


def test_coverage_counts_points_inside_the_closed_interval() -> None:
    actual = np.array([1.0, 2.0, 3.0, 4.0])
    lower = np.array([0.0, 2.0, 3.5, 0.0])
    upper = np.array([2.0, 2.0, 5.0, 3.0])
    # inside: 1 in [0,2], 2 in [2,2]; outside: 3 < 3.5, 4 > 3
    assert evaluate.coverage(actual, lower, upper) == 0.5


def test_daily_coverage_skips_days_with_less_than_half_their_points() -> None:
    times = np.array([0, 21600, 43200, 64800, 86400 + 0, 86400 + 21600, 86400 + 43200, 86400 + 64800, 172800.0])
    actual = np.array([1, 1, 1, 5, 1, 1, 1, 1, 1.0])
    lower, upper = np.zeros(9), np.full(9, 2.0)
    # day 0: 3 of 4 inside; day 1: 4 of 4; day 2: one point of four expected, skipped
    assert evaluate.daily_coverage(actual, lower, upper, times, points_per_day=4) == (0.75, 1.0)


def _backtest(mean: list[float], model: str = "m") -> evaluate.Backtest:
    values = np.array(mean, dtype=float)[:, None]
    return evaluate.Backtest(
        model=model,
        origins=np.arange(1, 1 + len(mean)),
        horizons_steps=(1,),
        mean=values,
        quantiles={q: values + (q - 0.5) for q in evaluate.SCORED_QUANTILES},
        fallback=np.zeros(len(mean), dtype=bool),
        fit_seconds=(0.1,),
        predict_seconds=0.001,
        update_seconds=0.0,
    )


def test_mase_is_the_ratio_of_mean_absolute_errors_on_the_same_targets() -> None:
    y = np.array([0.0, 10.0, 12.0, 11.0, np.nan])
    # origins 1..4 predict y[1..4]; the NaN target is not scored
    model = _backtest([9.0, 12.0, 13.0, 0.0])  # errors 1, 0, 2 -> MAE 1
    naive = _backtest([0.0, 10.0, 12.0, 11.0], "naive")  # errors 10, 2, 1 -> MAE 13/3
    snaive = _backtest([10.0, 12.0, 11.0, 0.0], "seasonal_naive")  # errors 0, 0, 0 -> MAE 0

    (scores,) = evaluate.score(model, y, step_seconds=60.0, naive=naive, seasonal_naive=snaive)

    assert scores.mae == pytest.approx(1.0)
    assert scores.mase_naive == pytest.approx(3.0 / 13.0)
    assert scores.mase_seasonal_naive == math.inf
    assert scores.scored_points == 3


def test_scores_refuse_baselines_on_other_origins() -> None:
    y = np.arange(6.0)
    with pytest.raises(ValueError, match="same origins"):
        evaluate.score(_backtest([1.0, 2.0]), y, step_seconds=60.0, naive=_backtest([1.0]), seasonal_naive=_backtest([1.0]))


def test_backtest_starts_after_the_warm_up_quarter_and_records_every_horizon() -> None:
    y = np.sin(np.arange(200) / 5.0) + 2.0
    result = evaluate.backtest(
        lambda: models.create("naive", max_horizon_steps=3), y, step_seconds=60.0, horizons_steps=(1, 3)
    )

    assert result.origins[0] == 50  # ceil(0.25 * 200)
    assert result.origins[-1] == 199
    # naive at origin o predicts y[o - 1] for every horizon
    np.testing.assert_array_equal(result.mean[:, 0], y[49:199])
    np.testing.assert_array_equal(result.mean[:, 1], y[49:199])


@pytest.mark.parametrize("name", ["naive", "ets", "quantile_gbm", "auto"])
def test_backtest_forecasts_before_a_change_do_not_depend_on_it(name: str) -> None:
    rng = np.random.default_rng(0)
    y = 10.0 + np.sin(2 * np.pi * np.arange(500) / 24) + rng.normal(0.0, 0.2, 500)
    altered = y.copy()
    altered[450:] += 100.0  # the data from point 450 on changes

    def run(series: np.ndarray) -> evaluate.Backtest:
        return evaluate.backtest(
            lambda: models.create(name, max_horizon_steps=2),
            series,
            step_seconds=3600.0,
            horizons_steps=(1, 2),
            first_origin=400,
            refit_every_steps=24,
        )

    original, changed = run(y), run(altered)

    # origins up to 450 have seen at most y[:450]; they must be identical
    before = original.origins <= 450
    np.testing.assert_array_equal(original.mean[before], changed.mean[before])
    for q in original.quantiles:
        np.testing.assert_array_equal(original.quantiles[q][before], changed.quantiles[q][before])
    assert not np.array_equal(original.mean[~before], changed.mean[~before])
