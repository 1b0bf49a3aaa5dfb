"""The fleet-wide planners' memo (generator/render/memo.py) never changes a byte.

After every edit, each memoized planner's output through a warm memo is compared with the same planner without
one, byte for byte, and the memo is then stored as a render stores it. Edits are real file edits: a cluster's
values and settings, a cluster's region, the fleet entry, an environment overlay, a component, clusters added and
removed (crossing the hub's shard boundary), lines inserted above every cluster, the hub's network and a failover
secondary's network. The last tests plant a bug (a key without one of its parts) and check that these comparisons
catch it, and that corrupt or foreign memo files are ignored.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from generator.bench import make_fleet
from generator.inventory.loader import load_inventory
from generator.inventory.resolve import resolve
from generator.render import memo as memo_module
from generator.render import parallel
from generator.render.crossplane import fleet_contribution, plan_infrastructure
from generator.render.ingest import plan_ingest
from generator.render.issuers import plan_issuers
from generator.render.memo import MemoizingPlanCache
from generator.render.pipeline import _overview, plan, plan_cache_dir
from generator.render.policies import plan_policies
from generator.yamlio import dump_documents, load_documents

REPO = Path(__file__).resolve().parent.parent
#: every planner plan() runs through the memo
MEMOIZED: list[Callable[..., Any]] = [plan_policies, plan_issuers, fleet_contribution, plan_ingest,
                                      plan_infrastructure, _overview]

pytestmark = pytest.mark.filterwarnings("ignore::generator.errors.InventoryWarning")


def _agree(root: Path, cache: Path) -> MemoizingPlanCache:
    """Each memoized planner with the memo at ``cache`` equals the planner without one; the memo is then stored."""
    fleet = resolve(load_inventory(root))
    caches = MemoizingPlanCache(cache)
    for planner in MEMOIZED:
        assert caches.take(caches.memoized(planner)(fleet)) == planner(fleet), planner.__name__
    caches.clusters = {c.name for c in fleet.clusters}
    caches.store()
    return caches


def _edit(path: Path, change: Callable[[Any], None]) -> None:
    data = load_documents(path.read_text(encoding="utf-8"))[0]
    change(data)
    path.write_text(dump_documents([data]), encoding="utf-8")


def _reference_fleet(tmp_path: Path) -> Path:
    root = tmp_path / "reference"
    for name in ("inventory", "overlays", "charts"):
        shutil.copytree(REPO / name, root / name)
    return root


@pytest.fixture()
def synthetic(tmp_path: Path) -> tuple[Path, list[str]]:
    root = tmp_path / "fleet"
    return root, make_fleet(REPO, root, 16)


def _clusters(root: Path) -> Path:
    return root / "inventory" / "clusters" / "synthetic.yaml"


def _cluster(data: Any, name: str) -> dict[str, Any]:
    entry: dict[str, Any] = next(c for c in data["clusters"] if c["name"] == name)
    return entry


def test_random_edits_keep_every_planner_byte_identical(synthetic: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, names = synthetic
    cache = tmp_path / "cache"
    first = _agree(root, cache)
    assert first.memo.misses > 0 and first.memo.hits == 0
    warm = _agree(root, cache)
    assert warm.memo.misses == 0 and warm.memo.hits == first.memo.misses
    rng = random.Random(15)
    workloads = [n for n in names if n != "management"]
    added = 0

    def replicas(data: Any) -> None:
        entry = _cluster(data, rng.choice(workloads))
        values = {"deployment": {"replicas": rng.randint(2, 9)}}
        entry.setdefault("components", {})["envoy-gateway"] = {"values": values}

    def external_dns_off(data: Any) -> None:
        _cluster(data, rng.choice(workloads)).setdefault("components", {})["external-dns"] = {"enabled": False}

    def region(data: Any) -> None:
        entry = _cluster(data, rng.choice(workloads))
        same_cloud = [c for c in data["clusters"] if c["cloud"] == entry["cloud"]]
        entry["region"] = rng.choice(same_cloud)["region"]

    def add_cluster(data: Any) -> None:
        nonlocal added
        added += 1
        entry = dict(_cluster(data, rng.choice(workloads)))
        entry["name"] = f"added-{added}"
        index = 200 + added
        entry["networking"] = {**entry["networking"], "vpcCidr": f"10.{index}.0.0/20",
                               "podCidr": f"100.{index - 100}.0.0/20", "serviceCidr": f"172.31.{added * 4}.0/22"}
        data["clusters"].append(entry)

    def remove_cluster(data: Any) -> None:
        name = rng.choice([c["name"] for c in data["clusters"] if c.get("role") != "hub"][1:])
        data["clusters"] = [c for c in data["clusters"] if c["name"] != name]
        if name in workloads:
            workloads.remove(name)

    cluster_edits = [replicas, external_dns_off, region, add_cluster, remove_cluster]

    def fleet_domain() -> None:
        domain = f"d{rng.randint(0, 99)}.example.com"
        _edit(root / "inventory" / "fleet.yaml", lambda d: d["fleet"].update(domain=domain))

    def overlay() -> None:  # a text edit: the overlays hold comments (image setter markers) a dump would drop
        path = root / "overlays" / "staging.yaml"
        kept = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("labels:")]
        path.write_text("\n".join([*kept, f"labels: {{acme.io/edit: v{rng.randint(0, 99)}}}"]) + "\n", encoding="utf-8")

    def component() -> None:
        def change(data: Any) -> None:
            entry = next(c for c in data["components"] if c["name"] == "external-secrets")
            entry["values"]["serviceAccount"] = {"name": f"eso-{rng.randint(0, 99)}"}
        _edit(root / "inventory" / "components.yaml", change)

    def lines_above() -> None:  # every cluster's lines move (FLEET.md shows file:line)
        path = _clusters(root)
        path.write_text("# a comment\n\n" + path.read_text(encoding="utf-8"), encoding="utf-8")

    def app_lines_above() -> None:  # every app's lines move (FLEET.md: "listed in clusters at apps.yaml:<line>")
        path = root / "inventory" / "apps.yaml"
        path.write_text("# a comment\n" + path.read_text(encoding="utf-8"), encoding="utf-8")

    edits: list[Callable[..., None]] = [*cluster_edits, fleet_domain, overlay, component, lines_above,
                                        app_lines_above] * 2
    rng.shuffle(edits)
    for edit in edits:
        if edit in cluster_edits:
            _edit(_clusters(root), edit)
        else:
            edit()
        _agree(root, cache)
    assert plan(root, cache).files == plan(root).files


def test_edits_other_clusters_read_reach_the_parts_that_read_them(tmp_path: Path) -> None:
    """The hub's network reaches every private AWS spoke's cluster object; a failover secondary's network reaches
    the primary's database replica: each part re-planned, and only where the text changed."""
    root = _reference_fleet(tmp_path)
    cache = tmp_path / "cache"
    _agree(root, cache)
    _edit(root / "inventory" / "clusters" / "management.yaml",
          lambda d: d["clusters"][0]["networking"].update(vpcCidr="10.1.0.0/16"))
    _agree(root, cache)
    _edit(root / "inventory" / "clusters" / "prod.yaml",
          lambda d: _cluster(d, "prod-eu-west-1")["networking"].update(vpcCidr="10.34.0.0/16"))
    _agree(root, cache)
    _edit(root / "inventory" / "clusters" / "prod.yaml",
          lambda d: _cluster(d, "prod-eu-west-1").update(region="eu-central-1"))
    _agree(root, cache)
    # a cluster moved to another file, as written: its parts name the file they come from
    moved: list[Any] = []
    _edit(root / "inventory" / "clusters" / "dev.yaml", lambda d: moved.append(d["clusters"].pop()))
    _edit(root / "inventory" / "clusters" / "staging.yaml", lambda d: d["clusters"].append(moved[0]))
    _agree(root, cache)


def test_the_shard_count_reaches_every_spoke(tmp_path: Path) -> None:
    """101 workload clusters need two hub shards, 100 none: each spoke's file names its shard."""
    root = tmp_path / "fleet"
    make_fleet(REPO, root, 102)
    cache = tmp_path / "cache"
    _agree(root, cache)
    _edit(_clusters(root), lambda d: d["clusters"].pop())
    assert _agree(root, cache).memo.misses >= 100


def _planted(monkeypatch: pytest.MonkeyPatch, name: str, replacement: Callable[..., Any]) -> None:
    monkeypatch.setattr(memo_module.PlannerMemo, name, replacement)


def test_a_key_without_the_other_clusters_it_reads_is_caught(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Planted bug: every other cluster's digest the same (``identity``): the hub edit above then goes unseen."""
    root = _reference_fleet(tmp_path)
    cache = tmp_path / "cache"
    _planted(monkeypatch, "identity", lambda self, fleet, cluster: b"planted")
    _agree(root, cache)
    _edit(root / "inventory" / "clusters" / "management.yaml",
          lambda d: d["clusters"][0]["networking"].update(vpcCidr="10.1.0.0/16"))
    with pytest.raises(AssertionError, match="plan_infrastructure"):
        _agree(root, cache)


def test_a_key_without_the_fleet_digest_is_caught(monkeypatch: pytest.MonkeyPatch, synthetic: tuple[Path, list[str]],
                                                   tmp_path: Path) -> None:
    """Planted bug: the fleet digest left out of the cluster digest: a fleet-wide edit then goes unseen."""
    root, _ = synthetic
    cache = tmp_path / "cache"
    monkeypatch.setattr(memo_module, "fleet_digest", lambda inventory: b"planted")
    _agree(root, cache)
    _edit(root / "inventory" / "fleet.yaml", lambda d: d["fleet"].update(domain="other.example.com"))
    with pytest.raises(AssertionError):
        _agree(root, cache)


def test_corrupt_foreign_and_truncated_memo_files_are_ignored(synthetic: tuple[Path, list[str]],
                                                             tmp_path: Path) -> None:
    root, names = synthetic
    cache = tmp_path / "cache"
    _agree(root, cache)
    folder = cache / "planners"
    files = sorted(folder.glob("*.memo"))
    assert files and (folder / ".gitignore").is_file()
    store = folder / "secret-store.memo"
    data = bytearray(store.read_bytes())
    at = data.index(b"kind: ClusterSecretStore")
    data[at:at + 4] = b"KIND"  # a hand edit of one entry: its digest no longer matches
    store.write_bytes(bytes(data))
    (folder / "issuer.memo").write_bytes(b'["a foreign format", 1]\n')
    hub_spoke = folder / "hub-spoke.memo"
    hub_spoke.write_bytes(hub_spoke.read_bytes()[:-100])  # a torn write
    caches = _agree(root, cache)
    assert caches.memo.misses >= 1 + len(names)  # the edited entry, every issuer, the torn spoke
    assert b"KIND" not in store.read_bytes() or store.read_bytes().count(b"\n") > 0
    again = _agree(root, cache)  # the rewritten files are read again
    assert again.memo.misses == 0


def test_render_stores_the_memo_only_when_it_succeeds(synthetic: tuple[Path, list[str]]) -> None:
    root, _ = synthetic
    rendered = plan(root, plan_cache_dir(root), store=False)
    assert not (plan_cache_dir(root) / "planners").exists()
    assert rendered.plan_cache is not None
    rendered.plan_cache.store()
    assert sorted(p.name for p in (plan_cache_dir(root) / "planners").glob("*.memo")) == [
        "cluster-object.memo", "hub-spoke.memo", "ingest.memo", "issuer.memo", "overview.memo", "policies.memo",
        "secret-store.memo"]
    assert plan(root, plan_cache_dir(root)).files == plan(root).files


_PIDS_ENV = "FLEETGEN_TEST_PLANNER_PIDS"
_run_planner = parallel._run_planner


def _recording_run_planner(*args: Any) -> Any:
    """``parallel._run_planner``, noting the process it runs in (module level: the pool pickles it by name)."""
    with open(os.environ[_PIDS_ENV], "a", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")
    return _run_planner(*args)


def test_planners_in_worker_processes_send_their_parts_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fleet large enough for forked planners (generator/render/parallel.py): the parts they computed are stored by
    the parent (appended to files it never read), read by the next render's workers, and the bytes stay those of a
    render without any cache. (Run by tests/test_parallel.py in a process without threads.)"""
    if not parallel.can_fork():
        pytest.skip("worker processes are forked on Linux only, from a process without threads")
    ran_in = tmp_path / "planner-pids"
    monkeypatch.setenv(_PIDS_ENV, str(ran_in))  # the forked workers inherit it, and the patched module
    monkeypatch.setattr(parallel, "_run_planner", _recording_run_planner)
    root = tmp_path / "fleet"
    names = make_fleet(REPO, root, 40)
    cache = tmp_path / "cache"
    cold = plan(root, cache, jobs=2)
    pids = set(ran_in.read_text(encoding="utf-8").split())
    assert pids and str(os.getpid()) not in pids  # the fleet-wide planners ran in workers
    assert isinstance(cold.plan_cache, MemoizingPlanCache)
    memo = cold.plan_cache.memo
    assert memo.hits == 0 and memo.misses > len(names)
    _edit(_clusters(root), lambda d: _cluster(d, names[5]).update(kubernetesVersion="1.33"))
    warm = plan(root, cache, jobs=2)
    assert isinstance(warm.plan_cache, MemoizingPlanCache)
    memo = warm.plan_cache.memo
    assert 0 < memo.misses < 10 and memo.hits > 5 * len(names)
    assert warm.files == plan(root).files


def test_a_prepared_memo_keys_parts_as_one_computing_on_first_use(synthetic: tuple[Path, list[str]],
                                                                    tmp_path: Path) -> None:
    """``prepare`` (the digests computed before the planners fork) changes no key: every part's key of every
    cluster, with and without inputs, equals the key of a memo computing them on first use, and the fleet-level
    key too; a key is the sha256 of the part's prefix, the identity, a NUL and the pickled inputs."""
    root, _ = synthetic
    fleet = resolve(load_inventory(root))
    lazy, prepared = memo_module.PlannerMemo(tmp_path / "a"), memo_module.PlannerMemo(tmp_path / "b")
    prepared.prepare(fleet)
    for cluster in fleet.clusters:
        for name, inputs in (("issuer", ()), ("overview", ([1, "two"], b"\x00three"))):
            key = lazy.key(fleet, name, cluster, inputs)
            assert key == prepared.key(fleet, name, cluster, inputs) is not None
            identity = prepared.identity(fleet, cluster.name)
            assert identity is not None
            extra = memo_module.plain_bytes(tuple(inputs)) if inputs else b""
            assert extra is not None
            expected = hashlib.sha256(memo_module._part_prefix(name) + identity + b"\0" + extra).hexdigest()
            assert key == expected
    assert lazy.key(fleet, "policies", None, ()) == prepared.key(fleet, "policies", None, ())


def test_records_read_in_place_equal_the_texts_written(tmp_path: Path) -> None:
    """``_read`` hashes and decodes each record where it lies in the file: texts with multi-byte characters and
    lone surrogates come back as written, the last record of an entry wins, and a record whose bytes were changed
    is dropped."""
    texts = {
        "a": {"clusters/a.yaml": "naïve: ✓\n", "empty": "", "surrogate": "\udcff-kept"},
        "b": {"x": "plain"},
        "": {"fleet": "level \N{SNOWMAN}"},
    }
    path = tmp_path / "part.memo"
    records = [memo_module._record(entry, f"key-{entry}", value) for entry, value in texts.items()]
    newer = {"x": "newer ünïcode"}
    path.write_bytes(b"".join(records) + memo_module._record("b", "key-b2", newer))
    entries, count = memo_module._read(path)
    assert count == 4
    assert entries == {"a": ("key-a", texts["a"]), "b": ("key-b2", newer), "": ("key-", texts[""])}
    changed = path.read_bytes().replace("naïve".encode(), b"naive" + b"\xc3")
    path.write_bytes(changed)
    entries, _ = memo_module._read(path)
    assert "a" not in entries and entries["b"] == ("key-b2", newer)
