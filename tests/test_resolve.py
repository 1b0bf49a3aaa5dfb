"""Resolve's fast paths give what the plain computations give: provenance recorded without scanning the whole
record per leaf, and the cluster layers merged as views instead of copies."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from pydantic import ValidationError

import generator.inventory.resolve as resolve_module
from generator.bench import make_fleet
from generator.inventory import entries
from generator.inventory.entries import Layer, Sourced, settings_layers
from generator.inventory.loader import load_inventory
from generator.inventory.models import CanarySettings, Cluster, PolicySettings, Settings, built_in_node_groups
from generator.inventory.resolve import (
    IDENTITY_FIELDS,
    LayeredValues,
    ResolvedFleet,
    _built_in,
    _layer_provenance,
    resolve,
)
from generator.yamlio import dump_documents, load_documents
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


def _plain_provenance(fleet: ResolvedFleet, source: Sourced[Cluster]) -> dict[str, str]:
    """A cluster's provenance the plain way: built-in settings and identity, then every layer in merge order, each
    applied with the full scan (``_scanned_provenance``), sorted by name."""
    cluster = source.item
    provenance: dict[str, str] = {}
    built = Settings(node_groups=built_in_node_groups(cluster.cloud)).model_dump(by_alias=True, mode="json")
    _built_in(provenance, "", built)
    layers = settings_layers(fleet.inventory, source)
    for layer in layers:
        if layer.file is not None and layer.data:
            _scanned_provenance(provenance, layer, layer.data)
    identity = cluster.model_dump(by_alias=True, mode="json", include=IDENTITY_FIELDS)
    _built_in(provenance, "", identity)
    written = {k: v for k, v in source.raw.items() if k in identity}
    _scanned_provenance(provenance, Layer("identity", written, source.file, source.path), written)
    return dict(sorted(provenance.items()))


def test_cluster_provenance_equals_the_plain_computation(tmp_path: Path) -> None:
    """Provenance, built on first use from the record shared by a cloud and environment, is what applying every
    layer to a fresh record with the full scan gives, for every cluster (in order, as ``explain`` prints it)."""
    make_fleet(REPO, tmp_path / "fleet", 60)
    for root in (REPO, tmp_path / "fleet"):
        fleet = resolve(load_inventory(root))
        sources = {s.item.name: s for s in fleet.inventory.clusters}
        for cluster in fleet.clusters:
            assert list(cluster.provenance.items()) == list(_plain_provenance(fleet, sources[cluster.name]).items())
            assert dict(cluster.provenance) == cluster.provenance  # a Mapping equal to its dict


def test_shared_workloads_equal_the_per_cluster_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clusters that differ only in name share their components and apps (resolved once): equal to resolving each
    cluster on its own, and the hub, named clusters and clusters with values of their own are never shared."""
    make_fleet(REPO, tmp_path / "fleet", 80)
    for root in (REPO, tmp_path / "fleet"):
        inventory = load_inventory(root)
        shared = resolve(inventory)
        with monkeypatch.context() as patch:
            patch.setattr(resolve_module, "_workloads_key", lambda *_: None)
            plain = resolve(inventory)
        assert shared.clusters == plain.clusters
        for mine, reference in zip(shared.clusters, plain.clusters, strict=True):
            assert [c.values for c in mine.components] == [c.values for c in reference.components]
            assert [a.values for a in mine.apps] == [a.values for a in reference.apps]
    assert any(
        a.components is b.components for a, b in zip(shared.clusters, shared.clusters[1:], strict=False)
    ), "the synthetic fleet shares resolved workloads"


def test_layered_defaults_are_shared_not_copied() -> None:
    """``policies`` and ``canary`` hold a map or list, yet hash by value (equal settings, equal hashes), so pydantic
    shares their frozen default between clusters instead of deep-copying it into each one."""
    cluster = {"name": "a", "cloud": "aws", "region": "us-east-1", "environment": "dev",
               "networking": {"vpcCidr": "10.0.0.0/16", "podCidr": "100.64.0.0/16", "serviceCidr": "172.16.0.0/16"}}
    one, two = Cluster.model_validate(cluster), Cluster.model_validate(cluster)
    assert one.policies is two.policies and one.canary is two.canary
    with pytest.raises(ValidationError):
        one.policies.validation_action = "Deny"  # type: ignore[misc]
    rng = random.Random(7)
    for _ in range(200):
        actions = {rng.choice(["a", "b", "c"]): rng.choice(["Audit", "Deny"]) for _ in range(rng.randint(0, 3))}
        excluded = rng.sample(["x", "y", "z"], rng.randint(0, 3))
        first = PolicySettings(actions=actions, excluded_namespaces=excluded)
        second = PolicySettings(actions=dict(reversed(list(actions.items()))), excluded_namespaces=list(excluded))
        assert first == second and hash(first) == hash(second)
        weights = sorted(rng.sample(range(1, 60), rng.randint(0, 4)))
        assert hash(CanarySettings(step_weights=weights)) == hash(CanarySettings(step_weights=list(weights)))


def _reference_merge(base: Any, patch: Any) -> Any:
    """``merge`` as it was written first: copy ``base`` whole, then merge each patched key into the copy."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(base, dict):
        base = {}
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _reference_merge(out.get(key), value)
    return out


def _random_tree(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth == 0 or roll < 0.3:
        return rng.choice([None, None, True, False, 0, 1, 2.5, "x", "y", ""])
    if roll < 0.45:
        return [_random_tree(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    keys = rng.sample(["a", "b", "c", "d", "e", "f"], k=rng.randint(0, 5))
    return {key: _random_tree(rng, depth - 1) for key in keys}


def _containers(value: Any) -> list[int]:
    if isinstance(value, dict):
        return [id(value), *(i for child in value.values() for i in _containers(child))]
    if isinstance(value, list):
        return [id(value), *(i for child in value for i in _containers(child))]
    return []


@pytest.mark.parametrize("seed", range(20))
def test_merge_equals_the_copy_then_patch_merge(seed: int) -> None:
    """``merge`` gives what copying the base and patching the copy gives, key order included (compared as
    ``repr``), changes neither input and shares no map or list with them."""
    rng = random.Random(seed)
    for _ in range(300):
        base, patch = _random_tree(rng, 4), _random_tree(rng, 4)
        before = repr((base, patch))
        merged = resolve_module.merge(base, patch)
        assert repr(merged) == repr(_reference_merge(base, patch))
        assert repr((base, patch)) == before
        assert not set(_containers(merged)) & set(_containers(base) + _containers(patch))


def test_components_with_values_of_their_own_share_the_canonical_lower_layers(tmp_path: Path) -> None:
    """A cluster's component with values of its own takes the component's and the environment's layers as the
    environment resolved them (``LayeredValues.sharing``): equal to canonicalizing them afresh, key order included,
    and its own layer canonical."""
    root = tmp_path / "fleet"
    make_fleet(REPO, root, 60)
    path = root / "inventory" / "clusters" / "synthetic.yaml"
    text = path.read_text(encoding="utf-8")
    data = load_documents(text)[0]
    for entry in data["clusters"][1::3]:
        entry.setdefault("components", {})["envoy-gateway"] = {"values": {"z": 1, "deployment": {"replicas": 5}}}
    path.write_text(dump_documents([data]), encoding="utf-8")
    fleet = resolve(load_inventory(root))
    own = 0
    for cluster in fleet.clusters:
        for resolved in cluster.components:
            values = resolved.values
            env_values = cluster.environment.settings.components.get(resolved.name)
            expected = LayeredValues(resolved.component.values, env_values.values if env_values else {},
                                     dict(reversed(list(values.cluster.items()))))
            assert repr(values) == repr(expected)
            own += bool(values.cluster)
    assert own >= 20


def test_a_cluster_settings_layer_is_made_once_and_equals_the_entry_filtered() -> None:
    """``cluster_settings_layer`` is made on first use and kept with the entry: the same layer every time, equal to
    the entry's settings keys as written (in their order), and the entry compares and prints as before."""
    inventory = load_inventory(REPO)
    keys = {*Settings.model_fields, *(f.alias for f in Settings.model_fields.values())}
    for source in inventory.clusters:
        layer = entries.cluster_settings_layer(source)
        assert entries.cluster_settings_layer(source) is layer
        assert list(layer.data.items()) == [(k, v) for k, v in source.raw.items() if k in keys]
        assert (layer.name, layer.file, layer.path) == (f"cluster {source.item.name}", source.file, source.path)
        fresh = Sourced(source.item, source.file, source.path, source.raw)
        assert fresh == source and repr(fresh) == repr(source)
