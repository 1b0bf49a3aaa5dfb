"""TLS for the global name of a failover app on both clusters of its pair (README "Multi-region prod: DNS failover
and a read replica"; the names and values are in generator/inventory/globalhosts.py).

Each cluster of an app's failover pair gets, in the gateway component's namespace, in its configs layer
(``infrastructure/global-hosts/<cluster>/``, applied after Envoy Gateway's and cert-manager's CRDs exist and
before the apps):

- a ListenerSet ``<app>-global`` (``gateway.networking.k8s.io/v1``, Gateway API v1.6.1 standard channel; Envoy
  Gateway v1.9.0 reconciles ``gwapiv1.ListenerSet``: internal/gatewayapi/listenerset.go) whose ``parentRef`` is
  the gateway component's Gateway, with a listener ``https`` for ``<host>.<domain>`` on the Gateway's HTTPS port,
  TLS terminated with the Secret of the Certificate below, admitting HTTPRoutes from the app's namespace only
  (``kubernetes.io/metadata.name``), and — when the Gateway has a plain-HTTP listener — a listener ``http`` on
  its port admitting routes of its own namespace only;
- an HTTPRoute ``<app>-global-https-redirect`` on that ``http`` listener: a 301 to HTTPS, as the Gateway's own
  ``https-redirect`` does for the cluster's names;
- a Certificate ``<app>-global`` for ``<host>.<domain>`` from the fleet's ClusterIssuer, which solves DNS-01 for
  that exact name in the zone of ``<domain>`` (generator/render/issuers.py adds the solver).

The Gateway must admit ListenerSets of its own namespace (``spec.allowedListeners.namespaces.from: Same`` or
``All``; the API's default admits none); otherwise the render stops naming the gateway component. The app's route
(the chart's HTTPRoute, or the one Flagger builds from the Canary in prod) attaches to the listener through
``route.extraParentRefs``. external-dns publishes nothing for the global name: the Route 53 failover records own it
(tests/test_global_tls.py follows external-dns v0.21.0's gateway-httproute source to show it).
"""

from __future__ import annotations

from typing import Any

from generator.errors import InventoryError, Problem
from generator.inventory.globalhosts import (
    GATEWAY_GROUP,
    HTTP_LISTENER,
    HTTPS_LISTENER,
    LISTENER_SET_API,
    LISTENER_SET_KIND,
    certificate_secret,
    global_name,
    global_object_name,
    serves_global_name,
)
from generator.inventory.models import App, Component
from generator.inventory.resolve import ResolvedCluster, ResolvedFleet, gateway_component
from generator.render.issuers import ISSUER
from generator.render.planner import Contribution, Planner

GLOBAL_HOSTS_DIR = "infrastructure/global-hosts"
#: The namespace label the API server sets on every namespace (Kubernetes >= 1.22): selects the app's namespace.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def plan_global_tls(fleet: ResolvedFleet) -> Contribution:
    """The ListenerSets, redirects and Certificates of the global names each cluster of a failover pair serves."""
    planner = Planner()
    contribution = Contribution()
    gateway = gateway_component(fleet.components)
    serving = {c.name: _served(c, gateway) for c in fleet.clusters}
    if gateway is None or not any(serving.values()):
        return contribution
    gateway_object = _gateway_object(fleet, gateway)
    sources = {s.item.name: s.file.file for s in fleet.inventory.apps}
    cluster_files = {s.item.name: s.file.file for s in fleet.inventory.clusters}
    component_file = next(s.file.file for s in fleet.inventory.components if s.item is gateway)
    for cluster in fleet.clusters:
        apps = serving[cluster.name]
        if not apps:
            continue
        docs: list[dict[str, Any]] = []
        for app in apps:
            docs += _objects(fleet, gateway, gateway_object, app)
        directory = f"{GLOBAL_HOSTS_DIR}/{cluster.name}"
        files = [component_file, cluster_files[cluster.name], *(sources[a.name] for a in apps)]
        planner.add_yaml(f"{directory}/global-hosts.yaml", docs, files)
        planner.add_yaml(
            f"{directory}/kustomization.yaml",
            [{"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
              "resources": ["global-hosts.yaml"]}],
            files,
        )
        contribution.cluster_configs.setdefault(cluster.name, []).append(directory)
    contribution.files = planner.files
    return contribution


def _served(cluster: ResolvedCluster, gateway: Component | None) -> list[App]:
    """The apps of ``cluster`` whose global name it serves (it runs the gateway component and is in their pair)."""
    if gateway is None or not any(c.component is gateway for c in cluster.components):
        return []
    return sorted((a.app for a in cluster.apps if serves_global_name(a.app, cluster.name, gateway)),
                  key=lambda a: a.name)


def _mapping(value: Any) -> dict[str, Any]:
    """``value`` when it is a map, else an empty one (component configs are free-form inventory data)."""
    return value if isinstance(value, dict) else {}


def _gateway_object(fleet: ResolvedFleet, gateway: Component) -> dict[str, Any]:
    """The gateway component's Gateway; refuses one that admits no ListenerSet of its own namespace."""
    assert gateway.gateway is not None
    entry = next(s for s in fleet.inventory.components if s.item is gateway)
    found = [o for o in gateway.configs if o.get("kind") == "Gateway"
             and _mapping(o.get("metadata")).get("name") == gateway.gateway.name]
    spec = _mapping(found[0].get("spec")) if found else {}
    allowed = _mapping(_mapping(spec.get("allowedListeners")).get("namespaces"))
    listeners: list[Any] = spec["listeners"] if isinstance(spec.get("listeners"), list) else []
    has_listener = any(_mapping(item).get("name") == gateway.gateway.listener for item in listeners)
    if not found or not has_listener or allowed.get("from") not in ("Same", "All"):
        file, line, column = entry.where("configs") if "configs" in entry.raw else entry.where()
        raise InventoryError([Problem(
            file, line, column, ".".join(str(p) for p in (*entry.path, "configs")),
            f"apps with failover serve their global name through a ListenerSet in {gateway.namespace}: the "
            f"Gateway '{gateway.gateway.name}' of these configs must have the listener "
            f"'{gateway.gateway.listener}' and admit the ListenerSet with "
            "spec.allowedListeners: {namespaces: {from: Same}} (README \"Multi-region prod\")")])
    result: dict[str, Any] = found[0]
    return result


def _objects(
    fleet: ResolvedFleet, gateway: Component, gateway_object: dict[str, Any], app: App
) -> list[dict[str, Any]]:
    """ListenerSet, redirect HTTPRoute and Certificate of ``app``'s global name."""
    assert gateway.gateway is not None
    name, host, namespace = global_object_name(app), global_name(fleet.fleet, app), gateway.namespace
    listeners = gateway_object["spec"]["listeners"]
    https = next(item for item in listeners if item["name"] == gateway.gateway.listener)
    http = next((item for item in listeners if item.get("protocol") == "HTTP"), None)
    entries: list[dict[str, Any]] = []
    if http is not None:
        entries.append({"name": HTTP_LISTENER, "protocol": "HTTP", "port": http["port"], "hostname": host,
                        "allowedRoutes": {"namespaces": {"from": "Same"}}})
    entries.append({
        "name": HTTPS_LISTENER, "protocol": "HTTPS", "port": https["port"], "hostname": host,
        "tls": {"mode": "Terminate", "certificateRefs": [{"name": certificate_secret(app)}]},
        "allowedRoutes": {
            "kinds": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute"}],
            "namespaces": {"from": "Selector",
                           "selector": {"matchLabels": {NAMESPACE_NAME_LABEL: app.target_namespace}}},
        },
    })
    docs: list[dict[str, Any]] = [{
        "apiVersion": LISTENER_SET_API,
        "kind": LISTENER_SET_KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "parentRef": {"group": GATEWAY_GROUP, "kind": "Gateway", "name": gateway.gateway.name,
                          "namespace": namespace},
            "listeners": entries,
        },
    }]
    if http is not None:
        docs.append({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": f"{name}-https-redirect", "namespace": namespace},
            "spec": {
                "parentRefs": [{"group": GATEWAY_GROUP, "kind": LISTENER_SET_KIND, "name": name,
                                "sectionName": HTTP_LISTENER}],
                "hostnames": [host],
                "rules": [{"filters": [{"type": "RequestRedirect",
                                        "requestRedirect": {"scheme": "https", "statusCode": 301}}]}],
            },
        })
    docs.append({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "secretName": certificate_secret(app),
            "dnsNames": [host],
            "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": ISSUER},
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        },
    })
    return docs
