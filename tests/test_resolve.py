"""Resolve's fast paths give what the plain computations give: provenance recorded without scanning the whole
record per leaf, and the cluster layers merged as views instead of copies."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from conftest import REPO

from generator.bench import make_fleet
from generator.inventory.entries import Layer
from generator.inventory.loader import load_inventory
from generator.inventory.resolve import _built_in, _layer_provenance, resolve
from generator.yamlsource import LoadedFile

#: keys whose dotted names overlap ("a" + "b" and "a.b"), as label keys and free-form values can
KEYS = ["a", "b", "a.b", "b.a", "c"]


def _scanned_provenance(provenance: dict[str, str], layer: Layer, data: dict[str, Any],
                        path: tuple[Any, ...] = ()) -> None:
    """The reference: for every leaf, scan every recorded name for the ones at or below it."""
    assert layer.file is not None
    for key, value in data.items():
        full = (*path, key)
        dotted = ".".join(str(p) for p in full)
        if isinstance(value, dict) and value:
            provenance.pop(dotted, None)
            _scanned_provenance(provenance, layer, value, full)
        else:
            for stale in [k for k in provenance if k == dotted or k.startswith(dotted + ".")]:
                del provenance[stale]
            if value is not None:
                provenance[dotted] = str(layer.file.position((*layer.path, *full)))


def _random_data(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in rng.sample(KEYS, rng.randint(1, len(KEYS))):
        choice = rng.random()
        if choice < 0.4 and depth < 3:
            data[key] = _random_data(rng, depth + 1)
        elif choice < 0.55:
            data[key] = None
        elif choice < 0.65:
            data[key] = {}
        elif choice < 0.75:
            data[key] = [rng.randint(0, 3)]
        else:
            data[key] = rng.randint(0, 9)
    return data


def test_layer_provenance_equals_the_full_scan() -> None:
    for seed in range(300):
        rng = random.Random(seed)
        base = _random_data(rng)
        fast: dict[str, str] = {}
        _built_in(fast, "", base)
        slow = dict(fast)
        for index in range(rng.randint(1, 4)):
            layer_data = _random_data(rng)
            layer = Layer(f"layer {index}", layer_data, LoadedFile(f"layer{index}.yaml", layer_data, {}))
            _layer_provenance(fast, layer, layer_data)
            _scanned_provenance(slow, layer, layer_data)
            assert list(fast.items()) == list(slow.items()), (seed, index)


def test_cluster_values_merged_as_views_share_no_map(tmp_path: Path) -> None:
    """A cluster's own values never share a map with the inventory or with another cluster (resolve merges the
    cluster layers as views of the inventory's maps; LayeredValues copies them)."""
    make_fleet(REPO, tmp_path / "fleet", 40)
    for root in (REPO, tmp_path / "fleet"):
        fleet = resolve(load_inventory(root))
        raws = {s.item.name: s.raw for s in fleet.inventory.clusters}
        seen: dict[int, str] = {}
        own = 0
        for cluster in fleet.clusters:
            raw = raws[cluster.name]
            for resolved in (*cluster.components, *cluster.apps):
                layered = resolved.values
                own += bool(layered.cluster)
                section = "components" if resolved in cluster.components else "apps"
                written = ((raw.get(section) or {}).get(resolved.name) or {}).get("values")
                if layered.cluster and written:
                    assert layered.cluster is not written
                    for key, value in written.items():
                        if isinstance(value, dict) and value:
                            assert layered.cluster[key] is not value
                if layered.cluster:
                    assert seen.setdefault(id(layered.cluster), cluster.name) == cluster.name
        assert own > 0
