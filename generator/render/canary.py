"""Cluster-wide objects and checks of Flagger Canaries (the Canaries themselves come from charts/service).

- Every workload cluster with ``canary.enabled`` and apps must run the canary controller component (chart
  ``flagger``), whose configs must define the MetricTemplates the Canaries name (generator/inventory/canary.py);
  otherwise an inventory error names the cluster entry.
- Where the controller runs and ``fleet.notifications`` has a type Flagger can send to, one
  ``AlertProvider`` (flagger.app/v1beta1) in flux-system reads the webhook from the same Secret as the Flux
  Provider: notification-controller and Flagger both take the address from its ``address`` key
  (fluxcd/flagger v1.44.0 pkg/controller/events.go). It lives in ``infrastructure/canary/`` and joins the
  cluster's configs layer (after Flagger's CRDs exist).
"""

from __future__ import annotations

from generator.errors import InventoryError, Problem
from generator.inventory.canary import ALERT_PROVIDER, ALERT_PROVIDER_TYPES, METRIC_TEMPLATES, canary_controller
from generator.inventory.resolve import ResolvedFleet
from generator.render.planner import FLUX_NAMESPACE, Contribution, Planner

CANARY_DIR = "infrastructure/canary"


def plan_canary(fleet: ResolvedFleet) -> Contribution:
    """The AlertProvider where Flagger runs, and the checks above."""
    planner = Planner()
    contribution = Contribution()
    problems: list[Problem] = []
    controller = canary_controller(fleet.components)
    if controller is not None:
        defined = {c["metadata"]["name"] for c in controller.configs if c.get("kind") == "MetricTemplate"}
        missing = [name for name in METRIC_TEMPLATES if name not in defined]
        if missing:
            entry = next(s for s in fleet.inventory.components if s.item is controller)
            file, line, column = entry.where("configs") if "configs" in entry.raw else entry.where()
            problems.append(
                Problem(file, line, column, ".".join(str(p) for p in (*entry.path, "configs")),
                        f"Canaries check the MetricTemplates {', '.join(METRIC_TEMPLATES)}; "
                        f"missing here: {', '.join(missing)}")
            )
    notifications = fleet.fleet.notifications
    provider_type = ALERT_PROVIDER_TYPES.get(notifications.type) if notifications is not None else None
    fleet_file = fleet.inventory.fleet.file.file
    if notifications is not None and provider_type is not None and controller is not None:
        spec: dict[str, object] = {"type": provider_type, "secretRef": {"name": notifications.secret_name}}
        if notifications.channel:
            spec["channel"] = notifications.channel
        planner.add_yaml(
            f"{CANARY_DIR}/alert-provider.yaml",
            [{"apiVersion": "flagger.app/v1beta1", "kind": "AlertProvider",
              "metadata": {"name": ALERT_PROVIDER, "namespace": FLUX_NAMESPACE}, "spec": spec}],
            [fleet_file],
        )
        planner.add_yaml(
            f"{CANARY_DIR}/kustomization.yaml",
            [{"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
              "resources": ["alert-provider.yaml"]}],
            [fleet_file],
        )
    for cluster in fleet.clusters:
        runs_controller = controller is not None and any(c.component is controller for c in cluster.components)
        if cluster.settings.canary.enabled and cluster.apps and not runs_controller:
            source = next(s for s in fleet.inventory.clusters if s.item.name == cluster.name)
            file, line, column = source.where()
            problems.append(
                Problem(file, line, column, ".".join(str(p) for p in source.path),
                        f"canary.enabled is on for cluster '{cluster.name}' (apps "
                        f"{', '.join(a.name for a in cluster.apps)}) but it runs no "
                        f"{controller.name if controller else 'flagger'} component: enable it in the same layer")
            )
        if runs_controller and planner.files:
            contribution.cluster_configs.setdefault(cluster.name, []).append(CANARY_DIR)
    if problems:
        raise InventoryError(problems)
    contribution.files = planner.files
    return contribution
