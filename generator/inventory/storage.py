"""The hub's observability stores (metrics, logs, traces): composed by Crossplane or named by reference.

``fleet.observability.storage`` chooses per store (``mode``, overridden by ``stores.<store>``). A composed store
is one ObjectStore XR on the hub (``generator/render/crossplane/objectstore.py``) whose buckets and write identity
have names known when rendering, so this module also writes them into the writing component's values on the hub
(``storage_values``, merged under the hub's own cluster values by ``resolve``). The stores themselves are data:
``generator/data/objectstores.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from generator.errors import Problem
from generator.inventory.entries import Inventory, Sourced, problem_at, settings_layers
from generator.inventory.models import Cluster, Fleet

ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"


@dataclass(frozen=True)
class Writer:
    """One service account that reads and writes a store: where its block sits in the values, and its name."""

    values: tuple[str, ...]
    name: str


@dataclass(frozen=True)
class Bucket:
    """One bucket of a store (``name`` without the organization prefix)."""

    name: str
    values: tuple[tuple[str, ...], ...]
    expiration_days: int | None


@dataclass(frozen=True)
class Store:
    """A store of the observability layer: the component writing it, its buckets and its writers."""

    name: str
    component: str
    buckets: tuple[Bucket, ...]
    writers: tuple[Writer, ...]


@cache
def storage_data() -> dict[str, Any]:
    """``generator/data/objectstores.yaml``."""
    from generator.yamlio import load_documents

    text = resources.files("generator").joinpath("data/objectstores.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = load_documents(text)[0]
    return data


def _path(dotted: str) -> tuple[str, ...]:
    return tuple(dotted.split("."))


@cache
def stores() -> tuple[Store, ...]:
    """Every store, in the data file's order."""
    return tuple(
        Store(name, str(entry["component"]),
              tuple(Bucket(str(b["name"]), tuple(_path(v) for v in b["values"]), b.get("expirationDays"))
                    for b in entry["buckets"]),
              tuple(Writer(_path(w["values"]), str(w["name"])) for w in entry["serviceAccounts"]))
        for name, entry in storage_data()["stores"].items())


def store_mode(fleet: Fleet, store: str) -> str:
    """``composed`` or ``reference`` for one store."""
    storage = fleet.observability.storage
    return str(dict(storage.stores).get(store, storage.mode))  # type: ignore[call-overload]


def composed_stores(fleet: Fleet) -> list[Store]:
    """The stores Crossplane composes."""
    return [s for s in stores() if store_mode(fleet, s.name) == "composed"]


def bucket_name(fleet: Fleet, bucket: Bucket) -> str:
    """The bucket's name in the cloud (globally unique on S3: prefixed with the organization)."""
    return f"{fleet.organization}-{bucket.name}"


def identity_name(fleet: Fleet, store: Store) -> str:
    """The write identity's name (AWS: the IAM role's name)."""
    return f"{fleet.organization}-fleet-{store.component}"


def role_arn(fleet: Fleet, store: Store) -> str:
    """The ARN of a composed store's IAM role (the composition names the role, so the ARN is known now)."""
    assert fleet.crossplane is not None and fleet.crossplane.aws is not None
    return f"arn:aws:iam::{fleet.crossplane.aws.account_id}:role/{identity_name(fleet, store)}"


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    result: Any = value
    for key in reversed(path):
        result = {key: result}
    assert isinstance(result, dict)
    return result


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        out[key] = _merge(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def storage_values(fleet: Fleet, cluster: Cluster, component: str) -> dict[str, Any]:
    """Values a composed store sets on the hub's component that writes it: every bucket name, and on every writer
    service account its exact name and its identity. Empty off the hub, for reference stores and other components."""
    if cluster.role != "hub" or fleet.crossplane is None or cluster.cloud != "aws" or fleet.crossplane.aws is None:
        return {}
    values: dict[str, Any] = {}
    for store in composed_stores(fleet):
        if store.component != component:
            continue
        for bucket in store.buckets:
            for path in bucket.values:
                values = _merge(values, _nest(path, bucket_name(fleet, bucket)))
        for writer in store.writers:
            block = {"name": writer.name, "annotations": {ROLE_ARN_ANNOTATION: role_arn(fleet, store)}}
            values = _merge(values, _nest(writer.values, block))
    return values


def _get(data: Any, path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return False
        data = data[key]
    return True


def check_storage(inv: Inventory) -> list[Problem]:
    """Refuse (file:line) a composed store fleetgen cannot compose or whose names the inventory also sets by hand."""
    fleet_source = inv.fleet
    fleet = fleet_source.item
    composed = composed_stores(fleet)
    if not composed:
        return []
    raw_storage = ((fleet_source.raw.get("observability") or {}).get("storage") or {})
    problems: list[Problem] = []

    def refuse(store: Store, message: str) -> None:
        sub: tuple[str, ...] = ("stores", store.name) if store.name in (raw_storage.get("stores") or {}) else (
            ("mode",) if "mode" in raw_storage else ())
        file, line, column = fleet_source.where("observability", "storage", *sub)
        problems.append(Problem(file, line, column, ".".join(("fleet", "observability", "storage", *sub)), message))

    hubs = [c for c in inv.clusters if c.item.role == "hub"]
    settings = fleet.crossplane
    clouds = storage_data()["clouds"]
    for store in composed:
        if settings is None:
            refuse(store, f"the {store.name} store is composed by Crossplane on the hub: set fleet.crossplane "
                          "(or mode: reference and bring the buckets)")
        elif not any(c.item.role == "workload" for c in inv.clusters):
            refuse(store, "composed stores are applied by the hub's Crossplane, which fleetgen renders for a fleet "
                          "with workload clusters: use mode: reference")
        if not hubs:
            refuse(store, f"the {store.name} store lives on the hub: the fleet has no cluster with role: hub")
        elif hubs[0].item.cloud not in clouds:
            refuse(store, f"the hub runs on {hubs[0].item.cloud}: object stores are composed on "
                          f"{', '.join(clouds)} only; use mode: reference and set the storage in the hub's values")
        elif settings is not None and settings.aws is None:
            refuse(store, "an AWS hub's stores are composed in the account of fleet.crossplane.aws: set it")
        elif fleet.observability.storage.hub_oidc_issuer is None:
            refuse(store, "the write identities trust the hub's service accounts through its OIDC issuer: set "
                          "fleet.observability.storage.hubOidcIssuer (aws eks describe-cluster "
                          "--query cluster.identity.oidc.issuer)")
        if not any(c.item.name == store.component and "hub" in c.item.roles for c in inv.components):
            refuse(store, f"the {store.name} store is written by component '{store.component}', which does not run "
                          "on the hub (components: ... roles: [hub])")
    for hub in hubs:
        problems.extend(_hand_set(inv, hub, composed))
    return problems


def _hand_set(inv: Inventory, hub: Sourced[Cluster], composed: list[Store]) -> list[Problem]:
    """Values a composed store owns that a layer of the hub also sets (the role annotation, a writer's name)."""
    problems = []
    for layer in settings_layers(inv, hub):
        if layer.file is None:
            continue
        for store in composed:
            values = ((layer.data.get("components") or {}).get(store.component) or {}).get("values") or {}
            for writer in store.writers:
                for key in (("annotations", ROLE_ARN_ANNOTATION), ("name",)):
                    path = (*writer.values, *key)
                    if _get(values, path):
                        problems.append(problem_at(layer, ("components", store.component, "values", *path),
                                                   f"the {store.name} store is composed: fleetgen sets this "
                                                   "(remove it, or set the store's mode to reference)"))
    return problems
