"""The fleet-wide planners' memo: each cluster's part of a fleet-wide planner (its secret store, issuer, ingest
credential, infrastructure cluster object, hub spoke, FLEET.md rows), kept on disk under a key of everything that
part reads.

The per-cluster plan cache (generator/render/incremental.py) skips the clusters' own folders; the fleet-wide
planners (policies, issuers, ingest, the infrastructure repo, the hub's spokes, the overview) still visit every
cluster on every render. Here each such visit is a pure function of (this cluster, fleet-level inputs) returning
finished text, and a render after a one-cluster edit recomputes that cluster's parts and reads the others'.

A part's key hashes the memo format, the code fingerprint (every module, template and data file, the libraries'
versions: ``incremental.code_fingerprint``), the part's name, the **fleet digest** (the whole inventory except the
clusters: the ``fleet`` entry, defaults, overlays, components, apps, teams, exceptions, with their file names), the
**cluster digest** (the cluster's entry as written and its file name: with the fleet digest, everything its
resolved model is made of, generator/inventory/resolve.py) and every other value the part reads, passed by the
planner that calls it (the hub's digest, a failover peer's digest, the number of hub shards, the file:line
positions FLEET.md shows). Neither digest holds positions: a part that shows one has it in its key, or leaves it
out of its text to be filled in fresh (FLEET.md's override rows); the other parts show file names only, and
positions only in error messages, which a stored part never had (it is stored once the command succeeded).

Entries live in ``<plan cache>/planners/<part>.memo``: one record per entry (a head line with a sha256 of the
record, then its texts without escaping), appended once the command succeeded (``MemoizingPlanCache.store``), a
later record of an entry overriding an earlier one; a file is rewritten without its dead records when they
outnumber the live ones, or when it does not end with a whole record. A record whose digest, shape or key does not
match (a torn write, a hand edit, a stale entry) is ignored and the part recomputed, so the memo can make a render
faster, never different.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.files import replace_file
from generator.fingerprint import plain_bytes
from generator.inventory import checkmemo
from generator.inventory.entries import Inventory
from generator.inventory.resolve import ResolvedCluster, ResolvedFleet
from generator.render.incremental import PlanCache, code_fingerprint

#: Bump when the entry layout or the meaning of a key changes.
MEMO_FORMAT = "fleetgen-planner-memo/1"
#: Dead lines tolerated before a part's file is rewritten: beyond this many plus the live entries.
SLACK_LINES = 64


def fleet_digest(inventory: Inventory) -> bytes | None:
    """A digest of every inventory entry but the clusters, as written, with the file each is in (None: the
    inventory holds a value pickle cannot write; then nothing is memoized)."""
    layers: list[tuple[str, str, Any, Any, str | None]] = [
        ("", inventory.defaults.name, inventory.defaults.data, inventory.defaults.path,
         inventory.defaults.file.file if inventory.defaults.file else None)]
    layers += [(name, layer.name, layer.data, layer.path, layer.file.file if layer.file else None)
               for name, layer in sorted(inventory.overlays.items())]
    entries = [(section, [(s.file.file, s.path[0], s.raw) for s in getattr(inventory, section)])
               for section in ("components", "apps", "teams", "exceptions")]
    data = plain_bytes((MEMO_FORMAT, inventory.fleet.file.file, inventory.fleet.raw, layers, entries))
    return None if data is None else hashlib.sha256(data).digest()


class Identities:
    """The fleet digest and each cluster's digest of one resolved fleet, computed once, on first use."""

    def __init__(self, fleet: ResolvedFleet) -> None:
        self.fleet = fleet
        self._fleet: bytes | None = None
        self._clusters: dict[str, bytes] | None = None
        self.usable = True

    @property
    def fleet_level(self) -> bytes | None:
        """The fleet digest (None: not memoizable)."""
        if self._fleet is None and self.usable:
            self._fleet = fleet_digest(self.fleet.inventory)
            self.usable = self._fleet is not None
        return self._fleet

    def cluster(self, name: str) -> bytes | None:
        """The digest of cluster ``name``: the fleet digest, its entry as written and its file (None: no such
        cluster, or not memoizable)."""
        if self._clusters is None:
            base = self.fleet_level
            self._clusters = {}
            if base is None:
                return None
            # each entry's digest as the checks' memo computed it for this inventory (inventory/checkmemo.py)
            entries = checkmemo.entry_digests(self.fleet.inventory)
            if len(entries) != len(self.fleet.inventory.clusters):
                self.usable = False
                return None
            for source in self.fleet.inventory.clusters:
                self._clusters[source.item.name] = hashlib.sha256(base + entries[id(source)]).digest()
        return self._clusters.get(name)


Texts = dict[str, str]


def _part_prefix(name: str) -> bytes:
    """What every key of part ``name`` starts with: a digest of the memo format, the code fingerprint and the name
    (a key is the sha256 of it, the identity, a NUL and the pickled inputs)."""
    return hashlib.sha256(f"{MEMO_FORMAT}\0{code_fingerprint()}\0{name}\0".encode()).digest()


def _record(entry: str, key: str, texts: Texts) -> bytes:
    """One entry as stored: ``<sha256> <entry> <key> <index length> <length>`` on a line, then the index (each
    text's name and length in characters, tab-separated) and the texts themselves, back to back, in ``<length>``
    bytes of UTF-8 (no escaping: a record is read with one decode and sliced)."""
    index = "\t".join(f"{name}\t{len(text)}" for name, text in texts.items())
    chunk = (index + "".join(texts.values())).encode("utf-8", "surrogatepass")
    head = f"{entry or '-'} {key}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(head + b"\n" + chunk).hexdigest().encode()
    return b"%s %s %d %d\n%s" % (digest, head, len(index), len(chunk), chunk)


def _count(path: Path) -> int:
    """The number of records of a part's file, by their head lines alone (``UNREADABLE`` as ``_read`` says it)."""
    try:
        data = path.read_bytes()
    except OSError:
        return 0
    records, position = 0, 0
    while position < len(data):
        end_of_head = data.find(b"\n", position)
        fields = data[position:end_of_head].split(b" ") if end_of_head >= 0 else []
        if len(fields) != 5 or not fields[4].isdigit():
            return UNREADABLE
        records += 1
        position = end_of_head + 1 + int(fields[4])
    return records if position == len(data) else UNREADABLE


#: The number of records ``_read`` reports for a file that does not end where its last readable record ends (a
#: torn write, another format): ``store`` then rewrites it, since nothing appended to it could be read.
UNREADABLE = 1 << 40


def _read(path: Path) -> tuple[dict[str, tuple[str, Texts]], int]:
    """The valid entries of a part's file (the last record of an entry wins: the earlier ones are neither checked nor
    decoded), and the number of records (``UNREADABLE`` when the file does not end with a whole record). A last
    record whose digest or shape does not match is ignored (its entry is recomputed); a length that cannot be read
    ends the file there."""
    try:
        data = path.read_bytes()
    except OSError:
        return {}, 0
    last: dict[bytes, tuple[list[bytes], int, int]] = {}
    records, position = 0, 0
    while position < len(data):
        end_of_head = data.find(b"\n", position)
        fields = data[position:end_of_head].split(b" ") if end_of_head >= 0 else []
        if len(fields) != 5 or not fields[3].isdigit() or not fields[4].isdigit():
            break
        start = end_of_head + 1
        end = start + int(fields[4])
        if end > len(data):
            break
        records += 1
        last[fields[1]] = (fields, start, end)
        position = end
    entries: dict[str, tuple[str, Texts]] = {}
    view = memoryview(data)  # each record's bytes hashed and decoded where they are, not copied first
    for fields, start, end in last.values():
        chunk = view[start:end]
        digest = hashlib.sha256(b"".join((fields[1], b" ", fields[2], b"\n")))
        digest.update(chunk)
        if digest.hexdigest().encode() != fields[0]:
            continue
        try:
            text = str(chunk, "utf-8", "surrogatepass")
            middle = int(fields[3])
            index = text[:middle].split("\t") if middle else []
            texts: Texts = {}
            offset = middle
            for name, size in zip(index[::2], index[1::2], strict=True):
                texts[name] = text[offset:offset + int(size)]
                offset += int(size)
        except ValueError:
            continue
        if offset != len(text):
            continue
        entry = fields[1].decode("utf-8", "surrogatepass")
        entries["" if entry == "-" else entry] = (fields[2].decode("ascii", "replace"), texts)
    return entries, records if position == len(data) else UNREADABLE


@dataclass
class _Part:
    """One part's entries as read, and those planned by this render (written by ``store``)."""

    entries: dict[str, tuple[str, Texts]]
    lines: int
    fresh: dict[str, tuple[str, Texts]] = field(default_factory=dict)
    #: the file was not read in this process (a worker planned the part): ``entries`` holds only what is stored
    unread: bool = False


class PlannerMemo:
    """The per-cluster parts of the fleet-wide planners, read from and (``store``) written to ``directory``
    (``None``: every part is computed, nothing read or written)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._parts: dict[str, _Part] = {}
        self._identities: Identities | None = None
        self._prefixes: dict[str, bytes] = {}
        self.hits = 0
        self.misses = 0

    def _ids(self, fleet: ResolvedFleet) -> Identities:
        if self._identities is None or self._identities.fleet is not fleet:
            self._identities = Identities(fleet)
        return self._identities

    def _part(self, name: str) -> _Part:
        part = self._parts.get(name)
        if part is None:
            assert self.directory is not None
            entries, lines = _read(self.directory / f"{name}.memo")
            part = self._parts[name] = _Part(entries, lines)
        return part

    def key(self, fleet: ResolvedFleet, name: str, cluster: ResolvedCluster | None, inputs: Sequence[Any]
            ) -> str | None:
        """The key of part ``name`` of ``cluster`` (None: a fleet-level part) with the other ``inputs`` it reads;
        None when it cannot be memoized."""
        ids = self._ids(fleet)
        identity = ids.fleet_level if cluster is None else ids.cluster(cluster.name)
        extra = plain_bytes(tuple(inputs)) if inputs else b""
        if identity is None or extra is None:
            return None
        prefix = self._prefixes.get(name)
        if prefix is None:
            prefix = self._prefixes[name] = _part_prefix(name)
        return hashlib.sha256(b"".join((prefix, identity, b"\0", extra))).hexdigest()

    def prepare(self, fleet: ResolvedFleet) -> None:
        """Compute now what every memoized planner reads first (the code fingerprint, the fleet's and its clusters'
        digests): done once here, it is inherited by forked planners (``parallel.run_planners``) instead of being
        computed again in each."""
        if self.directory is not None:
            code_fingerprint()
            self._ids(fleet).cluster("")

    def identity(self, fleet: ResolvedFleet, cluster: str) -> bytes | None:
        """The digest of cluster ``cluster`` (its entry as written, its file and the fleet-level inventory), for a
        part that reads another cluster than its own: that cluster's digest is one of its inputs."""
        return self._ids(fleet).cluster(cluster) if self.directory is not None else None

    def cluster_part(self, name: str, fleet: ResolvedFleet, cluster: ResolvedCluster, compute: Callable[[], Texts],
                     *inputs: Any) -> Texts:
        """``compute()`` (named texts: files by path, fragments by name), or what it returned for the same cluster
        and ``inputs`` before: everything it reads beyond the fleet-level inventory and ``cluster`` must be in
        ``inputs``. The caller must not change the texts' map."""
        return self._memoized(name, fleet, cluster.name, cluster, compute, inputs)

    def fleet_part(self, name: str, fleet: ResolvedFleet, compute: Callable[[], Texts], *inputs: Any) -> Texts:
        """``compute()`` of fleet-level inputs only (and ``inputs``), kept under the fleet digest."""
        return self._memoized(name, fleet, "", None, compute, inputs)

    def _memoized(self, name: str, fleet: ResolvedFleet, entry: str, cluster: ResolvedCluster | None,
                  compute: Callable[[], Texts], inputs: Sequence[Any]) -> Texts:
        if self.directory is None or entry == "-" or any(c in entry for c in " \n\r"):
            return compute()  # an entry name must fit a record's head line (cluster names are DNS labels)
        key = self.key(fleet, name, cluster, inputs)
        if key is None:
            return compute()
        part = self._part(name)
        known = part.fresh.get(entry) or part.entries.get(entry)
        if known is not None and known[0] == key:
            self.hits += 1
            value: Texts = known[1]
            return value
        self.misses += 1
        value = compute()
        if not any("\t" in text_name for text_name in value):  # a name must fit the record's index
            part.fresh[entry] = (key, value)
        return value

    def drain(self) -> dict[str, dict[str, tuple[str, Texts]]]:
        """The parts computed since the last ``drain``, by part name, taken out (a worker sends them back to the
        parent, which ``merge``s them; in the parent itself they go straight back)."""
        planned = {name: part.fresh for name, part in self._parts.items() if part.fresh}
        for name in planned:
            self._parts[name].fresh = {}
        return planned

    def merge(self, planned: dict[str, dict[str, tuple[str, Texts]]]) -> None:
        """Take the parts a worker computed (``planned``), to be written by ``store``."""
        if self.directory is None:
            return
        for name, fresh in planned.items():
            part = self._parts.get(name)
            if part is None:
                part = self._parts[name] = _Part({}, -1, unread=True)  # ``store`` appends to the file as it is
            part.fresh.update(fresh)

    def store(self, clusters: set[str] | None = None) -> None:
        """Append the parts computed by this render to their files, or rewrite a file without its dead lines
        (entries of ``clusters`` only, when given) once they outnumber the live ones; an unwritable directory only
        costs the next render its speed."""
        if self.directory is None:
            return
        for name, part in sorted(self._parts.items()):
            if not part.fresh:
                continue
            path = self.directory / f"{name}.memo"
            try:
                if part.lines < 0:  # not read here (a worker did): its records counted, read only to rewrite it
                    part.lines = _count(path) if clusters is not None else -1
                    if part.lines < 0:
                        part.entries, part.lines = _read(path)
                live = len(clusters) + 1 if clusters is not None else len(part.entries) + len(part.fresh)
                if part.lines + len(part.fresh) > 2 * live + SLACK_LINES:
                    if part.unread:
                        part.entries, _ = _read(path)
                        part.unread = False
                    kept = {**part.entries, **part.fresh}
                    if clusters is not None:
                        kept = {c: e for c, e in kept.items() if c in clusters or c == ""}
                    self._prepare()
                    replace_file(path, b"".join(_record(c, *e) for c, e in sorted(kept.items())))
                    part.entries, part.lines = kept, len(kept)
                else:
                    self._prepare()
                    with path.open("ab") as stream:
                        stream.write(b"".join(_record(c, *e) for c, e in part.fresh.items()))
                    part.entries.update(part.fresh)
                    part.lines += len(part.fresh)
            except OSError:
                continue
            part.fresh = {}

    def _prepare(self) -> None:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        ignore = self.directory / ".gitignore"
        if not ignore.exists():
            with contextlib.suppress(OSError):
                ignore.write_text("# fleetgen's planner memo: never commit it\n*\n", encoding="utf-8")


@dataclass(frozen=True)
class Memoized:
    """A fleet-wide planner's value and the parts it computed (in a worker: sent back to the parent)."""

    value: Any
    planned: dict[str, dict[str, tuple[str, Texts]]]
    #: parts read from the memo and parts computed by the planner, in process ``pid``
    hits: int = 0
    misses: int = 0
    pid: int = 0


class MemoizingPlanCache(PlanCache):
    """The plan cache of a render together with the fleet-wide planners' memo in its ``planners`` folder: one
    ``store()`` writes both, once the command succeeded."""

    def __init__(self, directory: Path | None, checked: Inventory | None = None) -> None:
        super().__init__(directory)
        self.memo = PlannerMemo(None if directory is None else directory / "planners")
        self.checked = checked

    def memoized(self, planner: Callable[..., Any]) -> Callable[[ResolvedFleet], Memoized]:
        """``planner(fleet, memo=...)`` as a fleet-wide planner whose value carries the parts it computed."""
        memo = self.memo

        def run(fleet: ResolvedFleet) -> Memoized:
            hits, misses = memo.hits, memo.misses
            value = planner(fleet, memo=memo)
            return Memoized(value, memo.drain(), memo.hits - hits, memo.misses - misses, os.getpid())

        run.__name__ = getattr(planner, "__name__", "planner")
        return run

    def take(self, result: Any) -> Any:
        """A planner's value; the parts a memoized planner computed are kept for ``store``."""
        if isinstance(result, Memoized):
            self.memo.merge(result.planned)
            if result.pid != os.getpid():  # a worker's counts (this process counted its own)
                self.memo.hits += result.hits
                self.memo.misses += result.misses
            return result.value
        return result

    def store(self) -> None:
        """The plan cache's entries, then the memo's, then (``checked``: the inventory planned, every entry of which
        passed every check) the keys of its cluster entries for the next load's checks (inventory/checkmemo.py)."""
        super().store()
        self.memo.store(self.clusters)
        if self.directory is not None and self.checked is not None:
            checkmemo.store(self.checked)
