"""Reading ``timestamp,value`` CSVs onto their grid, and the errors for malformed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import traces


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.csv"
    path.write_text(text)
    return path


def test_rows_land_on_their_grid_with_missing_rows_and_nan_values_as_nan(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,value\n0,1\n60,2\n180,4\n240,nan\n300,6\n")

    trace = traces.read_trace(path)

    assert trace.name == "t"
    assert trace.start_seconds == 0.0
    assert trace.step_seconds == 60.0
    np.testing.assert_array_equal(trace.values, [1.0, 2.0, np.nan, 4.0, np.nan, 6.0])
    np.testing.assert_array_equal(trace.timestamps(), [0, 60, 120, 180, 240, 300])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("time,value\n0,1\n", "t.csv:1: expected the header", id="bad-header"),
        pytest.param("timestamp,value\n0,1\n60,x\n", "t.csv:3: value 'x' is not a number", id="not-a-number"),
        pytest.param("timestamp,value\n0,1\n60,1,2\n", "t.csv:3: expected 2 fields", id="three-fields"),
        pytest.param("timestamp,value\n60,1\n0,1\n", "t.csv:3: timestamp 0 does not increase", id="unsorted"),
        pytest.param("timestamp,value\n0,1\n", "t.csv: needs at least 2 rows with a value, found 1", id="one-row"),
        pytest.param("timestamp,value\n0,1\n60,nan\n", "t.csv: needs at least 2 rows with a value, found 1", id="one-value"),
        pytest.param("", "t.csv:1: empty trace file", id="empty-file"),
        pytest.param("timestamp,value\n0,1\n60,-3\n", "t.csv:3: value -3 is negative", id="negative-value"),
        pytest.param("timestamp,value\n0,1\n60,inf\n", "t.csv:3: value 'inf' is not finite", id="infinite-value"),
        pytest.param("timestamp,value\n0,1\n60,nan\n60,2\n", "t.csv:4: timestamp 60 does not increase", id="repeat-after-nan"),
        pytest.param("timestamp,value\n0,1\n60,1\n150,1\n180,1\n", "t.csv:4: timestamp 150 is not on the 60-second grid", id="off-grid"),
    ],
)
def test_malformed_files_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ValueError, match=message):
        traces.read_trace(path)


def test_a_byte_order_mark_blank_lines_and_nan_text_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"\xef\xbb\xbfTimestamp, Value\r\n0,1\r\n\r\n60,NaN\r\n120,3\r\n")

    trace = traces.read_trace(path)

    assert trace.step_seconds == 60.0
    np.testing.assert_array_equal(trace.values, [1.0, np.nan, 3.0])


def test_parse_rows_keeps_dropped_rows_with_their_line_numbers_and_a_nan_value() -> None:
    rows = traces.parse_rows("timestamp,value\n0,1\n\n60,\n120,2\n", source="s.csv")

    assert [(row.line, row.timestamp) for row in rows] == [(2, 0.0), (4, 60.0), (5, 120.0)]
    assert rows[0].value == 1.0 and np.isnan(rows[1].value) and rows[2].value == 2.0
