"""The observability layer as each cluster receives it (the real build of the reference fleet): the hub runs
Grafana, Thanos (Receive, Query, Store Gateway, Compact), Loki and Tempo; every workload cluster runs Prometheus
with its external labels and remote write, the Alloy agent with the same labels, and the fleet's alert rules."""

from __future__ import annotations

from typing import Any

import pytest
from _buildkit import reference_build
from conftest import REPO

from generator.inventory.loader import load_inventory
from generator.inventory.resolve import ResolvedCluster, resolve
from generator.yamlio import load_documents

HUB_ONLY = {"grafana", "thanos", "loki", "tempo"}


def _clusters() -> list[ResolvedCluster]:
    return list(resolve(load_inventory(REPO)).clusters)


def _objects(cluster: str) -> dict[str, dict[str, Any]]:
    """golden-relative path → object, for one cluster."""
    build = reference_build().clusters[cluster]
    return {path: load_documents(res.text)[0] for path, res in build.resources.items()}


def _release(objects: dict[str, dict[str, Any]], namespace: str, name: str) -> dict[str, Any] | None:
    return next(
        (o for p, o in objects.items()
         if o["kind"] == "HelmRelease" and o["metadata"]["namespace"] == namespace and o["metadata"]["name"] == name),
        None,
    )


@pytest.mark.parametrize("cluster", [c.name for c in _clusters()])
def test_each_cluster_receives_its_part_of_the_observability_layer(cluster: str) -> None:
    resolved = next(c for c in _clusters() if c.name == cluster)
    objects = _objects(cluster)
    hub = resolved.cluster.role == "hub"
    for name in HUB_ONLY:
        assert (_release(objects, name, name) is not None) == hub, (cluster, name)
    assert (_release(objects, "alloy", "alloy") is not None) == (not hub)

    monitoring = _release(objects, "monitoring", "monitoring")
    assert monitoring is not None
    spec = monitoring["spec"]["values"]["prometheus"]["prometheusSpec"]
    # external labels after Flux's substitution: the cluster's own facts
    assert spec["externalLabels"] == {
        "cluster": cluster,
        "environment": resolved.cluster.environment,
        "region": resolved.cluster.region,
        "cloud": resolved.cluster.cloud,
    }
    assert [w["url"] for w in spec["remoteWrite"]] == ["https://metrics.acme.example.com/api/v1/receive"]

    rules = [o for o in objects.values() if o["kind"] == "PrometheusRule" and o["metadata"]["name"] == "fleet-platform"]
    assert len(rules) == 1
    alerts = {r["alert"]: r for g in rules[0]["spec"]["groups"] for r in g["rules"]}
    assert {"FluxReconciliationFailure", "FluxObjectSuspended", "CrossplaneCompositeNotReady",
            "CrossplaneManagedResourcesNotReady", "KyvernoPolicyViolations", "CertificateExpiresSoon",
            "NodeUnderPressure"} <= set(alerts)
    assert 'gotk_resource_info{ready="False"}' in alerts["FluxReconciliationFailure"]["expr"]
    assert 'gotk_resource_info{suspended="true"}' in alerts["FluxObjectSuspended"]["expr"]


def test_the_flux_metric_the_alerts_read_is_produced_by_kube_state_metrics() -> None:
    """gotk_resource_info comes from kube-state-metrics' custom resource state (Flux 2.9 exports no per-object
    readiness metric): every Flux kind the alerts cover is configured at a version Flux 2.9.4 serves."""
    objects = _objects("prod-us-east-1")
    ksm = _release(objects, "monitoring", "monitoring")["spec"]["values"]["kube-state-metrics"]  # type: ignore[index]
    resources = ksm["customResourceState"]["config"]["spec"]["resources"]
    flux = {(r["groupVersionKind"]["group"], r["groupVersionKind"]["version"], r["groupVersionKind"]["kind"])
            for r in resources if r["metricNamePrefix"] == "gotk"}
    assert flux == {
        ("kustomize.toolkit.fluxcd.io", "v1", "Kustomization"),
        ("helm.toolkit.fluxcd.io", "v2", "HelmRelease"),
        ("source.toolkit.fluxcd.io", "v1", "GitRepository"),
        ("source.toolkit.fluxcd.io", "v1", "OCIRepository"),
        ("source.toolkit.fluxcd.io", "v1", "HelmRepository"),
        ("source.toolkit.fluxcd.io", "v1", "HelmChart"),
    }
    granted = {(g, r) for rule in ksm["rbac"]["extraRules"] for g in rule["apiGroups"] for r in rule["resources"]}
    for group, _, kind in flux:
        plural = kind.lower()[:-1] + "ies" if kind.endswith("y") else kind.lower() + "s"
        assert (group, plural) in granted, kind


def test_alertmanager_routes_to_the_fleets_notification_channel_by_secret() -> None:
    inv = load_inventory(REPO)
    notifications = inv.fleet.item.notifications
    assert notifications is not None
    values = _release(_objects("prod-us-east-1"), "monitoring", "monitoring")["spec"]["values"]  # type: ignore[index]
    alertmanager = values["alertmanager"]
    assert notifications.secret_name in alertmanager["alertmanagerSpec"]["secrets"]
    receiver = next(r for r in alertmanager["config"]["receivers"] if r["name"] == "fleet")
    slack = receiver["slack_configs"][0]
    assert slack["api_url_file"] == f"/etc/alertmanager/secrets/{notifications.secret_name}/address"
    assert slack["channel"].lstrip("#") == notifications.channel
    # severities per environment: prod routes warnings too, staging only critical alerts
    staging = _release(_objects("staging-us-east-1"), "monitoring", "monitoring")["spec"]["values"]  # type: ignore[index]
    routes = {e: [r["matchers"] for r in v["alertmanager"]["config"]["route"]["routes"] if r["receiver"] == "fleet"]
              for e, v in (("prod", values), ("staging", staging))}
    assert routes == {"prod": [['severity =~ "critical|warning"']], "staging": [['severity = "critical"']]}


def test_grafana_has_the_fleet_data_sources_and_dashboards() -> None:
    objects = _objects("management")
    sources = {o["spec"]["datasource"]["type"]: o["spec"]["datasource"]["url"]
               for o in objects.values() if o["kind"] == "GrafanaDatasource"}
    assert sources == {
        "prometheus": "http://thanos-query.thanos.svc:10902",
        "loki": "http://loki-gateway.loki.svc",
        "tempo": "http://tempo.tempo.svc:3200",
    }
    dashboards = {o["metadata"]["name"] for o in objects.values() if o["kind"] == "GrafanaDashboard"}
    assert dashboards == {"fleet-overview", "crossplane-xr-readiness", "kyverno-policy-reports", "app-golden-signals"}
