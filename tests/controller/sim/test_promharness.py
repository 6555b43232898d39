"""The Prometheus test harness: a real server, backfilled history, and a live exporter it scrapes.

These tests fail (they never skip) when the Debian package ``prometheus`` is
missing: CI installs it in ``.ci/setup``.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request

import aiohttp
import numpy as np
import pytest

from controller.sim import promharness

T0 = 1_700_000_000.0


def query(url: str, promql: str, at: float) -> list[dict]:
    """A raw instant query over HTTP, bypassing the adapter under test elsewhere."""
    qs = urllib.parse.urlencode({"query": promql, "time": repr(at)})
    with urllib.request.urlopen(f"{url}/api/v1/query?{qs}", timeout=5) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return body["data"]["result"]


@pytest.fixture(scope="module")
def prom():
    """One server for this module, with an hour of a request counter (5 req/s, then 12 req/s) and a gauge."""
    t = T0 + 15.0 * np.arange(240)
    load = np.where(t - T0 < 1800, 5.0, 12.0)
    server = promharness.PrometheusServer(scrape_interval_seconds=1.0)
    try:
        server.backfill([
            promharness.counter_from_load(t, load, labels={"namespace": "shop", "pod": "web-1"}),
            promharness.gauge_series("queue_depth", {"namespace": "shop"}, t, np.arange(240.0)),
        ])
        server.start()
        yield server
    finally:
        server.close()


def test_prometheus_and_promtool_are_installed():
    assert promharness.find_executable("prometheus")
    assert promharness.find_executable("promtool")


def test_a_missing_binary_fails_and_names_the_debian_package(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(promharness.PrometheusNotInstalled, match=r"Debian package 'prometheus'.*apt-get install"):
        promharness.PrometheusServer()


def test_openmetrics_text_has_types_escaped_labels_seconds_and_eof():
    text = promharness.to_openmetrics([
        promharness.counter_from_load([T0, T0 + 15], [0.0, 2.0], labels={"pod": 'a"b\\c\nd'}),
        promharness.gauge_series("g", {}, [T0], [float("nan")]),
    ])
    assert text.splitlines() == [
        "# TYPE http_requests counter",
        f'http_requests_total{{pod="a\\"b\\\\c\\nd"}} 0.0 {T0!r}',
        f'http_requests_total{{pod="a\\"b\\\\c\\nd"}} 30.0 {T0 + 15!r}',  # 2 req/s x 15 s
        "# TYPE g gauge",
        f"g NaN {T0!r}",
        "# EOF",
    ]


def test_a_counter_needs_the_total_suffix_and_increasing_timestamps():
    with pytest.raises(ValueError, match="_total"):
        promharness.BackfillSeries("requests", {}, np.array([T0]), np.array([1.0]), kind="counter")
    with pytest.raises(ValueError, match="increasing"):
        promharness.gauge_series("g", {}, [T0, T0], [1.0, 2.0])


def test_rate_over_the_backfilled_counter_recovers_the_load(prom):
    series = 'rate(http_requests_total{namespace="shop",pod="web-1"}[1m])'
    before = query(prom.url, series, T0 + 20 * 60)
    after = query(prom.url, series, T0 + 50 * 60)
    assert float(before[0]["value"][1]) == pytest.approx(5.0)
    assert float(after[0]["value"][1]) == pytest.approx(12.0)
    assert before[0]["value"][0] == T0 + 20 * 60


def test_a_backfilled_gauge_reads_back_exactly(prom):
    result = query(prom.url, 'queue_depth{namespace="shop"}', T0 + 15 * 9)
    assert result == [{"metric": {"__name__": "queue_depth", "namespace": "shop"}, "value": [T0 + 135, "9"]}]


def test_backfilling_a_running_server_restarts_it_on_the_same_port_with_old_and_new_data(prom):
    port = prom.port
    prom.backfill([promharness.gauge_series("late_gauge", {}, [T0 + 60], [42.0])])
    assert prom.running and prom.port == port
    assert query(prom.url, "late_gauge", T0 + 60)[0]["value"][1] == "42"
    assert query(prom.url, 'queue_depth{namespace="shop"}', T0 + 15)[0]["value"][1] == "1"


async def test_the_exporter_series_is_scraped_live(prom):
    labels = {"namespace": "shop", "pod": "live-1"}
    async with aiohttp.ClientSession() as http, promharness.MetricsExporter() as exporter:
        exporter.inc("http_requests_total", labels, 10)
        exporter.set("queue_depth", labels, 3.5)
        await asyncio.to_thread(prom.add_scrape_target, job="exporter", address=exporter.address)
        try:
            async def latest(promql: str) -> list:
                params = {"query": promql}
                async with http.get(f"{prom.url}/api/v1/query", params=params) as resp:
                    return (await resp.json())["data"]["result"]

            async def wait_for(promql: str, value: str) -> None:
                # Scrapes run every second; give them a few.
                for _ in range(100):
                    result = await latest(promql)
                    if result and result[0]["value"][1] == value:
                        return
                    await asyncio.sleep(0.1)
                pytest.fail(f"{promql} never became {value}; last {result}; log:\n{prom.log_tail()}")

            await asyncio.to_thread(prom.wait_until_scraped, "exporter")  # 5 to 7 s: see its docstring
            await wait_for('http_requests_total{pod="live-1"}', "10")
            await wait_for('queue_depth{pod="live-1"}', "3.5")
            exporter.inc("http_requests_total", labels, 5)
            await wait_for('http_requests_total{pod="live-1"}', "15")
            await wait_for('up{job="exporter"}', "1")
            assert exporter.scrapes >= 2
        finally:
            await asyncio.to_thread(prom.remove_scrape_target, "exporter")


def test_stop_keeps_port_and_data_and_start_restarts(prom):
    port = prom.port
    prom.stop()
    assert not prom.running
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{prom.url}/-/ready", timeout=1)
    prom.start()
    assert prom.port == port
    assert query(prom.url, 'queue_depth{namespace="shop"}', T0 + 15 * 3)[0]["value"][1] == "3"


def test_a_server_that_cannot_start_reports_its_log(tmp_path):
    server = promharness.PrometheusServer(extra_args=["--no-such-flag"])
    try:
        with pytest.raises(promharness.PrometheusError, match=r"(?s)exited with code 1.*unknown long flag"):
            server.start()
    finally:
        server.close()
