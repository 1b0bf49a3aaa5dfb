"""The Crossplane infrastructure repo: strict validation against the Crossplane CRDs, cluster objects against
their own XRDs (schema and CEL rules), patch paths against the XRDs, per-cloud compositions, the legacy switch."""

from __future__ import annotations

import copy
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

from generator.crossplane import build_infrastructure, plan_hub_bootstrap, plan_infrastructure
from generator.crossplane.api import served_kinds, unknown_field_paths, xr_openapi
from generator.crossplane.patches import pt_resources
from generator.crossplane.plan import Infrastructure
from generator.loader import load_inventory
from generator.plan import HEADER
from generator.resolve import ResolvedFleet, resolve
from generator.schema import CrdCatalogue, SchemaValidator, strict_schema_from_openapi
from generator.tools import find_tools
from generator.yamlio import load_documents

Obj = dict[str, Any]
CROSSPLANE_GROUPS = ("apiextensions.crossplane.io", "pkg.crossplane.io")

CROSSPLANE: Obj = {
    "namespace": "fleet-clusters",
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
                                      "storageGb": 100, "highAvailability": True}],
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


def composed(comp: Obj) -> dict[str, Obj]:
    """Resource entries of a composition by name."""
    return {entry["name"]: entry for entry in pt_resources(comp)}


def kinds(comp: Obj) -> Counter[str]:
    """How many composed resources of each kind a composition has."""
    return Counter(entry["base"]["kind"] for entry in pt_resources(comp))


def targets(entry: Obj) -> dict[str, Obj]:
    """Patches of a composed resource by target path."""
    return {p["toFieldPath"]: p for p in entry.get("patches", [])}


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
    root = _without_data_services(copy_reference_fleet(tmp_path))
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
        sorted(f"clusters/{c}.yaml" for c in workloads)
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
    for comp in (d for d in full.documents("compositions/") if d["kind"] == "Composition"):
        for entry in pt_resources(comp):
            group = entry["base"]["apiVersion"].split("/")[0]
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
        assert re.match(r"^xpkg\.crossplane\.io/crossplane-contrib/[a-z0-9-]+:v\d+\.\d+\.\d+$", pkg["spec"]["package"])
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
    by_kind = {(d["kind"], d["apiVersion"].split(".")[0]): d for d in full.documents("provider-configs/")}
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


def test_workload_identity_from_a_gke_hub(tmp_path: Path) -> None:
    root = enable_crossplane(copy_reference_fleet(tmp_path))
    edit_cluster(root, "management", lambda e: e.update(
        cloud="gcp", region="us-central1",
        networking={"vpcCidr": "10.0.0.0/16", "podCidr": "100.90.0.0/16", "serviceCidr": "172.30.0.0/16"},
        nodeGroups=[{"name": "system", "instanceType": "e2-standard-4", "minSize": 3, "maxSize": 6,
                     "desiredSize": 3}]))
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
    assert checked["CompositeResourceDefinition"] == 4 and checked["Composition"] == 12


def test_cluster_objects_validate_against_their_own_xrd(variant: Infrastructure, catalogue: CrdCatalogue) -> None:
    validator = xr_validator(catalogue, variant)
    platform = [d for d in variant.documents("clusters/") if d["apiVersion"].startswith("platform.gitops.io/")]
    workloads = len([p for p in variant.files if p.startswith("clusters/") and "kustomization" not in p])
    assert Counter(d["kind"] for d in platform) == {"KubernetesCluster": workloads, "Database": 3, "Cache": 3}
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


def test_every_patch_path_exists_in_the_xrd(variant: Infrastructure) -> None:
    assert unknown_field_paths(variant.documents()) == []


def test_a_typo_in_a_patch_path_is_caught(full: Infrastructure) -> None:
    docs = copy.deepcopy(full.documents())
    eks = next(d for d in docs if d["kind"] == "Composition" and d["metadata"]["name"] == "aws-eks")
    cluster = composed(eks)["eks-cluster"]
    patch = next(p for p in cluster["patches"] if p.get("fromFieldPath") == "spec.kubernetes.version")
    patch["fromFieldPath"] = "spec.kubernetes.verison"
    network = composed(eks)["network"]
    nested = next(p for p in network["patches"] if p.get("toFieldPath") == "spec.vpcCidr")
    nested["toFieldPath"] = "spec.vpcCIDR"
    gke = next(d for d in docs if d["kind"] == "Composition" and d["metadata"]["name"] == "gcp-gke")
    to_status = next(p for p in composed(gke)["node-service-account"]["patches"]
                     if p["type"] == "ToCompositeFieldPath")
    to_status["toFieldPath"] = "status.nodeServiceAccount"
    assert sorted(unknown_field_paths(docs)) == [
        "aws-eks: resource 'eks-cluster': FromCompositeFieldPath path 'spec.kubernetes.verison' is not a field "
        "of KubernetesCluster",
        "aws-eks: resource 'network': toFieldPath 'spec.vpcCIDR' is not a field of Network",
        "gcp-gke: resource 'node-service-account': ToCompositeFieldPath path 'status.nodeServiceAccount' is not "
        "a field of KubernetesCluster",
    ]


# --- compositions per cloud -----------------------------------------------------------------------------


def _managed_entries(infra: Infrastructure) -> Iterator[tuple[str, Obj]]:
    for comp in (d for d in infra.documents("compositions/") if d["kind"] == "Composition"):
        for entry in pt_resources(comp):
            if entry["base"]["apiVersion"].split("/")[0].endswith(".m.upbound.io"):
                yield comp["metadata"]["name"], entry


def test_every_composition_is_a_pinned_pipeline(full: Infrastructure) -> None:
    for comp in (d for d in full.documents("compositions/") if d["kind"] == "Composition"):
        assert comp["spec"]["mode"] == "Pipeline"
        assert [s["functionRef"]["name"] for s in comp["spec"]["pipeline"]] == \
            ["function-patch-and-transform", "function-auto-ready"]
        assert comp["spec"]["pipeline"][0]["input"]["apiVersion"] == "pt.fn.crossplane.io/v1beta1"
        assert comp["metadata"]["labels"]["platform.gitops.io/provider"] in ("aws", "gcp", "azure")


def test_every_managed_resource_has_an_explicit_provider_config(full: Infrastructure) -> None:
    count = 0
    for name, entry in _managed_entries(full):
        assert entry["base"]["spec"]["providerConfigRef"] == {"kind": "ClusterProviderConfig", "name": "default"}, \
            (name, entry["name"])
        assert targets(entry)["spec.providerConfigRef.name"]["fromFieldPath"] == "spec.providerConfigName"
        count += 1
    assert count > 70


def test_aws_eks_and_network(full: Infrastructure) -> None:
    network = composition(full, "aws-network")
    assert kinds(network) == {"VPC": 1, "InternetGateway": 1, "Subnet": 6, "EIP": 1, "NATGateway": 1,
                              "RouteTable": 2, "Route": 2, "RouteTableAssociation": 6}
    subnets = composed(network)
    assert targets(subnets["subnet-private-2"])["spec.forProvider.availabilityZone"]["fromFieldPath"] == \
        "spec.subnets.private[2].zone"
    assert subnets["subnet-public-0"]["base"]["spec"]["forProvider"]["mapPublicIpOnLaunch"] is True
    nat = composed(network)["nat-gateway"]["base"]["spec"]["forProvider"]
    assert nat["subnetIdSelector"]["matchLabels"] == {"platform.gitops.io/subnet": "public-0"}
    private_route = composed(network)["route-private-default"]["base"]["spec"]["forProvider"]
    assert "natGatewayIdSelector" in private_route

    eks = composition(full, "aws-eks")
    assert kinds(eks) == {"Network": 1, "Role": 2, "RolePolicyAttachment": 6, "SecurityGroup": 1,
                          "SecurityGroupIngressRule": 1, "SecurityGroupEgressRule": 1, "Cluster": 1,
                          "ClusterAuth": 1, "OpenIDConnectProvider": 1, "NodeGroup": 4}
    resources = composed(eks)
    assert {e["base"]["apiVersion"] for e in resources.values()} == {
        "platform.gitops.io/v1alpha1", "ec2.aws.m.upbound.io/v1beta1", "eks.aws.m.upbound.io/v1beta1",
        "iam.aws.m.upbound.io/v1beta1"}
    cluster = targets(resources["eks-cluster"])
    assert cluster["spec.forProvider.version"]["fromFieldPath"] == "spec.kubernetes.version"
    assert cluster["metadata.annotations[crossplane.io/external-name]"]["fromFieldPath"] == "metadata.name"
    assert cluster["status.oidcIssuerUrl"]["fromFieldPath"] == "status.atProvider.identity[0].oidc[0].issuer"
    oidc = targets(resources["oidc-provider"])["spec.forProvider.url"]
    assert oidc == {"type": "FromCompositeFieldPath", "fromFieldPath": "status.oidcIssuerUrl",
                    "toFieldPath": "spec.forProvider.url", "policy": {"fromFieldPath": "Required"}}
    auth = resources["kubeconfig"]
    assert auth["base"]["kind"] == "ClusterAuth"
    assert targets(auth)["spec.writeConnectionSecretToRef.name"]["fromFieldPath"] == "spec.kubeconfigSecretName"
    for i in range(4):
        slot = targets(resources[f"node-group-{i}"])
        assert slot["metadata.annotations[crossplane.io/external-name]"] == {
            "type": "FromCompositeFieldPath", "fromFieldPath": f"spec.nodeGroups[{i}].name",
            "toFieldPath": "metadata.annotations[crossplane.io/external-name]",
            "policy": {"fromFieldPath": "Required"}}
        assert slot["spec.forProvider.taint[2].effect"]["transforms"][0]["map"]["NoSchedule"] == "NO_SCHEDULE"
        desired = slot["spec.initProvider.scalingConfig.desiredSize"]  # the autoscaler owns it after creation
        assert desired["fromFieldPath"] == f"spec.nodeGroups[{i}].desiredSize"
    policies = {e["base"]["spec"]["forProvider"]["policyArn"].rsplit("/", 1)[1] for e in resources.values()
                if e["base"]["kind"] == "RolePolicyAttachment"}
    assert {"AmazonEKSClusterPolicy", "AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy"} <= policies


def test_gcp_gke_and_network(full: Infrastructure) -> None:
    network = composition(full, "gcp-network")
    assert kinds(network) == {"Network": 1, "Subnetwork": 1, "Router": 1, "RouterNAT": 1, "GlobalAddress": 1,
                              "Connection": 1}
    subnetwork = composed(network)["subnetwork"]
    assert [r["rangeName"] for r in subnetwork["base"]["spec"]["forProvider"]["secondaryIpRange"]] == \
        ["pods", "services"]
    assert targets(subnetwork)["spec.forProvider.secondaryIpRange[0].ipCidrRange"]["fromFieldPath"] == "spec.podCidr"
    gke = composition(full, "gcp-gke")
    assert kinds(gke) == {"Network": 1, "ServiceAccount": 1, "ProjectIAMMember": 4, "Cluster": 1, "NodePool": 4}
    resources = composed(gke)
    cluster = resources["gke-cluster"]
    assert cluster["base"]["spec"]["forProvider"]["removeDefaultNodePool"] is True
    assert cluster["base"]["spec"]["forProvider"]["deletionProtection"] is False
    patches = targets(cluster)
    assert patches["spec.forProvider.workloadIdentityConfig.workloadPool"]["combine"]["string"]["fmt"] == \
        "%s.svc.id.goog"
    assert patches["spec.forProvider.privateClusterConfig.masterIpv4CidrBlock"]["fromFieldPath"] == \
        "spec.networking.controlPlaneCidr"
    assert patches["spec.writeConnectionSecretToRef.name"]["fromFieldPath"] == "spec.kubeconfigSecretName"
    pool = resources["node-pool-3"]
    assert pool["base"]["spec"]["forProvider"]["nodeConfig"]["serviceAccountSelector"] == {"matchControllerRef": True}
    machine = targets(pool)["spec.forProvider.nodeConfig.machineType"]
    assert machine["fromFieldPath"] == "spec.nodeGroups[3].instanceType"
    member = targets(resources["node-service-account-logging-logwriter"])["spec.forProvider.member"]
    assert member["combine"]["variables"] == [{"fromFieldPath": "status.nodeServiceAccountEmail"}]


def test_azure_aks_and_network(full: Infrastructure) -> None:
    network = composition(full, "azure-network")
    assert kinds(network) == {"ResourceGroup": 1, "VirtualNetwork": 1, "Subnet": 1}
    aks = composition(full, "azure-aks")
    assert kinds(aks) == {"Network": 1, "UserAssignedIdentity": 1, "RoleAssignment": 1, "KubernetesCluster": 1,
                          "KubernetesClusterNodePool": 3}
    resources = composed(aks)
    cluster = resources["aks-cluster"]["base"]["spec"]["forProvider"]
    assert cluster["workloadIdentityEnabled"] is True and cluster["oidcIssuerEnabled"] is True
    assert cluster["identity"]["type"] == "UserAssigned"
    patches = targets(resources["aks-cluster"])
    assert patches["spec.forProvider.defaultNodePool.name"]["fromFieldPath"] == "spec.nodeGroups[0].name"
    assert patches["spec.forProvider.networkProfile.dnsServiceIp"]["fromFieldPath"] == "spec.networking.dnsServiceIp"
    taint = targets(resources["node-pool-1"])["spec.forProvider.nodeTaints[0]"]
    assert taint["combine"]["string"]["fmt"] == "%s=%s:%s"
    assert "node-pool-0" not in resources  # the first group is AKS's default pool
    role = targets(resources["control-plane-network-contributor"])
    assert role["spec.forProvider.scope"]["fromFieldPath"] == "status.network.resourceGroupId"


def test_databases_and_caches(full: Infrastructure) -> None:
    rds = composed(composition(full, "aws-rds"))
    instance = rds["instance"]["base"]["spec"]["forProvider"]
    assert instance["manageMasterUserPassword"] is True and instance["storageEncrypted"] is True
    instance_class = targets(rds["instance"])["spec.forProvider.instanceClass"]
    assert instance_class["transforms"][0]["map"]["medium"] == "db.m7g.large"
    assert kinds(composition(full, "aws-elasticache")) == {"SubnetGroup": 1, "SecurityGroup": 1,
                                                           "SecurityGroupIngressRule": 1, "ReplicationGroup": 1}
    sql = composed(composition(full, "gcp-cloudsql"))["instance"]
    assert targets(sql)["spec.forProvider.databaseVersion"]["transforms"][0]["map"]["8.0"] == "MYSQL_8_0"
    assert sql["base"]["spec"]["forProvider"]["settings"]["ipConfiguration"]["ipv4Enabled"] is False
    postgres = composed(composition(full, "azure-postgresql"))
    assert postgres["server"]["base"]["spec"]["forProvider"]["authentication"]["passwordAuthEnabled"] is False
    assert postgres["entra-admin"]["base"]["spec"]["forProvider"]["objectId"] == \
        CROSSPLANE["azure"]["databaseAdmins"]["objectId"]
    assert kinds(composition(full, "gcp-memorystore")) == {"Instance": 1}
    assert kinds(composition(full, "azure-redis")) == {"RedisCache": 1}


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
    resources = composed(eks)
    assert resources["network"]["base"]["kind"] == "XNetwork"
    assert "namespace" not in resources["network"]["base"].get("metadata", {})
    assert resources["network"]["base"]["spec"]["compositionSelector"]["matchLabels"] == {
        "platform.gitops.io/provider": "aws"}
    assert resources["eks-cluster"]["base"]["metadata"]["namespace"] == "fleet-clusters"
    assert targets(resources["eks-cluster"])["metadata.annotations[crossplane.io/external-name]"]["fromFieldPath"] \
        == "metadata.labels[crossplane.io/claim-name]"
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
    assert counts == {"providers": 26, "provider-configs": 3, "apis": 4, "compositions": 12,
                      "clusters": workloads + 6}
    spokes = load_documents(tools.kustomize_build.run(tmp_path / "fleet/clusters/management/spokes"))
    assert Counter(d["kind"] for d in spokes) == {"HelmRelease": workloads, "Kustomization": workloads}


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
    assert len([c for c in configs if c["kind"] == "ClusterProviderConfig"]) == 3
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
