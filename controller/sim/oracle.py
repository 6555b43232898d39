"""The perfect-foresight oracle of BENCHMARK.md section 3, as a policy.

It is the one policy allowed to see the future: it is handed the whole demand
series and sets the replica count to ``alive(i)`` at every tick. Its pods start
in exactly ``startup_seconds`` in every variant (it is the physical limit, not a
policy exposed to startup noise), so from the end of the first startup interval
on it never leaves demand unserved and its pod-hours equal the formula.
"""

from __future__ import annotations

import numpy as np

from controller.domain import Decision, Reason, WorkloadRef
from controller.policies import PolicyPorts
from controller.sim.scenario import TICK_SECONDS


class OraclePolicy:
    """Sets ``spec.replicas`` to the precomputed perfect-foresight schedule."""

    name = "oracle"

    def __init__(self, ports: PolicyPorts, *, t0: float, alive: np.ndarray) -> None:
        self._ports = ports
        self._t0 = t0
        self._alive = alive

    async def reconcile(self, target: WorkloadRef) -> Decision:
        ports = self._ports
        i = int(round((ports.clock.now() - self._t0) / TICK_SECONDS))
        current = await ports.actuator.current_replicas(target)
        desired = int(self._alive[min(i, len(self._alive) - 1)])
        if desired != current:
            await ports.actuator.scale(target, desired, Reason.PerfectForesight)
        kind = "scale" if desired != current else "no-op"
        return Decision(kind, target.name, current, desired, Reason.PerfectForesight, "perfect-foresight schedule")
