"""The hub's Flux wiring: sync the infrastructure repo in order, and give every new cluster Flux through the
kubeconfig Secret its composition writes (Flux hub-and-spoke with spec.kubeConfig)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, copy_reference_fleet
from test_crossplane import edit_yaml, enable_crossplane, resolved, storage_by_reference

from generator.bench import make_fleet
from generator.inventory.loader import load_inventory
from generator.inventory.resolve import resolve
from generator.render.crossplane import (
    build_hub_bootstrap,
    build_infrastructure,
    fleet_contribution,
    hub_resources,
    plan_hub_bootstrap,
)
from generator.render.crossplane.bootstrap import STEPS
from generator.render.crossplane.engine import run
from generator.render.crossplane.plan import unshared, workload_clusters
from generator.render.pipeline import plan
from generator.render.planner import plan_fleet
from generator.tools import find_tools
from generator.verify.schema import CrdCatalogue, SchemaValidator
from generator.yamlio import dump_documents, load_documents

Obj = dict[str, Any]
WORKLOADS = sorted(c.name for c in resolve(load_inventory(REPO)).clusters if c.cluster.role == "workload")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return enable_crossplane(copy_reference_fleet(tmp_path_factory.mktemp("hub")))


@pytest.fixture(scope="module")
def hub(root: Path) -> dict[str, list[Obj]]:
    return {path: docs for path, (docs, _) in build_hub_bootstrap(resolved(root)).items()}


def test_hub_files(root: Path, hub: dict[str, list[Obj]]) -> None:
    expected = ["clusters/management/crossplane.yaml", "clusters/management/spokes/kustomization.yaml",
                *(f"clusters/management/spokes/{c}.yaml" for c in WORKLOADS)]
    assert sorted(hub) == sorted(expected)
    assert hub_resources(resolved(root)) == ["crossplane.yaml", "spokes"]
    assert hub["clusters/management/spokes/kustomization.yaml"][0]["resources"] == [f"{c}.yaml" for c in WORKLOADS]


def test_hub_syncs_the_infrastructure_repo_in_dependency_order(root: Path, hub: dict[str, list[Obj]]) -> None:
    docs = hub["clusters/management/crossplane.yaml"]
    assert docs[0] == {"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": "fleet-clusters", "labels": {"fleet.gitops.io/layer": "crossplane"}}}
    syncs = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Kustomization"}
    assert {name: [dep["name"] for dep in spec.get("dependsOn", [])] for name, spec in syncs.items()} == {
        "crossplane-providers": ["infra-controllers"],
        "crossplane-provider-configs": ["crossplane-providers"],
        "crossplane-apis": ["crossplane-providers"],
        "crossplane-compositions": ["crossplane-apis"],
        "crossplane-clusters": ["crossplane-compositions", "crossplane-provider-configs"],
    }
    infra = build_infrastructure(resolved(root))
    for name, spec in syncs.items():
        folder = name.removeprefix("crossplane-")
        assert spec["path"] == f"./infrastructure/{folder}"
        assert f"{folder}/kustomization.yaml" in infra.files
        assert spec["sourceRef"] == {"kind": "GitRepository", "name": "flux-system"}
    assert syncs["crossplane-clusters"]["prune"] is False and syncs["crossplane-clusters"]["wait"] is False
    assert syncs["crossplane-providers"]["healthCheckExprs"][0]["kind"] == "Provider"
    # the Crossplane HelmRelease the chain waits for is in the hub's infra-controllers Kustomization
    rendered = plan(root)
    hub_sync = rendered.files["fleet/clusters/management/infrastructure.yaml"]
    assert "name: infra-controllers" in hub_sync


def test_pruning_cluster_objects_is_a_switch(tmp_path: Path) -> None:
    root = enable_crossplane(copy_reference_fleet(tmp_path), pruneClusters=True)
    docs = build_hub_bootstrap(resolved(root))["clusters/management/crossplane.yaml"][0]
    assert next(d for d in docs if d["metadata"]["name"] == "crossplane-clusters")["spec"]["prune"] is True


def test_every_new_cluster_gets_flux_through_its_kubeconfig(root: Path, hub: dict[str, list[Obj]]) -> None:
    infra = build_infrastructure(resolved(root))
    rendered = plan(root).files
    chart = next(c for c in resolved(root).components if c.chart.name == "flux-operator").chart
    source = next(d for d in hub["clusters/management/crossplane.yaml"] if d["kind"] == "OCIRepository")
    assert source["metadata"]["namespace"] == "fleet-clusters"
    assert source["spec"]["url"] == "oci://ghcr.io/controlplaneio-fluxcd/charts/flux-operator"
    assert source["spec"]["ref"] == {"tag": chart.version}
    for name in WORKLOADS:
        cluster = next(d for d in infra.documents(f"clusters/{name}.yaml") if d["kind"] == "KubernetesCluster")
        *provider, release, sync = hub[f"clusters/management/spokes/{name}.yaml"]
        # Flux's workload identity on every cloud: no kubeconfig Secret at all (tests/test_hub_identity.py)
        region, cloud = cluster["spec"]["region"], cluster["spec"]["cloudProvider"]
        expected = {
            "aws": f"arn:aws:eks:{region}:123456789012:cluster/{name}",
            "gcp": f"projects/acme-fleet/locations/{region}/clusters/{name}",
            "azure": f"/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/{name}-network/providers/"
                     f"Microsoft.ContainerService/managedClusters/{name}"}[cloud]
        [config] = provider
        assert config["kind"] == "ConfigMap" and config["data"] == {"provider": cloud, "cluster": expected}
        kube_config = {"configMapRef": {"name": config["metadata"]["name"]}}
        for obj in (release, sync):
            assert obj["metadata"]["namespace"] == cluster["metadata"]["namespace"]  # next to the cluster object
            assert obj["spec"]["kubeConfig"] == kube_config
        assert release["kind"] == "HelmRelease" and release["spec"]["targetNamespace"] == "flux-system"
        assert release["spec"]["chartRef"] == {"kind": "OCIRepository", "name": "flux-operator"}
        assert release["spec"]["install"]["createNamespace"] is True
        assert sync["kind"] == "Kustomization" and sync["spec"]["prune"] is False
        assert sync["spec"]["sourceRef"] == {"kind": "GitRepository", "name": "flux-system",
                                             "namespace": "flux-system"}
        assert sync["spec"]["path"] == f"./fleet/clusters/{name}/flux-system"
        assert f"fleet/clusters/{name}/flux-system/kustomization.yaml" in rendered  # what the spoke then syncs


def test_every_cluster_composition_writes_the_kubeconfig_the_hub_reads(root: Path) -> None:
    infra = build_infrastructure(resolved(root))
    for name in ("aws-eks", "gcp-gke", "azure-aks"):
        comp = infra.files[f"compositions/{name}.yaml"][0][0]
        xr = next(d for d in infra.documents("clusters/") if d.get("spec", {}).get("cloudProvider") ==
                  comp["metadata"]["labels"]["platform.gitops.io/provider"] and d["kind"] == "KubernetesCluster")
        resources = run(comp, xr).resources
        secret = {"name": xr["spec"]["kubeconfigSecretName"]}
        writers = [n for n, o in resources.items() if o.get("spec", {}).get("writeConnectionSecretToRef") == secret]
        assert len(writers) == 1, name


def test_legacy_claims_do_not_change_the_hub(tmp_path: Path, hub: dict[str, list[Obj]]) -> None:
    root = enable_crossplane(copy_reference_fleet(tmp_path), legacyClaims=True)
    legacy = {path: docs for path, (docs, _) in build_hub_bootstrap(resolved(root)).items()}
    assert legacy == hub


def test_no_hub_files_without_workload_clusters(tmp_path: Path) -> None:
    root = storage_by_reference(enable_crossplane(copy_reference_fleet(tmp_path)))
    for path in sorted((root / "inventory/clusters").glob("*.yaml")):
        if path.name != "management.yaml":
            path.unlink()
    edit_yaml(root / "inventory/apps.yaml", lambda d: [app.pop("clusters", None) for app in d["apps"]])
    assert build_hub_bootstrap(resolved(root)) == {}
    assert hub_resources(resolved(root)) == []


def test_hub_objects_validate_strictly(hub: dict[str, list[Obj]]) -> None:
    validator = SchemaValidator(CrdCatalogue.builtin(), kubernetes_version="1.33")
    checked = 0
    for path, docs in hub.items():
        for doc in docs:
            if doc.get("apiVersion") != "kustomize.config.k8s.io/v1beta1":
                assert validator.validate(doc) == [], path
                checked += 1
    assert checked == 1 + 5 + 1 + 3 * len(WORKLOADS)  # HelmRelease, Kustomization and provider ConfigMap each


def test_reference_inventory_is_untouched() -> None:
    assert (REPO / "inventory").is_dir()  # the fixtures edit copies only


def test_contribution_puts_the_bootstrap_in_the_hubs_sync(root: Path, tmp_path: Path) -> None:
    fleet = resolved(root)
    files = plan_fleet(fleet, root / "charts", [fleet_contribution(fleet)])
    hub_file = "clusters/management/crossplane.yaml"
    assert files[hub_file] == plan_hub_bootstrap(fleet)[hub_file]
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    built = load_documents(find_tools(REPO).kustomize_build.run(tmp_path / "clusters/management"))
    names = {(d["kind"], d["metadata"]["name"]) for d in built}
    assert {("Kustomization", "crossplane-clusters"), ("HelmRelease", "flux-operator-prod-eastus"),
            ("Kustomization", "flux-prod-eastus"), ("OCIRepository", "flux-operator")} <= names
    assert fleet_contribution(resolve(load_inventory(REPO))).files == {} or \
        resolve(load_inventory(REPO)).fleet.crossplane is not None


def test_documents_planned_without_a_copy_emit_as_their_copy(root: Path, tmp_path: Path) -> None:
    """The per-cluster infrastructure files and the hub's bootstrap files are planned from the documents as built
    (no JSON copy): each emits exactly as its copy would, on the reference fleet and a synthetic one; and every
    bootstrap step has a folder in the infrastructure repo (the hub syncs all of them, without building it)."""
    make_fleet(REPO, tmp_path / "synthetic", 40)
    for fleet in (resolved(root), resolved(tmp_path / "synthetic")):
        infra = build_infrastructure(fleet)
        assert {path.split("/")[0] for path in infra.files} == set(STEPS)
        built = {path: docs for path, (docs, _) in infra.files.items() if path.startswith("clusters/")}
        built.update({path: docs for path, (docs, _) in build_hub_bootstrap(fleet).items()})
        assert len(built) > len(workload_clusters(fleet))
        for path, docs in built.items():
            assert dump_documents(docs) == dump_documents(unshared(docs)), path
        for path, (docs, _) in infra.files.items():  # as the copy: no two places of a file share a map or list
            containers = list(_containers(docs))
            assert len({id(c) for c in containers}) == len(containers), path


def _containers(value: Any) -> Any:
    """Every map and list in ``value`` (itself included), depth first."""
    if isinstance(value, dict | list):
        yield value
        for child in value.values() if isinstance(value, dict) else value:
            yield from _containers(child)
