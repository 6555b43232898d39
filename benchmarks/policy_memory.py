"""Memory the live loop holds per managed workload, with the default settings.

Each workload gets the live loop's own policy (``controller.loop.build_predictive_policy``
with the default ``ControllerSettings``: the ``auto`` model, 14 days of history at the
15-s loop interval), primed as the loop primes it from Prometheus: 14 days of 15-s points
(80,640), here NASA-HTTP July 1995 (../shared/traces/, 1-minute) interpolated to 15 s and
scaled to about 20 pods at its peak. Priming fits the first model, so what is measured is a
workload as it stands after its first fit, when the largest buffers (the load history and each
candidate's day of errors per horizon) are allocated in full.
Not measured: what ticks add later, the shadow HPA's and the rungs' counterfactual pods and a
tally per day for ``forecast.reference_days`` (a few numbers per pod and per day).

Measured twice, on ``--workloads`` policies each time, after one primed first and not counted
(the first fit imports and caches what every later one shares): the growth of the process's
resident size (``/proc/self/statm``; what the allocator took from the system), and with
``tracemalloc`` the memory Python still holds, with the share of it in numpy arrays by owner
(the policy's load history, the fitted model, the rest). The resident size of the process with
the live controller's imports (``controller.runcli``) and one workload is printed too.

Usage: python benchmarks/policy_memory.py [--traces-dir ../shared/traces] [--workloads 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import sys
import time
import tracemalloc
import types
from pathlib import Path

import numpy as np

from controller import loop, runcli  # noqa: F401 - runcli: the live controller's imports, in the base size
from controller.policies import PolicyPorts
from controller.settings import ControllerSettings

ROOT = Path(__file__).resolve().parents[1]
DAYS = 14


def history(source: Path, step: float) -> tuple[np.ndarray, np.ndarray]:
    """14 days of the trace at ``step`` seconds, ending now, in load units (capacity 1 per pod)."""
    data = np.genfromtxt(source, delimiter=",", names=True)
    t, v = data["timestamp"].astype(float), data["value"].astype(float)
    grid = t[0] + np.arange(0.0, DAYS * 86400.0, step)
    values = np.interp(grid, t, v)
    values *= 20.0 / np.nanmax(values)
    return grid - grid[-1] + time.time(), values


# Not per-workload state: code, classes and modules (a function's globals would reach every module).
_NOT_STATE = (type, str, bytes, int, float, types.FunctionType, types.MethodType, types.ModuleType, types.BuiltinFunctionType)


def resident_bytes() -> int:
    """The process's resident size now (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def array_bytes(root: object) -> int:
    """Bytes of the numpy arrays reachable from ``root`` (each array once, views not counted twice)."""
    seen: set[int] = set()
    bases: set[int] = set()
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _NOT_STATE):
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            base = obj
            while isinstance(base.base, np.ndarray):
                base = base.base
            if id(base) not in bases:
                bases.add(id(base))
                total += base.nbytes
            continue
        stack.extend(gc.get_referents(obj))
    return total


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces-dir", default=str(ROOT.parent / "shared" / "traces"))
    ap.add_argument("--workloads", type=int, default=3)
    args = ap.parse_args()
    source = Path(args.traces_dir) / "nasa_http_jul95.csv"
    if not source.exists():
        print(f"missing {source}: pass --traces-dir", file=sys.stderr)
        return 2
    settings = ControllerSettings(
        workloads=[{"namespace": "bench", "name": f"w{i}"} for i in range(args.workloads)],
        metrics={"capacity_per_pod": 1.0},
    )
    times, values = history(source, settings.loop.interval_seconds)
    ports = PolicyPorts(clock=None, metrics=None, pods=None, actuator=None)  # priming does no I/O

    # One workload first, not counted: the first fit imports and caches what every later one shares.
    kept = [loop.build_predictive_policy(settings, settings.workloads[0], ports)]
    await kept[0].prime(times, values)
    gc.collect()
    base_rss = resident_bytes()
    started = time.perf_counter()
    for workload in settings.workloads:
        policy = loop.build_predictive_policy(settings, workload, ports)
        await policy.prime(times, values)
        kept.append(policy)
    elapsed = time.perf_counter() - started
    gc.collect()
    rss = resident_bytes() - base_rss

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    policies = []
    for workload in settings.workloads:
        policy = loop.build_predictive_policy(settings, workload, ports)
        steps = await policy.prime(times, values)
        policies.append(policy)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()

    p = policies[0]
    n = args.workloads
    model = array_bytes(p._model)
    hist = array_bytes(p._history)
    total_arrays = array_bytes(p)
    mib = 1024.0 * 1024.0
    print(f"policy_memory: {n} workloads, model {settings.forecast.model!r}, {steps} steps of"
          f" {settings.loop.interval_seconds:g} s history each (primed and fitted in {elapsed:.1f} s)")  # fmt: skip
    print(f"{'resident per workload':40s} {rss / n / mib:8.2f} MiB")
    print(f"{'held per workload (tracemalloc)':40s} {held / n / mib:8.2f} MiB")
    print(f"{'  in numpy arrays':40s} {total_arrays / mib:8.2f} MiB")
    print(f"{'    the policy load history':40s} {hist / mib:8.2f} MiB")
    print(f"{'    the fitted model':40s} {model / mib:8.2f} MiB")
    for name, candidate in getattr(p._model, "models_", {}).items():
        print(f"{'      candidate ' + name:40s} {array_bytes(candidate) / mib:8.2f} MiB")
    print(f"{'    the rest (forecast, planner state)':40s} {(total_arrays - model - hist) / mib:8.2f} MiB")
    print(f"{'resident, imports and one workload':40s} {base_rss / mib:8.0f} MiB")
    print(f"{'resident at 200 workloads (estimate)':40s} {(base_rss + 200 * rss / n) / mib:8.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
