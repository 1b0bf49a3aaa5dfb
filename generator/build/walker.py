"""Build: exactly what every cluster receives, with the real kustomize and helm.

For each cluster the rendered fleet repo is walked as Flux walks it: the FluxInstance in
``clusters/<cluster>`` names the sync path, the implicit ``flux-system`` Kustomization builds it, and
every Flux Kustomization found in a build is built in turn (in ``dependsOn`` order) from its
``spec.path``, with what kustomize-controller does on top: the path's kustomization file edited with
``targetNamespace``, ``namePrefix``/``nameSuffix``, ``patches``, ``images`` and ``components`` (or
generated when the path has none), then ``postBuild`` substitution, ``commonMetadata`` and the owner
labels. Every HelmRelease whose chart is in the fleet repo (or in ``--charts DIR``) is templated with
the real ``helm template`` with helm-controller's semantics (release name, namespace, ``valuesFrom``
then inline values, CRD policy, post-renderers, origin labels).

The unit of work is a *step* (a kustomize build, a post-build, a helm template) keyed by the hash of
everything it reads: the tool versions, the code of the build, the input files and the variables and
values. Steps are shared between clusters within a run (built once) and kept in a content-addressed
cache on disk (``ROOT/.cache/fleetgen``), so a re-run after a one-cluster edit only rebuilds that
cluster's changed steps. Clusters are built in parallel threads (the tools run as subprocesses).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from generator.build.compose import ComposeSteps
from generator.build.helm import HelmSteps
from generator.build.kustomize import KustomizeSteps
from generator.build.model import (
    FLUX_KS_GROUP,
    OPERATOR_GROUP,
    BuildError,
    BuiltResource,
    ClusterBuild,
    ClusterState,
    Obj,
    as_map,
    canonical,
    digest,
    is_kind,
    meta_of,
    resources_from_json,
    resources_to_json,
    spec_of,
)

# --- the builder --------------------------------------------------------------------------------------


class Builder(KustomizeSteps, HelmSteps, ComposeSteps):
    """Builds clusters of one rendered fleet; steps shared across clusters and cached on disk."""

    # -- the work tree (materialised only when a step has to run a tool) --

    # -- YAML parse / emit, memoised per document text --

    # -- steps --

    # -- one cluster --

    def cluster_entry(self, name: str) -> str:
        """The step-cache entry of a cluster's last build (``StepCache.get_cluster``) under this code and these
        tools."""
        return digest("cluster", self.fingerprint, name)

    def build_cluster(self, name: str, kube_version: str) -> ClusterBuild:
        """Walk one cluster's Flux graph and template its releases (or reuse its last build when none of
        the files, charts and settings that build read has changed: a lookup of its key, its resources read
        from the cache only when used)."""
        reused = self.reuse_cluster(name, kube_version)
        if reused is not None:
            return reused
        entry = self.cluster_entry(name)
        state = ClusterState(name, kube_version, build=ClusterBuild(name))
        self._walk(state)
        self._releases(state)
        if self.argocd is not None:  # apps delivered by the hub's Argo CD (generator/build/argocd.py)
            from generator.build.argocd import deliver

            deliver(self, state, *self.argocd)
        self._compose(state)
        state.build.resources = dict(sorted(state.build.resources.items()))
        trace = {"dirs": sorted(state.dirs), "charts": sorted(list(c) for c in state.charts)}
        key = self._cluster_key(name, kube_version, trace)
        self.cache.put_build(key, resources_to_json(state.build.resources))  # before the entry that names it
        stored = {"key": key, "trace": trace, "kustomizations": state.build.kustomizations,
                  "warnings": state.build.warnings}
        self.cache.put_cluster(entry, stored)
        self._index.note(entry, stored, indexed=False)
        return state.build

    def reuse_cluster(self, name: str, kube_version: str) -> ClusterBuild | None:
        """The last build of a cluster when nothing it read has changed, else None: its entry (from the index of
        every cluster's entry, else from the cluster's own file) whose key is that of the files, charts and
        settings it read now, with its resources still in the cache (read on first use)."""
        entry = self.cluster_entry(name)
        with self.stats.timed("lookup_cpu_seconds", time.thread_time):
            indexed = self._index.get(self.cache, entry)
            reused = self._reuse(name, kube_version, indexed)
            if reused is not None:
                self._index.note(entry, indexed, indexed=True)
            else:
                stored = self.cache.get_cluster(entry)  # the cluster's own file is the reference
                reused = self._reuse(name, kube_version, stored) if stored != indexed else None
                if reused is not None:
                    self._index.note(entry, stored, indexed=False)
        if reused is not None:
            self.stats.add(clusters_cached=1)
        return reused

    def _reuse(self, name: str, kube_version: str, stored: Any) -> ClusterBuild | None:
        """The build a cluster entry stores, when its key is still the cluster's key and its resources are still
        in the cache; else None."""
        if not isinstance(stored, Mapping):
            return None
        return self._stored_build(name, stored, self._cluster_key(name, kube_version, stored.get("trace")))

    def store_cluster_index(self) -> None:
        """Write the index of every cluster's entry for the next run, when more than a few entries changed."""
        self._index.store(self.cache)

    def _stored_build(self, name: str, stored: Mapping[str, Any], key: str) -> ClusterBuild | None:
        """The stored build of a cluster when its key still matches and its resources are in the cache (read
        on first use), else None."""
        kustomizations, warnings = stored.get("kustomizations"), stored.get("warnings")
        if (not key or stored.get("key") != key or not isinstance(kustomizations, list)
                or not isinstance(warnings, list) or not self.cache.has_build(key)):
            return None
        cache = self.cache

        def load() -> dict[str, BuiltResource]:
            resources = cache.get_build(key)
            if resources is None:
                raise BuildError(f"cluster {name}: its stored build ({cache.build_path(key)}) disappeared during "
                                 "this run; run the command again")
            return resources_from_json(resources)

        return ClusterBuild(name, None, [str(k) for k in kustomizations], [str(w) for w in warnings], load=load)

    def _cluster_key(self, name: str, kube_version: str, trace: Any) -> str:
        """Hash of everything a cluster's build read: the input closure of every folder it built, every chart
        it templated, its Kubernetes version, the --charts folder, the code and tools. Empty if unknowable."""
        if not isinstance(trace, Mapping):
            return ""
        if self._key_settings is None:  # the same for every cluster of the run
            self._key_settings = [self.git_url, canonical(self.mounts), self._charts_listing(),
                                  self.charts.fingerprint()]
        parts = [self.fingerprint, name, kube_version, *self._key_settings]
        for directory in trace.get("dirs") or []:
            if directory not in self.tree.dirs:
                return ""
            parts.append(f"dir\0{directory}\0{self.tree.closure_hash(directory)}")
        for kind, location in trace.get("charts") or []:
            if kind == "repo":
                if location not in self.tree.dirs:
                    return ""
                parts.append(f"repo\0{location}\0{self.tree.tree_hash(location)}")
            elif kind == "file":
                if location not in self.tree.files:
                    return ""
                parts.append(f"file\0{location}\0{self.tree.file_digest(location)}")
            else:
                if not Path(location).exists():
                    return ""
                parts.append(f"local\0{location}\0{self._path_hash(Path(location))}")
        return digest(*parts)

    def _charts_listing(self) -> str:
        """Hash of the --charts folder (a chart added there changes what can be templated)."""
        charts = self.options.charts_dir
        if charts is None:
            return ""
        with self._work_lock:
            if self._charts_hash is None:
                self._charts_hash = self._path_hash(charts) if charts.is_dir() else "missing"
            return self._charts_hash

    def _root(self, state: ClusterState) -> Obj:
        """The flux-system Kustomization the cluster's FluxInstance creates (implicit in the repo)."""
        entry = "/".join(p for p in (self.fleet_root, "clusters", state.name) if p)
        what = f"cluster {state.name}"
        if entry not in self.tree.dirs:
            raise BuildError(f"{what}: the rendered fleet has no folder {entry}")
        state.dirs.add(entry)
        _, objects = self.kustomize(entry, {}, f"{what}: {entry}", record=False)
        instances = [o for o in objects if is_kind(o, OPERATOR_GROUP, "FluxInstance")]
        path = "/".join(p for p in (self.git_prefix, "clusters", state.name) if p)
        namespace, ks_name = "flux-system", "flux-system"
        if len(instances) > 1:
            raise BuildError(f"{what}: {entry} has {len(instances)} FluxInstances; Flux runs one per cluster")
        if instances:
            instance = instances[0]
            sync = as_map(spec_of(instance).get("sync"))
            namespace = str(meta_of(instance).get("namespace") or "flux-system")
            ks_name = str(sync.get("name") or namespace)
            if sync.get("path") is not None:
                path = str(sync["path"])
            if sync.get("url") and sync.get("url") != self.git_url:
                state.build.warnings.append(
                    f"FluxInstance syncs {sync.get('url')}, not the fleet repo {self.git_url}; built from the fleet")
        else:
            state.build.warnings.append(f"no FluxInstance in {entry}: assumed it syncs {entry}")
        state.fleet_sources.add((namespace, ks_name))
        state.fleet_sources.add((namespace, "flux-system"))
        return {
            "apiVersion": f"{FLUX_KS_GROUP}/v1", "kind": "Kustomization",
            "metadata": {"name": ks_name, "namespace": namespace},
            "spec": {"path": path, "prune": True, "sourceRef": {"kind": "GitRepository", "name": "flux-system"}},
        }

    def _walk(self, state: ClusterState) -> None:
        root = self._root(state)
        pending: dict[tuple[str, str], Obj] = {(root["metadata"]["namespace"], root["metadata"]["name"]): root}
        done: set[tuple[str, str]] = set()
        while pending:
            ready = sorted(key for key, ks in pending.items() if all(dep in done for dep in _depends_on(ks)))
            if not ready:
                known = set(pending) | done
                lines = []
                for key, ks in sorted(pending.items()):
                    missing = [d for d in _depends_on(ks) if d not in known]
                    waits = [d for d in _depends_on(ks) if d not in done]
                    if missing:
                        lines.append(f"Kustomization {key[0]}/{key[1]} depends on "
                                     + ", ".join(f"{n}/{m}" for n, m in missing) + ", which no build defines")
                    else:
                        lines.append(f"Kustomization {key[0]}/{key[1]} waits for "
                                     + ", ".join(f"{n}/{m}" for n, m in waits))
                raise BuildError(f"cluster {state.name}: the dependsOn graph cannot complete:\n  " + "\n  ".join(lines))
            # prefer one whose substituteFrom objects exist already (they may come from another build)
            satisfied = [k for k in ready if self._refs_ready(state, pending[k])]
            key = satisfied[0] if satisfied else ready[0]
            ks = pending.pop(key)
            done.add(key)
            for child in self._build_kustomization(state, ks):
                child_key = (str(meta_of(child).get("namespace") or "default"), str(meta_of(child).get("name")))
                if child_key in pending or child_key in done:
                    raise BuildError(f"cluster {state.name}: Kustomization {child_key[0]}/{child_key[1]} "
                                     "is defined twice")
                pending[child_key] = child

    def _refs_ready(self, state: ClusterState, ks: Obj) -> bool:
        post = spec_of(ks).get("postBuild")
        refs = post.get("substituteFrom") if isinstance(post, Mapping) else None
        namespace = str(meta_of(ks).get("namespace") or "default")
        return all(
            ref.get("optional") or state.find(str(ref.get("kind")), namespace, str(ref.get("name"))) is not None
            for ref in refs or [] if isinstance(ref, Mapping)
        )

    # -- HelmReleases --


def _depends_on(ks: Mapping[str, Any]) -> list[tuple[str, str]]:
    namespace = str(meta_of(ks).get("namespace") or "default")
    deps = []
    for dep in spec_of(ks).get("dependsOn") or []:
        if isinstance(dep, Mapping) and dep.get("name"):
            deps.append((str(dep.get("namespace") or namespace), str(dep["name"])))
    return deps
