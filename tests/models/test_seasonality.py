"""Period detection on synthetic series with known periods, and on series without any."""

from __future__ import annotations

import numpy as np
import pytest

from models.seasonality import autocorrelation, detect_periods


def sine(n: int, period: float, *, noise: float = 0.3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sin(2 * np.pi * np.arange(n) / period) + rng.normal(0.0, noise, n)


@pytest.mark.parametrize(
    ("y", "expected"),
    [
        pytest.param(sine(2000, 24), (24,), id="hourly-points-daily-cycle"),
        pytest.param(sine(3000, 288, noise=0.5), (288,), id="five-minute-points-daily-cycle"),
        pytest.param(sine(600, 12) + 5.0 * np.arange(600) / 600, (12,), id="cycle-on-a-trend"),
        pytest.param(np.tile([0, 0, 0, 0, 0, 10, 0.0], 100) + sine(700, 1e9, noise=0.5), (7,), id="spike-every-7"),
    ],
)
def test_a_single_known_period_is_found(y: np.ndarray, expected: tuple[int, ...]) -> None:
    assert detect_periods(y)[: len(expected)] == expected


def test_a_weekly_cycle_on_top_of_a_daily_one_is_found_as_a_second_period() -> None:
    n = 24 * 7 * 5
    t = np.arange(n)
    weekend = ((t // 24) % 7 >= 5).astype(float)
    y = np.sin(2 * np.pi * t / 24) * (1.0 - 0.6 * weekend) - 1.5 * weekend
    y = y + np.random.default_rng(2).normal(0.0, 0.2, n)

    assert detect_periods(y) == (24, 168)


def test_missing_points_do_not_hide_the_period() -> None:
    y = sine(2000, 24)
    y[np.random.default_rng(1).random(y.size) < 0.2] = np.nan

    assert detect_periods(y)[0] == 24


@pytest.mark.parametrize("seed", range(5))
def test_white_noise_has_no_period(seed: int) -> None:
    assert detect_periods(np.random.default_rng(seed).normal(size=3000)) == ()


@pytest.mark.parametrize("seed", range(3))
def test_a_random_walk_has_no_period(seed: int) -> None:
    assert detect_periods(np.cumsum(np.random.default_rng(seed).normal(size=3000))) == ()


@pytest.mark.parametrize(
    "y",
    [
        pytest.param(np.zeros(500), id="constant"),
        pytest.param(np.full(500, np.nan), id="all-nan"),
        pytest.param(np.arange(5.0), id="too-short"),
    ],
)
def test_degenerate_series_have_no_period(y: np.ndarray) -> None:
    assert detect_periods(y) == ()


def test_a_period_must_fit_three_times() -> None:
    # two and a half cycles of 400 points: too few to call it a season
    assert detect_periods(sine(1000, 400, noise=0.05)) == ()


def test_autocorrelation_matches_the_direct_formula() -> None:
    x = np.random.default_rng(4).normal(size=50)
    acf = autocorrelation(x, 5)
    centred = x - x.mean()
    var = centred @ centred / 50
    direct = [centred[: 50 - k] @ centred[k:] / ((50 - k) * var) for k in range(6)]

    np.testing.assert_allclose(acf, direct, atol=1e-12)


@pytest.mark.parametrize("longest", [10, 24, 100, 167, 168, 1000])
def test_periods_longer_than_wanted_are_left_out_as_if_filtered_afterwards(longest: int) -> None:
    # ``longest`` skips refining a primary period that cannot come within it; what is returned
    # must be exactly what filtering the full answer gives.
    n = 24 * 7 * 5
    t = np.arange(n)
    weekend = ((t // 24) % 7 >= 5).astype(float)
    weekly = np.sin(2 * np.pi * t / 24) * (1.0 - 0.6 * weekend) - 1.5 * weekend + np.random.default_rng(2).normal(0.0, 0.2, n)
    for y in (weekly, sine(3000, 288, noise=0.5), sine(2000, 24), sine(3000, 700, noise=0.2)):
        full = detect_periods(y)
        assert full, "each series has a period"
        assert detect_periods(y, longest=longest) == tuple(p for p in full if p <= longest)


@pytest.mark.parametrize("season", [96, 97, 101])
def test_stl_keeps_a_season_that_is_not_a_whole_number_of_its_blocks(season):
    # STL fits on blocks of two steps here; a 97-step season used to repeat every 96 steps and
    # slip one step per cycle (16-step MAE 11.9 against 0.9 at 96).
    import models

    rng = np.random.default_rng(2)
    n = 14 * season
    t = np.arange(n + 300)
    y = 100 + 40 * np.sin(2 * np.pi * t / season) + rng.normal(0, 1, t.size)
    model = models.create("stl", periods_steps=(season,), max_horizon_steps=16).fit(y[:n], step_seconds=60)
    assert model.periods_ == (season,)
    errors = []
    for i in range(n, n + 285):
        errors.append(abs(model.predict(16).mean[-1] - y[i + 15]))
        model.update(y[i])
    assert np.mean(errors) < 1.5  # the noise alone is about 0.8
