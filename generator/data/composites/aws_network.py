class Composite(BaseComposite):
    """VPC, a private and a public subnet per zone (any number), internet gateway, NAT gateway with EIP,
    route tables and one association per subnet."""

    def compose(self):
        region = str(self.spec.region)
        mine = {NETWORK_LABEL: xr_name(self)}
        controller = selector(controller=True)

        def regional(name, kind, labels=None, **for_provider):
            return compose(self, name, "ec2.aws.m.upbound.io/v1beta1", kind, labels={**mine, **(labels or {})},
                           for_provider={"region": region, "tags": tags(self), **for_provider})

        regional("vpc", "VPC", cidrBlock=str(self.spec.vpcCidr), enableDnsHostnames=True, enableDnsSupport=True)
        regional("internet-gateway", "InternetGateway", vpcIdSelector=controller)
        subnets = {"private": [], "public": []}
        for tier, elb_tag in (("private", "kubernetes.io/role/internal-elb"), ("public", "kubernetes.io/role/elb")):
            for subnet in (self.spec.subnets[tier] or []):
                name = str(subnet.name)
                subnets[tier].append(name)
                subnet_tags = tags(self, **{elb_tag: "1"})
                regional(f"subnet-{name}", "Subnet", labels={TIER_LABEL: tier, SUBNET_LABEL: name},
                         vpcIdSelector=controller, cidrBlock=str(subnet.cidr), availabilityZone=str(subnet.zone),
                         mapPublicIpOnLaunch=tier == "public", tags=subnet_tags)
        regional("nat-eip", "EIP", domain="vpc")
        regional("nat-gateway", "NATGateway", connectivityType="public", allocationIdSelector=controller,
                 subnetIdSelector=selector((SUBNET_LABEL, subnets["public"][0]), controller=True))
        for tier, target in (("public", "gatewayIdSelector"), ("private", "natGatewayIdSelector")):
            regional(f"route-table-{tier}", "RouteTable", labels={ROUTE_TABLE_LABEL: tier}, vpcIdSelector=controller)
            compose(self, f"route-{tier}-default", "ec2.aws.m.upbound.io/v1beta1", "Route", for_provider={
                "region": region, "destinationCidrBlock": "0.0.0.0/0",
                "routeTableIdSelector": selector((ROUTE_TABLE_LABEL, tier), controller=True), target: controller})
            for name in subnets[tier]:
                compose(self, f"route-table-association-{name}", "ec2.aws.m.upbound.io/v1beta1",
                        "RouteTableAssociation", for_provider={
                            "region": region,
                            "routeTableIdSelector": selector((ROUTE_TABLE_LABEL, tier), controller=True),
                            "subnetIdSelector": selector((SUBNET_LABEL, name), controller=True)})
