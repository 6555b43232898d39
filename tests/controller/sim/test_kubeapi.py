"""The Kubernetes API test server speaks the wire format kubernetes_asyncio expects.

Everything goes over HTTP through ``kubernetes_asyncio``'s typed APIs, as the controller's
requests will; the server's Python API is used only to seed objects, move the clock,
inject faults and read the request log.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time

import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.leaderelection import electionconfig, leaderelection
from kubernetes_asyncio.leaderelection.resourcelock.leaselock import LeaseLock

from controller.sim import kubeapi

pytestmark = pytest.mark.usefixtures("no_leftover_tasks")

NS = "default"


def status_of(exc: client.ApiException) -> dict:
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == exc.status
    return body


# ---- objects round-trip through the typed models ------------------------------------------------


async def test_a_typed_deployment_round_trips_with_server_set_metadata(kube_api):
    apps = client.AppsV1Api(kube_api)
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web", labels={"tier": "front"}, annotations={"a": "1"}),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="nginx")]),
            ),
        ),
    )
    created = await apps.create_namespaced_deployment(NS, body)
    got = await apps.read_namespaced_deployment("web", NS)

    assert isinstance(got, client.V1Deployment)
    assert got.metadata.uid and got.metadata.creation_timestamp and got.metadata.generation == 1
    assert got.metadata.labels == {"tier": "front"} and got.metadata.annotations == {"a": "1"}
    assert got.spec.replicas == 2 and got.spec.selector.match_labels == {"app": "web"}
    assert got.spec.template.spec.containers[0].image == "nginx"
    # the emulated controller has since created the pods and reported them: a newer version
    assert int(got.metadata.resource_version) > int(created.metadata.resource_version)
    assert got.status.replicas == 2


async def test_resource_versions_come_from_one_global_counter(kube_api):
    core = client.CoreV1Api(kube_api)
    a = await core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="a"), data={"k": "1"}))
    b = await core.create_namespaced_config_map("other", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="b"), data={"k": "2"}))
    listed = await core.list_namespaced_config_map(NS)

    assert int(b.metadata.resource_version) == int(a.metadata.resource_version) + 1
    assert listed.metadata.resource_version == b.metadata.resource_version
    assert [c.metadata.name for c in listed.items] == ["a"]


async def test_configmaps_patch_and_replace(kube_api):
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_config_map(NS, {"metadata": {"name": "settings"}, "data": {"a": "1", "b": "2"}})

    merged = await core.patch_namespaced_config_map("settings", NS, {"data": {"b": None, "c": "3"}})
    assert merged.data == {"a": "1", "c": "3"}
    patched = await core.patch_namespaced_config_map("settings", NS, [{"op": "replace", "path": "/data/a", "value": "9"}])
    assert patched.data == {"a": "9", "c": "3"}
    patched.data = {"only": "this"}
    replaced = await core.replace_namespaced_config_map("settings", NS, patched)
    assert replaced.data == {"only": "this"}
    assert int(replaced.metadata.resource_version) > int(patched.metadata.resource_version)


async def test_a_write_that_changes_nothing_keeps_the_resource_version(kube_api):
    core = client.CoreV1Api(kube_api)
    cm = await core.create_namespaced_config_map(NS, {"metadata": {"name": "same"}, "data": {"a": "1"}})
    again = await core.patch_namespaced_config_map("same", NS, {"data": {"a": "1"}})
    assert again.metadata.resource_version == cm.metadata.resource_version


# ---- errors as Status bodies --------------------------------------------------------------------


async def test_a_stale_resource_version_is_a_409_conflict(kube_api):
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_config_map(NS, {"metadata": {"name": "cm"}, "data": {"v": "0"}})
    first = await core.read_namespaced_config_map("cm", NS)
    second = await core.read_namespaced_config_map("cm", NS)
    first.data = {"v": "1"}
    await core.replace_namespaced_config_map("cm", NS, first)

    second.data = {"v": "2"}
    with pytest.raises(client.ApiException) as err:
        await core.replace_namespaced_config_map("cm", NS, second)

    body = status_of(err.value)
    assert err.value.status == 409 and body["reason"] == "Conflict"
    assert body["message"].startswith('Operation cannot be fulfilled on configmaps "cm": the object has been modified')
    assert (await core.read_namespaced_config_map("cm", NS)).data == {"v": "1"}


async def test_a_patch_carrying_a_stale_resource_version_is_a_409(kube_api):
    core = client.CoreV1Api(kube_api)
    cm = await core.create_namespaced_config_map(NS, {"metadata": {"name": "cm"}, "data": {"v": "0"}})
    await core.patch_namespaced_config_map("cm", NS, {"data": {"v": "1"}})
    with pytest.raises(client.ApiException) as err:
        await core.patch_namespaced_config_map("cm", NS, {"metadata": {"resourceVersion": cm.metadata.resource_version}, "data": {"v": "2"}})
    assert err.value.status == 409


async def test_creating_an_existing_object_is_409_already_exists(kube_api):
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_config_map(NS, {"metadata": {"name": "cm"}})
    with pytest.raises(client.ApiException) as err:
        await core.create_namespaced_config_map(NS, {"metadata": {"name": "cm"}})
    assert status_of(err.value)["reason"] == "AlreadyExists"


async def test_a_missing_object_is_a_404_with_a_status_body(kube_api):
    apps = client.AppsV1Api(kube_api)
    with pytest.raises(client.ApiException) as err:
        await apps.read_namespaced_deployment_scale("nope", NS)
    body = status_of(err.value)
    assert err.value.status == 404 and body["reason"] == "NotFound"
    assert body["message"] == 'deployments.apps "nope" not found'
    assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}


@pytest.mark.parametrize(
    ("body", "status", "reason", "needle"),
    [
        pytest.param(
            {**kubeapi.make_deployment("web"), "spec": {**kubeapi.make_deployment("web")["spec"], "replicas": -1}},
            422, "Invalid", "spec.replicas: Invalid value: -1", id="negative-replicas",
        ),
        pytest.param(
            {**kubeapi.make_deployment("web"), "spec": {**kubeapi.make_deployment("web")["spec"], "replica": 3}},
            400, "BadRequest", 'unknown field "spec.replica"', id="unknown-field-is-strict",
        ),
        pytest.param(
            {**kubeapi.make_deployment("web"), "spec": {**kubeapi.make_deployment("web")["spec"], "replicas": "3"}},
            400, "BadRequest", "spec.replicas: cannot unmarshal", id="wrong-type",
        ),
        pytest.param(
            {"metadata": {"name": "web"}, "spec": {"template": kubeapi.make_deployment("web")["spec"]["template"]}},
            422, "Invalid", "spec.selector: Required value", id="required-field-missing",
        ),
        pytest.param(
            kubeapi.make_deployment("web", labels=None) | {"spec": {**kubeapi.make_deployment("web")["spec"], "selector": {"matchLabels": {"app": "other"}}}},
            422, "Invalid", "`selector` does not match template `labels`", id="selector-not-matching-template",
        ),
        pytest.param(
            {**kubeapi.make_deployment("web"), "apiVersion": "apps/v1beta1"},
            400, "BadRequest", "does not match the expected API version", id="wrong-api-version",
        ),
        pytest.param(
            {**kubeapi.make_deployment("web"), "metadata": {"name": "Web_1"}},
            422, "Invalid", "metadata.name: Invalid value", id="bad-name",
        ),
    ],
)  # fmt: skip
async def test_invalid_objects_are_rejected_with_a_status(kube_api, kube_server, body, status, reason, needle):
    with pytest.raises(client.ApiException) as err:
        await client.AppsV1Api(kube_api).create_namespaced_deployment(NS, body)
    got = status_of(err.value)
    assert (err.value.status, got["reason"]) == (status, reason)
    assert needle in got["message"]
    assert kube_server.objects("deployments") == []


async def test_a_422_lists_its_causes_by_field(kube_api):
    with pytest.raises(client.ApiException) as err:
        await client.CoreV1Api(kube_api).create_namespaced_pod(NS, {"metadata": {"name": "p"}, "spec": {"containers": [{"image": "x"}]}})
    body = status_of(err.value)
    assert body["details"]["causes"] == [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers[0].name"}]


async def test_unknown_fields_only_warn_when_the_client_asks_for_warn(kube_api, kube_server):
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_config_map(NS, {"metadata": {"name": "cm"}, "dta": {"a": "1"}}, field_validation="Warn")
    assert kube_server.requests[-1].warnings == ('unknown field "dta"',)


async def test_the_patch_types_a_custom_resource_accepts(kube_api, kube_server):
    custom = client.CustomObjectsApi(kube_api)
    await custom.create_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "rollouts", kubeapi.make_rollout("ro"))
    args = ("argoproj.io", "v1alpha1", NS, "rollouts", "ro")

    # kubernetes_asyncio labels a dict body for a custom object as a JSON patch, which a server rejects
    with pytest.raises(client.ApiException) as err:
        await custom.patch_namespaced_custom_object(*args, {"metadata": {"labels": {"x": "y"}}})
    assert err.value.status == 400
    assert kube_server.requests[-1].content_type == "application/json-patch+json"
    # custom resources have no strategic merge patch
    with pytest.raises(client.ApiException) as err:
        await custom.patch_namespaced_custom_object(*args, {"metadata": {}}, _content_type="application/strategic-merge-patch+json")
    assert err.value.status == 415
    patched = await custom.patch_namespaced_custom_object(*args, {"metadata": {"labels": {"x": "y"}}}, _content_type="application/merge-patch+json")
    assert patched["metadata"]["labels"] == {"x": "y"}


# ---- the scale subresource ----------------------------------------------------------------------


async def test_deployment_scale_is_an_autoscaling_v1_scale_and_patching_it_sets_spec_replicas(kube_api, kube_server):
    apps = client.AppsV1Api(kube_api)
    await apps.create_namespaced_deployment(NS, kubeapi.make_deployment("web", replicas=2, labels={"app": "web", "tier": "a"}))

    scale = await apps.read_namespaced_deployment_scale("web", NS)
    assert isinstance(scale, client.V1Scale) and scale.kind == "Scale" and scale.api_version == "autoscaling/v1"
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (2, 2, "app=web,tier=a")

    patched = await apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}})
    assert patched.spec.replicas == 4
    # kubernetes_asyncio sends a dict body to a built-in kind as a strategic merge patch
    assert kube_server.requests[-1].content_type == "application/strategic-merge-patch+json"
    deployment = kube_server.get("deployments", NS, "web")
    assert deployment["spec"]["replicas"] == 4 and deployment["metadata"]["generation"] == 2
    assert len(kube_server.objects("pods", NS)) == 4


async def test_statefulset_scale_replace_and_ordinal_pods(kube_api, kube_server):
    apps = client.AppsV1Api(kube_api)
    await apps.create_namespaced_stateful_set(NS, kubeapi.make_statefulset("db", replicas=3))
    scale = await apps.read_namespaced_stateful_set_scale("db", NS)
    scale.spec.replicas = 2
    await apps.replace_namespaced_stateful_set_scale("db", NS, scale)

    assert sorted(p["metadata"]["name"] for p in kube_server.objects("pods")) == ["db-0", "db-1"]
    stale = scale
    stale.spec.replicas = 5
    with pytest.raises(client.ApiException) as err:  # carries the resourceVersion read before the first write
        await apps.replace_namespaced_stateful_set_scale("db", NS, stale)
    assert err.value.status == 409


async def test_a_rollout_custom_resource_has_a_scale_subresource(kube_api, kube_server):
    custom = client.CustomObjectsApi(kube_api)
    await custom.create_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "rollouts", kubeapi.make_rollout("ro", replicas=1))
    args = ("argoproj.io", "v1alpha1", NS, "rollouts", "ro")

    scale = await custom.get_namespaced_custom_object_scale(*args)
    assert scale["kind"] == "Scale" and scale["spec"] == {"replicas": 1}
    assert scale["status"] == {"replicas": 1, "selector": "app=ro"}  # from the Rollout's .status.selector
    await custom.patch_namespaced_custom_object_scale(*args, {"spec": {"replicas": 3}}, _content_type="application/merge-patch+json")
    assert kube_server.get("rollouts", NS, "ro")["spec"]["replicas"] == 3
    with pytest.raises(client.ApiException) as err:
        await custom.patch_namespaced_custom_object_scale(*args, {"spec": {"replicas": -2}}, _content_type="application/merge-patch+json")
    assert err.value.status == 422


# ---- cluster emulation --------------------------------------------------------------------------


async def test_pods_become_ready_after_the_startup_delay_on_the_injected_clock(kube_api, kube_server, kube_clock):
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    await apps.create_namespaced_deployment(NS, kubeapi.make_deployment("web", replicas=3))

    pods = (await core.list_namespaced_pod(NS, label_selector="app=web")).items
    assert len(pods) == 3 and {p.status.phase for p in pods} == {"Pending"}
    assert (await apps.read_namespaced_deployment("web", NS)).status.ready_replicas is None  # omitempty

    kube_clock.t += 30
    pods = (await core.list_namespaced_pod(NS, label_selector="app=web")).items
    assert {p.status.phase for p in pods} == {"Running"}
    for pod in pods:
        ready = next(c for c in pod.status.conditions if c.type == "Ready")
        assert ready.status == "True"
        assert (ready.last_transition_time - pod.metadata.creation_timestamp).total_seconds() == 30
        assert pod.metadata.owner_references[0].kind == "Deployment"
    assert (await apps.read_namespaced_deployment("web", NS)).status.ready_replicas == 3


async def test_scaling_in_deletes_not_ready_pods_first_and_deleted_pods_are_replaced(kube_api, kube_server, kube_clock):
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    await apps.create_namespaced_deployment(NS, kubeapi.make_deployment("web", replicas=2))
    kube_clock.t += 30
    kube_server.sync()
    ready_names = {p["metadata"]["name"] for p in kube_server.objects("pods")}
    await apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}})
    await apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 2}})
    assert {p["metadata"]["name"] for p in kube_server.objects("pods")} == ready_names

    victim = sorted(ready_names)[0]
    await core.delete_namespaced_pod(victim, NS)
    names = {p["metadata"]["name"] for p in kube_server.objects("pods")}
    assert len(names) == 2 and victim not in names


async def test_eviction_deletes_the_pod_unless_the_disruption_budget_forbids(kube_api, kube_server, kube_clock):
    core = client.CoreV1Api(kube_api)
    await client.AppsV1Api(kube_api).create_namespaced_deployment(NS, kubeapi.make_deployment("web", replicas=3))
    kube_clock.t += 30
    kube_server.sync()
    await client.PolicyV1Api(kube_api).create_namespaced_pod_disruption_budget(NS, kubeapi.make_pdb("web", labels={"app": "web"}, min_available=3))
    victim = kube_server.objects("pods")[0]["metadata"]["name"]
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=victim, namespace=NS))

    with pytest.raises(client.ApiException) as err:
        await core.create_namespaced_pod_eviction(victim, NS, eviction)
    body = status_of(err.value)
    assert err.value.status == 429 and body["reason"] == "TooManyRequests"
    assert body["details"]["causes"][0]["reason"] == "DisruptionBudget"
    assert kube_server.get("poddisruptionbudgets", NS, "web")["status"]["disruptionsAllowed"] == 0

    await client.PolicyV1Api(kube_api).patch_namespaced_pod_disruption_budget("web", NS, {"spec": {"minAvailable": 2}})
    await core.create_namespaced_pod_eviction(victim, NS, eviction)
    assert kube_server.get("pods", NS, victim) is None
    assert kube_server.requests_to("POST", "*/eviction")[-1].body["metadata"]["name"] == victim


async def test_hpas_and_scaled_objects_can_be_created_and_listed(kube_api):
    hpa = await client.AutoscalingV2Api(kube_api).create_namespaced_horizontal_pod_autoscaler(
        NS, kubeapi.make_hpa("web", target_kind="Deployment", target_name="web")
    )
    assert isinstance(hpa, client.V2HorizontalPodAutoscaler) and hpa.spec.scale_target_ref.name == "web"
    custom = client.CustomObjectsApi(kube_api)
    await custom.create_namespaced_custom_object("keda.sh", "v1alpha1", NS, "scaledobjects", kubeapi.make_scaled_object("so", target_name="api"))
    listed = await custom.list_namespaced_custom_object("keda.sh", "v1alpha1", NS, "scaledobjects")
    assert [o["spec"]["scaleTargetRef"]["name"] for o in listed["items"]] == ["api"]
    with pytest.raises(client.ApiException) as err:
        await client.AutoscalingV2Api(kube_api).create_namespaced_horizontal_pod_autoscaler(NS, {"metadata": {"name": "x"}, "spec": {"minReplicas": 1}})
    assert err.value.status == 422  # scaleTargetRef and maxReplicas are required


async def test_events_are_created_and_listed_by_field_selector(kube_api):
    core = client.CoreV1Api(kube_api)
    for name, target in (("e1", "web"), ("e2", "api")):
        await core.create_namespaced_event(NS, client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=name),
            involved_object=client.V1ObjectReference(kind="Deployment", name=target, namespace=NS),
            reason="Scaled", message="hi", type="Normal",
        ))  # fmt: skip
    listed = await core.list_namespaced_event(NS, field_selector="involvedObject.name=web,involvedObject.kind=Deployment")
    assert [e.metadata.name for e in listed.items] == ["e1"]
    with pytest.raises(client.ApiException) as err:
        await core.list_namespaced_event(NS, field_selector="message=hi")
    assert err.value.status == 400


async def test_list_pages_with_limit_and_continue(kube_api, kube_server):
    for i in range(5):
        kube_server.put(kubeapi.make_pod(f"p{i}", labels={"app": "x"}, created_at=0, ready_at=1))
    core = client.CoreV1Api(kube_api)
    first = await core.list_namespaced_pod(NS, limit=3)
    rest = await core.list_namespaced_pod(NS, limit=3, _continue=first.metadata._continue)
    assert [p.metadata.name for p in first.items + rest.items] == [f"p{i}" for i in range(5)]
    assert first.metadata.remaining_item_count == 2 and rest.metadata._continue is None
    with pytest.raises(client.ApiException) as err:  # a continue token carries its own version
        await core.list_namespaced_pod(NS, limit=3, _continue=first.metadata._continue, resource_version="5")
    assert err.value.status == 400 and "not allowed when using continue" in err.value.body


# ---- watch --------------------------------------------------------------------------------------


async def test_watch_streams_changes_after_a_resource_version(kube_api, kube_server, kube_clock):
    core = client.CoreV1Api(kube_api)
    kube_server.put(kubeapi.make_pod("old", labels={"app": "web"}, created_at=0, ready_at=1))
    since = (await core.list_namespaced_pod(NS)).metadata.resource_version
    seen: list[tuple[str, str, str]] = []

    async def follow() -> None:
        async with watch.Watch() as w:
            async for event in w.stream(core.list_namespaced_pod, NS, resource_version=since, timeout_seconds=5):
                pod = event["object"]
                seen.append((event["type"], pod.metadata.name, pod.status.phase))
                if event["type"] == "DELETED":
                    w.stop()

    follower = asyncio.create_task(follow())

    async def watch_logged() -> None:
        while ("GET", "True") not in [(r.method, r.query.get("watch")) for r in kube_server.requests]:
            await asyncio.sleep(0.01)

    # The server logs a watch when its stream opens (a log written at its end would never show
    # it here); changes made from then on reach the watch as well as the ones since `since`.
    await asyncio.wait_for(watch_logged(), 5)
    await core.create_namespaced_pod(NS, {"metadata": {"name": "new", "labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
    kube_clock.t += 30
    kube_server.sync()  # the kubelet starts the pod
    await core.delete_namespaced_pod("new", NS)
    await asyncio.wait_for(follower, 5)

    assert seen == [("ADDED", "new", "Pending"), ("MODIFIED", "new", "Running"), ("DELETED", "new", "Running")]
    methods = [(r.method, r.query.get("watch")) for r in kube_server.requests]
    assert methods.index(("GET", "True")) < methods.index(("POST", None)) < methods.index(("DELETE", None))
    (watched,) = [r for r in kube_server.requests if r.query.get("watch")]
    assert watched.query["resourceVersion"] == since and watched.status == 200


async def test_watch_without_a_version_starts_with_the_current_objects_and_filters_by_label(kube_api, kube_server):
    core = client.CoreV1Api(kube_api)
    kube_server.put(kubeapi.make_pod("a", labels={"app": "web"}, created_at=0, ready_at=1))
    kube_server.put(kubeapi.make_pod("b", labels={"app": "db"}, created_at=0, ready_at=1))
    async with watch.Watch() as w:
        events = []
        async for event in w.stream(core.list_namespaced_pod, NS, label_selector="app=web", timeout_seconds=1):
            events.append((event["type"], event["object"].metadata.name))
            if len(events) == 1:
                kube_server.put(kubeapi.make_pod("a", labels={"app": "gone"}, created_at=0, ready_at=1))
            else:
                w.stop()
    # relabelling "a" out of the selector is a DELETED for this watch
    assert events == [("ADDED", "a"), ("DELETED", "a")]


async def test_watch_from_a_compacted_version_is_410_gone(kube_clock):
    async with kubeapi.KubeApiServer(clock=kube_clock, history_limit=3) as server, server.api_client() as api:
        for i in range(6):
            server.put(kubeapi.make_pod(f"p{i}", created_at=0, ready_at=1))
        with pytest.raises(client.ApiException) as err:
            async with watch.Watch() as w:
                async for _ in w.stream(client.CoreV1Api(api).list_namespaced_pod, NS, resource_version="1", timeout_seconds=1):
                    pass
        assert err.value.status == 410


# ---- fault injection and the request log --------------------------------------------------------


async def test_the_next_n_matching_requests_fail_then_requests_pass(kube_api, kube_server):
    apps = client.AppsV1Api(kube_api)
    kube_server.put(kubeapi.make_deployment("web"))
    rule = kube_server.faults.fail_next(2, status=500, method="GET", path="/apis/apps/v1/namespaces/*/deployments/*/scale")

    await client.CoreV1Api(kube_api).list_namespaced_pod(NS)  # does not match
    for _ in range(2):
        with pytest.raises(client.ApiException) as err:
            await apps.read_namespaced_deployment_scale("web", NS)
        assert err.value.status == 500 and status_of(err.value)["reason"] == "InternalError"
    assert (await apps.read_namespaced_deployment_scale("web", NS)).spec.replicas == 1
    assert rule.hits == 2
    assert [r.status for r in kube_server.requests_to("GET", "*/scale")] == [500, 500, 200]


async def test_an_injected_429_carries_retry_after_and_a_regex_matches_paths(kube_api, kube_server):
    kube_server.faults.fail_next(1, status=429, path=re.compile(r"/configmaps$"), retry_after_seconds=7)
    with pytest.raises(client.ApiException) as err:
        await client.CoreV1Api(kube_api).list_namespaced_config_map(NS)
    assert err.value.status == 429 and err.value.headers["Retry-After"] == "7"
    assert status_of(err.value)["details"]["retryAfterSeconds"] == 7


async def test_all_requests_fail_for_a_duration_of_the_server_clock(kube_api, kube_server, kube_clock):
    core = client.CoreV1Api(kube_api)
    kube_server.faults.fail_for(60, status=503)
    for _ in range(3):
        with pytest.raises(client.ApiException) as err:
            await core.list_namespaced_pod(NS)
        assert err.value.status == 503
        kube_clock.t += 20
    await core.list_namespaced_pod(NS)  # at 0, 20 and 40 s it failed; at 60 s the outage is over
    assert [r.status for r in kube_server.requests] == [503, 503, 503, 200]


async def test_the_request_log_records_method_path_query_content_type_and_body(kube_api, kube_server, kube_clock):
    kube_server.put(kubeapi.make_deployment("web"))
    await client.AppsV1Api(kube_api).patch_namespaced_deployment(
        "web", NS, {"metadata": {"annotations": {"k": "v"}}}, _content_type="application/merge-patch+json"
    )
    await client.CoreV1Api(kube_api).list_namespaced_pod(NS, label_selector="app=web")
    patch, listing = kube_server.requests
    assert (patch.method, patch.path, patch.content_type) == ("PATCH", "/apis/apps/v1/namespaces/default/deployments/web", "application/merge-patch+json")
    assert patch.body == {"metadata": {"annotations": {"k": "v"}}} and patch.status == 200 and patch.at == kube_clock.t
    assert (listing.method, listing.query) == ("GET", {"labelSelector": "app=web"})


# ---- leader election on a Lease -----------------------------------------------------------------


def election(api: client.ApiClient, identity: str, on_start, on_stop=None) -> electionconfig.Config:
    """A LeaseLock election with a 2 s lease, 1 s renew deadline and 0.2 s retry.

    ``electionconfig.Config`` insists on whole-second retry periods, so the short ones are
    set after it validated the (equally ordered) longer ones.
    """
    lock = LeaseLock("scaleahead", NS, identity, api)
    cfg = electionconfig.Config(lock, lease_duration=2, renew_deadline=1.5, retry_period=1, onstarted_leading=on_start, onstopped_leading=on_stop)
    cfg.renew_deadline, cfg.retry_period = 1, 0.2
    return cfg


async def wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_leader_election_acquires_renews_and_fails_over_on_a_lease():
    async with kubeapi.KubeApiServer() as server, server.api_client() as api:
        leaders: list[str] = []

        def lead(identity):
            async def on_start():
                leaders.append(identity)

            return on_start

        first = asyncio.create_task(leaderelection.LeaderElection(election(api, "a", lead("a"))).run())
        await wait_for(lambda: leaders == ["a"], 2)
        second = asyncio.create_task(leaderelection.LeaderElection(election(api, "b", lead("b"))).run())
        lease = await client.CoordinationV1Api(api).read_namespaced_lease("scaleahead", NS)
        await asyncio.sleep(0.6)
        renewed = await client.CoordinationV1Api(api).read_namespaced_lease("scaleahead", NS)
        assert renewed.spec.holder_identity == "a" and renewed.spec.lease_duration_seconds == 2
        assert renewed.spec.renew_time > lease.spec.renew_time and leaders == ["a"]

        first.cancel()  # the leader dies without releasing the lease
        await wait_for(lambda: leaders == ["a", "b"], 4)

        held = await client.CoordinationV1Api(api).read_namespaced_lease("scaleahead", NS)
        assert held.spec.holder_identity == "b"
        puts = [r for r in server.requests_to("PUT", "*/leases/scaleahead") if r.status == 200]
        last_renewal = [r for r in puts if r.body["spec"]["holderIdentity"] == "a"][-1]
        takeover = next(r for r in puts if r.body["spec"]["holderIdentity"] == "b")
        # b took over only once the lease had run out since a's last renewal (server clock: wall time)
        assert takeover.at - last_renewal.at >= 2.0
        # with an update carrying the resourceVersion b had read: optimistic concurrency
        assert takeover.body["metadata"]["resourceVersion"]
        second.cancel()
        await asyncio.gather(first, second, return_exceptions=True)


async def test_a_leader_that_cannot_renew_stops_leading():
    async with kubeapi.KubeApiServer() as server, server.api_client() as api:
        started, stopped = asyncio.Event(), asyncio.Event()

        async def on_start():
            started.set()

        async def on_stop():
            stopped.set()

        run = asyncio.create_task(leaderelection.LeaderElection(election(api, "a", on_start, on_stop)).run())
        await asyncio.wait_for(started.wait(), 2)
        server.faults.fail_for(5, status=500, method="PUT", path="*/leases/*")
        await asyncio.wait_for(stopped.wait(), 3)  # within the renew deadline (1 s) plus a retry
        await asyncio.wait_for(run, 1)
        assert server.requests_to("PUT", "*/leases/*")[-1].status == 500


async def test_two_candidates_racing_for_the_lease_conflict_and_one_wins():
    async with kubeapi.KubeApiServer() as server, server.api_client() as api:
        coord = client.CoordinationV1Api(api)
        await coord.create_namespaced_lease(NS, client.V1Lease(metadata=client.V1ObjectMeta(name="l"), spec=client.V1LeaseSpec(holder_identity="x")))
        a = await coord.read_namespaced_lease("l", NS)
        b = await coord.read_namespaced_lease("l", NS)
        a.spec.holder_identity, b.spec.holder_identity = "a", "b"
        await coord.replace_namespaced_lease("l", NS, a)
        with pytest.raises(client.ApiException) as err:
            await coord.replace_namespaced_lease("l", NS, b)
        assert err.value.status == 409
        assert server.get("leases", NS, "l")["spec"]["holderIdentity"] == "a"


# ---- pure helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        pytest.param("app=web", {"app": "web", "x": "1"}, True, id="equality"),
        pytest.param("app==web,tier!=db", {"app": "web", "tier": "db"}, False, id="inequality"),
        pytest.param("tier in (a, b),!legacy", {"tier": "b"}, True, id="set-and-absence"),
        pytest.param("tier notin (a,b)", {}, True, id="notin-matches-missing"),
        pytest.param("app", {"app": ""}, True, id="exists"),
        pytest.param("", {"any": "thing"}, True, id="empty-selects-all"),
    ],
)
def test_label_selectors_match_as_the_api_server_does(selector, labels, expected):
    assert kubeapi.selector_matches(kubeapi.parse_label_selector(selector), labels) is expected


def test_a_label_selector_object_formats_as_scale_status_selector():
    selector = {"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [{"key": "c", "operator": "In", "values": ["y", "x"]}]}
    assert kubeapi.format_selector(selector) == "a=1,b=2,c in (x,y)"


def test_strategic_merge_merges_containers_by_name_and_json_patch_escapes_slashes():
    pod = {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}, "metadata": {"annotations": {}}}
    merged = kubeapi.strategic_merge_patch(pod, {"spec": {"containers": [{"name": "b", "image": "2"}, {"name": "c", "image": "3"}]}})
    assert merged["spec"]["containers"] == [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}, {"name": "c", "image": "3"}]
    patched = kubeapi.json_patch(pod, [{"op": "add", "path": "/metadata/annotations/scaleahead.io~1state", "value": "{}"}])
    assert patched["metadata"]["annotations"] == {"scaleahead.io/state": "{}"}


# ---- standalone -----------------------------------------------------------------------------------


async def test_it_runs_standalone_and_writes_a_kubeconfig(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.sim.kubeapi", "--port", "0", "--kubeconfig", str(kubeconfig),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        assert line.startswith("kubeapi: serving on http://127.0.0.1:")
        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        async with client.ApiClient(cfg) as api:
            await client.AppsV1Api(api).create_namespaced_deployment(NS, kubeapi.make_deployment("web", replicas=1))
            assert (await client.AppsV1Api(api).read_namespaced_deployment_scale("web", NS)).spec.replicas == 1
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
