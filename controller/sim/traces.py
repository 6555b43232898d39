"""Reading trace files (``timestamp,value`` CSV) with errors that name the file and the line.

Rules, from BENCHMARK.md section 1: the header is ``timestamp,value``;
timestamps are Unix seconds (any fixed step, rows may be missing); rows whose
value is NaN or empty are dropped. We also require strictly increasing
timestamps and finite numbers, and at least two usable rows, because a
simulator fed anything else would silently produce meaningless scores.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.errors import UserError


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
    """Parse the text of a trace CSV; ``source`` names it in errors."""
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise TraceError(f"{source}:1: empty trace file (expected the header 'timestamp,value')")
    header = [h.strip().lower() for h in lines[0].split(",")]
    if header != ["timestamp", "value"]:
        raise TraceError(f"{source}:1: expected the header 'timestamp,value', found {lines[0].strip()!r}")
    ts: list[float] = []
    vs: list[float] = []
    last_t = -math.inf
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != 2:
            raise TraceError(f"{source}:{lineno}: expected 2 fields 'timestamp,value', found {len(fields)}: {line.strip()!r}")
        t_text, v_text = fields[0].strip(), fields[1].strip()
        try:
            t = float(t_text)
        except ValueError:
            raise TraceError(f"{source}:{lineno}: timestamp {t_text!r} is not a number") from None
        if not math.isfinite(t):
            raise TraceError(f"{source}:{lineno}: timestamp {t_text!r} is not finite")
        if t <= last_t:
            raise TraceError(f"{source}:{lineno}: timestamp {t_text} does not increase (previous row has {last_t:g})")
        last_t = t
        if v_text == "" or v_text.lower() == "nan":
            continue  # NaN rows are dropped (BENCHMARK.md section 1)
        try:
            v = float(v_text)
        except ValueError:
            raise TraceError(f"{source}:{lineno}: value {v_text!r} is not a number") from None
        if not math.isfinite(v):
            raise TraceError(f"{source}:{lineno}: value {v_text!r} is not finite")
        if v < 0:
            raise TraceError(f"{source}:{lineno}: value {v_text} is negative; a load cannot be")
        ts.append(t)
        vs.append(v)
    if len(ts) < 2:
        raise TraceError(f"{source}: needs at least 2 rows with a value, found {len(ts)}")
    return Trace(name=name, timestamps=np.asarray(ts, dtype=float), values=np.asarray(vs, dtype=float), path=source)
