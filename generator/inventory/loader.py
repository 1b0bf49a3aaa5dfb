"""Load: read ``inventory/`` and ``overlays/`` with positions, validate every item, check cross-field rules.

The result is an ``Inventory``: validated models plus, for every item, the file and path it came from,
so that resolve can record provenance and every error can say ``file:line:col: field: message``.
"""

from __future__ import annotations

import datetime
import difflib
import ipaddress
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Generic, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel

from generator.errors import InventoryError, InventoryWarning, Problem
from generator.guard import walk_files
from generator.inventory.cidr import overlapping_pairs
from generator.inventory.models import (
    ACTION_POLICIES,
    VALIDATING_POLICIES,
    App,
    Cluster,
    Component,
    Defaults,
    Fleet,
    PolicyExceptionEntry,
    Settings,
    Team,
)
from generator.yamlio import LoadedFile, Path_, load_file

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
"""Models whose raw keys are layered by resolve: only their camelCase keys are accepted."""
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
_PATTERN_HINTS = {
    "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$": (
        "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter "
        "or digit (so it is a safe file and object name)"
    ),
}
_VARIABLE = re.compile(r"(?<!\$)\$\{([^}:=\-+?#%/^,]*)")


@dataclass(frozen=True)
class Sourced(Generic[T]):
    """A validated item and where it was written."""

    item: T
    file: LoadedFile
    path: Path_
    raw: dict[str, Any]

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

    @property
    def files(self) -> list[str]:
        """Every inventory and overlay file, relative to the root."""
        found = {self.fleet.file.file, *(o.file.file for o in self.overlays.values() if o.file)}
        for group in (self.components, self.clusters, self.apps, self.teams, self.exceptions):
            found.update(s.file.file for s in group)
        return sorted(found)


def _settings_keys() -> set[str]:
    return {f.alias or name for name, f in Settings.model_fields.items()}


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
    """The settings written directly on a cluster entry, as a layer."""
    keys = _settings_keys()
    return Layer(
        f"cluster {source.item.name}", {k: v for k, v in source.raw.items() if k in keys}, source.file, source.path
    )


def settings_layers(inv: Inventory, source: Sourced[Cluster]) -> list[Layer]:
    """A cluster's layers in merge order: defaults ⊕ defaults.clouds.<cloud> ⊕ overlays/<env> ⊕ the cluster."""
    overlay = inv.overlays.get(source.item.environment, Layer(f"overlays/{source.item.environment}", {}, None))
    return [defaults_layer(inv), cloud_defaults_layer(inv, source.item.cloud), overlay, cluster_settings_layer(source)]


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


# --- pydantic errors → problems with positions --------------------------------------------------------


def _model_at(model: type[BaseModel], loc: Iterable[str | int]) -> type[BaseModel] | None:
    """The model class that owns the last key of ``loc`` (for did-you-mean suggestions)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {f.alias or name: f for name, f in current.model_fields.items()}
            if not isinstance(part, str) or part not in fields:
                return None
            current = fields[part].annotation
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        else:
            return None
        while get_origin(current) is not None and get_origin(current) not in (list, dict):
            args = [a for a in get_args(current) if a is not type(None)]
            current = args[0] if args else None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "a string"


def _shown(value: Any) -> str:
    """A value as YAML would print it: ``1.3``, ``true``, ``null``, ``'text'``."""
    if isinstance(value, bool) or value is None:
        return "true" if value is True else "false" if value is False else "null"
    if isinstance(value, dict | list):
        return "{...}" if isinstance(value, dict) else "[...]"
    return repr(value)


def _read_as(error: dict[str, Any], literal: str | None) -> str:
    """What was read, for a type error: ``read 1.3 (a number, written 1.30); quote it: "1.30"``."""
    value = error["input"]
    written = f", written {literal}" if literal and literal != _shown(value) else ""
    read = f"read {_shown(value)} ({_kind(value)}{written})"
    if error["type"] == "string_type" and (isinstance(value, int | float) or value is None):
        return f"{read}; quote it: \"{literal or _shown(value)}\""
    return read


def _message(model: type[BaseModel], error: dict[str, Any], literal: str | None = None) -> str:
    loc = error["loc"]
    if error["type"] == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        known = sorted(f.alias or n for n, f in owner.model_fields.items()) if owner else []
        camel = to_camel(str(loc[-1]))
        close = [camel] if camel in known else difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else (f"; expected one of: {', '.join(known)}" if known else "")
        return f"unknown key '{loc[-1]}'{hint}"
    if error["type"] == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        return f"{error['input']!r} {_PATTERN_HINTS.get(pattern, f'does not match {pattern}')}"
    if error["type"] == "missing":
        return "required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"].startswith("literal"):
        return f"{message} (got {error['input']!r})"
    if error["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping, {_read_as(error, literal)}"
    if error["type"].endswith(("_type", "_parsing")) and "input" in error:
        expected = message.removeprefix("Input should be ")
        expected = re.sub(r"^a valid (?=[aeiou])", "an ", re.sub(r"^a valid (?![aeiou])", "a ", expected))
        return f"expected {expected}, {_read_as(error, literal)}"
    return message


def validate_item(model: type[T], data: Any, file: LoadedFile, path: Path_, problems: list[Problem]) -> T | None:
    """Validate one item; on failure add one problem per pydantic error, each with file:line:col.

    Layered settings (``defaults``, overlays, clusters) are merged as written, by their camelCase keys, so there
    a snake_case field name (``kubernetes_version``) is an unknown key with a did-you-mean, not a crash later.
    """
    try:
        return model.model_validate(data, by_alias=True, by_name=not issubclass(model, LAYERED))
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            position = file.position((*path, *loc))
            dotted = ".".join(str(p) for p in (*path, *loc))
            literal = file.literals.get((*path, *loc))
            problems.append(
                Problem(position.file, position.line, position.column, dotted, _message(model, dict(error), literal))
            )
        return None


def ambiguous_booleans(file: LoadedFile) -> list[Problem]:
    """Unquoted ``on``/``off``/``yes``/``no``/``y``/``n``: YAML 1.1 readers (Kubernetes, Helm) take them for
    booleans, fleetgen's YAML 1.2 reader for strings; the inventory must say which it means."""
    problems = []
    for path in file.ambiguous:
        position = file.position(path)
        value = file.data
        for part in path:
            value = value[part]
        meaning = "true" if str(value).lower() in {"y", "yes", "on"} else "false"
        problems.append(
            Problem(
                position.file,
                position.line,
                position.column,
                ".".join(str(p) for p in path),
                f"read {value} unquoted: YAML 1.1 readers (Kubernetes, Helm) take it for the boolean {meaning}, "
                f"YAML 1.2 for a string; write {meaning} for the boolean or quote it: \"{value}\"",
            )
        )
    return problems


# --- loading --------------------------------------------------------------------------------------------


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def load_inventory(root: Path, *, today: datetime.date | None = None) -> Inventory:
    """Read and validate the fleet at ``root`` (``inventory/`` and ``overlays/``); raise InventoryError.

    Stages, as the README documents: ``load_entries`` reads every file through the input guard and checks
    every entry and overlay against its schema; only when all pass does ``check_names`` look for duplicate
    names, and only when names are unique does ``cross_check`` run the rules across entries, so one mistake
    gives one message. ``today`` (default: the current date) decides which policy
    exceptions have expired.
    """
    inventory = load_entries(root)
    problems = check_names(inventory) or cross_check(inventory, today=today)
    if problems:
        raise InventoryError(problems)
    for warning in sorted(inventory.warnings, key=lambda p: (p.file, p.line, p.column, p.message)):
        warnings.warn(InventoryWarning(str(warning)), stacklevel=2)
    return inventory


def _read_files(folder: Path, root: Path, problems: list[Problem], *, recursive: bool = True) -> list[LoadedFile]:
    """Every YAML file in (or below) ``folder``, through the input guard (problems collected, not raised)."""
    paths, refused = walk_files(folder, root, (".yaml", ".yml"), recursive=recursive)
    problems.extend(refused)
    loaded: list[LoadedFile] = []
    for path in paths:
        try:
            file = load_file(path, _relative(path, root), root)
        except InventoryError as exc:
            problems.extend(exc.problems)
            continue
        problems.extend(ambiguous_booleans(file))
        loaded.append(file)
    return loaded


def load_entries(root: Path) -> Inventory:
    """Stage 1: read every inventory and overlay file and validate each entry against its schema; raise
    InventoryError with every problem found, before any rule across entries runs."""
    root = root.resolve()
    inventory_dir, overlay_dir = root / "inventory", root / "overlays"
    problems: list[Problem] = []
    if not inventory_dir.is_dir():
        raise InventoryError([Problem(_relative(inventory_dir, root), 0, 0, "", "no inventory/ folder here")])
    loaded = _read_files(inventory_dir, root, problems)

    fleet_items: list[Sourced[Fleet]] = []
    defaults: list[Layer] = []
    groups: dict[str, list[Any]] = {name: [] for name in LIST_SECTIONS}
    for file in loaded:
        if file.data is None:
            continue
        if not isinstance(file.data, dict):
            problems.append(Problem(file.file, 1, 1, "", f"expected a mapping of sections, read {_kind(file.data)}"))
            continue
        for key, value in file.data.items():
            model = SECTIONS.get(key)
            if model is None:
                close = difflib.get_close_matches(key, SECTIONS, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"expected one of: {', '.join(SECTIONS)}"
                pos = file.position((key,))
                problems.append(Problem(file.file, pos.line, pos.column, key, f"unknown section; {hint}"))
                continue
            if key == "fleet":
                fleet = validate_item(Fleet, value, file, ("fleet",), problems)
                if fleet:
                    fleet_items.append(Sourced(fleet, file, ("fleet",), value))
            elif key == "defaults":
                if validate_item(Defaults, value, file, ("defaults",), problems) is not None:
                    defaults.append(Layer("fleet defaults", value, file, ("defaults",)))
            elif not isinstance(value, list):
                pos = file.position((key,))
                problems.append(
                    Problem(file.file, pos.line, pos.column, key, f"expected a list of entries, read {_kind(value)}")
                )
            else:
                for index, entry in enumerate(value):
                    item = validate_item(model, entry, file, (key, index), problems)
                    if item is not None:
                        groups[key].append(Sourced(item, file, (key, index), entry))

    if len(fleet_items) != 1 and not problems:
        where = fleet_items[1].where() if len(fleet_items) > 1 else ("inventory/", 0, 0)
        problems.append(
            Problem(
                where[0], where[1], where[2], "fleet", "exactly one 'fleet' section is required across inventory files"
            )
        )
    if len(defaults) > 1:
        layer = defaults[1]
        assert layer.file is not None
        pos = layer.file.position(layer.path)
        problems.append(Problem(pos.file, pos.line, pos.column, "defaults", "'defaults' is given more than once"))

    overlays: dict[str, Layer] = {}
    for file in _read_files(overlay_dir, root, problems, recursive=False):
        data = file.data if file.data is not None else {}
        if validate_item(Settings, data, file, (), problems) is not None:
            overlays[Path(file.file).stem] = Layer(f"overlays/{Path(file.file).name}", data, file)
    if problems:
        raise InventoryError(problems)

    return Inventory(
        root=root,
        fleet=fleet_items[0],
        defaults=defaults[0] if defaults else Layer("fleet defaults", {}, None),
        overlays=overlays,
        components=sorted(groups["components"], key=lambda s: s.item.name),
        clusters=sorted(groups["clusters"], key=lambda s: s.item.name),
        apps=sorted(groups["apps"], key=lambda s: s.item.name),
        teams=sorted(groups["teams"], key=lambda s: s.item.name),
        exceptions=sorted(groups["exceptions"], key=lambda s: s.item.name),
    )


# --- cross-field rules ----------------------------------------------------------------------------------


def _problem(source: Sourced[Any] | Layer, sub: Path_, message: str) -> Problem:
    """A problem at ``sub`` below an item or layer; the field is the full dotted path as written."""
    assert source.file is not None
    full = (*source.path, *sub)
    pos = source.file.position(full)
    return Problem(pos.file, pos.line, pos.column, ".".join(str(p) for p in full), message)


def _suggest(value: str, known: Iterable[str]) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(value, known, n=1)
    return f"did you mean '{close[0]}'?" if close else f"expected one of: {', '.join(known) or '(none)'}"


def _duplicates(items: list[Sourced[Any]], section: str) -> list[Problem]:
    seen: dict[str, Sourced[Any]] = {}
    problems = []
    for source in sorted(items, key=lambda s: (s.file.file, s.where()[1])):
        name = source.item.name
        if name in seen:
            first = seen[name]
            problems.append(
                _problem(
                    source,
                    ("name",),
                    f"duplicate name '{name}' (first defined at {first.file.file}:{first.where('name')[1]})",
                )
            )
        else:
            seen[name] = source
    return problems


def _variables_in(value: Any) -> Iterable[tuple[Path_, str]]:
    """``${name}`` references in strings of a values tree (for post-build substitution checks)."""
    if isinstance(value, dict):
        for key, child in value.items():
            for path, name in _variables_in(child):
                yield (key, *path), name
    elif isinstance(value, list):
        for index, child in enumerate(value):
            for path, name in _variables_in(child):
                yield (index, *path), name
    elif isinstance(value, str):
        for match in _VARIABLE.finditer(value):
            yield (), match.group(1)


def _unknown_variable(name: str) -> str:
    return (
        f"unknown variable '${{{name}}}'; Flux substitutes only {', '.join(substitution_variables())} "
        "(write $${...} for a literal '${...}')"
    )


def _check_layer(layer: Layer, components: set[str], apps: set[str], platform: dict[str, Any]) -> list[Problem]:
    problems = []
    for key in ("components", "apps"):
        known = components if key == "components" else apps
        for name in layer.data.get(key) or {}:
            if name not in known:
                problems.append(_problem(layer, (key, name), f"unknown {key[:-1]} '{name}'; {_suggest(name, known)}"))
        for name, settings in (layer.data.get(key) or {}).items():
            for path, variable in _variables_in((settings or {}).get("values", {})):
                if variable not in substitution_variables():
                    problems.append(_problem(layer, (key, name, "values", *path), _unknown_variable(variable)))
    from generator.inventory.compat import kubernetes_versions  # lazy: generator.inventory.compat imports this module

    version = layer.data.get("kubernetesVersion")
    if version is not None and version not in kubernetes_versions():
        problems.append(
            _problem(
                layer,
                ("kubernetesVersion",),
                f"unsupported Kubernetes version '{version}'; supported: {', '.join(kubernetes_versions())} "
                "(per cloud: generator/data/compat.yaml)",
            )
        )
    for index, group in enumerate(layer.data.get("nodeGroups") or []):
        if isinstance(group, dict) and not group.get("minSize", 0) <= group.get("desiredSize", 0) <= group.get(
            "maxSize", 0
        ):
            problems.append(
                _problem(
                    layer,
                    ("nodeGroups", index),
                    "sizes must satisfy minSize <= desiredSize <= maxSize",
                )
            )
    return problems


def check_names(inv: Inventory) -> list[Problem]:
    """Names are unique per section: every later entry of a name is flagged, pointing at the first, in the
    order (file path, line) — the same whatever order the filesystem lists files in. Runs before the other
    rules across entries, which look entries up by name (a copied cluster gives one message, not also an
    overlapping CIDR)."""
    problems: list[Problem] = []
    for section in LIST_SECTIONS:
        problems.extend(_duplicates(getattr(inv, section), section))
    return problems


def cross_check(inv: Inventory, *, today: datetime.date | None = None) -> list[Problem]:
    """Rules across items: names, references, regions, overlays, CIDRs, versions, variables, security."""
    problems: list[Problem] = []
    platform = platforms()
    fleet = inv.fleet.item
    envs = set(fleet.environments)
    component_names = {c.item.name for c in inv.components}
    app_names = {a.item.name for a in inv.apps}
    team_names = {t.item.name for t in inv.teams}
    cluster_names = {c.item.name for c in inv.clusters}

    for index, env in enumerate(fleet.environments):
        if env not in inv.overlays:
            problems.append(
                _problem(
                    inv.fleet,
                    ("environments", index),
                    f"environment '{env}' has no overlay file overlays/{env}.yaml",
                )
            )
    for env, layer in inv.overlays.items():
        if env not in envs:
            assert layer.file is not None
            problems.append(
                Problem(
                    layer.file.file,
                    1,
                    1,
                    "",
                    f"overlay for unknown environment '{env}'; add it to fleet.environments ({_suggest(env, envs)})",
                )
            )
    cloud_layers = [cloud_defaults_layer(inv, cloud) for cloud in platform["clouds"]]
    for layer in (defaults_layer(inv), *cloud_layers, *inv.overlays.values()):
        if layer.file is not None:
            problems.extend(_check_layer(layer, component_names, app_names, platform))

    hubs = [c for c in inv.clusters if c.item.role == "hub"]
    if inv.clusters and len(hubs) != 1:
        source = hubs[1] if hubs else inv.clusters[0]
        problems.append(
            _problem(
                source,
                ("role",),
                f"the fleet needs exactly one hub (management) cluster, found {len(hubs)}",
            )
        )
    networks: list[tuple[ipaddress.IPv4Network, Sourced[Cluster]]] = []
    for source in sorted(inv.clusters, key=lambda s: (s.file.file, s.where()[1])):
        cluster = source.item
        regions = platform["clouds"][cluster.cloud]["regions"]
        if cluster.region not in regions:
            problems.append(
                _problem(
                    source,
                    ("region",),
                    f"'{cluster.region}' is not a {cluster.cloud} region; {_suggest(cluster.region, regions)}",
                )
            )
        if cluster.environment not in envs:
            problems.append(
                _problem(
                    source,
                    ("environment",),
                    f"unknown environment '{cluster.environment}'; {_suggest(cluster.environment, envs)}",
                )
            )
        elif cluster.environment not in inv.overlays:
            problems.append(
                _problem(
                    source,
                    ("environment",),
                    f"environment '{cluster.environment}' has no overlay file overlays/{cluster.environment}.yaml",
                )
            )
        layer = Layer(
            f"cluster {cluster.name}",
            {
                k: v
                for k, v in source.raw.items()
                if k in Settings.model_fields or k in {f.alias for f in Settings.model_fields.values()}
            },
            source.file,
            source.path,
        )
        problems.extend(_check_layer(layer, component_names, app_names, platform))
        net = cluster.networking
        blocks = {"vpcCidr": net.vpc_cidr, "podCidr": net.pod_cidr, "serviceCidr": net.service_cidr}
        parsed = {k: ipaddress.IPv4Network(v) for k, v in blocks.items()}
        for a, b in (("vpcCidr", "podCidr"), ("vpcCidr", "serviceCidr"), ("podCidr", "serviceCidr")):
            if parsed[a].overlaps(parsed[b]):
                problems.append(
                    _problem(
                        source,
                        ("networking", b),
                        f"{blocks[b]} overlaps {a} {blocks[a]} of the same cluster",
                    )
                )
        networks.append((parsed["vpcCidr"], source))
    for other, source in overlapping_pairs(networks):  # reported on the later cluster (by name)
        problems.append(
            _problem(
                source,
                ("networking", "vpcCidr"),
                f"{source.item.networking.vpc_cidr} overlaps vpcCidr {other.item.networking.vpc_cidr} of cluster "
                f"'{other.item.name}' ({other.file.file}:{other.where('networking', 'vpcCidr')[1]})",
            )
        )

    for comp_source in inv.components:
        for index, dep in enumerate(comp_source.item.depends_on):
            if dep not in component_names:
                problems.append(
                    _problem(
                        comp_source,
                        ("dependsOn", index),
                        f"unknown component '{dep}'; {_suggest(dep, component_names)}",
                    )
                )
        for path, variable in _variables_in({"values": comp_source.item.values, "configs": comp_source.item.configs}):
            if variable not in substitution_variables():
                problems.append(_problem(comp_source, path, _unknown_variable(variable)))
        for index, obj in enumerate(comp_source.item.configs):
            if (
                not {"apiVersion", "kind", "metadata"} <= set(obj)
                or not isinstance(obj.get("metadata"), dict)
                or "name" not in obj["metadata"]
            ):
                problems.append(
                    _problem(
                        comp_source,
                        ("configs", index),
                        "each config must be a Kubernetes object with apiVersion, kind and metadata.name",
                    )
                )

    namespace_owner: dict[str, Sourced[App]] = {}
    for app_source in sorted(inv.apps, key=lambda s: (s.file.file, s.where()[1])):
        owner = namespace_owner.setdefault(app_source.item.target_namespace, app_source)
        if owner.item.team != app_source.item.team:
            problems.append(
                _problem(
                    app_source,
                    ("namespace",) if app_source.item.namespace else ("name",),
                    f"namespace '{app_source.item.target_namespace}' already belongs to team '{owner.item.team}' "
                    f"(app '{owner.item.name}'); a namespace has one owning team",
                )
            )
    for app_source in inv.apps:
        app = app_source.item
        if app.team not in team_names:
            problems.append(
                _problem(app_source, ("team",), f"unknown team '{app.team}'; {_suggest(app.team, team_names)}")
            )
        for index, env in enumerate(app.environments or []):
            if env not in envs:
                problems.append(
                    _problem(
                        app_source,
                        ("environments", index),
                        f"unknown environment '{env}'; {_suggest(env, envs)}",
                    )
                )
        for key in ("replicas", "autoscaling"):
            for env in getattr(app, key):
                if env not in envs:
                    problems.append(
                        _problem(app_source, (key, env), f"unknown environment '{env}'; {_suggest(env, envs)}")
                    )
        for index, name in enumerate(app.clusters or []):
            if name not in cluster_names:
                problems.append(
                    _problem(
                        app_source,
                        ("clusters", index),
                        f"unknown cluster '{name}'; {_suggest(name, cluster_names)}",
                    )
                )
        for index, dep in enumerate(app.depends_on):
            if dep not in app_names:
                problems.append(
                    _problem(
                        app_source,
                        ("dependsOn", index),
                        f"unknown app '{dep}'; {_suggest(dep, app_names)}",
                    )
                )
        for env, scaling in app.autoscaling.items():
            if scaling.min_replicas > scaling.max_replicas:
                problems.append(_problem(app_source, ("autoscaling", env), "minReplicas must not exceed maxReplicas"))
        for path, variable in _variables_in(app.values):
            if variable not in substitution_variables():
                problems.append(_problem(app_source, ("values", *path), _unknown_variable(variable)))
    problems.extend(_check_gateway(inv))
    problems.extend(_check_security(inv, today or datetime.date.today()))
    from generator.inventory.compat import check_compatibility  # lazy: generator.inventory.compat imports this module

    problems.extend(check_compatibility(inv, today or datetime.date.today()))
    from generator.inventory.crossplane_checks import (
        check_inventory,  # lazy: generator.render.crossplane imports this module
    )

    problems.extend(check_inventory(inv))
    return problems


# --- app hosts: the gateway component ------------------------------------------------------------------


def _check_gateway(inv: Inventory) -> list[Problem]:
    """At most one component declares ``gateway``; its configs hold that Gateway with that listener; an app
    with a ``host`` needs such a component."""
    problems: list[Problem] = []
    gateways = [c for c in inv.components if c.item.gateway is not None]
    for extra in gateways[1:]:
        first = gateways[0]
        problems.append(
            _problem(
                extra,
                ("gateway",),
                f"component '{first.item.name}' ({first.file.file}:{first.where('gateway')[1]}) already serves "
                "app hosts; only one component may declare gateway",
            )
        )
    for source in gateways:
        component, ref = source.item, source.item.gateway
        assert ref is not None
        found = [
            obj
            for obj in component.configs
            if str(obj.get("apiVersion", "")).startswith("gateway.networking.k8s.io/")
            and obj.get("kind") == "Gateway"
            and isinstance(obj.get("metadata"), dict)
            and obj["metadata"].get("name") == ref.name
            and obj["metadata"].get("namespace", component.namespace) == component.namespace
        ]
        listeners = [
            listener.get("name")
            for obj in found
            for listener in ((obj.get("spec") or {}).get("listeners") or [])
            if isinstance(listener, dict)
        ]
        if not found:
            problems.append(
                _problem(
                    source,
                    ("gateway", "name"),
                    f"no Gateway '{ref.name}' in namespace '{component.namespace}' among this component's configs",
                )
            )
        elif ref.listener not in listeners:
            problems.append(
                _problem(
                    source,
                    ("gateway", "listener"),
                    f"Gateway '{ref.name}' has no listener '{ref.listener}'; "
                    f"{_suggest(ref.listener, [str(n) for n in listeners])}",
                )
            )
    seen: dict[str, Sourced[App]] = {}
    for app_source in sorted(inv.apps, key=lambda s: (s.file.file, s.where()[1])):
        host = app_source.item.host
        if not host:
            continue
        other = seen.get(host)
        if other is not None and _may_share_a_cluster(other.item, app_source.item):
            problems.append(
                _problem(
                    app_source,
                    ("host",),
                    f"host '{host}' is already app '{other.item.name}'s ({other.file.file}:{other.where('host')[1]}) "
                    "on a cluster both run on; hosts are <host>.<cluster>.<domain>, so each must be unique there",
                )
            )
        seen.setdefault(host, app_source)
    if not gateways:
        for app_source in inv.apps:
            if app_source.item.host:
                problems.append(
                    _problem(
                        app_source,
                        ("host",),
                        "no component serves app hosts: declare `gateway: {name, listener}` on the component "
                        "that runs the Gateway (see README \"App hosts, TLS and DNS\")",
                    )
                )
    return problems


def _may_share_a_cluster(one: App, other: App) -> bool:
    """Whether two apps can run on one cluster (their environment and cluster lists overlap, or are open)."""
    def overlap(a: list[str] | None, b: list[str] | None) -> bool:
        return a is None or b is None or bool(set(a) & set(b))

    return overlap(one.environments, other.environments) and overlap(one.clusters, other.clusters)


# --- security: exceptions, policy settings, secrets --------------------------------------------------


def _layer_value(layers: Iterable[Layer], key: str, default: Any) -> Any:
    """The value of a top-level settings key after layering (last layer that sets it wins)."""
    value = default
    for layer in layers:
        if layer.file is not None and layer.data.get(key) is not None:
            value = layer.data[key]
    return value


def _check_security(inv: Inventory, today: datetime.date) -> list[Problem]:
    """Policy exceptions (owner, policies, expiry), policy settings, and the secrets backend of every cluster."""
    problems: list[Problem] = []
    fleet = inv.fleet.item
    security = fleet.security
    envs = set(fleet.environments)
    team_names = {t.item.name for t in inv.teams}
    policies = set(VALIDATING_POLICIES)
    for key, team in (("securityTeam", security.security_team), ("platformTeam", security.platform_team)):
        if team is not None and team not in team_names:
            problems.append(
                _problem(
                    inv.fleet,
                    ("security", key),
                    f"unknown team '{team}'; {_suggest(team, team_names)}",
                )
            )
    signing = security.image_signing
    if signing is not None and not (signing.registries or fleet.allowed_registries):
        problems.append(
            _problem(
                inv.fleet,
                ("security", "imageSigning"),
                "name the registries whose images must be signed (or set fleet.allowedRegistries)",
            )
        )

    for source in inv.exceptions:
        entry = source.item
        if entry.owner not in team_names:
            problems.append(
                _problem(
                    source,
                    ("owner",),
                    f"unknown team '{entry.owner}'; {_suggest(entry.owner, team_names)}",
                )
            )
        for index, policy in enumerate(entry.policies):
            if policy not in policies:
                problems.append(
                    _problem(
                        source,
                        ("policies", index),
                        f"unknown policy '{policy}'; {_suggest(policy, policies)}",
                    )
                )
        for index, env in enumerate(entry.environments or []):
            if env not in envs:
                problems.append(
                    _problem(
                        source,
                        ("environments", index),
                        f"unknown environment '{env}'; {_suggest(env, envs)}",
                    )
                )
        if entry.expires < today:
            problems.append(
                _problem(
                    source,
                    ("expires",),
                    f"exception '{entry.name}' (owner {entry.owner}) expired on {entry.expires.isoformat()} "
                    f"(today is {today.isoformat()}): renew it with a new date and reason, or remove it",
                )
            )

    for layer in (inv.defaults, *inv.overlays.values()):
        if layer.file is None:
            continue
        for name in (layer.data.get("policies") or {}).get("actions") or {}:
            if name not in ACTION_POLICIES:
                problems.append(
                    _problem(
                        layer,
                        ("policies", "actions", name),
                        f"unknown policy '{name}'; {_suggest(name, ACTION_POLICIES)}",
                    )
                )

    backend = security.secrets
    for cluster_source in inv.clusters:
        cluster = cluster_source.item
        if "policies" in cluster_source.raw:
            problems.append(
                _problem(
                    cluster_source,
                    ("policies",),
                    "policies are set per environment (inventory defaults or overlays/<env>.yaml), not per cluster",
                )
            )
        if backend is None:
            continue
        chosen = _layer_value(settings_layers(inv, cluster_source), "secretsBackend", "cloud")
        provider = cluster.cloud if chosen == "cloud" else "vault"
        if getattr(backend, provider) is None:
            problems.append(
                _problem(
                    cluster_source,
                    ("secretsBackend",) if "secretsBackend" in cluster_source.raw else ("cloud",),
                    f"cluster '{cluster.name}' reads secrets from {provider}, but fleet.security.secrets.{provider} "
                    "is not configured",
                )
            )

    for app_source in inv.apps:
        app = app_source.item
        seen: set[str] = set()
        for index, secret in enumerate(app.secrets):
            if backend is None:
                problems.append(
                    _problem(
                        app_source,
                        ("secrets", index),
                        "apps declare secrets, but no secrets backend is configured (fleet.security.secrets)",
                    )
                )
                break
            if secret.name in seen:
                problems.append(
                    _problem(
                        app_source,
                        ("secrets", index, "name"),
                        f"duplicate secret name '{secret.name}'",
                    )
                )
            seen.add(secret.name)
    return problems
