"""Kyverno's own ValidatingPolicy test cases (vendored in kyverno/, see SOURCES.tsv) replayed on fleetgen's evaluator.

A *case* is one expectation Kyverno's tests state about admission or about the policy API:

* chainsaw conformance tests (test/conformance/chainsaw/...): each ``create``/``apply`` of a resource (admitted, or
  denied when the step expects an error), of a policy or PolicyException the API must reject, and the
  ``kubectl apply -f policy.yaml`` scripts of validation-checks. Steps run in order against one simulated cluster
  (the test's namespace ``chainsaw-<test>``, objects created so far, UPDATE for a second apply), with the Kyverno
  settings the conformance workflow installs for the folder (.github/workflows/tests-conformance.yaml).
* CLI tests (test/cli/.../kyverno-test.yaml): each (result, resource) pair of a ValidatingPolicy result: pass,
  fail or skip.

Each case ends as ``agree``, ``disagree`` or ``refuse`` (fleetgen refused to evaluate it, with the reason).
Steps fleetgen cannot replay (shell scripts that create objects, mutating policies) make no case.
"""

from __future__ import annotations

import copy
import datetime
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from generator.verify.cel import POLICY_GROUP, PolicyError
from generator.verify.evaluate import Evaluator
from generator.verify.matching import split_api_version
from generator.verify.policy import VALIDATING_KINDS, ExceptionSettings, PolicyRejected, autogen_status

ROOT = Path(__file__).parent / "kyverno"
CHAINSAW = ROOT / "test" / "conformance" / "chainsaw"
#: Kyverno's exception settings per chainsaw folder: the ``kyverno-configs`` of each job in
#: .github/workflows/tests-conformance.yaml (standard: enabled, namespace "*"; default: the chart's disabled).
FOLDER_SETTINGS = {
    "validating-policies": ExceptionSettings(True, "*"),
    "namespaced-validating-policies": ExceptionSettings(True, "*"),
    "force-failure-policy-ignore": ExceptionSettings(True, "*"),
    "policy-exceptions-disabled": ExceptionSettings(False, ""),
}
#: Who chainsaw applies objects as: the admin user of the kind cluster the conformance workflow creates.
CHAINSAW_USER = {"username": "kubernetes-admin", "groups": ["kubeadm:cluster-admins", "system:authenticated"]}
#: A fixed "now" (exceptions' expiresAt) so results never depend on the date.
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@dataclass
class Case:
    """One expectation of Kyverno's tests and what fleetgen does."""

    id: str
    expected: str
    actual: str = ""
    refusal: str = ""

    @property
    def verdict(self) -> str:
        """agree, disagree or refuse."""
        if self.refusal:
            return "refuse"
        return "agree" if self.actual == self.expected else "disagree"


def _load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def _is_kyverno(obj: Mapping[str, Any]) -> bool:
    group = split_api_version(str(obj.get("apiVersion", "")))[0]
    return group in (POLICY_GROUP, "kyverno.io")


@dataclass
class Cluster:
    """The simulated cluster of one chainsaw test."""

    namespace: str
    settings: ExceptionSettings
    policies: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    exceptions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    objects: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    refusal: str = ""

    def key(self, obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
        meta = obj.get("metadata") or {}
        return (
            str(obj.get("apiVersion")),
            str(obj.get("kind")),
            str(meta.get("namespace") or ""),
            str(meta.get("name")),
        )

    def evaluator(self) -> Evaluator:
        namespaces = [o for o in self.objects.values() if o.get("kind") == "Namespace"]
        if not any(n["metadata"]["name"] == self.namespace for n in namespaces):
            namespaces.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}})
        return Evaluator(
            list(self.policies.values()),
            list(self.exceptions.values()),
            namespaces,
            now=NOW,
            default_namespace=self.namespace,
            exception_settings=self.settings,
            cluster_objects=list(self.objects.values()),
            complete=True,
            user=CHAINSAW_USER,
        )


def _with_namespace(obj: dict[str, Any], namespace: str, namespaced: bool) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    if namespaced and not (obj.get("metadata") or {}).get("namespace"):
        obj.setdefault("metadata", {})["namespace"] = namespace
    return obj


CLUSTER_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "ValidatingPolicy", "CustomResourceDefinition"}


def _expects_error(operation: Mapping[str, Any]) -> bool | None:
    """True when the step expects the API to refuse, False when it expects success, None when it says nothing."""
    for expect in operation.get("expect") or []:
        check = expect.get("check") or {}
        if check.get("($error != null)") is True or "($error)" in check:
            return True
        if check.get("($error == null)") is True or check.get("($error != null)") is False:
            return False
    return None


def _apply(cluster: Cluster, obj: dict[str, Any], case_id: str, expect_error: bool) -> Case | None:
    """Apply one object to the simulated cluster; the case it makes (None: not an admission question)."""
    kind = str(obj.get("kind"))
    namespaced = kind not in CLUSTER_KINDS
    if kind == "NamespacedValidatingPolicy" or kind == "PolicyException":
        namespaced = True
    obj = _with_namespace(obj, cluster.namespace, namespaced)
    expected = "deny" if expect_error else "admit"
    if _is_kyverno(obj):
        group_kind = kind
        if split_api_version(str(obj["apiVersion"]))[0] != POLICY_GROUP or group_kind not in (
            *VALIDATING_KINDS,
            "PolicyException",
        ):
            if not expect_error:
                cluster.refusal = (
                    cluster.refusal or f"the test also uses a {kind} ({obj['apiVersion']}), not evaluated offline"
                )
            return None
        try:
            Evaluator([obj]) if kind in VALIDATING_KINDS else Evaluator([], [obj])
        except PolicyRejected:
            return Case(case_id, expected, "deny")  # Kyverno's API (CRD schema or policy webhook) rejects it
        except PolicyError as exc:
            cluster.refusal = cluster.refusal or str(exc)
            if expect_error:
                return Case(case_id, expected, refusal=str(exc))
            return None
        if not expect_error:
            if kind == "PolicyException":
                cluster.exceptions[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
            else:
                cluster.policies[(kind, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])] = obj
        return Case(case_id, expected, "admit")
    key = cluster.key(obj)
    old = cluster.objects.get(key)
    if cluster.refusal:
        return Case(case_id, expected, refusal=cluster.refusal)
    evaluator = cluster.evaluator()
    outcomes = evaluator.outcomes(
        obj, namespaced=namespaced, operation="UPDATE" if old is not None else "CREATE", old_object=old
    )
    unknown = [o for o in outcomes if o.status == "unknown"]
    if unknown:
        return Case(case_id, expected, refusal=unknown[0].message)
    actual = "deny" if any(o.denies for o in outcomes) else "admit"
    if actual == "admit":
        cluster.objects[key] = obj
    return Case(case_id, expected, actual)


def _case_id(relative: Path, step: int, op: int, doc_index: int, verb: str, doc: Mapping[str, Any]) -> str:
    name = (doc.get("metadata") or {}).get("name")
    return f"chainsaw/{relative}#{step}.{op}.{doc_index} {verb} {doc.get('kind')} {name}"


def subset(expected: Any, actual: Any) -> bool:
    """Chainsaw's assertion: every expected map key matches, arrays match element by element, scalars are equal."""
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(k in actual and subset(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(map(subset, expected, actual))
    return bool(expected == actual)


def _autogen_case(cluster: Cluster, doc: Mapping[str, Any], case_id: str) -> Case | None:
    """An ``assert`` of a policy's ``status.autogen.configs``: the rules fleetgen generates must match."""
    expected = ((doc.get("status") or {}).get("autogen") or {}).get("configs")
    if doc.get("kind") not in VALIDATING_KINDS or not expected:
        return None
    name = str((doc.get("metadata") or {}).get("name"))
    policy = next((p for (_, _, n), p in cluster.policies.items() if n == name), None)
    if policy is None:
        return Case(case_id, "match", refusal=cluster.refusal or f"policy {name} was not created")
    return Case(
        case_id, "match", "match" if subset(expected, autogen_status(policy["spec"]).get("configs")) else "differ"
    )


def _files(folder: Path, spec: Any) -> list[Path]:
    return sorted(folder.glob(str(spec)))


def chainsaw_cases() -> Iterator[Case]:
    """Every case of every vendored chainsaw test."""
    for test_file in sorted(CHAINSAW.rglob("chainsaw-test.yaml")):
        folder = test_file.parent
        relative = folder.relative_to(CHAINSAW)
        settings = FOLDER_SETTINGS[relative.parts[0]]
        for test in _load(test_file):
            spec = test.get("spec") or {}
            cluster = Cluster(str(spec.get("namespace") or f"chainsaw-{test['metadata']['name']}"), settings)
            for step_index, step in enumerate(spec.get("steps") or []):
                operations = list(step.get("try") or [])
                use = step.get("use")
                if use and use["template"].endswith("create-policy.yaml"):
                    bindings = {b["name"]: b["value"] for b in (use.get("with") or {}).get("bindings") or []}
                    operations = [{"create": {"file": bindings["file"]}}]
                for op_index, operation in enumerate(operations):
                    for verb in ("create", "apply", "update"):
                        if verb not in operation:
                            continue
                        body = operation[verb]
                        documents = (
                            [body["resource"]]
                            if "resource" in body
                            else [d for f in _files(folder, body["file"]) for d in _load(f)]
                        )
                        expect_error = bool(_expects_error(body))
                        for doc_index, doc in enumerate(documents):
                            case_id = _case_id(relative, step_index, op_index, doc_index, verb, doc)
                            case = _apply(cluster, doc, case_id, expect_error)
                            if case is not None:
                                yield case
                    if "assert" in operation and "file" in operation["assert"]:
                        for doc_index, doc in enumerate(
                            d for f in _files(folder, operation["assert"]["file"]) for d in _load(f)
                        ):
                            autogen = _autogen_case(
                                cluster, doc, _case_id(relative, step_index, op_index, doc_index, "assert-autogen", doc)
                            )
                            if autogen is not None:
                                yield autogen
                    if "delete" in operation:
                        body = operation["delete"]
                        ref = body.get("ref") or {}
                        for doc in (
                            [ref] if ref else [d for f in _files(folder, body.get("file", "")) for d in _load(f)]
                        ):
                            name = (doc.get("metadata") or {}).get("name") or doc.get("name")
                            for store in (cluster.objects, cluster.policies, cluster.exceptions):
                                for key in [k for k in store if k[-1] == name]:
                                    del store[key]
                    script = (operation.get("script") or {}).get("content", "")
                    if script.strip().startswith("kubectl apply -f ") and "\n" not in script.strip():
                        target = script.strip().removeprefix("kubectl apply -f ").strip()
                        expect_error = bool((operation["script"].get("check") or {}).get("($error != null)"))
                        for doc_index, doc in enumerate(d for f in _files(folder, target) for d in _load(f)):
                            case_id = _case_id(relative, step_index, op_index, doc_index, "kubectl-apply", doc)
                            case = _apply(cluster, doc, case_id, expect_error)
                            if case is not None:
                                yield case


def _cli_objects(folder: Path, spec: Any, key: str) -> list[dict[str, Any]]:
    out = []
    for name in spec.get(key) or []:
        for doc in _load(folder / name):
            if doc.get("kind") in ("ClusterResource", "Context"):
                out.extend((doc.get("spec") or {}).get("resources") or [])
            else:
                out.append(doc)
    return out


def _values(path: Path) -> tuple[list[dict[str, Any]], str]:
    """The Namespaces a CLI values file defines (``namespaceSelector``, ``namespaces``), and a refusal for the rest."""
    values = _load(path)[0]
    namespaces: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": e["name"], "labels": e.get("labels") or {}}}
        for e in values.get("namespaceSelector") or []
    ]
    namespaces += [{**n, "apiVersion": "v1", "kind": "Namespace"} for n in values.get("namespaces") or []]
    injected = values.get("policies") or values.get("globalValues") or values.get("subresources")
    return namespaces, "values.yaml sets policy or global values the CLI injects" if injected else ""


def _cli_status(outcomes: list[Any]) -> str:
    statuses = {o.status for o in outcomes}
    for status in ("unknown", "error", "fail", "pass", "skip"):
        if status in statuses:
            return status
    return "none"


def cli_cases() -> Iterator[Case]:
    """Every (result, resource) case of every vendored ``kyverno test`` folder about a ValidatingPolicy."""
    for test_file in sorted((ROOT / "test" / "cli").rglob("kyverno-test.yaml")):
        folder = test_file.parent
        relative = folder.relative_to(ROOT / "test" / "cli")
        for test in _load(test_file):
            policies = _cli_objects(folder, test, "policies")
            validating = {str(p["metadata"]["name"]): p for p in policies if p.get("kind") in VALIDATING_KINDS}
            results = [r for r in test.get("results") or [] if str(r.get("policy")) in validating]
            if not results:
                continue
            refusals: list[str] = []  # the evaluator's own refusal first, then what the test needs beyond it
            others = sorted(
                {str(p.get("kind")) for p in policies if _is_kyverno(p) and p.get("kind") not in VALIDATING_KINDS}
            )
            namespaces: list[dict[str, Any]] = []
            if test.get("variables") or test.get("values"):
                namespaces, values_refusal = _values(folder / str(test.get("variables") or test.get("values")))
                refusals.extend([values_refusal] if values_refusal else [])
            cluster_objects = _cli_objects(folder, test, "clusterResources") + (
                _cli_objects(folder, {"context": [test["context"]]}, "context") if test.get("context") else []
            )
            resources = _cli_objects(folder, test, "resources")
            exceptions = _cli_objects(folder, test, "exceptions")
            evaluator: Evaluator | None = None
            try:
                evaluator = Evaluator(
                    list(validating.values()),
                    [
                        e
                        for e in exceptions
                        if e.get("kind") == "PolicyException"
                        and split_api_version(str(e.get("apiVersion")))[0] == POLICY_GROUP
                    ],
                    namespaces,
                    now=NOW,
                    default_namespace="default",
                    exception_settings=ExceptionSettings(True, "*"),
                    cluster_objects=cluster_objects + namespaces,
                    complete=True,
                )
            except PolicyError as exc:
                refusals.insert(0, str(exc))
            for key in ("jsonPayloads", "envoyPayloads", "httpPayloads"):
                if test.get(key):
                    refusals.append(f"{key}: fleetgen evaluates Kubernetes admission requests only")
            if test.get("userinfo"):
                refusals.append("userinfo: the CLI's simulated requester")
            refusal = refusals[0] if refusals else ""
            for result in results:
                for name in result.get("resources") or [""]:
                    case_id = f"cli/{relative} {result['policy']} {result.get('kind')} {name}".rstrip()
                    expected = str(result["result"])
                    if refusal or evaluator is None:
                        yield Case(case_id, expected, refusal=refusal or "not evaluated")
                        continue
                    matching = [
                        r
                        for r in resources
                        if (r.get("metadata") or {}).get("name") == name.rsplit("/", 1)[-1]
                        and (not result.get("kind") or r.get("kind") == result.get("kind"))
                    ]
                    if len(matching) != 1:
                        yield Case(case_id, expected, refusal=f"{len(matching)} resources named {name}")
                        continue
                    outcomes = [
                        o
                        for o in evaluator.outcomes(matching[0], operation=str(result.get("operation") or "CREATE"))
                        if o.policy.name == result["policy"]
                    ]
                    status = _cli_status(outcomes)
                    if status == "unknown":
                        yield Case(
                            case_id, expected, refusal=next(o.message for o in outcomes if o.status == "unknown")
                        )
                    elif others and status == "none":
                        yield Case(case_id, expected, refusal=f"the test also uses {', '.join(others)}")
                    else:
                        yield Case(case_id, expected, status)


def all_cases() -> list[Case]:
    """Every chainsaw, CLI and ``kyverno apply`` case, in a stable order."""
    return [*chainsaw_cases(), *cli_cases(), *apply_cases()]


APPLY_TEST = ROOT / "cmd" / "cli" / "kubectl-kyverno" / "commands" / "apply" / "command_test.go"
APPLY_FUNCTIONS = ("Test_Apply_ValidatingPolicies", "Test_Apply_ValidatingPoliciesWithMultipleCRDS")
_SUMMARY_KEYS = ("Pass", "Fail", "Skip", "Error", "Warn")


def _apply_path(path: str) -> Path:
    import posixpath

    return ROOT / posixpath.normpath(posixpath.join("cmd/cli/kubectl-kyverno/commands/apply", path))


def apply_cases() -> Iterator[Case]:
    """Each ``kyverno apply`` Go test case about ValidatingPolicies: the policy report's summary counts."""
    text = APPLY_TEST.read_text()
    for function in APPLY_FUNCTIONS:
        body = re.search(rf"func {function}\(t \*testing\.T\) \{{(.*?)\n\}}\n", text, re.S)
        assert body, function
        for index, entry in enumerate(re.split(r"\n\t\t\{\n", body.group(1))[1:]):
            config = re.search(r"config: ApplyCommandConfig\{(.*?)\n\t\t\t\}", entry, re.S)
            summary = re.search(r"Summary: openreportsv1alpha1\.ReportSummary\{(.*?)\}", entry, re.S)
            if not (config and summary):
                continue
            fields = dict(re.findall(r"(\w+):\s+(\[\]string\{[^}]*\}|\"[^\"]*\"|\w+),", config.group(1)))
            paths = {k: re.findall(r'"([^"]+)"', v) for k, v in fields.items()}
            expected = dict(re.findall(r"(\w+):\s+(\d+)", summary.group(1)))
            expected_text = " ".join(f"{k.lower()}={expected.get(k, '0')}" for k in _SUMMARY_KEYS)
            read = paths.get("ResourcePaths") or paths.get("JSONPaths") or []
            case_id = f"apply/{function}[{index}] " + " ".join(f"{Path(p).parent.name}/{Path(p).name}" for p in read)
            policies = [d for p in paths.get("PolicyPaths", []) for d in _load(_apply_path(p))]
            exceptions = [d for p in paths.get("Exception", []) for d in _load(_apply_path(p))]
            context = [
                r
                for p in paths.get("ContextPath", [])
                for d in _load(_apply_path(p))
                for r in (d.get("spec") or {}).get("resources") or []
            ]
            namespaces, values_refusal = (
                _values(_apply_path(paths["ValuesFile"][0])) if paths.get("ValuesFile") else ([], "")
            )
            try:
                evaluator = Evaluator(
                    [p for p in policies if p.get("kind") in VALIDATING_KINDS],
                    [e for e in exceptions if e.get("kind") == "PolicyException"],
                    namespaces,
                    now=NOW,
                    exception_settings=ExceptionSettings(True, "*"),
                    cluster_objects=context + namespaces,
                    complete=True,
                )
            except PolicyError as exc:
                yield Case(case_id, expected_text, refusal=str(exc))
                continue
            if values_refusal:
                yield Case(case_id, expected_text, refusal=values_refusal)
                continue
            if paths.get("JSONPaths"):
                yield Case(case_id, expected_text, refusal="JSON payloads: fleetgen evaluates Kubernetes objects only")
                continue
            counts = dict.fromkeys(_SUMMARY_KEYS, 0)
            refusal = ""
            for path in paths.get("ResourcePaths", []):
                for resource in _load(_apply_path(path)):
                    if resource.get("kind") == "CustomResourceDefinition":
                        continue
                    for outcome in evaluator.outcomes(resource, operation="CREATE"):
                        if outcome.status == "unknown":
                            refusal = outcome.message
                        counts[outcome.status.capitalize()] = counts.get(outcome.status.capitalize(), 0) + 1
            actual_text = " ".join(f"{k.lower()}={counts[k]}" for k in _SUMMARY_KEYS)
            yield Case(case_id, expected_text, actual_text, refusal)


if __name__ == "__main__":
    import collections

    cases = all_cases()
    counts = collections.Counter(c.verdict for c in cases)
    for case in cases:
        if case.verdict != "agree":
            print(
                f"{case.verdict:9} {case.id}: expected {case.expected}, got {case.actual or '-'} {case.refusal[:150]}"
            )
    print(dict(counts), len(cases))
