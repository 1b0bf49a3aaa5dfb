"""External Secrets: the ClusterSecretStore of each cluster and the ExternalSecrets of each app.

Only references are rendered: the store authenticates with the cluster's workload identity (EKS Pod Identity on
clusters the hub composes, else IRSA; Azure workload identity, GKE workload identity) or Vault's Kubernetes auth,
and an ExternalSecret names a key in the backend. No secret value ever appears in the output.
"""

from __future__ import annotations

from typing import Any

from generator.inventory.models import App
from generator.inventory.resolve import ResolvedCluster, ResolvedFleet
from generator.render import esoidentity

ESO_API = "external-secrets.io/v1"


def fill_in(template: str, cluster: ResolvedCluster, fleet: ResolvedFleet, **extra: str) -> str:
    """Replace ``{cluster}``, ``{environment}``, ``{region}``, ``{organization}`` (and ``extra``) in a template."""
    c = cluster.cluster
    values = {
        "cluster": c.name,
        "environment": c.environment,
        "region": c.region,
        "organization": fleet.fleet.organization,
        "project": "",
        **extra,
    }
    return template.format(**values)


def secret_store(
    cluster: ResolvedCluster, fleet: ResolvedFleet
) -> tuple[str, dict[str, Any], dict[str, str] | None]:
    """The provider name, ClusterSecretStore ``spec.provider`` and the annotations of the ServiceAccount the store
    signs in as (None: the store names no ServiceAccount, it uses the ESO controller's own identity)."""
    backend = fleet.fleet.security.secrets
    if backend is None:
        raise ValueError("no secrets backend configured")
    account = {"name": backend.service_account, "namespace": backend.namespace}
    c = cluster.cluster
    if cluster.settings.secrets_backend == "vault":
        vault = backend.vault
        if vault is None:
            raise ValueError(f"cluster {c.name}: fleet.security.secrets.vault is not configured")
        spec: dict[str, Any] = {"server": vault.server, "path": vault.path, "version": vault.version}
        if vault.namespace:
            spec["namespace"] = vault.namespace
        spec["auth"] = {
            "kubernetes": {
                "mountPath": fill_in(vault.mount_path, cluster, fleet),
                "role": fill_in(vault.role, cluster, fleet),
                "serviceAccountRef": account,
            }
        }
        return "vault", {"vault": spec}, {}
    if c.cloud == "aws":
        aws = backend.aws
        if aws is None:
            raise ValueError(f"cluster {c.name}: fleet.security.secrets.aws is not configured")
        if esoidentity.aws_identity(fleet.fleet, cluster) is not None:
            # composed with the cluster: EKS Pod Identity on the ESO controller (chained to the secrets account's
            # role), so no auth block: ESO then uses the AWS SDK's default chain (generator/render/esoidentity.py)
            return "aws-secrets-manager", {"aws": {"service": "SecretsManager",
                                                   "region": fill_in(aws.region, cluster, fleet)}}, None
        role = f"arn:aws:iam::{aws.account_id}:role/{fill_in(aws.role_name, cluster, fleet)}"
        spec = {
            "service": "SecretsManager",
            "region": fill_in(aws.region, cluster, fleet),
            "auth": {"jwt": {"serviceAccountRef": account}},
        }
        return "aws-secrets-manager", {"aws": spec}, {"eks.amazonaws.com/role-arn": role}
    if c.cloud == "azure":
        azure = backend.azure
        if azure is None:
            raise ValueError(f"cluster {c.name}: fleet.security.secrets.azure is not configured")
        spec = {
            "authType": "WorkloadIdentity",
            "vaultUrl": f"https://{fill_in(azure.vault_name, cluster, fleet)}.vault.azure.net",
            "tenantId": azure.tenant_id,
            "serviceAccountRef": account,
        }
        annotations = {
            "azure.workload.identity/client-id": azure.client_id,
            "azure.workload.identity/tenant-id": azure.tenant_id,
        }
        return "azure-key-vault", {"azurekv": spec}, annotations
    gcp = backend.gcp
    if gcp is None:
        raise ValueError(f"cluster {c.name}: fleet.security.secrets.gcp is not configured")
    project = fill_in(gcp.project_id, cluster, fleet)
    crossplane = fleet.fleet.crossplane
    spec = {
        "projectID": project,
        "auth": {
            "workloadIdentity": {
                "clusterLocation": c.region,
                "clusterName": c.name,
                # the GKE cluster's own project (where Crossplane creates it), which may differ from the secrets'
                "clusterProjectID": crossplane.gcp.project if crossplane and crossplane.gcp else project,
                "serviceAccountRef": account,
            }
        },
    }
    gsa = fill_in(gcp.service_account, cluster, fleet, project=project)
    return "gcp-secret-manager", {"gcpsm": spec}, {"iam.gke.io/gcp-service-account": gsa}


def runs(cluster: ResolvedCluster, chart: str) -> bool:
    """Whether the cluster runs a platform component installed from ``chart``."""
    return any(c.component.chart.name == chart for c in cluster.components)


def app_external_secrets(app: App, fleet: ResolvedFleet) -> list[dict[str, Any]]:
    """One ExternalSecret per secret the app declares, in the app's namespace (references only, no values)."""
    backend = fleet.fleet.security.secrets
    if backend is None or not app.secrets:
        return []
    documents = []
    for secret in sorted(app.secrets, key=lambda s: s.name):  # entry order never changes the output
        spec: dict[str, Any] = {
            "refreshInterval": secret.refresh_interval,
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": backend.store_name},
            "target": {"name": secret.name, "creationPolicy": "Owner", "deletionPolicy": "Retain"},
        }
        if secret.keys:
            spec["data"] = [
                {"secretKey": key, "remoteRef": {"key": secret.remote_key, "property": key}} for key in secret.keys
            ]
        else:
            spec["dataFrom"] = [{"extract": {"key": secret.remote_key}}]
        documents.append(
            {
                "apiVersion": ESO_API,
                "kind": "ExternalSecret",
                "metadata": {
                    "name": secret.name,
                    "namespace": app.target_namespace,
                    "labels": {"fleet.gitops.io/app": app.name, "fleet.gitops.io/team": app.team},
                },
                "spec": spec,
            }
        )
    return documents
