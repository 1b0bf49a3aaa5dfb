"""Parallel planning: the same bytes as planning one thing after the other, sooner.

Most of a large render is the clusters' own folders (``clusters/<name>``, their overlays), each planned from the
resolved fleet and the merged contributions alone; the rest is a handful of fleet-wide planners (policies,
issuers, Crossplane, the infrastructure repo, the overview) that read the resolved fleet only. Above a size where
it pays, worker processes forked from the render run them: first the fleet-wide planners (``run_planners``, the
render itself taking its share), then the clusters in chunks (``ClusterFiles``). The parent first looks every
cluster up in the plan cache; workers plan only the clusters it did not hold, and only when there are enough of
them to pay for the fork (a warm cache after a small edit forks nothing: serial is faster). Forked workers
inherit the resolved fleet (nothing of the input is pickled) and send back what they planned; the parent takes
results in the order a serial render computes them, so the output does not depend on which worker planned what,
and keeps the plan cache's books: it counts hits and misses and stores new entries only once the render succeeded.

A task that fails in a worker is run again in the parent, which raises the exception a serial render raises
(same type, message, problems with their file:line; for clusters, the first failing one in fleet order);
warnings a worker raises are issued again in the parent. Workers ignore SIGINT (the parent, interrupted, stops
them) and are joined before ``plan`` returns or raises. Processes are forked only on Linux, from a process with
no other thread (forking a threaded process can deadlock the child); elsewhere, with one job, or for a small
fleet everything is planned in the process, as before.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

from generator.errors import UsageError
from generator.fastload import collector_paused
from generator.inventory.resolve import ResolvedCluster, ResolvedFleet
from generator.render.incremental import ClusterPlanner, PlanCache, PlannedCluster
from generator.render.planner import Contribution

#: Environment variable with the number of planning processes (``fleetgen render --jobs`` wins; default: the CPUs
#: this process may run on).
JOBS_ENV = "FLEETGEN_JOBS"
#: Fewer clusters than this are planned in the process. Measured on 2 cores (CPU per phase, README "Parallel
#: planning"): workers save an estimated 0.06-0.2 s at 16 clusters and 0.1-0.4 s at 64, forking and joining the
#: two pools included, so the break-even is below 16; under 32 the gain is small and tests' fleets fork nothing.
MIN_PARALLEL_CLUSTERS = 32
#: Fewer clusters to plan than this (the rest found in the plan cache) are planned in the process. Measured on 2
#: cores at 1000 clusters (CPU seconds, one run): a cluster planned here costs about 1.5 ms, while forking two
#: workers adds 0.1-0.15 s (the fork, copy-on-write faults, the files sent back): 64 misses 0.19 s serial and 0.30 s
#: with workers, 200 misses 0.40 s and 0.55 s, so on 2 idle cores workers shorten the wall time from about 150.
MIN_PARALLEL_MISSES = 150
#: Clusters per task: small enough to balance the workers and to let the parent consume results in order early,
#: large enough that the per-task overhead (a pickled list of files) stays negligible.
MAX_CHUNK = 48

T = TypeVar("T")


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
    if not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods():
        return False
    if threading.active_count() != 1:
        return False
    # nor a thread outside Python's (a C library's); a thread just joined (the previous pool's) may take a moment
    # to leave the kernel's task list
    deadline = time.monotonic() + 0.25
    while len(os.listdir("/proc/self/task")) > 1:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


@dataclass
class _Inherited:
    """What forked workers plan from (set in the parent just before the fork, read only in workers)."""

    fleet: ResolvedFleet
    planners: Sequence[Callable[[ResolvedFleet], Any]] = ()
    cluster_planner: ClusterPlanner | None = None
    clusters: tuple[ResolvedCluster, ...] = ()  # the clusters to plan (those the plan cache did not hold)
    keys: tuple[str | None, ...] = ()  # their plan cache keys
    extra: Contribution | None = None


_INHERITED: _Inherited | None = None


@dataclass(frozen=True)
class _TaskResult:
    """A worker's answer: its value (``failed``: the task raised, the parent runs it again) and the warnings
    raised while running it (text, category, file, line)."""

    value: Any
    failed: bool
    warnings: list[tuple[str, type[Warning], str, int]]


def _recorded(task: Callable[[], Any]) -> _TaskResult:
    """Run ``task`` (in a worker, or a planner in the parent beside them), recording its warnings; an exception only
    marks the task failed."""
    value, failed = None, False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the parent's filters decide what is shown, and how often
        try:
            value = task()
        except Exception:  # the parent runs the task again and raises the same exception, with its traceback
            failed = True
    return _TaskResult(value, failed, [(str(w.message), w.category, w.filename, w.lineno) for w in caught])


def _reissue(result: _TaskResult) -> None:
    """Issue a worker's warnings in the parent, through the parent's filters."""
    for message, category, filename, lineno in result.warnings:
        warnings.warn_explicit(message, category, filename, lineno, registry=_WARNINGS_SEEN)


def _ignore_interrupts() -> None:
    """Worker start-up: Ctrl-C goes to the whole process group; the parent decides (it stops the pool)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_planner(index: int) -> _TaskResult:
    """Worker task: fleet-wide planner ``index`` on the inherited fleet."""
    work = _INHERITED
    if work is None:  # not forked from a parent that set it: the parent runs the task
        return _TaskResult(None, True, [])
    return _recorded(lambda: work.planners[index](work.fleet))


def _plan_chunk(start: int, stop: int) -> _TaskResult:
    """Worker task: plan clusters ``start:stop`` of the inherited fleet."""
    work = _INHERITED
    if work is None or work.cluster_planner is None or work.extra is None:
        return _TaskResult(None, True, [])
    planner, extra = work.cluster_planner, work.extra
    return _recorded(lambda: [
        planner.plan(cluster, extra, key)
        for cluster, key in zip(work.clusters[start:stop], work.keys[start:stop], strict=True)
    ])


def _fork_pool(jobs: int, inherited: _Inherited, tasks: list[tuple[Callable[..., _TaskResult], tuple[int, ...]]]
               ) -> tuple[ProcessPoolExecutor, list[Future[_TaskResult]]]:
    """Fork ``jobs`` workers inheriting ``inherited`` and submit ``tasks`` (function, arguments), in order."""
    global _INHERITED
    _INHERITED = inherited
    # the inherited objects stay out of the workers' collections: fewer pages copied on write (already so when the
    # render froze its inputs, ``LongLived``: that freeze is left as it is)
    freezing = gc.get_freeze_count() == 0
    if freezing:
        gc.freeze()
    try:
        pool = ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("fork"), initializer=_ignore_interrupts
        )
        try:
            # with fork, the first submit forks every worker, before the pool starts its thread; a Ctrl-C during a
            # fork would reach an at-fork hook, which swallows exceptions: it waits, and is raised on unblocking
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                futures = [pool.submit(function, *arguments) for function, arguments in tasks]
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            return pool, futures
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    finally:
        if freezing:
            gc.unfreeze()
        _INHERITED = None


class LongLived:
    """The render's inputs (the loaded inventory, the resolved fleet) as the cyclic garbage collector's long-lived
    objects: ``with LongLived() as inputs:`` pauses the collector while they are built, ``inputs.keep()`` then freezes
    every object made so far (``gc.freeze``: no later collection scans them, nor copies their pages in a forked
    worker) and resumes the collector; leaving unfreezes them (``gc.unfreeze``: collectable again, as before).

    A collection's cost grows with the objects it scans: without this, the first full collection after loading
    (0.07-0.08 s at 1000 clusters, during resolve) scanned the whole acyclic inventory to free nothing. Objects
    still die by reference counting while frozen. Nothing is frozen when objects already are (the caller froze
    its own): the collector only resumes then."""

    def __init__(self) -> None:
        self._enabled = gc.isenabled()
        self._paused = False
        self._frozen = False

    def __enter__(self) -> LongLived:
        self._enabled, self._paused = gc.isenabled(), True
        gc.disable()
        return self

    def keep(self) -> None:
        """Freeze every object made so far (unless something is frozen already) and resume the collector."""
        if not self._paused:
            return
        if gc.get_freeze_count() == 0:
            gc.freeze()
            self._frozen = True
        self._paused = False
        if self._enabled:
            gc.enable()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._frozen:
            gc.unfreeze()
            self._frozen = False
        if self._paused:
            self._paused = False
            if self._enabled:
                gc.enable()


def _result(future: Future[_TaskResult]) -> _TaskResult:
    """A task's answer; a worker that died (killed, out of memory) counts as a failed task, run again here."""
    try:
        return future.result()
    except BrokenProcessPool:
        return _TaskResult(None, True, [])


class Outcome(Generic[T]):
    """A fleet-wide planner's result, taken when the caller needs it, in a serial render's order: a worker's value
    (its warnings issued then), or the planner run here then (no worker, or it failed in one: raising here)."""

    def __init__(self, compute: Callable[[], T], done: _TaskResult | None = None) -> None:
        self._compute, self._done = compute, done

    def result(self) -> T:
        """The planner's value, or its exception raised."""
        done, self._done = self._done, None
        if done is not None:
            _reissue(done)
            if not done.failed:
                value: T = done.value
                self._compute = lambda: value
        return self._compute()


def run_planners(fleet: ResolvedFleet, planners: Sequence[Callable[[ResolvedFleet], Any]], jobs: int | None = None
                 ) -> list[Outcome[Any]]:
    """Each of ``planners`` applied to ``fleet``, in order: by this process and ``jobs - 1`` forked workers at once
    for a large fleet, else each when its ``result()`` is taken (so a small fleet plans, and fails, exactly as one
    planner after another).

    The workers take the planners from the last (the infrastructure repo, the overview: read by no other, among
    the longest), this process from the first, each planner it reaches before a worker did: they meet where their
    shares balance, whether the planners' memo is warm (a few planners' worth, a worker's results cost their
    pickling) or cold. A planner run here records its warnings and failure as a worker's task does: both are
    issued, or raised, when its ``result()`` is taken."""
    count = max(1, min(planning_jobs(jobs), len(planners)))
    if count == 1 or len(fleet.clusters) < MIN_PARALLEL_CLUSTERS or not can_fork():
        return [Outcome(functools.partial(planner, fleet)) for planner in planners]
    order = list(reversed(range(len(planners))))
    pool, futures = _fork_pool(count - 1, _Inherited(fleet, planners), [(_run_planner, (index,)) for index in order])
    try:
        results = dict(zip(order, futures, strict=True))
        here: dict[int, _TaskResult] = {}
        for index, planner in enumerate(planners):
            if results[index].cancel():  # no worker has started it (nor will): planned here
                here[index] = _recorded(functools.partial(planner, fleet))
        outcomes = [Outcome(functools.partial(planner, fleet), here.get(index) or _result(results[index]))
                    for index, planner in enumerate(planners)]
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return outcomes


class ClusterFiles:
    """The per-cluster planner ``plan_fleet`` calls in fleet order. Use as a context manager: entering looks every
    cluster up in the plan cache (in this process: reading an entry costs less than sending it back from a
    worker) and, when at least ``MIN_PARALLEL_MISSES`` clusters must be planned, starts worker processes that
    plan those ahead; leaving joins them. A warm cache after a small edit so forks nothing."""

    def __init__(
        self, fleet: ResolvedFleet, extra: Contribution, cache: PlanCache, jobs: int | None = None
    ) -> None:
        self.fleet, self.extra, self.cache = fleet, extra, cache
        self.planner = ClusterPlanner(cache, fleet)
        self.clusters = tuple(fleet.clusters)
        self._positions = {c.name: i for i, c in enumerate(self.clusters)}
        self.jobs = max(1, min(planning_jobs(jobs), len(self.clusters)))
        self.chunk = 1
        self._pool: ProcessPoolExecutor | None = None
        self._chunks: list[Future[_TaskResult]] = []
        self._entered = False
        self._found: dict[int, PlannedCluster] = {}  # by position in the fleet: the cache's hits
        self._keys: dict[int, str | None] = {}  # by position: the misses' keys
        self._todo: tuple[int, ...] = ()  # positions of the misses, in fleet order
        self._slots: dict[int, int] = {}  # position -> index in ``_todo``, when workers plan the misses
        self._ready: dict[int, PlannedCluster] = {}  # by index in ``_todo``: planned by workers, not yet taken
        self._same_extra: bool | None = None  # whether plan_fleet passes the contributions looked up with
        self._workers = 0
        self._paused = contextlib.ExitStack()

    @property
    def workers(self) -> int:
        """How many worker processes planned the clusters (0: this process did; decided on entering)."""
        return self._workers

    def __enter__(self) -> ClusterFiles:
        # until leaving, no cyclic collection: the files looked up and planned are acyclic, and a pass over the
        # resolved fleet's heap (0.1 s at 1000 clusters) would find nothing to free
        self._paused.enter_context(collector_paused())
        try:
            todo = []
            for position, (key, found) in enumerate(self.planner.look_up(self.clusters, self.extra)):
                if found is not None:
                    self._found[position] = found
                else:
                    self._keys[position] = key
                    todo.append(position)
            self._todo, self._entered = tuple(todo), True
            if self.jobs > 1 and len(todo) >= max(MIN_PARALLEL_CLUSTERS, MIN_PARALLEL_MISSES) and can_fork():
                self._start()
        except BaseException:
            self._paused.close()
            raise
        return self

    def _start(self) -> None:
        self.chunk = max(1, min(MAX_CHUNK, -(-len(self._todo) // (self.jobs * 8))))
        inherited = _Inherited(
            self.fleet, (), self.planner, tuple(self.clusters[p] for p in self._todo),
            tuple(self._keys[p] for p in self._todo), self.extra,
        )
        tasks: list[tuple[Callable[..., _TaskResult], tuple[int, ...]]] = [
            (_plan_chunk, (start, min(start + self.chunk, len(self._todo))))
            for start in range(0, len(self._todo), self.chunk)
        ]
        self._pool, self._chunks = _fork_pool(self.jobs, inherited, tasks)
        self._slots = {position: slot for slot, position in enumerate(self._todo)}
        self._workers = self.jobs

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close(cancel=error is not None)

    def close(self, *, cancel: bool = False) -> None:
        """Join the workers; with ``cancel`` drop the chunks not started (a failed or interrupted render)."""
        pool, self._pool = self._pool, None
        try:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=cancel)
        finally:
            self._chunks = []
            self._paused.close()

    def __call__(self, cluster: ResolvedCluster, extra: Contribution) -> dict[str, str]:
        """``cluster``'s own files (its cache entry counted or remembered): found on entering, planned by a worker
        or here."""
        position = self._position(cluster, extra)
        if position is None:
            return self.cache.record(self.planner(cluster, extra))
        found = self._found.pop(position, None)
        if found is not None:
            return self.cache.record(found)
        slot = self._slots.get(position)
        if slot is None:
            return self.cache.record(self.planner.plan(cluster, extra, self._keys[position]))
        if slot not in self._ready:
            self._collect(slot // self.chunk)
        return self.cache.record(self._ready.pop(slot))

    def _position(self, cluster: ResolvedCluster, extra: Contribution) -> int | None:
        """Where ``cluster`` is in the fleet looked up on entering, from the same contributions, or None (look it
        up and plan it here)."""
        if not self._entered:
            return None
        if self._same_extra is None:  # plan_fleet merges the contributions looked up with: equal, checked once
            self._same_extra = extra is self.extra or extra == self.extra
        if not self._same_extra:
            return None
        position = self._positions.get(cluster.name)
        if position is None or self.clusters[position] is not cluster:
            return None
        if position not in self._found and position not in self._keys:  # taken already
            return None
        return position

    def _collect(self, number: int) -> None:
        """Wait for chunk ``number``; a failed chunk is planned here, raising what a serial render raises."""
        start = number * self.chunk
        result = _result(self._chunks[number])
        _reissue(result)
        planned: list[PlannedCluster] = result.value
        if result.failed:  # deterministic planning fails here too, with the real exception and traceback
            planned = [self.planner.plan(self.clusters[p], self.extra, self._keys[p])
                       for p in self._todo[start : start + self.chunk]]
        for offset, item in enumerate(planned):
            self._ready[start + offset] = item


#: warnings re-issued from workers: one registry, so ``default``/``once`` filters show each warning once per run
_WARNINGS_SEEN: dict[Any, Any] = {}
