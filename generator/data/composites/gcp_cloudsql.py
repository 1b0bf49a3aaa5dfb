class Composite(BaseComposite):
    """Cloud SQL: a private-IP instance in the cluster's network (through its private service access)."""

    def compose(self):
        ha = self.spec.highAvailability == True
        instance = compose(self, "instance", "sql.gcp.m.upbound.io/v1beta1", "DatabaseInstance", for_provider={
            "region": str(self.spec.region), "deletionProtection": False,
            "databaseVersion": self.parameters.versions[str(self.spec.version)],
            "settings": {"tier": self.parameters.sizes[str(self.spec.size)], "diskAutoresize": True,
                         "availabilityType": "REGIONAL" if ha else "ZONAL", "diskSize": int(self.spec.storageGb),
                         "userLabels": tags(self), "backupConfiguration": {"enabled": True},
                         "ipConfiguration": {"ipv4Enabled": False,
                                             "privateNetworkSelector": in_network(self, name=str(self.spec.network.name))}}})
        self.status.endpoint = instance.status.atProvider.privateIpAddress
