"""Tests of the HTML report (``controller.sim.report``) on synthetic ``RunResult``s.

The results are built here (``make_result``), not by the simulator, so these tests only
depend on the result types of ``controller.sim.results``.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import os
import time
from html.parser import HTMLParser

import numpy as np
import pytest

from controller.sim import report
from controller.sim import results as sim_results

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TICK = 15.0
START = 1_700_000_000.0


# ---------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------


def make_result(
    *,
    trace: str = "diurnal",
    policy: str = "hpa",
    n: int = 2000,
    period_ticks: int = 700,
    lag_ticks: int = 8,
    scored_from: int | None = None,
    with_forecast: bool = False,
    with_decisions: bool = True,
    reason: str = "ScaleUp",
    **score_overrides: object,
) -> sim_results.RunResult:
    """A sine demand and a ready curve lagging it by ``lag_ticks`` (so it is sometimes short)."""
    i = np.arange(n)
    times = START + TICK * i
    demand = 20.0 + 15.0 * np.sin(2 * np.pi * i / period_ticks)
    def lagged(a: np.ndarray, ticks: int) -> np.ndarray:
        return a[np.maximum(i - ticks, 0)]

    target = np.ceil(lagged(demand, lag_ticks))  # replicas the policy asks for
    ready = lagged(target, 4)  # pods take 4 ticks to start
    starting = np.clip(target - ready, 0, None)
    observed = lagged(demand, 1)
    forecast = None
    if with_forecast:
        mean = demand * 1.05
        forecast = {"lower": mean - 4.0, "mean": mean, "upper": mean + 4.0}
    decisions: tuple[sim_results.DecisionRecord, ...] = ()
    if with_decisions:
        changed = np.flatnonzero(np.diff(target)) + 1
        decisions = tuple(
            sim_results.DecisionRecord(
                tick=int(t), from_replicas=int(target[t - 1]), to_replicas=int(target[t]), reason=reason
            )
            for t in changed
        )
    fields: dict[str, object] = {
        "trace": trace,
        "policy": policy,
        "startup_seconds": 120.0,
        "peak_pods": 40.0,
        "unserved_pct": 1.23456,
        "underprovisioned_time_pct": 7.5,
        "pod_hours": 123.456,
        "oracle_pod_hours": 100.0,
        "cost_ratio": 1.23456,
        "scale_actions": len(decisions),
        "wall_seconds": 0.5,
    }
    fields.update(score_overrides)
    return sim_results.RunResult(
        score=sim_results.Score(**fields),  # type: ignore[arg-type]
        times=times,
        demand=demand,
        observed=observed,
        ready=ready,
        starting=starting,
        scored_from=n // 4 if scored_from is None else scored_from,
        decisions=decisions,
        forecast=forecast,
    )


# ---------------------------------------------------------------------------------------------
# A small HTML reader: checks nesting and collects images, tables and text
# ---------------------------------------------------------------------------------------------

VOID = {"meta", "img", "br", "hr", "link", "input", "source", "col", "area", "base", "wbr"}


@dataclasses.dataclass
class Cell:
    text: str
    bold: bool


@dataclasses.dataclass
class Table:
    cls: str | None
    rows: list[list[Cell]] = dataclasses.field(default_factory=list)


class Doc(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: list[Table] = []
        self.text_parts: list[str] = []
        self._stack: list[str] = []
        self._table: Table | None = None
        self._row: list[Cell] | None = None
        self._cell: list[str] | None = None
        self._bold = False
        self.feed(text)
        self.close()
        assert self._stack == [], f"unclosed tags: {self._stack}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag not in VOID:
            self._stack.append(tag)
        if tag == "table":
            self._table = Table(a.get("class"))
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell, self._bold = [], False
        elif tag == "b" and self._cell is not None:
            self._bold = True

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self._stack and self._stack[-1] == tag, f"</{tag}> closes {self._stack[-1:]}"
        self._stack.pop()
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(Cell("".join(self._cell).strip(), self._bold))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self._table.rows.append(self._row)
            self._row = None
        elif tag == "table" and self._table is not None:
            self.tables.append(self._table)
            self._table = None

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)
        if self._cell is not None:
            self._cell.append(data)

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def images(self) -> list[bytes]:
        out = []
        for tag, attrs in self.tags:
            if tag == "img":
                src = attrs.get("src") or ""
                prefix = "data:image/png;base64,"
                assert src.startswith(prefix), src[:40]
                out.append(base64.b64decode(src[len(prefix) :], validate=True))
        return out

    def tables_of(self, cls: str) -> list[Table]:
        return [t for t in self.tables if t.cls == cls]


def score_rows(table: Table) -> dict[str, dict[str, Cell]]:
    """Rows of a score table keyed by policy, cells keyed by column title."""
    header = [c.text for c in table.rows[0]]
    return {row[0].text: dict(zip(header, row)) for row in table.rows[1:]}


@pytest.fixture(scope="module")
def two_traces() -> list[sim_results.RunResult]:
    return [
        make_result(trace="diurnal", policy="hpa", unserved_pct=1.5),
        make_result(trace="diurnal", policy="predictive", with_forecast=True, unserved_pct=0.25),
        make_result(trace="diurnal", policy="oracle", with_decisions=False, unserved_pct=0.0),
        make_result(trace="bursty", policy="hpa", n=1500, period_ticks=200, unserved_pct=3.75),
        make_result(trace="bursty", policy="predictive", n=1500, period_ticks=200, unserved_pct=2.125),
        make_result(trace="bursty", policy="oracle", n=1500, period_ticks=200, unserved_pct=0.0),
    ]


@pytest.fixture(scope="module")
def two_traces_html(two_traces: list[sim_results.RunResult]) -> str:
    return report.render_report(
        two_traces, command="scaleahead simulate --report out.html", generated_at="2026-01-02T03:04:05+00:00"
    )


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_write_report_writes_one_well_formed_html_file(tmp_path, two_traces) -> None:
    out = tmp_path / "out.html"
    out.write_text("old report")

    report.write_report(out, two_traces, title="my title", generated_at="then")

    text = out.read_text(encoding="utf-8")
    doc = Doc(text)
    assert text.startswith("<!DOCTYPE html>")
    assert [t for t, _ in doc.tags[:3]] == ["html", "head", "meta"]
    assert "my title" in doc.text
    # The write is atomic: only the report is left in the directory, no temp file.
    assert os.listdir(tmp_path) == ["out.html"]


def test_each_trace_has_an_overview_and_a_zoom_plot_as_embedded_png(two_traces_html) -> None:
    images = Doc(two_traces_html).images()

    assert len(images) == 4  # 2 traces × (overview + zoom)
    assert all(img.startswith(PNG_SIGNATURE) for img in images)


def test_sections_follow_the_first_seen_order_of_traces() -> None:
    results = [
        make_result(trace="zeta", policy="hpa", n=400),
        make_result(trace="alpha", policy="hpa", n=400),
        make_result(trace="zeta", policy="oracle", n=400),
    ]
    doc = Doc(report.render_report(results, generated_at="t"))

    headings = [a for t, a in doc.tags if t == "section" and (a.get("class") == "trace")]
    assert len(headings) == 2
    tables = doc.tables_of("scores")
    assert [list(score_rows(t)) for t in tables] == [["hpa", "oracle"], ["hpa"]]
    assert doc.text.index("zeta") < doc.text.index("alpha")


def test_score_table_shows_every_policy_with_its_formatted_scores(two_traces, two_traces_html) -> None:
    tables = Doc(two_traces_html).tables_of("scores")

    assert len(tables) == 2
    by_trace = {"diurnal": score_rows(tables[0]), "bursty": score_rows(tables[1])}
    for r in two_traces:
        row = by_trace[r.score.trace][r.score.policy]
        assert row["unserved %"].text == f"{r.score.unserved_pct:.3f}"
        assert row["pod-hours"].text == "123.5"  # hours: 1 decimal
        assert row["cost ratio"].text == "1.235"  # ratio: 3 decimals
        assert row["wall s"].text == "0.50"
        assert row["scale actions"].text == str(r.score.scale_actions)
    # Every Score field but the trace has a column.
    header = [c.text for c in tables[0].rows[0]]
    assert len(header) == len(sim_results.SCORE_FIELDS) - 1


def test_summary_lists_every_trace_and_policy(two_traces, two_traces_html) -> None:
    (summary,) = Doc(two_traces_html).tables_of("summary")

    cells = [[c.text for c in row] for row in summary.rows[1:]]
    assert len(cells) == len(two_traces)
    assert cells[0][:3] == ["diurnal", "hpa", "1.500"]
    assert cells[3][:3] == ["bursty", "hpa", "3.750"]
    assert cells[4][:2] == ["predictive", "2.125"]  # trace cell spans its rows


def test_header_shows_escaped_command_generation_time_and_every_metric(two_traces) -> None:
    html_text = report.render_report(
        two_traces, command="scaleahead simulate --policy '<x>' && echo", generated_at="2026-01-02T03:04:05+00:00"
    )
    doc = Doc(html_text)

    assert "scaleahead simulate --policy &#x27;&lt;x&gt;&#x27; &amp;&amp; echo" in html_text
    assert "2026-01-02T03:04:05+00:00" in doc.text
    assert sum(1 for tag, _ in doc.tags if tag == "dt") >= 6  # one legend line per section-3 field
    legend = [name for name, _ in report._METRIC_LEGEND]
    assert legend == [
        "unserved_pct",
        "underprovisioned_time_pct",
        "pod_hours",
        "oracle_pod_hours",
        "cost_ratio",
        "scale_actions",
    ]
    for name in legend:
        assert name in doc.text


def test_data_strings_are_escaped() -> None:
    evil = "<script>alert('x')</script>"
    results = [
        make_result(trace=evil, policy="hpa<b>", n=400, reason="<img src=x onerror=alert(1)>"),
        make_result(trace=evil, policy="oracle", n=400),
    ]
    html_text = report.render_report(results, title="<i>t</i>", command=evil, generated_at="t")
    doc = Doc(html_text)

    assert evil not in html_text
    assert "<img src=x" not in html_text
    assert "&lt;script&gt;" in html_text
    assert not any(tag in ("script", "i") for tag, _ in doc.tags)
    assert all(tag != "img" or a["src"].startswith("data:image/png;base64,") for tag, a in doc.tags)
    assert evil in doc.text  # shown to the reader as text
    assert "hpa<b>" in doc.text


def test_forecast_band_changes_the_plot() -> None:
    def overview(**kw: object) -> bytes:
        return Doc(report.render_report([make_result(n=600, **kw)], generated_at="t")).images()[0]

    plain = overview()
    assert overview() == plain  # rendering is deterministic, so a difference means something
    assert overview(with_forecast=True) != plain


def test_best_non_oracle_value_per_column_is_bold() -> None:
    results = [
        make_result(policy="hpa", unserved_pct=1.5, pod_hours=100.0, scale_actions=50),
        make_result(policy="predictive", unserved_pct=0.2, pod_hours=120.0, scale_actions=30),
        make_result(policy="keda", unserved_pct=0.9, pod_hours=100.0, scale_actions=70),
        make_result(policy="oracle", unserved_pct=0.0, pod_hours=80.0, scale_actions=10),
    ]
    (table,) = Doc(report.render_report(results, generated_at="t")).tables_of("scores")
    rows = score_rows(table)

    def bold(column: str) -> set[str]:
        return {policy for policy, row in rows.items() if row[column].bold}

    assert bold("unserved %") == {"predictive"}
    assert bold("pod-hours") == {"hpa", "keda"}  # a tie bolds both
    assert bold("scale actions") == {"predictive"}
    assert bold("cost ratio") == set()  # not a highlighted column
    assert not any(c.bold for c in rows["oracle"].values())


def test_report_is_self_contained(two_traces_html) -> None:
    doc = Doc(two_traces_html)

    assert "http://" not in two_traces_html
    assert "https://" not in two_traces_html
    assert not any(tag in ("link", "script", "iframe", "object") for tag, _ in doc.tags)
    for tag, attrs in doc.tags:
        for name in ("src", "href"):
            value = attrs.get(name)
            assert value is None or value.startswith(("data:", "#")), (tag, name, value)


def test_single_policy_without_decisions_renders_both_plots_and_bolds_nothing() -> None:
    doc = Doc(report.render_report([make_result(policy="hpa", with_decisions=False)], generated_at="t"))

    assert len(doc.images()) == 2
    (table,) = doc.tables_of("scores")
    assert not any(c.bold for row in table.rows for c in row)
    assert not doc.tables_of("decisions")


def test_decision_reasons_are_summarised_per_policy() -> None:
    results = [make_result(policy="hpa", reason="ScaleUpLimit"), make_result(policy="oracle", with_decisions=False)]
    (table,) = Doc(report.render_report(results, generated_at="t")).tables_of("decisions")

    hpa = table.rows[1]
    assert hpa[0].text == "hpa"
    assert int(hpa[1].text) == results[0].score.scale_actions
    assert int(hpa[2].text) + int(hpa[3].text) == int(hpa[1].text)
    assert "ScaleUpLimit ×" in hpa[4].text


def test_trace_shorter_than_a_day_zooms_on_the_whole_scored_part() -> None:
    doc = Doc(report.render_report([make_result(n=2000)], generated_at="t"))  # 8.3 h

    assert len(doc.images()) == 2
    assert "Whole scored part" in doc.text
    assert "Busiest 24 h" not in doc.text


def test_trace_longer_than_a_day_zooms_on_the_busiest_24_hours() -> None:
    n = 3 * 5760  # 3 days of 15-s ticks
    result = make_result(n=n, period_ticks=5760)
    doc = Doc(report.render_report([result], generated_at="t"))

    assert "Busiest 24 h of the scored part" in doc.text
    window = report._zoom_window([report._prepare(result)])
    assert window is not None
    start, end = window
    assert end - start == pytest.approx(24 * 3600)
    peak = n // 4 + int(np.argmax(result.demand[n // 4 :]))
    assert start <= peak * TICK <= end  # the window holds the scored peak
    assert start >= (n // 4) * TICK  # and lies in the scored part


def test_empty_scored_part_says_nothing_scored() -> None:
    result = make_result(n=300, scored_from=300, unserved_pct=math.nan, cost_ratio=math.nan)
    doc = Doc(report.render_report([result], generated_at="t"))

    assert len(doc.images()) == 1  # the overview; no zoom
    assert "Nothing scored" in doc.text
    row = score_rows(doc.tables_of("scores")[0])["hpa"]
    assert row["unserved %"].text == "n/a"


def test_no_results_renders_a_page_saying_so() -> None:
    doc = Doc(report.render_report([], generated_at="t"))

    assert doc.images() == []
    assert "No results" in doc.text


def test_downsampling_keeps_spikes_and_every_shortfall() -> None:
    n = 100_000
    result = make_result(n=n, with_decisions=False)
    demand = np.full(n, 10.0)
    ready = np.full(n, 12.0)
    demand[54_321] = 30.0  # a one-tick spike, unserved
    result = dataclasses.replace(result, demand=demand, ready=ready, starting=np.zeros(n))

    view = report._view(report._prepare(result), 0, n, 3600.0)

    assert view.x.size <= report.MAX_PLOT_POINTS
    assert view.demand.max() == 30.0
    assert np.count_nonzero(view.shortfall) == 1
    assert view.shortfall.max() == 18.0


def test_thirty_days_of_ticks_render_quickly_and_stay_small(tmp_path) -> None:
    n = 30 * 86400 // 15  # 172,800 ticks
    results = [
        make_result(trace="month", policy="hpa", n=n, period_ticks=5760),
        make_result(trace="month", policy="predictive", n=n, period_ticks=5760, with_forecast=True),
    ]
    out = tmp_path / "month.html"

    began = time.perf_counter()
    report.write_report(out, results, generated_at="t")
    elapsed = time.perf_counter() - began

    assert elapsed < 10.0
    assert out.stat().st_size < 3_000_000
    assert len(Doc(out.read_text(encoding="utf-8")).images()) == 2


def test_values_that_read_the_same_are_bolded_alike() -> None:
    results = [
        make_result(policy="hpa", unserved_pct=0.00012),
        make_result(policy="predictive", unserved_pct=0.00031),  # both show 0.000
        make_result(policy="keda", unserved_pct=0.5),
    ]
    (table,) = Doc(report.render_report(results, generated_at="t")).tables_of("scores")
    rows = score_rows(table)

    assert {p for p, row in rows.items() if row["unserved %"].bold} == {"hpa", "predictive"}


def test_the_panel_title_names_the_lead_time_and_the_provisioning_quantiles_used() -> None:
    score = make_result(policy="scaleahead").score
    n = 8
    lead = np.full(n, 150.0)
    same = report._panel_title(score, {"lead_seconds": lead, "quantile": np.full(n, 0.85)})
    raised = report._panel_title(score, {"lead_seconds": lead, "quantile": np.array([np.nan, 0.85, 0.85, 0.975, 0.975, 0.95, 0.95, 0.95])})

    assert "lead time 150 s" in same and "quantile 0.85" in same and "–" not in same.split("quantile")[1]
    assert "quantile 0.85–0.975 (last 0.95)" in raised
    assert "quantile" not in report._panel_title(score, {"lead_seconds": lead})
    assert "HPA rung" not in same
    fallen = report._panel_title(score, {"lead_seconds": lead, "quantile": np.array([0.85, 0.85] + [np.nan] * 6)})
    assert "quantile 0.85" in fallen and "HPA rung on 75% of ticks" in fallen


def test_the_changes_of_provisioning_quantile_are_listed_with_their_reason_and_escaped() -> None:
    base = make_result(policy="scaleahead")
    start = float(base.times[0])
    changes = ((start + 86400.0 + 3600 * 5 + 60 * 7, "provisioning at quantile 0.975 from quantile 0.85: <the HPA> left load unserved"),)
    results = [make_result(policy="hpa"), dataclasses.replace(base, quantile_changes=changes)]
    html = report.render_report(results, generated_at="t")
    (table,) = Doc(html).tables_of("quantile-changes")

    assert [[c.text for c in row] for row in table.rows[1:]] == [
        ["scaleahead", "day 1, 05:07", "provisioning at quantile 0.975 from quantile 0.85: <the HPA> left load unserved"]
    ]
    assert "&lt;the HPA&gt;" in html and "<the HPA>" not in html
    assert "Changes of provisioning quantile (1)" in html
    assert "Changes of provisioning quantile" not in report.render_report([base], generated_at="t")  # none: no list
