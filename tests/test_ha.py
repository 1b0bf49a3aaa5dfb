"""High availability in prod: every platform HelmRelease of every prod cluster runs its workloads with at least two
replicas, a PodDisruptionBudget and a spread over zones.

Read from the golden files (what each cluster receives, post-build substitution applied) against
``generator/data/ha.yaml``, the per-chart map of where those settings live at the pinned chart version. A component
whose chart or version has no entry there fails: the map has to be looked up again for a new chart or an upgrade.
A workload that stays single (``singletons``) must be watched by an alert rule the cluster receives. Argo CD (off in
the reference fleet) is checked on the fleet rendered and built with ``fleet.delivery.apps: argocd``.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from ruamel.yaml import YAML

from generator.build.model import FleetBuild
from generator.inventory.loader import load_inventory
from generator.inventory.resolve import resolve
from generator.yamlio import load_documents

HA_MAP = REPO / "generator" / "data" / "ha.yaml"
ZONE = "topology.kubernetes.io/zone"
PROD = "prod"


@cache
def ha_map() -> dict[str, Any]:
    charts: dict[str, Any] = YAML(typ="safe").load(HA_MAP.read_text(encoding="utf-8"))["charts"]
    return charts


@cache
def prod_releases() -> list[tuple[str, str, str, dict[str, Any], list[dict[str, Any]]]]:
    """(cluster, chart, version, HelmRelease, the cluster's configs objects) for every prod component release."""
    fleet = resolve(load_inventory(REPO))
    out = []
    for cluster in fleet.clusters:
        if cluster.cluster.environment != PROD:
            continue
        golden = REPO / "golden" / cluster.name
        configs = [doc for path in sorted((golden / "infra-configs").glob("*.yaml")) for doc in _docs(path)]
        for component in cluster.components:
            chart = component.component.chart
            path = golden / "infra-controllers" / f"helmrelease.{component.component.namespace}.{component.name}.yaml"
            (release,) = _docs(path)
            out.append((cluster.name, chart.name, chart.version, release, configs))
    return out


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in load_documents(path.read_text(encoding="utf-8")) if d]


def _get(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _named_pdb(objects: list[Any], name: str) -> bool:
    return any(
        isinstance(o, dict) and o.get("kind") == "PodDisruptionBudget" and o.get("metadata", {}).get("name") == name
        for o in objects or []
    )


def ha_problems(release: dict[str, Any], configs: list[dict[str, Any]], entry: dict[str, Any]) -> list[str]:
    """What keeps one HelmRelease's workloads from being highly available, per the chart's map entry."""
    values = release["spec"].get("values") or {}
    namespace = release["metadata"]["namespace"]
    problems = []
    for workload in entry.get("workloads", []):
        name = workload["name"]
        replicas = _get(values, workload["replicas"])
        if not isinstance(replicas, int) or replicas < 2:
            problems.append(f"{name}: {workload['replicas']} is {replicas!r}, expected >= 2")
        pdb = workload["pdb"]
        if "flag" in pdb and _get(values, pdb["flag"]) is not True:
            problems.append(f"{name}: {pdb['flag']} is not true (no PodDisruptionBudget)")
        if "minAvailable" in pdb:
            minimum = _get(values, pdb["minAvailable"])
            if not isinstance(minimum, int) or minimum < 1:
                problems.append(f"{name}: {pdb['minAvailable']} is {minimum!r}, expected >= 1 (no PodDisruptionBudget)")
        if "present" in pdb and not _get(values, pdb["present"]):
            problems.append(f"{name}: {pdb['present']} is unset (no PodDisruptionBudget)")
        if "extraObject" in pdb and not _named_pdb(values.get("extraObjects"), pdb["extraObject"]):
            problems.append(f"{name}: no PodDisruptionBudget {pdb['extraObject']} in extraObjects")
        if "config" in pdb and not _named_pdb(
            [c for c in configs if c.get("metadata", {}).get("namespace") == namespace], pdb["config"]
        ):
            problems.append(f"{name}: no PodDisruptionBudget {namespace}/{pdb['config']} among the configs")
        spread = workload["spread"]
        if "constraints" in spread:
            constraints = _get(values, spread["constraints"]) or []
            if not any(isinstance(c, dict) and c.get("topologyKey") == ZONE for c in constraints):
                problems.append(f"{name}: {spread['constraints']} has no {ZONE} constraint")
        if "flag" in spread and _get(values, spread["flag"]) is not True:
            problems.append(f"{name}: {spread['flag']} is not true (no {ZONE} constraint)")
        if "affinity" in spread:
            anti = _get(values, spread["affinity"] + ".podAntiAffinity") or {}
            kinds = [f"{when}DuringSchedulingIgnoredDuringExecution" for when in ("required", "preferred")]
            terms = [t.get("podAffinityTerm", t) for key in kinds for t in anti.get(key, [])]
            if not any(t.get("topologyKey") == ZONE for t in terms):
                problems.append(f"{name}: {spread['affinity']} has no podAntiAffinity over {ZONE}")
    return problems


def _selectors(expr: str) -> list[str]:
    return re.findall(r"\{[^{}]*\}", expr)


def singleton_problems(release: dict[str, Any], configs: list[dict[str, Any]], entry: dict[str, Any]) -> list[str]:
    """The chart's singletons that no alert rule of the cluster watches: the alert named in the map must exist in a
    PrometheusRule the cluster receives, with a selector naming the workload in the release's namespace."""
    namespace = release["metadata"]["namespace"]
    alerts: dict[str, list[str]] = {}
    for rule_set in (c for c in configs if c.get("kind") == "PrometheusRule"):
        for group in rule_set["spec"].get("groups", []):
            for rule in group.get("rules", []):
                if "alert" in rule:
                    alerts.setdefault(rule["alert"], []).append(str(rule["expr"]))
    problems = []
    for singleton in entry.get("singletons", []):
        name, alert, workload = singleton["name"], singleton.get("alert"), singleton.get("workload", {})
        if not alert or not workload.get("name"):
            problems.append(f"{name}: a singleton without `alert` and `workload`")
            continue
        wanted = (f'namespace="{namespace}"', f'"{workload["name"]}"')
        if not any(all(w in s for w in wanted) for expr in alerts.get(alert, []) for s in _selectors(expr)):
            problems.append(f"{name}: no alert {alert} whose expression selects {namespace}/{workload['name']}")
    return problems


def release_problems(cluster: str, chart: str, version: str, release: dict[str, Any], configs: list[dict[str, Any]],
                     charts: dict[str, Any]) -> list[str]:
    """Everything the map says is missing for one prod HelmRelease, or that the map cannot describe it."""
    entry = charts.get(chart)
    if entry is None:
        return [f"{cluster}: chart {chart} has no entry in {HA_MAP.name}"]
    if entry["version"] != version:
        return [f"{cluster}: {chart} {version} is pinned, {HA_MAP.name} describes {entry['version']}"]
    problems = []
    if not any(entry.get(key) for key in ("workloads", "singletons", "daemonsets", "noWorkloads")):
        problems.append(f"{cluster}: {chart}: the map lists no workload")
    found = ha_problems(release, configs, entry) + singleton_problems(release, configs, entry)
    return problems + [f"{cluster}: {release['metadata']['name']}: {p}" for p in found]


def test_prod_platform_releases_are_highly_available() -> None:
    releases = prod_releases()
    assert {cluster for cluster, *_ in releases} >= {"management", "prod-us-east-1"}
    problems = [p for r in releases for p in release_problems(*r, ha_map())]
    assert not problems, "\n".join(problems)


def test_a_chart_or_version_the_map_does_not_describe_fails() -> None:
    cluster, chart, version, release, configs = next(r for r in prod_releases() if r[1] == "kyverno")
    assert release_problems(cluster, chart, version, release, configs, ha_map()) == []
    without = {name: entry for name, entry in ha_map().items() if name != chart}
    assert release_problems(cluster, chart, version, release, configs, without) == [
        f"{cluster}: chart kyverno has no entry in {HA_MAP.name}"]
    older = {**ha_map(), chart: {**ha_map()[chart], "version": "3.8.0"}}
    assert "3.8.0" in release_problems(cluster, chart, version, release, configs, older)[0]


def test_an_unwatched_singleton_fails() -> None:
    cluster, chart, version, release, configs = next(
        r for r in prod_releases() if r[0] == "management" and r[1] == "thanos")
    assert release_problems(cluster, chart, version, release, configs, ha_map()) == []
    rules = [c for c in configs if c.get("kind") == "PrometheusRule" and c["metadata"]["name"] == "fleet-singletons"]
    assert rules, "the fleet-singletons PrometheusRule (monitoring component configs)"
    others = [c for c in configs if c not in rules]
    assert any("compact: no alert PlatformSingletonDown" in p
               for p in release_problems(cluster, chart, version, release, others, ha_map()))
    renamed = {**ha_map(), chart: {**ha_map()[chart], "singletons": [
        {**ha_map()[chart]["singletons"][0], "workload": {"kind": "StatefulSet", "name": "thanos-compactor"}}]}}
    assert release_problems(cluster, chart, version, release, configs, renamed)


def argocd_hub_release(build: FleetBuild) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The hub's argo-cd HelmRelease and configs objects of a fleet built with ``fleet.delivery.apps: argocd``."""
    hub = build.clusters["management"].resources
    (release,) = _docs_of(hub["infra-controllers/helmrelease.argocd.argo-cd.yaml"].text)
    configs = [d for rel, res in sorted(hub.items()) if rel.startswith("infra-configs/") for d in _docs_of(res.text)]
    return release, configs


def _docs_of(text: str) -> list[dict[str, Any]]:
    return [d for d in load_documents(text) if d]


def test_argocd_in_prod_is_highly_available() -> None:
    """The reference fleet with Argo CD on the hub (tests/test_argocd.py renders and builds it): its release passes
    the same check as every other prod platform release, and losing a setting is reported."""
    from test_argocd import argocd_build, argocd_root

    hub = next(c for c in resolve(load_inventory(argocd_root())).clusters if c.name == "management")
    assert hub.cluster.environment == PROD
    (chart,) = [c.component.chart for c in hub.components if c.component.chart.name == "argo-cd"]
    release, configs = argocd_hub_release(argocd_build())
    assert release_problems("management", chart.name, chart.version, release, configs, ha_map()) == []
    entry = ha_map()["argo-cd"]
    for edit, expected in [
        (lambda v: v["controller"].update(replicas=1), "application-controller: controller.replicas is 1"),
        (lambda v: v["server"]["pdb"].pop("minAvailable"), "server: server.pdb.minAvailable is None"),
        (lambda v: v["redis-ha"].pop("topologySpreadConstraints"), "redis-ha-haproxy: redis-ha.topologySpread"),
        (lambda v: v["redis-ha"]["haproxy"].pop("podDisruptionBudget"), "redis-ha-haproxy: redis-ha.haproxy.podDis"),
    ]:
        broken = copy.deepcopy(release)
        edit(broken["spec"]["values"])
        assert any(expected in p for p in ha_problems(broken, configs, entry)), expected


def test_every_singleton_says_why() -> None:
    for chart, entry in ha_map().items():
        for singleton in entry.get("singletons", []):
            assert len(singleton.get("reason", "")) > 40, f"{chart}: singleton {singleton['name']} without a reason"
        if "noWorkloads" in entry:
            assert len(entry["noWorkloads"]) > 40, f"{chart}: noWorkloads without a reason"
            assert not entry.get("workloads") and not entry.get("daemonsets"), f"{chart}: noWorkloads but lists pods"
        assert entry.get("source"), f"{chart}: no upstream source cited"


def _release(chart: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    _, _, _, release, configs = next(r for r in prod_releases() if r[1] == chart and r[0] != "management")
    return copy.deepcopy(release), configs, ha_map()[chart]


@pytest.mark.parametrize(
    ("chart", "edit", "expected"),
    [
        ("cert-manager", lambda v: v["webhook"].update(replicaCount=1), "webhook: webhook.replicaCount is 1"),
        ("cert-manager", lambda v: v["cainjector"].pop("podDisruptionBudget"), "cainjector.podDisruptionBudget"),
        ("kyverno", lambda v: v["reportsController"].pop("topologySpreadConstraints"), "reports-controller"),
        ("gateway-helm", lambda v: v["podDisruptionBudget"].update(minAvailable=0), "envoy-gateway: podDisruption"),
        ("falco", lambda v: v["falcosidekick"].pop("affinity"), "falcosidekick: falcosidekick.affinity"),
        ("flagger", lambda v: v.pop("affinity"), "flagger: affinity has no podAntiAffinity"),
        ("istiod", lambda v: v.update(autoscaleMin=1), "istiod: autoscaleMin is 1"),
    ],
)
def test_a_missing_setting_is_reported(chart: str, edit: Any, expected: str) -> None:
    release, configs, entry = _release(chart)
    assert ha_problems(release, configs, entry) == []
    edit(release["spec"]["values"])
    assert any(expected in p for p in ha_problems(release, configs, entry))


def test_falcosidekick_pdb_must_be_in_the_release_namespace() -> None:
    release, configs, entry = _release("falco")
    assert ha_problems(release, [c for c in configs if c.get("kind") != "PodDisruptionBudget"], entry)
