"""How the hub's Flux signs in to GKE and AKS spokes: kubeConfig.configMapRef with provider gcp/azure (checked
against the Flux CRDs and fluxcd/pkg auth v0.54.1's cluster patterns), the FluxInstance patches that federate the
hub's controllers (applied with the real kustomize), the grants each cluster composition adds, and the inventory
check that refuses a GKE/AKS spoke without the hub's identity."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]
from _buildkit import tools
from conftest import REPO, tree_digest
from test_crossplane import cel_failures, edit_yaml, resolved
from test_crossplane_inventory import problems

from generator.cli import main
from generator.inventory.resolve import ResolvedFleet
from generator.render.crossplane import build_hub_bootstrap, build_infrastructure
from generator.render.crossplane.engine import ComposedXR, compose_objects
from generator.render.crossplane.hub_identity import hub_flux_patches
from generator.render.crossplane.plan import fleet_contribution
from generator.render.planner import plan_fleet
from generator.verify.schema import CrdCatalogue, SchemaValidator
from generator.yamlio import load_documents

Obj = dict[str, Any]
# fluxcd/pkg auth v0.54.1: auth/gcp/options.go and auth/azure/options.go clusterPattern (what the controllers parse)
GKE_CLUSTER = re.compile(r"^projects/[^/]{1,200}/locations/[^/]{1,200}/clusters/[^/]{1,200}$")
AKS_CLUSTER = re.compile(r"(?i)^/subscriptions/([^/]{36})/resourceGroups/([^/]{1,200})/providers/"
                         r"Microsoft\.ContainerService/managedClusters/([^/]{1,200})$")
# fluxcd/pkg apis/meta v1.30.1 reference_types.go KubeConfigKey*: the keys the controllers read
CONFIG_MAP_KEYS = {"provider", "cluster", "address", "ca.crt", "audiences", "serviceAccountName"}


@cache
def reference() -> ResolvedFleet:
    return resolved(REPO)


@cache
def spoke_objects() -> dict[str, list[Obj]]:
    """The hub's bootstrap objects per workload cluster (clusters/<hub>/spokes/<cluster>.yaml)."""
    out = {}
    for path, (documents, _) in build_hub_bootstrap(reference()).items():
        if "/spokes/" in path and not path.endswith("kustomization.yaml"):
            out[Path(path).stem] = documents
    return out


@cache
def composed_clusters() -> dict[str, ComposedXR]:
    """Every KubernetesCluster and Network XR of the reference fleet composed offline, by XR name and kind."""
    items = compose_objects(build_infrastructure(reference()).documents())
    return {f"{i.xr['kind']}/{i.xr['metadata']['name']}": i for i in items}


def cloud_of(name: str) -> str:
    return next(c.cluster.cloud for c in reference().clusters if c.name == name)


def test_gke_and_aks_spokes_use_flux_workload_identity() -> None:
    catalogue = CrdCatalogue.builtin()
    validator = SchemaValidator(catalogue, kubernetes_version="1.33")
    seen = set()
    for name, documents in spoke_objects().items():
        cloud = cloud_of(name)
        [config] = [d for d in documents if d["kind"] == "ConfigMap"]
        data = config["data"]
        assert set(data) <= CONFIG_MAP_KEYS and "serviceAccountName" not in data  # controller-level identity
        assert data["provider"] == cloud
        if cloud == "gcp":
            assert GKE_CLUSTER.match(data["cluster"])
            assert data["cluster"].endswith(f"/clusters/{name}")
        elif cloud == "azure":
            match = AKS_CLUSTER.match(data["cluster"])
            assert match and match.group(3) == name
        for obj in (d for d in documents if d["kind"] in ("HelmRelease", "Kustomization")):
            assert obj["spec"]["kubeConfig"] == {"configMapRef": {"name": config["metadata"]["name"]}}
            assert config["metadata"]["namespace"] == obj["metadata"]["namespace"]  # same namespace (Flux's rule)
            assert validator.validate(obj) == [], obj
            crd = catalogue.schema_for(obj["apiVersion"], obj["kind"])
            kube_config = crd["properties"]["spec"]["properties"]["kubeConfig"]
            assert len(kube_config["x-kubernetes-validations"]) == 2  # exactly one of configMapRef, secretRef
            assert list(cel_failures(kube_config, obj["spec"]["kubeConfig"])) == []
        seen.add(cloud)
    assert seen == {"aws", "gcp", "azure"}


def test_aks_cluster_ids_name_the_resource_group_the_network_composes() -> None:
    for name, documents in spoke_objects().items():
        if cloud_of(name) != "azure":
            continue
        [config] = [d for d in documents if d["kind"] == "ConfigMap"]
        group = AKS_CLUSTER.match(config["data"]["cluster"]).group(2)  # type: ignore[union-attr]
        network = composed_clusters()[f"Network/{name}"].resources["resource-group"]
        assert network["metadata"]["annotations"]["crossplane.io/external-name"] == group
        cluster = composed_clusters()[f"KubernetesCluster/{name}"].resources["aks-cluster"]
        assert cluster["metadata"]["annotations"]["crossplane.io/external-name"] == name


def test_each_cluster_composes_the_grants_of_the_hubs_flux() -> None:
    hub = reference().fleet.crossplane.hub  # type: ignore[union-attr]
    assert hub.flux_gcp is not None and hub.flux_azure is not None
    counted = {"gcp": 0, "azure": 0}
    for key, item in composed_clusters().items():
        if not key.startswith("KubernetesCluster/"):
            continue
        cloud = item.xr["spec"]["cloudProvider"]
        grants = {n: o for n, o in item.resources.items() if n.startswith("hub-flux-")}
        if cloud == "gcp":
            assert set(grants) == {"hub-flux-container-admin"}
            grant = grants["hub-flux-container-admin"]
            assert grant["spec"]["forProvider"] == {"project": item.xr["spec"]["account"],
                                                    "role": "roles/container.admin",
                                                    "member": f"serviceAccount:{hub.flux_gcp.service_account}"}
            assert "Delete" not in grant["spec"]["managementPolicies"]  # a project binding other spokes share
        elif cloud == "azure":
            assert {o["spec"]["forProvider"]["roleDefinitionName"] for o in grants.values()} == {
                "Azure Kubernetes Service Cluster User Role", "Azure Kubernetes Service RBAC Cluster Admin"}
            for grant in grants.values():
                provider = grant["spec"]["forProvider"]
                assert provider["principalId"] == hub.flux_azure.principal_id
                assert provider["scope"] == "UNKNOWN:aks-cluster.status.atProvider.id"  # this cluster only
            aks = item.resources["aks-cluster"]["spec"]["forProvider"]
            # Flux refuses AKS clusters without Entra ID integration (auth/azure/provider.go AADProfile)
            assert aks["azureActiveDirectoryRoleBasedAccessControl"] == {"azureRbacEnabled": True}
        else:
            assert set(grants) <= {"hub-flux-access-entry", "hub-flux-cluster-admin"}
            continue
        counted[cloud] += 1
    assert counted == {"gcp": 2, "azure": 2}


def test_the_hubs_flux_instance_federates_its_controllers() -> None:
    fleet = reference()
    files = plan_fleet(fleet, None, [fleet_contribution(fleet)])
    [instance] = load_documents(files["clusters/management/flux-system/flux-instance.yaml"])
    assert instance["spec"]["kustomize"]["patches"] == hub_flux_patches(fleet.fleet.crossplane)  # type: ignore[arg-type]
    [kustomization] = load_documents(files["clusters/management/flux-system/kustomization.yaml"])
    assert kustomization["resources"] == ["flux-instance.yaml", "hub-federation.yaml"]
    [config] = load_documents(files["clusters/management/flux-system/hub-federation.yaml"])
    credential = yaml.safe_load(config["data"]["credential-configuration.json"])
    provider = fleet.fleet.crossplane.hub.flux_gcp  # type: ignore[union-attr]
    assert credential["type"] == "external_account"
    assert credential["audience"] == f"//iam.googleapis.com/{provider.workload_identity_provider}"
    assert credential["service_account_impersonation_url"].endswith(f"/{provider.service_account}:generateAccessToken")
    assert credential["credential_source"]["file"] == "/var/run/service-account/gcp-token"
    # spokes: no FluxInstance patches there
    [spoke] = load_documents(files["clusters/prod-eastus/flux-system/flux-instance.yaml"])
    assert "kustomize" not in spoke["spec"]


def _controller(name: str) -> Obj:
    """The shape of a Flux controller Deployment (fluxcd/flux2 v2.9.4 manifests: container manager, env and
    volumes already present)."""
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {"selector": {"matchLabels": {"app": name}}, "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"serviceAccountName": name.split("-shard")[0], "containers": [{
                    "name": "manager", "image": f"ghcr.io/fluxcd/{name}:v1",
                    "env": [{"name": "RUNTIME_NAMESPACE", "valueFrom": {
                        "fieldRef": {"fieldPath": "metadata.namespace"}}}],
                    "volumeMounts": [{"name": "temp", "mountPath": "/tmp"}]}],
                    "volumes": [{"name": "temp", "emptyDir": {}}]}}}}


def test_the_patches_apply_to_kustomize_and_helm_controller_and_their_shards(tmp_path: Path) -> None:
    """The FluxInstance patches, run through the real kustomize as the Flux Operator runs them (appended to its
    kustomization's patches, flux-operator v0.58.1 internal/builder/templates.go), hit exactly the controllers that
    apply on spokes, shards included, and keep what the Deployments had."""
    names = ["kustomize-controller", "helm-controller", "kustomize-controller-shard1", "helm-controller-shard1",
             "source-controller", "notification-controller"]
    (tmp_path / "controllers.yaml").write_text(yaml.safe_dump_all([_controller(n) for n in names]))
    patches = hub_flux_patches(reference().fleet.crossplane)  # type: ignore[arg-type]
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
         "resources": ["controllers.yaml"], "patches": patches}))
    built = {d["metadata"]["name"]: d for d in load_documents(tools().kustomize_build.run(tmp_path))}
    assert set(built) == set(names)
    for name, deployment in built.items():
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        if name.startswith(("kustomize-controller", "helm-controller")):
            assert {"RUNTIME_NAMESPACE", "GOOGLE_APPLICATION_CREDENTIALS", "AZURE_CLIENT_ID", "AZURE_TENANT_ID",
                    "AZURE_AUTHORITY_HOST", "AZURE_FEDERATED_TOKEN_FILE"} == set(env)
            assert env["AZURE_FEDERATED_TOKEN_FILE"] == "/var/run/service-account/azure-token"
            assert set(volumes) == {"temp", "hub-federation-tokens", "flux-gcp-federation"}
            assert volumes["flux-gcp-federation"]["configMap"]["optional"] is True  # no bootstrap deadlock
            audiences = {s["serviceAccountToken"]["path"]: s["serviceAccountToken"]["audience"]
                         for s in volumes["hub-federation-tokens"]["projected"]["sources"]}
            assert audiences["azure-token"] == "api://AzureADTokenExchange"
            assert audiences["gcp-token"].startswith("https://iam.googleapis.com/projects/")
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert mounts == {"/tmp", "/var/run/service-account", "/etc/workload-identity"}
            assert env["GOOGLE_APPLICATION_CREDENTIALS"].startswith("/etc/workload-identity/")
        else:
            assert set(env) == {"RUNTIME_NAMESPACE"} and set(volumes) == {"temp"}


@pytest.mark.parametrize(("key", "cloud", "spokes"), [
    ("fluxGcp", "gcp", "dev-us-central1, prod-europe-west1"),
    ("fluxAzure", "azure", "prod-eastus, staging-westeurope")])
def test_a_gke_or_aks_spoke_without_the_hubs_identity_is_refused(fleet_root: Path, tmp_path: Path, key: str,
                                                                  cloud: str, spokes: str) -> None:
    edit_yaml(fleet_root / "inventory" / "fleet.yaml", lambda d: d["fleet"]["crossplane"]["hub"].pop(key))
    found = [p for p in problems(fleet_root) if "workload identity" in p]
    assert len(found) == 1, found
    assert re.match(r"^inventory/fleet\.yaml:\d+:\d+: fleet\.crossplane\.hub: ", found[0]), found[0]
    assert f"the hub signs in to {cloud} cluster(s) {spokes} with Flux's workload identity: " \
           f"set fleet.crossplane.hub.{key}: " in found[0]
    out = tmp_path / "out"
    assert main(["render", str(fleet_root), "--out", str(out)]) == 2
    assert tree_digest(out) == {}


def test_the_hubs_identities_are_validated(fleet_root: Path) -> None:
    def change(data: Any) -> None:
        hub = data["fleet"]["crossplane"]["hub"]
        hub["fluxGcp"]["serviceAccount"] = "not-an-email"
        hub["fluxAzure"]["principalId"] = "NOT-A-UUID"

    edit_yaml(fleet_root / "inventory" / "fleet.yaml", change)
    found = problems(fleet_root)
    assert any(p.startswith("inventory/fleet.yaml:") and "fleet.crossplane.hub.fluxGcp.serviceAccount" in p
               for p in found), found
    assert any("fleet.crossplane.hub.fluxAzure.principalId" in p for p in found), found
