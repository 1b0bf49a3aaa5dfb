"""The rendered fleet repo as Flux's source sees it: files, kustomization closures and their hashes."""

from __future__ import annotations

import bisect
import hashlib
import posixpath
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from generator.build.model import KUSTOMIZATION_FILES, BuildError, digest, load_yaml

#: Bump when what ``FleetTree.references`` finds in a kustomization file changes.
REFERENCES_FORMAT = "fleetgen-tree-references/2"
#: Bump when the layout of ``FleetTree.stored_hashes`` changes.
HASHES_FORMAT = "fleetgen-tree-hashes/1"
#: Stored references are loaded only once a run has had to read this many kustomization files itself (a run that
#: reads a few, e.g. those of the one cluster edited, reads them faster than it loads what every file names).
REFERENCES_LOAD_FROM = 128
#: a quoted string or a run of characters that can be in a plain YAML scalar naming a path
_PATH_TOKEN = re.compile(r"""'[^'\n]*'|"[^"\n]*"|[^\s,\[\]{}'"#]+""")


_REMOTE_PREFIXES = ("git::", "gh:", "ssh://", "https://", "http://", "git@", "github.com:", "github.com/")


def is_local_relative(path: str) -> bool:
    """fluxcd/pkg/kustomize IsLocalRelativePath: not remote, not absolute."""
    lower = path.lower()
    if any(len(prefix) < len(path) and lower.startswith(prefix) for prefix in _REMOTE_PREFIXES):
        return False
    return not posixpath.isabs(path) and not posixpath.isabs(lower.removeprefix("file://"))


def _parent(rel: str) -> str:
    return rel.rpartition("/")[0]


class OutputChanged(BaseException):
    """A file of the rendered output is not the one the render recorded (changed, missing or unreadable): the
    build plans the fleet instead. A BaseException, like KeyboardInterrupt, so that no handler of the build's own
    errors (which catch Exception) turns it into a build error on its way out."""


class RecordedOutput(Mapping[str, str]):
    """The planned files of a render, read from its output folder on first use, each checked against the sha256
    the render recorded (``OutputChanged`` when it differs)."""

    def __init__(self, out: Path, digests: Mapping[str, str]) -> None:
        self.out = out
        self.digests = digests
        self._texts: dict[str, str] = {}

    def __getitem__(self, rel: str) -> str:
        text = self._texts.get(rel)
        if text is None:
            expected = self.digests[rel]
            try:
                data = (self.out / rel).read_bytes()
            except OSError as exc:
                raise OutputChanged(f"{rel}: {exc.strerror or exc}") from exc
            if hashlib.sha256(data).hexdigest() != expected:
                raise OutputChanged(f"{rel} is not the file the last render wrote")
            text = self._texts[rel] = data.decode("utf-8")
        return text

    def __contains__(self, rel: object) -> bool:
        return rel in self.digests

    def __iter__(self) -> Iterator[str]:
        return iter(self.digests)

    def __len__(self) -> int:
        return len(self.digests)


class FleetTree:
    """The rendered fleet repo (files relative to its root) with the input closure of every directory.

    ``files`` is a plan's ``{path: text}`` or a ``RecordedOutput`` (then the recorded sha256 of each file are its
    digests, and a text is read only when used)."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files: Mapping[str, str] = files if isinstance(files, RecordedOutput) else dict(files)
        self.paths = sorted(self.files)
        self.dirs: set[str] = {""}
        # a path's folder is what precedes its last "/" when no part is empty (posixpath.dirname otherwise)
        parent_of: Callable[[str], str] = (posixpath.dirname if any(
            "//" in rel or rel.startswith("/") or rel.endswith("/") for rel in self.paths) else _parent)
        #: folders are exactly the prefixes ending before a "/", and no name has a line break (what
        #: ``adopt_hashes`` relies on: it compares the paths, and their sha256, joined by line breaks)
        self._lines = "\n".join(self.paths)
        self._plain_paths = parent_of is _parent and self._lines.count("\n") == max(len(self.paths) - 1, 0)
        for rel in self.paths:
            parent = parent_of(rel)
            while parent not in self.dirs:
                self.dirs.add(parent)
                parent = parent_of(parent)
        #: the last component of every file and folder: a token whose normalised path ends in another name can
        #: name neither (the exact filter that lets most words of a kustomization file skip path arithmetic)
        self._names = {p.rpartition("/")[2] for p in (*self.paths, *self.dirs)}  # posixpath.basename
        self._kustomization_files = [p for p in self.paths if p.rpartition("/")[2] in KUSTOMIZATION_FILES]
        #: whether every file's sha256 is known without reading it (the render's record): what ``adopt_hashes``
        #: compares with the tree the stored hashes were computed for
        self.recorded = isinstance(files, RecordedOutput) and self._plain_paths
        self._digests: dict[str, str] = dict(files.digests) if isinstance(files, RecordedOutput) else {}
        self._paths_digest: str | None = None
        self._references: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._known_references: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {}
        #: what the strings of each kustomization file read would name, had the repo such a file or folder (with
        #: a last component some file or folder has): which added files and folders a closure may come to reach
        self._misses: dict[str, tuple[str, ...]] = {}
        #: where the stored references come from when first needed (``adopt_references``), None once asked
        self._stored_references: Callable[[], Any] | None = None
        #: kustomization files whose strings were read in this run (not known from ``adopt_references``)
        self.references_found = 0
        #: of those, the ones read when the stored references had been taken (or there were none)
        self.references_unknown = 0
        self._nameless: set[str] = set()  # strings of kustomization files that name no file or folder anywhere
        self._reaches: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self._closures: dict[str, frozenset[str]] = {}
        self._tree_hashes: dict[str, str] = {}
        self._closure_hashes: dict[str, str] = {}
        #: folders whose tree hash was asked for by a caller (a chart's folder), not for a closure
        self._tree_roots: set[str] = set()
        #: what ``adopt_hashes`` took from an earlier run for this tree, and the folders whose files changed since
        self._adopted_closures: dict[str, Any] = {}
        self._adopted_trees: dict[str, Any] = {}
        self._adopted_names: list[str] = []
        #: positions (in ``_adopted_names``) of the folders with a file changed, added or removed since; of the files
        #: and folders added since; the files changed or removed since
        self._changed_folders: set[str] = set()
        self._added: set[str] = set()
        self._changed_files: set[str] = set()
        #: the closures and trees whose stored hash this run took (a closure: the lines of its entry after the hash)
        self._closures_taken: dict[str, list[str]] = {}
        self._trees_taken: set[str] = set()
        #: whether ``adopt_hashes`` took hashes of an earlier run (for the same tree but for the files changed)
        self.hashes_adopted = False
        self._lock = threading.RLock()

    def file_digest(self, rel: str) -> str:
        """sha256 of one file's text."""
        found = self._digests.get(rel)
        if found is None:
            found = self._digests[rel] = hashlib.sha256(self.files[rel].encode("utf-8")).hexdigest()
        return found

    def below(self, directory: str) -> list[str]:
        """Every file under a directory (recursively), sorted."""
        return _below(self.paths, directory)

    def kustomization_file(self, directory: str) -> str | None:
        """The directory's kustomization file, if it has one."""
        for name in KUSTOMIZATION_FILES:
            rel = posixpath.join(directory, name) if directory else name
            if rel in self.files:
                return rel
        return None

    def paths_digest(self) -> str:
        """Hash of the names of every file (so of every folder and last component too)."""
        if self._paths_digest is None:
            self._paths_digest = hashlib.sha256("\0".join(self.paths).encode("utf-8", "surrogatepass")).hexdigest()
        return self._paths_digest

    def stored_references(self) -> dict[str, Any]:
        """What ``references`` found for each kustomization file it read, for ``adopt_references`` in a later run:
        the strings of a file name the same files and folders while its text and every file name are the same."""
        return {"format": REFERENCES_FORMAT, "paths": self.paths_digest(),
                "references": {rel: [self.file_digest(rel), list(files), list(dirs), list(self._misses[rel])]
                               for rel, (files, dirs) in sorted(self._references.items())}}

    def adopt_references(self, stored: Any) -> None:
        """Take ``stored_references`` of an earlier run when it was made for the same file names; each entry is
        used only while the file's digest is the one stored with it. ``stored`` may be a function giving them: it
        is then called only once this run has read ``REFERENCES_LOAD_FROM`` kustomization files itself."""
        if callable(stored):
            self._stored_references = stored
            return
        self._stored_references = None
        if not isinstance(stored, dict) or stored.get("format") != REFERENCES_FORMAT or stored.get(
                "paths") != self.paths_digest() or not isinstance(stored.get("references"), dict):
            return
        known: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {}
        for rel, entry in stored["references"].items():
            if (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], str)
                    and isinstance(entry[1], list) and isinstance(entry[2], list) and isinstance(entry[3], list)
                    and all(isinstance(p, str) and p in self.files for p in entry[1])
                    and all(isinstance(p, str) and p in self.dirs for p in entry[2])
                    and all(isinstance(p, str) and p not in self.files and p not in self.dirs for p in entry[3])):
                known[rel] = (entry[0], tuple(entry[1]), tuple(entry[2]), tuple(entry[3]))
        self._known_references = known

    def closure(self, directory: str) -> frozenset[str]:
        """Every file a kustomize build of ``directory`` may read: all files below it plus, through any
        string in a kustomization file that names a file or folder of the repo, those too (a superset)."""
        found = self._closures.get(directory)
        if found is None:
            folders, files = self.reach(directory)
            found = self._closures[directory] = frozenset(files.union(*(self.below(f) for f in folders)))
        return found

    def reach(self, directory: str) -> tuple[frozenset[str], frozenset[str]]:
        """The closure of ``directory`` as (folders, files): everything below each of the folders, and the
        files. The folders are ``directory`` and every folder reached through strings of kustomization files
        (those inside a folder already reached may be left out); the files are the files such strings name."""
        with self._lock:
            folders, files, _ = self._reach(directory, set())
            return folders, files

    def _reach(self, directory: str, active: set[str]) -> tuple[frozenset[str], frozenset[str], bool]:
        """``reach`` while the folders in ``active`` are being visited (a folder reaching one of them is cut
        there, and says so: only a result that was not cut is kept for later calls)."""
        found = self._reaches.get(directory)
        if found is not None:
            return *found, False
        active.add(directory)
        folders, files, cut = {directory}, set[str](), False
        for rel in self._kustomization_files_below(directory):
            named_files, named_dirs = self.references(rel)
            files.update(named_files)
            for target in named_dirs:
                if target == directory or (target.startswith(directory + "/") if directory else True):
                    continue
                if target in active:
                    cut = True
                    continue
                more_folders, more_files, more_cut = self._reach(target, active)
                folders |= more_folders
                files |= more_files
                cut = cut or more_cut
        active.discard(directory)
        result = (frozenset(folders), frozenset(files))
        if not cut:
            self._reaches[directory] = result
        return *result, cut

    def _kustomization_files_below(self, directory: str) -> list[str]:
        """The kustomization files under a directory (recursively), sorted."""
        return _below(self._kustomization_files, directory)

    def references(self, rel: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(files, folders) of the repo that some string of the kustomization file ``rel`` names, relative to its
        folder (``file://`` allowed; nothing above the repo root)."""
        found = self._references.get(rel)
        if found is not None:
            return found
        if self._stored_references is not None and self.references_found >= REFERENCES_LOAD_FROM:
            with self._lock:
                if self._stored_references is not None:
                    self.adopt_references(self._stored_references())
        known = self._known_references.get(rel)
        if known is not None and known[0] == self.file_digest(rel):
            self._misses[rel] = known[3]
            found = self._references[rel] = (known[1], known[2])
            return found
        self.references_found += 1
        self.references_unknown += self._stored_references is None
        base = posixpath.dirname(rel)
        files: list[str] = []
        dirs: list[str] = []
        misses: list[str] = []
        # each distinct string once, in sorted order; strings already known to name nothing are dropped at once
        for raw in sorted(set(_PATH_TOKEN.findall(self.files[rel])) - self._nameless):
            token = (raw[1:-1] if raw[0] in "'\"" else raw).removesuffix(":")
            if not token or len(token) > 1024:
                continue
            token = token.removeprefix("file://")
            last = token.rstrip("/").rpartition("/")[2]
            if last not in self._names and last not in ("", ".", ".."):
                self._nameless.add(raw)  # its normalised path ends in ``last``, which no file or folder is called
                continue
            target = posixpath.normpath(posixpath.join(base, token))
            if target == ".":
                target = ""
            if target.startswith("../") or target == "..":
                continue
            if target in self.files:
                files.append(target)
            elif target in self.dirs:
                dirs.append(target)
            elif not target.startswith("/"):
                misses.append(target)
        self._misses[rel] = tuple(misses)
        found = self._references[rel] = (tuple(files), tuple(dirs))
        return found

    def closure_hash(self, directory: str) -> str:
        """Hash of the names and contents of a directory's input closure: the tree hash of each of its folders and
        the digest of each of its files (shared folders are hashed once, however many closures reach them); the
        one an earlier run stored when nothing it covers changed since (``adopt_hashes``)."""
        found = self._closure_hashes.get(directory)
        if found is None:
            found = self._adopted_closure(directory)
            if found is None:
                found = self._computed_closure_hash(directory)
            self._closure_hashes[directory] = found
        return found

    def _computed_closure_hash(self, directory: str) -> str:
        folders, files = self.reach(directory)
        return digest(*(f"dir\0{f}\0{self._tree_hash(f)}" for f in sorted(folders)),
                      *(f"file\0{rel}\0{self.file_digest(rel)}" for rel in sorted(files)))

    def tree_hash(self, directory: str) -> str:
        """Hash of every file below a directory (its names and contents); the one an earlier run stored when no
        file below it changed since (``adopt_hashes``)."""
        found = self._tree_hashes.get(directory)
        if found is None:
            found = self._adopted_tree_hash(directory)
            if found is None:
                found = self._tree_hash(directory)
            else:
                self._tree_hashes[directory] = found
                self._trees_taken.add(directory)
        self._tree_roots.add(directory)
        return found

    def _tree_hash(self, directory: str) -> str:
        found = self._tree_hashes.get(directory)
        if found is None:
            found = digest(*(f"{rel}\0{self.file_digest(rel)}" for rel in self.below(directory)))
            self._tree_hashes[directory] = found
        return found

    # -- the hashes of an earlier run: each taken while none of the files it covers changed since --
    #
    # Stored (``stored_hashes``): the tree they were computed for (every file's name and sha256, one a line), the
    # names of the folders and paths the entries cite (by their position), and per directory one string of lines:
    # its closure hash; the positions of its folders; the positions of what the strings of kustomization files below
    # them would name had the repo such a file or folder; the files they name outside those folders (a string, not
    # lists: read faster, and parsed only when the directory is asked for).

    @property
    def hashes_computed(self) -> int:
        """Closure and tree hashes this run computed (``adopt_hashes`` had none that still held)."""
        return (len(self._closure_hashes) - len(self._closures_taken)
                + len(self._tree_roots) - len(self._trees_taken))

    def stored_hashes(self, binding: str) -> dict[str, Any] | None:
        """The closure and tree hashes this run used, for ``adopt_hashes`` in a later run, with what each covers and
        the tree they were computed for; ``binding`` names what else they depend on (the build's code). None when
        the files' sha256 are not known without hashing them (not the render's record)."""
        if not self.recorded:
            return None
        digests = "\n".join(self._digests[rel] for rel in self.paths)
        if digests.count("\n") != max(len(self.paths) - 1, 0):
            return None  # (no sha256 of the record has a line break: one a line)
        names: dict[str, int] = {}

        def positions(found: list[str]) -> str:
            return ",".join(str(names.setdefault(name, len(names))) for name in found)

        closures: dict[str, str] = {}
        for directory in sorted(self._closure_hashes):
            taken = self._closures_taken.get(directory)
            covered = self._stored_cover(taken) if taken is not None else None
            if covered is None:
                folders, named = self.reach(directory)
                covered = (sorted(folders),
                           sorted({miss for folder in folders for rel in self._kustomization_files_below(folder)
                                   for miss in self._misses_of(rel)}),
                           sorted(rel for rel in named if folders.isdisjoint(_ancestors(rel))))
            reached, missing, outside = covered
            closures[directory] = "\n".join(
                (self._closure_hashes[directory], positions(reached), positions(missing), *outside))
        trees = {d: f"{self._tree_hashes[d]}\n{positions([d])}" for d in sorted(self._tree_roots)}
        return {"format": HASHES_FORMAT, "binding": binding, "paths": self._lines, "digests": digests,
                "names": list(names), "closures": closures, "trees": trees}

    def _stored_cover(self, taken: list[str]) -> tuple[list[str], list[str], list[str]] | None:
        """(folders, what would be named, files named outside the folders) of a closure taken from the stored
        hashes (the lines after its hash), or None if they do not cite stored names."""
        found = []
        for line in taken[:2]:
            cited = line.split(",") if line else []
            if not all(i.isascii() and i.isdigit() and int(i) < len(self._adopted_names) for i in cited):
                return None
            found.append([self._adopted_names[int(i)] for i in cited])
        return found[0], found[1], taken[2:]

    def adopt_hashes(self, stored: Any, binding: str) -> None:
        """Take the hashes ``stored_hashes`` gave for an earlier tree and the same ``binding``: a closure hash is then
        used while none of its folders has a file changed, added or removed since, none of the files it names
        outside them changed or was removed, and no string of a kustomization file below its folders names a file
        or folder added since; a tree hash while no file below its folder changed, was added or removed (everything
        else is computed, as without them). Nothing is taken when a file or folder was added whose last component
        no file or folder had (a string no closure noted might name it)."""
        if (not self.recorded or not isinstance(stored, dict) or stored.get("format") != HASHES_FORMAT
                or stored.get("binding") != binding):
            return
        paths, before, names, closures, trees = (
            stored.get(k) for k in ("paths", "digests", "names", "closures", "trees"))
        if (not isinstance(paths, str) or not isinstance(before, str) or not isinstance(names, list)
                or not isinstance(closures, dict) or not isinstance(trees, dict)
                or not all(isinstance(name, str) for name in names)):
            return
        changes = self._changes_since(paths, before)
        if changes is None:
            return
        changed, added = changes
        touched: set[str] = set()
        for rel in changed:
            touched |= _ancestors(rel)
        self._changed_files = set(changed)
        self._added = {str(i) for i, name in enumerate(names) if name in added} if added else set()
        self._changed_folders = {str(i) for i, name in enumerate(names) if name in touched} if touched else set()
        self._adopted_names = names
        self._adopted_closures = closures
        self._adopted_trees = trees
        self.hashes_adopted = True

    def _changes_since(self, paths: str, digests: str) -> tuple[list[str], set[str]] | None:
        """The files changed, added or removed since an earlier tree (its paths, and their sha256, each joined by
        line breaks), and the files and folders added; None when that tree is not usable (a file or folder added
        whose last component no file or folder had)."""
        if paths == self._lines:  # the same files (so the same folders); their sha256 line by line
            now = "\n".join(self._digests[rel] for rel in self.paths)
            if digests == now:  # (neither has a line break in a sha256: as many lines as files)
                return [], set()
            if digests.count("\n") != now.count("\n"):
                return None
            return [rel for rel, old, new in zip(self.paths, digests.split("\n"), now.split("\n"), strict=True)
                    if old != new], set()
        earlier = paths.split("\n") if paths else []
        sums = digests.split("\n") if digests else []
        if len(earlier) != len(sums) or earlier != sorted(earlier):
            return None
        before = dict(zip(earlier, sums, strict=True))
        added = [rel for rel in self.paths if rel not in before]
        removed = [rel for rel in earlier if rel not in self._digests]
        changed = [rel for rel in self.paths if rel in before and before[rel] != self._digests[rel]]
        # a folder is added when no earlier file is below it (the folders of the earlier tree, as in ``__init__``)
        new_folders = {folder for rel in added for folder in _ancestors(rel)
                       if folder and not _below(earlier, folder)}
        # each a name some earlier file or folder had: a component of an earlier path (one a line, no empty one)
        lines = f"\n{paths}\n"
        for name in {rel.rpartition("/")[2] for rel in (*added, *new_folders)}:
            if not any(f"{before}{name}{after}" in lines for before in "/\n" for after in "/\n"):
                return None
        return changed + added + removed, {*added, *new_folders}

    def _misses_of(self, rel: str) -> tuple[str, ...]:
        """What the strings of the kustomization file ``rel`` would name, had the repo such a file or folder."""
        self.references(rel)  # (noted with its references)
        return self._misses[rel]

    def _adopted_closure(self, directory: str) -> str | None:
        """The stored closure hash of ``directory`` when nothing it covers changed since it was stored, else None."""
        entry = self._adopted_closures.get(directory)
        if not isinstance(entry, str):
            return None
        found, *rest = entry.split("\n")
        if (len(rest) < 2 or not self._changed_folders.isdisjoint(rest[0].split(","))
                or (self._added and not self._added.isdisjoint(rest[1].split(",")))
                or (self._changed_files and not self._changed_files.isdisjoint(rest[2:]))):
            return None
        self._closures_taken[directory] = rest
        return found

    def _adopted_tree_hash(self, directory: str) -> str | None:
        """The stored tree hash of ``directory`` when no file below it changed since it was stored, else None."""
        entry = self._adopted_trees.get(directory)
        if not isinstance(entry, str):
            return None
        found, _, position = entry.partition("\n")
        if (not (position.isascii() and position.isdigit()) or int(position) >= len(self._adopted_names)
                or self._adopted_names[int(position)] != directory or position in self._changed_folders):
            return None
        return found

    def generated_resources(self, directory: str) -> list[str]:
        """What kustomize-controller lists when a path has no kustomization file: every Kubernetes YAML
        file below it, and each sub-folder that has a kustomization file (not descended into)."""
        entries: list[str] = []

        def walk(current: str) -> None:
            prefix = current + "/" if current else ""
            names: set[str] = set()
            for rel in self.below(current):
                names.add(rel[len(prefix):].split("/", 1)[0])
            for name in sorted(names):
                rel = prefix + name
                if rel in self.files:
                    if posixpath.splitext(name)[1] not in (".yaml", ".yml"):
                        continue
                    text = self.files[rel]
                    try:
                        docs = load_yaml(text)
                    except Exception as exc:  # ruamel raises several unrelated types
                        raise BuildError(f"failed to decode Kubernetes YAML from {rel}: {exc}") from exc
                    if not all(isinstance(doc, dict) for doc in docs):
                        raise BuildError(f"failed to decode Kubernetes YAML from {rel}: not a mapping")
                    entries.append("./" + rel[len(directory) + 1:] if directory else "./" + rel)
                elif self.kustomization_file(rel) is not None:
                    entries.append("./" + rel[len(directory) + 1:] if directory else "./" + rel)
                else:
                    walk(rel)

        walk(directory)
        return entries


def _ancestors(rel: str) -> set[str]:
    """Every folder above a path (the root ``""`` included)."""
    found = set()
    while rel:
        rel = rel.rpartition("/")[0]
        found.add(rel)
    return found


def _below(paths: list[str], directory: str) -> list[str]:
    """The entries of the sorted ``paths`` under ``directory`` (recursively; all of them for the root)."""
    if not directory:
        return list(paths)
    prefix = directory + "/"
    return paths[bisect.bisect_left(paths, prefix):bisect.bisect_left(paths, prefix + "\U0010ffff")]
