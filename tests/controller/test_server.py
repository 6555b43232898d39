"""The HTTP server over real sockets: a free loopback port, queried with aiohttp's client."""

from __future__ import annotations

import io
import json
import logging

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from controller import server, telemetry
from controller.domain import Decision, Reason

pytestmark = pytest.mark.usefixtures("no_leftover_tasks")

W = "Deployment/shop/checkout"
T0 = 1_700_000_000.0


class FakeMonotonic:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make_decision(from_value: int = 4, to_value: int = 7, reason: Reason = Reason.ForecastAboveFloor) -> Decision:
    return Decision(
        kind="scale" if to_value != from_value else "no-op",
        target=W,
        from_value=from_value,
        to_value=to_value,
        reason=reason,
        message="forecast mode, q=0.9 at 95%, lead 75 s, coverage 85%",
        stages=(
            ("forecast_replicas", to_value, Reason.ForecastTrusted),
            ("raw_replicas", to_value, reason),
            ("desired_replicas", to_value, Reason.DesiredWithinRange),
        ),
    )


@pytest.fixture
def clock() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def parts(clock):
    registry = CollectorRegistry()
    return dict(
        telemetry=telemetry.Telemetry(registry),
        registry=registry,
        health=server.Health(stall_after_seconds=60, now=clock),
        decisions=server.DecisionLog(maxlen_per_workload=3),
    )


@pytest.fixture
async def base_url(parts):
    app = server.make_app(**parts)
    async with server.serve(app, "127.0.0.1", 0) as running:
        assert running.port != 0
        yield running.url


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def test_metrics_serves_the_prometheus_text_format(parts, base_url, http):
    parts["telemetry"].record_decision(W, make_decision(), lead_seconds=75.0)
    async with http.get(f"{base_url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert "# TYPE scaleahead_desired_replicas gauge" in text
    assert f'scaleahead_desired_replicas{{workload="{W}"}} 7.0' in text
    assert 'scaleahead_prometheus_errors_total{api="query"} 0.0' in text


async def test_healthz_follows_the_loop_heartbeat(parts, clock, base_url, http):
    health = parts["health"]
    async with http.get(f"{base_url}/healthz") as response:
        assert response.status == 200  # within the grace period before the first tick

    clock.t += 61  # no beat for longer than stall_after_seconds
    async with http.get(f"{base_url}/healthz") as response:
        assert response.status == 503
        body = await response.json()
    assert "stalled" in body["reason"]

    health.beat()
    async with http.get(f"{base_url}/healthz") as response:
        assert response.status == 200

    health.stop("settings watcher crashed")
    async with http.get(f"{base_url}/healthz") as response:
        assert response.status == 503
        assert (await response.json())["reason"] == "control loop stopped: settings watcher crashed"


async def test_readyz_waits_for_settings_and_the_first_tick(parts, base_url, http):
    health = parts["health"]

    async def readyz() -> tuple[int, dict]:
        async with http.get(f"{base_url}/readyz") as response:
            return response.status, await response.json()

    assert await readyz() == (503, {"status": "unavailable", "reason": "settings not loaded yet"})
    health.settings_loaded()
    assert await readyz() == (503, {"status": "unavailable", "reason": "first tick not completed yet"})
    health.tick_completed()
    assert await readyz() == (200, {"status": "ok"})


async def test_debug_decisions_returns_the_last_decisions_with_their_stages(parts, base_url, http):
    log = parts["decisions"]
    for i in range(5):  # the log keeps the last 3 per workload
        log.add(W, T0 + 15 * i, make_decision(from_value=4 + i, to_value=5 + i))
    log.add("StatefulSet/db/pg", T0, make_decision(4, 4, Reason.DesiredWithinRange))

    async with http.get(f"{base_url}/debug/decisions") as response:
        assert response.status == 200
        body = await response.json()
    checkout = body["workloads"][W]
    assert [(d["from"], d["to"]) for d in checkout] == [(6, 7), (7, 8), (8, 9)]  # oldest first
    assert checkout[-1] == {
        "time": "2023-11-14T22:14:20.000Z",  # T0 + 60 s
        "at": T0 + 60,
        "kind": "scale",
        "target": W,
        "from": 8,
        "to": 9,
        "reason": "ForecastAboveFloor",
        "message": "forecast mode, q=0.9 at 95%, lead 75 s, coverage 85%",
        "stages": [
            {"stage": "forecast_replicas", "value": 9, "reason": "ForecastTrusted"},
            {"stage": "raw_replicas", "value": 9, "reason": "ForecastAboveFloor"},
            {"stage": "desired_replicas", "value": 9, "reason": "DesiredWithinRange"},
        ],
    }
    assert body["workloads"]["StatefulSet/db/pg"][0]["kind"] == "no-op"

    async with http.get(f"{base_url}/debug/decisions", params={"workload": W, "limit": "1"}) as response:
        body = await response.json()
    assert list(body["workloads"]) == [W]
    assert [d["to"] for d in body["workloads"][W]] == [9]

    async with http.get(f"{base_url}/debug/decisions", params={"limit": "many"}) as response:
        assert response.status == 400


async def test_the_server_stops_when_the_block_exits(parts):
    app = server.make_app(**parts)
    async with server.serve(app, "127.0.0.1", 0) as running:
        url = running.url
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"{url}/healthz")


def test_the_decision_log_forgets_a_workload():
    log = server.DecisionLog()
    log.add(W, T0, make_decision())
    log.forget(W)
    assert log.snapshot() == {}
    with pytest.raises(ValueError):
        server.DecisionLog(maxlen_per_workload=0)


@pytest.fixture
def json_log():
    """Install the JSON logging on a StringIO; restore the root logger afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    buffer = io.StringIO()
    handler = server.configure_json_logging(logging.INFO, stream=buffer)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        for old in saved_handlers:
            root.addHandler(old)
        root.setLevel(saved_level)


def test_json_logging_writes_one_parseable_line_per_decision(json_log):
    logger = logging.getLogger("scaleahead.loop")
    server.log_decision(logger, W, make_decision(), mode="active", dry_run=False, name="clash")
    server.log_decision(logger, W, make_decision(7, 7, Reason.DesiredWithinRange), mode="active")

    lines = json_log.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "INFO"
    assert first["logger"] == "scaleahead.loop"
    assert first["message"] == f"{W}: scale 4 -> 7 (ForecastAboveFloor)"
    assert first["time"].endswith("Z")
    assert first["workload"] == W
    assert (first["from_replicas"], first["to_replicas"], first["reason"]) == (4, 7, "ForecastAboveFloor")
    assert first["stages"][0] == {"stage": "forecast_replicas", "value": 7, "reason": "ForecastTrusted"}
    assert (first["mode"], first["dry_run"], first["name_"]) == ("active", False, "clash")
    assert second["kind"] == "no-op"


def test_json_logging_carries_extra_fields_exceptions_and_non_finite_numbers(json_log):
    logger = logging.getLogger("scaleahead.test")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("tick failed", extra={"workload": W, "load": float("nan"), "when": object()})
    record = json.loads(json_log.getvalue())  # exactly one line, strict JSON
    assert record["level"] == "ERROR"
    assert record["message"] == "tick failed"
    assert record["load"] == "nan"
    assert "RuntimeError: boom" in record["exception"]
    assert record["when"].startswith("<object object")
