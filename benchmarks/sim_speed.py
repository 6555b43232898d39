"""How long the simulator takes on a 30-day, 1-minute trace (issue #2: hpa under 15 s).

The longest real 1-minute trace, NASA-HTTP July 1995 (27.6 days, ../shared/traces/),
is repeated from its start until it spans exactly 30 days (43,200 points), written
to a temporary file, and simulated through the real command,
``scaleahead simulate --trace FILE --policy P --json``, in a fresh process. The
figure is the wall time of that whole process (start-up, reading, simulating,
scoring) and the ``wall_seconds`` the run reports for the simulation itself.

The machine's own speed varies from day to day (the same code took 51 s one evening and
68 s the next, docs/benchmarks.md), so before the runs the script also times two fixed
reference loops, one of Python arithmetic and one of small numpy operations (the kinds a
tick is made of): figures of days whose references differ are not comparable.

The scaleahead policy's forecasts are made in a second process ahead of its decisions
(``controller/sim/ahead.py``, same results); ``--forecast-inline`` times the one-process run.

Usage: python benchmarks/sim_speed.py [--traces-dir ../shared/traces] [--policy hpa] [--repeat 3] [--forecast-inline]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DAYS = 30
STEP = 60


def build_trace(source: Path, out: Path) -> int:
    data = np.genfromtxt(source, delimiter=",", names=True)
    values = data["value"]
    n = DAYS * 24 * 3600 // STEP
    reps = -(-n // len(values))
    wrapped = np.tile(values, reps)[:n]
    ts = int(data["timestamp"][0]) + STEP * np.arange(n)
    with out.open("w") as f:
        f.write("timestamp,value\n")
        for t, v in zip(ts, wrapped):
            f.write(f"{t},{v:g}\n")
    return n


def reference_seconds(repeat: int = 3) -> tuple[float, float]:
    """The median wall seconds of two fixed loops: 10**7 Python multiply-adds, and 10**5
    rounds of small numpy operations on a 14-point array (a sort, a max and an add)."""
    python, small = [], []
    a = np.linspace(0.0, 1.0, 14)
    for _ in range(repeat):
        t0 = time.perf_counter()
        s = 0
        for i in range(10**7):
            s += i * i
        python.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(10**5):
            np.sort(a).max() + (a + 1.0)[0]
        small.append(time.perf_counter() - t0)
    return statistics.median(python), statistics.median(small)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces-dir", default=str(ROOT.parent / "shared" / "traces"))
    ap.add_argument("--policy", default="hpa")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--forecast-inline", action="store_true",
                    help="scaleahead's forecasts in the simulating process, not in a second one (simulate --forecast-inline)")
    args = ap.parse_args()
    source = Path(args.traces_dir) / "nasa_http_jul95.csv"
    if not source.exists():
        print(f"missing {source}: pass --traces-dir", file=sys.stderr)
        return 2
    python_ref, numpy_ref = reference_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "nasa_30d_1min.csv"
        n = build_trace(source, trace)
        cmd = [sys.executable, "-m", "controller", "simulate", "--trace", str(trace), "--policy", args.policy, "--json", "--no-progress"]
        if args.forecast_inline:
            cmd.append("--forecast-inline")
        walls, sims = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT, env={**os.environ})
            walls.append(time.perf_counter() - t0)
            sims.append(json.loads(out.stdout.splitlines()[0])["wall_seconds"])
    print(f"trace: NASA-HTTP Jul 1995 wrapped to {DAYS} days at {STEP}-s step ({n} points, {n * STEP // 15} ticks of 15 s)")
    inline = "; forecasts inline (one process)" if args.forecast_inline else ""
    print(f"policy: {args.policy}; runs: {args.repeat}{inline}")
    print(f"machine reference: python loop {python_ref:.2f} s, small numpy loop {numpy_ref:.2f} s (medians of 3, before the runs)")
    print(f"process wall seconds: median {statistics.median(walls):.2f} (min {min(walls):.2f}, max {max(walls):.2f})")
    print(f"simulation wall_seconds: median {statistics.median(sims):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
