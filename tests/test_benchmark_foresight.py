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
    oracle = oracle_alive(sc.demand, startup_ticks=s)
    # Equal wherever the oracle's look-ahead stays inside the trace (past its end the oracle needs nothing).
    assert np.array_equal(probe[: sc.n_ticks - s], oracle[: sc.n_ticks - s])
    score = fs.simulate(sc, SimConfig(startup_seconds=300), probe)
    assert score.unserved_pct == 0.0


def test_present_and_observed_probes_read_their_own_series(fs):
    sc = bursty()
    assert np.array_equal(fs.base_series(sc, 0, 0), sc.demand)
    assert np.array_equal(fs.base_series(sc, fs.OBSERVED, 0), sc.observed())
    # h ticks of foresight read the demand h ticks ahead; a window holds its highest value.
    assert np.array_equal(fs.base_series(sc, 5, 0)[:-5], sc.demand[5:])
    held = fs.base_series(sc, 0, 3)
    assert held[10] == max(sc.demand[7:11])


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
    assert fs.simulate(sc, config, fs.schedule(base, m_serving - 0.01)).unserved_pct > limit
    assert fs.foresights(120) == [fs.OBSERVED, 0, 2, 4, 6, 8]
