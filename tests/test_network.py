"""The network plan and its checks compare addresses as integers (``cidr.Block``): the plan equals the one carved
with ``ipaddress`` (the reference below, the code before), for random VPCs, zone counts and clouds."""

from __future__ import annotations

import ipaddress
import random

import pytest

from generator.inventory.models import Cluster
from generator.inventory.network import Subnet, check_plan, default_zones, network_plan

REGION_ZONES = [f"zone-{letter}" for letter in "abcdefgh"]


Plan = tuple[tuple[str, ...], tuple[Subnet, ...], str | None]


def _reference_plan(cluster: Cluster, region_zones: list[str]) -> Plan:
    """The plan as carved with ``ipaddress`` objects."""

    def split(network: ipaddress.IPv4Network, extra_bits: int) -> list[ipaddress.IPv4Network]:
        return [] if network.prefixlen + extra_bits > 28 else list(network.subnets(prefixlen_diff=extra_bits))

    def bits(count: int) -> int:
        return max(count - 1, 0).bit_length()

    net = cluster.networking
    vpc = ipaddress.IPv4Network(net.vpc_cidr)
    zones = default_zones(cluster, region_zones)
    if cluster.cloud == "aws":
        count = len(zones)
        parts = split(vpc, bits(count + 1))
        private = list(net.private_subnets) if net.private_subnets else [str(q) for q in parts[:count]]
        public_default = [str(q) for q in split(parts[-1], bits(count))[:count]] if parts else []
        public = list(net.public_subnets) if net.public_subnets else public_default
        subnets = [Subnet(f"private-{z}", "private", c, z) for z, c in zip(zones, private, strict=False)]
        subnets += [Subnet(f"public-{z}", "public", c, z) for z, c in zip(zones, public, strict=False)]
        return tuple(zones), tuple(subnets), None
    halves = split(vpc, 1)
    nodes = net.private_subnets[0] if net.private_subnets else (str(halves[0]) if halves else str(vpc))
    control = None
    if cluster.cloud == "gcp" and vpc.prefixlen <= 28:
        control = str(ipaddress.IPv4Network((int(vpc.network_address) + vpc.num_addresses - 16, 28)))
    return tuple(zones), (Subnet("nodes", "private", nodes),), control


def _random_cluster(rng: random.Random) -> Cluster:
    prefix = rng.randint(8, 30)
    vpc = ipaddress.IPv4Network((rng.getrandbits(32) & ~((1 << (32 - prefix)) - 1), prefix))
    networking: dict[str, object] = {
        "vpcCidr": str(vpc), "podCidr": "100.64.0.0/16", "serviceCidr": "172.20.0.0/16",
        "zones": rng.choice([None, 1, 2, 3, 4, 6, 8, ["zone-b", "zone-d"]]),
    }
    if rng.random() < 0.2 and prefix <= 24:
        networking["privateSubnets"] = [str(s) for s in list(vpc.subnets(prefixlen_diff=2))[:2]]
    return Cluster.model_validate({
        "name": "c", "cloud": rng.choice(["aws", "gcp", "azure"]), "region": "r", "environment": "dev",
        "networking": {k: v for k, v in networking.items() if v is not None},
    })


@pytest.mark.parametrize("seed", range(20))
def test_the_plan_equals_the_one_carved_with_ipaddress(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        cluster = _random_cluster(rng)
        plan = network_plan(cluster, REGION_ZONES)
        assert (plan.zones, plan.subnets, plan.control_plane_cidr) == _reference_plan(cluster, REGION_ZONES)
        check_plan(cluster, REGION_ZONES)  # and the checks read every block of it
