"""The global name of a failover app (``<host>.<domain>``, ``apps[].failover``) served over TLS by the Gateway of
both clusters of its pair (README "Multi-region prod: DNS failover and a read replica").

Pure functions of the inventory models (resolve and render import them; nothing is planned here):

- the names of the objects each cluster of the pair receives in the gateway component's namespace: a ListenerSet
  ``<app>-global`` (Gateway API v1.6.1 ``gateway.networking.k8s.io/v1``, standard channel) attached to the
  gateway component's Gateway, with an HTTPS listener for the global name (TLS from the Secret of the Certificate
  ``<app>-global``) and, when the Gateway has a plain-HTTP listener, an HTTP listener only redirecting to HTTPS;
- the service chart values that attach the app's route to that listener as a second parent (``route.hostnames``
  gains the global name, ``route.extraParentRefs`` the ListenerSet's listener). The Canary copies both
  (``gatewayRefs``/``hosts``): Flagger v1.44.0 builds the HTTPRoute it owns from them (pkg/router/gateway_api.go
  ``toV1ParentRefs``), so both names get the canary's weight split;
- the ACME DNS-01 solvers for the global names: cert-manager v1.21.1 picks a solver by ``selector.dnsNames``
  (exact name) or ``selector.dnsZones`` (pkg/controller/acmeorders/selectors), and a cluster's own solver only
  covers ``<cluster>.<domain>``. The global name's TXT record lives in the zone of ``<domain>`` (the failover's
  hosted zone), so each global name gets a solver for exactly that name, in that zone, with the cluster's identity.
  Both clusters of a pair may solve the same name at once: cert-manager's Route 53 solver writes each challenge
  value as its own multivalue record set (``SetIdentifier`` = the value; pkg/issuer/acme/dns/route53/route53.go
  ``newTXTRecordSet``), so the two orders do not overwrite each other.

Envoy Gateway v1.9.0 attaches a route to ListenerSet listeners only through a parentRef of kind ListenerSet (a
parentRef to the Gateway excludes them: internal/gatewayapi/helpers.go ``GetReferencedListeners``), and accepts a
ListenerSet only when the Gateway's ``spec.allowedListeners`` admits its namespace (internal/gatewayapi/
listenerset.go ``isListenerSetAllowed``; the default admits none).
"""

from __future__ import annotations

from typing import Any

from generator.inventory.models import App, Component, Fleet

LISTENER_SET_API = "gateway.networking.k8s.io/v1"
LISTENER_SET_KIND = "ListenerSet"
GATEWAY_GROUP = "gateway.networking.k8s.io"
#: The listeners of each ListenerSet (names are scoped by the ListenerSet: Gateway API ListenerEntry.name).
HTTPS_LISTENER = "https"
HTTP_LISTENER = "http"


def global_name(fleet: Fleet, app: App) -> str:
    """``<host>.<domain>``: the name clients use and the failover records answer."""
    return f"{app.host}.{fleet.domain}"


def global_object_name(app: App) -> str:
    """Name of the app's ListenerSet and Certificate in the gateway component's namespace (the Secret's prefix)."""
    return f"{app.name}-global"


def certificate_secret(app: App) -> str:
    """The TLS Secret the Certificate writes and the ListenerSet's HTTPS listener serves."""
    return f"{global_object_name(app)}-tls"


def serves_global_name(app: App, cluster: str, gateway: Component | None) -> bool:
    """Whether ``cluster`` (running ``app``) terminates TLS for the app's global name: it is one of the app's failover
    pair and the app has a host behind the gateway component."""
    failover = app.failover
    return (
        failover is not None
        and bool(app.host)
        and gateway is not None
        and gateway.gateway is not None
        and cluster in (failover.primary, failover.secondary)
    )


def hosted_zone(fleet: Fleet, app: App) -> str | None:
    """The Route 53 zone of ``<domain>`` holding the global name: the app's, else ``fleet.dns.aws.hostedZoneId``."""
    assert app.failover is not None
    if app.failover.hosted_zone_id:
        return app.failover.hosted_zone_id
    return fleet.dns.aws.hosted_zone_id if fleet.dns.aws is not None else None


def global_route_values(app: App, cluster: str, fleet: Fleet, gateway: Component | None) -> dict[str, Any]:
    """The cluster layer of the service chart's values that adds the global name to ``app``'s route on ``cluster``
    ({} off the pair). ``hostnames`` is a list, so it is written whole: the cluster's host first."""
    if not serves_global_name(app, cluster, gateway):
        return {}
    assert gateway is not None and gateway.gateway is not None
    return {
        "route": {
            "hostnames": [f"{app.host}.${{cluster_domain}}", global_name(fleet, app)],
            "extraParentRefs": [
                {
                    "group": GATEWAY_GROUP,
                    "kind": LISTENER_SET_KIND,
                    "name": global_object_name(app),
                    "namespace": gateway.namespace,
                    "sectionName": HTTPS_LISTENER,
                }
            ],
        }
    }


def global_solvers(fleet: Fleet, apps: list[App], cluster_solver: dict[str, Any]) -> list[dict[str, Any]]:
    """ACME solvers for the global names of ``apps`` (those the cluster serves): the cluster's Route 53 solver
    (same region and identity) pointed at each name's hosted zone, selecting exactly those names. Route 53 only:
    failover is composed on AWS alone (generator/render/crossplane/failover.py refuses other clouds)."""
    route53 = cluster_solver.get("dns01", {}).get("route53")
    if route53 is None:
        return []
    by_zone: dict[str, set[str]] = {}
    for app in apps:
        zone = hosted_zone(fleet, app)
        if zone is not None:
            by_zone.setdefault(zone, set()).add(global_name(fleet, app))
    return [
        {"selector": {"dnsNames": sorted(names)}, "dns01": {"route53": {**route53, "hostedZoneID": zone}}}
        for zone, names in sorted(by_zone.items())
    ]
