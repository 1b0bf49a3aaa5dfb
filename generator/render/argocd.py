"""Argo CD for apps (``fleet.delivery.apps: argocd``): what the hub receives instead of per-cluster app Kustomizations.

Flux keeps delivering infrastructure and tenants (namespaces, RBAC) everywhere; the hub's Argo CD delivers the apps:

- one AppProject per team: the fleet repo as its only source, the team's namespaces on the clusters the inventory
  names as its only destinations, no cluster-scoped kinds and only the namespaced kinds the service chart and the
  app's ExternalSecrets render;
- one ApplicationSet per app and environment (and per cluster whose values differ from its environment's, like
  ``apps/clusters/<cluster>/`` on the Flux path) with a cluster generator selecting the clusters by name; the
  template deploys ``charts/service`` with exactly the values the Flux HelmRelease ends up with (``LayeredValues``
  of the resolved app: base ⊕ environment ⊕ cluster), Flux's ``${var}`` substitutions turned into reads of the
  cluster Secret's annotations;
- one Argo CD cluster Secret per workload cluster, written on the hub by External Secrets from the kubeconfig Secret
  Crossplane composes (``<fleet.crossplane.namespace>/<cluster>-kubeconfig``): a reference, never a credential in
  Git. EKS spokes sign in with ``awsAuthConfig`` (IAM, the role the EKS access entry admits); the others with what
  that kubeconfig carries (the same as Flux's ``kubeConfig.secretRef`` path today);
- the fleet repo's credential for Argo CD, copied the same way from the hub's Flux git Secret.

Semantics followed (Argo CD v3.4/v3.5, docs ``operator-manual/applicationset/Generators-Cluster.md`` and
``operator-manual/declarative-setup.md``): the cluster generator yields ``name``, ``nameNormalized``, ``server``,
``metadata.labels`` and ``metadata.annotations`` of every Secret labelled ``argocd.argoproj.io/secret-type:
cluster`` that matches its selector; ``goTemplate`` with ``missingkey=error``.
"""

from __future__ import annotations

import re
from typing import Any

from generator.errors import InventoryError, Problem
from generator.inventory.resolve import ResolvedApp, ResolvedCluster, ResolvedFleet, canonical
from generator.render.externalsecrets import runs
from generator.render.planner import FLUX_NAMESPACE, TEAM_LABEL, Contribution, Planner

ARGOCD_CHART = "argo-cd"
APPS_DIR = "apps/argocd"
CLUSTER_SECRET_LABEL = "argocd.argoproj.io/secret-type"
CLUSTER_LABEL = "fleet.gitops.io/cluster"
ENVIRONMENT_LABEL = "fleet.gitops.io/environment"
APP_LABEL = "fleet.gitops.io/app"
#: Annotation prefix of the cluster Secret's substitution variables (one per Flux post-build variable).
VARIABLE_ANNOTATION = "fleet.gitops.io/"
KUBECONFIG_KEY = "kubeconfig"
#: The namespaced kinds an app may create: what charts/service renders plus the app's ExternalSecrets. Argo CD
#: refuses to sync any other kind (AppProject namespaceResourceWhitelist); cluster-scoped kinds are never listed.
APP_KINDS: tuple[tuple[str, str], ...] = (
    ("", "Service"),
    ("", "ServiceAccount"),
    ("apps", "Deployment"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("policy", "PodDisruptionBudget"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("gateway.networking.k8s.io", "HTTPRoute"),
    ("external-secrets.io", "ExternalSecret"),
    ("flagger.app", "Canary"),
    ("monitoring.coreos.com", "ServiceMonitor"),
    ("monitoring.coreos.com", "PrometheusRule"),  # the app's SLO rules (apps/base/<app>/slo.yaml)
)
_VARIABLE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


def enabled(fleet: ResolvedFleet) -> bool:
    """Whether Argo CD delivers the apps."""
    return fleet.fleet.delivery.apps == "argocd"


def hub(fleet: ResolvedFleet) -> ResolvedCluster | None:
    """The management cluster."""
    return next((c for c in fleet.clusters if c.cluster.role == "hub"), None)


def argocd_namespace(fleet: ResolvedFleet) -> str:
    """Namespace of the argo-cd component (where Argo CD reads Applications, projects and cluster Secrets)."""
    return next((c.namespace for c in fleet.components if c.chart.name == ARGOCD_CHART), "argocd")


def _check(fleet: ResolvedFleet) -> ResolvedCluster:
    where = fleet.inventory.fleet.where("delivery", "apps")
    found = hub(fleet)
    problems: list[str] = []
    if found is None:
        problems.append("needs a hub cluster (role: hub): Argo CD runs there")
    else:
        if not runs(found, ARGOCD_CHART):
            problems.append(f"needs a component whose chart is '{ARGOCD_CHART}' enabled on the hub '{found.name}'")
        if not runs(found, "external-secrets"):
            problems.append(f"needs the external-secrets component on the hub '{found.name}' (it writes the Argo CD "
                            "cluster Secrets from the kubeconfig Secrets Crossplane composes)")
    if fleet.fleet.crossplane is None:
        problems.append("needs fleet.crossplane: the hub reaches the spokes through the clusters it composes")
    if problems:
        raise InventoryError([Problem(*where, "fleet.delivery.apps", f"argocd {p}") for p in problems])
    assert found is not None
    return found


def argo_values(value: Any) -> Any:
    """Values with Flux's ``${var}`` turned into reads of the cluster Secret's annotations (Go template), ``$${x}``
    into the literal ``${x}``, and any literal ``{{`` kept literal (the ApplicationSet renders every string)."""
    if isinstance(value, dict):
        return {k: argo_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [argo_values(v) for v in value]
    if not isinstance(value, str):
        return value
    text = value.replace("{{", '{{ "{{" }}')

    def swap(match: re.Match[str]) -> str:
        if match.group(1):
            return "${" + match.group(2) + "}"
        return f'{{{{ index .metadata.annotations "{VARIABLE_ANNOTATION}{match.group(2)}" }}}}'

    return _VARIABLE.sub(swap, text)


def _app_targets(fleet: ResolvedFleet) -> dict[str, list[tuple[ResolvedCluster, ResolvedApp]]]:
    targets: dict[str, list[tuple[ResolvedCluster, ResolvedApp]]] = {}
    for cluster in fleet.clusters:
        for app in cluster.apps:
            targets.setdefault(app.name, []).append((cluster, app))
    return targets


def _repo_path(fleet: ResolvedFleet, path: str) -> str:
    return "/".join(p for p in (fleet.fleet.git.path.strip("/"), path) if p)


def _application_set(fleet: ResolvedFleet, namespace: str, name: str, app: ResolvedApp,
                     clusters: list[str], plain_files: list[str]) -> dict[str, Any]:
    git = fleet.fleet.git
    labels = {TEAM_LABEL: app.team.name, APP_LABEL: app.name}
    sources: list[dict[str, Any]] = [{
        "repoURL": git.url, "targetRevision": git.branch, "path": _repo_path(fleet, "charts/service"),
        "helm": {"releaseName": app.name, "valuesObject": argo_values(canonical(app.values.merged))},
    }]
    if plain_files:  # the app's ExternalSecrets and SLO rules, applied as they are (Argo CD's brace glob)
        include = plain_files[0] if len(plain_files) == 1 else "{" + ",".join(plain_files) + "}"
        sources.append({"repoURL": git.url, "targetRevision": git.branch,
                        "path": _repo_path(fleet, f"apps/base/{app.name}"),
                        "directory": {"include": include}})
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "goTemplate": True,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [{"clusters": {"selector": {
                "matchLabels": {CLUSTER_SECRET_LABEL: "cluster"},
                "matchExpressions": [{"key": CLUSTER_LABEL, "operator": "In", "values": sorted(clusters)}]}}}],
            "template": {
                "metadata": {"name": f"{app.name}-{{{{.name}}}}",
                             "labels": {**labels, CLUSTER_LABEL: "{{.name}}"}},
                "spec": {
                    "project": app.team.name,
                    "destination": {"name": "{{.name}}", "namespace": app.app.target_namespace},
                    "sources": sources,
                    "syncPolicy": {"automated": {"prune": True, "selfHeal": True},
                                   "retry": {"limit": 5, "backoff": {"duration": "30s", "factor": 2,
                                                                     "maxDuration": "5m"}}},
                },
            },
        },
    }


def _projects(fleet: ResolvedFleet, namespace: str) -> list[dict[str, Any]]:
    destinations: dict[str, set[tuple[str, str]]] = {}
    for cluster in fleet.clusters:
        for app in cluster.apps:
            destinations.setdefault(app.team.name, set()).add((cluster.name, app.app.target_namespace))
    projects = []
    for team in fleet.teams:
        if team.name not in destinations:
            continue
        projects.append({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
            "metadata": {"name": team.name, "namespace": namespace, "labels": {TEAM_LABEL: team.name}},
            "spec": {
                "description": f"Apps of team {team.name}: its namespaces only, from the fleet repo only.",
                "sourceRepos": [fleet.fleet.git.url],
                "destinations": [{"name": c, "namespace": ns} for c, ns in sorted(destinations[team.name])],
                # no clusterResourceWhitelist: a project admits no cluster-scoped kind unless listed
                "namespaceResourceWhitelist": [{"group": g, "kind": k} for g, k in APP_KINDS],
            },
        })
    return projects


def _cluster_config_template(fleet: ResolvedFleet, cluster: ResolvedCluster) -> str:
    """The Argo CD cluster ``config`` (declarative-setup.md "Clusters"), as an External Secrets v2 template over
    the composed kubeconfig: EKS signs in with IAM (``awsAuthConfig``), others with the kubeconfig's own user."""
    first = f"(index (.{KUBECONFIG_KEY} | fromYaml).clusters 0).cluster"
    ca = f'{{{{ get {first} "certificate-authority-data" }}}}'
    crossplane = fleet.fleet.crossplane
    if cluster.cluster.cloud == "aws":
        role = crossplane.hub.flux_role_arn if crossplane is not None else None
        role_part = f',"roleARN":"{role}"' if role else ""
        auth = f'{{"clusterName":"{cluster.name}"{role_part}}}'
        return f'{{"awsAuthConfig":{auth},"tlsClientConfig":{{"caData":"{ca}"}}}}'
    return (
        f"{{{{- $user := (index (.{KUBECONFIG_KEY} | fromYaml).users 0).user -}}}}"
        f'{{{{- $tls := dict "caData" (get {first} "certificate-authority-data") -}}}}'
        '{{- if hasKey $user "client-certificate-data" -}}'
        '{{- $_ := set $tls "certData" (get $user "client-certificate-data") -}}'
        '{{- $_ := set $tls "keyData" (get $user "client-key-data") -}}{{- end -}}'
        '{{- $config := dict "tlsClientConfig" $tls -}}'
        '{{- if hasKey $user "token" -}}{{- $_ := set $config "bearerToken" (get $user "token") -}}{{- end -}}'
        "{{ toJson $config }}"
    )


def _access(fleet: ResolvedFleet, namespace: str, spokes: list[ResolvedCluster]) -> list[dict[str, Any]]:
    """A reader identity for External Secrets' kubernetes provider (external-secrets v2.9 SecretStore
    ``provider.kubernetes``), allowed to get exactly the kubeconfig Secrets and the Flux git Secret, and the two
    SecretStores using it."""
    crossplane = fleet.fleet.crossplane
    assert crossplane is not None
    reader = "argocd-secret-reader"
    docs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "ServiceAccount",
                                   "metadata": {"name": reader, "namespace": namespace}}]
    grants = {crossplane.namespace: sorted(f"{c.name}-kubeconfig" for c in spokes),
              FLUX_NAMESPACE: [fleet.fleet.git.secret_name]}
    for remote, names in grants.items():
        role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": reader, "namespace": remote},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": names,
                           "verbs": ["get"]}]}
        binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": reader, "namespace": remote},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": reader},
                   "subjects": [{"kind": "ServiceAccount", "name": reader, "namespace": namespace}]}
        store = {"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                 "metadata": {"name": remote, "namespace": namespace},
                 "spec": {"provider": {"kubernetes": {
                     "remoteNamespace": remote,
                     "server": {"caProvider": {"type": "ConfigMap", "name": "kube-root-ca.crt", "key": "ca.crt"}},
                     "auth": {"serviceAccount": {"name": reader}}}}}}
        docs += [role, binding, store]
    return docs


def _cluster_secret(fleet: ResolvedFleet, namespace: str, cluster: ResolvedCluster) -> dict[str, Any]:
    crossplane = fleet.fleet.crossplane
    assert crossplane is not None
    variables = cluster.variables(fleet.fleet)
    first = f"(index (.{KUBECONFIG_KEY} | fromYaml).clusters 0).cluster"
    return {
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": f"cluster-{cluster.name}", "namespace": namespace,
                     "labels": {CLUSTER_LABEL: cluster.name}},
        "spec": {
            "refreshInterval": "10m",
            "secretStoreRef": {"kind": "SecretStore", "name": crossplane.namespace},
            "target": {"name": f"cluster-{cluster.name}", "creationPolicy": "Owner", "template": {
                "engineVersion": "v2",
                "metadata": {
                    "labels": {CLUSTER_SECRET_LABEL: "cluster", CLUSTER_LABEL: cluster.name,
                               ENVIRONMENT_LABEL: cluster.cluster.environment},
                    "annotations": {f"{VARIABLE_ANNOTATION}{k}": v for k, v in sorted(variables.items())},
                },
                "data": {"name": cluster.name, "server": f"{{{{ {first}.server }}}}",
                         "config": _cluster_config_template(fleet, cluster)},
            }},
            "data": [{"secretKey": KUBECONFIG_KEY,
                      "remoteRef": {"key": f"{cluster.name}-kubeconfig", "property": KUBECONFIG_KEY}}],
        },
    }


def _repository_secret(fleet: ResolvedFleet, namespace: str) -> dict[str, Any]:
    """The fleet repo for Argo CD (declarative-setup.md "Repositories"), from the hub's Flux git Secret: ssh
    ``identity`` → ``sshPrivateKey``, https ``username``/``password`` as they are."""
    git = fleet.fleet.git
    ssh = git.url.startswith("ssh://")
    keys = {"sshPrivateKey": "identity"} if ssh else {"username": "username", "password": "password"}
    data = {"type": "git", "url": git.url, **{k: f"{{{{ .{k} }}}}" for k in keys}}
    return {
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "fleet-repository", "namespace": namespace},
        "spec": {
            "refreshInterval": "10m",
            "secretStoreRef": {"kind": "SecretStore", "name": FLUX_NAMESPACE},
            "target": {"name": "fleet-repository", "creationPolicy": "Owner", "template": {
                "engineVersion": "v2",
                "metadata": {"labels": {CLUSTER_SECRET_LABEL: "repository"}},
                "data": data,
            }},
            "data": [{"secretKey": k, "remoteRef": {"key": git.secret_name, "property": v}} for k, v in keys.items()],
        },
    }


def plan_argocd(fleet: ResolvedFleet) -> Contribution:
    """The hub's Argo CD objects (``apps/argocd/``) and the Flux Kustomization that applies them there."""
    contribution = Contribution()
    if not enabled(fleet):
        return contribution
    the_hub = _check(fleet)
    namespace = argocd_namespace(fleet)
    planner = Planner()
    sources = [fleet.inventory.fleet.file.file, *(a.file.file for a in fleet.inventory.apps),
               *(t.file.file for t in fleet.inventory.teams)]
    spokes = [c for c in fleet.clusters if c.apps]
    planner.add_yaml(f"{APPS_DIR}/projects.yaml", _projects(fleet, namespace), sources)
    planner.add_yaml(f"{APPS_DIR}/access.yaml", _access(fleet, namespace, spokes), sources)
    planner.add_yaml(f"{APPS_DIR}/clusters.yaml",
                     [_repository_secret(fleet, namespace), *(_cluster_secret(fleet, namespace, c) for c in spokes)],
                     sources)
    resources = ["projects.yaml", "access.yaml", "clusters.yaml"]
    plain_files = {a.name: [name for name, present in (("external-secrets.yaml", bool(a.secrets)),
                                                        ("slo.yaml", a.slo is not None)) if present]
                   for a in fleet.apps}
    for app_name, targets in sorted(_app_targets(fleet).items()):
        groups: dict[str, tuple[ResolvedApp, list[str]]] = {}
        for cluster, app in targets:
            key = f"{app_name}-{cluster.name}" if app.values.cluster else f"{app_name}-{cluster.cluster.environment}"
            groups.setdefault(key, (app, []))[1].append(cluster.name)
        docs = [_application_set(fleet, namespace, key, app, clusters, plain_files[app_name])
                for key, (app, clusters) in sorted(groups.items())]
        planner.add_yaml(f"{APPS_DIR}/{app_name}.yaml", docs, sources)
        resources.append(f"{app_name}.yaml")
    planner.add_yaml(f"{APPS_DIR}/kustomization.yaml", [{"apiVersion": "kustomize.config.k8s.io/v1beta1",
                                                         "kind": "Kustomization", "resources": resources}], sources)
    tuning = the_hub.settings.sync.apps
    path = "./" + _repo_path(fleet, APPS_DIR)
    kustomization = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "apps-argocd", "namespace": FLUX_NAMESPACE},
        "spec": {"dependsOn": [{"name": "infra-configs"}], "interval": tuning.interval,
                 "retryInterval": tuning.retry_interval, "timeout": tuning.timeout, "prune": tuning.prune,
                 # no wait: a cluster Secret stays pending until Crossplane has created its cluster
                 "wait": False, "sourceRef": {"kind": "GitRepository", "name": "flux-system"}, "path": path},
    }
    hub_file = f"clusters/{the_hub.name}/apps-argocd.yaml"
    planner.add_yaml(hub_file, [kustomization], [*the_hub.sources, fleet.inventory.fleet.file.file])
    contribution.files = planner.files
    contribution.cluster_resources[the_hub.name] = [hub_file]
    return contribution
