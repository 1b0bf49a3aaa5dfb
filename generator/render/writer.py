"""Write: put a file plan on disk, changing only what changed, atomically, and guarding hand edits.

A manifest (``.fleetgen/manifest.json`` under the output root) records the sha256 of every file
fleetgen wrote. A later render deletes files it wrote before and no longer produces, never touches
files it did not write, and refuses to overwrite or delete a generated file edited by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from generator.errors import InventoryError, OutputConflict, Problem
from generator.guard import MAX_MANIFEST_BYTES, read_text

MANIFEST = ".fleetgen/manifest.json"


def sha256(text: str) -> str:
    """Hex sha256 of text as written (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Changes:
    """What a render would do (or did) to an output tree."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when the tree already matches the plan."""
        return not (self.created or self.updated or self.deleted or self.conflicts)

    def summary(self) -> str:
        """One line: counts of each kind of change."""
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, {len(self.deleted)} deleted, "
            f"{self.unchanged} unchanged"
        )


_CONFLICT_MARKER = re.compile(r"^(<{7}|={7}|>{7}|\|{7})( |$)", re.M)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MANIFEST_HELP = (
    "it records what fleetgen wrote, to prune old files and guard hand edits, so fleetgen will not guess it: "
    "take one side (git checkout --theirs -- FILE) and re-render, or delete it and run `fleetgen render --force` "
    "(files generated before and no longer produced are then left for you to delete)"
)


def _display(path: Path) -> str:
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()


def _safe_relative(name: str) -> bool:
    """True for a normalised relative POSIX path that stays below the output root."""
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or "\\" in name or {"..", "."} & set(parts):
        return False
    return PurePosixPath(*parts).as_posix() == name


def parse_manifest(text: str, display: str) -> dict[str, str]:
    """The ``{path: sha256}`` of a manifest's text; InventoryError naming the file (and line) when it is corrupt:
    git conflict markers, invalid JSON, or not the shape fleetgen writes."""

    def corrupt(message: str, line: int = 0, column: int = 0) -> InventoryError:
        text = f"corrupt fleetgen manifest: {message}; {_MANIFEST_HELP}"
        return InventoryError([Problem(display, line, column, "", text)])

    marker = _CONFLICT_MARKER.search(text)
    if marker:
        line = text.count("\n", 0, marker.start()) + 1
        raise corrupt(f"git conflict marker '{marker.group(1)}' (two renders were merged)", line, 1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise corrupt(f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from exc
    except RecursionError as exc:
        raise corrupt("invalid JSON: nested too deep") from exc
    if not isinstance(data, dict) or data.get("generator") != "fleetgen" or not isinstance(data.get("files"), dict):
        raise corrupt('expected {"generator": "fleetgen", "files": {PATH: SHA256, ...}}')
    files: dict[str, str] = data["files"]
    for name, digest in files.items():
        if not _safe_relative(name):
            raise corrupt(f"file name {name!r} is not a relative path below the output folder")
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise corrupt(f"the hash of {name!r} is not a sha256 hex digest")
    return files


def read_manifest(out: Path) -> dict[str, str]:
    """The recorded ``{path: sha256}`` of what fleetgen last wrote under ``out`` (read through the input guard)."""
    path = out / MANIFEST
    if not path.exists() and not path.is_symlink():
        return {}
    display = _display(path)
    return parse_manifest(read_text(path, out, display, limit=MAX_MANIFEST_BYTES), display)


def _current(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def compare(out: Path, plan: dict[str, str]) -> Changes:
    """Compare an output tree with a plan, without writing anything."""
    manifest = read_manifest(out)
    changes = Changes()
    for rel, text in plan.items():
        current = _current(out / rel)
        wanted = sha256(text)
        if current is None:
            changes.created.append(rel)
        elif current == wanted:
            changes.unchanged += 1
        else:
            changes.updated.append(rel)
            if manifest.get(rel) != current:
                changes.conflicts.append(rel)
    for rel, recorded in manifest.items():
        if rel in plan:
            continue
        current = _current(out / rel)
        if current is None:
            continue
        changes.deleted.append(rel)
        if current != recorded:
            changes.conflicts.append(rel)
    for group in (changes.created, changes.updated, changes.deleted, changes.conflicts):
        group.sort()
    return changes


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(out: Path, plan: dict[str, str], force: bool = False) -> Changes:
    """Apply a plan to ``out``; raise OutputConflict (writing nothing) on hand-edited files unless forced."""
    changes = compare(out, plan)
    if changes.conflicts and not force:
        raise OutputConflict(changes.conflicts)
    for rel in (*changes.created, *changes.updated):
        atomic_write(out / rel, plan[rel])
    for rel in changes.deleted:
        target = out / rel
        target.unlink(missing_ok=True)
        parent = target.parent
        while parent != out and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    manifest = {"generator": "fleetgen", "files": {rel: sha256(text) for rel, text in sorted(plan.items())}}
    manifest_text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    if _current(out / MANIFEST) != sha256(manifest_text):
        atomic_write(out / MANIFEST, manifest_text)
    return changes
