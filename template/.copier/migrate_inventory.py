"""Rewrite inventory keys renamed between two template versions (run by `copier update`, see copier.yml).

Reads ``renames.yaml`` next to this file. For every rename whose version lies in (--from, --to], renames
the key in each ``inventory/**/*.y*ml`` and ``overlays/*.y*ml`` below the current directory. Only the
characters of the key itself change, so comments, quoting and layout are kept. Needs nothing beyond
copier's own dependencies (PyYAML, packaging), because copier runs it with its own interpreter.

    python migrate_inventory.py --from 1.0.0 --to 2.0.0 [--root DIR] [--renames FILE]
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.version import InvalidVersion, Version

SCOPES = ("fleet", "settings", "components", "clusters", "apps", "teams")
KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class MigrationError(Exception):
    """A rename cannot be applied (bad renames.yaml, or the new key already exists)."""


@dataclass(frozen=True)
class Rename:
    """One renamed key: at ``path`` inside each item of ``scope``, the last key becomes ``to``."""

    version: Version
    scope: str
    path: tuple[str, ...]
    to: str

    def describe(self) -> str:
        """``scope: a.b.old -> new`` for messages."""
        return f"{self.scope}: {'.'.join(self.path)} -> {self.to}"


def load_renames(path: Path) -> list[Rename]:
    """Parse and check renames.yaml."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = data.get("renames") or []
    if not isinstance(entries, list):
        raise MigrationError(f"{path}: 'renames' must be a list")
    renames = []
    for index, entry in enumerate(entries):
        where = f"{path}: renames[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"version", "scope", "path", "to"}:
            raise MigrationError(f"{where}: expected exactly the keys version, scope, path, to")
        try:
            version = Version(str(entry["version"]))
        except InvalidVersion as exc:
            raise MigrationError(f"{where}: {exc}") from exc
        parts = tuple(str(entry["path"]).split("."))
        if entry["scope"] not in SCOPES:
            raise MigrationError(f"{where}: scope must be one of {', '.join(SCOPES)}")
        if not all(p == "*" or KEY.match(p) for p in parts) or parts[-1] == "*":
            raise MigrationError(f"{where}: path must be dotted keys ('*' for any), ending in a key")
        if not KEY.match(str(entry["to"])):
            raise MigrationError(f"{where}: 'to' must be a plain key")
        renames.append(Rename(version, entry["scope"], parts, str(entry["to"])))
    return sorted(renames, key=lambda r: r.version)


def _section(root: yaml.Node, name: str) -> yaml.Node | None:
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if isinstance(key, yaml.ScalarNode) and key.value == name:
                return value
    return None


def _starts(root: yaml.Node, scope: str, overlay: bool) -> list[yaml.Node]:
    """The nodes a rename's path is relative to, in one document."""
    if overlay:
        return [root] if scope == "settings" else []
    if scope == "fleet":
        found = _section(root, "fleet")
        return [found] if found is not None else []
    if scope == "settings":
        defaults = _section(root, "defaults")
        clusters = _section(root, "clusters")
        items = list(clusters.value) if isinstance(clusters, yaml.SequenceNode) else []
        return ([defaults] if defaults is not None else []) + items
    section = _section(root, scope)
    return list(section.value) if isinstance(section, yaml.SequenceNode) else []


def _find(node: yaml.Node, parts: tuple[str, ...]) -> list[tuple[yaml.MappingNode, yaml.ScalarNode]]:
    """Every (mapping, key node) the path reaches."""
    head, rest = parts[0], parts[1:]
    hits: list[tuple[yaml.MappingNode, yaml.ScalarNode]] = []
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or (head != "*" and key.value != head):
                continue
            if rest:
                hits.extend(_find(value, rest))
            else:
                hits.append((node, key))
    elif isinstance(node, yaml.SequenceNode) and head == "*" and rest:
        for item in node.value:
            hits.extend(_find(item, rest))
    return hits


def rename_in_text(text: str, renames: list[Rename], *, overlay: bool, name: str) -> tuple[str, list[str]]:
    """Apply renames to one file's text; return the new text and one message per renamed key."""
    messages: list[str] = []
    for rename in renames:
        edits: list[tuple[int, int, int]] = []
        for document in yaml.compose_all(text, Loader=yaml.SafeLoader):
            if document is None:
                continue
            for start in _starts(document, rename.scope, overlay):
                for mapping, key in _find(start, rename.path):
                    line = key.start_mark.line + 1
                    if any(isinstance(k, yaml.ScalarNode) and k.value == rename.to for k, _ in mapping.value):
                        raise MigrationError(
                            f"{name}:{line}: cannot rename '{key.value}' to '{rename.to}': both keys are present"
                        )
                    edits.append((key.start_mark.index, key.end_mark.index, line))
        for begin, end, line in sorted(edits, reverse=True):
            text = text[:begin] + rename.to + text[end:]
            messages.append(f"{name}:{line}: {rename.describe()}")
    return text, sorted(messages)


def migrate(root: Path, renames: list[Rename], old: Version, new: Version) -> list[str]:
    """Rename keys in every inventory and overlay file of ``root``; return what was changed."""
    wanted = [r for r in renames if old < r.version <= new]
    if not wanted:
        return []
    files = [(p, False) for p in sorted((root / "inventory").rglob("*")) if p.suffix in {".yaml", ".yml"}]
    files += [(p, True) for p in sorted((root / "overlays").glob("*")) if p.suffix in {".yaml", ".yml"}]
    changed: list[str] = []
    for path, overlay in files:
        if not path.is_file():
            continue
        name = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        try:
            new_text, messages = rename_in_text(text, wanted, overlay=overlay, name=name)
        except yaml.YAMLError as exc:
            print(f"warning: {name} is not valid YAML, not migrated: {exc}", file=sys.stderr)
            continue
        if new_text != text:
            path.write_text(new_text, encoding="utf-8")
        changed.extend(messages)
    return changed


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--from OLD --to NEW [--root DIR] [--renames FILE]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="old", required=True, help="template version the repo was on")
    parser.add_argument("--to", dest="new", required=True, help="template version being updated to")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--renames", type=Path, default=Path(__file__).with_name("renames.yaml"))
    args = parser.parse_args(argv)
    try:
        changed = migrate(args.root, load_renames(args.renames), Version(args.old), Version(args.new))
    except (MigrationError, InvalidVersion) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for message in changed:
        print(f"migrated {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
