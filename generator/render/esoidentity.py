"""External Secrets' cloud identity on a cluster the hub composes: who signs in (exact service-account subjects)
and what the cluster's composition grants it. Shared by the cluster objects (``spec.secretsIdentity``) and the
ClusterSecretStore, so the store and the trust it relies on are computed once.

- EKS: EKS Pod Identity for the ESO *controller's* service account (ESO's AWS provider with no ``auth`` uses the
  AWS SDK's default chain, which reads Pod Identity credentials: external-secrets
  ``providers/v1/aws/auth/auth.go`` ``constructCredsProvider`` → ``config.LoadDefaultConfig``). When the secrets
  account differs from the cluster's, the association names a target role in the secrets account
  (``targetRoleArn``, provider-upjet-aws v2.6.0 PodIdentityAssociation; EKS performs the role chaining).
- AKS: a federated identity credential on the fleet's ESO identity for the cluster's OIDC issuer, subject the
  store's service account (the store signs in with ``serviceAccountRef``, Azure workload identity).
- GKE: ``roles/iam.workloadIdentityUser`` for the store's service account on the secrets project's GSA.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.inventory.models import Fleet
from generator.inventory.resolve import ResolvedCluster

ESO_CHART = "external-secrets"
AZURE_TOKEN_AUDIENCE = "api://AzureADTokenExchange"
"""The audience Azure workload identity federation expects (Microsoft Entra workload identity docs)."""
SECRETS_MANAGER_READ = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret",
                        "secretsmanager:ListSecretVersionIds", "secretsmanager:GetResourcePolicy"]
"""What ESO needs to read a secret (external-secrets docs, AWS Secrets Manager "IAM Policy")."""


@dataclass(frozen=True)
class AwsEsoIdentity:
    """The Pod Identity grant of one EKS cluster."""

    cluster_arn: str
    namespace: str
    service_account: str
    role_name: str
    """The Pod Identity role in the cluster's account."""
    secrets_account: str
    secrets_region: str
    target_role_name: str | None
    """The role in the secrets account the association chains to (None: same account, no chaining)."""

    def as_spec(self) -> dict[str, str]:
        """The ``spec.secretsIdentity.aws`` of the cluster object."""
        spec = {"clusterArn": self.cluster_arn, "namespace": self.namespace, "serviceAccount": self.service_account,
                "roleName": self.role_name, "secretsAccountId": self.secrets_account,
                "secretsRegion": self.secrets_region}
        if self.target_role_name:
            spec["targetRoleName"] = self.target_role_name
            spec["targetProviderConfigName"] = secrets_provider_config_name()
        return spec


def secrets_provider_config_name() -> str:
    """The AWS ClusterProviderConfig that creates roles in the secrets account (assumeRoleChain)."""
    return "external-secrets"


def _values(fleet: Fleet, cluster: ResolvedCluster) -> dict[str, str]:
    c = cluster.cluster
    return {"cluster": c.name, "environment": c.environment, "region": c.region, "organization": fleet.organization,
            "project": ""}


def controller_subject(cluster: ResolvedCluster) -> tuple[str, str] | None:
    """(namespace, service account) of the ESO controller on the cluster, or None when it does not run ESO.

    The chart's ``external-secrets.serviceAccountName`` helper (external-secrets helm-chart-2.9.0): the value
    ``serviceAccount.name``, else the fullname (the release name when it contains the chart name, else
    ``<release>-external-secrets``); the release name is the component's releaseName, else its name. The
    reference inventory pins ``serviceAccount.name`` so the subject never depends on naming rules."""
    for component in cluster.components:
        if component.component.chart.name != ESO_CHART:
            continue
        account = component.values.value_at("serviceAccount")
        name = account.get("name") if isinstance(account, dict) else None
        release = component.component.release_name or component.component.name
        default = release if ESO_CHART in release else f"{release}-{ESO_CHART}"
        return component.component.namespace, str(name or default)
    return None


def composed(fleet: Fleet, cluster: ResolvedCluster) -> bool:
    """Whether the hub composes this cluster (and so its ESO grant): a workload cluster of a Crossplane fleet."""
    return fleet.crossplane is not None and cluster.cluster.role == "workload"


def aws_identity(fleet: Fleet, cluster: ResolvedCluster) -> AwsEsoIdentity | None:
    """The Pod Identity grant an EKS cluster's composition creates for ESO (None: not composed / not AWS SM)."""
    backend = fleet.security.secrets
    settings = fleet.crossplane
    c = cluster.cluster
    if backend is None or backend.aws is None or settings is None or settings.aws is None or c.cloud != "aws" \
            or not composed(fleet, cluster) or cluster.settings.secrets_backend != "cloud":
        return None
    subject = controller_subject(cluster)
    if subject is None:
        return None
    values = _values(fleet, cluster)
    cross_account = backend.aws.account_id != settings.aws.account_id
    return AwsEsoIdentity(
        cluster_arn=f"arn:aws:eks:{c.region}:{settings.aws.account_id}:cluster/{c.name}",
        namespace=subject[0], service_account=subject[1], role_name=f"{c.name}-eso-pod-identity",
        secrets_account=backend.aws.account_id, secrets_region=backend.aws.region.format(**values),
        target_role_name=backend.aws.role_name.format(**values) if cross_account else None)


def azure_identity(fleet: Fleet, cluster: ResolvedCluster) -> dict[str, str] | None:
    """The federated credential an AKS cluster's composition creates on the fleet's ESO identity."""
    backend = fleet.security.secrets
    c = cluster.cluster
    if backend is None or backend.azure is None or backend.azure.identity_id is None or c.cloud != "azure" \
            or not composed(fleet, cluster) or cluster.settings.secrets_backend != "cloud":
        return None
    identity = backend.azure.identity_id
    return {"identityId": identity,
            "subject": f"system:serviceaccount:{backend.namespace}:{backend.service_account}",
            "audience": AZURE_TOKEN_AUDIENCE}


VAULT_PROVIDER_CONFIG = "vault"
"""The provider-vault ClusterProviderConfig every composed Vault object references."""
VAULT_COMPOSED_CLOUDS = ("aws", "gcp")
"""Clouds whose composed cluster reports its API endpoint and CA in status (EKS ``endpoint`` and
``certificateAuthority[0].data``, GKE ``endpoint`` and ``masterAuth[0].clusterCaCertificate``); AKS keeps its CA in
the kubeconfig only (a connection secret), so an AKS cluster's Vault mount stays manual."""


def vault_identity(fleet: Fleet, cluster: ResolvedCluster) -> dict[str, object] | None:
    """The Kubernetes auth mount and role a Vault-backed cluster's composition creates for the store (the same
    mount path and role the ClusterSecretStore signs in with: generator/render/externalsecrets.py)."""
    backend = fleet.security.secrets
    c = cluster.cluster
    if backend is None or backend.vault is None or cluster.settings.secrets_backend != "vault" \
            or c.cloud not in VAULT_COMPOSED_CLOUDS or not composed(fleet, cluster):
        return None
    values = _values(fleet, cluster)
    return {"mountPath": backend.vault.mount_path.format(**values), "roleName": backend.vault.role.format(**values),
            "policies": list(backend.vault.policies), "namespace": backend.namespace,
            "serviceAccount": backend.service_account, "providerConfigName": VAULT_PROVIDER_CONFIG}
