"""The control loop: every ``loop.interval_seconds``, reconcile every managed workload through its policy.

One tick is the pipeline of STYLE.md section 1 for each workload, run concurrently
(at most ``loop.max_concurrent_workloads`` at once): the policy observes through the
ports (Prometheus, the scale subresource, the pods), plans with the pure planner and
acts through the actuator; the loop then records (metrics, ``/debug/decisions``, one
JSON log line, the state annotation). The policy is the very ``PredictivePolicy`` the
simulator scores; only the adapters behind its ports differ.

What the loop adds around the policy, and why:

* **Modes.** ``recommend`` (the default of a new workload) computes and publishes
  everything but its actuator never writes: no scale PATCH, no state annotation.
  ``active`` scales. A workload's mode comes from the settings or its annotation.
* **Safety vetoes in the actuator port.** A scale-in is never applied on a tick whose
  load was missing (empty/NaN result or ``on_missing: zero``), whatever the planner
  says; nothing is applied while ``may_act()`` is false (leadership lost).
* **Failures are per workload and throttled** (kopf's ``throttlers.py``): a failed
  reconcile (Prometheus down or timing out, API errors after the adapters' own retries)
  counts a failure; the workload is then retried after 1, 2, 4, then every 8 ticks.
  From ``loop.failure_threshold`` failures on it *holds*: it is not scaled, a
  ``HoldingReplicas`` decision is published at every attempt, a Warning Event says so
  once, and a ``ResumedScaling`` Event when a reconcile succeeds again. One workload's
  failure never affects another's tick, and the loop never dies of it.
* **Conflicts.** A target that an HPA or a KEDA ScaledObject scales is not driven:
  ``scaleahead_conflicts`` is 1, a Warning Event (``ConflictingAutoscaler``) and a log
  line are written when the conflict is first seen; it is checked again every
  ``conflict_recheck_seconds``.
* **State annotation.** After a decision that changed what a restart needs (the set of
  recommended counts in the window, the scale events, the startup samples, the daily
  choice of quantile and the counterfactual days it was made on), the state
  is written to ``scaleahead.io/state`` (``controller.statecodec``); on start it is read
  back. Because the annotation is not rewritten while the same count keeps being
  recommended, the restored window also gets the current count at the restart time,
  as a new HPA's first sync does: a restart never scales in inside the window.
* **History on start.** Each workload's model is fitted from a Prometheus range query
  over ``forecast.history_days`` before its first tick (``LivePredictivePolicy.prime``),
  so the forecast is usable at once instead of after ``first_fit_seconds`` of ticks.
* **Refits off the event loop.** ``LivePredictivePolicy`` runs each fit that the policy
  is about to ask for in a worker thread (``asyncio.to_thread``) during the last I/O
  await of its reconcile, then hands the fitted model to the unchanged policy code,
  which therefore takes exactly the decisions it takes in the simulator.
* **Discovery.** The ``workloads`` of the settings, plus Deployments and StatefulSets
  annotated ``scaleahead.io/enabled: "true"`` (re-listed every
  ``discovery_interval_seconds``), with per-workload overrides by annotation
  (``ANNOTATION_*`` below). The settings win when both name the same target.
* **Settings reload.** The settings file (a mounted ConfigMap) is polled through the
  Clock; a valid change is applied at the next tick (policies whose settings changed
  are rebuilt, keeping their state), an invalid one keeps the last good settings, sets
  ``scaleahead_config_valid`` to 0, logs every problem and emits a Warning Event on the
  controller's own Pod (or Namespace).
* **Time.** Every sleep and every read of time goes through the ``Clock``; tick duration
  is wall time (``time.perf_counter``), tick lag is the Clock's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import difflib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError

from controller import policies, statecodec
from controller.decide import leadtime, planner
from controller.decide.baseline import ReferenceMemory
from controller.domain import Decision, Reason, Recommendation, Sample, Series, WorkloadRef
from controller.policies import Policy, PolicyPorts, PredictivePolicy
from controller.ports import Clock, MetricsSource
from controller.server import DecisionLog, Health, log_decision
from controller.settings import ControllerSettings, ForecastSettings, SettingsError, WorkloadSettings, describe_error
from controller.telemetry import Telemetry

log = logging.getLogger(__name__)

__all__ = [
    "ANNOTATION_ENABLED",
    "AnnotationDiscovery",
    "Controller",
    "LivePredictivePolicy",
    "PolicyFactory",
    "build_predictive_policy",
    "workload_from_annotations",
]

#: Opt-in of a Deployment or StatefulSet: ``scaleahead.io/enabled: "true"``.
ANNOTATION_ENABLED = "scaleahead.io/enabled"
#: Per-workload overrides by annotation, mapped onto ``WorkloadSettings`` / ``replicas``.
ANNOTATION_MODE = "scaleahead.io/mode"
ANNOTATION_LOAD_QUERY = "scaleahead.io/load-query"
ANNOTATION_REPLICAS = {
    "scaleahead.io/min-replicas": "min_replicas",
    "scaleahead.io/max-replicas": "max_replicas",
    "scaleahead.io/startup-seconds": "startup_seconds",
    "scaleahead.io/startup-quantile": "startup_quantile",
    "scaleahead.io/target-utilization-ratio": "target_utilization_ratio",
    "scaleahead.io/downscale-stabilization-seconds": "downscale_stabilization_seconds",
}
#: The forecast settings an annotated workload writes, as a YAML or JSON mapping
#: (``{quantile: 0.95, lower_quantile_to: [], lean_quantile: null}``): the keys it writes replace
#: the global ones, as ``workloads[].forecast`` in the settings. One annotation rather than one
#: per key, since a ladder is changed as a whole (its keys are checked together).
ANNOTATION_FORECAST = "scaleahead.io/forecast"
#: The keys ``scaleahead.io/forecast`` may write: the quantile ladder and how a rung is chosen.
#: The model, its history and its refits cost the controller memory and CPU for every workload,
#: so they stay with whoever owns the settings (anyone who may edit a Deployment may annotate it).
ANNOTATION_FORECAST_KEYS = (
    "quantile",
    "raise_quantile_to",
    "lower_quantile_to",
    "lean_quantile",
    "reference_days",
    "fallback_to_hpa",
    "make_up_shortfall",
    "spend_savings_on_service",
)

#: Event reasons of the loop itself (decisions use ``domain.Reason``).
EVENT_CONFLICT = "ConflictingAutoscaler"
EVENT_HOLDING = "HoldingReplicas"
EVENT_RESUMED = "ResumedScaling"
EVENT_INVALID_SETTINGS = "InvalidSettings"
EVENT_QUANTILE = "ProvisioningQuantileChanged"

#: Backoff of a failing workload, in ticks skipped after its n-th failure in a row (1, 2, 4, 8+).
_SKIP_TICKS = (0, 1, 3, 7)


# ---------------------------------------------------------------------------------------------
# The policy, live: history primed from Prometheus, refits in a worker thread
# ---------------------------------------------------------------------------------------------


class LivePredictivePolicy(PredictivePolicy):
    """``PredictivePolicy`` with two additions for the live loop; its decisions are unchanged.

    * ``prime(times, values)`` fills the load history from a range query (the last point
      per model step, as the policy's own tick aggregation) and fits the first model off the loop.
    * Refits run in a worker thread: during the last awaited port call of ``reconcile``
      (``recent_startups``, after which the policy aggregates the tick's load and may
      refit), the fit the policy is about to ask for is computed with ``asyncio.to_thread``
      on exactly the history it will use; ``_refit`` then installs that model instead of
      fitting inline. Should the prediction ever miss, ``_refit`` fits inline as before,
      so the decision is the same either way.

    Args:
        on_refit: called with each fit's wall time in seconds (``Telemetry.record_model_refit``).
        fallback_factory: builds the model used when a fit raises (``forecast.fallback_model``).
        Other arguments: as ``PredictivePolicy``.
    """

    def __init__(
        self,
        ports: PolicyPorts,
        params: planner.PlannerParams,
        *,
        on_refit: Callable[[float], None] | None = None,
        fallback_factory: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._outer_ports = ports
        self._now_seen = 0.0
        self._load_seen: float | None = None
        wrapped = PolicyPorts(
            clock=_ObservingClock(self, ports.clock),
            metrics=_ObservingMetrics(self, ports.metrics),
            pods=_PrefittingPods(self, ports.pods),
            actuator=ports.actuator,
        )
        super().__init__(wrapped, params, **kwargs)
        self.on_refit = on_refit
        self._fallback_factory = fallback_factory
        self._prefit: tuple[float, np.ndarray, Any] | None = None

    # -- what the loop reads --------------------------------------------------------------------

    @property
    def model_step_seconds(self) -> float:
        """Step of the series the forecaster sees."""
        return self._step

    @property
    def history_seconds(self) -> float:
        """How much history a fit uses."""
        return self._history_steps * self._step

    @property
    def lead_seconds(self) -> float:
        """The lead time the next plan uses (startup estimate + lag + one tick)."""
        return leadtime.lead_seconds(startup_seconds=self.startup.seconds, lag_seconds=self._lag, tick_seconds=self._tick)

    @property
    def last_load(self) -> float | None:
        """The load the last reconcile observed (``None``: missing)."""
        return self._load_seen

    def forecast_at(self, at: float, *, shown: bool = True) -> dict[float, float] | None:
        """Forecast load at ``at`` per quantile level, or ``None`` before the first fit.

        ``shown``: as the gauges show it, never below 0 (``policies.shown_load``); ``False``: the
        model's own values, which the forecast error is scored on."""
        f = self._forecast
        if f is None:
            return None
        k = f.index_at(at)
        if shown:
            return {q: policies.shown_load(f.quantile(q)[k]) for q in self._levels}
        return {q: float(f.quantile(q)[k]) for q in self._levels}

    # -- priming ----------------------------------------------------------------------------------

    async def prime(self, times: np.ndarray, values: np.ndarray) -> int:
        """Load history from a range query and fit the first model (in a worker thread).

        Each model step takes its last point, the last step ending at the last point;
        steps without a point are NaN (gaps). Replaces any history gathered so far.

        Args:
            times: Unix seconds, increasing.
            values: load at each time, in load units.

        Returns:
            The number of model steps loaded.
        """
        times = np.asarray(times, dtype=float)
        values = np.asarray(values, dtype=float)
        if times.size == 0:
            return 0
        end = float(times[-1])
        index = np.floor((end - times) / self._step + 1e-9).astype(int)  # 0: the step ending at `end`
        n = int(min(index.max() + 1, self._history_steps))
        keep = index < n
        # Each step's value is its last point, as the policy's own aggregation of ticks.
        steps = np.full(n, np.nan)
        idx, vals = index[keep][::-1], values[keep][::-1]  # latest point first
        _, first = np.unique(idx, return_index=True)
        steps[idx[first]] = vals[first]
        self._history = self._new_history(steps[::-1])
        self._history_end = end
        self._bucket, self._bucket_start = [], None
        if len(self._history) >= self._first_fit_steps:
            y = self._fit_window()
            start = end - (len(y) - 1) * self._step
            self._model = await asyncio.to_thread(self._fit, y, start)
            self._next_refit = end + self._refit_interval
            self._forecast = self._model.predict(self._forecast_steps(), self._levels)
        return n

    # -- refits off the loop ----------------------------------------------------------------------

    def _fit(self, y: np.ndarray, start: float) -> Any:
        """Fit a fresh model (falls back to ``fallback_factory`` when the fit raises). Thread-safe."""
        started = time.perf_counter()
        try:
            model = self._factory()
            model.fit(y, step_seconds=self._step, start_seconds=start)
        except Exception:
            if self._fallback_factory is None:
                raise
            log.warning("model fit failed; using the fallback model", exc_info=True)
            model = self._fallback_factory()
            model.fit(y, step_seconds=self._step, start_seconds=start)
        if self.on_refit is not None:
            with contextlib.suppress(Exception):
                self.on_refit(time.perf_counter() - started)
        return model

    def _pending_fit(self, now: float, load: float | None) -> tuple[np.ndarray, float] | None:
        """The ``(y, start)`` that ``_observe_load(now, load)`` is about to fit on, or ``None``.

        Built from the same step and due rules as ``PredictivePolicy._observe_load``, without
        changing any state.
        """
        value = self._completed_step(now, load)
        if value is None:
            return None
        if not self._fit_due(now, len(self._history) + 1):
            return None
        y = np.append(self._history.view()[-(self._history_steps - 1) :], value)
        return y, now - (len(y) - 1) * self._step

    async def _prefit_if_due(self) -> None:
        pending = self._pending_fit(self._now_seen, self._load_seen)
        if pending is None:
            return
        y, start = pending
        model = await asyncio.to_thread(self._fit, y, start)
        self._prefit = (self._now_seen, y, model)

    def _refit(self, now: float) -> None:
        y = self._fit_window()
        prefit, self._prefit = self._prefit, None
        if prefit is not None and prefit[0] == now and np.array_equal(prefit[1], y, equal_nan=True):
            self._model = prefit[2]
            self._next_refit = now + self._refit_interval
            return
        start = self._history_end - (len(y) - 1) * self._step
        self._model = self._fit(y, start)  # inline: same data, same decision
        self._next_refit = now + self._refit_interval


class _ObservingClock:
    """Remembers the time the policy read at the start of its reconcile."""

    def __init__(self, policy: LivePredictivePolicy, clock: Clock) -> None:
        self._policy, self._clock = policy, clock

    def now(self) -> float:
        t = self._clock.now()
        self._policy._now_seen = t
        return t

    async def sleep(self, seconds: float) -> None:
        await self._clock.sleep(seconds)


class _ObservingMetrics:
    """Remembers the load the policy observed."""

    def __init__(self, policy: LivePredictivePolicy, metrics: MetricsSource) -> None:
        self._policy, self._metrics = policy, metrics

    async def instant(self, query: str, at: float) -> Sample | None:
        sample = await self._metrics.instant(query, at)
        self._policy._load_seen = None if sample is None else sample.value
        return sample

    async def range(self, query: str, start: float, end: float, step_seconds: float) -> Series:
        return await self._metrics.range(query, start, end, step_seconds)


class _PrefittingPods:
    """Runs the pending fit in a worker thread after the policy's last I/O of the tick."""

    def __init__(self, policy: LivePredictivePolicy, pods: Any) -> None:
        self._policy, self._pods = policy, pods

    async def pod_counts(self, target: WorkloadRef) -> tuple[int, int]:
        return await self._pods.pod_counts(target)

    async def recent_startups(self, target: WorkloadRef, *, since: float) -> list[tuple[float, float]]:
        startups = await self._pods.recent_startups(target, since=since)
        await self._policy._prefit_if_due()
        return startups


# ---------------------------------------------------------------------------------------------
# Building a workload's policy from the settings
# ---------------------------------------------------------------------------------------------

PolicyFactory = Callable[[ControllerSettings, WorkloadSettings, PolicyPorts], Policy]


def build_predictive_policy(
    settings: ControllerSettings,
    workload: WorkloadSettings,
    ports: PolicyPorts,
    *,
    model_step_seconds: float | None = None,
    first_fit_seconds: float = 6 * 3600.0,
) -> LivePredictivePolicy:
    """The default policy factory: ``LivePredictivePolicy`` for ``forecast.model``.

    Args:
        settings: the controller settings.
        workload: the workload (its overrides apply).
        ports: the workload's ports.
        model_step_seconds: step of the series the model sees; ``None``: the loop interval.
        first_fit_seconds: history needed before the first fit.
    """
    from controller.adapters.prometheus import render_query

    options = policies.predictive_options(
        settings, workload, tick_seconds=settings.loop.interval_seconds, model_step_seconds=model_step_seconds
    )
    query = render_query(settings.effective_load_template(workload), namespace=workload.namespace, name=workload.name)
    return LivePredictivePolicy(
        ports,
        options.params,
        **options.kwargs,
        fallback_factory=policies.forecaster_factory(
            settings.effective_forecast(workload).fallback_model, max_horizon_steps=options.max_horizon_steps
        ),
        query=query,
        first_fit_seconds=first_fit_seconds,
    )


# ---------------------------------------------------------------------------------------------
# Discovery by annotation
# ---------------------------------------------------------------------------------------------


def workload_from_annotations(
    *, namespace: str, name: str, kind: str, annotations: Mapping[str, str]
) -> WorkloadSettings | None:
    """The ``WorkloadSettings`` of an annotated target, or ``None`` when it has not opted in.

    Raises:
        ValueError: an override annotation is invalid (the message names it).
    """
    if str(annotations.get(ANNOTATION_ENABLED, "")).strip().lower() != "true":
        return None
    doc: dict[str, Any] = {"namespace": namespace, "name": name, "kind": kind, "api_version": "apps/v1"}
    if ANNOTATION_MODE in annotations:
        doc["mode"] = annotations[ANNOTATION_MODE].strip()
    if ANNOTATION_LOAD_QUERY in annotations:
        doc["load_query"] = annotations[ANNOTATION_LOAD_QUERY]
    overrides = {key: annotations[a].strip() for a, key in ANNOTATION_REPLICAS.items() if a in annotations}
    if overrides:
        doc["replicas"] = overrides
    if ANNOTATION_FORECAST in annotations:
        doc["forecast"] = _forecast_annotation(annotations[ANNOTATION_FORECAST])
    try:
        return WorkloadSettings.model_validate(doc)
    except ValidationError as exc:
        raise ValueError("; ".join(f"{_annotation_of(e['loc'])}: {describe_error(e)}" for e in exc.errors())) from None


def _forecast_annotation(text: str) -> dict[str, Any]:
    """The mapping written in ``scaleahead.io/forecast``.

    Raises:
        ValueError: the value is not a YAML or JSON mapping (the message names the annotation).
    """
    shown = json.dumps(text if len(text) <= 60 else text[:57] + "...")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
        mark = getattr(exc, "problem_mark", None)
        where = f" at character {mark.index + 1}" if mark is not None else ""
        raise ValueError(f"{ANNOTATION_FORECAST}: not a YAML or JSON mapping: {problem}{where} of {shown}") from None
    except (RecursionError, ValueError) as exc:  # nested deeper than the parser goes; an integer of thousands of digits
        raise ValueError(f"{ANNOTATION_FORECAST}: cannot be read ({type(exc).__name__}: {str(exc)[:80]}) of {shown}") from None
    if not isinstance(value, dict):
        raise ValueError(
            f"{ANNOTATION_FORECAST}: must be a mapping of forecast settings such as"
            f" '{{quantile: 0.95, lower_quantile_to: []}}' (got {shown})"
        )
    problems = []
    for key in value:
        if key in ANNOTATION_FORECAST_KEYS:
            continue
        if key in ForecastSettings.model_fields:
            problems.append(f"{ANNOTATION_FORECAST} key {key}: set in the settings only (list the workload there to set it)")
        else:
            close = difflib.get_close_matches(str(key), ANNOTATION_FORECAST_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(f"{ANNOTATION_FORECAST} key {json.dumps(str(key))}: unknown; {hint}allowed: {', '.join(ANNOTATION_FORECAST_KEYS)}")
    if problems:
        raise ValueError("; ".join(problems))
    return value


def _annotation_of(loc: tuple[Any, ...]) -> str:
    """The annotation (and, for the forecast's mapping, the key in it) a settings location came from."""
    path = tuple(f"[{part}]" if isinstance(part, int) else str(part) for part in loc)
    if path[:1] == ("forecast",):
        return ANNOTATION_FORECAST + (f" key {'.'.join(path[1:]).replace('.[', '[')}" if len(path) > 1 else "")
    names = {f"replicas.{key}": a for a, key in ANNOTATION_REPLICAS.items()} | {
        "mode": ANNOTATION_MODE,
        "load_query": ANNOTATION_LOAD_QUERY,
    }
    return names.get(".".join(path), ".".join(path))


def _annotation_problems(exc: SettingsError, ref: WorkloadRef) -> str:
    """The problems of an annotated workload's merge, each named by the annotation it came from
    (``scaleahead.io/min-replicas: must be ... (100, from replicas.max_replicas)``). A ladder
    problem may come from keys the annotation does not write: the message says where those are."""
    parts = []
    for p in exc.problems:
        message = p.message.removesuffix(f" (workload {ref})")  # the log line begins with the workload
        if p.path == "forecast":
            message += " (the keys the annotation does not write are the global forecast settings)"
        parts.append(f"{_annotation_of(tuple(p.path.split('.')))}: {message}")
    return "; ".join(parts)


class AnnotationDiscovery:
    """Finds Deployments and StatefulSets annotated ``scaleahead.io/enabled: "true"`` in every namespace.

    Lists them as raw JSON in pages (annotations cannot be selected on server side).

    Args:
        api_client: a ``kubernetes_asyncio`` client.
        page_size: objects per list request.
        timeout_seconds: timeout of one request.
    """

    def __init__(
        self,
        api_client: Any,
        *,
        page_size: int = 500,
        timeout_seconds: float = 10.0,
        on_call: Callable[[Any], None] | None = None,
    ) -> None:
        from kubernetes_asyncio import client as k8s

        self._apps = k8s.AppsV1Api(api_client)
        self._page_size = page_size
        self._timeout = timeout_seconds
        self._on_call = on_call

    async def discover(self) -> tuple[list[WorkloadSettings], list[str]]:
        """Return the opted-in workloads and one problem per target with an invalid override.

        Raises:
            Exception: the list requests failed (the caller keeps the last result).
        """
        found: list[WorkloadSettings] = []
        problems: list[str] = []
        for kind, lister in (
            ("Deployment", self._apps.list_deployment_for_all_namespaces),
            ("StatefulSet", self._apps.list_stateful_set_for_all_namespaces),
        ):
            token: str | None = None
            while True:
                started = time.perf_counter()
                try:
                    response = await lister(limit=self._page_size, _continue=token, _preload_content=False,
                                            _request_timeout=self._timeout)  # fmt: skip
                    try:
                        body = await response.read()
                    finally:
                        response.release()
                except Exception:
                    self._record(kind, 0, started)
                    raise
                self._record(kind, None if 200 <= response.status <= 299 else response.status, started)
                # Without preloading the client does not raise on an error status: a 403 or a 500
                # must fail the discovery (the last list is kept), not read as "nothing annotated".
                if not 200 <= response.status <= 299:
                    raise RuntimeError(
                        f"listing {kind}s failed: HTTP {response.status} {response.reason}: {body[:200].decode(errors='replace')}"
                    )
                page = json.loads(body)
                for obj in page.get("items") or []:
                    meta = obj.get("metadata") or {}
                    annotations = meta.get("annotations") or {}
                    if ANNOTATION_ENABLED not in annotations:
                        continue
                    try:
                        w = workload_from_annotations(
                            namespace=meta.get("namespace", ""), name=meta.get("name", ""), kind=kind, annotations=annotations
                        )
                    except Exception as exc:  # one object's annotations never stop the discovery of the others
                        problems.append(f"{kind}/{meta.get('namespace')}/{meta.get('name')}: {exc}")
                        continue
                    if w is not None:
                        found.append(w)
                token = (page.get("metadata") or {}).get("continue")
                if not token:
                    break
        return found, problems

    def _record(self, kind: str, status: int | None, started: float) -> None:
        if self._on_call is not None:
            from controller.adapters.kube import ApiCall

            self._on_call(ApiCall("list_workloads", f"{kind}s", status, time.perf_counter() - started))


# ---------------------------------------------------------------------------------------------
# The controller
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ActuationResult:
    applied: bool
    replicas: int


class _WorkloadActuator:
    """The ``ReplicaActuator`` a workload's policy sees: the mode and the safety vetoes live here."""

    def __init__(self, controller: Controller, managed: _Managed) -> None:
        self._controller = controller
        self._managed = managed
        self.current: int | None = None

    async def current_replicas(self, target: WorkloadRef) -> int:
        self.current = await self._controller.kube.current_replicas(target)
        self._managed.last_current = self.current
        return self.current

    async def scale(self, target: WorkloadRef, replicas: int, reason: Reason) -> _ActuationResult:
        m, c = self._managed, self._controller
        current = self.current if self.current is not None else replicas
        if m.mode != "active":
            m.outcome = "recommended"
            return _ActuationResult(False, current)
        if m.load_missing and replicas < current:
            m.outcome = "vetoed: no scale-in without data"
            return _ActuationResult(False, current)
        if not c.may_act():
            m.outcome = "vetoed: not the leader"
            return _ActuationResult(False, current)
        result = await c.kube.scale(target, replicas, reason)
        m.outcome = "scaled" if getattr(result, "applied", False) else "unchanged"
        m.last_current = int(getattr(result, "replicas", current))
        return result


class _WorkloadMetrics:
    """The ``MetricsSource`` a workload's policy sees: applies ``metrics.on_missing``."""

    def __init__(self, controller: Controller, managed: _Managed) -> None:
        self._controller = controller
        self._managed = managed

    async def instant(self, query: str, at: float) -> Sample | None:
        sample = await self._controller.metrics.instant(query, at)
        if sample is not None:
            return sample
        self._managed.load_missing = True
        on_missing = self._controller.settings.metrics.on_missing
        if on_missing == "zero":
            return Sample(0.0, at)
        if on_missing == "fail":
            raise LookupError(f"the load query returned no value (metrics.on_missing: fail): {query}")
        return None

    async def range(self, query: str, start: float, end: float, step_seconds: float) -> Series:
        return await self._controller.metrics.range(query, start, end, step_seconds)


class _WorkloadPods:
    """The ``PodCounter`` a workload's policy sees: skips listing the pods again when none can have become Ready.

    ``recent_startups`` lists the pods a second time in the tick. When no pod was starting
    at the previous tick nor now, and no more pods are Ready than then, no pod can have
    become Ready in between (short of one created, started and another deleted within one
    tick, which only costs the startup estimate one sample), so the list is skipped: a
    third of the loop's requests on a steady cluster.
    """

    def __init__(self, controller: Controller, managed: _Managed) -> None:
        self._controller = controller
        self._previous: tuple[int, int] | None = None
        self._counts: tuple[int, int] | None = None

    async def pod_counts(self, target: WorkloadRef) -> tuple[int, int]:
        self._previous, self._counts = self._counts, await self._controller.kube.pod_counts(target)
        return self._counts

    async def recent_startups(self, target: WorkloadRef, *, since: float) -> list[tuple[float, float]]:
        before, now = self._previous, self._counts
        if before is not None and now is not None and before[1] == 0 and now[1] == 0 and now[0] <= before[0]:
            return []
        return await self._controller.kube.recent_startups(target, since=since)


def _score_due_forecasts(
    m: _Managed, now: float, load: float | None, forecast: Mapping[float, float] | None, lead: float | None
) -> float | None:
    """Remember this tick's median forecast for ``now + lead``; return the error of the latest one due.

    The error is ``|load - forecast| / max(load, forecast)``: 0 when exact, 1 when either is 0
    and the other is not. ``None`` when nothing came due or the load is missing.
    """
    error = None
    if load is not None:
        while m.due_forecasts and m.due_forecasts[0][0] <= now:
            _, predicted = m.due_forecasts.pop(0)
            scale = max(abs(load), abs(predicted))
            error = abs(load - predicted) / scale if scale > 0 else 0.0
    if forecast is not None and lead is not None and 0.5 in forecast:
        m.due_forecasts.append((now + lead, float(forecast[0.5])))
        del m.due_forecasts[:-256]  # bounded: one lead time of ticks is far fewer
    return error


@dataclass
class _Managed:
    """One managed workload and everything the loop remembers about it."""

    ref: WorkloadRef
    label: str
    workload: WorkloadSettings
    mode: str
    policy: Policy | None = None
    keep_seconds: float = 600.0
    event_keep_seconds: float = 600.0
    # lifecycle
    initialized: bool = False
    prime_retry_at: float = -math.inf
    # conflicts
    conflicts: list[str] | None = None
    conflicts_checked_at: float = -math.inf
    # failures
    failures: int = 0
    skip_ticks: int = 0
    holding: bool = False
    last_error: str = ""
    # per tick
    load_missing: bool = False
    outcome: str = ""
    last_current: int | None = None
    # median forecasts waiting for their outcome: (due time, forecast load)
    due_forecasts: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    # state annotation
    state_signature: Any = None
    # what the policy was built from: a reload rebuilds it only when this changes
    built_from: Any = None
    # the policy's last change of quantile already logged and recorded as an event
    rung_change_seen: Any = None


class Controller:
    """The live control loop over all managed workloads.

    Args:
        settings: the settings in use (replaced by valid reloads).
        clock: time source of every sleep and time read.
        metrics: the ``MetricsSource`` (``PrometheusMetricsSource``).
        kube: the ``KubeAdapter`` (actuator, pods, state, events, conflicts); must not be in dry run
            for ``active`` workloads to scale: the mode is applied per workload here.
        telemetry: the metrics registry helpers.
        health: fed at every tick (``/healthz``, ``/readyz``).
        decisions: the ring buffer behind ``/debug/decisions``.
        policy_factory: builds a workload's policy; ``build_predictive_policy`` by default.
        settings_path: the settings file to watch for changes (``None``: no reload).
        settings_poll_seconds: how often the file is read.
        discovery: finds annotated workloads (``None``: the settings' list only).
        discovery_interval_seconds: how often discovery lists the cluster.
        conflict_recheck_seconds: how often a workload's conflicts are checked again.
        self_ref: the controller's own Pod (or Namespace), for Events about the settings.
        may_act: whether this replica may write to the cluster now (leader election).
        stop_grace_seconds: how long ``stop`` lets a running tick finish before cancelling it.
        metrics_factory: builds the ``MetricsSource`` for new ``metrics`` settings; with it a
            reload that changes the Prometheus connection (URL, credentials, TLS, timeout)
            takes effect at the next tick, the old source closed. ``None``: ``metrics`` is kept.
    """

    def __init__(
        self,
        settings: ControllerSettings,
        *,
        clock: Clock,
        metrics: MetricsSource,
        kube: Any,
        telemetry: Telemetry,
        health: Health,
        decisions: DecisionLog,
        policy_factory: PolicyFactory | None = None,
        settings_path: str | os.PathLike[str] | None = None,
        settings_poll_seconds: float = 5.0,
        discovery: AnnotationDiscovery | None = None,
        discovery_interval_seconds: float = 60.0,
        conflict_recheck_seconds: float = 60.0,
        self_ref: WorkloadRef | None = None,
        may_act: Callable[[], bool] = lambda: True,
        stop_grace_seconds: float = 10.0,
        metrics_factory: Callable[[Any], MetricsSource] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.kube = kube
        self.telemetry = telemetry
        self.health = health
        self.decisions = decisions
        self.policy_factory: PolicyFactory = policy_factory or build_predictive_policy
        self.settings_path = Path(settings_path) if settings_path is not None else None
        self.settings_poll_seconds = settings_poll_seconds
        self.discovery = discovery
        self.discovery_interval_seconds = discovery_interval_seconds
        self.conflict_recheck_seconds = conflict_recheck_seconds
        self.self_ref = self_ref
        self.may_act = may_act
        self.stop_grace_seconds = stop_grace_seconds
        self.metrics_factory = metrics_factory
        self._metrics_settings = settings.metrics

        self.workloads: dict[WorkloadRef, _Managed] = {}
        self.ticks = 0
        self._discovered: list[WorkloadSettings] = []
        self._discovered_at = -math.inf
        self._discovery_problems: set[str] = set()
        self._merge_problems: set[str] = set()
        self._discovery_error: str | None = None
        self._settings_changed = True
        self._settings_text: str | None = None
        self._stop = asyncio.Event()
        self._stopped = False
        self._acting = True
        self._tick_task: asyncio.Task | None = None
        if self.settings_path is not None:
            with contextlib.suppress(OSError):
                self._settings_text = self.settings_path.read_text(encoding="utf-8")
        telemetry.set_config_valid(True)
        health.settings_loaded()

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Tick every ``loop.interval_seconds`` (and watch the settings) until ``stop()``.

        The root tasks are the tick loop and the settings watcher; when one ends with an
        error the other is stopped and the error re-raised (kopf's ``run_tasks``).
        """
        self._acting = self.may_act()
        self.telemetry.set_phase("leader" if self._acting else "follower")
        tasks = [asyncio.create_task(self._tick_loop(), name="scaleahead-ticks")]
        if self.settings_path is not None:
            tasks.append(asyncio.create_task(self._watch_settings(), name="scaleahead-settings"))
        stop_waiter = asyncio.create_task(self._stop.wait(), name="scaleahead-stop")
        try:
            done, _ = await asyncio.wait([*tasks, stop_waiter], return_when=asyncio.FIRST_COMPLETED)
            self._stop.set()
            # Let the tick in flight finish (it may be scaling), within the grace period.
            _, pending = await asyncio.wait(tasks, timeout=self.stop_grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    self.health.stop(f"{task.get_name()} failed: {task.exception()}")
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in [*tasks, stop_waiter]:
                task.cancel()
            await asyncio.gather(*tasks, stop_waiter, return_exceptions=True)
            self._stopped = True
            self.health.stop("stopped")
            with contextlib.suppress(ValueError):
                self.telemetry.set_phase("stopping")

    def stop(self) -> None:
        """Ask ``run()`` to end after the tick in flight (graceful)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep on the Clock; return early (True) when ``stop()`` is called."""
        if self._stop.is_set():
            return True
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait([sleeper, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                task.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)
        return self._stop.is_set()

    async def _tick_loop(self) -> None:
        scheduled = self.clock.now()
        while not self._stop.is_set():
            lag = max(0.0, self.clock.now() - scheduled)
            self.health.beat()
            acting = self.may_act()
            if acting != self._acting:
                self._acting = acting
                with contextlib.suppress(ValueError):
                    self.telemetry.set_phase("leader" if acting else "follower")
                if acting:
                    # Another replica may have acted meanwhile: start every workload over from its
                    # state annotation, with a fresh policy (a policy that has run cannot take
                    # another's choice of quantile under its running counterfactuals).
                    for managed in self.workloads.values():
                        if managed.policy is not None:
                            managed.policy = self._build_policy(managed) or managed.policy
                        managed.initialized, managed.conflicts = False, None
                        managed.prime_retry_at = -math.inf
            if acting:  # only the leader ticks
                started = time.perf_counter()
                try:
                    await self.tick()
                except Exception:  # a bug in the loop itself: report it, keep ticking
                    log.exception("tick failed")
                self.telemetry.record_tick(time.perf_counter() - started, lag)
            self.health.tick_completed()
            interval = self.settings.loop.interval_seconds
            scheduled += interval
            now = self.clock.now()
            if scheduled < now:  # late by more than a tick: skip the missed ones
                scheduled = now
            if await self._sleep(scheduled - now):
                return

    # -- settings ---------------------------------------------------------------------------------

    async def _watch_settings(self) -> None:
        while not await self._sleep(self.settings_poll_seconds):
            await self.check_settings()

    async def check_settings(self) -> bool | None:
        """Read the settings file; apply it when it changed and is valid.

        Returns:
            ``True`` when new settings were applied, ``False`` when a change was rejected,
            ``None`` when nothing changed.
        """
        assert self.settings_path is not None
        try:
            text = self.settings_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            text = f"\0unreadable: {exc}"
        if text == self._settings_text:
            return None
        self._settings_text = text
        try:
            if text.startswith("\0unreadable"):
                raise SettingsError([], source=str(self.settings_path))
            new = ControllerSettings.from_yaml(text, source=str(self.settings_path))
        except SettingsError as exc:
            self.telemetry.record_config_reload(valid=False)
            problems = [p.format(str(self.settings_path)) for p in exc.problems] or [text[1:]]
            for problem in problems:
                log.error("invalid settings, keeping the last good ones: %s", problem, extra={"problem": problem})
            message = f"invalid settings in {self.settings_path}, keeping the last good ones: " + "; ".join(problems)
            if self.self_ref is not None:
                await self._event(self.self_ref, EVENT_INVALID_SETTINGS, message, "Warning")
            return False
        if new.loop.interval_seconds != self.settings.loop.interval_seconds and hasattr(self.health, "stall_after_seconds"):
            self.health.stall_after_seconds = 4 * new.loop.interval_seconds + 60  # as `run` sets it
        self.settings = new
        self._settings_changed = True
        self.telemetry.record_config_reload(valid=True)
        log.info("settings reloaded from %s", self.settings_path)
        return True

    # -- the tick ---------------------------------------------------------------------------------

    async def tick(self) -> None:
        """Reconcile every managed workload once, concurrently (bounded); never raises for a workload."""
        now = self.clock.now()
        self.ticks += 1
        await self._reconnect_metrics()
        await self._refresh_workloads(now)
        semaphore = asyncio.Semaphore(self.settings.loop.max_concurrent_workloads)

        async def one(managed: _Managed) -> None:
            async with semaphore:
                await self._reconcile(managed)

        await asyncio.gather(*(one(m) for m in list(self.workloads.values())))

    async def _reconnect_metrics(self) -> None:
        """A new Prometheus connection when a reload changed it; between ticks, so no query is in flight."""
        new = self.settings.metrics
        keys = ("prometheus_url", "bearer_token_file", "ca_file", "insecure_skip_tls_verify", "timeout_seconds")
        if self.metrics_factory is None or all(getattr(new, k) == getattr(self._metrics_settings, k) for k in keys):
            self._metrics_settings = new
            return
        try:
            source = self.metrics_factory(new)
        except Exception as exc:  # a CA file that cannot be read, say: keep the old connection, try again next tick
            log.error("cannot connect to Prometheus with the new settings, keeping the old connection: %s", exc)
            return
        old, self.metrics, self._metrics_settings = self.metrics, source, new
        log.info("Prometheus connection changed: %s", new.prometheus_url)
        close = getattr(old, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()

    async def _refresh_workloads(self, now: float) -> None:
        """Discovery (on its interval) and the settings' list -> ``self.workloads``."""
        discovering = self.discovery is not None and self.settings.loop.discover_annotated_workloads
        if not discovering and self._discovered:
            self._discovered, self._settings_changed = [], True  # turned off: the annotated ones go
        if discovering and (now - self._discovered_at >= self.discovery_interval_seconds or self._settings_changed):
            self._discovered_at = now  # a failure too waits for the next interval
            try:
                found, problems = await self.discovery.discover()
            except Exception as exc:  # keep the last list; say so once per kind of failure
                error = str(exc)
                level = logging.WARNING if error != self._discovery_error else logging.DEBUG
                log.log(level, "discovery of annotated workloads failed, keeping the last list: %s", error)
                self._discovery_error = error
            else:
                self._discovery_error = None
                self._discovered = found
                for problem in set(problems) - self._discovery_problems:
                    log.warning("ignoring an annotated workload: %s", problem)
                self._discovery_problems = set(problems)
                self._settings_changed = True
        if not self._settings_changed:
            return
        self._settings_changed = False
        settings = self.settings
        wanted: dict[WorkloadRef, WorkloadSettings] = {}
        merge_problems: set[str] = set()
        for w in self._discovered:
            ref = settings.workload_ref(w)
            try:
                settings.effective_replicas(w)
                settings.effective_forecast(w)
            except SettingsError as exc:
                merge_problems.add(f"{ref}: {_annotation_problems(exc, ref)}")
                continue
            wanted[ref] = w
        for problem in merge_problems - self._merge_problems:  # once, not at every discovery
            log.warning("ignoring an annotated workload: %s", problem)
        self._merge_problems = merge_problems
        for w in settings.workloads:  # the settings win over annotations
            wanted[settings.workload_ref(w)] = w

        for ref in list(self.workloads):
            if ref not in wanted:
                managed = self.workloads.pop(ref)
                self.telemetry.forget_workload(managed.label)
                self.decisions.forget(managed.label)
                log.info("no longer managing %s", managed.label)
        shared = settings.model_dump_json(exclude={"workloads"})
        for ref, w in wanted.items():
            managed = self.workloads.get(ref)
            mode = settings.effective_mode(w)
            if managed is None:
                managed = _Managed(ref=ref, label=str(ref), workload=w, mode=mode)
                self.workloads[ref] = managed
                log.info("managing %s in %s mode", managed.label, mode, extra={"workload": managed.label, "mode": mode})
            # The effective forecast too: `lean_quantile: null` written in an override and left
            # out compare equal as models (pydantic ignores which keys were set), not as settings.
            built_from = (w, settings.effective_forecast(w), shared)
            if managed.policy is not None and managed.built_from == built_from:
                continue
            old_policy, old_workload = managed.policy, managed.workload
            managed.workload, managed.mode = w, mode
            policy = self._build_policy(managed)
            if policy is None and old_policy is not None:
                # keep deciding with the last tuning that built (settings are validated, so this is
                # a bug or a resource limit); the next settings change tries again
                managed.workload = old_workload
                log.error("%s: keeping its policy of the last settings", managed.label, extra={"workload": managed.label})
                continue
            managed.policy = policy
            managed.built_from = built_from
            managed.prime_retry_at = -math.inf
            if old_policy is None:
                managed.initialized = False  # nothing to carry over: read the state annotation
            elif policy is not None:
                # new tuning, same memory: keep the planner state and the startup estimate
                policy.state = old_policy.state
                if isinstance(old_policy, PredictivePolicy) and isinstance(policy, PredictivePolicy):
                    memory = old_policy.reference_memory()
                    if memory is not None:
                        policy.restore_reference(memory)  # only when the ladder is unchanged
                    policy.restore_startup(old_policy.startup.samples, since=old_policy.startup_since)
                log.info("%s: settings changed; policy rebuilt", managed.label, extra={"workload": managed.label})
            self.telemetry.register_workload(managed.label, mode=mode)

    def _build_policy(self, managed: _Managed) -> Policy | None:
        ports = PolicyPorts(
            clock=self.clock,
            metrics=_WorkloadMetrics(self, managed),
            pods=_WorkloadPods(self, managed),
            actuator=_WorkloadActuator(self, managed),
        )
        try:
            policy = self.policy_factory(self.settings, managed.workload, ports)
        except Exception as exc:
            managed.last_error = f"cannot build its policy: {exc}"
            log.error("%s: cannot build its policy: %s", managed.label, exc)
            return None
        if isinstance(policy, LivePredictivePolicy):
            policy.on_refit = self.telemetry.record_model_refit
        params = getattr(policy, "_params", None)
        behavior = getattr(params, "behavior", None)
        if behavior is not None:
            managed.keep_seconds = float(max(behavior.scale_up.stabilization_window_seconds,
                                             behavior.scale_down.stabilization_window_seconds, 1))  # fmt: skip
            periods = [p.period_seconds for p in (*behavior.scale_up.policies, *behavior.scale_down.policies)]
            managed.event_keep_seconds = float(max(periods, default=60))
        return policy

    async def _reconcile(self, m: _Managed) -> None:
        """One workload, one tick: every failure is caught, counted and reported here."""
        if m.policy is None:
            return
        now = self.clock.now()
        try:
            if not m.initialized:
                await self._initialize(m, now)
            if now - m.conflicts_checked_at >= self.conflict_recheck_seconds or m.conflicts is None:
                await self._check_conflicts(m, now)
            if m.conflicts:
                return
            if m.skip_ticks > 0:
                m.skip_ticks -= 1
                return
            if now >= m.prime_retry_at:
                await self._prime(m, now)
            m.load_missing, m.outcome = False, ""
            if isinstance(m.policy, PredictivePolicy):
                m.policy.acting = m.mode == "active"
            decision = await m.policy.reconcile(m.ref)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._failed(m, now, exc)
            return
        await self._succeeded(m, now, decision)

    async def _initialize(self, m: _Managed, now: float) -> None:
        """Restore the planner state from the target's annotation (once)."""
        text = await self.kube.read_state(m.ref)
        decoded = statecodec.decode(text)
        if decoded.warning:
            log.warning("%s: %s", m.label, decoded.warning, extra={"workload": m.label})
        state = decoded.state
        if state.recommendations:
            current = await self.kube.current_replicas(m.ref)
            # The annotation may lag the last recommendations (see the module docstring):
            # hold the current count through one window, as a new HPA does.
            state = dataclasses.replace(state, recommendations=(*state.recommendations, Recommendation(current, now)))
            log.info("%s: planner state restored from its annotation", m.label, extra={"workload": m.label})
        assert m.policy is not None
        m.policy.state = state
        if decoded.reference is not None and isinstance(m.policy, PredictivePolicy):
            problem = m.policy.restore_reference(decoded.reference)
            if problem is None:
                log.info("%s: the choice of quantile restored from its annotation (q=%g)", m.label, m.policy.quantile,
                         extra={"workload": m.label})  # fmt: skip
            else:
                log.info("%s: the stored choice of quantile does not apply (%s); it starts over", m.label, problem,
                         extra={"workload": m.label})  # fmt: skip
        if decoded.startup_samples and isinstance(m.policy, PredictivePolicy):
            # The pods Ready before now are in the samples already, or were missed while no
            # replica ran: only later ones are new.
            m.policy.restore_startup(decoded.startup_samples, since=now)
        m.state_signature = self._signature(m, self._reference_memory(m))
        m.initialized = True

    async def _prime(self, m: _Managed, now: float) -> None:
        """Fit the model from ``forecast.history_days`` of history (once; retried on failure)."""
        policy = m.policy
        if not isinstance(policy, LivePredictivePolicy):
            m.prime_retry_at = math.inf
            return
        step = policy.model_step_seconds
        # The policy's own history, not the settings': a reload in the middle of this tick may have
        # made this workload's merge invalid (an annotated ladder), which the next refresh reports.
        start = now - policy.history_seconds
        try:
            series = await self.metrics.range(policy._query, start, now, step)
        except Exception as exc:
            m.prime_retry_at = now + 10 * self.settings.loop.interval_seconds
            log.warning("%s: no history from Prometheus yet (%s); the model learns from the ticks", m.label, exc,
                        extra={"workload": m.label})  # fmt: skip
            return
        try:
            steps = await policy.prime(series.timestamps, series.values)
        except Exception:
            m.prime_retry_at = now + 10 * self.settings.loop.interval_seconds  # counted as the tick's failure
            raise
        m.prime_retry_at = math.inf
        log.info("%s: model primed with %d steps of history", m.label, steps, extra={"workload": m.label})

    async def _check_conflicts(self, m: _Managed, now: float) -> None:
        found = await self.kube.find_conflicts(m.ref)
        m.conflicts_checked_at = now
        before = m.conflicts
        m.conflicts = found
        self.telemetry.set_conflict(m.label, bool(found))
        if found and found != before:
            message = f"not scaling {m.ref.kind} {m.ref.namespace}/{m.ref.name}: already scaled by {', '.join(found)}"
            log.warning("%s: %s", m.label, message, extra={"workload": m.label, "conflicts": found})
            await self._event(m.ref, EVENT_CONFLICT, message, "Warning")
        elif not found and before:
            log.info("%s: conflict resolved; scaling it again", m.label, extra={"workload": m.label})

    async def _failed(self, m: _Managed, now: float, exc: BaseException) -> None:
        m.failures += 1
        m.skip_ticks = _SKIP_TICKS[min(m.failures, len(_SKIP_TICKS)) - 1]
        m.last_error = f"{type(exc).__name__}: {exc}"
        threshold = self.settings.loop.failure_threshold
        if m.failures < threshold:
            log.warning("%s: reconcile failed (%d in a row): %s", m.label, m.failures, m.last_error,
                        extra={"workload": m.label, "failures": m.failures})  # fmt: skip
            return
        current = m.last_current if m.last_current is not None else 0
        holding = f"{current} replicas" if m.last_current is not None else "the current replicas (not read yet)"
        message = f"holding {holding} after {m.failures} failed reconciles in a row; last: {m.last_error}"
        decision = Decision("no-op", m.ref.name, current, current, Reason.MetricsUnavailable, message)
        self.decisions.add(m.label, now, decision)
        self.telemetry.record_decision(m.label, decision)
        log_decision(log, m.label, decision, level=logging.WARNING, mode=m.mode, outcome="holding", failures=m.failures)
        if not m.holding:
            m.holding = True
            await self._event(m.ref, EVENT_HOLDING, message, "Warning")

    async def _succeeded(self, m: _Managed, now: float, decision: Decision) -> None:
        if m.holding:
            log.info("%s: reconciles succeed again after %d failures", m.label, m.failures, extra={"workload": m.label})
            await self._event(m.ref, EVENT_RESUMED, f"reconciling again after {m.failures} failures", "Normal")
        m.failures, m.skip_ticks, m.holding = 0, 0, False
        policy = m.policy
        forecast = model_forecast = lead = startup = load = quantile = above = against = change = None
        if isinstance(policy, LivePredictivePolicy):
            lead = policy.lead_seconds
            startup = policy.startup.seconds
            quantile = policy.quantile
            above = policy.interval_above
            model_forecast = policy.forecast_at(now + lead, shown=False)
            if model_forecast is not None:  # as ``forecast_at`` shows it, without reading the quantiles twice
                forecast = {q: policies.shown_load(v) for q, v in model_forecast.items()}
            load = policy.last_load
            against, change = policy.against_hpa, policy.rung_change
        # the error is the model's own, not the display's (a median below 0 is an error, not an idle forecast)
        forecast_error = _score_due_forecasts(m, now, load, model_forecast, lead)
        self.telemetry.record_decision(
            m.label, decision, forecast=forecast, lead_seconds=lead, startup_seconds=startup, load=load,
            forecast_error=forecast_error, provisioning_quantile=quantile, interval_above=above,
        )  # fmt: skip
        self.telemetry.record_against_hpa(m.label, against)
        if change is not None and change is not m.rung_change_seen:  # once a day at most
            m.rung_change_seen = change
            log.info("%s: %s", m.label, change.message, extra={"workload": m.label})
            await self._event(m.ref, EVENT_QUANTILE, change.message, "Normal")
        self.decisions.add(m.label, now, decision)
        outcome = m.outcome or ("scaled" if decision.kind == "scale" else "unchanged")
        log_decision(log, m.label, decision, mode=m.mode, outcome=outcome, load=load)
        if m.mode == "active" and self.may_act():
            await self._persist_state(m, now)

    @staticmethod
    def _reference_memory(m: _Managed) -> ReferenceMemory | None:
        return m.policy.reference_memory() if isinstance(m.policy, PredictivePolicy) else None

    def _signature(self, m: _Managed, memory: ReferenceMemory | None) -> Any:
        """What a restart needs, without the times that move every tick (see the module docstring).

        ``memory`` is ``_reference_memory(m)``, which the caller may need as well.
        """
        policy = m.policy
        state = policy.state if policy is not None else None
        if state is None:
            return None
        startup = getattr(policy, "startup", None)
        samples = getattr(startup, "samples", ())
        return (
            frozenset(r.replicas for r in state.recommendations),
            state.scale_up_events,
            state.scale_down_events,
            # the count stops at the cap (64 samples); the estimate goes on changing
            (len(samples), getattr(startup, "seconds", None)),
            None if memory is None else (memory.rung, len(memory.days), memory.period_end),
        )

    async def _persist_state(self, m: _Managed, now: float) -> None:
        memory = self._reference_memory(m)
        signature = self._signature(m, memory)
        if signature == m.state_signature:
            return
        policy = m.policy
        assert policy is not None
        samples = getattr(getattr(policy, "startup", None), "samples", ())
        text = statecodec.encode(
            policy.state, now=now, keep_seconds=m.keep_seconds, event_keep_seconds=m.event_keep_seconds,
            startup_samples=samples, reference=memory, include_written_at=True,
        )  # fmt: skip
        try:
            await self.kube.write_state(m.ref, text)
        except Exception as exc:  # the decision stands; the next change tries again
            log.warning("%s: could not write its state annotation: %s", m.label, exc, extra={"workload": m.label})
            return
        m.state_signature = signature

    async def _event(self, ref: WorkloadRef, reason: str, message: str, type_: str) -> None:
        try:
            await self.kube.emit_event(ref, reason, message, type_)
        except Exception as exc:
            log.warning("could not record event %s on %s: %s", reason, ref, exc)

    # -- introspection for tests and the demo ----------------------------------------------------------

    def managed(self) -> dict[str, Mapping[str, Any]]:
        """A summary per workload label: mode, failures, holding, conflicts."""
        return {
            m.label: {"mode": m.mode, "failures": m.failures, "holding": m.holding, "conflicts": list(m.conflicts or [])}
            for m in self.workloads.values()
        }
