"""Naive and seasonal-naive forecasts: the baselines every other model must beat, and the fallbacks.

Both predict from the last observations only, so they cannot fail on odd data. Their quantiles are, by
default, the empirical quantiles of their own past h-step errors over a rolling window (the
``"empirical"`` calibration of ``models.calibration``), as issue #3 defines the baselines; pass
``calibration="adaptive"`` for the locally scaled variant that ``models.auto`` uses as its reactive
candidate.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from models import register
from models.core import Buffer, FallbackNeeded, HistoryForecaster
from models.seasonality import detect_periods


@register("naive")
class Naive(HistoryForecaster):
    """Tomorrow looks like now: every future point equals the last observation."""

    name: ClassVar[str] = "naive"
    default_calibration: ClassVar[str] = "empirical"
    needs_variation: ClassVar[bool] = False
    min_points: ClassVar[int] = 1

    def _fit_point(self, y: np.ndarray) -> None:
        self.last_ = float(y[-1])

    def _advance(self, values: np.ndarray, horizon: int) -> np.ndarray:
        self.last_ = float(values[-1])
        return np.repeat(values[:, None], horizon, axis=1)

    def _path(self, horizon: int) -> np.ndarray:
        return np.full(horizon, self.last_)


@register("seasonal_naive")
class SeasonalNaive(HistoryForecaster):
    """Every future point equals the point one season earlier; the season is detected from the data.

    Falls back (to naive) when no period is detected, so on an aperiodic series it is naive with a
    ``fallback_reason`` saying so.
    """

    name: ClassVar[str] = "seasonal_naive"
    default_calibration: ClassVar[str] = "empirical"
    min_points: ClassVar[int] = 32

    def __init__(self, *, period_steps: int | None = None, **kwargs: object) -> None:
        """Args:
        period_steps: Season length in steps; ``None`` detects it at every fit.
        **kwargs: Shared settings of ``HistoryForecaster``.
        """
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.period_steps = period_steps

    def _fit_point(self, y: np.ndarray) -> None:
        if self.period_steps is not None:
            period = int(self.period_steps)
        else:
            found = detect_periods(y, max_periods=1)
            if not found:
                raise FallbackNeeded("no seasonal period detected")
            period = found[0]
        if y.size < period + 1:
            raise FallbackNeeded(f"history shorter than one season ({y.size} < {period + 1} points)")
        self.period_ = period
        self.recent_ = Buffer(y, period + 1)

    def _advance(self, values: np.ndarray, horizon: int) -> np.ndarray:
        m = self.period_
        tail = self.recent_.view()[-m:]
        joined = np.concatenate([tail, values])
        ends = tail.size + np.arange(1, values.size + 1)  # points known after each new value
        offsets = (np.arange(horizon) % m) - m
        self.recent_.extend(values)
        return joined[ends[:, None] + offsets[None, :]]

    def _path(self, horizon: int) -> np.ndarray:
        m = self.period_
        recent = self.recent_.view()
        return recent[recent.size - m + (np.arange(horizon) % m)].copy()
