"""Diff for review: build a git ref (in a temporary worktree) and the working tree, and show what changes.

The report starts with the blast radius (clusters affected; resources added, changed and removed per
cluster; container image changes), then per-resource diffs. ``text`` is for a terminal (coloured when
it is one), ``markdown`` for a pull-request comment (collapsible per cluster, truncated with a visible
marker past a size limit), ``json`` for machines. ``FLEETGEN_DIFF`` names an external differ (e.g.
``dyff between --omit-header``), run as ``<command> OLD NEW`` per changed resource.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from generator.build.fleet import build_fleet, default_cache_dir
from generator.build.model import BuildOptions, FleetBuild
from generator.command import Command
from generator.errors import ToolError, UsageError
from generator.render.overview import ClusterFacts, blast_radius_mermaid, cluster_facts
from generator.tools import Toolset, find_tools
from generator.verify.golden import Change, Comparison, colour, compare_trees, summary, use_colour
from generator.yamlio import load_documents

DIFFER_ENV = "FLEETGEN_DIFF"
DEFAULT_MARKDOWN_LIMIT = 60_000
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


@dataclass(frozen=True)
class ImageChange:
    """Container images of one resource before and after."""

    cluster: str
    resource: str
    path: str
    removed: tuple[str, ...]
    added: tuple[str, ...]


@dataclass
class DiffResult:
    """A comparison of two builds of the fleet, with the images that change."""

    base: str
    base_commit: str
    comparison: Comparison
    images: list[ImageChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    clusters: dict[str, ClusterFacts] = field(default_factory=dict)  # base's and head's, for the blast radius
    environments: tuple[str, ...] = ()


def images_of(text: str | None) -> set[str]:
    """Images a resource runs: every container's image, and ``repository``/``tag`` pairs in HelmRelease values."""
    if not text:
        return set()
    try:
        docs = load_documents(text)
    except Exception:  # ruamel raises several unrelated types; a corrupt file simply has no images
        return set()
    found: set[str] = set()

    def walk(node: Any, in_values: bool) -> None:
        if isinstance(node, Mapping):
            for key in _CONTAINER_LISTS:
                items = node.get(key)
                if isinstance(items, list):
                    found.update(str(c["image"]) for c in items if isinstance(c, Mapping) and c.get("image"))
            if in_values and isinstance(node.get("repository"), str) and isinstance(node.get("tag"), str | int):
                image = f"{node['repository']}:{node['tag']}"
                found.add(f"{image}@{node['digest']}" if node.get("digest") else image)
            for key, value in node.items():
                walk(value, in_values or (key == "values" and isinstance(value, Mapping)))
        elif isinstance(node, list):
            for item in node:
                walk(item, in_values)

    for doc in docs:
        walk(doc, False)
    return found


def image_changes(comparison: Comparison) -> list[ImageChange]:
    """Per changed resource, the images that go away and those that arrive."""
    out = []
    for change in sorted(comparison.changes, key=lambda c: c.path):
        before, after = images_of(change.old), images_of(change.new)
        if before != after:
            out.append(ImageChange(change.cluster, change.label, change.path,
                                   tuple(sorted(before - after)), tuple(sorted(after - before))))
    return out


def _git(root: Path) -> Command:
    return Command(("git", "-C", str(root)))


@contextlib.contextmanager
def base_worktree(root: Path, ref: str) -> Iterator[tuple[Path, str]]:
    """A temporary detached worktree of ``ref``; yields the fleet root inside it and the commit."""
    git = _git(root)
    try:
        top = Path(git.run("rev-parse", "--show-toplevel").strip()).resolve()
    except ToolError as exc:
        raise UsageError(f"{root} is not in a git repository: {exc}") from exc
    try:
        commit = git.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    except ToolError as exc:
        raise UsageError(f"--base {ref}: not a commit of {top}") from exc
    relative = root.resolve().relative_to(top)
    holder = Path(tempfile.mkdtemp(prefix="fleetgen-base-"))
    tree = holder / "base"
    git.run("worktree", "add", "--detach", "--quiet", str(tree), commit)
    try:
        yield tree / relative, commit
    finally:
        with contextlib.suppress(ToolError):
            git.run("worktree", "remove", "--force", str(tree))
        shutil.rmtree(holder, ignore_errors=True)
        with contextlib.suppress(ToolError):
            git.run("worktree", "prune")


def _names(root: Path) -> tuple[Any, list[str]]:
    from generator.render.pipeline import plan

    rendered = plan(root)
    return rendered, [c.name for c in rendered.fleet.clusters]


def diff_builds(root: Path, base: str, options: BuildOptions | None = None,
                tools: Toolset | None = None) -> DiffResult:
    """Build ``base`` and the working tree of the fleet at ``root`` and compare them."""
    options = options or BuildOptions()
    tools = tools or find_tools(root)
    shared = dataclasses.replace(options, cache_dir=options.cache_dir or default_cache_dir(root), clusters=(),
                                 shard=None)
    head_rendered, head_names = _names(root)
    with base_worktree(root, base) as (base_root, commit):
        base_rendered, base_names = _names(base_root)
        union = head_names + [n for n in base_names if n not in head_names]
        from generator.build.fleet import select_clusters

        chosen = select_clusters(union, options.clusters, options.shard)
        from generator.build.charts import resolver_for

        base_charts = resolver_for(base_root, tools, base_rendered.fleet, offline=options.offline, cache_root=root)
        base_build = build_fleet(base_root, dataclasses.replace(
            shared, clusters=tuple(n for n in chosen if n in base_names)), rendered=base_rendered, tools=tools,
            charts=base_charts) if any(n in base_names for n in chosen) else _empty()
    head_build = build_fleet(root, dataclasses.replace(shared, clusters=tuple(n for n in chosen if n in head_names)),
                             rendered=head_rendered, tools=tools) if any(n in head_names for n in chosen) else _empty()
    comparison = compare_trees(base_build.files(), head_build.files(), old_build=base_build, new_build=head_build)
    warnings = [f"(base) {w}" for w in base_build.warnings] + head_build.warnings
    facts = cluster_facts([base_rendered.fleet, head_rendered.fleet])
    environments = tuple(head_rendered.fleet.fleet.environments)
    return DiffResult(base, commit, comparison, image_changes(comparison), warnings, facts, environments)


def _empty() -> FleetBuild:
    from generator.build.model import BuildStats

    return FleetBuild({}, BuildStats())


# --- formats ---------------------------------------------------------------------------------------------


def external_diff(command: str, change: Change) -> str:
    """Run an external differ on the old and new YAML of one resource (exit 1 = differences is fine)."""
    with tempfile.TemporaryDirectory(prefix="fleetgen-diff-") as tmp:
        old, new = Path(tmp) / "base.yaml", Path(tmp) / "head.yaml"
        old.write_text(change.old or "", encoding="utf-8")
        new.write_text(change.new or "", encoding="utf-8")
        script = f'{command} "$1" "$2"; code=$?; [ "$code" -le 1 ]'
        return Command(("sh", "-c", script, "fleetgen-diff")).run(old, new)


def _diff_text(change: Change, differ: str | None) -> str:
    if differ:
        return external_diff(differ, change)
    return change.unified("base", "head")


def format_text(result: DiffResult, *, coloured: bool = False, differ: str | None = None) -> str:
    """Blast radius, image changes and per-resource diffs for a terminal."""
    title = f"fleetgen diff {result.base} ({result.base_commit[:12]}) → working tree"
    if result.comparison.clean:
        return f"{title}: no cluster receives anything different\n"
    lines = summary(result.comparison, title=title)
    if result.images:
        lines.append("image changes:")
        for image in result.images:
            lines.append(f"  {image.cluster} {image.resource}: {', '.join(image.removed) or '-'} → "
                         f"{', '.join(image.added) or '-'}")
    out = "\n".join(lines) + "\n"
    for change in sorted(result.comparison.changes, key=lambda c: c.path):
        out += f"\n### {change.cluster}: {change.status} {change.label}\n"
        out += colour(_diff_text(change, differ), coloured)
    return out


def format_markdown(result: DiffResult, *, limit: int = DEFAULT_MARKDOWN_LIMIT, differ: str | None = None) -> str:
    """A pull-request comment: summary table, image changes, one collapsible section per cluster."""
    comparison = result.comparison
    head = f"### fleetgen diff: `{result.base}` (`{result.base_commit[:12]}`) → this change\n\n"
    if comparison.clean:
        return head + "No cluster receives anything different.\n"
    grouped = comparison.by_cluster()
    total = comparison.counts()
    parts = [head, f"**{len(grouped)} cluster(s) affected** · {total['added']} added · {total['changed']} changed · "
                   f"{total['removed']} removed\n\n",
             "| Cluster | Added | Changed | Removed |\n|---|---:|---:|---:|\n"]
    for cluster in grouped:
        counts = comparison.counts(cluster)
        parts.append(f"| `{cluster}` | {counts['added']} | {counts['changed']} | {counts['removed']} |\n")
    parts.append(_blast_radius("".join(parts), result, limit))
    if result.images:
        parts.append("\n**Image changes**\n\n")
        for image in result.images:
            parts.append(f"- `{image.cluster}` {image.resource}: {_codes(image.removed)} → {_codes(image.added)}\n")
    text = "".join(parts)
    shown = 0
    total_changes = len(comparison.changes)
    for cluster, changes in grouped.items():
        counts = comparison.counts(cluster)
        section = [f"\n<details><summary><b>{cluster}</b>: {counts['added']} added, {counts['changed']} changed, "
                   f"{counts['removed']} removed</summary>\n\n"]
        section += [f"- {c.status} `{c.label}` (`{c.relative}`)\n" for c in changes]
        body = "".join(section)
        if len(text) + len(body) + 200 > limit:
            break
        text += body
        for change in changes:
            block = f"\n`{change.label}` ({change.status})\n\n```diff\n{_diff_text(change, differ)}```\n"
            if len(text) + len(block) + 200 > limit:
                break
            text += block
            shown += 1
        text += "\n</details>\n"
    if shown < total_changes:
        text += (f"\n> :warning: **Truncated**: {total_changes - shown} of {total_changes} resource diffs are not "
                 f"shown (limit {limit} characters). Run `fleetgen diff --base {result.base}` locally for all.\n")
    return text


def _blast_radius(text: str, result: DiffResult, limit: int) -> str:
    """The Mermaid diagram of the affected clusters: one node per cluster, or per environment when that would
    take more than half of ``limit``; left out (with a note) when even that would."""
    counts = {cluster: result.comparison.counts(cluster) for cluster in result.comparison.by_cluster()}
    for compact in (False, True):
        diagram = blast_radius_mermaid(counts, result.clusters, result.environments, compact=compact)
        block = f"\n```mermaid\n{diagram}```\n"
        if len(text) + len(block) + 200 <= limit // 2:
            return block
    return "\n_Blast-radius diagram left out: it would not fit in `--limit`._\n"


def _codes(images: tuple[str, ...]) -> str:
    return ", ".join(f"`{i}`" for i in images) or "-"


def format_json(result: DiffResult, *, differ: str | None = None) -> str:
    """Everything as JSON: summary, per-cluster resources, image changes, and the diffs."""
    clusters: dict[str, Any] = {}
    for cluster, changes in result.comparison.by_cluster().items():
        entry: dict[str, list[dict[str, str]]] = {"added": [], "changed": [], "removed": []}
        for change in changes:
            entry[change.status].append({"resource": change.label, "path": change.relative})
        clusters[cluster] = entry
    data = {
        "base": result.base,
        "base_commit": result.base_commit,
        "summary": {"clusters": len(clusters), **result.comparison.counts()},
        "clusters": clusters,
        "images": [dataclasses.asdict(i) | {"removed": list(i.removed), "added": list(i.added)} for i in result.images],
        "diffs": {c.path: _diff_text(c, differ) for c in sorted(result.comparison.changes, key=lambda c: c.path)},
        "warnings": result.warnings,
    }
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def render_result(result: DiffResult, fmt: str, *, stream: TextIO, limit: int = DEFAULT_MARKDOWN_LIMIT) -> str:
    """The report in the asked format."""
    differ = os.environ.get(DIFFER_ENV) or None
    if differ:
        shlex.split(differ)  # fail early on an unbalanced quote
    if fmt == "json":
        return format_json(result, differ=differ)
    if fmt == "markdown":
        return format_markdown(result, limit=limit, differ=differ)
    return format_text(result, coloured=use_colour(stream), differ=differ)
