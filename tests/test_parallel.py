"""Parallel planning (issue 15): worker processes plan the clusters' own files, and nothing else changes.

Every check compares a render planned by forked workers with one planned in the process, on the reference fleet
and a synthetic one: the same files, bytes and order; the same exception (type, message, problems with file:line)
when a cluster fails in a worker, nothing written; warnings raised in workers shown once; the plan cache counted
and stored by the parent; no thread alive when a worker is forked and no process left after an error or Ctrl-C.
Small chunks and a threshold of 1 make the small fleets of these tests go through the workers.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from generator.bench import make_fleet
from generator.errors import FleetgenError, InventoryError, InventoryWarning, Problem, UsageError
from generator.inventory.loader import load_inventory
from generator.inventory.resolve import ResolvedCluster, ResolvedFleet, resolve
from generator.render import incremental, parallel, pipeline
from generator.render.incremental import PlanCache
from generator.render.parallel import JOBS_ENV, MIN_PARALLEL_CLUSTERS, planning_jobs
from generator.render.pipeline import plan, plan_cache_dir, render
from generator.render.planner import Contribution, TemplateError, plan_cluster_files
from generator.yamlio import dump_documents, load_documents

REPO = Path(__file__).resolve().parent.parent
SIZE = 30

pytestmark = pytest.mark.filterwarnings("ignore::generator.errors.InventoryWarning")

#: threading.active_count() at every os.fork() of this process (multiprocessing forks through os.fork)
FORKS: list[int] = []
os.register_at_fork(before=lambda: FORKS.append(threading.active_count()))


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (zombies included: they are still listed until reaped)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        # a thread (the pool's) that ended since the listing has no children of its own
        with contextlib.suppress(FileNotFoundError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A synthetic fleet and its clusters' names in fleet (planning) order."""
    root = tmp_path_factory.mktemp("parallel") / "fleet"
    make_fleet(REPO, root, SIZE)
    return root, [cluster.name for cluster in resolve(load_inventory(root)).clusters]


@pytest.fixture
def through_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small fleets planned by workers, three clusters a task (several tasks per worker, out of order)."""
    if not parallel.can_fork():
        pytest.skip("worker processes are forked on Linux only, from a process without threads")
    monkeypatch.setattr(parallel, "MIN_PARALLEL_CLUSTERS", 1)
    monkeypatch.setattr(parallel, "MIN_PARALLEL_MISSES", 1)
    monkeypatch.setattr(parallel, "MAX_CHUNK", 3)
    monkeypatch.delenv(JOBS_ENV, raising=False)


@pytest.fixture
def no_leftover_process() -> Iterator[None]:
    yield
    assert _children(os.getpid()) == []


def test_workers_plan_the_reference_fleet_byte_for_byte(through_workers: None, no_leftover_process: None) -> None:
    serial = plan(REPO, jobs=1)
    forks = len(FORKS)
    workers = plan(REPO, jobs=2)
    assert (serial.workers, workers.workers) == (0, 2)
    assert list(workers.files.items()) == list(serial.files.items())  # same paths, bytes and order
    # one worker for the fleet-wide planners (beside this process), then two for the clusters, forked while no
    # other thread ran
    assert FORKS[forks:] == [1, 1, 1]


def test_workers_plan_a_synthetic_fleet_byte_for_byte(
    fleet: tuple[Path, list[str]], through_workers: None, no_leftover_process: None
) -> None:
    root, _ = fleet
    serial = plan(root, jobs=1)
    for jobs in (2, 3):
        rendered = plan(root, jobs=jobs)
        assert rendered.workers == jobs
        assert list(rendered.files.items()) == list(serial.files.items())


def _failing(
    names: set[str], error: Callable[[ResolvedFleet, ResolvedCluster], Exception], pids: Path
) -> Callable[[ResolvedFleet, ResolvedCluster, Contribution], dict[str, str]]:
    """The per-cluster planner, raising ``error`` for ``names`` (and noting which process did in ``pids``)."""

    def plan_cluster(fleet: ResolvedFleet, cluster: ResolvedCluster, extra: Contribution) -> dict[str, str]:
        if cluster.name in names:
            with pids.open("a", encoding="utf-8") as out:
                out.write(f"{os.getpid()}\n")
            raise error(fleet, cluster)
        return plan_cluster_files(fleet, cluster, extra)

    return plan_cluster


def _inventory_error(fleet: ResolvedFleet, cluster: ResolvedCluster) -> Exception:
    source = next(s for s in fleet.inventory.clusters if s.item.name == cluster.name)
    return InventoryError([Problem(*source.where("name"), "name", f"cluster {cluster.name!r} cannot be planned")])


def _template_error(fleet: ResolvedFleet, cluster: ResolvedCluster) -> Exception:
    return TemplateError(f"template fleet/flux-instance.yaml.j2 rendered invalid YAML for clusters/{cluster.name}")


@pytest.mark.parametrize("error", [_inventory_error, _template_error])
def test_a_cluster_failing_in_a_worker_raises_the_serial_error_and_writes_nothing(
    fleet: tuple[Path, list[str]],
    through_workers: None,
    no_leftover_process: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    error: Callable[[ResolvedFleet, ResolvedCluster], Exception],
) -> None:
    root, names = fleet
    first, later = names[7], names[25]  # in different tasks; the first in fleet order is the one reported
    pids = tmp_path / "pids"
    monkeypatch.setattr(incremental, "plan_cluster_files", _failing({first, later}, error, pids))
    with pytest.raises(FleetgenError) as serial:
        plan(root, jobs=1)
    out, cache = tmp_path / "out", tmp_path / "cache"
    with pytest.raises(FleetgenError) as workers:
        render(root, out, cache_dir=cache, jobs=2)
    assert type(workers.value) is type(serial.value)
    assert str(workers.value) == str(serial.value) and first in str(serial.value) and later not in str(serial.value)
    if isinstance(serial.value, InventoryError):
        assert isinstance(workers.value, InventoryError)
        assert workers.value.problems == serial.value.problems
        source = next(s for s in serial.value.problems if first in s.message)
        assert f"inventory/clusters/synthetic.yaml:{source.line}:" in str(workers.value) and source.line > 1
    assert not out.exists() and not cache.exists()  # no output, no plan cache entry
    failed_in = {int(pid) for pid in pids.read_text().split()}
    assert os.getpid() in failed_in and len(failed_in) > 1  # a worker failed first; the parent raised it again


@pytest.mark.parametrize("failing", ["plan_issuers", "plan_infrastructure"])
def test_a_fleet_wide_planner_failing_in_a_worker_raises_the_serial_error(
    fleet: tuple[Path, list[str]],
    through_workers: None,
    no_leftover_process: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    failing: str,
) -> None:
    root, names = fleet
    pids = tmp_path / "pids"

    def planner(fleet: ResolvedFleet, memo: Any = None) -> Any:  # memo: the planners' memo (render/memo.py)
        with pids.open("a", encoding="utf-8") as out:
            out.write(f"{os.getpid()}\n")
        raise _inventory_error(fleet, next(c for c in fleet.clusters if c.name == names[3]))

    monkeypatch.setattr(pipeline, failing, planner)
    # a cluster failing too: a contribution's error comes first, the infrastructure repo's after the clusters'
    monkeypatch.setattr(incremental, "plan_cluster_files", _failing({names[5]}, _template_error, tmp_path / "x"))
    with pytest.raises(FleetgenError) as serial:
        plan(root, jobs=1)
    with pytest.raises(FleetgenError) as workers:
        render(root, tmp_path / "out", cache_dir=tmp_path / "cache", jobs=2)
    assert type(workers.value) is type(serial.value) and str(workers.value) == str(serial.value)
    assert isinstance(serial.value, InventoryError if failing == "plan_issuers" else TemplateError)
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
    failed_in = [int(pid) for pid in pids.read_text().split()]
    if failing == "plan_issuers":  # a contribution: failed where it ran first (here, which takes the first
        # planners, or a worker), then raised by this process running it again
        assert failed_in[0] == os.getpid() and len(failed_in) == 3  # the serial render's, then the render's two
        assert failed_in[2] == os.getpid()
    else:  # failed in a worker only (the workers start from the last planners): as in a serial render, the
        # cluster's error comes first
        assert len(failed_in) == 1 and os.getpid() not in failed_in


def test_the_overview_failing_in_a_worker_is_run_again_and_raised_here(
    fleet: tuple[Path, list[str]], through_workers: None, no_leftover_process: None,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """The workers take the last planner (the overview) first: failing there, it is run again by this process,
    which raises the serial render's error, and nothing is written."""
    root, names = fleet
    pids = tmp_path / "pids"
    overview = pipeline._overview

    def failing(fleet: ResolvedFleet, memo: Any = None) -> Any:
        with pids.open("a", encoding="utf-8") as out:
            out.write(f"{os.getpid()}\n")
        if any(c.name == names[3] for c in fleet.clusters):
            raise _inventory_error(fleet, next(c for c in fleet.clusters if c.name == names[3]))
        return overview(fleet, memo)

    monkeypatch.setattr(pipeline, "_overview", failing)
    with pytest.raises(FleetgenError) as serial:
        plan(root, jobs=1)
    pids.unlink()
    with pytest.raises(FleetgenError) as workers:
        render(root, tmp_path / "out", cache_dir=tmp_path / "cache", jobs=2)
    assert type(workers.value) is type(serial.value) and str(workers.value) == str(serial.value)
    failed_in = [int(pid) for pid in pids.read_text().split()]
    assert len(failed_in) == 2 and failed_in[0] != os.getpid() and failed_in[1] == os.getpid()
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_warnings_raised_in_workers_are_shown_once(
    fleet: tuple[Path, list[str]], through_workers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, names = fleet
    warned = {names[4]: "shared", names[22]: "shared", names[23]: names[23]}

    def plan_cluster(fleet: ResolvedFleet, cluster: ResolvedCluster, extra: Contribution) -> dict[str, str]:
        if cluster.name in warned:
            warnings.warn(InventoryWarning(f"inventory/clusters/synthetic.yaml:1:1: {warned[cluster.name]}"),
                          stacklevel=1)
        return plan_cluster_files(fleet, cluster, extra)

    monkeypatch.setattr(incremental, "plan_cluster_files", plan_cluster)
    shown: dict[int, list[str]] = {}
    for jobs in (1, 2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default", InventoryWarning)  # as the CLI: each distinct warning once
            assert plan(root, jobs=jobs).workers == (0 if jobs == 1 else 2)
        shown[jobs] = [str(w.message) for w in caught if w.category is InventoryWarning]
    assert shown[2] == shown[1] == [f"inventory/clusters/synthetic.yaml:1:1: {text}" for text in ("shared", names[23])]


def test_the_parent_reads_the_plan_cache_and_workers_plan_the_misses(
    fleet: tuple[Path, list[str]], through_workers: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "fleet"
    shutil.copytree(fleet[0], root)
    cache = tmp_path / "cache"
    reference = plan(root, jobs=1).files
    cold = plan(root, cache, jobs=2)
    assert (cold.workers, cold.reused_clusters, cold.planned_clusters) == (2, 0, SIZE)
    assert cold.files == reference
    assert len(PlanCache(cache).stored()) == SIZE  # stored by the parent, after success
    warm = plan(root, cache, jobs=2)
    # every cluster found by the parent: nothing to plan, so no worker forked for the clusters
    assert (warm.workers, warm.reused_clusters, warm.planned_clusters) == (0, SIZE, 0) and warm.files == reference

    clusters_file = root / "inventory" / "clusters" / "synthetic.yaml"
    data = load_documents(clusters_file.read_text(encoding="utf-8"))[0]
    for entry in data["clusters"][-2:]:
        entry.setdefault("labels", {})["edited"] = "yes"
    clusters_file.write_text(dump_documents([data]), encoding="utf-8")
    edited = plan(root, cache, jobs=2, store=False)
    assert (edited.workers, edited.reused_clusters, edited.planned_clusters) == (2, SIZE - 2, 2)
    assert edited.files == plan(root, jobs=1).files != reference
    # with the shipped threshold, two clusters to plan are planned here: only the fleet-wide planners fork (one
    # worker, beside this process)
    monkeypatch.setattr(parallel, "MIN_PARALLEL_MISSES", 64)
    forks = len(FORKS)
    edited = plan(root, cache, jobs=2)
    assert (edited.workers, edited.reused_clusters, edited.planned_clusters) == (0, SIZE - 2, 2)
    assert len(FORKS) - forks == 1 and edited.files == plan(root, jobs=1).files


def test_small_fleets_one_job_and_the_jobs_setting(
    fleet: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = fleet
    monkeypatch.delenv(JOBS_ENV, raising=False)
    assert SIZE < MIN_PARALLEL_CLUSTERS
    assert plan(root, jobs=2).workers == 0  # below the break-even: planned in the process
    monkeypatch.setattr(parallel, "MIN_PARALLEL_CLUSTERS", 1)
    monkeypatch.setattr(parallel, "MIN_PARALLEL_MISSES", 1)
    assert plan(root, jobs=1).workers == 0
    assert planning_jobs() == len(os.sched_getaffinity(0))
    monkeypatch.setenv(JOBS_ENV, "3")
    assert planning_jobs() == 3 and planning_jobs(1) == 1
    if parallel.can_fork():
        assert plan(root).workers == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(JOBS_ENV, bad)
        with pytest.raises(UsageError, match=JOBS_ENV):
            planning_jobs()


def test_an_interrupted_plan_stops_its_workers(
    fleet: tuple[Path, list[str]], through_workers: None, no_leftover_process: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = fleet

    def interrupted(*args: object) -> dict[str, str]:
        assert len(_children(os.getpid())) == 2  # the workers plan the clusters while the parent is interrupted
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "plan_fleet", interrupted)
    with pytest.raises(KeyboardInterrupt):
        plan(root, jobs=2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux only")
def test_ctrl_c_during_a_render_leaves_no_process(tmp_path: Path) -> None:
    root = tmp_path / "fleet"
    make_fleet(REPO, root, MIN_PARALLEL_CLUSTERS + 16)
    # Ctrl-C raises KeyboardInterrupt as in a terminal, even when this test runs where SIGINT is ignored (a
    # background job), which the render would inherit
    fleetgen = [sys.executable, "-c", "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "from generator.cli import main; sys.exit(main())"]
    env = {**os.environ, JOBS_ENV: "2"}
    render_cmd = [*fleetgen, "render", str(root), "--out", str(tmp_path / "out")]
    process = subprocess.Popen(render_cmd, env=env, start_new_session=True, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not _children(process.pid):
        assert process.poll() is None and time.monotonic() < deadline, "the render never started its workers"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0 and b"KeyboardInterrupt" in stderr
    group = [
        stat for stat in Path("/proc").glob("[0-9]*/stat")
        if (fields := _stat_fields(stat)) is not None and fields[2] == str(process.pid)
    ]
    assert group == []  # no worker outlived the render (nor a zombie)
    assert not (tmp_path / "out").exists() and not plan_cache_dir(root).exists()


def _stat_fields(stat: Path) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (index 2: process group), or None if it ended."""
    try:
        text = stat.read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _frozen(thing: object) -> bool:
    """Whether ``thing`` is frozen: tracked by the collector but in none of its generations (``gc.freeze``)."""
    return gc.is_tracked(thing) and not any(other is thing for other in gc.get_objects())


def test_long_lived_freezes_what_was_built_until_it_ends() -> None:
    """The render's inputs are built with the collector paused, then frozen until the render ends; an error before
    ``keep`` freezes nothing; objects frozen by someone else stay as they are."""
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    with parallel.LongLived() as inputs:
        assert not gc.isenabled()
        built = {"inventory": [1, 2]}
        inputs.keep()
        assert gc.isenabled() and _frozen(built)
        later = {"planned": [3]}
        assert not _frozen(later)
    assert gc.get_freeze_count() == 0 and gc.isenabled() and not _frozen(built)

    with pytest.raises(ValueError), parallel.LongLived():
        raise ValueError("an inventory error")
    assert gc.get_freeze_count() == 0 and gc.isenabled()

    gc.disable()  # a caller's pause (collector_paused) outlives ``keep``
    try:
        with parallel.LongLived() as inputs:
            inputs.keep()
            assert not gc.isenabled() and gc.get_freeze_count() > 0
        assert not gc.isenabled() and gc.get_freeze_count() == 0
    finally:
        gc.enable()

    theirs = {"frozen by": ["the caller"]}
    gc.freeze()
    try:
        with parallel.LongLived() as inputs:
            ours: dict[str, list[int]] = {"inventory": []}
            inputs.keep()
            assert not _frozen(ours) and _frozen(theirs)
        assert _frozen(theirs)
    finally:
        gc.unfreeze()


def test_a_plan_leaves_nothing_frozen(
    fleet: tuple[Path, list[str]], through_workers: None, no_leftover_process: None
) -> None:
    """Planning freezes its inputs (the forked planners too) and unfreezes them before it returns."""
    root, _ = fleet
    rendered = plan(root, None)
    assert rendered.files and gc.get_freeze_count() == 0 and gc.isenabled()


#: checks in other modules that fork planning workers (and so skip under xdist), run again here with this module's
FORKING_ELSEWHERE = [
    str(REPO / "tests" / "test_planner_memo.py") + "::test_planners_in_worker_processes_send_their_parts_back",
]


@pytest.mark.skipif(not os.environ.get("PYTEST_XDIST_WORKER"), reason="the checks above ran in this process")
def test_the_checks_above_run_in_a_process_without_threads() -> None:
    """Under pytest-xdist (how `invoke test` runs) a worker has threads of its own, so the checks that fork would
    skip: run this module (and ``FORKING_ELSEWHERE``) once more in a fresh pytest without xdist, where they run,
    and require that none skipped."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:xdist", "-p", "no:cacheprovider", __file__,
         *FORKING_ELSEWHERE, "-k", "not process_without_threads"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-4000:]
