"""Policies: one reconcile of one workload, through the ports.

A policy observes (metrics and pods), asks a pure planner for a ``Plan``, keeps
the returned state, and acts through the actuator only when the count changes
(compare before writing). The live loop and the simulator call the very same
``reconcile``; only the adapters behind the ports differ.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

import dataclasses

import models
from controller.decide import baseline, hpa, leadtime, planner
from controller.domain import ControllerState, Decision, Observation, WorkloadRef
from controller.ports import Clock, MetricsSource, PodCounter, ReplicaActuator
from controller.settings import ControllerSettings, ReplicaSettings, WorkloadSettings
from models.base import Forecast, Forecaster
from models.core import Buffer

#: Options of the forecasters the policy builds, by model name; the simulator and the live
#: loop both use them, so the policy that is scored is the policy that runs.
FORECASTER_OPTIONS: dict[str, dict[str, object]] = {
    # The policy refits on its own schedule, so ``auto`` must not refit inside ``update``.
    # Empirical error quantiles, not volatility-scaled ones: after a burst the scaled
    # intervals stay wide for an hour and hold idle pods (see docs/benchmarks.md).
    # Only naive and ETS: at the tick's step and a lead of a few minutes, the seasonal candidates
    # (seasonal-naive, STL) were never chosen on the bundled traces, and each candidate costs an
    # update per tick; the GBM's update costs ~1.3 ms per point. ``forecast-eval`` still runs them all.
    "auto": {
        "refit_interval_steps": 0,
        "candidates": ("naive", "ets"),
        "calibration": "empirical",
    },
}


def shown_load(value: float) -> float:
    """A forecast load as the report and the gauges show it: below 0 it is 0 (a load is never
    negative; a lower quantile near an idle load often is, and the planner provisions no pod for a
    load at or below 0 either). NaN stays NaN: no forecast is not an idle one."""
    value = float(value)
    return 0.0 if value <= 0 else value  # <=: -0.0 is shown as 0 too


def forecaster_factory(name: str, *, max_horizon_steps: int) -> Callable[[], Forecaster]:
    """A factory of fresh forecasters ``name`` with the policy's options (``FORECASTER_OPTIONS``)."""
    options = {"max_horizon_steps": max_horizon_steps, **FORECASTER_OPTIONS.get(name, {})}
    models.create(name, **options)  # fail now, with the known names, on a bad name or option
    return lambda: models.create(name, **options)


def max_horizon_steps(*, startup_seconds: float, lag_seconds: float, tick_seconds: float, step_seconds: float) -> int:
    """Horizons the forecaster keeps its own error quantiles for: the lead time with room for the
    startup estimate to double (longer horizons still work, with scaled-up errors)."""
    lead = 2 * startup_seconds + lag_seconds + 2 * tick_seconds + step_seconds
    return max(16, math.ceil(lead / step_seconds) + 1)


def planner_params(settings: ControllerSettings, workload: WorkloadSettings) -> planner.PlannerParams:
    """The workload's effective settings mapped onto ``planner.PlannerParams``.

    ``replicas.behavior`` replaces the planner's behaviour when set; when it is null the
    planner's own (``default_predictive_behavior``) is used with its scale-down window set
    to ``downscale_stabilization_seconds``.
    """
    replicas, forecast = settings.effective_replicas(workload), settings.effective_forecast(workload)
    behavior = replicas.to_behavior()
    window_from_lead = behavior is None and replicas.scale_down_window_from_lead
    if behavior is None:
        default = planner.default_predictive_behavior()
        behavior = dataclasses.replace(
            default,
            scale_down=dataclasses.replace(default.scale_down, stabilization_window_seconds=replicas.downscale_stabilization_seconds),
        )
    return planner.PlannerParams(
        min_replicas=replicas.min_replicas,
        max_replicas=replicas.max_replicas,
        capacity_per_pod=settings.metrics.capacity_per_pod,
        target_utilization_ratio=replicas.target_utilization_ratio,
        quantile=forecast.quantile,
        widened_quantile=max(forecast.quantile, 0.975),
        tolerance=replicas.tolerance_ratio,
        scale_up_headroom=replicas.scale_up_headroom_ratio,
        scale_in_band=replicas.scale_in_band_ratio,
        scale_down_headroom=replicas.scale_down_headroom_ratio,
        scale_down_window_from_lead=window_from_lead,
        behavior=behavior,
    )


def reference_params(settings: ControllerSettings, workload: WorkloadSettings) -> baseline.ReferenceParams | None:
    """The counterfactual HPA and the workload's quantile ladder (``forecast.quantile``, then
    ``raise_quantile_to``, ``lower_quantile_to`` and ``lean_quantile``, each as the workload
    overrides it); ``None`` when there is no other rung."""
    forecast = settings.effective_forecast(workload)
    higher, lower, lean = forecast.raise_quantile_to, forecast.lower_quantile_to, forecast.lean_quantile
    if not higher and not lower and lean is None and not forecast.fallback_to_hpa:
        return None
    replicas = settings.effective_replicas(workload)
    reference_hpa = hpa.HpaParams(
        min_replicas=replicas.min_replicas,
        max_replicas=replicas.max_replicas,
        capacity_per_pod=settings.metrics.capacity_per_pod,
    )
    return baseline.ReferenceParams(
        hpa=reference_hpa,
        quantiles=(forecast.quantile, *higher, *lower, *([] if lean is None else [lean])),
        days=forecast.reference_days,
        lean=lean is not None,
        hpa_rung=forecast.fallback_to_hpa,
        score_delay_seconds=settings.metrics.trail_seconds,
        make_up=forecast.make_up_shortfall,
        spend=forecast.spend_savings_on_service,
    )


def rung_params(params: planner.PlannerParams, quantiles: Sequence[float], *, lean: bool = False) -> list[planner.PlannerParams]:
    """The planner's parameters at each rung of the ladder ``quantiles``.

    A rung at or above ``params.quantile`` widens, while loads come above the intervals too often, to
    ``params.widened_quantile`` as the configured quantile does. A lower rung never widens: it is
    taken because the configured quantile's headroom, widening included, held more pods than the
    HPA while serving no worse (docs/policy.md, ninth round); a forecast the gate distrusts
    still falls back to the reactive floor at any rung.

    With ``lean`` the last rung is the lean one (``lean_params``).
    """
    rungs = [
        dataclasses.replace(params, quantile=q, widened_quantile=q if q < params.quantile else max(q, params.widened_quantile))
        for q in quantiles
    ]
    if lean:
        rungs[-1] = lean_params(params, quantiles[-1])
    return rungs


def lean_params(params: planner.PlannerParams, quantile: float) -> planner.PlannerParams:
    """The lean rung (``forecast.lean_quantile``): ``quantile`` of the forecast at full utilisation,
    without the planner's own margins: no hysteresis band, and the configured scale-down window
    (``downscale_stabilization_seconds`` or the behaviour's, the HPA's 300 s by default) instead of
    the lead time. The scale-in tolerance (the HPA's 10%) stays: without it the lean rung changed
    the count a third more often than the HPA on Azure 2017 at 300 s startup, with it 9% more, at
    the same service (docs/policy.md, twelfth round).

    Full utilisation replaces the default ``target_utilization_ratio`` (0.95) only: a workload
    whose target was set below it (headroom for latency, say) keeps its own at this rung too.
    The reactive floor is the HPA's calculation at the same utilisation; the rate policies and
    the scale-in guard apply as at every rung.

    Where a forecast five minutes ahead is wide (bursty loads, long startups), every quantile's
    headroom held more pods than the HPA's fixed 30%, and the median at full utilisation is what
    serves better at fewer pod-hours.
    """
    default_target = ReplicaSettings.model_fields["target_utilization_ratio"].default
    target = 1.0 if params.target_utilization_ratio >= default_target else params.target_utilization_ratio
    return dataclasses.replace(
        params,
        quantile=quantile,
        widened_quantile=quantile,
        target_utilization_ratio=target,
        scale_up_headroom=0.0,
        scale_in_band=0.0,
        scale_down_headroom=0.0,
        scale_down_window_from_lead=False,
    )


@dataclass(frozen=True)
class PredictiveOptions:
    """How a workload's settings configure ``PredictivePolicy`` (see ``predictive_options``).

    Attributes:
        params: the planner parameters.
        kwargs: the policy's keyword arguments (forecaster factory, startup prior and
            quantile, metrics lag, tick, model step, history, refit interval).
        max_horizon_steps: the horizons the forecasters keep their own error quantiles for.
    """

    params: planner.PlannerParams
    kwargs: dict[str, Any]
    max_horizon_steps: int


def predictive_options(
    settings: ControllerSettings,
    workload: WorkloadSettings,
    *,
    tick_seconds: float,
    model_step_seconds: float | None = None,
) -> PredictiveOptions:
    """The settings of one workload mapped onto ``PredictivePolicy``'s keyword arguments.

    The simulator, the backtest and the live loop all build their policy from this, so the
    policy that is scored is the policy that runs.

    Args:
        settings: the controller settings.
        workload: the workload (its overrides apply).
        tick_seconds: the loop's interval.
        model_step_seconds: step of the series the model sees; ``None``: the tick (never shorter).
    """
    replicas, forecast = settings.effective_replicas(workload), settings.effective_forecast(workload)
    step = max(model_step_seconds or tick_seconds, tick_seconds)
    lag = settings.metrics.lag_seconds
    horizon = max_horizon_steps(
        startup_seconds=replicas.startup_seconds, lag_seconds=lag, tick_seconds=tick_seconds, step_seconds=step
    )
    kwargs: dict[str, Any] = {
        "forecaster_factory": forecaster_factory(forecast.model, max_horizon_steps=horizon),
        "startup_prior_seconds": replicas.startup_seconds,
        "startup_quantile": replicas.startup_quantile,
        "lag_seconds": lag,
        "tick_seconds": tick_seconds,
        "model_step_seconds": step,
        "history_seconds": forecast.history_days * 86400.0,
        "refit_interval_seconds": float(forecast.refit_interval_seconds),
        "reference": reference_params(settings, workload),
    }
    return PredictiveOptions(planner_params(settings, workload), kwargs, horizon)


@dataclass(frozen=True)
class PolicyPorts:
    """The ports a policy works through."""

    clock: Clock
    metrics: MetricsSource
    pods: PodCounter
    actuator: ReplicaActuator


async def observe(ports: PolicyPorts, target: WorkloadRef, query: str) -> Observation:
    """Read what one reconcile plans on: the load now, the pod counts and ``spec.replicas``."""
    now = ports.clock.now()
    sample = await ports.metrics.instant(query, now)
    ready, starting = await ports.pods.pod_counts(target)
    current = await ports.actuator.current_replicas(target)
    return Observation(now, None if sample is None else sample.value, ready, starting, current)


async def act(ports: PolicyPorts, target: WorkloadRef, decision: Decision) -> Decision:
    """Scale ``target`` when the decision changes its count (compare before writing)."""
    if decision.to_value != decision.from_value:
        await ports.actuator.scale(target, decision.to_value, decision.reason)
    return decision


class Policy(Protocol):
    """One workload's controller: ``reconcile`` runs once per tick."""

    name: str

    async def reconcile(self, target: WorkloadRef) -> Decision:
        """Observe ``target``, decide, and act; return the decision (``scale`` or ``no-op``)."""
        ...


class HpaPolicy:
    """The HorizontalPodAutoscaler (``controller.decide.hpa``) behind the ports.

    Args:
        ports: where to observe and act.
        params: the HPA's spec and flags.
        query: the load query (PromQL live; ignored by the simulator's single series).
    """

    name = "hpa"

    def __init__(self, ports: PolicyPorts, params: hpa.HpaParams, *, query: str = "") -> None:
        self._ports = ports
        self._params = params
        self._query = query
        self.state = ControllerState()

    async def reconcile(self, target: WorkloadRef) -> Decision:
        obs = await observe(self._ports, target, self._query)
        result = hpa.plan(obs, self._params, self.state, obs.at, target=target.name)
        self.state = result.state
        return await act(self._ports, target, result.decisions[0])


@dataclass(frozen=True, slots=True)
class RungChange:
    """A change of the provisioning quantile at a day's end (``PredictivePolicy.rung_changes``).

    Attributes:
        at: when it was chosen (the policy's clock).
        before, after: the quantile before and after; NaN for the HPA rung.
        why: the reason, for a person (``baseline.choose_rung_why``).
    """

    at: float
    before: float
    after: float
    why: str

    @property
    def message(self) -> str:
        def name(q: float) -> str:
            return "the HPA rung" if math.isnan(q) else f"quantile {q:g}"

        return f"provisioning at {name(self.after)} from {name(self.before)}: {self.why}"


class PredictivePolicy:
    """scaleahead's own policy: forecast the load at the lead time and plan with ``decide.planner``.

    Per tick it observes the load, the pod counts and the startups of pods that
    became ready (to learn the lead time), keeps the load history at the model's
    step (``model_step_seconds``, the mean of the ticks in each step), feeds each new
    step to the forecaster with a cheap ``update`` and predicts, refits on a
    schedule, and asks the pure planner for the count.

    Refits happen inline here; the live loop runs them off the event loop and hands
    the fitted model back (TODO(#5)). The simulator's clock makes inline refits
    equivalent there.

    Args:
        ports: where to observe and act.
        params: planner tuning.
        forecaster_factory: builds a fresh, unfitted forecaster.
        startup_prior_seconds: startup estimate before any pod was seen starting.
        startup_quantile: which decayed quantile of the observed startups is the estimate.
        lag_seconds: how old the observed load is (scrape interval and rate window).
        tick_seconds: the loop interval.
        model_step_seconds: step of the series the forecaster sees.
        history_seconds: how much history a refit uses.
        refit_interval_seconds: time between refits once the first fit is done.
        first_fit_seconds: history needed before the first fit.
        record_forecast: keep, per tick, the forecast interval at the lead time (for reports).
        reference: run the HPA, and the planner at the higher quantiles, as counterfactuals on
            the observed load, and each day provision at the lowest quantile that was no worse
            than the HPA over the last days (``decide.baseline``); ``None``: always ``params.quantile``.
    """

    name = "scaleahead"

    def __init__(
        self,
        ports: PolicyPorts,
        params: planner.PlannerParams,
        *,
        forecaster_factory: Callable[[], Forecaster],
        query: str = "",
        startup_prior_seconds: float = 120.0,
        startup_quantile: float = 0.5,
        lag_seconds: float = 15.0,
        tick_seconds: float = 15.0,
        model_step_seconds: float = 15.0,
        history_seconds: float = 14 * 86400.0,
        refit_interval_seconds: float = 86400.0,
        first_fit_seconds: float = 6 * 3600.0,
        record_forecast: bool = False,
        reference: baseline.ReferenceParams | None = None,
    ) -> None:
        self._ports = ports
        self._params = params
        self._factory = forecaster_factory
        self._query = query
        self._lag = lag_seconds
        self._tick = tick_seconds
        self._step = model_step_seconds
        self._history_steps = max(2, int(history_seconds // model_step_seconds))
        self._refit_interval = refit_interval_seconds
        self._first_fit_steps = max(2, int(first_fit_seconds // model_step_seconds))
        rungs = reference.quantiles if reference is not None else (params.quantile,)
        self._levels = tuple(sorted({params.interval[0], params.interval[1], params.widened_quantile, 0.5, *rungs}))
        self._rung_params = rung_params(params, rungs, lean=reference is not None and reference.lean)
        self._reference = reference
        self.rung = 0
        #: The real pods' tally minus the reference HPA's, over every completed period (``choose_rung``'s balance).
        self.balance = baseline.Tally()
        #: The reference HPA's pod-seconds over the periods ``balance`` counts (the spending reserve's base).
        self.hpa_pod_seconds = 0.0
        #: The changes of rung and why, oldest first (the live loop logs each and records an event;
        #: the simulator's report lists them): once a day at most, the last 64 kept.
        self.rung_changes: collections.deque[RungChange] = collections.deque(maxlen=64)
        self._real_hpa: ControllerState | None = None  # the HPA's syncs on the real pods, on the HPA rung
        self._hpa: baseline.ShadowHpa | None = None
        self._shadows: dict[int, tuple[baseline.ShadowPods, ControllerState]] = {}
        self._today: tuple[baseline.Tally, list[baseline.Tally], float] | None = None
        # (tick time, each side's (ready, replicas)) of the last ticks, the oldest first (``_run_counterfactuals``).
        self._ready_log: collections.deque[tuple[float, dict[int, tuple[int, int]]]] = collections.deque()
        self._days: list[tuple[baseline.Tally, list[baseline.Tally], float]] = []
        self._period_end = float("inf")
        self._restored_period_end: float | None = None
        #: (time, quantile) at each end of a period: the quantile chosen for the next one.
        self.quantile_history: list[tuple[float, float]] = []
        #: Whether the real pods follow this policy's decisions (the live loop sets it: not in
        #: ``recommend`` mode). When they do not, the rung in use is scored as a counterfactual
        #: too, never on pods something else drives.
        self.acting = True
        self.startup = leadtime.StartupEstimate(prior_seconds=startup_prior_seconds, quantile=startup_quantile)
        self.state = ControllerState()
        #: The confidence gate's share of recent outcomes above the forecast interval at the last
        #: tick (the planner widens the quantile above ``widen_above_share``); ``None`` before it.
        self.interval_above: float | None = None
        self._since = -float("inf")
        self._bucket: list[float] = []
        self._bucket_start: float | None = None
        self._history = self._new_history(np.empty(0))
        self._history_end = 0.0  # time of the last history point
        self._model: Forecaster | None = None
        self._next_refit = float("inf")
        self._forecast: Forecast | None = None
        self.record_forecast = record_forecast
        self._band: list[tuple[float, float, float, float]] = []

    @property
    def forecast_band(self) -> dict[str, np.ndarray] | None:
        """Per tick: the interval and the median forecast for ``now + lead`` (NaN before the first fit), the
        lead, and the provisioning quantile."""
        if not self.record_forecast or not self._band:
            return None
        arr = np.asarray(self._band, dtype=float)
        return {"lower": arr[:, 0], "mean": arr[:, 1], "upper": arr[:, 2], "lead_seconds": arr[:, 3], "quantile": arr[:, 4]}

    async def reconcile(self, target: WorkloadRef) -> Decision:
        ports = self._ports
        obs = await observe(ports, target, self._query)
        now, load = obs.at, obs.load
        startups = await ports.pods.recent_startups(target, since=self._since)
        if startups:
            self._since = startups[-1][0]
            self.startup = self.startup.observe(s for _, s in startups)
        self._observe_load(now, load)

        timing = planner.Timing(
            lead_seconds=leadtime.lead_seconds(startup_seconds=self.startup.seconds, lag_seconds=self._lag, tick_seconds=self._tick),
            startup_seconds=self.startup.seconds,
        )
        # The rungs differ in their quantiles only, not in the gate: their interval checks are the real ones (a
        # counterfactual starts from the real state and then sees the same forecasts and load).
        gate = planner.score_gate(obs, self._forecast, self._rung_params[0 if self.hpa_mode else self.rung], self.state, now, timing=timing)
        self.interval_above = gate.above
        if self._reference is not None:
            self._run_counterfactuals(obs, timing, gate)  # at a period's end it may choose another rung
        if self.hpa_mode:
            decision = self._scale_as_hpa(obs, gate, target)
        else:
            params = self._rung_params[self.rung]
            result = planner.plan(obs, self._forecast, params, self.state, now, timing=timing, target=target.name, gate=gate)
            self.state = result.state
            decision = result.decisions[0]
        if self.record_forecast:
            self._band.append((*self._band_at(now + timing.lead_seconds), timing.lead_seconds, self.quantile))
        return await act(ports, target, decision)

    def _scale_as_hpa(self, obs: Observation, gate: planner.Gate, target: WorkloadRef) -> Decision:
        """The HPA rung (``forecast.fallback_to_hpa``): the reference HPA's sync on the real pods.

        It takes over the reference HPA's history when the rung is taken (``_run_counterfactuals``),
        so the real pods go where the HPA's would be; after a restart on this rung it starts as a
        new HPA object would (its first syncs never scale in below the current count). The
        planner's interval checks go on, so the confidence gate knows the forecast when a
        quantile is taken again.
        """
        assert self._reference is not None
        state = self.state  # built, not ``dataclasses.replace``d: this runs at every tick on the HPA rung
        self.state = ControllerState(state.recommendations, state.scale_up_events, state.scale_down_events, gate.pending, gate.outcomes)
        result = hpa.plan(obs, self._reference.hpa, self._real_hpa or ControllerState(), obs.at, target=target.name)
        self._real_hpa = result.state
        decision = result.decisions[0]
        days = self._reference.days
        last = f"over the last {days} day{'s' if days > 1 else ''}"
        if self.balance.uncovered > 0:
            owed = self.balance.uncovered / 3600
            why = (
                f"hpa rung: the pods left more load uncovered than the HPA would have (by {owed:.3g} load-hours in all),"
                f" and no quantile made up at least half of that, at no more pods and no worse on any day, {last}"
            )
        else:
            why = f"hpa rung: no quantile was no worse than the HPA on both {last}"
        d = decision
        return Decision(d.kind, d.target, d.from_value, d.to_value, d.reason, f"{why}; {d.message}", d.stages)

    @property
    def rung_change(self) -> RungChange | None:
        """The last change of rung, or ``None`` before one."""
        return self.rung_changes[-1] if self.rung_changes else None

    @property
    def against_hpa(self) -> tuple[float, float, float] | None:
        """The balance against the reference HPA: pod-seconds held minus the HPA's, load-seconds left
        uncovered minus the HPA's, and the HPA's pod-seconds, over the periods counted; ``None``
        without a ladder or a balance (``forecast.make_up_shortfall`` off), and before anything is
        counted (a 0 would read as a real balance)."""
        if self._reference is None or not self._reference.make_up:
            return None
        if self.hpa_pod_seconds == 0 and self.balance == baseline.Tally():
            return None
        return (self.balance.pod_seconds, self.balance.uncovered, self.hpa_pod_seconds)

    @property
    def hpa_mode(self) -> bool:
        """Whether the real pods are scaled as the reference HPA scales them (the HPA rung)."""
        return self.rung == len(self._rung_params)

    @property
    def quantile(self) -> float:
        """The provisioning quantile in use (the configured one, or another rung of the ladder chosen against the
        HPA); NaN on the HPA rung (``hpa_mode``)."""
        return math.nan if self.hpa_mode else self._rung_params[self.rung].quantile

    @property
    def startup_since(self) -> float:
        """Pods that became Ready at or before this time are in the startup samples already."""
        return self._since

    def restore_startup(self, samples: Sequence[tuple[float, float]], *, since: float) -> None:
        """Take over startup samples learnt before (a rebuilt policy's, the state annotation's);
        only pods Ready after ``since`` are sampled from now on, so none is counted twice."""
        self.startup = dataclasses.replace(self.startup, samples=tuple(samples))
        self._since = max(self._since, since)

    def reference_memory(self) -> baseline.ReferenceMemory | None:
        """What the choice of quantile has learnt (for the state annotation); ``None`` before its
        first tick or without a ladder."""
        if self._reference is None or not math.isfinite(self._period_end):
            return None
        days = tuple((h, tuple(rungs), load) for h, rungs, load in self._days)
        return baseline.ReferenceMemory(
            self._reference.quantiles, self.rung, days, self._period_end, self._reference.lean, self.balance, self.hpa_pod_seconds
        )

    def restore_reference(self, memory: baseline.ReferenceMemory) -> str | None:
        """Continue the choice of quantile from ``memory`` (before the first tick).

        Returns:
            ``None`` when it was restored, else why it was not (the ladder changed, ...); the
            choice then starts over at the configured quantile, as on a first start.
        """
        if self._reference is None:
            return "this policy has no ladder of quantiles"
        problem = memory.fits(self._reference.quantiles, lean=self._reference.lean, hpa_rung=self._reference.hpa_rung)
        if problem is not None:
            return problem
        self._days = list(memory.days)[-self._reference.days :]
        self.rung = memory.rung
        self.balance = memory.balance
        self.hpa_pod_seconds = memory.hpa_pod_seconds
        self._restored_period_end = memory.period_end
        return None

    def _run_counterfactuals(self, obs: Observation, timing: planner.Timing, gate: planner.Gate) -> None:
        """Step the reference HPA and the planner at the other rungs on this tick's load, score
        every side, and at the end of a period choose the next period's rung (``decide.baseline``)."""
        ref = self._reference
        now, load = obs.at, obs.load
        startup = timing.startup_seconds
        if self._hpa is None:
            pods = baseline.ShadowPods.observed(obs, ready_at=now + startup)
            self._hpa = baseline.ShadowHpa(pods)
            self._shadows = {i: (pods, self.state) for i in range(len(self._rung_params)) if i != self.rung or not self.acting}
            self._today = (baseline.Tally(), [baseline.Tally()] * len(self._rung_params), 0.0)
            restored = self._restored_period_end
            # A restored period goes on to its end (its first part, before the restart, is not
            # counted); one that ended while no controller ran starts afresh.
            self._period_end = restored if restored is not None and restored > now else now + ref.period_seconds
        scored = baseline.finite(load)
        cap = self._params.capacity_per_pod
        hpa_tally, tallies, day_load = self._today

        if self.acting:
            self._shadows.pop(self.rung, None)  # the real pods follow it (again)
        elif not self.hpa_mode and self.rung not in self._shadows:  # they stopped following it: go on from where they are
            self._shadows[self.rung] = (baseline.ShadowPods.observed(obs, ready_at=now + startup), self.state)
        hpa_pods = self._hpa.pods.advance(now)  # what the HPA's pods serve this tick, before it decides
        # Each side's pods this tick, (ready, replicas); -1 is the HPA. On the HPA rung the reference
        # HPA's tally is the real pods'.
        sides = {-1: (hpa_pods.ready, hpa_pods.replicas)}
        if self.acting and not self.hpa_mode:
            sides[self.rung] = (obs.ready, obs.ready + obs.starting)
        self._hpa = baseline.step_hpa(self._hpa, load, now, startup_seconds=startup, params=ref.hpa)
        for i, (pods, state) in self._shadows.items():
            pods = pods.advance(now)
            desired, state = planner.plan_replicas(
                pods.observation(now, load), self._forecast, self._rung_params[i], state, now, timing=timing, gate=gate
            )
            sides[i] = (pods.ready, pods.replicas)
            self._shadows[i] = (pods.scale(desired, now, startup_seconds=startup), state)
        log = self._ready_log
        log.append((now, sides))
        # The load observed now is the load of a while ago (``ReferenceParams.score_delay_seconds``):
        # it is scored against the pods ready at the last tick at or before then (by time, not by a
        # count of ticks: a live loop may skip ticks), or at the oldest kept while none is that old.
        since = now - ref.score_delay_seconds
        while len(log) > 1 and log[1][0] <= since + 1e-9:
            log.popleft()
        if scored:
            then = log[0][1]
            tick = self._tick
            for i, (ready, replicas) in sides.items():
                served = then[i][0] if i in then else ready
                if i < 0:
                    hpa_tally = hpa_tally.add(ready=served, replicas=replicas, load=load, capacity_per_pod=cap, seconds=tick)
                else:
                    tallies[i] = tallies[i].add(ready=served, replicas=replicas, load=load, capacity_per_pod=cap, seconds=tick)
            day_load += load * tick
        self._today = (hpa_tally, tallies, day_load)

        if now >= self._period_end:
            # The first day is not counted: the configured quantile ran on a forecast no day had vetted,
            # by no choice the balance could correct, and owing its shortfall would hold a workload the
            # HPA never underserves on the HPA rung for good (no rung can serve better than nothing uncovered).
            if ref.make_up and self._days:
                used = hpa_tally if self.hpa_mode else tallies[self.rung]
                self.balance = self.balance + used - hpa_tally
                self.hpa_pod_seconds += hpa_tally.pod_seconds
            self._days = [*self._days, self._today][-ref.days :]
            self._today = (baseline.Tally(), [baseline.Tally()] * len(self._rung_params), 0.0)
            while self._period_end <= now:  # after a gap longer than a period: the next boundary ahead
                self._period_end += ref.period_seconds
            # Without the make-up the balance is not kept: one restored from a state written with
            # it would stand still, owing or spending the same amount every day.
            rung, why = baseline.choose_rung_why(
                self._days,
                ref.quantiles,
                slack=ref.slack,
                hpa_rung=ref.hpa_rung,
                balance=self.balance if ref.make_up else None,
                spend=ref.spend and ref.make_up,
                hpa_pod_seconds=self.hpa_pod_seconds,
            )
            if rung != self.rung:
                after = math.nan if rung == len(ref.quantiles) else ref.quantiles[rung]
                self.rung_changes.append(RungChange(now, self.quantile, after, why))
            if rung != self.rung and self.acting:
                # The real pods continue at the new rung; the old rung goes on as a counterfactual
                # from where the real ones are (starting pods counted as ready a startup from now).
                # The HPA rung has no counterfactual of its own: the reference HPA is one.
                self._shadows.pop(rung, None)
                if not self.hpa_mode:
                    self._shadows[self.rung] = (baseline.ShadowPods.observed(obs, ready_at=now + startup), self.state)
            if rung != self.rung:
                # The HPA rung takes over the reference HPA's history (its recommendations and scale
                # events): the real pods then go where the HPA's would be, not where a new HPA object
                # would take them from here.
                self._real_hpa = self._hpa.state
            self.rung = rung
            self.quantile_history.append((now, self.quantile))

    def _observe_load(self, now: float, load: float | None) -> None:
        """Aggregate ticks into model steps; update, refit and predict at each completed step."""
        value = self._completed_step(now, load)
        if value is None:
            if self._bucket_start is None:
                self._bucket_start = now
            self._bucket.append(np.nan if load is None else load)
            return
        self._bucket, self._bucket_start = [], None
        # Whole steps missed (ticks skipped after failures) are gaps, not squeezed out: the
        # model's clock stays the loop's, so ``now + lead`` reads the right point.
        missed = 0
        if len(self._history):
            missed = min(max(0, math.floor((now - self._history_end) / self._step + 0.5) - 1), self._history_steps)
        values = np.array([*([np.nan] * missed), value]) if missed else None
        if values is not None:
            self._history.extend(values)
        else:
            self._history.append(value)
        self._history_end = now

        if self._fit_due(now, len(self._history)):
            self._refit(now)
        elif self._model is not None:
            self._model.update(values if values is not None else np.array([value]))
        if self._model is not None:
            self._forecast = self._model.predict(self._forecast_steps(), self._levels)

    def _completed_step(self, now: float, load: float | None) -> float | None:
        """The value of the model step the observation at ``now`` completes, or ``None`` (no state change)."""
        bucket_start = now if self._bucket_start is None else self._bucket_start
        if now - bucket_start + self._tick < self._step - 1e-9:
            return None
        return self.step_value([*self._bucket, np.nan if load is None else load])

    def _new_history(self, values: np.ndarray) -> Buffer:
        """A load history holding ``values``: a numpy buffer, not a list of floats (14 days of 15-s
        steps are 80,640 per workload), with an eighth of spare room (one compaction every eighth
        of it appended) rather than the default double: a policy reads only its last
        ``history_steps`` and compares its length with the first fit's steps, never more than
        its capacity, so the spare changes no decision."""
        capacity = max(self._history_steps, self._first_fit_steps)
        return Buffer.lean(values, capacity)

    def _fit_window(self) -> np.ndarray:
        """The history a refit now fits on: the last ``history_steps`` steps, copied (a fit may run
        in another thread while the buffer moves on)."""
        return self._history.view()[-self._history_steps :].copy()

    def _fit_due(self, now: float, history_len: int) -> bool:
        """Whether a step completed at ``now`` with ``history_len`` steps kept refits the model."""
        return history_len >= self._first_fit_steps if self._model is None else now >= self._next_refit

    def _forecast_steps(self) -> int:
        """Steps to forecast: past the end of the lead interval at the current startup estimate."""
        return max(1, math.ceil((self.startup.seconds + self._lag + 2 * self._tick + self._step) / self._step) + 1)

    @staticmethod
    def step_value(observations: list[float]) -> float:
        """The value of one model step: its last finite observation (NaN when it has none).

        Like a range query of the rate at this step; unlike a mean it does not smooth away
        short peaks.
        """
        for v in reversed(observations):
            if v == v:
                return v
        return np.nan

    def _refit(self, now: float) -> None:
        y = self._fit_window()
        start = self._history_end - (len(y) - 1) * self._step
        model = self._factory()
        model.fit(y, step_seconds=self._step, start_seconds=start)
        self._model = model
        self._next_refit = now + self._refit_interval

    def _band_at(self, at: float) -> tuple[float, float, float]:
        f = self._forecast
        if f is None:
            return (np.nan, np.nan, np.nan)
        k = f.index_at(at)
        lo, hi = self._params.interval
        return (shown_load(f.quantile(lo)[k]), shown_load(f.quantile(0.5)[k]), shown_load(f.quantile(hi)[k]))
