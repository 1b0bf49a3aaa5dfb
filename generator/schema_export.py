"""The JSON Schema of an inventory file, for editors (``fleetgen schema``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from generator.models import App, Cluster, Component, Fleet, Settings, Team


class InventoryFile(BaseModel):
    """One file under inventory/: any of these sections (list sections concatenate across files)."""

    model_config = ConfigDict(extra="forbid", title="fleetgen inventory file")

    fleet: Fleet | None = None
    defaults: Settings | None = None
    components: list[Component] = Field(default_factory=list)
    clusters: list[Cluster] = Field(default_factory=list)
    apps: list[App] = Field(default_factory=list)
    teams: list[Team] = Field(default_factory=list)


def inventory_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of an inventory file, using the YAML (camelCase) keys."""
    schema = InventoryFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    overlay = Settings.model_json_schema(by_alias=True)
    schema.setdefault("$defs", {})["OverlayFile"] = {k: v for k, v in overlay.items() if k != "$defs"}
    return schema
