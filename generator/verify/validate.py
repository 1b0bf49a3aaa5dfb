"""``fleetgen validate`` and ``fleetgen policy test``: build each cluster, evaluate the policies it receives
against everything it receives, validate schemas strictly, scan for secrets, and report."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from generator.verify.cel import POLICY_GROUP, Obj
from generator.verify.evaluate import Evaluation, Evaluator, Finding
from generator.verify.matching import split_api_version


@dataclass
class ClusterReport:
    """What ``fleetgen validate`` found on one cluster."""

    name: str
    resources: int
    policies: list[str]
    not_evaluated: list[str]
    evaluation: Evaluation
    schema: list[Any]
    secrets: list[Any]

    @property
    def failed(self) -> bool:
        """Deny violations, schema violations or possible secrets."""
        return bool(self.evaluation.denied or self.schema or self.secrets)


@dataclass
class ValidationReport:
    """What ``fleetgen validate`` found on every (selected) cluster and in the rendered repo."""

    clusters: list[ClusterReport]
    rendered_secrets: list[Any]
    schema_checked: bool
    build_warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Whether the check fails (exit 1)."""
        return bool(self.rendered_secrets) or any(c.failed for c in self.clusters)


def _fast_load(text: str) -> list[Any]:
    """Parse fleetgen's own YAML output (one writer, YAML-1.1-safe quoting) with libyaml when available."""
    import yaml  # type: ignore[import-untyped,unused-ignore]

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [doc for doc in yaml.load_all(text, Loader=loader) if doc is not None]


def _policy_fingerprint(objects: Sequence[Mapping[str, Any]]) -> str:
    """Equal for two clusters exactly when their evaluators (policies, namespaces, settings, readable objects) are."""
    import hashlib
    import json

    relevant = [
        o
        for o in objects
        if (o.get("kind") == "Namespace" and o.get("apiVersion") == "v1")
        or split_api_version(str(o.get("apiVersion", "")))[0] == POLICY_GROUP
        or o.get("kind") == "HelmRelease"  # the Kyverno release's exception settings
    ]
    texts = [json.dumps(o, sort_keys=True) for o in relevant]
    if any("resource." in t for t in texts if '"policies.kyverno.io/' in t):
        texts = [json.dumps(o, sort_keys=True) for o in objects]  # resource.get/list read the whole build
    text = json.dumps(sorted(texts))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def validate_fleet(
    root: Any,
    options: Any = None,
    *,
    crds: Any = None,
    schema: bool = True,
    now: datetime.datetime | None = None,
    rendered: Any = None,
) -> ValidationReport:
    """Build every selected cluster and check what it receives: policies, strict schemas, secrets.

    ``options`` are :class:`generator.build.model.BuildOptions`; ``crds`` folders of CRDs (a path or a list) that add
    to or override the built-in catalogue; ``rendered`` an optional precomputed ``pipeline.plan(root)``.
    """
    from pathlib import Path

    from generator.build.fleet import build_fleet
    from generator.render.pipeline import plan
    from generator.verify.schema import CrdCatalogue, SchemaValidator, load_catalogue, rendered_extra_schemas
    from generator.verify.secretscan import scan

    rendered = rendered if rendered is not None else plan(root)
    extra_dirs = [Path(crds)] if isinstance(crds, (str, Path)) else [Path(d) for d in crds or ()]
    build = build_fleet(root, options, rendered=rendered)
    catalogue: CrdCatalogue | None = None
    if schema:
        groups = {
            split_api_version(resource.api_version)[0]
            for cluster_build in build.clusters.values()
            for resource in cluster_build.resources.values()
        }
        catalogue = load_catalogue(extra_dirs, groups)
    plan_items = []
    for path, text in rendered.files.items():
        objects: list[Any] = []
        if path.endswith((".yaml", ".yml")) and "/templates/" not in path:
            try:
                objects = [o for o in _fast_load(text) if isinstance(o, dict)]
            except Exception:  # a file that is not plain YAML is still scanned as text
                objects = []
        plan_items.append((path, text, objects))
    rendered_secrets = scan(plan_items)

    parsed: dict[str, Obj] = {}
    evaluators: dict[str, Evaluator] = {}
    findings_memo: dict[tuple[str, str], tuple[list[Finding], bool]] = {}
    validators: dict[str, Any] = {}
    schema_memo: dict[tuple[str, str], list[Any]] = {}
    extra = rendered_extra_schemas(rendered.files)
    reports = []
    for name, cluster_build in build.clusters.items():
        resources = list(cluster_build.resources.values())
        objects = []
        for resource in resources:
            if resource.text not in parsed:
                docs = _fast_load(resource.text)
                parsed[resource.text] = docs[0] if docs else {}
            objects.append(parsed[resource.text])
        fingerprint = _policy_fingerprint(objects)
        if fingerprint not in evaluators:
            evaluators[fingerprint] = Evaluator.for_objects(objects, now=now)
        evaluator = evaluators[fingerprint]
        evaluation = Evaluation()
        for resource, obj in zip(resources, objects, strict=True):
            key = (fingerprint, resource.text)
            if key not in findings_memo:
                findings_memo[key] = (
                    evaluator.evaluate(obj, namespaced=bool(resource.namespace)),
                    evaluator.last_matched,
                )
            found, matched = findings_memo[key]
            evaluation.evaluated += 1
            evaluation.matched += matched
            evaluation.findings.extend(found)
        evaluation.findings.sort(key=lambda f: (f.namespace, f.kind, f.name, f.policy, f.message))
        violations: list[Any] = []
        if catalogue is not None:
            cluster = rendered.fleet.cluster(name)
            version = str(cluster.settings.kubernetes_version) if cluster else "1.33"
            if version not in validators:
                validators[version] = SchemaValidator(catalogue, version, extra_schemas=extra)
            for resource, obj in zip(resources, objects, strict=True):
                key = (version, resource.text)
                if key not in schema_memo:
                    schema_memo[key] = validators[version].validate(obj)
                violations.extend(schema_memo[key])
        secrets = scan(
            (f"{name}/{rel}", res.text, [obj])
            for (rel, res), obj in zip(cluster_build.resources.items(), objects, strict=True)
        )
        reports.append(
            ClusterReport(
                name,
                len(resources),
                [p.name for p in evaluator.policies],
                evaluator.not_evaluated,
                evaluation,
                violations,
                secrets,
            )
        )
    return ValidationReport(reports, rendered_secrets, catalogue is not None, build.warnings)


def format_report(report: ValidationReport) -> str:
    """The human-readable report of ``fleetgen validate``."""
    lines: list[str] = []
    for finding in report.rendered_secrets:
        lines.append(f"secret: {finding}")
    for cluster in report.clusters:
        evaluation = cluster.evaluation
        head = (
            f"cluster {cluster.name}: {cluster.resources} resources, {evaluation.matched} checked by "
            f"{len(cluster.policies)} validating policies: {len(evaluation.denied)} denied, "
            f"{len(evaluation.warnings)} warnings"
        )
        if report.schema_checked:
            head += f", {len(cluster.schema)} schema violations"
        head += f", {len(cluster.secrets)} possible secrets"
        lines.append(head)
        if cluster.not_evaluated:
            lines.append(f"  not evaluated offline: {', '.join(cluster.not_evaluated)}")
        for finding in evaluation.denied:
            lines.append(f"  {finding}")
        for finding in evaluation.warnings:
            lines.append(f"  warning: {finding}")
        for violation in cluster.schema:
            lines.append(f"  schema: {violation}")
        for secret in cluster.secrets:
            lines.append(f"  secret: {secret}")
    denied = sum(len(c.evaluation.denied) for c in report.clusters)
    warnings = sum(len(c.evaluation.warnings) for c in report.clusters)
    schema = sum(len(c.schema) for c in report.clusters)
    secrets = len(report.rendered_secrets) + sum(len(c.secrets) for c in report.clusters)
    verdict = "FAILED" if report.failed else "passed"
    lines.append(
        f"validate {verdict}: {len(report.clusters)} clusters, {denied} denied, {warnings} warnings (Audit/Warn), "
        + (f"{schema} schema violations, " if report.schema_checked else "schema not checked, ")
        + f"{secrets} possible secrets"
    )
    return "\n".join(lines) + "\n"


def report_json(report: ValidationReport) -> dict[str, Any]:
    """The machine-readable report of ``fleetgen validate --format json``."""

    def finding(f: Finding) -> dict[str, Any]:
        return {
            "policy": f.policy,
            "action": f.action,
            "resource": {"kind": f.kind, "namespace": f.namespace, "name": f.name},
            "message": f.message,
            "error": f.error,
        }

    return {
        "passed": not report.failed,
        "renderedSecrets": [str(s) for s in report.rendered_secrets],
        "clusters": [
            {
                "name": c.name,
                "resources": c.resources,
                "checked": c.evaluation.matched,
                "policies": c.policies,
                "notEvaluated": c.not_evaluated,
                "findings": [finding(f) for f in c.evaluation.findings],
                "schema": [str(v) for v in c.schema],
                "secrets": [str(s) for s in c.secrets],
            }
            for c in report.clusters
        ],
    }


def load_manifests(paths: Sequence[str]) -> list[tuple[str, Obj]]:
    """``(file, object)`` of every object in the given YAML files (``-`` is stdin; ``List`` kinds unpacked)."""
    import sys
    from pathlib import Path

    from generator.errors import UsageError
    from generator.guard import MAX_YAML_BYTES, check_regular, decode, prescan_yaml
    from generator.yamlio import load_documents

    out: list[tuple[str, Obj]] = []
    for path in paths:
        try:
            if path == "-":
                data = sys.stdin.buffer.read(MAX_YAML_BYTES + 1)
            else:
                check_regular(Path(path), path)
                with Path(path).open("rb") as handle:
                    data = handle.read(MAX_YAML_BYTES + 1)
        except OSError as exc:
            raise UsageError(f"{path}: cannot read ({exc.strerror})") from exc
        if len(data) > MAX_YAML_BYTES:
            limit = MAX_YAML_BYTES // (1024 * 1024)
            raise UsageError(f"{path}: larger than {limit} MiB, the limit for a file fleetgen reads")
        text = decode(data, path)
        prescan_yaml(text, path)
        try:
            documents = load_documents(text)
        except Exception as exc:  # ruamel raises several unrelated types
            raise UsageError(f"{path}: not valid YAML: {exc}") from exc
        for document in documents:
            items = document.get("items") if isinstance(document, dict) and document.get("kind") == "List" else None
            for obj in items if isinstance(items, list) else [document]:
                if not (isinstance(obj, dict) and obj.get("apiVersion") and obj.get("kind")):
                    raise UsageError(f"{path}: every document must be a Kubernetes object with apiVersion and kind")
                out.append((path, obj))
    return out


def cluster_policy_objects(root: Any, cluster: str, options: Any = None, rendered: Any = None) -> list[Obj]:
    """The Kyverno policies, PolicyExceptions, Namespaces and HelmReleases cluster ``cluster`` receives."""
    import dataclasses

    from generator.build.fleet import build_fleet
    from generator.build.model import BuildOptions
    from generator.errors import UsageError
    from generator.render.pipeline import plan

    rendered = rendered if rendered is not None else plan(root)
    if rendered.fleet.cluster(cluster) is None:
        known = ", ".join(c.name for c in rendered.fleet.clusters)
        raise UsageError(f"unknown cluster '{cluster}'; clusters: {known}")
    options = dataclasses.replace(options or BuildOptions(), clusters=(cluster,), shard=None)
    build = build_fleet(root, options, rendered=rendered)
    return [
        doc
        for resource in build.clusters[cluster].resources.values()
        if (resource.kind == "Namespace" and resource.api_version == "v1")
        or split_api_version(resource.api_version)[0] == POLICY_GROUP
        or resource.kind == "HelmRelease"  # the Kyverno release's features.policyExceptions (ExceptionSettings)
        for doc in _fast_load(resource.text)
    ]


def policy_test(
    root: Any,
    cluster: str,
    files: Sequence[str],
    *,
    namespace: str = "default",
    options: Any = None,
    now: datetime.datetime | None = None,
) -> tuple[Evaluation, Evaluator]:
    """Evaluate cluster ``cluster``'s policies against the objects in ``files``."""
    objects = load_manifests(files)
    cluster_objects = cluster_policy_objects(root, cluster, options)
    own_namespaces = [o for _, o in objects if o.get("kind") == "Namespace" and o.get("apiVersion") == "v1"]
    names = {str(n["metadata"]["name"]) for n in own_namespaces}
    kept = [o for o in cluster_objects if o.get("kind") != "Namespace" or o["metadata"]["name"] not in names]
    evaluator = Evaluator.for_objects([*kept, *own_namespaces], now=now, default_namespace=namespace)
    return evaluator.evaluate_all(obj for _, obj in objects), evaluator
