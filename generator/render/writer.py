"""Write: put a file plan on disk, changing only what changed, atomically, and guarding hand edits.

A manifest (``.fleetgen/manifest.json`` under the output root) records the sha256 of every file
fleetgen wrote. A later render deletes files it wrote before and no longer produces, never touches
files it did not write, and refuses to overwrite or delete a generated file edited by hand.

At fleet scale (tens of thousands of files) the writer creates each folder once, writes each changed file
through a temporary file opened next to it and renamed over it, on a few threads (the system calls release
the GIL), and hashes each planned text once (the comparison and the manifest share it), or not at all when it comes
with its digest (``TextDigests``: the plan cache hashes the texts it reads). A new output folder
(missing) is written whole into a staging folder next to it, each file created in place (no temporary file, no
rename: a third fewer system calls per file), and renamed into place once complete, so a failed first render
leaves nothing. With a stat cache (``stat_cache``: a machine-local folder, never part of the output) a file
whose size, mtime, inode and ctime are those recorded when fleetgen last wrote or read it is not read again,
as git's index does, and a manifest whose stat is the recorded one is not parsed; a file changed within the same
timestamp tick as that record ("racy", git's word) is always read again. An unchanged tree is compared with one
stat per file and one hash per text planned in this run, the rest at C speed (arrays and strings compared whole,
then by blocks), and a manifest known from the cache is patched where digests changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import operator
import os
import re
import shutil
import stat
import sys
import threading
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from pathlib import Path

from generator.errors import InventoryError, OutputConflict, Problem
from generator.guard import MAX_MANIFEST_BYTES, read_text

MANIFEST = ".fleetgen/manifest.json"
STAT_CACHE_FORMAT = 3
"""Version of the stat cache's layout: a cache of another version is ignored (and replaced)."""
IO_THREADS = 4
"""Threads that read, hash and write files. On this project's 2-core machine (loaded) a cold write of 16 383 files
took 5.9 s wall with 4 against 6.6 s with 1 (min of 3 runs; 8 did no worse, 2 no better): the kernel's file
creation dominates. Comparing through a warm stat cache (a stat per file) stays on the calling thread, where it
was fastest."""
_PARALLEL_FROM = 64
"""Fewer files than this are handled on the calling thread: starting threads would cost more."""


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
_PLAIN_JSON = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\') + b"\n"
"""The bytes of names (newline-joined, ASCII) that ``json.dumps`` writes as they are, between quotes."""
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
    names = sorted(digests)
    joined = "\n".join(names)
    if joined.isascii() and not joined.encode("ascii").translate(None, _PLAIN_JSON):  # no name needs escaping
        pairs = zip(names, map(digests.__getitem__, names), strict=True)
        lines = '    "' + '",\n    "'.join(map('": "'.join, pairs)) + '"'  # one C call per line
    else:
        lines = ",\n".join(f'    {encode_basestring_ascii(name)}: "{digests[name]}"' for name in names)
    return f'{{\n  "files": {{\n{lines}\n  }},\n  "generator": "fleetgen"\n}}\n'


_PATCH_AT_MOST = 64
"""Changed files up to which a manifest known from the stat cache is patched rather than written anew."""


def _patched_manifest(path: Path, joined: str, recorded: str, changed: list[tuple[str, int, str]]) -> bytes | None:
    """The manifest of the recorded paths (newline-joined: ``joined``) with the digest of each ``(name, index,
    digest)`` of ``changed`` replaced, made from the manifest at ``path``, known from the stat cache to be the one
    fleetgen wrote for the recorded paths and digests (``recorded``): each changed line replaced where it is, one
    search each, where writing the manifest anew costs a line per file. None (write it anew) unless every name is
    plain, the file has the length of that manifest and each changed line is in it exactly once."""
    if not (joined.isascii() and not joined.encode("ascii").translate(None, _PLAIN_JSON)):
        return None
    count = len(recorded) // 64
    # the lines ``    "NAME": "DIGEST"`` joined by ",\n", between the fixed head and tail of ``manifest_text``
    length = len(joined) - (count - 1) + count * (4 + 2 + 2 + 2 + 64) + 2 * (count - 1) if count else -1
    try:
        old = _read_regular(path, MAX_MANIFEST_BYTES)
    except (OSError, ValueError):
        return None
    if len(old) != len('{\n  "files": {\n') + length + len('\n  },\n  "generator": "fleetgen"\n}\n'):
        return None
    data = bytearray(old)
    for name, index, digest in changed:
        line = f'\n    "{name}": "{recorded[64 * index : 64 * index + 64]}"'.encode("ascii")
        at = old.find(line)
        if at < 0 or old.find(line, at + 1) >= 0:
            return None
        data[at + len(line) - 65 : at + len(line) - 1] = digest.encode("ascii")
    return bytes(data)


# --- the stat cache --------------------------------------------------------------------------------------------

StatKey = tuple[int, int, int, int]
"""What the stat cache compares: size, mtime (ns), inode, ctime (ns)."""
UNKNOWN: StatKey = (-1, -1, -1, -1)
"""The recorded stat of a file whose stat is not known: equal to no file's."""
_UNKNOWN_KEYS = array("q", UNKNOWN)



def _stat_key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def _key_tuples(flat: array[int]) -> list[StatKey]:
    """Four integers per file as one tuple per file."""
    fields = iter(flat)
    return list(zip(fields, fields, fields, fields, strict=True))


def _keys_bytes(flat: array[int]) -> bytes:
    """Stat integers as the cache stores them: little-endian int64s (one C call each way)."""
    if sys.byteorder == "big":
        flat = array("q", flat)
        flat.byteswap()
    return flat.tobytes()


def _keys_from(data: bytes) -> array[int]:
    """``_keys_bytes`` reversed; ValueError unless a whole number of int64s."""
    flat = array("q")
    flat.frombytes(data)
    if sys.byteorder == "big":
        flat.byteswap()
    return flat


def _safe_lines(joined: str) -> bool:
    """``_safe_relative`` of every line of ``joined`` (newline-separated names), by a few substring searches:
    with every ``/`` a newline too, each part of each name is a line, and no line may be empty, ``.`` or ``..``."""
    parts = "\n" + joined.replace("/", "\n") + "\n"
    return "\\" not in joined and "\n\n" not in parts and "\n.\n" not in parts and "\n..\n" not in parts


class StatCache:
    """Machine-local record of one output tree, like git's index: the manifest's entries (every path fleetgen
    wrote and its sha256), with the stat (size, mtime, inode, ctime) each file had when fleetgen last wrote or read
    it, and the manifest's own stat. A file whose stat is as recorded is known without reading it; a manifest
    whose stat is as recorded is known from the record without reading and parsing it. A record is trusted only
    for files last changed strictly before the cache was written (``stamp``, a timestamp of the output's own file
    system taken when saving): a file edited in the same timestamp tick as fleetgen's record keeps its stat but
    not its bytes (git's "racy clean" entries), so it is read again. A missing, unreadable, corrupt or foreign
    cache (another output folder, another device, another format) is ignored; one that cannot be written only
    costs speed.

    On disk: a JSON header line (format, output folder and device, stamp, the manifest's stat or null, how many
    paths and how many bytes they take), then the paths newline-joined (UTF-8, in plan order), their sha256 digests
    (32 bytes each) and their stats (four little-endian int64s each, ``UNKNOWN`` for a file whose stat is not
    known): a layout read and written as a few slices (no escaping, no base64), compared at C speed (strings and
    arrays, not an object per file). The recorded paths are split and checked only when they are not exactly the
    planned names (``records``): the planned names are checked by the plan itself."""

    def __init__(self, directory: Path | None, out: Path) -> None:
        self.out = out
        self.path = None if directory is None else directory / f"{sha256(str(out.resolve()))[:24]}.stat"
        self.joined = ""
        self.digests = ""
        #: four integers per path (size, mtime, inode, ctime): ``UNKNOWN`` for a file whose stat is not known
        self.flat = array("q")
        self.manifest_key: StatKey | None = None
        self.stamp_ns = 0
        self.loaded = False
        #: the newest mtime or ctime recorded (a racy record, if any, is not older than the stamp)
        self.newest_ns = 0
        self._paths: list[str] | None = None  # ``joined`` split, once checked
        self._index: dict[str, int] | None = None

    def _forget(self) -> None:
        """Drop the record (a corrupt one): the cache is then empty, as if there were none."""
        self.joined, self.digests, self.flat, self._paths, self._index = "", "", array("q"), [], None
        self.manifest_key, self.stamp_ns, self.loaded, self.newest_ns = None, 0, False, 0

    def load(self) -> None:
        """Read the cache file, if any and if it is this output's; anything else leaves the cache empty."""
        if self.path is None:
            return
        try:
            raw = _read_regular(self.path, 2 * MAX_MANIFEST_BYTES)
            end = raw.find(b"\n")
            header = json.loads(raw[:end]) if end >= 0 else None
            if not (
                isinstance(header, dict)
                and header.get("format") == STAT_CACHE_FORMAT
                and header.get("out") == str(self.out.resolve())
                and header.get("device") == os.stat(self.out).st_dev
                and type(header.get("stamp_ns")) is int
            ):
                return
            count, size, manifest = header["count"], header["paths_bytes"], header["manifest"]
            if type(count) is not int or type(size) is not int or count < 0 or size < 0:
                return
            start = end + 1 + size
            if len(raw) != start + 64 * count:
                return
            joined = raw[end + 1 : start].decode("utf-8", "surrogatepass")
            digests = raw[start : start + 32 * count].hex()
            flat = _keys_from(raw[start + 32 * count :])
        except (OSError, ValueError, RecursionError, KeyError):
            return
        if joined.count("\n") != max(count - 1, 0) or (count == 0 and joined):
            return
        if manifest is not None and not (type(manifest) is list and len(manifest) == 4
                                         and all(type(n) is int for n in manifest)):
            return
        self.joined, self.digests, self.flat, self._paths, self._index = joined, digests, flat, None, None
        self.manifest_key = None if manifest is None else (manifest[0], manifest[1], manifest[2], manifest[3])
        self.stamp_ns, self.loaded = header["stamp_ns"], True
        self.newest_ns = max(max(flat[1::4], default=0), max(flat[3::4], default=0),
                             *(self.manifest_key or (0, 0, 0, 0))[1::2])

    @property
    def count(self) -> int:
        """How many paths are recorded."""
        return len(self.digests) // 64

    @property
    def paths(self) -> list[str]:
        """The recorded paths, in plan order (split and checked on first use: an unsafe or repeated path makes
        the whole record ignored)."""
        if self._paths is None:
            paths = self.joined.split("\n") if self.joined else []
            if paths and (not _safe_lines(self.joined) or len(set(paths)) != len(paths)):
                self._forget()
            else:
                self._paths = paths
        assert self._paths is not None
        return self._paths

    def records(self, names: list[str], joined: str) -> bool:
        """Whether ``names`` (newline-joined: ``joined``) are exactly the recorded paths, in order: compared as one
        string (no name holds a newline when the counts of lines agree)."""
        return (self.loaded and len(names) == self.count and joined == self.joined
                and joined.count("\n") == max(len(names) - 1, 0))

    def digest_list(self) -> list[str]:
        """The recorded sha256 of each of ``paths``."""
        text = self.digests
        return [text[n : n + 64] for n in range(0, len(text), 64)]

    def key_list(self) -> list[StatKey]:
        """The recorded stat of each of ``paths``."""
        return _key_tuples(self.flat)

    def index(self) -> dict[str, int]:
        """The index of each recorded path (built once)."""
        if self._index is None:
            self._index = dict(zip(self.paths, range(self.count), strict=True))
        return self._index

    def positions(self, names: list[str]) -> list[int]:
        """The index of each of ``names`` among the recorded paths (``count`` for a path not recorded)."""
        return list(map(self.index().get, names, itertools.repeat(self.count)))

    def stale(self, names: list[str], flat: array[int]) -> set[int]:
        """The indexes of ``names`` whose stat (four integers each in ``flat``) is not the recorded one (a name not
        recorded included): compared in C by runs of names recorded one after another (a created or dropped file
        splits a run), each run against its slice of the record."""
        count = self.count
        at = self.positions(names)
        shift = list(map(operator.sub, at, range(len(at))))  # constant along a run
        starts = [0, *itertools.compress(range(1, len(at)), map(operator.ne, shift[1:], shift[:-1])), len(at)]
        found: set[int] = set()
        for start, end in itertools.pairwise(starts):
            if at[start] == count:  # not recorded (one name: each has its own shift)
                found.update(range(start, end))
                continue
            first = at[start]
            found.update(start + n for n in _differing(self.flat[4 * first : 4 * (first + end - start)],
                                                       flat[4 * start : 4 * end], 4))
        return found

    def aligned(self, names: list[str]) -> tuple[list[StatKey], list[str | None]]:
        """The recorded stat and sha256 of each of ``names`` (``UNKNOWN`` and None for a path not recorded)."""
        at = self.positions(names)
        keys, digests = [*self.key_list(), UNKNOWN], [*self.digest_list(), None]
        return list(map(keys.__getitem__, at)), list(map(digests.__getitem__, at))

    def racy_indexes(self) -> list[int]:
        """The indexes of the records changed in the tick the cache was written (none, most often: found in C)."""
        if self.newest_ns < self.stamp_ns:
            return []
        late = self.stamp_ns.__le__
        flat = self.flat
        return sorted({*itertools.compress(range(self.count), map(late, flat[1::4])),
                       *itertools.compress(range(self.count), map(late, flat[3::4]))})

    def racy(self, key: StatKey) -> bool:
        """Whether a file with this (recorded) stat changed in the tick the cache was written."""
        return max(key[1], key[3]) >= self.stamp_ns

    def knows_manifest(self, key: StatKey | None) -> bool:
        """Whether the manifest is the recorded one: its stat ``key`` is the recorded stat, and not racy."""
        return self.loaded and key is not None and key == self.manifest_key and not self.racy(key)

    def manifest(self, key: StatKey | None) -> dict[str, str] | None:
        """The manifest's ``{path: sha256}`` from the record when ``knows_manifest(key)`` (None: read it)."""
        if not self.knows_manifest(key):
            return None
        paths = self.paths
        return dict(zip(paths, self.digest_list(), strict=True)) if self.loaded else None

    def save(self, names: list[str], joined: str, digests: str, flat: array[int],
             manifest_key: StatKey | None) -> None:
        """Replace the cache with this record (``names`` in plan order, newline-joined ``joined``, ``digests``
        their sha256 concatenated, ``flat`` four integers per name, ``UNKNOWN`` for a stat not known), stamped with
        the output file system's time now (see the class)."""
        if self.path is None:
            return
        if joined.count("\n") != max(len(names) - 1, 0):
            return  # a name with a newline cannot be recorded in this layout: no cache (only speed is lost)
        # the body first (the stamp, taken after it, is then most likely a later tick than every file's change)
        paths = joined.encode("utf-8", "surrogatepass")
        body = [paths, bytes.fromhex(digests), _keys_bytes(flat)]
        try:
            stamp_ns = _filesystem_now(self.out / MANIFEST)
            header = json.dumps({"format": STAT_CACHE_FORMAT, "out": str(self.out.resolve()),
                                 "device": os.stat(self.out).st_dev, "stamp_ns": stamp_ns,
                                 "manifest": None if manifest_key is None else list(manifest_key),
                                 "count": len(names), "paths_bytes": len(paths)}, separators=(",", ":"))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            ignore = self.path.parent / ".gitignore"
            if not ignore.exists() and not ignore.is_symlink():
                atomic_write(ignore, "# fleetgen's stat cache of rendered files (machine-local): never commit it\n*\n")
            atomic_write_bytes(self.path, b"".join([header.encode("ascii"), b"\n", *body]))
            self.path.with_suffix(".json").unlink(missing_ok=True)  # the JSON cache of fleetgen before format 3
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
        # a change after a stat gets a fine-grained time where the file system has multigrain timestamps (Linux
        # 6.13+): then files written just before are older than the stamp, not racy; elsewhere the coarse tick
        os.fstat(fd)
        os.write(fd, b"\0")
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


_KEY_OF = operator.attrgetter("st_size", "st_mtime_ns", "st_ino", "st_ctime_ns")
"""``_stat_key`` as one C call (for ``map``)."""


def _stat_keys(base: str, names: Sequence[str]) -> tuple[array[int], list[int]]:
    """The stat of ``base/NAME`` for each name (following symlinks, as reading does), four integers each, and the
    indexes of the names missing (their integers ``UNKNOWN``): no Python code per file, but per missing file."""
    flat = array("q")
    missing: list[int] = []
    paths = map(f"{base}/".__add__, names)
    while True:
        try:  # the keys before a missing file are in ``flat`` (extend appends one by one), and its name is consumed
            flat.extend(itertools.chain.from_iterable(map(_KEY_OF, map(os.stat, paths))))
        except FileNotFoundError:
            missing.append(len(flat) // 4)
            flat.extend(UNKNOWN)
            continue
        return flat, missing


def _manifest_key(out: Path) -> StatKey | None:
    """The manifest's own stat (not following a symlink; None when missing or not a regular file)."""
    try:
        st = os.lstat(out / MANIFEST)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return _stat_key(st) if stat.S_ISREG(st.st_mode) else None


_HEX_OF = operator.methodcaller("hexdigest")


class TextDigests:
    """sha256 hex digests of planned texts already hashed where they were made (the plan cache hashes each text it
    reads: generator/render/incremental.py), so the writer does not hash them again. A digest is found by the
    identity of the text object it was computed from, which this holds: no other live object has its identity,
    so a digest can only ever be used for the very text it is the digest of."""

    def __init__(self) -> None:
        self._by_id: dict[int, str] = {}
        self._texts: list[str] = []  # holds each text, so its identity is never another object's

    def add(self, text: str, digest: str) -> None:
        """Record ``digest``, the sha256 hex digest of ``text.encode("utf-8")`` (the adder's promise)."""
        self._texts.append(text)
        self._by_id[id(text)] = digest

    def add_all(self, texts: list[str], digests: list[str]) -> None:
        """``add`` each text with its digest, as C calls; an empty digest records nothing."""
        self._texts.extend(texts)
        self._by_id.update(itertools.compress(zip(map(id, texts), digests, strict=True), digests))

    def get(self, text: str) -> str | None:
        """The recorded digest of this very text object (None for any other object, even an equal one)."""
        return self._by_id.get(id(text))

    def __len__(self) -> int:
        return len(self._by_id)

    def lookup(self, texts: list[str]) -> list[str | None]:
        """``get`` of each text, as C calls."""
        return list(map(self._by_id.get, map(id, texts)))


def _planned_digests(plan: dict[str, str], known: TextDigests | None = None) -> list[str]:
    """sha256 of each planned text, in plan order: from ``known`` for a text hashed where it was made, else
    ``sha256`` of the text (as C calls)."""
    texts = list(plan.values())
    if not known:
        return list(map(_HEX_OF, map(hashlib.sha256, map(str.encode, texts))))
    found = known.lookup(texts)
    unknown = list(itertools.compress(range(len(texts)), map(operator.is_, found, itertools.repeat(None))))
    hashed = map(_HEX_OF, map(hashlib.sha256, map(str.encode, map(texts.__getitem__, unknown))))
    for index, digest in zip(unknown, hashed, strict=True):
        found[index] = digest
    return found  # type: ignore[return-value]  # every None replaced


def _differing(old: Sequence[object], new: Sequence[object], width: int) -> list[int]:
    """The indexes of the ``width``-long records that differ between two equally long sequences (strings or
    arrays): blocks of records compared at C speed first, then the records of a differing block."""
    if old == new:
        return []
    found: list[int] = []
    block = width * 256
    for start in range(0, len(old), block):
        if old[start : start + block] != new[start : start + block]:
            for at in range(start, min(start + block, len(old)), width):
                if old[at : at + width] != new[at : at + width]:
                    found.append(at // width)
    return found


@dataclass
class _Scan:
    """A compared tree: the changes, and what the manifest and the stat cache will record."""

    changes: Changes
    names: list[str]
    #: ``names`` newline-joined
    joined: str
    #: sha256 of each planned text, in ``names`` order
    wanted: list[str]
    #: each planned file's stat when it holds the planned text, four integers per name (``UNKNOWN``: not known,
    #: or to be written)
    keys: array[int]
    #: unchanged files known from the stat cache without reading them
    hits: int
    #: files read again because the stat cache's record of them was racy
    racy: int
    #: the manifest's text as read (None: missing, or known from the stat cache without reading it)
    manifest: str | None
    #: whether the manifest was known from the stat cache, and its stat when compared
    manifest_known: bool
    manifest_key: StatKey | None
    #: whether ``names`` are the paths the stat cache records, in order
    recorded: bool
    #: the index in ``names`` of each file to create or update
    positions: dict[str, int]


def _scan(out: Path, plan: dict[str, str], cache: StatCache, threads: int,
          known: TextDigests | None = None) -> _Scan:
    names = list(plan)
    joined = "\n".join(names)
    count = len(names)
    base = str(out)
    wanted = _planned_digests(plan, known)
    recorded = cache.records(names, joined)
    if cache.loaded and not recorded:
        cache.paths  # noqa: B018  # checked before use: an unsafe record is forgotten (the cache is then empty)
    manifest_key = _manifest_key(out) if cache.loaded else None
    manifest_known, old_manifest = cache.knows_manifest(manifest_key), None
    manifest: dict[str, str] | None = None
    if not manifest_known:
        old_manifest, manifest = _read_manifest_text(out)

    def listed_digest(index: int) -> str | None:
        """What the manifest records for ``names[index]`` (from the stat cache when it knows the manifest)."""
        if manifest_known:
            at = index if recorded else cache.index().get(names[index])
            return None if at is None else cache.digests[64 * at : 64 * at + 64]
        return None if manifest is None else manifest.get(names[index])

    unread: list[int]
    current: list[str | None] | None = None  # None while every file is known to hold its recorded digest
    hits = racy = 0
    if cache.loaded:
        keys, missing = _stat_keys(base, names)
        if recorded and not missing and cache.newest_ns < cache.stamp_ns and keys == cache.flat:
            hits, unread = count, []  # every file as recorded: the common case, compared in C
        else:
            if recorded:
                recorded_digests: list[str | None] = list(cache.digest_list())
                stale = set(_differing(cache.flat, keys, 4))
                late = set(cache.racy_indexes())
            else:
                at = cache.positions(names)  # C calls throughout: a created or dropped file is the common case here
                recorded_digests = list(map([*cache.digest_list(), None].__getitem__, at))
                stale = cache.stale(names, keys)
                racy_records = set(cache.racy_indexes())
                late = {index for index, record in enumerate(at) if record in racy_records} if racy_records else set()
            gone = set(missing)
            racy = len(late - stale - gone)
            unread = sorted((stale | late) - gone)
            hits = count - len(unread) - len(gone)
            current = recorded_digests
            for index in gone:
                current[index] = None
    else:
        keys, unread = array("q", UNKNOWN * count), list(range(count))
        current = [None] * count

    def read(position: int) -> None:
        assert current is not None
        index = unread[position]
        digest, key = _hash_file(f"{base}/{names[index]}")
        current[index] = digest
        keys[4 * index : 4 * index + 4] = array("q", UNKNOWN if key is None else key)

    _for_each(len(unread), read, threads)
    changes = Changes()
    if current is None:  # every file holds its recorded digest: what differs is what the plan changed
        differing = _differing(cache.digests, "".join(wanted), 64)
    elif current == wanted:  # compared in C: the common case of an unchanged tree
        differing = []
    else:
        differing = list(itertools.compress(range(count), map(operator.ne, current, wanted)))
    changes.unchanged = count - len(differing)
    positions: dict[str, int] = {}
    for index in differing:
        now = cache.digests[64 * index : 64 * index + 64] if current is None else current[index]
        keys[4 * index : 4 * index + 4] = _UNKNOWN_KEYS
        rel = names[index]
        positions[rel] = index
        if now is None:
            changes.created.append(rel)
        else:
            changes.updated.append(rel)
            if listed_digest(index) != now:
                changes.conflicts.append(rel)
    if not (manifest_known and recorded):  # else the manifest lists exactly the planned files
        if manifest_known:  # listed by the stat cache
            where = cache.index()
            dropped = [(rel, cache.digests[64 * where[rel] : 64 * where[rel] + 64])
                       for rel in itertools.filterfalse(plan.__contains__, cache.paths)]
        else:
            dropped = [] if manifest is None else [(rel, manifest[rel]) for rel in manifest.keys() - plan.keys()]
        for rel, listed in dropped:
            now = _current(out / rel)
            if now is None:
                continue
            changes.deleted.append(rel)
            if now != listed:
                changes.conflicts.append(rel)
    for group in (changes.created, changes.updated, changes.deleted, changes.conflicts):
        group.sort()
    return _Scan(changes, names, joined, wanted, keys, hits, racy, old_manifest, manifest_known, manifest_key,
                 recorded, positions)


def compare(out: Path, plan: dict[str, str], *, stat_cache: Path | None = None,
            threads: int = IO_THREADS, known: TextDigests | None = None) -> Changes:
    """Compare an output tree with a plan, without writing anything (the stat cache in ``stat_cache`` is read,
    not written; ``known``: digests of planned texts already hashed)."""
    cache = StatCache(stat_cache, out)
    cache.load()
    return _scan(out, plan, cache, threads, known).changes


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


def _create(path: str, data: bytes) -> StatKey:
    """Create ``path`` (which must not exist: in a staging tree no reader sees, so no temporary file) holding
    ``data``, mode 0644 whatever the umask; its stat."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        st = os.fstat(fd)
        if stat.S_IMODE(st.st_mode) != 0o644:  # a umask took bits away (fchmod only then: one call fewer)
            os.fchmod(fd, 0o644)
            st = os.fstat(fd)
    finally:
        os.close(fd)
    return _stat_key(st)


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename, so readers never see half a file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """``atomic_write`` of bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _put(str(path), data)


def _make_folders(out: Path, files: Sequence[str], present: set[str], threads: int,
                  exists: Callable[[str], bool] | None = None) -> None:
    """Create the folders of ``files`` below ``out`` that are not in ``present`` (folders known to exist, so their
    parents too) and, with ``exists``, not found by it, each once: level by level, parents first, the folders of a
    level on ``threads`` threads."""
    out.mkdir(parents=True, exist_ok=True)
    missing: set[str] = set()
    for rel in files:
        folder = rel.rpartition("/")[0]
        while folder not in present and folder not in missing:
            if exists is not None and exists(folder):
                present.add(folder)
                break
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
          threads: int = IO_THREADS, known: TextDigests | None = None) -> Changes:
    """Apply a plan to ``out``; raise OutputConflict (writing nothing) on hand-edited files unless forced. With
    ``stat_cache`` (a machine-local folder) unchanged files are recognised by their stat, and the cache is
    updated after a successful write. A new output folder (``out`` missing) is written whole into a staging
    folder next to it, renamed into place once complete. ``known``: digests of planned texts already hashed."""
    cache = StatCache(stat_cache, out)
    if not os.path.lexists(out):
        written = _write_new(out, plan, cache, threads, known)
        if written is not None:
            return written
    cache.load()
    return _write_over(out, plan, force, cache, threads, known)


def _write_over(out: Path, plan: dict[str, str], force: bool, cache: StatCache, threads: int,
                known: TextDigests | None) -> Changes:
    """``write`` into an output folder holding files: only what changed, each file replaced atomically."""
    scan = _scan(out, plan, cache, threads, known)
    changes = scan.changes
    if changes.conflicts and not force:
        raise OutputConflict(changes.conflicts)
    pending = [*changes.created, *changes.updated]
    base = str(out)
    _make_folders(out, changes.created, {""}, threads, lambda folder: os.path.isdir(f"{base}/{folder}"))
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
    names, wanted, keys = scan.names, scan.wanted, scan.keys
    manifest_key = scan.manifest_key
    digests = "".join(wanted)
    if scan.manifest_known and scan.recorded and digests == cache.digests:
        manifest_written = False  # the manifest, known from the stat cache, records exactly this plan
    else:
        data = None
        if scan.manifest_known and scan.recorded:  # the manifest records the planned paths: patch what differs
            changed = _differing(cache.digests, digests, 64)
            if len(changed) <= _PATCH_AT_MOST:
                data = _patched_manifest(out / MANIFEST, scan.joined, cache.digests,
                                         [(names[index], index, wanted[index]) for index in changed])
        if data is None:
            data = manifest_text(dict(zip(names, wanted, strict=True))).encode("utf-8")
        manifest_written = scan.manifest is None or scan.manifest.encode("utf-8") != data or (
            os.stat(out / MANIFEST).st_size != len(data))
        if manifest_written:
            (out / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
            _put(str(out / MANIFEST), data)
        manifest_key = _manifest_key(out) if cache.path is not None else None
    settled = not (pending or changes.deleted or manifest_written) and scan.hits == len(names)
    if cache.path is not None and not (settled and scan.manifest_known):
        for rel, key in zip(pending, written, strict=True):
            index = scan.positions[rel]
            keys[4 * index : 4 * index + 4] = array("q", UNKNOWN if key is None else key)
        cache.save(names, scan.joined, digests, keys, manifest_key)
    return changes


def _staging(out: Path) -> Path:
    """A new, empty staging folder next to ``out`` (one a killed process of the same pid left is removed)."""
    staging = out.with_name(f".{out.name}.{os.getpid()}.fleetgen-new")
    if os.path.lexists(staging):
        if staging.is_dir() and not staging.is_symlink():
            shutil.rmtree(staging)
        else:
            staging.unlink()
    os.mkdir(staging)
    return staging


def _write_new(out: Path, plan: dict[str, str], cache: StatCache, threads: int,
               known: TextDigests | None) -> Changes | None:
    """``write`` into a missing ``out``: every file created (no temporary file, no rename) in a staging folder
    next to it, renamed to ``out`` once complete, so a failed or interrupted write leaves no ``out`` and no staging
    folder. None when ``out`` appeared meanwhile (then it is written as an existing tree)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    names = list(plan)
    texts = list(plan.values())
    keys: list[StatKey] = [UNKNOWN] * len(names)
    staging = _staging(out)
    try:
        _make_folders(staging, [*names, MANIFEST], {""}, threads)
        wanted = _planned_digests(plan, known)
        base = str(staging)
        chunk = 32  # consecutive files (mostly one folder's) per task: threads rarely contend for a folder's lock

        def create(number: int) -> None:
            for index in range(number * chunk, min((number + 1) * chunk, len(names))):
                keys[index] = _create(f"{base}/{names[index]}", texts[index].encode("utf-8"))

        _for_each(-(-len(names) // chunk), create, threads)
        manifest_key = _create(f"{base}/{MANIFEST}",
                               manifest_text(dict(zip(names, wanted, strict=True))).encode("utf-8"))
        try:
            os.rename(staging, out)  # atomic; fails if ``out`` appeared meanwhile and holds something
        except OSError:
            if not os.path.lexists(out):
                raise
            shutil.rmtree(staging, ignore_errors=True)
            return None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    cache.save(names, "\n".join(names), "".join(wanted), array("q", itertools.chain.from_iterable(keys)),
               manifest_key)
    return Changes(created=sorted(names))
