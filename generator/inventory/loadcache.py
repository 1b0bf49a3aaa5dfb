"""A cache of loaded inventory files, so that a render after a one-cluster edit parses one cluster, not the file.

``LoadCache.load`` gives exactly what ``yamlio.load_text`` gives for a text (the same data, positions, written
literals and ambiguous words; the same errors, which only the reference path ever reports), reading what it can
from records kept in a folder of the render's plan cache (``ROOT/.cache/fleetgen/plan/load``: machine-local,
never committed):

- a **file record** per text, keyed by a hash of the text: the one-pass reader's data and packed marks
  (``fastload.one_pass_load``), or for a text only the composer reads (anchors, aliases) its data and positions;
- an **item record** per top-level sequence item, keyed by a hash of the item's text (its lines, up to the next
  item's), when the file's shape lets items be read one at a time (``split_items``): every top-level key opens a
  block sequence (``clusters:`` then ``- name: ...`` lines at one indent), the text is within the one-pass reader's
  plain subset (no tags, tabs, directives; anchors and aliases anywhere make an item's own read fail), and only
  ``\\n`` breaks lines. An item is read as the one-pass reader reads it inside its file (``k:`` then the item's
  lines: the same parser state at the item's first line), its marks counted from its first line; an edited item
  is re-read, the others taken from their records with their line shift (``MarkedPositions``' shifted entries).
  An item read on its own fails (and the whole text takes the reference path) wherever the file's reading would
  not stop at the next item line: a quoted scalar or flow collection left open; a block or plain scalar cannot
  run past a line at the sequence's indent. The guard's node limit is checked on the sum.

Records are JSON (no pickle: a record can hold data only), one a line after a header line naming the cache
format and a fingerprint of the reading code and libraries, each line with a sha256 of its JSON; a record whose
digest does not match (a torn append, a hand edit) is ignored, and a store of another format or code version is
ignored whole, so the cache can make a load faster, never different. New records are appended when the command
that loaded the inventory succeeded (``LoadCache.store``, called with the plan cache's store); the store is
rewritten with the records in use when the unused ones pass an eighth of them (plus some slack): each is read
by every load.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]
from ruamel.yaml import __version__ as ruamel_version

from generator import fastload, guard, yamlio, yamlsource
from generator.fastload import one_pass_parts, plain_candidate, plain_string
from generator.files import replace_file
from generator.guard import MAX_NODES
from generator.yamlio import load_text_composed
from generator.yamlsource import MARK_BITS, LoadedFile, MarkedPositions, Path_, Position

#: Bump when the records' layout or meaning changes.
LOAD_CACHE_FORMAT = "fleetgen-load-cache/1"
#: Unused records tolerated before the store is rewritten: beyond this many plus an eighth of the used ones (every
#: load reads them all: an edit loop's dead records cost at most about an eighth more reading).
SLACK_RECORDS = 64
#: A store larger than this is not read (and is rewritten).
MAX_STORE_BYTES = 256 * 1024 * 1024
_STORE_NAME = "records.jsonl"
_DIGEST_HEX = 64
#: Line breaks other than ``\n`` (libyaml's and ``str.splitlines``' differ from a split on ``\n``): such a text is
#: read whole.
_OTHER_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
#: A line break and a line at the top level (not indented, not a comment, not blank).
_TOP_LINE_AFTER_BREAK = re.compile(r"\n[^ \n#]")
#: A top-level key opening a block value on the next lines: a plain word, optionally a comment.
_KEY_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*):(?: +#.*)?")
#: Blank and comment lines (between a key line and its first item).
_BLANK_OR_COMMENT = re.compile(r"(?: *(?:#.*)?\n)*")
_FIRST_ITEM = re.compile(r"( *)-(?: |\n|$)")


@cache
def code_fingerprint() -> str:
    """A hash of the code and libraries that decide what a text loads as (the readers, the guard's limits)."""
    digest = hashlib.sha256(LOAD_CACHE_FORMAT.encode())
    for module in (fastload, guard, yamlio, yamlsource, sys.modules[__name__]):
        digest.update(Path(str(module.__file__)).read_bytes() + b"\0")
    libyaml = yaml._yaml.get_version_string() if getattr(yaml, "__with_libyaml__", False) else ""
    digest.update(f"{yaml.__version__}\0{libyaml}\0{ruamel_version}\0{sys.version}".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Section:
    """A top-level key whose value is a block sequence: the key, its 0-based line, and per item the 0-based line
    it starts on and its text (up to the next item or top-level line)."""

    key: str
    line: int
    items: list[tuple[int, str]]


def split_items(text: str) -> list[Section] | None:
    """The top-level sections of ``text`` split into item texts, or None when the text's shape does not allow
    reading items one at a time (see the module's docstring)."""
    if not plain_candidate(text) or _OTHER_BREAKS.search(text) or text.startswith("\ufeff"):
        return None
    tops = [0] if text[:1] not in ("", " ", "\n", "#") else []  # where top-level lines start
    tops += [m.start() + 1 for m in _TOP_LINE_AFTER_BREAK.finditer(text)]
    if not tops:
        return None
    index = 1 if _line(text, tops[0]) == "---" else 0
    if _BLANK_OR_COMMENT.match(text).end() != tops[0] or (  # type: ignore[union-attr]
        index and (len(tops) < 2 or _BLANK_OR_COMMENT.match(text, _end(text, tops[0]) + 1).end() != tops[1])  # type: ignore[union-attr]
    ):
        return None  # only blank and comment lines (and a first ``---``) before the first key
    sections: list[Section] = []
    keys: set[str] = set()
    line = 0  # the 0-based line at ``counted``
    counted = 0
    while index < len(tops):
        start = tops[index]
        end = _end(text, start)
        key_match = _KEY_LINE.fullmatch(text, start, end)
        if key_match is None or key_match[1] in keys or not plain_string(key_match[1]):
            return None
        key = key_match[1]
        keys.add(key)
        line += text.count("\n", counted, start)
        counted = start
        key_line = line
        if end >= len(text):
            return None
        first = _FIRST_ITEM.match(text, _BLANK_OR_COMMENT.match(text, end + 1).end())  # type: ignore[union-attr]
        if first is None:
            return None
        indent = len(first[1])
        index += 1
        if indent == 0:  # the items are top-level lines: the section runs to the first other one
            starts = []
            while index < len(tops) and _is_item(text, tops[index], 0):
                starts.append(tops[index])
                index += 1
            stop = tops[index] if index < len(tops) else len(text)
        else:  # the section runs to the next top-level line
            stop = tops[index] if index < len(tops) else len(text)
            if indent > 1 and _less_indented(indent).search(text, first.start(), stop):
                return None  # a line less indented than the items: not a plain list of items
            starts = [first.start()]
            needle = "\n" + " " * indent + "-"
            at = text.find(needle, first.start(), stop)
            while at >= 0:
                if _is_item(text, at + 1, indent):
                    starts.append(at + 1)
                at = text.find(needle, at + 1, stop)
        items: list[tuple[int, str]] = []
        for item_start, item_end in zip(starts, [*starts[1:], stop], strict=True):
            line += text.count("\n", counted, item_start)
            counted = item_start
            items.append((line, text[item_start:item_end]))
        sections.append(Section(key, key_line, items))
    return sections


def _end(text: str, start: int) -> int:
    """Where the line starting at ``start`` ends (its break, or the text's end)."""
    end = text.find("\n", start)
    return len(text) if end < 0 else end


def _line(text: str, start: int) -> str:
    return text[start : _end(text, start)]


def _is_item(text: str, start: int, indent: int) -> bool:
    """Whether the line at ``start`` opens a sequence item at ``indent``: that many spaces, ``-``, then a space or
    the line's end."""
    dash = start + indent
    return text.startswith("-", dash) and text[dash + 1 : dash + 2] in ("", " ", "\n")


@cache
def _less_indented(indent: int) -> re.Pattern[str]:
    return re.compile(rf"^ {{1,{indent - 1}}}[^ #\n]", re.M)


def _item_record(item_text: str) -> list[Any] | None:
    """An item read as inside its file (after a top-level key, on the text's line 1): its data, marks entry, written
    literals and ambiguous words below it, and node count; None when it must be read with its file."""
    parts = one_pass_parts("k:\n" + item_text)
    if parts is None or not isinstance(parts.data, dict) or not isinstance(parts.marks, dict):
        return None
    items, entry = parts.data.get("k"), parts.marks.get("k")
    if not isinstance(items, list) or len(items) != 1 or not isinstance(entry, list) or len(entry[1]) != 1:
        return None
    literals = [[list(path[2:]), written] for path, written in parts.literals.items()]
    ambiguous = [list(path[2:]) for path in parts.ambiguous]
    return [items[0], entry[1][0], literals, ambiguous, parts.nodes - 3]  # less the root, ``k`` and the list


def _digest(kind: str, text: str) -> str:
    return kind + hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()


@dataclass
class LoadCache:
    """The records of one fleet root's load cache (``directory`` None: nothing kept, every text read)."""

    directory: Path | None
    _records: dict[str, Any] | None = field(default=None, init=False)
    _lines: dict[str, bytes] = field(default_factory=dict, init=False)
    _used: set[str] = field(default_factory=set, init=False)
    _new: dict[str, bytes] = field(default_factory=dict, init=False)
    _fresh_store: bool = field(default=False, init=False)

    def load(self, text: str, display: str) -> LoadedFile:
        """``yamlio.load_text(text, display)``, from records where they hold the text's parts."""
        whole = _digest("f", text)
        found = self._assembled(text, display, whole)
        if found is not None:
            return found
        loaded = load_text_composed(text, display)  # the reference path: it reports every error
        if isinstance(loaded.positions, dict) and all(p.file == display for p in loaded.positions.values()):
            positions = [[list(path), p.line, p.column] for path, p in loaded.positions.items()]
            literals = [[list(path), written] for path, written in loaded.literals.items()]
            self._put(whole, ["positions", loaded.data, positions, literals, [list(p) for p in loaded.ambiguous]])
        return loaded

    def _assembled(self, text: str, display: str, whole: str) -> LoadedFile | None:
        record = self._get(whole)
        if record is not None:
            kind, data, where, literals, ambiguous = record
            literals = {tuple(path): written for path, written in literals}
            ambiguous = tuple(tuple(path) for path in ambiguous)
            if kind == "marks":
                return LoadedFile(display, data, MarkedPositions(display, where), literals, ambiguous)
            positions = {tuple(path): Position(display, line, column) for path, line, column in where}
            return LoadedFile(display, data, positions, literals, ambiguous)
        sections = split_items(text) if self.directory is not None else None
        if sections is not None:
            loaded = self._from_items(sections, display)
            if loaded is not None:
                return loaded
        parts = one_pass_parts(text)
        if parts is None:
            return None
        if self.directory is not None:
            literals = [[list(p), w] for p, w in parts.literals.items()]
            self._put(whole, ["marks", parts.data, parts.marks, literals, [list(p) for p in parts.ambiguous]])
        return _loaded(display, parts.data, parts.marks, parts.literals, parts.ambiguous)

    def _from_items(self, sections: list[Section], display: str) -> LoadedFile | None:
        data: dict[str, Any] = {}
        marks: dict[str, Any] = {}
        literals: dict[Path_, str] = {}
        ambiguous: list[Path_] = []
        nodes = 1  # the root mapping
        for section in sections:
            key = section.key
            values: list[Any] = []
            entries: list[Any] = []
            nodes += 2  # the key and its list
            for index, (line, item_text) in enumerate(section.items):
                digest = _digest("i", item_text)
                record = self._get(digest)
                if record is None:
                    record = _item_record(item_text)
                    if record is None:
                        return None
                    self._put(digest, record)
                value, entry, item_literals, item_ambiguous, item_nodes = record
                nodes += item_nodes
                shift = (line - 1) << MARK_BITS  # the item was read on line 1
                entries.append(entry + shift if type(entry) is int else [entry[0] + shift, entry[1], shift])
                values.append(value)
                for path, written in item_literals:
                    literals[(key, index, *path)] = written
                for path in item_ambiguous:
                    ambiguous.append((key, index, *path))
            data[key] = values
            marks[key] = [section.line << MARK_BITS, entries]
        if nodes > MAX_NODES:
            return None  # the guard's to refuse, on the reference path
        return _loaded(display, data, marks, literals, ambiguous)

    # --- the records ------------------------------------------------------------------------------------------

    def _get(self, key: str) -> Any:
        """The record under ``key`` (a fresh object on every call: callers own what they get), or None."""
        if self._records is None:
            self._records = self._read()
        if key in self._new:
            self._used.add(key)
            return json.loads(self._new[key])[1]
        record = self._records.get(key)
        if record is None:
            return None
        if key in self._used:  # a second use in one load (two equal items): a copy, never a shared object
            return json.loads(self._lines[key])[1]
        self._used.add(key)
        return record

    def _put(self, key: str, record: list[Any]) -> None:
        if self.directory is None:
            return
        try:
            line = json.dumps([key, record], ensure_ascii=True, separators=(",", ":"), allow_nan=True).encode()
        except (TypeError, ValueError, RecursionError):
            return  # not JSON data: not kept
        self._new[key] = line
        self._used.add(key)

    def _read(self) -> dict[str, Any]:
        """The store's records by key; empty (and the store to be rewritten) when missing, foreign or corrupt."""
        self._fresh_store = True
        if self.directory is None:
            return {}
        path = self.directory / _STORE_NAME
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_STORE_BYTES + 1)
        except OSError:
            return {}
        if len(raw) > MAX_STORE_BYTES:
            return {}
        head, _, rest = raw.partition(b"\n")
        try:
            header = json.loads(head)
        except ValueError:
            return {}
        if header != {"format": LOAD_CACHE_FORMAT, "fingerprint": code_fingerprint()}:
            return {}
        bodies: list[bytes] = []
        for line in rest.split(b"\n"):
            body = line[_DIGEST_HEX + 1 :]
            if line[_DIGEST_HEX : _DIGEST_HEX + 1] == b" " and hashlib.sha256(body).hexdigest().encode() == line[
                :_DIGEST_HEX
            ]:
                bodies.append(body)
        try:
            pairs = json.loads(b"[" + b",".join(bodies) + b"]")
        except ValueError:
            return {}
        records: dict[str, Any] = {}
        for body, pair in zip(bodies, pairs, strict=True):
            if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and isinstance(pair[1], list):
                records[pair[0]] = pair[1]
                self._lines[pair[0]] = body
        self._fresh_store = False
        return records

    def store(self) -> None:
        """Append the records made by this load (rewrite the store when it was unusable or mostly unused); a
        failure to write leaves the cache as it was (it is only ever a shortcut)."""
        if self.directory is None or self._records is None:
            return
        unused = len(self._lines.keys() - self._used)
        compact = unused > SLACK_RECORDS + len(self._used) // 8
        if not self._new and not self._fresh_store and not compact:
            return
        lines = [hashlib.sha256(body).hexdigest().encode() + b" " + body + b"\n" for body in self._new.values()]
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            ignore = self.directory / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# fleetgen's load cache (machine-local): never commit it\n*\n", encoding="utf-8")
            path = self.directory / _STORE_NAME
            if self._fresh_store or compact:
                kept = [
                    hashlib.sha256(body).hexdigest().encode() + b" " + body + b"\n"
                    for key, body in self._lines.items()
                    if key in self._used and key not in self._new
                ]
                header = json.dumps({"format": LOAD_CACHE_FORMAT, "fingerprint": code_fingerprint()}).encode()
                replace_file(path, b"".join([header, b"\n", *kept, *lines]))
            else:
                with path.open("ab") as handle:
                    handle.write(b"".join(lines))
        except OSError:
            return
        self._lines.update(self._new)
        self._new = {}
        self._fresh_store = False


def _loaded(display: str, data: Any, marks: Any, literals: dict[Path_, str], ambiguous: list[Path_]) -> LoadedFile:
    return LoadedFile(display, data, MarkedPositions(display, marks), literals, tuple(ambiguous))
