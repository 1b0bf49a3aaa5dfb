class Composite(BaseComposite):
    """RDS: a subnet group in the cluster network's private subnets, a security group admitting the VPC on the
    engine's port, and an encrypted instance whose master password AWS manages."""

    def compose(self):
        region = str(self.spec.region)
        network = str(self.spec.network.name)
        port = {"postgres": 5432, "mysql": 3306}[str(self.spec.engine)]
        rds = "rds.aws.m.upbound.io/v1beta1"
        ec2 = "ec2.aws.m.upbound.io/v1beta1"
        compose(self, "subnet-group", rds, "SubnetGroup", labels={ROLE_LABEL: "database"}, for_provider={
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
            "dbSubnetGroupNameSelector": selector((ROLE_LABEL, "database"), controller=True),
            "vpcSecurityGroupIdSelector": selector((ROLE_LABEL, "database"), controller=True),
            "username": "platform_admin", "manageMasterUserPassword": True, "storageEncrypted": True,
            "publiclyAccessible": False, "autoMinorVersionUpgrade": True, "backupRetentionPeriod": 7,
            "copyTagsToSnapshot": True, "skipFinalSnapshot": False,
            "finalSnapshotIdentifier": f"{xr_name(self)}-final"})
        self.status.endpoint = instance.status.atProvider.address
        for replica in (list(self.spec.replicas) if self.spec.replicas else []):
            self.compose_replica(replica, instance, port)

    def compose_replica(self, replica, source, port):
        """A cross-region read replica in another cluster's network: RDS needs the source's ARN and a KMS key of
        the replica's region for an encrypted source (CreateDBInstanceReadReplica, KmsKeyId)."""
        region, network = str(replica.region), str(replica.network.name)
        rds = "rds.aws.m.upbound.io/v1beta1"
        ec2 = "ec2.aws.m.upbound.io/v1beta1"
        role = f"replica-{region}"
        compose(self, f"{role}-key", "kms.aws.m.upbound.io/v1beta1", "Key", labels={ROLE_LABEL: role},
                for_provider={"region": region, "tags": tags(self), "enableKeyRotation": True,
                              "deletionWindowInDays": 30, "description": "Read replica storage encryption"})
        compose(self, f"{role}-subnet-group", rds, "SubnetGroup", labels={ROLE_LABEL: role}, for_provider={
            "region": region, "tags": tags(self), "description": "Private subnets of the replica's cluster network",
            "subnetIdSelector": in_network(self, (TIER_LABEL, "private"), name=network)})
        compose(self, f"{role}-security-group", ec2, "SecurityGroup", labels={ROLE_LABEL: role}, for_provider={
            "region": region, "tags": tags(self), "description": "database replica: access from the cluster VPC",
            "vpcIdSelector": in_network(self, name=network)})
        compose(self, f"{role}-security-group-ingress", ec2, "SecurityGroupIngressRule", for_provider={
            "region": region, "ipProtocol": "tcp", "fromPort": port, "toPort": port,
            "cidrIpv4": str(replica.network.cidr), "securityGroupIdSelector": selector((ROLE_LABEL, role),
                                                                                       controller=True)})
        compose(self, role, rds, "Instance", for_provider={
            "region": region, "tags": tags(self), "replicateSourceDb": source.status.atProvider.arn,
            "instanceClass": self.parameters.sizes[str(self.spec.size)],
            "dbSubnetGroupNameSelector": selector((ROLE_LABEL, role), controller=True),
            "vpcSecurityGroupIdSelector": selector((ROLE_LABEL, role), controller=True),
            "kmsKeyIdSelector": selector((ROLE_LABEL, role), controller=True), "storageEncrypted": True,
            "publiclyAccessible": False, "autoMinorVersionUpgrade": True, "skipFinalSnapshot": True})
