"""The automatic model: per series and per horizon, the candidate with the lowest recent loss.

Every candidate runs side by side. Each one's recent score is its mean pinball loss (over the quantiles
0.025, 0.1, 0.5, 0.9, 0.975) on rolling-origin forecasts: first those of the replay that calibrates it
at fit time, then, between refits, those it made on every ``update`` (a prequential backtest that costs
nothing extra, since the calibration layer scores them anyway). Design choices:

* **Per-horizon choice.** The best model one step ahead is often not the best fifteen steps ahead
  (smoothing wins early, the seasonal profile later), so the forecast path is assembled per horizon.
* **Point forecast by absolute error.** The quantiles come from the candidate with the lowest recent
  pinball loss, the point forecast (``mean``) from the one with the lowest recent mean absolute error,
  the loss a point forecast is judged by; the two often differ on spiky series (``point_score``).
* **A combination as one more candidate.** ``"median"`` is the median of the other candidates' point
  paths (naive's excepted), calibrated on their replays (``models.ensemble``). At one step ahead it often
  beats every single member (on the hourly CPU spikes of ``nab_asg_cpu``, by 6% in MAE over the best
  of the four); like any candidate it is chosen only where its recent scores are best.
* **Naive unless clearly better.** A candidate replaces the naive model only when its recent loss is
  at least ``margin`` below naive's. On a random walk nothing beats naive and noise in the scores
  would otherwise pick a worse model half of the time; the issue requires the selector never to do
  worse than naive.
* **Schedules.** The choice is refreshed every ``select_interval_steps`` updates (cheap: it compares
  stored scores) and all candidates are refitted every ``refit_interval_steps`` (expensive; the
  controller should rather call ``fit`` itself off the event loop and pass ``refit_interval_steps=0``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Self

import numpy as np

from models import base, create, ensemble, register
from models.core import DAY_SECONDS, Buffer

#: ``ensemble.NAME`` is the median of the other candidates except naive (``models.ensemble``).
CANDIDATES: tuple[str, ...] = ("naive", "seasonal_naive", "ets", "stl", "quantile_gbm", ensemble.NAME)


@register("auto")
class AutoSelect:
    """Chooses among ``candidates`` by recent pinball loss, per horizon; naive is the reactive default."""

    name: ClassVar[str] = "auto"

    def __init__(
        self,
        *,
        candidates: Sequence[str] = CANDIDATES,
        margin: float = 0.03,
        point_score: str = "abs_error",
        refit_interval_steps: int | None = None,
        select_interval_steps: int | None = None,
        max_horizon_steps: int = 16,
        seed: int = 0,
        history_seconds: float = 14 * DAY_SECONDS,
        **shared: object,
    ) -> None:
        """Args:
        candidates: Registered model names to choose from; ``naive`` is always added. The name
            ``ensemble.NAME`` (``"median"``) adds the median of the other candidates' point paths
            except naive's (``models.ensemble``), when at least two of them are fitted.
        margin: Relative improvement over naive a candidate needs to be chosen.
        point_score: How the point forecast (``mean``) is chosen per horizon: ``"abs_error"`` takes the
            candidate with the lowest recent mean absolute error (the loss a point forecast is judged
            by), ``"pinball"`` the candidate whose quantiles are chosen. Quantiles are always chosen by
            pinball loss.
        refit_interval_steps: Refit every candidate after this many updated points; ``None`` means one
            day of steps; ``0`` never (the caller refits).
        select_interval_steps: Re-rank the candidates after this many points; ``None`` means one hour.
        max_horizon_steps: As for every model: horizons with their own calibration and choice.
        seed: Seed passed to every candidate.
        history_seconds: History kept for internal refits and passed to the candidates.
        **shared: Further shared settings passed to every candidate (see ``HistoryForecaster``).
        """
        names = list(dict.fromkeys(["naive", *candidates]))
        if "auto" in names:
            raise ValueError("auto cannot be its own candidate")
        self.combine = ensemble.NAME in names
        if self.combine:
            names.remove(ensemble.NAME)
        self.candidates = tuple(names)
        self.margin = float(margin)
        if point_score not in ("abs_error", "pinball"):
            raise ValueError(f"point_score must be 'abs_error' or 'pinball', got {point_score!r}")
        self.point_score = point_score
        self.refit_interval_steps = refit_interval_steps
        self.select_interval_steps = select_interval_steps
        self.max_horizon_steps = max(int(max_horizon_steps), 1)
        self.seed = int(seed)
        self.history_seconds = float(history_seconds)
        self.shared = dict(shared)
        self.fitted_ = False

    def fit(self, y: np.ndarray, *, step_seconds: float, start_seconds: float = 0.0) -> Self:
        """Fit every candidate on ``y`` and choose among them (see ``models.base.Forecaster.fit``)."""
        y = np.asarray(y, dtype=float).ravel()
        self.step_seconds_ = float(step_seconds)
        # History for internal refits only (none when the caller refits: 14 days of 15-s steps are
        # 0.7 MiB): as much as a candidate fits on (``HistoryForecaster.fit``), so a refit reads the
        # same history however full the buffer is (``Buffer.lean``, as the policy's own history).
        keep = max(int(self.history_seconds / self.step_seconds_), 2 * self.max_horizon_steps, 64)
        self.history_ = None if self.refit_interval_steps == 0 else Buffer.lean(y, keep)
        self.start_seconds_ = float(start_seconds) + max(y.size - keep, 0) * self.step_seconds_
        self.models_ = {}
        for name in self.candidates:
            kwargs = {
                "max_horizon_steps": self.max_horizon_steps,
                "seed": self.seed,
                "history_seconds": self.history_seconds,
                "calibration": "adaptive",
                **self.shared,
            }
            if self.combine and name != "naive":
                kwargs["keep_replay"] = True
            self.models_[name] = create(name, **kwargs).fit(y, step_seconds=step_seconds, start_seconds=start_seconds)
        if self.combine:
            self._combine()
        day = max(int(DAY_SECONDS / self.step_seconds_), 1)
        hour = max(int(3600.0 / self.step_seconds_), 1)
        self.refit_every_ = day if self.refit_interval_steps is None else int(self.refit_interval_steps)
        self.select_every_ = hour if self.select_interval_steps is None else max(int(self.select_interval_steps), 1)
        self.since_fit_ = 0
        self.since_select_ = 0
        self.fitted_ = True
        self._select()
        return self

    def update(self, new_points: np.ndarray | float) -> Self:
        """Update every candidate; re-rank or refit when their schedules are due."""
        self._check_fitted()
        values = np.array(new_points, dtype=float).ravel()
        # The ensemble reads its members' paths after every point, so they advance point by point.
        chunks = values[:, None] if ensemble.NAME in self.models_ else values[None, :]
        for chunk in chunks:
            for model in self.models_.values():
                model.update(chunk)
        if self.history_ is not None:
            self.history_.extend(values)
        self.since_fit_ += values.size
        self.since_select_ += values.size
        if self.history_ is not None and self.refit_every_ and self.since_fit_ >= self.refit_every_:
            start = self.start_seconds_ + (self.history_.total - len(self.history_)) * self.step_seconds_
            self.fit(self.history_.view().copy(), step_seconds=self.step_seconds_, start_seconds=start)
        elif self.since_select_ >= self.select_every_:
            self._select()
        return self

    def predict(self, horizon_steps: int, quantiles: Sequence[float] = base.DEFAULT_QUANTILES) -> base.Forecast:
        """Assemble the forecast from the chosen candidate of each horizon."""
        self._check_fitted()
        horizon_steps = base.check_horizon(horizon_steps)
        levels = base.check_levels(quantiles)
        order, pick, point_pick, cols = self._assembly(horizon_steps)
        parts = {name: _predict_parts(self.models_[name], horizon_steps, levels) for name in order}
        first = parts[order[pick[0]]]
        if len(order) == 1:
            mean, values = first["mean"], first["values"]
        elif len(order) == 2:  # the usual case: the same rows as below, without stacking the tables
            one, other = (parts[name] for name in order)
            mean = np.where(point_pick == 1, other["mean"], one["mean"])
            values = np.where(pick == 1, other["values"], one["values"])
        else:
            mean = np.stack([p["mean"] for p in parts.values()])[point_pick, cols]
            # Every level of a horizon comes from one candidate, so sorting the levels once, in
            # make_forecast, gives what sorting each candidate's table first would.
            values = np.stack([p["values"] for p in parts.values()])[pick, :, cols].T
        reasons = [p["fallback_reason"] for p in parts.values() if p["fallback_reason"]]
        if set(parts) == {"naive"} and not reasons:
            reasons = [self.naive_reason_] if self.naive_reason_ else []
        return base.make_forecast(
            start=first["start"],
            step_seconds=first["step_seconds"],
            mean=mean,
            levels=levels,
            values=values,
            fallback_reason="; ".join(reasons) if reasons else None,
            model=f"auto[{','.join(parts)}]",
        )

    def _assembly(self, horizon_steps: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """Which candidates a forecast of ``horizon_steps`` reads, in order, and per horizon the
        index of the one giving the quantiles and of the one giving the point path (kept until
        the next selection: the controller predicts at every step)."""
        cached = self.assembly_.get(horizon_steps)
        if cached is None:
            steps = np.minimum(np.arange(horizon_steps), self.max_horizon_steps - 1)
            chosen = [self.choice_[i] for i in steps]
            pointed = [self.point_choice_[i] for i in steps]
            order = list(dict.fromkeys(chosen + pointed))
            pick = np.array([order.index(name) for name in chosen])
            point_pick = np.array([order.index(name) for name in pointed])
            cached = self.assembly_[horizon_steps] = (order, pick, point_pick, np.arange(horizon_steps))
        return cached

    def recent_scores(self) -> np.ndarray:
        """Recent pinball loss of the chosen candidate per horizon."""
        self._check_fitted()
        scores = {name: model.recent_scores() for name, model in self.models_.items()}
        return np.array([scores[name][i] for i, name in enumerate(self.choice_)])

    def _combine(self) -> None:
        """Add the median ensemble of the fitted candidates except naive, and free their replays."""
        members = [
            model
            for name, model in self.models_.items()
            if name != "naive" and getattr(model, "replay_", None) is not None and model.fallback_ is None
        ]
        if len(members) >= 2:
            self.models_[ensemble.NAME] = ensemble.MedianEnsemble(members)
        for model in members:
            model.replay_ = None  # a day of paths per model: only the ensemble's calibration needed them

    def _select(self) -> None:
        """Choose, per horizon, the candidates with the lowest recent scores, keeping naive unless beaten."""
        self.since_select_ = 0
        self.assembly_: dict[int, tuple[list[str], np.ndarray, np.ndarray, np.ndarray]] = {}
        self.choice_ = self._best(lambda model: model.recent_scores())
        if self.point_score == "abs_error":
            self.point_choice_ = self._best(lambda model: model.recent_abs_errors())
        else:
            self.point_choice_ = list(self.choice_)
        best = self.choice_ + self.point_choice_
        fell_back = [
            f"{name}: {model.fallback_reason_}"
            for name, model in self.models_.items()
            if name != "naive" and getattr(model, "fallback_", None) is not None
        ]
        if set(best) == {"naive"}:
            self.naive_reason_ = (
                "naive chosen; every candidate fell back (" + "; ".join(fell_back) + ")"
                if len(fell_back) == len(self.models_) - 1
                else "naive chosen; no candidate beat it in recent backtests"
            )
        else:
            self.naive_reason_ = None

    def _best(self, score: Callable[[base.Forecaster], np.ndarray]) -> list[str]:
        """Per horizon, the candidate with the lowest ``score``; naive unless beaten by ``margin``."""
        best = ["naive"] * self.max_horizon_steps
        best_score = score(self.models_["naive"]) * (1.0 - self.margin)
        for name, model in self.models_.items():
            if name == "naive" or getattr(model, "fallback_", None) is not None:
                continue
            scores = score(model)
            for i in range(self.max_horizon_steps):
                if np.isfinite(scores[i]) and (not np.isfinite(best_score[i]) or scores[i] < best_score[i]):
                    best[i], best_score[i] = name, scores[i]
        return best

    def _check_fitted(self) -> None:
        if not self.fitted_:
            raise RuntimeError("AutoSelect is not fitted; call fit() first")


def _predict_parts(model: base.Forecaster, horizon_steps: int, levels: tuple[float, ...]) -> dict:
    """``make_forecast``'s keywords for ``model``'s forecast: its own ``predict_parts`` when it has one."""
    own = getattr(model, "predict_parts", None)
    if own is not None:
        return own(horizon_steps, levels)
    f = model.predict(horizon_steps, levels)
    return {
        "start": f.start,
        "step_seconds": f.step_seconds,
        "mean": f.mean,
        "values": np.stack([f.quantiles[q] for q in levels]),
        "fallback_reason": f.fallback_reason,
        "model": f.model,
    }
