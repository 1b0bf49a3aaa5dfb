"""The hub's Flux wiring (OUT/fleet/clusters/<hub>/): sync the infrastructure repo, and bootstrap new clusters.

Hub-and-spoke, the Flux way: the hub reconciles objects *on* a spoke through ``spec.kubeConfig``: with
``configMapRef`` (Flux's workload identity, provider aws|gcp|azure: the hub's controllers sign in with
``fleet.crossplane.hub.fluxRoleArn`` / ``fluxGcp`` / ``fluxAzure``, granted by the spoke's composition;
generator/render/crossplane/hub_identity.py); an EKS spoke of a hub without ``fluxRoleArn`` with ``secretRef``, the
kubeconfig Secret the spoke's composition writes next to its cluster object. For each workload
cluster the hub installs the Flux Operator there (HelmRelease) and applies ``clusters/<cluster>/flux-system``
(the FluxInstance), after which the new cluster syncs its own ``clusters/<cluster>`` path. The hub never prunes on
a spoke, and keeps re-applying the FluxInstance, which repairs a spoke whose Flux was removed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from generator.inventory.crossplane_data import crossplane_data
from generator.inventory.models import Chart, CrossplaneSettings
from generator.inventory.resolve import ResolvedCluster, ResolvedFleet, canonical
from generator.render.crossplane.common import Obj
from generator.render.crossplane.hub_identity import kubeconfig_provider
from generator.render.crossplane.objects import eks_cluster_arn, kubeconfig_secret
from generator.render.sharding import SHARD_KEY

FLUX_NAMESPACE = "flux-system"
KUSTOMIZE = "kustomize.toolkit.fluxcd.io/v1"
STEPS = ("providers", "provider-configs", "apis", "compositions", "clusters")


def flux_operator_chart(fleet: ResolvedFleet) -> tuple[Chart, dict[str, Any]]:
    """The Flux Operator chart (and base values) the hub installs on new clusters: the inventory's, else the pin."""
    for component in fleet.components:
        if component.chart.name == "flux-operator":
            return component.chart, canonical(component.values)
    return Chart.model_validate(crossplane_data()["fluxOperatorChart"]), {}


def _healthy(kind: str, api_version: str, *conditions: str) -> Obj:
    checks = " && ".join(f"status.conditions.exists(e, e.type == '{c}' && e.status == 'True')" for c in conditions)
    return {"apiVersion": api_version, "kind": kind, "current": checks}


def _kustomization(name: str, path: str, depends: list[str], *, wait: bool, prune: bool,
                   health: list[Obj] | None = None, timeout: str = "10m") -> Obj:
    spec: Obj = {}
    if depends:
        spec["dependsOn"] = [{"name": d} for d in depends]
    spec.update({"interval": "10m", "retryInterval": "2m", "timeout": timeout, "prune": prune, "wait": wait,
                 "sourceRef": {"kind": "GitRepository", "name": FLUX_NAMESPACE}, "path": path})
    if health:
        spec["healthCheckExprs"] = health
    return {"apiVersion": KUSTOMIZE, "kind": "Kustomization",
            "metadata": {"name": name, "namespace": FLUX_NAMESPACE,
                         "labels": {"fleet.gitops.io/layer": "crossplane"}}, "spec": spec}


def sync_documents(settings: CrossplaneSettings, chart: Chart, infra_path: Callable[[str], str],
                   steps: list[str], namespace_labels: dict[str, str]) -> list[Obj]:
    """``clusters/<hub>/crossplane.yaml``: the cluster-object namespace, the Kustomizations of the infrastructure
    repo in dependency order, and the chart source the spoke bootstraps install the Flux Operator from."""
    pkg = "pkg.crossplane.io/v1"
    docs: list[Obj] = [{"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": settings.namespace, "labels": namespace_labels}}]
    health = {"providers": [_healthy("Provider", pkg, "Installed", "Healthy"),
                            _healthy("Function", pkg, "Installed", "Healthy")],
              "apis": [_healthy("CompositeResourceDefinition", "apiextensions.crossplane.io/v2", "Established"),
                       _healthy("CompositeResourceDefinition", "apiextensions.crossplane.io/v1", "Established")]}
    depends = {"providers": ["infra-controllers"], "provider-configs": ["crossplane-providers"],
               "apis": ["crossplane-providers"], "compositions": ["crossplane-apis"],
               "clusters": ["crossplane-compositions", "crossplane-provider-configs"]}
    for step in STEPS:
        if step not in steps:
            continue
        needs = [d for d in depends[step] if d == "infra-controllers" or d.removeprefix("crossplane-") in steps]
        docs.append(_kustomization(
            f"crossplane-{step}", infra_path(step), needs,
            wait=step != "clusters", prune=settings.prune_clusters if step == "clusters" else True,
            health=health.get(step)))
    docs.append({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
                 "metadata": {"name": "flux-operator", "namespace": settings.namespace},
                 "spec": {"interval": "12h", "url": f"{chart.repository.rstrip('/')}/{chart.name}",
                          "ref": {"tag": chart.version},
                          "layerSelector": {"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                                            "operation": "copy"}}})
    return docs


def spoke_documents(settings: CrossplaneSettings, cluster: ResolvedCluster, values: dict[str, Any],
                    flux_path: Callable[[str], str], shard: str | None = None) -> list[Obj]:
    """What makes a new cluster run Flux: the Flux Operator and its FluxInstance, applied through its kubeconfig
    (by the hub's controllers of ``shard``, when the hub is sharded: generator/render/sharding.py)."""
    name = cluster.name
    labels = {"fleet.gitops.io/cluster": name}
    reconciled_by = {SHARD_KEY: shard} if shard else {}
    arn = eks_cluster_arn(settings, cluster) if cluster.cluster.cloud == "aws" else None
    provider: list[Obj] = []
    data = kubeconfig_provider(settings, cluster, arn)
    if data:
        # Flux's own workload identity (kubeConfig.configMapRef, provider aws|gcp|azure; Flux 2.6+): the hub's
        # controllers sign in with their identity, which the cluster composition grants (hub_identity.py).
        config = f"{name}-kubeconfig-provider"
        kube_config: Obj = {"configMapRef": {"name": config}}
        provider.append({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": config, "namespace": settings.namespace, "labels": labels},
                         "data": data})
    else:  # EKS spokes of a hub without fluxRoleArn: the kubeconfig Secret the composition writes (see README)
        kube_config = {"secretRef": {"name": kubeconfig_secret(name), "key": crossplane_data()["kubeconfigKey"]}}
    release: Obj = {
        "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": f"flux-operator-{name}", "namespace": settings.namespace,
                     "labels": {**labels, **reconciled_by}},
        "spec": {"interval": "30m", "timeout": "10m", "releaseName": "flux-operator",
                 "targetNamespace": FLUX_NAMESPACE, "storageNamespace": FLUX_NAMESPACE, "kubeConfig": kube_config,
                 "chartRef": {"kind": "OCIRepository", "name": "flux-operator"},
                 "install": {"createNamespace": True, "crds": "CreateReplace", "remediation": {"retries": -1}},
                 "upgrade": {"crds": "CreateReplace", "remediation": {"retries": 3}}},
    }
    if values:
        release["spec"]["values"] = values
    sync: Obj = {
        "apiVersion": KUSTOMIZE, "kind": "Kustomization",
        "metadata": {"name": f"flux-{name}", "namespace": settings.namespace, "labels": {**labels, **reconciled_by}},
        "spec": {"interval": "10m", "retryInterval": "1m", "timeout": "5m", "prune": False, "wait": False,
                 "kubeConfig": kube_config,
                 "sourceRef": {"kind": "GitRepository", "name": FLUX_NAMESPACE, "namespace": FLUX_NAMESPACE},
                 "path": flux_path(f"clusters/{name}/flux-system")},
    }
    return [*provider, release, sync]
