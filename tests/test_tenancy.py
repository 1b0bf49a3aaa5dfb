"""Flux multi-tenancy and alert coverage, checked on what the reference fleet renders and builds.

- A team can create Flux objects in its namespaces (the aggregated ``edit`` role includes Flux's ``flux-edit``);
  the objects it could use to act with more rights than it has are denied by ``restrict-flux-tenancy``
  (offline evaluation with the real CEL engine, and ``fleetgen policy test`` on the real build).
- The tenant reconcilers never hold more than ``edit`` in a team namespace.
- Every namespace holding Flux objects on every cluster (golden tree) is covered by an Alert, with
  notification-controller's matching rules (v1.9.3 internal/server/event_handlers.go).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from _buildkit import shared_cache_dir
from conftest import REPO

from generator import cli
from generator.inventory.loader import load_inventory
from generator.inventory.models import TENANCY_POLICY
from generator.inventory.resolve import resolve
from generator.render.pipeline import plan
from generator.render.planner import FLUX_NAMESPACE, TENANT_SERVICE_ACCOUNT
from generator.tools import TOOLS_DIR_ENV, tools_dir
from generator.verify.evaluate import Evaluator
from generator.verify.schema import CrdCatalogue, SchemaValidator
from generator.yamlio import load_documents

FIXTURES = Path(__file__).parent / "fixtures" / "policies"
TENANCY = FIXTURES / "tenancy"
FLUX_GROUP_SUFFIX = ".toolkit.fluxcd.io"
#: The kinds an Alert can watch: the eventSources kind enum of notification-controller v1.9.3
#: (config/crd/bases/notification.toolkit.fluxcd.io_alerts.yaml). Alerts, Providers and Receivers emit no events.
ALERTABLE_KINDS = frozenset(
    {
        "Bucket",
        "GitRepository",
        "Kustomization",
        "HelmRelease",
        "HelmChart",
        "HelmRepository",
        "ImageRepository",
        "ImagePolicy",
        "ImageUpdateAutomation",
        "OCIRepository",
        "ArtifactGenerator",
        "ExternalArtifact",
    }
)


@cache
def rendered() -> dict[str, str]:
    return plan(REPO).files


def objects_under(prefix: str) -> list[dict[str, Any]]:
    return [doc for path, text in rendered().items() if path.startswith(prefix) for doc in load_documents(text)]


def team_namespace(name: str = "storefront") -> dict[str, Any]:
    """The Namespace object the fleet renders for a team namespace (its labels select the tenancy policy)."""
    return next(
        o for o in objects_under("fleet/tenants/") if o["kind"] == "Namespace" and o["metadata"]["name"] == name
    )


def tenancy_evaluator(env: str) -> Evaluator:
    policies = [o for o in objects_under(f"fleet/infrastructure/policies/{env}/") if o["kind"] == "ValidatingPolicy"]
    namespaces = [team_namespace(), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cert-manager"}}]
    return Evaluator(policies, namespaces=namespaces)


def fixtures(kind: str) -> list[Path]:
    return sorted((TENANCY / kind).glob("*.yaml"))


# --- the tenancy guard --------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
@pytest.mark.parametrize("path", fixtures("fail"), ids=lambda p: p.stem)
def test_tenant_flux_objects_that_could_escalate_are_denied_in_every_environment(path: Path, env: str) -> None:
    (obj,) = load_documents(path.read_text())
    findings = tenancy_evaluator(env).evaluate(obj)
    assert {f.policy for f in findings} == {TENANCY_POLICY}, [str(f) for f in findings]
    assert all(f.action == "Deny" and f.blocking and not f.error for f in findings)


def test_the_denials_say_why() -> None:
    engine = tenancy_evaluator("prod")
    (finding,) = engine.evaluate(
        load_documents((TENANCY / "fail/helmrelease-without-service-account.yaml").read_text())[0]
    )
    assert "spec.serviceAccountName is required" in finding.message
    (finding,) = engine.evaluate(
        load_documents((TENANCY / "fail/kustomization-cross-namespace-source.yaml").read_text())[0]
    )
    assert (
        finding.message
        == "cross-namespace references are not allowed in a team namespace: OCIRepository payments/payments-manifests"
    )


@pytest.mark.parametrize("path", fixtures("pass"), ids=lambda p: p.stem)
def test_tenant_flux_objects_confined_to_their_namespace_pass(path: Path) -> None:
    engine = tenancy_evaluator("prod")
    for obj in load_documents(path.read_text()):
        assert engine.evaluate(obj) == []


def test_the_guard_applies_to_team_namespaces_only() -> None:
    """Platform component releases (no serviceAccountName, run as helm-controller) live outside team namespaces."""
    (obj,) = load_documents((TENANCY / "fail/helmrelease-without-service-account.yaml").read_text())
    obj["metadata"]["namespace"] = "cert-manager"
    assert tenancy_evaluator("prod").evaluate(obj) == []


def test_every_tenant_kustomization_and_helmrelease_impersonates_a_tenant_account() -> None:
    """What fleetgen itself renders for teams: apps-<team> as flux-system/tenant-<team>, app releases as
    <namespace>/flux-tenant, chart from the fleet-repo source only — and the guard admits all of it."""
    releases = [o for o in objects_under("fleet/apps/base/") if o["kind"] == "HelmRelease"]
    assert releases
    engine = tenancy_evaluator("prod")
    for release in releases:
        assert release["spec"]["serviceAccountName"] == TENANT_SERVICE_ACCOUNT
        assert release["spec"]["chart"]["spec"]["sourceRef"] == {
            "kind": "GitRepository",
            "name": FLUX_NAMESPACE,
            "namespace": FLUX_NAMESPACE,
        }
        release["metadata"]["namespace"] = "storefront"  # evaluate as if in the labelled team namespace
        assert engine.evaluate(release) == [], release["metadata"]["name"]
    for path, text in rendered().items():
        if path.endswith("/apps.yaml") and path.startswith("fleet/clusters/"):
            for sync in load_documents(text):
                team = sync["metadata"].get("labels", {}).get("fleet.gitops.io/team")
                if team:
                    assert sync["spec"]["serviceAccountName"] == f"tenant-{team}", path


def test_tenant_reconcilers_hold_no_more_than_edit() -> None:
    """A team (edit by default) can name flux-tenant in a HelmRelease or run a Pod as it: the reconcilers'
    binding must not exceed edit, while the team's own binding follows tenancy.teamRole."""
    bindings = [o for o in objects_under("fleet/tenants/") if o["kind"] == "RoleBinding"]
    reconcilers = [b for b in bindings if b["metadata"]["name"] == TENANT_SERVICE_ACCOUNT]
    teams = [b for b in bindings if b["metadata"]["name"].startswith("team-")]
    assert reconcilers and teams
    for binding in reconcilers:
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"}
        assert {s["kind"] for s in binding["subjects"]} == {"ServiceAccount"}
    roles = {b["metadata"]["namespace"]: b["roleRef"]["name"] for b in teams}
    prod = {
        o["metadata"]["namespace"] for o in objects_under("fleet/tenants/overlays/prod/") if o["kind"] == "RoleBinding"
    }
    assert prod and all(roles[ns] in ("view", "edit") for ns in roles)
    assert {b["roleRef"]["name"] for b in teams if b["metadata"]["namespace"] in prod} <= {"view", "edit"}


def test_tenancy_fixtures_are_valid_flux_objects() -> None:
    validator = SchemaValidator(CrdCatalogue.builtin(), "1.33")
    for path in sorted(TENANCY.rglob("*.yaml")):
        for obj in load_documents(path.read_text()):
            assert validator.validate(obj) == [], path


def run_cli(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    parser = cli.parser()
    monkeypatch.setattr(cli, "parser", lambda: parser)
    monkeypatch.setenv(TOOLS_DIR_ENV, str(tools_dir(REPO)))
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_prod_admits_compliant_workloads_and_denies_escalation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`fleetgen policy test` on prod-us-east-1's real build: a compliant Deployment and CronJob are admitted;
    a tenant HelmRelease without a service account and privileged / no-limits / foreign-registry workloads are not."""
    cache = ["--cache-dir", str(shared_cache_dir())]
    base = ["policy", "test", str(REPO), "--cluster", "prod-us-east-1"]
    admitted = [str(FIXTURES / "pass/deployment.yaml"), str(FIXTURES / "pass/cronjob.yaml")]
    code, out, err = run_cli([*base, *admitted, *cache], monkeypatch, capsys)
    assert (code, out) == (0, ""), err
    assert "2 objects checked" in err and "admitted" in err

    denied = {
        "restrict-flux-tenancy": TENANCY / "fail/helmrelease-without-service-account.yaml",
        "disallow-privileged-containers": FIXTURES / "fail/disallow-privileged-containers/deployment.yaml",
        "require-requests-limits": FIXTURES / "fail/require-requests-limits/cronjob.yaml",
        "restrict-image-registries": FIXTURES / "fail/restrict-image-registries/deployment.yaml",
    }
    for policy, path in denied.items():
        code, out, err = run_cli([*base, str(path), *cache], monkeypatch, capsys)
        assert code == 1, (policy, out, err)
        assert f"DENIED by 1 policies: {policy}" in err, (policy, err)


# --- alerts ---------------------------------------------------------------------------------------------------


def golden_objects(cluster_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """(kustomization folder, object) for every resource of one cluster's golden tree."""
    return [
        (path.relative_to(cluster_dir).parts[0], doc)
        for path in sorted(cluster_dir.rglob("*.yaml"))
        for doc in load_documents(path.read_text())
        if isinstance(doc, dict) and "kind" in doc
    ]


def applied_remotely(folder: str, objects: list[tuple[str, dict[str, Any]]]) -> bool:
    """True when the Kustomization that built ``folder`` applies to another cluster (spec.kubeConfig)."""
    namespace, _, name = folder.rpartition(".")
    for _, obj in objects:
        meta = obj.get("metadata", {})
        if (
            obj["kind"] == "Kustomization"
            and meta.get("name") == name
            and meta.get("namespace") == (namespace or FLUX_NAMESPACE)
        ):
            return "kubeConfig" in obj.get("spec", {})
    return False


def flux_objects(objects: list[tuple[str, dict[str, Any]]]) -> set[tuple[str, str, str]]:
    """(namespace, kind, name) of every Flux object on the cluster, plus the HelmCharts helm-controller creates
    for chart.spec releases in the source's namespace (helm-controller v1.6.3 HelmChartTemplate.GetNamespace)."""
    found = set()
    for folder, obj in objects:
        if applied_remotely(folder, objects):
            continue
        group = obj["apiVersion"].rpartition("/")[0]
        if not group.endswith(FLUX_GROUP_SUFFIX) or obj["kind"] not in ALERTABLE_KINDS:
            continue
        namespace = obj["metadata"].get("namespace", "default")
        found.add((namespace, obj["kind"], obj["metadata"]["name"]))
        if obj["kind"] == "HelmRelease" and "chart" in obj["spec"]:
            ref = obj["spec"]["chart"]["spec"]["sourceRef"]
            found.add((ref.get("namespace", namespace), "HelmChart", f"{namespace}-{obj['metadata']['name']}"))
    return found


def covers(alert: dict[str, Any], namespace: str, kind: str, name: str) -> bool:
    """notification-controller's eventMatchesAlertSource: exact namespace (empty = the Alert's), kind, name or *."""
    for source in alert["spec"].get("eventSources", []):
        source_namespace = source.get("namespace") or alert["metadata"]["namespace"]
        matches = (source_namespace, source["kind"]) == (namespace, kind) and source["name"] in ("*", name)
        if matches and not source.get("matchLabels"):  # matchLabels would need the live object's labels
            return True
    return False


@cache
def cluster_environments() -> dict[str, str]:
    return {c.name: c.cluster.environment for c in resolve(load_inventory(REPO)).clusters}


@pytest.mark.parametrize("cluster", sorted(cluster_environments()))
def test_every_namespace_with_flux_objects_is_covered_by_an_alert(cluster: str) -> None:
    objects = golden_objects(REPO / "golden" / cluster)
    alerts = [o for _, o in objects if o["kind"] == "Alert" and o["apiVersion"].startswith("notification.")]
    providers = {
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for _, o in objects
        if o["kind"] == "Provider" and o["apiVersion"].startswith("notification.toolkit.fluxcd.io/")
    }
    assert alerts, cluster
    severity = "info" if cluster_environments()[cluster] == "dev" else "error"
    for alert in alerts:
        spec = alert["spec"]
        assert (alert["metadata"]["namespace"], spec["providerRef"]["name"]) in providers  # Providers are local
        assert spec["eventSeverity"] == severity
        assert spec["eventMetadata"]["cluster"] == cluster
        assert spec["eventMetadata"]["environment"] == cluster_environments()[cluster]
        assert "summary" not in spec  # deprecated in v1beta3: eventMetadata carries the context
    found = flux_objects(objects)
    namespaces = {ns for ns, _, _ in found}
    assert FLUX_NAMESPACE in namespaces and len(namespaces) > 3, namespaces
    missing = sorted(
        f"{kind} {ns}/{name}" for ns, kind, name in found if not any(covers(a, ns, kind, name) for a in alerts)
    )
    assert not missing, f"{cluster}: Flux objects no Alert covers: {missing}"


def test_the_hub_alerts_on_spoke_bootstrap_objects() -> None:
    objects = golden_objects(REPO / "golden" / "management")
    alerts = [o for _, o in objects if o["kind"] == "Alert"]
    spokes = {(ns, kind) for ns, kind, _ in flux_objects(objects) if ns == "fleet-clusters"}
    assert {
        ("fleet-clusters", "HelmRelease"),
        ("fleet-clusters", "Kustomization"),
        ("fleet-clusters", "OCIRepository"),
    } <= spokes
    assert all(any(covers(a, ns, kind, "any") for a in alerts) for ns, kind in spokes)


def test_coverage_check_fails_without_the_alerts(tmp_path: Path) -> None:
    """The coverage check is not vacuous: drop one namespace's Alert and it reports that namespace's objects."""
    objects = golden_objects(REPO / "golden" / "prod-us-east-1")
    alerts = [o for _, o in objects if o["kind"] == "Alert" and o["metadata"]["name"] != "storefront"]
    found = flux_objects(objects)
    missing = {ns for ns, kind, name in found if not any(covers(a, ns, kind, name) for a in alerts)}
    assert missing == {"storefront"}
