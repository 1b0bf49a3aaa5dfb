"""The global name of a failover app (``<host>.<domain>``) is served over TLS by the Gateway of both clusters of its
pair, attached to the app's route (and to the route Flagger builds from the Canary), and never published by the
clusters' external-dns — the Route 53 failover records own it.

Checks read the committed golden tree (the real kustomize build, Flux substitution and helm template of the
service chart of each cluster) and follow the upstream code that acts on those objects:

- Envoy Gateway v1.9.0: ListenerSet admission (internal/gatewayapi/listenerset.go ``isListenerSetAllowed``), route
  parents (internal/gatewayapi/helpers.go ``GetReferencedListeners``: a Gateway parentRef never reaches ListenerSet
  listeners), listener namespaces (internal/gatewayapi/contexts.go ``AllowsNamespace``);
- Flagger v1.44.0: the HTTPRoute it owns copies ``gatewayRefs``/``hosts`` (pkg/router/gateway_api.go), and
  ``GetRoutes`` waits for every parentRef to be Accepted;
- cert-manager v1.21.1: solver choice (pkg/util/solverpicker/solverpicker.go: dnsNames before dnsZones, then the
  longest zone);
- external-dns v0.21.0 (chart 1.21.1): gateway-httproute source (source/gateway.go: ListenerSet parents only with
  ``--gateway-listener-sets``, listener hostname ``gwMatchingHost``, namespaces ``routeIsAllowed``) and the domain
  filter (endpoint/domain_filter.go ``matchFilter``).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from _buildkit import options, tools
from conftest import REPO

from generator.build.fleet import build_fleet
from generator.cli import main
from generator.render.pipeline import plan
from generator.verify.schema import CrdCatalogue, SchemaValidator
from generator.yamlio import load_documents

GOLDEN = REPO / "golden"
FLEET = plan(REPO).fleet
DOMAIN = FLEET.fleet.domain
WORKLOADS = [c.name for c in FLEET.clusters if c.cluster.role == "workload"]
FAILOVER = [a for a in FLEET.apps if a.failover is not None]
PAIRS = sorted((a.name, c) for a in FAILOVER for c in (a.failover.primary, a.failover.secondary))  # type: ignore[union-attr]
GLOBAL_NAMES = {f"{a.host}.{DOMAIN}" for a in FAILOVER}
GATEWAY_NS = "envoy-gateway-system"
GROUP = "gateway.networking.k8s.io"


def objects_of(cluster: str, root: Path = GOLDEN) -> list[dict[str, Any]]:
    return [doc for path in sorted((root / cluster).rglob("*.yaml")) for doc in load_documents(path.read_text())]


def one(objects: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name
             and o["metadata"].get("namespace") == namespace]
    assert len(found) == 1, f"{kind} {namespace}/{name}: {len(found)} found"
    return found[0]


def namespace_labels(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    """A namespace's labels as the API server keeps them: it adds ``kubernetes.io/metadata.name`` to every one."""
    found = [o for o in objects if o["kind"] == "Namespace" and o["metadata"]["name"] == name]
    labels = dict(found[0]["metadata"].get("labels") or {}) if found else {}
    return {**labels, "kubernetes.io/metadata.name": name}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics (matchLabels and the four operators)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, op, values = expression["key"], expression["operator"], expression.get("values") or []
        if (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values):
            return False
    return True


def hostname_match(listener: str | None, route: str) -> bool:
    """Gateway API hostname intersection of a listener and a route hostname (no wildcard routes here)."""
    if not listener:
        return True
    if listener.startswith("*."):
        return route.endswith(listener[1:])
    return listener == route


def routes(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every HTTPRoute the cluster ends up with: the chart's and the gateway's, and the one Flagger creates for a
    ``gatewayapi:v1`` Canary (named after the target, parentRefs = gatewayRefs, hostnames = hosts)."""
    found = [o for o in objects if o["kind"] == "HTTPRoute"]
    for canary in objects:
        if canary["kind"] == "Canary" and canary["spec"]["provider"] == "gatewayapi:v1":
            service = canary["spec"]["service"]
            found.append({"kind": "HTTPRoute", "metadata": {"name": canary["spec"]["targetRef"]["name"],
                                                            "namespace": canary["metadata"]["namespace"]},
                          "spec": {"parentRefs": service["gatewayRefs"], "hostnames": service["hosts"]}})
    return found


def attached_listeners(objects: list[dict[str, Any]], route: dict[str, Any], parent: dict[str, Any],
                       *, listener_sets: bool = True) -> list[tuple[str, dict[str, Any]]]:
    """(owner kind, listener) a parentRef of ``route`` reaches, as Envoy Gateway v1.9.0 resolves it: a Gateway ref
    its own listeners only, a ListenerSet ref (when ``listener_sets``) that ListenerSet's, if its Gateway admits
    it; filtered by sectionName, the listener's allowed kinds and namespaces."""
    namespace = parent.get("namespace", route["metadata"]["namespace"])
    kind = parent.get("kind", "Gateway")
    if kind == "ListenerSet":
        if not listener_sets:
            return []
        owners = [o for o in objects if o["kind"] == "ListenerSet" and o["metadata"]["name"] == parent["name"]
                  and o["metadata"]["namespace"] == namespace]
        if not owners:
            return []
        owner = owners[0]
        ref = owner["spec"]["parentRef"]
        gateway = one(objects, "Gateway", ref["name"], ref.get("namespace", namespace))
        allowed = (gateway["spec"].get("allowedListeners") or {}).get("namespaces") or {}
        admitted = {"All": True, "Same": namespace == gateway["metadata"]["namespace"],
                    "Selector": selects(allowed.get("selector") or {}, namespace_labels(objects, namespace))}
        if not admitted.get(allowed.get("from", "None"), False):
            return []
    else:
        owner = one(objects, "Gateway", parent["name"], namespace)
    owner_ns = owner["metadata"]["namespace"]
    found = []
    for listener in owner["spec"]["listeners"]:
        if parent.get("sectionName") not in (None, listener["name"]):
            continue
        allowed = listener.get("allowedRoutes") or {}
        kinds = [k["kind"] for k in allowed.get("kinds") or []]
        if kinds and "HTTPRoute" not in kinds:
            continue
        namespaces = allowed.get("namespaces") or {"from": "Same"}
        route_ns = route["metadata"]["namespace"]
        if not {"All": True, "Same": route_ns == owner_ns,
                "Selector": selects(namespaces.get("selector") or {}, namespace_labels(objects, route_ns))}[
                namespaces.get("from", "Same")]:
            continue
        found.append((owner["kind"], listener))
    return found


def pick_solver(issuer: dict[str, Any], name: str) -> dict[str, Any] | None:
    """cert-manager v1.21.1's solver for a DNS-01 challenge of ``name``: every selector must match; a dnsNames
    match wins, then the zone with the most labels."""
    best, best_key = None, (-1, -1)
    for solver in issuer["spec"]["acme"]["solvers"]:
        if "dns01" not in solver:
            continue
        selector = solver.get("selector") or {}
        names, zones = selector.get("dnsNames") or [], selector.get("dnsZones") or []
        if names and name not in names:
            continue
        matching = [z for z in zones if name == z or name.endswith("." + z)]
        if zones and not matching:
            continue
        key = (1 if names else 0, max((z.count(".") + 1 for z in matching), default=0))
        if key > best_key:
            best, best_key = solver, key
    return best


# --- both clusters of the pair serve the global name over TLS --------------------------------------------------


@pytest.mark.parametrize(("app_name", "cluster"), PAIRS)
def test_the_pair_terminates_tls_for_the_global_name_and_routes_it_to_the_canary_split(app_name: str,
                                                                                       cluster: str) -> None:
    app = next(a for a in FAILOVER if a.name == app_name)
    global_name, cluster_name = f"{app.host}.{DOMAIN}", f"{app.host}.{cluster}.{DOMAIN}"
    objects = objects_of(cluster)
    gateway = one(objects, "Gateway", "fleet", GATEWAY_NS)
    listener_set = one(objects, "ListenerSet", f"{app.name}-global", GATEWAY_NS)
    assert listener_set["apiVersion"] == f"{GROUP}/v1"  # standard channel v1.6.1 (no XListenerSet)
    assert listener_set["spec"]["parentRef"] == {"group": GROUP, "kind": "Gateway", "name": "fleet",
                                                 "namespace": GATEWAY_NS}
    # the Gateway admits ListenerSets of its own namespace only (Gateway API default: none)
    assert gateway["spec"]["allowedListeners"] == {"namespaces": {"from": "Same"}}
    listeners = {entry["name"]: entry for entry in listener_set["spec"]["listeners"]}
    https, http = listeners["https"], listeners["http"]
    gateway_https = next(entry for entry in gateway["spec"]["listeners"] if entry["name"] == "https")
    assert (https["protocol"], https["port"], https["hostname"]) == ("HTTPS", gateway_https["port"], global_name)
    assert (http["protocol"], http["hostname"]) == ("HTTP", global_name)
    # merged with the Gateway's listeners, port/protocol/hostname stay unique (no Conflicted listener)
    merged = [(e["port"], e["protocol"], e.get("hostname")) for e in gateway["spec"]["listeners"]
              + listener_set["spec"]["listeners"]]
    assert len(merged) == len(set(merged))

    # TLS: the listener's Secret is the Certificate's, for exactly the global name, from the fleet's issuer
    (ref,) = https["tls"]["certificateRefs"]
    certificate = one(objects, "Certificate", f"{app.name}-global", GATEWAY_NS)
    assert ref == {"name": certificate["spec"]["secretName"]} and https["tls"]["mode"] == "Terminate"
    assert certificate["spec"]["dnsNames"] == [global_name]
    issuer = one(objects, "ClusterIssuer", certificate["spec"]["issuerRef"]["name"])
    solver = pick_solver(issuer, global_name)
    assert solver is not None, "no ACME solver of the ClusterIssuer covers the global name"
    route53 = solver["dns01"]["route53"]
    assert route53["hostedZoneID"] == app.failover.hosted_zone_id  # type: ignore[union-attr]  # the zone of <domain>
    own = pick_solver(issuer, cluster_name)
    assert own is not None and own["selector"] == {"dnsZones": [f"{cluster}.{DOMAIN}"]}
    # same identity and region as the cluster's own solver: only the zone differs
    assert {**route53, "hostedZoneID": None} == {**own["dns01"]["route53"], "hostedZoneID": None}

    # the app's route (Flagger's, from the Canary, in prod): both names, each reaching the listener with its cert
    app_routes = [r for r in routes(objects)
                  if r["metadata"]["name"] == app.name and r["metadata"].get("namespace") == app.target_namespace]
    assert len(app_routes) == 1
    route = app_routes[0]
    assert route["spec"]["hostnames"] == [cluster_name, global_name]
    canary = [o for o in objects if o["kind"] == "Canary" and o["metadata"]["name"] == app.name]
    assert canary, "prod: Flagger owns the route, so the global name gets the canary's weight split too"
    served: dict[str, set[str]] = {}
    for parent in route["spec"]["parentRefs"]:
        reached = attached_listeners(objects, route, parent)
        # Flagger's GetRoutes waits for every parentRef to be Accepted: each must reach a listener that matches
        assert any(any(hostname_match(lis.get("hostname"), h) for h in route["spec"]["hostnames"])
                   for _, lis in reached), parent
        for owner, lis in reached:
            for host in route["spec"]["hostnames"]:
                if hostname_match(lis.get("hostname"), host):
                    served.setdefault(host, set()).add(f"{owner}/{lis['name']}")
    assert served == {cluster_name: {"Gateway/https"}, global_name: {"ListenerSet/https"}}

    # plain HTTP to the global name only redirects to HTTPS, from a route of the gateway's own namespace
    redirect = one(objects, "HTTPRoute", f"{app.name}-global-https-redirect", GATEWAY_NS)
    (parent,) = redirect["spec"]["parentRefs"]
    assert [lis["name"] for _, lis in attached_listeners(objects, redirect, parent)] == ["http"]
    (rule,) = redirect["spec"]["rules"]
    assert rule == {"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]}

    # the proxies that terminate the global name are the ones the app's NetworkPolicy already admits
    policy = one(objects, "NetworkPolicy", app.name, app.target_namespace)
    peers = [peer for rule in policy["spec"]["ingress"] for peer in rule.get("from", [])]
    assert any(p.get("namespaceSelector") == {"matchLabels": {"kubernetes.io/metadata.name": GATEWAY_NS}}
               for p in peers)


@pytest.mark.parametrize("cluster", sorted({c for _, c in PAIRS}))
def test_no_other_namespace_can_attach_to_the_global_listener(cluster: str) -> None:
    """The HTTPS listener of the global name admits HTTPRoutes of the app's namespace only: another team's route
    claiming the name is not attached."""
    objects = objects_of(cluster)
    for app in FAILOVER:
        listener_set = one(objects, "ListenerSet", f"{app.name}-global", GATEWAY_NS)
        intruder = {"kind": "HTTPRoute", "metadata": {"name": "x", "namespace": "payments"},
                    "spec": {"hostnames": [f"{app.host}.{DOMAIN}"]}}
        parent = {"group": GROUP, "kind": "ListenerSet", "name": listener_set["metadata"]["name"],
                  "namespace": GATEWAY_NS, "sectionName": "https"}
        assert attached_listeners(objects, intruder, parent) == []
        owner = copy.deepcopy(intruder)
        owner["metadata"]["namespace"] = app.target_namespace
        assert [lis["name"] for _, lis in attached_listeners(objects, owner, parent)] == ["https"]


# --- nothing of it anywhere else --------------------------------------------------------------------------


def global_traces(objects: list[dict[str, Any]]) -> list[str]:
    """Every place a cluster's objects mention a global name or carry a global-name listener/solver."""
    traces = [f"{o['kind']} {o['metadata'].get('namespace')}/{o['metadata']['name']}" for o in objects
              if o["kind"] == "ListenerSet"]
    for obj in objects:
        text = repr(obj)
        for name in GLOBAL_NAMES:
            if re.search(rf"(?<![-a-z0-9.]){re.escape(name)}", text):
                traces.append(f"{obj['kind']} {obj['metadata'].get('namespace')}/{obj['metadata']['name']}: {name}")
    return sorted(set(traces))


@pytest.mark.parametrize("cluster", WORKLOADS)
def test_only_the_pair_receives_anything_for_the_global_name(cluster: str) -> None:
    traces = global_traces(objects_of(cluster))
    expected = {f"{app}-global" for app, c in PAIRS if c == cluster}
    if not expected:
        assert traces == []
    else:
        kinds = {t.split(" ")[0] for t in traces}
        assert kinds == {"ListenerSet", "Certificate", "HTTPRoute", "ClusterIssuer", "HelmRelease", "Canary"}, traces
    assert not any(p.name.startswith("listenerset.") for p in (GOLDEN / "management").rglob("*.yaml"))


def test_an_app_on_a_third_cluster_gets_no_global_name_there(fleet_root: Path) -> None:
    """storefront-web also runs on prod-eastus (outside its failover pair): the real build of that cluster has the
    app's route for its own host only, no ListenerSet, no global Certificate or solver; the pair is unchanged."""
    apps = fleet_root / "inventory" / "apps.yaml"
    text = apps.read_text()
    assert "clusters: [prod-us-east-1, prod-eu-west-1]" in text
    apps.write_text(text.replace("clusters: [prod-us-east-1, prod-eu-west-1]",
                                 "clusters: [prod-us-east-1, prod-eu-west-1, prod-eastus]"))
    build = build_fleet(fleet_root, options(clusters=("prod-eastus", "prod-us-east-1")), tools=tools())
    docs = {name: [doc for rel, res in b.resources.items() for doc in load_documents(res.text)]
            for name, b in build.clusters.items()}
    third = docs["prod-eastus"]
    release = one(third, "HelmRelease", "storefront-web", "storefront")
    assert release["spec"]["values"]["route"]["hostnames"] == [f"www.prod-eastus.{DOMAIN}"]
    assert global_traces(third) == []
    assert {t.split(" ")[0] for t in global_traces(docs["prod-us-east-1"])} == {
        "ListenerSet", "Certificate", "HTTPRoute", "ClusterIssuer", "HelmRelease", "Canary"}


# --- external-dns leaves the global name to the failover records ---------------------------------------------


def external_dns_names(objects: list[dict[str, Any]]) -> set[str]:
    """The names external-dns v0.21.0 (chart 1.21.1 values as the cluster's HelmRelease sets them) publishes from
    the cluster's HTTPRoutes, every parent taken as Accepted (the most it could ever publish)."""
    releases = [o for o in objects if o["kind"] == "HelmRelease" and o["metadata"]["name"] == "external-dns"]
    if not releases:  # a cluster may turn external-dns off (prod-eastus in the reference fleet)
        return set()
    values = releases[0]["spec"]["values"]
    sources = values.get("sources") or []
    args = values.get("extraArgs") or []
    listener_sets = bool(values.get("enableGatewayListenerSets")) or "--gateway-listener-sets" in args
    names: set[str] = set()
    if "gateway-httproute" not in sources:
        return names
    for route in routes(objects):
        annotations = route["metadata"].get("annotations") or {}
        assert "external-dns.alpha.kubernetes.io/hostname" not in annotations
        for parent in route["spec"]["parentRefs"]:
            for _, listener in attached_listeners(objects, route, parent, listener_sets=listener_sets):
                names.update(h for h in route["spec"].get("hostnames") or []
                             if hostname_match(listener.get("hostname"), h))
    filters, excluded = values.get("domainFilters") or [], values.get("excludeDomains") or []

    def matches(filters: list[str], name: str) -> bool:
        return any(name == f or name.endswith("." + f.lstrip(".")) for f in filters)

    return {n for n in names if (not filters or matches(filters, n)) and not matches(excluded, n)}


@pytest.mark.parametrize("cluster", WORKLOADS)
def test_external_dns_publishes_the_cluster_hosts_and_never_the_global_name(cluster: str) -> None:
    objects = objects_of(cluster)
    published = external_dns_names(objects)
    resolved = FLEET.cluster(cluster)
    assert resolved is not None
    hosts = {f"{a.app.host}.{cluster}.{DOMAIN}" for a in resolved.apps if a.app.host}
    runs = any(o["kind"] == "HelmRelease" and o["metadata"]["name"] == "external-dns" for o in objects)
    assert hosts and (hosts <= published if runs else not published)  # the emulation sees the routes it should
    assert not published & GLOBAL_NAMES


def test_the_external_dns_check_fails_when_the_cluster_would_publish_the_global_name() -> None:
    """Turn on ListenerSets and widen the domain filter to the apex zone: external-dns would then create records for
    www.<domain> next to the failover records — and the check sees it."""
    objects = copy.deepcopy(objects_of("prod-us-east-1"))
    release = one(objects, "HelmRelease", "external-dns", "external-dns")
    release["spec"]["values"]["domainFilters"] = [DOMAIN]
    assert not external_dns_names(objects) & GLOBAL_NAMES  # the Gateway listeners alone do not match it
    release["spec"]["values"]["enableGatewayListenerSets"] = True
    assert external_dns_names(objects) & GLOBAL_NAMES == GLOBAL_NAMES


# --- schemas and inventory errors -------------------------------------------------------------------------


def test_listener_sets_validate_strictly_against_gateway_api_v1_6_1() -> None:
    catalogue = CrdCatalogue.builtin()
    source = catalogue.source_of(f"{GROUP}/v1", "ListenerSet")
    assert source is not None and source.name == "gateway.networking.k8s.io_listenersets.yaml.gz"
    validator = SchemaValidator(catalogue)
    for _, cluster in PAIRS:
        for obj in objects_of(cluster):
            if obj["kind"] in ("ListenerSet", "Gateway", "HTTPRoute", "Certificate", "ClusterIssuer", "Canary"):
                assert validator.validate(obj) == [], (cluster, obj["kind"], obj["metadata"]["name"])
    broken = copy.deepcopy(one(objects_of(PAIRS[0][1]), "ListenerSet", f"{PAIRS[0][0]}-global", GATEWAY_NS))
    broken["spec"]["listeners"][1]["hostName"] = "x"
    assert any("unknown field" in p.message or "hostName" in p.path for p in validator.validate(broken))


def test_a_gateway_that_admits_no_listener_set_is_refused(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    components = fleet_root / "inventory" / "components.yaml"
    text = components.read_text()
    line = "          allowedListeners: {namespaces: {from: Same}}\n"
    assert line in text
    components.write_text(text.replace(line, ""))
    assert main(["render", str(fleet_root)]) == 2
    err = capsys.readouterr().err
    assert "components.yaml:" in err and "allowedListeners" in err and "ListenerSet" in err
    assert not (fleet_root / "out").exists()
