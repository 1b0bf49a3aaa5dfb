"""A fast path for reading inventory files with positions: libyaml's composer (PyYAML's C loader) instead of
ruamel's pure-Python one, giving exactly what ``yamlio.ruamel_load_text`` gives.

The inventory is read with ruamel's YAML 1.2 round-trip rules (``on``/``yes`` are strings there, and reported
as ambiguous; ``1.30`` is a float written "1.30"). libyaml only builds the node tree with its marks; every
plain scalar is typed by ruamel's own resolver (YAML 1.2) and every non-string value constructed by ruamel
itself, so the values and the written literals are ruamel's. The marks give the same 0-based line/column as
ruamel's ``lc`` data: a key's node start, its value's node start, a sequence item's node start.

Anchors, aliases and merge keys (``<<``) read as ruamel reads them: an alias is its anchored node again, so
every key and item inside an aliased value keeps the position where the anchor wrote it (and a scalar reached
through an alias is "written" as at its anchor); a mapping's own keys come first in written order, then each
merged mapping's keys (its own merges included) that are not there yet, the first merge source winning; a
merged key has no position of its own and reports its mapping's.

Anything else goes to ruamel, which also owns every error message: a syntax error, several documents, a
duplicate key or merge key, a merge of something other than mappings, a recursive alias, tags, directives,
explicit ``?`` keys, tabs, empty (null) values, non-string keys. ``tests/test_fastload.py`` compares both paths.

A plain file (no anchors, aliases or merge keys: the common case, a 1000-cluster inventory among them) does not
need the node tree either: ``one_pass_load`` builds the same result from libyaml's event stream in one pass,
checking the input guard's depth and node limits as it goes, and keeps positions as packed marks
(``yamlsource.MarkedPositions``); whatever it does not read takes the guard's scan and the composer.
"""

from __future__ import annotations

import functools
import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]
from ruamel.yaml import YAML
from ruamel.yaml.nodes import ScalarNode as RuamelScalarNode
from ruamel.yaml.resolver import VersionedResolver

from generator.guard import MAX_DEPTH, MAX_NODES
from generator.yamlsource import (
    MARK_BITS,
    YAML11_BOOL_WORDS,
    LoadedFile,
    MarkedPositions,
    Marks,
    Path_,
    Position,
    WrittenSource,
    plain_data,
    written_literal,
)

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
#: Text that may hold a construct the fast path leaves to ruamel: a tag (``!``), an explicit key (``?`` and a
#: space), a directive (``%`` opening a line), or tabs, whose reading differs between the YAML versions.
_RUAMEL_ONLY = re.compile(r"(?:^|[\s\[{,])(?:!|\?(?:\s|$))|^%|\t", re.M)
_RESOLVER = VersionedResolver(version=(1, 2))
_ScalarNode, _MappingNode, _SequenceNode = yaml.ScalarNode, yaml.MappingNode, yaml.SequenceNode


def _ruamel_only(text: str) -> bool:
    """``_RUAMEL_ONLY`` found in ``text`` (skipped when none of the characters it needs is there)."""
    if "!" not in text and "?" not in text and "%" not in text and "\t" not in text:
        return False
    return _RUAMEL_ONLY.search(text) is not None


class _Ruamel(Exception):
    """This file needs ruamel's path."""


class _Composer(yaml.CSafeLoader):  # type: ignore[misc,name-defined,unused-ignore]
    """libyaml's composer; tags are decided later by ruamel's resolver, so resolving here is skipped."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        """A placeholder tag (the node's style and value are what is used)."""
        return _STR

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        """Nothing to track: no resolver here depends on the path."""

    def ascend_resolver(self) -> None:
        """Nothing to track: no resolver here depends on the path."""


@functools.lru_cache(maxsize=1 << 16)
def _plain_tag(value: str) -> str:
    """The YAML 1.2 tag ruamel resolves an unquoted scalar to."""
    return str(_RESOLVER.resolve(RuamelScalarNode, value, (True, False)))  # a ruamel Tag: compared as text


@functools.lru_cache(maxsize=1 << 12)
def _typed(value: str) -> Any:
    """An unquoted non-string scalar as ruamel constructs it, converted like ``yamlio._plain``."""
    reader = YAML(typ="rt")
    reader.preserve_quotes = True
    return plain_data(reader.load(f"value: {value}\n")["value"], "", (), {}, WrittenSource([], {}, []))


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large acyclic tree is built (a YAML node tree, the loaded data):
    its passes over the growing heap find nothing there to free but cost more the larger the fleet (load time
    grew faster than the fleet). Reference counting frees everything as usual; cycles made meanwhile are found by
    the first collection after. Nested use keeps the outer pause."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def fast_load(text: str, display: str) -> LoadedFile | None:
    """``yamlio.load_text``'s result without ruamel's composer, or None when ruamel must read this text."""
    if _RUAMEL_ONLY.search(text):
        return None
    with collector_paused():
        try:
            root = yaml.compose(text, Loader=_Composer)
        except yaml.YAMLError:
            return None
        reader = _Reader(display, text)
        try:
            data = reader.convert(root, ())
        except _Ruamel:
            return None
        except RecursionError:
            return None  # deeper than Python's stack: ruamel's (and the guard's) to refuse
        except (ValueError, IndexError):
            return None  # a scalar ruamel types but cannot construct (``._`` as a float): ruamel's to answer
    return LoadedFile(display, data, reader.positions, reader.source.literals, tuple(reader.source.ambiguous))


_ScalarEvent, _AliasEvent = yaml.ScalarEvent, yaml.AliasEvent
_MappingStart, _SequenceStart = yaml.MappingStartEvent, yaml.SequenceStartEvent
_MappingEnd, _SequenceEnd = yaml.MappingEndEvent, yaml.SequenceEndEvent
_DocumentStart, _StreamEnd = yaml.DocumentStartEvent, yaml.StreamEndEvent


def one_pass_load(text: str, display: str) -> LoadedFile | None:
    """``fast_load``'s result in one pass over libyaml's events, the input guard's limits checked on the way (depth
    at most ``MAX_DEPTH``, at most ``MAX_NODES`` nodes), so neither the guard's separate scan nor a node tree is
    needed; or None when this text must take that path (``load_text``): anything outside the plain subset (an
    anchor, alias or merge key, a tag, several documents, an empty value, a key that is not a string, a duplicate
    key), anything past a limit, and every syntax error. The parser is iterative (no recursion on deep input) and
    is left as soon as a limit is passed. ``tests/test_fastload.py`` compares it with ``fast_load``."""
    parts = one_pass_parts(text)
    if parts is None:
        return None
    return LoadedFile(
        display, parts.data, MarkedPositions(display, parts.marks), parts.literals, tuple(parts.ambiguous)
    )


@dataclass(frozen=True)
class OnePassParts:
    """What ``one_pass_load`` reads of a text: the data, its packed marks (``MarkedPositions``), the written literals
    and ambiguous words by path, and the input guard's count of nodes."""

    data: Any
    marks: Marks | None
    literals: dict[Path_, str]
    ambiguous: list[Path_]
    nodes: int


def plain_candidate(text: str) -> bool:
    """Whether ``one_pass_load`` reads ``text`` itself as far as a textual look tells (no tag, explicit key,
    directive or tab: those are ruamel's)."""
    return not _ruamel_only(text)


def plain_string(value: str) -> bool:
    """Whether ``value`` written unquoted reads as a string (YAML 1.2, as ruamel resolves it), not a merge key."""
    return value != "<<" and _plain_tag(value) == _STR


def one_pass_parts(text: str) -> OnePassParts | None:
    """The parts ``one_pass_load`` makes a ``LoadedFile`` of, or None where it returns None."""
    if _ruamel_only(text):
        return None
    with collector_paused():
        try:
            return _one_pass(text)
        except (_Ruamel, yaml.YAMLError):
            return None
        except (ValueError, IndexError):
            return None  # a scalar ruamel types but cannot construct (``._`` as a float): ruamel's to answer


def _one_pass(text: str) -> OnePassParts:
    """The work of ``one_pass_load``; raises ``_Ruamel`` (or the parser's error) for what it leaves to the others."""
    reader = _OnePass(yaml.CSafeLoader(text).get_event, text)
    get = reader.get
    get()  # the stream's start
    event = get()
    if type(event) is _StreamEnd:
        return OnePassParts(None, None, reader.literals, [], reader.nodes)
    if type(event) is not _DocumentStart:
        raise _Ruamel
    event = get()
    kind = type(event)
    if kind is _AliasEvent or event.anchor is not None or event.tag is not None:
        raise _Ruamel
    marks: Marks | None = None
    if kind is _ScalarEvent:  # a document that is one scalar: its value, nothing noted
        data = _scalar(event)[0]  # a scalar event has the node's style and value
    elif kind is _MappingStart:
        data, marks = reader.mapping((), 1)
    elif kind is _SequenceStart:
        data, marks = reader.sequence((), 1)
    else:
        raise _Ruamel
    get()  # the document's end
    if type(get()) is not _StreamEnd:
        raise _Ruamel  # several documents: ruamel's error
    return OnePassParts(data, marks, reader.literals, reader.ambiguous, reader.nodes)


class _OnePass:
    """Builds plain data from libyaml's events, recording what ``_Reader`` records (positions, as a tree of packed
    marks: see ``MarkedPositions``; literals; ambiguous words), within the guard's limits."""

    def __init__(self, get: Any, text: str) -> None:
        self.get = get
        self.lines = text.splitlines()
        self.literals: dict[Path_, str] = {}
        self.ambiguous: list[Path_] = []
        self.nodes = 1  # the guard's count: every collection and scalar, keys included

    def _value(self, event: Any, path: Path_, at: str | int, depth: int) -> tuple[Any, Marks | None]:
        """The value an event opens at ``(*path, at)`` and, for a collection (read to its end), its marks; a scalar
        noted as ``_Reader._note`` notes."""
        kind = type(event)
        if kind is _AliasEvent or event.anchor is not None or event.tag is not None:
            raise _Ruamel  # an alias or an anchor (the composer's path), a tag (excluded beforehand)
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Ruamel  # the guard's to refuse
        if kind is _ScalarEvent:
            value = event.value
            if event.style:
                return value, None
            if value == "":
                raise _Ruamel  # an empty (null) value: its written position is ruamel's to give
            tag = _plain_tag(value)
            if tag == _STR:
                if value in YAML11_BOOL_WORDS:
                    self.ambiguous.append((*path, at))
                return value, None
            if tag == _MERGE or tag == "tag:yaml.org,2002:value":
                raise _Ruamel
            mark = event.start_mark
            self.literals[(*path, at)] = _literal(self.lines, mark.line, mark.column)
            return _typed(value), None
        if depth >= MAX_DEPTH:
            raise _Ruamel  # nested deeper than the guard allows: its error
        if kind is _MappingStart:
            return self.mapping((*path, at), depth + 1)
        if kind is _SequenceStart:
            return self.sequence((*path, at), depth + 1)
        raise _Ruamel

    def mapping(self, path: Path_, depth: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """The mapping whose start event was just read, to its end event, and its marks."""
        out: dict[str, Any] = {}
        marks: dict[str, Any] = {}
        get, value_of = self.get, self._value
        while True:
            event = get()
            kind = type(event)
            if kind is _MappingEnd:
                return out, marks
            if kind is not _ScalarEvent or event.anchor is not None or event.tag is not None:
                raise _Ruamel  # a collection or an alias as a key, an anchored or tagged key
            key = event.value
            if not event.style and (key == "<<" or _plain_tag(key) != _STR):
                raise _Ruamel  # a merge key, or a key that is not a string
            if key in out:
                raise _Ruamel  # a duplicate key: ruamel's error
            self.nodes += 1
            mark = event.start_mark
            at = mark.line << MARK_BITS | mark.column
            out[key], below = value_of(get(), path, key, depth)
            marks[key] = at if below is None else [at, below]

    def sequence(self, path: Path_, depth: int) -> tuple[list[Any], list[Any]]:
        """The sequence whose start event was just read, to its end event, and its marks."""
        items: list[Any] = []
        marks: list[Any] = []
        get, value_of = self.get, self._value
        while True:
            event = get()
            if type(event) is _SequenceEnd:
                return items, marks
            mark = event.start_mark
            at = mark.line << MARK_BITS | mark.column
            value, below = value_of(event, path, len(items), depth)
            items.append(value)
            marks.append(at if below is None else [at, below])


@functools.lru_cache(maxsize=1 << 12)
def _literal_at(line: str, column: int) -> str:
    return written_literal([line], 0, column)


def _literal(lines: list[str], line: int, column: int) -> str:
    """``written_literal``, remembered by the line's text for short lines (fleets repeat lines such as
    ``minSize: 2``; a long line is not kept alive by the memo)."""
    if not 0 <= line < len(lines):
        return ""
    text = lines[line]
    return _literal_at(text, column) if len(text) <= 200 else written_literal(lines, line, column)


def _scalar(node: Any) -> tuple[Any, bool]:
    """A scalar's (node's or event's) value and whether it is a string written unquoted."""
    if node.style:  # quoted or block: a string (ruamel's ScalarString)
        return node.value, False
    value = node.value
    if value == "":
        raise _Ruamel  # an empty (null) value: its written position is ruamel's to give
    tag = _plain_tag(value)
    if tag == _STR:
        return value, True
    if tag == _MERGE or tag == "tag:yaml.org,2002:value":
        raise _Ruamel
    return _typed(value), False


class _Reader:
    """Converts one composed document to plain data, filling positions, written literals and ambiguous words."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.positions: dict[Path_, Position] = {(): Position(file, 1, 1)}
        self.source = WrittenSource(text.splitlines(), {}, [])
        self.active: set[int] = set()  # collections being converted: an alias of one of them is recursive
        self.flattened: dict[int, list[tuple[str, Any]]] = {}
        self.budget = MAX_NODES  # values left to build: aliases expand, and the guard's budget bounds them

    def convert(self, node: Any, path: Path_) -> Any:
        """The plain data of ``node`` at ``path``."""
        kind = type(node)
        if kind is _ScalarNode:
            return _scalar(node)[0]
        if node is None:
            return None
        key = id(node)
        if key in self.active:
            raise _Ruamel  # an alias inside its own anchor: recursive data
        self.active.add(key)
        try:
            if kind is _MappingNode:
                return self._mapping(node, path)
            if kind is _SequenceNode:
                return self._sequence(node, path)
        finally:
            self.active.discard(key)
        raise _Ruamel

    def _spend(self, count: int) -> None:
        self.budget -= count
        if self.budget < 0:
            raise _Ruamel  # an alias bomb: the guard refuses it (when called without the guard, ruamel's)

    def _mapping(self, node: Any, path: Path_) -> dict[str, Any]:
        own, merged = _entries(node)
        self._spend(len(own))
        out: dict[str, Any] = {}
        file, positions, convert = self.file, self.positions, self.convert
        for key, key_node, value_node in own:
            child = (*path, key)
            mark = key_node.start_mark
            positions[child] = Position(file, mark.line + 1, mark.column + 1)
            if type(value_node) is _ScalarNode:
                value, unquoted_str = _scalar(value_node)
                out[key] = value
                self._note(value_node, value, unquoted_str, child)
            else:
                out[key] = convert(value_node, child)
        if merged:
            here = positions.get(path, Position(file, 1, 1))
            for source in merged:
                for key, value_node in self._flattened(source):
                    if key in out:
                        continue
                    self._spend(1)
                    child = (*path, key)
                    positions[child] = here  # a merged key has no position of its own: its mapping's
                    out[key] = convert(value_node, child)
        return out

    def _flattened(self, node: Any) -> list[tuple[str, Any]]:
        """A merge source's keys and value nodes as ruamel's mapping holds them: its own, then its merged ones."""
        key = id(node)
        known = self.flattened.get(key)
        if known is not None:
            return known
        if key in self.active:
            raise _Ruamel
        self.active.add(key)
        try:
            own, merged = _entries(node)
            items = [(name, value_node) for name, _, value_node in own]
            names = {name for name, _ in items}
            for source in merged:
                for name, value_node in self._flattened(source):
                    if name not in names:
                        names.add(name)
                        items.append((name, value_node))
            self._spend(len(items))
            self.flattened[key] = items
            return items
        finally:
            self.active.discard(key)

    def _sequence(self, node: Any, path: Path_) -> list[Any]:
        items: list[Any] = []
        self._spend(len(node.value))
        file, positions, convert = self.file, self.positions, self.convert
        for index, item_node in enumerate(node.value):
            child = (*path, index)
            mark = item_node.start_mark
            positions[child] = Position(file, mark.line + 1, mark.column + 1)
            if type(item_node) is _ScalarNode:
                value, unquoted_str = _scalar(item_node)
                items.append(value)
                self._note(item_node, value, unquoted_str, child)
            else:
                items.append(convert(item_node, child))
        return items

    def _note(self, node: Any, value: Any, unquoted_str: bool, path: Path_) -> None:
        """What ``WrittenSource.note`` records for the scalar at ``path`` (see yamlsource)."""
        if node.style:
            return
        if unquoted_str:
            if value in YAML11_BOOL_WORDS:
                self.source.ambiguous.append(path)
            return
        mark = node.start_mark
        self.source.literals[path] = written_literal(self.source.lines, mark.line, mark.column)


def _entries(node: Any) -> tuple[list[tuple[str, Any, Any]], list[Any]]:
    """A mapping node's own (key, key node, value node) entries in written order and its merge sources in
    precedence order; what ruamel refuses or types its own way (duplicate keys, non-string keys, a bad merge)
    goes to ruamel."""
    own: list[tuple[str, Any, Any]] = []
    names: set[str] = set()
    merged: list[Any] | None = None
    for key_node, value_node in node.value:
        if type(key_node) is not _ScalarNode:
            raise _Ruamel
        key = key_node.value
        if not key_node.style:  # quoted and block keys are strings
            if key == "<<":
                if merged is not None:
                    raise _Ruamel  # a duplicate merge key: ruamel's error
                merged = _merge_sources(value_node)
                continue
            if _plain_tag(key) != _STR:
                raise _Ruamel  # a key that is not a string (a number, a date, null, '='): ruamel's
        if key in names:
            raise _Ruamel  # a duplicate key: ruamel's error
        names.add(key)
        own.append((key, key_node, value_node))
    return own, merged or []


def _merge_sources(node: Any) -> list[Any]:
    """The mappings a ``<<`` value merges, first one winning: one mapping, or a non-empty list of mappings."""
    if type(node) is _MappingNode:
        return [node]
    if type(node) is _SequenceNode and node.value and all(type(item) is _MappingNode for item in node.value):
        return list(node.value)
    raise _Ruamel  # anything else is ruamel's error (an empty list is ruamel's own case)
