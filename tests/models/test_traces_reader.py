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
        pytest.param("timestamp,value\n0,1\n60,x\n", "t.csv:3: not a number", id="not-a-number"),
        pytest.param("timestamp,value\n0,1\n60,1,2\n", "t.csv:3: expected 2 fields", id="three-fields"),
        pytest.param("timestamp,value\n60,1\n0,1\n", "t.csv:3: timestamp 0 does not increase", id="unsorted"),
        pytest.param("timestamp,value\n0,1\n", "fewer than two rows", id="one-row"),
        pytest.param("timestamp,value\n0,1\n60,1\n150,1\n180,1\n", "not on the 60-second grid", id="off-grid"),
    ],
)
def test_malformed_files_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ValueError, match=message):
        traces.read_trace(path)
