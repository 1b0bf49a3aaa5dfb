"""Pruning the build's step cache: what no build has used for a while is removed, what the current builds name is
kept.

The step cache (generator/build/cache.py) only ever grows: every edit adds the new results of the steps it changed
(``<k[:2]>/<key>.json``), every rebuilt cluster a new copy of its resources (``builds/<k[:2]>/<key>.json``) and,
after a change of fleetgen or the tools, a new entry per cluster (``clusters/<key>.json``). A synthetic fleet of
1000 clusters holds 1.1 GB after a cold build and a few edits. ``prune`` removes, among those three kinds of
files only (the index, the tree's references, the plan cache, the render record, the stat cache and the chart
cache are left alone), what is older than ``max_age``:

- a step result, by its modification time, which a build that reads it moves forward (at most once a day:
  ``StepCache.get``), so a step that some build read or wrote within ``max_age`` is kept;
- a cluster entry that neither the index (``clusters/index.json``) lists nor the build that prunes reads (an entry
  of an older fleetgen or older tools; the others are what the next build reuses, whatever their age; a cluster
  entry a build reads is touched like a step, so ``fleetgen cache prune`` keeps those used within ``max_age``);
- a cluster's stored resources that no remaining entry names (a cluster's build before its last change; the
  resources of a build of a git ref, which ``diff`` reads, while that ref's entries are the latest).

A build that finds a removed step runs it again, so pruning can make a later build slower, never different.
``build`` prunes by itself at most once a day (``prune_if_due``, after a successful build of every cluster, its
entries kept); ``fleetgen cache prune`` prunes at once.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

#: What a build does not use for this long is removed (seconds).
DEFAULT_MAX_AGE = 14 * 24 * 3600
#: How often ``build`` prunes by itself (seconds), as told by the stamp file's modification time.
PRUNE_INTERVAL = 24 * 3600
#: The stamp file, in the step cache's folder.
STAMP = "pruned"
_KEY_FILE = re.compile(r"[0-9a-f]{64}\.json")
_SHARD = re.compile(r"[0-9a-f]{2}")


@dataclass
class Pruned:
    """What a prune removed and kept (files of the three kinds it looks at, and their bytes)."""

    removed: int = 0
    removed_bytes: int = 0
    kept: int = 0
    kept_bytes: int = 0

    def summary(self) -> str:
        """One line for people."""
        return (f"removed {self.removed} files ({self.removed_bytes / 2**20:.1f} MiB), "
                f"kept {self.kept} ({self.kept_bytes / 2**20:.1f} MiB)")


def _key_files(folder: Path) -> list[os.DirEntry[str]]:
    """The ``<key>.json`` files of one folder (none if it is missing)."""
    try:
        with os.scandir(folder) as entries:
            return [entry for entry in entries if _KEY_FILE.fullmatch(entry.name) and entry.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _shards(folder: Path) -> list[Path]:
    """The ``<k[:2]>`` sub-folders of ``folder``."""
    try:
        with os.scandir(folder) as entries:
            return [Path(entry.path) for entry in entries if _SHARD.fullmatch(entry.name) and entry.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _indexed(cache_dir: Path) -> dict[str, object]:
    """The cluster entries the index lists, by entry (``clusters/index.json``: ``{"clusters": {entry: value}}``,
    generator/build/cache.py ``ClusterIndex``)."""
    index = _read_json(cache_dir / "clusters" / "index.json")
    clusters = index.get("clusters") if isinstance(index, dict) else None
    return clusters if isinstance(clusters, dict) else {}


def _key_of(entry: object) -> str | None:
    """The key of the build a cluster entry names."""
    key = entry.get("key") if isinstance(entry, dict) else None
    return key if isinstance(key, str) else None


def prune(cache_dir: Path, *, max_age: float = DEFAULT_MAX_AGE, now: float | None = None,
          live: Collection[str] = ()) -> Pruned:
    """Remove from the step cache at ``cache_dir`` the step results, cluster entries and cluster resources older
    than ``max_age`` seconds (see the module's text) but the entries the index lists or ``live`` names (the entries
    of the build that prunes) and the resources those name; return what was removed and kept."""
    cutoff = (time.time() if now is None else now) - max_age
    result = Pruned()

    def remove_or_keep(entry: os.DirEntry[str], remove: bool) -> bool:
        try:
            size = entry.stat().st_size
            if remove:
                os.unlink(entry.path)
                result.removed += 1
                result.removed_bytes += size
                return True
        except FileNotFoundError:  # removed meanwhile (another prune)
            return True
        result.kept += 1
        result.kept_bytes += size
        return False

    def old(entry: os.DirEntry[str]) -> bool:
        try:
            return entry.stat().st_mtime < cutoff
        except FileNotFoundError:
            return False

    for shard in _shards(cache_dir):
        for entry in _key_files(shard):
            remove_or_keep(entry, old(entry))
    listed = _indexed(cache_dir)
    named = {key for key in map(_key_of, listed.values()) if key is not None}
    kept = set(listed).union(live)
    for entry in _key_files(cache_dir / "clusters"):
        if not remove_or_keep(entry, entry.name.removesuffix(".json") not in kept and old(entry)):
            key = _key_of(_read_json(Path(entry.path)))
            if key is not None:
                named.add(key)
    for shard in _shards(cache_dir / "builds"):
        for entry in _key_files(shard):
            remove_or_keep(entry, entry.name.removesuffix(".json") not in named and old(entry))
    return result


def prune_if_due(cache_dir: Path, live: Collection[str], *, interval: float = PRUNE_INTERVAL,
                 max_age: float = DEFAULT_MAX_AGE) -> Pruned | None:
    """``prune`` (keeping the cluster entries ``live`` names) when the last one is ``interval`` seconds old or more
    (the stamp file's time; a cache without one gets one and is pruned from then on); None when it was not due or
    the cache cannot be written."""
    stamp = cache_dir / STAMP
    try:
        last = stamp.stat().st_mtime
    except FileNotFoundError:
        last = None
    except OSError:
        return None
    now = time.time()
    if last is not None and now - last < interval:
        return None
    try:
        stamp.touch()
    except OSError:
        return None
    return None if last is None else prune(cache_dir, max_age=max_age, now=now, live=live)
