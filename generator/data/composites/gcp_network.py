class Composite(BaseComposite):
    """VPC network, one subnetwork per private subnet (pod and service secondary ranges), Cloud Router and NAT,
    and private service access (a reserved range peered with servicenetworking)."""

    def compose(self):
        region = str(self.spec.region)
        mine = {NETWORK_LABEL: xr_name(self)}
        compute = "compute.gcp.m.upbound.io/v1beta1"
        controller = selector(controller=True)
        compose(self, "network", compute, "Network", labels=mine,
                for_provider={"autoCreateSubnetworks": False, "routingMode": "REGIONAL"})
        for subnet in self.spec.subnets.private:
            compose(self, f"subnetwork-{subnet.name}", compute, "Subnetwork", labels={**mine, TIER_LABEL: "private"},
                    for_provider={"region": region, "networkSelector": controller, "privateIpGoogleAccess": True,
                                  "ipCidrRange": str(subnet.cidr), "secondaryIpRange": [
                                      {"rangeName": "pods", "ipCidrRange": str(self.spec.podCidr)},
                                      {"rangeName": "services", "ipCidrRange": str(self.spec.serviceCidr)}]})
        compose(self, "router", compute, "Router", for_provider={"region": region, "networkSelector": controller})
        compose(self, "nat", compute, "RouterNAT", for_provider={
            "region": region, "routerSelector": controller, "natIpAllocateOption": "AUTO_ONLY",
            "sourceSubnetworkIpRangesToNat": "ALL_SUBNETWORKS_ALL_IP_RANGES"})
        compose(self, "private-services-range", compute, "GlobalAddress", for_provider={
            "purpose": "VPC_PEERING", "addressType": "INTERNAL", "prefixLength": 20, "networkSelector": controller})
        compose(self, "private-services-connection", "servicenetworking.gcp.m.upbound.io/v1beta1", "Connection",
                for_provider={"service": "servicenetworking.googleapis.com", "networkSelector": controller,
                              "reservedPeeringRangesSelector": controller})
