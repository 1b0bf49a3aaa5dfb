"""Kubernetes OpenAPI v3 (structural CRD schemas) to strict JSON Schema, as the API server reads them.

Unknown fields are rejected like strict field validation; ``x-kubernetes-int-or-string``, ``nullable``,
``x-kubernetes-preserve-unknown-fields`` and Go (RE2) ``pattern``\\ s are translated. Used by the validator and by
the Crossplane XRD planning (the composite resources' own schemas)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_DRAFT = "https://json-schema.org/draft/2020-12/schema"


_STRING_OR_NULL: dict[str, Any] = {"type": ["string", "null"]}


_STRING_MAP: dict[str, Any] = {"type": ["object", "null"], "additionalProperties": {"type": "string"}}


#: ObjectMeta as a manifest may carry it: known fields with their types, nothing else. Formats of name,
#: namespace, labels and annotations are checked in Python (:func:`_metadata_problems`) for readable messages.
OBJECT_META_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
        "finalizers": {"type": ["array", "null"], "items": {"type": "string"}},
        "ownerReferences": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["apiVersion", "kind", "name", "uid"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "name": {"type": "string"},
                    "uid": {"type": "string"},
                    "controller": {"type": "boolean"},
                    "blockOwnerDeletion": {"type": "boolean"},
                },
            },
        },
        "uid": {"type": "string"},
        "resourceVersion": {"type": "string"},
        "generation": {"type": "integer"},
        "selfLink": {"type": "string"},
        "creationTimestamp": _STRING_OR_NULL,
        "deletionTimestamp": _STRING_OR_NULL,
        "deletionGracePeriodSeconds": {"type": "integer"},
        "managedFields": {"type": ["array", "null"], "items": {"type": "object"}},
    },
}


_JUNCTORS = ("allOf", "anyOf", "oneOf")


_INT_OR_STRING_PAIR = [{"type": "integer"}, {"type": "string"}]


def strict_schema_from_openapi(
    openapi: Mapping[str, Any], *, api_version: str | None = None, kind: str | None = None
) -> dict[str, Any]:
    """Convert a CRD/XRD ``openAPIV3Schema`` (structural) of a whole object into strict JSON Schema (2020-12).

    Objects that neither set ``additionalProperties`` nor ``x-kubernetes-preserve-unknown-fields: true`` get
    ``additionalProperties: false`` (also objects without ``properties``, whose content the API server would
    prune); ``nullable: true`` admits ``null``; ``x-kubernetes-int-or-string`` is integer or string;
    ``x-kubernetes-embedded-resource`` objects require ``apiVersion`` and ``kind`` and allow ``metadata``.
    At the root, ``apiVersion``/``kind`` are strings (``const`` when given) and ``metadata`` is
    :data:`OBJECT_META_SCHEMA`, combined with any ``name``/``generateName`` rules the schema sets.
    ``x-kubernetes-validations`` (CEL) are kept but not evaluated; Go regex ``pattern``\\ s that Python cannot
    compile are translated where exact and dropped otherwise.
    """
    root = dict(openapi)
    properties = dict(root.get("properties") or {})
    given_meta = properties.pop("metadata", None)
    root["properties"] = properties
    root.setdefault("type", "object")
    schema = _convert(root, junctor=False)
    meta: dict[str, Any] = OBJECT_META_SCHEMA
    if isinstance(given_meta, Mapping) and given_meta.get("properties"):
        extra = {key: _convert(sub, junctor=True) for key, sub in given_meta["properties"].items()}
        meta = {"allOf": [OBJECT_META_SCHEMA, {"properties": extra}]}
    schema["properties"].update(
        {
            "apiVersion": {"type": "string", **({"const": api_version} if api_version else {})},
            "kind": {"type": "string", **({"const": kind} if kind else {})},
            "metadata": meta,
        }
    )
    schema["$schema"] = _DRAFT
    return schema


def _convert(node: Mapping[str, Any], *, junctor: bool) -> dict[str, Any]:
    """Convert one structural schema node; inside allOf/anyOf/oneOf/not (``junctor``) add no closure."""
    out: dict[str, Any] = dict(node)
    if isinstance(node.get("properties"), Mapping):
        out["properties"] = {key: _convert(sub, junctor=junctor) for key, sub in node["properties"].items()}
    if isinstance(node.get("items"), Mapping):
        out["items"] = _convert(node["items"], junctor=junctor)
    if isinstance(node.get("additionalProperties"), Mapping):
        out["additionalProperties"] = _convert(node["additionalProperties"], junctor=junctor)
    for key in _JUNCTORS:
        if isinstance(node.get(key), list):
            out[key] = [_convert(sub, junctor=True) for sub in node[key]]
    if isinstance(node.get("not"), Mapping):
        out["not"] = _convert(node["not"], junctor=True)
    if isinstance(out.get("pattern"), str):
        pattern = python_pattern(out["pattern"])
        if pattern is None:
            del out["pattern"]
        else:
            out["pattern"] = pattern

    if node.get("x-kubernetes-int-or-string") is True:
        out["type"] = ["integer", "string"]
        if out.get("anyOf") == _INT_OR_STRING_PAIR:
            del out["anyOf"]
    if node.get("x-kubernetes-embedded-resource") is True:
        out.setdefault("type", "object")
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", OBJECT_META_SCHEMA)
        out["required"] = sorted({*out.get("required", ()), "apiVersion", "kind"})
    is_object = out.get("type") == "object" or ("type" not in out and "properties" in out)
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if not junctor and is_object and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    if node.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif isinstance(kind, list) and "null" not in kind:
            out["type"] = [*kind, "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


_INLINE_FLAGS = re.compile(r"\(\?([imsU]+)\)")


def python_pattern(pattern: str) -> str | None:
    """Return a Python ``re`` equivalent of a Go (RE2) pattern, or None when there is no exact one.

    Go allows inline flags such as ``(?i)`` anywhere, scoped to the rest of the enclosing group; Python only
    at the start. Where the flags open a group (or follow a leading ``^``), they become ``(?i:…)`` up to the
    group's end, which is exact.
    """
    while True:
        try:
            re.compile(pattern)
        except re.error:
            pass
        else:
            return pattern
        for match in _INLINE_FLAGS.finditer(pattern):
            start = match.start()
            if start == 0 or _escaped(pattern, start):
                continue
            before = pattern[:start]
            if not (before.endswith("(") and not _escaped(pattern, start - 1)) and before != "^":
                return None
            flags = match.group(1)
            if "U" in flags:
                return None
            end = _group_end(pattern, match.end())
            pattern = f"{before}(?{flags}:{pattern[match.end() : end]}){pattern[end:]}"
            break
        else:
            return None


def _escaped(text: str, index: int) -> bool:
    """Whether ``text[index]`` is preceded by an odd number of backslashes."""
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def _group_end(pattern: str, index: int) -> int:
    """Index of the ``)`` closing the group that contains ``index`` (or ``len(pattern)`` at top level)."""
    depth = 0
    in_class = False
    i = index
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":
                i += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return len(pattern)
