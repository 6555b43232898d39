"""``scaleahead run`` as a process: it leads, serves its endpoints, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import yaml

from controller.sim import kubeapi
from controller.sim.promharness import free_port

ROOT = Path(__file__).resolve().parents[2]


async def wait_for(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_sigterm_stops_the_controller_gracefully_and_releases_its_lease(tmp_path):
    async with kubeapi.KubeApiServer() as server:
        server.put(kubeapi.make_deployment("web", namespace="shop", replicas=3))
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(server.kubeconfig()))
        dead_prometheus = f"http://127.0.0.1:{free_port()}"  # no Prometheus: the loop must hold, not fail
        settings = tmp_path / "config.yaml"
        settings.write_text(yaml.safe_dump({
            "loop": {"interval_seconds": 1, "default_mode": "active"},
            "metrics": {"prometheus_url": dead_prometheus, "timeout_seconds": 1},
            "workloads": [{"namespace": "shop", "name": "web"}],
        }))
        port = free_port()
        env = {**os.environ, "POD_NAME": "scaleahead-0", "POD_NAMESPACE": "scaleahead"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "controller", "run", "--settings", str(settings), "--kubeconfig", str(kubeconfig),
            "--listen", f"127.0.0.1:{port}", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            async with aiohttp.ClientSession() as http:

                async def healthy():
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                            return r.status == 200
                    except aiohttp.ClientError:
                        return False

                await wait_for(healthy, timeout=30, what="/healthz")

                def lease():
                    return server.get("leases", "scaleahead", "scaleahead")

                async def leading():
                    held = lease()
                    return held is not None and held["spec"].get("holderIdentity") == "scaleahead-0"

                await wait_for(leading, timeout=30, what="the lease")

                async def metrics_say_leader():
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                        return "scaleahead_leader 1.0" in await r.text()

                await wait_for(metrics_say_leader, timeout=10, what="scaleahead_leader 1")
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), timeout=20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        output = (await proc.stdout.read()).decode()
        assert code == 0, output
        # the lease was given up, so a follower need not wait for it to expire
        assert not lease()["spec"].get("holderIdentity"), json.dumps(lease())
        # and the logs are JSON lines that say why it stopped
        lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert lines, output
        assert any("stop" in line.get("message", "").lower() or "released" in line.get("message", "") for line in lines), output
