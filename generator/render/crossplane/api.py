"""The platform APIs (XRDs): KubernetesCluster, Network, Database, Cache, and helpers to reason about them.

Schemas are constrained (enums, patterns, bounds, required, CEL rules), and every string, list and map a
CEL rule touches is bounded so the API server can estimate rule cost. ``xr_openapi`` adds what Crossplane
itself injects into the CRD it generates from an XRD, so rendered cluster objects can be validated strictly.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from generator.inventory.network import MAX_ZONES
from generator.render.crossplane.common import Mode

Obj = dict[str, Any]

DNS_LABEL = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
CIDR = r"^(?:(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])/(?:3[0-2]|[12]?[0-9])$"
CLOUDS = ("aws", "gcp", "azure")


@dataclass(frozen=True)
class Api:
    """One platform API."""

    kind: str
    plural: str
    description: str

    @property
    def short(self) -> str:
        """Lower-case name used for folders and labels."""
        return self.kind.lower()


CLUSTER = Api("KubernetesCluster", "kubernetesclusters", "A Kubernetes cluster (EKS, GKE or AKS) with its network.")
NETWORK = Api("Network", "networks", "A cluster network: VPC/VNet, subnets, and egress (NAT) where the cloud needs it.")
DATABASE = Api("Database", "databases", "A managed SQL database in a cluster's network.")
CACHE = Api("Cache", "caches", "A managed Redis cache in a cluster's network.")
DNS_FAILOVER = Api("DnsFailover", "dnsfailovers",
                   "Global DNS failover: health-checked PRIMARY/SECONDARY records for an app served by two clusters.")
APIS = (CLUSTER, NETWORK, DATABASE, CACHE, DNS_FAILOVER)


def cel_string(text: str) -> str:
    """A CEL string literal (CEL processes escapes: a regex ``\\.`` must be written ``\\\\.``)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _string(*, pattern: str | None = None, max_length: int = 253, **extra: Any) -> Obj:
    node: Obj = {"type": "string", "maxLength": max_length, **extra}
    if pattern:
        node["pattern"] = pattern
    return node


def _immutable(node: Obj) -> Obj:
    return {**node, "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "is immutable"}]}


def _string_map(max_properties: int = 32) -> Obj:
    return {"type": "object", "maxProperties": max_properties,
            "additionalProperties": {"type": "string", "maxLength": 256}}


def _common_spec() -> Obj:
    """Fields every platform API shares."""
    return {
        "cloudProvider": _immutable({"type": "string", "enum": list(CLOUDS),
                                     "description": "The cloud the resource lives in."}),
        "region": _immutable(_string(pattern="^[a-z0-9-]+$", max_length=32, description="Cloud region.")),
        "providerConfigName": _string(pattern=DNS_LABEL, max_length=63, default="default",
                                      description="ClusterProviderConfig the composed resources use."),
        "tags": {**_string_map(20), "description": "Tags/labels put on every cloud resource."},
    }


def _network_ref() -> Obj:
    return {"type": "object", "required": ["name", "cidr"],
            "description": "The cluster network the resource is placed in.",
            "properties": {"name": _string(pattern=DNS_LABEL, max_length=63), "cidr": _string(pattern=CIDR)}}


def _subnet() -> Obj:
    return {"type": "object", "required": ["name", "cidr"], "properties": {
        "name": _string(pattern=DNS_LABEL, max_length=63),
        "cidr": _string(pattern=CIDR),
        "zone": _string(pattern="^[a-z0-9-]+$", max_length=32)}}


def _secrets_identity() -> Obj:
    """External Secrets' grant composed with the cluster (generator/render/esoidentity.py): one cloud's block."""
    aws = {"type": "object", "required": ["clusterArn", "namespace", "serviceAccount", "roleName",
                                          "secretsAccountId", "secretsRegion"],
           "properties": {"clusterArn": _string(max_length=256), "namespace": _string(pattern=DNS_LABEL, max_length=63),
                          "serviceAccount": _string(pattern=DNS_LABEL, max_length=63),
                          "roleName": _string(max_length=64), "secretsAccountId": _string(pattern=r"^[0-9]{12}$"),
                          "secretsRegion": _string(pattern="^[a-z0-9-]+$", max_length=32),
                          "targetRoleName": _string(max_length=64),
                          "targetProviderConfigName": _string(pattern=DNS_LABEL, max_length=63)}}
    azure = {"type": "object", "required": ["identityId", "subject", "audience"],
             "properties": {"identityId": _string(max_length=512),
                            "subject": _string(max_length=512), "audience": _string(max_length=256)}}
    name = r"^[A-Za-z0-9_.-]+$"
    vault = {"type": "object", "required": ["mountPath", "roleName", "policies", "namespace", "serviceAccount",
                                            "providerConfigName"],
             "properties": {"mountPath": _string(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", max_length=256),
                            "roleName": _string(pattern=name, max_length=128),
                            "policies": {"type": "array", "minItems": 1, "maxItems": 32,
                                         "items": _string(pattern=name, max_length=128)},
                            "namespace": _string(pattern=DNS_LABEL, max_length=63),
                            "serviceAccount": _string(pattern=DNS_LABEL, max_length=63),
                            "providerConfigName": _string(pattern=DNS_LABEL, max_length=63)}}
    return {"type": "object",
            "description": "External Secrets' identity grant: GKE (on the secrets project's GSA), aws, azure, vault.",
            "properties": {"serviceAccountId": _string(max_length=512), "member": _string(max_length=512),
                           "aws": aws, "azure": azure, "vault": vault}}


def network_fields() -> Obj:
    """Address plan fields (shared by KubernetesCluster.spec.networking and Network.spec)."""
    return {
        "vpcCidr": _immutable(_string(pattern=CIDR, description="VPC / VNet address range.")),
        "podCidr": _string(pattern=CIDR, description="Pod range (GKE secondary range, AKS overlay)."),
        "serviceCidr": _string(pattern=CIDR, description="Kubernetes service range."),
        "zones": {"type": "array", "minItems": 1, "maxItems": MAX_ZONES,
                  "items": _string(pattern="^[a-z0-9-]+$", max_length=32),
                  "description": "Availability zones the network and nodes are spread over."},
        "subnets": {"type": "object", "required": ["private"], "properties": {
            "private": {"type": "array", "minItems": 1, "maxItems": MAX_ZONES, "items": _subnet(),
                        "description": "Node subnets: one per zone on AWS, one regional subnet elsewhere."},
            "public": {"type": "array", "maxItems": MAX_ZONES, "items": _subnet(),
                       "description": "Public subnets (AWS: load balancers and the NAT gateway)."}}},
        "controlPlaneCidr": _string(pattern=CIDR, description="GKE private control-plane range (/28)."),
    }


def _node_group(taints: int) -> Obj:
    return {
        "type": "object",
        "required": ["name", "instanceType", "minSize", "maxSize", "desiredSize"],
        "x-kubernetes-validations": [{"rule": "self.minSize <= self.desiredSize && self.desiredSize <= self.maxSize",
                                      "message": "sizes must satisfy minSize <= desiredSize <= maxSize"}],
        "properties": {
            "name": _string(pattern=DNS_LABEL, max_length=40),
            "instanceType": _string(pattern="^[A-Za-z0-9._-]+$", max_length=64),
            "minSize": {"type": "integer", "minimum": 0, "maximum": 1000},
            "maxSize": {"type": "integer", "minimum": 1, "maximum": 1000},
            "desiredSize": {"type": "integer", "minimum": 0, "maximum": 1000},
            "diskSizeGb": {"type": "integer", "minimum": 20, "maximum": 16384, "default": 100},
            "labels": _string_map(),
            "taints": {"type": "array", "maxItems": taints, "items": {
                "type": "object", "required": ["key", "effect"], "properties": {
                    "key": _string(max_length=253), "value": _string(max_length=63, default=""),
                    "effect": {"type": "string", "enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]}}}},
        },
    }


def _hub_access() -> Obj:
    """How the hub reaches the API server: public (only from allowedCidrs) or private (peered with the hub)."""
    cidrs = {"type": "array", "maxItems": 32, "items": _string(pattern=CIDR)}
    return {"type": "object", "required": ["endpoint"], "description": "How the hub reaches the API server.",
            "properties": {
                "endpoint": {"type": "string", "enum": ["public", "private"]},
                "allowedCidrs": {**cidrs, "description": "The hub's egress CIDRs (public endpoints admit only these)."},
                "fluxRoleArn": _string(pattern="^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", max_length=600,
                                       description="IAM role of the hub's Flux controllers (EKS access entry)."),
                "fluxGcpServiceAccount": _string(
                    pattern="^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]+[.]iam[.]gserviceaccount[.]com$", max_length=254,
                    description="Google service account of the hub's Flux controllers (GKE IAM on the project)."),
                "fluxAzurePrincipalId": _string(
                    pattern="^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", max_length=36,
                    description="Object ID of the hub's Flux managed identity (AKS role assignments)."),
                "peering": {"type": "object", "required": ["hubCidr", "hubRegion", "hubVpcId", "hubRouteTableIds"],
                            "description": "VPC peering with the hub's network (private endpoints, AWS).",
                            "properties": {
                                "hubCidr": _string(pattern=CIDR), "hubRegion": _string(max_length=32),
                                "hubVpcId": _string(pattern="^vpc-[0-9a-f]{8,17}$", max_length=32),
                                "hubAccountId": _string(pattern="^[0-9]{12}$", max_length=12),
                                "hubRouteTableIds": {
                                    "type": "array", "maxItems": 16,
                                    "items": _string(pattern="^rtb-[0-9a-f]{8,17}$", max_length=32)}}}}}


def cluster_schema(limits: Mapping[str, int], instance_patterns: Mapping[str, str]) -> Obj:
    """openAPIV3Schema of KubernetesCluster (the seed's cloudProvider, region, kubernetes, nodeGroups, networking)."""
    rules = [
        {"rule": "self.cloudProvider != 'azure' || self.nodeGroups.all(g, g.name.matches('^[a-z][a-z0-9]{0,11}$'))",
         "message": "on azure, node group names are AKS pool names: 1-12 lowercase letters and digits"},
        {"rule": "self.cloudProvider != 'aws' || (size(self.networking.subnets.private) == 3 && "
                 "has(self.networking.subnets.public) && size(self.networking.subnets.public) == 3)",
         "message": "on aws, give three private and three public subnets (one per zone)"},
        {"rule": "self.cloudProvider != 'gcp' || has(self.networking.controlPlaneCidr)",
         "message": "on gcp, networking.controlPlaneCidr is required (private control plane)"},
    ]
    for cloud, pattern in instance_patterns.items():
        rules.append({"rule": f"self.cloudProvider != '{cloud}' || "
                              f"self.nodeGroups.all(g, g.instanceType.matches({cel_string(pattern)}))",
                      "message": f"instance types on {cloud} must match {pattern}"})
    spec: Obj = {
        "type": "object",
        "required": ["cloudProvider", "region", "kubernetes", "nodeGroups", "networking", "kubeconfigSecretName"],
        "x-kubernetes-validations": rules,
        "properties": {
            **_common_spec(),
            "environment": _string(pattern=DNS_LABEL, max_length=63, description="Fleet environment."),
            "account": _string(pattern="^[A-Za-z0-9-]+$", max_length=64,
                               description="AWS account ID, GCP project ID or Azure subscription ID."),
            "kubernetes": {"type": "object", "required": ["version"], "properties": {
                "version": _string(pattern=r"^1\.[0-9]{2}$", max_length=8,
                                   description="Kubernetes minor version, e.g. \"1.33\".")}},
            "nodeGroups": {"type": "array", "minItems": 1, "maxItems": limits["nodeGroups"],
                           "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                           "description": "Node groups; the first one is the system group.",
                           "items": _node_group(limits["taints"])},
            "networking": {"type": "object",
                           "required": ["vpcCidr", "podCidr", "serviceCidr", "dnsServiceIp", "zones", "subnets"],
                           "properties": {**network_fields(),
                                          "dnsServiceIp": _string(pattern=r"^[0-9]{1,3}(\.[0-9]{1,3}){3}$",
                                                                  max_length=15,
                                                                  description="Cluster DNS service IP."),
                                          "privateEndpoint": {"type": "boolean", "default": True,
                                                              "description": "API server reachable only privately."},
                                          "hubAccess": _hub_access()}},
            "kubeconfigSecretName": _string(pattern=DNS_LABEL, max_length=63,
                                            description="Secret (in this namespace) the kubeconfig is written to."),
            "secretsIdentity": _secrets_identity(),
        },
    }
    status = {"type": "object", "properties": {
        "oidcIssuerUrl": _string(max_length=512, description="The cluster's OIDC issuer (workload identity)."),
        "nodeServiceAccountEmail": _string(description="GKE node service account."),
        "identityPrincipalId": _string(description="AKS control-plane identity principal."),
        "network": {"type": "object", "properties": {"resourceGroupId": _string(max_length=512)}},
    }}
    return {"type": "object", "required": ["spec"], "properties": {"spec": spec, "status": status}}


def network_schema() -> Obj:
    """openAPIV3Schema of Network."""
    spec = {"type": "object", "required": ["cloudProvider", "region", "vpcCidr", "podCidr", "serviceCidr",
                                            "zones", "subnets"],
            "properties": {**_common_spec(), **network_fields()}}
    status = {"type": "object", "properties": {
        "resourceGroupId": _string(max_length=512, description="Azure resource group holding the VNet.")}}
    return {"type": "object", "required": ["spec"], "properties": {"spec": spec, "status": status}}


def database_schema(versions: Mapping[str, list[str]]) -> Obj:
    """openAPIV3Schema of Database."""
    rules = [{"rule": f"self.engine != '{engine}' || self.version in {list(vs)!r}",
              "message": f"{engine} versions: {', '.join(vs)}"} for engine, vs in versions.items()]
    rules.append({"rule": "self.cloudProvider != 'azure' || self.engine == 'postgres'",
                  "message": "on azure, databases are PostgreSQL flexible servers"})
    spec = {"type": "object", "required": ["cloudProvider", "region", "network", "engine", "version"],
            "x-kubernetes-validations": rules,
            "properties": {**_common_spec(), "network": _network_ref(),
                           "engine": _immutable({"type": "string", "enum": sorted(versions)}),
                           "version": _string(pattern=r"^[0-9]+(\.[0-9]+)?$", max_length=8),
                           "size": {"type": "string", "enum": ["small", "medium", "large"], "default": "small"},
                           "storageGb": {"type": "integer", "minimum": 20, "maximum": 16384, "default": 64},
                           "highAvailability": {"type": "boolean", "default": False},
                           "replicas": {"type": "array", "maxItems": 4,
                                        "description": "Read replicas in other regions (multi-region prod).",
                                        "items": {"type": "object", "required": ["region", "network"],
                                                  "properties": {
                                                      "region": _string(pattern="^[a-z0-9-]+$", max_length=32),
                                                      "network": _network_ref()}}}}}
    status = {"type": "object", "properties": {"endpoint": _string(max_length=512)}}
    return {"type": "object", "required": ["spec"], "properties": {"spec": spec, "status": status}}


def dns_failover_schema() -> Obj:
    """openAPIV3Schema of DnsFailover: a global name and the two clusters' hosts it fails over between."""
    hostname = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$"
    endpoint = {"type": "object", "required": ["role", "cluster", "target", "healthCheckPath"], "properties": {
        "role": {"type": "string", "enum": ["PRIMARY", "SECONDARY"]},
        "cluster": _string(pattern=DNS_LABEL, max_length=63),
        "target": _string(pattern=hostname, description="The cluster's own host name for the app."),
        "healthCheckPath": _string(pattern="^/", max_length=255)}}
    spec = {"type": "object", "required": ["cloudProvider", "region", "zoneId", "name", "endpoints"],
            "x-kubernetes-validations": [{"rule": "self.endpoints.exists(e, e.role == 'PRIMARY') && "
                                                  "self.endpoints.exists(e, e.role == 'SECONDARY')",
                                          "message": "give one PRIMARY and one SECONDARY endpoint"}],
            "properties": {**_common_spec(),
                           "zoneId": _string(pattern="^[A-Z0-9]{1,32}$", max_length=32,
                                             description="Route 53 hosted zone of the name."),
                           "name": _string(pattern=hostname, description="The global name clients use."),
                           "ttl": {"type": "integer", "minimum": 0, "maximum": 86400, "default": 60},
                           "endpoints": {"type": "array", "minItems": 2, "maxItems": 2, "items": endpoint}}}
    return {"type": "object", "required": ["spec"], "properties": {"spec": spec}}


def cache_schema() -> Obj:
    """openAPIV3Schema of Cache."""
    spec = {"type": "object", "required": ["cloudProvider", "region", "network"],
            "properties": {**_common_spec(), "network": _network_ref(),
                           "size": {"type": "string", "enum": ["small", "medium", "large"], "default": "small"},
                           "highAvailability": {"type": "boolean", "default": False}}}
    status = {"type": "object", "properties": {"endpoint": _string(max_length=512)}}
    return {"type": "object", "required": ["spec"], "properties": {"spec": spec, "status": status}}


OBJECT_STORE = Api("ObjectStore", "objectstores",
                   "Object storage buckets and the workload identity that writes them (no static keys).")
BUCKET_NAME = "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


def object_store_schema() -> Obj:
    """openAPIV3Schema of ObjectStore."""
    bucket = {"type": "object", "required": ["name"], "properties": {
        "name": _string(pattern=BUCKET_NAME, max_length=63, description="The bucket's name in the cloud."),
        "expirationDays": {"type": "integer", "minimum": 1, "maximum": 36500,
                           "description": "Objects older than this are deleted (unset: kept)."}}}
    subject = {"type": "object", "required": ["namespace", "name"], "properties": {
        "namespace": _string(pattern=DNS_LABEL, max_length=63), "name": _string(max_length=253)}}
    writers = {"type": "object", "required": ["identityName", "serviceAccounts", "oidcIssuer"],
               "description": "Who reads and writes the buckets: these Kubernetes service accounts of the hub.",
               "properties": {
                   "identityName": _string(pattern="^[A-Za-z0-9+=,.@_-]{1,64}$", max_length=64,
                                           description="The identity's name (AWS: the IAM role)."),
                   "serviceAccounts": {"type": "array", "minItems": 1, "maxItems": 16, "items": subject},
                   "oidcIssuer": _string(pattern="^https://", max_length=512,
                                         description="The hub's OIDC issuer URL (workload identity).")}}
    spec = {"type": "object", "required": ["cloudProvider", "region", "account", "buckets", "writers"],
            "properties": {**_common_spec(),
                           "account": _string(pattern="^[A-Za-z0-9-]+$", max_length=64,
                                              description="AWS account ID, GCP project ID or Azure subscription."),
                           "noncurrentVersionDays": {"type": "integer", "minimum": 1, "maximum": 3650, "default": 7},
                           "abortIncompleteUploadDays": {"type": "integer", "minimum": 1, "maximum": 3650,
                                                         "default": 1},
                           "buckets": {"type": "array", "minItems": 1, "maxItems": 8, "items": bucket,
                                       "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
                           "writers": writers}}
    status = {"type": "object", "properties": {
        "identity": _string(max_length=512, description="The write identity (AWS: the role ARN).")}}
    return {"type": "object", "required": ["spec"], "properties": {"spec": spec, "status": status}}


def _columns(api: Api) -> list[Obj]:
    columns = [{"name": "CLOUD", "type": "string", "jsonPath": ".spec.cloudProvider"},
               {"name": "REGION", "type": "string", "jsonPath": ".spec.region"}]
    if api is CLUSTER:
        columns.append({"name": "VERSION", "type": "string", "jsonPath": ".spec.kubernetes.version"})
    return columns


def definition(api: Api, schema: Obj, mode: Mode) -> Obj:
    """The CompositeResourceDefinition of an API: v2 Namespaced, or v1 LegacyCluster with a claim."""
    version: Obj = {"name": mode.version, "served": True, "referenceable": True,
                    "schema": {"openAPIV3Schema": {"description": api.description, **schema}},
                    "additionalPrinterColumns": _columns(api)}
    names = {"kind": mode.xr_kind(api.kind), "plural": ("x" if mode.legacy else "") + api.plural,
             "categories": ["crossplane", "platform"]}
    spec: Obj = {"group": mode.group, "names": names}
    if mode.legacy:
        spec["scope"] = "LegacyCluster"
        spec["claimNames"] = {"kind": api.kind, "plural": api.plural, "categories": ["platform"]}
    else:
        spec["scope"] = "Namespaced"
    spec["defaultCompositionUpdatePolicy"] = "Automatic"
    spec["versions"] = [version]
    return {
        "apiVersion": "apiextensions.crossplane.io/v1" if mode.legacy else "apiextensions.crossplane.io/v2",
        "kind": "CompositeResourceDefinition",
        "metadata": {"name": f"{names['plural']}.{mode.group}"},
        "spec": spec,
    }


# --- what Crossplane adds to the CRDs it generates (internal/xcrd/schemas.go) -------------------------

_NAME_REF: Obj = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
_LABELS: Obj = {"type": "object", "required": ["matchLabels"], "properties": {
    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}}
_CONDITIONS: Obj = {"type": "array", "items": {
    "type": "object", "required": ["lastTransitionTime", "reason", "status", "type"],
    "properties": {"lastTransitionTime": {"type": "string", "format": "date-time"}, "message": {"type": "string"},
                   "reason": {"type": "string"}, "status": {"type": "string"}, "type": {"type": "string"},
                   "observedGeneration": {"type": "integer", "format": "int64"}}}}


def _machinery(namespaced: bool) -> Obj:
    ref_props = {"apiVersion": {"type": "string"}, "name": {"type": "string"}, "kind": {"type": "string"}}
    if not namespaced:
        ref_props["namespace"] = {"type": "string"}
    return {
        "compositionRef": _NAME_REF, "compositionSelector": _LABELS, "compositionRevisionRef": _NAME_REF,
        "compositionRevisionSelector": _LABELS,
        "compositionUpdatePolicy": {"type": "string", "enum": ["Automatic", "Manual"]},
        "resourceRefs": {"type": "array", "items": {"type": "object", "required": ["apiVersion", "kind"],
                                                    "properties": ref_props}},
    }


def xr_openapi(xrd: Mapping[str, Any], *, claim: bool = False) -> Obj:
    """The openAPIV3Schema of the CRD Crossplane generates for an XRD's composite (or, with ``claim``, its claim)."""
    legacy = xrd["spec"].get("scope") == "LegacyCluster"
    schema: Obj = copy.deepcopy(xrd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    props = schema.setdefault("properties", {})
    spec = props.setdefault("spec", {"type": "object"})
    spec_props = spec.setdefault("properties", {})
    status = props.setdefault("status", {"type": "object"})
    status_props = status.setdefault("properties", {})
    status_props["conditions"] = _CONDITIONS
    if claim:
        spec_props.update({**{k: v for k, v in _machinery(False).items() if k != "resourceRefs"},
                           "compositeDeletePolicy": {"type": "string", "enum": ["Background", "Foreground"]},
                           "resourceRef": {"type": "object", "required": ["apiVersion", "kind", "name"],
                                           "properties": {"apiVersion": {"type": "string"},
                                                          "kind": {"type": "string"}, "name": {"type": "string"}}},
                           "writeConnectionSecretToRef": _NAME_REF})
        status_props["connectionDetails"] = {"type": "object", "properties": {
            "lastPublishedTime": {"type": "string", "format": "date-time"}}}
    elif legacy:
        spec_props.update({**_machinery(False),
                           "claimRef": {"type": "object", "required": ["apiVersion", "kind", "namespace", "name"],
                                        "properties": {k: {"type": "string"}
                                                       for k in ("apiVersion", "kind", "namespace", "name")}},
                           "writeConnectionSecretToRef": {"type": "object", "required": ["name", "namespace"],
                                                          "properties": {"name": {"type": "string"},
                                                                         "namespace": {"type": "string"}}}})
        status_props["connectionDetails"] = {"type": "object", "properties": {
            "lastPublishedTime": {"type": "string", "format": "date-time"}}}
        status_props["claimConditionTypes"] = {"type": "array", "items": {"type": "string"}}
    else:
        spec_props["crossplane"] = {"type": "object", "properties": _machinery(xrd["spec"].get("scope") != "Cluster")}
        status_props["crossplane"] = {"type": "object", "properties": {"connectionDetails": {
            "type": "object", "properties": {"lastPublishedTime": {"type": "string", "format": "date-time"}}}}}
    return schema


def served_kinds(xrd: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """(apiVersion, kind, is_claim) of the composite and, for legacy XRDs, the claim an XRD defines."""
    spec = xrd["spec"]
    api_version = f"{spec['group']}/{spec['versions'][0]['name']}"
    kinds = [(api_version, spec["names"]["kind"], False)]
    if spec.get("claimNames"):
        kinds.append((api_version, spec["claimNames"]["kind"], True))
    return kinds


# --- field paths ----------------------------------------------------------------------------------------

_SEGMENT = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]")
_METADATA = {"name", "namespace", "uid", "generateName", "labels", "annotations"}


def xr_schemas(documents: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Obj]:
    """Strict JSON schemas of every composite (and legacy claim) kind the XRDs in ``documents`` define."""
    from generator.openapi import strict_schema_from_openapi

    schemas: dict[tuple[str, str], Obj] = {}
    for doc in documents:
        if doc.get("kind") == "CompositeResourceDefinition":
            for api_version, kind, claim in served_kinds(doc):
                openapi = xr_openapi(doc, claim=claim)
                schemas[(api_version, kind)] = strict_schema_from_openapi(openapi, api_version=api_version, kind=kind)
    return schemas
