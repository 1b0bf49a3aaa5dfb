"""Kyverno CEL policies per environment, policy exceptions, External Secrets and CODEOWNERS: what is rendered,
and that every rendered object validates strictly against the built-in catalogue and the core schemas."""

from __future__ import annotations

import datetime
import json
from functools import cache
from pathlib import Path
from typing import Any

import cel
import pytest
from conftest import REPO

from generator.errors import InventoryError
from generator.inventory.loader import load_inventory
from generator.inventory.models import TENANCY_POLICY, VALIDATING_POLICIES
from generator.inventory.resolve import resolve
from generator.render.pipeline import Rendered, plan
from generator.render.policies import cel_literal, codeowners, plan_policies
from generator.verify.cel import compile_expression
from generator.verify.evaluate import Evaluator
from generator.verify.schema import CrdCatalogue, SchemaValidator
from generator.yamlio import load_documents

TODAY = datetime.date(2026, 11, 27)


@cache
def reference() -> Rendered:
    return plan(REPO)


def objects_under(rendered: Rendered, folder: str) -> list[dict[str, Any]]:
    """Every object in the rendered files below ``fleet/<folder>/``."""
    prefix = f"fleet/{folder.strip('/')}/"
    return [
        doc
        for path, text in rendered.files.items()
        if path.startswith(prefix) and path.endswith(".yaml") and not path.endswith("kustomization.yaml")
        for doc in load_documents(text)
    ]


def by_name(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@cache
def validator() -> SchemaValidator:
    return SchemaValidator(CrdCatalogue.builtin(), "1.33")


def write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def append(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.write_text(path.read_text() + text)


EXCEPTION = """\
exceptions:
  - name: legacy-batch
    owner: payments
    reason: The legacy settlement batch needs host networking until its rewrite ships (PAY-1234).
    expires: 2027-01-31
    policies: [disallow-host-namespaces, require-probes]
    namespaces: [payments]
    names: [settlement]
    environments: [prod]
"""


# --- rendering ------------------------------------------------------------------------------------------------


def test_every_environment_gets_every_policy_with_its_layered_action() -> None:
    rendered = reference()
    expected = {"dev": "Audit", "staging": "Deny", "prod": "Deny"}
    for env, action in expected.items():
        objects = objects_under(rendered, f"infrastructure/policies/{env}")
        validating = by_name(objects, "ValidatingPolicy")
        tenancy = validating.pop(TENANCY_POLICY)
        assert tenancy["spec"]["validationActions"] == ["Deny"], env  # never only audited, dev included
        assert tenancy["spec"]["matchConstraints"]["namespaceSelector"] == {
            "matchExpressions": [{"key": "fleet.gitops.io/team", "operator": "Exists"}]
        }
        assert sorted(validating) == sorted(VALIDATING_POLICIES)
        for policy in validating.values():
            assert policy["apiVersion"] == "policies.kyverno.io/v1"
            assert policy["spec"]["validationActions"] == [action], (env, policy["metadata"]["name"])
            assert policy["spec"]["autogen"] == {"podControllers": {"controllers": []}}
            rules = policy["spec"]["matchConstraints"]["resourceRules"]
            resources = {r for rule in rules for r in rule["resources"]}
            assert resources >= {"pods", "deployments", "statefulsets", "daemonsets"}
            batch = {"jobs", "cronjobs"} & resources
            assert batch == (set() if policy["metadata"]["name"] == "require-probes" else {"jobs", "cronjobs"})
            excluded = policy["spec"]["matchConstraints"]["namespaceSelector"]["matchExpressions"][0]
            assert excluded["operator"] == "NotIn"
            assert {"kube-system", "kyverno", "flux-system", "cert-manager"} <= set(excluded["values"])
            assert not {"payments", "checkout", "catalog", "storefront"} & set(excluded["values"])
        assert by_name(objects, "MutatingPolicy") == {}  # dropped: see README "Policies and security"
        assert set(by_name(objects, "GeneratingPolicy")) == {"generate-default-deny-networkpolicy"}
        image = by_name(objects, "ImageValidatingPolicy")["verify-image-signatures"]
        assert image["spec"]["validationActions"] == ["Audit" if env in ("dev", "staging") else "Deny"]
        assert image["spec"]["matchImageReferences"] == [{"glob": "ghcr.io/acme/*"}]
        identity = image["spec"]["attestors"][0]["cosign"]["keyless"]["identities"][0]
        assert identity["issuer"] == "https://token.actions.githubusercontent.com"


def test_policies_reach_each_environments_configs_overlay() -> None:
    files = reference().files
    for env in ("dev", "staging", "prod"):
        text = files[f"fleet/infrastructure/overlays/{env}/configs/kustomization.yaml"]
        assert f"../../../../infrastructure/policies/{env}" in text
    management = files["fleet/infrastructure/clusters/management/configs/kustomization.yaml"]
    assert "infrastructure/secret-stores/management" in management


def test_inventory_values_reach_cel_only_as_literals(fleet_root: Path) -> None:
    """A label or registry with quotes and backslashes cannot break out of its CEL string literal."""
    nasty = 'x.io/a"b'
    assert cel.compile(cel_literal([nasty, "c\\d", "é"])).execute({}) == [nasty, "c\\d", "é"]
    text = (fleet_root / "inventory/fleet.yaml").read_text()
    text = text.replace(
        "allowedRegistries: [ghcr.io/acme]", 'allowedRegistries: [ghcr.io/acme, "evil\\" || true || \\""]'
    )
    (fleet_root / "inventory/fleet.yaml").write_text(text)
    objects = objects_under(plan(fleet_root), "infrastructure/policies/prod")
    policy = by_name(objects, "ValidatingPolicy")["restrict-image-registries"]
    variable = next(v for v in policy["spec"]["variables"] if v["name"] == "allowedPrefixes")
    assert cel.compile(variable["expression"]).execute({}) == ['evil" || true || "/', "ghcr.io/acme/"]


def test_every_rendered_security_object_validates_strictly(fleet_root: Path) -> None:
    write(fleet_root, "inventory/exceptions.yaml", EXCEPTION)
    fleet = resolve(load_inventory(fleet_root, today=TODAY))
    contribution = plan_policies(fleet)
    objects = [doc for path, text in contribution.files.items() for doc in load_documents(text)]
    objects = [o for o in objects if o["kind"] != "Kustomization"]
    kinds = {o["kind"] for o in objects}
    assert kinds == {
        "ValidatingPolicy",
        "GeneratingPolicy",
        "ImageValidatingPolicy",
        "PolicyException",
        "ClusterRole",
        "ClusterSecretStore",
        "ServiceAccount",
    }
    external = [
        doc
        for path, text in plan(fleet_root).files.items()
        if path.endswith("/external-secrets.yaml")
        for doc in load_documents(text)
    ]
    assert {o["kind"] for o in external} == {"ExternalSecret"}
    violations = validator().validate_all([*objects, *external])
    assert not violations, "\n".join(str(v) for v in violations)


def test_the_generated_default_deny_networkpolicy_is_valid() -> None:
    """The NetworkPolicy the GeneratingPolicy creates (a CEL map) is a strict, valid networking.k8s.io/v1 object."""
    objects = objects_under(reference(), "infrastructure/policies/prod")
    policy = by_name(objects, "GeneratingPolicy")["generate-default-deny-networkpolicy"]
    variables = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}
    network_policy = cel.compile(variables["networkPolicy"]).execute({})
    network_policy["metadata"]["namespace"] = "payments"
    assert validator().validate(network_policy) == []
    assert network_policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert network_policy["spec"]["podSelector"] == {}
    dns = network_policy["spec"]["egress"][0]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert policy["spec"]["generate"] == [
        {"expression": "generator.Apply(variables.namespace, [variables.networkPolicy])"}
    ]


def test_validating_policies_stay_within_the_offline_engine() -> None:
    for env in ("dev", "staging", "prod"):
        objects = objects_under(reference(), f"infrastructure/policies/{env}")
        evaluator = Evaluator([o for o in objects if o["kind"] == "ValidatingPolicy"])
        assert len(evaluator.policies) == len(VALIDATING_POLICIES) + 1  # + the tenancy policy
        for policy in objects:
            if policy["kind"] == "ValidatingPolicy":
                assert ".?" not in json.dumps(policy["spec"])
    assert compile_expression("has(object.spec)", "x").uses == ()


# --- exceptions ---------------------------------------------------------------------------------------------


def test_exception_becomes_a_policyexception_in_its_environments_only(fleet_root: Path) -> None:
    write(fleet_root, "inventory/exceptions.yaml", EXCEPTION)
    fleet = resolve(load_inventory(fleet_root, today=TODAY))
    files = plan_policies(fleet).files
    assert "infrastructure/policies/dev/exceptions.yaml" not in files
    (exception,) = load_documents(files["infrastructure/policies/prod/exceptions.yaml"])
    assert exception["apiVersion"] == "policies.kyverno.io/v1"
    assert exception["metadata"]["namespace"] == "kyverno"
    assert exception["metadata"]["annotations"]["fleet.gitops.io/owner"] == "payments"
    assert exception["spec"]["expiresAt"] == "2027-02-01T00:00:00Z"
    assert exception["spec"]["policyRefs"] == [
        {"name": "disallow-host-namespaces", "kind": "ValidatingPolicy"},
        {"name": "require-probes", "kind": "ValidatingPolicy"},
    ]
    kustomization = load_documents(files["infrastructure/policies/prod/kustomization.yaml"])[0]
    assert "exceptions.yaml" in kustomization["resources"]


def test_expired_exception_is_an_inventory_error_with_its_place(fleet_root: Path) -> None:
    write(fleet_root, "inventory/exceptions.yaml", EXCEPTION)
    load_inventory(fleet_root, today=datetime.date(2027, 1, 31))  # still valid on its last day
    with pytest.raises(InventoryError) as caught:
        load_inventory(fleet_root, today=datetime.date(2027, 2, 1))
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.field) == ("inventory/exceptions.yaml", 5, "exceptions.0.expires")
    assert "expired on 2027-01-31 (today is 2027-02-01)" in problem.message
    assert "owner payments" in problem.message


@pytest.mark.parametrize(
    ("file", "text", "where", "fragment"),
    [
        (
            "inventory/exceptions.yaml",
            EXCEPTION.replace("owner: payments", "owner: paymnts"),
            ("inventory/exceptions.yaml", 3, "exceptions.0.owner"),
            "did you mean 'payments'?",
        ),
        (
            "inventory/exceptions.yaml",
            EXCEPTION.replace("require-probes]", "require-probe]"),
            ("inventory/exceptions.yaml", 6, "exceptions.0.policies.1"),
            "did you mean 'require-probes'?",
        ),
        (
            "overlays/prod.yaml",
            None,
            ("overlays/prod.yaml", 8, "policies.actions.disallow-privileged"),
            "unknown policy 'disallow-privileged'",
        ),
    ],
)
def test_policy_inventory_errors(
    fleet_root: Path, file: str, text: str | None, where: tuple[str, int, str], fragment: str
) -> None:
    if text is None:
        path = fleet_root / file
        path.write_text(
            path.read_text().replace(
                "policies:\n  validationAction: Deny\n",
                "policies:\n  validationAction: Deny\n  actions:\n    disallow-privileged: Audit\n",
            )
        )
    else:
        write(fleet_root, file, text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(fleet_root, today=TODAY)
    problems = [(p.file, p.line, p.field) for p in caught.value.problems]
    assert where in problems, caught.value
    assert fragment in str(caught.value)


def test_policies_are_per_environment_not_per_cluster(fleet_root: Path) -> None:
    append(fleet_root, "inventory/clusters/dev.yaml", "    policies: {validationAction: Deny}\n")
    with pytest.raises(InventoryError, match="policies are set per environment"):
        load_inventory(fleet_root, today=TODAY)


# --- external secrets ---------------------------------------------------------------------------------------


def test_a_cluster_secret_store_per_cluster_for_its_cloud() -> None:
    objects = objects_under(reference(), "infrastructure/secret-stores")
    stores = [o for o in objects if o["kind"] == "ClusterSecretStore"]
    assert len(stores) == len(reference().fleet.clusters)
    providers = {o["metadata"]["labels"]["fleet.gitops.io/secrets-provider"]: o["spec"]["provider"] for o in stores}
    # the hub is not composed by Crossplane: its store signs in as the store's service account (IRSA role)
    hub = objects_under(reference(), "infrastructure/secret-stores/management")
    hub_aws = next(o for o in hub if o["kind"] == "ClusterSecretStore")["spec"]["provider"]["aws"]
    assert hub_aws["service"] == "SecretsManager"
    assert hub_aws["auth"] == {
        "jwt": {"serviceAccountRef": {"name": "external-secrets-store", "namespace": "external-secrets"}}
    }
    # a composed EKS cluster: the ESO controller's Pod Identity (no auth block, no store service account)
    spoke = objects_under(reference(), "infrastructure/secret-stores/prod-us-east-1")
    assert [o["kind"] for o in spoke] == ["ClusterSecretStore"]
    assert spoke[0]["spec"]["provider"] == {"aws": {"service": "SecretsManager", "region": "us-east-1"}}
    assert providers["azure-key-vault"]["azurekv"]["authType"] == "WorkloadIdentity"
    assert providers["gcp-secret-manager"]["gcpsm"]["auth"]["workloadIdentity"]["clusterName"] in {
        "dev-us-central1",
        "prod-europe-west1",
    }
    accounts = {
        o["metadata"]["annotations"].get("eks.amazonaws.com/role-arn") for o in objects if o["kind"] == "ServiceAccount"
    }
    assert "arn:aws:iam::111122223333:role/management-external-secrets" in accounts
    text = "\n".join(reference().files.values())
    assert "kind: Secret\n" not in text


def test_vault_backend_for_one_cluster(fleet_root: Path) -> None:
    fleet_yaml = fleet_root / "inventory/fleet.yaml"
    fleet_yaml.write_text(
        fleet_yaml.read_text().replace(
            "      storeName: fleet-secrets\n",
            "      storeName: fleet-secrets\n      vault: {server: https://vault.acme.example.com, role: eso}\n",
        )
    )
    append(fleet_root, "inventory/clusters/dev.yaml", "    secretsBackend: vault\n")
    objects = objects_under(plan(fleet_root), "infrastructure/secret-stores/dev-us-central1")
    store = next(o for o in objects if o["kind"] == "ClusterSecretStore")
    assert store["spec"]["provider"] == {
        "vault": {
            "server": "https://vault.acme.example.com",
            "path": "secret",
            "version": "v2",
            "auth": {
                "kubernetes": {
                    "mountPath": "kubernetes-dev-us-central1",
                    "role": "eso",
                    "serviceAccountRef": {"name": "external-secrets-store", "namespace": "external-secrets"},
                }
            },
        }
    }


def test_app_secrets_become_external_secrets_in_the_apps_base() -> None:
    files = reference().files
    assert "external-secrets.yaml" in files["fleet/apps/base/payments/kustomization.yaml"]
    secrets = load_documents(files["fleet/apps/base/payments/external-secrets.yaml"])
    assert [s["metadata"]["name"] for s in secrets] == ["payments-db", "payments-psp"]
    assert all(s["metadata"]["namespace"] == "payments" for s in secrets)
    assert secrets[0]["spec"]["data"][0] == {
        "secretKey": "username",
        "remoteRef": {"key": "acme/payments/db", "property": "username"},
    }
    assert secrets[1]["spec"]["dataFrom"] == [{"extract": {"key": "acme/payments/psp-api"}}]


def test_missing_provider_for_a_clusters_cloud_is_an_inventory_error(fleet_root: Path) -> None:
    path = fleet_root / "inventory/fleet.yaml"
    lines = [line for line in path.read_text().splitlines(keepends=True) if not line.startswith("      gcp:")]
    path.write_text("".join(lines))
    with pytest.raises(InventoryError) as caught:
        load_inventory(fleet_root, today=TODAY)
    assert "fleet.security.secrets.gcp is not configured" in str(caught.value)
    assert {p.file for p in caught.value.problems} == {"inventory/clusters/dev.yaml", "inventory/clusters/prod.yaml"}


# --- CODEOWNERS ---------------------------------------------------------------------------------------------


def test_codeowners_from_teams(fleet_root: Path) -> None:
    write(fleet_root, "inventory/exceptions.yaml", EXCEPTION)
    text = codeowners(resolve(load_inventory(fleet_root, today=TODAY)), fleet_prefix="out/fleet")
    rows = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    owners = {row[0]: row[1:] for row in rows}
    assert owners["*"] == ["@acme/platform"]
    assert owners["/inventory/apps.yaml"] == ["@acme/payments", "@acme/storefront"]
    assert owners["/out/fleet/apps/base/payments/"] == ["@acme/payments"]
    assert owners["/out/fleet/apps/overlays/*/storefront/"] == ["@acme/storefront"]
    assert owners["/overlays/"] == ["@acme/security"]
    assert owners["/out/fleet/infrastructure/policies/"] == ["@acme/security"]
    assert owners["/inventory/exceptions.yaml"] == ["@acme/security"]
    paths = [row[0] for row in rows]
    assert paths.index("/inventory/exceptions.yaml") > paths.index("/inventory/")  # the last match wins


def test_cel_of_the_other_policy_kinds_parses() -> None:
    """Generating and ImageValidating policies are not evaluated offline, but their CEL must parse."""
    objects = objects_under(reference(), "infrastructure/policies/prod")
    sources = []
    for obj in objects:
        spec = obj.get("spec", {})
        if obj["kind"] == "GeneratingPolicy":
            sources += [v["expression"] for v in spec["variables"]] + [g["expression"] for g in spec["generate"]]
        elif obj["kind"] == "ImageValidatingPolicy":
            sources += [v["expression"] for v in spec["validations"]]
    assert len(sources) == 4
    for source in sources:
        cel.compile(source)


def test_policies_need_kyverno_on_every_cluster(fleet_root: Path) -> None:
    path = fleet_root / "inventory/clusters/dev.yaml"
    text = path.read_text().replace(
        "    environment: dev\n    networking: {vpcCidr: 10.10.0.0/16",
        "    environment: dev\n    components: {kyverno: {enabled: false}}\n    networking: {vpcCidr: 10.10.0.0/16",
    )
    path.write_text(text)
    with pytest.raises(InventoryError, match="policy engine 'kyverno' is not enabled there"):
        plan(fleet_root)
    components = fleet_root / "inventory/components.yaml"
    start = components.read_text().index("  - name: kyverno")
    end = components.read_text().index("  - name: external-secrets")
    components.write_text(components.read_text()[:start] + components.read_text()[end:])
    overlay = fleet_root / "overlays/prod.yaml"
    overlay.write_text(overlay.read_text().split("  kyverno:")[0])
    path.write_text(path.read_text().replace("    components: {kyverno: {enabled: false}}\n", ""))
    # fleet.security without any policy engine would render nothing enforceable: an error (issue 10, item 8)
    with pytest.raises(InventoryError, match="no component installs the policy engine"):
        plan(fleet_root)
