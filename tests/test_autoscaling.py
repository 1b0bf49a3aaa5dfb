"""Every cluster has a node autoscaling path, and every composed cluster sends its control-plane audit log somewhere.

Read from the golden files of the reference fleet (the hub's composed resources and each cluster's HelmReleases):

- EKS: the ``cluster-autoscaler`` component runs on the cluster, discovering the cluster's own node groups, as the
  service account the composition's EKS Pod Identity association names; the composition adds the Pod Identity
  agent, a role with the scaling actions limited to this cluster's Auto Scaling groups, and node groups whose
  bounds are the inventory's. The hub (not composed by Crossplane) runs the component; its identity is created with
  the hub (README).
- GKE: every node pool autoscales between the node group's min and max.
- AKS: the default pool and every further pool autoscale between the node group's min and max.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from generator.inventory.loader import load_inventory
from generator.inventory.resolve import ResolvedCluster, resolve
from generator.yamlio import load_documents

GOLDEN = REPO / "golden"
EKS_SCRIPT = REPO / "generator" / "data" / "composites" / "aws_eks.py"
AUTOSCALER = "cluster-autoscaler"

Objects = dict[tuple[str, str], dict[str, Any]]


@cache
def fleet_clusters() -> tuple[ResolvedCluster, ...]:
    return resolve(load_inventory(REPO)).clusters


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in load_documents(path.read_text(encoding="utf-8")) if d]


def composed(cluster: str, hub: str = "management") -> Objects:
    """The hub's composed resources of one KubernetesCluster: (kind, composition resource name) → object."""
    folder = GOLDEN / hub / "crossplane-clusters" / f"kubernetescluster.fleet-clusters.{cluster}"
    return {
        (d["kind"], d["metadata"]["annotations"]["crossplane.io/composition-resource-name"]): d
        for path in sorted(folder.glob("*.yaml"))
        for d in _docs(path)
    }


def releases(cluster: str) -> dict[str, dict[str, Any]]:
    """The cluster's HelmReleases by name (what it receives)."""
    return {
        d["metadata"]["name"]: d
        for path in sorted((GOLDEN / cluster / "infra-controllers").glob("helmrelease.*.yaml"))
        for d in _docs(path)
    }


def _script_constant(name: str) -> str:
    line = next(x for x in EKS_SCRIPT.read_text(encoding="utf-8").splitlines() if x.startswith(f"{name} = "))
    value: str = json.loads(line.split("=", 1)[1].strip())
    return value


def autoscaling_problems(cluster: ResolvedCluster, objects: Objects, released: dict[str, dict[str, Any]]) -> list[str]:
    """Why ``cluster`` has no complete autoscaling path (empty: it has one)."""
    info = cluster.cluster
    groups = {g.name: (g.min_size, g.max_size) for g in cluster.settings.node_groups}
    problems: list[str] = []
    if info.cloud == "aws":
        release = released.get(AUTOSCALER)
        if release is None:
            return [f"{info.name}: no {AUTOSCALER} HelmRelease"]
        values = release["spec"]["values"]
        namespace, account = _script_constant("AUTOSCALER_NAMESPACE"), _script_constant("AUTOSCALER_SERVICE_ACCOUNT")
        expected = {
            "autoDiscovery.clusterName": info.name,
            "awsRegion": info.region,
            "cloudProvider": "aws",
            "rbac.serviceAccount.name": account,
        }
        for dotted, want in expected.items():
            got: Any = values
            for key in dotted.split("."):
                got = got.get(key) if isinstance(got, dict) else None
            if got != want:
                problems.append(f"{info.name}: {AUTOSCALER} values {dotted} is {got!r}, expected {want!r}")
        if release["metadata"]["namespace"] != namespace:
            problems.append(f"{info.name}: {AUTOSCALER} runs in {release['metadata']['namespace']}, not {namespace}")
        if cluster.cluster.role == "hub":
            return problems  # the hub is not composed: its identity is created with it
        association = objects.get(("PodIdentityAssociation", "autoscaler-pod-identity"), {})
        spec = association.get("spec", {}).get("forProvider", {})
        if (spec.get("namespace"), spec.get("serviceAccount")) != (namespace, account):
            problems.append(f"{info.name}: no Pod Identity association for {namespace}/{account}")
        agent = objects.get(("Addon", "pod-identity-agent"), {}).get("spec", {}).get("forProvider", {})
        if agent.get("addonName") != "eks-pod-identity-agent":
            problems.append(f"{info.name}: no eks-pod-identity-agent add-on")
        policy_text = objects.get(("RolePolicy", "autoscaler-role-policy"), {}).get("spec", {}).get("forProvider", {})
        statements = json.loads(policy_text.get("policy", '{"Statement": []}'))["Statement"]
        scoped = [
            s
            for s in statements
            if "autoscaling:SetDesiredCapacity" in s["Action"]
            and s.get("Condition", {}).get("StringEquals")
            == {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{info.name}": "owned"}
        ]
        if not scoped:
            problems.append(f"{info.name}: no policy letting the autoscaler resize this cluster's node groups (only)")
        for name, (low, high) in groups.items():
            pool = objects.get(("NodeGroup", f"node-group-{name}"), {}).get("spec", {}).get("forProvider", {})
            if pool.get("scalingConfig") != {"minSize": low, "maxSize": high}:
                problems.append(f"{info.name}: node group {name} scalingConfig is {pool.get('scalingConfig')!r}")
    elif info.cloud == "gcp":
        for name, (low, high) in groups.items():
            pool = objects.get(("NodePool", f"node-pool-{name}"), {}).get("spec", {}).get("forProvider", {})
            scaling = pool.get("autoscaling", {})
            if (scaling.get("totalMinNodeCount"), scaling.get("totalMaxNodeCount")) != (low, high):
                problems.append(f"{info.name}: node pool {name} autoscaling is {scaling!r}, expected {low}..{high}")
    else:
        first, *rest = cluster.settings.node_groups
        cluster_spec = objects.get(("KubernetesCluster", "aks-cluster"), {}).get("spec", {}).get("forProvider", {})
        pools = {first.name: cluster_spec.get("defaultNodePool", {})}
        for group in rest:
            pool = objects.get(("KubernetesClusterNodePool", f"node-pool-{group.name}"), {})
            pools[group.name] = pool.get("spec", {}).get("forProvider", {})
        for name, (low, high) in groups.items():
            pool = pools[name]
            if (pool.get("autoScalingEnabled"), pool.get("minCount"), pool.get("maxCount")) != (True, low, high):
                problems.append(f"{info.name}: pool {name} does not autoscale {low}..{high}")
    return problems


def test_every_cluster_has_an_autoscaling_path() -> None:
    clusters = fleet_clusters()
    assert {c.cluster.cloud for c in clusters} == {"aws", "gcp", "azure"}
    problems = []
    for cluster in clusters:
        objects = composed(cluster.name) if cluster.cluster.role == "workload" else {}
        if cluster.cluster.role == "workload":
            assert objects, f"{cluster.name}: no composed resources in the golden files"
        problems += autoscaling_problems(cluster, objects, releases(cluster.name))
    assert not problems, "\n".join(problems)


def test_autoscaler_runs_on_aws_clusters_only() -> None:
    for cluster in fleet_clusters():
        assert (AUTOSCALER in releases(cluster.name)) == (cluster.cluster.cloud == "aws"), cluster.name


def _drop(kind: str, name: str) -> Callable[[Objects], None]:
    return lambda objects: objects.pop((kind, name))


def _set_min(kind: str, name: str, path: tuple[str, ...]) -> Callable[[Objects], None]:
    def edit(objects: Objects) -> None:
        node = objects[(kind, name)]["spec"]["forProvider"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = 0

    return edit


@pytest.mark.parametrize(
    ("cluster", "edit", "expected"),
    [
        ("prod-us-east-1", _drop("PodIdentityAssociation", "autoscaler-pod-identity"), "Pod Identity association"),
        ("prod-us-east-1", _drop("RolePolicy", "autoscaler-role-policy"), "resize this cluster's node groups"),
        (
            "prod-us-east-1",
            _set_min("NodeGroup", "node-group-applications", ("scalingConfig", "minSize")),
            "applications",
        ),
        ("prod-europe-west1", _set_min("NodePool", "node-pool-system", ("autoscaling", "totalMinNodeCount")), "system"),
        ("prod-eastus", _set_min("KubernetesClusterNodePool", "node-pool-applications", ("minCount",)), "applications"),
    ],
)
def test_a_broken_path_is_reported(cluster: str, edit: Callable[[Objects], None], expected: str) -> None:
    resolved = next(c for c in fleet_clusters() if c.name == cluster)
    objects = composed(cluster)
    assert autoscaling_problems(resolved, objects, releases(cluster)) == []
    edit(objects)
    assert any(expected in p for p in autoscaling_problems(resolved, objects, releases(cluster)))


def test_an_eks_cluster_without_the_component_is_reported() -> None:
    resolved = next(c for c in fleet_clusters() if c.name == "prod-us-east-1")
    released = releases("prod-us-east-1")
    released.pop(AUTOSCALER)
    assert autoscaling_problems(resolved, composed("prod-us-east-1"), released)


def test_control_plane_audit_logs_per_cloud() -> None:
    for cluster in fleet_clusters():
        if cluster.cluster.role != "workload":
            continue
        objects = composed(cluster.name)
        if cluster.cluster.cloud == "aws":
            spec = objects[("Cluster", "eks-cluster")]["spec"]["forProvider"]
            assert "audit" in spec["enabledClusterLogTypes"], cluster.name
        elif cluster.cluster.cloud == "gcp":
            spec = objects[("Cluster", "gke-cluster")]["spec"]["forProvider"]
            assert "APISERVER" in spec["loggingConfig"]["enableComponents"], cluster.name
        else:
            setting = objects[("MonitorDiagnosticSetting", "audit-diagnostic-setting")]["spec"]["forProvider"]
            assert {"category": "kube-audit-admin"} in setting["enabledLog"], cluster.name
            assert setting["logAnalyticsWorkspaceId"] == "UNKNOWN:audit-workspace.status.atProvider.id"
            assert setting["targetResourceId"] == "UNKNOWN:aks-cluster.status.atProvider.id"
