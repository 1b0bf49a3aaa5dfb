"""Writer and determinism: byte-identical output, order independence, prune, hand-edit guard, --check."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from conftest import tree_digest

from generator.cli import main
from generator.yamlio import dump_documents, load_documents, load_file


def _render(root: Path, *extra: str) -> int:
    return main(["render", str(root), "--out", str(root / "out"), *extra])


def test_render_twice_is_byte_identical_and_writes_nothing_the_second_time(fleet_root: Path) -> None:
    assert _render(fleet_root) == 0
    first = tree_digest(fleet_root / "out")
    mtimes = {p: p.stat().st_mtime_ns for p in (fleet_root / "out").rglob("*") if p.is_file()}
    assert _render(fleet_root) == 0
    assert tree_digest(fleet_root / "out") == first
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert len(first) > 100


def _shuffle_yaml(path: Path, rng: random.Random) -> None:
    """Reverse/shuffle every list of named entries and the keys of every mapping in a file."""

    def shuffle(value: object, key: str = "", raw: bool = False) -> object:
        # raw: inside component configs or chart values, which are Kubernetes objects / Helm values passed on as
        # written: their keys may come in any order, but list order is theirs (e.g. a Gateway's listeners)
        raw = raw or key in ("configs", "values")
        if isinstance(value, dict):
            items = list(value.items())
            rng.shuffle(items)
            return {k: shuffle(v, k, raw) for k, v in items}
        if key == "nodeGroups":  # ordered on purpose: the first group is the system (AKS default) pool
            return value
        if isinstance(value, list):
            items = [shuffle(v, "", raw) for v in value]
            if not raw and all(isinstance(v, dict) and "name" in v for v in items) and items:
                rng.shuffle(items)
            return items
        return value

    data = load_file(path, path.name).data
    path.write_text(dump_documents([shuffle(data)]))


def test_entry_and_key_order_do_not_change_the_output(fleet_root: Path, tmp_path: Path) -> None:
    assert _render(fleet_root) == 0
    expected = {k: v for k, v in tree_digest(fleet_root / "out").items()}
    rng = random.Random(7)
    dev = fleet_root / "overlays" / "dev.yaml"
    lines = dev.read_text().splitlines(keepends=True)
    start = lines.index("apps:\n")
    end = next(i for i in range(start + 1, len(lines)) if lines[i][:1] not in (" ", "#"))
    for path in sorted((fleet_root / "inventory").rglob("*.yaml")) + sorted((fleet_root / "overlays").glob("*.yaml")):
        _shuffle_yaml(path, rng)
    # image automation's setter markers are comments, which the re-dump drops: put dev's marked tags back as written
    shuffled = load_file(dev, dev.name).data
    del shuffled["apps"]
    dev.write_text(dump_documents([shuffled]) + "".join(lines[start:end]))
    out = tmp_path / "second"
    assert main(["render", str(fleet_root), "--out", str(out)]) == 0
    # FLEET.md cites file:line of each override, which moves when entries move; everything else is identical
    position = re.compile(r"((?:inventory|overlays)/[^\s`:|]+\.yaml):\d+")
    overview = [position.sub(r"\1:N", (tree / "FLEET.md").read_text()) for tree in (fleet_root / "out", out)]
    assert overview[0] == overview[1]
    moved = {"FLEET.md", ".fleetgen/manifest.json"}
    assert {k: v for k, v in tree_digest(out).items() if k not in moved} == {
        k: v for k, v in expected.items() if k not in moved
    }


def test_removed_cluster_is_pruned_and_foreign_files_are_kept(fleet_root: Path) -> None:
    assert _render(fleet_root) == 0
    out = fleet_root / "out"
    foreign = out / "fleet" / "clusters" / "dev-us-east-1" / "NOTES.md"
    foreign.write_text("kept: fleetgen did not write this\n")
    path = fleet_root / "inventory/clusters/dev.yaml"
    text = path.read_text()
    start = text.index("  - name: dev-us-central1")
    path.write_text(text[:start])
    assert _render(fleet_root) == 0
    assert not (out / "fleet/clusters/dev-us-central1").exists()
    assert (out / "fleet/clusters/dev-us-east-1/kustomization.yaml").exists()
    assert foreign.read_text().startswith("kept")


def test_hand_edited_file_is_not_overwritten_until_forced(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _render(fleet_root) == 0
    out = fleet_root / "out"
    edited = out / "fleet/clusters/prod-eu-west-1/apps.yaml"
    edited.write_text(edited.read_text() + "# local tweak\n")
    overlay = fleet_root / "overlays/prod.yaml"
    overlay.write_text(overlay.read_text().replace("apps: {interval: 10m}", "apps: {interval: 15m}"))
    before = tree_digest(out)
    capsys.readouterr()
    assert _render(fleet_root) == 2
    err = capsys.readouterr().err
    assert "fleet/clusters/prod-eu-west-1/apps.yaml" in err and "--force" in err
    assert tree_digest(out) == before
    assert _render(fleet_root, "--force") == 0
    assert "local tweak" not in edited.read_text() and "interval: 15m" in edited.read_text()


def test_check_reports_stale_missing_and_extra(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _render(fleet_root) == 0
    assert _render(fleet_root, "--check") == 0
    out = fleet_root / "out"
    (out / "fleet/clusters/dev-us-east-1/apps.yaml").unlink()
    overlay = fleet_root / "overlays/dev.yaml"
    overlay.write_text(overlay.read_text().replace("retention: 2d", "retention: 3d"))
    text = (fleet_root / "inventory/apps.yaml").read_text()
    (fleet_root / "inventory/apps.yaml").write_text(text[: text.index("  - name: storefront-web")])
    before = tree_digest(out)
    capsys.readouterr()
    assert _render(fleet_root, "--check") == 1
    report = capsys.readouterr().out
    assert "missing: fleet/clusters/dev-us-east-1/apps.yaml" in report
    assert "stale: fleet/infrastructure/overlays/dev/controllers/kustomization.yaml" in report
    assert "extra: fleet/apps/base/storefront-web/release.yaml" in report
    assert tree_digest(out) == before


def test_every_generated_yaml_file_has_the_header(fleet_root: Path) -> None:
    assert _render(fleet_root) == 0
    for path in (fleet_root / "out" / "fleet").rglob("*.yaml"):
        if "/templates/" in path.as_posix():
            continue
        first = path.read_text().splitlines()[0]
        assert first.startswith("# Generated by fleetgen from ") and "DO NOT EDIT" in first, path


def test_inventory_strings_cannot_inject_yaml(fleet_root: Path) -> None:
    apps = fleet_root / "inventory/apps.yaml"
    hostile = "info\"\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: pwned}\n'#"
    apps.write_text(apps.read_text().replace("LOG_LEVEL: info", f"LOG_LEVEL: {json.dumps(hostile)}"))
    assert _render(fleet_root) == 0
    release = fleet_root / "out/fleet/apps/base/checkout/release.yaml"
    docs = load_documents(release.read_text())
    assert len(docs) == 1 and docs[0]["kind"] == "HelmRelease"
    assert docs[0]["spec"]["values"]["env"]["LOG_LEVEL"] == hostile


def test_rendered_output_is_yamllint_clean(fleet_root: Path) -> None:
    from conftest import REPO
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    assert _render(fleet_root) == 0
    config = YamlLintConfig(file=str(REPO / ".yamllint"))
    problems = []
    for path in sorted((fleet_root / "out").rglob("*.yaml")):
        if "/templates/" in path.as_posix():
            continue
        problems += [f"{path}:{p.line}: {p.desc}" for p in linter.run(path.read_text(), config, str(path))]
    assert not problems, "\n".join(problems)
