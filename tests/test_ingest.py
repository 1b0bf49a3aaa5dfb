"""The hub's ingest endpoints on the real build of the reference fleet: every address a cluster pushes to
(Prometheus remote write, Alloy's loki.write and OTLP exporter) is served by an HTTPS listener of the hub's
Gateway fleet-ingest, with a certificate its issuer can solve, a route on that listener to the right Service
and port, and a SecurityPolicy that requires the cluster's own credential, which the cluster carries."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from _buildkit import options, reference_build, tools
from conftest import REPO, copy_reference_fleet

from generator.build.fleet import build_fleet
from generator.cli import main
from generator.errors import InventoryError
from generator.inventory.loader import load_inventory
from generator.inventory.models import GrafanaSso
from generator.inventory.resolve import resolve
from generator.render.grafana_sso import role_attribute_path
from generator.render.ingest import INGEST_DIR as INGEST
from generator.render.ingest import plan_ingest
from generator.yamlio import dump_documents, load_documents, load_file

HUB = "management"
CLUSTERS = [c.name for c in resolve(load_inventory(REPO)).clusters]


def _objects(cluster: str) -> list[dict[str, Any]]:
    build = reference_build().clusters[cluster]
    return [load_documents(res.text)[0] for res in build.resources.values()]


def _one(objects: list[dict[str, Any]], kind: str, namespace: str | None, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name
             and o["metadata"].get("namespace") == namespace]
    assert len(found) == 1, (kind, namespace, name, len(found))
    return found[0]


def _release_values(objects: list[dict[str, Any]], namespace: str) -> dict[str, Any] | None:
    releases = [o for o in objects if o["kind"] == "HelmRelease" and o["metadata"]["namespace"] == namespace]
    return releases[0]["spec"]["values"] if releases else None


def _push_targets(cluster: str) -> list[tuple[str, str, str]]:
    """(what, host, path or gRPC service) of every address the cluster's agents push to, from their values."""
    objects = _objects(cluster)
    targets = []
    monitoring = _release_values(objects, "monitoring")
    assert monitoring is not None
    for write in monitoring["prometheus"]["prometheusSpec"]["remoteWrite"]:
        url = urlsplit(write["url"])
        assert url.scheme == "https"
        targets.append(("metrics", url.hostname or "", url.path))
    alloy = _release_values(objects, "alloy")
    if alloy is not None:
        config = alloy["alloy"]["configMap"]["content"]
        for url in re.findall(r'url = "([^"]+)"', config):
            parsed = urlsplit(url)
            assert parsed.scheme == "https"
            targets.append(("logs", parsed.hostname or "", parsed.path))
        (endpoint,) = re.findall(r'otelcol\.exporter\.otlp "hub" \{\s*client \{\s*endpoint = "([^"]+)"', config)
        host, port = endpoint.rsplit(":", 1)
        assert port == "443"  # the Gateway's HTTPS listener; TLS is the OTLP exporter's default
        targets.append(("traces", host, "opentelemetry.proto.collector.trace.v1.TraceService"))
    return targets


def _hub_route(hub: list[dict[str, Any]], host: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Gateway listener serving ``host`` and the one route attached to it."""
    gateway = _one(hub, "Gateway", "envoy-gateway-system", "fleet-ingest")
    listeners = [listener for listener in gateway["spec"]["listeners"] if listener["hostname"] == host]
    assert len(listeners) == 1, host
    listener = listeners[0]
    routes = [o for o in hub if o["kind"] in ("HTTPRoute", "GRPCRoute")
              and any(p["name"] == "fleet-ingest" and p.get("namespace") == "envoy-gateway-system"
                      and p.get("sectionName") == listener["name"] for p in o["spec"]["parentRefs"])]
    assert len(routes) == 1, host
    return listener, routes[0]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_every_push_address_is_served_by_an_authenticated_tls_listener_of_the_hub(cluster: str) -> None:
    hub = _objects(HUB)
    certificate = _one(hub, "Certificate", "envoy-gateway-system", "fleet-ingest")
    issuer = _one(hub, "ClusterIssuer", None, certificate["spec"]["issuerRef"]["name"])
    zones = [z for s in issuer["spec"]["acme"]["solvers"] for z in s["selector"]["dnsZones"]]
    policy = _one(hub, "SecurityPolicy", "envoy-gateway-system", "fleet-ingest")
    guarded = {(t["kind"], t["name"], t["sectionName"]) for t in policy["spec"]["targetRefs"]}
    targets = _push_targets(cluster)
    assert {what for what, _, _ in targets} == ({"metrics", "logs", "traces"} if cluster != HUB else {"metrics"})
    for what, host, path in targets:
        listener, route = _hub_route(hub, host)
        assert listener["protocol"] == "HTTPS" and listener["port"] == 443
        assert listener["tls"]["mode"] == "Terminate"
        assert listener["tls"]["certificateRefs"] == [{"name": certificate["spec"]["secretName"]}]
        assert host in certificate["spec"]["dnsNames"]
        assert any(host.endswith("." + zone) for zone in zones), (host, zones)  # DNS-01 solvable by the hub
        # the listener admits exactly this route: its kind, its namespace
        allowed = listener["allowedRoutes"]
        assert allowed["kinds"] == [{"group": "gateway.networking.k8s.io", "kind": route["kind"]}]
        assert allowed["namespaces"]["selector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": route["metadata"]["namespace"]}
        assert route["spec"]["hostnames"] == [host]
        (rule,) = route["spec"]["rules"]
        if route["kind"] == "HTTPRoute":
            assert [m["path"] for m in rule["matches"]] == [{"type": "Exact", "value": path}], what
        else:
            assert [m["method"]["service"] for m in rule["matches"]] == [path], what
        # no caller picks a tenant of the single-tenant stores
        removed = [h for f in rule["filters"] for h in f["requestHeaderModifier"]["remove"]]
        assert removed == (["THANOS-TENANT"] if what == "metrics" else ["X-Scope-OrgID"])
        assert ("Gateway", "fleet-ingest", listener["name"]) in guarded, what


def test_the_hub_accepts_exactly_the_credentials_of_the_clusters_that_push() -> None:
    hub = _objects(HUB)
    policy = _one(hub, "SecurityPolicy", "envoy-gateway-system", "fleet-ingest")
    users = policy["spec"]["basicAuth"]["users"]
    assert users.get("kind", "Secret") == "Secret" and "namespace" not in users  # same namespace, no grant
    secret = _one(hub, "ExternalSecret", "envoy-gateway-system", users["name"])
    assert secret["spec"]["target"]["name"] == users["name"]
    # Envoy Gateway v1.9.0 reads the key ".htpasswd" (api/v1alpha1/basic_auth_types.go BasicAuthUsersSecretKey)
    template = secret["spec"]["target"]["template"]["data"][".htpasswd"]
    entries = {d["secretKey"]: d["remoteRef"] for d in secret["spec"]["data"]}
    assert sorted(entries) == sorted(CLUSTERS)  # every cluster runs Prometheus, which pushes
    for cluster, ref in entries.items():
        assert ref == {"key": f"fleet-ingest-{cluster}", "property": "htpasswd"}
        assert f'{{{{ index . "{cluster}" }}}}' in template.splitlines()
    store = _one(hub, "ClusterSecretStore", None, secret["spec"]["secretStoreRef"]["name"])
    assert store["kind"] == "ClusterSecretStore"


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_each_cluster_carries_its_own_credential(cluster: str) -> None:
    objects = _objects(cluster)
    for namespace in ("monitoring", "alloy"):
        values = _release_values(objects, namespace)
        if values is None:
            continue
        secret = _one(objects, "ExternalSecret", namespace, "fleet-ingest")
        assert secret["spec"]["target"]["template"]["data"]["username"] == cluster
        assert secret["spec"]["data"] == [{"secretKey": "password",
                                           "remoteRef": {"key": f"fleet-ingest-{cluster}", "property": "password"}}]
        _one(objects, "ClusterSecretStore", None, secret["spec"]["secretStoreRef"]["name"])
        if namespace == "monitoring":
            (write,) = values["prometheus"]["prometheusSpec"]["remoteWrite"]
            assert write["basicAuth"] == {"username": {"name": "fleet-ingest", "key": "username"},
                                          "password": {"name": "fleet-ingest", "key": "password"}}
        else:
            config = values["alloy"]["configMap"]["content"]
            volume = values["controller"]["volumes"]["extra"][0]
            mount = values["alloy"]["mounts"]["extra"][0]
            assert volume["secret"]["secretName"] == "fleet-ingest" and mount["name"] == volume["name"]
            assert f'filename  = "{mount["mountPath"]}/password"' in config
            assert config.count(f'username = "{cluster}"') == 2  # loki.write and the OTLP exporter
            assert "basic_auth {" in config and "auth     = otelcol.auth.basic.hub.handler" in config


def test_without_a_secret_store_the_endpoints_stay_guarded_and_the_secrets_are_the_operators(tmp_path: Path) -> None:
    shutil.copytree(REPO / "inventory", tmp_path / "inventory")
    shutil.copytree(REPO / "overlays", tmp_path / "overlays")
    fleet_file = tmp_path / "inventory" / "fleet.yaml"
    text = fleet_file.read_text()
    start = text.index("    secrets:\n")
    end = text.index("\n\ndefaults:")
    fleet_file.write_text(text[:start].rstrip("\n") + text[end:])
    apps = tmp_path / "inventory" / "apps.yaml"
    apps.write_text(re.sub(r"    secrets:\n(      - [^\n]+\n)+", "", apps.read_text()))  # app secrets need a store
    files = plan_ingest(resolve(load_inventory(tmp_path))).files
    kinds = {path: [o["kind"] for o in load_documents(text)] for path, text in files.items()
             if path.endswith("/ingest.yaml")}
    assert list(kinds) == [f"{INGEST}/{HUB}/ingest.yaml"]  # no credential ExternalSecret on any cluster
    assert kinds[f"{INGEST}/{HUB}/ingest.yaml"] == ["Gateway", "Certificate", "SecurityPolicy"]


#: thanos 1.22.0, loki 18.11.0, tempo 2.2.4 packaged at their release tags (tests/fixtures/upstream-charts/SOURCES.md)
CHARTS = REPO / "tests" / "fixtures" / "upstream-charts"


def test_routes_reach_the_services_the_charts_render() -> None:
    """Each ingest route's backend is a Service port of ``helm template`` of the hub's upstream charts."""
    build = build_fleet(REPO, options(clusters=(HUB,), charts_dir=CHARTS), tools=tools())
    objects = [load_documents(r.text)[0] for r in build.clusters[HUB].resources.values()]
    services = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects if o["kind"] == "Service"}
    routes = [o for o in objects if o["kind"] in ("HTTPRoute", "GRPCRoute")
              and o["metadata"].get("labels", {}).get("fleet.gitops.io/ingest") == "push"]
    assert len(routes) == 3
    for route in routes:
        for backend in route["spec"]["rules"][0]["backendRefs"]:
            service = services[(route["metadata"]["namespace"], backend["name"])]
            assert backend["port"] in [p["port"] for p in service["spec"]["ports"]], backend


def test_grafana_is_served_with_tls_and_signs_in_through_the_fleets_provider() -> None:
    hub = _objects(HUB)
    sso = resolve(load_inventory(REPO)).fleet.grafana.sso
    assert sso is not None
    listener, route = _hub_route(hub, "grafana.acme.example.com")
    assert listener["protocol"] == "HTTPS" and listener["tls"]["certificateRefs"] == [{"name": "fleet-ingest-tls"}]
    policy = _one(hub, "SecurityPolicy", "envoy-gateway-system", "fleet-ingest")
    assert listener["name"] not in {t["sectionName"] for t in policy["spec"]["targetRefs"]}  # people sign in
    grafana = _one(hub, "Grafana", "grafana", "fleet")
    # the operator's Service <name>-service on port 3000 (grafana-operator v5.24.0)
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "fleet-service", "port": 3000}]
    assert route["metadata"]["namespace"] == grafana["metadata"]["namespace"]
    config = grafana["spec"]["config"]
    assert config["server"]["root_url"] == "https://grafana.acme.example.com"
    assert config["auth"]["disable_login_form"] == "true"
    oauth = config["auth.generic_oauth"]
    assert (oauth["enabled"], oauth["client_id"], oauth["auth_url"], oauth["token_url"], oauth["api_url"]) == (
        "true", sso.client_id, sso.auth_url, sso.token_url, sso.api_url)
    assert oauth["role_attribute_path"].startswith("contains(groups[*], 'platform') && 'Admin'")
    assert "client_secret" not in oauth  # never a value: the environment, from the Secret below
    (container,) = grafana["spec"]["deployment"]["spec"]["template"]["spec"]["containers"]
    (env,) = container["env"]
    assert container["name"] == "grafana" and env["name"] == "GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET"
    ref = env["valueFrom"]["secretKeyRef"]
    secret = _one(hub, "ExternalSecret", "grafana", ref["name"])
    assert secret["spec"]["data"] == [{"secretKey": ref["key"],
                                       "remoteRef": {"key": sso.client_secret_key, "property": ref["key"]}}]


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace("authUrl: https://", "authUrl: http://"), "authUrl"),
    (lambda t: t.replace("adminGroups: [platform]", "adminGroups: [\"it's\"]"), "adminGroups"),
])
def test_grafana_sso_settings_are_checked_with_file_and_line(tmp_path: Path, edit: Any, message: str) -> None:
    shutil.copytree(REPO / "inventory", tmp_path / "inventory")
    shutil.copytree(REPO / "overlays", tmp_path / "overlays")
    fleet_file = tmp_path / "inventory" / "fleet.yaml"
    fleet_file.write_text(edit(fleet_file.read_text()))
    with pytest.raises(InventoryError, match=message) as caught:
        load_inventory(tmp_path)
    assert "inventory/fleet.yaml:" in str(caught.value)


def test_the_grafana_sso_role_mapping_follows_the_groups() -> None:
    sso = GrafanaSso(client_id="c", auth_url="https://a", token_url="https://t", api_url="https://u",
                     admin_groups=["ops"], viewer_groups=["dev", "qa"])
    assert role_attribute_path(sso) == ("contains(groups[*], 'ops') && 'Admin' || contains(groups[*], 'dev') && "
                                        "'Viewer' || contains(groups[*], 'qa') && 'Viewer'")


def _route_config_index() -> tuple[int, int]:
    """(component, config) index of the thanos route attached to the ingest Gateway in the reference inventory."""
    data = load_file(REPO / "inventory" / "components.yaml", "inventory/components.yaml").data
    for index, component in enumerate(data["components"]):
        for position, config in enumerate(component.get("configs") or []):
            if config.get("kind") == "HTTPRoute" and any(
                    p.get("name") == "fleet-ingest" for p in config["spec"]["parentRefs"]):
                return index, position
    raise AssertionError("no ingest route in the reference components")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda route: route["spec"].__setitem__("hostnames", [3]), "spec.hostnames must be a list of host names"),
    (lambda route: route["metadata"].__setitem__("labels", []), "metadata.labels must be a map"),
    (lambda route: route["spec"]["parentRefs"][0].pop("sectionName"), "must name its listener"),
    (lambda route: route["spec"]["parentRefs"].append("metrics"), "spec.parentRefs must be a list of maps"),
])
def test_a_malformed_ingest_route_is_refused_at_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Any, message: str) -> None:
    """A route config the hub's Gateway cannot serve exits 2 at the config's file:line, never a traceback."""
    root = copy_reference_fleet(tmp_path / "fleet")
    path = root / "inventory" / "components.yaml"
    data = load_file(path, "inventory/components.yaml").data
    component, position = _route_config_index()
    edit(data["components"][component]["configs"][position])
    path.write_text(dump_documents([data]), encoding="utf-8")
    line = load_file(path, "inventory/components.yaml").position(("components", component, "configs", position)).line
    assert main(["render", str(root), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"inventory/components.yaml:{line}:" in err and message in err, err
    assert not (tmp_path / "out").exists()
