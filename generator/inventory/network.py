"""The network plan of a cluster: availability zones and subnets carved from its VPC (integer address spans,
``cidr.Block``, written as ``ipaddress`` writes them).

Pure functions of the inventory (no I/O), shared by the loader's cross-checks and the cluster objects,
so what is validated is exactly what is rendered.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from generator.inventory.cidr import Block, block, block_at
from generator.inventory.models import Cluster

ZONES = 3
"""Availability zones a cluster is spread over unless ``networking.zones`` says otherwise (subnets on AWS, node
locations on GCP and Azure)."""
MAX_ZONES = 8
"""Most zones one cluster may use (bounds the XRD's lists; the region's own zones are the real limit)."""
MIN_ZONES = {"aws": 2, "gcp": 1, "azure": 1}
"""EKS needs subnets in at least two Availability Zones (Amazon EKS user guide, "VPC and subnet requirements");
a GKE regional cluster may place nodes in one zone, an AKS pool may use one zone."""


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

    def routable(self, cluster: Cluster) -> list[tuple[str, Block]]:
        """Ranges other networks reach when they peer (``routable_ranges``: the cluster's, not the plan's)."""
        return routable_ranges(cluster)


def routable_ranges(cluster: Cluster) -> list[tuple[str, Block]]:
    """Ranges other networks reach when they peer: the VPC, and on GKE the pod and service ranges."""
    net = cluster.networking
    ranges = [("vpcCidr", block(net.vpc_cidr))]
    if cluster.cloud == "gcp":
        ranges += [("podCidr", block(net.pod_cidr)), ("serviceCidr", block(net.service_cidr))]
    return ranges


def default_zones(cluster: Cluster, region_zones: list[str]) -> list[str]:
    """The zones a cluster uses: the list as written, else the first ``zones`` (a count, default 3) of its region."""
    zones = cluster.networking.zones
    if isinstance(zones, list):
        return list(zones)
    return list(region_zones[:ZONES if zones is None else zones])


def _bits(count: int) -> int:
    """Prefix bits that split a range into at least ``count`` equal parts."""
    return max(count - 1, 0).bit_length()


def _split(network: Block, extra_bits: int) -> list[Block]:
    """``network`` in ``2 ** extra_bits`` equal parts, none smaller than a /28 (else none)."""
    prefixlen = network.prefixlen + extra_bits
    if prefixlen > 28:
        return []
    size = 1 << (32 - prefixlen)
    return [block_at(network.first + index * size, prefixlen) for index in range(1 << extra_bits)]


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

    AWS, N zones: the VPC is split in the fewest equal parts that leave one over (N + 1 or more: four for three
    zones); the first N are the private subnets (one per zone), the last part is split again for the N public
    subnets. GCP and Azure: the first half of the VPC is the node subnet (regional: it spans the zones); GKE's
    private control plane takes the last /28 of the VPC.
    """
    net = cluster.networking
    vpc = block(net.vpc_cidr)
    zones = default_zones(cluster, region_zones)
    if cluster.cloud == "aws":
        count = len(zones)
        parts = _split(vpc, _bits(count + 1))
        private = list(net.private_subnets) if net.private_subnets else [str(q) for q in parts[:count]]
        public_default = [str(q) for q in _split(parts[-1], _bits(count))[:count]] if parts else []
        public = list(net.public_subnets) if net.public_subnets else public_default
        subnets = [Subnet(f"private-{z}", "private", c, z) for z, c in zip(zones, private, strict=False)]
        subnets += [Subnet(f"public-{z}", "public", c, z) for z, c in zip(zones, public, strict=False)]
        return NetworkPlan(tuple(zones), tuple(subnets))
    halves = _split(vpc, 1)
    nodes = net.private_subnets[0] if net.private_subnets else (str(halves[0]) if halves else str(vpc))
    control_plane = None
    if cluster.cloud == "gcp":
        control_plane = str(block_at(vpc.last - 15, 28)) if vpc.prefixlen <= 28 else None  # the last /28
    return NetworkPlan(tuple(zones), (Subnet("nodes", "private", nodes),), control_plane)


def check_plan(cluster: Cluster, region_zones: list[str]) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems of a cluster's network plan, as (path below the cluster entry, message); addresses are compared
    as integers (``cidr.Block``)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    net = cluster.networking
    vpc = block(net.vpc_cidr)
    zones = default_zones(cluster, region_zones)
    count = len(net.zones) if isinstance(net.zones, list) else (ZONES if net.zones is None else net.zones)
    least, most = MIN_ZONES[cluster.cloud], min(len(region_zones), MAX_ZONES)
    at: tuple[str | int, ...] = ("networking", "zones") if net.zones is not None else ("region",)
    if not least <= count <= most or len(set(zones)) != len(zones):
        why = " (EKS needs subnets in at least two Availability Zones)" if cluster.cloud == "aws" else ""
        note = "" if net.zones is not None else f"the default of {ZONES} zones does not fit: set networking.zones; "
        problems.append((at, f"{note}give {least} to {most} distinct zones of {cluster.region} "
                                f"({', '.join(region_zones)}){why}"))
    if isinstance(net.zones, list):
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
            if given is not None and len(given) != len(zones):
                problems.append((("networking", key), f"give exactly {len(zones)} subnets, one per zone"))
        largest = 28 - _bits(len(zones) + 1) - _bits(len(zones))  # every public subnet at least a /28
        if vpc.prefixlen > largest:
            problems.append((("networking", "vpcCidr"), f"{vpc} is too small to carve {2 * len(zones)} subnets "
                                                       f"for {len(zones)} zones; use /{largest} or larger (e.g. /16)"))
            return problems
    if cluster.cloud == "gcp" and vpc.prefixlen > 27:
        problems.append((("networking", "vpcCidr"), f"{vpc} is too small for nodes and a /28 control plane"))
    plan = plan_network(cluster, region_zones)
    seen: list[tuple[Block, str]] = []
    keyed = {s.cidr: ("privateSubnets" if s.tier == "private" else "publicSubnets") for s in plan.subnets}
    pod, service = block(net.pod_cidr), block(net.service_cidr)
    for subnet in plan.subnets:
        here = block(subnet.cidr)
        where: tuple[str | int, ...] = ("networking", keyed[subnet.cidr])
        if not here.subnet_of(vpc):
            problems.append((where, f"subnet {here} is not inside vpcCidr {vpc}"))
        for other, name in seen:
            if here.overlaps(other):
                problems.append((where, f"subnet {here} overlaps subnet {other} ({name})"))
        for label, other in (("podCidr", pod), ("serviceCidr", service)):
            if here.overlaps(other):
                problems.append((where, f"subnet {here} overlaps {label} {other}"))
        seen.append((here, subnet.name))
    if plan.control_plane_cidr is not None:
        control = block(plan.control_plane_cidr)
        if any(control.overlaps(b) for b, _ in seen):
            problems.append((("networking", "privateSubnets"),
                             f"the node subnet overlaps the GKE control-plane range {control} (last /28 of the VPC)"))
    return problems
