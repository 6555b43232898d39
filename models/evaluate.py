"""Rolling-origin backtests of forecasters on one series, and the metrics of issue #3.

The backtest replays a series the way the controller lives it: fit on the history up to an origin,
then at every step predict, observe the next point and ``update``; refit on a cadence (a simulated day
by default). Rules, taken from ``../shared/BENCHMARK.md`` section 1 and the issue:

* **Warm-up.** Origins start after the first 25% of the series, so every scored target lies in the
  scored part; the warm-up is history only.
* **Own step, horizon rounded up.** The series keeps the trace's own step and a horizon in seconds
  becomes ``ceil(horizon_seconds / step_seconds)`` steps. Interpolating onto a finer grid would
  flatter any trend model.
* **No look-ahead.** At origin o the model has seen ``y[:o]`` only; ``tests/models`` proves it by
  changing the data after an origin.

Metrics (per model and horizon, over origins whose target is observed):

* ``mase_naive`` / ``mase_seasonal_naive``: mean absolute error of the point forecast (``mean``) divided
  by that of the naive / seasonal-naive model on the same targets (a relative MAE, i.e. MASE with the
  reference model's out-of-sample error as the scale, so that 0.9 reads "10% better than naive").
* ``pinball``: pinball loss averaged over the quantiles 0.025, 0.1, 0.5, 0.9, 0.975.
* ``coverage_80`` / ``coverage_95``: share of targets inside [q0.1, q0.9] / [q0.025, q0.975].
* ``days_calibrated``: share of days (on the trace's clock, days with at least half their points
  scored) whose own 80% coverage lies in [0.70, 0.90].
* ``fit_seconds`` / ``predict_seconds``: mean wall time of one ``fit`` / one ``predict``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from models import base
from models.core import DAY_SECONDS

SCORED_QUANTILES = base.DEFAULT_QUANTILES
WARMUP_FRACTION = 0.25


@dataclass(frozen=True, slots=True)
class Backtest:
    """Forecasts of one model at every origin of the scored part of a series.

    Attributes:
        model: Model name.
        origins: Origins ``o`` (the model had seen ``y[:o]``), shape ``(k,)``.
        horizons_steps: The scored horizons, in steps.
        mean: Point forecasts, shape ``(k, len(horizons_steps))``; column j predicts ``y[o + h_j - 1]``.
        quantiles: Level -> array of the same shape.
        fallback: Whether each origin's forecast came from a fallback, shape ``(k,)``.
        fit_seconds: Duration of each fit.
        predict_seconds: Mean duration of one predict.
        update_seconds: Mean duration of one update.
    """

    model: str
    origins: np.ndarray
    horizons_steps: tuple[int, ...]
    mean: np.ndarray
    quantiles: Mapping[float, np.ndarray]
    fallback: np.ndarray
    fit_seconds: tuple[float, ...]
    predict_seconds: float
    update_seconds: float


@dataclass(frozen=True, slots=True)
class Scores:
    """The metrics of one model at one horizon (see the module docstring)."""

    model: str
    horizon_steps: int
    mae: float
    mase_naive: float
    mase_seasonal_naive: float
    pinball: float
    pinball_naive_ratio: float
    coverage_80: float
    coverage_95: float
    days_calibrated: float
    daily_coverage_80: tuple[float, ...] = field(default=())
    fallback_share: float = 0.0
    scored_points: int = 0


def horizon_steps_for(horizon_seconds: float, step_seconds: float) -> int:
    """A horizon in seconds as whole steps of the series, rounded up (at least 1)."""
    return max(1, math.ceil(horizon_seconds / step_seconds - 1e-9))


def backtest(
    factory: Callable[[], base.Forecaster],
    y: np.ndarray,
    *,
    step_seconds: float,
    start_seconds: float = 0.0,
    horizons_steps: Sequence[int],
    quantiles: Sequence[float] = SCORED_QUANTILES,
    warmup_fraction: float = WARMUP_FRACTION,
    refit_every_steps: int | None = None,
    first_origin: int | None = None,
) -> Backtest:
    """Run one model through a rolling-origin backtest.

    Args:
        factory: Builds the (unfitted) model; called once.
        y: The series on its own step, NaN for missing points.
        step_seconds: Step of ``y``.
        start_seconds: Time of ``y[0]``.
        horizons_steps: Horizons to record (the model predicts up to the largest one).
        quantiles: Levels to record.
        warmup_fraction: Share of the series before the first origin.
        refit_every_steps: Refit cadence in steps; ``None`` means one day of steps.
        first_origin: Overrides the warm-up rule (tests use it).

    Returns:
        The recorded forecasts and timings.
    """
    y = np.asarray(y, dtype=float)
    n = y.size
    horizons = tuple(sorted({int(h) for h in horizons_steps}))
    cols = np.array(horizons) - 1
    levels = base.check_levels(quantiles)
    h_max = horizons[-1]
    refit = refit_every_steps or max(int(DAY_SECONDS / step_seconds), 1)
    first = math.ceil(warmup_fraction * n) if first_origin is None else int(first_origin)
    origins = np.arange(first, n)
    means = np.full((origins.size, len(horizons)), np.nan)
    table = {q: np.full((origins.size, len(horizons)), np.nan) for q in levels}
    fallback = np.zeros(origins.size, dtype=bool)
    model = factory()
    fits: list[float] = []
    predict_time = update_time = 0.0
    last_fit = -refit
    for i, origin in enumerate(origins):
        # Refit from the full history up to the origin on the cadence; otherwise the model already
        # absorbed y[origin - 1] through update() at the end of the previous iteration.
        if origin - last_fit >= refit:
            started = time.perf_counter()
            model.fit(y[:origin], step_seconds=step_seconds, start_seconds=start_seconds)
            fits.append(time.perf_counter() - started)
            last_fit = origin
        started = time.perf_counter()
        forecast = model.predict(h_max, levels)
        predict_time += time.perf_counter() - started
        means[i] = forecast.mean[cols]
        for q in levels:
            table[q][i] = forecast.quantiles[q][cols]
        fallback[i] = forecast.fallback_reason is not None
        if origin - last_fit + 1 < refit and origin < n - 1:
            started = time.perf_counter()
            model.update(y[origin : origin + 1])
            update_time += time.perf_counter() - started
    count = max(origins.size, 1)
    return Backtest(
        model=getattr(model, "name", type(model).__name__),
        origins=origins,
        horizons_steps=horizons,
        mean=means,
        quantiles=table,
        fallback=fallback,
        fit_seconds=tuple(fits),
        predict_seconds=predict_time / count,
        update_seconds=update_time / count,
    )


def targets_for(y: np.ndarray, origins: np.ndarray, horizon_steps: int) -> np.ndarray:
    """The observed value each origin's ``horizon_steps``-ahead forecast is scored against (NaN if none)."""
    index = origins + horizon_steps - 1
    out = np.full(origins.size, np.nan)
    inside = index < y.size
    out[inside] = y[index[inside]]
    return out


def mean_pinball(actual: np.ndarray, quantiles: Mapping[float, np.ndarray]) -> float:
    """Pinball loss averaged over the levels in ``quantiles`` and over the points."""
    return float(np.mean([np.mean(base.pinball_loss(actual, quantiles[q], q)) for q in quantiles]))


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of ``actual`` inside ``[lower, upper]`` (NaN for no points)."""
    if actual.size == 0:
        return math.nan
    return float(np.mean((actual >= lower) & (actual <= upper)))


def daily_coverage(
    actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, times: np.ndarray, *, points_per_day: float
) -> tuple[float, ...]:
    """Coverage of ``[lower, upper]`` per day of ``times`` (seconds), for days at least half scored."""
    days = np.floor(times / DAY_SECONDS).astype(np.int64)
    out = []
    for day in np.unique(days):
        inside = days == day
        if inside.sum() >= 0.5 * points_per_day:
            out.append(coverage(actual[inside], lower[inside], upper[inside]))
    return tuple(out)


def score(
    result: Backtest,
    y: np.ndarray,
    *,
    step_seconds: float,
    start_seconds: float = 0.0,
    naive: Backtest,
    seasonal_naive: Backtest,
) -> list[Scores]:
    """Metrics of ``result`` for each of its horizons, against the two baseline backtests of the same series.

    Raises:
        ValueError: the baselines were run on other origins or horizons.
    """
    for ref in (naive, seasonal_naive):
        if not np.array_equal(ref.origins, result.origins) or ref.horizons_steps != result.horizons_steps:
            raise ValueError("baselines must be backtested on the same origins and horizons")
    out = []
    for j, h in enumerate(result.horizons_steps):
        actual = targets_for(y, result.origins, h)
        ok = np.isfinite(actual) & np.isfinite(result.mean[:, j])
        a = actual[ok]
        err = np.abs(a - result.mean[ok, j])
        mae = float(err.mean()) if a.size else math.nan
        mae_naive = float(np.abs(a - naive.mean[ok, j]).mean()) if a.size else math.nan
        mae_snaive = float(np.abs(a - seasonal_naive.mean[ok, j]).mean()) if a.size else math.nan
        q = {level: values[ok, j] for level, values in result.quantiles.items()}
        q_naive = {level: values[ok, j] for level, values in naive.quantiles.items()}
        pinball = mean_pinball(a, q)
        pinball_naive = mean_pinball(a, q_naive)
        times = start_seconds + step_seconds * (result.origins[ok] + h - 1)
        daily = daily_coverage(a, q[0.1], q[0.9], times, points_per_day=DAY_SECONDS / step_seconds)
        out.append(
            Scores(
                model=result.model,
                horizon_steps=h,
                mae=mae,
                mase_naive=_ratio(mae, mae_naive),
                mase_seasonal_naive=_ratio(mae, mae_snaive),
                pinball=pinball,
                pinball_naive_ratio=_ratio(pinball, pinball_naive),
                coverage_80=coverage(a, q[0.1], q[0.9]),
                coverage_95=coverage(a, q[0.025], q[0.975]),
                days_calibrated=float(np.mean([0.70 <= c <= 0.90 for c in daily])) if daily else math.nan,
                daily_coverage_80=daily,
                fallback_share=float(result.fallback[ok].mean()) if a.size else math.nan,
                scored_points=int(a.size),
            )
        )
    return out


def _ratio(num: float, den: float) -> float:
    if math.isnan(num) or math.isnan(den):
        return math.nan  # nothing scored: no ratio (not an infinitely bad one)
    if den > 0:
        return num / den
    return 1.0 if num == den else math.inf


@dataclass(frozen=True, slots=True)
class Row:
    """One line of ``forecast-eval --json``: one trace, model and horizon."""

    trace: str
    model: str
    horizon_seconds: float
    mase_naive: float
    mase_seasonal_naive: float
    pinball: float
    coverage_80: float
    coverage_95: float
    fit_seconds: float
    predict_seconds: float
    # Not part of the JSON contract; the benchmark reads them.
    horizon_steps: int = 0
    pinball_naive_ratio: float = math.nan
    days_calibrated: float = math.nan
    update_seconds: float = math.nan
    fallback_share: float = math.nan

    JSON_FIELDS = (
        "trace",
        "model",
        "horizon_seconds",
        "mase_naive",
        "mase_seasonal_naive",
        "pinball",
        "coverage_80",
        "coverage_95",
        "fit_seconds",
        "predict_seconds",
    )

    def to_json(self) -> dict[str, object]:
        """The fields of the ``--json`` contract, exactly."""
        return {name: getattr(self, name) for name in self.JSON_FIELDS}


def evaluate_series(
    y: np.ndarray,
    *,
    name: str,
    step_seconds: float,
    start_seconds: float = 0.0,
    horizons_seconds: Sequence[float],
    models: Sequence[str],
    seed: int = 0,
    refit_every_steps: int | None = None,
    warmup_fraction: float = WARMUP_FRACTION,
    progress: Callable[[str], None] | None = None,
) -> list[Row]:
    """Backtest ``models`` on one series at every horizon and return one ``Row`` per model and horizon.

    The naive and seasonal-naive baselines are always run (they are the MASE references); they are
    reported only when listed in ``models``.

    Args:
        y: The series on its own step (NaN for missing points).
        name: Trace name for the rows.
        step_seconds: Step of ``y``.
        start_seconds: Time of ``y[0]``.
        horizons_seconds: Horizons in seconds; each is rounded up to whole steps.
        models: Registered model names.
        seed: Seed for every model.
        refit_every_steps: Refit cadence; ``None`` means one day of steps.
        warmup_fraction: Share of the series that is history only.
        progress: Called with a short message as each model finishes.

    Returns:
        Rows in the order of ``models`` then horizons.
    """
    import models as registry

    steps = {float(s): horizon_steps_for(float(s), step_seconds) for s in horizons_seconds}
    horizons = sorted(set(steps.values()))
    results: dict[str, Backtest] = {}
    for model_name in dict.fromkeys(["naive", "seasonal_naive", *models]):

        def factory(model_name: str = model_name) -> base.Forecaster:
            return registry.create(model_name, max_horizon_steps=horizons[-1], seed=seed)

        results[model_name] = backtest(
            factory,
            y,
            step_seconds=step_seconds,
            start_seconds=start_seconds,
            horizons_steps=horizons,
            warmup_fraction=warmup_fraction,
            refit_every_steps=refit_every_steps,
        )
        if progress is not None:
            progress(f"{name}: {model_name} done")
    rows = []
    for model_name in models:
        result = results[model_name]
        per_h = {
            s.horizon_steps: s
            for s in score(
                result,
                y,
                step_seconds=step_seconds,
                start_seconds=start_seconds,
                naive=results["naive"],
                seasonal_naive=results["seasonal_naive"],
            )
        }
        for seconds, h in steps.items():
            s = per_h[h]
            rows.append(
                Row(
                    trace=name,
                    model=model_name,
                    horizon_seconds=seconds,
                    mase_naive=s.mase_naive,
                    mase_seasonal_naive=s.mase_seasonal_naive,
                    pinball=s.pinball,
                    coverage_80=s.coverage_80,
                    coverage_95=s.coverage_95,
                    fit_seconds=float(np.mean(result.fit_seconds)) if result.fit_seconds else math.nan,
                    predict_seconds=result.predict_seconds,
                    horizon_steps=h,
                    pinball_naive_ratio=s.pinball_naive_ratio,
                    days_calibrated=s.days_calibrated,
                    update_seconds=result.update_seconds,
                    fallback_share=s.fallback_share,
                )
            )
    return rows
