"""Per-tick overhead of the control loop with 200 managed workloads (bar: under 1 s per tick).

Setup, all real except the cluster: the Kubernetes API test server in its own process
(``python -m controller.sim.kubeapi``, as an API server is another process), 200
Deployments created over HTTP with 3 pods each, and a real Prometheus with each
workload's load backfilled around now. The controller runs its real adapters over HTTP
in ``active`` mode; the load is steady, so each tick reads everything and writes nothing.

Measured: the wall time of ``Controller.tick()`` after a warm-up tick (which reads the
state annotations, checks conflicts and primes the history). Model refits are excluded:
the model is ``naive`` and no refit comes due during the run.

Run: ``.venv/bin/python benchmarks/loop_overhead.py [--workloads 200] [--ticks 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from prometheus_client import CollectorRegistry

from controller import loop
from controller.adapters.kube import KubeAdapter
from controller.adapters.prometheus import PrometheusMetricsSource
from controller.clock import SystemClock
from controller.server import DecisionLog, Health
from controller.settings import ControllerSettings
from controller.sim import kubeapi, promharness
from controller.telemetry import Telemetry

NS = "bench"


async def main(n_workloads: int, n_ticks: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        port = promharness.free_port()
        api_proc = subprocess.Popen(
            [sys.executable, "-m", "controller.sim.kubeapi", "--port", str(port), "--pod-startup-seconds", "0",
             "--kubeconfig", str(kubeconfig)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        prom = promharness.PrometheusServer(scrape_interval_seconds=60)
        try:
            assert api_proc.stdout is not None
            print(api_proc.stdout.readline().strip(), file=sys.stderr)
            now = time.time()
            t = np.arange(now - 3600, now + 3600, 15.0)
            names = [f"w{i:03d}" for i in range(n_workloads)]
            prom.backfill([promharness.gauge_series("demand", {"namespace": NS, "workload": n}, t, np.full(t.shape, 2.0))
                           for n in names])  # fmt: skip
            prom.start()
            configuration = k8s.Configuration()
            await k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
            async with k8s.ApiClient(configuration) as api:
                apps = k8s.AppsV1Api(api)
                await asyncio.gather(*(apps.create_namespaced_deployment(NS, kubeapi.make_deployment(n, namespace=NS, replicas=3))
                                       for n in names))  # fmt: skip
                text = yaml.safe_dump({
                    "loop": {"interval_seconds": 15, "default_mode": "active", "max_concurrent_workloads": 16},
                    "metrics": {"prometheus_url": prom.url, "load_query": 'sum(demand{namespace="$namespace",workload="$name"})'},
                    "forecast": {"model": "naive", "history_days": 1},
                    "workloads": [{"namespace": NS, "name": n} for n in names],
                })  # fmt: skip
                telemetry = Telemetry(CollectorRegistry())
                metrics = PrometheusMetricsSource(prom.url, on_request=telemetry.record_prometheus, max_concurrency=16)
                controller = loop.Controller(
                    ControllerSettings.from_yaml(text), clock=SystemClock(), metrics=metrics,
                    kube=KubeAdapter(api, on_call=telemetry.record_kube), telemetry=telemetry, health=Health(),
                    decisions=DecisionLog(),
                )  # fmt: skip
                started = time.perf_counter()
                await controller.tick()
                warmup = time.perf_counter() - started
                durations = []
                for _ in range(n_ticks):
                    started = time.perf_counter()
                    await controller.tick()
                    durations.append(time.perf_counter() - started)
                await metrics.aclose()
                failing = [label for label, m in controller.managed().items() if m["failures"]]
        finally:
            api_proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                api_proc.wait(5)
            prom.close()
    median = statistics.median(durations)
    print(f"workloads: {n_workloads}  ticks: {n_ticks}  warm-up tick: {warmup:.3f} s")
    print(f"tick duration: median {median:.3f} s  mean {statistics.mean(durations):.3f} s  max {max(durations):.3f} s")
    print(f"per workload: {1000 * median / n_workloads:.2f} ms   failing workloads: {len(failing)}")
    verdict = "PASS" if median < 1.0 and not failing else "FAIL"
    print(f"{verdict}: loop overhead per tick {median:.3f} s (bar: < 1 s)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=200)
    parser.add_argument("--ticks", type=int, default=10)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.workloads, args.ticks)))
