"""Forecast benchmark: every model on every trace, checked against the targets of issue #3.

Usage (from the repository root, one core):

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/forecast_eval.py [TRACE_DIR]

``TRACE_DIR`` defaults to ``../shared/traces`` relative to the repository. The script prints

1. the rolling-origin metrics of every model, trace and horizon (``models.evaluate``);
2. the automatic model against the accuracy and calibration targets, trace by trace, with counts;
3. fit / update / predict times on 14 days of history of each trace (medians over the traces, and over
   the 1-minute traces alone) against the cost targets.

Targets (issue #3): at 210 s the automatic model's MAE is at most 0.90 x that of the better of naive and
seasonal-naive on >= 8 of 11 traces and never above 1.0 x; 80% coverage in [75, 85]% and 95% coverage in
[92, 97]% on >= 8; pinball <= 0.85 x naive's on >= 8; on >= 8 traces at least 80% of days have their own
80% coverage in [70, 90]%; single-model fit < 0.5 s, automatic refit < 2 s, predict < 5 ms.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import models  # noqa: E402
from models import evaluate, traces  # noqa: E402

DEFAULT_TRACES = os.path.join(ROOT, "..", "shared", "traces")
TIMING_DAYS = 14


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("traces", nargs="?", default=DEFAULT_TRACES, help="directory of trace CSVs")
    parser.add_argument("--horizon-seconds", default="210,900")
    parser.add_argument("--models", default=None, help="comma-separated models (default: all)")
    parser.add_argument("--json-out", default=None, help="also write every row as JSON lines to this file")
    parser.add_argument("--skip-timing", action="store_true", help="skip the 14-day timing section")
    parser.add_argument("--skip-eval", action="store_true", help="skip the backtests (timing only)")
    return parser.parse_args(argv)


def run_backtests(files: list[str], horizons: list[float], names: list[str], json_out: str | None) -> list:
    rows = []
    sink = open(json_out, "w", encoding="utf-8") if json_out else None  # noqa: SIM115
    try:
        for path in files:
            trace = traces.read_trace(path)
            started = time.perf_counter()
            trace_rows = evaluate.evaluate_series(
                trace.values,
                name=trace.name,
                step_seconds=trace.step_seconds,
                start_seconds=trace.start_seconds,
                horizons_seconds=horizons,
                models=names,
            )
            rows.extend(trace_rows)
            print(f"# {trace.name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
            if sink:
                for row in trace_rows:
                    record = row.to_json() | {
                        "horizon_steps": row.horizon_steps,
                        "pinball_naive_ratio": row.pinball_naive_ratio,
                        "days_calibrated": row.days_calibrated,
                        "update_seconds": row.update_seconds,
                    }
                    sink.write(json.dumps(record) + "\n")
                sink.flush()
    finally:
        if sink:
            sink.close()
    return rows


def print_metrics(rows: list) -> None:
    from controller.forecastcli import print_table

    print("\n## Rolling-origin metrics (all models)\n")
    print_table(rows, sys.stdout)


def print_targets(rows: list, horizon: float) -> None:
    auto = [r for r in rows if r.model == "auto" and r.horizon_seconds == horizon]
    if not auto:
        return
    print(f"\n## Automatic model against the targets at {horizon:g} s\n")
    header = f"{'trace':26} {'steps':>5} {'MAE/best':>9} {'cov80':>7} {'cov95':>7} {'pb/naive':>9} {'days_ok':>8}"
    print(header)
    counts = {"mase": 0, "cover": 0, "pinball": 0, "days": 0}
    worst = 0.0
    for r in auto:
        best = max(r.mase_naive, r.mase_seasonal_naive)  # MAE / min(MAE naive, MAE seasonal-naive)
        worst = max(worst, best)
        ok_mase = best <= 0.90
        ok_cover = 0.75 <= r.coverage_80 <= 0.85 and 0.92 <= r.coverage_95 <= 0.97
        ok_pinball = r.pinball_naive_ratio <= 0.85
        ok_days = r.days_calibrated >= 0.80
        counts["mase"] += ok_mase
        counts["cover"] += ok_cover
        counts["pinball"] += ok_pinball
        counts["days"] += ok_days

        def mark(flag: bool) -> str:
            return "" if flag else "*"

        print(
            f"{r.trace:26} {r.horizon_steps:>5} {best:>8.3f}{mark(ok_mase):1} "
            f"{100 * r.coverage_80:>6.1f}{mark(0.75 <= r.coverage_80 <= 0.85):1}"
            f"{100 * r.coverage_95:>6.1f}{mark(0.92 <= r.coverage_95 <= 0.97):1} "
            f"{r.pinball_naive_ratio:>8.3f}{mark(ok_pinball):1} {100 * r.days_calibrated:>6.0f}%{mark(ok_days):1}"
        )
    total = len(auto)
    need = 8 if total == 11 else int(np.ceil(8 / 11 * total))
    print("\n(* = this trace misses that target)")
    print(f"MAE <= 0.90 x best baseline : {counts['mase']}/{total} (need >= {need})  "
          f"{'MET' if counts['mase'] >= need else 'NOT MET'}")
    print(f"MAE never > 1.0 x best      : worst {worst:.3f}  {'MET' if worst <= 1.0 else 'NOT MET'}")
    print(f"coverage 80% and 95% in band: {counts['cover']}/{total}  {'MET' if counts['cover'] >= need else 'NOT MET'}")
    print(f"pinball <= 0.85 x naive     : {counts['pinball']}/{total}  {'MET' if counts['pinball'] >= need else 'NOT MET'}")
    print(f">= 80% of days calibrated   : {counts['days']}/{total}  {'MET' if counts['days'] >= need else 'NOT MET'}")


def time_models(files: list[str], names: list[str], horizon_seconds: float = 210.0) -> None:
    print(f"\n## Cost on {TIMING_DAYS} days of history (one core; horizon {horizon_seconds:g} s)\n")
    fit: dict[str, dict[str, float]] = {name: {} for name in names}
    predict: dict[str, dict[str, float]] = {name: {} for name in names}
    update: dict[str, dict[str, float]] = {name: {} for name in names}
    one_minute = []
    for path in files:
        trace = traces.read_trace(path)
        points = int(TIMING_DAYS * 86400 / trace.step_seconds)
        y = trace.values[: points + 200]
        history, future = y[:-200], y[-200:]
        if trace.step_seconds <= 60:
            one_minute.append(trace.name)
        h = evaluate.horizon_steps_for(horizon_seconds, trace.step_seconds)
        for name in names:
            model = models.create(name, max_horizon_steps=h)
            started = time.perf_counter()
            model.fit(history, step_seconds=trace.step_seconds, start_seconds=trace.start_seconds)
            fit[name][trace.name] = time.perf_counter() - started
            spent_update = spent_predict = 0.0
            for value in future:
                started = time.perf_counter()
                model.update(np.array([value]))
                spent_update += time.perf_counter() - started
                started = time.perf_counter()
                model.predict(h)
                spent_predict += time.perf_counter() - started
            update[name][trace.name] = spent_update / future.size
            predict[name][trace.name] = spent_predict / future.size
        print(f"# timed {trace.name} ({history.size} points)", file=sys.stderr, flush=True)
    print(f"{'model':16} {'fit s (all)':>12} {'fit s (1-min)':>14} {'max fit s':>10} "
          f"{'update ms':>10} {'predict ms':>11} {'predict ms (1-min)':>19}")
    for name in names:
        all_fit = statistics.median(fit[name].values())
        min_fit = statistics.median([fit[name][t] for t in one_minute]) if one_minute else float("nan")
        print(
            f"{name:16} {all_fit:>12.3f} {min_fit:>14.3f} {max(fit[name].values()):>10.3f} "
            f"{1000 * statistics.median(update[name].values()):>10.3f} "
            f"{1000 * statistics.median(predict[name].values()):>11.3f} "
            f"{1000 * statistics.median([predict[name][t] for t in one_minute]) if one_minute else float('nan'):>19.3f}"
        )
    singles = [n for n in names if n != "auto"]
    worst_single = max(statistics.median(fit[n].values()) for n in singles) if singles else float("nan")
    worst_single_1m = (
        max(statistics.median([fit[n][t] for t in one_minute]) for n in singles) if singles and one_minute else float("nan")
    )
    print(f"\nslowest single-model median fit: {worst_single:.3f} s (1-min traces: {worst_single_1m:.3f} s) "
          f"target < 0.5 s: {'MET' if max(worst_single, worst_single_1m) < 0.5 else 'NOT MET'}")
    if "auto" in names:
        auto_all = statistics.median(fit["auto"].values())
        auto_1m = statistics.median([fit["auto"][t] for t in one_minute]) if one_minute else float("nan")
        print(f"automatic refit median: {auto_all:.3f} s (1-min traces: {auto_1m:.3f} s) "
              f"target < 2 s: {'MET' if max(auto_all, auto_1m) < 2.0 else 'NOT MET'}")
    worst_predict = max(statistics.median(predict[n].values()) for n in names)
    print(f"slowest median predict: {1000 * worst_predict:.3f} ms  target < 5 ms: "
          f"{'MET' if worst_predict < 0.005 else 'NOT MET'}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    files = sorted(glob.glob(os.path.join(args.traces, "*.csv")))
    if not files:
        print(f"no *.csv in {args.traces}", file=sys.stderr)
        return 2
    horizons = [float(s) for s in args.horizon_seconds.split(",")]
    names = args.models.split(",") if args.models else list(models.names())
    if not args.skip_eval:
        rows = run_backtests(files, horizons, names, args.json_out)
        print_metrics(rows)
        for horizon in horizons:
            print_targets(rows, horizon)
    if not args.skip_timing:
        time_models(files, names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
