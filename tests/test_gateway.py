"""App hosts through the Gateway API: Envoy Gateway as the platform component, one Gateway per workload cluster,
an HTTPRoute per app host, its wildcard certificate issued by an ACME DNS-01 ClusterIssuer through the cluster's
cloud identity, external-dns reading HTTPRoutes, and no ingress-nginx anywhere.

The per-cluster checks read the committed golden tree (what every cluster really receives: kustomize build, Flux
substitution, helm template of the service chart), so they prove the wiring end to end, offline.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from generator.bench import make_fleet
from generator.cli import main
from generator.inventory.loader import load_inventory
from generator.inventory.resolve import resolve
from generator.render.issuers import plan_issuers
from generator.render.pipeline import plan
from generator.verify.schema import CrdCatalogue, SchemaValidator
from generator.yamlio import dump_documents, load_documents

GOLDEN = REPO / "golden"
RENDERED = plan(REPO)
FLEET = RENDERED.fleet
DOMAIN = FLEET.fleet.domain
WORKLOADS = [c for c in FLEET.clusters if c.cluster.role == "workload"]
GATEWAY_KINDS = ("GatewayClass", "Gateway", "HTTPRoute", "Certificate", "ClusterIssuer")


def golden_objects(cluster: str) -> list[dict[str, Any]]:
    """Every object the cluster receives, from its golden files."""
    return [doc for path in sorted((GOLDEN / cluster).rglob("*.yaml")) for doc in load_documents(path.read_text())]


def one(objects: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    found = [
        o for o in objects
        if o["kind"] == kind and o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace
    ]
    assert len(found) == 1, f"{kind} {namespace}/{name}: {len(found)} found"
    return found[0]


def host_matches(pattern: str, host: str) -> bool:
    """Gateway API hostname matching: a leading '*.' matches exactly one or more labels in front."""
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and host != pattern[2:]
    return pattern == host


# --- no retired parts ------------------------------------------------------------------------------------


def test_no_ingress_nginx_in_inventory_template_output_or_golden() -> None:
    places = [REPO / d for d in ("inventory", "overlays", "template", "charts", "golden")]
    hits = [
        str(p.relative_to(REPO))
        for place in places
        for p in place.rglob("*")
        if p.is_file() and re.search(r"ingress-nginx|ingressClassName|\bnginx\b", p.read_text(errors="replace"))
    ]
    hits += [path for path, text in RENDERED.files.items() if re.search(r"ingress-nginx|\bnginx\b", text)]
    assert hits == []
    kinds = {o["kind"] for c in FLEET.clusters for o in golden_objects(c.name)}
    assert "Ingress" not in kinds and "IngressClass" not in kinds


# --- what each workload cluster receives ---------------------------------------------------------------


@pytest.mark.parametrize("cluster", [c.name for c in WORKLOADS])
def test_every_app_host_is_routed_admitted_and_covered_by_an_issued_certificate(cluster: str) -> None:
    resolved = FLEET.cluster(cluster)
    assert resolved is not None
    objects = golden_objects(cluster)
    gateway = one(objects, "Gateway", "fleet", "envoy-gateway-system")
    gateway_class = one(objects, "GatewayClass", "envoy-gateway")
    assert gateway["spec"]["gatewayClassName"] == "envoy-gateway"
    assert gateway_class["spec"]["controllerName"] == "gateway.envoyproxy.io/gatewayclass-controller"
    https = next(listener for listener in gateway["spec"]["listeners"] if listener["name"] == "https")
    assert https["protocol"] == "HTTPS" and https["port"] == 443 and https["tls"]["mode"] == "Terminate"
    secret = https["tls"]["certificateRefs"][0]["name"]
    certificate = next(
        o for o in objects
        if o["kind"] == "Certificate" and o["spec"]["secretName"] == secret
        and o["metadata"]["namespace"] == "envoy-gateway-system"
    )
    issuer = one(objects, "ClusterIssuer", certificate["spec"]["issuerRef"]["name"])
    assert certificate["spec"]["issuerRef"]["kind"] == "ClusterIssuer"
    solvers = issuer["spec"]["acme"]["solvers"]
    # the cluster's zone first; a failover pair's clusters also solve their apps' global names
    # (exact names in the apex zone: tests/test_global_tls.py)
    assert all(sorted(s) == ["dns01", "selector"] for s in solvers), "DNS-01 only: no HTTP-01 solver pods anywhere"
    assert all(list(s["selector"]) == ["dnsNames"] for s in solvers[1:])
    provider = {"aws": "route53", "gcp": "cloudDNS", "azure": "azureDNS"}[resolved.cluster.cloud]
    assert all(list(s["dns01"]) == [provider] for s in solvers)
    assert solvers[0]["selector"]["dnsZones"] == [f"{cluster}.{DOMAIN}"]
    assert not any(o["kind"] == "Pod" or "acme.cert-manager.io" in o["apiVersion"] for o in objects)

    namespaces = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Namespace"}
    selector = https["allowedRoutes"]["namespaces"]
    assert selector["from"] == "Selector"
    hosts = [a for a in resolved.apps if a.app.host]
    assert hosts, "the reference fleet serves hosts on every workload cluster"
    for app in hosts:
        ns, hostname = app.app.target_namespace, f"{app.app.host}.{cluster}.{DOMAIN}"
        canary = _gateway_canary(objects, app.name, ns)
        # with a Flagger Canary (provider gatewayapi:v1) Flagger owns the route: the one it creates from the
        # Canary (fluxcd/flagger v1.44.0 pkg/router/gateway_api.go), else the chart's
        route = _flagger_route(canary) if canary else one(objects, "HTTPRoute", app.name, ns)
        # first the cluster's host; a failover pair's clusters also serve the global name (tests/test_global_tls.py)
        served_globally = app.app.failover is not None and cluster in (app.app.failover.primary,
                                                                         app.app.failover.secondary)
        assert route["spec"]["hostnames"] == [hostname, *([f"{app.app.host}.{DOMAIN}"] if served_globally else [])]
        parent = route["spec"]["parentRefs"][0]
        assert (parent["name"], parent["namespace"], parent["sectionName"]) == (
            "fleet", "envoy-gateway-system", "https"
        )
        assert host_matches(https["hostname"], hostname)
        assert any(host_matches(name, hostname) for name in certificate["spec"]["dnsNames"])
        assert fnmatch.fnmatch(hostname, f"*.{solvers[0]['selector']['dnsZones'][0]}")
        # the Gateway admits the route's namespace: a team namespace (label set by fleetgen's tenants layer)
        labels = namespaces[ns]["metadata"]["labels"]
        for expression in selector["selector"]["matchExpressions"]:
            assert expression["operator"] == "Exists" and expression["key"] in labels
        backend = route["spec"]["rules"][0]["backendRefs"][0]
        if canary:  # Flagger creates the Services from the Canary: <name>-primary on service.port
            assert backend["port"] == canary["spec"]["service"]["port"]
        else:
            service = one(objects, "Service", backend["name"], ns)
            assert backend["port"] == service["spec"]["ports"][0]["port"]
        # the app's NetworkPolicy admits the gateway's data plane (Envoy Gateway's proxy pod labels)
        policy = one(objects, "NetworkPolicy", app.name, ns)
        peers = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
        assert {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}},
            "podSelector": {"matchLabels": {
                "app.kubernetes.io/component": "proxy", "app.kubernetes.io/managed-by": "envoy-gateway"}},
        } in peers
    for namespace, data in namespaces.items():
        if not any(a.app.target_namespace == namespace for a in resolved.apps):
            assert "fleet.gitops.io/team" not in data["metadata"].get("labels", {}), f"{namespace} could attach routes"


def _gateway_canary(objects: list[dict[str, Any]], name: str, namespace: str) -> dict[str, Any] | None:
    return next(
        (o for o in objects if o["kind"] == "Canary" and o["metadata"]["name"] == name
         and o["metadata"]["namespace"] == namespace and o["spec"]["provider"] == "gatewayapi:v1"),
        None,
    )


def _flagger_route(canary: dict[str, Any]) -> dict[str, Any]:
    """The HTTPRoute Flagger's gatewayapi router creates for a Canary (Reconcile in pkg/router/gateway_api.go)."""
    service = canary["spec"]["service"]
    name = service.get("name", canary["spec"]["targetRef"]["name"])
    return {"spec": {
        "parentRefs": service["gatewayRefs"],
        "hostnames": service["hosts"],
        "rules": [{"backendRefs": [
            {"name": f"{name}-primary", "port": service["port"], "weight": 100},
            {"name": f"{name}-canary", "port": service["port"], "weight": 0},
        ]}],
    }}


@pytest.mark.parametrize("cluster", [c.name for c in WORKLOADS])
def test_crds_come_before_the_objects_that_need_them(cluster: str) -> None:
    """Gateway API and Envoy Gateway CRDs: the chart's crds/ in infra-controllers; Gateway & co. in infra-configs
    (dependsOn infra-controllers, which waits for the HelmReleases); app routes in apps-<team> after tenants."""
    release = one(golden_objects(cluster), "HelmRelease", "envoy-gateway", "envoy-gateway-system")
    assert release["spec"]["install"]["crds"] == release["spec"]["upgrade"]["crds"] == "CreateReplace"
    source = one(golden_objects(cluster), "OCIRepository", "envoy-gateway", "envoy-gateway-system")
    assert source["spec"]["url"] == "oci://docker.io/envoyproxy/gateway-helm"
    assert source["spec"]["ref"]["tag"] == "v1.9.0"
    layer_of = {
        (p.parent.name, p.name.split(".")[0])
        for p in (GOLDEN / cluster).rglob("*.yaml")
    }
    for kind in ("gatewayclass", "gateway", "certificate", "clusterissuer"):
        assert {layer for layer, k in layer_of if k == kind} == {"infra-configs"}, kind
    route_layers = {
        p.relative_to(GOLDEN / cluster).parts[0] for p in (GOLDEN / cluster).rglob("httproute.*.yaml")
    }
    app_layers = route_layers - {"infra-configs"}  # infra-configs: the gateway's own HTTP->HTTPS redirect
    # with Canaries (prod) Flagger creates the app routes; the Canaries come with the apps
    canary_layers = {
        p.relative_to(GOLDEN / cluster).parts[0] for p in (GOLDEN / cluster).rglob("canary.*.yaml")
    }
    assert app_layers or canary_layers
    assert all(layer.startswith("apps-") for layer in app_layers | canary_layers)
    kustomizations = {
        o["metadata"]["name"]: o for o in golden_objects(cluster)
        if o["kind"] == "Kustomization" and o["apiVersion"].startswith("kustomize.toolkit")
    }
    assert kustomizations["infra-configs"]["spec"]["dependsOn"] == [{"name": "infra-controllers"}]
    assert kustomizations["infra-controllers"]["spec"]["wait"] is True
    assert kustomizations["tenants"]["spec"]["dependsOn"] == [{"name": "infra-configs"}]


def test_external_dns_reads_httproutes() -> None:
    for cluster in WORKLOADS:
        if not any(c.name == "external-dns" for c in cluster.components):
            continue
        release = one(golden_objects(cluster.name), "HelmRelease", "external-dns", "external-dns")
        assert release["spec"]["values"]["sources"] == ["gateway-httproute", "service"]


def test_team_reconcilers_may_manage_routes_and_viewers_only_read_them() -> None:
    """The app HelmRelease runs as `flux-tenant`, bound to `edit`: `edit` must be able to create HTTPRoutes."""
    objects = golden_objects("prod-us-east-1")
    writer = one(objects, "ClusterRole", "gateway-api-routes-edit")
    view = one(objects, "ClusterRole", "gateway-api-routes-view")
    reconciler = one(objects, "RoleBinding", "flux-tenant", "checkout")
    role = reconciler["roleRef"]["name"]
    assert role == "edit"
    assert writer["metadata"]["labels"][f"rbac.authorization.k8s.io/aggregate-to-{role}"] == "true"
    assert writer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert "create" in writer["rules"][0]["verbs"] and writer["rules"][0]["resources"] == ["httproutes"]
    assert set(view["rules"][0]["verbs"]) == {"get", "list", "watch"}
    assert {key for key in view["metadata"]["labels"] if "aggregate-to" in key} == {
        "rbac.authorization.k8s.io/aggregate-to-view"}


# --- strict schemas: the vendored Gateway API v1.6.1 and cert-manager v1.21.1 CRDs ------------------------


@pytest.fixture(scope="module")
def validator() -> SchemaValidator:
    """The built-in catalogue: Gateway API v1.6.1 and cert-manager v1.21.1 must be in it."""
    catalogue = CrdCatalogue.builtin()
    for kind, api in [("HTTPRoute", "gateway.networking.k8s.io/v1"), ("Gateway", "gateway.networking.k8s.io/v1"),
                      ("GatewayClass", "gateway.networking.k8s.io/v1"), ("ClusterIssuer", "cert-manager.io/v1"),
                      ("Certificate", "cert-manager.io/v1")]:
        assert catalogue.schema_for(api, kind) is not None, f"the built-in catalogue has no {api} {kind}"
    return SchemaValidator(catalogue)


def test_gateway_and_certificate_objects_validate_strictly(validator: SchemaValidator) -> None:
    checked: dict[str, int] = {}
    sources = set()
    for cluster in WORKLOADS:
        for obj in golden_objects(cluster.name):
            if obj["kind"] in GATEWAY_KINDS:
                assert validator.validate(obj) == [], (cluster.name, obj["kind"], obj["metadata"]["name"])
                checked[obj["kind"]] = checked.get(obj["kind"], 0) + 1
                assert validator.catalogue is not None
                source = validator.catalogue.source_of(obj["apiVersion"], obj["kind"])
                assert source is not None
                sources.add(f"{source.parent.name}/{source.name}")
    assert set(checked) == set(GATEWAY_KINDS)
    assert checked["Gateway"] == checked["ClusterIssuer"] == len(WORKLOADS)
    assert sources == {
        "gateway-api/gateway.networking.k8s.io_gatewayclasses.yaml.gz",
        "gateway-api/gateway.networking.k8s.io_gateways.yaml.gz",
        "gateway-api/gateway.networking.k8s.io_httproutes.yaml.gz",
        "cert-manager/cert-manager.io_certificates.yaml.gz",
        "cert-manager/cert-manager.io_clusterissuers.yaml.gz",
    }


@pytest.mark.parametrize(
    ("cluster", "kind", "name", "edit", "message"),
    [
        ("prod-us-east-1", "ClusterIssuer", "letsencrypt",
         lambda o: o["spec"]["acme"]["solvers"][0]["dns01"]["route53"].update(regin="us-east-1"), "unknown field"),
        ("prod-europe-west1", "ClusterIssuer", "letsencrypt",
         lambda o: o["spec"]["acme"]["solvers"][0]["dns01"]["cloudDNS"].pop("project"), "required"),
        ("prod-eastus", "ClusterIssuer", "letsencrypt",
         lambda o: o["spec"]["acme"]["solvers"][0]["dns01"]["azureDNS"].pop("subscriptionID"), "required"),
        ("prod-us-east-1", "Certificate", "fleet-gateway",
         lambda o: o["spec"].update(dnsName=["x"]), "unknown field"),
        ("prod-us-east-1", "Gateway", "fleet",
         lambda o: o["spec"]["listeners"][1].update(port=0), "port"),
        ("staging-us-east-1", "HTTPRoute", "checkout",
         lambda o: o["spec"]["rules"][0]["matches"][0]["path"].update(type="Prefix"), "Prefix"),
    ],
    ids=["route53-typo", "clouddns-no-project", "azuredns-no-subscription", "certificate-typo", "port-zero",
         "bad-path-type"],
)
def test_broken_gateway_objects_fail(
    validator: SchemaValidator, cluster: str, kind: str, name: str, edit: Any, message: str
) -> None:
    obj = copy.deepcopy(next(
        o for o in golden_objects(cluster) if o["kind"] == kind and o["metadata"]["name"] == name
    ))
    edit(obj)
    problems = validator.validate(obj)
    assert problems and any(message in f"{p.path}: {p.message}" for p in problems), problems


# --- issuers per cloud, and the inventory errors -----------------------------------------------------------


def test_aws_without_role_uses_ambient_pod_identity_and_gcp_fills_placeholders(fleet_root: Path) -> None:
    fleet = fleet_root / "inventory" / "fleet.yaml"
    text = fleet.read_text()
    text = re.sub(r"    aws: \{roleArn: [^\n]+\n", "", text)
    text = text.replace("gcp: {project: acme-dns}", 'gcp: {project: "acme-{environment}-dns"}')
    fleet.write_text(text)
    contribution = plan_issuers(resolve(load_inventory(fleet_root)))
    aws = load_documents(contribution.files["infrastructure/issuers/prod-us-east-1/cluster-issuer.yaml"])
    assert [o["kind"] for o in aws] == ["ClusterIssuer"]  # no ServiceAccount or token Role without roleArn
    assert aws[0]["spec"]["acme"]["solvers"][0]["dns01"] == {"route53": {"region": "us-east-1"}}
    gcp = load_documents(contribution.files["infrastructure/issuers/dev-us-central1/cluster-issuer.yaml"])
    assert gcp[0]["spec"]["acme"]["solvers"][0]["dns01"] == {"cloudDNS": {"project": "acme-dev-dns"}}
    # the hub runs the gateway for the fleet's ingest hosts: its issuer also solves the fleet's own zone
    hub = load_documents(contribution.files["infrastructure/issuers/management/cluster-issuer.yaml"])
    assert hub[0]["spec"]["acme"]["solvers"][0]["selector"] == {
        "dnsZones": ["management.acme.example.com", "acme.example.com"]}
    assert contribution.cluster_configs["prod-eastus"] == ["infrastructure/issuers/prod-eastus"]


def _line(path: Path, needle: str) -> int:
    return next(i + 1 for i, line in enumerate(path.read_text().splitlines()) if needle in line)


def _errors(root: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["render", str(root), "--out", str(root / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert not (root / "out").exists(), "an inventory error writes nothing"
    return err


def test_a_cloud_without_dns_identity_is_an_error_at_each_cluster(
    fleet_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = fleet_root / "inventory" / "fleet.yaml"
    fleet.write_text(fleet.read_text().replace("    gcp: {project: acme-dns}", ""))
    err = _errors(fleet_root, capsys)
    clusters = fleet_root / "inventory" / "clusters"
    dev = f"inventory/clusters/dev.yaml:{_line(clusters / 'dev.yaml', 'cloud: gcp')}:5: clusters.1.cloud: "
    assert dev + "cluster 'dev-us-central1' serves app hosts (catalog, checkout) but fleet.dns has no gcp entry" in err
    assert "cluster 'prod-europe-west1' serves app hosts" in err
    assert "2 problem(s) found" in err


def test_hosts_need_a_gateway_component(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    components = fleet_root / "inventory" / "components.yaml"
    text = components.read_text()
    start = text.index("    gateway:\n")
    end = text.index("    configs:\n", start)
    components.write_text(text[:start] + text[end:])
    err = _errors(fleet_root, capsys)
    apps = fleet_root / "inventory" / "apps.yaml"
    assert f"inventory/apps.yaml:{_line(apps, 'host: checkout')}:5: apps.0.host: no component serves app hosts" in err


def test_gateway_must_name_a_listener_of_its_gateway(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    components = fleet_root / "inventory" / "components.yaml"
    components.write_text(components.read_text().replace("      listener: https\n", "      listener: htps\n"))
    err = _errors(fleet_root, capsys)
    assert "gateway.listener: Gateway 'fleet' has no listener 'htps'; did you mean 'https'?" in err


def test_a_cluster_serving_hosts_cannot_turn_the_gateway_off(
    fleet_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prod = fleet_root / "inventory" / "clusters" / "prod.yaml"
    prod.write_text(prod.read_text().replace(
        "      external-dns:\n        enabled: false\n",
        "      external-dns:\n        enabled: false\n      envoy-gateway:\n        enabled: false\n",
    ))
    err = _errors(fleet_root, capsys)
    line = _line(prod, "name: prod-eastus")
    assert (
        f"inventory/clusters/prod.yaml:{line}:5: clusters.3: apps catalog, checkout have a host here but the "
        "cluster runs no envoy-gateway component to serve them"
    ) in err


def test_only_one_component_serves_hosts(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    components = fleet_root / "inventory" / "components.yaml"
    index = components.read_text().count("\n  - name: ")  # the appended entry's index
    components.write_text(
        components.read_text()
        + "\n  - name: other-gateway\n    namespace: other-gateway\n"
        + '    chart: {repository: "https://charts.example.com", name: other, version: 1.0.0}\n'
        + "    gateway: {name: edge, listener: https}\n"
    )
    err = _errors(fleet_root, capsys)
    line = _line(components, "gateway: {name: edge")
    assert f"inventory/components.yaml:{line}:5: components.{index}.gateway: component 'envoy-gateway'" in err
    assert "only one component may declare gateway" in err
    assert f"components.{index}.gateway.name: no Gateway 'edge' in namespace 'other-gateway'" in err


@pytest.mark.parametrize("cluster", [c.name for c in WORKLOADS])
def test_gateway_disruption_budgets_never_block_a_drain(cluster: str) -> None:
    """Control plane and data plane: minAvailable below the replica count in every environment (dev runs one)."""
    values = one(golden_objects(cluster), "HelmRelease", "envoy-gateway", "envoy-gateway-system")["spec"]["values"]
    assert values["podDisruptionBudget"]["minAvailable"] < values["deployment"]["replicas"]
    proxy = values["config"]["envoyGateway"]["envoyProxy"]["provider"]["kubernetes"]
    assert proxy["envoyPDB"]["minAvailable"] < proxy["envoyDeployment"]["replicas"]


def test_two_apps_cannot_claim_one_host_on_a_cluster(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    apps = fleet_root / "inventory" / "apps.yaml"
    apps.write_text(apps.read_text().replace("    host: catalog\n", "    host: checkout\n"))
    err = _errors(fleet_root, capsys)
    lines = [i + 1 for i, t in enumerate(apps.read_text().splitlines()) if "host: checkout" in t]
    assert (
        f"inventory/apps.yaml:{lines[1]}:5: apps.2.host: host 'checkout' is already app 'checkout's "
        f"(inventory/apps.yaml:{lines[0]}) on a cluster both run on"
    ) in err


def test_one_host_on_clusters_two_apps_never_share_is_fine() -> None:
    from generator.inventory.checks import _may_share_a_cluster
    from generator.inventory.models import App

    def app(name: str, **fields: Any) -> App:
        return App.model_validate({"name": name, "team": "t", "image": {"repository": "ghcr.io/a/b", "tag": "1"},
                                   **fields})

    assert _may_share_a_cluster(app("a"), app("b"))
    assert not _may_share_a_cluster(app("a", environments=["dev"]), app("b", environments=["prod"]))
    assert not _may_share_a_cluster(app("a", clusters=["x"]), app("b", clusters=["y"]))
    assert _may_share_a_cluster(app("a", clusters=["x", "y"]), app("b", clusters=["y"]))


def test_issuer_files_emit_as_one_stream_of_their_documents(tmp_path: Path) -> None:
    """The solver's token RBAC is emitted apart from the ClusterIssuer (its text comes from the emitter's memo):
    every issuer file is exactly what emitting all its documents as one stream gives, with its header."""
    make_fleet(REPO, tmp_path / "fleet", 40)
    checked_with_rbac = 0
    for root in (REPO, tmp_path / "fleet"):
        for path, text in plan_issuers(resolve(load_inventory(root))).files.items():
            if not path.endswith("/cluster-issuer.yaml"):
                continue
            _, body = text.split("\n", 1)
            documents = load_documents(body)
            assert body == dump_documents(documents), path
            checked_with_rbac += any(d["kind"] == "Role" for d in documents)
    assert checked_with_rbac > 0
