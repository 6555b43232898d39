"""Holt-Winters exponential smoothing (additive, damped trend) with parameters fitted by statsmodels.

The Predictive HPA fits Holt-Winters with smoothing parameters the user sets by hand; here statsmodels
estimates alpha, beta, gamma and phi from the data. Design choices:

* **Bounded fit window.** The likelihood is optimised on the last ``fit_window_points`` points only
  (at least three seasons when there is a season), so a fit costs about the same on 14 days of a
  1-minute series as on 14 days of a 5-minute one.
* **Own recursion after the fit.** statsmodels is used to estimate parameters and the final states;
  updates and forecasts then run the same additive recursion in numpy, so ``update`` is O(1) per point
  and ``predict`` costs microseconds instead of a statsmodels ``forecast`` call.
* **A level that always moves.** On a history with nothing to learn the smoothing level from (a
  workload flat for hours, after a little noise) the likelihood is best at ``alpha`` = 0, and the
  model would then forecast the old level until the next refit, however the load moved: at the
  policy's 15 s step, a day of a stale forecast. ``alpha`` is kept at or above
  ``MIN_SMOOTHING_LEVEL`` (0.01: 90% of a lasting shift absorbed within 230 steps, about an hour at
  15 s); a fit below it is redone with ``alpha`` fixed there. The floor is in steps, not seconds:
  on an hourly seasonal series ``alpha`` near 0 is the right fit (the season carries the
  pattern), and an hour's floor there would be 0.9, where 0.01 moves the level over about ten days.
  On the bundled traces at 15 s the fitted ``alpha`` is 0.8 to 1, so none is refitted.
* **Short seasons only.** A season longer than ``max_season_steps`` (a daily cycle of a 1-minute
  series has 1,440 states, each updated once a day from one noisy point) is left out and the model is
  a damped Holt model on that series; ``models.stl`` handles long seasons through aggregation.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from models import register
from models.core import FallbackNeeded, HistoryForecaster, quiet_warnings
from models.seasonality import detect_periods


#: The smallest smoothing level: a lasting shift is 90% absorbed within 230 steps (``0.99 ** 230``).
MIN_SMOOTHING_LEVEL = 0.01


@register("ets")
class HoltWinters(HistoryForecaster):
    """Additive damped-trend Holt-Winters, seasonal when a short enough period is detected."""

    name: ClassVar[str] = "ets"
    min_points: ClassVar[int] = 32

    def __init__(
        self,
        *,
        period_steps: int | None = None,
        max_season_steps: int = 288,
        fit_window_points: int = 2016,
        **kwargs: object,
    ) -> None:
        """Args:
        period_steps: Season length in steps; ``None`` detects it; ``0`` means no season.
        max_season_steps: Longer detected seasons are left out (see the module docstring).
        fit_window_points: Points used for the likelihood (raised to three seasons when seasonal).
        **kwargs: Shared settings of ``HistoryForecaster``.
        """
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.period_steps = period_steps
        self.max_season_steps = int(max_season_steps)
        self.fit_window_points = int(fit_window_points)

    def _fit_point(self, y: np.ndarray) -> None:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        if self.period_steps is not None:
            period = int(self.period_steps)
        else:
            found = detect_periods(y, longest=self.max_season_steps)
            period = found[0] if found else 0
        window = self.fit_window_points
        if period:
            window = max(window, 3 * period)
            if y.size < 2 * period + 10:
                period = 0
        recent = y[-window:]
        if recent.size < 10:
            raise FallbackNeeded(f"history too short for Holt-Winters ({recent.size} points)")
        with quiet_warnings():
            model = ExponentialSmoothing(
                recent,
                trend="add",
                damped_trend=True,
                seasonal="add" if period else None,
                seasonal_periods=period or None,
                initialization_method="heuristic" if period else "estimated",
            )
            result = model.fit(use_brute=False)
            if not float(result.params["smoothing_level"]) >= MIN_SMOOTHING_LEVEL:
                # a level that never moves: keep one that follows a lasting shift (see the module docstring)
                result = model.fit(smoothing_level=MIN_SMOOTHING_LEVEL, use_brute=False)
        params = result.params
        self.alpha_ = float(params["smoothing_level"])
        self.beta_ = float(params["smoothing_trend"])
        self.gamma_ = float(params["smoothing_seasonal"]) if period else 0.0
        self.phi_ = float(params["damping_trend"])
        values = (self.alpha_, self.beta_, self.gamma_, self.phi_)
        if not all(np.isfinite(v) for v in values):
            raise FallbackNeeded(f"Holt-Winters estimated non-finite parameters {values}")
        self.period_ = period
        self.level_ = float(result.level[-1])
        self.trend_ = float(result.trend[-1])
        # season_[pos_] is the seasonal state of the next point (one season ago).
        self.season_ = np.array(result.season[-period:], dtype=float) if period else np.zeros(1)
        self.pos_ = 0
        self._damping = np.cumsum(self.phi_ ** np.arange(1, self.max_horizon_steps + 1))

    def _damped(self, horizon: int) -> np.ndarray:
        if horizon > self._damping.size:
            self._damping = np.cumsum(self.phi_ ** np.arange(1, horizon + 1))
        return self._damping[:horizon]

    def _seasonal(self, horizon: int) -> np.ndarray:
        if not self.period_:
            return np.zeros(horizon)
        return self.season_[(self.pos_ + np.arange(horizon)) % self.period_]

    def _advance(self, values: np.ndarray, horizon: int) -> np.ndarray:
        alpha, beta, gamma, phi = self.alpha_, self.beta_, self.gamma_, self.phi_
        level, trend, m, pos, season = self.level_, self.trend_, self.period_, self.pos_, self.season_
        damped = self._damped(horizon)
        steps = np.arange(horizon)
        out = np.empty((values.size, horizon))
        for i, value in enumerate(values.tolist()):
            old = season[pos] if m else 0.0
            expected = level + phi * trend
            new_level = alpha * (value - old) + (1.0 - alpha) * expected
            trend = beta * (new_level - level) + (1.0 - beta) * phi * trend
            level = new_level
            if m:
                season[pos] = gamma * (value - expected) + (1.0 - gamma) * old
                pos = (pos + 1) % m
                out[i] = level + damped * trend + season[(pos + steps) % m]
            else:
                out[i] = level + damped * trend
        self.level_, self.trend_, self.pos_ = level, trend, pos
        return out

    def _path(self, horizon: int) -> np.ndarray:
        return self.level_ + self._damped(horizon) * self.trend_ + self._seasonal(horizon)
