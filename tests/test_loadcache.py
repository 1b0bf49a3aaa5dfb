"""The load cache (generator/inventory/loadcache.py) gives exactly what a full load gives: the same values (types
included), file:line:column of every key and item, written literals, ambiguous words and errors, over randomised
edits, tricky texts and damaged stores; and it re-reads only the items an edit changed."""

from __future__ import annotations

import io
import itertools
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from generator.bench import _load, edit_one_cluster, make_fleet
from generator.errors import InventoryError
from generator.fastload import one_pass_parts
from generator.guard import MAX_NODES
from generator.inventory import loadcache
from generator.inventory.loadcache import LoadCache, split_items
from generator.inventory.loader import load_inventory
from generator.inventory.resolve import resolve
from generator.render import pipeline
from generator.render.memo import Identities
from generator.yamlio import dump_documents, load_text
from generator.yamlsource import LoadedFile


def _exact(value: Any) -> bytes:
    """Bytes equal only for equal plain data, types and key order included (no memo: sharing does not matter)."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.fast = True
    pickler.dump(value)
    return buffer.getvalue()


def _answer(loaded: LoadedFile) -> Any:
    """Everything a loaded file tells: data, every position (iterated and looked up), literals, ambiguous words."""
    probes = list(loaded.positions)
    for path in list(loaded.positions):
        probes += [(*path, "missing"), (*path, 0), (*path, 1), (*path, -1), (*path, 99), (*path, 0, "x")]
    looked_up = [(loaded.positions.get(p), p in loaded.positions, loaded.position(p)) for p in probes]
    return (
        loaded.file,
        _exact(loaded.data),
        list(loaded.positions.items()),
        looked_up,
        list(loaded.literals.items()),
        loaded.ambiguous,
        type(loaded.positions) is dict,
    )


def _outcome(load: Any, text: str) -> Any:
    try:
        return _answer(load(text, "inventory/clusters/f.yaml"))
    except InventoryError as exc:
        return [str(p) for p in exc.problems]


def assert_like_full_load(directory: Path, text: str) -> None:
    """A load through the cache, cold (records made) and warm (records read back), answers as ``load_text``."""
    expected = _outcome(load_text, text)
    for _ in range(2):
        cache = LoadCache(directory)
        assert _outcome(cache.load, text) == expected, text[:400]
        cache.store()


@pytest.fixture(scope="module")
def synthetic_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("fleet") / "fleet"
    make_fleet(REPO, root, 24)
    return (root / "inventory" / "clusters" / "synthetic.yaml").read_text(encoding="utf-8")


#: Lines that, put anywhere in a list of items, could make an item-by-item reading differ from the whole file's:
#: scalars and collections left open across item lines, block scalars, anchors and aliases across items, document
#: markers, tabs, non-string or repeated top-level keys, lines less indented than the items, other line breaks.
TRICKY_LINES = [
    '  note: "open', '- "closing"', "  x: [1,", "- 2]", "  text: |", "  folded: >-", "- |", " bad: 1", "  - x",
    "---", "...", "- &a {k: v}", "- *a", "  ref: *a", "  anchor: &b 1", "\tx: 1", "null:", "clusters:", "1:",
    "# a comment", "", "   ", "  # indented comment", "-", "- - nested", "  'quoted': 1", "? x", "%YAML 1.2",
    "  empty:", "  y: on", "  v: 1.30", "other: x", "  k: v\r", "  k: a\x85b", "  <<: {m: 1}", "  k: 'it''s",
    "  - a: b",
]


def _mutate(text: str, rng: random.Random) -> str:
    """One random edit of a list file: a value changed, keys added or dropped, items added, dropped, repeated or
    moved, comments and blank lines, a tricky line inserted or a line replaced, the indentation style changed."""
    kind = rng.randrange(9)
    lines = text.split("\n")
    if kind == 0:
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(TRICKY_LINES))
        return "\n".join(lines)
    if kind == 1 and len(lines) > 3:
        lines[rng.randrange(1, len(lines))] = rng.choice(TRICKY_LINES)
        return "\n".join(lines)
    if kind == 2:
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(["# note", "", "  # note", "#"]))
        return "\n".join(lines)
    try:
        data = load_text(text, "f.yaml").data
    except InventoryError:
        return text
    items = data.get("clusters") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        return text
    item = rng.choice(items)
    if kind == 3:
        item.setdefault("components", {}).setdefault("envoy-gateway", {})["replicas"] = rng.choice(
            [rng.randint(1, 10**6), "on", 1.5, None, True, "a: b", "line\nbreak"]
        )
    elif kind == 4 and len(item) > 1:
        item.pop(rng.choice(list(item)[1:]))
    elif kind == 5:
        items.insert(rng.randrange(len(items) + 1), dict(rng.choice(items)))
    elif kind == 6 and len(items) > 1:
        items.pop(rng.randrange(len(items)))
    elif kind == 7:
        items.append(items.pop(rng.randrange(len(items))))
    else:
        return text.replace("\n- ", "\n  - ").replace("\n  ", "\n    ").replace("\n    - ", "\n  - ")
    return dump_documents([data])


def test_randomised_edits_load_as_a_full_load(tmp_path: Path, synthetic_text: str) -> None:
    """Edit after edit (one store for all, as a fleet's edit loop has), every load answers as a full load."""
    rng = random.Random(15)
    text = synthetic_text
    for _ in range(120):
        text = _mutate(text, rng)
        assert_like_full_load(tmp_path / "cache", text)


@pytest.mark.parametrize("line", TRICKY_LINES)
def test_tricky_lines_between_items_load_as_a_full_load(tmp_path: Path, line: str) -> None:
    """Each tricky line at each place of a small list file (after the key, in an item, between items, last)."""
    base = "---\nclusters:\n- name: a\n  v: 1\n  m:\n    k: [x, 1.50]\n- name: b\n  t: |\n    text\n- c\n"
    base += "fleet:\n  - 1\n"
    lines = base.split("\n")
    for at in range(1, len(lines) + 1):
        assert_like_full_load(tmp_path / "cache", "\n".join([*lines[:at], line, *lines[at:]]))


@pytest.mark.parametrize(
    "text",
    [
        "clusters:\n  - name: a\n    v: 1\n  - name: b\n",  # indented items
        "clusters:\n- a\n- b\n- a\n",  # scalar items, one repeated
        "clusters:\n- {name: a, v: 1}\n- [1, 2]\n-\n  name: c\n",
        "a:\n- 1\nb:\n  - x: 1\n    y: 2\n",
        "# head\n\n---\n# more\nclusters: # all of them\n\n  # before\n- name: a\n",
        "clusters:\n- name: a\n  v: \"open\n- b\"\n",  # a quoted scalar across an item line
        "clusters:\n- name: a\n  v: [1,\n- 2]\n",  # a flow collection across an item line
        "clusters:\n- &x {name: a}\n- *x\n",  # an alias of another item
        "clusters:\n- a\nclusters:\n- b\n",  # a repeated section
        "clusters:\n- a\n---\nother:\n- b\n",  # two documents
        "clusters:\r\n- a\r\n- b\r\n",
        "\ufeffclusters:\n- a\n",
        "true:\n- a\n",
        "clusters:\n- a\n...\n",
        "clusters:\n- a\nb: 1\n",
        "clusters:\n",
        "",
    ],
)
def test_file_shapes_load_as_a_full_load(tmp_path: Path, text: str) -> None:
    assert_like_full_load(tmp_path / "cache", text)


def test_the_node_limit_counts_the_whole_file(tmp_path: Path) -> None:
    """Items each under the guard's node limit but past it together: the guard's error, as a full load gives."""
    half = "- [" + ", ".join(["x"] * (MAX_NODES // 2)) + "]\n"
    text = "k:\n" + half + half
    sections = split_items(text)
    assert sections is not None and len(sections[0].items) == 2
    with pytest.raises(InventoryError, match="past 250000 nodes"):
        load_text(text, "f.yaml")
    assert_like_full_load(tmp_path / "cache", text)


def test_only_edited_items_are_read_again(tmp_path: Path, synthetic_text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A warm load reads no item; after a one-item edit that adds lines (the items after it shift) only that item
    is read, and every position after it moved with it."""
    directory = tmp_path / "cache"
    assert_like_full_load(directory, synthetic_text)
    reads: list[str] = []
    real = one_pass_parts

    def counted(text: str) -> Any:
        reads.append(text)
        return real(text)

    monkeypatch.setattr(loadcache, "one_pass_parts", counted)
    LoadCache(directory).load(synthetic_text, "f.yaml")
    assert reads == []
    edited = synthetic_text.replace("\n- name: ", "\n- name: ", 3).replace(
        "  cloud:", "  labels:\n    team: x\n    tier: y\n  cloud:", 3
    )
    edited = edited.replace("  labels:\n    team: x\n    tier: y\n  cloud:", "  cloud:", 2)  # the third item only
    assert edited.count("tier: y") == 1
    cache = LoadCache(directory)
    loaded = cache.load(edited, "f.yaml")
    assert len(reads) == 1 and "tier: y" in reads[0]
    monkeypatch.setattr(loadcache, "one_pass_parts", real)
    assert _answer(loaded) == _answer(load_text(edited, "f.yaml"))


def _damage(path: Path, how: str) -> None:
    raw = path.read_bytes()
    if how == "flip":
        middle = len(raw) // 2
        path.write_bytes(raw[:middle] + bytes([raw[middle] ^ 0x20]) + raw[middle + 1 :])
    elif how == "truncate":
        path.write_bytes(raw[: len(raw) * 2 // 3])
    elif how == "garbage":
        path.write_bytes(b"\x00\xffnot a store\n" * 50)
    elif how == "other-code":
        path.write_bytes(raw.replace(raw[raw.index(b'"fingerprint": "') + 16 :][:8], b"00000000", 1))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "folder":
        path.unlink()
        path.mkdir()


@pytest.mark.parametrize("how", ["flip", "truncate", "garbage", "other-code", "empty", "folder"])
def test_a_damaged_or_foreign_store_is_ignored(tmp_path: Path, synthetic_text: str, how: str) -> None:
    directory = tmp_path / "cache"
    assert_like_full_load(directory, synthetic_text)
    _damage(directory / "records.jsonl", how)
    expected = _outcome(load_text, synthetic_text)
    for _ in range(2):
        cache = LoadCache(directory)
        assert _outcome(cache.load, synthetic_text) == expected
        cache.store()


def test_a_flipped_record_is_read_again(tmp_path: Path) -> None:
    """A record whose bytes no longer match its digest is not used: that item is read from the text."""
    directory = tmp_path / "cache"
    text = "clusters:\n- name: a\n  v: 1\n- name: b\n  v: 2\n"
    assert_like_full_load(directory, text)
    store = directory / "records.jsonl"
    store.write_bytes(store.read_bytes().replace(b'"v":2', b'"v":3'))
    loaded = LoadCache(directory).load(text, "f.yaml")
    assert loaded.data == {"clusters": [{"name": "a", "v": 1}, {"name": "b", "v": 2}]}


def test_the_store_stays_bounded(tmp_path: Path) -> None:
    """Records no load uses any more are dropped once they pass an eighth of the used ones (plus some slack)."""
    directory = tmp_path / "cache"
    items = "".join(f"- name: item{i}\n" for i in range(800))
    counts = []
    for value in range(loadcache.SLACK_RECORDS + 200):
        cache = LoadCache(directory)
        cache.load(f"clusters:\n- name: a\n  v: {value}\n{items}", "f.yaml")
        cache.store()
        counts.append((directory / "records.jsonl").read_bytes().count(b"\n"))
    assert max(counts) <= 1 + 801 + loadcache.SLACK_RECORDS + 801 // 8 + 1
    assert any(later < earlier for earlier, later in itertools.pairwise(counts))  # rewritten


def test_inventory_errors_are_those_of_a_full_load(tmp_path: Path) -> None:
    """A fleet loaded through a warm cache after an edit that breaks it: the same problems as without the cache."""
    root = tmp_path / "fleet"
    make_fleet(REPO, root, 6)
    directory = tmp_path / "cache"
    warm = LoadCache(directory)
    load_inventory(root, load_cache=warm)
    warm.store()
    path = root / "inventory" / "clusters" / "synthetic.yaml"
    text = path.read_text(encoding="utf-8")
    for broken in (
        text.replace("  cloud: ", "  clod: ", 1),
        text.replace("\n- name: ", "\n- name: x\n  name: ", 1),
        text.replace("  region: ", "  region: [", 1),
        text.replace("\n- name: ", "\n- name: 'open\n- name: ", 2),
        text.replace("minSize: 2", "minSize: two", 1),
    ):
        path.write_text(broken, encoding="utf-8")
        with pytest.raises(InventoryError) as without:
            load_inventory(root)
        with pytest.raises(InventoryError) as through:
            load_inventory(root, load_cache=LoadCache(directory))
        assert [str(p) for p in through.value.problems] == [str(p) for p in without.value.problems]


def test_renders_through_the_cache_are_byte_identical(tmp_path: Path) -> None:
    """After edits rendered through a warm cache, the output equals a render of the same fleet without caches."""
    warm, cold = tmp_path / "warm", tmp_path / "cold"
    names = make_fleet(REPO, warm, 4, seed=7)
    pipeline.render(warm, warm / "out")
    rng = random.Random(3)
    for name in rng.sample(names, 2):
        edit_one_cluster(warm, name)
        pipeline.render(warm, warm / "out")
    path = warm / "inventory" / "clusters" / "synthetic.yaml"
    data = _load(path)
    data["clusters"].insert(1, data["clusters"].pop())  # every item after the first moves
    path.write_text(dump_documents([data]), encoding="utf-8")
    pipeline.render(warm, warm / "out")
    shutil.copytree(warm, cold, ignore=shutil.ignore_patterns(".cache", "out"))
    pipeline.render(cold, cold / "out")
    warm_files = sorted(p.relative_to(warm / "out") for p in (warm / "out").rglob("*") if p.is_file())
    cold_files = sorted(p.relative_to(cold / "out") for p in (cold / "out").rglob("*") if p.is_file())
    assert warm_files == cold_files
    assert (warm / ".cache" / "fleetgen" / "plan" / "load" / "records.jsonl").is_file()  # the cache was used
    for rel in warm_files:
        assert (warm / "out" / rel).read_bytes() == (cold / "out" / rel).read_bytes(), rel


@pytest.mark.parametrize("line", [" x", " - y", " z: 1", " # c", " 'q'", "   w", " - ", " x:", "  x: 1", "  - z"])
def test_lines_out_of_step_with_indented_items_load_as_a_full_load(tmp_path: Path, line: str) -> None:
    """Items indented under their key, and a line less (or oddly) indented put at each place."""
    lines = ["clusters:", "  - name: a", "    v: 1", "  - name: b", "    t: |", "      x", "  - c", "  - - d"]
    lines.append("    - e")
    for at in range(1, len(lines) + 1):
        assert_like_full_load(tmp_path / "cache", "\n".join([*lines[:at], line, *lines[at:]]) + "\n")


def test_the_planner_memo_keys_do_not_depend_on_the_cache(tmp_path: Path) -> None:
    """Entries read from records share their keys' strings, entries parsed afresh do not: the planner memo's
    digests (pickles of the entries) are the same either way, so a render after an edit finds what it stored."""
    root = tmp_path / "fleet"
    make_fleet(REPO, root, 8)
    directory = tmp_path / "cache"
    first = LoadCache(directory)
    load_inventory(root, load_cache=first)
    first.store()
    fresh = Identities(resolve(load_inventory(root)))
    cached = Identities(resolve(load_inventory(root, load_cache=LoadCache(directory))))
    assert fresh.fleet_level is not None and fresh.fleet_level == cached.fleet_level
    names = [c.name for c in fresh.fleet.clusters]
    assert [fresh.cluster(n) for n in names] == [cached.cluster(n) for n in names]
    assert None not in [fresh.cluster(n) for n in names]
