"""A fast path for reading inventory files with positions: libyaml's composer (PyYAML's C loader) instead of
ruamel's pure-Python one, giving exactly what ``yamlio.load_text`` gives through ruamel.

The inventory is read with ruamel's YAML 1.2 round-trip rules (``on``/``yes`` are strings there, and reported
as ambiguous; ``1.30`` is a float written "1.30"). libyaml only builds the node tree with its marks; every
plain scalar is typed by ruamel's own resolver (YAML 1.2) and every non-string value constructed by ruamel
itself, so the values and the written literals are ruamel's. The marks give the same 0-based line/column as
ruamel's ``lc`` data: a key's node start, its value's node start, a sequence item's node start.

Only the common shape takes this path: one document of block/flow mappings, sequences and scalars with
string keys. Anything else goes to ruamel, which also owns every error message: a syntax error, several
documents, a duplicate key, anchors/aliases/merge keys, tags, directives, explicit ``?`` keys, tabs,
backslash escapes, empty (null) values, non-string keys. ``tests/test_fastload.py`` compares both paths.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]
from ruamel.yaml import YAML
from ruamel.yaml.nodes import ScalarNode as RuamelScalarNode
from ruamel.yaml.resolver import VersionedResolver

from generator.yamlsource import (
    YAML11_BOOL_WORDS,
    LoadedFile,
    Path_,
    Position,
    WrittenSource,
    plain_data,
    written_literal,
)

_STR = "tag:yaml.org,2002:str"
#: Text that may hold a construct the fast path leaves to ruamel (anchor, alias, tag, explicit key,
#: directive, merge key), or escapes and tabs whose reading differs between YAML versions.
_RUAMEL_ONLY = re.compile(r"(?:^|[\s\[{,])[!&*?%]|<<|\\|\t", re.M)
_RESOLVER = VersionedResolver(version=(1, 2))


class _Ruamel(Exception):
    """This file needs ruamel's path."""


class _Composer(yaml.CSafeLoader):  # type: ignore[misc,name-defined,unused-ignore]
    """libyaml's composer; tags are decided later by ruamel's resolver, so resolving here is skipped."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        """A placeholder tag (the node's style and value are what is used)."""
        return _STR


@functools.lru_cache(maxsize=1 << 16)
def _plain_tag(value: str) -> str:
    """The YAML 1.2 tag ruamel resolves an unquoted scalar to."""
    tag: str = _RESOLVER.resolve(RuamelScalarNode, value, (True, False))
    return tag


@functools.lru_cache(maxsize=1 << 12)
def _typed(value: str) -> Any:
    """An unquoted non-string scalar as ruamel constructs it, converted like ``yamlio._plain``."""
    reader = YAML(typ="rt")
    reader.preserve_quotes = True
    return plain_data(reader.load(f"value: {value}\n")["value"], "", (), {}, WrittenSource([], {}, []))


def fast_load(text: str, display: str) -> LoadedFile | None:
    """``yamlio.load_text``'s result without ruamel's composer, or None when ruamel must read this text."""
    if _RUAMEL_ONLY.search(text):
        return None
    try:
        root = yaml.compose(text, Loader=_Composer)
    except yaml.YAMLError:
        return None
    positions: dict[Path_, Position] = {(): Position(display, 1, 1)}
    source = WrittenSource(text.splitlines(), {}, [])
    try:
        data = _convert(root, display, (), positions, source, set())
    except _Ruamel:
        return None
    return LoadedFile(display, data, positions, source.literals, tuple(source.ambiguous))


def _scalar(node: Any) -> tuple[Any, bool]:
    """A scalar's value and whether it is a string written unquoted."""
    if node.style:  # quoted or block: a string (ruamel's ScalarString)
        return node.value, False
    if node.value == "":
        raise _Ruamel  # an empty (null) value: its written position is ruamel's to give
    tag = _plain_tag(node.value)
    if tag == _STR:
        return node.value, True
    if tag in ("tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"):
        raise _Ruamel
    return _typed(node.value), False


def _note(node: Any, value: Any, unquoted_str: bool, path: Path_, source: WrittenSource) -> None:
    """What ``WrittenSource.note`` records for the value at ``path`` (see yamlio)."""
    if not isinstance(node, yaml.ScalarNode) or node.style:
        return
    if unquoted_str:
        if value in YAML11_BOOL_WORDS:
            source.ambiguous.append(path)
        return
    mark = node.start_mark
    source.literals[path] = written_literal(source.lines, mark.line, mark.column)


def _convert(
    node: Any, file: str, path: Path_, positions: dict[Path_, Position], source: WrittenSource, seen: set[int]
) -> Any:
    if node is None:
        return None
    if id(node) in seen:  # a shared node: an alias
        raise _Ruamel
    seen.add(id(node))
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node)[0]
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Ruamel
            key, _ = _scalar(key_node)
            if not isinstance(key, str) or key in out:
                raise _Ruamel  # a non-string key, or a duplicate key (ruamel's error)
            child = (*path, key)
            mark = key_node.start_mark
            positions[child] = Position(file, mark.line + 1, mark.column + 1)
            out[key] = value = _convert(value_node, file, child, positions, source, seen)
            if isinstance(value_node, yaml.ScalarNode):
                _note(value_node, value, not value_node.style and _plain_tag(value_node.value) == _STR, child, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        items: list[Any] = []
        for index, item_node in enumerate(node.value):
            child = (*path, index)
            mark = item_node.start_mark
            positions[child] = Position(file, mark.line + 1, mark.column + 1)
            items.append(value := _convert(item_node, file, child, positions, source, seen))
            if isinstance(item_node, yaml.ScalarNode):
                _note(item_node, value, not item_node.style and _plain_tag(item_node.value) == _STR, child, source)
        return items
    raise _Ruamel
