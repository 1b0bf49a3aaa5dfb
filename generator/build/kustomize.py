"""The kustomize step: a Flux Kustomization's path built with the real kustomize, as kustomize-controller
edits it first, then Flux's post-build (substitution, commonMetadata, owner labels)."""

from __future__ import annotations

import copy
import posixpath
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from generator.build.model import (
    FLUX_APIS,
    FLUX_KS_GROUP,
    OPERATOR_APIS,
    OPERATOR_GROUP,
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
    load_yaml,
    may_change,
    meta_of,
    set_metadata,
    spec_of,
)
from generator.build.steps import StepRunner
from generator.build.tree import is_local_relative
from generator.errors import FleetgenError, ToolError
from generator.yamlio import dump_documents


def flux_kustomization_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The Kustomization spec fields that change the kustomize build (all else is post-build)."""
    keys = ("targetNamespace", "namePrefix", "nameSuffix", "patches", "images", "components",
            "ignoreMissingComponents")
    return {key: spec[key] for key in keys if spec.get(key) not in (None, "", [], False)}


def edit_kustomization(
    kustomization: Mapping[str, Any] | None,
    fields: Mapping[str, Any],
    *,
    generated_resources: Sequence[str] = (),
    component_exists: Callable[[str], bool] = lambda _: True,
) -> dict[str, Any]:
    """The kustomization kustomize-controller writes before building (fluxcd/pkg/kustomize generator).

    ``kustomization`` is the path's own file (None when it has none: then one listing
    ``generated_resources`` is generated). The spec's fields are merged in as Flux does: namespace,
    prefix and suffix replace, patches and components append, images replace an entry of the same
    name or append.
    """
    if kustomization is None:
        kus: dict[str, Any] = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
        if generated_resources:
            kus["resources"] = list(generated_resources)
        else:
            kus["namespace"] = "_placeholder"
    else:
        kus = copy.deepcopy(dict(kustomization))
        kus.setdefault("apiVersion", "kustomize.config.k8s.io/v1beta1")
        kus.setdefault("kind", "Kustomization")
        if not kus.get("resources"):
            kus["buildMetadata"] = ["originAnnotations"]
    if fields.get("targetNamespace"):
        kus["namespace"] = fields["targetNamespace"]
    if fields.get("namePrefix"):
        kus["namePrefix"] = fields["namePrefix"]
    if fields.get("nameSuffix"):
        kus["nameSuffix"] = fields["nameSuffix"]
    for patch in fields.get("patches") or []:
        if not isinstance(patch, Mapping):
            raise BuildError(f"spec.patches: {patch!r} is not a mapping")
        entry: dict[str, Any] = {"patch": str(patch.get("patch", ""))}
        target = patch.get("target")
        if isinstance(target, Mapping):
            entry["target"] = {k: target[k] for k in ("group", "version", "kind", "name", "namespace",
                                                       "labelSelector", "annotationSelector") if target.get(k)}
        kus.setdefault("patches", []).append(entry)
    for component in fields.get("components") or []:
        if not is_local_relative(str(component)):
            raise BuildError(f"spec.components: component path '{component}' must be local and relative")
        if fields.get("ignoreMissingComponents") and not component_exists(str(component)):
            continue
        kus.setdefault("components", []).append(component)
    for image in fields.get("images") or []:
        if not isinstance(image, Mapping) or not image.get("name"):
            raise BuildError(f"spec.images: {image!r} needs a name")
        new = {k: image[k] for k in ("name", "newName", "newTag", "digest") if image.get(k)}
        images = kus.setdefault("images", [])
        index = next((i for i, old in enumerate(images) if old.get("name") == new["name"]), None)
        if index is None:
            images.append(new)
        else:
            images[index] = new
    return kus


def _written_in(files: Mapping[str, str], source: str | None, expression: str | None) -> str:
    """`` (in FILE, ...)``: the rendered files under folder ``source`` that contain the failing ``${...}``."""
    if source is None or not expression:
        return ""
    prefix = "" if source in ("", ".") else source.rstrip("/") + "/"
    found = sorted(path for path, text in files.items() if path.startswith(prefix) and expression in text)
    return f" (in {', '.join(found)})" if found else ""


class KustomizeSteps(StepRunner):
    """Flux Kustomizations: kustomize build of the edited path, then post-build."""

    def component_dirs(self, directory: str, fields: Mapping[str, Any]) -> list[str]:
        """The folders spec.components names (relative to the path) that exist in the rendered output."""
        found = []
        for component in fields.get("components") or []:
            target = posixpath.normpath(posixpath.join(directory, str(component)))
            if target in self.tree.dirs and not target.startswith("../"):
                found.append(target)
        return found

    def kustomize(self, directory: str, fields: Mapping[str, Any], what: str,
                  record: bool = True) -> tuple[str, list[Obj]]:
        """Raw objects of a kustomize build of a folder with the Kustomization's build fields applied."""
        kfile = self.tree.kustomization_file(directory)
        extra = self.component_dirs(directory, fields)
        key = digest("kustomize", self.fingerprint, directory, self.tree.closure_hash(directory), canonical(fields),
                     *(f"{d}\0{self.tree.closure_hash(d)}" for d in extra))
        if self.options.record_naive and record:
            with self._work_lock:
                self.naive.append(NaiveStep("kustomize", (directory or ".",)))

        def compute() -> list[Obj]:
            original = None
            if kfile is not None:
                docs = load_yaml(self.tree.files[kfile])
                if len(docs) != 1 or not isinstance(docs[0], dict):
                    raise BuildError(f"{what}: {kfile} is not one kustomization document")
                original = docs[0]
            needs_edit = kfile is None or bool(fields) or not (original or {}).get("resources")
            needs = set(self.tree.paths if not directory else self.tree.closure(directory))
            for component in extra:
                needs |= self.tree.closure(component)
            work = self.work_dir(sorted(needs))
            source = work / "tree" / directory if directory else work / "tree"
            target = source
            copy_dir: Path | None = None
            if needs_edit:
                generated = self.tree.generated_resources(directory) if kfile is None else []
                if kfile is None and not generated and not fields:
                    return []
                text = dump_documents([edit_kustomization(
                    original, fields, generated_resources=generated,
                    component_exists=lambda c: posixpath.normpath(posixpath.join(directory, c)) in self.tree.dirs
                    or posixpath.normpath(posixpath.join(directory, c)) in self.tree.files,
                )])
                # A sibling copy keeps every relative reference (../x) resolving to the same files.
                copy_dir = source.parent / f".{source.name or 'root'}.fleetgen-{key[:16]}"
                if directory:
                    shutil.copytree(source, copy_dir, dirs_exist_ok=True)
                else:
                    copy_dir = work / "scratch" / f"root-{key[:16]}"
                    shutil.copytree(source, copy_dir / "tree", dirs_exist_ok=True)
                    copy_dir = copy_dir / "tree"
                name = posixpath.basename(kfile) if kfile else "kustomization.yaml"
                (copy_dir / name).write_text(text, encoding="utf-8")
                target = copy_dir
            try:
                with self.stats.timed("tool_seconds"):
                    output = self.tools.kustomize_build.run(target, "--load-restrictor=LoadRestrictionsNone")
            except ToolError as exc:
                raise BuildError(f"{what}: kustomize build of '{directory or '.'}' failed: {exc}") from exc
            finally:
                if copy_dir is not None:
                    shutil.rmtree(copy_dir if directory else copy_dir.parent, ignore_errors=True)
            self.stats.add(kustomize_runs=1)
            return self.parse_stream(output, what)

        objects = self._step(key, compute, lambda v: v, lambda v: list(v))
        return key, objects

    def post_build(
        self, raw_key: str, raw: list[Obj], ks: Obj, variables: Mapping[str, str] | None, group: str,
        source: str | None = None,
    ) -> Step:
        """Substitution, commonMetadata and owner labels on a build's objects, plus their golden texts."""
        meta, spec = meta_of(ks), spec_of(ks)
        name, namespace = str(meta.get("name")), str(meta.get("namespace") or "default")
        post = spec.get("postBuild") if isinstance(spec.get("postBuild"), Mapping) else None
        always = bool(post and post.get("substituteStrategy") == "Always")
        common = as_map(spec.get("commonMetadata"))
        key = digest("post", raw_key, canonical(variables), str(always), name, namespace, canonical(common))

        def compute() -> Step:
            from generator.build.substitute import substitute_object

            step = Step([], [], [])
            for original in raw:
                obj = copy.deepcopy(original)
                if variables is not None and (variables or always) and may_change(obj):
                    try:
                        obj = substitute_object(obj, variables, always=always)
                    except FleetgenError as exc:
                        where = _written_in(self.tree.files, source, getattr(exc, "expression", None))
                        failed = meta_of(obj).get("name")
                        raise BuildError(f"{group}: {obj.get('kind')} {failed}{where}: {exc}") from exc
                set_metadata(obj, "labels", dict((common or {}).get("labels") or {}))
                set_metadata(obj, "annotations", dict((common or {}).get("annotations") or {}))
                set_metadata(obj, "labels", {f"{FLUX_KS_GROUP}/name": name, f"{FLUX_KS_GROUP}/namespace": namespace})
                self._add(step, obj, str(meta_of(obj).get("namespace") or ""))
            return step

        return self._step(key, compute, Step.to_json, Step.from_json)

    def _build_kustomization(self, state: ClusterState, ks: Obj) -> list[Obj]:
        """Build one Flux Kustomization into the cluster's resources; returns the Kustomizations it applies."""
        meta, spec = meta_of(ks), spec_of(ks)
        namespace = str(meta.get("namespace") or "default")
        group = self._group(ks)
        what = f"cluster {state.name}: Kustomization {namespace}/{meta.get('name')}"
        state.build.kustomizations.append(group)
        source = as_map(spec.get("sourceRef"))
        if not self._is_fleet_source(state, source, namespace):
            state.build.warnings.append(
                f"Kustomization {namespace}/{meta.get('name')} builds from {source.get('kind')} "
                f"{source.get('name')}, not the fleet repo: not built")
            return []
        directory = self.flux_dir(str(spec.get("path") or ""), what)
        fields = flux_kustomization_fields(spec)
        state.dirs.update([directory, *self.component_dirs(directory, fields)])
        raw_key, raw = self.kustomize(directory, fields, what)
        variables = self._variables(state, ks, what)
        step = self.post_build(raw_key, raw, ks, variables, what, directory)
        children: list[Obj] = []
        for (api_version, kind, obj_ns, name), text, data in zip(step.ids, step.texts, step.data, strict=True):
            rel = f"{group}/{golden_name(kind, obj_ns, name)}"
            if rel in state.build.resources:
                rel = f"{group}/{golden_name(kind + '@' + api_group(api_version).replace('.', '-'), obj_ns, name)}"
            state.build.resources[rel] = BuiltResource(api_version, kind, obj_ns, name, group, text)
            if "/" in api_version:
                state.api_versions.update({api_version, f"{api_version}/{kind}"})
            if data is None:
                continue
            if "crd" in data:
                crd = data["crd"]
                for version in crd["versions"]:
                    state.api_versions.update({f"{crd['group']}/{version}", f"{crd['group']}/{version}/{crd['kind']}"})
                state.crd_scopes[str(crd["kind"])] = str(crd["scope"])
                continue
            data = dict(data)
            data.setdefault("metadata", {})
            state.objects.append({**data, "_group": group})
            if is_kind(data, FLUX_KS_GROUP, "Kustomization"):
                children.append(data)
            if is_kind(data, OPERATOR_GROUP, "FluxInstance"):
                components = spec_of(data).get("components") or list(FLUX_APIS)
                for component in components:
                    for gv, kinds in FLUX_APIS.get(str(component), ()):
                        state.api_versions.add(gv)
                        state.api_versions.update(f"{gv}/{k}" for k in kinds)
                for gv, kinds in OPERATOR_APIS:
                    state.api_versions.add(gv)
                    state.api_versions.update(f"{gv}/{k}" for k in kinds)
        return children

    def _variables(self, state: ClusterState, ks: Obj, what: str) -> dict[str, str] | None:
        post = spec_of(ks).get("postBuild")
        if not isinstance(post, Mapping):
            return None
        from generator.build.substitute import collect_variables

        namespace = str(meta_of(ks).get("namespace") or "default")

        def find(kind: str, name: str) -> Obj | None:
            found = state.find(kind, namespace, name)
            return None if found is None else {k: v for k, v in found.items() if k != "_group"}

        try:
            return dict(collect_variables(post, find))
        except FleetgenError as exc:
            raise BuildError(f"{what}: postBuild: {exc}") from exc
