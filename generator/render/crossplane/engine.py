"""Run a Composition offline with the composition function's own code (function-pythonic, pinned release).

The hub runs ``function-pythonic`` (package ``ghcr.io/fortra/function-pythonic:v0.1.4``); here the same release
of its Python code (PyPI ``crossplane-function-pythonic==0.1.4``) gets the same ``RunFunctionRequest`` Crossplane
would send — the observed XR, the observed composed resources, the step's input — through its gRPC servicer
method ``FunctionRunner.RunFunction``. So what the golden files show is what the function returns on the hub.

What Crossplane itself does around the function is small and written out here, with its upstream behaviour:
the XR is ready when the function says so, else when every desired composed resource is ready
(crossplane v2 ``composite/composition_functions.go``; function-auto-ready's README states the same rule).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from generator.errors import FleetgenError

Obj = dict[str, Any]
FUNCTION_NAME = "function-pythonic"
INPUT_API_VERSION = "pythonic.fn.fortra.com/v1alpha1"
RESOURCE_NAME_ANNOTATION = "crossplane.io/composition-resource-name"


class CompositionError(FleetgenError):
    """The composition function returned a fatal result (or the Composition cannot be run offline)."""


@dataclass
class Composed:
    """The function's answer for one XR."""

    resources: dict[str, Obj] = field(default_factory=dict)
    ready: dict[str, bool | None] = field(default_factory=dict)
    composite: Obj = field(default_factory=dict)
    composite_ready: bool | None = None
    results: list[tuple[str, str]] = field(default_factory=list)

    @property
    def xr_ready(self) -> bool:
        """Whether Crossplane marks the XR Ready: the function's verdict when it gives one, else every desired
        composed resource ready (crossplane v2.x, composite reconciler with function pipelines)."""
        if self.composite_ready is not None:
            return self.composite_ready
        return all(self.ready.get(name) is True for name in self.resources)


def _plain(value: Any) -> Any:
    """protobuf Struct JSON back to Kubernetes JSON: integral numbers are integers (as Go's encoder writes them)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(value[k]) for k in sorted(value)}
    return value


def _struct(value: Mapping[str, Any]) -> Any:
    from google.protobuf import struct_pb2

    message = struct_pb2.Struct()
    message.update(dict(value))
    return message


def _ready(value: int) -> bool | None:
    from crossplane.function.proto.v1 import run_function_pb2 as fnv1

    if value == fnv1.Ready.READY_TRUE:
        return True
    if value == fnv1.Ready.READY_FALSE:
        return False
    return None


def pythonic_input(composition: Mapping[str, Any]) -> Obj:
    """The input of a Composition's function-pythonic step (a Composition without one cannot be run here)."""
    for step in composition.get("spec", {}).get("pipeline") or []:
        if step.get("functionRef", {}).get("name") == FUNCTION_NAME:
            found: Obj = step["input"]
            return found
    name = composition.get("metadata", {}).get("name")
    raise CompositionError(f"Composition {name}: no {FUNCTION_NAME} step to run offline")


def run(composition: Mapping[str, Any], xr: Mapping[str, Any],
        observed: Mapping[str, Mapping[str, Any]] | None = None, *, render_unknowns: bool = False) -> Composed:
    """One pass of the composition function for ``xr`` with ``observed`` composed resources (name → object).

    With ``render_unknowns`` a value that depends on a status not observed yet is written as ``UNKNOWN:<path>``
    (function-pythonic's own ``--render-unknowns``); without it, such a resource is held back, as on the hub.
    """
    from crossplane.function.proto.v1 import run_function_pb2 as fnv1
    from crossplane.pythonic.function import FunctionRunner
    from google.protobuf import json_format

    request = fnv1.RunFunctionRequest(
        meta=fnv1.RequestMeta(tag="fleetgen"),
        observed=fnv1.State(
            composite=fnv1.Resource(resource=_struct(xr)),
            resources={name: fnv1.Resource(resource=_struct(obj)) for name, obj in (observed or {}).items()}),
        input=_struct(pythonic_input(composition)),
    )
    logging.getLogger(FUNCTION_NAME).setLevel(logging.CRITICAL)
    quiet = logging.getLogger("crossplane")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        response = asyncio.run(FunctionRunner(renderUnknowns=render_unknowns).RunFunction(request, None))
    finally:
        quiet.setLevel(level)
    what = f"{xr.get('kind')} {xr.get('metadata', {}).get('name')} (Composition {composition['metadata']['name']})"
    results = [(fnv1.Severity.Name(r.severity), r.message) for r in response.results]
    fatal = [message for severity, message in results if severity == "SEVERITY_FATAL"]
    if fatal:
        raise CompositionError(f"{what}: {FUNCTION_NAME}: {'; '.join(fatal)}")
    out = Composed(results=results)
    for name in sorted(response.desired.resources):
        resource = response.desired.resources[name]
        out.resources[name] = _plain(json_format.MessageToDict(resource.resource))
        out.ready[name] = _ready(resource.ready)
    out.composite = _plain(json_format.MessageToDict(response.desired.composite.resource))
    out.composite_ready = _ready(response.desired.composite.ready)
    return out


def composed_object(xr: Mapping[str, Any], name: str, desired: Mapping[str, Any]) -> Obj:
    """A desired composed resource as Crossplane creates it: in the XR's namespace (v2), named
    ``<xr>-<suffix>`` (shown as ``generateName``), labelled ``crossplane.io/composite`` and annotated with its
    composition resource name (the metadata Crossplane v2 puts on every composed resource)."""
    obj: Obj = {k: v for k, v in desired.items() if k not in ("metadata", "status")}
    meta: Obj = dict(desired.get("metadata") or {})
    xr_meta = xr.get("metadata") or {}
    if not meta.get("name"):
        meta["generateName"] = f"{xr_meta.get('name')}-"
    if xr_meta.get("namespace") and "namespace" not in meta:
        meta["namespace"] = xr_meta["namespace"]
    labels = {**(meta.get("labels") or {}), "crossplane.io/composite": xr_meta.get("name")}
    annotations = {**(meta.get("annotations") or {}), RESOURCE_NAME_ANNOTATION: name}
    meta["labels"] = dict(sorted(labels.items()))
    meta["annotations"] = dict(sorted(annotations.items()))
    meta = {key: meta[key] for key in sorted(meta)}
    return {"apiVersion": obj.pop("apiVersion"), "kind": obj.pop("kind"), "metadata": meta, **obj}


COMPOSITION_KIND = ("apiextensions.crossplane.io", "Composition")


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _selection(xr: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = xr.get("spec") or {}
    return (spec.get("crossplane") or {}) if "crossplane" in spec else spec


def choose_composition(xr: Mapping[str, Any], compositions: list[Obj]) -> Obj:
    """The Composition Crossplane would pick for ``xr``: its compositionRef, else the one whose type matches and
    whose labels match the compositionSelector (exactly one, or the XR cannot be composed deterministically)."""
    selection = _selection(xr)
    typed = [c for c in compositions if c["spec"]["compositeTypeRef"] == {"apiVersion": xr.get("apiVersion"),
                                                                           "kind": xr.get("kind")}]
    ref = (selection.get("compositionRef") or {}).get("name")
    wanted = (selection.get("compositionSelector") or {}).get("matchLabels") or {}
    found = [c for c in typed if (c["metadata"]["name"] == ref if ref else
                                  all((c["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items()))]
    if len(found) != 1:
        meta = xr.get("metadata") or {}
        names = ", ".join(sorted(c["metadata"]["name"] for c in found)) or "none"
        raise CompositionError(f"{xr.get('kind')} {meta.get('namespace', '')}/{meta.get('name')}: "
                               f"{len(found)} Compositions match ({names}); expected exactly one")
    return found[0]


def claim_to_composite(claim: Mapping[str, Any], xr_kinds: set[tuple[str, str]]) -> Obj | None:
    """The cluster-scoped XR Crossplane creates for a legacy claim (kind ``X<Kind>``), or None if not a claim."""
    kind = f"X{claim.get('kind')}"
    if (str(claim.get("apiVersion")), kind) not in xr_kinds:
        return None
    meta = claim.get("metadata") or {}
    labels = {**(meta.get("labels") or {}), "crossplane.io/claim-name": meta.get("name"),
              "crossplane.io/claim-namespace": meta.get("namespace")}
    return {**claim, "kind": kind, "metadata": {"name": meta.get("name"), "labels": labels}}


@dataclass
class ComposedXR:
    """One XR (from the hub's build or composed by another XR) and what its Composition composes for it."""

    xr: Obj
    composition: str
    resources: dict[str, Obj]


def compose_objects(objects: list[Obj], *, render_unknowns: bool = True) -> list[ComposedXR]:
    """Compose every XR (or legacy claim) among ``objects`` with the Compositions among them, nested XRs too."""
    compositions = [o for o in objects if (_group(str(o.get("apiVersion"))), o.get("kind")) == COMPOSITION_KIND
                    and any(s.get("functionRef", {}).get("name") == FUNCTION_NAME
                            for s in (o.get("spec") or {}).get("pipeline") or [])]
    xr_kinds = {(c["spec"]["compositeTypeRef"]["apiVersion"], c["spec"]["compositeTypeRef"]["kind"])
                for c in compositions}
    pending: list[Obj] = []
    for obj in objects:
        if (obj.get("apiVersion"), obj.get("kind")) in xr_kinds:
            pending.append(dict(obj))
        else:
            composite = claim_to_composite(obj, xr_kinds)
            if composite is not None:
                pending.append(composite)
    out: list[ComposedXR] = []
    while pending:
        xr = pending.pop(0)
        comp = choose_composition(xr, compositions)
        result = run(comp, xr, render_unknowns=render_unknowns)
        resources = {name: composed_object(xr, name, desired) for name, desired in result.resources.items()}
        out.append(ComposedXR(xr, comp["metadata"]["name"], resources))
        for obj in resources.values():
            if (obj.get("apiVersion"), obj.get("kind")) in xr_kinds:
                nested = {**obj, "metadata": {k: v for k, v in obj["metadata"].items()
                                              if k not in ("generateName", "annotations")}}
                pending.append(nested)
    return out
