"""Write: put a file plan on disk, changing only what changed, atomically, and guarding hand edits.

A manifest (``.fleetgen/manifest.json`` under the output root) records the sha256 of every file
fleetgen wrote. A later render deletes files it wrote before and no longer produces, never touches
files it did not write, and refuses to overwrite or delete a generated file edited by hand.

At fleet scale (tens of thousands of files) the writer creates each folder once, writes each changed file
through a temporary file opened next to it and renamed over it, on a few threads (the system calls release
the GIL), and hashes each planned text once (the comparison and the manifest share it). With a stat cache
(``stat_cache``: a machine-local folder, never part of the output) a file whose size, mtime, inode and
ctime are those recorded when fleetgen last wrote or read it is not read again, as git's index does; a file
changed within the same timestamp tick as that record ("racy", git's word) is always read again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from pathlib import Path

from generator.errors import InventoryError, OutputConflict, Problem
from generator.guard import MAX_MANIFEST_BYTES, read_text

MANIFEST = ".fleetgen/manifest.json"
STAT_CACHE_FORMAT = 1
"""Version of the stat cache's layout: a cache of another version is ignored (and replaced)."""
IO_THREADS = 4
"""Threads that read, hash and write files. On this project's 2-core machine (loaded) a cold write of 16 383 files
took 5.9 s wall with 4 against 6.6 s with 1 (min of 3 runs; 8 did no worse, 2 no better): the kernel's file
creation dominates. Comparing through a warm stat cache (a stat per file) stays on the calling thread, where it
was fastest."""
_PARALLEL_FROM = 64
"""Fewer files than this are handled on the calling thread: starting threads would cost more."""
_RESAVE_FROM = 64
"""The stat cache is rewritten once this many files were read or written (their stat is not the recorded one),
or when a racy record was read again (a new stamp settles it): below that, reading those few files again next
time costs less than rewriting the whole cache."""


def sha256(text: str) -> str:
    """Hex sha256 of text as written (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Changes:
    """What a render would do (or did) to an output tree."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when the tree already matches the plan."""
        return not (self.created or self.updated or self.deleted or self.conflicts)

    def summary(self) -> str:
        """One line: counts of each kind of change."""
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, {len(self.deleted)} deleted, "
            f"{self.unchanged} unchanged"
        )


_CONFLICT_MARKER = re.compile(r"^(<{7}|={7}|>{7}|\|{7})( |$)", re.M)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MANIFEST_HELP = (
    "it records what fleetgen wrote, to prune old files and guard hand edits, so fleetgen will not guess it: "
    "take one side (git checkout --theirs -- FILE) and re-render, or delete it and run `fleetgen render --force` "
    "(files generated before and no longer produced are then left for you to delete)"
)


def _display(path: Path) -> str:
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()


def _safe_relative(name: str) -> bool:
    """True for a normalised relative POSIX path that stays below the output root: no leading ``/``, no
    backslash, no empty, ``.`` or ``..`` part (what ``PurePosixPath`` would rewrite or what climbs out)."""
    if not name or name[0] == "/" or "\\" in name:
        return False
    return not any(part in ("", ".", "..") for part in name.split("/"))


def parse_manifest(text: str, display: str) -> dict[str, str]:
    """The ``{path: sha256}`` of a manifest's text; InventoryError naming the file (and line) when it is corrupt:
    git conflict markers, invalid JSON, or not the shape fleetgen writes."""

    def corrupt(message: str, line: int = 0, column: int = 0) -> InventoryError:
        text = f"corrupt fleetgen manifest: {message}; {_MANIFEST_HELP}"
        return InventoryError([Problem(display, line, column, "", text)])

    marker = _CONFLICT_MARKER.search(text) if any(m * 7 in text for m in "<=>|") else None
    if marker:
        line = text.count("\n", 0, marker.start()) + 1
        raise corrupt(f"git conflict marker '{marker.group(1)}' (two renders were merged)", line, 1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise corrupt(f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from exc
    except RecursionError as exc:
        raise corrupt("invalid JSON: nested too deep") from exc
    if not isinstance(data, dict) or data.get("generator") != "fleetgen" or not isinstance(data.get("files"), dict):
        raise corrupt('expected {"generator": "fleetgen", "files": {PATH: SHA256, ...}}')
    files: dict[str, str] = data["files"]
    for name, digest in files.items():
        if not _safe_relative(name):
            raise corrupt(f"file name {name!r} is not a relative path below the output folder")
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise corrupt(f"the hash of {name!r} is not a sha256 hex digest")
    return files


def _read_manifest_text(out: Path) -> tuple[str | None, dict[str, str]]:
    """The manifest's text (None without one) and its ``{path: sha256}``."""
    path = out / MANIFEST
    if not path.exists() and not path.is_symlink():
        return None, {}
    display = _display(path)
    text = read_text(path, out, display, limit=MAX_MANIFEST_BYTES)
    return text, parse_manifest(text, display)


def read_manifest(out: Path) -> dict[str, str]:
    """The recorded ``{path: sha256}`` of what fleetgen last wrote under ``out`` (read through the input guard)."""
    return _read_manifest_text(out)[1]


def manifest_text(digests: dict[str, str]) -> str:
    """The manifest recording ``{path: sha256}``: the bytes of ``json.dumps(..., indent=2, sort_keys=True)``,
    built directly (the pure-Python indenting encoder costs a second per 100 000 files)."""
    if not digests:
        return '{\n  "files": {},\n  "generator": "fleetgen"\n}\n'
    lines = ",\n".join(f'    {encode_basestring_ascii(name)}: "{digests[name]}"' for name in sorted(digests))
    return f'{{\n  "files": {{\n{lines}\n  }},\n  "generator": "fleetgen"\n}}\n'


# --- the stat cache --------------------------------------------------------------------------------------------

StatKey = tuple[int, int, int, int]
"""What the stat cache compares: size, mtime (ns), inode, ctime (ns)."""


def _stat_key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


class StatCache:
    """Machine-local ``{path: (size, mtime, inode, ctime, sha256)}`` of one output tree, like git's index: a file
    whose stat is as recorded is known without reading it. The record is trusted only for files last changed
    strictly before the cache was written (``stamp``, a timestamp of the output's own file system taken when
    saving): a file edited in the same timestamp tick as fleetgen's record keeps its stat but not its bytes
    (git's "racy clean" entries), so it is read again. A missing, unreadable, corrupt or foreign cache (another
    output folder, another device, another format) is ignored; one that cannot be written only costs speed."""

    def __init__(self, directory: Path | None, out: Path) -> None:
        self.out = out
        self.path = None if directory is None else directory / f"{sha256(str(out.resolve()))[:24]}.json"
        self.entries: dict[str, list[object]] = {}
        self.stamp_ns = 0

    def load(self) -> None:
        """Read the cache file, if any and if it is this output's; anything else leaves the cache empty."""
        if self.path is None:
            return
        try:
            data = json.loads(_read_regular(self.path, 2 * MAX_MANIFEST_BYTES))
            header_ok = (
                isinstance(data, dict)
                and data.get("format") == STAT_CACHE_FORMAT
                and data.get("out") == str(self.out.resolve())
                and data.get("device") == os.stat(self.out).st_dev
                and type(data.get("stamp_ns")) is int
                and isinstance(data.get("files"), dict)
            )
        except (OSError, ValueError, RecursionError):
            return
        if header_ok:
            self.entries, self.stamp_ns = data["files"], data["stamp_ns"]

    def lookup(self, rel: str, st: os.stat_result) -> tuple[str | None, bool]:
        """The recorded sha256 of ``rel`` when its stat is as recorded and not racy (None: read the file), and
        whether the stat was as recorded but racy (changed in the tick the cache was written)."""
        entry = self.entries.get(rel)
        if type(entry) is not list or len(entry) != 5:
            return None, False
        size, mtime_ns, inode, ctime_ns, digest = entry
        if size != st.st_size or mtime_ns != st.st_mtime_ns or inode != st.st_ino or ctime_ns != st.st_ctime_ns:
            return None, False
        if max(mtime_ns, ctime_ns) >= self.stamp_ns:
            return None, True
        return (digest if isinstance(digest, str) and _HEX64.match(digest) else None), False

    def save(self, records: dict[str, tuple[StatKey, str]]) -> None:
        """Replace the cache with ``records``, stamped with the output file system's time now (see the class)."""
        if self.path is None:
            return
        try:
            stamp_ns = _filesystem_now(self.out / MANIFEST)
            files = {rel: [*key, digest] for rel, (key, digest) in records.items()}
            data = {"format": STAT_CACHE_FORMAT, "out": str(self.out.resolve()), "device": os.stat(self.out).st_dev,
                    "stamp_ns": stamp_ns, "files": files}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            ignore = self.path.parent / ".gitignore"
            if not ignore.exists() and not ignore.is_symlink():
                atomic_write(ignore, "# fleetgen's stat cache of rendered files (machine-local): never commit it\n*\n")
            atomic_write(self.path, json.dumps(data, separators=(",", ":")))
        except OSError:
            return


def _read_regular(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file (not a symlink, FIFO or device) of at most ``limit`` bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            raise ValueError(f"{path} is not a regular file of at most {limit} bytes")
        return handle.read()


def _filesystem_now(beside: Path) -> int:
    """The file system's current time next to ``beside``: the timestamps of a file created there now (its clock
    and granularity are those the output's files get, which the process clock need not match)."""
    probe = beside.with_name(f".{beside.name}.{os.getpid()}.stamp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(probe, flags, 0o600)
    except FileExistsError:  # left by a killed process that had our pid
        os.unlink(probe)
        fd = os.open(probe, flags, 0o600)
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
        os.unlink(probe)
    return max(st.st_mtime_ns, st.st_ctime_ns)


# --- threads ---------------------------------------------------------------------------------------------------


def _for_each(count: int, work: Callable[[int], None], threads: int) -> None:
    """Run ``work(0) … work(count - 1)`` on up to ``threads`` threads, handing out indexes in order. On errors,
    the error of the lowest failing index is raised once every index below it has run (so the error is the one
    a serial loop would raise, whatever the timing); indexes above a failure are no longer handed out."""
    if threads <= 1 or count < _PARALLEL_FROM:
        for index in range(count):
            work(index)
        return
    lock = threading.Lock()
    state = {"next": 0, "stop": count}
    failures: dict[int, BaseException] = {}

    def worker() -> None:
        while True:
            with lock:
                index = state["next"]
                if index >= state["stop"]:
                    return
                state["next"] = index + 1
            try:
                work(index)
            except BaseException as exc:  # handed to the calling thread, raised there
                with lock:
                    failures[index] = exc
                    state["stop"] = min(state["stop"], index)

    pool = [threading.Thread(target=worker, name=f"fleetgen-io-{n}", daemon=True) for n in range(threads)]
    for thread in pool:
        thread.start()
    try:
        for thread in pool:
            thread.join()
    except BaseException:  # Ctrl-C while waiting: let the workers stop before the error goes on
        with lock:
            state["stop"] = -1
        for thread in pool:
            thread.join()
        raise
    if failures:
        raise failures[min(failures)]


# --- compare ---------------------------------------------------------------------------------------------------


def _current(path: Path) -> str | None:
    """sha256 of a file no longer planned (None when missing)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _hash_file(path: str) -> tuple[str | None, StatKey | None]:
    """sha256 of a file (None when missing) and its stat taken before reading (None unless a regular file)."""
    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            digest = hashlib.sha256(handle.read()).hexdigest()
    except FileNotFoundError:
        return None, None
    return digest, (_stat_key(st) if stat.S_ISREG(st.st_mode) else None)


@dataclass
class _Scan:
    """A compared tree: the changes, each planned file's sha256, and what the stat cache will record."""

    changes: Changes
    manifest: str | None
    wanted: dict[str, str]
    records: dict[str, tuple[StatKey, str]]
    #: unchanged files known from the stat cache without reading them
    hits: int
    #: folders (relative, "" for the output root) that held a planned file when compared
    folders: set[str]
    #: files read again because the stat cache's record of them was racy
    racy: int


def _scan(out: Path, plan: dict[str, str], cache: StatCache, threads: int) -> _Scan:
    old_manifest, manifest = _read_manifest_text(out)
    names = list(plan)
    wanted: list[str] = [""] * len(names)
    current: list[str | None] = [None] * len(names)
    keys: list[StatKey | None] = [None] * len(names)
    hit: list[bool] = [False] * len(names)
    racy: list[bool] = [False] * len(names)
    base = str(out)

    lookup, use_cache = cache.lookup, bool(cache.entries)

    def probe(index: int) -> None:
        rel = names[index]
        path = f"{base}/{rel}"
        wanted[index] = sha256(plan[rel])
        if use_cache:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return
            recorded, racy[index] = lookup(rel, st)
            if recorded is not None:
                current[index], hit[index] = recorded, True
                keys[index] = _stat_key(st)
                return
        current[index], keys[index] = _hash_file(path)

    _for_each(len(names), probe, 1 if use_cache else threads)
    changes = Changes()
    records: dict[str, tuple[StatKey, str]] = {}
    hits = 0
    folders = {""}
    for rel, digest, now, key, known in zip(names, wanted, current, keys, hit, strict=True):
        if now is None:
            changes.created.append(rel)
            continue
        folders.add(rel.rpartition("/")[0])
        if now == digest:
            changes.unchanged += 1
            hits += known
            if key is not None:
                records[rel] = (key, digest)
        else:
            changes.updated.append(rel)
            if manifest.get(rel) != now:
                changes.conflicts.append(rel)
    for rel, recorded in manifest.items():
        if rel in plan:
            continue
        now = _current(out / rel)
        if now is None:
            continue
        changes.deleted.append(rel)
        if now != recorded:
            changes.conflicts.append(rel)
    for group in (changes.created, changes.updated, changes.deleted, changes.conflicts):
        group.sort()
    return _Scan(changes, old_manifest, dict(zip(names, wanted, strict=True)), records, hits, folders, sum(racy))


def compare(out: Path, plan: dict[str, str], *, stat_cache: Path | None = None,
            threads: int = IO_THREADS) -> Changes:
    """Compare an output tree with a plan, without writing anything (the stat cache in ``stat_cache`` is read,
    not written)."""
    cache = StatCache(stat_cache, out)
    cache.load()
    return _scan(out, plan, cache, threads).changes


# --- write -----------------------------------------------------------------------------------------------------


def _put(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through ``.NAME.PID.fleetgen-tmp`` next to it (mode 0644 whatever the umask)
    and a rename, so readers never see half a file; the temporary file is removed on failure."""
    head, name = os.path.split(path)
    tmp = os.path.join(head, f".{name}.{os.getpid()}.fleetgen-tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o644)
    except FileExistsError:  # left by a killed process that had our pid: no live writer owns it
        os.unlink(tmp)
        fd = os.open(tmp, flags, 0o644)
    try:
        try:
            os.fchmod(fd, 0o644)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _put(str(path), text.encode("utf-8"))


def _make_folders(out: Path, files: Sequence[str], present: set[str], threads: int) -> None:
    """Create the folders of ``files`` below ``out`` that are not in ``present`` (folders known to exist, so their
    parents too), each once: level by level, parents first, the folders of a level on ``threads`` threads."""
    out.mkdir(parents=True, exist_ok=True)
    missing: set[str] = set()
    for rel in files:
        folder = rel.rpartition("/")[0]
        while folder not in present and folder not in missing:
            missing.add(folder)
            folder = folder.rpartition("/")[0]
    levels: dict[int, list[str]] = {}
    for folder in sorted(missing):
        levels.setdefault(folder.count("/"), []).append(os.path.join(str(out), folder))
    for depth in sorted(levels):
        level = levels[depth]

        def make(index: int, level: list[str] = level) -> None:
            try:
                os.mkdir(level[index])
            except FileExistsError:  # a folder with no planned file in it, or not a folder (then an error)
                if not os.path.isdir(level[index]):
                    raise

        _for_each(len(level), make, threads)


def write(out: Path, plan: dict[str, str], force: bool = False, *, stat_cache: Path | None = None,
          threads: int = IO_THREADS) -> Changes:
    """Apply a plan to ``out``; raise OutputConflict (writing nothing) on hand-edited files unless forced. With
    ``stat_cache`` (a machine-local folder) unchanged files are recognised by their stat, and the cache is
    updated after a successful write."""
    cache = StatCache(stat_cache, out)
    cache.load()
    scan = _scan(out, plan, cache, threads)
    changes = scan.changes
    if changes.conflicts and not force:
        raise OutputConflict(changes.conflicts)
    pending = [*changes.created, *changes.updated]
    _make_folders(out, changes.created, scan.folders, threads)
    base = str(out)
    written: list[StatKey | None] = [None] * len(pending)

    def put(index: int) -> None:
        path = os.path.join(base, pending[index])
        _put(path, plan[pending[index]].encode("utf-8"))
        if cache.path is not None:
            written[index] = _stat_key(os.stat(path))

    _for_each(len(pending), put, threads)
    for rel in changes.deleted:
        target = out / rel
        target.unlink(missing_ok=True)
        parent = target.parent
        while parent != out and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    text = manifest_text(scan.wanted)
    data = text.encode("utf-8")
    if scan.manifest != text or os.stat(out / MANIFEST).st_size != len(data):
        (out / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
        _put(str(out / MANIFEST), data)
    fresh = len(pending) + len(scan.records) - scan.hits  # files whose stat is not the recorded one
    if cache.path is not None and (not cache.entries or scan.racy or fresh >= _RESAVE_FROM):
        records = scan.records
        for rel, key in zip(pending, written, strict=True):
            if key is not None:
                records[rel] = (key, scan.wanted[rel])
        cache.save(records)
    return changes
