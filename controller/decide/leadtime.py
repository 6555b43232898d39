"""Lead time: how far ahead a replica decision must look, learned from observed pod startups.

A pod ordered now serves only after it has started, and the load the controller
sees is already ``lag`` old, so a decision taken now must provision for the load at
``now + lead``, with ``lead = startup estimate + metrics lag + one tick``.

The startup estimate is a decayed quantile (by default the median,
``replicas.startup_quantile``) of the creation-to-Ready durations the controller
has seen: robust to the odd slow pod (unlike a max) and quick to follow a change of
image or node type (unlike an all-time percentile). The median, not a p90: the
forecast quantile's headroom already covers the pods that start slower than the
median, and every second added to the lead reads a wider quantile further ahead
(measured with log-normal startups, see docs/policy.md).
It is kept as a small weighted sample, so the estimator is a pure value that the
planner state carries and a restart can persist.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class StartupEstimate:
    """A decayed quantile of observed pod startup durations.

    Attributes:
        samples: ``(seconds, weight)`` pairs, newest last; weights decay by ``decay`` per new sample.
        prior_seconds: the estimate before anything was observed (the configured startup time).
        quantile: the weighted quantile of the samples that is the estimate (0.5: the median).
    """

    samples: tuple[tuple[float, float], ...] = ()
    prior_seconds: float = 120.0
    quantile: float = 0.5
    decay: float = 0.97
    max_samples: int = 64

    #: The current estimate (derived from the fields above when the value is built).
    seconds: float = field(default=float("nan"), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "seconds", self._quantile())

    def observe(self, durations: Iterable[float]) -> StartupEstimate:
        """Return a new estimate that has also seen ``durations`` (seconds; non-finite or negative ignored)."""
        new = [float(d) for d in durations if math.isfinite(d) and d >= 0]
        if not new:
            return self
        # Each new sample decays every one before it once. Only the newest max_samples can be kept,
        # so only they go through the loop (the others could not change a kept weight): a burst of
        # thousands of startups costs at most 64 steps of 64, and the weights are bit-identical.
        keep = self.max_samples
        fresh = new[-keep:]
        room = keep - len(fresh)
        samples = list(self.samples[-room:]) if room > 0 else []
        for d in fresh:
            samples = [(s, w * self.decay) for s, w in samples]
            samples.append((d, 1.0))
        return StartupEstimate(tuple(samples), self.prior_seconds, self.quantile, self.decay, self.max_samples)

    def _quantile(self) -> float:
        """The weighted ``quantile`` of the samples, or the prior when there are none."""
        if not self.samples:
            return self.prior_seconds
        ordered = sorted(self.samples)
        total = sum(w for _, w in ordered)
        threshold = self.quantile * total
        acc = 0.0
        for seconds, weight in ordered:
            acc += weight
            if acc >= threshold - 1e-12:
                return seconds
        return ordered[-1][0]


def lead_seconds(*, startup_seconds: float, lag_seconds: float, tick_seconds: float) -> float:
    """``startup + metrics lag + one tick``: when a pod ordered now could first serve, in load-age terms."""
    return max(0.0, startup_seconds) + max(0.0, lag_seconds) + max(0.0, tick_seconds)
