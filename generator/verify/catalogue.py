"""The schema catalogue fleetgen ships, and the task that refreshes it (``fleetgen schemas``).

``generator/data/crds/catalogue.yaml`` (the manifest) lists which upstream CRD files to vendor, with their
repository, tag, commit, source path, git blob id and licence. :func:`refresh` reads those files from a folder
laid out as ``<dir>/<file>`` (like upstream copies of CRDs), checks each one's git blob id against the manifest
and the folder's own ``<dir>/SOURCES.tsv``, reduces it to what validation needs (:func:`reduce_crd`) and writes
``<dir>/<file>.gz`` (gzip with a fixed mtime: the same input gives the same bytes) plus ``SOURCES.tsv``.

:func:`coverage` then walks what the fleet renders (every rendered file, every cluster's build, the resources
and inputs inside Compositions, and every kind the code can compose or template) and reports each kind with no
schema in the catalogue, kubernetes-validate (core kinds), fleetgen's own schemas or the fleet's own XRDs.
"""

from __future__ import annotations

import ast
import dataclasses
import gzip
import hashlib
import importlib.resources
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from generator.errors import FleetgenError
from generator.verify.schema import BUILTIN_CRDS, CrdCatalogue, SchemaValidator, read_crd_documents

MANIFEST = "catalogue.yaml"
SOURCES = "SOURCES.tsv"
SOURCES_HEADER = "file\trepository\ttag\tcommit\tpath\tblob\tlicence\tkinds"
_BLOB = re.compile(r"^[0-9a-f]{40}$")
SCHEMA_HINT = (
    "add its upstream CRD file to generator/data/crds/catalogue.yaml (one line `<file>: <blob id>` under its "
    "source) and run `invoke schemas --from DIR`; if no CRD can be vendored, list it under `gaps:` with the reason"
)

Obj = dict[str, Any]
Kind = tuple[str, str]


# --- The manifest ---


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """One upstream repository at one tag, and the files of its CRD folder fleetgen vendors."""

    dir: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    repository: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$")]
    tag: Annotated[str, Field(min_length=1)]
    commit: Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")]
    path: Annotated[str, Field(min_length=1)]
    licence: Annotated[str, Field(min_length=1)]
    files: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+\.ya?ml$")], str | None]

    def upstream_path(self, file: str) -> str:
        """The file's path in the repository (``path`` is a folder ending in ``/``, or the file itself)."""
        return self.path + file if self.path.endswith("/") else self.path


class Gap(_Strict):
    """A kind fleetgen can render that has no schema yet, and why."""

    kind: Annotated[str, Field(pattern=r"^\S+/\S+ \S+$")]
    reason: Annotated[str, Field(min_length=1)]

    @property
    def key(self) -> Kind:
        api_version, kind = self.kind.split(" ")
        return api_version, kind


class Manifest(_Strict):
    """``catalogue.yaml``: what to vendor, and the kinds knowingly left without a schema."""

    sources: list[Source]
    gaps: list[Gap] = []

    def entries(self) -> Iterator[tuple[Source, str]]:
        """Every (source, file name), in manifest order."""
        for source in self.sources:
            for file in source.files:
                yield source, file


def load_manifest(catalogue_dir: Path = BUILTIN_CRDS) -> Manifest:
    """Read and check ``catalogue.yaml``; every problem is reported with the manifest's path."""
    from generator.yamlio import load_documents

    path = catalogue_dir / MANIFEST
    try:
        documents = load_documents(path.read_text(encoding="utf-8"))
        manifest = Manifest.model_validate(documents[0] if documents else {})
    except OSError as exc:
        raise FleetgenError(f"{path}: cannot read the catalogue manifest: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise FleetgenError(f"{path}: {problems}") from exc
    seen: set[str] = set()
    for source, file in manifest.entries():
        rel = f"{source.dir}/{file}"
        if rel in seen:
            raise FleetgenError(f"{path}: {rel} is listed twice")
        seen.add(rel)
        blob = source.files[file]
        if blob is not None and not _BLOB.match(blob):
            raise FleetgenError(f"{path}: {rel}: blob id {blob!r} is not 40 hex digits")
    return manifest


# --- Reduction and encoding ---


def git_blob_id(data: bytes) -> str:
    """The git blob id of a file's bytes (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


_SCHEMA_MAPS = ("properties", "patternProperties", "definitions", "dependencies")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")


def _without_descriptions(node: Any) -> Any:
    """A structural schema without its ``description`` keywords (property *names* are kept as they are)."""
    if not isinstance(node, Mapping):
        return node
    out: Obj = {}
    for key, value in node.items():
        if key == "description":
            continue
        if key in _SCHEMA_MAPS and isinstance(value, Mapping):
            out[key] = {name: _without_descriptions(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_without_descriptions(sub) for sub in value]
        elif key in ("items", "additionalProperties", "not", "additionalItems") and isinstance(value, Mapping):
            out[key] = _without_descriptions(value)
        else:
            out[key] = value
    return out


def reduce_crd(crd: Mapping[str, Any]) -> Obj:
    """What schema validation needs of an ``apiextensions.k8s.io/v1`` CRD: its name, group, names, scope and
    versions (name, served, storage, deprecated) with the ``openAPIV3Schema`` of each served version, minus
    descriptions. Printer columns, subresources, conversion and annotations are dropped."""
    if crd.get("apiVersion") != "apiextensions.k8s.io/v1":
        raise FleetgenError(f"CRD {crd.get('metadata', {}).get('name')}: only apiextensions.k8s.io/v1 is supported")
    spec = crd["spec"]
    names = {key: spec["names"][key] for key in ("kind", "listKind", "plural", "singular") if key in spec["names"]}
    versions = []
    for version in spec["versions"]:
        reduced: Obj = {"name": version["name"], "served": version.get("served") is True,
                        "storage": version.get("storage") is True}
        if version.get("deprecated") is True:
            reduced["deprecated"] = True
        openapi = (version.get("schema") or {}).get("openAPIV3Schema")
        if reduced["served"] and openapi is not None:
            reduced["schema"] = {"openAPIV3Schema": _without_descriptions(openapi)}
        versions.append(reduced)
    return {"apiVersion": crd["apiVersion"], "kind": "CustomResourceDefinition",
            "metadata": {"name": crd["metadata"]["name"]},
            "spec": {"group": spec["group"], "names": names, "scope": spec["scope"], "versions": versions}}


def encode(crds: Iterable[Mapping[str, Any]]) -> bytes:
    """Reduced CRDs as one JSON document per line between ``---`` lines (valid YAML), gzip with mtime 0."""
    text = "\n---\n".join(json.dumps(crd, sort_keys=True, ensure_ascii=False, separators=(",", ":")) for crd in crds)
    return gzip.compress((text + "\n").encode("utf-8"), compresslevel=9, mtime=0)


def served_kinds(crds: Iterable[Mapping[str, Any]]) -> list[str]:
    """``group/version Kind`` of every served version, sorted."""
    return sorted(f"{crd['spec']['group']}/{v['name']} {crd['spec']['names']['kind']}"
                  for crd in crds for v in crd["spec"]["versions"] if v.get("served") is True)


# --- Refresh ---


@dataclasses.dataclass(frozen=True)
class Vendored:
    """One vendored file: where it came from and what it serves."""

    source: Source
    file: str
    blob: str
    kinds: list[str]
    data: bytes

    @property
    def target(self) -> str:
        return f"{self.source.dir}/{self.file}.gz"

    def row(self) -> str:
        source = self.source
        return "\t".join((f"{source.dir}/{self.file}", source.repository, source.tag, source.commit,
                          source.upstream_path(self.file), self.blob, source.licence, ", ".join(self.kinds)))


@dataclasses.dataclass
class RefreshReport:
    """What :func:`refresh` did."""

    vendored: list[Vendored]
    written: list[str]
    removed: list[str]

    def summary(self) -> str:
        kinds = sum(len(v.kinds) for v in self.vendored)
        size = sum(len(v.data) for v in self.vendored)
        return (f"vendored {len(self.vendored)} CRD files ({kinds} served kinds, {size / 1024:.0f} KiB gzip): "
                f"{len(self.written)} written, {len(self.removed)} removed")


def _upstream_sources(directory: Path) -> dict[str, list[str]]:
    """``<dir>/SOURCES.tsv`` of a folder of upstream copies: file → (file, repository, tag, commit, path, blob)."""
    path = directory / SOURCES
    if not path.is_file():
        return {}
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) >= 6 and _BLOB.match(fields[5]):
            rows[fields[0]] = fields[:6]
    return rows


def _vendor_one(source: Source, file: str, origin: Path, problems: list[str]) -> Vendored | None:
    rel = f"{source.dir}/{file}"
    path = origin / source.dir / file
    try:
        data = path.read_bytes()
    except OSError:
        problems.append(f"{rel}: not found in {origin}")
        return None
    blob = git_blob_id(data)
    expected = source.files[file]
    if expected is not None and blob != expected:
        problems.append(f"{rel}: git blob id {blob} differs from the manifest's {expected} "
                        f"({source.repository}@{source.tag}:{source.upstream_path(file)})")
    row = _upstream_sources(origin / source.dir).get(file)
    if row is not None:
        _, repository, tag, commit, upstream, listed_blob = row
        if (repository, tag, commit) != (source.repository, source.tag, source.commit):
            problems.append(f"{rel}: {source.dir}/SOURCES.tsv says {repository}@{tag} ({commit}), the manifest "
                            f"{source.repository}@{source.tag} ({source.commit})")
        if listed_blob != blob:
            problems.append(f"{rel}: git blob id {blob} differs from {source.dir}/SOURCES.tsv's {listed_blob}")
        if upstream != source.upstream_path(file):
            problems.append(f"{rel}: {source.dir}/SOURCES.tsv gives path {upstream}, the manifest "
                            f"{source.upstream_path(file)}")
    try:
        crds = [doc for doc in read_crd_documents(path, data)
                if isinstance(doc, Mapping) and doc.get("kind") == "CustomResourceDefinition"]
        reduced = [reduce_crd(crd) for crd in crds]
    except (ValueError, KeyError, TypeError) as exc:
        problems.append(f"{rel}: cannot read CRDs: {exc}")
        return None
    except FleetgenError as exc:
        problems.append(f"{rel}: {exc}")
        return None
    if not reduced:
        problems.append(f"{rel}: holds no CustomResourceDefinition")
        return None
    return Vendored(source, file, blob, served_kinds(reduced), encode(reduced))


def refresh(origin: Path, catalogue_dir: Path = BUILTIN_CRDS) -> RefreshReport:
    """Re-vendor every file the manifest lists from ``origin`` (laid out ``<dir>/<file>``) into ``catalogue_dir``.

    Checks every file first (present, blob id as the manifest and ``<dir>/SOURCES.tsv`` say, holds CRDs) and
    writes nothing when any check fails; then writes changed files, removes vendored files no longer listed,
    and rewrites ``SOURCES.tsv``.
    """
    if not origin.is_dir():
        raise FleetgenError(f"{origin}: not a folder of upstream CRDs")
    manifest = load_manifest(catalogue_dir)
    problems: list[str] = []
    vendored = [v for source, file in manifest.entries() if (v := _vendor_one(source, file, origin, problems))]
    if problems:
        raise FleetgenError(f"{len(problems)} problem(s) with the upstream CRDs in {origin}; nothing was "
                            "written:\n  " + "\n  ".join(problems))
    written, removed = [], []
    for item in vendored:
        target = catalogue_dir / item.target
        if not target.is_file() or target.read_bytes() != item.data:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(item.data)
            written.append(item.target)
    wanted = {item.target for item in vendored}
    for stale in sorted(catalogue_dir.rglob("*.gz")):
        rel = stale.relative_to(catalogue_dir).as_posix()
        if rel not in wanted:
            stale.unlink()
            removed.append(rel)
    for folder in sorted((p for p in catalogue_dir.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    sources = "\n".join([SOURCES_HEADER, *(item.row() for item in vendored)]) + "\n"
    sources_path = catalogue_dir / SOURCES
    if not sources_path.is_file() or sources_path.read_text(encoding="utf-8") != sources:
        sources_path.write_text(sources, encoding="utf-8")
        written.append(SOURCES)
    return RefreshReport(vendored, written, removed)


def verify(catalogue_dir: Path = BUILTIN_CRDS) -> list[str]:
    """Problems of the vendored files against the manifest (missing, extra, unreadable, SOURCES.tsv rows)."""
    manifest = load_manifest(catalogue_dir)
    problems = []
    rows = {}
    sources_path = catalogue_dir / SOURCES
    lines = sources_path.read_text(encoding="utf-8").splitlines() if sources_path.is_file() else []
    if not lines or lines[0] != SOURCES_HEADER:
        problems.append(f"{SOURCES}: missing or without its header line")
    for line in lines[1:]:
        fields = line.split("\t")
        rows[fields[0]] = fields
    for source, file in manifest.entries():
        rel = f"{source.dir}/{file}"
        target = catalogue_dir / f"{rel}.gz"
        if not target.is_file():
            problems.append(f"{rel}.gz: listed in {MANIFEST} but not vendored")
            continue
        try:
            kinds = served_kinds(d for d in read_crd_documents(target) if isinstance(d, Mapping))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"{rel}.gz: cannot read: {exc}")
            continue
        row = rows.pop(rel, None)
        blob = source.files[file]
        expected = [rel, source.repository, source.tag, source.commit, source.upstream_path(file),
                    blob if blob is not None else (row[5] if row and len(row) > 5 else "?"), source.licence,
                    ", ".join(kinds)]
        if row != expected:
            problems.append(f"{rel}: {SOURCES} row {row} does not match the manifest and file {expected}")
    problems.extend(f"{rel}: in {SOURCES} but not in {MANIFEST}" for rel in rows)
    listed = {f"{source.dir}/{file}.gz" for source, file in manifest.entries()}
    problems.extend(f"{p.relative_to(catalogue_dir).as_posix()}: vendored but not in {MANIFEST}"
                    for p in sorted(catalogue_dir.rglob("*.gz"))
                    if p.relative_to(catalogue_dir).as_posix() not in listed)
    return problems


# --- Coverage: every kind fleetgen renders has a schema ---

_TEMPLATE_API = re.compile(r"^apiVersion:\s*([a-z0-9.-]+/)?(v[0-9a-z]+)\s*$")
_TEMPLATE_KIND = re.compile(r"^kind:\s*([A-Z][A-Za-z0-9]*)\s*$")
_ZERO_UUID = "00000000-0000-0000-0000-000000000000"


def _template_kinds() -> Iterator[tuple[Kind, str]]:
    """(apiVersion, kind) of every top-level object literal in fleetgen's Jinja templates."""
    folder = Path(__file__).resolve().parent.parent / "templates"
    for path in sorted(folder.rglob("*.j2")):
        api_version = None
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("---"):
                api_version = None
            elif match := _TEMPLATE_API.match(line):
                api_version = (match.group(1) or "") + match.group(2)
            elif (match := _TEMPLATE_KIND.match(line)) and api_version:
                yield (api_version, match.group(1)), f"template {path.relative_to(folder).as_posix()}"


def _composition_kinds(composition: Mapping[str, Any], where: str) -> Iterator[tuple[Kind, str]]:
    """The function inputs of a Composition's pipeline and the resources they compose."""
    for step in (composition.get("spec") or {}).get("pipeline") or []:
        given = step.get("input") if isinstance(step, Mapping) else None
        if not isinstance(given, Mapping):
            continue
        yield (str(given.get("apiVersion")), str(given.get("kind"))), f"{where} (function input)"
        for resource in given.get("resources") or []:
            base = resource.get("base") if isinstance(resource, Mapping) else None
            if isinstance(base, Mapping):
                name = resource.get("name", "?")
                yield (str(base.get("apiVersion")), str(base.get("kind"))), f"{where} resource {name}"


def _code_composition_kinds(fleet: Any) -> Iterator[tuple[Kind, str]]:
    """What every Composition the code can write composes, every optional resource switched on."""
    if fleet.fleet.crossplane is None:
        return
    from generator.inventory.models import AzureAdGroup
    from generator.render.crossplane import compositions
    from generator.render.crossplane.plan import facts_of

    facts = facts_of(fleet)
    facts = dataclasses.replace(
        facts, azure_tenant_id=facts.azure_tenant_id or _ZERO_UUID,
        azure_database_admins=facts.azure_database_admins
        or AzureAdGroup.model_validate({"objectId": _ZERO_UUID, "name": "any"}))
    registries = (compositions.CLUSTER_COMPOSITIONS, compositions.NETWORK_COMPOSITIONS,
                  compositions.DATABASE_COMPOSITIONS, compositions.CACHE_COMPOSITIONS)
    for registry in registries:
        for builder in registry.values():
            composition = builder(facts)
            yield from _composition_kinds(composition, f"code: Composition {composition['metadata']['name']}")
    yield from _script_kinds()


def _script_kinds() -> Iterator[tuple[Kind, str]]:
    """Every (apiVersion, kind) the composition scripts can compose, read statically from their source: the
    ``compose(xr, name, api_version, kind, ...)`` calls whose api version is a string literal (or a name bound
    to one) and whose kind is a literal — so a resource composed only under an option (e.g. an Azure cache)
    is checked even when the reference fleet never composes it."""
    folder = importlib.resources.files("generator").joinpath("data/composites")
    for script in sorted(folder.iterdir(), key=lambda item: item.name):
        if not script.name.endswith(".py"):
            continue
        tree = ast.parse(script.read_text(encoding="utf-8"))
        strings = {target.id: node.value.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                   and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                   for target in node.targets if isinstance(target, ast.Name)}
        for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
            if not (isinstance(call.func, ast.Name) and call.func.id == "compose" and len(call.args) >= 4):
                continue
            api, kind = call.args[2], call.args[3]
            api_version = api.value if isinstance(api, ast.Constant) else strings.get(getattr(api, "id", ""))
            if isinstance(api_version, str) and isinstance(kind, ast.Constant) and isinstance(kind.value, str):
                yield (api_version, kind.value), f"code: composites/{script.name}:{call.lineno}"


def rendered_kinds(rendered: Any, build: Any = None) -> dict[Kind, list[str]]:
    """Every (apiVersion, kind) the fleet renders, with where it was seen: rendered files (except the
    ``kustomize.config.k8s.io`` files kustomize consumes and chart templates), the resources and function
    inputs inside Compositions, every kind the code can compose or template, and ``build``'s resources."""
    from generator.yamlio import load_documents

    seen: dict[Kind, list[str]] = {}

    def add(items: Iterable[tuple[Kind, str]]) -> None:
        for key, where in items:
            seen.setdefault(key, []).append(where)

    for path, text in rendered.files.items():
        if not path.endswith((".yaml", ".yml")) or "/templates/" in path:
            continue
        for doc in load_documents(text):
            if not isinstance(doc, Mapping) or "kind" not in doc:
                continue
            key = (str(doc.get("apiVersion")), str(doc["kind"]))
            if not key[0].startswith("kustomize.config.k8s.io/"):
                add([(key, path)])
            if key == ("apiextensions.crossplane.io/v1", "Composition"):
                add(_composition_kinds(doc, path))
    add(_code_composition_kinds(rendered.fleet))
    add(_template_kinds())
    if build is not None:
        for name, cluster in build.clusters.items():
            add(((r.api_version, r.kind), f"build of {name}") for r in cluster.resources.values())
    return seen


@dataclasses.dataclass
class Coverage:
    """Which rendered kinds have a schema, and which do not."""

    kinds: dict[Kind, list[str]]
    missing: dict[Kind, list[str]]
    gaps: list[Gap]
    stale_gaps: list[Gap]

    def problems(self) -> list[str]:
        lines = [f"{api_version} {kind}: no schema (rendered at {', '.join(sorted(set(where))[:3])})"
                 for (api_version, kind), where in sorted(self.missing.items())]
        lines += [f"{gap.kind}: listed under gaps: in {MANIFEST} but has a schema now; remove it there"
                  for gap in self.stale_gaps]
        return lines


def coverage(rendered: Any, build: Any = None, catalogue: CrdCatalogue | None = None,
             manifest: Manifest | None = None) -> Coverage:
    """Check that every kind :func:`rendered_kinds` finds has a schema (``catalogue``, default the built-in one)."""
    from generator.verify.schema import rendered_extra_schemas

    catalogue = catalogue if catalogue is not None else CrdCatalogue.builtin()
    manifest = manifest if manifest is not None else load_manifest()
    versions = [str(c.settings.kubernetes_version) for c in rendered.fleet.clusters] or ["1.33"]
    validators = [SchemaValidator(catalogue, version, extra_schemas=rendered_extra_schemas(rendered.files))
                  for version in sorted(set(versions))]
    kinds = rendered_kinds(rendered, build)
    uncovered = {key: where for key, where in kinds.items()
                 if not all(validator.has_schema(*key) for validator in validators)}
    gap_keys = {gap.key: gap for gap in manifest.gaps}
    missing = {key: where for key, where in uncovered.items() if key not in gap_keys}
    known = [gap for gap in manifest.gaps if gap.key in uncovered]
    stale = [gap for gap in manifest.gaps if gap.key not in uncovered]
    return Coverage(kinds, missing, known, stale)
