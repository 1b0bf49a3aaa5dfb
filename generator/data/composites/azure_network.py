class Composite(BaseComposite):
    """Resource group, virtual network, and one subnet per private subnet of the plan."""

    def compose(self):
        name = xr_name(self)
        location = str(self.spec.region)
        mine = {NETWORK_LABEL: name}
        network = "network.azure.m.upbound.io/v1beta1"
        controller = selector(controller=True)
        group = compose(self, "resource-group", "azure.m.upbound.io/v1beta1", "ResourceGroup", labels=mine,
                        for_provider={"location": location, "tags": tags(self)})
        group.externalName = f"{name}-network"
        self.status.resourceGroupId = group.status.atProvider.id
        compose(self, "virtual-network", network, "VirtualNetwork", labels=mine, for_provider={
            "location": location, "tags": tags(self), "resourceGroupNameSelector": controller,
            "addressSpace": [str(self.spec.vpcCidr)]})
        for subnet in self.spec.subnets.private:
            compose(self, f"subnet-{subnet.name}", network, "Subnet", labels={**mine, TIER_LABEL: "private"},
                    for_provider={"resourceGroupNameSelector": controller, "virtualNetworkNameSelector": controller,
                                  "addressPrefixes": [str(subnet.cidr)]})
