"""Kyverno v1.19.0 ValidatingPolicy semantics the conformance cases do not reach, and the offline pieces
(optional chains, the resource library, exception settings from the cluster's Kyverno release)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from generator.verify import celoptional
from generator.verify.cel import PolicyError
from generator.verify.evaluate import Evaluator
from generator.verify.policy import CompiledPolicy, ExceptionSettings, PolicyRejected, autogen_specs

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
}


def policy(expression: str = "object.metadata.labels.app == 'api'", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "matchConstraints": {
            "resourceRules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
            ]
        },
        "validations": [{"expression": expression, "message": "app must be api"}],
        **spec,
    }
    return {"apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy", "metadata": {"name": "p"}, "spec": body}


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": copy.deepcopy(POD["spec"])}},
    }


def test_validation_actions_default_to_deny_and_unknown_ones_are_rejected_like_the_api() -> None:
    (finding,) = Evaluator([policy()]).evaluate(POD)
    assert finding.blocking and finding.message == "app must be api"
    with pytest.raises(PolicyRejected, match=r'validationActions\[0\]: Unsupported value: "test"'):
        Evaluator([policy(validationActions=["test"])])


def test_admission_disabled_never_denies() -> None:
    (finding,) = Evaluator([policy(evaluation={"admission": {"enabled": False}})]).evaluate(POD)
    assert finding.action == "Audit" and not finding.blocking and "admission.enabled is false" in finding.message


def test_first_failing_validation_only_and_the_default_message() -> None:
    spec = policy()
    spec["spec"]["validations"] = [{"expression": "false"}, {"expression": "false", "message": "second"}]
    (finding,) = Evaluator([spec]).evaluate(POD)
    assert finding.message == "CEL expression validation failed at index 0"


def test_autogen_rewrites_the_pod_policy_for_controllers_and_can_be_narrowed_or_off() -> None:
    findings = Evaluator([policy()]).evaluate(deployment())
    assert [f.policy for f in findings] == ["p (autogen defaults)"]
    specs = autogen_specs(policy()["spec"])
    assert sorted(specs) == ["cronjobs", "defaults"]
    assert specs["cronjobs"]["validations"][0]["expression"] == (
        "object.spec.jobTemplate.spec.template.metadata.labels.app == 'api'"
    )
    # object.metadata.namespace stays on the workload (pkg/cel/autogen/replacement.go protectedSuffixes)
    namespaced = autogen_specs(policy("object.metadata.namespace == 'shop'")["spec"])
    assert namespaced["defaults"]["validations"][0]["expression"] == "object.metadata.namespace == 'shop'"
    only_jobs = autogen_specs(policy(autogen={"podControllers": {"controllers": ["jobs"]}})["spec"])
    assert list(only_jobs) == ["defaults"]
    assert only_jobs["defaults"]["matchConstraints"]["resourceRules"][0]["resources"] == ["jobs"]
    assert autogen_specs(policy(autogen={"podControllers": {"controllers": []}})["spec"]) == {}
    assert Evaluator([policy(autogen={"podControllers": {"controllers": []}})]).evaluate(deployment()) == []


def exception(namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "PolicyException",
        "metadata": {"name": "x", "namespace": namespace},
        "spec": {"policyRefs": [{"name": "p", "kind": "ValidatingPolicy"}], **spec},
    }


def test_exceptions_are_read_only_where_the_kyverno_release_says() -> None:
    release = {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": "kyverno", "namespace": "kyverno"},
        "spec": {
            "chart": {"spec": {"chart": "kyverno"}},
            "values": {"features": {"policyExceptions": {"enabled": True, "namespace": "kyverno"}}},
        },
    }
    assert ExceptionSettings.from_objects([release]) == ExceptionSettings(True, "kyverno")
    evaluator = Evaluator.for_objects([policy(), exception("kyverno"), exception("shop"), release])
    assert evaluator.evaluate(POD) == []  # the one in kyverno applies
    assert any("PolicyException shop/x" in n for n in evaluator.not_evaluated)
    disabled = copy.deepcopy(release)
    disabled["spec"]["values"] = {}  # the chart's default: disabled
    assert Evaluator.for_objects([policy(), exception("kyverno"), disabled]).evaluate(POD)
    with pytest.raises(PolicyRejected, match="policyRefs: Required value"):
        Evaluator([policy()], [{"kind": "PolicyException", "metadata": {"name": "e"}, "spec": {}}])


def test_partial_exceptions_only_feed_the_exceptions_variable() -> None:
    check = policy("object.spec.containers.all(c, c.image in exceptions.allowedImages)")
    assert Evaluator([check], [exception("kyverno", images=["nginx"])]).evaluate(POD) == []
    assert Evaluator([check], [exception("kyverno", images=["redis"])]).evaluate(POD)
    assert Evaluator([check]).evaluate(POD)


def test_resource_library_reads_the_build_and_refuses_what_it_does_not_contain() -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "apps", "namespace": "shop"}}
    config["data"] = {"allowed": "web"}
    check = policy("resource.get('v1', 'configmaps', 'shop', 'apps').data.allowed == object.metadata.labels.app")
    assert Evaluator([check], cluster_objects=[config]).evaluate(POD) == []
    (unknown,) = Evaluator([check]).evaluate(POD)
    assert unknown.blocking and "cannot be evaluated offline" in unknown.message and "shop/apps" in unknown.message
    listing = policy("resource.list('v1', 'configmaps', 'shop').items.size() > 0")
    (unknown,) = Evaluator([listing], cluster_objects=[config]).evaluate(POD)
    assert "a list cannot be known offline" in unknown.message


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("object.metadata.?annotations['a/b'].orValue('none')", "none"),
        ("object.metadata.?labels['app'].orValue('none')", "web"),
        ("object.spec.?initContainers.orValue([]).size()", 0),
        ("object.spec.?containers[0].?image.value()", "nginx"),
        ("object.spec.?securityContext.?runAsUser.hasValue()", False),
        ("object.metadata.?labels\n  .?app.orValue('x') + '.?'", "web.?"),
    ],
)
def test_optional_chains(source: str, value: Any) -> None:
    check = policy(f"({source}) == {value!r}".replace("False", "false"))
    assert Evaluator([check]).evaluate(POD) == []


def test_other_optional_constructs_are_refused() -> None:
    for source in ("[?optional.none()].size() == 0", "object.?spec == object.?spec"):
        with pytest.raises(PolicyError, match="optional syntax"):
            CompiledPolicy.parse(policy(source))
    assert celoptional.desugar("a ? b : c") == "a ? b : c"


def test_clusters_share_an_evaluator_only_when_what_it_reads_is_equal() -> None:
    from generator.verify.validate import _policy_fingerprint

    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "apps", "namespace": "shop"}}
    other = {**config, "data": {"allowed": "web"}}
    plain = policy()
    assert _policy_fingerprint([plain, config]) == _policy_fingerprint([plain, other])
    reading = policy("resource.get('v1', 'configmaps', 'shop', 'apps').data.allowed == 'web'")
    assert _policy_fingerprint([reading, config]) != _policy_fingerprint([reading, other])
    release = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"name": "kyverno"}}
    assert _policy_fingerprint([plain]) != _policy_fingerprint([plain, release])
