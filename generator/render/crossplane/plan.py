"""Plan the infrastructure repo (OUT/infrastructure/) and the hub's extra fleet files, as ``{path: text}``."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from generator.inventory.crossplane_data import crossplane_data
from generator.inventory.models import CrossplaneSettings
from generator.inventory.resolve import ResolvedCluster, ResolvedFleet
from generator.render import esoidentity
from generator.render.crossplane import api, bootstrap, compositions, hub_identity, packages, vault
from generator.render.crossplane.common import Mode, Obj
from generator.render.crossplane.failover import add_failover, check_failover, failover_apps
from generator.render.crossplane.objects import FLEET_CLUSTER_LABEL, cluster_documents
from generator.render.crossplane.objectstore import OBJECT_STORE_COMPOSITIONS, store_documents
from generator.render.planner import Contribution, Planner, environment
from generator.render.sharding import hub_shards, spoke_shard

if TYPE_CHECKING:
    from generator.render.memo import PlannerMemo

#: The objects the hub's federated Flux controllers mount, next to its FluxInstance (hub_identity.py).
FEDERATION_FILE = "hub-federation.yaml"


@functools.cache
def _yaml_environment() -> Any:
    """The template environment of the planners here, which add YAML data only (built once per process)."""
    return environment()


def mode_of(settings: CrossplaneSettings) -> Mode:
    """API mode and names of a fleet's Crossplane settings."""
    data = crossplane_data()
    return Mode(settings.legacy_claims, settings.namespace, data["group"], data["version"])


def workload_clusters(fleet: ResolvedFleet) -> list[ResolvedCluster]:
    """The clusters Crossplane provisions (the hub exists before Crossplane does)."""
    return [c for c in fleet.clusters if c.cluster.role == "workload"]


def hub_cluster(fleet: ResolvedFleet) -> ResolvedCluster | None:
    """The management cluster."""
    return next((c for c in fleet.clusters if c.cluster.role == "hub"), None)


def facts_of(fleet: ResolvedFleet) -> compositions.Facts:
    """Fleet-wide facts the compositions are rendered with."""
    settings = fleet.fleet.crossplane
    assert settings is not None
    data = crossplane_data()
    azure = settings.azure
    return compositions.Facts(mode_of(settings), data["sizes"], data["engineVersions"],
                              azure.tenant_id if azure else None, azure.database_admins if azure else None)


@dataclass
class Infrastructure:
    """The infrastructure repo as objects: ``{path: (documents, source files)}``."""

    files: dict[str, tuple[list[Obj], list[str]]] = field(default_factory=dict)

    def add(self, path: str, documents: list[Obj], sources: list[str]) -> None:
        """Add one file (documents are copied, so no two places share an object and YAML has no aliases)."""
        self.files[path] = (unshared(documents), sources)

    def documents(self, prefix: str = "") -> list[Obj]:
        """Every document of the files below ``prefix``."""
        return [doc for path, (docs, _) in sorted(self.files.items()) if path.startswith(prefix) for doc in docs]


def _copied(path: str, documents: list[Obj], sources: list[str]) -> tuple[str, list[Obj], list[str]]:
    """A file of documents that may share objects with other files or module data, copied (``unshared``)."""
    return path, unshared(documents), sources


def unshared(documents: list[Obj]) -> list[Obj]:
    """A deep copy in which no object is shared (YAML emitters turn shared objects into anchors)."""
    copied: list[Obj] = json.loads(json.dumps(documents))
    return copied


def _kustomization(resources: list[str]) -> Obj:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources}


def _secrets_account_configs(fleet: ResolvedFleet, base: Obj) -> list[Obj]:
    """The ClusterProviderConfig that creates External Secrets' target roles in the secrets account, when some
    EKS cluster chains to one (generator/render/esoidentity.py; the role ARN is checked set by the loader)."""
    backend = fleet.fleet.security.secrets
    role_arn = backend.aws.provider_role_arn if backend is not None and backend.aws is not None else None
    if role_arn is None or not any((i := esoidentity.aws_identity(fleet.fleet, c)) is not None and i.target_role_name
                                   for c in workload_clusters(fleet)):
        return []
    return [packages.chained_provider_config(base, esoidentity.secrets_provider_config_name(), role_arn)]


def build_infrastructure(fleet: ResolvedFleet) -> Infrastructure:
    """Every object of the infrastructure repo, grouped by file (empty without ``fleet.crossplane``)."""
    return Infrastructure({path: (documents, sources) for path, documents, sources in _infrastructure_files(fleet)})


def _infrastructure_files(fleet: ResolvedFleet, *, clusters: bool = True) -> Iterator[tuple[str, list[Obj], list[str]]]:
    """The files of the infrastructure repo, one at a time (planning emits each before the next is built). Shared
    documents are copied (``unshared``); a cluster's file is built for it alone, of JSON data, and kept as built
    (without ``clusters``, the workload clusters' own files are left out: ``_cluster_objects`` plans them)."""
    settings = fleet.fleet.crossplane
    workloads = workload_clusters(fleet)
    if settings is None or not workloads:
        return
    data = crossplane_data()
    facts = facts_of(fleet)
    mode = facts.mode
    hub = hub_cluster(fleet)
    hub_cloud = hub.cluster.cloud if hub else "aws"
    fleet_file = fleet.inventory.fleet.file.file
    cluster_files = {c.name: sorted({*c.sources}) for c in workloads}
    clouds: list[str] = sorted({c.cluster.cloud for c in workloads})
    db_clouds: list[str] = sorted({c.cluster.cloud for c in workloads if c.cluster.databases})
    cache_clouds: list[str] = sorted({c.cluster.cloud for c in workloads if c.cluster.caches})

    apis: list[tuple[api.Api, Obj, list[str], dict[str, compositions.Builder]]] = [
        (api.CLUSTER, api.cluster_schema(data["limits"], data["instanceTypePatterns"]), clouds,
         compositions.CLUSTER_COMPOSITIONS),
        (api.NETWORK, api.network_schema(), clouds, compositions.NETWORK_COMPOSITIONS),
    ]
    if db_clouds:
        apis.append((api.DATABASE, api.database_schema(data["databaseVersions"]), db_clouds,
                     compositions.DATABASE_COMPOSITIONS))
    if cache_clouds:
        apis.append((api.CACHE, api.cache_schema(), cache_clouds, compositions.CACHE_COMPOSITIONS))
    check_failover(fleet)
    if failover_apps(fleet):  # multi-region prod: global DNS failover (generator/render/crossplane/failover.py)
        apis.append((api.DNS_FAILOVER, api.dns_failover_schema(), ["aws"], compositions.DNS_FAILOVER_COMPOSITIONS))
    stores = store_documents(fleet, hub, mode, {FLEET_CLUSTER_LABEL: hub.name}) if hub else []
    if stores:  # the hub's observability buckets and write identities (generator/render/crossplane/objectstore.py)
        apis.append((api.OBJECT_STORE, api.object_store_schema(), [hub_cloud], OBJECT_STORE_COMPOSITIONS))
        clouds = sorted({*clouds, hub_cloud})

    groups: dict[str, set[str]] = {cloud: set() for cloud in clouds}
    api_files, composition_files = [], []
    for platform_api, schema, api_clouds, builders in apis:
        path = f"apis/{platform_api.short}/definition.yaml"
        yield _copied(path, [api.definition(platform_api, schema, mode)], [fleet_file])
        api_files.append(f"{platform_api.short}/definition.yaml")
        for cloud in api_clouds:
            comp = builders[cloud](facts)
            name = comp["metadata"]["name"]
            yield _copied(f"compositions/{name}.yaml", [comp], [fleet_file])
            composition_files.append(f"{name}.yaml")
            groups[cloud].update(compositions.script_resource_kinds(name.replace("-", "_")))
    yield _copied("apis/kustomization.yaml", [_kustomization(sorted(api_files))], [fleet_file])
    yield _copied("compositions/kustomization.yaml", [_kustomization(sorted(composition_files))], [fleet_file])

    function_versions = {str(k): v for k, v in settings.function_versions.items()}
    yield _copied("providers/functions.yaml", packages.functions(data["functions"], function_versions), [fleet_file])
    provider_files, config_files = ["functions.yaml"], []
    for cloud in clouds:
        pin = data["providers"][cloud]
        by_group = {group: member for member, group in pin["members"].items()}
        members = sorted(by_group[g] for g in groups[cloud] if g in by_group)
        version = {str(k): v for k, v in settings.provider_versions.items()}.get(cloud, pin["version"])
        yield _copied(f"providers/{cloud}.yaml", [*packages.runtime(cloud, settings, hub_cloud),
                                              *packages.providers(cloud, pin, members, version)], [fleet_file])
        provider_files.append(f"{cloud}.yaml")
        configs = [packages.provider_config(cloud, settings, hub_cloud, pin["configGroup"])]
        configs += _secrets_account_configs(fleet, configs[0]) if cloud == "aws" else []
        yield _copied(f"provider-configs/{cloud}.yaml", configs, [fleet_file])
        config_files.append(f"{cloud}.yaml")
    secrets = fleet.fleet.security.secrets
    if secrets is not None and secrets.vault is not None \
            and any(esoidentity.vault_identity(fleet.fleet, c) is not None for c in workloads):
        pin = data["vaultProvider"]
        yield _copied("providers/vault.yaml", vault.provider(pin), [fleet_file])
        provider_files.append("vault.yaml")
        yield _copied("provider-configs/vault.yaml", [vault.provider_config(secrets.vault, pin["configGroup"])],
                  [fleet_file])
        config_files.append("vault.yaml")
    yield _copied("providers/kustomization.yaml", [_kustomization(provider_files)], [fleet_file])
    yield _copied("provider-configs/kustomization.yaml", [_kustomization(config_files)], [fleet_file])

    failover_files = {s.file.file for s in fleet.inventory.apps if s.item.failover is not None}
    for cluster in workloads if clusters else ():
        yield (f"clusters/{cluster.name}.yaml",
               add_failover(fleet, cluster, mode, cluster_documents(fleet.fleet, cluster, mode, hub)),
               sorted({*cluster_files[cluster.name], *failover_files}))
    declared = {s.item.name: s.file.file for s in fleet.inventory.clusters}
    cluster_files_listed = [f"{c.name}.yaml" for c in workloads]
    if stores and hub is not None:  # the hub's own objects: its composed object stores
        yield _copied(f"clusters/{hub.name}.yaml", stores, sorted({declared[hub.name], fleet_file}))
        cluster_files_listed = [f"{hub.name}.yaml", *cluster_files_listed]
    yield _copied("clusters/kustomization.yaml", [_kustomization(cluster_files_listed)],
              sorted({declared[c.name] for c in workloads}))


def plan_infrastructure(fleet: ResolvedFleet, memo: PlannerMemo | None = None) -> dict[str, str]:
    """Files of OUT/infrastructure/ (paths relative to it), each with the generated header; with ``memo``
    (generator/render/memo.py) a workload cluster's file is read from it where its inputs did not change."""
    planner = Planner()
    for path, documents, sources in _infrastructure_files(fleet, clusters=memo is None):
        planner.add_yaml(path, documents, sources)
    if memo is not None:
        _cluster_objects(fleet, memo, planner)
    return dict(sorted(planner.files.items()))


def _cluster_objects(fleet: ResolvedFleet, memo: PlannerMemo, planner: Planner) -> None:
    """Each workload cluster's ``clusters/<cluster>.yaml`` (as ``_infrastructure_files`` plans it), through
    ``memo``: a function of the cluster, the fleet-level inventory, the hub (how the hub reaches the cluster) and
    the secondary cluster of each failover app whose primary it is (its database replicas' region and network)."""
    settings = fleet.fleet.crossplane
    workloads = workload_clusters(fleet)
    if settings is None or not workloads:
        return
    mode = mode_of(settings)
    hub = hub_cluster(fleet)
    hub_input = (hub.name, memo.identity(fleet, hub.name)) if hub is not None else None
    failover_files = {s.file.file for s in fleet.inventory.apps if s.item.failover is not None}
    secondaries: dict[str, list[tuple[str, str, bytes | None]]] = {}
    for app in failover_apps(fleet):  # checked by _infrastructure_files: both clusters exist
        assert app.failover is not None
        peer = app.failover.secondary
        secondaries.setdefault(app.failover.primary, []).append((app.name, peer, memo.identity(fleet, peer)))
    for cluster in workloads:
        def part(cluster: ResolvedCluster = cluster) -> dict[str, str]:
            files = Planner(planner.env)
            files.add_yaml(f"clusters/{cluster.name}.yaml",
                           add_failover(fleet, cluster, mode, cluster_documents(fleet.fleet, cluster, mode, hub)),
                           sorted({*cluster.sources, *failover_files}))
            return files.files

        planner.files.update(memo.cluster_part("cluster-object", fleet, cluster, part, hub_input,
                                               secondaries.get(cluster.name, [])))


def _flux_path(prefix: str, path: str) -> str:
    return "./" + "/".join(p for p in (prefix.strip("/"), path) if p)


def build_hub_bootstrap(fleet: ResolvedFleet) -> dict[str, tuple[list[Obj], list[str]]]:
    """The hub's extra fleet files as objects: ``{path relative to OUT/fleet: (documents, sources)}``."""
    return {path: (documents, sources) for path, documents, sources in _hub_bootstrap_files(fleet)
            if not isinstance(documents, str)}


def _hub_bootstrap_files(fleet: ResolvedFleet, memo: PlannerMemo | None = None
                         ) -> Iterator[tuple[str, list[Obj] | str, list[str]]]:
    """The hub's extra fleet files, one at a time (planning emits each before the next is built, so a fleet's
    thousands of spoke documents are never all alive at once); with ``memo``, each spoke's file as planned text,
    read from it where its inputs did not change."""
    settings = fleet.fleet.crossplane
    hub = hub_cluster(fleet)
    workloads = workload_clusters(fleet)
    if settings is None or hub is None or not workloads:
        return
    chart, inventory_values = bootstrap.flux_operator_chart(fleet)
    values = unshared([inventory_values])[0]  # JSON data, once: every spoke's HelmRelease has these values
    # build_infrastructure writes a kustomization.yaml into every step's folder whenever it writes anything
    steps = list(bootstrap.STEPS)
    fleet_file = fleet.inventory.fleet.file.file
    base = f"clusters/{hub.name}"
    sources = sorted({*hub.sources, fleet_file})
    yield f"{base}/crossplane.yaml", bootstrap.sync_documents(
        settings, chart, lambda step: _flux_path(settings.infrastructure_path, step), steps,
        {"fleet.gitops.io/layer": "crossplane"}), sources
    shards = hub_shards(len(workloads))
    for cluster in workloads:
        def spoke(cluster: ResolvedCluster = cluster) -> list[Obj]:
            return bootstrap.spoke_documents(settings, cluster, values,
                                             lambda folder: _flux_path(fleet.fleet.git.path, folder),
                                             spoke_shard(cluster.name, shards))

        path, spoke_sources = f"{base}/spokes/{cluster.name}.yaml", sorted({*cluster.sources, fleet_file})
        if memo is None:
            yield path, spoke(), spoke_sources
            continue

        def planned(cluster: ResolvedCluster = cluster, spoke_sources: list[str] = spoke_sources) -> dict[str, str]:
            files = Planner(_yaml_environment())
            files.add_yaml("spoke", spoke(cluster), spoke_sources)
            return files.files

        # a function of the cluster, the fleet-level inventory and the number of shards (its shard)
        yield path, memo.cluster_part("hub-spoke", fleet, cluster, planned, len(shards))["spoke"], spoke_sources
    yield f"{base}/spokes/kustomization.yaml", [_kustomization([f"{c.name}.yaml" for c in workloads])], sources


def plan_hub_bootstrap(fleet: ResolvedFleet, memo: PlannerMemo | None = None) -> dict[str, str]:
    """Extra files of OUT/fleet/ for the hub (paths relative to OUT/fleet), each with the generated header (the
    spokes' through ``memo`` when given)."""
    planner = Planner(_yaml_environment())
    for path, documents, sources in _hub_bootstrap_files(fleet, memo):
        if isinstance(documents, str):
            planner.add_planned(path, documents)
        else:
            planner.add_yaml(path, documents, sources)  # JSON data built per file (the emitter writes no aliases)
    return dict(sorted(planner.files.items()))


def hub_resources(fleet: ResolvedFleet) -> list[str]:
    """Entries to add to ``clusters/<hub>/kustomization.yaml`` resources (empty when nothing is rendered)."""
    return _hub_resources(bool(build_hub_bootstrap(fleet)))


def _hub_resources(bootstrapped: bool) -> list[str]:
    return ["crossplane.yaml", "spokes"] if bootstrapped else []


def fleet_contribution(fleet: ResolvedFleet, memo: PlannerMemo | None = None) -> Contribution:
    """The hub bootstrap as a :class:`~generator.render.planner.Contribution` for ``plan_fleet`` (the spokes'
    files through ``memo`` when given)."""
    files = plan_hub_bootstrap(fleet, memo)
    hub = hub_cluster(fleet)
    contribution = Contribution(files=files)
    if files and hub is not None:
        contribution.cluster_resources[hub.name] = [f"clusters/{hub.name}/{entry}" for entry in _hub_resources(True)]
        # the spoke bootstrap HelmReleases, Kustomizations and the Flux Operator chart source live there
        assert fleet.fleet.crossplane is not None
        contribution.flux_namespaces[hub.name] = [fleet.fleet.crossplane.namespace]
        # the hub's controllers federate to GCP/Azure for GKE/AKS spokes (hub_identity.py)
        patches = hub_identity.hub_flux_patches(fleet.fleet.crossplane)
        if patches:
            contribution.flux_patches[hub.name] = patches
        federation = hub_identity.hub_federation_documents(fleet.fleet.crossplane)
        if federation:
            planner = Planner()
            planner.add_yaml(f"clusters/{hub.name}/flux-system/{FEDERATION_FILE}", federation,
                             [*hub.sources, fleet.inventory.fleet.file.file])
            contribution.files.update(planner.files)
            contribution.flux_system_files[hub.name] = [FEDERATION_FILE]
    return contribution
