"""Inventory models (pydantic v2, unknown keys forbidden). YAML keys are camelCase, fields snake_case."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
EXACT_VERSION = r"^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$"
DURATION = r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$"


def _exact_version(value: str) -> str:
    if not re.match(EXACT_VERSION, value):
        raise ValueError(
            f"{value!r} is not an exact version: pin one release like '1.2.3' "
            "(ranges such as '^1.2', '~1.2', '1.x', '>=1.2' make output change without an edit)"
        )
    return value


def _cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a CIDR block ({exc})") from exc
    if network.version != 4:
        raise ValueError(f"{value!r}: only IPv4 CIDR blocks are supported")
    return str(network)


def _not_latest(value: str) -> str:
    if value == "latest":
        raise ValueError("'latest' is not a pin: use an exact tag so golden files change only with an edit")
    return value


DnsLabel = Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]
ExactVersion = Annotated[str, AfterValidator(_exact_version)]
Cidr = Annotated[str, AfterValidator(_cidr)]
Duration = Annotated[str, Field(pattern=DURATION)]
Quantity = Annotated[str, Field(pattern=r"^\d+(?:\.\d+)?(?:m|k|Ki|Mi|Gi|Ti|M|G|T)?$")]
Cloud = Literal["aws", "gcp", "azure"]
Role = Literal["hub", "workload"]
Values = dict[str, Any]


class Model(BaseModel):
    """Base: unknown keys are errors, YAML keys are camelCase, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


# --- fleet ---------------------------------------------------------------------------------------


class GitSource(Model):
    """Where Flux pulls the fleet repo from."""

    url: Annotated[str, Field(pattern=r"^(ssh|https)://[^\s]+$")]
    branch: Annotated[str, Field(pattern=r"^[A-Za-z0-9._/-]+$")] = "main"
    path: Annotated[str, Field(pattern=r"^(?:[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*)?$")] = ""
    secret_name: DnsLabel = "flux-system"


FluxComponent = Literal[
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
    "image-reflector-controller",
    "image-automation-controller",
]
FLUX_COMPONENTS: tuple[FluxComponent, ...] = (
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
    "image-reflector-controller",
    "image-automation-controller",
)
ALL_ROLES: tuple[Role, ...] = ("hub", "workload")


class FluxSettings(Model):
    """The Flux distribution every cluster runs (installed by the Flux Operator's FluxInstance)."""

    version: ExactVersion
    registry: str = "ghcr.io/fluxcd"
    components: list[FluxComponent] = Field(default_factory=lambda: list(FLUX_COMPONENTS))


class Notifications(Model):
    """Where Flux sends alerts (seed: notification controller → Slack, Teams, PagerDuty)."""

    type: Literal["slack", "msteams", "pagerduty", "discord", "googlechat", "webex", "github"] = "slack"
    channel: str = ""
    secret_name: DnsLabel = "flux-notifications"


class Fleet(Model):
    """The organisation-wide facts: who, where the fleet repo lives, which Flux."""

    organization: DnsLabel
    domain: Annotated[str, Field(pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$", max_length=200)]
    git: GitSource
    flux: FluxSettings
    environments: Annotated[list[DnsLabel], Field(min_length=1)]
    notifications: Notifications | None = None
    allowed_registries: list[str] = Field(default_factory=list)


# --- layered settings (built-in defaults ⊕ fleet defaults ⊕ overlays/<env> ⊕ cluster) ------------


class SyncTuning(Model):
    """Flux Kustomization tuning (seed: performance tuning)."""

    interval: Duration = "5m"
    retry_interval: Duration = "2m"
    timeout: Duration = "10m"
    prune: bool = True
    wait: bool = True


class SyncSettings(Model):
    """Tuning for the infrastructure and apps Kustomizations of a cluster."""

    infrastructure: SyncTuning = SyncTuning(interval="10m", wait=True)
    apps: SyncTuning = SyncTuning(interval="5m", wait=False)


class Taint(Model):
    """A node taint."""

    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class NodeGroup(Model):
    """A managed node group / node pool."""

    name: DnsLabel
    instance_type: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+$")]
    min_size: Annotated[int, Field(ge=0, le=1000)]
    max_size: Annotated[int, Field(ge=1, le=1000)]
    desired_size: Annotated[int, Field(ge=0, le=1000)]
    disk_size_gb: Annotated[int, Field(ge=20, le=16384)] = 100
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)


class ComponentSettings(Model):
    """Per-layer toggle and chart values of one platform component."""

    enabled: bool | None = None
    values: Values = Field(default_factory=dict)


class AppSettings(Model):
    """Per-layer toggle, replicas and chart values of one application."""

    enabled: bool | None = None
    replicas: Annotated[int, Field(ge=0, le=1000)] | None = None
    values: Values = Field(default_factory=dict)


class Tenancy(Model):
    """How app teams are confined: Pod Security level of their namespaces and their group's role there."""

    pod_security: Literal["privileged", "baseline", "restricted"] = "restricted"
    team_role: Literal["view", "edit", "admin"] = "edit"


class Settings(Model):
    """Everything that layers: each field may be set in defaults, an overlay, or on a cluster."""

    kubernetes_version: Annotated[str, Field(pattern=r"^\d+\.\d+$")] = "1.34"
    node_groups: list[NodeGroup] = Field(
        default_factory=lambda: [
            NodeGroup(name="system", instance_type="m6i.large", min_size=2, max_size=4, desired_size=3),
        ]
    )
    sync: SyncSettings = SyncSettings()
    components: dict[str, ComponentSettings] = Field(default_factory=dict)
    apps: dict[str, AppSettings] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    tenancy: Tenancy = Tenancy()


# --- clusters --------------------------------------------------------------------------------------


class Networking(Model):
    """Address plan of a cluster's network (VPC / VNet)."""

    vpc_cidr: Cidr
    pod_cidr: Cidr
    service_cidr: Cidr
    private_endpoint: bool = True


class Cluster(Settings):
    """One cluster: identity and network, plus any setting that overrides its environment's."""

    name: Annotated[str, Field(pattern=DNS_LABEL, max_length=40)]
    cloud: Cloud
    region: Annotated[str, Field(pattern=r"^[a-z0-9-]+$")]
    environment: DnsLabel
    role: Role = "workload"
    networking: Networking


# --- components, apps, teams -----------------------------------------------------------------------


class Chart(Model):
    """An upstream Helm chart pinned to one exact version."""

    repository: Annotated[str, Field(pattern=r"^(https|oci)://[^\s]+$")]
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    version: ExactVersion


class Component(Model):
    """A platform component: a namespace, a chart source, a HelmRelease, and optional config objects."""

    name: DnsLabel
    description: str = ""
    namespace: DnsLabel
    chart: Chart
    release_name: DnsLabel | None = None
    roles: Annotated[list[Role], Field(min_length=1)] = Field(default_factory=lambda: list(ALL_ROLES))
    enabled: bool = True
    depends_on: list[DnsLabel] = Field(default_factory=list)
    values: Values = Field(default_factory=dict)
    configs: list[Values] = Field(default_factory=list)
    crds: Literal["Create", "CreateReplace", "Skip"] = "CreateReplace"
    interval: Duration = "30m"
    timeout: Duration = "10m"


class Image(Model):
    """A container image pinned to a tag (not 'latest') and optionally a digest."""

    repository: Annotated[
        str, Field(pattern=r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)+$")
    ]
    tag: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"), AfterValidator(_not_latest)]
    digest: Annotated[str, Field(pattern=r"^(sha256:[a-f0-9]{64})?$")] = ""


class ResourceList(Model):
    """CPU and memory quantities."""

    cpu: Quantity
    memory: Quantity


class Resources(Model):
    """Container requests and limits."""

    requests: ResourceList = ResourceList(cpu="100m", memory="128Mi")
    limits: ResourceList = ResourceList(cpu="500m", memory="256Mi")


class Probes(Model):
    """HTTP paths of the liveness and readiness probes."""

    liveness: Annotated[str, Field(pattern=r"^/[^\s]*$")] = "/healthz"
    readiness: Annotated[str, Field(pattern=r"^/[^\s]*$")] = "/ready"


class Autoscaling(Model):
    """Horizontal pod autoscaling (replaces fixed replicas)."""

    min_replicas: Annotated[int, Field(ge=1)] = 2
    max_replicas: Annotated[int, Field(ge=1)] = 10
    target_cpu_utilization: Annotated[int, Field(ge=10, le=100)] = 75


class App(Model):
    """An application: one HelmRelease of the in-repo service chart per cluster it runs on."""

    name: DnsLabel
    team: DnsLabel
    namespace: DnsLabel | None = None
    description: str = ""
    image: Image
    port: Annotated[int, Field(ge=1024, le=65535)] = 8080
    resources: Resources = Resources()
    probes: Probes = Probes()
    replicas: dict[str, Annotated[int, Field(ge=0, le=1000)]] = Field(default_factory=dict)
    autoscaling: dict[str, Autoscaling] = Field(default_factory=dict)
    environments: list[DnsLabel] | None = None
    clusters: list[str] | None = None
    depends_on: list[DnsLabel] = Field(default_factory=list)
    ingress_host: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")] | None = None
    env: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = Field(default_factory=dict)
    values: Values = Field(default_factory=dict)

    @property
    def target_namespace(self) -> str:
        """The namespace the app runs in (its name unless set)."""
        return self.namespace or self.name


class Team(Model):
    """A team: owns apps; its groups get access to its namespaces."""

    name: DnsLabel
    description: str = ""
    groups: list[str] = Field(default_factory=list)
    codeowners: list[Annotated[str, Field(pattern=r"^@[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)?$")]] = Field(
        default_factory=list
    )
