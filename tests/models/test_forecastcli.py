"""``scaleahead forecast-eval``: the JSON contract and the user-facing errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from controller import forecastcli
from controller.errors import UserError
from models import evaluate

JSON_FIELDS = {
    "trace",
    "model",
    "horizon_seconds",
    "mase_naive",
    "mase_seasonal_naive",
    "pinball",
    "coverage_80",
    "coverage_95",
    "fit_seconds",
    "predict_seconds",
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scaleahead")
    forecastcli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    # two days of 5-minute points with a daily cycle
    rng = np.random.default_rng(0)
    t = np.arange(576)
    values = 100 + 30 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 3, t.size)
    path = tmp_path / "small_trace.csv"
    path.write_text("timestamp,value\n" + "".join(f"{300 * i},{v:.3f}\n" for i, v in zip(t, values, strict=True)))
    return path


def test_json_prints_one_object_per_model_and_horizon_with_exactly_the_contract_fields(
    trace_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse(["forecast-eval", "--trace", str(trace_file), "--horizon-seconds", "210,900",
                  "--models", "naive,auto", "--json"])

    assert args.func(args) == 0

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["model"], r["horizon_seconds"]) for r in lines] == [
        ("naive", 210.0), ("naive", 900.0), ("auto", 210.0), ("auto", 900.0)
    ]
    for record in lines:
        assert set(record) == JSON_FIELDS
        assert record["trace"] == "small_trace"
    naive_210 = lines[0]
    assert naive_210["mase_naive"] == 1.0
    assert 0.0 <= naive_210["coverage_80"] <= naive_210["coverage_95"] <= 1.0


def test_the_row_json_fields_match_the_documented_contract() -> None:
    assert set(evaluate.Row.JSON_FIELDS) == JSON_FIELDS


def test_without_json_a_table_is_printed(trace_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["forecast-eval", "--trace", str(trace_file), "--horizon-seconds", "300", "--models", "naive"])

    args.func(args)

    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["trace", "model", "horizon_s", "steps"]
    assert out[1].split()[:4] == ["small_trace", "naive", "300", "1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--trace", "/nonexistent/x.csv"], "no such file: /nonexistent/x.csv", id="missing-file"),
        pytest.param(["--horizon-seconds", "210,abc"], "'abc' is not a number", id="bad-horizon"),
        pytest.param(["--horizon-seconds", "-5"], "positive", id="negative-horizon"),
        pytest.param(["--models", "naive,prophet"], "unknown prophet", id="unknown-model"),
    ],
)
def test_user_errors_name_what_is_wrong(trace_file: Path, argv: list[str], message: str) -> None:
    base = ["forecast-eval", "--trace", str(trace_file)]
    args = parse(base + argv if argv[0] != "--trace" else ["forecast-eval", *argv])

    with pytest.raises(UserError, match=message):
        args.func(args)


def test_a_malformed_line_is_a_user_error_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,value\n0,1\n300,oops\n")
    args = parse(["forecast-eval", "--trace", str(path)])

    with pytest.raises(UserError, match=r"bad.csv:3: value 'oops' is not a number"):
        args.func(args)


def test_a_trace_too_short_for_a_horizon_is_refused_saying_how_much_history_it_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from controller.__main__ import main

    path = tmp_path / "tiny.csv"
    path.write_text("timestamp,value\n0,1\n300,2\n600,3\n")

    code = main(["forecast-eval", "--trace", str(path), "--models", "naive", "--json"])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""  # nothing printed before the refusal (the 210-s horizon alone would score)
    assert captured.err.strip() == (
        f"scaleahead: error: --trace {path}: too short to score --horizon-seconds 900: it has 3 points of 300 s; "
        "a 3-step horizon needs at least 4 points (1200 s, of which the first 25% is warm-up history)"
    )


def test_json_is_strict_with_null_for_a_missing_score(
    trace_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = evaluate.evaluate_series

    def with_holes(*args, **kwargs):
        rows = real(*args, **kwargs)
        return [evaluate.Row(**{**{f: getattr(r, f) for f in evaluate.Row.JSON_FIELDS},
                                "mase_naive": float("inf"), "pinball": float("nan")}) for r in rows]  # fmt: skip

    monkeypatch.setattr(evaluate, "evaluate_series", with_holes)
    args = parse(["forecast-eval", "--trace", str(trace_file), "--horizon-seconds", "300", "--models", "naive", "--json"])

    assert args.func(args) == 0

    def refuse(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")

    (record,) = [json.loads(line, parse_constant=refuse) for line in capsys.readouterr().out.splitlines()]
    assert record["mase_naive"] is None and record["pinball"] is None
    assert record["coverage_80"] is not None
