"""Strict, offline schema validation of rendered Kubernetes objects (kubeconform-style).

Custom kinds are checked against the ``openAPIV3Schema`` of upstream CRDs (a :class:`CrdCatalogue`), converted
to strict JSON Schema by :func:`strict_schema_from_openapi`: unknown fields are rejected like the API server's
strict field validation (``kubectl apply --validate=strict``). Core kinds use the strict JSON schemas bundled
with kubernetes-validate. ``metadata`` gets an ObjectMeta check (structure, name/namespace/label/annotation
formats) for both.

Deliberately not checked: ``x-kubernetes-validations`` CEL rules, ``default`` values, string ``format``\\ s
other than the ``int32``/``int64`` ranges, and whether a namespace is set on a cluster-scoped object.
``null`` is rejected where a CRD field is not ``nullable: true`` (the API server would prune it), but the
core schemas of kubernetes-validate accept ``null`` almost everywhere.
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml  # type: ignore[import-untyped,unused-ignore]
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from generator.errors import FleetgenError, UsageError
from generator.openapi import strict_schema_from_openapi

# --- Violations ---


@dataclass(frozen=True)
class SchemaViolation:
    """One schema problem of one rendered object, at a JSON path such as ``spec.interval``."""

    api_version: str
    kind: str
    namespace: str
    name: str
    path: str
    message: str

    def __str__(self) -> str:
        obj = "/".join(part for part in (self.kind, self.namespace, self.name) if part)
        return f"{obj}: {self.path}: {self.message}" if self.path else f"{obj}: {self.message}"


_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")


def _format_path(parts: Iterable[str | int]) -> str:
    """``("spec", "containers", 0, "a.b/c")`` → ``spec.containers[0]["a.b/c"]``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


# --- The JSON Schema validator: Draft 2020-12, lenient formats, Kubernetes list types ---


def _list_type(validator: Any, list_type: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[Any]:
    """``x-kubernetes-list-type``: no duplicate items in a ``set``, no duplicate keys in a ``map``."""
    if not isinstance(instance, list):
        return
    seen: dict[str, int] = {}
    keys = schema.get("x-kubernetes-list-map-keys") or []
    for index, item in enumerate(instance):
        if list_type == "set":
            identity = json.dumps(item, sort_keys=True)
            what = f"duplicate value {json.dumps(item)}"
        elif list_type == "map" and keys and isinstance(item, Mapping):
            values = {key: item.get(key) for key in keys}
            identity = json.dumps(values, sort_keys=True)
            what = "duplicate entry with " + ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items())
        else:
            continue
        if identity in seen:
            yield ValidationError(f"{what} (same as [{seen[identity]}])", path=[index])
        else:
            seen[identity] = index


def _int_range(bits: int) -> Any:
    """A format check that integers fit in ``bits`` signed bits; other instances pass."""
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def check(instance: object) -> bool:
        return not isinstance(instance, int) or isinstance(instance, bool) or low <= instance <= high

    return check


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("int32")(_int_range(32))
_FORMATS.checks("int64")(_int_range(64))

_Validator: Any = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"x-kubernetes-list-type": _list_type}
)


def _make_validator(schema: Mapping[str, Any], registry: Registry[Any] | None = None) -> Any:
    """A validator for ``schema`` with the lenient format checker (and ``registry`` for ``$ref``)."""
    if registry is None:
        return _Validator(schema, format_checker=_FORMATS)
    return _Validator(schema, format_checker=_FORMATS, registry=registry)


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


def _json_type(value: object) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _short(value: object, limit: int = 80) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_problems(error: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Turn one jsonschema error into (path, message) pairs with readable messages."""
    path = tuple(error.absolute_path)
    keyword, value, instance = error.validator, error.validator_value, error.instance
    if keyword == "additionalProperties" and value is False and isinstance(instance, Mapping):
        known = error.schema.get("properties") or {}
        patterns = error.schema.get("patternProperties") or {}
        for key in instance:
            if key not in known and not any(re.search(p, key) for p in patterns):
                yield (*path, key), "unknown field"
    elif keyword == "required" and isinstance(instance, Mapping):
        for key in value:
            if key not in instance:
                yield (*path, key), "required field is missing"
    elif keyword == "type":
        expected = " or ".join(value) if isinstance(value, list) else value
        yield path, f"must be of type {expected}, not {_json_type(instance)} ({_short(instance, 40)})"
    elif keyword == "enum":
        yield path, f"{_short(instance, 40)} is not one of {_short(value, 200)}"
    elif keyword == "const":
        yield path, f"must be {json.dumps(value)}, not {_short(instance, 40)}"
    elif keyword == "pattern":
        yield path, f"{_short(instance, 60)} does not match the pattern {value!r}"
    elif keyword in ("anyOf", "oneOf") and error.context:
        seen: list[str] = []
        for sub in error.context:
            for sub_path, message in _error_problems(sub):
                where = _format_path(sub_path[len(path) :])
                text = f"{where}: {message}" if where else message
                if text not in seen:
                    seen.append(text)
        quantifier = "exactly one" if keyword == "oneOf" else "at least one"
        yield path, _shorten(f"must satisfy {quantifier} of: " + "; ".join(seen))
    elif keyword == "not":
        yield path, f"must not match {_short(value, 120)} (e.g. mutually exclusive fields)"
    else:
        message = error.message
        if keyword in ("minItems", "maxItems", "minProperties", "maxProperties"):
            message = f"{keyword} is {value}, got {len(instance)}"
        yield path, _shorten(message)


def _shorten(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


def _schema_problems(validator: Any, obj: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """All problems the JSON Schema validator finds in ``obj``."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for error in validator.iter_errors(obj):
        problems.extend(_error_problems(error))
    return problems


# --- ObjectMeta formats ---

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ANNOTATIONS_MAX_BYTES = 256 * 1024

_SUBDOMAIN_HINT = (
    "must be a lowercase RFC 1123 subdomain (a-z, 0-9, '-', '.', alphanumeric at both ends, ≤253)"
)
_LABEL_HINT = "must be a lowercase RFC 1123 label (a-z, 0-9, '-', alphanumeric at both ends, ≤63)"


def _subdomain_problem(value: str) -> str | None:
    if len(value) <= 253 and _DNS1123_SUBDOMAIN.match(value):
        return None
    return _SUBDOMAIN_HINT


def _label_problem(value: str) -> str | None:
    return None if len(value) <= 63 and _DNS1123_LABEL.match(value) else _LABEL_HINT


def _dns1035_problem(value: str) -> str | None:
    if len(value) <= 63 and _DNS1035_LABEL.match(value):
        return None
    return "must be an RFC 1035 label (a-z, 0-9, '-'; starts with a letter, ends alphanumeric; ≤63)"


def _path_segment_problem(value: str) -> str | None:
    if value in (".", "..") or "/" in value or "%" in value:
        return "must not be '.' or '..' and must not contain '/' or '%'"
    return None


def _qualified_name_problem(key: str) -> str | None:
    """Problem of a label/annotation key or finalizer (``[prefix/]name``), or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in prefix:
        return "must be a qualified name: an optional DNS subdomain prefix and '/', then a name"
    if key.count("/") == 1 and (not prefix or _subdomain_problem(prefix)):
        return f"prefix {prefix!r} {_SUBDOMAIN_HINT}"
    if len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return "name part must be ≤63 characters of alphanumerics, '-', '_' or '.', alphanumeric at both ends"
    return None


_CORE_NAME_RULES = {
    ("v1", "Service"): _dns1035_problem,
    ("v1", "Namespace"): _label_problem,
    **{
        ("rbac.authorization.k8s.io/v1", kind): _path_segment_problem
        for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    },
}


def _metadata_problems(obj: Mapping[str, Any]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Format problems of ``metadata`` (types and unknown fields are the JSON schema's business)."""
    meta = obj.get("metadata")
    if meta is None:
        yield ("metadata",), "required field is missing"
        return
    if not isinstance(meta, Mapping):
        return
    name = meta.get("name")
    if name is None and not meta.get("generateName"):
        yield ("metadata", "name"), "required field is missing"
    elif isinstance(name, str):
        rule = _CORE_NAME_RULES.get((str(obj.get("apiVersion")), str(obj.get("kind"))), _subdomain_problem)
        problem = rule(name)
        if problem:
            yield ("metadata", "name"), f"{json.dumps(name)} is not a valid name: {problem}"
    namespace = meta.get("namespace")
    if isinstance(namespace, str) and (problem := _label_problem(namespace)):
        yield ("metadata", "namespace"), f"{json.dumps(namespace)} is not a valid namespace: {problem}"
    labels = meta.get("labels")
    if isinstance(labels, Mapping):
        for key, value in labels.items():
            where = ("metadata", "labels", str(key))
            if problem := _qualified_name_problem(str(key)):
                yield where, f"invalid label key: {problem}"
            if isinstance(value, str) and (len(value) > 63 or not _LABEL_VALUE.match(value)):
                yield (
                    where,
                    (
                        f"invalid label value {_short(value, 70)}: must be empty or ≤63 characters of "
                        "alphanumerics, '-', '_' or '.', alphanumeric at both ends"
                    ),
                )
    annotations = meta.get("annotations")
    if isinstance(annotations, Mapping):
        size = 0
        for key, value in annotations.items():
            if problem := _qualified_name_problem(str(key).lower()):
                yield ("metadata", "annotations", str(key)), f"invalid annotation key: {problem}"
            size += len(str(key)) + (len(value) if isinstance(value, str) else 0)
        if size > _ANNOTATIONS_MAX_BYTES:
            yield ("metadata", "annotations"), f"annotations total {size} bytes, more than 262144"
    finalizers = meta.get("finalizers")
    if isinstance(finalizers, list):
        for index, finalizer in enumerate(finalizers):
            if isinstance(finalizer, str) and (problem := _qualified_name_problem(finalizer)):
                yield ("metadata", "finalizers", index), f"invalid finalizer: {problem}"


# --- CRD catalogue ---


@dataclass(frozen=True)
class _CrdVersion:
    """One served version of one CRD, as read."""

    openapi: dict[str, Any]
    source: Path


@functools.cache
def _crd_loader() -> Any:
    """A PyYAML safe loader (libyaml when available) that reads a bare ``=`` as a string, as YAML 1.2 does."""
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader: Any = type("_CrdLoader", (base,), {})
    loader.add_constructor("tag:yaml.org,2002:value", lambda load, node: load.construct_scalar(node))
    return loader


#: The catalogue fleetgen ships: reduced upstream CRDs (``<dir>/<file>.gz``) listed in ``catalogue.yaml``
#: (see :mod:`generator.verify.catalogue`, which refreshes them).
BUILTIN_CRDS = Path(__file__).resolve().parent.parent / "data" / "crds"

_CRD_SUFFIXES = (".yaml", ".yml", ".gz")
_CRD_GROUP = re.compile(r"^  group: ['\"]?([A-Za-z0-9.-]+)", re.M)


def read_crd_documents(path: Path, data: bytes | None = None) -> list[Any]:
    """The YAML documents of a CRD file. A ``.gz`` file is decompressed first; when its text is JSON documents
    separated by ``---`` lines (the built-in catalogue's format) they are read with the faster JSON parser."""
    raw = path.read_bytes() if data is None else data
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    if raw.startswith(b"{"):
        return [json.loads(chunk) for chunk in raw.split(b"\n---\n") if chunk.strip()]
    return list(yaml.load_all(raw, Loader=_crd_loader()))


class CrdCatalogue:
    """The served versions of a set of upstream CRDs, indexed by (apiVersion, kind).

    Strict schemas are converted lazily and cached; :meth:`schema_for` returns the cached dict: do not
    mutate it.
    """

    def __init__(self, versions: Mapping[tuple[str, str], _CrdVersion]) -> None:
        self._versions = dict(versions)
        self._strict: dict[tuple[str, str], dict[str, Any]] = {}

    @classmethod
    def load(cls, directory: Path, groups: Iterable[str] | None = None) -> CrdCatalogue:
        """Read every ``*.yaml``/``*.yml``/``*.gz`` under ``directory``; on clashes the later file (by path) wins.

        With ``groups``, plain YAML files whose ``spec.group`` lines name none of them are skipped unparsed
        (a folder of upstream CRDs can be 13 MB of YAML; a fleet uses a handful of groups).
        """
        if not directory.is_dir():
            raise FleetgenError(f"{directory}: CRD directory does not exist")
        wanted = set(groups) if groups is not None else None
        versions: dict[tuple[str, str], _CrdVersion] = {}
        files = sorted(p for p in directory.rglob("*") if p.suffix in _CRD_SUFFIXES and p.is_file())
        for path in files:
            try:
                data = path.read_bytes()
                if wanted is not None and path.suffix != ".gz":
                    found = set(_CRD_GROUP.findall(data.decode("utf-8", errors="replace")))
                    if b"CustomResourceDefinition" not in data or (found and not found & wanted):
                        continue
                documents = read_crd_documents(path, data)
            except (OSError, ValueError, yaml.YAMLError) as exc:
                raise FleetgenError(f"{path}: cannot read CRDs: {exc}") from exc
            for document in documents:
                if isinstance(document, Mapping) and document.get("kind") == "CustomResourceDefinition":
                    try:
                        versions.update(_served_versions(document, path))
                    except (KeyError, TypeError, AttributeError) as exc:
                        raise FleetgenError(f"{path}: malformed CustomResourceDefinition ({exc!r})") from exc
        return cls(versions)

    @classmethod
    def builtin(cls) -> CrdCatalogue:
        """The catalogue fleetgen ships (:data:`BUILTIN_CRDS`), read once per process (a fresh, unshared copy)."""
        return cls(_builtin_versions())

    def overlay(self, other: CrdCatalogue) -> CrdCatalogue:
        """A catalogue with this one's versions, those of ``other`` added or replacing them."""
        return CrdCatalogue({**self._versions, **other._versions})

    def kinds(self) -> set[tuple[str, str]]:
        """Every served (apiVersion, kind)."""
        return set(self._versions)

    def api_versions(self) -> list[str]:
        """Sorted served group/versions, e.g. ``helm.toolkit.fluxcd.io/v2`` (for ``helm --api-versions``)."""
        return sorted({api_version for api_version, _ in self._versions})

    def schema_for(self, api_version: str, kind: str) -> dict[str, Any] | None:
        """The strict JSON schema of a served (apiVersion, kind), or None."""
        key = (api_version, kind)
        if key not in self._strict:
            version = self._versions.get(key)
            if version is None:
                return None
            self._strict[key] = strict_schema_from_openapi(
                version.openapi, api_version=api_version, kind=kind
            )
        return self._strict[key]

    def source_of(self, api_version: str, kind: str) -> Path | None:
        """The file that defined a served (apiVersion, kind), or None."""
        version = self._versions.get((api_version, kind))
        return version.source if version else None


@functools.cache
def _builtin_versions() -> dict[tuple[str, str], _CrdVersion]:
    return dict(CrdCatalogue.load(BUILTIN_CRDS)._versions) if BUILTIN_CRDS.is_dir() else {}


def _served_versions(crd: Mapping[str, Any], source: Path) -> Iterator[tuple[tuple[str, str], _CrdVersion]]:
    """The served versions of one CRD document (``apiextensions.k8s.io/v1``, or legacy ``v1beta1``)."""
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    shared = (spec.get("validation") or {}).get("openAPIV3Schema")
    listed = spec.get("versions") or [{"name": spec["version"], "served": True}]
    for version in listed:
        if version.get("served") is not True:
            continue
        openapi = (version.get("schema") or {}).get("openAPIV3Schema") or shared
        if openapi is None:
            openapi = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        yield (f"{group}/{version['name']}", kind), _CrdVersion(openapi, source)


def extra_crd_dirs(given: Sequence[Path] | None = None) -> list[Path]:
    """Folders of CRDs that add to (or override) the built-in catalogue: ``given`` (``--crds``, repeatable),
    else ``$FLEETGEN_CRDS`` (one folder, or several separated by the OS path separator), else none."""
    if given:
        dirs = [Path(d) for d in given]
    else:
        configured = os.environ.get("FLEETGEN_CRDS", "")
        dirs = [Path(part) for part in configured.split(os.pathsep) if part]
    for directory in dirs:
        if not directory.is_dir():
            raise UsageError(f"{directory}: CRD directory does not exist (--crds / $FLEETGEN_CRDS)")
    return [d.resolve() for d in dirs]


def load_catalogue(extra_dirs: Sequence[Path] = (), groups: Iterable[str] | None = None) -> CrdCatalogue:
    """The built-in catalogue, with the CRDs of ``extra_dirs`` (in order; later wins) added or overriding.

    ``groups`` limits which files of the extra folders are parsed (see :meth:`CrdCatalogue.load`).
    """
    catalogue = CrdCatalogue.builtin()
    wanted = list(groups) if groups is not None else None
    for directory in extra_dirs:
        catalogue = catalogue.overlay(CrdCatalogue.load(directory, wanted))
    return catalogue


# --- Core kinds: the strict schemas bundled with kubernetes-validate ---

_SCHEMA_DIR = re.compile(r"^v(\d+)\.(\d+)\.(\d+)-local-strict$")


def _core_schema_root() -> Any:
    try:
        return importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    except ModuleNotFoundError as exc:
        raise FleetgenError(
            "schema validation of core kinds needs kubernetes-validate (fleetgen[dev])"
        ) from exc


def core_schema_versions() -> list[str]:
    """Kubernetes versions (``major.minor``) whose strict schemas kubernetes-validate ships, oldest first."""
    found: list[tuple[int, int]] = []
    for entry in _core_schema_root().iterdir():
        if match := _SCHEMA_DIR.match(entry.name):
            found.append((int(match.group(1)), int(match.group(2))))
    return [f"{major}.{minor}" for major, minor in sorted(set(found))]


def nearest_core_version(requested: str) -> str:
    """The shipped schema version for ``requested`` (e.g. ``"1.33"``, ``"v1.33.2"``): the newest shipped one
    not newer than it, else the oldest shipped one."""
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.\d+)?$", requested.strip())
    if not match:
        raise ValueError(f"not a Kubernetes version: {requested!r} (expected e.g. 1.33)")
    wanted = (int(match.group(1)), int(match.group(2)))
    shipped = [(int(a), int(b)) for a, b in (v.split(".") for v in core_schema_versions())]
    if not shipped:
        raise FleetgenError("kubernetes-validate ships no strict schemas")
    older = [version for version in shipped if version <= wanted]
    major, minor = older[-1] if older else shipped[0]
    return f"{major}.{minor}"


class _CoreSchemas:
    """Lazily built validators for the core kinds of one Kubernetes version."""

    def __init__(self, version: str) -> None:
        self.version = version
        self._dir = _core_schema_root() / f"v{version}.0-local-strict"
        self._registry: Registry[Any] | None = None
        self._validators: dict[tuple[str, str], Any] = {}

    def validator(self, api_version: str, kind: str) -> Any:
        """The validator for a core (apiVersion, kind), or None when kubernetes-validate has no schema."""
        key = (api_version, kind)
        if key not in self._validators:
            self._validators[key] = self._build(api_version, kind)
        return self._validators[key]

    def _build(self, api_version: str, kind: str) -> Any:
        group, _, version = api_version.rpartition("/")
        if group and "." in group and not group.endswith(".k8s.io"):
            return None
        suffix = f"{group.split('.')[0]}-{version}" if group else version
        entry = self._dir / f"{kind.lower()}-{suffix}.json"
        if not entry.is_file():
            return None
        schema = json.loads(entry.read_text(encoding="utf-8"))
        gvks = schema.get("x-kubernetes-group-version-kind") or []
        if {"group": group, "version": version, "kind": kind} not in gvks:
            return None
        if self._registry is None:
            definitions = json.loads((self._dir / "_definitions.json").read_text(encoding="utf-8"))
            self._registry = Registry().with_resource(definitions["$id"], Resource.from_contents(definitions))
        return _make_validator(schema, self._registry)


# --- The validator ---


class SchemaValidator:
    """Validate rendered objects: ``extra_schemas`` first, then the CRD catalogue, then core kinds.

    ``extra_schemas`` are strict JSON schemas keyed by (apiVersion, kind), e.g. built with
    :func:`strict_schema_from_openapi` from a rendered XRD. Core kinds use the kubernetes-validate schemas of
    ``kubernetes_version`` mapped by :func:`nearest_core_version` (see :attr:`core_version`).
    """

    def __init__(
        self,
        catalogue: CrdCatalogue | None,
        kubernetes_version: str = "1.33",
        extra_schemas: Mapping[tuple[str, str], dict[str, Any]] | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.core_version = nearest_core_version(kubernetes_version)
        self._core = _CoreSchemas(self.core_version)
        self._extra = dict(extra_schemas or {})
        self._validators: dict[tuple[str, str], Any] = {}

    def validate(self, obj: Mapping[str, Any]) -> list[SchemaViolation]:
        """Every violation of one object, sorted by path."""
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        meta = obj.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        namespace, name = meta.get("namespace"), meta.get("name")
        composed = (meta.get("annotations") or {}).get("crossplane.io/composition-resource-name")
        if not name and composed:  # a Crossplane composed resource (generateName): XR and composition resource
            name = f"{(meta.get('labels') or {}).get('crossplane.io/composite', '?')}/{composed}"

        def violation(path: Sequence[str | int], message: str) -> SchemaViolation:
            return SchemaViolation(
                api_version=api_version if isinstance(api_version, str) else "",
                kind=kind if isinstance(kind, str) else "",
                namespace=namespace if isinstance(namespace, str) else "",
                name=name if isinstance(name, str) else "",
                path=_format_path(path),
                message=message,
            )

        if not (isinstance(api_version, str) and api_version and isinstance(kind, str) and kind):
            return [
                violation(
                    (field,), "required field is missing" if value is None else "must be a non-empty string"
                )
                for field, value in (("apiVersion", api_version), ("kind", kind))
                if not isinstance(value, str) or not value
            ]
        validator = self._validator_for(api_version, kind)
        if validator is None:
            return [violation((), self._no_schema_message(api_version, kind))]
        problems = _schema_problems(validator, obj) + list(_metadata_problems(obj))
        unique = sorted(set(problems), key=lambda item: (_format_path(item[0]), item[1]))
        return [violation(path, message) for path, message in unique]

    def validate_all(self, objs: Iterable[Mapping[str, Any]]) -> list[SchemaViolation]:
        """Every violation of every object, in input order."""
        return [violation for obj in objs for violation in self.validate(obj)]

    def has_schema(self, api_version: str, kind: str) -> bool:
        """Whether objects of (apiVersion, kind) can be validated (a schema from any of the three sources)."""
        return self._validator_for(api_version, kind) is not None

    def _validator_for(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        if key not in self._validators:
            schema = self._extra.get(key)
            if schema is None and self.catalogue is not None:
                schema = self.catalogue.schema_for(api_version, kind)
            self._validators[key] = (
                _make_validator(schema) if schema is not None else self._core.validator(api_version, kind)
            )
        return self._validators[key]

    def _no_schema_message(self, api_version: str, kind: str) -> str:
        group = api_version.rpartition("/")[0]
        known = set(self._extra) | (self.catalogue.kinds() if self.catalogue else set())
        served = sorted(v for v, k in known if k == kind and v.rpartition("/")[0] == group)
        hint = f" (served: {', '.join(served)})" if served else ""
        return f"no schema for {api_version} {kind}{hint}"


def bundled_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """fleetgen's own strict schemas for kinds with no upstream CRD (``generator/data/schemas/*.json``)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    folder = importlib.resources.files("generator").joinpath("data/schemas")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            schema = json.loads(entry.read_text(encoding="utf-8"))
            props = schema.get("properties") or {}
            api_version = (props.get("apiVersion") or {}).get("const")
            kind = (props.get("kind") or {}).get("const")
            if isinstance(api_version, str) and isinstance(kind, str):
                out[(api_version, kind)] = schema
    return out


def rendered_extra_schemas(files: Mapping[str, str]) -> dict[tuple[str, str], dict[str, Any]]:
    """Schemas beyond the CRD catalogue for a rendered fleet: bundled ones plus its own XRDs' composite kinds."""
    from generator.render.crossplane.api import xr_schemas
    from generator.yamlio import load_documents

    xrds = [
        doc
        for path, text in sorted(files.items())
        if path.startswith("infrastructure/apis/") and path.endswith(".yaml")
        for doc in load_documents(text)
    ]
    return {**bundled_schemas(), **xr_schemas(xrds)}
