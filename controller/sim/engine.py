"""Run one policy on one scenario, tick by tick, and score it (BENCHMARK.md sections 1 to 5).

Order within tick i (documented in ``docs/benchmark.md``):

1. the clock moves to ``t_i``; pods whose ready tick is i become ready;
2. the policy reconciles through the ports: it sees ``observed[i]`` (demand over
   [t-75 s, t-15 s]) and the ready / starting counts, and may scale;
3. the state after the action holds for the interval [t_i, t_i + 15 s): its ready
   pods serve ``demand[i]``, its ready and starting pods cost 15 s each.

The simulation is event-driven in the sense that matters for cost: the cluster
only does work when pods change, and the policy runs as a coroutine that never
suspends, so a month of 15-s ticks takes seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from controller.decide import hpa
from controller.domain import WorkloadRef
from controller.errors import UserError
from controller import policies
from controller.policies import HpaPolicy, Policy, PolicyPorts, PredictivePolicy
from controller.settings import ControllerSettings, WorkloadSettings
from controller.sim import ahead
from controller.sim.cluster import SimActuator, SimClock, SimCluster, SimMetrics, SimPods
from controller.sim.oracle import OraclePolicy
from controller.sim.results import DecisionRecord, RunResult, Score
from controller.sim.scenario import TICK_SECONDS, Scenario, oracle_alive, startup_ticks

#: The policies ``simulate`` knows, in the order reports list them.
POLICY_NAMES = ("hpa", "scaleahead", "oracle")


TARGET = WorkloadRef(namespace="sim", name="workload")

#: The longest pod startup a run accepts: a day. Longer is no workload's startup, and the
#: oracle's look-ahead window (and the pods in flight) grow with it.
MAX_STARTUP_SECONDS = 86400.0


@dataclass(frozen=True)
class SimConfig:
    """Parameters of a run that are not the trace or the policy."""

    startup_seconds: float = 120.0
    startup_distribution: str = "fixed"  # "fixed" | "lognormal"
    seed: int = 0
    hpa_target: float = 0.7
    min_replicas: int = 1
    #: Settings of the scaleahead policy (a backtest's ConfigMap); ``None``: the defaults.
    settings: ControllerSettings | None = None
    #: The workload of ``settings`` whose overrides the backtest replays with; ``None``: none.
    workload: WorkloadSettings | None = None
    #: Make the scaleahead policy's forecasts in a second process, ahead of its decisions
    #: (``controller.sim.ahead``; same results), where the platform can fork and the run is a day
    #: or longer. ``False``: inline, in one process (``simulate --forecast-inline``).
    forecast_process: bool = True

    def __post_init__(self) -> None:
        if not math.isfinite(self.startup_seconds):
            raise UserError(f"--startup-seconds must be a finite number of seconds, got {self.startup_seconds:g}")
        if self.startup_seconds < 0:
            raise UserError(f"--startup-seconds must be >= 0, got {self.startup_seconds:g}")
        if self.startup_seconds > MAX_STARTUP_SECONDS:
            raise UserError(
                f"--startup-seconds must be at most {MAX_STARTUP_SECONDS:g} (a day), got {self.startup_seconds:g}"
            )
        if not 0 < self.hpa_target <= 1:
            raise UserError(f"--hpa-target must be in (0, 1], got {self.hpa_target:g}")
        if self.seed < 0:
            raise UserError(f"--seed must be a non-negative integer, got {self.seed}")
        if self.startup_distribution not in ("fixed", "lognormal"):
            raise UserError(f"--startup-distribution must be 'fixed' or 'lognormal', got {self.startup_distribution!r}")


PolicyBuilder = Callable[[PolicyPorts, Scenario, SimConfig], Policy]


def _build_hpa(ports: PolicyPorts, scenario: Scenario, config: SimConfig) -> Policy:
    # BENCHMARK.md section 4: autoscaling/v2 with no behavior field, tolerance 0.1,
    # downscale stabilisation 300 s, min 1, no max.
    return HpaPolicy(ports, _benchmark_hpa(config))


def _benchmark_hpa(config: SimConfig) -> hpa.HpaParams:
    """The ``hpa`` baseline's spec: BENCHMARK.md section 4 at the run's target."""
    return hpa.HpaParams(target_utilization_ratio=config.hpa_target, min_replicas=config.min_replicas)


def _build_oracle(ports: PolicyPorts, scenario: Scenario, config: SimConfig) -> Policy:
    alive = oracle_alive(scenario.demand, startup_ticks=startup_ticks(config.startup_seconds))
    return OraclePolicy(ports, t0=float(scenario.times[0]), alive=alive)


def _build_scaleahead(
    ports: PolicyPorts, scenario: Scenario, config: SimConfig, *, policy_class: type[PredictivePolicy] = PredictivePolicy
) -> PredictivePolicy:
    # One set of defaults for every trace: the settings' defaults (or the settings given,
    # for a backtest), mapped onto the policy exactly as the live loop maps them. The
    # startup time is learned from the pods; the settings' startup_seconds is only the prior.
    settings = config.settings or ControllerSettings()
    workload = config.workload or WorkloadSettings(namespace=TARGET.namespace, name=TARGET.name)
    options = policies.predictive_options(settings, workload, tick_seconds=TICK_SECONDS)
    params, kwargs = options.params, dict(options.kwargs)
    if config.settings is None:
        params = dataclasses.replace(params, min_replicas=config.min_replicas, max_replicas=hpa.UNBOUNDED_REPLICAS)
        if kwargs["reference"] is not None:
            # The counterfactual HPA is the policy's own (an HPA at its usual 0.7, as live), with the
            # run's bounds; not the baseline's --hpa-target: the policy is not told what it is scored against.
            hpa_ref = dataclasses.replace(kwargs["reference"].hpa, min_replicas=config.min_replicas, max_replicas=hpa.UNBOUNDED_REPLICAS)
            kwargs["reference"] = dataclasses.replace(kwargs["reference"], hpa=hpa_ref)
    return policy_class(ports, params, **kwargs, record_forecast=True)


BUILDERS: dict[str, PolicyBuilder] = {"hpa": _build_hpa, "scaleahead": _build_scaleahead, "oracle": _build_oracle}


def check_startup_fits(scenario: Scenario, config: SimConfig) -> None:
    """Refuse a startup longer than the trace: no pod created during the run would ever be ready.

    Raises:
        UserError: naming the trace, its span and the startup.
    """
    span = float(scenario.times[-1] - scenario.times[0])
    if config.startup_seconds > span:
        raise UserError(
            f"{scenario.name}: --startup-seconds {config.startup_seconds:g} is longer than the trace "
            f"({span:g} s): no pod started during the run would ever become ready"
        )


def parse_policies(text: str) -> list[str]:
    """Parse ``--policy a,b``; unknown names are a ``UserError`` listing the known ones."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError("--policy needs at least one policy name")
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        raise UserError(f"unknown policy {', '.join(map(repr, unknown))}; known: {', '.join(BUILDERS)}")
    return list(dict.fromkeys(names))


@dataclass
class _Arrays:
    ready: np.ndarray
    starting: np.ndarray
    decisions: list[DecisionRecord]


async def run_async(
    scenario: Scenario,
    policy: str,
    config: SimConfig,
    *,
    progress: Callable[[int], None] | None = None,
    builder: PolicyBuilder | None = None,
) -> RunResult:
    """Simulate ``policy`` on ``scenario`` and score it.

    Args:
        scenario: demand on the tick grid.
        policy: a name of ``BUILDERS`` (used for the score's ``policy`` field).
        config: startup, seed and baseline parameters.
        progress: called with the number of ticks done since the last call.
        builder: overrides the builder of ``policy`` (tests use it for probe policies).

    The scaleahead policy's forecasts are made in a second process, ahead of its decisions and with
    the same results, when ``config.forecast_process`` is set, the platform can fork and the run is
    a day or longer (``controller.sim.ahead``).
    """
    started = time.perf_counter()
    n = scenario.n_ticks
    times = scenario.times
    observed = scenario.observed()
    # The oracle is the physical limit of section 3: its pods start in exactly startup_seconds.
    distribution = "fixed" if policy == "oracle" else config.startup_distribution
    cluster = SimCluster(startup_seconds=config.startup_seconds, startup_distribution=distribution, seed=config.seed)
    cluster.ready = scenario.initial_pods(min_replicas=config.min_replicas)
    clock = SimClock(float(times[0]))
    ports = PolicyPorts(
        clock=clock,
        metrics=SimMetrics(clock=clock, t0=float(times[0]), observed=observed),
        pods=SimPods(cluster, t0=float(times[0])),
        actuator=SimActuator(cluster),
    )
    ready = np.empty(n, dtype=np.int64)
    starting = np.empty(n, dtype=np.int64)
    decisions: list[DecisionRecord] = []
    chunk = 8192
    with contextlib.ExitStack() as cleanup:
        if builder is None and policy == "scaleahead" and config.forecast_process and n >= ahead.MIN_TICKS and ahead.available():
            fed = _build_scaleahead(ports, scenario, config, policy_class=ahead.FedPolicy)
            bound = ahead.horizon_startup_seconds(fed, startup_seconds=config.startup_seconds, distribution=distribution)
            fed.feed = ahead.ForecastFeed.start(fed, times=times, observed=observed, horizon_startup_seconds=bound)
            cleanup.callback(fed.feed.close)
            instance: Policy = fed
        else:
            instance = (builder or BUILDERS[policy])(ports, scenario, config)
        for i in range(n):
            clock.t = float(times[i])
            cluster.advance(i)
            decision = await instance.reconcile(TARGET)
            if decision.to_value != decision.from_value:
                decisions.append(DecisionRecord(i, decision.from_value, decision.to_value, str(decision.reason)))
            ready[i] = cluster.ready
            starting[i] = len(cluster.starting)
            if progress is not None and (i + 1) % chunk == 0:
                progress(chunk)
    if progress is not None and n % chunk:
        progress(n % chunk)

    wall = time.perf_counter() - started
    score = score_run(scenario, policy=policy, config=config, ready=ready, starting=starting, wall_seconds=wall)
    return RunResult(
        score=score,
        times=times,
        demand=scenario.demand,
        observed=observed,
        ready=ready,
        starting=starting,
        scored_from=scenario.scored_from,
        decisions=tuple(decisions),
        forecast=getattr(instance, "forecast_band", None),
        quantile_changes=tuple((c.at, c.message) for c in getattr(instance, "rung_changes", ())),
    )


def run(scenario: Scenario, policy: str, config: SimConfig, **kwargs) -> RunResult:
    """Synchronous wrapper of ``run_async``."""
    return asyncio.run(run_async(scenario, policy, config, **kwargs))


def score_run(
    scenario: Scenario,
    *,
    policy: str,
    config: SimConfig,
    ready: np.ndarray,
    starting: np.ndarray,
    wall_seconds: float,
) -> Score:
    """The scores of BENCHMARK.md section 3 over the scored ticks."""
    s = scenario.scored_from
    demand = scenario.demand[s:]
    r = ready[s:].astype(float)
    total = (ready + starting)[s:]
    shortfall = np.maximum(0.0, demand - r)
    demand_sum = float(demand.sum())
    unserved_pct = 100.0 * float(shortfall.sum()) / demand_sum if demand_sum > 0 else 0.0
    under_pct = 100.0 * float(np.mean(demand > r)) if len(demand) else 0.0
    hours_per_tick = TICK_SECONDS / 3600.0
    pod_hours = float(total.sum()) * hours_per_tick
    alive = oracle_alive(scenario.demand, startup_ticks=startup_ticks(config.startup_seconds))
    oracle_pod_hours = float(alive[s:].sum()) * hours_per_tick
    # A change at the first scored tick counts against the last warm-up tick.
    replicas = ready + starting
    prev = replicas[s - 1] if s > 0 else scenario.initial_pods(min_replicas=config.min_replicas)
    changes = np.diff(np.concatenate([[prev], replicas[s:]]))
    return Score(
        trace=scenario.name,
        policy=policy,
        startup_seconds=float(config.startup_seconds),
        peak_pods=float(scenario.peak_pods),
        unserved_pct=unserved_pct,
        underprovisioned_time_pct=under_pct,
        pod_hours=pod_hours,
        oracle_pod_hours=oracle_pod_hours,
        cost_ratio=pod_hours / oracle_pod_hours if oracle_pod_hours > 0 else float("nan"),
        scale_actions=int(np.count_nonzero(changes)),
        wall_seconds=wall_seconds,
    )
