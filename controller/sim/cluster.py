"""The simulated cluster of one workload, and the fake adapters that implement the ports on it.

Physics of BENCHMARK.md section 2: a pod created at tick i becomes ready at tick
``i + startup_ticks`` (or, in the log-normal variant, after its own seeded draw of
``median * exp(0.3 * Z)`` seconds, rounded up to whole ticks); scale-down removes
not-yet-ready pods first, youngest first, then ready pods.

The fakes (``SimClock``, ``SimMetrics``, ``SimPods``, ``SimActuator``) implement
``controller.ports``; they read and write this cluster and record every call, so
the same policy code that runs live runs here. ``SimMetrics`` refuses any read
past the simulated present: a policy cannot see the future through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from controller.decide.baseline import scale_in_split
from controller.domain import Reason, Sample, WorkloadRef
from controller.sim.scenario import TICK_SECONDS

#: BENCHMARK.md section 2: the log-normal startup variant has sigma 0.3.
LOGNORMAL_SIGMA = 0.3


class FutureReadError(RuntimeError):
    """A policy asked the simulated metrics for a time after the simulated present."""


@dataclass
class SimCluster:
    """Pods of one workload: a count of ready pods and the ready ticks of starting ones (creation order)."""

    startup_seconds: float
    startup_distribution: str = "fixed"  # "fixed" | "lognormal"
    seed: int = 0
    tick: int = 0
    ready: int = 0
    starting: list[int] = field(default_factory=list)
    pods_created: int = 0
    #: (ready tick, startup ticks) of every pod that became ready, in order.
    readiness: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.startup_distribution not in ("fixed", "lognormal"):
            raise ValueError(f"unknown startup distribution {self.startup_distribution!r}")
        if self.seed < 0:  # numpy's own message ("expected non-negative integer") names no seed
            raise ValueError(f"the seed of the startup draws must be a non-negative integer, got {self.seed}")
        self._rng = np.random.default_rng(self.seed)
        self._created: list[int] = []  # creation tick of each starting pod, parallel to ``starting``
        self._fixed_ticks = max(0, math.ceil(self.startup_seconds / TICK_SECONDS - 1e-9))

    @property
    def replicas(self) -> int:
        """``spec.replicas``: every pod that exists, ready or starting."""
        return self.ready + len(self.starting)

    def advance(self, tick: int) -> None:
        """Move the clock to ``tick``; pods whose ready tick has come become ready."""
        self.tick = tick
        if self.starting:
            still = []
            for i, r in enumerate(self.starting):
                if r > tick:
                    still.append(r)
                else:
                    self.readiness.append((r, r - self._created[i]))
            if len(still) != len(self.starting):
                self._created = [c for c, r in zip(self._created, self.starting) if r > tick]
            self.ready += len(self.starting) - len(still)
            self.starting = still

    def _startup_ticks(self) -> int:
        if self.startup_distribution == "fixed":
            return self._fixed_ticks
        seconds = self.startup_seconds * math.exp(LOGNORMAL_SIGMA * float(self._rng.standard_normal()))
        return max(0, math.ceil(seconds / TICK_SECONDS - 1e-9))

    def set_replicas(self, replicas: int) -> None:
        """Create or remove pods at the current tick to reach ``replicas``."""
        replicas = max(0, int(replicas))
        diff = replicas - self.replicas
        if diff > 0:
            for _ in range(diff):
                ticks = self._startup_ticks()
                self.pods_created += 1
                if ticks == 0:
                    self.ready += 1
                    self.readiness.append((self.tick, 0))
                else:
                    self.starting.append(self.tick + ticks)
                    self._created.append(self.tick)
        elif diff < 0:
            # Not-yet-ready pods go first, youngest (last created) first: the rule the
            # counterfactuals' pods follow too.
            from_starting, from_ready = scale_in_split(-diff, len(self.starting))
            if from_starting:
                del self.starting[len(self.starting) - from_starting :]
                del self._created[len(self._created) - from_starting :]
            self.ready -= from_ready


class SimClock:
    """The ``Clock`` port on simulated time; ``sleep`` advances it without waiting."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


class SimMetrics:
    """The ``MetricsSource`` port over a precomputed observation series on the tick grid.

    ``observed[i]`` is what a ``rate()[1m]`` with one scrape of lag shows at tick i
    (``Scenario.observed``). Reads after the clock's present raise ``FutureReadError``.
    """

    def __init__(self, *, clock: SimClock, t0: float, observed: np.ndarray) -> None:
        self._clock = clock
        self._t0 = t0
        self._observed = observed
        self.calls = 0

    async def instant(self, query: str, at: float) -> Sample | None:
        self.calls += 1
        if at > self._clock.t + 1e-6:
            raise FutureReadError(f"metrics read at {at} after the simulated present {self._clock.t}")
        i = int(round((at - self._t0) / TICK_SECONDS))
        if i < 0:
            return None
        value = float(self._observed[i])
        if not math.isfinite(value):
            return None
        return Sample(value, at)


class SimPods:
    """The ``PodCounter`` port on the simulated cluster."""

    def __init__(self, cluster: SimCluster, *, t0: float) -> None:
        self._cluster = cluster
        self._t0 = t0
        self._seen = 0  # readiness events already returned once (they are only ever appended)

    async def pod_counts(self, target: WorkloadRef) -> tuple[int, int]:
        return self._cluster.ready, len(self._cluster.starting)

    async def recent_startups(self, target: WorkloadRef, *, since: float) -> list[tuple[float, float]]:
        events = self._cluster.readiness
        # Fast path for the usual caller, which asks for what is new since its last call.
        start = self._seen
        while start > 0 and self._t0 + events[start - 1][0] * TICK_SECONDS > since:
            start -= 1
        out = [(self._t0 + r * TICK_SECONDS, s * TICK_SECONDS) for r, s in events[start:]]
        self._seen = len(events)
        return [e for e in out if e[0] > since]


@dataclass(frozen=True, slots=True)
class SimActuationResult:
    applied: bool
    replicas: int


class SimActuator:
    """The ``ReplicaActuator`` port on the simulated cluster; records every change."""

    def __init__(self, cluster: SimCluster) -> None:
        self._cluster = cluster
        self.calls: list[tuple[int, int, Reason]] = []  # (tick, replicas, reason)

    async def current_replicas(self, target: WorkloadRef) -> int:
        return self._cluster.replicas

    async def scale(self, target: WorkloadRef, replicas: int, reason: Reason) -> SimActuationResult:
        self.calls.append((self._cluster.tick, replicas, reason))
        self._cluster.set_replicas(replicas)
        return SimActuationResult(True, self._cluster.replicas)
