"""Service mesh (Istio ambient, README "Service mesh"): which namespaces join it and what that changes.

Pure functions of the inventory models (resolve and plan import this module). The mesh runs where the
component with chart ``istiod`` runs; a team with ``mesh: true`` has its namespaces enrolled there
(label ``istio.io/dataplane-mode: ambient``) with a PeerAuthentication whose mode is the layered setting
``mesh.mtls`` (STRICT in the reference prod overlay).

Upstream facts (istio/istio 1.30.3; istio.io "Ambient and Kubernetes NetworkPolicy"): ambient pods talk to each
other through ztunnel's HBONE tunnel on TCP 15008, which NetworkPolicy sees (it is enforced outside the pod), so
an enrolled app's NetworkPolicy must admit and allow 15008 to/from its peers; kubelet probes of enrolled pods
arrive SNATed from 169.254.7.127.
"""

from __future__ import annotations

from typing import Any

from generator.errors import InventoryError, Problem
from generator.inventory.models import App, Component, Team

MESH_CONTROLLER_CHART = "istiod"
DATAPLANE_LABEL = "istio.io/dataplane-mode"
AMBIENT = "ambient"


def mesh_controller(components: tuple[Component, ...] | list[Component]) -> Component | None:
    """The component that runs the mesh's control plane, if the inventory has one."""
    return next((c for c in components if c.chart.name == MESH_CONTROLLER_CHART), None)


def runs_mesh(components: tuple[Any, ...]) -> bool:
    """Whether resolved components (of a cluster or an environment) include the mesh control plane."""
    return any(c.component.chart.name == MESH_CONTROLLER_CHART for c in components)


def mesh_values(team: Team, mesh_on: bool) -> dict[str, Any]:
    """Service-chart values of an app of ``team``: its NetworkPolicy admits the mesh's tunnel when enrolled."""
    return {"networkPolicy": {"ambient": True}} if mesh_on and team.mesh else {}


def namespace_labels(team: Team, mesh_on: bool) -> dict[str, str]:
    """Labels of the team's namespaces on a cluster (or environment) where the mesh does or does not run."""
    return {DATAPLANE_LABEL: AMBIENT} if mesh_on and team.mesh else {}


def check_mesh(apps: list[tuple[App, Any]], teams: dict[str, tuple[Team, Any]]) -> None:
    """Under STRICT mTLS an enrolled app only accepts mesh traffic: an app outside the mesh may not depend on one
    inside it (its plaintext requests would be refused). ``apps``/``teams`` carry their inventory entries."""
    problems: list[Problem] = []
    by_name = {app.name: app for app, _ in apps}
    for app, source in apps:
        team, _ = teams[app.team]
        if team.mesh:
            continue
        inside = sorted(d for d in app.depends_on if d in by_name and teams[by_name[d].team][0].mesh)
        if inside:
            file, line, column = source.where("dependsOn")
            problems.append(
                Problem(file, line, column, ".".join(str(p) for p in (*source.path, "dependsOn")),
                        f"app '{app.name}' (team '{team.name}', not in the mesh) calls {', '.join(inside)} in the "
                        "mesh, which under mtls STRICT refuses plaintext: set mesh: true on team "
                        f"'{team.name}' too")
            )
    if problems:
        raise InventoryError(problems)
