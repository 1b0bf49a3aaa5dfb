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
from typing import TYPE_CHECKING, Any, TextIO

from generator import __version__
from generator.errors import FleetgenError, InventoryError, InventoryWarning, OutputConflict, ToolError, UsageError

if TYPE_CHECKING:
    from generator.build.model import BuildOptions

# Each subcommand imports the stages it runs inside its ``cmd_*`` function, so ``fleetgen render`` does not pay
# for the build, the policy engine or the schema catalogue (tests/test_cli_imports.py holds that).

def _root(value: str) -> Path:
    return Path(value).resolve()


def _jobs(value: str) -> int:
    """A ``--jobs`` value: a whole number of processes, at least 1."""
    try:
        jobs = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {jobs}")
    return jobs


def cmd_render(args: argparse.Namespace) -> int:
    """Render the fleet repo (or check that the committed one is up to date)."""
    from generator.render.pipeline import render

    out = args.out.resolve() if args.out else args.root / "out"
    changes = render(args.root, out, check=args.check, force=args.force, jobs=args.jobs)
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
    render.add_argument("--jobs", "-j", type=_jobs, default=None,
                        help="processes planning the clusters (default: $FLEETGEN_JOBS, else the CPU count)")
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

    register_build(sub)  # build, golden, diff
    register_cache(sub)  # cache prune
    register_lock(sub)  # lock (upstream charts)
    register_policy_commands(sub)  # validate, policy test
    register_schemas(sub)  # schemas
    register_overview(sub)  # overview (FLEET.md / --html)
    register_promote(sub)  # promote (an app's image to the next environment)
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


def _root_arg(value: str) -> Path:
    return Path(value).resolve()


def _shard(value: str) -> tuple[int, int]:
    """``--shard i/n`` (parsed by the build stage, imported only when the option is given)."""
    from generator.build.fleet import parse_shard

    return parse_shard(value)


def add_build_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by build, golden and diff."""
    parser.add_argument("root", nargs="?", type=_root_arg, default=Path.cwd(),
                        help="fleet root (inventory/, overlays/, charts/)")
    parser.add_argument("--cluster", action="append", default=[], metavar="NAME", help="only this cluster (repeatable)")
    parser.add_argument("--shard", type=_shard, metavar="I/N", help="only the I-th of N shares of the clusters")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="parallel builds (default: CPU count)")
    parser.add_argument("--charts", type=Path, metavar="DIR",
                        help="folder of upstream chart archives (<name>-<version>.tgz) or folders to template too")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR", help="step cache (default: ROOT/.cache/fleetgen)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the step cache")
    parser.add_argument("--offline", action="store_true",
                        help="template upstream charts from the chart cache and fleetgen.lock only; fetch nothing")


def options_from(args: argparse.Namespace, **extra: Any) -> BuildOptions:
    """BuildOptions from parsed arguments."""
    from generator.build.model import BuildOptions

    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if args.charts is not None and not args.charts.is_dir():
        raise UsageError(f"--charts {args.charts}: not a folder")
    return BuildOptions(clusters=tuple(args.cluster), shard=args.shard, jobs=args.jobs,
                        charts_dir=args.charts.resolve() if args.charts else None,
                        cache_dir=args.cache_dir.resolve() if args.cache_dir else None,
                        use_cache=not args.no_cache, offline=bool(getattr(args, "offline", False)), **extra)


def cmd_build(args: argparse.Namespace) -> int:
    """Build every (selected) cluster; print a summary, write the golden layout with --out."""
    from generator.build.fleet import build_fleet, write_tree

    options = options_from(args, work_dir=args.fleet_dir.resolve() if args.fleet_dir else None)
    result = build_fleet(args.root, options)
    if args.out:
        out = args.out.resolve()
        write_tree(out, result.files())
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.verbose:
        for name, cluster in result.clusters.items():
            print(f"{name}: {len(cluster.resources)} resources in {len(cluster.kustomizations)} Kustomizations")
    print(f"built {len(result.clusters)} clusters: {result.stats.summary()}"
          + (f"; wrote {args.out}" if args.out else ""))
    return 0


def register_build(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``build``, ``golden`` and ``diff`` subcommands to fleetgen's parser."""
    build = subparsers.add_parser("build", help="build what every cluster receives (kustomize + helm, as Flux)")
    add_build_options(build)
    build.add_argument("--out", type=Path, metavar="DIR", help="write the built resources (golden layout) here")
    build.add_argument("--verbose", "-v", action="store_true", help="one line per cluster")
    build.add_argument("--fleet-dir", type=Path, metavar="DIR",
                       help="write the rendered fleet repo the build reads here (default: a temporary folder)")
    build.set_defaults(func=cmd_build)
    register_golden(subparsers)
    register_diff(subparsers)


def register_cache(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``cache prune`` to fleetgen's parser."""
    cache = subparsers.add_parser("cache", help="the build's step cache (cache prune)")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True)
    prune = cache_sub.add_parser("prune", help="remove what no build has used for --max-age days (build does this "
                                               "by itself once a day)")
    prune.add_argument("root", nargs="?", type=_root_arg, default=Path.cwd(), help="fleet root")
    prune.add_argument("--cache-dir", type=Path, metavar="DIR", help="step cache (default: ROOT/.cache/fleetgen)")
    prune.add_argument("--max-age", type=float, default=14.0, metavar="DAYS",
                       help="keep what a build used within this many days (default 14; 0 keeps only what the "
                            "current builds name)")
    prune.set_defaults(func=cmd_cache_prune)


def cmd_cache_prune(args: argparse.Namespace) -> int:
    """``fleetgen cache prune``: remove old step results and cluster builds; print what was removed and kept."""
    from generator.build.fleet import default_cache_dir
    from generator.build.prune import prune

    if args.max_age < 0:
        raise UsageError("--max-age must be 0 or more days")
    cache_dir = args.cache_dir.resolve() if args.cache_dir else default_cache_dir(args.root)
    if not cache_dir.is_dir():
        raise UsageError(f"{cache_dir}: no step cache there")
    print(f"{cache_dir}: {prune(cache_dir, max_age=args.max_age * 24 * 3600).summary()}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    """``fleetgen diff --base REF``: what changes for every cluster between REF and the working tree."""
    from generator.verify.diff import DEFAULT_MARKDOWN_LIMIT, diff_builds, render_result

    options = options_from(args)
    result = diff_builds(args.root, args.base, options)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    sys.stdout.write(render_result(result, args.format, stream=sys.stdout,
                                   limit=DEFAULT_MARKDOWN_LIMIT if args.limit is None else args.limit))
    return 1 if args.exit_code and not result.comparison.clean else 0


def register_diff(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fleetgen diff``."""
    diff = subparsers.add_parser("diff", help="what every cluster receives differently between a git ref and now")
    add_build_options(diff)
    diff.add_argument("--base", required=True, metavar="GITREF", help="the commit to compare with, e.g. origin/main")
    diff.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    diff.add_argument("--limit", type=int, default=None,
                      help="markdown: truncate past this many characters (default: 60000)")
    diff.add_argument("--exit-code", action="store_true", help="exit 1 when anything differs")
    diff.set_defaults(func=cmd_diff)


def cmd_golden(args: argparse.Namespace) -> int:
    """``fleetgen golden``: compare (exit 1 on any difference) or, with --update, write."""
    from generator.verify.golden import GOLDEN_DIR, check_golden, summary, update_golden

    options = options_from(args)
    golden_dir = args.golden.resolve() if args.golden else args.root / GOLDEN_DIR
    if not args.update:
        return check_golden(args.root, golden_dir, options)
    result = update_golden(args.root, golden_dir, options)
    for warning in result.build.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if result.comparison.clean:
        print(f"golden files are up to date ({golden_dir})")
    else:
        print("\n".join(summary(result.comparison, title=f"updated {golden_dir}", resources=False)))
    return 0


def register_golden(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fleetgen golden``."""
    golden = subparsers.add_parser("golden", help="compare the build of every cluster with golden/ (or --update)")
    add_build_options(golden)
    golden.add_argument("--update", action="store_true", help="write the golden files instead of comparing")
    golden.add_argument("--golden", type=Path, metavar="DIR", help="golden folder (default: ROOT/golden)")
    golden.set_defaults(func=cmd_golden)


def cmd_validate(args: Any) -> int:
    """``fleetgen validate``: exit 1 on any Deny violation, schema violation or possible secret."""
    import json
    import sys

    from generator.verify.schema import extra_crd_dirs
    from generator.verify.validate import format_report, report_json, validate_fleet

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

    from generator.build.model import BuildOptions
    from generator.errors import UsageError
    from generator.verify.evaluate import policy_names
    from generator.verify.validate import policy_test

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


def register_policy_commands(subparsers: Any) -> None:
    """Add ``validate`` and ``policy test`` to fleetgen's parser."""
    from pathlib import Path

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


def cmd_schemas(args: argparse.Namespace) -> int:
    """``fleetgen schemas [ROOT] [--from DIR]``: refresh (with --from) and check the built-in catalogue."""
    from generator.build.fleet import build_fleet
    from generator.render.pipeline import plan
    from generator.verify.catalogue import MANIFEST, SCHEMA_HINT, coverage, load_manifest, refresh, verify
    from generator.verify.schema import BUILTIN_CRDS, CrdCatalogue

    catalogue_dir = args.catalogue.resolve() if args.catalogue else BUILTIN_CRDS
    if args.source is not None:
        report = refresh(args.source.resolve(), catalogue_dir)
        print(f"{catalogue_dir}: {report.summary()}")
        for path in [*report.written, *(f"{p} (removed)" for p in report.removed)]:
            print(f"  {path}")
    problems = verify(catalogue_dir)
    if problems:
        raise FleetgenError(f"the catalogue in {catalogue_dir} does not match {MANIFEST}:\n  "
                            + "\n  ".join(problems))
    rendered = plan(args.root)
    build = None if args.no_build else build_fleet(args.root, options_from(args), rendered=rendered)
    catalogue = CrdCatalogue.load(catalogue_dir)  # as just written (the process-wide built-in copy may be older)
    result = coverage(rendered, build, catalogue, load_manifest(catalogue_dir))
    for gap in result.gaps:
        print(f"warning: {gap.kind}: no schema (known gap: {gap.reason})", file=sys.stderr)
    if result.problems():
        raise FleetgenError(f"{len(result.problems())} kind(s) fleetgen renders lack a schema or a gap entry:\n  "
                            + "\n  ".join(result.problems()) + f"\nTo fix: {SCHEMA_HINT}.")
    print(f"every kind the fleet at {args.root} renders has a schema: {len(result.kinds)} kinds checked "
          f"({len(catalogue.kinds())} served by the catalogue), {len(result.gaps)} known gap(s)")
    return 0


def register_schemas(subparsers: Any) -> None:
    """Add ``schemas`` to fleetgen's parser."""

    schemas = subparsers.add_parser(
        "schemas",
        help="refresh the built-in schema catalogue (--from DIR) and check every rendered kind has a schema",
        description="Without --from: check the vendored catalogue against generator/data/crds/catalogue.yaml "
        "and that every kind the fleet at ROOT renders has a schema. With --from DIR: first re-vendor every "
        "file the manifest lists from DIR (laid out <dir>/<file>), checking git blob ids.",
    )
    add_build_options(schemas)
    schemas.add_argument("--from", dest="source", type=Path, metavar="DIR",
                         help="folder of upstream CRD files laid out <dir>/<file> (e.g. flux/...yaml)")
    schemas.add_argument("--catalogue", type=Path, metavar="DIR",
                         help="catalogue folder to refresh and check (default: the installed generator/data/crds)")
    schemas.add_argument("--no-build", action="store_true",
                         help="check the rendered files and the code's kinds only, without building the clusters")
    schemas.set_defaults(func=cmd_schemas)


def cmd_overview(args: argparse.Namespace) -> int:
    """``fleetgen overview [ROOT] [--html FILE]``: FLEET.md to stdout, or the self-contained HTML page."""
    from generator.render.overview import FLEET_FILE, html_page
    from generator.render.pipeline import plan
    from generator.render.writer import atomic_write

    rendered = plan(args.root)
    codeowners = rendered.files["CODEOWNERS"]
    if args.html is None:
        sys.stdout.write(rendered.files[FLEET_FILE])
        return 0
    page = html_page(rendered.fleet, codeowners)
    target = args.html.resolve()
    atomic_write(target, page)
    print(f"wrote {target} ({len(rendered.fleet.clusters)} clusters, {len(page.encode())} bytes)")
    return 0


def register_overview(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fleetgen overview``."""
    command = subparsers.add_parser(
        "overview", help="the fleet overview (FLEET.md) on stdout, or as one self-contained HTML page"
    )
    command.add_argument("root", nargs="?", type=lambda v: Path(v).resolve(), default=Path.cwd(),
                         help="fleet root (inventory/, overlays/)")
    command.add_argument("--html", type=Path, metavar="FILE",
                         help="write an HTML page with the topology drawn by Graphviz (needs `dot`)")
    command.set_defaults(func=cmd_overview)


def cmd_lock(args: Any) -> int:
    """``fleetgen lock``: fetch every upstream chart and (re)write fleetgen.lock."""
    from generator.build.fleet import write_lock
    from generator.build.lock import lock_changes, lock_path

    old, new = write_lock(args.root, args.jobs)
    for line in lock_changes(old, new):
        print(line)
    print(f"locked {len(new.charts)} charts in {lock_path(args.root)}")
    return 0


def register_lock(subparsers: Any) -> None:
    """Add the ``lock`` subcommand to fleetgen's parser."""
    lock = subparsers.add_parser("lock", help="fetch every upstream chart as Flux resolves it and pin it in "
                                              "fleetgen.lock (sha256 of each archive)")
    lock.add_argument("root", nargs="?", type=lambda v: Path(v).resolve(), default=Path.cwd(),
                      help="fleet root (inventory/, overlays/)")
    lock.add_argument("--jobs", "-j", type=int, default=None, help="parallel cluster builds")
    lock.set_defaults(func=cmd_lock)


def cmd_promote(args: argparse.Namespace) -> int:
    """``fleetgen promote``."""
    from generator.verify.promote import promote

    _, report = promote(args.root.resolve(), args.app, args.to, args.from_, force=args.force, jobs=args.jobs)
    sys.stdout.write(report)
    return 0


def register_promote(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``promote`` to the command line."""

    sub = subparsers.add_parser("promote", help="run in ENV the image the previous environment runs")
    sub.add_argument("root", nargs="?", type=_root, default=Path.cwd(), help="fleet root (inventory/, overlays/)")
    sub.add_argument("app")
    sub.add_argument("--to", required=True, help="the environment to promote to")
    sub.add_argument("--from", dest="from_", help="take the image from this environment (default: the previous one)")
    sub.add_argument("--force", action="store_true", help="allow skipping environments of the promotion order")
    sub.add_argument("--jobs", type=int, help="parallel builds for the blast radius (default: cores)")
    sub.set_defaults(func=cmd_promote)


if __name__ == "__main__":
    sys.exit(main())
