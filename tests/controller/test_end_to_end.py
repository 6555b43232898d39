"""End to end: the real controller, a real Prometheus scraping the emulated pods, the API emulator over HTTP.

The pods of the emulated Deployment expose request counters (``MetricsExporter``) that
Prometheus scrapes every second; a traffic driver replays a synthetic trace with a ramp,
one 5-minute step per wall second, so pods start in 2 s (10 trace minutes) and the loop
ticks every 0.5 s. The test asserts on what the API server recorded: scale PATCHes up
during the ramp, so that the peak's count is (nearly) there when the peak arrives,
and back down after it. (On a ramp that never happened before, how much of that lead
comes from the forecast rather than the reactive floor depends on the model; the test
asserts on the outcome only.)
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from controller.sim import localcluster

pytestmark = pytest.mark.usefixtures("no_leftover_tasks")

HISTORY = 300  # trace steps of flat history before the replay
FLAT, RAMP, PEAK, AFTER = 2, 6, 4, 14  # trace steps of each phase of the replay
# AFTER: the demo's scale-in waits a 6-s stabilisation window, then halves at most every 2 s;
# 14 s leave a loaded 2-core machine (delayed 0.5-s ticks) time for two halvings
LOW, HIGH = 20.0, 150.0  # requests per second of the trace (its p99, 150, becomes 20 pods)


@pytest.fixture
def ramp_trace(tmp_path):
    rng = np.random.default_rng(0)
    history = LOW + rng.normal(0, 0.5, HISTORY)
    replay = np.concatenate([
        np.full(FLAT, LOW), np.linspace(LOW, HIGH, RAMP + 1)[1:], np.full(PEAK, HIGH), np.full(AFTER + 4, LOW),
    ])  # fmt: skip
    values = np.concatenate([history, replay])
    path = tmp_path / "ramp.csv"
    path.write_text("timestamp,value\n" + "".join(f"{300 * i},{v:.3f}\n" for i, v in enumerate(values)))
    return path


async def test_the_controller_scales_up_ahead_of_a_ramp_and_back_down_after_it(ramp_trace):
    out = io.StringIO()
    step = 1.0
    result = await localcluster.run_demo(
        trace_path=ramp_trace, duration=(FLAT + RAMP + PEAK + AFTER) * step, step=step, report=None, out=out,
        history_steps=HISTORY, model="naive",
    )  # fmt: skip
    transcript = out.getvalue()
    assert result.code == 0, transcript
    ramp_start = result.t_start + FLAT * step
    peak_start = ramp_start + RAMP * step
    drop = peak_start + PEAK * step
    patches = result.scale_patches
    assert patches, transcript
    replicas = [r for _, r in patches]
    initial = 4  # ceil(20 rps / 10 rps per pod / 0.8)

    # up, ahead of the peak: by the time the ramp tops out, the API server already holds
    # (nearly) the count the peak needs (20 pods at 0.8 utilisation: 25), ordered during the
    # ramp with the startup time as lead; pods ordered only once the peak is seen would come late.
    before_peak = [r for at, r in patches if at < peak_start]
    assert before_peak and before_peak[0] > initial, transcript
    # at least 60% of the peak's 25 pods are ordered before the peak arrives (20+ on an idle
    # machine; a loaded 2-core machine delays ticks of the 0.5 s loop, hence the margin)
    assert max(before_peak) >= 15, transcript
    assert max(replicas) >= 24, transcript
    # down: after the drop the count comes back towards the initial one
    after_drop = [r for at, r in patches if at > drop]
    assert after_drop and min(after_drop) < max(replicas) / 2, transcript
    assert min(after_drop) >= initial - 1, transcript
