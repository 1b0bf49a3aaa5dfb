"""SLOs from the inventory: ``apps[].slo`` → multi-window multi-burn-rate PrometheusRules, per app, on every
cluster the app runs on (built with the real kustomize and helm), and nothing else changes with an objective."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from _buildkit import options, reference_build, tools
from conftest import REPO

from generator.build.fleet import build_fleet
from generator.inventory.loader import load_inventory
from generator.inventory.models import App, AppSlo
from generator.inventory.resolve import resolve
from generator.render.slo import slo_rule, threshold_seconds
from generator.yamlio import load_documents


def _rules(rule: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, record|alert name, window-or-severity) → rule."""
    out = {}
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            key = r.get("record") or r["alert"]
            out[(group["name"], key, r["labels"].get("severity", ""))] = r
    return out


def test_every_app_with_an_slo_has_its_rules_on_every_cluster_it_runs_on() -> None:
    fleet = resolve(load_inventory(REPO))
    build = reference_build()
    declared = {app.name for app in fleet.apps if app.slo is not None}
    assert declared == {"checkout", "payments", "storefront-web"}  # the reference apps declare SLOs
    for cluster in fleet.clusters:
        files = build.clusters[cluster.name].resources
        running = {a.name: a.app for a in cluster.apps if a.name in declared}
        for name, app in running.items():
            paths = [p for p in files if p.endswith(f"/prometheusrule.{app.target_namespace}.{name}-slo.yaml")]
            assert len(paths) == 1, (cluster.name, name, paths)
            rule = load_documents(files[paths[0]].text)[0]
            alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
            assert {a["labels"]["severity"] for a in alerts} == {"critical", "warning"}
            # the SLI is scraped: the app's release renders a ServiceMonitor and admits Prometheus
            monitors = [p for p in files if p.endswith(f"/servicemonitor.{app.target_namespace}.{name}.yaml")]
            assert len(monitors) == 1, (cluster.name, name)
        others = [p for p in files if p.endswith("-slo.yaml")]
        assert len(others) == len(running), (cluster.name, others)


def test_burn_rate_thresholds_follow_the_workbook_for_a_30_day_window() -> None:
    app = App.model_validate(
        {"name": "shop", "team": "web", "image": {"repository": "ghcr.io/acme/shop", "tag": "1.0.0"},
         "slo": {"availability": {"objective": 99.9}}}
    )
    rule = slo_rule(app)
    assert rule is not None
    page = _rules(rule)[("slo-shop-availability", "SLOErrorBudgetBurnPage", "critical")]["expr"]
    ticket = _rules(rule)[("slo-shop-availability", "SLOErrorBudgetBurnTicket", "warning")]["expr"]
    # 14.4 x, 6 x (page) and 3 x, 1 x (ticket) the 0.1 % budget, each over a long and a short window
    assert re.findall(r"ratio_rate(\w+)\{[^}]*\} > ([0-9.]+)", page) == [
        ("1h", "0.0144"), ("5m", "0.0144"), ("6h", "0.006"), ("30m", "0.006")]
    assert re.findall(r"ratio_rate(\w+)\{[^}]*\} > ([0-9.]+)", ticket) == [
        ("1d", "0.003"), ("2h", "0.003"), ("3d", "0.001"), ("6h", "0.001")]


def test_latency_threshold_is_a_prometheus_3_bucket_label() -> None:
    assert [threshold_seconds(t) for t in ("300ms", "1s", "2.5s", "1000ms", "5ms")] == [
        "0.3", "1.0", "2.5", "1.0", "0.005"]


def test_an_slo_needs_an_objective() -> None:
    with pytest.raises(ValueError, match="availability, latency or both"):
        AppSlo.model_validate({"window": "30d"})


def test_changing_one_apps_objective_changes_only_that_apps_rules(fleet_root: Path) -> None:
    apps = fleet_root / "inventory" / "apps.yaml"
    text = apps.read_text(encoding="utf-8")
    assert text.count("availability: {objective: 99.9}") == 1
    apps.write_text(text.replace("availability: {objective: 99.9}", "availability: {objective: 99.5}"), "utf-8")
    before = reference_build().files()
    after = build_fleet(fleet_root, options(), tools=tools()).files()
    assert before.keys() == after.keys()
    changed = sorted(path for path in before if before[path] != after[path])
    fleet = resolve(load_inventory(REPO))
    checkout_clusters = {c.name for c in fleet.clusters if any(a.name == "checkout" for a in c.apps)}
    assert changed == sorted(f"{c}/apps-payments/prometheusrule.checkout.checkout-slo.yaml" for c in checkout_clusters)
    # within the file: only the availability group of checkout changed, its latency group did not
    some = changed[0]
    old, new = load_documents(before[some])[0], load_documents(after[some])[0]
    groups_old = {g["name"]: g for g in old["spec"]["groups"]}
    groups_new = {g["name"]: g for g in new["spec"]["groups"]}
    assert groups_old["slo-checkout-latency"] == groups_new["slo-checkout-latency"]
    assert groups_old["slo-checkout-availability"] != groups_new["slo-checkout-availability"]
