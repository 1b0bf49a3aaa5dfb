"""The rendered fleet repo as Flux's source sees it: files, kustomization closures and their hashes."""

from __future__ import annotations

import bisect
import hashlib
import posixpath
import re
import threading
from collections.abc import Mapping

from generator.build.model import KUSTOMIZATION_FILES, BuildError, digest, load_yaml

#: a quoted string or a run of characters that can be in a plain YAML scalar naming a path
_PATH_TOKEN = re.compile(r"""'[^'\n]*'|"[^"\n]*"|[^\s,\[\]{}'"#]+""")


_REMOTE_PREFIXES = ("git::", "gh:", "ssh://", "https://", "http://", "git@", "github.com:", "github.com/")


def is_local_relative(path: str) -> bool:
    """fluxcd/pkg/kustomize IsLocalRelativePath: not remote, not absolute."""
    lower = path.lower()
    if any(len(prefix) < len(path) and lower.startswith(prefix) for prefix in _REMOTE_PREFIXES):
        return False
    return not posixpath.isabs(path) and not posixpath.isabs(lower.removeprefix("file://"))


class FleetTree:
    """The rendered fleet repo (files relative to its root) with the input closure of every directory."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = dict(files)
        self.paths = sorted(self.files)
        self.dirs: set[str] = {""}
        for rel in self.paths:
            parent = posixpath.dirname(rel)
            while parent not in self.dirs:
                self.dirs.add(parent)
                parent = posixpath.dirname(parent)
        #: the last component of every file and folder: a token whose normalised path ends in another name can
        #: name neither (the exact filter that lets most words of a kustomization file skip path arithmetic)
        self._names = {posixpath.basename(p) for p in (*self.paths, *self.dirs)}
        self._digests: dict[str, str] = {}
        self._references: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._nameless: set[str] = set()  # strings of kustomization files that name no file or folder anywhere
        self._closures: dict[str, frozenset[str]] = {}
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
        if not directory:
            return list(self.paths)
        prefix = directory + "/"
        start = bisect.bisect_left(self.paths, prefix)
        end = bisect.bisect_left(self.paths, prefix + "\U0010ffff")
        return self.paths[start:end]

    def kustomization_file(self, directory: str) -> str | None:
        """The directory's kustomization file, if it has one."""
        for name in KUSTOMIZATION_FILES:
            rel = posixpath.join(directory, name) if directory else name
            if rel in self.files:
                return rel
        return None

    def closure(self, directory: str) -> frozenset[str]:
        """Every file a kustomize build of ``directory`` may read: all files below it plus, through any
        string in a kustomization file that names a file or folder of the repo, those too (a superset)."""
        with self._lock:
            return self._closure(directory, set())

    def _closure(self, directory: str, active: set[str]) -> frozenset[str]:
        found = self._closures.get(directory)
        if found is not None:
            return found
        active.add(directory)
        below = self.below(directory)
        files = set(below)
        for rel in below:
            if posixpath.basename(rel) not in KUSTOMIZATION_FILES:
                continue
            named_files, named_dirs = self.references(rel)
            files.update(named_files)
            for target in named_dirs:
                if target not in active and not (
                    target == directory or target.startswith(directory + "/") if directory else True
                ):
                    files |= self._closure(target, active)
        active.discard(directory)
        result = frozenset(files)
        if not active:
            self._closures[directory] = result
        return result

    def references(self, rel: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(files, folders) of the repo that some string of the kustomization file ``rel`` names, relative to its
        folder (``file://`` allowed; nothing above the repo root)."""
        found = self._references.get(rel)
        if found is not None:
            return found
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
        """Hash of the names and contents of a directory's input closure."""
        found = self._closure_hashes.get(directory)
        if found is None:
            files = sorted(self.closure(directory))
            found = digest(*(f"{rel}\0{self.file_digest(rel)}" for rel in files))
            self._closure_hashes[directory] = found
        return found

    def tree_hash(self, directory: str) -> str:
        """Hash of every file below a directory (a chart)."""
        return digest(*(f"{rel}\0{self.file_digest(rel)}" for rel in self.below(directory)))

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
                    try:
                        docs = load_yaml(self.files[rel])
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
