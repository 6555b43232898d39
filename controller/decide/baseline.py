"""Counterfactuals on the workload's own load: what the HPA, and scaleahead at other quantiles, would have done.

The HPA's fixed headroom happens to cover some workloads' sudden jumps that no forecast
foresees (measured on Alibaba, docs/policy.md): there a higher provisioning quantile is worth
its pod-hours, elsewhere it is not. On others the forecast is so uncertain that its quantile
holds more pods than the HPA's headroom while serving far better (bursty loads, long
startups): there a lower quantile is still no worse than the HPA on both. Rather than one
quantile for every workload, the policy runs, beside the real decisions and without touching
the cluster,

- the HPA's own calculation (``controller.decide.hpa``) on the observed load, and
- the planner at every other rung of a short ladder of quantiles (the configured one first),

each with pods that start in the learned startup time (``ShadowPods``). Every day it keeps
each side's pod-seconds and the observed load its ready pods left uncovered (``Tally``); the
next day's quantile is the configured one while it was no worse than the HPA on both over the
last days, else the nearest rung in the direction it fell short that was (``choose_rung``).
Comparing every rung on the same days is what makes this stable: a rule that moved the
quantile by comparing different hours followed the noise of a dozen random jumps a day
(docs/policy.md, sixth round).

Everything here is pure: state in, state out. Decisions use the past only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from controller.decide import hpa
from controller.domain import ControllerState, Observation


def scale_in_split(remove: int, starting: int) -> tuple[int, int]:
    """Which pods a scale-in of ``remove`` takes: ``(starting ones, ready ones)``.

    Not-yet-ready pods go first, the newest first, as a ReplicaSet's scale-down does; the
    simulator's cluster (``controller.sim.cluster``) and the counterfactuals' pods both follow
    this one rule, so that the counterfactuals are scored on the pods the real ones would be.
    """
    from_starting = min(remove, starting)
    return from_starting, remove - from_starting


@dataclass(frozen=True, slots=True)
class ShadowPods:
    """Pods of a counterfactual: ``ready`` ones and the ready times of starting ones."""

    ready: int
    starting: tuple[float, ...] = ()

    @classmethod
    def observed(cls, obs: Observation, *, ready_at: float) -> ShadowPods:
        """The pods an observation shows; its starting ones counted as ready at ``ready_at``."""
        return cls(obs.ready, (ready_at,) * obs.starting)

    @property
    def replicas(self) -> int:
        return self.ready + len(self.starting)

    def advance(self, now: float) -> ShadowPods:
        """Starting pods due by ``now`` become ready."""
        if not self.starting or min(self.starting) > now:
            return self
        still = tuple(t for t in self.starting if t > now)
        return ShadowPods(self.ready + len(self.starting) - len(still), still)

    def scale(self, desired: int, now: float, *, startup_seconds: float) -> ShadowPods:
        """Set the count: new pods are ready ``startup_seconds`` later; a scale-in follows
        ``scale_in_split`` (kept in the order they were created, newest last)."""
        current = self.replicas
        if desired > current:
            return ShadowPods(self.ready, self.starting + (now + startup_seconds,) * (desired - current))
        if desired < current:
            from_starting, from_ready = scale_in_split(current - desired, len(self.starting))
            return ShadowPods(self.ready - from_ready, self.starting[: len(self.starting) - from_starting])
        return self

    def observation(self, now: float, load: float | None) -> Observation:
        """What a controller of these pods would observe now."""
        return Observation(now, load, self.ready, len(self.starting), self.replicas)


@dataclass(frozen=True, slots=True)
class ShadowHpa:
    """The reference HPA: its pods and its sync history."""

    pods: ShadowPods
    state: ControllerState = field(default_factory=ControllerState)


def step_hpa(shadow: ShadowHpa, load: float | None, now: float, *, startup_seconds: float, params: hpa.HpaParams) -> ShadowHpa:
    """One HPA sync on ``load`` at ``now``: due pods become ready, then the HPA decides and its pods follow."""
    pods = shadow.pods.advance(now)
    result = hpa.plan(pods.observation(now, load), params, shadow.state, now)
    return ShadowHpa(pods.scale(result.desired_replicas, now, startup_seconds=startup_seconds), result.state)


@dataclass(frozen=True, slots=True)
class Tally:
    """One side's totals over a period, in pod-seconds: pods held, and observed load left uncovered."""

    pod_seconds: float = 0.0
    uncovered: float = 0.0

    def add(self, *, ready: int, replicas: int, load: float, capacity_per_pod: float, seconds: float) -> Tally:
        return Tally(
            self.pod_seconds + replicas * seconds,
            self.uncovered + max(0.0, load - ready * capacity_per_pod) * seconds,
        )

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.pod_seconds + other.pod_seconds, self.uncovered + other.uncovered)

    def __sub__(self, other: Tally) -> Tally:
        """A difference of tallies (a balance; either part may be negative)."""
        return Tally(self.pod_seconds - other.pod_seconds, self.uncovered - other.uncovered)


Day = tuple[Tally, tuple[Tally, ...], float]
"""One past day: the HPA's tally, each rung's tally (the configured quantile first) and the observed load."""


@dataclass(frozen=True, slots=True)
class ReferenceMemory:
    """What the choice of quantile has learnt, for the state annotation: a restarted controller
    continues from it instead of spending ``days`` days at the configured quantile.

    Attributes:
        quantiles: the ladder it was learnt on (memory of another ladder does not apply).
        rung: the rung in use.
        days: the last completed days (``choose_rung``'s input), oldest first.
        period_end: when the current period ends (the next choice), in the loop's seconds.
        lean: whether the ladder's last rung was the lean one (``ReferenceParams.lean``).
        balance: the real pods' tally minus the reference HPA's over every completed period
            (``choose_rung``'s ``balance``; either part may be negative).
        hpa_pod_seconds: the reference HPA's pod-seconds over those periods (``choose_rung``'s
            ``hpa_pod_seconds``).

    ``rung == len(quantiles)`` is the HPA rung (``ReferenceParams.hpa_rung``).
    """

    quantiles: tuple[float, ...]
    rung: int
    days: tuple[Day, ...]
    period_end: float
    lean: bool = False
    balance: Tally = Tally()
    hpa_pod_seconds: float = 0.0

    def fits(self, quantiles: Sequence[float], *, lean: bool = False, hpa_rung: bool = False) -> str | None:
        """Why this memory cannot continue on the ladder ``quantiles`` (``lean`` and ``hpa_rung`` as in
        ``ReferenceParams``), or ``None`` when it can."""
        if tuple(self.quantiles) != tuple(quantiles):
            return f"it was learnt on the quantiles {list(self.quantiles)}, the ladder is now {list(quantiles)}"
        if self.lean != lean:
            was, now = ("a lean", "a plain") if self.lean else ("a plain", "a lean")
            return f"it was learnt with {was} lowest rung, the ladder now has {now} one"
        if self.rung == len(quantiles) and not hpa_rung:
            return "it scales as the HPA, and forecast.fallback_to_hpa is now false"
        if not 0 <= self.rung <= len(quantiles):
            return f"its rung {self.rung} is not on a ladder of {len(quantiles)}"
        if any(len(rungs) != len(quantiles) for _, rungs, _ in self.days):
            return "a day's tallies do not match the ladder"
        return None


PARTIAL_MAKE_UP = 0.5
"""The share of the owed load a rung must have made up over the days to be taken when none
made up all of it (``choose_rung``)."""

NOTHING_UNSERVED = 1e-4
"""Uncovered load up to this share of the observed load is "nothing unserved" (the benchmark's
0.01%): above it, over the days, the HPA leaves load unserved and ``choose_rung`` with ``spend``
may spend pod-seconds saved against it on service."""

SPEND_RESERVE = 0.02
"""The share of the HPA's own pod-seconds, over the periods the balance counts, that the pods
saved against it keep in reserve, never spent on service (``choose_rung`` with ``spend``). A
rung is bought on the last days' excess over the HPA, and the day to come can cost more than
they did: with half the savings spent and no reserve, Twitter at 120 s startup ended 6
pod-hours above the HPA's (twenty-fourth round, docs/policy.md); the reserve (Twitter: 183
pod-hours) bounds that overshoot (twenty-fifth round)."""


def choose_rung(
    days: Sequence[Day],
    quantiles: Sequence[float],
    *,
    slack: float = 0.0,
    hpa_rung: bool = False,
    balance: Tally | None = None,
    spend: bool = False,
    hpa_pod_seconds: float = 0.0,
) -> int:
    """The rung to provision at next: the configured one while it was no worse than the HPA.

    Over the given days, a rung is *no worse* when it held no more pod-seconds than the HPA and
    left no more observed load uncovered (up to ``slack``). The configured quantile (rung 0)
    is kept while it is no worse. When it left more uncovered, the lowest higher quantile that
    was no worse is taken (sudden jumps only the HPA's headroom covered); when it served as
    well but held more pods, the highest lower one that was no worse (a forecast so uncertain
    that its quantile costs more than the HPA's headroom). Otherwise rung 0, or with ``hpa_rung``
    the HPA itself (``len(quantiles)``): a workload on which no quantile did as well as the HPA
    on both is scaled as the HPA would scale it until one does again.

    Args:
        days: per past day, ``(hpa, rungs, load)``: the HPA's tally, each rung's tally (in the
            order of ``quantiles``) and the observed load (pod-seconds).
        quantiles: the quantile of each rung, the configured one first.
        slack: uncovered load up to this share of the observed load counts as no worse; none by
            default (``ReferenceParams.slack``).
        hpa_rung: when no rung qualifies, choose the HPA (``len(quantiles)``) rather than rung 0.
        balance: the real pods' tally minus the HPA's since the controller started
            (``ReferenceParams.make_up``). While its ``uncovered`` is above 0 the real pods owe
            load, and only a rung that left less uncovered than the HPA over ``days``, and no more
            on any one of them, at no more pod-seconds than the HPA's plus those saved
            (``-balance.pod_seconds``), qualifies: the cheapest that makes up all that is owed,
            else the one that left least uncovered if it made up at least half
            (``PARTIAL_MAKE_UP``) of what is owed; with none, as when no rung qualifies.
            ``None``: the days alone decide.
        spend: where the HPA left load unserved over the days (more than ``NOTHING_UNSERVED``
            of the load) and nothing is owed, spend the pod-seconds saved against it on service:
            the highest higher quantile that left no more uncovered than the HPA and than rung 0,
            at no more pod-seconds over the days than the HPA's plus those the real pods saved
            against it so far (``-balance.pod_seconds``; none without a balance) less a reserve
            of ``SPEND_RESERVE`` of ``hpa_pod_seconds``. Where the HPA leaves nothing unserved
            the choice is the cheapest, as without it.
        hpa_pod_seconds: the HPA's pod-seconds over the periods ``balance`` counts (the reserve's
            base).

    Returns:
        The rung's index; 0 when there are no days; when no rung qualifies, 0 or with
        ``hpa_rung`` ``len(quantiles)``.
    """
    return choose_rung_why(
        days, quantiles, slack=slack, hpa_rung=hpa_rung, balance=balance, spend=spend, hpa_pod_seconds=hpa_pod_seconds
    )[0]


def choose_rung_why(
    days: Sequence[Day],
    quantiles: Sequence[float],
    *,
    slack: float = 0.0,
    hpa_rung: bool = False,
    balance: Tally | None = None,
    spend: bool = False,
    hpa_pod_seconds: float = 0.0,
) -> tuple[int, str]:
    """The rung ``choose_rung`` chooses, and why, for a person (the log line and the event of a
    change of quantile, the simulator's report): one computation, so the reason cannot drift
    from the choice. Arguments as ``choose_rung``'s."""
    if not days:
        return 0, "no day counted yet"
    n = min(len(quantiles), *(len(rungs) for _, rungs, _ in days))
    hpa_total = sum((h for h, _, _ in days), Tally())
    load = sum(load for _, _, load in days)
    totals = [sum((rungs[i] for _, rungs, _ in days), Tally()) for i in range(n)]
    none = len(quantiles) if hpa_rung else 0
    span = "over the last day" if len(days) == 1 else f"over the last {len(days)} days"
    fallback = "" if hpa_rung else "; forecast.fallback_to_hpa is off, so the configured quantile"
    saved = max(0.0, -balance.pod_seconds) if balance is not None else 0.0  # pod-seconds saved against the HPA

    def pods(i: int, saved: float, reserve: float | None = None) -> str:
        excess = totals[i].pod_seconds - hpa_total.pod_seconds
        if excess <= 0:
            return "at no more pods than the HPA"
        kept = "" if reserve is None else f", {reserve / 3600:.4g} kept in reserve"
        return f"at {excess / 3600:.4g} pod-hours more than the HPA, paid from those saved against it ({saved / 3600:.4g} saved{kept})"

    if balance is not None and balance.uncovered > 0:
        # The real pods left more uncovered than the HPA would have: only a rung that served
        # better than the HPA makes up for it, at no more pods than the HPA's and those the real
        # pods saved against it so far, and no worse than the HPA on any day of the window (one
        # burst day that every rung beat by far is no proof that a cheaper one serves the days
        # after it; nineteenth round, docs/policy.md).
        owed, spare = balance.uncovered, saved
        owes = f"the pods owe {owed / 3600:.3g} load-hours against the HPA"
        repays = [
            i
            for i in range(n)
            if totals[i].uncovered < hpa_total.uncovered
            and totals[i].pod_seconds <= hpa_total.pod_seconds + spare
            and all(rungs[i].uncovered <= h.uncovered for h, rungs, _ in days)
        ]
        full = [i for i in repays if totals[i].uncovered + owed <= hpa_total.uncovered]
        if full:
            i = min(full, key=lambda i: totals[i].pod_seconds)
            return i, f"{owes}; {quantiles[i]:g} would have made all of it up {span}, no worse on any day, {pods(i, spare)}"
        # A partial make-up only if it repays at least half of the debt: a rung that beat the
        # HPA by a sliver over the days may be the wrong one for the day to come (eighteenth
        # round, docs/policy.md).
        best = min(repays, key=lambda i: totals[i].uncovered, default=None)
        if best is not None and hpa_total.uncovered - totals[best].uncovered >= PARTIAL_MAKE_UP * owed:
            share = (hpa_total.uncovered - totals[best].uncovered) / owed
            return best, f"{owes}; {quantiles[best]:g} would have made up {share:.0%} of it {span}, no worse on any day, {pods(best, spare)}"
        return none, (
            f"{owes}, and no quantile would have made up at least half of it {span} while no worse than the HPA"
            f" on any day, at no more pods than the HPA's plus those saved{fallback}"
        )
    cheap = [t.pod_seconds <= hpa_total.pod_seconds for t in totals]
    serves = [t.uncovered <= hpa_total.uncovered + slack * load for t in totals]
    base = quantiles[0]
    unpaid = ""
    if spend and hpa_total.uncovered > NOTHING_UNSERVED * load:
        # The HPA leaves load unserved here: the pods saved against it buy service, the more the
        # better while they last, less a reserve that bounds what the next day may cost beyond
        # the last days' excess (twenty-fourth and twenty-fifth rounds, docs/policy.md).
        reserve = SPEND_RESERVE * hpa_pod_seconds
        spare = max(0.0, saved - reserve)
        better = [
            i
            for i in range(1, n)
            if quantiles[i] > base
            and serves[i]
            and totals[i].uncovered <= totals[0].uncovered
            and totals[i].pod_seconds <= hpa_total.pod_seconds + spare
        ]
        if better:
            i = max(better, key=lambda i: quantiles[i])
            return i, (
                f"the HPA left load unserved {span}, and {quantiles[i]:g} left no more uncovered than it and"
                f" {base:g}, {pods(i, saved, reserve)}"
            )
        unpaid = f"; no higher quantile that served better was within the savings beyond the reserve ({spare / 3600:.4g} pod-hours)"
    if cheap[0] and serves[0]:
        return 0, f"{base:g} was no worse than the HPA on both pods and load uncovered {span}{unpaid}"
    fine = [i for i in range(1, n) if cheap[i] and serves[i]]
    if not serves[0]:
        higher = [i for i in fine if quantiles[i] > base]
        if higher:
            i = min(higher, key=lambda i: quantiles[i])
            return i, f"{base:g} left more load uncovered than the HPA {span}, and {quantiles[i]:g} was no worse on both{unpaid}"
        return none, f"{base:g} left more load uncovered than the HPA {span}, and no higher quantile was no worse on both{fallback}"
    lower = [i for i in fine if quantiles[i] < base]
    if lower:
        i = max(lower, key=lambda i: quantiles[i])
        return i, f"{base:g} held more pods than the HPA {span}, and {quantiles[i]:g} was no worse on both{unpaid}"
    return none, f"{base:g} held more pods than the HPA {span}, and no lower quantile was no worse on both{fallback}"


def finite(load: float | None) -> bool:
    return load is not None and math.isfinite(load)


@dataclass(frozen=True, slots=True)
class ReferenceParams:
    """How the counterfactuals run and how the quantile follows them.

    Attributes:
        quantiles: the ladder: the configured quantile first, then the others (higher and lower).
            No default: the settings (``forecast.quantile``, ``raise_quantile_to``,
            ``lower_quantile_to``, ``lean_quantile``) are its one source (``policies.reference_params``).
        hpa: the reference HPA's spec (the benchmark's: target 0.7, tolerance 0.1, 300 s window).
        days: how many past days ``choose_rung`` looks at.
        period_seconds: length of one "day" (the rung is chosen once per period).
        lean: the last rung is the lean one (``forecast.lean_quantile``; ``policies.rung_params``):
            below every other quantile, it provisions without the planner's margins.
        hpa_rung: when no quantile was no worse than the HPA, scale as the HPA (rung
            ``len(quantiles)``; ``forecast.fallback_to_hpa``).
        score_delay_seconds: how far the observed load trails the load it measures
            (``metrics.trail_seconds``): each side is scored on the pods ready that long before
            each observation, when that load was served (at the last tick at or before that time).
        slack: uncovered load up to this share of the observed load still counts as no worse
            (``choose_rung``). None: the bar's line is strict, and with the trail a shortfall
            at the end of a ramp is load the real pods would have left unserved. Until the
            fifteenth round it was 1e-5, when each observation was scored against the pods of
            its own tick and such shortfalls were mostly the metric's lag (docs/policy.md).
        make_up: keep the real pods' balance against the HPA and, while they owe uncovered load,
            take only a rung that served better than the HPA (``choose_rung``'s ``balance``;
            ``forecast.make_up_shortfall``).
        spend: where the HPA leaves load unserved, spend the pod-seconds saved against it on a
            higher quantile (``choose_rung``'s ``spend``; ``forecast.spend_savings_on_service``).
    """

    quantiles: tuple[float, ...]
    hpa: hpa.HpaParams = field(default_factory=hpa.HpaParams)
    days: int = 3
    period_seconds: float = 86400.0
    lean: bool = False
    hpa_rung: bool = False
    score_delay_seconds: float = 0.0
    slack: float = 0.0
    make_up: bool = False
    spend: bool = False

    def __post_init__(self) -> None:
        q = self.quantiles
        if not q or any(not 0 < x < 1 for x in q) or len(set(q)) != len(q):
            raise ValueError(f"quantiles must be distinct and in (0, 1), got {q}")
        if self.days < 1 or self.period_seconds <= 0:
            raise ValueError(f"days must be >= 1 and period_seconds > 0, got {self.days}, {self.period_seconds}")
        if self.lean and (len(q) < 2 or q[-1] >= min(q[:-1])):
            raise ValueError(f"a lean rung must be the last and lowest of at least two quantiles, got {q}")
