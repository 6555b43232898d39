"""Reading ``timestamp,value`` trace CSVs (the format of ``../shared/traces``): the one parser and its rules.

This module holds the only implementation of the trace format's rules. :func:`parse_rows` checks a file's
text and returns its rows with their line numbers; :func:`read_trace` places them on their regular grid
for the forecast evaluation, and ``controller.sim.traces`` builds the simulator's trace from the same rows
(re-raising the ``ValueError`` as its ``TraceError``, with the same message). It lives in ``models`` so that
the evaluation does not depend on ``controller``; it uses only the standard library and numpy.

The rules (BENCHMARK.md section 1, made strict so that a simulator or an evaluation fed anything else
cannot silently produce meaningless scores):

- Files are UTF-8; a byte-order mark before the header is ignored.
- The first line is the header ``timestamp,value`` (spaces around the names and their case are ignored).
- Blank lines are skipped. Every other line has exactly two comma-separated fields.
- The timestamp is a finite number (seconds) and strictly greater than the previous row's, counting
  rows whose value is dropped.
- A value that is empty or the text ``nan`` (any case) drops the row: it is a missing point. Any other
  value must be a finite, non-negative number (a load cannot be negative; ``inf`` is an error).
- At least two rows carry a value.

Every error is a ``ValueError`` whose message starts with ``<file>:<line>:`` (or ``<file>:`` for a
whole-file problem such as too few values).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


class Row(NamedTuple):
    """One data row of a trace file.

    Attributes:
        line: The row's line number in the file (the header is line 1).
        timestamp: Its timestamp in seconds.
        value: Its value; NaN when the value was empty or ``nan`` (a missing point).
    """

    line: int
    timestamp: float
    value: float


def parse_rows(text: str, *, source: str) -> list[Row]:
    """Check the text of a trace CSV against the rules above and return its data rows in file order.

    Rows whose value is dropped are returned with a NaN value, because their timestamps still count for
    "strictly increasing" and for :func:`read_trace`'s step.

    Args:
        text: The file's text.
        source: The file's name, used in error messages.

    Raises:
        ValueError: a rule is broken; the message names ``source`` and the line.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(f"{source}:1: empty trace file (expected the header 'timestamp,value')")
    header = [h.strip().lower() for h in lines[0].split(",")]
    if header != ["timestamp", "value"]:
        raise ValueError(f"{source}:1: expected the header 'timestamp,value', found {lines[0].strip()!r}")
    rows: list[Row] = []
    with_value = 0
    last_t = -math.inf
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != 2:
            raise ValueError(f"{source}:{lineno}: expected 2 fields 'timestamp,value', found {len(fields)}: {line.strip()!r}")
        t_text, v_text = fields[0].strip(), fields[1].strip()
        t = _finite(t_text, "timestamp", f"{source}:{lineno}")
        if t <= last_t:
            raise ValueError(f"{source}:{lineno}: timestamp {t_text} does not increase (previous row has {last_t:g})")
        last_t = t
        if v_text == "" or v_text.lower() == "nan":
            rows.append(Row(lineno, t, math.nan))  # a missing point (BENCHMARK.md section 1)
            continue
        v = _finite(v_text, "value", f"{source}:{lineno}")
        if v < 0:
            raise ValueError(f"{source}:{lineno}: value {v_text} is negative; a load cannot be")
        rows.append(Row(lineno, t, v))
        with_value += 1
    if with_value < 2:
        raise ValueError(f"{source}: needs at least 2 rows with a value, found {with_value}")
    return rows


def _finite(text: str, what: str, where: str) -> float:
    """``text`` as a finite number; otherwise a ``ValueError`` naming ``where`` and ``what``."""
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{where}: {what} {text!r} is not finite")
    return number


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
    """Read a ``timestamp,value`` CSV (checked by :func:`parse_rows`) and place it on its regular grid.

    Rows whose value is empty or NaN are dropped, and so become missing grid points. The step is the
    median spacing of all rows; every row with a value must fall on that grid.

    Raises:
        OSError: the file cannot be opened.
        ValueError: the file is not UTF-8 text, breaks a rule of :func:`parse_rows`, or a timestamp is
            off the grid; the message names the file and line.
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8-sig") as handle:
        try:
            text = handle.read()
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: cannot read trace file: {exc}") from None
    rows = parse_rows(text, source=path)
    all_stamps = np.array([row.timestamp for row in rows])  # rows with a NaN value still tell the step
    kept = [row for row in rows if not math.isnan(row.value)]
    times = np.array([row.timestamp for row in kept])
    step = float(np.median(np.diff(all_stamps)))
    offsets = (times - times[0]) / step
    index = np.rint(offsets).astype(int)
    off_grid = np.abs(offsets - index) > 0.01
    if off_grid.any():
        bad = int(np.argmax(off_grid))
        raise ValueError(f"{path}:{kept[bad].line}: timestamp {times[bad]:g} is not on the {step:g}-second grid")
    grid = np.full(index[-1] + 1, np.nan)
    grid[index] = [row.value for row in kept]
    name = os.path.splitext(os.path.basename(path))[0]
    return Trace(name=name, start_seconds=float(times[0]), step_seconds=step, values=grid)
