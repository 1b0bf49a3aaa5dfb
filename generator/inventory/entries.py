"""The loaded inventory: validated entries with the file and path each came from, and the settings layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from generator.errors import Problem
from generator.inventory.models import App, Cluster, Component, Defaults, Fleet, PolicyExceptionEntry, Settings, Team
from generator.yamlsource import LoadedFile, Path_

T = TypeVar("T", bound=BaseModel)


SECTIONS: dict[str, type[BaseModel]] = {
    "fleet": Fleet,
    "defaults": Defaults,
    "components": Component,
    "clusters": Cluster,
    "apps": App,
    "teams": Team,
    "exceptions": PolicyExceptionEntry,
}


LAYERED: tuple[type[BaseModel], ...] = (Settings, Cluster)  # and their subclasses (Defaults)


LIST_SECTIONS = ("components", "clusters", "apps", "teams", "exceptions")


CLUSTER_VARIABLES = (
    "cluster_name",
    "cluster_environment",
    "cluster_region",
    "cluster_cloud",
    "cluster_domain",
    "fleet_domain",
    "organization",
)


@dataclass(frozen=True)
class Sourced(Generic[T]):
    """A validated item and where it was written."""

    item: T
    file: LoadedFile
    path: Path_
    raw: dict[str, Any]
    #: ``cluster_settings_layer`` of a cluster entry, made on first use (resolve, the checks and the overview ask
    #: for it several times per render)
    _settings_layer: Layer | None = field(default=None, init=False, repr=False, compare=False)

    def where(self, *sub: str | int) -> tuple[str, int, int]:
        """File, line and column of a key below this item."""
        position = self.file.position((*self.path, *sub))
        return position.file, position.line, position.column


@dataclass(frozen=True)
class Layer:
    """One layer of settings (fleet defaults, an overlay, or a cluster) as written, with positions."""

    name: str
    data: dict[str, Any]
    file: LoadedFile | None
    path: Path_ = ()


@dataclass
class Inventory:
    """The validated inventory of one fleet root."""

    root: Path
    fleet: Sourced[Fleet]
    defaults: Layer
    overlays: dict[str, Layer]
    components: list[Sourced[Component]] = field(default_factory=list)
    clusters: list[Sourced[Cluster]] = field(default_factory=list)
    apps: list[Sourced[App]] = field(default_factory=list)
    teams: list[Sourced[Team]] = field(default_factory=list)
    exceptions: list[Sourced[PolicyExceptionEntry]] = field(default_factory=list)
    #: Problems worth a look that do not stop a render (e.g. a Kubernetes version past standard support).
    warnings: list[Problem] = field(default_factory=list)
    #: ``lower_layers`` by (cloud, environment), with the defaults and overlay layers they were made from
    _lower: dict[tuple[str, str], tuple[Layer, Layer | None, list[Layer]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def files(self) -> list[str]:
        """Every inventory and overlay file, relative to the root."""
        found = {self.fleet.file.file, *(o.file.file for o in self.overlays.values() if o.file)}
        for group in (self.components, self.clusters, self.apps, self.teams, self.exceptions):
            found.update(s.file.file for s in group)
        return sorted(found)


@cache
def _settings_keys() -> frozenset[str]:
    return frozenset(f.alias or name for name, f in Settings.model_fields.items())


def cloud_defaults_layer(inv: Inventory, cloud: str) -> Layer:
    """``defaults.clouds.<cloud>``: settings for every cluster on one cloud (empty when not written)."""
    data = (inv.defaults.data.get("clouds") or {}).get(cloud) if inv.defaults.file else None
    if not data:
        return Layer(f"fleet defaults for {cloud}", {}, None)
    return Layer(f"fleet defaults for {cloud}", data, inv.defaults.file, (*inv.defaults.path, "clouds", cloud))


def defaults_layer(inv: Inventory) -> Layer:
    """The ``defaults`` section without its per-cloud part."""
    data = {k: v for k, v in inv.defaults.data.items() if k != "clouds"}
    return Layer(inv.defaults.name, data, inv.defaults.file, inv.defaults.path)


def cluster_settings_layer(source: Sourced[Cluster]) -> Layer:
    """The settings written directly on a cluster entry, as a layer (made once per entry: read it, never change
    it)."""
    layer = source._settings_layer
    if layer is None:
        keys = _settings_keys()
        layer = Layer(
            f"cluster {source.item.name}", {k: v for k, v in source.raw.items() if k in keys}, source.file, source.path
        )
        object.__setattr__(source, "_settings_layer", layer)  # frozen: set once, as a cached property would
    return layer


def lower_layers(inv: Inventory, cloud: str, environment: str) -> list[Layer]:
    """The layers below a cluster's own, in merge order: defaults ⊕ defaults.clouds.<cloud> ⊕ overlays/<env>; made
    once per (cloud, environment) and shared (read them, never change them)."""
    overlay = inv.overlays.get(environment)
    known = inv._lower.get((cloud, environment))
    if known is not None and known[0] is inv.defaults and known[1] is overlay:
        return known[2]
    layers = [
        defaults_layer(inv),
        cloud_defaults_layer(inv, cloud),
        overlay if overlay is not None else Layer(f"overlays/{environment}", {}, None),
    ]
    inv._lower[(cloud, environment)] = (inv.defaults, overlay, layers)
    return layers


def settings_layers(inv: Inventory, source: Sourced[Cluster]) -> list[Layer]:
    """A cluster's layers in merge order: defaults ⊕ defaults.clouds.<cloud> ⊕ overlays/<env> ⊕ the cluster."""
    return [*lower_layers(inv, source.item.cloud, source.item.environment), cluster_settings_layer(source)]


def substitution_variables() -> tuple[str, ...]:
    """Every variable Flux substitutes in this fleet: cluster facts plus per-cloud variables."""
    cloud_vars = {name for cloud in platforms()["clouds"].values() for name in cloud.get("variables", {})}
    return tuple(sorted({*CLUSTER_VARIABLES, *cloud_vars}))


@cache
def platforms() -> dict[str, Any]:
    """Clouds, regions, zones and Kubernetes versions fleetgen supports."""
    from generator.yamlio import load_documents

    text = resources.files("generator").joinpath("data/platforms.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = load_documents(text)[0]
    return data


def problem_at(source: Sourced[Any] | Layer, sub: Path_, message: str) -> Problem:
    """A problem at ``sub`` below an item or layer; the field is the full dotted path as written."""
    assert source.file is not None
    full = (*source.path, *sub)
    pos = source.file.position(full)
    return Problem(pos.file, pos.line, pos.column, ".".join(str(p) for p in full), message)
