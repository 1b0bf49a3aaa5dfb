"""Incremental planning: each cluster's planned files, cached on disk under a hash of everything they are planned from.

A render after a one-cluster edit re-plans only the clusters whose inputs changed. A cluster's key hashes the
cache format, the code and data that shape planning (every module of the ``generator`` package, its templates and
data files, the Jinja/PyYAML/pydantic versions), the inventory inputs its resolved model is derived from, and
the fleet-wide inputs the per-cluster planner reads besides (the number of workload clusters the hub shards, what
other planners contribute to this cluster's layers). The inventory inputs are hashed as loaded, before
resolution: the cluster's own entry (its parsed data and file name), its environment's overlay, and every other
part of the inventory (the ``fleet`` entry, defaults, components, apps, teams, ...) but the other clusters'
entries and the overlays of other environments, which resolving one cluster does not read
(``generator.inventory.resolve``). A part added to the inventory later is in every key without a change here
(``_NOT_IN_EVERY_KEY`` names the few left out, each with why). Positions (lines, columns, an entry's index in
its list) are not hashed: a line shift elsewhere in a file re-plans nothing.

Entries live in ``<cache dir>/packs/<NN>.pack``: the clusters spread over a fixed number of pack files by a hash
of their name, each pack a JSON index line (per cluster: the key it was planned under, its files' paths,
lengths and sha256, where its texts are in the pack, a sha256 of all of that) then the texts, UTF-8; the sha256
of each text read goes on to the writer, which then does not hash it again. A render reads each
pack once and writes back only the packs holding a re-planned cluster or one that left the fleet (atomically:
a reader sees the old pack or the new one). An entry whose key, shape or digest does not match (a stale,
truncated, hand-edited or poisoned pack) is ignored and the cluster re-planned, so the cache can make a render
faster but never different. Everything fleet-wide (bases, environment overlays, contributions, the
infrastructure repo) is still planned on every render, and the inventory is still loaded and checked completely
(cross-cluster checks included) before any cache is read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import itertools
import json
import operator
import os
import shutil
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from generator.fastload import collector_paused
from generator.fingerprint import package_fingerprint, plain_bytes
from generator.inventory.entries import Inventory, Layer, Sourced
from generator.inventory.resolve import ResolvedCluster, ResolvedFleet
from generator.render.planner import Contribution, plan_cluster_files
from generator.render.writer import TextDigests, atomic_write_bytes

_HEX_OF = operator.methodcaller("hexdigest")
#: Bump when the store's layout or the meaning of a key changes.
PLAN_CACHE_FORMAT = "fleetgen-plan-cache/3"
#: Pack files the clusters are spread over: a re-planned cluster rewrites one pack (a 64th of the store).
PACKS = 64
#: Inventory fields not hashed into every cluster's key, and why; every other field is (one added later too).
_NOT_IN_EVERY_KEY = {
    "root": "where the fleet is checked out: planned texts name inventory files relative to it",
    "clusters": "a cluster's own entry is in its own key, and resolving a cluster reads no other cluster's entry",
    "overlays": "a cluster reads its own environment's overlay only, which is in its key",
    "exceptions": "read by the policy planner only, whose contributions to a cluster are in that cluster's key",
    "warnings": "messages for people, not planned",
    "_lower": "a memo of layers made from the defaults and the overlays, which are in the key themselves",
}


@functools.cache
def code_fingerprint() -> str:
    """The plan cache's format and the code and libraries that shape planned text (``package_fingerprint``)."""
    return hashlib.sha256(f"{PLAN_CACHE_FORMAT}\0{package_fingerprint()}".encode()).hexdigest()


def _digest(*parts: bytes) -> bytes:
    """sha256 over ``parts``, each length-prefixed (no two different lists of parts share a digest)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(b"%d:" % len(part))
        digest.update(part)
    return digest.digest()


def _pickled(value: Any) -> bytes:
    """``plain_bytes`` of ``value``; for a value pickle cannot write (or a cycle), bytes that match nothing (a
    miss)."""
    data = plain_bytes(value)
    return b"unpicklable\0" + os.urandom(16) if data is None else data


def input_digest(value: Any) -> bytes:
    """A digest of an inventory input as loaded (an entry, a layer, lists and mappings of them): its data and the
    name of its file (planned headers name it), not its position. An entry as validated is a function of its
    data and the code, both hashed."""
    if isinstance(value, Sourced):
        return _digest(b"entry", value.file.file.encode("utf-8", "surrogatepass"), _pickled(value.raw))
    if isinstance(value, Layer):
        return _digest(b"layer", _pickled((value.name, value.file.file if value.file else None, value.data)))
    if isinstance(value, list | tuple):
        return _digest(b"list", *(input_digest(item) for item in value))
    if isinstance(value, dict):
        return _digest(b"dict", *(_pickled(key) + input_digest(item) for key, item in value.items()))
    return _digest(b"value", _pickled(value))


def cluster_entry(source: Sourced[Any]) -> tuple[str, dict[str, Any]]:
    """What a cluster's key holds of its own entry: the name of its file (planned headers name it) and its data
    as loaded (the entry as validated is a function of it and the code), not its position."""
    return source.file.file, source.raw


def inventory_digest(inventory: Inventory) -> bytes:
    """The digest of every part of the inventory that any cluster's resolution reads (``_NOT_IN_EVERY_KEY``
    aside)."""
    return _digest(*(
        item.name.encode() + b"=" + input_digest(getattr(inventory, item.name))
        for item in dataclasses.fields(inventory) if item.name not in _NOT_IN_EVERY_KEY
    ))


def _entry_digest(key: Any, paths: Any, lengths: Any, digests: Any) -> str:
    """sha256 binding a pack entry's key, paths, text lengths and the texts' own sha256 (hex, concatenated)
    together (any JSON values: as read); each text is checked against its own sha256 when read (``_files``)."""
    return hashlib.sha256(json.dumps([PLAN_CACHE_FORMAT, key, paths, lengths, digests]).encode()).hexdigest()


def _text_digests(files: Iterable[str]) -> str:
    """The sha256 hex digests of texts as a pack stores them (UTF-8, lone surrogates kept), concatenated."""
    return "".join(hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() for text in files)


@dataclasses.dataclass(frozen=True)
class _Pack:
    """One pack file as read: its index (unchecked until an entry is used) and the texts after it."""

    entries: dict[str, Any]
    body: memoryview

    def data(self, cluster: str, key: str | None = None) -> tuple[dict[str, Any], memoryview] | None:
        """``cluster``'s entry and its texts' bytes, under ``key`` (any key if None), with the digest matching
        (which binds the paths, lengths and texts' digests as written, their types included); else None. The texts
        are checked against their digests by ``_files``."""
        entry = self.entries.get(cluster)
        if not isinstance(entry, dict) or (key is not None and entry.get("key") != key):
            return None
        start, end = entry.get("start"), entry.get("end")
        if type(start) is not int or type(end) is not int or not 0 <= start <= end <= len(self.body):
            return None
        data = self.body[start:end]
        if entry.get("digest") != _entry_digest(entry.get("key"), entry.get("paths"), entry.get("lengths"),
                                                entry.get("digests")):
            return None
        return entry, data


def _read_pack(path: Path, buffer: bytearray | None = None) -> _Pack:
    """The pack at ``path``; an absent, unreadable or malformed one as an empty pack. With ``buffer`` (as large as
    the pack, or the pack is read as empty), read into it: the pack is then valid until the buffer is reused."""
    raw: bytes | bytearray = b""
    size = 0
    try:
        with path.open("rb", buffering=0) as file:
            if buffer is None:
                raw = file.read()
                size = len(raw)
            else:
                view = memoryview(buffer)
                while size < len(view) and (count := file.readinto(view[size:])):
                    size += count
                view.release()
                raw = buffer if not file.read(1) else b""  # larger than when its size was taken: written since
                size = size if raw else 0
    except OSError:
        raw, size = b"", 0
    end = raw.find(b"\n", 0, size)
    try:
        index = json.loads(raw[:end]) if end >= 0 else None
    except ValueError:
        index = None
    if not isinstance(index, dict) or index.get("format") != PLAN_CACHE_FORMAT or not isinstance(
        index.get("entries"), dict
    ):
        return _Pack({}, memoryview(b""))
    return _Pack(index["entries"], memoryview(raw)[end + 1 : size])


def _pack_number(name: str) -> int | None:
    """The number of the pack file called ``name`` (None: not a pack file's name)."""
    stem, dot, suffix = name.partition(".")
    if dot and suffix == "pack" and len(stem) == 2 and all(c in "0123456789abcdef" for c in stem):
        number = int(stem, 16)
        return number if number < PACKS else None
    return None


def _files(entry: dict[str, Any], data: memoryview, known: TextDigests | None = None) -> dict[str, str] | None:
    """The files of an entry whose digest matched, each text checked against its sha256 (None if its paths,
    lengths, digests and texts do not fit together). With ``known``, each text's digest is recorded there for the
    writer, which then does not hash it again: the digest of the bytes just read, which are the text's UTF-8 (an
    ASCII text's bytes are its characters; another text is encoded, and one holding a lone surrogate, which the
    writer cannot encode, is not recorded)."""
    paths, lengths, digests = entry["paths"], entry["lengths"], entry.get("digests")
    try:
        text = str(data, "utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None
    if (
        type(paths) is not list or type(lengths) is not list or len(paths) != len(lengths)
        or len(set(paths)) != len(paths) or sum(lengths) != len(text)
        or type(digests) is not str or len(digests) != 64 * len(paths)
    ):
        return None
    if set(map(type, paths)) - {str} or set(map(type, lengths)) - {int} or min(lengths, default=0) < 0:
        return None
    ends = list(itertools.accumulate(lengths))
    cuts = list(map(slice, [0, *ends[:-1]], ends))
    pieces = list(map(text.__getitem__, cuts))
    exact: list[str] | None = None  # the digests recorded for the writer (None: every text's)
    if text.isascii():  # a text's bytes are its characters: each hashed where it lies in the pack (C calls)
        found = list(map(_HEX_OF, map(hashlib.sha256, map(data.__getitem__, cuts))))
    else:
        found, exact = [], []
        for piece in pieces:
            try:
                found.append(hashlib.sha256(piece.encode("utf-8")).hexdigest())
            except UnicodeEncodeError:  # a lone surrogate: checked as stored, not recorded for the writer
                found.append(hashlib.sha256(piece.encode("utf-8", "surrogatepass")).hexdigest())
                exact.append("")
            else:
                exact.append(found[-1])
    if "".join(found) != digests:
        return None
    if known is not None:
        known.add_all(pieces, found if exact is None else exact)
    return dict(zip(paths, pieces, strict=True))


class PlanCache:
    """Per-cluster planned files under ``directory`` (``None``: plan everything, store nothing)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.hits = 0
        self.misses = 0
        self.pending: dict[str, tuple[str, dict[str, str]]] = {}
        self.clusters: set[str] | None = None
        self._packs: dict[int, _Pack] = {}  # packs read whole (to be rewritten, or listed)
        self._names: dict[int, set[str]] = {}  # the clusters each pack read by ``get_many`` held
        #: the sha256 of each text read, for the writer (which then does not hash it again)
        self.text_digests = TextDigests()

    @staticmethod
    def pack_number(cluster: str) -> int:
        """Which pack holds ``cluster``'s entry."""
        return zlib.crc32(cluster.encode("utf-8", "surrogatepass")) % PACKS

    def _pack_path(self, number: int) -> Path:
        assert self.directory is not None
        return self.directory / "packs" / f"{number:02x}.pack"

    def _pack(self, number: int) -> _Pack:
        pack = self._packs.get(number)
        if pack is None:
            pack = self._packs[number] = _read_pack(self._pack_path(number))
        return pack

    def get(self, cluster: str, key: str) -> dict[str, str] | None:
        """The files stored for ``cluster`` under ``key``, or None (absent, stale or corrupt)."""
        return self.get_many({cluster: key}).get(cluster)

    def get_many(self, keys: Mapping[str, str]) -> dict[str, dict[str, str]]:
        """The files stored for each cluster of ``keys`` under its key (the absent, stale or corrupt left out):
        each pack read once, into one buffer (only the texts found become strings)."""
        if self.directory is None:
            return {}
        by_pack: dict[int, list[str]] = {}
        for cluster in keys:
            by_pack.setdefault(self.pack_number(cluster), []).append(cluster)
        sizes: dict[int, int] = {}
        for number in by_pack:
            with contextlib.suppress(OSError):
                sizes[number] = self._pack_path(number).stat().st_size
        buffer = bytearray(max(sizes.values(), default=0))
        found: dict[str, dict[str, str]] = {}
        with collector_paused():  # indexes and files: acyclic, freed by reference counting
            self._read_into(found, by_pack, sorted(sizes), buffer, keys)
        return found

    def _read_into(self, found: dict[str, dict[str, str]], by_pack: dict[int, list[str]], numbers: list[int],
                   buffer: bytearray, keys: Mapping[str, str]) -> None:
        for number in numbers:
            pack = _read_pack(self._pack_path(number), buffer)
            self._names[number] = set(pack.entries)
            for cluster in by_pack[number]:
                entry = pack.data(cluster, keys[cluster])
                files = None if entry is None else _files(*entry, self.text_digests)
                if files is not None:
                    found[cluster] = files
            pack.body.release()

    def stored(self) -> dict[str, str]:
        """The key of every well-formed entry on disk, by cluster (reads every pack)."""
        found: dict[str, str] = {}
        if self.directory is not None:
            for number in range(PACKS):
                pack = self._pack(number)
                for cluster in pack.entries:
                    entry = pack.data(cluster)
                    if entry is not None and _files(*entry) is not None:
                        found[cluster] = entry[0]["key"]
        return found

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
        """Write the packs holding a remembered entry, and those holding an entry of a cluster no longer in the
        fleet (``clusters``, when set), without it; a cache that cannot be written (read-only checkout, full
        disk) only costs the next render its speed."""
        if self.directory is None:
            self.pending.clear()
            return
        touched = {self.pack_number(cluster) for cluster in self.pending}
        if self.clusters is not None:
            with contextlib.suppress(OSError):
                for path in (self.directory / "packs").glob("*.pack"):
                    number = _pack_number(path.name)
                    held = (None if number is None else self._names[number] if number in self._names
                            else set(self._pack(number).entries))
                    if number is None or not held:  # not a pack this version writes, or nothing readable in it
                        path.unlink(missing_ok=True)
                    elif not held <= self.clusters:
                        touched.add(number)
            shutil.rmtree(self.directory / "clusters", ignore_errors=True)  # format 1: one JSON file per cluster
        try:
            for number in sorted(touched):
                self._write(number)
        except OSError:
            pass
        self.pending.clear()

    def _write(self, number: int) -> None:
        """Rewrite one pack (atomically: a reader sees the old pack or the new one) with the remembered entries,
        the well-formed entries it held of clusters still in the fleet, and nothing else; an empty pack is
        removed."""
        path = self._pack_path(number)
        pack = self._pack(number)
        mine = {cluster for cluster in self.pending if self.pack_number(cluster) == number}
        entries: dict[str, dict[str, Any]] = {}
        texts: list[bytes | memoryview] = []
        offset = 0
        for cluster in sorted(mine | set(pack.entries)):
            if cluster in mine:
                key, files = self.pending[cluster]
                paths, lengths = list(files), [len(text) for text in files.values()]
                data: bytes | memoryview = "".join(files.values()).encode("utf-8", "surrogatepass")
                digests = _text_digests(files.values())
                digest = _entry_digest(key, paths, lengths, digests)
            elif self.clusters is None or cluster in self.clusters:
                found = pack.data(cluster)
                if found is None or _files(*found) is None:
                    continue
                entry, data = found
                key, digest, paths, lengths = entry["key"], entry["digest"], entry["paths"], entry["lengths"]
                digests = entry["digests"]
            else:
                continue
            entries[cluster] = {"key": key, "digest": digest, "paths": paths, "lengths": lengths,
                                "digests": digests, "start": offset, "end": offset + len(data)}
            texts.append(data)
            offset += len(data)
        self._packs.pop(number, None)
        if not entries:
            path.unlink(missing_ok=True)
            return
        index = json.dumps({"format": PLAN_CACHE_FORMAT, "entries": entries}, separators=(",", ":"))
        path.parent.mkdir(parents=True, exist_ok=True)
        assert self.directory is not None
        ignore = self.directory / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# fleetgen's plan cache: never commit it\n*\n", encoding="utf-8")
        atomic_write_bytes(path, b"".join([index.encode() + b"\n", *texts]))


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
    (generator/render/parallel.py) can plan while the parent keeps the cache's books.
    """

    def __init__(self, cache: PlanCache, fleet: ResolvedFleet) -> None:
        self.cache, self.fleet = cache, fleet
        inventory = fleet.inventory
        # each resolved cluster is resolved from its entry's validated item (generator/inventory/resolve.py)
        self._entries = {id(source.item): source for source in inventory.clusters}
        self._workloads = sum(c.cluster.role == "workload" for c in fleet.clusters)
        self._shared = b"" if cache.directory is None else _digest(
            code_fingerprint().encode(), inventory_digest(inventory)
        )
        # every per-cluster and per-environment entry of every contribution field (a field added to Contribution
        # is in the key without an edit here); ``files`` are fleet-wide, planned outside the per-cluster planner
        self._fields = tuple(item.name for item in dataclasses.fields(Contribution) if item.name != "files")
        # per environment: a hash already fed with the shared part, the overlay and the environment's contributions
        self._environments: dict[str, tuple[Contribution, Any, list[dict[str, Any]]]] = {}

    def _environment(self, env: str, extra: Contribution) -> tuple[Any, list[dict[str, Any]]]:
        """The hash every key of a cluster of ``env`` starts from, and the contribution fields' mappings."""
        known = self._environments.get(env)
        if known is None or known[0] is not extra:
            fields = [getattr(extra, name) for name in self._fields]
            digest = hashlib.sha256(_digest(
                self._shared, input_digest(self.fleet.inventory.overlays.get(env)),
                _pickled(tuple(field.get(env) for field in fields)),
            ))
            known = self._environments[env] = (extra, digest, fields)
        return known[1], known[2]

    def key(self, cluster: ResolvedCluster, extra: Contribution) -> str | None:
        """The hash of everything ``cluster``'s files are planned from; None for a cluster not resolved from
        this fleet's inventory (planned, not cached)."""
        source = self._entries.get(id(cluster.cluster))
        if source is None or source.item is not cluster.cluster:
            return None
        start, fields = self._environment(cluster.cluster.environment, extra)
        own = tuple(field.get(cluster.name) for field in fields)
        # the hub's shards follow the number of workload clusters
        shards = self._workloads if cluster.cluster.role == "hub" else None
        digest = start.copy()
        digest.update(_pickled((cluster_entry(source), own, shards)))
        return str(digest.hexdigest())

    def plan(self, cluster: ResolvedCluster, extra: Contribution, key: str | None) -> PlannedCluster:
        """``cluster``'s files planned (not looked up), to be stored under ``key``."""
        return PlannedCluster(cluster.name, plan_cluster_files(self.fleet, cluster, extra), key)

    def look_up(
        self, clusters: Iterable[ResolvedCluster], extra: Contribution
    ) -> list[tuple[str | None, PlannedCluster | None]]:
        """Each cluster's key, and its files from the cache if stored under it (the cache read once)."""
        if self.cache.directory is None:
            return [(None, None) for _ in clusters]
        keys = [(cluster.name, self.key(cluster, extra)) for cluster in clusters]
        found = self.cache.get_many({name: key for name, key in keys if key is not None})
        return [
            (key, PlannedCluster(name, found[name], key, reused=True) if name in found else None)
            for name, key in keys
        ]

    def __call__(self, cluster: ResolvedCluster, extra: Contribution) -> PlannedCluster:
        [(key, found)] = self.look_up([cluster], extra)
        return found if found is not None else self.plan(cluster, extra, key)
