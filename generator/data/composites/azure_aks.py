class Composite(BaseComposite):
    """AKS: the Network, a user-assigned control-plane identity with Network Contributor on the network's
    resource group, the cluster (its default pool is spec.nodeGroups[0]) and one pool per further node group."""

    def compose(self):
        name = xr_name(self)
        location = str(self.spec.region)
        controller = selector(controller=True)
        aks = "containerservice.azure.m.upbound.io/v1beta1"
        network = nested_network(self, "azure")
        identity = compose(self, "control-plane-identity", "managedidentity.azure.m.upbound.io/v1beta1",
                           "UserAssignedIdentity", labels={ROLE_LABEL: "control-plane"}, for_provider={
                               "location": location, "tags": tags(self), "name": f"{name}-control-plane",
                               "resourceGroupNameSelector": in_network(self)})
        assignment = compose(self, "control-plane-network-contributor", "authorization.azure.m.upbound.io/v1beta1",
                             "RoleAssignment", for_provider={"roleDefinitionName": "Network Contributor",
                                                             "principalType": "ServicePrincipal"})
        assignment.spec.forProvider.scope = network.observed.status.resourceGroupId
        assignment.spec.forProvider.principalId = identity.status.atProvider.principalId
        net = self.spec.networking
        groups = node_groups(self)
        first = groups[0]
        default_pool = {"name": str(first.name), "vmSize": str(first.instanceType), "autoScalingEnabled": True,
                        "minCount": int(first.minSize), "maxCount": int(first.maxSize),
                        "osDiskSizeGb": int(first.diskSizeGb), "zones": [str(z) for z in net.zones],
                        "vnetSubnetIdSelector": in_network(self, (TIER_LABEL, "private")),
                        "temporaryNameForRotation": "rotation", "upgradeSettings": {"maxSurge": "33%"}}
        if first.labels:
            default_pool["nodeLabels"] = labels_of(first.labels)
        if any(str(t.key) == "CriticalAddonsOnly" for t in (first.taints or [])):
            default_pool["onlyCriticalAddonsEnabled"] = True
        cluster = compose(self, "aks-cluster", aks, "KubernetesCluster", for_provider={
            "location": location, "tags": tags(self), "dnsPrefix": name,
            "kubernetesVersion": str(self.spec.kubernetes.version),
            "resourceGroupNameSelector": in_network(self), "skuTier": "Standard", "localAccountDisabled": False,
            "oidcIssuerEnabled": True, "workloadIdentityEnabled": True,
            "privateClusterEnabled": net.hubAccess.endpoint == "private",
            "identity": {"type": "UserAssigned",
                         "identityIdsSelector": selector((ROLE_LABEL, "control-plane"), controller=True)},
            "networkProfile": {"networkPlugin": "azure", "networkPluginMode": "overlay", "networkDataPlane": "cilium",
                               "networkPolicy": "cilium", "loadBalancerSku": "standard",
                               "podCidr": str(net.podCidr), "serviceCidr": str(net.serviceCidr),
                               "dnsServiceIp": str(net.dnsServiceIp)},
            "defaultNodePool": default_pool}, init_provider={"defaultNodePool": {"nodeCount": int(first.desiredSize)}})
        cluster.externalName = name
        if net.hubAccess.endpoint == "public":  # the public endpoint admits the hub's egress addresses only
            cluster.spec.forProvider.apiServerAccessProfile.authorizedIpRanges = [
                str(c) for c in net.hubAccess.allowedCidrs]
        cluster.spec.writeConnectionSecretToRef.name = str(self.spec.kubeconfigSecretName)
        hub_flux_aks_grants(self, cluster)  # the hub's Flux signs in with workload identity (_common.py)
        self.status.oidcIssuerUrl = cluster.status.atProvider.oidcIssuerUrl
        self.compose_audit_logs(name, location, cluster)
        if self.spec.secretsIdentity.azure:
            self.compose_external_secrets_federation(name, cluster)
        for group in groups[1:]:
            for_provider = {"tags": tags(self), "orchestratorVersion": str(self.spec.kubernetes.version),
                            "kubernetesClusterIdSelector": controller, "mode": "User", "autoScalingEnabled": True,
                            "vmSize": str(group.instanceType), "minCount": int(group.minSize),
                            "maxCount": int(group.maxSize), "osDiskSizeGb": int(group.diskSizeGb),
                            "zones": [str(z) for z in net.zones],
                            "vnetSubnetIdSelector": in_network(self, (TIER_LABEL, "private")),
                            "upgradeSettings": {"maxSurge": "33%"}}
            if group.labels:
                for_provider["nodeLabels"] = labels_of(group.labels)
            if group.taints:
                for_provider["nodeTaints"] = [f"{t.key}={t.value}:{t.effect}" for t in group.taints]
            pool = compose(self, f"node-pool-{group.name}", aks, "KubernetesClusterNodePool",
                           for_provider=for_provider, init_provider={"nodeCount": int(group.desiredSize)})
            pool.externalName = str(group.name)

    def compose_external_secrets_federation(self, name, cluster):
        """External Secrets' Azure identity (generator/render/esoidentity.py): a federated identity credential on the
        fleet's ESO user-assigned identity that trusts this cluster's OIDC issuer for the store's service account
        (provider-upjet-azure v2.7.0 FederatedIdentityCredential; the issuer is held back until AKS reports it)."""
        identity = self.spec.secretsIdentity.azure
        credential = compose(self, "external-secrets-federated-credential",
                             "managedidentity.azure.m.upbound.io/v1beta1", "FederatedIdentityCredential",
                             for_provider={"userAssignedIdentityId": str(identity.identityId),
                                           "subject": str(identity.subject), "audience": [str(identity.audience)]})
        credential.spec.forProvider.issuer = cluster.status.atProvider.oidcIssuerUrl
        credential.externalName = f"{name}-external-secrets"

    def compose_audit_logs(self, name, location, cluster):
        """Control-plane audit logs: a Log Analytics workspace per cluster and the cluster's diagnostic setting
        sending the AKS categories kube-audit-admin (audit events without get/list) and guard (Entra ID
        authentication) to it (provider-upjet-azure v2.7.0 operationalinsights Workspace, insights
        MonitorDiagnosticSetting)."""
        workspace = compose(self, "audit-workspace", "operationalinsights.azure.m.upbound.io/v1beta1", "Workspace",
                            for_provider={"location": location, "tags": tags(self), "sku": "PerGB2018",
                                          "retentionInDays": 90 if str(self.spec.environment) == "prod" else 30,
                                          "resourceGroupNameSelector": in_network(self)})
        workspace.externalName = f"{name}-audit"
        setting = compose(self, "audit-diagnostic-setting", "insights.azure.m.upbound.io/v1beta1",
                          "MonitorDiagnosticSetting", for_provider={
                              "name": "fleet-audit", "logAnalyticsDestinationType": "Dedicated",
                              "enabledLog": [{"category": "kube-audit-admin"}, {"category": "guard"}]})
        setting.spec.forProvider.targetResourceId = cluster.status.atProvider.id
        setting.spec.forProvider.logAnalyticsWorkspaceId = workspace.status.atProvider.id
