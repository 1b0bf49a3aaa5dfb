"""Crossplane's provider-vault, installed only when a cluster the hub composes reads its secrets from Vault: the
Provider, its DeploymentRuntimeConfig and the ClusterProviderConfig the composed Kubernetes auth objects reference
(generator/render/esoidentity.py ``vault_identity``; the composition side is ``compose_vault_auth`` in
generator/data/composites/_common.py).

No token in Git: the ClusterProviderConfig uses ``credentials.source: Kubernetes`` — provider-vault v4.0.1
(internal/clients/vault.go ``kubernetesAuth``) reads the provider pod's own service-account token from
/var/run/secrets/kubernetes.io/serviceaccount/token and logs in to Vault at ``mountPath`` with ``role``
(the CRD's CEL rule requires ``role`` with that source). The service account's name is pinned
(``provider-vault`` in crossplane-system) so the Vault role on the hub's mount can bind exactly it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from generator.inventory.models import VaultSecrets
from generator.render.crossplane.common import Obj
from generator.render.esoidentity import VAULT_PROVIDER_CONFIG

PROVIDER_NAME = "provider-vault"
RUNTIME_CONFIG_NAME = "vault-provider"
SERVICE_ACCOUNT = "provider-vault"
"""The provider pod's service account in crossplane-system (the subject the hub's Vault role binds)."""


def provider(pin: Mapping[str, Any]) -> list[Obj]:
    """The DeploymentRuntimeConfig (pinned service-account name) and the Provider, at the pinned version."""
    runtime = {"apiVersion": "pkg.crossplane.io/v1beta1", "kind": "DeploymentRuntimeConfig",
               "metadata": {"name": RUNTIME_CONFIG_NAME},
               "spec": {"serviceAccountTemplate": {"metadata": {"name": SERVICE_ACCOUNT}}}}
    package = {"apiVersion": "pkg.crossplane.io/v1", "kind": "Provider", "metadata": {"name": PROVIDER_NAME},
               "spec": {"package": f"{pin['package']}:{pin['version']}",
                        "runtimeConfigRef": {"apiVersion": "pkg.crossplane.io/v1beta1",
                                             "kind": "DeploymentRuntimeConfig", "name": RUNTIME_CONFIG_NAME}}}
    return [runtime, package]


def provider_config(vault: VaultSecrets, config_group: str) -> Obj:
    """The ClusterProviderConfig: the fleet's Vault address (and Enterprise namespace), Kubernetes auth."""
    spec: Obj = {"address": vault.server, "credentials": {"source": "Kubernetes"},
                 "mountPath": vault.provider_mount_path, "role": vault.provider_role}
    if vault.namespace:
        spec["namespace"] = vault.namespace
    return {"apiVersion": f"{config_group}/v1beta1", "kind": "ClusterProviderConfig",
            "metadata": {"name": VAULT_PROVIDER_CONFIG}, "spec": spec}
