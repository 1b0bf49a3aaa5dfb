"""The in-repo ``charts/service`` chart, linted and rendered by the real helm, validated strictly.

helm is located with ``generator.tools.find_tools``; where that is missing or finds no usable helm,
every test that needs helm is skipped with the reason.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from generator.command import Command
from generator.errors import ToolError
from generator.verify.schema import CrdCatalogue, SchemaValidator

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "service"
RELEASE = "checkout"
NAMESPACE = "shop"
TARGET_KUBERNETES = (1, 33)

DEFAULT_KINDS = {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "NetworkPolicy"}
ALL_KINDS = DEFAULT_KINDS | {"HorizontalPodAutoscaler", "HTTPRoute", "ServiceMonitor"}
#: Kinds defined by CRDs (Gateway API v1.6.1): validated against the CRD catalogue, not kubernetes-validate.
CRD_KINDS = {"HTTPRoute", "ServiceMonitor"}
GATEWAY_PROXY = {"app.kubernetes.io/component": "proxy", "app.kubernetes.io/managed-by": "envoy-gateway"}

DIGEST = "sha256:" + "0123456789abcdef" * 4

#: Every key of the generator's values contract, every optional object switched on.
FULL_VALUES: dict[str, Any] = {
    "nameOverride": "checkout-api",
    "image": {
        "repository": "ghcr.io/acme/checkout",
        "tag": "1.4.2",
        "digest": DIGEST,
        "pullPolicy": "Always",
    },
    "replicas": 3,
    "containerPort": 9090,
    "service": {"enabled": True, "type": "ClusterIP", "port": 80},
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": 1, "memory": "256Mi"}},
    "probes": {
        "liveness": {
            "path": "/healthz",
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "readiness": {
            "path": "/ready",
            "initialDelaySeconds": 2,
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
    },
    "autoscaling": {
        "enabled": True,
        "minReplicas": 3,
        "maxReplicas": 10,
        "targetCPUUtilizationPercentage": 75,
    },
    "podDisruptionBudget": {"enabled": True, "minAvailable": "50%"},
    "networkPolicy": {
        "enabled": True,
        "allowFrom": [
            {"namespace": "envoy-gateway-system", "podLabels": GATEWAY_PROXY},
            {"namespace": "shop", "podLabels": {"app.kubernetes.io/name": "frontend"}},
        ],
        "allowTo": [
            {"namespace": "payments", "podLabels": {"app.kubernetes.io/name": "payments"}, "port": 8080}
        ],
        "ambient": False,  # on in tests/test_mesh.py (golden prod NetworkPolicies)
    },
    "env": {"LOG_LEVEL": "info", "A_FIRST": "1", "FEATURE_ON": "true"},
    "envFromSecrets": ["checkout-db", "checkout-api-keys"],
    "serviceAccount": {
        "create": True,
        "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/checkout"},
        "automountToken": True,
    },
    "labels": {"team": "payments", "environment": "prod"},
    "podAnnotations": {"prometheus.io/scrape": "true"},
    "route": {
        "enabled": True,
        "hostnames": ["shop.example.com"],
        "path": "/checkout",
        "gateway": {"name": "fleet", "namespace": "envoy-gateway-system", "sectionName": "https"},
    },
    # off here: with a Canary, Flagger owns the Service and HTTPRoute (tests/test_canary.py renders it on)
    "canary": {
        "enabled": False,
        "provider": "gatewayapi:v1",
        "progressDeadlineSeconds": 600,
        "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10, "stepWeights": [],
                     "iterations": 10, "metrics": [], "alerts": []},
    },
    "otlp": {
        "enabled": True,
        "endpoint": "http://alloy.alloy.svc:4318",
        "protocol": "http/protobuf",
        "collector": {"namespace": "alloy", "podLabels": {"app.kubernetes.io/name": "alloy"}, "port": 4318},
    },
    "metrics": {
        "enabled": True,
        "path": "/internal/metrics",
        "interval": "15s",
        "scraper": {"namespace": "monitoring", "podLabels": {"app.kubernetes.io/name": "prometheus"}},
    },
}

Render = Callable[..., str]


# --- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm() -> Command:
    """The helm fleetgen itself would run, or a skip saying why there is none."""
    try:
        from generator.tools import find_tools
    except ImportError as exc:
        pytest.skip(f"generator.tools is not importable: {exc}")
    try:
        return find_tools(ROOT).helm
    except Exception as exc:  # find_tools raises ToolError with the places it tried
        pytest.skip(f"generator.tools.find_tools found no usable helm: {exc}")


@pytest.fixture
def render(helm: Command, tmp_path: Path) -> Render:
    """``render(values=None, *extra_args)``: ``helm template`` of the chart, stdout as text."""
    counter = itertools.count()

    def _render(values: dict[str, Any] | None = None, *extra: str) -> str:
        args: list[str] = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
        if values is not None:
            values_file = tmp_path / f"values-{next(counter)}.yaml"
            values_file.write_text(json.dumps(values, indent=2), encoding="utf-8")  # JSON is YAML
            args += ["--values", str(values_file)]
        return helm.run(*args, *extra, cwd=ROOT)

    return _render


def parse(text: str) -> list[dict[str, Any]]:
    """The non-empty documents of a multi-document YAML stream."""
    return [doc for doc in YAML(typ="safe", pure=True).load_all(io.StringIO(text)) if doc]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Documents keyed by kind; the chart renders at most one object of each kind."""
    kinds = [doc["kind"] for doc in docs]
    assert len(kinds) == len(set(kinds)), f"duplicate kinds rendered: {sorted(kinds)}"
    return {doc["kind"]: doc for doc in docs}


def merged(**overrides: Any) -> dict[str, Any]:
    """FULL_VALUES with top-level keys replaced."""
    values = copy.deepcopy(FULL_VALUES)
    values.update(overrides)
    return values


def pod_spec(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = objects["Deployment"]["spec"]["template"]["spec"]
    return spec


def container(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = pod_spec(objects)["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def kubernetes_version() -> str:
    """The Kubernetes version kubernetes-validate supports that is closest to TARGET_KUBERNETES."""

    def distance(version: str) -> tuple[int, int]:
        major, minor = (int(part) for part in version.split(".")[:2])
        return (abs(major - TARGET_KUBERNETES[0]) * 1000 + abs(minor - TARGET_KUBERNETES[1]), -minor)

    versions: list[str] = kubernetes_validate.utils.all_versions()
    return min(versions, key=distance)


def leaf_paths(node: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths of values.yaml: every key of a nested object; maps and lists that are data stop there."""
    data_maps = {"env", "labels", "podAnnotations", "metrics.scraper.podLabels", "otlp.collector.podLabels"}
    if isinstance(node, dict) and node and prefix not in data_maps:
        for key, value in node.items():
            yield from leaf_paths(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


# --- lint ------------------------------------------------------------------------------------------


def test_lint_strict_is_clean(helm: Command) -> None:
    out = helm.run("lint", "--strict", "charts/service", cwd=ROOT)
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    assert "[WARNING]" not in out
    assert "[ERROR]" not in out


def test_lint_strict_is_clean_with_full_values(helm: Command, tmp_path: Path) -> None:
    values_file = tmp_path / "full.yaml"
    values_file.write_text(json.dumps(FULL_VALUES), encoding="utf-8")
    out = helm.run("lint", "--strict", "charts/service", "--values", str(values_file), cwd=ROOT)
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out
    assert "[ERROR]" not in out


# --- what renders ----------------------------------------------------------------------------------


def test_default_values_render_the_default_kinds(render: Render) -> None:
    objects = by_kind(parse(render()))
    assert set(objects) == DEFAULT_KINDS
    for obj in objects.values():
        assert obj["metadata"]["name"] == RELEASE
        assert obj["metadata"]["namespace"] == NAMESPACE


def test_full_values_render_every_kind(render: Render) -> None:
    objects = by_kind(parse(render(FULL_VALUES)))
    assert set(objects) == ALL_KINDS
    assert {obj["metadata"]["name"] for obj in objects.values()} == {"checkout-api"}


@pytest.mark.parametrize(
    ("overrides", "absent"),
    [
        (
            {"service": {"enabled": False, "type": "ClusterIP", "port": 80}, "route": {"enabled": False}},
            "Service",
        ),
        ({"serviceAccount": {"create": False, "annotations": {}, "automountToken": False}}, "ServiceAccount"),
        ({"autoscaling": {"enabled": False}}, "HorizontalPodAutoscaler"),
        ({"podDisruptionBudget": {"enabled": False}}, "PodDisruptionBudget"),
        ({"networkPolicy": {"enabled": False}}, "NetworkPolicy"),
        ({"route": {"enabled": False}}, "HTTPRoute"),
        ({"metrics": {"enabled": False}}, "ServiceMonitor"),
    ],
    ids=[
        "Service",
        "ServiceAccount",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "HTTPRoute",
        "ServiceMonitor",
    ],
)
def test_each_optional_object_can_be_switched_off(
    render: Render, overrides: dict[str, Any], absent: str
) -> None:
    kinds = set(by_kind(parse(render(FULL_VALUES, *_set_args(overrides)))))
    assert absent not in kinds
    if absent == "Service":
        assert kinds == ALL_KINDS - {"Service", "HTTPRoute", "ServiceMonitor"}
    else:
        assert kinds == ALL_KINDS - {absent}


def _set_args(overrides: dict[str, Any]) -> list[str]:
    """``--set-json`` arguments applying overrides on top of a values file."""
    return [arg for key, value in overrides.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]


# --- strict Kubernetes schema validation -----------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        None,
        FULL_VALUES,
        merged(
            autoscaling={
                "enabled": False,
                "minReplicas": 2,
                "maxReplicas": 10,
                "targetCPUUtilizationPercentage": 75,
            }
        ),
        merged(
            image={
                "repository": "ghcr.io/acme/checkout",
                "tag": "1.4.2",
                "digest": "",
                "pullPolicy": "IfNotPresent",
            },
            podDisruptionBudget={"enabled": True, "minAvailable": 2},
            networkPolicy={"enabled": True, "allowFrom": [], "allowTo": []},
            env={},
            envFromSecrets=[],
            serviceAccount={"create": False, "annotations": {}, "automountToken": False},
            route={
                "enabled": True,
                "hostnames": ["*.example.com", "shop.example.com"],
                "path": "/",
                "gateway": {"name": "edge", "namespace": "", "sectionName": ""},
            },
            service={"enabled": True, "type": "LoadBalancer", "port": 443},
        ),
    ],
    ids=["defaults", "full", "fixed-replicas", "minimal-lists"],
)
def test_rendered_objects_validate_strictly(render: Render, values: dict[str, Any] | None) -> None:
    """Core kinds against kubernetes-validate; the HTTPRoute against the Gateway API CRD (v1.6.1)."""
    version = kubernetes_version()
    docs = parse(render(values))
    assert docs
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            violations = crd_validator().validate(doc)
            assert violations == [], [str(v) for v in violations]
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            pytest.fail(
                f"{doc['kind']}/{doc['metadata']['name']} invalid for {version}: {where}: {exc.message}"
            )


def crd_validator() -> SchemaValidator:
    """A strict validator over the built-in CRD catalogue (Gateway API HTTPRoute included)."""
    catalogue = CrdCatalogue.builtin()
    assert catalogue.schema_for("gateway.networking.k8s.io/v1", "HTTPRoute") is not None
    return SchemaValidator(catalogue)


def test_route_validation_is_really_strict(render: Render) -> None:
    """Guards the test above: a misspelt HTTPRoute field and a bad path type fail the CRD schema."""
    route = by_kind(parse(render(FULL_VALUES)))["HTTPRoute"]
    route["spec"]["hostname"] = ["shop.example.com"]
    route["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Prefix"
    paths = {v.path for v in crd_validator().validate(route)}
    assert any("hostname" in p for p in paths), paths
    assert any("matches" in p for p in paths), paths


def test_strict_validation_is_really_strict(render: Render) -> None:
    """Guards the test above: an unknown field must fail kubernetes-validate in strict mode."""
    deployment = by_kind(parse(render()))["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_version(), strict=True)


def test_kubernetes_version_is_the_closest_supported_to_target() -> None:
    version = kubernetes_version()
    assert version in kubernetes_validate.utils.all_versions()
    if "1.33.0" in kubernetes_validate.utils.all_versions():
        assert version == "1.33.0"


# --- security and HA defaults ----------------------------------------------------------------------


def test_secure_defaults(render: Render) -> None:
    objects = by_kind(parse(render()))
    pod = pod_spec(objects)
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    assert objects["ServiceAccount"]["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == RELEASE
    assert pod["enableServiceLinks"] is False
    assert "hostNetwork" not in pod
    main = container(objects)
    assert main["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert main["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert main["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert main["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_token_is_mounted_only_when_enabled(render: Render) -> None:
    objects = by_kind(parse(render(FULL_VALUES)))
    assert pod_spec(objects)["automountServiceAccountToken"] is True
    assert objects["ServiceAccount"]["automountServiceAccountToken"] is True
    assert objects["ServiceAccount"]["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/checkout"
    }
    no_sa = by_kind(
        parse(render(merged(serviceAccount={"create": False, "annotations": {}, "automountToken": False})))
    )
    assert pod_spec(no_sa)["serviceAccountName"] == "default"
    assert pod_spec(no_sa)["automountServiceAccountToken"] is False


def test_spread_across_zones_and_soft_anti_affinity_by_host(render: Render) -> None:
    pod = pod_spec(by_kind(parse(render())))
    selector = {"app.kubernetes.io/name": RELEASE, "app.kubernetes.io/instance": RELEASE}
    assert pod["topologySpreadConstraints"] == [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector},
            "matchLabelKeys": ["pod-template-hash"],
        }
    ]
    anti = pod["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in anti
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"] == [
        {
            "weight": 100,
            "podAffinityTerm": {
                "topologyKey": "kubernetes.io/hostname",
                "labelSelector": {"matchLabels": selector},
            },
        }
    ]


def test_hpa_enabled_leaves_replicas_to_the_hpa(render: Render) -> None:
    objects = by_kind(parse(render(FULL_VALUES)))
    assert "replicas" not in objects["Deployment"]["spec"]
    hpa = objects["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "checkout-api",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 75}},
        }
    ]


def test_hpa_disabled_sets_replicas(render: Render) -> None:
    objects = by_kind(parse(render()))
    assert objects["Deployment"]["spec"]["replicas"] == 2
    assert "HorizontalPodAutoscaler" not in objects


def test_pdb(render: Render) -> None:
    pdb = by_kind(parse(render()))["PodDisruptionBudget"]
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/name": RELEASE, "app.kubernetes.io/instance": RELEASE}
    }
    assert by_kind(parse(render(FULL_VALUES)))["PodDisruptionBudget"]["spec"]["minAvailable"] == "50%"


def test_pdb_is_not_rendered_for_a_single_replica(render: Render) -> None:
    """A PDB with minAvailable >= 1 over one replica would block every node drain."""
    assert "PodDisruptionBudget" not in by_kind(parse(render({"replicas": 1})))


# --- contents --------------------------------------------------------------------------------------


def test_image_uses_digest_when_set_else_tag(render: Render) -> None:
    assert container(by_kind(parse(render(FULL_VALUES))))["image"] == f"ghcr.io/acme/checkout@{DIGEST}"
    assert container(by_kind(parse(render())))["image"] == "ghcr.io/acme/checkout:1.4.2"
    digest_only = {"image": {"tag": "", "digest": DIGEST}}
    objects = by_kind(parse(render(digest_only)))
    assert container(objects)["image"] == f"ghcr.io/acme/checkout@{DIGEST}"
    assert objects["Deployment"]["metadata"]["labels"]["app.kubernetes.io/version"] == "1.0.0"


def test_labels_on_every_object_and_the_pod_template(render: Render) -> None:
    objects = by_kind(parse(render(FULL_VALUES)))
    expected = {
        "app.kubernetes.io/name": "checkout-api",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/version": "1.4.2",
        "app.kubernetes.io/component": "server",
        "app.kubernetes.io/part-of": NAMESPACE,
        "app.kubernetes.io/managed-by": "Helm",
        "team": "payments",
        "environment": "prod",
    }
    for obj in objects.values():
        assert obj["metadata"]["labels"] == expected, obj["kind"]
    template = objects["Deployment"]["spec"]["template"]["metadata"]
    assert template["labels"] == expected
    assert template["annotations"] == {"prometheus.io/scrape": "true"}
    selector = objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "checkout-api", "app.kubernetes.io/instance": RELEASE}
    assert objects["Service"]["spec"]["selector"] == selector


def test_optional_component_and_part_of(render: Render) -> None:
    labels = by_kind(parse(render({"component": "api", "partOf": "shop-platform"})))["Service"]["metadata"][
        "labels"
    ]
    assert labels["app.kubernetes.io/component"] == "api"
    assert labels["app.kubernetes.io/part-of"] == "shop-platform"


def test_env_sorted_by_name_and_env_from_secrets(render: Render) -> None:
    main = container(by_kind(parse(render(FULL_VALUES))))
    assert main["env"] == [
        {"name": "A_FIRST", "value": "1"},
        {"name": "FEATURE_ON", "value": "true"},
        {"name": "LOG_LEVEL", "value": "info"},
        # otlp.enabled: the OpenTelemetry SDK's variables, after the app's own
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://alloy.alloy.svc:4318"},
        {"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "http/protobuf"},
        {"name": "OTEL_SERVICE_NAME", "value": "checkout-api"},
        {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": f"k8s.namespace.name={NAMESPACE}"},
    ]
    assert main["envFrom"] == [
        {"secretRef": {"name": "checkout-db"}},
        {"secretRef": {"name": "checkout-api-keys"}},
    ]
    bare = container(by_kind(parse(render({"env": {"LOG_LEVEL": None}}))))
    assert "env" not in bare
    assert "envFrom" not in bare


def test_service_and_route(render: Render) -> None:
    objects = by_kind(parse(render(FULL_VALUES)))
    assert objects["Service"]["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    route = objects["HTTPRoute"]
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"] == {
        "parentRefs": [
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": "fleet",
                "namespace": "envoy-gateway-system",
                "sectionName": "https",
            }
        ],
        "hostnames": ["shop.example.com"],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/checkout"}}],
                "backendRefs": [{"group": "", "kind": "Service", "name": "checkout-api", "port": 80}],
            }
        ],
    }


def test_route_without_namespace_or_listener_attaches_to_every_listener_of_a_local_gateway(render: Render) -> None:
    route = by_kind(parse(render(merged(route={
        "enabled": True, "hostnames": ["a.example.com"], "path": "/",
        "gateway": {"name": "edge", "namespace": "", "sectionName": ""},
    }))))["HTTPRoute"]
    assert route["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"}]


def test_network_policy(render: Render) -> None:
    policy = by_kind(parse(render(FULL_VALUES)))["NetworkPolicy"]["spec"]

    def namespace(name: str) -> dict[str, Any]:
        return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}

    assert policy["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "checkout-api", "app.kubernetes.io/instance": RELEASE}
    }
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    app_port = [{"port": 9090, "protocol": "TCP"}]
    assert policy["ingress"] == [
        {
            "from": [{**namespace("envoy-gateway-system"), "podSelector": {"matchLabels": GATEWAY_PROXY}}],
            "ports": app_port,
        },
        {
            "from": [
                {**namespace("shop"), "podSelector": {"matchLabels": {"app.kubernetes.io/name": "frontend"}}}
            ],
            "ports": app_port,
        },
        {  # metrics.enabled: the scraper
            "from": [
                {**namespace("monitoring"), "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
            ],
            "ports": app_port,
        },
    ]
    assert policy["egress"] == [
        {
            "to": [namespace("kube-system")],
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        },
        {
            "to": [
                {
                    **namespace("payments"),
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "payments"}},
                }
            ],
            "ports": [{"port": 8080, "protocol": "TCP"}],
        },
        {  # otlp.enabled: the agent's OTLP receiver
            "to": [{**namespace("alloy"), "podSelector": {"matchLabels": {"app.kubernetes.io/name": "alloy"}}}],
            "ports": [{"port": 4318, "protocol": "TCP"}],
        },
    ]


def test_network_policy_with_no_peers_denies_all_but_dns(render: Render) -> None:
    policy = by_kind(parse(render({"networkPolicy": {"allowFrom": [], "allowTo": []}})))["NetworkPolicy"][
        "spec"
    ]
    assert policy["ingress"] == []
    assert len(policy["egress"]) == 1
    assert policy["egress"][0]["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
    ]


# --- bad values fail -------------------------------------------------------------------------------

SCHEMA_ERROR = "values don't meet the specifications of the schema"


#: (values, what helm must say): each breaks the schema somewhere else.
BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"replicas": "two"}, "at '/replicas': got string, want integer"),
    ({"replicaCount": 2}, "additional properties 'replicaCount' not allowed"),
    ({"image": {"registry": "ghcr.io"}}, "at '/image': additional properties 'registry' not allowed"),
    ({"service": {"type": "ExternalName"}}, "at '/service/type'"),
    (
        {"resources": {"requests": {"memory": None}}},
        "at '/resources/requests': missing property 'memory'",
    ),
    ({"resources": {"requests": {"cpu": "lots"}}}, "at '/resources/requests/cpu'"),
    ({"probes": {"liveness": {"path": "healthz"}}}, "at '/probes/liveness/path'"),
    ({"containerPort": 70000}, "at '/containerPort'"),
    ({"env": {"PORT": 8080}}, "at '/env/PORT': got number, want string"),
    ({"labels": {"team": 12}}, "at '/labels/team': got number, want string"),
    ({"labels": {"app.kubernetes.io/name": "x"}}, "at '/labels/app.kubernetes.io~1name'"),
    ({"podDisruptionBudget": {"minAvailable": "150%"}}, "at '/podDisruptionBudget/minAvailable'"),
    ({"networkPolicy": {"allowTo": [{"namespace": "payments"}]}}, "missing property 'port'"),
    (
        {"networkPolicy": {"allowFrom": [{"namespace": "Shop"}]}},
        "at '/networkPolicy/allowFrom/0/namespace'",
    ),
    ({"route": {"enabled": True}}, "at '/route/hostnames': minItems"),
    (
        {"route": {"enabled": True, "hostnames": ["shop.example.com"]}},
        "at '/route/gateway/name': minLength",
    ),
    ({"route": {"hostnames": ["Shop.example.com"]}}, "at '/route/hostnames/0'"),
    ({"nameOverride": "Checkout"}, "at '/nameOverride'"),
    ({"image": {"digest": "sha256:abc"}}, "at '/image/digest'"),
]


@pytest.mark.parametrize(
    ("values", "message"),
    BAD_VALUES,
    ids=[json.dumps(values, sort_keys=True) for values, _ in BAD_VALUES],
)
def test_bad_values_fail_with_the_schema_error(render: Render, values: dict[str, Any], message: str) -> None:
    with pytest.raises(ToolError) as caught:
        render(values)
    assert SCHEMA_ERROR in str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"podDisruptionBudget": {"minAvailable": 2}},
            "podDisruptionBudget.minAvailable (2) must be less than",
        ),
        (
            {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}},
            "autoscaling.minReplicas (5) must not exceed autoscaling.maxReplicas (3)",
        ),
        ({"image": {"tag": "", "digest": ""}}, "set image.tag or image.digest"),
        (
            {
                "service": {"enabled": False},
                "route": {"enabled": True, "hostnames": ["shop.example.com"], "gateway": {"name": "fleet"}},
            },
            "route.enabled requires service.enabled",
        ),
    ],
    ids=["pdb-blocks-drains", "hpa-min-over-max", "no-image-version", "route-without-service"],
)
def test_inconsistent_values_fail_with_a_clear_message(
    render: Render, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ToolError, match="execution error") as caught:
        render(values)
    assert message in str(caught.value)


def test_invalid_release_name_fails(helm: Command) -> None:
    with pytest.raises(ToolError, match="must be a DNS-1035 label"):
        helm.run("template", "9lives", str(CHART), cwd=ROOT)


# --- determinism -----------------------------------------------------------------------------------


def test_output_is_byte_identical_across_runs(render: Render) -> None:
    first = render(FULL_VALUES)
    assert render(FULL_VALUES) == first
    assert render() == render()


def test_output_does_not_depend_on_key_order(render: Render) -> None:
    def reverse(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: reverse(node[key]) for key in reversed(list(node))}
        return node

    assert render(reverse(FULL_VALUES)) == render(FULL_VALUES)


# --- the chart's own files (no helm needed) --------------------------------------------------------


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    return schema


def _default_values() -> dict[str, Any]:
    values: dict[str, Any] = YAML(typ="safe", pure=True).load(
        (CHART / "values.yaml").read_text(encoding="utf-8")
    )
    return values


def test_schema_is_draft7_and_closed_everywhere() -> None:
    schema = _schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object":
                assert node.get("additionalProperties") is False, f"{where} is open"
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(schema, "#")


def test_default_values_and_contract_match_the_schema() -> None:
    validator = jsonschema.Draft7Validator(_schema())
    assert list(validator.iter_errors(_default_values())) == []
    assert list(validator.iter_errors({**_default_values(), **FULL_VALUES})) == []
    assert set(FULL_VALUES) | {"component", "partOf"} == set(_default_values())


def test_readme_documents_every_value() -> None:
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    missing = [path for path in leaf_paths(_default_values()) if f"`{path}`" not in readme]
    assert missing == []


def test_chart_metadata() -> None:
    chart = YAML(typ="safe", pure=True).load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "service"
    assert chart["type"] == "application"
    assert chart["version"] == "1.0.0"
    assert chart["appVersion"] == "1.0.0"
