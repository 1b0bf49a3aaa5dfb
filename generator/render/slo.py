"""SLO rules: an app's ``slo`` → one PrometheusRule of multi-window, multi-burn-rate recording and alerting rules.

Generated directly (no Sloth or Pyrra controller on the clusters): the rules are plain
``monitoring.coreos.com/v1`` PrometheusRules, validated against the prometheus-operator CRD like every other
object and visible line by line in the golden files; nothing else has to run for them to work.

The method is the Google SRE Workbook's ("Alerting on SLOs", table 5-8: multiwindow, multi-burn-rate alerts),
which Sloth and Pyrra also implement. For an SLO window ``W`` and error budget ``b = 1 - objective``, an alert
fires when both a long and a short window burn the budget faster than ``factor * b``, where ``factor`` is the
share of the budget that may be consumed in the long window: ``factor = share * W / long``. For ``W = 30d`` the
factors are the workbook's 14.4 (2 % in 1 h), 6 (5 % in 6 h), 3 (10 % in 1 d) and 1 (10 % in 3 d).

SLIs come from the app's HTTP server histogram as Prometheus scrapes it through the service chart's
ServiceMonitor (``metrics.enabled``): the OpenTelemetry semantic-convention instrument
``http.server.request.duration`` (seconds), exported to Prometheus as ``http_server_request_duration_seconds``
with the label ``http_response_status_code``; the targets carry ``namespace`` and ``service`` (the app's
Service, named like the app). A latency threshold must be one of the histogram's bucket boundaries (``le``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from generator.inventory.models import App, AppSlo

METRIC = "http_server_request_duration_seconds"
STATUS_LABEL = "http_response_status_code"
#: every window a burn-rate alert reads, shortest first
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
#: (severity, [(long window, short window, share of the budget the long window may consume)])
ALERTS: tuple[tuple[str, str, tuple[tuple[str, str, Decimal], ...]], ...] = (
    ("critical", "page", (("1h", "5m", Decimal("0.02")), ("6h", "30m", Decimal("0.05")))),
    ("warning", "ticket", (("1d", "2h", Decimal("0.1")), ("3d", "6h", Decimal("0.1")))),
)
_HOURS = {"m": Decimal(1) / 60, "h": Decimal(1), "d": Decimal(24)}


def _hours(duration: str) -> Decimal:
    return Decimal(duration[:-1]) * _HOURS[duration[-1]]


def _number(value: Decimal) -> str:
    """A decimal as PromQL writes it: at most 8 decimals, no exponent, no trailing zeros (0.3, 1, 0.00466667)."""
    return format(round(value, 8).normalize(), "f")


def threshold_seconds(threshold: str) -> str:
    """A latency threshold (``300ms``, ``1s``, ``2.5s``) as the ``le`` value of its histogram bucket.

    Prometheus 3 normalizes ``le`` values to floats when it ingests classic histograms (migration guide,
    "le and quantile label values"): ``1`` is stored as ``1.0``, ``0.3`` stays ``0.3``.
    """
    seconds = Decimal(threshold[:-2]) / 1000 if threshold.endswith("ms") else Decimal(threshold[:-1])
    text = _number(seconds)
    return text if "." in text else f"{text}.0"


def _budget(objective: float) -> Decimal:
    return (Decimal(100) - Decimal(str(objective))) / 100


def _error_ratio(kind: str, selector: str, window: str, slo: AppSlo) -> str:
    total = f"sum(rate({METRIC}_count{{{selector}}}[{window}]))"
    if kind == "availability":
        errors = f'sum(rate({METRIC}_count{{{selector},{STATUS_LABEL}=~"5.."}}[{window}]))'
        return f"{errors}\n/\n{total}\n"
    assert slo.latency is not None
    le = threshold_seconds(slo.latency.threshold)
    good = f'sum(rate({METRIC}_bucket{{{selector},le="{le}"}}[{window}]))'
    return f"1 - (\n  {good}\n  /\n  {total}\n)\n"


def slo_rule(app: App) -> dict[str, Any] | None:
    """The PrometheusRule ``<app>-slo`` in the app's namespace, or None when the app declares no SLO."""
    slo = app.slo
    if slo is None:
        return None
    namespace = app.target_namespace
    selector = f'namespace="{namespace}",service="{app.name}"'
    objectives = {
        kind: objective
        for kind, objective in (
            ("availability", slo.availability.objective if slo.availability else None),
            ("latency", slo.latency.objective if slo.latency else None),
        )
        if objective is not None
    }
    groups: list[dict[str, Any]] = []
    for kind, objective in objectives.items():
        labels = {"app": app.name, "namespace": namespace, "slo": kind}
        budget = _budget(objective)
        records: list[dict[str, Any]] = [
            {"record": f"slo:sli_error:ratio_rate{window}", "expr": _error_ratio(kind, selector, window, slo),
             "labels": labels}
            for window in WINDOWS
        ]
        records.append({"record": "slo:objective:ratio", "expr": _number(Decimal(str(objective)) / 100),
                        "labels": labels})
        matcher = f'{{app="{app.name}",namespace="{namespace}",slo="{kind}"}}'
        alerts: list[dict[str, Any]] = []
        for severity, purpose, pairs in ALERTS:
            conditions = []
            for long, short, share in pairs:
                factor = share * _hours(slo.window) / _hours(long)
                limit = _number(factor * budget)
                conditions.append(
                    f"(\n  slo:sli_error:ratio_rate{long}{matcher} > {limit}\n"
                    f"  and\n  slo:sli_error:ratio_rate{short}{matcher} > {limit}\n)"
                )
            what = "failing requests" if kind == "availability" else f"requests slower than {slo.latency.threshold}"  # type: ignore[union-attr]
            alerts.append({
                "alert": f"SLOErrorBudgetBurn{'Page' if purpose == 'page' else 'Ticket'}",
                "expr": "\nor\n".join(conditions) + "\n",
                "for": "2m" if purpose == "page" else "15m",
                "labels": {**labels, "severity": severity},
                "annotations": {
                    "summary": f"{app.name} is burning its {kind} error budget on {{{{ $externalLabels.cluster }}}}",
                    "description": (
                        f"{what.capitalize()} consume the {slo.window} error budget of the {objective}% {kind} "
                        f"objective too fast (multi-window burn rate, SRE Workbook table 5-8)."
                    ),
                },
            })
        groups.append({"name": f"slo-{app.name}-{kind}", "rules": [*records, *alerts]})
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": f"{app.name}-slo",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": app.name, "fleet.gitops.io/team": app.team},
        },
        "spec": {"groups": groups},
    }
