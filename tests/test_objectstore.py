"""The hub's observability stores (fleet.observability.storage): composed by Crossplane (ObjectStore XRs, composed
offline by the real function-pythonic code into S3 buckets and an IRSA role) and wired into thanos/loki/tempo, or
named by reference as before; inventories fleetgen cannot compose refused at file:line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from _buildkit import options, reference_build, tools
from conftest import REPO

from generator.build.fleet import build_fleet
from generator.cli import main
from generator.inventory.storage import ROLE_ARN_ANNOTATION, stores
from generator.render.crossplane import engine
from generator.yamlio import load_documents

HUB = REPO / "golden" / "management"
ACCOUNT = "123456789012"
ISSUER = "oidc.eks.us-east-1.amazonaws.com/id/5C4D9A1E7B3F2A6D8E0C1B9F4A7D3E21"
RESOURCE_NAME = "crossplane.io/composition-resource-name"


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = load_documents(path.read_text(encoding="utf-8"))[0]
    return doc


def composed(store: str) -> dict[str, dict[str, Any]]:
    folder = HUB / "crossplane-clusters" / f"objectstore.fleet-clusters.management-{store}"
    return {o["metadata"]["annotations"][RESOURCE_NAME]: o for o in map(load, sorted(folder.glob("*.yaml")))}


def hub_objects(build: Any = None) -> list[dict[str, Any]]:
    cluster = (build or reference_build()).clusters["management"]
    return [load_documents(res.text)[0] for res in cluster.resources.values()]


def release_values(objects: list[dict[str, Any]], component: str) -> dict[str, Any]:
    release = next(o for o in objects if o["kind"] == "HelmRelease" and o["metadata"]["name"] == component
                   and o["metadata"]["namespace"] == component)
    values: dict[str, Any] = release["spec"]["values"]
    return values


def at(values: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        values = values[key]
    return values


@pytest.mark.parametrize("store", [s.name for s in stores()])
def test_each_store_composes_private_encrypted_versioned_buckets_and_one_role(store: str) -> None:
    spec = next(s for s in stores() if s.name == store)
    resources = composed(store)
    names = [f"acme-{b.name}" for b in spec.buckets]
    expected = {"writer-role", "writer-policy"} | {f"{what}-{name}" for name in names for what in (
        "bucket", "ownership", "public-access-block", "encryption", "versioning", "lifecycle", "policy")}
    assert set(resources) == expected
    for bucket in spec.buckets:
        name = f"acme-{bucket.name}"
        created = resources[f"bucket-{name}"]
        assert created["metadata"]["annotations"]["crossplane.io/external-name"] == name
        assert created["spec"]["forProvider"]["region"] == "us-east-1"
        assert created["spec"]["forProvider"]["forceDestroy"] is False
        of_bucket = {"matchControllerRef": True, "matchLabels": {"platform.gitops.io/bucket": name}}
        for what in ("ownership", "public-access-block", "encryption", "versioning", "lifecycle", "policy"):
            assert resources[f"{what}-{name}"]["spec"]["forProvider"]["bucketSelector"] == of_bucket
        ownership = resources[f"ownership-{name}"]["spec"]["forProvider"]["rule"]
        assert ownership == {"objectOwnership": "BucketOwnerEnforced"}
        block = resources[f"public-access-block-{name}"]["spec"]["forProvider"]
        assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                              "restrictPublicBuckets"))
        assert resources[f"encryption-{name}"]["spec"]["forProvider"]["rule"] == [
            {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]
        assert resources[f"versioning-{name}"]["spec"]["forProvider"]["versioningConfiguration"] == {
            "status": "Enabled"}
        rules = {r["id"]: r for r in resources[f"lifecycle-{name}"]["spec"]["forProvider"]["rule"]}
        assert rules["housekeeping"]["noncurrentVersionExpiration"] == [{"noncurrentDays": 7}]
        assert rules["housekeeping"]["abortIncompleteMultipartUpload"] == [{"daysAfterInitiation": 1}]
        if bucket.expiration_days:
            assert rules["retention"]["expiration"] == [{"days": bucket.expiration_days}]
        else:
            assert "retention" not in rules
        policy = json.loads(resources[f"policy-{name}"]["spec"]["forProvider"]["policy"])
        assert policy["Statement"] == [{
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]
    # the role may touch this store's buckets only
    access = json.loads(resources["writer-policy"]["spec"]["forProvider"]["policy"])
    arns = [f"arn:aws:s3:::{n}" for n in names]
    assert [s["Resource"] for s in access["Statement"]] == [arns, [f"{a}/*" for a in arns]]
    assert resources["writer-policy"]["spec"]["forProvider"]["roleSelector"] == {
        "matchControllerRef": True, "matchLabels": {"platform.gitops.io/role": "writer"}}


def test_logs_and_traces_expire_after_their_components_retention() -> None:
    """The bucket expiry is a safety net behind the component's own retention, never shorter than it."""
    retention_hours = {"logs": ("loki", ("loki", "limits_config", "retention_period")),
                       "traces": ("tempo", ("tempo", "retention"))}
    objects = hub_objects()
    for store in stores():
        for bucket in store.buckets:
            if bucket.expiration_days and store.name in retention_hours:
                component, path = retention_hours[store.name]
                hours = int(str(at(release_values(objects, component), path)).removesuffix("h"))
                assert bucket.expiration_days * 24 > hours


@pytest.mark.parametrize("store", [s.name for s in stores()])
def test_trust_subjects_are_exactly_the_writers_the_hub_values_name(store: str) -> None:
    """The role trusts the hub's OIDC issuer for exactly the service accounts the component's values name (with
    the role's ARN), in the component's namespace; the buckets in the values are the composed ones."""
    spec = next(s for s in stores() if s.name == store)
    role = composed(store)["writer-role"]
    trust = json.loads(role["spec"]["forProvider"]["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}"}
    condition = statement["Condition"]["StringEquals"]
    assert condition[f"{ISSUER}:aud"] == "sts.amazonaws.com"
    arn = f"arn:aws:iam::{ACCOUNT}:role/{role['metadata']['annotations']['crossplane.io/external-name']}"
    values = release_values(hub_objects(), spec.component)
    named = []
    for writer in spec.writers:
        block = at(values, writer.values)
        assert block["annotations"][ROLE_ARN_ANNOTATION] == arn
        named.append(f"system:serviceaccount:{spec.component}:{block['name']}")
    assert condition[f"{ISSUER}:sub"] == named
    buckets = {o["metadata"]["annotations"]["crossplane.io/external-name"]
               for o in composed(store).values() if o["kind"] == "Bucket"}
    assert {at(values, path) for bucket in spec.buckets for path in bucket.values} == buckets


def test_the_hub_objects_and_their_api_are_on_the_hub() -> None:
    kustomization = next(o for o in hub_objects() if o["kind"] == "Kustomization"
                         and o["metadata"]["name"] == "crossplane-clusters")
    xrs = [load(p) for p in sorted((HUB / "crossplane-clusters").glob("objectstore.*.yaml"))]
    assert [x["metadata"]["name"] for x in xrs] == ["management-logs", "management-metrics", "management-traces"]
    assert kustomization["spec"]["path"] == "./infrastructure/clusters"
    assert (HUB / "crossplane-compositions" / "composition._cluster.aws-objectstore.yaml").exists()
    assert (HUB / "crossplane-providers" / "provider._cluster.provider-aws-s3.yaml").exists()


def test_the_xr_is_ready_when_every_composed_resource_is() -> None:
    composition = load(HUB / "crossplane-compositions" / "composition._cluster.aws-objectstore.yaml")
    xr = load(HUB / "crossplane-clusters" / "objectstore.fleet-clusters.management-traces.yaml")
    first = engine.run(composition, xr)
    ready = {"conditions": [{"type": "Ready", "status": "True", "reason": "Available",
                             "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    arn = f"arn:aws:iam::{ACCOUNT}:role/acme-fleet-tempo"
    observed = {name: {**obj, "status": {**ready, **({"atProvider": {"arn": arn}} if name == "writer-role" else {})}}
                for name, obj in first.resources.items()}
    assert engine.run(composition, xr, observed).xr_ready is True
    one_not = dict(observed)
    one_not["versioning-acme-fleet-traces"] = {**observed["versioning-acme-fleet-traces"], "status": {
        "conditions": [{**ready["conditions"][0], "status": "False", "reason": "Creating"}]}}
    assert engine.run(composition, xr, one_not).xr_ready is False


def _storage(root: Path, block: str) -> None:
    fleet = root / "inventory" / "fleet.yaml"
    text = fleet.read_text(encoding="utf-8")
    new, count = re.subn(r"  observability:\n    storage:\n(?:      .*\n)+", block, text)
    assert count == 1
    fleet.write_text(new, encoding="utf-8")


ROLE = "arn:aws:iam::123456789012:role/fleet-hub-"
REFERENCE_VALUES = f"""      thanos:
        values:
          receive: {{ingestor: {{serviceAccount: {{annotations: {{eks.amazonaws.com/role-arn: "{ROLE}thanos"}}}}}}}}
          storeGateway: {{serviceAccount: {{annotations: {{eks.amazonaws.com/role-arn: "{ROLE}thanos"}}}}}}
          compact: {{serviceAccount: {{annotations: {{eks.amazonaws.com/role-arn: "{ROLE}thanos"}}}}}}
      loki:
        values:
          serviceAccount: {{annotations: {{eks.amazonaws.com/role-arn: "{ROLE}loki"}}}}
"""


def _add_hub_values(hub: Path) -> None:
    """Append REFERENCE_VALUES to the hub entry's ``components``: its last key (as in the reference fleet), or new."""
    text = hub.read_text(encoding="utf-8")
    keys = [line for line in text.splitlines() if line.startswith("    ") and not line.startswith("     ")]
    header = "" if keys and keys[-1] == "    components:" else "    components:\n"
    hub.write_text(text + header + REFERENCE_VALUES, encoding="utf-8")


def test_by_reference_keeps_the_users_buckets_and_roles(fleet_root: Path) -> None:
    """mode: reference for metrics and logs: no XR for them, and their values are exactly what the hub's entry
    sets (the chart's default names); traces stays composed."""
    _storage(fleet_root, "  observability:\n    storage:\n      mode: reference\n      stores: {traces: composed}\n"
                         f"      hubOidcIssuer: https://{ISSUER}\n")
    hub = fleet_root / "inventory" / "clusters" / "management.yaml"
    _add_hub_values(hub)
    build = build_fleet(fleet_root, options(clusters=("management",)), tools=tools())
    objects = hub_objects(build)
    stores_built = sorted(o["metadata"]["name"] for o in objects if o["kind"] == "ObjectStore")
    assert stores_built == ["management-traces"]
    thanos, loki, tempo = (release_values(objects, c) for c in ("thanos", "loki", "tempo"))
    assert thanos["compact"]["serviceAccount"] == {
        "annotations": {ROLE_ARN_ANNOTATION: "arn:aws:iam::123456789012:role/fleet-hub-thanos"}}
    assert loki["serviceAccount"] == {
        "annotations": {ROLE_ARN_ANNOTATION: "arn:aws:iam::123456789012:role/fleet-hub-loki"}}
    assert thanos["objstoreConfig"]["value"]["config"]["bucket"] == "acme-fleet-metrics"  # the component's own
    assert tempo["serviceAccount"] == {"name": "tempo", "annotations": {
        ROLE_ARN_ANNOTATION: "arn:aws:iam::123456789012:role/acme-fleet-tempo"}}


def test_all_by_reference_renders_no_storage_api(fleet_root: Path) -> None:
    _storage(fleet_root, "")
    hub = fleet_root / "inventory" / "clusters" / "management.yaml"
    _add_hub_values(hub)
    assert main(["render", str(fleet_root)]) == 0
    infrastructure = fleet_root / "out" / "infrastructure"
    assert not (infrastructure / "clusters" / "management.yaml").exists()
    assert not list(infrastructure.rglob("*objectstore*"))
    assert "s3" not in (infrastructure / "providers" / "aws.yaml").read_text(encoding="utf-8")
    assert "management.yaml" not in (infrastructure / "clusters" / "kustomization.yaml").read_text(encoding="utf-8")


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line)


@pytest.mark.parametrize(("block", "needle", "field", "message"), [
    ("  observability:\n    storage:\n      mode: composed\n", "mode: composed", "fleet.observability.storage.mode",
     "set fleet.observability.storage.hubOidcIssuer"),
    ("  observability:\n    storage:\n      stores: {logs: composed}\n", "      stores: {logs",
     "fleet.observability.storage.stores.logs", "set fleet.observability.storage.hubOidcIssuer"),
    ("  observability:\n    storage:\n      mode: bucket\n", "mode: bucket", "fleet.observability.storage.mode",
     "composed"),
    ("  observability:\n    storage:\n      hubOidcIssuer: http://oidc.example.com\n", "hubOidcIssuer",
     "fleet.observability.storage.hubOidcIssuer", "does not match ^https://"),
])
def test_bad_storage_is_refused_at_its_line(fleet_root: Path, capsys: pytest.CaptureFixture[str], block: str,
                                            needle: str, field: str, message: str) -> None:
    _storage(fleet_root, block)
    fleet = fleet_root / "inventory" / "fleet.yaml"
    line = _line_of(fleet, needle)
    assert main(["render", str(fleet_root)]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"inventory/fleet.yaml:{line}:\d+: {re.escape(field)}.*{re.escape(message)}", err), err
    assert not (fleet_root / "out").exists()


def test_a_hand_set_role_on_a_composed_store_is_refused(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hub = fleet_root / "inventory" / "clusters" / "management.yaml"
    _add_hub_values(hub)
    line = _line_of(hub, "compact: {serviceAccount")
    assert main(["render", str(fleet_root)]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"inventory/clusters/management.yaml:{line}:\d+: clusters.0.components.thanos.values.compact"
                     r".serviceAccount.annotations.eks.amazonaws.com/role-arn: the metrics store is composed", err), err
    assert not (fleet_root / "out").exists()


def test_composed_storage_on_a_gcp_hub_is_refused(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hub = fleet_root / "inventory" / "clusters" / "management.yaml"
    text = hub.read_text(encoding="utf-8").replace("cloud: aws", "cloud: gcp").replace("region: us-east-1",
                                                                                        "region: us-central1")
    hub.write_text(text.replace("instanceType: m6i.xlarge", "instanceType: n2-standard-4"), encoding="utf-8")
    assert main(["render", str(fleet_root)]) == 2
    line = _line_of(fleet_root / "inventory" / "fleet.yaml", "mode: composed")
    err = capsys.readouterr().err
    assert re.search(rf"inventory/fleet.yaml:{line}:\d+: fleet.observability.storage.mode: the hub runs on gcp: "
                     "object stores are composed on aws only", err), err


#: thanos 1.22.0, loki 18.11.0, tempo 2.2.4 packaged at their release tags (tests/fixtures/upstream-charts/SOURCES.md)
CHARTS = REPO / "tests" / "fixtures" / "upstream-charts"


def test_the_charts_render_the_trusted_service_accounts_and_run_the_writers_as_them() -> None:
    """helm template of the pinned charts with the hub's values: every trusted subject is a ServiceAccount the chart
    renders, annotated with the role, and every workload of the component that is a writer runs as one of them."""
    build = build_fleet(REPO, options(clusters=("management",), charts_dir=CHARTS), tools=tools())
    objects = hub_objects(build)
    for store in stores():
        role = composed(store.name)["writer-role"]
        subjects = json.loads(role["spec"]["forProvider"]["assumeRolePolicy"])["Statement"][0]["Condition"][
            "StringEquals"][f"{ISSUER}:sub"]
        arn = f"arn:aws:iam::{ACCOUNT}:role/{role['metadata']['annotations']['crossplane.io/external-name']}"
        accounts = {f"system:serviceaccount:{o['metadata']['namespace']}:{o['metadata']['name']}":
                    (o["metadata"].get("annotations") or {}).get(ROLE_ARN_ANNOTATION)
                    for o in objects if o["kind"] == "ServiceAccount"
                    and o["metadata"].get("namespace") == store.component}
        for subject in subjects:
            assert accounts.get(subject) == arn, subject
        runners = {f"system:serviceaccount:{o['metadata']['namespace']}:"
                   f"{o['spec']['template']['spec'].get('serviceAccountName')}"
                   for o in objects if o["kind"] in ("StatefulSet", "Deployment")
                   and o["metadata"]["namespace"] == store.component}
        assert set(subjects) <= runners
