"""The human report of ``scaleahead simulate --report out.html``: one self-contained HTML file.

The report shows, per trace (BENCHMARK.md section 5), demand against ready capacity for each
policy, the forecast band when the policy has one, and the score table; at the top it carries
the command line, the generation time, a legend of the metrics (section 3) and a summary table
across all traces.

Design choices a reader might question:

- **Self-contained.** No external CSS, JS, fonts or images: the style sheet is inline and every
  plot is a PNG embedded as a base64 ``data:image/png`` URI, so the file can be mailed or
  attached to a CI run and still open offline. PNG (100 dpi) rather than SVG because a 30-day
  trace has ~170k ticks and even downsampled SVG paths are several times larger. The PNG is
  written by Pillow (a matplotlib dependency) from the Agg buffer as a 256-colour palette image
  (fast octree, no dithering): a plot has a few dozen colours plus anti-aliasing shades, and the
  palette makes a noisy 30-day plot about 3× smaller (~120 kB instead of ~340 kB) with no
  visible change. The PNG carries no metadata, so the output is byte-stable and has no URL.
- **No pyplot.** Plots use ``matplotlib.figure.Figure`` directly: no global figure registry, no
  backend switch, safe to call from several threads, and importing this module selects no GUI
  backend. matplotlib is imported lazily, so the CLI pays for it only when it writes a report.
- **Downsampling.** Each line is reduced to at most ``MAX_PLOT_POINTS`` points (4000, about
  four per horizontal pixel of an 1100-px plot) by splitting the ticks into equal consecutive
  buckets and keeping, per bucket: the **maximum** of demand, ready pods and ready + starting
  pods (so short spikes and scale-ups stay visible; a dip shorter than a bucket is hidden), the
  **maximum shortfall** ``max(0, demand - ready)`` (so every bucket with any under-provisioned
  tick shows red, hanging from the demand line by its worst shortfall), and for the forecast
  the minimum of ``lower``, the maximum of ``upper`` and the mean of ``mean`` (NaN ignored).
  A series short enough is plotted tick by tick, unchanged. Because a shortfall of a pod for a
  few ticks is still thinner than a pixel, a red strip along the bottom of each panel also marks
  every under-provisioned stretch, binned to about one pixel.
- **Zoom.** The second plot of a trace shows the 24 h of the scored part centred on the tick of
  highest demand (clipped to the scored part), which is a window with the highest peak demand;
  when the scored part is shorter than 24 h it shows all of it. The window is chosen on the
  first policy of the trace (all policies of a trace share its demand). Scale decisions
  (``RunResult.decisions``) are marked there at the replica count the policy set
  (``to_replicas``, which is where the ready + starting line steps to), ▲ for up and ▼ for down.
- **Best values.** In each trace's score table the lowest ``unserved_pct``, ``pod_hours`` and
  ``scale_actions`` among the non-``oracle`` policies is bold (ties all bold; nothing is bold
  when there is only one such policy, since there is no comparison). The oracle is the
  physical limit, not a competitor, so it is never highlighted.
- **Escaping.** Every string that comes from data (titles, trace and policy names, decision
  reasons, the command line) goes through ``html.escape``; in plot labels ``$`` is escaped so
  matplotlib never reads a name as mathtext.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import datetime
import html
import io
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from controller.sim import results as sim_results

__all__ = ["MAX_PLOT_POINTS", "ZOOM_SECONDS", "format_score_field", "render_report", "write_report"]

# At most this many points per plotted line (see the module docstring).
MAX_PLOT_POINTS = 4000
# Width of the zoomed plot.
ZOOM_SECONDS = 24 * 3600.0
# Beyond this trace length the overview's x axis is in days instead of hours.
DAYS_AXIS_AFTER_SECONDS = 3 * 86400.0
# The benchmark's tick (BENCHMARK.md section 1); used only when a series has a single tick.
DEFAULT_TICK_SECONDS = 15.0
ORACLE_POLICY = "oracle"

_PLOT_WIDTH_INCHES = 11.0
_PLOT_DPI = 100
_PANEL_HEIGHT_INCHES = 2.3
# The under-provisioned strip along the bottom of each panel: bins across the width (about one
# per pixel of the plot area) and height as a fraction of the panel.
_RUG_BINS = 1000
_RUG_HEIGHT = 0.035

# Lower is better for every highlighted column.
_HIGHLIGHTED_FIELDS = ("unserved_pct", "pod_hours", "scale_actions")
_SUMMARY_FIELDS = ("unserved_pct", "cost_ratio", "scale_actions")

# One line per field of BENCHMARK.md section 3, plus the run fields of section 5.
_METRIC_LEGEND: tuple[tuple[str, str], ...] = (
    ("unserved_pct", "100 × Σ max(0, demand − ready) / Σ demand: share of demand no ready pod served."),
    ("underprovisioned_time_pct", "100 × share of ticks with demand > ready."),
    ("pod_hours", "Σ (ready + starting pods) × 15 s / 3600: what the policy paid for (pods cost from creation)."),
    (
        "oracle_pod_hours",
        "pod-hours of the perfect-foresight schedule: each pod started exactly startup_seconds before it is "
        "needed and kept through dips shorter than that; it never leaves demand unserved.",
    ),
    ("cost_ratio", "pod_hours / oracle_pod_hours (1.0 is the physical limit)."),
    ("scale_actions", "number of ticks at which the replica count changed."),
)
_RUN_LEGEND: tuple[tuple[str, str], ...] = (
    ("startup_seconds", "median pod startup time (creation to ready) of the run."),
    ("peak_pods", "demand scale: the trace's 0.99 quantile maps to this many pods."),
    ("wall_seconds", "wall-clock time the simulation of this run took."),
)

_COLUMN_TITLES = {
    "policy": "policy",
    "startup_seconds": "startup s",
    "peak_pods": "peak pods",
    "unserved_pct": "unserved %",
    "underprovisioned_time_pct": "under-prov. time %",
    "pod_hours": "pod-hours",
    "oracle_pod_hours": "oracle pod-hours",
    "cost_ratio": "cost ratio",
    "scale_actions": "scale actions",
    "wall_seconds": "wall s",
}

# Plot colours: demand dark, capacity blue, forecast orange, shortfall red, warm-up grey.
_C_DEMAND = "#222222"
_C_READY = "#1f5fbf"
_C_TOTAL = "#9cc3f0"
_C_FORECAST = "#f28e2b"
_C_SHORT = "#d62728"
_C_WARMUP = "#b0b0b0"
_C_UP = "#2ca02c"
_C_DOWN = "#9467bd"

_LABEL_WARMUP = "warm-up (not scored)"
_LABEL_SHORT = "under-provisioned (demand > ready)"
# The figure legend lists layers in this order (what is asked, what is served, what is paid for,
# then the forecast, the warm-up and the decisions).
_LEGEND_ORDER = (
    "demand",
    "ready pods",
    "ready + starting pods",
    _LABEL_SHORT,
    "forecast mean",
    "forecast band",
    _LABEL_WARMUP,
    "scale-up decision",
    "scale-down decision",
)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def write_report(
    path: str | os.PathLike[str],
    results: Sequence[sim_results.RunResult],
    *,
    title: str = "scaleahead simulation report",
    command: str | None = None,
    generated_at: str | None = None,
) -> None:
    """Render the report and write it to ``path`` atomically.

    The HTML is written to a temporary file in the destination directory and moved over
    ``path`` with ``os.replace``, so a reader never sees a half-written report and a failed
    render leaves any previous report in place.

    Args:
        path: Destination file (conventionally ``*.html``). Its directory must exist.
        results: One ``RunResult`` per (trace, policy), in the order to show them.
        title: Page title and top heading.
        command: The command line that produced the results, shown verbatim; ``None`` if unknown.
        generated_at: Generation time to print; default the current UTC time (ISO 8601).

    Raises:
        OSError: The file cannot be written.
    """
    text = render_report(results, title=title, command=command, generated_at=generated_at)
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html.tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def render_report(
    results: Sequence[sim_results.RunResult],
    *,
    title: str = "scaleahead simulation report",
    command: str | None = None,
    generated_at: str | None = None,
) -> str:
    """Return the report as one self-contained HTML document.

    Args:
        results: One ``RunResult`` per (trace, policy). They are grouped by ``score.trace`` in
            first-seen order; within a trace, policies keep their order.
        title: Page title and top heading.
        command: The command line that produced the results; ``None`` if unknown.
        generated_at: Generation time to print; default the current UTC time (ISO 8601).

    Returns:
        The HTML text (UTF-8 safe; every data-derived string escaped).
    """
    if generated_at is None:
        generated_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    groups = _group_by_trace(results)

    parts: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_e(title)}</h1>",
        (
            f'<p class="meta">Command: <code>{_e(command)}</code></p>'
            if command is not None
            else '<p class="meta">Command: <em>not recorded</em></p>'
        ),
        f'<p class="meta">Generated: {_e(generated_at)}</p>',
        "</header>",
        _render_legend(),
    ]
    if not groups:
        parts.append('<p class="empty">No results to report.</p>')
    else:
        parts.append(_render_summary(groups))
        for index, (trace, runs) in enumerate(groups, start=1):
            parts.append(_render_trace(index, trace, runs))
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:1.5rem auto;max-width:1180px;padding:0 1rem;color:#1b1b1b;line-height:1.4}
h1{margin-bottom:.3rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.meta{margin:.2rem 0;color:#444}
code{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px;word-break:break-all}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d6d6d6;padding:.25rem .55rem}
th{background:#f4f6f8;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td b{color:#0b5a1a}
tr.oracle td{color:#666;font-style:italic}
dl.legend{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;font-size:.9rem}
dl.legend dt{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
dl.legend dd{margin:0}
figure{margin:.8rem 0}figure img{max-width:100%;height:auto;display:block}
figcaption{font-size:.85rem;color:#555}
.params{color:#444;margin:.2rem 0 .6rem}
.empty{color:#8a1c1c;font-weight:600}
details{margin:.4rem 0 1rem;font-size:.9rem}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _group_by_trace(
    results: Iterable[sim_results.RunResult],
) -> list[tuple[str, list[sim_results.RunResult]]]:
    groups: dict[str, list[sim_results.RunResult]] = {}
    for r in results:
        groups.setdefault(r.score.trace, []).append(r)
    return list(groups.items())


def _render_legend() -> str:
    rows = [f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in _METRIC_LEGEND + _RUN_LEGEND]
    return (
        '<section id="metrics"><h2>Metrics</h2>'
        "<p>Scores cover the scored part of each run only: the first 25% of every trace is a "
        "warm-up that is simulated but not scored (grey in the plots).</p>"
        f'<dl class="legend">{"".join(rows)}</dl></section>'
    )


def _fmt_float(digits: int, *, thousands: bool = False) -> Callable[[object], str]:
    def fmt(value: object) -> str:
        v = float(value)  # type: ignore[arg-type]
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return f"{v:,.{digits}f}" if thousands else f"{v:.{digits}f}"

    return fmt


def _fmt_general(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:g}"
    return str(value)


def _fmt_int(value: object) -> str:
    try:
        return str(int(value))  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):  # NaN or inf from a broken run
        return _fmt_general(value)


# Formats of the score fields; a field added to Score later falls back to _fmt_general.
_FORMATS: dict[str, Callable[[object], str]] = {
    "startup_seconds": _fmt_general,
    "peak_pods": _fmt_general,
    "unserved_pct": _fmt_float(3),
    "underprovisioned_time_pct": _fmt_float(3),
    "pod_hours": _fmt_float(1, thousands=True),
    "oracle_pod_hours": _fmt_float(1, thousands=True),
    "cost_ratio": _fmt_float(3),
    "scale_actions": _fmt_int,
    "wall_seconds": _fmt_float(2),
}


# Decimals shown per numeric field (must agree with _FORMATS).
_DISPLAY_DIGITS = {
    "unserved_pct": 3,
    "underprovisioned_time_pct": 3,
    "pod_hours": 1,
    "oracle_pod_hours": 1,
    "cost_ratio": 3,
    "scale_actions": 0,
    "wall_seconds": 2,
}


def format_score_field(name: str, value: object) -> str:
    """Format one ``Score`` field the way the report's tables show it (pct 3 decimals, ...)."""
    return _FORMATS.get(name, _fmt_general)(value)


def _score_columns() -> list[str]:
    names = [f.name for f in dataclasses.fields(sim_results.Score)]
    ordered = [n for n in sim_results.SCORE_FIELDS if n in names]
    ordered += [n for n in names if n not in ordered]
    return [n for n in ordered if n != "trace"]


def _best_rows(scores: Sequence[sim_results.Score], name: str) -> set[int]:
    """Indexes of the non-oracle rows holding the lowest finite value of ``name``.

    Values are compared as shown (rounded to the table's precision), so two cells that read
    the same are both bold or both plain.
    """
    digits = _DISPLAY_DIGITS.get(name)
    candidates: list[tuple[int, float]] = []
    for i, s in enumerate(scores):
        if s.policy == ORACLE_POLICY:
            continue
        v = float(getattr(s, name))
        if digits is not None and math.isfinite(v):
            v = round(v, digits)
        if math.isfinite(v):
            candidates.append((i, v))
    if len(candidates) < 2:
        return set()
    best = min(v for _, v in candidates)
    return {i for i, v in candidates if v == best}


def _cell(text: str, *, numeric: bool, bold: bool) -> str:
    inner = f"<b>{text}</b>" if bold else text
    return f'<td class="num">{inner}</td>' if numeric else f"<td>{inner}</td>"


def _render_summary(groups: list[tuple[str, list[sim_results.RunResult]]]) -> str:
    head = "".join(f"<th>{_e(_COLUMN_TITLES.get(n, n))}</th>" for n in ("policy", *_SUMMARY_FIELDS))
    rows: list[str] = []
    for index, (trace, runs) in enumerate(groups, start=1):
        scores = [r.score for r in runs]
        best = {n: _best_rows(scores, n) for n in _SUMMARY_FIELDS}
        for i, s in enumerate(scores):
            cls = ' class="oracle"' if s.policy == ORACLE_POLICY else ""
            cells = []
            if i == 0:
                cells.append(f'<td rowspan="{len(scores)}"><a href="#trace-{index}">{_e(trace)}</a></td>')
            cells.append(f"<td>{_e(s.policy)}</td>")
            for n in _SUMMARY_FIELDS:
                cells.append(_cell(_e(format_score_field(n, getattr(s, n))), numeric=True, bold=i in best[n]))
            rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return (
        '<section id="summary"><h2>Summary</h2>'
        "<p>Bold: the lowest value of a trace among the non-oracle policies.</p>"
        f'<table class="summary"><thead><tr><th>trace</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _render_score_table(scores: Sequence[sim_results.Score]) -> str:
    columns = _score_columns()
    best = {n: _best_rows(scores, n) for n in _HIGHLIGHTED_FIELDS}
    head = "".join(f'<th title="{_e(n)}">{_e(_COLUMN_TITLES.get(n, n))}</th>' for n in columns)
    rows: list[str] = []
    for i, s in enumerate(scores):
        cls = ' class="oracle"' if s.policy == ORACLE_POLICY else ""
        cells = []
        for n in columns:
            value = getattr(s, n)
            if n == "policy":
                cells.append(f"<td>{_e(value)}</td>")
            else:
                bold = i in best.get(n, ())
                cells.append(_cell(_e(format_score_field(n, value)), numeric=True, bold=bold))
        rows.append(f'<tr{cls} data-policy="{_e(s.policy)}">{"".join(cells)}</tr>')
    return (
        f'<table class="scores"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _render_decisions(runs: Sequence[sim_results.RunResult]) -> str:
    """A collapsible list of how often each policy scaled, and why (most frequent reasons first)."""
    if not any(r.decisions for r in runs):
        return ""
    rows: list[str] = []
    for r in runs:
        counts = collections.Counter(d.reason for d in r.decisions)
        ups = sum(1 for d in r.decisions if d.to_replicas > d.from_replicas)
        downs = sum(1 for d in r.decisions if d.to_replicas < d.from_replicas)
        top = counts.most_common(8)
        reasons = ", ".join(f"{_e(reason)} ×{n}" for reason, n in top) or "—"
        if len(counts) > len(top):
            reasons += f", … {len(counts) - len(top)} more"
        rows.append(
            f"<tr><td>{_e(r.score.policy)}</td><td class=\"num\">{len(r.decisions)}</td>"
            f'<td class="num">{ups}</td><td class="num">{downs}</td><td>{reasons}</td></tr>'
        )
    return (
        "<details><summary>Scale decisions (whole run, warm-up included)</summary>"
        '<table class="decisions"><thead><tr><th>policy</th><th>decisions</th><th>up</th>'
        "<th>down</th><th>reasons</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></details>"
    )


def _render_quantile_changes(runs: Sequence[sim_results.RunResult]) -> str:
    """A collapsible list of each change of provisioning quantile and why (the day's choice
    against the HPA's calculation, docs/policy.md), per policy that made one."""
    rows: list[str] = []
    for r in runs:
        start = float(r.times[0]) if len(r.times) else 0.0
        for at, message in r.quantile_changes:
            day, rest = divmod(max(0.0, at - start), 86400.0)
            when = f"day {int(day)}, {int(rest // 3600):02d}:{int(rest % 3600 // 60):02d}"
            rows.append(f"<tr><td>{_e(r.score.policy)}</td><td>{when}</td><td>{_e(message)}</td></tr>")
    if not rows:
        return ""
    return (
        f"<details><summary>Changes of provisioning quantile ({len(rows)}), with the reason</summary>"
        '<table class="quantile-changes"><thead><tr><th>policy</th><th>when (from the trace start)</th><th>change</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></details>"
    )


def _distinct(values: Iterable[object]) -> str:
    seen: list[str] = []
    for v in values:
        s = _fmt_general(v)
        if s not in seen:
            seen.append(s)
    return ", ".join(seen)


def _render_trace(index: int, trace: str, runs: Sequence[sim_results.RunResult]) -> str:
    scores = [r.score for r in runs]
    params = (
        f"startup_seconds = {_e(_distinct(s.startup_seconds for s in scores))} · "
        f"peak_pods = {_e(_distinct(s.peak_pods for s in scores))} · "
        f"policies: {_e(', '.join(s.policy for s in scores))}"
    )
    parts = [
        f'<section class="trace" id="trace-{index}">',
        f"<h2>{_e(trace)}</h2>",
        f'<p class="params">{params}</p>',
    ]

    views = [_prepare(r) for r in runs]
    if all(v is None for v in views):
        parts.append('<p class="empty">No ticks recorded: nothing to plot.</p>')
    else:
        overview = _plot_overview(trace, runs, views)
        parts.append(
            _figure(
                overview,
                alt=f"{trace}: demand vs ready capacity per policy, whole run",
                caption="Whole run. Demand (pod units) against ready pods and ready + starting pods; "
                "red where demand exceeds ready pods, and a red strip along the bottom marks every such "
                "stretch. Grey: warm-up, not scored. Long series are downsampled to per-bucket maxima.",
            )
        )
        zoom = _zoom_window(views)
        if zoom is None:
            parts.append('<p class="empty">Nothing scored: the scored part of this run is empty.</p>')
        else:
            png, caption = _plot_zoom(trace, runs, views, zoom)
            parts.append(_figure(png, alt=f"{trace}: busiest scored window per policy", caption=caption))

    parts.append(_render_score_table(scores))
    parts.append(_render_decisions(runs))
    parts.append(_render_quantile_changes(runs))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def _figure(png: bytes, *, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


# ---------------------------------------------------------------------------------------------
# Series preparation and downsampling
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Run:
    """The arrays of one RunResult, validated, as float64, with time relative to the trace start."""

    rel: np.ndarray  # seconds since times[0]
    tick_seconds: float
    demand: np.ndarray
    ready: np.ndarray
    total: np.ndarray  # ready + starting
    scored_from: int
    forecast: dict[str, np.ndarray] | None

    @property
    def n(self) -> int:
        return int(self.rel.size)

    @property
    def end(self) -> float:
        """End of the run in relative seconds (the last tick covers one tick of time)."""
        return float(self.rel[-1]) + self.tick_seconds


@dataclasses.dataclass(frozen=True, slots=True)
class _View:
    """One plotted window of a run, downsampled: x in the plot's unit."""

    x: np.ndarray
    x_end: float  # end of the last tick
    demand: np.ndarray
    ready: np.ndarray
    total: np.ndarray
    shortfall: np.ndarray
    lower: np.ndarray | None
    mean: np.ndarray | None
    upper: np.ndarray | None


def _prepare(r: sim_results.RunResult) -> _Run | None:
    arrays = [np.asarray(a, dtype=float).ravel() for a in (r.times, r.demand, r.ready, r.starting)]
    n = min(a.size for a in arrays)
    if n == 0:
        return None
    times, demand, ready, starting = (a[:n] for a in arrays)
    rel = times - times[0]
    diffs = np.diff(rel)
    tick = float(np.median(diffs)) if diffs.size else DEFAULT_TICK_SECONDS
    if not math.isfinite(tick) or tick <= 0:
        tick = DEFAULT_TICK_SECONDS
    forecast = None
    if r.forecast is not None:
        forecast = {}
        for key in ("lower", "mean", "upper"):
            if key in r.forecast and r.forecast[key] is not None:
                a = np.asarray(r.forecast[key], dtype=float).ravel()[:n]
                if a.size < n:  # a shorter forecast covers the first ticks only
                    a = np.concatenate([a, np.full(n - a.size, np.nan)])
                forecast[key] = a
        forecast = forecast or None
    return _Run(
        rel=rel,
        tick_seconds=tick,
        demand=demand,
        ready=ready,
        total=ready + starting,
        scored_from=max(0, min(int(r.scored_from), n)),
        forecast=forecast,
    )


def _bucket_starts(n: int, max_points: int) -> np.ndarray | None:
    """Start index of each bucket, or ``None`` when ``n`` points need no downsampling."""
    if n <= max_points:
        return None
    size = math.ceil(n / max_points)
    return np.arange(0, n, size)


def _bmax(a: np.ndarray, starts: np.ndarray | None) -> np.ndarray:
    return a if starts is None else np.fmax.reduceat(a, starts)


def _bmin(a: np.ndarray, starts: np.ndarray | None) -> np.ndarray:
    return a if starts is None else np.fmin.reduceat(a, starts)


def _bmean(a: np.ndarray, starts: np.ndarray | None) -> np.ndarray:
    if starts is None:
        return a
    valid = ~np.isnan(a)
    sums = np.add.reduceat(np.where(valid, a, 0.0), starts)
    counts = np.add.reduceat(valid.astype(np.int64), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _view(run: _Run, lo: int, hi: int, unit_seconds: float) -> _View:
    sl = slice(lo, hi)
    starts = _bucket_starts(hi - lo, MAX_PLOT_POINTS)
    demand = run.demand[sl]
    ready = run.ready[sl]
    with np.errstate(invalid="ignore"):
        shortfall = np.clip(demand - ready, 0.0, None)
    fc = run.forecast
    return _View(
        x=(run.rel[sl] if starts is None else run.rel[sl][starts]) / unit_seconds,
        x_end=(float(run.rel[hi - 1]) + run.tick_seconds) / unit_seconds,
        demand=_bmax(demand, starts),
        ready=_bmax(ready, starts),
        total=_bmax(run.total[sl], starts),
        shortfall=_bmax(shortfall, starts),
        lower=_bmin(fc["lower"][sl], starts) if fc and "lower" in fc else None,
        mean=_bmean(fc["mean"][sl], starts) if fc and "mean" in fc else None,
        upper=_bmax(fc["upper"][sl], starts) if fc and "upper" in fc else None,
    )


def _zoom_window(views: Sequence[_Run | None]) -> tuple[float, float] | None:
    """The zoom window ``[start, end)`` in relative seconds, or ``None`` if nothing is scored."""
    ref = next((v for v in views if v is not None and v.scored_from < v.n), None)
    if ref is None:
        return None
    s0 = float(ref.rel[ref.scored_from])
    s_end = ref.end
    if s_end - s0 <= ZOOM_SECONDS:
        return s0, s_end
    scored = ref.demand[ref.scored_from :]
    peak = ref.scored_from + (int(np.nanargmax(scored)) if np.isfinite(scored).any() else 0)
    start = float(ref.rel[peak]) - ZOOM_SECONDS / 2
    start = min(max(start, s0), s_end - ZOOM_SECONDS)
    return start, start + ZOOM_SECONDS


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------


def _rug(view: _View) -> tuple[np.ndarray, np.ndarray]:
    """Under-provisioned marks for the bottom strip: 1.0 where a bin (about a pixel) has a shortfall."""
    on = (view.shortfall > 0).astype(float)
    starts = _bucket_starts(on.size, _RUG_BINS)
    x = view.x if starts is None else view.x[starts]
    on = _bmax(on, starts)
    # Close the last bin at the end of the window, so a shortfall on the last tick shows too.
    return np.append(x, view.x_end), np.append(on, on[-1:])


def _mpl_text(text: str) -> str:
    """Plain text for a matplotlib label: ``$`` would otherwise start mathtext."""
    return text.replace("$", r"\$")


def _panel_title(score: sim_results.Score, forecast: Mapping[str, np.ndarray] | None = None) -> str:
    text = (
        f"{score.policy} — unserved {format_score_field('unserved_pct', score.unserved_pct)} % · "
        f"cost ratio {format_score_field('cost_ratio', score.cost_ratio)} · "
        f"{format_score_field('scale_actions', score.scale_actions)} scale actions"
    )
    lead = None if forecast is None else forecast.get("lead_seconds")
    if lead is not None and np.isfinite(lead).any():
        # The horizon the policy looked ahead (learned startup + metrics lag + one tick).
        finite = np.asarray(lead, dtype=float)[np.isfinite(lead)]
        text += f" · lead time {np.median(finite):.0f} s (last {finite[-1]:.0f} s)"
    quantile = None if forecast is None else forecast.get("quantile")
    if quantile is not None and np.isfinite(quantile).any():
        # The provisioning quantile: the configured one, or a higher rung chosen against the HPA.
        used = np.asarray(quantile, dtype=float)[np.isfinite(quantile)]
        low, high = float(used.min()), float(used.max())
        text += f" · quantile {low:g}" if low == high else f" · quantile {low:g}–{high:g} (last {used[-1]:g})"
    hpa_rung = None if quantile is None else np.isnan(quantile)
    if hpa_rung is not None and hpa_rung.any():
        # NaN: the HPA rung (forecast.fallback_to_hpa), where the policy took the HPA's own decisions.
        text += f" · HPA rung on {100 * float(hpa_rung.mean()):.0f}% of ticks"
    return _mpl_text(text)


def _new_figure(panels: int):  # -> matplotlib.figure.Figure
    # Imported here so importing this module (e.g. from the CLI) does not load matplotlib.
    from matplotlib.figure import Figure

    height = 1.1 + _PANEL_HEIGHT_INCHES * panels
    fig = Figure(figsize=(_PLOT_WIDTH_INCHES, height), dpi=_PLOT_DPI, layout="constrained")
    axes = fig.subplots(panels, 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    return fig, list(axes)


def _draw_layers(ax, view: _View, *, warmup: tuple[float, float] | None) -> None:
    """Draw one policy's window: warm-up, forecast band, shortfall, capacity and demand."""
    # Warm-up first, so everything else is drawn over the grey.
    if warmup is not None and warmup[1] > warmup[0]:
        ax.axvspan(warmup[0], warmup[1], color=_C_WARMUP, alpha=0.22, lw=0, label=_LABEL_WARMUP, zorder=0)
    # The forecast the policy acted on, under the capacity lines.
    if view.lower is not None and view.upper is not None:
        ax.fill_between(
            view.x, view.lower, view.upper, color=_C_FORECAST, alpha=0.25, lw=0, label="forecast band", zorder=1
        )
    if view.mean is not None:
        ax.plot(view.x, view.mean, color=_C_FORECAST, lw=1.0, ls="--", label="forecast mean", zorder=2)
    # Red hangs from the demand line by the worst shortfall of each bucket (see module docstring).
    if np.any(view.shortfall > 0):
        ax.fill_between(
            view.x,
            view.demand - view.shortfall,
            view.demand,
            step="post",
            color=_C_SHORT,
            alpha=0.7,
            lw=0,
            label=_LABEL_SHORT,
            zorder=3,
        )
        # A shortfall of a pod or two for a few ticks is thinner than a pixel in the fill above,
        # so a strip along the bottom also marks every stretch, at least one pixel wide.
        rug_x, rug_on = _rug(view)
        ax.fill_between(
            rug_x,
            0.0,
            rug_on * _RUG_HEIGHT,
            step="post",
            transform=ax.get_xaxis_transform(),
            color=_C_SHORT,
            lw=0,
            antialiased=False,
            zorder=3,
        )
    ax.plot(view.x, view.total, drawstyle="steps-post", color=_C_TOTAL, lw=1.2, label="ready + starting pods", zorder=4)
    ax.plot(view.x, view.ready, drawstyle="steps-post", color=_C_READY, lw=1.2, label="ready pods", zorder=5)
    ax.plot(view.x, view.demand, color=_C_DEMAND, lw=0.9, label="demand", zorder=6)


def _finish(fig, axes, *, suptitle: str, xlabel: str, xlim: tuple[float, float]) -> bytes:
    # One legend for the whole figure: collect every label once, since panels differ
    # (only some policies have a forecast or a shortfall).
    handles: dict[str, object] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
        ax.grid(True, alpha=0.3, lw=0.6)
        ax.set_ylabel("pods")
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=8)
    order = {label: i for i, label in enumerate(_LEGEND_ORDER)}
    handles = dict(sorted(handles.items(), key=lambda item: order.get(item[0], len(order))))
    axes[-1].set_xlabel(xlabel)
    axes[0].set_xlim(*xlim)
    fig.suptitle(_mpl_text(suptitle), fontsize=11, fontweight="bold")
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles.keys()),
            loc="outside lower center",
            ncols=min(len(handles), 5),
            fontsize=8,
            frameon=False,
        )
    return _to_png(fig)


def _to_png(fig) -> bytes:
    """Rasterise ``fig`` and encode it as a 256-colour palette PNG (see the module docstring)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image  # a dependency of matplotlib

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]  # the figure background is opaque
    image = Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
    palette = image.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    palette.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _time_unit(seconds: float) -> tuple[float, str]:
    if seconds > DAYS_AXIS_AFTER_SECONDS:
        return 86400.0, "days since trace start"
    return 3600.0, "hours since trace start"


def _plot_overview(trace: str, runs: Sequence[sim_results.RunResult], views: Sequence[_Run | None]) -> bytes:
    span = max(v.end for v in views if v is not None)
    unit, xlabel = _time_unit(span)
    fig, axes = _new_figure(len(runs))
    for ax, r, run in zip(axes, runs, views):
        ax.set_title(_panel_title(r.score, r.forecast), loc="left", fontsize=9)
        if run is None:
            ax.text(0.5, 0.5, "no ticks", ha="center", va="center", transform=ax.transAxes, color="#8a1c1c")
            continue
        warm_end = run.rel[run.scored_from] if run.scored_from < run.n else run.end
        _draw_layers(ax, _view(run, 0, run.n, unit), warmup=(0.0, warm_end / unit))
        if run.scored_from >= run.n:
            ax.text(0.5, 0.5, "nothing scored", ha="center", va="center", transform=ax.transAxes, color="#8a1c1c")
        elif warm_end / run.end > 0.1:
            # Name the grey span in place, not only in the legend.
            ax.text(
                0.005, 0.96, _LABEL_WARMUP, transform=ax.transAxes, ha="left", va="top", fontsize=8, color="#555555"
            )
    return _finish(fig, axes, suptitle=f"{trace}: demand vs ready capacity", xlabel=xlabel, xlim=(0.0, span / unit))


def _plot_zoom(
    trace: str,
    runs: Sequence[sim_results.RunResult],
    views: Sequence[_Run | None],
    window: tuple[float, float],
) -> tuple[bytes, str]:
    w0, w1 = window
    unit = 3600.0
    fig, axes = _new_figure(len(runs))
    for ax, r, run in zip(axes, runs, views):
        ax.set_title(_panel_title(r.score, r.forecast), loc="left", fontsize=9)
        if run is None or run.scored_from >= run.n:
            ax.text(0.5, 0.5, "nothing scored", ha="center", va="center", transform=ax.transAxes, color="#8a1c1c")
            continue
        lo = max(int(np.searchsorted(run.rel, w0, side="left")), run.scored_from)
        hi = int(np.searchsorted(run.rel, w1, side="left"))
        if hi <= lo:
            ax.text(0.5, 0.5, "no ticks in this window", ha="center", va="center", transform=ax.transAxes)
            continue
        warm_end = run.rel[run.scored_from]
        _draw_layers(ax, _view(run, lo, hi, unit), warmup=(w0 / unit, min(warm_end, w1) / unit))
        _draw_decisions(ax, r.decisions, run, lo, hi, unit)

    hours = (w1 - w0) / 3600.0
    label = "Busiest 24 h of the scored part" if hours >= ZOOM_SECONDS / 3600.0 - 1e-9 else "Whole scored part"
    where = ", centred on the peak demand" if label.startswith("Busiest") else ""
    caption = (
        f"{label} (hours {w0 / 3600:.1f}–{w1 / 3600:.1f} since trace start{where}). "
        "Same layers as above; markers: scale decisions at the replica count the policy set (▲ up, ▼ down)."
    )
    png = _finish(
        fig,
        axes,
        suptitle=f"{trace}: {label.lower()}",
        xlabel="hours since trace start",
        xlim=(w0 / unit, w1 / unit),
    )
    return png, caption


def _draw_decisions(
    ax, decisions: Sequence[sim_results.DecisionRecord], run: _Run, lo: int, hi: int, unit: float
) -> None:
    ups: list[tuple[float, float]] = []
    downs: list[tuple[float, float]] = []
    for d in decisions:
        if lo <= d.tick < hi:
            point = (float(run.rel[d.tick]) / unit, float(d.to_replicas))
            (ups if d.to_replicas > d.from_replicas else downs).append(point)
    kinds = ((ups, "^", _C_UP, "scale-up decision"), (downs, "v", _C_DOWN, "scale-down decision"))
    for points, marker, color, label in kinds:
        if points:
            xs, ys = zip(*points)
            ax.scatter(xs, ys, marker=marker, s=16, color=color, edgecolors="none", label=label, zorder=7)
