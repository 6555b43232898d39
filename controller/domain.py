"""Frozen value types shared by the decision core, the loop, the adapters and the simulator.

Everything here is plain data: no I/O, no clocks. Times are Unix seconds (float)
on whatever clock the caller runs (the system clock live, the simulated clock in
``controller.sim``). Replica counts are ints.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class Reason(enum.StrEnum):
    """Why a stage produced its value, in the CamelCase style of HPA conditions and Kubernetes events."""

    # replica calculation
    WithinTolerance = "WithinTolerance"
    UtilizationAboveTarget = "UtilizationAboveTarget"
    UtilizationBelowTarget = "UtilizationBelowTarget"
    StartingPodsCountedAsZero = "StartingPodsCountedAsZero"
    DirectionReversed = "DirectionReversed"
    MetricsUnavailable = "MetricsUnavailable"
    NoReadyPods = "NoReadyPods"
    # stabilisation (HPA vocabulary)
    ReadyForNewScale = "ReadyForNewScale"
    ScaleUpStabilized = "ScaleUpStabilized"
    ScaleDownStabilized = "ScaleDownStabilized"
    # rate and bounds (HPA vocabulary)
    DesiredWithinRange = "DesiredWithinRange"
    ScaleUpLimit = "ScaleUpLimit"
    ScaleDownLimit = "ScaleDownLimit"
    TooManyReplicas = "TooManyReplicas"
    TooFewReplicas = "TooFewReplicas"
    AboveMaxReplicas = "AboveMaxReplicas"
    BelowMinReplicas = "BelowMinReplicas"
    ScalingDisabled = "ScalingDisabled"
    # predictive planner
    NoForecast = "NoForecast"
    ForecastTrusted = "ForecastTrusted"
    QuantileWidened = "QuantileWidened"
    ForecastDistrusted = "ForecastDistrusted"
    ForecastAboveFloor = "ForecastAboveFloor"
    ScaleInWithinTolerance = "ScaleInWithinTolerance"
    ScaleUpWithinTolerance = "ScaleUpWithinTolerance"
    ScaleInGuard = "ScaleInGuard"
    ScaleUpHeadroom = "ScaleUpHeadroom"
    ScaleInWithinBand = "ScaleInWithinBand"
    ScaleDownHeadroom = "ScaleDownHeadroom"
    # oracle
    PerfectForesight = "PerfectForesight"


class SelectPolicy(enum.StrEnum):
    """``behavior.scaleUp|scaleDown.selectPolicy`` of autoscaling/v2."""

    Max = "Max"
    Min = "Min"
    Disabled = "Disabled"


class PolicyType(enum.StrEnum):
    """``HPAScalingPolicy.type`` of autoscaling/v2."""

    Pods = "Pods"
    Percent = "Percent"


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """One rate policy: at most ``value`` pods (or percent) of change per ``period_seconds``."""

    type: PolicyType
    value: int
    period_seconds: int


@dataclass(frozen=True, slots=True)
class ScalingRules:
    """One direction of ``behavior``: a stabilisation window and rate policies."""

    stabilization_window_seconds: int
    select_policy: SelectPolicy = SelectPolicy.Max
    policies: tuple[ScalingPolicy, ...] = ()


@dataclass(frozen=True, slots=True)
class Behavior:
    """autoscaling/v2 ``behavior``: scale-up and scale-down rules."""

    scale_up: ScalingRules
    scale_down: ScalingRules


def default_behavior(*, downscale_stabilization_seconds: int = 300) -> Behavior:
    """The defaults the API server fills in for a ``behavior`` with no fields set.

    From the Kubernetes documentation ("Default Behavior") and
    ``pkg/apis/autoscaling/v2/defaults.go``: scale-up has no stabilisation and
    allows the larger of +100% or +4 pods per 15 s; scale-down stabilises over
    300 s and allows -100% per 15 s.
    """
    return Behavior(
        scale_up=ScalingRules(
            stabilization_window_seconds=0,
            select_policy=SelectPolicy.Max,
            policies=(
                ScalingPolicy(PolicyType.Pods, 4, 15),
                ScalingPolicy(PolicyType.Percent, 100, 15),
            ),
        ),
        scale_down=ScalingRules(
            stabilization_window_seconds=downscale_stabilization_seconds,
            select_policy=SelectPolicy.Max,
            policies=(ScalingPolicy(PolicyType.Percent, 100, 15),),
        ),
    )


@dataclass(frozen=True, slots=True)
class Recommendation:
    """An unstabilised replica recommendation made at ``at`` (HPA's ``timestampedRecommendation``)."""

    replicas: int
    at: float


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    """A replica change of ``delta`` (positive: up) applied at ``at`` (HPA's ``timestampedScaleEvent``)."""

    delta: int
    at: float


@dataclass(frozen=True, slots=True)
class WorkloadRef:
    """The scale target: ``kind``/``name`` in ``namespace`` (Deployment, StatefulSet, or any kind with a scale subresource)."""

    namespace: str
    name: str
    kind: str = "Deployment"
    api_version: str = "apps/v1"

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Sample:
    """One metric value observed at ``at`` (the timestamp Prometheus returned)."""

    value: float
    at: float


@dataclass(frozen=True, slots=True)
class Series:
    """A metric over time: ``timestamps`` (Unix seconds, strictly increasing) and ``values`` (finite floats).

    Points where the query had no value, or a NaN or an infinite one, are absent
    (gaps), never filled in.
    """

    timestamps: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamps)


@dataclass(frozen=True, slots=True)
class Observation:
    """What the controller knows about one workload at one tick.

    ``load`` is the observed demand in pod units (one ready pod at 100% serves 1.0),
    or ``None`` when metrics are unavailable. ``ready`` and ``starting`` count pods;
    ``current_replicas`` is the scale target's ``spec.replicas``.
    """

    at: float
    load: float | None
    ready: int
    starting: int
    current_replicas: int


@dataclass(frozen=True, slots=True)
class Decision:
    """One outcome of a tick for one target: what changes, why, and how the value was reached."""

    kind: str  # "scale" | "no-op" (later: "resize-pool", "evict")
    target: str
    from_value: int
    to_value: int
    reason: Reason
    message: str
    stages: tuple[tuple[str, int, Reason], ...] = ()


class Outcome(enum.IntEnum):
    """Where an observed load fell against the central interval forecast for it (the planner's
    confidence gate). A load above the interval is a forecast too low, the miss that costs service;
    one below costs pods."""

    BELOW = 0
    INSIDE = 1
    ABOVE = 2


@dataclass(frozen=True, slots=True)
class ControllerState:
    """Per-target memory of the decision core: recommendation, scale-event and forecast-check history.

    Trimmed by age inside the planner; persisted as data (later: an annotation on the target).
    """

    recommendations: tuple[Recommendation, ...] = ()
    scale_up_events: tuple[ScaleEvent, ...] = ()
    scale_down_events: tuple[ScaleEvent, ...] = ()
    #: Forecast intervals waiting for their outcome: (due time, lower, upper), in load units.
    pending_checks: tuple[tuple[float, float, float], ...] = ()
    #: Where each recent outcome fell against the interval forecast for it, oldest first.
    interval_outcomes: tuple[Outcome, ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    """What a planner returns: its decisions and the state to carry into the next tick."""

    decisions: tuple[Decision, ...]
    state: ControllerState = field(default_factory=ControllerState)

    @property
    def desired_replicas(self) -> int:
        """The replica count the first decision settles on."""
        return self.decisions[0].to_value
