"""Resolve: layer built-in defaults ⊕ fleet defaults ⊕ overlays/<env> ⊕ cluster, recording provenance.

Merge rules (the same as a JSON merge patch, which is also what kustomize applies to a HelmRelease):
maps merge key by key, lists and scalars replace, and ``null`` removes a key.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from generator.inventory.canary import canary_controller, canary_values
from generator.inventory.entries import (
    Inventory,
    Layer,
    Sourced,
    cluster_settings_layer,
    defaults_layer,
    platforms,
    settings_layers,
)
from generator.inventory.globalhosts import global_route_values
from generator.inventory.mesh import check_mesh, mesh_values, runs_mesh
from generator.inventory.models import (
    App,
    Cluster,
    Component,
    ComponentSettings,
    Fleet,
    Settings,
    Team,
    built_in_node_groups,
)
from generator.inventory.storage import storage_values

BUILT_IN = "(built-in default)"
IDENTITY_FIELDS = {"name", "cloud", "region", "environment", "role", "networking"}
_NO_SETTINGS = ComponentSettings()


_ATOMS = frozenset({str, int, float, bool, type(None)})


def _copied(value: Any) -> Any:
    """A deep copy of plain data (what the loader and ``model_dump`` give: maps, lists, scalars): each map and list
    copied once, scalars shared; anything else through ``copy.deepcopy``."""
    kind = type(value)
    if kind is dict:
        return {key: _copied(child) for key, child in value.items()}
    if kind is list:
        return [_copied(child) for child in value]
    if kind in _ATOMS:
        return value
    return copy.deepcopy(value)


def merge(base: Any, patch: Any) -> Any:
    """JSON-merge-patch ``patch`` onto ``base`` without changing either (the result shares no map or list with
    them): ``base``'s keys in their order, each patched one in its place, then ``patch``'s new keys in theirs.
    Every part is copied once (copying ``base`` whole, then each patched part again, grew with the depth)."""
    if not isinstance(patch, dict):
        return _copied(patch)
    if not isinstance(base, dict):
        base = {}
    elif type(base) is not dict:
        base = copy.deepcopy(base)  # a map of another type: copied as it copies itself (never from the loader)
    out = {}
    for key, value in base.items():
        if key not in patch:
            out[key] = _copied(value)
        elif patch[key] is not None:
            out[key] = merge(value, patch[key])
    for key, value in patch.items():
        if value is not None and key not in base:
            out[key] = merge(None, value)
    return out


def _merged_view(base: Any, patch: Any) -> Any:
    """``merge`` for data that is only read (validated into a model): new maps along the patched paths only,
    everything else shared with ``base`` and ``patch``."""
    if not isinstance(patch, dict):
        return patch
    out = dict(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merged_view(out.get(key), value)
    return out


def canonical(value: Any) -> Any:
    """Free-form inventory maps (values, labels, configs) with keys sorted, so key order never matters."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def _built_in(provenance: dict[str, str], prefix: str, value: Any) -> None:
    """Mark ``prefix`` and every leaf below it as set by fleetgen's built-in defaults."""
    if isinstance(value, dict) and value:
        for key, child in value.items():
            _built_in(provenance, f"{prefix}.{key}" if prefix else str(key), child)
    else:
        provenance[prefix] = BUILT_IN


def _add_prefixes(prefixes: set[str], dotted: str) -> None:
    """Add every ``p`` such that ``dotted`` starts with ``p + "."`` (the dotted names ``dotted`` lies below)."""
    end = dotted.rfind(".")
    while end > 0:
        prefixes.add(dotted[:end])
        end = dotted.rfind(".", 0, end)


def _layer_provenance(
    provenance: dict[str, str], layer: Layer, data: dict[str, Any], path: tuple[Any, ...] = (),
    parents: set[str] | None = None,
) -> None:
    """Record ``layer`` as the source of each leaf of ``data``, replacing what lower layers set at or below it.

    ``parents`` holds every name some recorded name lies below (a superset: names are only looked up in it), so
    a leaf with nothing below it costs a lookup instead of a scan of the whole provenance."""
    assert layer.file is not None
    file = layer.file
    if parents is None:
        parents = set()
        for name in provenance:
            _add_prefixes(parents, name)
    for key, value in data.items():
        full = (*path, key)
        dotted = ".".join(str(p) for p in full)
        if isinstance(value, dict) and value:
            provenance.pop(dotted, None)
            _layer_provenance(provenance, layer, value, full, parents)
        else:
            if dotted in parents:
                for stale in [k for k in provenance if k.startswith(dotted + ".")]:
                    del provenance[stale]
            provenance.pop(dotted, None)
            if value is not None:
                provenance[dotted] = str(file.position((*layer.path, *full)))
                _add_prefixes(parents, dotted)


def cluster_layer(source: Sourced[Cluster]) -> Layer:
    """The settings written directly on a cluster entry, as a layer."""
    return cluster_settings_layer(source)


@dataclass(frozen=True)
class LayeredValues:
    """Chart values of a release split by the layer that sets them (base, environment, cluster)."""

    base: dict[str, Any]
    environment: dict[str, Any]
    cluster: dict[str, Any]

    def __post_init__(self) -> None:
        for name in ("base", "environment", "cluster"):
            object.__setattr__(self, name, canonical(getattr(self, name)))

    @classmethod
    def sharing(cls, base: dict[str, Any], environment: dict[str, Any], cluster: dict[str, Any]) -> LayeredValues:
        """``LayeredValues(base, environment, cluster)`` for ``base`` and ``environment`` that are ``canonical``
        already (shared as they are, as the layers of clusters without values of their own are)."""
        values = cls.__new__(cls)
        object.__setattr__(values, "base", base)
        object.__setattr__(values, "environment", environment)
        object.__setattr__(values, "cluster", canonical(cluster))
        return values

    @property
    def merged(self) -> dict[str, Any]:
        """What the HelmRelease ends up with after kustomize applies the overlays."""
        result: dict[str, Any] = merge(merge(self.base, self.environment), self.cluster)
        return result

    def value_at(self, *path: str) -> Any:
        """The merged value at ``path`` (None when unset), without copying the layers: read it, never change it."""
        value: Any = _merged_view(_merged_view(self.base, self.environment), self.cluster)
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value


@dataclass(frozen=True)
class ResolvedComponent:
    """A platform component as it runs on one cluster (or in one environment overlay)."""

    component: Component
    values: LayeredValues

    @property
    def name(self) -> str:
        """The component name."""
        return self.component.name


@dataclass(frozen=True)
class ResolvedApp:
    """An application as it runs on one cluster (or in one environment overlay)."""

    app: App
    team: Team
    values: LayeredValues

    @property
    def name(self) -> str:
        """The app name."""
        return self.app.name


@dataclass(frozen=True)
class ResolvedEnvironment:
    """An environment overlay: what every workload cluster of the environment gets by default."""

    name: str
    settings: Settings
    components: tuple[ResolvedComponent, ...]
    apps: tuple[ResolvedApp, ...]

    @property
    def teams(self) -> list[str]:
        """Teams with at least one app in this environment's overlay."""
        return sorted({a.team.name for a in self.apps})

    def team_apps(self, team: str) -> tuple[ResolvedApp, ...]:
        """This environment's apps owned by ``team``."""
        return tuple(a for a in self.apps if a.team.name == team)


@dataclass(frozen=True)
class ResolvedCluster:
    """One cluster with every setting resolved, and the file:line that set each value."""

    cluster: Cluster
    settings: Settings
    environment: ResolvedEnvironment
    components: tuple[ResolvedComponent, ...]
    apps: tuple[ResolvedApp, ...]
    provenance: Mapping[str, str] = field(compare=False)
    sources: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The cluster name."""
        return self.cluster.name

    def variables(self, fleet: Fleet) -> dict[str, str]:
        """The Flux post-build substitution variables of this cluster."""
        return {
            "cluster_name": self.cluster.name,
            "cluster_environment": self.cluster.environment,
            "cluster_region": self.cluster.region,
            "cluster_cloud": self.cluster.cloud,
            "cluster_domain": f"{self.cluster.name}.{fleet.domain}",
            "fleet_domain": fleet.domain,
            "organization": fleet.organization,
            **platforms()["clouds"][self.cluster.cloud].get("variables", {}),
        }

    @property
    def infrastructure_differs(self) -> bool:
        """Whether the cluster needs its own infrastructure overlay (not just its environment's)."""
        return _signature(self.components) != _signature(self.environment.components, env_only=True)

    @property
    def teams(self) -> list[str]:
        """Teams with at least one app on this cluster."""
        return sorted({a.team.name for a in self.apps})

    def team_apps(self, team: str) -> tuple[ResolvedApp, ...]:
        """This cluster's apps owned by ``team``."""
        return tuple(a for a in self.apps if a.team.name == team)

    def team_differs(self, team: str) -> bool:
        """Whether the cluster needs its own overlay for ``team``'s apps (not the environment's)."""
        mine = _signature(self.team_apps(team))
        return mine != _signature(self.environment.team_apps(team), env_only=True)

    @property
    def tenants_differ(self) -> bool:
        """Whether namespaces/RBAC of this cluster differ from its environment's."""
        names = [a.name for a in self.apps] != [a.name for a in self.environment.apps]
        mesh = (runs_mesh(self.components), self.settings.mesh) != (
            runs_mesh(self.environment.components), self.environment.settings.mesh
        )
        return names or mesh or self.settings.tenancy != self.environment.settings.tenancy


def _signature(items: tuple[ResolvedComponent, ...] | tuple[ResolvedApp, ...], env_only: bool = False) -> list[Any]:
    return [(i.name, i.values.base, i.values.environment, {} if env_only else i.values.cluster) for i in items]


@dataclass(frozen=True)
class ResolvedFleet:
    """The whole fleet, resolved: the input of plan."""

    inventory: Inventory
    fleet: Fleet
    components: tuple[Component, ...]
    apps: tuple[App, ...]
    teams: tuple[Team, ...]
    environments: tuple[ResolvedEnvironment, ...]
    clusters: tuple[ResolvedCluster, ...]

    def cluster(self, name: str) -> ResolvedCluster | None:
        """The resolved cluster called ``name``."""
        return self._clusters_by_name.get(name)

    @functools.cached_property
    def _clusters_by_name(self) -> dict[str, ResolvedCluster]:
        """The clusters by name (built on first use: the fleet never changes, so neither does the index)."""
        index: dict[str, ResolvedCluster] = {}
        for cluster in self.clusters:
            index.setdefault(cluster.name, cluster)
        return index


def _settings_of(layers: list[Layer], cloud: str = "aws") -> dict[str, Any]:
    """Built-in defaults (node groups per cloud) with ``layers`` merged on top."""
    data: dict[str, Any] = Settings(node_groups=built_in_node_groups(cloud)).model_dump(by_alias=True, mode="json")
    for layer in layers:
        if layer.file is not None:
            data = merge(data, layer.data)
    return data


def _provenance_of(layers: list[Layer], cloud: str = "aws") -> dict[str, str]:
    """Where each value of ``_settings_of(layers, cloud)`` came from."""
    provenance: dict[str, str] = {}
    _built_in(provenance, "", Settings(node_groups=built_in_node_groups(cloud)).model_dump(by_alias=True, mode="json"))
    for layer in layers:
        if layer.file is not None:
            _layer_provenance(provenance, layer, layer.data)
    return provenance


@dataclass(frozen=True)
class _LowerLayers:
    """The layers below a cluster's own, merged: the same for every cluster of a (cloud, environment). Their
    provenance is recorded on first use (``fleetgen explain``, a cluster's ``Provenance``), not by every render."""

    data: dict[str, Any]
    settings: Settings
    layers: tuple[Layer, ...]
    cloud: str

    @classmethod
    def merge(cls, layers: list[Layer], cloud: str) -> _LowerLayers:
        """Built-in defaults with ``layers`` merged on top."""
        data = _settings_of(layers, cloud)
        return cls(data, Settings.model_validate(data), tuple(layers), cloud)

    @functools.cached_property
    def provenance(self) -> dict[str, str]:
        """Where each value of ``data`` came from."""
        return _provenance_of(list(self.layers), self.cloud)

    @functools.cached_property
    def parents(self) -> frozenset[str]:
        """Every dotted name some name of ``provenance`` lies below (see ``_layer_provenance``)."""
        parents: set[str] = set()
        for name in self.provenance:
            _add_prefixes(parents, name)
        return frozenset(parents)


class Provenance(Mapping[str, str]):
    """Where each setting of one cluster came from: dotted name → ``file:line`` (or ``BUILT_IN``), sorted by name.

    Built on first use (``fleetgen explain``, the overview's override rows), from the record of the layers below the
    cluster (shared by every cluster of its cloud and environment), the cluster's own settings and its identity."""

    __slots__ = ("_layer", "_lower", "_names", "_source")

    def __init__(self, lower: _LowerLayers, layer: Layer, source: Sourced[Cluster]) -> None:
        self._lower, self._layer, self._source = lower, layer, source
        self._names: dict[str, str] | None = None

    @property
    def _built(self) -> dict[str, str]:
        if self._names is None:
            self._names = _cluster_provenance(self._lower, self._layer, self._source)
        return self._names

    def __getitem__(self, name: str) -> str:
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._built)

    def __len__(self) -> int:
        return len(self._built)

    def __repr__(self) -> str:
        return repr(self._built)

    def __reduce__(self) -> tuple[Any, ...]:
        return dict, (self._built,)


def _cluster_provenance(lower: _LowerLayers, layer: Layer, source: Sourced[Cluster]) -> dict[str, str]:
    """The provenance of one cluster: the lower layers' record, then its own settings layer, then its identity
    (built-in values, each replaced by where the entry writes it)."""
    cluster = source.item
    provenance = dict(lower.provenance)
    parents = set(lower.parents)
    if layer.data:
        _layer_provenance(provenance, layer, layer.data, parents=parents)
    identity = cluster.model_dump(by_alias=True, mode="json", include=IDENTITY_FIELDS)
    built_in: dict[str, str] = {}
    _built_in(built_in, "", identity)
    for name in built_in:
        _add_prefixes(parents, name)
    provenance.update(built_in)
    written = {k: v for k, v in source.raw.items() if k in identity}
    _layer_provenance(provenance, Layer(f"cluster {cluster.name}", written, source.file, source.path), written,
                      parents=parents)
    return {name: provenance[name] for name in sorted(provenance)}


def gateway_component(components: tuple[Component, ...] | list[Component]) -> Component | None:
    """The platform component that serves app hosts (the one with a ``gateway`` entry), if any."""
    return next((c for c in components if c.gateway is not None), None)


def app_base_values(
    app: App, team: Team, fleet: Fleet, apps: tuple[App, ...] | list[App], gateway: Component | None
) -> dict[str, Any]:
    """The service chart's values for an app before environment and cluster layers.

    An app with a ``host`` gets an HTTPRoute for ``<host>.<cluster domain>`` attached to the gateway
    component's Gateway, and its NetworkPolicy admits the gateway's data plane pods. The policy also admits
    every app that depends on it; egress goes to every app it depends on, on that app's port (DNS always).
    Peers are selected by ``app.kubernetes.io/instance`` (the release name, the app's name): Flagger keeps it on
    a Canary's primary pods, whose ``app.kubernetes.io/name`` becomes ``<app>-primary``.
    """
    by_name = {a.name: a for a in apps}
    allow_from: list[dict[str, Any]] = []
    if app.host and gateway is not None and gateway.gateway is not None:
        peer: dict[str, Any] = {"namespace": gateway.namespace}
        if gateway.gateway.data_plane_labels:
            peer["podLabels"] = dict(sorted(gateway.gateway.data_plane_labels.items()))
        allow_from.append(peer)
    for other in sorted(apps, key=lambda a: a.name):
        if app.name in other.depends_on:
            allow_from.append(
                {"namespace": other.target_namespace, "podLabels": {"app.kubernetes.io/instance": other.name}}
            )
    allow_to = [
        {
            "namespace": by_name[d].target_namespace,
            "podLabels": {"app.kubernetes.io/instance": d},
            "port": by_name[d].port,
        }
        for d in sorted(app.depends_on)
    ]
    values: dict[str, Any] = {
        "image": {"repository": app.image.repository, "tag": app.image.tag, "digest": app.image.digest},
        "containerPort": app.port,
        "resources": app.resources.model_dump(mode="json"),
        "probes": {"liveness": {"path": app.probes.liveness}, "readiness": {"path": app.probes.readiness}},
        "partOf": fleet.organization,
        "labels": {"fleet.gitops.io/team": team.name},
        "env": dict(sorted(app.env.items())),
        "envFromSecrets": sorted(secret.name for secret in app.secrets),
        "networkPolicy": {"enabled": True, "allowFrom": allow_from, "allowTo": allow_to},
    }
    if app.slo is not None:
        values["metrics"] = {"enabled": True}   # the SLO rules read what the ServiceMonitor scrapes
    if app.host and gateway is not None and gateway.gateway is not None:
        values["route"] = {
            "enabled": True,
            "hostnames": [f"{app.host}.${{cluster_domain}}"],
            "gateway": {
                "name": gateway.gateway.name,
                "namespace": gateway.namespace,
                "sectionName": gateway.gateway.listener,
            },
        }
    result: dict[str, Any] = canonical(merge(values, app.values))
    return result


def _app_env_values(app: App, env: str, settings: Settings) -> dict[str, Any]:
    values: dict[str, Any] = {"labels": {"fleet.gitops.io/environment": env}}
    if env in app.autoscaling:
        scaling = app.autoscaling[env]
        values["autoscaling"] = {
            "enabled": True,
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "targetCPUUtilizationPercentage": scaling.target_cpu_utilization,
        }
    elif env in app.replicas:
        values["replicas"] = app.replicas[env]
    layered = settings.apps.get(app.name)
    if layered is not None:
        if layered.replicas is not None:
            values["replicas"] = layered.replicas
        if layered.image is not None:
            values["image"] = layered.image.model_dump(exclude_none=True)
        values = merge(values, layered.values)
    return values


def _cluster_values(raw: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    """A cluster's own values for one component or app, for reading only (shares maps with the inventory)."""
    entry = (raw.get(section) or {}).get(name) or {}
    values: dict[str, Any] = entry.get("values") or {}
    if section == "apps" and entry.get("replicas") is not None:
        values = _merged_view({"replicas": entry["replicas"]}, values)
    if section == "apps" and entry.get("image"):
        image = {k: v for k, v in entry["image"].items() if k in ("tag", "digest") and v is not None}
        values = _merged_view({"image": image}, values)
    return values


def _canary_override(environment: dict[str, Any], cluster: dict[str, Any]) -> dict[str, Any]:
    """Canary values a cluster layer must set when its canary settings differ from its environment's."""
    if cluster == environment:
        return {}
    return cluster or {"canary": {"enabled": False}}


def _mesh_override(team: Team, environment: bool, cluster: bool) -> dict[str, Any]:
    """Mesh values a cluster layer must set when the mesh runs there and not in its environment, or the reverse."""
    if environment == cluster or not team.mesh:
        return {}
    return {"networkPolicy": {"ambient": cluster}}


def _enabled(settings: Settings, section: str, name: str, default: bool) -> bool:
    entry = getattr(settings, section).get(name)
    return default if entry is None or entry.enabled is None else bool(entry.enabled)


def _named_clusters(apps: list[App]) -> frozenset[str]:
    """Clusters whose name decides which apps they run or what those apps' values are: listed in an app's
    ``clusters``, or one of an app's failover pair (``global_route_values``)."""
    names: set[str] = set()
    for app in apps:
        names.update(app.clusters or ())
        if app.failover is not None:
            names.update((app.failover.primary, app.failover.secondary))
    return frozenset(names)


def _workloads_key(cluster: Cluster, settings: Settings, layer: Layer, named: frozenset[str]) -> tuple[Any, ...] | None:
    """What a cluster's components and apps depend on when its name does not matter: its role, cloud and environment
    and its settings (one object per distinct value, see ``resolve``); None when the name may matter (the hub's
    composed stores, ``storage_values``; a cluster an app names) or the cluster writes components or apps itself."""
    if cluster.role == "hub" or cluster.name in named or "components" in layer.data or "apps" in layer.data:
        return None
    return (cluster.role, cluster.cloud, cluster.environment, id(settings))


def resolve(inv: Inventory) -> ResolvedFleet:
    """Layer the inventory into per-environment and per-cluster views."""
    fleet = inv.fleet.item
    teams = {t.item.name: t.item for t in inv.teams}
    components = [c.item for c in inv.components]
    apps = [a.item for a in inv.apps]
    gateway = gateway_component(components)
    controller = canary_controller(components)

    def canary(app: App, settings: Settings) -> dict[str, Any]:
        values = canary_values(app, settings.canary, settings.alerts.event_severity, fleet, gateway, controller)
        return {"canary": values} if values else {}

    environments: dict[str, ResolvedEnvironment] = {}
    for env_name in fleet.environments:
        data = _settings_of([defaults_layer(inv), inv.overlays[env_name]])
        settings = Settings.model_validate(data)
        env_components = tuple(
            ResolvedComponent(c, LayeredValues(c.values, settings.components.get(c.name, _NO_SETTINGS).values, {}))
            for c in components
            if "workload" in c.roles and _enabled(settings, "components", c.name, c.enabled)
        )
        env_apps = tuple(
            ResolvedApp(
                a,
                teams[a.team],
                LayeredValues(
                    app_base_values(a, teams[a.team], fleet, apps, gateway),
                    merge(
                        merge(_app_env_values(a, env_name, settings), canary(a, settings)),
                        mesh_values(teams[a.team], runs_mesh(env_components)),
                    ),
                    {},
                ),
            )
            for a in apps
            if (a.environments is None or env_name in a.environments)
            and a.clusters is None
            and _enabled(settings, "apps", a.name, True)
        )
        environments[env_name] = ResolvedEnvironment(env_name, settings, env_components, env_apps)

    # what clusters without values of their own share with their environment: resolved once per environment
    components_of_env: dict[tuple[str, str], ResolvedComponent] = {}
    apps_of_env: dict[tuple[str, str], ResolvedApp] = {}
    base_values: dict[str, dict[str, Any]] = {}

    def shared_component(c: Component, env: ResolvedEnvironment, own: dict[str, Any]) -> ResolvedComponent:
        key = (c.name, env.name)
        shared = components_of_env.get(key)
        if shared is None:
            env_values = env.settings.components.get(c.name, _NO_SETTINGS).values
            shared = components_of_env[key] = ResolvedComponent(c, LayeredValues(c.values, env_values, {}))
        if own:  # the component's and the environment's layers as canonical already, the cluster's own
            return ResolvedComponent(c, LayeredValues.sharing(shared.values.base, shared.values.environment, own))
        return shared

    def shared_app(a: App, env: ResolvedEnvironment, own: dict[str, Any]) -> ResolvedApp:
        key = (a.name, env.name)
        if not own and key in apps_of_env:
            return apps_of_env[key]
        if a.name not in base_values:
            base_values[a.name] = app_base_values(a, teams[a.team], fleet, apps, gateway)
        env_values = merge(
            merge(_app_env_values(a, env.name, env.settings), canary(a, env.settings)),
            mesh_values(teams[a.team], runs_mesh(env.components)),
        )
        resolved = ResolvedApp(a, teams[a.team], LayeredValues(base_values[a.name], env_values, own))
        if not own:
            apps_of_env[key] = resolved
        return resolved

    clusters = []
    # the layers below a cluster's own are the same for every cluster of a (cloud, environment): merged once
    below: dict[tuple[str, str], _LowerLayers] = {}
    # clusters that write the same settings on the same lower layers get equal Settings: validated once
    validated: dict[tuple[str, str, str], Settings] = {}
    # what an app's canary values are in each environment (the same for every cluster of it)
    env_canary: dict[tuple[str, str], dict[str, Any]] = {}
    # the components and apps of clusters that differ only in name: see _workloads_key
    workloads_of: dict[tuple[Any, ...], tuple[tuple[ResolvedComponent, ...], tuple[ResolvedApp, ...]]] = {}
    named = _named_clusters(apps)
    sources_of: dict[tuple[str, str], tuple[str, ...]] = {}
    for source in inv.clusters:
        cluster = source.item
        env = environments[cluster.environment]
        layer = cluster_settings_layer(source)
        lower = below.get((cluster.cloud, cluster.environment))
        if lower is None:
            lower = below[(cluster.cloud, cluster.environment)] = _LowerLayers.merge(
                settings_layers(inv, source)[:-1], cluster.cloud
            )
        if layer.data:
            key = (cluster.cloud, cluster.environment, repr(layer.data))  # repr: exact types and key order
            if key not in validated:
                validated[key] = Settings.model_validate(_merged_view(lower.data, layer.data))
            settings = validated[key]
        else:
            settings = lower.settings
        workloads_key = _workloads_key(cluster, settings, layer, named)
        known = workloads_of.get(workloads_key) if workloads_key is not None else None
        if known is not None:
            resolved_components, resolved_apps = known
        else:
            # the cluster layers below are only read, and LayeredValues copies them (canonical): merged as views
            resolved_components = tuple(
                shared_component(
                    c, env,
                    # a composed observability store's bucket names and write identity (inventory/storage.py)
                    _merged_view(storage_values(fleet, cluster, c.name),
                                 _cluster_values(layer.data, "components", c.name)),
                )
                for c in components
                if cluster.role in c.roles
                and cluster.cloud in c.clouds
                and _enabled(settings, "components", c.name, c.enabled)
            )
            env_mesh, cluster_mesh = runs_mesh(env.components), runs_mesh(resolved_components)
            apps_here = []
            for a in apps:
                if cluster.role != "workload" \
                        or (a.environments is not None and cluster.environment not in a.environments) \
                        or (a.clusters is not None and cluster.name not in a.clusters) \
                        or not _enabled(settings, "apps", a.name, True):
                    continue
                if (a.name, env.name) not in env_canary:
                    env_canary[(a.name, env.name)] = canary(a, env.settings)
                own = _merged_view(
                    # the failover pair serves the global name too (generator/inventory/globalhosts.py)
                    _merged_view(_merged_view(global_route_values(a, cluster.name, fleet, gateway),
                                              _cluster_values(layer.data, "apps", a.name)),
                                 _canary_override(env_canary[(a.name, env.name)], canary(a, settings))),
                    _mesh_override(teams[a.team], env_mesh, cluster_mesh),
                )
                apps_here.append(shared_app(a, env, own))
            resolved_apps = tuple(apps_here)
            if workloads_key is not None and not any(c.values.cluster for c in resolved_components) \
                    and not any(a.values.cluster for a in resolved_apps):
                # only what the environment shares (no values of the cluster's own, which stay its own maps)
                workloads_of[workloads_key] = (resolved_components, resolved_apps)
        sources = sources_of.get((source.file.file, cluster.environment))
        if sources is None:
            sources = sources_of[(source.file.file, cluster.environment)] = tuple(sorted(
                {
                    source.file.file,
                    inv.fleet.file.file,
                    *(layer.file.file for layer in (inv.defaults, inv.overlays[cluster.environment]) if layer.file),
                }
            ))
        clusters.append(
            ResolvedCluster(
                cluster,
                settings,
                env,
                resolved_components,
                resolved_apps,
                Provenance(lower, layer, source),
                sources,
            )
        )
    if any(runs_mesh(c.components) and c.settings.mesh.mtls == "STRICT" for c in clusters):
        check_mesh([(a.item, a) for a in inv.apps], {t.item.name: (t.item, t) for t in inv.teams})
    return ResolvedFleet(
        inv, fleet, tuple(components), tuple(apps), tuple(teams.values()), tuple(environments.values()), tuple(clusters)
    )
