"""How the hub's Flux signs in to the spokes it bootstraps: Flux's workload identity, per cloud.

The spoke's HelmRelease and Kustomization take ``spec.kubeConfig.configMapRef``; the ConfigMap says which provider
builds the client and which cluster (fluxcd/pkg apis/meta v1.30.1 ``KubeConfigKey*``: ``provider``, ``cluster``,
``address``, ``ca.crt``, ``audiences``, ``serviceAccountName``; read by fluxcd/pkg auth v0.54.1
``utils.GetRESTConfig``, the version kustomize-controller v1.9.4 and helm-controller v1.6.3 of Flux 2.9.4 use).
``serviceAccountName`` is left out: the controllers sign in with their own identity (controller level).

- ``aws``: ``cluster`` = the EKS ARN; the hub's controllers use their IAM role (``hub.fluxRoleArn``).
- ``gcp``: ``cluster`` = ``projects/<project>/locations/<location>/clusters/<name>`` (auth/gcp/options.go
  ``clusterPattern``); the controllers get a token from ``google.DefaultTokenSource``
  (``GOOGLE_APPLICATION_CREDENTIALS``), call ``container.projects.locations.clusters.get`` for the endpoint and CA,
  and send the token to the API server.
- ``azure``: ``cluster`` = the AKS resource ID (auth/azure/options.go ``clusterPattern``); the controllers get
  tokens from azidentity's workload-identity credential, which needs all of ``AZURE_CLIENT_ID``,
  ``AZURE_TENANT_ID``, ``AZURE_FEDERATED_TOKEN_FILE`` and ``AZURE_AUTHORITY_HOST``
  (auth/azure/new_default_azure_credential.go), call ``managedClusters.Get`` and ``ListClusterUserCredentials``
  (the cluster must have Entra ID integration: ``AADProfile`` set) and send a token for the AKS server application
  ``6dae42f8-4368-4678-94ff-3960e28e3630``.

Each controller gets a projected service-account token of the audience the other cloud expects and the
configuration Flux's docs prescribe for controller-level federation from a cluster that is not GKE/AKS
(fluxcd/website content/en/flux/integrations/gcp.md and azure.md, "At the controller level", "If the cluster is
not GKE/AKS"; the hub is on AWS, and the mechanism only needs the hub's issuer trusted), applied as FluxInstance
``spec.kustomize.patches`` to kustomize-controller, helm-controller and their shards.
"""

from __future__ import annotations

import json
from typing import Any

from generator.inventory.models import CrossplaneSettings
from generator.inventory.resolve import ResolvedCluster
from generator.render.crossplane.common import Obj
from generator.yamlio import dump_documents

#: The controllers that apply objects on spokes (``spec.kubeConfig`` of Kustomization and HelmRelease).
FLUX_CONTROLLERS = ("kustomize-controller", "helm-controller")
FLUX_NAMESPACE = "flux-system"
#: The container of every Flux controller Deployment (fluxcd/flux2 v2.9.4 manifests).
CONTAINER = "manager"
TOKEN_DIR = "/var/run/service-account"
TOKEN_VOLUME = "hub-federation-tokens"
GCP_CONFIG_MAP = "flux-gcp-federation"
GCP_CONFIG_DIR = "/etc/workload-identity"
GCP_CONFIG_FILE = "credential-configuration.json"
#: The audience Entra ID's token exchange expects (auth/azure/provider.go ``GetAudiences``).
AZURE_AUDIENCE = "api://AzureADTokenExchange"
AZURE_AUTHORITY_HOST = "https://login.microsoftonline.com/"
#: Azure RBAC roles the hub's Flux identity gets on each AKS cluster: the AKS API calls Flux makes (Get,
#: ListClusterUserCredentials) and cluster-admin inside it (Azure RBAC for Kubernetes authorization).
AKS_ROLES = ("Azure Kubernetes Service Cluster User Role", "Azure Kubernetes Service RBAC Cluster Admin")
#: The IAM role the hub's Flux identity gets on each GKE cluster's project: container.clusters.get and
#: every Kubernetes permission (CRDs, ClusterRoles and their bindings, which the Flux Operator chart installs).
GKE_ROLE = "roles/container.admin"


def gke_cluster_id(settings: CrossplaneSettings, cluster: ResolvedCluster) -> str | None:
    """The GKE cluster's resource name (the composition names it after the cluster, in its region)."""
    if settings.gcp is None:
        return None
    return f"projects/{settings.gcp.project}/locations/{cluster.cluster.region}/clusters/{cluster.name}"


def aks_resource_group(cluster: str) -> str:
    """The resource group of an AKS cluster: its network's (composites/azure_network.py ``<name>-network``)."""
    return f"{cluster}-network"


def aks_cluster_id(settings: CrossplaneSettings, cluster: ResolvedCluster) -> str | None:
    """The AKS cluster's Azure resource ID."""
    if settings.azure is None:
        return None
    return (f"/subscriptions/{settings.azure.subscription_id}/resourceGroups/{aks_resource_group(cluster.name)}"
            f"/providers/Microsoft.ContainerService/managedClusters/{cluster.name}")


def kubeconfig_provider(settings: CrossplaneSettings, cluster: ResolvedCluster, eks_arn: str | None) -> Obj | None:
    """The ``kubeConfig.configMapRef`` data for a spoke, or None when the hub has no identity for its cloud (then
    the kubeconfig Secret the composition writes is used; the inventory checks refuse GKE/AKS spokes without one)."""
    cloud, hub = cluster.cluster.cloud, settings.hub
    if cloud == "aws" and eks_arn and hub.flux_role_arn:
        return {"provider": "aws", "cluster": eks_arn}
    gke = gke_cluster_id(settings, cluster) if cloud == "gcp" else None
    if gke and hub.flux_gcp:
        return {"provider": "gcp", "cluster": gke}
    aks = aks_cluster_id(settings, cluster) if cloud == "azure" else None
    if aks and hub.flux_azure:
        return {"provider": "azure", "cluster": aks}
    return None


def controller_subjects() -> list[str]:
    """The Kubernetes subjects the hub's Flux federates as (trust them in the GCP pool and the Azure identity)."""
    return [f"system:serviceaccount:{FLUX_NAMESPACE}:{c}" for c in FLUX_CONTROLLERS]


def gcp_credential_configuration(settings: CrossplaneSettings) -> str:
    """The external-account credential configuration (GCP workload identity federation from a file-sourced token,
    impersonating the hub's Flux service account; fluxcd/website gcp.md "At the controller level")."""
    assert settings.hub.flux_gcp is not None
    identity = settings.hub.flux_gcp
    config = {
        "universe_domain": "googleapis.com",
        "type": "external_account",
        "audience": f"//iam.googleapis.com/{identity.workload_identity_provider}",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": "https://sts.googleapis.com/v1/token",
        "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
                                             f"{identity.service_account}:generateAccessToken",
        "credential_source": {"file": f"{TOKEN_DIR}/gcp-token", "format": {"type": "text"}},
    }
    return json.dumps(config, indent=2) + "\n"


def hub_federation_documents(settings: CrossplaneSettings) -> list[Obj]:
    """Objects the patched controllers mount (``clusters/<hub>/flux-system/``, next to the FluxInstance)."""
    if settings.hub.flux_gcp is None:
        return []
    return [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": GCP_CONFIG_MAP, "namespace": FLUX_NAMESPACE,
                          "labels": {"app.kubernetes.io/part-of": "flux", "fleet.gitops.io/layer": "crossplane"}},
             "data": {GCP_CONFIG_FILE: gcp_credential_configuration(settings)}}]


def hub_flux_patches(settings: CrossplaneSettings) -> list[dict[str, Any]]:
    """FluxInstance ``spec.kustomize.patches`` giving the hub's kustomize-/helm-controller (and their shards,
    ``<controller>-<shard>``) the federated identities of the clouds it signs in to. A strategic-merge patch on the
    ``manager`` container: it adds to the env, mounts and volumes the Flux manifests already have."""
    hub = settings.hub
    env: list[Obj] = []
    tokens: list[Obj] = []
    mounts: list[Obj] = []
    volumes: list[Obj] = []
    if hub.flux_gcp is not None:
        # the projected token's audience is the provider's default allowed audience (https: form)
        tokens.append({"serviceAccountToken": {
            "audience": f"https://iam.googleapis.com/{hub.flux_gcp.workload_identity_provider}",
            "expirationSeconds": 3600, "path": "gcp-token"}})
        env.append({"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": f"{GCP_CONFIG_DIR}/{GCP_CONFIG_FILE}"})
        mounts.append({"name": GCP_CONFIG_MAP, "mountPath": GCP_CONFIG_DIR, "readOnly": True})
        # optional: the controllers must start before their first sync applies the ConfigMap (a bootstrap that
        # applies only the FluxInstance); the kubelet fills the volume in once it exists
        volumes.append({"name": GCP_CONFIG_MAP, "configMap": {"name": GCP_CONFIG_MAP, "optional": True}})
    if hub.flux_azure is not None and settings.azure is not None:
        tokens.append({"serviceAccountToken": {"audience": AZURE_AUDIENCE, "expirationSeconds": 3600,
                                               "path": "azure-token"}})
        env.extend([{"name": "AZURE_TENANT_ID", "value": settings.azure.tenant_id},
                    {"name": "AZURE_CLIENT_ID", "value": hub.flux_azure.client_id},
                    {"name": "AZURE_AUTHORITY_HOST", "value": AZURE_AUTHORITY_HOST},
                    {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": f"{TOKEN_DIR}/azure-token"}])
    if not tokens:
        return []
    mounts.insert(0, {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True})
    volumes.insert(0, {"name": TOKEN_VOLUME, "projected": {"sources": tokens}})
    patch = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hub-federation"},
             "spec": {"template": {"spec": {
                 "containers": [{"name": CONTAINER, "env": env, "volumeMounts": mounts}], "volumes": volumes}}}}
    return [{"target": {"kind": "Deployment", "name": f"({'|'.join(FLUX_CONTROLLERS)})(-.+)?"},
             "patch": dump_documents([patch]).removeprefix("---\n")}]
