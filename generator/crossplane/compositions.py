"""Compositions per cloud: the seed's EKS/GKE/AKS cluster compositions, and Network, Database and Cache.

Every Composition is ``mode: Pipeline``: function-patch-and-transform composes Upbound v2 namespaced managed
resources (each with ``providerConfigRef`` kind and name), then function-auto-ready marks the XR ready.
Composed resources find each other with selectors: ``matchControllerRef`` inside one XR, and the
``platform.gitops.io/network`` label (the cluster's name) across XRs (a cluster's nested Network, or a
database placed in a cluster's network).

patch-and-transform cannot loop, so node groups and taints use fixed slots: slot ``i`` reads
``spec.nodeGroups[i]`` with a *Required* patch, and the slot is simply not composed while the XR has no such
node group (the function reports a warning for the skipped slot). The XRD bounds the lists to the slots.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from generator.crossplane.api import CACHE, CLUSTER, DATABASE, NETWORK
from generator.crossplane.patches import (
    EXTERNAL_NAME,
    NETWORK_LABEL,
    PROVIDER_LABEL,
    ROLE_LABEL,
    Mode,
    Obj,
    combine_from_xr,
    composed,
    composition,
    fmt,
    from_xr,
    regexp,
    selector,
    table,
    to_string,
    to_xr,
)
from generator.models import AzureAdGroup

TIER_LABEL = "platform.gitops.io/tier"
SUBNET_LABEL = "platform.gitops.io/subnet"
ROUTE_TABLE_LABEL = "platform.gitops.io/route-table"
EC2 = "ec2.aws.m.upbound.io/v1beta1"
EKS = "eks.aws.m.upbound.io/v1beta1"
IAM = "iam.aws.m.upbound.io/v1beta1"
RDS = "rds.aws.m.upbound.io/v1beta1"
ELASTICACHE = "elasticache.aws.m.upbound.io/v1beta1"
COMPUTE = "compute.gcp.m.upbound.io/v1beta1"
CONTAINER = "container.gcp.m.upbound.io/v1beta1"
CLOUDPLATFORM = "cloudplatform.gcp.m.upbound.io/v1beta1"
SERVICENETWORKING = "servicenetworking.gcp.m.upbound.io/v1beta1"
SQL = "sql.gcp.m.upbound.io/v1beta1"
REDIS = "redis.gcp.m.upbound.io/v1beta1"
AZURE = "azure.m.upbound.io/v1beta1"
AZ_NETWORK = "network.azure.m.upbound.io/v1beta1"
AKS = "containerservice.azure.m.upbound.io/v1beta1"
IDENTITY = "managedidentity.azure.m.upbound.io/v1beta1"
AUTHORIZATION = "authorization.azure.m.upbound.io/v1beta1"
POSTGRES = "dbforpostgresql.azure.m.upbound.io/v1beta1"
AZ_CACHE = "cache.azure.m.upbound.io/v1beta1"

EFFECTS_UPPER = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}
BOOL_TO_NOT = {"true": False, "false": True}


@dataclass(frozen=True)
class Facts:
    """Fleet-wide facts the compositions are rendered with."""

    mode: Mode
    node_groups: int
    taints: int
    sizes: dict[str, dict[str, dict[str, Any]]]
    engine_versions: dict[str, dict[str, str]]
    azure_tenant_id: str | None = None
    azure_database_admins: AzureAdGroup | None = None


def _trust(service: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}, indent=2) + "\n"


def _network_label(mode: Mode, *, path: str | None = None) -> Obj:
    """Label a composed resource with the network it belongs to (the cluster's name)."""
    return from_xr(path or mode.name_path, f"metadata.labels[{NETWORK_LABEL}]")


def _select_network(mode: Mode, target: str, *, path: str | None = None) -> Obj:
    """Point a selector at resources of the named network."""
    return from_xr(path or mode.name_path, f"{target}.matchLabels[{NETWORK_LABEL}]")


def _nested_network(facts: Facts, cloud: str) -> Obj:
    """The cluster's Network XR, composed by the cluster composition."""
    mode = facts.mode
    spec: Obj = {"cloudProvider": cloud}
    selection = {"compositionSelector": {"matchLabels": {PROVIDER_LABEL: cloud}}}
    if mode.legacy:
        spec.update(selection)
    else:
        spec["crossplane"] = selection
    return composed("network", mode.api_version, mode.xr_kind(NETWORK.kind), mode, spec=spec, managed=False,
                    namespaced=not mode.legacy, patches=[
                        from_xr(mode.name_path, "metadata.name", required=True),
                        from_xr("spec.region"), from_xr("spec.providerConfigName"), from_xr("spec.tags"),
                        from_xr("spec.networking.vpcCidr", "spec.vpcCidr"),
                        from_xr("spec.networking.podCidr", "spec.podCidr"),
                        from_xr("spec.networking.serviceCidr", "spec.serviceCidr"),
                        from_xr("spec.networking.zones", "spec.zones"),
                        from_xr("spec.networking.subnets", "spec.subnets"),
                    ])


def _kubeconfig(target: str = "spec.writeConnectionSecretToRef.name") -> Obj:
    return from_xr("spec.kubeconfigSecretName", target, required=True)


def _slot(i: int, field: str) -> str:
    return f"spec.nodeGroups[{i}].{field}"


# --- AWS ----------------------------------------------------------------------------------------------------


def aws_network(facts: Facts) -> Obj:
    """VPC, three private and three public subnets, internet gateway, NAT gateway with EIP, route tables."""
    mode = facts.mode
    regional = [from_xr("spec.region", "spec.forProvider.region"), from_xr("spec.tags", "spec.forProvider.tags",
                                                                           merge=True), _network_label(mode)]
    controller = selector(controller=True)
    resources = [
        composed("vpc", EC2, "VPC", mode, for_provider={"enableDnsHostnames": True, "enableDnsSupport": True},
                 patches=[*regional, from_xr("spec.vpcCidr", "spec.forProvider.cidrBlock")]),
        composed("internet-gateway", EC2, "InternetGateway", mode, for_provider={"vpcIdSelector": controller},
                 patches=regional),
    ]
    for tier, elb_tag in (("private", "kubernetes.io/role/internal-elb"), ("public", "kubernetes.io/role/elb")):
        for i in range(3):
            resources.append(composed(
                f"subnet-{tier}-{i}", EC2, "Subnet", mode,
                labels={TIER_LABEL: tier, SUBNET_LABEL: f"{tier}-{i}"},
                for_provider={"vpcIdSelector": controller, "mapPublicIpOnLaunch": tier == "public",
                              "tags": {elb_tag: "1"}},
                patches=[*regional,
                         from_xr(f"spec.subnets.{tier}[{i}].cidr", "spec.forProvider.cidrBlock", required=True),
                         from_xr(f"spec.subnets.{tier}[{i}].zone", "spec.forProvider.availabilityZone",
                                 required=True)]))
    resources += [
        composed("nat-eip", EC2, "EIP", mode, for_provider={"domain": "vpc"}, patches=regional),
        composed("nat-gateway", EC2, "NATGateway", mode, for_provider={
            "connectivityType": "public", "allocationIdSelector": controller,
            "subnetIdSelector": selector((SUBNET_LABEL, "public-0"), controller=True)}, patches=regional),
    ]
    for tier, target in (("public", ("gatewayIdSelector", "InternetGateway")),
                         ("private", ("natGatewayIdSelector", "NATGateway"))):
        resources += [
            composed(f"route-table-{tier}", EC2, "RouteTable", mode, labels={ROUTE_TABLE_LABEL: tier},
                     for_provider={"vpcIdSelector": controller}, patches=regional),
            composed(f"route-{tier}-default", EC2, "Route", mode, for_provider={
                "destinationCidrBlock": "0.0.0.0/0",
                "routeTableIdSelector": selector((ROUTE_TABLE_LABEL, tier), controller=True),
                target[0]: controller}, patches=regional[:1]),
        ]
        resources += [composed(f"route-table-association-{tier}-{i}", EC2, "RouteTableAssociation", mode,
                               for_provider={"routeTableIdSelector": selector((ROUTE_TABLE_LABEL, tier),
                                                                              controller=True),
                                             "subnetIdSelector": selector((SUBNET_LABEL, f"{tier}-{i}"),
                                                                          controller=True)},
                               patches=regional[:1]) for i in range(3)]
    return composition("aws-network", mode, NETWORK.kind, "aws", NETWORK.short, resources)


def aws_eks(facts: Facts) -> Obj:
    """EKS: the Network, IAM roles and policies, security group, cluster, kubeconfig, OIDC provider, node groups."""
    mode = facts.mode
    region = from_xr("spec.region", "spec.forProvider.region")
    tags = from_xr("spec.tags", "spec.forProvider.tags", merge=True)
    controller = selector(controller=True)
    private = selector((TIER_LABEL, "private"))
    resources: list[Obj] = [_nested_network(facts, "aws")]
    policies = {"cluster": ["AmazonEKSClusterPolicy", "AmazonEKSVPCResourceController"],
                "nodes": ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly",
                          "AmazonSSMManagedInstanceCore"]}
    for role, service in (("cluster", "eks.amazonaws.com"), ("nodes", "ec2.amazonaws.com")):
        resources.append(composed(f"{role}-role", IAM, "Role", mode, labels={ROLE_LABEL: role},
                                  for_provider={"assumeRolePolicy": _trust(service)}, patches=[tags]))
        resources += [composed(f"{role}-role-{policy.lower().replace('_', '-')}", IAM, "RolePolicyAttachment", mode,
                               for_provider={"policyArn": f"arn:aws:iam::aws:policy/{policy}",
                                             "roleSelector": selector((ROLE_LABEL, role), controller=True)})
                      for policy in policies[role]]
    resources += [
        composed("control-plane-security-group", EC2, "SecurityGroup", mode, labels={ROLE_LABEL: "control-plane"},
                 for_provider={"description": "EKS control plane: HTTPS from the cluster VPC",
                               "vpcIdSelector": selector()},
                 patches=[region, tags, _select_network(mode, "spec.forProvider.vpcIdSelector")]),
        composed("control-plane-ingress-https", EC2, "SecurityGroupIngressRule", mode, for_provider={
            "ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
            "securityGroupIdSelector": selector((ROLE_LABEL, "control-plane"), controller=True)},
            patches=[region, from_xr("spec.networking.vpcCidr", "spec.forProvider.cidrIpv4")]),
        composed("control-plane-egress", EC2, "SecurityGroupEgressRule", mode, for_provider={
            "ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0",
            "securityGroupIdSelector": selector((ROLE_LABEL, "control-plane"), controller=True)}, patches=[region]),
        composed("eks-cluster", EKS, "Cluster", mode, for_provider={
            "roleArnSelector": selector((ROLE_LABEL, "cluster"), controller=True),
            "vpcConfig": {"subnetIdSelector": private, "endpointPrivateAccess": True,
                          "securityGroupIdSelector": selector((ROLE_LABEL, "control-plane"), controller=True)},
            "accessConfig": {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": True},
            "enabledClusterLogTypes": ["api", "audit", "authenticator"]},
            patches=[region, tags, from_xr(mode.name_path, EXTERNAL_NAME, required=True),
                     from_xr("spec.kubernetes.version", "spec.forProvider.version"),
                     _select_network(mode, "spec.forProvider.vpcConfig.subnetIdSelector"),
                     from_xr("spec.networking.privateEndpoint", "spec.forProvider.vpcConfig.endpointPublicAccess",
                             transforms=[to_string(), table(BOOL_TO_NOT)]),
                     from_xr("spec.networking.serviceCidr",
                             "spec.forProvider.kubernetesNetworkConfig.serviceIpv4Cidr"),
                     to_xr("status.atProvider.identity[0].oidc[0].issuer", "status.oidcIssuerUrl")]),
        composed("kubeconfig", EKS, "ClusterAuth", mode, spec={"writeConnectionSecretToRef": {"name": "kubeconfig"}},
                 for_provider={"clusterNameSelector": controller}, patches=[region, _kubeconfig()]),
        composed("oidc-provider", IAM, "OpenIDConnectProvider", mode,
                 for_provider={"clientIdList": ["sts.amazonaws.com"]},
                 patches=[tags, from_xr("status.oidcIssuerUrl", "spec.forProvider.url", required=True)]),
    ]
    for i in range(facts.node_groups):
        patches = [region, tags,
                   from_xr(_slot(i, "name"), EXTERNAL_NAME, required=True),
                   from_xr("spec.kubernetes.version", "spec.forProvider.version"),
                   from_xr(_slot(i, "instanceType"), "spec.forProvider.instanceTypes[0]"),
                   from_xr(_slot(i, "minSize"), "spec.forProvider.scalingConfig.minSize"),
                   from_xr(_slot(i, "maxSize"), "spec.forProvider.scalingConfig.maxSize"),
                   from_xr(_slot(i, "desiredSize"), "spec.initProvider.scalingConfig.desiredSize"),
                   from_xr(_slot(i, "diskSizeGb"), "spec.forProvider.diskSize"),
                   from_xr(_slot(i, "labels"), "spec.forProvider.labels"),
                   _select_network(mode, "spec.forProvider.subnetIdSelector")]
        for j in range(facts.taints):
            taint = f"spec.nodeGroups[{i}].taints[{j}]"
            patches += [from_xr(f"{taint}.key", f"spec.forProvider.taint[{j}].key"),
                        from_xr(f"{taint}.value", f"spec.forProvider.taint[{j}].value"),
                        from_xr(f"{taint}.effect", f"spec.forProvider.taint[{j}].effect",
                                transforms=[table(EFFECTS_UPPER)])]
        resources.append(composed(f"node-group-{i}", EKS, "NodeGroup", mode, for_provider={
            "clusterNameSelector": controller, "amiType": "AL2023_x86_64_STANDARD", "capacityType": "ON_DEMAND",
            "nodeRoleArnSelector": selector((ROLE_LABEL, "nodes"), controller=True),
            "subnetIdSelector": private, "scalingConfig": {}}, patches=patches))
    return composition("aws-eks", mode, CLUSTER.kind, "aws", CLUSTER.short, resources)


def _aws_security_group(mode: Mode, what: str, ports: list[Obj], fixed: Obj | None = None) -> list[Obj]:
    """A security group in the cluster's VPC and an ingress rule from the VPC CIDR (port patches or fixed ports)."""
    region = from_xr("spec.region", "spec.forProvider.region")
    return [
        composed("security-group", EC2, "SecurityGroup", mode, labels={ROLE_LABEL: what},
                 for_provider={"description": f"{what}: access from the cluster VPC", "vpcIdSelector": selector()},
                 patches=[region, from_xr("spec.tags", "spec.forProvider.tags", merge=True),
                          _select_network(mode, "spec.forProvider.vpcIdSelector", path="spec.network.name")]),
        composed("security-group-ingress", EC2, "SecurityGroupIngressRule", mode, for_provider={
            "ipProtocol": "tcp", "securityGroupIdSelector": selector((ROLE_LABEL, what), controller=True),
            **(fixed or {})},
            patches=[region, from_xr("spec.network.cidr", "spec.forProvider.cidrIpv4"), *ports]),
    ]


def aws_rds(facts: Facts) -> Obj:
    """RDS: subnet group in the cluster's private subnets, security group, encrypted instance."""
    mode = facts.mode
    region = from_xr("spec.region", "spec.forProvider.region")
    tags = from_xr("spec.tags", "spec.forProvider.tags", merge=True)
    ports = {"postgres": 5432, "mysql": 3306}
    port = [from_xr("spec.engine", "spec.forProvider.fromPort", transforms=[table(ports)]),
            from_xr("spec.engine", "spec.forProvider.toPort", transforms=[table(ports)])]
    resources = [
        composed("subnet-group", RDS, "SubnetGroup", mode,
                 for_provider={"description": "Private subnets of the cluster network",
                               "subnetIdSelector": selector((TIER_LABEL, "private"))},
                 patches=[region, tags, _select_network(mode, "spec.forProvider.subnetIdSelector",
                                                        path="spec.network.name")]),
        *_aws_security_group(mode, "database", port),
        composed("instance", RDS, "Instance", mode, for_provider={
            "dbSubnetGroupNameSelector": selector(controller=True),
            "vpcSecurityGroupIdSelector": selector((ROLE_LABEL, "database"), controller=True),
            "username": "platform_admin", "manageMasterUserPassword": True, "storageEncrypted": True,
            "publiclyAccessible": False, "autoMinorVersionUpgrade": True, "backupRetentionPeriod": 7,
            "copyTagsToSnapshot": True, "skipFinalSnapshot": False},
            patches=[region, tags, from_xr("spec.engine", "spec.forProvider.engine"),
                     from_xr("spec.version", "spec.forProvider.engineVersion"),
                     from_xr("spec.size", "spec.forProvider.instanceClass",
                             transforms=[table(facts.sizes["database"]["aws"])]),
                     from_xr("spec.storageGb", "spec.forProvider.allocatedStorage"),
                     from_xr("spec.highAvailability", "spec.forProvider.multiAz"),
                     from_xr(mode.name_path, "spec.forProvider.finalSnapshotIdentifier", transforms=[fmt("%s-final")]),
                     to_xr("status.atProvider.address", "status.endpoint")]),
    ]
    return composition("aws-rds", mode, DATABASE.kind, "aws", DATABASE.short, resources)


def aws_elasticache(facts: Facts) -> Obj:
    """ElastiCache: subnet group, security group, encrypted Redis replication group."""
    mode = facts.mode
    region = from_xr("spec.region", "spec.forProvider.region")
    tags = from_xr("spec.tags", "spec.forProvider.tags", merge=True)
    resources = [
        composed("subnet-group", ELASTICACHE, "SubnetGroup", mode,
                 for_provider={"description": "Private subnets of the cluster network",
                               "subnetIdSelector": selector((TIER_LABEL, "private"))},
                 patches=[region, tags, _select_network(mode, "spec.forProvider.subnetIdSelector",
                                                        path="spec.network.name")]),
        *_aws_security_group(mode, "cache", [], {"fromPort": 6379, "toPort": 6379}),
        composed("replication-group", ELASTICACHE, "ReplicationGroup", mode, for_provider={
            "description": "Redis for workloads of the cluster", "engine": "redis", "engineVersion": "7.1",
            "port": 6379, "atRestEncryptionEnabled": True, "transitEncryptionEnabled": True,
            "subnetGroupNameSelector": selector(controller=True),
            "securityGroupIdSelector": selector((ROLE_LABEL, "cache"), controller=True)},
            patches=[region, tags,
                     from_xr("spec.size", "spec.forProvider.nodeType", transforms=[table(facts.sizes["cache"]["aws"])]),
                     from_xr("spec.highAvailability", "spec.forProvider.numCacheClusters",
                             transforms=[to_string(), table({"true": 2, "false": 1})]),
                     from_xr("spec.highAvailability", "spec.forProvider.automaticFailoverEnabled"),
                     from_xr("spec.highAvailability", "spec.forProvider.multiAzEnabled"),
                     to_xr("status.atProvider.primaryEndpointAddress", "status.endpoint")]),
    ]
    return composition("aws-elasticache", mode, CACHE.kind, "aws", CACHE.short, resources)


# --- GCP ----------------------------------------------------------------------------------------------------


def gcp_network(facts: Facts) -> Obj:
    """VPC network, node subnetwork with pod and service ranges, Cloud Router and NAT, private service access."""
    mode = facts.mode
    region = from_xr("spec.region", "spec.forProvider.region")
    controller = selector(controller=True)
    resources = [
        composed("network", COMPUTE, "Network", mode,
                 for_provider={"autoCreateSubnetworks": False, "routingMode": "REGIONAL"},
                 patches=[_network_label(mode)]),
        composed("subnetwork", COMPUTE, "Subnetwork", mode, labels={TIER_LABEL: "private"}, for_provider={
            "networkSelector": controller, "privateIpGoogleAccess": True,
            "secondaryIpRange": [{"rangeName": "pods"}, {"rangeName": "services"}]},
            patches=[region, _network_label(mode),
                     from_xr("spec.subnets.private[0].cidr", "spec.forProvider.ipCidrRange", required=True),
                     from_xr("spec.podCidr", "spec.forProvider.secondaryIpRange[0].ipCidrRange"),
                     from_xr("spec.serviceCidr", "spec.forProvider.secondaryIpRange[1].ipCidrRange")]),
        composed("router", COMPUTE, "Router", mode, for_provider={"networkSelector": controller}, patches=[region]),
        composed("nat", COMPUTE, "RouterNAT", mode, for_provider={
            "routerSelector": controller, "natIpAllocateOption": "AUTO_ONLY",
            "sourceSubnetworkIpRangesToNat": "ALL_SUBNETWORKS_ALL_IP_RANGES"}, patches=[region]),
        composed("private-services-range", COMPUTE, "GlobalAddress", mode, for_provider={
            "purpose": "VPC_PEERING", "addressType": "INTERNAL", "prefixLength": 20, "networkSelector": controller}),
        composed("private-services-connection", SERVICENETWORKING, "Connection", mode, for_provider={
            "service": "servicenetworking.googleapis.com", "networkSelector": controller,
            "reservedPeeringRangesSelector": controller}),
    ]
    return composition("gcp-network", mode, NETWORK.kind, "gcp", NETWORK.short, resources)


def gcp_gke(facts: Facts) -> Obj:
    """GKE: the Network, node service account and its roles, private regional cluster, node pools."""
    mode = facts.mode
    location = from_xr("spec.region", "spec.forProvider.location")
    controller = selector(controller=True)
    resources: list[Obj] = [
        _nested_network(facts, "gcp"),
        composed("node-service-account", CLOUDPLATFORM, "ServiceAccount", mode,
                 for_provider={"displayName": "GKE nodes", "description": "Managed by fleetgen (Crossplane)"},
                 patches=[from_xr(mode.name_path, EXTERNAL_NAME, required=True,
                                  transforms=[regexp("^(.{1,23}[a-z0-9])"), fmt("%s-nodes")]),
                          to_xr("status.atProvider.email", "status.nodeServiceAccountEmail")]),
    ]
    for role in ("logging.logWriter", "monitoring.metricWriter", "monitoring.viewer", "artifactregistry.reader"):
        resources.append(composed(
            f"node-service-account-{role.replace('.', '-').lower()}", CLOUDPLATFORM, "ProjectIAMMember", mode,
            for_provider={"role": f"roles/{role}"},
            patches=[from_xr("spec.account", "spec.forProvider.project", required=True),
                     combine_from_xr("serviceAccount:%s", ["status.nodeServiceAccountEmail"],
                                     "spec.forProvider.member", required=True)]))
    resources.append(composed("gke-cluster", CONTAINER, "Cluster", mode, spec={
        "writeConnectionSecretToRef": {"name": "kubeconfig"}}, for_provider={
        "removeDefaultNodePool": True, "initialNodeCount": 1, "deletionProtection": False,
        "networkSelector": selector(), "subnetworkSelector": selector((TIER_LABEL, "private")),
        "ipAllocationPolicy": {"clusterSecondaryRangeName": "pods", "servicesSecondaryRangeName": "services"},
        "privateClusterConfig": {"enablePrivateNodes": True},
        "releaseChannel": {"channel": "UNSPECIFIED"}},
        patches=[location, _kubeconfig(), from_xr(mode.name_path, EXTERNAL_NAME, required=True),
                 from_xr("spec.tags", "spec.forProvider.resourceLabels"),
                 from_xr("spec.kubernetes.version", "spec.forProvider.minMasterVersion"),
                 from_xr("spec.networking.zones", "spec.forProvider.nodeLocations"),
                 _select_network(mode, "spec.forProvider.networkSelector"),
                 _select_network(mode, "spec.forProvider.subnetworkSelector"),
                 from_xr("spec.networking.privateEndpoint",
                         "spec.forProvider.privateClusterConfig.enablePrivateEndpoint"),
                 from_xr("spec.networking.controlPlaneCidr",
                         "spec.forProvider.privateClusterConfig.masterIpv4CidrBlock", required=True),
                 combine_from_xr("%s.svc.id.goog", ["spec.account"],
                                 "spec.forProvider.workloadIdentityConfig.workloadPool", required=True)]))
    for i in range(facts.node_groups):
        patches = [location, from_xr(_slot(i, "name"), EXTERNAL_NAME, required=True),
                   from_xr(_slot(i, "instanceType"), "spec.forProvider.nodeConfig.machineType"),
                   from_xr(_slot(i, "minSize"), "spec.forProvider.autoscaling.totalMinNodeCount"),
                   from_xr(_slot(i, "maxSize"), "spec.forProvider.autoscaling.totalMaxNodeCount"),
                   from_xr(_slot(i, "diskSizeGb"), "spec.forProvider.nodeConfig.diskSizeGb"),
                   from_xr(_slot(i, "labels"), "spec.forProvider.nodeConfig.labels"),
                   from_xr("spec.tags", "spec.forProvider.nodeConfig.resourceLabels")]
        for j in range(facts.taints):
            taint = f"spec.nodeGroups[{i}].taints[{j}]"
            patches += [from_xr(f"{taint}.key", f"spec.forProvider.nodeConfig.taint[{j}].key"),
                        from_xr(f"{taint}.value", f"spec.forProvider.nodeConfig.taint[{j}].value"),
                        from_xr(f"{taint}.effect", f"spec.forProvider.nodeConfig.taint[{j}].effect",
                                transforms=[table(EFFECTS_UPPER)])]
        resources.append(composed(f"node-pool-{i}", CONTAINER, "NodePool", mode, for_provider={
            "clusterSelector": controller, "initialNodeCount": 1,
            "autoscaling": {"locationPolicy": "BALANCED"},
            "management": {"autoRepair": True, "autoUpgrade": True},
            "nodeConfig": {"oauthScopes": ["https://www.googleapis.com/auth/cloud-platform"],
                           "serviceAccountSelector": controller,
                           "workloadMetadataConfig": {"mode": "GKE_METADATA"}}}, patches=patches))
    return composition("gcp-gke", mode, CLUSTER.kind, "gcp", CLUSTER.short, resources)


def gcp_cloudsql(facts: Facts) -> Obj:
    """Cloud SQL: a private-IP instance in the cluster's network (via its private service access)."""
    mode = facts.mode
    resources = [composed("instance", SQL, "DatabaseInstance", mode, for_provider={
        "deletionProtection": False,
        "settings": {"diskAutoresize": True, "backupConfiguration": {"enabled": True},
                     "ipConfiguration": {"ipv4Enabled": False, "privateNetworkSelector": selector()}}},
        patches=[from_xr("spec.region", "spec.forProvider.region"),
                 # engine versions are disjoint across engines (the XRD pins each engine's versions)
                 from_xr("spec.version", "spec.forProvider.databaseVersion",
                         transforms=[table(facts.engine_versions["gcp"])]),
                 from_xr("spec.size", "spec.forProvider.settings.tier",
                         transforms=[table(facts.sizes["database"]["gcp"])]),
                 from_xr("spec.highAvailability", "spec.forProvider.settings.availabilityType",
                         transforms=[to_string(), table({"true": "REGIONAL", "false": "ZONAL"})]),
                 from_xr("spec.storageGb", "spec.forProvider.settings.diskSize"),
                 from_xr("spec.tags", "spec.forProvider.settings.userLabels"),
                 _select_network(mode, "spec.forProvider.settings.ipConfiguration.privateNetworkSelector",
                                 path="spec.network.name"),
                 to_xr("status.atProvider.privateIpAddress", "status.endpoint")])]
    return composition("gcp-cloudsql", mode, DATABASE.kind, "gcp", DATABASE.short, resources)


def gcp_memorystore(facts: Facts) -> Obj:
    """Memorystore for Redis in the cluster's network (private service access), TLS and AUTH on."""
    mode = facts.mode
    resources = [composed("instance", REDIS, "Instance", mode, for_provider={
        "connectMode": "PRIVATE_SERVICE_ACCESS", "redisVersion": "REDIS_7_2", "authEnabled": True,
        "transitEncryptionMode": "SERVER_AUTHENTICATION", "authorizedNetworkSelector": selector()},
        patches=[from_xr("spec.region", "spec.forProvider.region"),
                 from_xr("spec.size", "spec.forProvider.memorySizeGb", transforms=[table(facts.sizes["cache"]["gcp"])]),
                 from_xr("spec.highAvailability", "spec.forProvider.tier",
                         transforms=[to_string(), table({"true": "STANDARD_HA", "false": "BASIC"})]),
                 from_xr("spec.tags", "spec.forProvider.labels"),
                 _select_network(mode, "spec.forProvider.authorizedNetworkSelector", path="spec.network.name"),
                 to_xr("status.atProvider.host", "status.endpoint")])]
    return composition("gcp-memorystore", mode, CACHE.kind, "gcp", CACHE.short, resources)


# --- Azure --------------------------------------------------------------------------------------------------


def azure_network(facts: Facts) -> Obj:
    """Resource group, virtual network and node subnet."""
    mode = facts.mode
    location = from_xr("spec.region", "spec.forProvider.location")
    tags = from_xr("spec.tags", "spec.forProvider.tags", merge=True)
    controller = selector(controller=True)
    resources = [
        composed("resource-group", AZURE, "ResourceGroup", mode, patches=[
            location, tags, _network_label(mode),
            from_xr(mode.name_path, EXTERNAL_NAME, required=True, transforms=[fmt("%s-network")]),
            to_xr("status.atProvider.id", "status.resourceGroupId")]),
        composed("virtual-network", AZ_NETWORK, "VirtualNetwork", mode,
                 for_provider={"resourceGroupNameSelector": controller},
                 patches=[location, tags, _network_label(mode),
                          from_xr("spec.vpcCidr", "spec.forProvider.addressSpace[0]")]),
        composed("subnet-nodes", AZ_NETWORK, "Subnet", mode, labels={TIER_LABEL: "private"}, for_provider={
            "resourceGroupNameSelector": controller, "virtualNetworkNameSelector": controller},
            patches=[_network_label(mode),
                     from_xr("spec.subnets.private[0].cidr", "spec.forProvider.addressPrefixes[0]", required=True)]),
    ]
    return composition("azure-network", mode, NETWORK.kind, "azure", NETWORK.short, resources)


def azure_aks(facts: Facts) -> Obj:
    """AKS: the Network, user-assigned control-plane identity with Network Contributor, cluster, node pools."""
    mode = facts.mode
    location = from_xr("spec.region", "spec.forProvider.location")
    tags = from_xr("spec.tags", "spec.forProvider.tags", merge=True)
    controller = selector(controller=True)
    network = _nested_network(facts, "azure")
    network["patches"].append(to_xr("status.resourceGroupId", "status.network.resourceGroupId"))
    pool_subnet = selector((TIER_LABEL, "private"))
    resources: list[Obj] = [
        network,
        composed("control-plane-identity", IDENTITY, "UserAssignedIdentity", mode,
                 labels={ROLE_LABEL: "control-plane"}, for_provider={"resourceGroupNameSelector": selector()},
                 patches=[location, tags, from_xr(mode.name_path, "spec.forProvider.name", transforms=[
                     fmt("%s-control-plane")]),
                          _select_network(mode, "spec.forProvider.resourceGroupNameSelector"),
                          to_xr("status.atProvider.principalId", "status.identityPrincipalId")]),
        composed("control-plane-network-contributor", AUTHORIZATION, "RoleAssignment", mode, for_provider={
            "roleDefinitionName": "Network Contributor", "principalType": "ServicePrincipal"},
            patches=[from_xr("status.network.resourceGroupId", "spec.forProvider.scope", required=True),
                     from_xr("status.identityPrincipalId", "spec.forProvider.principalId", required=True)]),
    ]
    cluster_patches = [location, tags, _kubeconfig(), from_xr(mode.name_path, EXTERNAL_NAME, required=True),
                       from_xr(mode.name_path, "spec.forProvider.dnsPrefix"),
                       from_xr("spec.kubernetes.version", "spec.forProvider.kubernetesVersion"),
                       from_xr("spec.networking.privateEndpoint", "spec.forProvider.privateClusterEnabled"),
                       from_xr("spec.networking.podCidr", "spec.forProvider.networkProfile.podCidr"),
                       from_xr("spec.networking.serviceCidr", "spec.forProvider.networkProfile.serviceCidr"),
                       from_xr("spec.networking.dnsServiceIp", "spec.forProvider.networkProfile.dnsServiceIp"),
                       _select_network(mode, "spec.forProvider.resourceGroupNameSelector"),
                       _select_network(mode, "spec.forProvider.defaultNodePool.vnetSubnetIdSelector"),
                       from_xr(_slot(0, "name"), "spec.forProvider.defaultNodePool.name"),
                       from_xr(_slot(0, "instanceType"), "spec.forProvider.defaultNodePool.vmSize"),
                       from_xr(_slot(0, "minSize"), "spec.forProvider.defaultNodePool.minCount"),
                       from_xr(_slot(0, "maxSize"), "spec.forProvider.defaultNodePool.maxCount"),
                       from_xr(_slot(0, "desiredSize"), "spec.initProvider.defaultNodePool.nodeCount"),
                       from_xr(_slot(0, "diskSizeGb"), "spec.forProvider.defaultNodePool.osDiskSizeGb"),
                       from_xr(_slot(0, "labels"), "spec.forProvider.defaultNodePool.nodeLabels"),
                       from_xr("spec.networking.zones", "spec.forProvider.defaultNodePool.zones"),
                       from_xr(f"{_slot(0, 'taints')}[0].key",
                               "spec.forProvider.defaultNodePool.onlyCriticalAddonsEnabled",
                               transforms=[table({"CriticalAddonsOnly": True})]),
                       to_xr("status.atProvider.oidcIssuerUrl", "status.oidcIssuerUrl")]
    resources.append(composed("aks-cluster", AKS, "KubernetesCluster", mode, spec={
        "writeConnectionSecretToRef": {"name": "kubeconfig"}}, for_provider={
        "resourceGroupNameSelector": selector(), "skuTier": "Standard", "localAccountDisabled": False,
        "oidcIssuerEnabled": True, "workloadIdentityEnabled": True,
        "identity": {"type": "UserAssigned",
                     "identityIdsSelector": selector((ROLE_LABEL, "control-plane"), controller=True)},
        "networkProfile": {"networkPlugin": "azure", "networkPluginMode": "overlay", "networkDataPlane": "cilium",
                           "networkPolicy": "cilium", "loadBalancerSku": "standard"},
        "defaultNodePool": {"autoScalingEnabled": True, "vnetSubnetIdSelector": pool_subnet,
                            "temporaryNameForRotation": "rotation", "upgradeSettings": {"maxSurge": "33%"}}},
        patches=cluster_patches))
    for i in range(1, facts.node_groups):
        patches = [tags, from_xr(_slot(i, "name"), EXTERNAL_NAME, required=True),
                   from_xr("spec.kubernetes.version", "spec.forProvider.orchestratorVersion"),
                   from_xr(_slot(i, "instanceType"), "spec.forProvider.vmSize"),
                   from_xr(_slot(i, "minSize"), "spec.forProvider.minCount"),
                   from_xr(_slot(i, "maxSize"), "spec.forProvider.maxCount"),
                   from_xr(_slot(i, "desiredSize"), "spec.initProvider.nodeCount"),
                   from_xr(_slot(i, "diskSizeGb"), "spec.forProvider.osDiskSizeGb"),
                   from_xr(_slot(i, "labels"), "spec.forProvider.nodeLabels"),
                   from_xr("spec.networking.zones", "spec.forProvider.zones"),
                   _select_network(mode, "spec.forProvider.vnetSubnetIdSelector")]
        for j in range(facts.taints):
            taint = f"spec.nodeGroups[{i}].taints[{j}]"
            patches.append(combine_from_xr("%s=%s:%s", [f"{taint}.key", f"{taint}.value", f"{taint}.effect"],
                                           f"spec.forProvider.nodeTaints[{j}]"))
        resources.append(composed(f"node-pool-{i}", AKS, "KubernetesClusterNodePool", mode, for_provider={
            "kubernetesClusterIdSelector": controller, "mode": "User", "autoScalingEnabled": True,
            "vnetSubnetIdSelector": pool_subnet, "upgradeSettings": {"maxSurge": "33%"}}, patches=patches))
    return composition("azure-aks", mode, CLUSTER.kind, "azure", CLUSTER.short, resources)


def azure_postgresql(facts: Facts) -> Obj:
    """Azure Database for PostgreSQL flexible server with Entra ID authentication only (no passwords)."""
    mode = facts.mode
    location = from_xr("spec.region", "spec.forProvider.location")
    tags = from_xr("spec.tags", "spec.forProvider.tags", merge=True)
    auth: Obj = {"activeDirectoryAuthEnabled": True, "passwordAuthEnabled": False}
    if facts.azure_tenant_id:
        auth["tenantId"] = facts.azure_tenant_id
    resources = [composed("server", POSTGRES, "FlexibleServer", mode, labels={ROLE_LABEL: "database"}, for_provider={
        "resourceGroupNameSelector": selector(), "authentication": auth, "publicNetworkAccessEnabled": False,
        "backupRetentionDays": 7, "autoGrowEnabled": True},
        patches=[location, tags, _select_network(mode, "spec.forProvider.resourceGroupNameSelector",
                                                 path="spec.network.name"),
                 from_xr("spec.version", "spec.forProvider.version",
                         transforms=[table(facts.engine_versions["azure"])]),
                 from_xr("spec.size", "spec.forProvider.skuName", transforms=[table(facts.sizes["database"]["azure"])]),
                 from_xr("spec.storageGb", "spec.forProvider.storageMb",
                         transforms=[{"type": "math", "math": {"type": "Multiply", "multiply": 1024}}]),
                 to_xr("status.atProvider.fqdn", "status.endpoint")])]
    admins = facts.azure_database_admins
    if admins is not None and facts.azure_tenant_id:
        resources.append(composed("entra-admin", POSTGRES, "FlexibleServerActiveDirectoryAdministrator", mode,
                                  for_provider={"serverNameSelector": selector((ROLE_LABEL, "database"),
                                                                               controller=True),
                                                "resourceGroupNameSelector": selector(),
                                                "objectId": admins.object_id, "principalName": admins.name,
                                                "principalType": "Group", "tenantId": facts.azure_tenant_id},
                                  patches=[_select_network(mode, "spec.forProvider.resourceGroupNameSelector",
                                                           path="spec.network.name")]))
    return composition("azure-postgresql", mode, DATABASE.kind, "azure", DATABASE.short, resources)


def azure_redis(facts: Facts) -> Obj:
    """Azure Cache for Redis, TLS 1.2 only, no public network access."""
    mode = facts.mode
    sizes = facts.sizes["cache"]["azure"]
    resources = [composed("cache", AZ_CACHE, "RedisCache", mode, for_provider={
        "resourceGroupNameSelector": selector(), "minimumTlsVersion": "1.2", "nonSslPortEnabled": False,
        "publicNetworkAccessEnabled": False, "redisVersion": "6"},
        patches=[from_xr("spec.region", "spec.forProvider.location"),
                 from_xr("spec.tags", "spec.forProvider.tags", merge=True),
                 _select_network(mode, "spec.forProvider.resourceGroupNameSelector", path="spec.network.name"),
                 *[from_xr("spec.size", f"spec.forProvider.{field}",
                           transforms=[table({size: sku[index] for size, sku in sizes.items()})])
                   for index, field in enumerate(("skuName", "family", "capacity"))],
                 to_xr("status.atProvider.hostname", "status.endpoint")])]
    return composition("azure-redis", mode, CACHE.kind, "azure", CACHE.short, resources)


Builder = Callable[[Facts], Obj]
CLUSTER_COMPOSITIONS: dict[str, Builder] = {"aws": aws_eks, "gcp": gcp_gke, "azure": azure_aks}
NETWORK_COMPOSITIONS: dict[str, Builder] = {"aws": aws_network, "gcp": gcp_network, "azure": azure_network}
DATABASE_COMPOSITIONS: dict[str, Builder] = {"aws": aws_rds, "gcp": gcp_cloudsql, "azure": azure_postgresql}
CACHE_COMPOSITIONS: dict[str, Builder] = {"aws": aws_elasticache, "gcp": gcp_memorystore, "azure": azure_redis}
