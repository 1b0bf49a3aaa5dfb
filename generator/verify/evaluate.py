"""Offline evaluation of Kyverno ValidatingPolicies (``policies.kyverno.io/v1``) with a real CEL engine.

The engine is the ``common-expression-language`` package (``import cel``: cel-rust, fast) plus the
Kubernetes string, list-aggregate and sets extensions from ``cel.stdlib``; the optional syntax ``a.?b`` is
rewritten for it (verify/celoptional.py) and Kyverno's pure libraries are added (verify/kyvernolibs.py).
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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from generator.verify import kyvernolibs
from generator.verify.cel import POLICY_GROUP, EvaluationError, Expression, Obj, cel_context
from generator.verify.matching import CLUSTER_SCOPED, resource_of, split_api_version
from generator.verify.policy import VALIDATING_KINDS, CompiledException, CompiledPolicy, ExceptionSettings

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
        self._context = cel_context()
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


