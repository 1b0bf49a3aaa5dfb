"""Vault's Kubernetes auth composed with each Vault-backed cluster (generator/render/esoidentity.py vault_identity,
compose_vault_auth in generator/data/composites/_common.py, generator/render/crossplane/vault.py): provider-vault
v4.0.1 installed only when needed, a token-free ClusterProviderConfig, and per cluster the mount, its config and the
store's role with exact subjects — composed through the real function-pythonic engine, validated strictly."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_reference_fleet
from test_crossplane import composed, composition, edit_cluster, edit_yaml, rendered, resolved

from generator.errors import InventoryError
from generator.inventory.loader import load_inventory
from generator.render.crossplane import build_infrastructure, engine
from generator.render.crossplane.plan import Infrastructure
from generator.render.pipeline import plan
from generator.verify.schema import CrdCatalogue, SchemaValidator
from generator.yamlio import load_documents

Obj = dict[str, Any]
VAULT = {"server": "https://vault.acme.example:8200", "policies": ["external-secrets-read", "default"]}
VAULT_CLUSTERS = {"aws-eks": "dev-us-east-1", "gcp-gke": "prod-europe-west1"}
AKS_VAULT_CLUSTER = "prod-eastus"


def vault_fleet(root: Path) -> Path:
    """The reference fleet with Vault settings and one EKS, one GKE and one AKS cluster switched to Vault."""
    edit_yaml(root / "inventory/fleet.yaml",
              lambda data: data["fleet"]["security"]["secrets"].update(vault=dict(VAULT)))
    for name in [*VAULT_CLUSTERS.values(), AKS_VAULT_CLUSTER]:
        edit_cluster(root, name, lambda entry: entry.update(secretsBackend="vault"))
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return vault_fleet(copy_reference_fleet(tmp_path_factory.mktemp("vault")))


@pytest.fixture(scope="module")
def infra(root: Path) -> Infrastructure:
    return build_infrastructure(resolved(root))


def vault_objects(resources: dict[str, Obj]) -> dict[str, Obj]:
    return {name: obj for name, obj in resources.items() if ".vault.m.upbound.io/" in obj["apiVersion"]}


def test_each_vault_cluster_composes_its_mount_config_and_the_store_role(root: Path, infra: Infrastructure) -> None:
    files = plan(root).files
    for comp_name, cluster in VAULT_CLUSTERS.items():
        documents = load_documents(files[f"fleet/infrastructure/secret-stores/{cluster}/cluster-secret-store.yaml"])
        store = next(d for d in documents if d["kind"] == "ClusterSecretStore")["spec"]["provider"]["vault"]
        auth = store["auth"]["kubernetes"]
        assert auth == {"mountPath": f"kubernetes-{cluster}", "role": "external-secrets",
                        "serviceAccountRef": {"name": "external-secrets-store", "namespace": "external-secrets"}}
        found = vault_objects(composed(infra, comp_name, cluster))
        assert sorted(found) == ["vault-auth-backend", "vault-auth-config", "vault-auth-role"]
        for obj in found.values():
            assert obj["spec"]["providerConfigRef"] == {"kind": "ClusterProviderConfig", "name": "vault"}
        backend = found["vault-auth-backend"]
        assert (backend["kind"], backend["spec"]["forProvider"]["type"], backend["spec"]["forProvider"]["path"]) == (
            "Backend", "kubernetes", auth["mountPath"])
        mount = backend["metadata"]["labels"]["platform.gitops.io/role"]
        selector = {"matchControllerRef": True, "matchLabels": {"platform.gitops.io/role": mount}}
        role = found["vault-auth-role"]["spec"]["forProvider"]
        assert role == {"backendSelector": selector, "roleName": auth["role"],
                        "boundServiceAccountNames": [auth["serviceAccountRef"]["name"]],
                        "boundServiceAccountNamespaces": [auth["serviceAccountRef"]["namespace"]],
                        "tokenPolicies": VAULT["policies"]}
        config = found["vault-auth-config"]["spec"]["forProvider"]
        assert config["backendSelector"] == selector
        # offline the cluster has no status: held back on the hub until the cloud reports endpoint and CA
        resource = "eks-cluster" if comp_name == "aws-eks" else "gke-cluster"
        ca = "certificateAuthority[0].data" if comp_name == "aws-eks" else "masterAuth.clusterCaCertificate"
        assert config["kubernetesHost"] == f"UNKNOWN:{resource}.status.atProvider.endpoint"
        assert config["kubernetesCaCert"] == f"UNKNOWN:{resource}.status.atProvider.{ca}"


def test_only_vault_clusters_compose_vault_objects(infra: Infrastructure) -> None:
    counted = 0
    for comp_name in ("aws-eks", "gcp-gke", "azure-aks"):
        for item in rendered(infra)[comp_name]:
            name = item.xr["metadata"]["name"]
            found = vault_objects(item.resources)
            assert bool(found) == (VAULT_CLUSTERS.get(comp_name) == name), name
            counted += 1
    assert counted >= 6
    # an AKS cluster on Vault keeps its manual mount: its CA is in no status field
    assert not vault_objects(composed(infra, "azure-aks", AKS_VAULT_CLUSTER))


def test_the_provider_and_its_token_free_config_are_installed_only_with_vault(
        root: Path, infra: Infrastructure, tmp_path: Path) -> None:
    providers = [d for d in infra.documents("providers/") if d.get("metadata", {}).get("name") == "provider-vault"]
    assert [p["spec"]["package"] for p in providers] == ["xpkg.upbound.io/upbound/provider-vault:v4.0.1"]
    runtime = next(d for d in infra.documents("providers/") if d.get("metadata", {}).get("name") == "vault-provider")
    assert runtime["spec"]["serviceAccountTemplate"]["metadata"]["name"] == "provider-vault"
    [config] = infra.files["provider-configs/vault.yaml"][0]
    assert config == {"apiVersion": "vault.m.upbound.io/v1beta1", "kind": "ClusterProviderConfig",
                      "metadata": {"name": "vault"},
                      "spec": {"address": VAULT["server"], "credentials": {"source": "Kubernetes"},
                               "mountPath": "kubernetes", "role": "crossplane"}}
    assert "vault.yaml" in infra.files["providers/kustomization.yaml"][0][0]["resources"]
    plain = build_infrastructure(resolved(copy_reference_fleet(tmp_path)))
    assert "provider-configs/vault.yaml" not in plain.files and "providers/vault.yaml" not in plain.files
    assert not any(".vault.m.upbound.io/" in d.get("apiVersion", "") for d in plain.documents())


def test_the_vault_objects_validate_strictly_and_a_wrong_type_fails(infra: Infrastructure) -> None:
    validator = SchemaValidator(CrdCatalogue.builtin(), kubernetes_version="1.33")
    checked = 0
    for comp_name, cluster in VAULT_CLUSTERS.items():
        for obj in vault_objects(composed(infra, comp_name, cluster)).values():
            assert validator.validate(obj) == [], obj["metadata"]
            checked += 1
    [config] = infra.files["provider-configs/vault.yaml"][0]
    assert validator.validate(config) == []
    assert checked == 6
    wrong = copy.deepcopy(composed(infra, "aws-eks", "dev-us-east-1")["vault-auth-role"])
    wrong["spec"]["forProvider"]["boundServiceAccountNames"] = "external-secrets-store"
    assert [str(v) for v in validator.validate(wrong)] == [
        "AuthBackendRole/fleet-clusters/dev-us-east-1/vault-auth-role: spec.forProvider.boundServiceAccountNames: "
        "must be of type array, not string (\"external-secrets-store\")"]


def test_a_malformed_policy_is_refused(tmp_path: Path) -> None:
    root = vault_fleet(copy_reference_fleet(tmp_path))
    edit_yaml(root / "inventory/fleet.yaml",
              lambda data: data["fleet"]["security"]["secrets"]["vault"].update(policies=["read secrets"]))
    with pytest.raises(InventoryError) as caught:
        load_inventory(root)
    assert any("policies" in p.field and p.file.endswith("fleet.yaml") and p.line > 0
               for p in caught.value.problems), caught.value


PEM = "-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(("name", "resource", "status"), [
    ("aws-eks", "eks-cluster", {"endpoint": "https://ABC.gr7.us-east-1.eks.amazonaws.com",
                                "certificateAuthority": [{"data": base64.b64encode(PEM.encode()).decode()}]}),
    ("gcp-gke", "gke-cluster", {"endpoint": "10.0.0.2",
                                "masterAuth": {"clusterCaCertificate": base64.b64encode(PEM.encode()).decode()}}),
])
def test_the_config_is_held_back_until_the_cluster_reports_endpoint_and_ca(
        infra: Infrastructure, name: str, resource: str, status: Obj) -> None:
    comp = composition(infra, name)
    xr = next(i.xr for i in rendered(infra)[name] if i.xr["metadata"]["name"] == VAULT_CLUSTERS[name])
    first = engine.run(comp, xr)
    assert "vault-auth-config" not in first.resources  # as on the hub: no endpoint yet
    assert {"vault-auth-backend", "vault-auth-role"} <= set(first.resources)
    observed = {resource: {**first.resources[resource], "status": {"atProvider": status}}}
    config = engine.run(comp, xr, observed).resources["vault-auth-config"]["spec"]["forProvider"]
    assert (config["kubernetesHost"], config["kubernetesCaCert"]) == (status["endpoint"], PEM)


def test_the_store_account_of_a_vault_cluster_may_review_tokens(root: Path, tmp_path: Path) -> None:
    files = plan(root).files
    for cluster in [*VAULT_CLUSTERS.values(), AKS_VAULT_CLUSTER]:
        documents = load_documents(files[f"fleet/infrastructure/secret-stores/{cluster}/cluster-secret-store.yaml"])
        [binding] = [d for d in documents if d["kind"] == "ClusterRoleBinding"]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                      "name": "system:auth-delegator"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "external-secrets-store",
                                        "namespace": "external-secrets"}]
    plain = plan(copy_reference_fleet(tmp_path)).files
    assert not any("kind: ClusterRoleBinding" in text for path, text in plain.items() if "/secret-stores/" in path)
