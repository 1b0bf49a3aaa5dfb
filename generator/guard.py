"""The input guard: every file fleetgen reads from a fleet root passes here before any parser sees it.

A file is refused — as a ``Problem`` naming it (and the line, where there is one), never as a traceback —
when it is a symlink leading out of the fleet root (kustomize's default load restrictor refuses the same:
"security: file 'foo' is not in or below 'bar'", kubernetes-sigs/kustomize docs/FAQ.md),
not a regular file (a FIFO would block, a device would stream forever), larger than its size limit, or
not UTF-8. A YAML file is then pre-scanned as an event stream by libyaml (C, iterative, no recursion) and
refused when it nests deeper than ``MAX_DEPTH`` or when its aliases would expand to more than
``MAX_NODES`` nodes: the expansion is *counted* (an alias costs the size of the node it names), never
performed, so an alias bomb costs microseconds. Only then does a positional reader (libyaml's composer through
``fastload``, or ruamel) build it. A plain file (no anchors, aliases or tags: the common case) skips this scan:
``fastload.one_pass_load`` reads the same event stream once, checking the same limits as it goes and stopping at
the first one passed; anything it does not read (every refusal included) comes here, so the messages are these.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml  # type: ignore[import-untyped,unused-ignore]

from generator.errors import InventoryError, Problem

MAX_YAML_BYTES = 4 * 1024 * 1024
"""Largest inventory, overlay or chart file (a 500-cluster inventory file is about 200 KiB)."""
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
"""Largest ``.fleetgen/manifest.json`` (one line of about 100 bytes per generated file)."""
MAX_DEPTH = 100
"""Deepest nesting of mappings and sequences in one YAML document."""
MAX_NODES = 250_000
"""Most nodes a YAML file may have once every alias is counted as a copy of what it names."""


@dataclass(frozen=True)
class Guarded:
    """A file that passed the guard: its display name and decoded text."""

    display: str
    text: str


def _fail(display: str, message: str, line: int = 0, column: int = 0) -> InventoryError:
    return InventoryError([Problem(display, line, column, "", message)])


def inside(path: Path, root: Path) -> bool:
    """True when ``path`` (after resolving every symlink) is ``root`` or below it."""
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def check_path(path: Path, root: Path, display: str) -> None:
    """Refuse a symlink leaving ``root`` and anything that is not a regular file."""
    try:
        link = path.lstat()
    except OSError as exc:
        raise _fail(display, f"cannot read: {exc.strerror or exc}") from exc
    if stat.S_ISLNK(link.st_mode) and not inside(path, root):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        raise _fail(
            display,
            f"symlink to '{target}' leaves the fleet root {root}; fleetgen (like kustomize) reads only files "
            "inside it: copy the file in instead",
        )
    check_regular(path, display)


def check_regular(path: Path, display: str) -> None:
    """Refuse anything but a regular file (after following symlinks): folders, FIFOs, devices, sockets."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise _fail(display, f"cannot read: {exc.strerror or exc} (a dangling symlink?)") from exc
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise _fail(display, f"is {kind}, not a regular file")


def decode(data: bytes, display: str) -> str:
    """UTF-8 text of ``data`` (a leading byte-order mark dropped); a decode error names line and byte offset."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _fail(
            display,
            f"not UTF-8: byte 0x{data[exc.start]:02x} at byte offset {exc.start} cannot be decoded "
            "(saved as Latin-1/cp1252?); save the file as UTF-8",
            line,
            column,
        ) from exc
    return text.removeprefix("\ufeff")


def read_text(path: Path, root: Path, display: str, *, limit: int = MAX_YAML_BYTES) -> str:
    """Read a file of the fleet root through the guard: symlinks, file type, size, UTF-8."""
    check_path(path, root, display)
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise _fail(display, f"cannot read: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise _fail(display, f"is larger than {limit // (1024 * 1024)} MiB, the limit for a file fleetgen reads")
    return decode(data, display)


def _mark(exc: yaml.MarkedYAMLError) -> tuple[int, int]:
    mark = exc.problem_mark or exc.context_mark
    return (mark.line + 1, mark.column + 1) if mark else (1, 1)


def syntax_problem(
    display: str, context: str | None, context_mark: object, problem: str | None, problem_mark: object
) -> Problem:
    """A YAML syntax error as a problem pointing at the construct left open (bracket, quote) when the parser
    names one, and saying where it gave up."""
    constructs = ("flow sequence", "flow mapping", "quoted scalar")  # a block construct is never "left open"
    opened = context_mark if context and any(w in context for w in constructs) else None
    gave_up = problem_mark or context_mark

    def place(mark: object) -> tuple[int, int]:
        return getattr(mark, "line", 0) + 1, getattr(mark, "column", 0) + 1

    if opened is not None and gave_up is not None and place(opened) == place(gave_up):
        opened = None
    at = opened or gave_up
    line, column = place(at) if at else (1, 1)
    message = " ".join(str(part) for part in (context, problem) if part)
    if opened is not None and gave_up is not None:
        where = f"{getattr(gave_up, 'line', 0) + 1}:{getattr(gave_up, 'column', 0) + 1}"
        message = f"{message} (opened here, not closed; the parser gave up at {where})"
    return Problem(display, line, column, "", f"invalid YAML: {message}")


_CORE_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq")
)


def _check_tag(event: yaml.NodeEvent, display: str) -> None:
    """Only plain data: an explicit tag other than the core schema's (``!!python/object``, ``!!binary``,
    ``!custom``) is refused rather than silently ignored."""
    tag = getattr(event, "tag", None)
    if tag is None or tag == "!" or tag in _CORE_TAGS:
        return
    shown = tag.replace("tag:yaml.org,2002:", "!!")
    mark = event.start_mark
    raise _fail(
        display,
        f"YAML tag '{shown}' is not supported: fleetgen reads plain data (strings, numbers, booleans, null, "
        "mappings, lists)",
        mark.line + 1,
        mark.column + 1,
    )


def _events(text: str) -> Iterator[yaml.Event]:
    yield from yaml.parse(text, Loader=yaml.CSafeLoader)


def prescan_yaml(text: str, display: str, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> None:
    """Refuse deep nesting and alias expansion past the per-document budget (every alias counted as a copy of
    the node it names), without building or expanding anything; syntax errors become problems too."""
    depth = 0
    expanded = 0
    sizes: list[int] = []  # nodes counted so far inside each open collection
    anchors: dict[str, int] = {}
    opened: list[str | None] = []
    try:
        for event in _events(text):
            size = 0
            if isinstance(event, yaml.DocumentStartEvent):
                expanded, anchors = 0, {}  # the budget is per document; anchors do not cross documents
            elif isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > max_depth:
                    mark = event.start_mark
                    raise _fail(
                        display,
                        f"nested more than {max_depth} levels deep; fleetgen refuses such input",
                        mark.line + 1,
                        mark.column + 1,
                    )
                _check_tag(event, display)
                sizes.append(1)
                opened.append(event.anchor)
                expanded += 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
                size = sizes.pop()
                anchor = opened.pop()
                if anchor is not None:
                    anchors[anchor] = size
            elif isinstance(event, yaml.ScalarEvent):
                _check_tag(event, display)
                size = 1
                expanded += 1
                if event.anchor is not None:
                    anchors[event.anchor] = 1
            elif isinstance(event, yaml.AliasEvent):
                size = anchors.get(event.anchor, 1)
                expanded += size
            if size and sizes and not isinstance(event, yaml.CollectionStartEvent):
                sizes[-1] += size
            if expanded > max_nodes:
                mark = event.start_mark
                raise _fail(
                    display,
                    f"aliases would expand this document past {max_nodes} nodes (an alias bomb?); "
                    "fleetgen refuses it without expanding it",
                    mark.line + 1,
                    mark.column + 1,
                )
    except yaml.MarkedYAMLError as exc:
        # libyaml (since 0.2.5) caps flow nesting itself ("exceeded maximum nesting depth", 1000 levels) and can
        # meet that cap while scanning ahead for a simple key, before our counter sees the 101st level
        if "maximum nesting depth" in str(exc.problem):
            mark = exc.problem_mark or exc.context_mark
            raise _fail(
                display,
                f"nested more than {max_depth} levels deep; fleetgen refuses such input",
                mark.line + 1 if mark else 1,
                mark.column + 1 if mark else 1,
            ) from exc
        raise InventoryError(
            [syntax_problem(display, exc.context, exc.context_mark, exc.problem, exc.problem_mark)]
        ) from exc
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        message = f"invalid YAML: control character U+{code:04X} is not allowed; remove it"
        raise _fail(display, message, line, column) from exc
    except yaml.YAMLError as exc:
        raise _fail(display, f"invalid YAML: {exc}") from exc


def walk_files(
    folder: Path, root: Path, suffixes: tuple[str, ...] | None, *, recursive: bool = True
) -> tuple[list[Path], list[Problem]]:
    """Files with one of ``suffixes`` (any file when None) below ``folder`` (sorted), following symlinked
    folders that stay inside ``root`` (once each); a symlink leaving the root, or a non-regular entry with such
    a suffix, is a problem."""
    found: list[Path] = []
    problems: list[Problem] = []
    seen: set[Path] = set()

    def display(path: Path) -> str:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            return path.as_posix()

    def wanted(path: Path) -> bool:
        return suffixes is None or path.suffix in suffixes

    def visit(directory: Path) -> None:
        real = directory.resolve()
        if real in seen:
            return
        seen.add(real)
        try:
            entries = sorted(directory.iterdir())
        except OSError as exc:
            problems.append(Problem(display(directory), 0, 0, "", f"cannot list: {exc.strerror or exc}"))
            return
        for entry in entries:
            is_link = entry.is_symlink()
            if is_link and not inside(entry, root):
                if wanted(entry) or (recursive and entry.is_dir()):
                    try:
                        check_path(entry, root, display(entry))
                    except InventoryError as exc:
                        problems.extend(exc.problems)
                continue
            if entry.is_dir():
                if recursive:
                    visit(entry)
                elif wanted(entry):
                    problems.append(Problem(display(entry), 0, 0, "", "is a folder, not a regular file"))
            elif wanted(entry):
                try:
                    check_path(entry, root, display(entry))
                except InventoryError as exc:
                    problems.extend(exc.problems)
                    continue
                found.append(entry)

    if folder.is_dir():
        visit(folder)
    return sorted(found), problems
