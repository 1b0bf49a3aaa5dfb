"""Tests of generator.verify.schema: strict CRD and core-kind validation of rendered objects."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED_CRDS, needs_shared_crds

from generator.errors import FleetgenError
from generator.openapi import python_pattern, strict_schema_from_openapi
from generator.verify.schema import (
    BUILTIN_CRDS,
    CrdCatalogue,
    SchemaValidator,
    SchemaViolation,
    core_schema_versions,
    extra_crd_dirs,
    load_catalogue,
    nearest_core_version,
    read_crd_documents,
)

Obj = dict[str, Any]


@pytest.fixture(scope="session")
def catalogue() -> CrdCatalogue:
    """The catalogue fleetgen ships (generator/data/crds)."""
    return CrdCatalogue.builtin()


@pytest.fixture(scope="session")
def shared_catalogue() -> CrdCatalogue:
    """Upstream CRDs fleetgen does not ship (AlertmanagerConfig, Canary), for converter edge cases."""
    assert SHARED_CRDS is not None
    return CrdCatalogue.load(SHARED_CRDS)


@pytest.fixture(scope="session")
def validator(catalogue: CrdCatalogue) -> SchemaValidator:
    return SchemaValidator(catalogue, kubernetes_version="1.33")


@pytest.fixture(scope="session")
def core() -> SchemaValidator:
    return SchemaValidator(None, kubernetes_version="1.33")


def messages(violations: list[SchemaViolation]) -> list[str]:
    return [f"{v.path}: {v.message}" for v in violations]


def kustomization() -> Obj:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {
            "name": "apps",
            "namespace": "flux-system",
            "labels": {"app.kubernetes.io/part-of": "x"},
        },
        "spec": {
            "interval": "10m",
            "path": "./clusters/prod/apps",
            "prune": True,
            "wait": True,
            "timeout": "5m",
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
            "dependsOn": [{"name": "infra"}],
            "postBuild": {"substitute": {"cluster": "prod"}},
        },
    }


def helmrelease() -> Obj:
    return {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": "podinfo", "namespace": "apps"},
        "spec": {
            "interval": "1h",
            "chart": {
                "spec": {
                    "chart": "podinfo",
                    "version": "6.x",
                    "sourceRef": {"kind": "HelmRepository", "name": "podinfo", "namespace": "flux-system"},
                }
            },
            "install": {"remediation": {"retries": 3}},
            "upgrade": {"remediation": {"retries": 3, "remediateLastFailure": True}},
            "values": {"replicaCount": 2, "anything": {"goes": ["here"]}},
        },
    }


def ocirepository() -> Obj:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "OCIRepository",
        "metadata": {"name": "podinfo", "namespace": "flux-system"},
        "spec": {
            "interval": "1m",
            "url": "oci://ghcr.io/stefanprodan/charts/podinfo",
            "ref": {"tag": "6.7.0"},
            "secretRef": {"name": "ghcr"},
        },
    }


def deployment() -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.27",
                            "ports": [{"containerPort": 80, "name": "http"}],
                            "resources": {"limits": {"memory": "128Mi", "cpu": "500m"}},
                        }
                    ]
                },
            },
        },
    }


def pdb(min_available: object) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": "web"}}},
    }


# --- CRD catalogue ---


def test_catalogue_indexes_served_versions(catalogue: CrdCatalogue) -> None:
    kinds = catalogue.kinds()
    assert ("helm.toolkit.fluxcd.io/v2", "HelmRelease") in kinds
    assert ("external-secrets.io/v1", "ExternalSecret") in kinds
    assert ("external-secrets.io/v1beta1", "ExternalSecret") not in kinds  # defined but not served
    assert ("apiextensions.crossplane.io/v2", "CompositeResourceDefinition") in kinds
    assert "helm.toolkit.fluxcd.io/v2" in catalogue.api_versions()
    assert catalogue.api_versions() == sorted(set(catalogue.api_versions()))
    schema = catalogue.schema_for("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
    assert schema is not None
    assert schema["additionalProperties"] is False
    assert schema["properties"]["spec"]["additionalProperties"] is False
    assert schema["properties"]["kind"]["const"] == "Kustomization"
    assert catalogue.schema_for("kustomize.toolkit.fluxcd.io/v1", "Kustomization") is schema  # cached
    assert catalogue.schema_for("example.com/v1", "Widget") is None


@needs_shared_crds
def test_alertmanagerconfig_bare_equals_enum_is_a_string(shared_catalogue: CrdCatalogue) -> None:
    schema = shared_catalogue.schema_for("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig")
    assert schema is not None
    assert '"="' in str(schema).replace("'", '"')


@pytest.mark.parametrize("make", [kustomization, helmrelease, ocirepository])
def test_valid_flux_objects_pass(validator: SchemaValidator, make: Any) -> None:
    assert validator.validate(make()) == []


def test_unknown_fields_rejected_with_path(validator: SchemaValidator) -> None:
    obj = kustomization()
    obj["spec"]["foo"] = 1
    obj["spec"]["sourceRef"]["bogus"] = "x"
    obj["spec"]["dependsOn"][0]["extra"] = True
    violations = validator.validate(obj)
    assert messages(violations) == [
        "spec.dependsOn[0].extra: unknown field",
        "spec.foo: unknown field",
        "spec.sourceRef.bogus: unknown field",
    ]
    assert str(violations[1]) == "Kustomization/flux-system/apps: spec.foo: unknown field"


def test_preserve_unknown_fields_allows_anything(validator: SchemaValidator) -> None:
    obj = helmrelease()
    obj["spec"]["values"] = {"deeply": {"nested": {"whatever": [1, {"x": None}]}}}
    assert validator.validate(obj) == []


def test_wrong_type_rejected(validator: SchemaValidator) -> None:
    obj = kustomization()
    obj["spec"]["prune"] = "yes"
    obj["spec"]["dependsOn"] = {"name": "infra"}
    assert messages(validator.validate(obj)) == [
        'spec.dependsOn: must be of type array, not object ({"name": "infra"})',
        'spec.prune: must be of type boolean, not string ("yes")',
    ]


def test_null_rejected_unless_nullable(validator: SchemaValidator) -> None:
    obj = ocirepository()
    obj["spec"]["ref"]["tag"] = None
    assert messages(validator.validate(obj)) == ["spec.ref.tag: must be of type string, not null (null)"]


def test_wrong_enum_rejected(validator: SchemaValidator) -> None:
    obj = kustomization()
    obj["spec"]["sourceRef"]["kind"] = "HelmRepository"
    (violation,) = validator.validate(obj)
    assert violation.path == "spec.sourceRef.kind"
    assert violation.message.startswith('"HelmRepository" is not one of [')
    assert "GitRepository" in violation.message


def test_missing_required_field(validator: SchemaValidator) -> None:
    obj = kustomization()
    del obj["spec"]["sourceRef"]
    del obj["spec"]["interval"]
    assert messages(validator.validate(obj)) == [
        "spec.interval: required field is missing",
        "spec.sourceRef: required field is missing",
    ]


def test_pattern_and_format_ranges(validator: SchemaValidator) -> None:
    obj = kustomization()
    obj["spec"]["interval"] = "ten minutes"
    (found,) = messages(validator.validate(obj))
    assert found.startswith('spec.interval: "ten minutes" does not match the pattern')
    schema = strict_schema_from_openapi(
        {
            "type": "object",
            "properties": {"n": {"type": "integer", "format": "int32"}, "d": {"format": "date"}},
        }
    )
    extra = SchemaValidator(None, extra_schemas={("example.com/v1", "N"): schema})
    n: Obj = {
        "apiVersion": "example.com/v1",
        "kind": "N",
        "metadata": {"name": "n"},
        "n": 2**31 - 1,
        "d": "x",
    }
    assert extra.validate(n) == []  # other formats are not checked
    n["n"] = 2**31
    assert messages(extra.validate(n)) == ["n: 2147483648 is not a 'int32'"]


@pytest.mark.parametrize(
    ("metadata", "path", "fragment"),
    [
        ({"name": "Apps_1", "namespace": "flux-system"}, "metadata.name", "RFC 1123 subdomain"),
        ({"name": "a" * 254, "namespace": "flux-system"}, "metadata.name", "RFC 1123 subdomain"),
        ({"name": "apps", "namespace": "flux.system"}, "metadata.namespace", "RFC 1123 label"),
        ({"namespace": "flux-system"}, "metadata.name", "required field is missing"),
        ({"name": "apps", "labels": {"bad key!": "x"}}, 'metadata.labels["bad key!"]', "invalid label key"),
        ({"name": "apps", "labels": {"ok": "bad value!"}}, "metadata.labels.ok", "invalid label value"),
        ({"name": "apps", "labels": {"ok": 3}}, "metadata.labels.ok", "must be of type string"),
        ({"name": "apps", "annotations": {"Example.com/x": "1"}}, None, None),
        ({"name": "apps", "annotations": {"a/b/c": "1"}}, 'metadata.annotations["a/b/c"]', "qualified"),
        ({"name": "apps", "labelz": {}}, "metadata.labelz", "unknown field"),
    ],
)
def test_metadata_checked(
    validator: SchemaValidator, metadata: Obj, path: str | None, fragment: str | None
) -> None:
    obj = kustomization()
    obj["metadata"] = metadata
    violations = validator.validate(obj)
    if path is None:
        assert violations == []
        return
    assert [v.path for v in violations] == [path]
    assert fragment is not None and fragment in violations[0].message


def test_unserved_version_has_no_schema(validator: SchemaValidator) -> None:
    obj = {
        "apiVersion": "external-secrets.io/v1beta1",
        "kind": "ExternalSecret",
        "metadata": {"name": "db", "namespace": "apps"},
        "spec": {},
    }
    (violation,) = validator.validate(obj)
    assert violation.path == ""
    assert violation.message.startswith("no schema for external-secrets.io/v1beta1 ExternalSecret")
    assert "external-secrets.io/v1" in violation.message
    assert str(violation).startswith("ExternalSecret/apps/db: no schema for")


def test_kyverno_validating_policy_passes(validator: SchemaValidator) -> None:
    policy: Obj = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ValidatingPolicy",
        "metadata": {"name": "require-limits"},
        "spec": {
            "validationActions": ["Deny"],
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["pods"],
                    }
                ]
            },
            "validations": [
                {
                    "expression": "object.spec.containers.all(c, has(c.resources.limits))",
                    "message": "containers must set limits",
                }
            ],
        },
    }
    assert validator.validate(policy) == []
    policy["spec"]["validationActions"] = ["Deny", "Deny"]  # x-kubernetes-list-type: set
    assert messages(validator.validate(policy)) == [
        'spec.validationActions[1]: duplicate value "Deny" (same as [0])'
    ]


def xrd_openapi() -> Obj:
    return {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["region"],
                "properties": {
                    "region": {"type": "string", "enum": ["eu-west-1", "us-east-1"]},
                    "size": {"type": "integer", "minimum": 1},
                    "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            }
        },
    }


def xrd() -> Obj:
    return {
        "apiVersion": "apiextensions.crossplane.io/v2",
        "kind": "CompositeResourceDefinition",
        "metadata": {"name": "xnetworks.platform.example.org"},
        "spec": {
            "group": "platform.example.org",
            "names": {"kind": "XNetwork", "plural": "xnetworks"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "referenceable": True,
                    "schema": {"openAPIV3Schema": xrd_openapi()},
                }
            ],
        },
    }


def test_crossplane_xrd_passes_and_xr_checked_with_extra_schema(catalogue: CrdCatalogue) -> None:
    definition = xrd()
    api_version = f"{definition['spec']['group']}/v1alpha1"
    openapi = definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    extra = {
        (api_version, "XNetwork"): strict_schema_from_openapi(
            openapi, api_version=api_version, kind="XNetwork"
        )
    }
    validator = SchemaValidator(catalogue, extra_schemas=extra)
    assert validator.validate(definition) == []
    xr: Obj = {
        "apiVersion": api_version,
        "kind": "XNetwork",
        "metadata": {"name": "net", "namespace": "team-a"},
        "spec": {"region": "eu-west-1", "size": 3, "tags": {"team": "a"}},
    }
    assert validator.validate(xr) == []
    xr["spec"]["subnet"] = "10.0.0.0/16"
    xr["spec"]["size"] = 0
    assert messages(validator.validate(xr)) == [
        "spec.size: 0 is less than the minimum of 1",
        "spec.subnet: unknown field",
    ]
    broken = xrd()
    broken["spec"]["scope"] = "Global"
    broken["spec"]["versions"][0]["servd"] = True
    assert [v.path for v in validator.validate(broken)] == ["spec.scope", "spec.versions[0].servd"]


@needs_shared_crds
def test_int_or_string_in_crd(shared_catalogue: CrdCatalogue) -> None:
    validator = SchemaValidator(shared_catalogue, kubernetes_version="1.33")
    canary: Obj = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "service": {"port": 80, "targetPort": "http"},
            "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10},
        },
    }
    assert validator.validate(canary) == []
    canary["spec"]["service"]["targetPort"] = 8080
    assert validator.validate(canary) == []
    canary["spec"]["service"]["targetPort"] = True
    assert [v.path for v in validator.validate(canary)] == ["spec.service.targetPort"]


def test_catalogue_crds_are_valid_core_objects(core: SchemaValidator) -> None:
    for path in sorted(BUILTIN_CRDS.rglob("*.gz")):  # the reduced CRDs are still valid CRD objects
        for crd in read_crd_documents(path):
            assert core.validate(crd) == [], path
    (crd,) = read_crd_documents(BUILTIN_CRDS / "flux" / "kustomize.toolkit.fluxcd.io_kustomizations.yaml.gz")
    version = crd["spec"]["versions"][0]
    version["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-unknown"] = 1
    found = core.validate(crd)
    assert [v.path for v in found] == [
        "spec.versions[0].schema.openAPIV3Schema.properties.spec.x-unknown",
    ]


def test_validate_all_and_crd_load_errors(validator: SchemaValidator, tmp_path: Path) -> None:
    bad = kustomization()
    bad["spec"]["nope"] = 1
    found = validator.validate_all([ocirepository(), bad, deployment()])
    assert [str(v) for v in found] == ["Kustomization/flux-system/apps: spec.nope: unknown field"]
    (tmp_path / "broken.yaml").write_text("kind: [\n")
    with pytest.raises(FleetgenError, match=r"broken\.yaml: cannot read CRDs"):
        CrdCatalogue.load(tmp_path)


# --- catalogue loading without the shared catalogue ---

SMALL_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                op:
                  type: string
                  enum:
                    - =
                    - "!="
    - name: v1beta1
      served: false
      storage: false
      schema:
        openAPIV3Schema: {type: object}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
"""


def test_load_small_catalogue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "widgets.yaml").write_text(SMALL_CRD)
    catalogue = CrdCatalogue.load(tmp_path)
    assert catalogue.kinds() == {("example.com/v1", "Widget")}
    assert catalogue.api_versions() == ["example.com/v1"]
    validator = SchemaValidator(catalogue)
    widget: Obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    widget["spec"] = {"op": "="}
    assert validator.validate(widget) == []
    widget["spec"] = {"op": "=="}
    assert [v.path for v in validator.validate(widget)] == ["spec.op"]
    widget["apiVersion"] = "example.com/v1beta1"
    assert [v.message for v in validator.validate(widget)] == [
        "no schema for example.com/v1beta1 Widget (served: example.com/v1)"
    ]
    with pytest.raises(FleetgenError, match="does not exist"):
        CrdCatalogue.load(tmp_path / "missing")


def test_extra_crd_dirs_flag_over_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEETGEN_CRDS", raising=False)
    (tmp_path / "shared" / "crds").mkdir(parents=True)
    start = tmp_path / "main"
    start.mkdir()
    monkeypatch.chdir(start)
    assert extra_crd_dirs() == []  # nothing is looked up next to the checkout
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    monkeypatch.setenv("FLEETGEN_CRDS", f"{one}{os.pathsep}{two}")
    assert extra_crd_dirs() == [one.resolve(), two.resolve()]
    assert extra_crd_dirs([two]) == [two.resolve()]  # --crds replaces $FLEETGEN_CRDS
    monkeypatch.setenv("FLEETGEN_CRDS", str(tmp_path / "elsewhere"))
    with pytest.raises(FleetgenError, match="elsewhere: CRD directory does not exist"):
        extra_crd_dirs()


def test_extra_crds_add_to_and_override_the_builtin_catalogue(tmp_path: Path) -> None:
    (tmp_path / "widgets.yaml").write_text(SMALL_CRD)
    override = SMALL_CRD.replace("group: example.com", "group: helm.toolkit.fluxcd.io").replace(
        "kind: Widget, plural: widgets", "kind: HelmRelease, plural: helmreleases").replace("name: v1\n", "name: v2\n")
    (tmp_path / "override.yaml").write_text(override)
    builtin = CrdCatalogue.builtin()
    catalogue = load_catalogue([tmp_path])
    assert ("example.com/v1", "Widget") in catalogue.kinds()
    assert catalogue.kinds() == builtin.kinds() | {("example.com/v1", "Widget")}
    assert catalogue.source_of("helm.toolkit.fluxcd.io/v2", "HelmRelease") == tmp_path / "override.yaml"
    assert builtin.source_of("helm.toolkit.fluxcd.io/v2", "HelmRelease") == (
        BUILTIN_CRDS / "flux" / "helm.toolkit.fluxcd.io_helmreleases.yaml.gz")
    only_flux = load_catalogue([tmp_path], groups={"helm.toolkit.fluxcd.io"})  # other groups' files unread
    assert ("example.com/v1", "Widget") not in only_flux.kinds()


# --- strict conversion ---


def test_strict_conversion_rules() -> None:
    schema = strict_schema_from_openapi(
        {
            "type": "object",
            "properties": {
                "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}},
                "spec": {
                    "type": "object",
                    "properties": {
                        "port": {
                            "x-kubernetes-int-or-string": True,
                            "anyOf": [{"type": "integer"}, {"type": "string"}],
                        },
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        "marker": {"type": "object"},
                        "maybe": {"type": "string", "nullable": True, "enum": ["a"]},
                        "either": {
                            "type": "object",
                            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                            "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
                        },
                        "template": {
                            "type": "object",
                            "x-kubernetes-embedded-resource": True,
                            "x-kubernetes-preserve-unknown-fields": True,
                        },
                    },
                },
            },
        },
        api_version="example.com/v1",
        kind="Thing",
    )
    spec = schema["properties"]["spec"]["properties"]
    assert spec["port"]["type"] == ["integer", "string"] and "anyOf" not in spec["port"]
    assert "additionalProperties" not in spec["free"]
    assert spec["marker"]["additionalProperties"] is False
    assert spec["maybe"] == {"type": ["string", "null"], "nullable": True, "enum": ["a", None]}
    assert all("additionalProperties" not in alternative for alternative in spec["either"]["oneOf"])
    assert spec["template"]["required"] == ["apiVersion", "kind"]

    validator = SchemaValidator(None, extra_schemas={("example.com/v1", "Thing"): schema})
    thing: Obj = {
        "apiVersion": "example.com/v1",
        "kind": "Thing",
        "metadata": {"name": "t"},
        "spec": {
            "port": "http",
            "free": {"x": 1},
            "maybe": None,
            "either": {"a": "1"},
            "template": {"apiVersion": "v1", "kind": "ConfigMap", "data": {}},
        },
    }
    assert validator.validate(thing) == []
    thing["metadata"]["name"] = "much-too-long-name"
    thing["spec"]["marker"] = {"x": 1}
    thing["spec"]["either"] = {"a": "1", "b": "2"}
    thing["spec"]["template"] = {"kind": "ConfigMap"}
    assert [v.path for v in validator.validate(thing)] == [
        "metadata.name",
        "spec.either",
        "spec.marker.x",
        "spec.template.apiVersion",
    ]


def test_go_patterns_translated() -> None:
    assert python_pattern("^[a-z]+$") == "^[a-z]+$"
    translated = python_pattern("^(?i)(abort|warn)?$")
    assert translated is not None and re.match(translated, "ABORT")
    months = python_pattern("^((?i)january|february|1[0-2])(?:((:((?i)january|february))$)|$)")
    assert months is not None and re.match(months, "JANUARY:february")
    assert python_pattern("ab(?i)c") is None  # no exact Python equivalent: the rule is dropped


# --- core kinds ---


def test_core_versions() -> None:
    shipped = core_schema_versions()
    assert shipped[0] == "1.25" and "1.33" in shipped
    assert nearest_core_version("1.33") == "1.33"
    assert nearest_core_version("v1.33.4") == "1.33"
    assert nearest_core_version("1.20") == shipped[0]
    assert nearest_core_version("1.99") == shipped[-1]
    assert nearest_core_version("2.0") == shipped[-1]
    with pytest.raises(ValueError, match="not a Kubernetes version"):
        nearest_core_version("latest")
    assert SchemaValidator(None, kubernetes_version="1.9").core_version == "1.25"


def test_core_deployment(core: SchemaValidator) -> None:
    assert core.validate(deployment()) == []
    obj = deployment()
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container["imagePullPolicy"] = "Always"
    container["bogus"] = 1
    obj["spec"]["template"]["spec"]["containers"].append(copy.deepcopy(container))
    assert messages(core.validate(obj)) == [
        "spec.template.spec.containers[0].bogus: unknown field",
        'spec.template.spec.containers[1]: duplicate entry with name="web" (same as [0])',
        "spec.template.spec.containers[1].bogus: unknown field",
    ]
    obj = deployment()
    obj["spec"]["replicas"] = "2"
    assert [v.path for v in core.validate(obj)] == ["spec.replicas"]
    obj["spec"]["replicas"] = 2**31
    assert [v.path for v in core.validate(obj)] == ["spec.replicas"]


@pytest.mark.parametrize("value", ["50%", 1])
def test_core_int_or_string(core: SchemaValidator, value: object) -> None:
    assert core.validate(pdb(value)) == []


def test_core_int_or_string_rejects_bool(core: SchemaValidator) -> None:
    (violation,) = core.validate(pdb(True))
    assert violation.path == "spec.minAvailable"


@pytest.mark.parametrize(
    ("obj", "ok"),
    [
        ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1web"}}, False),
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "1web.x"}}, True),
        ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}}, False),
        (
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "a:b"},
            },
            True,
        ),
        ({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny"}}, True),
        (
            {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"}},
            True,
        ),
    ],
)
def test_core_names(core: SchemaValidator, obj: Obj, ok: bool) -> None:
    found = core.validate(obj)
    assert (found == []) is ok, found
    if not ok:
        assert [v.path for v in found] == ["metadata.name"]


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("example.com/v1", "Widget"),
        ("apps.example.com/v1", "Deployment"),  # a core kind name in a foreign group
        ("apps/v1beta1", "Deployment"),  # removed from Kubernetes
        ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),  # no catalogue given
    ],
)
def test_unknown_kinds_have_no_schema(core: SchemaValidator, api_version: str, kind: str) -> None:
    obj = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}}
    assert messages(core.validate(obj)) == [f": no schema for {api_version} {kind}"]


def test_missing_api_version_and_kind(core: SchemaValidator) -> None:
    found = core.validate({"metadata": {"name": "x"}, "kind": ""})
    assert [str(v) for v in found] == [
        "x: apiVersion: required field is missing",
        "x: kind: must be a non-empty string",
    ]
