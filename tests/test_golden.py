"""Golden files: a one-value inventory edit fails the check naming exactly that cluster and resource,
``--update`` makes it pass, and any corrupted, missing or stray golden file is caught by cluster."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from _buildkit import options, reference_build, shared_cache_dir, tools
from conftest import REPO, copy_reference_fleet

from generator import cli
from generator.verify.golden import check_golden, compare_golden, read_tree, update_golden


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An editable copy of the reference fleet whose golden/ matches its build."""
    monkeypatch.setenv("FLEETGEN_TOOLS_DIR", str(REPO / ".tools"))
    root = copy_reference_fleet(tmp_path / "fleet")
    golden = root / "golden"
    for path, text in reference_build().files().items():
        (golden / path).parent.mkdir(parents=True, exist_ok=True)
        (golden / path).write_text(text, encoding="utf-8")
    return root


def _check(root: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = check_golden(root, options=options(), out=out, tools=tools())
    return code, out.getvalue()


def test_fresh_golden_tree_passes(fleet: Path) -> None:
    code, out = _check(fleet)
    assert code == 0, out
    assert "up to date" in out


def test_one_value_for_one_cluster_names_that_cluster_and_resource(fleet: Path) -> None:
    prod = fleet / "inventory" / "clusters" / "prod.yaml"
    text = prod.read_text()
    assert "envoyDeployment: {replicas: 5}" in text
    prod.write_text(text.replace("envoyDeployment: {replicas: 5}", "envoyDeployment: {replicas: 7}"))

    result = compare_golden(fleet, options=options(), tools=tools())
    assert [(c.cluster, c.status, c.label) for c in result.comparison.changes] == [
        ("prod-us-east-1", "changed", "HelmRelease envoy-gateway-system/envoy-gateway")]

    code, out = _check(fleet)
    assert code == 1
    assert "1 cluster(s) affected" in out
    assert "prod-us-east-1: 0 added, 1 changed, 0 removed" in out
    assert "changed  HelmRelease envoy-gateway-system/envoy-gateway" in out
    assert re.search(r"^-\s+replicas: 5$", out, re.M) and re.search(r"^\+\s+replicas: 7$", out, re.M)
    other_clusters = {c for c in reference_build().clusters if c != "prod-us-east-1"}
    assert not any(f"  {c}:" in out for c in other_clusters)

    updated = update_golden(fleet, options=options(), tools=tools())
    assert updated.written == [
        "prod-us-east-1/infra-controllers/helmrelease.envoy-gateway-system.envoy-gateway.yaml"
    ]
    assert _check(fleet)[0] == 0


def test_corrupted_missing_and_stray_golden_files_name_their_cluster(fleet: Path) -> None:
    golden = fleet / "golden"
    tree = read_tree(golden)
    by_cluster: dict[str, list[str]] = {}
    for path in tree:
        by_cluster.setdefault(path.split("/", 1)[0], []).append(path)
    expected: dict[str, str] = {}
    for index, (cluster, paths) in enumerate(sorted(by_cluster.items())):
        target = golden / paths[index * 7 % len(paths)]
        if index % 3 == 0:
            target.write_text(target.read_text().replace("name:", "name: x", 1))  # corrupted
            expected[cluster] = "changed"
        elif index % 3 == 1:
            target.unlink()  # missing: the build adds it back
            expected[cluster] = "added"
        else:
            (target.parent / "configmap.stray.left-over.yaml").write_text("---\nkind: ConfigMap\n")
            expected[cluster] = "removed"
    result = compare_golden(fleet, options=options(), tools=tools())
    found = {c.cluster: c.status for c in result.comparison.changes}
    assert found == expected
    code, out = _check(fleet)
    assert code == 1
    for cluster in expected:
        assert f"  {cluster}: " in out
    update_golden(fleet, options=options(), tools=tools())
    assert _check(fleet)[0] == 0
    assert not list(golden.rglob("configmap.stray.left-over.yaml"))


def test_golden_of_a_removed_cluster_is_stale(fleet: Path) -> None:
    ghost = fleet / "golden" / "decommissioned" / "flux-system" / "namespace._cluster.old.yaml"
    ghost.parent.mkdir(parents=True)
    ghost.write_text("---\n")
    code, out = _check(fleet)
    assert code == 1 and "decommissioned: 0 added, 0 changed, 1 removed" in out
    # a selection only compares its own clusters
    selected = io.StringIO()
    assert check_golden(fleet, options=options(clusters=("dev-us-east-1",)), out=selected, tools=tools()) == 0


def test_golden_command_line(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.parser()
    cache = ["--cache-dir", str(shared_cache_dir())]
    args = parser.parse_args(["golden", str(fleet), *cache])
    assert args.func(args) == 0
    (fleet / "golden" / "prod-eastus").rename(fleet / "golden" / "elsewhere")
    args = parser.parse_args(["golden", str(fleet), *cache, "--cluster", "prod-eastus"])
    assert args.func(args) == 1
    assert "prod-eastus:" in capsys.readouterr().out
    args = parser.parse_args(["golden", str(fleet), *cache, "--update", "--cluster", "prod-eastus"])
    assert args.func(args) == 0
    assert (fleet / "golden" / "prod-eastus").is_dir()
