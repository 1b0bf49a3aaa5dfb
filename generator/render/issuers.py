"""ACME DNS-01 ClusterIssuers: one per cluster that runs cert-manager, authenticated with the cluster's
cloud identity, so no credential is ever rendered and no solver pod or Ingress runs anywhere.

Written to ``infrastructure/issuers/<cluster>/`` and added to that cluster's configs layer (after
cert-manager's CRDs exist). The solver follows cert-manager v1.21's ClusterIssuer schema
(``cert-manager.io/v1``, ``spec.acme.solvers[].dns01``; deploy/crds/cert-manager.io_clusterissuers.yaml at
v1.21.1):

- AWS ``route53``: ambient credentials (an EKS Pod Identity association for cert-manager's service
  account), or with ``fleet.dns.aws.roleArn`` ``role`` + ``auth.kubernetes.serviceAccountRef``: cert-manager
  requests a bound token of a dedicated ServiceAccount and assumes the role with it (needs the Role below
  letting cert-manager create that token).
- GCP ``cloudDNS``: ambient credentials (GKE workload identity: IAM granted to cert-manager's service account).
- Azure ``azureDNS`` with ``managedIdentity.clientID``: AKS workload identity (cert-manager's pods carry the
  ``azure.workload.identity/use`` label, see the cert-manager component's values).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from generator.errors import InventoryError, Problem
from generator.inventory.entries import Sourced
from generator.inventory.globalhosts import global_solvers, serves_global_name
from generator.inventory.models import Cluster
from generator.inventory.resolve import ResolvedCluster, ResolvedFleet, gateway_component
from generator.render.externalsecrets import fill_in
from generator.render.planner import HEADER, Contribution, Planner, environment
from generator.yamlio import dump_documents

if TYPE_CHECKING:
    from generator.render.memo import PlannerMemo

ISSUER_DIR = "infrastructure/issuers"
CERT_MANAGER_CHART = "cert-manager"
ROUTE53_SERVICE_ACCOUNT = "cert-manager-route53"
#: The ClusterIssuer name; the gateway component's Certificate (inventory/components.yaml) names it.
ISSUER = "letsencrypt"


def _cert_manager(cluster: ResolvedCluster) -> tuple[str, str] | None:
    """(namespace, service account) of cert-manager's controller on the cluster, or None if it does not run."""
    for item in cluster.components:
        if item.component.chart.name == CERT_MANAGER_CHART:
            component = item.component
            return component.namespace, component.release_name or component.name
    return None


def _solver(cluster: ResolvedCluster, fleet: ResolvedFleet, namespace: str, account: str) -> tuple[
    dict[str, Any], list[dict[str, Any]]
] | None:
    """The cluster's DNS-01 solver and the objects it needs, or None when fleet.dns has no entry for its cloud."""
    dns = fleet.fleet.dns
    c = cluster.cluster
    zone = f"{c.name}.{fleet.fleet.domain}"
    # The hub also solves for the fleet-level hosts it publishes (metrics.<domain>, ...: generator.render.ingest)
    zones = [zone, fleet.fleet.domain] if c.role == "hub" else [zone]
    selector = {"dnsZones": zones}
    if c.cloud == "aws":
        if dns.aws is None:
            return None
        route53: dict[str, Any] = {"region": c.region}
        if dns.aws.hosted_zone_id:
            route53["hostedZoneID"] = dns.aws.hosted_zone_id
        extra: list[dict[str, Any]] = []
        if dns.aws.role_arn:
            route53["role"] = fill_in(dns.aws.role_arn, cluster, fleet)
            route53["auth"] = {"kubernetes": {"serviceAccountRef": {"name": ROUTE53_SERVICE_ACCOUNT}}}
            extra = _token_rbac(namespace, account)
        return {"selector": selector, "dns01": {"route53": route53}}, extra
    if c.cloud == "gcp":
        if dns.gcp is None:
            return None
        return {"selector": selector, "dns01": {"cloudDNS": {"project": fill_in(dns.gcp.project, cluster, fleet)}}}, []
    if dns.azure is None:
        return None
    azure = {
        "subscriptionID": dns.azure.subscription_id,
        "resourceGroupName": fill_in(dns.azure.resource_group, cluster, fleet),
        "environment": "AzurePublicCloud",
        "managedIdentity": {"clientID": dns.azure.client_id},
    }
    return {"selector": selector, "dns01": {"azureDNS": azure}}, []


def _token_rbac(namespace: str, account: str) -> list[dict[str, Any]]:
    """The Route53 ServiceAccount and the Role letting cert-manager request its bound token (cert-manager docs,
    "Route53: Referencing your own ServiceAccount")."""
    labels = {"app.kubernetes.io/part-of": "cert-manager"}
    name = f"{account}-tokenrequest"
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": ROUTE53_SERVICE_ACCOUNT, "namespace": namespace, "labels": labels},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["serviceaccounts/token"],
                    "resourceNames": [ROUTE53_SERVICE_ACCOUNT],
                    "verbs": ["create"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    ]


def plan_issuers(fleet: ResolvedFleet, memo: PlannerMemo | None = None) -> Contribution:
    """The ClusterIssuer of every workload cluster running cert-manager, and of the hub when it runs the gateway
    component (it publishes the fleet's ingest endpoints under ``<domain>``). A cluster that runs apps with a
    ``host`` must also run the gateway component and cert-manager, and have a DNS identity for its cloud in
    ``fleet.dns``; otherwise an inventory error names the cluster entry. With ``memo`` (generator/render/memo.py)
    a cluster's files are read from it where its inputs did not change."""
    contribution = Contribution()
    problems: list[Problem] = []
    files: dict[str, str] = {}
    cluster_sources = {s.item.name: s for s in fleet.inventory.clusters}  # by name: no scan per cluster
    env = environment()
    for cluster in fleet.clusters:
        def part(cluster: ResolvedCluster = cluster) -> dict[str, str]:  # this cluster and fleet-level inputs
            return _cluster_issuer(fleet, cluster, cluster_sources[cluster.name], problems, Planner(env))

        planned = part() if memo is None else memo.cluster_part("issuer", fleet, cluster, part)
        if planned:
            files.update(planned)
            contribution.cluster_configs.setdefault(cluster.name, []).append(f"{ISSUER_DIR}/{cluster.name}")
    if problems:
        raise InventoryError(problems)
    contribution.files = files
    return contribution


def _cluster_issuer(fleet: ResolvedFleet, cluster: ResolvedCluster, source: Sourced[Cluster],
                    problems: list[Problem], planner: Planner) -> dict[str, str]:
    """One cluster's issuer files, added to the empty ``planner`` (none when it gets no issuer); what is wrong is
    added to ``problems``, at the cluster's entry (``source``, read for positions only: a memoized part never had a
    problem)."""
    dns = fleet.fleet.dns
    fleet_file = fleet.inventory.fleet.file.file
    gateway = gateway_component(fleet.components)
    hosts = sorted(a.name for a in cluster.apps if a.app.host)
    if hosts and not any(gateway is c.component for c in cluster.components):
        file, line, column = source.where()
        problems.append(
            Problem(
                file,
                line,
                column,
                _field(source.path),
                f"apps {', '.join(hosts)} have a host here but the cluster runs no "
                f"{gateway.name if gateway else 'gateway'} component to serve them",
            )
        )
    cert_manager = _cert_manager(cluster)
    runs_gateway = any(gateway is c.component for c in cluster.components)
    if (cluster.cluster.role != "workload" and not runs_gateway) or cert_manager is None:
        if hosts and cert_manager is None and any(gateway is c.component for c in cluster.components):
            file, line, column = source.where()
            problems.append(
                Problem(file, line, column, _field(source.path),
                        f"apps {', '.join(hosts)} have a host here but cert-manager is off: "
                        "the Gateway's certificate would never be issued")
            )
        return {}
    namespace, account = cert_manager
    solver = _solver(cluster, fleet, namespace, account)
    if solver is None:
        if hosts:
            file, line, column = source.where("cloud")
            problems.append(
                Problem(
                    file,
                    line,
                    column,
                    _field((*source.path, "cloud")),
                    f"cluster '{cluster.name}' serves app hosts ({', '.join(hosts)}) but fleet.dns has no "
                    f"{cluster.cluster.cloud} entry, so its Gateway certificate cannot be issued: add "
                    f"fleet.dns.{cluster.cluster.cloud} (README \"App hosts, TLS and DNS\")",
                )
            )
        return {}
    solver_entry, extra = solver
    # the global names of failover apps this cluster serves, in the zone of <domain> (inventory/globalhosts.py)
    served = [a.app for a in cluster.apps if serves_global_name(a.app, cluster.name, gateway)]
    issuer = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "ClusterIssuer",
        "metadata": {"name": ISSUER},
        "spec": {
            "acme": {
                "server": dns.acme_server,
                "email": dns.email or f"platform@{fleet.fleet.domain}",
                "privateKeySecretRef": {"name": f"{ISSUER}-account-key"},
                "solvers": [solver_entry, *global_solvers(fleet.fleet, served, solver_entry)],
            }
        },
    }
    directory = f"{ISSUER_DIR}/{cluster.name}"
    planner.add_planned(f"{directory}/cluster-issuer.yaml", _issuer_file(extra, issuer, [fleet_file, *cluster.sources]))
    planner.add_yaml(
        f"{directory}/kustomization.yaml",
        [{"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
          "resources": ["cluster-issuer.yaml"]}],
        [fleet_file, *cluster.sources],
    )
    return planner.files


def _issuer_file(extra: list[dict[str, Any]], issuer: dict[str, Any], sources: list[str]) -> str:
    """What ``Planner.add_yaml`` writes for ``[*extra, issuer]``, with ``extra`` (the solver's token RBAC, the same
    on every cluster) emitted apart, so its text comes from the emitter's memo: a YAML stream of documents each
    starting with ``---`` is the streams of its documents one after the other."""
    head = HEADER.format(sources=", ".join(sorted(set(sources))))
    return head + (dump_documents(extra) if extra else "") + dump_documents([issuer])


def _field(path: tuple[str | int, ...]) -> str:
    """The dotted inventory path of a problem, as the loader writes it (``clusters.1.cloud``)."""
    return ".".join(str(part) for part in path)
