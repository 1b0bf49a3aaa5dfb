"""The template reader (generator/templateyaml.py) gives exactly what ``yamlio.load_documents`` gives: the same
documents, types and key order, and the same error for invalid text, on every template output of the reference
fleet and of a synthetic fleet, on hand-made edge cases and on generated template-like texts. Each test also
checks the fast path itself ran (not only the libyaml fallback), so a broken fast path cannot pass unseen."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]
from conftest import REPO
from hypothesis import example, given, settings
from hypothesis import strategies as st

from generator import templateyaml
from generator.render import planner
from generator.render.planner import TemplateError, _finalize
from generator.yamlio import dump_flow, load_documents


def same(a: Any, b: Any) -> bool:
    """Equal including types (1, 1.0, True, "1"), key order, NaN and -0.0."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return list(a) == list(b) and all(same(x, y) for x, y in zip(a, b, strict=True)) and all(
            same(a[k], b[k]) for k in a
        )
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is float:
        return repr(a) == repr(b) or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


def outcome(read: Callable[[str], list[Any]], text: str) -> tuple[Any, ...]:
    """("ok", documents) or ("error", exception type, message)."""
    try:
        return ("ok", read(text))
    except Exception as exc:  # any exception: it must be the reference's own
        return ("error", type(exc), str(exc))


def fast_path(text: str) -> bool:
    """Whether the text is read without libyaml (the fast path ran to its end)."""
    if templateyaml._OUTSIDE.search(text):
        return False
    try:
        templateyaml._parse(text)
    except templateyaml._Fallback:
        return False
    return True


def assert_reads_like_libyaml(text: str) -> None:
    fast, reference = outcome(templateyaml.load_template_documents, text), outcome(load_documents, text)
    if reference[0] == "ok":
        assert fast[0] == "ok" and same(fast[1], reference[1]), text
    else:
        assert fast == reference, text


def _rendered_texts(root: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(template, rendered text) of every ``Planner.add_template`` call of a plan of the fleet at ``root``."""
    from generator.render.pipeline import plan

    seen: list[tuple[str, str]] = []
    add_template = planner.Planner.add_template

    def recording(self: planner.Planner, path: str, template: str, sources: Any, **context: Any) -> None:
        seen.append((template, self.env.get_template(template).render(**context)))
        add_template(self, path, template, sources, **context)

    monkeypatch.setattr(planner.Planner, "add_template", recording)
    plan(root, jobs=1)  # in this process: forked workers' calls would not be recorded here
    return seen


#: A block scalar (``key: |-``, ``- >``): outside the dialect, read by libyaml (the policies' CEL expressions).
_BLOCK_SCALAR = re.compile(r"(?:^|: |- )[|>][-+0-9]*[ \t]*$", re.M)


def _assert_corpus(texts: list[tuple[str, str]]) -> None:
    for template, text in texts:
        assert_reads_like_libyaml(text)
        if template.startswith("fleet/") or not _BLOCK_SCALAR.search(text):
            # the fleet templates are all in the dialect, and so is every output without a block scalar
            assert fast_path(text), template


def test_every_template_output_of_the_reference_fleet(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _rendered_texts(REPO, monkeypatch)
    assert {t for t, _ in texts} >= {"fleet/notifications.yaml.j2", "fleet/tenant.yaml.j2", "fleet/apps.yaml.j2"}
    _assert_corpus(texts)


def test_every_template_output_of_a_synthetic_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from generator.bench import make_fleet

    make_fleet(REPO, tmp_path / "fleet", 40)
    texts = _rendered_texts(tmp_path / "fleet", monkeypatch)
    assert len(texts) > 200
    _assert_corpus(texts)


#: Plain scalars of every YAML 1.1 family PyYAML resolves (and near misses that stay strings).
PLAIN = [
    "yes", "Yes", "YES", "no", "No", "NO", "y", "Y", "n", "N", "true", "True", "TRUE", "false", "False", "FALSE",
    "on", "On", "ON", "off", "Off", "OFF", "~", "null", "Null", "NULL", "nULL", "tRUE",
    "0", "-0", "+0", "12", "-12", "+12", "1_000", "0b1010", "-0b11", "0x1f", "0x1F", "-0xA", "017", "0o17", "08",
    "1:30", "-1:30:00", "190:20:30", "1.5", "-1.5", "+1.5", "1.", ".5", "1e+16", "1e16", "1E+16", "1.5e+16",
    "1.5e-07", "1.5E3", "6.8523015e+5", "685.230_15e+03", "190:20:30.15", ".inf", "-.inf", "+.Inf", ".INF",
    ".nan", ".NaN", ".NAN", "NaN", "Infinity", "2026-11-30", "2026-1-3", "2026-11-30T01:02:03Z",
    "2026-11-30 01:02:03.5 +01:00", "2026-11-30t01:02:03-05:00", "=", "a=b", "1.2.3", "v1", "1-2", "0x", "0b",
    "12abc", "x y z", "it's", "a#b", "a:b", "http://x:80/y?z#w", "*a", "!", "&", "%x", "@x", "`x`", "|", ">",
    "a # comment", "'single'", "'it''s'", "''", '""', '"a\\x41\\e\\N\\_\\L\\P\\U0001F600\\ \\0\\a\\v"',
    '"\\/"', '"\\ud83d\\ude00"', '"\\ud800"', '"a" # comment', "[1, 1e+16, .inf, yes, 0x10]", "{a: 1, b: [on]}",
    '{"a": 1e+16, "b": 1.5, "c": -0.0, "d": NaN}', '["x", 1, true, null, 1.5e+300, 1E400]', '{"a": 1} # c',
    '["\\ud83d\\ude00"]', '{"\\ud800": 1}', '["\\/", "\\\\ud800"]', "[]", "{}", "[[]]", '{"": {"": []}}',
    "-1", "- x", "-", "? x", ": x", ",x", "]", "}", "#x", "[unclosed",
]


@pytest.mark.parametrize("value", PLAIN)
def test_scalar_families_as_values_items_and_keys(value: str) -> None:
    for text in (
        f"k: {value}\n",
        f"- {value}\n",
        f"a:\n  - {value}\n  -   {value}\nb: {value}\n",
        f"{value}: 1\n",
        f"- {value}: x\n  other: {value}\n",
    ):
        assert_reads_like_libyaml(text)


def test_plain_families_take_the_fast_path() -> None:
    readable = [v for v in PLAIN if v[0] not in "&*!|>%@`#?:,]}-" and v != "[unclosed"]
    for value in readable:
        text = f"k: {value}\n"
        if outcome(load_documents, text)[0] == "ok":
            assert fast_path(text), value


def _finalized_strings() -> list[str]:
    """Every character up to U+3100 and the special ones above, through ``_finalize`` (the template escaping)."""
    chars = [chr(c) for c in range(0x3100) if not 0xD800 <= c < 0xE000]
    chars += ["\ufeff", "\ufffd", "\ufffe", "\uffff", "\U0001f600", "\U0010fffd", "\u2028\u2029\x85"]
    return [_finalize("".join(chars[i : i + 40])) for i in range(0, len(chars), 40)]


def test_finalized_strings_with_every_character() -> None:
    values = _finalized_strings()
    text = "".join(f"k{i}: {v}\n" for i, v in enumerate(values))
    assert_reads_like_libyaml(text)
    # every character _finalize leaves raw is one the fast path reads, but a BOM (libyaml skips one at a line start)
    assert fast_path("".join(f"k{i}: {v}\n" for i, v in enumerate(values) if "\ufeff" not in v))
    for value in values:
        assert_reads_like_libyaml(f"- {value}\n")
        flow = f"k: {_finalize({'x': [json.loads(value)], json.loads(value)[:10]: 1})}\n"
        assert_reads_like_libyaml(flow)


@pytest.mark.parametrize(
    "raw",
    ["\x85", "\u2028", "\u2029", "\t", "\r", "\ufeff", "\x00", "\x7f", "\x9f", "\ufffe", "\ud800", "\x1b"],
)
def test_characters_libyaml_refuses_or_breaks_on_go_to_libyaml(raw: str) -> None:
    for text in (f"k: a{raw}b\n", f'k: "a{raw}b"\n', f"k{raw}: v\n", f"k: v\n{raw}\n", f"# {raw}\nk: v\n"):
        assert not fast_path(text)
        assert_reads_like_libyaml(text)
    escaped = f"k: {_finalize('a' + raw + 'b')}\n"
    assert_reads_like_libyaml(escaped)


STRUCTURES = [
    "",
    "\n\n",
    "---\n",
    "---\n---\n---\n",
    "# only a comment\n",
    "---\n# c\n---\na: 1\n---\n",
    "a: 1\n---\nb: 2\n",
    "a:\nb:\n  c:\n",
    "a:\n# comment\n  b: 1\n   # odd comment\n  c: 2\n",
    "a:\n- 1\n- 2\nb: 3\n",
    "a:\n  - 1\n  - x: 1\n    y:\n    - 2\n    z: 3\n",
    "- a\n-\n- - b\n",
    "-\n  a: 1\n-\n- c\n",
    "-   a: 1\n    b: 2\n-   c: 3\n",
    "a: 1\na: 2\nb: 3\na:\n  x: 1\n",
    "a: 1\n  b: 2\n",
    "a: 1\n b: 2\n",
    "a:\n  b: 1\n c: 2\n",
    "a:\n    b: 1\n  c: 2\n",
    "a: x\n  continued\n",
    "- x\n  continued\n",
    "a:\n  x\n",
    "a:\n- 1\n- 2\n- 3\nc: 4\n- 5\n",
    "- 1\nb: 2\n",
    "a: 1\n- 2\n",
    "  a: 1\n  b: 2\n",
    "  a: 1\nb: 2\n",
    "root scalar\n",
    "a: 1\n...\n",
    "%YAML 1.1\n---\na: 1\n",
    "--- a: 1\n",
    "a: |\n  x\n",
    "a: >-\n  x\n  y\n",
    "a: &x 1\nb: *x\n",
    "a: !!str 1\n",
    "? a\n: 1\n",
    "a: [1,\n  2]\n",
    'a: "x\n  y"\n',
    "a: 'x\n  y'\n",
    "a:b: 1\n",
    "a : 1\n",
    '"a": 1\n"a:": 2\n"#": 3\n',
    "a: 1 # comment\nb: # comment\n  c: 1\n",
    "a:   spaced   \nb:    \n",
    "a: 1   \n- 2\n",
    "deep:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 60)) + "  " * 60 + "end: 1\n",
    "deep: " + "[" * 40 + "]" * 40 + "\n",
    "deep: " + json.dumps(json.loads("[" * 40 + "1" + "]" * 40)) + "\n",
    "- " * 1 + "\n".join("  " * i + "- " + "x" for i in range(1, 3)) + "\n",
]


@pytest.mark.parametrize("text", STRUCTURES)
def test_hand_made_structures(text: str) -> None:
    assert_reads_like_libyaml(text)


def test_indentless_and_nested_structures_take_the_fast_path() -> None:
    for text in STRUCTURES[:11] + STRUCTURES[12:15]:
        assert fast_path(text), text


@pytest.mark.parametrize("length", [150, 160, 161, 169, 170, 200, 201, 340, 1020, 1021, 1022, 1023, 1024, 1025, 1030])
def test_keys_about_libyamls_simple_key_limit(length: int) -> None:
    for char in ("a", "\u20ac", "\U0001f600", "\n", "\x01"):
        key = (char * length)[:length]
        assert_reads_like_libyaml(f"{_finalize(key)}: 1\n")
        assert_reads_like_libyaml(f"k: {_finalize({key: 1, 'b': [{key: key}]})}\n")
        assert_reads_like_libyaml(f"- {_finalize(key)}: 1\n")
        if char == "a":
            assert_reads_like_libyaml(f"{key}: 1\n")
    assert_reads_like_libyaml(f"k: {_finalize('x' * 5000)}\n- x\n")


def test_flow_values_json_reads_otherwise_go_to_libyaml() -> None:
    for value in ({"a": 1e16}, [1.5e-7, 1e300, -0.0, 2.5], {"x": math.inf, "y": [-math.inf]}):
        text = f"k: {_finalize(value)}\n"
        assert_reads_like_libyaml(text)
    assert templateyaml.load_template_documents(f"k: {_finalize({'a': 1e16})}\n") == [{"k": {"a": "1e+16"}}]
    assert dump_flow(math.nan) == ".nan"
    assert same(templateyaml.load_template_documents("k: [.nan, 1.5]\n")[0]["k"][1], 1.5)


def test_flow_values_are_new_objects_each_time() -> None:
    text = 'a: {"x": [1]}\nb: {"x": [1]}\n'
    first, second = templateyaml.load_template_documents(text), templateyaml.load_template_documents(text)
    assert first[0]["a"] is not first[0]["b"] and first[0]["a"] is not second[0]["a"]
    first[0]["a"]["x"].append(2)
    assert templateyaml.load_template_documents(text)[0]["a"] == {"x": [1]}


def test_invalid_template_output_is_a_template_error() -> None:
    env = planner.environment()
    env.loader = jinja2.DictLoader(
        {"bad.yaml.j2": "a: 1\n b: {{ value }}\n", "flow.yaml.j2": "a: [{{ value }}\n", "ok.yaml.j2": "a: {{ value }}"}
    )
    plan = planner.Planner(env)
    for template in ("bad.yaml.j2", "flow.yaml.j2"):
        with pytest.raises(TemplateError, match=f"template {template} rendered invalid YAML"):
            plan.add_template(template, template, ["x"], value="v")
    plan.add_template("ok.yaml", "ok.yaml.j2", ["x"], value="a: b\n- c #d")
    assert plan.files["ok.yaml"].endswith("---\na: |-\n  a: b\n  - c #d\n")


# generated template-like texts: nested data written the way templates write it (block or JSON flow, indented or
# indentless sequences, extra spaces after a dash, comments and blank lines anywhere, plain words of every
# family), then mutated (a line's indentation shifted, a line dropped or repeated) to reach the error paths

keys = st.one_of(st.sampled_from(["a", "b", "on", "1", "null", "x.y/z-w", "1e+16", "2026-01-01"]), st.text(max_size=6))
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12), st.sampled_from(PLAIN[:90])
)
trees = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=25,
)


def _scalar_text(value: Any, draw: Any) -> str:
    if isinstance(value, str) and value in PLAIN and draw(st.booleans()):
        return value  # a plain word as a template literal writes it
    return str(_finalize(value))


def _key_text(key: str, draw: Any) -> str:
    plain = key and key[0].isalnum() and key.replace(".", "").replace("/", "").replace("-", "").isalnum()
    if plain and draw(st.booleans()):
        return key
    return str(_finalize(key))


def _write(value: Any, indent: int, lines: list[str], draw: Any, lead: str | None = None) -> None:
    """Block lines of a collection at ``indent`` (the first line after ``lead`` when given, a `- ` item)."""
    pad = " " * indent

    def emit(text: str) -> None:
        nonlocal lead
        lines.append(text if lead is None else lead + text[indent:])
        lead = None
        if draw(st.integers(0, 9)) == 0:
            lines.append(" " * draw(st.integers(0, 6)) + draw(st.sampled_from(["", "# c", "#", "# a: [b"])))

    if isinstance(value, dict):
        for key, item in value.items():
            key_text = _key_text(key, draw)
            if isinstance(item, dict | list) and item and draw(st.integers(0, 3)):
                emit(f"{pad}{key_text}:")
                step = draw(st.integers(0 if isinstance(item, list) else 1, 4))
                _write(item, indent + step, lines, draw)
            else:
                emit(f"{pad}{key_text}: {_scalar_text(item, draw)}")
    else:
        for item in value:
            if isinstance(item, dict | list) and item and draw(st.integers(0, 3)):
                if isinstance(item, dict) and draw(st.booleans()):
                    spaces = draw(st.integers(1, 3))
                    _write(item, indent + 1 + spaces, lines, draw, lead=f"{pad}-{' ' * spaces}")
                else:
                    emit(f"{pad}-")
                    _write(item, indent + draw(st.integers(1, 4)), lines, draw)
            else:
                emit(f"{pad}- {_scalar_text(item, draw)}")


@st.composite
def template_texts(draw: Any) -> str:
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        document = draw(st.one_of(st.dictionaries(keys, trees, min_size=1, max_size=5), st.lists(trees, max_size=4)))
        if draw(st.booleans()) or lines:
            lines.append("---")
        if document:
            _write(document, draw(st.integers(0, 2)), lines, draw)
    mutation = draw(st.integers(0, 3))
    if mutation and lines:
        at = draw(st.integers(0, len(lines) - 1))
        if mutation == 1:
            lines[at] = " " * draw(st.integers(1, 3)) + lines[at]
        elif mutation == 2:
            lines[at] = lines[at][draw(st.integers(1, 2)) :]
        else:
            lines.insert(at, lines[at])
    return "\n".join(lines) + "\n"


@settings(max_examples=600, deadline=None, derandomize=True)
@given(template_texts())
@example("a:\n  - 1\n  -  b: 2\n     c: 3\n  - d\ne: 4\n")
def test_generated_template_texts(text: str) -> None:
    assert_reads_like_libyaml(text)


def test_generated_texts_mostly_take_the_fast_path() -> None:
    fast = total = 0

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(template_texts())
    def count(text: str) -> None:
        nonlocal fast, total
        total += 1
        fast += fast_path(text)

    count()
    assert total == 200 and fast > total // 3


def test_memos_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templateyaml, "_MEMO_SIZE", 8)
    text = "".join(f"k{i}: v{i}\n" for i in range(50))
    assert templateyaml.load_template_documents(text) == load_documents(text)
    assert len(templateyaml._LINES) <= 8 and len(templateyaml._SCALARS) <= 8


def test_yaml_errors_keep_libyamls_message() -> None:
    with pytest.raises(yaml.YAMLError) as fast:
        templateyaml.load_template_documents("a: 1\n b: 2\n")
    with pytest.raises(yaml.YAMLError) as reference:
        load_documents("a: 1\n b: 2\n")
    assert str(fast.value) == str(reference.value)
