"""The one-workload scenario of BENCHMARK.md sections 1 to 3: demand, what is observed, and the oracle.

Choices the contract leaves open (also in ``docs/benchmark.md``):

* The tick grid starts at the trace's first timestamp and runs every 15 s up to
  its last; demand is the trace linearly interpolated onto it (NaN rows dropped first).
* "Demand averaged over [t-75 s, t-15 s]" is the exact mean of the piecewise-linear
  demand over that minute: the trapezoid over ticks i-5 .. i-1. Before the trace
  starts, demand is taken as equal to its first value.
* Warm-up: ticks whose time is before ``t0 + 25% of the span`` are not scored.
* Startup in ticks is ``ceil(startup_seconds / 15)``: a pod cannot serve before it is ready.

``interpolation="previous"`` (``simulate --interpolation previous``) is outside the contract: each
row's value is held until the next row, so a coarse trace has no slope between its rows for a
forecaster to follow. It is a sensitivity check of the contract's linear interpolation
(docs/benchmark.md), never the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from controller.errors import UserError
from controller.sim.traces import Trace

TICK_SECONDS = 15.0
#: BENCHMARK.md section 1: the first 25% of the trace is simulated but not scored.
WARMUP_FRACTION = 0.25
#: The observation window [t-75 s, t-15 s], in ticks: 5 ticks back to 1 tick back.
OBSERVE_FROM_TICKS = 5
OBSERVE_TO_TICKS = 1
#: BENCHMARK.md section 2: the initial state is ceil(demand(0) / 0.7) ready pods.
INITIAL_UTILIZATION = 0.7
#: The longest trace a scenario takes: a year of 15-s ticks (the longest benchmark trace,
#: nab_nyc_taxi, spans 215 days). Longer is almost surely timestamps in milliseconds.
MAX_SPAN_DAYS = 366
MAX_TICKS = int(MAX_SPAN_DAYS * 86400 / TICK_SECONDS) + 1
#: The largest ``peak_pods``: the simulator models every pod (and the policies every pod's
#: startup), so its cost grows with the pod count; at 10,000 a month-long trace already
#: takes minutes per policy, and far more would run for hours.
MAX_PEAK_PODS = 10_000.0
#: How the trace's rows are laid onto the tick grid: the contract's ``linear``, or ``previous``
#: (each row held until the next; a sensitivity check, see the module's docstring).
INTERPOLATIONS = ("linear", "previous")


@dataclass(frozen=True)
class Scenario:
    """Demand on the tick grid of one workload, in pod units (one ready pod serves 1.0)."""

    name: str
    times: np.ndarray
    demand: np.ndarray
    peak_pods: float = 40.0

    def __post_init__(self) -> None:
        if len(self.times) != len(self.demand) or len(self.times) < 2:
            raise ValueError("a scenario needs at least 2 ticks, and as many demand values as ticks")

    @property
    def n_ticks(self) -> int:
        return len(self.times)

    @property
    def scored_from(self) -> int:
        """Index of the first scored tick (after the warm-up)."""
        t0, t_end = float(self.times[0]), float(self.times[-1])
        cutoff = t0 + WARMUP_FRACTION * (t_end - t0)
        return int(np.searchsorted(self.times, cutoff - 1e-9, side="left"))

    def observed(self) -> np.ndarray:
        """What a ``rate()[1m]`` query with one scrape of lag shows at each tick.

        ``observed[i]`` depends only on ``demand[:i]``: the mean of the linearly
        interpolated demand over [t_i - 75 s, t_i - 15 s].
        """
        d = self.demand
        pad = np.concatenate([np.full(OBSERVE_FROM_TICKS, d[0]), d])
        # pad[j + 5] == d[j]; ticks i-5 .. i-1 are pad[i .. i+4].
        n = len(d)
        return (0.5 * pad[0:n] + pad[1 : n + 1] + pad[2 : n + 2] + pad[3 : n + 3] + 0.5 * pad[4 : n + 4]) / 4.0

    def initial_pods(self, *, min_replicas: int = 1) -> int:
        """BENCHMARK.md section 2: ``ceil(demand(0) / 0.7)`` ready pods, at least ``min_replicas``."""
        return max(min_replicas, math.ceil(float(self.demand[0]) / INITIAL_UTILIZATION - 1e-9))


def startup_ticks(startup_seconds: float) -> int:
    """Whole ticks from creation to ready."""
    return max(0, math.ceil(startup_seconds / TICK_SECONDS - 1e-9))


def scenario_from_trace(trace: Trace, *, peak_pods: float = 40.0, interpolation: str = "linear") -> Scenario:
    """Turn a trace into demand in pod units: ``value * peak_pods / quantile(value, 0.99)``.

    ``interpolation`` lays the rows onto the tick grid: ``linear`` (the contract) or ``previous``
    (each row's value held until the next row's timestamp).

    Raises:
        UserError: ``peak_pods`` not a positive number up to ``MAX_PEAK_PODS``, the
            trace's 99th percentile is 0 (no load to scale to), or the trace spans
            less than two ticks or more than ``MAX_SPAN_DAYS``.
    """
    check_peak_pods(peak_pods)
    if interpolation not in INTERPOLATIONS:
        raise UserError(f"--interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    q99 = float(np.quantile(trace.values, 0.99))
    if q99 <= 0:
        raise UserError(f"{trace.path or trace.name}: the 99th percentile of the values is {q99:g}; there is no load to scale")
    t0 = float(trace.timestamps[0])
    n = check_ticks(trace)
    times = t0 + TICK_SECONDS * np.arange(n, dtype=float)
    if interpolation == "linear":
        values = np.interp(times, trace.timestamps, trace.values)
    else:
        values = trace.values[np.searchsorted(trace.timestamps, times, side="right") - 1]
    demand = values * (peak_pods / q99)
    return Scenario(name=trace.name, times=times, demand=demand, peak_pods=peak_pods)


def check_peak_pods(peak_pods: float) -> None:
    """Refuse a ``--peak-pods`` that is not a finite positive number up to ``MAX_PEAK_PODS``."""
    if not math.isfinite(peak_pods) or peak_pods <= 0:
        raise UserError(f"--peak-pods must be a finite positive number, got {peak_pods:g}")
    if peak_pods > MAX_PEAK_PODS:
        raise UserError(
            f"--peak-pods must be at most {MAX_PEAK_PODS:g}, got {peak_pods:g}: the simulator models every pod, "
            "and a run that large would take hours"
        )


def check_ticks(trace: Trace) -> int:
    """The number of 15-s ticks ``trace`` spans, checked before anything is allocated.

    Raises:
        UserError: fewer than two ticks, or more than ``MAX_TICKS`` (``MAX_SPAN_DAYS``).
    """
    where = trace.path or trace.name
    span = trace.span_seconds
    if not span >= TICK_SECONDS:
        raise UserError(f"{where}: spans {span:g} s, less than two {TICK_SECONDS:g}-s ticks")
    if span > (MAX_TICKS - 1) * TICK_SECONDS:
        raise UserError(
            f"{where}: spans {span:.0f} s ({span / 86400:.1f} days), more than the simulator takes "
            f"({MAX_SPAN_DAYS} days: {MAX_TICKS} ticks of {TICK_SECONDS:g} s); the timestamps must be Unix seconds "
            "(not milliseconds)"
        )
    return int(math.floor(span / TICK_SECONDS)) + 1


def oracle_alive(demand: np.ndarray, *, startup_ticks: int) -> np.ndarray:
    """The perfect-foresight schedule of BENCHMARK.md section 3.

    ``need(i) = ceil(demand(i))``; ``alive(i) = max(need(i .. i + startup_ticks))``:
    each pod starts exactly ``startup_ticks`` before it is needed and is kept through
    any dip shorter than that. After the trace ends nothing is needed.
    """
    need = np.ceil(np.asarray(demand, dtype=float) - 1e-9).astype(np.int64)
    need = np.maximum(need, 0)
    if startup_ticks <= 0:
        return need
    padded = np.concatenate([need, np.zeros(startup_ticks, dtype=np.int64)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, startup_ticks + 1)
    return windows.max(axis=1)
