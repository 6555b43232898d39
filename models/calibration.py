"""Quantiles from a model's own past errors: the layer that turns point paths into calibrated intervals.

Every model in this package produces a point path; this layer supplies the quantiles, the same way for
all of them, so that their intervals are comparable and the selector in ``models.auto`` can rank them by
pinball loss. It is split conformal prediction with two adaptive twists:

* **Scaled errors.** An h-step error is divided by the series' local volatility at the forecast origin
  (an exponentially weighted mean of ``|y[t] - y[t-1]|``), and multiplied back at prediction time.
  Load is heteroscedastic (a web server at night and at noon; Poisson counts grow noisier with the
  level), and unscaled errors give intervals too wide at night and too narrow at peak: right on
  average, wrong day by day.
* **Quantile tracking.** Between refits each quantile of the scaled errors moves by a small step
  towards the observed coverage (online gradient descent on the pinball loss, as in adaptive conformal
  inference, Gibbs & Candes 2021). Coverage then holds in the long run even when the error
  distribution drifts.

The ``"empirical"`` mode does neither: quantiles of the raw errors over a rolling window, refreshed
periodically. The naive baseline uses it, as the issue defines naive's intervals. An outcome the
model predicted exactly at every horizon (the load did not move) is left out of that window: a flat
stretch (an idle day at a constant load) would otherwise fill it with zeros, and after the load moved
again the table would keep a zero width for hours (the 85% quantile stays 0 until 15% of a day's
errors are above it). While the load has not moved for ``refresh_every`` outcomes the intervals have
no width; at the first outcome that moves, the table of the errors last seen while it moved is back.
"""

from __future__ import annotations

import math

import numpy as np

from models.base import DEFAULT_QUANTILES, combine_levels, interpolation_weights, lfilter, pinball_loss

#: Levels on which the error quantiles are kept; requested levels are interpolated between them.
GRID: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.975, 0.99)
_GRID = np.array(GRID)
_SCORED = np.array([GRID.index(q) for q in DEFAULT_QUANTILES])
_SCORED_LEVELS = np.array(DEFAULT_QUANTILES)[:, None]
_SCORED_ROW = _SCORED_LEVELS.T
# Normal quantiles of the grid, for horizons without enough errors yet.
_NORMAL = np.array(
    [-2.326, -1.960, -1.645, -1.282, -0.842, -0.524, -0.253, 0.0, 0.253, 0.524, 0.842, 1.282, 1.645, 1.960, 2.326]
)
MODES = ("adaptive", "empirical")
#: ``observe`` folds this many outcomes into the recent scores at once (bounded memory, one batch).
_FOLD_EVERY = 64
# Interpolation rows and weights from GRID to each tuple of levels asked for (``Calibrator.quantiles``).
_WEIGHTS: dict[tuple[float, ...], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}


class Calibrator:
    """Keeps the error quantiles of one model for horizons ``1..horizon_steps``.

    Errors are normalised by the scale passed with each origin (``1.0`` for unscaled calibration).
    """

    def __init__(
        self,
        *,
        horizon_steps: int,
        mode: str = "adaptive",
        window: int = 1440,
        learning_rate: float = 0.02,
        refresh_every: int = 60,
        default_sd: float = 1.25,
    ) -> None:
        """Create an empty calibrator.

        Args:
            horizon_steps: Largest horizon with its own error distribution; longer horizons scale the
                last one by sqrt(h / horizon_steps).
            mode: ``"adaptive"`` (scaled errors + quantile tracking) or ``"empirical"`` (raw errors,
                rolling window).
            window: Number of recent origins whose errors define the quantiles and the recent score.
            learning_rate: Tracking step as a fraction of the 1%-99% spread of the errors.
            refresh_every: Empirical mode: recompute the quantiles every this many observations.
            default_sd: Spread (sd of the one-step error, in scale units) assumed while no errors are known.
        """
        if mode not in MODES:
            raise ValueError(f"calibration must be one of {MODES}, got {mode!r}")
        self.horizon_steps = int(horizon_steps)
        self.mode = mode
        self.window = max(int(window), 1)
        self.learning_rate = float(learning_rate)
        self.refresh_every = max(int(refresh_every), 1)
        self.default_sd = float(default_sd)
        hc = self.horizon_steps
        self._set_empirical(self._default_table(np.full(hc, np.nan)))
        self.still_run_ = 0  # empirical mode: outcomes in a row predicted exactly (``_still_rows``)
        self.step_ = np.zeros((hc, 1))
        self.errors_ = np.full((self.window, hc), np.nan)
        self.errors_pos_ = 0
        self.since_refresh_ = 0
        self.pending_paths_ = np.zeros((hc, hc))
        self.pending_scales_ = np.ones(hc)
        self.origins_ = 0  # origins seen so far; origin o predicts points o .. o + hc - 1
        self.first_origin_ = 0
        self._score = np.full(hc, np.nan)  # recent mean pinball loss per horizon (raw units)
        self._abs_error = np.full(hc, np.nan)  # recent mean absolute error of the point path per horizon
        self.uses_bases_ = False
        self._lags = np.arange(hc)  # horizon - 1 of each pending origin
        # Row ``target % hc``: the slot of the pending origin that predicted ``target`` at each horizon.
        self._slots = (np.arange(hc)[:, None] - self._lags[None, :]) % hc
        self.scores_known_ = False  # every horizon's score and absolute error is a finite number
        # Scored outcomes not yet folded into the scores: (value, preds, scales, scored table) each.
        self._unscored: list[tuple[float, np.ndarray, np.ndarray, np.ndarray]] = []
        # The scored levels' columns of a table (``observe``), and the table they were taken from.
        self._scored_of: np.ndarray | None = None
        self._scored_table = np.zeros((hc, _SCORED.size))

    # ------------------------------------------------------------------ recent scores

    @property
    def score_(self) -> np.ndarray:
        """Recent mean pinball loss per horizon (raw units; NaN where nothing was scored yet)."""
        self._fold_unscored()
        return self._score

    @property
    def abs_error_(self) -> np.ndarray:
        """Recent mean absolute error of the point path per horizon (NaN where nothing was scored yet)."""
        self._fold_unscored()
        return self._abs_error

    # ------------------------------------------------------------------ set-up from a replay

    def initialise(
        self, targets: np.ndarray, paths: np.ndarray, scales: np.ndarray, bases: np.ndarray | None = None
    ) -> None:
        """Learn the error quantiles from a replay of the model over recent history.

        Args:
            targets: Observed values of the replayed points, shape ``(w,)``, NaN when missing.
            paths: Point paths, shape ``(w + 1, horizon_steps)``; row ``j`` was made after absorbing
                ``j`` replayed points and predicts ``targets[j], targets[j + 1], ...``.
            scales: Scale at each of the ``w + 1`` origins.
            bases: Optional model quantiles on ``GRID``, shape ``(w + 1, horizon_steps, len(GRID))``, for
                models that predict quantiles themselves; the layer then corrects each level's own
                errors (conformalised quantile regression). ``None``: every level starts at the path.
        """
        hc = self.horizon_steps
        w = targets.shape[0]
        rows = paths.shape[0]
        idx = np.arange(rows)[:, None] + np.arange(hc)[None, :]
        inside = idx < w
        actual = np.where(inside, targets[np.minimum(idx, max(w - 1, 0))] if w else np.nan, np.nan)
        errors = actual - paths
        self.uses_bases_ = bases is not None
        if bases is None:
            z = errors / scales[:, None]
            if self.mode == "empirical":
                # Leave the still outcomes out, and count those since the last move (the origins
                # at the end, whose targets are not observed yet, are neither).
                still = _still_rows(z)
                moved = np.flatnonzero(~still & np.isfinite(z).any(axis=1))
                last_move = int(moved[-1]) if moved.size else -1
                self.still_run_ = int(still[last_move + 1 :].sum())
                if still.any():
                    z = z[~still]
            keep = z[-self.window :]
            self.errors_[:] = np.nan
            self.errors_[: keep.shape[0]] = keep
            self.errors_pos_ = keep.shape[0] % self.window
            self._set_empirical(self._empirical_table(keep))
            spread = self.table_[:, -1] - self.table_[:, 0]
            base = paths[:, :, None]
        else:
            z = (actual[:, :, None] - bases) / scales[:, None, None]
            keep = z[-self.window :]
            self.table_ = np.zeros((hc, _GRID.size))
            counts = np.isfinite(keep[:, :, 0]).sum(axis=0)
            enough = counts >= 10
            if enough.any():
                with np.errstate(invalid="ignore"):
                    for g, level in enumerate(GRID):
                        self.table_[enough, g] = np.nanquantile(keep[:, enough, g], level, axis=0)
            width = (bases[:, :, -1] - bases[:, :, 0]) / scales[:, None]
            spread = np.nanmedian(width, axis=0) + self.table_[:, -1] - self.table_[:, 0]
            base = bases
        self.step_ = self._step(spread)
        # Recent scores: in-sample over the replay, with the final table (same footing for every model).
        scored = base[:, :, _SCORED] if bases is not None else base
        quant = scored + scales[:, None, None] * self.table_[None, :, _SCORED]
        losses = pinball_loss(actual[:, :, None], quant, _SCORED_LEVELS.T[None, :, :]).mean(axis=2)
        with np.errstate(invalid="ignore"):
            self._score = _nanmean0(losses[-self.window :])
            self._abs_error = _nanmean0(np.abs(errors[-self.window :]))
        self._unscored = []
        # The last hc origins are still waiting for some of their targets.
        self.origins_ = rows
        self.first_origin_ = 0
        self.scores_known_ = False
        if self.uses_bases_:
            self.pending_bases_ = np.zeros((hc, hc, _GRID.size))
        for j in range(max(0, rows - hc), rows):
            self.pending_paths_[j % hc] = paths[j]
            self.pending_scales_[j % hc] = scales[j]
            if self.uses_bases_:
                self.pending_bases_[j % hc] = bases[j]

    def _step(self, spread: np.ndarray) -> np.ndarray:
        """The adaptive tracking step per horizon: ``learning_rate`` of the errors' spread. A replay
        without errors (a flat load) has no spread; the step then comes from ``default_sd`` (its
        1.96-sd interval), or the table could never move again once the load comes back."""
        fallback = 2 * 1.96 * max(self.default_sd, 1e-12)
        spread = np.where(np.isfinite(spread) & (spread > 1e-9), spread, fallback)
        return (self.learning_rate * spread)[:, None]

    def start_without_replay(self, path: np.ndarray, scale: float, base: np.ndarray | None = None) -> None:
        """Start tracking with no replayed errors: the default spread is used until errors arrive."""
        self.step_ = self._step(np.zeros(self.horizon_steps))
        self._fold_unscored()
        self.origins_ = 1
        self.first_origin_ = 0
        self.scores_known_ = False
        self.uses_bases_ = base is not None
        self.pending_paths_[0] = path
        self.pending_scales_[0] = scale
        if self.uses_bases_:
            self.pending_bases_ = np.zeros((self.horizon_steps, self.horizon_steps, _GRID.size))
            self.pending_bases_[0] = base
            self.table_ = np.zeros_like(self.table_)

    # ------------------------------------------------------------------ online

    def observe(self, value: float, path: np.ndarray, scale: float, base: np.ndarray | None = None) -> None:
        """Score the pending paths against a new observation, then register the new origin.

        Args:
            value: The newly observed point (NaN when missing: nothing is scored).
            path: The model's point path made after absorbing ``value``.
            scale: The scale at that new origin.
            base: The model's own quantiles at that origin (``(horizon_steps, len(GRID))``), when it
                was initialised with ``bases``.
        """
        hc = self.horizon_steps
        # Origin o predicts points o, o + 1, ... at h = 1, 2, ...; the new value is point origins_ - 1.
        target = self.origins_ - 1
        if math.isfinite(value):
            # Once every horizon has a pending origin (all but the first hc - 1 observations), the
            # masks below select everything; skipping them gives the same numbers.
            warm = target - hc + 1 >= self.first_origin_
            if warm:
                slots = self._slots[target % hc]
                origins = None
            else:
                origins = target - self._lags
                slots = origins % hc
            preds = self.pending_paths_[slots, self._lags]
            scales = self.pending_scales_[slots]
            if warm and not self.uses_bases_:
                # The usual step: learn now, fold the scores later (``_fold_unscored``, in one batch).
                z = (value - preds) / scales
                empirical = self.mode == "empirical"
                if empirical or math.isfinite(np.add.reduce(z)):
                    if empirical:
                        self._learn(z[:, None], finite=True)
                    else:  # ``_learn`` with every error finite
                        self.table_ = self.table_ + self.step_ * (_GRID - (z[:, None] <= self.table_))
                    table = self.table_
                    if table is not self._scored_of:  # an empirical table stays for many steps
                        self._scored_of, self._scored_table = table, table[:, _SCORED]
                    self._unscored.append((value, preds, scales, self._scored_table))
                    if len(self._unscored) >= _FOLD_EVERY:
                        self._fold_unscored()
                    self._register(path, scale, base)
                    return
            self._fold_unscored()
            valid = None if warm else origins >= self.first_origin_
            if self.uses_bases_:
                levels = self.pending_bases_[slots, self._lags, :]
                z = (value - levels) / scales[:, None]
            else:
                z = ((value - preds) / scales)[:, None]
            if valid is not None:
                z = np.where(valid[:, None], z, np.nan)
            self._learn(z)
            if self.uses_bases_:
                quant = (levels + scales[:, None] * self.table_)[:, _SCORED]
                diff = value - quant  # the pinball loss of models.base, averaged over the scored levels
                loss = np.add.reduce(np.maximum(_SCORED_ROW * diff, (_SCORED_ROW - 1.0) * diff), axis=1) / _SCORED.size
                self._fold(loss, np.abs(value - preds), warm, valid)
            else:
                self._fold_rows(np.array([value]), preds[None, :], scales[None, :], self.table_[None, :, _SCORED], warm, valid)
        self._register(path, scale, base)

    def _register(self, path: np.ndarray, scale: float, base: np.ndarray | None) -> None:
        """Keep a new origin's path until its points are observed."""
        slot = self.origins_ % self.horizon_steps
        self.pending_paths_[slot] = path
        self.pending_scales_[slot] = scale
        if self.uses_bases_:
            self.pending_bases_[slot] = base
        self.origins_ += 1

    def _fold_unscored(self) -> None:
        """Fold the outcomes ``observe`` left unscored into the recent scores, in order."""
        if not self._unscored:
            return
        rows, self._unscored = self._unscored, []
        values, preds, scales, tables = zip(*rows, strict=True)
        self._fold_rows(np.array(values), np.array(preds), np.array(scales), np.array(tables), True, None)

    def _fold_rows(
        self, values: np.ndarray, preds: np.ndarray, scales: np.ndarray, tables: np.ndarray, warm: bool, valid: np.ndarray | None
    ) -> None:
        """Score point paths against their outcomes and fold the losses into the recent scores.

        Args:
            values: The outcomes, shape ``(n,)``, in the order they were observed.
            preds: What the pending origins predicted for each, ``(n, hc)``.
            scales: Their scales, ``(n, hc)``.
            tables: The scored levels' error quantiles each outcome is scored with, ``(n, hc, levels)``.
            warm: Every horizon of every row has its origin (``valid`` is then ``None``).
            valid: For a single row that is not warm, which horizons have one.
        """
        quant = preds[:, :, None] + scales[:, :, None] * tables
        diff = values[:, None, None] - quant  # the pinball loss of models.base, averaged over the scored levels
        losses = np.add.reduce(np.maximum(_SCORED_ROW * diff, (_SCORED_ROW - 1.0) * diff), axis=2) / _SCORED.size
        abs_errs = np.abs(values[:, None] - preds)
        start = 0
        while start < len(values) and (len(values) - start == 1 or not (warm and self.scores_known_)):
            self._fold(losses[start], abs_errs[start], warm, valid)
            start += 1
        if start == len(values):
            return
        # The exponentially weighted means of the rest in one pass: the same products and sums, in
        # the same order, as folding them one by one (y = (1 - rate) * y + rate * x).
        rate = 1.0 / self.window
        score, abs_error = self._score, self._abs_error
        scores, _ = lfilter([rate], [1.0, rate - 1.0], losses[start:], axis=0, zi=((1 - rate) * score)[None, :])
        abs_errors, _ = lfilter([rate], [1.0, rate - 1.0], abs_errs[start:], axis=0, zi=((1 - rate) * abs_error)[None, :])
        if np.isfinite(scores).all() and np.isfinite(abs_errors).all():
            self._score, self._abs_error = scores[-1], abs_errors[-1]
            return
        for k in range(start, len(values)):  # a non-finite loss: one by one, as the general path does
            self._fold(losses[k], abs_errs[k], warm, valid)

    def _fold(self, loss: np.ndarray, abs_err: np.ndarray, warm: bool, valid: np.ndarray | None) -> None:
        """Fold one outcome's losses per horizon into the recent scores."""
        rate = 1.0 / self.window
        if warm and self.scores_known_:
            self._score = (1 - rate) * self._score + rate * loss
            self._abs_error = (1 - rate) * self._abs_error + rate * abs_err
            # A non-finite loss would make the next update restart from it: back to the general path.
            self.scores_known_ = math.isfinite(np.add.reduce(self._score) + np.add.reduce(self._abs_error))
            return
        if valid is None:
            valid = np.ones(self.horizon_steps, dtype=bool)
        self._score = np.where(valid, np.where(np.isnan(self._score), loss, (1 - rate) * self._score + rate * loss), self._score)
        self._abs_error = np.where(
            valid,
            np.where(np.isnan(self._abs_error), abs_err, (1 - rate) * self._abs_error + rate * abs_err),
            self._abs_error,
        )
        self.scores_known_ = bool(warm and np.isfinite(self._score).all() and np.isfinite(self._abs_error).all())

    def _learn(self, z: np.ndarray, *, finite: bool = False) -> None:
        """Fold one row of normalised errors (``(hc, 1)`` or ``(hc, len(GRID))``, NaN when not scorable;
        ``finite``: the caller knows that every error is a number)."""
        if self.mode == "adaptive" or self.uses_bases_:
            ok = np.isfinite(z[:, 0])
            below = (z <= self.table_).astype(float)
            move = self.step_ * (_GRID[None, :] - below)
            self.table_ = np.where(ok[:, None], self.table_ + move, self.table_)
            return
        row = z[:, 0]
        if not np.count_nonzero(row) or (not finite and _still_rows(row[None, :])[0]):
            self.still_run_ += 1  # the load did not move: nothing learnt about the errors
            return
        self.still_run_ = 0
        self.errors_[self.errors_pos_] = row
        self.errors_pos_ = (self.errors_pos_ + 1) % self.window
        self.since_refresh_ += 1
        if self.since_refresh_ >= self.refresh_every or self.flat_:
            self.since_refresh_ = 0
            self._set_empirical(self._empirical_table(self.errors_))

    # ------------------------------------------------------------------ read-out

    def table(self, horizon_steps: int) -> np.ndarray:
        """Normalised error quantiles on ``GRID`` for horizons ``1..horizon_steps``, shape ``(h, len(GRID))``."""
        hc = self.horizon_steps
        if self.still_run_ >= self.refresh_every:  # empirical mode: the load has not moved for a while
            return np.zeros((horizon_steps, _GRID.size))
        if horizon_steps <= hc:
            return self.table_[:horizon_steps]
        extra = np.arange(hc + 1, horizon_steps + 1)
        tail = self.table_[-1][None, :] * np.sqrt(extra / hc)[:, None]
        return np.vstack([self.table_, tail])

    def quantiles(self, start: np.ndarray, scale: float, levels: tuple[float, ...]) -> np.ndarray:
        """Quantile paths at ``levels``, shape ``(len(levels), h)``, from this calibrator's error table.

        Args:
            start: The point path, shape ``(h,)``, or the model's own quantiles on ``GRID``,
                shape ``(h, len(GRID))``, that the normalised errors are added to.
            scale: The scale at the forecast origin.
            levels: Sorted levels in (0, 1).
        """
        table = self.table(start.shape[0])
        grid = (start[None, :] if start.ndim == 1 else start.T) + scale * table.T
        grid.sort(axis=0)
        key = tuple(levels)
        weights = _WEIGHTS.get(key)
        if weights is None:
            weights = _WEIGHTS[key] = interpolation_weights(_GRID, np.array(key))
        return combine_levels(grid, weights)

    # ------------------------------------------------------------------ helpers

    def _set_empirical(self, table: np.ndarray) -> None:
        """Use an empirical table. One with no width at any horizon (a default from a flat history, or
        too few errors) is rebuilt at the next outcome learnt rather than ``refresh_every`` later."""
        self.table_ = table
        self.flat_ = not (table[:, -1] > table[:, 0]).any()

    def _empirical_table(self, z: np.ndarray) -> np.ndarray:
        """The error quantiles of the errors ``z`` (``(n, hc)``).

        Each refresh sorts the whole window (a day of 15-s steps: 5760 errors per horizon,
        about 1 ms). Keeping the columns sorted between refreshes (taking out the rows written
        over, merging in the new ones) took about 1.8 ms on the same windows: the per-column
        searches and copies cost more than the sort they save.
        """
        counts = np.isfinite(z).sum(axis=0)
        enough = counts >= 10
        ordered = np.sort(z, axis=0)
        if enough.all():  # the usual case: no default rows, and no copy of the columns
            return np.sort(_column_quantiles(ordered, counts).T, axis=1)
        table = self._default_table(z)
        if enough.any():
            table[enough] = _column_quantiles(ordered[:, enough], counts[enough]).T
        return np.sort(table, axis=1)

    def _default_table(self, z: np.ndarray) -> np.ndarray:
        """Normal quantiles growing with sqrt(h), from the one-step spread if known."""
        hc = self.horizon_steps
        first = z[:, 0] if z.ndim == 2 else np.array([np.nan])
        first = first[np.isfinite(first)]
        sd = float(np.std(first)) if first.size >= 3 else self.default_sd
        return sd * np.sqrt(np.arange(1, hc + 1))[:, None] * _NORMAL[None, :]


def _still_rows(z: np.ndarray) -> np.ndarray:
    """Per row of ``z`` (one outcome, horizons across): predicted exactly at every horizon that scored
    it, and scored at one at least. On a load that moves an exact zero at every horizon does not happen."""
    finite = np.isfinite(z)
    return finite.any(axis=1) & ~np.where(finite, z, 0.0).any(axis=1)


def _column_quantiles(ordered: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``np.nanquantile(z, GRID, axis=0)`` (linear interpolation) of the columns of ``z``, given
    ``ordered`` (``z`` with each column sorted) and each column's ``counts`` of finite values.

    Sorting puts NaN last, so each column's finite values are its first ``counts`` rows; this avoids
    ``nanquantile``'s per-column Python loop, which dominated a refresh of the error table.
    """
    pos = _GRID[:, None] * (counts[None, :] - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, counts[None, :] - 1)
    frac = pos - lo
    below = np.take_along_axis(ordered, lo, axis=0)
    above = np.take_along_axis(ordered, hi, axis=0)
    return below + frac * (above - below)


def _nanmean0(values: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN; NaN where a column has no value."""
    counts = np.isfinite(values).sum(axis=0)
    sums = np.nansum(values, axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def ewma_abs_diff(y: np.ndarray, *, halflife_steps: float, initial: float | None = None) -> np.ndarray:
    """Local volatility: exponentially weighted mean of ``|y[t] - y[t-1]|`` after each point.

    Args:
        y: Finite values (missing points already filled).
        halflife_steps: Half-life of the weights, in steps.
        initial: Starting value; defaults to the mean absolute difference of the first half-life.

    Returns:
        Array of the same length; element ``t`` uses points up to ``t`` only.
    """
    y = np.asarray(y, dtype=float)
    diffs = np.abs(np.diff(y, prepend=y[:1]))
    rate = 1.0 - 0.5 ** (1.0 / max(halflife_steps, 1e-9))
    if initial is None:
        head = diffs[1 : 1 + max(int(halflife_steps), 2)]
        initial = float(head.mean()) if head.size else 0.0
    out, _ = lfilter([rate], [1.0, rate - 1.0], diffs, zi=np.array([(1.0 - rate) * initial]))
    return out
