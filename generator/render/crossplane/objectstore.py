"""The ObjectStore API: the hub's observability buckets and the identity that writes them, composed by Crossplane
(``fleet.observability.storage``; README "Observability": buckets and identities).

One ObjectStore XR per composed store (metrics, logs, traces) sits with the hub's own objects in
``infrastructure/clusters/<hub>.yaml``: its buckets (name, expiry), the identity's name and the exact service
accounts allowed to use it, and the hub's OIDC issuer they sign in through. The AWS composition
(``generator/data/composites/aws_objectstore.py``) composes per bucket an S3 Bucket with ownership enforced (no
ACLs), a public access block, default encryption, versioning, a lifecycle and a TLS-only bucket policy, then one IAM
role trusted by exactly those service accounts (IRSA) with a policy limited to the store's buckets.
"""

from __future__ import annotations

from generator.inventory.models import Fleet
from generator.inventory.resolve import ResolvedCluster, ResolvedFleet
from generator.inventory.storage import bucket_name, composed_stores, identity_name, storage_data
from generator.render.crossplane.api import OBJECT_STORE
from generator.render.crossplane.common import PROVIDER_LABEL, Mode, Obj
from generator.render.crossplane.compositions import Builder, Facts, composition
from generator.render.crossplane.objects import envelope

STORE_LABEL = "platform.gitops.io/store"

def aws_objectstore(facts: Facts) -> Obj:
    """S3 buckets (encrypted, private, versioned, lifecycle, TLS only) and an IRSA role limited to them."""
    return composition("aws-objectstore", facts, OBJECT_STORE.kind, "aws", OBJECT_STORE.short)


OBJECT_STORE_COMPOSITIONS: dict[str, Builder] = {"aws": aws_objectstore}


def store_documents(fleet: ResolvedFleet, hub: ResolvedCluster, mode: Mode, labels: dict[str, str]) -> list[Obj]:
    """The hub's ObjectStore XRs, one per composed store (empty when every store is by reference)."""
    settings = fleet.fleet.crossplane
    issuer = fleet.fleet.observability.storage.hub_oidc_issuer
    if settings is None or settings.aws is None or issuer is None or hub.cluster.cloud != "aws":
        return []  # refused earlier by inventory.storage.check_storage when a store is composed
    data = storage_data()
    namespaces = {c.name: c.namespace for c in fleet.components}
    docs = []
    for store in composed_stores(fleet.fleet):
        buckets = []
        for bucket in store.buckets:
            entry: Obj = {"name": bucket_name(fleet.fleet, bucket)}
            if bucket.expiration_days:
                entry["expirationDays"] = bucket.expiration_days
            buckets.append(entry)
        spec: Obj = {"cloudProvider": hub.cluster.cloud, "region": hub.cluster.region,
                     "account": settings.aws.account_id, "providerConfigName": "default",
                     "tags": _tags(fleet.fleet, hub, store.name),
                     "noncurrentVersionDays": data["noncurrentVersionDays"],
                     "abortIncompleteUploadDays": data["abortIncompleteUploadDays"],
                     "buckets": buckets,
                     "writers": {"identityName": identity_name(fleet.fleet, store),
                                 "serviceAccounts": [{"namespace": namespaces[store.component], "name": w.name}
                                                     for w in store.writers],
                                 "oidcIssuer": issuer}}
        docs.append(envelope(mode, OBJECT_STORE.kind, f"{hub.name}-{store.name}", {**labels, STORE_LABEL: store.name},
                             spec, {PROVIDER_LABEL: hub.cluster.cloud}))
    return docs


def _tags(fleet: Fleet, hub: ResolvedCluster, store: str) -> dict[str, str]:
    return {"fleet": fleet.organization, "environment": hub.cluster.environment, "cluster": hub.name,
            "managed-by": "fleetgen", "store": store}
