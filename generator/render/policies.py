"""Security plumbing of the fleet repo: Kyverno CEL policies per environment, policy exceptions, External
Secrets (a ClusterSecretStore per cluster, an ExternalSecret per app secret) and CODEOWNERS.

Layout (paths relative to the fleet repo root):

- ``infrastructure/policies/<env>/``: the ValidatingPolicies (``validationActions`` from the layered
  ``policies`` settings of the environment), the Flux tenancy policy, GeneratingPolicy, ImageValidatingPolicy,
  the PolicyExceptions that apply to the environment and the RBAC Kyverno needs; added to the
  environment's configs overlay, so it reaches every cluster of the environment after Kyverno is ready.
- ``infrastructure/secret-stores/<cluster>/``: the cluster's ServiceAccount and ClusterSecretStore; added to
  that cluster's configs layer.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jinja2

from generator.errors import InventoryError, Problem
from generator.inventory.models import TENANCY_POLICY, VALIDATING_POLICIES, PolicyExceptionEntry, Settings
from generator.inventory.resolve import ResolvedCluster, ResolvedFleet
from generator.render.externalsecrets import runs, secret_store
from generator.render.planner import FLUX_NAMESPACE, TEAM_LABEL, Contribution, Planner, environment
from generator.yamlio import load_documents

if TYPE_CHECKING:
    from generator.render.memo import PlannerMemo

POLICY_DIR = "infrastructure/policies"
STORE_DIR = "infrastructure/secret-stores"
POLICY_API = "policies.kyverno.io/v1"


@dataclass(frozen=True)
class PolicyInfo:
    """Reviewer-facing metadata of one ValidatingPolicy (its CEL lives in ``templates/policies/<name>.yaml.j2``)."""

    name: str
    title: str
    category: str
    severity: str
    description: str


POLICY_INFO: dict[str, PolicyInfo] = {
    info.name: info
    for info in (
        PolicyInfo(
            "require-labels",
            "Require labels",
            "Best Practices",
            "medium",
            "Workloads and their pod templates must carry the labels listed in fleet.security.requiredLabels.",
        ),
        PolicyInfo(
            "require-requests-limits",
            "Require requests and limits",
            "Best Practices",
            "medium",
            "Every container sets CPU and memory requests and a memory limit.",
        ),
        PolicyInfo(
            "require-probes",
            "Require liveness and readiness probes",
            "Best Practices",
            "medium",
            "Every container of a long-running workload defines a livenessProbe and a readinessProbe (Jobs, CronJobs "
            "and run-to-completion Pods are not checked).",
        ),
        PolicyInfo(
            "disallow-privileged-containers",
            "Disallow privileged containers",
            "Pod Security Standards (Baseline)",
            "high",
            "Privileged containers share the host's devices and kernel capabilities; they are not allowed.",
        ),
        PolicyInfo(
            "disallow-host-namespaces",
            "Disallow host namespaces",
            "Pod Security Standards (Baseline)",
            "high",
            "Pods must not share the host's network, process or IPC namespace (hostNetwork, hostPID, hostIPC).",
        ),
        PolicyInfo(
            "restrict-image-registries",
            "Restrict image registries",
            "Supply Chain Security",
            "high",
            "Images must come from the registries in fleet.allowedRegistries.",
        ),
        PolicyInfo(
            "require-run-as-non-root",
            "Require running as non-root",
            "Pod Security Standards (Restricted)",
            "high",
            "runAsNonRoot must be true for every container (on the pod or the container) and runAsUser never 0.",
        ),
        PolicyInfo(
            "disallow-privilege-escalation",
            "Disallow privilege escalation",
            "Pod Security Standards (Restricted)",
            "high",
            "Every container sets securityContext.allowPrivilegeEscalation to false.",
        ),
        PolicyInfo(
            "require-drop-all-capabilities",
            "Require dropping all capabilities",
            "Pod Security Standards (Restricted)",
            "high",
            "Every container drops ALL capabilities and adds back at most NET_BIND_SERVICE.",
        ),
        PolicyInfo(
            "restrict-seccomp-profile",
            "Restrict seccomp profiles",
            "Pod Security Standards (Restricted)",
            "high",
            "The seccomp profile is RuntimeDefault or Localhost, on the pod or on every container.",
        ),
    )
}
assert tuple(POLICY_INFO) == VALIDATING_POLICIES


def cel_literal(value: Any) -> str:
    """A CEL literal for a JSON-like value (strings, numbers, booleans, lists, maps): inventory data in CEL."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(cel_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{cel_literal(str(k))}: {cel_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no CEL literal for {type(value).__name__}")


def _planner() -> Planner:
    return Planner(_policy_environment())


@functools.cache
def _policy_environment() -> jinja2.Environment:
    """The YAML template environment with the ``cel`` filter, built once per process (so the policy templates
    are compiled once, not on every render; they are package files and never change)."""
    env = environment()
    env.filters["cel"] = cel_literal
    return env


def _component_namespace(fleet: ResolvedFleet, chart: str, default: str) -> str:
    return next((c.namespace for c in fleet.components if c.chart.name == chart), default)


def policy_namespace(fleet: ResolvedFleet) -> str:
    """Where PolicyExceptions live: Kyverno's namespace."""
    return _component_namespace(fleet, "kyverno", "kyverno")


def excluded_namespaces(fleet: ResolvedFleet, settings: Settings) -> list[str]:
    """Namespaces no policy applies to: system namespaces, platform component namespaces, and the
    environment's ``policies.excludedNamespaces``. Platform components run upstream charts that
    fleetgen does not render; app namespaces are never exempt unless listed."""
    names = {
        *fleet.fleet.security.system_namespaces,
        *(c.namespace for c in fleet.components),
        *settings.policies.excluded_namespaces,
    }
    return sorted(names)


def registry_prefixes(registries: Iterable[str]) -> list[str]:
    """``ghcr.io/acme`` → ``ghcr.io/acme/``: an image matches a registry when it starts with the prefix."""
    return sorted({r.rstrip("/") + "/" for r in registries})


def validating_policies(fleet: ResolvedFleet) -> list[str]:
    """Names of the ValidatingPolicies rendered for this fleet (registries only when some are allowed)."""
    return [
        name for name in VALIDATING_POLICIES if name != "restrict-image-registries" or fleet.fleet.allowed_registries
    ]


def policy_action(settings: Settings, policy: str) -> str:
    """The layered ``validationAction`` of one policy in an environment (Audit or Deny).

    The tenancy policy denies by default in every environment: auditing it would leave a path from a team's
    ``edit`` role to cluster-admin open (on dev clusters too)."""
    default = "Deny" if policy == TENANCY_POLICY else settings.policies.validation_action
    return settings.policies.actions.get(policy, default)


def _exception_applies(entry: PolicyExceptionEntry, env: str) -> bool:
    return entry.environments is None or env in entry.environments


def _names_expression(names: list[str]) -> str:
    """CEL: the object is one of ``names`` or a pod/replica set generated from one (``<name>-...``)."""
    return (
        f"{cel_literal(sorted(names))}.exists(n, "
        "(has(object.metadata.name) && (object.metadata.name == n || object.metadata.name.startsWith(n + '-'))) || "
        "(has(object.metadata.generateName) && object.metadata.generateName.startsWith(n + '-')))"
    )


def _plan_environment(planner: Planner, fleet: ResolvedFleet, env_name: str, settings: Settings) -> None:
    inv = fleet.inventory
    directory = f"{POLICY_DIR}/{env_name}"
    layer_files = [layer.file.file for layer in (inv.defaults, inv.overlays[env_name]) if layer.file]
    sources = [inv.fleet.file.file, *layer_files]
    excluded = excluded_namespaces(fleet, settings)
    security = fleet.fleet.security
    common = {"environment": env_name, "excluded_namespaces": excluded}
    resources: list[str] = []
    for name in validating_policies(fleet):
        planner.add_template(
            f"{directory}/{name}.yaml",
            f"policies/{name}.yaml.j2",
            sources,
            policy=POLICY_INFO[name],
            action=policy_action(settings, name),
            required_labels=list(security.required_labels),
            registry_prefixes=registry_prefixes(fleet.fleet.allowed_registries),
            **common,
        )
        resources.append(f"{name}.yaml")
    planner.add_template(
        f"{directory}/{TENANCY_POLICY}.yaml",
        f"policies/{TENANCY_POLICY}.yaml.j2",
        sources,
        action=policy_action(settings, TENANCY_POLICY),
        team_label=TEAM_LABEL,
        platform_sources=[{"kind": "GitRepository", "namespace": FLUX_NAMESPACE, "name": FLUX_NAMESPACE}],
        environment=env_name,
    )
    resources.append(f"{TENANCY_POLICY}.yaml")
    planner.add_template(
        f"{directory}/generate-default-deny-networkpolicy.yaml",
        "policies/generate-default-deny-networkpolicy.yaml.j2",
        sources,
        **common,
    )
    resources.append("generate-default-deny-networkpolicy.yaml")
    planner.add_template(f"{directory}/rbac.yaml", "policies/rbac.yaml.j2", sources)
    resources.append("rbac.yaml")
    signing = security.image_signing
    if signing is not None:
        registries = signing.registries or fleet.fleet.allowed_registries
        planner.add_template(
            f"{directory}/verify-image-signatures.yaml",
            "policies/verify-image-signatures.yaml.j2",
            sources,
            signing=signing,
            action=policy_action(settings, "verify-image-signatures"),
            image_references=[{"glob": prefix + "*"} for prefix in registry_prefixes(registries)],
            **common,
        )
        resources.append("verify-image-signatures.yaml")
    exceptions = [s for s in inv.exceptions if _exception_applies(s.item, env_name)]
    if exceptions:
        documents = []
        for source in exceptions:
            entry = source.item
            namespaces = cel_literal(sorted(entry.namespaces))
            text = planner.env.get_template("policies/exception.yaml.j2").render(
                entry=entry,
                namespace=policy_namespace(fleet),
                expires_at=(entry.expires + datetime.timedelta(days=1)).isoformat() + "T00:00:00Z",
                namespace_expression=f"has(object.metadata.namespace) && object.metadata.namespace in {namespaces}",
                names_expression=_names_expression(entry.names) if entry.names else "",
            )
            documents.append(text)
        planner.add_yaml(
            f"{directory}/exceptions.yaml",
            [doc for text in documents for doc in load_documents(text)],
            [*sources, *sorted({s.file.file for s in exceptions})],
        )
        resources.append("exceptions.yaml")
    planner.add_yaml(
        f"{directory}/kustomization.yaml",
        [{"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources}],
        sources,
    )


#: The ClusterSecretStore template, rendered once per distinct store of a render (``_plan_secret_store``).
STORE_TEMPLATE = "policies/cluster-secret-store.yaml.j2"


def _plan_secret_store(planner: Planner, fleet: ResolvedFleet, cluster: ResolvedCluster,
                       rendered: dict[str, list[Any]]) -> str:
    """Plan one cluster's store; ``rendered`` holds the documents of the stores planned so far, by their inputs
    (clusters of a region often have the same store: its template is rendered and parsed once)."""
    backend = fleet.fleet.security.secrets
    assert backend is not None
    directory = f"{STORE_DIR}/{cluster.name}"
    provider_name, provider, annotations = secret_store(cluster, fleet)
    key = repr((provider_name, provider, annotations))  # repr: exact values, types and key order
    if key not in rendered:
        text = planner.env.get_template(STORE_TEMPLATE).render(
            backend=backend,
            provider=provider,
            provider_name=provider_name,
            sa_annotations=annotations,
            service_account=annotations is not None,
        )
        rendered[key] = load_documents(text)
    planner.add_yaml(f"{directory}/cluster-secret-store.yaml", rendered[key], cluster.sources)
    planner.add_yaml(
        f"{directory}/kustomization.yaml",
        [
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["cluster-secret-store.yaml"],
            }
        ],
        cluster.sources,
    )
    return directory


# --- the contribution ---------------------------------------------------------------------------------------


def _check_clusters(fleet: ResolvedFleet) -> None:
    """Every cluster that receives policies runs Kyverno; every cluster with app secrets runs External Secrets."""
    problems: list[Problem] = []
    app_sources = {s.item.name: s for s in fleet.inventory.apps}
    kyverno = any(c.chart.name == "kyverno" for c in fleet.components)
    cluster_sources = {s.item.name: s for s in fleet.inventory.clusters}  # by name: no scan per cluster
    for cluster in fleet.clusters:
        source = cluster_sources[cluster.name]
        if kyverno and not runs(cluster, "kyverno"):
            file, line, column = source.where("name")
            problems.append(
                Problem(
                    file,
                    line,
                    column,
                    "clusters.components",
                    f"cluster '{cluster.name}' does not run kyverno, but its environment's policies need it",
                )
            )
        if fleet.fleet.security.secrets is not None and not runs(cluster, "external-secrets"):
            for app in cluster.apps:
                if app.app.secrets:
                    file, line, column = app_sources[app.name].where("secrets")
                    problems.append(
                        Problem(
                            file,
                            line,
                            column,
                            "apps.secrets",
                            f"app '{app.name}' needs External Secrets on cluster '{cluster.name}', which does not "
                            "run the external-secrets component",
                        )
                    )
    if problems:
        raise InventoryError(problems)


def plan_policies(fleet: ResolvedFleet, memo: PlannerMemo | None = None) -> Contribution:
    """Policies per environment and secret stores per cluster, as a Contribution to the fleet plan.

    Policies are rendered when the fleet installs Kyverno (a component from the ``kyverno`` chart); then
    every cluster must run it. Secret stores go to the clusters that run External Secrets. With ``memo``
    (generator/render/memo.py) the environments' files and each cluster's store are read from it where their
    inputs did not change.
    """
    _check_clusters(fleet)
    planner = _planner()
    contribution = Contribution()
    if any(c.chart.name == "kyverno" for c in fleet.components):
        def environments() -> dict[str, str]:  # fleet-level inputs only
            files = Planner(planner.env)
            for env in fleet.environments:
                _plan_environment(files, fleet, env.name, env.settings)
            return files.files

        planner.files.update(environments() if memo is None else memo.fleet_part("policies", fleet, environments))
        for env in fleet.environments:
            contribution.env_configs[env.name] = [f"{POLICY_DIR}/{env.name}"]
    if fleet.fleet.security.secrets is not None:
        stores: dict[str, list[Any]] = {}
        for cluster in fleet.clusters:
            if runs(cluster, "external-secrets"):
                def store(cluster: ResolvedCluster = cluster) -> dict[str, str]:  # this cluster, fleet-level inputs
                    files = Planner(planner.env)
                    _plan_secret_store(files, fleet, cluster, stores)
                    return files.files

                planned = store() if memo is None else memo.cluster_part("secret-store", fleet, cluster, store)
                planner.files.update(planned)
                contribution.cluster_configs[cluster.name] = [f"{STORE_DIR}/{cluster.name}"]
    contribution.files = dict(sorted(planner.files.items()))
    return contribution


# --- CODEOWNERS -----------------------------------------------------------------------------------------------


def _prod_rows(fleet: ResolvedFleet, out: str, owners: Callable[..., str]) -> list[tuple[str, str]]:
    """Prod changes need the SRE team too (seed: "PR: staging → prod, SRE Review + Approval"): the last
    environment's overlay (where `fleetgen promote` writes its image tags), its clusters' inventory files
    and everything rendered for them. ``security.sreTeam`` defaults to the platform team."""
    envs = fleet.fleet.environments
    if len(envs) < 2:
        return []
    security = fleet.fleet.security
    sre, platform, sec = security.sre_team or security.platform_team, security.platform_team, security.security_team
    prod = envs[-1]
    inv = fleet.inventory
    rows: list[tuple[str, str]] = []
    layer = inv.overlays.get(prod)
    if layer is not None and layer.file is not None:
        rows.append((f"/{layer.file.file}", owners(sec, sre)))
    prod_clusters = [s for s in inv.clusters if s.item.environment == prod]
    for file in sorted({s.file.file for s in prod_clusters}):
        rows.append((f"/{file}", owners(platform, sre)))
    rows.append((f"{out}infrastructure/overlays/{prod}/", owners(platform, sre)))
    for team in sorted({a.team for a in fleet.apps}):
        rows.append((f"{out}apps/overlays/{prod}/{team}/", owners(team, sre)))
    for source in sorted(prod_clusters, key=lambda s: s.item.name):
        rows.append((f"{out}clusters/{source.item.name}/", owners(platform, sre)))
    return rows


def codeowners(fleet: ResolvedFleet, fleet_prefix: str | None = None) -> str:
    """CODEOWNERS for the repository root (``OUT/CODEOWNERS``): inventory and app paths → owning teams,
    policies, secret stores, tenants, overlays and exceptions → the security team. GitHub uses the last
    matching line, so general lines come first. ``fleet_prefix`` is where the rendered fleet repo lives in
    the repository (default: ``fleet.git.path``)."""
    security = fleet.fleet.security
    teams = {t.name: t for t in fleet.teams}
    inv = fleet.inventory

    def owners(*names: str | None) -> str:
        handles = sorted({h for n in names if n and n in teams for h in teams[n].codeowners})
        return " ".join(handles)

    prefix = (fleet.fleet.git.path if fleet_prefix is None else fleet_prefix).strip("/")
    out = "/" + prefix + "/" if prefix else "/"
    platform, sec = security.platform_team, security.security_team
    rows: list[tuple[str, str]] = [
        ("*", owners(platform)),
        ("/inventory/", owners(platform)),
        ("/charts/", owners(platform)),
    ]
    files_by_team: dict[str, set[str]] = {}
    for source in inv.apps:
        files_by_team.setdefault(source.file.file, set()).add(source.item.team)
    for file, file_teams in sorted(files_by_team.items()):
        rows.append((f"/{file}", owners(*file_teams)))
    for app in fleet.apps:
        rows.append((f"{out}apps/base/{app.name}/", owners(app.team)))
    for team in sorted({a.team for a in fleet.apps}):
        rows.append((f"{out}apps/overlays/*/{team}/", owners(team)))
        rows.append((f"{out}apps/clusters/*/{team}/", owners(team)))
    rows += [
        (f"/{inv.fleet.file.file}", owners(platform, sec)),
        ("/overlays/", owners(sec)),
        (f"{out}{POLICY_DIR}/", owners(sec)),
        (f"{out}{STORE_DIR}/", owners(sec)),
        (f"{out}tenants/", owners(sec)),
    ]
    for file in sorted({s.file.file for s in inv.teams} | {s.file.file for s in inv.exceptions}):
        rows.append((f"/{file}", owners(sec)))
    rows += _prod_rows(fleet, out, owners)
    # review of the review machinery itself: CI, hooks and this file
    for path in ("/CODEOWNERS", "/.github/", "/.gitlab-ci.yml", "/.pre-commit-config.yaml"):
        rows.append((path, owners(sec, platform)))
    lines = [
        "# Generated by fleetgen from the inventory's teams. DO NOT EDIT: change the inventory and run "
        "`fleetgen render`.",
        "# The last matching pattern wins; one inventory file per team keeps review with the owning team.",
    ]
    width = max(len(p) for p, _ in rows)
    lines += [f"{path.ljust(width)}  {who}".rstrip() for path, who in rows if path and who]
    return "\n".join(lines) + "\n"
