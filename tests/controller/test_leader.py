"""Leader election: two controller replicas against one Kubernetes API server, short lease timings.

Real parts: the API test server over HTTP (Lease reads and writes through
``kubernetes_asyncio.leaderelection``), a real Prometheus with the load backfilled
around now, the wall clock (the election library reads ``time.time``). Each replica's
Kubernetes adapter records the scale PATCHes it issued, and the server records every
PATCH it received, so "which replica wrote" is known for every write.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from controller import leader, loop
from controller.adapters import kube
from controller.adapters.prometheus import PrometheusMetricsSource
from controller.clock import SystemClock
from controller.server import DecisionLog, Health
from controller.settings import ControllerSettings
from controller.sim import kubeapi, promharness
from controller.telemetry import Telemetry

pytestmark = pytest.mark.usefixtures("no_leftover_tasks")

TIMINGS = leader.LeaseTimings(lease_duration_seconds=3, renew_deadline_seconds=2, retry_period_seconds=1)


@pytest.fixture(scope="module")
def prom():
    server = promharness.PrometheusServer(scrape_interval_seconds=60)
    now = time.time()
    t = np.arange(now - 3600, now + 1800, 15.0)
    server.backfill([promharness.gauge_series("demand", {"namespace": "default", "workload": "web"}, t, np.full(t.shape, 5.0))])
    server.start()
    yield server
    server.close()


def settings(prom_url: str) -> ControllerSettings:
    return ControllerSettings.from_yaml(f"""
loop: {{interval_seconds: 0.2, default_mode: active}}
metrics:
  prometheus_url: {prom_url}
  load_query: 'sum(demand{{namespace="$namespace",workload="$name"}})'
forecast: {{model: naive, history_days: 1}}
replicas:
  behavior:
    scale_up: {{policies: [{{type: Pods, value: 4, period_seconds: 1}}]}}
workloads: [{{namespace: default, name: web}}]
""")


@dataclass
class Replica:
    name: str
    api: object
    elector: leader.LeaderElector
    controller: loop.Controller
    metrics: PrometheusMetricsSource
    patches: list[float] = field(default_factory=list)  # monotonic times of this replica's successful scale PATCHes
    tasks: list[asyncio.Task] = field(default_factory=list)
    dead: bool = False

    async def kill(self) -> None:
        """A crash: stop everything at once, release nothing."""
        if self.dead:
            return
        self.dead = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.metrics.aclose()
        await self.api.close()


async def start_replica(name: str, server: kubeapi.KubeApiServer, prom_url: str) -> Replica:
    api = server.api_client()
    patches: list[float] = []

    def on_call(call: kube.ApiCall) -> None:
        if call.operation == "patch_scale" and call.status is None:
            patches.append(time.monotonic())

    telemetry = Telemetry(CollectorRegistry())
    elector = leader.LeaderElector(api, name="scaleahead", namespace="default", identity=name, timings=TIMINGS,
                                   on_change=telemetry.set_leader)  # fmt: skip
    metrics = PrometheusMetricsSource(prom_url, timeout_seconds=2, retries=0)
    controller = loop.Controller(
        settings(prom_url), clock=SystemClock(), metrics=metrics, kube=kube.KubeAdapter(api, on_call=on_call),
        telemetry=telemetry, health=Health(), decisions=DecisionLog(), may_act=elector.is_leading,
    )  # fmt: skip
    replica = Replica(name, api, elector, controller, metrics, patches)
    replica.tasks = [asyncio.create_task(elector.run()), asyncio.create_task(controller.run())]
    return replica


async def wait_for(predicate, timeout: float) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "timed out"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def replicas(server) -> int:
    return server.get("deployments", "default", "web")["spec"]["replicas"]


async def test_only_the_leader_acts_and_the_other_takes_over_when_it_dies(prom):
    async with kubeapi.KubeApiServer(pod_startup_seconds=0.2) as server:
        server.put(kubeapi.make_deployment("web", replicas=2))
        a = await start_replica("replica-a", server, prom.url)
        await wait_for(a.elector.is_leading, 6)
        b = await start_replica("replica-b", server, prom.url)
        try:
            await wait_for(lambda: replicas(server) == 8, 10)
            await asyncio.sleep(1.0)
            assert a.patches and not b.patches
            assert not b.elector.is_leading()

            # The leader dies without releasing the lease; someone scales the target down.
            await a.kill()
            killed = time.monotonic()
            server.put({**server.get("deployments", "default", "web"), "spec": {
                **server.get("deployments", "default", "web")["spec"], "replicas": 2}})  # fmt: skip
            # within a lease and two retries, plus 2 s for a loaded machine's late wake-ups
            bound = TIMINGS.lease_duration_seconds + 2 * TIMINGS.retry_period_seconds + 2
            took_over = await wait_for(b.elector.is_leading, bound)
            assert took_over <= bound
            # and not before the lease could have expired: renewed at most a retry before the kill
            assert took_over >= TIMINGS.lease_duration_seconds - TIMINGS.retry_period_seconds - 0.5
            await wait_for(lambda: replicas(server) == 8, 10)
            assert b.patches and min(b.patches) > killed
            assert max(a.patches) < killed
            # every scale PATCH the server accepted was issued by exactly one of the two
            accepted = [r for r in server.requests_to("PATCH", "*/deployments/web/scale") if r.status == 200]
            assert len(accepted) == len(a.patches) + len(b.patches)
        finally:
            await b.kill()
            await a.kill()


async def test_a_leader_that_cannot_renew_stops_acting_before_its_lease_expires(prom):
    async with kubeapi.KubeApiServer(pod_startup_seconds=0.2) as server:
        server.put(kubeapi.make_deployment("web", replicas=2))
        a = await start_replica("replica-a", server, prom.url)
        try:
            await wait_for(a.elector.is_leading, 6)
            await wait_for(lambda: replicas(server) == 8, 10)
            last_renew = a.elector._last_renew
            # Lease renewals fail (the API server refuses every Lease write) for longer than the lease.
            server.faults.fail_for(TIMINGS.lease_duration_seconds + 2, status=500, method="PUT", path="*/leases/*")
            await wait_for(lambda: not a.elector.is_leading(), TIMINGS.lease_duration_seconds + 1)
            stopped = [t for t, leading in a.elector.transitions if not leading][-1]
            last_renew = a.elector._last_renew
            assert stopped - last_renew < TIMINGS.lease_duration_seconds  # stopped before the lease could expire
            assert stopped - last_renew >= TIMINGS.renew_deadline_seconds - 0.5
            # while not leading, it does not write
            server.put({**server.get("deployments", "default", "web"), "spec": {
                **server.get("deployments", "default", "web")["spec"], "replicas": 2}})  # fmt: skip
            n = len(a.patches)
            await asyncio.sleep(1.0)
            if not a.elector.is_leading():
                assert len(a.patches) == n
            # once the API server accepts Lease writes again, it leads (and acts) again
            await wait_for(a.elector.is_leading, 8)
            await wait_for(lambda: replicas(server) == 8, 10)
        finally:
            await a.kill()


async def test_lease_requests_are_reported_with_the_status_of_a_failed_write():
    async with kubeapi.KubeApiServer() as server:
        api = server.api_client()
        calls: list[kube.ApiCall] = []
        elector = leader.LeaderElector(api, name="scaleahead", namespace="default", identity="replica-a", timings=TIMINGS,
                                       on_call=calls.append)  # fmt: skip
        task = asyncio.create_task(elector.run())
        try:
            await wait_for(elector.is_leading, 6)
            assert ("read_lease", 404) in [(c.operation, c.status) for c in calls]  # no Lease yet
            assert ("create_lease", None) in [(c.operation, c.status) for c in calls]
            server.faults.fail_next(1, status=500, method="PUT", path="*/leases/*")
            await wait_for(lambda: ("update_lease", 500) in [(c.operation, c.status) for c in calls], 6)
            await wait_for(lambda: ("update_lease", None) in [(c.operation, c.status) for c in calls], 6)
            assert all(c.target == "default/scaleahead" and c.duration_seconds >= 0 for c in calls)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await api.close()
