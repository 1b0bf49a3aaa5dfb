"""Acceptance of the spine: every Flux path of every cluster builds with the real kustomize, and every
object validates strictly (core kinds with kubernetes-validate, custom kinds against the built-in catalogue)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from generator.build.substitute import substitute_object
from generator.render.pipeline import plan
from generator.tools import find_tools
from generator.verify.schema import CrdCatalogue, SchemaValidator, rendered_extra_schemas
from generator.yamlio import load_documents


@cache
def _fleet_dir(tmp: str) -> Path:
    rendered = plan(REPO)
    out = Path(tmp)
    for rel, text in rendered.files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    return out / "fleet"


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _fleet_dir(str(tmp_path_factory.mktemp("reference")))


@pytest.fixture(scope="module")
def catalogue() -> CrdCatalogue:
    return CrdCatalogue.builtin()


def _extra_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    return rendered_extra_schemas(plan(REPO).files)


CLUSTERS = [c.name for c in plan(REPO).fleet.clusters]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_every_flux_path_builds_and_validates(cluster: str, fleet_dir: Path, catalogue: CrdCatalogue) -> None:
    tools = find_tools(REPO)
    resolved = plan(REPO).fleet.cluster(cluster)
    assert resolved is not None
    validator = SchemaValidator(catalogue, resolved.settings.kubernetes_version, extra_schemas=_extra_schemas())
    entry = load_documents(tools.kustomize_build.run(fleet_dir / "clusters" / cluster))
    kinds = sorted({d["kind"] for d in entry})
    assert "FluxInstance" in kinds and "Kustomization" in kinds
    instance = next(d for d in entry if d["kind"] == "FluxInstance")
    assert instance["spec"]["sync"]["path"] == f"fleet/clusters/{cluster}"
    objects = list(entry)
    kustomizations = [d for d in entry if d["kind"] == "Kustomization"]
    assert {k["metadata"]["name"] for k in kustomizations} >= {"infra-controllers"}
    for kustomization in kustomizations:
        path = fleet_dir.parent / kustomization["spec"]["path"]
        # what the cluster applies: after Flux's post-build substitution (e.g. the Gateway's *.${cluster_domain})
        variables = (kustomization["spec"].get("postBuild") or {}).get("substitute") or {}
        built = [substitute_object(o, variables) for o in load_documents(tools.kustomize_build.run(path))]
        assert built, f"{kustomization['spec']['path']} built nothing"
        objects.extend(built)
    violations = validator.validate_all(objects)
    assert not violations, "\n".join(str(v) for v in violations)
    releases = [o for o in objects if o["kind"] == "HelmRelease"]
    assert releases and all("values" in r["spec"] for r in releases)


def test_hub_runs_crossplane_and_workloads_run_apps(fleet_dir: Path) -> None:
    tools = find_tools(REPO)
    hub = load_documents(tools.kustomize_build.run(fleet_dir / "infrastructure/clusters/management/controllers"))
    assert "crossplane" in {o["metadata"]["name"] for o in hub if o["kind"] == "HelmRelease"}
    assert not (fleet_dir / "clusters/management/apps.yaml").exists()
    names = set()
    for team in ("payments", "storefront"):
        built = load_documents(tools.kustomize_build.run(fleet_dir / f"apps/overlays/prod/{team}"))
        names |= {o["metadata"]["name"] for o in built if o["kind"] == "HelmRelease"}
    assert names == {"catalog", "checkout", "payments"}
    own = load_documents(tools.kustomize_build.run(fleet_dir / "apps/clusters/prod-us-east-1/storefront"))
    assert {o["metadata"]["name"] for o in own if o["kind"] == "HelmRelease"} == {"catalog", "storefront-web"}
    assert not (fleet_dir / "apps/clusters/prod-europe-west1").exists()


def test_apps_run_as_their_team_and_tenants_are_confined(fleet_dir: Path) -> None:
    tools = find_tools(REPO)
    entry = load_documents(tools.kustomize_build.run(fleet_dir / "clusters/prod-eu-west-1"))
    apps = {k["metadata"]["name"]: k for k in entry if k["kind"] == "Kustomization"}
    assert apps["apps-payments"]["spec"]["serviceAccountName"] == "tenant-payments"
    assert apps["apps-payments"]["spec"]["dependsOn"] == [{"name": "tenants"}]
    assert "serviceAccountName" not in apps["tenants"]["spec"]
    tenants = load_documents(tools.kustomize_build.run(fleet_dir.parent / apps["tenants"]["spec"]["path"]))
    namespaces = {o["metadata"]["name"]: o for o in tenants if o["kind"] == "Namespace"}
    assert set(namespaces) == {"catalog", "checkout", "payments", "storefront"}
    assert namespaces["checkout"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    team_binding = next(
        o
        for o in tenants
        if o["kind"] == "RoleBinding"
        and o["metadata"]
        == {"name": "team-payments", "namespace": "checkout", "labels": {"fleet.gitops.io/team": "payments"}}
    )
    assert team_binding["roleRef"]["name"] == "view"  # overlays/prod.yaml: tenancy.teamRole
    releases = load_documents(tools.kustomize_build.run(fleet_dir.parent / apps["apps-payments"]["spec"]["path"]))
    assert all(r["spec"]["serviceAccountName"] == "flux-tenant" for r in releases if r["kind"] == "HelmRelease")


def test_layered_values_reach_the_built_release(fleet_dir: Path) -> None:
    """base ⊕ overlays/prod ⊕ cluster: the built HelmRelease equals the resolved model."""
    tools = find_tools(REPO)
    fleet = plan(REPO).fleet
    cluster = fleet.cluster("prod-us-east-1")
    assert cluster is not None
    built = load_documents(tools.kustomize_build.run(fleet_dir / "infrastructure/clusters/prod-us-east-1/controllers"))
    release = next(o for o in built if o["kind"] == "HelmRelease" and o["metadata"]["name"] == "envoy-gateway")
    resolved = next(c for c in cluster.components if c.name == "envoy-gateway")
    assert release["spec"]["values"] == resolved.values.merged
    proxy = release["spec"]["values"]["config"]["envoyGateway"]["envoyProxy"]["provider"]
    assert proxy["kubernetes"]["envoyDeployment"]["replicas"] == 5  # the cluster's own value
    assert proxy["kubernetes"]["envoyPDB"]["minAvailable"] == 2  # overlays/prod.yaml
    assert proxy["type"] == "Kubernetes"  # inventory/components.yaml, kept by the merge
    assert release["spec"]["values"]["deployment"]["replicas"] == 2
    eastus = load_documents(tools.kustomize_build.run(fleet_dir / "infrastructure/clusters/prod-eastus/controllers"))
    assert "external-dns" not in {o["metadata"]["name"] for o in eastus}


def test_service_chart_lints_clean() -> None:
    tools = find_tools(REPO)
    out = tools.helm.run("lint", "--strict", REPO / "charts" / "service")
    assert "0 chart(s) failed" in out
