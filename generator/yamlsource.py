"""A loaded YAML file as fleetgen keeps it: plain data plus the file:line:column of every value and, for
non-string scalars and YAML 1.1 boolean words, the text as written (for messages). Both readers fill it: ruamel's
composer (``yamlio``) and libyaml's (``fastload``)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.scalarstring import PlainScalarString, ScalarString

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    """A place in a source file (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class LoadedFile:
    """Plain data of one YAML file plus the position of every key and item in it."""

    file: str
    data: Any
    positions: Mapping[Path_, Position]
    literals: dict[Path_, str] = field(default_factory=dict)
    """How each non-string scalar was written (``1.30`` for the number 1.3), by path."""
    ambiguous: tuple[Path_, ...] = ()
    """Paths of unquoted values that YAML 1.1 reads as booleans (``on``, ``no``) but YAML 1.2 as strings."""

    def position(self, path: Iterable[str | int]) -> Position:
        """The position of ``path``, or of its nearest parent that has one."""
        key = tuple(path)
        positions = self.positions
        while key:
            found = positions.get(key)
            if found is not None:
                return found
            key = key[:-1]
        return positions.get((), Position(self.file, 1, 1))


MARK_BITS = 23
"""A packed mark is ``line << MARK_BITS | column`` (both 0-based; a file fleetgen reads is at most 4 MiB)."""
#: The marks of one collection: per key (mapping) or item (sequence), its packed mark, or for a collection value
#: ``[its packed mark, its own marks]`` or ``[its packed mark, its own marks, shift]``, where the marks below were
#: counted from another line (a cached item: ``loadcache``) and ``shift`` (a line count, packed) is added to each.
Marks = dict[str, Any] | list[Any]


class MarkedPositions(Mapping[Path_, Position]):
    """Positions kept as a tree of packed marks mirroring the data (a few objects per collection instead of a path
    and a ``Position`` per value), turned into ``Position`` objects when asked; iterates as the dict the other
    readers fill does (the root, then every key and item depth first in written order)."""

    __slots__ = ("_all", "_file", "_marks")

    def __init__(self, file: str, marks: Marks | None) -> None:
        self._file = file
        self._marks = marks
        self._all: dict[Path_, Position] | None = None

    def _position(self, at: int) -> Position:
        return Position(self._file, (at >> MARK_BITS) + 1, (at & ((1 << MARK_BITS) - 1)) + 1)

    def get(self, path: Path_, default: Any = None) -> Any:
        """The position of exactly ``path`` (``default`` when nothing is there)."""
        if not path:
            return Position(self._file, 1, 1)
        node: Any = self._marks
        last = len(path) - 1
        shift = 0
        for index, part in enumerate(path):
            if type(node) is dict:
                entry = node.get(part) if isinstance(part, str) else None
            elif type(node) is list and isinstance(part, int | float) and 0 <= part < len(node) and part == int(part):
                entry = node[int(part)]  # True and 1.0 find item 1, as in the other readers' dict
            else:
                return default
            if entry is None:
                return default
            if index == last:
                return self._position(shift + (entry if type(entry) is int else entry[0]))
            if type(entry) is int:
                return default
            if len(entry) > 2:
                shift += entry[2]
            node = entry[1]
        return default

    def __getitem__(self, path: Path_) -> Position:
        found = self.get(path)
        if found is None:
            raise KeyError(path)
        return found  # type: ignore[no-any-return]

    def __contains__(self, path: object) -> bool:
        return isinstance(path, tuple) and self.get(path) is not None

    def _every(self) -> dict[Path_, Position]:
        if self._all is None:
            found: dict[Path_, Position] = {(): Position(self._file, 1, 1)}

            def visit(path: Path_, marks: Marks, shift: int) -> None:
                for at, entry in marks.items() if isinstance(marks, dict) else enumerate(marks):
                    child = (*path, at)
                    found[child] = self._position(shift + (entry if type(entry) is int else entry[0]))
                    if type(entry) is not int:
                        visit(child, entry[1], shift + entry[2] if len(entry) > 2 else shift)

            if self._marks is not None:
                visit((), self._marks, 0)
            self._all = found
        return self._all

    def __iter__(self) -> Iterator[Path_]:
        return iter(self._every())

    def __len__(self) -> int:
        return len(self._every())

    def __repr__(self) -> str:
        return repr(self._every())


YAML11_BOOL_WORDS = frozenset(
    ["y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"]
)


_LITERAL_END = re.compile(r"\s+#|\s*[,\]}]|\s*$")


def written_literal(lines: list[str], line: int, column: int) -> str:
    """The text of a plain scalar as written at 0-based ``line``/``column`` (for messages)."""
    if not 0 <= line < len(lines):
        return ""
    rest = lines[line][column:]
    end = _LITERAL_END.search(rest)
    return rest[: end.start() if end else len(rest)].strip()


def plain_data(node: Any, file: str, path: Path_, positions: dict[Path_, Position], source: WrittenSource) -> Any:
    """Convert ruamel round-trip nodes to plain Python data, recording positions and written literals."""
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        here = positions.get(path, Position(file, 1, 1))
        for key, value in node.items():
            # a key merged in by `<<: *anchor` has no position of its own: it points at the mapping
            line, col, value_line, value_col = (node.lc.data or {}).get(key, (here.line - 1, here.column - 1) * 2)
            child = (*path, str(key))
            positions[child] = Position(file, line + 1, col + 1)
            if key in (node.lc.data or {}):
                source.note(value, child, (value_line, value_col))
            out[str(key)] = plain_data(value, file, child, positions, source)
        return out
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for index, value in enumerate(node):
            line, col = node.lc.item(index)
            child = (*path, index)
            positions[child] = Position(file, line + 1, col + 1)
            source.note(value, child, (line, col))
            items.append(plain_data(value, file, child, positions, source))
        return items
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, ScalarBoolean):  # an anchored boolean (``&on true``): an int subclass in ruamel
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, datetime.datetime | datetime.date):
        return node.isoformat()
    return str(node)


@dataclass
class WrittenSource:
    """Collects, while converting, what non-string scalars and YAML 1.1 boolean words looked like as written."""

    lines: list[str]
    literals: dict[Path_, str]
    ambiguous: list[Path_]

    def note(self, value: Any, path: Path_, at: Iterable[int]) -> None:
        if isinstance(value, CommentedMap | CommentedSeq) or (
            isinstance(value, ScalarString) and not isinstance(value, PlainScalarString)
        ):
            return  # quoted or block text (an anchored unquoted word is plain, ``&v yes`` as ambiguous as ``yes``)
        if isinstance(value, str):
            if value in YAML11_BOOL_WORDS:
                self.ambiguous.append(path)
            return
        line, column = at
        self.literals[path] = written_literal(self.lines, line, column)
