"""The ``scaleahead forecast-eval`` sub-command: rolling-origin evaluation of the forecasting models.

Wiring only: it reads traces with ``models.traces``, runs ``models.evaluate`` and prints a table or
JSON lines. Problems the user can fix (a missing file, a malformed line, an unknown model, a bad
horizon) become ``UserError``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence

from controller.errors import UserError

DEFAULT_HORIZONS = "210,900"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``forecast-eval`` on the ``scaleahead`` sub-command parser."""
    parser = subparsers.add_parser(
        "forecast-eval",
        help="backtest the forecasting models on trace CSVs",
        description=(
            "Rolling-origin evaluation on the scored part of each trace (the first 25% is warm-up), on "
            "the trace's own step with each horizon rounded up to whole steps. Reports MASE against "
            "naive and seasonal-naive, pinball loss over the quantiles 0.025/0.1/0.5/0.9/0.975, the "
            "coverage of the 80% and 95% intervals and mean fit and predict times."
        ),
    )
    parser.add_argument("--trace", nargs="+", required=True, metavar="FILE", help="timestamp,value CSV files")
    parser.add_argument(
        "--horizon-seconds",
        default=DEFAULT_HORIZONS,
        metavar="S[,S...]",
        help=f"comma-separated forecast horizons in seconds (default {DEFAULT_HORIZONS})",
    )
    parser.add_argument(
        "--models",
        default=None,
        metavar="NAME[,NAME...]",
        help="comma-separated registered model names (default: all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every model (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per trace, model and horizon")
    parser.set_defaults(func=run)
    return parser


def parse_horizons(text: str) -> list[float]:
    """Parse ``"210,900"`` into positive seconds.

    Raises:
        UserError: a value is not a positive number.
    """
    out = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise UserError(f"--horizon-seconds: {part.strip()!r} is not a number") from None
        if not value > 0 or not math.isfinite(value):
            raise UserError(f"--horizon-seconds: {part.strip()!r} must be a positive number of seconds")
        out.append(value)
    return out


def parse_models(text: str | None) -> list[str]:
    """Parse ``--models``; ``None`` means every registered model.

    Raises:
        UserError: an unknown model name.
    """
    import models

    known = models.names()
    if text is None:
        return list(known)
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in known]
    if unknown or not chosen:
        raise UserError(f"--models: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}")
    return chosen


def run(args: argparse.Namespace) -> int:
    """Evaluate every trace and print the rows."""
    from models import evaluate, traces

    horizons = parse_horizons(args.horizon_seconds)
    chosen = parse_models(args.models)
    loaded = []
    for path in args.trace:
        try:
            loaded.append(traces.read_trace(path))
        except FileNotFoundError:
            raise UserError(f"--trace: no such file: {path}") from None
        except OSError as exc:
            raise UserError(f"--trace: cannot read {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise UserError(str(exc)) from None
    for path, trace in zip(args.trace, loaded, strict=True):
        check_scorable(trace, path=path, horizons=horizons)  # every trace, before evaluating any
    rows = []
    for trace in loaded:
        trace_rows = evaluate.evaluate_series(
            trace.values,
            name=trace.name,
            step_seconds=trace.step_seconds,
            start_seconds=trace.start_seconds,
            horizons_seconds=horizons,
            models=chosen,
            seed=args.seed,
        )
        if args.json:
            for row in trace_rows:
                print(json_line(row.to_json()), flush=True)
        rows.extend(trace_rows)
    if not args.json:
        print_table(rows, sys.stdout)
    return 0


def check_scorable(trace, *, path: str, horizons: Sequence[float]) -> None:  # noqa: ANN001 - a models.traces.Trace
    """Refuse a trace on which some horizon would have no scored origin (its metrics would be NaN).

    The rule is ``models.evaluate``'s: origins start after the warm-up (the first 25% of the
    points) and an origin is scored when the point ``horizon`` steps ahead exists and has a value.

    Raises:
        UserError: naming the file, the horizon and the points needed.
    """
    import numpy as np

    from models import evaluate

    n = int(trace.values.size)
    step = float(trace.step_seconds)
    origins = np.arange(math.ceil(evaluate.WARMUP_FRACTION * n), n)
    for seconds in horizons:
        h = evaluate.horizon_steps_for(seconds, step)
        if np.isfinite(evaluate.targets_for(trace.values, origins, h)).any():
            continue
        need = h  # the fewest points whose part after the warm-up holds an origin and its target
        while need - math.ceil(evaluate.WARMUP_FRACTION * need) < h:
            need += 1
        if n < need:
            raise UserError(
                f"--trace {path}: too short to score --horizon-seconds {seconds:g}: it has {n} points of {step:g} s; "
                f"a {h}-step horizon needs at least {need} points ({need * step:g} s, of which the first "
                f"{evaluate.WARMUP_FRACTION:.0%} is warm-up history)"
            )
        raise UserError(
            f"--trace {path}: nothing to score at --horizon-seconds {seconds:g}: every point after the "
            f"warm-up (the first {evaluate.WARMUP_FRACTION:.0%}) that a forecast would be scored on is missing"
        )


def json_line(record: dict[str, object]) -> str:
    """One strict JSON object: a number that is NaN or infinite (no score) is ``null``."""
    clean = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
    return json.dumps(clean, allow_nan=False)


def _num(value: float, spec: str, suffix: str = "") -> str:
    """``value`` formatted with ``spec`` and ``suffix``; ``-`` when it is NaN (no score)."""
    return "-" if math.isnan(value) else format(value, spec) + suffix


def print_table(rows: Sequence[object], out) -> None:  # noqa: ANN001 - any text stream
    """Print rows as an aligned table."""
    header = ("trace", "model", "horizon_s", "steps", "mase_naive", "mase_snaive", "pinball", "pb/naive",
              "cov80", "cov95", "days_ok", "fit_s", "predict_ms")
    lines = [header]
    for r in rows:
        lines.append(
            (
                r.trace,
                r.model,
                f"{r.horizon_seconds:g}",
                str(r.horizon_steps),
                _num(r.mase_naive, ".3f"),
                _num(r.mase_seasonal_naive, ".3f"),
                _num(r.pinball, ".4g"),
                _num(r.pinball_naive_ratio, ".3f"),
                _num(100 * r.coverage_80, ".1f", "%"),
                _num(100 * r.coverage_95, ".1f", "%"),
                _num(100 * r.days_calibrated, ".0f", "%"),
                _num(r.fit_seconds, ".3f"),
                _num(1000 * r.predict_seconds, ".3f"),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))), file=out)
