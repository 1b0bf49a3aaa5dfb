"""Canary releases: a Flagger Canary for every prod app and none elsewhere, the service chart as Flagger's target,
checks that read what the data plane exports, alerts to the fleet's channel.

The per-cluster checks read the committed golden tree (kustomize build, Flux substitution, helm template of the
service chart). Flagger's own behaviour is emulated from its source at the pinned version (fluxcd/flagger
v1.44.0): pkg/canary/util.go (primary labels), pkg/router/gateway_api.go (the HTTPRoute it owns),
pkg/apis/flagger/v1beta1/metric.go (the template variables of a MetricTemplate query).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from generator.cli import main
from generator.command import Command
from generator.inventory.canary import METRIC_TEMPLATES
from generator.inventory.loader import load_inventory
from generator.inventory.resolve import resolve
from generator.render.pipeline import plan
from generator.verify.schema import CrdCatalogue, SchemaValidator
from generator.yamlio import load_documents

GOLDEN = REPO / "golden"
FLEET = plan(REPO).fleet
WORKLOADS = [c for c in FLEET.clusters if c.cluster.role == "workload"]
#: The label Flagger rewrites to <value>-primary on the primary Deployment: the first of its default
#: -selector-labels (app, name, app.kubernetes.io/name; cmd/flagger/main.go) found in the Deployment's selector.
FLAGGER_SELECTOR_LABELS = ("app", "name", "app.kubernetes.io/name")


def golden_objects(cluster: str) -> list[dict[str, Any]]:
    return [doc for path in sorted((GOLDEN / cluster).rglob("*.yaml")) for doc in load_documents(path.read_text())]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    found = [
        o for o in objects
        if o["kind"] == kind and o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace
    ]
    assert len(found) == 1, f"{kind} {namespace}/{name}: {len(found)} found"
    return found[0]


def flagger_releases(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        o for o in of_kind(objects, "HelmRelease")
        if o["spec"].get("chart", {}).get("spec", {}).get("chart") == "flagger"
    ]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def primary_labels(labels: dict[str, str], selector: dict[str, str]) -> dict[str, str]:
    """Flagger's makePrimaryLabels: every label but the selector label, which becomes <value>-primary."""
    key = next(k for k in FLAGGER_SELECTOR_LABELS if k in selector)
    return {**{k: v for k, v in labels.items() if "toolkit.fluxcd.io" not in k}, key: f"{selector[key]}-primary"}


def include_by_prefix(labels: dict[str, str], prefixes: str) -> dict[str, str]:
    """Flagger's includeLabelsByPrefix (-include-label-prefix): the primary Deployment's own labels."""
    wanted = [p for p in prefixes.split(",") if p]
    return {
        k: v for k, v in labels.items()
        if "toolkit.fluxcd.io" not in k and any(p == "*" or k.startswith(p) for p in wanted)
    }


# --- where Canaries are ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cluster", [c.name for c in FLEET.clusters])
def test_a_canary_for_every_prod_app_and_none_elsewhere(cluster: str) -> None:
    resolved = FLEET.cluster(cluster)
    assert resolved is not None
    canaries = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in of_kind(golden_objects(cluster), "Canary")}
    if resolved.cluster.environment == "prod":
        assert resolved.apps or resolved.cluster.role == "hub", "every prod workload cluster runs apps"
        assert canaries == {(a.app.target_namespace, a.name) for a in resolved.apps}
    else:
        assert canaries == set(), f"{cluster} ({resolved.cluster.environment}) must not get a Canary"


@pytest.mark.parametrize("cluster", [c.name for c in FLEET.clusters])
def test_flagger_runs_exactly_where_canaries_are(cluster: str) -> None:
    objects = golden_objects(cluster)
    releases = flagger_releases(objects)
    assert len(releases) == (1 if of_kind(objects, "Canary") else 0)


# --- the chart and the Canary fit together ----------------------------------------------------------------


def _canary_clusters() -> list[str]:
    return [c.name for c in WORKLOADS if c.settings.canary.enabled]


@pytest.mark.parametrize("cluster", _canary_clusters())
def test_canary_targets_the_charts_deployment_and_ports_match(cluster: str) -> None:
    objects = golden_objects(cluster)
    (flagger,) = flagger_releases(objects)
    required = FLEET.fleet.security.required_labels
    for canary in of_kind(objects, "Canary"):
        ns, name = canary["metadata"]["namespace"], canary["metadata"]["name"]
        release = one(objects, "HelmRelease", name, ns)
        values = release["spec"]["values"]
        spec = canary["spec"]
        target = spec["targetRef"]
        assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
        deployment = one(objects, "Deployment", target["name"], ns)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert spec["service"]["targetPort"] == ports[spec["service"]["portName"]] == values["containerPort"]
        assert spec["service"]["port"] == values.get("service", {}).get("port", 80)
        # Flagger owns the Services <name>, <name>-primary, <name>-canary; the chart must not render any of them
        assert not [o for o in of_kind(objects, "Service") if o["metadata"]["namespace"] == ns]
        autoscaling = values.get("autoscaling", {}).get("enabled", False)
        if autoscaling:
            hpa = one(objects, "HorizontalPodAutoscaler", name, ns)
            assert spec["autoscalerRef"]["name"] == hpa["metadata"]["name"]
            assert hpa["spec"]["scaleTargetRef"]["name"] == target["name"]
        else:
            assert "autoscalerRef" not in spec
        route = values.get("route", {})
        if spec["provider"] == "gatewayapi:v1":
            # Flagger creates the HTTPRoute <service name> from gatewayRefs and hosts: the chart must not
            gateway = route["gateway"]
            assert spec["service"]["gatewayRefs"] == [{
                "group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway["name"],
                "namespace": gateway["namespace"], "sectionName": gateway["sectionName"],
            }, *route.get("extraParentRefs", [])]  # a failover app's global-name listener (test_global_tls.py)
            assert spec["service"]["hosts"] == route["hostnames"]
            assert not [o for o in of_kind(objects, "HTTPRoute") if o["metadata"]["namespace"] == ns]
            assert "maxWeight" in spec["analysis"] or "stepWeights" in spec["analysis"]
        else:
            assert spec["provider"] == "kubernetes" and not route.get("enabled")
            assert spec["analysis"]["iterations"] >= 1
        # the primary Deployment Flagger creates keeps the fleet's required labels (require-labels denies it
        # otherwise) and its pods stay selected by the NetworkPolicy and the PodDisruptionBudget
        selector = deployment["spec"]["selector"]["matchLabels"]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        primary_pods = primary_labels(pod_labels, selector)
        prefixes = flagger["spec"]["values"]["includeLabelPrefix"]
        primary_meta = include_by_prefix(deployment["metadata"]["labels"], prefixes)
        assert not [label for label in required if label not in primary_meta], "primary Deployment labels"
        assert not [label for label in required if label not in primary_pods], "primary pod labels"
        for kind in ("NetworkPolicy", "PodDisruptionBudget"):
            found = [o for o in of_kind(objects, kind) if o["metadata"]["namespace"] == ns]
            for obj in found:
                chosen = obj["spec"]["podSelector" if kind == "NetworkPolicy" else "selector"]["matchLabels"]
                assert selects(chosen, pod_labels) and selects(chosen, primary_pods), (kind, name)


@pytest.mark.parametrize("cluster", _canary_clusters())
def test_peers_of_a_canary_app_still_reach_its_primary_pods(cluster: str) -> None:
    """Other apps' NetworkPolicies select a Canary app's pods by labels its primary pods keep."""
    objects = golden_objects(cluster)
    primaries: dict[str, list[dict[str, str]]] = {}
    for canary in of_kind(objects, "Canary"):
        ns = canary["metadata"]["namespace"]
        deployment = one(objects, "Deployment", canary["spec"]["targetRef"]["name"], ns)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        primaries.setdefault(ns, []).append(primary_labels(labels, deployment["spec"]["selector"]["matchLabels"]))
    checked = 0
    for policy in of_kind(objects, "NetworkPolicy"):
        rules = [*policy["spec"].get("ingress", []), *policy["spec"].get("egress", [])]
        for peer in [p for r in rules for p in r.get("from", r.get("to", []))]:
            ns = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
            if ns in primaries and "podSelector" in peer:
                assert any(selects(peer["podSelector"]["matchLabels"], p) for p in primaries[ns]), (policy, peer)
                checked += 1
    assert checked, "the reference fleet has apps that depend on apps with a Canary"


# --- analysis and alerts -------------------------------------------------------------------------------------


def _flagger_render(query: str, namespace: str, target: str, service: str, interval: str = "1m") -> str:
    """Flagger's RenderQuery for the variables our templates use (MetricTemplateModel.TemplateFunctions)."""
    for name, value in (("namespace", namespace), ("target", target), ("service", service), ("interval", interval)):
        query = query.replace("{{ " + name + " }}", value)
    assert "{{" not in query, f"a template variable Flagger does not define is left: {query}"
    return query


def _label_regexes(query: str, label: str) -> set[str]:
    return set(re.findall(label + r'=~"([^"]+)"', query))


@pytest.mark.parametrize("cluster", _canary_clusters())
def test_checks_read_what_envoy_gateway_and_kube_state_metrics_export(cluster: str) -> None:
    objects = golden_objects(cluster)
    (flagger,) = flagger_releases(objects)
    monitoring = next(
        c for c in FLEET.components if c.chart.name == "kube-prometheus-stack"
    )
    # kube-prometheus-stack names the Prometheus Service <release>-prometheus (port 9090): one address everywhere
    prometheus = f"http://{monitoring.release_name or monitoring.name}-prometheus.{monitoring.namespace}:9090"
    assert flagger["spec"]["values"]["metricsServer"] == prometheus
    templates = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in of_kind(objects, "MetricTemplate")}
    assert {name for _, name in templates} == set(METRIC_TEMPLATES)
    for template in templates.values():
        assert template["spec"]["provider"] == {"type": "prometheus", "address": prometheus}
    # Envoy Gateway names the Envoy cluster of a merged backend service/<ns>/<name>/<port>/<protocol>
    # (envoyproxy/gateway v1.9.0 internal/gatewayapi/helpers.go irBackendClusterName), with mergeBackends on
    envoy = one(objects, "HelmRelease", "envoy-gateway", "envoy-gateway-system")
    assert envoy["spec"]["values"]["config"]["envoyGateway"]["envoyProxy"]["mergeBackends"] == {}
    for canary in of_kind(objects, "Canary"):
        ns, name = canary["metadata"]["namespace"], canary["metadata"]["name"]
        port = canary["spec"]["service"]["port"]
        for metric in canary["spec"]["analysis"]["metrics"]:
            ref = metric["templateRef"]
            query = _flagger_render(templates[(ref["namespace"], ref["name"])]["spec"]["query"], ns, name, name)
            clusters = _label_regexes(query, "envoy_cluster_name")
            pods = _label_regexes(query, "pod")
            assert clusters or pods, query
            for regex in clusters:  # PromQL regex matchers are fully anchored
                assert re.fullmatch(regex, f"service/{ns}/{name}-canary/{port}/http")
                assert re.fullmatch(regex, f"service/{ns}/{name}-canary/{port}")
                assert not re.fullmatch(regex, f"service/{ns}/{name}-primary/{port}/http")
                assert not re.fullmatch(regex, f"httproute/{ns}/{name}/rule/0")
            for regex in pods:  # canary pods <deployment>-<pod-template-hash>-<suffix>, never the primary's
                assert re.fullmatch(regex, f"{name}-7c9d8b6f5d-x2lqz")
                assert not re.fullmatch(regex, f"{name}-primary-7c9d8b6f5d-x2lqz")
        names = [m["name"] for m in canary["spec"]["analysis"]["metrics"]]
        if canary["spec"]["provider"] == "gatewayapi:v1":
            assert {"success-rate", "latency"} <= set(names)
    # Prometheus scrapes the proxies: the PodMonitor selects Envoy Gateway's proxy pods on their metrics port
    monitor = one(objects, "PodMonitor", "envoy-gateway-proxies", "envoy-gateway-system")
    assert monitor["metadata"]["labels"]["release"] == (monitoring.release_name or monitoring.name)
    assert monitor["spec"]["podMetricsEndpoints"][0]["path"] == "/stats/prometheus"
    gateway = next(c for c in FLEET.components if c.gateway is not None)
    assert gateway.gateway is not None
    assert monitor["spec"]["selector"]["matchLabels"] == gateway.gateway.data_plane_labels


@pytest.mark.parametrize("cluster", _canary_clusters())
def test_alerts_go_to_the_fleets_channel_through_its_secret(cluster: str) -> None:
    objects = golden_objects(cluster)
    notifications = FLEET.fleet.notifications
    assert notifications is not None
    flux_provider = one(objects, "Provider", notifications.type, "flux-system")
    for canary in of_kind(objects, "Canary"):
        (alert,) = canary["spec"]["analysis"]["alerts"]
        ref = alert["providerRef"]
        provider = one(objects, "AlertProvider", ref["name"], ref["namespace"])
        assert provider["spec"]["secretRef"] == flux_provider["spec"]["secretRef"]
        assert provider["spec"]["channel"] == flux_provider["spec"]["channel"]
        assert provider["spec"]["type"] == notifications.type
        assert alert["severity"] == FLEET.cluster(cluster).settings.alerts.event_severity  # type: ignore[union-attr]


def test_team_reconcilers_may_manage_canaries() -> None:
    objects = golden_objects("prod-us-east-1")
    edit = one(objects, "ClusterRole", "flagger-canaries-edit")
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert {"create", "update", "delete"} <= set(edit["rules"][0]["verbs"])
    assert edit["rules"][0]["resources"] == ["canaries"]


@pytest.fixture(scope="module")
def validator() -> SchemaValidator:
    return SchemaValidator(CrdCatalogue.builtin())


def test_canary_objects_validate_strictly_and_a_broken_one_fails(validator: SchemaValidator) -> None:
    objects = golden_objects("prod-us-east-1")
    kinds = ("Canary", "MetricTemplate", "AlertProvider", "PodMonitor")
    for obj in [o for o in objects if o["kind"] in kinds]:
        assert validator.validate(obj) == [], obj["metadata"]
    canary = copy.deepcopy(of_kind(objects, "Canary")[0])
    canary["spec"]["analysis"]["alerts"][0]["severity"] = "fatal"
    canary["spec"]["service"]["prot"] = 80
    problems = " ".join(f"{p.path}: {p.message}" for p in validator.validate(canary))
    assert "fatal" in problems and "prot" in problems


# --- inventory: asking for canaries elsewhere, turning them off, errors -------------------------------------------


def _errors(root: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["render", str(root), "--out", str(root / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert not (root / "out").exists(), "an inventory error writes nothing"
    return err


def _line(path: Path, needle: str) -> int:
    return next(i + 1 for i, line in enumerate(path.read_text().splitlines()) if needle in line)


def test_staging_gets_canaries_only_when_its_overlay_asks(fleet_root: Path) -> None:
    staging = fleet_root / "overlays" / "staging.yaml"
    staging.write_text(staging.read_text().replace(
        "components:\n",
        "canary: {enabled: true, stepWeights: [5, 20, 50]}\ncomponents:\n  flagger: {enabled: true}\n",
    ))
    fleet = resolve(load_inventory(fleet_root))
    for cluster in fleet.clusters:
        for app in cluster.apps:
            canary = app.values.merged.get("canary")
            if cluster.cluster.environment in ("staging", "prod"):
                assert canary is not None and canary["enabled"], (cluster.name, app.name)
            else:
                assert canary is None, (cluster.name, app.name)
            if cluster.cluster.environment == "staging":
                assert canary is not None and canary["analysis"]["stepWeights"] == [5, 20, 50]


def test_one_cluster_can_turn_canaries_off(fleet_root: Path) -> None:
    prod = fleet_root / "inventory" / "clusters" / "prod.yaml"
    prod.write_text(prod.read_text().replace(
        "    environment: prod\n    networking: {vpcCidr: 10.33.0.0/16",
        "    environment: prod\n    canary: {enabled: false}\n    networking: {vpcCidr: 10.33.0.0/16",
    ))
    fleet = resolve(load_inventory(fleet_root))
    for cluster in fleet.clusters:
        for app in cluster.apps:
            enabled = app.values.merged.get("canary", {}).get("enabled", False)
            assert enabled == (cluster.cluster.environment == "prod" and cluster.name != "prod-eastus"), cluster.name


def test_canaries_without_flagger_are_an_error_at_the_cluster(
    fleet_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prod = fleet_root / "inventory" / "clusters" / "prod.yaml"
    prod.write_text(prod.read_text().replace(
        "      external-dns:\n        enabled: false\n",
        "      external-dns:\n        enabled: false\n      flagger:\n        enabled: false\n",
    ))
    err = _errors(fleet_root, capsys)
    line = _line(prod, "name: prod-eastus")
    assert (
        f"inventory/clusters/prod.yaml:{line}:5: clusters.3: canary.enabled is on for cluster 'prod-eastus' "
        "(apps catalog, checkout, payments) but it runs no flagger component"
    ) in err


def test_step_weight_above_max_weight_is_an_error(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    overlay = fleet_root / "overlays" / "prod.yaml"
    overlay.write_text(overlay.read_text().replace(
        "canary: {enabled: true}", "canary: {enabled: true, stepWeight: 60}"))
    err = _errors(fleet_root, capsys)
    assert f"overlays/prod.yaml:{_line(overlay, 'canary:')}" in err
    assert "stepWeight (60) must not exceed maxWeight (50)" in err


def test_a_metric_template_removed_from_the_component_is_an_error(
    fleet_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    components = fleet_root / "inventory" / "components.yaml"
    components.write_text(components.read_text().replace("name: pod-restarts,", "name: pod-restart,"))
    err = _errors(fleet_root, capsys)
    assert "missing here: pod-restarts" in err


# --- the chart alone --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm() -> Command:
    from generator.tools import find_tools

    return find_tools(REPO).helm


CANARY_VALUES: dict[str, Any] = {
    "canary": {"enabled": True},
    "route": {"enabled": True, "hostnames": ["shop.example.com"],
              "gateway": {"name": "fleet", "namespace": "envoy-gateway-system", "sectionName": "https"}},
    "autoscaling": {"enabled": True},
}


def _template(helm: Command, tmp_path: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    path = tmp_path / "values.json"
    path.write_text(json.dumps(values))
    return load_documents(helm.run("template", "shop", str(REPO / "charts" / "service"), "--namespace", "shop",
                                   "--values", str(path), cwd=REPO))


def test_chart_with_a_canary_leaves_services_and_route_to_flagger(helm: Command, tmp_path: Path) -> None:
    kinds = sorted(o["kind"] for o in _template(helm, tmp_path, CANARY_VALUES))
    assert kinds == ["Canary", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget",
                     "ServiceAccount"]
    off = {**CANARY_VALUES, "canary": {"enabled": False}}
    assert {"Service", "HTTPRoute"} <= {o["kind"] for o in _template(helm, tmp_path, off)}
    blue_green = {**CANARY_VALUES, "canary": {"enabled": True, "provider": "kubernetes"}}
    objects = _template(helm, tmp_path, blue_green)
    # blue/green: Flagger switches the apex Service; the chart's route keeps pointing at it
    assert {o["kind"] for o in objects} >= {"Canary", "HTTPRoute"} and "Service" not in {o["kind"] for o in objects}


def test_chart_refuses_a_gateway_canary_without_a_route(helm: Command, tmp_path: Path) -> None:
    from generator.errors import ToolError

    with pytest.raises(ToolError, match=r"gatewayapi:v1 shifts traffic on the HTTPRoute: it needs route\.enabled"):
        _template(helm, tmp_path, {"canary": {"enabled": True}})
    with pytest.raises(ToolError, match="canary"):
        _template(helm, tmp_path, {**CANARY_VALUES, "canary": {"enabled": True, "provider": "istio"}})
