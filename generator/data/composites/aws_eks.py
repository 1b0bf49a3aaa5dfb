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
        private_endpoint = self.spec.networking.privateEndpoint == True
        cluster = compose(self, "eks-cluster", eks, "Cluster", for_provider={
            "region": region, "tags": tags(self), "version": str(self.spec.kubernetes.version),
            "roleArnSelector": selector((ROLE_LABEL, "cluster"), controller=True),
            "vpcConfig": {"subnetIdSelector": private, "endpointPrivateAccess": True,
                          "endpointPublicAccess": not private_endpoint, "securityGroupIdSelector": control_plane},
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
