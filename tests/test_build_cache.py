"""The build's per-cluster cache (issue 15): after an edit, an unchanged cluster costs a lookup of its key (its
resources are read from the cache only when used), and the fleet's build is the same, file for file, as a full
build without any cache. A change to a shared folder or a chart still rebuilds every cluster that read it."""

from __future__ import annotations

import posixpath
import re
import shutil
from pathlib import Path

import pytest
from _buildkit import tools
from conftest import REPO

from generator.bench import edit_one_cluster, make_fleet
from generator.build.cache import StepCache
from generator.build.fleet import build_fleet
from generator.build.model import KUSTOMIZATION_FILES, BuildError, BuildOptions, FleetBuild
from generator.build.tree import FleetTree

pytestmark = pytest.mark.slow  # cold builds of a four-cluster synthetic fleet with the real tools


def _build(root: Path, cache: Path | None) -> FleetBuild:
    return build_fleet(root, BuildOptions(cache_dir=cache, use_cache=cache is not None, progress=False, jobs=2),
                       tools=tools())


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """A four-cluster synthetic fleet and a step cache warmed by building it once."""
    base = tmp_path_factory.mktemp("build-cache")
    names = make_fleet(REPO, base / "fleet", 4, seed=7)
    _build(base / "fleet", base / "cache")
    return base / "fleet", base / "cache", names


@pytest.fixture()
def fleet(warm: tuple[Path, Path, list[str]], tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A copy of the warm fleet and its cache this test may change."""
    root, cache, names = warm
    shutil.copytree(root, tmp_path / "fleet")
    shutil.copytree(cache, tmp_path / "cache")
    return tmp_path / "fleet", tmp_path / "cache", names


def test_after_a_one_cluster_edit_the_others_are_lookups_and_the_files_are_a_full_builds(
        fleet: tuple[Path, Path, list[str]]) -> None:
    root, cache, names = fleet
    edited = names[2]
    edit_one_cluster(root, edited)
    fast = _build(root, cache)
    assert fast.stats.clusters_cached == len(names) - 1
    assert [n for n, c in fast.clusters.items() if c.loaded] == [edited]  # nothing read for the others yet
    assert fast.warnings == _build(root, cache).warnings  # from the stored entries, without the resources
    full = _build(root, None)
    assert fast.files() == full.files()
    assert fast.clusters == full.clusters
    for name in names:
        assert fast.clusters[name].kustomizations == full.clusters[name].kustomizations
    again = _build(root, cache)
    assert again.stats.clusters_cached == len(names) and again.files() == full.files()


def test_a_changed_shared_folder_or_chart_rebuilds_the_clusters_that_read_it(
        fleet: tuple[Path, Path, list[str]]) -> None:
    root, cache, names = fleet
    template = root / "charts" / "service" / "templates" / "service.yaml"
    template.write_text(template.read_text(encoding="utf-8") + "{{/* changed */}}\n", encoding="utf-8")
    chart = _build(root, cache)
    rebuilt = [n for n, c in chart.clusters.items() if c.loaded]  # before anything reads the stored ones
    users = [n for n in names if any("/helmrelease." in p and p.count("/") == 2 for p in chart.clusters[n].resources)]
    assert users and sorted(rebuilt) == sorted(users)
    assert chart.stats.clusters_cached == len(names) - len(users)
    overlay = root / "overlays" / "dev.yaml"  # the dev clusters' shared folders (apps, alerts) change
    text = overlay.read_text(encoding="utf-8")
    assert "eventSeverity: info" in text and 'tag: "0.19.3"' in text
    overlay.write_text(text.replace("eventSeverity: info", "eventSeverity: error").replace(
        'tag: "0.19.3"', 'tag: "0.19.4"'), encoding="utf-8")
    shared = _build(root, cache)
    rebuilt = [n for n, c in shared.clusters.items() if c.loaded]
    dev = [n for n in names if n.startswith("dev-")]
    assert dev and set(dev) <= set(rebuilt)
    assert shared.stats.clusters_cached <= len(names) - len(dev)
    assert shared.files() == _build(root, None).files()


def test_a_missing_or_replaced_stored_build_is_rebuilt_not_trusted(fleet: tuple[Path, Path, list[str]]) -> None:
    root, cache, names = fleet
    stored = sorted((cache / "builds").rglob("*.json"))
    assert len(stored) == len(names)
    stored[0].unlink()
    other = stored[2].read_text(encoding="utf-8")
    stored[1].write_text(other, encoding="utf-8")  # another key's build under this key
    build = _build(root, cache)
    assert build.stats.clusters_cached == len(names) - 2
    assert build.files() == _build(root, None).files()


def test_a_stored_build_that_vanishes_before_it_is_read_fails_naming_the_cluster(
        fleet: tuple[Path, Path, list[str]]) -> None:
    root, cache, names = fleet
    build = _build(root, cache)
    assert build.stats.clusters_cached == len(names)
    shutil.rmtree(cache / "builds")
    with pytest.raises(BuildError, match=f"cluster {next(iter(build.clusters))}: its stored build"):
        build.files()


def test_the_stored_build_is_headed_by_its_key(tmp_path: Path) -> None:
    cache = StepCache(tmp_path)
    key = "ab" * 32
    assert not cache.has_build(key) and cache.get_build(key) is None
    cache.put_build(key, {"a/b.yaml": ["v1", "ConfigMap", "ns", "b", "a", "text"]})
    assert cache.has_build(key)
    assert cache.get_build(key) == {"a/b.yaml": ["v1", "ConfigMap", "ns", "b", "a", "text"]}
    assert not cache.has_build("cd" * 32) and not StepCache(None).has_build(key)


# --- the input closure: the fast scan against the reference one ---------------------------------------------

_TOKEN = re.compile(r"""'([^'\n]*)'|"([^"\n]*)"|([^\s,\[\]{}'"#]+)""")


def _reference_closure(tree: FleetTree, directory: str, active: set[str]) -> set[str]:
    """The input closure as first written: every string of every kustomization file, resolved one by one."""
    active.add(directory)
    files = set(tree.below(directory))
    for rel in list(files):
        if posixpath.basename(rel) not in KUSTOMIZATION_FILES:
            continue
        base = posixpath.dirname(rel)
        for match in _TOKEN.finditer(tree.files[rel]):
            token = next(g for g in match.groups() if g is not None).removesuffix(":")
            if not token or len(token) > 1024:
                continue
            target = posixpath.normpath(posixpath.join(base, token.removeprefix("file://")))
            target = "" if target == "." else target
            if target.startswith("../") or target == "..":
                continue
            if target in tree.files:
                files.add(target)
            elif target in tree.dirs and target not in active and not (
                target == directory or target.startswith(directory + "/") if directory else True
            ):
                files |= _reference_closure(tree, target, active)
    active.discard(directory)
    return files


def test_the_closure_of_every_folder_is_the_reference_closure() -> None:
    from generator.render.pipeline import plan

    files = plan(REPO).files
    tricky = {  # quoted, file://, trailing slashes, dots, a cycle, a name no file has, a path above the root
        "x/kustomization.yaml": "resources:\n- 'file://../y/'\n- \"./z.yaml\"\n- ../y/./a.yaml\n- nothing-here\n"
                                "- ../../outside\n- ./\n- .\n- ..\npatches: [{path: 'sub/p.yaml:'}]\n",
        "x/z.yaml": "z", "x/sub/p.yaml": "p", "y/a.yaml": "a", "w/q.yaml": "q",
        "y/kustomization.yaml": "resources: [../x, a.yaml, '', \"\"]\n",
    }
    for case in (files, tricky):
        tree = FleetTree(case)
        assert len(tree.dirs) > 3
        for directory in sorted(tree.dirs):
            assert tree.closure(directory) == _reference_closure(tree, directory, set()), directory
