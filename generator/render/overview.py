"""Overview: the fleet as people read it — ``FLEET.md`` (Markdown + Mermaid) and ``fleetgen overview --html``.

Plan stage only (no I/O): ``fleet_markdown`` returns the text ``fleetgen render`` writes to ``OUT/FLEET.md``.
``fleet_html`` needs an SVG of the topology, which ``render_svg`` makes with Graphviz ``dot`` (through the one
``Command`` wrapper) at build time, so the page needs no network and no JavaScript when viewed.

Every inventory string reaches the output through one escaping function per format: ``markdown_text``
(backslash-escapes ASCII punctuation, CommonMark §2.4), ``mermaid_label`` (a quoted label whose unsafe
characters are Mermaid entity codes ``#NNN;``), ``dot_string`` (a DOT quoted string) and Jinja's HTML
autoescape. Node and subgraph identifiers are generated (``n0``, ``g0``), never taken from the inventory.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from generator.command import Command
from generator.errors import ToolError
from generator.inventory.compat import kubernetes_support
from generator.inventory.entries import Sourced
from generator.inventory.models import VALIDATING_POLICIES, App, Cluster, Component, HubAccess, Settings
from generator.inventory.resolve import IDENTITY_FIELDS, ResolvedCluster, ResolvedFleet, cluster_layer
from generator.render.planner import template_environment

if TYPE_CHECKING:
    from generator.render.memo import PlannerMemo

FLEET_FILE = "FLEET.md"
NOT_INSTALLED = "—"

# --- reachability and support dates ------------------------------------------------------------------------


def reachability(cluster: ResolvedCluster, hub: HubAccess | None) -> str:
    """How the hub reaches this cluster's API server and signs in, as the inventory checks enforce it
    (generator/inventory/crossplane_checks.py): a public endpoint admits only ``fleet.crossplane.hub.egressCidrs``; a
    private one is reached through the VPC peering the AWS composition creates with the hub's network. EKS
    spokes are signed in to with Flux's workload identity when ``hub.fluxRoleArn`` is set, GKE/AKS spokes with
    ``hub.fluxGcp``/``fluxAzure`` (required for them), others with the kubeconfig Secret their composition writes
    (generator/render/crossplane/bootstrap.py, hub_identity.py)."""
    cloud = cluster.cluster.cloud
    path = "VPC peering, private endpoint" if cluster.cluster.networking.private_endpoint else "public endpoint"
    if hub is not None and not cluster.cluster.networking.private_endpoint and hub.egress_cidrs:
        path += ", hub egress only"
    identity = {"aws": hub.flux_role_arn, "gcp": hub.flux_gcp, "azure": hub.flux_azure}[cloud] if hub else None
    sign_in = "workload identity" if identity else "kubeconfig"
    return f"{path} / {sign_in}"


def support_dates(cloud: str, version: str) -> tuple[datetime.date | None, datetime.date | None]:
    """End of standard and of extended support of Kubernetes ``version`` on ``cloud`` (None: not known).

    From the compatibility matrix (generator/data/compat.yaml, sources cited there), the same data the
    inventory checks use.
    """
    entry = kubernetes_support(cloud).get(version)
    return (entry.end_of_standard, entry.end_of_extended) if entry else (None, None)


def _approximate(cloud: str, version: str) -> tuple[str, ...]:
    entry = kubernetes_support(cloud).get(version)
    return entry.approximate if entry else ()


def support_status(cloud: str, version: str) -> str:
    """Support dates as words, e.g. ``standard support ends 2027-03-27`` (never compared with today)."""
    standard, extended = support_dates(cloud, version)
    parts = []
    if standard:
        parts.append(f"standard support ends {standard.isoformat()}")
    if extended:
        about = "about " if "endOfExtendedSupport" in _approximate(cloud, version) else ""
        parts.append(f"extended support ends {about}{extended.isoformat()}")
    return "; ".join(parts) or f"no support dates known for {cloud} {version}"


# --- escaping ---------------------------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = set("\\`*_[]{}<>()#+!|~$&")
#: ``markdown_text`` as one translation: line breaks and tabs → space, each special character backslash-escaped
_MARKDOWN_TEXT = str.maketrans({**{c: " " for c in "\r\n\t"}, **{c: "\\" + c for c in _MARKDOWN_SPECIAL}})
#: characters ``markdown_code`` changes or fences around
_CODE_SPECIAL = re.compile(r"[\r\n\t|`]")
_MERMAID_UNSAFE = re.compile(r"[^A-Za-z0-9 .,:/()@+=_-]")


def markdown_text(value: object) -> str:
    """Inline Markdown showing ``value`` literally: every ASCII punctuation mark that can start inline markup,
    a link, HTML, an entity, math or a table cell is backslash-escaped (CommonMark allows it for any ASCII
    punctuation); line breaks become spaces. For inline positions (table cells, after a heading mark, inside a
    sentence): the templates never start a line with an inventory string. Names like ``prod-us-east-1`` and
    versions like ``2.9.4`` stay readable."""
    return str(value).translate(_MARKDOWN_TEXT)


def markdown_code(value: object) -> str:
    """A Markdown code span showing ``value`` literally, also inside a GFM table cell (``|`` escaped)."""
    text = str(value)
    if text.strip() and not _CODE_SPECIAL.search(text):
        return f"`{text}`"  # what the general case below makes of it, sooner (positions, keys, values)
    text = re.sub(r"[\r\n\t]", " ", text).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def mermaid_escape(value: object) -> str:
    """Text for inside a quoted Mermaid label: every character outside a small safe set becomes the entity
    code ``#NNN;`` (Mermaid decodes ``#<decimal>;``), so quotes, brackets, pipes, backticks, ``<`` and line
    breaks can neither end the label nor become HTML."""
    return _MERMAID_UNSAFE.sub(lambda unsafe: f"#{ord(unsafe.group())};", str(value))


def mermaid_label(*lines: object) -> Markup:
    """A quoted Mermaid label of one or more escaped lines."""
    return Markup('"' + "<br/>".join(mermaid_escape(line) for line in lines) + '"')


def dot_string(*lines: object) -> Markup:
    """A quoted DOT string of one or more lines (backslashes and quotes escaped, so no DOT escape survives)."""
    escaped = [str(line).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") for line in lines]
    return Markup('"' + "\\n".join(escaped) + '"')


# --- the overview as data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Code:
    """A table cell shown in monospace (keys, values, file:line)."""

    text: str


Cell = str | Code


@dataclass(frozen=True)
class Table:
    """A table with a caption; ``empty`` is said instead when it has no rows."""

    caption: str
    headers: tuple[str, ...]
    rows: list[tuple[Cell, ...]]
    empty: str = "None."
    #: the rows as Markdown already (``markdown_row``; FLEET.md from the planner memo), instead of ``rows``
    lines: list[str] | None = None


@dataclass(frozen=True)
class Section:
    """A titled part of the overview: paragraphs, then tables."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


@dataclass(frozen=True)
class Node:
    """A cluster in the topology diagram."""

    id: str
    name: str
    role: str
    environment: str
    kubernetes: str
    #: the Mermaid label already (``node_label``; FLEET.md from the planner memo)
    label: Markup | None = None


@dataclass(frozen=True)
class Group:
    """A subgraph: a cloud holding regions, or a region holding clusters."""

    id: str
    label: str
    groups: list[Group] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)


@dataclass(frozen=True)
class Edge:
    """Hub → spoke, labelled with the reachability path."""

    source: str
    target: str
    #: the reachability path (or, from the planner memo, its Mermaid label already: ``Markup``)
    label: str


@dataclass(frozen=True)
class Topology:
    """Clusters grouped by cloud and region, and the hub's edges to its spokes."""

    clouds: list[Group]
    edges: list[Edge]
    hubs: list[str]


@dataclass(frozen=True)
class Overview:
    """Everything FLEET.md and the HTML page show, as plain data (format-independent)."""

    title: str
    summary: str
    topology: Topology
    sections: list[Section]


def ordered_clusters(fleet: ResolvedFleet) -> list[ResolvedCluster]:
    """Hubs first, then by environment (in the fleet's promotion order) and name: independent of file order."""
    order = {name: index for index, name in enumerate(fleet.fleet.environments)}
    return sorted(
        fleet.clusters, key=lambda c: (c.cluster.role != "hub", order.get(c.cluster.environment, 99), c.name)
    )


def node_label(node: Node) -> Markup:
    """A cluster's label in the topology diagram: its name, then (hub ·) environment and Kubernetes version."""
    return mermaid_label(node.name, ("hub · " if node.role == "hub" else "") + f"{node.environment} · Kubernetes "
                         + str(node.kubernetes))


def topology(fleet: ResolvedFleet, labels: dict[str, tuple[Markup, Markup]] | None = None,
             ordered: list[ResolvedCluster] | None = None) -> Topology:
    """Clusters grouped by cloud, then region; an edge from every hub to every workload cluster (``labels``: each
    cluster's node label and edge label in Mermaid already, from ``cluster_fragments``; ``ordered``:
    ``ordered_clusters``)."""
    clusters = ordered if ordered is not None else ordered_clusters(fleet)
    ids = {c.name: f"n{i}" for i, c in enumerate(clusters)}
    by_region: dict[str, dict[str, list[Node]]] = {}  # cloud → region → nodes, in cluster order
    for c in clusters:
        by_region.setdefault(c.cluster.cloud, {}).setdefault(c.cluster.region, []).append(
            Node(ids[c.name], c.name, c.cluster.role, c.cluster.environment, c.settings.kubernetes_version,
                 labels[c.name][0] if labels is not None else None))
    clouds: list[Group] = []
    for ci, cloud in enumerate(sorted(by_region)):
        regions = [Group(f"g{ci}r{ri}", region, nodes=by_region[cloud][region])
                   for ri, region in enumerate(sorted(by_region[cloud]))]
        clouds.append(Group(f"g{ci}", cloud, groups=regions))
    hubs = [c for c in clusters if c.cluster.role == "hub"]
    access = fleet.fleet.crossplane.hub if fleet.fleet.crossplane is not None else None
    edges = [
        Edge(ids[hub.name], ids[spoke.name],
             labels[spoke.name][1] if labels is not None else reachability(spoke, access))
        for hub in hubs
        for spoke in clusters
        if spoke.cluster.role != "hub"
    ]
    return Topology(clouds, edges, [ids[h.name] for h in hubs])


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted leaves of a map, as resolve's provenance names them (lists and empty maps are leaves)."""
    if isinstance(value, dict) and (value or not prefix):
        out: dict[str, Any] = {}
        for key, child in value.items():
            out.update(_flatten(child, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))


class _DriftInputs:
    """What every cluster's drift rows read, indexed once per overview (not scanned or dumped per cluster)."""

    def __init__(self, fleet: ResolvedFleet) -> None:
        self.sources: dict[str, Sourced[Cluster]] = {s.item.name: s for s in fleet.inventory.clusters}
        self._environments = {env.name: env for env in fleet.environments}
        self._leaves: dict[str, dict[str, Any]] = {}

    @classmethod
    def of(cls, fleet: ResolvedFleet) -> _DriftInputs:
        """The indexes of ``fleet``."""
        return cls(fleet)

    def environment_leaves(self, name: str) -> dict[str, Any]:
        """Environment ``name``'s settings as dotted leaves (``_flatten``), dumped on first use."""
        leaves = self._leaves.get(name)
        if leaves is None:
            settings = self._environments[name].settings
            leaves = self._leaves[name] = _flatten(settings.model_dump(by_alias=True, mode="json"))
        return leaves


def _settings_leaves(settings: Settings, top_level: Iterable[str]) -> dict[str, Any]:
    """``_flatten`` of the settings' dump, restricted to the settings named ``top_level`` (aliases, which hold no
    dot, so their leaves are exactly the flattened names starting with ``<alias>.``)."""
    fields = {info.alias or name: name for name, info in Settings.model_fields.items()}
    include = {fields[key] for key in top_level if key in fields}
    if not include:
        return {}
    return _flatten(settings.model_dump(by_alias=True, mode="json", include=include))


def _written_leaves(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """The settings leaves written on a cluster entry (its cluster layer's ``data``), by dotted name."""
    return [(key, written) for key, written in sorted(_flatten(data).items())
            if key.split(".")[0] not in IDENTITY_FIELDS]


def _where(cluster: ResolvedCluster, source: Sourced[Cluster], key: str) -> str:
    """The file:line that sets the dotted setting ``key`` written on the cluster entry."""
    return cluster.provenance.get(key) or str(source.file.position((*source.path, *key.split("."))))


def _written_paths(data: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, tuple[tuple[str, ...], Any]]:
    """``_flatten`` of ``data`` with each leaf's key path as written (a key may hold a dot) and its value."""
    out: dict[str, tuple[tuple[str, ...], Any]] = {}
    for key, child in data.items():
        full = (*path, str(key))
        if isinstance(child, dict) and child:
            out.update(_written_paths(child, full))
        else:
            out[".".join(full)] = (full, child)
    return out


def override_positions(cluster: ResolvedCluster, source: Sourced[Cluster]) -> list[str]:
    """The file:line of each setting written on the cluster entry, in the order of its override rows (the last
    cell of each, filled in when FLEET.md is assembled from memoized rows: a line inserted above the entry moves
    them all, its written values stay the same).

    Equal to ``_where`` for each (tests/test_overview.py), without building the cluster's whole provenance: the
    cluster's own layer is its top one, so a leaf it writes (not null) has resolve's provenance of exactly its
    position in the entry (``resolve._layer_provenance``)."""
    written = _written_paths(cluster_layer(source).data)
    positions = []
    for key, _ in _written_leaves(cluster_layer(source).data):
        full, value = written[key]
        positions.append(str(source.file.position((*source.path, *full))) if value is not None
                         else _where(cluster, source, key))
    return positions


def enabled_positions(source: Sourced[Cluster]) -> list[str]:
    """The file:line of each ``enabled`` written on the cluster entry's components and apps (shown in its
    membership rows: in the key of its memoized fragments)."""
    found = []
    for section in ("components", "apps"):
        for name, entry in (source.raw.get(section) or {}).items():
            if isinstance(entry, dict) and "enabled" in entry:
                found.append(str(source.file.position((*source.path, section, name, "enabled"))))
    return found


def override_rows(cluster: ResolvedCluster, source: Sourced[Cluster],
                  environment_leaves: dict[str, Any]) -> list[tuple[Cell, ...]]:
    """Settings written on the cluster entry: key, the cluster's value, its environment's value, file:line
    (``environment_leaves``: the environment's settings as ``_flatten`` names them)."""
    layer = cluster_layer(source)
    written_leaves = _written_leaves(layer.data)
    if not written_leaves:
        return []
    mine = _settings_leaves(cluster.settings, layer.data)
    rows: list[tuple[Cell, ...]] = []
    for key, written in written_leaves:
        where = _where(cluster, source, key)
        value = "(removed)" if written is None else _json(mine.get(key, written))
        environment = _json(environment_leaves[key]) if key in environment_leaves else "(not set)"
        rows.append((cluster.name, Code(key), Code(value), Code(environment), Code(where)))
    return rows


def membership_rows(fleet: ResolvedFleet, cluster: ResolvedCluster, source: Sourced[Cluster],
                    app_sources: dict[str, Sourced[App]]) -> list[tuple[Cell, ...]]:
    """Components and apps the cluster runs that its environment does not, and the reverse, with the reason."""
    env = cluster.environment
    rows: list[tuple[Cell, ...]] = []

    def why(section: str, name: str, fallback: str) -> Cell:
        entry = (source.raw.get(section) or {}).get(name) or {}
        if "enabled" in entry:
            where = source.file.position((*source.path, section, name, "enabled"))
            return Code(f"enabled: {_json(entry['enabled'])} at {where}")
        return fallback

    mine = {c.name: c for c in cluster.components}
    theirs = {c.name: c for c in env.components}
    for component in fleet.components:
        name = component.name
        roles = ", ".join(component.roles)
        if name in mine and name not in theirs:
            rows.append((cluster.name, "component", name, "adds", why("components", name, f"roles: {roles}")))
        elif name in theirs and name not in mine:
            fallback = f"roles: {roles} (this cluster: {cluster.cluster.role})"
            rows.append((cluster.name, "component", name, "turns off", why("components", name, fallback)))
    my_apps = {a.name for a in cluster.apps}
    env_apps = {a.name for a in env.apps}
    for app in sorted(fleet.apps, key=lambda a: a.name):
        app_source = app_sources[app.name]
        if app.name in my_apps and app.name not in env_apps:
            listed = f"listed in clusters at {app_source.file.position((*app_source.path, 'clusters'))}"
            rows.append((cluster.name, "app", app.name, "adds", why("apps", app.name, listed)))
        elif app.name in env_apps and app.name not in my_apps:
            fallback = f"apps run on workload clusters only (this cluster: {cluster.cluster.role})"
            rows.append((cluster.name, "app", app.name, "turns off", why("apps", app.name, fallback)))
    return rows


def component_header(component: Component) -> str:
    """A component's column in the version matrix: its name, and its chart's when that differs."""
    name, chart = component.name, component.chart.name
    return name if name == chart else f"{name} ({chart})"


VERSIONS = "Versions per cluster (chart versions; — = not installed)"


def _version_headers(fleet: ResolvedFleet) -> tuple[str, ...]:
    return ("Cluster", "Cloud", "Region", "Environment", "Kubernetes", "Support", "Flux",
            *(component_header(c) for c in fleet.components))


def _version_row(fleet: ResolvedFleet, cluster: ResolvedCluster, support: dict[tuple[str, str], str]
                 ) -> tuple[Cell, ...]:
    """A cluster's row of the version matrix (``support``: the words of each (cloud, version) so far)."""
    running = {c.name for c in cluster.components}
    version = cluster.settings.kubernetes_version
    if (cluster.cluster.cloud, version) not in support:
        support[(cluster.cluster.cloud, version)] = support_status(cluster.cluster.cloud, version)
    return (
        cluster.name,
        cluster.cluster.cloud,
        cluster.cluster.region,
        cluster.cluster.environment + (" (hub)" if cluster.cluster.role == "hub" else ""),
        version,
        support[(cluster.cluster.cloud, version)],
        fleet.fleet.flux.version,
        *(c.chart.version if c.name in running else NOT_INSTALLED for c in fleet.components),
    )


def _version_matrix(fleet: ResolvedFleet, clusters: list[ResolvedCluster]) -> Table:
    support: dict[tuple[str, str], str] = {}  # by (cloud, version): the same words for many clusters
    return Table(VERSIONS, _version_headers(fleet), [_version_row(fleet, c, support) for c in clusters])


def _policy_section(fleet: ResolvedFleet) -> Section:
    from generator.render.policies import policy_action, validating_policies

    if not any(c.chart.name == "kyverno" for c in fleet.components):
        return Section("Policy posture", ["No policy engine: the fleet installs no kyverno component."])
    names = validating_policies(fleet)
    if fleet.fleet.security.image_signing is not None:
        names.append("verify-image-signatures")
    envs = list(fleet.environments)
    rows: list[tuple[Cell, ...]] = [
        (name, *(policy_action(env.settings, name) for env in envs)) for name in names
    ]
    actions = Table("validationAction per environment (Deny rejects, Audit reports)",
                    ("Policy", *(env.name for env in envs)), rows)
    exceptions: list[tuple[Cell, ...]] = []
    for source in sorted(fleet.inventory.exceptions, key=lambda s: s.item.name):
        entry = source.item
        exceptions.append((
            entry.name,
            ", ".join(entry.policies),
            ", ".join(entry.namespaces) + (f" (names: {', '.join(entry.names)})" if entry.names else ""),
            ", ".join(entry.environments) if entry.environments is not None else "all",
            entry.owner,
            entry.expires.isoformat(),
            entry.reason,
            Code(str(source.file.position(source.path))),
        ))
    exception_table = Table("Policy exceptions", ("Exception", "Policies", "Namespaces", "Environments", "Owner",
                                                  "Expires", "Reason", "Set at"), exceptions,
                            "No policy exceptions.")
    unknown = sorted({p for s in fleet.inventory.exceptions for p in s.item.policies} - set(VALIDATING_POLICIES)
                     - {"verify-image-signatures"})
    paragraphs = [f"Exceptions name policies that are not rendered: {', '.join(unknown)}."] if unknown else []
    return Section("Policy posture", paragraphs, [actions, exception_table])


def codeowners_paths(text: str) -> list[tuple[str, list[str]]]:
    """``(pattern, owners)`` per line of a CODEOWNERS file."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if parts and not parts[0].startswith("#"):
            rows.append((parts[0], parts[1:]))
    return rows


def _teams_section(fleet: ResolvedFleet, codeowners: str, teams: dict[str, set[str]] | None = None,
                   ordered: list[ResolvedCluster] | None = None) -> Section:
    """The teams table (``teams``: each cluster's teams, when known already; ``ordered``: ``ordered_clusters``)."""
    owned = codeowners_paths(codeowners)
    clusters = ordered if ordered is not None else ordered_clusters(fleet)
    rows: list[tuple[Cell, ...]] = []
    for team in sorted(fleet.teams, key=lambda t: t.name):
        apps = sorted((a for a in fleet.apps if a.team == team.name), key=lambda a: a.name)
        namespaces = sorted({a.target_namespace for a in apps})
        on = [c.name for c in clusters if team.name in (teams[c.name] if teams is not None else c.teams)]
        paths = [pattern for pattern, owners in owned if set(team.codeowners) & set(owners)]
        rows.append((
            team.name,
            ", ".join(a.name for a in apps) or NOT_INSTALLED,
            ", ".join(namespaces) or NOT_INSTALLED,
            ", ".join(on) or NOT_INSTALLED,
            Code(" ".join(paths)) if paths else NOT_INSTALLED,
        ))
    return Section("Teams", [], [Table("Teams, where their apps run, and what they review",
                                       ("Team", "Apps", "Namespaces", "Clusters", "CODEOWNERS paths"), rows)])


def overview(fleet: ResolvedFleet, codeowners: str, memo: PlannerMemo | None = None) -> Overview:
    """The overview of a resolved fleet (``codeowners``: the rendered CODEOWNERS text). With ``memo``
    (generator/render/memo.py) each cluster's rows and diagram labels are Markdown and Mermaid already
    (``Table.lines``, ``Node.label``, ``Edge.label``: for FLEET.md only), read from it where their inputs did not
    change."""
    clusters = ordered_clusters(fleet)
    clouds = sorted({c.cluster.cloud for c in clusters})
    hubs = [c.name for c in clusters if c.cluster.role == "hub"]
    summary = (
        f"{len(clusters)} clusters on {', '.join(clouds) or 'no cloud'}; environments "
        f"{', '.join(fleet.fleet.environments)}; hub {', '.join(hubs) or 'none'}; Flux {fleet.fleet.flux.version}; "
        f"{len(fleet.components)} platform components, {len(fleet.apps)} apps, {len(fleet.teams)} teams."
    )
    drift_inputs = _DriftInputs.of(fleet)
    app_sources = {s.item.name: s for s in fleet.inventory.apps}
    if memo is not None:
        return _memoized_overview(fleet, codeowners, memo, clusters, summary, drift_inputs, app_sources)
    overrides = [row for c in clusters for row in override_rows(
        c, drift_inputs.sources[c.name], drift_inputs.environment_leaves(c.environment.name))]
    membership = [row for c in clusters
                  for row in membership_rows(fleet, c, drift_inputs.sources[c.name], app_sources)]
    drifting = {str(row[0]) for row in (*overrides, *membership)}
    same = [c.name for c in clusters if c.name not in drifting]
    sections = [
        _versions_section(_version_matrix(fleet, clusters)),
        _drift_section(same, overrides, membership),
        _policy_section(fleet),
        _teams_section(fleet, codeowners),
    ]
    return Overview(f"Fleet overview: {fleet.fleet.organization}", summary, topology(fleet), sections)


def _versions_section(matrix: Table) -> Section:
    return Section("Versions", ["Chart versions are pinned fleet-wide in inventory/components.yaml; support dates are "
                                "the cloud's published calendar for the cluster's Kubernetes minor."], [matrix])


def _drift_section(same: list[str], overrides: list[tuple[Cell, ...]], membership: list[tuple[Cell, ...]],
                   lines: tuple[list[str], list[str]] | None = None) -> Section:
    """The drift section (``lines``: the two tables' rows as Markdown already)."""
    return Section(
        "Drift from the environment",
        [
            "What each cluster sets itself instead of taking it from its environment (overlays/<env>.yaml over "
            "the inventory defaults), with the file:line that sets it."
            + (f" Clusters without drift: {', '.join(same)}." if same else "")
        ],
        [
            Table("Settings a cluster overrides", ("Cluster", "Setting", "Value", "Environment's value", "Set at"),
                  overrides, "No cluster overrides a setting.", lines[0] if lines else None),
            Table("Components and apps a cluster adds or turns off", ("Cluster", "Kind", "Name", "Change", "Why"),
                  membership, "Every cluster runs exactly its environment's components and apps.",
                  lines[1] if lines else None),
        ],
    )


def cluster_fragments(fleet: ResolvedFleet, cluster: ResolvedCluster, source: Sourced[Cluster],
                      environment_leaves: dict[str, Any], app_sources: dict[str, Sourced[App]],
                      support: dict[tuple[str, str], str] | None = None) -> dict[str, str]:
    """What FLEET.md shows of one cluster, as finished text: its row of the version matrix, its override rows
    without their last cell (``override <i>``: the position, ``override_positions``), its membership rows, its
    label in the topology and the label of the hub's edge to it, and the teams with apps on it. A function of the
    cluster, the fleet-level inventory and the positions ``enabled_positions`` lists (and the apps' ``clusters``
    lines: ``app_sources``; ``support``: the support words of each (cloud, version) so far)."""
    access = fleet.fleet.crossplane.hub if fleet.fleet.crossplane is not None else None
    node = Node("", cluster.name, cluster.cluster.role, cluster.cluster.environment,
                cluster.settings.kubernetes_version)
    fragments = {
        "version": markdown_row(_version_row(fleet, cluster, {} if support is None else support)),
        "membership": "".join(markdown_row(row) for row in membership_rows(fleet, cluster, source, app_sources)),
        "node": str(node_label(node)),
        "edge": str(mermaid_label(reachability(cluster, access))),
        "teams": "\n".join(cluster.teams),
    }
    for index, row in enumerate(override_rows(cluster, source, environment_leaves)):
        fragments[f"override {index}"] = markdown_row(row[:-1]).removesuffix("\n")
    return fragments


def _memoized_overview(fleet: ResolvedFleet, codeowners: str, memo: PlannerMemo, clusters: list[ResolvedCluster],
                       summary: str, drift_inputs: _DriftInputs, app_sources: dict[str, Sourced[App]]) -> Overview:
    """``overview`` from each cluster's ``cluster_fragments``, through ``memo``."""
    # where each app lists its clusters (membership rows show it): one digest, in every cluster's key
    listed = hashlib.sha256(json.dumps([str(s.file.position((*s.path, "clusters")))
                                        for s in fleet.inventory.apps]).encode()).digest()
    fragments: dict[str, dict[str, str]] = {}
    support: dict[tuple[str, str], str] = {}  # by (cloud, version): package data, the same for many clusters
    for cluster in clusters:
        source = drift_inputs.sources[cluster.name]

        def part(cluster: ResolvedCluster = cluster, source: Sourced[Cluster] = source) -> dict[str, str]:
            leaves = drift_inputs.environment_leaves(cluster.environment.name)
            return cluster_fragments(fleet, cluster, source, leaves, app_sources, support)

        fragments[cluster.name] = memo.cluster_part("overview", fleet, cluster, part, enabled_positions(source),
                                                    listed)
    overrides: list[str] = []
    drifting: set[str] = set()
    for cluster in clusters:
        positions = override_positions(cluster, drift_inputs.sources[cluster.name])
        if positions:  # as many as the rows (both follow the settings written on the entry)
            known = fragments[cluster.name]
            overrides += [f"{known[f'override {i}']} {markdown_cell(Code(where))} |\n"
                          for i, where in enumerate(positions)]
            drifting.add(cluster.name)
    membership = [fragments[c.name]["membership"] for c in clusters if fragments[c.name]["membership"]]
    drifting.update(c.name for c in clusters if fragments[c.name]["membership"])
    same = [c.name for c in clusters if c.name not in drifting]
    teams = {c.name: set(fragments[c.name]["teams"].split("\n")) for c in clusters}
    matrix = Table(VERSIONS, _version_headers(fleet), [], lines=[fragments[c.name]["version"] for c in clusters])
    sections = [
        _versions_section(matrix),
        _drift_section(same, [], [], (overrides, membership)),
        _policy_section(fleet),
        _teams_section(fleet, codeowners, teams, clusters),
    ]
    labels = {name: (Markup(f["node"]), Markup(f["edge"])) for name, f in fragments.items()}
    return Overview(f"Fleet overview: {fleet.fleet.organization}", summary, topology(fleet, labels, clusters),
                    sections)


# --- formats --------------------------------------------------------------------------------------------------


def _markdown_finalize(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined):
        return value
    if isinstance(value, Markup):
        return str(value)
    if isinstance(value, Code):
        return markdown_code(value.text)
    return markdown_text(value)


def _mermaid_finalize(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined | Markup):
        return value
    return mermaid_label(value)


def _dot_finalize(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined | Markup):
        return value
    return dot_string(value)


@functools.cache
def _environment(finalize: Any, autoescape: bool = False) -> jinja2.Environment:
    """One environment per output format (built once: templates are compiled once per process)."""
    env = template_environment(finalize, autoescape=autoescape)
    env.filters["label"] = lambda *lines: mermaid_label(*lines)
    env.filters["dot"] = lambda *lines: dot_string(*lines)
    env.filters["id"] = lambda value: Markup(re.sub(r"[^A-Za-z0-9_]", "_", str(value)))
    env.tests["code"] = lambda value: isinstance(value, Code)
    env.filters["markdown_rows"] = markdown_rows
    env.filters["mermaid_nodes"] = mermaid_nodes
    env.filters["mermaid_edges"] = mermaid_edges
    return env


def markdown_cell(value: Cell) -> str:
    """A table cell as FLEET.md shows it (what ``_markdown_finalize`` makes of it)."""
    if isinstance(value, Markup):
        return str(value)
    if isinstance(value, Code):
        return markdown_code(value.text)
    return markdown_text(value)


def markdown_row(row: tuple[Cell, ...]) -> str:
    """One row of a Markdown table, with its line break."""
    return "|" + "".join(f" {markdown_cell(cell)} |" for cell in row) + "\n"


def markdown_rows(table: Table) -> Markup:
    """A table's rows in FLEET.md (``table.lines`` when given), without the last line break (the template's)."""
    lines = table.lines if table.lines is not None else [markdown_row(row) for row in table.rows]
    return Markup("".join(lines).removesuffix("\n"))


def _mermaid_id(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", value)


def mermaid_nodes(nodes: list[Node]) -> Markup:
    """A region's clusters in the Mermaid flowchart, one line each (without the last line break)."""
    return Markup("\n".join(f"      {_mermaid_id(node.id)}[{node.label or node_label(node)}]" for node in nodes))


def mermaid_edges(edges: list[Edge]) -> Markup:
    """The hub → spoke edges of the Mermaid flowchart, one line each (without the last line break)."""
    return Markup("\n".join(
        f"  {_mermaid_id(edge.source)} -->|"
        f"{edge.label if isinstance(edge.label, Markup) else mermaid_label(edge.label)}| {_mermaid_id(edge.target)}"
        for edge in edges))


def topology_mermaid(topo: Topology) -> str:
    """The topology as a Mermaid flowchart (without the code fence)."""
    return _environment(_mermaid_finalize).get_template("overview/topology.mmd.j2").render(topology=topo)


def fleet_markdown(fleet: ResolvedFleet, codeowners: str, memo: PlannerMemo | None = None) -> str:
    """The text of FLEET.md (each cluster's part through ``memo`` when given)."""
    view = overview(fleet, codeowners, memo)
    env = _environment(_markdown_finalize)
    return env.get_template("overview/FLEET.md.j2").render(
        overview=view, mermaid=Markup(topology_mermaid(view.topology))
    )


def topology_dot(topo: Topology) -> str:
    """The topology as a Graphviz digraph."""
    return _environment(_dot_finalize).get_template("overview/topology.dot.j2").render(topology=topo)


def render_svg(dot_source: str, dot: Command | None = None) -> str:
    """SVG of a DOT graph, made by Graphviz ``dot`` (the XML prolog and DOCTYPE removed, for inlining)."""
    command = dot or Command(("dot",))
    try:
        svg = command.run("-Tsvg", stdin=dot_source, timeout=120)
    except ToolError as exc:
        if "not found" in str(exc):
            raise ToolError(
                f"{exc}. `fleetgen overview --html` draws the topology with Graphviz: install it "
                "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz)"
            ) from exc
        raise
    start = svg.find("<svg")
    if start < 0:
        raise ToolError(f"dot -Tsvg printed no <svg> element:\n{svg[:500]}")
    return svg[start:]


def fleet_html(fleet: ResolvedFleet, codeowners: str, svg: str) -> str:
    """One self-contained HTML page: the overview with the topology as inline SVG (no scripts, no links)."""
    view = overview(fleet, codeowners)
    env = _environment(None, autoescape=True)
    return env.get_template("overview/fleet.html.j2").render(overview=view, svg=Markup(svg))


def html_page(fleet: ResolvedFleet, codeowners: str, dot: Command | None = None) -> str:
    """The HTML page, with the SVG drawn by Graphviz now."""
    return fleet_html(fleet, codeowners, render_svg(topology_dot(topology(fleet)), dot))


# --- blast radius (fleetgen diff --format markdown) -----------------------------------------------------------


@dataclass(frozen=True)
class ClusterFacts:
    """What the blast-radius diagram shows of a cluster."""

    name: str
    environment: str
    role: str


def cluster_facts(fleets: Iterable[ResolvedFleet]) -> dict[str, ClusterFacts]:
    """Facts of every cluster of the given fleets (later fleets win: pass base, then head)."""
    facts: dict[str, ClusterFacts] = {}
    for fleet in fleets:
        for cluster in fleet.clusters:
            facts[cluster.name] = ClusterFacts(cluster.name, cluster.cluster.environment, cluster.cluster.role)
    return facts


def blast_radius_mermaid(
    counts: Mapping[str, Mapping[str, int]],
    facts: Mapping[str, ClusterFacts],
    environments: Sequence[str] = (),
    compact: bool = False,
) -> str:
    """A Mermaid flowchart of the clusters a change touches, per environment, with added/changed/removed
    counts; the untouched clusters of each environment are one grey node. ``compact``: one node per
    environment for all its touched clusters (for very large changes)."""
    order = {name: index for index, name in enumerate(environments)}

    def env_of(name: str) -> str:
        return facts[name].environment if name in facts else "(unknown)"

    envs = sorted({f.environment for f in facts.values()} | {env_of(n) for n in counts},
                  key=lambda e: (order.get(e, len(order)), e))
    groups = []
    for index, env in enumerate(envs):
        touched = [n for n in sorted(counts) if env_of(n) == env]
        untouched = sum(1 for n, f in facts.items() if f.environment == env and n not in counts)
        total = {k: sum(counts[n].get(k, 0) for n in touched) for k in ("added", "changed", "removed")}
        groups.append({"id": f"e{index}", "name": env, "touched": touched, "untouched": untouched, "total": total})
    ids = {name: f"c{i}" for i, name in enumerate(sorted(counts))}
    template = _environment(_mermaid_finalize).get_template("overview/blast.mmd.j2")
    return template.render(groups=groups, ids=ids, counts=counts, facts=facts, compact=compact)
