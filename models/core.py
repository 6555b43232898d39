"""The shared machinery of every model: cleaning, bounded history, fallback, calibration and timing.

A concrete model implements three hooks on a clean (gap-filled, finite) series:

* ``_fit_point(y)`` learns parameters and sets the state at the last point of ``y``;
* ``_advance(values, horizon)`` absorbs new points one by one (cheaply, no refit) and returns the point
  path made after each of them, shape ``(len(values), horizon)``;
* ``_path(horizon)`` returns the point path from the current state.

A model that predicts its own quantiles (``provides_quantiles = True``) returns ``(paths, quantiles)``
from both hooks, the quantiles on ``calibration.GRID``; the calibration layer then corrects each level.

``HistoryForecaster.fit`` then does the rest, identically for every model:

1. **Clean.** Leading missing points are dropped; inner ones are carried forward (a scrape gap is not a
   drop to zero) but never scored. Only the last ``history_seconds`` are kept.
2. **Fall back when the history cannot support the model** (no finite value, too short, constant,
   mostly missing) or when the fit raises. The configured fallback (naive or seasonal-naive) is fitted
   instead and every forecast carries ``fallback_reason``.
3. **Fit on all but the last ``calibration_seconds``, then replay them** through ``_advance``. The
   replay gives honest out-of-sample errors for the quantiles (``models.calibration``) and leaves the
   model in exactly the state it would have after a fit followed by cheap updates, which is also how it
   runs between refits. Parameters are therefore at most one calibration window old at a refit.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import ClassVar, Self

import numpy as np

from models import base, calibration

#: ``warnings.catch_warnings`` swaps the process-wide filter list and is not thread-safe: two
#: fits in worker threads at once could leave "ignore everything" installed for good.
_QUIET = threading.RLock()


@contextlib.contextmanager
def quiet_warnings() -> Iterator[None]:
    """Silence the libraries' warnings during a fit (convergence notes and the like), one thread at a time."""
    with _QUIET, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield

DAY_SECONDS = 86400.0


class FallbackNeeded(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a model's ``_fit_point`` when the data does not suit it; the message is the reason."""


class Buffer:
    """The most recent values of a growing series, with amortised O(1) appends: at least the last
    ``capacity`` (all when fewer came), up to ``capacity + spare`` between compactions.

    ``spare`` (default ``capacity``) is the memory traded for fewer compactions: a compaction
    moves the latest values to the front (as many as stay with those being appended), about
    once per ``spare`` appended values.
    """

    def __init__(self, values: np.ndarray, capacity: int, *, spare: int | None = None) -> None:
        self.capacity = max(int(capacity), 1)
        values = np.asarray(values, dtype=float)[-self.capacity :]
        self._data = np.empty(self.capacity + max(int(self.capacity if spare is None else spare), 1))
        self._data[: values.size] = values
        self._len = values.size
        self.total = values.size  # points ever appended (for phase bookkeeping)

    @classmethod
    def lean(cls, values: np.ndarray, capacity: int) -> Buffer:
        """A buffer for a long history read only by its last ``capacity`` values: an eighth spare
        (at least 64) instead of double, one compaction per eighth appended."""
        return cls(values, capacity, spare=max(int(capacity) // 8, 64))

    def extend(self, values: np.ndarray) -> None:
        """Append values, dropping the oldest beyond ``capacity``."""
        values = np.asarray(values, dtype=float).ravel()
        if values.size >= self.capacity:
            self._data[: self.capacity] = values[-self.capacity :]
            self._len = self.capacity
        else:
            self._make_room(values.size)
            self._data[self._len : self._len + values.size] = values
            self._len += values.size
        self.total += values.size

    def append(self, value: float) -> None:
        """Append one value (``extend`` without the array)."""
        self._make_room(1)
        self._data[self._len] = value
        self._len += 1
        self.total += 1

    def _make_room(self, n: int) -> None:
        """Before appending ``n < capacity`` values: when they would not fit, move the latest
        ``capacity - n`` to the front."""
        if self._len + n > self._data.size:
            keep = self.capacity - n
            self._data[:keep] = self._data[self._len - keep : self._len]
            self._len = keep

    def view(self) -> np.ndarray:
        """The stored values, oldest first (a read-only view; copy before keeping it)."""
        out = self._data[: self._len]
        out.flags.writeable = False
        return out

    def __len__(self) -> int:
        return self._len


def fill_forward(y: np.ndarray) -> np.ndarray:
    """Carry the last finite value over NaN; leading NaN take the first finite value."""
    y = np.asarray(y, dtype=float)
    finite = np.isfinite(y)
    if finite.all():
        return y.copy()
    idx = np.where(finite, np.arange(y.size), 0)
    np.maximum.accumulate(idx, out=idx)
    out = y[idx]
    first = int(np.argmax(finite))
    out[:first] = y[first]
    return out


class HistoryForecaster:
    """Base class of the models in this package (see the module docstring for the fit procedure)."""

    name: ClassVar[str] = ""
    #: Default calibration mode of the model.
    default_calibration: ClassVar[str] = "adaptive"
    #: Whether the model can forecast from a constant or very short history itself (naive can).
    needs_variation: ClassVar[bool] = True
    #: Minimum number of points before the model is fitted instead of its fallback.
    min_points: ClassVar[int] = 32
    #: Whether ``_advance``/``_path`` also return the model's own quantiles on ``calibration.GRID``
    #: (shape ``(..., horizon, len(GRID))``) as a second value, to be conformalised level by level.
    provides_quantiles: ClassVar[bool] = False

    def __init__(
        self,
        *,
        max_horizon_steps: int = 16,
        calibration: str | None = None,
        fallback: str = "naive",
        seed: int = 0,
        history_seconds: float = 14 * DAY_SECONDS,
        calibration_seconds: float = DAY_SECONDS,
        min_calibration_points: int = 288,
        scale_halflife_seconds: float = 3600.0,
        learning_rate: float = 0.02,
        keep_replay: bool = False,
    ) -> None:
        """Configure the model (no data is read here).

        Args:
            max_horizon_steps: Horizons up to this many steps get their own error quantiles; keep it
                at the horizon the caller predicts (longer horizons are extrapolated by sqrt(h)).
            calibration: ``"adaptive"`` or ``"empirical"`` (see ``models.calibration``); ``None`` takes
                the model's default.
            fallback: Model that takes over when this one cannot be fitted: ``"naive"`` or
                ``"seasonal_naive"``.
            seed: Seed of every random choice (subsampling), so fits are reproducible.
            history_seconds: Only this much recent history is used (bounds fit cost and memory).
            calibration_seconds: Length of the replay that calibrates the quantiles.
            min_calibration_points: The replay covers at least this many points when history allows
                (a day of a 30-minute series is only 48 points, too few for 2.5% tails).
            scale_halflife_seconds: Half-life of the local volatility that scales errors.
            learning_rate: Quantile tracking step (adaptive calibration).
            keep_replay: Keep the calibration replay (targets, point paths, scales) in ``replay_`` after
                a fit, for a caller that combines models (``models.ensemble``); off by default, since
                it holds a day of paths per model.
        """
        if fallback not in ("naive", "seasonal_naive"):
            raise ValueError(f"fallback must be 'naive' or 'seasonal_naive', got {fallback!r}")
        self.max_horizon_steps = max(int(max_horizon_steps), 1)
        self.calibration = calibration or self.default_calibration
        if self.calibration not in ("adaptive", "empirical"):
            raise ValueError(f"calibration must be 'adaptive' or 'empirical', got {self.calibration!r}")
        self.fallback = fallback
        self.seed = int(seed)
        self.history_seconds = float(history_seconds)
        self.calibration_seconds = float(calibration_seconds)
        self.min_calibration_points = int(min_calibration_points)
        self.scale_halflife_seconds = float(scale_halflife_seconds)
        self.learning_rate = float(learning_rate)
        self.keep_replay = bool(keep_replay)
        self.fitted_ = False

    # ------------------------------------------------------------------ settings shared with helpers

    def settings(self) -> dict[str, object]:
        """Constructor keywords of the shared settings (used to build a matching fallback or candidate)."""
        return {
            "max_horizon_steps": self.max_horizon_steps,
            "calibration": self.calibration,
            "seed": self.seed,
            "history_seconds": self.history_seconds,
            "calibration_seconds": self.calibration_seconds,
            "min_calibration_points": self.min_calibration_points,
            "scale_halflife_seconds": self.scale_halflife_seconds,
            "learning_rate": self.learning_rate,
        }

    # ------------------------------------------------------------------ Forecaster API

    def fit(self, y: np.ndarray, *, step_seconds: float, start_seconds: float = 0.0) -> Self:
        """Fit on ``y`` (see ``models.base.Forecaster.fit``). Never raises for bad data."""
        if not step_seconds > 0:
            raise ValueError(f"step_seconds must be positive, got {step_seconds}")
        y = np.array(y, dtype=float).ravel()
        y[~np.isfinite(y)] = np.nan
        self.step_seconds_ = float(step_seconds)
        self.next_start_ = float(start_seconds) + y.size * self.step_seconds_
        self.fallback_ = None
        self.fallback_reason_ = None
        self.last_value_ = math.nan
        self.replay_ = None
        self.fitted_ = True
        history_steps = max(int(self.history_seconds / self.step_seconds_), 2 * self.max_horizon_steps, 64)
        y = y[-history_steps:]
        finite = np.isfinite(y)
        if finite.any():
            y = y[int(np.argmax(finite)) :]
            finite = finite[int(np.argmax(finite)) :]
            self.last_value_ = float(y[finite][-1])

        self.empty_ = not finite.any()
        if self.empty_:
            # Nothing to learn from, not even for a fallback: predict the last value that update()
            # brings, or 0 (a scaled-to-zero workload), and say so.
            self.fallback_reason_ = "no finite observations; forecasting the last updated value or 0"
            return self
        reason = self._history_problem(y, finite)
        if reason is None:
            try:
                self._fit_and_replay(y)
            except FallbackNeeded as exc:
                reason = str(exc)
            except Exception as exc:  # noqa: BLE001 - any failure of a fit means "use the fallback"
                if self.name == "naive":
                    raise  # the last resort has no fallback: a failure here is a bug
                reason = f"fit failed: {type(exc).__name__}: {exc}"
        if reason is not None:
            self._use_fallback(y, reason)
        return self

    def update(self, new_points: np.ndarray | float) -> Self:
        """Append observations (see ``models.base.Forecaster.update``)."""
        self._check_fitted()
        values = np.array(new_points, dtype=float).ravel()
        if values.size == 1:
            return self._update_one(float(values[0]))
        values[~np.isfinite(values)] = np.nan
        if values.size == 0:
            return self
        self.next_start_ += values.size * self.step_seconds_
        if np.isfinite(values).any():
            self.last_value_ = float(values[np.isfinite(values)][-1])
        if self.fallback_ is not None:
            self.fallback_.update(values)
            return self
        if self.empty_:
            return self
        filled = np.empty_like(values)
        last = self.filled_last_
        for i, v in enumerate(values):
            last = v if np.isfinite(v) else last
            filled[i] = last
        paths, bases = self._split(self._advance(filled, self.max_horizon_steps))
        scale = self.scale_
        for i in range(values.size):
            scale = self._next_scale(scale, filled[i] - (self.filled_last_ if i == 0 else filled[i - 1]))
            self.calibrator_.observe(values[i], paths[i], scale, None if bases is None else bases[i])
        self.scale_ = scale
        self.filled_last_ = float(filled[-1])
        self.path_ = paths[-1].copy()  # a view would keep the whole chunk's paths alive
        self.base_ = None if bases is None else bases[-1].copy()
        return self

    def _update_one(self, value: float) -> Self:
        """``update`` with one point: the same steps without the loops (the controller's usual call)."""
        finite = math.isfinite(value)
        self.next_start_ += self.step_seconds_
        if finite:
            self.last_value_ = value
        else:
            value = math.nan
        if self.fallback_ is not None:
            self.fallback_.update(np.array([value]))
            return self
        if self.empty_:
            return self
        filled = value if finite else self.filled_last_
        paths, bases = self._split(self._advance(np.array([filled]), self.max_horizon_steps))
        scale = self._next_scale(self.scale_, filled - self.filled_last_)
        self.calibrator_.observe(value, paths[0], scale, None if bases is None else bases[0])
        self.scale_ = scale
        self.filled_last_ = filled
        self.path_ = paths[0]
        self.base_ = None if bases is None else bases[0]
        return self

    def predict(self, horizon_steps: int, quantiles: Sequence[float] = base.DEFAULT_QUANTILES) -> base.Forecast:
        """Forecast ``horizon_steps`` points (see ``models.base.Forecaster.predict``)."""
        self._check_fitted()
        return base.make_forecast(**self.predict_parts(base.check_horizon(horizon_steps), base.check_levels(quantiles)))

    def predict_parts(self, horizon_steps: int, levels: tuple[float, ...]) -> dict[str, object]:
        """The keywords of ``base.make_forecast`` for a forecast, its quantile table not yet sorted.

        ``models.auto`` assembles its forecast from these instead of from finished ``Forecast``
        objects: one sort and one ``Forecast`` per tick instead of three (the same values, since
        the assembly takes every level of a horizon from the same candidate).

        Args:
            horizon_steps: Validated horizon (``base.check_horizon``).
            levels: Validated, sorted levels (``base.check_levels``).
        """
        if self.fallback_ is not None:
            inner = self.fallback_.predict_parts(horizon_steps, levels)
            reason = inner["fallback_reason"]
            inner["fallback_reason"] = self.fallback_reason_ if reason is None else f"{self.fallback_reason_}; {reason}"
            return inner
        if self.empty_:
            level = self.last_value_ if math.isfinite(self.last_value_) else 0.0
            path = np.full(horizon_steps, level)
            values = np.tile(path, (len(levels), 1))
            reason = self.fallback_reason_
        else:
            if horizon_steps <= self.path_.size:
                path = self.path_[:horizon_steps]
                own = None if self.base_ is None else self.base_[:horizon_steps]
            else:
                path, own = self._split(self._path(horizon_steps))
            values = self.calibrator_.quantiles(path if own is None else own, self.scale_, levels)
            reason = None
        return {
            "start": self.next_start_,
            "step_seconds": self.step_seconds_,
            "mean": path,
            "levels": levels,
            "values": values,
            "fallback_reason": reason,
            "model": self.name,
        }

    # ------------------------------------------------------------------ recent accuracy (for selection)

    def recent_scores(self) -> np.ndarray:
        """Recent mean pinball loss per horizon ``1..max_horizon_steps`` (raw units; NaN when unknown).

        The loss averages the quantiles ``DEFAULT_QUANTILES`` over the last calibration window of origins.
        A model running on its fallback reports the fallback's scores.
        """
        if self.fallback_ is not None:
            return self.fallback_.recent_scores()
        if self.empty_:
            return np.full(self.max_horizon_steps, np.nan)
        return self.calibrator_.score_.copy()

    def recent_abs_errors(self) -> np.ndarray:
        """Recent mean absolute error of the point path per horizon, over the same origins as ``recent_scores``."""
        if self.fallback_ is not None:
            return self.fallback_.recent_abs_errors()
        if self.empty_:
            return np.full(self.max_horizon_steps, np.nan)
        return self.calibrator_.abs_error_.copy()

    # ------------------------------------------------------------------ hooks for models

    def _fit_point(self, y: np.ndarray) -> None:
        """Learn parameters from the clean series ``y`` and set the state at its last point."""
        raise NotImplementedError

    def _advance(self, values: np.ndarray, horizon: int) -> np.ndarray:
        """Absorb ``values`` (finite) one by one; return the path after each, shape ``(len, horizon)``."""
        raise NotImplementedError

    def _path(self, horizon: int) -> np.ndarray:
        """Point path of ``horizon`` steps from the current state."""
        raise NotImplementedError

    def _history_problem(self, y: np.ndarray, finite: np.ndarray) -> str | None:
        """Why this history cannot support the model, or ``None`` when it can."""
        count = int(finite.sum())
        if not self.needs_variation:
            return None
        if count < 0.5 * y.size:
            return f"history mostly missing ({y.size - count} of {y.size} points)"
        if count < self.min_points:
            return f"history too short ({count} points, {self.name} needs {self.min_points})"
        values = y[finite]
        if values.max() == values.min():
            return f"constant history (every value is {values[0]:g})"
        return None

    # ------------------------------------------------------------------ internals

    def _fit_and_replay(self, y: np.ndarray) -> None:
        filled = fill_forward(y)
        n = filled.size
        self.halflife_steps_ = max(self.scale_halflife_seconds / self.step_seconds_, 8.0)
        scales = self._scales(filled)
        hc = self.max_horizon_steps
        # Replay length: a calibration window, but never more than a third of the history.
        wanted = max(int(self.calibration_seconds / self.step_seconds_), self.min_calibration_points)
        replay = min(wanted, n // 3)
        if n - replay < 1:
            replay = 0
        self._fit_point(filled[: n - replay])
        window = max(wanted, 50)
        self.calibrator_ = calibration.Calibrator(
            horizon_steps=hc,
            mode=self.calibration,
            window=window,
            learning_rate=self.learning_rate,
            refresh_every=max(window // 24, 1),
            default_sd=self._default_sd(filled),
        )
        first, first_base = self._split(self._path(hc))
        if replay:
            later, later_bases = self._split(self._advance(filled[n - replay :], hc))
            paths = np.vstack([first[None, :], later])
            bases = None if first_base is None else np.concatenate([first_base[None], later_bases])
            self.calibrator_.initialise(y[n - replay :], paths, scales[n - replay - 1 :], bases)
        else:
            paths = first[None, :]
            bases = None if first_base is None else first_base[None]
            self.calibrator_.start_without_replay(first, scales[-1], first_base)
        if self.keep_replay:
            # Row j of the paths was made at the origin with scale scales[n - replay - 1 + j] and
            # predicts targets j, j + 1, ... (the layout of ``Calibrator.initialise``).
            self.replay_ = (y[n - replay :].copy(), paths, scales[n - replay - 1 :].copy())
        # Copies: a view would keep the whole replay's paths (a day of them) alive with the model.
        self.path_ = paths[-1].copy()
        self.base_ = None if bases is None else bases[-1].copy()
        self.scale_ = float(scales[-1])
        self.filled_last_ = float(filled[-1])

    def _split(self, result: object) -> tuple[np.ndarray, np.ndarray | None]:
        """Separate a hook's result into paths and, for quantile models, their own quantiles."""
        if self.provides_quantiles:
            paths, bases = result  # type: ignore[misc]
            return paths, bases
        return result, None  # type: ignore[return-value]

    def _scales(self, filled: np.ndarray) -> np.ndarray:
        """Scale at every point: local volatility (adaptive) or 1 (empirical, unscaled errors)."""
        if self.calibration == "empirical":
            self.scale_floor_ = 1.0
            return np.ones(filled.size)
        raw = calibration.ewma_abs_diff(filled, halflife_steps=self.halflife_steps_)
        typical = float(np.mean(np.abs(np.diff(filled)))) if filled.size > 1 else 0.0
        self.scale_floor_ = max(0.05 * typical, 1e-6 * (float(np.mean(np.abs(filled))) + 1.0), 1e-12)
        return np.maximum(raw, self.scale_floor_)

    def _next_scale(self, scale: float, diff: float) -> float:
        if self.calibration == "empirical":
            return 1.0
        rate = 1.0 - 0.5 ** (1.0 / self.halflife_steps_)
        return max((1.0 - rate) * scale + rate * abs(diff), self.scale_floor_)

    def _default_sd(self, filled: np.ndarray) -> float:
        """Spread of one-step errors assumed before any is observed, in the units errors are scaled to."""
        if self.calibration == "adaptive":
            return 1.25  # sd / mean absolute deviation of a normal distribution
        diffs = np.diff(filled)
        return float(np.std(diffs)) if diffs.size >= 2 else 0.0

    def _use_fallback(self, y: np.ndarray, reason: str) -> None:
        import models

        self.fallback_reason_ = reason
        name = self.fallback if self.fallback != self.name else "naive"
        kwargs = self.settings()
        if name != "naive":
            kwargs["fallback"] = "naive"
        fallback = models.create(name, **kwargs)
        start = self.next_start_ - y.size * self.step_seconds_
        self.fallback_ = fallback.fit(y, step_seconds=self.step_seconds_, start_seconds=start)

    def _check_fitted(self) -> None:
        if not getattr(self, "fitted_", False):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")
