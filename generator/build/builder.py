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

import argparse
import base64
import bisect
import contextlib
import copy
import datetime
import functools
import hashlib
import json
import os
import posixpath
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from generator.build.charts import (
    ChartResolver,
    helm_repository_request,
    oci_repository_request,
    offline_resolver,
    resolver_for,
)
from generator.build.lock import ChartRequest
from generator.errors import FleetgenError, ToolError, UsageError
from generator.tools import Toolset, find_tools
from generator.verify.secretscan import REDACTED
from generator.yamlio import dump_documents, load_documents

T = TypeVar("T")
Obj = dict[str, Any]

#: Bump when the meaning of a cached step changes in a way the code hash would not show.
BUILD_FORMAT = "1"
CACHE_SUBDIR = Path(".cache") / "fleetgen"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
FLUX_KS_GROUP = "kustomize.toolkit.fluxcd.io"
HELM_GROUP = "helm.toolkit.fluxcd.io"
SOURCE_GROUP = "source.toolkit.fluxcd.io"
OPERATOR_GROUP = "fluxcd.controlplane.io"
SUBSTITUTE_KEY = f"{FLUX_KS_GROUP}/substitute"
DEFAULT_VALUES_KEY = "values.yaml"
NEEDED_KINDS = frozenset({
    "Kustomization", "HelmRelease", "GitRepository", "OCIRepository", "HelmRepository", "HelmChart",
    "ConfigMap", "Secret", "FluxInstance",
})
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding",
    "CustomResourceDefinition", "APIService", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding", "PriorityClass", "IngressClass", "RuntimeClass", "CSIDriver", "CSINode",
    "VolumeAttachment", "CertificateSigningRequest", "FlowSchema", "PriorityLevelConfiguration",
    "VolumeAttributesClass", "DeviceClass", "ResourceSlice", "IPAddress", "ServiceCIDR", "ComponentStatus",
})
#: API groups/versions (and kinds) each Flux component serves, for ``helm template --api-versions``.
FLUX_APIS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "source-controller": (
        (f"{SOURCE_GROUP}/v1", ("GitRepository", "OCIRepository", "HelmRepository", "HelmChart", "Bucket",
                                "ExternalArtifact")),
    ),
    "kustomize-controller": ((f"{FLUX_KS_GROUP}/v1", ("Kustomization",)),),
    "helm-controller": ((f"{HELM_GROUP}/v2", ("HelmRelease",)),),
    "notification-controller": (
        ("notification.toolkit.fluxcd.io/v1", ("Receiver",)),
        ("notification.toolkit.fluxcd.io/v1beta3", ("Provider", "Alert")),
    ),
    "image-reflector-controller": (("image.toolkit.fluxcd.io/v1", ("ImageRepository", "ImagePolicy")),),
    "image-automation-controller": (("image.toolkit.fluxcd.io/v1", ("ImageUpdateAutomation",)),),
}
OPERATOR_APIS = ((f"{OPERATOR_GROUP}/v1", ("FluxInstance", "FluxReport", "ResourceSet", "ResourceSetInputProvider")),)
_DOC_SEPARATOR = re.compile(r"^---[ \t]*$", re.M)
_PATH_TOKEN = re.compile(r"""'([^'\n]*)'|"([^"\n]*)"|([^\s,\[\]{}'"#]+)""")
_REMOTE_PREFIXES = ("git::", "gh:", "ssh://", "https://", "http://", "git@", "github.com:", "github.com/")


class BuildError(FleetgenError):
    """A cluster cannot be built as Flux would: a missing path, a bad Flux object, a failing build."""


# --- small helpers ----------------------------------------------------------------------------------


def _load(text: str) -> list[Any]:
    """Parse a YAML stream (kustomize/helm output or our own) to plain data."""
    return load_documents(text)


def digest(*parts: str) -> str:
    """sha256 hex of the parts, each length-prefixed (so no two part lists collide)."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        h.update(f"{len(data)}:".encode())
        h.update(data)
    return h.hexdigest()


def canonical(value: Any) -> str:
    """Stable JSON text of plain data (key order normalised)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=json_default)


def json_default(value: Any) -> Any:
    """JSON for what a YAML reader may return besides JSON types: timestamps as text (as Kubernetes sees
    them), binary as base64."""
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def api_group(api_version: str) -> str:
    """The group of an apiVersion (``""`` for the core group)."""
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def _map(value: Any) -> Mapping[str, Any]:
    """value when it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def is_kind(obj: Mapping[str, Any], group: str, kind: str) -> bool:
    """Whether obj is ``kind`` of API group ``group`` (any version)."""
    return obj.get("kind") == kind and api_group(str(obj.get("apiVersion", ""))) == group


def substitution_disabled(obj: Mapping[str, Any]) -> bool:
    """Whether the object opts out of Flux post-build substitution (label or annotation)."""
    meta = _meta(obj)
    for key in ("labels", "annotations"):
        values = meta.get(key)
        if isinstance(values, Mapping) and values.get(SUBSTITUTE_KEY) == "disabled":
            return True
    return False


@functools.cache
def _code_fingerprint() -> str:
    """Hash of the code whose behaviour a cached step depends on (the build stage, the YAML emitter, the offline
    composition engine), as loaded by this process."""
    package = Path(__file__).resolve().parent.parent
    parts = [BUILD_FORMAT]
    names = sorted(p.relative_to(package).as_posix() for p in (package / "build").glob("*.py"))
    for name in [*names, "yamlio.py", "render/crossplane/engine.py"]:
        path = package / name
        parts.append(name + "\n" + (path.read_text(encoding="utf-8") if path.is_file() else ""))
    parts.append(_engine_version())
    return digest(*parts)


def _engine_version() -> str:
    """The composition function release that composes the hub's XRs offline (it shapes the golden files)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crossplane-function-pythonic")
    except PackageNotFoundError:
        return ""


def split_documents(text: str) -> list[str]:
    """A kustomize or helm YAML stream cut at its ``---`` lines (a marker can never sit inside a value)."""
    return [chunk for chunk in _DOC_SEPARATOR.split(text) if chunk.strip()]


def set_metadata(obj: Obj, field_name: str, values: Mapping[str, str]) -> None:
    """Set labels or annotations on an object's own metadata, keys kept sorted as kustomize writes them."""
    if not values:
        return
    meta = obj.setdefault("metadata", {})
    current = meta.get(field_name)
    merged = dict(current) if isinstance(current, Mapping) else {}
    merged.update({str(k): str(v) for k, v in values.items()})
    meta[field_name] = dict(sorted(merged.items()))


def redact(obj: Obj) -> Obj:
    """A copy of a Secret with every data and stringData value replaced; other objects unchanged."""
    if obj.get("kind") != "Secret" or api_group(str(obj.get("apiVersion", ""))) != "":
        return obj
    out = dict(obj)
    for key in ("data", "stringData"):
        values = obj.get(key)
        if isinstance(values, Mapping):
            out[key] = {k: REDACTED for k in values}
    return out


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


def _typed_value(text: str) -> Any:
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


def _split_unescaped(text: str, separator: str) -> list[str]:
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
    typed: Any = value.strip("'\"") if quoted else _typed_value(value)
    keys = _split_unescaped(target_path, ".")
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
    spec = _spec(hr)
    name = str(_meta(hr).get("name", ""))
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
    return str(_spec(hr).get("targetNamespace") or _meta(hr).get("namespace") or "default")


def is_local_relative(path: str) -> bool:
    """fluxcd/pkg/kustomize IsLocalRelativePath: not remote, not absolute."""
    lower = path.lower()
    if any(len(prefix) < len(path) and lower.startswith(prefix) for prefix in _REMOTE_PREFIXES):
        return False
    return not posixpath.isabs(path) and not posixpath.isabs(lower.removeprefix("file://"))


# --- what kustomize-controller does to the kustomization file ---------------------------------------


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


# --- the rendered fleet repo in memory --------------------------------------------------------------


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
        self._digests: dict[str, str] = {}
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
        files = set(self.below(directory))
        for rel in list(files):
            if posixpath.basename(rel) not in KUSTOMIZATION_FILES:
                continue
            base = posixpath.dirname(rel)
            for match in _PATH_TOKEN.finditer(self.files[rel]):
                token = next(g for g in match.groups() if g is not None).removesuffix(":")
                if not token or len(token) > 1024:
                    continue
                target = posixpath.normpath(posixpath.join(base, token.removeprefix("file://")))
                if target == "." :
                    target = ""
                if target.startswith("../") or target == "..":
                    continue
                if target in self.files:
                    files.add(target)
                elif target in self.dirs and target not in active and not (
                    target == directory or target.startswith(directory + "/") if directory else True
                ):
                    files |= self._closure(target, active)
        active.discard(directory)
        result = frozenset(files)
        if not active:
            self._closures[directory] = result
        return result

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
                        docs = _load(self.files[rel])
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


# --- caches -------------------------------------------------------------------------------------------


class StepCache:
    """Content-addressed JSON results on disk (``<dir>/<k[:2]>/<k>.json``); None disables it."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        folder, _, name = key.rpartition("/")
        return self.directory / (folder or key[:2]) / f"{name}.json"

    def get(self, key: str) -> Any | None:
        """The stored result for key, or None."""
        if self.directory is None:
            return None
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def get_cluster(self, key: str) -> Any | None:
        """The last build stored for a cluster (``clusters/<key>.json``), or None."""
        return self.get(f"clusters/{key}")

    def put_cluster(self, key: str, value: Any) -> None:
        """Replace the build stored for a cluster."""
        self.put(f"clusters/{key}", value)

    def put(self, key: str, value: Any) -> None:
        """Store a result atomically (safe with concurrent writers)."""
        if self.directory is None:
            return
        path = self._path(key)
        folder = path.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:8]}.", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(value, handle, ensure_ascii=False, separators=(",", ":"))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class SingleFlight:
    """Compute each key once per run, even when several threads ask for it at the same time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[str, Future[Any]] = {}

    def get(self, key: str, compute: Callable[[], T]) -> T:
        """The value of key, computing it here if no other thread is."""
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if future is None:
                future = self._futures[key] = Future()
        if owner:
            try:
                future.set_result(compute())
            except BaseException as exc:
                future.set_exception(exc)
                raise
        result: T = future.result()
        return result


@dataclass
class BuildStats:
    """Counters of one build run."""

    kustomize_runs: int = 0
    helm_runs: int = 0
    releases_templated: int = 0
    releases_kept: int = 0
    clusters: int = 0
    clusters_cached: int = 0
    steps_cached: int = 0
    steps_shared: int = 0
    steps_built: int = 0
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        """Increment counters atomically."""
        with self._lock:
            for name, count in counts.items():
                setattr(self, name, getattr(self, name) + count)

    def summary(self) -> str:
        """One line for the CLI."""
        line = (f"{self.clusters_cached} of {self.clusters} clusters unchanged (from cache); "
                f"{self.kustomize_runs} kustomize and {self.helm_runs} helm runs; {self.steps_built} steps built, "
                f"{self.steps_cached} from cache, {self.steps_shared} shared")
        if self.releases_templated or self.releases_kept:
            line += (f"; {self.releases_templated} HelmReleases templated, {self.releases_kept} kept as resolved "
                     "objects (chart not available offline)")
        return f"{line}; {self.seconds:.1f}s"


# --- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltResource:
    """One object a cluster receives, as it goes to the golden tree."""

    api_version: str
    kind: str
    namespace: str
    name: str
    group: str
    text: str

    @property
    def label(self) -> str:
        """``Kind namespace/name`` (or ``Kind name`` when cluster-scoped)."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


@dataclass
class ClusterBuild:
    """Everything one cluster receives: golden-relative path → resource."""

    name: str
    resources: dict[str, BuiltResource] = field(default_factory=dict)
    kustomizations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain data for the cache."""
        return {"name": self.name, "kustomizations": self.kustomizations, "warnings": self.warnings,
                "resources": {rel: [r.api_version, r.kind, r.namespace, r.name, r.group, r.text]
                              for rel, r in self.resources.items()}}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ClusterBuild:
        """Back from ``to_json``."""
        resources = {rel: BuiltResource(*(str(x) for x in fields)) for rel, fields in value["resources"].items()}
        return cls(str(value["name"]), resources, list(value["kustomizations"]), list(value["warnings"]))

    def objects(self) -> Iterator[tuple[str, Obj]]:
        """(golden path, object) of every resource, parsed again (e.g. for schema validation)."""
        for rel, resource in self.resources.items():
            for doc in _load(resource.text):
                yield rel, doc


@dataclass
class FleetBuild:
    """The build of (a selection of) the fleet's clusters."""

    clusters: dict[str, ClusterBuild]
    stats: BuildStats
    naive_steps: list[NaiveStep] = field(default_factory=list)

    def files(self) -> dict[str, str]:
        """Golden tree: ``<cluster>/<group>/<file>.yaml`` → text, sorted."""
        out = {f"{name}/{rel}": res.text
               for name, build in self.clusters.items() for rel, res in build.resources.items()}
        return dict(sorted(out.items()))

    def resource(self, path: str) -> BuiltResource | None:
        """The resource at a golden path, if built."""
        cluster, _, rel = path.partition("/")
        build = self.clusters.get(cluster)
        return build.resources.get(rel) if build else None

    @property
    def warnings(self) -> list[str]:
        """Every cluster's warnings, prefixed by the names of the clusters that have it (one line each)."""
        where: dict[str, list[str]] = {}
        for name, build in self.clusters.items():
            for warning in build.warnings:
                where.setdefault(warning, []).append(name)
        return [f"{', '.join(names)}: {warning}" for warning, names in where.items()]


@dataclass(frozen=True)
class NaiveStep:
    """One tool run of the naive baseline (serial, uncached) for the benchmark: a kustomize build of a
    folder of the rendered output, or a helm template (chart ``tree/<dir>`` relative to the work folder)."""

    tool: str  # "kustomize" or "helm"
    args: tuple[str, ...]
    values: str = ""


def golden_name(kind: str, namespace: str, name: str) -> str:
    """``<kind>.<namespace|_cluster>.<name>.yaml`` (kind lowercased)."""
    return f"{kind.lower()}.{namespace or '_cluster'}.{name}.yaml"


def parse_golden_name(filename: str) -> tuple[str, str, str]:
    """(kind, namespace, name) back from a golden file name (kind lowercased, ``""`` when cluster-scoped)."""
    stem = filename.removesuffix(".yaml")
    kind, _, rest = stem.partition(".")
    namespace, _, name = rest.partition(".")
    return kind, "" if namespace == "_cluster" else namespace, name


# --- the builder --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildOptions:
    """How to build: which clusters, how many jobs, where charts and caches are."""

    clusters: tuple[str, ...] = ()
    shard: tuple[int, int] | None = None
    jobs: int | None = None
    charts_dir: Path | None = None
    cache_dir: Path | None = None
    use_cache: bool = True
    work_dir: Path | None = None
    progress: bool | None = None
    record_naive: bool = False
    offline: bool = False  # upstream charts from the chart cache only (generator/build/charts.py)


@dataclass
class _Step:
    """The output of a kustomization or helm step: objects (data only where later steps need it) and texts."""

    ids: list[tuple[str, str, str, str]]
    texts: list[str]
    data: list[Obj | None]

    def to_json(self) -> dict[str, Any]:
        return {"ids": self.ids, "texts": self.texts, "data": self.data}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> _Step:
        ids = [(str(a), str(k), str(n), str(m)) for a, k, n, m in value["ids"]]
        return cls(ids, list(value["texts"]), list(value["data"]))


@dataclass
class _Cluster:
    """State of one cluster's walk."""

    name: str
    kube_version: str
    objects: list[Obj] = field(default_factory=list)
    api_versions: set[str] = field(default_factory=set)
    crd_scopes: dict[str, str] = field(default_factory=dict)
    fleet_sources: set[tuple[str, str]] = field(default_factory=set)
    build: ClusterBuild = field(default_factory=lambda: ClusterBuild(""))
    dirs: set[str] = field(default_factory=set)
    charts: set[tuple[str, str]] = field(default_factory=set)

    def find(self, kind: str, namespace: str, name: str) -> Obj | None:
        """An object of this cluster's builds (as the API server would return it)."""
        for obj in self.objects:
            meta = _meta(obj)
            if obj.get("kind") == kind and meta.get("name") == name and (meta.get("namespace") or "default") == (
                namespace or "default"
            ):
                return _as_stored(obj)
        return None


def _as_stored(obj: Obj) -> Obj:
    """A Secret as the API server stores it: stringData folded into base64 data."""
    if obj.get("kind") != "Secret" or not isinstance(obj.get("stringData"), Mapping):
        return obj
    out = dict(obj)
    data = dict(out.get("data") or {})
    for key, value in out.pop("stringData").items():
        data[key] = base64.b64encode(str(value).encode("utf-8")).decode("ascii")
    out["data"] = data
    return out


class Builder:
    """Builds clusters of one rendered fleet; steps shared across clusters and cached on disk."""

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
        self.flight = SingleFlight()
        self.stats = BuildStats()
        self.naive: list[NaiveStep] = []
        self.fingerprint = digest(tools.fingerprint(), _code_fingerprint())
        self._work: Path | None = None
        self._written: set[str] = set()
        self._work_lock = threading.Lock()
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._parsed: dict[bytes, str] = {}
        self._dumped: dict[bytes, str] = {}
        self._chart_hashes: dict[str, str] = {}
        self._charts_hash: str | None = None
        #: (hub, folder of the hub's Argo CD objects) when Argo CD delivers the apps
        self.argocd: tuple[str, str] | None = None
        self.charts = charts or offline_resolver(tools)

    # -- the work tree (materialised only when a step has to run a tool) --

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

    def close(self) -> None:
        """Remove the temporary work tree."""
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
            self._work = None

    # -- YAML parse / emit, memoised per document text --

    def parse_stream(self, text: str, what: str) -> list[Obj]:
        """The objects of a kustomize or helm output stream."""
        out: list[Obj] = []
        for chunk in split_documents(text):
            memo_key = hashlib.sha1(chunk.encode("utf-8")).digest()
            parsed = self._parsed.get(memo_key)
            if parsed is None:
                try:
                    docs = _load(chunk)
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

    # -- steps --

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
                docs = _load(self.tree.files[kfile])
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
    ) -> _Step:
        """Substitution, commonMetadata and owner labels on a build's objects, plus their golden texts."""
        meta, spec = _meta(ks), _spec(ks)
        name, namespace = str(meta.get("name")), str(meta.get("namespace") or "default")
        post = spec.get("postBuild") if isinstance(spec.get("postBuild"), Mapping) else None
        always = bool(post and post.get("substituteStrategy") == "Always")
        common = _map(spec.get("commonMetadata"))
        key = digest("post", raw_key, canonical(variables), str(always), name, namespace, canonical(common))

        def compute() -> _Step:
            from generator.build.substitute import substitute_object

            step = _Step([], [], [])
            for original in raw:
                obj = copy.deepcopy(original)
                if variables is not None and (variables or always) and _may_change(obj):
                    try:
                        obj = substitute_object(obj, variables, always=always)
                    except FleetgenError as exc:
                        where = _written_in(self.tree.files, source, getattr(exc, "expression", None))
                        raise BuildError(f"{group}: {obj.get('kind')} {_meta(obj).get('name')}{where}: {exc}") from exc
                set_metadata(obj, "labels", dict((common or {}).get("labels") or {}))
                set_metadata(obj, "annotations", dict((common or {}).get("annotations") or {}))
                set_metadata(obj, "labels", {f"{FLUX_KS_GROUP}/name": name, f"{FLUX_KS_GROUP}/namespace": namespace})
                self._add(step, obj, str(_meta(obj).get("namespace") or ""))
            return step

        return self._step(key, compute, _Step.to_json, _Step.from_json)

    def _add(self, step: _Step, obj: Obj, namespace: str) -> None:
        meta = _meta(obj)
        kind = str(obj.get("kind"))
        step.ids.append((str(obj.get("apiVersion")), kind, namespace, str(meta.get("name"))))
        step.texts.append(self.golden_text(obj))
        if kind in NEEDED_KINDS:
            step.data.append(obj)
        elif kind == "CustomResourceDefinition":
            crd_spec = _spec(obj)
            names = _map(crd_spec.get("names"))
            versions = [str(v.get("name")) for v in crd_spec.get("versions") or []
                        if isinstance(v, Mapping) and v.get("served", True)]
            step.data.append({"kind": kind, "crd": {"group": crd_spec.get("group"), "kind": names.get("kind"),
                                                     "scope": crd_spec.get("scope"), "versions": versions}})
        else:
            step.data.append(None)

    # -- one cluster --

    def build_cluster(self, name: str, kube_version: str) -> ClusterBuild:
        """Walk one cluster's Flux graph and template its releases (or reuse its last build when none of
        the files, charts and settings that build read has changed)."""
        entry = digest("cluster", self.fingerprint, name)
        stored = self.cache.get_cluster(entry)
        if stored is not None and stored.get("key") == self._cluster_key(name, kube_version, stored.get("trace")):
            self.stats.add(clusters_cached=1)
            return ClusterBuild.from_json(stored["build"])
        state = _Cluster(name, kube_version, build=ClusterBuild(name))
        self._walk(state)
        self._releases(state)
        if self.argocd is not None:  # apps delivered by the hub's Argo CD (generator/build/argocd.py)
            from generator.build.argocd import deliver

            deliver(self, state, *self.argocd)
        self._compose(state)
        state.build.resources = dict(sorted(state.build.resources.items()))
        trace = {"dirs": sorted(state.dirs), "charts": sorted(list(c) for c in state.charts)}
        self.cache.put_cluster(entry, {"key": self._cluster_key(name, kube_version, trace), "trace": trace,
                                       "build": state.build.to_json()})
        return state.build

    def _cluster_key(self, name: str, kube_version: str, trace: Any) -> str:
        """Hash of everything a cluster's build read: the input closure of every folder it built, every chart
        it templated, its Kubernetes version, the --charts folder, the code and tools. Empty if unknowable."""
        if not isinstance(trace, Mapping):
            return ""
        parts = [self.fingerprint, name, kube_version, self.git_url, canonical(self.mounts), self._charts_listing(),
                 self.charts.fingerprint()]
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

    def _root(self, state: _Cluster) -> Obj:
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
            sync = _map(_spec(instance).get("sync"))
            namespace = str(_meta(instance).get("namespace") or "flux-system")
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

    def _walk(self, state: _Cluster) -> None:
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
                child_key = (str(_meta(child).get("namespace") or "default"), str(_meta(child).get("name")))
                if child_key in pending or child_key in done:
                    raise BuildError(f"cluster {state.name}: Kustomization {child_key[0]}/{child_key[1]} "
                                     "is defined twice")
                pending[child_key] = child

    def _refs_ready(self, state: _Cluster, ks: Obj) -> bool:
        post = _spec(ks).get("postBuild")
        refs = post.get("substituteFrom") if isinstance(post, Mapping) else None
        namespace = str(_meta(ks).get("namespace") or "default")
        return all(
            ref.get("optional") or state.find(str(ref.get("kind")), namespace, str(ref.get("name"))) is not None
            for ref in refs or [] if isinstance(ref, Mapping)
        )

    def _group(self, ks: Obj) -> str:
        namespace = str(_meta(ks).get("namespace") or "default")
        name = str(_meta(ks).get("name"))
        return name if namespace == "flux-system" else f"{namespace}.{name}"

    def _is_fleet_source(self, state: _Cluster, ref: Mapping[str, Any], namespace: str) -> bool:
        if ref.get("kind", "GitRepository") != "GitRepository":
            return False
        key = (str(ref.get("namespace") or namespace), str(ref.get("name")))
        if key in state.fleet_sources:
            return True
        repo = state.find("GitRepository", *key)
        return repo is not None and _spec(repo).get("url") == self.git_url

    def _build_kustomization(self, state: _Cluster, ks: Obj) -> list[Obj]:
        """Build one Flux Kustomization into the cluster's resources; returns the Kustomizations it applies."""
        meta, spec = _meta(ks), _spec(ks)
        namespace = str(meta.get("namespace") or "default")
        group = self._group(ks)
        what = f"cluster {state.name}: Kustomization {namespace}/{meta.get('name')}"
        state.build.kustomizations.append(group)
        source = _map(spec.get("sourceRef"))
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
                components = _spec(data).get("components") or list(FLUX_APIS)
                for component in components:
                    for gv, kinds in FLUX_APIS.get(str(component), ()):
                        state.api_versions.add(gv)
                        state.api_versions.update(f"{gv}/{k}" for k in kinds)
                for gv, kinds in OPERATOR_APIS:
                    state.api_versions.add(gv)
                    state.api_versions.update(f"{gv}/{k}" for k in kinds)
        return children

    def _variables(self, state: _Cluster, ks: Obj, what: str) -> dict[str, str] | None:
        post = _spec(ks).get("postBuild")
        if not isinstance(post, Mapping):
            return None
        from generator.build.substitute import collect_variables

        namespace = str(_meta(ks).get("namespace") or "default")

        def find(kind: str, name: str) -> Obj | None:
            found = state.find(kind, namespace, name)
            return None if found is None else {k: v for k, v in found.items() if k != "_group"}

        try:
            return dict(collect_variables(post, find))
        except FleetgenError as exc:
            raise BuildError(f"{what}: postBuild: {exc}") from exc

    # -- HelmReleases --

    def _releases(self, state: _Cluster) -> None:
        releases = [o for o in state.objects if is_kind(o, HELM_GROUP, "HelmRelease")]
        api_versions = sorted(state.api_versions)
        for hr in sorted(releases, key=lambda o: (str(_meta(o).get("namespace")), str(_meta(o).get("name")))):
            self._release(state, hr, api_versions)

    def _compose(self, state: _Cluster) -> None:
        """Every Crossplane XR this cluster receives, composed offline by its Composition's function (the same
        code the hub runs): each composed resource becomes a golden file under ``<group>/<xr>/``."""
        from generator.render.crossplane.engine import RESOURCE_NAME_ANNOTATION, compose_objects

        built = [(res.group, doc) for res in state.build.resources.values()
                 if res.kind in ("Composition", "KubernetesCluster", "XKubernetesCluster", "Database", "XDatabase",
                                 "Cache", "XCache", "Network", "XNetwork", "DnsFailover", "XDnsFailover")
                 for doc in _load(res.text)]
        if not any(doc.get("kind") == "Composition" for _, doc in built):
            return
        groups = {(str(_meta(doc).get("name")), str(doc.get("kind"))): group for group, doc in built}
        for item in compose_objects([doc for _, doc in built]):
            meta = _meta(item.xr)
            xr_ns, xr_name = str(meta.get("namespace") or ""), str(meta.get("name"))
            claim = (meta.get("labels") or {}).get("crossplane.io/claim-name")
            parent = groups.get((xr_name, str(item.xr.get("kind"))), groups.get((str(claim), str(item.xr.get(
                "kind", "")).removeprefix("X"))))
            group = f"{parent or 'crossplane-composed'}/{golden_name(str(item.xr.get('kind')), xr_ns, xr_name)[:-5]}"
            for obj in item.resources.values():
                if _meta(obj).get("name"):  # a nested XR: its own resources sit beside its parent's
                    groups[(str(_meta(obj)["name"]), str(obj["kind"]))] = parent or "crossplane-composed"
                name = str(_meta(obj)["annotations"][RESOURCE_NAME_ANNOTATION])
                obj_ns = str(_meta(obj).get("namespace") or "")
                rel = f"{group}/{golden_name(str(obj['kind']), obj_ns, name)}"
                state.build.resources[rel] = BuiltResource(str(obj["apiVersion"]), str(obj["kind"]), obj_ns, name,
                                                           group, self.golden_text(obj))

    def _chart(self, state: _Cluster, hr: Obj, what: str) -> tuple[str, Path | str, str] | None:
        """(kind, chart location, content hash) of a release's chart, or None when it cannot be rendered offline.

        kind is "repo" (a folder of the fleet repo, relative) or "local" (from --charts).
        """
        spec, namespace = _spec(hr), str(_meta(hr).get("namespace") or "default")
        chart_ref = spec.get("chartRef") if isinstance(spec.get("chartRef"), Mapping) else None
        chart = _map(spec.get("chart"))
        chart_spec = _map(chart.get("spec"))
        if chart_ref is not None:
            ref_ns = str(chart_ref.get("namespace") or namespace)
            source = state.find(str(chart_ref.get("kind")), ref_ns, str(chart_ref.get("name")))
            if source is None:
                state.build.warnings.append(f"{what}: chartRef {chart_ref.get('kind')} {ref_ns}/"
                                            f"{chart_ref.get('name')} is not in the cluster's builds: not templated")
                return None
            source_spec = _spec(source)
            if chart_ref.get("kind") == "OCIRepository":
                ref = _map(source_spec.get("ref"))
                return self._upstream_chart(oci_repository_request(source), state, what) or self._local_chart(
                    str(source_spec.get("url", "")).rstrip("/").rsplit("/", 1)[-1],
                    str(ref.get("tag") or ref.get("semver") or ""), state, what)
            return self._local_chart(str(source_spec.get("chart", "")), str(source_spec.get("version") or ""),
                                     state, what)
        source_ref = _map(chart_spec.get("sourceRef"))
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

    def _upstream_chart(self, request: tuple[ChartRequest, bool] | str | None, state: _Cluster,
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

    def _local_chart(self, name: str, version: str, state: _Cluster, what: str) -> tuple[str, Path, str] | None:
        charts = self.options.charts_dir
        if charts is None:
            return None
        candidates = [charts / f"{name}-{version}.tgz", charts / f"{name}-{version}", charts / name]
        for candidate in candidates:
            if candidate.is_file() or (candidate / "Chart.yaml").is_file():
                if candidate.is_dir() and candidate.name == name and version:
                    chart_meta = _load((candidate / "Chart.yaml").read_text(encoding="utf-8"))
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

    def _values(self, state: _Cluster, hr: Obj, what: str) -> dict[str, Any] | None:
        """helm-controller's values: each valuesFrom in order, then the inline values on top."""
        spec, namespace = _spec(hr), str(_meta(hr).get("namespace") or "default")
        inline = _map(spec.get("values"))
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
            data = _map(source.get("data"))
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
                docs = _load(raw)
            except Exception as exc:  # ruamel raises several unrelated types
                raise BuildError(f"{what}: valuesFrom {kind} {namespace}/{name} key '{key}': {exc}") from exc
            loaded = docs[0] if docs else {}
            if not isinstance(loaded, Mapping):
                raise BuildError(f"{what}: valuesFrom {kind} {namespace}/{name} key '{key}' is not a mapping")
            result = merge_maps(result, loaded)
        return merge_maps(result, inline)

    def _release(self, state: _Cluster, hr: Obj, api_versions: list[str], group: str | None = None,
                 decorate: Callable[[Obj, str], None] | None = None) -> None:
        """Template one release into the cluster's resources under ``group`` (default: beside its HelmRelease).
        ``decorate`` replaces helm-controller's labels (another deliverer, e.g. Argo CD's tracking annotation)."""
        meta, spec = _meta(hr), _spec(hr)
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
        install = _map(spec.get("install"))
        test = _map(spec.get("test"))
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
        common = _map(spec.get("commonMetadata"))
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

        def compute() -> _Step:
            chart_path = self._chart_path(chart, values_files, key)
            values_text = json.dumps(values, sort_keys=True, ensure_ascii=False, default=json_default)
            args = (name, str(chart_path), "--namespace", namespace, "--kube-version", kube_semver(state.kube_version),
                    *(("--api-versions", ",".join(api_versions)) if api_versions else ()), *flags)
            with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="values-", dir=self.work_dir() / "scratch",
                                             delete=False, encoding="utf-8") as handle:
                handle.write(values_text)
            try:
                output = self.tools.helm.run("template", *args, "--values", handle.name)
            except ToolError as exc:
                raise BuildError(f"{what}: helm template failed: {exc}") from exc
            finally:
                Path(handle.name).unlink(missing_ok=True)
            self.stats.add(helm_runs=1)
            for renderer in renderers:
                if isinstance(renderer, Mapping) and isinstance(renderer.get("kustomize"), Mapping):
                    output = self._post_render(output, renderer["kustomize"], key, what)
            step = _Step([], [], [])
            for obj in self.parse_stream(output, f"{what}: helm template"):
                set_metadata(obj, "labels", dict((common or {}).get("labels") or {}))
                set_metadata(obj, "annotations", dict((common or {}).get("annotations") or {}))
                kind = str(obj.get("kind"))
                obj_ns = str(_meta(obj).get("namespace") or "")
                if not obj_ns and kind not in CLUSTER_SCOPED and state.crd_scopes.get(kind) != "Cluster":
                    obj_ns = namespace
                if decorate is None:
                    set_metadata(obj, "labels", {f"{HELM_GROUP}/name": hr_name, f"{HELM_GROUP}/namespace": hr_ns})
                else:
                    decorate(obj, obj_ns)
                self._add(step, obj, obj_ns)
            step.data = [None] * len(step.ids)
            return step

        step = self._step(key, compute, _Step.to_json, _Step.from_json)
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
            docs = _load(self.tree.files[rel])
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
                output = self.tools.kustomize_build.run(folder, "--load-restrictor=LoadRestrictionsNone")
            except ToolError as exc:
                raise BuildError(f"{what}: post-renderer failed: {exc}") from exc
            self.stats.add(kustomize_runs=1)
            return output
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _may_change(obj: Obj) -> bool:
    """Whether Flux's substitution round trip can change an object: it has a ``$`` (a variable) or a number
    the float64 every number goes through changes (an integral float, an integer past 2**53); else it is
    skipped, with the same result."""
    if "$" in json.dumps(obj, ensure_ascii=False, default=json_default):
        return True
    stack: list[Any] = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif (isinstance(node, float) and node.is_integer()) or (
                isinstance(node, int) and not isinstance(node, bool) and abs(node) > 2**53):
            return True
    return False


def _depends_on(ks: Mapping[str, Any]) -> list[tuple[str, str]]:
    namespace = str(_meta(ks).get("namespace") or "default")
    deps = []
    for dep in _spec(ks).get("dependsOn") or []:
        if isinstance(dep, Mapping) and dep.get("name"):
            deps.append((str(dep.get("namespace") or namespace), str(dep["name"])))
    return deps


# --- the fleet ------------------------------------------------------------------------------------------


def select_clusters(names: Sequence[str], wanted: Sequence[str], shard: tuple[int, int] | None) -> list[str]:
    """The clusters to build: the named ones (all when none), then this shard's share (1-based i of n)."""
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise UsageError(f"unknown cluster(s) {', '.join(unknown)}; clusters: {', '.join(names)}")
    chosen = [n for n in names if not wanted or n in wanted]
    if shard is not None:
        index, count = shard
        chosen = [n for position, n in enumerate(chosen) if position % count == index - 1]
    return chosen


def parse_shard(value: str) -> tuple[int, int]:
    """``i/n`` with 1 <= i <= n."""
    match = re.fullmatch(r"(\d+)/(\d+)", value.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise UsageError(f"--shard {value!r}: expected i/n with 1 <= i <= n, e.g. 2/4")
    return int(match[1]), int(match[2])


def default_cache_dir(root: Path) -> Path:
    """Where the step cache of a fleet root lives."""
    return root / CACHE_SUBDIR


def build_fleet(root: Path, options: BuildOptions | None = None, *, rendered: Any = None,
                tools: Toolset | None = None, charts: ChartResolver | None = None) -> FleetBuild:
    """Render (in memory) and build the fleet at ``root``: every selected cluster's resources.

    ``rendered`` may be a precomputed ``generator.render.pipeline.plan(root)``.
    """
    from generator.render.pipeline import plan

    options = options or BuildOptions()
    started = time.perf_counter()
    rendered = rendered if rendered is not None else plan(root)
    fleet = rendered.fleet
    names = [c.name for c in fleet.clusters]
    chosen = select_clusters(names, options.clusters, options.shard)
    tools = tools or find_tools(root)
    cache_dir = options.cache_dir or default_cache_dir(root)
    crossplane = getattr(fleet.fleet, "crossplane", None)
    mounts = {str(crossplane.infrastructure_path): "infrastructure"} if crossplane is not None else {}
    builder = Builder(rendered.files, git_path=fleet.fleet.git.path, fleet_root="fleet", mounts=mounts,
                      git_url=fleet.fleet.git.url, tools=tools, options=options, cache_dir=cache_dir,
                      charts=charts or resolver_for(root, tools, fleet, offline=options.offline))
    if getattr(fleet.fleet, "delivery", None) is not None and fleet.fleet.delivery.apps == "argocd":
        from generator.render.argocd import APPS_DIR, hub

        the_hub = hub(fleet)
        builder.argocd = (the_hub.name, f"fleet/{APPS_DIR}") if the_hub is not None else None
    jobs = max(1, options.jobs or os.cpu_count() or 1)
    builder.stats.clusters = len(chosen)
    results: dict[str, ClusterBuild] = {}
    try:
        with _progress(options.progress, len(chosen)) as advance, ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(builder.build_cluster, name, _kube_version(fleet, name)): name for name in chosen}
            try:
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    advance(futures[future])
            except BaseException:
                for pending in futures:
                    pending.cancel()
                raise
    finally:
        builder.close()
    builder.stats.seconds = time.perf_counter() - started
    ordered = {name: results[name] for name in chosen}
    return FleetBuild(ordered, builder.stats, builder.naive)


def _kube_version(fleet: Any, name: str) -> str:
    cluster = fleet.cluster(name)
    if cluster is None:
        raise UsageError(f"unknown cluster '{name}'")
    return str(cluster.settings.kubernetes_version)


@contextlib.contextmanager
def _progress(enabled: bool | None, total: int) -> Iterator[Callable[[str], None]]:
    """A rich progress bar on stderr when it is a terminal (or when asked); else nothing."""
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show or total == 0:
        yield lambda _name: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("building"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("", total=total)
        yield lambda name: bar.update(task, advance=1, description=name)


def write_tree(out: Path, files: Mapping[str, str]) -> None:
    """Write ``{relative path: text}`` under ``out`` (for ``build --out``)."""
    for rel, text in files.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


# --- command line ---------------------------------------------------------------------------------------


def _root_arg(value: str) -> Path:
    return Path(value).resolve()


def add_build_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by build, golden and diff."""
    parser.add_argument("root", nargs="?", type=_root_arg, default=Path.cwd(),
                        help="fleet root (inventory/, overlays/, charts/)")
    parser.add_argument("--cluster", action="append", default=[], metavar="NAME", help="only this cluster (repeatable)")
    parser.add_argument("--shard", type=parse_shard, metavar="I/N", help="only the I-th of N shares of the clusters")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="parallel builds (default: CPU count)")
    parser.add_argument("--charts", type=Path, metavar="DIR",
                        help="folder of upstream chart archives (<name>-<version>.tgz) or folders to template too")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR", help="step cache (default: ROOT/.cache/fleetgen)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the step cache")
    parser.add_argument("--offline", action="store_true",
                        help="template upstream charts from the chart cache and fleetgen.lock only; fetch nothing")


def options_from(args: argparse.Namespace, **extra: Any) -> BuildOptions:
    """BuildOptions from parsed arguments."""
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if args.charts is not None and not args.charts.is_dir():
        raise UsageError(f"--charts {args.charts}: not a folder")
    return BuildOptions(clusters=tuple(args.cluster), shard=args.shard, jobs=args.jobs,
                        charts_dir=args.charts.resolve() if args.charts else None,
                        cache_dir=args.cache_dir.resolve() if args.cache_dir else None,
                        use_cache=not args.no_cache, offline=bool(getattr(args, "offline", False)), **extra)


def cmd_build(args: argparse.Namespace) -> int:
    """Build every (selected) cluster; print a summary, write the golden layout with --out."""
    options = options_from(args, work_dir=args.fleet_dir.resolve() if args.fleet_dir else None)
    result = build_fleet(args.root, options)
    if args.out:
        out = args.out.resolve()
        write_tree(out, result.files())
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.verbose:
        for name, cluster in result.clusters.items():
            print(f"{name}: {len(cluster.resources)} resources in {len(cluster.kustomizations)} Kustomizations")
    print(f"built {len(result.clusters)} clusters: {result.stats.summary()}"
          + (f"; wrote {args.out}" if args.out else ""))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``build``, ``golden`` and ``diff`` subcommands to fleetgen's parser."""
    from generator.verify import diff, golden

    build = subparsers.add_parser("build", help="build what every cluster receives (kustomize + helm, as Flux)")
    add_build_options(build)
    build.add_argument("--out", type=Path, metavar="DIR", help="write the built resources (golden layout) here")
    build.add_argument("--verbose", "-v", action="store_true", help="one line per cluster")
    build.add_argument("--fleet-dir", type=Path, metavar="DIR",
                       help="write the rendered fleet repo the build reads here (default: a temporary folder)")
    build.set_defaults(func=cmd_build)
    golden.register(subparsers)
    diff.register(subparsers)


def _written_in(files: Mapping[str, str], source: str | None, expression: str | None) -> str:
    """`` (in FILE, ...)``: the rendered files under folder ``source`` that contain the failing ``${...}``."""
    if source is None or not expression:
        return ""
    prefix = "" if source in ("", ".") else source.rstrip("/") + "/"
    found = sorted(path for path, text in files.items() if path.startswith(prefix) and expression in text)
    return f" (in {', '.join(found)})" if found else ""
