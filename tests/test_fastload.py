"""The fast inventory loader (generator/fastload.py) gives exactly what ruamel gives: the same values (types
included), the same file:line:column of every key and item, the same written literals and ambiguous booleans;
and it leaves every case it does not handle (all errors included) to ruamel."""

from __future__ import annotations

import gc
import math
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]
from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.bench import make_fleet
from generator.errors import InventoryError
from generator.fastload import collector_paused, fast_load, one_pass_load
from generator.guard import MAX_DEPTH, MAX_NODES, prescan_yaml
from generator.yamlio import dump_documents, load_text, ruamel_load_text
from generator.yamlsource import LoadedFile


def _same(a: Any, b: Any) -> bool:
    """Equal including types (1 vs 1.0 vs True) and NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def assert_one_pass_like_fast(text: str, display: str = "f.yaml") -> LoadedFile | None:
    """Wherever the one-pass reader answers, the guard's scan passes and the composer path answers the same."""
    quick = one_pass_load(text, display)
    if quick is None:
        return None
    prescan_yaml(text, display)  # raises if the one pass let through what the guard refuses
    fast = fast_load(text, display)
    assert fast is not None, display
    assert _same(quick.data, fast.data), display
    assert quick.positions == fast.positions and list(quick.positions) == list(fast.positions), display
    assert quick.literals == fast.literals, display
    assert quick.ambiguous == fast.ambiguous, display
    # lookups (the marks tree walked, not the dict): every path, and paths that are not there
    probes = [*fast.positions, (0,), ("0",), (-1,), (True,), (1.0,), ("missing",), ((),)]
    for path in list(fast.positions):
        probes += [(*path, "missing"), (*path, 0), (*path, -1), (*path, "0"), (*path, 99), (*path, 0, "x")]
    for path in probes:
        assert quick.positions.get(path) == fast.positions.get(path), (display, path)
        assert (path in quick.positions) == (path in fast.positions), (display, path)
        assert quick.position(path) == fast.position(path), (display, path)
    return quick


def assert_like_ruamel(text: str, display: str = "f.yaml") -> LoadedFile | None:
    """The fast result equals ruamel's wherever the fast path answers; returns it (None: left to ruamel). The
    one-pass reader, wherever it answers, equals the fast path."""
    assert_one_pass_like_fast(text, display)
    fast = fast_load(text, display)
    if fast is None:
        assert one_pass_load(text, display) is None, display
        return None
    reference = ruamel_load_text(text, display)
    assert _same(fast.data, reference.data), display
    assert fast.positions == reference.positions, display
    assert fast.literals == reference.literals, display
    assert fast.ambiguous == reference.ambiguous, display
    return fast


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())


@pytest.mark.parametrize("fleet", [REPO, REPO / "template"], ids=["reference", "template"])
def test_every_inventory_file_reads_like_ruamel_on_the_fast_path(fleet: Path) -> None:
    """No inventory or overlay file needs ruamel to load (components.yaml has anchors and aliases)."""
    files = _yaml_files(fleet / "inventory") + _yaml_files(fleet / "overlays")
    assert any(path.name == "components.yaml" for path in files)
    slow = [path for path in files if assert_like_ruamel(path.read_text(encoding="utf-8"), path.name) is None]
    assert slow == []


def test_synthetic_fleet_reads_like_ruamel(tmp_path: Path) -> None:
    make_fleet(REPO, tmp_path / "fleet", 60)
    files = _yaml_files(tmp_path / "fleet/inventory") + _yaml_files(tmp_path / "fleet/overlays")
    assert [path for path in files if assert_like_ruamel(path.read_text(encoding="utf-8")) is None] == []


def _bad_input_texts() -> list[tuple[Path, str]]:
    """Every readable YAML file of tests/bad_inputs but the case descriptions, with its text."""
    texts = []
    for path in _yaml_files(REPO / "tests" / "bad_inputs"):
        if path.name == "case.yaml":
            continue
        try:
            texts.append((path, path.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, OSError):
            continue
    return texts


def test_bad_inputs_read_like_ruamel() -> None:
    texts = _bad_input_texts()
    assert texts
    for path, text in texts:
        try:
            assert_like_ruamel(text, path.name)
        except RecursionError:
            continue  # nesting the guard refuses before either loader runs


CASES = [
    "a: 1\nb: 1.30\nc: on\nd: [yes, 'no', \"off\"]\ne: 0o17\nf: 017\ng: 1_000\nh: 0x1F\ni: .inf\nj: 2026-11-30\n",
    "k: 1e3\nl: -.5\nm: true\nn: True\no: null\np: NULL\nq: 1:30\nr: 10.0.0.0/20\ns: =x\n",
    "list:\n- name: a\n  v: 1\n-   name: b\n- [1, 2.50, on]\n- {x: y, z: 3}\n",
    "folded: >\n  a\n  b\nliteral: |-\n  x\nplain: a\n  continued\n'quoted key': 1\n\"dq\": 2\n",
    "é: ü\nemoji: 😀 text\nlong:     spaced   # comment\n# only a comment\n",
    "a: 1\na: 2\n",  # duplicate: ruamel's error
    "a:\nb: ~\n",  # empty value
    "1: x\n",
    "a: !!str 1\n",
    "--- a\n--- b\n",
    "a: [1,\n",
    "a: '\\t'\n",
    "",
    "# comment only\n",
    "[1, 2]\n",
    "just a string\n",
    "long: [" + ", ".join(f"{i}.50" for i in range(80)) + ", on]\n",  # a line past the literal memo's length
]


@pytest.mark.parametrize("text", CASES)
def test_cases_read_like_ruamel(text: str) -> None:
    assert_like_ruamel(text)


keys = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=6)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(st.characters(codec="utf-8"), max_size=10),
    st.sampled_from(["on", "No", "1.30", "0o17", "=", "~", "2026-01-01", "1:30", "10.0.0.0/8", "x y", "a\nb"]),
)
data = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=16,
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.dictionaries(keys, data, min_size=1, max_size=4))
def test_arbitrary_documents_read_like_ruamel(document: dict[str, Any]) -> None:
    text = dump_documents([document]).removeprefix("---\n")
    assert_like_ruamel(text)
    # the unquoted form of the same values (what people write): every scalar plain where YAML allows it
    assert_like_ruamel(text.replace("'", ""))


#: Anchors, aliases and merge keys the fast path reads itself (each compared with ruamel).
ANCHOR_CASES = {
    "scalar aliases": "a: &x 1\nb: *x\nc: &f 1.50\nd: *f\ne: &d 2026-01-02\nf: *d\ng: &n ~\nh: *n\n",
    "anchored booleans": "a: &t true\nb: *t\nc: [&f false, *f]\n",
    "anchored YAML 1.1 words": "a: {b: &c yes}\nd: *c\ne: &q 'no'\nf: *q\n",
    "sequence aliases": "l: &l [1, 2, on]\nm: *l\nn: [*l, *l]\n",
    "aliased items": "s:\n  - &m {k: 1}\n  - *m\n  - &q\n    z: 1\n  - *q\n",
    "anchored key": "&k key: 1\nother: *k\n",
    "merge": "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n  z: 4\n",
    "merge list, first wins": "b1: &b1 {x: 1, y: 2}\nb2: &b2 {y: 5, w: 6}\nm:\n  z: 0\n  <<: [*b1, *b2]\n  x: 9\n",
    "merged nested values": "b1: &b1\n  x: 1\n  y:\n    q: 1\nm: {<<: *b1}\n",
    "own key before the merge wins": "m:\n  a: 1\n  <<: {a: 2, b: 3}\n",
    "nested merges": "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: &c {<<: *b, z: 3}\nd: {<<: [*c, *a], w: 4}\n",
    "merge in a merge source": "a: &a {x: 1, <<: {y: 2}}\nb:\n  <<: *a\n  c: 3\nd:\n  e:\n    <<: [*a, {z: 1, x: 5}]\n",
    "merges in list items": "- &x {a: 1}\n- <<: *x\n  b: 2\n- {<<: *x}\n",
    "merged alias value": "a: &a 1\nb: {<<: {x: *a}}\n",
    "quoted << is a key": '"<<": 1\nb: 2\n',
    "merged list value": "base: &base\n  name: x\n  list: [a, b]\nitems:\n  - <<: *base\n    name: y\n  - <<: *base\n",
    "alias of an inner anchor": "a: &a {b: &bb {c: 1}}\nd: *bb\n",
    "escapes": 'x: "tab\\there"\ny: "a\\\\b \\"q\\" \\/ \\x41 \\u00e9 \\N \\_ \\L \\P \\e \\0"\nz: \'back\\slash\'\n'
    'w: plain\\text\nv: "line\\\n  folded"\n',
}


@pytest.mark.parametrize("text", ANCHOR_CASES.values(), ids=ANCHOR_CASES.keys())
def test_anchors_aliases_and_merges_read_like_ruamel_on_the_fast_path(text: str) -> None:
    assert assert_like_ruamel(text) is not None


def test_an_aliased_value_reports_its_anchor() -> None:
    """Positions through an alias (ruamel's, kept): the key that holds the alias is where it is written; keys and
    items inside the aliased value, a sequence item that is an alias, and a scalar's written text are the
    anchor's; a merged key has no position of its own and reports its mapping's."""
    text = "base: &b\n  port: &p 8080\n  list: [&i x]\nuse:\n  port: *p\n  copy: *b\n  items: [y, *i]\nm:\n  <<: *b\n"
    loaded = fast_load(text, "f.yaml")
    assert loaded is not None
    at = {".".join(map(str, path)): (pos.line, pos.column) for path, pos in loaded.positions.items()}
    assert at["use.port"] == (5, 3) and loaded.literals[("use", "port")] == "&p 8080"
    assert at["use.copy"] == (6, 3) and at["use.copy.port"] == (2, 3)
    assert at["use.items.1"] == (3, 10)
    assert at["m.port"] == at["m.list"] == (8, 1) and at["m.list.0"] == (3, 10)
    assert loaded.data["m"] == {"port": 8080, "list": ["x"]}
    assert assert_like_ruamel(text) is not None


def test_anchored_scalars_keep_their_meaning() -> None:
    """An anchor changes nothing: ``&t true`` is the boolean (ruamel's ScalarBoolean is an int), ``&w yes`` is as
    ambiguous as ``yes``."""
    for read in (fast_load, ruamel_load_text):
        loaded = read("a: &t true\nb: *t\nc: &w yes\n", "f.yaml")
        assert loaded is not None
        assert _same(loaded.data, {"a": True, "b": True, "c": "yes"})
        assert loaded.ambiguous == (("c",),)


#: What ruamel refuses or reads its own way: the fast path leaves these to it, and the load's answer is ruamel's.
LEFT_TO_RUAMEL = {
    "duplicate key": "a: 1\na: 2\n",
    "duplicate key around a merge": "a: &a {k: 1}\nb: {k: 2, <<: *a, k: 3}\n",
    "duplicate merge key": "m:\n  <<: &z {a: 1}\n  <<: {b: 2}\n",
    "merge of a scalar": "m:\n  <<: 1\n",
    "merge of a list of scalars": "m:\n  <<: [1]\n",
    "empty merge list": "m:\n  <<: []\n",
    "recursive alias": "a: &a [*a]\n",
    "recursive mapping": "a: &a\n  b: *a\n",
    "explicit key": "? a\n: b\n",
}


@pytest.mark.parametrize("text", LEFT_TO_RUAMEL.values(), ids=LEFT_TO_RUAMEL.keys())
def test_what_ruamel_refuses_is_left_to_it(text: str) -> None:
    assert fast_load(text, "f.yaml") is None
    try:
        expected: Any = ruamel_load_text(text, "f.yaml")
    except InventoryError as exc:
        expected = exc.problems
    try:
        got: Any = load_text(text, "f.yaml")
    except InventoryError as exc:
        got = exc.problems
    assert repr(got) == repr(expected)


def test_a_syntax_error_is_left_to_ruamel() -> None:
    """(Through ``load_text`` the guard's scan reports it first.)"""
    assert fast_load('x: "\\q"\n', "f.yaml") is None


def test_an_alias_bomb_is_not_expanded_by_the_fast_path() -> None:
    """Called without the guard, the fast path still stops at the guard's node budget."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    assert fast_load("\n".join(lines) + "\n", "f.yaml") is None


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(st.dictionaries(keys, data, min_size=1, max_size=3), min_size=1, max_size=3), st.data())
def test_arbitrary_anchors_and_merges_read_like_ruamel(sources: list[dict[str, Any]], draw: st.DataObject) -> None:
    """Anchored mappings used through aliases, merges and merge lists, with own keys overriding some of theirs."""
    lines = ["anchors:"]
    for index, source in enumerate(sources):
        body = dump_documents([source]).removeprefix("---\n")
        lines.append(f"  a{index}: &a{index}")
        lines += [f"    {line}" for line in body.splitlines()]
    names = [f"*a{index}" for index in range(len(sources))]
    merged = draw.draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    own = draw.draw(st.dictionaries(st.sampled_from([k for s in sources for k in s] + ["extra"]), scalars, max_size=3))
    lines += ["use:", f"  alias: {names[0]}", f"  items: [{', '.join(names)}]", "  merged:"]
    lines.append(f"    <<: {merged[0] if len(merged) == 1 else '[' + ', '.join(merged) + ']'}")
    own_text = dump_documents([own]).removeprefix("---\n") if own else ""
    lines += [f"    {line}" for line in own_text.splitlines() if line != "{}"]
    text = "\n".join(lines) + "\n"
    assert_like_ruamel(text)
    assert_like_ruamel(text.replace("'", ""))


def test_the_collector_pause_ends_with_the_load_and_keeps_an_outer_pause() -> None:
    assert gc.isenabled()
    with pytest.raises(InventoryError):
        load_text("a: [1,\n", "f.yaml")
    assert gc.isenabled()
    with collector_paused():
        assert fast_load("a: 1\n", "f.yaml") is not None
        assert not gc.isenabled()  # the inner pause did not end the outer one
    assert gc.isenabled()


def _reference_load(text: str) -> Any:
    """What ``load_text`` answered before the one pass: the guard's scan, then the composer path, then ruamel
    (the loaded file, or the problems raised)."""
    try:
        prescan_yaml(text, "f.yaml")
        loaded = fast_load(text, "f.yaml") or ruamel_load_text(text, "f.yaml")
    except InventoryError as exc:
        return exc.problems
    return (loaded.data, loaded.positions, loaded.literals, loaded.ambiguous)


def _load(text: str) -> Any:
    try:
        loaded = load_text(text, "f.yaml")
    except InventoryError as exc:
        return exc.problems
    return (loaded.data, loaded.positions, loaded.literals, loaded.ambiguous)


def test_plain_fleet_files_take_the_one_pass(tmp_path: Path) -> None:
    """Every inventory file without anchors (the synthetic fleet's 1000-cluster file among them) is read in one
    pass; a file with anchors and aliases (the reference components.yaml) takes the guard's scan and the composer."""
    make_fleet(REPO, tmp_path / "fleet", 30)
    files = _yaml_files(tmp_path / "fleet/inventory") + _yaml_files(tmp_path / "fleet/overlays")
    files += _yaml_files(REPO / "inventory") + _yaml_files(REPO / "overlays")
    for path in files:
        text = path.read_text(encoding="utf-8")
        anchored = "&" in text and "*" in text
        assert (assert_one_pass_like_fast(text, path.name) is None) == anchored, path


def test_the_one_pass_leaves_what_the_guard_refuses_to_it() -> None:
    """At the guard's depth and node limits the one pass answers; one past them it leaves the text to the guard's
    scan, whose message ``load_text`` gives; input far deeper than the limit stops at it, without recursion."""
    deepest = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert assert_one_pass_like_fast(deepest) is not None
    too_deep = "x: " + deepest
    assert one_pass_load(too_deep, "f.yaml") is None
    assert _load(too_deep) == _reference_load(too_deep)
    assert "nested more than 100 levels" in str(_load(too_deep))
    assert one_pass_load("- " * 200_000 + "x\n", "f.yaml") is None
    widest = "[" + ", ".join(["x"] * (MAX_NODES - 1)) + "]"  # the list and its items: MAX_NODES nodes
    assert one_pass_load(widest, "f.yaml") is not None
    prescan_yaml(widest, "f.yaml")
    too_wide = "[" + ", ".join(["x"] * MAX_NODES) + "]"
    assert one_pass_load(too_wide, "f.yaml") is None
    assert _load(too_wide) == _reference_load(too_wide)
    assert "past 250000 nodes" in str(_load(too_wide))


#: Texts each error path of the guard and the readers answers; ``load_text`` must answer each as before.
ERRORS = [
    "a: [1,\n",
    "a: 'open\n",
    "a: b: c\n",
    "a:\n  - 1\n  b: 2\n",
    "x: \x07\n",
    "a: !!python/object:os.system x\n",
    "a: !custom x\n",
    "a: &a [1]\nb: *nope\n",
    "a: 1\na: 2\n",
    "--- a\n--- b\n",
    "a:\n\tb: 1\n",
    "{a: 1}\n{b: 2}\n",
    "a: [" * 60 + "]" * 60 + "\n",
    "[" * 1200 + "]" * 1200 + "\n",
]


@pytest.mark.parametrize("text", ERRORS)
def test_errors_are_those_of_the_guard_and_the_readers(text: str) -> None:
    assert _load(text) == _reference_load(text)


def test_bad_inputs_load_as_before() -> None:
    """Every bad-input file: ``load_text`` gives what the guard's scan and the readers gave (values or problems)."""
    for path, text in _bad_input_texts():
        try:
            expected = _reference_load(text)
        except RecursionError:
            continue
        assert repr(_load(text)) == repr(expected), path


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.dictionaries(keys, data, min_size=1, max_size=4), st.integers(0, 3))
def test_arbitrary_documents_load_as_before(document: dict[str, Any], flow: int) -> None:
    """Block and flow styles, quoted and unquoted: ``load_text`` answers as the guard's scan and the readers did."""
    text = dump_documents([document]).removeprefix("---\n")
    if flow == 1:
        text = text.replace("'", "")
    elif flow >= 2:
        text = yaml.safe_dump(document, default_flow_style=True, width=40 if flow == 3 else 10_000)
    assert repr(_load(text)) == repr(_reference_load(text))
