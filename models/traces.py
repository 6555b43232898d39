"""Reading ``timestamp,value`` trace CSVs (the format of ``../shared/traces``) onto a regular grid.

This small reader lives in ``models`` so that the evaluation does not depend on ``controller``; it uses
only the standard ``csv`` module and numpy, and names the file and line of any malformed row.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Trace:
    """A trace on its own regular step.

    Attributes:
        name: File name without directory and ``.csv``.
        start_seconds: Timestamp of ``values[0]`` (Unix or trace-relative seconds, as in the file).
        step_seconds: The step: the median spacing of the rows (including rows whose value is NaN).
        values: One value per step; NaN where a row is missing or its value was NaN.
    """

    name: str
    start_seconds: float
    step_seconds: float
    values: np.ndarray

    def timestamps(self) -> np.ndarray:
        """Timestamp (seconds) of every grid point."""
        return self.start_seconds + self.step_seconds * np.arange(self.values.size)


def read_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a ``timestamp,value`` CSV and place it on its regular grid.

    Rows whose value is empty or NaN are dropped, and so become missing grid points.

    Raises:
        OSError: the file cannot be opened.
        ValueError: the header is not ``timestamp,value``, a row is malformed, timestamps do not
            increase, or a timestamp is off the grid; the message names the file and line.
    """
    path = os.fspath(path)
    stamps: list[float] = []
    values: list[float] = []
    all_stamps: list[float] = []  # rows with a NaN value still tell the step
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != ["timestamp", "value"]:
            raise ValueError(f"{path}:1: expected the header 'timestamp,value', got {header!r}")
        for row in reader:
            line = reader.line_num
            if not row or all(not field.strip() for field in row):
                continue
            if len(row) != 2:
                raise ValueError(f"{path}:{line}: expected 2 fields (timestamp,value), got {len(row)}")
            try:
                stamp = float(row[0])
                value = float(row[1]) if row[1].strip() else math.nan
            except ValueError:
                raise ValueError(f"{path}:{line}: not a number in {','.join(row)!r}") from None
            if not math.isfinite(stamp):
                raise ValueError(f"{path}:{line}: timestamp is not finite")
            if all_stamps and stamp <= all_stamps[-1]:
                raise ValueError(f"{path}:{line}: timestamp {stamp:g} does not increase")
            all_stamps.append(stamp)
            if math.isfinite(value):
                stamps.append(stamp)
                values.append(value)
    if len(stamps) < 2:
        raise ValueError(f"{path}: fewer than two rows with a value")
    times = np.array(stamps)
    step = float(np.median(np.diff(np.array(all_stamps))))
    offsets = (times - times[0]) / step
    index = np.rint(offsets).astype(int)
    off_grid = np.abs(offsets - index) > 0.01
    if off_grid.any():
        bad = int(np.argmax(off_grid))
        raise ValueError(f"{path}: timestamp {times[bad]:g} is not on the {step:g}-second grid")
    grid = np.full(index[-1] + 1, np.nan)
    grid[index] = values
    name = os.path.splitext(os.path.basename(path))[0]
    return Trace(name=name, start_seconds=float(times[0]), step_seconds=step, values=grid)
