"""Parallel planning of the clusters' own files: the same bytes as planning them one by one, sooner.

Most of a large render is the clusters' own folders (``clusters/<name>``, their overlays), each planned from the
resolved fleet and the merged contributions alone. Above a size where it pays, worker processes forked from the
render plan them in chunks: they inherit the resolved fleet (nothing of the input is pickled) and send back each
cluster's files, while the parent plans the fleet-wide files. The parent adds the clusters' files in fleet order,
so the output does not depend on which worker planned what, and keeps the plan cache's books: workers read its
entries, the parent counts hits and misses and stores new entries only once the render succeeded.

A chunk that fails in a worker is planned again in the parent, which raises the exception a serial render raises
(same type, message, problems with their file:line), for the first failing cluster in fleet order; warnings a
worker raises are issued again in the parent. Workers ignore SIGINT (the parent, interrupted, stops them) and
are joined before ``plan`` returns or raises. Processes are forked only on Linux, from a process with no other
thread (forking a threaded process can deadlock the child); elsewhere, with one job, or for a small fleet the
clusters are planned in the process, as before.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import threading
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from generator.errors import UsageError
from generator.inventory.resolve import ResolvedCluster, ResolvedFleet
from generator.render.incremental import ClusterPlanner, PlanCache, PlannedCluster
from generator.render.planner import Contribution

#: Environment variable with the number of planning processes (``fleetgen render --jobs`` wins; default: the CPUs
#: this process may run on).
JOBS_ENV = "FLEETGEN_JOBS"
#: Fewer clusters than this are planned in the process: starting workers and sending the files back costs more
#: than it saves below it (measured break-even on 2 cores, see tests/test_parallel.py and the README).
MIN_PARALLEL_CLUSTERS = 64
#: Clusters per task: small enough to balance the workers and to let the parent consume results in order early,
#: large enough that the per-task overhead (a pickled list of files) stays negligible.
MAX_CHUNK = 48


def planning_jobs(jobs: int | None = None) -> int:
    """How many processes plan clusters: ``jobs`` if given, else ``$FLEETGEN_JOBS``, else the usable CPUs."""
    if jobs is None:
        configured = os.environ.get(JOBS_ENV, "").strip()
        if configured:
            try:
                jobs = int(configured)
            except ValueError:
                raise UsageError(f"${JOBS_ENV} must be a whole number of processes, not {configured!r}") from None
            if jobs < 1:
                raise UsageError(f"${JOBS_ENV} must be at least 1, not {jobs}")
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}")
    return jobs


def can_fork() -> bool:
    """Whether worker processes may be forked from this one now (Linux, and no thread but this one)."""
    return (
        sys.platform.startswith("linux")
        and "fork" in multiprocessing.get_all_start_methods()
        and threading.active_count() == 1
    )


@dataclass
class _Inherited:
    """What a forked worker plans from (set in the parent just before the fork, read only in workers)."""

    planner: ClusterPlanner
    clusters: tuple[ResolvedCluster, ...]
    extra: Contribution


_INHERITED: _Inherited | None = None


@dataclass(frozen=True)
class _ChunkResult:
    """A worker's answer for one chunk: its clusters' files (None: one failed, the parent plans the chunk again)
    and the warnings raised while planning it (text, category, file, line)."""

    planned: list[PlannedCluster] | None
    warnings: list[tuple[str, type[Warning], str, int]]


def _ignore_interrupts() -> None:
    """Worker start-up: Ctrl-C goes to the whole process group; the parent decides (it stops the pool)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _plan_chunk(start: int, stop: int) -> _ChunkResult:
    """Worker task: plan clusters ``start:stop`` of the inherited fleet."""
    work = _INHERITED
    if work is None:  # not forked from a parent that set it: nothing to plan from, the parent plans the chunk
        return _ChunkResult(None, [])
    planned: list[PlannedCluster] | None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the parent's filters decide what is shown, and how often
        try:
            planned = [work.planner(cluster, work.extra) for cluster in work.clusters[start:stop]]
        except Exception:  # the parent plans the chunk again and raises the same exception, with its traceback
            planned = None
    return _ChunkResult(planned, [(str(w.message), w.category, w.filename, w.lineno) for w in caught])


class ClusterFiles:
    """The per-cluster planner ``plan_fleet`` calls in fleet order, planning ahead in worker processes when it
    pays. Use as a context manager: entering starts the workers (if any), leaving joins them."""

    def __init__(
        self, fleet: ResolvedFleet, extra: Contribution, cache: PlanCache, jobs: int | None = None
    ) -> None:
        self.fleet, self.extra, self.cache = fleet, extra, cache
        self.planner = ClusterPlanner(cache, fleet)
        self.clusters = tuple(fleet.clusters)
        self._positions = {c.name: i for i, c in enumerate(self.clusters)}
        self.jobs = max(1, min(planning_jobs(jobs), len(self.clusters)))
        self.chunk = max(1, min(MAX_CHUNK, -(-len(self.clusters) // (self.jobs * 8))))
        self._pool: ProcessPoolExecutor | None = None
        self._chunks: list[Future[_ChunkResult]] = []
        self._ready: dict[int, PlannedCluster] = {}
        self._workers_extra_checked = False
        self._workers = 0

    @property
    def workers(self) -> int:
        """How many worker processes planned the clusters (0: this process did; decided on entering)."""
        return self._workers

    def __enter__(self) -> ClusterFiles:
        if self.jobs > 1 and len(self.clusters) >= MIN_PARALLEL_CLUSTERS and can_fork():
            self._start()
        return self

    def _start(self) -> None:
        global _INHERITED
        _INHERITED = _Inherited(self.planner, self.clusters, self.extra)
        gc.freeze()  # the inherited objects stay out of the workers' collections: fewer pages copied on write
        try:
            pool = ProcessPoolExecutor(
                max_workers=self.jobs, mp_context=multiprocessing.get_context("fork"), initializer=_ignore_interrupts
            )
            try:  # with fork, the first submit forks every worker before the pool starts its thread
                self._chunks = [
                    pool.submit(_plan_chunk, start, min(start + self.chunk, len(self.clusters)))
                    for start in range(0, len(self.clusters), self.chunk)
                ]
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            self._pool, self._workers = pool, self.jobs
        finally:
            gc.unfreeze()
            _INHERITED = None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close(cancel=error is not None)

    def close(self, *, cancel: bool = False) -> None:
        """Join the workers; with ``cancel`` drop the chunks not started (a failed or interrupted render)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=cancel)
        self._chunks = []

    def __call__(self, cluster: ResolvedCluster, extra: Contribution) -> dict[str, str]:
        """``cluster``'s own files (its cache entry counted or remembered), planned by a worker or here."""
        index = self._index(cluster, extra)
        if index is None:
            return self.cache.record(self.planner(cluster, extra))
        if index not in self._ready:
            self._collect(index // self.chunk)
        return self.cache.record(self._ready.pop(index))

    def _index(self, cluster: ResolvedCluster, extra: Contribution) -> int | None:
        """Where the workers planned ``cluster`` from the same contributions, or None (plan it here)."""
        if not self._chunks:
            return None
        if not self._workers_extra_checked:  # plan_fleet merges the same contributions the workers read
            if extra is not self.extra and extra != self.extra:
                return None
            self._workers_extra_checked = True
        position = self._positions.get(cluster.name)
        if position is None or self.clusters[position] is not cluster:
            return None
        return position

    def _collect(self, number: int) -> None:
        """Wait for chunk ``number``; a failed chunk is planned here, raising what a serial render raises."""
        start = number * self.chunk
        try:
            result = self._chunks[number].result()
        except BrokenProcessPool:  # a worker died (killed, out of memory): the parent plans what is left
            result = _ChunkResult(None, [])
        for message, category, filename, lineno in result.warnings:
            warnings.warn_explicit(message, category, filename, lineno, registry=_WARNINGS_SEEN)
        planned = result.planned
        if planned is None:  # deterministic planning fails here too, with the real exception and traceback
            planned = [self.planner(c, self.extra) for c in self.clusters[start : start + self.chunk]]
        for offset, item in enumerate(planned):
            self._ready[start + offset] = item


#: warnings re-issued from workers: one registry, so ``default``/``once`` filters show each warning once per run
_WARNINGS_SEEN: dict[Any, Any] = {}
