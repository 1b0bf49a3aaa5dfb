"""Content-addressed steps: an on-disk cache keyed by everything a step reads, and single flight per key."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from generator.build.model import BUILD_FORMAT, T, digest
from generator.files import replace_file


@functools.cache
def code_fingerprint() -> str:
    """Hash of the code whose behaviour a cached step depends on (the build stage, the YAML emitter, the offline
    composition engine), as loaded by this process."""
    package = Path(__file__).resolve().parent.parent
    parts = [BUILD_FORMAT]
    names = sorted(p.relative_to(package).as_posix() for p in (package / "build").glob("*.py"))
    for name in [*names, "yamlio.py", "render/crossplane/engine.py"]:
        path = package / name
        parts.append(name + "\n" + (path.read_text(encoding="utf-8") if path.is_file() else ""))
    parts.append(_engine_version())
    return digest(*parts)


def _engine_version() -> str:
    """The composition function release that composes the hub's XRs offline (it shapes the golden files)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crossplane-function-pythonic")
    except PackageNotFoundError:
        return ""


#: A result read from the cache has its modification time moved to now when it is older than this (seconds): what
#: builds keep reading is never pruned, and a result read many times a day is written at most once.
TOUCH_AFTER = 24 * 3600


class StepCache:
    """Content-addressed JSON results on disk (``<dir>/<k[:2]>/<k>.json``); None disables it."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        folder, _, name = key.rpartition("/")
        return self.directory / (folder or key[:2]) / f"{name}.json"

    def get(self, key: str) -> Any | None:
        """The stored result for key, or None."""
        if self.directory is None:
            return None
        path = self._path(key)
        try:
            with path.open("rb") as handle:
                data = handle.read()
                if time.time() - os.fstat(handle.fileno()).st_mtime > TOUCH_AFTER:
                    with contextlib.suppress(OSError):  # a read-only cache is read all the same
                        os.utime(handle.fileno())  # used now: kept by ``prune`` (generator/build/prune.py)
            return json.loads(data)
        except (OSError, ValueError):
            return None

    def get_cluster(self, key: str) -> Any | None:
        """The last build stored for a cluster (``clusters/<key>.json``: the key it was built under, what it
        read, its Kustomizations and warnings), or None."""
        return self.get(f"clusters/{key}")

    def put_cluster(self, key: str, value: Any) -> None:
        """Replace the build stored for a cluster."""
        self.put(f"clusters/{key}", value)

    def build_path(self, key: str) -> Path:
        """Where the resources a cluster build produced under ``key`` are stored (``builds/<k[:2]>/<k>.json``,
        content-addressed like the steps: builds of a git ref and of the working tree coexist)."""
        return self._path(f"builds/{key[:2]}/{key}")

    def put_build(self, key: str, resources: Any) -> None:
        """Store the resources a cluster build produced under ``key`` (headed by the key)."""
        self.put(f"builds/{key[:2]}/{key}", {"key": key, "resources": resources})

    def has_build(self, key: str) -> bool:
        """Whether resources are stored under ``key`` (reads the few bytes that head the file)."""
        if self.directory is None:
            return False
        head = _build_head(key)
        try:  # (os-level and a string path: this runs for every unchanged cluster)
            fd = os.open(os.path.join(self.directory, "builds", key[:2], f"{key}.json"), os.O_RDONLY)
        except OSError:
            return False
        try:
            return os.read(fd, len(head)) == head
        except OSError:
            return False
        finally:
            os.close(fd)

    def get_build(self, key: str) -> Any | None:
        """The resources stored under ``key``, or None."""
        if self.directory is None:
            return None
        stored = self.get(f"builds/{key[:2]}/{key}")
        if not isinstance(stored, dict) or stored.get("key") != key or not isinstance(stored.get("resources"), dict):
            return None
        return stored["resources"]

    def put(self, key: str, value: Any) -> None:
        """Store a result atomically (safe with concurrent writers)."""
        if self.directory is None:
            return
        replace_file(self._path(key), json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))

    def put_checked(self, key: str, value: Any) -> None:
        """Store a result atomically, headed by the sha256 of its JSON text (``get_checked`` refuses a stored
        result that does not match it: truncated, damaged)."""
        if self.directory is None:
            return
        body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        replace_file(self._path(key), hashlib.sha256(body).hexdigest().encode("ascii") + b"\n" + body)

    def get_checked(self, key: str) -> Any | None:
        """The result ``put_checked`` stored for key when it matches its sha256, else None."""
        if self.directory is None:
            return None
        try:
            check, _, body = self._path(key).read_bytes().partition(b"\n")
            if check != hashlib.sha256(body).hexdigest().encode("ascii"):
                return None
            return json.loads(body)
        except (OSError, ValueError, RecursionError):
            return None


class ClusterIndex:
    """The entries of every cluster (``StepCache.get_cluster``) of one code and tool fingerprint in one file,
    ``clusters/index.json``, so that finding 1000 unchanged clusters reads one file, not 1000. Each cluster's own
    file stays the reference: an entry missing from the index, or one that no longer matches, is looked up there.
    The index is rewritten only when more than a few entries came from elsewhere (a cluster rebuilt, or read from
    its own file): those few cost less to look up again than the whole index to rewrite."""

    KEY = "clusters/index"
    FORMAT = "fleetgen-cluster-index/2"
    RESAVE_FROM = 16

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self._lock = threading.Lock()
        self._loaded: dict[str, Any] | None = None
        self._noted: dict[str, Any] = {}
        self._fresh = 0

    def get(self, cache: StepCache, entry: str) -> Any | None:
        """The indexed entry of a cluster (its ``StepCache.get_cluster`` key), or None."""
        with self._lock:
            if self._loaded is None:
                self._loaded = self._read(cache)
            return self._loaded.get(entry)

    def _read(self, cache: StepCache) -> dict[str, Any]:
        """The stored entries (each list of Kustomizations and warnings written once: see ``store``)."""
        stored = cache.get(self.KEY)
        if not isinstance(stored, dict) or stored.get("format") != self.FORMAT or stored.get(
                "fingerprint") != self.fingerprint:
            return {}
        lists, clusters = stored.get("lists"), stored.get("clusters")
        if not isinstance(lists, list) or not isinstance(clusters, dict):
            return {}
        found = {}
        for entry, value in clusters.items():
            try:
                kustomizations, warnings = lists[value["kustomizations"]], lists[value["warnings"]]
            except (TypeError, KeyError, IndexError):
                continue
            found[entry] = {**value, "kustomizations": kustomizations, "warnings": warnings}
        return found

    def note(self, entry: str, value: Any, *, indexed: bool) -> None:
        """Remember the entry a cluster was reused or rebuilt with (``indexed``: it came from the index)."""
        with self._lock:
            self._noted[entry] = value
            self._fresh += not indexed

    def store(self, cache: StepCache) -> None:
        """Rewrite the index with this run's entries over the loaded ones, if more than a few are new."""
        with self._lock:
            if self._fresh < self.RESAVE_FROM:
                return
            clusters = {**(self._loaded or {}), **self._noted}
            self._fresh = 0
        # clusters share most lists of Kustomizations and warnings: each distinct list is written once
        lists: dict[str, int] = {}
        compact = {}
        for entry, value in clusters.items():
            compact[entry] = {**value, **{field: lists.setdefault(json.dumps(value.get(field)), len(lists))
                                          for field in ("kustomizations", "warnings")}}
        cache.put(self.KEY, {"format": self.FORMAT, "fingerprint": self.fingerprint,
                             "lists": [json.loads(text) for text in lists], "clusters": compact})


def _build_head(key: str) -> bytes:
    """How a stored cluster build starts (``put`` writes the key first, compactly: ``{"key":"..."``)."""
    return ('{"key":' + json.dumps(key, ensure_ascii=False)).encode("utf-8")


class SingleFlight:
    """Compute each key once per run, even when several threads ask for it at the same time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[str, Future[Any]] = {}

    def get(self, key: str, compute: Callable[[], T]) -> T:
        """The value of key, computing it here if no other thread is."""
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if future is None:
                future = self._futures[key] = Future()
        if owner:
            try:
                future.set_result(compute())
            except BaseException as exc:
                future.set_exception(exc)
                raise
        result: T = future.result()
        return result
