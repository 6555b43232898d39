"""``scaleahead backtest``: replay a recorded Prometheus series through the simulator.

The series a PromQL query returned between two times becomes a trace (one row per
point; points without a value stay missing rows), the trace becomes a scenario
of BENCHMARK.md section 1, and every requested policy runs on it exactly as
``scaleahead simulate`` runs them on a CSV file: same engine, same scores, same
JSON lines, table and HTML report. ``docs/backtest.md`` is the user's page.

Choices a reader might question (also in ``docs/backtest.md``):

* **Demand in pods.** By default the benchmark's rule: scaled so that the 99th
  percentile is ``--peak-pods`` (40) pods, which makes a backtest comparable with
  ``simulate`` on the same data. With ``--capacity-per-pod X`` (or the settings'
  ``metrics.capacity_per_pod`` when ``--settings`` is given and neither flag is)
  demand is ``value / X``, the controller's own reading of the load; the score's
  ``peak_pods`` is then the 99th percentile of that demand.
* **Settings.** ``--settings`` supplies what the settings say about this run:
  ``replicas.startup_seconds``, ``metrics.capacity_per_pod``, and everything the
  ``scaleahead`` policy reads (``forecast``, ``replicas`` and its ``behavior``), ``forecast.model``
  (for the ``scaleahead`` policy) and the connection (``metrics.prometheus_url``,
  token, CA, TLS verification, timeout). A flag given on the command line wins.
* **Times.** RFC 3339 with a zone, a bare date (UTC midnight), Unix seconds, or
  ``now`` / ``-7d`` / ``now-1d12h`` relative to one ``now`` read once per run.
  The range is at most 90 days and at most 1,000,000 points.
* **Reproducible report.** The report's command line is rebuilt from the parsed
  options with the times resolved to absolute RFC 3339, so running it again
  replays the same range.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import re
import shlex
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from controller.adapters.prometheus import MetricsUnavailable, PrometheusMetricsSource
from controller.domain import Series
from controller.errors import UserError
from controller.sim import engine
from controller.sim.scenario import TICK_SECONDS, Scenario, scenario_from_trace
from controller.sim.traces import Trace

__all__ = [
    "DEFAULT_PEAK_PODS",
    "DEFAULT_STEP_SECONDS",
    "MAX_POINTS",
    "MAX_RANGE_SECONDS",
    "BacktestRange",
    "PrometheusConnection",
    "add_parser",
    "fetch_series",
    "format_time",
    "parse_time",
    "resolve_range",
    "scenario_for_backtest",
    "trace_from_series",
]

DEFAULT_STEP_SECONDS = 60.0
DEFAULT_PEAK_PODS = 40.0
DEFAULT_STARTUP_SECONDS = 120.0
#: Bound on one HTTP request when neither the flag nor the settings give one: history
#: queries over many series take longer than the controller's per-tick queries.
DEFAULT_TIMEOUT_SECONDS = 30.0
#: The longest range a backtest replays.
MAX_RANGE_SECONDS = 90 * 86400.0
#: The most points one backtest fetches (90 days at a 60-s step is 129,601).
MAX_POINTS = 1_000_000

_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_RELATIVE = re.compile(r"(?:now)?-((?:\d+(?:\.\d+)?[smhdw])+)")
_RELATIVE_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIX = re.compile(r"[+]?\d+(?:\.\d*)?|[+]?\.\d+")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")


# --------------------------------------------------------------------------- the command line


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``backtest``."""
    p = sub.add_parser(
        "backtest",
        help="replay a recorded Prometheus series through the simulator and score policies on it",
        description="Fetch the series a PromQL query returned between START and END, replay it through the "
        "cluster simulator and score each policy as `scaleahead simulate` does (BENCHMARK.md): what the "
        "HPA, scaleahead or the perfect-foresight oracle would have done with that load.",
        epilog="Times: RFC 3339 (2026-11-01T00:00:00Z), a date (2026-11-01, UTC midnight), Unix seconds, "
        "'now', or relative to now (-7d, -12h, now-1d12h; units s m h d w). See docs/backtest.md.",
    )
    src = p.add_argument_group("what to replay")
    src.add_argument("--prometheus", metavar="URL",
                     help="base URL of the Prometheus HTTP API, e.g. http://localhost:9090 "
                     "(default with --settings: its metrics.prometheus_url)")
    src.add_argument("--query", required=True, metavar="PROMQL",
                     help="PromQL returning one series of load, e.g. 'sum(rate(http_requests_total{job=\"web\"}[1m]))'")
    src.add_argument("--start", required=True, metavar="START", help="first time to fetch (see Times below)")
    src.add_argument("--end", default="now", metavar="END", help="last time to fetch (default now)")
    src.add_argument("--step-seconds", type=float, default=DEFAULT_STEP_SECONDS,
                     help=f"resolution of the range query (default {DEFAULT_STEP_SECONDS:g})")
    src.add_argument("--name", help="the trace's name in the output (default the query)")

    run = p.add_argument_group("how to simulate")
    run.add_argument("--settings", metavar="FILE",
                     help="controller settings (YAML or ConfigMap) to take startup, capacity, forecast model and "
                     "the Prometheus connection from; flags win")
    run.add_argument("--workload", metavar="NAMESPACE/NAME",
                     help="a workload of --settings: replay with its overrides (replicas and forecast) "
                     "instead of the global settings alone")
    run.add_argument("--policy", default="hpa,oracle",
                     help=f"comma-separated policies (known: {', '.join(engine.BUILDERS)}; default hpa,oracle)")
    run.add_argument("--startup-seconds", type=float,
                     help=f"pod startup time from creation to ready (default the settings' replicas.startup_seconds, "
                     f"else {DEFAULT_STARTUP_SECONDS:g})")
    run.add_argument("--startup-distribution", choices=("fixed", "lognormal"), default="fixed",
                     help="fixed startup, or each pod's drawn from a log-normal with that median and sigma 0.3")
    run.add_argument("--seed", type=int, default=0, help="seed of the log-normal startup draws (default 0)")
    size = run.add_mutually_exclusive_group()
    size.add_argument("--peak-pods", type=float,
                      help=f"scale demand so its 99th percentile is this many pods (default {DEFAULT_PEAK_PODS:g}, "
                      "as the benchmark does)")
    size.add_argument("--capacity-per-pod", type=float, metavar="X",
                      help="demand in pods is value / X: the load one pod serves (default with --settings: its "
                      "metrics.capacity_per_pod)")
    run.add_argument("--hpa-target", type=float, default=0.7, help="target utilisation of the hpa baseline (default 0.7)")
    run.add_argument("--no-progress", action="store_true", help="never show a progress bar")

    conn = p.add_argument_group("connection")
    conn.add_argument("--bearer-token-file", metavar="FILE", help="file holding a bearer token, sent on every request")
    tls = conn.add_mutually_exclusive_group()
    tls.add_argument("--ca-file", metavar="FILE", help="PEM bundle to verify Prometheus' certificate with")
    tls.add_argument("--insecure-skip-tls-verify", action="store_true", help="do not verify Prometheus' certificate")
    conn.add_argument("--timeout-seconds", type=float,
                      help=f"bound on one HTTP request (default the settings' metrics.timeout_seconds, "
                      f"else {DEFAULT_TIMEOUT_SECONDS:g})")

    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON object per policy (BENCHMARK.md section 5)")
    out.add_argument("--report", metavar="OUT.html", help="write a self-contained HTML report with plots")
    p.set_defaults(func=_backtest)
    # argparse reads any word that starts with "-" as an option unless it looks like a negative
    # number, so `--start -7d` would fail with "expected one argument". Teach this parser that a
    # relative time is a value too (no option of it looks like one); `--start=-7d` works anyway.
    if hasattr(p, "_negative_number_matcher"):
        p._negative_number_matcher = re.compile(r"^-\d+$|^-\d*\.\d+$|^-(?:\d+(?:\.\d+)?[smhdwSMHDW])+$")


@dataclass(frozen=True)
class PrometheusConnection:
    """Where and how to reach Prometheus: the flags, else the settings' ``metrics`` group, else the defaults."""

    url: str
    bearer_token_file: str | None
    ca_file: str | None
    insecure_skip_verify: bool
    timeout_seconds: float


def _backtest(args: argparse.Namespace) -> int:
    from controller.simcli import format_table, simulate_all

    settings = None
    if args.settings:
        from controller.settings import load_settings

        settings = load_settings(args.settings)

    # Check everything the user typed before asking Prometheus anything.
    policies = engine.parse_policies(args.policy)
    rng = resolve_range(start=args.start, end=args.end, step_seconds=args.step_seconds)
    conn = _connection(args, settings)
    workload = _workload(args, settings)
    config = engine.SimConfig(
        startup_seconds=_startup_seconds(args, settings, workload),
        startup_distribution=args.startup_distribution,
        seed=args.seed,
        hpa_target=args.hpa_target,
        settings=settings,
        workload=workload,
    )
    capacity = _capacity_per_pod(args, settings)
    peak_pods = DEFAULT_PEAK_PODS if args.peak_pods is None else args.peak_pods
    if capacity is None and not peak_pods > 0:
        raise UserError(f"--peak-pods must be positive, got {peak_pods:g}")
    if args.report:
        _check_report_path(args.report)

    series = asyncio.run(fetch_series(conn, args.query, rng))
    trace = trace_from_series(series, name=args.name or args.query, query=args.query, rng=rng)
    scenario = scenario_for_backtest(trace, peak_pods=peak_pods, capacity_per_pod=capacity)
    print(
        f"{len(series)} points of {args.query!r} from {conn.url} between {format_time(rng.start)} and "
        f"{format_time(rng.end)} (step {rng.step_seconds:g} s, {rng.points - len(series)} missing); "
        f"{scenario.n_ticks} ticks of {TICK_SECONDS:g} s",
        file=sys.stderr,
    )

    results = simulate_all([scenario], policies, config, show_progress=not args.no_progress and sys.stderr.isatty())
    if args.json:
        for r in results:
            print(json.dumps(r.score.to_json(), allow_nan=False), flush=True)
    else:
        print(format_table(results))
    if args.report:
        from controller.sim import report

        try:
            report.write_report(args.report, results, title="scaleahead backtest report",
                                command=_command_line(args, conn, rng))
        except OSError as exc:
            raise UserError(f"cannot write the report {args.report}: {exc.strerror or exc}") from None
        print(f"report written to {args.report}", file=sys.stderr)
    return 0


def _connection(args: argparse.Namespace, settings) -> PrometheusConnection:
    metrics = settings.metrics if settings is not None else None
    url = args.prometheus or (metrics.prometheus_url if metrics is not None else None)
    if not url:
        raise UserError("--prometheus URL is required (or --settings with metrics.prometheus_url)")
    scheme, _, rest = url.partition("://")
    if scheme not in ("http", "https") or not rest or rest.startswith("/"):
        raise UserError(f"--prometheus must be an http:// or https:// URL with a host, got {url!r}")
    token = args.bearer_token_file
    if token is None and metrics is not None and metrics.bearer_token_file is not None:
        token = str(metrics.bearer_token_file)
    if args.insecure_skip_tls_verify or args.ca_file:
        ca_file, insecure = args.ca_file, bool(args.insecure_skip_tls_verify)
    elif metrics is not None:
        ca_file = str(metrics.ca_file) if metrics.ca_file is not None else None
        insecure = metrics.insecure_skip_tls_verify
    else:
        ca_file, insecure = None, False
    if ca_file is not None and insecure:
        raise UserError("metrics.ca_file and metrics.insecure_skip_tls_verify are exclusive; "
                        "pass --ca-file or --insecure-skip-tls-verify to choose")
    for flag, path in (("bearer token file", token), ("CA file", ca_file)):
        if path is not None and not Path(path).is_file():
            raise UserError(f"the {flag} {path} does not exist or is not a file")
    if args.timeout_seconds is not None:
        timeout = args.timeout_seconds
    else:
        timeout = metrics.timeout_seconds if metrics is not None else DEFAULT_TIMEOUT_SECONDS
    if not (math.isfinite(timeout) and timeout > 0):
        raise UserError(f"--timeout-seconds must be positive, got {timeout:g}")
    return PrometheusConnection(url=url.rstrip("/"), bearer_token_file=token, ca_file=ca_file,
                       insecure_skip_verify=insecure, timeout_seconds=float(timeout))


def _workload(args: argparse.Namespace, settings):
    """The workload ``--workload NAMESPACE/NAME`` names among the settings' workloads, or ``None``."""
    if args.workload is None:
        return None
    if settings is None:
        raise UserError("--workload needs --settings: it names one of the settings' workloads")
    namespace, sep, name = args.workload.partition("/")
    if not (sep and namespace and name) or "/" in name:
        raise UserError(f"--workload must be NAMESPACE/NAME, got {args.workload!r}")
    found = [w for w in settings.workloads if (w.namespace, w.name) == (namespace, name)]
    if not found:
        known = ", ".join(f"{w.namespace}/{w.name}" for w in settings.workloads) or "none"
        raise UserError(f"--workload {args.workload}: no such workload in {args.settings} (its workloads: {known})")
    if len(found) > 1:
        kinds = ", ".join(w.kind for w in found)
        raise UserError(f"--workload {args.workload}: more than one workload of that name in {args.settings} ({kinds})")
    return found[0]


def _startup_seconds(args: argparse.Namespace, settings, workload=None) -> float:
    if args.startup_seconds is not None:
        value = args.startup_seconds
    elif workload is not None:
        value = settings.effective_replicas(workload).startup_seconds
    elif settings is not None:
        value = settings.replicas.startup_seconds
    else:
        value = DEFAULT_STARTUP_SECONDS
    if not math.isfinite(value):
        raise UserError(f"--startup-seconds must be a finite number, got {value:g}")
    return float(value)


def _capacity_per_pod(args: argparse.Namespace, settings) -> float | None:
    if args.capacity_per_pod is not None:
        if not (math.isfinite(args.capacity_per_pod) and args.capacity_per_pod > 0):
            raise UserError(f"--capacity-per-pod must be positive, got {args.capacity_per_pod:g}")
        return float(args.capacity_per_pod)
    if args.peak_pods is None and settings is not None:
        return float(settings.metrics.capacity_per_pod)
    return None


def _check_report_path(path: str) -> None:
    directory = Path(path).resolve().parent
    if not directory.is_dir():
        raise UserError(f"cannot write the report {path}: the directory {directory} does not exist")
    if Path(path).is_dir():
        raise UserError(f"cannot write the report {path}: it is a directory")


def _command_line(args: argparse.Namespace, conn: PrometheusConnection, rng: BacktestRange) -> str:
    """The command that replays the same range: the flags as given, with the times resolved to RFC 3339."""
    parts = ["scaleahead", "backtest", "--prometheus", conn.url, "--query", args.query,
             "--start", format_time(rng.start), "--end", format_time(rng.end), "--step-seconds", _num(rng.step_seconds)]
    for flag, value in (("--name", args.name), ("--settings", args.settings), ("--workload", args.workload),
                        ("--policy", args.policy), ("--bearer-token-file", args.bearer_token_file),
                        ("--ca-file", args.ca_file)):
        if value:
            parts += [flag, value]
    for flag, number in (("--startup-seconds", args.startup_seconds), ("--peak-pods", args.peak_pods),
                         ("--capacity-per-pod", args.capacity_per_pod), ("--timeout-seconds", args.timeout_seconds)):
        if number is not None:
            parts += [flag, _num(number)]
    if args.insecure_skip_tls_verify:
        parts.append("--insecure-skip-tls-verify")
    if args.startup_distribution != "fixed":
        parts += ["--startup-distribution", args.startup_distribution, "--seed", str(args.seed)]
    if args.hpa_target != 0.7:
        parts += ["--hpa-target", _num(args.hpa_target)]
    parts += ["--report", args.report]
    return " ".join(shlex.quote(p) for p in parts)


def _num(value: float) -> str:
    return f"{value:.15g}"


# --------------------------------------------------------------------------- times


@dataclass(frozen=True)
class BacktestRange:
    """The resolved range: ``start`` and ``end`` in Unix seconds, and the query step."""

    start: float
    end: float
    step_seconds: float

    @property
    def points(self) -> int:
        """How many evaluation times the range query has: ``start, start + step, ... <= end``."""
        return int(math.floor((self.end - self.start) / self.step_seconds + 1e-9)) + 1


def parse_time(text: str, *, now: float, flag: str = "time") -> float:
    """Parse a time given on the command line into Unix seconds.

    Accepted: RFC 3339 with a zone (``2026-11-01T00:00:00Z``, ``2026-11-01T01:00:00+01:00``,
    fractional seconds allowed), a bare date (``2026-11-01``, midnight UTC), Unix seconds
    (``1793491200``), ``now``, and a duration before ``now`` (``-7d``, ``-12h``, ``now-1d12h``;
    units ``s m h d w``).

    Raises:
        UserError: anything else, naming ``flag`` and the accepted forms.
    """
    s = text.strip()
    if s.lower() == "now":
        return float(now)
    m = _RELATIVE.fullmatch(s.lower())
    if m:
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _RELATIVE_PART.findall(m.group(1)))
        return float(now) - seconds
    if _UNIX.fullmatch(s):
        value = float(s)
        if not math.isfinite(value):
            raise UserError(f"{flag} {text!r} is not a finite number of seconds")
        return value
    if _DATE_ONLY.fullmatch(s):
        try:
            d = date.fromisoformat(s)
        except ValueError as exc:
            raise UserError(f"{flag} {text!r} is not a valid date: {exc}") from None
        return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()
    if "T" in s.upper() or " " in s:
        try:
            dt = datetime.fromisoformat(s[:-1] + "+00:00" if s[-1:] in "zZ" else s)
        except ValueError:
            dt = None
        if dt is not None:
            if dt.tzinfo is None:
                raise UserError(f"{flag} {text!r} has no time zone; add one, e.g. {s}Z for UTC")
            return dt.timestamp()
    raise UserError(
        f"cannot read {flag} {text!r}: use RFC 3339 (2026-11-01T00:00:00Z), a date (2026-11-01), "
        "Unix seconds (1793491200), 'now', or a duration before now (-7d, -12h, now-1d12h)"
    )


def format_time(unix_seconds: float) -> str:
    """RFC 3339 in UTC, with fractional seconds only when there are any."""
    dt = datetime.fromtimestamp(unix_seconds, tz=UTC)
    text = dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def resolve_range(*, start: str, end: str, step_seconds: float, now: float | None = None) -> BacktestRange:
    """Parse ``--start``/``--end`` against one ``now`` and check the range and the step.

    Raises:
        UserError: an unreadable time, ``end <= start``, a range over 90 days, a step
            that is not positive or longer than the range, or more than ``MAX_POINTS`` points.
    """
    # One "now" for both ends, in whole seconds so that messages and the report's command read well.
    now = float(math.floor(time.time())) if now is None else now
    t0 = parse_time(start, now=now, flag="--start")
    t1 = parse_time(end, now=now, flag="--end")
    if not t1 > t0:
        raise UserError(f"--end {format_time(t1)} ({end}) is not after --start {format_time(t0)} ({start})")
    if t1 - t0 > MAX_RANGE_SECONDS:
        raise UserError(
            f"the range from {format_time(t0)} to {format_time(t1)} is {(t1 - t0) / 86400:.1f} days; "
            f"a backtest replays at most {MAX_RANGE_SECONDS / 86400:g} days"
        )
    if not (math.isfinite(step_seconds) and step_seconds > 0):
        raise UserError(f"--step-seconds must be positive, got {step_seconds:g}")
    if step_seconds > t1 - t0:
        raise UserError(f"--step-seconds {step_seconds:g} is longer than the range ({t1 - t0:g} s)")
    rng = BacktestRange(start=t0, end=t1, step_seconds=float(step_seconds))
    if rng.points > MAX_POINTS:
        raise UserError(
            f"{rng.points} points at a {step_seconds:g}-s step is more than {MAX_POINTS:,}; use a larger --step-seconds"
        )
    return rng


# --------------------------------------------------------------------------- fetching and converting


async def fetch_series(conn: PrometheusConnection, query: str, rng: BacktestRange) -> Series:
    """Run the range query through the Prometheus adapter (its own thread pool, chunked, retried).

    Raises:
        UserError: Prometheus could not answer (naming the URL and the reason), or the
            connection options contradict each other.
    """
    try:
        source = PrometheusMetricsSource(
            conn.url,
            bearer_token_file=conn.bearer_token_file,
            ca_file=conn.ca_file,
            insecure_skip_verify=conn.insecure_skip_verify,
            timeout_seconds=conn.timeout_seconds,
        )
    except ValueError as exc:
        raise UserError(f"Prometheus {conn.url}: {exc}") from None
    # The adapter logs a warning per retry; the command reports the outcome as one line instead.
    adapter_log = logging.getLogger(PrometheusMetricsSource.__module__)
    level = adapter_log.level
    adapter_log.setLevel(logging.ERROR)
    try:
        async with source:
            return await source.range(query, rng.start, rng.end, rng.step_seconds)
    except MetricsUnavailable as exc:
        raise UserError(f"cannot fetch the series from Prometheus {conn.url}{_reason(exc, conn.url)}") from None
    finally:
        adapter_log.setLevel(level)


def _reason(exc: MetricsUnavailable, url: str) -> str:
    """The adapter's message on one line, without what the caller already says and requests' wrapping.

    Returns ``" (after N attempts): detail"`` or ``": detail"``.
    """
    text = " ".join(str(exc).split())
    head = f"Prometheus {url} "
    attempts = ""
    if text.startswith(head):  # "Prometheus URL query_range 'q'[ after N attempts]: detail"
        text = text[len(head):].removeprefix("query_range ").removeprefix(repr(exc.query))
        after = re.match(r"\s*(after \d+ attempts?)", text)
        if after:
            attempts, text = f" ({after.group(1)})", text[after.end():]
        text = text.lstrip(": ")
    # requests wraps the OS error in three layers of reprs; the errno text is what a user can act on.
    if text.startswith("connection failed:"):
        errno = _ERRNO.search(text)
        if errno:
            text = f"connection failed: {errno.group(0)}"
    return f"{attempts}: {text}"


def trace_from_series(series: Series, *, name: str, query: str, rng: BacktestRange) -> Trace:
    """The fetched points as a trace; a time without a value stays a missing row.

    Raises:
        UserError: no data, a single point, or negative values (a load cannot be).
    """
    between = f"between {format_time(rng.start)} and {format_time(rng.end)}"
    if len(series) == 0:
        raise UserError(f"the query {query!r} returned no data {between}")
    if len(series) < 2:
        raise UserError(f"the query {query!r} returned a single point {between}; a backtest needs at least two")
    ts = np.asarray(series.timestamps, dtype=float)
    vs = np.asarray(series.values, dtype=float)
    negative = np.flatnonzero(vs < 0)
    if len(negative):
        first = int(negative[0])
        raise UserError(
            f"the query {query!r} returned {len(negative)} negative values {between} (the first {vs[first]:g} at "
            f"{format_time(ts[first])}); a load cannot be negative"
        )
    return Trace(name=name, timestamps=ts, values=vs)


def scenario_for_backtest(trace: Trace, *, peak_pods: float = DEFAULT_PEAK_PODS,
                          capacity_per_pod: float | None = None) -> Scenario:
    """Demand in pod units: the benchmark's scaling to ``peak_pods``, or ``value / capacity_per_pod``.

    With ``capacity_per_pod`` the tick grid and interpolation are the benchmark's
    (``scenario_from_trace``); the scenario's ``peak_pods`` is the 99th percentile of
    the values divided by the capacity, i.e. the demand that percentile means.

    Raises:
        UserError: ``peak_pods`` or ``capacity_per_pod`` not positive, no load to scale
            to ``peak_pods``, or a trace shorter than two ticks.
    """
    if capacity_per_pod is None:
        return scenario_from_trace(trace, peak_pods=peak_pods)
    if not capacity_per_pod > 0:
        raise UserError(f"--capacity-per-pod must be positive, got {capacity_per_pod:g}")
    n = int(math.floor(trace.span_seconds / TICK_SECONDS)) + 1
    if n < 2:
        raise UserError(f"{trace.name}: spans {trace.span_seconds:g} s, less than two {TICK_SECONDS:g}-s ticks")
    times = float(trace.timestamps[0]) + TICK_SECONDS * np.arange(n, dtype=float)
    demand = np.interp(times, trace.timestamps, trace.values) / capacity_per_pod
    peak = float(np.quantile(trace.values, 0.99)) / capacity_per_pod
    return Scenario(name=trace.name, times=times, demand=demand, peak_pods=peak)
