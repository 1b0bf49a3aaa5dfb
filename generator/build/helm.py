"""The helm step: a HelmRelease templated with the real helm, with helm-controller's semantics (values layering,
valuesFrom, CRD policy, post-renderers, origin labels)."""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from generator.build.charts import helm_repository_request, oci_repository_request
from generator.build.kustomize import edit_kustomization
from generator.build.lock import ChartRequest
from generator.build.model import (
    CLUSTER_SCOPED,
    DEFAULT_VALUES_KEY,
    HELM_GROUP,
    BuildError,
    BuiltResource,
    ClusterState,
    NaiveStep,
    Obj,
    Step,
    api_group,
    as_map,
    canonical,
    digest,
    golden_name,
    is_kind,
    json_default,
    load_yaml,
    meta_of,
    set_metadata,
    spec_of,
)
from generator.build.steps import StepRunner
from generator.errors import ToolError
from generator.yamlio import dump_documents


def merge_maps(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """helm-controller's MergeMaps: overlay wins, nested maps merge, anything else replaces."""
    out = dict(base)
    for key, value in overlay.items():
        current = out.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            out[key] = merge_maps(current, value)
        else:
            out[key] = value
    return out


def typed_value(text: str) -> Any:
    """Helm strvals typing of a ``--set`` value."""
    lower = text.lower()
    if lower == "true":
        return True
    if lower == "false":
        return False
    if lower == "null":
        return None
    if text == "0":
        return 0
    if text and text[0] != "0" and re.fullmatch(r"[-+]?\d+", text):
        value = int(text)
        if -(2**63) <= value < 2**63:
            return value
    return text


def split_unescaped(text: str, separator: str) -> list[str]:
    """Split at separators not preceded by a backslash, removing the escaping backslashes."""
    parts, current, index = [], [], 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current.append(text[index + 1])
            index += 2
            continue
        if char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def replace_path_value(values: dict[str, Any], target_path: str, value: str) -> None:
    """helm-controller's ReplacePathValue: set ``value`` at a Helm ``--set`` style path in place.

    Quoted values (``'...'`` or ``"..."``) stay strings; others are typed like ``--set`` (bool, int, null).
    Dotted keys (``\\.`` escapes a dot) and list indexes (``a[0].b``) are supported.
    """
    quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
    typed: Any = value.strip("'\"") if quoted else typed_value(value)
    keys = split_unescaped(target_path, ".")
    node: Any = values
    for position, raw_key in enumerate(keys):
        last = position == len(keys) - 1
        match = re.fullmatch(r"(.*?)((?:\[\d+\])+)", raw_key)
        name, indexes = (match[1], [int(i) for i in re.findall(r"\[(\d+)\]", match[2])]) if match else (raw_key, [])
        if not name:
            raise BuildError(f"invalid values targetPath {target_path!r}")
        if not indexes:
            if last:
                node[name] = typed
            else:
                child = node.get(name)
                if not isinstance(child, dict):
                    child = node[name] = {}
                node = child
            continue
        seq = node.get(name)
        if not isinstance(seq, list):
            seq = node[name] = []
        for depth, index in enumerate(indexes):
            while len(seq) <= index:
                seq.append(None)
            if depth == len(indexes) - 1:
                if last:
                    seq[index] = typed
                else:
                    if not isinstance(seq[index], dict):
                        seq[index] = {}
                    node = seq[index]
            else:
                if not isinstance(seq[index], list):
                    seq[index] = []
                seq = seq[index]


def release_name(hr: Mapping[str, Any]) -> str:
    """helm-controller's release name: spec.releaseName or ``[<targetNamespace>-]<name>``, shortened past 53."""
    spec = spec_of(hr)
    name = str(meta_of(hr).get("name", ""))
    if spec.get("releaseName"):
        full = str(spec["releaseName"])
    elif spec.get("targetNamespace"):
        full = f"{spec['targetNamespace']}-{name}"
    else:
        full = name
    if len(full) <= 53:
        return full
    return full[:40] + "-" + hashlib.sha256(full.encode()).hexdigest()[:12]


def kube_semver(version: str) -> str:
    """A cluster's Kubernetes version as a cluster reports it (``1.33`` → ``v1.33.0``)."""
    parts = version.lstrip("v").split(".")
    while len(parts) < 3:
        parts.append("0")
    return "v" + ".".join(parts)


def release_namespace(hr: Mapping[str, Any]) -> str:
    """spec.targetNamespace, else the HelmRelease's namespace."""
    return str(spec_of(hr).get("targetNamespace") or meta_of(hr).get("namespace") or "default")


class HelmSteps(StepRunner):
    """HelmReleases whose chart fleetgen has: helm template with helm-controller's semantics."""

    def _releases(self, state: ClusterState) -> None:
        releases = [o for o in state.objects if is_kind(o, HELM_GROUP, "HelmRelease")]
        api_versions = sorted(state.api_versions)
        for hr in sorted(releases, key=lambda o: (str(meta_of(o).get("namespace")), str(meta_of(o).get("name")))):
            self._release(state, hr, api_versions)

    def _chart(self, state: ClusterState, hr: Obj, what: str) -> tuple[str, Path | str, str] | None:
        """(kind, chart location, content hash) of a release's chart, or None when it cannot be rendered offline.

        kind is "repo" (a folder of the fleet repo, relative) or "local" (from --charts).
        """
        spec, namespace = spec_of(hr), str(meta_of(hr).get("namespace") or "default")
        chart_ref = spec.get("chartRef") if isinstance(spec.get("chartRef"), Mapping) else None
        chart = as_map(spec.get("chart"))
        chart_spec = as_map(chart.get("spec"))
        if chart_ref is not None:
            ref_ns = str(chart_ref.get("namespace") or namespace)
            source = state.find(str(chart_ref.get("kind")), ref_ns, str(chart_ref.get("name")))
            if source is None:
                state.build.warnings.append(f"{what}: chartRef {chart_ref.get('kind')} {ref_ns}/"
                                            f"{chart_ref.get('name')} is not in the cluster's builds: not templated")
                return None
            source_spec = spec_of(source)
            if chart_ref.get("kind") == "OCIRepository":
                ref = as_map(source_spec.get("ref"))
                return self._upstream_chart(oci_repository_request(source), state, what) or self._local_chart(
                    str(source_spec.get("url", "")).rstrip("/").rsplit("/", 1)[-1],
                    str(ref.get("tag") or ref.get("semver") or ""), state, what)
            return self._local_chart(str(source_spec.get("chart", "")), str(source_spec.get("version") or ""),
                                     state, what)
        source_ref = as_map(chart_spec.get("sourceRef"))
        if source_ref.get("kind") == "GitRepository" and self._is_fleet_source(state, source_ref, namespace):
            directory = self.flux_dir(str(chart_spec.get("chart", "")), f"{what}: spec.chart.spec.chart")
            if posixpath.join(directory, "Chart.yaml") not in self.tree.files:
                raise BuildError(f"{what}: {chart_spec.get('chart')} has no Chart.yaml in the rendered fleet")
            return "repo", directory, self.tree.tree_hash(directory)
        if source_ref.get("kind") == "GitRepository":
            state.build.warnings.append(f"{what}: chart from GitRepository {source_ref.get('name')}, "
                                        "not the fleet repo: not templated")
            return None
        repository = state.find("HelmRepository", str(source_ref.get("namespace") or namespace),
                                str(source_ref.get("name"))) if source_ref.get("kind") == "HelmRepository" else None
        request: tuple[ChartRequest, bool] | str | None = None
        if repository is not None:
            request = helm_repository_request(repository, str(chart_spec.get("chart", "")),
                                              str(chart_spec.get("version") or ""))
        elif source_ref.get("kind") == "HelmRepository":
            request = (f"HelmRepository {source_ref.get('namespace') or namespace}/{source_ref.get('name')} is not "
                       "in the cluster's builds")
        return self._upstream_chart(request, state, what) or self._local_chart(
            str(chart_spec.get("chart", "")), str(chart_spec.get("version") or ""), state, what)

    def _upstream_chart(self, request: tuple[ChartRequest, bool] | str | None, state: ClusterState,
                        what: str) -> tuple[str, Path, str] | None:
        """A locked upstream chart from the chart cache (fetched when missing and online), else None with a
        warning naming it unless ``--charts`` may still have it."""
        if request is None:
            return None
        release = what.split(": ", 1)[-1]  # the same line in every cluster, so the CLI prints it once
        if isinstance(request, str):
            warning = f"{release}: {request}: not templated"
        else:
            found = self.charts.resolve(request[0], plain_http=request[1])
            if found.path is not None:
                return "local", found.path, found.sha256
            warning = f"{release}: {found.warning}"
        if self.options.charts_dir is None:
            state.build.warnings.append(warning)
        return None

    def _local_chart(self, name: str, version: str, state: ClusterState, what: str) -> tuple[str, Path, str] | None:
        charts = self.options.charts_dir
        if charts is None:
            return None
        candidates = [charts / f"{name}-{version}.tgz", charts / f"{name}-{version}", charts / name]
        for candidate in candidates:
            if candidate.is_file() or (candidate / "Chart.yaml").is_file():
                if candidate.is_dir() and candidate.name == name and version:
                    chart_meta = load_yaml((candidate / "Chart.yaml").read_text(encoding="utf-8"))
                    found = str((chart_meta[0] or {}).get("version", "")) if chart_meta else ""
                    if found.lstrip("v") != version.lstrip("v"):
                        continue
                return "local", candidate, self._path_hash(candidate)
        state.build.warnings.append(f"{what}: chart {name} {version} is not in {charts}: not templated")
        return None

    def _path_hash(self, path: Path) -> str:
        key = str(path)
        found = self._chart_hashes.get(key)
        if found is None:
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            found = digest(*(f"{p.relative_to(path.parent)}\0{hashlib.sha256(p.read_bytes()).hexdigest()}"
                             for p in files))
            self._chart_hashes[key] = found
        return found

    def _values(self, state: ClusterState, hr: Obj, what: str) -> dict[str, Any] | None:
        """helm-controller's values: each valuesFrom in order, then the inline values on top."""
        spec, namespace = spec_of(hr), str(meta_of(hr).get("namespace") or "default")
        inline = as_map(spec.get("values"))
        result: dict[str, Any] = {}
        for ref in spec.get("valuesFrom") or []:
            kind, name = str(ref.get("kind")), str(ref.get("name"))
            key = str(ref.get("valuesKey") or DEFAULT_VALUES_KEY)
            optional = bool(ref.get("optional"))
            if kind not in ("ConfigMap", "Secret"):
                raise BuildError(f"{what}: valuesFrom kind {kind} is not supported")
            source = state.find(kind, namespace, name)
            if source is None:
                if optional:
                    continue
                state.build.warnings.append(f"{what}: valuesFrom {kind} {namespace}/{name} is not in the "
                                            "cluster's builds (made at runtime?): not templated")
                return None
            data = as_map(source.get("data"))
            if key not in data:
                if optional:
                    continue
                raise BuildError(f"{what}: valuesFrom {kind} {namespace}/{name} has no key '{key}'")
            raw = str(data[key])
            if kind == "Secret":
                try:
                    raw = base64.b64decode(raw).decode("utf-8")
                except ValueError as exc:
                    raise BuildError(f"{what}: Secret {namespace}/{name} key '{key}' is not base64") from exc
            if ref.get("targetPath"):
                result = merge_maps(result, inline)
                replace_path_value(result, str(ref["targetPath"]), raw)
                continue
            try:
                docs = load_yaml(raw)
            except Exception as exc:  # ruamel raises several unrelated types
                raise BuildError(f"{what}: valuesFrom {kind} {namespace}/{name} key '{key}': {exc}") from exc
            loaded = docs[0] if docs else {}
            if not isinstance(loaded, Mapping):
                raise BuildError(f"{what}: valuesFrom {kind} {namespace}/{name} key '{key}' is not a mapping")
            result = merge_maps(result, loaded)
        return merge_maps(result, inline)

    def _release(self, state: ClusterState, hr: Obj, api_versions: list[str], group: str | None = None,
                 decorate: Callable[[Obj, str], None] | None = None) -> None:
        """Template one release into the cluster's resources under ``group`` (default: beside its HelmRelease).
        ``decorate`` replaces helm-controller's labels (another deliverer, e.g. Argo CD's tracking annotation)."""
        meta, spec = meta_of(hr), spec_of(hr)
        hr_ns, hr_name = str(meta.get("namespace") or "default"), str(meta.get("name"))
        what = f"cluster {state.name}: HelmRelease {hr_ns}/{hr_name}"
        if spec.get("kubeConfig"):  # helm-controller installs it into the cluster the kubeconfig points at
            state.build.warnings.append(f"HelmRelease {hr_ns}/{hr_name}: installs into another cluster "
                                        "(spec.kubeConfig): kept as the resolved HelmRelease, not templated here")
            self.stats.add(releases_kept=1)
            return
        chart = self._chart(state, hr, what)
        values = self._values(state, hr, what) if chart is not None else None
        if chart is None or values is None:
            self.stats.add(releases_kept=1)
            return
        self.stats.add(releases_templated=1)
        state.charts.add((chart[0], str(chart[1])))
        install = as_map(spec.get("install"))
        test = as_map(spec.get("test"))
        flags: list[str] = []
        if str(install.get("crds") or "Create") != "Skip":
            flags.append("--include-crds")
        if install.get("disableHooks"):
            flags.append("--no-hooks")
        if not test.get("enable"):
            flags.append("--skip-tests")
        if install.get("disableSchemaValidation"):
            flags.append("--skip-schema-validation")
        name, namespace = release_name(hr), release_namespace(hr)
        chart_spec = (spec.get("chart") or {}).get("spec") or {}
        values_files = self._values_files(list(chart_spec.get("valuesFiles") or []) if chart[0] == "repo" else [],
                                          bool(chart_spec.get("ignoreMissingValuesFiles")), what)
        state.charts.update(("file", rel) for rel, _ in values_files)
        renderers = spec.get("postRenderers") or []
        common = as_map(spec.get("commonMetadata"))
        key = digest("helm", self.fingerprint, chart[0], str(chart[1]), chart[2], name, namespace, canonical(values),
                     state.kube_version, canonical(api_versions), canonical(flags), canonical(values_files),
                     str(bool(chart_spec.get("ignoreMissingValuesFiles"))), canonical(renderers),
                     canonical(common), hr_name, hr_ns, canonical(sorted(state.crd_scopes.items())),
                     "" if decorate is None else f"decorated\0{group}")

        if self.options.record_naive:
            location = f"tree/{chart[1]}" if chart[0] == "repo" else str(chart[1])
            with self._work_lock:
                self.naive.append(NaiveStep("helm", (
                    name, location, "--namespace", namespace, "--kube-version", kube_semver(state.kube_version),
                    *(("--api-versions", ",".join(api_versions)) if api_versions else ()), *flags),
                    json.dumps(values, sort_keys=True, ensure_ascii=False, default=json_default)))

        def compute() -> Step:
            chart_path = self._chart_path(chart, values_files, key)
            values_text = json.dumps(values, sort_keys=True, ensure_ascii=False, default=json_default)
            args = (name, str(chart_path), "--namespace", namespace, "--kube-version", kube_semver(state.kube_version),
                    *(("--api-versions", ",".join(api_versions)) if api_versions else ()), *flags)
            with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="values-", dir=self.work_dir() / "scratch",
                                             delete=False, encoding="utf-8") as handle:
                handle.write(values_text)
            try:
                with self.stats.timed("tool_seconds"):
                    output = self.tools.helm.run("template", *args, "--values", handle.name)
            except ToolError as exc:
                raise BuildError(f"{what}: helm template failed: {exc}") from exc
            finally:
                Path(handle.name).unlink(missing_ok=True)
            self.stats.add(helm_runs=1)
            for renderer in renderers:
                if isinstance(renderer, Mapping) and isinstance(renderer.get("kustomize"), Mapping):
                    output = self._post_render(output, renderer["kustomize"], key, what)
            step = Step([], [], [])
            for obj in self.parse_stream(output, f"{what}: helm template"):
                set_metadata(obj, "labels", dict((common or {}).get("labels") or {}))
                set_metadata(obj, "annotations", dict((common or {}).get("annotations") or {}))
                kind = str(obj.get("kind"))
                obj_ns = str(meta_of(obj).get("namespace") or "")
                if not obj_ns and kind not in CLUSTER_SCOPED and state.crd_scopes.get(kind) != "Cluster":
                    obj_ns = namespace
                if decorate is None:
                    set_metadata(obj, "labels", {f"{HELM_GROUP}/name": hr_name, f"{HELM_GROUP}/namespace": hr_ns})
                else:
                    decorate(obj, obj_ns)
                self._add(step, obj, obj_ns)
            step.data = [None] * len(step.ids)
            return step

        step = self._step(key, compute, Step.to_json, Step.from_json)
        group = group or f"{hr['_group']}/helmrelease.{hr_ns}.{hr_name}"
        for (api_version, kind, obj_ns, obj_name), text in zip(step.ids, step.texts, strict=True):
            rel = f"{group}/{golden_name(kind, obj_ns, obj_name)}"
            if rel in state.build.resources:
                rel = f"{group}/{golden_name(kind + '@' + api_group(api_version).replace('.', '-'), obj_ns, obj_name)}"
            state.build.resources[rel] = BuiltResource(api_version, kind, obj_ns, obj_name, group, text)

    def _values_files(self, names: list[Any], ignore_missing: bool, what: str) -> list[tuple[str, str]]:
        """spec.chart.spec.valuesFiles as (fleet file, content digest); missing ones fail unless ignored."""
        resolved = []
        for name in names:
            rel = self.repo_path(str(name), what)
            if rel not in self.tree.files:
                if ignore_missing:
                    continue
                raise BuildError(f"{what}: values file {name} does not exist in the rendered fleet")
            resolved.append((rel, self.tree.file_digest(rel)))
        return resolved

    def _chart_path(self, chart: tuple[str, Path | str, str], values_files: list[tuple[str, str]], key: str) -> Path:
        kind, location, _ = chart
        if kind == "local":
            return Path(location)
        source = self.work_dir(self.tree.below(str(location))) / "tree" / str(location)
        if not values_files:
            return source
        # source-controller packages the chart with the listed values files (merged) as its values.yaml
        merged: dict[str, Any] = {}
        for rel, _ in values_files:
            docs = load_yaml(self.tree.files[rel])
            merged = merge_maps(merged, docs[0] if docs and isinstance(docs[0], Mapping) else {})
        target = self.work_dir() / "scratch" / f"chart-{key[:16]}" / source.name
        shutil.copytree(source, target, dirs_exist_ok=True)
        (target / "values.yaml").write_text(json.dumps(merged, sort_keys=True, default=json_default), encoding="utf-8")
        return target

    def _post_render(self, manifests: str, kustomize: Mapping[str, Any], key: str, what: str) -> str:
        """A HelmRelease kustomize post-renderer (patches and images) run with the real kustomize."""
        folder = self.work_dir() / "scratch" / f"post-{key[:16]}-{threading.get_ident()}"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            (folder / "helm-output.yaml").write_text(manifests, encoding="utf-8")
            kus = edit_kustomization({"resources": ["helm-output.yaml"]},
                                     {k: kustomize[k] for k in ("patches", "images") if kustomize.get(k)})
            kus.pop("buildMetadata", None)
            (folder / "kustomization.yaml").write_text(dump_documents([kus]), encoding="utf-8")
            try:
                with self.stats.timed("tool_seconds"):
                    output = self.tools.kustomize_build.run(folder, "--load-restrictor=LoadRestrictionsNone")
            except ToolError as exc:
                raise BuildError(f"{what}: post-renderer failed: {exc}") from exc
            self.stats.add(kustomize_runs=1)
            return output
        finally:
            shutil.rmtree(folder, ignore_errors=True)
