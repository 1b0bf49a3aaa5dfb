"""Inventory rules of the infrastructure repo: network plan, identities, node groups, data services, paths.
Every violation is an inventory error with file:line, the CLI exits 2 and writes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import tree_digest
from test_crossplane import edit_cluster, edit_yaml, enable_crossplane

from generator.cli import main
from generator.errors import InventoryError
from generator.inventory.loader import load_inventory


def problems(root: Path) -> list[str]:
    """The inventory errors of the fleet at ``root`` (as the CLI prints them)."""
    with pytest.raises(InventoryError) as caught:
        load_inventory(root)
    return [str(p) for p in caught.value.problems]


def one(root: Path, needle: str) -> str:
    """The single error containing ``needle``."""
    found = [p for p in problems(root) if needle in p]
    assert len(found) == 1, problems(root)
    return found[0]


@pytest.fixture
def root(fleet_root: Path) -> Path:
    return enable_crossplane(fleet_root)


def test_the_reference_fleet_with_crossplane_is_valid(root: Path) -> None:
    assert load_inventory(root).fleet.item.crossplane is not None


def test_subnets_must_lie_inside_the_vpc(root: Path) -> None:
    edit_cluster(root, "prod-us-east-1", lambda e: e["networking"].update(
        privateSubnets=["10.30.0.0/18", "10.30.64.0/18", "10.99.0.0/18"]))
    error = one(root, "not inside vpcCidr")
    assert error.startswith("inventory/clusters/prod.yaml:")
    assert ".networking.privateSubnets: subnet 10.99.0.0/18 is not inside vpcCidr 10.30.0.0/16" in error


def test_subnets_must_not_overlap(root: Path) -> None:
    edit_cluster(root, "prod-us-east-1", lambda e: e["networking"].update(
        publicSubnets=["10.30.192.0/20", "10.30.208.0/20", "10.30.128.0/24"]))
    assert "overlaps subnet 10.30.128.0/18 (private-us-east-1c)" in one(root, "overlaps subnet")


def test_zones_must_exist_in_the_region(root: Path) -> None:  # counts: tests/test_zones.py
    edit_cluster(root, "prod-eu-west-1", lambda e: e["networking"].update(zones=["eu-west-1a", "eu-west-1z"]))
    found = problems(root)
    assert any("'eu-west-1z' is not a zone of eu-west-1; expected one of: eu-west-1a, eu-west-1b, eu-west-1c" in p
               for p in found)


def test_gke_ranges_must_not_overlap_clusters_that_may_peer(root: Path) -> None:
    edit_cluster(root, "dev-us-central1", lambda e: e["networking"].update(podCidr="10.10.0.0/16"))
    error = one(root, "may peer with")
    assert error.startswith("inventory/clusters/dev.yaml:")
    assert "podCidr: 10.10.0.0/16 overlaps vpcCidr 10.10.0.0/16 of cluster 'dev-us-east-1'" in error


def test_clusters_of_other_environments_may_reuse_ranges(root: Path) -> None:
    edit_cluster(root, "prod-europe-west1", lambda e: e["networking"].update(podCidr="10.10.0.0/16"))
    load_inventory(root)  # prod and dev never peer: no error


def test_every_cloud_in_use_needs_an_identity(root: Path) -> None:
    edit_yaml(root / "inventory/fleet.yaml", lambda d: d["fleet"]["crossplane"].pop("azure"))
    error = one(root, "workload clusters run on azure")
    assert error.startswith("inventory/fleet.yaml:")
    assert "set fleet.crossplane.azure" in error


def test_gcp_from_a_non_gke_hub_needs_federation(root: Path) -> None:
    edit_yaml(root / "inventory/fleet.yaml", lambda d: d["fleet"]["crossplane"]["gcp"].pop("workloadIdentityProvider"))
    assert "workloadIdentityProvider" in one(root, "the hub runs on aws")


def test_infrastructure_path_must_not_overlap_the_fleet(root: Path) -> None:
    edit_yaml(root / "inventory/fleet.yaml", lambda d: d["fleet"]["git"].update(path=""))
    error = one(root, "infrastructurePath")
    assert "'infrastructure' overlaps the fleet tree" in error
    edit_yaml(root / "inventory/fleet.yaml", lambda d: d["fleet"]["crossplane"].update(infrastructurePath="crossplane"))
    load_inventory(root)


def test_aks_pool_names(root: Path) -> None:
    def rename(entry: Any) -> None:
        entry["nodeGroups"][1]["name"] = "app-pool"

    edit_cluster(root, "prod-eastus", rename)
    error = one(root, "AKS node pool names")
    assert error.startswith("inventory/clusters/prod.yaml:")
    assert ".nodeGroups.1.name: 'app-pool'" in error


def test_instance_types_must_fit_the_cloud_even_when_inherited(root: Path) -> None:
    fleet = root / "inventory" / "fleet.yaml"
    fleet.write_text(fleet.read_text().replace("instanceType: Standard_D4s_v5", "instanceType: m6i.large"))
    edit_cluster(root, "prod-eastus", lambda e: e.pop("nodeGroups"))
    found = [p for p in problems(root) if "not a azure instance type" in p]
    assert found and all(p.startswith("inventory/fleet.yaml:") for p in found)  # defaults.clouds.azure
    assert {"(node groups of azure cluster 'prod-eastus')", "(node groups of azure cluster 'staging-westeurope')"} == {
        p[p.index("(node groups"):] for p in found}


def test_cloud_defaults_give_inheriting_clusters_their_cloud_types(root: Path) -> None:
    """Without its own node groups an Azure cluster inherits defaults.clouds.azure: no AWS types, no error."""
    edit_cluster(root, "prod-eastus", lambda e: e.pop("nodeGroups"))
    cluster = next(c for c in load_inventory(root).clusters if c.item.name == "prod-eastus")
    assert "nodeGroups" not in cluster.raw  # valid: the per-cloud default applies


def test_node_groups_are_bounded_by_the_xrd(root: Path) -> None:
    group = {"instanceType": "m6i.large", "minSize": 1, "maxSize": 2, "desiredSize": 1}
    edit_cluster(root, "prod-eu-west-1", lambda e: e.update(
        nodeGroups=[{"name": f"g{i}", **group} for i in range(5)]))
    assert not [p for p in problems_or_none(root) if "node groups" in p]  # compositions loop: 5 is fine
    edit_cluster(root, "prod-eu-west-1", lambda e: e.update(
        nodeGroups=[{"name": f"g{i}", **group} for i in range(17)]))
    assert "at most 16 node groups" in one(root, "node groups (the XRD's bound)")


def problems_or_none(root: Path) -> list[str]:
    """The inventory errors of the fleet at ``root``, or none."""
    try:
        load_inventory(root)
    except InventoryError as exc:
        return [str(p) for p in exc.problems]
    return []


def _without_crossplane(root: Path) -> Path:
    fleet = root / "inventory" / "fleet.yaml"
    lines = fleet.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("  crossplane:"))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("    "))
    fleet.write_text("".join(lines[:start] + lines[end:]))
    return root


def test_databases_need_crossplane(fleet_root: Path) -> None:
    _without_crossplane(fleet_root)
    edit_cluster(fleet_root, "prod-us-east-1", lambda e: e.update(databases=[{"name": "orders"}]))
    found = [p for p in problems(fleet_root) if "add a fleet.crossplane section" in p]
    assert found and all(p.startswith("inventory/clusters/prod.yaml:") for p in found)
    assert any("clusters.0.databases.0" in p for p in found)


def test_database_rules(root: Path) -> None:
    edit_cluster(root, "prod-eastus", lambda e: e.update(databases=[
        {"name": "orders", "engine": "mysql", "version": "8.0", "storageGb": 100, "highAvailability": True}]))
    edit_cluster(root, "prod-us-east-1", lambda e: e.update(databases=[{"name": "orders", "version": "9"}],
                                                           caches=[{"name": "orders"}]))
    found = "\n".join(problems(root))
    assert "engine: postgres" in found and "zone-redundant HA" in found and "GiB" in found
    assert "set fleet.crossplane.azure.databaseAdmins" not in found  # the fixture sets them
    assert "postgres version '9' is not supported" in found
    assert "duplicate name 'orders' (also in databases)" in found


def test_cli_exits_2_and_writes_nothing(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_cluster(root, "prod-us-east-1", lambda e: e["networking"].update(
        privateSubnets=["10.30.0.0/18", "10.30.64.0/18", "10.99.0.0/18"]))
    out = root / "out"
    assert main(["render", str(root), "--out", str(out)]) == 2
    assert tree_digest(out) == {}
    assert "inventory/clusters/prod.yaml:" in capsys.readouterr().err


def test_a_private_spoke_in_another_cloud_is_unreachable(root: Path, tmp_path: Path) -> None:
    edit_cluster(root, "dev-us-central1", lambda e: e["networking"].pop("privateEndpoint"))
    error = one(root, "cannot reach")
    assert error.startswith("inventory/clusters/dev.yaml:")
    assert "the hub (aws) cannot reach the private API endpoint of gcp cluster 'dev-us-central1'" in error
    out = tmp_path / "out"
    assert main(["render", str(root), "--out", str(out)]) == 2
    assert tree_digest(out) == {}


def test_public_endpoints_need_the_hubs_egress_cidrs(root: Path) -> None:
    edit_yaml(root / "inventory" / "fleet.yaml", lambda d: d["fleet"]["crossplane"]["hub"].pop("egressCidrs"))
    found = [p for p in problems(root) if "egressCidrs is empty" in p]
    assert {p.split(":")[0] for p in found} == {"inventory/clusters/dev.yaml", "inventory/clusters/prod.yaml",
                                                "inventory/clusters/staging.yaml"}
    assert all(".networking.privateEndpoint: the hub cannot reach cluster" in p for p in found)


def test_private_spokes_in_the_hubs_cloud_need_the_hub_network(root: Path) -> None:
    edit_yaml(root / "inventory" / "fleet.yaml", lambda d: d["fleet"]["crossplane"]["hub"].pop("network"))
    found = [p for p in problems(root) if "through VPC peering" in p]
    assert len(found) == 4  # the four AWS spokes
    assert all("set fleet.crossplane.hub.network: {vpcId, routeTableIds}" in p for p in found)


def test_the_function_release_must_be_the_offline_engine(root: Path) -> None:
    edit_yaml(root / "inventory" / "fleet.yaml",
              lambda d: d["fleet"]["crossplane"].update(functionVersions={"function-pythonic": "v0.6.1"}))
    assert "differs from the function-pythonic release fleetgen composes with offline (v0.1.4)" in \
        one(root, "functionVersions")
