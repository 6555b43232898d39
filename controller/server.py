"""The controller's HTTP server and its structured logs: what an operator sees of a running controller.

Routes of ``make_app``:

* ``/metrics`` -- the Prometheus text format of the telemetry registry, served by
  ``prometheus_client.aiohttp.make_aiohttp_handler`` (prometheus-client >= 0.21), or by
  ``generate_latest`` with the same content type on an older client.
* ``/healthz`` -- liveness: 200 while the control loop is alive, 503 with a JSON reason when it
  stopped or stalled, so the kubelet restarts a wedged controller.
* ``/readyz`` -- readiness: 200 once the settings are loaded and the first tick completed.
* ``/debug/decisions`` -- the last decisions per workload, with their stages, as JSON
  (``?workload=NAME`` for one workload, ``?limit=N`` for the newest N of each).

Design choices a reader might question:

* **Liveness is a heartbeat, not "the process answers HTTP".** The server runs on the same event
  loop as the ticks, so a loop that is blocked cannot answer at all (the probe times out), but a
  tick task that died or hangs on an await leaves the server answering. ``Health`` therefore
  expects ``beat()`` from the loop at least every ``stall_after_seconds`` and reports the loop
  dead after that.
* **Health reads its own monotonic clock**, not the controller's ``Clock``: it measures how long
  the real process has gone without a tick; under simulated time the loop does not run this
  server anyway.
* **No access log by default.** A scrape every 15 s and two probes every 10 s would drown the
  one-line-per-decision log; ``serve(..., access_log=True)`` turns it on.
* **JSON logs** carry ``time`` (RFC 3339, UTC), ``level``, ``logger``, ``message`` and every
  ``extra`` field, one record per line, so a log pipeline can filter on ``workload`` or ``reason``
  without parsing prose.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from controller.domain import Decision
from controller.telemetry import Telemetry

try:  # prometheus-client >= 0.21
    from prometheus_client.aiohttp import make_aiohttp_handler
except ImportError:  # pragma: no cover - older prometheus-client
    make_aiohttp_handler = None

__all__ = [
    "DecisionLog",
    "Health",
    "HealthCheck",
    "JsonFormatter",
    "RunningServer",
    "configure_json_logging",
    "decision_to_dict",
    "log_decision",
    "make_app",
    "serve",
]

TELEMETRY_KEY = web.AppKey("telemetry", Telemetry)
HEALTH_KEY = web.AppKey("health", object)
DECISIONS_KEY = web.AppKey("decisions", object)


# ---------------------------------------------------------------------------------------------
# Health
# ---------------------------------------------------------------------------------------------


class HealthCheck(Protocol):
    """What ``/healthz`` and ``/readyz`` ask."""

    def alive(self) -> bool:
        """Whether the control loop is running and not stalled."""
        ...

    def ready(self) -> bool:
        """Whether the controller can do its work: settings loaded and a first tick completed."""
        ...


class Health:
    """Liveness and readiness of the controller, fed by the loop.

    The loop calls ``beat()`` at every tick (start or end), ``settings_loaded()`` once valid
    settings are in use, ``tick_completed()`` after each tick, and ``stop(reason)`` when it ends.

    Args:
        stall_after_seconds: Seconds without a ``beat()`` after which the loop counts as stalled
            (not alive). Choose it well above the tick interval plus the longest tick, e.g.
            ``4 * interval_seconds + 60``. Also the grace period before the first beat.
        now: Monotonic time source in seconds (``time.monotonic``); tests inject their own.
    """

    def __init__(self, *, stall_after_seconds: float = 120.0, now: Callable[[], float] = time.monotonic) -> None:
        if stall_after_seconds <= 0:
            raise ValueError("stall_after_seconds must be > 0")
        self.stall_after_seconds = stall_after_seconds
        self._now = now
        self._last_beat = now()  # the grace period before the first tick starts counting here
        self._settings_loaded = False
        self._ticks_completed = 0
        self._stopped: str | None = None

    def beat(self) -> None:
        """The loop is alive now."""
        self._last_beat = self._now()

    def settings_loaded(self) -> None:
        """Valid settings are in use (the first load succeeded)."""
        self._settings_loaded = True

    def tick_completed(self) -> None:
        """A tick finished (with or without errors in single workloads); also a heartbeat."""
        self._ticks_completed += 1
        self.beat()

    def stop(self, reason: str) -> None:
        """The loop ended or failed for good: report not alive with ``reason`` from now on."""
        self._stopped = reason

    def not_alive_reason(self) -> str | None:
        """Why the loop counts as dead, or ``None`` while it is alive."""
        if self._stopped is not None:
            return f"control loop stopped: {self._stopped}"
        silent = self._now() - self._last_beat
        if silent > self.stall_after_seconds:
            return f"control loop stalled: no tick for {silent:.0f} s (limit {self.stall_after_seconds:g} s)"
        return None

    def not_ready_reason(self) -> str | None:
        """Why the controller is not ready, or ``None`` when it is."""
        dead = self.not_alive_reason()
        if dead is not None:
            return dead
        if not self._settings_loaded:
            return "settings not loaded yet"
        if self._ticks_completed == 0:
            return "first tick not completed yet"
        return None

    def alive(self) -> bool:
        """Whether the loop runs and ticked within ``stall_after_seconds``."""
        return self.not_alive_reason() is None

    def ready(self) -> bool:
        """Whether the loop is alive, settings are loaded and a first tick completed."""
        return self.not_ready_reason() is None


# ---------------------------------------------------------------------------------------------
# The decision log behind /debug/decisions
# ---------------------------------------------------------------------------------------------


def decision_to_dict(decision: Decision, *, at: float | None = None) -> dict[str, Any]:
    """A decision as plain JSON-ready data.

    Args:
        decision: The decision.
        at: When it was made (Unix seconds); adds ``at`` and ``time`` (RFC 3339, UTC) when given.

    Returns:
        ``{time, at, kind, target, from, to, reason, message, stages: [{stage, value, reason}]}``.
    """
    data: dict[str, Any] = {}
    if at is not None:
        data["time"] = _rfc3339(at)
        data["at"] = at
    data.update(
        kind=decision.kind,
        target=decision.target,
        **{"from": decision.from_value, "to": decision.to_value},
        reason=str(decision.reason),
        message=decision.message,
        stages=[{"stage": name, "value": value, "reason": str(reason)} for name, value, reason in decision.stages],
    )
    return data


@dataclass(frozen=True, slots=True)
class _Entry:
    at: float
    decision: Decision


class DecisionLog:
    """A ring buffer of the last decisions of each workload, for ``/debug/decisions``.

    Args:
        maxlen_per_workload: How many decisions are kept per workload; older ones drop out.
    """

    def __init__(self, maxlen_per_workload: int = 50) -> None:
        if maxlen_per_workload < 1:
            raise ValueError("maxlen_per_workload must be >= 1")
        self.maxlen_per_workload = maxlen_per_workload
        self._entries: dict[str, deque[_Entry]] = {}

    def add(self, workload: str, at: float, decision: Decision) -> None:
        """Keep ``decision``, made for ``workload`` at ``at`` (Unix seconds)."""
        entries = self._entries.get(workload)
        if entries is None:
            entries = self._entries[workload] = deque(maxlen=self.maxlen_per_workload)
        entries.append(_Entry(at, decision))

    def forget(self, workload: str) -> None:
        """Drop the decisions of a workload that is no longer managed."""
        self._entries.pop(workload, None)

    def snapshot(self, *, workload: str | None = None, limit: int | None = None) -> dict[str, list[dict[str, Any]]]:
        """The kept decisions as JSON-ready data, oldest first within each workload.

        Args:
            workload: Only this workload (an empty result when it has none).
            limit: Only the newest ``limit`` decisions of each workload.

        Returns:
            Workload name -> list of ``decision_to_dict`` results, workloads sorted by name.
        """
        names = sorted(self._entries) if workload is None else [workload] if workload in self._entries else []
        result: dict[str, list[dict[str, Any]]] = {}
        for name in names:
            entries = list(self._entries[name])
            if limit is not None:
                entries = entries[-limit:] if limit > 0 else []
            result[name] = [decision_to_dict(entry.decision, at=entry.at) for entry in entries]
        return result


# ---------------------------------------------------------------------------------------------
# The application
# ---------------------------------------------------------------------------------------------


def make_app(
    *,
    telemetry: Telemetry,
    registry: CollectorRegistry | None = None,
    health: HealthCheck,
    decisions: DecisionLog,
) -> web.Application:
    """Build the aiohttp application with ``/metrics``, ``/healthz``, ``/readyz`` and ``/debug/decisions``.

    Args:
        telemetry: The controller's metrics (kept in the app as ``TELEMETRY_KEY``).
        registry: The registry ``/metrics`` exposes; ``telemetry.registry`` when ``None``.
        health: Answers liveness and readiness; a ``Health`` also gives the reason of a 503.
        decisions: The decision log behind ``/debug/decisions``.

    Returns:
        The application, to be run with ``serve``.
    """
    registry = telemetry.registry if registry is None else registry
    app = web.Application()
    app[TELEMETRY_KEY] = telemetry
    app[HEALTH_KEY] = health
    app[DECISIONS_KEY] = decisions

    if make_aiohttp_handler is not None:
        # gzip when the scraper accepts it (Prometheus does), as client_python's own servers do.
        metrics_handler = make_aiohttp_handler(registry)
    else:  # pragma: no cover - prometheus-client < 0.21

        async def metrics_handler(request: web.Request) -> web.Response:
            return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        if health.alive():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "unavailable", "reason": _reason(health, "not_alive_reason")}, status=503)

    async def readyz(request: web.Request) -> web.Response:
        if health.ready():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "unavailable", "reason": _reason(health, "not_ready_reason")}, status=503)

    async def debug_decisions(request: web.Request) -> web.Response:
        limit_text = request.query.get("limit")
        limit: int | None = None
        if limit_text is not None:
            try:
                limit = int(limit_text)
            except ValueError:
                return web.json_response({"error": f"limit must be an integer, got {limit_text!r}"}, status=400)
        snapshot = decisions.snapshot(workload=request.query.get("workload"), limit=limit)
        return web.json_response({"workloads": snapshot})

    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/debug/decisions", debug_decisions)
    return app


def _reason(health: HealthCheck, method: str) -> str:
    explain = getattr(health, method, None)
    reason = explain() if callable(explain) else None
    return reason or "unavailable"


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A server started by ``serve``: where it listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8080``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@contextlib.asynccontextmanager
async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    access_log: bool = False,
    shutdown_timeout: float = 5.0,
) -> AsyncIterator[RunningServer]:
    """Serve ``app`` on ``host``:``port`` for the duration of the ``async with`` block.

    Args:
        app: The application (``make_app``).
        host: Address to bind (``0.0.0.0`` in a pod, ``127.0.0.1`` in tests).
        port: TCP port; 0 binds a free port, reported in the yielded ``RunningServer.port``.
        access_log: Log every request to the ``aiohttp.access`` logger.
        shutdown_timeout: Seconds open requests get to finish when the block exits.

    Yields:
        Where the server listens.
    """
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        shutdown_timeout=shutdown_timeout,
        handle_signals=False,  # the controller's run() owns SIGTERM
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield RunningServer(host=bound_host, port=bound_port)
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------------------------------------
# Structured logs
# ---------------------------------------------------------------------------------------------

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line.

    Keys: ``time`` (RFC 3339, UTC, milliseconds), ``level``, ``logger``, ``message``, then every
    ``extra`` field, and ``exception`` with the traceback when there is one. Values JSON cannot
    hold are written with ``str()``; NaN and infinities as strings, so every line is strict JSON.
    """

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in data:
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(_strict(data), default=str, ensure_ascii=False, separators=(",", ":"))


def configure_json_logging(level: int | str = logging.INFO, *, stream: IO[str] | None = None) -> logging.Handler:
    """Make every log record of the process one JSON line on ``stream`` (stderr by default).

    Replaces the root logger's handlers (they are detached, not closed) and sets its level.

    Args:
        level: The root level (``logging.INFO`` or ``"INFO"``).
        stream: Where the lines go.

    Returns:
        The installed handler (to remove it again, e.g. in tests).
    """
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def log_decision(logger: logging.Logger, workload: str, decision: Decision, *, level: int = logging.INFO, **fields: Any) -> None:
    """Write one log line for one decision, with its stages as structured fields.

    The line's extra fields are ``workload``, ``kind``, ``target``, ``from_replicas``,
    ``to_replicas``, ``reason``, ``detail`` (the decision's message), ``stages`` (a list of
    ``{stage, value, reason}``) and ``fields``. A field whose name a log record already uses
    (``name``, ``msg``, ...) gets a trailing underscore instead of breaking the call.

    Args:
        logger: Where to log.
        workload: The workload label.
        decision: The decision.
        level: Log level of the line.
        **fields: More context (``mode``, ``dry_run``, ``at``, ...).
    """
    extra: dict[str, Any] = {
        "workload": workload,
        "kind": decision.kind,
        "target": decision.target,
        "from_replicas": decision.from_value,
        "to_replicas": decision.to_value,
        "reason": str(decision.reason),
        "detail": decision.message,
        "stages": [{"stage": name, "value": value, "reason": str(reason)} for name, value, reason in decision.stages],
    }
    for key, value in fields.items():
        extra[f"{key}_" if key in _RECORD_ATTRIBUTES else key] = value
    arrow = f"{decision.from_value} -> {decision.to_value}"
    logger.log(level, "%s: %s %s (%s)", workload, decision.kind, arrow, decision.reason, extra=extra)


def _rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _strict(value: Any) -> Any:
    """Replace non-finite floats (invalid in strict JSON) by strings, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value
