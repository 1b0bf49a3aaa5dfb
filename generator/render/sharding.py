"""How the hub's Flux splits the spoke bootstraps across controller shards (FluxInstance ``spec.sharding``).

The hub reconciles two objects per workload cluster that act on that cluster's API server (the Flux Operator
HelmRelease and the ``flux-<cluster>`` Kustomization, README "How a new cluster gets Flux"). A ``large`` FluxInstance
(concurrency 20, flux-operator v0.58.1 docs/api/v1/fluxinstance.md "Cluster size") is meant for up to a thousand
local apps; remote applies are slower, so past ``SPOKES_PER_SHARD`` spokes the hub gets one more set of kustomize-,
helm- and source-controllers per started hundred (the operator's sharding: each shard's controllers reconcile only
the objects labelled ``sharding.fluxcd.io/key: <shard>``; the main controllers keep the hub's own add-ons).

Only the two spoke objects are labelled. The fleet repo's GitRepository and the flux-operator chart source stay with
the main source-controller: kustomize-controller v1.9.4 (main.go) and helm-controller filter only their own kind by
the watch label selector, and read any source's artifact. A spoke's shard is a hash of its name, so adding or
removing a cluster moves no other cluster while the shard count stays the same.
"""

from __future__ import annotations

import hashlib
import math

SHARD_KEY = "sharding.fluxcd.io/key"
SPOKES_PER_SHARD = 100


def hub_shards(spokes: int) -> list[str]:
    """The shard names of the hub's FluxInstance for ``spokes`` workload clusters (none up to SPOKES_PER_SHARD)."""
    if spokes <= SPOKES_PER_SHARD:
        return []
    return [f"spokes{i}" for i in range(1, math.ceil(spokes / SPOKES_PER_SHARD) + 1)]


def spoke_shard(cluster: str, shards: list[str]) -> str | None:
    """The shard that reconciles ``cluster``'s bootstrap objects on the hub (None: the main controllers)."""
    if not shards:
        return None
    digest = int.from_bytes(hashlib.sha256(cluster.encode()).digest()[:8], "big")
    return shards[digest % len(shards)]
