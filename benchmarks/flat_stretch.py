"""A load that stays flat for days, then moves again: how each policy serves the days around it.

The trace is built from NASA-HTTP July 1995 (../shared/traces/, 1-minute): its first three days,
then two days at exactly the last value of the third (an idle service: a metric that does not
move), then its next three days. It is simulated through ``scaleahead simulate``'s own code
(``simcli.simulate_all``, the benchmark's scenario and cluster) with ``hpa`` and ``scaleahead``,
and the figures are printed per simulated day: unserved demand (% of the day's demand) and
pod-hours, then the unserved pod-ticks in each quarter-hour of the first two hours after the
flat days. The whole run is scored, warm-up included, because the flat days fall in it.

What it shows (docs/policy.md, step 3): the forecaster's empirical error quantiles must not be
made of the flat days' zeros, or the band has no width for hours after the load moves again.

Usage: python benchmarks/flat_stretch.py [--traces-dir ../shared/traces] [--startup-seconds 120]
                                         [--flat-value last|zero]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.sim import engine  # noqa: E402
from controller.sim.scenario import TICK_SECONDS, scenario_from_trace  # noqa: E402
from controller.sim.traces import load_trace  # noqa: E402
from controller.simcli import simulate_all  # noqa: E402

DAY_MINUTES = 1440
BEFORE_DAYS, FLAT_DAYS, AFTER_DAYS = 3, 2, 3


def build_trace(source: Path, out: Path, *, flat_value: str) -> None:
    data = np.genfromtxt(source, delimiter=",", names=True)
    values, t0 = data["value"], int(data["timestamp"][0])
    before = values[: BEFORE_DAYS * DAY_MINUTES]
    after = values[BEFORE_DAYS * DAY_MINUTES : (BEFORE_DAYS + AFTER_DAYS) * DAY_MINUTES]
    level = before[-1] if flat_value == "last" else 0.0
    series = np.concatenate([before, np.full(FLAT_DAYS * DAY_MINUTES, level), after])
    if not np.isfinite(series).all():
        raise SystemExit(f"{source}: missing values in the days used")
    with out.open("w") as f:
        f.write("timestamp,value\n")
        f.writelines(f"{t0 + 60 * i},{v:g}\n" for i, v in enumerate(series))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces-dir", default=str(ROOT.parent / "shared" / "traces"))
    ap.add_argument("--startup-seconds", type=float, default=120.0)
    ap.add_argument("--flat-value", choices=("last", "zero"), default="last",
                    help="the flat days hold the third day's last value (default) or no load at all")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trace_file = Path(tmp) / "nasa_flat.csv"
        build_trace(Path(args.traces_dir) / "nasa_http_jul95.csv", trace_file, flat_value=args.flat_value)
        scenario = scenario_from_trace(load_trace(str(trace_file)))
    config = engine.SimConfig(startup_seconds=args.startup_seconds)
    results = simulate_all([scenario], ["hpa", "scaleahead"], config)
    day = int(DAY_MINUTES * 60 / TICK_SECONDS)
    days = BEFORE_DAYS + FLAT_DAYS + AFTER_DAYS
    print(f"NASA days 1-{BEFORE_DAYS}, {FLAT_DAYS} flat days ({args.flat_value} value), NASA days "
          f"{BEFORE_DAYS + 1}-{BEFORE_DAYS + AFTER_DAYS}; startup {args.startup_seconds:g} s\n")
    print("| policy | " + " | ".join(f"day {i + 1}" for i in range(days)) + " |")
    print("|---|" + "---:|" * days)
    resumed = (BEFORE_DAYS + FLAT_DAYS) * day
    quarter = int(900 / TICK_SECONDS)
    after: dict[str, str] = {}
    for r in results:
        unserved = np.maximum(0.0, r.demand - r.ready)
        pods = r.ready + r.starting
        cells = []
        for i in range(days):
            part = slice(i * day, (i + 1) * day)
            demand = float(r.demand[part].sum())
            pct = 100 * float(unserved[part].sum()) / demand if demand > 0 else 0.0
            cells.append(f"{pct:.3f}% / {float(pods[part].sum()) * TICK_SECONDS / 3600:.0f}")
        print(f"| {r.score.policy} | " + " | ".join(cells) + " |")
        after[r.score.policy] = " ".join(f"{float(unserved[resumed + j * quarter : resumed + (j + 1) * quarter].sum()):.1f}"
                                         for j in range(8))
    print("\n(unserved % of the day's demand / pod-hours)\n\nunserved pod-ticks per quarter-hour after the flat days:")
    for policy, text in after.items():
        print(f"  {policy:>10}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
