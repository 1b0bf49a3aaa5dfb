"""Pruning the step cache: what no build used for ``max_age`` goes, what the current builds name stays, and a build
after a prune gives the same resources as one without it."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from _buildkit import tools, warm_synthetic_fleet

from generator import cli
from generator.bench import edit_one_cluster
from generator.build import prune as pruning
from generator.build.cache import TOUCH_AFTER, StepCache
from generator.build.fleet import build_fleet, default_cache_dir
from generator.build.model import BuildOptions, FleetBuild
from generator.render.pipeline import render

pytestmark = pytest.mark.slow  # builds of a three-cluster synthetic fleet with the real tools

MONTH = 30 * 24 * 3600


def _build(root: Path, **options: object) -> FleetBuild:
    return build_fleet(root, BuildOptions(progress=False, jobs=2, **options), tools=tools())  # type: ignore[arg-type]


def _digests(build: FleetBuild) -> dict[str, str]:
    return {p: hashlib.sha256(t.encode()).hexdigest() for p, t in build.files().items()}


def _files(cache: Path) -> dict[str, float]:
    """Every file of the cache, relative, with its modification time."""
    return {p.relative_to(cache).as_posix(): p.stat().st_mtime for p in cache.rglob("*") if p.is_file()}


def _age(cache: Path, seconds: float) -> None:
    """Move every file of the cache ``seconds`` into the past."""
    for path in cache.rglob("*"):
        if path.is_file():
            then = path.stat().st_mtime - seconds
            os.utime(path, (then, then))


def _kind(rel: str) -> str:
    """What a prune looks at: a step result, a cluster entry, a cluster's stored build; else ``other``."""
    parts = rel.split("/")
    if not re.fullmatch(r"[0-9a-f]{64}\.json", parts[-1]):
        return "other"
    if len(parts) == 2 and re.fullmatch(r"[0-9a-f]{2}", parts[0]):
        return "step"
    return parts[0] if parts[0] in ("builds", "clusters") else "other"


@pytest.fixture(scope="module")
def edited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], dict[str, str]]:
    """A three-cluster fleet built, one cluster edited and built again (its first build and the steps it no longer
    reads left in the cache), with the resources of that second build."""
    root, names = warm_synthetic_fleet(tmp_path_factory.mktemp("prune"))
    edit_one_cluster(root, names[0])
    render(root, root / "out")
    return root, names, _digests(_build(root))


@pytest.fixture()
def fleet(edited: tuple[Path, list[str], dict[str, str]], tmp_path: Path) -> tuple[Path, list[str], dict[str, str]]:
    root, names, digests = edited
    shutil.copytree(root, tmp_path / "fleet", symlinks=True)
    copy = tmp_path / "fleet"
    render(copy, copy / "out")  # the copy's own render record
    return copy, names, digests


def _due(cache: Path) -> None:
    """Make the next build prune: every file of the cache a month old, the last prune two days ago."""
    stamp = cache / pruning.STAMP
    stamp.touch()
    _age(cache, MONTH)
    then = time.time() - 2 * 24 * 3600
    os.utime(stamp, (then, then))


def test_a_build_prunes_what_no_build_used_and_keeps_what_it_names(fleet: tuple[Path, list[str], dict[str, str]]
                                                                   ) -> None:
    root, names, digests = fleet
    cache = default_cache_dir(root)
    before = _files(cache)
    assert len([rel for rel in before if _kind(rel) == "builds"]) > len(names)  # the edited cluster's first build
    _due(cache)
    again = _build(root)  # every cluster reused, then the cache pruned
    assert _digests(again) == digests and again.stats.clusters_cached == len(names)
    after = _files(cache)
    removed = set(before) - set(after)
    assert removed and {_kind(rel) for rel in removed} <= {"step", "builds", "clusters"}
    assert not [rel for rel in after if _kind(rel) == "step"]  # every step result a month old
    assert {rel for rel in before if _kind(rel) == "other"} <= set(after)  # references, plans, record...
    assert len([rel for rel in after if _kind(rel) == "builds"]) == len(names)  # one build per cluster, named
    assert len([rel for rel in after if _kind(rel) == "clusters"]) == len(names)
    assert time.time() - (cache / pruning.STAMP).stat().st_mtime < 60
    # still every cluster reused, nothing run again
    again = _build(root)
    assert _digests(again) == digests and again.stats.clusters_cached == len(names)
    # an edit after the prune builds what it builds without a cache (its steps run again)
    edit_one_cluster(root, names[1])
    render(root, root / "out")
    assert _digests(_build(root)) == _digests(_build(root, use_cache=False))


def test_prune_counts_what_it_removes_and_never_changes_a_build(fleet: tuple[Path, list[str], dict[str, str]]
                                                               ) -> None:
    """Without the build's entries (as ``fleetgen cache prune`` runs it) an old entry goes too: the cluster is
    built again, to the same resources."""
    root, _, digests = fleet
    cache = default_cache_dir(root)
    before = _files(cache)
    young = pruning.prune(cache)
    assert young.removed == 0 and _files(cache) == before  # nothing a month old
    _age(cache, MONTH)
    result = pruning.prune(cache)
    after = _files(cache)
    removed = set(before) - set(after)
    assert result.removed == len(removed) > 0 and result.removed_bytes > 0
    assert result.kept == len([rel for rel in after if _kind(rel) != "other"])
    assert _digests(_build(root)) == digests


def test_what_a_build_read_within_max_age_stays(fleet: tuple[Path, list[str], dict[str, str]]) -> None:
    """A step read by a build is touched (at most once a day), so it outlives a prune of old files."""
    root, _, _ = fleet
    cache = default_cache_dir(root)
    _age(cache, MONTH)
    step = next(Path(cache, rel) for rel in _files(cache) if _kind(rel) == "step")
    key = step.stem
    assert StepCache(cache).get(key) is not None
    touched = step.stat().st_mtime
    assert time.time() - touched < 60
    assert StepCache(cache).get(key) is not None and step.stat().st_mtime == touched  # not again within a day
    assert TOUCH_AFTER >= 3600
    pruning.prune(cache)
    assert step.exists()


def test_build_prunes_once_a_day_and_only_after_building_every_cluster(
        fleet: tuple[Path, list[str], dict[str, str]]) -> None:
    root, names, digests = fleet
    cache = default_cache_dir(root)
    stamp = cache / pruning.STAMP
    stamp.unlink(missing_ok=True)
    _age(cache, MONTH)
    assert pruning.prune_if_due(cache, ()) is None and stamp.exists()  # a cache without a stamp: pruned from now on
    assert pruning.prune_if_due(cache, ()) is None  # not due yet
    assert [rel for rel in _files(cache) if _kind(rel) == "step"]
    _due(cache)
    _build(root, clusters=(names[0],))  # one cluster selected: nothing pruned
    assert [rel for rel in _files(cache) if _kind(rel) == "step"]
    _build(root)  # every cluster: due, pruned
    assert not [rel for rel in _files(cache) if _kind(rel) == "step"]
    assert _digests(_build(root)) == digests


def test_the_cli_prunes_and_refuses_what_it_cannot(fleet: tuple[Path, list[str], dict[str, str]],
                                                   capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root, _, _ = fleet
    assert cli.main(["cache", "prune", str(root), "--max-age", "0"]) == 0
    assert "removed" in capsys.readouterr().out
    assert cli.main(["cache", "prune", str(root), "--max-age", "-1"]) == 2
    assert cli.main(["cache", "prune", str(tmp_path / "nowhere")]) == 2
    assert "no step cache" in capsys.readouterr().err


def test_a_cache_that_cannot_be_touched_is_read_all_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    cache = StepCache(tmp_path)
    cache.put("ab" + "0" * 62, {"value": 1})
    _age(tmp_path, MONTH)

    def refused(*_: object) -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr(os, "utime", refused)
    assert cache.get("ab" + "0" * 62) == {"value": 1}
