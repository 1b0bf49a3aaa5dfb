"""Benchmark: render and build synthetic fleets of N clusters (reproducible seed).

``python -m generator.bench --clusters 100 500`` generates, for each N, a fleet root in a temporary
folder (the reference inventory's fleet, components, apps and teams, its overlays and charts, plus N
generated clusters) and measures in one run, each size in its own process (so peak RSS is per size):

* render: the full render to disk (``fleetgen render``);
* cold build: every cluster, empty step cache;
* naive baseline: the same tool runs done the naive way, serially and without cache or sharing: a
  ``kustomize build`` of every Flux path of every cluster and a ``helm template`` of every in-repo release;
* warm build: again, nothing changed;
* one-cluster edit: one cluster's component values changed, re-planned, built again.

``--edit-loop`` (default 1000 clusters) measures the edit loop alone: after a render and a build that warm the
plan cache and the step cache, one cluster is edited, then the render (re-planning only that cluster) and the
build after it are timed, next to the same render without the plan cache in the same run (bytes compared).

Targets: cold at least 1.8x faster than naive, one-cluster edit at least 50x faster, peak RSS at most 1 GiB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from generator.build.fleet import build_fleet
from generator.build.model import BuildOptions, FleetBuild, NaiveStep
from generator.command import Command
from generator.errors import FleetgenError
from generator.tools import TOOLS_DIR_ENV, Toolset, find_tools, tools_dir
from generator.yamlio import dump_documents, load_documents

SEED = 20261127
TARGET_COLD = 1.8
TARGET_EDIT = 50.0
TARGET_RSS_MIB = 1024.0
#: Node types per cloud where the inventory defaults (AWS types) do not apply.
NODE_TYPES = {"gcp": ("e2-standard-4", "n2-standard-8"), "azure": ("Standard_D4s_v5", "Standard_D8s_v5")}


def _repo_root() -> Path:
    here = Path(__file__).resolve().parent.parent
    return here if (here / "inventory").is_dir() else Path.cwd()


def _load(path: Path) -> Any:
    docs = load_documents(path.read_text(encoding="utf-8"))
    return docs[0] if docs else {}


def synthetic_clusters(count: int, environments: Sequence[str], clouds: Mapping[str, Any],
                       versions: Sequence[str], seed: int = SEED) -> list[dict[str, Any]]:
    """``count`` cluster entries (one hub, the rest workloads) with a realistic share of own settings."""
    rng = random.Random(seed)
    weights = {"dev": 2, "staging": 2, "prod": 6}
    env_weights = [weights.get(env, 2) for env in environments]
    cloud_names = sorted(clouds)
    clusters: list[dict[str, Any]] = []
    for index in range(count):
        cloud = rng.choice(cloud_names)
        region = rng.choice(sorted(clouds[cloud]["regions"]))
        env = "prod" if index == 0 and "prod" in environments else rng.choices(environments, env_weights)[0]
        cluster: dict[str, Any] = {
            "name": f"{env}-{region}-{index:04d}"[:40],
            "cloud": cloud,
            "region": region,
            "environment": env,
            "networking": {  # disjoint everywhere: GKE routes pod and service ranges between peered VPCs
                # past 3072/4096 clusters the ranges continue in the next first octet (101.x, 11.x)
                "vpcCidr": f"{10 + index // 4096}.{index // 16 % 256}.{(index % 16) * 16}.0/20",
                "podCidr": f"{100 + (64 + index // 16) // 256}.{(64 + index // 16) % 256}.{(index % 16) * 16}.0/20",
                "serviceCidr": f"172.{16 + index // 64}.{(index % 64) * 4}.0/22",
            },
        }
        if cloud in NODE_TYPES:
            system, apps = NODE_TYPES[cloud]
            cluster["nodeGroups"] = [
                {"name": "system", "instanceType": system, "minSize": 2, "maxSize": 4, "desiredSize": 3},
                {"name": "applications", "instanceType": apps, "minSize": 2, "maxSize": 10, "desiredSize": 3},
            ]
        if index == 0:
            cluster["name"] = "management"
            cluster["role"] = "hub"
        elif cloud != clusters[0]["cloud"] or cloud != "aws":
            # reachable from the hub: peering is composed for private AWS spokes of an AWS hub only
            cluster["networking"]["privateEndpoint"] = False
        roll = rng.random()
        if index and roll < 0.10:
            cluster["components"] = {"envoy-gateway": {"values": {"deployment": {"replicas": rng.randint(2, 9)}}}}
        elif index and roll < 0.15:
            cluster["components"] = {"external-dns": {"enabled": False}}
        elif index and roll < 0.20:
            cluster["kubernetesVersion"] = rng.choice(list(versions))
        clusters.append(cluster)
    return clusters


def _without_federation_beyond_azure_limit(path: Path, fleet: Any, clusters: list[Any]) -> None:
    """Drop the ESO identity's per-AKS-cluster federation when more AKS clusters than Azure allows would use it
    (the loader refuses that fleet: generator/inventory/crossplane_checks.py)."""
    from generator.inventory.crossplane_checks import AZURE_FEDERATED_CREDENTIALS

    azure = ((fleet["fleet"].get("security") or {}).get("secrets") or {}).get("azure") or {}
    if "identityId" in azure and sum(c["cloud"] == "azure" for c in clusters) > AZURE_FEDERATED_CREDENTIALS:
        del azure["identityId"]
        path.write_text(dump_documents([fleet]), encoding="utf-8")


def make_fleet(source: Path, dest: Path, count: int, seed: int = SEED) -> list[str]:
    """Write a synthetic fleet root of ``count`` clusters at ``dest``; returns the cluster names."""
    from generator.inventory.entries import platforms

    dest.mkdir(parents=True, exist_ok=True)
    for name in ("overlays", "charts"):
        if (source / name).is_dir():
            shutil.copytree(source / name, dest / name)
    inventory = dest / "inventory"
    shutil.copytree(source / "inventory", inventory, ignore=shutil.ignore_patterns("clusters"))
    fleet = _load(inventory / "fleet.yaml")
    environments = list(fleet["fleet"]["environments"])
    if "observability" in fleet["fleet"]:  # the synthetic hub may be on any cloud: buckets by reference
        fleet["fleet"]["observability"] = {"storage": {"mode": "reference"}}
        (inventory / "fleet.yaml").write_text(dump_documents([fleet]), encoding="utf-8")
    data = platforms()
    from generator.inventory.compat import kubernetes_support

    offered = [set(kubernetes_support(cloud)) for cloud in data["clouds"]]
    versions = sorted(set.intersection(*offered), key=lambda v: tuple(int(p) for p in v.split(".")))
    clusters = synthetic_clusters(count, environments, data["clouds"], versions, seed)
    (inventory / "clusters").mkdir()
    (inventory / "clusters" / "synthetic.yaml").write_text(dump_documents([{"clusters": clusters}]), encoding="utf-8")
    names = [c["name"] for c in clusters]
    _without_federation_beyond_azure_limit(inventory / "fleet.yaml", fleet, clusters)
    prod = [c["name"] for c in clusters if c["environment"] == "prod" and c.get("role") != "hub"]
    apps_file = inventory / "apps.yaml"
    if apps_file.is_file():
        apps = _load(apps_file)
        for app in apps.get("apps", []):
            app.pop("failover", None)  # names reference clusters the synthetic fleet does not have
            if app.get("clusters") is not None:
                app["clusters"] = prod[: max(2, len(prod) // 5)]
        apps_file.write_text(dump_documents([apps]), encoding="utf-8")
    return names


def edit_one_cluster(root: Path, name: str) -> None:
    """Change one value of one cluster: its envoy-gateway control-plane replica count."""
    path = root / "inventory" / "clusters" / "synthetic.yaml"
    data = _load(path)
    for cluster in data["clusters"]:
        if cluster["name"] == name:
            components = cluster.setdefault("components", {})
            entry = components.setdefault("envoy-gateway", {})
            entry.setdefault("values", {}).setdefault("deployment", {})["replicas"] = 11
    path.write_text(dump_documents([data]), encoding="utf-8")


def run_naive(steps: Sequence[NaiveStep], work: Path, tools: Toolset) -> float:
    """Run the naive baseline's tool calls serially; seconds taken."""
    values = work / "naive-values.json"
    started = time.perf_counter()
    for step in steps:
        if step.tool == "kustomize":
            tools.kustomize_build.run(work / "tree" / step.args[0], "--load-restrictor=LoadRestrictionsNone")
        else:
            values.write_text(step.values, encoding="utf-8")
            name, chart, *rest = step.args
            location = work / chart if chart.startswith("tree/") else Path(chart)
            tools.helm.run("template", name, location, *rest, "--values", values)
    return time.perf_counter() - started


def _digests(build: FleetBuild) -> dict[str, str]:
    return {path: hashlib.sha1(text.encode("utf-8")).hexdigest() for path, text in build.files().items()}


def _timed_build(root: Path, options: BuildOptions, rendered: Any, tools: Toolset) -> tuple[float, FleetBuild]:
    started = time.perf_counter()
    result = build_fleet(root, options, rendered=rendered, tools=tools)
    return time.perf_counter() - started, result


def measure(count: int, *, jobs: int | None, seed: int, keep: Path | None, naive: bool) -> dict[str, Any]:
    """All measurements for one fleet size (run in a fresh process for a clean peak RSS)."""
    from generator.render.pipeline import plan, render

    source = _repo_root()
    tools = find_tools(source)
    base = keep or Path(tempfile.mkdtemp(prefix=f"fleetgen-bench-{count}-"))
    try:
        root = base / "fleet-root"
        names = make_fleet(source, root, count, seed)
        started = time.perf_counter()
        render(root, root / "out")
        render_s = time.perf_counter() - started
        started = time.perf_counter()
        rendered = plan(root)
        plan_s = time.perf_counter() - started
        options = BuildOptions(jobs=jobs, cache_dir=base / "cache", progress=False, record_naive=naive)
        cold_s, cold = _timed_build(root, options, rendered, tools)
        cold_files, cold_stats, steps = _digests(cold), cold.stats.summary(), cold.naive_steps
        del cold
        if naive:
            for rel, text in rendered.files.items():  # the naive baseline reads the rendered output from disk
                (base / "naive" / "tree" / rel).parent.mkdir(parents=True, exist_ok=True)
                (base / "naive" / "tree" / rel).write_text(text, encoding="utf-8")
        naive_s = run_naive(steps, base / "naive", tools) if naive else float("nan")
        options = BuildOptions(jobs=jobs, cache_dir=base / "cache", progress=False)
        warm_s, warm = _timed_build(root, options, rendered, tools)
        if _digests(warm) != cold_files:
            raise FleetgenError("warm build differs from the cold build")
        del warm
        edited = names[len(names) // 2]
        edit_one_cluster(root, edited)
        started = time.perf_counter()
        rendered = plan(root)
        replan_s = time.perf_counter() - started
        edit_s, after = _timed_build(root, options, rendered, tools)
        before, now = cold_files, _digests(after)
        changed = sorted({p.split("/", 1)[0] for p in set(before) | set(now) if before.get(p) != now.get(p)})
        if changed != [edited]:
            raise FleetgenError(f"one-cluster edit of {edited} changed {changed}")
        self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        return {
            "clusters": count, "resources": len(now), "jobs": jobs or os.cpu_count(),
            "render_s": render_s, "plan_s": plan_s, "replan_s": replan_s,
            "cold_s": cold_s, "warm_s": warm_s, "edit_s": edit_s, "naive_s": naive_s,
            "naive_steps": len(steps),
            "cold_stats": cold_stats, "edit_stats": after.stats.summary(),
            "peak_rss_self_mib": self_rss, "peak_rss_children_mib": child_rss,
        }
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)


#: Render-only targets (issue 15, 2 cores): seconds at 1000 and 5000 clusters, growth from 1000 to 2000, RSS.
TARGET_RENDER_S = {1000: 5.0, 5000: 30.0}
TARGET_GROWTH = 2.2
RENDER_SIZES = (250, 500, 1000, 2000, 5000)


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (render's planning workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure_render(count: int, *, seed: int, keep: Path | None) -> dict[str, Any]:
    """Render-only measurements for one fleet size (a fresh process): the full render to disk, a re-render
    with nothing changed, and the render after a one-cluster edit; peak RSS of the process."""
    from generator.render.pipeline import render

    source = _repo_root()
    base = keep or Path(tempfile.mkdtemp(prefix=f"fleetgen-render-{count}-"))
    try:
        root = base / "fleet-root"
        names = make_fleet(source, root, count, seed)
        started, cpu = time.perf_counter(), _cpu_seconds()
        first = render(root, root / "out")
        render_s, render_cpu_s = time.perf_counter() - started, _cpu_seconds() - cpu
        started = time.perf_counter()
        again = render(root, root / "out")
        rerender_s = time.perf_counter() - started
        edit_one_cluster(root, names[len(names) // 2])
        started = time.perf_counter()
        edited = render(root, root / "out")
        edit_render_s = time.perf_counter() - started
        if not again.clean or edited.clean:
            raise FleetgenError("a re-render changed files, or a one-cluster edit changed none")
        return {
            "clusters": count, "files": len(first.created), "render_s": render_s, "render_cpu_s": render_cpu_s,
            "rerender_s": rerender_s,
            "edit_render_s": edit_render_s, "edit_files": len(edited.created) + len(edited.updated),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            # the largest planning worker (forked: most of its pages are shared with this process)
            "peak_rss_worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        }
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)


def _mib(value: float | None) -> str:
    return "not sampled" if value is None else f"{value:.0f} MiB"


def report_render(results: Sequence[Mapping[str, Any]]) -> str:
    """The render-only table (as the README shows it) and the verdict on each render target."""
    lines = [
        "| clusters | files | render (CPU) | per 1000 clusters | re-render, nothing changed "
        "| render after a one-cluster edit | peak RSS (largest planning worker) | peak PSS, render + workers |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['clusters']} | {r['files']:,} | {r['render_s']:.1f} s ({r['render_cpu_s']:.1f} s) "
            f"| {1000 * r['render_s'] / r['clusters']:.1f} s "
            f"| {r['rerender_s']:.1f} s | {r['edit_render_s']:.1f} s ({r['edit_files']} files) "
            f"| {r['peak_rss_mib']:.0f} MiB ({r.get('peak_rss_worker_mib', 0):.0f} MiB) "
            f"| {_mib(r.get('peak_pss_tree_mib'))} |"
        )
    by_size = {r["clusters"]: r for r in results}
    verdicts = []
    for size, target in TARGET_RENDER_S.items():
        if size in by_size:
            took = by_size[size]["render_s"]
            verdict = "ok" if took <= target else "MISSED"
            verdicts.append(f"render {size}: {took:.1f} s ({verdict}, target {target:.0f} s)")
    if 1000 in by_size and 2000 in by_size:
        growth = by_size[2000]["render_s"] / by_size[1000]["render_s"]
        verdicts.append(f"time(2000)/time(1000): {growth:.2f} ({'ok' if growth <= TARGET_GROWTH else 'MISSED'}, "
                        f"target {TARGET_GROWTH})")
    if results:
        largest = results[-1]
        # the memory the render and its workers use together (PSS, sampled), else the render's own peak RSS
        rss = largest.get("peak_pss_tree_mib") or largest["peak_rss_mib"]
        verdicts.append(f"peak memory at {largest['clusters']} (PSS of the render and its workers): {rss:.0f} MiB "
                        f"({'ok' if rss <= TARGET_RSS_MIB else 'MISSED'}, target {TARGET_RSS_MIB:.0f} MiB)")
    return "\n".join([*lines, "", *verdicts])


#: Edit-loop target (issue 15, 2 cores): render + build after a one-cluster edit of a 1000-cluster fleet, seconds.
TARGET_EDIT_LOOP_S = 1.0
EDIT_LOOP_SIZES = (1000,)


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed_edit_loop(root: Path, options: BuildOptions) -> dict[str, Any]:
    """In a fresh process: ``render()`` (its plan timed inside it) then ``build_fleet()`` as ``fleetgen render ROOT``
    and ``fleetgen build ROOT`` run them, each in wall and CPU seconds (the build's tools' CPU apart), with what
    ``measure_edit_loop`` checks: the files re-planned and written, the clusters rebuilt, every built file's
    digest."""
    from generator.render import pipeline

    planning: list[tuple[float, float, int]] = []
    plan = pipeline.plan

    def timed_plan(*args: Any, **kwargs: Any) -> Any:  # render() as it is, its plan timed
        started, cpu = time.perf_counter(), _cpu_seconds()
        rendered = plan(*args, **kwargs)
        planning.append((time.perf_counter() - started, _cpu_seconds() - cpu, rendered.planned_clusters))
        return rendered

    pipeline.plan = timed_plan
    try:
        started, cpu = time.perf_counter(), _cpu_seconds()
        changes = pipeline.render(root, root / "out")  # `fleetgen render ROOT`
        edit_render_s, edit_render_cpu_s = time.perf_counter() - started, _cpu_seconds() - cpu
    finally:
        pipeline.plan = plan
    (edit_plan_s, edit_plan_cpu_s, replanned), = planning
    started, cpu, children = time.perf_counter(), _cpu_seconds(), _children_cpu_seconds()
    after = build_fleet(root, options)  # `fleetgen build ROOT`
    edit_build_s, edit_build_cpu_s = time.perf_counter() - started, _cpu_seconds() - cpu
    return {
        "edit_render_s": edit_render_s, "edit_render_cpu_s": edit_render_cpu_s, "edit_plan_s": edit_plan_s,
        "edit_plan_cpu_s": edit_plan_cpu_s, "replanned": replanned,
        "edit_files": len(changes.created) + len(changes.updated),
        "edit_build_s": edit_build_s, "edit_build_cpu_s": edit_build_cpu_s,
        "build_tool_cpu_s": _children_cpu_seconds() - children, "edit_stats": after.stats.summary(),
        "build_record_s": after.stats.record_seconds, "build_setup_s": after.stats.setup_seconds,
        "build_lookup_cpu_s": after.stats.lookup_cpu_seconds, "build_tool_s": after.stats.tool_seconds,
        "clusters_rebuilt": after.stats.clusters - after.stats.clusters_cached,
        "rebuilt": [name for name, cluster in after.clusters.items() if cluster.loaded],  # before reading the rest
        "digests": _digests(after),
    }


def measure_edit_loop(count: int, *, jobs: int | None, seed: int, keep: Path | None) -> dict[str, Any]:
    """The edit loop as the CLI runs it: ``render()`` then ``build_fleet()`` as ``fleetgen build`` calls it (default
    caches under the fleet root, tools found by the build). A render and a build first warm the plan cache and the
    step cache; one cluster is edited; then, in a fresh process whose imports are done before the clock starts
    (``_timed_edit_loop``), the render (its plan timed inside it) and the build after it (its parts: the render
    record or the plan, set-up, deciding which clusters changed, tool runs) are timed, each in wall and CPU
    seconds; then the same loop as two commands, imports included (``_edit_loop_as_commands``); in the same run,
    the same render without the plan cache (the full re-plan it replaces), whose bytes must be identical, and the
    same build planned instead of read from the record, whose files must be identical."""
    from generator.render import pipeline, writer
    from generator.render.record import record_path

    source = _repo_root()
    base = keep or Path(tempfile.mkdtemp(prefix=f"fleetgen-edit-{count}-"))
    options = BuildOptions(jobs=jobs, progress=False)  # as `fleetgen build ROOT`: the step cache under ROOT
    try:
        root = base / "fleet-root"
        names = make_fleet(source, root, count, seed)
        if TOOLS_DIR_ENV not in os.environ and tools_dir(source).is_dir():  # the fleet root's .tools: this repo's
            (root / ".tools").symlink_to(tools_dir(source), target_is_directory=True)
        started = time.perf_counter()
        pipeline.render(root, root / "out")
        first_render_s = time.perf_counter() - started
        started = time.perf_counter()
        before = _digests(build_fleet(root, options))
        cold_s = time.perf_counter() - started
        edited = names[len(names) // 2]
        edit_one_cluster(root, edited)
        # timed in a fresh process, as the CLI runs (its imports done before the clock starts): this process holds
        # what the cold render and build above left, which a command never has (a larger heap to fork and collect)
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            timed = pool.submit(_timed_edit_loop, root, options).result()
        rebuilt, now = timed["rebuilt"], timed["digests"]
        changed = sorted({p.split("/", 1)[0] for p in set(before) | set(now) if before.get(p) != now.get(p)})
        if changed != [edited] or rebuilt != [edited]:
            raise FleetgenError(f"one-cluster edit of {edited} changed {changed}, rebuilt {rebuilt}")
        if timed["build_record_s"] == 0:
            raise FleetgenError("the build after the render planned again instead of using the render's record")
        record_path(root).rename(record_path(root).with_suffix(".aside"))
        try:
            started = time.perf_counter()
            planned = build_fleet(root, options)  # the same build, planned as before the render record
            planned_build_s = time.perf_counter() - started
        finally:
            record_path(root).with_suffix(".aside").rename(record_path(root))
        if _digests(planned) != now:
            raise FleetgenError("the build through the render record differs from the build that plans")
        started, cpu = time.perf_counter(), _cpu_seconds()
        full = pipeline.plan(root)
        full_changes = writer.compare(root / "out", full.files)
        full_render_s, full_render_cpu_s = time.perf_counter() - started, _cpu_seconds() - cpu
        incremental = pipeline.plan(root, pipeline.plan_cache_dir(root))
        if incremental.files != full.files or not full_changes.clean:
            raise FleetgenError("the incremental render differs from a full render")
        cli_render_s, cli_build_s = _edit_loop_as_commands(root, names[len(names) // 3], len(names))
        return {
            "clusters": count, "files": len(full.files), "first_render_s": first_render_s, "cold_s": cold_s,
            **{key: value for key, value in timed.items() if key not in ("rebuilt", "digests")},
            "edit_write_s": timed["edit_render_s"] - timed["edit_plan_s"],
            "edit_write_cpu_s": timed["edit_render_cpu_s"] - timed["edit_plan_cpu_s"],
            "planned_build_s": planned_build_s,
            "full_render_s": full_render_s, "full_render_cpu_s": full_render_cpu_s,
            "cli_render_s": cli_render_s, "cli_build_s": cli_build_s,
            "load_average": os.getloadavg()[0],
        }
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)


def _edit_loop_as_commands(root: Path, name: str, count: int) -> tuple[float, float]:
    """The edit loop as a person runs it: another cluster edited, then ``fleetgen render ROOT`` and ``fleetgen build
    ROOT``, each a fresh process (its imports included), timed by the wall clock."""
    edit_one_cluster(root, name)
    fleetgen = Command((sys.executable, "-m", "generator.cli"))
    started = time.perf_counter()
    fleetgen.run("render", str(root), cwd=_repo_root())
    rendered = time.perf_counter()
    built = fleetgen.run("build", str(root), cwd=_repo_root())
    finished = time.perf_counter()
    if f"{count - 1} of {count} clusters unchanged" not in built:
        raise FleetgenError(f"fleetgen build after editing {name} rebuilt more than it: {built.strip()}")
    return rendered - started, finished - rendered


def report_edit_loop(results: Sequence[Mapping[str, Any]]) -> str:
    """The edit-loop table (as the README shows it), where each part's time goes, and the verdict on the target."""
    lines = [
        "| clusters | render after a one-cluster edit (CPU) | the same render without the plan cache (CPU) "
        "| build after it (CPU) | clusters rebuilt | render + build | load average |",
        "|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for r in results:
        loop = r["edit_render_s"] + r["edit_build_s"]
        lines.append(
            f"| {r['clusters']} | {r['edit_render_s']:.1f} s ({r['edit_render_cpu_s']:.1f} s) "
            f"| {r['full_render_s']:.1f} s ({r['full_render_cpu_s']:.1f} s) "
            f"| {r['edit_build_s']:.2f} s ({r['edit_build_cpu_s']:.2f} s) | {r['clusters_rebuilt']} "
            f"| {loop:.1f} s | {r['load_average']:.1f} |"
        )
        verdicts.append(
            f"edit loop at {r['clusters']}: {loop:.1f} s ({'ok' if loop <= TARGET_EDIT_LOOP_S else 'MISSED'}, "
            f"target {TARGET_EDIT_LOOP_S:.0f} s); incremental render {r['full_render_s'] / r['edit_render_s']:.1f}x "
            f"faster than the full one in the same run; {r['replanned']} cluster(s) re-planned, "
            f"{r['edit_files']} file(s) written\n"
            f"  render: plan {r['edit_plan_s']:.2f} s ({r['edit_plan_cpu_s']:.2f} s CPU), "
            f"write and record {r['edit_write_s']:.2f} s ({r['edit_write_cpu_s']:.2f} s CPU)\n"
            f"  build (through the render's record; {r['planned_build_s']:.2f} s when it plans instead): "
            f"record {r['build_record_s']:.2f} s, set-up {r['build_setup_s']:.2f} s, deciding what changed "
            f"{r['build_lookup_cpu_s']:.2f} s CPU, tool runs {r['build_tool_s']:.2f} s "
            f"({r['build_tool_cpu_s']:.2f} s CPU in the tools); {r['edit_stats']}\n"
            f"  as two commands after another one-cluster edit (each process's start-up and imports included): "
            f"fleetgen render {r['cli_render_s']:.2f} s, fleetgen build {r['cli_build_s']:.2f} s")
    return "\n".join([*lines, "", *verdicts])


def report(results: Sequence[Mapping[str, Any]]) -> str:
    """A table of the measurements, the ratios and whether each target is met."""
    lines = [f"{'clusters':>8} {'resources':>9} {'render':>8} {'cold':>8} {'warm':>7} {'1-edit':>7} {'naive':>8} "
             f"{'naive/cold':>10} {'naive/1-edit':>12} {'peak RSS self/children':>24}"]
    verdicts = []
    for r in results:
        cold_ratio = r["naive_s"] / r["cold_s"]
        edit_ratio = r["naive_s"] / r["edit_s"]
        lines.append(
            f"{r['clusters']:>8} {r['resources']:>9} {r['render_s']:>7.1f}s {r['cold_s']:>7.1f}s {r['warm_s']:>6.2f}s "
            f"{r['edit_s']:>6.2f}s {r['naive_s']:>7.1f}s {cold_ratio:>9.2f}x {edit_ratio:>11.1f}x "
            f"{r['peak_rss_self_mib']:>10.0f} / {r['peak_rss_children_mib']:.0f} MiB")
        rss = r["peak_rss_self_mib"] + r["peak_rss_children_mib"]
        cold_ok, edit_ok = cold_ratio >= TARGET_COLD, edit_ratio >= TARGET_EDIT
        verdicts.append(
            f"{r['clusters']} clusters: cold {cold_ratio:.2f}x naive ({'ok' if cold_ok else 'MISSED'}, "
            f"target {TARGET_COLD}x); one-edit {edit_ratio:.0f}x ({'ok' if edit_ok else 'MISSED'}, "
            f"target {TARGET_EDIT:.0f}x); peak RSS {rss:.0f} MiB ({'ok' if rss <= TARGET_RSS_MIB else 'MISSED'}, "
            f"target {TARGET_RSS_MIB:.0f} MiB); plan {r['plan_s']:.1f}s, re-plan after edit {r['replan_s']:.1f}s; "
            f"{r['naive_steps']} naive tool runs; cold: {r['cold_stats']}; edit: {r['edit_stats']}")
    return "\n".join([*lines, "", *verdicts])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m generator.bench --clusters 100 500``."""
    parser = argparse.ArgumentParser(prog="python -m generator.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clusters", type=int, nargs="+", default=None, metavar="N", help="default: 100 500")
    parser.add_argument("--jobs", type=int, default=None, help="parallel builds (default: CPU count)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--keep", type=Path, help="keep the generated fleets and caches under this folder")
    parser.add_argument("--no-naive", action="store_true", help="skip the (slow) naive baseline")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON too")
    parser.add_argument(
        "--render-only", action="store_true",
        help=f"only render (time, re-render, one-cluster edit, peak RSS, files); sizes default to {RENDER_SIZES}",
    )
    parser.add_argument(
        "--edit-loop", action="store_true",
        help=f"only the edit loop (render + build after a one-cluster edit); sizes default to {EDIT_LOOP_SIZES}",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.clusters is None:
        args.clusters = (list(RENDER_SIZES) if args.render_only else list(EDIT_LOOP_SIZES) if args.edit_loop
                         else [100, 500])
    if args.child:
        keep = args.keep / str(args.clusters[0]) if args.keep else None
        if args.render_only:
            result = measure_render(args.clusters[0], seed=args.seed, keep=keep)
        elif args.edit_loop:
            result = measure_edit_loop(args.clusters[0], jobs=args.jobs, seed=args.seed, keep=keep)
        else:
            result = measure(args.clusters[0], jobs=args.jobs, seed=args.seed, keep=keep, naive=not args.no_naive)
        print(json.dumps(result))
        return 0
    results = []
    # every size's fleets are kept until the end: ext4 without a journal (this machine's root file system) does
    # not reuse an inode freed in the last 60 s (300 s while its inode table block is unwritten) and scans past
    # each such inode on every create (Linux >= 5.7 fs/ext4/ialloc.c recently_deleted, RECENTCY_MIN), so deleting
    # tens of thousands of files just before the next size writes as many would time the file system
    keep = args.keep or Path(tempfile.mkdtemp(prefix="fleetgen-bench-"))
    try:
        for count in args.clusters:
            results.append(_run_child(args, count, keep))
    finally:
        if args.keep is None:
            shutil.rmtree(keep, ignore_errors=True)
    print(report_render(results) if args.render_only else report_edit_loop(results) if args.edit_loop
          else report(results))
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def _descendants(pid: int) -> list[int]:
    """The live descendants of ``pid`` (Linux ``/proc``; none elsewhere)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as handle:
                for child in handle.read().split():
                    found += [int(child), *_descendants(int(child))]
    except OSError:  # gone meanwhile, or no /proc
        pass
    return found


def _pss_kib(pid: int) -> int:
    """Proportional set size of one process: its private pages plus its share of the pages it shares."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeMemory:
    """Peak of the summed PSS of this process's descendants (the measured render and its forked planning
    workers), sampled every 100 ms on a thread of the bench's parent process: forked workers share most pages
    with the render, so adding their RSS would count those pages twice; PSS splits them."""

    def __init__(self) -> None:
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="fleetgen-bench-memory", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak_kib = max(self.peak_kib, sum(_pss_kib(pid) for pid in _descendants(os.getpid())))

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _run_child(args: argparse.Namespace, count: int, keep: Path) -> dict[str, Any]:
    """One fleet size measured in a fresh process (its own peak RSS, and the peak PSS of it and its workers),
    its fleets kept under ``keep``."""
    print(f"benchmarking {count} clusters ...", file=sys.stderr, flush=True)
    extra = [*(("--jobs", str(args.jobs)) if args.jobs else ()), "--keep", str(keep),
             *(("--no-naive",) if args.no_naive else ()), *(("--render-only",) if args.render_only else ()),
             *(("--edit-loop",) if args.edit_loop else ())]
    with TreeMemory() as memory:
        out = Command((sys.executable, "-m", "generator.bench")).run(
            "--child", "--clusters", str(count), "--seed", str(args.seed), *extra, timeout=6 * 3600,
            cwd=_repo_root())
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["peak_pss_tree_mib"] = memory.peak_kib / 1024
    return result


if __name__ == "__main__":
    sys.exit(main())
