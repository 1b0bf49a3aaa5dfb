"""The build's unchanged-cluster decision from what changed since the last build (issue 15): the closure and tree
hashes of the rendered fleet are kept with the tree they were computed for (``FleetTree.stored_hashes``), and the
next build takes each one whose files did not change (``FleetTree.adopt_hashes``) instead of computing it. Every
hash so taken is the hash computed from scratch: checked here for every folder of a rendered synthetic fleet after
each kind of change (a cluster's inputs, a file every cluster reads, files added and removed, a kustomization file
that names another folder or a folder that did not exist, several changes in a row), and for a damaged, missing or
foreign record (nothing taken). The build-level tests check that a build taking the stored hashes reuses and
rebuilds exactly the clusters a build computing every hash does, with the same files."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from _buildkit import tools, warm_synthetic_fleet
from conftest import REPO

from generator.bench import edit_one_cluster, make_fleet
from generator.build.cache import StepCache
from generator.build.fleet import build_fleet
from generator.build.model import BuildOptions, FleetBuild
from generator.build.tree import FleetTree, RecordedOutput
from generator.render.pipeline import plan, render

Files = dict[str, str]


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], Files]:
    """A three-cluster synthetic fleet and its planned files."""
    root = tmp_path_factory.mktemp("hashes") / "fleet"
    names = make_fleet(REPO, root, 3, seed=7)
    return root, names, dict(plan(root).files)


def _recorded(out: Path, files: Files) -> RecordedOutput:
    """``files`` written to ``out`` with their sha256, as a render records them."""
    shutil.rmtree(out, ignore_errors=True)
    for rel, text in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text, encoding="utf-8")
    return RecordedOutput(out, {rel: hashlib.sha256(text.encode("utf-8")).hexdigest() for rel, text in files.items()})


def _hash_everything(tree: FleetTree) -> dict[str, tuple[str, str]]:
    """The closure hash and the tree hash of every folder."""
    return {folder: (tree.closure_hash(folder), tree.tree_hash(folder)) for folder in sorted(tree.dirs)}


def _stored(tree: FleetTree, binding: str = "code") -> object:
    """What a build stores, through JSON as the cache keeps it."""
    return json.loads(json.dumps(tree.stored_hashes(binding)))


def _taken_equal_computed(tmp_path: Path, states: list[Files]) -> FleetTree:
    """Hash every folder of the first tree, store; then for each next tree take the stored hashes of the one before
    (kept across trees as a build does: rewritten only when it computed many) and check every hash of every folder
    equals the hash computed from scratch. Returns the last tree that took stored hashes."""
    tree = FleetTree(_recorded(tmp_path / "out", states[0]))
    _hash_everything(tree)
    stored = _stored(tree)
    for files in states[1:]:
        tree = FleetTree(_recorded(tmp_path / "out", files))
        tree.adopt_hashes(stored, "code")
        fresh = FleetTree(RecordedOutput(tmp_path / "out", tree.files.digests))  # type: ignore[attr-defined]
        assert _hash_everything(tree) == _hash_everything(fresh)
    return tree


def _changed_closures(before: Files, after: Files, tmp_path: Path) -> set[str]:
    """The folders (of both trees) whose closure hash differs: what taking a stale stored hash would get wrong."""
    old = _hash_everything(FleetTree(_recorded(tmp_path / "old", before)))
    new = _hash_everything(FleetTree(_recorded(tmp_path / "new", after)))
    return {folder for folder in old.keys() & new.keys() if old[folder][0] != new[folder][0]}


def _check(tmp_path: Path, before: Files, after: Files) -> FleetTree:
    """``after`` takes the hashes stored for ``before`` that still hold, and only those: a closure whose hash
    changed is computed, most are taken."""
    changed = _changed_closures(before, after, tmp_path)
    assert changed  # a change the hashes see (else taking them all would pass)
    tree = _taken_equal_computed(tmp_path, [before, after])
    assert tree.hashes_adopted
    taken = set(tree._closures_taken)
    assert taken and not taken & changed
    assert len(taken) > len(tree.dirs) // 2  # most closures did not change
    return tree


def _shared_file(files: Files, tmp_path: Path) -> tuple[str, set[str]]:
    """The file (not a kustomization file) most closures reach through kustomization files from outside its folders,
    and those closures' folders."""
    tree = FleetTree(_recorded(tmp_path / "reach", files))
    reaching: dict[str, set[str]] = {}
    for folder in tree.dirs:
        for rel in tree.closure(folder):
            if folder and not rel.startswith(folder + "/") and not rel.endswith("/kustomization.yaml"):
                reaching.setdefault(rel, set()).add(folder)
    shared = max(sorted(reaching), key=lambda rel: len(reaching[rel]))
    assert len(reaching[shared]) >= 3
    return shared, reaching[shared]


def test_after_a_one_cluster_edit_the_hashes_taken_are_the_computed_ones(
        planned: tuple[Path, list[str], Files], tmp_path: Path) -> None:
    root, names, files = planned
    fleet = tmp_path / "fleet"
    shutil.copytree(root, fleet)
    edit_one_cluster(fleet, names[1])
    after = dict(plan(fleet).files)
    assert any(names[1] in folder for folder in _changed_closures(files, after, tmp_path))
    _check(tmp_path, files, after)


def test_a_file_every_cluster_reads_changes_every_closure_that_reaches_it(
        planned: tuple[Path, list[str], Files], tmp_path: Path) -> None:
    _, _, files = planned
    shared, reaching = _shared_file(files, tmp_path)
    after = {**files, shared: files[shared] + "# changed\n"}
    tree = _check(tmp_path, files, after)
    assert not reaching & set(tree._closures_taken)


@pytest.mark.parametrize("change", ["added", "removed", "added in a new folder"])
def test_a_file_added_or_removed(planned: tuple[Path, list[str], Files], tmp_path: Path, change: str) -> None:
    _, names, files = planned
    shared, _ = _shared_file(files, tmp_path)
    folder = shared.rpartition("/")[0]
    if change == "added":  # with a name other files have (see test_a_folder_added_that_... for a new name)
        name = sorted({rel.rpartition("/")[2] for rel in files} - {rel.rpartition("/")[2] for rel in files
                                                                    if rel.startswith(folder + "/")})[0]
        after = {**files, f"{folder}/{name}": "a: 1\n"}
    elif change == "removed":
        after = {rel: text for rel, text in files.items() if rel != shared}
    else:  # a new folder, below a cluster's folder, with a name other folders have
        after = {**files, f"fleet/clusters/{names[0]}/base/namespace.yaml": "a: 1\n"}
    _check(tmp_path, files, after)


def test_a_kustomization_file_that_comes_to_name_another_folder(
        planned: tuple[Path, list[str], Files], tmp_path: Path) -> None:
    _, names, files = planned
    rel = f"fleet/clusters/{names[0]}/kustomization.yaml"
    other = f"fleet/clusters/{names[2]}"
    after = {**files, rel: files[rel] + f"# - ../{names[2]}\n"}
    tree = _check(tmp_path, files, after)
    assert other in tree.reach(f"fleet/clusters/{names[0]}")[0]


def test_a_folder_added_that_a_kustomization_file_already_named(
        planned: tuple[Path, list[str], Files], tmp_path: Path) -> None:
    """A string naming a folder that does not exist names it once it is added: every closure whose kustomization
    files hold such a string changes, though none of its files did."""
    _, names, files = planned
    rel = f"fleet/clusters/{names[0]}/kustomization.yaml"
    before = {**files, rel: files[rel] + "# - ../../apps/base/extra\n"}
    after = {**before, "fleet/apps/base/extra/configs/namespace.yaml": "a: 1\n"}
    assert "extra" not in {part for path in before for part in path.split("/")}
    # "extra" is no file's or folder's name yet: the new folder could be named by strings no closure noted
    tree = FleetTree(_recorded(tmp_path / "out", before))
    _hash_everything(tree)
    stored = _stored(tree)
    again = FleetTree(_recorded(tmp_path / "out", after))
    again.adopt_hashes(stored, "code")
    assert not again.hashes_adopted
    # with "extra" a name some file has already, the closures are taken but the one naming the new folder
    named = {**before, "fleet/apps/extra": "x\n"}
    after = {**named, "fleet/apps/base/extra/configs/namespace.yaml": "a: 1\n"}
    taken = _check(tmp_path, named, after)
    assert f"fleet/clusters/{names[0]}" not in taken._closures_taken
    assert "fleet/apps/base/extra" in taken.reach(f"fleet/clusters/{names[0]}")[0]


def test_several_changes_since_the_hashes_were_stored(planned: tuple[Path, list[str], Files], tmp_path: Path) -> None:
    """Two renders (or more) between builds, the hashes not stored again in between: each tree takes what still
    holds of the first one's."""
    root, names, files = planned
    fleet = tmp_path / "fleet"
    shutil.copytree(root, fleet)
    states = [files]
    for name in names[:2]:
        edit_one_cluster(fleet, name)
        states.append(dict(plan(fleet).files))
    shared, _ = _shared_file(files, tmp_path)
    states.append({rel: text for rel, text in states[-1].items() if rel != shared})
    tree = FleetTree(_recorded(tmp_path / "out", states[0]))
    _hash_everything(tree)
    stored = _stored(tree)
    for files_now in states[1:]:
        now = FleetTree(_recorded(tmp_path / "out", files_now))
        now.adopt_hashes(stored, "code")
        assert now.hashes_adopted
        fresh = FleetTree(RecordedOutput(tmp_path / "out", now.files.digests))  # type: ignore[attr-defined]
        assert _hash_everything(now) == _hash_everything(fresh)


@pytest.mark.parametrize("damage", ["missing", "other code", "truncated", "flipped", "not a record"])
def test_a_damaged_missing_or_foreign_record_is_not_taken(planned: tuple[Path, list[str], Files], tmp_path: Path,
                                                          damage: str) -> None:
    _, _, files = planned
    tree = FleetTree(_recorded(tmp_path / "out", files))
    _hash_everything(tree)
    cache = StepCache(tmp_path / "cache")
    cache.put_checked("tree/hashes", tree.stored_hashes("code"))
    path = tmp_path / "cache" / "tree" / "hashes.json"
    data = path.read_bytes()
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":  # one digit of a stored hash
        at = data.index(b'"closures":{') + 200
        path.write_bytes(data[:at] + (b"0" if data[at:at + 1] != b"0" else b"1") + data[at + 1:])
    elif damage == "not a record":
        cache.put_checked("tree/hashes", {"format": "something else"})
    stored = cache.get_checked("tree/hashes")
    assert (stored is None) == (damage in ("missing", "truncated", "flipped"))
    shared, _ = _shared_file(files, tmp_path)
    after = FleetTree(_recorded(tmp_path / "out", {**files, shared: files[shared] + "# changed\n"}))
    after.adopt_hashes(stored, "other" if damage == "other code" else "code")
    assert not after.hashes_adopted
    assert after.hashes_computed == 0
    fresh = FleetTree(RecordedOutput(tmp_path / "out", after.files.digests))  # type: ignore[attr-defined]
    assert _hash_everything(after) == _hash_everything(fresh)
    assert after.hashes_computed == 2 * len(after.dirs)


def test_a_planned_tree_neither_stores_nor_takes_hashes(planned: tuple[Path, list[str], Files],
                                                        tmp_path: Path) -> None:
    """Without the render's record every file would have to be hashed to compare: the build computes as before."""
    _, _, files = planned
    recorded = FleetTree(_recorded(tmp_path / "out", files))
    _hash_everything(recorded)
    assert recorded.stored_hashes("code") is not None
    tree = FleetTree(files)
    assert tree.stored_hashes("code") is None
    tree.adopt_hashes(_stored(recorded), "code")
    assert not tree.hashes_adopted


# --- the build ----------------------------------------------------------------------------------------------------


def _build(root: Path) -> FleetBuild:
    return build_fleet(root, BuildOptions(progress=False, jobs=2), tools=tools())


def _hashes_path(root: Path) -> Path:
    return root / ".cache" / "fleetgen" / "tree" / "hashes.json"


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A three-cluster synthetic fleet, rendered and built (its step cache and stored hashes written)."""
    root, names = warm_synthetic_fleet(tmp_path_factory.mktemp("build-hashes"))
    assert _hashes_path(root).is_file()
    return root, names


def _copy(warm: tuple[Path, list[str]], dest: Path) -> Path:
    """A copy of the warm fleet, rendered again (a record names its root and output folder)."""
    shutil.copytree(warm[0], dest, symlinks=True)
    render(dest, dest / "out")
    return dest


def _entries(root: Path) -> dict[str, str]:
    """The key of every cluster's stored entry (its own file, the reference)."""
    found = {}
    for path in sorted((root / ".cache" / "fleetgen" / "clusters").glob("*.json")):
        if path.name != "index.json":
            found[path.name] = json.loads(path.read_text(encoding="utf-8"))["key"]
    return found


def _same_decision(warm: tuple[Path, list[str]], tmp_path: Path, change: Callable[[Path], None],
                   *, renders: int = 1) -> tuple[FleetBuild, list[str]]:
    """The build after ``change`` (and ``renders`` renders) taking the stored hashes, and the same build computing
    every hash (the stored ones removed): the same clusters reused and rebuilt, the same keys and files. Returns
    the first build and the clusters it rebuilt."""
    builds = []
    for taking in (True, False):
        root = _copy(warm, tmp_path / ("taking" if taking else "computing"))
        for _ in range(renders):
            change(root)
            render(root, root / "out")
        if not taking:
            _hashes_path(root).unlink()
        builds.append((_build(root), root))
    (fast, fast_root), (full, full_root) = builds
    assert fast.stats.record_seconds > 0 and full.stats.record_seconds > 0  # both through the render's record
    assert 0 < fast.stats.hashes_computed < full.stats.hashes_computed
    assert fast.stats.clusters_cached == full.stats.clusters_cached
    rebuilt = [n for n, c in fast.clusters.items() if c.loaded]  # (the others' resources are read on first use)
    assert rebuilt == [n for n, c in full.clusters.items() if c.loaded]
    assert _entries(fast_root) == _entries(full_root)
    assert fast.files() == full.files()
    return fast, rebuilt


@pytest.mark.slow  # builds with the real tools
def test_the_build_after_a_one_cluster_edit_decides_as_the_full_computation(warm: tuple[Path, list[str]],
                                                                            tmp_path: Path) -> None:
    _, names = warm
    _, rebuilt = _same_decision(warm, tmp_path, lambda root: edit_one_cluster(root, names[1]))
    assert rebuilt == [names[1]]


@pytest.mark.slow  # builds with the real tools
def test_the_build_after_a_shared_input_edit_decides_as_the_full_computation(warm: tuple[Path, list[str]],
                                                                            tmp_path: Path) -> None:
    def change(root: Path) -> None:
        overlay = root / "overlays" / "dev.yaml"
        text = overlay.read_text(encoding="utf-8")
        assert "eventSeverity: info" in text
        overlay.write_text(text.replace("eventSeverity: info", "eventSeverity: error"), encoding="utf-8")

    _same_decision(warm, tmp_path, change)


@pytest.mark.slow  # builds with the real tools
def test_the_build_after_two_renders_decides_as_the_full_computation(warm: tuple[Path, list[str]],
                                                                    tmp_path: Path) -> None:
    _, names = warm
    edited = iter([names[1], names[2], names[1], names[2]])
    fast, _ = _same_decision(warm, tmp_path, lambda root: edit_one_cluster(root, next(edited)), renders=2)
    assert fast.stats.clusters_cached == len(names) - 2


@pytest.mark.slow  # builds with the real tools
def test_a_hand_edited_output_file_decides_as_the_full_computation(warm: tuple[Path, list[str]],
                                                                  tmp_path: Path) -> None:
    """A file of the output edited by hand after the render: a cluster reused is reused on the recorded digests
    either way (its files are not read); the files of the cluster rebuilt are the plan's."""
    _, names = warm

    def change(root: Path) -> None:
        edit_one_cluster(root, names[0])
        render(root, root / "out")
        target = root / "out" / "fleet" / "clusters" / names[1] / "kustomization.yaml"
        target.write_text(target.read_text(encoding="utf-8") + "# edited by hand\n", encoding="utf-8")

    builds = []
    for taking in (True, False):
        root = _copy(warm, tmp_path / ("taking" if taking else "computing"))
        change(root)
        if not taking:
            _hashes_path(root).unlink()
        builds.append(_build(root))
    fast, full = builds
    assert fast.stats.hashes_computed < full.stats.hashes_computed
    assert fast.stats.clusters_cached == full.stats.clusters_cached == len(names) - 1
    assert fast.files() == full.files()


@pytest.mark.slow  # builds with the real tools
@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_corrupt_or_missing_record_of_hashes_computes_them(warm: tuple[Path, list[str]], tmp_path: Path,
                                                            damage: str) -> None:
    _, names = warm
    root = _copy(warm, tmp_path / "fleet")
    path = _hashes_path(root)
    if damage == "corrupt":
        path.write_bytes(path.read_bytes()[:-10])
    else:
        path.unlink()
    edit_one_cluster(root, names[0])
    render(root, root / "out")
    build = _build(root)
    assert build.stats.clusters_cached == len(names) - 1
    assert StepCache(root / ".cache" / "fleetgen").get_checked("tree/hashes") is not None  # written again
    again = _build(root)
    assert again.stats.hashes_computed == 0 and again.stats.clusters_cached == len(names)
    assert again.files() == build.files()
