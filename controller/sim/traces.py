"""Reading trace files (``timestamp,value`` CSV) for the simulator, with errors that name the file and the line.

The format's rules (BENCHMARK.md section 1, made strict: strictly increasing
timestamps, finite non-negative numbers, NaN or empty values dropped, at least
two usable rows) have one implementation, ``models.traces.parse_rows``, which
the forecast evaluation's ``models.traces.read_trace`` uses too; its module
docstring lists them. This module turns its ``ValueError`` into a
``TraceError`` with the same message, so that the CLI reports a user error.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.errors import UserError
from models.traces import parse_rows


class TraceError(UserError):
    """A trace file that cannot be read; the message names the file and, where it applies, the line."""


@dataclass(frozen=True)
class Trace:
    """A load trace: ``timestamps`` (Unix seconds, strictly increasing) and ``values`` (finite)."""

    name: str
    timestamps: np.ndarray
    values: np.ndarray
    path: str = ""

    @property
    def step_seconds(self) -> float:
        """The trace's own step: the most common gap between rows."""
        gaps = np.diff(self.timestamps)
        uniq, counts = np.unique(gaps, return_counts=True)
        return float(uniq[np.argmax(counts)])

    @property
    def span_seconds(self) -> float:
        return float(self.timestamps[-1] - self.timestamps[0])


def load_trace(path: str | os.PathLike[str], *, name: str | None = None) -> Trace:
    """Read a trace CSV.

    Args:
        path: the CSV file.
        name: the trace's name in reports; defaults to the file's stem.

    Raises:
        TraceError: the file is missing or unreadable, the header is not
            ``timestamp,value``, a row is malformed, timestamps do not increase,
            or fewer than two rows carry a value.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TraceError(f"{p}: no such trace file") from None
    except IsADirectoryError:
        raise TraceError(f"{p}: is a directory, not a trace file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{p}: cannot read trace file: {exc}") from None
    return parse_trace(text, source=str(p), name=name or p.stem)


def parse_trace(text: str, *, source: str, name: str) -> Trace:
    """Parse the text of a trace CSV; ``source`` names it in errors.

    Raises:
        TraceError: the text breaks a rule of ``models.traces.parse_rows`` (same message).
    """
    try:
        rows = parse_rows(text, source=source)
    except ValueError as exc:
        raise TraceError(str(exc)) from None
    kept = [row for row in rows if not math.isnan(row.value)]  # NaN rows are dropped (BENCHMARK.md section 1)
    return Trace(
        name=name,
        timestamps=np.asarray([row.timestamp for row in kept], dtype=float),
        values=np.asarray([row.value for row in kept], dtype=float),
        path=source,
    )
