"""A real Prometheus server for the tests and the local demo, with history backfill and a live exporter.

The Prometheus adapter is tested against the real server (the Debian package
``prometheus``, which also ships ``promtool``), not against recorded JSON: the
parts that matter (PromQL evaluation, lookback and staleness, ``rate()``
extrapolation, NaN/Inf results, the 11,000-points limit of range queries) are
the server's behaviour, and a recording would only show what we believed it to be.

Three pieces:

- :class:`PrometheusServer` starts ``prometheus`` on a free loopback port with a
  temporary data directory and a generated configuration, waits for ``/-/ready``
  and stops it with SIGTERM (then SIGKILL). ``stop()`` keeps the port and the
  data directory, so ``start()`` again is a restart: the tests use it to take
  Prometheus away mid-run and bring it back.
- :meth:`PrometheusServer.backfill` writes history as OpenMetrics text and turns
  it into TSDB blocks with ``promtool tsdb create-blocks-from openmetrics``.
  Since Prometheus 2.39 overlapping blocks are always allowed (the flag
  ``--storage.tsdb.allow-overlapping-blocks`` is deprecated and a no-op in 2.42),
  so backfilled history may overlap the live head. The server only discovers
  new blocks on start (or at its next compaction, up to a minute later), so
  backfilling a running server restarts it. Retention is measured from the
  newest block, not from the wall clock; the default of ten years keeps any
  history a test writes.
- :class:`MetricsExporter` is a small aiohttp server exposing series the
  caller sets (per-pod request counters, gauges), added as a scrape target so
  that tests and the demo have a live, scraped series.

Everything here is blocking except the exporter and the ``async with`` forms,
which run the blocking parts in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client import aiohttp as prometheus_aiohttp
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

DEBIAN_PACKAGE = "prometheus"
"""The Debian package that provides both ``prometheus`` and ``promtool``."""

MetricKind = Literal["counter", "gauge"]


class PrometheusNotInstalled(RuntimeError):
    """``prometheus`` or ``promtool`` is not on PATH."""


class PrometheusError(RuntimeError):
    """The server failed to start, become ready or reload, or ``promtool`` failed; the message includes the log."""


def find_executable(name: str) -> str:
    """Return the path of ``name`` (``prometheus`` or ``promtool``) on PATH.

    Raises:
        PrometheusNotInstalled: naming the Debian package that provides it.
    """
    path = shutil.which(name)
    if path is None:
        raise PrometheusNotInstalled(
            f"{name!r} is not on PATH; install the Debian package {DEBIAN_PACKAGE!r} "
            f"(apt-get install -y {DEBIAN_PACKAGE}), as .ci/setup does"
        )
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on ``host`` a moment ago (the caller must still handle a lost race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- backfill


@dataclass(frozen=True)
class BackfillSeries:
    """One series of history to backfill.

    Attributes:
        name: the sample name as Prometheus stores it; a counter's must end in
            ``_total`` (OpenMetrics names the family without the suffix).
        labels: label names to values (any UTF-8 string; escaped on writing).
        timestamps: Unix seconds, strictly increasing.
        values: one value per timestamp.
        kind: ``"counter"`` or ``"gauge"`` (the OpenMetrics ``# TYPE``).
    """

    name: str
    labels: Mapping[str, str]
    timestamps: np.ndarray
    values: np.ndarray
    kind: MetricKind = "gauge"

    def __post_init__(self) -> None:
        ts = np.asarray(self.timestamps, dtype=float)
        vs = np.asarray(self.values, dtype=float)
        object.__setattr__(self, "timestamps", ts)
        object.__setattr__(self, "values", vs)
        object.__setattr__(self, "labels", dict(self.labels))
        if ts.shape != vs.shape or ts.ndim != 1:
            raise ValueError(
                f"{self.name}: timestamps and values must be 1-d arrays of one length, got {ts.shape} and {vs.shape}"
            )
        if not np.all(np.isfinite(ts)) or np.any(np.diff(ts) <= 0):
            raise ValueError(f"{self.name}: timestamps must be finite and strictly increasing")
        if self.kind not in ("counter", "gauge"):
            raise ValueError(f"{self.name}: kind must be 'counter' or 'gauge', got {self.kind!r}")
        if self.kind == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"{self.name}: a counter's sample name must end in '_total'")


def gauge_series(name: str, labels: Mapping[str, str], timestamps: Sequence[float] | np.ndarray,
                 values: Sequence[float] | np.ndarray) -> BackfillSeries:
    """A gauge: Prometheus stores ``values`` as they are, so ``name{labels}`` at a sample time returns that sample."""
    return BackfillSeries(name=name, labels=labels, timestamps=np.asarray(timestamps, float),
                          values=np.asarray(values, float), kind="gauge")


def counter_from_load(timestamps: Sequence[float] | np.ndarray, load_per_second: Sequence[float] | np.ndarray, *,
                      labels: Mapping[str, str], name: str = "http_requests_total",
                      start_value: float = 0.0) -> BackfillSeries:
    """A cumulative counter whose ``rate()`` recovers ``load_per_second``.

    ``load_per_second[i]`` is the rate over the interval that ends at
    ``timestamps[i]``, so the counter grows by ``load[i] * (t[i] - t[i-1])``
    there (``load[0]`` is unused: the counter starts at ``start_value``).
    ``rate(name[w])`` at a time whose window lies on a stretch of constant load
    returns that load exactly (``rate`` extrapolates linearly to the window's
    edges); across a change it returns the mean over the samples in the window.

    Args:
        timestamps: Unix seconds, strictly increasing.
        load_per_second: requests per second, non-negative.
        labels: e.g. ``{"namespace": "shop", "pod": "web-1"}``.
        name: the counter's sample name (ends in ``_total``).
        start_value: the counter's first value.
    """
    ts = np.asarray(timestamps, dtype=float)
    load = np.asarray(load_per_second, dtype=float)
    if ts.shape != load.shape:
        raise ValueError(f"timestamps and load_per_second differ in shape: {ts.shape} and {load.shape}")
    if np.any(load < 0) or not np.all(np.isfinite(load)):
        raise ValueError("load_per_second must be finite and non-negative (a counter never decreases)")
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError(f"{name}: a counter needs at least one timestamp, got shape {ts.shape}")
    increments = np.concatenate([[start_value], load[1:] * np.diff(ts)])
    return BackfillSeries(name=name, labels=labels, timestamps=ts, values=np.cumsum(increments), kind="counter")


def _escape_label_value(value: str) -> str:
    # OpenMetrics (and the Prometheus text format) escape exactly these three in label values.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def to_openmetrics(series: Iterable[BackfillSeries]) -> str:
    """Render series as OpenMetrics text, as ``promtool tsdb create-blocks-from openmetrics`` reads it.

    OpenMetrics wants each metric family in one contiguous block under its
    ``# TYPE`` line, timestamps in seconds, and a final ``# EOF``; series are
    grouped by family here, in first-seen order.
    """
    families: dict[tuple[str, MetricKind], list[BackfillSeries]] = {}
    for s in series:
        family = s.name.removesuffix("_total") if s.kind == "counter" else s.name
        families.setdefault((family, s.kind), []).append(s)
    seen: dict[str, MetricKind] = {}
    lines: list[str] = []
    for (family, kind), members in families.items():
        if seen.setdefault(family, kind) != kind:
            raise ValueError(f"metric family {family!r} is both a counter and a gauge")
        lines.append(f"# TYPE {family} {kind}")
        for s in members:
            label_text = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in sorted(s.labels.items()))
            selector = f"{s.name}{{{label_text}}}" if label_text else s.name
            lines.extend(f"{selector} {_format_float(v)} {repr(float(t))}" for t, v in zip(s.timestamps, s.values))
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- server


@dataclass(frozen=True)
class ScrapeTarget:
    """One scrape job with one static target ``address`` (``host:port``)."""

    job: str
    address: str
    metrics_path: str = "/metrics"
    scrape_interval_seconds: float | None = None


def _duration(seconds: float) -> str:
    # Prometheus durations accept ms, s, m, ...; milliseconds are exact for any test value.
    return f"{max(1, round(seconds * 1000))}ms"


@dataclass
class PrometheusServer:
    """A real ``prometheus`` process on ``127.0.0.1`` with its own data directory.

    Use as ``with PrometheusServer(...) as prom:`` or ``async with``, or call
    :meth:`start`, :meth:`stop` (keeps port and data, so :meth:`start` again is
    a restart) and :meth:`close` (stops and deletes the temporary directory).

    Attributes:
        scrape_interval_seconds: global scrape (and rule evaluation) interval.
        lookback_delta_seconds: ``--query.lookback-delta``: how far back an
            instant selector looks for a sample; older series are absent from
            results (stale).
        retention: ``--storage.tsdb.retention.time``; counted back from the
            newest block, not from now.
        port: fixed port, or ``None`` for a free one chosen on first start.
        data_dir: TSDB directory, or ``None`` for one in the temporary directory.
        ready_timeout_seconds: how long :meth:`start` waits for ``/-/ready``.
        stop_timeout_seconds: how long :meth:`stop` waits after SIGTERM before SIGKILL.
        extra_args: more command-line flags for ``prometheus``.
    """

    scrape_interval_seconds: float = 15.0
    lookback_delta_seconds: float = 300.0
    retention: str = "3650d"
    port: int | None = None
    data_dir: Path | None = None
    ready_timeout_seconds: float = 20.0
    stop_timeout_seconds: float = 10.0
    extra_args: Sequence[str] = ()
    targets: dict[str, ScrapeTarget] = field(default_factory=dict, init=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)
    _root: Path | None = field(default=None, init=False, repr=False)
    _fixed_port: bool = field(default=False, init=False, repr=False)
    _finalizer: weakref.finalize | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._prometheus = find_executable("prometheus")
        self._promtool = find_executable("promtool")
        self._fixed_port = self.port is not None

    # ---- paths and addresses

    @property
    def root(self) -> Path:
        """The temporary directory holding the configuration, the log and (by default) the data."""
        if self._root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="scaleahead-prometheus-")
            self._root = Path(self._tmp.name)
        return self._root

    @property
    def tsdb_path(self) -> Path:
        """The TSDB directory (``--storage.tsdb.path``)."""
        if self.data_dir is None:
            self.data_dir = self.root / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    @property
    def config_path(self) -> Path:
        return self.root / "prometheus.yml"

    @property
    def log_path(self) -> Path:
        """The server's stdout and stderr, appended across restarts."""
        return self.root / "prometheus.log"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, the base URL of the HTTP API."""
        if self.port is None:
            raise RuntimeError("the server has no port yet; start it first")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's log (for error messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    # ---- configuration

    def render_config(self) -> str:
        """The generated ``prometheus.yml``: global intervals and one static job per scrape target.

        JSON is valid YAML, so the configuration is written as JSON and needs no YAML library.
        """
        jobs = []
        for t in self.targets.values():
            job: dict[str, object] = {
                "job_name": t.job,
                "metrics_path": t.metrics_path,
                "static_configs": [{"targets": [t.address]}],
            }
            if t.scrape_interval_seconds is not None:
                job["scrape_interval"] = _duration(t.scrape_interval_seconds)
                job["scrape_timeout"] = _duration(t.scrape_interval_seconds)
            jobs.append(job)
        interval = _duration(self.scrape_interval_seconds)
        return json.dumps(
            {
                "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
                "scrape_configs": jobs,
            },
            indent=2,
        )

    def add_scrape_target(self, *, job: str, address: str, metrics_path: str = "/metrics",
                          scrape_interval_seconds: float | None = None) -> None:
        """Scrape ``address`` (``host:port``) as job ``job``; a running server reloads its configuration."""
        self.targets[job] = ScrapeTarget(job, address, metrics_path, scrape_interval_seconds)
        self._write_config_and_reload()

    def remove_scrape_target(self, job: str) -> None:
        """Stop scraping job ``job``; its series get staleness markers and drop out of instant queries."""
        self.targets.pop(job, None)
        self._write_config_and_reload()

    def _write_config_and_reload(self) -> None:
        self.config_path.write_text(self.render_config())
        if self.running:
            self.reload()

    def wait_until_scraped(self, job: str, *, timeout_seconds: float = 20.0) -> None:
        """Block until every target of ``job`` has been scraped successfully at least once.

        A new target is first scraped 5 to 7 s after it is configured, whatever
        the scrape interval: Prometheus 2.42 passes discovered targets to the
        scrape manager on a fixed 5 s ticker, with no flag to shorten it. Tests
        and the demo pay this once per target set, so configure targets early.

        Raises:
            PrometheusError: not scraped within ``timeout_seconds`` (the targets' last errors are in the message).
        """
        deadline = time.monotonic() + timeout_seconds
        last: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{self.url}/api/v1/targets?state=active", timeout=5) as resp:
                active = json.load(resp)["data"]["activeTargets"]
            last = [t for t in active if t.get("labels", {}).get("job") == job]
            if last and all(t.get("health") == "up" for t in last):
                return
            time.sleep(0.1)
        errors = "; ".join(f"{t.get('scrapeUrl')}: {t.get('health')} {t.get('lastError')}" for t in last) or "no target"
        raise PrometheusError(f"job {job!r} was not scraped within {timeout_seconds} s ({errors})\n{self.log_tail()}")

    def reload(self) -> None:
        """Ask the server to re-read its configuration (``POST /-/reload``, synchronous).

        Raises:
            PrometheusError: the server rejected the configuration.
        """
        req = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
        except (urllib.error.URLError, OSError) as exc:
            raise PrometheusError(f"reloading the configuration failed: {exc}\n{self.log_tail()}") from exc

    # ---- backfill

    def backfill(self, series: Iterable[BackfillSeries]) -> None:
        """Write ``series`` as TSDB blocks into the data directory.

        Runs ``promtool tsdb create-blocks-from openmetrics``. A running server
        is restarted afterwards (same port, same data) so it loads the blocks.

        Raises:
            PrometheusError: ``promtool`` failed (its output is in the message).
        """
        text = to_openmetrics(series)
        was_running = self.running
        files = sorted(self.root.glob("backfill-*.om"))
        source = self.root / f"backfill-{len(files):03d}.om"
        source.write_text(text)
        proc = subprocess.run(
            [self._promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(source), str(self.tsdb_path)],
            capture_output=True, text=True, timeout=120,
        )
        if proc.returncode != 0:
            raise PrometheusError(
                f"promtool tsdb create-blocks-from openmetrics {source} failed (exit {proc.returncode}):\n"
                f"{proc.stdout}{proc.stderr}"
            )
        if was_running:
            self.stop()
            self.start()

    # ---- process lifecycle

    def _command(self) -> list[str]:
        return [
            self._prometheus,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.tsdb_path}",
            f"--storage.tsdb.retention.time={self.retention}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--query.lookback-delta={_duration(self.lookback_delta_seconds)}",
            "--web.enable-lifecycle",  # POST /-/reload when scrape targets change
            *self.extra_args,
        ]

    def start(self) -> None:
        """Start the server (or restart it on the same port and data) and wait until ``/-/ready``.

        Raises:
            PrometheusError: it exited or did not become ready in time; the log tail is in the message.
        """
        if self.running:
            return
        self.config_path.write_text(self.render_config())
        # A free port can be taken between our probe and the server's bind; retry a
        # few times with a new one unless the caller fixed the port.
        for attempt in range(3):
            if self.port is None:
                self.port = free_port()
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            with open(self.log_path, "ab") as log:
                self._proc = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL)
            self._finalizer = weakref.finalize(self, _kill, self._proc)
            error = self._wait_ready()
            if error is None:
                return
            self._terminate()
            with open(self.log_path, "rb") as f:
                f.seek(log_offset)
                this_run = f.read().decode(errors="replace")
            if "address already in use" in this_run and not self._fixed_port and attempt < 2:
                self.port = None
                continue
            raise PrometheusError(f"prometheus {error}; log {self.log_path}:\n{self.log_tail()}")

    def _wait_ready(self) -> str | None:
        assert self._proc is not None
        deadline = time.monotonic() + self.ready_timeout_seconds
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                return f"exited with code {code} before it was ready"
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return None
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.02)
        return f"was not ready within {self.ready_timeout_seconds} s"

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=self.stop_timeout_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``stop_timeout_seconds``); port and data are kept."""
        self._terminate()

    def close(self) -> None:
        """Stop the server and delete its temporary directory."""
        self._terminate()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._root = None
            if self.data_dir is not None and not self.data_dir.exists():
                self.data_dir = None

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> PrometheusServer:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    # Last resort when a server object is dropped or the interpreter exits without close().
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.kill()
            proc.wait(timeout=5)


# --------------------------------------------------------------------------- exporter


class MetricsExporter:
    """An HTTP ``/metrics`` endpoint (aiohttp, in the caller's event loop) serving series the caller sets.

    Values live in a dict keyed by ``(name, labels)``; every scrape renders the
    current values through ``prometheus_client``'s exposition, so the text is
    exactly what a real exporter would serve. Counter names end in ``_total``.

    Usage::

        async with MetricsExporter() as exporter:
            prom.add_scrape_target(job="pods", address=exporter.address)
            exporter.inc("http_requests_total", {"namespace": "shop", "pod": "web-1"}, 10)
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[MetricKind, float]] = {}
        self._runner: web.AppRunner | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # type: ignore[arg-type]  # a collector only needs collect()
        self.scrapes = 0

    @property
    def address(self) -> str:
        """``host:port`` as a Prometheus static target."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def set(self, name: str, labels: Mapping[str, str] | None, value: float, *, kind: MetricKind = "gauge") -> None:
        """Set the series ``name{labels}`` to ``value``."""
        if kind == "counter" and not name.endswith("_total"):
            raise ValueError(f"{name}: a counter's name must end in '_total'")
        self._values[(name, tuple(sorted((labels or {}).items())))] = (kind, float(value))

    def inc(self, name: str, labels: Mapping[str, str] | None, amount: float = 1.0) -> float:
        """Add ``amount`` (>= 0) to the counter ``name{labels}``; returns the new value."""
        if amount < 0:
            raise ValueError("a counter only increases")
        key = (name, tuple(sorted((labels or {}).items())))
        _, current = self._values.get(key, ("counter", 0.0))
        self.set(name, labels, current + amount, kind="counter")
        return current + amount

    def remove(self, name: str, labels: Mapping[str, str] | None) -> None:
        """Stop exposing ``name{labels}`` (Prometheus then writes a staleness marker for it)."""
        self._values.pop((name, tuple(sorted((labels or {}).items()))), None)

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        """The ``prometheus_client`` collector protocol: one family per name, one sample per label set."""
        self.scrapes += 1
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for (name, labels), (kind, value) in sorted(self._values.items()):
            label_names = [k for k, _ in labels]
            family = families.get(name)
            if family is None:
                if kind == "counter":
                    family = CounterMetricFamily(name.removesuffix("_total"), name, labels=label_names)
                else:
                    family = GaugeMetricFamily(name, name, labels=label_names)
                families[name] = family
            family.add_metric([v for _, v in labels], value)
        return list(families.values())

    async def start(self) -> None:
        """Serve ``/metrics`` on ``host:port`` (a free port when ``port`` is 0)."""
        app = web.Application()
        app.router.add_get("/metrics", prometheus_aiohttp.make_aiohttp_handler(self.registry, disable_compression=True))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MetricsExporter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


__all__ = [
    "DEBIAN_PACKAGE",
    "BackfillSeries",
    "MetricsExporter",
    "PrometheusError",
    "PrometheusNotInstalled",
    "PrometheusServer",
    "ScrapeTarget",
    "counter_from_load",
    "find_executable",
    "free_port",
    "gauge_series",
    "to_openmetrics",
]
