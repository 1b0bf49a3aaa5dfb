"""Multi-region prod: an app served by two clusters gets global DNS failover, and its database a read replica in
the secondary region (``apps[].failover``; README "Multi-region prod").

- A ``DnsFailover`` XR on the hub (next to the primary cluster's objects): the composition (``aws_dnsfailover.py``)
  composes one Route 53 HealthCheck per cluster (HTTPS on 443 with SNI, the app's readiness path, of
  ``<host>.<cluster>.<domain>``) and two failover records ``<host>.<domain>`` CNAME → that cluster's host:
  PRIMARY with the primary's health check, SECONDARY with the secondary's (provider-upjet-aws v2.6.0
  ``route53.aws.m.upbound.io/v1beta1`` Record ``failoverRoutingPolicy``, ``setIdentifier``, ``healthCheckId``).
- The primary cluster's Database gets ``spec.replicas``: the RDS composition adds, in each replica's region and
  network, a KMS key, a subnet group, a security group and an encrypted read replica whose
  ``replicateSourceDb`` is the source instance's ARN (cross-region replicas need the ARN and the destination
  region's KMS key: ``rds.aws.m.upbound.io`` Instance ``replicateSourceDb``, ``kmsKeyId``).

Only AWS is composed (Route 53, RDS): any other cloud or combination is refused at the app's failover line.
"""

from __future__ import annotations

from typing import Any

from generator.errors import InventoryError, Problem
from generator.inventory.globalhosts import hosted_zone
from generator.inventory.models import App, Fleet
from generator.inventory.resolve import ResolvedCluster, ResolvedFleet
from generator.render.crossplane.common import Mode, Obj

SUPPORTED_CLOUDS = ("aws",)


def failover_apps(fleet: ResolvedFleet) -> list[App]:
    """Apps with ``failover`` set, by name."""
    return sorted((a for a in fleet.apps if a.failover is not None), key=lambda a: a.name)


def zone_id(fleet: Fleet, app: App) -> str | None:
    """The Route 53 hosted zone of ``<host>.<domain>``: the app's, else ``fleet.dns.aws.hostedZoneId`` (the zone
    cert-manager's solver of the global name writes to as well: generator/inventory/globalhosts.py)."""
    return hosted_zone(fleet, app)


def check_failover(fleet: ResolvedFleet) -> None:
    """Refuse (file:line, nothing written) a failover fleetgen cannot compose or that cannot work."""
    problems: list[Problem] = []
    sources = {s.item.name: s for s in fleet.inventory.apps}
    by_name = {c.name: c for c in fleet.clusters}
    for app in failover_apps(fleet):
        failover = app.failover
        assert failover is not None
        source = sources[app.name]

        def refuse(field: str, message: str, source: Any = source) -> None:
            file, line, column = source.where("failover", field)
            problems.append(Problem(file, line, column, f"apps.failover.{field}", message))

        if fleet.fleet.crossplane is None:
            refuse("primary", "failover is composed by Crossplane on the hub: set fleet.crossplane")
        if not app.host:
            refuse("primary", f"app '{app.name}' has no host: the global name is <host>.{fleet.fleet.domain}")
        pair = []
        for field in ("primary", "secondary"):
            name = getattr(failover, field)
            cluster = by_name.get(name)
            if cluster is None:
                refuse(field, f"no cluster named '{name}'")
            elif not any(a.name == app.name for a in cluster.apps):
                refuse(field, f"app '{app.name}' does not run on cluster '{name}'")
            elif cluster.cluster.cloud not in SUPPORTED_CLOUDS:
                refuse(field, f"cluster '{name}' is on {cluster.cluster.cloud}: DNS failover and cross-region "
                              f"replicas are composed on {', '.join(SUPPORTED_CLOUDS)} only (Route 53, RDS)")
            else:
                pair.append(cluster)
        if len(pair) == 2:
            first, second = pair
            if first.name == second.name or first.cluster.region == second.cluster.region:
                refuse("secondary", "primary and secondary must be clusters in two different regions")
            if first.cluster.environment != second.cluster.environment:
                refuse("secondary", f"primary is in {first.cluster.environment}, secondary in "
                                    f"{second.cluster.environment}: fail over within one environment")
            if failover.database and not any(d.name == failover.database for d in first.cluster.databases):
                refuse("database", f"cluster '{first.name}' has no database '{failover.database}'")
        if zone_id(fleet.fleet, app) is None:
            refuse("hostedZoneId", f"the Route 53 zone of {app.host or '<host>'}.{fleet.fleet.domain} is unknown: "
                                   "set failover.hostedZoneId or fleet.dns.aws.hostedZoneId")
    if problems:
        raise InventoryError(problems)


def app_host(fleet: Fleet, app: App, cluster: str | None = None) -> str:
    """``<host>.<domain>`` (global) or ``<host>.<cluster>.<domain>`` (the cluster's Gateway)."""
    return ".".join(p for p in (app.host, cluster, fleet.domain) if p)


def add_failover(fleet: ResolvedFleet, cluster: ResolvedCluster, mode: Mode, docs: list[Obj]) -> list[Obj]:
    """``cluster``'s objects (``objects.cluster_documents``) with its databases' replicas and its DnsFailover XRs."""
    from generator.render.crossplane.api import DATABASE, DNS_FAILOVER
    from generator.render.crossplane.objects import envelope

    kinds = {mode.xr_kind(DATABASE.kind), DATABASE.kind}
    first = docs[0]
    for doc in docs:
        if doc["kind"] in kinds:
            name = str(doc["metadata"]["name"]).removeprefix(f"{cluster.name}-")
            replicas = database_replicas(fleet, cluster, name)
            if replicas:
                doc["spec"]["replicas"] = replicas
    spec = first["spec"]
    common = {"cloudProvider": spec["cloudProvider"], "region": spec["region"],
              "providerConfigName": spec["providerConfigName"], "tags": spec["tags"]}
    selection = (first["spec"] if mode.legacy else first["spec"]["crossplane"])["compositionSelector"]["matchLabels"]
    return docs + failover_documents(fleet, cluster, mode, DNS_FAILOVER.kind, envelope,
                                     dict(first["metadata"]["labels"]), dict(selection), common)


def failover_documents(fleet: ResolvedFleet, cluster: ResolvedCluster, mode: Mode, kind: str,
                       envelope: Any, labels: dict[str, str], selector: dict[str, str],
                       common: dict[str, Any]) -> list[Obj]:
    """The DnsFailover XRs of the apps whose primary is ``cluster``."""
    docs = []
    for app in failover_apps(fleet):
        failover = app.failover
        assert failover is not None
        if failover.primary != cluster.name:
            continue
        secondary = fleet.cluster(failover.secondary)
        assert secondary is not None
        path = failover.health_check_path or app.probes.readiness
        spec = {"cloudProvider": common["cloudProvider"], "region": common["region"],
                "providerConfigName": common["providerConfigName"],
                "tags": {**common["tags"], "app": app.name},
                "zoneId": zone_id(fleet.fleet, app), "name": app_host(fleet.fleet, app), "ttl": 60,
                "endpoints": [
                    {"role": "PRIMARY", "cluster": cluster.name, "target": app_host(fleet.fleet, app, cluster.name),
                     "healthCheckPath": path},
                    {"role": "SECONDARY", "cluster": secondary.name,
                     "target": app_host(fleet.fleet, app, secondary.name), "healthCheckPath": path}]}
        docs.append(envelope(mode, kind, f"{app.name}-failover", labels, spec, selector))
    return docs


def database_replicas(fleet: ResolvedFleet, cluster: ResolvedCluster, database: str) -> list[Obj]:
    """Read replicas of ``cluster``'s database ``database``: one per failover app naming it, in the secondary's
    region and network."""
    replicas: dict[str, Obj] = {}
    for app in failover_apps(fleet):
        failover = app.failover
        assert failover is not None
        if failover.primary != cluster.name or failover.database != database:
            continue
        secondary = fleet.cluster(failover.secondary)
        assert secondary is not None
        replicas[secondary.name] = {"region": secondary.cluster.region,
                                    "network": {"name": secondary.name, "cidr": secondary.cluster.networking.vpc_cidr}}
    return [replicas[k] for k in sorted(replicas)]
