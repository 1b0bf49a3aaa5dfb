"""Rendering at scale keeps its bytes: a whole synthetic render is pinned by one hash.

The hash was computed on the code before the scaling work (issue 15), so every optimisation of loading,
planning or rendering must reproduce today's output byte for byte. A change that intentionally changes
rendered output (a template, a model default, the reference inventory the synthetic fleet copies) updates
``SYNTHETIC_50`` together with ``fleetgen golden . --update``, after reading the golden diff.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from generator.bench import make_fleet
from generator.render.pipeline import plan

REPO = Path(__file__).resolve().parent.parent
#: sha256 over every (path, text) of the 50-cluster synthetic fleet's render (seed bench.SEED), and its file count.
SYNTHETIC_50 = ("5f3f5e5cd3f97d171fd818981426569826752cfc4f94db5ce8d5280d381ba575", 1027)


def render_digest(files: dict[str, str]) -> str:
    """One sha256 over every path and text of a render, in path order."""
    digest = hashlib.sha256()
    for path, text in sorted(files.items()):
        digest.update(path.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()


def test_synthetic_render_is_byte_identical(tmp_path: Path) -> None:
    root = tmp_path / "fleet"
    make_fleet(REPO, root, 50)
    files = plan(root).files
    assert (render_digest(files), len(files)) == SYNTHETIC_50


def test_last_slash28_is_the_last_listed_subnet() -> None:
    import ipaddress
    import random

    from generator.inventory.network import last_slash28

    rng = random.Random(15)
    for _ in range(300):
        prefix = rng.randint(8, 28)
        vpc = ipaddress.IPv4Network((rng.getrandbits(32), prefix), strict=False)
        assert last_slash28(vpc) == list(vpc.subnets(new_prefix=28))[-1]


def test_render_only_bench_measures_a_small_fleet(tmp_path: Path) -> None:
    from generator.bench import measure_render, report_render

    result = measure_render(12, seed=7, keep=tmp_path)  # raises if a re-render changes files or an edit none
    assert result["files"] == len(plan(tmp_path / "fleet-root").files)
    assert 1 <= result["edit_files"] < result["files"]
    assert report_render([result]).splitlines()[2].startswith(f"| 12 | {result['files']:,} |")
