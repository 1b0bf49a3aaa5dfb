"""The copier template (``copier.yml`` + ``template/``), driven with the real copier, git, invoke and fleetgen.

The template source is a git clone of this repo's working tree (tracked and untracked-but-not-ignored files)
tagged ``1.0.0``; copier is pointed at it with ``vcs_ref="HEAD"`` (otherwise it takes the latest tag). Inside
a scaffold, ``invoke`` runs with this interpreter, so the fleetgen under test is the local checkout (nothing
is pip-installed), and ``FLEETGEN_TOOLS_DIR`` points at the already-installed helm and kustomize so nothing
is downloaded.
"""

from __future__ import annotations

import filecmp
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import copier
import pytest
import yaml
from conftest import REPO
from plumbum import local

from generator.inventory.entries import platforms
from generator.tools import tools_dir

TEMPLATE = REPO / "template"
MIGRATE = TEMPLATE / ".copier" / "migrate_inventory.py"
GIT_IDENTITY = ("-c", "user.name=Fleet Tests", "-c", "user.email=fleet-tests@example.invalid")
CONFLICT_MARKER = re.compile(rb"^(<{7}|>{7})( |$)", re.MULTILINE)

AWS_ONLY: dict[str, Any] = {"org_name": "Acme Corp", "clouds": ["aws"], "aws_region": "eu-west-1"}
GCP_AZURE: dict[str, Any] = {
    "org_name": "Globex",
    "org_slug": "globex",
    "git_provider": "gitlab",
    "fleet_repo_url": "https://gitlab.example.com/globex/fleet.git",
    "default_branch": "trunk",
    "clouds": ["gcp", "azure"],
    "environments": ["dev", "prod"],
    "gcp_region": "europe-west4",
    "azure_region": "northeurope",
    "management_cloud": "azure",
    "management_region": "westeurope",
    "gcp_project": "globex-fleet",
    "gcp_workload_identity_provider": "projects/123456789/locations/global/workloadIdentityPools/hub/providers/aks",
    "azure_tenant_id": "0b5c7a57-6f5e-4a51-8a3e-1d2f9a0b1c2d",
    "azure_subscription_id": "1c5c7a57-6f5e-4a51-8a3e-1d2f9a0b1c2d",
    "azure_crossplane_client_id": "2d5c7a57-6f5e-4a51-8a3e-1d2f9a0b1c2d",
    "hub_flux_azure_client_id": "4f5c7a57-6f5e-4a51-8a3e-1d2f9a0b1c2d",
    "hub_flux_azure_principal_id": "5a5c7a57-6f5e-4a51-8a3e-1d2f9a0b1c2d",
    "azure_secrets_client_id": "3e5c7a57-6f5e-4a51-8a3e-1d2f9a0b1c2d",
    "hub_egress_cidrs": "203.0.113.10/32, 203.0.113.11/32",
    "notification_type": "msteams",
    "notification_channel": "fleet-alerts",
    "allowed_registries": ["globex.azurecr.io/apps", "europe-docker.pkg.dev/globex/apps"],
}
ALL_CLOUDS_VAULT: dict[str, Any] = {
    "org_name": "Initech",
    "clouds": ["aws", "gcp", "azure"],
    "environments": ["dev", "qa", "staging", "prod"],
    "management_cloud": "gcp",
    "secrets_backend": "vault",
    "vault_address": "https://vault.initech.example.com:8200",
    "aws_account_id": "123456789012",
    "gcp_project": "initech-fleet",
    "azure_tenant_id": "0b5c7a57-6f5e-4a51-8a3e-1d2f9a0b1c2d",
    "azure_subscription_id": "1c5c7a57-6f5e-4a51-8a3e-1d2f9a0b1c2d",
    "azure_crossplane_client_id": "2d5c7a57-6f5e-4a51-8a3e-1d2f9a0b1c2d",
    "hub_flux_gcp_workload_identity_provider":
        "projects/987654321/locations/global/workloadIdentityPools/hub/providers/gke",
    "hub_flux_azure_client_id": "4f5c7a57-6f5e-4a51-8a3e-1d2f9a0b1c2d",
    "hub_flux_azure_principal_id": "5a5c7a57-6f5e-4a51-8a3e-1d2f9a0b1c2d",
    "hub_egress_cidrs": "198.51.100.7/32",
    "notification_type": "none",
    "ci_shards": 4,
}


# --- helpers ----------------------------------------------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    """Run git (with a fixed identity) and return its stdout."""
    done = subprocess.run(["git", *GIT_IDENTITY, *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout


def commit_all(repo: Path, message: str) -> None:
    """Stage everything and commit."""
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "--allow-empty", "-m", message)


def scaffold_env(*, ignore_pin: bool = True) -> dict[str, str]:
    """Environment for commands inside a scaffold: the installed tools (no downloads), the CRD catalogue.

    ``ignore_pin``: render with this checkout's fleetgen although the scaffold pins the template's tag
    (FLEETGEN_IGNORE_PIN, .copier/render_fleet.py); the release tests install the pinned one instead.
    """
    env = {**os.environ, "FLEETGEN_TOOLS_DIR": str(tools_dir(REPO))}
    env.pop("FLEETGEN_IGNORE_PIN", None)
    env.pop("FLEETGEN_CRDS", None)  # the scaffold validates with fleetgen's built-in catalogue alone
    if ignore_pin:
        env["FLEETGEN_IGNORE_PIN"] = "1"
    return env


@contextmanager
def scaffold_environ(*, ignore_pin: bool = True) -> Iterator[None]:
    """``scaffold_env()`` for copier's own tasks and migrations, which run with plumbum's copy of the environ."""
    env = scaffold_env(ignore_pin=ignore_pin)
    with pytest.MonkeyPatch.context() as patch, local.env(**env):
        for key, value in env.items():
            patch.setenv(key, value)
        if not ignore_pin:
            patch.delenv("FLEETGEN_IGNORE_PIN", raising=False)
            local.env.pop("FLEETGEN_IGNORE_PIN", None)
        yield


def run(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a command in a scaffold; fail the test with its output when it fails."""
    done = subprocess.run(
        argv, cwd=cwd, env=scaffold_env(), capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    assert done.returncode == 0, f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def invoke(cwd: Path, *task: str) -> subprocess.CompletedProcess[str]:
    """``invoke TASK`` in a scaffold, with this interpreter (so the local fleetgen is the one used)."""
    return run(cwd, sys.executable, "-m", "invoke", *task)


def copy(template: Path, dst: Path, data: dict[str, Any] | None = None, **kwargs: Any) -> Path:
    """``copier copy`` the template at its HEAD into ``dst`` with defaults for every unanswered question."""
    with scaffold_environ():
        copier.run_copy(
            str(template), dst, data=data or {}, vcs_ref="HEAD", defaults=True, unsafe=True, quiet=True, **kwargs
        )
    return dst


def conflicts(root: Path) -> list[str]:
    """Files below ``root`` (outside .git) that hold merge-conflict markers or are .rej leftovers."""
    found = []
    for path in sorted(root.rglob("*")):
        if ".git" in path.relative_to(root).parts or not path.is_file():
            continue
        if path.suffix == ".rej" or CONFLICT_MARKER.search(path.read_bytes()):
            found.append(path.relative_to(root).as_posix())
    return found


def load_yaml(path: Path) -> Any:
    """Parse one YAML document."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def make_template(dest: Path) -> Path:
    """A git repo holding this repo's working tree (tracked + untracked-not-ignored files), tagged 1.0.0."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        source = REPO / rel
        if source.is_file():  # tracked files deleted in the working tree are skipped
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)
    git(dest, "init", "--quiet", "--initial-branch=main")
    commit_all(dest, "template 1.0.0")
    git(dest, "tag", "1.0.0")
    return dest


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template at 1.0.0 (shared, never modified)."""
    return make_template(tmp_path_factory.mktemp("template") / "fleetgen")


@pytest.fixture
def own_template(template_repo: Path, tmp_path: Path) -> Path:
    """A private clone of the template that a test may commit to and tag."""
    dest = tmp_path / "fleetgen"
    shutil.copytree(template_repo, dest, symlinks=True)
    return dest


@pytest.fixture(scope="module")
def migrate_module() -> Iterator[ModuleType]:
    """template/.copier/migrate_inventory.py, imported."""
    spec = importlib.util.spec_from_file_location("migrate_inventory", MIGRATE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["migrate_inventory"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["migrate_inventory"]


# --- the template's own files -----------------------------------------------------------------------------


def test_service_chart_is_the_repo_chart() -> None:
    """template/charts/service is a byte-identical copy of charts/service (drift fails here)."""
    ours, theirs = TEMPLATE / "charts" / "service", REPO / "charts" / "service"
    files = sorted(p.relative_to(theirs).as_posix() for p in theirs.rglob("*") if p.is_file())
    assert sorted(p.relative_to(ours).as_posix() for p in ours.rglob("*") if p.is_file()) == files
    _, mismatch, errors = filecmp.cmpfiles(theirs, ours, files, shallow=False)
    assert not mismatch and not errors, f"template/charts/service differs from charts/service: {mismatch + errors}"


def test_components_are_the_reference_components() -> None:
    """The scaffold starts with the reference fleet's pinned platform components."""
    reference = (REPO / "inventory" / "components.yaml").read_bytes()
    assert (TEMPLATE / "inventory" / "components.yaml").read_bytes() == reference


def test_region_choices_are_fleetgens_regions() -> None:
    """The region choices in copier.yml are exactly the regions fleetgen accepts."""
    config = load_yaml(REPO / "copier.yml")
    known = {cloud: list(data["regions"]) for cloud, data in platforms()["clouds"].items()}
    assert config["cloud_regions"]["default"] == known


def test_copier_settings() -> None:
    """Strict undefined, only *.jinja templated, inventory and overlays user-owned."""
    config = load_yaml(REPO / "copier.yml")
    assert config["_subdirectory"] == "template"
    assert config["_templates_suffix"] == ".jinja"
    assert config["_envops"]["undefined"] == "jinja2.StrictUndefined"
    assert {"inventory/**", "overlays/**"} <= set(config["_skip_if_exists"])
    assert (TEMPLATE / "{{ _copier_conf.answers_file }}.jinja").is_file()
    questions = [k for k in config if not k.startswith("_")]
    for name in questions:
        if config[name].get("when") is not False:  # computed values are not asked
            assert config[name].get("help"), f"question {name} has no help"


# --- validators -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"org_slug": "Acme Corp"}, "'Acme Corp' is not a valid slug"),
        ({"org_slug": "-acme"}, "is not a valid slug"),
        ({"fleet_repo_url": "git@github.com:acme/fleet.git"}, "is scp-style: write it as ssh://git@github.com/acme"),
        ({"fleet_repo_url": "http://github.com/acme/fleet.git"}, "is not a valid fleet repo URL"),
        ({"fleet_repo_url": "not a url"}, "is not a valid fleet repo URL"),
        ({"clouds": []}, "choose at least one cloud"),
        ({"environments": []}, "choose at least one environment"),
        ({"allowed_registries": ["https://ghcr.io/acme"]}, "is not a registry"),
        ({"secrets_backend": "vault", "vault_address": "http://vault"}, "is not a valid Vault URL"),
        ({"domain": "localhost"}, "is not a lowercase DNS domain"),
        ({"security_team": "security"}, "is not a code owner"),
        ({"aws_account_id": "12345"}, "is not an AWS account ID"),
        ({"clouds": ["azure"], "azure_tenant_id": "not-a-uuid"}, "is not a lowercase UUID"),
    ],
)
def test_validators_reject_bad_answers(template_repo: Path, tmp_path: Path, data: dict[str, Any], message: str) -> None:
    """A bad answer stops the copy with the validator's message and writes nothing."""
    dst = tmp_path / "fleet"
    with pytest.raises(ValueError, match=re.escape(message)):
        copy(template_repo, dst, data)
    assert not dst.exists()


def test_management_region_must_belong_to_its_cloud(template_repo: Path, tmp_path: Path) -> None:
    """Region choices follow the cloud: a gcp region for an aws hub is refused."""
    with pytest.raises(ValueError, match="Invalid choice for 'management_region'"):
        copy(template_repo, tmp_path / "fleet", {"clouds": ["aws"], "management_region": "us-central1"})


# --- copy → invoke render → invoke test → render again changes nothing ------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("answers", [AWS_ONLY, GCP_AZURE, ALL_CLOUDS_VAULT], ids=["aws", "gcp-azure", "all-vault"])
def test_scaffold_renders_tests_and_is_stable(template_repo: Path, tmp_path: Path, answers: dict[str, Any]) -> None:
    """copier copy → the task renders fleet/ → invoke render and invoke test pass → a second render is a no-op."""
    started = time.monotonic()
    dst = copy(template_repo, tmp_path / "fleet", answers)
    copied = time.monotonic()
    assert (dst / ".git").is_dir(), "the copy task initialises a git repo"
    assert (dst / ".fleetgen" / "manifest.json").is_file(), "the copy task renders"
    run(dst, sys.executable, "-m", "generator.cli", "render", ".", "--out", ".", "--check")
    _check_answers_reached_the_scaffold(dst, answers)

    invoke(dst, "render")
    assert (dst / "golden" / "management").is_dir()
    commit_all(dst, "scaffold")
    invoke(dst, "test")
    invoke(dst, "render")
    assert git(dst, "status", "--porcelain") == "", "a second render changed the committed output"
    tested = time.monotonic()

    # what CI comments on a pull request: an inventory edit, as per-cluster resource diffs
    apps = dst / "inventory" / "apps.yaml"
    apps.write_text(apps.read_text().replace("tag: \"1.0.0\"", "tag: \"1.1.0\""))
    invoke(dst, "render")
    comment = invoke(dst, "diff", "--base", "HEAD", "--format", "markdown").stdout
    assert "Deployment" in comment and "1.1.0" in comment, comment
    print(
        f"copy {copied - started:.1f}s, render+test+render {tested - copied:.1f}s, "
        f"edit+render+diff {time.monotonic() - tested:.1f}s"
    )


def _check_answers_reached_the_scaffold(dst: Path, answers: dict[str, Any]) -> None:
    fleet = load_yaml(dst / "inventory" / "fleet.yaml")["fleet"]
    clouds = answers["clouds"]
    environments = answers.get("environments", ["dev", "staging", "prod"])
    assert fleet["git"]["path"] == "fleet"
    assert fleet["environments"] == environments
    assert sorted(p.stem for p in (dst / "overlays").glob("*.yaml")) == sorted(environments)
    assert sorted(p.stem for p in (dst / "inventory" / "clusters").glob("*.yaml")) == sorted([*clouds, "management"])
    clusters = sorted(p.name for p in (dst / "fleet" / "clusters").iterdir())
    assert len(clusters) == 1 + len(clouds) * len(environments)
    assert "management" in clusters
    assert sorted(p.name for p in (dst / "charts" / "service").rglob("*")) == sorted(
        p.name for p in (REPO / "charts" / "service").rglob("*")
    )

    answers_file = load_yaml(dst / ".copier-answers.yml")
    assert answers_file["_commit"] == "1.0.0"
    assert answers_file["clouds"] == clouds
    pyproject = (dst / "pyproject.toml").read_text()
    # a local template path becomes an absolute git+file://localhost/ URL (pip refuses an empty host)
    assert re.search(r'^    "fleetgen @ git\+file://localhost/\S+@1\.0\.0",$', pyproject, re.M), pyproject

    if answers.get("secrets_backend") == "vault":
        assert fleet["security"]["secrets"]["vault"]["server"] == answers["vault_address"]
        assert load_yaml(dst / "inventory" / "fleet.yaml")["defaults"]["secretsBackend"] == "vault"
    # the infrastructure repo is rendered when every cloud's identity was given (AWS_ONLY leaves them for later)
    identities = "aws_account_id" in answers or "gcp_project" in answers
    assert ("crossplane" in fleet) == identities
    assert (dst / "infrastructure").is_dir() == identities
    if answers.get("notification_type") == "none":
        assert "notifications" not in fleet

    provider = answers.get("git_provider", "github")
    workflow = dst / ".github" / "workflows" / "fleet.yml"
    gitlab = dst / ".gitlab-ci.yml"
    assert workflow.is_file() == (provider == "github")
    assert gitlab.is_file() == (provider == "gitlab")
    if provider == "github":
        jobs = load_yaml(workflow)["jobs"]
        assert jobs["verify"]["strategy"]["matrix"]["shard"] == list(range(1, answers.get("ci_shards", 2) + 1))
        assert "${{ matrix.shard }}" in workflow.read_text()
        assert "--format markdown" in workflow.read_text()
    if provider == "gitlab":
        assert load_yaml(gitlab)["verify"]["parallel"] == answers.get("ci_shards", 2)
    slug = answers.get("org_slug") or re.sub("[^a-z0-9]+", "-", answers["org_name"].lower()).strip("-")
    assert fleet["organization"] == slug
    owners = (dst / "CODEOWNERS").read_text()  # rendered by fleetgen from the inventory's teams
    assert owners.startswith("# Generated by fleetgen")
    assert re.search(rf"^/overlays/ +@{slug}/security$", owners, re.M), owners
    assert re.search(rf"^/CODEOWNERS +@{slug}/platform @{slug}/security$", owners, re.M), owners
    overview = (dst / "FLEET.md").read_text()  # the fleet overview, next to CODEOWNERS at the repository root
    for cluster in (dst / "fleet" / "clusters").iterdir():
        assert f'["{cluster.name}<br/>' in overview and f"| {cluster.name} |" in overview, cluster.name


@pytest.mark.slow
def test_copy_defaults_from_the_command_line(template_repo: Path, tmp_path: Path) -> None:
    """`copier copy --defaults` asks nothing (stdin closed) and gives a valid, rendered fleet."""
    dst = tmp_path / "fleet"
    copier_cli = (sys.executable, "-m", "copier", "copy", "--defaults", "--trust", "--vcs-ref", "HEAD")
    run(tmp_path, *copier_cli, str(template_repo), str(dst))
    run(dst, sys.executable, "-m", "generator.cli", "render", ".", "--out", ".", "--check")
    fleet = load_yaml(dst / "inventory" / "fleet.yaml")["fleet"]
    assert fleet["organization"] == "example-org"
    assert sorted(p.name for p in (dst / "fleet" / "clusters").iterdir()) == [
        "dev-us-east-1",
        "management",
        "prod-us-east-1",
        "staging-us-east-1",
    ]


# --- update: the user's edits survive, the template's changes arrive --------------------------------------


@pytest.mark.slow
def test_update_keeps_user_edits_and_brings_template_changes(own_template: Path, tmp_path: Path) -> None:
    """1.0.0 → copy → user edits and commits → template 2.0.0 → copier update: merged, nothing lost."""
    dst = copy(own_template, tmp_path / "fleet", AWS_ONLY)
    commit_all(dst, "scaffold")

    # the organisation edits its inventory (and a file the template also owns), re-renders, commits
    apps = dst / "inventory" / "apps.yaml"
    apps.write_text(apps.read_text().replace("prod: 2}", "prod: 5}"))
    fleet_yaml = dst / "inventory" / "fleet.yaml"
    fleet_yaml.write_text(
        fleet_yaml.read_text().replace("  allowedRegistries:", "  # our registries\n  allowedRegistries:")
    )
    readme = dst / "README.md"
    readme.write_text(readme.read_text() + "\n## On call\n\nPage the platform team.\n")
    run(dst, sys.executable, "-m", "generator.cli", "render", ".", "--out", ".")
    commit_all(dst, "our edits")

    # the template evolves: a new task, a README line, and an inventory key renamed
    tasks = own_template / "template" / "tasks.py"
    tasks.write_text(
        tasks.read_text()
        + '\n\n@task\ndef explain(c: Context, cluster: str) -> None:\n    """Where each value comes from."""\n'
        + '    _fleetgen(c, f"explain {cluster} --root {ROOT}")\n'
    )
    template_readme = own_template / "template" / "README.md.jinja"
    template_readme.write_text(
        template_readme.read_text().replace("## Layout\n", "## Layout\n\nTemplate 2.0.0 layout notes.\n")
    )
    renames = own_template / "template" / ".copier" / "renames.yaml"
    shipped = renames.read_text()
    assert shipped.count("\nrenames:") == 1
    renames.write_text(
        shipped.replace("renames: []", "renames:").replace(
            "\nrenames:",
            # a rename fleetgen accepts both ways (field name and alias), so this fleetgen renders either
            '\nrenames:\n  - {version: "2.0.0", scope: fleet, path: allowedRegistries, to: allowed_registries}',
        )
    )
    commit_all(own_template, "template 2.0.0")
    git(own_template, "tag", "2.0.0")

    with scaffold_environ():
        copier.run_update(
            dst, defaults=True, overwrite=True, unsafe=True, conflict="inline", vcs_ref="HEAD", quiet=True
        )

    assert conflicts(dst) == []
    assert load_yaml(dst / ".copier-answers.yml")["_commit"] == "2.0.0"
    assert "@2.0.0" in (dst / "pyproject.toml").read_text()
    # the user's edits are kept ...
    assert "prod: 5}" in apps.read_text()
    assert "Page the platform team." in readme.read_text()
    # ... the template's changes arrived ...
    assert "def explain(" in (dst / "tasks.py").read_text()
    assert "Template 2.0.0 layout notes." in readme.read_text()
    # ... and the migration renamed the key in place, keeping the comment above it
    text = fleet_yaml.read_text()
    assert "  # our registries\n  allowed_registries:" in text and "\n  allowedRegistries:" not in text
    # the output matches the migrated inventory, so committing the update leaves a clean tree
    run(dst, sys.executable, "-m", "generator.cli", "render", ".", "--out", ".", "--check")
    commit_all(dst, "update to 2.0.0")
    run(dst, sys.executable, "-m", "generator.cli", "render", ".", "--out", ".")
    assert git(dst, "status", "--porcelain") == ""


# --- the rename migration ---------------------------------------------------------------------------------


def _fleet_root(tmp_path: Path) -> Path:
    (tmp_path / "inventory" / "clusters").mkdir(parents=True)
    (tmp_path / "overlays").mkdir()
    (tmp_path / "inventory" / "fleet.yaml").write_text(
        "fleet:\n  organization: acme\n  notifications: {type: slack, secretName: hook}  # alerts\n"
        "defaults:\n  sync:\n    apps:\n      retryInterval: 2m  # keep\n"
    )
    (tmp_path / "inventory" / "clusters" / "a.yaml").write_text(
        "clusters:\n  - name: a\n    nodeGroups:\n      - {name: system, instanceType: m6i.large}\n"
        "      - name: apps\n        instanceType: m6i.xlarge  # big\n"
    )
    (tmp_path / "overlays" / "dev.yaml").write_text("# dev\nsync:\n  apps: {retryInterval: 1m}\n")
    return tmp_path


def test_migration_renames_keys_in_place(migrate_module: ModuleType, tmp_path: Path) -> None:
    """Renames reach defaults, clusters and overlays (scope settings) and the fleet; comments stay."""
    m = migrate_module
    root = _fleet_root(tmp_path)
    renames = [
        m.Rename(m.Version("2.0.0"), "settings", ("sync", "apps", "retryInterval"), "retryEvery"),
        m.Rename(m.Version("2.0.0"), "settings", ("nodeGroups", "*", "instanceType"), "machineType"),
        m.Rename(m.Version("2.1.0"), "fleet", ("notifications", "secretName"), "secretRef"),
        m.Rename(m.Version("3.0.0"), "fleet", ("organization",), "org"),
    ]
    changed = m.migrate(root, renames, m.Version("1.0.0"), m.Version("2.1.0"))
    assert len(changed) == 5
    assert (root / "inventory" / "fleet.yaml").read_text() == (
        "fleet:\n  organization: acme\n  notifications: {type: slack, secretRef: hook}  # alerts\n"
        "defaults:\n  sync:\n    apps:\n      retryEvery: 2m  # keep\n"
    )
    assert (root / "inventory" / "clusters" / "a.yaml").read_text() == (
        "clusters:\n  - name: a\n    nodeGroups:\n      - {name: system, machineType: m6i.large}\n"
        "      - name: apps\n        machineType: m6i.xlarge  # big\n"
    )
    assert (root / "overlays" / "dev.yaml").read_text() == "# dev\nsync:\n  apps: {retryEvery: 1m}\n"
    assert m.migrate(root, renames, m.Version("1.0.0"), m.Version("2.1.0")) == [], "a second run changes nothing"


def test_migration_refuses_to_overwrite_an_existing_key(migrate_module: ModuleType, tmp_path: Path) -> None:
    """When both the old and the new key are present, nothing is guessed: an error names the file and line."""
    m = migrate_module
    root = _fleet_root(tmp_path)
    (root / "overlays" / "dev.yaml").write_text("sync:\n  apps: {retryInterval: 1m, retryEvery: 2m}\n")
    rename = m.Rename(m.Version("2.0.0"), "settings", ("sync", "apps", "retryInterval"), "retryEvery")
    with pytest.raises(m.MigrationError, match=r"overlays/dev.yaml:2: cannot rename 'retryInterval'"):
        m.migrate(root, [rename], m.Version("1.0.0"), m.Version("2.0.0"))


def test_shipped_renames_file_is_valid(migrate_module: ModuleType) -> None:
    """template/.copier/renames.yaml parses, and the command line runs against a scaffold-like tree."""
    migrate_module.load_renames(MIGRATE.with_name("renames.yaml"))
    assert migrate_module.main(["--from", "1.0.0", "--to", "1.0.0", "--root", str(REPO)]) == 0
