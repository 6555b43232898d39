"""The control loop against the real parts: a real Prometheus and the Kubernetes API test server over HTTP.

Time is simulated: the loop, the API server (pods become Ready, ``fail_for`` windows) and
the adapters' retry sleeps all read the one ``SimClock``, and Prometheus holds backfilled
history at those simulated times, so a query at ``clock.now()`` sees the load the test
wrote for that moment. Each test ticks the loop itself (``controller.tick()``) and asserts
on what the API server recorded. The run/stop test uses the system clock.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import textwrap
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from controller import loop, statecodec
from controller.adapters import kube
from controller.adapters.prometheus import PrometheusMetricsSource
from controller.clock import SystemClock
from controller.domain import WorkloadRef
from controller.server import DecisionLog, Health
from controller.settings import ControllerSettings
from controller.sim import kubeapi, promharness
from controller.telemetry import Telemetry

pytestmark = pytest.mark.usefixtures("no_leftover_tasks")

T0 = 1_700_000_000.0  # tests/conftest.py KUBE_T0: the simulated present when the tests start
NS = "default"
TICK = 15.0
SELF = WorkloadRef(NS, "scaleahead-0", kind="Pod", api_version="v1")


def _load(name: str, t: np.ndarray) -> np.ndarray:
    """The load (requests/s; one pod serves 1.0 at 100%) of each test workload."""
    if name == "steady":
        return np.full(t.shape, 5.0)
    if name == "drop":  # 7 until T0 + 30, then 1
        return np.where(t < T0 + 30, 7.0, 1.0)
    raise KeyError(name)


@pytest.fixture(scope="module")
def prom():
    """One real Prometheus for the module with the workloads' load backfilled around T0."""
    server = promharness.PrometheusServer(scrape_interval_seconds=60)
    t = np.arange(T0 - 2 * 3600, T0 + 2 * 3600, 15.0)
    series = [promharness.gauge_series("demand", {"namespace": NS, "workload": name}, t, _load(name, t)) for name in ("steady", "drop")]
    server.backfill(series)
    server.start()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _prometheus_running(prom):
    # a test that stops Prometheus must not leave it stopped for the next one
    yield
    if not prom.running:
        prom.start()


def settings_yaml(prom_url: str, workloads: str, *, extra: str = "", mode: str = "active") -> str:
    return textwrap.dedent(
        f"""\
        loop:
          interval_seconds: {TICK}
          failure_threshold: 3
          default_mode: {mode}
        metrics:
          prometheus_url: {prom_url}
          load_query: 'sum(demand{{namespace="$namespace",workload="$name"}})'
          lag_seconds: 15
        forecast:
          model: naive
          history_days: 1
        """
    ) + textwrap.dedent(extra) + "workloads:\n" + textwrap.indent(textwrap.dedent(workloads), "  ")


def watched_world(world_factory, prom, tmp_path) -> tuple[World, Path, str]:
    """A world whose controller watches its settings file (one workload, `steady`, in recommend
    mode): the world, the file and its text."""
    path = tmp_path / "config.yaml"
    text = settings_yaml(prom.url, "- {namespace: default, name: steady}", mode="recommend")
    path.write_text(text)
    return world_factory(text, settings_path=path), path, text


class World:
    """The controller under test and what it talks to."""

    def __init__(self, *, server, api, clock, prom, settings_text: str, settings_path=None, prom_timeout=2.0):
        self.server, self.api, self.clock, self.prom = server, api, clock, prom
        self.registry = CollectorRegistry()
        self.telemetry = Telemetry(self.registry)
        self.metrics = PrometheusMetricsSource(prom.url, timeout_seconds=prom_timeout, retries=0, sleep=clock.sleep,
                                               on_request=self.telemetry.record_prometheus)  # fmt: skip
        self.kube = kube.KubeAdapter(api, clock=clock, on_call=self.telemetry.record_kube)
        self.decisions = DecisionLog()
        self.health = Health()
        settings = ControllerSettings.from_yaml(settings_text)
        self.controller = loop.Controller(
            settings, clock=clock, metrics=self.metrics, kube=self.kube, telemetry=self.telemetry, health=self.health,
            decisions=self.decisions, settings_path=settings_path, self_ref=SELF,
        )  # fmt: skip

    async def ticks(self, n: int, *, every: float = TICK) -> None:
        for _ in range(n):
            await self.controller.tick()
            self.clock.t += every

    def metric(self, name: str, **labels) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def replicas(self, name: str) -> int:
        return self.server.get("deployments", NS, name)["spec"].get("replicas", 0)

    def scale_patches(self, name: str = "*", *, ok_only: bool = True):
        return [r for r in self.server.requests_to("PATCH", f"*/deployments/{name}/scale") if r.status == 200 or not ok_only]

    def events(self, reason: str | None = None):
        return [e for e in self.server.objects("events", None) if reason is None or e["reason"] == reason]

    async def close(self):
        await self.metrics.aclose()


@pytest.fixture
async def world_factory(kube_server, kube_api, kube_clock, prom):
    worlds = []

    def make(settings_text: str, **kwargs) -> World:
        world = World(server=kube_server, api=kube_api, clock=kube_clock, prom=prom, settings_text=settings_text, **kwargs)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        await world.close()


def deploy(server, clock, name: str, replicas: int, **kwargs) -> None:
    """Create a deployment whose pods are Ready by T0 (they start 30 s after creation)."""
    clock.t = T0 - 120
    server.put(kubeapi.make_deployment(name, replicas=replicas, **kwargs))
    clock.t = T0
    server.sync()


# ---- modes ---------------------------------------------------------------------------------------


async def test_recommend_mode_publishes_the_decision_but_never_patches(world_factory, kube_server, kube_clock, prom):
    deploy(kube_server, kube_clock, "steady", 2)
    w = world_factory(settings_yaml(prom.url, "- {namespace: default, name: steady}", mode="recommend"))
    await w.ticks(4)
    assert [r.method for r in kube_server.requests if r.method not in ("GET",)] == []
    assert w.replicas("steady") == 2
    last = w.decisions.snapshot()["Deployment/default/steady"][-1]
    stages = {stage["stage"]: stage["value"] for stage in last["stages"]}
    assert stages["raw_replicas"] == 8  # ceil(5 / 0.7)
    assert last["to"] == 6  # 2 + 4 pods per 15 s: the count never changed, so the limit applies every tick
    assert w.metric("scaleahead_desired_replicas", workload="Deployment/default/steady") == 6
    assert w.metric("scaleahead_workloads_managed", mode="recommend") == 1
    (managed,) = w.controller.workloads.values()
    assert managed.policy.acting is False  # its choice of quantile is not scored on pods it does not drive


async def test_active_mode_scales_and_records_an_event_with_the_reason(world_factory, kube_server, kube_clock, prom):
    deploy(kube_server, kube_clock, "steady", 2)
    w = world_factory(settings_yaml(prom.url, "- {namespace: default, name: steady}"))
    await w.ticks(4)
    assert w.replicas("steady") == 8  # 2 -> 6 (+4 pods per 15 s) -> 8
    assert [r.body for r in w.scale_patches("steady")] == [{"spec": {"replicas": 6}}, {"spec": {"replicas": 8}}]
    reasons = [e["reason"] for e in w.events()]
    assert len(reasons) == 2 and all(r for r in reasons)
    assert "Scaled from 2 to 6" in w.events()[0]["message"]


async def test_a_target_scaled_by_an_hpa_is_refused_and_reported(world_factory, kube_server, kube_clock, prom):
    deploy(kube_server, kube_clock, "steady", 2)
    kube_server.put(kubeapi.make_hpa("steady", target_kind="Deployment", target_name="steady"))
    w = world_factory(settings_yaml(prom.url, "- {namespace: default, name: steady}"))
    await w.ticks(3)
    assert w.scale_patches() == []
    conflict_events = w.events(loop.EVENT_CONFLICT)
    assert len(conflict_events) == 1  # once, not per tick
    assert "HorizontalPodAutoscaler default/steady" in conflict_events[0]["message"]
    assert w.metric("scaleahead_conflicts", workload="Deployment/default/steady") == 1

    # the HPA goes away: the next re-check lets the controller drive the target
    kube_server.store.delete(kubeapi.HPAS, NS, "steady")
    w.controller.conflict_recheck_seconds = TICK
    await w.ticks(3)
    assert w.replicas("steady") == 8
    assert w.metric("scaleahead_conflicts", workload="Deployment/default/steady") == 0


# ---- state survives a restart --------------------------------------------------------------------

DROP_BEHAVIOR = """\
replicas:
  target_utilization_ratio: 0.7
  behavior:
    scale_down:
      stabilization_window_seconds: 30
      policies: [{type: Percent, value: 50, period_seconds: 300}]
"""


async def test_the_state_annotation_keeps_the_cooldown_across_a_restart(world_factory, kube_server, kube_clock, prom):
    deploy(kube_server, kube_clock, "drop", 10)
    text = settings_yaml(prom.url, "- {namespace: default, name: drop}", extra=DROP_BEHAVIOR)
    a = world_factory(text)
    # load 7 (10 pods) until T0 + 30, then 1: after the 30 s window, -50% per 300 s allows 10 -> 5
    while not a.scale_patches("drop"):
        await a.ticks(1)
        assert kube_clock.t < T0 + 200
    assert a.replicas("drop") == 5
    scaled_at = a.scale_patches("drop")[0].at
    annotation = kube_server.get("deployments", NS, "drop")["metadata"]["annotations"][kube.STATE_ANNOTATION]
    restored = statecodec.decode(annotation)
    assert restored.warning is None
    assert [e.delta for e in restored.state.scale_down_events] == [5]
    state_writes = kube_server.requests_to("PATCH", "*/deployments/drop")
    assert 1 <= len(state_writes) <= 3  # compare before writing: not once per tick

    # A new controller (a restart) reads the annotation: the 300 s scale-down budget is spent.
    kube_clock.t = scaled_at + TICK
    b = world_factory(text)
    await b.ticks(10)  # up to scaled_at + 165 s: inside the period
    assert len(b.scale_patches("drop")) == 1  # still only A's
    assert b.replicas("drop") == 5
    assert b.decisions.snapshot()["Deployment/default/drop"][-1]["to"] == 5


async def test_a_restart_keeps_the_choice_of_quantile_stored_in_the_state_annotation(world_factory, kube_server, kube_clock, prom, caplog):
    from controller.decide.baseline import ReferenceMemory, Tally

    rungs = (Tally(86400.0 * 7, 50.0), Tally(86400.0 * 7.5, 0.0), Tally(86400.0 * 6.5, 70.0), Tally(86400.0 * 6, 90.0), Tally(86400.0 * 5, 200.0))
    day = (Tally(86400.0 * 8, 0.0), rungs, 86400.0 * 5)
    # 10 pod-hours saved against the HPA and 2 load-hours owed, of the HPA's 192 pod-hours
    stored = ReferenceMemory(
        (0.85, 0.975, 0.7, 0.6, 0.5), 1, (day,), T0 + 3600.0, lean=True, balance=Tally(-36_000.0, 7_200.0), hpa_pod_seconds=691_200.0
    )
    text = statecodec.encode(statecodec.decode(None).state, now=T0, keep_seconds=300, event_keep_seconds=60, reference=stored)
    deploy(kube_server, kube_clock, "steady", 8, annotations={kube.STATE_ANNOTATION: text})
    w = world_factory(settings_yaml(prom.url, "- {namespace: default, name: steady}"))
    with caplog.at_level(logging.INFO, logger="controller.loop"):
        await w.ticks(3)
    assert any("choice of quantile restored" in r.getMessage() for r in caplog.records)
    assert w.metric("scaleahead_provisioning_quantile", workload="Deployment/default/steady") == 0.975
    against = {name: w.metric(f"scaleahead_hpa_{name}", workload="Deployment/default/steady") for name in ("balance_pod_hours", "balance_uncovered_load_hours", "reference_pod_hours")}
    assert against == {"balance_pod_hours": -10, "balance_uncovered_load_hours": 2, "reference_pod_hours": 192}
    # written back with the rest of the state, and read back the same by the next controller
    written = statecodec.decode(kube_server.get("deployments", NS, "steady")["metadata"]["annotations"][kube.STATE_ANNOTATION])
    assert written.reference == stored

    # A ladder that no longer matches the memory starts over at the configured quantile.
    caplog.clear()
    other = world_factory(settings_yaml(prom.url, "- {namespace: default, name: steady}").replace(
        "forecast:\n", "forecast:\n  raise_quantile_to: [0.99]\n"))
    with caplog.at_level(logging.INFO, logger="controller.loop"):
        await other.ticks(2)
    assert any("does not apply" in r.getMessage() and "0.99" in r.getMessage() for r in caplog.records)
    assert other.metric("scaleahead_provisioning_quantile", workload="Deployment/default/steady") == 0.85
    assert other.metric("scaleahead_hpa_balance_pod_hours", workload="Deployment/default/steady") is None  # over too: nothing counted yet

    # Past the restored day's end the first controller chooses again: the 2 load-hours owed are made up
    # by no quantile (none left less uncovered than the HPA's nothing), so it scales as the HPA; the
    # change is logged and recorded as an event with its reason, once.
    assert not w.events(loop.EVENT_QUANTILE)
    with caplog.at_level(logging.INFO, logger="controller.loop"):
        await w.ticks(3, every=3600.0)
    (event,) = w.events(loop.EVENT_QUANTILE)
    assert event["type"] == "Normal"
    assert event["message"].startswith("provisioning at the HPA rung from quantile 0.975: the pods owe 2 load-hours against the HPA")
    assert any(event["message"] in r.getMessage() for r in caplog.records)
    assert math.isnan(w.metric("scaleahead_provisioning_quantile", workload="Deployment/default/steady"))


async def test_the_gate_restored_from_the_state_annotation_sets_the_gauge_of_outcomes_above(world_factory, kube_server, kube_clock, prom):
    from controller.domain import ControllerState, Outcome

    # 72 of the last 240 outcomes came above the interval (30%): the gate widens the quantile
    stored = ControllerState(interval_outcomes=(Outcome.ABOVE,) * 72 + (Outcome.INSIDE,) * 168)
    text = statecodec.encode(stored, now=T0, keep_seconds=300, event_keep_seconds=60)
    deploy(kube_server, kube_clock, "steady", 8, annotations={kube.STATE_ANNOTATION: text})
    w = world_factory(settings_yaml(prom.url, "- {namespace: default, name: steady}"))
    assert w.metric("scaleahead_forecast_interval_above_ratio", workload="Deployment/default/steady") is None
    await w.ticks(2)
    assert w.metric("scaleahead_forecast_interval_above_ratio", workload="Deployment/default/steady") == pytest.approx(0.3)
    assert "coverage 70%, above 30%" in w.decisions.snapshot()["Deployment/default/steady"][-1]["message"]


async def test_an_unreadable_state_annotation_is_ignored_with_a_warning(world_factory, kube_server, kube_clock, prom, caplog):
    deploy(kube_server, kube_clock, "steady", 8, annotations={kube.STATE_ANNOTATION: "{garbage"})
    w = world_factory(settings_yaml(prom.url, "- {namespace: default, name: steady}"))
    with caplog.at_level(logging.WARNING, logger="controller.loop"):
        await w.ticks(2)
    assert any("not JSON" in r.getMessage() for r in caplog.records)
    assert w.decisions.snapshot()["Deployment/default/steady"][-1]["to"] == 8


# ---- settings reload -----------------------------------------------------------------------------


async def test_a_bad_settings_edit_keeps_the_last_good_settings(world_factory, kube_server, kube_clock, prom, tmp_path):
    deploy(kube_server, kube_clock, "steady", 2)
    w, path, good = watched_world(world_factory, prom, tmp_path)
    assert await w.controller.check_settings() is None  # unchanged
    assert w.metric("scaleahead_config_valid") == 1

    path.write_text(good.replace("failure_threshold: 3", "failure_treshold: 3").replace("interval_seconds: 15.0", "interval_seconds: -1"))
    assert await w.controller.check_settings() is False
    assert w.metric("scaleahead_config_valid") == 0
    assert w.controller.settings.loop.interval_seconds == TICK  # the last good settings
    (event,) = w.events(loop.EVENT_INVALID_SETTINGS)
    assert event["involvedObject"]["kind"] == "Pod" and event["involvedObject"]["name"] == SELF.name
    assert "failure_treshold" in event["message"] and "interval_seconds" in event["message"]
    await w.ticks(2)
    assert w.scale_patches() == []  # still recommend

    path.write_text(good.replace("default_mode: recommend", "default_mode: active"))
    assert await w.controller.check_settings() is True
    assert w.metric("scaleahead_config_valid") == 1
    await w.ticks(3)
    assert w.replicas("steady") == 8


async def test_a_settings_edit_rebuilds_the_policy_with_the_new_tuning_and_the_old_memory(world_factory, kube_server, kube_clock, prom, tmp_path):
    deploy(kube_server, kube_clock, "steady", 2)
    w, path, good = watched_world(world_factory, prom, tmp_path)
    await w.ticks(2)
    (managed,) = w.controller.workloads.values()
    before = managed.policy
    # What the cluster taught it so far: startups of 30 s, and then three slow ones.
    before.startup = before.startup.observe([30.0] * 10 + [90.0] * 3)
    assert before.startup.seconds == 30.0  # the median
    state = before.state

    extra = "replicas: {startup_quantile: 0.9, startup_seconds: 200}\n"
    path.write_text(settings_yaml(prom.url, "- {namespace: default, name: steady}", mode="recommend", extra=extra))
    assert await w.controller.check_settings() is True
    await w.ticks(1)  # the policy is rebuilt on the next tick
    after = managed.policy
    assert after is not before
    assert state.recommendations and state.recommendations[0] in after.state.recommendations  # same planner memory
    seen = [seconds for seconds, _ in before.startup.samples]
    assert [seconds for seconds, _ in after.startup.samples][: len(seen)] == seen  # the startups it saw, and the tick's
    assert (after.startup.quantile, after.startup.prior_seconds) == (0.9, 200.0)  # the new tuning
    assert after.startup.seconds == 90.0  # the slow pods are above the newest 10%


async def test_a_forecast_override_written_as_null_rebuilds_the_policy_and_an_unchanged_file_does_not(world_factory, kube_server, kube_clock, prom, tmp_path):
    deploy(kube_server, kube_clock, "steady", 2)
    w, path, plain = watched_world(world_factory, prom, tmp_path)
    await w.ticks(1)
    (managed,) = w.controller.workloads.values()
    before = managed.policy
    assert before._reference.quantiles == (0.85, 0.975, 0.7, 0.6, 0.5) and before._reference.lean

    # `lean_quantile: null` for this workload only; as a model it equals the override left out
    path.write_text(settings_yaml(prom.url, "- {namespace: default, name: steady, forecast: {lean_quantile: null}}", mode="recommend"))
    assert await w.controller.check_settings() is True
    await w.ticks(1)
    after = managed.policy
    assert after is not before
    assert after._reference.quantiles == (0.85, 0.975, 0.7, 0.6) and not after._reference.lean
    assert w.controller.settings.forecast.lean_quantile == 0.5  # the global ladder is unchanged

    await w.ticks(1)
    assert managed.policy is after  # same settings, same policy


async def test_a_rebuilt_policy_does_not_count_the_startups_it_has_seen_again(world_factory, kube_server, kube_clock, prom, tmp_path):
    deploy(kube_server, kube_clock, "steady", 8)
    w, path, plain = watched_world(world_factory, prom, tmp_path)
    await w.ticks(3)
    (managed,) = w.controller.workloads.values()
    before = managed.policy.startup.samples
    assert len(before) == 8 and {s for s, _ in before} == {30.0}  # the 8 pods, 30 s each

    path.write_text(settings_yaml(prom.url, "- {namespace: default, name: steady, forecast: {quantile: 0.9}}", mode="recommend"))
    assert await w.controller.check_settings() is True
    await w.ticks(2)
    assert managed.policy.quantile == 0.9  # rebuilt
    assert managed.policy.startup.samples == before  # and no pod counted twice


async def test_a_failed_rebuild_keeps_the_last_policy(world_factory, kube_server, kube_clock, prom, tmp_path, caplog):
    deploy(kube_server, kube_clock, "steady", 2)
    w, path, plain = watched_world(world_factory, prom, tmp_path)
    build = w.controller.policy_factory

    def failing(settings, workload, ports):  # a policy that cannot be built at q=0.9 (a resource limit, say)
        if settings.effective_forecast(workload).quantile == 0.9:
            raise MemoryError("no room for another model")
        return build(settings, workload, ports)

    w.controller.policy_factory = failing
    await w.ticks(2)
    (managed,) = w.controller.workloads.values()
    before = managed.policy
    path.write_text(settings_yaml(prom.url, "- {namespace: default, name: steady, forecast: {quantile: 0.9}}", mode="recommend"))
    assert await w.controller.check_settings() is True
    with caplog.at_level(logging.ERROR, logger="controller.loop"):
        await w.ticks(2)
    assert managed.policy is before and managed.policy.quantile == 0.85  # still deciding, on the last tuning
    assert len(w.decisions.snapshot()["Deployment/default/steady"]) == 4
    assert any("keeping its policy of the last settings" in r.getMessage() for r in caplog.records)


async def test_a_readiness_blip_is_not_a_startup(world_factory, kube_server, kube_clock, prom):
    deploy(kube_server, kube_clock, "steady", 8)
    w = world_factory(settings_yaml(prom.url, "- {namespace: default, name: steady}", mode="recommend"))
    await w.ticks(3)
    (managed,) = w.controller.workloads.values()
    samples = managed.policy.startup.samples
    assert managed.policy.startup.seconds == 30.0

    # an hour and a half later a dependency fails: every pod is unready for a tick, then Ready again
    kube_clock.t = T0 + 5400.0

    def set_ready(status: str) -> None:
        for pod in kube_server.objects("pods", NS):
            for condition in pod["status"]["conditions"]:
                if condition["type"] in ("Ready", "ContainersReady"):
                    condition["status"], condition["lastTransitionTime"] = status, kubeapi.rfc3339(kube_clock.t)
            kube_server.put(pod)

    set_ready("False")
    await w.ticks(1)
    set_ready("True")
    await w.ticks(2)
    assert managed.policy.startup.samples == samples  # not 5400 s "startups"
    assert managed.policy.startup.seconds == 30.0
    kube_server.put(kubeapi.make_pod("new", labels={"app": "steady"}, created_at=kube_clock.t - 45, ready_at=kube_clock.t - 5))
    await w.ticks(1)
    assert [s for s, _ in managed.policy.startup.samples[len(samples):]] == [40.0]  # a new pod still counts


async def test_startups_restored_from_the_annotation_are_not_counted_again(world_factory, kube_server, kube_clock, prom):
    deploy(kube_server, kube_clock, "steady", 8)
    a = world_factory(settings_yaml(prom.url, "- {namespace: default, name: steady}"))
    await a.ticks(3)
    learnt = next(iter(a.controller.workloads.values())).policy.startup.samples
    assert len(learnt) == 8

    b = world_factory(settings_yaml(prom.url, "- {namespace: default, name: steady}"))  # a restart
    await b.ticks(3)
    (managed,) = b.controller.workloads.values()
    assert len(managed.policy.startup.samples) == 8  # the annotation's, not those plus the same 8 pods again


async def test_regaining_leadership_starts_over_from_the_annotation_with_a_fresh_policy(world_factory, kube_server, kube_clock, prom, caplog):
    from controller.decide.baseline import ReferenceMemory

    deploy(kube_server, kube_clock, "steady", 8)
    w = world_factory(settings_yaml(prom.url, "- {namespace: default, name: steady}"))
    w.controller.may_act = lambda: True
    await w.ticks(3)
    (managed,) = w.controller.workloads.values()
    before = managed.policy
    # meanwhile another replica led and moved to 0.975; it wrote that into the annotation
    theirs = ReferenceMemory(before._reference.quantiles, 1, (), kube_clock.t + 600.0, lean=True)
    text = statecodec.encode(before.state, now=kube_clock.t, keep_seconds=300, event_keep_seconds=60, reference=theirs)
    obj = kube_server.get("deployments", NS, "steady")
    obj["metadata"]["annotations"][kube.STATE_ANNOTATION] = text
    kube_server.put(obj)

    w.controller._acting = False  # lost it; the loop's next turn regains it
    task = asyncio.ensure_future(w.controller._tick_loop())
    for _ in range(50):
        await asyncio.sleep(0.01)
        if managed.initialized:
            break
    w.controller._stop.set()
    await asyncio.wait_for(task, 5)
    assert managed.policy is not before and managed.policy.rung == 1 and managed.policy.quantile == 0.975
    with caplog.at_level(logging.WARNING, logger="controller.loop"):
        await w.ticks(25, every=3600.0)  # past the restored period's end, where the old policy failed
    assert not [r for r in caplog.records if "reconcile failed" in r.getMessage()]


async def test_a_changed_startup_estimate_is_written_even_at_the_sample_cap(world_factory, kube_server, kube_clock, prom):
    deploy(kube_server, kube_clock, "steady", 2)
    w = world_factory(settings_yaml(prom.url, "- {namespace: default, name: steady}"))
    await w.ticks(1)
    (managed,) = w.controller.workloads.values()

    def stored() -> float:
        text = kube_server.get("deployments", NS, "steady")["metadata"]["annotations"][kube.STATE_ANNOTATION]
        return max(seconds for seconds, _ in statecodec.decode(text).startup_samples)

    estimate = managed.policy.startup.observe([30.0] * 64)
    managed.policy.startup = estimate
    await w.ticks(1)
    assert stored() == 30.0
    managed.policy.startup = estimate.observe([300.0] * 40)  # a new image: still 64 samples, a new estimate
    assert len(managed.policy.startup.samples) == 64 and managed.policy.startup.seconds == 300.0
    await w.ticks(1)
    assert stored() == 300.0


async def test_a_new_prometheus_connection_takes_effect_at_the_next_tick(world_factory, kube_server, kube_clock, prom, tmp_path):
    deploy(kube_server, kube_clock, "steady", 2)
    w, path, good = watched_world(world_factory, prom, tmp_path)
    opened = []

    def connect(m):
        source = PrometheusMetricsSource(m.prometheus_url, timeout_seconds=m.timeout_seconds, retries=0, sleep=kube_clock.sleep)
        opened.append(source)
        return source

    w.controller.metrics_factory = connect
    await w.ticks(1)
    assert opened == []  # unchanged settings, same connection
    label = "Deployment/default/steady"
    assert w.controller.managed()[label]["failures"] == 0

    dead = f"http://127.0.0.1:{promharness.free_port()}"
    path.write_text(good.replace(prom.url, dead).replace("interval_seconds: 15.0", "interval_seconds: 30.0"))
    assert await w.controller.check_settings() is True
    assert w.health.stall_after_seconds == 4 * 30.0 + 60
    first = w.controller.metrics
    await w.ticks(1)
    assert w.controller.metrics is opened[0] and opened[0].url == dead
    assert w.controller.managed()[label]["failures"] == 1  # it really asks the new address

    path.write_text(good)
    assert await w.controller.check_settings() is True
    await w.ticks(8)  # past the failure's backoff
    assert w.controller.metrics is opened[1] and w.controller.managed()[label]["failures"] == 0
    assert first is not opened[0]
    for source in opened:
        await source.aclose()


# ---- faults --------------------------------------------------------------------------------------


async def test_missing_data_never_scales_in(world_factory, kube_server, kube_clock, prom):
    deploy(kube_server, kube_clock, "gone", 10)  # no series at all for this workload
    for on_missing in ("hold", "zero"):
        extra = f"replicas: {{downscale_stabilization_seconds: 0}}\n"
        w = world_factory(settings_yaml(prom.url, "- {namespace: default, name: gone}", extra=extra)
                          .replace("lag_seconds: 15", f"lag_seconds: 15\n  on_missing: {on_missing}"))  # fmt: skip
        await w.ticks(8)
        assert w.scale_patches() == [], on_missing
        assert w.replicas("gone") == 10


async def test_prometheus_stopped_mid_run_holds_reports_and_resumes(world_factory, kube_server, kube_clock, prom):
    deploy(kube_server, kube_clock, "steady", 2)
    w = world_factory(settings_yaml(prom.url, "- {namespace: default, name: steady}"))
    await w.ticks(1)
    assert w.replicas("steady") == 6
    prom.stop()
    try:
        await w.ticks(8)  # failures 1, 2 (skip 1), 3 (skip 3): holding from the third
        assert w.replicas("steady") == 6
        assert w.controller.managed()["Deployment/default/steady"]["holding"]
        assert len(w.events(loop.EVENT_HOLDING)) == 1
        last = w.decisions.snapshot()["Deployment/default/steady"][-1]
        assert last["reason"] == "MetricsUnavailable" and "holding 6 replicas" in last["message"]
        assert w.metric("scaleahead_prometheus_errors_total", api="query") >= 3
    finally:
        prom.start()
    await w.ticks(10)
    assert not w.controller.managed()["Deployment/default/steady"]["holding"]
    assert len(w.events(loop.EVENT_RESUMED)) == 1
    assert w.replicas("steady") == 8


async def test_queries_that_time_out_count_as_failures_and_do_not_block_the_tick(world_factory, kube_server, kube_clock, prom):
    deploy(kube_server, kube_clock, "steady", 8)
    w = world_factory(settings_yaml(prom.url, "- {namespace: default, name: steady}"), prom_timeout=0.3)
    await w.ticks(1)
    pid = prom._proc.pid
    os.kill(pid, signal.SIGSTOP)  # accepts connections, never answers
    try:
        started = asyncio.get_running_loop().time()
        await w.ticks(1)
        assert asyncio.get_running_loop().time() - started < 3.0
        assert w.controller.managed()["Deployment/default/steady"]["failures"] == 1
    finally:
        os.kill(pid, signal.SIGCONT)
    await w.ticks(2)
    assert w.controller.managed()["Deployment/default/steady"]["failures"] == 0
    assert w.scale_patches() == []


async def test_a_409_storm_is_retried_and_then_the_next_tick_applies(world_factory, kube_server, kube_clock, prom):
    deploy(kube_server, kube_clock, "steady", 6)
    w = world_factory(settings_yaml(prom.url, "- {namespace: default, name: steady}"))
    kube_server.faults.fail_next(7, status=409, method="PATCH", path="*/scale")
    await w.ticks(1)  # 5 conflicts in a row: the adapter gives up, the tick counts a failure
    assert w.replicas("steady") == 6
    assert w.controller.managed()["Deployment/default/steady"]["failures"] == 1
    await w.ticks(1)  # 2 more conflicts, then it goes through
    assert w.replicas("steady") == 8
    assert w.controller.managed()["Deployment/default/steady"]["failures"] == 0
    assert len(w.scale_patches("steady", ok_only=False)) == 8


async def test_an_api_server_failing_for_a_minute_only_pauses_the_workload(world_factory, kube_server, kube_clock, prom):
    deploy(kube_server, kube_clock, "steady", 2)
    w = world_factory(settings_yaml(prom.url, "- {namespace: default, name: steady}"))
    kube_server.faults.fail_for(60, status=500)
    fault_end = kube_clock.t + 60
    while kube_clock.t < fault_end + 10 * TICK:
        await w.ticks(1)
    ok_during = [r for r in kube_server.requests if r.status < 400 and r.at < fault_end]
    assert ok_during == []
    assert w.metric("scaleahead_kube_errors_total", operation="read_object", status="500") >= 1
    assert w.replicas("steady") == 8
    assert w.controller.managed()["Deployment/default/steady"]["failures"] == 0


# ---- discovery -----------------------------------------------------------------------------------


async def test_annotated_deployments_are_discovered_with_their_overrides(world_factory, kube_server, kube_clock, prom, kube_api):
    deploy(kube_server, kube_clock, "steady", 2, annotations={
        loop.ANNOTATION_ENABLED: "true", "scaleahead.io/max-replicas": "7", "scaleahead.io/mode": "active"})  # fmt: skip
    kube_server.put(kubeapi.make_deployment("bad", annotations={loop.ANNOTATION_ENABLED: "true", "scaleahead.io/min-replicas": "x"}))
    kube_server.put(kubeapi.make_deployment("other"))
    w = world_factory(settings_yaml(prom.url, "[]", mode="recommend").replace("workloads:\n  []", "workloads: []"))
    w.controller.discovery = loop.AnnotationDiscovery(kube_api)
    await w.ticks(3)
    assert list(w.controller.managed()) == ["Deployment/default/steady"]
    assert w.replicas("steady") == 7  # capped by its annotation


async def test_a_failed_discovery_list_keeps_the_annotated_workloads(world_factory, kube_server, kube_clock, prom, kube_api, caplog):
    deploy(kube_server, kube_clock, "steady", 2, annotations={loop.ANNOTATION_ENABLED: "true", "scaleahead.io/mode": "active"})
    w = world_factory(settings_yaml(prom.url, "[]").replace("workloads:\n  []", "workloads: []"))
    w.controller.discovery = loop.AnnotationDiscovery(kube_api)
    w.controller.discovery_interval_seconds = TICK
    await w.ticks(2)
    assert list(w.controller.managed()) == ["Deployment/default/steady"]

    for status in (403, 500):  # an error body is not an empty list
        kube_server.faults.fail_next(1, status=status, method="GET", path="/apis/apps/v1/deployments")
        with pytest.raises(RuntimeError, match=f"listing Deployments failed: HTTP {status}"):
            await w.controller.discovery.discover()
    kube_server.faults.fail_next(1, status=403, method="GET", path="/apis/apps/v1/deployments")
    with caplog.at_level(logging.WARNING, logger="controller.loop"):
        await w.ticks(1)
    assert list(w.controller.managed()) == ["Deployment/default/steady"]  # the last list is kept
    assert any("discovery of annotated workloads failed" in r.getMessage() for r in caplog.records)


async def test_a_discovery_that_keeps_failing_waits_its_interval_says_so_once_and_is_counted(world_factory, kube_server, kube_clock, prom, kube_api, caplog):
    w = world_factory(settings_yaml(prom.url, "[]").replace("workloads:\n  []", "workloads: []"))
    w.controller.discovery = loop.AnnotationDiscovery(kube_api, on_call=w.telemetry.record_kube)
    kube_server.faults.fail_for(3600, status=403, method="GET", path="/apis/apps/v1/deployments")  # per-namespace RBAC
    with caplog.at_level(logging.DEBUG, logger="controller.loop"):
        await w.ticks(8)  # two minutes: two attempts, at the 60 s interval
    assert len(kube_server.requests_to("GET", "/apis/apps/v1/deployments")) == 2
    failures = [r for r in caplog.records if "discovery of annotated workloads failed" in r.getMessage()]
    assert [r.levelno for r in failures] == [logging.WARNING, logging.DEBUG]
    assert w.metric("scaleahead_kube_errors_total", operation="list_workloads", status="403") == 2


async def test_discovery_can_be_turned_off(world_factory, kube_server, kube_clock, prom, kube_api):
    deploy(kube_server, kube_clock, "steady", 2, annotations={loop.ANNOTATION_ENABLED: "true"})
    text = settings_yaml(prom.url, "[]").replace("workloads:\n  []", "workloads: []")
    w = world_factory(text.replace("  default_mode: active\n", "  default_mode: active\n  discover_annotated_workloads: false\n"))
    w.controller.discovery = loop.AnnotationDiscovery(kube_api)
    await w.ticks(3)
    assert kube_server.requests_to("GET", "/apis/apps/v1/deployments") == []
    assert w.controller.managed() == {}


async def test_an_annotation_that_clashes_with_the_settings_is_named_and_logged_once(world_factory, kube_server, kube_clock, prom, kube_api, caplog):
    deploy(kube_server, kube_clock, "steady", 2, annotations={loop.ANNOTATION_ENABLED: "true", "scaleahead.io/min-replicas": "200"})
    w = world_factory(settings_yaml(prom.url, "[]").replace("workloads:\n  []", "workloads: []"))
    w.controller.discovery = loop.AnnotationDiscovery(kube_api)
    w.controller.discovery_interval_seconds = TICK
    with caplog.at_level(logging.WARNING, logger="controller.loop"):
        await w.ticks(4)
    warnings = [r.getMessage() for r in caplog.records if "ignoring an annotated workload" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "Deployment/default/steady: scaleahead.io/min-replicas: must be less than or equal to max_replicas" in warnings[0]
    assert w.controller.managed() == {}


async def test_the_forecast_annotation_sets_the_ladder_an_edit_rebuilds_it_and_a_clash_is_named(world_factory, kube_server, kube_clock, prom, kube_api, caplog):
    from kubernetes_asyncio import client

    deploy(kube_server, kube_clock, "steady", 2, annotations={
        loop.ANNOTATION_ENABLED: "true", loop.ANNOTATION_FORECAST: "{quantile: 0.95, lower_quantile_to: [], lean_quantile: null}"})  # fmt: skip
    # 0.98 is above the global ladder's 0.975: the merge fails, and the message names the annotation
    deploy(kube_server, kube_clock, "clash", 2, annotations={loop.ANNOTATION_ENABLED: "true", loop.ANNOTATION_FORECAST: '{"quantile": 0.98}'})
    # nested deeper than the YAML parser goes: that workload is ignored, never the discovery of the others
    deploy(kube_server, kube_clock, "deep", 2, annotations={loop.ANNOTATION_ENABLED: "true", loop.ANNOTATION_FORECAST: "[" * 600})
    w = world_factory(settings_yaml(prom.url, "[]").replace("workloads:\n  []", "workloads: []"))
    w.controller.discovery = loop.AnnotationDiscovery(kube_api)
    w.controller.discovery_interval_seconds = TICK
    with caplog.at_level(logging.WARNING, logger="controller.loop"):
        await w.ticks(3)
    label = "Deployment/default/steady"
    assert list(w.controller.managed()) == [label]
    warnings = [r.getMessage() for r in caplog.records if "ignoring an annotated workload" in r.getMessage()]
    assert len(warnings) == 2, warnings
    assert any(w.startswith("ignoring an annotated workload: Deployment/default/clash: scaleahead.io/forecast: raise_quantile_to")
               and w.endswith("(the keys the annotation does not write are the global forecast settings)") for w in warnings), warnings  # fmt: skip
    assert any("Deployment/default/deep: scaleahead.io/forecast: cannot be read (RecursionError" in w for w in warnings), warnings
    ref = WorkloadRef(namespace=NS, name="steady", kind="Deployment", api_version="apps/v1")
    settings = w.controller.settings.effective_forecast(w.controller.workloads[ref].workload)
    assert (settings.quantile, settings.lower_quantile_to, settings.lean_quantile) == (0.95, [], None)
    assert w.metric("scaleahead_provisioning_quantile", workload=label) == 0.95

    # `kubectl annotate --overwrite`: the next discovery rebuilds the policy on the new ladder
    await client.AppsV1Api(kube_api).patch_namespaced_deployment(
        "steady", NS, {"metadata": {"annotations": {loop.ANNOTATION_FORECAST: '{"quantile": 0.9}'}}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="controller.loop"):
        await w.ticks(2)
    assert any(r.getMessage() == f"{label}: settings changed; policy rebuilt" for r in caplog.records)
    assert w.metric("scaleahead_provisioning_quantile", workload=label) == 0.9
    settings = w.controller.settings.effective_forecast(w.controller.workloads[ref].workload)
    assert (settings.lower_quantile_to, settings.lean_quantile) == ([0.7, 0.6], 0.5)  # the keys it no longer writes inherit


def test_the_forecast_annotation_is_a_mapping_of_forecast_keys_and_each_problem_names_it():
    def parse(value: str):
        return loop.workload_from_annotations(namespace="default", name="web", kind="Deployment",
                                              annotations={loop.ANNOTATION_ENABLED: "true", loop.ANNOTATION_FORECAST: value})  # fmt: skip

    settings = ControllerSettings()
    json_form = settings.effective_forecast(parse('{"quantile": 0.9, "raise_quantile_to": [0.95, 0.99]}'))
    assert (json_form.quantile, json_form.raise_quantile_to, json_form.lower_quantile_to) == (0.9, [0.95, 0.99], [0.7, 0.6])
    assert settings.effective_forecast(parse("lean_quantile: null")).lean_quantile is None  # block YAML too
    for value, message in [
        ("{quantile: 1.5}", "scaleahead.io/forecast key quantile: input should be less than 1 (got 1.5)"),
        ("{lower_quantile_to: [0.7, x]}", "scaleahead.io/forecast key lower_quantile_to[1]: input should be a valid number"),
        ("{quantil: 0.9}", """scaleahead.io/forecast key "quantil": unknown; did you mean 'quantile'? allowed: quantile, raise_quantile_to"""),
        # the model and its history cost the controller for every workload: the settings' owner sets them
        ("{quantile: 0.9, history_days: 400}", "scaleahead.io/forecast key history_days: set in the settings only"),
        ("0.95", 'scaleahead.io/forecast: must be a mapping of forecast settings such as'),
        ("", "scaleahead.io/forecast: must be a mapping"),
        ("{quantile: [", 'scaleahead.io/forecast: not a YAML or JSON mapping: expected the node content'),
        ("[" * 600, "scaleahead.io/forecast: cannot be read (RecursionError"),
        ("{reference_days: 1" + "0" * 5000 + "}", "scaleahead.io/forecast: cannot be read (ValueError"),
    ]:
        with pytest.raises(ValueError) as raised:
            parse(value)
        assert str(raised.value).startswith(message), (value, str(raised.value))


# ---- run and stop --------------------------------------------------------------------------------


async def test_run_ticks_on_its_interval_and_stops_gracefully(kube_server, kube_api, prom, tmp_path):
    kube_server.put(kubeapi.make_deployment("steady", replicas=8))
    path = tmp_path / "config.yaml"
    text = settings_yaml(prom.url, "- {namespace: default, name: steady}").replace("interval_seconds: 15.0", "interval_seconds: 0.1")
    path.write_text(text)
    registry = CollectorRegistry()
    telemetry = Telemetry(registry)
    metrics = PrometheusMetricsSource(prom.url, timeout_seconds=2, retries=0)
    health = Health()
    controller = loop.Controller(
        ControllerSettings.from_yaml(text), clock=SystemClock(), metrics=metrics, kube=kube.KubeAdapter(kube_api),
        telemetry=telemetry, health=health, decisions=DecisionLog(), settings_path=path, settings_poll_seconds=0.05,
    )  # fmt: skip
    task = asyncio.create_task(controller.run())
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            if controller.ticks >= 3:
                break
        assert controller.ticks >= 3 and health.ready()
        path.write_text("loop: [")  # a bad edit, picked up by the watcher
        for _ in range(40):
            await asyncio.sleep(0.05)
            if registry.get_sample_value("scaleahead_config_valid") == 0:
                break
        assert registry.get_sample_value("scaleahead_config_valid") == 0
        assert controller.ticks >= 3
    finally:
        controller.stop()
        await asyncio.wait_for(task, 5)
        await metrics.aclose()
    assert not health.alive()
    assert registry.get_sample_value("scaleahead_tick_duration_seconds_count") >= 3
    assert registry.get_sample_value("scaleahead_tick_lag_seconds") is not None


def test_the_median_forecast_is_scored_when_it_comes_due():
    from controller.domain import WorkloadRef
    from controller.loop import _Managed, _score_due_forecasts
    from controller.settings import WorkloadSettings

    m = _Managed(WorkloadRef("shop", "web"), "shop/web", WorkloadSettings(namespace="shop", name="web"), "active")
    # at t=0 the median forecast for t=150 is 10 load units
    assert _score_due_forecasts(m, 0.0, 8.0, {0.1: 5.0, 0.5: 10.0, 0.9: 15.0}, 150.0) is None
    assert _score_due_forecasts(m, 135.0, 9.0, None, None) is None  # not due yet
    assert _score_due_forecasts(m, 150.0, None, None, None) is None  # due, but no load to score against
    # the next tick with a load scores it: |8 - 10| / max(8, 10) = 0.2
    assert _score_due_forecasts(m, 165.0, 8.0, None, None) == pytest.approx(0.2)
    assert m.due_forecasts == []


async def test_refits_of_the_live_policy_run_in_a_worker_thread_and_decide_as_the_simulated_policy_does():
    """The live policy prefits off the event loop; if its mirror of the step aggregation drifted
    from the policy's, every fit would silently fall back to running inline on the loop."""
    import threading

    import numpy as np

    from controller import policies
    from controller.decide import planner
    from controller.loop import LivePredictivePolicy
    from controller.sim.cluster import SimActuator, SimClock, SimCluster, SimMetrics, SimPods
    from controller.sim.engine import TARGET
    from controller.sim.scenario import Scenario

    minutes = np.arange(8 * 60 + 1)
    load = 20 + 10 * np.sin(2 * np.pi * minutes / 120) + np.random.default_rng(1).normal(0, 0.5, minutes.size)
    ticks = np.arange(8 * 240 + 1)
    scenario = Scenario("sine", 15.0 * ticks, np.interp(ticks / 4.0, minutes, load))

    def make(cls, **extra):
        cluster = SimCluster(startup_seconds=60)
        cluster.ready = scenario.initial_pods()
        clock = SimClock(0.0)
        ports = policies.PolicyPorts(
            clock=clock, metrics=SimMetrics(clock=clock, t0=0.0, observed=scenario.observed()),
            pods=SimPods(cluster, t0=0.0), actuator=SimActuator(cluster),
        )  # fmt: skip
        policy = cls(
            ports, planner.PlannerParams(), forecaster_factory=policies.forecaster_factory("ets", max_horizon_steps=16),
            first_fit_seconds=3600.0, refit_interval_seconds=3600.0, **extra,
        )  # fmt: skip
        return policy, clock, cluster

    fit_threads: list[str] = []
    live, live_clock, live_cluster = make(LivePredictivePolicy, on_refit=lambda s: fit_threads.append(threading.current_thread().name))
    plain, plain_clock, plain_cluster = make(policies.PredictivePolicy)
    live_decisions, plain_decisions = [], []
    for i, t in enumerate(scenario.times):
        for clock, cluster in ((live_clock, live_cluster), (plain_clock, plain_cluster)):
            clock.t = float(t)
            cluster.advance(i)
        live_decisions.append((await live.reconcile(TARGET)).to_value)
        plain_decisions.append((await plain.reconcile(TARGET)).to_value)

    # fits after the first hour, then hourly: 1 h, 2 h, ... 7 h of the 8-hour run
    assert len(fit_threads) >= 6
    assert all(name != threading.main_thread().name for name in fit_threads), fit_threads
    assert live_decisions == plain_decisions


def test_the_startup_quantile_annotation_overrides_the_workload_and_a_bad_one_is_named():
    base = {loop.ANNOTATION_ENABLED: "true"}
    w = loop.workload_from_annotations(namespace="default", name="web", kind="Deployment",
                                       annotations={**base, "scaleahead.io/startup-quantile": " 0.75 "})  # fmt: skip
    settings = ControllerSettings.model_validate({"workloads": [w.model_dump(exclude_unset=True)]})
    assert settings.effective_replicas(w).startup_quantile == 0.75
    assert settings.effective_replicas(settings.workloads[0]).startup_quantile == 0.75
    unset = loop.workload_from_annotations(namespace="default", name="web", kind="Deployment", annotations=base)
    assert settings.effective_replicas(unset).startup_quantile == ControllerSettings().replicas.startup_quantile
    with pytest.raises(ValueError, match="scaleahead.io/startup-quantile"):
        loop.workload_from_annotations(namespace="default", name="web", kind="Deployment",
                                       annotations={**base, "scaleahead.io/startup-quantile": "1"})  # fmt: skip
