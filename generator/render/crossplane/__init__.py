"""The Crossplane infrastructure repo: platform APIs (XRDs), compositions per cloud, packages and credentials,
one cluster object per workload cluster, and the hub's Flux wiring that syncs it and bootstraps new clusters.

Entry points for the render pipeline: :func:`plan_infrastructure` (files of OUT/infrastructure/) and
:func:`plan_hub_bootstrap` (extra files of OUT/fleet/ for the hub); :func:`hub_resources` names what the
hub's ``clusters/<hub>/kustomization.yaml`` must list, and :func:`fleet_contribution` packs both for
``generator.render.planner.plan_fleet``.
"""

from __future__ import annotations

from generator.render.crossplane.plan import (
    build_hub_bootstrap,
    build_infrastructure,
    fleet_contribution,
    hub_resources,
    plan_hub_bootstrap,
    plan_infrastructure,
)

__all__ = ["build_hub_bootstrap", "build_infrastructure", "fleet_contribution", "hub_resources",
           "plan_hub_bootstrap", "plan_infrastructure"]
