"""The cluster objects of ``infrastructure/clusters/<cluster>.yaml``: one KubernetesCluster per workload cluster
(plus its Databases and Caches), every value taken from the resolved inventory."""

from __future__ import annotations

import ipaddress
from typing import Any

from generator.inventory.entries import platforms
from generator.inventory.models import CrossplaneSettings, Fleet
from generator.inventory.network import plan_network
from generator.inventory.resolve import ResolvedCluster
from generator.render import esoidentity
from generator.render.crossplane.api import CACHE, CLUSTER, DATABASE
from generator.render.crossplane.common import PROVIDER_LABEL, Mode, Obj
from generator.render.crossplane.packages import PROVIDER_CONFIG_NAME

CLOUD_LABEL = "platform.gitops.io/cloud"
ENVIRONMENT_LABEL = "platform.gitops.io/environment"
FLEET_CLUSTER_LABEL = "fleet.gitops.io/cluster"


def kubeconfig_secret(cluster: str) -> str:
    """Name of the Secret (next to the cluster object) the composition writes the kubeconfig to."""
    return f"{cluster}-kubeconfig"


def dns_service_ip(service_cidr: str) -> str:
    """The cluster DNS service address: the tenth address of the service range."""
    return str(ipaddress.IPv4Network(service_cidr).network_address + 10)


def account(settings: CrossplaneSettings, cloud: str) -> str | None:
    """The cloud account a cluster lives in: AWS account, GCP project or Azure subscription."""
    if cloud == "aws":
        return settings.aws.account_id if settings.aws else None
    if cloud == "gcp":
        return settings.gcp.project if settings.gcp else None
    return settings.azure.subscription_id if settings.azure else None


def tags(fleet: Fleet, cluster: ResolvedCluster, **extra: str) -> dict[str, str]:
    """Tags/labels put on every cloud resource (lowercase values, valid as GCP labels too)."""
    return {"fleet": fleet.organization, "environment": cluster.cluster.environment,
            "cluster": cluster.name, "managed-by": "fleetgen", **extra}


def envelope(mode: Mode, kind: str, name: str, labels: dict[str, str], spec: Obj, selector: dict[str, str]) -> Obj:
    """A composite (v2) or claim (legacy) in the cluster-object namespace, selecting its composition by cloud (with
    maps of its own: documents that share ``labels``, ``selector`` or ``spec`` values share no map)."""
    selection = {"compositionSelector": {"matchLabels": dict(selector)}}
    body = {**selection, **spec} if mode.legacy else {"crossplane": selection, **spec}
    return {"apiVersion": mode.api_version, "kind": kind,
            "metadata": {"name": name, "namespace": mode.namespace, "labels": dict(labels)}, "spec": body}


def eks_cluster_arn(settings: CrossplaneSettings, cluster: ResolvedCluster) -> str | None:
    """The ARN of a spoke's EKS cluster (the composition names it after the cluster)."""
    if settings.aws is None:
        return None
    return f"arn:aws:eks:{cluster.cluster.region}:{settings.aws.account_id}:cluster/{cluster.name}"


def hub_access(fleet: Fleet, cluster: ResolvedCluster, hub: ResolvedCluster | None) -> Obj:
    """How the hub reaches this cluster's API server (checked reachable by ``checks._check_reachability``):
    a public endpoint admitting only the hub's egress CIDRs, or a private one peered with the hub's network."""
    settings = fleet.crossplane
    assert settings is not None
    access: Obj = {"endpoint": "private" if cluster.cluster.networking.private_endpoint else "public"}
    if cluster.cluster.cloud == "aws" and settings.hub.flux_role_arn:
        access["fluxRoleArn"] = settings.hub.flux_role_arn  # the hub's Flux signs in with it (EKS access entry)
    if cluster.cluster.cloud == "gcp" and settings.hub.flux_gcp:  # granted on the project (hub_identity.py)
        access["fluxGcpServiceAccount"] = settings.hub.flux_gcp.service_account
    if cluster.cluster.cloud == "azure" and settings.hub.flux_azure:  # granted on the AKS cluster
        access["fluxAzurePrincipalId"] = settings.hub.flux_azure.principal_id
    if access["endpoint"] == "public":
        access["allowedCidrs"] = list(settings.hub.egress_cidrs)
        return access
    network = settings.hub.network
    if hub is not None and network is not None and hub.cluster.cloud == cluster.cluster.cloud == "aws":
        access["peering"] = {"hubCidr": hub.cluster.networking.vpc_cidr, "hubRegion": hub.cluster.region,
                             "hubVpcId": network.vpc_id, "hubRouteTableIds": list(network.route_table_ids)}
        if settings.aws is not None:
            access["peering"]["hubAccountId"] = settings.aws.account_id
    return access


def secrets_identity(fleet: Fleet, cluster: ResolvedCluster) -> Obj | None:
    """The cloud-side grant External Secrets needs on this cluster, composed with it (generator/render/esoidentity):
    GKE — the store's Kubernetes service account may act as the secrets project's Google service account (whose
    project may differ from the cluster's); EKS — a Pod Identity role and association for the ESO controller
    (chained to a role in the secrets account when it differs); AKS — a federated credential on the fleet's ESO
    identity for the cluster's OIDC issuer; Vault (EKS, GKE) — a Kubernetes auth mount for the cluster and the
    store's role on it."""
    aws = esoidentity.aws_identity(fleet, cluster)
    if aws is not None:
        return {"aws": aws.as_spec()}
    azure = esoidentity.azure_identity(fleet, cluster)
    if azure is not None:
        return {"azure": azure}
    vault = esoidentity.vault_identity(fleet, cluster)
    if vault is not None:
        return {"vault": vault}
    backend = fleet.security.secrets
    settings = fleet.crossplane
    c = cluster.cluster
    if backend is None or backend.gcp is None or settings is None or settings.gcp is None or c.cloud != "gcp" \
            or cluster.settings.secrets_backend != "cloud":
        return None
    values = {"cluster": c.name, "environment": c.environment, "region": c.region,
              "organization": fleet.organization}
    project = backend.gcp.project_id.format(project="", **values)
    email = backend.gcp.service_account.format(project=project, **values)
    subject = f"{backend.namespace}/{backend.service_account}"
    return {"serviceAccountId": f"projects/{project}/serviceAccounts/{email}",
            "member": f"serviceAccount:{settings.gcp.project}.svc.id.goog[{subject}]"}


def cluster_spec(fleet: Fleet, cluster: ResolvedCluster, hub: ResolvedCluster | None = None) -> Obj:
    """The portable spec of a KubernetesCluster (the seed's fields)."""
    settings = fleet.crossplane
    assert settings is not None
    c = cluster.cluster
    zones = platforms()["clouds"][c.cloud]["regions"][c.region]
    plan = plan_network(c, zones)
    groups = []
    for group in cluster.settings.node_groups:
        entry: Obj = {"name": group.name, "instanceType": group.instance_type, "minSize": group.min_size,
                      "maxSize": group.max_size, "desiredSize": group.desired_size, "diskSizeGb": group.disk_size_gb}
        if group.labels:
            entry["labels"] = dict(sorted(group.labels.items()))
        if group.taints:
            entry["taints"] = [{"key": t.key, "value": t.value, "effect": t.effect} for t in group.taints]
        groups.append(entry)
    subnets: dict[str, list[dict[str, str]]] = {}
    for subnet in plan.subnets:
        subnets.setdefault(subnet.tier, []).append(subnet.as_dict())
    networking: Obj = {"vpcCidr": c.networking.vpc_cidr, "podCidr": c.networking.pod_cidr,
                       "serviceCidr": c.networking.service_cidr,
                       "dnsServiceIp": dns_service_ip(c.networking.service_cidr),
                       "privateEndpoint": c.networking.private_endpoint, "zones": list(plan.zones),
                       "subnets": subnets, "hubAccess": hub_access(fleet, cluster, hub)}
    if plan.control_plane_cidr:
        networking["controlPlaneCidr"] = plan.control_plane_cidr
    spec: Obj = {"cloudProvider": c.cloud, "region": c.region, "environment": c.environment}
    cloud_account = account(settings, c.cloud)
    if cloud_account:
        spec["account"] = cloud_account
    spec.update({"providerConfigName": PROVIDER_CONFIG_NAME, "tags": tags(fleet, cluster),
                 "kubernetes": {"version": cluster.settings.kubernetes_version}, "nodeGroups": groups,
                 "networking": networking, "kubeconfigSecretName": kubeconfig_secret(c.name)})
    identity = secrets_identity(fleet, cluster)
    if identity:
        spec["secretsIdentity"] = identity
    return spec


def cluster_documents(fleet: Fleet, cluster: ResolvedCluster, mode: Mode,
                      hub: ResolvedCluster | None = None) -> list[Obj]:
    """The KubernetesCluster of one workload cluster, then its Databases and Caches."""
    c = cluster.cluster
    # The inventory's cluster labels, then fleetgen's own (reserved prefixes: see models.RESERVED_LABEL_PREFIXES).
    labels = {**dict(sorted(cluster.settings.labels.items())),
              CLOUD_LABEL: c.cloud, ENVIRONMENT_LABEL: c.environment, FLEET_CLUSTER_LABEL: c.name}
    selector: dict[str, str] = {PROVIDER_LABEL: c.cloud}
    docs = [envelope(mode, CLUSTER.kind, c.name, labels, cluster_spec(fleet, cluster, hub), selector)]
    common: dict[str, Any] = {"cloudProvider": c.cloud, "region": c.region, "providerConfigName": PROVIDER_CONFIG_NAME,
                              "network": {"name": c.name, "cidr": c.networking.vpc_cidr}}
    for db in sorted(c.databases, key=lambda d: d.name):  # by name: the inventory's order never matters
        spec = {**common, "network": dict(common["network"]), "tags": tags(fleet, cluster, database=db.name),
                "engine": db.engine, "version": db.version, "size": db.size, "storageGb": db.storage_gb,
                "highAvailability": db.high_availability}
        docs.append(envelope(mode, DATABASE.kind, f"{c.name}-{db.name}", labels, spec, selector))
    for cache in sorted(c.caches, key=lambda d: d.name):
        spec = {**common, "network": dict(common["network"]), "tags": tags(fleet, cluster, cache=cache.name),
                "size": cache.size, "highAvailability": cache.high_availability}
        docs.append(envelope(mode, CACHE.kind, f"{c.name}-{cache.name}", labels, spec, selector))
    return docs
