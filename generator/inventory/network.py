"""The network plan of a cluster: availability zones and subnets carved from its VPC with ``ipaddress``.

Pure functions of the inventory (no I/O), shared by the loader's cross-checks and the cluster objects,
so what is validated is exactly what is rendered.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from generator.inventory.models import Cluster

ZONES = 3
"""Availability zones every cluster is spread over (subnets on AWS, node locations on GCP and Azure)."""


@dataclass(frozen=True)
class Subnet:
    """One subnet of a cluster's network."""

    name: str
    tier: str
    cidr: str
    zone: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The subnet as it appears in the cluster object."""
        data = {"name": self.name, "cidr": self.cidr}
        if self.zone is not None:
            data["zone"] = self.zone
        return data


@dataclass(frozen=True)
class NetworkPlan:
    """Zones, subnets and (GKE) control-plane range of one cluster."""

    zones: tuple[str, ...]
    subnets: tuple[Subnet, ...]
    control_plane_cidr: str | None = None

    def routable(self, cluster: Cluster) -> list[tuple[str, ipaddress.IPv4Network]]:
        """Ranges other networks reach when they peer: the VPC, and on GKE the pod and service ranges."""
        net = cluster.networking
        ranges = [("vpcCidr", ipaddress.IPv4Network(net.vpc_cidr))]
        if cluster.cloud == "gcp":
            ranges += [("podCidr", ipaddress.IPv4Network(net.pod_cidr)),
                       ("serviceCidr", ipaddress.IPv4Network(net.service_cidr))]
        return ranges


def default_zones(cluster: Cluster, region_zones: list[str]) -> list[str]:
    """The zones a cluster uses: as written, else the first three of its region."""
    return list(cluster.networking.zones) if cluster.networking.zones else list(region_zones[:ZONES])


def _split(network: ipaddress.IPv4Network, extra_bits: int) -> list[ipaddress.IPv4Network]:
    if network.prefixlen + extra_bits > 28:
        return []
    return list(network.subnets(prefixlen_diff=extra_bits))


def last_slash28(vpc: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    """The last /28 of ``vpc`` (prefix at most 28), computed, not found by listing every /28 in it."""
    return ipaddress.IPv4Network((int(vpc.network_address) + vpc.num_addresses - 16, 28))


#: Plans already computed, by (the cluster object, its region's zones): the checks and the Crossplane planner ask
#: for the same cluster's plan several times per render. Entries hold the cluster, so its id is not reused.
_PLANS: dict[tuple[int, tuple[str, ...]], tuple[Cluster, NetworkPlan]] = {}


def plan_network(cluster: Cluster, region_zones: list[str]) -> NetworkPlan:
    """``network_plan`` of a cluster, computed once per cluster object (models are frozen)."""
    key = (id(cluster), tuple(region_zones))
    known = _PLANS.get(key)
    if known is not None and known[0] is cluster:
        return known[1]
    if len(_PLANS) >= 1 << 14:
        _PLANS.clear()
    plan = _PLANS[key] = (cluster, network_plan(cluster, region_zones))
    return plan[1]


def network_plan(cluster: Cluster, region_zones: list[str]) -> NetworkPlan:
    """Subnets of ``cluster``: as written in the inventory, else carved from the VPC.

    AWS: the VPC is split in four; three quarters are the private subnets (one per zone), the last quarter
    is split in four again for the three public subnets. GCP and Azure: the first half of the VPC is the node
    subnet; GKE's private control plane takes the last /28 of the VPC.
    """
    net = cluster.networking
    vpc = ipaddress.IPv4Network(net.vpc_cidr)
    zones = default_zones(cluster, region_zones)
    if cluster.cloud == "aws":
        quarters = _split(vpc, 2)
        private = list(net.private_subnets) if net.private_subnets else [str(q) for q in quarters[:ZONES]]
        public_default = [str(q) for q in _split(quarters[3], 2)[:ZONES]] if quarters else []
        public = list(net.public_subnets) if net.public_subnets else public_default
        subnets = [Subnet(f"private-{z}", "private", c, z) for z, c in zip(zones, private, strict=False)]
        subnets += [Subnet(f"public-{z}", "public", c, z) for z, c in zip(zones, public, strict=False)]
        return NetworkPlan(tuple(zones), tuple(subnets))
    halves = _split(vpc, 1)
    nodes = net.private_subnets[0] if net.private_subnets else (str(halves[0]) if halves else str(vpc))
    control_plane = None
    if cluster.cloud == "gcp":
        control_plane = str(last_slash28(vpc)) if vpc.prefixlen <= 28 else None
    return NetworkPlan(tuple(zones), (Subnet("nodes", "private", nodes),), control_plane)


def check_plan(cluster: Cluster, region_zones: list[str]) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems of a cluster's network plan, as (path below the cluster entry, message)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    net = cluster.networking
    vpc = ipaddress.IPv4Network(net.vpc_cidr)
    if len(region_zones) < ZONES:
        problems.append((("region",), f"region '{cluster.region}' has {len(region_zones)} availability zone(s); "
                                      f"fleetgen spreads every cluster over {ZONES}"))
    if net.zones is not None:
        if len(net.zones) != ZONES or len(set(net.zones)) != ZONES:
            problems.append((("networking", "zones"), f"give exactly {ZONES} distinct zones"))
        for index, zone in enumerate(net.zones):
            if zone not in region_zones:
                problems.append((("networking", "zones", index),
                                 f"'{zone}' is not a zone of {cluster.region}; expected one of: "
                                 f"{', '.join(region_zones)}"))
    if cluster.cloud != "aws" and net.public_subnets:
        problems.append((("networking", "publicSubnets"),
                         f"public subnets are only used on aws; {cluster.cloud} clusters have one node subnet"))
    if cluster.cloud != "aws" and net.private_subnets and len(net.private_subnets) != 1:
        problems.append((("networking", "privateSubnets"),
                         f"{cluster.cloud} clusters have exactly one node subnet (privateSubnets: [one CIDR])"))
    if cluster.cloud == "aws":
        for key, given in (("privateSubnets", net.private_subnets), ("publicSubnets", net.public_subnets)):
            if given is not None and len(given) != ZONES:
                problems.append((("networking", key), f"give exactly {ZONES} subnets, one per zone"))
        if vpc.prefixlen > 24:
            problems.append((("networking", "vpcCidr"),
                             f"{vpc} is too small to carve {2 * ZONES} subnets; use /24 or larger (e.g. /16)"))
    if cluster.cloud == "gcp" and vpc.prefixlen > 27:
        problems.append((("networking", "vpcCidr"), f"{vpc} is too small for nodes and a /28 control plane"))
    plan = plan_network(cluster, region_zones)
    seen: list[tuple[ipaddress.IPv4Network, str]] = []
    keyed = {s.cidr: ("privateSubnets" if s.tier == "private" else "publicSubnets") for s in plan.subnets}
    pod, service = ipaddress.IPv4Network(net.pod_cidr), ipaddress.IPv4Network(net.service_cidr)
    for subnet in plan.subnets:
        block = ipaddress.IPv4Network(subnet.cidr)
        where: tuple[str | int, ...] = ("networking", keyed[subnet.cidr])
        if not block.subnet_of(vpc):
            problems.append((where, f"subnet {block} is not inside vpcCidr {vpc}"))
        for other, name in seen:
            if block.overlaps(other):
                problems.append((where, f"subnet {block} overlaps subnet {other} ({name})"))
        for label, other in (("podCidr", pod), ("serviceCidr", service)):
            if block.overlaps(other):
                problems.append((where, f"subnet {block} overlaps {label} {other}"))
        seen.append((block, subnet.name))
    if plan.control_plane_cidr is not None:
        control = ipaddress.IPv4Network(plan.control_plane_cidr)
        if any(control.overlaps(b) for b, _ in seen):
            problems.append((("networking", "privateSubnets"),
                             f"the node subnet overlaps the GKE control-plane range {control} (last /28 of the VPC)"))
    return problems
