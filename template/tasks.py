"""Tasks of this fleet repo (`invoke --list`). After every inventory edit: `invoke render`, then `invoke test`.

Everything runs offline. `invoke tools` finds helm and kustomize on PATH or installs pinned, sha256-checked
binaries into .tools/ (or $FLEETGEN_TOOLS_DIR); rendering needs neither, building golden files needs both.
"""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import Context, task

ROOT = Path(__file__).resolve().parent
FLEETGEN = f"{sys.executable} -m generator.cli"
#: What yamllint checks: the inventory you write and everything fleetgen renders.
YAML_PATHS = (
    "inventory",
    "overlays",
    "fleet",
    "infrastructure",
    "golden",
    ".yamllint",
    ".pre-commit-config.yaml",
    ".github",
    ".gitlab-ci.yml",
)


def _fleetgen(c: Context, arguments: str) -> None:
    with c.cd(str(ROOT)):
        c.run(f"{FLEETGEN} {arguments}", echo=True)


def _shard(shard: str) -> str:
    return f" --shard {shard}" if shard else ""


@task
def tools(c: Context) -> None:
    """Find or install the pinned helm and kustomize (needed to build golden files, not to render)."""
    _fleetgen(c, f"tools --install --root {ROOT}")


@task
def render(c: Context, force: bool = False) -> None:
    """Render fleet/ and the infrastructure repo from inventory/ and overlays/, then the golden files."""
    _fleetgen(c, f"render {ROOT} --out {ROOT}" + (" --force" if force else ""))
    tools(c)
    _fleetgen(c, f"golden {ROOT} --update")


@task
def check(c: Context) -> None:
    """Fail if the committed output is stale against the inventory (writes nothing)."""
    _fleetgen(c, f"render {ROOT} --out {ROOT} --check")


@task
def golden(c: Context, update: bool = False, shard: str = "") -> None:
    """Compare every cluster's build with golden/ (exit 1 on any difference), or --update it."""
    _fleetgen(c, f"golden {ROOT}" + (" --update" if update else "") + _shard(shard))


@task
def validate(c: Context, shard: str = "") -> None:
    """Evaluate the fleet's policies on every cluster's build (Deny fails), schema-check it, scan for secrets.

    Every object is schema-checked strictly: core kinds, and custom resources against fleetgen's built-in CRD
    catalogue; upstream CRD files under crds/ in this repo (one folder per project), if any, add to it.
    """
    crds = f" --crds {ROOT / 'crds'}" if (ROOT / "crds").is_dir() else ""
    _fleetgen(c, f"validate {ROOT}{crds}" + _shard(shard))


@task(pre=[tools], help={"app": "the app to promote", "to": "target environment", "from_": "source environment "
                         "(default: the previous one)", "force": "allow skipping an environment"})
def promote(c: Context, app: str, to: str, from_: str = "", force: bool = False) -> None:
    """Run in environment TO the image APP runs in the previous environment (edits overlays/TO.yaml in place)
    and print the blast radius; then `invoke render`, commit, and open a pull request (prod needs SRE review)."""
    options = (f" --from {from_}" if from_ else "") + (" --force" if force else "")
    _fleetgen(c, f"promote {ROOT} {app} --to {to}{options}")


@task
def lock(c: Context) -> None:
    """Fetch every upstream chart as Flux resolves it and pin its sha256 in fleetgen.lock (then `invoke golden
    --update` templates it into the golden files; review the diff)."""
    tools(c)
    _fleetgen(c, f"lock {ROOT}")


@task
def diff(c: Context, base: str = "origin/HEAD", format: str = "text") -> None:
    """What every cluster receives differently between BASE (a git ref) and the working tree."""
    _fleetgen(c, f"diff {ROOT} --base {base} --format {format}")


@task
def lint(c: Context) -> None:
    """yamllint (strict) on the inventory, the overlays and the rendered output."""
    paths = " ".join(p for p in YAML_PATHS if (ROOT / p).exists())
    with c.cd(str(ROOT)):
        c.run(f"{sys.executable} -m yamllint --strict -c .yamllint {paths}", echo=True)


@task(help={"shard": "I/N: verify only the I-th of N shares of the clusters (CI runs the shares in parallel)"})
def verify(c: Context, shard: str = "") -> None:
    """Golden files and policies of every cluster (needs `invoke tools`)."""
    golden(c, shard=shard)
    validate(c, shard=shard)


@task
def test(c: Context) -> None:
    """Everything CI runs: output up to date, YAML lint, golden files, policies."""
    check(c)
    lint(c)
    tools(c)
    verify(c)
