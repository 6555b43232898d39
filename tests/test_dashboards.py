"""Dashboards query only what the controller exports (STYLE.md section 7).

Every ``dashboards/*.json`` is parsed, every PromQL expression in it (panel targets and
template variable queries) is reduced to the metric names it reads, and each must be in
``controller.telemetry.METRIC_NAMES``. The extractor is a small PromQL lexer, not a parser:
it removes string literals, label matchers, range and subquery brackets, grouping clauses
(``by (...)``, ``on (...)``, ...), Grafana variables and numbers, then tells functions
(an identifier before ``(``) from keywords and metric names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller import telemetry

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))

# https://prometheus.io/docs/prometheus/latest/querying/functions/ and .../operators/
PROMQL_FUNCTIONS = frozenset(
    """
    abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp clamp_max
    clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month deg delta deriv exp
    floor histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar
    histogram_sum holt_winters double_exponential_smoothing hour idelta increase irate label_join label_replace
    last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month pi predict_linear
    present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort sort_by_label
    sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh time timestamp
    vector year
    sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio
    """.split()
)
PROMQL_KEYWORDS = frozenset(
    "by without on ignoring group_left group_right offset bool and or unless atan2 inf nan".split()
)
GRAFANA_FUNCTIONS = frozenset({"label_values", "query_result", "metrics", "label_names"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_NUMBER = re.compile(r"(?<![\w.:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)(?:[smhdwy]|ms)?(?![\w:])")
_IDENTIFIER = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana ``label_values(...)`` query) reads.

    Raises:
        AssertionError: An identifier before ``(`` that is not a known function (a typo, or a
            construct this lexer does not know).
    """
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)  # label matchers never nest
    while _BRACKETS.search(text):  # ranges and subqueries: [5m], [1h:1m]
        text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _VARIABLE.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word, call = match.group(1), match.group(2)
        if word.lower() in PROMQL_KEYWORDS:  # binary operators may precede a parenthesis too
            continue
        if call:
            assert word in PROMQL_FUNCTIONS | GRAFANA_FUNCTIONS, f"unknown function {word}( in {expr!r}"
        else:
            names.add(word)
    return names


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        pytest.param('rate(foo_total{job="a", le="0.5"}[5m])', {"foo_total"}, id="function-matchers-range"),
        pytest.param(
            "histogram_quantile(0.99, sum by (le, endpoint) (rate(x_bucket[$__rate_interval])))", {"x_bucket"},
            id="quantile-of-grouped-rate",
        ),
        pytest.param("a and on (instance) (b == 1)", {"a", "b"}, id="set-operator-with-on"),
        pytest.param("sum without (pod) (c) / ignoring(le) group_left d offset 5m", {"c", "d"}, id="grouping-keywords"),
        pytest.param("max_over_time(e[1h:1m]) > bool 1e3", {"e"}, id="subquery-and-bool"),
        pytest.param("label_values(scaleahead_desired_replicas, workload)", {"scaleahead_desired_replicas", "workload"},
                     id="grafana-label-values"),
        pytest.param('{__name__="f"}', set(), id="name-matcher-only"),
    ],
)
def test_the_extractor_finds_metric_names(expr, expected):
    assert metric_names(expr) == expected


def test_the_extractor_rejects_unknown_functions():
    with pytest.raises(AssertionError, match="unknown function"):
        metric_names("rates(foo[5m])")


def walk_panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))  # collapsed rows hold their panels


def expressions(dashboard: dict) -> Iterator[tuple[str, str]]:
    """``(where, expr)`` for every panel target and every query variable of a dashboard."""
    for panel in walk_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield f"panel {panel.get('title')!r} target {target.get('refId')}", target["expr"]


def variable_queries(dashboard: dict) -> Iterator[tuple[str, str]]:
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            yield f"variable {variable['name']}", query["query"] if isinstance(query, dict) else query


def test_there_is_a_dashboard():
    assert DASHBOARDS, "dashboards/*.json is empty"


@pytest.fixture(params=DASHBOARDS, ids=lambda path: path.name)
def dashboard(request) -> dict:
    return json.loads(request.param.read_text(encoding="utf-8"))


def test_dashboards_query_only_exported_metrics(dashboard):
    exported = set(telemetry.METRIC_NAMES)
    found = list(expressions(dashboard))
    assert found, "no PromQL expressions found"
    for where, expr in found:
        names = metric_names(expr)
        assert names, f"{where}: no metric name found in {expr!r}"
        assert names <= exported, f"{where}: {sorted(names - exported)} not exported by controller/telemetry.py"


def test_variable_queries_read_exported_metrics(dashboard):
    for where, query in variable_queries(dashboard):
        match = re.fullmatch(r"\s*label_values\(\s*(.+),\s*(\w+)\s*\)\s*", query)
        assert match, f"{where}: expected label_values(METRIC, LABEL), got {query!r}"
        assert metric_names(match.group(1)) <= set(telemetry.METRIC_NAMES), where


def test_dashboards_select_the_datasource_through_a_variable(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in walk_panels(dashboard["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel.get("targets", []):
            assert target.get("datasource", panel["datasource"])["uid"] == "${datasource}", panel["title"]


def test_the_workload_variable_lists_managed_workloads(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    workload = variables["workload"]
    query = workload["query"]["query"] if isinstance(workload["query"], dict) else workload["query"]
    assert query == "label_values(scaleahead_desired_replicas, workload)"


def test_every_panel_has_a_title_and_a_unique_id(dashboard):
    panels = list(walk_panels(dashboard["panels"]))
    assert all(panel.get("title", "").strip() for panel in panels)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))


def test_dashboards_have_a_uid_and_a_recent_schema(dashboard):
    assert dashboard["uid"]
    assert dashboard["schemaVersion"] >= 36
