"""The render record (issue 15): ``build`` after ``render`` takes the plan from the render's record and output tree
instead of planning again, and gives exactly the build a plan gives. Any doubt about the record (corrupt,
tampered, made from other inputs, on another day, for an output tree changed since) makes the build plan as
before; the inventory warnings the render issued are issued again."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import types
import warnings
from pathlib import Path

import pytest
from _buildkit import tools, warm_synthetic_fleet
from conftest import REPO

from generator.bench import edit_one_cluster
from generator.build.fleet import build_fleet
from generator.build.model import BuildOptions, FleetBuild
from generator.errors import InventoryError, InventoryWarning
from generator.render import pipeline, record
from generator.render.pipeline import render
from generator.render.record import inputs_digest, read_record, record_path
from generator.tools import TOOLS_DIR_ENV, tools_dir

pytestmark = pytest.mark.slow  # cold builds of a three-cluster synthetic fleet with the real tools


def _build(root: Path, **options: object) -> FleetBuild:
    return build_fleet(root, BuildOptions(progress=False, jobs=2, **options), tools=tools())  # type: ignore[arg-type]


def _planned(root: Path, **options: object) -> FleetBuild:
    """The same build, planned (the record set aside for it)."""
    path = record_path(root)
    aside = path.with_name("aside.json")
    if path.exists():
        path.rename(aside)
    try:
        build = _build(root, **options)
        assert build.stats.plan_seconds > 0 and build.stats.record_seconds == 0
        return build
    finally:
        if aside.exists():
            aside.rename(path)


def _same(one: FleetBuild, other: FleetBuild) -> None:
    """Two builds are the same: every cluster's files (so every resource's digest), Kustomizations, warnings."""
    digests = [{p: hashlib.sha256(t.encode()).hexdigest() for p, t in b.files().items()} for b in (one, other)]
    assert digests[0] == digests[1] and digests[0]
    assert list(one.clusters) == list(other.clusters)
    for name, cluster in one.clusters.items():
        assert cluster.kustomizations == other.clusters[name].kustomizations
        assert cluster.warnings == other.clusters[name].warnings


def _through_record(build: FleetBuild) -> bool:
    return build.stats.record_seconds > 0 and build.stats.plan_seconds == 0


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A three-cluster synthetic fleet, rendered, with its step cache warmed by a build."""
    return warm_synthetic_fleet(tmp_path_factory.mktemp("build-record"))


@pytest.fixture()
def fleet(warm: tuple[Path, list[str]], tmp_path: Path) -> tuple[Path, list[str]]:
    """A copy of the warm fleet (its step cache included) this test may change, rendered again (a record names
    its root and output folder, so the copied one is not used)."""
    root, names = warm
    shutil.copytree(root, tmp_path / "fleet", symlinks=True)
    assert read_record(tmp_path / "fleet") is None
    render(tmp_path / "fleet", tmp_path / "fleet" / "out")
    assert read_record(tmp_path / "fleet") is not None
    return tmp_path / "fleet", names


def test_the_build_after_a_render_and_a_one_cluster_edit_is_the_planned_build(fleet: tuple[Path, list[str]]) -> None:
    root, names = fleet
    edited = names[1]
    edit_one_cluster(root, edited)
    assert read_record(root) is None  # the inventory changed since the render
    render(root, root / "out")
    fast = _build(root)
    assert _through_record(fast)
    assert [n for n, c in fast.clusters.items() if c.loaded] == [edited]  # the others are lookups
    assert fast.stats.clusters_cached == len(names) - 1
    _same(fast, _planned(root))
    _same(fast, _build(root, use_cache=False))  # and the build with no cache at all
    again = _build(root)
    assert _through_record(again) and again.stats.clusters_cached == len(names)
    _same(again, fast)


def test_a_build_without_the_step_cache_does_not_use_the_record(fleet: tuple[Path, list[str]]) -> None:
    root, _ = fleet
    build = _build(root, use_cache=False)
    assert build.stats.plan_seconds > 0 and build.stats.record_seconds == 0


@pytest.mark.parametrize("damage", ["truncated", "flipped", "tampered", "other format", "other root"])
def test_a_damaged_record_is_not_used(fleet: tuple[Path, list[str]], damage: str) -> None:
    root, _ = fleet
    path = record_path(root)
    text = path.read_text(encoding="utf-8")
    _, _, body = text.partition("\n")
    data = json.loads(body)
    if damage == "truncated":
        path.write_text(text[: len(text) // 2], encoding="utf-8")
    elif damage == "flipped":
        path.write_text(text.replace('"fleet/', '"fleeT/', 1), encoding="utf-8")
    else:
        if damage == "tampered":  # a digest changed and the record's own check recomputed: the output is checked
            rel = next(r for r in data["digests"] if r.endswith("kustomization.yaml"))
            data["digests"][rel] = hashlib.sha256(b"something else").hexdigest()
        elif damage == "other format":
            data["format"] = "fleetgen-render-record/0"
        else:
            data["inputs"] = inputs_digest(REPO, datetime.date.today())
        body = json.dumps(data)
        path.write_text(f"{hashlib.sha256(body.encode()).hexdigest()}\n{body}", encoding="utf-8")
    if damage == "tampered":
        assert read_record(root) is not None
        build = _build(root, cache_dir=root / "empty-cache")  # nothing cached: every cluster reads its files
    else:
        assert read_record(root) is None
        build = _build(root)
    assert build.stats.plan_seconds > 0
    _same(build, _planned(root))


@pytest.mark.parametrize("change", ["inventory", "overlay", "chart", "new chart file"])
def test_an_input_changed_after_the_render_is_planned(fleet: tuple[Path, list[str]], change: str) -> None:
    root, names = fleet
    if change == "inventory":
        edit_one_cluster(root, names[0])
    elif change == "overlay":
        overlay = root / "overlays" / "dev.yaml"
        overlay.write_text(overlay.read_text(encoding="utf-8").replace("eventSeverity: info", "eventSeverity: error"),
                           encoding="utf-8")
    elif change == "chart":
        template = root / "charts" / "service" / "templates" / "service.yaml"
        template.write_text(template.read_text(encoding="utf-8") + "{{/* changed */}}\n", encoding="utf-8")
    else:
        (root / "charts" / "service" / "templates" / "NOTES.txt").write_text("hello\n", encoding="utf-8")
    assert read_record(root) is None
    build = _build(root)
    assert build.stats.plan_seconds > 0
    _same(build, _build(root, use_cache=False))


@pytest.mark.parametrize("change", ["edited", "deleted", "no output"])
def test_an_output_file_changed_after_the_render_makes_the_build_plan(fleet: tuple[Path, list[str]],
                                                                     change: str) -> None:
    root, names = fleet
    target = root / "out" / "fleet" / "clusters" / names[0] / "kustomization.yaml"
    assert target.is_file()
    if change == "edited":  # a hand edit the build must not see: the build is the plan's
        target.write_text(target.read_text(encoding="utf-8") + "# edited by hand\n", encoding="utf-8")
    elif change == "deleted":
        target.unlink()
    else:
        shutil.rmtree(root / "out")
    assert read_record(root) is not None  # the inputs did not change: the output is checked file by file
    build = _build(root, cache_dir=root / "empty-cache")  # nothing cached: every cluster reads its files
    assert build.stats.plan_seconds > 0
    _same(build, _planned(root))


def test_a_record_from_another_day_is_not_used(fleet: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """The date decides which policy exceptions have expired: an exception valid on the day of the render has
    expired the next day, and the build then refuses the inventory as a plan would."""
    root, _ = fleet
    today = datetime.date.today()
    (root / "inventory" / "exceptions.yaml").write_text(f"""\
exceptions:
  - name: legacy-batch
    owner: payments
    reason: The legacy settlement batch needs host networking until its rewrite ships (PAY-1234).
    expires: {today.isoformat()}
    policies: [disallow-host-namespaces]
    namespaces: [payments]
""", encoding="utf-8")
    render(root, root / "out")
    assert _through_record(_build(root))

    class Tomorrow(datetime.date):
        @classmethod
        def today(cls) -> Tomorrow:
            return cls.fromordinal(datetime.date.today().toordinal() + 1)

    shifted = types.ModuleType("datetime")
    shifted.__dict__.update(datetime.__dict__)
    shifted.date = Tomorrow  # type: ignore[attr-defined]
    from generator.inventory import checks

    for module in (checks, record, pipeline):
        monkeypatch.setattr(module, "datetime", shifted)
    assert read_record(root) is None
    with pytest.raises(InventoryError, match="expired"):
        _build(root)


def test_the_render_warnings_are_issued_again(fleet: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = fleet
    loader = pipeline.load_inventory  # type: ignore[attr-defined]

    def load_with_warnings(*args: object, **kwargs: object) -> object:
        warnings.warn(InventoryWarning("inventory/clusters/synthetic.yaml:3:3: clusters.0: first"), stacklevel=2)
        warnings.warn(InventoryWarning("inventory/clusters/synthetic.yaml:9:3: clusters.1: second"), stacklevel=2)
        return loader(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "load_inventory", load_with_warnings)
    shown = ["inventory/clusters/synthetic.yaml:3:3: clusters.0: first",
             "inventory/clusters/synthetic.yaml:9:3: clusters.1: second"]
    for run in ("render", "record", "plan"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if run == "render":
                render(root, root / "out")
            elif run == "record":
                assert _through_record(_build(root))
            else:
                _planned(root)
        assert [str(w.message) for w in caught if w.category is InventoryWarning] == shown, run


def test_a_render_that_fails_leaves_no_record(fleet: tuple[Path, list[str]]) -> None:
    root, _ = fleet
    (root / "inventory" / "broken.yaml").write_text("clusters: 3\n", encoding="utf-8")
    with pytest.raises(InventoryError):
        render(root, root / "out")
    assert not record_path(root).exists()


_BUILD_MODULES = """
import json, sys
from generator.cli import main
code = main(["build", sys.argv[1]])
heavy = ("pydantic", "jinja2", "generator.inventory", "generator.render.pipeline", "generator.render.planner")
print(json.dumps({"code": code, "loaded": sorted(m for m in sys.modules if m.startswith(heavy))}))
"""


def test_a_build_through_the_record_imports_no_planner(fleet: tuple[Path, list[str]]) -> None:
    """``fleetgen build`` after ``fleetgen render`` reads the record and the output tree: it imports neither the
    inventory models (pydantic) nor the planner (Jinja), 0.4 s and more of a command's start-up."""
    root, names = fleet
    environment = {**os.environ, TOOLS_DIR_ENV: os.environ.get(TOOLS_DIR_ENV) or str(tools_dir(REPO))}
    done = subprocess.run([sys.executable, "-c", _BUILD_MODULES, str(root)], capture_output=True, text=True,
                          check=True, cwd=REPO, env=environment)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {"code": 0, "loaded": []}
    assert f"{len(names)} of {len(names)} clusters unchanged" in done.stdout
    record_path(root).unlink()  # without the record it plans, and so imports them
    done = subprocess.run([sys.executable, "-c", _BUILD_MODULES, str(root)], capture_output=True, text=True,
                          check=True, cwd=REPO, env=environment)
    assert "generator.render.pipeline" in json.loads(done.stdout.strip().splitlines()[-1])["loaded"]
