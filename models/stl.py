"""Seasonal decomposition (STL / MSTL from statsmodels) plus exponential smoothing of the rest.

The series is split into one or two seasonal profiles (daily and weekly, say) and a deseasonalised
remainder; the forecast is the smoothed level of the remainder plus the profiles at the future phases.
Design choices:

* **Aggregate before decomposing.** STL's loess smoothers cost O(n x window); on 14 days of a 1-minute
  series with a 1,440-step season that is seconds. The series is averaged into blocks so that the
  shortest season has about ``points_per_season`` blocks (48: half-hour resolution for a day), the
  decomposition runs on those few hundred points, and the seasonal profiles are interpolated back to
  the native step. Short-horizon accuracy comes from the level, which is tracked at the native step.
* **Profiles are frozen between refits.** Only the level moves on ``update``, so an update costs one
  multiply-add per point.
* **Simple level model.** Simple exponential smoothing with alpha chosen by one-step absolute error on
  a grid (fast with ``scipy.signal.lfilter``), robust to the spikes that squared error chases.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from models import register
from models.base import lfilter
from models.core import FallbackNeeded, HistoryForecaster, quiet_warnings
from models.seasonality import detect_periods

_ALPHAS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0)


def smooth_level(values: np.ndarray, alpha: float, initial: float) -> np.ndarray:
    """Simple exponential smoothing: the level after each value, starting from ``initial``."""
    out, _ = lfilter([alpha], [1.0, alpha - 1.0], values, zi=np.array([(1.0 - alpha) * initial]))
    return out


def choose_alpha(values: np.ndarray) -> float:
    """Smoothing constant with the lowest one-step mean absolute error on ``values``."""
    best, best_err = 1.0, np.inf
    for alpha in _ALPHAS:
        level = smooth_level(values, alpha, float(values[0]))
        err = float(np.mean(np.abs(values[1:] - level[:-1])))
        if err < best_err:
            best, best_err = alpha, err
    return best


@register("stl")
class SeasonalDecomposition(HistoryForecaster):
    """STL (one season) or MSTL (two) profiles plus a smoothed level of the deseasonalised series."""

    name: ClassVar[str] = "stl"
    min_points: ClassVar[int] = 32

    def __init__(
        self,
        *,
        periods_steps: tuple[int, ...] | None = None,
        points_per_season: int = 48,
        robust: bool = True,
        **kwargs: object,
    ) -> None:
        """Args:
        periods_steps: Season lengths in steps; ``None`` detects up to two.
        points_per_season: Target number of aggregated points in the shortest season.
        robust: Use STL's robust (outlier down-weighting) iterations.
        **kwargs: Shared settings of ``HistoryForecaster``.
        """
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.periods_steps = periods_steps
        self.points_per_season = int(points_per_season)
        self.robust = robust

    def _fit_point(self, y: np.ndarray) -> None:
        from statsmodels.tsa.seasonal import MSTL, STL

        periods = tuple(self.periods_steps) if self.periods_steps else detect_periods(y, max_periods=2)
        if not periods:
            raise FallbackNeeded("no seasonal period detected")
        # Average into blocks of `block` steps, aligned so that the last block ends at the last point.
        block = max(1, periods[0] // self.points_per_season)
        blocks = y.size // block
        offset = y.size - blocks * block
        coarse = y[offset:].reshape(blocks, block).mean(axis=1)
        coarse_periods = [int(round(p / block)) for p in periods]
        coarse_periods = sorted({p for p in coarse_periods if p >= 2 and blocks >= 2 * p})
        if not coarse_periods:
            raise FallbackNeeded(f"history shorter than two seasons of {periods[0]} steps")
        with quiet_warnings():
            if len(coarse_periods) == 1:
                result = STL(coarse, period=coarse_periods[0], robust=self.robust).fit()
                seasonals = [np.asarray(result.seasonal)]
            else:
                result = MSTL(coarse, periods=coarse_periods, stl_kwargs={"robust": self.robust}).fit()
                seasonals = [np.asarray(result.seasonal)[:, j] for j in range(len(coarse_periods))]
        # Native profiles: the last cycle of each seasonal component, indexed by native phase, where
        # phase 0 is the first native point of block 0 (index `offset` of y).
        # Each profile is laid onto the season's own length in native steps, not on a whole number
        # of blocks: a 97-step season fitted as 48 blocks of 2 would otherwise repeat every 96 steps
        # and slip one step per cycle (the coarse fit stretched by 97/96 instead).
        self.profiles_ = []
        natives = []
        for coarse_period, seasonal in zip(coarse_periods, seasonals, strict=True):
            native = min(periods, key=lambda p: abs(p / block - coarse_period))
            # The last cycle's blocks, each at its centre's phase in the native season.
            last = np.arange(blocks - min(coarse_period, native // block), blocks)
            phase = (last * block + (block - 1) / 2.0) % native
            order = np.argsort(phase)
            self.profiles_.append(np.interp(np.arange(native), phase[order], seasonal[last][order], period=native))
            natives.append(native)
        self.anchor_ = offset
        self.periods_ = tuple(natives)
        index = np.arange(y.size)
        rest = y - self._season_at(index)
        self.alpha_ = choose_alpha(rest[-min(rest.size, 4 * max(self.periods_)) :])
        self.level_ = float(smooth_level(rest, self.alpha_, float(rest[0]))[-1])
        self.next_index_ = y.size

    def _season_at(self, index: np.ndarray) -> np.ndarray:
        total = np.zeros(np.shape(index))
        for profile in self.profiles_:
            total = total + profile[(index - self.anchor_) % profile.size]
        return total

    def _advance(self, values: np.ndarray, horizon: int) -> np.ndarray:
        index = self.next_index_ + np.arange(values.size)
        levels = smooth_level(values - self._season_at(index), self.alpha_, self.level_)
        self.level_ = float(levels[-1])
        self.next_index_ += values.size
        future = index[:, None] + 1 + np.arange(horizon)[None, :]
        return levels[:, None] + self._season_at(future)

    def _path(self, horizon: int) -> np.ndarray:
        return self.level_ + self._season_at(self.next_index_ + np.arange(horizon))
