"""Offline evaluation of Kyverno ValidatingPolicies (``policies.kyverno.io/v1``) with a real CEL engine.

The engine is the ``common-expression-language`` package (``import cel``: cel-rust, fast) plus the
Kubernetes string, list-aggregate and sets extensions from ``cel.stdlib``. The evaluation follows the
admission semantics of a ValidatingPolicy:

1. ``matchConstraints``: ``resourceRules`` (apiGroups, apiVersions, resources, operations, scope,
   resourceNames), ``excludeResourceRules``, ``namespaceSelector`` (the namespace's labels, with the
   automatic ``kubernetes.io/metadata.name``; a Namespace is matched on its own labels) and ``objectSelector``;
2. ``matchConditions`` (all must be true);
3. PolicyExceptions (``policies.kyverno.io/v1``) that reference the policy, are not expired and whose
   ``matchConditions`` hold: the resource is skipped;
4. ``variables`` (evaluated lazily, in order, only when an expression uses them) and ``validations``:
   ``false`` is a violation with ``messageExpression`` (else ``message``); an evaluation error is a
   violation too unless ``failurePolicy: Ignore``.

Objects are evaluated as a CREATE request (rules for CREATE or UPDATE apply). Nothing passes silently:
syntax the engine cannot parse (``.?``, ``Object{}``) and functions it does not have (Kyverno's
``resource.Get``, ``http``, ``image``, ...) are rejected when the policy is loaded, naming the policy
and the expression. ImageValidatingPolicies (they need registries) and Mutating/GeneratingPolicies are
reported as not evaluated offline.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cel
from cel.stdlib import EXTENSIONS

from generator.errors import FleetgenError

Obj = dict[str, Any]

POLICY_GROUP = "policies.kyverno.io"
#: Extensions of ``cel.stdlib`` registered as CEL functions (the subset Kubernetes' CEL environment has).
CEL_EXTENSIONS = ("strings", "core", "sets")
#: Operators, macros' helpers and the functions cel-rust implements natively.
NATIVE_FUNCTIONS = frozenset(
    {
        "!_",
        "-_",
        "@in",
        "@not_strictly_false",
        "_!=_",
        "_%_",
        "_&&_",
        "_*_",
        "_+_",
        "_-_",
        "_/_",
        "_<=_",
        "_<_",
        "_==_",
        "_>=_",
        "_>_",
        "_?_:_",
        "_[_]",
        "_||_",
        "size",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "timestamp",
        "duration",
        "dyn",
        "type",
    }
)
_EXTENSION_FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: function for library in CEL_EXTENSIONS for name, function in EXTENSIONS[library].items()
}
SUPPORTED_FUNCTIONS = NATIVE_FUNCTIONS | {name.rpartition(".")[2] for name in _EXTENSION_FUNCTIONS}
_VARIABLE_USE = re.compile(r"\bvariables\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*['\"]([^'\"]+)['\"]\s*\])")

#: Kinds that are cluster-scoped (core and the CRDs fleetgen renders); anything else is namespaced.
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "StorageClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "APIService",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "PriorityClass",
        "IngressClass",
        "RuntimeClass",
        "CSIDriver",
        "CSINode",
        "VolumeAttachment",
        "CertificateSigningRequest",
        "ValidatingPolicy",
        "MutatingPolicy",
        "GeneratingPolicy",
        "ImageValidatingPolicy",
        "DeletingPolicy",
        "ClusterPolicy",
        "ClusterSecretStore",
        "ClusterExternalSecret",
        "ClusterIssuer",
        "CompositeResourceDefinition",
        "Composition",
        "Provider",
        "Function",
        "DeploymentRuntimeConfig",
    }
)
_IRREGULAR_PLURALS = {"Endpoints": "endpoints", "NetworkPolicy": "networkpolicies", "Ingress": "ingresses"}


class PolicyError(FleetgenError):
    """A policy cannot be evaluated offline: malformed, or CEL the engine does not support."""


# --- CEL -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expression:
    """One compiled CEL expression and where it is written (for messages)."""

    where: str
    source: str
    program: cel.Program = field(compare=False)
    uses: tuple[str, ...]


def compile_expression(source: str, where: str) -> Expression:
    """Compile ``source``; raise PolicyError for syntax or functions the engine does not support."""
    if not isinstance(source, str) or not source.strip():
        raise PolicyError(f"{where}: expected a CEL expression, got {source!r}")
    try:
        program = cel.compile(source)
    except (ValueError, RuntimeError) as exc:
        detail = str(exc).strip().replace("\n", "\n    ")
        raise PolicyError(
            f"{where}: CEL the offline engine cannot parse (use has() instead of the optional '.?' syntax):\n"
            f"    {detail}"
        ) from exc
    unknown = sorted(set(program.functions()) - SUPPORTED_FUNCTIONS)
    if unknown:
        raise PolicyError(
            f"{where}: CEL function(s) the offline engine does not support: {', '.join(unknown)} "
            f"(supported: the CEL standard functions and the {', '.join(CEL_EXTENSIONS)} extensions)"
        )
    uses = []
    for match in _VARIABLE_USE.finditer(source):
        name = match.group(1) or match.group(2)
        if name not in uses:
            uses.append(name)
    return Expression(where, source, program, tuple(uses))


class EvaluationError(Exception):
    """A CEL expression failed at run time."""


def _context() -> cel.Context:
    context = cel.Context()
    for name, function in _EXTENSION_FUNCTIONS.items():
        context.add_function(name, function)
    return context


# --- matching ---------------------------------------------------------------------------------------------


def resource_of(kind: str) -> str:
    """The plural resource name of a kind (Kubernetes' own guess, with its known irregular plurals)."""
    if kind in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[kind]
    lower = kind.lower()
    if lower.endswith("s"):
        return lower + "es"
    if lower.endswith("y") and lower[-2:-1] not in ("a", "e", "i", "o", "u"):
        return lower[:-1] + "ies"
    return lower + "s"


def split_api_version(api_version: str) -> tuple[str, str]:
    """``apps/v1`` → ("apps", "v1"); ``v1`` → ("", "v1")."""
    group, _, version = api_version.rpartition("/")
    return group, version


@dataclass(frozen=True)
class ResourceRule:
    """One ``resourceRules`` entry."""

    api_groups: tuple[str, ...]
    api_versions: tuple[str, ...]
    resources: tuple[str, ...]
    operations: tuple[str, ...]
    scope: str
    resource_names: tuple[str, ...]

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ResourceRule:
        """From the policy's YAML."""

        def strings(key: str) -> tuple[str, ...]:
            return tuple(str(v) for v in data.get(key) or ())

        return cls(
            strings("apiGroups"),
            strings("apiVersions"),
            strings("resources"),
            strings("operations"),
            str(data.get("scope") or "*"),
            strings("resourceNames"),
        )

    def matches(self, group: str, version: str, resource: str, namespaced: bool, name: str) -> bool:
        """Whether a CREATE (or UPDATE) of this resource matches the rule."""
        if not ({"*", "CREATE", "UPDATE"} & set(self.operations)):
            return False
        if "*" not in self.api_groups and group not in self.api_groups:
            return False
        if "*" not in self.api_versions and version not in self.api_versions:
            return False
        if not any(r in ("*", "*/*", resource) for r in self.resources):
            return False
        if (self.scope == "Cluster" and namespaced) or (self.scope == "Namespaced" and not namespaced):
            return False
        return not self.resource_names or name in self.resource_names


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes label selector (matchLabels and matchExpressions)."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None, where: str) -> LabelSelector | None:
        """From YAML; None when absent (matches everything)."""
        if not data:
            return None
        expressions = []
        for expression in data.get("matchExpressions") or []:
            operator = str(expression.get("operator"))
            if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
                raise PolicyError(f"{where}: unknown label selector operator {operator!r}")
            values = tuple(str(v) for v in expression.get("values") or ())
            expressions.append((str(expression.get("key")), operator, values))
        labels = tuple(sorted((str(k), str(v)) for k, v in (data.get("matchLabels") or {}).items()))
        return cls(labels, tuple(expressions))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Kubernetes semantics: every matchLabel and every expression holds."""
        if any(labels.get(key) != value for key, value in self.match_labels):
            return False
        for key, operator, values in self.match_expressions:
            present = key in labels
            if operator == "In" and not (present and labels[key] in values):
                return False
            if operator == "NotIn" and present and labels[key] in values:
                return False
            if operator == "Exists" and not present:
                return False
            if operator == "DoesNotExist" and present:
                return False
        return True


# --- policies and exceptions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Validation:
    """One ``validations`` entry."""

    expression: Expression
    message: str
    message_expression: Expression | None


@dataclass(frozen=True)
class CompiledPolicy:
    """A ValidatingPolicy ready to evaluate."""

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

    @property
    def blocking(self) -> bool:
        """Whether a violation is denied at admission."""
        return "Deny" in self.actions

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> CompiledPolicy:
        """Compile a ``policies.kyverno.io/v1`` ValidatingPolicy; PolicyError when it cannot be evaluated."""
        name = str((obj.get("metadata") or {}).get("name") or "?")
        where = f"ValidatingPolicy {name}"
        spec = obj.get("spec")
        if not isinstance(spec, Mapping):
            raise PolicyError(f"{where}: no spec")
        actions = tuple(str(a) for a in spec.get("validationActions") or ())
        if not actions:
            raise PolicyError(f"{where}: spec.validationActions is empty (expected Deny, Audit or Warn)")
        constraints = spec.get("matchConstraints") or {}
        if not constraints.get("resourceRules"):
            raise PolicyError(f"{where}: spec.matchConstraints.resourceRules is empty: the policy matches nothing")
        mode = (spec.get("evaluation") or {}).get("mode")
        if mode not in (None, "Kubernetes"):
            raise PolicyError(f"{where}: evaluation mode {mode!r} is not evaluated offline (only Kubernetes)")
        variables = []
        for index, variable in enumerate(spec.get("variables") or []):
            variables.append(
                (
                    str(variable.get("name")),
                    compile_expression(variable.get("expression"), f"{where} spec.variables[{index}]"),
                )
            )
        conditions = tuple(
            (
                str(condition.get("name")),
                compile_expression(condition.get("expression"), f"{where} spec.matchConditions[{index}]"),
            )
            for index, condition in enumerate(spec.get("matchConditions") or [])
        )
        validations = []
        for index, validation in enumerate(spec.get("validations") or []):
            at = f"{where} spec.validations[{index}]"
            message_source = validation.get("messageExpression")
            validations.append(
                Validation(
                    compile_expression(validation.get("expression"), f"{at}.expression"),
                    str(validation.get("message") or ""),
                    compile_expression(message_source, f"{at}.messageExpression") if message_source else None,
                )
            )
        if not validations:
            raise PolicyError(f"{where}: spec.validations is empty")
        return cls(
            name=name,
            actions=actions,
            failure_policy=str(spec.get("failurePolicy") or "Fail"),
            rules=tuple(ResourceRule.parse(r) for r in constraints.get("resourceRules") or []),
            exclude_rules=tuple(ResourceRule.parse(r) for r in constraints.get("excludeResourceRules") or []),
            namespace_selector=LabelSelector.parse(constraints.get("namespaceSelector"), where),
            object_selector=LabelSelector.parse(constraints.get("objectSelector"), where),
            match_conditions=conditions,
            variables=tuple(variables),
            validations=tuple(validations),
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
    """A ``policies.kyverno.io/v1`` PolicyException."""

    name: str
    namespace: str
    policies: frozenset[tuple[str, str]]
    expires_at: datetime.datetime | None
    match_conditions: tuple[tuple[str, Expression], ...]

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> CompiledException:
        """Compile a PolicyException; PolicyError when it cannot be evaluated."""
        meta = obj.get("metadata") or {}
        name, namespace = str(meta.get("name") or "?"), str(meta.get("namespace") or "")
        where = f"PolicyException {namespace}/{name}"
        spec = obj.get("spec") or {}
        refs = frozenset((str(r.get("kind")), str(r.get("name"))) for r in spec.get("policyRefs") or [])
        conditions = tuple(
            (
                str(condition.get("name")),
                compile_expression(condition.get("expression"), f"{where} spec.matchConditions[{index}]"),
            )
            for index, condition in enumerate(spec.get("matchConditions") or [])
        )
        return cls(name, namespace, refs, _parse_time(spec.get("expiresAt"), where), conditions)


# --- results ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One violated validation (or evaluation error) of one policy on one resource."""

    policy: str
    actions: tuple[str, ...]
    kind: str
    namespace: str
    name: str
    message: str
    error: bool = False
    ignored: bool = False

    @property
    def action(self) -> str:
        """What admission does: Deny, Warn or Audit (Ignored for errors under failurePolicy Ignore)."""
        if self.ignored:
            return "Ignored"
        for action in ("Deny", "Warn", "Audit"):
            if action in self.actions:
                return action
        return self.actions[0] if self.actions else "Audit"

    @property
    def blocking(self) -> bool:
        """Whether this finding fails the check (a Deny that is not an ignored error)."""
        return self.action == "Deny"

    @property
    def resource(self) -> str:
        """``Kind namespace/name`` (or ``Kind name``)."""
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def __str__(self) -> str:
        return f"{self.action.upper():<6} {self.policy}  {self.resource}: {self.message}"


@dataclass
class Evaluation:
    """Findings of evaluating a set of objects, and what was not evaluated."""

    findings: list[Finding] = field(default_factory=list)
    evaluated: int = 0
    matched: int = 0

    @property
    def denied(self) -> list[Finding]:
        """The findings that fail the check."""
        return [f for f in self.findings if f.blocking]

    @property
    def warnings(self) -> list[Finding]:
        """The findings that are only reported."""
        return [f for f in self.findings if not f.blocking]


# --- the evaluator ---------------------------------------------------------------------------------------------


def without_nulls(value: Any) -> Any:
    """A copy without ``null`` map values: the API server drops them before admission sees the object."""
    if isinstance(value, Mapping):
        return {str(k): without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


def _is_policy(obj: Mapping[str, Any], kind: str) -> bool:
    return obj.get("kind") == kind and split_api_version(str(obj.get("apiVersion", "")))[0] == POLICY_GROUP


class Evaluator:
    """Evaluates the ValidatingPolicies (and PolicyExceptions) of one cluster against objects."""

    def __init__(
        self,
        policies: Iterable[Mapping[str, Any]],
        exceptions: Iterable[Mapping[str, Any]] = (),
        namespaces: Iterable[Mapping[str, Any]] = (),
        *,
        now: datetime.datetime | None = None,
        default_namespace: str = "default",
    ) -> None:
        self.policies = [CompiledPolicy.parse(p) for p in sorted(policies, key=lambda p: str(p["metadata"]["name"]))]
        self.exceptions = [CompiledException.parse(e) for e in exceptions]
        self.namespaces = {str(n["metadata"]["name"]): _labels(n) for n in namespaces}
        self._namespace_objects = {str(n["metadata"]["name"]): dict(n) for n in namespaces}
        self.now = now or datetime.datetime.now(datetime.UTC)
        self.default_namespace = default_namespace
        self.not_evaluated: list[str] = []
        self.last_matched = False
        self._context = _context()
        self._variables: dict[str, Any] = {}
        self._context.set_variable_resolver(self._resolve)

    @classmethod
    def for_objects(
        cls,
        objects: Iterable[Mapping[str, Any]],
        *,
        now: datetime.datetime | None = None,
        default_namespace: str = "default",
    ) -> Evaluator:
        """An evaluator for the policies, exceptions and namespaces found among ``objects`` (a cluster's build)."""
        objects = list(objects)
        evaluator = cls(
            [o for o in objects if _is_policy(o, "ValidatingPolicy")],
            [o for o in objects if _is_policy(o, "PolicyException")],
            [o for o in objects if o.get("kind") == "Namespace" and o.get("apiVersion") == "v1"],
            now=now,
            default_namespace=default_namespace,
        )
        for obj in objects:
            kind = str(obj.get("kind"))
            if split_api_version(str(obj.get("apiVersion", "")))[0] == POLICY_GROUP and kind not in (
                "ValidatingPolicy",
                "PolicyException",
            ):
                evaluator.not_evaluated.append(f"{kind} {obj['metadata']['name']}")
        evaluator.not_evaluated.sort()
        return evaluator

    def _resolve(self, name: str) -> Any:
        return self._variables if name == "variables" else None

    # -- one object --

    def evaluate(self, obj: Mapping[str, Any], namespaced: bool | None = None) -> list[Finding]:
        """Every finding of every policy on one object (``namespaced`` overrides the scope guess)."""
        kind = str(obj.get("kind") or "")
        group, version = split_api_version(str(obj.get("apiVersion") or ""))
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or meta.get("generateName") or "")
        if namespaced is None:
            namespaced = bool(meta.get("namespace")) or kind not in CLUSTER_SCOPED
        namespace = str(meta.get("namespace") or (self.default_namespace if namespaced else ""))
        resource = resource_of(kind)
        applicable = [
            p
            for p in self.policies
            if any(r.matches(group, version, resource, namespaced, name) for r in p.rules)
            and not any(r.matches(group, version, resource, namespaced, name) for r in p.exclude_rules)
            and self._selected(p, obj, kind, namespace, namespaced)
        ]
        self.last_matched = bool(applicable)
        if not applicable:
            return []
        target: Obj = without_nulls(obj)
        if namespaced and not meta.get("namespace"):
            target["metadata"] = {**(target.get("metadata") or {}), "namespace": namespace}
        activation = {
            "object": target,
            "oldObject": None,
            "request": {
                "operation": "CREATE",
                "kind": {"group": group, "version": version, "kind": kind},
                "resource": {"group": group, "version": version, "resource": resource},
                "name": name,
                "namespace": namespace,
                "dryRun": False,
                "userInfo": {"username": "system:serviceaccount:flux-system:kustomize-controller", "groups": []},
            },
            "namespaceObject": self._namespace_object(namespace) if namespaced else None,
            "params": None,
        }
        self._context.update(activation)
        findings: list[Finding] = []
        for policy in applicable:
            findings.extend(self._evaluate_policy(policy, kind, namespace, name))
        return findings

    def _namespace_object(self, namespace: str) -> Obj:
        found = self._namespace_objects.get(namespace)
        if found is not None:
            out = dict(found)
            meta = dict(out.get("metadata") or {})
            meta["labels"] = {**_labels(found), "kubernetes.io/metadata.name": namespace}
            out["metadata"] = meta
            return out
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"kubernetes.io/metadata.name": namespace}},
        }

    def _selected(
        self, policy: CompiledPolicy, obj: Mapping[str, Any], kind: str, namespace: str, namespaced: bool
    ) -> bool:
        if policy.object_selector is not None and not policy.object_selector.matches(_labels(obj)):
            return False
        if policy.namespace_selector is None:
            return True
        if kind == "Namespace" and not namespaced:
            name = str((obj.get("metadata") or {}).get("name") or "")
            return policy.namespace_selector.matches({**_labels(obj), "kubernetes.io/metadata.name": name})
        if not namespaced:
            return True
        labels = {**self.namespaces.get(namespace, {}), "kubernetes.io/metadata.name": namespace}
        return policy.namespace_selector.matches(labels)

    def _run(self, expression: Expression, scope: Mapping[str, Expression], errors: dict[str, str]) -> Any:
        """Evaluate with the variables it uses (computed lazily, once per object and policy)."""
        for used in expression.uses:
            if used in self._variables:
                continue
            if used in errors:
                raise EvaluationError(f"variable {used!r} failed: {errors[used]}")
            if used not in scope:
                raise EvaluationError(f"{expression.where}: no variable {used!r} is defined")
            try:
                self._variables[used] = self._run(scope[used], scope, errors)
            except EvaluationError as exc:
                errors[used] = str(exc)
                raise EvaluationError(f"variable {used!r} failed: {exc}") from exc
        try:
            return expression.program.execute(self._context)
        except Exception as exc:  # the engine raises KeyError, TypeError, RuntimeError, IndexError, ValueError
            kind = {"KeyError": "no such key", "IndexError": "index out of range"}.get(type(exc).__name__, "")
            detail = f"{kind}: {exc}" if kind else str(exc)
            raise EvaluationError(f"{expression.where}: {detail}") from exc

    def _evaluate_policy(self, policy: CompiledPolicy, kind: str, namespace: str, name: str) -> list[Finding]:
        self._variables = {}
        scope = dict(policy.variables)
        errors: dict[str, str] = {}

        def finding(message: str, error: bool = False) -> Finding:
            ignored = error and policy.failure_policy == "Ignore"
            return Finding(policy.name, policy.actions, kind, namespace, name, message, error, ignored)

        try:
            for condition_name, condition in policy.match_conditions:
                result = self._run(condition, scope, errors)
                if not isinstance(result, bool):
                    raise EvaluationError(f"{condition.where} ({condition_name}): returned {result!r}, not a bool")
                if not result:
                    return []
            if self._excepted(policy, errors):
                return []
        except EvaluationError as exc:
            return [finding(f"evaluation error: {exc}", error=True)]
        findings = []
        for validation in policy.validations:
            try:
                result = self._run(validation.expression, scope, errors)
                if not isinstance(result, bool):
                    raise EvaluationError(f"{validation.expression.where}: returned {result!r}, not a bool")
            except EvaluationError as exc:
                findings.append(finding(f"evaluation error: {exc}", error=True))
                continue
            if result:
                continue
            message = validation.message or f"failed expression: {validation.expression.source.strip()}"
            if validation.message_expression is not None:
                try:
                    text = self._run(validation.message_expression, scope, errors)
                    if isinstance(text, str) and text.strip():
                        message = text.strip()
                except EvaluationError:
                    pass
            findings.append(finding(message))
        return findings

    def _excepted(self, policy: CompiledPolicy, errors: dict[str, str]) -> bool:
        for exception in self.exceptions:
            if ("ValidatingPolicy", policy.name) not in exception.policies:
                continue
            if exception.expires_at is not None and exception.expires_at <= self.now:
                continue
            saved = self._variables
            self._variables = {}
            try:
                holds = all(self._run(condition, {}, {}) is True for _, condition in exception.match_conditions)
            finally:
                self._variables = saved
            if holds:
                return True
        return False

    def evaluate_all(self, objects: Iterable[Mapping[str, Any]]) -> Evaluation:
        """Evaluate every object; findings sorted by resource, policy and message."""
        result = Evaluation()
        for obj in objects:
            result.evaluated += 1
            result.findings.extend(self.evaluate(obj))
            result.matched += self.last_matched
        result.findings.sort(key=lambda f: (f.namespace, f.kind, f.name, f.policy, f.message))
        return result


def policy_names(findings: Sequence[Finding], *, blocking: bool | None = None) -> list[str]:
    """Sorted names of the policies with findings (only blocking or only non-blocking ones when asked)."""
    return sorted({f.policy for f in findings if blocking is None or f.blocking == blocking})


# --- fleetgen validate / fleetgen policy test -------------------------------------------------------------------


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
    import hashlib
    import json

    relevant = [
        o
        for o in objects
        if (o.get("kind") == "Namespace" and o.get("apiVersion") == "v1")
        or split_api_version(str(o.get("apiVersion", "")))[0] == POLICY_GROUP
    ]
    text = json.dumps(sorted(json.dumps(o, sort_keys=True) for o in relevant))
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

    ``options`` are :class:`generator.build.BuildOptions`; ``crds`` folders of CRDs (a path or a list) that add
    to or override the built-in catalogue; ``rendered`` an optional precomputed ``generator.render.plan(root)``.
    """
    from pathlib import Path

    from generator.build import build_fleet
    from generator.render import plan
    from generator.schema import CrdCatalogue, SchemaValidator, load_catalogue, rendered_extra_schemas
    from generator.secretscan import scan

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
    """The Kyverno policies, PolicyExceptions and Namespaces cluster ``cluster`` receives (from its build)."""
    import dataclasses

    from generator.build import BuildOptions, build_fleet
    from generator.errors import UsageError
    from generator.render import plan

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


def cmd_validate(args: Any) -> int:
    """``fleetgen validate``: exit 1 on any Deny violation, schema violation or possible secret."""
    import json
    import sys

    from generator.build import options_from
    from generator.schema import extra_crd_dirs

    crds = extra_crd_dirs(args.crds)
    report = validate_fleet(args.root, options_from(args), crds=crds, schema=not args.no_schema)
    for warning in report.build_warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(report_json(report), indent=2, sort_keys=True))
    else:
        sys.stdout.write(format_report(report))
    return 1 if report.failed else 0


def _policy_test_arguments(args: Any) -> tuple[Any, str, list[str]]:
    """(root, cluster, files) from ``[ROOT] --cluster NAME FILE...`` (files may also follow ``--cluster NAME``)."""
    from pathlib import Path

    from generator.errors import UsageError

    cluster, *after = args.cluster
    paths = [*args.paths, *after]
    root = Path.cwd()
    if paths and paths[0] != "-" and (Path(paths[0]) / "inventory").is_dir():
        root = Path(paths.pop(0)).resolve()
    if not paths:
        raise UsageError("policy test: give the manifests to check (FILE..., or - for stdin)")
    files: list[str] = []
    for path in paths:
        if path != "-" and Path(path).is_dir():
            found = sorted(str(p) for p in Path(path).rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
            if not found:
                raise UsageError(f"{path}: no *.yaml or *.yml files in this folder")
            files.extend(found)
        else:
            files.append(path)
    return root, cluster, files


def cmd_policy_test(args: Any) -> int:
    """``fleetgen policy test``: exit 1 on any Deny violation, naming each violated policy."""
    import sys

    from generator.build import BuildOptions
    from generator.errors import UsageError

    root, cluster, files = _policy_test_arguments(args)
    if args.charts is not None and not args.charts.is_dir():
        raise UsageError(f"--charts {args.charts}: not a folder")
    options = BuildOptions(
        charts_dir=args.charts.resolve() if args.charts else None,
        cache_dir=args.cache_dir.resolve() if args.cache_dir else None,
        use_cache=not args.no_cache,
        progress=False,
    )
    evaluation, evaluator = policy_test(root, cluster, files, namespace=args.namespace, options=options)
    for finding in evaluation.findings:
        print(finding if finding.blocking else f"warning: {finding}")
    denied = policy_names(evaluation.findings, blocking=True)
    audited = policy_names(evaluation.findings, blocking=False)
    summary = f"{evaluation.evaluated} objects checked against {len(evaluator.policies)} policies of cluster {cluster}"
    if denied:
        print(f"DENIED by {len(denied)} policies: {', '.join(denied)}", file=sys.stderr)
    if audited:
        print(f"warnings (Audit/Warn) from: {', '.join(audited)}", file=sys.stderr)
    if evaluator.not_evaluated:
        print(f"not evaluated offline: {', '.join(evaluator.not_evaluated)}", file=sys.stderr)
    print(f"{summary}: {'denied' if denied else 'admitted'}", file=sys.stderr)
    return 1 if denied else 0


def register(subparsers: Any) -> None:
    """Add ``validate`` and ``policy test`` to fleetgen's parser."""
    from pathlib import Path

    from generator.build import add_build_options

    validate = subparsers.add_parser(
        "validate",
        help="build every cluster and check it: Kyverno policies (CEL, offline), strict schemas, secret scan",
    )
    add_build_options(validate)
    validate.add_argument(
        "--crds",
        type=Path,
        action="append",
        metavar="DIR",
        help="folder of upstream CRDs that add to or override the built-in catalogue (repeatable; "
        "default: $FLEETGEN_CRDS)",
    )
    validate.add_argument("--no-schema", action="store_true", help="skip strict schema validation")
    validate.add_argument("--format", choices=("text", "json"), default="text")
    validate.set_defaults(func=cmd_validate)

    policy = subparsers.add_parser("policy", help="policy tools (policy test)")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    test = policy_sub.add_parser(
        "test",
        help="check manifests against a cluster's policies before opening a PR (exit 1 on Deny)",
        description="fleetgen policy test [ROOT] --cluster NAME FILE...: evaluate the ValidatingPolicies and "
        "PolicyExceptions that cluster NAME receives against the objects in FILE... (folders: every YAML file "
        "in them; '-': stdin). Exit 1 when any Deny policy is violated, listing each by name.",
    )
    test.add_argument("paths", nargs="*", metavar="[ROOT] FILE", help="fleet root (optional), then manifests")
    test.add_argument("--cluster", nargs="+", required=True, metavar="NAME", help="the cluster whose policies apply")
    test.add_argument("--namespace", default="default", help="namespace of objects that name none (default: default)")
    test.add_argument("--charts", type=Path, metavar="DIR", help="folder of upstream charts to template too")
    test.add_argument("--cache-dir", type=Path, metavar="DIR", help="step cache (default: ROOT/.cache/fleetgen)")
    test.add_argument("--no-cache", action="store_true", help="neither read nor write the step cache")
    test.set_defaults(func=cmd_policy_test)
