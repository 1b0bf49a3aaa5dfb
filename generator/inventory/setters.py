"""Flux image automation's setter update, offline and faithful to upstream.

What the image-automation-controller does when an ImageUpdateAutomation runs with ``strategy: Setters``
(fluxcd/image-automation-controller v1.2.1, commit aec0862, ``internal/update/{setters,filereader,filter}.go``;
its ``release/v1.2.x`` head is unchanged there; Flux 2.9.4 ships v1.2.4; kyaml v0.21.1 ``fieldmeta``):

- **Files.** ``spec.update.path`` (default: the repository root) is walked; only files ending ``.yaml`` or
  ``.yml`` (or named ``Kustomization``) whose bytes contain the token ``"$imagepolicy"`` (with the quotes) are
  parsed; one that then fails to parse is skipped. A file path works too: the reader and kyaml's
  ``LocalPackageWriter`` both take the file's folder as the package when the path is not a directory.
- **Setters.** For every ImagePolicy in the automation's namespace (optionally ``policySelector``) that has a
  ``status.latestRef``, four setters exist: ``<ns>:<name>`` → ``name:tag`` (``@digest`` appended when set),
  ``<ns>:<name>:tag``, ``<ns>:<name>:name`` and ``<ns>:<name>:digest``.
- **Markers.** kyaml ``FieldMeta.Read`` looks at a scalar node's line comment, then (only when the line
  comment is empty) its head comment; leading ``#`` are stripped and the rest must be a JSON object of strings
  whose ``"$imagepolicy"`` names a known setter; anything else (text after the JSON, an unknown setter) is no
  marker. Only scalar nodes are set; a value's head comment sits on the mapping key in go-yaml v3, so in a
  mapping only the same-line comment counts: ``tag: "1.4.2" # {"$imagepolicy": "flux-system:checkout:tag"}``.
  (This module reads same-line comments only, so a head-comment marker above a sequence item, which upstream
  would honour, is not seen here; fleetgen's inventory markers are mapping values.)
- **Replacement.** The scalar's whole value becomes the setter's value; its quoting style is kept, except that
  a plain scalar whose new value YAML 1.1 reads as a non-string (``1.5``, ``yes``) is double-quoted
  (``yaml.FormatNonStringStyle``). Only files with a changed value are written.

This module changes only the marked scalar's characters (upstream re-emits the changed file with kyaml:
comments kept, indentation normalised to two spaces); what the file means afterwards is the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

#: The marker key (image-automation-controller ``internal/constants.SetterShortHand``).
SHORTHAND = "$imagepolicy"
#: What a file must contain to be parsed at all (``fmt.Sprintf("%q", SetterShortHand)``).
TOKEN = json.dumps(SHORTHAND)

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class LatestRef:
    """An ImagePolicy's ``status.latestRef`` (image-reflector-controller v1.2.0 ``api/v1.ImageRef``)."""

    name: str
    tag: str
    digest: str = ""

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}" + (f"@{self.digest}" if self.digest else "")


@dataclass(frozen=True)
class Marker:
    """A scalar carrying a setter marker: where it is and which setter it names."""

    path: Path_
    setter: str
    line: int  # 1-based line of the value
    column: int  # 1-based column of the value


@dataclass(frozen=True)
class Change:
    """One value a setter changed (``update.Change``)."""

    file: str
    setter: str
    old: str
    new: str


def setter_values(policies: Mapping[str, LatestRef]) -> dict[str, str]:
    """The four setters of each policy, keyed ``<namespace>:<name>[:tag|:name|:digest]``."""
    values: dict[str, str] = {}
    for key, ref in policies.items():
        values[key] = str(ref)
        values[f"{key}:tag"] = ref.tag
        values[f"{key}:name"] = ref.name
        values[f"{key}:digest"] = ref.digest
    return values


def marker_of(comment: str) -> str | None:
    """The setter a comment names, as kyaml ``fieldmeta.processShortHand`` reads it (else None)."""
    text = comment.lstrip("#")
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        return None  # Go's json.Unmarshal into map[string]string fails
    name = parsed.get(SHORTHAND, "")
    return name or None


def _line_comment(token: Any) -> str:
    """The same-line part of a ruamel comment token (ruamel glues following comment lines to it)."""
    if token is None:
        return ""
    value = str(getattr(token, "value", ""))
    return value.split("\n", 1)[0].strip()


def _walk(node: Any, path: Path_) -> Iterator[tuple[Path_, int, int, str]]:
    """Every scalar value with a same-line comment: (path, 0-based line, 0-based column, comment)."""
    if isinstance(node, CommentedMap):
        for key, value in node.items():
            if isinstance(value, (CommentedMap, CommentedSeq)):
                yield from _walk(value, (*path, key))
                continue
            tokens = node.ca.items.get(key)
            comment = _line_comment(tokens[2] if tokens and len(tokens) > 2 else None)
            if comment:
                line, column = node.lc.value(key)
                yield (*path, key), line, column, comment
    elif isinstance(node, CommentedSeq):
        for index, value in enumerate(node):
            if isinstance(value, (CommentedMap, CommentedSeq)):
                yield from _walk(value, (*path, index))
                continue
            tokens = node.ca.items.get(index)
            comment = _line_comment(tokens[0] if tokens else None)
            if comment:
                line, column = node.lc.item(index)
                yield (*path, index), line, column, comment


def find_markers(text: str) -> list[Marker]:
    """Every setter marker in a YAML file (every document); [] when the file lacks the token or does not parse
    (upstream skips such files)."""
    if TOKEN not in text:
        return []
    reader = YAML(typ="rt")
    try:
        documents = list(reader.load_all(text))
    except YAMLError:
        return []
    markers = []
    for document in documents:
        for path, line, column, comment in _walk(document, ()):
            setter = marker_of(comment)
            if setter is not None:
                markers.append(Marker(path, setter, line + 1, column + 1))
    return markers


_PLAIN_END = re.compile(r"\s+#|\s*$")


def _yaml11_non_string(value: str) -> bool:
    """kyaml ``IsValueNonString``: a YAML 1.1 reader takes the value for something other than a string."""
    if value == "" or "\n" in value:
        return False
    try:
        return not isinstance(yaml.safe_load(value), str)
    except yaml.YAMLError:
        return False


def replace_scalar(line: str, column: int, new: str) -> tuple[str, str]:
    """``line`` with the single-line scalar starting at 0-based ``column`` set to ``new`` (style kept, a plain
    YAML 1.1 non-string double-quoted); returns (new line, old value)."""
    quote = line[column] if column < len(line) else ""
    if quote in "\"'":
        end = column + 1
        while end < len(line):
            if line[end] == quote:
                if quote == "'" and line[end + 1 : end + 2] == "'":
                    end += 2
                    continue
                break
            end += 2 if quote == '"' and line[end] == "\\" else 1
        raw = line[column : end + 1]
        old = yaml.safe_load(raw)
        text = json.dumps(new) if quote == '"' else "'" + new.replace("'", "''") + "'"
        return line[:column] + text + line[end + 1 :], str(old)
    match = _PLAIN_END.search(line, column)
    end = match.start() if match else len(line)
    old = line[column:end]
    text = json.dumps(new) if _yaml11_non_string(new) else new
    return line[:column] + text + line[end:], old


def apply_setters(text: str, policies: Mapping[str, LatestRef], file: str = "") -> tuple[str, list[Change]]:
    """Run the setters of ``policies`` (keyed ``<namespace>:<name>``) over one file's text."""
    values = setter_values(policies)
    lines = text.split("\n")
    changes = []
    for marker in find_markers(text):
        if marker.setter not in values:
            continue  # upstream: an unknown setter is no marker
        new = values[marker.setter]
        updated, old = replace_scalar(lines[marker.line - 1], marker.column - 1, new)
        if old != new:
            lines[marker.line - 1] = updated
            changes.append(Change(file, marker.setter, old, new))
    return "\n".join(lines), changes


def update_path(root: Path, update: str, policies: Mapping[str, LatestRef]) -> list[Change]:
    """What the controller does to the checkout at ``root`` for an automation whose ``spec.update.path`` is
    ``update`` (a folder or one file, relative to the repository root): every changed file is written back."""
    target = (root / update).resolve()
    files = [target] if target.is_file() else sorted(p for p in target.rglob("*") if p.is_file())
    changes: list[Change] = []
    for path in files:
        if path.suffix not in {".yaml", ".yml"} and path.name != "Kustomization":
            continue
        text = path.read_text(encoding="utf-8")
        new_text, changed = apply_setters(text, policies, path.relative_to(root.resolve()).as_posix())
        if changed:
            path.write_text(new_text, encoding="utf-8")
            changes.extend(changed)
    return changes
