"""What one simulated run produces: the scores of BENCHMARK.md section 3 and the per-tick traces behind them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

SCORE_FIELDS = (
    "trace",
    "policy",
    "startup_seconds",
    "peak_pods",
    "unserved_pct",
    "underprovisioned_time_pct",
    "pod_hours",
    "oracle_pod_hours",
    "cost_ratio",
    "scale_actions",
    "wall_seconds",
)


@dataclass(frozen=True, slots=True)
class Score:
    """The fields of BENCHMARK.md sections 3 and 5, for the scored part of one run."""

    trace: str
    policy: str
    startup_seconds: float
    peak_pods: float
    unserved_pct: float
    underprovisioned_time_pct: float
    pod_hours: float
    oracle_pod_hours: float
    cost_ratio: float
    scale_actions: int
    wall_seconds: float

    def to_json(self) -> dict[str, object]:
        """The JSON object of BENCHMARK.md section 5: exactly its fields, in a stable order.

        A number that is not finite (the cost ratio when the scored window holds no demand, so
        the oracle holds no pods) is ``null``: strict JSON has no NaN.
        """
        d = asdict(self)
        return {k: (None if isinstance(d[k], float) and not math.isfinite(d[k]) else d[k]) for k in SCORE_FIELDS}


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One tick at which the policy changed the replica count."""

    tick: int
    from_replicas: int
    to_replicas: int
    reason: str


@dataclass(frozen=True)
class RunResult:
    """One policy on one trace: the score plus the per-tick series a report plots.

    Arrays have one entry per tick; ``times`` are the tick times in the trace's own
    seconds; ``scored_from`` is the index of the first scored tick (after warm-up).
    ``forecast`` is ``None`` for policies without one, else a mapping with arrays
    ``"lower"``, ``"mean"``, ``"upper"`` (pod units) of the forecast they acted on, as shown
    (below 0 shown as 0, ``policies.shown_load``; the planner provisions nothing for either).
    """

    score: Score
    times: np.ndarray
    demand: np.ndarray
    observed: np.ndarray
    ready: np.ndarray
    starting: np.ndarray
    scored_from: int
    decisions: tuple[DecisionRecord, ...] = ()
    forecast: dict[str, np.ndarray] | None = field(default=None)
    #: the changes of provisioning quantile, ``(time, message)`` in the trace's seconds (``PredictivePolicy.rung_changes``)
    quantile_changes: tuple[tuple[float, str], ...] = ()
