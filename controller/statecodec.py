"""``ControllerState`` <-> the compact JSON kept in the target's ``scaleahead.io/state`` annotation.

The planner's memory (stabilisation-window recommendations, scale events for the rate
policies, forecast-interval checks) must survive a controller restart, or a restart
would reopen every cooldown. It lives on the target itself, so it moves with the
object and needs no storage of its own.

Design choices a reader might question:

* **Recommendations are stored as "latest time per distinct replica count".** The
  stabilisation stages only ask "what is the lowest / highest recommendation inside the
  window" (``controller.decide.stabilize``), and a count is inside the window exactly
  when its latest occurrence is. So ``(10 at t1, 10 at t2, 8 at t3)`` is stored as
  ``(10 at t2, 8 at t3)`` without changing any decision, and the annotation stays a few
  hundred bytes however short the tick is.
* **Trimmed to what the windows need**: recommendations older than the longest window,
  scale events older than the longest rate-policy period, the newest ``max_hits``
  interval outcomes, at most ``max_checks`` pending checks. The planner trims by age
  too; trimming here only keeps the annotation small between two plans.
* **Versioned and tolerant.** ``{"v": 1, ...}``. An annotation that is not JSON, has
  another version or a malformed field decodes to a fresh state plus a warning; it
  never raises. A fresh state is always safe: the planner then behaves like a new HPA,
  which never scales in below the current count during its first window.
* **The choice of quantile is kept too** (``"ref"``: the rung in use, the last days'
  counterfactual tallies and the end of the current period, and ``"lean": true`` when the
  ladder's last rung is the lean one, ``"bal"``: the real pods' balance against the HPA,
  and ``"hpa"``: the HPA's pod-seconds over the same periods, the base of the reserve kept
  when savings are spent on service; ``controller.decide.baseline``),
  or a restart would provision at the configured quantile for ``reference_days`` days
  before it could choose again. It changes once a day. A malformed ``"ref"`` is dropped
  with a warning and the rest of the state kept: without it the choice starts over, as on
  a first start. The tallies of the day in progress are not kept (they change every tick).
* **Interval outcomes are one character each** (``"out"``): ``0`` below the interval, ``1``
  inside, ``2`` above. Annotations written before misses above and below were told apart hold
  ``"hits"`` instead, ``1`` inside and ``0`` any miss; a ``0`` there reads as a miss above, the
  side that widens the quantile (the safe side for service), and ages out within the gate's
  window. The new key leaves ``"hits"`` out, so a controller rolled back to that older version
  reads the rest of the state and starts its outcomes afresh, rather than refusing the whole
  annotation for a ``2`` it does not know.
* **Numbers are rounded** (times to milliseconds, loads to 6 significant digits): the
  annotation is compared before it is written, and noise in the last digit would turn
  every comparison into a write.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from controller.decide.baseline import ReferenceMemory, Tally
from controller.domain import ControllerState, Outcome, Recommendation, ScaleEvent

VERSION = 1
#: Beyond this size the optional parts (pending checks, then outcomes) are dropped.
MAX_BYTES = 16 * 1024

__all__ = ["MAX_BYTES", "VERSION", "Decoded", "compact_recommendations", "decode", "encode", "trim"]


@dataclass(frozen=True, slots=True)
class Decoded:
    """What ``decode`` read.

    Attributes:
        state: the planner state (fresh when nothing usable was found).
        startup_samples: ``(seconds, weight)`` samples of the startup estimate, if stored.
        written_at: when the annotation was written (Unix seconds), if stored.
        warning: why the annotation was ignored (in part or whole), or ``None``.
        reference: what the choice of quantile had learnt, if stored and readable.
    """

    state: ControllerState
    startup_samples: tuple[tuple[float, float], ...] = ()
    written_at: float | None = None
    warning: str | None = None
    reference: ReferenceMemory | None = None


def compact_recommendations(recommendations: Iterable[Recommendation]) -> tuple[Recommendation, ...]:
    """Keep the latest recommendation of each distinct replica count, oldest first.

    Equivalent for every window question the stabilisation stages ask (see the module docstring).
    """
    latest: dict[int, float] = {}
    for rec in recommendations:
        if rec.replicas not in latest or rec.at > latest[rec.replicas]:
            latest[rec.replicas] = rec.at
    return tuple(Recommendation(r, at) for r, at in sorted(latest.items(), key=lambda item: (item[1], item[0])))


def trim(
    state: ControllerState,
    *,
    now: float,
    keep_seconds: float,
    event_keep_seconds: float,
    max_hits: int = 256,
    max_checks: int = 64,
) -> ControllerState:
    """The part of ``state`` a restart needs.

    Args:
        state: the planner state.
        now: Unix seconds.
        keep_seconds: the longest stabilisation window; older recommendations are dropped.
        event_keep_seconds: the longest rate-policy period; older scale events are dropped.
        max_hits: interval outcomes kept (the newest).
        max_checks: pending interval checks kept (the soonest due).
    """
    cutoff = now - keep_seconds
    event_cutoff = now - event_keep_seconds
    return ControllerState(
        recommendations=tuple(r for r in compact_recommendations(state.recommendations) if r.at >= cutoff),
        scale_up_events=tuple(e for e in state.scale_up_events if e.at > event_cutoff),
        scale_down_events=tuple(e for e in state.scale_down_events if e.at > event_cutoff),
        pending_checks=tuple(sorted(state.pending_checks)[:max_checks]),
        interval_outcomes=tuple(state.interval_outcomes[-max_hits:]) if max_hits > 0 else (),
    )


def _t(x: float) -> float:
    return round(float(x), 3)


def _v(x: float) -> float:
    x = float(x)
    return float(f"{x:.6g}") if math.isfinite(x) else 0.0


def _tally(t: Tally) -> list[float]:
    # Not rounded: the choice compares sums of these, and they change once a day, not per tick.
    return [float(t.pod_seconds), float(t.uncovered)]


def _keeps_hpa(memory: ReferenceMemory) -> bool:
    hpa = memory.hpa_pod_seconds
    return math.isfinite(hpa) and (hpa > 0 or memory.balance != Tally())


def _encode_reference(memory: ReferenceMemory) -> dict[str, Any]:
    return {
        "q": [float(q) for q in memory.quantiles],
        "rung": int(memory.rung),
        "end": float(memory.period_end),
        "days": [[_tally(h), [_tally(r) for r in rungs], float(load)] for h, rungs, load in memory.days],
        **({"lean": True} if memory.lean else {}),
        **({"bal": _tally(memory.balance)} if memory.balance != Tally() else {}),
        # with the balance whenever it is written: "bal" without "hpa" is a state from before it
        **({"hpa": float(memory.hpa_pod_seconds)} if _keeps_hpa(memory) else {}),
    }


def _decode_reference(doc: Any) -> ReferenceMemory:
    """The memory under ``"ref"``; raises ``ValueError``/``TypeError``/``KeyError`` when malformed."""
    if not isinstance(doc, dict):
        raise TypeError("not an object")

    def tally(pair: Any) -> Tally:
        pod_seconds, uncovered = (float(x) for x in pair)
        if not (math.isfinite(pod_seconds) and math.isfinite(uncovered)) or pod_seconds < 0 or uncovered < 0:
            raise ValueError(f"tally {pair!r} is not two non-negative numbers")
        return Tally(pod_seconds, uncovered)

    def load(value: Any) -> float:
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"day load {value!r} is not a non-negative number")
        return value

    days = tuple((tally(h), tuple(tally(r) for r in rungs), load(x)) for h, rungs, x in doc["days"])
    end = float(doc["end"])
    if not math.isfinite(end):
        raise ValueError(f"period end {end!r} is not a time")
    lean = doc.get("lean", False)
    if not isinstance(lean, bool):
        raise TypeError(f"lean {lean!r} is not true or false")
    pods, uncovered = (float(x) for x in doc.get("bal", (0.0, 0.0)))
    if not (math.isfinite(pods) and math.isfinite(uncovered)):
        raise ValueError(f"balance {doc['bal']!r} is not two numbers")
    if "hpa" in doc:
        hpa = doc["hpa"]
        if isinstance(hpa, bool) or not isinstance(hpa, (int, float)) or not math.isfinite(hpa) or hpa < 0:
            raise ValueError(f"the HPA's pod-seconds {hpa!r} is not a non-negative number")
        hpa = float(hpa)
    else:
        # A state written before the spending reserve (twenty-fifth round) has no base for it: the
        # pod-seconds saved are counted afresh from here, beside the HPA's, rather than spent at once
        # with no reserve. The load owed is kept.
        hpa, pods = 0.0, 0.0
    return ReferenceMemory(tuple(float(q) for q in doc["q"]), int(doc["rung"]), days, end, lean, Tally(pods, uncovered), hpa)


def encode(
    state: ControllerState,
    *,
    now: float,
    keep_seconds: float,
    event_keep_seconds: float,
    startup_samples: Iterable[tuple[float, float]] = (),
    reference: ReferenceMemory | None = None,
    max_hits: int = 256,
    max_checks: int = 64,
    include_written_at: bool = False,
) -> str:
    """Encode ``state`` (trimmed, see ``trim``) as compact JSON for the annotation.

    Args:
        state: the planner state.
        now: Unix seconds (the trimming reference).
        keep_seconds: the longest stabilisation window.
        event_keep_seconds: the longest rate-policy period.
        startup_samples: the startup estimate's ``(seconds, weight)`` samples, to keep the lead time learnt.
        reference: what the choice of quantile has learnt (``PredictivePolicy.reference_memory``).
        max_hits: interval outcomes kept.
        max_checks: pending checks kept.
        include_written_at: add ``"at": now`` (off by default so equal states encode equally).

    Returns:
        JSON text of at most ``MAX_BYTES`` bytes (optional parts are dropped to fit).
    """
    s = trim(state, now=now, keep_seconds=keep_seconds, event_keep_seconds=event_keep_seconds,
             max_hits=max_hits, max_checks=max_checks)  # fmt: skip
    doc: dict[str, Any] = {"v": VERSION}
    if include_written_at:
        doc["at"] = _t(now)
    doc["rec"] = [[int(r.replicas), _t(r.at)] for r in s.recommendations]
    doc["up"] = [[int(e.delta), _t(e.at)] for e in s.scale_up_events]
    doc["down"] = [[int(e.delta), _t(e.at)] for e in s.scale_down_events]
    doc["chk"] = [[_t(due), _v(lo), _v(hi)] for due, lo, hi in s.pending_checks]
    doc["out"] = "".join(str(int(o)) for o in s.interval_outcomes)
    samples = [[_v(sec), round(float(w), 4)] for sec, w in startup_samples]
    if samples:
        doc["startup"] = samples
    if reference is not None:
        doc["ref"] = _encode_reference(reference)
    # Drop what matters least first until it fits: checks, outcomes, the quantile's memory, startup samples.
    for optional in ("chk", "out", "ref", "startup"):
        text = json.dumps(doc, separators=(",", ":"))
        if len(text.encode()) <= MAX_BYTES:
            return text
        doc.pop(optional, None)
    return json.dumps(doc, separators=(",", ":"))


def decode(text: str | None) -> Decoded:
    """Decode an annotation written by ``encode``; never raises.

    Args:
        text: the annotation's value, or ``None`` when the target has none.

    Returns:
        The state; a fresh one with a ``warning`` when the text is unreadable, of another
        version, or malformed. ``None`` and ``""`` give a fresh state without a warning.
    """
    if not text:
        return Decoded(ControllerState())
    try:
        doc = json.loads(text)
    except (TypeError, ValueError) as exc:
        return Decoded(ControllerState(), warning=f"state annotation is not JSON ({exc}); starting from a fresh state")
    if not isinstance(doc, dict):
        return Decoded(ControllerState(), warning="state annotation is not a JSON object; starting from a fresh state")
    version = doc.get("v")
    if version != VERSION:
        return Decoded(
            ControllerState(),
            warning=f"state annotation has version {version!r}, this controller reads {VERSION}; starting from a fresh state",
        )
    try:
        state = ControllerState(
            recommendations=tuple(Recommendation(int(r), float(at)) for r, at in doc.get("rec", [])),
            scale_up_events=tuple(ScaleEvent(int(d), float(at)) for d, at in doc.get("up", [])),
            scale_down_events=tuple(ScaleEvent(int(d), float(at)) for d, at in doc.get("down", [])),
            pending_checks=tuple((float(due), float(lo), float(hi)) for due, lo, hi in doc.get("chk", [])),
            interval_outcomes=_outcomes(doc),
        )
        samples = tuple((float(sec), float(w)) for sec, w in doc.get("startup", []))
        written_at = float(doc["at"]) if "at" in doc else None
    except (TypeError, ValueError, KeyError) as exc:
        return Decoded(ControllerState(), warning=f"state annotation is malformed ({exc}); starting from a fresh state")
    numbers = [r.at for r in state.recommendations] + [e.at for e in (*state.scale_up_events, *state.scale_down_events)]
    numbers += [x for check in state.pending_checks for x in check]
    if not all(math.isfinite(x) for x in numbers) or any(r.replicas < 0 for r in state.recommendations):
        return Decoded(ControllerState(), warning="state annotation holds invalid numbers; starting from a fresh state")
    reference, warning = None, None
    if not all(math.isfinite(sec) and sec >= 0 and math.isfinite(w) and w > 0 for sec, w in samples):
        samples, warning = (), "state annotation's startup samples hold invalid numbers; the startup time is learnt again"
    if "ref" in doc:
        try:
            reference = _decode_reference(doc["ref"])
        except (TypeError, ValueError, KeyError) as exc:
            problem = f"state annotation's quantile memory is malformed ({exc!r}); the choice of quantile starts over"
            warning = problem if warning is None else f"{warning}; {problem}"
    return Decoded(state, samples, written_at, warning, reference)


#: The characters of the stored interval outcomes, by key: ``"out"``, and the older ``"hits"``,
#: whose ``0`` was a miss on either side, read as above (the side that widens the quantile).
_OUTCOME_CODES: dict[str, dict[str, Outcome]] = {
    "out": {"0": Outcome.BELOW, "1": Outcome.INSIDE, "2": Outcome.ABOVE},
    "hits": {"0": Outcome.ABOVE, "1": Outcome.INSIDE},
}


def _outcomes(doc: dict[str, Any]) -> tuple[Outcome, ...]:
    key = "out" if "out" in doc else "hits"
    codes, text = _OUTCOME_CODES[key], str(doc.get(key, ""))
    if bad := set(text) - codes.keys():
        raise ValueError(f"interval outcomes ({key}) {sorted(bad)} are not among {sorted(codes)}")
    return tuple(codes[c] for c in text)
