"""A fast reader for the YAML that fleetgen's own templates render, giving exactly what
``yamlio.load_documents`` gives.

Every ``{{ }}`` of a built-in template is finalized to a JSON scalar or flow collection on one line
(generator/render/planner.py ``_finalize``), and the templates themselves are block mappings and sequences
separated by ``---``, with comments. That dialect is read here line by line, each distinct line classified
once (a fleet repeats the same lines thousands of times), without libyaml's token/event/node objects:

* structure: block mappings and block sequences by indentation (indentless sequences included), ``---``
  document starts, blank and comment lines;
* scalars: a JSON double-quoted string (only JSON's escapes, no surrogate escapes) is decoded by ``json``;
  every other one-line scalar (plain ``yes``, ``1e+16``, ``0x1f``, timestamps, single-quoted, trailing
  comments) is read by ``load_documents`` itself on that fragment alone (``k: <scalar>``) and remembered;
* flow collections on one line: ``json`` with every number handed to the same fragment reader (YAML 1.1 reads
  ``1e+16`` as a string), keys short enough for libyaml's 1024-character simple-key limit; anything JSON does
  not accept (``.inf``, comments, plain words) goes to the fragment reader.

Anything else — tabs, CR, characters libyaml refuses or reads as line breaks (NEL, U+2028, U+2029), BOM,
directives, ``...``, anchors, aliases, tags, block scalars, multi-line plain or quoted scalars, flow
collections over several lines, explicit keys, compact nested sequences, indentation libyaml would reject —
makes the whole text go through ``load_documents``, which also raises the same error for invalid text.
``tests/test_templateyaml.py`` compares both readers on every template output of the reference fleet and of
synthetic fleets, on generated inventory strings and on hand-made edge cases.

Why a line reader (measured at 1000 clusters, 5 340 template renders, 21 MB of text): libyaml plus the node walk
took 3.1 s of CPU, this reader 0.43 s. Skipping the re-parse for documents already in the emitter's form is not
possible (every value is JSON-quoted, sequences are indented); a memo per document hits little (90% of the
document bytes are distinct: every Alert carries its cluster's name), while lines repeat (837 000 lines, 6 000
distinct), so each distinct line is classified once and the structure is rebuilt from the indentation.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]

from generator.yamlio import load_documents

#: Characters outside the fast path: anything but LF and the characters libyaml accepts as printable (it
#: refuses C0/C1 controls, DEL, surrogates, U+FFFE/F and a BOM inside the stream) — tab, CR, NEL, U+2028 and
#: U+2029 included, since libyaml reads them as white space or line breaks.
_OUTSIDE = re.compile("[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
#: One JSON string token: JSON's own escapes except surrogates ``\\uD800``-``\\uDFFF`` (which JSON pairs up and
#: libyaml refuses); with these, YAML's double-quoted reading is JSON's.
_JSON_CHAR = r'(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u(?![dD][89a-fA-F])[0-9a-fA-F]{4})'
_JSON_STRING = re.compile(f'"{_JSON_CHAR}*"')
#: A mapping key followed by ``:`` and a space or the line end: a plain key of common key characters or a JSON
#: string, short enough (at most 962 characters as written) that libyaml's 1024-character limit of a simple
#: key never applies.
_KEY = re.compile(f'([A-Za-z0-9_$/][A-Za-z0-9_$./-]{{0,199}}|"{_JSON_CHAR}{{0,160}}"):(?: |$)')
#: Escapes JSON and libyaml read differently inside a flow collection (see ``_JSON_CHAR``).
_FLOW_ESCAPES = re.compile(r"\\u[dD][89a-fA-F]")
#: Longest decoded key json may hand over: 160 characters are at most 962 as written (``\\uXXXX`` each).
_FLOW_KEY_MAX = 160
#: First characters of a scalar the fast path leaves to libyaml (YAML indicators: anchors, aliases, tags,
#: block scalars, directives, reserved, comments, explicit keys, flow ends); ``-`` only when a blank follows.
_INDICATORS = frozenset("&*!|>%@`#?:,]}")
_MEMO_SIZE = 1 << 16

_SKIP = ("skip",)
_DOCUMENT = ("document",)
_EMPTY, _SCALAR, _FLOW = 0, 1, 2
_NO_KEY = object()
_NO_ROOT = object()


class _Fallback(Exception):
    """The text needs libyaml (``load_documents``)."""


#: classified lines, by their text: _SKIP, _DOCUMENT or (indent, dash, column, key, kind, value)
_LINES: dict[str, tuple[Any, ...]] = {}
#: scalars by their text as written (immutable values only)
_SCALARS: dict[str, Any] = {}


def load_template_documents(text: str) -> list[Any]:
    """``yamlio.load_documents(text)`` for a template's rendered text: the same documents (types, values, key
    order, null documents skipped), the same error for invalid YAML."""
    if _OUTSIDE.search(text) is None:
        try:
            return _parse(text)
        except _Fallback:
            pass
    return load_documents(text)


def _parse(text: str) -> list[Any]:
    """The documents of a text in the dialect, by indentation; raises _Fallback outside it."""
    lines = _LINES
    documents: list[Any] = []
    # open block collections, innermost last: (column, container, is_mapping)
    stack: list[tuple[int, Any, bool]] = []
    root: Any = _NO_ROOT
    # the collection entry whose value may come on the following lines: (column, is_mapping, container, slot)
    pending: tuple[int, bool, Any, Any] | None = None
    for line in text.split("\n"):
        info = lines.get(line)
        if info is None:
            if len(lines) >= _MEMO_SIZE:
                lines.clear()
            info = lines[line] = _classify(line)
        if info is _SKIP:
            continue
        if info is _DOCUMENT:
            if root is not _NO_ROOT:
                documents.append(root)
            stack = []
            root = _NO_ROOT
            pending = None
            continue
        indent, dash, column, key, kind, value = info
        if pending is not None:
            owner_column, owner_is_mapping, owner, slot = pending
            pending = None
            if indent > owner_column or (dash and owner_is_mapping and indent == owner_column):
                nested: Any = [] if dash else {}
                owner[slot] = nested
                stack.append((indent, nested, not dash))
        while stack and stack[-1][0] > indent:
            stack.pop()
        if not stack:
            if root is not _NO_ROOT:
                raise _Fallback  # a second root node: libyaml's error (or not our dialect)
            root = [] if dash else {}
            stack.append((indent, root, not dash))
        top_column, container, is_mapping = stack[-1]
        if top_column != indent:
            raise _Fallback  # a continuation line, or an indentation libyaml rejects
        if dash:
            if is_mapping:
                raise _Fallback
            if key is not _NO_KEY:  # `- key: ...` opens a mapping at the key's column
                item: dict[Any, Any] = {}
                container.append(item)
                stack.append((column, item, True))
                container, indent = item, column
            elif kind == _EMPTY:
                container.append(None)
                pending = (indent, False, container, len(container) - 1)
                continue
            else:
                container.append(value if kind == _SCALAR else _flow(value))
                continue
        elif not is_mapping:
            # a key at a sequence's column ends an indentless sequence (a mapping value at the same column)
            if len(stack) < 2 or stack[-2][0] != indent or not stack[-2][2]:
                raise _Fallback
            stack.pop()
            container = stack[-1][1]
        if kind == _EMPTY:
            container[key] = None
            pending = (indent, True, container, key)
        else:
            container[key] = value if kind == _SCALAR else _flow(value)
    if root is not _NO_ROOT:
        documents.append(root)
    return documents


def _classify(line: str) -> tuple[Any, ...]:
    """What one line holds: skip, a document start, or (indent, dash, column, key, kind, value)."""
    stripped = line.lstrip(" ")
    if not stripped or stripped[0] == "#":
        return _SKIP
    if line == "---":
        return _DOCUMENT
    indent = len(line) - len(stripped)
    rest = stripped.rstrip(" ")
    dash = rest[0] == "-" and (len(rest) == 1 or rest[1] == " ")
    column = indent
    if dash:
        after = rest[1:]
        rest = after.lstrip(" ")
        if not rest:
            return (indent, True, indent, _NO_KEY, _EMPTY, None)
        column = indent + 1 + len(after) - len(rest)  # (`- - x`, a compact nested sequence, falls back in _scalar)
    match = _KEY.match(rest)
    if match is not None:
        key = _scalar(match.group(1))
        value_text = rest[match.end() :].lstrip(" ")
        if not value_text:
            return (indent, dash, column, key, _EMPTY, None)
        kind, value = _value(value_text)
        return (indent, dash, column, key, kind, value)
    if not dash:
        raise _Fallback  # a scalar on a line of its own: a root scalar, a continuation or an error
    kind, value = _value(rest)
    return (indent, True, column, _NO_KEY, kind, value)


def _value(text: str) -> tuple[int, Any]:
    """A value's kind and data: a flow collection stays text (parsed each time into new objects)."""
    if text[0] in "{[":
        return _FLOW, text
    return _SCALAR, _scalar(text)


def _scalar(text: str) -> Any:
    """A one-line scalar as ``load_documents`` reads it, remembered by its text."""
    try:
        return _SCALARS[text]
    except KeyError:
        pass
    if _JSON_STRING.fullmatch(text):
        value: Any = json.loads(text)
    else:
        first = text[0]
        if first in _INDICATORS or first in "{[" or (first == "-" and (len(text) == 1 or text[1] == " ")):
            raise _Fallback
        value = _fragment(text)
        if isinstance(value, dict | list):
            raise _Fallback
    if len(_SCALARS) >= _MEMO_SIZE:
        _SCALARS.clear()
    _SCALARS[text] = value
    return value


def _fragment(text: str) -> Any:
    """One single-line value read by ``load_documents`` alone, as a mapping value (as in the template)."""
    try:
        documents = load_documents(f"k: {text}\n")
    except (yaml.YAMLError, RecursionError) as exc:
        raise _Fallback from exc
    if len(documents) != 1 or type(documents[0]) is not dict or list(documents[0]) != ["k"]:
        raise _Fallback
    return documents[0]["k"]


class _NotJson(ValueError):
    """A flow collection JSON reads differently from libyaml."""


def _number(text: str) -> Any:
    """A JSON non-integer number as YAML 1.1 reads it (``1.5`` a float, ``1e+16`` a string)."""
    return _scalar(text)


def _constant(text: str) -> Any:
    raise _NotJson(text)  # NaN/Infinity: plain strings to YAML


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    for key, _ in pairs:
        if len(key) > _FLOW_KEY_MAX:
            raise _NotJson("key beyond libyaml's simple-key length")
    return dict(pairs)


def _flow(text: str) -> Any:
    """A one-line flow collection, new objects each time."""
    if _FLOW_ESCAPES.search(text) is None:
        try:
            return json.loads(text, parse_float=_number, parse_constant=_constant, object_pairs_hook=_pairs)
        except (ValueError, RecursionError):
            pass
    return _fragment(text)
