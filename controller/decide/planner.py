"""The predictive replica planner: provision for the load expected when a new pod would be ready.

``plan()`` composes named stages, in this order, each with a reason:

1. ``confidence`` -- score the forecast intervals that came due against what was
   observed. When recent outcomes come above the model's own central interval
   much more often than they should (the forecast runs low, as on a ramp it does
   not follow), widen the provisioning quantile; when they almost never fall
   inside it, do not use the forecast at all this tick.
2. ``forecast_replicas`` -- the peak of the provisioning quantile of the forecast
   between ``now + startup`` (when a pod ordered now could serve) and ``now + lead``
   (lead = startup estimate + metrics lag + one tick), divided by what one pod
   serves at the target utilisation.
3. ``floor_replicas`` -- the reactive floor: the HPA's replica calculation on the
   load observed now (at the target utilisation; at the HPA's own 0.7 when the
   forecast is not trusted or missing), so a surprise is met as the HPA would meet it.
   ``raw_replicas`` is the larger of the two. Pods already starting are part of the
   current count, so they are capacity in flight and are never ordered twice.
4. ``stabilized_replicas`` / ``rate_limited_replicas`` -- the stabilisation band,
   the Pods/Percent rate policies per direction and the scale-in tolerance.
5. ``guarded_replicas`` -- never scale in below what the forecast needs at any time
   from now until a replacement pod could be ready (the whole lead interval).
6. ``desired_replicas`` -- min/max bounds.

The function is pure: time, forecast and state are arguments; the new state is
returned in the ``Plan``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from controller.decide import replicas, stabilize
from controller.domain import (
    Behavior,
    ControllerState,
    Decision,
    Observation,
    Outcome,
    Plan,
    PolicyType,
    Reason,
    ScalingPolicy,
    ScalingRules,
    SelectPolicy,
)
from models.base import Forecast

UNBOUNDED_REPLICAS = 2**31 - 1


def default_predictive_behavior() -> Behavior:
    """Scale up as fast as needed (the forecast already looks ahead); scale in after a short window.

    Scale-up: no window, up to +4 pods or +100% per 15 s, whichever is more (the
    Kubernetes default). Scale-down: a 300 s window (the HPA's), at most -50% per 60 s,
    so a forecast dip never empties the workload at once.
    """
    return Behavior(
        scale_up=ScalingRules(
            stabilization_window_seconds=0,
            select_policy=SelectPolicy.Max,
            policies=(ScalingPolicy(PolicyType.Pods, 4, 15), ScalingPolicy(PolicyType.Percent, 100, 15)),
        ),
        scale_down=ScalingRules(
            stabilization_window_seconds=300,
            select_policy=SelectPolicy.Max,
            policies=(ScalingPolicy(PolicyType.Percent, 50, 60),),
        ),
    )


@dataclass(frozen=True, slots=True)
class PlannerParams:
    """Tuning of the predictive planner (one set of defaults for every workload).

    Attributes:
        target_utilization_ratio: utilisation the forecast quantile is provisioned at.
        quantile: forecast quantile provisioned for.
        widened_quantile: quantile used while loads come above the forecast's intervals too often.
        fallback_utilization_ratio: target of the reactive floor when the forecast is
            missing or not trusted (the HPA's usual 0.7).
        tolerance: the HPA's tolerance, used by the reactive floor.
        scale_in_tolerance: a scale-in smaller than this fraction of the current count is skipped.
        scale_up_tolerance: a scale-up smaller than this fraction of the current count is
            skipped while the current count still covers the median forecast and the
            reactive floor: only the quantile's headroom is thinner for a while, and every
            action churns pods.
        scale_up_headroom: a scale-up orders this fraction more than the stabilised need, so
            that the next small rise does not cost another action (hysteresis).
        scale_in_band: no scale-in while the current count is at most this fraction above the
            stabilised need (the other side of the hysteresis band).
        scale_down_headroom: a scale-in keeps this fraction above the stabilised need.
        scale_down_window_from_lead: use the lead time as the scale-down stabilisation window
            instead of the behaviour's: a dip shorter than the time a replacement takes to
            start is held through, a longer one is released (as the oracle does).
        min_lead_window_seconds: the shortest window ``scale_down_window_from_lead`` uses: with a
            short startup the lead is about a minute, and one noisy minute of load would then
            scale in (measured on NASA at 30 s startup: twice the HPA's scale actions).
        interval: the central interval whose coverage the confidence gate checks.
        gate_window: how many recent outcomes the gate looks at (one per tick: 240 is an hour at
            15 s). Outcomes of neighbouring ticks are forecasts over overlapping intervals, so
            they miss together: with 40 (ten minutes) one missed ramp was enough to distrust the
            forecast, and the switches between the HPA's 0.7 and the forecast cost a scale-up and
            a scale-in each (Azure 2019 at 300 s startup: 363 actions against the HPA's 46; 35
            with 240). The gate scores once half the window has come due.
        widen_above_share: the quantile is widened while more than this share of the recent
            outcomes came above the interval's upper bound (about 0.1 expected of a calibrated
            0.1-0.9 interval). Only misses above widen: a load below the interval cost pods, not
            service. Until the twenty-second round the gate widened below 50% coverage, misses
            on either side: a ramp the forecast followed late widened too late (Azure 2019 at
            300 s startup: coverage was still 70% when the pods were ordered a tick late, with 30% of
            the outcomes above the interval; one tick of 0.01 pod unserved), and misses below
            counted towards widening as much as misses above (docs/policy.md).
        reactive_below_coverage: coverage below which the forecast is not used.
    """

    min_replicas: int = 1
    max_replicas: int = UNBOUNDED_REPLICAS
    capacity_per_pod: float = 1.0
    target_utilization_ratio: float = 0.95
    quantile: float = 0.85
    widened_quantile: float = 0.975
    fallback_utilization_ratio: float = 0.7
    tolerance: float = 0.1
    scale_in_tolerance: float = 0.1
    scale_up_tolerance: float = 0.0
    scale_up_headroom: float = 0.1
    scale_in_band: float = 0.2
    scale_down_headroom: float = 0.1
    scale_down_window_from_lead: bool = False
    min_lead_window_seconds: int = 150
    behavior: Behavior = field(default_factory=default_predictive_behavior)
    interval: tuple[float, float] = (0.1, 0.9)
    gate_window: int = 240
    widen_above_share: float = 0.25
    reactive_below_coverage: float = 0.25


@dataclass(frozen=True, slots=True)
class Timing:
    """How far ahead this tick looks, in seconds."""

    lead_seconds: float
    startup_seconds: float


def plan(
    obs: Observation,
    forecast: Forecast | None,
    params: PlannerParams,
    state: ControllerState,
    now: float,
    *,
    timing: Timing,
    target: str = "",
    gate: Gate | None = None,
) -> Plan:
    """Plan the replica count of one workload for this tick.

    Args:
        obs: load observed now (pod units times ``capacity_per_pod``), pod counts, current replicas.
        forecast: the load forecast made from the observations up to now, or ``None``.
        params: planner tuning.
        state: history from earlier ticks.
        now: the tick time (seconds).
        timing: the lead time and the current startup estimate.
        target: name of the workload, for the decision.
        gate: this tick's scoring of the forecast intervals (``score_gate`` on the same
            arguments); computed here when ``None``. Plans on the same forecast and load from
            the same checks may share one (the policy's counterfactual rungs do).

    Returns:
        A ``Plan`` with one decision whose ``stages`` list each named value and its reason.
    """
    current = obs.current_replicas
    desired, new_state, why = _plan(obs, forecast, params, state, now, timing, gate)
    (
        coverage, above, mode, q, gate_reason, forecast_replicas, floor_replicas, floor_reason,
        raw, raw_reason, stabilized, stab_reason, banded, band_reason, limited, limit_reason, guarded, guard_reason, bound_reason,
    ) = why
    deciding = (
        ("raw_replicas", raw, raw_reason),
        ("stabilized_replicas", stabilized, stab_reason),
        ("banded_replicas", banded, band_reason),
        ("rate_limited_replicas", limited, limit_reason),
        ("guarded_replicas", guarded, guard_reason),
        ("desired_replicas", desired, bound_reason),
    )
    kind = "scale" if desired != current else "no-op"
    stages = (
        ("confidence", round(100 * coverage), gate_reason),
        ("forecast_replicas", forecast_replicas, gate_reason),
        ("floor_replicas", floor_replicas, floor_reason),
        *deciding,
    )
    reason = _deciding_reason(deciding)
    message = (
        f"{mode} mode, q={q:g} at {params.target_utilization_ratio:.0%}, lead {timing.lead_seconds:.0f} s,"
        f" coverage {coverage:.0%}, above {above:.0%}"
    )
    return Plan((Decision(kind, target, current, desired, reason, message, stages),), new_state)


def plan_replicas(
    obs: Observation,
    forecast: Forecast | None,
    params: PlannerParams,
    state: ControllerState,
    now: float,
    *,
    timing: Timing,
    gate: Gate | None = None,
) -> tuple[int, ControllerState]:
    """``plan``'s desired count and new state only, without the decision that describes them: for
    callers that read nothing else (the policy's counterfactual rungs, several at every tick)."""
    desired, new_state, _ = _plan(obs, forecast, params, state, now, timing, gate)
    return desired, new_state


def _plan(
    obs: Observation,
    forecast: Forecast | None,
    params: PlannerParams,
    state: ControllerState,
    now: float,
    timing: Timing,
    gate: Gate | None,
) -> tuple[int, ControllerState, tuple]:
    """The stages of ``plan``: the desired count, the new state, and what ``plan`` describes them by."""
    current = obs.current_replicas
    per_pod = params.capacity_per_pod * params.target_utilization_ratio
    # Like a new HPA: the first syncs never scale in below what already runs.
    if not state.recommendations:
        state = stabilize.seed_history(state, current_replicas=current, now=now)

    # 1. Confidence: did recent outcomes fall inside the intervals forecast for them?
    if gate is None:
        gate = score_gate(obs, forecast, params, state, now, timing=timing)
    coverage = gate.coverage
    if forecast is None:
        mode, gate_reason = "reactive", Reason.NoForecast
    elif coverage < params.reactive_below_coverage:
        mode, gate_reason = "reactive", Reason.ForecastDistrusted
    elif gate.above > params.widen_above_share:
        mode, gate_reason = "widened", Reason.QuantileWidened
    else:
        mode, gate_reason = "forecast", Reason.ForecastTrusted
    q = params.widened_quantile if mode == "widened" else params.quantile

    # 2. What the forecast needs when a pod ordered now would be ready.
    if mode == "reactive":
        forecast_replicas = 0
        median_replicas = UNBOUNDED_REPLICAS  # no forecast: never skip a scale-up
    else:
        # A pod ordered now serves from now + startup on: provision for the peak between
        # then and the end of the lead interval (what happens sooner is the job of the
        # pods that exist, and of the scale-in guard below).
        first, arrive, end = gate.indices
        forecast_replicas = _pods(forecast.peak(q, arrive, end), per_pod)
        median_replicas = _pods(forecast.peak(0.5, arrive, end), per_pod)

    # 3. The reactive floor: the HPA calculation on the load seen now.
    floor_target = params.fallback_utilization_ratio if mode == "reactive" else params.target_utilization_ratio
    floor_replicas, floor_reason = replicas.calculate_replicas(
        current_replicas=current,
        ready=obs.ready,
        starting=obs.starting,
        load=obs.load,
        target_utilization_ratio=floor_target,
        tolerance=params.tolerance,
        capacity_per_pod=params.capacity_per_pod,
    )
    if obs.load is None:
        # Missing data never scales in: hold at least the current count.
        floor_replicas = max(floor_replicas, current)
    raw = max(forecast_replicas, floor_replicas)
    raw_reason = Reason.ForecastAboveFloor if forecast_replicas > floor_replicas else floor_reason

    # 4. Stabilise, limit the rate, and skip scale-ins too small to be worth an action.
    behavior = params.behavior
    if params.scale_down_window_from_lead:
        window = max(params.min_lead_window_seconds, _ceil(timing.lead_seconds))
        behavior = _with_scale_down_window(behavior, window)
    stabilized, stab_reason, recs = stabilize.stabilize_with_behavior(
        recommendations=state.recommendations,
        desired_replicas=raw,
        current_replicas=current,
        now=now,
        behavior=behavior,
    )
    # Hysteresis: order a little more than needed on the way up, and scale in only when the
    # count is well above the need (then keep a little above it), so that a load wandering
    # within a few percent does not move the count at every tick.
    # Without a trusted forecast the planner is the HPA (its 0.7 target already holds headroom).
    banded, band_reason = stabilized, stab_reason
    banding = mode != "reactive"
    if banding and stabilized > current and params.scale_up_headroom > 0:
        banded = max(stabilized, _ceil(stabilized * (1 + params.scale_up_headroom)))
        band_reason = Reason.ScaleUpHeadroom
    elif banding and stabilized < current and params.scale_in_band > 0:
        if current <= _ceil(stabilized * (1 + params.scale_in_band)):
            banded, band_reason = current, Reason.ScaleInWithinBand
        else:
            banded = min(current, _ceil(stabilized * (1 + params.scale_down_headroom)))
            band_reason = Reason.ScaleDownHeadroom
    # The scale-in tolerance, as the HPA's: a wanted change within it is no change.
    if banded < current and current - banded < params.scale_in_tolerance * current:
        banded, band_reason = current, Reason.ScaleInWithinTolerance
    if banded == current:  # no change asked: the rate policies have nothing to limit
        limited, limit_reason = current, Reason.DesiredWithinRange
    else:
        limited, limit_reason = _rate_limit(current, banded, params, now, state.scale_up_events, state.scale_down_events)
    if (
        limited < current
        and current - limited < params.scale_in_tolerance * current
        and current - _rate_limit(current, banded, params, now, (), ())[0] >= params.scale_in_tolerance * current
    ):
        # This period's rate budget is nearly spent: wait for a whole step rather than take a
        # sliver now. Unless the policies never allow more than the tolerance (Pods 1 per
        # minute on 30 pods, say): then the small steps are the only way in.
        limited, limit_reason = current, Reason.ScaleInWithinTolerance
    elif (
        current < limited <= current * (1 + params.scale_up_tolerance)
        and floor_replicas <= current
        and median_replicas <= current
    ):
        limited, limit_reason = current, Reason.ScaleUpWithinTolerance

    # 5. Scale-in guard: keep what the forecast needs before a replacement could start.
    guarded, guard_reason = limited, Reason.DesiredWithinRange
    if limited < current and mode != "reactive":
        # Every pod removed now could only be replaced after a full startup: keep the
        # peak need from now to the end of the lead interval, as the oracle does.
        need = _pods(forecast.peak(q, first, end), per_pod)
        if need > limited:
            guarded, guard_reason = min(need, current), Reason.ScaleInGuard

    # 6. Bounds.
    desired = min(max(guarded, params.min_replicas), params.max_replicas)
    if desired > guarded:
        bound_reason = Reason.TooFewReplicas
    elif desired < guarded:
        bound_reason = Reason.TooManyReplicas
    else:
        bound_reason = Reason.DesiredWithinRange
    if current == 0 and params.min_replicas != 0:
        # As the HPA: a target scaled to zero (by hand) is left there until it is scaled up again.
        desired, bound_reason = 0, Reason.ScalingDisabled

    ups, downs = state.scale_up_events, state.scale_down_events
    if desired != current:
        ups, downs = stabilize.record_scale_event(
            scale_up_events=ups, scale_down_events=downs, behavior=params.behavior, previous_replicas=current, new_replicas=desired, now=now
        )
    new_state = ControllerState(
        recommendations=recs,
        scale_up_events=ups,
        scale_down_events=downs,
        pending_checks=gate.pending,
        interval_outcomes=gate.outcomes,
    )
    return desired, new_state, (
        coverage, gate.above, mode, q, gate_reason, forecast_replicas, floor_replicas, floor_reason,
        raw, raw_reason, stabilized, stab_reason, banded, band_reason, limited, limit_reason, guarded, guard_reason, bound_reason,
    )


#: (id of a behaviour, window) -> (that behaviour, it with the window): a dict on identity, not an
#: lru_cache, because hashing the nested frozen Behavior at every plan cost more than the replace it saves.
#: The entry holds the behaviour, so its id cannot be reused while the entry lives.
_WINDOWED: dict[tuple[int, int], tuple[Behavior, Behavior]] = {}


def _with_scale_down_window(behavior: Behavior, window: int) -> Behavior:
    """``behavior`` with its scale-down window set (cached: it is asked for at every tick)."""
    key = (id(behavior), window)
    hit = _WINDOWED.get(key)
    if hit is not None and hit[0] is behavior:
        return hit[1]
    if len(_WINDOWED) >= 256:
        _WINDOWED.clear()
    windowed = replace(behavior, scale_down=replace(behavior.scale_down, stabilization_window_seconds=window))
    _WINDOWED[key] = (behavior, windowed)
    return windowed


def _ceil(x: float) -> int:
    return math.ceil(x - 1e-9)


def _rate_limit(
    current: int, desired: int, params: PlannerParams, now: float, ups: tuple, downs: tuple
) -> tuple[int, Reason]:
    """The behaviour's rate policies on ``desired`` given the scale events (``()``: an unspent period)."""
    return stabilize.bound_with_behavior(
        current_replicas=current,
        desired_replicas=desired,
        min_replicas=0,
        max_replicas=UNBOUNDED_REPLICAS,
        behavior=params.behavior,
        scale_up_events=ups,
        scale_down_events=downs,
        now=now,
    )


def _pods(load: float, per_pod: float) -> int:
    if not math.isfinite(load) or load <= 0:
        return 0
    return _ceil(load / per_pod)


@dataclass(frozen=True, slots=True)
class Gate:
    """The confidence gate's view of one tick (``score_gate``).

    Attributes:
        pending: interval checks not yet due, this tick's included: ``(due, lo, hi)``.
        outcomes: the latest outcomes (where each fell against its interval), at most ``gate_window``.
        coverage: the share of outcomes inside their interval, or 1.0 before half the window has
            come due.
        indices: the forecast's points at ``now``, ``now + startup`` (at most the last) and
            ``now + lead`` (``Forecast.index_at``), or ``None`` without a forecast: the same for
            every rung, so asked for once per tick.
    """

    pending: tuple[tuple[float, float, float], ...]
    outcomes: tuple[Outcome, ...]
    coverage: float
    indices: tuple[int, int, int] | None = None
    #: The share of outcomes above their interval, or 0.0 before half the window has come due.
    above: float = 0.0


def score_gate(
    obs: Observation, forecast: Forecast | None, params: PlannerParams, state: ControllerState, now: float, *, timing: Timing
) -> Gate:
    """Score the interval checks that came due against the load seen now, and add this tick's
    (the forecast's central ``params.interval`` at ``now + lead``)."""
    pending, outcomes = _score_due_checks(state, obs, now, params.gate_window)
    if len(outcomes) >= params.gate_window // 2:
        coverage, above = outcomes.count(Outcome.INSIDE) / len(outcomes), outcomes.count(Outcome.ABOVE) / len(outcomes)
    else:
        coverage, above = 1.0, 0.0
    if forecast is None:
        return Gate(pending, outcomes, coverage, above=above)
    end = forecast.index_at(now + timing.lead_seconds)
    lo_level, hi_level = params.interval
    lo, hi = float(forecast.quantile(lo_level)[end]), float(forecast.quantile(hi_level)[end])
    pending = (*pending, (now + timing.lead_seconds, lo, hi))
    indices = (forecast.index_at(now), min(forecast.index_at(now + timing.startup_seconds), end), end)
    return Gate(pending, outcomes, coverage, indices, above)


def _score_due_checks(
    state: ControllerState, obs: Observation, now: float, window: int
) -> tuple[tuple[tuple[float, float, float], ...], tuple[Outcome, ...]]:
    """Compare the intervals that came due with the load observed now.

    Without a load (missing, or not a finite number) the checks that came due are dropped,
    not kept for later: scored against the first load after an outage, hours of them would
    stand or fall on one sample (and the list would grow through the outage).
    """
    if obs.load is None or not math.isfinite(obs.load):
        # cut to the window here too: a restored annotation (or a window made shorter) may hold more
        return tuple(c for c in state.pending_checks if c[0] > now), state.interval_outcomes[-window:]
    came, pending = [], []
    for due, lo, hi in state.pending_checks:
        if due <= now:
            # inside first: an interval that is not a number (a broken model) is a miss, below
            came.append(Outcome.INSIDE if lo <= obs.load <= hi else Outcome.ABOVE if obs.load > hi else Outcome.BELOW)
        else:
            pending.append((due, lo, hi))
    outcomes = state.interval_outcomes + tuple(came) if came else state.interval_outcomes
    return tuple(pending), outcomes[-window:]


def _deciding_reason(stages: tuple[tuple[str, int, Reason], ...]) -> Reason:
    """The reason of the last stage that changed the count (``stages`` from raw_replicas on)."""
    _, value, reason = stages[0]
    for _, count, why in stages[1:]:
        if count != value:
            reason, value = why, count
    return reason
