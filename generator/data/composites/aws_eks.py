# Where the `cluster-autoscaler` component runs (inventory/components.yaml: namespace and rbac.serviceAccount.name);
# tests/test_autoscaling.py checks the two agree.
AUTOSCALER_NAMESPACE = "cluster-autoscaler"
AUTOSCALER_SERVICE_ACCOUNT = "cluster-autoscaler"


class Composite(BaseComposite):
    """EKS: the Network, IAM roles and policies, control-plane security group, cluster, kubeconfig, OIDC
    provider, and one managed node group per entry of spec.nodeGroups (any number)."""

    def compose(self):
        name = xr_name(self)
        region = str(self.spec.region)
        controller = selector(controller=True)
        private = in_network(self, (TIER_LABEL, "private"))
        iam = "iam.aws.m.upbound.io/v1beta1"
        ec2 = "ec2.aws.m.upbound.io/v1beta1"
        eks = "eks.aws.m.upbound.io/v1beta1"
        nested_network(self, "aws")
        policies = {"cluster": ["AmazonEKSClusterPolicy", "AmazonEKSVPCResourceController"],
                    "nodes": ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy",
                              "AmazonEC2ContainerRegistryReadOnly", "AmazonSSMManagedInstanceCore"]}
        for role, service in (("cluster", "eks.amazonaws.com"), ("nodes", "ec2.amazonaws.com")):
            trust = {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}
            compose(self, f"{role}-role", iam, "Role", labels={ROLE_LABEL: role},
                    for_provider={"assumeRolePolicy": json.dumps(trust, indent=2) + "\n", "tags": tags(self)})
            for policy in policies[role]:
                compose(self, f"{role}-role-{policy.lower().replace('_', '-')}", iam, "RolePolicyAttachment",
                        for_provider={"policyArn": f"arn:aws:iam::aws:policy/{policy}",
                                      "roleSelector": selector((ROLE_LABEL, role), controller=True)})
        control_plane = selector((ROLE_LABEL, "control-plane"), controller=True)
        compose(self, "control-plane-security-group", ec2, "SecurityGroup", labels={ROLE_LABEL: "control-plane"},
                for_provider={"region": region, "tags": tags(self), "vpcIdSelector": in_network(self),
                              "description": "EKS control plane: HTTPS from the cluster VPC"})
        compose(self, "control-plane-ingress-https", ec2, "SecurityGroupIngressRule", for_provider={
            "region": region, "ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
            "cidrIpv4": str(self.spec.networking.vpcCidr), "securityGroupIdSelector": control_plane})
        compose(self, "control-plane-egress", ec2, "SecurityGroupEgressRule", for_provider={
            "region": region, "ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0", "securityGroupIdSelector": control_plane})
        access = self.spec.networking.hubAccess
        public = access.endpoint == "public"
        vpc_config = {"subnetIdSelector": private, "endpointPrivateAccess": True, "endpointPublicAccess": public,
                      "securityGroupIdSelector": control_plane}
        if public:  # the hub comes in from its egress addresses only
            vpc_config["publicAccessCidrs"] = [str(c) for c in access.allowedCidrs]
        else:
            self.compose_peering(access.peering, region, control_plane)
        cluster = compose(self, "eks-cluster", eks, "Cluster", for_provider={
            "region": region, "tags": tags(self), "version": str(self.spec.kubernetes.version),
            "roleArnSelector": selector((ROLE_LABEL, "cluster"), controller=True),
            "vpcConfig": vpc_config,
            "kubernetesNetworkConfig": {"serviceIpv4Cidr": str(self.spec.networking.serviceCidr)},
            "accessConfig": {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": True},
            "enabledClusterLogTypes": ["api", "audit", "authenticator"]})
        cluster.externalName = name
        self.status.oidcIssuerUrl = cluster.status.atProvider.identity[0].oidc[0].issuer
        auth = compose(self, "kubeconfig", eks, "ClusterAuth",
                       for_provider={"region": region, "clusterNameSelector": controller})
        auth.spec.writeConnectionSecretToRef.name = str(self.spec.kubeconfigSecretName)
        oidc = compose(self, "oidc-provider", iam, "OpenIDConnectProvider",
                       for_provider={"clientIdList": ["sts.amazonaws.com"], "tags": tags(self)})
        oidc.spec.forProvider.url = self.status.oidcIssuerUrl
        if access.fluxRoleArn:  # the hub's Flux signs in with its IAM role: cluster admin through an access entry
            compose(self, "hub-flux-access-entry", eks, "AccessEntry", for_provider={
                "region": region, "tags": tags(self), "clusterNameSelector": controller,
                "principalArn": str(access.fluxRoleArn), "type": "STANDARD"})
            compose(self, "hub-flux-cluster-admin", eks, "AccessPolicyAssociation", for_provider={
                "region": region, "clusterNameSelector": controller, "principalArn": str(access.fluxRoleArn),
                "policyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                "accessScope": {"type": "cluster"}})
        for group in node_groups(self):
            for_provider = {
                "region": region, "tags": tags(self), "version": str(self.spec.kubernetes.version),
                "clusterNameSelector": controller, "amiType": "AL2023_x86_64_STANDARD", "capacityType": "ON_DEMAND",
                "nodeRoleArnSelector": selector((ROLE_LABEL, "nodes"), controller=True), "subnetIdSelector": private,
                "instanceTypes": [str(group.instanceType)], "diskSize": int(group.diskSizeGb),
                "scalingConfig": {"minSize": int(group.minSize), "maxSize": int(group.maxSize)}}
            if group.labels:
                for_provider["labels"] = labels_of(group.labels)
            if group.taints:
                for_provider["taint"] = [{"key": str(t.key), "value": str(t.value),
                                          "effect": EFFECTS_UPPER[str(t.effect)]} for t in group.taints]
            pool = compose(self, f"node-group-{group.name}", eks, "NodeGroup", for_provider=for_provider,
                           init_provider={"scalingConfig": {"desiredSize": int(group.desiredSize)}})
            pool.externalName = str(group.name)
        self.compose_autoscaler_identity(name, region)
        if self.spec.secretsIdentity.aws:
            self.compose_external_secrets_identity(region)
        if self.spec.secretsIdentity.vault:  # Vault's Kubernetes auth for the store (_common.py)
            compose_vault_auth(self, cluster.status.atProvider.endpoint,
                               cluster.status.atProvider.certificateAuthority[0].data)

    def compose_autoscaler_identity(self, name, region):
        """Cluster Autoscaler's AWS identity (EKS Pod Identity): the agent add-on, a role only the EKS pod identity
        service may assume, a policy that scales this cluster's node groups only, and the association with the
        `cluster-autoscaler` component's service account. EKS tags every managed node group's Auto Scaling group
        with k8s.io/cluster-autoscaler/enabled and k8s.io/cluster-autoscaler/<cluster>, which the autoscaler's
        auto-discovery (chart value autoDiscovery.clusterName) and the policy's condition match."""
        iam = "iam.aws.m.upbound.io/v1beta1"
        eks = "eks.aws.m.upbound.io/v1beta1"
        controller = selector(controller=True)
        compose(self, "pod-identity-agent", eks, "Addon", for_provider={
            "region": region, "tags": tags(self), "clusterNameSelector": controller,
            "addonName": "eks-pod-identity-agent"})
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
             "Action": ["sts:AssumeRole", "sts:TagSession"]}]}
        compose(self, "autoscaler-role", iam, "Role", labels={ROLE_LABEL: "autoscaler"},
                for_provider={"assumeRolePolicy": json.dumps(trust, indent=2) + "\n", "tags": tags(self)})
        # kubernetes/autoscaler cluster-autoscaler-1.35.0 cloudprovider/aws/README.md "Full Cluster Autoscaler
        # Features Policy", with the write actions restricted to this cluster's Auto Scaling groups by tag
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Resource": "*", "Action": [
                "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
                "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
                "ec2:DescribeImages", "ec2:DescribeInstanceTypes", "ec2:DescribeLaunchTemplateVersions",
                "ec2:GetInstanceTypesFromInstanceRequirements", "eks:DescribeNodegroup"]},
            {"Effect": "Allow", "Resource": "*",
             "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
             "Condition": {"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{name}": "owned"}}}]}
        compose(self, "autoscaler-role-policy", iam, "RolePolicy", for_provider={
            "policy": json.dumps(policy, indent=2) + "\n",
            "roleSelector": selector((ROLE_LABEL, "autoscaler"), controller=True)})
        compose(self, "autoscaler-pod-identity", eks, "PodIdentityAssociation", for_provider={
            "region": region, "tags": tags(self), "clusterNameSelector": controller,
            "namespace": AUTOSCALER_NAMESPACE, "serviceAccount": AUTOSCALER_SERVICE_ACCOUNT,
            "roleArnSelector": selector((ROLE_LABEL, "autoscaler"), controller=True)})

    def compose_external_secrets_identity(self, region):
        """External Secrets' AWS identity (EKS Pod Identity, generator/render/esoidentity.py): a role only the EKS
        pod identity service may assume, associated with the ESO controller's service account. When the secrets
        live in another account, the association chains to a target role there (provider-upjet-aws v2.6.0
        PodIdentityAssociation targetRoleArn; EKS assumes both roles) whose trust admits this role only with this
        cluster's, namespace's and service account's session tags (AWS EKS user guide, "Access AWS Resources using
        EKS Pod Identity Target IAM Roles"); that role is created through the secrets account's provider config."""
        iam = "iam.aws.m.upbound.io/v1beta1"
        identity = self.spec.secretsIdentity.aws
        cluster_arn = str(identity.clusterArn)
        role_arn = f"arn:aws:iam::{cluster_arn.split(':')[4]}:role/{identity.roleName}"
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
             "Action": ["sts:AssumeRole", "sts:TagSession"]}]}
        role = compose(self, "external-secrets-role", iam, "Role", labels={ROLE_LABEL: "external-secrets"},
                       for_provider={"assumeRolePolicy": json.dumps(trust, indent=2) + "\n", "tags": tags(self)})
        role.externalName = str(identity.roleName)
        # external-secrets docs, AWS Secrets Manager "IAM Policy": what reading a secret needs
        read = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
            "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "secretsmanager:ListSecretVersionIds",
            "secretsmanager:GetResourcePolicy"],
            "Resource": f"arn:aws:secretsmanager:{identity.secretsRegion}:{identity.secretsAccountId}:secret:*"}]}
        association = {"region": region, "tags": tags(self), "clusterNameSelector": selector(controller=True),
                       "namespace": str(identity.namespace), "serviceAccount": str(identity.serviceAccount),
                       "roleArnSelector": selector((ROLE_LABEL, "external-secrets"), controller=True)}
        if identity.targetRoleName:
            target_arn = f"arn:aws:iam::{identity.secretsAccountId}:role/{identity.targetRoleName}"
            chain = {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": target_arn}]}
            compose(self, "external-secrets-role-chain", iam, "RolePolicy", for_provider={
                "policy": json.dumps(chain, indent=2) + "\n",
                "roleSelector": selector((ROLE_LABEL, "external-secrets"), controller=True)})
            target_trust = {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{cluster_arn.split(':')[4]}:root"},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {"StringEquals": {"aws:RequestTag/eks-cluster-arn": cluster_arn,
                                               "aws:RequestTag/kubernetes-namespace": str(identity.namespace),
                                               "aws:RequestTag/kubernetes-service-account":
                                                   str(identity.serviceAccount)},
                              "ArnEquals": {"aws:PrincipalARN": role_arn}}}]}
            target = compose(self, "external-secrets-target-role", iam, "Role",
                             labels={ROLE_LABEL: "external-secrets-target"}, for_provider={
                                 "assumeRolePolicy": json.dumps(target_trust, indent=2) + "\n", "tags": tags(self)})
            target.externalName = str(identity.targetRoleName)
            target.spec.providerConfigRef.name = str(identity.targetProviderConfigName)
            target_read = compose(self, "external-secrets-target-role-policy", iam, "RolePolicy", for_provider={
                "policy": json.dumps(read, indent=2) + "\n",
                "roleSelector": selector((ROLE_LABEL, "external-secrets-target"), controller=True)})
            target_read.spec.providerConfigRef.name = str(identity.targetProviderConfigName)
            association["targetRoleArn"] = target_arn
        else:
            compose(self, "external-secrets-role-policy", iam, "RolePolicy", for_provider={
                "policy": json.dumps(read, indent=2) + "\n",
                "roleSelector": selector((ROLE_LABEL, "external-secrets"), controller=True)})
        compose(self, "external-secrets-pod-identity", "eks.aws.m.upbound.io/v1beta1", "PodIdentityAssociation",
                for_provider=association)

    def compose_peering(self, peering, region, control_plane):
        """A private endpoint: peer the cluster VPC with the hub's, route both ways, admit the hub on 443."""
        ec2 = "ec2.aws.m.upbound.io/v1beta1"
        controller = selector(controller=True)
        spoke_cidr = str(self.spec.networking.vpcCidr)
        request = {"region": region, "tags": tags(self), "vpcIdSelector": in_network(self),
                   "peerVpcId": str(peering.hubVpcId), "peerRegion": str(peering.hubRegion)}
        if peering.hubAccountId:
            request["peerOwnerId"] = str(peering.hubAccountId)
        compose(self, "hub-peering", ec2, "VPCPeeringConnection", for_provider=request)
        compose(self, "hub-peering-accepter", ec2, "VPCPeeringConnectionAccepter", for_provider={
            "region": str(peering.hubRegion), "tags": tags(self), "autoAccept": True,
            "vpcPeeringConnectionIdSelector": controller})
        compose(self, "hub-route-private", ec2, "Route", for_provider={
            "region": region, "destinationCidrBlock": str(peering.hubCidr),
            "routeTableIdSelector": in_network(self, (ROUTE_TABLE_LABEL, "private")),
            "vpcPeeringConnectionIdSelector": controller})
        for table in peering.hubRouteTableIds:
            compose(self, f"hub-route-{table}", ec2, "Route", for_provider={
                "region": str(peering.hubRegion), "destinationCidrBlock": spoke_cidr, "routeTableId": str(table),
                "vpcPeeringConnectionIdSelector": controller})
        compose(self, "control-plane-ingress-hub", ec2, "SecurityGroupIngressRule", for_provider={
            "region": region, "ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
            "cidrIpv4": str(peering.hubCidr), "securityGroupIdSelector": control_plane})
