"""Releases: a git tag is fleetgen's version, the scaffold pins that tag in a form pip accepts, and
`copier update` to a new tag really upgrades a scaffold (new fleetgen, migrated keys, answers = inventory).

Installs use the real pip of this interpreter's fresh virtualenvs (the stock pip ``venv`` bundles: 23.2.1 on
Python 3.11), real git tags and the real copier.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import copier
import pytest
import yaml
from test_copier import (
    AWS_ONLY,
    TEMPLATE,
    commit_all,
    conflicts,
    copy,
    git,
    load_yaml,
    make_template,
    run,
    scaffold_env,
    scaffold_environ,
)


def _script(name: str) -> ModuleType:
    """A helper script of template/.copier/, imported."""
    spec = importlib.util.spec_from_file_location(name, TEMPLATE / ".copier" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


RENDER_CHECK = (sys.executable, "-m", "generator.cli", "render", ".", "--out", ".", "--check")


def _pip_install(python: Path | str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
        cwd=cwd,
        env=env or scaffold_env(ignore_pin=False),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"pip install {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


def _fleetgen_version(fleetgen: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(fleetgen), "--version"], capture_output=True, text=True, check=True, env=env)
    return done.stdout.strip()


# --- the version is the tag -----------------------------------------------------------------------------


@pytest.mark.slow
def test_version_comes_from_the_git_tag(tmp_path: Path) -> None:
    """`git tag v9.8.7` then `pip install .` gives `fleetgen --version` = 9.8.7; no git metadata: the fallback."""
    source = make_template(tmp_path / "fleetgen")
    plain = shutil.copytree(source, tmp_path / "plain", ignore=shutil.ignore_patterns(".git"))
    commit_all(source, "release 9.8.7")  # a commit of its own (the template commit carries 1.0.0)
    git(source, "tag", "v9.8.7")
    target = tmp_path / "installed"
    # --no-deps --target: only fleetgen is built and installed (from the tag); its dependencies come from this
    # interpreter, so `fleetgen --version` runs the installed copy without downloading them again.
    _pip_install(sys.executable, "--no-deps", "--target", str(target), ".", cwd=source)
    env = {**os.environ, "PYTHONPATH": str(target)}
    assert _fleetgen_version(target / "bin" / "fleetgen", env) == "fleetgen 9.8.7"

    # a source copy without .git still installs, as the fallback version of pyproject.toml
    fallback = tmp_path / "fallback"
    _pip_install(sys.executable, "--no-deps", "--target", str(fallback), ".", cwd=plain)
    assert _fleetgen_version(fallback / "bin" / "fleetgen", {**os.environ, "PYTHONPATH": str(fallback)}) == (
        "fleetgen 0.0.0+unknown"
    )


# --- a pin every pip accepts ----------------------------------------------------------------------------


def test_relative_template_path_gives_an_absolute_pin_pip_parses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copying from a relative path pins git+file://localhost/<absolute>@tag, parsed as pip 23.2 parses it."""
    from pip._internal.vcs.versioncontrol import VersionControl
    from pip._vendor.packaging.requirements import Requirement

    template = make_template(tmp_path / "templates" / "fleetgen")
    monkeypatch.chdir(template.parent)
    dst = tmp_path / "fleet"
    with scaffold_environ():
        copier.run_copy("fleetgen", dst, vcs_ref="1.0.0", defaults=True, unsafe=True, quiet=True, skip_tasks=True)
    pin = re.search(r'^    "(fleetgen @ \S+)",$', (dst / "pyproject.toml").read_text(), re.M)
    assert pin, (dst / "pyproject.toml").read_text()
    requirement = Requirement(pin[1])  # pip's own parser: it refuses git+file:/// (empty host)
    assert requirement.url == f"git+file://localhost{template.resolve()}@1.0.0"
    url, ref, _ = VersionControl.get_url_rev_and_auth(requirement.url)
    assert (url, ref) == (f"file://localhost{template.resolve()}", "1.0.0")
    assert load_yaml(dst / ".copier-answers.yml")["fleetgen_source"] == f"git+file://localhost{template.resolve()}"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("git+file:///srv/fleetgen", "has an empty host, which pip rejects"),
        ("git+file://localhost/srv/my fleetgen", "is not a local git URL pip accepts"),
        ("git+file://localhost/srv/fleetgen@v1", "is not a local git URL pip accepts"),
        ("git+https://github.com/acme/fleetgen.git@v1.0.0", "is not a git URL for pip"),
        ("https://github.com/acme/fleetgen.git", "is not a git URL for pip"),
    ],
)
def test_fleetgen_source_validator(tmp_path: Path, source: str, message: str) -> None:
    """Sources pip would refuse (or that carry their own ref) stop the copy with a message."""
    template = make_template(tmp_path / "fleetgen")
    with pytest.raises(ValueError, match=re.escape(message)):
        copy(template, tmp_path / "fleet", {"fleetgen_source": source}, skip_tasks=True)


def test_installed_version_matches_the_pin(tmp_path: Path) -> None:
    """A release tag matches its version (a leading v is PEP 440's); a commit pin matches its +g<hash> build."""
    render_fleet = _script("render_fleet")
    assert render_fleet.matches("1.4.0", "v1.4.0") and render_fleet.matches("1.4.0", "1.4.0")
    assert not render_fleet.matches("1.3.0", "v1.4.0")
    assert not render_fleet.matches("1.4.1.dev2+g0123abcd", "v1.4.0")
    assert render_fleet.matches("1.4.1.dev2+g0123abcd", "0123abcdef0123abcdef0123abcdef0123abcdef")
    assert not render_fleet.matches("1.4.1.dev2+g0123abcd", "fedcba98" * 5)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('dependencies = [\n    # pin\n    "fleetgen @ git+file://localhost/srv/fleetgen@v1.4.0",\n]\n')
    assert render_fleet.read_pin(pyproject) == ("git+file://localhost/srv/fleetgen", "v1.4.0")


def test_reconcile_inserts_into_a_block_list_in_promotion_order(tmp_path: Path) -> None:
    """Block-style fleet.environments get `- env` lines at their indentation, comments kept."""
    reconcile = _script("reconcile_inventory")
    text = "fleet:\n  environments:  # promotion order\n    - dev\n    - staging  # soak\nother: 1\n"
    document = yaml.compose(text)
    sequence = reconcile._mapping_value(reconcile._mapping_value(document, "fleet"), "environments")
    new_text, order = reconcile.add_environments(text, sequence, ["prod", "qa", "sandbox"])
    assert order == ["sandbox", "dev", "qa", "staging", "prod"]
    assert new_text == (
        "fleet:\n  environments:  # promotion order\n    - sandbox\n    - dev\n    - qa\n    - staging  # soak\n"
        "    - prod\nother: 1\n"
    )
    text = "environments:\n  - dev\n  - prod\n"
    two, order = reconcile.add_environments(text, yaml.compose(text).value[0][1], ["qa", "staging", "test"])
    assert (two, order) == (
        "environments:\n  - dev\n  - test\n  - qa\n  - staging\n  - prod\n",
        ["dev", "test", "qa", "staging", "prod"],
    )
    flow, order = reconcile.add_environments("e: [dev, prod]\n", yaml.compose("e: [dev, prod]\n").value[0][1], ["qa"])
    assert (flow, order) == ("e: [dev, qa, prod]\n", ["dev", "qa", "prod"])


# --- the slug default -------------------------------------------------------------------------------------


def test_long_accented_org_name_gives_a_valid_slug(tmp_path: Path) -> None:
    """`--defaults` with a long, accented organisation name: transliterated, cut to 30, still validated."""
    template = make_template(tmp_path / "fleetgen")
    name = "Société Générale d'Électricité & Réseaux Øresund Łódź Internationale"
    copy(template, tmp_path / "fleet", {"org_name": name}, skip_tasks=True)
    slug = load_yaml(tmp_path / "fleet" / ".copier-answers.yml")["org_slug"]
    assert slug == "societe-generale-d-electricite"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,28}[a-z0-9])?", slug)


# --- answers and inventory stay one truth -----------------------------------------------------------------


def _update(dst: Path, data: dict[str, Any] | None = None) -> None:
    with scaffold_environ():
        copier.run_update(
            dst,
            data=data or {},
            defaults=True,
            overwrite=True,
            unsafe=True,
            conflict="inline",
            vcs_ref="HEAD",
            quiet=True,
        )


def _release(template: Path, tag: str) -> None:
    readme = template / "template" / "README.md.jinja"
    readme.write_text(readme.read_text() + f"\nTemplate {tag}.\n")
    commit_all(template, f"template {tag}")
    git(template, "tag", tag)


@pytest.mark.slow
def test_an_environment_removed_in_the_scaffold_stays_removed(tmp_path: Path) -> None:
    """The organisation drops staging from its inventory; `copier update` neither re-creates it nor its answer."""
    template = make_template(tmp_path / "fleetgen")
    dst = copy(template, tmp_path / "fleet", AWS_ONLY)
    commit_all(dst, "scaffold")
    (dst / "overlays" / "staging.yaml").unlink()
    fleet_yaml = dst / "inventory" / "fleet.yaml"
    fleet_yaml.write_text(
        fleet_yaml.read_text().replace("environments: [dev, staging, prod]", "environments: [dev, prod]")
    )
    aws = dst / "inventory" / "clusters" / "aws.yaml"
    aws.write_text(re.sub(r"\n\n  - name: staging-eu-west-1\n(    .*\n|      .*\n)+", "\n", aws.read_text()))
    assert "staging" not in aws.read_text()
    apps = dst / "inventory" / "apps.yaml"
    apps.write_text(apps.read_text().replace("staging: 1, ", ""))
    run(dst, sys.executable, "-m", "generator.cli", "render", ".", "--out", ".")
    commit_all(dst, "drop staging")

    _release(template, "2.0.0")
    _update(dst)
    assert conflicts(dst) == []
    assert not (dst / "overlays" / "staging.yaml").exists()
    assert load_yaml(fleet_yaml)["fleet"]["environments"] == ["dev", "prod"]
    answers = load_yaml(dst / ".copier-answers.yml")
    assert (answers["_commit"], answers["environments"]) == ("2.0.0", ["dev", "prod"])
    run(dst, *RENDER_CHECK)
    assert not any("staging" in p.name for p in (dst / "fleet" / "clusters").iterdir())


@pytest.mark.slow
def test_an_environment_and_a_cloud_added_through_copier_are_rendered(tmp_path: Path) -> None:
    """`copier update --data` adding qa and gcp: fleet.environments, overlay, clusters, rendered output."""
    template = make_template(tmp_path / "fleetgen")
    dst = copy(template, tmp_path / "fleet", AWS_ONLY)
    commit_all(dst, "scaffold")
    _update(
        dst, {"environments": ["dev", "qa", "staging", "prod"], "clouds": ["aws", "gcp"], "gcp_region": "europe-west4",
             "gcp_project": "acme-dns"}
    )

    assert conflicts(dst) == []
    fleet_yaml = (dst / "inventory" / "fleet.yaml").read_text()
    assert "  environments: [dev, qa, staging, prod]  # promotion order" in fleet_yaml, "edited in place"
    assert (dst / "overlays" / "qa.yaml").is_file()
    assert [c["name"] for c in load_yaml(dst / "inventory" / "clusters" / "aws-qa.yaml")["clusters"]] == [
        "qa-eu-west-1"
    ]
    gcp = [c["name"] for c in load_yaml(dst / "inventory" / "clusters" / "gcp.yaml")["clusters"]]
    assert gcp == ["dev-europe-west4", "qa-europe-west4", "staging-europe-west4", "prod-europe-west4"]
    answers = load_yaml(dst / ".copier-answers.yml")
    assert (answers["environments"], answers["clouds"]) == (["dev", "qa", "staging", "prod"], ["aws", "gcp"])
    # the update's render already produced the new clusters; the output is current
    clusters = {p.name for p in (dst / "fleet" / "clusters").iterdir()}
    assert {"qa-eu-west-1", "qa-europe-west4", "prod-europe-west4"} <= clusters
    run(dst, *RENDER_CHECK)


# --- the whole release: tag A → scaffold → tag B → copier update → pip install -e . -----------------------


@pytest.mark.slow
def test_release_upgrade_with_the_stock_pip(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Scaffold at tag A from a relative path, install with the stock pip, release B (a renamed key), update."""
    template = make_template(tmp_path / "src" / "fleetgen")  # tag A = 1.0.0
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # its pip as bundled, not upgraded
    python, env = venv / "bin" / "python", scaffold_env(ignore_pin=False)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    pip_version = subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True, text=True, check=True)

    # copy from a relative path; the copy task refuses to render with this checkout's (unreleased) fleetgen
    dst = tmp_path / "fleet"
    cwd = Path.cwd()
    os.chdir(template.parent)
    try:
        with scaffold_environ(ignore_pin=False):
            copier.run_copy("fleetgen", dst, data=AWS_ONLY, vcs_ref="1.0.0", defaults=True, unsafe=True, quiet=True)
    finally:
        os.chdir(cwd)
    assert "nothing was rendered with the wrong fleetgen" in capfd.readouterr().err
    assert not (dst / "fleet").exists()

    _pip_install(python, "-e", ".", cwd=dst, env=env)
    assert _fleetgen_version(venv / "bin" / "fleetgen") == "fleetgen 1.0.0", pip_version.stdout
    _run(dst, env, venv / "bin" / "invoke", "render")
    # the organisation adds a dependency below the pin, and commits
    pyproject = dst / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            '    "pre-commit>=3.5,<5",\n', '    "pre-commit>=3.5,<5",\n    "rich>=13.7,<15",\n'
        )
    )
    commit_all(dst, "scaffold at 1.0.0")

    # release B: an inventory key renamed (fleetgen accepts both names, so A still renders either)
    renames = template / "template" / ".copier" / "renames.yaml"
    before = renames.read_text()
    rename = '  - {version: "1.1.0", scope: fleet, path: allowedRegistries, to: allowed_registries}\n'
    renames.write_text(before.replace("renames:\n", "renames:\n" + rename, 1))
    assert renames.read_text() != before
    commit_all(template, "template 1.1.0")
    git(template, "tag", "1.1.0")

    # copier update runs with the scaffold's own copier, so its interpreter has the old fleetgen 1.0.0; from
    # where the relative template path was given (copier resolves a recorded _src_path against the cwd)
    copier_cli = (venv / "bin" / "copier", "update", "--trust", "--defaults", "--conflict", "inline", dst)
    update = _run(template.parent, env, *copier_cli)
    assert "fleetgen 1.0.0 is installed, but pyproject.toml pins" in update.stderr, update.stderr
    assert f"{python} -m pip install -e . && invoke render" in update.stderr, update.stderr
    message = update.stderr[update.stderr.index("Updated to template 1.1.0") :]
    steps = ("Resolve conflicts first", "pip install -e .", "invoke render", "invoke golden --update")
    assert [message.index(step) for step in steps] == sorted(message.index(step) for step in steps), message
    assert conflicts(dst) == []
    text = pyproject.read_text()
    assert f'    "fleetgen @ git+file://localhost{template.resolve()}@1.1.0",\n' in text
    assert '    "rich>=13.7,<15",\n' in text, "the organisation's dependency survives the update"
    fleet = (dst / "inventory" / "fleet.yaml").read_text()
    assert "\n  allowed_registries:" in fleet and "\n  allowedRegistries:" not in fleet

    _pip_install(python, "-e", ".", cwd=dst, env=env)
    assert _fleetgen_version(venv / "bin" / "fleetgen") == "fleetgen 1.1.0"
    _run(dst, env, venv / "bin" / "invoke", "render")
    commit_all(dst, "update to 1.1.0")
    _run(dst, env, venv / "bin" / "invoke", "test")
    assert git(dst, "status", "--porcelain") == ""
    assert yaml.safe_load((dst / ".copier-answers.yml").read_text())["_commit"] == "1.1.0"


def _run(cwd: Path, env: dict[str, str], *argv: str | Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    assert done.returncode == 0, f"{argv} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done
