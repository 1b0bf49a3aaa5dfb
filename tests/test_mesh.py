"""Service mesh (Istio ambient): components where enabled, team namespaces enrolled by opt-in, STRICT mTLS in
prod, NetworkPolicies that let the mesh's tunnel through, and the fleet's policies unchanged for team namespaces.

Reads the committed golden tree (what each cluster receives) and renders edited copies of the reference fleet.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from generator.cli import main
from generator.inventory.loader import load_inventory
from generator.inventory.mesh import AMBIENT, DATAPLANE_LABEL
from generator.inventory.resolve import resolve
from generator.render.pipeline import plan
from generator.verify.schema import CrdCatalogue, SchemaValidator
from generator.yamlio import load_documents

GOLDEN = REPO / "golden"
FLEET = plan(REPO).fleet
TEAMS = {t.name: t for t in FLEET.teams}
ISTIO_CHARTS = {"base", "istiod", "cni", "ztunnel"}
HBONE = {"port": 15008, "protocol": "TCP"}


def golden_objects(cluster: str) -> list[dict[str, Any]]:
    return [doc for path in sorted((GOLDEN / cluster).rglob("*.yaml")) for doc in load_documents(path.read_text())]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def mesh_runs(cluster: str) -> bool:
    resolved = FLEET.cluster(cluster)
    assert resolved is not None
    return any(c.component.chart.name == "istiod" for c in resolved.components)


@pytest.mark.parametrize("cluster", [c.name for c in FLEET.clusters])
def test_mesh_components_and_enrolment_where_enabled(cluster: str) -> None:
    resolved = FLEET.cluster(cluster)
    assert resolved is not None
    objects = golden_objects(cluster)
    charts = {o["spec"]["chart"]["spec"]["chart"] for o in of_kind(objects, "HelmRelease")
              if "chart" in o["spec"] and o["metadata"]["namespace"] == "istio-system"}
    namespaces = {o["metadata"]["name"]: o for o in of_kind(objects, "Namespace")}
    peer_auth = {o["metadata"]["namespace"]: o for o in of_kind(objects, "PeerAuthentication")}
    team_namespaces = {a.app.target_namespace: a.team for a in resolved.apps}
    on = mesh_runs(cluster)
    assert on == (resolved.cluster.environment == "prod" and resolved.cluster.role == "workload")
    assert charts == (ISTIO_CHARTS if on else set())
    for namespace, team in team_namespaces.items():
        labels = namespaces[namespace]["metadata"]["labels"]
        enrolled = on and team.mesh
        assert (labels.get(DATAPLANE_LABEL) == AMBIENT) == enrolled, namespace
        # sidecar-less: enrolled namespaces keep the restricted Pod Security level (no NET_ADMIN init container)
        assert labels["pod-security.kubernetes.io/enforce"] == resolved.settings.tenancy.pod_security
        if enrolled:
            assert peer_auth[namespace]["spec"] == {"mtls": {"mode": resolved.settings.mesh.mtls}}
            assert resolved.settings.mesh.mtls == "STRICT", "prod enforces mTLS"
        else:
            assert namespace not in peer_auth
    assert set(peer_auth) <= set(team_namespaces)
    if on:
        # one Namespace for the four components (istio-base creates it) and the Gateway's proxies in the mesh,
        # so that STRICT team namespaces admit them
        assert [o["metadata"]["name"] for o in of_kind(objects, "Namespace")].count("istio-system") == 1
        assert namespaces["envoy-gateway-system"]["metadata"]["labels"][DATAPLANE_LABEL] == AMBIENT


@pytest.mark.parametrize("cluster", [c.name for c in FLEET.clusters if c.cluster.role == "workload"])
def test_enrolled_apps_let_the_tunnel_and_probes_through(cluster: str) -> None:
    resolved = FLEET.cluster(cluster)
    assert resolved is not None
    objects = golden_objects(cluster)
    for app in resolved.apps:
        policy = next(o for o in of_kind(objects, "NetworkPolicy")
                      if o["metadata"]["name"] == app.name and o["metadata"]["namespace"] == app.app.target_namespace)
        enrolled = mesh_runs(cluster) and app.team.mesh
        peers = [r for r in policy["spec"]["ingress"] if "ipBlock" not in r["from"][0]]
        egress = [r for r in policy["spec"]["egress"] if r["ports"][0]["port"] != 53]
        assert peers and (egress or not app.app.depends_on)
        for rule in peers + egress:
            assert (HBONE in rule["ports"]) == enrolled, (app.name, rule)
        probes = [r for r in policy["spec"]["ingress"] if "ipBlock" in r["from"][0]]
        assert (probes == [{"from": [{"ipBlock": {"cidr": "169.254.7.127/32"}}],
                            "ports": [{"port": app.app.port, "protocol": "TCP"}]}]) == enrolled
        assert bool(probes) == enrolled


def test_policies_exempt_the_mesh_namespace_not_team_namespaces() -> None:
    objects = golden_objects("prod-us-east-1")
    checked = 0
    for policy in of_kind(objects, "ValidatingPolicy"):
        selector = policy["spec"]["matchConstraints"]["namespaceSelector"]["matchExpressions"]
        excluded = {v for e in selector if e["operator"] == "NotIn" for v in e["values"]}
        if not excluded:  # restrict-flux-tenancy selects team namespaces by label instead
            continue
        checked += 1
        assert "istio-system" in excluded, policy["metadata"]["name"]
        assert not excluded & {"payments", "checkout", "catalog", "storefront"}, policy["metadata"]["name"]
    assert checked >= 5


def test_peer_authentication_validates_strictly_and_a_broken_one_fails() -> None:
    validator = SchemaValidator(CrdCatalogue.builtin())
    objects = of_kind(golden_objects("prod-us-east-1"), "PeerAuthentication")
    assert objects
    for obj in objects:
        assert validator.validate(obj) == []
    broken = copy.deepcopy(objects[0])
    broken["spec"]["mtls"]["mode"] = "STRICTER"
    assert any("STRICTER" in p.message for p in validator.validate(broken))


def _errors(root: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["render", str(root), "--out", str(root / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert not (root / "out").exists(), "an inventory error writes nothing"
    return err


def test_a_caller_outside_a_strict_mesh_is_an_error(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    teams = fleet_root / "inventory" / "teams.yaml"
    teams.write_text(teams.read_text().replace('    codeowners: ["@acme/storefront"]\n    mesh: true\n',
                                               '    codeowners: ["@acme/storefront"]\n'))
    err = _errors(fleet_root, capsys)
    apps = fleet_root / "inventory" / "apps.yaml"
    lines = apps.read_text().splitlines()
    line = next(i + 1 for i, text in enumerate(lines) if "dependsOn: [catalog, checkout]" in text)
    assert (f"inventory/apps.yaml:{line}:5: apps.3.dependsOn: app 'storefront-web' (team 'storefront', not in the "
            "mesh) calls checkout in the mesh, which under mtls STRICT refuses plaintext") in err


def test_permissive_mesh_lets_a_team_stay_out(fleet_root: Path) -> None:
    teams = fleet_root / "inventory" / "teams.yaml"
    teams.write_text(teams.read_text().replace('    codeowners: ["@acme/storefront"]\n    mesh: true\n',
                                               '    codeowners: ["@acme/storefront"]\n'))
    overlay = fleet_root / "overlays" / "prod.yaml"
    overlay.write_text(overlay.read_text().replace("mesh: {mtls: STRICT}", "mesh: {mtls: PERMISSIVE}"))
    files = plan(fleet_root).files
    tenants = "".join(text for path, text in files.items() if path.startswith("fleet/tenants/overlays/prod/"))
    assert "mode: PERMISSIVE" in tenants and "mode: STRICT" not in tenants
    storefront = files["fleet/tenants/overlays/prod/storefront.yaml"]
    assert DATAPLANE_LABEL not in storefront


def test_one_cluster_without_the_mesh_gets_its_own_tenants_and_app_values(fleet_root: Path) -> None:
    prod = fleet_root / "inventory" / "clusters" / "prod.yaml"
    names = ("istio-base", "istiod", "istio-cni", "ztunnel")
    off = "".join(f"      {name}:\n        enabled: false\n" for name in names)
    prod.write_text(prod.read_text().replace(
        "      external-dns:\n        enabled: false\n", "      external-dns:\n        enabled: false\n" + off))
    rendered = plan(fleet_root)
    files = rendered.files
    own = [p for p in files if p.startswith("fleet/tenants/clusters/prod-eastus/")]
    assert own and not any(DATAPLANE_LABEL in files[p] or "PeerAuthentication" in files[p] for p in own)
    fleet = resolve(load_inventory(fleet_root))
    for cluster in fleet.clusters:
        for app in cluster.apps:
            ambient = app.values.merged.get("networkPolicy", {}).get("ambient", False)
            expected = cluster.cluster.environment == "prod" and cluster.name != "prod-eastus" and app.team.mesh
            assert ambient == expected, (cluster.name, app.name)


def test_chart_ambient_without_peers_admits_only_the_probes(tmp_path: Path) -> None:
    from generator.tools import find_tools

    values = tmp_path / "values.json"
    values.write_text('{"networkPolicy": {"enabled": true, "allowFrom": [], "allowTo": [], "ambient": true}}')
    text = find_tools(REPO).helm.run("template", "shop", str(REPO / "charts" / "service"), "--namespace", "shop",
                                     "--values", str(values), "--show-only", "templates/networkpolicy.yaml", cwd=REPO)
    (policy,) = load_documents(text)
    assert policy["spec"]["ingress"] == [{"from": [{"ipBlock": {"cidr": "169.254.7.127/32"}}],
                                          "ports": [{"port": 8080, "protocol": "TCP"}]}]
    assert all(HBONE not in rule["ports"] for rule in policy["spec"]["egress"])  # DNS only: no tunnel to kube-dns
