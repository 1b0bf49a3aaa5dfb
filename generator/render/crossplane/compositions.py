"""Compositions per cloud and API, composed by function-pythonic: each is one pipeline step whose input is a
Python script (``generator/data/composites/<cloud>_<what>.py`` after the shared ``_common.py``).

Scripts loop: any number of node groups, subnets, zones and taints, with no fixed slots and so no skipped
resources (a skipped patch-and-transform resource marks the XR not ready: function-patch-and-transform v0.8.0,
PR #137). Fleet-wide facts (sizes, engine versions, the API mode) go in the step's ``parameters``, so a script is
the same text for every fleet. The same scripts run offline in :mod:`generator.render.crossplane.engine`.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from generator.inventory.models import AzureAdGroup
from generator.render.crossplane.api import CACHE, CLUSTER, DATABASE, DNS_FAILOVER, NETWORK
from generator.render.crossplane.common import API_LABEL, PROVIDER_LABEL, Mode, Obj
from generator.render.crossplane.engine import FUNCTION_NAME, INPUT_API_VERSION


@dataclass(frozen=True)
class Facts:
    """Fleet-wide facts the compositions are rendered with."""

    mode: Mode
    sizes: dict[str, dict[str, dict[str, Any]]]
    engine_versions: dict[str, dict[str, str]]
    azure_tenant_id: str | None = None
    azure_database_admins: AzureAdGroup | None = None


def script(name: str) -> str:
    """The composite script ``name`` (e.g. ``aws_eks``) with the shared helpers in front: one module."""
    folder = importlib.resources.files("generator").joinpath("data/composites")
    common = folder.joinpath("_common.py").read_text(encoding="utf-8")
    body = folder.joinpath(f"{name}.py").read_text(encoding="utf-8")
    return common.rstrip("\n") + "\n\n\n" + body


def script_resource_kinds(name: str) -> set[str]:
    """The provider API groups a script composes (its literal ``*.m.upbound.io/v…`` apiVersions)."""
    return set(re.findall(r'"([a-z0-9.]+\.m\.upbound\.io)/v[0-9a-z]+"', script(name)))


def _parameters(facts: Facts, **extra: Any) -> Obj:
    mode = facts.mode
    return {"legacy": mode.legacy, "namespace": mode.namespace, "networkApiVersion": mode.api_version,
            "networkKind": mode.xr_kind(NETWORK.kind), **extra}


def composition(name: str, facts: Facts, kind: str, cloud: str, api: str, parameters: Obj | None = None) -> Obj:
    """A Pipeline-mode Composition with one function-pythonic step running script ``<cloud>_<what>``."""
    mode = facts.mode
    module = name.replace("-", "_")
    return {
        "apiVersion": "apiextensions.crossplane.io/v1",
        "kind": "Composition",
        "metadata": {"name": name, "labels": {PROVIDER_LABEL: cloud, API_LABEL: api}},
        "spec": {
            "compositeTypeRef": {"apiVersion": mode.api_version, "kind": mode.xr_kind(kind)},
            "mode": "Pipeline",
            "pipeline": [{
                "step": "compose", "functionRef": {"name": FUNCTION_NAME},
                "input": {"apiVersion": INPUT_API_VERSION, "kind": "Composite", "step": module,
                          "parameters": _parameters(facts, **(parameters or {})), "composite": script(module)}}],
        },
    }


def aws_network(facts: Facts) -> Obj:
    """VPC, private and public subnet per zone, internet gateway, NAT gateway with EIP, route tables."""
    return composition("aws-network", facts, NETWORK.kind, "aws", NETWORK.short)


def aws_eks(facts: Facts) -> Obj:
    """EKS with its Network, IAM, security group, kubeconfig, OIDC provider and node groups."""
    return composition("aws-eks", facts, CLUSTER.kind, "aws", CLUSTER.short)


def aws_rds(facts: Facts) -> Obj:
    """RDS: subnet group, security group, encrypted instance."""
    return composition("aws-rds", facts, DATABASE.kind, "aws", DATABASE.short,
                       {"sizes": facts.sizes["database"]["aws"]})


def aws_elasticache(facts: Facts) -> Obj:
    """ElastiCache: subnet group, security group, encrypted Redis replication group."""
    return composition("aws-elasticache", facts, CACHE.kind, "aws", CACHE.short,
                       {"sizes": facts.sizes["cache"]["aws"]})


def gcp_network(facts: Facts) -> Obj:
    """VPC network, subnetwork with pod/service ranges, Cloud Router + NAT, private service access."""
    return composition("gcp-network", facts, NETWORK.kind, "gcp", NETWORK.short)


def gcp_gke(facts: Facts) -> Obj:
    """GKE with its Network, node service account and roles, node pools."""
    return composition("gcp-gke", facts, CLUSTER.kind, "gcp", CLUSTER.short)


def gcp_cloudsql(facts: Facts) -> Obj:
    """Cloud SQL with private IP."""
    return composition("gcp-cloudsql", facts, DATABASE.kind, "gcp", DATABASE.short,
                       {"sizes": facts.sizes["database"]["gcp"], "versions": facts.engine_versions["gcp"]})


def gcp_memorystore(facts: Facts) -> Obj:
    """Memorystore for Redis."""
    return composition("gcp-memorystore", facts, CACHE.kind, "gcp", CACHE.short,
                       {"sizes": facts.sizes["cache"]["gcp"]})


def azure_network(facts: Facts) -> Obj:
    """Resource group, VNet, node subnet."""
    return composition("azure-network", facts, NETWORK.kind, "azure", NETWORK.short)


def azure_aks(facts: Facts) -> Obj:
    """AKS with its Network, control-plane identity, default pool and one pool per further node group."""
    return composition("azure-aks", facts, CLUSTER.kind, "azure", CLUSTER.short)


def azure_postgresql(facts: Facts) -> Obj:
    """Azure Database for PostgreSQL flexible server, Entra ID only."""
    admins = facts.azure_database_admins
    extra: Obj = {"sizes": facts.sizes["database"]["azure"], "versions": facts.engine_versions["azure"]}
    if facts.azure_tenant_id:
        extra["tenantId"] = facts.azure_tenant_id
        if admins is not None:
            extra["admins"] = {"objectId": admins.object_id, "name": admins.name}
    return composition("azure-postgresql", facts, DATABASE.kind, "azure", DATABASE.short, extra)


def azure_redis(facts: Facts) -> Obj:
    """Azure Cache for Redis."""
    return composition("azure-redis", facts, CACHE.kind, "azure", CACHE.short,
                       {"sizes": {size: {"skuName": sku[0], "family": sku[1], "capacity": sku[2]}
                                  for size, sku in facts.sizes["cache"]["azure"].items()}})


def aws_dnsfailover(facts: Facts) -> Obj:
    """Route 53 health checks and PRIMARY/SECONDARY failover records for an app served by two clusters."""
    return composition("aws-dnsfailover", facts, DNS_FAILOVER.kind, "aws", DNS_FAILOVER.short)


Builder = Callable[[Facts], Obj]
CLUSTER_COMPOSITIONS: dict[str, Builder] = {"aws": aws_eks, "gcp": gcp_gke, "azure": azure_aks}
NETWORK_COMPOSITIONS: dict[str, Builder] = {"aws": aws_network, "gcp": gcp_network, "azure": azure_network}
DATABASE_COMPOSITIONS: dict[str, Builder] = {"aws": aws_rds, "gcp": gcp_cloudsql, "azure": azure_postgresql}
CACHE_COMPOSITIONS: dict[str, Builder] = {"aws": aws_elasticache, "gcp": gcp_memorystore, "azure": azure_redis}
DNS_FAILOVER_COMPOSITIONS: dict[str, Builder] = {"aws": aws_dnsfailover}
