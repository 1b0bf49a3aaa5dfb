"""Shared fixtures: a writable copy of the reference fleet, tree hashing, the real tools."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def copy_reference_fleet(dest: Path) -> Path:
    """Copy inventory/, overlays/ and charts/ of the reference fleet into ``dest``."""
    for name in ("inventory", "overlays", "charts"):
        shutil.copytree(REPO / name, dest / name)
    return dest


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root`` (relative paths), to prove a tree was not touched."""
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def fleet_root(tmp_path: Path) -> Path:
    """A fresh, editable copy of the reference fleet."""
    return copy_reference_fleet(tmp_path / "fleet-root")
