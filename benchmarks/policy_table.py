"""Score policies on every trace of ../shared/traces with `scaleahead simulate --json`, and print tables.

For each startup setting (fixed 30 / 120 / 300 s and the log-normal variant at 120 s
by default) it runs one `scaleahead simulate` process over all traces and prints a
Markdown table per setting: unserved %, pod-hours, cost ratio and scale actions per
trace and policy. The commands it ran are printed above each table so that anyone
can reproduce a row.

Usage: python benchmarks/policy_table.py [--traces-dir ../shared/traces] [--policy hpa,oracle]
                                         [--settings fixed:30,fixed:120,fixed:300,lognormal:120]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(traces: list[Path], policy: str, distribution: str, startup: float) -> list[dict]:
    cmd = [sys.executable, "-m", "controller", "simulate", "--trace", *map(str, traces), "--policy", policy,
           "--startup-seconds", f"{startup:g}", "--startup-distribution", distribution, "--json", "--no-progress"]
    shown = " ".join(["scaleahead", *cmd[3:]]).replace(str(ROOT.parent) + "/", "../")
    print(f"$ {shown}")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def table(rows: list[dict]) -> str:
    lines = ["| trace | policy | unserved % | underprov. time % | pod-hours | cost ratio | scale actions | wall s |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['trace']} | {r['policy']} | {r['unserved_pct']:.3f} | {r['underprovisioned_time_pct']:.2f} | "
                     f"{r['pod_hours']:.1f} | {r['cost_ratio']:.3f} | {r['scale_actions']} | {r['wall_seconds']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces-dir", default=str(ROOT.parent / "shared" / "traces"))
    ap.add_argument("--policy", default="hpa,oracle")
    ap.add_argument("--settings", default="fixed:30,fixed:120,fixed:300,lognormal:120")
    args = ap.parse_args()
    traces = sorted(Path(args.traces_dir).glob("*.csv"))
    if not traces:
        print(f"no traces in {args.traces_dir}", file=sys.stderr)
        return 2
    for setting in args.settings.split(","):
        distribution, startup = setting.split(":")
        rows = run(traces, args.policy, distribution, float(startup))
        print(f"\n### startup {startup} s, {distribution}\n")
        print(table(rows))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
