"""benchmarks/foresight_needed.py: the probes see exactly the demand they claim to, and the searches
find the headroom they claim to (docs/benchmarks.md's foresight table rests on both)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from controller.sim.engine import SimConfig
from controller.sim.scenario import Scenario, oracle_alive, startup_ticks

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "foresight_needed.py"


@pytest.fixture(scope="module")
def fs():
    spec = importlib.util.spec_from_file_location("foresight_needed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its worker processes pickle functions by module name
    spec.loader.exec_module(module)
    return module


def bursty(n: int = 2000, seed: int = 3) -> Scenario:
    rng = np.random.default_rng(seed)
    demand = 10 + 2 * rng.standard_normal(n)
    for at in rng.integers(50, n - 50, size=25):
        demand[at : at + int(rng.integers(4, 30))] += float(rng.uniform(5, 20))
    return Scenario(name="bursty", times=15.0 * np.arange(n), demand=np.maximum(demand, 0.5), peak_pods=40.0)


def test_full_foresight_is_the_oracle(fs):
    sc = bursty()
    s = startup_ticks(300)
    probe = fs.schedule(fs.base_series(sc, s, s), 1.0)
    assert np.array_equal(probe, oracle_alive(sc.demand, startup_ticks=s))
    score = fs.simulate(sc, SimConfig(startup_seconds=300), probe)
    assert score.unserved_pct == 0.0


def test_present_and_observed_probes_read_their_own_series(fs):
    sc = bursty()
    assert np.array_equal(fs.base_series(sc, 0, 0), sc.demand)
    assert np.array_equal(fs.base_series(sc, fs.OBSERVED, 0), sc.observed())
    # h ticks of foresight read the demand h ticks ahead; a window holds its highest value;
    # before the start the first value, past the end the last.
    for src, h, w in ((sc.demand, 5, 0), (sc.demand, 3, 8), (sc.demand, 8, 3), (sc.observed(), fs.OBSERVED, 6)):
        got = fs.base_series(sc, h, w)
        ahead = max(h, 0)
        want = [max(src[min(max(j, 0), len(src) - 1)] for j in range(i + ahead - w, i + ahead + 1)) for i in range(sc.n_ticks)]
        assert np.array_equal(got, np.array(want)), (h, w)


def test_searches_find_the_boundary_headroom(fs):
    sc = bursty()
    config = SimConfig(startup_seconds=120)
    base = fs.base_series(sc, 0, 0)
    budget = fs.pod_hours(sc, fs.schedule(base, 1.4))
    m = fs.largest_m_within(sc, base, budget)
    assert fs.pod_hours(sc, fs.schedule(base, m)) <= budget < fs.pod_hours(sc, fs.schedule(base, m + 1e-3))
    limit = 1.0
    m_serving, score = fs.smallest_m_serving(sc, config, base, limit)
    assert score.unserved_pct <= limit
    assert fs.simulate(sc, config, fs.schedule(base, m_serving)).unserved_pct == score.unserved_pct
    assert fs.simulate(sc, config, fs.schedule(base, m_serving - 0.01)).unserved_pct > limit
    assert fs.foresights(120) == [fs.OBSERVED, 0, 2, 4, 6, 8]


@pytest.mark.parametrize("distribution", ["fixed", "lognormal"])
def test_pod_hours_are_the_engines(fs, distribution):
    """The one-third search budgets pod-hours without simulating: they must be what the run scores."""
    sc = bursty()
    config = SimConfig(startup_seconds=120, startup_distribution=distribution)
    for h, w, m in ((0, 0, 1.3), (fs.OBSERVED, 20, 1.1), (4, 8, 0.9)):
        alive = fs.schedule(fs.base_series(sc, h, w), m)
        assert fs.simulate(sc, config, alive).pod_hours == pytest.approx(fs.pod_hours(sc, alive), rel=1e-12)


def test_table_names_the_least_foresight(fs):
    def result(trace, hpa, values):
        probes = [{"h": h, "value": v} for h, v in zip([fs.OBSERVED, 0, 2, 4], values)]
        return {"trace": trace, "setting": "fixed:60", "line": "third", "hpa_unserved_pct": hpa, "probes": probes}

    rows = [
        result("on-the-metric", 0.9, [0.29, 0.2, 0.1, 0.0]),
        result("needs-30s", 3.0, [2.0, 1.5, 0.9, 0.1]),
        result("never", 3.0, [2.0, 1.5, 1.2, None]),
        result("floor", 0.03, [0.05, 0.04, 0.0, 0.0]),
    ]
    lines = fs.table(rows, {})
    last = {line.split("|")[1].strip(): line.split("|")[-2].strip() for line in lines[4:]}
    assert last == {"on-the-metric": "none: the metric", "needs-30s": "+30 s", "never": "none on the grid", "floor": "none: the metric"}
    assert "| observed | present | +30 s | +60 s |" in lines[2]


def test_affine_headroom_adds_pods_and_its_searches_find_the_boundary(fs):
    sc = bursty()
    config = SimConfig(startup_seconds=120)
    base = fs.base_series(sc, fs.OBSERVED, 4)
    assert np.array_equal(fs.schedule(base, 1.0, 2.5), np.maximum(1, np.ceil(base + 2.5 - 1e-9)))
    budget = fs.pod_hours(sc, fs.schedule(base, 1.3))
    a = fs.largest_a_within(sc, base, 1.1, budget)
    assert fs.pod_hours(sc, fs.schedule(base, 1.1, a)) <= budget < fs.pod_hours(sc, fs.schedule(base, 1.1, a + 1e-3))
    a_serving, score = fs.smallest_a_serving(sc, config, base, 1.0, 0.5)
    assert score.unserved_pct <= 0.5
    assert fs.simulate(sc, config, fs.schedule(base, 1.0, a_serving - 0.1)).unserved_pct > 0.5
