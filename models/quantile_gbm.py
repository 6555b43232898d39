"""Gradient-boosted quantile regression (scikit-learn) on lag, rolling-window and seasonal features.

One ``HistGradientBoostingRegressor`` with quantile loss per level (0.025, 0.1, 0.5, 0.9, 0.975 by
default) learns the future change directly for every horizon at once: the horizon is a feature, and
training rows pair random origins with random horizons in ``1..max_horizon_steps`` (a pooled direct
model). Direct models do not feed their own errors back in as a recursive one does, and pooling keeps
the fit to one estimator per level. The median is the point forecast. The levels are trained
in-sample, so the calibration layer (``models.calibration``) corrects each level by its own
out-of-sample errors (conformalised quantile regression); the trees supply what a symmetric error
band cannot: skew and state-dependent spread, e.g. an on/off VM that is "on" can only stay or drop.

Everything is expressed relative to the last value and in units of the local volatility
(``(y[t+h] - y[t]) / scale[t]``), so one model serves both the quiet night and the busy noon, and a
level shift after the fit does not leave the trees extrapolating.

Features at origin t for horizon h: lags ``y[t-j] - y[t]``, rolling means over 4/16/64 steps minus
``y[t]``, the relative volatility, ``h``, and for each detected season m the value one season before the
target minus ``y[t]``, the seasonal change ``y[t+h-m] - y[t-m]`` (raw and 5-point smoothed), and the
phase of the target on the primary season as sine and cosine. No wall-clock feature is used.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from models import base, register
from models.calibration import GRID, ewma_abs_diff
from models.core import Buffer, FallbackNeeded, HistoryForecaster, quiet_warnings
from models.seasonality import detect_periods

_LAGS = (1, 2, 3, 5, 10, 20)
_WINDOWS = (4, 16, 64)
_SMOOTH = 5


@register("quantile_gbm")
class QuantileGBM(HistoryForecaster):
    """Pooled direct multi-horizon quantile gradient boosting (median), calibrated intervals."""

    name: ClassVar[str] = "quantile_gbm"
    min_points: ClassVar[int] = 160

    def __init__(
        self,
        *,
        periods_steps: tuple[int, ...] | None = None,
        max_rows: int = 8000,
        max_iter: int = 60,
        boosting_rate: float = 0.1,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 40,
        quantile_levels: tuple[float, ...] = (0.025, 0.1, 0.5, 0.9, 0.975),
        tail_max_iter: int = 40,
        **kwargs: object,
    ) -> None:
        """Args:
        periods_steps: Season lengths in steps for the seasonal features; ``None`` detects them.
        max_rows: Training rows (random origin-horizon pairs); bounds the fit time.
        max_iter: Boosting iterations.
        boosting_rate: Learning rate of the boosting.
        max_leaf_nodes: Leaves per tree.
        min_samples_leaf: Minimum rows per leaf (regularises towards smooth, noise-robust medians).
        quantile_levels: Levels with their own boosted model (the median is always one); with more
            than the median, the calibration layer corrects each level's own errors (conformalised
            quantile regression) instead of spreading errors around the median.
        tail_max_iter: Boosting iterations of the non-median levels (they need less detail).
        **kwargs: Shared settings of ``HistoryForecaster``.
        """
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.periods_steps = periods_steps
        self.max_rows = int(max_rows)
        self.max_iter = int(max_iter)
        self.boosting_rate = float(boosting_rate)
        self.max_leaf_nodes = int(max_leaf_nodes)
        self.min_samples_leaf = int(min_samples_leaf)
        self.quantile_levels = tuple(sorted({*quantile_levels, 0.5}))
        self.tail_max_iter = int(tail_max_iter)
        self.provides_quantiles = len(self.quantile_levels) > 1

    # ------------------------------------------------------------------ features

    def _features(self, y: np.ndarray, sig: np.ndarray, t: np.ndarray, h: np.ndarray, first: int) -> np.ndarray:
        """Feature matrix for origins ``t`` (positions in ``y``) and horizons ``h``; ``first`` is y[0]'s index."""
        base = y[t]
        scale = sig[t]
        cols = [(y[t - j] - base) / scale for j in _LAGS]
        csum = np.concatenate([[0.0], np.cumsum(y)])
        for w in _WINDOWS:
            cols.append(((csum[t + 1] - csum[t + 1 - w]) / w - base) / scale)
        mean_long = (csum[t + 1] - csum[t + 1 - _WINDOWS[-1]]) / _WINDOWS[-1]
        cols.append(scale / (np.abs(mean_long) + scale))
        cols.append(h.astype(float))
        for m in self.periods_:
            k = t + ((h - 1) % m) + 1 - m  # one season before the target
            before = t - m  # one season before the origin
            cols.append((y[k] - base) / scale)
            cols.append((y[k] - y[before]) / scale)
            smooth_k = (csum[k + 1] - csum[k + 1 - _SMOOTH]) / _SMOOTH
            smooth_before = (csum[before + 1] - csum[before + 1 - _SMOOTH]) / _SMOOTH
            cols.append((smooth_k - smooth_before) / scale)
        if self.periods_:
            angle = 2.0 * np.pi * ((first + t + h) % self.periods_[0]) / self.periods_[0]
            cols.append(np.sin(angle))
            cols.append(np.cos(angle))
        return np.column_stack(cols)

    def _sigma(self, y: np.ndarray) -> np.ndarray:
        return np.maximum(ewma_abs_diff(y, halflife_steps=self.halflife_steps_), self.sigma_floor_)

    # ------------------------------------------------------------------ hooks

    def _fit_point(self, y: np.ndarray) -> None:
        from sklearn.ensemble import HistGradientBoostingRegressor

        n = y.size
        hc = self.max_horizon_steps
        periods = self.periods_steps if self.periods_steps is not None else detect_periods(y, max_periods=2)
        self.periods_ = tuple(int(p) for p in periods if p + _SMOOTH + hc < n / 3)
        self.lookback_ = max(max(_LAGS), max(_WINDOWS), *(p + _SMOOTH for p in self.periods_)) + 1
        if n - hc - self.lookback_ < 100:
            raise FallbackNeeded(f"history too short for the boosted model ({n} points)")
        typical = float(np.mean(np.abs(np.diff(y))))
        self.sigma_floor_ = max(0.05 * typical, 1e-6 * (float(np.mean(np.abs(y))) + 1.0))
        sig = self._sigma(y)

        # Random (origin, horizon) pairs: every horizon is learnt by the same trees.
        rng = np.random.default_rng(self.seed)
        rows = min(self.max_rows, (n - 1 - self.lookback_) * hc)
        t = rng.integers(self.lookback_, n - 1, size=rows)
        h = 1 + rng.integers(0, hc, size=rows) % (n - 1 - t)
        target = (y[t + h] - y[t]) / sig[t]
        features = self._features(y, sig, t, h, 0)
        self.models_ = []
        for level in self.quantile_levels:
            model = HistGradientBoostingRegressor(
                loss="quantile",
                quantile=level,
                max_iter=self.max_iter if level == 0.5 else self.tail_max_iter,
                learning_rate=self.boosting_rate,
                max_leaf_nodes=self.max_leaf_nodes,
                min_samples_leaf=self.min_samples_leaf,
                l2_regularization=1.0,
                early_stopping=False,
                random_state=self.seed,
            )
            with quiet_warnings():
                self.models_.append(model.fit(features, target))
        self.median_index_ = self.quantile_levels.index(0.5)
        self.values_ = Buffer(y, self.lookback_ + 1)
        self.sigmas_ = Buffer(sig, self.lookback_ + 1)
        self.next_index_ = n

    def _advance(self, values: np.ndarray, horizon: int) -> np.ndarray:
        old_values, old_sig = self.values_.view(), self.sigmas_.view()
        rate = 1.0 - 0.5 ** (1.0 / self.halflife_steps_)
        sig = np.empty(values.size)
        prev_value, prev_sig = old_values[-1], old_sig[-1]
        for i, value in enumerate(values.tolist()):
            prev_sig = max((1.0 - rate) * prev_sig + rate * abs(value - prev_value), self.sigma_floor_)
            prev_value = value
            sig[i] = prev_sig
        y = np.concatenate([old_values, values])
        s = np.concatenate([old_sig, sig])
        first = self.next_index_ - old_values.size
        origins = old_values.size + np.arange(values.size)
        out = self._paths(y, s, origins, horizon, first)
        self.values_.extend(values)
        self.sigmas_.extend(sig)
        self.next_index_ += values.size
        return out

    def _path(self, horizon: int) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        y, s = self.values_.view(), self.sigmas_.view()
        out = self._paths(y, s, np.array([y.size - 1]), horizon, self.next_index_ - y.size)
        return (out[0][0], out[1][0]) if self.provides_quantiles else out[0]

    def _paths(
        self, y: np.ndarray, s: np.ndarray, origins: np.ndarray, horizon: int, first: int
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Median paths ``(k, horizon)`` and, with several levels, quantiles ``(k, horizon, len(GRID))``."""
        t = np.repeat(origins, horizon)
        h = np.tile(np.arange(1, horizon + 1), origins.size)
        # Beyond the trained horizons the model is asked for the last trained one (flat extension).
        h_model = np.minimum(h, self.max_horizon_steps)
        features = self._features(y, s, t, h_model, first)
        z = np.vstack([model.predict(features) for model in self.models_])
        level, scale = y[t], s[t]
        median = (level + scale * z[self.median_index_]).reshape(origins.size, horizon)
        if not self.provides_quantiles:
            return median
        # Quantiles crossing between separately trained levels are sorted, then spread onto the grid
        # (levels beyond the trained ones start at the outermost trained level; calibration widens them).
        grid = base.interpolate_levels(np.array(self.quantile_levels), np.sort(z, axis=0), np.array(GRID))
        quantiles = (level[None, :] + scale[None, :] * grid).T.reshape(origins.size, horizon, len(GRID))
        return median, quantiles
