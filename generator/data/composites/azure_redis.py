class Composite(BaseComposite):
    """Azure Cache for Redis, TLS 1.2 only, no public network access."""

    def compose(self):
        sku = self.parameters.sizes[str(self.spec.size)]
        cache = compose(self, "cache", "cache.azure.m.upbound.io/v1beta1", "RedisCache", for_provider={
            "location": str(self.spec.region), "tags": tags(self), "minimumTlsVersion": "1.2",
            "nonSslPortEnabled": False, "publicNetworkAccessEnabled": False, "redisVersion": "6",
            "resourceGroupNameSelector": in_network(self, name=str(self.spec.network.name)),
            "skuName": str(sku.skuName), "family": str(sku.family), "capacity": int(sku.capacity)})
        self.status.endpoint = cache.status.atProvider.hostname
