class Composite(BaseComposite):
    """Azure Database for PostgreSQL flexible server with Entra ID authentication only (no passwords), and the
    Entra admin group when the fleet names one."""

    def compose(self):
        params = self.parameters
        network = str(self.spec.network.name)
        postgres = "dbforpostgresql.azure.m.upbound.io/v1beta1"
        auth = {"activeDirectoryAuthEnabled": True, "passwordAuthEnabled": False}
        if params.tenantId:
            auth["tenantId"] = str(params.tenantId)
        server = compose(self, "server", postgres, "FlexibleServer", labels={ROLE_LABEL: "database"}, for_provider={
            "location": str(self.spec.region), "tags": tags(self), "authentication": auth,
            "resourceGroupNameSelector": in_network(self, name=network), "publicNetworkAccessEnabled": False,
            "backupRetentionDays": 7, "autoGrowEnabled": True, "version": params.versions[str(self.spec.version)],
            "skuName": params.sizes[str(self.spec.size)], "storageMb": int(self.spec.storageGb) * 1024})
        self.status.endpoint = server.status.atProvider.fqdn
        if params.tenantId and params.admins:
            compose(self, "entra-admin", postgres, "FlexibleServerActiveDirectoryAdministrator", for_provider={
                "serverNameSelector": selector((ROLE_LABEL, "database"), controller=True),
                "resourceGroupNameSelector": in_network(self, name=network),
                "objectId": str(params.admins.objectId), "principalName": str(params.admins.name),
                "principalType": "Group", "tenantId": str(params.tenantId)})
