"""Rules across entries, run by the loader once every entry is valid on its own: names first (duplicates),
then the general rules, then each area's rules in ``AREA_CHECKS`` (gateway, security, compatibility, Crossplane).

Every rule reads the ``Inventory`` (entries with their positions) and returns problems; none writes anything."""

from __future__ import annotations

import datetime
import difflib
import re
from collections.abc import Callable, Iterable
from typing import Any

from generator.errors import Problem
from generator.inventory import checkmemo
from generator.inventory.cidr import Block, block, overlapping_pairs
from generator.inventory.compat import check_compatibility, kubernetes_versions
from generator.inventory.crossplane_checks import check_inventory as check_crossplane
from generator.inventory.entries import (
    LIST_SECTIONS,
    Inventory,
    Layer,
    Sourced,
    cloud_defaults_layer,
    defaults_layer,
    platforms,
    problem_at,
    settings_layers,
    substitution_variables,
)
from generator.inventory.models import ACTION_POLICIES, VALIDATING_POLICIES, App, Cluster, Settings
from generator.inventory.storage import check_storage
from generator.yamlsource import Path_

_VARIABLE = re.compile(r"(?<!\$)\$\{([^}:=\-+?#%/^,]*)")


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
                problem_at(
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
                problems.append(problem_at(layer, (key, name), f"unknown {key[:-1]} '{name}'; {_suggest(name, known)}"))
        for name, settings in (layer.data.get(key) or {}).items():
            for path, variable in _variables_in((settings or {}).get("values", {})):
                if variable not in substitution_variables():
                    problems.append(problem_at(layer, (key, name, "values", *path), _unknown_variable(variable)))
    version = layer.data.get("kubernetesVersion")
    if version is not None and version not in kubernetes_versions():
        problems.append(
            problem_at(
                layer,
                ("kubernetesVersion",),
                f"unsupported Kubernetes version '{version}'; supported: {', '.join(kubernetes_versions())} "
                "(per cloud: generator/data/compat.yaml)",
            )
        )
    for index, group in enumerate(layer.data.get("nodeGroups") or []):
        sizes = [group.get(key, 0) for key in ("minSize", "desiredSize", "maxSize")] if isinstance(group, dict) else []
        # other types are the field validation's to report (the layer's data here is as written, not validated)
        if sizes and all(type(size) is int for size in sizes) and not sizes[0] <= sizes[1] <= sizes[2]:
            problems.append(
                problem_at(
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
    """Rules across items: names, references, regions, overlays, CIDRs, versions, variables, security.

    The rules of one cluster entry alone (``ENTRY_RULES``) are skipped for an entry that passed them as it is
    written now, with the same fleet-level inventory and code (generator/inventory/checkmemo.py): it gives no
    problem either way."""
    problems: list[Problem] = []
    known = checkmemo.passed(inv)
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
                problem_at(
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
            problem_at(
                source,
                ("role",),
                f"the fleet needs exactly one hub (management) cluster, found {len(hubs)}",
            )
        )
    networks: list[tuple[Block, Sourced[Cluster]]] = []
    settings_keys = {*Settings.model_fields, *(f.alias for f in Settings.model_fields.values())}
    for source in sorted(inv.clusters, key=lambda s: (s.file.file, s.where()[1])):
        cluster = source.item
        if id(source) in known:
            networks.append((block(cluster.networking.vpc_cidr), source))
            continue
        regions = platform["clouds"][cluster.cloud]["regions"]
        if cluster.region not in regions:
            problems.append(
                problem_at(
                    source,
                    ("region",),
                    f"'{cluster.region}' is not a {cluster.cloud} region; {_suggest(cluster.region, regions)}",
                )
            )
        if cluster.environment not in envs:
            problems.append(
                problem_at(
                    source,
                    ("environment",),
                    f"unknown environment '{cluster.environment}'; {_suggest(cluster.environment, envs)}",
                )
            )
        elif cluster.environment not in inv.overlays:
            problems.append(
                problem_at(
                    source,
                    ("environment",),
                    f"environment '{cluster.environment}' has no overlay file overlays/{cluster.environment}.yaml",
                )
            )
        settings = {k: v for k, v in source.raw.items() if k in settings_keys}
        layer = Layer(f"cluster {cluster.name}", settings, source.file, source.path)
        problems.extend(_check_layer(layer, component_names, app_names, platform))
        net = cluster.networking
        blocks = {"vpcCidr": net.vpc_cidr, "podCidr": net.pod_cidr, "serviceCidr": net.service_cidr}
        parsed = {k: block(v) for k, v in blocks.items()}
        for a, b in (("vpcCidr", "podCidr"), ("vpcCidr", "serviceCidr"), ("podCidr", "serviceCidr")):
            if parsed[a].overlaps(parsed[b]):
                problems.append(
                    problem_at(
                        source,
                        ("networking", b),
                        f"{blocks[b]} overlaps {a} {blocks[a]} of the same cluster",
                    )
                )
        networks.append((parsed["vpcCidr"], source))
    for other, source in overlapping_pairs(networks):  # reported on the later cluster (by name)
        problems.append(
            problem_at(
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
                    problem_at(
                        comp_source,
                        ("dependsOn", index),
                        f"unknown component '{dep}'; {_suggest(dep, component_names)}",
                    )
                )
        for path, variable in _variables_in({"values": comp_source.item.values, "configs": comp_source.item.configs}):
            if variable not in substitution_variables():
                problems.append(problem_at(comp_source, path, _unknown_variable(variable)))
        for index, obj in enumerate(comp_source.item.configs):
            if (
                not {"apiVersion", "kind", "metadata"} <= set(obj)
                or not isinstance(obj.get("metadata"), dict)
                or "name" not in obj["metadata"]
            ):
                problems.append(
                    problem_at(
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
                problem_at(
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
                problem_at(app_source, ("team",), f"unknown team '{app.team}'; {_suggest(app.team, team_names)}")
            )
        for index, env in enumerate(app.environments or []):
            if env not in envs:
                problems.append(
                    problem_at(
                        app_source,
                        ("environments", index),
                        f"unknown environment '{env}'; {_suggest(env, envs)}",
                    )
                )
        for key in ("replicas", "autoscaling"):
            for env in getattr(app, key):
                if env not in envs:
                    problems.append(
                        problem_at(app_source, (key, env), f"unknown environment '{env}'; {_suggest(env, envs)}")
                    )
        for index, name in enumerate(app.clusters or []):
            if name not in cluster_names:
                problems.append(
                    problem_at(
                        app_source,
                        ("clusters", index),
                        f"unknown cluster '{name}'; {_suggest(name, cluster_names)}",
                    )
                )
        for index, dep in enumerate(app.depends_on):
            if dep not in app_names:
                problems.append(
                    problem_at(
                        app_source,
                        ("dependsOn", index),
                        f"unknown app '{dep}'; {_suggest(dep, app_names)}",
                    )
                )
        for env, scaling in app.autoscaling.items():
            if scaling.min_replicas > scaling.max_replicas:
                problems.append(problem_at(app_source, ("autoscaling", env), "minReplicas must not exceed maxReplicas"))
        for path, variable in _variables_in(app.values):
            if variable not in substitution_variables():
                problems.append(problem_at(app_source, ("values", *path), _unknown_variable(variable)))
    for area_check in AREA_CHECKS:
        problems.extend(area_check(inv, today or datetime.date.today(), known))
    return problems


def _check_gateway(inv: Inventory) -> list[Problem]:
    """At most one component declares ``gateway``; its configs hold that Gateway with that listener; an app
    with a ``host`` needs such a component."""
    problems: list[Problem] = []
    gateways = [c for c in inv.components if c.item.gateway is not None]
    for extra in gateways[1:]:
        first = gateways[0]
        problems.append(
            problem_at(
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
                problem_at(
                    source,
                    ("gateway", "name"),
                    f"no Gateway '{ref.name}' in namespace '{component.namespace}' among this component's configs",
                )
            )
        elif ref.listener not in listeners:
            problems.append(
                problem_at(
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
                problem_at(
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
                    problem_at(
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


def _layer_value(layers: Iterable[Layer], key: str, default: Any) -> Any:
    """The value of a top-level settings key after layering (last layer that sets it wins)."""
    value = default
    for layer in layers:
        if layer.file is not None and layer.data.get(key) is not None:
            value = layer.data[key]
    return value


def _check_security(inv: Inventory, today: datetime.date, known: frozenset[int] = frozenset()) -> list[Problem]:
    """Policy exceptions (owner, policies, expiry), policy settings, and the secrets backend of every cluster (but
    the ``known`` entries, which passed)."""
    problems: list[Problem] = []
    fleet = inv.fleet.item
    security = fleet.security
    envs = set(fleet.environments)
    team_names = {t.item.name for t in inv.teams}
    policies = set(VALIDATING_POLICIES)
    for key, team in (("securityTeam", security.security_team), ("platformTeam", security.platform_team)):
        if team is not None and team not in team_names:
            problems.append(
                problem_at(
                    inv.fleet,
                    ("security", key),
                    f"unknown team '{team}'; {_suggest(team, team_names)}",
                )
            )
    signing = security.image_signing
    if signing is not None and not (signing.registries or fleet.allowed_registries):
        problems.append(
            problem_at(
                inv.fleet,
                ("security", "imageSigning"),
                "name the registries whose images must be signed (or set fleet.allowedRegistries)",
            )
        )

    for source in inv.exceptions:
        entry = source.item
        if entry.owner not in team_names:
            problems.append(
                problem_at(
                    source,
                    ("owner",),
                    f"unknown team '{entry.owner}'; {_suggest(entry.owner, team_names)}",
                )
            )
        for index, policy in enumerate(entry.policies):
            if policy not in policies:
                problems.append(
                    problem_at(
                        source,
                        ("policies", index),
                        f"unknown policy '{policy}'; {_suggest(policy, policies)}",
                    )
                )
        for index, env in enumerate(entry.environments or []):
            if env not in envs:
                problems.append(
                    problem_at(
                        source,
                        ("environments", index),
                        f"unknown environment '{env}'; {_suggest(env, envs)}",
                    )
                )
        if entry.expires < today:
            problems.append(
                problem_at(
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
                    problem_at(
                        layer,
                        ("policies", "actions", name),
                        f"unknown policy '{name}'; {_suggest(name, ACTION_POLICIES)}",
                    )
                )

    backend = security.secrets
    for cluster_source in inv.clusters:
        cluster = cluster_source.item
        if id(cluster_source) in known:
            continue
        if "policies" in cluster_source.raw:
            problems.append(
                problem_at(
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
                problem_at(
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
                    problem_at(
                        app_source,
                        ("secrets", index),
                        "apps declare secrets, but no secrets backend is configured (fleet.security.secrets)",
                    )
                )
                break
            if secret.name in seen:
                problems.append(
                    problem_at(
                        app_source,
                        ("secrets", index, "name"),
                        f"duplicate secret name '{secret.name}'",
                    )
                )
            seen.add(secret.name)
    return problems


#: Each area's rules, after the general ones, in this order; each takes the inventory, today's date and the cluster
#: entries (by ``id``) whose rules of one entry alone passed (``checkmemo.passed``: those are skipped).
AREA_CHECKS: tuple[Callable[[Inventory, datetime.date, frozenset[int]], list[Problem]], ...] = (
    lambda inv, _today, _known: _check_gateway(inv),
    _check_security,
    lambda inv, today, _known: check_compatibility(inv, today),
    lambda inv, _today, known: check_crossplane(inv, known),
    lambda inv, _today, _known: check_storage(inv),
)

#: The rules that read one cluster entry alone (with the fleet-level inventory, the code and its data), skipped for
#: an entry that passed them as written (generator/inventory/checkmemo.py); every other rule runs on every load.
ENTRY_RULES = (
    "region, environment and overlay of the entry; its settings layer (unknown components and apps, variables, "
    "Kubernetes version, node group sizes); its own CIDRs overlapping each other",
    "policies set on the entry; its secrets backend configured",
    "its network plan (zones, subnets, control-plane range); its node groups; its databases and caches; a GKE "
    "cluster's name",
)
