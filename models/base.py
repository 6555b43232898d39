"""The forecasting contract: the ``Forecaster`` protocol, the ``Forecast`` value and quantile helpers.

A forecaster learns from one regularly sampled series (``y``, one value per ``step_seconds``; missing
points are NaN) and predicts the next ``horizon_steps`` points as a point path plus quantile paths.
The shape follows statsforecast's model contract, with two changes:

* ``predict`` returns quantiles keyed by level (``{0.1: array, 0.9: array}``), not ``lo-80``/``hi-80``
  columns, because the planner provisions to a quantile, not to an interval.
* ``update`` appends observations without a full refit. The controller ticks every 15 s and cannot
  refit a thousand models per tick; it refits on a cadence, off the event loop, and updates in between.

Time is a plain float of seconds on the caller's clock; models never read a wall clock and never
assume that a timestamp is wall-clock time (some traces only have relative time).
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, Self, runtime_checkable

import numpy as np

#: The quantile levels the project scores (BENCHMARK.md / issue 3): 95% and 80% central intervals and the median.
DEFAULT_QUANTILES: tuple[float, ...] = (0.025, 0.1, 0.5, 0.9, 0.975)


def lfilter(b: list[float], a: list[float], x: np.ndarray, **kwargs: object) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.lfilter``, imported on first use: importing ``scipy.signal`` takes about
    1.2 s, which every command (``--help`` and ``config validate`` too) would otherwise pay."""
    from scipy.signal import lfilter as scipy_lfilter  # noqa: PLC0415 - deliberately lazy

    return scipy_lfilter(b, a, x, **kwargs)


@dataclass(frozen=True, slots=True)
class Forecast:
    """A probabilistic forecast of the next ``len(mean)`` points of one series.

    Attributes:
        start: Time (seconds, the caller's clock) of the first predicted point, i.e. one step after the
            last observed point.
        step_seconds: Spacing of the predicted points in seconds.
        mean: Point forecast, shape ``(horizon_steps,)``. It is the model's own point forecast (for the
            naive model the last value, for the median-trained models the median).
        quantiles: Level in (0, 1) -> array of shape ``(horizon_steps,)``. For every step the values are
            non-decreasing in the level.
        fallback_reason: ``None`` when the named model produced the forecast; otherwise why its
            fallback model produced it instead (history too short, constant, fit failed, ...).
        model: Name of the model that produced the forecast (the fallback's name after a fallback;
            ``auto`` reports the chosen candidates, e.g. ``auto[ets]``).
    """

    start: float
    step_seconds: float
    mean: np.ndarray
    quantiles: Mapping[float, np.ndarray]
    fallback_reason: str | None = None
    model: str = ""
    _levels: tuple[float, ...] = field(default=(), init=False, repr=False, compare=False)
    #: The quantile paths as one read-only table, a row per level of ``_levels``.
    _table: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), init=False, repr=False, compare=False)
    #: ``peak`` answers by index range: range -> {level: peak}.
    _peaks: dict[tuple[int, int], dict[float, float]] = field(default_factory=dict, init=False, repr=False, compare=False)
    #: ``len(mean)``, kept: ``index_at`` is asked for several times per rung at every tick.
    _steps: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        mean = np.array(self.mean, dtype=float)
        levels = tuple(sorted(self.quantiles))
        rows = []
        for level in levels:
            values = np.asarray(self.quantiles[level], dtype=float)
            if values.shape != mean.shape:
                raise ValueError(f"quantile {level} has shape {values.shape}, mean has {mean.shape}")
            rows.append(values)
        table = np.array(rows, dtype=float).reshape(len(levels), *mean.shape)
        _freeze(self, mean, tuple(float(q) for q in levels), table)

    @classmethod
    def _from_table(
        cls, *, start: float, step_seconds: float, mean: np.ndarray, levels: tuple[float, ...], table: np.ndarray,
        fallback_reason: str | None, model: str,
    ) -> Forecast:
        """A forecast over ``table`` itself, no copy: the caller's own array, rows checked and sorted by level."""
        forecast = object.__new__(cls)
        fields = {"start": start, "step_seconds": step_seconds, "fallback_reason": fallback_reason, "model": model}
        for name, value in fields.items():
            object.__setattr__(forecast, name, value)
        _freeze(forecast, mean, levels, table)
        return forecast

    @property
    def horizon_steps(self) -> int:
        """Number of predicted points."""
        return self._steps

    def times(self) -> np.ndarray:
        """Times (seconds) of the predicted points: ``start + step_seconds * [0, 1, ...]``."""
        return self.start + self.step_seconds * np.arange(self.horizon_steps)

    def index_at(self, at: float) -> int:
        """Index of the point that covers time ``at``: the first point at or after it.

        Times before ``start`` map to the first point and times past the horizon to the last.
        """
        k = math.ceil((at - self.start) / self.step_seconds - 1e-9)
        return min(max(k, 0), self._steps - 1)

    def peak(self, level: float, first: int, last: int) -> float:
        """The largest value of the quantile path at ``level`` over the indices ``first..last``.

        Planners ask this for several levels over the same range at every tick: the peaks of all
        stored levels over a range are taken at once and kept.
        """
        peaks = self._peaks.get((first, last))
        if peaks is None:
            peaks = dict(zip(self._levels, self._table[:, first : last + 1].max(axis=1).tolist(), strict=True))
            self._peaks[(first, last)] = peaks
        found = peaks.get(level)
        return float(self.quantile(level)[first : last + 1].max()) if found is None else found

    def quantile(self, level: float) -> np.ndarray:
        """The quantile path at ``level``, interpolated linearly between the stored levels.

        Args:
            level: Quantile level in (0, 1). Outside the stored range the nearest stored level is used.

        Returns:
            Array of shape ``(horizon_steps,)``; read-only when ``level`` is one of the stored levels.
        """
        if level in self.quantiles:
            return self.quantiles[level]  # read-only, so it can be shared
        if not self._levels:
            return np.array(self.mean)
        return interpolate_levels(np.array(self._levels), self._table, np.array([level]))[0]


def _freeze(forecast: Forecast, mean: np.ndarray, levels: tuple[float, ...], table: np.ndarray) -> None:
    """Set a forecast's arrays, read-only: the mean, the table and a path per level (its rows)."""
    mean.setflags(write=False)
    table.setflags(write=False)
    object.__setattr__(forecast, "mean", mean)
    object.__setattr__(forecast, "quantiles", types.MappingProxyType(dict(zip(levels, table, strict=True))))
    object.__setattr__(forecast, "_levels", levels)
    object.__setattr__(forecast, "_table", table)
    object.__setattr__(forecast, "_peaks", {})
    object.__setattr__(forecast, "_steps", int(mean.shape[0]))


def check_horizon(horizon_steps: int) -> int:
    """Validate a forecast horizon and return it as an ``int``.

    Raises:
        ValueError: the horizon is below one step.
    """
    horizon_steps = int(horizon_steps)
    if horizon_steps < 1:
        raise ValueError(f"horizon_steps must be >= 1, got {horizon_steps}")
    return horizon_steps


def check_levels(quantiles: Iterable[float]) -> tuple[float, ...]:
    """Validate quantile levels and return them sorted and de-duplicated.

    Raises:
        ValueError: a level is not strictly between 0 and 1.
    """
    key = quantiles if type(quantiles) is tuple else None
    if key is not None:
        try:
            hit = _CHECKED_LEVELS.get(key)
        except TypeError:  # an unhashable level: checked below, not kept
            hit = key = None
        if hit is not None:
            return hit
    levels = sorted({float(q) for q in quantiles})
    bad = [q for q in levels if not 0.0 < q < 1.0]
    if bad:
        raise ValueError(f"quantile levels must be in (0, 1), got {bad}")
    checked = tuple(levels)
    if key is not None and len(_CHECKED_LEVELS) < 256:
        _CHECKED_LEVELS[key] = _CHECKED_LEVELS[checked] = checked
    return checked


#: Tuples of levels ``check_levels`` has validated -> the checked tuple (the controller asks for the
#: same levels at every tick); a checked tuple is its own key, so ``make_forecast`` knows it on sight.
_CHECKED_LEVELS: dict[tuple, tuple[float, ...]] = {}


def repair_monotone(values: np.ndarray) -> np.ndarray:
    """Make quantile paths non-decreasing in the level by sorting along the level axis.

    Sorting (Chernozhukov et al.'s rearrangement) never makes the pinball loss worse, unlike clipping.

    Args:
        values: Array ``(n_levels, horizon_steps)``, rows in increasing level order.

    Returns:
        A sorted copy of the same shape.
    """
    return np.sort(np.asarray(values, dtype=float), axis=0)


def interpolate_levels(grid_levels: np.ndarray, grid_values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Interpolate quantile paths known on ``grid_levels`` to other ``levels``.

    Args:
        grid_levels: Increasing levels, shape ``(g,)``.
        grid_values: Values, shape ``(g, horizon_steps)``, non-decreasing along axis 0.
        levels: Wanted levels, shape ``(k,)``; levels outside the grid take the nearest grid row.

    Returns:
        Array ``(k, horizon_steps)``.
    """
    return combine_levels(grid_values, interpolation_weights(grid_levels, levels))


def combine_levels(grid_values: np.ndarray, weights: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """``interpolate_levels`` with its ``interpolation_weights`` already at hand."""
    below, above, w_below, w_above = weights
    return w_below * grid_values[below] + w_above * grid_values[above]


def interpolation_weights(
    grid_levels: np.ndarray, levels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rows and weights ``interpolate_levels`` combines (``combine_levels``): the grid rows
    below and above each level and their weights, ``(below, above, 1 - w, w)``; a caller that
    interpolates on the same levels every time can keep them."""
    grid_levels = np.asarray(grid_levels, dtype=float)
    levels = np.asarray(levels, dtype=float)
    idx = np.clip(np.searchsorted(grid_levels, levels), 1, len(grid_levels) - 1)
    lo, hi = grid_levels[idx - 1], grid_levels[idx]
    w = np.clip((levels - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)[:, None]
    return idx - 1, idx, 1.0 - w, w


def make_forecast(
    *,
    start: float,
    step_seconds: float,
    mean: np.ndarray,
    levels: Sequence[float],
    values: np.ndarray,
    fallback_reason: str | None = None,
    model: str = "",
) -> Forecast:
    """Build a ``Forecast`` from a point path and a ``(len(levels), horizon)`` table, repairing monotonicity."""
    table = repair_monotone(values)
    mean = np.array(mean, dtype=float)
    checked = type(levels) is tuple and _CHECKED_LEVELS.get(levels) is levels  # sorted, unique floats
    if len(levels) != table.shape[0] or table.shape[1:] != mean.shape or not (checked or list(levels) == sorted(set(levels))):
        # Not the table this function is meant for: let the constructor check it and say what is wrong.
        return Forecast(
            start=float(start),
            step_seconds=float(step_seconds),
            mean=mean,
            quantiles={float(q): table[i] for i, q in enumerate(levels)},
            fallback_reason=fallback_reason,
            model=model,
        )
    # The sorted table is a fresh array: the forecast can keep it without the constructor's copy
    # (a forecast is made at every tick).
    return Forecast._from_table(
        start=float(start),
        step_seconds=float(step_seconds),
        mean=mean,
        levels=levels if checked else tuple(float(q) for q in levels),
        table=table,
        fallback_reason=fallback_reason,
        model=model,
    )


def pinball_loss(y: np.ndarray, predicted: np.ndarray, level: float) -> np.ndarray:
    """Pinball (quantile) loss of ``predicted`` as the ``level`` quantile of ``y``, element-wise.

    ``level * (y - q)`` when ``y >= q`` and ``(1 - level) * (q - y)`` otherwise.
    """
    diff = np.asarray(y, dtype=float) - np.asarray(predicted, dtype=float)
    return np.maximum(level * diff, (level - 1.0) * diff)


@runtime_checkable
class Forecaster(Protocol):
    """A probabilistic forecaster of one series on a fixed step.

    Implementations keep fitted state in attributes ending with an underscore and are deterministic for a
    given constructor ``seed``.
    """

    name: str

    def fit(self, y: np.ndarray, *, step_seconds: float, start_seconds: float = 0.0) -> Self:
        """Fit on the whole history ``y`` and make it the model's current state.

        Args:
            y: Observations, one per step, oldest first; NaN marks a missing point. The model may use a
                bounded recent window of it. The array is not modified.
            step_seconds: Spacing of the observations in seconds.
            start_seconds: Time of ``y[0]`` in seconds (any origin; never read as wall-clock time).

        Returns:
            ``self``. Never raises for bad data: when the history is too short, constant, mostly missing or
            the fit fails, a fallback model takes over and ``predict`` reports ``fallback_reason``.
        """
        ...

    def update(self, new_points: np.ndarray) -> Self:
        """Append the observations that followed the last seen point, without refitting parameters.

        Cost is O(len(new_points)) and independent of the history length, so it can run on every tick.

        Args:
            new_points: The next observations in time order (NaN for missing ones).

        Returns:
            ``self``.
        """
        ...

    def predict(self, horizon_steps: int, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> Forecast:
        """Forecast the ``horizon_steps`` points after the last seen observation.

        Args:
            horizon_steps: Number of future steps (>= 1).
            quantiles: Levels in (0, 1) to return.

        Returns:
            A ``Forecast`` with ``horizon_steps`` points whose quantiles are non-decreasing in the level.

        Raises:
            RuntimeError: ``fit`` was never called.
            ValueError: ``horizon_steps < 1`` or a level outside (0, 1).
        """
        ...
