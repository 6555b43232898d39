"""The calibration layer's helpers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import calibration


def test_the_fast_column_quantiles_equal_numpys_nanquantile():
    rng = np.random.default_rng(3)
    for _ in range(50):
        z = rng.normal(size=(int(rng.integers(10, 400)), 7))
        z[rng.random(z.shape) < rng.uniform(0, 0.6)] = np.nan
        counts = np.isfinite(z).sum(axis=0)
        keep = counts >= 1
        expected = np.nanquantile(z[:, keep], calibration._GRID, axis=0)
        ordered = np.sort(z[:, keep], axis=0)
        np.testing.assert_allclose(calibration._column_quantiles(ordered, counts[keep]), expected, rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    window=st.integers(1, 60),
    refresh_every=st.integers(1, 30),
    decimals=st.sampled_from([0, 1, 6]),
)
def test_each_refresh_of_the_empirical_table_holds_the_quantiles_of_the_window(seed, window, refresh_every, decimals):
    """At every refresh the empirical table is the error quantiles (numpy's ``nanquantile``) of
    the errors the window holds then, each horizon's sorted by level; ties (rounded loads),
    missing values and still outcomes included."""
    rng = np.random.default_rng(seed)
    hc = 4
    cal = calibration.Calibrator(horizon_steps=hc, mode="empirical", window=window, refresh_every=refresh_every)
    y = np.round(np.cumsum(rng.normal(size=400)) + 50.0, decimals)
    w = 30
    cal.initialise(y[:w], np.round(y[: w + 1, None] + rng.normal(size=(w + 1, hc)), decimals), np.ones(w + 1))
    refreshes = 0
    for k in range(300):
        still = 100 <= k < 100 + window + refresh_every + 3  # a flat stretch: every path exact
        value = y[w] if still else (np.nan if k % 37 == 5 else y[w + k])
        path = np.full(hc, y[w]) if still else np.round(y[w + k] + rng.normal(size=hc), decimals)
        before = cal.errors_.copy()
        cal.observe(value, path, 1.0)
        if cal.since_refresh_ == 0 and not np.array_equal(before, cal.errors_, equal_nan=True):
            refreshes += 1
            enough = np.isfinite(cal.errors_).sum(axis=0) >= 10
            if not enough.any():
                continue
            expected = np.sort(np.nanquantile(cal.errors_[:, enough], calibration._GRID, axis=0).T, axis=1)
            np.testing.assert_allclose(cal.table_[enough], expected, rtol=0, atol=1e-9)
    assert refreshes > 0


def _run_calibrator(mode: str, *, read_every_step: bool, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Feed one calibrator a random walk with a few broken paths (infinite, zero scale, missing
    values); return its scores and table at a few points, reading the scores at every step or
    only at those points."""
    rng = np.random.default_rng(seed)
    hc = 9
    cal = calibration.Calibrator(horizon_steps=hc, mode=mode, window=40, refresh_every=7)
    y = np.cumsum(rng.normal(size=900)) + 50.0
    w = 120
    cal.initialise(y[:w], y[: w + 1, None] + rng.normal(size=(w + 1, hc)), np.abs(rng.normal(size=w + 1)) + 0.1)
    seen = []
    for k in range(600):
        value = np.nan if k % 53 == 11 else y[w + k]
        path = y[w + k] + rng.normal(size=hc)
        if k in (460, 523):  # late: an infinite loss stays in the mean until the next refit
            path[3] = np.inf
        scale = 0.0 if k % 131 == 7 else float(abs(rng.normal()) + 0.1)
        cal.observe(value, path, scale)
        if read_every_step or k % 150 == 149:
            snapshot = (cal.score_.copy(), cal.abs_error_.copy(), cal.table_.copy())
            if k % 150 == 149:
                seen.append(snapshot)
    return seen


@pytest.mark.parametrize("mode", calibration.MODES)
def test_scores_folded_in_batches_equal_scores_folded_at_every_observation(mode: str):
    # ``observe`` leaves the usual step's scores to a batch (``_fold_unscored``); reading the
    # scores folds at once. Read at every step or seldom, the figures must be the same: to the bit
    # on x86-64 (scipy's lfilter does the same products and sums in the same order); a build that
    # fuses multiply-adds (aarch64) may round the last bit differently, hence the 1e-13.
    with np.errstate(all="ignore"):
        every = _run_calibrator(mode, read_every_step=True, seed=4)
        seldom = _run_calibrator(mode, read_every_step=False, seed=4)
    assert len(every) == len(seldom) == 4
    for (s1, a1, t1), (s2, a2, t2) in zip(every, seldom, strict=True):
        np.testing.assert_allclose(s2, s1, rtol=1e-13, atol=0)
        np.testing.assert_allclose(a2, a1, rtol=1e-13, atol=0)
        assert np.array_equal(t1, t2, equal_nan=True)  # the learning itself is never deferred
    assert np.isfinite(seldom[0][0]).sum() >= 7  # scored (a zero scale can leave a horizon at NaN for a while)


def test_adaptive_tracking_moves_each_error_quantile_by_its_step_towards_the_outcome():
    # Quantile tracking (online pinball-loss descent): at each horizon, every level's error
    # quantile moves up by step * level when the outcome's error lies above it and down by
    # step * (1 - level) when at or below it.
    hc = 4
    rng = np.random.default_rng(11)
    cal = calibration.Calibrator(horizon_steps=hc, mode="adaptive", window=50, learning_rate=0.05)
    y = rng.normal(size=80).cumsum()
    cal.initialise(y[:60], y[:61, None] + rng.normal(size=(61, hc)), np.full(61, 2.0))
    for k in range(60, 75):
        targets = cal.origins_ - 1 - np.arange(hc)  # origin o predicts point o at horizon 1
        preds = cal.pending_paths_[targets % hc, np.arange(hc)]
        scales = cal.pending_scales_[targets % hc]
        before = cal.table_.copy()
        cal.observe(y[k], y[k] + rng.normal(size=hc), 2.0)
        z = (y[k] - preds) / scales
        grid = np.array(calibration.GRID)
        expected = before + cal.step_ * np.where(z[:, None] <= before, grid - 1.0, grid)
        np.testing.assert_allclose(cal.table_, expected, rtol=0, atol=1e-12)
        assert not np.array_equal(cal.table_, before)


def test_the_batched_fold_keeps_the_exponentially_weighted_mean():
    # The recent score is an exponentially weighted mean of the per-step losses with rate 1/window:
    # after a constant error it converges to that error's pinball loss.
    hc = 3
    cal = calibration.Calibrator(horizon_steps=hc, mode="empirical", window=20, refresh_every=1000)
    cal.initialise(np.zeros(50), np.zeros((51, hc)), np.ones(51))
    for _ in range(2000):
        cal.observe(1.0, np.zeros(hc), 1.0)
    # Every prediction is 0 and every outcome 1: the absolute error is 1 at every horizon.
    np.testing.assert_allclose(cal.abs_error_, 1.0, rtol=1e-12)


@pytest.mark.parametrize("name, options", [("naive", {"calibration": "adaptive"}), ("ets", {})])
def test_adaptive_intervals_come_back_to_life_after_a_flat_replay(name, options):
    # The replay (the last day of history) saw no error on a flat load; then traffic returns.
    import models

    rng = np.random.default_rng(0)
    busy = 50 + 20 * np.sin(2 * np.pi * np.arange(3000) / 1440) + rng.normal(0, 3, 3000)
    history = np.concatenate([busy, np.full(1600, 2.0)])
    model = models.create(name, max_horizon_steps=8, **options).fit(history, step_seconds=60.0)
    inside = []
    for value in 40 + rng.normal(0, 8, 600):
        f = model.predict(1)
        inside.append(f.quantiles[0.025][0] <= value <= f.quantiles[0.975][0])
        model.update(value)
    assert np.mean(inside) >= 0.8  # was 0: a zero-width interval that never widened again


def test_fits_in_several_threads_leave_the_warning_filters_as_they_were():
    # catch_warnings swaps one process-wide list: unguarded, concurrent fits could leave "ignore" behind
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    import models

    rng = np.random.default_rng(0)
    y = 50 + 20 * np.sin(2 * np.pi * np.arange(600) / 48) + rng.normal(0, 2, 600)
    with warnings.catch_warnings():
        warnings.resetwarnings()
        before = list(warnings.filters)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: models.create("ets", max_horizon_steps=8).fit(y, step_seconds=60.0), range(24)))
        assert list(warnings.filters) == before


def test_a_ratio_of_nothing_scored_is_nan_not_infinite():
    import math

    from models import evaluate

    assert math.isnan(evaluate._ratio(math.nan, math.nan)) and math.isnan(evaluate._ratio(1.0, math.nan))
    assert evaluate._ratio(0.0, 0.0) == 1.0 and evaluate._ratio(1.0, 0.0) == math.inf and evaluate._ratio(1.0, 2.0) == 0.5


def _interval_width(model, level: float = 0.975) -> float:
    f = model.predict(1, (1 - level, 0.5, level))
    return float(f.quantiles[level][0] - f.quantiles[1 - level][0])


@pytest.mark.parametrize("flat_points", [300, 1600])
def test_empirical_intervals_are_back_at_the_first_move_after_a_flat_stretch(flat_points):
    # A busy load, then a flat stretch (an idle night: 300 points, or more than the day the
    # replay calibrates on: 1600), then traffic returns. The outcomes of the flat stretch say
    # nothing about the errors once the load moves: the table must not be made of their zeros.
    import models

    rng = np.random.default_rng(0)
    busy = 50 + 20 * np.sin(2 * np.pi * np.arange(3000) / 1440) + rng.normal(0, 3, 3000)
    history = np.concatenate([busy, np.full(flat_points, 2.0)])
    model = models.create("naive", max_horizon_steps=8).fit(history, step_seconds=60.0)
    for _ in range(120):  # still flat: an hour and more without a move has no width
        model.update(2.0)
    assert _interval_width(model) == 0.0
    inside, widths = [], []
    for value in 50 + rng.normal(0, 3, 60):  # the busy load's level and noise again
        f = model.predict(1)
        inside.append(f.quantiles[0.025][0] <= value <= f.quantiles[0.975][0])
        model.update(value)
        widths.append(_interval_width(model))
    assert min(widths) > 5.0  # from the first move on (the old window of zeros kept 0 for hours)
    assert np.mean(inside) >= 0.8


def test_a_replay_ending_flat_leaves_its_still_outcomes_out_and_counts_them():
    hc = 4
    cal = calibration.Calibrator(horizon_steps=hc, mode="empirical", window=100, refresh_every=5)
    rng = np.random.default_rng(1)
    moving = rng.normal(0, 1, 40)
    targets = np.concatenate([moving, np.zeros(12)])
    # naive paths: each origin repeats the last value (the first origin predicts 0)
    last = np.concatenate([[0.0], targets])
    paths = np.repeat(last[:, None], hc, axis=1)
    cal.initialise(targets, paths, np.ones(targets.size + 1))
    stored = np.isfinite(cal.errors_).any(axis=1).sum()
    # origins 41..51 predicted the flat end exactly at every horizon scored; origin 40 (after the
    # last moving value) did not; origin 52's targets are not observed yet
    assert cal.still_run_ == 11
    assert stored == 41
    assert not cal.table(hc).any()  # still for longer than refresh_every: no width
    cal.observe(3.0, np.full(hc, 3.0), 1.0)  # the load moves
    assert cal.still_run_ == 0 and (cal.table(hc)[:, -1] > cal.table(hc)[:, 0]).all()
    cal.observe(3.0, np.full(hc, 3.0), 1.0)  # predicted wrongly by the older origins: not still
    assert cal.still_run_ == 0
