class Composite(BaseComposite):
    """ElastiCache: subnet group, security group admitting the VPC on 6379, encrypted Redis replication group."""

    def compose(self):
        region = str(self.spec.region)
        network = str(self.spec.network.name)
        ha = self.spec.highAvailability == True
        cache = "elasticache.aws.m.upbound.io/v1beta1"
        ec2 = "ec2.aws.m.upbound.io/v1beta1"
        compose(self, "subnet-group", cache, "SubnetGroup", for_provider={
            "region": region, "tags": tags(self), "description": "Private subnets of the cluster network",
            "subnetIdSelector": in_network(self, (TIER_LABEL, "private"), name=network)})
        compose(self, "security-group", ec2, "SecurityGroup", labels={ROLE_LABEL: "cache"}, for_provider={
            "region": region, "tags": tags(self), "description": "cache: access from the cluster VPC",
            "vpcIdSelector": in_network(self, name=network)})
        compose(self, "security-group-ingress", ec2, "SecurityGroupIngressRule", for_provider={
            "region": region, "ipProtocol": "tcp", "fromPort": 6379, "toPort": 6379,
            "cidrIpv4": str(self.spec.network.cidr),
            "securityGroupIdSelector": selector((ROLE_LABEL, "cache"), controller=True)})
        group = compose(self, "replication-group", cache, "ReplicationGroup", for_provider={
            "region": region, "tags": tags(self), "description": "Redis for workloads of the cluster",
            "engine": "redis", "engineVersion": "7.1", "port": 6379,
            # a string in provider-upjet-aws (spec.forProvider.atRestEncryptionEnabled: type string)
            "atRestEncryptionEnabled": "true", "transitEncryptionEnabled": True,
            "nodeType": self.parameters.sizes[str(self.spec.size)], "numCacheClusters": 2 if ha else 1,
            "automaticFailoverEnabled": ha, "multiAzEnabled": ha,
            "subnetGroupNameSelector": selector(controller=True),
            "securityGroupIdSelector": selector((ROLE_LABEL, "cache"), controller=True)})
        self.status.endpoint = group.status.atProvider.primaryEndpointAddress
