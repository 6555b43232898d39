"""The ports: protocols through which the loop and the policies reach the world.

Real adapters (``controller.adapters``) and the simulator's fakes
(``controller.sim``) implement the same protocols, so the code that decides never
knows which one it talks to.
"""

from __future__ import annotations

from typing import Protocol

from controller.domain import Reason, Sample, Series, WorkloadRef


class Clock(Protocol):
    """Time source. Every read of time and every sleep in the controller goes through it."""

    def now(self) -> float:
        """Return the current time in Unix seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the caller for ``seconds`` of this clock's time."""
        ...


class MetricsSource(Protocol):
    """Read access to workload metrics (Prometheus live, the simulated scrape in ``sim``)."""

    async def instant(self, query: str, at: float) -> Sample | None:
        """Evaluate ``query`` at time ``at``.

        Returns the sample with the timestamp it was evaluated at, or ``None`` when the
        result is empty, NaN or Inf. Never returns a sentinel value. Raises
        ``MetricsUnavailable`` (of the adapter) when the source cannot be asked.
        """
        ...

    async def range(self, query: str, start: float, end: float, step_seconds: float) -> Series:
        """Evaluate ``query`` every ``step_seconds`` from ``start`` to ``end`` (inclusive, Unix seconds).

        Points with no value, NaN or Inf are left out (gaps), never filled in.
        """
        ...


class PodCounter(Protocol):
    """Read access to a workload's pods."""

    async def pod_counts(self, target: WorkloadRef) -> tuple[int, int]:
        """Return ``(ready, starting)`` pod counts of ``target`` now."""
        ...

    async def recent_startups(self, target: WorkloadRef, *, since: float) -> list[tuple[float, float]]:
        """Return ``(ready_at, startup_seconds)`` of the target's pods that became Ready after ``since``.

        ``startup_seconds`` is the time from the pod's creation to its Ready condition,
        as the cluster shows it; the list is ordered by ``ready_at``. A pod's first Ready
        transition only: one that becomes Ready again later is not a startup.
        """
        ...


class ActuationResult(Protocol):
    """Outcome of an actuator call."""

    applied: bool
    replicas: int


class ReplicaActuator(Protocol):
    """The only code that changes a workload's replica count. Honours dry-run."""

    async def current_replicas(self, target: WorkloadRef) -> int:
        """Return ``spec.replicas`` of the target's scale subresource."""
        ...

    async def scale(self, target: WorkloadRef, replicas: int, reason: Reason) -> ActuationResult:
        """Set ``spec.replicas`` of ``target`` to ``replicas``; ``reason`` goes to the event and the log."""
        ...
