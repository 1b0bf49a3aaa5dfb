"""What the build produces and reads: options, per-cluster results, steps, and small pure helpers on objects."""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from generator.errors import FleetgenError
from generator.yamlio import load_documents

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


DOC_SEPARATOR = re.compile(r"^---[ \t]*$", re.M)


class BuildError(FleetgenError):
    """A cluster cannot be built as Flux would: a missing path, a bad Flux object, a failing build."""


def load_yaml(text: str) -> list[Any]:
    """Parse a YAML stream (kustomize/helm output or our own) to plain data."""
    return load_documents(text)


def digest(*parts: str) -> str:
    """sha256 hex of the parts, each length-prefixed (so no two part lists collide)."""
    chunks: list[bytes] = []
    for part in parts:
        data = part.encode("utf-8")
        chunks += (b"%d:" % len(data), data)
    return hashlib.sha256(b"".join(chunks)).hexdigest()


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


def as_map(value: Any) -> Mapping[str, Any]:
    """value when it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def meta_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def spec_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def is_kind(obj: Mapping[str, Any], group: str, kind: str) -> bool:
    """Whether obj is ``kind`` of API group ``group`` (any version)."""
    return obj.get("kind") == kind and api_group(str(obj.get("apiVersion", ""))) == group


def substitution_disabled(obj: Mapping[str, Any]) -> bool:
    """Whether the object opts out of Flux post-build substitution (label or annotation)."""
    meta = meta_of(obj)
    for key in ("labels", "annotations"):
        values = meta.get(key)
        if isinstance(values, Mapping) and values.get(SUBSTITUTE_KEY) == "disabled":
            return True
    return False


def split_documents(text: str) -> list[str]:
    """A kustomize or helm YAML stream cut at its ``---`` lines (a marker can never sit inside a value)."""
    return [chunk for chunk in DOC_SEPARATOR.split(text) if chunk.strip()]


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
    #: of ``seconds``: planning the fleet when the build planned it (wall, and CPU seconds of the process)
    plan_seconds: float = 0.0
    plan_cpu_seconds: float = 0.0
    #: of ``seconds``: reading and checking the last render's record when it stood in for the plan (wall)
    record_seconds: float = 0.0
    #: of ``seconds``: setting up the builder (the tree of planned files, the chart resolver; wall)
    setup_seconds: float = 0.0
    #: CPU seconds, summed over the build threads, of deciding whether each cluster changed (its key, its entry)
    lookup_cpu_seconds: float = 0.0
    #: closure and tree hashes of the rendered fleet computed in this run (the others were the last run's, for files
    #: unchanged since: ``FleetTree.adopt_hashes``)
    hashes_computed: int = 0
    #: seconds, summed over the build threads, of waiting for kustomize and helm
    tool_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: float) -> None:
        """Increment counters atomically."""
        with self._lock:
            for name, count in counts.items():
                setattr(self, name, getattr(self, name) + count)

    @contextlib.contextmanager
    def timed(self, counter: str, clock: Callable[[], float] = time.perf_counter) -> Iterator[None]:
        """Add the seconds the block takes on ``clock`` (e.g. ``time.thread_time`` for CPU) to ``counter``."""
        started = clock()
        try:
            yield
        finally:
            self.add(**{counter: clock() - started})

    def summary(self) -> str:
        """One line for the CLI."""
        line = (f"{self.clusters_cached} of {self.clusters} clusters unchanged (from cache); "
                f"{self.kustomize_runs} kustomize and {self.helm_runs} helm runs; {self.steps_built} steps built, "
                f"{self.steps_cached} from cache, {self.steps_shared} shared")
        if self.releases_templated or self.releases_kept:
            line += (f"; {self.releases_templated} HelmReleases templated, {self.releases_kept} kept as resolved "
                     "objects (chart not available offline)")
        return f"{line}; {self.seconds:.1f}s"


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


class ClusterBuild:
    """Everything one cluster receives: golden-relative path → resource.

    The build of an unchanged cluster is taken from the step cache; its resources are read from there on first
    use (``load``), so a command that needs only the counts and warnings (``fleetgen build``) reads none.
    """

    def __init__(self, name: str, resources: dict[str, BuiltResource] | None = None,
                 kustomizations: list[str] | None = None, warnings: list[str] | None = None, *,
                 load: Callable[[], dict[str, BuiltResource]] | None = None) -> None:
        self.name = name
        self.kustomizations = kustomizations if kustomizations is not None else []
        self.warnings = warnings if warnings is not None else []
        self._resources = resources if resources is not None else None if load is not None else {}
        self._load = load if resources is None else None
        self._loading = threading.Lock()

    @property
    def resources(self) -> dict[str, BuiltResource]:
        """Golden-relative path → resource (read from the step cache on first use when stored)."""
        found = self._resources
        if found is None:
            with self._loading:
                if self._resources is None:
                    assert self._load is not None
                    self._resources, self._load = self._load(), None
                found = self._resources
        return found

    @resources.setter
    def resources(self, value: dict[str, BuiltResource]) -> None:
        self._resources, self._load = value, None

    @property
    def loaded(self) -> bool:
        """Whether the resources are in memory (built here, or already read from the cache)."""
        return self._resources is not None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClusterBuild):
            return NotImplemented
        return (self.name, self.kustomizations, self.warnings, self.resources) == (
            other.name, other.kustomizations, other.warnings, other.resources)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        shown = f"{len(self.resources)} resources" if self.loaded else "resources stored"
        return f"ClusterBuild({self.name!r}, {shown}, {len(self.kustomizations)} Kustomizations)"

    def to_json(self) -> dict[str, Any]:
        """Plain data for the cache."""
        return {"name": self.name, "kustomizations": self.kustomizations, "warnings": self.warnings,
                "resources": resources_to_json(self.resources)}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ClusterBuild:
        """Back from ``to_json``."""
        return cls(str(value["name"]), resources_from_json(value["resources"]), list(value["kustomizations"]),
                   list(value["warnings"]))

    def objects(self) -> Iterator[tuple[str, Obj]]:
        """(golden path, object) of every resource, parsed again (e.g. for schema validation)."""
        for rel, resource in self.resources.items():
            for doc in load_yaml(resource.text):
                yield rel, doc


def resources_to_json(resources: Mapping[str, BuiltResource]) -> dict[str, list[str]]:
    """A cluster's resources as plain data for the cache."""
    return {rel: [r.api_version, r.kind, r.namespace, r.name, r.group, r.text] for rel, r in resources.items()}


def resources_from_json(value: Mapping[str, Any]) -> dict[str, BuiltResource]:
    """Back from ``resources_to_json``."""
    return {rel: BuiltResource(*(str(x) for x in fields)) for rel, fields in value.items()}


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
class Step:
    """The output of a kustomization or helm step: objects (data only where later steps need it) and texts."""

    ids: list[tuple[str, str, str, str]]
    texts: list[str]
    data: list[Obj | None]

    def to_json(self) -> dict[str, Any]:
        return {"ids": self.ids, "texts": self.texts, "data": self.data}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Step:
        ids = [(str(a), str(k), str(n), str(m)) for a, k, n, m in value["ids"]]
        return cls(ids, list(value["texts"]), list(value["data"]))


@dataclass
class ClusterState:
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
            meta = meta_of(obj)
            if obj.get("kind") == kind and meta.get("name") == name and (meta.get("namespace") or "default") == (
                namespace or "default"
            ):
                return as_stored(obj)
        return None


def as_stored(obj: Obj) -> Obj:
    """A Secret as the API server stores it: stringData folded into base64 data."""
    if obj.get("kind") != "Secret" or not isinstance(obj.get("stringData"), Mapping):
        return obj
    out = dict(obj)
    data = dict(out.get("data") or {})
    for key, value in out.pop("stringData").items():
        data[key] = base64.b64encode(str(value).encode("utf-8")).decode("ascii")
    out["data"] = data
    return out


def may_change(obj: Obj) -> bool:
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


#: What the build writes in place of Secret data; never a finding.
REDACTED = "**redacted**"


class SubstitutionError(FleetgenError):
    """Post-build substitution failed where kustomize-controller would fail the Kustomization."""

    def __init__(self, message: str, *, variable: str | None = None, expression: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable
        #: The ``${...}`` text that failed, when known (to find the file it is written in).
        self.expression = expression


class SubstitutionPanic(SubstitutionError):
    """envsubst panics where Go would (fluxcd/pkg envsubst v1.7.0, the version kustomize-controller v1.9.4 of
    Flux 2.9.4 builds with): controller-runtime recovers it (kustomize-controller main.go ``RecoverPanic``) and the
    Kustomization's reconciliation fails with the panic instead of applying anything."""
