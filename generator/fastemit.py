"""A fast path for ``yamlio.dump_documents``: the exact text libyaml's emitter writes for the common documents,
without building PyYAML nodes or calling the Python resolver for every scalar.

It covers block mappings with string keys, block (kubectl-style indentless) sequences, empty ``{}``/``[]``,
integers, booleans, null, and strings that are printable ASCII: plain where libyaml writes them plain,
single-quoted where it quotes them, literal blocks (``|``, ``|-``) for the multi-line strings yamlio's
representer marks. The style decisions are libyaml's own rules (PyYAML ``Emitter.analyze_scalar`` and
``choose_scalar_style``, which mirror libyaml 0.2.5's emitter) restricted to that subset; anything else
(floats, other characters, long lines, long keys, root scalars, ``|+``) returns None and the document
list goes through libyaml. ``tests/test_yamlio_fast.py`` compares both on every golden file, a synthetic
fleet and generated data.
"""

from __future__ import annotations

import re
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]

_STR = "tag:yaml.org,2002:str"
#: printable ASCII (or empty: ``''``), one line, short enough that libyaml's folding at width 4096 never applies
_SIMPLE = re.compile(r"[\x20-\x7e]{0,1000}")
_LITERAL_LINE = re.compile(r"[\x20-\x7e]{0,1000}")
_WHITESPACE = "\0 \t\r\n\x85\u2028\u2029"
_MEMO_SIZE = 1 << 16


class _Unsupported(Exception):
    """The document list needs libyaml's emitter."""


class FastEmitter:
    """Emits documents as ``yamlio.dump_documents`` does; ``plain_other_type`` is yamlio's quoting rule and
    ``resolve`` the (YAML 1.1) implicit resolver the emitter checks plain scalars against."""

    def __init__(self, plain_other_type: re.Pattern[str], resolve: Any) -> None:
        self._other_type = plain_other_type
        self._resolve = resolve
        self._scalars: dict[str, str | None] = {}

    def dump(self, documents: list[Any]) -> str | None:
        """The emitted stream, or None when a document is outside the fast path's subset."""
        out: list[str] = []
        try:
            for document in documents:
                if isinstance(document, dict) and document:
                    out.append("---\n")
                    self._mapping(document, 0, "", out)
                elif isinstance(document, list) and document:
                    out.append("---\n")
                    self._sequence(document, 0, "", out)
                else:
                    return None
        except _Unsupported:
            return None
        return "".join(out)

    def _mapping(self, mapping: dict[Any, Any], indent: int, lead: str, out: list[str]) -> None:
        pad = " " * indent
        for key, value in mapping.items():
            if type(key) is not str or len(key) > 100:
                raise _Unsupported
            text = self._scalar(key)
            kind = type(value)
            if kind is dict and value:
                out.append(f"{lead}{text}:\n")
                self._mapping(value, indent + 2, " " * (indent + 2), out)
            elif kind is list and value:
                out.append(f"{lead}{text}:\n")
                self._sequence(value, indent, pad, out)
            else:
                out.append(f"{lead}{text}: {self._leaf(value, indent)}")
            lead = pad

    def _sequence(self, sequence: list[Any], indent: int, lead: str, out: list[str]) -> None:
        pad = " " * indent
        for value in sequence:
            kind = type(value)
            if kind is dict and value:
                self._mapping(value, indent + 2, f"{lead}- ", out)
            elif kind is list and value:
                self._sequence(value, indent + 2, f"{lead}- ", out)
            else:
                out.append(f"{lead}- {self._leaf(value, indent)}")
            lead = pad

    def _leaf(self, value: Any, indent: int) -> str:
        """A scalar or empty collection after ``key: `` or ``- ``, with its line break (and a literal's body)."""
        kind = type(value)
        if kind is str:
            if "\n" in value:
                return self._literal(value, indent + 2)
            return self._scalar(value) + "\n"
        if kind is bool:
            return "true\n" if value else "false\n"
        if kind is int:
            return f"{value}\n"
        if value is None:
            return "null\n"
        if kind is dict and not value:
            return "{}\n"
        if kind is list and not value:
            return "[]\n"
        raise _Unsupported

    def _scalar(self, value: str) -> str:
        """A one-line string as libyaml writes it (plain or single-quoted), memoised."""
        text = self._scalars.get(value, "")
        if text == "":
            text = self._scalars[value] = self._style(value)
            if len(self._scalars) > _MEMO_SIZE:
                self._scalars.clear()
        if text is None:
            raise _Unsupported
        return text

    def _style(self, value: str) -> str | None:
        if not _SIMPLE.fullmatch(value):
            return None
        quoted = "'" + value.replace("'", "''") + "'"
        if self._other_type.match(value):  # yamlio's representer asks for single quotes
            return quoted
        if self._resolve(yaml.ScalarNode, value, (True, False)) == _STR and _block_plain(value):
            return value
        return quoted  # printable one-line ASCII: single quotes are always allowed

    def _literal(self, value: str, indent: int) -> str:
        """A multi-line string yamlio's representer marks ``|`` (no line ends in whitespace)."""
        lines = value.split("\n")
        if value[0] in " \n" or value.endswith("\n\n") or any(not _LITERAL_LINE.fullmatch(line) for line in lines):
            raise _Unsupported  # indentation indicator, keep chomping, or characters only libyaml judges
        if any(line != line.rstrip() for line in lines):
            raise _Unsupported  # not marked literal by the representer
        if value.endswith("\n"):
            lines.pop()
            header = "|\n"
        else:
            header = "|-\n"
        pad = " " * indent
        return header + "".join(f"{pad}{line}\n" if line else "\n" for line in lines)


def _block_plain(value: str) -> bool:
    """libyaml's ``allow_block_plain`` for a non-empty one-line printable ASCII string."""
    if value.startswith(("---", "...")) or value[0] == " " or value[-1] == " ":
        return False
    followed = len(value) == 1 or value[1] in _WHITESPACE
    first = value[0]
    if first in "#,[]{}&*!|>'\"%@`" or (first in "?:-" and followed):
        return False
    preceded = True
    for index, char in enumerate(value):
        if index:
            followed = index + 1 >= len(value) or value[index + 1] in _WHITESPACE
            if (char == ":" and followed) or (char == "#" and preceded):
                return False
        preceded = char in _WHITESPACE
    return True
