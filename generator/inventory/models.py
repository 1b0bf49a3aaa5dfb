"""Inventory models (pydantic v2, unknown keys forbidden). YAML keys are camelCase, fields snake_case."""

from __future__ import annotations

import datetime
import ipaddress
import re
import string
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from generator.inventory.cidr import canonical_block
from generator.urls import is_loopback

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
    if canonical_block(value) is not None:  # the common case, without building ipaddress objects
        return value
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
    """Base: unknown keys are errors, YAML keys are camelCase, instances are immutable. Each model's validator is
    built when first used (``defer_build``): a nested model's own one never is, which spares every command that
    loads the inventory 0.06-0.09 s of CPU at start-up (pydantic builds 71 validators at import otherwise)."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True,
                              defer_build=True)


def _frozen(value: Any) -> Any:
    """A hashable stand-in for plain data (maps as sorted items, lists as tuples)."""
    if isinstance(value, dict):
        return tuple(sorted((key, _frozen(item)) for key, item in value.items()))
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    return value


def _hash_fields(model: BaseModel) -> int:
    """The hash of a frozen model that holds maps or lists (equal models, equal hashes). pydantic deep-copies an
    unhashable default into every model it validates; a hashable one is shared (it is frozen), so a model used as
    the default of every cluster's settings is hashable through this."""
    return hash((type(model), _frozen(dict(model))))


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
FLUX_COMPONENTS: tuple[FluxComponent, ...] = get_args(FluxComponent)
ALL_ROLES: tuple[Role, ...] = ("hub", "workload")
ALL_CLOUDS: tuple[Cloud, ...] = ("aws", "gcp", "azure")


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


# --- security: policies, image signing, secrets backend (see generator/render/policies.py) ---------------

#: Every ValidatingPolicy fleetgen renders (names are what exceptions and ``policies.actions`` refer to).
VALIDATING_POLICIES: tuple[str, ...] = (
    "require-labels",
    "require-requests-limits",
    "require-probes",
    "disallow-privileged-containers",
    "disallow-host-namespaces",
    "restrict-image-registries",
    "require-run-as-non-root",
    "disallow-privilege-escalation",
    "require-drop-all-capabilities",
    "restrict-seccomp-profile",
)
#: The ValidatingPolicy on Flux objects in team namespaces (multi-tenancy guard; Deny unless
#: ``policies.actions`` says otherwise, whatever the environment's ``validationAction``).
TENANCY_POLICY = "restrict-flux-tenancy"
#: Policies whose validationAction ``policies.actions`` may set.
ACTION_POLICIES: tuple[str, ...] = (*VALIDATING_POLICIES, TENANCY_POLICY, "verify-image-signatures")
SYSTEM_NAMESPACES: tuple[str, ...] = ("kube-system", "kube-public", "kube-node-lease", "flux-system", "kyverno")
#: Placeholders a per-cluster secrets setting may use, e.g. ``role/{cluster}-external-secrets``.
SECRET_PLACEHOLDERS = frozenset({"cluster", "environment", "region", "organization", "project"})
LABEL_KEY = (
    r"^(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
#: Label key prefixes fleetgen, Kubernetes and Flux own; cluster ``labels`` may not set them (they would override
#: the labels those tools select on: FluxInstance commonMetadata overrides every Flux object's labels).
RESERVED_LABEL_PREFIXES = ("kubernetes.io/", "k8s.io/", "fluxcd.io/", "gitops.io/", "crossplane.io/")
PUBLIC_KEY_PEM = r"^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n?$"


def _placeholders(value: str) -> str:
    try:
        names = {field for _, field, _, _ in string.Formatter().parse(value) if field is not None}
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid template ({exc}); write {{{{ and }}}} for literal braces") from exc
    unknown = sorted(names - SECRET_PLACEHOLDERS)
    if unknown:
        known = ", ".join(sorted("{" + name + "}" for name in SECRET_PLACEHOLDERS))
        raise ValueError(f"unknown placeholder {{{unknown[0]}}} in {value!r}; use {known}")
    return value


def _cluster_label_key(value: str) -> str:
    prefix = value.split("/", 1)[0] + "/" if "/" in value else ""
    if any(prefix == p or prefix.endswith("." + p) for p in RESERVED_LABEL_PREFIXES):
        raise ValueError(
            f"label key {value!r} uses a reserved prefix ({', '.join('*' + p for p in RESERVED_LABEL_PREFIXES)}): "
            "Kubernetes, Flux, Crossplane and fleetgen own those; use your organisation's domain"
        )
    return value


Template = Annotated[str, AfterValidator(_placeholders)]
LabelKey = Annotated[str, Field(pattern=LABEL_KEY, max_length=253)]
ClusterLabelKey = Annotated[str, Field(pattern=LABEL_KEY, max_length=253), AfterValidator(_cluster_label_key)]
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE, max_length=63)]
KubernetesVersion = Annotated[str, Field(pattern=r"^\d+\.\d+$")]
PolicyAction = Literal["Audit", "Deny"]


class KeylessIdentity(Model):
    """The Sigstore keyless identity (OIDC issuer and certificate subject) that must have signed an image."""

    issuer: Annotated[str, Field(pattern=r"^https://[^\s]+$")]
    subject: str = ""
    subject_reg_exp: str = ""

    @model_validator(mode="after")
    def _one_subject(self) -> KeylessIdentity:
        if bool(self.subject) == bool(self.subject_reg_exp):
            raise ValueError("set exactly one of subject (exact) or subjectRegExp")
        return self


class ImageSigning(Model):
    """Cosign signatures required on images from the organisation's registries (an ImageValidatingPolicy)."""

    registries: list[str] = Field(default_factory=list)
    keyless: KeylessIdentity | None = None
    public_key: Annotated[str, Field(pattern=PUBLIC_KEY_PEM)] | None = None
    rekor_url: Annotated[str, Field(pattern=r"^https://[^\s]+$")] = "https://rekor.sigstore.dev"

    @model_validator(mode="after")
    def _one_attestor(self) -> ImageSigning:
        if (self.keyless is None) == (self.public_key is None):
            raise ValueError("set exactly one of keyless (issuer and subject) or publicKey (PEM)")
        return self


class AwsSecrets(Model):
    """AWS Secrets Manager, reached with IRSA (an IAM role for the store's service account)."""

    account_id: Annotated[str, Field(pattern=r"^\d{12}$")]
    role_name: Template = "{cluster}-external-secrets"
    region: Template = "{region}"
    # A role in the secrets account that Crossplane's AWS providers may assume (assumeRoleChain) to create each
    # cluster's target role there; needed when accountId differs from fleet.crossplane.aws.accountId.
    provider_role_arn: Annotated[str, Field(pattern=r"^arn:aws:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]+$")] | None = None


AZURE_IDENTITY_ID = (r"^/subscriptions/[0-9a-f-]{36}/resourceGroups/[-A-Za-z0-9_.()]+/providers/"
                     r"Microsoft\.ManagedIdentity/userAssignedIdentities/[A-Za-z0-9][-A-Za-z0-9_]+$")


class AzureSecrets(Model):
    """Azure Key Vault, reached with workload identity (a user-assigned managed identity)."""

    tenant_id: Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    client_id: Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    vault_name: Template = "{organization}-{environment}"
    # The user-assigned identity whose client ID is clientId (its ARM resource ID): with it, every AKS cluster's
    # composition federates it with the cluster's OIDC issuer (a FederatedIdentityCredential).
    identity_id: Annotated[str, Field(pattern=AZURE_IDENTITY_ID)] | None = None


class GcpSecrets(Model):
    """GCP Secret Manager, reached with GKE workload identity (a Google service account)."""

    project_id: Template = "{organization}-{environment}"
    service_account: Template = "external-secrets@{project}.iam.gserviceaccount.com"


class VaultSecrets(Model):
    """HashiCorp Vault, reached with its Kubernetes auth method (one auth mount per cluster)."""

    server: Annotated[str, Field(pattern=r"^https://[^\s]+$")]
    path: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*$")] = "secret"
    version: Literal["v1", "v2"] = "v2"
    mount_path: Template = "kubernetes-{cluster}"
    role: Template = "external-secrets"
    namespace: str | None = None
    # The Vault policies the store's role grants (composed with each cluster the hub composes).
    policies: Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]], Field(min_length=1)] = [
        "external-secrets"]
    # How Crossplane's provider-vault signs in (Kubernetes auth with its own service-account token, no static
    # token): this role on this mount of the hub's Kubernetes auth, set up once by hand.
    provider_role: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "crossplane"
    provider_mount_path: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*$")] = "kubernetes"


class SecretsBackend(Model):
    """Where External Secrets reads secret values: each cloud's own secret manager, or Vault."""

    store_name: DnsLabel = "fleet-secrets"
    namespace: DnsLabel = "external-secrets"
    service_account: DnsLabel = "external-secrets-store"
    aws: AwsSecrets | None = None
    azure: AzureSecrets | None = None
    gcp: GcpSecrets | None = None
    vault: VaultSecrets | None = None


class Security(Model):
    """Organisation-wide security settings: required labels, image signing, secrets backend, owners."""

    required_labels: list[LabelKey] = Field(default_factory=lambda: ["app.kubernetes.io/name"])
    image_signing: ImageSigning | None = None
    secrets: SecretsBackend | None = None
    system_namespaces: list[DnsLabel] = Field(default_factory=lambda: list(SYSTEM_NAMESPACES))
    security_team: DnsLabel | None = None
    platform_team: DnsLabel | None = None
    sre_team: DnsLabel | None = None  # reviews prod changes (CODEOWNERS; seed: "SRE Review + Approval")


class AwsDns(Model):
    """Route53 for DNS-01: ambient credentials (an EKS Pod Identity association for cert-manager's service
    account) unless ``roleArn`` is set, then a bound token of a dedicated service account (IRSA-style)."""

    role_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/{}-]{1,512}$"),
                        AfterValidator(_placeholders)] | None = None
    hosted_zone_id: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,32}$")] | None = None


class GcpDns(Model):
    """Cloud DNS for DNS-01 with GKE workload identity (IAM granted to cert-manager's Kubernetes service account)."""

    project: Template


class AzureDns(Model):
    """Azure DNS for DNS-01 with AKS workload identity (a user-assigned identity federated with cert-manager)."""

    subscription_id: Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    resource_group: Annotated[str, Field(pattern=r"^[-\w._(){}]{1,90}$"), AfterValidator(_placeholders)]
    client_id: Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]


class Dns(Model):
    """How every cluster proves control of its domain ``<cluster>.<fleet.domain>`` (ACME DNS-01, per cloud)."""

    acme_server: Annotated[str, Field(pattern=r"^https://[^\s]+$")] = "https://acme-v02.api.letsencrypt.org/directory"
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,63}$")] | None = None
    aws: AwsDns | None = AwsDns()
    gcp: GcpDns | None = None
    azure: AzureDns | None = None


GroupName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@ -]{0,199}$")]  # no quote: JMESPath literal


class GrafanaSso(Model):
    """Grafana's single sign-on with the organisation's OpenID Connect provider (Grafana ``auth.generic_oauth``;
    rendered by generator/render/grafana_sso.py). The client secret is read from the hub's secret store."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")] = "SSO"
    client_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}$")]
    # the provider's authorization, token and userinfo endpoints (its /.well-known/openid-configuration:
    # authorization_endpoint, token_endpoint, userinfo_endpoint); Grafana's generic OAuth does not discover them
    auth_url: Annotated[str, Field(pattern=r"^https://[^\s]+$", max_length=500)]
    token_url: Annotated[str, Field(pattern=r"^https://[^\s]+$", max_length=500)]
    api_url: Annotated[str, Field(pattern=r"^https://[^\s]+$", max_length=500)]
    scopes: Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z0-9._:/-]+$")]], Field(min_length=1)] = Field(
        default_factory=lambda: ["openid", "email", "profile"])
    groups_claim: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = "groups"
    admin_groups: list[GroupName] = Field(default_factory=list)
    editor_groups: list[GroupName] = Field(default_factory=list)
    #: empty: every user the provider authenticates may sign in (as Viewer unless an admin/editor group matches)
    viewer_groups: list[GroupName] = Field(default_factory=list)
    #: key of the client secret in the hub's secret store (property ``client-secret``)
    client_secret_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_/.-]{0,199}$")] = "grafana-oauth"


class Grafana(Model):
    """The fleet's Grafana on the hub: how people sign in."""

    sso: GrafanaSso | None = None


class Delivery(Model):
    """Who delivers the apps: Flux (HelmReleases per cluster) or Argo CD on the hub (ApplicationSets)."""

    apps: Literal["flux", "argocd"] = "flux"
class CommitAuthor(Model):
    """The Git author of the commits image automation pushes."""

    name: Annotated[str, Field(min_length=1, max_length=100)] = "Flux image automation"
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")] | None = None


class ImageAutomation(Model):
    """Where Flux image automation runs and how it writes the new tags back (see generator/render/imageautomation.py).

    Each listed environment gets one ImageUpdateAutomation (on its first workload cluster by name) whose
    ``spec.update.path`` is that environment's overlay file: the only file it may write."""

    environments: list[DnsLabel] | None = None  # default: the first of fleet.environments
    interval: Duration = "30m"  # how often the automation may commit
    scan_interval: Duration = "5m"  # how often ImageRepositories list the registry's tags
    push_branch: Annotated[str, Field(pattern=r"^[A-Za-z0-9._/-]+$")] = "image-updates"
    root_path: Annotated[str, Field(pattern=r"^(?:[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*)?$")] = ""
    author: CommitAuthor = CommitAuthor()
    # how image-reflector-controller signs in to the registry (ImageRepository spec.provider / spec.secretRef)
    provider: Literal["generic", "aws", "azure", "gcp"] = "generic"
    secret_name: DnsLabel | None = None  # a docker-registry Secret in flux-system (never in git)


StoreMode = Literal["composed", "reference"]
StoreName = Literal["metrics", "logs", "traces"]


class ObservabilityStorage(Model):
    """Where the hub's observability buckets and their write identities come from: composed by Crossplane with
    the fleet, or brought by the user and named by reference (README "Observability": buckets and identities)."""

    mode: StoreMode = "reference"
    stores: dict[StoreName, StoreMode] = Field(default_factory=dict)
    hub_oidc_issuer: Annotated[
        str, Field(pattern=r"^https://[a-z0-9.-]+(?:/[A-Za-z0-9._-]+)*$", max_length=512)
    ] | None = None


class Observability(Model):
    """The fleet's observability layer: its storage."""

    storage: ObservabilityStorage = ObservabilityStorage()


class Fleet(Model):
    """The organisation-wide facts: who, where the fleet repo lives, which Flux."""

    organization: DnsLabel
    domain: Annotated[str, Field(pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$", max_length=200)]
    git: GitSource
    flux: FluxSettings
    environments: Annotated[list[DnsLabel], Field(min_length=1)]
    notifications: Notifications | None = None
    allowed_registries: list[str] = Field(default_factory=list)
    crossplane: CrossplaneSettings | None = None
    security: Security = Security()
    dns: Dns = Dns()
    grafana: Grafana = Grafana()
    delivery: Delivery = Delivery()
    image_automation: ImageAutomation = ImageAutomation()
    observability: Observability = Observability()


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


ImageTag = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"), AfterValidator(_not_latest)]
ImageDigest = Annotated[str, Field(pattern=r"^(sha256:[a-f0-9]{64})?$")]


class ImageOverride(Model):
    """The image tag (and digest) an environment or cluster runs instead of the app's ``image``: where image
    automation writes (its setter marker) and what ``fleetgen promote`` sets."""

    tag: ImageTag | None = None
    digest: ImageDigest | None = None


class AppSettings(Model):
    """Per-layer toggle, replicas, image and chart values of one application."""

    enabled: bool | None = None
    replicas: Annotated[int, Field(ge=0, le=1000)] | None = None
    image: ImageOverride | None = None
    values: Values = Field(default_factory=dict)


class Tenancy(Model):
    """How app teams are confined: Pod Security level of their namespaces and their group's role there."""

    pod_security: Literal["privileged", "baseline", "restricted"] = "restricted"
    team_role: Literal["view", "edit", "admin"] = "edit"


class PolicySettings(Model):
    """Kyverno enforcement per environment: the default action, per-policy overrides, extra exempt namespaces."""

    validation_action: PolicyAction = "Audit"
    actions: dict[str, PolicyAction] = Field(default_factory=dict)
    excluded_namespaces: list[DnsLabel] = Field(default_factory=list)

    __hash__ = _hash_fields


class AlertSettings(Model):
    """What Flux alerts report on a cluster (with ``fleet.notifications``): ``info`` sends every event,
    ``error`` only failures (notification-controller v1.9.3 eventMatchesAlertSource)."""

    event_severity: Literal["info", "error"] = "error"
#: The built-in system node group of each cloud (one general-purpose 2-4 vCPU shape per cloud; each matches
#: ``instanceTypePatterns`` in generator/data/crossplane.yaml). Layers replace the whole list.
BUILT_IN_INSTANCE_TYPES: dict[str, str] = {"aws": "m6i.large", "gcp": "e2-standard-4", "azure": "Standard_D4s_v5"}
DEFAULT_KUBERNETES_VERSION = "1.35"


def built_in_node_groups(cloud: str = "aws") -> list[NodeGroup]:
    """The node groups a cluster on ``cloud`` gets when no layer sets ``nodeGroups``."""
    return [NodeGroup(name="system", instance_type=BUILT_IN_INSTANCE_TYPES[cloud], min_size=2, max_size=4,
                      desired_size=3)]


class CanarySettings(Model):
    """Progressive delivery of every app on a cluster with a Flagger Canary (README "Canary releases").

    ``successRate`` (lowest % of non-5xx responses) and ``latencyMs`` (highest p99 in ms) are the analysis
    thresholds of apps behind the Gateway (weighted traffic, ``maxWeight``/``stepWeight`` or ``stepWeights``);
    apps without a host run ``iterations`` blue/green checks. ``threshold`` failed checks roll back."""

    enabled: bool = False
    interval: Duration = "1m"
    threshold: Annotated[int, Field(ge=1, le=100)] = 5
    max_weight: Annotated[int, Field(ge=1, le=100)] = 50
    step_weight: Annotated[int, Field(ge=1, le=100)] = 10
    step_weights: list[Annotated[int, Field(ge=1, le=100)]] = Field(default_factory=list, max_length=20)
    iterations: Annotated[int, Field(ge=1, le=1000)] = 10
    success_rate: Annotated[float, Field(ge=0, le=100)] = 99.0
    latency_ms: Annotated[int, Field(ge=1, le=600000)] = 500
    progress_deadline_seconds: Annotated[int, Field(ge=60, le=3600)] = 600

    __hash__ = _hash_fields

    @model_validator(mode="after")
    def _weights(self) -> CanarySettings:
        if self.step_weight > self.max_weight:
            raise ValueError(f"stepWeight ({self.step_weight}) must not exceed maxWeight ({self.max_weight})")
        if self.step_weights != sorted(set(self.step_weights)):
            raise ValueError(f"stepWeights {self.step_weights} must increase strictly")
        return self


class MeshSettings(Model):
    """Service mesh policy where the mesh runs: the PeerAuthentication mode of enrolled team namespaces."""

    mtls: Literal["STRICT", "PERMISSIVE"] = "PERMISSIVE"


class Settings(Model):
    """Everything that layers: each field may be set in defaults, an overlay, or on a cluster."""

    kubernetes_version: KubernetesVersion = DEFAULT_KUBERNETES_VERSION
    node_groups: list[NodeGroup] = Field(default_factory=built_in_node_groups)
    sync: SyncSettings = SyncSettings()
    components: dict[str, ComponentSettings] = Field(default_factory=dict)
    apps: dict[str, AppSettings] = Field(default_factory=dict)
    labels: dict[ClusterLabelKey, LabelValue] = Field(default_factory=dict)
    tenancy: Tenancy = Tenancy()
    alerts: AlertSettings = AlertSettings()
    policies: PolicySettings = PolicySettings()
    secrets_backend: Literal["cloud", "vault"] = "cloud"
    canary: CanarySettings = CanarySettings()
    mesh: MeshSettings = MeshSettings()


class CloudDefaults(Model):
    """Settings for every cluster on one cloud (``defaults.clouds.<cloud>``): layered after ``defaults`` and
    before ``overlays/<env>``. Only cluster-shaped settings: components, apps, tenancy and policies layer per
    environment."""

    kubernetes_version: KubernetesVersion | None = None
    node_groups: list[NodeGroup] | None = None
    sync: SyncSettings | None = None
    labels: dict[ClusterLabelKey, LabelValue] | None = None
    secrets_backend: Literal["cloud", "vault"] | None = None


class Defaults(Settings):
    """The ``defaults`` section: settings for every cluster, plus per-cloud settings under ``clouds``."""

    clouds: dict[Cloud, CloudDefaults] = Field(default_factory=dict)


# --- clusters --------------------------------------------------------------------------------------


class Networking(Model):
    """Address plan of a cluster's network (VPC / VNet)."""

    vpc_cidr: Cidr
    pod_cidr: Cidr
    service_cidr: Cidr
    private_endpoint: bool = True
    # the zones by name, or how many of the region's first zones (default 3; checked against the region's zones)
    zones: list[Annotated[str, Field(pattern=r"^[a-z0-9-]+$")]] | Annotated[int, Field(ge=1)] | None = None
    private_subnets: list[Cidr] | None = None
    public_subnets: list[Cidr] | None = None


class Cluster(Settings):
    """One cluster: identity and network, plus any setting that overrides its environment's."""

    name: Annotated[str, Field(pattern=DNS_LABEL, max_length=40)]
    cloud: Cloud
    region: Annotated[str, Field(pattern=r"^[a-z0-9-]+$")]
    environment: DnsLabel
    role: Role = "workload"
    networking: Networking
    databases: list[Database] = Field(default_factory=list)
    caches: list[Cache] = Field(default_factory=list)


# --- components, apps, teams -----------------------------------------------------------------------


def _chart_repository(value: str) -> str:
    """https:// or oci://; plain http:// only on a loopback address (a local chart server)."""

    if value.startswith("http://") and not is_loopback(value):
        raise ValueError("plain http:// is only accepted for a loopback address (127.0.0.1, ::1, localhost); use https")
    return value


class Chart(Model):
    """An upstream Helm chart pinned to one exact version."""

    repository: Annotated[str, Field(pattern=r"^(https?|oci)://[^\s]+$"), AfterValidator(_chart_repository)]
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    version: ExactVersion
    #: GPG keyring (relative to the fleet root) to verify the chart's provenance file with (`helm pull --verify`).
    keyring: str | None = None

    @property
    def plain_http(self) -> bool:
        """Whether the source is a plain-http registry on a loopback address (Flux needs ``insecure: true``)."""

        return self.repository.startswith("oci://") and is_loopback(self.repository)


class GatewayRef(Model):
    """Marks a component as the cluster's Gateway API data plane: apps with a ``host`` attach HTTPRoutes to
    the Gateway ``name`` (in the component's namespace, listener ``listener``) and admit its proxies."""

    name: DnsLabel
    listener: DnsLabel
    data_plane_labels: dict[Annotated[str, Field(pattern=LABEL_KEY)], str] = Field(default_factory=dict)


class Component(Model):
    """A platform component: a namespace, a chart source, a HelmRelease, and optional config objects."""

    name: DnsLabel
    description: str = ""
    namespace: DnsLabel
    chart: Chart
    release_name: DnsLabel | None = None
    roles: Annotated[list[Role], Field(min_length=1)] = Field(default_factory=lambda: list(ALL_ROLES))
    # the clouds whose clusters run it (e.g. an add-on a managed service provides natively elsewhere)
    clouds: Annotated[list[Cloud], Field(min_length=1)] = Field(default_factory=lambda: list(ALL_CLOUDS))
    enabled: bool = True
    depends_on: list[DnsLabel] = Field(default_factory=list)
    values: Values = Field(default_factory=dict)
    configs: list[Values] = Field(default_factory=list)
    gateway: GatewayRef | None = None
    crds: Literal["Create", "CreateReplace", "Skip"] = "CreateReplace"
    interval: Duration = "30m"
    timeout: Duration = "10m"
    #: False: the namespace exists already (kube-system) or another component of the same namespace creates it.
    create_namespace: bool = True
    #: Extra labels of the namespace the component creates (e.g. mesh enrolment of the Gateway's namespace).
    namespace_labels: dict[Annotated[str, Field(pattern=LABEL_KEY)], LabelValue] = Field(default_factory=dict)
    # false: Helm does not wait for the release's pods (HelmRelease install/upgrade disableWait), for a chart whose
    # pods need an object of the configs layer, which is applied only once every HelmRelease is ready
    wait: bool = True


class Image(Model):
    """A container image pinned to a tag (not 'latest') and optionally a digest."""

    repository: Annotated[
        str, Field(pattern=r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)+$")
    ]
    tag: ImageTag
    digest: ImageDigest = ""


class TagFilter(Model):
    """Which tags an image policy considers (ImagePolicy ``spec.filterTags``: a regular expression and the
    capture group to compare, e.g. ``{pattern: '^main-(?P<ts>[0-9]+)$', extract: '$ts'}``)."""

    pattern: Annotated[str, Field(min_length=1, max_length=512)]
    extract: str = ""


class ImagePolicySpec(Model):
    """How image automation picks the newest tag (ImagePolicy ``spec.policy``): exactly one of a semver range,
    numerical or alphabetical order."""

    semver: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    numerical: Literal["asc", "desc"] | None = None
    alphabetical: Literal["asc", "desc"] | None = None
    filter_tags: TagFilter | None = None

    @model_validator(mode="after")
    def _one_policy(self) -> ImagePolicySpec:
        if sum(x is not None for x in (self.semver, self.numerical, self.alphabetical)) != 1:
            raise ValueError("set exactly one of semver (a range like '>=1.4.0 <2.0.0'), numerical or alphabetical")
        return self


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


class AppSecret(Model):
    """A Secret an app needs, synced by an ExternalSecret from the secrets backend (never a value)."""

    name: DnsLabel
    remote_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9/_.+=@-]+$", max_length=512)]
    keys: list[Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)]] = Field(default_factory=list)
    refresh_interval: Duration = "1h"


class AppFailover(Model):
    """Global DNS failover for an app served by two clusters (README "Multi-region prod: DNS failover")."""

    primary: DnsLabel
    secondary: DnsLabel
    hosted_zone_id: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,32}$")] | None = None
    health_check_path: Annotated[str, Field(pattern=r"^/[^\s]*$", max_length=255)] | None = None
    database: Annotated[str, Field(pattern=DNS_LABEL, max_length=20)] | None = None

#: an SLO objective in percent of good events, e.g. 99.9
SloPercent = Annotated[float, Field(gt=50, lt=100)]


class AvailabilitySlo(Model):
    """Share of requests that must not fail (HTTP 5xx is a failure)."""

    objective: SloPercent


class LatencySlo(Model):
    """Share of requests that must be served within ``threshold`` (a bucket boundary of the app's histogram)."""

    objective: SloPercent
    threshold: Annotated[str, Field(pattern=r"^(?:[1-9][0-9]{0,5}ms|[1-9][0-9]{0,3}(?:\.[0-9]{1,3})?s)$")]


class AppSlo(Model):
    """Service level objectives of an app, turned into multi-window multi-burn-rate rules (generator/render/slo.py)."""

    window: Annotated[str, Field(pattern=r"^[1-9][0-9]?d$")] = "30d"
    availability: AvailabilitySlo | None = None
    latency: LatencySlo | None = None

    @model_validator(mode="after")
    def _some_objective(self) -> AppSlo:
        if self.availability is None and self.latency is None:
            raise ValueError("set availability, latency or both")
        return self


class App(Model):
    """An application: one HelmRelease of the in-repo service chart per cluster it runs on."""

    name: DnsLabel
    team: DnsLabel
    namespace: DnsLabel | None = None
    description: str = ""
    image: Image
    image_policy: ImagePolicySpec | None = None
    port: Annotated[int, Field(ge=1024, le=65535)] = 8080
    resources: Resources = Resources()
    probes: Probes = Probes()
    replicas: dict[str, Annotated[int, Field(ge=0, le=1000)]] = Field(default_factory=dict)
    autoscaling: dict[str, Autoscaling] = Field(default_factory=dict)
    environments: list[DnsLabel] | None = None
    clusters: list[str] | None = None
    depends_on: list[DnsLabel] = Field(default_factory=list)
    host: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)] | None = None
    env: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = Field(default_factory=dict)
    values: Values = Field(default_factory=dict)
    secrets: list[AppSecret] = Field(default_factory=list)
    failover: AppFailover | None = None
    slo: AppSlo | None = None

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
    #: Enrol the team's namespaces in the service mesh where it runs (README "Service mesh").
    mesh: bool = False


class PolicyExceptionEntry(Model):
    """A time-limited exemption of some workloads from some policies, with an owner and a reason."""

    name: DnsLabel
    owner: DnsLabel
    reason: Annotated[str, Field(min_length=10, max_length=1000)]
    expires: datetime.date
    policies: Annotated[list[str], Field(min_length=1)]
    namespaces: Annotated[list[DnsLabel], Field(min_length=1)]
    names: list[Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")]] = Field(default_factory=list)
    environments: list[DnsLabel] | None = None


# --- crossplane: the infrastructure repo (generator/crossplane) --------------------------------------

ShortName = Annotated[str, Field(pattern=DNS_LABEL, max_length=20)]
Uuid = Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]


class Database(Model):
    """A managed SQL database next to a cluster (RDS, Cloud SQL, Azure Database flexible server)."""

    name: ShortName
    engine: Literal["postgres", "mysql"] = "postgres"
    version: Annotated[str, Field(pattern=r"^\d+(?:\.\d+)?$")] = "16"
    size: Literal["small", "medium", "large"] = "small"
    storage_gb: Annotated[int, Field(ge=20, le=16384)] = 64
    high_availability: bool = False


class Cache(Model):
    """A managed Redis cache next to a cluster (ElastiCache, Memorystore, Azure Cache for Redis)."""

    name: ShortName
    size: Literal["small", "medium", "large"] = "small"
    high_availability: bool = False


class AwsIdentity(Model):
    """The IAM role the hub's AWS providers assume with their Kubernetes service-account identity (IRSA)."""

    account_id: Annotated[str, Field(pattern=r"^\d{12}$")]
    role_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")]


class GcpIdentity(Model):
    """The GCP service account the hub's GCP providers act as (GKE workload identity or federation)."""

    project: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")]
    service_account: Annotated[
        str, Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]+\.iam\.gserviceaccount\.com$")
    ]
    workload_identity_provider: Annotated[
        str, Field(pattern=r"^projects/\d+/locations/global/workloadIdentityPools/[a-z0-9-]+/providers/[a-z0-9-]+$")
    ] | None = None


class AzureAdGroup(Model):
    """An Entra ID group (object id and display name)."""

    object_id: Uuid
    name: Annotated[str, Field(min_length=1, max_length=256)]


class AzureIdentity(Model):
    """The Entra ID application the hub's Azure providers sign in as (workload identity federation)."""

    subscription_id: Uuid
    tenant_id: Uuid
    client_id: Uuid
    database_admins: AzureAdGroup | None = None


class ProviderRuntime(Model):
    """Tuning of every provider pod (seed: Crossplane provider limits)."""

    max_reconcile_rate: Annotated[int, Field(ge=1, le=1000)] = 100
    poll: Duration = "1m"
    resources: Resources = Resources(requests=ResourceList(cpu="1", memory="2Gi"),
                                     limits=ResourceList(cpu="2", memory="4Gi"))


class HubNetwork(Model):
    """The hub's own AWS network, which private same-cloud spokes are peered with (VPC peering + routes)."""

    vpc_id: Annotated[str, Field(pattern=r"^vpc-[0-9a-f]{8,17}$")]
    route_table_ids: Annotated[list[Annotated[str, Field(pattern=r"^rtb-[0-9a-f]{8,17}$")]], Field(min_length=1)]


class HubFluxGcp(Model):
    """The GCP identity of the hub's kustomize-/helm-controller (workload identity federation from the hub's
    issuer): the pool provider that trusts it and the Google service account they impersonate."""

    workload_identity_provider: Annotated[
        str, Field(pattern=r"^projects/\d{1,30}/locations/global/workloadIdentityPools/[a-z0-9-]+/providers/"
                           r"[a-z0-9-]+$")
    ]
    service_account: Annotated[
        str, Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]+\.iam\.gserviceaccount\.com$")
    ]


class HubFluxAzure(Model):
    """The Azure identity of the hub's kustomize-/helm-controller: a user-assigned managed identity (tenant
    ``fleet.crossplane.azure.tenantId``) with a federated credential for the hub's issuer."""

    client_id: Uuid
    principal_id: Uuid


class HubAccess(Model):
    """How the hub reaches the spokes' API servers: public endpoints admit only its egress addresses; private
    endpoints need a network path (peering with the hub network, composed for spokes in the hub's cloud)."""

    egress_cidrs: list[Cidr] = Field(default_factory=list)
    network: HubNetwork | None = None
    flux_role_arn: Annotated[
        str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")
    ] | None = None
    flux_gcp: HubFluxGcp | None = None
    flux_azure: HubFluxAzure | None = None


class CrossplaneSettings(Model):
    """Crossplane on the hub: where the infrastructure repo lives, API mode, package pins, cloud identities."""

    namespace: DnsLabel = "fleet-clusters"
    infrastructure_path: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*$")] = "infrastructure"
    legacy_claims: bool = False
    prune_clusters: bool = False
    aws: AwsIdentity | None = None
    gcp: GcpIdentity | None = None
    azure: AzureIdentity | None = None
    runtime: ProviderRuntime = ProviderRuntime()
    hub: HubAccess = HubAccess()
    provider_versions: dict[Cloud, ExactVersion] = Field(default_factory=dict)
    function_versions: dict[Literal["function-pythonic"], ExactVersion] = Field(
        default_factory=dict
    )


Fleet.model_rebuild()
Cluster.model_rebuild()
