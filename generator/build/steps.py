"""The state every build step shares: the work tree, memoised YAML, the step cache and the statistics."""

from __future__ import annotations

import hashlib
import json
import posixpath
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from generator.build.cache import ClusterIndex, SingleFlight, StepCache, code_fingerprint
from generator.build.charts import ChartResolver, offline_resolver
from generator.build.model import (
    NEEDED_KINDS,
    BuildError,
    BuildOptions,
    BuildStats,
    ClusterState,
    NaiveStep,
    Obj,
    Step,
    T,
    as_map,
    digest,
    json_default,
    load_yaml,
    meta_of,
    redact,
    spec_of,
    split_documents,
)
from generator.build.tree import FleetTree
from generator.tools import Toolset
from generator.yamlio import dump_documents

#: Where the step cache keeps what each kustomization file of the last tree names (``FleetTree.references``).
_REFERENCES_KEY = "tree/references"
_REFERENCES_RESAVE_FROM = 16
#: Where the step cache keeps the closure and tree hashes of the last tree (``FleetTree.stored_hashes``).
_HASHES_KEY = "tree/hashes"
_HASHES_RESAVE_FROM = 16


class StepRunner:
    """What every step shares: the work tree, memoised YAML, the cache, statistics, repo paths."""

    def __init__(
        self,
        files: Mapping[str, str],
        *,
        git_url: str,
        tools: Toolset,
        options: BuildOptions,
        cache_dir: Path | None,
        git_path: str = "",
        fleet_root: str = "",
        mounts: Mapping[str, str] | None = None,
        charts: ChartResolver | None = None,
    ) -> None:
        """``files`` is the rendered output (relative paths); the fleet repo is its ``fleet_root`` folder,
        found at ``git_path`` in the git repository Flux syncs. ``mounts`` maps further folders of that git
        repository (e.g. the Crossplane ``infrastructure`` repo) to folders of the output."""
        self.tree = FleetTree(files)
        self.git_prefix = git_path.strip("/")
        self.fleet_root = fleet_root.strip("/")
        self.mounts = {self.git_prefix: self.fleet_root}
        self.mounts.update({k.strip("/"): v.strip("/") for k, v in (mounts or {}).items()})
        self.git_url = git_url
        self.tools = tools
        self.options = options
        self.cache = StepCache(cache_dir if options.use_cache else None)
        self.tree.adopt_references(lambda: self.cache.get(_REFERENCES_KEY))  # read when many files are to be read
        self.flight = SingleFlight()
        self.stats = BuildStats()
        self.naive: list[NaiveStep] = []
        self.fingerprint = digest(tools.fingerprint(), code_fingerprint())
        if self.tree.recorded:
            self.tree.adopt_hashes(self.cache.get_checked(_HASHES_KEY), self.fingerprint)
        self._index = ClusterIndex(self.fingerprint)
        self._work: Path | None = None
        self._written: set[str] = set()
        self._work_lock = threading.Lock()
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._parsed: dict[bytes, str] = {}
        self._dumped: dict[bytes, str] = {}
        self._chart_hashes: dict[str, str] = {}
        self._charts_hash: str | None = None
        #: what a cluster's key holds besides the cluster and what it read (``Builder._cluster_key``)
        self._key_settings: list[str] | None = None
        #: (hub, folder of the hub's Argo CD objects) when Argo CD delivers the apps
        self.argocd: tuple[str, str] | None = None
        self.charts = charts or offline_resolver(tools)

    def work_dir(self, needs: Iterable[str] = ()) -> Path:
        """The work folder, with ``needs`` (files of the rendered output) written below ``tree/``.

        Files are written lazily, each once per run, so a build that is mostly cached writes little. A
        ``--fleet-dir`` given by the user is emptied and gets the whole rendered fleet, for inspection.
        """
        with self._work_lock:
            if self._work is None:
                if self.options.work_dir is not None:
                    base = self.options.work_dir.resolve()
                    if (base / "tree").exists():  # stale files would reach helm, which reads whole charts
                        shutil.rmtree(base / "tree")
                    base.mkdir(parents=True, exist_ok=True)
                    needs = self.tree.paths
                else:
                    self._scratch = tempfile.TemporaryDirectory(prefix="fleetgen-build-")
                    base = Path(self._scratch.name)
                (base / "tree").mkdir(exist_ok=True)
                (base / "scratch").mkdir(exist_ok=True)
                self._work = base
            root = self._work / "tree"
            for rel in needs:
                if rel in self._written:
                    continue
                target = root / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(self.tree.files[rel], encoding="utf-8")
                self._written.add(rel)
            return self._work

    def store_references(self) -> None:
        """Keep what the kustomization files of this tree name for the next run, when this run had to read more
        than a few of them (fewer cost less to read again than to rewrite the whole record)."""
        if self.tree.references_unknown >= _REFERENCES_RESAVE_FROM:
            self.cache.put(_REFERENCES_KEY, self.tree.stored_references())

    def store_tree_hashes(self) -> None:
        """Keep the closure and tree hashes of this tree for the next run, when none were taken from the last run
        or more than a few had to be computed (fewer cost less to compute again than the whole record to rewrite;
        the next run takes the stored ones that still hold, and computes the others)."""
        computed = self.tree.hashes_computed
        if computed >= _HASHES_RESAVE_FROM or (computed and not self.tree.hashes_adopted):
            stored = self.tree.stored_hashes(self.fingerprint)
            if stored is not None:
                self.cache.put_checked(_HASHES_KEY, stored)

    def close(self) -> None:
        """Remove the temporary work tree."""
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
            self._work = None

    def parse_stream(self, text: str, what: str) -> list[Obj]:
        """The objects of a kustomize or helm output stream."""
        out: list[Obj] = []
        for chunk in split_documents(text):
            memo_key = hashlib.sha1(chunk.encode("utf-8")).digest()
            parsed = self._parsed.get(memo_key)
            if parsed is None:
                try:
                    docs = load_yaml(chunk)
                except Exception as exc:  # ruamel raises several unrelated types
                    raise BuildError(f"{what}: output is not valid YAML: {exc}") from exc
                parsed = self._parsed[memo_key] = json.dumps(docs, ensure_ascii=False, default=json_default)
            for doc in json.loads(parsed):
                if not isinstance(doc, dict):
                    raise BuildError(f"{what}: a document is not a mapping: {str(doc)[:200]!r}")
                if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
                    out.extend(item for item in doc["items"] if isinstance(item, dict))
                    continue
                meta = doc.get("metadata")
                if not (doc.get("apiVersion") and doc.get("kind") and isinstance(meta, dict) and meta.get("name")):
                    snippet = chunk.strip()[:300]
                    raise BuildError(f"{what}: an object has no apiVersion, kind or metadata.name:\n{snippet}")
                out.append(doc)
        return out

    def golden_text(self, obj: Obj) -> str:
        """The golden file text of an object (Secret values redacted)."""
        shown = redact(obj)
        key = hashlib.sha1(json.dumps(shown, ensure_ascii=False).encode("utf-8")).digest()
        text = self._dumped.get(key)
        if text is None:
            text = self._dumped[key] = dump_documents([shown])
        return text

    def _step(self, key: str, compute: Callable[[], T], encode: Callable[[T], Any], decode: Callable[[Any], T]) -> T:
        """Run (or reuse from this run, or load from disk) one keyed step."""
        here = False

        def load_or_compute() -> T:
            nonlocal here
            here = True
            stored = self.cache.get(key)
            if stored is not None:
                self.stats.add(steps_cached=1)
                return decode(stored)
            value = compute()
            self.cache.put(key, encode(value))
            self.stats.add(steps_built=1)
            return value

        result = self.flight.get(key, load_or_compute)
        if not here:
            self.stats.add(steps_shared=1)
        return result

    def repo_path(self, path: str, what: str) -> str:
        """A path of the git repository Flux syncs as a path of the rendered output."""
        cleaned = posixpath.normpath("/" + str(path or "").strip()).lstrip("/")
        matches = [m for m in self.mounts if not m or cleaned == m or cleaned.startswith(m + "/")]
        if not matches:
            roots = ", ".join(f"'{m}'" for m in sorted(self.mounts))
            raise BuildError(f"{what}: path '{path}' is outside the rendered folders of the git repository ({roots})")
        mount = max(matches, key=len)
        rest = cleaned[len(mount):].lstrip("/")
        return "/".join(p for p in (self.mounts[mount], rest) if p)

    def flux_dir(self, path: str, what: str) -> str:
        """A Flux path (relative to the git repo root) as a folder of the rendered output."""
        directory = self.repo_path(path, what)
        if directory not in self.tree.dirs:
            raise BuildError(f"{what}: path '{path}' does not exist in the rendered fleet")
        return directory

    def _add(self, step: Step, obj: Obj, namespace: str) -> None:
        meta = meta_of(obj)
        kind = str(obj.get("kind"))
        step.ids.append((str(obj.get("apiVersion")), kind, namespace, str(meta.get("name"))))
        step.texts.append(self.golden_text(obj))
        if kind in NEEDED_KINDS:
            step.data.append(obj)
        elif kind == "CustomResourceDefinition":
            crd_spec = spec_of(obj)
            names = as_map(crd_spec.get("names"))
            versions = [str(v.get("name")) for v in crd_spec.get("versions") or []
                        if isinstance(v, Mapping) and v.get("served", True)]
            step.data.append({"kind": kind, "crd": {"group": crd_spec.get("group"), "kind": names.get("kind"),
                                                     "scope": crd_spec.get("scope"), "versions": versions}})
        else:
            step.data.append(None)

    def _group(self, ks: Obj) -> str:
        namespace = str(meta_of(ks).get("namespace") or "default")
        name = str(meta_of(ks).get("name"))
        return name if namespace == "flux-system" else f"{namespace}.{name}"

    def _is_fleet_source(self, state: ClusterState, ref: Mapping[str, Any], namespace: str) -> bool:
        if ref.get("kind", "GitRepository") != "GitRepository":
            return False
        key = (str(ref.get("namespace") or namespace), str(ref.get("name")))
        if key in state.fleet_sources:
            return True
        repo = state.find("GitRepository", *key)
        return repo is not None and spec_of(repo).get("url") == self.git_url
