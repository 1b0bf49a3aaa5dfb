"""External Secrets' identity composed with each cluster (generator/render/esoidentity.py): EKS Pod Identity for the
ESO controller chained to the secrets account, the AKS federated credential for the store's service account, exact
trust subjects that agree with what the fleet renders, and the inputs refused with file:line."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_reference_fleet
from test_crossplane import composed, edit_yaml, for_provider, resolved

from generator.errors import InventoryError
from generator.inventory.loader import load_inventory
from generator.render.crossplane import build_infrastructure
from generator.render.crossplane.plan import Infrastructure
from generator.render.pipeline import plan
from generator.verify.schema import CrdCatalogue, SchemaValidator
from generator.yamlio import load_documents

Obj = dict[str, Any]
CLUSTER_ACCOUNT = "123456789012"
SECRETS_ACCOUNT = "111122223333"
PROVIDER_ROLE = "arn:aws:iam::111122223333:role/crossplane-secrets-account"
IDENTITY = ("/subscriptions/5f0c6e1a-2b7d-4c1e-9a53-0d2b8f6e4a11/resourceGroups/acme-identities/providers/"
            "Microsoft.ManagedIdentity/userAssignedIdentities/external-secrets")


@pytest.fixture(scope="module")
def reference_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_reference_fleet(tmp_path_factory.mktemp("eso"))


@pytest.fixture(scope="module")
def infra(reference_root: Path) -> Infrastructure:
    return build_infrastructure(resolved(reference_root))


@pytest.fixture(scope="module")
def fleet_files(reference_root: Path) -> dict[str, str]:
    return plan(reference_root).files


def workloads(root: Path, cloud: str) -> list[str]:
    """The workload clusters of ``cloud`` in the fleet at ``root``."""
    return sorted(c.name for c in resolved(root).clusters if c.cluster.role == "workload" and c.cluster.cloud == cloud)


def release_values(files: dict[str, str]) -> tuple[str, Obj]:
    """Namespace and base values of the external-secrets HelmRelease (the component's, before overlays)."""
    for path, text in sorted(files.items()):
        if "/infrastructure/" not in path or not path.endswith(".yaml"):
            continue
        for doc in load_documents(text):
            if doc.get("kind") == "HelmRelease" and doc["spec"].get("chart", {}).get("spec", {}).get("chart") \
                    == "external-secrets":
                return doc["metadata"]["namespace"], doc["spec"]["values"]
    raise AssertionError("no external-secrets HelmRelease")


def store_of(files: dict[str, str], cluster: str) -> list[Obj]:
    """The ClusterSecretStore file of one cluster."""
    return load_documents(files[f"fleet/infrastructure/secret-stores/{cluster}/cluster-secret-store.yaml"])


def edit_secrets(root: Path, change: Any) -> None:
    edit_yaml(root / "inventory/fleet.yaml", lambda data: change(data["fleet"]["security"]["secrets"]))


# --- EKS --------------------------------------------------------------------------------------------------


def test_every_eks_cluster_composes_the_eso_pod_identity_chained_to_the_secrets_account(
        reference_root: Path, infra: Infrastructure, fleet_files: dict[str, str]) -> None:
    clusters = workloads(reference_root, "aws")
    assert len(clusters) >= 3
    namespace, values = release_values(fleet_files)
    service_account = values["serviceAccount"]["name"]  # pinned in inventory/components.yaml
    assert (namespace, service_account) == ("external-secrets", "external-secrets")
    for cluster in clusters:
        eks = composed(infra, "aws-eks", cluster)
        region = next(d for d in infra.documents(f"clusters/{cluster}.yaml")
                      if d["kind"] == "KubernetesCluster")["spec"]["region"]
        associations = [n for n, o in eks.items() if o["kind"] == "PodIdentityAssociation"
                        and o["spec"]["forProvider"]["namespace"] == namespace]
        assert associations == ["external-secrets-pod-identity"]  # exactly one, for the ESO controller
        association = for_provider(eks, "external-secrets-pod-identity")
        target_arn = f"arn:aws:iam::{SECRETS_ACCOUNT}:role/{cluster}-external-secrets"
        assert association["serviceAccount"] == service_account
        assert association["targetRoleArn"] == target_arn
        assert association["roleArnSelector"]["matchLabels"] == {"platform.gitops.io/role": "external-secrets"}
        role = eks["external-secrets-role"]
        assert role["metadata"]["annotations"]["crossplane.io/external-name"] == f"{cluster}-eso-pod-identity"
        assert json.loads(role["spec"]["forProvider"]["assumeRolePolicy"])["Statement"] == [
            {"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
             "Action": ["sts:AssumeRole", "sts:TagSession"]}]
        chain = json.loads(for_provider(eks, "external-secrets-role-chain")["policy"])
        assert chain["Statement"] == [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
                                       "Resource": target_arn}]
        # the target role admits only this cluster's ESO controller (EKS Pod Identity session tags)
        target = eks["external-secrets-target-role"]
        assert target["spec"]["providerConfigRef"]["name"] == "external-secrets"
        assert target["metadata"]["annotations"]["crossplane.io/external-name"] == f"{cluster}-external-secrets"
        assert json.loads(target["spec"]["forProvider"]["assumeRolePolicy"])["Statement"] == [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{CLUSTER_ACCOUNT}:root"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {
                "StringEquals": {
                    "aws:RequestTag/eks-cluster-arn": f"arn:aws:eks:{region}:{CLUSTER_ACCOUNT}:cluster/{cluster}",
                    "aws:RequestTag/kubernetes-namespace": namespace,
                    "aws:RequestTag/kubernetes-service-account": service_account},
                "ArnEquals": {"aws:PrincipalARN": f"arn:aws:iam::{CLUSTER_ACCOUNT}:role/{cluster}-eso-pod-identity"}}}]
        read = eks["external-secrets-target-role-policy"]
        assert read["spec"]["providerConfigRef"]["name"] == "external-secrets"
        statement = json.loads(read["spec"]["forProvider"]["policy"])["Statement"][0]
        assert statement["Resource"] == f"arn:aws:secretsmanager:{region}:{SECRETS_ACCOUNT}:secret:*"
        assert "secretsmanager:GetSecretValue" in statement["Action"]
        # the store on that cluster uses the controller's identity: no auth block, no store service account
        assert store_of(fleet_files, cluster) == [{
            "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
            "metadata": {"name": "fleet-secrets", "labels": {
                "app.kubernetes.io/managed-by": "fleetgen",
                "fleet.gitops.io/secrets-provider": "aws-secrets-manager"}},
            "spec": {"provider": {"aws": {"service": "SecretsManager", "region": region}}}}]
    configs = {d["metadata"]["name"]: d for d in infra.documents("provider-configs/")
               if d["kind"] == "ClusterProviderConfig" and d["apiVersion"].startswith("aws.")}
    assert configs["external-secrets"]["spec"]["assumeRoleChain"] == [{"roleARN": PROVIDER_ROLE}]
    assert {k: v for k, v in configs["external-secrets"]["spec"].items() if k != "assumeRoleChain"} == \
        configs["default"]["spec"]


def test_the_hub_is_not_composed_and_keeps_its_irsa_store(fleet_files: dict[str, str]) -> None:
    documents = store_of(fleet_files, "management")
    account = next(d for d in documents if d["kind"] == "ServiceAccount")
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": f"arn:aws:iam::{SECRETS_ACCOUNT}:role/management-external-secrets"}


def test_the_same_account_needs_no_role_chain(tmp_path: Path) -> None:
    root = copy_reference_fleet(tmp_path)

    def same_account(secrets: Any) -> None:
        secrets["aws"]["accountId"] = CLUSTER_ACCOUNT
        del secrets["aws"]["providerRoleArn"]

    edit_secrets(root, same_account)
    infra = build_infrastructure(resolved(root))
    eks = composed(infra, "aws-eks", "prod-us-east-1")
    assert "targetRoleArn" not in for_provider(eks, "external-secrets-pod-identity")
    assert not any(name.startswith("external-secrets-target") for name in eks)
    read = json.loads(for_provider(eks, "external-secrets-role-policy")["policy"])["Statement"][0]
    assert read["Resource"] == f"arn:aws:secretsmanager:us-east-1:{CLUSTER_ACCOUNT}:secret:*"
    names = [d["metadata"]["name"] for d in infra.documents("provider-configs/")
             if d["kind"] == "ClusterProviderConfig"]
    assert "external-secrets" not in names


def test_another_secrets_account_without_a_provider_role_is_refused(tmp_path: Path) -> None:
    root = copy_reference_fleet(tmp_path)
    edit_secrets(root, lambda secrets: secrets["aws"].pop("providerRoleArn"))
    with pytest.raises(InventoryError) as caught:
        load_inventory(root)
    lines = (root / "inventory/fleet.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "accountId:" in text and SECRETS_ACCOUNT in text)
    found = [p for p in caught.value.problems if p.field == "fleet.security.secrets.aws.accountId"]
    assert [(Path(p.file).name, p.line) for p in found] == [("fleet.yaml", line)]
    assert "providerRoleArn" in found[0].message


def test_a_malformed_provider_role_is_refused(tmp_path: Path) -> None:
    root = copy_reference_fleet(tmp_path)
    edit_secrets(root, lambda secrets: secrets["aws"].update(providerRoleArn="crossplane-secrets-account"))
    with pytest.raises(InventoryError) as caught:
        load_inventory(root)
    assert any(p.field.endswith("providerRoleArn") and p.file.endswith("fleet.yaml") and p.line > 0
               for p in caught.value.problems), caught.value


# --- AKS --------------------------------------------------------------------------------------------------


def test_every_aks_cluster_federates_the_eso_identity_with_its_issuer(
        reference_root: Path, infra: Infrastructure, fleet_files: dict[str, str]) -> None:
    clusters = workloads(reference_root, "azure")
    assert len(clusters) >= 2
    for cluster in clusters:
        documents = store_of(fleet_files, cluster)
        account = next(d for d in documents if d["kind"] == "ServiceAccount")
        store = next(d for d in documents if d["kind"] == "ClusterSecretStore")["spec"]["provider"]["azurekv"]
        subject = f"system:serviceaccount:{account['metadata']['namespace']}:{account['metadata']['name']}"
        assert subject == "system:serviceaccount:external-secrets:external-secrets-store"
        assert store["serviceAccountRef"] == {"name": account["metadata"]["name"],
                                              "namespace": account["metadata"]["namespace"]}
        aks = composed(infra, "azure-aks", cluster)
        credentials = [o for o in aks.values() if o["kind"] == "FederatedIdentityCredential"]
        assert len(credentials) == 1
        credential = credentials[0]
        assert credential["metadata"]["annotations"]["crossplane.io/external-name"] == f"{cluster}-external-secrets"
        assert credential["spec"]["forProvider"] == {
            "userAssignedIdentityId": IDENTITY, "subject": subject,
            "audience": ["api://AzureADTokenExchange"],
            # held back on the hub until AKS reports the issuer
            "issuer": "UNKNOWN:aks-cluster.status.atProvider.oidcIssuerUrl"}


def test_the_aks_federation_is_opt_in(tmp_path: Path) -> None:
    root = copy_reference_fleet(tmp_path)
    edit_secrets(root, lambda secrets: secrets["azure"].pop("identityId"))
    aks = composed(build_infrastructure(resolved(root)), "azure-aks", "prod-eastus")
    assert not any(o["kind"] == "FederatedIdentityCredential" for o in aks.values())


def test_a_malformed_identity_is_refused(tmp_path: Path) -> None:
    root = copy_reference_fleet(tmp_path)
    edit_secrets(root, lambda secrets: secrets["azure"].update(identityId="external-secrets"))
    with pytest.raises(InventoryError) as caught:
        load_inventory(root)
    assert any(p.field.endswith("identityId") and p.file.endswith("fleet.yaml") and p.line > 0
               for p in caught.value.problems), caught.value


# --- strict upstream schemas ------------------------------------------------------------------------------


def test_the_identity_resources_validate_strictly_and_a_wrong_type_fails(infra: Infrastructure) -> None:
    validator = SchemaValidator(CrdCatalogue.builtin(), kubernetes_version="1.33")
    eks = composed(infra, "aws-eks", "prod-us-east-1")
    aks = composed(infra, "azure-aks", "prod-eastus")
    names = ["external-secrets-role", "external-secrets-role-chain", "external-secrets-target-role",
             "external-secrets-target-role-policy", "external-secrets-pod-identity"]
    for resource in [*(eks[n] for n in names), aks["external-secrets-federated-credential"]]:
        assert validator.validate(resource) == []
    wrong = copy.deepcopy(eks["external-secrets-pod-identity"])
    wrong["spec"]["forProvider"]["targetRoleArn"] = ["arn:aws:iam::111122223333:role/x"]
    assert [str(v) for v in validator.validate(wrong)] == [
        "PodIdentityAssociation/fleet-clusters/prod-us-east-1/external-secrets-pod-identity: "
        'spec.forProvider.targetRoleArn: must be of type string, not array (["arn:aws:iam::111122223333:role/x"])']


def test_more_aks_clusters_than_one_identity_may_federate_are_refused(tmp_path: Path) -> None:
    root = copy_reference_fleet(tmp_path)
    extra = "".join(
        f"  - name: staging-aks-{i}\n    cloud: azure\n    region: westeurope\n    environment: staging\n"
        f"    networking: {{vpcCidr: 10.{100 + i}.0.0/16, podCidr: 100.65.0.0/16, serviceCidr: 172.21.0.0/16,"
        " privateEndpoint: false}\n" for i in range(19))  # + staging-westeurope and prod-eastus: 21
    path = root / "inventory/clusters/staging.yaml"
    path.write_text(path.read_text() + extra)
    with pytest.raises(InventoryError) as caught:
        load_inventory(root)
    found = [p for p in caught.value.problems if p.field == "fleet.security.secrets.azure.identityId"]
    assert [p.message for p in found] == [
        "21 AKS clusters would each federate this identity, Azure allows 20 federated credentials per identity"]
    path.write_text(path.read_text().split("  - name: staging-aks-18\n")[0])  # 20 clusters: accepted
    load_inventory(root)
