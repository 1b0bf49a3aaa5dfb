"""The input guard's rules one by one, and what it must still accept (BOM, merge keys, symlinks inside the root)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from generator.errors import InventoryError
from generator.guard import MAX_DEPTH, prescan_yaml, read_text, walk_files
from generator.inventory.loader import load_inventory
from generator.render.writer import parse_manifest
from generator.verify.golden import read_tree


def _nodes(count: int) -> str:
    """A flow list of ``count`` scalars: ``count + 1`` nodes with the list itself."""
    return "[" + ", ".join("x" for _ in range(count)) + "]"


def test_alias_budget_counts_each_alias_as_a_copy() -> None:
    """Nine aliases of a 10-node list cost 90 nodes: inside a budget of 102, outside a budget of 101."""
    text = f"a: &a {_nodes(9)}\nb: [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    # map 1 + key a 1 + list 10 + key b 1 + list 1 + 9 aliases x 10 = 104 nodes
    prescan_yaml(text, "f.yaml", max_nodes=104)
    with pytest.raises(InventoryError, match="past 103 nodes"):
        prescan_yaml(text, "f.yaml", max_nodes=103)


def test_depth_limit_is_exact() -> None:
    """``MAX_DEPTH`` levels pass, one more is refused with the line and column of the level too deep."""
    prescan_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH, "f.yaml")
    # the mapping is level 1, so the 100th '[' (column 3 + 100) is level 101
    with pytest.raises(InventoryError, match=r"f\.yaml:1:103: nested more than 100 levels"):
        prescan_yaml("x: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH, "f.yaml")


def test_byte_order_mark_and_merge_keys_are_accepted(fleet_root: Path) -> None:
    """A UTF-8 file with a BOM and a valid ``<<: *anchor`` merge are ordinary input."""
    (fleet_root / "inventory" / "extra-teams.yaml").write_bytes(
        b"\xef\xbb\xbfteams:\n  - &base {name: extra-a, groups: [acme:extra]}\n  - <<: *base\n    name: extra-b\n"
    )
    teams = {t.item.name: t.item for t in load_inventory(fleet_root).teams}
    assert teams["extra-b"].groups == teams["extra-a"].groups == ["acme:extra"]


def test_symlinks_inside_the_root_are_followed(fleet_root: Path) -> None:
    """A symlinked folder or file that stays inside the fleet root is read (once, even when linked twice)."""
    shared = fleet_root / "shared-inventory"
    shared.mkdir()
    shutil.move(fleet_root / "inventory" / "teams.yaml", shared / "teams.yaml")
    (fleet_root / "inventory" / "linked").symlink_to("../shared-inventory")
    (fleet_root / "inventory" / "again").symlink_to("../shared-inventory")
    files, problems = walk_files(fleet_root / "inventory", fleet_root, (".yaml",))
    assert not problems
    assert [p.name for p in files].count("teams.yaml") == 1
    assert {t.item.name for t in load_inventory(fleet_root).teams} >= {"platform", "security"}


def test_golden_symlink_out_of_golden_is_refused(tmp_path: Path) -> None:
    """A golden file that is a symlink to a file outside golden/ is an input error, not read into a diff."""
    (tmp_path / "secret.yaml").write_text("password: x\n")
    cluster = tmp_path / "golden" / "dev-us-east-1"
    cluster.mkdir(parents=True)
    (cluster / "all.yaml").symlink_to("../../secret.yaml")
    with pytest.raises(InventoryError, match=r"dev-us-east-1/all\.yaml: symlink to .* leaves"):
        read_tree(tmp_path / "golden")


def test_size_limit(tmp_path: Path) -> None:
    """A file over the limit is refused before it is decoded."""
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * 2048)
    with pytest.raises(InventoryError, match="larger than"):
        read_text(big, tmp_path, "big.yaml", limit=1024)


def test_manifest_written_by_fleetgen_is_accepted() -> None:
    """The shape fleetgen writes parses; a hash that is not sha256 does not."""
    good = '{"generator": "fleetgen", "files": {"fleet/a.yaml": "' + "0" * 64 + '"}}'
    assert parse_manifest(good, "m.json") == {"fleet/a.yaml": "0" * 64}
    with pytest.raises(InventoryError, match="not a sha256"):
        parse_manifest(good.replace("0" * 64, "xyz"), "m.json")


def test_duplicate_flagged_on_the_later_entry(fleet_root: Path) -> None:
    """The entry flagged is the later one in (file path, line) order, pointing at the first; the copied
    cluster's overlapping CIDR is not reported as well (names are checked before rules across entries)."""
    cluster = (fleet_root / "inventory" / "clusters" / "dev.yaml").read_text().split("  - name: dev-us-central1")[0]
    (fleet_root / "inventory" / "clusters" / "zzz.yaml").write_text(cluster)
    with pytest.raises(InventoryError) as raised:
        load_inventory(fleet_root)
    assert [str(p) for p in raised.value.problems] == [
        "inventory/clusters/zzz.yaml:2:5: clusters.0.name: duplicate name 'dev-us-east-1' "
        "(first defined at inventory/clusters/dev.yaml:2)"
    ]
