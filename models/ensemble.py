"""A forecast combination: the median of several fitted models' point paths, with its own quantiles.

Combining forecasts often beats every single model one step ahead, because the members' errors are
only partly correlated (Makridakis' M competitions; the median of a few models is also robust to one
member going astray, e.g. a Holt trend after a spike). The combination is not a registered model: it
has no parameters of its own and is built by ``models.auto`` from candidates that are already fitted,
so it costs nothing at fit time beyond one calibration. Design choices:

* **Median, not mean or learned weights.** With three or four members the median drops the most
  extreme path at every horizon; learned weights chase noise on a one-day backtest. With two members
  it is their mean.
* **Same calibration as every model.** The members' replays (``keep_replay``) give the combination's
  own out-of-sample errors over the same window, which initialise a ``models.calibration.Calibrator``
  exactly as a model's replay does; between refits it is fed the combined path after every point. Its
  recent pinball loss is therefore on the same footing as the candidates' and ``models.auto`` ranks it
  with them.
* **Members are updated by their owner.** ``update`` only reads the members' current paths, so the
  owner must update every member first, one point at a time (``models.auto`` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Self

import numpy as np

from models import base, calibration
from models.core import HistoryForecaster

#: Name under which ``models.auto`` lists the combination among its candidates.
NAME = "median"


class MedianEnsemble:
    """Median of the members' point paths; quantiles from the combination's own calibrated errors."""

    name: ClassVar[str] = NAME

    def __init__(self, members: Sequence[HistoryForecaster]) -> None:
        """Combine fitted members (at least two, none on a fallback, each fitted with ``keep_replay``).

        Raises:
            ValueError: fewer than two members, a member on its fallback or without a kept replay, or
                members that disagree on the step, horizon or position in the series.
        """
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
        for member in members:
            if member.fallback_ is not None or member.empty_:
                raise ValueError(f"member {member.name} runs on its fallback")
            if member.replay_ is None:
                raise ValueError(f"member {member.name} was fitted without keep_replay")
        first = members[0]
        for member in members[1:]:
            same = (
                member.step_seconds_ == first.step_seconds_
                and member.next_start_ == first.next_start_
                and member.max_horizon_steps == first.max_horizon_steps
            )
            if not same:
                raise ValueError(f"members {first.name} and {member.name} do not forecast the same points")
        self.members = members
        self.max_horizon_steps = first.max_horizon_steps
        self.step_seconds_ = first.step_seconds_
        self.next_start_ = first.next_start_
        self.fallback_ = None
        self.fallback_reason_ = None
        # The replays end at the same origin; keep the rows all of them have (normally every row).
        rows = min(member.replay_[1].shape[0] for member in members)
        paths = np.median(np.stack([member.replay_[1][-rows:] for member in members]), axis=0)
        targets, _, scales = first.replay_
        targets, scales = targets[targets.size - (rows - 1) :], scales[-rows:]
        own = first.calibrator_
        self.calibrator_ = calibration.Calibrator(
            horizon_steps=self.max_horizon_steps,
            mode=first.calibration,
            window=own.window,
            learning_rate=first.learning_rate,
            refresh_every=own.refresh_every,
            default_sd=own.default_sd,
        )
        if rows > 1:
            self.calibrator_.initialise(targets, paths, scales)
        else:
            self.calibrator_.start_without_replay(paths[-1], float(scales[-1]))
        self.path_ = paths[-1].copy()  # not a view: the replay's paths are freed after the fit
        self.scale_ = float(scales[-1])

    def update(self, new_points: np.ndarray | float) -> Self:
        """Score and record the combined path after one new point (the members already absorbed it).

        Raises:
            ValueError: more than one point (the members' paths after the earlier ones are gone).
        """
        values = np.array(new_points, dtype=float).ravel()
        if values.size == 0:
            return self
        if values.size > 1:
            raise ValueError("update the ensemble one point at a time, after its members")
        self.path_ = np.median(np.stack([member.path_ for member in self.members]), axis=0)
        self.scale_ = float(self.members[0].scale_)
        value = float(values[0])
        self.calibrator_.observe(value if np.isfinite(value) else np.nan, self.path_, self.scale_)
        self.next_start_ += self.step_seconds_
        return self

    def predict(self, horizon_steps: int, quantiles: Sequence[float] = base.DEFAULT_QUANTILES) -> base.Forecast:
        """Forecast ``horizon_steps`` points (see ``models.base.Forecaster.predict``)."""
        horizon_steps = base.check_horizon(horizon_steps)
        levels = base.check_levels(quantiles)
        if horizon_steps <= self.path_.size:
            path = self.path_[:horizon_steps]
        else:
            paths = [member.predict(horizon_steps, (0.5,)).mean for member in self.members]
            path = np.median(np.stack(paths), axis=0)
        values = self.calibrator_.quantiles(path, self.scale_, levels)
        return base.make_forecast(
            start=self.next_start_,
            step_seconds=self.step_seconds_,
            mean=path,
            levels=levels,
            values=values,
            model=f"{NAME}[{','.join(member.name for member in self.members)}]",
        )

    def recent_scores(self) -> np.ndarray:
        """Recent mean pinball loss per horizon, as ``HistoryForecaster.recent_scores``."""
        return self.calibrator_.score_.copy()

    def recent_abs_errors(self) -> np.ndarray:
        """Recent mean absolute error of the combined path per horizon."""
        return self.calibrator_.abs_error_.copy()
