"""The hub's Flux is sharded for large fleets: past 100 spokes the hub's FluxInstance gets one more set of controllers
per started hundred, and every spoke's bootstrap objects (the Flux Operator HelmRelease and the ``flux-<cluster>``
Kustomization) carry the shard label of one of them (generator/render/sharding.py)."""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import REPO

from generator.bench import make_fleet
from generator.render.pipeline import plan
from generator.render.sharding import SHARD_KEY, hub_shards, spoke_shard
from generator.yamlio import load_documents

SCHEMA = json.loads((REPO / "generator/data/schemas/fluxinstance.json").read_text(encoding="utf-8"))


def _objects(files: dict[str, str], prefix: str) -> list[dict[str, Any]]:
    """Kubernetes objects (not kustomize's kustomization.yaml) of the rendered files under ``prefix``."""
    return [
        d
        for path, text in sorted(files.items())
        if path.startswith(prefix) and not path.endswith("/kustomization.yaml")
        for d in load_documents(text)
        if d
    ]


def _flux_instance(files: dict[str, str], cluster: str) -> dict[str, Any]:
    (instance,) = _objects(files, f"fleet/clusters/{cluster}/flux-system/flux-instance.yaml")
    return instance


@cache
def large_fleet_files(tmp: Path) -> dict[str, str]:
    make_fleet(REPO, tmp, 251)  # the hub and 250 workload clusters
    return plan(tmp).files


def test_shard_count_and_assignment_are_stable() -> None:
    assert hub_shards(8) == hub_shards(100) == []
    assert hub_shards(101) == ["spokes1", "spokes2"]
    assert len(hub_shards(500)) == 5
    shards = hub_shards(250)
    names = [f"cluster-{i}" for i in range(250)]
    placed = {n: spoke_shard(n, shards) for n in names}
    assert set(placed.values()) == set(shards)
    assert max(Counter(placed.values()).values()) < 2 * 250 / len(shards)  # no shard gets twice its share
    # another cluster moves no one
    assert {n: spoke_shard(n, shards) for n in names} == placed
    assert spoke_shard("cluster-1", []) is None


def test_the_reference_fleet_is_not_sharded() -> None:
    files = plan(REPO).files
    assert "sharding" not in _flux_instance(files, "management")["spec"]
    assert _flux_instance(files, "management")["spec"]["cluster"]["size"] == "large"
    assert not any(
        SHARD_KEY in d["metadata"].get("labels", {}) for d in _objects(files, "fleet/clusters/management/spokes/")
    )


@pytest.mark.slow
def test_a_large_fleet_shards_the_spoke_bootstraps(tmp_path_factory: pytest.TempPathFactory) -> None:
    files = large_fleet_files(tmp_path_factory.mktemp("large"))
    hub = _flux_instance(files, "management")
    jsonschema.validate(hub, SCHEMA)
    shards = hub["spec"]["sharding"]["shards"]
    assert hub["spec"]["sharding"]["key"] == SHARD_KEY
    assert shards == ["spokes1", "spokes2", "spokes3"]
    spokes = _objects(files, "fleet/clusters/management/spokes/")
    reconciled = [d for d in spokes if d["kind"] in ("HelmRelease", "Kustomization")]
    assert len(reconciled) == 2 * 250
    by_cluster: dict[str, set[str]] = {}
    for doc in reconciled:
        labels = doc["metadata"]["labels"]
        by_cluster.setdefault(labels["fleet.gitops.io/cluster"], set()).add(labels[SHARD_KEY])
    assert all(len(s) == 1 for s in by_cluster.values())  # a spoke's two objects share one shard
    assert {s for found in by_cluster.values() for s in found} == set(shards)
    # workload clusters run their own Flux unsharded
    some_spoke = next(iter(by_cluster))
    assert "sharding" not in _flux_instance(files, some_spoke)["spec"]
