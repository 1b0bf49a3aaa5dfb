"""The one YAML reader and the one YAML writer of fleetgen.

Reading inventory (ruamel round-trip) keeps the file:line:column of every mapping key and sequence item,
so errors can point at the inventory. Writing goes through ``dump_documents`` only (libyaml's emitter,
kubectl-style indentless sequences): keys keep their given order, and every string that a YAML 1.1 *or*
1.2 reader (Kubernetes uses 1.1 rules) would take for another type is quoted, so no inventory value can
change type, break a document or inject keys.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import yaml  # type: ignore[import-untyped,unused-ignore]
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from generator.errors import InventoryError, Problem
from generator.yamlsource import LoadedFile, Path_, Position, WrittenSource, plain_data

"""Plain scalars that YAML 1.1 readers (Kubernetes, Helm, kubectl) take for booleans, YAML 1.2 for strings."""


def load_file(path: Path, display: str, root: Path | None = None) -> LoadedFile:
    """Read one YAML file (one document) of the fleet at ``root`` through the input guard, with positions."""
    from generator.guard import read_text

    return load_text(read_text(path, (root or path.parent).resolve(), display), display)


def load_text(text: str, display: str) -> LoadedFile:
    """Parse one YAML document with positions: pre-scanned by the guard (depth, alias budget) first; syntax
    errors become InventoryError. Plain files (no anchors, tags or errors: the common case) are read in one pass
    that checks the guard's limits itself; everything else by the guard's scan, then the composer."""
    from generator.fastload import one_pass_load

    quick = one_pass_load(text, display)
    if quick is not None:
        return quick
    return load_text_composed(text, display)


def load_text_composed(text: str, display: str) -> LoadedFile:
    """``load_text`` for a text its one-pass reader leaves to the others: the guard's scan, then the composer."""
    from generator.fastload import fast_load
    from generator.guard import prescan_yaml

    prescan_yaml(text, display)
    fast = fast_load(text, display)
    if fast is not None:
        return fast
    return ruamel_load_text(text, display)


def ruamel_load_text(text: str, display: str) -> LoadedFile:
    """``load_text`` through ruamel's composer (every case ``fastload`` leaves to it, and its reference)."""
    from generator.guard import syntax_problem

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
    source = WrittenSource(text.splitlines(), {}, [])
    data = plain_data(raw, display, (), positions, source)
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


_STR, _INT, _BOOL, _NULL, _MAP, _SEQ, _MERGE, _VALUE = (
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "bool", "null", "map", "seq", "merge", "value")
)
#: Bound of the resolver memo (distinct scalar values); cleared when full so memory stays flat.
_RESOLVE_MEMO_SIZE = 1 << 18


class _MemoResolver:
    """Memoises the (pure) implicit tag resolution of scalar values: libyaml's emitter and composer ask the
    Python resolver for every scalar, and fleets repeat the same keys and values many times."""

    _memo: ClassVar[dict[tuple[Any, ...], Any]]

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        """``Resolver.resolve``, remembered for scalars."""
        if kind is not yaml.ScalarNode:
            return super().resolve(kind, value, implicit)  # type: ignore[misc]
        key = (value, implicit)
        tag = self._memo.get(key)
        if tag is None:
            if len(self._memo) >= _RESOLVE_MEMO_SIZE:
                self._memo.clear()
            tag = self._memo[key] = super().resolve(kind, value, implicit)  # type: ignore[misc]
        return tag


class _Dumper(_MemoResolver, yaml.CSafeDumper):  # type: ignore[misc,name-defined,unused-ignore]
    """libyaml's emitter with fleetgen's representers: key order kept, ambiguous strings quoted."""

    _memo: ClassVar[dict[tuple[Any, ...], Any]] = {}

    def ignore_aliases(self, data: Any) -> bool:
        """Never emit anchors/aliases, even when one Python object appears twice."""
        return True

    def represent_data(self, data: Any) -> Any:
        """The nodes ``SafeRepresenter`` with our representers builds, without its per-value dispatch for the
        plain-data types (exact types only: anything else takes the generic path)."""
        kind = type(data)
        if kind is str:
            return _represent_str(self, data)
        if kind is dict:
            flow = self.default_flow_style
            items = [(self.represent_data(k), self.represent_data(v)) for k, v in data.items()]
            node = yaml.MappingNode(_MAP, items, flow_style=flow)
            if flow is None:
                node.flow_style = all(_plain_scalar(k) and _plain_scalar(v) for k, v in items)
            return node
        if kind is list:
            flow = self.default_flow_style
            values = [self.represent_data(v) for v in data]
            node = yaml.SequenceNode(_SEQ, values, flow_style=flow)
            if flow is None:
                node.flow_style = all(_plain_scalar(v) for v in values)
            return node
        if kind is bool:
            return yaml.ScalarNode(_BOOL, "true" if data else "false", style=self.default_style)
        if kind is int:
            return yaml.ScalarNode(_INT, str(data), style=self.default_style)
        if data is None:
            return yaml.ScalarNode(_NULL, "null", style=self.default_style)
        return super().represent_data(data)


def _plain_scalar(node: Any) -> bool:
    return isinstance(node, yaml.ScalarNode) and not node.style


def _represent_str(dumper: Any, value: str) -> Any:
    if "\n" in value and not any(line != line.rstrip() for line in value.splitlines()):
        return yaml.ScalarNode(_STR, value, style="|")
    if _YAML_PLAIN_OTHER_TYPE.match(value):
        return yaml.ScalarNode(_STR, value, style="'")
    return yaml.ScalarNode(_STR, value, style=dumper.default_style)


def _represent_dict(dumper: Any, value: dict[Any, Any]) -> Any:
    return dumper.represent_mapping("tag:yaml.org,2002:map", value.items())


def _represent_generic_str(dumper: Any, value: str) -> Any:
    """``_represent_str`` through the generic ``represent_scalar`` (what the fast path must equal; for tests)."""
    node = _represent_str(dumper, value)
    return dumper.represent_scalar(node.tag, node.value, style=node.style)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(dict, _represent_dict)


#: Emitted text of recent document lists, by a digest of their pickle (which encodes every value and its exact
#: type, so equal pickles emit equal text); a fleet repeats many documents (patches, kustomizations). Bounded:
#: cleared when full, so memory stays flat in fleet size.
_DUMPED: dict[bytes, str] = {}
_DUMPED_SIZE = 1 << 14


def dump_documents(documents: Iterable[Any]) -> str:
    """Emit documents as one YAML stream, each starting with ``---``; the only YAML writer of fleetgen."""
    docs = list(documents)
    try:
        key = hashlib.blake2b(pickle.dumps(docs, protocol=5), digest_size=20).digest()
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        key = b""  # not picklable: emitted without the memo
    text = _DUMPED.get(key) if key else None
    if text is None:
        text = _fast_emitter().dump(docs)  # libyaml's exact text for the common documents, else None
        if text is None:
            text = yaml.dump_all(
                docs,
                Dumper=_Dumper,
                explicit_start=True,
                default_flow_style=False,
                sort_keys=False,
                width=4096,
                allow_unicode=True,
            )
        if key:
            if len(_DUMPED) >= _DUMPED_SIZE:
                _DUMPED.clear()
            _DUMPED[key] = text
    return text


@functools.cache
def _fast_emitter() -> Any:
    from generator.fastemit import FastEmitter

    return FastEmitter(_YAML_PLAIN_OTHER_TYPE, yaml.resolver.Resolver().resolve)


def dump_flow(value: Any) -> str:
    """One value as single-line YAML flow (for template expressions JSON cannot write, such as ``.inf``)."""
    text: str = yaml.dump(value, Dumper=_Dumper, default_flow_style=True, width=2**30, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


class _Loader(_MemoResolver, yaml.CSafeLoader):  # type: ignore[misc,name-defined,unused-ignore]
    """libyaml's parser with Kubernetes' (YAML 1.1) scalar rules; timestamps and '=' stay strings."""

    _memo: ClassVar[dict[tuple[Any, ...], Any]] = {}

    def construct_document(self, node: Any) -> Any:
        """The data ``SafeConstructor`` builds, by one direct walk for documents of plain maps, lists and
        scalars; anything else (merge keys, explicit or unknown tags, recursive aliases) takes the generic path."""
        try:
            data = _construct(self, node, {})
        except _Generic:
            return super().construct_document(node)
        self.constructed_objects: dict[Any, Any] = {}
        return data


class _Generic(Exception):
    """The document needs ``SafeConstructor``'s generic path."""


_SCALAR_TAGS = frozenset(
    (_STR, _NULL, _BOOL, _INT, "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value")
)


def _construct(loader: Any, node: Any, done: dict[int, Any]) -> Any:
    """One node as ``SafeConstructor`` constructs it (a shared node, an alias, stays one shared object)."""
    if isinstance(node, yaml.ScalarNode):
        tag = node.tag
        if tag == _STR:
            return node.value
        if tag not in _SCALAR_TAGS:
            raise _Generic
        return loader.construct_object(node)  # exactly SafeConstructor's scalar rules (int/float/bool/null)
    known = done.get(id(node), done)
    if known is not done:
        if known is None:  # an alias inside its own anchor: recursive data
            raise _Generic
        return known
    done[id(node)] = None
    if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag in (_MERGE, _VALUE):
                raise _Generic
            mapping[_construct(loader, key_node, done)] = _construct(loader, value_node, done)
        done[id(node)] = mapping
        return mapping
    if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
        items = [_construct(loader, item, done) for item in node.value]
        done[id(node)] = items
        return items
    raise _Generic


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
