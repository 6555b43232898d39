"""A Kubernetes API server for tests and the local demo: the real wire format, in process, on aiohttp.

No kube-apiserver binary can be installed where scaleahead is tested, so this module serves
the slice of the Kubernetes API that the controller uses, and the controller reaches it
through ``kubernetes_asyncio`` over HTTP exactly as it reaches a cluster:

- ``apps/v1`` deployments and statefulsets, and ``argoproj.io/v1alpha1`` rollouts (a custom
  resource), each with the ``scale`` subresource (``autoscaling/v1`` ``Scale``) and ``status``;
- ``v1`` pods (with ``status`` and the ``policy/v1`` ``eviction`` subresource), events and
  configmaps; ``coordination.k8s.io/v1`` leases; ``policy/v1`` poddisruptionbudgets;
  ``autoscaling/v2`` horizontalpodautoscalers; ``keda.sh/v1alpha1`` scaledobjects.

What a client can observe behaves as on a real server: a global ``resourceVersion``
counter (as etcd's revision), ``409 Conflict`` for a stale ``resourceVersion`` and
``AlreadyExists``, ``404`` with a ``Status`` body, JSON / merge / strategic-merge patches
(strategic merge only for built-in kinds, as for CRDs), label and field selectors, ``limit``
and ``continue``, ``?watch=true`` streams from a ``resourceVersion`` (``410 Gone`` once it
is compacted away), status that only the ``status`` subresource can change, and no-op
writes that do not bump the ``resourceVersion``.

Request bodies are checked against the official shapes: each built-in object is walked
along the OpenAPI types of the ``kubernetes_asyncio`` models (generated from the official
OpenAPI document), so a wrong type is a ``400``, a missing required field or a semantic
error (negative replicas, a selector that does not match the template, an annotation set
over 256 KiB, ...) a ``422 Invalid`` with causes, and an unknown field a ``400`` under
``fieldValidation=Strict``. Strict is this server's default, stricter than a real one
(which warns), so that a typo in a patch of ours fails a test instead of silently doing
nothing on a cluster.

Two things a real cluster has are emulated (``ClusterEmulator``): the workload controllers
(deployments, statefulsets and rollouts create and delete pods to match ``spec.replicas``
and report ``status``), and the kubelet (a pod becomes Ready ``startup_seconds`` after it
was created). Both run on an injectable ``Clock``, so a test on ``SimClock`` advances time
instead of waiting. Simplifications, on purpose: pods are owned by the workload directly
(no ReplicaSet in between), statefulsets behave as ``podManagementPolicy: Parallel``, there
are no nodes and no scheduling, deletion is immediate (no grace period), namespaces exist
implicitly, and server-side apply is not served (``415``).

For tests, the server object (not HTTP) offers fault injection (``server.faults``: fail the
next N matching requests, or all matching requests for a duration) and a request log
(``server.requests``). Run it standalone with ``python -m controller.sim.kubeapi --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import fnmatch
import functools
import hashlib
import heapq
import itertools
import json
import random
import re
import signal
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from kubernetes_asyncio import client as k8s
from multidict import CIMultiDict

from controller import ports

# ---------------------------------------------------------------------------------------------
# Resources served
# ---------------------------------------------------------------------------------------------

# Annotation (on a pod, or on a workload's pod template) overriding the emulated startup time.
STARTUP_ANNOTATION = "kubeapi.scaleahead.io/startup-seconds"
# The limit the API server enforces on all annotations of one object together (ValidateAnnotations).
ANNOTATIONS_MAX_BYTES = 256 * 1024

_COMMON_FIELD_LABELS = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True, slots=True)
class ScaleSpec:
    """Where a kind keeps what its ``scale`` subresource shows (a CRD's ``subresources.scale``).

    Built-in kinds format ``status.selector`` of the Scale from ``spec.selector``; custom
    resources read it from ``labelSelectorPath`` (``.status.selector`` for Argo Rollouts).
    """

    spec_replicas: tuple[str, ...] = ("spec", "replicas")
    status_replicas: tuple[str, ...] = ("status", "replicas")
    selector_path: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Resource:
    """One served resource type: its group, version, plural and kind, and what it supports."""

    group: str
    version: str
    plural: str
    kind: str
    model: str | None = None  # kubernetes_asyncio model the objects are checked against
    status_subresource: bool = False
    scale: ScaleSpec | None = None
    builtin: bool = True  # strategic merge patch is served for built-in kinds only
    workload: str | None = None  # "replicaset" or "statefulset": an emulated controller owns pods
    field_labels: frozenset[str] = _COMMON_FIELD_LABELS

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` as in the API server's messages; ``pods`` for the core group."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind


PODS = Resource(
    "", "v1", "pods", "Pod", model="V1Pod", status_subresource=True,
    field_labels=_COMMON_FIELD_LABELS | {
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "status.phase", "status.podIP", "status.nominatedNodeName",
    },
)  # fmt: skip
EVENTS = Resource(
    "", "v1", "events", "Event", model="CoreV1Event",
    field_labels=_COMMON_FIELD_LABELS | {
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
        "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
        "reason", "reportingComponent", "source", "type",
    },
)  # fmt: skip
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", model="V1ConfigMap")
DEPLOYMENTS = Resource(
    "apps", "v1", "deployments", "Deployment", model="V1Deployment", status_subresource=True,
    scale=ScaleSpec(), workload="replicaset",
)  # fmt: skip
STATEFULSETS = Resource(
    "apps", "v1", "statefulsets", "StatefulSet", model="V1StatefulSet", status_subresource=True,
    scale=ScaleSpec(), workload="statefulset",
)  # fmt: skip
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", model="V1Lease")
PDBS = Resource(
    "policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", model="V1PodDisruptionBudget",
    status_subresource=True,
)  # fmt: skip
HPAS = Resource(
    "autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
    model="V2HorizontalPodAutoscaler", status_subresource=True,
)  # fmt: skip
SCALEDOBJECTS = Resource("keda.sh", "v1alpha1", "scaledobjects", "ScaledObject", builtin=False, status_subresource=True)
ROLLOUTS = Resource(
    "argoproj.io", "v1alpha1", "rollouts", "Rollout", builtin=False, status_subresource=True,
    scale=ScaleSpec(selector_path=("status", "selector")), workload="replicaset",
)  # fmt: skip

RESOURCES: tuple[Resource, ...] = (
    PODS, EVENTS, CONFIGMAPS, DEPLOYMENTS, STATEFULSETS, LEASES, PDBS, HPAS, SCALEDOBJECTS, ROLLOUTS,
)  # fmt: skip
_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}
_BY_PLURAL = {r.plural: r for r in RESOURCES}

# ---------------------------------------------------------------------------------------------
# Errors as Status bodies
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldError:
    """One cause of a ``422 Invalid`` (``field.Error`` of apimachinery)."""

    field: str
    type: str  # FieldValueRequired, FieldValueInvalid, FieldValueForbidden, FieldValueTooLong, ...
    detail: str

    @property
    def message(self) -> str:
        return f"{self.field}: {self.detail}"


def _bad_value(path: str, value: Any, why: str) -> FieldError:
    shown = value if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)
    return FieldError(path, "FieldValueInvalid", f"Invalid value: {shown}: {why}")


class ApiError(Exception):
    """An error the server answers with a ``Status`` body."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})
        self.retry_after_seconds = retry_after_seconds
        if retry_after_seconds is not None:
            self.details.setdefault("retryAfterSeconds", retry_after_seconds)

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body

    def response(self) -> web.Response:
        headers = {}
        if self.retry_after_seconds is not None:
            headers["Retry-After"] = str(self.retry_after_seconds)
        return web.json_response(self.status(), status=self.code, headers=headers)


def _details(res: Resource, name: str | None) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": res.plural}
    if name:
        d["name"] = name
    if res.group:
        d["group"] = res.group
    return d


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found', details=_details(res, name))


def conflict(res: Resource, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details=_details(res, name),
    )


def already_exists(res: Resource, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{res.qualified} "{name}" already exists', details=_details(res, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(res: Resource, name: str, errors: Iterable[FieldError], *, kind: str | None = None) -> ApiError:
    errors = list(errors)
    kind = kind or res.qualified_kind
    message = f'{kind} "{name}" is invalid: ' + "; ".join(e.message for e in errors)
    if len(errors) > 1:
        message = f'{kind} "{name}" is invalid: [' + ", ".join(e.message for e in errors) + "]"
    details = {
        "name": name,
        "kind": kind.split(".")[0],
        "causes": [{"reason": e.type, "message": e.detail, "field": e.field} for e in errors],
    }
    if res.group:
        details["group"] = res.group
    return ApiError(422, "Invalid", message, details=details)


_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

# ---------------------------------------------------------------------------------------------
# Small helpers: time, paths, selectors
# ---------------------------------------------------------------------------------------------


def rfc3339(t: float) -> str:
    """Unix seconds -> ``metav1.Time`` wire format (RFC 3339, UTC, whole seconds)."""
    return datetime.fromtimestamp(int(t), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    """RFC 3339 (with or without fraction, ``Z`` or offset) -> Unix seconds."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _get_path(obj: Any, path: Iterable[str], default: Any = None) -> Any:
    for key in path:
        if not isinstance(obj, Mapping) or key not in obj:
            return default
        obj = obj[key]
    return obj


def _set_path(obj: dict, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        obj = obj.setdefault(key, {})
    obj[path[-1]] = value


@dataclass(frozen=True, slots=True)
class Requirement:
    """One term of a label selector: ``key op values``."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return has and value in self.values
        if self.op in ("!=", "notin"):
            return not has or value not in self.values
        if self.op == "exists":
            return has
        return not has

    def __str__(self) -> str:
        if self.op in ("=", "!="):
            return f"{self.key}{self.op}{self.values[0]}"
        if self.op in ("in", "notin"):
            return f"{self.key} {self.op} ({','.join(sorted(self.values))})"
        if self.op == "exists":
            return self.key
        return f"!{self.key}"


_LABEL_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_LABEL_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_TERM_SET = re.compile(rf"^\s*({_LABEL_KEY})\s+(in|notin)\s+\(\s*([^)]*)\)\s*$")
_TERM_EQ = re.compile(rf"^\s*({_LABEL_KEY})\s*(==|=|!=)\s*({_LABEL_VALUE})\s*$")
_TERM_EXISTS = re.compile(rf"^\s*(!?)\s*({_LABEL_KEY})\s*$")


def _split_terms(text: str) -> list[str]:
    """Split a selector on the commas that are not inside ``in (...)`` sets."""
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return [t for t in terms if t.strip()]


def parse_label_selector(text: str) -> list[Requirement]:
    """Parse the ``labelSelector`` query syntax; raises ``ValueError`` on a malformed term."""
    reqs = []
    for term in _split_terms(text or ""):
        if m := _TERM_SET.match(term):
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(m.group(1), m.group(2), values))
        elif m := _TERM_EQ.match(term):
            reqs.append(Requirement(m.group(1), "!=" if m.group(2) == "!=" else "=", (m.group(3),)))
        elif m := _TERM_EXISTS.match(term):
            reqs.append(Requirement(m.group(2), "!" if m.group(1) else "exists"))
        else:
            raise ValueError(f"unable to parse requirement: {term.strip()!r}")
    return reqs


_SELECTOR_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def requirements_of(selector: Mapping[str, Any] | None) -> list[Requirement]:
    """A ``LabelSelector`` object (``matchLabels`` + ``matchExpressions``) as requirements."""
    selector = selector or {}
    reqs = [Requirement(k, "=", (v,)) for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        reqs.append(Requirement(expr["key"], _SELECTOR_OPS[expr["operator"]], tuple(expr.get("values") or ())))
    return reqs


def format_selector(selector: Mapping[str, Any] | None) -> str:
    """``metav1.FormatLabelSelector``: the string form a Scale's ``status.selector`` carries."""
    return ",".join(str(r) for r in sorted(requirements_of(selector), key=lambda r: r.key))


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return _get_path(obj, ("metadata", "labels")) or {}


def selector_matches(reqs: Iterable[Requirement], labels: Mapping[str, str]) -> bool:
    return all(r.matches(labels) for r in reqs)


def _parse_field_selector(res: Resource, text: str) -> list[tuple[str, str, str]]:
    terms = []
    for term in _split_terms(text or ""):
        m = re.match(r"^\s*([A-Za-z.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise bad_request(f"invalid selector: {term!r}")
        path, op, value = m.groups()
        if path not in res.field_labels:
            raise bad_request(f'field label not supported: {path}"')
        terms.append((path, "!=" if op == "!=" else "=", value))
    return terms


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    if path == "source":  # events: source is the component
        return _get_path(obj, ("source", "component")) or ""
    value = _get_path(obj, path.split("."))
    return "" if value is None else str(value)


def pod_is_ready(pod: Mapping[str, Any]) -> bool:
    """The pod's ``Ready`` condition is ``True``."""
    for cond in _get_path(pod, ("status", "conditions")) or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's utilrand alphabet: no vowels, no 0/1/3

# ---------------------------------------------------------------------------------------------
# Patches: RFC 7386 merge, RFC 6902 JSON patch, strategic merge
# ---------------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve_parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    for part in parts[:-1]:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict):
            doc = doc[part]
        else:
            raise KeyError(part)
    return doc, parts[-1]


def json_patch(doc: Any, ops: list[Any]) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test); raises ``ValueError``."""
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ValueError(f"invalid operation {op!r}")
        kind, parts = op["op"], _pointer(op["path"])
        try:
            if kind in ("add", "replace", "test") and "value" not in op:
                raise ValueError(f"operation {kind} on {op['path']} has no value")
            if kind in ("move", "copy"):
                src_parent, src_key = _resolve_parent(doc, _pointer(op["from"]))
                value = src_parent[int(src_key)] if isinstance(src_parent, list) else src_parent[src_key]
                value = copy.deepcopy(value)
                if kind == "move":
                    doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
                doc = json_patch(doc, [{"op": "add", "path": op["path"], "value": value}])
                continue
            if not parts:
                if kind == "test":
                    if doc != op["value"]:
                        raise ValueError("test failed")
                    continue
                doc = copy.deepcopy(op["value"]) if kind != "remove" else None
                continue
            parent, key = _resolve_parent(doc, parts)
            if isinstance(parent, list):
                index = len(parent) if key == "-" else int(key)
                if kind == "add":
                    if not 0 <= index <= len(parent):
                        raise IndexError(index)
                    parent.insert(index, copy.deepcopy(op["value"]))
                elif kind == "remove":
                    del parent[index]
                elif kind == "replace":
                    parent[index] = copy.deepcopy(op["value"])
                elif kind == "test":
                    if parent[index] != op["value"]:
                        raise ValueError(f"test failed at {op['path']}")
                else:
                    raise ValueError(f"unknown op {kind!r}")
            elif isinstance(parent, dict):
                if kind == "add":
                    parent[key] = copy.deepcopy(op["value"])
                elif kind == "remove":
                    del parent[key]
                elif kind == "replace":
                    if key not in parent:
                        raise KeyError(key)
                    parent[key] = copy.deepcopy(op["value"])
                elif kind == "test":
                    if parent.get(key) != op["value"]:
                        raise ValueError(f"test failed at {op['path']}")
                else:
                    raise ValueError(f"unknown op {kind!r}")
            else:
                raise KeyError(key)
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"{kind} operation does not apply: doc is missing path: {op['path']}") from exc
    return doc


# Lists that strategic merge patch merges by a key (patchMergeKey in the Go types) instead of replacing.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumes": "name",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
}
_MERGED_PRIMITIVE_LISTS = frozenset({"finalizers"})


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge patch, for the lists scaleahead's objects have (see ``_MERGE_KEYS``).

    Maps merge and ``null`` deletes, as a merge patch; lists with a merge key merge item by
    item; ``$patch: replace|delete`` and ``$deleteFromPrimitiveList`` directives are honoured,
    ``$setElementOrder`` and ``$retainKeys`` are accepted and ignored.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name) or [] if v not in value]
            continue
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = strategic_merge_patch(result.get(key), value)
        elif isinstance(value, list) and key in _MERGE_KEYS and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, _MERGE_KEYS[key])
        elif isinstance(value, list) and key in _MERGED_PRIMITIVE_LISTS:
            merged = list(result.get(key) or [])
            result[key] = merged + [v for v in value if v not in merged]
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(current: list, patch: list, merge_key: str) -> list:
    result = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise ValueError(f"list item {item!r} has no merge key {merge_key!r}")
        index = next((i for i, c in enumerate(result) if isinstance(c, dict) and c.get(merge_key) == item[merge_key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append({k: v for k, v in item.items() if k != "$patch"})
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


# ---------------------------------------------------------------------------------------------
# Shapes: objects checked against the kubernetes_asyncio models (the official OpenAPI types)
# ---------------------------------------------------------------------------------------------


@dataclass
class ShapeReport:
    """What a walk along the OpenAPI types found wrong with a body."""

    unknown: list[str] = field(default_factory=list)  # field paths the type does not have
    wrong_type: list[str] = field(default_factory=list)  # messages in the decoder's words
    required: list[str] = field(default_factory=list)  # field paths that must be set


@functools.cache
def _model(name: str) -> type:
    return getattr(k8s.models, name)


@functools.cache
def _required_attrs(klass: type) -> frozenset[str]:
    """Attributes whose setter rejects ``None`` (the required fields of the OpenAPI schema).

    Found by probing: construct the model with every attribute set but one. Models whose
    setters also check formats are skipped (none of the kinds served here has any).
    """
    dummy = dict.fromkeys(klass.openapi_types, "x")
    try:
        klass(**dummy)
    except (ValueError, TypeError):
        return frozenset()
    required = set()
    for attr in klass.openapi_types:
        kwargs = dict(dummy)
        del kwargs[attr]
        try:
            klass(**kwargs)
        except ValueError:
            required.add(attr)
    return frozenset(required)


# Quantities (resources.limits/requests, overhead) are strings in the models but numbers are accepted.
_QUANTITY_PARENTS = frozenset({"limits", "requests", "overhead"})


def check_shape(value: Any, type_name: str, path: str, report: ShapeReport) -> None:
    """Walk ``value`` along the OpenAPI type ``type_name`` and record what does not fit."""
    if value is None:
        return  # JSON null decodes to the zero value
    where = path or "<root>"
    if type_name.startswith("list["):
        if not isinstance(value, list):
            report.wrong_type.append(f"{where}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            check_shape(item, type_name[5:-1], f"{path}[{i}]", report)
        return
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            report.wrong_type.append(f"{where}: expected an object, got {type(value).__name__}")
            return
        inner = type_name[type_name.index(",") + 1 : -1].strip()
        quantity = path.rsplit(".", 1)[-1] in _QUANTITY_PARENTS
        for key, item in value.items():
            if quantity and isinstance(item, (int, float)) and not isinstance(item, bool):
                continue
            check_shape(item, inner, f"{path}.{key}", report)
        return
    if type_name == "object":
        return
    if type_name in ("str", "int", "float", "bool", "datetime", "date"):
        ok = {
            "str": isinstance(value, str),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
        }.get(type_name)
        if type_name in ("datetime", "date"):
            ok = isinstance(value, str)
            if ok:
                try:
                    parse_time(value)
                except ValueError:
                    ok = False
        if not ok:
            report.wrong_type.append(f"{where}: cannot unmarshal {json.dumps(value)[:40]} into a value of type {type_name}")
        return
    klass = _model(type_name)
    if not isinstance(value, dict):
        report.wrong_type.append(f"{where}: expected an object ({type_name}), got {type(value).__name__}")
        return
    by_json = {json_key: attr for attr, json_key in klass.attribute_map.items()}
    for key, item in value.items():
        attr = by_json.get(key)
        child = f"{path}.{key}" if path else key
        if attr is None:
            report.unknown.append(child)
        else:
            check_shape(item, klass.openapi_types[attr], child, report)
    for attr in sorted(_required_attrs(klass)):
        key = klass.attribute_map[attr]
        if value.get(key) is None:
            report.required.append(f"{path}.{key}" if path else key)


# ---------------------------------------------------------------------------------------------
# The object store: objects, resourceVersion, history, watchers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One committed write, as a watch sees it."""

    resource_version: int
    type: str  # ADDED | MODIFIED | DELETED
    resource: Resource
    namespace: str
    name: str
    object: dict[str, Any]
    old: dict[str, Any] | None


@dataclass(eq=False)
class _Watcher:
    resource: Resource
    namespace: str | None
    queue: asyncio.Queue


class _WallClock:
    """Unix time and real sleeps (the default when no ``Clock`` is injected)."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ObjectStore:
    """Objects by resource and ``(namespace, name)``, one global revision, a bounded change history.

    This is the etcd of the server: no validation here, callers check first. Reads return
    the stored dicts; callers copy before changing them.
    """

    def __init__(self, *, clock: ports.Clock, rng: random.Random, history_limit: int = 10_000) -> None:
        self.clock = clock
        self.rng = rng
        self.revision = 0
        self._objects: dict[Resource, dict[tuple[str, str], dict[str, Any]]] = {r: {} for r in RESOURCES}
        self.history: deque[Change] = deque(maxlen=history_limit)
        self.compacted_revision = 0  # changes up to here were dropped from the history
        self.listeners: list[Callable[[Change], None]] = []
        self.watchers: set[_Watcher] = set()

    def get(self, res: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects[res].get((namespace, name))

    def list(self, res: Resource, namespace: str | None = None) -> list[dict[str, Any]]:
        items = self._objects[res]
        keys = sorted(k for k in items if namespace is None or k[0] == namespace)
        return [items[k] for k in keys]

    def generate_name(self, prefix: str) -> str:
        return prefix + "".join(self.rng.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5))

    def create(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new object: fills ``uid``, ``creationTimestamp`` and ``resourceVersion``."""
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.UUID(int=self.rng.getrandbits(128), version=4)))
        meta.setdefault("creationTimestamp", rfc3339(self.clock.now()))
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        return self._commit(res, obj, "ADDED")

    def update(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        return self._commit(res, obj, "MODIFIED")

    def delete(self, res: Resource, namespace: str, name: str) -> dict[str, Any]:
        obj = copy.deepcopy(self._objects[res][(namespace, name)])
        return self._commit(res, obj, "DELETED")

    def _commit(self, res: Resource, obj: dict[str, Any], kind: str) -> dict[str, Any]:
        self.revision += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self.revision)
        key = (meta["namespace"], meta["name"])
        old = self._objects[res].get(key)
        if kind == "DELETED":
            del self._objects[res][key]
        else:
            self._objects[res][key] = obj
        if len(self.history) == self.history.maxlen:
            self.compacted_revision = self.history[0].resource_version
        change = Change(self.revision, kind, res, key[0], key[1], obj, old)
        self.history.append(change)
        for watcher in self.watchers:
            if watcher.resource is res and watcher.namespace in (None, key[0]):
                watcher.queue.put_nowait(change)
        for listener in self.listeners:
            listener(change)
        return obj


# ---------------------------------------------------------------------------------------------
# Cluster emulation: workload controllers and the kubelet
# ---------------------------------------------------------------------------------------------


def _owner_uid(pod: Mapping[str, Any]) -> str | None:
    for ref in _get_path(pod, ("metadata", "ownerReferences")) or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def _template_hash(template: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_NAME_SUFFIX_ALPHABET[b % len(_NAME_SUFFIX_ALPHABET)] for b in digest[:10])


class ClusterEmulator:
    """The controllers a cluster would run, reduced to what scaleahead observes.

    - Workload controllers: a deployment, statefulset or rollout gets ``spec.replicas`` pods
      (labels from its pod template, an owner reference to it), the surplus deleted not-ready
      first then newest first (as ReplicaSet ranks them), or highest ordinal first for a
      statefulset; its ``status`` counts them. Deleting a workload deletes its pods.
    - Kubelet: a Pending pod without a ``Ready`` condition becomes Running and Ready
      ``startup_seconds`` (or its ``kubeapi.scaleahead.io/startup-seconds`` annotation) after
      its creation, with ``lastTransitionTime`` at that moment of the clock.

    Everything happens in ``sync()``, which the server calls after each request and from a
    background task, so time comes only from the clock.
    """

    def __init__(self, store: ObjectStore, *, startup_seconds: float = 0.0, enabled: bool = True) -> None:
        self.store = store
        self.startup_seconds = startup_seconds
        self.enabled = enabled
        self._dirty: dict[tuple[Resource, str, str], str] = {}  # workload -> its uid
        self._due: list[tuple[float, int, str, str, str]] = []  # (ready_at, seq, namespace, pod, uid)
        self._seq = itertools.count()
        self._ips = itertools.count(1)
        self.wakeup = asyncio.Event()
        store.listeners.append(self._on_change)

    def next_due(self) -> float | None:
        return self._due[0][0] if self._due else None

    def _on_change(self, change: Change) -> None:
        if not self.enabled:
            return
        res, obj = change.resource, change.object
        if res.workload:
            self._dirty[(res, change.namespace, change.name)] = obj["metadata"]["uid"]
        elif res is PODS:
            owner = _owner_uid(obj)
            if owner:
                for ref in obj["metadata"].get("ownerReferences") or []:
                    owner_res = _BY_KIND.get((ref.get("apiVersion"), ref.get("kind")))
                    if ref.get("uid") == owner and owner_res and owner_res.workload:
                        self._dirty[(owner_res, change.namespace, ref["name"])] = owner
            if change.type == "ADDED" and self._starts(obj):
                # from the clock, not from creationTimestamp, which is truncated to whole seconds
                ready_at = self.store.clock.now() + self._startup_seconds(obj)
                heapq.heappush(self._due, (ready_at, next(self._seq), change.namespace, change.name, obj["metadata"]["uid"]))
                self.wakeup.set()

    @staticmethod
    def _starts(pod: Mapping[str, Any]) -> bool:
        status = pod.get("status") or {}
        if status.get("phase") not in (None, "Pending"):
            return False
        return not any(c.get("type") == "Ready" for c in status.get("conditions") or [])

    def _startup_seconds(self, pod: Mapping[str, Any]) -> float:
        value = (_get_path(pod, ("metadata", "annotations")) or {}).get(STARTUP_ANNOTATION)
        try:
            return float(value) if value is not None else self.startup_seconds
        except ValueError:
            return self.startup_seconds

    def sync(self) -> None:
        """Start the pods that are due, then reconcile every workload whose pods or spec changed."""
        if not self.enabled:
            return
        now = self.store.clock.now()
        while self._due and self._due[0][0] <= now:
            ready_at, _, namespace, name, uid = heapq.heappop(self._due)
            pod = self.store.get(PODS, namespace, name)
            if pod is None or pod["metadata"]["uid"] != uid or not self._starts(pod):
                continue
            self._start_pod(copy.deepcopy(pod), ready_at)
        # Reconciling creates and deletes pods, which marks the workload dirty again; the
        # second pass finds nothing to do and only settles the status.
        for _ in range(10):
            if not self._dirty:
                break
            dirty, self._dirty = self._dirty, {}
            for (res, namespace, name), uid in dirty.items():
                self._reconcile(res, namespace, name, uid)

    def _start_pod(self, pod: dict[str, Any], ready_at: float) -> None:
        at = rfc3339(ready_at)
        status = pod.setdefault("status", {})
        n = next(self._ips)
        status.update(
            phase="Running",
            podIP=f"10.244.{n // 250}.{n % 250 + 1}",
            startTime=pod["metadata"]["creationTimestamp"],
            conditions=[
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": pod["metadata"]["creationTimestamp"]},
                {"type": "Initialized", "status": "True", "lastTransitionTime": at},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": at},
                {"type": "Ready", "status": "True", "lastTransitionTime": at},
            ],
        )
        self.store.update(PODS, pod)

    def _owned_pods(self, namespace: str, uid: str) -> list[dict[str, Any]]:
        return [p for p in self.store.list(PODS, namespace) if _owner_uid(p) == uid]

    def _reconcile(self, res: Resource, namespace: str, name: str, uid: str) -> None:
        workload = self.store.get(res, namespace, name)
        pods = self._owned_pods(namespace, uid)
        if workload is None or workload["metadata"]["uid"] != uid:
            # garbage collection of the dependents of a deleted owner
            for pod in pods:
                self.store.delete(PODS, namespace, pod["metadata"]["name"])
            return
        desired = _get_path(workload, res.scale.spec_replicas if res.scale else ("spec", "replicas"), 1)
        if len(pods) < desired:
            for _ in range(desired - len(pods)):
                self._create_pod(res, workload, pods)
                pods = self._owned_pods(namespace, uid)
        elif len(pods) > desired:
            for pod in self._deletion_order(res, pods)[: len(pods) - desired]:
                self.store.delete(PODS, namespace, pod["metadata"]["name"])
            pods = self._owned_pods(namespace, uid)
        self._write_status(res, workload, pods)

    @staticmethod
    def _deletion_order(res: Resource, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if res.workload == "statefulset":
            return sorted(pods, key=lambda p: -int(p["metadata"]["name"].rsplit("-", 1)[1]))
        # ReplicaSet's ActivePods ranking, reduced: not ready before ready, newer before older
        return sorted(pods, key=lambda p: (pod_is_ready(p), -int(p["metadata"]["resourceVersion"])))

    def _create_pod(self, res: Resource, workload: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        meta = workload["metadata"]
        template = copy.deepcopy(_get_path(workload, ("spec", "template")) or {})
        tmeta = template.get("metadata") or {}
        labels = dict(tmeta.get("labels") or {})
        if res.workload == "statefulset":
            taken = {p["metadata"]["name"] for p in pods}
            ordinal = next(i for i in itertools.count() if f"{meta['name']}-{i}" not in taken)
            name = f"{meta['name']}-{ordinal}"
            labels["statefulset.kubernetes.io/pod-name"] = name
        else:
            pod_hash = _template_hash(template)
            labels["pod-template-hash"] = pod_hash
            name = self.store.generate_name(f"{meta['name']}-{pod_hash}-")
            while self.store.get(PODS, meta["namespace"], name) is not None:
                name = self.store.generate_name(f"{meta['name']}-{pod_hash}-")
        pod_meta: dict[str, Any] = {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": res.api_version,
                    "kind": res.kind,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
        if tmeta.get("annotations"):
            pod_meta["annotations"] = dict(tmeta["annotations"])
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": pod_meta,
            "spec": template.get("spec") or {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}]},
            "status": {
                "phase": "Pending",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": rfc3339(self.store.clock.now())}
                ],
            },
        }
        self.store.create(PODS, pod)

    def _write_status(self, res: Resource, workload: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        ready = sum(pod_is_ready(p) for p in pods)
        status = dict(workload.get("status") or {})
        counts = {
            "replicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": len(pods),
            "observedGeneration": workload["metadata"].get("generation", 1),
        }
        if res.workload == "statefulset":
            counts["currentReplicas"] = len(pods)
        # omitempty: the API server leaves zero counts out of the JSON
        for key, value in counts.items():
            if value:
                status[key] = value
            else:
                status.pop(key, None)
        if res.scale and res.scale.selector_path:
            status["selector"] = format_selector(_get_path(workload, ("spec", "selector")))
        if status != (workload.get("status") or {}):
            updated = copy.deepcopy(workload)
            updated["status"] = status
            self.store.update(res, updated)


# ---------------------------------------------------------------------------------------------
# Fault injection and the request log
# ---------------------------------------------------------------------------------------------


@dataclass
class FaultRule:
    """Requests matching ``method`` and ``path`` fail with ``status``, ``remaining`` times or until ``until``.

    ``path`` is a glob (``fnmatch``) on the URL path, or a compiled regex (``search``).
    ``on_fire`` runs each time the rule fails a request, before the answer goes out: a
    409 can come with the concurrent write that caused it.
    """

    status: int
    method: str | None = None
    path: str | re.Pattern[str] | None = None
    remaining: int | None = None
    until: float | None = None
    retry_after_seconds: int | None = None
    message: str | None = None
    on_fire: Callable[[], object] | None = None
    hits: int = 0

    def matches(self, method: str, path: str, now: float) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.until is not None and now >= self.until:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path is None:
            return True
        if isinstance(self.path, re.Pattern):
            return self.path.search(path) is not None
        return fnmatch.fnmatchcase(path, self.path)

    def error(self) -> ApiError:
        reason = _REASONS.get(self.status, "InternalError")
        message = self.message or f"injected fault: {self.status} {reason}"
        retry_after = self.retry_after_seconds
        if self.status == 429 and retry_after is None:
            retry_after = 1
        return ApiError(self.status, reason, message, retry_after_seconds=retry_after)


class FaultInjector:
    """Make requests fail on purpose; rules are tried in the order they were added."""

    def __init__(self, clock: ports.Clock) -> None:
        self._clock = clock
        self.rules: list[FaultRule] = []

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        retry_after_seconds: int | None = None,
        message: str | None = None,
        on_fire: Callable[[], object] | None = None,
    ) -> FaultRule:
        """Fail the next ``count`` requests that match ``method`` and ``path`` with ``status``.

        A 429 carries ``Retry-After`` (``retry_after_seconds``, 1 if not given). ``on_fire``
        runs each time a request is failed (see ``FaultRule``).
        """
        rule = FaultRule(
            status, method, path, remaining=count,
            retry_after_seconds=retry_after_seconds, message=message, on_fire=on_fire,
        )  # fmt: skip
        self.rules.append(rule)
        return rule

    def fail_for(
        self,
        seconds: float,
        *,
        status: int = 500,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        retry_after_seconds: int | None = None,
        message: str | None = None,
    ) -> FaultRule:
        """Fail every matching request for ``seconds`` of the server's clock from now."""
        rule = FaultRule(
            status, method, path, until=self._clock.now() + seconds,
            retry_after_seconds=retry_after_seconds, message=message,
        )  # fmt: skip
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def check(self, method: str, path: str) -> None:
        now = self._clock.now()
        for rule in self.rules:
            if rule.matches(method, path, now):
                rule.hits += 1
                if rule.remaining is not None:
                    rule.remaining -= 1
                if rule.on_fire is not None:
                    rule.on_fire()
                raise rule.error()


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received, and the status it answered with."""

    method: str
    path: str
    query: Mapping[str, str]
    content_type: str | None
    body: Any  # parsed JSON, or None
    at: float  # server clock, Unix seconds
    status: int
    warnings: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------

_PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
}


def _qbool(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


class KubeApiServer:
    """The Kubernetes API of the resources scaleahead uses, in process, over HTTP.

    Use as ``async with KubeApiServer() as server:`` and point a client at
    ``server.client_configuration()``. Direct (non-HTTP) access for tests: ``put``, ``get``,
    ``objects``, ``faults``, ``requests``, ``sync``.

    Args:
        host: interface to listen on.
        port: TCP port; 0 picks a free one.
        clock: time source for timestamps, pod startup and ``fail_for``; the wall clock if None.
        pod_startup_seconds: emulated time from a pod's creation to Ready.
        emulate: run the workload controllers and the kubelet (``ClusterEmulator``).
        field_validation: what an unknown field does when the request does not say:
            ``"Strict"`` (400), ``"Warn"`` (a ``Warning`` header) or ``"Ignore"``.
        seed: seed of the generated names and uids.
        history_limit: changes kept for watches; older resourceVersions get ``410 Gone``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: ports.Clock | None = None,
        pod_startup_seconds: float = 0.0,
        emulate: bool = True,
        field_validation: str = "Strict",
        seed: int = 0,
        history_limit: int = 10_000,
    ) -> None:
        self.host = host
        self.port = port
        self.clock: ports.Clock = clock or _WallClock()
        self.field_validation = field_validation
        self.store = ObjectStore(clock=self.clock, rng=random.Random(seed), history_limit=history_limit)
        self.emulator = ClusterEmulator(self.store, startup_seconds=pod_startup_seconds, enabled=emulate)
        self.faults = FaultInjector(self.clock)
        self.requests: list[RecordedRequest] = []
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task | None = None
        self._closing = False

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> KubeApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on ``host:port`` and start the emulation's timer."""
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.emulator.wakeup = asyncio.Event()
        self._ticker = asyncio.create_task(self._tick(), name="kubeapi-emulation")

    async def stop(self) -> None:
        """End open watches, stop the timer, close the listener."""
        self._closing = True
        for watcher in list(self.store.watchers):
            watcher.queue.put_nowait(None)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _tick(self) -> None:
        # Pods become Ready on the clock even when no request arrives, so that watches see it.
        # With an injected clock the wait is capped: that clock may jump while we wait.
        while True:
            due = self.emulator.next_due()
            if due is None:
                self.emulator.wakeup.clear()
                await self.emulator.wakeup.wait()
                continue
            delay = min(max(due - self.clock.now(), 0.0), 0.05)
            await asyncio.sleep(delay)
            self.emulator.sync()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client_configuration(self) -> k8s.Configuration:
        """A ``kubernetes_asyncio`` configuration that points at this server (no auth)."""
        config = k8s.Configuration(host=self.url)
        config.verify_ssl = False
        return config

    def api_client(self) -> k8s.ApiClient:
        """A new ``ApiClient`` on ``client_configuration()``; the caller closes it."""
        return k8s.ApiClient(self.client_configuration())

    def kubeconfig(self, *, namespace: str = "default") -> dict[str, Any]:
        """A kubeconfig document (as a dict) for this server."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kubeapi", "cluster": {"server": self.url}}],
            "users": [{"name": "kubeapi", "user": {"token": "kubeapi"}}],
            "contexts": [{"name": "kubeapi", "context": {"cluster": "kubeapi", "user": "kubeapi", "namespace": namespace}}],
            "current-context": "kubeapi",
        }

    # -- direct access for tests ----------------------------------------------------------------

    def sync(self) -> None:
        """Run the emulation now (pods due by the clock become Ready; workloads reconcile)."""
        self.emulator.sync()

    def put(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace ``obj`` as given, status included, without validation.

        For seeding a test's world (a pod with given conditions, an HPA, ...). Returns the
        stored object.
        """
        obj = copy.deepcopy(dict(obj))
        res = _BY_KIND.get((obj.get("apiVersion"), obj.get("kind")))
        if res is None:
            raise ValueError(f"not served: {obj.get('apiVersion')} {obj.get('kind')}")
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        current = self.store.get(res, meta["namespace"], meta["name"])
        if current is None:
            if res.status_subresource:
                meta.setdefault("generation", 1)
            stored = self.store.create(res, obj)
        else:
            for key in ("uid", "creationTimestamp", "generation"):
                if key in current["metadata"]:
                    meta.setdefault(key, current["metadata"][key])
            stored = self.store.update(res, obj)
        self.emulator.sync()
        return copy.deepcopy(stored)

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object (a copy), or None."""
        obj = self.store.get(_BY_PLURAL[plural], namespace, name)
        return copy.deepcopy(obj)

    def objects(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Copies of the stored objects of ``plural`` (in ``namespace``, or all)."""
        return copy.deepcopy(self.store.list(_BY_PLURAL[plural], namespace))

    def requests_to(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """The logged requests with ``method`` whose path matches the glob ``path``."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper()) and (path is None or fnmatch.fnmatchcase(r.path, path))
        ]

    def clear_requests(self) -> None:
        self.requests.clear()

    # -- HTTP -----------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.path
        ctype = request.headers.get("Content-Type")
        ctype = ctype.split(";")[0].strip().lower() if ctype else None
        at = self.clock.now()
        body: Any = None
        warnings: list[str] = []

        def record(status: int) -> None:
            self.requests.append(RecordedRequest(method, path, dict(request.query), ctype, body, at, status, tuple(warnings)))

        try:
            raw = await request.read()
            if raw and ctype != "application/apply-patch+yaml":
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise bad_request(f"couldn't decode the request body as JSON: {exc}") from exc
            self.faults.check(method, path)
            self.emulator.sync()
            # a watch logs itself (``record``) once its stream is open, so that tests see it while it runs
            response = await self._route(request, method, path, ctype, body, warnings, record)
        except ApiError as exc:
            response = exc.response()
        if not response.prepared:
            record(response.status)
            self.emulator.sync()
        return response

    async def _route(
        self,
        request: web.Request,
        method: str,
        path: str,
        ctype: str | None,
        body: Any,
        warnings: list[str],
        record: Callable[[int], None],
    ) -> web.StreamResponse:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return self._discovery(parts)
        if not rest:
            return self._discovery(parts)
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        res = _BY_PATH.get((group, version, rest[0]))
        if res is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        query = request.query
        dry_run = bool(query.get("dryRun"))
        if name is None:
            if method == "GET":
                if _qbool(query.get("watch")):
                    return await self._watch(request, res, namespace, record)
                return web.json_response(self._list(res, namespace, query))
            if method == "POST" and namespace is not None:
                obj = self._create(res, namespace, body, query, warnings, dry_run=dry_run)
                return self._json(obj, 201, warnings)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {res.qualified}")
        if namespace is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub is None:
            if method == "GET":
                return web.json_response(self._get(res, namespace, name))
            if method == "PUT":
                return self._json(self._replace(res, namespace, name, body, query, warnings, dry_run=dry_run), 200, warnings)
            if method == "PATCH":
                patched = self._patch(res, namespace, name, ctype, body, query, warnings, dry_run=dry_run)
                return self._json(patched, 200, warnings)
            if method == "DELETE":
                return web.json_response(self._delete(res, namespace, name, body, dry_run=dry_run))
        elif sub == "status" and res.status_subresource:
            if method == "GET":
                return web.json_response(self._get(res, namespace, name))
            if method == "PUT":
                obj = self._replace(res, namespace, name, body, query, warnings, dry_run=dry_run, status=True)
                return self._json(obj, 200, warnings)
            if method == "PATCH":
                obj = self._patch(res, namespace, name, ctype, body, query, warnings, dry_run=dry_run, status=True)
                return self._json(obj, 200, warnings)
        elif sub == "scale" and res.scale is not None:
            if method == "GET":
                return web.json_response(self._scale_of(res, self._get(res, namespace, name)))
            if method in ("PUT", "PATCH"):
                scale = self._write_scale(res, namespace, name, method, ctype, body, query, warnings, dry_run=dry_run)
                return self._json(scale, 200, warnings)
        elif sub == "eviction" and res is PODS:
            if method == "POST":
                return web.json_response(self._evict(namespace, name, body, dry_run=dry_run), status=201)
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {res.qualified}/{sub or ''}".rstrip("/"))

    @staticmethod
    def _json(obj: Any, status: int, warnings: list[str]) -> web.Response:
        headers: CIMultiDict[str] = CIMultiDict()
        for w in warnings:
            headers.add("Warning", f'299 - "{w}"')
        return web.json_response(obj, status=status, headers=headers)

    def _discovery(self, parts: list[str]) -> web.Response:
        if parts == ["version"]:
            return web.json_response({"major": "1", "minor": "31", "gitVersion": "v1.31.0-scaleahead-kubeapi"})
        if parts in (["healthz"], ["readyz"], ["livez"]):
            return web.Response(text="ok")
        if parts == ["api"]:
            return web.json_response({"kind": "APIVersions", "versions": ["v1"]})
        if parts == ["apis"]:
            groups = sorted({(r.group, r.version) for r in RESOURCES if r.group})
            return web.json_response({
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                     "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}}
                    for g, v in groups
                ],
            })  # fmt: skip
        gv = None
        if len(parts) == 2 and parts[0] == "api":
            gv = ("", parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            gv = (parts[1], parts[2])
        served = [r for r in RESOURCES if gv is not None and (r.group, r.version) == gv]
        if not served:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        resources = []
        for r in served:
            resources.append({"name": r.plural, "singularName": r.kind.lower(), "namespaced": True, "kind": r.kind, "verbs": verbs})
            if r.status_subresource:
                resources.append(
                    {"name": f"{r.plural}/status", "namespaced": True, "kind": r.kind, "verbs": ["get", "patch", "update"]}
                )
            if r.scale:
                resources.append({
                    "name": f"{r.plural}/scale", "namespaced": True, "group": "autoscaling", "version": "v1",
                    "kind": "Scale", "verbs": ["get", "patch", "update"],
                })  # fmt: skip
            if r is PODS:
                resources.append({
                    "name": "pods/eviction", "namespaced": True, "group": "policy", "version": "v1",
                    "kind": "Eviction", "verbs": ["create"],
                })  # fmt: skip
        return web.json_response(
            {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": served[0].api_version, "resources": resources}
        )

    # -- reads ----------------------------------------------------------------------------------

    def _get(self, res: Resource, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(res, namespace, name)
        if obj is None:
            raise not_found(res, name)
        return obj

    def _filters(self, res: Resource, query: Mapping[str, str]) -> Callable[[Mapping[str, Any]], bool]:
        try:
            labels = parse_label_selector(query.get("labelSelector", ""))
        except ValueError as exc:
            raise bad_request(f"unable to parse requirement: {exc}") from exc
        fields = _parse_field_selector(res, query.get("fieldSelector", ""))

        def accept(obj: Mapping[str, Any]) -> bool:
            if not selector_matches(labels, _labels(obj)):
                return False
            for path, op, value in fields:
                if (_field_value(obj, path) == value) != (op == "="):
                    return False
            return True

        return accept

    def _list(self, res: Resource, namespace: str | None, query: Mapping[str, str]) -> dict[str, Any]:
        accept = self._filters(res, query)
        items = [o for o in self.store.list(res, namespace) if accept(o)]
        meta: dict[str, Any] = {"resourceVersion": str(self.store.revision)}
        if token := query.get("continue"):
            if query.get("resourceVersion"):  # a real server allows at most "0" here; be stricter
                raise bad_request("specifying resource version is not allowed when using continue")
            try:
                after = tuple(json.loads(base64.urlsafe_b64decode(token.encode())))
            except ValueError as exc:
                raise bad_request("invalid continue token") from exc
            items = [o for o in items if (o["metadata"]["namespace"], o["metadata"]["name"]) > after]
        if limit := int(query.get("limit") or 0):
            if len(items) > limit:
                last = items[limit - 1]["metadata"]
                meta["continue"] = base64.urlsafe_b64encode(json.dumps([last["namespace"], last["name"]]).encode()).decode()
                meta["remainingItemCount"] = len(items) - limit
                items = items[:limit]
        if res.builtin:  # the API server leaves kind and apiVersion out of built-in list items
            items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
        return {"apiVersion": res.api_version, "kind": f"{res.kind}List", "metadata": meta, "items": items}

    async def _watch(
        self, request: web.Request, res: Resource, namespace: str | None, record: Callable[[int], None]
    ) -> web.StreamResponse:
        accept = self._filters(res, request.query)
        since = request.query.get("resourceVersion") or ""
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Register before the snapshot; nothing awaits in between, so no change is missed.
        watcher = _Watcher(res, namespace, asyncio.Queue())
        self.store.watchers.add(watcher)
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()

        def event(kind: str, obj: Mapping[str, Any]) -> bytes:
            return (json.dumps({"type": kind, "object": obj}) + "\n").encode()

        def translate(change: Change) -> bytes | None:
            # A label or field selector turns changes into ADDED/DELETED as objects enter or leave it.
            now_in = change.type != "DELETED" and accept(change.object)
            was_in = change.old is not None and accept(change.old)
            if change.type == "DELETED":
                return event("DELETED", change.object) if was_in else None
            if now_in:
                return event("MODIFIED" if was_in else "ADDED", change.object)
            return event("DELETED", change.object) if was_in else None

        try:
            await response.prepare(request)
            record(200)
            backlog: list[bytes] = []
            if since in ("", "0"):
                backlog = [event("ADDED", o) for o in self.store.list(res, namespace) if accept(o)]
                watcher.queue = asyncio.Queue()  # the snapshot already holds everything up to now
            else:
                start = int(since)
                if start < self.store.compacted_revision:
                    gone = ApiError(410, "Expired", f"too old resource version: {start} ({self.store.compacted_revision})")
                    await response.write(event("ERROR", gone.status()))
                    return response
                watcher.queue = asyncio.Queue()
                for change in self.store.history:
                    if change.resource_version > start and change.resource is res and namespace in (None, change.namespace):
                        if (line := translate(change)) is not None:
                            backlog.append(line)
            for line in backlog:
                await response.write(line)
            while not self._closing:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    change = await asyncio.wait_for(watcher.queue.get(), timeout=min(remaining, 1.0))
                except TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        break
                    continue
                if change is None:
                    break
                if (line := translate(change)) is not None:
                    await response.write(line)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client went away
        finally:
            self.store.watchers.discard(watcher)
        return response

    # -- writes ---------------------------------------------------------------------------------

    def _decode(self, res: Resource, body: Any, *, kind: str | None = None, api_version: str | None = None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        kind = kind or res.kind
        api_version = api_version or res.api_version
        got_kind, got_version = body.get("kind"), body.get("apiVersion")
        if got_kind not in (None, "", kind):
            raise bad_request(f"the kind in the data ({got_kind}) does not match the expected kind ({kind})")
        if got_version not in (None, "", api_version):
            raise bad_request(f"the API version in the data ({got_version}) does not match the expected API version ({api_version})")
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = api_version, kind
        if not isinstance(obj.setdefault("metadata", {}), dict):
            raise bad_request("metadata must be an object")
        return obj

    def _check(
        self,
        res: Resource,
        obj: dict[str, Any],
        query: Mapping[str, str],
        warnings: list[str],
        *,
        old: dict[str, Any] | None = None,
        model: str | None = None,
        kind: str | None = None,
    ) -> None:
        """Reject ``obj`` unless it has the official shape and passes the API server's validation."""
        name = obj["metadata"].get("name", "")
        report = ShapeReport()
        model = model or res.model
        if model:
            check_shape(obj, model, "", report)
        else:
            check_shape(obj.get("metadata"), "V1ObjectMeta", "metadata", report)
        if report.wrong_type:
            raise bad_request(f"{kind or res.kind} in version \"{res.version}\" cannot be handled: " + "; ".join(report.wrong_type))
        mode = query.get("fieldValidation") or self.field_validation
        if report.unknown and mode == "Strict":
            raise bad_request("strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in report.unknown))
        if report.unknown and mode == "Warn":
            warnings.extend(f'unknown field "{u}"' for u in report.unknown)
        errors = [FieldError(p, "FieldValueRequired", "Required value") for p in report.required]
        errors.extend(self._semantics(res, obj, old))
        if errors:
            raise invalid(res, name, errors, kind=kind)

    def _semantics(self, res: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
        """The API server's validation beyond the schema, for the checks that matter to scaleahead."""
        errors: list[FieldError] = []
        meta = obj["metadata"]
        name = meta.get("name") or ""
        if not _DNS_SUBDOMAIN.match(name) or len(name) > 253:
            errors.append(_bad_value("metadata.name", name, "a lowercase RFC 1123 subdomain must consist of lower case "
                                     "alphanumeric characters, '-' or '.'"))  # fmt: skip
        annotations = meta.get("annotations") or {}
        if sum(len(k) + len(v) for k, v in annotations.items() if isinstance(v, str)) > ANNOTATIONS_MAX_BYTES:
            too_long = f"Too long: must have at most {ANNOTATIONS_MAX_BYTES} bytes"
            errors.append(FieldError("metadata.annotations", "FieldValueTooLong", too_long))
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        if res.workload:
            replicas = spec.get("replicas")
            if res is ROLLOUTS and replicas is not None and (not isinstance(replicas, int) or isinstance(replicas, bool)):
                errors.append(_bad_value("spec.replicas", replicas, "must be an integer"))
            elif isinstance(replicas, int) and replicas < 0:
                errors.append(_bad_value("spec.replicas", replicas, "must be greater than or equal to 0"))
            selector = spec.get("selector")
            if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
                errors.append(_bad_value("spec.selector", selector, "empty selector is invalid"))
            else:
                template_labels = _get_path(spec, ("template", "metadata", "labels")) or {}
                if not selector_matches(requirements_of(selector), template_labels):
                    why = "`selector` does not match template `labels`"
                    errors.append(_bad_value("spec.template.metadata.labels", template_labels, why))
                if old is not None and res.builtin and _get_path(old, ("spec", "selector")) != selector:
                    errors.append(_bad_value("spec.selector", selector, "field is immutable"))
        if res is PODS and not spec.get("containers"):
            errors.append(FieldError("spec.containers", "FieldValueRequired", "Required value"))
        if res is EVENTS:
            involved = obj.get("involvedObject") or {}
            if involved.get("namespace") not in (None, "", meta.get("namespace")):
                errors.append(_bad_value("involvedObject.namespace", involved.get("namespace"), "does not match event.namespace"))
        if res is LEASES:
            duration = spec.get("leaseDurationSeconds")
            if isinstance(duration, int) and duration <= 0:
                errors.append(_bad_value("spec.leaseDurationSeconds", duration, "must be greater than 0"))
        if res is SCALEDOBJECTS and not _get_path(spec, ("scaleTargetRef", "name")):
            errors.append(FieldError("spec.scaleTargetRef.name", "FieldValueRequired", "Required value"))
        return errors

    def _create(
        self, res: Resource, namespace: str, body: Any, query: Mapping[str, str], warnings: list[str], *, dry_run: bool
    ) -> dict[str, Any]:
        obj = self._decode(res, body)
        meta = obj["metadata"]
        if meta.get("namespace") not in (None, "", namespace):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        meta["namespace"] = namespace
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self.store.generate_name(meta["generateName"])
        if not meta.get("name"):
            required = FieldError("metadata.name", "FieldValueRequired", "Required value: name or generateName is required")
            raise invalid(res, "", [required])
        for key in ("uid", "creationTimestamp", "deletionTimestamp", "managedFields", "selfLink"):
            meta.pop(key, None)
        # status belongs to the status subresource; a new pod starts Pending
        if res is PODS:
            obj["status"] = {"phase": "Pending"}
        elif res.status_subresource:
            obj.pop("status", None)
        if res.status_subresource:
            meta["generation"] = 1
        if res.workload and isinstance(obj.get("spec"), dict):
            obj["spec"].setdefault("replicas", 1)
        self._check(res, obj, query, warnings)
        if self.store.get(res, namespace, meta["name"]) is not None:
            raise already_exists(res, meta["name"])
        if dry_run:
            return obj
        return self.store.create(res, obj)

    def _admit_update(
        self,
        res: Resource,
        current: dict[str, Any],
        new: dict[str, Any],
        query: Mapping[str, str],
        warnings: list[str],
        *,
        dry_run: bool,
        status: bool,
    ) -> dict[str, Any]:
        """Common tail of PUT and PATCH: preconditions, what each endpoint may change, validation, commit."""
        meta, cur_meta = new["metadata"], current["metadata"]
        name = cur_meta["name"]
        if meta.get("name") not in (None, "", name):
            raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
        if meta.get("namespace") not in (None, "", cur_meta["namespace"]):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if meta.get("resourceVersion") and meta["resourceVersion"] != cur_meta["resourceVersion"]:
            raise conflict(res, name)
        if meta.get("uid") and meta["uid"] != cur_meta["uid"]:
            raise conflict(res, name)
        if status:
            # the status endpoint changes status only
            result = copy.deepcopy(current)
            result["status"] = new.get("status")
            if result["status"] is None:
                result.pop("status")
        else:
            result = new
            if res.status_subresource:
                if "status" in current:
                    result["status"] = copy.deepcopy(current["status"])
                else:
                    result.pop("status", None)
            for key in ("uid", "creationTimestamp", "namespace", "name", "generation"):
                if key in cur_meta:
                    meta[key] = cur_meta[key]
            for key in ("managedFields", "selfLink"):
                meta.pop(key, None)
        result["metadata"]["resourceVersion"] = cur_meta["resourceVersion"]
        if res.status_subresource and not status and _spec_of(result) != _spec_of(current):
            result["metadata"]["generation"] = cur_meta.get("generation", 1) + 1
        self._check(res, result, query, warnings, old=current)
        if result == current or dry_run:
            return result  # a no-op write does not bump the resourceVersion
        return self.store.update(res, result)

    def _replace(
        self,
        res: Resource,
        namespace: str,
        name: str,
        body: Any,
        query: Mapping[str, str],
        warnings: list[str],
        *,
        dry_run: bool,
        status: bool = False,
    ) -> dict[str, Any]:
        current = self._get(res, namespace, name)
        new = self._decode(res, body)
        return self._admit_update(res, current, new, query, warnings, dry_run=dry_run, status=status)

    def _apply_patch(self, res: Resource, doc: dict[str, Any], ctype: str | None, body: Any) -> dict[str, Any]:
        kind = _PATCH_TYPES.get(ctype or "")
        accepted = "application/json-patch+json, application/merge-patch+json"
        if res.builtin:
            accepted += ", application/strategic-merge-patch+json"
        if kind is None or (kind == "strategic" and not res.builtin):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: {accepted}",
            )
        try:
            if kind == "json":
                if not isinstance(body, list):
                    raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
                patched = json_patch(doc, body)
            elif not isinstance(body, dict):
                raise bad_request("the body of a merge patch must be a JSON object")
            elif kind == "merge":
                patched = merge_patch(doc, body)
            else:
                patched = strategic_merge_patch(doc, body)
        except ValueError as exc:
            raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {exc}") from exc
        if not isinstance(patched, dict):
            raise ApiError(422, "Invalid", "the patch does not result in an object")
        return patched

    def _patch(
        self,
        res: Resource,
        namespace: str,
        name: str,
        ctype: str | None,
        body: Any,
        query: Mapping[str, str],
        warnings: list[str],
        *,
        dry_run: bool,
        status: bool = False,
    ) -> dict[str, Any]:
        current = self._get(res, namespace, name)
        patched = self._apply_patch(res, copy.deepcopy(current), ctype, body)
        new = self._decode(res, patched)
        return self._admit_update(res, current, new, query, warnings, dry_run=dry_run, status=status)

    def _delete(self, res: Resource, namespace: str, name: str, body: Any, *, dry_run: bool) -> dict[str, Any]:
        current = self._get(res, namespace, name)
        pre = (body or {}).get("preconditions") if isinstance(body, dict) else None
        if pre:
            if pre.get("resourceVersion") and pre["resourceVersion"] != current["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            if pre.get("uid") and pre["uid"] != current["metadata"]["uid"]:
                raise conflict(res, name)
        if dry_run:
            return current
        return self.store.delete(res, namespace, name)

    # -- scale ----------------------------------------------------------------------------------

    def _scale_of(self, res: Resource, obj: Mapping[str, Any]) -> dict[str, Any]:
        """The ``autoscaling/v1`` Scale the workload's ``scale`` subresource shows."""
        spec = res.scale
        assert spec is not None
        if spec.selector_path is None:
            selector = format_selector(_get_path(obj, ("spec", "selector")))
        else:
            selector = _get_path(obj, spec.selector_path) or ""
        meta = obj["metadata"]
        status: dict[str, Any] = {"replicas": _get_path(obj, spec.status_replicas) or 0}
        if selector:
            status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"],
                "creationTimestamp": meta["creationTimestamp"],
            },
            "spec": {"replicas": _get_path(obj, spec.spec_replicas) or 0},
            "status": status,
        }

    def _write_scale(
        self,
        res: Resource,
        namespace: str,
        name: str,
        method: str,
        ctype: str | None,
        body: Any,
        query: Mapping[str, str],
        warnings: list[str],
        *,
        dry_run: bool,
    ) -> dict[str, Any]:
        current = self._get(res, namespace, name)
        scale = self._scale_of(res, current)
        if method == "PATCH":
            new = self._apply_patch(res, copy.deepcopy(scale), ctype, body)
        else:
            new = body
        new = self._decode(res, new, kind="Scale", api_version="autoscaling/v1")
        meta = new["metadata"]
        if meta.get("name") not in (None, "", name):
            raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
        if meta.get("resourceVersion") and meta["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise conflict(res, name)
        report = ShapeReport()
        check_shape(new, "V1Scale", "", report)
        if report.wrong_type:
            raise bad_request('Scale in version "v1" cannot be handled: ' + "; ".join(report.wrong_type))
        mode = query.get("fieldValidation") or self.field_validation
        if report.unknown and mode == "Strict":
            raise bad_request("strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in report.unknown))
        if report.unknown and mode == "Warn":
            warnings.extend(f'unknown field "{u}"' for u in report.unknown)
        replicas = _get_path(new, ("spec", "replicas"))
        if replicas is None:
            replicas = 0  # omitempty: an absent spec.replicas is zero, as on a real server
        if replicas < 0:
            negative = _bad_value("spec.replicas", replicas, "must be greater than or equal to 0")
            raise invalid(res, name, [negative], kind="Scale.autoscaling")
        if replicas == _get_path(current, res.scale.spec_replicas) or dry_run:
            updated = copy.deepcopy(current)
            _set_path(updated, res.scale.spec_replicas, replicas)
            return self._scale_of(res, updated)
        updated = copy.deepcopy(current)
        _set_path(updated, res.scale.spec_replicas, replicas)
        updated["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        return self._scale_of(res, self.store.update(res, updated))

    # -- eviction -------------------------------------------------------------------------------

    def _evict(self, namespace: str, name: str, body: Any, *, dry_run: bool) -> dict[str, Any]:
        pod = self._get(PODS, namespace, name)
        # as for any body, a missing kind and apiVersion default to the endpoint's (policy/v1 Eviction)
        if (
            not isinstance(body, dict)
            or body.get("kind") not in (None, "", "Eviction")
            or body.get("apiVersion") not in (None, "", "policy/v1", "policy/v1beta1")
        ):
            raise bad_request("the body of an eviction must be a policy/v1 Eviction")
        report = ShapeReport()
        check_shape(body, "V1Eviction", "", report)
        if report.wrong_type or report.unknown:
            problems = report.wrong_type + [f'unknown field "{u}"' for u in report.unknown]
            raise bad_request("Eviction cannot be handled: " + "; ".join(problems))
        if _get_path(body, ("metadata", "name")) not in (None, name):
            raise bad_request("name in URL does not match name in Eviction object")
        labels = _labels(pod)
        budgets = [
            b for b in self.store.list(PDBS, namespace)
            if selector_matches(requirements_of(_get_path(b, ("spec", "selector"))), labels)
        ]  # fmt: skip
        if len(budgets) > 1:
            raise ApiError(
                500,
                "InternalError",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            )
        if budgets:
            budget = budgets[0]
            healthy, desired = self._budget_status(budget)
            allowed = healthy - 1 >= desired if pod_is_ready(pod) else healthy >= desired
            if not allowed:
                raise ApiError(
                    429,
                    "TooManyRequests",
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    details={
                        "causes": [
                            {
                                "reason": "DisruptionBudget",
                                "message": f"The disruption budget {budget['metadata']['name']} needs {desired} "
                                f"healthy pods and has {healthy} currently",
                            }
                        ]
                    },
                )
        if not dry_run:
            self.store.delete(PODS, namespace, name)
            for budget in budgets:
                self._budget_status(budget)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def _budget_status(self, budget: dict[str, Any]) -> tuple[int, int]:
        """``(currentHealthy, desiredHealthy)`` of a PodDisruptionBudget; its status is updated."""
        reqs = requirements_of(_get_path(budget, ("spec", "selector")))
        pods = [p for p in self.store.list(PODS, budget["metadata"]["namespace"]) if selector_matches(reqs, _labels(p))]
        expected = len(pods)
        healthy = sum(pod_is_ready(p) for p in pods)
        spec = budget.get("spec") or {}

        def scaled(value: Any, round_up: bool) -> int:
            if isinstance(value, str) and value.endswith("%"):
                exact = expected * int(value[:-1]) / 100
                return int(-(-exact // 1)) if round_up else int(exact)
            return int(value)

        if spec.get("minAvailable") is not None:
            desired = scaled(spec["minAvailable"], True)
        elif spec.get("maxUnavailable") is not None:
            desired = max(0, expected - scaled(spec["maxUnavailable"], True))
        else:
            desired = 0
        status = {
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "disruptionsAllowed": max(0, healthy - desired),
            "observedGeneration": budget["metadata"].get("generation", 1),
        }
        if budget.get("status") != status:
            updated = copy.deepcopy(budget)
            updated["status"] = status
            self.store.update(PDBS, updated)
        return healthy, desired


def _spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Everything but metadata and status: what bumps ``metadata.generation`` when it changes."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


# ---------------------------------------------------------------------------------------------
# Builders (wire-format dicts, for tests and the demo)
# ---------------------------------------------------------------------------------------------


def _workload(
    api_version: str,
    kind: str,
    name: str,
    *,
    namespace: str,
    replicas: int | None,
    labels: Mapping[str, str] | None,
    annotations: Mapping[str, str] | None,
    startup_seconds: float | None,
    image: str,
) -> dict[str, Any]:
    labels = dict(labels or {"app": name})
    template_meta: dict[str, Any] = {"labels": labels}
    if startup_seconds is not None:
        template_meta["annotations"] = {STARTUP_ANNOTATION: str(startup_seconds)}
    obj: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": template_meta, "spec": {"containers": [{"name": "main", "image": image}]}},
        },
    }
    if replicas is not None:
        obj["spec"]["replicas"] = replicas
    if annotations:
        obj["metadata"]["annotations"] = dict(annotations)
    return obj


def make_deployment(
    name: str,
    *,
    namespace: str = "default",
    replicas: int | None = 1,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    startup_seconds: float | None = None,
    image: str = "registry.k8s.io/pause:3.9",
) -> dict[str, Any]:
    """An ``apps/v1`` Deployment selecting ``labels`` (default ``app: <name>``)."""
    return _workload("apps/v1", "Deployment", name, namespace=namespace, replicas=replicas, labels=labels,
                     annotations=annotations, startup_seconds=startup_seconds, image=image)  # fmt: skip


def make_statefulset(
    name: str,
    *,
    namespace: str = "default",
    replicas: int | None = 1,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    startup_seconds: float | None = None,
    image: str = "registry.k8s.io/pause:3.9",
) -> dict[str, Any]:
    """An ``apps/v1`` StatefulSet (``serviceName`` = its name)."""
    obj = _workload("apps/v1", "StatefulSet", name, namespace=namespace, replicas=replicas, labels=labels,
                    annotations=annotations, startup_seconds=startup_seconds, image=image)  # fmt: skip
    obj["spec"]["serviceName"] = name
    return obj


def make_rollout(
    name: str,
    *,
    namespace: str = "default",
    replicas: int | None = 1,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    startup_seconds: float | None = None,
    image: str = "registry.k8s.io/pause:3.9",
) -> dict[str, Any]:
    """An Argo ``argoproj.io/v1alpha1`` Rollout (canary strategy)."""
    obj = _workload("argoproj.io/v1alpha1", "Rollout", name, namespace=namespace, replicas=replicas, labels=labels,
                    annotations=annotations, startup_seconds=startup_seconds, image=image)  # fmt: skip
    obj["spec"]["strategy"] = {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1m"}}]}}
    return obj


def make_pod(
    name: str,
    *,
    namespace: str = "default",
    labels: Mapping[str, str] | None = None,
    created_at: float | None = None,
    ready_at: float | None = None,
    phase: str | None = None,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A Pod with the status a kubelet would report: Ready at ``ready_at``, or still starting.

    For ``KubeApiServer.put`` (HTTP creation resets the status, as a real server does).
    ``created_at``/``ready_at`` are Unix seconds; ``owner`` is the workload that controls it.
    """
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels or {})}
    if created_at is not None:
        meta["creationTimestamp"] = rfc3339(created_at)
    if owner is not None:
        meta["ownerReferences"] = [{
            "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True,
        }]  # fmt: skip
    conditions = []
    if created_at is not None:
        conditions.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": rfc3339(created_at)})
    if ready_at is not None:
        conditions.append({"type": "Ready", "status": "True", "lastTransitionTime": rfc3339(ready_at)})
    elif created_at is not None:
        conditions.append(
            {"type": "Ready", "status": "False", "lastTransitionTime": rfc3339(created_at), "reason": "ContainersNotReady"}
        )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}]},
        "status": {"phase": phase or ("Running" if ready_at is not None else "Pending"), "conditions": conditions},
    }


def make_hpa(name: str, *, target_kind: str, target_name: str, namespace: str = "default",
             target_api_version: str = "apps/v1", max_replicas: int = 10) -> dict[str, Any]:  # fmt: skip
    """An ``autoscaling/v2`` HorizontalPodAutoscaler on a CPU target."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": target_api_version, "kind": target_kind, "name": target_name},
            "minReplicas": 1,
            "maxReplicas": max_replicas,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
            ],
        },
    }


def make_scaled_object(name: str, *, target_name: str, namespace: str = "default",
                       target_kind: str | None = None, target_api_version: str | None = None) -> dict[str, Any]:  # fmt: skip
    """A KEDA ``keda.sh/v1alpha1`` ScaledObject (kind and apiVersion of the target default as in KEDA)."""
    ref: dict[str, Any] = {"name": target_name}
    if target_kind:
        ref["kind"] = target_kind
    if target_api_version:
        ref["apiVersion"] = target_api_version
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"scaleTargetRef": ref, "triggers": [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}}]},
    }


def make_pdb(name: str, *, labels: Mapping[str, str], namespace: str = "default",
             min_available: int | str | None = None, max_unavailable: int | str | None = None) -> dict[str, Any]:  # fmt: skip
    """A ``policy/v1`` PodDisruptionBudget over the pods with ``labels``."""
    spec: dict[str, Any] = {"selector": {"matchLabels": dict(labels)}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


# ---------------------------------------------------------------------------------------------
# Standalone
# ---------------------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    server = KubeApiServer(host=args.host, port=args.port, pod_startup_seconds=args.pod_startup_seconds, seed=args.seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        if args.kubeconfig:
            import yaml

            with open(args.kubeconfig, "w", encoding="utf-8") as fh:
                yaml.safe_dump(server.kubeconfig(), fh, sort_keys=False)
        print(f"kubeapi: serving on {server.url}" + (f"; kubeconfig in {args.kubeconfig}" if args.kubeconfig else ""), flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.sim.kubeapi", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="TCP port (0: a free one)")
    parser.add_argument("--pod-startup-seconds", type=float, default=5.0, help="emulated time from pod creation to Ready")
    parser.add_argument("--kubeconfig", help="write a kubeconfig for this server to this file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
