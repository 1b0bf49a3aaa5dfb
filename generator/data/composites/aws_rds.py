class Composite(BaseComposite):
    """RDS: a subnet group in the cluster network's private subnets, a security group admitting the VPC on the
    engine's port, and an encrypted instance whose master password AWS manages."""

    def compose(self):
        region = str(self.spec.region)
        network = str(self.spec.network.name)
        port = {"postgres": 5432, "mysql": 3306}[str(self.spec.engine)]
        rds = "rds.aws.m.upbound.io/v1beta1"
        ec2 = "ec2.aws.m.upbound.io/v1beta1"
        compose(self, "subnet-group", rds, "SubnetGroup", for_provider={
            "region": region, "tags": tags(self), "description": "Private subnets of the cluster network",
            "subnetIdSelector": in_network(self, (TIER_LABEL, "private"), name=network)})
        compose(self, "security-group", ec2, "SecurityGroup", labels={ROLE_LABEL: "database"}, for_provider={
            "region": region, "tags": tags(self), "description": "database: access from the cluster VPC",
            "vpcIdSelector": in_network(self, name=network)})
        compose(self, "security-group-ingress", ec2, "SecurityGroupIngressRule", for_provider={
            "region": region, "ipProtocol": "tcp", "fromPort": port, "toPort": port,
            "cidrIpv4": str(self.spec.network.cidr),
            "securityGroupIdSelector": selector((ROLE_LABEL, "database"), controller=True)})
        instance = compose(self, "instance", rds, "Instance", for_provider={
            "region": region, "tags": tags(self), "engine": str(self.spec.engine),
            "engineVersion": str(self.spec.version), "instanceClass": self.parameters.sizes[str(self.spec.size)],
            "allocatedStorage": int(self.spec.storageGb), "multiAz": self.spec.highAvailability == True,
            "dbSubnetGroupNameSelector": selector(controller=True),
            "vpcSecurityGroupIdSelector": selector((ROLE_LABEL, "database"), controller=True),
            "username": "platform_admin", "manageMasterUserPassword": True, "storageEncrypted": True,
            "publiclyAccessible": False, "autoMinorVersionUpgrade": True, "backupRetentionPeriod": 7,
            "copyTagsToSnapshot": True, "skipFinalSnapshot": False,
            "finalSnapshotIdentifier": f"{xr_name(self)}-final"})
        self.status.endpoint = instance.status.atProvider.address
