"""No workload cluster depends on the hub at run time (seed: "Management cluster outage must NOT affect workload
clusters"): walking every workload cluster's golden tree, its Flux pulls the fleet repo from Git itself, no object
reaches another cluster's API server, and nothing names the hub's domain or addresses. README "What keeps working
when the hub is down" describes the same facts."""

from __future__ import annotations

from typing import Any

from conftest import REPO

from generator.inventory.loader import load_inventory
from generator.inventory.resolve import resolve
from generator.yamlio import load_documents


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [x for k, v in node.items() for x in _walk(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [x for i, v in enumerate(node) for x in _walk(v, f"{path}[{i}]")]
    return [(path, node)]


def hub_dependencies(objects: list[dict[str, Any]], git_url: str, hub_markers: list[str]) -> list[str]:
    """What in one workload cluster's objects needs the hub (or another cluster) at run time."""
    found = []
    syncs = [o for o in objects if o.get("kind") == "FluxInstance"]
    if [o["spec"]["sync"]["url"] for o in syncs] != [git_url] and git_url:
        found.append(f"the cluster's FluxInstance does not sync {git_url} itself")
    for obj in objects:
        where = (
            f"{obj.get('kind')}/{obj.get('metadata', {}).get('namespace', '')}/{obj.get('metadata', {}).get('name')}"
        )
        if "kubeConfig" in obj.get("spec", {}):
            found.append(f"{where}: spec.kubeConfig reaches another cluster's API server")
        for path, value in _walk(obj.get("spec", {}), "spec"):
            if isinstance(value, str) and any(marker in value for marker in hub_markers):
                found.append(f"{where}: {path} names the hub ({value})")
    return found


def test_no_workload_cluster_depends_on_the_hub() -> None:
    fleet = resolve(load_inventory(REPO))
    hub = next(c for c in fleet.clusters if c.cluster.role == "hub")
    crossplane = fleet.fleet.crossplane
    assert crossplane is not None
    markers = [f"{hub.name}.{fleet.fleet.domain}", *(str(c).split("/")[0] for c in crossplane.hub.egress_cidrs)]
    workloads = [c for c in fleet.clusters if c.cluster.role == "workload"]
    assert len(workloads) == 8
    problems = []
    for cluster in workloads:
        tree = REPO / "golden" / cluster.name
        objects = [d for path in sorted(tree.rglob("*.yaml")) for d in load_documents(path.read_text()) if d]
        assert objects, cluster.name
        problems += [f"{cluster.name}: {p}" for p in hub_dependencies(objects, fleet.fleet.git.url, markers)]
    assert not problems, "\n".join(problems)


def test_a_spoke_object_reaching_through_a_kubeconfig_is_reported() -> None:
    tree = REPO / "golden" / "management" / "flux-system"
    reaching = [
        d
        for path in sorted(tree.glob("*.fleet-clusters.*.yaml"))
        for d in load_documents(path.read_text())
        if d and d["kind"] in ("HelmRelease", "Kustomization")
    ]
    assert reaching and all("kubeConfig" in o["spec"] for o in reaching)  # the hub's spoke bootstraps reach spokes
    assert len(hub_dependencies(reaching, "ssh://example.invalid/x.git", [])) == 1 + len(reaching)
    named = [{"kind": "ConfigMap", "spec": {"url": "https://thanos.management.acme.example.com"}}]
    assert hub_dependencies(named, "", ["management.acme.example.com"]) == [
        "ConfigMap//None: spec.url names the hub (https://thanos.management.acme.example.com)"
    ]
