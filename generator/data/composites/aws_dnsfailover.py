class Composite(BaseComposite):
    """Route 53 failover: an HTTPS health check per cluster host and two failover CNAME records of the global
    name, PRIMARY (answered while its health check passes) and SECONDARY (answered when it fails). Route 53 health
    checks and records are global: they take no region (provider-upjet-aws v2.6.0 route53 CRDs)."""

    def compose(self):
        route53 = "route53.aws.m.upbound.io/v1beta1"
        for endpoint in self.spec.endpoints:
            role = str(endpoint.role).lower()
            compose(self, f"health-check-{role}", route53, "HealthCheck", labels={ROLE_LABEL: f"failover-{role}"},
                    for_provider={
                        "type": "HTTPS", "fqdn": str(endpoint.target), "port": 443, "enableSni": True,
                        "resourcePath": str(endpoint.healthCheckPath), "requestInterval": 30, "failureThreshold": 3,
                        "measureLatency": False, "tags": tags(self, cluster=str(endpoint.cluster))})
            compose(self, f"record-{role}", route53, "Record", for_provider={
                "zoneId": str(self.spec.zoneId), "name": str(self.spec.name), "type": "CNAME",
                "ttl": int(self.spec.ttl) if self.spec.ttl else 60, "records": [str(endpoint.target)],
                "setIdentifier": str(endpoint.cluster), "failoverRoutingPolicy": {"type": str(endpoint.role)},
                "healthCheckIdSelector": selector((ROLE_LABEL, f"failover-{role}"), controller=True)})
