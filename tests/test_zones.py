"""Zones are settable (``networking.zones``: a count or a list, checked against the region's zones in
generator/data/platforms.yaml) and the compositions spread over exactly those zones: AWS composes a private and a
public subnet, and their route-table associations, per zone with no fixed slots; GKE and AKS place nodes in them."""

from __future__ import annotations

import ipaddress
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_reference_fleet
from test_crossplane import edit_cluster, for_provider, rendered, resolved

from generator.errors import InventoryError
from generator.inventory.entries import platforms
from generator.inventory.loader import load_inventory
from generator.render.crossplane import build_infrastructure
from generator.verify.schema import CrdCatalogue, SchemaValidator

Obj = dict[str, Any]
CLUSTERS = {"aws": "prod-us-east-1", "gcp": "dev-us-central1", "azure": "prod-eastus"}
COMPOSITIONS = {"aws": ("aws-network", "aws-eks"), "gcp": ("gcp-network", "gcp-gke"),
                "azure": ("azure-network", "azure-aks")}


def region_zones(root: Path, cluster: str) -> list[str]:
    c = next(c.cluster for c in resolved(root).clusters if c.name == cluster)
    zones: list[str] = platforms()["clouds"][c.cloud]["regions"][c.region]
    return zones


def composed_for(root: Path, cloud: str) -> tuple[dict[str, Obj], dict[str, Obj], Obj]:
    """Network and cluster resources composed for the cloud's cluster, and its cluster object."""
    infra = build_infrastructure(resolved(root))
    items = rendered(infra)
    cluster = CLUSTERS[cloud]
    network, compute = (next(i for i in items[name] if i.xr["metadata"]["name"] == cluster)
                        for name in COMPOSITIONS[cloud])
    xr = next(d for d in infra.documents(f"clusters/{cluster}.yaml") if d["kind"] == "KubernetesCluster")
    return network.resources, compute.resources, xr


def refused(root: Path) -> list[tuple[str, int, str, str]]:
    with pytest.raises(InventoryError) as caught:
        load_inventory(root)
    return [(p.file, p.line, p.field, p.message) for p in caught.value.problems]


@pytest.mark.parametrize("count", [2, 3, 4])
def test_aws_composes_a_private_and_a_public_subnet_per_zone(tmp_path: Path, count: int) -> None:
    root = copy_reference_fleet(tmp_path)
    edit_cluster(root, CLUSTERS["aws"], lambda e: e["networking"].update(zones=count))
    network, eks, xr = composed_for(root, "aws")
    zones = region_zones(root, CLUSTERS["aws"])[:count]
    assert xr["spec"]["networking"]["zones"] == zones
    kinds = Counter(o["kind"] for o in network.values())
    assert kinds["Subnet"] == 2 * count and kinds["RouteTableAssociation"] == 2 * count
    vpc = ipaddress.IPv4Network(xr["spec"]["networking"]["vpcCidr"])
    blocks = []
    for tier in ("private", "public"):
        subnets = {n: for_provider(network, n) for n, o in network.items()
                   if o["kind"] == "Subnet" and o["metadata"]["labels"]["platform.gitops.io/tier"] == tier}
        assert sorted(s["availabilityZone"] for s in subnets.values()) == zones  # one per zone, no fixed slots
        blocks += [ipaddress.IPv4Network(s["cidrBlock"]) for s in subnets.values()]
        for name in subnets:
            association = for_provider(network, f"route-table-association-{name.removeprefix('subnet-')}")
            assert association["routeTableIdSelector"]["matchLabels"] == {"platform.gitops.io/route-table": tier}
    assert all(b.subnet_of(vpc) for b in blocks)
    assert not any(a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1:])
    # the control plane and node groups select the private subnets by label: every zone's
    assert for_provider(eks, "eks-cluster")["vpcConfig"]["subnetIdSelector"]["matchLabels"][
        "platform.gitops.io/tier"] == "private"
    validator = SchemaValidator(CrdCatalogue.builtin(), kubernetes_version="1.33")
    assert [str(v) for o in network.values() for v in validator.validate(o)] == []


def test_three_zones_keep_the_address_plan(tmp_path: Path) -> None:
    """The default (3) and an explicit 3 carve the same subnets as before zones were settable."""
    root = copy_reference_fleet(tmp_path)
    edit_cluster(root, CLUSTERS["aws"], lambda e: e["networking"].update(zones=3))
    *_, xr = composed_for(root, "aws")
    subnets = xr["spec"]["networking"]["subnets"]
    assert [s["cidr"] for s in subnets["private"]] == ["10.30.0.0/18", "10.30.64.0/18", "10.30.128.0/18"]
    assert [s["cidr"] for s in subnets["public"]] == ["10.30.192.0/20", "10.30.208.0/20", "10.30.224.0/20"]


def test_zones_by_name(tmp_path: Path) -> None:
    root = copy_reference_fleet(tmp_path)
    edit_cluster(root, CLUSTERS["aws"], lambda e: e["networking"].update(zones=["us-east-1d", "us-east-1f"]))
    network, _, _ = composed_for(root, "aws")
    assert sorted(for_provider(network, n)["availabilityZone"] for n, o in network.items()
                  if o["kind"] == "Subnet") == ["us-east-1d", "us-east-1d", "us-east-1f", "us-east-1f"]


@pytest.mark.parametrize(("cloud", "count"), [("gcp", 1), ("gcp", 2), ("gcp", 4), ("azure", 1), ("azure", 2)])
def test_gke_and_aks_place_nodes_in_exactly_the_zones(tmp_path: Path, cloud: str, count: int) -> None:
    root = copy_reference_fleet(tmp_path)
    edit_cluster(root, CLUSTERS[cloud], lambda e: e["networking"].update(zones=count))
    _, compute, _ = composed_for(root, cloud)
    zones = region_zones(root, CLUSTERS[cloud])[:count]
    if cloud == "gcp":
        assert for_provider(compute, "gke-cluster")["nodeLocations"] == zones
    else:
        assert for_provider(compute, "aks-cluster")["defaultNodePool"]["zones"] == zones
        pools = [for_provider(compute, n) for n, o in compute.items() if o["kind"] == "KubernetesClusterNodePool"]
        assert pools and all(p["zones"] == zones for p in pools)


def _line_of(root: Path, file: str, text: str) -> int:
    lines = (root / file).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


@pytest.mark.parametrize(("cloud", "zones", "fragment"), [
    ("aws", 1, "give 2 to 5 distinct zones of us-east-1"),  # EKS needs two Availability Zones
    ("aws", ["us-east-1a", "us-east-1a"], "give 2 to 5 distinct zones"),
    ("azure", 4, "give 1 to 3 distinct zones of eastus"),  # the region has three
    ("gcp", 5, "give 1 to 4 distinct zones of us-central1"),
])
def test_zone_counts_the_cloud_or_region_cannot_have_are_refused(tmp_path: Path, cloud: str, zones: Any,
                                                                  fragment: str) -> None:
    root = copy_reference_fleet(tmp_path)
    edit_cluster(root, CLUSTERS[cloud], lambda e: e["networking"].update(zones=zones))
    found = [p for p in refused(root) if p[2].endswith(".networking.zones")]
    assert len(found) == 1, refused(root)
    file, line, _, message = found[0]
    assert fragment in message
    assert line == _line_of(root, file, "zones:")


def test_a_zero_count_is_refused(tmp_path: Path) -> None:
    root = copy_reference_fleet(tmp_path)
    edit_cluster(root, CLUSTERS["gcp"], lambda e: e["networking"].update(zones=0))
    assert any("networking.zones" in p[2] and p[1] > 0 for p in refused(root)), refused(root)


def test_a_vpc_too_small_for_its_zones_is_refused(tmp_path: Path) -> None:
    root = copy_reference_fleet(tmp_path)

    def small(entry: Any) -> None:
        entry["networking"].update(zones=4, vpcCidr="10.30.0.0/24")

    edit_cluster(root, CLUSTERS["aws"], small)
    found = [p for p in refused(root) if p[2].endswith("networking.vpcCidr")]
    assert [m for *_, m in found] == [
        "10.30.0.0/24 is too small to carve 8 subnets for 4 zones; use /23 or larger (e.g. /16)"]
