"""The hub's ingest endpoints and how every cluster authenticates to them.

The hub's components declare, as configs, the routes that publish them (``inventory/components.yaml``: an
HTTPRoute to Thanos Receive's router, an HTTPRoute to Loki's distributors, a GRPCRoute to Tempo's OTLP
receiver, the HTTPRoute of Grafana), each attached to a section of the Gateway ``fleet-ingest``. From those
routes this module renders, on the hub (``infrastructure/ingest/<hub>/``):

- the Gateway ``fleet-ingest`` (Gateway API v1.6.1, standard channel) in the gateway component's namespace:
  one HTTPS listener per route section, on 443, with the route's host, TLS terminated with one certificate
  for all of them, and each listener admitting only that route's kind from that route's namespace;
- the Certificate of those hosts, from the hub's ACME DNS-01 ClusterIssuer (``generator.render.issuers``);
- the SecurityPolicy ``fleet-ingest`` (Envoy Gateway v1.9.0 ``gateway.envoyproxy.io/v1alpha1``,
  ``spec.basicAuth.users``: an Opaque Secret whose key ``.htpasswd`` holds ``user:{SHA}hash`` lines;
  api/v1alpha1/basic_auth_types.go) targeting the listeners of the routes labelled
  ``fleet.gitops.io/ingest: push`` (a Gateway ``sectionName`` target: api/v1alpha1/securitypolicy_types.go);
- the ExternalSecret that assembles that htpasswd Secret from one line per cluster, read from the hub's
  secret store (key ``fleet-ingest-<cluster>``, property ``htpasswd``).

On every cluster whose agents push to the hub (kube-prometheus-stack's Prometheus, Alloy: found by chart,
like cert-manager in ``issuers``), an ExternalSecret ``fleet-ingest`` in each such component's namespace
reads the cluster's own password from its secret store (same key, property ``password``) and writes the
Secret ``fleet-ingest`` (``username`` = cluster name, ``password``) that the component values reference.
Each cluster has its own credential: revoking one cluster is removing its line; no secret is in Git.
Without a secrets backend (``fleet.security.secrets``) no ExternalSecret is rendered: the Secrets keep their names
and the operator creates them by hand; until then Envoy Gateway answers the guarded routes with 500 (fail closed:
internal/gatewayapi/securitypolicy.go at v1.9.0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from generator.errors import InventoryError, Problem
from generator.inventory.resolve import ResolvedCluster, ResolvedFleet, gateway_component
from generator.render.externalsecrets import ESO_API
from generator.render.issuers import ISSUER
from generator.render.planner import Contribution, Planner

if TYPE_CHECKING:
    from generator.render.memo import PlannerMemo

INGEST_DIR = "infrastructure/ingest"
#: The Gateway the hub's ingest routes attach to (their parentRefs name it).
GATEWAY = "fleet-ingest"
#: Routes with this label are push endpoints: their listeners require a cluster's credential.
PUSH_LABEL = "fleet.gitops.io/ingest"
PUSH_VALUE = "push"
#: The Secret every pushing component reads (username, password) and the hub's htpasswd Secret.
CREDENTIAL_SECRET = "fleet-ingest"
USERS_SECRET = "fleet-ingest-users"
#: Charts whose pods push to the hub: kube-prometheus-stack (remote write), Alloy (logs and traces).
CLIENT_CHARTS = ("kube-prometheus-stack", "alloy")
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute")
GATEWAY_GROUP = "gateway.networking.k8s.io"


def remote_key(cluster: str) -> str:
    """The secret-store key of a cluster's ingest credential (properties ``password`` and ``htpasswd``)."""
    return f"{CREDENTIAL_SECRET}-{cluster}"


def _substitute(text: str, variables: dict[str, str]) -> str:
    """Flux's ``${var}`` substitution of one string, with the cluster's variables."""
    for name, value in variables.items():
        text = text.replace("${" + name + "}", value)
    return text


def ingest_routes(cluster: ResolvedCluster) -> list[dict[str, Any]]:
    """The route configs of the cluster's components attached to the Gateway ``fleet-ingest``."""
    return [config for item in cluster.components for config in item.component.configs if _attached(config)]


def _attached(config: Any) -> bool:
    """Whether a component config is a route with a parent reference to the Gateway ``fleet-ingest``."""
    if not isinstance(config, dict) or config.get("kind") not in ROUTE_KINDS:
        return False
    parents = config.get("spec", {}).get("parentRefs", []) if isinstance(config.get("spec"), dict) else []
    return isinstance(parents, list) and any(
        isinstance(p, dict) and p.get("name") == GATEWAY and p.get("kind", "Gateway") == "Gateway" for p in parents)


def _route_shape_problem(route: dict[str, Any]) -> str | None:
    """What an attached route lacks for the hub's listener (None when it has it all)."""
    metadata, spec = route.get("metadata"), route["spec"]
    if not isinstance(metadata, dict) or not isinstance(metadata.get("namespace"), str):
        return "metadata.namespace must be a string"
    if not isinstance(metadata.get("labels", {}), dict):
        return "metadata.labels must be a map"
    hostnames = spec.get("hostnames")
    if not isinstance(hostnames, list) or not hostnames or not isinstance(hostnames[0], str):
        return "spec.hostnames must be a list of host names (the first is the listener's)"
    if not all(isinstance(p, dict) for p in spec["parentRefs"]):
        return "spec.parentRefs must be a list of maps"
    if any(p.get("name") == GATEWAY and not isinstance(p.get("sectionName"), str) for p in spec["parentRefs"]):
        return f"a parentRef to the Gateway {GATEWAY} must name its listener (sectionName, a string)"
    return None


def _route_problems(fleet: ResolvedFleet) -> list[Problem]:
    """Every ingest route of any component that the hub's Gateway could not serve, at its file and line."""
    problems = []
    for entry in fleet.inventory.components:
        for index, config in enumerate(entry.item.configs):
            message = _route_shape_problem(config) if _attached(config) else None
            if message is not None:
                file, line, column = entry.where("configs", index)
                where = ".".join(str(p) for p in (*entry.path, "configs", index))
                problems.append(Problem(file, line, column, where,
                                        f"{config['kind']} attached to the Gateway {GATEWAY}: {message}"))
    return problems


def _clients(cluster: ResolvedCluster) -> list[str]:
    """Namespaces of the cluster's components that push to the hub."""
    return sorted({c.component.namespace for c in cluster.components if c.component.chart.name in CLIENT_CHARTS})


def _listener(route: dict[str, Any], section: str, variables: dict[str, str]) -> dict[str, Any]:
    hostnames = route.get("spec", {}).get("hostnames", [])
    namespace = route["metadata"]["namespace"]
    return {
        "name": section,
        "protocol": "HTTPS",
        "port": 443,
        "hostname": _substitute(hostnames[0], variables),
        "tls": {"mode": "Terminate", "certificateRefs": [{"name": f"{GATEWAY}-tls"}]},
        "allowedRoutes": {
            "kinds": [{"group": GATEWAY_GROUP, "kind": route["kind"]}],
            "namespaces": {"from": "Selector",
                           "selector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
        },
    }


def _hub_objects(hub: ResolvedCluster, fleet: ResolvedFleet, routes: list[dict[str, Any]], namespace: str,
                 gateway_class: str, store: str | None, members: list[str]) -> list[dict[str, Any]]:
    """Gateway, Certificate, SecurityPolicy and htpasswd ExternalSecret of the hub."""
    variables = hub.variables(fleet.fleet)
    listeners: dict[str, dict[str, Any]] = {}
    push: set[str] = set()
    for route in routes:
        for parent in route["spec"]["parentRefs"]:
            if parent.get("name") != GATEWAY:
                continue
            section = parent["sectionName"]
            listeners[section] = _listener(route, section, variables)
            if route["metadata"].get("labels", {}).get(PUSH_LABEL) == PUSH_VALUE:
                push.add(section)
    ordered = [listeners[name] for name in sorted(listeners)]
    hosts = sorted({listener["hostname"] for listener in ordered})
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": f"{GATEWAY_GROUP}/v1",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY, "namespace": namespace},
            "spec": {"gatewayClassName": gateway_class, "listeners": ordered},
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": GATEWAY, "namespace": namespace},
            "spec": {
                "secretName": f"{GATEWAY}-tls",
                "dnsNames": hosts,
                "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": ISSUER},
                "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            },
        },
    ]
    if not push:
        return objects
    objects.append({
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "SecurityPolicy",
        "metadata": {"name": GATEWAY, "namespace": namespace},
        "spec": {
            "targetRefs": [{"group": GATEWAY_GROUP, "kind": "Gateway", "name": GATEWAY, "sectionName": section}
                           for section in sorted(push)],
            "basicAuth": {"users": {"name": USERS_SECRET}},
        },
    })
    if store is None:
        return objects
    lines = "\n".join(f'{{{{ index . "{member}" }}}}' for member in members)
    objects.append(_external_secret(
        USERS_SECRET, namespace, store, {".htpasswd": lines + "\n"},
        [{"secretKey": member, "remoteRef": {"key": remote_key(member), "property": "htpasswd"}} for member in members],
    ))
    return objects


def _credential(cluster: ResolvedCluster, namespace: str, store: str) -> dict[str, Any]:
    """The ExternalSecret writing a cluster's ingest credential into one namespace."""
    return _external_secret(
        CREDENTIAL_SECRET, namespace, store, {"username": cluster.name, "password": "{{ .password }}"},
        [{"secretKey": "password", "remoteRef": {"key": remote_key(cluster.name), "property": "password"}}],
    )


def _external_secret(
    name: str, namespace: str, store: str, template: dict[str, str], data: list[dict[str, Any]]
) -> dict[str, Any]:
    """An ExternalSecret from the cluster's store that owns Secret ``name``, its keys templated from ``data``."""
    return {
        "apiVersion": ESO_API,
        "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "refreshInterval": "10m",
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": store},
            "target": {
                "name": name,
                "creationPolicy": "Owner",
                "template": {"engineVersion": "v2", "mergePolicy": "Replace", "data": template},
            },
            "data": data,
        },
    }


def _gateway_class(fleet: ResolvedFleet) -> tuple[str, str] | None:
    """(namespace, GatewayClass) of the gateway component's own Gateway, or None without a gateway component."""
    gateway = gateway_component(fleet.components)
    if gateway is None:
        return None
    for config in gateway.configs:
        if config.get("kind") == "Gateway":
            return gateway.namespace, str(config["spec"]["gatewayClassName"])
    return None


def plan_ingest(fleet: ResolvedFleet, memo: PlannerMemo | None = None) -> Contribution:
    """The hub's ingest Gateway and the ingest credential of every cluster (see the module docstring); with
    ``memo`` (generator/render/memo.py) what each cluster publishes and pushes, and the credential files of a
    cluster that publishes nothing, are read from it where its inputs did not change."""
    planner = Planner()
    contribution = Contribution()
    fleet_file = fleet.inventory.fleet.file.file
    backend = fleet.fleet.security.secrets
    store = backend.store_name if backend is not None else None
    parts: dict[str, dict[str, str]] = {}
    for cluster in fleet.clusters:
        def part(cluster: ResolvedCluster = cluster) -> dict[str, str]:  # this cluster and fleet-level inputs
            publishes, clients = bool(ingest_routes(cluster)), _clients(cluster)
            found = {"routes": "1" if publishes else "", "client": "1" if clients else ""}
            if not publishes and store is not None and clients:
                files = Planner(planner.env)
                _add_files(files, cluster, [_credential(cluster, ns, store) for ns in clients], fleet_file)
                found.update(files.files)
            return found

        parts[cluster.name] = part() if memo is None else memo.cluster_part("ingest", fleet, cluster, part)
    hubs = [c for c in fleet.clusters if parts[c.name]["routes"]]
    if not hubs:
        return contribution
    problems = _route_problems(fleet)
    gateway = _gateway_class(fleet)
    cluster_sources = {s.item.name: s for s in fleet.inventory.clusters}
    for hub in hubs:
        if gateway is None or not any(gateway_component(fleet.components) is c.component for c in hub.components):
            file, line, column = cluster_sources[hub.name].where()
            problems.append(Problem(file, line, column, ".".join(str(p) for p in cluster_sources[hub.name].path),
                                    f"cluster '{hub.name}' publishes ingest routes (Gateway {GATEWAY}) but runs no "
                                    "gateway component to serve that Gateway"))
    if problems:
        raise InventoryError(problems)
    assert gateway is not None
    members = sorted(c.name for c in fleet.clusters if parts[c.name]["client"])
    for cluster in fleet.clusters:
        if parts[cluster.name]["routes"]:  # the hub: its objects list every member
            documents = [] if store is None else [_credential(cluster, ns, store) for ns in _clients(cluster)]
            documents.extend(_hub_objects(cluster, fleet, ingest_routes(cluster), gateway[0], gateway[1], store,
                                          members))
            files = Planner(planner.env)
            _add_files(files, cluster, documents, fleet_file)
            planned = files.files
        else:
            planned = {path: text for path, text in parts[cluster.name].items() if "/" in path}
        if not planned:
            continue
        planner.files.update(planned)
        contribution.cluster_configs.setdefault(cluster.name, []).append(f"{INGEST_DIR}/{cluster.name}")
    contribution.files = planner.files
    return contribution


def _add_files(planner: Planner, cluster: ResolvedCluster, documents: list[dict[str, Any]], fleet_file: str) -> None:
    """A cluster's ``ingest.yaml`` of ``documents`` and its kustomization (nothing without documents)."""
    if not documents:
        return
    directory = f"{INGEST_DIR}/{cluster.name}"
    sources = [fleet_file, *cluster.sources]
    planner.add_yaml(f"{directory}/ingest.yaml", documents, sources)
    planner.add_yaml(f"{directory}/kustomization.yaml",
                     [{"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                       "resources": ["ingest.yaml"]}], sources)
