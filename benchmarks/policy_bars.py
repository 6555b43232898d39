"""Issue #4's bar: scaleahead against hpa (target 0.7) on every trace of ../shared/traces.

Runs `scaleahead simulate --policy hpa,scaleahead,oracle --json` (one process per
startup setting: fixed 30, 120 and 300 s, and the log-normal variant at 120 s),
prints one table per setting and then, per setting, which of the issue's
statements hold:

- on every trace, scaleahead's pod_hours and unserved_pct are no higher than hpa's;
- on at least 8 of 11 traces, unserved_pct <= max(hpa / 3, 0.05) at no more pod_hours;
- where hpa leaves at most 0.01% unserved, cost_ratio <= 1.2 with unserved_pct <= 0.01;
- scale_actions <= hpa's on at least 8 of 11 traces, and never more than 1.5 times.

Unserved percentages print with three decimals; a non-zero amount too small for them prints
in scientific notation, so that a "no" is never next to two equal-looking zeros.

Usage: python benchmarks/policy_bars.py [--traces-dir ../shared/traces] [--settings fixed:30,fixed:120,fixed:300,lognormal:120]
                                        [--save FILE.jsonl] [--load FILE.jsonl]

A setting is DISTRIBUTION:STARTUP, or DISTRIBUTION:STARTUP:previous to lay the trace rows onto
the grid with ``simulate --interpolation previous`` (each row held until the next) instead of the
contract's linear interpolation: a sensitivity check of the contract, not the issue's bar.

``--save`` writes every result line (with its setting) as JSON lines; ``--load`` prints the
tables from such a file instead of simulating.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(traces: list[Path], distribution: str, startup: float, jobs: int, interpolation: str = "linear") -> list[dict]:
    """One simulate process per trace (up to ``jobs`` at once), results in trace order."""
    rows: list[dict] = []
    pending = list(traces)
    running: list[tuple[Path, subprocess.Popen]] = []
    results: dict[Path, list[dict]] = {}
    while pending or running:
        while pending and len(running) < jobs:
            t = pending.pop(0)
            cmd = [sys.executable, "-m", "controller", "simulate", "--trace", str(t), "--policy", "hpa,scaleahead,oracle",
                   "--startup-seconds", f"{startup:g}", "--startup-distribution", distribution, "--interpolation", interpolation, "--json", "--no-progress"]
            running.append((t, subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        time.sleep(0.2)
        for t, p in list(running):
            if p.poll() is not None:
                out, err = p.communicate()
                if p.returncode:
                    raise SystemExit(f"simulate failed on {t}: {err}")
                results[t] = [json.loads(line) for line in out.splitlines() if line.strip()]
                running.remove((t, p))
    for t in traces:
        rows.extend(results[t])
    return rows


def pct(value: float) -> str:
    """An unserved percentage: three decimals, or scientific notation when non-zero but below them."""
    return f"{value:.1e}" if 0 < value < 0.0005 else f"{value:.3f}"


def check(rows: list[dict]) -> list[str]:
    by = {}
    for r in rows:
        by.setdefault(r["trace"], {})[r["policy"]] = r
    n = len(by)
    both = better = cheap_ok = cheap_n = actions_le = 0
    actions_max = 0.0
    lines = ["| trace | hpa unserved % | sa unserved % | hpa pod-h | sa pod-h | sa cost ratio | hpa actions | sa actions | no worse | 1/3 unserved | actions <= |",
             "|---|---:|---:|---:|---:|---:|---:|---:|:-:|:-:|:-:|"]
    for trace, d in by.items():
        h, s = d["hpa"], d["scaleahead"]
        no_worse = s["pod_hours"] <= h["pod_hours"] and s["unserved_pct"] <= h["unserved_pct"]
        third = s["unserved_pct"] <= max(h["unserved_pct"] / 3, 0.05) and s["pod_hours"] <= h["pod_hours"]
        both += no_worse
        better += third
        if h["unserved_pct"] <= 0.01:
            cheap_n += 1
            cheap_ok += s["cost_ratio"] <= 1.2 and s["unserved_pct"] <= 0.01
        actions_le += s["scale_actions"] <= h["scale_actions"]
        actions_max = max(actions_max, s["scale_actions"] / max(h["scale_actions"], 1))
        lines.append(f"| {trace} | {pct(h['unserved_pct'])} | {pct(s['unserved_pct'])} | {h['pod_hours']:.0f} | {s['pod_hours']:.0f} | "
                     f"{s['cost_ratio']:.3f} | {h['scale_actions']} | {s['scale_actions']} | {'yes' if no_worse else 'no'} | "
                     f"{'yes' if third else 'no'} | {'yes' if s['scale_actions'] <= h['scale_actions'] else 'no'} |")
    lines.append("")
    lines.append(f"- no worse than hpa on both axes: {both}/{n} traces (bar: {n}/{n})")
    lines.append(f"- unserved <= max(hpa/3, 0.05) at no more pod-hours: {better}/{n} (bar: 8/{n})")
    lines.append(f"- where hpa leaves <= 0.01% unserved: cost_ratio <= 1.2 and unserved <= 0.01 on {cheap_ok}/{cheap_n}")
    lines.append(f"- scale_actions <= hpa's: {actions_le}/{n} (bar: 8/{n}); worst ratio {actions_max:.2f} (bar: <= 1.5)")
    walls = [r["wall_seconds"] for r in rows if r["policy"] == "scaleahead"]
    lines.append(f"- scaleahead wall seconds per trace: max {max(walls):.1f}, median {sorted(walls)[len(walls) // 2]:.1f}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces-dir", default=str(ROOT.parent / "shared" / "traces"))
    ap.add_argument("--settings", default="fixed:30,fixed:120,fixed:300,lognormal:120")
    ap.add_argument("--jobs", type=int, default=2, help="simulate processes at once (default 2)")
    ap.add_argument("--save", type=Path, help="append every result (JSON lines, with its setting) to this file")
    ap.add_argument("--load", type=Path, help="print the tables from a --save file instead of simulating")
    args = ap.parse_args()
    traces = sorted(Path(args.traces_dir).glob("*.csv"))
    saved: dict[str, list[dict]] = {}
    if args.load:
        for line in args.load.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                saved.setdefault(row.pop("setting"), []).append(row)
    for setting in args.settings.split(","):
        parts = setting.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "previous"):
            raise SystemExit(f"--settings: {setting!r} is not DISTRIBUTION:STARTUP or DISTRIBUTION:STARTUP:previous")
        distribution, startup = parts[:2]
        interpolation = parts[2] if len(parts) == 3 else "linear"
        held = ", rows held" if interpolation == "previous" else ""
        flag = " --interpolation previous" if interpolation == "previous" else ""
        print(f"\n### startup {startup} s, {distribution}{held}: scaleahead simulate --trace <each trace> "
              f"--policy hpa,scaleahead,oracle --startup-seconds {startup} --startup-distribution {distribution}{flag} --json\n",
              flush=True)
        if args.load:
            if setting not in saved:
                raise SystemExit(f"{args.load}: no results for the setting {setting!r} (it has {', '.join(saved) or 'none'})")
            rows = saved[setting]
        else:
            rows = run(traces, distribution, float(startup), args.jobs, interpolation)
            if args.save:
                with args.save.open("a") as out:
                    out.writelines(json.dumps({"setting": setting, **row}) + "\n" for row in rows)
        print("\n".join(check(rows)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
