"""Shared fixtures: a writable copy of the reference fleet, tree hashing, the real tools."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _shared_crds() -> Path | None:
    """The upstream CRD copies next to a development checkout (``../shared/crds`` walking up), if any.

    Test data only: fleetgen itself validates with its built-in catalogue. Tests that compare with upstream
    files fleetgen does not ship (or re-vendor the catalogue from them) use this and skip without it.
    """
    for directory in (REPO, *REPO.parents):
        candidate = directory.parent / "shared" / "crds"
        if candidate.is_dir():
            return candidate
    return None


SHARED_CRDS = _shared_crds()
needs_shared_crds = pytest.mark.skipif(
    SHARED_CRDS is None,
    reason="compares with upstream CRD files fleetgen does not ship: needs a copy in ../shared/crds "
    "(a fresh clone has none)",
)


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
