"""fleetgen: render a GitOps fleet (Flux, Crossplane, Kyverno) from one inventory.

The package follows the data flow, one subpackage per stage (each one's docstring says what comes in and out):

    inventory/  files -> validated, resolved fleet      (load, check, resolve)
    render/     resolved fleet -> {path: text} -> out/   (plan, write)
    build/      rendered tree -> what each cluster receives (kustomize, post-build, helm, compose)
    verify/     built clusters -> findings, golden comparison, diffs

``cli`` is the only module that knows every subcommand. What a library user may import is the list below
(``from generator import render``); everything else is internal and may change between releases.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    #: The installed distribution's version: the git tag it was built from (setuptools-scm, see pyproject.toml).
    __version__ = version("fleetgen")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0.0.0+unknown"

#: The public API: name -> (module, attribute), imported on first use so ``import generator`` stays cheap.
#: (The render step is ``render_fleet``: ``generator.render`` is the stage's subpackage.)
_PUBLIC = {
    "load_inventory": ("generator.inventory.loader", "load_inventory"),
    "resolve": ("generator.inventory.resolve", "resolve"),
    "ResolvedFleet": ("generator.inventory.resolve", "ResolvedFleet"),
    "plan": ("generator.render.pipeline", "plan"),
    "Rendered": ("generator.render.pipeline", "Rendered"),
    "render_fleet": ("generator.render.pipeline", "render"),
    "build_fleet": ("generator.build.fleet", "build_fleet"),
    "BuildOptions": ("generator.build.model", "BuildOptions"),
    "FleetBuild": ("generator.build.model", "FleetBuild"),
    "validate_fleet": ("generator.verify.validate", "validate_fleet"),
    "FleetgenError": ("generator.errors", "FleetgenError"),
    "InventoryError": ("generator.errors", "InventoryError"),
    "Problem": ("generator.errors", "Problem"),
    "ToolError": ("generator.errors", "ToolError"),
    "UsageError": ("generator.errors", "UsageError"),
}
__all__ = [
    "BuildOptions", "FleetBuild", "FleetgenError", "InventoryError", "Problem", "Rendered", "ResolvedFleet",
    "ToolError", "UsageError", "__version__", "build_fleet", "load_inventory", "plan", "render_fleet", "resolve",
    "validate_fleet",
]

if TYPE_CHECKING:
    from generator.build.fleet import build_fleet
    from generator.build.model import BuildOptions, FleetBuild
    from generator.errors import FleetgenError, InventoryError, Problem, ToolError, UsageError
    from generator.inventory.loader import load_inventory
    from generator.inventory.resolve import ResolvedFleet, resolve
    from generator.render.pipeline import Rendered, plan
    from generator.render.pipeline import render as render_fleet
    from generator.verify.validate import validate_fleet


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'generator' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = getattr(import_module(module), attribute)
    globals()[name] = value
    return value
