"""The Crossplane infrastructure repo: strict validation against the Crossplane CRDs, cluster objects against
their own XRDs (schema and CEL rules), patch paths against the XRDs, per-cloud compositions, the legacy switch."""

from __future__ import annotations

import copy
import importlib.metadata
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cel
import pytest
from conftest import REPO, copy_reference_fleet
from ruamel.yaml import YAML

from generator.inventory.loader import load_inventory
from generator.inventory.resolve import ResolvedFleet, resolve
from generator.openapi import strict_schema_from_openapi
from generator.render.crossplane import build_infrastructure, engine, plan_hub_bootstrap, plan_infrastructure
from generator.render.crossplane.api import served_kinds, xr_openapi
from generator.render.crossplane.engine import ComposedXR, compose_objects
from generator.render.crossplane.plan import Infrastructure
from generator.render.planner import HEADER
from generator.tools import find_tools
from generator.verify.catalogue import load_manifest
from generator.verify.schema import CrdCatalogue, SchemaValidator
from generator.yamlio import load_documents

Obj = dict[str, Any]
CROSSPLANE_GROUPS = ("apiextensions.crossplane.io", "pkg.crossplane.io")

CROSSPLANE: Obj = {
    "namespace": "fleet-clusters",
    "hub": {"egressCidrs": ["203.0.113.10/32"],
            "network": {"vpcId": "vpc-0a1b2c3d4e5f60718", "routeTableIds": ["rtb-0a1b2c3d4e5f60719"]},
            "fluxRoleArn": "arn:aws:iam::123456789012:role/fleet-hub-flux",
            "fluxGcp": {"workloadIdentityProvider":
                        "projects/123456789/locations/global/workloadIdentityPools/hub/providers/eks",
                        "serviceAccount": "fleet-hub-flux@acme-fleet.iam.gserviceaccount.com"},
            "fluxAzure": {"clientId": "7b3e9d21-4c5a-4f8e-a1d6-2e9c0b7f5a43",
                          "principalId": "1f6a8c3d-9b2e-4d7f-8a05-c4e1b3d9f276"}},
    "aws": {"accountId": "123456789012", "roleArn": "arn:aws:iam::123456789012:role/crossplane-providers"},
    "gcp": {"project": "acme-fleet", "serviceAccount": "crossplane@acme-fleet.iam.gserviceaccount.com",
            "workloadIdentityProvider": "projects/123456789/locations/global/workloadIdentityPools/hub/providers/eks"},
    "azure": {"subscriptionId": "11111111-2222-3333-4444-555555555555",
              "tenantId": "66666666-7777-8888-9999-000000000000",
              "clientId": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
              "databaseAdmins": {"objectId": "12345678-1234-1234-1234-123456789abc", "name": "platform-dbas"}},
}
DATA_SERVICES = {
    "prod-us-east-1": {"databases": [{"name": "orders", "engine": "postgres", "version": "16", "size": "medium",
                                      "storageGb": 100, "highAvailability": True},
                                     {"name": "storefront"}],  # replicated: apps.yaml storefront-web failover
                       "caches": [{"name": "sessions", "highAvailability": True}]},
    "prod-europe-west1": {"databases": [{"name": "catalog", "engine": "mysql", "version": "8.0"}],
                          "caches": [{"name": "sessions", "size": "medium"}]},
    "prod-eastus": {"databases": [{"name": "orders", "version": "17", "storageGb": 64}],
                    "caches": [{"name": "sessions", "size": "large"}]},
}


# --- helpers (also used by the other test_crossplane_* modules) -------------------------------------------


def edit_yaml(path: Path, change: Any) -> None:
    """Round-trip edit one inventory file (comments and order kept)."""
    yaml = YAML()
    data = yaml.load(path.read_text())
    change(data)
    with path.open("w") as stream:
        yaml.dump(data, stream)


def edit_cluster(root: Path, name: str, change: Any) -> None:
    """Edit the inventory entry of cluster ``name``, wherever it is written."""
    for path in sorted((root / "inventory").rglob("*.yaml")):
        text = path.read_text()
        if f"name: {name}\n" not in text:
            continue
        found = []

        def apply(data: Any, found: list[bool] = found) -> None:
            for entry in data.get("clusters") or []:
                if entry["name"] == name:
                    change(entry)
                    found.append(True)

        edit_yaml(path, apply)
        if found:
            return
    raise AssertionError(f"no cluster {name}")


def enable_crossplane(root: Path, **overrides: Any) -> Path:
    """Give the fleet at ``root`` a crossplane section (and the sibling layout fleet/ + infrastructure/)."""

    def change(data: Any) -> None:
        data["fleet"]["git"]["path"] = "fleet"
        data["fleet"]["crossplane"] = {**CROSSPLANE, **overrides}

    edit_yaml(root / "inventory" / "fleet.yaml", change)
    return root


def storage_by_reference(root: Path) -> Path:
    """Name the observability buckets by reference (composed stores need crossplane, an AWS hub and workloads)."""
    edit_yaml(root / "inventory" / "fleet.yaml",
              lambda data: data["fleet"].update(observability={"storage": {"mode": "reference"}}))
    return root


def add_data_services(root: Path) -> Path:
    """Databases and caches on one cluster per cloud."""
    for cluster, services in DATA_SERVICES.items():
        edit_cluster(root, cluster, lambda entry, s=services: entry.update(s))
    return root


def resolved(root: Path) -> ResolvedFleet:
    """Load and resolve the fleet at ``root``."""
    return resolve(load_inventory(root))


def objects(infra: Infrastructure) -> list[Obj]:
    """Every object of the infrastructure repo but kustomize's own files."""
    return [d for d in infra.documents() if d.get("apiVersion") != "kustomize.config.k8s.io/v1beta1"]


def composition(infra: Infrastructure, name: str) -> Obj:
    """The Composition called ``name``."""
    docs = infra.files[f"compositions/{name}.yaml"][0]
    assert len(docs) == 1
    return docs[0]


def xr_validator(catalogue: CrdCatalogue | None, infra: Infrastructure) -> SchemaValidator:
    """A strict validator that knows the CRDs Crossplane generates from the rendered XRDs."""
    extra = {}
    for xrd in (d for d in infra.documents() if d["kind"] == "CompositeResourceDefinition"):
        for api_version, kind, claim in served_kinds(xrd):
            extra[(api_version, kind)] = strict_schema_from_openapi(
                xr_openapi(xrd, claim=claim), api_version=api_version, kind=kind)
    return SchemaValidator(catalogue, kubernetes_version="1.33", extra_schemas=extra)


def cel_failures(schema: Obj, value: Any, path: str = "") -> Iterator[str]:
    """Evaluate the ``x-kubernetes-validations`` of a structural schema on a value (transition rules skipped)."""
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"]:
            continue
        result = cel.evaluate(rule["rule"], {"self": value})
        if result is not True:
            yield f"{path or '.'}: {rule['message']} ({rule['rule']} -> {result!r})"
    if isinstance(value, dict):
        for key, child in value.items():
            sub = (schema.get("properties") or {}).get(key)
            if sub is not None:
                yield from cel_failures(sub, child, f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for index, child in enumerate(value):
            yield from cel_failures(schema["items"], child, f"{path}[{index}]")


def xrd_of(infra: Infrastructure, kind: str) -> Obj:
    """The XRD serving ``kind`` (composite or claim)."""
    for xrd in (d for d in infra.documents() if d["kind"] == "CompositeResourceDefinition"):
        if kind in (k for _, k, _ in served_kinds(xrd)):
            return xrd
    raise AssertionError(kind)


# --- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalogue() -> CrdCatalogue:
    return CrdCatalogue.builtin()


@pytest.fixture(scope="module")
def full_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference fleet with Crossplane enabled and a database and a cache on one cluster per cloud."""
    return add_data_services(enable_crossplane(copy_reference_fleet(tmp_path_factory.mktemp("xp"))))


@pytest.fixture(scope="module")
def legacy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same, with the legacy-claims switch on."""
    root = copy_reference_fleet(tmp_path_factory.mktemp("xp-legacy"))
    return add_data_services(enable_crossplane(root, legacyClaims=True))


@pytest.fixture(scope="module")
def full(full_root: Path) -> Infrastructure:
    return build_infrastructure(resolved(full_root))


@pytest.fixture(scope="module")
def legacy(legacy_root: Path) -> Infrastructure:
    return build_infrastructure(resolved(legacy_root))


@pytest.fixture(params=["v2", "legacy"])
def variant(request: pytest.FixtureRequest, full: Infrastructure, legacy: Infrastructure) -> Infrastructure:
    return full if request.param == "v2" else legacy


# --- what is rendered --------------------------------------------------------------------------------


def test_without_a_crossplane_section_nothing_is_rendered(tmp_path: Path) -> None:
    root = storage_by_reference(_without_data_services(copy_reference_fleet(tmp_path)))
    fleet_yaml = root / "inventory" / "fleet.yaml"
    lines = fleet_yaml.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("  crossplane:"))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("    "))
    fleet_yaml.write_text("".join(lines[:start] + lines[end:]))
    fleet = resolve(load_inventory(root))
    assert fleet.fleet.crossplane is None
    assert plan_infrastructure(fleet) == {}
    assert plan_hub_bootstrap(fleet) == {}


def test_layout_and_headers(full_root: Path) -> None:
    files = plan_infrastructure(resolved(full_root))
    assert {p.split("/")[0] for p in files} == {"apis", "compositions", "providers", "provider-configs", "clusters"}
    for name in ("kubernetescluster", "network", "database", "cache"):
        assert f"apis/{name}/definition.yaml" in files
    for name in ("aws-eks", "gcp-gke", "azure-aks", "aws-network", "gcp-network", "azure-network", "aws-rds",
                 "gcp-cloudsql", "azure-postgresql", "aws-elasticache", "gcp-memorystore", "azure-redis"):
        assert f"compositions/{name}.yaml" in files
    workloads = [c.name for c in resolved(full_root).clusters if c.cluster.role == "workload"]
    assert sorted(p for p in files if p.startswith("clusters/") and "kustomization" not in p) == \
        sorted(f"clusters/{c}.yaml" for c in [*workloads, "management"])  # the hub's: its ObjectStores
    header = HEADER.split("{sources}")[0]
    for path, text in files.items():
        assert text.startswith(header), path
        assert "&id" not in text and "*id" not in text, f"{path}: YAML anchors"
    assert "inventory/clusters/prod.yaml" in files["clusters/prod-us-east-1.yaml"].splitlines()[0]


def test_rendering_is_deterministic(full_root: Path) -> None:
    assert plan_infrastructure(resolved(full_root)) == plan_infrastructure(resolved(full_root))
    assert plan_hub_bootstrap(resolved(full_root)) == plan_hub_bootstrap(resolved(full_root))


def _without_data_services(root: Path) -> Path:
    """The reference fleet minus its databases and caches."""
    for path in (root / "inventory").rglob("*.yaml"):
        lines = path.read_text().splitlines(keepends=True)
        kept, skipping = [], False
        for line in lines:
            line = line.replace(", database: storefront}", "}")  # the failover's replicated database
            if line.strip() in ("databases:", "caches:"):
                skipping = True
                continue
            if skipping and line.startswith("      - "):
                continue
            skipping = False
            kept.append(line)
        path.write_text("".join(kept))
    return root


def test_only_apis_and_providers_in_use_are_rendered(tmp_path: Path) -> None:
    infra = build_infrastructure(resolved(enable_crossplane(_without_data_services(copy_reference_fleet(tmp_path)))))
    assert not any(p.startswith(("apis/database", "apis/cache", "compositions/aws-rds")) for p in infra.files)
    providers = {d["metadata"]["name"] for d in infra.documents("providers/") if d["kind"] == "Provider"}
    assert "provider-aws-rds" not in providers and "provider-gcp-sql" not in providers
    assert {"provider-family-aws", "provider-aws-ec2", "provider-aws-eks", "provider-aws-iam"} <= providers


def test_provider_members_are_exactly_the_groups_composed(full: Infrastructure) -> None:
    used: dict[str, set[str]] = {}
    for obj in (o for items in rendered(full).values() for i in items for o in i.resources.values()):
        for group in [obj["apiVersion"].split("/")[0]]:
            if group.endswith(".m.upbound.io"):
                cloud = group.split(".")[-4]
                used.setdefault(cloud, set()).add(group.split(".")[0])
    for cloud, groups in used.items():
        providers = {d["metadata"]["name"] for d in full.files[f"providers/{cloud}.yaml"][0] if d["kind"] == "Provider"}
        expected = {f"provider-{cloud}-{g}" for g in groups if g != cloud} | {f"provider-family-{cloud}"}
        assert providers == expected


def test_packages_are_pinned_and_run_with_the_seed_tuning(full: Infrastructure) -> None:
    packages = [d for d in full.documents("providers/") if d["kind"] in ("Provider", "Function")]
    assert {d["kind"] for d in packages} == {"Provider", "Function"}
    for pkg in packages:
        assert re.match(r"^(xpkg\.crossplane\.io/crossplane-contrib|ghcr\.io/fortra)/[a-z0-9-]+:v\d+\.\d+\.\d+$",
                        pkg["spec"]["package"])
    runtimes = [d for d in full.documents("providers/") if d["kind"] == "DeploymentRuntimeConfig"]
    assert {d["metadata"]["name"] for d in runtimes} == {"aws-providers", "gcp-providers", "azure-providers"}
    for runtime in runtimes:
        container = runtime["spec"]["deploymentTemplate"]["spec"]["template"]["spec"]["containers"][0]
        assert container["name"] == "package-runtime"
        assert container["args"] == ["--max-reconcile-rate=100", "--poll=1m"]
        assert container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    for provider in (d for d in packages if d["kind"] == "Provider"):
        name = provider["metadata"]["name"].removeprefix("provider-").removeprefix("family-")
        assert provider["spec"]["runtimeConfigRef"] == {"apiVersion": "pkg.crossplane.io/v1beta1",
                                                        "kind": "DeploymentRuntimeConfig",
                                                        "name": f"{name.split('-')[0]}-providers"}


def test_no_static_credentials_anywhere(full_root: Path) -> None:
    texts = {**plan_infrastructure(resolved(full_root)), **plan_hub_bootstrap(resolved(full_root))}
    for path, text in texts.items():
        for doc in load_documents(text):
            if doc.get("kind") == "ClusterProviderConfig":
                assert doc["spec"]["credentials"]["source"] in ("IRSA", "WebIdentity", "InjectedIdentity",
                                                                "OIDCTokenFile"), path
                assert "secretRef" not in str(doc), path
        assert not re.search(r"(?i)(secretAccessKey|accessKeyId|(?<![a-z])password:|private_key)", text), path
        assert "passwordSecretRef" not in text and "administratorPassword" not in text, path


def test_workload_identity_per_cloud_from_an_eks_hub(full: Infrastructure) -> None:
    by_kind = {(d["kind"], d["apiVersion"].split(".")[0]): d for d in full.documents("provider-configs/")
               if d.get("metadata", {}).get("name") == "default"}
    assert by_kind[("ClusterProviderConfig", "aws")]["spec"] == {"credentials": {"source": "IRSA"}}
    gcp = by_kind[("ClusterProviderConfig", "gcp")]["spec"]
    assert gcp == {"projectID": "acme-fleet", "credentials": {"source": "InjectedIdentity"}}
    azure = by_kind[("ClusterProviderConfig", "azure")]["spec"]
    assert azure["credentials"] == {"source": "OIDCTokenFile"}
    assert azure["clientID"] == CROSSPLANE["azure"]["clientId"]
    runtimes = {d["metadata"]["name"]: d for d in full.documents("providers/")
                if d["kind"] == "DeploymentRuntimeConfig"}
    assert runtimes["aws-providers"]["spec"]["serviceAccountTemplate"]["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": CROSSPLANE["aws"]["roleArn"]}
    gcp_pod = runtimes["gcp-providers"]["spec"]["deploymentTemplate"]["spec"]["template"]["spec"]
    audience = gcp_pod["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"]
    assert audience == "//iam.googleapis.com/" + CROSSPLANE["gcp"]["workloadIdentityProvider"]
    config = next(d for d in full.documents("providers/") if d["kind"] == "ConfigMap")
    assert '"type": "external_account"' in config["data"]["credential-config.json"]
    azure_pod = runtimes["azure-providers"]["spec"]["deploymentTemplate"]["spec"]["template"]["spec"]
    assert azure_pod["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"] == \
        "api://AzureADTokenExchange"
    for cloud in ("aws", "gcp", "azure"):  # pinned names: federation subjects are exact
        assert runtimes[f"{cloud}-providers"]["spec"]["serviceAccountTemplate"]["metadata"]["name"] == \
            f"provider-{cloud}"


def test_workload_identity_from_a_gke_hub(tmp_path: Path) -> None:
    root = storage_by_reference(enable_crossplane(copy_reference_fleet(tmp_path)))
    edit_cluster(root, "management", lambda e: e.update(
        cloud="gcp", region="us-central1",
        networking={"vpcCidr": "10.0.0.0/16", "podCidr": "100.90.0.0/16", "serviceCidr": "172.30.0.0/16"},
        nodeGroups=[{"name": "system", "instanceType": "e2-standard-4", "minSize": 3, "maxSize": 6,
                     "desiredSize": 3}]))
    for spoke in ("dev-us-east-1", "prod-us-east-1", "prod-eu-west-1", "staging-us-east-1"):  # no path from GCP
        edit_cluster(root, spoke, lambda e: e["networking"].update(privateEndpoint=False))
    infra = build_infrastructure(resolved(root))
    configs = {d["apiVersion"].split(".")[0]: d for d in infra.documents("provider-configs/")}
    assert configs["aws"]["spec"]["credentials"]["source"] == "WebIdentity"
    assert configs["aws"]["spec"]["credentials"]["webIdentity"]["roleARN"] == CROSSPLANE["aws"]["roleArn"]
    runtimes = {d["metadata"]["name"]: d for d in infra.documents("providers/")
                if d["kind"] == "DeploymentRuntimeConfig"}
    assert runtimes["gcp-providers"]["spec"]["serviceAccountTemplate"]["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": CROSSPLANE["gcp"]["serviceAccount"]}
    assert not any(d["kind"] == "ConfigMap" for d in infra.documents("providers/"))


# --- strict validation ------------------------------------------------------------------------------------


def test_every_crossplane_object_validates_strictly(variant: Infrastructure, catalogue: CrdCatalogue) -> None:
    checked: Counter[str] = Counter()
    validator = SchemaValidator(catalogue, kubernetes_version="1.33")
    for doc in objects(variant):
        if doc["apiVersion"].split("/")[0] in CROSSPLANE_GROUPS:
            assert validator.validate(doc) == [], doc["metadata"]["name"]
            checked[doc["kind"]] += 1
    assert set(checked) == {"CompositeResourceDefinition", "Composition", "Provider", "Function",
                            "DeploymentRuntimeConfig"}
    # + DnsFailover (aws) and ObjectStore (aws: the hub's observability stores)
    assert checked["CompositeResourceDefinition"] == 6 and checked["Composition"] == 14


def test_cluster_objects_validate_against_their_own_xrd(variant: Infrastructure, catalogue: CrdCatalogue) -> None:
    validator = xr_validator(catalogue, variant)
    platform = [d for d in variant.documents("clusters/") if d["apiVersion"].startswith("platform.gitops.io/")]
    workloads = len([p for p in variant.files if p.startswith("clusters/") and "kustomization" not in p
                     and p != "clusters/management.yaml"])  # the hub's own objects: its ObjectStores
    assert Counter(d["kind"] for d in platform) == {"KubernetesCluster": workloads, "Database": 4, "Cache": 3,
                                                    "DnsFailover": 1,  # storefront-web failover
                                                    "ObjectStore": 3}  # metrics, logs, traces
    for doc in platform:
        assert validator.validate(doc) == [], doc["metadata"]["name"]
        schema = xrd_of(variant, doc["kind"])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert list(cel_failures(schema, doc)) == [], doc["metadata"]["name"]


def test_the_xrd_rules_reject_what_the_inventory_checks_reject(full: Infrastructure) -> None:
    doc = next(d for d in full.documents("clusters/prod-eastus.yaml") if d["kind"] == "KubernetesCluster")
    schema = xrd_of(full, "KubernetesCluster")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert list(cel_failures(schema, doc)) == []
    doc["spec"]["nodeGroups"][1]["name"] = "apps-pool"
    doc["spec"]["nodeGroups"][0]["instanceType"] = "m6i.large"
    doc["spec"]["nodeGroups"][0]["desiredSize"] = 99
    failures = "\n".join(cel_failures(schema, doc))
    assert "AKS pool names" in failures and "instance types on azure" in failures
    assert "minSize <= desiredSize <= maxSize" in failures


# --- compositions per cloud, composed offline by the function's own code ------------------------------------


def rendered(infra: Infrastructure) -> dict[str, list[ComposedXR]]:
    """Every XR of the infrastructure repo (nested Networks too) composed by function-pythonic, by Composition."""
    out: dict[str, list[ComposedXR]] = {}
    for item in compose_objects(infra.documents()):
        out.setdefault(item.composition, []).append(item)
    return out


def composed(infra: Infrastructure, name: str, xr: str | None = None) -> dict[str, Obj]:
    """What Composition ``name`` composes for its first XR (or the XR called ``xr``)."""
    items = rendered(infra)[name]
    return next(i for i in items if xr is None or i.xr["metadata"]["name"] == xr).resources


def kinds(resources: dict[str, Obj]) -> Counter[str]:
    """How many composed resources of each kind."""
    return Counter(obj["kind"] for obj in resources.values())


def for_provider(resources: dict[str, Obj], name: str) -> Obj:
    """spec.forProvider of one composed resource."""
    found: Obj = resources[name]["spec"]["forProvider"]
    return found


def test_every_composition_is_one_pinned_pythonic_step(full: Infrastructure) -> None:
    function = next(d for d in full.documents("providers/") if d["kind"] == "Function")
    engine_version = importlib.metadata.version("crossplane-function-pythonic")
    assert function["spec"]["package"] == f"ghcr.io/fortra/function-pythonic:v{engine_version}"
    for comp in (d for d in full.documents("compositions/") if d["kind"] == "Composition"):
        assert comp["spec"]["mode"] == "Pipeline"
        [step] = comp["spec"]["pipeline"]
        assert step["functionRef"]["name"] == function["metadata"]["name"] == "function-pythonic"
        assert step["input"]["apiVersion"] == "pythonic.fn.fortra.com/v1alpha1"
        assert "class Composite(BaseComposite):" in step["input"]["composite"]
        assert comp["metadata"]["labels"]["platform.gitops.io/provider"] in ("aws", "gcp", "azure")


def test_every_xr_is_composed_and_every_managed_resource_has_a_provider_config(variant: Infrastructure) -> None:
    compositions = rendered(variant)
    assert set(compositions) == {d["metadata"]["name"] for d in variant.documents("compositions/")
                                 if d["kind"] == "Composition"}
    count = 0
    for items in compositions.values():
        for item in items:
            for obj in item.resources.values():
                if obj["apiVersion"].split("/")[0].endswith(".m.upbound.io") and \
                        f"{obj['apiVersion']} {obj['kind']}" not in CATALOGUE_GAPS:
                    # External Secrets' target role lives in the secrets account: created through its config
                    target = obj["metadata"]["annotations"]["crossplane.io/composition-resource-name"] \
                        .startswith("external-secrets-target-")
                    assert obj["spec"]["providerConfigRef"] == {"kind": "ClusterProviderConfig",
                                                                "name": "external-secrets" if target else "default"}
                    assert obj["metadata"]["namespace"] == "fleet-clusters"
                    count += 1
    assert count > 150


def test_aws_eks_and_network(full: Infrastructure) -> None:
    network = composed(full, "aws-network")
    assert kinds(network) == {"VPC": 1, "InternetGateway": 1, "Subnet": 6, "EIP": 1, "NATGateway": 1,
                              "RouteTable": 2, "Route": 2, "RouteTableAssociation": 6}
    private = for_provider(network, "subnet-private-us-east-1c")
    assert private["availabilityZone"] == "us-east-1c" and private["mapPublicIpOnLaunch"] is False
    assert for_provider(network, "subnet-public-us-east-1a")["mapPublicIpOnLaunch"] is True
    assert for_provider(network, "nat-gateway")["subnetIdSelector"]["matchLabels"] == {
        "platform.gitops.io/subnet": "public-us-east-1a"}
    assert "natGatewayIdSelector" in for_provider(network, "route-private-default")

    eks = composed(full, "aws-eks", "prod-us-east-1")
    # Roles: cluster, nodes, Cluster Autoscaler's and External Secrets' Pod Identity roles, ESO's target role in
    # the secrets account; RolePolicies: the autoscaler's, ESO's role chain, the target role's read policy
    assert kinds(eks) == {"Network": 1, "Role": 5, "RolePolicyAttachment": 6, "SecurityGroup": 1,
                          "SecurityGroupIngressRule": 2, "SecurityGroupEgressRule": 1, "Cluster": 1,
                          "ClusterAuth": 1, "OpenIDConnectProvider": 1, "NodeGroup": 2,
                          "VPCPeeringConnection": 1, "VPCPeeringConnectionAccepter": 1, "Route": 2,
                          "AccessEntry": 1, "AccessPolicyAssociation": 1,
                          # Cluster Autoscaler's and External Secrets' identities (EKS Pod Identity)
                          "Addon": 1, "RolePolicy": 3, "PodIdentityAssociation": 2}
    # the hub's Flux role is cluster admin through an access entry (no kubeconfig Secret for EKS spokes)
    assert for_provider(eks, "hub-flux-access-entry")["principalArn"] == CROSSPLANE["hub"]["fluxRoleArn"]
    # private endpoint, reached through VPC peering with the hub: routes both ways, 443 from the hub's VPC
    assert for_provider(eks, "hub-peering")["peerVpcId"] == CROSSPLANE["hub"]["network"]["vpcId"]
    assert for_provider(eks, "hub-route-rtb-0a1b2c3d4e5f60719")["destinationCidrBlock"] == "10.30.0.0/16"
    assert for_provider(eks, "control-plane-ingress-hub")["cidrIpv4"] == "10.0.0.0/16"
    gke = for_provider(composed(full, "gcp-gke", "prod-europe-west1"), "gke-cluster")
    assert gke["privateClusterConfig"]["enablePrivateEndpoint"] is False
    assert gke["masterAuthorizedNetworksConfig"]["cidrBlocks"] == [
        {"cidrBlock": "203.0.113.10/32", "displayName": "fleet hub"}]
    aks = for_provider(composed(full, "azure-aks", "prod-eastus"), "aks-cluster")
    assert aks["privateClusterEnabled"] is False
    assert aks["apiServerAccessProfile"]["authorizedIpRanges"] == ["203.0.113.10/32"]
    cluster = eks["eks-cluster"]
    assert cluster["metadata"]["annotations"]["crossplane.io/external-name"] == "prod-us-east-1"
    assert cluster["spec"]["forProvider"]["vpcConfig"]["endpointPublicAccess"] is False
    # the issuer is known only once EKS reports it: rendered as function-pythonic's UNKNOWN marker
    issuer = "UNKNOWN:eks-cluster.status.atProvider.identity[0].oidc[0].issuer"
    assert for_provider(eks, "oidc-provider")["url"] == issuer
    assert eks["kubeconfig"]["spec"]["writeConnectionSecretToRef"] == {"name": "prod-us-east-1-kubeconfig"}
    group = eks["node-group-system"]
    assert group["spec"]["initProvider"] == {"scalingConfig": {"desiredSize": 3}}  # the autoscaler owns it later
    assert group["metadata"]["annotations"]["crossplane.io/external-name"] == "system"


def test_gcp_gke_and_network(full: Infrastructure) -> None:
    network = composed(full, "gcp-network")
    assert kinds(network) == {"Network": 1, "Subnetwork": 1, "Router": 1, "RouterNAT": 1, "GlobalAddress": 1,
                              "Connection": 1}
    subnetwork = next(o for o in network.values() if o["kind"] == "Subnetwork")["spec"]["forProvider"]
    assert [r["rangeName"] for r in subnetwork["secondaryIpRange"]] == ["pods", "services"]
    dev = composed(full, "gcp-gke", "dev-us-central1")
    prod = composed(full, "gcp-gke", "prod-europe-west1")
    # the node service account's four roles and the hub's Flux (tests/test_hub_identity.py)
    assert kinds(dev)["NodePool"] >= 1 and kinds(dev)["ProjectIAMMember"] == 5
    assert for_provider(dev, "gke-cluster")["deletionProtection"] is False
    assert for_provider(prod, "gke-cluster")["deletionProtection"] is True  # prod
    cluster = for_provider(prod, "gke-cluster")
    assert cluster["workloadIdentityConfig"]["workloadPool"] == f"{CROSSPLANE['gcp']['project']}.svc.id.goog"
    assert cluster["privateClusterConfig"]["masterIpv4CidrBlock"]
    # External Secrets' KSA may act as the secrets project's GSA (projects differ: acme-prod vs the cluster's)
    eso = for_provider(prod, "external-secrets-workload-identity")
    gsa = "external-secrets@acme-prod.iam.gserviceaccount.com"
    ksa = "external-secrets/external-secrets-store"
    assert eso == {"serviceAccountId": f"projects/acme-prod/serviceAccounts/{gsa}",
                   "role": "roles/iam.workloadIdentityUser",
                   "member": f"serviceAccount:{CROSSPLANE['gcp']['project']}.svc.id.goog[{ksa}]"}
    member = for_provider(prod, "node-service-account-logging-logwriter")["member"]
    assert member == "UNKNOWN:node-service-account.status.atProvider.email"


def test_azure_aks_and_network(full: Infrastructure) -> None:
    network = composed(full, "azure-network")
    assert kinds(network) == {"ResourceGroup": 1, "VirtualNetwork": 1, "Subnet": 1}
    aks = composed(full, "azure-aks", "prod-eastus")
    groups = next(d for d in full.documents("clusters/prod-eastus.yaml")
                  if d["kind"] == "KubernetesCluster")["spec"]["nodeGroups"]
    assert kinds(aks)["KubernetesClusterNodePool"] == len(groups) - 1  # the first group is the default pool
    cluster = for_provider(aks, "aks-cluster")
    assert cluster["workloadIdentityEnabled"] is True and cluster["oidcIssuerEnabled"] is True
    assert cluster["defaultNodePool"]["name"] == groups[0]["name"]
    assert cluster["networkProfile"]["dnsServiceIp"]


def test_databases_and_caches(full: Infrastructure) -> None:
    rds = for_provider(composed(full, "aws-rds"), "instance")
    assert rds["manageMasterUserPassword"] is True and rds["storageEncrypted"] is True
    cache = composed(full, "aws-elasticache")
    assert kinds(cache) == {"SubnetGroup": 1, "SecurityGroup": 1, "SecurityGroupIngressRule": 1,
                            "ReplicationGroup": 1}
    assert for_provider(cache, "replication-group")["atRestEncryptionEnabled"] == "true"  # a string upstream
    sql = for_provider(composed(full, "gcp-cloudsql"), "instance")
    assert sql["settings"]["ipConfiguration"]["ipv4Enabled"] is False
    postgres = composed(full, "azure-postgresql")
    assert for_provider(postgres, "server")["authentication"]["passwordAuthEnabled"] is False
    assert for_provider(postgres, "entra-admin")["objectId"] == CROSSPLANE["azure"]["databaseAdmins"]["objectId"]
    assert kinds(composed(full, "gcp-memorystore")) == {"Instance": 1}
    assert kinds(composed(full, "azure-redis")) == {"RedisCache": 1}


@pytest.mark.parametrize("count", [1, 2, 4])
@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_a_cluster_composes_exactly_its_node_groups(full: Infrastructure, cloud: str, count: int) -> None:
    comp_name = {"aws": "aws-eks", "gcp": "gcp-gke", "azure": "azure-aks"}[cloud]
    comp = composition(full, comp_name)
    xr = copy.deepcopy(rendered(full)[comp_name][0].xr)
    template = xr["spec"]["nodeGroups"][0]
    xr["spec"]["nodeGroups"] = [{**template, "name": f"pool{i}", "taints": [
        {"key": f"k{j}", "value": "v", "effect": "NoSchedule"} for j in range(i)]} for i in range(count)]
    result = engine.run(comp, xr)
    pools = {n: o for n, o in result.resources.items() if o["kind"] in ("NodeGroup", "NodePool",
                                                                         "KubernetesClusterNodePool")}
    expected = count - 1 if cloud == "azure" else count  # AKS: the first group is the cluster's default pool
    assert len(pools) == expected
    assert sorted(pools) == sorted(f"node-{'group' if cloud == 'aws' else 'pool'}-pool{i}"
                                   for i in range(count - expected, count))
    assert not [r for r in result.results if r[0] in ("SEVERITY_FATAL", "SEVERITY_WARNING")]


def _observed(resources: dict[str, Obj], ready: bool) -> Obj:
    return {**resources, "status": {"atProvider": {"id": "x"}, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "reason": "Available" if ready else "Creating"}]}}


def test_the_xr_is_ready_only_when_every_composed_resource_is(full: Infrastructure) -> None:
    comp = composition(full, "aws-rds")
    xr = rendered(full)["aws-rds"][0].xr
    first = engine.run(comp, xr)
    assert set(first.resources) == {"subnet-group", "security-group", "security-group-ingress", "instance"}
    assert not first.xr_ready  # nothing exists yet
    all_ready = engine.run(comp, xr, {n: _observed(o, True) for n, o in first.resources.items()})
    assert all(all_ready.ready.values()) and all_ready.xr_ready
    one_not = {n: _observed(o, n != "instance") for n, o in first.resources.items()}
    waiting = engine.run(comp, xr, one_not)
    assert waiting.ready["instance"] is None and waiting.ready["subnet-group"] is True
    assert not waiting.xr_ready


#: Composed kinds the built-in catalogue knows it lacks (generator/data/crds/catalogue.yaml `gaps:`, each with why).
CATALOGUE_GAPS = {gap.kind for gap in load_manifest().gaps}


def test_every_composed_resource_validates_strictly(variant: Infrastructure, catalogue: CrdCatalogue) -> None:
    validator = SchemaValidator(catalogue, kubernetes_version="1.33")
    checked: Counter[str] = Counter()
    for items in rendered(variant).values():
        for item in items:
            for obj in item.resources.values():
                if obj["apiVersion"].split("/")[0].endswith(".m.upbound.io") and \
                        f"{obj['apiVersion']} {obj['kind']}" not in CATALOGUE_GAPS:
                    assert validator.validate(obj) == [], obj
                    checked[obj["kind"]] += 1
    assert len(checked) >= 30


def test_a_wrong_type_in_a_composed_resource_fails_with_its_path(full: Infrastructure,
                                                                  catalogue: CrdCatalogue) -> None:
    validator = SchemaValidator(catalogue, kubernetes_version="1.33")
    group = copy.deepcopy(composed(full, "aws-elasticache")["replication-group"])
    group["spec"]["forProvider"]["atRestEncryptionEnabled"] = True
    group["spec"]["forProvider"]["unknownField"] = 1
    problems = [str(v) for v in validator.validate(group)]
    xr = group["metadata"]["labels"]["crossplane.io/composite"]
    assert problems == [
        f"ReplicationGroup/fleet-clusters/{xr}/replication-group: spec.forProvider.atRestEncryptionEnabled: "
        "must be of type string, not boolean (true)",
        f"ReplicationGroup/fleet-clusters/{xr}/replication-group: spec.forProvider.unknownField: unknown field"]


def test_composition_selection(full: Infrastructure) -> None:
    compositions = {(d["spec"]["compositeTypeRef"]["kind"], d["metadata"]["labels"]["platform.gitops.io/provider"])
                    for d in full.documents("compositions/") if d["kind"] == "Composition"}
    for doc in (d for d in full.documents("clusters/") if d["apiVersion"].startswith("platform.gitops.io")):
        wanted = doc["spec"]["crossplane"]["compositionSelector"]["matchLabels"]["platform.gitops.io/provider"]
        assert wanted == doc["spec"]["cloudProvider"]
        assert (doc["kind"], wanted) in compositions


# --- cluster objects -------------------------------------------------------------------------------------


def test_cluster_objects_hold_the_resolved_inventory(full: Infrastructure) -> None:
    def cluster(name: str) -> Obj:
        return next(d for d in full.documents(f"clusters/{name}.yaml") if d["kind"] == "KubernetesCluster")

    prod = cluster("prod-us-east-1")["spec"]
    assert prod["kubernetes"]["version"] == "1.35"  # overlays/prod.yaml
    assert [g["name"] for g in prod["nodeGroups"]] == ["system", "applications"]
    assert prod["nodeGroups"][1]["maxSize"] == 30  # the cluster entry
    assert prod["networking"]["subnets"]["private"][0] == {"name": "private-us-east-1a", "cidr": "10.30.0.0/18",
                                                         "zone": "us-east-1a"}
    assert prod["networking"]["subnets"]["public"][2]["cidr"] == "10.30.224.0/20"
    assert prod["kubeconfigSecretName"] == "prod-us-east-1-kubeconfig"
    assert prod["account"] == CROSSPLANE["aws"]["accountId"]
    dev = cluster("dev-us-east-1")["spec"]
    assert dev["nodeGroups"][0]["instanceType"] == "m6i.large" and dev["nodeGroups"][0]["maxSize"] == 3  # overlay
    gke = cluster("dev-us-central1")["spec"]
    assert gke["kubernetes"]["version"] == "1.35"
    assert gke["networking"]["controlPlaneCidr"] == "10.11.255.240/28"
    assert gke["networking"]["zones"] == ["us-central1-a", "us-central1-b", "us-central1-c"]
    aks = cluster("prod-eastus")["spec"]
    assert aks["networking"]["dnsServiceIp"] == "172.21.0.10"
    assert aks["networking"]["subnets"] == {"private": [{"name": "nodes", "cidr": "10.33.0.0/17"}]}
    db = next(d for d in full.documents("clusters/prod-us-east-1.yaml") if d["kind"] == "Database")
    assert db["metadata"]["name"] == "prod-us-east-1-orders"
    assert db["spec"]["network"] == {"name": "prod-us-east-1", "cidr": "10.30.0.0/16"}


def test_legacy_claims_switch(legacy: Infrastructure, full: Infrastructure) -> None:
    xrd = legacy.files["apis/kubernetescluster/definition.yaml"][0][0]
    assert xrd["apiVersion"] == "apiextensions.crossplane.io/v1"
    assert xrd["metadata"]["name"] == "xkubernetesclusters.platform.gitops.io"
    assert xrd["spec"]["scope"] == "LegacyCluster"
    assert xrd["spec"]["names"]["kind"] == "XKubernetesCluster"
    assert xrd["spec"]["claimNames"] == {"kind": "KubernetesCluster", "plural": "kubernetesclusters",
                                         "categories": ["platform"]}
    modern = full.files["apis/kubernetescluster/definition.yaml"][0][0]
    assert modern["apiVersion"] == "apiextensions.crossplane.io/v2" and modern["spec"]["scope"] == "Namespaced"
    assert "claimNames" not in modern["spec"]
    eks = composition(legacy, "aws-eks")
    assert eks["spec"]["compositeTypeRef"]["kind"] == "XKubernetesCluster"
    resources = composed(legacy, "aws-eks", "prod-us-east-1")  # the claim's XR: generated name, claim label
    assert resources["network"]["kind"] == "XNetwork"
    assert "namespace" not in resources["network"]["metadata"]
    assert resources["network"]["spec"]["compositionSelector"]["matchLabels"] == {
        "platform.gitops.io/provider": "aws"}
    assert resources["eks-cluster"]["metadata"]["namespace"] == "fleet-clusters"
    assert resources["eks-cluster"]["metadata"]["annotations"]["crossplane.io/external-name"] == "prod-us-east-1"
    claim = next(d for d in legacy.documents("clusters/prod-us-east-1.yaml") if d["kind"] == "KubernetesCluster")
    assert claim["metadata"]["namespace"] == "fleet-clusters"
    assert claim["spec"]["compositionSelector"]["matchLabels"] == {"platform.gitops.io/provider": "aws"}
    assert "crossplane" not in claim["spec"]
    assert {k: v for k, v in claim["spec"].items() if k != "compositionSelector"} == \
        {k: v for k, v in next(d for d in full.documents("clusters/prod-us-east-1.yaml")
                               if d["kind"] == "KubernetesCluster")["spec"].items() if k != "crossplane"}


# --- real kustomize -----------------------------------------------------------------------------------


def test_every_folder_builds_with_kustomize(full_root: Path, tmp_path: Path) -> None:
    tools = find_tools(REPO)
    fleet = resolved(full_root)
    for sub, files in (("infrastructure", plan_infrastructure(fleet)), ("fleet", plan_hub_bootstrap(fleet))):
        for rel, text in files.items():
            (tmp_path / sub / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / sub / rel).write_text(text)
    counts = {}
    for folder in ("providers", "provider-configs", "apis", "compositions", "clusters"):
        counts[folder] = len(load_documents(tools.kustomize_build.run(tmp_path / "infrastructure" / folder)))
    workloads = len([c for c in fleet.clusters if c.cluster.role == "workload"])
    # the storefront-web failover adds its XRD, Composition, DnsFailover, a Database and the route53/kms providers;
    # insights and operationalinsights come with the AKS audit logs; the hub's ObjectStores add their XRD,
    # Composition, three XRs and the s3 provider
    assert counts == {"providers": 30, "provider-configs": 4, "apis": 6, "compositions": 14,
                      "clusters": workloads + 11}
    spokes = load_documents(tools.kustomize_build.run(tmp_path / "fleet/clusters/management/spokes"))
    # every spoke is signed in to with Flux's workload identity (one kubeConfig ConfigMap each)
    assert Counter(d["kind"] for d in spokes) == {"HelmRelease": workloads, "Kustomization": workloads,
                                                  "ConfigMap": workloads}


def _bundled_provider_config_schemas() -> dict[tuple[str, str], Obj]:
    folder = Path(__file__).resolve().parent.parent / "generator/data/schemas"
    schemas = {}
    for path in sorted(folder.glob("clusterproviderconfig-*.json")):
        schema = json.loads(path.read_text())
        schemas[(schema["properties"]["apiVersion"]["const"], schema["properties"]["kind"]["const"])] = schema
    return schemas


def test_provider_configs_validate_against_fleetgens_schemas(variant: Infrastructure) -> None:
    schemas = _bundled_provider_config_schemas()
    assert len(schemas) == 3
    validator = SchemaValidator(None, kubernetes_version="1.33", extra_schemas=schemas)
    configs = list(variant.documents("provider-configs/"))
    assert len([c for c in configs if c["kind"] == "ClusterProviderConfig"]) == 4  # + the secrets account's
    for config in (c for c in configs if c["kind"] == "ClusterProviderConfig"):
        assert validator.validate(config) == []
        static = copy.deepcopy(config)
        static["spec"]["credentials"] = {"source": "Secret", "secretRef": {"name": "creds", "namespace": "x",
                                                                           "key": "k"}}
        assert validator.validate(static) != []


def test_output_is_yamllint_clean(full_root: Path) -> None:
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    config = YamlLintConfig(file=str(REPO / ".yamllint"))
    fleet = resolved(full_root)
    problems = []
    for path, text in {**plan_infrastructure(fleet), **plan_hub_bootstrap(fleet)}.items():
        problems += [f"{path}:{p.line}: {p.desc}" for p in linter.run(text, config, path)]
    assert not problems, "\n".join(problems)
