"""The manifests agree with each other and with the code: names, ports, paths and permissions."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from controller import runcli, server, settings, telemetry

ROOT = Path(__file__).resolve().parents[1]
MANIFEST_FILES = sorted((ROOT / "manifests").glob("*.yaml"))


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return [doc for path in MANIFEST_FILES for doc in load_documents(path)]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def deployment(objects) -> dict[str, Any]:
    return one(objects, "Deployment", "scaleahead")


@pytest.fixture(scope="module")
def container(deployment) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def served_paths() -> set[str]:
    app = server.make_app(
        telemetry=telemetry.Telemetry(CollectorRegistry()), health=server.Health(), decisions=server.DecisionLog()
    )
    return {resource.canonical for resource in app.router.resources()}


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A port reference (number or name) of ``container`` resolved to the number."""
    if isinstance(port, int):
        assert any(p["containerPort"] == port for p in container["ports"]), port
        return port
    matches = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    assert matches, f"no container port named {port!r}"
    return matches[0]


@pytest.mark.parametrize("path", MANIFEST_FILES, ids=lambda p: p.name)
def test_every_manifest_is_yaml_with_kind_and_name(path):
    documents = load_documents(path)
    assert documents, f"{path.name} holds no document"
    for doc in documents:
        assert doc.get("apiVersion"), path.name
        assert doc.get("kind"), path.name
        assert doc.get("metadata", {}).get("name"), path.name


def test_namespaced_objects_live_in_the_controller_namespace(objects):
    namespace = one(objects, "Namespace")["metadata"]["name"]
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for obj in objects:
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"].get("namespace") == namespace, f"{obj['kind']} {obj['metadata']['name']}"


def test_the_deployment_mounts_the_configmap_as_a_directory_where_the_settings_are_read(objects, deployment, container):
    configmap = one(objects, "ConfigMap")
    assert settings.CONFIGMAP_KEY in configmap["data"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    config_volumes = [n for n, v in volumes.items() if v.get("configMap", {}).get("name") == configmap["metadata"]["name"]]
    assert len(config_volumes) == 1, "the ConfigMap of manifests/configmap.yaml is not mounted"
    mounts = [m for m in container["volumeMounts"] if m["name"] == config_volumes[0]]
    assert len(mounts) == 1
    # A subPath mount is never updated by the kubelet: a ConfigMap edit would need a restart.
    assert "subPath" not in mounts[0] and "subPathExpr" not in mounts[0]
    assert "items" not in volumes[config_volumes[0]]["configMap"]

    args = container["args"]
    settings_path = args[args.index("--settings") + 1]
    assert args[0] == "run"
    assert settings_path == posixpath.join(mounts[0]["mountPath"], settings.CONFIGMAP_KEY)


def test_probes_hit_paths_the_server_serves_on_the_port_the_service_exposes(objects, container):
    paths = served_paths()
    liveness, readiness = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
    assert liveness["path"] == "/healthz" and liveness["path"] in paths
    assert readiness["path"] == "/readyz" and readiness["path"] in paths

    service = one(objects, "Service", "scaleahead")
    (service_port,) = service["spec"]["ports"]
    served_port = container_port(container, service_port["targetPort"])
    assert served_port == 8080
    assert container_port(container, liveness["port"]) == served_port
    assert container_port(container, readiness["port"]) == served_port


def test_the_service_selects_the_controller_pods(objects, deployment):
    service = one(objects, "Service", "scaleahead")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_the_servicemonitor_scrapes_metrics_from_the_service(objects):
    service = one(objects, "Service", "scaleahead")
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics" and endpoint["path"] in served_paths()


def test_the_deployment_is_highly_available_and_locked_down(deployment, container):
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["serviceAccountName"] == "scaleahead"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


def rules_of(objects, kind: str) -> list[dict[str, Any]]:
    return [rule for role in find(objects, kind) for rule in role.get("rules", [])]


def grants(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule.get("apiGroups", []) and resource in rule.get("resources", []) and verb in rule.get("verbs", [])
        for rule in rules
    )


def test_rbac_grants_what_the_controller_does(objects):
    cluster = rules_of(objects, "ClusterRole")
    for kind in ("deployments", "statefulsets"):
        assert grants(cluster, "apps", kind, "list")  # discovery by annotation, cluster-wide
        for verb in ("get", "patch"):  # the state annotation; the replica count
            assert grants(cluster, "apps", kind, verb)
            assert grants(cluster, "apps", f"{kind}/scale", verb)
    for resource in ("rollouts", "rollouts/scale"):
        for verb in ("get", "patch"):
            assert grants(cluster, "argoproj.io", resource, verb)
    assert grants(cluster, "", "pods", "list")
    assert grants(cluster, "", "events", "create")
    assert grants(cluster, "autoscaling", "horizontalpodautoscalers", "list")
    assert grants(cluster, "keda.sh", "scaledobjects", "list")

    namespaced = rules_of(objects, "Role")
    for verb in ("get", "create", "update"):
        assert grants(namespaced, "coordination.k8s.io", "leases", verb)
    # Reading and renewing are limited to the controller's own Lease (create cannot be).
    for rule in namespaced:
        if "leases" in rule["resources"] and {"get", "update"} & set(rule["verbs"]):
            assert rule.get("resourceNames") == [runcli.DEFAULT_LEASE_NAME], rule
    assert not grants(cluster, "coordination.k8s.io", "leases", "update"), "leases belong in the namespaced Role"
    # nothing it does not use: no watch (it gets and lists each tick), no ConfigMap object
    # (the kubelet mounts it), no eviction until descheduling lands
    for rule in cluster + namespaced:
        assert "watch" not in rule["verbs"], rule
        assert "configmaps" not in rule["resources"] and "pods/eviction" not in rule["resources"], rule


def test_rbac_never_uses_wildcards_or_escalating_verbs(objects):
    for rule in rules_of(objects, "ClusterRole") + rules_of(objects, "Role"):
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in rule.get(field, []), rule
        assert not {"escalate", "bind", "impersonate", "delete", "deletecollection"} & set(rule["verbs"]), rule
        assert "secrets" not in rule["resources"], rule


def test_rbac_bindings_name_existing_roles_and_the_service_account(objects):
    account = one(objects, "ServiceAccount")
    for binding_kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        for binding in find(objects, binding_kind):
            assert binding["roleRef"]["kind"] == role_kind
            one(objects, role_kind, binding["roleRef"]["name"])
            assert {"kind": "ServiceAccount", "name": account["metadata"]["name"],
                    "namespace": account["metadata"]["namespace"]} in binding["subjects"]


def test_the_recommend_only_role_replaces_the_cluster_role_with_reads_only(objects):
    # It stands in for rbac.yaml's ClusterRole: in recommend mode the controller writes nothing to
    # the workloads (tests/controller/test_loop.py: recommend mode sends no request but GETs).
    (role,) = load_documents(ROOT / "manifests" / "optional" / "rbac-recommend-only.yaml")
    main = one(objects, "ClusterRole", "scaleahead")
    assert (role["kind"], role["metadata"]["name"]) == ("ClusterRole", main["metadata"]["name"])
    reads = [
        (rule_group, resource, verb)
        for rule in main["rules"]
        for rule_group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        if verb in ("get", "list")
    ]
    assert reads and all(grants(role["rules"], *read) for read in reads)  # every read of the full role
    writes = {verb for rule in role["rules"] for verb in rule["verbs"]} - {"get", "list"}
    assert writes == {"create"}
    assert [rule["resources"] for rule in role["rules"] if "create" in rule["verbs"]] == [["events"]]
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
