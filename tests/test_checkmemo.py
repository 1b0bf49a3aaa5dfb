"""The memo of checked cluster entries (generator/inventory/checkmemo.py) never changes what the checks report.

A synthetic fleet is checked once with every entry's rules run, its keys stored as a render stores them, then
edited; after each edit the inventory's problems through the memo (the passed, unedited entries' rules of one
entry skipped) are compared with those of a load without the memo: same messages, same file:line:col, same
order. The edits break rules of one entry on the edited entry, rules across entries between an edited and an
unedited (skipped) entry, and rules of one entry on unedited entries through a fleet-level edit (which changes
every key).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from generator.bench import make_fleet
from generator.errors import InventoryError
from generator.inventory import checkmemo
from generator.inventory.loader import load_inventory
from generator.render.pipeline import render
from generator.yamlio import dump_documents, load_documents

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.filterwarnings("ignore::generator.errors.InventoryWarning")


def _problems(root: Path) -> list[str]:
    """Every problem loading ``root`` reports, as printed (file:line:col, field, message), in order."""
    try:
        load_inventory(root)
    except InventoryError as exc:
        return [str(problem) for problem in exc.problems]
    return []


def _edit(path: Path, change: Callable[[Any], None]) -> None:
    data = load_documents(path.read_text(encoding="utf-8"))[0]
    change(data)
    path.write_text(dump_documents([data]), encoding="utf-8")


def _cluster(data: Any, name: str) -> dict[str, Any]:
    entry: dict[str, Any] = next(c for c in data["clusters"] if c["name"] == name)
    return entry


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("checkmemo") / "fleet"
    return root, make_fleet(REPO, root, 40)


def _workload(root: Path, names: list[str], cloud: str, skip: int = 0) -> str:
    inventory = load_inventory(root)
    found = [s.item.name for s in inventory.clusters if s.item.role == "workload" and s.item.cloud == cloud]
    return found[skip]


def _set_vpc(name: str, like: str) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        _cluster(data, name)["networking"]["vpcCidr"] = _cluster(data, like)["networking"]["vpcCidr"]
    return change


EDITS: dict[str, Callable[[Path, list[str]], None]] = {
    # a rule of one entry, on the edited entry
    "region": lambda root, names: _edit(root / "inventory/clusters/synthetic.yaml",
                                        lambda d: _cluster(d, names[3]).update(region="mars-north-1")),
    "network plan": lambda root, names: _edit(
        root / "inventory/clusters/synthetic.yaml",
        lambda d: _cluster(d, _workload(root, names, "aws")).update(networking={
            **_cluster(d, _workload(root, names, "aws"))["networking"], "zones": 1})),
    "node groups": lambda root, names: _edit(
        root / "inventory/clusters/synthetic.yaml",
        lambda d: _cluster(d, _workload(root, names, "aws", 1)).update(nodeGroups=[
            {"name": "a", "instanceType": "not-a-type", "minSize": 1, "maxSize": 2, "desiredSize": 3}])),
    "policies on a cluster": lambda root, names: _edit(
        root / "inventory/clusters/synthetic.yaml",
        lambda d: _cluster(d, names[7]).update(policies={"validationAction": "Audit"})),
    # a rule across entries, between an edited entry and unedited ones whose rules of one entry are skipped
    "overlapping VPCs": lambda root, names: _edit(root / "inventory/clusters/synthetic.yaml",
                                                  _set_vpc(names[9], names[2])),
    # a fleet-level edit breaking a rule of one entry on unedited entries: every key changes
    "unknown component": lambda root, names: _edit(
        root / "inventory/components.yaml",
        lambda d: d.update(components=[c for c in d["components"] if c["name"] != "envoy-gateway"])),
    "secrets backend": lambda root, names: _edit(
        root / "inventory/fleet.yaml",
        lambda d: d["fleet"]["security"]["secrets"].pop("azure", None)),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_problems_through_the_memo_equal_a_full_check(fleet: tuple[Path, list[str]], tmp_path: Path,
                                                     edit: str) -> None:
    source, names = fleet
    root = tmp_path / "fleet"
    shutil.copytree(source, root)
    inventory = load_inventory(root)
    checkmemo.store(inventory)  # what a render that succeeded stores: every entry passed
    assert len(checkmemo.passed(inventory)) == len(inventory.clusters)
    EDITS[edit](root, names)
    through_memo = _problems(root)
    shutil.rmtree(root / ".cache")
    full = _problems(root)
    assert through_memo == full and full, edit


def test_an_entry_edited_is_checked_and_the_others_skipped(fleet: tuple[Path, list[str]], tmp_path: Path) -> None:
    """After a one-cluster edit the memo lists every entry but the edited one; a foreign or unreadable file lists
    none."""
    source, names = fleet
    root = tmp_path / "fleet"
    shutil.copytree(source, root)
    checkmemo.store(load_inventory(root))
    _edit(root / "inventory/clusters/synthetic.yaml", lambda d: _cluster(d, names[5]).update(
        kubernetesVersion="1.33"))
    inventory = load_inventory(root)
    passed = checkmemo.passed(inventory)
    assert {s.item.name for s in inventory.clusters if id(s) not in passed} == {names[5]}
    path = checkmemo.memo_path(root)
    path.write_text(path.read_text(encoding="ascii").replace(checkmemo.MEMO_FORMAT, "another format/9"),
                    encoding="ascii")
    assert checkmemo.passed(load_inventory(root)) == frozenset()
    path.write_bytes(b"\xff\xfe")
    assert checkmemo.passed(load_inventory(root)) == frozenset()


def test_a_render_stores_the_checked_entries_and_a_check_does_not(fleet: tuple[Path, list[str]],
                                                                  tmp_path: Path) -> None:
    source, names = fleet
    root = tmp_path / "fleet"
    shutil.copytree(source, root)
    render(root, tmp_path / "out", check=True)
    assert not checkmemo.memo_path(root).exists()
    render(root, tmp_path / "out")
    inventory = load_inventory(root)
    assert len(checkmemo.passed(inventory)) == len(names) == len(inventory.clusters)
    assert (checkmemo.memo_path(root).parent / ".gitignore").is_file()


def test_a_plan_cache_elsewhere_writes_nothing_under_the_fleet_root(fleet: tuple[Path, list[str]],
                                                                    tmp_path: Path) -> None:
    """``--cache-dir`` (a plan cache outside ``ROOT/.cache/fleetgen``): the checked entries are not kept under the
    fleet root."""
    source, _ = fleet
    root = tmp_path / "fleet"
    shutil.copytree(source, root)
    render(root, tmp_path / "out", cache_dir=tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere").is_dir() and not checkmemo.memo_path(root).exists()
