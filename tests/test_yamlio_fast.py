"""The fast paths of yamlio (direct representer and constructor walks, the memoised resolver) give exactly what
PyYAML's generic SafeRepresenter/SafeConstructor give: same bytes out, same data in."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]
from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

from generator import yamlio


class _GenericLoader(yaml.CSafeLoader):  # type: ignore[misc,name-defined,unused-ignore]
    """PyYAML's generic loader with fleetgen's two extra constructors, no fast path."""


_GenericLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)
_GenericLoader.add_constructor("tag:yaml.org,2002:value", yaml.SafeLoader.construct_yaml_str)


class _GenericDumper(yaml.CSafeDumper):  # type: ignore[misc,name-defined,unused-ignore]
    """PyYAML's generic representer with fleetgen's str and dict representers, no fast path."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_GenericDumper.add_representer(str, lambda dumper, value: yamlio._represent_generic_str(dumper, value))
_GenericDumper.add_representer(
    dict, lambda dumper, value: dumper.represent_mapping("tag:yaml.org,2002:map", value.items())
)


def generic_load(text: str) -> list[Any]:
    return [doc for doc in yaml.load_all(text, Loader=_GenericLoader) if doc is not None]


def generic_dump(documents: list[Any], **options: Any) -> str:
    text: str = yaml.dump_all(documents, Dumper=_GenericDumper, sort_keys=False, allow_unicode=True, **options)
    return text


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


GOLDEN = sorted(p for p in (REPO / "golden").rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())

TRICKY = """\
plain: value
int: 0o17
octal11: 017
hex: 0x1F
sexagesimal: 1:30
float: 1.30
exp: 1e3
inf: -.inf
nan: .nan
words: [on, off, yes, no, y, n, ~, null, Null, true, False]
date: 2026-11-30
stamp: 2026-11-30T01:02:03Z
equals: =
base: &base {a: 1, b: [x, y]}
merged:
  <<: *base
  b: 2
again: *base
binary: !!binary aGVsbG8=
set: !!set {a, b}
str: !!str 123
block: |
  two
  lines
folded: >-
  folded
  text
quoted: "a\\tb\\u00e9"
dup: 1
dup: 2
"""


def test_golden_files_load_and_dump_like_the_generic_path() -> None:
    assert len(GOLDEN) > 100
    for path in GOLDEN:
        text = path.read_text(encoding="utf-8")
        fast, generic = yamlio.load_documents(text), generic_load(text)
        assert _same(fast, generic), path
        expected = generic_dump(generic, explicit_start=True, default_flow_style=False, width=4096)
        assert yamlio.dump_documents(fast) == expected, path


def test_tricky_documents_load_like_the_generic_path() -> None:
    fast, generic = yamlio.load_documents(TRICKY), generic_load(TRICKY)
    assert _same(fast, generic)
    assert fast[0]["again"] is fast[0]["base"]  # an alias stays one shared object
    assert fast[0]["merged"] == {"a": 1, "b": 2}
    recursive = yamlio.load_documents("a: &x [1, *x]\n")[0]["a"]
    assert recursive[1] is recursive


BROKEN = ["? [complex, key]\n: 1\n", "a: !custom x\n", "a: !!python/name:os.system\n", "a: [\n"]


@pytest.mark.parametrize("text", BROKEN)
def test_errors_are_the_generic_path_errors(text: str) -> None:
    with pytest.raises(yaml.YAMLError) as fast:
        yamlio.load_documents(text)
    with pytest.raises(yaml.YAMLError) as generic:
        generic_load(text)
    assert str(fast.value) == str(generic.value)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(),
    st.sampled_from(
        ["on", "No", "1.30", "0o17", "=", "<<", "~", "2026-01-01", "a: b", "- x", "#c", "'q'", "x\n", " x", "a\nb "]
    ),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(documents, min_size=1, max_size=3))
def test_arbitrary_data_dumps_and_loads_like_the_generic_path(docs: list[Any]) -> None:
    for flow in (False, True, None):
        options = {"explicit_start": True, "default_flow_style": flow, "width": 4096}
        fast = yaml.dump_all(docs, Dumper=yamlio._Dumper, sort_keys=False, allow_unicode=True, **options)
        assert fast == generic_dump(docs, **options)
    text = yamlio.dump_documents(docs)
    assert _same(yamlio.load_documents(text), generic_load(text))
    assert yamlio.dump_flow(docs) == yamlio.dump_flow(generic_load(yamlio.dump_documents([docs]))[0])


def test_the_dump_memo_tells_equal_values_of_other_types_apart() -> None:
    variants: list[Any] = [1, 1.0, True, "1", None, "", [1], {"1": 1}, -0.0, 0.0, 0, False]
    for value in variants * 2:  # the second round is served by the memo
        expected = generic_dump([{"v": value}], explicit_start=True, default_flow_style=False, width=4096)
        assert yamlio.dump_documents([{"v": value}]) == expected


def _libyaml_dump(docs: list[Any]) -> str:
    text: str = yaml.dump_all(
        docs,
        Dumper=yamlio._Dumper,
        explicit_start=True,
        default_flow_style=False,
        sort_keys=False,
        width=4096,
        allow_unicode=True,
    )
    return text


def test_fast_emitter_writes_libyaml_bytes_on_golden_and_synthetic_files(tmp_path: Path) -> None:
    from generator.bench import make_fleet
    from generator.render.pipeline import plan

    emitter = yamlio._fast_emitter()
    make_fleet(REPO, tmp_path / "fleet", 30)
    texts = [p.read_text(encoding="utf-8") for p in GOLDEN]
    texts += [t for p, t in plan(tmp_path / "fleet").files.items() if p.endswith((".yaml", ".yml"))]
    covered = 0
    for text in texts:
        try:
            docs = yamlio.load_documents(text)
        except yaml.YAMLError:
            continue  # a Helm chart template, not YAML
        fast = emitter.dump(docs)
        if fast is not None:
            covered += 1
            assert fast == _libyaml_dump(docs), text[:200]
    assert covered > len(texts) * 3 // 4  # the fast path is the common path


EMITTER_CASES: list[Any] = [  # the fast path writes these
    {"a": "x: y", "b": "x:y", "c": "#x", "d": "x #y", "e": "x#y", "f": "-x", "g": "- x", "h": "-", "i": "?x", "j": ":"},
    {"k": "---x", "l": "...", "m": " x", "n": "x ", "o": "'", "p": '"', "q": "a'b", "r": "${x}", "s": "*.x", "t": "@x"},
    {"u": "on", "v": "1.30", "w": "0x1F", "x": "2026-01-01", "y": "=", "z": "<<", "aa": "~", "ac": "[x]", "ad": "a:"},
    {"lit": "a\nb\n", "lit2": "a\n\nb", "lit3": "a\n  b\n", "lit7": [{"x": "a\nb"}, "c\nd"]},
    [{"a": [{"b": {"c": [1, [2, [3, {}]], []]}}]}, ["x\ny", {"k": "v"}], [[["z"]]]],
    {"t": True, "f": False, "n": None, "i": -3, "big": 10**30, "e": {}, "l": []},
    {"on": 1, "1": 2, "a b": 3, "a: b": 4, "'q'": 5},
    {"empty": "", "": "empty key", "list": ["", {"": ""}]},
]
UNSUPPORTED: list[Any] = [  # left to libyaml
    {"lit4": " a\nb"},
    {"lit5": "a\n\n"},
    {"lit6": "a \nb"},
    {"float": 1.5},
    {"long": "x" * 1001},
    {"key" * 40: 1},
    {"é": "ü"},
    {"tab": "a\tb"},
    {1: "int key"},
    "root scalar",
    {},
]


@pytest.mark.parametrize("document", EMITTER_CASES)
def test_fast_emitter_cases(document: Any) -> None:
    assert yamlio._fast_emitter().dump([document]) == _libyaml_dump([document])
    assert yamlio.dump_documents([document]) == _libyaml_dump([document])


@pytest.mark.parametrize("document", UNSUPPORTED)
def test_fast_emitter_leaves_the_rest_to_libyaml(document: Any) -> None:
    assert yamlio._fast_emitter().dump([document]) is None
    assert yamlio.dump_documents([document]) == _libyaml_dump([document])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(documents, min_size=1, max_size=3))
def test_fast_emitter_on_arbitrary_data(docs: list[Any]) -> None:
    fast = yamlio._fast_emitter().dump(docs)
    if fast is not None:
        assert fast == _libyaml_dump(docs)
