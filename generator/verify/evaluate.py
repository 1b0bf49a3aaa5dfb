"""Offline evaluation of Kyverno ValidatingPolicies (``policies.kyverno.io/v1``) with a real CEL engine.

The engine is the ``common-expression-language`` package (``import cel``: cel-rust, fast) plus the
Kubernetes string, list-aggregate and sets extensions from ``cel.stdlib``; the optional syntax ``a.?b`` is
rewritten for it (generator/verify/celoptional.py) and Kyverno's pure libraries are added (generator/verify/kyvernolibs.py).
The evaluation follows Kyverno v1.19.0's admission semantics (sources cited at "policies and exceptions"):

1. ``matchConstraints``: ``resourceRules`` (apiGroups, apiVersions, resources, operations, scope,
   resourceNames), ``excludeResourceRules``, ``namespaceSelector`` (the namespace's labels, with the
   automatic ``kubernetes.io/metadata.name``; a Namespace is matched on its own labels) and ``objectSelector``;
   a NamespacedValidatingPolicy only sees objects of its namespace; a Pod policy also runs as its autogen variants
   (Deployments, DaemonSets, StatefulSets, ReplicaSets, Jobs, CronJobs) unless ``autogen`` narrows it;
2. PolicyExceptions (honoured as the cluster's Kyverno release configures ``features.policyExceptions``) that
   reference the policy, are not expired and whose ``matchConditions`` hold: a full one skips the policy, one
   with ``images``/``allowedValues`` feeds the ``exceptions`` CEL variable;
3. ``matchConditions``: a false one skips the policy; errors skip it under ``failurePolicy: Ignore`` and are an
   error result otherwise;
4. ``variables`` (lazy) and ``validations`` in order: the first false one is the policy's failure
   (``messageExpression``, ``message``, or "CEL expression validation failed at index N"); an evaluation error
   is an error result. Deny blocks on a failure or an error; ``evaluation.admission.enabled: false`` never does.

Objects are evaluated as a CREATE request (rules for CREATE or UPDATE apply). Nothing passes silently:
syntax the engine cannot parse and library calls that cannot be known offline (``http``, ``globalContext``,
image data, ``resource.post``) are refused when the policy is loaded, naming the policy and the expression;
``resource.get`` of an object the build does not contain is an "unknown" finding, never a pass.
ImageValidatingPolicies (they need registries) and Mutating/GeneratingPolicies are reported as not evaluated.
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
from generator.verify import celoptional, kyvernolibs

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
#: Kyverno's ``resource`` library, answered from the objects the evaluator knows (see Evaluator).
SUPPORTED_FUNCTIONS |= {"get", "Get", "list", "List", "ToGVR", celoptional.FUNCTION, *kyvernolibs.FUNCTIONS}
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
        rewritten = celoptional.desugar(source)
    except celoptional.OptionalSyntaxError as exc:
        raise PolicyError(f"{where}: CEL optional syntax the offline engine does not evaluate: {exc}") from exc
    try:
        program = cel.compile(rewritten)
    except (ValueError, RuntimeError) as exc:
        detail = str(exc).strip().replace("\n", "\n    ")
        raise PolicyError(f"{where}: CEL the offline engine cannot parse:\n    {detail}") from exc
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
    context.add_function(celoptional.FUNCTION, celoptional.optional_chain)
    context.add_function("string", _string_fallback)
    for name, function in kyvernolibs.FUNCTIONS.items():
        context.add_function(name, function)
    return context


def _string_fallback(value: Any) -> str:
    """``string(bool)``, which the CEL spec defines and cel-rust 0.10 lacks (it calls this only when it has none)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    raise TypeError(f"string() of {type(value).__name__} is not supported")


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

    def matches(
        self,
        group: str,
        version: str,
        resource: str,
        namespaced: bool,
        name: str,
        operations: frozenset[str] | set[str] = frozenset({"CREATE", "UPDATE"}),
    ) -> bool:
        """Whether a request with one of ``operations`` on this resource matches the rule."""
        if not (({"*"} | set(operations)) & set(self.operations)):
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

    @property
    def action(self) -> str:
        """What admission does: Deny, Warn or Audit."""
        for action in ("Deny", "Warn", "Audit"):
            if action in self.actions:
                return action
        return self.actions[0] if self.actions else "Audit"

    @property
    def blocking(self) -> bool:
        """Whether this finding fails the check (Deny blocks on a failed *or* erroring validation)."""
        return self.action == "Deny"

    @property
    def resource(self) -> str:
        """``Kind namespace/name`` (or ``Kind name``)."""
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def __str__(self) -> str:
        return f"{self.action.upper():<6} {self.policy}  {self.resource}: {self.message}"


@dataclass(frozen=True)
class Outcome:
    """Kyverno's one result of one policy (or autogen variant) on one request: pass, fail, error or skip."""

    policy: CompiledPolicy
    status: str
    message: str = ""

    @property
    def denies(self) -> bool:
        """Whether admission denies the request for this result (pkg/webhooks/resource/vpol/handler.go)."""
        return self.status in ("fail", "error") and self.policy.blocking


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


class OfflineUnknown(Exception):
    """The answer depends on cluster state the offline evaluation does not have."""


_RESOURCE_LIBRARY = {"__kyverno_library__": "resource"}


class Evaluator:
    """Evaluates the ValidatingPolicies (and PolicyExceptions) of one cluster against objects.

    ``exception_settings`` are Kyverno's ``features.policyExceptions``; ``cluster_objects`` the objects Kyverno's
    ``resource`` library can read (``resource.Get``/``resource.List``); ``complete`` says they are the whole
    cluster (a test's cluster), so a missing object is an answer rather than unknown.
    """

    def __init__(
        self,
        policies: Iterable[Mapping[str, Any]],
        exceptions: Iterable[Mapping[str, Any]] = (),
        namespaces: Iterable[Mapping[str, Any]] = (),
        *,
        now: datetime.datetime | None = None,
        default_namespace: str = "default",
        exception_settings: ExceptionSettings | None = None,
        cluster_objects: Iterable[Mapping[str, Any]] = (),
        complete: bool = False,
        user: Mapping[str, Any] | None = None,
    ) -> None:
        ordered = sorted(
            policies, key=lambda p: (str(p["metadata"].get("namespace") or ""), str(p["metadata"]["name"]))
        )
        self.policies = [CompiledPolicy.parse_all(p)[0] for p in ordered]
        self.variants = [variant for p in ordered for variant in CompiledPolicy.parse_all(p)]
        self.exception_settings = exception_settings or ExceptionSettings()
        compiled = [CompiledException.parse(e) for e in exceptions]
        self.exceptions = [e for e in compiled if self.exception_settings.honours(e)]
        self.ignored_exceptions = [e for e in compiled if not self.exception_settings.honours(e)]
        self.namespaces = {str(n["metadata"]["name"]): _labels(n) for n in namespaces}
        self._namespace_objects = {str(n["metadata"]["name"]): dict(n) for n in namespaces}
        self.now = now or datetime.datetime.now(datetime.UTC)
        self.default_namespace = default_namespace
        self.cluster_objects = list(cluster_objects)
        self.complete = complete
        #: ``request.userInfo``: who applies the objects (Flux's kustomize-controller unless told otherwise).
        self.user = dict(user or {"username": "system:serviceaccount:flux-system:kustomize-controller", "groups": []})
        self.not_evaluated: list[str] = []
        self.last_matched = False
        self._context = _context()
        for name in ("get", "Get"):
            self._context.add_function(name, self._resource_get)
        for name in ("list", "List"):
            self._context.add_function(name, self._resource_list)
        self._context.add_function("ToGVR", self._resource_to_gvr)
        self._variables: dict[str, Any] = {}
        self._context.set_variable_resolver(self._resolve)

    @classmethod
    def for_objects(
        cls,
        objects: Iterable[Mapping[str, Any]],
        *,
        now: datetime.datetime | None = None,
        default_namespace: str = "default",
        exception_settings: ExceptionSettings | None = None,
    ) -> Evaluator:
        """An evaluator for the policies, exceptions and namespaces found among ``objects`` (a cluster's build).

        Exceptions are honoured as the build's Kyverno HelmRelease configures them (``features.policyExceptions``).
        """
        objects = list(objects)
        settings = exception_settings or ExceptionSettings.from_objects(objects)
        evaluator = cls(
            [o for o in objects if any(_is_policy(o, k) for k in VALIDATING_KINDS)],
            [o for o in objects if _is_policy(o, "PolicyException")],
            [o for o in objects if o.get("kind") == "Namespace" and o.get("apiVersion") == "v1"],
            now=now,
            default_namespace=default_namespace,
            exception_settings=settings,
            cluster_objects=objects,
        )
        for obj in objects:
            kind = str(obj.get("kind"))
            if split_api_version(str(obj.get("apiVersion", "")))[0] == POLICY_GROUP and kind not in (
                *VALIDATING_KINDS,
                "PolicyException",
            ):
                evaluator.not_evaluated.append(f"{kind} {obj['metadata']['name']}")
        settings = evaluator.exception_settings
        where = f"in namespace {settings.namespace}" if settings.enabled else "when features.policyExceptions.enabled"
        for exception in evaluator.ignored_exceptions:
            evaluator.not_evaluated.append(
                f"PolicyException {exception.namespace}/{exception.name} (Kyverno reads exceptions only {where})"
            )
        evaluator.not_evaluated.sort()
        return evaluator

    def _resolve(self, name: str) -> Any:
        if name == "variables":
            return self._variables
        if name == "resource":
            return _RESOURCE_LIBRARY
        return kyvernolibs.RECEIVERS.get(name)

    # -- Kyverno's resource library (pkg/cel/libs/resource), offline against the known objects --

    def _find(self, api_version: str, resource: str, namespace: str) -> list[Obj]:
        return [
            dict(o)
            for o in self.cluster_objects
            if str(o.get("apiVersion")) == api_version
            and resource_of(str(o.get("kind"))) == resource
            and str((o.get("metadata") or {}).get("namespace") or "") == namespace
        ]

    @staticmethod
    def _gvr(value: Any, where: str) -> tuple[str, str]:
        """(apiVersion, resource) of a ``resource.ToGVR`` value."""
        if isinstance(value, Mapping) and value.get("__gvr__"):
            return str(value["apiVersion"]), str(value["resource"])
        raise OfflineUnknown(f"{where}: expected a GVR from resource.ToGVR, got {value!r}")

    def _resource_to_gvr(self, receiver: Any, *args: Any) -> Any:
        if receiver != _RESOURCE_LIBRARY or len(args) != 2:
            raise OfflineUnknown(f"ToGVR{args!r}: only resource.ToGVR(apiVersion, kind) is known")
        return {"__gvr__": True, "apiVersion": str(args[0]), "resource": resource_of(str(args[1]))}

    def _resource_get(self, receiver: Any, *args: Any) -> Any:
        if receiver != _RESOURCE_LIBRARY or len(args) not in (3, 4):
            raise OfflineUnknown(f"get{args!r}: only resource.get(apiVersion, resource, namespace, name) is known")
        if len(args) == 3:
            (api_version, resource), namespace, name = self._gvr(args[0], "resource.get"), str(args[1]), str(args[2])
        else:
            api_version, resource, namespace, name = (str(a) for a in args)
        for obj in self._find(api_version, resource, namespace):
            if str(obj["metadata"].get("name")) == name:
                return without_nulls(obj)
        where = f"{namespace}/{name}" if namespace else name
        if self.complete:
            raise RuntimeError(f'{resource} "{name}" not found')
        raise OfflineUnknown(
            f"resource.get({api_version}, {resource}, {where}): not among the objects of the cluster's build, "
            "so its content cannot be known offline"
        )

    def _resource_list(self, receiver: Any, *args: Any) -> Any:
        if receiver != _RESOURCE_LIBRARY or len(args) not in (2, 3):
            raise OfflineUnknown(f"list{args!r}: only resource.list(apiVersion, resource, namespace) is known")
        if len(args) == 2:
            (api_version, resource), namespace = self._gvr(args[0], "resource.list"), str(args[1])
        else:
            api_version, resource, namespace = (str(a) for a in args)
        if not self.complete:
            raise OfflineUnknown(
                f"resource.list({api_version}, {resource}, {namespace}): the live cluster holds objects the build "
                "does not, so a list cannot be known offline"
            )
        found = sorted(self._find(api_version, resource, namespace), key=lambda o: str(o["metadata"].get("name")))
        return {"apiVersion": api_version, "kind": "List", "items": [without_nulls(o) for o in found]}

    # -- one object --

    def outcomes(
        self,
        obj: Mapping[str, Any],
        namespaced: bool | None = None,
        *,
        operation: str | None = None,
        old_object: Mapping[str, Any] | None = None,
    ) -> list[Outcome]:
        """Kyverno's result of every policy (and autogen variant) whose matchConstraints select the request.

        ``operation`` None is an apply (rules for CREATE or UPDATE select it; ``request.operation`` is CREATE).
        """
        kind = str(obj.get("kind") or "")
        group, version = split_api_version(str(obj.get("apiVersion") or ""))
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or meta.get("generateName") or "")
        if namespaced is None:
            namespaced = bool(meta.get("namespace")) or kind not in CLUSTER_SCOPED
        namespace = str(meta.get("namespace") or (self.default_namespace if namespaced else ""))
        resource = resource_of(kind)
        operations = {"CREATE", "UPDATE"} if operation is None else {operation}
        applicable = [
            p
            for p in self.variants
            if p.namespace in ("", namespace)
            and (not p.namespace or namespaced)
            and any(r.matches(group, version, resource, namespaced, name, operations) for r in p.rules)
            and not any(r.matches(group, version, resource, namespaced, name, operations) for r in p.exclude_rules)
            and self._selected(p, obj, kind, namespace, namespaced)
        ]
        self.last_matched = bool(applicable)
        if not applicable:
            return []
        target: Obj | None = without_nulls(obj)
        assert target is not None
        if namespaced and not meta.get("namespace"):
            target["metadata"] = {**(target.get("metadata") or {}), "namespace": namespace}
        old = without_nulls(old_object) if old_object is not None else None
        if operation == "DELETE":  # the API server sends the deleted object as oldObject and no object
            target, old = None, old if old is not None else target
        activation: dict[str, Any] = {
            "object": target,
            "oldObject": old,
            "request": {
                "operation": operation or "CREATE",
                "kind": {"group": group, "version": version, "kind": kind},
                "resource": {"group": group, "version": version, "resource": resource},
                "name": name,
                "namespace": namespace,
                "dryRun": False,
                "userInfo": self.user,
            },
            "namespaceObject": self._namespace_object(namespace) if namespaced else None,
            "params": None,
            "exceptions": {"allowedImages": [], "allowedValues": []},
        }
        self._context.update(activation)
        return [self._evaluate_policy(policy) for policy in applicable]

    def evaluate(self, obj: Mapping[str, Any], namespaced: bool | None = None) -> list[Finding]:
        """Every finding (failed or erroring policy) on one object (``namespaced`` overrides the scope guess)."""
        kind = str(obj.get("kind") or "")
        meta = obj.get("metadata") or {}
        if namespaced is None:
            namespaced = bool(meta.get("namespace")) or kind not in CLUSTER_SCOPED
        namespace = str(meta.get("namespace") or (self.default_namespace if namespaced else ""))
        findings = []
        for outcome in self.outcomes(obj, namespaced):
            if outcome.status not in ("fail", "error", "unknown"):
                continue
            policy = outcome.policy
            message = outcome.message
            actions = policy.actions
            if not policy.admission:
                actions = ("Audit",)
                message += " (evaluation.admission.enabled is false: background reports only, never denied)"
            label = policy.name if not policy.autogen else f"{policy.name} (autogen {policy.autogen})"
            name = str(meta.get("name") or meta.get("generateName") or "")
            findings.append(Finding(label, actions, kind, namespace, name, message, outcome.status != "fail"))
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
        except OfflineUnknown:
            raise
        except Exception as exc:  # the engine raises KeyError, TypeError, RuntimeError, IndexError, ValueError
            if isinstance(exc.__cause__, OfflineUnknown) or "cannot be known offline" in str(exc):
                raise OfflineUnknown(f"{expression.where}: {exc}") from exc
            kind = {"KeyError": "no such key", "IndexError": "index out of range"}.get(type(exc).__name__, "")
            detail = f"{kind}: {exc}" if kind else str(exc)
            raise EvaluationError(f"{expression.where}: {detail}") from exc

    def _matches(self, policy: CompiledPolicy, conditions: Sequence[tuple[str, Expression]]) -> bool:
        """pkg/cel/policies/vpol/compiler/policy.go match: any false → False; else errors → Ignore ? False : raise."""
        errors = []
        for condition_name, condition in conditions:
            try:
                result = self._run(condition, {}, {})
            except EvaluationError as exc:
                errors.append(str(exc))
                continue
            if not isinstance(result, bool):
                errors.append(f"{condition.where} ({condition_name}): returned {result!r}, not a bool")
                continue
            if not result:
                return False
        if not errors:
            return True
        if policy.failure_policy == "Ignore":
            return False
        raise EvaluationError("; ".join(errors))

    def _evaluate_policy(self, policy: CompiledPolicy) -> Outcome:
        self._variables = {}
        try:
            return self._evaluate_policy_unsafe(policy)
        except OfflineUnknown as exc:
            return Outcome(policy, "unknown", f"cannot be evaluated offline: {exc}")

    def _evaluate_policy_unsafe(self, policy: CompiledPolicy) -> Outcome:
        allowed_images: list[str] = []
        allowed_values: list[str] = []
        full = False
        for exception in self.exceptions:
            if (policy.kind, policy.name) not in exception.policies:
                continue
            if exception.expires_at is not None and exception.expires_at <= self.now:
                continue
            try:
                holds = self._matches(policy, exception.match_conditions)
            except EvaluationError as exc:
                if full:
                    continue
                return Outcome(policy, "error", f"evaluation error: {exc}")
            if not holds:
                continue
            if not exception.partial:
                full = True
            elif not full:
                allowed_images.extend(exception.images)
                allowed_values.extend(exception.allowed_values)
        if full:
            return Outcome(policy, "skip", "policy exception")
        self._context.add_variable("exceptions", {"allowedImages": allowed_images, "allowedValues": allowed_values})
        scope = dict(policy.variables)
        errors: dict[str, str] = {}
        try:
            if not self._matches(policy, [(n, c) for n, c in policy.match_conditions]):
                return Outcome(policy, "skip", "match conditions")
        except EvaluationError as exc:
            return Outcome(policy, "error", f"evaluation error: {exc}")
        self._variables = {}
        for index, validation in enumerate(policy.validations):
            try:
                result = self._run(validation.expression, scope, errors)
                if not isinstance(result, bool):
                    raise EvaluationError(f"{validation.expression.where}: returned {result!r}, not a bool")
            except EvaluationError as exc:
                return Outcome(policy, "error", f"evaluation error: {exc}")
            if result:
                continue
            message = validation.message
            if validation.message_expression is not None:
                try:
                    text = self._run(validation.message_expression, scope, errors)
                    message = (
                        text if isinstance(text, str) else f"failed to convert message expression to string: {text!r}"
                    )
                except EvaluationError as exc:
                    message = f"failed to evaluate message expression: {exc}"
            return Outcome(policy, "fail", message or f"CEL expression validation failed at index {index}")
        return Outcome(policy, "pass")

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

    ``options`` are :class:`generator.build.builder.BuildOptions`; ``crds`` folders of CRDs (a path or a list) that add
    to or override the built-in catalogue; ``rendered`` an optional precomputed ``generator.render.pipeline.plan(root)``.
    """
    from pathlib import Path

    from generator.build.builder import build_fleet
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

    from generator.build.builder import BuildOptions, build_fleet
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


def cmd_validate(args: Any) -> int:
    """``fleetgen validate``: exit 1 on any Deny violation, schema violation or possible secret."""
    import json
    import sys

    from generator.build.builder import options_from
    from generator.verify.schema import extra_crd_dirs

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

    from generator.build.builder import BuildOptions
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

    from generator.build.builder import add_build_options

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
