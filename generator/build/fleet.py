"""Many clusters: render (or take) the fleet's file plan, build the selected clusters in parallel threads, and
collect what each receives (``FleetBuild``)."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generator.build.charts import ChartResolver, resolver_for
from generator.build.lock import Lock, lock_path, lock_text, read_lock
from generator.build.model import CACHE_SUBDIR, BuildOptions, ClusterBuild, FleetBuild
from generator.build.tree import OutputChanged, RecordedOutput
from generator.build.walker import Builder
from generator.errors import UsageError
from generator.tools import Toolset, find_tools

if TYPE_CHECKING:
    from generator.render.record import BuildContext


def select_clusters(names: Sequence[str], wanted: Sequence[str], shard: tuple[int, int] | None) -> list[str]:
    """The clusters to build: the named ones (all when none), then this shard's share (1-based i of n)."""
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise UsageError(f"unknown cluster(s) {', '.join(unknown)}; clusters: {', '.join(names)}")
    chosen = [n for n in names if not wanted or n in wanted]
    if shard is not None:
        index, count = shard
        chosen = [n for position, n in enumerate(chosen) if position % count == index - 1]
    return chosen


def parse_shard(value: str) -> tuple[int, int]:
    """``i/n`` with 1 <= i <= n."""
    match = re.fullmatch(r"(\d+)/(\d+)", value.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise UsageError(f"--shard {value!r}: expected i/n with 1 <= i <= n, e.g. 2/4")
    return int(match[1]), int(match[2])


def default_cache_dir(root: Path) -> Path:
    """Where the step cache of a fleet root lives."""
    return root / CACHE_SUBDIR


def build_fleet(root: Path, options: BuildOptions | None = None, *, rendered: Any = None,
                tools: Toolset | None = None, charts: ChartResolver | None = None) -> FleetBuild:
    """Render (in memory) and build the fleet at ``root``: every selected cluster's resources.

    ``rendered`` may be a precomputed ``generator.render.pipeline.plan(root)``. Without it (and with the step
    cache), the record of the last ``render`` (generator/render/record.py) stands in for the plan when it was made
    from exactly the current inputs: the planned files are then read from that render's output folder, each
    checked against its recorded sha256 (one that differs: the fleet is planned after all), and its inventory
    warnings issued again.
    """
    options = options or BuildOptions()
    started, started_cpu = time.perf_counter(), time.process_time()
    if rendered is None and options.use_cache:
        from generator.render.record import read_record, replay

        record = read_record(root)
        record_seconds = time.perf_counter() - started
        if record is not None:
            files = RecordedOutput(record.out, record.digests)
            try:
                result = _build(root, options, files, record.context, tools, charts, started)
            except OutputChanged:
                pass  # a file of the output is not the one recorded: plan, as without a record
            except BaseException:
                replay(record.warnings)  # what the plan would have shown before the build failed
                raise
            else:
                replay(record.warnings)
                result.stats.record_seconds = record_seconds
                return result
    from generator.render.pipeline import plan
    from generator.render.record import BuildContext

    planned_here = rendered is None
    if rendered is None:  # unchanged clusters' files from the plan cache next to the step cache (same bytes)
        rendered = plan(root, (options.cache_dir or default_cache_dir(root)) / "plan" if options.use_cache else None,
                        store=False)
    plan_seconds, plan_cpu_seconds = time.perf_counter() - started, time.process_time() - started_cpu
    result = _build(root, options, rendered.files, BuildContext.of(rendered.fleet), tools, charts, started)
    if planned_here:
        result.stats.plan_seconds, result.stats.plan_cpu_seconds = plan_seconds, plan_cpu_seconds
        if getattr(rendered, "plan_cache", None) is not None:
            rendered.plan_cache.store()  # only after the build succeeded: a refused input writes nothing
    return result


def _build(root: Path, options: BuildOptions, files: Mapping[str, str], context: BuildContext,
           tools: Toolset | None, charts: ChartResolver | None, started: float) -> FleetBuild:
    """Build the selected clusters of a planned fleet (its files and its build context)."""
    setup_started = time.perf_counter()
    chosen = select_clusters([name for name, _ in context.clusters], options.clusters, options.shard)
    tools = tools or find_tools(root)
    cache_dir = options.cache_dir or default_cache_dir(root)
    builder = Builder(files, git_path=context.git_path, fleet_root="fleet", mounts=dict(context.mounts),
                      git_url=context.git_url, tools=tools, options=options, cache_dir=cache_dir,
                      charts=charts or resolver_for(root, tools, context, offline=options.offline))
    builder.argocd = context.argocd
    versions = dict(context.clusters)
    jobs = max(1, options.jobs or os.cpu_count() or 1)
    builder.stats.clusters = len(chosen)
    builder.stats.setup_seconds = time.perf_counter() - setup_started
    results: dict[str, ClusterBuild] = {}
    try:
        with _progress(options.progress, len(chosen)) as advance:
            for name in chosen:  # unchanged clusters first: lookups, in this thread (a pool would only add overhead)
                reused = builder.reuse_cluster(name, versions[name])
                if reused is not None:
                    results[name] = reused
                    advance(name)
            _build_in_threads(builder, [n for n in chosen if n not in results], versions, jobs, results, advance)
        builder.stats.hashes_computed = builder.tree.hashes_computed
        builder.store_references()
        builder.store_tree_hashes()
        builder.store_cluster_index()
    finally:
        builder.close()
    if options.use_cache and len(chosen) == len(context.clusters):  # every cluster built: prune once a day
        from generator.build.prune import prune_if_due

        prune_if_due(cache_dir, {builder.cluster_entry(name) for name in chosen})
    builder.stats.seconds = time.perf_counter() - started
    ordered = {name: results[name] for name in chosen}
    return FleetBuild(ordered, builder.stats, builder.naive)


def _build_in_threads(builder: Builder, names: list[str], versions: Mapping[str, str], jobs: int,
                      results: dict[str, ClusterBuild], advance: Callable[[str], None]) -> None:
    """Build clusters in parallel threads (the tools run as subprocesses), adding each to ``results``."""
    if not names:
        return
    with ThreadPoolExecutor(max_workers=min(jobs, len(names))) as pool:
        futures = {pool.submit(builder.build_cluster, name, versions[name]): name for name in names}
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                advance(futures[future])
        except BaseException:
            for pending in futures:
                pending.cancel()
            raise


@contextlib.contextmanager
def _progress(enabled: bool | None, total: int) -> Iterator[Callable[[str], None]]:
    """A rich progress bar on stderr when it is a terminal (or when asked); else nothing."""
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show or total == 0:
        yield lambda _name: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("building"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("", total=total)
        yield lambda name: bar.update(task, advance=1, description=name)


def write_tree(out: Path, files: Mapping[str, str]) -> None:
    """Write ``{relative path: text}`` under ``out`` (for ``build --out``)."""
    for rel, text in files.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def write_lock(root: Path, jobs: int | None = None) -> tuple[Lock, Lock]:
    """Resolve and fetch every upstream chart the fleet's clusters use, as Flux would, and write the lock.

    Returns (old lock, new lock). Every cluster is walked (a chart only one cluster uses is locked too) and
    templated, so a chart that does not template fails here rather than in CI.
    """
    import os

    from generator.build.charts import resolver_for
    from generator.build.fleet import build_fleet
    from generator.build.model import BuildOptions
    from generator.render.pipeline import plan
    from generator.tools import find_tools

    path = lock_path(root)
    old = read_lock(path)
    rendered = plan(root)
    tools = find_tools(root)
    resolver = resolver_for(root, tools, rendered.fleet, relock=True)
    build_fleet(root, BuildOptions(jobs=jobs, use_cache=False, progress=False), rendered=rendered, tools=tools,
                charts=resolver)
    new = Lock(dict(resolver.locked))
    text = lock_text(new.charts.items())
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        fd, tmp = tempfile.mkstemp(prefix=".fleetgen-lock.", dir=root)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    return old, new
