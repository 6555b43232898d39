"""``scaleahead run --local-demo``: the real controller against a local Prometheus and Kubernetes API emulator.

What runs, all on this machine and all real except the cluster itself:

- a **Prometheus** server (``promharness.PrometheusServer``, the Debian package) scraping
  every second, with the trace's past **backfilled** as the request counter of the
  workload's pods (``promtool tsdb create-blocks-from openmetrics``);
- the **Kubernetes API emulator** (``kubeapi.KubeApiServer``) with one Deployment,
  ``demo/web``, whose pods become Ready ``startup`` seconds after they are created;
- a **traffic driver** that replays the trace sped up (one 5-minute step every
  ``--step-seconds``) and counts each Ready pod's share of the requests in a
  ``MetricsExporter`` that Prometheus scrapes, as a real app's ``/metrics`` would;
- the **controller** itself (``runcli.run_controller``): settings, telemetry, HTTP server,
  the loop, the Prometheus and Kubernetes adapters over HTTP, in ``active`` mode.

Time is compressed by ``300 / step_seconds`` (100x by default) in the trace, the pod
startup (10 trace minutes), the tick, the windows and the model step; the controller
itself runs on the wall clock, unchanged. The replay starts just before the steepest
ramp of the trace, so the demo shows a scale-up ahead of it and the scale-down after.
At the end the simulator scores the same stretch of the trace (``hpa``, ``scaleahead``
and ``oracle``) and writes its HTML report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import math
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from controller.errors import UserError

log = logging.getLogger(__name__)

NAMESPACE = "demo"
NAME = "web"
TRACE_STEP_SECONDS = 300.0  # the bundled traces have one row per 5 minutes
DEFAULT_TRACE = "nab_elb_requests.csv"
CAPACITY_PER_POD = 10.0  # requests per second one pod serves at 100%
PEAK_PODS = 20.0  # the trace's 99th percentile, in pods
STARTUP_STEPS = 2.0  # pod startup: 10 trace minutes
HISTORY_STEPS = 3 * 288  # three trace days of history before the replay
MIN_HISTORY_STEPS = 48  # the least history the demo starts with: the model's first fit needs 48 steps


def load_query(step: float) -> str:
    """The load query: the pods' request rate over two trace steps (at least 3 s: three scrapes)."""
    window = max(3, round(2 * step))
    return f'sum(rate(http_requests_total{{namespace="$namespace",pod=~"$name-.*"}}[{window}s]))'


@dataclass
class DemoResult:
    """What a demo run left behind, for tests.

    Attributes:
        code: the exit code.
        t_start: wall time at which the replay began.
        step: wall seconds per trace step.
        scale_patches: ``(wall time, replicas)`` of every successful scale PATCH the API server received.
        events: ``(reason, message)`` of the Events the controller recorded.
        samples: ``(wall time, demand rps, ready pods, spec.replicas)`` seen by the traffic driver.
        decisions: how many decisions the controller logged.
    """

    code: int
    t_start: float
    step: float
    scale_patches: list[tuple[float, int]] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)
    samples: list[tuple[float, float, int, int]] = field(default_factory=list)
    decisions: int = 0


def bundled_trace(name: str = DEFAULT_TRACE) -> Path:
    """A trace shipped with the package."""
    return Path(str(resources.files("controller.sim") / "data" / name))


def pick_replay_start(demand: np.ndarray, *, steps: int, history: int) -> int:
    """The step at which the replay starts: a few steps before the steepest rise within ``steps``.

    Args:
        demand: the trace in pods, one value per trace step.
        steps: how many steps the replay lasts.
        history: steps needed before the start (backfilled).
    """
    window = max(4, steps // 3)
    best, best_rise = history, -math.inf
    for i in range(history, len(demand) - steps):
        ahead = demand[i + window // 2 : i + steps]
        rise = float(np.max(ahead) - np.mean(demand[i : i + window // 2])) if ahead.size else -math.inf
        if rise > best_rise:
            best, best_rise = i, rise
    return best


def demo_settings(prom_url: str, *, step: float) -> str:
    """The demo's settings: the defaults, with every duration compressed like the trace."""
    scale = step / TRACE_STEP_SECONDS
    return textwrap.dedent(
        f"""\
        loop:
          interval_seconds: {step / 2:g}
          default_mode: active
          failure_threshold: 3
        metrics:
          prometheus_url: {prom_url}
          load_query: '{load_query(step)}'
          capacity_per_pod: {CAPACITY_PER_POD:g}
          lag_seconds: {max(1.0, step):g}
          timeout_seconds: 5
        forecast:
          model: auto
          history_days: 1
          refit_interval_seconds: 3600
          quantile: 0.9
        replicas:
          min_replicas: 1
          max_replicas: 60
          target_utilization_ratio: 0.8
          startup_seconds: {STARTUP_STEPS * step:g}
          downscale_stabilization_seconds: {max(1, round(1800 * scale))}
          behavior:
            scale_up:
              policies: [{{type: Percent, value: 100, period_seconds: 1}}, {{type: Pods, value: 4, period_seconds: 1}}]
            scale_down:
              stabilization_window_seconds: {max(1, round(1800 * scale))}
              policies: [{{type: Percent, value: 50, period_seconds: {max(1, round(600 * scale))}}}]
        workloads:
          - {{namespace: {NAMESPACE}, name: {NAME}}}
        """
    )


class TrafficDriver:
    """Replays the demand at wall-clock speed into per-pod request counters.

    Every ``period`` seconds the demand of the current trace step (linearly interpolated)
    is split evenly over the deployment's Ready pods and added to their
    ``http_requests_total``; pods that went away are removed from the exporter.
    """

    def __init__(self, *, server: Any, exporter: Any, demand_rps: np.ndarray, t0: float, step: float, period: float = 0.25) -> None:
        self.server, self.exporter = server, exporter
        self.demand_rps, self.t0, self.step, self.period = demand_rps, t0, step, period
        self._pods: set[str] = set()
        self.samples: list[tuple[float, float, int, int]] = []  # (wall time, demand rps, ready, replicas)

    def demand_at(self, t: float) -> float:
        x = (t - self.t0) / self.step
        return float(np.interp(x, np.arange(len(self.demand_rps)), self.demand_rps))

    async def run(self) -> None:
        from controller.sim import kubeapi

        last = time.time()
        while True:
            await asyncio.sleep(self.period)
            now = time.time()
            dt, last = now - last, now
            rps = self.demand_at(now)
            pods = self.server.objects("pods", NAMESPACE)
            ready = [p["metadata"]["name"] for p in pods if kubeapi.pod_is_ready(p)]
            for gone in self._pods - set(ready):
                self.exporter.remove("http_requests_total", {"namespace": NAMESPACE, "pod": gone})
            self._pods = set(ready)
            for name in ready:
                self.exporter.inc("http_requests_total", {"namespace": NAMESPACE, "pod": name}, rps * dt / len(ready))
            spec = (self.server.get("deployments", NAMESPACE, NAME) or {}).get("spec", {}).get("replicas", 0)
            self.samples.append((now, rps, len(ready), spec))


def main(args: argparse.Namespace) -> int:
    """Entry of ``scaleahead run --local-demo``."""
    from controller.sim import promharness

    # Every flag and the trace are checked before anything starts (the report is written last).
    check_options(duration=args.duration_seconds, step=args.step_seconds, report=args.report)
    trace_path = Path(args.trace) if args.trace else bundled_trace()
    check_demo_trace(trace_path, duration=args.duration_seconds, step=args.step_seconds, report=args.report)
    try:
        promharness.find_executable("prometheus")
        promharness.find_executable("promtool")
    except promharness.PrometheusNotInstalled as exc:
        raise UserError(str(exc)) from None
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)  # the decisions are printed by _DecisionPrinter, not here
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        result = asyncio.run(run_demo(
            trace_path=trace_path,
            duration=args.duration_seconds, step=args.step_seconds, report=args.report,
        ))  # fmt: skip
        return result.code
    except KeyboardInterrupt:
        return 130


def check_options(*, duration: float, step: float, report: str | None) -> None:
    """Refuse bad ``--duration-seconds``, ``--step-seconds`` and ``--report`` before anything starts."""
    from controller.simcli import check_report_path

    if not (math.isfinite(step) and step >= 1):
        raise UserError(f"--step-seconds must be a number of seconds >= 1, got {step:g}")
    if not (math.isfinite(duration) and duration > 0):
        raise UserError(f"--duration-seconds must be a positive number of seconds, got {duration:g}")
    if report:
        check_report_path(report)


def replay_steps(duration: float, step: float) -> int:
    """Trace steps the replay covers (at least 4)."""
    return max(4, int(math.ceil(duration / step)) + 2)


def check_trace(trace: Any, *, duration: float, step: float) -> None:
    """Refuse a trace the demo cannot replay: too short for the history and the replay, or no load.

    Raises:
        UserError: naming the file, its rows and the rows needed.
    """
    where = trace.path or trace.name
    steps = replay_steps(duration, step)
    need = MIN_HISTORY_STEPS + steps + 1
    if len(trace.values) < need:
        raise UserError(
            f"{where}: {len(trace.values)} rows is too short for the demo: --duration-seconds {duration:g} at "
            f"--step-seconds {step:g} replays {steps + 1} rows after at least {MIN_HISTORY_STEPS} rows of history, "
            f"{need} rows in all; use a longer trace or a shorter --duration-seconds"
        )
    q99 = float(np.quantile(trace.values, 0.99))
    if not q99 > 0:
        raise UserError(f"{where}: the 99th percentile of the values is {q99:g}; there is no load to replay")


def check_demo_trace(path: Path, *, duration: float, step: float, report: str | None) -> Any:
    """Load the trace and refuse it now if the replay or the report could not use it; return it.

    Raises:
        UserError: the file cannot be read, is too short or has no load (``check_trace``), or
            (with a report) spans more than the simulator takes.
    """
    from controller.sim.scenario import check_ticks
    from controller.sim.traces import load_trace

    trace = load_trace(path)
    check_trace(trace, duration=duration, step=step)
    if report:
        check_ticks(trace)  # the report simulates the trace: refuse one it cannot take now, not after the run
    return trace


async def run_demo(
    *,
    trace_path: Path,
    duration: float,
    step: float,
    report: str | None,
    out: Any = None,
    history_steps: int = HISTORY_STEPS,
    model: str = "auto",
) -> DemoResult:
    """Run the demo for ``duration`` wall seconds; print decisions to ``out`` (stdout); write ``report``.

    Args:
        trace_path: the trace CSV (5-minute steps).
        duration: wall seconds of replay.
        step: wall seconds per trace step.
        report: where to write the simulate report of the trace (``None``: no report).
        out: where to print (stdout).
        history_steps: trace steps backfilled before the replay.
        model: ``forecast.model``.

    Returns:
        What happened; ``code`` is 0 when the controller ran and made decisions.
    """
    from controller import loop, runcli
    from controller.settings import ControllerSettings
    from controller.sim import kubeapi, promharness

    out = out or sys.stdout

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    trace = check_demo_trace(trace_path, duration=duration, step=step, report=report)
    # demand in pods per trace step, then requests per second
    pods = trace.values * (PEAK_PODS / float(np.quantile(trace.values, 0.99)))
    rps = pods * CAPACITY_PER_POD
    steps = replay_steps(duration, step)
    history = min(history_steps, max(0, len(rps) - steps - 1))
    start = pick_replay_start(pods, steps=steps, history=history)
    replay = rps[start - history : start + steps + 1]

    # -- Prometheus with the history backfilled --------------------------------------------------
    t_start = time.time() + 8.0  # the replay begins once everything is up
    say(f"scaleahead local demo: trace {trace.name}, steps {start}..{start + steps} replayed at one 5-min step per {step:g} s")
    with tempfile.TemporaryDirectory(prefix="scaleahead-demo-") as tmp:
        prom = promharness.PrometheusServer(scrape_interval_seconds=1.0, lookback_delta_seconds=30.0)
        hist_times = t_start + step * (np.arange(-history, 1, dtype=float))
        hist_rps = replay[: history + 1]
        # one sample per second, so rate() over a few seconds sees the same shape as live
        fine_t = np.arange(hist_times[0], hist_times[-1] - 10.0, 1.0)
        fine_rps = np.interp(fine_t, hist_times, hist_rps)
        series = promharness.counter_from_load(fine_t, fine_rps, labels={"namespace": NAMESPACE, "pod": f"{NAME}-history"})
        say(f"  backfilling {history} steps of history into Prometheus ...")
        await asyncio.to_thread(prom.backfill, [series])
        await asyncio.to_thread(prom.start)
        try:
            async with kubeapi.KubeApiServer(pod_startup_seconds=STARTUP_STEPS * step) as server, \
                    promharness.MetricsExporter() as exporter:  # fmt: skip
                await asyncio.to_thread(prom.add_scrape_target, job="pods", address=exporter.address, scrape_interval_seconds=1.0)
                initial = max(1, math.ceil(hist_rps[-1] / CAPACITY_PER_POD / 0.8))
                server.put(kubeapi.make_deployment(NAME, namespace=NAMESPACE, replicas=initial))
                driver = TrafficDriver(server=server, exporter=exporter, demand_rps=replay[history:], t0=t_start, step=step)
                text = demo_settings(prom.url, step=step).replace("model: auto", f"model: {model}")
                settings_file = Path(tmp) / "config.yaml"
                settings_file.write_text(text)
                settings = ControllerSettings.from_yaml(text, source=str(settings_file))
                stop = asyncio.Event()
                factory = functools.partial(loop.build_predictive_policy, model_step_seconds=step, first_fit_seconds=48 * step)
                shown: dict[str, Any] = {}

                def ready(controller: Any, listening: Any) -> None:
                    shown["controller"] = controller
                    say(f"  controller serving {listening.url}/metrics and {listening.url}/debug/decisions")

                printer = _DecisionPrinter(say, t_start, step)
                logging.getLogger("controller.loop").addHandler(printer)
                logging.getLogger("controller.loop").setLevel(logging.INFO)
                driver_task = asyncio.create_task(driver.run())
                controller_task = asyncio.create_task(runcli.run_controller(
                    settings, settings_path=settings_file, configuration=server.client_configuration(),
                    host="127.0.0.1", port=0, leader_election=False, stop=stop, policy_factory=factory, on_ready=ready,
                ))  # fmt: skip
                try:
                    end = t_start + duration
                    next_status = t_start
                    while time.time() < end and not controller_task.done():
                        await asyncio.sleep(0.25)
                        if time.time() >= next_status and driver.samples:
                            _, now_rps, n_ready, spec = driver.samples[-1]
                            say(f"  [trace {_trace_clock(time.time(), t_start, step)}] demand {now_rps / CAPACITY_PER_POD:5.1f} pods"
                                f"   ready {n_ready:3d}   replicas {spec:3d}")  # fmt: skip
                            next_status = time.time() + 5 * step
                finally:
                    stop.set()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(asyncio.shield(controller_task), 15)
                    driver_task.cancel()
                    await asyncio.gather(driver_task, return_exceptions=True)
                    logging.getLogger("controller.loop").removeHandler(printer)
                code = controller_task.result() if controller_task.done() else 1
                patches = [r for r in server.requests_to("PATCH", "*/scale") if r.status == 200]
                result = DemoResult(
                    code=code if printer.decisions else 1, t_start=t_start, step=step,
                    scale_patches=[(r.at, int(r.body["spec"]["replicas"])) for r in patches],
                    events=[(e.get("reason", ""), e.get("message", "")) for e in server.objects("events", NAMESPACE)],
                    samples=list(driver.samples), decisions=printer.decisions,
                )  # fmt: skip
                say(f"controller stopped: {printer.decisions} decisions, {len(patches)} scale PATCHes recorded by the API server")
        finally:
            await asyncio.to_thread(prom.close)

    if report:
        say(f"simulating the whole trace (hpa, scaleahead, oracle) for the report {report} ...")
        await asyncio.to_thread(_write_report, trace, report)
        say(f"report written to {report}")
    return result


def _trace_clock(t: float, t_start: float, step: float) -> str:
    minutes = (t - t_start) / step * TRACE_STEP_SECONDS / 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{sign}{int(minutes // 60)}h{int(minutes % 60):02d}m"


class _DecisionPrinter(logging.Handler):
    """Prints the controller's decision log lines (``log_decision``) in a short human form."""

    def __init__(self, say: Any, t_start: float, step: float) -> None:
        super().__init__(logging.INFO)
        self.say, self.t_start, self.step = say, t_start, step
        self.decisions = 0
        self._last: tuple[int, int] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if not hasattr(record, "to_replicas"):
            if record.levelno >= logging.INFO and "primed" in record.getMessage():
                self.say(f"  {record.getMessage()}")
            return
        self.decisions += 1
        pair = (record.from_replicas, record.to_replicas)  # type: ignore[attr-defined]
        if pair[0] == pair[1] and pair == self._last:
            return
        self._last = pair
        stages = {s["stage"]: s["value"] for s in getattr(record, "stages", [])}
        outcome = getattr(record, "outcome", "")
        self.say(
            f"  [trace {_trace_clock(record.created, self.t_start, self.step)}] {record.kind:5s} "  # type: ignore[attr-defined]
            f"{pair[0]:3d} -> {pair[1]:3d}  {record.reason:22s} forecast {stages.get('forecast_replicas', '-')!s:>3} "  # type: ignore[attr-defined]
            f"floor {stages.get('floor_replicas', '-')!s:>3}  {outcome}"
        )


def _write_report(trace: Any, path: str) -> None:
    """``scaleahead simulate --trace TRACE --policy hpa,scaleahead,oracle --report PATH``, in process."""
    from controller.sim import engine, report
    from controller.sim.scenario import scenario_from_trace

    scenario = scenario_from_trace(trace, peak_pods=PEAK_PODS)
    config = engine.SimConfig(startup_seconds=STARTUP_STEPS * TRACE_STEP_SECONDS)
    results = [engine.run(scenario, policy, config) for policy in ("hpa", "scaleahead", "oracle")]
    report.write_report(path, results, command=f"scaleahead simulate --trace {trace.path} --policy hpa,scaleahead,oracle "
                                               f"--startup-seconds {STARTUP_STEPS * TRACE_STEP_SECONDS:g} --peak-pods {PEAK_PODS:g}")
