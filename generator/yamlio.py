"""The one YAML reader and the one YAML writer of fleetgen.

Reading inventory (ruamel round-trip) keeps the file:line:column of every mapping key and sequence item,
so errors can point at the inventory. Writing goes through ``dump_documents`` only (libyaml's emitter,
kubectl-style indentless sequences): keys keep their given order, and every string that a YAML 1.1 *or*
1.2 reader (Kubernetes uses 1.1 rules) would take for another type is quoted, so no inventory value can
change type, break a document or inject keys.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import ScalarString

from generator.errors import InventoryError, Problem

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
    positions: dict[Path_, Position]
    literals: dict[Path_, str] = field(default_factory=dict)
    """How each non-string scalar was written (``1.30`` for the number 1.3), by path."""
    ambiguous: tuple[Path_, ...] = ()
    """Paths of unquoted values that YAML 1.1 reads as booleans (``on``, ``no``) but YAML 1.2 as strings."""

    def position(self, path: Iterable[str | int]) -> Position:
        """The position of ``path``, or of its nearest parent that has one."""
        key = tuple(path)
        while key:
            if key in self.positions:
                return self.positions[key]
            key = key[:-1]
        return self.positions.get((), Position(self.file, 1, 1))


_YAML11_BOOL_WORDS = frozenset(
    ["y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"]
)
"""Plain scalars that YAML 1.1 readers (Kubernetes, Helm, kubectl) take for booleans, YAML 1.2 for strings."""
_LITERAL_END = re.compile(r"\s+#|\s*[,\]}]|\s*$")


def _literal(lines: list[str], line: int, column: int) -> str:
    """The text of a plain scalar as written at 0-based ``line``/``column`` (for messages)."""
    if not 0 <= line < len(lines):
        return ""
    rest = lines[line][column:]
    end = _LITERAL_END.search(rest)
    return rest[: end.start() if end else len(rest)].strip()


def _plain(node: Any, file: str, path: Path_, positions: dict[Path_, Position], source: _Source) -> Any:
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
            out[str(key)] = _plain(value, file, child, positions, source)
        return out
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for index, value in enumerate(node):
            line, col = node.lc.item(index)
            child = (*path, index)
            positions[child] = Position(file, line + 1, col + 1)
            source.note(value, child, (line, col))
            items.append(_plain(value, file, child, positions, source))
        return items
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, datetime.datetime | datetime.date):
        return node.isoformat()
    return str(node)


@dataclass
class _Source:
    """Collects, while converting, what non-string scalars and YAML 1.1 boolean words looked like as written."""

    lines: list[str]
    literals: dict[Path_, str]
    ambiguous: list[Path_]

    def note(self, value: Any, path: Path_, at: Iterable[int]) -> None:
        if isinstance(value, ScalarString | CommentedMap | CommentedSeq):
            return
        if isinstance(value, str):
            if value in _YAML11_BOOL_WORDS:
                self.ambiguous.append(path)
            return
        line, column = at
        self.literals[path] = _literal(self.lines, line, column)


def load_file(path: Path, display: str, root: Path | None = None) -> LoadedFile:
    """Read one YAML file (one document) of the fleet at ``root`` through the input guard, with positions."""
    from generator.guard import read_text

    return load_text(read_text(path, (root or path.parent).resolve(), display), display)


def load_text(text: str, display: str) -> LoadedFile:
    """Parse one YAML document with positions: pre-scanned by the guard (depth, alias budget) first; syntax
    errors become InventoryError."""
    from generator.guard import prescan_yaml, syntax_problem

    prescan_yaml(text, display)
    reader = YAML(typ="rt")
    reader.allow_duplicate_keys = False
    reader.preserve_quotes = True
    try:
        raw = reader.load(text)
    except MarkedYAMLError as exc:
        raise InventoryError(
            [syntax_problem(display, exc.context, exc.context_mark, exc.problem, exc.problem_mark)]
        ) from exc
    except YAMLError as exc:
        raise InventoryError([Problem(display, 1, 1, "", f"invalid YAML: {exc}")]) from exc
    positions: dict[Path_, Position] = {(): Position(display, 1, 1)}
    source = _Source(text.splitlines(), {}, [])
    data = _plain(raw, display, (), positions, source)
    return LoadedFile(display, data, positions, source.literals, tuple(source.ambiguous))


_YAML_PLAIN_OTHER_TYPE = re.compile(
    r"""^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF
    |~|null|Null|NULL|=|<<
    |[-+]?(?:0b[0-1_]+|0o?[0-7_]+|(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+|[1-9][0-9_]*(?::[0-5]?[0-9])+)
    |[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|[-+]?[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+
    |[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt\s].*)?)$""",
    re.X,
)


class _Dumper(yaml.CSafeDumper):  # type: ignore[misc,name-defined,unused-ignore]
    """libyaml's emitter with fleetgen's representers: key order kept, ambiguous strings quoted."""

    def ignore_aliases(self, data: Any) -> bool:
        """Never emit anchors/aliases, even when one Python object appears twice."""
        return True


def _represent_str(dumper: Any, value: str) -> Any:
    if "\n" in value and not any(line != line.rstrip() for line in value.splitlines()):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    if _YAML_PLAIN_OTHER_TYPE.match(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


def _represent_dict(dumper: Any, value: dict[Any, Any]) -> Any:
    return dumper.represent_mapping("tag:yaml.org,2002:map", value.items())


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(dict, _represent_dict)


def dump_documents(documents: Iterable[Any]) -> str:
    """Emit documents as one YAML stream, each starting with ``---``; the only YAML writer of fleetgen."""
    text: str = yaml.dump_all(
        list(documents),
        Dumper=_Dumper,
        explicit_start=True,
        default_flow_style=False,
        sort_keys=False,
        width=4096,
        allow_unicode=True,
    )
    return text


def dump_flow(value: Any) -> str:
    """One value as single-line YAML flow (for template expressions JSON cannot write, such as ``.inf``)."""
    text: str = yaml.dump(value, Dumper=_Dumper, default_flow_style=True, width=2**30, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


class _Loader(yaml.CSafeLoader):  # type: ignore[misc,name-defined,unused-ignore]
    """libyaml's parser with Kubernetes' (YAML 1.1) scalar rules; timestamps and '=' stay strings."""


_Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)
_Loader.add_constructor("tag:yaml.org,2002:value", yaml.SafeLoader.construct_yaml_str)


def load_documents(text: str) -> list[Any]:
    """Parse a YAML stream (our own output, kustomize or helm output) to plain data, skipping empties.

    Uses YAML 1.1 scalar rules like Kubernetes' own reader (sigs.k8s.io/yaml), so the result is what the
    API server would see; a fresh libyaml loader per call keeps it thread-safe.
    """
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]


def iter_yaml_files(directory: Path) -> Iterator[Path]:
    """All ``*.yaml``/``*.yml`` files below a directory, in a stable order."""
    yield from sorted(p for p in directory.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())
