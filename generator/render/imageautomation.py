"""Flux image automation in the first environment: the new tag goes back to the inventory, never to output.

For every app with ``imagePolicy``, each image-automation environment (``fleet.imageAutomation.environments``,
default: the first of ``fleet.environments``; never the last, prod) gets on ONE cluster — its first workload
cluster by name — an ImageRepository and an ImagePolicy per app in ``flux-system``, and one
ImageUpdateAutomation whose ``spec.update.path`` is that environment's overlay file. The tag's single
source is the inventory: the overlay holds ``apps.<app>.image.tag`` with the setter marker
``# {"$imagepolicy": "flux-system:<app>:tag"}``, so the automation edits the inventory, CI re-renders
(template/ CI: the ``image-updates`` job), and only that environment's clusters change. Each automation
writes one file of its own, so two environments' automations can never write the same file (no ping-pong).

API versions and semantics: image-reflector-controller v1.2.0 / image-automation-controller v1.2.1
(``image.toolkit.fluxcd.io/v1``; Flux 2.9.4 ships v1.2.4 of both); the setter semantics are in
generator/inventory/setters.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.errors import InventoryError, Problem
from generator.guard import read_text
from generator.inventory.models import App
from generator.inventory.resolve import ResolvedCluster, ResolvedFleet
from generator.inventory.setters import find_markers
from generator.render.planner import FLUX_NAMESPACE, Contribution, Planner

API_VERSION = "image.toolkit.fluxcd.io/v1"
#: The label an ImageUpdateAutomation selects its environment's policies by (``spec.policySelector``).
ENVIRONMENT_LABEL = "fleet.gitops.io/image-automation"
FILE = "image-automation.yaml"


def marker(app: str) -> str:
    """The setter an app's environment tag carries (``<namespace>:<policy>:tag``)."""
    return f"{FLUX_NAMESPACE}:{app}:tag"


def environments(fleet: ResolvedFleet) -> list[str]:
    """The environments with image automation (the configured ones, else the first environment)."""
    configured = fleet.fleet.image_automation.environments
    return list(configured) if configured is not None else fleet.fleet.environments[:1]


def runs_in(app: App, env: str) -> bool:
    """Whether the app runs in some cluster of ``env`` (its environments list allows it)."""
    return app.environments is None or env in app.environments


@dataclass(frozen=True)
class Automation:
    """One environment's image automation: where it runs, which apps, and the one file it writes."""

    environment: str
    cluster: ResolvedCluster
    apps: tuple[App, ...]
    overlay: str  # the overlay file, relative to the fleet root

    @property
    def update_path(self) -> str:
        """``spec.update.path``: the overlay file, relative to the repository root."""
        return self.overlay

    def name(self) -> str:
        """The ImageUpdateAutomation's name."""
        return f"inventory-{self.environment}"


def automations(fleet: ResolvedFleet) -> list[Automation]:
    """Every environment's image automation (none without apps that have an ``imagePolicy``); raises an
    InventoryError naming file:line when the inventory cannot have them."""
    inv = fleet.inventory
    policy_apps = [a for a in fleet.apps if a.image_policy is not None]
    problems: list[Problem] = []
    envs = environments(fleet)
    found: list[Automation] = []
    if not policy_apps:
        return []

    def at(*path: str | int) -> tuple[str, int, int]:
        return inv.fleet.where(*path)

    missing = [c for c in ("image-reflector-controller", "image-automation-controller")
               if c not in fleet.fleet.flux.components]
    if missing:
        problems.append(Problem(*at("flux", "components"), "fleet.flux.components",
                                f"apps have an imagePolicy but Flux runs no {' or '.join(missing)}"))
    for env in envs:
        if env not in fleet.fleet.environments:
            problems.append(Problem(*at("imageAutomation", "environments"), "fleet.imageAutomation.environments",
                                    f"'{env}' is not one of fleet.environments {fleet.fleet.environments}"))
        elif len(fleet.fleet.environments) > 1 and env == fleet.fleet.environments[-1]:
            problems.append(Problem(*at("imageAutomation", "environments"), "fleet.imageAutomation.environments",
                                    f"'{env}' is the last environment of the promotion order: its images change "
                                    "only by `fleetgen promote`, never by automation"))
    for source in inv.apps:
        app = source.item
        if app.image_policy is None:
            continue
        if app.image.digest:
            problems.append(Problem(*source.where("image", "digest"), "image.digest",
                                    "an app with an imagePolicy cannot pin a digest: automation changes the tag"))
        if not any(runs_in(app, env) for env in envs if env in fleet.fleet.environments):
            problems.append(Problem(*source.where("imagePolicy"), "imagePolicy",
                                    f"app '{app.name}' runs in no image-automation environment {envs}"))
    if problems:
        raise InventoryError(problems)
    for env in envs:
        apps = tuple(a for a in policy_apps if runs_in(a, env))
        if not apps:
            continue
        clusters = sorted((c for c in fleet.clusters
                           if c.cluster.environment == env and c.cluster.role == "workload"), key=lambda c: c.name)
        layer = inv.overlays[env]
        if not clusters or layer.file is None:
            problems.append(Problem(*at("imageAutomation"), "fleet.imageAutomation",
                                    f"environment '{env}' has apps with an imagePolicy but "
                                    + ("no workload cluster to run the automation" if not clusters
                                       else f"no overlays/{env}.yaml to hold their tags")))
            continue
        found.append(Automation(env, clusters[0], apps, layer.file.file))
    problems += _check_markers(fleet, found)
    if problems:
        raise InventoryError(problems)
    return found


def _check_markers(fleet: ResolvedFleet, found: list[Automation]) -> list[Problem]:
    """Each automation's overlay marks ``apps.<app>.image.tag`` of every app it updates, and no overlay holds
    a marker that no automation of that file serves (it would silently never change)."""
    inv = fleet.inventory
    problems = []
    served = {a.overlay: a for a in found}
    for env, layer in sorted(inv.overlays.items()):
        if layer.file is None:
            continue
        text = read_text(inv.root / layer.file.file, inv.root, layer.file.file)
        markers = {m.path: m for m in find_markers(text)}
        automation = served.get(layer.file.file)
        wanted: dict[tuple[str | int, ...], str] = {
            ("apps", a.name, "image", "tag"): marker(a.name) for a in (automation.apps if automation else ())
        }
        for path, setter in wanted.items():
            got = markers.get(path)
            if got is None or got.setter != setter:
                app = path[1]
                position = layer.file.position(path)
                tag = next(a.image.tag for a in automation.apps if a.name == app) if automation else ""
                problems.append(Problem(
                    layer.file.file, position.line, position.column, f"apps.{app}.image.tag",
                    f"app '{app}' has an imagePolicy, so {env}'s image automation writes its tag here: write it in "
                    f"block style with the setter marker, `tag: \"{tag}\" # {{\"$imagepolicy\": \"{setter}\"}}` "
                    f"under apps.{app}.image (README \"Image automation and promotion\")"))
        for path, found_marker in markers.items():
            if wanted.get(path) != found_marker.setter:
                problems.append(Problem(
                    layer.file.file, found_marker.line, found_marker.column, ".".join(str(p) for p in path),
                    f"setter marker '{found_marker.setter}' here is served by no image automation of "
                    f"{layer.file.file}: it would never change (remove it, or give the app an imagePolicy)"))
    return problems


def _objects(fleet: ResolvedFleet, automation: Automation) -> list[dict[str, object]]:
    settings = fleet.fleet.image_automation
    labels = {ENVIRONMENT_LABEL: automation.environment}
    documents: list[dict[str, object]] = []
    for app in sorted(automation.apps, key=lambda a: a.name):
        policy = app.image_policy
        assert policy is not None
        meta = {"name": app.name, "namespace": FLUX_NAMESPACE,
                "labels": {"app.kubernetes.io/name": app.name, **labels}}
        repository: dict[str, object] = {"image": app.image.repository, "interval": settings.scan_interval}
        if settings.provider != "generic":
            repository["provider"] = settings.provider
        if settings.secret_name:
            repository["secretRef"] = {"name": settings.secret_name}
        documents.append({"apiVersion": API_VERSION, "kind": "ImageRepository", "metadata": meta, "spec": repository})
        if policy.semver is not None:
            choice: dict[str, object] = {"semver": {"range": policy.semver}}
        elif policy.numerical is not None:
            choice = {"numerical": {"order": policy.numerical}}
        else:
            choice = {"alphabetical": {"order": policy.alphabetical}}
        spec: dict[str, object] = {"imageRepositoryRef": {"name": app.name}, "policy": choice}
        if policy.filter_tags is not None:
            spec["filterTags"] = {"pattern": policy.filter_tags.pattern, "extract": policy.filter_tags.extract}
        documents.append({"apiVersion": API_VERSION, "kind": "ImagePolicy", "metadata": meta, "spec": spec})
    root = settings.root_path.strip("/")
    path = "./" + "/".join(p for p in (root, automation.update_path) if p)
    env = automation.environment
    documents.append({
        "apiVersion": API_VERSION,
        "kind": "ImageUpdateAutomation",
        "metadata": {"name": automation.name(), "namespace": FLUX_NAMESPACE, "labels": labels},
        "spec": {
            "interval": settings.interval,
            "sourceRef": {"kind": "GitRepository", "name": FLUX_NAMESPACE},
            "policySelector": {"matchLabels": labels},
            "git": {
                "checkout": {"ref": {"branch": fleet.fleet.git.branch}},
                "commit": {
                    "author": {"name": settings.author.name,
                               "email": settings.author.email or f"flux@{fleet.fleet.domain}"},
                    "messageTemplate": (
                        f"images({env}): new tags in {automation.update_path}\n\n"
                        "{{ range .Changed.Changes }}- {{ .Setter }}: {{ .OldValue }} -> {{ .NewValue }}\n{{ end }}"
                    ),
                },
                "push": {"branch": settings.push_branch},
            },
            "update": {"strategy": "Setters", "path": path},
        },
    })
    return documents


def plan_image_automation(fleet: ResolvedFleet) -> Contribution:
    """``clusters/<cluster>/image-automation.yaml`` on each automation cluster (its root sync applies it)."""
    planner = Planner()
    contribution = Contribution()
    inv = fleet.inventory
    for automation in automations(fleet):
        cluster = automation.cluster.name
        path = f"clusters/{cluster}/{FILE}"
        sources = sorted({inv.fleet.file.file, automation.overlay,
                          *(s.file.file for s in inv.apps if s.item in automation.apps)})
        planner.add_yaml(path, _objects(fleet, automation), sources)
        contribution.cluster_resources.setdefault(cluster, []).append(path)
    contribution.files = planner.files
    return contribution
