"""Every ValidatingPolicy against a passing and a violating fixture per workload kind (Deployment, StatefulSet,
DaemonSet, Job, CronJob, bare Pod; ReplicaSet derived), evaluated offline with the real CEL engine; plus the
engine's failure modes."""

from __future__ import annotations

import copy
import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from generator.inventory.models import VALIDATING_POLICIES
from generator.render.pipeline import plan
from generator.verify.cel import PolicyError, compile_expression
from generator.verify.evaluate import Evaluator, Finding, policy_names
from generator.verify.schema import SchemaValidator
from generator.yamlio import load_documents

FIXTURES = Path(__file__).parent / "fixtures" / "policies"
#: Every workload kind a policy is checked in, one fixture file per kind (pass/<form>.yaml, fail/<policy>/<form>.yaml).
FORMS = ("deployment", "statefulset", "daemonset", "job", "cronjob", "pod")
#: Run-to-completion kinds require-probes leaves alone (their fixtures pass without probes).
BATCH_FORMS = ("job", "cronjob")
FAIL_CASES = [
    (policy, form)
    for policy in VALIDATING_POLICIES
    for form in FORMS
    if not (policy == "require-probes" and form in BATCH_FORMS)
]


@cache
def policies(env: str) -> tuple[dict[str, Any], ...]:
    """The ValidatingPolicies the reference fleet renders for ``env``."""
    prefix = f"fleet/infrastructure/policies/{env}/"
    return tuple(
        doc
        for path, text in plan(REPO).files.items()
        if path.startswith(prefix)
        for doc in load_documents(text)
        if doc["kind"] in ("ValidatingPolicy", "PolicyException")
    )


def evaluator(env: str = "prod") -> Evaluator:
    objects = policies(env)
    return Evaluator(
        [o for o in objects if o["kind"] == "ValidatingPolicy"], [o for o in objects if o["kind"] == "PolicyException"]
    )


def fixture(*parts: str) -> dict[str, Any]:
    (obj,) = load_documents((FIXTURES.joinpath(*parts)).read_text())
    return obj


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]
    if obj["kind"] == "Pod":
        return spec
    template = spec["jobTemplate"]["spec"]["template"] if obj["kind"] == "CronJob" else spec["template"]
    return template["spec"]


def as_replicaset(deployment: dict[str, Any]) -> dict[str, Any]:
    """The Deployment fixture rewritten as the ReplicaSet it creates."""
    obj = copy.deepcopy(deployment)
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": obj["metadata"], "spec": obj["spec"]}


def violated(findings: list[Finding]) -> set[str]:
    return {f.policy for f in findings}


def test_every_policy_has_a_pass_and_a_fail_fixture_per_workload_kind() -> None:
    kinds = {fixture("pass", f"{form}.yaml")["kind"].lower(): form for form in FORMS}
    assert sorted(kinds) == sorted(FORMS)
    for policy in VALIDATING_POLICIES:
        present = {p.stem for p in (FIXTURES / "fail" / policy).glob("*.yaml")}
        expected = set(FORMS) - (set(BATCH_FORMS) if policy == "require-probes" else set())
        assert present == expected, policy
        for form in present:
            assert fixture("fail", policy, f"{form}.yaml")["kind"] == fixture("pass", f"{form}.yaml")["kind"]


@pytest.mark.parametrize("name", sorted(p.name for p in (FIXTURES / "pass").glob("*.yaml")))
def test_passing_fixture_passes_every_policy(name: str) -> None:
    findings = evaluator().evaluate(fixture("pass", name))
    assert findings == []


@pytest.mark.parametrize(("policy", "form"), FAIL_CASES)
def test_violating_fixture_violates_exactly_its_policy(policy: str, form: str) -> None:
    findings = evaluator().evaluate(fixture("fail", policy, f"{form}.yaml"))
    assert violated(findings) == {policy}
    assert all(f.action == "Deny" and f.blocking and not f.error for f in findings)
    assert all(f.message and "evaluation error" not in f.message for f in findings)


@pytest.mark.parametrize(("policy", "form"), FAIL_CASES)
def test_dev_only_audits(policy: str, form: str) -> None:
    findings = evaluator("dev").evaluate(fixture("fail", policy, f"{form}.yaml"))
    assert violated(findings) == {policy}
    assert {f.action for f in findings} == {"Audit"}
    assert not any(f.blocking for f in findings)


def test_replicasets_are_covered_like_deployments() -> None:
    engine = evaluator()
    assert engine.evaluate(as_replicaset(fixture("pass", "deployment.yaml"))) == []
    for policy in VALIDATING_POLICIES:
        findings = engine.evaluate(as_replicaset(fixture("fail", policy, "deployment.yaml")))
        assert violated(findings) == {policy}, (policy, [str(f) for f in findings])


def test_probes_are_required_of_long_running_workloads_only() -> None:
    """Jobs, CronJobs, the Pods a Job owns and bare run-to-completion Pods pass without probes; every
    long-running kind (and a restarting bare Pod) without them is denied."""
    engine = evaluator()
    for name in ("job.yaml", "cronjob.yaml", "pod-of-job.yaml"):
        obj = fixture("pass", name)
        assert all("livenessProbe" not in c for c in pod_spec(obj)["containers"]), name
        assert engine.evaluate(obj) == [], name
    pod = fixture("fail", "require-probes", "pod.yaml")
    assert violated(engine.evaluate(pod)) == {"require-probes"}
    for restart in ("Never", "OnFailure"):
        assert engine.evaluate({**pod, "spec": {**pod["spec"], "restartPolicy": restart}}) == [], restart
    assert violated(engine.evaluate({**pod, "spec": {**pod["spec"], "restartPolicy": "Always"}})) == {"require-probes"}
    owned_by_replicaset = copy.deepcopy(pod)
    owned_by_replicaset["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f", "uid": "u", "controller": True}
    ]
    assert violated(engine.evaluate(owned_by_replicaset)) == {"require-probes"}
    job_without_probes_but_privileged = fixture("fail", "disallow-privileged-containers", "job.yaml")
    assert violated(engine.evaluate(job_without_probes_but_privileged)) == {"disallow-privileged-containers"}


def test_fixtures_are_valid_kubernetes_objects() -> None:
    validator = SchemaValidator(None, "1.33")
    for path in sorted(p for p in FIXTURES.rglob("*.yaml") if "tenancy" not in p.parts):  # Flux kinds: test_tenancy
        for obj in load_documents(path.read_text()):
            assert validator.validate(obj) == [], path


def test_messages_name_the_offending_containers() -> None:
    bad = fixture("fail", "disallow-privileged-containers", "deployment.yaml")
    bad["spec"]["template"]["spec"]["initContainers"] = [
        {**copy.deepcopy(bad["spec"]["template"]["spec"]["containers"][0]), "name": "init"}
    ]
    (finding,) = evaluator().evaluate(bad)
    assert finding.message == "privileged containers are not allowed: web, init"
    assert str(finding).startswith("DENY   disallow-privileged-containers  Deployment storefront/web: ")


def test_excluded_namespaces_and_other_kinds_are_not_checked() -> None:
    bad = fixture("fail", "disallow-privileged-containers", "deployment.yaml")
    bad["metadata"]["namespace"] = "kube-system"
    assert evaluator().evaluate(bad) == []
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "storefront"}}
    assert evaluator().evaluate(service) == []


def test_a_namespace_without_one_is_the_default_namespace() -> None:
    bad = fixture("fail", "require-probes", "statefulset.yaml")
    del bad["metadata"]["namespace"]
    (finding,) = evaluator().evaluate(bad)
    assert finding.namespace == "default"


# --- exceptions ---------------------------------------------------------------------------------------------


def exception(expires: str, names: str = "['web']") -> dict[str, Any]:
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "PolicyException",
        "metadata": {"name": "legacy", "namespace": "kyverno"},
        "spec": {
            "policyRefs": [{"name": "disallow-host-namespaces", "kind": "ValidatingPolicy"}],
            "expiresAt": expires,
            "matchConditions": [
                {"name": "ns", "expression": "object.metadata.namespace in ['storefront']"},
                {"name": "names", "expression": f"{names}.exists(n, object.metadata.name == n)"},
            ],
        },
    }


def test_policy_exception_skips_only_its_policy_and_workloads_until_it_expires() -> None:
    validating = [o for o in policies("prod") if o["kind"] == "ValidatingPolicy"]
    now = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
    bad = fixture("fail", "disallow-host-namespaces", "deployment.yaml")
    assert Evaluator(validating, [exception("2027-01-01T00:00:00Z")], now=now).evaluate(bad) == []
    assert violated(Evaluator(validating, [exception("2026-11-30T00:00:00Z")], now=now).evaluate(bad)) == {
        "disallow-host-namespaces"
    }
    assert violated(Evaluator(validating, [exception("2027-01-01T00:00:00Z", "['other']")], now=now).evaluate(bad))
    both = fixture("fail", "require-probes", "deployment.yaml")
    both["spec"]["template"]["spec"]["hostNetwork"] = True
    findings = Evaluator(validating, [exception("2027-01-01T00:00:00Z")], now=now).evaluate(both)
    assert violated(findings) == {"require-probes"}


# --- the engine never passes silently ------------------------------------------------------------------------


def policy(expression: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ValidatingPolicy",
        "metadata": {"name": "custom"},
        "spec": {
            "validationActions": ["Deny"],
            "matchConstraints": {
                "resourceRules": [
                    {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["*"]}
                ]
            },
            "validations": [{"expression": expression, "message": "custom failed"}],
            **spec,
        },
    }


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("[?optional.none()].size() == 0", "optional syntax the offline engine does not evaluate"),
        ("http.Get('https://example.com').allowed == true", "http.Get() cannot be known offline"),
        ("resource.post('v1', 'x', {}).ok == true", "resource.post() cannot be known offline"),
        ("[1, 2].fold(x, 0, x) == 0", "does not support: fold"),
        ("image(object.spec.template.spec.containers[0].image).registry() == 'x'", "does not support: image"),
        ("object.spec.replicas >", "cannot parse"),
    ],
)
def test_unsupported_cel_fails_loudly_when_the_policy_loads(expression: str, fragment: str) -> None:
    with pytest.raises(PolicyError, match=r"ValidatingPolicy custom spec\.validations\[0\]\.expression") as caught:
        Evaluator([policy(expression)])
    assert fragment in str(caught.value)


def test_runtime_errors_are_violations_not_passes() -> None:
    deployment = fixture("pass", "deployment.yaml")
    (finding,) = Evaluator([policy("object.spec.paused == false")]).evaluate(deployment)
    assert finding.error and finding.blocking
    assert "no such key" in finding.message and "paused" in finding.message
    (finding,) = Evaluator([policy("object.spec.replicas")]).evaluate(deployment)
    assert "not a bool" in finding.message
    # Kyverno v1.19.0 pkg/webhooks/resource/vpol/handler.go: a Deny policy blocks on an erroring validation;
    # failurePolicy Ignore only ignores erroring match conditions (and webhook failures).
    ignoring = Evaluator([policy("object.spec.paused == false", failurePolicy="Ignore")]).evaluate(deployment)
    assert [f.action for f in ignoring] == ["Deny"] and ignoring[0].blocking and ignoring[0].error
    broken_condition = policy(
        "false", failurePolicy="Ignore", matchConditions=[{"name": "broken", "expression": "object.spec.paused"}]
    )
    assert Evaluator([broken_condition]).evaluate(deployment) == []
    broken_condition["spec"]["failurePolicy"] = "Fail"
    (finding,) = Evaluator([broken_condition]).evaluate(deployment)
    assert finding.error and "paused" in finding.message


def test_variables_are_lazy_and_failures_name_the_variable() -> None:
    deployment = fixture("pass", "deployment.yaml")
    unused_broken = policy(
        "variables.replicas == 2",
        variables=[
            {"name": "broken", "expression": "object.spec.nothing.here"},
            {"name": "replicas", "expression": "object.spec.replicas"},
        ],
    )
    assert Evaluator([unused_broken]).evaluate(deployment) == []
    used_broken = policy("variables.broken == 1", variables=[{"name": "broken", "expression": "object.spec.nothing"}])
    (finding,) = Evaluator([used_broken]).evaluate(deployment)
    assert "variable 'broken' failed" in finding.message


def test_match_conditions_selectors_and_exclusions() -> None:
    deployment = fixture("pass", "deployment.yaml")
    failing = "object.metadata.name != 'web'"
    assert Evaluator([policy(failing)]).evaluate(deployment)
    gated = policy(failing, matchConditions=[{"name": "not-web", "expression": "object.metadata.name != 'web'"}])
    assert Evaluator([gated]).evaluate(deployment) == []
    excluded = policy(failing)
    excluded["spec"]["matchConstraints"]["excludeResourceRules"] = [
        {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["*"], "resources": ["deployments"]}
    ]
    assert Evaluator([excluded]).evaluate(deployment) == []
    by_label = policy(failing)
    by_label["spec"]["matchConstraints"]["objectSelector"] = {"matchLabels": {"fleet.gitops.io/team": "payments"}}
    assert Evaluator([by_label]).evaluate(deployment) == []
    by_namespace = policy(failing)
    by_namespace["spec"]["matchConstraints"]["namespaceSelector"] = {"matchLabels": {"tier": "web"}}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "storefront", "labels": {"tier": "web"}}}
    assert Evaluator([by_namespace]).evaluate(deployment) == []
    assert Evaluator([by_namespace], namespaces=[namespace]).evaluate(deployment)
    only_cluster = policy(failing)
    only_cluster["spec"]["matchConstraints"]["resourceRules"][0]["scope"] = "Cluster"
    assert Evaluator([only_cluster]).evaluate(deployment) == []


def test_namespace_object_and_request_are_available() -> None:
    deployment = fixture("pass", "deployment.yaml")
    check = policy(
        "namespaceObject.metadata.name == object.metadata.namespace && request.operation == 'CREATE' && "
        "request.kind.kind == 'Deployment' && oldObject == null && "
        "['a', 'b'].join('-') == 'a-b' && 'x/y'.split('/').size() == 2"
    )
    assert Evaluator([check]).evaluate(deployment) == []
    assert policy_names([]) == []
    assert compile_expression("variables['x'] + variables.y", "here").uses == ("x", "y")


def test_null_fields_are_dropped_like_the_api_server_does() -> None:
    deployment = fixture("pass", "deployment.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["seLinuxOptions"] = None
    deployment["spec"]["template"]["spec"]["hostNetwork"] = None
    assert evaluator().evaluate(deployment) == []
