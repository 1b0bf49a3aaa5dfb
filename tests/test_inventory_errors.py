"""Every class of inventory error: file:line:col in the message, exit code 2, output untouched."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import tree_digest

from generator.cli import main


def _render(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["render", str(root), "--out", str(root / "out")])
    return code, capsys.readouterr().err


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count))


def _line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    lines = [i + 1 for i, line in enumerate(path.read_text().splitlines()) if needle in line]
    return lines[occurrence - 1]


CASES = {
    "duplicate cluster name": (
        "inventory/clusters/dev.yaml",
        "name: dev-us-central1",
        "name: dev-us-east-1",
        "name: dev-us-east-1",
        2,
        "clusters.1.name",
        r"duplicate name 'dev-us-east-1'",
    ),
    "name escaping the output dir": (
        "inventory/clusters/dev.yaml",
        "name: dev-us-east-1",
        "name: ../../etc",
        "name: ../../etc",
        1,
        "clusters.0.name",
        r"DNS-1123 label",
    ),
    "unknown cloud": (
        "inventory/clusters/dev.yaml",
        "cloud: gcp",
        "cloud: gpc",
        "cloud: gpc",
        1,
        "clusters.1.cloud",
        r"Input should be 'aws', 'gcp' or 'azure' \(got 'gpc'\)",
    ),
    "region of another cloud": (
        "inventory/clusters/dev.yaml",
        "region: us-central1",
        "region: us-east-1",
        "region: us-east-1",
        2,
        "clusters.1.region",
        r"'us-east-1' is not a gcp region",
    ),
    "environment without overlay": (
        "inventory/fleet.yaml",
        "environments: [dev, staging, prod]",
        "environments: [dev, staging, prod, qa]",
        "environments:",
        1,
        "fleet.environments.3",
        r"environment 'qa' has no overlay file overlays/qa.yaml",
    ),
    "app targets unknown cluster": (
        "inventory/apps.yaml",
        "clusters: [prod-us-east-1, prod-eu-west-1]",
        "clusters: [prod-us-east-1, prod-eu-west-9]",
        "clusters: [prod-us-east-1",
        1,
        "apps.3.clusters.1",
        r"unknown cluster 'prod-eu-west-9'; did you mean 'prod-eu-west-1'",
    ),
    "app targets unknown env": (
        "inventory/apps.yaml",
        "environments: [prod]",
        "environments: [production]",
        "environments: [production]",
        1,
        "apps.3.environments.0",
        r"unknown environment 'production'",
    ),
    "overlapping cluster CIDRs": (
        "inventory/clusters/dev.yaml",
        "vpcCidr: 10.11.0.0/16",
        "vpcCidr: 10.10.128.0/17",
        "vpcCidr: 10.10.128.0/17",
        1,
        "clusters.1.networking.vpcCidr",
        r"overlaps vpcCidr 10.10.0.0/16 of cluster 'dev-us-east-1'",
    ),
    "unsupported kubernetes version": (
        "inventory/clusters/dev.yaml",
        'kubernetesVersion: "1.35"',
        'kubernetesVersion: "1.22"',
        "kubernetesVersion",
        1,
        "clusters.1.kubernetesVersion",
        r"unsupported Kubernetes version '1.22'",
    ),
    "chart version range": (
        "inventory/components.yaml",
        "version: v1.9.0",
        "version: ^1.9.0",
        "version: ^1.9.0",
        1,
        "components.2.chart.version",
        r"not an exact version",
    ),
    "unknown key with did-you-mean": (
        "inventory/clusters/dev.yaml",
        "environment: dev\n    kubernetesVersion",
        "environment: dev\n    kubernetesVersoin",
        "kubernetesVersoin",
        1,
        "clusters.1.kubernetesVersoin",
        r"unknown key 'kubernetesVersoin'; did you mean 'kubernetesVersion'\?",
    ),
    "unknown key in overlay": (
        "overlays/prod.yaml",
        "interval: 30m",
        "intervall: 30m",
        "intervall",
        1,
        "sync.infrastructure.intervall",
        r"did you mean 'interval'\?",
    ),
    "invalid yaml": (
        "inventory/teams.yaml",
        "description: Runs the fleet",
        "description: [Runs the fleet",
        "description: [Runs",
        1,
        "",
        r"invalid YAML",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_inventory_error(case: str, fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file, old, new, needle, occurrence, field, message = CASES[case]
    assert main(["render", str(fleet_root), "--out", str(fleet_root / "out")]) == 0
    before = tree_digest(fleet_root / "out")
    _edit(fleet_root / file, old, new)
    code, err = _render(fleet_root, capsys)
    assert code == 2, err
    line = _line_of(fleet_root / file, needle, occurrence)
    if case == "invalid yaml":
        assert re.search(rf"^{re.escape(file)}:\d+:\d+: invalid YAML", err, re.M), err
    else:
        pattern = rf"^{re.escape(file)}:{line}:\d+: {re.escape(field)}: .*{message}"
        assert re.search(pattern, err, re.M), f"expected /{pattern}/ in:\n{err}"
    assert "nothing was written" in err
    assert tree_digest(fleet_root / "out") == before


def test_all_problems_reported_together(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(fleet_root / "inventory/clusters/dev.yaml", "cloud: gcp", "cloud: gpc")
    _edit(fleet_root / "inventory/apps.yaml", "port: 3000", "prot: 3000")
    code, err = _render(fleet_root, capsys)
    assert code == 2
    assert "clusters.1.cloud" in err and "unknown key 'prot'; did you mean 'port'?" in err


def test_cross_references_reported_together(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(fleet_root / "inventory/apps.yaml", "team: storefront", "team: storefrnt")
    _edit(fleet_root / "inventory/apps.yaml", "dependsOn: [payments]", "dependsOn: [payment]")
    code, err = _render(fleet_root, capsys)
    assert code == 2
    assert "unknown team 'storefrnt'; did you mean 'storefront'?" in err
    assert "unknown app 'payment'; did you mean 'payments'?" in err


def test_unknown_substitution_variable(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(fleet_root / "inventory/components.yaml", "txtOwnerId: ${cluster_name}", "txtOwnerId: ${cluster_nmae}")
    code, err = _render(fleet_root, capsys)
    assert code == 2
    line = _line_of(fleet_root / "inventory/components.yaml", "cluster_nmae")
    assert f"inventory/components.yaml:{line}:" in err and "unknown variable '${cluster_nmae}'" in err


def test_schema_command_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["anyOf"] == [{"$ref": "#/$defs/InventoryFile"}, {"$ref": "#/$defs/OverlayFile"}]
    assert schema["$defs"]["InventoryFile"]["additionalProperties"] is False
    assert "exceptions" in schema["$defs"]["InventoryFile"]["properties"]
    assert "kubernetesVersion" in schema["$defs"]["Cluster"]["properties"]


def test_namespace_shared_by_two_teams(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(fleet_root / "inventory/apps.yaml", "    namespace: storefront\n", "    namespace: checkout\n")
    code, err = _render(fleet_root, capsys)
    assert code == 2
    line = _line_of(fleet_root / "inventory/apps.yaml", "namespace: checkout")
    expected = "apps.3.namespace: namespace 'checkout' already belongs to team 'payments'"
    assert f"inventory/apps.yaml:{line}:5: {expected}" in err
