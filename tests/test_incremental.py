"""Incremental render (issue 15): the per-cluster plan cache re-plans only what changed and never changes bytes.

Every check compares the cached render with a full render of the same inventory (no cache), byte for byte, after
real edits of a synthetic fleet's files: one cluster's values, a cluster's own settings, a fleet-wide overlay,
a cluster added and removed, the hub's shard count; then a seeded random walk over every kind of input (a
cluster, an overlay, the defaults, a component, an app, a team, the fleet entry, clusters added, removed and
moved to another file, lines shifted), and the same walk with a part of the key planted missing, which it must
catch. Corrupt or poisoned cache entries are ignored, and a cross-cluster error introduced by a one-cluster edit
is still refused with a warm cache.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import tree_digest

from generator.bench import make_fleet
from generator.errors import InventoryError
from generator.render import incremental
from generator.render.incremental import PlanCache
from generator.render.pipeline import Rendered, plan, plan_cache_dir, render
from generator.yamlio import dump_documents, load_documents

REPO = Path(__file__).resolve().parent.parent
SIZE = 24

pytestmark = pytest.mark.filterwarnings("ignore::generator.errors.InventoryWarning")


def _clusters_file(root: Path) -> Path:
    return root / "inventory" / "clusters" / "synthetic.yaml"


def _edit_clusters(root: Path, change: Callable[[list[dict[str, Any]]], None]) -> None:
    path = _clusters_file(root)
    data = load_documents(path.read_text(encoding="utf-8"))[0]
    change(data["clusters"])
    path.write_text(dump_documents([data]), encoding="utf-8")


def _cached(root: Path, cache: Path) -> tuple[dict[str, str], Rendered]:
    """A render through the cache (its files, and how many clusters it reused and planned)."""
    rendered = plan(root, cache)
    return rendered.files, rendered


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("incremental") / "fleet"
    return root, make_fleet(REPO, root, SIZE)


def test_edits_replan_only_what_changed_and_keep_the_bytes(fleet: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, names = fleet
    cache = tmp_path / "plan-cache"
    first, store = _cached(root, cache)
    assert first == plan(root).files
    assert (store.reused_clusters, store.planned_clusters) == (0, SIZE)
    again, store = _cached(root, cache)
    assert again == first and (store.reused_clusters, store.planned_clusters) == (SIZE, 0)

    rng = random.Random(15)
    workloads = names[1:]

    def replicas(clusters: list[dict[str, Any]]) -> None:
        name = rng.choice(workloads)
        target = next(c for c in clusters if c["name"] == name)
        values = target.setdefault("components", {}).setdefault("envoy-gateway", {}).setdefault("values", {})
        values.setdefault("deployment", {})["replicas"] = rng.randint(2, 30)

    def disable(clusters: list[dict[str, Any]]) -> None:
        name = rng.choice(workloads)
        target = next(c for c in clusters if c["name"] == name)
        target.setdefault("components", {})["external-dns"] = {"enabled": not rng.random() < 0.5}

    for change in (replicas, disable, replicas, disable):
        _edit_clusters(root, change)
        files, store = _cached(root, cache)
        assert files == plan(root).files
        # a one-cluster edit re-plans that cluster at most
        assert store.planned_clusters <= 1 and store.reused_clusters >= SIZE - 1

    # a new workload cluster changes the hub's shard count: the new cluster and the hub are re-planned
    def add(clusters: list[dict[str, Any]]) -> None:
        extra = json.loads(json.dumps(clusters[-1]))
        extra["name"] = "dev-added-9999"
        extra["environment"] = "dev"
        extra["networking"] = {"vpcCidr": "10.250.0.0/20", "podCidr": "100.250.0.0/20",
                               "serviceCidr": "172.31.250.0/24", "privateEndpoint": False}
        clusters.append(extra)

    before_add = files
    _edit_clusters(root, add)
    files, store = _cached(root, cache)
    assert files == plan(root).files and "fleet/clusters/dev-added-9999/kustomization.yaml" in files
    assert 1 <= store.planned_clusters < SIZE
    _edit_clusters(root, lambda clusters: clusters.pop())
    files, store = _cached(root, cache)
    assert files == before_add
    assert "dev-added-9999" not in _stored(cache)  # pruned with its cluster

    # a fleet-wide edit (the dev overlay) re-plans every dev cluster, and only those
    overlay = root / "overlays" / "dev.yaml"
    overlay.write_text(overlay.read_text(encoding="utf-8").replace("eventSeverity: info", "eventSeverity: error"),
                       encoding="utf-8")
    files, store = _cached(root, cache)
    assert files == plan(root).files and files != before_add
    dev = sum(1 for name in names if name.startswith("dev-"))
    assert store.planned_clusters == dev > 0


def _stored(cache: Path) -> dict[str, dict[str, Any]]:
    """Every entry of the plan cache's packs, by cluster."""
    entries: dict[str, dict[str, Any]] = {}
    for pack in sorted((cache / "packs").glob("*.pack")):
        header = pack.read_bytes().split(b"\n", 1)[0]
        entries.update(json.loads(header)["entries"])
    return entries


def _pack_of(cache: Path, cluster: str) -> Path:
    return cache / "packs" / f"{PlanCache.pack_number(cluster):02x}.pack"


def _rewrite(pack: Path, change: Callable[[dict[str, Any], bytearray], None]) -> None:
    """Change a pack's index and texts in place (a hand edit, as a corrupting or poisoning user would)."""
    header, _, body = pack.read_bytes().partition(b"\n")
    index, texts = json.loads(header), bytearray(body)
    change(index["entries"], texts)
    pack.write_bytes(json.dumps(index).encode() + b"\n" + bytes(texts))


def test_corrupt_or_poisoned_entries_are_ignored(fleet: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, names = fleet
    cache = tmp_path / "plan-cache"
    full = plan(root).files
    _cached(root, cache)
    assert sorted(_stored(cache)) == sorted(names)
    by_pack: dict[Path, list[str]] = {}
    for name in names:
        by_pack.setdefault(_pack_of(cache, name), []).append(name)
    # a pack cut short (its entries ignored, whatever their number) ...
    cut = next(pack for pack, held in by_pack.items() if len(held) >= 2)
    cut.write_bytes(cut.read_bytes()[:-100])
    damaged = {max(by_pack[cut], key=lambda n: _stored(cache).get(n, {}).get("end", -1))}  # the last text cut
    others = [n for n in names if _pack_of(cache, n) != cut]
    stale, poisoned, reshaped, unreadable = others[0], others[1], others[2], others[3]

    def stale_key(entries: dict[str, Any], texts: bytearray) -> None:
        entries[stale]["key"] = "0" * 64

    def poison(entries: dict[str, Any], texts: bytearray) -> None:  # a text changed, the same length
        start = entries[poisoned]["start"]
        texts[start : start + 8] = b"kind: Xx"

    def reshape(entries: dict[str, Any], texts: bytearray) -> None:  # files renamed in the index
        entries[reshaped]["paths"] = [path + ".evil" for path in entries[reshaped]["paths"]]

    for name, change in ((stale, stale_key), (poisoned, poison), (reshaped, reshape)):
        _rewrite(_pack_of(cache, name), change)
    _pack_of(cache, unreadable).write_bytes(b"\xff\xfe not json")
    lost = {n for n in names if _pack_of(cache, n) == _pack_of(cache, unreadable)}
    (cache / "packs" / "stray.pack").write_text("{}", encoding="utf-8")
    unused = min(set(range(incremental.PACKS)) - {PlanCache.pack_number(n) for n in names})
    garbage = cache / "packs" / f"{unused:02x}.pack"  # a pack no cluster of the fleet maps to, unreadable
    garbage.write_bytes(b"\x00" * 64)
    files, store = _cached(root, cache)
    assert files == full
    replanned = damaged | {stale, poisoned, reshaped} | lost
    assert (store.reused_clusters, store.planned_clusters) == (SIZE - len(replanned), len(replanned))
    assert not (cache / "packs" / "stray.pack").exists() and not garbage.exists()
    files, store = _cached(root, cache)  # the re-planned entries were stored again
    assert files == full and store.planned_clusters == 0


def test_a_poisoned_digest_cannot_leave_a_wrong_file_in_place(tmp_path: Path) -> None:
    """The writer takes each cached text's sha256 from the plan cache's reader, which hashes the bytes it read: a
    pack whose stored digests claim the files already on disk (its entry digest recomputed to match) is refused,
    where trusting those digests would leave the old files in place."""
    root, out = tmp_path / "fleet", tmp_path / "out"
    names = make_fleet(REPO, root, SIZE)
    victim, cache = names[3], plan_cache_dir(root)

    def replicas(count: int) -> Callable[[list[dict[str, Any]]], None]:
        def change(clusters: list[dict[str, Any]]) -> None:
            for cluster in clusters:
                if cluster["name"] == victim:
                    components = cluster.setdefault("components", {}).setdefault("envoy-gateway", {})
                    components.setdefault("values", {}).setdefault("deployment", {})["replicas"] = count
        return change

    def entry() -> tuple[dict[str, Any], bytes]:
        header, _, body = _pack_of(cache, victim).read_bytes().partition(b"\n")
        found = json.loads(header)["entries"][victim]
        return found, body[found["start"] : found["end"]]

    _edit_clusters(root, replicas(5))
    render(root, out)
    five, texts_five = entry()
    _edit_clusters(root, replicas(7))
    render(root, out)  # the output and its stat cache now hold the files of 7 replicas
    seven, _ = entry()
    assert five["paths"] == seven["paths"] and five["digests"] != seven["digests"]

    def poison(entries: dict[str, Any], texts: bytearray) -> None:  # 5's texts, claiming 7's digests
        entries[victim] = {**five, "digests": seven["digests"], "start": len(texts),
                           "end": len(texts) + len(texts_five),
                           "digest": incremental._entry_digest(five["key"], five["paths"], five["lengths"],
                                                               seven["digests"])}
        texts.extend(texts_five)

    _rewrite(_pack_of(cache, victim), poison)
    _edit_clusters(root, replicas(5))
    changes = render(root, out)
    assert changes.updated  # the files of 5 replicas written over those of 7
    fresh = tmp_path / "fresh"
    render(root, fresh, cache_dir=tmp_path / "no-cache")
    assert tree_digest(out) == tree_digest(fresh)


def test_a_cross_cluster_error_is_still_refused_with_a_warm_cache(tmp_path: Path) -> None:
    root = tmp_path / "fleet"
    names = make_fleet(REPO, root, SIZE)
    out = tmp_path / "out"
    render(root, out)
    assert _stored(plan_cache_dir(root))
    assert (plan_cache_dir(root) / ".gitignore").is_file()

    def overlap(clusters: list[dict[str, Any]]) -> None:  # a second cluster takes the first one's VPC range
        clusters[2]["networking"]["vpcCidr"] = clusters[1]["networking"]["vpcCidr"]

    _edit_clusters(root, overlap)
    with pytest.raises(InventoryError) as refused:
        render(root, out)
    assert "vpcCidr" in str(refused.value) or "overlap" in str(refused.value)
    assert names[2] in str(refused.value) or names[1] in str(refused.value)


def test_edit_loop_bench_measures_a_small_fleet(tmp_path: Path) -> None:
    from generator.bench import measure_edit_loop, report_edit_loop

    # raises when the incremental render differs from the full one, or the build rebuilt another cluster
    result = measure_edit_loop(6, jobs=2, seed=7, keep=tmp_path)
    assert (result["replanned"], result["clusters_rebuilt"]) == (1, 1)
    assert 1 <= result["edit_files"] < result["files"]
    assert report_edit_loop([result]).splitlines()[2].startswith("| 6 | ")
    assert result["cli_render_s"] > 0 and result["cli_build_s"] > 0  # as commands: 5 of 6 unchanged, or it raises
    assert "fleetgen render" in report_edit_loop([result])


# --- a random walk over every kind of input: the cached render equals a full one after each edit ---------------

def _edit_yaml(path: Path, change: Callable[[Any], None]) -> None:
    data = load_documents(path.read_text(encoding="utf-8"))[0]
    change(data)
    path.write_text(dump_documents([data]), encoding="utf-8")


def _random_edit(root: Path, rng: random.Random, serial: list[int]) -> str:
    """One random edit of the fleet at ``root`` (valid: the fleet still renders); what it was."""
    serial[0] += 1
    number = serial[0]
    inventory = root / "inventory"
    clusters = _clusters_file(root)
    moved = inventory / "clusters" / "moved.yaml"

    def cluster_value(data: Any) -> None:
        target = rng.choice(data["clusters"][1:])
        target.setdefault("components", {}).setdefault("envoy-gateway", {}).setdefault("values", {}).setdefault(
            "deployment", {})["replicas"] = number + 1

    def cluster_label(data: Any) -> None:
        rng.choice(data["clusters"]).setdefault("labels", {})["walk"] = f"v{number}"

    def defaults(data: Any) -> None:
        data["defaults"].setdefault("components", {}).setdefault("cert-manager", {}).setdefault(
            "values", {})["walk"] = number

    def fleet_entry(data: Any) -> None:
        data["fleet"]["git"]["branch"] = f"walk-{number}"

    def component(data: Any) -> None:  # its values (its base only) or its namespace (every cluster's alerts)
        target = rng.choice([c for c in data["components"] if c["namespace"] not in ("flux-system", "kube-system")])
        if rng.random() < 0.25:
            target.setdefault("values", {})["walk"] = number
        else:
            target["namespace"] = f"{target['namespace'].split('--')[0]}--{number}"

    def app(data: Any) -> None:
        rng.choice(data["apps"])["description"] = f"walk {number}"

    def team(data: Any) -> None:
        rng.choice(data["teams"])["description"] = f"walk {number}"

    def add(data: Any) -> None:
        extra = json.loads(json.dumps(data["clusters"][-1]))
        extra.update(name=f"dev-walk-{number:04d}", environment="dev", networking={
            "vpcCidr": f"10.{200 + number % 50}.0.0/20", "podCidr": f"100.{200 + number % 50}.0.0/20",
            "serviceCidr": f"172.31.{200 + number % 50}.0/24", "privateEndpoint": False})
        extra.pop("labels", None)
        data["clusters"].append(extra)

    def remove(data: Any) -> None:  # one the walk added (apps and routes name the original clusters)
        added = [i for i, c in enumerate(data["clusters"]) if c["name"].startswith("dev-walk-")]
        if added:
            data["clusters"].pop(rng.choice(added))
        else:
            add(data)

    edits: list[tuple[str, Path, Callable[[Any], None]]] = [
        ("a cluster's values", clusters, cluster_value), ("a cluster's labels", clusters, cluster_label),
        ("the defaults", inventory / "fleet.yaml", defaults),
        ("the fleet entry", inventory / "fleet.yaml", fleet_entry),
        ("a component", inventory / "components.yaml", component), ("an app", inventory / "apps.yaml", app),
        ("a team", inventory / "teams.yaml", team),
        ("a cluster added", clusters, add), ("a cluster removed", clusters, remove),
    ]
    kind = rng.randrange(len(edits) + 3)
    if kind == len(edits) + 2:  # an overlay, as text (its comments hold the image automation's setter markers)
        path = root / "overlays" / f"{rng.choice(['dev', 'prod'])}.yaml"
        text = path.read_text(encoding="utf-8")
        found = list(re.finditer(r"replicaCount: (\d+)", text))
        at = rng.choice(found).start(1)
        path.write_text(text[:at] + str(rng.randint(1, 4)) + text[at + 1 :], encoding="utf-8")
        return "an overlay"
    if kind == len(edits):  # lines shifted: positions change, nothing planned does
        clusters.write_text(f"# walk {number}\n" * rng.randint(1, 3) + clusters.read_text(encoding="utf-8"),
                            encoding="utf-8")
        return "lines shifted"
    if kind == len(edits) + 1:  # a cluster moved to another file (its planned headers name the file)
        data = load_documents(clusters.read_text(encoding="utf-8"))[0]
        entry = data["clusters"].pop(rng.randrange(1, len(data["clusters"])))
        clusters.write_text(dump_documents([data]), encoding="utf-8")
        others = load_documents(moved.read_text(encoding="utf-8"))[0] if moved.exists() else {"clusters": []}
        others["clusters"].append(entry)
        moved.write_text(dump_documents([others]), encoding="utf-8")
        return "a cluster moved to another file"
    name, path, change = edits[kind]
    _edit_yaml(path, change)
    return name


def _walk(root: Path, cache: Path, steps: int, seed: int) -> list[str]:
    """Random edits, each followed by a render through the cache and a full one; the edits after which they
    differed (or the line shift re-planned a cluster)."""
    rng, serial, wrong = random.Random(seed), [0], []
    plan(root, cache)
    for _ in range(steps):
        edit = _random_edit(root, rng, serial)
        cached, full = plan(root, cache), plan(root)
        if cached.files != full.files or list(cached.files) != list(full.files):
            wrong.append(f"{edit}: the cached render differs")
        elif edit == "lines shifted" and cached.planned_clusters:
            wrong.append(f"{edit}: {cached.planned_clusters} clusters re-planned")
    return wrong


def test_a_random_walk_over_every_input_keeps_the_bytes(tmp_path: Path) -> None:
    root = tmp_path / "fleet"
    make_fleet(REPO, root, SIZE)
    assert _walk(root, tmp_path / "cache", 24, seed=1515) == []


@pytest.mark.parametrize("planted", ["components", "own entry"])
def test_the_walk_catches_a_key_missing_a_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planted: str
) -> None:
    """The walk above is a real check: with one input left out of the key (a planted bug), it finds a render that
    differs from the full one."""
    if planted == "components":
        monkeypatch.setattr(incremental, "_NOT_IN_EVERY_KEY", {**incremental._NOT_IN_EVERY_KEY, "components": ""})
    else:
        monkeypatch.setattr(incremental, "cluster_entry", lambda source: (source.file.file, source.item.name))
    root = tmp_path / "fleet"
    make_fleet(REPO, root, SIZE)
    wrong = _walk(root, tmp_path / "cache", 32, seed=1515)
    assert any(("a component" if planted == "components" else "a cluster") in w for w in wrong), wrong


def test_files_added_at_once_are_refused_on_a_clash_as_one_by_one() -> None:
    """plan_fleet adds each cluster's (and each contribution's) files at once: the same files, order and refusal
    as adding them one by one."""
    from generator.render.planner import Planner, TemplateError

    files = {"clusters/a/kustomization.yaml": "a: 1\n", "clusters/a/flux.yaml": "b: 2\n"}
    one_by_one, at_once = Planner(), Planner()
    for path, text in files.items():
        one_by_one.add_planned(path, text)
    at_once.add_all_planned(files)
    assert list(at_once.files.items()) == list(one_by_one.files.items())
    clash = {"clusters/b/x.yaml": "c: 3\n", "clusters/a/flux.yaml": "d: 4\n", "clusters/a/kustomization.yaml": ""}
    errors = []
    for planner, add in ((one_by_one, lambda p: [p.add_planned(k, v) for k, v in clash.items()]),
                         (at_once, lambda p: p.add_all_planned(clash))):
        with pytest.raises(TemplateError) as refused:
            add(planner)
        errors.append(str(refused.value))
    assert errors[0] == errors[1] == "two outputs claim clusters/a/flux.yaml"
