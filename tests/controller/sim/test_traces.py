"""Trace files: the format of BENCHMARK.md section 1, with errors that name the file and the line."""

from __future__ import annotations

import numpy as np
import pytest

from controller.sim.traces import TraceError, load_trace
from models.traces import read_trace


def write(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_a_well_formed_trace_loads_with_its_name_and_step(tmp_path):
    p = write(tmp_path, "timestamp,value\n0,1\n300,2.5\n600,4\n", name="my_trace.csv")
    trace = load_trace(p)
    assert trace.name == "my_trace"
    assert list(trace.timestamps) == [0, 300, 600]
    assert list(trace.values) == [1, 2.5, 4]
    assert trace.step_seconds == 300


def test_nan_and_empty_values_are_dropped_and_missing_rows_allowed(tmp_path):
    p = write(tmp_path, "timestamp,value\n0,1\n60,nan\n120,\n300,2\n")
    trace = load_trace(p)
    assert list(trace.timestamps) == [0, 300]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", "t.csv:1: empty trace file", id="empty-file"),
        pytest.param("time,val\n0,1\n", "t.csv:1: expected the header 'timestamp,value'", id="wrong-header"),
        pytest.param("timestamp,value\n0,1\n60\n", "t.csv:3: expected 2 fields", id="missing-field"),
        pytest.param("timestamp,value\n0,1\n60,1,2\n", "t.csv:3: expected 2 fields", id="extra-field"),
        pytest.param("timestamp,value\n0,1\nabc,1\n", "t.csv:3: timestamp 'abc' is not a number", id="bad-timestamp"),
        pytest.param("timestamp,value\n0,1\n60,1x\n", "t.csv:3: value '1x' is not a number", id="bad-value"),
        pytest.param("timestamp,value\n0,1\n60,inf\n", "t.csv:3: value 'inf' is not finite", id="infinite-value"),
        pytest.param("timestamp,value\n0,1\n60,-3\n", "t.csv:3: value -3 is negative", id="negative-value"),
        pytest.param("timestamp,value\n0,1\n60,1\n60,2\n", "t.csv:4: timestamp 60 does not increase", id="repeated-timestamp"),
        pytest.param("timestamp,value\n0,1\n", "needs at least 2 rows with a value, found 1", id="one-row"),
    ],
)
def test_malformed_traces_are_reported_with_file_and_line(tmp_path, text, expected):
    p = write(tmp_path, text)
    with pytest.raises(TraceError) as err:
        load_trace(p)
    assert expected in str(err.value)
    assert str(p).split("/")[-1] in str(err.value)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("time,val\n0,1\n", id="wrong-header"),
        pytest.param("timestamp,value\n0,1\n60,1,2\n", id="extra-field"),
        pytest.param("timestamp,value\n0,1\n60,1x\n", id="bad-value"),
        pytest.param("timestamp,value\n0,1\n60,-3\n120,1\n", id="negative-value"),
        pytest.param("timestamp,value\n0,1\n60,nan\n60,2\n", id="repeat-after-nan"),
        pytest.param("timestamp,value\n0,1\n60,nan\n", id="one-value"),
    ],
)
def test_the_simulator_and_the_forecast_reader_reject_a_malformed_file_with_the_same_message(tmp_path, text):
    """One parser (``models.traces.parse_rows``) serves both readers, so their errors are identical."""
    p = write(tmp_path, text)
    with pytest.raises(TraceError) as sim_err:
        load_trace(p)
    with pytest.raises(ValueError) as model_err:
        read_trace(p)
    assert str(sim_err.value) == str(model_err.value)
    assert str(sim_err.value).startswith(f"{p}:")


def test_both_readers_keep_the_same_rows_of_a_well_formed_file(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b"\xef\xbb\xbftimestamp,value\n0,1\n60,nan\n120,\n180,4\n240,5\n")  # with a UTF-8 byte-order mark
    sim = load_trace(p)
    gridded = read_trace(p)
    kept = ~np.isnan(gridded.values)
    np.testing.assert_array_equal(gridded.timestamps()[kept], sim.timestamps)
    np.testing.assert_array_equal(gridded.values[kept], sim.values)


def test_a_missing_file_is_reported_by_name(tmp_path):
    with pytest.raises(TraceError, match="no_such.csv: no such trace file"):
        load_trace(tmp_path / "no_such.csv")


def test_the_bundled_traces_are_real_and_readable():
    from controller.simcli import bundled_traces

    paths = bundled_traces()
    assert {p.name for p in paths} == {"nab_elb_requests.csv", "nab_ec2_cpu_bursty.csv", "azure2019_vm_total_cpu.csv"}
    elb = load_trace(next(p for p in paths if p.name == "nab_elb_requests.csv"))
    # 4,032 five-minute rows; 8 five-minute points are missing between them (see the data README)
    assert len(elb.values) == 4032
    assert elb.step_seconds == 300
    assert int((np.diff(elb.timestamps) / 300 - 1).sum()) == 8
    assert np.all(np.diff(elb.timestamps) > 0)
