"""``scaleahead simulate`` and ``scaleahead demo``: score policies on traces (BENCHMARK.md).

``simulate`` runs every requested policy on every trace in one invocation;
``--json`` prints one JSON object per line, per trace and policy, with exactly
the fields of BENCHMARK.md section 5. ``demo`` is the offline variant of the main
job (``scaleahead run --local-demo``): the bundled real traces, with the HTML report.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from controller.errors import UserError
from controller.sim import engine
from controller.sim.results import RunResult
from controller.sim.scenario import INTERPOLATIONS, Scenario, scenario_from_trace
from controller.sim.traces import load_trace

DEFAULT_REPORT = "scaleahead-report.html"


def bundled_traces() -> list[Path]:
    """The real traces shipped with the package (see ``controller/sim/data/README.md``)."""
    data = resources.files("controller.sim") / "data"
    return sorted(Path(str(p)) for p in data.iterdir() if p.name.endswith(".csv"))


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``simulate`` and ``demo``."""
    p = sub.add_parser(
        "simulate",
        help="score policies on load traces with the cluster simulator",
        description="Replay traces through the discrete-event cluster simulator and score each policy "
        "(BENCHMARK.md): unserved demand, pod-hours against the perfect-foresight oracle, scale actions.",
    )
    p.add_argument("--trace", nargs="+", required=True, metavar="FILE", help="trace CSV files with header timestamp,value")
    _add_run_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per trace and policy (BENCHMARK.md section 5)")
    p.add_argument("--report", metavar="OUT.html", help="write a self-contained HTML report with plots")
    p.set_defaults(func=_simulate)

    d = sub.add_parser(
        "demo",
        help="simulate the bundled real traces (hpa, scaleahead, oracle) and write the report",
        description="The offline main job: the bundled real traces, policies hpa, scaleahead and oracle, "
        f"a score table on stdout and the HTML report (default {DEFAULT_REPORT}).",
    )
    _add_run_options(d)
    d.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    d.add_argument("--report", default=DEFAULT_REPORT, metavar="OUT.html", help=f"where to write the report (default {DEFAULT_REPORT})")
    d.set_defaults(func=_demo)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", default="hpa,scaleahead,oracle",
                   help=f"comma-separated policies (known: {', '.join(engine.BUILDERS)}; default hpa,scaleahead,oracle)")
    p.add_argument("--startup-seconds", type=float, default=120.0, help="pod startup time from creation to ready (default 120)")
    p.add_argument("--startup-distribution", choices=("fixed", "lognormal"), default="fixed",
                   help="fixed startup, or each pod's drawn from a log-normal with that median and sigma 0.3")
    p.add_argument("--seed", type=int, default=0, help="seed of the log-normal startup draws (default 0)")
    p.add_argument("--peak-pods", type=float, default=40.0, help="demand at the trace's 99th percentile, in pods (default 40)")
    p.add_argument("--interpolation", choices=INTERPOLATIONS, default="linear",
                   help="how trace rows are laid onto the 15-s grid: linear (BENCHMARK.md, default) or previous "
                   "(each row held until the next: a sensitivity check outside the contract, docs/benchmark.md)")
    p.add_argument("--hpa-target", type=float, default=0.7, help="target utilisation of the hpa baseline (default 0.7)")
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.add_argument("--forecast-inline", action="store_true",
                   help="make scaleahead's forecasts in the simulating process itself, not in a second process "
                   "ahead of its decisions (same results, slower on two cores; controller/sim/ahead.py)")


def _simulate(args: argparse.Namespace) -> int:
    return _run(args, args.trace)


def _demo(args: argparse.Namespace) -> int:
    return _run(args, [str(p) for p in bundled_traces()])


def _run(args: argparse.Namespace, trace_files: Sequence[str]) -> int:
    policies = engine.parse_policies(args.policy)
    config = engine.SimConfig(
        startup_seconds=args.startup_seconds,
        startup_distribution=args.startup_distribution,
        seed=args.seed,
        hpa_target=args.hpa_target,
        forecast_process=not args.forecast_inline,
    )
    if args.report:
        check_report_path(args.report)  # before simulating, not after minutes of it
    # Read and check every trace before simulating any, so a bad file fails fast.
    scenarios = [scenario_from_trace(load_trace(f), peak_pods=args.peak_pods, interpolation=args.interpolation) for f in trace_files]
    for sc in scenarios:
        engine.check_startup_fits(sc, config)
    results = simulate_all(scenarios, policies, config, show_progress=not args.no_progress and sys.stderr.isatty())
    if args.json:
        for r in results:
            print(json.dumps(r.score.to_json(), allow_nan=False), flush=True)
    else:
        print(format_table(results))
    if args.report:
        from controller.sim import report

        command = "scaleahead " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None
        try:
            report.write_report(args.report, results, command=command)
        except OSError as exc:
            raise UserError(f"cannot write the report {args.report}: {exc.strerror or exc}") from None
        print(f"report written to {args.report}", file=sys.stderr)
    return 0


def check_report_path(path: str) -> None:
    """Refuse a report path that cannot be written, before any work is done.

    Raises:
        UserError: its directory does not exist (or is not a directory), or the path is a directory.
    """
    target = Path(path)
    directory = target.resolve().parent
    if not directory.is_dir():
        raise UserError(f"cannot write the report {path}: the directory {directory} does not exist")
    if target.is_dir():
        raise UserError(f"cannot write the report {path}: it is a directory")


def simulate_all(
    scenarios: Sequence[Scenario], policies: Sequence[str], config: engine.SimConfig, *, show_progress: bool = False
) -> list[RunResult]:
    """Every policy on every scenario, with a progress bar over all ticks when asked."""
    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(s.n_ticks for s in scenarios) * len(policies), unit="tick", unit_scale=True, file=sys.stderr)
    results = []
    try:
        for sc in scenarios:
            for policy in policies:
                if bar is not None:
                    bar.set_description(f"{sc.name} / {policy}")
                results.append(engine.run(sc, policy, config, progress=bar.update if bar is not None else None))
    finally:
        if bar is not None:
            bar.close()
    return results


def format_table(results: Sequence[RunResult]) -> str:
    """A plain-text score table, one row per trace and policy."""
    header = ("trace", "policy", "unserved_%", "underprov_time_%", "pod_hours", "oracle_pod_h", "cost_ratio", "scale_actions", "wall_s")
    rows = [header]
    for r in results:
        s = r.score
        rows.append((
            s.trace, s.policy, f"{s.unserved_pct:.3f}", f"{s.underprovisioned_time_pct:.2f}", f"{s.pod_hours:.1f}",
            f"{s.oracle_pod_hours:.1f}", f"{s.cost_ratio:.3f}", str(s.scale_actions), f"{s.wall_seconds:.2f}",
        ))
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if c < 2 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    return "\n".join(lines)
