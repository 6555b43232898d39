"""Policies: one reconcile of one workload, through the ports.

A policy observes (metrics and pods), asks a pure planner for a ``Plan``, keeps
the returned state, and acts through the actuator only when the count changes
(compare before writing). The live loop and the simulator call the very same
``reconcile``; only the adapters behind the ports differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from controller.decide import hpa
from controller.domain import ControllerState, Decision, Observation, WorkloadRef
from controller.ports import Clock, MetricsSource, PodCounter, ReplicaActuator


@dataclass(frozen=True)
class PolicyPorts:
    """The ports a policy works through."""

    clock: Clock
    metrics: MetricsSource
    pods: PodCounter
    actuator: ReplicaActuator


class Policy(Protocol):
    """One workload's controller: ``reconcile`` runs once per tick."""

    name: str

    async def reconcile(self, target: WorkloadRef) -> Decision:
        """Observe ``target``, decide, and act; return the decision (``scale`` or ``no-op``)."""
        ...


class HpaPolicy:
    """The HorizontalPodAutoscaler (``controller.decide.hpa``) behind the ports.

    Args:
        ports: where to observe and act.
        params: the HPA's spec and flags.
        query: the load query (PromQL live; ignored by the simulator's single series).
    """

    name = "hpa"

    def __init__(self, ports: PolicyPorts, params: hpa.HpaParams, *, query: str = "") -> None:
        self._ports = ports
        self._params = params
        self._query = query
        self.state = ControllerState()

    async def reconcile(self, target: WorkloadRef) -> Decision:
        ports = self._ports
        now = ports.clock.now()
        sample = await ports.metrics.instant(self._query, now)
        ready, starting = await ports.pods.pod_counts(target)
        current = await ports.actuator.current_replicas(target)
        obs = Observation(now, None if sample is None else sample.value, ready, starting, current)
        result = hpa.plan(obs, self._params, self.state, now, target=target.name)
        self.state = result.state
        decision = result.decisions[0]
        if decision.to_value != current:
            await ports.actuator.scale(target, decision.to_value, decision.reason)
        return decision
