"""Crossplane packages and credentials: Functions, Providers, DeploymentRuntimeConfigs, ClusterProviderConfigs.

No static keys anywhere: every provider pod signs in with its Kubernetes service-account token.
On the hub's own cloud that is the cloud's native pod identity (IRSA on EKS, workload identity on GKE);
for the other clouds the runtime config projects a service-account token with the cloud's audience and the
provider exchanges it (AWS web identity, GCP workload identity federation, Azure workload identity).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from generator.inventory.models import CrossplaneSettings
from generator.render.crossplane.common import Obj

CROSSPLANE_NAMESPACE = "crossplane-system"
PROVIDER_CONFIG_NAME = "default"
TOKEN_EXPIRY = 3600
AWS_TOKEN_DIR = "/var/run/secrets/aws"
GCP_TOKEN_DIR = "/var/run/secrets/gcp"
GCP_CONFIG_DIR = "/etc/gcp"
GCP_CREDENTIALS_CONFIGMAP = "gcp-workload-identity-federation"
AZURE_TOKEN_DIR = "/var/run/secrets/azure/tokens"
AZURE_TOKEN_FILE = "azure-identity-token"


def runtime_config_name(cloud: str) -> str:
    """Name of the DeploymentRuntimeConfig every provider of ``cloud`` runs with."""
    return f"{cloud}-providers"


def functions(pins: Mapping[str, Mapping[str, str]], overrides: Mapping[str, str]) -> list[Obj]:
    """The composition functions, pinned."""
    return [{"apiVersion": "pkg.crossplane.io/v1", "kind": "Function", "metadata": {"name": name},
             "spec": {"package": f"{pin['package']}:{overrides.get(name, pin['version'])}"}}
            for name, pin in sorted(pins.items())]


def providers(cloud: str, pin: Mapping[str, Any], members: Iterable[str], version: str) -> list[Obj]:
    """The provider family of ``cloud`` and exactly the members in ``members``, all on one version."""
    names = [pin["family"], *(f"provider-{cloud}-{member}" for member in sorted(set(members)))]
    return [{"apiVersion": "pkg.crossplane.io/v1", "kind": "Provider", "metadata": {"name": name},
             "spec": {"package": f"{pin['registry']}/{name}:{version}",
                      "runtimeConfigRef": {"apiVersion": "pkg.crossplane.io/v1beta1",
                                           "kind": "DeploymentRuntimeConfig", "name": runtime_config_name(cloud)}}}
            for name in names]


def _projected_token(name: str, audience: str, path: str) -> Obj:
    return {"name": name, "projected": {"sources": [{"serviceAccountToken": {
        "audience": audience, "expirationSeconds": TOKEN_EXPIRY, "path": path}}]}}


def gcp_credential_config(settings: CrossplaneSettings) -> str:
    """The external-account credential configuration of GCP workload identity federation (no secret in it)."""
    gcp = settings.gcp
    assert gcp is not None and gcp.workload_identity_provider is not None
    config = {
        "type": "external_account",
        "audience": f"//iam.googleapis.com/{gcp.workload_identity_provider}",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": "https://sts.googleapis.com/v1/token",
        "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
                                             f"{gcp.service_account}:generateAccessToken",
        "credential_source": {"file": f"{GCP_TOKEN_DIR}/token", "format": {"type": "text"}},
    }
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def provider_service_account(cloud: str) -> str:
    """The Kubernetes service account every provider of ``cloud``'s family runs as (in crossplane-system)."""
    return f"provider-{cloud}"


def runtime(cloud: str, settings: CrossplaneSettings, hub_cloud: str) -> list[Obj]:
    """The DeploymentRuntimeConfig of ``cloud``'s providers (and a ConfigMap it mounts, for GCP federation)."""
    tuning = settings.runtime
    container: Obj = {"name": "package-runtime",
                      "args": [f"--max-reconcile-rate={tuning.max_reconcile_rate}", f"--poll={tuning.poll}"],
                      "resources": tuning.resources.model_dump(mode="json")}
    pod: Obj = {"containers": [container]}
    annotations: dict[str, str] = {}
    extra: list[Obj] = []
    if cloud == "aws":
        assert settings.aws is not None
        if hub_cloud == "aws":
            annotations["eks.amazonaws.com/role-arn"] = settings.aws.role_arn
        else:
            pod["volumes"] = [_projected_token("aws-token", "sts.amazonaws.com", "token")]
            container["volumeMounts"] = [{"name": "aws-token", "mountPath": AWS_TOKEN_DIR, "readOnly": True}]
    elif cloud == "gcp":
        assert settings.gcp is not None
        if hub_cloud == "gcp":
            annotations["iam.gke.io/gcp-service-account"] = settings.gcp.service_account
        else:
            provider = settings.gcp.workload_identity_provider
            pod["volumes"] = [_projected_token("gcp-token", f"//iam.googleapis.com/{provider}", "token"),
                              {"name": "gcp-credential-config",
                               "configMap": {"name": GCP_CREDENTIALS_CONFIGMAP}}]
            container["volumeMounts"] = [
                {"name": "gcp-token", "mountPath": GCP_TOKEN_DIR, "readOnly": True},
                {"name": "gcp-credential-config", "mountPath": GCP_CONFIG_DIR, "readOnly": True}]
            container["env"] = [{"name": "GOOGLE_APPLICATION_CREDENTIALS",
                                 "value": f"{GCP_CONFIG_DIR}/credential-config.json"}]
            extra.append({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": GCP_CREDENTIALS_CONFIGMAP, "namespace": CROSSPLANE_NAMESPACE},
                          "data": {"credential-config.json": gcp_credential_config(settings)}})
    else:
        assert settings.azure is not None
        pod["volumes"] = [_projected_token("azure-token", "api://AzureADTokenExchange", AZURE_TOKEN_FILE)]
        container["volumeMounts"] = [{"name": "azure-token", "mountPath": AZURE_TOKEN_DIR, "readOnly": True}]
    spec: Obj = {"deploymentTemplate": {"spec": {"selector": {}, "template": {"spec": pod}}}}
    # One pinned service-account name per family, so federation subjects are exact
    # (system:serviceaccount:crossplane-system:provider-<cloud>; Entra federated credentials take no wildcards).
    spec["serviceAccountTemplate"] = {"metadata": {"name": provider_service_account(cloud)}}
    if annotations:
        spec["serviceAccountTemplate"]["metadata"]["annotations"] = annotations
    drc = {"apiVersion": "pkg.crossplane.io/v1beta1", "kind": "DeploymentRuntimeConfig",
           "metadata": {"name": runtime_config_name(cloud)}, "spec": spec}
    return [*extra, drc]


def provider_config(cloud: str, settings: CrossplaneSettings, hub_cloud: str, config_group: str) -> Obj:
    """The ClusterProviderConfig every composed resource of ``cloud`` references."""
    spec: Obj
    if cloud == "aws":
        assert settings.aws is not None
        if hub_cloud == "aws":
            spec = {"credentials": {"source": "IRSA"}}
        else:
            spec = {"credentials": {"source": "WebIdentity", "webIdentity": {
                "roleARN": settings.aws.role_arn,
                "tokenConfig": {"source": "Filesystem", "fs": {"path": f"{AWS_TOKEN_DIR}/token"}}}}}
    elif cloud == "gcp":
        assert settings.gcp is not None
        spec = {"projectID": settings.gcp.project, "credentials": {"source": "InjectedIdentity"}}
    else:
        azure = settings.azure
        assert azure is not None
        spec = {"credentials": {"source": "OIDCTokenFile"}, "clientID": azure.client_id,
                "tenantID": azure.tenant_id, "subscriptionID": azure.subscription_id,
                "oidcTokenFilePath": f"{AZURE_TOKEN_DIR}/{AZURE_TOKEN_FILE}"}
    return {"apiVersion": f"{config_group}/v1beta1", "kind": "ClusterProviderConfig",
            "metadata": {"name": PROVIDER_CONFIG_NAME}, "spec": spec}


def chained_provider_config(base: Obj, name: str, role_arn: str) -> Obj:
    """A copy of an AWS ClusterProviderConfig that then assumes ``role_arn`` (another account's role):
    provider-upjet-aws v2.6.0 ClusterProviderConfig ``spec.assumeRoleChain``."""
    spec = {**base["spec"], "assumeRoleChain": [{"roleARN": role_arn}]}
    return {**base, "metadata": {"name": name}, "spec": spec}
