"""The compatibility matrix (generator/data/compat.yaml) and the inventory checks that use it.

Run once from the loader's cross-checks. Errors: a Flux version the pinned Flux Operator cannot install, a
Kubernetes version a cloud does not offer or whose extended support has ended, a chart whose ``kubeVersion``
excludes a cluster, ``fleet.security`` without a policy engine. Warnings: a Kubernetes version past the end of
its standard support. Only these checks read today's date; rendered files never do.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from generator.errors import Problem
from generator.inventory.entries import Inventory, Layer, Sourced, problem_at, settings_layers
from generator.inventory.models import DEFAULT_KUBERNETES_VERSION, Cluster, Component

#: The chart of the policy engine that enforces ``fleet.security`` (Kyverno: the policies are policies.kyverno.io).
POLICY_ENGINE_CHART = "kyverno"


@cache
def compat_data() -> dict[str, Any]:
    """The compatibility matrix, as written in generator/data/compat.yaml."""
    from generator.yamlio import load_documents

    text = resources.files("generator").joinpath("data/compat.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = load_documents(text)[0]
    return data


def _date(value: Any) -> datetime.date | None:
    return None if value is None else datetime.date.fromisoformat(str(value))


@dataclass(frozen=True)
class KubernetesSupport:
    """One Kubernetes minor version on one managed service, with its support dates (None: not published)."""

    cloud: str
    service: str
    version: str
    end_of_standard: datetime.date | None
    end_of_extended: datetime.date | None
    source: str
    approximate: tuple[str, ...] = ()


def kubernetes_support(cloud: str) -> Mapping[str, KubernetesSupport]:
    """The Kubernetes versions ``cloud``'s managed service offers, oldest first (read once per cloud)."""
    return _kubernetes_support(cloud)


@cache
def _kubernetes_support(cloud: str) -> Mapping[str, KubernetesSupport]:
    entry = compat_data()["kubernetes"][cloud]
    return MappingProxyType({
        version: KubernetesSupport(
            cloud, entry["service"], version, _date(dates.get("endOfStandardSupport")),
            _date(dates.get("endOfExtendedSupport")), entry["source"], tuple(dates.get("approximate") or ()),
        )
        for version, dates in sorted(entry["versions"].items(), key=lambda kv: _minor(kv[0]))
    })


def kubernetes_versions() -> list[str]:
    """Every Kubernetes version some supported cloud offers (what defaults and overlays may name)."""
    return sorted({v for cloud in compat_data()["kubernetes"] for v in kubernetes_support(cloud)}, key=_minor)


def _minor(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def embedded_flux_versions(operator_version: str) -> list[str] | None:
    """The Flux versions the Flux Operator ``operator_version`` embeds (None: not in the matrix)."""
    release = compat_data()["fluxOperator"]["releases"].get(operator_version.removeprefix("v"))
    return None if release is None else [str(v) for v in release["flux"]]


# --- semver constraints of Chart.yaml kubeVersion (the subset charts use: comparisons, ',' / ' ' and '||') ---

_COMPARISON = re.compile(r"^(>=|<=|!=|>|<|=)?\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-[0-9A-Za-z.-]+)?$")


@lru_cache(maxsize=1 << 10)
def satisfies(version: str, constraint: str) -> bool:
    """Whether Kubernetes ``version`` (``1.35`` = v1.35.0) meets a chart's ``kubeVersion`` constraint."""
    have = (*_minor(version), 0)[:3]
    for alternative in constraint.split("||"):
        joined = re.sub(r"(>=|<=|!=|>|<|=)\s+", r"\1", alternative.strip())
        terms = [t for t in re.split(r"[,\s]+", joined) if t]
        if all(_compare(have, term.strip()) for term in terms):
            return True
    return False


def _compare(have: tuple[int, ...], term: str) -> bool:
    match = _COMPARISON.match(term)
    if match is None:
        raise ValueError(f"unsupported kubeVersion constraint {term!r}")
    op = match.group(1) or "="
    want = tuple(int(match.group(i) or 0) for i in (2, 3, 4))
    return {
        ">=": have >= want, "<=": have <= want, ">": have > want, "<": have < want, "=": have == want,
        "!=": have != want,
    }[op]


# --- the checks ---------------------------------------------------------------------------------------------


def _effective(inv: Inventory, source: Sourced[Cluster], key: str) -> tuple[Any, Layer | None]:
    """The value of a top-level settings key for a cluster after layering, and the layer that set it."""
    value: Any = None
    origin: Layer | None = None
    for layer in settings_layers(inv, source):
        if layer.file is not None and layer.data.get(key) is not None:
            value, origin = layer.data[key], layer
    return value, origin


def _at(source: Sourced[Cluster], origin: Layer | None, key: str, message: str) -> Problem:
    """A problem at the layer that set ``key`` for this cluster (or at the cluster, for a built-in default)."""
    if origin is None:
        return problem_at(source, ("name",), f"{message} (the built-in default; set {key} in a layer)")
    return problem_at(origin, (key,), message)


Versions = list[tuple[Sourced[Cluster], str, Layer | None]]


def _kubernetes_versions(inv: Inventory) -> Versions:
    """Every cluster's Kubernetes version after layering, and the layer that set it (None: the default)."""
    versions = []
    for source in inv.clusters:
        value, origin = _effective(inv, source, "kubernetesVersion")
        versions.append((source, str(value) if value is not None else DEFAULT_KUBERNETES_VERSION, origin))
    return versions


def check_kubernetes_versions(
    inv: Inventory, today: datetime.date, versions: Versions | None = None
) -> tuple[list[Problem], list[Problem]]:
    """Every cluster's Kubernetes version against its cloud's calendar: (errors, warnings)."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for source, version, origin in _kubernetes_versions(inv) if versions is None else versions:
        cluster = source.item
        offered = kubernetes_support(cluster.cloud)
        support = offered.get(version)
        subject = f"cluster '{cluster.name}'"
        if support is None:
            service = compat_data()["kubernetes"][cluster.cloud]["service"]
            errors.append(_at(source, origin, "kubernetesVersion",
                              f"{subject}: {service} does not offer Kubernetes {version}; "
                              f"{service} offers {', '.join(offered)} (generator/data/compat.yaml)"))
            continue
        standard, extended = support.end_of_standard, support.end_of_extended
        if extended is not None and today > extended:
            errors.append(_at(source, origin, "kubernetesVersion",
                              f"{subject}: Kubernetes {version} on {support.service} reached the end of extended "
                              f"support on {extended.isoformat()} (today is {today.isoformat()}); upgrade "
                              f"(source: {support.source})"))
        elif standard is not None and today > standard:
            about = "about " if "endOfExtendedSupport" in support.approximate else ""
            until = f" until {about}{extended.isoformat()}" if extended else ""
            warnings.append(_at(source, origin, "kubernetesVersion",
                                f"{subject}: Kubernetes {version} on {support.service} reached the end of standard "
                                f"support on {standard.isoformat()}; extended support (extra cost){until}; plan "
                                f"the upgrade (source: {support.source})"))
    return errors, warnings


def _flux_operator_components(inv: Inventory) -> list[Sourced[Component]]:
    chart = compat_data()["fluxOperator"]["chart"]
    return [c for c in inv.components if c.item.chart.name == chart]


def check_flux_operator(inv: Inventory) -> list[Problem]:
    """The FluxInstance's Flux version must be embedded in every Flux Operator the fleet installs."""
    problems: list[Problem] = []
    flux = inv.fleet.item.flux.version.removeprefix("v")
    releases = compat_data()["fluxOperator"]["releases"]
    pins: list[tuple[str, Sourced[Component] | None]] = [
        (c.item.chart.version, c) for c in _flux_operator_components(inv)
    ]
    if not pins and inv.fleet.item.crossplane is not None:
        from generator.inventory.crossplane_data import crossplane_data  # the hub's fallback pin for spoke operators

        pins.append((str(crossplane_data()["fluxOperatorChart"]["version"]), None))
    for pin, component in pins:
        where = f"{component.file.file}:{component.where('chart', 'version')[1]}" if component else (
            "generator/data/crossplane.yaml fluxOperatorChart")
        embedded = embedded_flux_versions(pin)
        if embedded is None:
            known = sorted(releases, key=_minor)
            message = (f"flux-operator {pin} is not in the compatibility matrix (generator/data/compat.yaml, "
                       f"known {known[0]} .. {known[-1]}): its embedded Flux versions are unknown; pin a known "
                       "release or add it to the matrix from its config/data/flux/ folder")
            problems.append(problem_at(component, ("chart", "version"), message) if component else
                            problem_at(inv.fleet, ("flux", "version"), f"{message} ({where})"))
            continue
        if flux not in embedded:
            able = [v for v in sorted(releases, key=_minor) if flux in releases[v]["flux"]]
            hint = (f"flux-operator {able[0]} or later embeds it" if able else
                    f"no flux-operator release in the matrix embeds it (newest Flux embedded: {embedded[-1]})")
            problems.append(problem_at(
                inv.fleet, ("flux", "version"),
                f"Flux {flux} cannot be installed by flux-operator {pin} ({where}), which embeds Flux "
                f"{embedded[0]} .. {embedded[-1]} (the operator would report 'no match found for semver'); {hint}",
            ))
    return problems


def check_chart_kube_versions(inv: Inventory, versions: Versions | None = None) -> list[Problem]:
    """A chart whose Chart.yaml ``kubeVersion`` excludes a cluster it runs on is an error (helm refuses it)."""
    problems: list[Problem] = []
    charts = compat_data().get("charts") or {}
    distinct = None if versions is None else {version for _, version, _ in versions}
    for component in inv.components:
        chart = component.item.chart
        constraint = ((charts.get(chart.name) or {}).get(chart.version) or {}).get("kubeVersion")
        if constraint is None:
            continue
        if versions is None or distinct is None:  # once: a constraint is met or not per version, not per cluster
            versions = _kubernetes_versions(inv)
            distinct = {version for _, version, _ in versions}
        excluded = {version for version in distinct if not satisfies(version, constraint)}
        if not excluded:
            continue  # the common case: no cluster is visited per component
        for source, version, _ in versions:
            if version in excluded and source.item.role in component.item.roles:
                problems.append(problem_at(
                    component, ("chart", "version"),
                    f"chart {chart.name} {chart.version} requires Kubernetes {constraint} (its Chart.yaml "
                    f"kubeVersion), but cluster '{source.item.name}' runs {version}",
                ))
    return problems


def check_policy_engine(inv: Inventory) -> list[Problem]:
    """``fleet.security`` renders Kyverno policies: every cluster that gets them must run the Kyverno component."""
    if "security" not in inv.fleet.raw:
        return []
    engines = [c for c in inv.components if c.item.chart.name == POLICY_ENGINE_CHART]
    if not engines:
        return [problem_at(inv.fleet, ("security",),
                         f"fleet.security renders Kyverno policies, but no component installs the policy engine "
                         f"(a component with chart '{POLICY_ENGINE_CHART}'): the policies would never be enforced")]
    problems: list[Problem] = []
    engine = engines[0]
    for source in inv.clusters:
        if source.item.role == "hub" and "hub" not in engine.item.roles:
            continue
        enabled, origin = engine.item.enabled, None
        for layer in settings_layers(inv, source):
            entry = ((layer.data.get("components") or {}).get(engine.item.name) or {}) if layer.file else {}
            if isinstance(entry, dict) and entry.get("enabled") is not None:
                enabled, origin = bool(entry["enabled"]), layer
        if source.item.role in engine.item.roles and enabled:
            continue
        message = (f"cluster '{source.item.name}' gets fleet.security policies but the policy engine "
                   f"'{engine.item.name}' is not enabled there: the policies would never be enforced")
        problems.append(problem_at(origin, ("components", engine.item.name, "enabled"), message) if origin
                        else problem_at(engine, ("enabled",) if "enabled" in engine.raw else ("name",), message))
    return problems


def check_compatibility(inv: Inventory, today: datetime.date) -> list[Problem]:
    """Run every check of this module; warnings go to ``inv.warnings``, errors are returned."""
    versions = _kubernetes_versions(inv)
    errors, warnings = check_kubernetes_versions(inv, today, versions)
    inv.warnings.extend(warnings)
    return [*errors, *check_flux_operator(inv), *check_chart_kube_versions(inv, versions), *check_policy_engine(inv)]
