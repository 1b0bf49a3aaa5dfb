"""The fast inventory loader (generator/fastload.py) gives exactly what ruamel gives: the same values (types
included), the same file:line:column of every key and item, the same written literals and ambiguous booleans;
and it leaves every case it does not handle (all errors included) to ruamel."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.bench import make_fleet
from generator.fastload import fast_load
from generator.yamlio import dump_documents, ruamel_load_text
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


def assert_like_ruamel(text: str, display: str = "f.yaml") -> LoadedFile | None:
    """The fast result equals ruamel's wherever the fast path answers; returns it (None: left to ruamel)."""
    fast = fast_load(text, display)
    if fast is None:
        return None
    reference = ruamel_load_text(text, display)
    assert _same(fast.data, reference.data), display
    assert fast.positions == reference.positions, display
    assert fast.literals == reference.literals, display
    assert fast.ambiguous == reference.ambiguous, display
    return fast


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())


def test_reference_fleet_reads_like_ruamel() -> None:
    files = _yaml_files(REPO / "inventory") + _yaml_files(REPO / "overlays")
    fast = [path for path in files if assert_like_ruamel(path.read_text(encoding="utf-8"), path.name) is not None]
    assert any("clusters" in path.parts for path in fast)  # the bulk of a fleet takes the fast path
    assert len(fast) >= len(files) // 2


def test_synthetic_fleet_reads_like_ruamel(tmp_path: Path) -> None:
    make_fleet(REPO, tmp_path / "fleet", 60)
    text = (tmp_path / "fleet/inventory/clusters/synthetic.yaml").read_text(encoding="utf-8")
    assert assert_like_ruamel(text) is not None


def test_bad_inputs_read_like_ruamel() -> None:
    cases = REPO / "tests" / "bad_inputs"
    files = [p for p in _yaml_files(cases) if p.name != "case.yaml"]
    assert files
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
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
    "a: &x 1\nb: *x\n",
    "a: !!str 1\n",
    "--- a\n--- b\n",
    "a: [1,\n",
    "a: '\\t'\n",
    "",
    "# comment only\n",
    "[1, 2]\n",
    "just a string\n",
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
