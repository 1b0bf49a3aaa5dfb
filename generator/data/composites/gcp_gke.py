class Composite(BaseComposite):
    """GKE: the Network, a node service account with its roles, a private regional cluster with workload
    identity (deletion protection in prod), and one node pool per entry of spec.nodeGroups."""

    def compose(self):
        name = xr_name(self)
        region = str(self.spec.region)
        project = str(self.spec.account)
        controller = selector(controller=True)
        platform = "cloudplatform.gcp.m.upbound.io/v1beta1"
        container = "container.gcp.m.upbound.io/v1beta1"
        nested_network(self, "gcp")
        account = compose(self, "node-service-account", platform, "ServiceAccount", for_provider={
            "displayName": "GKE nodes", "description": "Managed by fleetgen (Crossplane)"})
        account.externalName = name[:24].rstrip("-") + "-nodes"
        self.status.nodeServiceAccountEmail = account.status.atProvider.email
        for role in ("logging.logWriter", "monitoring.metricWriter", "monitoring.viewer", "artifactregistry.reader"):
            member = compose(self, f"node-service-account-{role.replace('.', '-').lower()}", platform,
                             "ProjectIAMMember", for_provider={"role": f"roles/{role}", "project": project})
            member.spec.forProvider.member = f"serviceAccount:{self.status.nodeServiceAccountEmail}" \
                if self.status.nodeServiceAccountEmail else self.status.nodeServiceAccountEmail
        net = self.spec.networking
        cluster = compose(self, "gke-cluster", container, "Cluster", for_provider={
            "location": region, "resourceLabels": tags(self), "minMasterVersion": str(self.spec.kubernetes.version),
            "removeDefaultNodePool": True, "initialNodeCount": 1,
            "deletionProtection": str(self.spec.environment) == "prod",
            "nodeLocations": [str(z) for z in net.zones],
            "networkSelector": in_network(self), "subnetworkSelector": in_network(self, (TIER_LABEL, "private")),
            "ipAllocationPolicy": {"clusterSecondaryRangeName": "pods", "servicesSecondaryRangeName": "services"},
            "privateClusterConfig": {"enablePrivateNodes": True,
                                     "enablePrivateEndpoint": net.hubAccess.endpoint == "private",
                                     "masterIpv4CidrBlock": str(net.controlPlaneCidr)},
            "workloadIdentityConfig": {"workloadPool": f"{project}.svc.id.goog"},
            # Control-plane logs to Cloud Logging (provider-upjet-gcp v3.0.0 Cluster loggingConfig.enableComponents);
            # the Kubernetes audit log is Cloud Audit Logs' Admin Activity log, always on for GKE
            "loggingConfig": {"enableComponents": ["SYSTEM_COMPONENTS", "APISERVER", "CONTROLLER_MANAGER",
                                                   "SCHEDULER", "WORKLOADS"]},
            "releaseChannel": {"channel": "UNSPECIFIED"}})
        cluster.externalName = name
        if net.hubAccess.endpoint == "public":  # the public endpoint admits the hub's egress addresses only
            cluster.spec.forProvider.masterAuthorizedNetworksConfig.cidrBlocks = [
                {"cidrBlock": str(c), "displayName": "fleet hub"} for c in net.hubAccess.allowedCidrs]
        cluster.spec.writeConnectionSecretToRef.name = str(self.spec.kubeconfigSecretName)
        hub_flux_gke_grant(self, project)  # the hub's Flux signs in with workload identity (_common.py)
        if self.spec.secretsIdentity.vault:  # Vault's Kubernetes auth for the store (_common.py)
            compose_vault_auth(self, cluster.status.atProvider.endpoint,
                               cluster.status.atProvider.masterAuth.clusterCaCertificate)
        if self.spec.secretsIdentity.member:  # External Secrets' KSA may act as the secrets project's GSA
            compose(self, "external-secrets-workload-identity", platform, "ServiceAccountIAMMember", for_provider={
                "serviceAccountId": str(self.spec.secretsIdentity.serviceAccountId),
                "role": "roles/iam.workloadIdentityUser", "member": str(self.spec.secretsIdentity.member)})
        for group in node_groups(self):
            node_config = {"machineType": str(group.instanceType), "diskSizeGb": int(group.diskSizeGb),
                           "resourceLabels": tags(self),
                           "oauthScopes": ["https://www.googleapis.com/auth/cloud-platform"],
                           "serviceAccountSelector": controller, "workloadMetadataConfig": {"mode": "GKE_METADATA"}}
            if group.labels:
                node_config["labels"] = labels_of(group.labels)
            if group.taints:
                node_config["taint"] = [{"key": str(t.key), "value": str(t.value),
                                         "effect": EFFECTS_UPPER[str(t.effect)]} for t in group.taints]
            pool = compose(self, f"node-pool-{group.name}", container, "NodePool", for_provider={
                "location": region, "clusterSelector": controller, "initialNodeCount": 1,
                "autoscaling": {"locationPolicy": "BALANCED", "totalMinNodeCount": int(group.minSize),
                                "totalMaxNodeCount": int(group.maxSize)},
                "management": {"autoRepair": True, "autoUpgrade": True}, "nodeConfig": node_config})
            pool.externalName = str(group.name)
