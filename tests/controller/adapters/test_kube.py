"""The Kubernetes adapter against the project's Kubernetes API test server, over real HTTP.

The server (``controller.sim.kubeapi``) records every request, so the tests assert on
what reached the API: which requests, with which content type and body. Retries sleep
on the simulated clock the server also reads, so backoffs cost no wall time.
"""

from __future__ import annotations

import json
import math
import random

import pytest
from kubernetes_asyncio import client

from controller.adapters import kube
from controller.domain import Reason, WorkloadRef
from controller.sim import kubeapi
from controller.sim.cluster import SimClock

pytestmark = pytest.mark.usefixtures("no_leftover_tasks")

NS = "default"
STARTUP = 30.0  # KUBE_POD_STARTUP_SECONDS of tests/conftest.py


class RecordingClock(SimClock):
    """The simulated clock; ``sleep`` records each delay and advances time without waiting."""

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


@pytest.fixture
def kube_clock() -> RecordingClock:
    """Overrides the shared fixture: the same simulated clock, recording the adapter's sleeps."""
    return RecordingClock(1_700_000_000.0)


@pytest.fixture
def calls() -> list[kube.ApiCall]:
    return []


@pytest.fixture
def adapter(kube_api, kube_clock, calls) -> kube.KubeAdapter:
    return kube.KubeAdapter(kube_api, clock=kube_clock, on_call=calls.append, rng=random.Random(1))


DEPLOYMENT = WorkloadRef(NS, "web")
STATEFULSET = WorkloadRef(NS, "db", kind="StatefulSet")
ROLLOUT = WorkloadRef(NS, "canary", kind="Rollout", api_version="argoproj.io/v1alpha1")

BUILDERS = {"Deployment": kubeapi.make_deployment, "StatefulSet": kubeapi.make_statefulset, "Rollout": kubeapi.make_rollout}
SCALE_PATHS = {
    "Deployment": "/apis/apps/v1/namespaces/default/deployments/web/scale",
    "StatefulSet": "/apis/apps/v1/namespaces/default/statefulsets/db/scale",
    "Rollout": "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/canary/scale",
}
PLURALS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "Rollout": "rollouts"}
ALL_KINDS = [pytest.param(t, id=t.kind) for t in (DEPLOYMENT, STATEFULSET, ROLLOUT)]


def seed(server: kubeapi.KubeApiServer, target: WorkloadRef, replicas: int = 2, **kwargs) -> dict:
    return server.put(BUILDERS[target.kind](target.name, namespace=target.namespace, replicas=replicas, **kwargs))


def writes(server: kubeapi.KubeApiServer) -> list[kubeapi.RecordedRequest]:
    return [r for r in server.requests if r.method != "GET"]


# ---- scale ------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ALL_KINDS)
async def test_scale_patches_only_spec_replicas_of_the_scale_subresource(adapter, kube_server, target):
    seed(kube_server, target, replicas=2)
    assert await adapter.current_replicas(target) == 2

    result = await adapter.scale(target, 5, Reason.UtilizationAboveTarget)

    assert (result.applied, result.replicas, result.from_replicas) == (True, 5, 2)
    assert kube_server.get(PLURALS[target.kind], NS, target.name)["spec"]["replicas"] == 5
    (patch,) = kube_server.requests_to("PATCH")
    assert patch.path == SCALE_PATHS[target.kind]
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body == {"spec": {"replicas": 5}}
    assert patch.status == 200 and patch.warnings == ()
    assert await adapter.current_replicas(target) == 5


@pytest.mark.parametrize("target", ALL_KINDS)
async def test_no_patch_is_sent_when_the_count_is_unchanged(adapter, kube_server, target):
    seed(kube_server, target, replicas=3)
    result = await adapter.scale(target, 3, Reason.WithinTolerance)
    assert (result.applied, result.replicas) == (False, 3)
    assert writes(kube_server) == []
    assert [r.path for r in kube_server.requests] == [SCALE_PATHS[target.kind]]


async def test_dry_run_reads_but_changes_nothing(kube_api, kube_server, kube_clock):
    seed(kube_server, DEPLOYMENT, replicas=2)
    before = kube_server.get("deployments", NS, "web")
    dry = kube.KubeAdapter(kube_api, clock=kube_clock, dry_run=True)

    result = await dry.scale(DEPLOYMENT, 7, Reason.UtilizationAboveTarget)
    wrote = await dry.write_state(DEPLOYMENT, '{"v": 1}')

    assert (result.applied, result.dry_run, result.replicas, result.from_replicas) == (False, True, 2, 2)
    assert wrote is False
    assert writes(kube_server) == []
    assert kube_server.get("deployments", NS, "web") == before


async def test_scale_records_an_event_with_the_reason(adapter, kube_server):
    workload = seed(kube_server, DEPLOYMENT, replicas=2)
    await adapter.scale(DEPLOYMENT, 4, Reason.ScaleUpLimit)

    (event,) = kube_server.objects("events", NS)
    assert event["reason"] == "ScaleUpLimit" and event["type"] == "Normal"
    assert event["message"] == "Scaled from 2 to 4 replicas (ScaleUpLimit)"
    assert event["involvedObject"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": NS, "uid": workload["metadata"]["uid"],
    }  # fmt: skip
    assert event["source"] == {"component": "scaleahead"} and event["count"] == 1
    assert event["metadata"]["name"].startswith("web.")


async def test_a_negative_count_is_refused_before_any_request(adapter, kube_server):
    with pytest.raises(ValueError):
        await adapter.scale(DEPLOYMENT, -1, Reason.TooFewReplicas)
    assert kube_server.requests == []


# ---- pods -------------------------------------------------------------------------------------


async def test_pod_counts_follow_the_pods_of_a_scale_up(adapter, kube_server, kube_clock):
    seed(kube_server, DEPLOYMENT, replicas=1)
    kube_clock.t += STARTUP
    assert await adapter.pod_counts(DEPLOYMENT) == (1, 0)

    await adapter.scale(DEPLOYMENT, 4, Reason.UtilizationAboveTarget)
    assert await adapter.pod_counts(DEPLOYMENT) == (1, 3)
    kube_clock.t += STARTUP
    assert await adapter.pod_counts(DEPLOYMENT) == (4, 0)
    # the list used the selector the scale subresource reported
    assert kube_server.requests_to("GET", "*/pods")[-1].query["labelSelector"] == "app=web"


async def test_pod_counts_leave_out_terminating_and_finished_pods_and_other_workloads(adapter, kube_server, kube_clock):
    seed(kube_server, DEPLOYMENT, replicas=0)
    t = kube_clock.t
    web = {"app": "web"}
    kube_server.put(kubeapi.make_pod("ready-1", labels=web, created_at=t - 100, ready_at=t - 60))
    kube_server.put(kubeapi.make_pod("ready-2", labels=web, created_at=t - 100, ready_at=t - 50))
    kube_server.put(kubeapi.make_pod("starting", labels=web, created_at=t - 10))
    terminating = kubeapi.make_pod("terminating", labels=web, created_at=t - 100, ready_at=t - 90)
    terminating["metadata"]["deletionTimestamp"] = kubeapi.rfc3339(t - 1)
    kube_server.put(terminating)
    kube_server.put(kubeapi.make_pod("failed", labels=web, created_at=t - 100, phase="Failed"))
    kube_server.put(kubeapi.make_pod("other", labels={"app": "api"}, created_at=t - 100, ready_at=t - 60))

    assert await adapter.pod_counts(DEPLOYMENT) == (2, 1)


async def test_pods_are_listed_in_pages(kube_api, kube_server, kube_clock):
    seed(kube_server, DEPLOYMENT, replicas=5)
    small_pages = kube.KubeAdapter(kube_api, clock=kube_clock, page_size=2)
    assert await small_pages.pod_counts(DEPLOYMENT) == (0, 5)
    requests = kube_server.requests_to("GET", "*/pods")
    assert [r.query["limit"] for r in requests] == ["2", "2", "2"]
    # the first page from the API server's cache (any version); the others by their continue token alone
    assert [r.query.get("resourceVersion") for r in requests] == ["0", None, None]


async def test_startup_durations_come_from_creation_and_ready_conditions(adapter, kube_server, kube_clock):
    seed(kube_server, DEPLOYMENT, replicas=0)
    t = kube_clock.t
    web = {"app": "web"}
    kube_server.put(kubeapi.make_pod("slow", labels=web, created_at=t - 300, ready_at=t - 255))  # 45 s
    kube_server.put(kubeapi.make_pod("fast", labels=web, created_at=t - 100, ready_at=t - 88))  # 12 s
    kube_server.put(kubeapi.make_pod("ancient", labels=web, created_at=t - 9000, ready_at=t - 8000))  # outside the window
    kube_server.put(kubeapi.make_pod("starting", labels=web, created_at=t - 10))

    assert await adapter.pod_startup_seconds(DEPLOYMENT, window_seconds=3600) == [45.0, 12.0]


async def test_recent_startups_are_the_pods_ready_after_since_in_ready_order(adapter, kube_server, kube_clock):
    seed(kube_server, DEPLOYMENT, replicas=0)
    t = kube_clock.t
    web = {"app": "web"}
    kube_server.put(kubeapi.make_pod("fast", labels=web, created_at=t - 100, ready_at=t - 88))  # 12 s
    kube_server.put(kubeapi.make_pod("slow", labels=web, created_at=t - 300, ready_at=t - 255))  # 45 s
    kube_server.put(kubeapi.make_pod("before", labels=web, created_at=t - 500, ready_at=t - 400))  # not after since
    kube_server.put(kubeapi.make_pod("starting", labels=web, created_at=t - 10))

    assert await adapter.recent_startups(DEPLOYMENT, since=t - 400) == [(t - 255, 45.0), (t - 88, 12.0)]
    assert await adapter.recent_startups(DEPLOYMENT, since=t - 88) == []


async def test_startup_durations_of_emulated_pods(adapter, kube_server, kube_clock):
    seed(kube_server, STATEFULSET, replicas=2)
    kube_clock.t += STARTUP
    assert await adapter.pod_startup_seconds(STATEFULSET) == [STARTUP, STARTUP]


async def test_a_custom_resource_without_a_selector_cannot_count_pods(kube_api, kube_clock):
    async with kubeapi.KubeApiServer(clock=kube_clock, emulate=False) as server, server.api_client() as api:
        seed(server, ROLLOUT, replicas=2)  # nobody reports .status.selector
        with pytest.raises(kube.SelectorUnavailable, match="no status.selector"):
            await kube.KubeAdapter(api, clock=kube_clock).pod_counts(ROLLOUT)
        assert server.requests_to("GET", "*/pods") == []


# ---- state annotation -------------------------------------------------------------------------


@pytest.mark.parametrize("target", [pytest.param(DEPLOYMENT, id="Deployment"), pytest.param(ROLLOUT, id="Rollout")])
async def test_the_state_round_trips_through_one_annotation(adapter, kube_api, kube_server, kube_clock, target):
    seed(kube_server, target, annotations={"team": "shop"})
    assert await adapter.read_state(target) is None
    state = json.dumps({"recommendations": [[3, 1700000000.0]], "scale_up_events": []})

    assert await adapter.write_state(target, state) is True
    assert await adapter.write_state(target, state) is False  # unchanged: nothing sent

    (patch,) = kube_server.requests_to("PATCH")
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body == {"metadata": {"annotations": {"scaleahead.io/state": state}}}
    stored = kube_server.get(PLURALS[target.kind], NS, target.name)
    assert stored["metadata"]["annotations"] == {"team": "shop", "scaleahead.io/state": state}
    # a restarted controller reads it back
    assert await kube.KubeAdapter(kube_api, clock=kube_clock).read_state(target) == state


async def test_a_state_too_large_for_annotations_is_refused_by_the_server(adapter, kube_server):
    seed(kube_server, DEPLOYMENT)
    with pytest.raises(kube.KubeApiError) as err:
        await adapter.write_state(DEPLOYMENT, "x" * 300_000)
    assert err.value.status == 422 and "Too long" in str(err.value)
    assert len(kube_server.requests_to("PATCH")) == 1  # not retried


# ---- events and conflicts ---------------------------------------------------------------------


async def test_emit_event_records_a_core_v1_event_on_the_target(adapter, kube_api, kube_server):
    seed(kube_server, STATEFULSET)
    await adapter.emit_event(STATEFULSET, "ConflictingAutoscaler", "HPA default/db scales it", type="Warning")

    events = await client.CoreV1Api(kube_api).list_namespaced_event(NS, field_selector="involvedObject.name=db")
    (event,) = events.items
    assert (event.reason, event.type, event.message) == ("ConflictingAutoscaler", "Warning", "HPA default/db scales it")
    assert (event.involved_object.kind, event.involved_object.api_version) == ("StatefulSet", "apps/v1")
    assert event.reporting_component == "scaleahead" and event.first_timestamp == event.last_timestamp


async def test_conflicting_hpas_and_scaled_objects_are_found_by_scale_target_ref(adapter, kube_server):
    seed(kube_server, DEPLOYMENT)
    kube_server.put(kubeapi.make_hpa("web-hpa", target_kind="Deployment", target_name="web"))
    kube_server.put(kubeapi.make_hpa("db-hpa", target_kind="StatefulSet", target_name="web"))  # same name, other kind
    kube_server.put(kubeapi.make_hpa("api-hpa", target_kind="Deployment", target_name="api"))
    kube_server.put(kubeapi.make_scaled_object("web-so", target_name="web"))  # KEDA's default kind: Deployment
    kube_server.put(kubeapi.make_scaled_object("ro-so", target_name="canary", target_kind="Rollout", target_api_version="argoproj.io/v1alpha1"))

    assert await adapter.find_conflicts(DEPLOYMENT) == ["HorizontalPodAutoscaler default/web-hpa", "ScaledObject default/web-so"]
    assert await adapter.find_conflicts(ROLLOUT) == ["ScaledObject default/ro-so"]
    assert await adapter.find_conflicts(STATEFULSET) == []


async def test_a_cluster_without_keda_has_no_scaled_objects(adapter, kube_server):
    kube_server.put(kubeapi.make_hpa("web-hpa", target_kind="Deployment", target_name="web"))
    kube_server.faults.fail_next(1, status=404, path="/apis/keda.sh/*")
    assert await adapter.find_conflicts(DEPLOYMENT) == ["HorizontalPodAutoscaler default/web-hpa"]


# ---- errors and retries -----------------------------------------------------------------------


async def test_a_409_storm_is_retried_with_a_fresh_read_each_time(adapter, kube_server, kube_clock):
    seed(kube_server, DEPLOYMENT, replicas=2)
    kube_server.faults.fail_next(3, status=409, method="PATCH", path="*/scale")

    result = await adapter.scale(DEPLOYMENT, 6, Reason.UtilizationAboveTarget)

    assert result.applied and kube_server.get("deployments", NS, "web")["spec"]["replicas"] == 6
    assert [r.status for r in kube_server.requests_to("PATCH", "*/scale")] == [409, 409, 409, 200]
    assert len(kube_server.requests_to("GET", "*/scale")) == 4  # read-compare-write, four times
    assert len(kube_clock.sleeps) == 3 and all(0.01 <= s <= 0.011 for s in kube_clock.sleeps)


async def test_a_conflict_caused_by_a_writer_that_set_our_count_ends_without_another_patch(adapter, kube_server):
    seed(kube_server, DEPLOYMENT, replicas=2)

    def someone_else_scales_to_6():
        deployment = kube_server.get("deployments", NS, "web")
        deployment["spec"]["replicas"] = 6
        kube_server.put(deployment)

    kube_server.faults.fail_next(1, status=409, method="PATCH", path="*/scale", on_fire=someone_else_scales_to_6)
    result = await adapter.scale(DEPLOYMENT, 6, Reason.UtilizationAboveTarget)

    assert (result.applied, result.replicas) == (False, 6)  # the re-read found 6: nothing left to write
    assert [r.status for r in kube_server.requests_to("PATCH")] == [409]
    assert kube_server.objects("events") == []


async def test_a_409_storm_gives_up_after_the_bound_with_a_clear_error(adapter, kube_server):
    seed(kube_server, DEPLOYMENT, replicas=2)
    kube_server.faults.fail_next(100, status=409, method="PATCH", path="*/scale")

    with pytest.raises(kube.RetriesExhausted) as err:
        await adapter.scale(DEPLOYMENT, 6, Reason.UtilizationAboveTarget)

    assert err.value.status == 409 and err.value.attempts == 5
    assert str(err.value) == "scale Deployment/default/web: 409 Conflict on 5 attempts in a row; giving up"
    assert len(kube_server.requests_to("PATCH")) == 5
    assert kube_server.get("deployments", NS, "web")["spec"]["replicas"] == 2


async def test_a_429_waits_as_long_as_retry_after_says(adapter, kube_server, kube_clock, calls):
    seed(kube_server, DEPLOYMENT, replicas=2)
    kube_server.faults.fail_next(1, status=429, path="*/scale", retry_after_seconds=7)
    assert await adapter.current_replicas(DEPLOYMENT) == 2
    assert kube_clock.sleeps == [7.0]
    assert [(c.operation, c.status) for c in calls] == [("read_scale", 429), ("read_scale", None)]


async def test_server_errors_back_off_exponentially_with_jitter(adapter, kube_server, kube_clock):
    seed(kube_server, DEPLOYMENT, replicas=2)
    kube_server.faults.fail_next(3, status=500, path="*/scale")
    assert (await adapter.scale(DEPLOYMENT, 3, Reason.UtilizationAboveTarget)).applied
    # 0.5 s doubling, each stretched by up to 20 %
    for sleep, base in zip(kube_clock.sleeps, [0.5, 1.0, 2.0], strict=True):
        assert base <= sleep <= base * 1.2


async def test_an_api_server_down_for_a_minute_is_outlasted_with_a_longer_policy(kube_api, kube_server, kube_clock):
    seed(kube_server, DEPLOYMENT, replicas=2)
    kube_server.faults.fail_for(60, status=500)
    patient = kube.KubeAdapter(kube_api, clock=kube_clock, retry=kube.RetryPolicy(max_attempts=9, jitter_ratio=0.0))
    assert await patient.current_replicas(DEPLOYMENT) == 2
    assert kube_clock.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]  # 61.5 s: the outage is over


async def test_server_errors_give_up_after_max_attempts(adapter, kube_server, kube_clock):
    seed(kube_server, DEPLOYMENT)
    kube_server.faults.fail_for(3600, status=503)
    with pytest.raises(kube.RetriesExhausted) as err:
        await adapter.current_replicas(DEPLOYMENT)
    assert err.value.status == 503 and err.value.attempts == 5 and len(kube_clock.sleeps) == 4
    assert "gave up after 5 attempts" in str(err.value) and "503" in str(err.value)


async def test_an_unreachable_api_server_is_retried_then_reported(kube_clock):
    async with client.ApiClient(client.Configuration(host="http://127.0.0.1:9")) as api:
        with pytest.raises(kube.RetriesExhausted) as err:
            await kube.KubeAdapter(api, clock=kube_clock).current_replicas(DEPLOYMENT)
    assert err.value.status == 0 and len(kube_clock.sleeps) == 4


@pytest.mark.parametrize("target", ALL_KINDS)
async def test_a_missing_target_is_target_not_found(adapter, target):
    with pytest.raises(kube.TargetNotFound, match="not found"):
        await adapter.current_replicas(target)
    with pytest.raises(kube.TargetNotFound):
        await adapter.scale(target, 3, Reason.UtilizationAboveTarget)
    with pytest.raises(kube.TargetNotFound):
        await adapter.pod_counts(target)
    with pytest.raises(kube.TargetNotFound):
        await adapter.read_state(target)


async def test_other_client_errors_are_not_retried(adapter, kube_server, kube_clock):
    seed(kube_server, DEPLOYMENT)
    kube_server.faults.fail_next(1, status=403, path="*/scale")
    with pytest.raises(kube.KubeApiError) as err:
        await adapter.current_replicas(DEPLOYMENT)
    assert err.value.status == 403 and kube_clock.sleeps == []


async def test_every_request_is_reported_with_its_outcome(adapter, kube_server, calls):
    seed(kube_server, DEPLOYMENT, replicas=2)
    await adapter.scale(DEPLOYMENT, 3, Reason.UtilizationAboveTarget)
    await adapter.pod_counts(DEPLOYMENT)
    assert [(c.operation, c.target, c.error) for c in calls] == [
        ("read_scale", "Deployment/default/web", False),
        ("patch_scale", "Deployment/default/web", False),
        ("create_event", "Deployment/default/web", False),
        ("list_pods", "Deployment/default/web", False),  # the selector came with the first read
    ]
    assert all(c.duration_seconds > 0 for c in calls)


# ---- custom resource names --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "plural"),
    [("Rollout", "rollouts"), ("ScaledObject", "scaledobjects"), ("Policy", "policies"), ("Ingress", "ingresses"), ("Gateway", "gateways")],
)
def test_the_plural_of_a_custom_kind_is_guessed_as_kubectl_does(kind, plural):
    assert kube.default_plural(kind) == plural


async def test_a_configured_plural_overrides_the_guess(kube_api, kube_server, kube_clock):
    seed(kube_server, ROLLOUT, replicas=2)
    odd = WorkloadRef(NS, "canary", kind="Canary", api_version="argoproj.io/v1alpha1")
    adapter = kube.KubeAdapter(kube_api, clock=kube_clock, plurals={("argoproj.io/v1alpha1", "Canary"): "rollouts"})
    assert await adapter.current_replicas(odd) == 2


async def test_a_pod_is_a_startup_once_not_again_when_it_is_ready_again(adapter, kube_server, kube_clock):
    seed(kube_server, DEPLOYMENT, replicas=0)
    t = kube_clock.t
    web = {"app": "web"}
    kube_server.put(kubeapi.make_pod("a", labels=web, created_at=t - 100, ready_at=t - 88))  # 12 s
    assert await adapter.recent_startups(DEPLOYMENT, since=-math.inf) == [(t - 88, 12.0)]

    # an hour later it fails its readiness probe and recovers: Ready again, 3600 s after creation
    kube_clock.t = t + 3600
    pod = kube_server.get("pods", "default", "a")
    for condition in pod["status"]["conditions"]:
        if condition["type"] == "Ready":
            condition["lastTransitionTime"] = kubeapi.rfc3339(t + 3500)
    kube_server.put(pod)
    kube_server.put(kubeapi.make_pod("b", labels=web, created_at=t + 3400, ready_at=t + 3420))  # 20 s
    assert await adapter.recent_startups(DEPLOYMENT, since=t - 88) == [(t + 3420, 20.0)]  # b only
