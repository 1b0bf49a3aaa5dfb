"""Multi-region prod (apps[].failover): Route 53 failover records with health checks and a cross-region RDS read
replica, composed by the same function-pythonic code the hub runs; unsupported combinations refused at file:line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from generator.cli import main
from generator.render.crossplane import engine
from generator.yamlio import load_documents

HUB = REPO / "golden" / "management"
FAILOVER = HUB / "crossplane-clusters" / "dnsfailover.fleet-clusters.storefront-web-failover"
DATABASE = HUB / "crossplane-clusters" / "database.fleet-clusters.prod-us-east-1-storefront"


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = load_documents(path.read_text(encoding="utf-8"))[0]
    return doc


def composed(folder: Path) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["annotations"]["crossplane.io/composition-resource-name"]: o
            for o in map(load, sorted(folder.glob("*.yaml")))}


def route_hosts(cluster: str) -> set[str]:
    """Hosts the cluster's Gateway serves: HTTPRoutes, and the routes Flagger creates for a gatewayapi Canary."""
    hosts: set[str] = set()
    for path in (REPO / "golden" / cluster).rglob("httproute.*.yaml"):
        hosts.update(load(path)["spec"].get("hostnames") or [])
    for path in (REPO / "golden" / cluster).rglob("canary.*.yaml"):
        service = load(path)["spec"]["service"]
        if service.get("gatewayRefs"):
            hosts.update(service.get("hosts") or [])
    return hosts


def test_failover_records_point_at_each_clusters_served_host_with_its_own_health_check() -> None:
    resources = composed(FAILOVER)
    assert set(resources) == {"health-check-primary", "health-check-secondary", "record-primary", "record-secondary"}
    for role, cluster in (("primary", "prod-us-east-1"), ("secondary", "prod-eu-west-1")):
        check, record = resources[f"health-check-{role}"], resources[f"record-{role}"]
        target = f"www.{cluster}.acme.example.com"
        assert target in route_hosts(cluster)  # the host the cluster's Gateway serves for the app
        assert check["spec"]["forProvider"] | {"tags": None} == {
            "type": "HTTPS", "fqdn": target, "port": 443, "enableSni": True, "resourcePath": "/api/ready",
            "requestInterval": 30, "failureThreshold": 3, "measureLatency": False, "tags": None}
        spec = record["spec"]["forProvider"]
        assert spec["name"] == "www.acme.example.com" and spec["type"] == "CNAME" and spec["records"] == [target]
        assert spec["failoverRoutingPolicy"] == {"type": role.upper()} and spec["setIdentifier"] == cluster
        assert spec["zoneId"] == "Z0ACME0FLEET0PROD"
        # the record's health check is exactly its own cluster's (same XR, its label)
        wanted = spec["healthCheckIdSelector"]["matchLabels"]
        matching = [n for n, o in resources.items() if o["kind"] == "HealthCheck"
                    and wanted.items() <= (o["metadata"].get("labels") or {}).items()]
        assert matching == [f"health-check-{role}"]


def test_the_database_gets_an_encrypted_read_replica_in_the_secondary_network() -> None:
    resources = composed(DATABASE)
    replica = resources["replica-eu-west-1"]["spec"]["forProvider"]
    assert replica["region"] == "eu-west-1" and replica["storageEncrypted"] is True
    assert replica["replicateSourceDb"] == "UNKNOWN:instance.status.atProvider.arn"  # held back until known
    assert "username" not in replica and "manageMasterUserPassword" not in replica  # a replica may not set them
    by_label: dict[tuple[str, str], list[str]] = {}
    for name, obj in resources.items():
        for key, value in (obj["metadata"].get("labels") or {}).items():
            by_label.setdefault((key, value), []).append(name)
    for field, kind in (("dbSubnetGroupNameSelector", "SubnetGroup"), ("kmsKeyIdSelector", "Key"),
                        ("vpcSecurityGroupIdSelector", "SecurityGroup")):
        (label,) = replica[field]["matchLabels"].items()
        selected = [n for n in by_label.get(label, []) if resources[n]["kind"] == kind]
        assert len(selected) == 1 and resources[selected[0]]["spec"]["forProvider"]["region"] == "eu-west-1", field
    subnets = resources["replica-eu-west-1-subnet-group"]["spec"]["forProvider"]["subnetIdSelector"]["matchLabels"]
    assert subnets == {"platform.gitops.io/network": "prod-eu-west-1", "platform.gitops.io/tier": "private"}
    # the primary's selectors stay unambiguous now that the XR composes two subnet groups
    primary = resources["instance"]["spec"]["forProvider"]
    (label,) = primary["dbSubnetGroupNameSelector"]["matchLabels"].items()
    assert [n for n in by_label[label] if resources[n]["kind"] == "SubnetGroup"] == ["subnet-group"]


def test_the_replica_follows_the_source_arn_once_observed() -> None:
    composition = load(HUB / "crossplane-compositions" / "composition._cluster.aws-rds.yaml")
    xr = load(HUB / "crossplane-clusters" / "database.fleet-clusters.prod-us-east-1-storefront.yaml")
    first = engine.run(composition, xr)
    assert "replica-eu-west-1" not in first.resources  # the source's ARN is not known: held back, as on the hub
    arn = "arn:aws:rds:us-east-1:123456789012:db:prod-us-east-1-storefront-x7k2p"
    observed = {"instance": {**first.resources["instance"], "status": {"atProvider": {"arn": arn}}}}
    second = engine.run(composition, xr, observed)
    assert second.resources["replica-eu-west-1"]["spec"]["forProvider"]["replicateSourceDb"] == arn


def _set_failover(root: Path, failover: str) -> int:
    apps = root / "inventory" / "apps.yaml"
    text = apps.read_text(encoding="utf-8")
    new, count = re.subn(r"failover: \{[^}]*\}", failover, text)
    assert count == 1
    apps.write_text(new, encoding="utf-8")
    return next(i for i, line in enumerate(new.splitlines(), 1) if "failover:" in line and "{" in line)


@pytest.mark.parametrize(("failover", "field", "message"), [
    ("failover: {primary: prod-us-east-1, secondary: prod-europe-west1, hostedZoneId: Z1}", "secondary",
     "does not run on cluster 'prod-europe-west1'"),
    ("failover: {primary: prod-us-east-1, secondary: prod-eu-west-1}", "hostedZoneId",
     "the Route 53 zone of www.acme.example.com is unknown"),
    ("failover: {primary: prod-us-east-1, secondary: prod-eu-west-1, hostedZoneId: Z1, database: nope}", "database",
     "cluster 'prod-us-east-1' has no database 'nope'"),
    ("failover: {primary: prod-us-east-1, secondary: prod-us-east-1, hostedZoneId: Z1}", "secondary",
     "two different regions"),
])
def test_failover_fleetgen_cannot_compose_is_refused_at_its_line(
    fleet_root: Path, capsys: pytest.CaptureFixture[str], failover: str, field: str, message: str
) -> None:
    line = _set_failover(fleet_root, failover)
    assert main(["render", str(fleet_root)]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"inventory/apps.yaml:{line}:\d+: apps.failover.{field}: .*{re.escape(message)}", err), err
    assert not (fleet_root / "out").exists()


def test_a_cloud_without_route53_is_refused(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    apps = fleet_root / "inventory" / "apps.yaml"
    text = apps.read_text(encoding="utf-8").replace("clusters: [prod-us-east-1, prod-eu-west-1]",
                                                    "clusters: [prod-us-east-1, prod-eu-west-1, prod-europe-west1]")
    apps.write_text(text, encoding="utf-8")
    line = _set_failover(fleet_root, "failover: {primary: prod-us-east-1, secondary: prod-europe-west1, "
                                     "hostedZoneId: Z1}")
    assert main(["render", str(fleet_root)]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"inventory/apps.yaml:{line}:\d+: apps.failover.secondary: cluster 'prod-europe-west1' is on "
                     "gcp: DNS failover and cross-region replicas are composed on aws only", err), err
    assert not (fleet_root / "out").exists()
