"""The catalogue of careless and hostile inputs (tests/bad_inputs/<case>/): every command a user could run on
each case exits 2 with the case's message, prints no traceback, leaves every file byte-identical, and stays
within a time and memory limit (each case runs in its own process under RLIMIT_AS and a timeout).

A case folder holds ``case.yaml`` (why, edits, symlinks/FIFOs/folders to make, generated files, the commands
that read what it breaks, the expected exit code, message and problem count), ``files/`` (copied over a copy
of the reference fleet, byte for byte) and ``outside/`` (copied next to the fleet root, i.e. outside it).
Grow it with every input bug found.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, copy_reference_fleet

CASES_DIR = Path(__file__).resolve().parent / "bad_inputs"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "case.yaml").is_file())
WORKER = Path(__file__).resolve().parent / "corpus_worker.py"
MEMORY_CAP = 1024 * 1024 * 1024  # RLIMIT_AS (virtual) of the worker; the peak RSS is held to `mib` below
DEFAULT_LIMITS = {"seconds": 2.0, "mib": 200}
POD = (
    "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: default}\n"
    "spec:\n  containers: [{name: c, image: x}]\n"
)


def _command(name: str, policy_file: str) -> list[str]:
    """The argv of one command, run with the fleet root as the working directory."""
    return {
        "render": ["render", ".", "--out", "out"],
        "check": ["render", ".", "--out", "out", "--check"],
        "explain": ["explain", "dev-us-east-1", "--root", "."],
        "build": ["build", ".", "--out", "build-out"],
        "golden": ["golden", "."],
        "validate": ["validate", "."],
        "diff": ["diff", ".", "--base", "HEAD"],
        "policy": ["policy", "test", ".", "--cluster", "dev-us-east-1", policy_file],
    }[name]


ALL_COMMANDS = ["render", "check", "explain", "build", "golden", "validate", "diff", "policy"]


def _digest(top: Path) -> dict[str, str]:
    """sha256 of every regular file below ``top`` (symlinks listed by target, not followed)."""
    found: dict[str, str] = {}
    for path in sorted(top.rglob("*")):
        rel = path.relative_to(top).as_posix()
        if path.is_symlink():
            found[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = "special"
    return found


def prepare(case: str, top: Path) -> tuple[Path, dict[str, Any]]:
    """Lay out one case below ``top``: the fleet root at ``top/fleet``, outside files beside it."""
    folder = CASES_DIR / case
    spec: dict[str, Any] = yaml.safe_load((folder / "case.yaml").read_text(encoding="utf-8"))
    root = copy_reference_fleet(top / "fleet")
    for sub, dest in (("files", root), ("outside", top)):
        if (folder / sub).is_dir():
            shutil.copytree(folder / sub, dest, dirs_exist_ok=True)
    for edit in spec.get("edit", []):
        path = root / edit["file"]
        text = path.read_text(encoding="utf-8")
        assert edit["old"] in text, f"{case}: {edit['old']!r} not in {edit['file']}"
        path.write_text(text.replace(edit["old"], edit["new"], 1), encoding="utf-8")
    for rel, gen in spec.get("generate", {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(gen["head"] + gen["repeat"] * gen["times"] + gen["tail"], encoding="utf-8")
    for rel, target in spec.get("symlink", {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(target)
    for rel in spec.get("fifo", []):
        os.mkfifo(root / rel)
    for rel in spec.get("mkdir", []):
        (root / rel).mkdir(parents=True)
    if "manifest_escape" in spec:
        target = spec["manifest_escape"]
        (root / "out/.fleetgen").mkdir(parents=True)
        digest = hashlib.sha256((root / "out" / target).read_bytes()).hexdigest()
        manifest = {"generator": "fleetgen", "files": {target: digest}}
        (root / "out/.fleetgen/manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (top / "pod.yaml").write_text(POD, encoding="utf-8")
    return root, spec


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_worker(jobs: list[tuple[Path, list[str]]], timeout: float) -> dict[str, Any]:
    """Run fleetgen commands (each in its folder) in one fresh process under RLIMIT_AS and a timeout; the
    worker's JSON report."""
    env = {**os.environ, "FLEETGEN_TOOLS_DIR": os.environ.get("FLEETGEN_TOOLS_DIR", str(REPO / ".tools"))}
    done = subprocess.run(
        [sys.executable, str(WORKER), json.dumps([{"cwd": str(cwd), "argv": argv} for cwd, argv in jobs])],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_limit_memory,
        check=False,
    )
    assert done.returncode == 0, f"worker failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def _failures(case: str, name: str, spec: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """What is wrong with one command's result on one case (empty when it behaved)."""
    expect = spec["expect"]
    limits = {**DEFAULT_LIMITS, **spec.get("limits", {})}
    output = result["output"]
    where = f"{case} / {name}"
    wrong = []
    if "Traceback" in output:
        wrong.append(f"{where}: traceback")
    if result["code"] != expect["exit"]:
        wrong.append(f"{where}: exit {result['code']}, expected {expect['exit']}")
    if not re.search(expect["output"], output):
        wrong.append(f"{where}: no {expect['output']!r}")
    if "problems" in expect and f"\n{expect['problems']} problem(s) found" not in f"\n{output}":
        wrong.append(f"{where}: not exactly {expect['problems']} problem(s)")
    # CPU time, not wall time: the limit must hold on a loaded CI machine too (the timeout bounds the wall)
    if result["cpu_seconds"] > limits["seconds"]:
        wrong.append(f"{where}: {result['cpu_seconds']:.2f} s CPU > {limits['seconds']} s")
    return [f"{w}\n{output}" for w in wrong]


@pytest.mark.parametrize("command", ALL_COMMANDS)
def test_bad_inputs(command: str, tmp_path: Path) -> None:
    """Every case that ``command`` reads, in one process: exit code, message, problem count, no traceback,
    nothing written, CPU time per case, and the process's peak RSS (so every case's) within the limit."""
    cases = [case for case in CASES if command in _spec(case).get("commands", ALL_COMMANDS)]
    prepared = {case: prepare(case, tmp_path / case) for case in cases}
    before = {case: _digest(tmp_path / case) for case in cases}
    jobs = [(root, _command(command, spec.get("policy_file", "../pod.yaml"))) for root, spec in prepared.values()]
    report = run_worker(jobs, timeout=300)
    wrong: list[str] = []
    for case, result in zip(cases, report["results"], strict=True):
        wrong.extend(_failures(case, command, prepared[case][1], result))
        if _digest(tmp_path / case) != before[case]:
            wrong.append(f"{case} / {command}: files changed")
    assert not wrong, "\n".join(wrong)
    assert report["peak_mib"] <= DEFAULT_LIMITS["mib"], f"peak RSS {report['peak_mib']:.0f} MiB"


def _spec(case: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((CASES_DIR / case / "case.yaml").read_text(encoding="utf-8"))
    return spec


@pytest.mark.parametrize("case", ["alias-bomb", "deep-flow-nesting-100k", "deep-block-nesting"])
def test_hostile_input_fails_fast_and_small(case: str, tmp_path: Path) -> None:
    """Acceptance: an alias bomb and 100k-deep nesting fail within 2 s (CPU, the whole process: start-up,
    imports and all) and 200 MiB peak RSS, in a fresh process."""
    root, _ = prepare(case, tmp_path)
    started = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-m", "generator.cli", "render", str(root), "--out", str(root / "out")],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_memory,
        check=False,
    )
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime - started.ru_utime - started.ru_stime
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert cpu <= 2.0, f"{cpu:.2f} s CPU"
    assert usage.ru_maxrss / 1024 <= 200, f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB"
    assert not (root / "out").exists()


def test_catalogue_covers_every_command() -> None:
    """Every command that reads fleet input appears in the catalogue, and every case says why it exists."""
    used: set[str] = set()
    for case in CASES:
        spec = _spec(case)
        assert spec.get("why"), case
        used.update(spec.get("commands", ALL_COMMANDS))
    assert used == set(ALL_COMMANDS)


def test_schema_command_reads_no_input(tmp_path: Path) -> None:
    """`fleetgen schema` reads nothing from the fleet root, so a broken fleet cannot break it."""
    root, _ = prepare("alias-bomb", tmp_path)
    report = run_worker([(root, ["schema"])], timeout=60)
    assert report["results"][0]["code"] == 0
    schema = json.loads(report["results"][0]["output"])
    assert {"$defs", "anyOf"} <= set(schema)  # one schema for any inventory or overlay file
