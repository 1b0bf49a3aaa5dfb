"""Helpers shared by the build, golden and diff tests: the real tools, one step cache per test session,
and the reference fleet built once per session."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from conftest import REPO

from generator.build.fleet import build_fleet
from generator.build.model import BuildOptions, FleetBuild
from generator.tools import Toolset, find_tools


@cache
def tools() -> Toolset:
    """The helm and kustomize of the repository (PATH or .tools/)."""
    return find_tools(REPO)


@cache
def shared_cache_dir() -> Path:
    """A step cache shared by every build of this test session (removed at exit)."""
    path = Path(tempfile.mkdtemp(prefix="fleetgen-test-cache-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def options(**overrides: Any) -> BuildOptions:
    """Build options for tests: the session cache, no progress bar."""
    return BuildOptions(cache_dir=shared_cache_dir(), progress=False, **overrides)


@cache
def reference_build() -> FleetBuild:
    """The reference fleet (this repository), built once per session."""
    return build_fleet(REPO, options(), tools=tools())


def warm_synthetic_fleet(base: Path, count: int = 3, seed: int = 7) -> tuple[Path, list[str]]:
    """A synthetic fleet of ``count`` clusters at ``base/fleet``, rendered into its ``out/`` and built once (its
    step cache, render record and build state written under its ``.cache``); with its cluster names."""
    from generator.bench import make_fleet
    from generator.render.pipeline import render

    root = base / "fleet"
    names = make_fleet(REPO, root, count, seed=seed)
    render(root, root / "out")
    build_fleet(root, BuildOptions(progress=False, jobs=2), tools=tools())
    return root, names
