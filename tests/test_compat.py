"""The compatibility matrix and the knobs: Flux/operator pairing, Kubernetes support calendars, chart kubeVersion,
cluster labels, per-cloud defaults, the editor schema, and fleet.security without a policy engine."""

from __future__ import annotations

import datetime
import json
import re
import warnings
from pathlib import Path

import jsonschema
import pytest
from conftest import REPO, tree_digest

from generator.cli import main
from generator.errors import InventoryError, InventoryWarning
from generator.inventory.compat import compat_data, embedded_flux_versions, kubernetes_support, satisfies
from generator.inventory.loader import load_inventory
from generator.inventory.resolve import resolve
from generator.inventory.schema_export import inventory_json_schema
from generator.yamlio import load_documents

#: A day on which every version in the reference fleet is in standard support (independent of the real date).
IN_SUPPORT = datetime.date(2026, 11, 30)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _line_of(path: Path, needle: str) -> int:
    return next(i + 1 for i, line in enumerate(path.read_text().splitlines()) if needle in line)


def _render(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["render", str(root), "--out", str(root / "out")])
    return code, capsys.readouterr().err


# --- the matrix itself -----------------------------------------------------------------------------------------


def test_matrix_facts() -> None:
    """The facts the issue names: 0.40.0 stops at Flux 2.7.5, 0.58.x embeds 2.9.4, 2.8.4 is embedded nowhere."""
    old, new = embedded_flux_versions("0.40.0"), embedded_flux_versions("v0.58.1")
    assert old is not None and new is not None
    assert (old[0], old[-1]) == ("2.2.3", "2.7.5")
    assert "2.9.4" in new and "2.9.4" not in old
    assert all("2.8.4" not in r["flux"] for r in compat_data()["fluxOperator"]["releases"].values())
    assert embedded_flux_versions("0.99.0") is None
    eks, gke, aks = (kubernetes_support(c) for c in ("aws", "gcp", "azure"))
    assert str(eks["1.33"].end_of_standard) == "2026-07-29" and str(eks["1.36"].end_of_extended) == "2028-08-02"
    assert "1.37" not in eks and "1.37" not in gke and "1.37" in aks
    assert str(gke["1.34"].end_of_standard) == "2026-10-01"


@pytest.mark.parametrize(
    ("version", "constraint", "expected"),
    [("1.35", ">= 1.22.0-0", True), ("1.21", ">=1.22.0-0", False), ("1.30", ">=1.25.0-0 <1.31.0", True),
     ("1.31", ">=1.25.0-0, <1.31.0", False), ("1.20", "<1.21.0 || >=1.30.0", True),
     ("1.25", "<1.21.0 || >=1.30", False)],
)
def test_kube_version_constraints(version: str, constraint: str, expected: bool) -> None:
    assert satisfies(version, constraint) is expected


# --- Flux version vs the pinned operator -------------------------------------------------------------------------


def test_flux_version_the_operator_cannot_install(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(fleet_root), "--out", str(fleet_root / "out")]) == 0
    before = tree_digest(fleet_root / "out")
    components = fleet_root / "inventory/components.yaml"
    _edit(components, "name: flux-operator, version: 0.58.1}", "name: flux-operator, version: 0.40.0}")
    code, err = _render(fleet_root, capsys)
    assert code == 2, err
    flux_line = _line_of(fleet_root / "inventory/fleet.yaml", "version: 2.9.4")
    operator_line = _line_of(components, "name: flux-operator, version: 0.40.0")
    pattern = (
        rf"^inventory/fleet.yaml:{flux_line}:\d+: fleet.flux.version: Flux 2.9.4 cannot be installed by "
        rf"flux-operator 0.40.0 \(inventory/components.yaml:{operator_line}\), which embeds Flux 2.2.3 .. 2.7.5"
        r".*flux-operator 0.58.0 or later embeds it"
    )
    assert re.search(pattern, err, re.M), err
    assert "nothing was written" in err
    assert tree_digest(fleet_root / "out") == before


def test_operator_release_missing_from_the_matrix(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    components = fleet_root / "inventory/components.yaml"
    _edit(components, "name: flux-operator, version: 0.58.1}", "name: flux-operator, version: 0.99.0}")
    code, err = _render(fleet_root, capsys)
    assert code == 2
    line = _line_of(components, "version: 0.99.0")
    assert re.search(rf"^inventory/components.yaml:{line}:\d+: components.0.chart.version: flux-operator 0.99.0 "
                     r"is not in the compatibility matrix", err, re.M), err


def test_flux_release_no_operator_embeds(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(fleet_root / "inventory/fleet.yaml", "version: 2.9.4", "version: 2.8.4")
    code, err = _render(fleet_root, capsys)
    assert code == 2
    assert "fleet.flux.version: Flux 2.8.4 cannot be installed by flux-operator 0.58.1" in err
    assert "no flux-operator release in the matrix embeds it" in err


# --- Kubernetes support calendars ----------------------------------------------------------------------------------


def test_reference_fleet_is_in_standard_support(fleet_root: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", InventoryWarning)
        inventory = load_inventory(fleet_root, today=IN_SUPPORT)
    assert inventory.warnings == []


def test_past_standard_support_warns_with_the_date(fleet_root: Path) -> None:
    prod = fleet_root / "overlays/prod.yaml"
    line = _line_of(prod, 'kubernetesVersion: "1.35"')
    with pytest.warns(InventoryWarning) as caught:
        inventory = load_inventory(fleet_root, today=datetime.date(2027, 3, 30))
    messages = [str(w) for w in inventory.warnings]
    assert {str(w.message) for w in caught} == set(messages)
    eks = [m for m in messages if "cluster 'prod-us-east-1'" in m]
    assert eks == [
        f"overlays/prod.yaml:{line}:1: kubernetesVersion: cluster 'prod-us-east-1': Kubernetes 1.35 on EKS reached "
        "the end of standard support on 2027-03-27; extended support (extra cost) until 2028-03-27; plan the upgrade "
        "(source: https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html)"
    ]
    # AKS 1.35 is in standard support until 2027-03-31, GKE 1.35 until 2027-04-11: no warning for those yet.
    assert not [m for m in messages if "prod-eastus" in m or "prod-europe-west1" in m]


def test_past_extended_support_is_an_error(fleet_root: Path) -> None:
    with pytest.raises(InventoryError) as caught:
        load_inventory(fleet_root, today=datetime.date(2028, 4, 1))
    line = _line_of(fleet_root / "overlays/prod.yaml", 'kubernetesVersion: "1.35"')
    text = str(caught.value)
    assert (f"overlays/prod.yaml:{line}:1: kubernetesVersion: cluster 'prod-us-east-1': Kubernetes 1.35 on EKS "
            "reached the end of extended support on 2028-03-27 (today is 2028-04-01)") in text


def test_version_the_cloud_does_not_offer(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """1.37 is offered on AKS only: an EKS cluster asking for it is an error at the cluster's line."""
    clusters = fleet_root / "inventory/clusters/staging.yaml"
    _edit(clusters, "    environment: staging\n", '    environment: staging\n    kubernetesVersion: "1.37"\n')
    code, err = _render(fleet_root, capsys)
    assert code == 2
    line = _line_of(clusters, 'kubernetesVersion: "1.37"')
    assert re.search(rf"^inventory/clusters/staging.yaml:{line}:\d+: clusters.0.kubernetesVersion: cluster "
                     r"'staging-us-east-1': EKS does not offer Kubernetes 1.37; "
                     r"EKS offers 1.32, 1.33, 1.34, 1.35, 1.36",
                     err, re.M), err


def test_aks_cluster_on_1_37_renders_and_templates(fleet_root: Path) -> None:
    """1.37 on AKS is accepted and reaches helm template as --kube-version v1.37.0 (the service chart renders)."""
    from _buildkit import tools

    from generator.build.fleet import build_fleet
    from generator.build.model import BuildOptions

    _edit(fleet_root / "inventory/clusters/staging.yaml", "    cloud: azure\n",
          '    cloud: azure\n    kubernetesVersion: "1.37"\n')
    fleet = resolve(load_inventory(fleet_root, today=IN_SUPPORT))
    cluster = fleet.cluster("staging-westeurope")
    assert cluster is not None and cluster.settings.kubernetes_version == "1.37"
    result = build_fleet(fleet_root, BuildOptions(clusters=("staging-westeurope",), use_cache=False),
                         tools=tools())
    rendered = [key for key in result.clusters["staging-westeurope"].resources if "helmrelease." in key]
    assert rendered, "no in-repo chart was templated for kube 1.37"


# --- labels ----------------------------------------------------------------------------------------------------------


def test_labels_reach_the_flux_instance_and_the_cluster_objects(fleet_root: Path) -> None:
    assert main(["render", str(fleet_root), "--out", str(fleet_root / "out")]) == 0
    instance = load_documents((fleet_root / "out/fleet/clusters/prod-eastus/flux-system/flux-instance.yaml")
                              .read_text())[0]
    assert instance["spec"]["commonMetadata"]["labels"] == {"acme.io/owner": "platform", "acme.io/tier": "production"}
    dev = load_documents((fleet_root / "out/fleet/clusters/dev-us-east-1/flux-system/flux-instance.yaml").read_text())
    assert dev[0]["spec"]["commonMetadata"]["labels"] == {"acme.io/owner": "platform"}
    xr = load_documents((fleet_root / "out/infrastructure/clusters/prod-eastus.yaml").read_text())[0]
    assert xr["metadata"]["labels"]["acme.io/tier"] == "production"
    assert xr["metadata"]["labels"]["fleet.gitops.io/cluster"] == "prod-eastus"


def test_reserved_label_prefix_is_rejected(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(fleet_root / "overlays/prod.yaml", "labels: {acme.io/tier: production}",
          "labels: {fleet.gitops.io/cluster: other}")
    code, err = _render(fleet_root, capsys)
    assert code == 2
    line = _line_of(fleet_root / "overlays/prod.yaml", "fleet.gitops.io/cluster: other")
    pattern = rf"^overlays/prod.yaml:{line}:\d+: labels.fleet.gitops.io/cluster\S*: .*reserved prefix"
    assert re.search(pattern, err, re.M), err


# --- per-cloud defaults -------------------------------------------------------------------------------------------


def test_cloud_defaults_layer_and_provenance(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = resolve(load_inventory(fleet_root, today=IN_SUPPORT))
    azure = fleet.cluster("staging-westeurope")
    aws = fleet.cluster("staging-us-east-1")
    assert azure is not None and aws is not None
    assert [g.instance_type for g in azure.settings.node_groups] == ["Standard_D4s_v5", "Standard_D8s_v5"]
    assert [g.instance_type for g in aws.settings.node_groups] == ["m6i.large", "m6i.xlarge"]
    assert main(["explain", "staging-westeurope", "nodeGroups", "--root", str(fleet_root)]) == 0
    out = capsys.readouterr().out
    lines = (fleet_root / "inventory/fleet.yaml").read_text().splitlines()
    line = lines.index("    azure:", lines.index("  clouds:")) + 2  # defaults.clouds.azure.nodeGroups
    assert re.search(rf'^nodeGroups\s+\[.*"Standard_D4s_v5".*\]\s+# inventory/fleet.yaml:{line}\b', out, re.M), out


def test_overlay_and_cluster_win_over_cloud_defaults(fleet_root: Path) -> None:
    fleet = resolve(load_inventory(fleet_root, today=IN_SUPPORT))
    gcp_dev, gcp_prod = fleet.cluster("dev-us-central1"), fleet.cluster("prod-europe-west1")
    assert gcp_dev is not None and gcp_prod is not None
    assert gcp_dev.settings.node_groups[0].max_size == 3  # the cluster's own list
    assert gcp_prod.settings.node_groups[1].max_size == 20  # the cluster's own list
    assert gcp_dev.provenance["kubernetesVersion"].startswith("inventory/clusters/dev.yaml:")


def test_built_in_node_group_is_per_cloud(fleet_root: Path) -> None:
    """With no layer setting node groups, a GCP cluster gets a GCP machine type, not the AWS one."""
    fleet_file = fleet_root / "inventory/fleet.yaml"
    text = fleet_file.read_text()
    start, end = text.index("    gcp:\n      nodeGroups:"), text.index("  sync:\n")
    fleet_file.write_text(text[:start] + text[end:])
    clusters = fleet_root / "inventory/clusters/prod.yaml"
    text = clusters.read_text()
    start = text.index("    nodeGroups:\n      - name: system\n        instanceType: e2-standard-4")
    end = text.index("  - name: prod-eastus")
    clusters.write_text(text[:start] + text[end:])
    fleet = resolve(load_inventory(fleet_root, today=IN_SUPPORT))
    cluster = fleet.cluster("prod-europe-west1")
    assert cluster is not None
    assert [(g.name, g.instance_type) for g in cluster.settings.node_groups] == [("system", "e2-standard-4")]
    assert cluster.provenance["nodeGroups"] == "(built-in default)"


def test_policies_are_not_a_cloud_setting(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(fleet_root / "inventory/fleet.yaml", "    azure:\n      nodeGroups:",
          "    azure:\n      policies: {validationAction: Deny}\n      nodeGroups:")
    code, err = _render(fleet_root, capsys)
    assert code == 2
    assert "defaults.clouds.azure.policies: unknown key 'policies'" in err


# --- fleet.security needs a policy engine ---------------------------------------------------------------------------


def test_security_without_kyverno_component(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    components = fleet_root / "inventory/components.yaml"
    text = components.read_text()
    start, end = text.index("  - name: kyverno\n"), text.index("  - name: external-secrets\n")
    components.write_text(text[:start] + text[end:])
    code, err = _render(fleet_root, capsys)
    assert code == 2
    line = _line_of(fleet_root / "inventory/fleet.yaml", "  security:")
    assert re.search(rf"^inventory/fleet.yaml:{line}:\d+: fleet.security: fleet.security renders Kyverno policies, "
                     r"but no component installs the policy engine", err, re.M), err


def test_security_with_kyverno_disabled_in_an_environment(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(fleet_root / "overlays/dev.yaml", "components:\n", "components:\n  kyverno: {enabled: false}\n")
    code, err = _render(fleet_root, capsys)
    assert code == 2
    line = _line_of(fleet_root / "overlays/dev.yaml", "kyverno: {enabled: false}")
    assert re.search(rf"^overlays/dev.yaml:{line}:\d+: components.kyverno.enabled: cluster 'dev-us-east-1' gets "
                     r"fleet.security policies but the policy engine 'kyverno' is not enabled there", err, re.M), err


# --- the editor schema ----------------------------------------------------------------------------------------------


def _files() -> list[Path]:
    return sorted([*(REPO / "inventory").rglob("*.yaml"), *(REPO / "overlays").glob("*.yaml")])


def test_schema_validates_every_reference_file() -> None:
    validator = jsonschema.Draft202012Validator(inventory_json_schema())
    files = _files()
    assert len(files) >= 10
    for path in files:
        data = load_documents(path.read_text())[0] or {}
        errors = [e.message for e in validator.iter_errors(json.loads(json.dumps(data, default=str)))]
        assert errors == [], f"{path}: {errors}"


def test_schema_covers_exceptions_and_rejects_bad_files() -> None:
    validator = jsonschema.Draft202012Validator(inventory_json_schema())
    exceptions = {"exceptions": [{"name": "legacy-batch", "owner": "payments", "reason": "Settlement needs host IPC",
                                  "expires": "2027-01-31", "policies": ["disallow-host-namespaces"],
                                  "namespaces": ["payments"]}]}
    assert not list(validator.iter_errors(exceptions))
    assert list(validator.iter_errors({"exceptions": [{"name": "x"}]}))  # owner, reason, ... missing
    assert list(validator.iter_errors({"kubernetesVersoin": "1.35"}))  # typo in an overlay
    assert list(validator.iter_errors({"clusters": [{"name": "a"}], "kubernetesVersion": "1.35"}))  # mixed kinds
    assert list(validator.iter_errors({"defaults": {"clouds": {"aws": {"components": {}}}}}))


def test_chart_kube_version_excluding_a_cluster(fleet_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chart whose Chart.yaml kubeVersion excludes a cluster's version is an error at the chart pin."""
    import copy

    import generator.inventory.compat as compat

    data = copy.deepcopy(compat.compat_data())
    data["charts"]["kyverno"]["3.9.0"] = {"kubeVersion": ">=1.25.0-0 <1.36.0-0"}
    monkeypatch.setattr(compat, "compat_data", lambda: data)
    with pytest.raises(InventoryError) as caught:
        load_inventory(fleet_root, today=IN_SUPPORT)
    line = _line_of(fleet_root / "inventory/components.yaml", "name: kyverno, version: 3.9.0")
    text = str(caught.value)
    assert (f"inventory/components.yaml:{line}:" in text and "chart kyverno 3.9.0 requires Kubernetes "
            ">=1.25.0-0 <1.36.0-0 (its Chart.yaml kubeVersion), but cluster 'dev-us-east-1' runs 1.36") in text
    assert "cluster 'prod-us-east-1'" not in text  # prod runs 1.35
