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
REFERENCES_FORMAT = "fleetgen-tree-references/1"
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
        for rel in self.paths:
            parent = parent_of(rel)
            while parent not in self.dirs:
                self.dirs.add(parent)
                parent = parent_of(parent)
        #: the last component of every file and folder: a token whose normalised path ends in another name can
        #: name neither (the exact filter that lets most words of a kustomization file skip path arithmetic)
        self._names = {p.rpartition("/")[2] for p in (*self.paths, *self.dirs)}  # posixpath.basename
        self._kustomization_files = [p for p in self.paths if p.rpartition("/")[2] in KUSTOMIZATION_FILES]
        self._digests: dict[str, str] = dict(files.digests) if isinstance(files, RecordedOutput) else {}
        self._references: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._known_references: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {}
        #: kustomization files whose strings were read in this run (not known from ``adopt_references``)
        self.references_found = 0
        self._nameless: set[str] = set()  # strings of kustomization files that name no file or folder anywhere
        self._reaches: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self._closures: dict[str, frozenset[str]] = {}
        self._tree_hashes: dict[str, str] = {}
        self._closure_hashes: dict[str, str] = {}
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
        return hashlib.sha256("\0".join(self.paths).encode("utf-8", "surrogatepass")).hexdigest()

    def stored_references(self) -> dict[str, Any]:
        """What ``references`` found for each kustomization file it read, for ``adopt_references`` in a later run:
        the strings of a file name the same files and folders while its text and every file name are the same."""
        return {"format": REFERENCES_FORMAT, "paths": self.paths_digest(),
                "references": {rel: [self.file_digest(rel), list(files), list(dirs)]
                               for rel, (files, dirs) in sorted(self._references.items())}}

    def adopt_references(self, stored: Any) -> None:
        """Take ``stored_references`` of an earlier run when it was made for the same file names; each entry is
        used only while the file's digest is the one stored with it."""
        if not isinstance(stored, dict) or stored.get("format") != REFERENCES_FORMAT or stored.get(
                "paths") != self.paths_digest() or not isinstance(stored.get("references"), dict):
            return
        known: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {}
        for rel, entry in stored["references"].items():
            if (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
                    and isinstance(entry[1], list) and isinstance(entry[2], list)
                    and all(isinstance(p, str) and p in self.files for p in entry[1])
                    and all(isinstance(p, str) and p in self.dirs for p in entry[2])):
                known[rel] = (entry[0], tuple(entry[1]), tuple(entry[2]))
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
        known = self._known_references.get(rel)
        if known is not None and known[0] == self.file_digest(rel):
            found = self._references[rel] = (known[1], known[2])
            return found
        self.references_found += 1
        base = posixpath.dirname(rel)
        files: list[str] = []
        dirs: list[str] = []
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
        found = self._references[rel] = (tuple(files), tuple(dirs))
        return found

    def closure_hash(self, directory: str) -> str:
        """Hash of the names and contents of a directory's input closure: the tree hash of each of its folders and
        the digest of each of its files (shared folders are hashed once, however many closures reach them)."""
        found = self._closure_hashes.get(directory)
        if found is None:
            folders, files = self.reach(directory)
            found = digest(*(f"dir\0{f}\0{self.tree_hash(f)}" for f in sorted(folders)),
                           *(f"file\0{rel}\0{self.file_digest(rel)}" for rel in sorted(files)))
            self._closure_hashes[directory] = found
        return found

    def tree_hash(self, directory: str) -> str:
        """Hash of every file below a directory (its names and contents)."""
        found = self._tree_hashes.get(directory)
        if found is None:
            found = digest(*(f"{rel}\0{self.file_digest(rel)}" for rel in self.below(directory)))
            self._tree_hashes[directory] = found
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


def _below(paths: list[str], directory: str) -> list[str]:
    """The entries of the sorted ``paths`` under ``directory`` (recursively; all of them for the root)."""
    if not directory:
        return list(paths)
    prefix = directory + "/"
    return paths[bisect.bisect_left(paths, prefix):bisect.bisect_left(paths, prefix + "\U0010ffff")]
