"""``fleetgen promote [ROOT] APP --to ENV``: run in ENV exactly the image the previous environment runs.

The tag (and digest) is written to ``overlays/<ENV>.yaml`` at ``apps.<APP>.image`` — the same place image
automation writes in its environment — editing the file in place: an existing scalar is replaced character
for character (comments, quoting and layout kept), a missing entry is added with ruamel's round-trip writer.
Before anything is written the edited fleet is rendered and built next to the current one, and the blast
radius (clusters and resources that change) is printed with ``fleetgen diff``'s machinery. Inventory errors
exit 2 with file:line and write nothing.
"""

from __future__ import annotations

import dataclasses
import io
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from generator.build.model import BuildOptions
from generator.errors import InventoryError, Problem, UsageError
from generator.guard import read_text
from generator.inventory.resolve import ResolvedFleet
from generator.inventory.setters import replace_scalar
from generator.tools import Toolset

#: Folders of a fleet root a render reads (copied to build the promoted fleet aside).
_INPUTS = ("inventory", "overlays", "charts")


@dataclass(frozen=True)
class Promotion:
    """What a promotion changes: the app, both environments, the image before and after, the file."""

    app: str
    source: str
    target: str
    old: tuple[str, str]  # (tag, digest) the target runs now
    new: tuple[str, str]  # (tag, digest) the source runs
    overlay: str  # overlay file, relative to the root
    text: str  # the overlay's new text


def _runs(fleet: ResolvedFleet, app: str, env: str) -> set[tuple[str, str]]:
    """The (tag, digest) pairs ``app`` runs with in ``env``: per cluster, or the environment overlay's."""
    found = {(a.values.merged["image"]["tag"], a.values.merged["image"].get("digest", ""))
             for c in fleet.clusters if c.cluster.environment == env for a in c.apps if a.name == app}
    if not found:
        for e in fleet.environments:
            if e.name == env:
                found |= {(a.values.merged["image"]["tag"], a.values.merged["image"].get("digest", ""))
                          for a in e.apps if a.name == app}
    return found


def problem_at(fleet: ResolvedFleet, app: str, message: str, field: str = "") -> InventoryError:
    source = next((s for s in fleet.inventory.apps if s.item.name == app), None)
    if source is None:
        return InventoryError([Problem(fleet.inventory.fleet.file.file, 1, 1, field, message)])
    return InventoryError([Problem(*source.where(), field or f"apps.{app}", message)])


def plan_promotion(fleet: ResolvedFleet, app: str, target: str, source: str | None = None,
                   force: bool = False) -> Promotion:
    """Check the promotion and compute the overlay's new text (writes nothing)."""
    inv = fleet.inventory
    envs = list(fleet.fleet.environments)
    fleet_at = inv.fleet.where("environments")
    if app not in {a.name for a in fleet.apps}:
        raise UsageError(f"no app '{app}' in the inventory (apps: {', '.join(sorted(a.name for a in fleet.apps))})")
    for env in (target, source):
        if env is not None and env not in envs:
            raise InventoryError([Problem(*fleet_at, "fleet.environments",
                                          f"'{env}' is not an environment of the fleet {envs}")])
    index = envs.index(target)
    if source is None:
        if index == 0:
            raise InventoryError([Problem(*fleet_at, "fleet.environments",
                                          f"'{target}' is the first environment: nothing comes before it "
                                          "(give --from ENV)")])
        source = envs[index - 1]
    if source == target:
        raise UsageError("--from and --to name the same environment")
    if envs.index(source) != index - 1 and not force:
        raise InventoryError([Problem(*fleet_at, "fleet.environments",
                                      f"promoting {app} from {source} to {target} skips the promotion order {envs} "
                                      f"(the environment before {target} is "
                                      f"{envs[index - 1] if index else 'none'}); use --force to do it anyway")])
    runs = _runs(fleet, app, source)
    if not runs:
        raise problem_at(fleet, app, f"app '{app}' does not run in {source}: nothing to promote",
                       f"apps.{app}.environments")
    if len(runs) > 1:
        shown = ", ".join(t + (f"@{d}" if d else "") for t, d in sorted(runs))
        raise problem_at(fleet, app, f"the clusters of {source} run different images of '{app}' ({shown}): "
                                   "align them (cluster-level apps.<app>.image) before promoting")
    new = next(iter(runs))
    old_runs = _runs(fleet, app, target)
    if not old_runs:
        raise problem_at(fleet, app, f"app '{app}' does not run in {target}", f"apps.{app}.environments")
    for cluster in inv.clusters:
        raw = ((cluster.raw.get("apps") or {}).get(app) or {}).get("image")
        if cluster.item.environment == target and raw:
            file, line, column = cluster.where("apps", app, "image")
            raise InventoryError([Problem(file, line, column, f"apps.{app}.image",
                                          f"cluster '{cluster.item.name}' pins its own image of '{app}', which "
                                          f"would hide the promotion to {target}: remove it first")])
    layer = inv.overlays[target]
    if layer.file is None:
        raise InventoryError([Problem(f"overlays/{target}.yaml", 0, 0, "", "no overlay file for the environment")])
    overlay = layer.file.file
    text = read_text(inv.root / overlay, inv.root, overlay)
    old = sorted(old_runs)[0]
    return Promotion(app, source, target, old, new, overlay, set_image(text, overlay, app, *new, old_digest=old[1]))


def set_image(text: str, display: str, app: str, tag: str, digest: str, old_digest: str = "") -> str:
    """``text`` with ``apps.<app>.image.tag`` set, and ``digest`` when the source has one, the target ran one
    (``old_digest``: a digest from a lower layer must not stay under the new tag) or the entry has one."""
    reader = YAML(typ="rt")
    reader.preserve_quotes = True
    reader.width = 4096
    reader.indent(mapping=2, sequence=4, offset=2)
    data = reader.load(text) or CommentedMap()
    if not isinstance(data, CommentedMap):
        raise InventoryError([Problem(display, 1, 1, "", "an overlay must be a mapping")])
    image = ((data.get("apps") or {}).get(app) or {}).get("image")
    keep_digest = digest or old_digest or (isinstance(image, dict) and "digest" in image)
    wanted = {"tag": tag, **({"digest": digest} if keep_digest else {})}
    lines = text.split("\n")
    if isinstance(image, CommentedMap) and all(k in image and isinstance(image[k], str) for k in wanted):
        for key, value in wanted.items():
            line, column = image.lc.value(key)
            lines[line], _ = replace_scalar(lines[line], column, value)
        return "\n".join(lines)
    # add what is missing with the round-trip writer (keeps comments; block style as the reference overlays)
    apps = data.setdefault("apps", CommentedMap())
    entry = apps.setdefault(app, CommentedMap())
    block = entry.setdefault("image", CommentedMap())
    for key, value in wanted.items():
        block[key] = DoubleQuotedScalarString(value)
    out = io.StringIO()
    reader.dump(data, out)
    return out.getvalue()


def promote(root: Path, app: str, target: str, source: str | None = None, *, force: bool = False,
            jobs: int | None = None, options: BuildOptions | None = None,
            tools: Toolset | None = None) -> tuple[Promotion, str]:
    """Promote, print nothing: returns the promotion and the blast-radius report. Writes the overlay only
    after the promoted fleet rendered and built (with ``tools``, default: those found for ``root``)."""
    from generator.build.fleet import build_fleet, default_cache_dir
    from generator.render.pipeline import plan
    from generator.tools import find_tools
    from generator.verify.golden import compare_trees, summary

    current = plan(root)
    promotion = plan_promotion(current.fleet, app, target, source, force)
    if promotion.old == promotion.new:
        return promotion, f"{app} already runs {promotion.new[0]} in {target}: nothing to change\n"
    tools = tools or find_tools(root)
    options = options or BuildOptions(cache_dir=default_cache_dir(root), jobs=jobs)
    with tempfile.TemporaryDirectory(prefix="fleetgen-promote-") as tmp:
        aside = Path(tmp) / "fleet"
        aside.mkdir()
        for name in _INPUTS:
            if (root / name).is_dir():
                shutil.copytree(root / name, aside / name, symlinks=True)
        (aside / promotion.overlay).write_text(promotion.text, encoding="utf-8")
        promoted = plan(aside)
        before = build_fleet(root, dataclasses.replace(options), rendered=current, tools=tools)
        after = build_fleet(aside, dataclasses.replace(options), rendered=promoted, tools=tools)
    comparison = compare_trees(before.files(), after.files(), old_build=before, new_build=after)
    old = promotion.old[0] + (f"@{promotion.old[1]}" if promotion.old[1] else "")
    new = promotion.new[0] + (f"@{promotion.new[1]}" if promotion.new[1] else "")
    title = f"promote {app} {promotion.source} → {target}: {old} → {new} ({promotion.overlay})"
    report = "\n".join(summary(comparison, title=title)) + "\n"
    target_file = root / promotion.overlay
    tmp_file = target_file.with_name(f".{target_file.name}.fleetgen-tmp")
    tmp_file.write_text(promotion.text, encoding="utf-8")
    tmp_file.replace(target_file)
    return promotion, report
