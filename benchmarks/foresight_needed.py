"""What the lines of issue #4's bar that scaleahead misses would take: how far ahead a
controller would have to know the demand, exactly, to meet them.

For each trace and startup setting this simulates, through the simulator's own engine (the
benchmark's cluster, physics and scores; the probe takes the policy's place as the oracle does),
a family of probe controllers that are *given* the demand instead of forecasting it. At tick i
a probe sets the count to

    ceil(m * max(demand[i + h - W .. i + h]) + a)

- ``h``, its foresight: the demand ``h`` ticks ahead, exactly (0: the present demand, without the
  metric's lag and averaging; the startup: the oracle's information). ``observed`` is the
  metric every policy sees instead (``observed[i]``, the demand over [t-75 s, t-15 s]);
- ``W``, a window it holds the highest demand through (as a scale-down stabilisation);
- ``m`` and ``a``, its headroom: a fixed multiple of the load and a fixed number of pods added.
  With ``--headroom multiple`` (the default) ``a`` is 0 and ``m`` is searched; with ``--headroom
  affine`` ``m`` takes each value of ``MULTIPLES`` and ``a`` is searched for each (headroom that
  does not grow with the load, as a burst of a fixed size needs, is then in the family).

For each foresight, ``W`` is searched over a grid and the headroom is chosen per trace *with
hindsight*: a real policy can tune neither per trace, so a probe's figure is the best that fixed
headroom on that information could reach, not what a policy would.

- **one third**: the line "unserved_pct at most max(hpa / 3, 0.05) at no more pod_hours". Per
  ``W`` (and ``m``, affine), the largest ``m`` (``a``) at which the probe holds no more pod-hours than the HPA's run (found
  by bisection on the schedule: a probe's pod count is its target), then simulated; the table
  gives the lowest unserved_pct over ``W``.
- **cheap**: the line "where hpa leaves at most 0.01% unserved, cost_ratio at most 1.2 with
  unserved_pct at most 0.01", together with the first line (no more unserved than the HPA). Per
  ``W`` (and ``m``, affine), the smallest ``m`` (``a``) at which the probe leaves no more than ``min(hpa, 0.01)`` unserved (by
  bisection on ``m``, simulated at each step); the table gives the lowest cost_ratio over ``W``.

The last column is the least foresight on the grid at which the line is met ("none: the
metric" when a probe on the metric the policies see meets it). Read beside
scaleahead's own figures (``--bars``, a ``policy_bars.py --save`` file): where even the present
demand, known exactly, does not meet a line at any fixed headroom, a policy would need a
forecast of the bursts themselves, so many seconds ahead, to meet it.

Usage: python benchmarks/foresight_needed.py [--traces-dir ../shared/traces] [--settings fixed:300]
                                             [--traces nab_elb_requests,...] [--line third|cheap]
                                             [--headroom multiple|affine]
                                             [--bars FILE.jsonl] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.sim import engine  # noqa: E402
from controller.sim.engine import SimConfig  # noqa: E402
from controller.sim.oracle import OraclePolicy  # noqa: E402
from controller.sim.scenario import TICK_SECONDS, Scenario, scenario_from_trace, startup_ticks  # noqa: E402
from controller.sim.traces import load_trace  # noqa: E402

#: The windows searched, in seconds: none, a lag's worth, the HPA's 300 s, and longer.
WINDOWS_SECONDS = (0, 75, 150, 300, 600, 1200)
#: Foresight as shares of the startup (0: the present demand).
FORESIGHT_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
#: The multiples of the affine headroom (``--headroom affine``), each with its own additive pods.
MULTIPLES = (0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.6)
#: The windows of the affine search (fewer: it searches eight multiples in each).
AFFINE_WINDOWS_SECONDS = (0, 75, 300, 1200)
OBSERVED = -1
NOTHING = 0.01  # the cheap line's "nothing unserved", in percent
CHEAP = 1.2


def base_series(scenario: Scenario, h: int, window: int) -> np.ndarray:
    """max(source[i + h - window .. i + h]) for every tick i (past the end: the last value)."""
    src = scenario.observed() if h == OBSERVED else scenario.demand
    ahead = max(h, 0)
    padded = np.concatenate([np.full(window, src[0]), src, np.full(ahead, src[-1])])
    held = np.lib.stride_tricks.sliding_window_view(padded, window + 1).max(axis=1)
    return held[ahead : ahead + scenario.n_ticks]


def schedule(base: np.ndarray, m: float, a: float = 0.0) -> np.ndarray:
    """The probe's count at every tick: ``ceil(m * base + a)``, at least one pod."""
    return np.maximum(1, np.ceil(m * base + a - 1e-9)).astype(np.int64)


def simulate(scenario: Scenario, config: SimConfig, alive: np.ndarray, name: str = "probe"):
    def build(ports, scenario, config):
        return OraclePolicy(ports, t0=float(scenario.times[0]), alive=alive)

    return engine.run(scenario, name, config, builder=build).score


def pod_hours(scenario: Scenario, alive: np.ndarray) -> float:
    """A probe's pod-hours over the scored ticks: its count is its target at every tick."""
    return float(alive[scenario.scored_from :].sum()) * TICK_SECONDS / 3600.0


def _largest_within(scenario: Scenario, probe, lo: float, hi: float, budget: float) -> float | None:
    """The largest ``x`` in [lo, hi] whose schedule ``probe(x)`` holds no more than ``budget`` pod-hours
    (bisection on the schedule: pod-hours only rise with the headroom); None if ``lo``'s does not."""
    if pod_hours(scenario, probe(lo)) > budget:
        return None
    for _ in range(40):
        mid = (lo + hi) / 2
        if pod_hours(scenario, probe(mid)) <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def _smallest_serving(scenario: Scenario, config: SimConfig, probe, lo: float, hi: float, step: float, limit: float):
    """The smallest ``x`` in [lo, hi] (to ``step``) whose schedule ``probe(x)`` leaves at most ``limit`` %
    unserved, and its score; None if ``hi``'s does not.

    By bisection: with fixed startups the unserved demand only falls as the headroom rises (the
    youngest pods go first, so a higher schedule never leaves fewer pods ready). With log-normal
    startups the seeded draws land on other pods when the count changes, the unserved demand is
    not monotone in the headroom, and the headroom found is one that serves, not always the
    smallest. Either way the score returned is that of a run at the headroom returned."""
    best = simulate(scenario, config, probe(hi))
    if best.unserved_pct > limit:
        return None
    while hi - lo > step:
        mid = (lo + hi) / 2
        s = simulate(scenario, config, probe(mid))
        if s.unserved_pct <= limit:
            hi, best = mid, s
        else:
            lo = mid
    return hi, best


def largest_m_within(scenario: Scenario, base: np.ndarray, budget: float) -> float | None:
    """The largest multiple at which the probe holds no more than ``budget`` pod-hours."""
    return _largest_within(scenario, lambda m: schedule(base, m), 0.0, 16.0, budget)


def largest_a_within(scenario: Scenario, base: np.ndarray, m: float, budget: float) -> float | None:
    """The most pods added to ``m`` times the base at which the probe holds no more than ``budget`` pod-hours."""
    return _largest_within(scenario, lambda a: schedule(base, m, a), -100.0, 200.0, budget)


def smallest_m_serving(scenario: Scenario, config: SimConfig, base: np.ndarray, limit: float):
    """The smallest multiple (to 0.005) at which the probe leaves at most ``limit`` % unserved, and its score."""
    return _smallest_serving(scenario, config, lambda m: schedule(base, m), 0.5, 4.0, 0.005, limit)


def smallest_a_serving(scenario: Scenario, config: SimConfig, base: np.ndarray, m: float, limit: float):
    """The fewest pods (to 0.05) added to ``m`` times the base at which the probe leaves at most ``limit`` %
    unserved, and its score."""
    return _smallest_serving(scenario, config, lambda a: schedule(base, m, a), -10.0, 40.0, 0.05, limit)


def foresights(startup: float) -> list[int]:
    ticks = startup_ticks(startup)
    return [OBSERVED] + sorted({round(share * ticks) for share in FORESIGHT_SHARES})


def candidates(scenario: Scenario, config: SimConfig, base: np.ndarray, line: str, hpa, headroom: str):
    """``(m, a, score)`` of each headroom searched on one base series: the line's best ``m`` with no
    pods added (``multiple``), or for each of ``MULTIPLES`` the line's best number of pods added (``affine``)."""
    if headroom == "multiple":
        if line == "third":
            m = largest_m_within(scenario, base, hpa.pod_hours)
            if m is not None:
                yield m, 0.0, simulate(scenario, config, schedule(base, m))
        else:
            found = smallest_m_serving(scenario, config, base, min(hpa.unserved_pct, NOTHING))
            if found is not None:
                yield found[0], 0.0, found[1]
        return
    for m in MULTIPLES:
        if line == "third":
            a = largest_a_within(scenario, base, m, hpa.pod_hours)
            if a is not None:
                yield m, a, simulate(scenario, config, schedule(base, m, a))
        else:
            found = smallest_a_serving(scenario, config, base, m, min(hpa.unserved_pct, NOTHING))
            if found is not None:
                yield m, found[0], found[1]


def one(job: tuple[str, str, float, str, str]) -> dict:
    path, distribution, startup, line, headroom = job
    scenario = scenario_from_trace(load_trace(path))
    config = SimConfig(startup_seconds=startup, startup_distribution=distribution)
    hpa = engine.run(scenario, "hpa", config).score
    seconds = WINDOWS_SECONDS if headroom == "multiple" else AFFINE_WINDOWS_SECONDS
    windows = sorted({round(w / TICK_SECONDS) for w in seconds})
    if line == "cheap" and hpa.unserved_pct > NOTHING:
        return {}  # the cheap line is only for traces where the HPA leaves nothing unserved
    out = {"trace": scenario.name, "setting": f"{distribution}:{startup:g}", "line": line, "headroom": headroom,
           "hpa_unserved_pct": hpa.unserved_pct, "hpa_pod_hours": hpa.pod_hours, "oracle_pod_hours": hpa.oracle_pod_hours,
           "probes": []}
    for h in foresights(startup):
        best = None
        for w in windows:
            base = base_series(scenario, h, w)
            for m, a, s in candidates(scenario, config, base, line, hpa, headroom):
                value = s.unserved_pct if line == "third" else s.cost_ratio
                if best is None or value < best["value"]:
                    best = {"h": h, "window": w, "m": m, "a": a, "value": value, "unserved_pct": s.unserved_pct,
                            "pod_hours": s.pod_hours, "cost_ratio": s.cost_ratio, "scale_actions": s.scale_actions}
        out["probes"].append(best or {"h": h, "value": None})
    return out


def label(h: int) -> str:
    return "observed" if h == OBSERVED else ("present" if h == 0 else f"+{h * TICK_SECONDS:g} s")


def met(result: dict, value: float | None) -> bool:
    if value is None:
        return False
    if result["line"] == "third":
        return value <= max(result["hpa_unserved_pct"] / 3, 0.05)
    return value <= CHEAP


def table(results: list[dict], bars: dict) -> list[str]:
    line = results[0]["line"]
    heads = [label(p["h"]) for p in results[0]["probes"]]
    what = "unserved % at no more pod-hours than the HPA" if line == "third" else "cost ratio at no more unserved than min(HPA, 0.01%)"
    out = [f"{what}; the line: {'max(HPA / 3, 0.05)' if line == 'third' else CHEAP}", "",
           "| trace | HPA unserved % | line | scaleahead | " + " | ".join(heads) + " | least foresight |",
           "|---|---:|---:|---:|" + "---:|" * len(heads) + "---|"]
    for r in results:
        target = max(r["hpa_unserved_pct"] / 3, 0.05) if line == "third" else CHEAP
        sa = bars.get((r["setting"], r["trace"]))
        if sa is None:
            mine = "-"
        elif line == "third":
            mine = f"{sa['unserved_pct']:.3f}" + ("" if sa["pod_hours"] <= r["hpa_pod_hours"] else " (more pods)")
        else:
            mine = f"{sa['cost_ratio']:.3f}" + ("" if sa["unserved_pct"] <= min(r["hpa_unserved_pct"], NOTHING) else " (serves less)")
        cells = []
        least = "none on the grid"
        for p in r["probes"]:
            v = p["value"]
            cells.append("-" if v is None else f"{v:.3f}")
            if least == "none on the grid" and met(r, v):
                least = "none: the metric" if p["h"] == OBSERVED else label(p["h"])
        fmt = f"{target:.3f}" if line == "third" else f"{target:g}"
        out.append(f"| {r['trace']} | {r['hpa_unserved_pct']:.3g} | {fmt} | {mine} | " + " | ".join(cells) + f" | {least} |")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces-dir", default=str(ROOT.parent / "shared" / "traces"))
    ap.add_argument("--settings", default="fixed:300", help="DISTRIBUTION:STARTUP[,...]")
    ap.add_argument("--traces", default="", help="comma-separated trace names (default: every trace)")
    ap.add_argument("--line", choices=("third", "cheap"), default="third")
    ap.add_argument("--headroom", choices=("multiple", "affine"), default="multiple",
                    help="multiple: ceil(m * load), m searched; affine: ceil(m * load + a), a searched for each m of MULTIPLES")
    ap.add_argument("--bars", help="a policy_bars.py --save file, for scaleahead's own figures")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--save", help="write the results as JSON lines")
    args = ap.parse_args()
    names = [n for n in args.traces.split(",") if n]
    paths = sorted(Path(args.traces_dir).glob("*.csv"))
    if names:
        known = {p.stem for p in paths}
        missing = [n for n in names if n not in known]
        if missing:
            raise SystemExit(f"no such trace in {args.traces_dir}: {', '.join(missing)}")
        paths = [p for p in paths if p.stem in names]
    if not paths:
        raise SystemExit(f"no trace (*.csv) in {args.traces_dir}")
    bars: dict = {}
    if args.bars:
        for text in Path(args.bars).read_text().splitlines():
            row = json.loads(text) if text.strip() else None
            if row and row["policy"] == "scaleahead":
                bars[(row["setting"], row["trace"])] = row
    settings = []
    for s in args.settings.split(","):
        distribution, _, startup = s.partition(":")
        if distribution not in ("fixed", "lognormal") or not startup:
            raise SystemExit(f"--settings: expected DISTRIBUTION:STARTUP (fixed or lognormal), got {s!r}")
        settings.append((distribution, float(startup)))
    jobs = [(str(p), d, st, args.line, args.headroom) for d, st in settings for p in paths]
    with multiprocessing.Pool(max(1, args.jobs)) as pool:
        results = []
        for r in pool.imap(one, jobs, chunksize=1):
            if r:
                results.append(r)
                print(f"done: {r['trace']} at {r['setting']}", file=sys.stderr, flush=True)
    if args.save:
        Path(args.save).write_text("".join(json.dumps(r) + "\n" for r in results))
    for d, st in settings:
        rows = [r for r in results if r["setting"] == f"{d}:{st:g}"]
        print(f"\n### {d} startup {st:g} s, line: {args.line}, headroom: {args.headroom}\n")
        if not rows:
            print("no trace on this line (the cheap line: where the HPA leaves at most 0.01% unserved)")
            continue
        print("\n".join(table(rows, bars)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
