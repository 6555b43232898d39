"""Shared fixtures of the adapter tests."""

from __future__ import annotations

# ---- Prometheus adapter: a real Prometheus server with known history (controller.sim.promharness)

from dataclasses import dataclass

import numpy as np
import pytest

from controller.sim import promharness


@dataclass(frozen=True)
class PromHistory:
    """What ``prom_history`` backfilled, so tests can state expected values.

    ``load_gauge{namespace="shop",workload="web"}`` is ``10 + i`` at ``t0 + 15 i`` for i in 0..239
    (last sample at ``t_end``); ``http_requests_total`` has pods web-1 (5 req/s, then 12 req/s
    from ``t0 + 1800``) and web-2 (3 req/s); ``odd_gauge`` has pods ``we"b\\1<newline>x`` (7),
    ``a.*`` (3) and ``abc`` (4).
    """

    server: promharness.PrometheusServer
    t0: float
    t_end: float
    odd_pod: str

    @property
    def url(self) -> str:
        return self.server.url


PROM_T0 = 1_700_000_000.0
PROM_ODD_POD = 'we"b\\1\nx'


@pytest.fixture(scope="module")
def prom_history():
    """One real Prometheus per test module, backfilled with the series of :class:`PromHistory`.

    Fails (does not skip) when the Debian package ``prometheus`` is missing.
    """
    t = PROM_T0 + 15.0 * np.arange(240)
    web1 = np.where(t - PROM_T0 < 1800, 5.0, 12.0)
    series = [
        promharness.gauge_series("load_gauge", {"namespace": "shop", "workload": "web"}, t, 10.0 + np.arange(240)),
        promharness.counter_from_load(t, web1, labels={"namespace": "shop", "pod": "web-1"}),
        promharness.counter_from_load(t, np.full(240, 3.0), labels={"namespace": "shop", "pod": "web-2"}),
        promharness.gauge_series("odd_gauge", {"namespace": "shop", "pod": PROM_ODD_POD}, t, np.full(240, 7.0)),
        promharness.gauge_series("odd_gauge", {"namespace": "shop", "pod": "a.*"}, t, np.full(240, 3.0)),
        promharness.gauge_series("odd_gauge", {"namespace": "shop", "pod": "abc"}, t, np.full(240, 4.0)),
        # one series in the first five minutes, another in the last five: two series over the whole range
        promharness.gauge_series("shift_gauge", {"pod": "a"}, t[:20], np.full(20, 1.0)),
        promharness.gauge_series("shift_gauge", {"pod": "b"}, t[-20:], np.full(20, 2.0)),
    ]
    server = promharness.PrometheusServer(scrape_interval_seconds=1.0, lookback_delta_seconds=300.0)
    try:
        server.backfill(series)
        server.start()
        yield PromHistory(server=server, t0=PROM_T0, t_end=float(t[-1]), odd_pod=PROM_ODD_POD)
    finally:
        server.close()
