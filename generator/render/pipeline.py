"""The render pipeline: load → validate → resolve → plan → write (or check)."""

from __future__ import annotations

import datetime
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from generator.inventory.loadcache import LoadCache
from generator.inventory.loader import load_inventory
from generator.inventory.resolve import ResolvedFleet, resolve
from generator.render import writer
from generator.render.argocd import plan_argocd
from generator.render.canary import plan_canary
from generator.render.crossplane import fleet_contribution, plan_infrastructure
from generator.render.globaltls import plan_global_tls
from generator.render.grafana_sso import plan_grafana_sso
from generator.render.imageautomation import plan_image_automation
from generator.render.incremental import PlanCache
from generator.render.ingest import plan_ingest
from generator.render.issuers import plan_issuers
from generator.render.memo import MemoizingPlanCache, PlannerMemo
from generator.render.overview import FLEET_FILE, fleet_markdown
from generator.render.parallel import ClusterFiles, LongLived, run_planners
from generator.render.planner import Contribution, merge_contributions, plan_fleet
from generator.render.policies import codeowners, plan_policies
from generator.render.record import inputs_digest, recorded_warnings, reissue, remove_record, save_record


@dataclass(frozen=True)
class Rendered:
    """A resolved fleet and its complete file plan (paths relative to the output root)."""

    fleet: ResolvedFleet
    files: dict[str, str]
    #: clusters whose files came from the plan cache, and clusters planned (with a cache; 0, 0 without one)
    reused_clusters: int = 0
    planned_clusters: int = 0
    #: the plan cache this render read, holding its new entries until ``plan_cache.store()``
    plan_cache: PlanCache | None = field(default=None, compare=False, repr=False)
    #: worker processes that planned the clusters' own files (0: planned in this process)
    workers: int = field(default=0, compare=False)
    #: the load cache the inventory was read through, holding its new records until ``load_cache.store()``
    load_cache: LoadCache | None = field(default=None, compare=False, repr=False)


def plan_cache_dir(root: Path) -> Path:
    """Where ``render`` keeps each cluster's planned files between runs: ``ROOT/.cache/fleetgen/plan``."""
    return root / ".cache" / "fleetgen" / "plan"


def stat_cache_dir(root: Path) -> Path:
    """Where ``render`` keeps the stat of each file it wrote (``ROOT/.cache/fleetgen/stat``, machine-local), so
    an unchanged output tree is compared without reading it (generator/render/writer.py)."""
    return root / ".cache" / "fleetgen" / "stat"


def plan(root: Path, cache_dir: Path | None = None, *, store: bool = True, jobs: int | None = None) -> Rendered:
    """Everything a render would write for the fleet at ``root``; writes nothing but, with ``cache_dir``, the
    per-cluster plan cache (generator/render/incremental.py: the same files, re-planned only where inputs changed),
    at the end, or with ``store=False`` when the caller calls ``plan_cache.store()`` (and ``load_cache.store()``)
    after its own work succeeded.
    A large fleet is planned by ``jobs`` worker processes (generator/render/parallel.py; default ``$FLEETGEN_JOBS``
    or the CPUs): the fleet-wide planners at once, then the clusters' own files; the bytes are the same."""
    # the inventory's files read through the load cache (generator/inventory/loadcache.py), kept with the plan cache
    load_cache = LoadCache(cache_dir / "load" if cache_dir is not None else None)
    with LongLived() as inputs:  # the inventory and the resolved fleet: out of the collector's passes until the end
        fleet = resolve(load_inventory(root, load_cache=load_cache))
        inputs.keep()
        return _planned(root, fleet, cache_dir, load_cache, store=store, jobs=jobs)


def _planned(root: Path, fleet: ResolvedFleet, cache_dir: Path | None, load_cache: LoadCache, *, store: bool,
             jobs: int | None) -> Rendered:
    """``plan`` of a loaded and resolved fleet."""
    # with the fleet-wide planners' memo (generator/render/memo.py) and, with the plan cache in its usual place under
    # the fleet root, the memo of the checked entries (ROOT/.cache/fleetgen/checks, inventory/checkmemo.py)
    usual = cache_dir is not None and cache_dir.resolve() == plan_cache_dir(fleet.inventory.root)
    checked = fleet.inventory if usual else None
    cache = MemoizingPlanCache(cache_dir, checked)
    memoized = cache.memoized
    cache.memo.prepare(fleet)  # once here, not in each forked planner
    # fleet-wide planners, which read the resolved fleet only: by workers at once for a large fleet, each result
    # (or exception) taken below in a serial render's order: contributions, fleet repo, infrastructure, overview
    *contributed, infrastructure, overview = run_planners(fleet, [
        memoized(plan_policies), memoized(plan_issuers), plan_canary, memoized(fleet_contribution), plan_argocd,
        plan_image_automation, memoized(plan_ingest), plan_grafana_sso, plan_global_tls, memoized(plan_infrastructure),
        memoized(_overview),
    ], jobs)
    contributions: list[Contribution] = [cache.take(outcome.result()) for outcome in contributed]
    with ClusterFiles(fleet, merge_contributions(contributions), cache, jobs) as cluster_files:
        fleet_files = plan_fleet(fleet, root / "charts", contributions, cluster_files)
    files = {f"fleet/{path}": text for path, text in fleet_files.items()}
    infrastructure_files: dict[str, str] = cache.take(infrastructure.result())
    files.update({f"infrastructure/{path}": text for path, text in infrastructure_files.items()})
    owners: str
    markdown: str
    owners, markdown = cache.take(overview.result())
    files["CODEOWNERS"] = owners  # at the output (repository) root, where GitHub and GitLab look
    files[FLEET_FILE] = markdown  # the overview people read, next to it
    cache.clusters = {c.name for c in fleet.clusters}
    if store:
        cache.store()
        load_cache.store()
    return Rendered(
        fleet, dict(sorted(files.items())), cache.hits, cache.misses, cache, cluster_files.workers, load_cache
    )


def _overview(fleet: ResolvedFleet, memo: PlannerMemo | None = None) -> tuple[str, str]:
    """CODEOWNERS and FLEET.md (which lists each folder's owners; each cluster's part through ``memo``)."""
    owners = codeowners(fleet)
    return owners, fleet_markdown(fleet, owners, memo)


def _known(rendered: Rendered) -> writer.TextDigests | None:
    """The sha256 of the planned texts the plan cache read (the writer does not hash them again)."""
    return None if rendered.plan_cache is None else rendered.plan_cache.text_digests


def render(
    root: Path, out: Path, *, check: bool = False, force: bool = False, cache_dir: Path | None = None,
    jobs: int | None = None,
) -> writer.Changes:
    """Render the fleet at ``root`` into ``out``; with ``check`` only compare. Unchanged clusters come from the
    plan cache (``cache_dir``, default ``plan_cache_dir(root)``; the bytes are those of a full render); the output
    tree is compared through the stat cache in ``stat_cache_dir(root)``."""
    if check:  # writes nothing, the plan cache, the stat cache and the render record included
        rendered = plan(root, cache_dir or plan_cache_dir(root), store=False, jobs=jobs)
        return writer.compare(out, rendered.files, stat_cache=stat_cache_dir(root), known=_known(rendered))
    # the render record (generator/render/record.py) lets `build` skip its plan: the inputs are hashed before and
    # after planning (an edit meanwhile leaves no record) and the warnings kept to be shown again
    caught: list[warnings.WarningMessage] = []
    inputs = inputs_digest(root, datetime.date.today())
    remove_record(root)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # every warning recorded; the caller's filters decide what is shown
            rendered = plan(root, cache_dir or plan_cache_dir(root), store=False, jobs=jobs)
    finally:
        reissue(caught)
    changes = writer.write(out, rendered.files, force=force, stat_cache=stat_cache_dir(root), known=_known(rendered))
    if rendered.plan_cache is not None:
        rendered.plan_cache.store()
    if rendered.load_cache is not None:
        rendered.load_cache.store()
    if inputs is not None and inputs == inputs_digest(root, datetime.date.today()):
        save_record(root, out, rendered, inputs, recorded_warnings(caught))
    return changes
