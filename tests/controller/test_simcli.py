"""``scaleahead simulate`` and ``scaleahead demo`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.__main__ import main
from controller.sim import engine
from controller.sim.scenario import scenario_from_trace
from controller.sim.traces import load_trace
from controller.simcli import bundled_traces, simulate_all

ROOT = Path(__file__).resolve().parents[2]
SHARED_TRACES = ROOT.parent / "shared" / "traces"
SMALL = str(next(p for p in bundled_traces() if p.name == "nab_elb_requests.csv"))


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_simulate_nasa_prints_one_object_per_policy_and_the_hpa_costs_about_1_45_times_the_oracle(capsys):
    nasa = SHARED_TRACES / "nasa_http_jul95.csv"
    assert nasa.exists(), f"the benchmark traces must sit beside the repository: {nasa}"
    assert main(["simulate", "--trace", str(nasa), "--policy", "hpa,oracle", "--json", "--no-progress"]) == 0
    rows = {r["policy"]: r for r in json_lines(capsys.readouterr().out)}
    assert set(rows) == {"hpa", "oracle"}
    hpa, oracle = rows["hpa"], rows["oracle"]
    assert hpa["trace"] == "nasa_http_jul95" and hpa["startup_seconds"] == 120 and hpa["peak_pods"] == 40
    assert hpa["unserved_pct"] > 0
    assert 1.4 <= hpa["cost_ratio"] <= 1.5
    assert oracle["unserved_pct"] == 0
    assert oracle["cost_ratio"] == pytest.approx(1.0)


def test_a_cost_ratio_without_scored_demand_is_null_in_strict_json(capsys, tmp_path):
    # load at first, then none through the scored window: the oracle holds no pods there
    rows = ["timestamp,value"] + [f"{60 * i},{10 if i < 20 else 0}" for i in range(100)]
    trace = tmp_path / "zero_tail.csv"
    trace.write_text("\n".join(rows) + "\n")
    assert main(["simulate", "--trace", str(trace), "--policy", "hpa", "--json", "--no-progress"]) == 0
    out = capsys.readouterr().out
    (row,) = [json.loads(line, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}")) for line in out.splitlines()]
    assert row["cost_ratio"] is None and row["oracle_pod_hours"] == 0


def test_json_objects_have_exactly_the_fields_of_benchmark_section_5(capsys):
    assert main(["simulate", "--trace", SMALL, "--policy", "hpa", "--json", "--no-progress"]) == 0
    (row,) = json_lines(capsys.readouterr().out)
    assert set(row) == {
        "trace", "policy", "startup_seconds", "peak_pods", "wall_seconds",
        "unserved_pct", "underprovisioned_time_pct", "pod_hours", "oracle_pod_hours", "cost_ratio", "scale_actions",
    }


def test_options_reach_the_simulation(capsys):
    args = ["simulate", "--trace", SMALL, "--policy", "hpa", "--json", "--no-progress"]
    main([*args, "--startup-seconds", "300", "--peak-pods", "10"])
    (row,) = json_lines(capsys.readouterr().out)
    assert row["startup_seconds"] == 300 and row["peak_pods"] == 10
    main([*args, "--startup-distribution", "lognormal", "--seed", "1"])
    (lognormal,) = json_lines(capsys.readouterr().out)
    main(args)
    (fixed,) = json_lines(capsys.readouterr().out)
    assert lognormal["pod_hours"] != fixed["pod_hours"]
    main([*args, "--hpa-target", "0.5"])
    (half,) = json_lines(capsys.readouterr().out)
    assert half["pod_hours"] > fixed["pod_hours"]  # more headroom costs more
    main([*args, "--interpolation", "previous"])
    (held,) = json_lines(capsys.readouterr().out)
    # the rows held until the next one: the same demand as the scenario built that way, not the linear one
    scenario = scenario_from_trace(load_trace(SMALL), interpolation="previous")
    (expected,) = simulate_all([scenario], ["hpa"], engine.SimConfig())
    assert held["oracle_pod_hours"] == expected.score.oracle_pod_hours != fixed["oracle_pod_hours"]
    assert held["unserved_pct"] == expected.score.unserved_pct


def test_without_json_a_table_is_printed(capsys):
    assert main(["simulate", "--trace", SMALL, "--policy", "hpa,oracle", "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["trace", "policy", "unserved_%"]
    assert [line.split()[1] for line in out[1:]] == ["hpa", "oracle"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(None, "no such trace file", id="missing-file"),
        pytest.param("timestamp,value\n0,1\n60,oops\n", ":3: value 'oops' is not a number", id="malformed-line"),
        pytest.param("ts;value\n", ":1: expected the header", id="wrong-header"),
    ],
)
def test_a_bad_trace_is_one_clear_error_naming_the_file_and_line(tmp_path, capsys, content, expected):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    assert main(["simulate", "--trace", SMALL, str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scaleahead: error: ")
    assert "bad.csv" in err and expected in err
    assert "Traceback" not in err


def test_an_unknown_policy_is_refused_with_the_known_ones(capsys):
    assert main(["simulate", "--trace", SMALL, "--policy", "hpa,magic"]) == 2
    err = capsys.readouterr().err
    assert "unknown policy 'magic'" in err and "hpa" in err and "oracle" in err


def test_report_is_one_self_contained_html_file(tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["simulate", "--trace", SMALL, "--policy", "hpa,oracle", "--report", str(out), "--no-progress"]) == 0
    html = out.read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "nab_elb_requests" in html
    assert html.count("data:image/png;base64,") == 2
    assert "http://" not in html and "https://" not in html


def test_a_report_that_cannot_be_written_is_a_clear_error(tmp_path, capsys):
    target = tmp_path / "no" / "such" / "dir" / "r.html"
    assert main(["simulate", "--trace", SMALL, "--policy", "hpa", "--report", str(target), "--no-progress"]) == 2
    assert "cannot write the report" in capsys.readouterr().err


def test_long_runs_show_a_progress_bar(capsys):
    sc = scenario_from_trace(load_trace(SMALL))
    simulate_all([sc], ["hpa", "oracle"], engine.SimConfig(), show_progress=True)
    err = capsys.readouterr().err
    assert "nab_elb_requests / hpa" in err and "nab_elb_requests / oracle" in err
    assert "100%|" in err and "/162k" in err  # the bar counts both runs' ticks (2 x 80,781) and reached the end
    assert sc.n_ticks == 80781  # 1,211,700 s span / 15 s + 1


def test_demo_simulates_the_bundled_traces_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "demo.html"
    assert main(["demo", "--report", str(out), "--no-progress", "--policy", "hpa,oracle"]) == 0
    lines = capsys.readouterr().out.splitlines()
    traces = {line.split()[0] for line in lines[1:]}
    assert traces == {p.stem for p in bundled_traces()}
    assert out.exists() and "azure2019_vm_total_cpu" in out.read_text()


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        pytest.param(["--startup-seconds", "nan"], "--startup-seconds must be a finite number of seconds, got nan", id="startup-nan"),
        pytest.param(["--startup-seconds", "inf"], "--startup-seconds must be a finite number of seconds, got inf", id="startup-inf"),
        pytest.param(["--startup-seconds", "1e12"], "--startup-seconds must be at most 86400 (a day), got 1e+12", id="startup-huge"),
        pytest.param(["--peak-pods", "nan"], "--peak-pods must be a finite positive number, got nan", id="peak-nan"),
        pytest.param(["--peak-pods", "inf"], "--peak-pods must be a finite positive number, got inf", id="peak-inf"),
        pytest.param(["--peak-pods", "1e12"], "--peak-pods must be at most 10000, got 1e+12", id="peak-huge"),
        pytest.param(["--seed", "-1", "--startup-distribution", "lognormal"], "--seed must be a non-negative integer, got -1",
                     id="negative-seed"),
    ],
)
def test_out_of_range_options_are_one_clear_error(capsys, option, expected):
    # --policy hpa: with the oracle, --peak-pods 1e12 used to run for ever
    code, err = run_cli(capsys, "simulate", "--trace", SMALL, "--policy", "hpa", "--no-progress", *option)
    assert code == 2, err
    assert err.startswith("scaleahead: error: ") and expected in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_demo_checks_its_options_too(capsys):
    code, err = run_cli(capsys, "demo", "--no-progress", "--startup-seconds", "nan")
    assert code == 2 and "--startup-seconds must be a finite number" in err


def test_a_startup_longer_than_the_trace_is_refused(tmp_path, capsys):
    path = tmp_path / "short.csv"
    path.write_text("timestamp,value\n0,1\n300,2\n600,3\n")
    code, err = run_cli(capsys, "simulate", "--trace", str(path), "--policy", "hpa", "--no-progress", "--startup-seconds", "900")
    assert code == 2, err
    assert "short: --startup-seconds 900 is longer than the trace (600 s)" in err


@pytest.mark.parametrize(
    ("rows", "span"),
    [
        pytest.param([(0, 1), (400 * 86400, 2)], "34560000 s (400.0 days)", id="400-days"),
        # a day of one-minute rows, in milliseconds: read as seconds it spans 1,000 days
        pytest.param([(1_600_000_000_000 + 60_000 * i, 5 + i % 7) for i in range(1441)], "86400000 s (1000.0 days)",
                     id="milliseconds"),
    ],
)
def test_a_trace_spanning_more_than_a_year_is_refused_with_a_hint_about_milliseconds(tmp_path, capsys, rows, span):
    path = tmp_path / "long.csv"
    path.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows))
    code, err = run_cli(capsys, "simulate", "--trace", str(path), "--policy", "hpa", "--no-progress")
    assert code == 2, err
    assert f"long.csv: spans {span}, more than the simulator takes (366 days: 2108161 ticks of 15 s)" in err
    assert "the timestamps must be Unix seconds (not milliseconds)" in err


def test_the_report_directory_is_checked_before_simulating(tmp_path, capsys, monkeypatch):
    def no_simulation(*args, **kwargs):
        raise AssertionError("simulated before checking the report path")

    monkeypatch.setattr("controller.simcli.simulate_all", no_simulation)
    target = tmp_path / "missing" / "r.html"
    code, err = run_cli(capsys, "simulate", "--trace", SMALL, "--policy", "hpa", "--report", str(target), "--no-progress")
    assert code == 2, err
    assert f"cannot write the report {target}: the directory {target.parent} does not exist" in err
    code, err = run_cli(capsys, "simulate", "--trace", SMALL, "--policy", "hpa", "--report", str(tmp_path), "--no-progress")
    assert code == 2 and "it is a directory" in err
