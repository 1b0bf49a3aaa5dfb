"""fleet.delivery.apps: argocd — the reference fleet delivered by the hub's Argo CD instead of per-cluster Flux app
Kustomizations: what the hub gets, what every cluster receives (the same app objects as the Flux path), strict
schemas and the fleet's policies, and the offline expander's refusals."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from _buildkit import options, reference_build, tools
from conftest import REPO, copy_reference_fleet

from generator.build.argocd import ArgoExpandError, _allowed, expand, render, selector_matches
from generator.build.fleet import build_fleet
from generator.build.model import FleetBuild
from generator.cli import main
from generator.render.argocd import argo_values
from generator.tools import TOOLS_DIR_ENV, tools_dir
from generator.yamlio import load_documents

HUB = "management"
FLUX_CONTROLLER_LABELS = ("helm.toolkit.fluxcd.io/name", "helm.toolkit.fluxcd.io/namespace",
                          "kustomize.toolkit.fluxcd.io/name", "kustomize.toolkit.fluxcd.io/namespace")
TRACKING = "argocd.argoproj.io/tracking-id"


def make_argocd_fleet(root: Path) -> Path:
    """The reference fleet with ``fleet.delivery.apps: argocd`` and the argo-cd component on on the hub."""
    copy_reference_fleet(root)
    fleet_file = root / "inventory" / "fleet.yaml"
    text = fleet_file.read_text(encoding="utf-8")
    assert "  environments: [dev, staging, prod]\n" in text
    fleet_file.write_text(text.replace("  environments: [dev, staging, prod]\n",
                                       "  environments: [dev, staging, prod]\n  delivery: {apps: argocd}\n"),
                          encoding="utf-8")
    hub_file = root / "inventory" / "clusters" / "management.yaml"
    hub = hub_file.read_text(encoding="utf-8")
    assert hub.count("    components:\n") <= 1, "the hub entry's components mapping, to add argo-cd to"
    argo = "    components:\n      argo-cd: {enabled: true}\n"
    hub = hub.replace("    components:\n", argo) if "    components:\n" in hub else hub + argo
    hub_file.write_text(hub, encoding="utf-8")
    return root


@cache
def argocd_root() -> Path:
    import tempfile

    return make_argocd_fleet(Path(tempfile.mkdtemp(prefix="fleetgen-argocd-")) / "fleet")


@cache
def argocd_build() -> FleetBuild:
    return build_fleet(argocd_root(), options(), tools=tools())


def objects(build: FleetBuild, cluster: str, prefix: str = "") -> dict[str, dict[str, Any]]:
    """path → object of a cluster's build (optionally under a group prefix)."""
    return {rel: load_documents(res.text)[0] for rel, res in build.clusters[cluster].resources.items()
            if rel.startswith(prefix)}


def app_objects(build: FleetBuild, cluster: str, groups: tuple[str, ...]) -> dict[tuple[str, str, str], Any]:
    """(kind, namespace, name) → object of what the apps deploy, without what each deliverer adds to metadata
    (helm-controller's labels, Argo CD's tracking annotation)."""
    found: dict[tuple[str, str, str], Any] = {}
    for rel, res in build.clusters[cluster].resources.items():
        parts = rel.split("/")
        if parts[0] not in groups or len(parts) < 2:
            continue
        obj = load_documents(res.text)[0]
        if obj["kind"] in ("HelmRelease",):
            continue
        meta = obj["metadata"]
        for label in FLUX_CONTROLLER_LABELS:
            meta.get("labels", {}).pop(label, None)
        meta.get("annotations", {}).pop(TRACKING, None)
        if "annotations" in meta and not meta["annotations"]:
            del meta["annotations"]
        found[(res.kind, res.namespace, res.name)] = obj
    return found


def test_hub_gets_projects_and_application_sets_and_spokes_no_app_kustomizations() -> None:
    build = argocd_build()
    hub = objects(build, HUB, "apps-argocd/")
    kinds = {(o["kind"], o["metadata"]["name"]) for o in hub.values()}
    assert {("AppProject", "payments"), ("AppProject", "storefront")} <= kinds
    appsets = {name for kind, name in kinds if kind == "ApplicationSet"}
    # storefront-web's failover pair has a cluster layer (its global name: test_global_tls.py): one set per cluster
    assert {"checkout-dev", "checkout-staging", "checkout-prod", "storefront-web-prod-us-east-1",
            "storefront-web-prod-eu-west-1"} <= appsets
    # the Applications the controller generates: one per app and cluster the inventory says, nothing more
    generated = {o["metadata"]["name"] for o in hub.values() if o["kind"] == "Application"}
    expected = {f"{a}-{c}" for c, cluster in reference_build().clusters.items()
                for a in ("checkout", "payments", "catalog", "storefront-web")
                if any(r.kind == "HelmRelease" and r.name == a and r.namespace != "flux-system"
                       for r in cluster.resources.values())}
    assert generated == expected and "storefront-web-prod-us-east-1" in generated
    assert "storefront-web-dev-us-east-1" not in generated
    for cluster, built in build.clusters.items():
        if cluster == HUB:
            continue
        assert not [k for k in built.kustomizations if k.startswith("apps-")], cluster
        assert not [r for r in built.resources.values() if r.kind == "HelmRelease" and r.namespace in
                    ("checkout", "payments", "catalog", "storefront")], cluster
    # projects: only the team's namespaces on the clusters it runs on, only the fleet repo, nothing cluster-scoped
    project = next(o for o in hub.values() if o["kind"] == "AppProject" and o["metadata"]["name"] == "storefront")
    assert project["spec"]["sourceRepos"] == ["ssh://git@github.com/acme/fleet.git"]
    assert {d["namespace"] for d in project["spec"]["destinations"]} == {"catalog", "storefront"}
    assert {"name": "dev-us-east-1", "namespace": "storefront"} not in project["spec"]["destinations"]
    assert "clusterResourceWhitelist" not in project["spec"]
    # Argo CD itself on the hub, HA in prod (argo-cd chart 10.1.1 README "HA mode without autoscaling")
    release = objects(build, HUB, "infra-controllers/helmrelease.argocd.argo-cd.yaml")
    values = next(iter(release.values()))["spec"]["values"]
    assert values["redis-ha"]["enabled"] is True and values["server"]["replicas"] == 2
    assert values["repoServer"]["replicas"] == 2 and values["applicationSet"]["replicas"] == 2
    assert values["controller"]["replicas"] == 2   # sharded; the full HA check: tests/test_ha.py


def test_every_cluster_receives_the_same_app_objects_as_with_flux() -> None:
    flux, argo = reference_build(), argocd_build()
    compared = 0
    for cluster in flux.clusters:
        flux_groups = tuple(k for k in flux.clusters[cluster].kustomizations if k.startswith("apps-"))
        want = app_objects(flux, cluster, flux_groups)
        got = app_objects(argo, cluster, ("argocd",))
        assert got.keys() == want.keys(), cluster
        for key, obj in want.items():
            assert got[key] == obj, (cluster, key)
        compared += len(want)
    assert compared > 60  # every workload cluster's apps, not an empty comparison
    tracked = objects(argo, "staging-us-east-1", "argocd/application.argocd.checkout-staging-us-east-1/")
    route = next(o for o in tracked.values() if o["kind"] == "HTTPRoute")  # in prod Flagger owns the route
    assert route["metadata"]["annotations"][TRACKING] == (
        "checkout-staging-us-east-1:gateway.networking.k8s.io/HTTPRoute:checkout/checkout")
    assert route["spec"]["hostnames"] == ["checkout.staging-us-east-1.acme.example.com"]
    canary = objects(argo, "prod-us-east-1", "argocd/application.argocd.checkout-prod-us-east-1/")
    assert any(o["kind"] == "Canary" for o in canary.values())


def test_cluster_secrets_are_references_never_credentials() -> None:
    hub = objects(argocd_build(), HUB, "apps-argocd/")
    assert not [o for o in hub.values() if o["kind"] == "Secret"]
    eks = next(o for o in hub.values() if o["kind"] == "ExternalSecret"
               and o["metadata"]["name"] == "cluster-prod-us-east-1")
    template = eks["spec"]["target"]["template"]
    assert template["metadata"]["labels"]["argocd.argoproj.io/secret-type"] == "cluster"
    role = "arn:aws:iam::123456789012:role/fleet-hub-flux"
    assert f'"awsAuthConfig":{{"clusterName":"prod-us-east-1","roleARN":"{role}"}}' in template["data"]["config"]
    assert eks["spec"]["data"] == [{"secretKey": "kubeconfig",
                                    "remoteRef": {"key": "prod-us-east-1-kubeconfig", "property": "kubeconfig"}}]
    aks = next(o for o in hub.values() if o["metadata"]["name"] == "cluster-prod-eastus")
    assert "awsAuthConfig" not in aks["spec"]["target"]["template"]["data"]["config"]
    reader = next(o for o in hub.values() if o["kind"] == "Role" and o["metadata"]["namespace"] == "fleet-clusters")
    assert reader["rules"][0]["verbs"] == ["get"] and "prod-us-east-1-kubeconfig" in reader["rules"][0]["resourceNames"]


def test_argocd_fleet_validates_strictly_and_passes_the_policies(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOOLS_DIR_ENV, str(tools_dir(REPO)))  # the fleet copy has no .tools of its own
    assert main(["validate", str(argocd_root())]) == 0
    out = capsys.readouterr().out
    assert "0 denied" in out and "0 schema violations" in out


def test_argocd_needs_the_component_on_the_hub(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_argocd_fleet(tmp_path / "fleet")
    hub_file = root / "inventory" / "clusters" / "management.yaml"
    hub_file.write_text(hub_file.read_text(encoding="utf-8").replace("argo-cd: {enabled: true}",
                                                                     "argo-cd: {enabled: false}"), encoding="utf-8")
    assert main(["render", str(root)]) == 2
    err = capsys.readouterr().err
    line = next(i for i, text in enumerate((root / "inventory" / "fleet.yaml").read_text().splitlines(), 1)
                if "delivery:" in text)
    assert re.search(rf"inventory/fleet.yaml:{line}:\d+: fleet.delivery.apps: argocd needs a component whose chart "
                     "is 'argo-cd' enabled on the hub 'management'", err), err
    assert not (root / "out").exists()


def test_flux_variables_become_cluster_secret_annotations() -> None:
    values = {"a": "x.${cluster_domain}", "b": ["$${literal}", "{{ not a template }}"], "c": 3}
    converted = argo_values(values)
    assert converted["a"] == 'x.{{ index .metadata.annotations "fleet.gitops.io/cluster_domain" }}'
    params = {"name": "c1", "nameNormalized": "c1", "server": None,
              "metadata": {"labels": {}, "annotations": {"fleet.gitops.io/cluster_domain": "c1.example.com"}}}
    assert render(converted, params, "t") == {"a": "x.c1.example.com", "b": ["${literal}", "{{ not a template }}"],
                                              "c": 3}
    with pytest.raises(ArgoExpandError, match=r"no annotation 'fleet\.gitops\.io/missing'"):
        render('{{ index .metadata.annotations "fleet.gitops.io/missing" }}', params, "t")
    with pytest.raises(ArgoExpandError, match="only known on the hub"):
        render("{{.server}}", params, "t")
    with pytest.raises(ArgoExpandError, match="not one fleetgen expands"):
        render("{{ .name | upper }}", params, "t")


def test_selectors_and_generators_follow_argo_semantics() -> None:
    labels = {"argocd.argoproj.io/secret-type": "cluster", "fleet.gitops.io/cluster": "a"}
    assert selector_matches({"matchLabels": {"argocd.argoproj.io/secret-type": "cluster"},
                             "matchExpressions": [{"key": "fleet.gitops.io/cluster", "operator": "In",
                                                   "values": ["a", "b"]}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "fleet.gitops.io/cluster", "operator": "NotIn",
                                                       "values": ["a"]}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "x", "operator": "Exists"}]}, labels)
    appset = {"metadata": {"name": "s", "namespace": "argocd"},
              "spec": {"goTemplate": True, "goTemplateOptions": ["missingkey=error"],
                       "generators": [{"list": {"elements": []}}], "template": {}}}
    with pytest.raises(ArgoExpandError, match="only the cluster generator"):
        expand([appset], {})


def test_a_kind_outside_the_project_is_refused() -> None:
    project = {"metadata": {"name": "payments"},
               "spec": {"destinations": [{"name": "c1", "namespace": "payments"}],
                        "namespaceResourceWhitelist": [{"group": "apps", "kind": "Deployment"}]}}
    app = {"spec": {"destination": {"name": "c1", "namespace": "payments"}}}
    assert _allowed(project, app, {"apiVersion": "apps/v1", "kind": "Deployment"}, cluster_scoped=False) is None
    assert "not permitted" in str(_allowed(project, app, {"apiVersion": "rbac.authorization.k8s.io/v1",
                                                          "kind": "ClusterRole"}, cluster_scoped=True))
    assert "not permitted" in str(_allowed(project, app, {"apiVersion": "v1", "kind": "Secret"},
                                           cluster_scoped=False))
    elsewhere = {"spec": {"destination": {"name": "c2", "namespace": "payments"}}}
    assert "destination" in str(_allowed(project, elsewhere, {"apiVersion": "apps/v1", "kind": "Deployment"},
                                         cluster_scoped=False))


def test_projects_admit_every_kind_the_service_chart_renders() -> None:
    from generator.render.argocd import APP_KINDS

    rendered = set()
    for template in sorted((REPO / "charts" / "service" / "templates").glob("*.yaml")):
        text = template.read_text(encoding="utf-8")
        api = re.search(r"^apiVersion: ([^\s]+)$", text, re.M)
        kind = re.search(r"^kind: ([A-Za-z]+)$", text, re.M)
        if api and kind:
            group = api.group(1).rpartition("/")[0] if "/" in api.group(1) else ""
            rendered.add((group, kind.group(1)))
    assert rendered and rendered <= set(APP_KINDS), rendered - set(APP_KINDS)
