"""Golden files: every cluster's build committed under ``golden/``, compared with a fresh build.

Layout: ``golden/<cluster>/<kustomization>/<kind>.<namespace|_cluster>.<name>.yaml`` and, for a
templated HelmRelease, ``golden/<cluster>/<kustomization>/helmrelease.<ns>.<name>/<kind>.<ns>.<name>.yaml``.
A comparison reports per cluster the resources added, changed and removed, then unified diffs
labelled by cluster and resource. Only ``update`` writes, and only files that changed.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TextIO

from generator.build.fleet import build_fleet
from generator.build.model import BuildOptions, FleetBuild, parse_golden_name
from generator.errors import InventoryError, Problem
from generator.guard import MAX_MANIFEST_BYTES as MAX_GOLDEN_BYTES
from generator.guard import check_path, walk_files
from generator.render.writer import atomic_write
from generator.tools import Toolset

GOLDEN_DIR = "golden"
Status = Literal["added", "changed", "removed"]
_COLOURS = {"+": "\x1b[32m", "-": "\x1b[31m", "@": "\x1b[36m"}
_RESET = "\x1b[0m"


@dataclass(frozen=True)
class Change:
    """One resource that differs between two builds (old → new) of a cluster."""

    path: str
    status: Status
    old: str | None
    new: str | None
    label: str

    @property
    def cluster(self) -> str:
        """The cluster the resource belongs to."""
        return self.path.split("/", 1)[0]

    @property
    def relative(self) -> str:
        """The path below the cluster folder."""
        return self.path.split("/", 1)[1] if "/" in self.path else ""

    def unified(self, old_name: str, new_name: str, context: int = 3) -> str:
        """A unified diff of the resource's YAML."""
        lines = difflib.unified_diff(
            (self.old or "").splitlines(keepends=True),
            (self.new or "").splitlines(keepends=True),
            fromfile=f"{old_name}/{self.path}" if self.old is not None else "/dev/null",
            tofile=f"{new_name}/{self.path}" if self.new is not None else "/dev/null",
            n=context,
        )
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


@dataclass
class Comparison:
    """Every difference between two golden trees."""

    changes: list[Change] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when the trees are identical."""
        return not self.changes

    def by_cluster(self) -> dict[str, list[Change]]:
        """Changes grouped by cluster, clusters and paths sorted."""
        grouped: dict[str, list[Change]] = {}
        for change in sorted(self.changes, key=lambda c: c.path):
            grouped.setdefault(change.cluster, []).append(change)
        return grouped

    def counts(self, cluster: str | None = None) -> dict[str, int]:
        """Number of added, changed and removed resources (of one cluster, or all)."""
        counts = {"added": 0, "changed": 0, "removed": 0}
        for change in self.changes:
            if cluster is None or change.cluster == cluster:
                counts[change.status] += 1
        return counts


def resource_label(path: str, build: FleetBuild | None = None) -> str:
    """``Kind namespace/name`` of a golden path (from the build when it has the resource)."""
    if build is not None:
        resource = build.resource(path)
        if resource is not None:
            return resource.label
    kind, namespace, name = parse_golden_name(path.rsplit("/", 1)[-1])
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def compare_trees(old: Mapping[str, str], new: Mapping[str, str], *, old_build: FleetBuild | None = None,
                  new_build: FleetBuild | None = None) -> Comparison:
    """Compare two golden trees (``{"<cluster>/<path>": text}``)."""
    changes = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        status: Status = "added" if before is None else "removed" if after is None else "changed"
        label = resource_label(path, new_build if after is not None else old_build)
        changes.append(Change(path, status, before, after, label))
    return Comparison(changes)


def read_tree(golden_dir: Path, clusters: Iterable[str] | None = None) -> dict[str, str]:
    """The golden files of the given clusters (every cluster folder when None), as written on disk."""
    if not golden_dir.is_dir():
        return {}
    names = sorted(clusters) if clusters is not None else sorted(p.name for p in golden_dir.iterdir() if p.is_dir())
    tree: dict[str, str] = {}
    for name in names:
        folder = golden_dir / name
        if not folder.is_dir():
            continue
        paths, refused = walk_files(folder, golden_dir, (".yaml",))
        if refused:
            raise InventoryError(refused)
        for path in paths:
            relative = path.relative_to(golden_dir).as_posix()
            check_path(path, golden_dir, relative)
            with path.open("rb") as handle:
                data = handle.read(MAX_GOLDEN_BYTES + 1)
            if len(data) > MAX_GOLDEN_BYTES:
                raise InventoryError([Problem(relative, 0, 0, "", "golden file is larger than the input limit")])
            # not UTF-8 is drift, not an input error: the comparison shows it
            tree[relative] = data.decode("utf-8", errors="replace")
    return tree


def colour(text: str, enabled: bool) -> str:
    """Colour a unified diff's lines for a terminal."""
    if not enabled:
        return text
    out = []
    for line in text.splitlines(keepends=True):
        code = None if line.startswith(("+++", "---")) else _COLOURS.get(line[:1])
        out.append(f"{code}{line.rstrip(chr(10))}{_RESET}\n" if code else line)
    return "".join(out)


def use_colour(stream: TextIO) -> bool:
    """Colour when writing to a terminal, unless NO_COLOR is set."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def summary(comparison: Comparison, *, title: str, resources: bool = True) -> list[str]:
    """The blast radius: clusters affected, then per cluster each resource (unless not ``resources``)."""
    grouped = comparison.by_cluster()
    total = comparison.counts()
    lines = [f"{title}: {len(grouped)} cluster(s) affected, {total['added']} added, {total['changed']} changed, "
             f"{total['removed']} removed"]
    for cluster, changes in grouped.items():
        counts = comparison.counts(cluster)
        lines.append(f"  {cluster}: {counts['added']} added, {counts['changed']} changed, {counts['removed']} removed")
        for change in changes if resources else ():
            lines.append(f"    {change.status:<8} {change.label}  ({change.relative})")
    return lines


@dataclass
class GoldenResult:
    """What a golden check or update found (and, for an update, wrote)."""

    comparison: Comparison
    build: FleetBuild
    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def _selected(options: BuildOptions) -> bool:
    return bool(options.clusters or options.shard)


def compare_golden(root: Path, golden_dir: Path | None = None, options: BuildOptions | None = None,
                   tools: Toolset | None = None) -> GoldenResult:
    """Build the (selected) clusters and compare them with the golden tree; writes nothing."""
    options = options or BuildOptions()
    golden_dir = golden_dir or root / GOLDEN_DIR
    build = build_fleet(root, options, tools=tools)
    current = read_tree(golden_dir, list(build.clusters) if _selected(options) else None)
    return GoldenResult(compare_trees(current, build.files(), new_build=build), build)


def update_golden(root: Path, golden_dir: Path | None = None, options: BuildOptions | None = None,
                  tools: Toolset | None = None) -> GoldenResult:
    """Rebuild and write the golden tree: changed and new files written atomically, stale ones deleted."""
    golden_dir = golden_dir or root / GOLDEN_DIR
    result = compare_golden(root, golden_dir, options, tools)
    for change in result.comparison.changes:
        target = golden_dir / change.path
        if change.new is None:
            target.unlink(missing_ok=True)
            result.deleted.append(change.path)
            parent = target.parent
            while parent != golden_dir and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
        else:
            atomic_write(target, change.new)
            result.written.append(change.path)
    return result


def check_golden(root: Path, golden_dir: Path | None = None, options: BuildOptions | None = None,
                 out: TextIO | None = None, tools: Toolset | None = None) -> int:
    """Compare and print the summary and diffs; 0 when the golden tree is current, else 1."""
    out = out or sys.stdout
    result = compare_golden(root, golden_dir, options, tools)
    comparison = result.comparison
    for warning in result.build.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if comparison.clean:
        count = sum(len(c.resources) for c in result.build.clusters.values())
        print(f"golden files are up to date: {len(result.build.clusters)} clusters, {count} resources", file=out)
        return 0
    print("\n".join(summary(comparison, title="golden files differ from the build")), file=out)
    coloured = use_colour(out)
    for change in sorted(comparison.changes, key=lambda c: c.path):
        print(f"\n### {change.cluster}: {change.status} {change.label}", file=out)
        print(colour(change.unified("golden", "built"), coloured), end="", file=out)
    print("\nrun `fleetgen golden --update` (or `invoke golden --update`) to accept these changes", file=out)
    return 1
