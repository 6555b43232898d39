"""Seasonal period detection from the data alone.

Some traces have only relative timestamps and even absolute ones need not follow a human calendar
(an hourly batch job, a 90-minute cron), so periods are found in the series, never assumed from the
wall clock. The method is the autocorrelation function, computed with an FFT in O(n log n):

1. Missing points are interpolated, spikes are winsorised at the 1st/99th percentiles (one news spike
   must not dominate the ACF, as it would in ``nab_twitter_aapl``) and a linear trend is removed.
2. A lag is a candidate period when its autocorrelation is a local maximum over +-10% of the lag, is
   above ``threshold`` and rises at least ``min_prominence`` above the trough before it. A smooth but
   aperiodic series has a decaying ACF without such a trough, and white noise stays near zero.
3. The strongest candidate that fits at least three times whose integer fraction is also strong is reduced to that fundamental
   (hourly spikes show peaks at 12, 24, 36, ... steps; the period is 12), then refined by epoch
   folding (the length whose per-phase means explain most variance).
4. A second, longer period is kept when a multiple of the first is clearly more correlated (the weekly
   cycle on top of the daily one).
"""

from __future__ import annotations

import numpy as np


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelation of ``x`` for lags ``0..max_lag`` (inclusive), unbiased normalisation.

    Args:
        x: Finite values.
        max_lag: Largest lag; clipped to ``len(x) - 1``.

    Returns:
        Array of length ``max_lag + 1`` with ``acf[0] == 1`` (all zeros for a constant ``x``).
    """
    x = np.asarray(x, dtype=float)
    n = x.size
    max_lag = int(min(max_lag, n - 1))
    x = x - x.mean()
    var = float(np.dot(x, x)) / n
    if n == 0 or var <= 0.0:
        return np.zeros(max(max_lag, 0) + 1)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spectrum = np.fft.rfft(x, size)
    cov = np.fft.irfft(spectrum * np.conj(spectrum), size)[: max_lag + 1]
    return cov / (np.arange(n, n - max_lag - 1, -1) * var)


def _prepare(y: np.ndarray) -> np.ndarray:
    """Interpolate NaN, winsorise at the 1st/99th percentiles and remove a linear trend."""
    y = np.asarray(y, dtype=float)
    finite = np.isfinite(y)
    if finite.sum() < 2:
        return np.zeros(0)
    idx = np.arange(y.size)
    x = np.interp(idx, idx[finite], y[finite])
    lo, hi = np.percentile(x, [1.0, 99.0])
    x = np.clip(x, lo, hi)
    slope, intercept = np.polyfit(idx, x, 1)
    return x - (slope * idx + intercept)


def _peaks(acf: np.ndarray, *, min_period: int, threshold: float, min_prominence: float) -> list[int]:
    """Lags that are local maxima over +-10% of the lag, above threshold and prominent."""
    found = []
    max_lag = acf.size - 1
    running_min = np.minimum.accumulate(acf)
    for lag in range(max(min_period, 2), max_lag + 1):
        value = acf[lag]
        if value < threshold:
            continue
        width = max(1, lag // 10)
        lo, hi = max(1, lag - width), min(max_lag, lag + width)
        if value < acf[lo : hi + 1].max():
            continue
        # The trough before the peak: lowest ACF between half the lag and the lag (or since lag 1).
        trough = min(acf[max(1, lag // 2) : lag].min(), running_min[lag])
        if value - trough >= min_prominence:
            found.append(lag)
    return found


def _refine(x: np.ndarray, period: int) -> int:
    """Refine ``period`` by epoch folding: the length whose folded mean profile explains most variance.

    A broad ACF peak (a smooth daily cycle) locates the period only to a few percent. Folding the series
    at a wrong length smears the profile over the cycles, so the share of variance explained by the
    per-phase means peaks sharply at the true length.
    """
    n = x.size
    spread = _refine_spread(period)
    best, best_score = period, -np.inf
    total = float(np.dot(x, x))
    if total <= 0.0:
        return period
    for cand in range(max(2, period - spread), min(period + spread, n // 2) + 1):
        phase = np.resize(np.arange(cand), n)  # np.arange(n) % cand, without the slow modulo
        sums = np.bincount(phase, weights=x, minlength=cand)
        counts = np.full(cand, n // cand)
        counts[: n % cand] += 1
        # variance of the per-phase means, penalised for the number of phases (more bins fit more noise)
        explained = float(np.sum(sums * sums / counts)) - cand * total / n
        if explained > best_score:
            best, best_score = cand, explained
    return best


def _refine_spread(period: int) -> int:
    """How far ``_refine`` looks on either side of ``period``."""
    return period // 20 + 1


def detect_periods(
    y: np.ndarray,
    *,
    min_period: int = 2,
    max_period: int | None = None,
    max_periods: int = 2,
    threshold: float = 0.2,
    min_prominence: float = 0.1,
    min_cycles: float = 2.0,
    longest: int | None = None,
) -> tuple[int, ...]:
    """Detect seasonal periods (in steps) of a series from its autocorrelation.

    Args:
        y: Observations on a fixed step (NaN allowed).
        min_period: Shortest period to report, in steps.
        max_period: Longest period, in steps; also limited to ``len(y) / min_cycles``.
        max_periods: At most this many periods are returned.
        threshold: Minimum autocorrelation at the period (white noise of n points has sd 1/sqrt(n);
            the effective threshold is at least 4/sqrt(n)).
        min_prominence: Minimum rise of the ACF peak above the preceding trough.
        min_cycles: A period must fit at least this many times in the series.
        longest: Periods longer than this are of no use to the caller and are left out of the
            result (after the detection, which still sees them: the same periods as filtering the
            result afterwards). Refining a primary period that cannot come within it is skipped,
            the costly step on a long series (a daily cycle at a 15-s step is 5760 steps).

    Returns:
        Periods in steps, primary (shortest strong cycle) first; empty when there is none.
    """
    x = _prepare(y)
    n = x.size
    if n < 8 or not np.any(x):
        return ()
    limit = int(n / min_cycles)
    if max_period is not None:
        limit = min(limit, int(max_period))
    if limit < max(min_period, 2):
        return ()
    acf = autocorrelation(x, limit)
    threshold = max(threshold, 4.0 / np.sqrt(n))
    candidates = _peaks(acf, min_period=min_period, threshold=threshold, min_prominence=min_prominence)
    if not candidates:
        return ()

    # The primary period must repeat at least three times, or a slow wander of the level (regimes, bursts) passes for a long cycle. Longer candidates can still
    # become the second period.
    short = [lag for lag in candidates if lag <= n / max(min_cycles, 3.0)]
    if not short:
        return ()
    # Reduce the strongest peak to its fundamental: a smaller candidate dividing it that is strong too.
    strongest = max(short, key=lambda lag: acf[lag])
    primary = strongest
    for lag in short:
        if lag >= strongest:
            break
        ratio = strongest / lag
        if abs(ratio - round(ratio)) <= 0.1 and acf[lag] >= 0.5 * acf[strongest]:
            primary = lag
            break
    if longest is not None and primary - _refine_spread(primary) > longest:
        return ()  # refining moves it by at most the spread, and a second period is longer still
    primary = _refine(x, primary)
    periods = [primary]

    # A longer cycle (weekly over daily) is kept when a multiple of the primary is clearly stronger.
    if max_periods > 1:
        longer = [
            lag
            for lag in candidates
            if lag >= 2 * primary
            and abs(lag / primary - round(lag / primary)) < 0.1
            and acf[lag] > acf[min(primary, acf.size - 1)] + 0.05
        ]
        if longer:
            second = max(longer, key=lambda lag: acf[lag])
            multiple = int(round(second / primary))
            periods.append(primary * multiple)
    return tuple(p for p in periods[:max_periods] if longest is None or p <= longest)
