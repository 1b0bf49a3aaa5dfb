"""Inventory rules of the infrastructure repo, run by the loader's cross-checks (errors carry file:line).

Only fleets with a ``fleet.crossplane`` section render an infrastructure repo, so only they are checked
(except databases and caches, which need that section).
"""

from __future__ import annotations

import re
from typing import Any

from generator.errors import Problem
from generator.inventory.cidr import Block, overlapping_pairs
from generator.inventory.crossplane_data import crossplane_data
from generator.inventory.entries import Inventory, Layer, Sourced, platforms, problem_at, settings_layers
from generator.inventory.models import Cluster, NodeGroup, built_in_node_groups
from generator.inventory.network import check_plan, routable_ranges

FLEET_TOP_DIRS = ("apps", "charts", "clusters", "infrastructure")
AKS_POOL_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")
CRITICAL_ADDONS = ("CriticalAddonsOnly", "true", "NoSchedule")


def node_group_layer(inv: Inventory, source: Sourced[Cluster]) -> tuple[Layer | Sourced[Cluster] | None, list[Any]]:
    """Where a cluster's node groups come from (the last layer that sets them; lists replace) and their raw list."""
    if "nodeGroups" in source.raw:
        return source, list(source.raw["nodeGroups"] or [])
    for layer in reversed(settings_layers(inv, source)[:-1]):
        if layer.file is not None and "nodeGroups" in layer.data:
            return layer, list(layer.data["nodeGroups"] or [])
    return None, [g.model_dump(by_alias=True) for g in built_in_node_groups(source.item.cloud)]


def _where(
    inv: Inventory,
    origin: Layer | Sourced[Cluster] | None,
    source: Sourced[Cluster],
    sub: tuple[str | int, ...],
    message: str,
) -> Problem:
    if origin is None:
        return problem_at(
            source,
            ("name",),
            message + " (from the built-in default node group; set nodeGroups on this cluster or its environment)",
        )
    if origin is source:
        return problem_at(source, ("nodeGroups", *sub), message)
    return problem_at(
        origin, ("nodeGroups", *sub), f"{message} (node groups of {source.item.cloud} cluster '{source.item.name}')"
    )


def _dotted(sub: tuple[str | int, ...]) -> str:
    return "".join(f".{part}" for part in sub)


def _check_node_groups(inv: Inventory, source: Sourced[Cluster], validated: dict[str, NodeGroup]) -> list[Problem]:
    """``validated``: node groups already validated, by the ``repr`` of their raw data (exact types and key order),
    as clusters and layers repeat the same groups."""
    data = crossplane_data()
    limits, cloud = data["limits"], source.item.cloud
    origin, raw = node_group_layer(inv, source)
    groups = []
    for group_data in raw:
        key = repr(group_data)
        group = validated.get(key)
        if group is None:
            group = validated[key] = NodeGroup.model_validate(group_data)
        groups.append(group)
    problems: list[Problem] = []
    if len(groups) > limits["nodeGroups"]:
        problems.append(
            _where(
                inv,
                origin,
                source,
                (),
                f"at most {limits['nodeGroups']} node groups (the XRD's bound), found {len(groups)}",
            )
        )
    pattern = data["instanceTypePatterns"][cloud]
    seen: set[str] = set()
    for index, group in enumerate(groups):
        if group.name in seen:
            problems.append(_where(inv, origin, source, (index, "name"), f"duplicate node group name '{group.name}'"))
        seen.add(group.name)
        if not re.match(pattern, group.instance_type):
            problems.append(
                _where(
                    inv,
                    origin,
                    source,
                    (index, "instanceType"),
                    f"'{group.instance_type}' is not a {cloud} instance type (expected {pattern})",
                )
            )
        if len(group.taints) > limits["taints"]:
            problems.append(
                _where(
                    inv,
                    origin,
                    source,
                    (index, "taints"),
                    f"at most {limits['taints']} taints per node group",
                )
            )
        if cloud == "azure":
            if not AKS_POOL_NAME.match(group.name):
                problems.append(
                    _where(
                        inv,
                        origin,
                        source,
                        (index, "name"),
                        f"'{group.name}': AKS node pool names are 1-12 lowercase letters and digits",
                    )
                )
            taints = [(t.key, t.value, t.effect) for t in group.taints]
            if index == 0 and taints and taints != [CRITICAL_ADDONS]:
                problems.append(
                    _where(
                        inv,
                        origin,
                        source,
                        (index, "taints"),
                        "the first (system) AKS pool takes no taints but "
                        "CriticalAddonsOnly=true:NoSchedule (onlyCriticalAddonsEnabled)",
                    )
                )
    return problems


def _check_data_services(source: Sourced[Cluster], crossplane: bool, settings: Any) -> list[Problem]:
    cluster = source.item
    data = crossplane_data()
    problems: list[Problem] = []
    names: dict[str, str] = {}
    for section in ("databases", "caches"):
        for index, item in enumerate(getattr(cluster, section)):
            if not crossplane:
                problems.append(
                    problem_at(
                        source,
                        (section, index),
                        f"{section} are provisioned by Crossplane: add a fleet.crossplane section",
                    )
                )
                continue
            if item.name in names:
                problems.append(
                    problem_at(
                        source, (section, index, "name"), f"duplicate name '{item.name}' (also in {names[item.name]})"
                    )
                )
            names[item.name] = section
            if section == "caches":
                continue
            versions = data["databaseVersions"][item.engine]
            if item.version not in versions:
                problems.append(
                    problem_at(
                        source,
                        (section, index, "version"),
                        f"{item.engine} version '{item.version}' is not supported; "
                        f"expected one of: {', '.join(versions)}",
                    )
                )
            if cluster.cloud == "azure":
                if item.engine != "postgres":
                    problems.append(
                        problem_at(
                            source,
                            (section, index, "engine"),
                            "on azure, databases are PostgreSQL flexible servers (engine: postgres)",
                        )
                    )
                if item.high_availability:
                    problems.append(
                        problem_at(
                            source,
                            (section, index, "highAvailability"),
                            "zone-redundant HA is not composed on azure yet",
                        )
                    )
                if item.storage_gb not in data["azureStorageGb"]:
                    problems.append(
                        problem_at(
                            source,
                            (section, index, "storageGb"),
                            f"Azure flexible servers take one of: {', '.join(map(str, data['azureStorageGb']))} GiB",
                        )
                    )
                if settings is not None and (settings.azure is None or settings.azure.database_admins is None):
                    problems.append(
                        problem_at(
                            source,
                            (section, index),
                            "azure databases use Entra ID authentication only: "
                            "set fleet.crossplane.azure.databaseAdmins",
                        )
                    )
    return problems


def _check_path(inv: Inventory) -> list[Problem]:
    fleet = inv.fleet.item
    assert fleet.crossplane is not None
    prefix, path = fleet.git.path.strip("/"), fleet.crossplane.infrastructure_path.strip("/")
    clash = (
        (path.split("/")[0] in FLEET_TOP_DIRS)
        if not prefix
        else (path == prefix or path.startswith(prefix + "/") or prefix.startswith(path + "/"))
    )
    if not clash:
        return []
    return [
        problem_at(
            inv.fleet,
            ("crossplane", "infrastructurePath"),
            f"'{path}' overlaps the fleet tree (fleet.git.path '{prefix}'): the fleet and the "
            "infrastructure repo share one git repository, so give them sibling folders, e.g. "
            "git.path: fleet and infrastructurePath: infrastructure (the layout fleetgen renders)",
        )
    ]


def _check_identities(inv: Inventory, hub_cloud: str | None, clouds: set[str]) -> list[Problem]:
    settings = inv.fleet.item.crossplane
    assert settings is not None
    problems = []
    needs = {
        "aws": "aws: {accountId, roleArn} (the IAM role its providers assume, IRSA)",
        "gcp": "gcp: {project, serviceAccount} (+ workloadIdentityProvider when the hub is not on GKE)",
        "azure": "azure: {subscriptionId, tenantId, clientId} (workload identity)",
    }
    for cloud in sorted(clouds):
        if getattr(settings, cloud) is None:
            problems.append(
                problem_at(
                    inv.fleet, ("crossplane",), f"workload clusters run on {cloud}: set fleet.crossplane.{needs[cloud]}"
                )
            )
    if (
        "gcp" in clouds
        and settings.gcp is not None
        and hub_cloud != "gcp"
        and settings.gcp.workload_identity_provider is None
    ):
        problems.append(
            problem_at(
                inv.fleet,
                ("crossplane", "gcp"),
                f"the hub runs on {hub_cloud}, so GCP access uses workload identity federation: "
                "set workloadIdentityProvider to the pool provider (projects/<number>/locations/"
                "global/workloadIdentityPools/<pool>/providers/<provider>)",
            )
        )
    return problems


def _check_secrets_account(inv: Inventory, clouds: set[str]) -> list[Problem]:
    """EKS clusters' External Secrets roles in another account need a provider role there (esoidentity)."""
    fleet = inv.fleet.item
    backend = fleet.security.secrets
    settings = fleet.crossplane
    if "aws" not in clouds or backend is None or backend.aws is None or settings is None or settings.aws is None:
        return []
    aws = backend.aws
    if aws.account_id == settings.aws.account_id or aws.provider_role_arn is not None:
        return []
    return [problem_at(inv.fleet, ("security", "secrets", "aws", "accountId"),
                       f"secrets account {aws.account_id} is not the clusters' account {settings.aws.account_id}: "
                       "each EKS cluster's External Secrets role there is created by Crossplane through "
                       "providerRoleArn, a role in the secrets account the providers may assume "
                       "(arn:aws:iam::<secrets account>:role/<name>)")]


AZURE_FEDERATED_CREDENTIALS = 20
"""Federated identity credentials one user-assigned identity may have (Microsoft Entra workload identity limits)."""


def _check_federation_limit(inv: Inventory, workloads: list[Sourced[Cluster]]) -> list[Problem]:
    """Every AKS cluster federates the one ESO identity: Azure allows 20 credentials on it."""
    backend = inv.fleet.item.security.secrets
    aks = [c for c in workloads if c.item.cloud == "azure"]
    if backend is None or backend.azure is None or backend.azure.identity_id is None \
            or len(aks) <= AZURE_FEDERATED_CREDENTIALS:
        return []
    return [problem_at(inv.fleet, ("security", "secrets", "azure", "identityId"),
                       f"{len(aks)} AKS clusters would each federate this identity, Azure allows "
                       f"{AZURE_FEDERATED_CREDENTIALS} federated credentials per identity")]


def _check_peering(clusters: list[Sourced[Cluster]], routable: dict[str, list[tuple[str, Block]]]) -> list[Problem]:
    """Routable ranges of clusters that may peer (same environment, or the hub with anyone) must not overlap.

    One sweep per environment over its clusters' routable ranges and the hub's (inventory/cidr.py), so the check
    grows with the clusters and the overlaps found, not with every pair of clusters."""
    problems: list[Problem] = []
    order = {source.item.name: index for index, source in enumerate(clusters)}
    environments = sorted({source.item.environment for source in clusters})
    for environment in environments:
        members = [s for s in clusters if s.item.environment == environment or s.item.role == "hub"]
        ranges = [(net, (source, key, net))
                  for source in members for key, net in routable[source.item.name]]
        for (a, key_a, net_a), (b, key_b, net_b) in overlapping_pairs(ranges):
            if a is b or key_a == key_b == "vpcCidr":
                continue
            if order[a.item.name] > order[b.item.name]:
                a, key_a, net_a, b, key_b, net_b = b, key_b, net_b, a, key_a, net_a
            # report on the cluster whose GKE range is the extra routable one
            here, key, net, other_key, other_net, other = (
                (a, key_a, net_a, key_b, net_b, b.item) if key_b == "vpcCidr"
                else (b, key_b, net_b, key_a, net_a, a.item)
            )
            problems.append(
                problem_at(
                    here,
                    ("networking", key),
                    f"{net} overlaps {other_key} {other_net} of cluster '{other.name}', "
                    "which it may peer with (routable on GKE, so they must be disjoint)",
                )
            )
    return problems


def _check_reachability(
    inv: Inventory, hub: Sourced[Cluster] | None, workloads: list[Sourced[Cluster]]
) -> list[Problem]:
    """The hub must reach every spoke's API server (it installs Flux there): a public endpoint admits only
    ``fleet.crossplane.hub.egressCidrs``; a private one needs the peering the AWS composition creates with
    ``fleet.crossplane.hub.network`` (no cross-cloud path is composed)."""
    settings = inv.fleet.item.crossplane
    if settings is None or hub is None:
        return []
    hub_cloud, problems = hub.item.cloud, []
    for source in workloads:
        cluster = source.item
        where = ("networking", "privateEndpoint") if "privateEndpoint" in (source.raw.get("networking") or {}) \
            else ("networking",)
        if not cluster.networking.private_endpoint:
            if not settings.hub.egress_cidrs:
                problems.append(problem_at(source, where, (
                    f"the hub cannot reach cluster '{cluster.name}': its public API endpoint admits only the hub's "
                    "egress addresses, and fleet.crossplane.hub.egressCidrs is empty")))
        elif cluster.cloud != hub_cloud:
            problems.append(problem_at(source, where, (
                f"the hub ({hub_cloud}) cannot reach the private API endpoint of {cluster.cloud} cluster "
                f"'{cluster.name}': no cross-cloud network path is composed; set networking.privateEndpoint: false "
                "(public endpoint restricted to fleet.crossplane.hub.egressCidrs)")))
        elif hub_cloud != "aws":
            problems.append(problem_at(source, where, (
                f"the hub cannot reach the private API endpoint of '{cluster.name}': peering is composed for AWS "
                f"hubs only, not {hub_cloud}; set networking.privateEndpoint: false")))
        elif settings.hub.network is None:
            problems.append(problem_at(source, where, (
                f"the hub reaches the private API endpoint of '{cluster.name}' through VPC peering: set "
                "fleet.crossplane.hub.network: {vpcId, routeTableIds} (the hub's VPC and its route tables)")))
    return problems


# The hub's Flux signs in to GKE and AKS spokes with workload identity (kubeConfig.configMapRef, provider gcp/azure;
# generator/render/crossplane/hub_identity.py): the identity it federates to must be in the inventory.
HUB_FLUX_IDENTITY = {
    "gcp": "fluxGcp: {workloadIdentityProvider, serviceAccount} (the pool provider trusting the hub's issuer and "
           "the Google service account its kustomize-/helm-controller impersonate)",
    "azure": "fluxAzure: {clientId, principalId} (the managed identity its kustomize-/helm-controller federate to)",
}


def _check_hub_flux_identity(inv: Inventory, workloads: list[Sourced[Cluster]]) -> list[Problem]:
    """A GKE or AKS spoke needs the hub's Flux identity in that cloud: without it the hub could not sign in."""
    settings = inv.fleet.item.crossplane
    assert settings is not None
    problems = []
    for cloud, what in HUB_FLUX_IDENTITY.items():
        spokes = sorted(s.item.name for s in workloads if s.item.cloud == cloud)
        identity = settings.hub.flux_gcp if cloud == "gcp" else settings.hub.flux_azure
        if spokes and identity is None:
            where = ("crossplane", "hub") if "hub" in (inv.fleet.raw.get("crossplane") or {}) else ("crossplane",)
            problems.append(problem_at(inv.fleet, where, (
                f"the hub signs in to {cloud} cluster(s) {', '.join(spokes)} with Flux's workload identity: "
                f"set fleet.crossplane.hub.{what}")))
    return problems


def _check_engine(inv: Inventory) -> list[Problem]:
    """The Function package must be the release fleetgen runs offline (golden files show what the hub does)."""
    from importlib.metadata import version

    settings = inv.fleet.item.crossplane
    pinned = settings.function_versions.get("function-pythonic") if settings else None
    engine = f"v{version('crossplane-function-pythonic')}"
    if pinned is None or pinned == engine:
        return []
    return [problem_at(inv.fleet, ("crossplane", "functionVersions", "function-pythonic"), (
        f"'{pinned}' differs from the function-pythonic release fleetgen composes with offline ({engine}); "
        "pin that release (or upgrade fleetgen)"))]


def check_inventory(inv: Inventory, known: frozenset[int] = frozenset()) -> list[Problem]:
    """Every infrastructure-repo rule: paths, identities, node groups, network plans, peering, data services; the
    rules of one entry alone (network plan, node groups, data services, a GKE name) skipped for the ``known``
    entries, which passed them (generator/inventory/checkmemo.py)."""
    fleet = inv.fleet.item
    settings = fleet.crossplane
    problems: list[Problem] = []
    for source in inv.clusters:
        if id(source) not in known:
            problems.extend(_check_data_services(source, settings is not None, settings))
    if settings is None:
        return problems
    problems.extend(_check_path(inv))
    regions = platforms()["clouds"]
    hub = next((c.item for c in inv.clusters if c.item.role == "hub"), None)
    workloads = [c for c in inv.clusters if c.item.role == "workload"]
    problems.extend(_check_identities(inv, hub.cloud if hub else None, {c.item.cloud for c in workloads}))
    problems.extend(_check_secrets_account(inv, {c.item.cloud for c in workloads}))
    problems.extend(_check_federation_limit(inv, workloads))
    hub_source = next((c for c in inv.clusters if c.item.role == "hub"), None)
    problems.extend(_check_reachability(inv, hub_source, workloads))
    problems.extend(_check_hub_flux_identity(inv, workloads))
    problems.extend(_check_engine(inv))
    routable: dict[str, list[tuple[str, Block]]] = {}
    validated: dict[str, NodeGroup] = {}
    for source in inv.clusters:
        cluster = source.item
        zones = regions[cluster.cloud]["regions"].get(cluster.region)
        if zones is None:
            continue  # an unknown region is reported by the loader
        routable[cluster.name] = routable_ranges(cluster)
        if cluster.role != "workload" or id(source) in known:
            continue
        for sub, message in check_plan(cluster, zones):
            problems.append(problem_at(source, sub, message))
        problems.extend(_check_node_groups(inv, source, validated))
        if cluster.cloud == "gcp" and not cluster.name[0].isalpha():
            problems.append(problem_at(source, ("name",), "GKE cluster names start with a letter"))
    problems.extend(_check_peering([c for c in inv.clusters if c.item.name in routable], routable))
    return sorted(set(problems), key=lambda p: (p.file, p.line, p.column, p.field, p.message))
