"""Kyverno's policy model as its API and engine read it (v1.19.0): ValidatingPolicies compiled (defaults, validation,
autogen variants as ``status.autogen`` names them) and PolicyExceptions (partial and full, the exceptions namespace)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from generator.verify.cel import Expression, Obj, PolicyError, compile_expression
from generator.verify.matching import LabelSelector, ResourceRule

#
# Semantics follow Kyverno v1.19.0 (kyverno/kyverno@ee97ce09538b09b6f1b03853cc41a62654d6a58f):
#   pkg/cel/policies/vpol/compiler/policy.go   evaluation order (exceptions, matchConditions, first failing
#                                               validation), the ``exceptions`` variable, match-condition errors
#   pkg/cel/policies/vpol/engine/engine.go     one result per policy (pass / fail / error / skip)
#   pkg/webhooks/resource/vpol/handler.go      Deny blocks on fail *and* error; Warn warns; failurePolicy is not read
#   pkg/cel/policies/vpol/engine/provider.go   autogen variants evaluated next to the policy, with its exceptions
#   pkg/cel/autogen/{data,match,support,replacement}.go, pkg/cel/policies/vpol/autogen/autogen.go   autogen
#   pkg/cel/engine/exception.go, cmd/internal/flag.go   exceptions honoured only in --exceptionNamespace
#   pkg/cel/policies/vpol/validate.go          matchConstraints required (the policy webhook)
#   config/crds/policies.kyverno.io/*.yaml     enums (validationActions, failurePolicy), PolicyException policyRefs

#: The kinds evaluated here (``policies.kyverno.io/v1``).
VALIDATING_KINDS = ("ValidatingPolicy", "NamespacedValidatingPolicy")
#: The CRD's enum of ``spec.validationActions[]`` items.
VALIDATION_ACTIONS = ("Deny", "Audit", "Warn")
#: ``spec.evaluation.mode`` values that evaluate something other than a Kubernetes admission request.
FOREIGN_MODES = {
    "JSON": "it evaluates JSON payloads (the kyverno CLI / kyverno-json), not Kubernetes admission requests",
    "Envoy": "it authorizes Envoy external-authorization requests (kyverno-envoy-plugin), not Kubernetes objects",
    "HTTP": "it authorizes HTTP requests (Kyverno's HTTP authorizer), not Kubernetes objects",
}
#: pkg/cel/autogen/data.go ConfigsMap: controller → (group, version, resource, kind, replacements).
AUTOGEN_CONTROLLERS: dict[str, tuple[str, str, str, str, str]] = {
    "daemonsets": ("apps", "v1", "daemonsets", "DaemonSet", "defaults"),
    "deployments": ("apps", "v1", "deployments", "Deployment", "defaults"),
    "replicasets": ("apps", "v1", "replicasets", "ReplicaSet", "defaults"),
    "statefulsets": ("apps", "v1", "statefulsets", "StatefulSet", "defaults"),
    "jobs": ("batch", "v1", "jobs", "Job", "defaults"),
    "cronjobs": ("batch", "v1", "cronjobs", "CronJob", "cronjobs"),
}
#: pkg/cel/autogen/data.go ReplacementsMap.
AUTOGEN_REPLACEMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "defaults": (("spec", "spec.template.spec"), ("metadata", "spec.template.metadata")),
    "cronjobs": (
        ("spec", "spec.jobTemplate.spec.template.spec"),
        ("metadata", "spec.jobTemplate.spec.template.metadata"),
    ),
}
#: Receivers of Kyverno CEL library calls that need something offline evaluation does not have.
OFFLINE_UNKNOWABLE = {
    "http": "http.* calls an external service at admission time",
    "globalContext": "globalContext.* reads Kyverno GlobalContextEntries (cached API or service data)",
    "image": "image.* / imagedata reads an OCI registry",
    "imageData": "imageData.* reads an OCI registry",
}
_LIBRARY_CALL = re.compile(
    r"\b([A-Za-z_][A-Za-z0-9_]*)\s*\.\s*(Get|get|List|list|Post|post|ToGVR|GetImageData|GetMetadata|Exists)\s*\("
)
#: Kyverno's ``resource`` library (github.com/kyverno/sdk cel/libs/resource): the member functions fleetgen answers
#: from known objects (Kyverno v1.19.0's tests spell them ``get``; the library's newer source ``Get``).
RESOURCE_FUNCTIONS = frozenset({"get", "Get", "list", "List", "ToGVR"})


class PolicyRejected(PolicyError):
    """Kyverno's API (the CRD schema or Kyverno's policy webhook) rejects the object: it never reaches a cluster."""


def can_autogen(constraints: Mapping[str, Any] | None) -> bool:
    """pkg/cel/autogen/support.go CanAutoGen: exactly one rule for core v1 pods, no selectors/exclusions/names."""
    if not constraints:
        return False
    selector = constraints.get("objectSelector") or {}
    if selector.get("matchLabels") or selector.get("matchExpressions"):
        return False
    if constraints.get("excludeResourceRules"):
        return False
    rules = constraints.get("resourceRules") or []
    if len(rules) != 1 or rules[0].get("resourceNames"):
        return False
    rule = rules[0]
    return (
        list(rule.get("apiGroups") or []) == [""]
        and list(rule.get("apiVersions") or []) == ["v1"]
        and list(rule.get("resources") or []) == ["pods"]
    )


def _autogen_replace(text: str, old: str, new: str) -> str:
    """pkg/cel/autogen/replacement.go replace: every ``old`` except where ``.namespace`` (a whole segment) follows."""
    out, start = [], 0
    while (index := text.find(old, start)) >= 0:
        rest = text[index + len(old) :]
        protected = rest.startswith(".namespace") and not re.match(r"[A-Za-z0-9_]", rest[len(".namespace") :][:1])
        out.append(text[start:index] + (old if protected else new))
        start = index + len(old)
    return "".join(out) + text[start:]


def autogen_specs(spec: Mapping[str, Any]) -> dict[str, Obj]:
    """The specs Kyverno generates for Pod controllers (``status.autogen``), by replacement set (defaults, cronjobs).

    pkg/cel/policies/vpol/autogen/autogen.go: all six controllers unless ``autogen.podControllers.controllers`` is
    set (an empty list turns autogen off); one spec per replacement set with matchConstraints rebuilt for the
    targets (operations of the first rule, the namespaceSelector kept) and ``object.spec``/``object.metadata``
    (and ``oldObject.``) rewritten to the pod template everywhere in the spec's JSON.
    """
    import json

    constraints = spec.get("matchConstraints")
    if not can_autogen(constraints):
        return {}
    assert isinstance(constraints, Mapping)
    controllers = ((spec.get("autogen") or {}).get("podControllers") or {}).get("controllers")
    wanted = set(AUTOGEN_CONTROLLERS) if controllers is None else {str(c) for c in controllers}
    groups: dict[str, list[tuple[str, str, str, str]]] = {}
    for controller in sorted(wanted & set(AUTOGEN_CONTROLLERS)):
        group, version, resource, kind, replacements = AUTOGEN_CONTROLLERS[controller]
        groups.setdefault(replacements, []).append((group, version, resource, kind))
    operations = list(constraints["resourceRules"][0].get("operations") or [])
    out: dict[str, Obj] = {}
    for config, targets in sorted(groups.items()):
        generated = json.loads(json.dumps(spec))
        by_group_version: dict[tuple[str, str], set[str]] = {}
        for group, version, resource, _ in targets:
            by_group_version.setdefault((group, version), set()).add(resource)
        if operations:  # pkg/cel/autogen/match.go CreateMatchConstraints: no operations → no constraints
            match: Obj = {
                "resourceRules": [
                    {"apiGroups": [g], "apiVersions": [v], "resources": sorted(r), "operations": operations}
                    for (g, v), r in sorted(by_group_version.items())
                ]
            }
            if constraints.get("namespaceSelector") is not None:
                match["namespaceSelector"] = constraints["namespaceSelector"]
            generated["matchConstraints"] = match
        else:
            generated["matchConstraints"] = None
        text = json.dumps(generated)
        for old, new in AUTOGEN_REPLACEMENTS[config]:
            text = _autogen_replace(text, "object." + old, "object." + new)
            text = _autogen_replace(text, "oldObject." + old, "oldObject." + new)
        out[config] = json.loads(text)
    return out


def autogen_status(spec: Mapping[str, Any]) -> Obj:
    """``status.autogen`` as Kyverno writes it: ``{configs: {name: {spec, targets}}}`` (targets sorted)."""
    configs: Obj = {}
    for config, generated in autogen_specs(spec).items():
        controllers = ((spec.get("autogen") or {}).get("podControllers") or {}).get("controllers")
        wanted = set(AUTOGEN_CONTROLLERS) if controllers is None else {str(c) for c in controllers}
        targets = sorted(
            (
                {"group": g, "version": v, "resource": r, "kind": k}
                for n, (g, v, r, k, ref) in AUTOGEN_CONTROLLERS.items()
                if n in wanted and ref == config
            ),
            key=lambda t: (t["group"], t["version"], t["resource"], t["kind"]),
        )
        configs[config] = {"spec": generated, "targets": targets}
    return {"configs": configs} if configs else {}


@dataclass(frozen=True)
class Validation:
    """One ``validations`` entry."""

    expression: Expression
    message: str
    message_expression: Expression | None


def _check_libraries(source: str, where: str) -> None:
    """Refuse Kyverno library calls whose answer offline evaluation cannot know (http, registries, globalContext)."""
    for match in _LIBRARY_CALL.finditer(source):
        receiver, function = match.groups()
        if receiver == "resource" and function in ("post", "Post"):
            raise PolicyError(
                f"{where}: resource.{function}() cannot be known offline: it creates an object through the "
                "API server (e.g. a SubjectAccessReview) and reads the server's answer"
            )
        if function in RESOURCE_FUNCTIONS and receiver not in ("resource", *OFFLINE_UNKNOWABLE):
            raise PolicyError(
                f"{where}: {receiver}.{function}() is not a library fleetgen evaluates offline"
            )
        if receiver in OFFLINE_UNKNOWABLE:
            raise PolicyError(
                f"{where}: {receiver}.{match.group(2)}() cannot be known offline: "
                f"{OFFLINE_UNKNOWABLE[receiver]}"
            )


def _compile(source: Any, where: str) -> Expression:
    """Compile a policy expression: Kyverno library calls that cannot be known offline are refused by name first."""
    if isinstance(source, str):
        _check_libraries(source, where)
    return compile_expression(source, where)


@dataclass(frozen=True)
class CompiledPolicy:
    """A ValidatingPolicy (or NamespacedValidatingPolicy, or one autogen variant of either) ready to evaluate."""

    name: str
    actions: tuple[str, ...]
    failure_policy: str
    rules: tuple[ResourceRule, ...]
    exclude_rules: tuple[ResourceRule, ...]
    namespace_selector: LabelSelector | None
    object_selector: LabelSelector | None
    match_conditions: tuple[tuple[str, Expression], ...]
    variables: tuple[tuple[str, Expression], ...]
    validations: tuple[Validation, ...]
    kind: str = "ValidatingPolicy"
    namespace: str = ""
    admission: bool = True
    autogen: str = ""

    @property
    def blocking(self) -> bool:
        """Whether a violation is denied at admission."""
        return self.admission and "Deny" in self.actions

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> CompiledPolicy:
        """The policy itself (without autogen variants); PolicyError when it cannot be evaluated."""
        return cls.parse_all(obj)[0]

    @classmethod
    def parse_all(cls, obj: Mapping[str, Any]) -> list[CompiledPolicy]:
        """The policy and its autogen variants (Kyverno evaluates all of them, pkg/cel/policies/vpol/engine)."""
        meta = obj.get("metadata") or {}
        kind = str(obj.get("kind") or "ValidatingPolicy")
        name = str(meta.get("name") or "?")
        namespace = str(meta.get("namespace") or "") if kind == "NamespacedValidatingPolicy" else ""
        where = f"{kind} {namespace + '/' if namespace else ''}{name}"
        spec = obj.get("spec")
        if not isinstance(spec, Mapping):
            raise PolicyRejected(f"{where}: spec: Required value")
        evaluation = spec.get("evaluation") or {}
        mode = evaluation.get("mode")
        if mode in FOREIGN_MODES:
            raise PolicyError(f"{where}: spec.evaluation.mode {mode} is not evaluated offline: {FOREIGN_MODES[mode]}")
        if mode not in (None, "", "Kubernetes"):
            raise PolicyError(f"{where}: spec.evaluation.mode {mode!r} is unknown (Kubernetes, JSON, Envoy, HTTP)")
        actions = tuple(str(a) for a in spec.get("validationActions") or ())
        for index, action in enumerate(actions):
            if action not in VALIDATION_ACTIONS:
                raise PolicyRejected(
                    f'{where}: spec.validationActions[{index}]: Unsupported value: "{action}": supported values: '
                    + ", ".join(f'"{a}"' for a in VALIDATION_ACTIONS)
                )
        failure_policy = str(spec.get("failurePolicy") or "Fail")
        if failure_policy not in ("Fail", "Ignore"):
            raise PolicyRejected(f'{where}: spec.failurePolicy: Unsupported value: "{failure_policy}"')
        constraints = spec.get("matchConstraints") or {}
        if not constraints.get("resourceRules"):
            raise PolicyRejected(
                f"{where}: spec.matchConstraints: Required value: a matchConstraints with at least one resource "
                "rule is required"
            )
        base = cls._compile_spec(spec, where, kind, name, namespace, "")
        base = cls(
            **{
                **base.__dict__,
                # the API's ValidationActions(): an empty list means [Deny] (conformance validation-actions/none)
                "actions": actions or ("Deny",),
                "failure_policy": failure_policy,
                "admission": (evaluation.get("admission") or {}).get("enabled") is not False,
            }
        )
        out = [base]
        for config, generated in autogen_specs(spec).items():
            variant = cls._compile_spec(generated, f"{where} (autogen {config})", kind, name, namespace, config)
            out.append(
                cls(
                    **{
                        **variant.__dict__,
                        "actions": base.actions,
                        "failure_policy": base.failure_policy,
                        "admission": base.admission,
                    }
                )
            )
        return out

    @classmethod
    def _compile_spec(
        cls, spec: Mapping[str, Any], where: str, kind: str, name: str, namespace: str, autogen: str
    ) -> CompiledPolicy:
        variables = []
        for index, variable in enumerate(spec.get("variables") or []):
            variables.append(
                (str(variable.get("name")), _compile(variable.get("expression"), f"{where} spec.variables[{index}]"))
            )
        conditions = tuple(
            (
                str(condition.get("name")),
                _compile(condition.get("expression"), f"{where} spec.matchConditions[{index}]"),
            )
            for index, condition in enumerate(spec.get("matchConditions") or [])
        )
        validations = []
        for index, validation in enumerate(spec.get("validations") or []):
            at = f"{where} spec.validations[{index}]"
            message_source = validation.get("messageExpression")
            validations.append(
                Validation(
                    _compile(validation.get("expression"), f"{at}.expression"),
                    str(validation.get("message") or ""),
                    _compile(message_source, f"{at}.messageExpression") if message_source else None,
                )
            )
        constraints = spec.get("matchConstraints") or {}
        return cls(
            name=name,
            actions=(),
            failure_policy="Fail",
            rules=tuple(ResourceRule.parse(r) for r in constraints.get("resourceRules") or []),
            exclude_rules=tuple(ResourceRule.parse(r) for r in constraints.get("excludeResourceRules") or []),
            namespace_selector=LabelSelector.parse(constraints.get("namespaceSelector"), where),
            object_selector=LabelSelector.parse(constraints.get("objectSelector"), where),
            match_conditions=conditions,
            variables=tuple(variables),
            validations=tuple(validations),
            kind=kind,
            namespace=namespace,
            autogen=autogen,
        )


def _parse_time(value: Any, where: str) -> datetime.datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise PolicyError(f"{where}: expiresAt {value!r} is not an RFC 3339 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


@dataclass(frozen=True)
class CompiledException:
    """A ``policies.kyverno.io`` PolicyException: full when it lists no images/allowedValues, else partial."""

    name: str
    namespace: str
    policies: frozenset[tuple[str, str]]
    expires_at: datetime.datetime | None
    match_conditions: tuple[tuple[str, Expression], ...]
    images: tuple[str, ...] = ()
    allowed_values: tuple[str, ...] = ()

    @property
    def partial(self) -> bool:
        """Partial exceptions only feed ``exceptions.allowedImages``/``allowedValues`` to the policy's CEL."""
        return bool(self.images or self.allowed_values)

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> CompiledException:
        """Compile a PolicyException; PolicyError when it cannot be evaluated, PolicyRejected when invalid."""
        meta = obj.get("metadata") or {}
        name, namespace = str(meta.get("name") or "?"), str(meta.get("namespace") or "")
        where = f"PolicyException {namespace}/{name}"
        spec = obj.get("spec") or {}
        if "policyRefs" not in spec or spec.get("policyRefs") is None:
            raise PolicyRejected(f"{where}: spec.policyRefs: Required value")
        refs = []
        for index, ref in enumerate(spec.get("policyRefs") or []):
            if not ref.get("kind") or not ref.get("name"):
                raise PolicyRejected(f"{where}: spec.policyRefs[{index}]: kind and name are required")
            refs.append((str(ref["kind"]), str(ref["name"])))
        conditions = tuple(
            (
                str(condition.get("name")),
                _compile(condition.get("expression"), f"{where} spec.matchConditions[{index}]"),
            )
            for index, condition in enumerate(spec.get("matchConditions") or [])
        )
        return cls(
            name,
            namespace,
            frozenset(refs),
            _parse_time(spec.get("expiresAt"), where),
            conditions,
            tuple(str(i) for i in spec.get("images") or ()),
            tuple(str(v) for v in spec.get("allowedValues") or ()),
        )


@dataclass(frozen=True)
class ExceptionSettings:
    """Kyverno's ``features.policyExceptions`` chart values (flags --enablePolicyException, --exceptionNamespace).

    Chart defaults (charts/kyverno/values.yaml): disabled, namespace ''. ``''`` or ``'*'`` accepts exceptions in
    every namespace (pkg/cel/engine/exception.go NewPolicyExceptionLister).
    """

    enabled: bool = True
    namespace: str = "*"

    def honours(self, exception: CompiledException) -> bool:
        """Whether Kyverno reads this exception at all."""
        return self.enabled and (self.namespace in ("", "*") or exception.namespace == self.namespace)

    @classmethod
    def from_objects(cls, objects: Iterable[Mapping[str, Any]]) -> ExceptionSettings | None:
        """From the Kyverno HelmRelease among a cluster's objects (None when the build has none)."""
        for obj in objects:
            if obj.get("kind") != "HelmRelease":
                continue
            chart = ((obj.get("spec") or {}).get("chart") or {}).get("spec") or {}
            if chart.get("chart") != "kyverno":
                continue
            values = ((obj.get("spec") or {}).get("values") or {}).get("features") or {}
            feature = values.get("policyExceptions") or {}
            return cls(bool(feature.get("enabled", False)), str(feature.get("namespace") or ""))
        return None
