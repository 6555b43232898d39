"""The scaleahead policy's forecasts made in a second process, ahead of its decisions (simulator only).

In the simulator the load a policy observes is a function of the trace alone
(``Scenario.observed``): the pods never change it. So everything the policy does with it to
forecast -- aggregate it into model steps, update the model, refit it once a day, predict -- can
run in a child process while the parent process makes the decisions, and a month of ticks takes
about the time of the slower of the two halves instead of their sum (docs/benchmarks.md, speed).

The child is a fork of the freshly built policy, before its first tick. It runs the policy's own
``_observe_load`` (``PredictivePolicy``, the same code the policy runs inline, on the same
observations) at every tick and sends each new forecast through a pipe, in order. The parent's
``FedPolicy`` takes forecast *i* at tick *i* and never before: no decision sees a forecast made
from later observations than the tick's own. The only difference from the inline run is the
forecast's length: the child cannot know the startup time the parent will have learned from its
pods by then, so it predicts as far as the longest startup the run can estimate
(``horizon_startup_seconds``), and the parent cuts each forecast to the steps it would have
asked for itself. Every point of a forecast depends only on its own step, so the cut forecast is
the inline one to the last digit (``tests/controller/sim/test_ahead.py`` compares whole runs).
Should the parent's estimate ever go past that startup, it replays the observations so far through
its own forecasting and goes on inline (the forecaster's state depends on the observations alone,
so the result is the same).

Used by ``engine.run`` for the scaleahead policy when the platform can fork and the run is at
least ``MIN_TICKS`` long (``SimConfig.forecast_process``; ``simulate --forecast-inline`` turns it
off).
"""

from __future__ import annotations

import math
import multiprocessing
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection

import numpy as np

from controller.decide import leadtime
from controller.policies import PredictivePolicy
from models.base import Forecast

#: Forecasts per message: one pickle per this many ticks (each forecast is a few hundred floats).
CHUNK_TICKS = 512
#: Runs shorter than a day (5760 ticks) forecast inline: a fork then costs more than it saves.
MIN_TICKS = 5760
#: In the log-normal variant the child predicts as far as this many times the median startup. The
#: policy's estimate is a decayed median of observed startups (sigma 0.3): it would need most of
#: the recent pods to start 2.5 times slower than the median (about 3 sigma) to go past it.
LOGNORMAL_HORIZON_FACTOR = 2.5


class FeedError(RuntimeError):
    """The forecast process failed, or its forecasts do not match the parent's ticks."""


class TooShort(FeedError):
    """The policy asked for a longer forecast than the child made (``FedPolicy`` then forecasts inline)."""


def available() -> bool:
    """Whether forecasts can be made in a forked child here (Linux and other POSIX systems)."""
    return "fork" in multiprocessing.get_all_start_methods()


def horizon_startup_seconds(policy: PredictivePolicy, *, startup_seconds: float, distribution: str) -> float:
    """The longest startup estimate the policy can reach in a run whose pods start as given."""
    longest = startup_seconds * (LOGNORMAL_HORIZON_FACTOR if distribution == "lognormal" else 1.0)
    return max(policy.startup.prior_seconds, longest)


class FedPolicy(PredictivePolicy):
    """``PredictivePolicy`` whose forecasts come from a ``ForecastFeed`` (set ``feed`` before the
    first tick); without a feed it forecasts inline as its parent class does."""

    feed: ForecastFeed | None = None

    def _observe_load(self, now: float, load: float | None) -> None:
        if self.feed is None:
            super()._observe_load(now, load)
            return
        try:
            made = self.feed.take(now, self._forecast_steps())
        except TooShort:
            # The startup estimate went past the longest the child allowed for: forecast inline from
            # here on, after replaying the observations so far (the same steps, so the same model).
            self._forecast_inline(self.feed)
            return
        if made is not None:
            self._forecast = made

    def _forecast_inline(self, feed: ForecastFeed) -> None:
        """Leave the feed: replay every observation up to this tick's through the inline forecasting."""
        self.feed = None
        feed.close()
        for _ in _forecasting(self, feed.times, feed.observed, feed.tick + 1):
            pass


class _Chunk:
    """The forecasts of ``CHUNK_TICKS`` consecutive ticks as the child sends them: one array of
    point paths and one of tables for the ticks that made a new forecast (pickled as two arrays,
    not hundreds), and their other fields."""

    def __init__(self, made: list[Forecast | None]) -> None:
        new = [f for f in made if f is not None]
        is_new = np.array([f is not None for f in made], dtype=bool)
        #: Per tick: the row of its new forecast, or -1 (no new forecast at that tick).
        self.rows = np.where(is_new, np.cumsum(is_new) - 1, -1)
        self.means = np.array([f.mean for f in new]) if new else np.zeros((0, 0))
        self.tables = np.array([f._table for f in new]) if new else np.zeros((0, 0, 0))
        self.fields = [(f.start, f.step_seconds, f._levels, f.fallback_reason, f.model) for f in new]

    def __len__(self) -> int:
        return len(self.rows)

    def forecast(self, pos: int, steps: int) -> Forecast | None:
        """The new forecast of the ``pos``-th tick cut to its first ``steps`` points (the forecast the
        policy makes inline), or ``None`` when that tick made none."""
        row = int(self.rows[pos])
        if row < 0:
            return None
        if steps > self.means.shape[1]:
            raise TooShort(f"the policy asked for a forecast of {steps} steps, the forecast process made {self.means.shape[1]}")
        start, step_seconds, levels, fallback_reason, model = self.fields[row]
        return Forecast._from_table(
            start=start,
            step_seconds=step_seconds,
            mean=self.means[row, :steps],
            levels=levels,
            table=self.tables[row, :, :steps],
            fallback_reason=fallback_reason,
            model=model,
        )


class ForecastFeed:
    """The parent's end: the child's forecasts, one per tick, in tick order."""

    def __init__(
        self, process: multiprocessing.process.BaseProcess, conn: Connection, times: np.ndarray, observed: np.ndarray
    ) -> None:
        self._process = process
        self._conn = conn
        self.times, self.observed = times, observed
        self._chunk = _Chunk([])
        self._pos = 0  # index in the chunk of the next tick's forecast
        self._tick = 0  # the next tick's index

    @classmethod
    def start(cls, policy: FedPolicy, *, times: np.ndarray, observed: np.ndarray, horizon_startup_seconds: float) -> ForecastFeed:
        """Fork the child from ``policy`` (fresh: before its first tick) and return the feed of its forecasts."""
        if policy.feed is not None or policy._forecast is not None:
            raise ValueError("a forecast feed starts from a policy that has not run a tick")
        receive, send = multiprocessing.Pipe(duplex=False)
        context = multiprocessing.get_context("fork")
        process = context.Process(
            target=_produce, args=(policy, send, times, observed, horizon_startup_seconds), daemon=True, name="scaleahead-forecasts"
        )
        process.start()
        send.close()  # the child's end: closed here, so the parent sees EOF if the child dies
        return cls(process, receive, times, observed)

    def take(self, now: float, steps: int) -> Forecast | None:
        """The forecast made at this tick, of ``steps`` points (``None``: none yet, or no new one at this tick)."""
        i = self._tick
        if i >= len(self.times) or float(self.times[i]) != now:
            raise FeedError(f"the policy asked for the forecast of time {now}, the feed is at tick {i}")
        if self._pos >= len(self._chunk):
            self._chunk, self._pos = self._receive(), 0
        made = self._chunk.forecast(self._pos, steps)
        self._pos += 1
        self._tick += 1
        return made

    def _receive(self) -> _Chunk:
        try:
            kind, payload = self._conn.recv()
        except EOFError:
            code = self._process.exitcode
            raise FeedError(f"the forecast process ended without sending its forecasts (exit code {code})") from None
        if kind == "error":
            raise FeedError(f"the forecast process failed:\n{payload}")
        return payload

    @property
    def tick(self) -> int:
        """The index of the next tick whose forecast ``take`` returns."""
        return self._tick

    def close(self) -> None:
        """Stop the child (it has usually finished) and free the pipe (again: nothing)."""
        self._conn.close()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=5)


def _produce(policy: FedPolicy, conn: Connection, times: np.ndarray, observed: np.ndarray, horizon_startup: float) -> None:
    """The child: the policy's own forecasting at every tick, each new forecast sent in order."""
    try:
        policy.feed = None
        # Predict as far as the longest startup estimate the parent can reach (cut there, ``_Chunk.forecast``).
        policy.startup = leadtime.StartupEstimate(prior_seconds=horizon_startup, quantile=policy.startup.quantile)
        chunk: list[Forecast | None] = []
        last = None
        for made in _forecasting(policy, times, observed, len(times)):
            chunk.append(None if made is last else made)
            last = made
            if len(chunk) == CHUNK_TICKS:
                conn.send(("forecasts", _Chunk(chunk)))
                chunk = []
        if chunk:
            conn.send(("forecasts", _Chunk(chunk)))
    except BaseException:  # noqa: BLE001 -- whatever it was, the parent must hear of it
        try:
            conn.send(("error", traceback.format_exc()))
        except OSError:
            pass
    finally:
        conn.close()


def _forecasting(policy: PredictivePolicy, times: np.ndarray, observed: np.ndarray, stop: int) -> Iterator[Forecast | None]:
    """The policy's own (inline) forecasting over ticks ``0 .. stop - 1``: its forecast after each."""
    for i in range(stop):
        value = float(observed[i])
        # What the simulator's metrics port returns at tick i (``SimMetrics.instant``).
        PredictivePolicy._observe_load(policy, float(times[i]), value if math.isfinite(value) else None)
        yield policy._forecast
