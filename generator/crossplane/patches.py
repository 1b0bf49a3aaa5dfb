"""Small builders for function-patch-and-transform input (``pt.fn.crossplane.io/v1beta1`` Resources)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

NETWORK_LABEL = "platform.gitops.io/network"
CLUSTER_LABEL = "platform.gitops.io/cluster"
ROLE_LABEL = "platform.gitops.io/role"
PROVIDER_LABEL = "platform.gitops.io/provider"
API_LABEL = "platform.gitops.io/api"
EXTERNAL_NAME = "metadata.annotations[crossplane.io/external-name]"
PT_FUNCTION = "function-patch-and-transform"
READY_FUNCTION = "function-auto-ready"


def from_xr(source: str, target: str | None = None, *, transforms: Iterable[Obj] = (),
            required: bool = False, merge: bool = False) -> Obj:
    """Copy an XR field onto the composed resource (``FromCompositeFieldPath``).

    ``required``: skip composing the resource while the field is missing (how optional slots work);
    ``merge``: merge a map into the base's map instead of replacing it.
    """
    patch: Obj = {"type": "FromCompositeFieldPath", "fromFieldPath": source, "toFieldPath": target or source}
    transforms = list(transforms)
    if transforms:
        patch["transforms"] = transforms
    policy: Obj = {}
    if required:
        policy["fromFieldPath"] = "Required"
    if merge:
        policy["toFieldPath"] = "MergeObjects"
    if policy:
        patch["policy"] = policy
    return patch


def combine_from_xr(fmt: str, sources: Iterable[str], target: str, *, required: bool = False) -> Obj:
    """Format several XR fields into one composed-resource field (``CombineFromComposite``)."""
    patch: Obj = {"type": "CombineFromComposite", "toFieldPath": target, "combine": {
        "variables": [{"fromFieldPath": s} for s in sources], "strategy": "string", "string": {"fmt": fmt}}}
    if required:
        patch["policy"] = {"fromFieldPath": "Required"}
    return patch


def to_xr(source: str, target: str) -> Obj:
    """Copy an observed composed-resource field back onto the XR status (``ToCompositeFieldPath``)."""
    return {"type": "ToCompositeFieldPath", "fromFieldPath": source, "toFieldPath": target}


def fmt(template: str) -> Obj:
    """A string Format transform."""
    return {"type": "string", "string": {"type": "Format", "fmt": template}}


def table(mapping: Mapping[str, Any]) -> Obj:
    """A map transform."""
    return {"type": "map", "map": dict(mapping)}


def to_string() -> Obj:
    """Convert the input (bool, number) to a string, e.g. before a map transform."""
    return {"type": "convert", "convert": {"toType": "string"}}


def regexp(match: str, group: int = 1) -> Obj:
    """Extract a regular-expression group from a string."""
    return {"type": "string", "string": {"type": "Regexp", "regexp": {"match": match, "group": group}}}


def selector(*labels: tuple[str, str], controller: bool = False) -> Obj:
    """A managed-resource selector with static labels (patched labels are added by patches)."""
    sel: Obj = {}
    if controller:
        sel["matchControllerRef"] = True
    if labels:
        sel["matchLabels"] = dict(labels)
    return sel


@dataclass(frozen=True)
class Mode:
    """What differs between the v2 namespaced API and the legacy cluster-scoped API with claims."""

    legacy: bool
    namespace: str
    group: str
    version: str

    @property
    def api_version(self) -> str:
        """apiVersion of the platform APIs."""
        return f"{self.group}/{self.version}"

    def xr_kind(self, kind: str) -> str:
        """The composite kind of an API (``X`` prefix for legacy XRs)."""
        return f"X{kind}" if self.legacy else kind

    @property
    def name_path(self) -> str:
        """XR field holding the name the user gave (legacy XRs get generated names; the claim name is a label)."""
        return "metadata.labels[crossplane.io/claim-name]" if self.legacy else "metadata.name"

    @property
    def selector_path(self) -> str:
        """Where a composite puts its composition selector."""
        return "spec.compositionSelector" if self.legacy else "spec.crossplane.compositionSelector"

    def metadata(self, labels: Mapping[str, str], *, namespaced: bool = True) -> Obj:
        """Base metadata of a composed resource (legacy XRs are cluster-scoped: namespaced ones need a namespace)."""
        meta: Obj = {"labels": dict(labels)} if labels else {}
        if self.legacy and namespaced:
            meta["namespace"] = self.namespace
        return meta


def composed(name: str, api_version: str, kind: str, mode: Mode, *, spec: Obj | None = None,
             for_provider: Obj | None = None, labels: Mapping[str, str] | None = None,
             patches: Iterable[Obj] = (), managed: bool = True, namespaced: bool = True) -> Obj:
    """One entry of the Resources input: a base template and its patches."""
    base: Obj = {"apiVersion": api_version, "kind": kind}
    meta = mode.metadata(labels or {}, namespaced=namespaced)
    if meta:
        base["metadata"] = meta
    body: Obj = dict(spec or {})
    if managed:
        body["forProvider"] = dict(for_provider or {})
        body["providerConfigRef"] = {"kind": "ClusterProviderConfig", "name": "default"}
    if body:
        base["spec"] = body
    entry: Obj = {"name": name, "base": base}
    patch_list = list(patches)
    if managed:
        patch_list.insert(0, from_xr("spec.providerConfigName", "spec.providerConfigRef.name"))
    if patch_list:
        entry["patches"] = patch_list
    return entry


def composition(name: str, mode: Mode, kind: str, cloud: str, api: str, resources: list[Obj],
                extra_labels: Mapping[str, str] | None = None) -> Obj:
    """A Pipeline-mode Composition: patch-and-transform, then auto-ready."""
    labels = {PROVIDER_LABEL: cloud, API_LABEL: api, **(extra_labels or {})}
    return {
        "apiVersion": "apiextensions.crossplane.io/v1",
        "kind": "Composition",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "compositeTypeRef": {"apiVersion": mode.api_version, "kind": mode.xr_kind(kind)},
            "mode": "Pipeline",
            "pipeline": [
                {"step": "patch-and-transform", "functionRef": {"name": PT_FUNCTION},
                 "input": {"apiVersion": "pt.fn.crossplane.io/v1beta1", "kind": "Resources",
                           "resources": resources}},
                {"step": "automatically-detect-readiness", "functionRef": {"name": READY_FUNCTION}},
            ],
        },
    }


def pt_resources(comp: Mapping[str, Any]) -> list[Obj]:
    """The Resources input entries of a Composition's patch-and-transform step."""
    for step in comp["spec"]["pipeline"]:
        if step["functionRef"]["name"] == PT_FUNCTION:
            resources: list[Obj] = step["input"]["resources"]
            return resources
    return []


def xr_field_paths(comp: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Every XR field a Composition's patches read or write: (resource name, patch type, XR path)."""
    found: list[tuple[str, str, str]] = []
    for entry in pt_resources(comp):
        for patch in entry.get("patches", []):
            kind = patch.get("type", "FromCompositeFieldPath")
            if kind == "FromCompositeFieldPath":
                found.append((entry["name"], kind, patch["fromFieldPath"]))
            elif kind == "CombineFromComposite":
                found += [(entry["name"], kind, v["fromFieldPath"]) for v in patch["combine"]["variables"]]
            elif kind in ("ToCompositeFieldPath", "CombineToComposite"):
                found.append((entry["name"], kind, patch["toFieldPath"]))
    return found
