"""Flagger Canaries: the service-chart values that turn an app into Flagger's target (README "Canary releases").

Pure functions of the inventory models (no planning here: resolve imports this module). The Canary itself is
rendered by ``charts/service`` (templates/canary.yaml) from the values built here, so the chart and the Canary
can never disagree on the Deployment name or the ports; generator/render/canary.py adds the cluster-wide
objects (the AlertProvider) and the checks.

Upstream facts (fluxcd/flagger v1.44.0):

- the provider of a Canary is ``gatewayapi:v1`` for an app with a host on the cluster's Gateway (Flagger owns
  the HTTPRoute and shifts weight between the ``<app>-primary`` and ``<app>-canary`` Services), else
  ``kubernetes`` (blue/green: ``iterations`` checks against the canary pods, then the apex Service switches);
- Flagger's built-in ``request-success-rate``/``request-duration`` checks for both providers query
  ``http_request_duration_seconds_*`` with a ``kubernetes_pod_name`` label (pkg/metrics/observers/http.go),
  which neither Envoy Gateway nor kube-prometheus-stack exports: every check is a MetricTemplate of the
  canary controller component (inventory/components.yaml, component ``flagger``) whose query reads what the
  data plane really exports, named here.
"""

from __future__ import annotations

from typing import Any

from generator.inventory.models import App, CanarySettings, Component, Fleet

#: The chart name that marks the canary controller component (as cert-manager and kyverno are found).
CANARY_CONTROLLER_CHART = "flagger"
GATEWAY_PROVIDER = "gatewayapi:v1"
BLUE_GREEN_PROVIDER = "kubernetes"
#: MetricTemplates the flagger component's configs must define, in its namespace.
SUCCESS_RATE_TEMPLATE = "envoy-gateway-success-rate"
LATENCY_TEMPLATE = "envoy-gateway-latency"
RESTARTS_TEMPLATE = "pod-restarts"
METRIC_TEMPLATES = (SUCCESS_RATE_TEMPLATE, LATENCY_TEMPLATE, RESTARTS_TEMPLATE)
#: The AlertProvider rendered next to the fleet's notification Secret (flux-system).
ALERT_PROVIDER = "fleet"
#: fleet.notifications.type -> Flagger AlertProvider type (the CRD's enum: slack, msteams, discord, rocket, gchat).
ALERT_PROVIDER_TYPES = {"slack": "slack", "msteams": "msteams", "discord": "discord", "googlechat": "gchat"}
#: alerts.eventSeverity -> Canary alert severity (Flagger sends events of that severity and above).
ALERT_SEVERITY = {"info": "info", "error": "error"}


def canary_controller(components: tuple[Component, ...] | list[Component]) -> Component | None:
    """The platform component that runs Flagger, if the inventory has one."""
    return next((c for c in components if c.chart.name == CANARY_CONTROLLER_CHART), None)


def canary_provider(app: App, gateway: Component | None) -> str:
    """``gatewayapi:v1`` for an app served by the Gateway, else blue/green ``kubernetes``."""
    return GATEWAY_PROVIDER if app.host and gateway is not None and gateway.gateway is not None else BLUE_GREEN_PROVIDER


def canary_values(
    app: App,
    settings: CanarySettings,
    event_severity: str,
    fleet: Fleet,
    gateway: Component | None,
    controller: Component | None,
) -> dict[str, Any]:
    """The service chart's ``canary`` values of ``app`` under ``settings`` ({} when canaries are off)."""
    if not settings.enabled or controller is None:
        return {}
    provider = canary_provider(app, gateway)

    def metric(name: str, template: str, threshold: dict[str, float | int]) -> dict[str, Any]:
        return {
            "name": name,
            "templateRef": {"name": template, "namespace": controller.namespace},
            "thresholdRange": threshold,
        }

    metrics = [metric("restarts", RESTARTS_TEMPLATE, {"max": 0})]
    if provider == GATEWAY_PROVIDER:
        metrics = [
            metric("success-rate", SUCCESS_RATE_TEMPLATE, {"min": settings.success_rate}),
            metric("latency", LATENCY_TEMPLATE, {"max": settings.latency_ms}),
            *metrics,
        ]
    alerts = []
    notifications = fleet.notifications
    if notifications is not None and notifications.type in ALERT_PROVIDER_TYPES:
        alerts.append({"name": ALERT_PROVIDER, "namespace": "flux-system", "severity": ALERT_SEVERITY[event_severity]})
    return {
        "enabled": True,
        "provider": provider,
        "progressDeadlineSeconds": settings.progress_deadline_seconds,
        "analysis": {
            "interval": settings.interval,
            "threshold": settings.threshold,
            "maxWeight": settings.max_weight,
            "stepWeight": settings.step_weight,
            "stepWeights": list(settings.step_weights),
            "iterations": settings.iterations,
            "metrics": metrics,
            "alerts": alerts,
        },
    }
