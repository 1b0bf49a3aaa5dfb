"""The JSON Schema of inventory and overlay files, for editors (``fleetgen schema``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from generator.inventory.models import App, Cluster, Component, Defaults, Fleet, PolicyExceptionEntry, Settings, Team


class InventoryFile(BaseModel):
    """One file under inventory/: any of these sections (list sections concatenate across files)."""

    model_config = ConfigDict(extra="forbid", title="fleetgen inventory file")

    fleet: Fleet | None = None
    defaults: Defaults | None = None
    components: list[Component] = Field(default_factory=list)
    clusters: list[Cluster] = Field(default_factory=list)
    apps: list[App] = Field(default_factory=list)
    teams: list[Team] = Field(default_factory=list)
    exceptions: list[PolicyExceptionEntry] = Field(default_factory=list)


class OverlayFile(Settings):
    """overlays/<env>.yaml: the environment layer, applied over ``defaults`` and under each cluster."""

    model_config = ConfigDict(title="fleetgen overlay file")


def inventory_json_schema() -> dict[str, Any]:
    """One JSON Schema (draft 2020-12, YAML camelCase keys) for any inventory or overlay file.

    A file is valid when it is an inventory file (sections) or an overlay file (layered settings); both forbid
    unknown keys, so a key of the wrong kind of file is still reported.
    """
    _, schema = models_json_schema([(InventoryFile, "validation"), (OverlayFile, "validation")], by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://fleetgen.invalid/schemas/inventory.json",
        "title": "fleetgen inventory or overlay file",
        "description": "Any file under inventory/ (sections fleet, defaults, components, clusters, apps, teams, "
        "exceptions) or overlays/<env>.yaml (layered settings).",
        "anyOf": [{"$ref": "#/$defs/InventoryFile"}, {"$ref": "#/$defs/OverlayFile"}],
        **schema,
    }
