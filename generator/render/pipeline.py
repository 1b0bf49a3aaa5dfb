"""The render pipeline: load → validate → resolve → plan → write (or check)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from generator.inventory.loader import load_inventory
from generator.inventory.resolve import ResolvedFleet, resolve
from generator.render import writer
from generator.render.argocd import plan_argocd
from generator.render.canary import plan_canary
from generator.render.crossplane import fleet_contribution, plan_infrastructure
from generator.render.globaltls import plan_global_tls
from generator.render.grafana_sso import plan_grafana_sso
from generator.render.imageautomation import plan_image_automation
from generator.render.incremental import PlanCache, cached_cluster_planner
from generator.render.ingest import plan_ingest
from generator.render.issuers import plan_issuers
from generator.render.overview import FLEET_FILE, fleet_markdown
from generator.render.planner import plan_fleet
from generator.render.policies import codeowners, plan_policies


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


def plan_cache_dir(root: Path) -> Path:
    """Where ``render`` keeps each cluster's planned files between runs: ``ROOT/.cache/fleetgen/plan``."""
    return root / ".cache" / "fleetgen" / "plan"


def stat_cache_dir(root: Path) -> Path:
    """Where ``render`` keeps the stat of each file it wrote (``ROOT/.cache/fleetgen/stat``, machine-local), so
    an unchanged output tree is compared without reading it (generator/render/writer.py)."""
    return root / ".cache" / "fleetgen" / "stat"


def plan(root: Path, cache_dir: Path | None = None, *, store: bool = True) -> Rendered:
    """Everything a render would write for the fleet at ``root``; writes nothing but, with ``cache_dir``, the
    per-cluster plan cache (generator/render/incremental.py: the same files, re-planned only where inputs changed),
    at the end, or with ``store=False`` when the caller calls ``plan_cache.store()`` after its own work succeeded."""
    fleet = resolve(load_inventory(root))
    cache = PlanCache(cache_dir)
    contributions = [plan_policies(fleet), plan_issuers(fleet), plan_canary(fleet), fleet_contribution(fleet),
                     plan_argocd(fleet), plan_image_automation(fleet), plan_ingest(fleet),
                     plan_grafana_sso(fleet), plan_global_tls(fleet)]
    cluster_files = cached_cluster_planner(cache, fleet) if cache_dir is not None else None
    files = {f"fleet/{path}": text
             for path, text in plan_fleet(fleet, root / "charts", contributions, cluster_files).items()}
    files.update({f"infrastructure/{path}": text for path, text in plan_infrastructure(fleet).items()})
    files["CODEOWNERS"] = codeowners(fleet)  # at the output (repository) root, where GitHub and GitLab look
    files[FLEET_FILE] = fleet_markdown(fleet, files["CODEOWNERS"])  # the overview people read, next to it
    cache.clusters = {c.name for c in fleet.clusters}
    if store:
        cache.store()
    return Rendered(fleet, dict(sorted(files.items())), cache.hits, cache.misses, cache)


def render(
    root: Path, out: Path, *, check: bool = False, force: bool = False, cache_dir: Path | None = None
) -> writer.Changes:
    """Render the fleet at ``root`` into ``out``; with ``check`` only compare. Unchanged clusters come from the
    plan cache (``cache_dir``, default ``plan_cache_dir(root)``; the bytes are those of a full render); the output
    tree is compared through the stat cache in ``stat_cache_dir(root)``."""
    rendered = plan(root, cache_dir or plan_cache_dir(root), store=False)
    if check:  # writes nothing, the plan cache and the stat cache included
        return writer.compare(out, rendered.files, stat_cache=stat_cache_dir(root))
    changes = writer.write(out, rendered.files, force=force, stat_cache=stat_cache_dir(root))
    if rendered.plan_cache is not None:
        rendered.plan_cache.store()
    return changes
