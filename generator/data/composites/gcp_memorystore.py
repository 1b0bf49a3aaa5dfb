class Composite(BaseComposite):
    """Memorystore for Redis in the cluster's network (private service access), TLS and AUTH on."""

    def compose(self):
        ha = self.spec.highAvailability == True
        instance = compose(self, "instance", "redis.gcp.m.upbound.io/v1beta1", "Instance", for_provider={
            "region": str(self.spec.region), "labels": tags(self), "connectMode": "PRIVATE_SERVICE_ACCESS",
            "redisVersion": "REDIS_7_2", "authEnabled": True, "transitEncryptionMode": "SERVER_AUTHENTICATION",
            "memorySizeGb": self.parameters.sizes[str(self.spec.size)], "tier": "STANDARD_HA" if ha else "BASIC",
            "authorizedNetworkSelector": in_network(self, name=str(self.spec.network.name))})
        self.status.endpoint = instance.status.atProvider.host
