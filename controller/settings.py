"""The controller's settings: nested, frozen pydantic models, loaded from YAML (a file or a ConfigMap).

Settings are grouped by concern (``loop``, ``metrics``, ``forecast``, ``replicas``, ``nodepools``,
``deschedule``) plus the list of ``workloads`` to scale, as kopf's ``OperatorSettings`` groups
its own. Every model is frozen and has ``extra="forbid"``, so a misspelt key is an error rather
than a silently ignored setting, and every field carries a ``description``: the same models
produce the JSON schema (``scaleahead config schema``) and the commented ConfigMap in
``manifests/`` (``scaleahead config defaults``). Defaults live only in the model fields.

Design choices a reader might question:

* **Every problem at once, with its place in the file.** Loading never stops at the first
  mistake. Pydantic collects field errors across the whole document; the few cross-field checks
  are written so that they still run when an unrelated group is broken (pydantic skips a model's
  ``after`` validators as soon as one of its fields failed): ``min_replicas <= max_replicas`` is a
  field validator on ``max_replicas``, and the per-workload checks (duplicates, merged replica
  bounds) are a ``wrap`` validator on ``workloads`` that checks every workload which validated on
  its own. Each problem is mapped back to a line by walking the ``yaml.compose()`` node tree
  along the error's path.
* **``$name`` placeholders in PromQL.** PromQL uses braces for label matchers, so ``str.format``
  style ``{name}`` placeholders would clash with them. Query templates use ``string.Template``
  (``$namespace``, ``$name``; ``$$`` is a literal ``$``) and are checked when loaded.
* **Per-workload overrides are partial.** ``workloads[].replicas`` has every field of
  ``replicas`` but all optional; a key that is absent (or ``null``) inherits the global value.
  ``behavior`` is replaced as a whole, not merged field by field: each HPA carries its own
  complete ``behavior`` too, and the directions or fields it leaves out take the Kubernetes
  defaults, never half of the global ``behavior``.
* **``behavior: null`` is the legacy HPA path**, i.e. an HPA without ``behavior``, whose
  scale-down stabilisation comes from the kube-controller-manager flag mirrored by
  ``downscale_stabilization_seconds``. Setting ``behavior`` (even to ``{}``) switches to the
  autoscaling/v2 rules with the API server's defaults filled in (see ``ReplicaSettings.to_behavior``).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import string
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, create_model, field_validator, model_validator
from pydantic_core import InitErrorDetails

from controller import domain, errors

__all__ = [
    "BehaviorSettings",
    "ControllerSettings",
    "DescheduleSettings",
    "ForecastSettings",
    "LoopSettings",
    "MetricsSettings",
    "NodePoolSettings",
    "Problem",
    "ReplicaOverrides",
    "ReplicaSettings",
    "ScalingPolicySettings",
    "ScalingRulesSettings",
    "SettingsError",
    "WorkloadSettings",
    "check_query_template",
    "describe_error",
    "load_settings",
]

Mode = Literal["recommend", "active"]

#: The key of a ConfigMap's ``data`` that holds the settings as YAML text.
CONFIGMAP_KEY = "config.yaml"

#: Placeholders a load query template may use (``string.Template`` syntax: ``$name``).
QUERY_PLACEHOLDERS = frozenset({"namespace", "name"})

# Kubernetes object-name rules (apimachinery's IsDNS1123Label / IsDNS1123Subdomain).
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_KIND = re.compile(r"[A-Z][A-Za-z0-9]*")
# `{name}` without the `$`: the str.format style that clashes with PromQL braces.
_BRACE_PLACEHOLDER = re.compile(r"(?<!\$)\{(namespace|name)\}")
_API_VERSION = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?v[0-9]+((alpha|beta)[0-9]+)?")


# ---------------------------------------------------------------------------------------------
# Problems and the one exception type
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One mistake in the settings.

    Attributes:
        path: Dotted path of the setting, with list indices (``workloads[2].replicas.min_replicas``);
            empty when the problem concerns the whole document (e.g. unparsable YAML).
        message: What is wrong, in words a user can act on.
        line: 1-based line in the source file, when known.
    """

    path: str
    message: str
    line: int | None = None

    def format(self, source: str) -> str:
        """Render as ``SOURCE:LINE: path: message`` (line and path omitted when unknown)."""
        where = source if self.line is None else f"{source}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SettingsError(errors.UserError):
    """The settings could not be loaded; ``problems`` lists every mistake found.

    ``str()`` gives one ``SOURCE:LINE: path: message`` line per problem.
    """

    def __init__(self, problems: Sequence[Problem], *, source: str = "<settings>") -> None:
        self.problems: list[Problem] = list(problems)
        self.source = source
        super().__init__("\n".join(problem.format(source) for problem in self.problems))


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


class _Settings(BaseModel):
    """Base of every settings model: immutable, strict about unknown keys, finite numbers only."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class LoopSettings(_Settings):
    """How the control loop runs."""

    interval_seconds: float = Field(15.0, gt=0, description="Seconds between two ticks of the control loop.")
    max_concurrent_workloads: int = Field(
        16, ge=1, description="How many workloads one tick observes and plans at the same time."
    )
    failure_threshold: int = Field(
        3,
        ge=1,
        description=(
            "Consecutive ticks with failed metrics after which a workload holds its current replicas"
            " (as KEDA's fallback does) instead of acting on stale data."
        ),
    )
    default_mode: Mode = Field(
        "recommend",
        description=(
            "What the controller does with a decision unless a workload sets `mode`: `recommend` only"
            " records and exports it; `active` also scales the target."
        ),
    )
    discover_annotated_workloads: bool = Field(
        True,
        description=(
            "Also manage Deployments and StatefulSets annotated `scaleahead.io/enabled: \"true\"`, found by a"
            " cluster-wide list every minute. Set it to false when the controller may not list them cluster-wide"
            " (RoleBindings per namespace): then only `workloads` are managed."
        ),
    )


class MetricsSettings(_Settings):
    """Where the load comes from and how to read it."""

    prometheus_url: str = Field(
        "http://prometheus-operated.monitoring.svc:9090",
        description="Base URL of the Prometheus HTTP API (http or https, without /api/v1).",
    )
    load_query: str = Field(
        'sum(rate(http_requests_total{namespace="$namespace",pod=~"$name-.*"}[1m]))',
        min_length=1,
        description=(
            "PromQL template for the load of one workload, in load units. Placeholders use"
            " string.Template syntax so they do not clash with PromQL braces: $namespace and $name"
            " (${name} when a letter follows, $$ for a literal $)."
        ),
    )
    capacity_per_pod: float = Field(
        1.0,
        gt=0,
        description="Load units one pod serves at 100% utilisation; the load divided by this is the load in pods.",
    )
    lag_seconds: float = Field(
        15.0,
        ge=0,
        description=(
            "How much further ahead than the startup the planner reads the forecast, for a load metric"
            " that trails reality (15 s: one scrape). The forecast is of the metric as observed; a"
            " rate()[1m] trails by about 45 s on average, and 45 here buys service at more pod-hours"
            " (docs/policy.md)."
        ),
    )
    trail_seconds: float = Field(
        45.0,
        ge=0,
        le=3600,
        description=(
            "How far the load metric trails the load it measures, on average (a rate()[1m] scraped every"
            " 15 s: about 45 s). Beside its decisions the controller scores the HPA's calculation and each"
            " rung of the quantile ladder (forecast.raise_quantile_to) on the observed load: each"
            " observation is scored against the pods that were ready this long before it, when that load"
            " was served."
        ),
    )
    on_missing: Literal["hold", "zero", "fail"] = Field(
        "hold",
        description=(
            "Meaning of an empty, NaN or Inf query result: `hold` keeps the current replicas, `zero`"
            " treats the load as 0, `fail` counts the tick as a metrics failure."
        ),
    )
    timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one Prometheus request, in seconds.")
    bearer_token_file: Path | None = Field(
        None, description="File whose content is sent as a bearer token to Prometheus; null sends none."
    )
    ca_file: Path | None = Field(
        None, description="PEM file of the CA that signed Prometheus' certificate; null uses the system CAs."
    )
    insecure_skip_tls_verify: bool = Field(
        False, description="Skip verification of Prometheus' TLS certificate (for testing only)."
    )

    @field_validator("prometheus_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        scheme, _, rest = value.partition("://")
        if scheme not in ("http", "https") or not rest or rest.startswith("/"):
            raise ValueError(f"must be an http:// or https:// URL with a host (got {json.dumps(value)})")
        return value

    @field_validator("load_query")
    @classmethod
    def _check_load_query(cls, value: str) -> str:
        return check_query_template(value)


class ForecastSettings(_Settings):
    """Which forecasting model runs, on how much history, and which quantile the planner uses."""

    model: str = Field(
        "auto",
        min_length=1,
        description="Forecasting model, by its name in the model registry; `auto` lets the controller choose.",
    )
    fallback_model: Literal["naive", "seasonal_naive"] = Field(
        "seasonal_naive", description="Model that takes over when the chosen model fails to fit."
    )
    history_days: int = Field(14, gt=0, description="Days of load history the model is fitted on.")
    refit_interval_seconds: int = Field(
        86400,
        gt=0,
        description="Seconds between two full fits of the model; between fits each new point is a cheap update.",
    )
    quantile: float = Field(
        0.85,
        gt=0,
        lt=1,
        description="Forecast quantile (0 < q < 1) the replica count is planned for; higher means more headroom.",
    )
    raise_quantile_to: list[float] = Field(
        default_factory=lambda: [0.975],
        max_length=4,
        description=(
            "Higher quantiles the planner may use instead of `quantile`, ascending. Beside its real decisions the"
            " controller runs the HPA's calculation (target 0.7) and the planner at each of these and of"
            " `lower_quantile_to` on the observed load. Each day it keeps `quantile` if that was no worse than the"
            " HPA on both pod-hours and uncovered load over the last `reference_days` days; if it left more load"
            " uncovered, it takes the lowest of these that was no worse. [] never raises it."
        ),
    )
    lower_quantile_to: list[float] = Field(
        default_factory=lambda: [0.7, 0.6],
        max_length=4,
        description=(
            "Lower quantiles the planner may use instead of `quantile`, descending: when `quantile` served no worse"
            " than the HPA but held more pods over the last `reference_days` days, the highest of these that was no"
            " worse on both (see `raise_quantile_to`). A lower rung is never widened by the confidence gate."
            " [] never lowers it."
        ),
    )
    lean_quantile: float | None = Field(
        0.5,
        gt=0,
        lt=1,
        description=(
            "The lowest rung, below `lower_quantile_to`: this quantile provisioned at full utilisation (a"
            " `target_utilization_ratio` set below its default is kept), with no hysteresis band and the configured"
            " scale-down window instead of the lead time. Taken like the lower rungs (see `lower_quantile_to`) when"
            " none of them was no worse than the HPA on both: where a forecast far ahead is so wide that every"
            " quantile's headroom costs more than the HPA's. null turns it off."
        ),
    )
    reference_days: int = Field(
        3,
        ge=1,
        le=14,
        description="Days the choice among `raise_quantile_to`, `lower_quantile_to` and `lean_quantile` looks back on.",
    )
    fallback_to_hpa: bool = Field(
        True,
        description=(
            "When neither `quantile` nor any rung of `raise_quantile_to`, `lower_quantile_to` and `lean_quantile`"
            " was no worse than the HPA's calculation on both pod-hours and uncovered load over the last"
            " `reference_days` days, scale the next day as that HPA does (target 0.7, tolerance 0.1, 300 s"
            " scale-down window, the workload's min and max), still scoring every rung beside it, and go back to"
            " the forecast at the first day's end where a rung was no worse. false keeps `quantile` then."
        ),
    )
    make_up_shortfall: bool = Field(
        True,
        description=(
            "Keep a running balance, from the end of the controller's first day on, of the load the real pods left"
            " uncovered minus what the HPA's calculation beside them left uncovered (the first day, on a forecast"
            " no day has vetted yet, is not counted). While the real pods owe load, take at a"
            " day's end only a rung that over the last `reference_days` days left less uncovered than the HPA (and"
            " no more on any one of them), at no more pod-hours than the HPA's and those the real pods saved"
            " against it so far (the cheapest that makes up all they owe, else the one that served best if it made"
            " up at least half); with none, the HPA rung (`fallback_to_hpa`) or else `quantile`. false chooses on"
            " the last days alone."
        ),
    )

    spend_savings_on_service: bool = Field(
        True,
        description=(
            "Where the HPA's calculation left load unserved over the last `reference_days` days (more than 0.01% of"
            " the load) and the real pods owe none, spend the pod-hours they saved against it so far on service:"
            " take the highest rung of `raise_quantile_to` that left no more load uncovered than the HPA and than"
            " `quantile`, at no more pod-hours over those days than the HPA's plus the savings less a reserve of 2%"
            " of the HPA's pod-hours over the same time (needs `make_up_shortfall`, which keeps the balance). Where"
            " the HPA leaves nothing unserved the choice is unchanged. false always takes the cheapest rung no worse"
            " than the HPA."
        ),
    )

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        import models  # the registry; cheap (the model modules import their libraries lazily)

        if value not in models.names():
            raise ValueError(f"unknown model {value!r}; known: {', '.join(models.names())}")
        return value

    @model_validator(mode="after")
    def _ladder_around_quantile(self) -> ForecastSettings:
        for name, rungs, sign, order, side, verb in (
            ("raise_quantile_to", self.raise_quantile_to, 1, "ascending", "above", "raise"),
            ("lower_quantile_to", self.lower_quantile_to, -1, "descending", "below", "lower"),
        ):
            ladder = [self.quantile, *rungs]
            if any(not 0 < q < 1 for q in rungs) or any(sign * (b - a) <= 0 for a, b in zip(ladder, ladder[1:])):
                raise ValueError(
                    f"{name} must be {order} quantiles in (0, 1) {side} quantile {self.quantile:g},"
                    f" got {rungs} (set it to [] to never {verb} the quantile)"
                )
        lean, above = self.lean_quantile, min([self.quantile, *self.lower_quantile_to])
        if lean is not None and lean >= above:
            raise ValueError(f"lean_quantile must be below quantile and every lower_quantile_to ({above:g}), got {lean:g} (null turns it off)")
        return self


class ScalingPolicySettings(_Settings):
    """One rate policy of autoscaling/v2 ``behavior`` (``HPAScalingPolicy``)."""

    type: domain.PolicyType = Field(description="`Pods` (an absolute count) or `Percent` (of the current replicas).")
    value: int = Field(gt=0, description="At most this many pods (or percent) of change per period.")
    period_seconds: int = Field(ge=1, le=1800, description="Length of the period, 1 to 1800 seconds.")

    def to_policy(self) -> domain.ScalingPolicy:
        """Convert to the domain value type."""
        return domain.ScalingPolicy(self.type, self.value, self.period_seconds)


class ScalingRulesSettings(_Settings):
    """One direction of ``behavior`` (``HPAScalingRules``); unset fields take the Kubernetes defaults."""

    stabilization_window_seconds: int | None = Field(
        None,
        ge=0,
        le=3600,
        description=(
            "Seconds of past recommendations considered before scaling in this direction (0 to 3600);"
            " null takes the default (scale-up 0, scale-down replicas.downscale_stabilization_seconds)."
        ),
    )
    select_policy: domain.SelectPolicy | None = Field(
        None,
        description="`Max` or `Min` picks the policy allowing the most or least change; `Disabled` blocks this direction; null means `Max`.",
    )
    policies: tuple[ScalingPolicySettings, ...] | None = Field(
        None,
        description=(
            "Rate policies (at least one); null takes the defaults (scale-up: 4 pods and 100% per 15 seconds;"
            " scale-down: 100% per 15 seconds)."
        ),
    )

    @field_validator("policies")
    @classmethod
    def _check_policies_not_empty(cls, value: tuple[ScalingPolicySettings, ...] | None) -> Any:
        # A validator rather than `min_length`: pydantic checks the length after dropping the
        # items that failed, so one bad policy would also be reported as "too short".
        if value is not None and not value:
            raise ValueError("must list at least one policy, as the Kubernetes API requires; omit it for the defaults")
        return value

    def to_rules(self, defaults: domain.ScalingRules) -> domain.ScalingRules:
        """Fill the unset fields from ``defaults``, as the API server's defaulting does.

        Args:
            defaults: The rules of this direction when nothing is set.

        Returns:
            The complete rules.
        """
        changes: dict[str, Any] = {}
        if self.stabilization_window_seconds is not None:
            changes["stabilization_window_seconds"] = self.stabilization_window_seconds
        if self.select_policy is not None:
            changes["select_policy"] = self.select_policy
        if self.policies is not None:
            changes["policies"] = tuple(policy.to_policy() for policy in self.policies)
        return dataclasses.replace(defaults, **changes)

    @classmethod
    def from_rules(cls, rules: domain.ScalingRules) -> ScalingRulesSettings:
        """The settings that spell out ``rules`` completely."""
        return cls(
            stabilization_window_seconds=rules.stabilization_window_seconds,
            select_policy=rules.select_policy,
            policies=tuple(
                ScalingPolicySettings(type=p.type, value=p.value, period_seconds=p.period_seconds)
                for p in rules.policies
            ),
        )


class BehaviorSettings(_Settings):
    """autoscaling/v2 ``behavior`` in snake_case; a direction left out takes the Kubernetes defaults."""

    scale_up: ScalingRulesSettings | None = Field(
        None, description="Rules for scaling up; null takes the defaults (no window, +4 pods or +100% per 15 seconds, Max)."
    )
    scale_down: ScalingRulesSettings | None = Field(
        None,
        description=(
            "Rules for scaling down; null takes the defaults (window downscale_stabilization_seconds,"
            " -100% per 15 seconds, Max)."
        ),
    )

    @classmethod
    def from_behavior(cls, behavior: domain.Behavior) -> BehaviorSettings:
        """The settings that spell out ``behavior`` completely (e.g. ``domain.default_behavior()``)."""
        return cls(
            scale_up=ScalingRulesSettings.from_rules(behavior.scale_up),
            scale_down=ScalingRulesSettings.from_rules(behavior.scale_down),
        )


class ReplicaSettings(_Settings):
    """Replica bounds, target and scaling rules; the defaults for every workload."""

    min_replicas: int = Field(1, ge=0, description="Fewest replicas the controller sets.")
    max_replicas: int = Field(100, ge=1, description="Most replicas the controller sets; at least min_replicas.")
    target_utilization_ratio: float = Field(
        0.95,
        gt=0,
        le=1,
        description=(
            "Share of a pod's capacity the forecast quantile is provisioned at (0 < x <= 1); lower means more "
            "headroom. The forecast quantile already holds headroom in proportion to uncertainty, so this is "
            "close to 1, unlike the HPA's usual 0.7 (which the planner still uses as its floor when it has no "
            "trusted forecast)."
        ),
    )
    tolerance_ratio: float = Field(
        0.1,
        ge=0,
        le=1,
        description="No scaling while load/capacity is within this ratio of the target (HPA's tolerance).",
    )
    startup_seconds: float = Field(
        120.0,
        ge=0,
        description="Seconds from ordering a pod to it serving traffic; the forecast is read this far ahead.",
    )
    startup_quantile: float = Field(
        0.5,
        gt=0,
        lt=1,
        description=(
            "Quantile of the observed pod startup durations (decayed, newest weigh most) that is the"
            " startup estimate in the lead time; 0.5 is the median. startup_seconds is its value before"
            " any pod was seen."
        ),
    )
    downscale_stabilization_seconds: int = Field(
        300,
        ge=0,
        description=(
            "Scale-down stabilisation window when behavior is null or leaves it unset (the"
            " kube-controller-manager flag --horizontal-pod-autoscaler-downscale-stabilization)."
        ),
    )
    scale_up_headroom_ratio: float = Field(
        0.1,
        ge=0,
        le=1,
        description=(
            "scaleahead's hysteresis: a scale-up orders this share more than the forecast needs, so the next"
            " small rise does not cost another scale action (0 turns it off)."
        ),
    )
    scale_in_band_ratio: float = Field(
        0.2,
        ge=0,
        le=1,
        description=(
            "scaleahead's hysteresis: no scale-in while the count is at most this share above what the"
            " forecast needs (0 turns it off)."
        ),
    )
    scale_down_headroom_ratio: float = Field(
        0.1,
        ge=0,
        le=1,
        description="scaleahead's hysteresis: a scale-in keeps this share above what the forecast needs.",
    )
    scale_down_window_from_lead: bool = Field(
        True,
        description=(
            "When behavior is null, scaleahead's scale-down window is the lead time (startup + metrics lag +"
            " one tick, at least 150 s) instead of downscale_stabilization_seconds: a dip shorter than a"
            " replacement's startup is held through, a longer one released. The hpa policy ignores it."
        ),
    )
    behavior: BehaviorSettings | None = Field(
        None,
        description=(
            "autoscaling/v2 behavior (scale_up, scale_down: stabilization_window_seconds, select_policy,"
            " policies); null uses the legacy HPA path without behavior."
        ),
    )

    @field_validator("max_replicas")
    @classmethod
    def _check_max_not_below_min(cls, value: int, info: ValidationInfo) -> int:
        # A field validator, not a model validator: pydantic skips a model's after-validators
        # once any field failed, which would hide this mistake behind an unrelated one.
        min_replicas = info.data.get("min_replicas")
        if min_replicas is not None and value < min_replicas:
            raise ValueError(f"must be greater than or equal to min_replicas ({min_replicas})")
        return value

    def to_behavior(self) -> domain.Behavior | None:
        """The complete ``behavior`` with the Kubernetes defaults filled in.

        Returns:
            ``None`` when ``behavior`` is unset (the legacy HPA path); otherwise a
            ``domain.Behavior`` whose unset directions and fields take the API server's defaults,
            with the scale-down window defaulting to ``downscale_stabilization_seconds``.
        """
        if self.behavior is None:
            return None
        defaults = domain.default_behavior(downscale_stabilization_seconds=self.downscale_stabilization_seconds)
        scale_up, scale_down = self.behavior.scale_up, self.behavior.scale_down
        return domain.Behavior(
            scale_up=defaults.scale_up if scale_up is None else scale_up.to_rules(defaults.scale_up),
            scale_down=defaults.scale_down if scale_down is None else scale_down.to_rules(defaults.scale_down),
        )


def _make_overrides(
    settings: type[BaseModel], name: str, doc: str, descriptions: Mapping[str, str], *, nullable: bool
) -> type[_Settings]:
    """Build an override model from ``settings``: the same fields, all optional, default ``None``.

    Generated rather than written out so that the two can never drift apart; the constraints
    (``ge``, ``le``, ...) are carried over, the defaults are not (an unset override inherits).
    With ``nullable`` a field also takes null (which inherits, as omitting it does).
    """
    fields: dict[str, Any] = {}
    for key, field in settings.model_fields.items():
        inner = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        fields[key] = (inner | None if nullable else inner, Field(None, description=descriptions[key]))
    return create_model(name, __base__=_Settings, __doc__=doc, __module__=__name__, **fields)


ReplicaOverrides = _make_overrides(
    ReplicaSettings,
    "ReplicaOverrides",
    "A partial ``ReplicaSettings``: the fields a workload sets replace the global ones.",
    {
        **{key: f"Overrides replicas.{key} for this workload; omitted or null inherits it." for key in ReplicaSettings.model_fields},
        "behavior": (
            "Replaces replicas.behavior for this workload as a whole: directions and fields it leaves"
            " out take the Kubernetes defaults, not those of replicas.behavior; omitted or null inherits it."
        ),
    },
    nullable=True,
)

# Unlike ``ReplicaOverrides`` a forecast override is what the workload *writes*: an omitted key
# inherits, a key written replaces, so ``lean_quantile: null`` turns the lean rung off for one
# workload as it does globally (no other forecast setting takes null, and there null is an error).
ForecastOverrides = _make_overrides(
    ForecastSettings,
    "ForecastOverrides",
    "A partial ``ForecastSettings``: the keys a workload writes replace the global ones.",
    {
        **{key: f"Overrides forecast.{key} for this workload; omitted inherits it." for key in ForecastSettings.model_fields},
        "lean_quantile": "Overrides forecast.lean_quantile for this workload; omitted inherits it."
        " null turns the lean rung off for this workload.",
    },
    nullable=False,
)


class WorkloadSettings(_Settings):
    """One scale target and what it overrides."""

    namespace: str = Field(description="Namespace of the scale target (a DNS-1123 label).")
    name: str = Field(description="Name of the scale target (a DNS-1123 subdomain).")
    kind: str = Field("Deployment", description="Kind of the scale target; any kind with a scale subresource.")
    api_version: str = Field("apps/v1", description="API version of the scale target's kind.")
    mode: Mode | None = Field(None, description="`recommend` or `active` for this workload; null inherits loop.default_mode.")
    load_query: str | None = Field(
        None, description="PromQL template replacing metrics.load_query for this workload; null inherits it."
    )
    replicas: ReplicaOverrides = Field(  # type: ignore[valid-type]
        default_factory=ReplicaOverrides,
        description="Replica settings of this workload; every field optional, an unset one inherits from replicas.",
    )
    forecast: ForecastOverrides = Field(  # type: ignore[valid-type]
        default_factory=ForecastOverrides,
        description=(
            "Forecast settings of this workload (the quantile ladder, say: a latency-sensitive workload may"
            " keep a higher quantile and drop the lower rungs); a key it omits inherits from forecast."
        ),
    )

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        if len(value) > 63 or not _DNS1123_LABEL.fullmatch(value):
            raise ValueError(
                f"must be a DNS-1123 label: at most 63 lower case alphanumeric characters or '-',"
                f" starting and ending with an alphanumeric character (got {json.dumps(value)})"
            )
        return value

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if len(value) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(value):
            raise ValueError(
                f"must be a DNS-1123 subdomain: at most 253 lower case alphanumeric characters, '-' or '.',"
                f" starting and ending with an alphanumeric character (got {json.dumps(value)})"
            )
        return value

    @field_validator("kind")
    @classmethod
    def _check_kind(cls, value: str) -> str:
        if not _KIND.fullmatch(value):
            raise ValueError(f"must be a CamelCase Kubernetes kind such as Deployment (got {json.dumps(value)})")
        return value

    @field_validator("api_version")
    @classmethod
    def _check_api_version(cls, value: str) -> str:
        if not _API_VERSION.fullmatch(value):
            raise ValueError(f"must be an API version such as apps/v1 (got {json.dumps(value)})")
        return value

    @field_validator("load_query")
    @classmethod
    def _check_load_query(cls, value: str | None) -> str | None:
        return None if value is None else check_query_template(value)


class NodePoolSettings(_Settings):
    """Node-pool scaling from the replica plan (not implemented yet; off by default)."""

    enabled: bool = Field(False, description="Resize node pools ahead of the replica plan.")
    node_startup_seconds: float = Field(
        180.0, ge=0, description="Seconds from ordering a node to it accepting pods."
    )


class DescheduleSettings(_Settings):
    """Descheduling of pods to consolidate nodes (not implemented yet; off by default)."""

    enabled: bool = Field(False, description="Evict pods to consolidate nodes after scale-in.")


class ControllerSettings(_Settings):
    """The whole configuration of the controller, as held by the ConfigMap's ``config.yaml``."""

    loop: LoopSettings = Field(default_factory=LoopSettings, description="How the control loop runs.")
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings, description="Where the load comes from (Prometheus) and how to read it."
    )
    forecast: ForecastSettings = Field(
        default_factory=ForecastSettings, description="Forecasting model, history and planning quantile."
    )
    # `replicas` precedes `workloads`: the workloads validator reads the validated global replicas.
    replicas: ReplicaSettings = Field(
        default_factory=ReplicaSettings, description="Replica settings of every workload unless it overrides them."
    )
    nodepools: NodePoolSettings = Field(default_factory=NodePoolSettings, description="Node-pool scaling.")
    deschedule: DescheduleSettings = Field(default_factory=DescheduleSettings, description="Descheduling.")
    workloads: tuple[WorkloadSettings, ...] = Field(
        (), description="The scale targets; each (namespace, kind, name) at most once."
    )

    @field_validator("workloads", mode="wrap")
    @classmethod
    def _check_workloads(cls, value: Any, handler: Any, info: ValidationInfo) -> tuple[WorkloadSettings, ...]:
        # The cross-workload checks must run even when some workload (or another group) has
        # a mistake, so that one load reports everything: check every workload that validated.
        problems: list[Any] = []
        try:
            workloads = handler(value)
            checked = list(enumerate(workloads))
        except ValidationError as exc:
            if not isinstance(value, list | tuple):
                raise
            problems.extend(exc.errors())
            failed = {error["loc"][0] for error in exc.errors() if error["loc"]}
            checked = [(i, WorkloadSettings.model_validate(item)) for i, item in enumerate(value) if i not in failed]

        seen: dict[tuple[str, str, str], int] = {}
        for index, workload in checked:
            key = (workload.namespace, workload.kind, workload.name)
            if key in seen:
                problems.append(
                    _value_error(
                        (index,),
                        f"duplicates workloads[{seen[key]}] ({workload.kind} {workload.namespace}/{workload.name});"
                        " list each scale target once",
                        workload,
                    )
                )
            else:
                seen[key] = index

        # The merges can only be checked against valid global settings (else they are reported there).
        replicas, forecast = info.data.get("replicas"), info.data.get("forecast")
        for index, workload in checked:
            for group, merge, base, overrides in (
                ("replicas", _merge_replicas, replicas, workload.replicas),
                ("forecast", _merge_forecast, forecast, workload.forecast),
            ):
                if base is None:
                    continue
                try:
                    merge(base, overrides)
                except ValidationError as exc:
                    problems.extend({**error, "loc": (index, group, *error["loc"])} for error in exc.errors())

        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return workloads

    # -- loading ---------------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<string>") -> ControllerSettings:
        """Load settings from YAML text: the settings document, or a whole ConfigMap manifest.

        A document with ``kind: ConfigMap`` is read as a manifest whose ``data["config.yaml"]``
        holds the settings; line numbers then point into the manifest. An empty document gives
        the defaults.

        Args:
            text: The YAML text.
            source: Name of the text's origin (a file name), used in problem messages.

        Returns:
            The validated settings.

        Raises:
            SettingsError: The text is not YAML or the settings are invalid; lists every problem.
        """
        document = _parse(text, source=source)
        if isinstance(document.data, Mapping) and document.data.get("kind") == "ConfigMap":
            document = _embedded_settings(document, source=source)
        return _validate(document, source=source)

    @classmethod
    def from_configmap(cls, data: Mapping[str, str], *, source: str = "ConfigMap") -> ControllerSettings:
        """Load settings from a ConfigMap's ``data``, which holds the YAML under ``config.yaml``.

        Other keys of ``data`` are ignored. Line numbers are those of the ``config.yaml`` text.

        Args:
            data: The ConfigMap's ``data`` mapping.
            source: Name of the ConfigMap (e.g. ``scaleahead/scaleahead-config``) for messages.

        Returns:
            The validated settings.

        Raises:
            SettingsError: ``config.yaml`` is missing, not YAML, or holds invalid settings.
        """
        if CONFIGMAP_KEY not in data:
            raise SettingsError(
                [Problem(CONFIGMAP_KEY, f"missing: the settings are read from data[{CONFIGMAP_KEY!r}]")], source=source
            )
        return _validate(_parse(data[CONFIGMAP_KEY], source=source), source=source)

    # -- per-workload views ------------------------------------------------------------------------

    def effective_replicas(self, workload: WorkloadSettings) -> ReplicaSettings:
        """The replica settings of ``workload``: its overrides merged onto ``replicas``.

        Args:
            workload: One of ``self.workloads`` (or any workload, for what-if use).

        Returns:
            The merged, re-validated settings.

        Raises:
            SettingsError: The merge is invalid (e.g. an override's ``max_replicas`` below the
                global ``min_replicas``); the path names the workload. Never raised for
                settings that were loaded, since loading checks every merge.
        """
        try:
            return _merge_replicas(self.replicas, workload.replicas)
        except ValidationError as exc:
            raise self._merge_error(workload, "replicas", exc) from None

    def _merge_error(self, workload: WorkloadSettings, group: str, exc: ValidationError) -> SettingsError:
        where: tuple[str | int, ...] = ("workloads", self.workloads.index(workload)) if workload in self.workloads else ()
        suffix = "" if where else f" (workload {self.workload_ref(workload)})"
        return SettingsError(
            [Problem(_format_path((*where, group, *error["loc"])), _describe(error, ()) + suffix) for error in exc.errors()]
        )

    def effective_forecast(self, workload: WorkloadSettings) -> ForecastSettings:
        """The forecast settings of ``workload``: the keys it writes merged onto ``forecast``.

        Raises:
            SettingsError: The merge is invalid (a ladder that no longer sits around the
                quantile, say); as ``effective_replicas``.
        """
        try:
            return _merge_forecast(self.forecast, workload.forecast)
        except ValidationError as exc:
            raise self._merge_error(workload, "forecast", exc) from None

    def effective_mode(self, workload: WorkloadSettings) -> Mode:
        """``workload.mode``, or ``loop.default_mode`` when the workload does not set one."""
        return workload.mode or self.loop.default_mode

    def effective_load_template(self, workload: WorkloadSettings) -> str:
        """The PromQL load query template of ``workload``: its own, or ``metrics.load_query``.

        The placeholders are filled (and escaped) by ``controller.adapters.prometheus.render_query``.
        """
        return workload.load_query or self.metrics.load_query

    def workload_ref(self, workload: WorkloadSettings) -> domain.WorkloadRef:
        """The domain reference to ``workload``'s scale target."""
        return domain.WorkloadRef(
            namespace=workload.namespace, name=workload.name, kind=workload.kind, api_version=workload.api_version
        )


def load_settings(path: str | os.PathLike[str]) -> ControllerSettings:
    """Load settings from a YAML file (the settings document or a ConfigMap manifest).

    Args:
        path: The file.

    Returns:
        The validated settings; the defaults for an empty file.

    Raises:
        SettingsError: The file cannot be read, is not YAML, or holds invalid settings.
    """
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError([Problem("", f"cannot read the file: {exc.strerror or exc}")], source=source) from exc
    except UnicodeDecodeError as exc:
        raise SettingsError([Problem("", f"not UTF-8 text: {exc.reason} at byte {exc.start}")], source=source) from exc
    return ControllerSettings.from_yaml(text, source=source)


def check_query_template(template: str) -> str:
    """Check a load query template; return it unchanged.

    Raises:
        ValueError: A ``$`` that starts no valid placeholder, an unknown placeholder, or the
            ``{name}`` style that would clash with PromQL braces.
    """
    brace_style = _BRACE_PLACEHOLDER.search(template)
    if brace_style:
        name = brace_style.group(1)
        raise ValueError(f"write the placeholder {{{name}}} as ${name}: PromQL uses braces itself")
    parsed = string.Template(template)
    if not parsed.is_valid():
        match = next(m for m in parsed.pattern.finditer(template) if m.group("invalid") is not None)
        column = match.start()  # the `$` that starts no placeholder
        raise ValueError(
            f"invalid placeholder at character {column + 1}: {template[column:column + 12]!r};"
            " use $namespace or $name, and $$ for a literal $"
        )
    unknown = sorted(set(parsed.get_identifiers()) - QUERY_PLACEHOLDERS)
    if unknown:
        names = ", ".join(f"${name}" for name in unknown)
        raise ValueError(f"unknown placeholder {names}; the template may use $namespace and $name")
    return template


# ---------------------------------------------------------------------------------------------
# Merging per-workload overrides
# ---------------------------------------------------------------------------------------------


def _merge_replicas(base: ReplicaSettings, overrides: BaseModel) -> ReplicaSettings:
    """Merge ``overrides`` onto ``base`` and re-validate.

    Raises:
        ValidationError: With locations relative to ``overrides`` (``("max_replicas",)``), pointing
            at the key the workload sets, since that is the one a user can change there.
    """
    changes = {name: value for name, value in overrides if value is not None}
    if not changes:
        return base
    # Check the bounds here rather than in ReplicaSettings' validator so that the problem
    # names the key this workload actually sets, and where the other bound came from.
    min_replicas = changes.get("min_replicas", base.min_replicas)
    max_replicas = changes.get("max_replicas", base.max_replicas)
    if min_replicas > max_replicas:
        if "max_replicas" in changes:
            origin = "" if "min_replicas" in changes else ", from replicas.min_replicas"
            loc, message = "max_replicas", f"must be greater than or equal to min_replicas ({min_replicas}{origin})"
        else:
            loc, message = "min_replicas", f"must be less than or equal to max_replicas ({max_replicas}, from replicas.max_replicas)"
        raise ValidationError.from_exception_data("ReplicaOverrides", [_value_error((loc,), message, changes[loc])])
    return ReplicaSettings.model_validate({**dict(base), **changes})


def _merge_forecast(base: ForecastSettings, overrides: BaseModel) -> ForecastSettings:
    """Merge the keys ``overrides`` was given onto ``base`` and re-validate (the ladder's checks).

    Raises:
        ValidationError: With locations relative to the forecast settings; a ladder problem is
            located at the group itself, since it may come from the global settings and the
            override together (the message names the keys).
    """
    changes = {name: getattr(overrides, name) for name in overrides.model_fields_set}
    if not changes:
        return base
    return ForecastSettings.model_validate({**dict(base), **changes})


def _value_error(loc: tuple[str | int, ...], message: str, input_value: Any) -> InitErrorDetails:
    return InitErrorDetails(type="value_error", loc=loc, input=input_value, ctx={"error": ValueError(message)})


# ---------------------------------------------------------------------------------------------
# Parsing YAML and mapping problems to lines
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Document:
    """A parsed YAML document: plain data plus the node tree that knows where each value was written."""

    data: Any
    root: yaml.Node | None
    line_offset: int = 0  # added to the tree's lines (settings embedded as a literal block in a manifest)
    fixed_line: int | None = None  # when set, every problem points here (embedded text we cannot map)

    def line(self, node: yaml.Node | yaml.Mark) -> int | None:
        """1-based line in the source of a node (its start) or a mark."""
        if self.fixed_line is not None:
            return self.fixed_line
        mark = node.start_mark if isinstance(node, yaml.Node) else node
        return mark.line + 1 + self.line_offset

    def node_at(self, loc: Sequence[str | int]) -> tuple[yaml.Node | None, int | None]:
        """The deepest node along ``loc`` and the line of that step (a mapping key's line, or an item's).

        Stops at the first step that is not in the document (a missing key), so a problem about a
        missing setting points at the mapping that lacks it.
        """
        node = self.root
        line = None if node is None else self.line(node)
        for part in loc:
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                # The last occurrence: it is the one YAML keeps when a key is repeated.
                matches = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part]
                if not matches:
                    break
                key, node = matches[-1]
                line = self.line(key)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
                line = self.line(node)
            else:
                break
        return node, line


def _parse(text: str, *, source: str, line_offset: int = 0, fixed_line: int | None = None) -> _Document:
    """Parse one YAML document into data and node tree.

    Raises:
        SettingsError: The text is not a single valid YAML document.
    """
    shell = _Document(data=None, root=None, line_offset=line_offset, fixed_line=fixed_line)
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = None if root is None else loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "cannot parse"
        if mark is None:
            raise SettingsError([Problem("", f"invalid YAML: {what}")], source=source) from None
        problem = Problem("", f"invalid YAML: {what} (column {mark.column + 1})", shell.line(mark))
        raise SettingsError([problem], source=source) from None
    except yaml.YAMLError as exc:
        raise SettingsError([Problem("", f"invalid YAML: {exc}")], source=source) from None
    finally:
        loader.dispose()
    return dataclasses.replace(shell, data=data, root=root)


def _embedded_settings(manifest: _Document, *, source: str) -> _Document:
    """The settings document inside a ConfigMap manifest's ``data["config.yaml"]``."""
    path = ("data", CONFIGMAP_KEY)
    node, line = manifest.node_at(path)
    data = manifest.data.get("data")
    if not isinstance(data, Mapping) or CONFIGMAP_KEY not in data:
        message = f"missing: a ConfigMap of scaleahead settings holds them under data[{CONFIGMAP_KEY!r}]"
        raise SettingsError([Problem(_format_path(path), message, line)], source=source)
    text = data[CONFIGMAP_KEY]
    if not isinstance(text, str):
        raise SettingsError([Problem(_format_path(path), "must be a string: the settings as YAML text", line)], source=source)
    # A literal block (`config.yaml: |`) keeps its lines one to one, starting on the line after
    # the `|`; any other style (quoted, folded) does not, so point at the key instead.
    if isinstance(node, yaml.ScalarNode) and node.style == "|" and manifest.fixed_line is None:
        return _parse(text, source=source, line_offset=manifest.line(node))
    return _parse(text, source=source, fixed_line=line)


def _validate(document: _Document, *, source: str) -> ControllerSettings:
    """Validate a parsed settings document, collecting every problem with its line."""
    problems = list(_duplicate_keys(document, document.root, ()))
    try:
        settings = ControllerSettings.model_validate({} if document.data is None else document.data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            problems.append(Problem(_format_path(loc), _describe(error, loc), document.node_at(loc)[1]))
    if problems:
        problems.sort(key=lambda problem: (problem.line is None, problem.line or 0))
        raise SettingsError(problems, source=source)
    return settings


def _duplicate_keys(document: _Document, node: yaml.Node | None, loc: tuple[str | int, ...]) -> Iterator[Problem]:
    """Problems for keys written twice in one mapping: YAML silently keeps only the last value."""
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int | None] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            if key.value in first_line:
                message = f"written twice (first on line {first_line[key.value]}); YAML would keep only this one"
                yield Problem(_format_path((*loc, key.value)), message, document.line(key))
            else:
                first_line[key.value] = document.line(key)
            yield from _duplicate_keys(document, value, (*loc, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(document, item, (*loc, index))


def _format_path(loc: Sequence[str | int]) -> str:
    """``("workloads", 2, "replicas")`` -> ``"workloads[2].replicas"``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _describe(error: Mapping[str, Any], loc: tuple[str | int, ...]) -> str:
    """A user-facing message for one pydantic error (``loc`` locates it, for key suggestions)."""
    kind = error["type"]
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "extra_forbidden":
        allowed = _field_names_at(loc[:-1])
        if not allowed:
            return "unknown setting"
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown setting; {hint}allowed here: {', '.join(allowed)}"
    if kind == "missing":
        return "required setting is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        message = "must be a mapping of setting names to values"
    elif kind in ("tuple_type", "list_type"):
        message = "must be a list"
    else:
        message = error["msg"][:1].lower() + error["msg"][1:]
    return message + _got(error.get("input"))


def describe_error(error: Mapping[str, Any]) -> str:
    """The user-facing message of one pydantic error of ``WorkloadSettings`` or ``ControllerSettings``
    (the one the settings file gets: ``input should be less than 1 (got 1.5)``, key suggestions)."""
    return _describe(error, tuple(error["loc"]))


def _got(value: Any) -> str:
    """`` (got VALUE)`` for a scalar input, in YAML/JSON spelling; empty for mappings and lists."""
    if isinstance(value, Mapping | list | tuple):
        return ""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return f" (got {text if len(text) <= 60 else text[:57] + '...'})"


def _field_names_at(loc: Sequence[str | int]) -> list[str]:
    """Names of the settings allowed at ``loc`` (a path to a mapping), or [] when unknown."""
    model: type[BaseModel] | None = ControllerSettings
    for part in loc:
        if isinstance(part, int):
            continue
        field = None if model is None else model.model_fields.get(part)
        if field is None:
            return []
        model = _model_in(field.annotation)
    return [] if model is None else list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings model inside an annotation such as ``tuple[X, ...]`` or ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        model = _model_in(arg)
        if model is not None:
            return model
    return None
