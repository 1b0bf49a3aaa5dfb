"""Incremental planning: each cluster's planned files, cached on disk under a fingerprint of everything they read.

A render after a one-cluster edit re-plans only the clusters whose inputs changed. A cluster's key hashes
the cache format, the code and data that shape planning (every module of the ``generator`` package, its
templates and data files, the Jinja/PyYAML/pydantic versions), the fleet-wide inputs the per-cluster planner
reads (the ``fleet`` entry, the number of workload clusters the hub shards, what other planners contribute to
this cluster's layers) and the whole resolved cluster (its model, settings, environment overlay, components
and apps with their layered values, source files). The fingerprint walks the resolved model itself, so a
field added to it later is covered without a change here.

Entries live in ``<cache dir>/clusters/<cluster>.json`` (one per cluster, replaced when its key changes, removed
when the cluster leaves the fleet), each with the key it was planned under and a sha256 of its files: an entry
whose key, shape or digest does not match (a stale, truncated, hand-edited or poisoned file) is ignored and
the cluster re-planned, so the cache can make a render faster but never different. Everything fleet-wide
(bases, environment overlays, contributions, the infrastructure repo) is still planned on every render, and
the inventory is still loaded and checked completely (cross-cluster checks included) before any cache is read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import pickle
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from generator.inventory.resolve import ResolvedCluster, ResolvedFleet
from generator.render.planner import Contribution, plan_cluster_files
from generator.render.writer import atomic_write

#: Bump when the entry layout or the meaning of a key changes.
PLAN_CACHE_FORMAT = "fleetgen-plan-cache/1"
_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")
_DISTRIBUTIONS = ("jinja2", "pyyaml", "pydantic", "pydantic-core", "ruamel.yaml")


@functools.cache
def code_fingerprint() -> str:
    """Hash of the generator package's modules, templates and data files (not the vendored schemas, which
    planning does not read) and of the libraries that shape the rendered text."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(PLAN_CACHE_FORMAT.encode())
    files = [
        *package.rglob("*.py"),
        *(p for p in (package / "templates").rglob("*") if p.is_file()),
        *(p for p in (package / "data").glob("*.yaml")),
    ]
    for path in sorted(p for p in files if "__pycache__" not in p.parts):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for name in _DISTRIBUTIONS:
        try:
            digest.update(f"{name}={version(name)}\0".encode())
        except PackageNotFoundError:
            digest.update(f"{name}=\0".encode())
    return digest.hexdigest()


class Fingerprints:
    """Content hashes of resolved-model objects; objects shared between clusters (components, apps, teams,
    environment overlays, models) are hashed once per render."""

    def __init__(self) -> None:
        self._memo: dict[int, tuple[Any, bytes]] = {}

    def of(self, value: Any) -> bytes:
        """A digest that differs whenever ``value`` (and so anything planned from it) differs."""
        if isinstance(value, BaseModel) or dataclasses.is_dataclass(value):
            known = self._memo.get(id(value))
            if known is not None and known[0] is value:
                return known[1]
            digest = self._object(value)
            self._memo[id(value)] = (value, digest)  # keeps the object alive, so its id is not reused
            return digest
        if isinstance(value, list | tuple) and any(
            isinstance(item, BaseModel) or dataclasses.is_dataclass(item) for item in value
        ):
            parts = [type(value).__name__.encode(), *(self.of(item) for item in value)]
            return hashlib.sha256(b"\0".join(parts)).digest()
        # plain data (values, labels, names): pickle tells str from int keys and keeps insertion order
        return hashlib.sha256(_pickled(value)).digest()

    def _object(self, value: Any) -> bytes:
        name = f"{type(value).__module__}.{type(value).__qualname__}".encode()
        if isinstance(value, BaseModel):
            # python mode: JSON mode would write infinities and NaN as null (pickle keeps them apart)
            dumped = value.model_dump(mode="python", by_alias=True)
            return hashlib.sha256(name + b"\0" + _pickled(dumped)).digest()
        parts = [name]
        for item in dataclasses.fields(value):
            if item.compare:  # provenance (compare=False) is for messages and the overview, not the plan
                parts.append(item.name.encode() + b"=" + self.of(getattr(value, item.name)))
        return hashlib.sha256(b"\0".join(parts)).digest()


def _pickled(value: Any) -> bytes:
    """Bytes equal only for equal values; for a value pickle cannot write, bytes that match nothing (a miss)."""
    try:
        return pickle.dumps(value, protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError):
        return b"unpicklable\0" + os.urandom(16)


def _files_digest(files: dict[str, str]) -> str:
    """sha256 over every (path, text), length-prefixed so no two different plans share a digest."""
    digest = hashlib.sha256()
    for path in sorted(files):
        name, text = path.encode("utf-8", "surrogatepass"), files[path].encode("utf-8", "surrogatepass")
        digest.update(b"%d:%d:" % (len(name), len(text)) + name + text)
    return digest.hexdigest()


class PlanCache:
    """Per-cluster planned files under ``directory`` (``None``: plan everything, store nothing)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.hits = 0
        self.misses = 0
        self.pending: dict[str, tuple[str, dict[str, str]]] = {}
        self.clusters: set[str] | None = None

    def _path(self, cluster: str) -> Path:
        assert self.directory is not None
        name = cluster if _SAFE_NAME.match(cluster) else hashlib.sha256(cluster.encode()).hexdigest()
        return self.directory / "clusters" / f"{name}.json"

    def get(self, cluster: str, key: str) -> dict[str, str] | None:
        """The files stored for ``cluster`` under ``key``, or None (absent, stale or corrupt)."""
        if self.directory is None:
            return None
        try:
            entry = json.loads(self._path(cluster).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("format") != PLAN_CACHE_FORMAT or entry.get("key") != key:
            return None
        files = entry.get("files")
        if (
            not isinstance(files, dict)
            or not all(isinstance(p, str) and isinstance(t, str) for p, t in files.items())
            or entry.get("digest") != _files_digest(files)
        ):
            return None
        return files

    def put(self, cluster: str, key: str, files: dict[str, str]) -> None:
        """Remember ``files`` for ``cluster`` under ``key``; written by ``store`` once the command succeeded (a
        command refused for a bad input writes nothing, not even here)."""
        self.pending[cluster] = (key, files)

    def record(self, planned: PlannedCluster) -> dict[str, str]:
        """Count a cluster planned by ``ClusterPlanner`` as a hit or a miss (a miss remembered for ``store``);
        its files."""
        if planned.key is not None:
            if planned.reused:
                self.hits += 1
            else:
                self.misses += 1
                self.put(planned.name, planned.key, planned.files)
        return planned.files

    def store(self) -> None:
        """Write the remembered entries, and remove those of clusters no longer in the fleet."""
        for cluster, (key, files) in sorted(self.pending.items()):
            self._write(cluster, key, files)
        self.pending.clear()
        if self.clusters is not None:
            self.prune(self.clusters)

    def _write(self, cluster: str, key: str, files: dict[str, str]) -> None:
        """Store one entry atomically (a reader sees the old entry or the new one); a cache that cannot be
        written (read-only checkout, full disk) only costs the next render its speed."""
        if self.directory is None:
            return
        path = self._path(cluster)
        entry = {"format": PLAN_CACHE_FORMAT, "key": key, "digest": _files_digest(files), "files": files}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            ignore = self.directory / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# fleetgen's plan cache: never commit it\n*\n", encoding="utf-8")
            atomic_write(path, json.dumps(entry, ensure_ascii=False, separators=(",", ":")))
        except OSError:
            return

    def prune(self, clusters: set[str]) -> None:
        """Remove the entries of clusters no longer in the fleet (not another render's temporary files)."""
        if self.directory is None or not (self.directory / "clusters").is_dir():
            return
        keep = {self._path(name).name for name in clusters}
        for path in (self.directory / "clusters").iterdir():
            if path.name not in keep and not path.name.startswith("."):
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)


@dataclasses.dataclass(frozen=True)
class PlannedCluster:
    """One cluster's own files, and the plan cache key they were planned or found under (None without a cache)."""

    name: str
    files: dict[str, str]
    key: str | None = None
    reused: bool = False


class ClusterPlanner:
    """Plans one cluster's own files for ``plan_fleet``, reusing the plan cache entries whose key still matches.

    It only reads the cache: counting and storing are ``PlanCache.record``'s, so a worker process
    (generator/render/parallel.py) can plan and look up while the parent keeps the cache's books.
    """

    def __init__(self, cache: PlanCache, fleet: ResolvedFleet) -> None:
        self.cache, self.fleet = cache, fleet
        self._prints = Fingerprints()
        self._workloads = sum(c.cluster.role == "workload" for c in fleet.clusters)
        self._shared = b"" if cache.directory is None else hashlib.sha256(
            code_fingerprint().encode() + b"\0" + self._prints.of(fleet.fleet)
        ).digest()

    def key(self, cluster: ResolvedCluster, extra: Contribution) -> str:
        """The hash of everything ``cluster``'s files are planned from."""
        name, env = cluster.name, cluster.cluster.environment
        # every per-cluster and per-environment entry of every contribution field (a field added to Contribution
        # is in the key without an edit here); ``files`` are fleet-wide, planned outside this function
        reads: list[Any] = [
            (item.name, getattr(extra, item.name).get(name), getattr(extra, item.name).get(env))
            for item in dataclasses.fields(extra) if item.name != "files"
        ]
        reads.append(self._workloads if cluster.cluster.role == "hub" else None)  # the hub's shards follow the spokes
        return hashlib.sha256(self._shared + self._prints.of(cluster) + self._prints.of(reads)).hexdigest()

    def __call__(self, cluster: ResolvedCluster, extra: Contribution) -> PlannedCluster:
        if self.cache.directory is None:
            return PlannedCluster(cluster.name, plan_cluster_files(self.fleet, cluster, extra))
        key = self.key(cluster, extra)
        files = self.cache.get(cluster.name, key)
        if files is not None:
            return PlannedCluster(cluster.name, files, key, reused=True)
        return PlannedCluster(cluster.name, plan_cluster_files(self.fleet, cluster, extra), key)

