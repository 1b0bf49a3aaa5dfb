"""Offline Argo CD: expand the hub's ApplicationSets per cluster and template what each Application deploys.

The hub's golden tree gets the Applications the ApplicationSet controller would generate; every target cluster's
golden tree gets what those Applications sync, templated by the same ``helm template`` the Flux path uses (same
chart, values, Kubernetes version and API versions of that cluster), under ``argocd/application.<ns>.<name>/``.

Upstream semantics followed (argoproj/argo-cd v3.4/v3.5):

- cluster generator (``docs/operator-manual/applicationset/Generators-Cluster.md``): one parameter set per cluster
  Secret (``argocd.argoproj.io/secret-type: cluster``) matching ``selector`` (a label selector: ``matchLabels``
  and ``matchExpressions`` ANDed); parameters ``name``, ``nameNormalized``, ``server``, ``metadata.labels``,
  ``metadata.annotations``. Offline the Secrets are the ExternalSecrets' templates; ``server`` is only known on
  the hub, so a template that reads it cannot be expanded here and fails the build;
- ``goTemplate`` with ``missingkey=error``: this expander evaluates exactly the actions fleetgen writes
  (``.name``, ``.nameNormalized``, ``index .metadata.labels|annotations "key"``, string literals) and refuses
  anything else rather than guess;
- resource tracking (``util/argo/resource_tracking.go``): annotation tracking, the default since v3.0,
  ``argocd.argoproj.io/tracking-id: <app>:<group>/<kind>:<namespace>/<name>``;
- AppProject: a destination must be listed, a cluster-scoped kind must be in ``clusterResourceWhitelist`` and a
  namespaced one in ``namespaceResourceWhitelist`` when that is set, otherwise Argo CD refuses to sync — here the
  build fails with the object named;
- a ``directory`` source with ``include`` applies the matching files of the path as they are (no substitution).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from generator.errors import FleetgenError
from generator.render.argocd import CLUSTER_SECRET_LABEL

if TYPE_CHECKING:
    from generator.build.model import ClusterState
    from generator.build.walker import Builder

Obj = dict[str, Any]
TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"
_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)
_INDEX = re.compile(r'^index \.metadata\.(labels|annotations) "([^"]*)"$')
_LITERAL = re.compile(r'^"((?:[^"\\]|\\.)*)"$')
_NORMALIZE = re.compile(r"[^a-z0-9.-]")


class ArgoExpandError(FleetgenError):
    """An ApplicationSet or Application fleetgen cannot expand offline, or Argo CD would refuse to sync."""


def cluster_parameters(objects: list[Obj]) -> dict[str, Obj]:
    """The cluster generator's parameters of every cluster Secret the hub's objects produce, by cluster name."""
    found: dict[str, Obj] = {}
    for obj in objects:
        if obj.get("kind") == "Secret" and (obj.get("metadata") or {}).get("labels", {}).get(
                CLUSTER_SECRET_LABEL) == "cluster":
            meta, data = obj["metadata"], dict(obj.get("stringData") or {})
        elif obj.get("kind") == "ExternalSecret":
            template = ((obj.get("spec") or {}).get("target") or {}).get("template") or {}
            meta, data = template.get("metadata") or {}, dict(template.get("data") or {})
            if (meta.get("labels") or {}).get(CLUSTER_SECRET_LABEL) != "cluster":
                continue
        else:
            continue
        name = str(data.get("name", ""))
        if not name or "{{" in name:
            raise ArgoExpandError(f"cluster Secret {(obj.get('metadata') or {}).get('name')}: its name must be "
                                  "a literal to expand ApplicationSets offline")
        found[name] = {"name": name, "nameNormalized": _NORMALIZE.sub("-", name.lower()), "server": None,
                       "metadata": {"labels": dict(meta.get("labels") or {}),
                                    "annotations": dict(meta.get("annotations") or {})}}
    return found


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions, ANDed)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], list(expression.get("values") or [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ArgoExpandError(f"selector operator {operator!r} is not a label selector operator")
    return True


def _action(expression: str, params: Obj, what: str) -> str:
    if expression in (".name", ".nameNormalized"):
        return str(params[expression[1:]])
    if expression == ".server":
        raise ArgoExpandError(f"{what}: '{{{{.server}}}}' is only known on the hub (the cluster Secret is "
                              "written there): use '{{.name}}'")
    index = _INDEX.match(expression)
    if index:
        section, key = index.groups()
        values = params["metadata"][section]
        if key not in values:  # missingkey=error
            raise ArgoExpandError(f"{what}: the cluster Secret of '{params['name']}' has no {section[:-1]} {key!r}")
        return str(values[key])
    literal = _LITERAL.match(expression)
    if literal:
        return re.sub(r"\\(.)", r"\1", literal.group(1))
    raise ArgoExpandError(f"{what}: template action '{{{{ {expression} }}}}' is not one fleetgen expands offline")


def render(value: Any, params: Obj, what: str) -> Any:
    """The ApplicationSet template with one parameter set applied to every string (goTemplate)."""
    if isinstance(value, Mapping):
        return {render(k, params, what): render(v, params, what) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, params, what) for v in value]
    if isinstance(value, str) and "{{" in value:
        return _ACTION.sub(lambda m: _action(m.group(2), params, what), value)
    return value


def expand(appsets: list[Obj], clusters: dict[str, Obj]) -> list[Obj]:
    """The Applications the ApplicationSet controller generates from ``appsets`` for the given cluster Secrets."""
    applications: list[Obj] = []
    for appset in appsets:
        meta, spec = appset["metadata"], appset.get("spec") or {}
        what = f"ApplicationSet {meta.get('namespace')}/{meta['name']}"
        if not spec.get("goTemplate") or "missingkey=error" not in (spec.get("goTemplateOptions") or []):
            raise ArgoExpandError(f"{what}: only goTemplate with missingkey=error is expanded offline")
        for generator in spec.get("generators") or []:
            if set(generator) != {"clusters"}:
                raise ArgoExpandError(f"{what}: only the cluster generator is expanded offline, "
                                      f"not {sorted(generator)}")
            selector = (generator["clusters"] or {}).get("selector") or {}
            for name in sorted(clusters):
                params = clusters[name]
                if not selector_matches(selector, params["metadata"]["labels"]):
                    continue
                template = render(spec["template"], params, what)
                applications.append({
                    "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                    "metadata": {**template["metadata"], "namespace": meta.get("namespace")},
                    "spec": template["spec"], "_appset": meta["name"]})
    return applications


def _allowed(project: Obj, app: Obj, obj: Obj, cluster_scoped: bool) -> str | None:
    """Why Argo CD would refuse to sync ``obj`` under ``project``, or None."""
    spec = project.get("spec") or {}
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    kind = str(obj.get("kind"))
    lists = spec.get("clusterResourceWhitelist") if cluster_scoped else spec.get("namespaceResourceWhitelist")
    listed = any(fnmatch.fnmatchcase(group, str(e.get("group", ""))) and fnmatch.fnmatchcase(kind, str(e["kind"]))
                 for e in lists or [])
    if (lists is not None or cluster_scoped) and not listed:
        return (f"{'cluster' if cluster_scoped else 'namespace'}-scoped {group or 'core'}/{kind} is not "
                f"permitted in project {project['metadata']['name']}")
    destination = app["spec"]["destination"]
    if not any(fnmatch.fnmatchcase(str(destination.get("name")), str(d.get("name", "*")))
               and fnmatch.fnmatchcase(str(destination.get("namespace")), str(d.get("namespace", "*")))
               for d in spec.get("destinations") or []):
        return f"destination {destination} is not permitted in project {project['metadata']['name']}"
    return None


def _brace_alternatives(pattern: str) -> list[str]:
    """``{a,b}`` alternatives of an Argo CD ``directory.include`` glob (one level, as its docs show), each an
    fnmatch pattern."""
    if pattern.startswith("{") and pattern.endswith("}") and "{" not in pattern[1:-1]:
        return pattern[1:-1].split(",")
    if "{" in pattern:
        raise ArgoExpandError(f"directory.include '{pattern}': only a whole-pattern {{a,b}} alternation is expanded")
    return [pattern]


def deliver(builder: Builder, state: ClusterState, hub: str, directory: str) -> None:
    """Add to ``state`` what Argo CD delivers: the generated Applications on the hub, their objects elsewhere."""
    from generator.build.model import golden_name

    what = f"cluster {state.name}: Argo CD ({directory})"
    if directory not in builder.tree.dirs:
        raise ArgoExpandError(f"{what}: the rendered fleet has no folder {directory}")
    state.dirs.add(directory)
    _, objects = builder.kustomize(directory, {}, what)
    appsets = [o for o in objects if o.get("kind") == "ApplicationSet"]
    projects = {str(o["metadata"]["name"]): o for o in objects if o.get("kind") == "AppProject"}
    applications = expand(appsets, cluster_parameters(objects))
    if state.name == hub:
        for app in applications:
            appset = app.pop("_appset")
            body = {k: v for k, v in app.items()}
            ns, name = str(app["metadata"]["namespace"]), str(app["metadata"]["name"])
            group = f"apps-argocd/applicationset.{ns}.{appset}"
            from generator.build.model import BuiltResource

            state.build.resources[f"{group}/{golden_name('Application', ns, name)}"] = BuiltResource(
                "argoproj.io/v1alpha1", "Application", ns, name, group, builder.golden_text(body))
        return
    api_versions = sorted(state.api_versions)
    for app in applications:
        app.pop("_appset")
        spec = app["spec"]
        if spec["destination"].get("name") != state.name:
            continue
        app_name, app_ns = str(app["metadata"]["name"]), str(app["metadata"]["namespace"])
        where = f"{what}: Application {app_ns}/{app_name}"
        project = projects.get(str(spec.get("project")))
        if project is None:
            raise ArgoExpandError(f"{where}: project {spec.get('project')!r} is not defined")
        namespace = str(spec["destination"]["namespace"])
        group = f"argocd/application.{app_ns}.{app_name}"

        def decorate(obj: Obj, obj_ns: str, app_name: str = app_name) -> None:
            meta = obj.setdefault("metadata", {})
            group_name = str(obj.get("apiVersion", "")).rpartition("/")[0]
            meta.setdefault("annotations", {})[TRACKING_ANNOTATION] = (
                f"{app_name}:{group_name}/{obj.get('kind')}:{obj_ns}/{meta.get('name')}")

        for source in spec.get("sources") or [spec.get("source")]:
            if source.get("repoURL") != builder.git_url:
                state.build.warnings.append(f"{where}: source {source.get('repoURL')} is not the fleet repo: "
                                            "not templated")
                continue
            if "helm" in source:
                helm = source["helm"]
                release = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "_group": group,
                           "metadata": {"name": app_name, "namespace": namespace},
                           "spec": {"releaseName": helm.get("releaseName") or app_name,
                                    "chart": {"spec": {"chart": "./" + str(source["path"]),
                                                       "sourceRef": {"kind": "GitRepository", "name": "flux-system",
                                                                     "namespace": "flux-system"}}},
                                    "values": helm.get("valuesObject") or {}}}
                builder._release(state, release, api_versions, group=group, decorate=decorate)
            elif "directory" in source:
                folder = builder.repo_path(str(source["path"]), where)
                include = str((source.get("directory") or {}).get("include") or "*")
                patterns = _brace_alternatives(include)
                for rel in sorted(builder.tree.below(folder)):
                    if not any(fnmatch.fnmatchcase(posixpath.relpath(rel, folder), p) for p in patterns):
                        continue
                    for obj in builder.parse_stream(builder.tree.files[rel], f"{where}: {rel}"):
                        obj_ns = str(obj.get("metadata", {}).get("namespace") or namespace)
                        obj.setdefault("metadata", {})["namespace"] = obj_ns
                        decorate(obj, obj_ns)
                        from generator.build.model import BuiltResource

                        kind, name = str(obj["kind"]), str(obj["metadata"]["name"])
                        state.build.resources[f"{group}/{golden_name(kind, obj_ns, name)}"] = BuiltResource(
                            str(obj["apiVersion"]), kind, obj_ns, name, group, builder.golden_text(obj))
            else:
                raise ArgoExpandError(f"{where}: only helm and directory sources are expanded offline")
        refusals = []
        for rel, res in state.build.resources.items():
            if rel.startswith(group + "/"):
                obj = {"apiVersion": res.api_version, "kind": res.kind}
                reason = _allowed(project, app, obj, cluster_scoped=not res.namespace)
                if reason:
                    refusals.append(f"{res.kind} {res.namespace}/{res.name}: {reason}")
        if refusals:
            raise ArgoExpandError(f"{where}: Argo CD would refuse to sync:\n  " + "\n  ".join(refusals))
