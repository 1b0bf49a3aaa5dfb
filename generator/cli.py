"""The ``fleetgen`` command line. The only place errors become messages and exit codes.

Exit codes: 0 success; 1 a check failed (stale output, golden drift, policy violation);
2 the input is wrong (inventory, flags, hand-edited output); 3 a tool is missing or failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from generator import __version__
from generator.errors import FleetgenError, InventoryError, InventoryWarning, OutputConflict, ToolError, UsageError


def _root(value: str) -> Path:
    return Path(value).resolve()


def cmd_render(args: argparse.Namespace) -> int:
    """Render the fleet repo (or check that the committed one is up to date)."""
    from generator.render.pipeline import render

    out = args.out.resolve() if args.out else args.root / "out"
    changes = render(args.root, out, check=args.check, force=args.force)
    if args.check:
        if changes.clean:
            print(f"up to date: {out} ({changes.unchanged} files)")
            return 0
        for label, paths in (("stale", changes.updated), ("missing", changes.created), ("extra", changes.deleted)):
            for path in paths:
                print(f"{label}: {path}")
        print(f"{out} is not up to date: run `fleetgen render`", file=sys.stderr)
        return 1
    print(f"rendered {out}: {changes.summary()}")
    return 0


def cmd_schema(_: argparse.Namespace) -> int:
    """Print the JSON Schema of inventory and overlay files (for editors)."""
    from generator.inventory.schema_export import inventory_json_schema

    print(json.dumps(inventory_json_schema(), indent=2, sort_keys=True))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Print a cluster's resolved settings with the file:line that set each value."""
    from generator.inventory.loader import load_inventory
    from generator.inventory.resolve import resolve

    fleet = resolve(load_inventory(args.root))
    cluster = fleet.cluster(args.cluster)
    if cluster is None:
        known = ", ".join(c.name for c in fleet.clusters)
        raise UsageError(f"unknown cluster '{args.cluster}'; clusters: {known}")
    rows = {
        k: v for k, v in cluster.provenance.items() if not args.key or k == args.key or k.startswith(args.key + ".")
    }
    if not rows:
        raise UsageError(f"cluster '{args.cluster}' has no setting '{args.key}'")
    values = _flatten(cluster)
    width = max(len(k) for k in rows)
    for key, where in rows.items():
        print(f"{key.ljust(width)}  {json.dumps(values.get(key))}  # {where}")
    return 0


def _flatten(cluster: object) -> dict[str, object]:
    from generator.inventory.resolve import IDENTITY_FIELDS, ResolvedCluster

    assert isinstance(cluster, ResolvedCluster)
    data = cluster.settings.model_dump(by_alias=True, mode="json")
    data.update(cluster.cluster.model_dump(by_alias=True, mode="json", include=IDENTITY_FIELDS))
    flat: dict[str, object] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict) and value:
            for key, child in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), child)
        else:
            flat[prefix] = value

    walk("", data)
    return flat


def cmd_tools(args: argparse.Namespace) -> int:
    """Find (or with --install, install) helm and kustomize."""
    from generator.tools import describe, find_tools, install_tools

    toolset = install_tools(args.root) if args.install else find_tools(args.root)
    print(describe(toolset))
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    main = argparse.ArgumentParser(prog="fleetgen", description="Render a GitOps fleet from one inventory.")
    main.add_argument("--version", action="version", version=f"fleetgen {__version__}")
    sub = main.add_subparsers(dest="command", required=True)

    render = sub.add_parser("render", help="render the Flux fleet repo and infrastructure repo")
    render.add_argument("root", nargs="?", type=_root, default=Path.cwd(), help="fleet root (inventory/, overlays/)")
    render.add_argument("--out", type=Path, help="output folder (default: ROOT/out)")
    render.add_argument("--check", action="store_true", help="write nothing; exit 1 if the output is stale")
    render.add_argument("--force", action="store_true", help="overwrite generated files edited by hand")
    render.set_defaults(func=cmd_render)

    schema = sub.add_parser("schema", help="print the JSON Schema of inventory and overlay files")
    schema.set_defaults(func=cmd_schema)

    explain = sub.add_parser("explain", help="show a cluster's resolved values and where each was set")
    explain.add_argument("cluster")
    explain.add_argument("key", nargs="?", default="", help="dotted key, e.g. components.envoy-gateway")
    explain.add_argument("--root", type=_root, default=Path.cwd())
    explain.set_defaults(func=cmd_explain)

    tools = sub.add_parser("tools", help="show (or --install) the helm and kustomize fleetgen uses")
    tools.add_argument("--install", action="store_true")
    tools.add_argument("--root", type=_root, default=Path.cwd())
    tools.set_defaults(func=cmd_tools)

    from generator.build import builder as build
    from generator.build import lock
    from generator.render import overview
    from generator.verify import catalogue, evaluate, promote

    build.register(sub)  # build, golden, diff
    lock.register(sub)  # lock (upstream charts)
    evaluate.register(sub)  # validate, policy test
    catalogue.register(sub)  # schemas
    overview.register(sub)  # overview (FLEET.md / --html)
    promote.register(sub)  # promote (an app's image to the next environment)
    return main


def _show_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, file: TextIO | None = None,
    line: str | None = None, **_: Any,
) -> None:
    """Print inventory warnings as ``warning: file:line:col: ...``; others the Python way."""
    if issubclass(category, InventoryWarning):
        print(f"warning: {message}", file=file or sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fleetgen`` console script."""
    warnings.simplefilter("default", InventoryWarning)  # each distinct warning once per run
    warnings.showwarning = _show_warning
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (InventoryError, UsageError, OutputConflict) as exc:
        print(f"error: {exc}" if not isinstance(exc, InventoryError) else str(exc), file=sys.stderr)
        if isinstance(exc, InventoryError):
            print(f"{len(exc.problems)} problem(s) found; nothing was written", file=sys.stderr)
        return 2
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except FleetgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
