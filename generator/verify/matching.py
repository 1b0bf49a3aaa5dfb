"""Admission matching: resource rules (groups, versions, resources, operations, scope, names) and label selectors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from generator.verify.cel import PolicyError

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


IRREGULAR_PLURALS = {"Endpoints": "endpoints", "NetworkPolicy": "networkpolicies", "Ingress": "ingresses"}


def resource_of(kind: str) -> str:
    """The plural resource name of a kind (Kubernetes' own guess, with its known irregular plurals)."""
    if kind in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[kind]
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
