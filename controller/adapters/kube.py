"""The Kubernetes adapter: the ``ReplicaActuator`` and ``PodCounter`` ports on ``kubernetes_asyncio``.

It reads and writes what a well-behaved controller touches, and nothing more:

- **Replicas** through the ``scale`` subresource of the target: Deployments, StatefulSets
  and ReplicaSets through ``AppsV1Api``, any other kind with a scale subresource (an Argo
  Rollout, ...) through ``CustomObjectsApi``, its plural derived from the kind unless
  configured. The current count is read first and nothing is sent when it already is the
  desired one. The write is ``{"spec": {"replicas": n}}`` as an
  ``application/merge-patch+json`` PATCH: the one patch type every kind with a scale
  subresource accepts (custom resources refuse strategic merge, and ``kubernetes_asyncio``
  would label a dict body for ``CustomObjectsApi`` as a JSON patch, which servers reject).
  The patch carries no ``resourceVersion``: the count written is the planner's absolute
  decision, and a 409 re-reads and compares again before writing.
- **Pods** by the selector the scale subresource reports (``status.selector``), listed as
  raw JSON in pages (deserialising thousands of typed ``V1Pod`` per tick costs more than
  the rest of a tick). Selectors are cached per target: they are immutable for the apps/v1
  kinds and every scale read refreshes them.
- **State** in one annotation on the target (``scaleahead.io/state``), written by a merge
  PATCH of that annotation only, and only when it changed.
- **Events** (core/v1) on the target for each scale and on request.
- **Conflicts**: HPAs (autoscaling/v2) and KEDA ScaledObjects whose ``scaleTargetRef`` is
  the target; a cluster without KEDA's CRD simply has none.

Errors: 404 is ``TargetNotFound``; 409 re-reads and retries a few times, as client-go's
``retry.RetryOnConflict`` with ``retry.DefaultRetry`` does (5 steps of 10 ms); 429, 5xx and
transport errors back off exponentially with jitter, honouring ``Retry-After``, for a
bounded number of attempts, then ``RetriesExhausted``. Every sleep goes through the
injected ``Clock``. Every request is reported to an optional ``on_call`` callback.

Dry run (the ``recommend`` mode): ``scale`` and ``write_state`` send no write and report
what they would have done; reads and explicitly requested events still go out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client import rest

from controller.domain import Reason, WorkloadRef
from controller.ports import Clock

log = logging.getLogger(__name__)

T = TypeVar("T")

STATE_ANNOTATION = "scaleahead.io/state"
MERGE_PATCH = "application/merge-patch+json"

# apps/v1 kinds with a scale subresource -> the name AppsV1Api's methods use for them
_APPS_KINDS = {"Deployment": "deployment", "StatefulSet": "stateful_set", "ReplicaSet": "replica_set"}
# statuses worth another try after a pause: throttling and server-side trouble
_RETRYABLE = frozenset({429, 500, 502, 503, 504})


# ---------------------------------------------------------------------------------------------
# Errors and results
# ---------------------------------------------------------------------------------------------


class KubeApiError(Exception):
    """A Kubernetes API request failed.

    Attributes:
        operation: what the adapter was doing (``read_scale``, ``patch_scale``, ...).
        target: the workload (``Kind/namespace/name``), or a namespace for listings.
        status: the HTTP status of the last answer, 0 for a transport error.
    """

    def __init__(self, message: str, *, operation: str, target: str, status: int) -> None:
        super().__init__(message)
        self.operation = operation
        self.target = target
        self.status = status


class TargetNotFound(KubeApiError):
    """The target (or its kind) does not exist: 404."""


class Conflict(KubeApiError):
    """A 409 the adapter did not retry (it retries those of scale and state writes)."""


class RetriesExhausted(KubeApiError):
    """Every attempt failed (409 for writes; 429, 5xx or transport errors for any request)."""

    def __init__(self, message: str, *, operation: str, target: str, status: int, attempts: int) -> None:
        super().__init__(message, operation=operation, target=target, status=status)
        self.attempts = attempts


class SelectorUnavailable(KubeApiError):
    """The target's scale subresource reports no ``status.selector``, so its pods cannot be found."""


@dataclass(frozen=True, slots=True)
class ScaleResult:
    """What ``scale`` did (an ``ActuationResult``).

    Attributes:
        applied: the count was written.
        replicas: ``spec.replicas`` after the call (unchanged in dry run).
        from_replicas: ``spec.replicas`` read before.
        dry_run: the write was skipped because the adapter is in dry run.
    """

    applied: bool
    replicas: int
    from_replicas: int
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One request to the API server, for telemetry.

    Attributes:
        operation: the adapter's name for it (``read_scale``, ``list_pods``, ...).
        target: the workload or namespace it concerned.
        status: HTTP status of an error, 0 for a transport error, None for success.
        duration_seconds: wall-clock latency (``time.perf_counter``, not the injected clock).
    """

    operation: str
    target: str
    status: int | None
    duration_seconds: float

    @property
    def error(self) -> bool:
        return self.status is not None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds and pacing of retries.

    Attributes:
        max_attempts: tries per request on 429, 5xx and transport errors (first one included).
        base_delay_seconds: first backoff; doubles per attempt.
        max_delay_seconds: cap of one backoff.
        jitter_ratio: a backoff is stretched by up to this fraction, at random.
        max_retry_after_seconds: cap on a server's ``Retry-After``.
        conflict_attempts: tries of a read-compare-write on 409 (client-go's ``DefaultRetry``: 5).
        conflict_delay_seconds: pause between them (client-go: 10 ms, jitter 0.1).
    """

    max_attempts: int = 5
    base_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0
    jitter_ratio: float = 0.2
    max_retry_after_seconds: float = 60.0
    conflict_attempts: int = 5
    conflict_delay_seconds: float = 0.01

    def backoff_seconds(self, attempt: int, rand: float) -> float:
        """Delay after failed attempt ``attempt`` (1-based); ``rand`` in [0, 1)."""
        delay = min(self.max_delay_seconds, self.base_delay_seconds * 2 ** (attempt - 1))
        return delay * (1.0 + self.jitter_ratio * rand)


class _WallClock:
    """Unix time and real sleeps, for callers that inject no clock.

    TODO(#5): use ``controller.clock.SystemClock`` once that module exists.
    """

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class _Scale:
    """The fields of a Scale the adapter uses, from a typed ``V1Scale`` or a custom object's dict."""

    replicas: int
    status_replicas: int
    selector: str
    uid: str | None


@dataclass(frozen=True, slots=True)
class _Endpoints:
    """The four calls the adapter makes on one target, bound to its kind."""

    read_scale: Callable[[], Awaitable[Any]]
    patch_scale: Callable[[dict[str, Any]], Awaitable[Any]]
    read_object: Callable[[], Awaitable[Any]]
    patch_object: Callable[[dict[str, Any]], Awaitable[Any]]


def default_plural(kind: str) -> str:
    """The resource name ``kubectl`` would guess for a kind: lower case, English plural."""
    lower = kind.lower()
    if lower.endswith(("s", "x", "z", "ch", "sh")):
        return lower + "es"
    if lower.endswith("y") and len(lower) > 1 and lower[-2] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"


def _split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _parse_time(value: Any) -> float | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _ready_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond
    return None


# ---------------------------------------------------------------------------------------------
# The adapter
# ---------------------------------------------------------------------------------------------


class KubeAdapter:
    """``ReplicaActuator`` and ``PodCounter`` (and state, events, conflicts) for one cluster.

    Args:
        api_client: a ``kubernetes_asyncio`` client for the cluster (made by the caller from
            the in-cluster config or a kubeconfig); the caller closes it.
        clock: time source for event timestamps and startup windows, and every retry sleep.
        dry_run: send no write that changes a target (recommend mode).
        retry: retry bounds and pacing.
        on_call: called after every request with its outcome and latency.
        plurals: resource names of custom kinds, by ``(api_version, kind)``, where the
            default guess (``default_plural``) is wrong.
        component: the event source and reporting component.
        instance: the reporting instance (the pod name of this controller replica).
        request_timeout_seconds: total timeout of one request.
        page_size: pods listed per request.
        rng: random source of the backoff jitter.
    """

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        clock: Clock | None = None,
        dry_run: bool = False,
        retry: RetryPolicy = RetryPolicy(),
        on_call: Callable[[ApiCall], None] | None = None,
        plurals: Mapping[tuple[str, str], str] | None = None,
        component: str = "scaleahead",
        instance: str = "",
        request_timeout_seconds: float = 10.0,
        page_size: int = 500,
        rng: random.Random | None = None,
    ) -> None:
        self._apps = k8s.AppsV1Api(api_client)
        self._core = k8s.CoreV1Api(api_client)
        self._custom = k8s.CustomObjectsApi(api_client)
        self._autoscaling = k8s.AutoscalingV2Api(api_client)
        self._clock: Clock = clock or _WallClock()
        self.dry_run = dry_run
        self._retry = retry
        self._on_call = on_call
        self._plurals = dict(plurals or {})
        self._component = component
        self._instance = instance
        self._timeout = request_timeout_seconds
        self._page_size = page_size
        self._rng = rng or random.Random()
        # per target: the last selector and uid its scale subresource showed, the last state seen
        self._selectors: dict[WorkloadRef, str] = {}
        #: per target, the pods seen Ready (their uid): each is a startup sample once at most
        self._seen_ready: dict[WorkloadRef, set[str]] = {}
        self._uids: dict[WorkloadRef, str] = {}
        self._states: dict[WorkloadRef, str | None] = {}

    # -- ReplicaActuator ------------------------------------------------------------------------

    async def current_replicas(self, target: WorkloadRef) -> int:
        """Return ``spec.replicas`` of the target's scale subresource.

        Raises:
            TargetNotFound: no such target.
            RetriesExhausted: the API kept failing.
        """
        return (await self._read_scale(target)).replicas

    async def scale(self, target: WorkloadRef, replicas: int, reason: Reason) -> ScaleResult:
        """Set ``spec.replicas`` of ``target`` to ``replicas`` unless it already is; record an Event.

        Reads the scale subresource, compares, and PATCHes ``spec.replicas`` only when it
        differs. A 409 re-reads and compares again (bounded). In dry run nothing is written.

        Args:
            target: the workload.
            replicas: the desired count, >= 0.
            reason: why; becomes the Event's reason.

        Returns:
            What was done (an ``ActuationResult``).

        Raises:
            ValueError: ``replicas`` is negative.
            TargetNotFound: no such target.
            RetriesExhausted: 409 on every attempt, or the API kept failing.
        """
        if replicas < 0:
            raise ValueError(f"replicas must be >= 0, got {replicas}")
        endpoints = self._endpoints(target)

        async def attempt() -> ScaleResult:
            current = await self._read_scale(target)
            if current.replicas == replicas:
                return ScaleResult(False, replicas, current.replicas)
            if self.dry_run:
                return ScaleResult(False, current.replicas, current.replicas, dry_run=True)
            body = {"spec": {"replicas": replicas}}
            await self._request("patch_scale", str(target), lambda: endpoints.patch_scale(body))
            return ScaleResult(True, replicas, current.replicas)

        result = await self._retry_conflicts("scale", target, attempt)
        if result.applied:
            log.info("scaled %s from %d to %d: %s", target, result.from_replicas, replicas, reason)
            try:
                await self.emit_event(target, str(reason), f"Scaled from {result.from_replicas} to {replicas} replicas ({reason})")
            except KubeApiError as exc:
                # the scale happened; a lost event must not turn it into a failure
                log.warning("could not record the scale event of %s: %s", target, exc)
        return result

    # -- PodCounter -----------------------------------------------------------------------------

    async def pod_counts(self, target: WorkloadRef) -> tuple[int, int]:
        """Return ``(ready, starting)`` pods of the target.

        Ready: the ``Ready`` condition is ``True``. Starting: any other pod that is neither
        terminating (``deletionTimestamp`` set) nor finished (``Succeeded``/``Failed``).

        Raises:
            TargetNotFound: no such target.
            SelectorUnavailable: its scale subresource shows no selector.
            RetriesExhausted: the API kept failing.
        """
        ready = starting = 0
        for pod in await self._pods(target):
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                continue
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            cond = _ready_condition(pod)
            if cond is not None and cond.get("status") == "True":
                ready += 1
            else:
                starting += 1
        return ready, starting

    async def pod_startup_seconds(self, target: WorkloadRef, *, window_seconds: float = 3600.0) -> list[float]:
        """Creation-to-Ready durations of the target's pods that became Ready recently.

        From each Ready pod's ``creationTimestamp`` and the ``lastTransitionTime`` of its
        ``Ready`` condition (both whole seconds on the wire). A pod that went unready and
        ready again counts from its creation to the last transition, an overestimate.

        Args:
            target: the workload.
            window_seconds: only pods Ready since ``now - window_seconds`` (injected clock).

        Returns:
            Durations in seconds, in the order the pods became Ready.
        """
        since = self._clock.now() - window_seconds
        samples: list[tuple[float, float]] = []
        for pod in await self._pods(target):
            cond = _ready_condition(pod)
            if cond is None or cond.get("status") != "True":
                continue
            created = _parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
            ready_at = _parse_time(cond.get("lastTransitionTime"))
            if created is None or ready_at is None or ready_at < since:
                continue
            samples.append((ready_at, max(0.0, ready_at - created)))
        return [duration for _, duration in sorted(samples)]

    async def recent_startups(self, target: WorkloadRef, *, since: float) -> list[tuple[float, float]]:
        """``(ready_at, startup_seconds)`` of the target's pods that became Ready after ``since``.

        The ``PodCounter`` port's contract. From each Ready pod's ``creationTimestamp`` and
        the ``lastTransitionTime`` of its ``Ready`` condition (whole seconds on the wire).
        Each pod counts once at most, the first time this adapter sees it Ready: a later
        Ready transition (after a readiness probe failed, or a container restarted) is not
        a startup. A pod that did so before it was first seen counts from its creation to
        that transition, an overestimate that the estimate's median absorbs unless most
        pods did.

        Args:
            target: the workload.
            since: Unix seconds; only pods whose Ready transition is strictly later count.

        Returns:
            The pairs, ordered by ``ready_at``.

        Raises:
            TargetNotFound: no such target.
            SelectorUnavailable: its scale subresource shows no selector.
            RetriesExhausted: the API kept failing.
        """
        samples: list[tuple[float, float]] = []
        seen = self._seen_ready.setdefault(target, set())
        listed: set[str] = set()
        for pod in await self._pods(target):
            meta = pod.get("metadata") or {}
            uid = str(meta.get("uid") or meta.get("name"))
            listed.add(uid)
            cond = _ready_condition(pod)
            if cond is None or cond.get("status") != "True" or uid in seen:
                continue
            # A pod is sampled the first time it is seen Ready, never again: a pod that went
            # unready and Ready again (a failing dependency, a restarted container) would
            # otherwise report its age as a startup.
            seen.add(uid)
            created = _parse_time(meta.get("creationTimestamp"))
            ready_at = _parse_time(cond.get("lastTransitionTime"))
            if created is None or ready_at is None or not ready_at > since:
                continue
            samples.append((ready_at, max(0.0, ready_at - created)))
        seen &= listed  # forget deleted pods
        return sorted(samples)

    # -- state, events, conflicts ---------------------------------------------------------------

    async def read_state(self, target: WorkloadRef) -> str | None:
        """Return the planner state stored on the target (the ``scaleahead.io/state`` annotation), or None.

        Raises:
            TargetNotFound: no such target.
            RetriesExhausted: the API kept failing.
        """
        endpoints = self._endpoints(target)
        obj = await self._request("read_object", str(target), endpoints.read_object)
        if isinstance(obj, dict):
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
        else:
            annotations = obj.metadata.annotations or {}
        state = annotations.get(STATE_ANNOTATION)
        self._states[target] = state
        return state

    async def write_state(self, target: WorkloadRef, state_json: str) -> bool:
        """Store ``state_json`` in the target's ``scaleahead.io/state`` annotation.

        A merge PATCH of that one annotation; nothing is sent when it equals the value last
        read or written, or in dry run.

        Returns:
            Whether a PATCH was sent.

        Raises:
            TargetNotFound: no such target.
            KubeApiError: the server refused it (e.g. annotations over 256 KiB: 422).
            RetriesExhausted: 409 on every attempt, or the API kept failing.
        """
        if target in self._states and self._states[target] == state_json:
            return False
        if self.dry_run:
            return False
        endpoints = self._endpoints(target)
        body = {"metadata": {"annotations": {STATE_ANNOTATION: state_json}}}

        async def attempt() -> None:
            await self._request("patch_state", str(target), lambda: endpoints.patch_object(body))

        await self._retry_conflicts("write_state", target, attempt)
        self._states[target] = state_json
        return True

    async def emit_event(self, target: WorkloadRef, reason: str, message: str, type: str = "Normal") -> None:  # noqa: A002
        """Record a core/v1 Event on the target.

        The name is generated by the server (``generateName: <target>.``), so an event
        retried after a 5xx that the server had in fact committed may appear twice; events
        are not aggregated (no ``count`` increments, unlike client-go's correlator).

        Args:
            target: the involved object.
            reason: CamelCase reason (a ``Reason`` value, or e.g. ``ConflictingAutoscaler``).
            message: human-readable; cut to 1024 characters.
            type: ``Normal`` or ``Warning``.

        Raises:
            KubeApiError: the server refused it, or kept failing.
        """
        at = datetime.fromtimestamp(self._clock.now(), timezone.utc)
        event = k8s.CoreV1Event(
            metadata=k8s.V1ObjectMeta(generate_name=f"{target.name}.", namespace=target.namespace),
            involved_object=k8s.V1ObjectReference(
                api_version=target.api_version,
                kind=target.kind,
                name=target.name,
                namespace=target.namespace,
                uid=self._uids.get(target),
            ),
            reason=reason,
            message=message[:1024],
            type=type,
            source=k8s.V1EventSource(component=self._component),
            reporting_component=self._component,
            reporting_instance=self._instance or None,
            first_timestamp=at,
            last_timestamp=at,
            count=1,
        )
        await self._request(
            "create_event",
            str(target),
            lambda: self._core.create_namespaced_event(target.namespace, event, _request_timeout=self._timeout),
        )

    async def find_conflicts(self, target: WorkloadRef) -> list[str]:
        """Describe the HPAs and KEDA ScaledObjects whose ``scaleTargetRef`` is ``target``.

        A non-empty answer means another autoscaler drives the target and scaleahead must not.
        A cluster without KEDA (no ``scaledobjects`` resource) has no ScaledObjects.

        Returns:
            ``"HorizontalPodAutoscaler <namespace>/<name>"`` and
            ``"ScaledObject <namespace>/<name>"`` entries, sorted.

        Raises:
            RetriesExhausted: the API kept failing.
        """
        ns = target.namespace
        group = _split_api_version(target.api_version)[0]
        found = []
        hpas = await self._request(
            "list_hpas",
            ns,
            lambda: self._autoscaling.list_namespaced_horizontal_pod_autoscaler(ns, _request_timeout=self._timeout),
        )
        for hpa in hpas.items:
            ref = hpa.spec.scale_target_ref
            ref_group = _split_api_version(ref.api_version or "")[0]
            if ref.kind == target.kind and ref.name == target.name and (not ref.api_version or ref_group == group):
                found.append(f"HorizontalPodAutoscaler {ns}/{hpa.metadata.name}")
        scaled_objects = await self._request(
            "list_scaledobjects",
            ns,
            lambda: self._custom.list_namespaced_custom_object(
                "keda.sh", "v1alpha1", ns, "scaledobjects", _request_timeout=self._timeout
            ),
            missing={"items": []},
        )
        for obj in scaled_objects.get("items") or []:
            ref = (obj.get("spec") or {}).get("scaleTargetRef") or {}
            # KEDA's defaults for an omitted kind and apiVersion
            ref_kind = ref.get("kind") or "Deployment"
            ref_group = _split_api_version(ref.get("apiVersion") or "apps/v1")[0]
            if ref_kind == target.kind and ref.get("name") == target.name and ref_group == group:
                found.append(f"ScaledObject {ns}/{obj['metadata']['name']}")
        return sorted(found)

    # -- plumbing -------------------------------------------------------------------------------

    def _endpoints(self, target: WorkloadRef) -> _Endpoints:
        group, version = _split_api_version(target.api_version)
        ns, name, timeout = target.namespace, target.name, self._timeout
        if group == "apps" and target.kind in _APPS_KINDS:
            suffix = _APPS_KINDS[target.kind]
            read_scale = getattr(self._apps, f"read_namespaced_{suffix}_scale")
            patch_scale = getattr(self._apps, f"patch_namespaced_{suffix}_scale")
            read_object = getattr(self._apps, f"read_namespaced_{suffix}")
            patch_object = getattr(self._apps, f"patch_namespaced_{suffix}")
            return _Endpoints(
                read_scale=lambda: read_scale(name, ns, _request_timeout=timeout),
                patch_scale=lambda body: patch_scale(name, ns, body, _content_type=MERGE_PATCH, _request_timeout=timeout),
                read_object=lambda: read_object(name, ns, _request_timeout=timeout),
                patch_object=lambda body: patch_object(name, ns, body, _content_type=MERGE_PATCH, _request_timeout=timeout),
            )
        if not group:
            raise ValueError(f"{target}: core-group kinds have no supported scale subresource")
        plural = self._plurals.get((target.api_version, target.kind)) or default_plural(target.kind)
        custom = self._custom
        return _Endpoints(
            read_scale=lambda: custom.get_namespaced_custom_object_scale(group, version, ns, plural, name, _request_timeout=timeout),
            patch_scale=lambda body: custom.patch_namespaced_custom_object_scale(
                group, version, ns, plural, name, body, _content_type=MERGE_PATCH, _request_timeout=timeout
            ),
            read_object=lambda: custom.get_namespaced_custom_object(group, version, ns, plural, name, _request_timeout=timeout),
            patch_object=lambda body: custom.patch_namespaced_custom_object(
                group, version, ns, plural, name, body, _content_type=MERGE_PATCH, _request_timeout=timeout
            ),
        )

    async def _read_scale(self, target: WorkloadRef) -> _Scale:
        try:
            raw = await self._request("read_scale", str(target), self._endpoints(target).read_scale)
        except TargetNotFound:
            # a target created again under the same name may select other pods
            self._selectors.pop(target, None)
            self._uids.pop(target, None)
            self._states.pop(target, None)
            raise
        if isinstance(raw, dict):
            spec, status, meta = raw.get("spec") or {}, raw.get("status") or {}, raw.get("metadata") or {}
            scale = _Scale(
                int(spec.get("replicas") or 0), int(status.get("replicas") or 0), status.get("selector") or "", meta.get("uid")
            )
        else:
            scale = _Scale(
                raw.spec.replicas or 0 if raw.spec else 0,
                raw.status.replicas or 0 if raw.status else 0,
                (raw.status.selector or "") if raw.status else "",
                raw.metadata.uid if raw.metadata else None,
            )
        if scale.selector:
            self._selectors[target] = scale.selector
        if scale.uid:
            self._uids[target] = scale.uid
        return scale

    async def _pods(self, target: WorkloadRef) -> list[dict[str, Any]]:
        selector = self._selectors.get(target)
        if selector is None:
            selector = (await self._read_scale(target)).selector
        if not selector:
            # an empty selector selects every pod of the namespace: never count those
            raise SelectorUnavailable(
                f"{target}: its scale subresource shows no status.selector, so its pods cannot be found",
                operation="read_scale",
                target=str(target),
                status=200,
            )
        pods: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await self._request(
                "list_pods",
                str(target),
                lambda: self._raw_json(
                    self._core.list_namespaced_pod(
                        target.namespace,
                        label_selector=selector,
                        limit=self._page_size,
                        _continue=token,
                        # "0": any version, served from the API server's watch cache rather than a
                        # quorum read of etcd for every workload every tick (as an informer's
                        # view, it may be a moment old). A continuation page takes none.
                        resource_version=None if token else "0",
                        _preload_content=False,
                        _request_timeout=self._timeout,
                    )
                ),
            )
            pods.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return pods

    @staticmethod
    async def _raw_json(call: Awaitable[Any]) -> Any:
        """Await a call made with ``_preload_content=False``; its JSON body, or ``ApiException``."""
        response = await call
        try:
            data = await response.read()
        finally:
            response.release()
        if not 200 <= response.status <= 299:
            raise k8s.ApiException(http_resp=rest.RESTResponse(response, data))
        return json.loads(data)

    async def _request(
        self,
        operation: str,
        target: str,
        call: Callable[[], Awaitable[T]],
        *,
        missing: Any = None,
    ) -> T:
        """One request, retried on 429, 5xx and transport errors; errors translated.

        Args:
            operation: name for errors, logs and ``on_call``.
            target: the workload or namespace, for the same.
            call: makes the request (called again for each attempt).
            missing: returned on 404 instead of raising ``TargetNotFound``, when not None.
        """
        policy = self._retry
        for attempt in range(1, policy.max_attempts + 1):
            started = time.perf_counter()
            try:
                result = await call()
            except k8s.ApiException as exc:
                status = int(exc.status or 0)
                self._observe(operation, target, status, started)
                if status == 404:
                    if missing is not None:
                        return missing
                    raise TargetNotFound(
                        f"{operation} {target}: not found ({_status_message(exc)})", operation=operation, target=target, status=404
                    ) from exc
                if status == 409:
                    raise Conflict(
                        f"{operation} {target}: conflict ({_status_message(exc)})", operation=operation, target=target, status=409
                    ) from exc
                if status not in _RETRYABLE:
                    raise KubeApiError(
                        f"{operation} {target}: HTTP {status} ({_status_message(exc)})",
                        operation=operation,
                        target=target,
                        status=status,
                    ) from exc
                delay = _retry_after(exc)
                if delay is not None:
                    delay = min(delay, policy.max_retry_after_seconds)
                cause: BaseException = exc
                detail = f"HTTP {status} ({_status_message(exc)})"
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                status = 0
                self._observe(operation, target, 0, started)
                delay, cause, detail = None, exc, f"{type(exc).__name__}: {exc}"
            else:
                self._observe(operation, target, None, started)
                return result
            if attempt == policy.max_attempts:
                raise RetriesExhausted(
                    f"{operation} {target}: gave up after {attempt} attempts; last: {detail}",
                    operation=operation,
                    target=target,
                    status=status,
                    attempts=attempt,
                ) from cause
            if delay is None:
                delay = policy.backoff_seconds(attempt, self._rng.random())
            log.warning(
                "%s %s: %s; retrying in %.2fs (attempt %d of %d)", operation, target, detail, delay, attempt, policy.max_attempts
            )
            await self._clock.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _retry_conflicts(self, operation: str, target: WorkloadRef, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run a read-compare-write ``attempt`` again after each 409, at most ``conflict_attempts`` times."""
        policy = self._retry
        for n in range(1, policy.conflict_attempts + 1):
            try:
                return await attempt()
            except Conflict as exc:
                if n == policy.conflict_attempts:
                    raise RetriesExhausted(
                        f"{operation} {target}: 409 Conflict on {n} attempts in a row; giving up",
                        operation=operation,
                        target=str(target),
                        status=409,
                        attempts=n,
                    ) from exc
                log.info("%s %s: conflict, re-reading (attempt %d of %d)", operation, target, n, policy.conflict_attempts)
                await self._clock.sleep(policy.conflict_delay_seconds * (1.0 + 0.1 * self._rng.random()))
        raise AssertionError("unreachable")  # pragma: no cover

    def _observe(self, operation: str, target: str, status: int | None, started: float) -> None:
        if self._on_call is not None:
            self._on_call(ApiCall(operation, target, status, time.perf_counter() - started))


def _status_body(exc: k8s.ApiException) -> Mapping[str, Any]:
    try:
        body = json.loads(exc.body) if exc.body else {}
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _status_message(exc: k8s.ApiException) -> str:
    return str(_status_body(exc).get("message") or exc.reason or "")


def _retry_after(exc: k8s.ApiException) -> float | None:
    """Seconds the server asked us to wait: the ``Retry-After`` header, else ``details.retryAfterSeconds``."""
    headers = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if value is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass  # an HTTP-date: fall back to the Status body or our own backoff
    seconds = (_status_body(exc).get("details") or {}).get("retryAfterSeconds")
    return float(seconds) if isinstance(seconds, (int, float)) and seconds >= 0 else None
