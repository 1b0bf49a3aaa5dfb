"""The render pipeline: load → validate → resolve → plan → write (or check)."""

from __future__ import annotations

from dataclasses import dataclass
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


def plan(root: Path) -> Rendered:
    """Everything a render would write for the fleet at ``root``; writes nothing."""
    fleet = resolve(load_inventory(root))
    contributions = [plan_policies(fleet), plan_issuers(fleet), plan_canary(fleet), fleet_contribution(fleet),
                     plan_argocd(fleet), plan_image_automation(fleet), plan_ingest(fleet),
                     plan_grafana_sso(fleet), plan_global_tls(fleet)]
    files = {f"fleet/{path}": text for path, text in plan_fleet(fleet, root / "charts", contributions).items()}
    files.update({f"infrastructure/{path}": text for path, text in plan_infrastructure(fleet).items()})
    files["CODEOWNERS"] = codeowners(fleet)  # at the output (repository) root, where GitHub and GitLab look
    files[FLEET_FILE] = fleet_markdown(fleet, files["CODEOWNERS"])  # the overview people read, next to it
    return Rendered(fleet, dict(sorted(files.items())))


def render(root: Path, out: Path, *, check: bool = False, force: bool = False) -> writer.Changes:
    """Render the fleet at ``root`` into ``out``; with ``check`` only compare."""
    rendered = plan(root)
    if check:
        return writer.compare(out, rendered.files)
    return writer.write(out, rendered.files, force=force)
