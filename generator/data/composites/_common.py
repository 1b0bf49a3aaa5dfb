# Helpers shared by every composite script of fleetgen's Compositions. fleetgen puts this text in front of
# each script, so the Composition's input is one self-contained module for function-pythonic.
# Read the XR through `self.spec`, write composed resources through `self.resources[name](apiVersion, kind)`.
# A value read from an object is a pythonic Value: `bool(v)` says whether it is set, `v == True` reads a flag.
import base64
import json

from crossplane.pythonic import BaseComposite

NETWORK_LABEL = "platform.gitops.io/network"
ROLE_LABEL = "platform.gitops.io/role"
TIER_LABEL = "platform.gitops.io/tier"
SUBNET_LABEL = "platform.gitops.io/subnet"
ROUTE_TABLE_LABEL = "platform.gitops.io/route-table"
PROVIDER_LABEL = "platform.gitops.io/provider"
EFFECTS_UPPER = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}


def xr_name(xr):
    """The name the user gave the XR (legacy XRs get generated names; their claim's name is a label; a nested
    XR has no claim and keeps the name its parent gave it)."""
    if xr.parameters.legacy == True and xr.metadata.labels["crossplane.io/claim-name"]:
        return str(xr.metadata.labels["crossplane.io/claim-name"])
    return str(xr.metadata.name)


def selector(*labels, controller=False):
    """A resource selector: `matchControllerRef` (same XR) and/or labels."""
    found = {}
    if controller:
        found["matchControllerRef"] = True
    if labels:
        found["matchLabels"] = dict(labels)
    return found


def in_network(xr, *labels, name=None):
    """Select resources of the named network (default: the XR's own name)."""
    return selector((NETWORK_LABEL, name or xr_name(xr)), *labels)


def compose(xr, name, api_version, kind, labels=None, for_provider=None, managed=True, init_provider=None):
    """A composed resource; managed ones get the XR's ClusterProviderConfig and the given forProvider."""
    resource = xr.resources[name](api_version, kind)
    if xr.parameters.legacy == True and managed:
        resource.metadata.namespace = str(xr.parameters.namespace)
    for key, value in sorted((labels or {}).items()):
        resource.metadata.labels[key] = value
    if managed:
        resource.spec.providerConfigRef.kind = "ClusterProviderConfig"
        resource.spec.providerConfigRef.name = str(xr.spec.providerConfigName) if xr.spec.providerConfigName else "default"
        resource.spec.forProvider = dict(for_provider or {})
        if init_provider:
            resource.spec.initProvider = dict(init_provider)
    return resource


def tags(xr, **extra):
    """The XR's tags plus extra ones, as a plain dict."""
    found = {str(k): str(v) for k, v in xr.spec.tags} if xr.spec.tags else {}
    found.update(extra)
    return found


def labels_of(value):
    """A string map of the XR as a plain dict ({} when unset)."""
    return {str(k): str(v) for k, v in value} if value else {}


def nested_network(xr, cloud):
    """The cluster's Network XR, composed by the cluster composition (named like the cluster)."""
    params = xr.parameters
    network = compose(xr, "network", str(params.networkApiVersion), str(params.networkKind), managed=False)
    network.metadata.name = xr_name(xr)
    selection = {"compositionSelector": {"matchLabels": {PROVIDER_LABEL: cloud}}}
    net = xr.spec.networking
    spec = {"cloudProvider": cloud, "region": str(xr.spec.region), "tags": tags(xr),
            "vpcCidr": str(net.vpcCidr), "podCidr": str(net.podCidr), "serviceCidr": str(net.serviceCidr),
            "zones": [str(z) for z in net.zones], "subnets": plain(net.subnets)}
    if xr.spec.providerConfigName:
        spec["providerConfigName"] = str(xr.spec.providerConfigName)
    if params.legacy == True:
        spec.update(selection)
    else:
        spec["crossplane"] = selection
    network.spec = spec
    return network


def plain(value):
    """A Value read from an object as plain JSON data."""
    return json.loads(format(value, "json"))


def node_groups(xr):
    """The XR's node groups, any number, in order."""
    return list(xr.spec.nodeGroups) if xr.spec.nodeGroups else []


# --- The hub's Flux signs in to GKE/AKS spokes with workload identity (generator/render/crossplane/hub_identity.py)
# The grants it needs on each cluster; the XR carries the hub's identity in spec.networking.hubAccess.
HUB_FLUX_GKE_ROLE = "roles/container.admin"
HUB_FLUX_AKS_ROLES = {"cluster-user": "Azure Kubernetes Service Cluster User Role",
                      "rbac-cluster-admin": "Azure Kubernetes Service RBAC Cluster Admin"}


def hub_flux_gke_grant(xr, project):
    """GKE: the hub's Flux service account may get the cluster (endpoint, CA) and administer its Kubernetes API.
    GKE IAM binds at the project, so spokes of one project share the binding: no cluster's deletion revokes it
    (managementPolicies without Delete)."""
    account = xr.spec.networking.hubAccess.fluxGcpServiceAccount
    if not account:
        return None
    grant = compose(xr, "hub-flux-container-admin", "cloudplatform.gcp.m.upbound.io/v1beta1", "ProjectIAMMember",
                    for_provider={"project": project, "role": HUB_FLUX_GKE_ROLE, "member": f"serviceAccount:{account}"})
    grant.spec.managementPolicies = ["Observe", "Create", "Update", "LateInitialize"]
    return grant


def hub_flux_aks_grants(xr, cluster):
    """AKS: Entra ID integration with Azure RBAC for Kubernetes authorization, and the hub's Flux identity's roles
    on this cluster (the AKS API calls Flux makes, and cluster-admin inside it)."""
    principal = xr.spec.networking.hubAccess.fluxAzurePrincipalId
    if not principal:
        return
    cluster.spec.forProvider.azureActiveDirectoryRoleBasedAccessControl = {"azureRbacEnabled": True}
    for name, role in HUB_FLUX_AKS_ROLES.items():
        assignment = compose(xr, f"hub-flux-{name}", "authorization.azure.m.upbound.io/v1beta1", "RoleAssignment",
                             for_provider={"roleDefinitionName": role, "principalId": str(principal),
                                           "principalType": "ServicePrincipal"})
        assignment.spec.forProvider.scope = cluster.status.atProvider.id


def compose_vault_auth(xr, host, ca_base64):
    """Vault's Kubernetes auth for this cluster (generator/render/esoidentity.py vault_identity), through
    provider-vault v4.0.1: the mount (auth Backend, type kubernetes, at the store's mountPath), its config (the
    cluster's API endpoint and base64 CA from the composed cluster's status: held back until reported) and the
    store's role, bound to exactly its service account and namespace with the fleet's policies."""
    vault = xr.spec.secretsIdentity.vault
    config_ref = {"kind": "ClusterProviderConfig", "name": str(vault.providerConfigName)}
    mount = {ROLE_LABEL: "vault-auth"}
    backend = compose(xr, "vault-auth-backend", "auth.vault.m.upbound.io/v1alpha1", "Backend", labels=mount,
                      for_provider={"type": "kubernetes", "path": str(vault.mountPath),
                                    "description": f"Kubernetes auth of cluster {xr_name(xr)} (fleetgen)"})
    config = compose(xr, "vault-auth-config", "kubernetes.vault.m.upbound.io/v1alpha1", "AuthBackendConfig",
                     for_provider={"backendSelector": selector(*mount.items(), controller=True)})
    config.spec.forProvider.kubernetesHost = host
    # the status holds the PEM base64-encoded; Vault wants the PEM itself
    config.spec.forProvider.kubernetesCaCert = base64.b64decode(str(ca_base64)).decode() if ca_base64 else ca_base64
    role = compose(xr, "vault-auth-role", "kubernetes.vault.m.upbound.io/v1alpha1", "AuthBackendRole", for_provider={
        "backendSelector": selector(*mount.items(), controller=True), "roleName": str(vault.roleName),
        "boundServiceAccountNames": [str(vault.serviceAccount)],
        "boundServiceAccountNamespaces": [str(vault.namespace)],
        "tokenPolicies": [str(p) for p in vault.policies]})
    for resource in (backend, config, role):
        resource.spec.providerConfigRef = config_ref
