"""``scaleahead backtest`` as a user runs it, against a real Prometheus holding a real load.

The server (``controller.sim.promharness``) is backfilled with two days of the bundled
``nab_elb_requests.csv`` (a 300-s step, with two 600-s gaps) as the gauge
``scaleahead_test_load{job="x"}``, shifted so that it ends ten minutes before now.
A range query at the data's own 300-s step, starting on a data timestamp, returns
exactly the recorded values, so ``backtest`` must score what ``simulate`` scores on
the same rows written to a CSV.

These tests fail (they never skip) when the Debian package ``prometheus`` is missing.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from controller import backtestcli
from controller.__main__ import main
from controller.errors import UserError
from controller.sim import promharness
from controller.sim.traces import load_trace
from controller.simcli import bundled_traces

NAB = next(p for p in bundled_traces() if p.name == "nab_elb_requests.csv")
QUERY = 'scaleahead_test_load{job="x"}'
SCORE_FIELDS = {
    "trace", "policy", "startup_seconds", "peak_pods", "wall_seconds",
    "unserved_pct", "underprovisioned_time_pct", "pod_hours", "oracle_pod_hours", "cost_ratio", "scale_actions",
}
COMPARED = ("unserved_pct", "underprovisioned_time_pct", "pod_hours", "oracle_pod_hours", "cost_ratio", "scale_actions")


@dataclass(frozen=True)
class Recorded:
    url: str
    timestamps: np.ndarray  # as stored in Prometheus (shifted)
    values: np.ndarray
    csv: Path  # the same rows as a trace file

    @property
    def start(self) -> str:
        return str(int(self.timestamps[0]))

    @property
    def end(self) -> str:
        return backtestcli.format_time(float(self.timestamps[-1]))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    trace = load_trace(NAB)
    rows = slice(800, 800 + 2 * 288 + 1)  # two days at 300 s; rows 906 and 1149 are followed by 600-s gaps
    ts, vs = trace.timestamps[rows], trace.values[rows]
    assert np.count_nonzero(np.diff(ts) > 300) == 2
    # Shift to end ten minutes before now, in whole seconds so the timestamps stay exact.
    # (promharness: retention counts from the newest block and overlapping blocks are allowed,
    # so recent backfilled history sits beside the empty head without trouble.)
    ts = ts + (int(time.time()) - 600 - int(ts[-1]))
    csv = tmp_path_factory.mktemp("backtest") / "recorded.csv"
    csv.write_text("timestamp,value\n" + "".join(f"{int(t)},{v:g}\n" for t, v in zip(ts, vs)))
    # A 60-s lookback, shorter than the 300-s step: a time in a 600-s gap has no sample
    # within the lookback, so it comes back missing (as the CSV's missing row) instead of
    # repeating the previous sample (Prometheus 2.x's lookback is closed at t - delta).
    server = promharness.PrometheusServer(lookback_delta_seconds=60.0)
    try:
        server.backfill([
            promharness.gauge_series("scaleahead_test_load", {"job": "x"}, ts, vs),
            # A second job (so the bare metric name selects two series) and a negative "load".
            promharness.gauge_series("scaleahead_test_load", {"job": "y"}, ts[-12:], vs[-12:]),
            promharness.gauge_series("scaleahead_test_negative", {}, ts[-12:], -vs[-12:]),
        ])
        server.start()
        yield Recorded(url=server.url, timestamps=ts, values=vs, csv=csv)
    finally:
        server.close()


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["backtest", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def json_lines(text: str) -> dict[str, dict]:
    return {row["policy"]: row for row in (json.loads(line) for line in text.splitlines() if line.strip())}


def simulate(capsys, csv: Path, *args: str) -> dict[str, dict]:
    policy = [] if "--policy" in args else ["--policy", "hpa,oracle"]  # backtest's default policies
    assert main(["simulate", "--trace", str(csv), "--json", "--no-progress", *policy, *args]) == 0
    return json_lines(capsys.readouterr().out)


def assert_same_scores(backtest: dict[str, dict], simulated: dict[str, dict]) -> None:
    assert set(backtest) == set(simulated)
    for policy, row in backtest.items():
        for field in COMPARED:
            assert row[field] == pytest.approx(simulated[policy][field], rel=1e-9, abs=1e-9), (policy, field)


def test_hpa_and_oracle_score_as_simulate_does_on_the_same_rows(recorded, capsys):
    code, out, err = run(capsys, "--prometheus", recorded.url, "--query", QUERY, "--start", recorded.start,
                         "--end", recorded.end, "--step-seconds", "300", "--json", "--no-progress")
    assert code == 0, err
    rows = json_lines(out)
    assert set(rows) == {"hpa", "oracle"}  # the default policies
    for row in rows.values():
        assert set(row) == SCORE_FIELDS
        assert row["trace"] == QUERY and row["startup_seconds"] == 120 and row["peak_pods"] == 40
    assert rows["hpa"]["unserved_pct"] > 0 and rows["oracle"]["unserved_pct"] == 0
    # The two gaps came back missing, as in the CSV.
    assert f"{len(recorded.timestamps)} points" in err and "(step 300 s, 2 missing)" in err
    assert_same_scores(rows, simulate(capsys, recorded.csv))


def test_capacity_per_pod_startup_and_connection_come_from_the_settings_and_flags_win(recorded, capsys, tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        f"metrics:\n  prometheus_url: {recorded.url}\n  capacity_per_pod: 25\n"
        "replicas:\n  startup_seconds: 60\n"
    )
    base = ["--settings", str(settings), "--query", QUERY, "--start", recorded.start, "--end", recorded.end,
            "--step-seconds", "300", "--policy", "oracle,hpa", "--json"]
    code, out, err = run(capsys, *base)
    assert code == 0, err
    rows = json_lines(out)
    q99 = float(np.quantile(recorded.values, 0.99))
    assert rows["oracle"]["startup_seconds"] == 60
    assert rows["oracle"]["peak_pods"] == pytest.approx(q99 / 25)  # demand = value / 25 pods
    # value / 25 is the benchmark's scaling with peak_pods = q99 / 25.
    assert_same_scores(rows, simulate(capsys, recorded.csv, "--peak-pods", repr(q99 / 25), "--startup-seconds", "60"))

    code, out, _ = run(capsys, *base, "--startup-seconds", "30", "--capacity-per-pod", "50")
    assert code == 0
    rows = json_lines(out)
    assert rows["hpa"]["startup_seconds"] == 30 and rows["hpa"]["peak_pods"] == pytest.approx(q99 / 50)
    code, out, _ = run(capsys, *base, "--peak-pods", "10")  # --peak-pods also overrides the settings' capacity
    assert code == 0 and json_lines(out)["hpa"]["peak_pods"] == 10


def test_table_and_report_with_relative_times_and_the_default_step(recorded, capsys, tmp_path):
    out_html = tmp_path / "backtest.html"
    code, out, err = run(capsys, "--prometheus", recorded.url, "--query", QUERY, "--start", "-3d",
                         "--report", str(out_html), "--name", "elb")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["trace", "policy", "unserved_%"]
    assert [r.split()[:2] for r in rows] == [["elb", "hpa"], ["elb", "oracle"]]
    html = out_html.read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "scaleahead backtest report" in html and "--step-seconds 60" in html
    # The command shown replays the same, absolute, range.
    assert "--start -3d" not in html
    assert re.search(r"--start \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ --end \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", html)
    assert f"report written to {out_html}" in err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scaleahead: error: "), err
    return lines[0]


def test_an_unreachable_prometheus_is_one_error_naming_the_url(capsys):
    url = f"http://127.0.0.1:{promharness.free_port()}"
    code, out, err = run(capsys, "--prometheus", url, "--query", QUERY, "--start", "-1h", "--timeout-seconds", "2")
    assert code == 2 and out == ""
    assert url in one_error_line(err) and "connection" in err


def test_a_query_without_data_or_a_bad_query_is_one_error(recorded, capsys):
    code, _, err = run(capsys, "--prometheus", recorded.url, "--query", "scaleahead_no_such_metric",
                       "--start", recorded.start, "--end", recorded.end)
    assert code == 2 and "returned no data between" in one_error_line(err)
    code, _, err = run(capsys, "--prometheus", recorded.url, "--query", "sum(", "--start", "-1h")
    assert code == 2 and recorded.url in one_error_line(err) and "parse error" in err
    code, _, err = run(capsys, "--prometheus", recorded.url, "--query", "scaleahead_test_load", "--start", "-1h")
    assert code == 2 and "returned 2 series" in one_error_line(err) and "sum(...)" in err
    code, _, err = run(capsys, "--prometheus", recorded.url, "--query", "scaleahead_test_negative", "--start", "-1h")
    assert code == 2 and "a load cannot be negative" in one_error_line(err)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--start", "2026-11-02T00:00:00Z", "--end", "2026-11-01T00:00:00Z"], "is not after --start",
                     id="end-before-start"),
        pytest.param(["--start", "-1h", "--end", "-2h"], "is not after --start", id="relative-end-before-start"),
        pytest.param(["--start", "yesterday"], "cannot read --start 'yesterday'", id="bad-start-format"),
        pytest.param(["--start", "-1h", "--end", "2026-13-01T00:00:00Z"], "cannot read --end", id="bad-end-date"),
        pytest.param(["--start", "2026-11-01T00:00:00"], "has no time zone", id="no-time-zone"),
        pytest.param(["--start", "-91d"], "at most 90 days", id="range-over-90-days"),
        pytest.param(["--start", "-1h", "--step-seconds", "0"], "--step-seconds must be positive", id="zero-step"),
        pytest.param(["--start", "-1d", "--step-seconds", "0.001"], "use a larger --step-seconds",
                     id="too-many-points"),  # 86,400,001 points
        pytest.param(["--start", "-1h", "--policy", "hpa,nope"], "unknown policy 'nope'", id="unknown-policy"),
        pytest.param(["--start", "-1h", "--capacity-per-pod", "0"], "--capacity-per-pod must be positive",
                     id="zero-capacity"),
    ],
)
def test_mistakes_in_the_arguments_are_one_error_before_any_query(capsys, args, message):
    unreachable = f"http://127.0.0.1:{promharness.free_port()}"  # never asked: the arguments fail first
    code, out, err = run(capsys, "--prometheus", unreachable, "--query", QUERY, *args)
    assert code == 2 and out == ""
    assert message in one_error_line(err)


def test_a_bad_url_settings_file_or_report_directory_is_one_error(capsys, tmp_path):
    code, _, err = run(capsys, "--prometheus", "localhost:9090", "--query", QUERY, "--start", "-1h")
    assert code == 2 and "http:// or https:// URL" in one_error_line(err)
    code, _, err = run(capsys, "--query", QUERY, "--start", "-1h")
    assert code == 2 and "--prometheus URL is required" in one_error_line(err)
    code, _, err = run(capsys, "--settings", str(tmp_path / "missing.yaml"), "--query", QUERY, "--start", "-1h")
    assert code == 2 and "missing.yaml" in one_error_line(err)
    code, _, err = run(capsys, "--prometheus", "http://127.0.0.1:1", "--query", QUERY, "--start", "-1h",
                       "--report", str(tmp_path / "no" / "such" / "dir" / "r.html"))
    assert code == 2 and "does not exist" in one_error_line(err)
    code, _, err = run(capsys, "--prometheus", "http://127.0.0.1:1", "--query", QUERY, "--start", "-1h",
                       "--bearer-token-file", str(tmp_path / "token"))
    assert code == 2 and "bearer token file" in one_error_line(err)
    settings = tmp_path / "bad.yaml"
    settings.write_text("forecast:\n  model: prophet\n")
    code, _, err = run(capsys, "--prometheus", "http://127.0.0.1:1", "--query", QUERY, "--start", "-1h",
                       "--settings", str(settings), "--policy", "scaleahead")
    assert code == 2 and "forecast.model: unknown model 'prophet'; known: auto, ets" in one_error_line(err)


NOW = 1_793_491_200.0  # 2026-11-01T00:00:00Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01T00:00:00Z", NOW),
        ("2026-11-01t01:30:00.5+01:30", NOW + 0.5),
        ("2026-11-01 00:00:00z", NOW),
        ("2026-11-01", NOW),
        ("1793491200", NOW),
        ("1793491200.25", NOW + 0.25),
        ("now", NOW),
        ("NOW", NOW),
        ("-7d", NOW - 7 * 86400),
        ("-12h", NOW - 12 * 3600),
        ("now-1d12h", NOW - 36 * 3600),
        ("-90s", NOW - 90),
        ("-2w", NOW - 14 * 86400),
        ("-1.5h", NOW - 5400),
    ],
)
def test_times_in_every_documented_form(text, expected):
    assert backtestcli.parse_time(text, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "yesterday", "-7", "7d", "-7x", "now+1h", "2026-11-01T25:00:00Z", "1e9", "nan"])
def test_other_times_are_refused(text):
    with pytest.raises(UserError, match="cannot read"):
        backtestcli.parse_time(text, now=NOW)


def test_format_time_round_trips_and_the_range_counts_points():
    assert backtestcli.format_time(NOW) == "2026-11-01T00:00:00Z"
    assert backtestcli.parse_time(backtestcli.format_time(NOW + 0.25), now=0) == NOW + 0.25
    rng = backtestcli.resolve_range(start="-1h", end="now", step_seconds=60, now=NOW)
    assert (rng.start, rng.end, rng.points) == (NOW - 3600, NOW, 61)


WORKLOADS = """\
forecast: {{raise_quantile_to: [], lower_quantile_to: [], lean_quantile: null, fallback_to_hpa: false}}
metrics: {{prometheus_url: "{url}"}}
workloads:
  - namespace: shop
    name: web
  - namespace: shop
    name: checkout
    replicas: {{startup_seconds: 60}}
    forecast: {{quantile: 0.99}}
"""


def test_a_workload_replays_with_its_own_overrides(recorded, capsys, tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text(WORKLOADS.format(url=recorded.url))
    base = ["--settings", str(settings), "--query", QUERY, "--start", recorded.start, "--end", recorded.end,
            "--step-seconds", "300", "--json"]

    code, out, err = run(capsys, *base, "--policy", "scaleahead", "--startup-seconds", "120")
    assert code == 0, err
    plain = json_lines(out)["scaleahead"]
    report = tmp_path / "checkout.html"
    code, out, err = run(capsys, *base, "--policy", "scaleahead", "--startup-seconds", "120", "--workload", "shop/checkout",
                         "--report", str(report))
    assert code == 0, err
    checkout = json_lines(out)["scaleahead"]
    assert "--workload shop/checkout" in report.read_text()  # the replaying command names the workload
    code, out, err = run(capsys, *base, "--policy", "scaleahead", "--startup-seconds", "120", "--workload", "shop/web")
    assert code == 0, err
    web = json_lines(out)["scaleahead"]

    # quantile 0.99 instead of 0.85: more pods, less unserved demand; web has no override
    assert checkout["pod_hours"] > plain["pod_hours"]
    assert checkout["unserved_pct"] <= plain["unserved_pct"]
    assert {k: web[k] for k in COMPARED} == {k: plain[k] for k in COMPARED}
    code, out, err = run(capsys, *base, "--policy", "hpa", "--workload", "shop/checkout")
    assert code == 0, err
    assert json_lines(out)["hpa"]["startup_seconds"] == 60  # the workload's startup prior


def test_a_workload_that_is_not_in_the_settings_is_one_error(capsys, tmp_path):
    unreachable = f"http://127.0.0.1:{promharness.free_port()}"  # never asked: the arguments fail first
    settings = tmp_path / "settings.yaml"
    settings.write_text(WORKLOADS.format(url=unreachable))
    base = ["--query", QUERY, "--start", "-1h"]

    code, _, err = run(capsys, "--prometheus", unreachable, *base, "--workload", "shop/web")
    assert code == 2 and "--workload needs --settings" in one_error_line(err)
    code, _, err = run(capsys, "--settings", str(settings), *base, "--workload", "web")
    assert code == 2 and "--workload must be NAMESPACE/NAME, got 'web'" in one_error_line(err)
    code, _, err = run(capsys, "--settings", str(settings), *base, "--workload", "shop/cart")
    assert code == 2 and "no such workload" in (line := one_error_line(err)) and "shop/web, shop/checkout" in line
    bad = tmp_path / "bad.yaml"
    bad.write_text(WORKLOADS.format(url=unreachable).replace("quantile: 0.99", "quantile: 0.99, model: prophet"))
    code, _, err = run(capsys, "--settings", str(bad), *base, "--workload", "shop/checkout", "--policy", "scaleahead")
    assert code == 2 and "workloads[1].forecast.model: unknown model 'prophet'" in one_error_line(err)
